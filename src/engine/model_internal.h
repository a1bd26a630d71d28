/* model_internal.h - the model and context structs, shared by the CPU
 * forward pass (model.c) and the CUDA one (model_cuda.c). Not an interface:
 * only the engine's own files include it. */
#ifndef HL_MODEL_INTERNAL_H
#define HL_MODEL_INTERNAL_H

#include "../backend/cpu/cpu.h"
#include "../util/pool.h"
#include "kv.h"
#include "model.h"

typedef struct hl_layer {
    const float *attn_norm;                  /* [n_embd] */
    hl_mat wq, wk, wv, wo;                   /* [n_embd -> n_head*hd], [n_embd -> n_kv*hd] x2, [n_head*hd -> n_embd] */
    const float *bq, *bk, *bv;               /* qwen2 biases, else NULL */
    const float *q_norm, *k_norm;            /* gemma3: [head_dim] */
    const float *post_attn_norm;             /* gemma3: [n_embd] */
    const float *ffn_norm;                   /* [n_embd] */
    hl_mat w_gate, w_up, w_down;             /* [n_embd -> n_ff] x2, [n_ff -> n_embd] */
    const float *post_ffn_norm;              /* gemma3: [n_embd] */
} hl_layer;

struct hl_model {
    gguf_file *gguf;
    hl_tokenizer *tok;
    hl_hparams hp;
    hl_mat tok_embd;                         /* [n_embd] x n_vocab rows */
    hl_mat output;                           /* [n_embd -> n_vocab]; tok_embd when tied */
    const float *output_norm;                /* [n_embd] */
    const float *rope_freqs;                 /* [n_rot/2] or NULL */
    hl_layer *layers;
    float **owned;                           /* converted norm/bias vectors */
    int n_owned;
    void **packed;                           /* repacked matrices */
    uint64_t touch_sum;                      /* of the bytes read to page weights in */
    int n_packed;
    uint64_t packed_bytes;
    uint64_t weight_bytes;
    uint64_t n_params;
    char desc[160];
    hl_backend backend;
    struct hl_gpu_model *gpu;                /* weights on the GPU (CUDA backend) */
};

struct hl_ctx {
    const hl_model *m;
    hl_ctx_params p;
    hl_pool *pool;
    hl_kv *kv;
    /* scratch, all [n_batch][...] */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    float *out_x;       /* [n_logits][n_embd] */
    float *logits;      /* [n_logits][n_vocab] */
    float *mm_scratch;  /* per thread */
    float *scores;      /* per thread [n_ctx] */
    float *rope_cs;     /* [2 bases][n_batch][n_rot]: cos/sin of each batch token */
    int32_t *out_rows;  /* [n_logits] batch index of each logits row */
    int32_t *seq_next;  /* [n_seq] */
    int32_t *pf_pos, *pf_seq; /* [n_batch] prefill batch positions and sequence ids */
    bool *pf_want;            /* [n_batch] */
    int n_out;
    struct hl_gpu_ctx *gpu;                  /* CUDA backend state; the CPU fields are unused */
};


/* The CUDA half (model_cuda.c; without CUDA each fails with a sentence). */
int hl_gpu_model_upload(hl_model *m, int device, hl_load_progress cb, void *arg, hl_err *e);
void hl_gpu_model_free(struct hl_gpu_model *g);
int hl_gpu_ctx_new(hl_ctx *c, hl_err *e);
void hl_gpu_ctx_free(struct hl_gpu_ctx *g);
int hl_gpu_decode(hl_ctx *c, const hl_batch *b, hl_err *e);
int hl_gpu_seq_len(const hl_ctx *c, int seq);
void hl_gpu_seq_truncate(hl_ctx *c, int seq, int n_pos);
const float *hl_gpu_logits(const hl_ctx *c, int i);
int hl_gpu_argmax(const hl_ctx *c, int i);
uint64_t hl_gpu_ctx_bytes(const hl_ctx *c);
/* Whether every matrix of m runs on the CUDA backend; else why not. */
bool hl_gpu_model_fits(const hl_model *m, char *why, size_t n);

#endif
