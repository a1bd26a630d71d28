/* cpu.h - the CPU backend's kernels used by the engine's forward pass.
 *
 *   hl_mat w = {data, HL_Q4_0, 576, 1536, row_bytes};
 *   hl_cpu_matmul(pool, &w, x, n_tokens, y, scratch);   // y[t][o] = sum_i W[o][i] x[t][i]
 *   hl_cpu_rmsnorm(out, x, weight, n, eps);
 *
 * Contract. Pure kernels over caller-owned memory: no allocation, no model
 * semantics. hl_cpu_matmul splits output rows across the pool's threads;
 * the other kernels run on the calling thread. The scratch handed to the
 * matmul holds hl_cpu_matmul_scratch(n_in, n_tok, threads) floats. The
 * matmul's inner kernels come from the best path this CPU runs
 * (kernels.h: scalar, AVX2, AVX-512). Batch invariance: a token's outputs
 * are bit-identical whatever n_tok, the token's place among them, the
 * other tokens and the thread count (kernels.h); the other kernels here
 * work on one token at a time.
 */
#ifndef HL_CPU_H
#define HL_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "../../util/dtype.h"
#include "../../util/pool.h"

typedef struct hl_mat {
    const void *data;
    hl_dtype type;
    int n_in;         /* row length (ne[0]) */
    int n_out;        /* rows (ne[1]) */
    size_t row_bytes;
    /* Optional copy re-laid in 8-row groups (repack.h); when set, the
     * matmul reads it instead of data. */
    const void *packed;
    size_t group_bytes;
} hl_mat;

/* Floats of scratch hl_cpu_matmul needs for up to n_tok tokens of rows of
 * length n_in on n_threads threads. */
size_t hl_cpu_matmul_scratch(int n_in, int n_tok, int n_threads);

/* y[t * w->n_out + o] = dot(W row o, x + t * w->n_in) for t < n_tok.
 * The activations are first rounded to the type the weight type's dot
 * product pairs with (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
 * K-quants, F16 / BF16 for those), as llama.cpp's CPU backend does, so the
 * two engines agree to the rounding of a float sum.
 * scratch: hl_cpu_matmul_scratch(w->n_in, n_tok, threads) floats. */
void hl_cpu_matmul(hl_pool *pool, const hl_mat *w, const float *x, int n_tok, float *y,
                   float *scratch);
/* The same for n_mats (1..4) matrices of equal n_in reading the same x
 * (q/k/v, gate/up): activations are quantized once per activation type and
 * all rows run as one pool job. y[m] receives matrix m's outputs. */
void hl_cpu_matmul_n(hl_pool *pool, const hl_mat *const *w, int n_mats, const float *x, int n_tok,
                     float *const *y, float *scratch);

/* Row r of w as floats (n_in of them). */
void hl_cpu_get_row(const hl_mat *w, int r, float *out);

/* out = x / rms(x) * w (w may be NULL: no weight). out may alias x. */
void hl_cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps);
/* Rope in two steps: the cos/sin table of one position (n_rot floats, cos
 * and sin interleaved), then the rotation of the n_rot leading dims of each
 * of n_heads heads of length head_dim: adjacent pairs, or (i, i + n_rot/2)
 * pairs when neox. One table serves every layer and head of a token. */
void hl_cpu_rope_table(float *cs, int n_rot, int pos, float base, float scale,
                       const float *freq_factors);
void hl_cpu_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox);

#endif
