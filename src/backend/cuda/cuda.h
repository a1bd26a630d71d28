/* cuda.h - the CUDA backend: device memory, one stream per executor, CUDA
 * graphs, and the kernels the engine's GPU forward pass sequences.
 *
 *   hl_cu *cu; hl_err e;
 *   hl_cu_new(&cu, 0, &e);                           // device 0: stream, cuBLAS
 *   hl_cu_mat w = {dev_ptr, HL_Q4_0, 2048, 8192, row_bytes};
 *   hl_cu_matmul(cu, &w, x, 2048, n_tok, y, 8192);   // y[t][o] = W[o] . x[t]
 *   hl_cu_sync(cu, &e);
 *
 * Contract. Pure kernels over device memory the caller owns: no model
 * semantics (the engine's model_cuda.c owns those). Every launch goes on
 * the executor's stream, in order, and returns at once; errors of a launch
 * are sticky on the executor and come back from the next hl_cu_sync as one
 * sentence. Pointers named dev_* or of the structs
 * below are device pointers; the rest are host pointers. One thread drives
 * an executor at a time. Nothing here allocates after hl_cu_new except
 * hl_cu_alloc and the scratch growth of hl_cu_reserve (done at context
 * creation), so launches can be captured into a CUDA graph.
 *
 * Matmul paths. n_tok <= 8: a fused dequantize-and-dot kernel that reads
 * each weight once for all tokens (decode): int8 dot products (dp4a) on
 * int8-quantized activations for the HL_CU_* layouts, Q4_1, Q8_0 and
 * Q4_K (the activations quantized as the CPU backend and llama.cpp do for
 * these types), f32 for the other types. More tokens:
 * the weights are dequantized to f16 into scratch and multiplied by cuBLAS
 * on the tensor cores with f32 accumulation (prefill, large batches).
 * Every weight type of quant.h runs on both paths.
 *
 * Unlike the CPU kernels these are not batch-invariant: a token's logits
 * can differ in their last bits between a batch of up to 8 tokens (int8
 * activations) and a larger one (f16 cuBLAS), so a near tie may resolve
 * differently when a request shares a step with others or re-decodes a
 * cached prompt's last token.
 *
 * Only the CUDA build (`make cuda`) compiles this backend; the engine's
 * model_cuda.c is the one caller, and without CUDA it reports "built
 * without CUDA" itself. Strides: x rows (ldx) are 16-byte aligned with
 * ldx % 4 == 0, and % 32 == 0 for int8 activations; rows given to the
 * int8 producers are multiples of 32 long.
 */
#ifndef HL_CUDA_H
#define HL_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../util/dtype.h"
#include "../../util/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hl_cu hl_cu;

typedef struct hl_cu_info {
    char name[256];
    int cc_major, cc_minor;
    int n_sm;
    uint64_t mem_total, mem_free; /* bytes */
    double bandwidth;             /* theoretical, bytes/s (bus width x memory clock) */
} hl_cu_info;

/* Device layouts of three hot types (hl_cu_relayout), as hl_cu_mat.type
 * values past GGUF's numbers: Q4_0 and Q8_0 with each row's quants first
 * and its f16 scales after them; Q6_K with blocks padded to 224 bytes. */
enum { HL_CU_Q4_0S = 64, HL_CU_Q8_0S = 65, HL_CU_Q6_KP = 66 };

typedef struct hl_cu_mat {
    const void *data; /* device: n_out rows of row_bytes, GGUF block layout or an HL_CU_* one */
    hl_dtype type;
    int n_in, n_out;
    size_t row_bytes;
} hl_cu_mat;

/* Devices this process sees (0 without a driver, a GPU, or CUDA support). */
int hl_cu_device_count(void);
/* Why there are none, for messages ("built without CUDA", the driver's word). */
const char *hl_cu_unavailable_reason(void);
int hl_cu_device_info(int device, hl_cu_info *info, hl_err *e);
/* Measured device memory bandwidth (bytes/s, read + written) of large
 * device-to-device copies; 0 on failure. Allocates 2 GiB for a moment. */
double hl_cu_copy_bandwidth(int device);
/* Whether the matmul kernels take this type with rows of n_in. */
bool hl_cu_supports(hl_dtype t, int n_in);

int hl_cu_new(hl_cu **out, int device, hl_err *e);
void hl_cu_free(hl_cu *cu);
/* Makes the executor's device the calling thread's current one (a thread
 * other than the creator must, before launching on a device other than 0). */
void hl_cu_bind(hl_cu *cu);

/* Device memory (plain cudaMalloc) and copies. */
void *hl_cu_alloc(hl_cu *cu, size_t bytes, hl_err *e);
void hl_cu_dealloc(void *dev);
/* Pinned host memory (for copies that a graph replays). */
void *hl_cu_host_alloc(size_t bytes, hl_err *e);
void hl_cu_host_free(void *p);
int hl_cu_upload(hl_cu *cu, void *dev, const void *host, size_t bytes, hl_err *e);   /* synchronous */
/* rows rows of width bytes, from host rows spitch apart to device rows
 * dpitch apart (synchronous). */
