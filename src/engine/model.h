/* model.h - a loaded model (weights bound to named fields, tokenizer) and
 * the execution context that runs forward passes over batches.
 *
 *   hl_model *m; hl_ctx *c; hl_err e;
 *   hl_model_load(&m, "smollm2.gguf", &e);
 *   hl_ctx_new(&c, m, &(hl_ctx_params){.n_ctx = 2048, .n_seq = 4}, &e);
 *   hl_ctx_decode(c, &batch, &e); const float *logits = hl_ctx_logits(c, 0);
 *
 * Contract. hl_model is read-only after load and may be shared by any number
 * of contexts and threads; it owns the GGUF mapping and the tokenizer. Load
 * validates the architecture, every hyperparameter and every tensor's type
 * and shape, naming the tensor and the expected dims on error; an
 * unsupported weight type is refused by name. hl_ctx owns the KV cache, the
 * scratch for n_batch tokens, the logits and a thread pool; everything is
 * sized in hl_ctx_new, so decoding allocates nothing. One thread drives a
 * context at a time.
 *
 * A batch is a list of (token, position, sequence id, want-logits). Tokens of
 * one sequence must come in position order and continue that sequence (its
 * cache holds positions [0, pos)); a batch may mix sequences.
 */
#ifndef HL_MODEL_H
#define HL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gguf/gguf.h"
#include "../util/err.h"
#include "tokenizer.h"

typedef enum hl_arch { HL_ARCH_LLAMA, HL_ARCH_QWEN2, HL_ARCH_GEMMA3 } hl_arch;

#define HL_MAX_LAYERS 256

typedef struct hl_hparams {
    hl_arch arch;
    int n_vocab;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;     /* key/value length per head */
    int n_ff;
    int n_ctx_train;
    int n_rot;        /* rotated dims per head */
    bool rope_neox;   /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    float rope_base;
    float rope_scale; /* position multiplier (1 / linear scaling factor) */
    float rope_base_swa;
    float rms_eps;
    float attn_scale;
    int n_swa;        /* sliding window (0 = none) */
    bool swa[HL_MAX_LAYERS];
    float final_softcap;
    float embd_scale; /* input embeddings are multiplied by this */
} hl_hparams;

typedef struct hl_model hl_model;

/* Where a model's forward passes run. AUTO picks CUDA when this build has
 * it, a GPU is present and every weight type of the file runs there; else
 * the CPU. */
typedef enum hl_backend { HL_BACKEND_AUTO, HL_BACKEND_CPU, HL_BACKEND_CUDA } hl_backend;
const char *hl_backend_name(hl_backend b);
/* "auto", "cpu", "cuda" (any case); -1 if none. */
int hl_backend_from_name(const char *name);

/* The GPUs the CUDA backend sees (0 in a build without CUDA). */
typedef struct hl_gpu_desc {
    char name[256];
    int cc_major, cc_minor, n_sm;
    uint64_t mem_total, mem_free; /* bytes, as the driver reports now */
    uint64_t mem_used_by_us;      /* bytes this process allocated on it */
    double bandwidth;             /* theoretical memory bandwidth, bytes/s */
} hl_gpu_desc;
int hl_gpu_count(void);
int hl_gpu_info(int i, hl_gpu_desc *out);
/* Measured copy bandwidth of GPU i, bytes/s (read + written); 0 if none. */
double hl_gpu_measure_bandwidth(int i);

typedef void (*hl_load_progress)(void *arg, double fraction);
typedef struct hl_model_opts {
    hl_backend backend;
    int device;                /* CUDA device index */
    hl_load_progress progress; /* called with the fraction of weights prepared */
    void *progress_arg;
} hl_model_opts;

/* Loads with the AUTO backend, or the one HL_BACKEND names. */
int hl_model_load(hl_model **out, const char *path, hl_err *e);
/* The same, calling cb(arg, fraction) as the weights are prepared (repacked
 * and paged in, or uploaded, layer by layer; most of a large model's load). */
int hl_model_load_progress(hl_model **out, const char *path, hl_load_progress cb, void *arg, hl_err *e);
/* With explicit options (NULL: defaults as hl_model_load). A CUDA backend
 * asked for by name fails with the reason when it cannot be had. */
int hl_model_load_opts(hl_model **out, const char *path, const hl_model_opts *o, hl_err *e);
/* The backend the model runs on (never AUTO). */
hl_backend hl_model_backend(const hl_model *m);
void hl_model_free(hl_model *m);
const hl_hparams *hl_model_hparams(const hl_model *m);
const hl_tokenizer *hl_model_tokenizer(const hl_model *m);
const gguf_file *hl_model_gguf(const hl_model *m);
/* Bytes of weights (what one token of decode reads). */
uint64_t hl_model_weight_bytes(const hl_model *m);
/* Weight bytes one forward pass reads: all of them, less an untied token
 * embedding matrix (only its looked-up rows are read). */
uint64_t hl_model_pass_bytes(const hl_model *m);
/* Short human description: "llama 30 layers, 576 embd, Q4_1 (134.5M params)". */
const char *hl_model_desc(const hl_model *m);

typedef struct hl_ctx_params {
    int n_ctx;      /* positions per sequence (0 = min(train ctx, 4096)) */
    int n_seq;      /* sequences held at once (0 = 1) */
    int n_batch;    /* most tokens in one batch (0 = 512) */
    int n_logits;   /* most tokens with want_logits in one batch (0 = max(n_seq, 8)) */
    int n_threads;  /* 0 = all CPUs */
    bool kv_f32;    /* keep the KV cache in f32 instead of f16 (exact; for verification) */
} hl_ctx_params;

typedef struct hl_batch {
    int n;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;
    const bool *want_logits;
} hl_batch;

typedef struct hl_ctx hl_ctx;

int hl_ctx_new(hl_ctx **out, const hl_model *m, const hl_ctx_params *p, hl_err *e);
void hl_ctx_free(hl_ctx *c);
const hl_ctx_params *hl_ctx_params_get(const hl_ctx *c);

/* Bytes a model from path would take with context parameters p: its tensor
 * data plus the context's KV cache and scratch, from the header alone
 * (nothing is loaded). For memory budgets. */
int hl_model_estimate(const char *path, const hl_ctx_params *p, uint64_t *bytes, hl_err *e);
/* Bytes of a context's KV cache and scratch. */
uint64_t hl_ctx_bytes(const hl_ctx *c);
/* Runs the batch. Fails with no side effects on bad ids, positions that do
 * not continue their sequence, a full context, or more than n_batch tokens. */
int hl_ctx_decode(hl_ctx *c, const hl_batch *b, hl_err *e);
/* Feeds n tokens to one sequence, continuing it, in batches of at most
 * n_batch; afterwards hl_ctx_logits(c, 0) holds the last token's logits.
 * On failure the sequence keeps the positions of the batches that ran. */
int hl_ctx_prefill(hl_ctx *c, int seq, const int32_t *ids, int n, hl_err *e);
/* Logits of the i-th token (in batch order) that wanted them; n_vocab floats,
 * valid until the next decode. */
const float *hl_ctx_logits(const hl_ctx *c, int i);
/* Index of the largest of those logits (the first on ties; NaN never wins;
 * -1 if there is no such row or no number in it). On the GPU it is computed
 * there, so greedy decoding need not copy the logits back. */
int hl_ctx_argmax(const hl_ctx *c, int i);
/* Forgets positions >= n_pos of a sequence (0 frees it). */
void hl_ctx_seq_truncate(hl_ctx *c, int seq, int n_pos);
int hl_ctx_seq_len(const hl_ctx *c, int seq);

#endif
