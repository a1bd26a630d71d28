/* vec.h - float vector helpers for the attention code (scores against an
 * F32 or F16 key row, weighted sums of F32 or F16 value rows, scaling),
 * with one table per instruction-set path chosen at run time.
 *
 *   float s = hl_vec_dot_f16_f32(k_half, q, head_dim) * scale;
 *   hl_vec_mad_f16(out, v_half, p, head_dim);            // out += p * v
 *   hl_vec_scale_f32(out, 1.0f / sum, head_dim);
 *
 * Paths: scalar (the portable reference) and AVX2 (+ FMA + F16C). The
 * best one this CPU runs is chosen once, thread-safely, on first use;
 * HL_CPU_PATH=scalar in the environment forces the scalar one. Every n >= 0
 * is valid and no pointer needs more than its element's alignment. Dots
 * accumulate in float with several partial sums (order differs by path:
 * results agree to ~1e-6 relative to sum |a_i b_i|); the mad helpers use a
 * fused multiply-add on the AVX2 path and a rounded product on the scalar
 * one. Halves are IEEE binary16. All functions are pure apart from writing
 * y: thread-safe, no allocation.
 */
#ifndef HL_VEC_H
#define HL_VEC_H

#include <stdint.h>

typedef struct hl_vec_ops {
    const char *name; /* "scalar", "avx2" */
    float (*dot_f32)(const float *a, const float *b, int n);
    float (*dot_f16_f32)(const uint16_t *a_half, const float *b, int n);
    void (*mad_f32)(float *y, const float *x, float a, int n);         /* y += a * x */
    void (*mad_f16)(float *y, const uint16_t *x_half, float a, int n); /* y += a * x */
    void (*scale_f32)(float *y, float a, int n);                       /* y *= a */
    /* The activations and the softmax; the AVX2 path's exp is a degree-6
     * polynomial after range reduction, within 2 ulp of expf. */
    void (*silu_mul)(float *g, const float *u, int n); /* g = silu(g) * u */
    void (*gelu_mul)(float *g, const float *u, int n); /* g = gelu_tanh(g) * u */
    void (*softmax)(float *x, int n);                  /* in place, n >= 1 */
    /* Attention over n contiguous rows of dim values (one cache block):
     * out[i] = row_i . q, and out += sum_i w[i] row_i. */
    void (*dots_f32)(float *out, const float *rows, int n, const float *q, int dim);
    void (*dots_f16)(float *out, const uint16_t *rows, int n, const float *q, int dim);
    void (*wsum_f32)(float *out, const float *rows, int n, const float *w, int dim);
    void (*wsum_f16)(float *out, const uint16_t *rows, int n, const float *w, int dim);
    void (*round_f16)(float *x, int n); /* x = float(half(x)), nearest even */
} hl_vec_ops;

/* sum a[i] * b[i] */
float hl_vec_dot_f32(const float *a, const float *b, int n);
/* sum float(a_half[i]) * b[i] */
float hl_vec_dot_f16_f32(const uint16_t *a_half, const float *b, int n);
/* y[i] += a * x[i] */
void hl_vec_mad_f32(float *y, const float *x, float a, int n);
/* y[i] += a * float(x_half[i]) */
void hl_vec_mad_f16(float *y, const uint16_t *x_half, float a, int n);
/* y[i] *= a */
void hl_vec_scale_f32(float *y, float a, int n);

/* The table the functions above use (to call through it in a hot loop). */
const hl_vec_ops *hl_vec_ops_best(void);
/* One path's table explicitly (tests, benchmarks): the scalar one always;
 * the AVX2 one, or NULL when this CPU lacks AVX2, FMA or F16C. */
const hl_vec_ops *hl_vec_ops_scalar(void);
const hl_vec_ops *hl_vec_ops_avx2(void);

/* Defined in vec_avx2.c; used only by vec.c, after checking the CPU. */
extern const hl_vec_ops hl_vec_avx2_table;

#endif