int hl_cu_upload_rows(hl_cu *cu, void *dev, size_t dpitch, const void *host, size_t spitch,
                      size_t width, size_t rows, hl_err *e);
void hl_cu_copy_h2d(hl_cu *cu, void *dev, const void *host, size_t bytes);            /* on the stream */
void hl_cu_copy_d2h(hl_cu *cu, void *host, const void *dev, size_t bytes);            /* on the stream */
void hl_cu_memset(hl_cu *cu, void *dev, int byte, size_t bytes);
int hl_cu_sync(hl_cu *cu, hl_err *e);
/* Device bytes used by this process's allocations through hl_cu_alloc. */
uint64_t hl_cu_allocated(void);

/* Scratch for the cuBLAS path: an f16 copy of the largest matrix
 * (max_weights elements) and of up to max_tok x max_in activations; and
 * for int8 activations of up to 8 rows of max_in (max_in: the largest
 * ldx a matmul will be given). */
int hl_cu_reserve(hl_cu *cu, size_t max_weights, int max_tok, int max_in, hl_err *e);

/* Graphs: everything launched between begin and end is recorded instead of
 * run; hl_cu_graph_launch replays it. The caller owns a graph and frees it
 * with hl_cu_graph_free (before the executor). */
typedef struct hl_cu_graph hl_cu_graph;
int hl_cu_graph_begin(hl_cu *cu, hl_err *e);
int hl_cu_graph_end(hl_cu *cu, hl_cu_graph **out, hl_err *e);
int hl_cu_graph_launch(hl_cu *cu, hl_cu_graph *g, hl_err *e);
void hl_cu_graph_free(hl_cu_graph *g);

/* ------------------------------------------------------------- kernels -- */

/* y[t * ldy + o] = dot(W row o, x + t * ldx), t < n_tok, o < n_out. */
void hl_cu_matmul(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok, float *y,
                  int ldy);
/* The same, with x's int8 form (xq: int8 [n_tok][ldx]; xds: float pairs
 * (d, d * sum) per block of 32, [n_tok][ldx / 32]) when its producer made
 * one (NULL: quantized here when the type's kernel wants it). */
void hl_cu_matmul_q8(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, const int8_t *xq,
                     const float *xds, int n_tok, float *y, int ldy);
/* x's int8 form as above (n of each row of ldx; n % 32 == 0). */
void hl_cu_quantize_q8(hl_cu *cu, const float *x, int ldx, int n_tok, int n, int8_t *xq, float *xds);
/* A copy of raw in its faster device layout, if its type has one: returns
 * 1 with out set (the caller frees raw's memory if it wants), 0 with
 * out = raw when the type keeps its layout, -1 on failure. */
int hl_cu_relayout(hl_cu *cu, const hl_cu_mat *raw, hl_cu_mat *out, hl_err *e);
/* Forces one path (tests): 0 fused kernel (n_tok <= 8), 1 cuBLAS. */
void hl_cu_matmul_path(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok, float *y,
                       int ldy, int path);
/* out[i * ld + j] = scale * W[ids[i]][j] (ids: device, n of them). */
void hl_cu_get_rows(hl_cu *cu, const hl_cu_mat *w, const int32_t *ids, int n, float *out, int ld,
                    float scale);
/* Dequantizes the whole matrix to f32, row-major (tests). */
void hl_cu_dequant(hl_cu *cu, const hl_cu_mat *w, float *out);

/* The residual step: for each of n_tok rows of length n,
 *   if delta:  x += post ? rmsnorm(delta) * post : delta
 *   if w:      out = rmsnorm(x) * w
 * (delta, post, w may each be NULL). rows: optional device index list; row
 * i of out then comes from row rows[i] of x (output gathering), and delta
 * must be NULL. q8, q8ds (may be NULL): out's int8 form too (hl_cu_matmul_q8).
 * Measured on an H200 and left out: for one token, every block of the next
 * int8 matmul doing this step itself (x ping-ponged between two buffers)
 * instead of this launch: 1B Q4_0 decode -9% (q/k/v only) to -25% (and
 * gate|up), 8B -18% to -55%. The repeated norm costs each block more than
 * the launch it saves, once launches overlap (cuda_kern.cu, c_overlap). */
void hl_cu_resid_norm(hl_cu *cu, float *x, const float *delta, const float *post, const float *w,
                      float *out, int n_tok, int n, float eps, const int32_t *rows, int8_t *q8,
                      float *q8ds);

