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
    /* The activations and the softmax, with e^x from hl_vec_expf on every
     * path (the same bits). */
    void (*silu_mul)(float *g, const float *u, int n); /* g = silu(g) * u */
    /* g = gelu_tanh(g) * u, with gelu_tanh(x) read from a table at half(x)
     * and rounded to half as llama.cpp does (exact 0 / x beyond -10 / 10) */
    void (*gelu_mul)(float *g, const float *u, int n);
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

/* e^x as llama.cpp's AVX-512 CPU backend computes it for SiLU and softmax
 * (the algorithm of Arm's optimized routines: within 2.2 ulp of e^x as
 * measured, 0 below about -104, +inf above about 88.4), so that our activations round as its
 * do. The constants are that algorithm's; every path uses them. */
#define HL_EXP_SHIFT 0x1.8p23f
#define HL_EXP_LOG2E 0x1.715476p+0f
#define HL_EXP_LN2_HI 0x1.62e4p-1f
#define HL_EXP_LN2_LO 0x1.7f7d1cp-20f
#define HL_EXP_C1 0x1.ffffecp-1f
#define HL_EXP_C2 0x1.fffdb6p-2f
#define HL_EXP_C3 0x1.555e66p-3f
#define HL_EXP_C4 0x1.573e2ep-5f
#define HL_EXP_C5 0x1.0e4020p-7f
float hl_vec_expf(float x);

/* The table the functions above use (to call through it in a hot loop). */
const hl_vec_ops *hl_vec_ops_best(void);
/* One path's table explicitly (tests, benchmarks): the scalar one always;
 * the AVX2 one, or NULL when this CPU lacks AVX2, FMA or F16C. */
const hl_vec_ops *hl_vec_ops_scalar(void);
const hl_vec_ops *hl_vec_ops_avx2(void);

/* gelu_tanh at every half, rounded to half; written before the first table
 * of ops is returned (vec.c). */
extern float hl_gelu_half_table[65536];

/* Defined in vec_avx2.c; used only by vec.c, after checking the CPU. */
extern const hl_vec_ops hl_vec_avx2_table;

#endif