/* Per token: biases, optional per-head q/k norms, rope of q and k at the
 * token's position, then k and v stored in the cache as f16.
 * qkv: [n_tok][ld] with q at 0, k at n_head*hd, v after k.
 * Cache layout: [seq][kv_head][n_ctx][hd] f16 for one layer. */
typedef struct hl_cu_attn_shape {
    int n_head, n_head_kv, head_dim, n_rot, n_ctx;
    bool neox;
    float rope_base, rope_scale, eps, scale;
    const float *freq_factors; /* device, n_rot/2, or NULL */
    int window;                /* sliding window (0 = none) */
} hl_cu_attn_shape;
/* pos, seq: device int32 [n_tok], each token's position and sequence. */
void hl_cu_qkv_post(hl_cu *cu, float *qkv, int ld, int n_tok, const hl_cu_attn_shape *s,
                    const float *bq, const float *bk, const float *bv, const float *q_norm,
                    const float *k_norm, const int32_t *pos, const int32_t *seq, void *k_cache,
                    void *v_cache);
/* out[t][h * hd + d]: causal attention of each token over its sequence's
 * cached positions [start, pos] (start from the window). max_len sizes
 * the grid (graphs pass n_ctx): at least pos + 1 over the batch splits
 * every range finely; a smaller one only makes longer splits. part:
 * scratch of hl_cu_attn_scratch floats; counters: n_tok * n_head ints,
 * zero before the first call (each call leaves them zero). q8, q8ds: out's
 * int8 form too (may be NULL). One launch: the last split block of each
 * (token, head group) merges the splits. */
size_t hl_cu_attn_scratch(int n_tok, int n_head, int head_dim);
void hl_cu_attention(hl_cu *cu, const float *qkv, int ld, int n_tok, const hl_cu_attn_shape *s,
                     const int32_t *pos, const int32_t *seq, const void *k_cache,
                     const void *v_cache, float *out, int max_len, float *part, int *counters,
                     int8_t *q8, float *q8ds);
/* hl_cu_qkv_post and hl_cu_attention in one launch, for small batches
 * (decode): the same results, the cache rows of the batch written the
 * same, but q is prepared on the fly and qkv is left as it is. Each block
 * prepares the batch's rows it reads, so the work grows with n_tok^2;
 * large batches take the two calls. */
void hl_cu_attention_fused(hl_cu *cu, const float *qkv, int ld, int n_tok, const hl_cu_attn_shape *s,
                           const float *bq, const float *bk, const float *bv, const float *q_norm,
                           const float *k_norm, const int32_t *pos, const int32_t *seq, void *k_cache,
                           void *v_cache, float *out, int max_len, float *part, int *counters,
                           int8_t *q8, float *q8ds);
/* out[t][i] = act(gu[t][i]) * gu[t][n + i]; act = silu, or gelu (tanh form at
 * half precision, as the CPU backend computes it: vec.h);
 * interleaved: gate and up alternate, act(gu[t][2i]) * gu[t][2i + 1].
 * q8, q8ds: out's int8 form too (may be NULL). */
void hl_cu_act_mul(hl_cu *cu, const float *gu, int n_tok, int n, bool gelu, bool interleaved, float *out,
                   int8_t *q8, float *q8ds);
/* The gate|up matmul and the activation: w holds F gate and F up rows
 * interleaved (row 2i gate i, row 2i + 1 up i; n_out = 2F); out [n_tok][F]
 * = act(gate . x) * (up . x), q8/q8ds (may be NULL) its int8 form as
 * hl_cu_act_mul makes it. gu: scratch [n_tok][2F]. Q4_K with 1 or 2
 * tokens (and xq, F % 32 == 0) is one launch, the activation in the
 * matmul's epilogue; the rest is hl_cu_matmul_q8 into gu, then
 * hl_cu_act_mul. Measured on an H200 (1B decode): the one launch is 6-7%
 * faster for Q4_K, but for Q4_0 and Q8_0 the kernel it needs (eight rows
 * per warp) loses occupancy, and an epilogue in the plain int8 kernel
 * (the last block of each 32 outputs quantizing them) cost more than the
 * launch it saved: both were slower than two launches. */
void hl_cu_matmul_act(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, const int8_t *xq,
                      const float *xds, int n_tok, bool gelu, float *gu, float *out, int8_t *q8,
                      float *q8ds);
/* x = cap * tanh(x / cap) over n values. */
void hl_cu_softcap(hl_cu *cu, float *x, size_t n, float cap);
/* ids[r] = argmax of row r (n_rows rows of n; the first index on ties; NaN
 * never wins; -1 when the row has no number). ids is device memory with
 * room for 3 * n_rows + 2 int32: the part past n_rows is the kernel's
 * scratch, zero before the first call (every call leaves it zero). */
void hl_cu_argmax(hl_cu *cu, const float *x, int n_rows, int n, int32_t *ids);

#ifdef __cplusplus
}
#endif

#endif
