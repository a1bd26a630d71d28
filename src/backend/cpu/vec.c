/* vec.c - the scalar float vector helpers and the run-time choice of the
 * helper table; see vec.h.
 *
 * The table is chosen once under pthread_once: AVX2 when the CPU (and OS)
 * support AVX2, FMA and F16C (the compiler's cpuid wrappers check XGETBV
 * too) and HL_CPU_PATH is not "scalar"; else scalar. The AVX2 code lives
 * in vec_avx2.c, compiled with those -m flags and only entered after this
 * check.
 *
 * Scalar dots keep LANES partial sums (element i goes to sum i % LANES),
 * added pairwise at the end, so their rounding error grows like n / LANES
 * rather than n, and they are the reference the AVX2 path is tested
 * against.
 */
#include "vec.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define LANES 8

static float lanes_total(float *s) {
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++) s[j] += s[j + width];
    return s[0];
}

static float dot_f32(const float *a, const float *b, int n) {
    float s[LANES] = {0};
    for (int i = 0; i < n; i++) s[i % LANES] += a[i] * b[i];
    return lanes_total(s);
}

static float dot_f16_f32(const uint16_t *a_half, const float *b, int n) {
    float s[LANES] = {0};
    for (int i = 0; i < n; i++) s[i % LANES] += hl_f16_to_f32(a_half[i]) * b[i];
    return lanes_total(s);
}

static void mad_f32(float *y, const float *x, float a, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void mad_f16(float *y, const uint16_t *x_half, float a, int n) {
    for (int i = 0; i < n; i++) y[i] += a * hl_f16_to_f32(x_half[i]);
}

static void scale_f32(float *y, float a, int n) {
    for (int i = 0; i < n; i++) y[i] *= a;
}

float hl_vec_expf(float x) {
    if (x != x) return x;
    float z = fmaf(x, HL_EXP_LOG2E, HL_EXP_SHIFT), n = z - HL_EXP_SHIFT;
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    float b = fmaf(-n, HL_EXP_LN2_HI, x);
    b = fmaf(-n, HL_EXP_LN2_LO, b);
    float u = b * b;
    float p = fmaf(fmaf(fmaf(HL_EXP_C5, b, HL_EXP_C4), u, fmaf(HL_EXP_C3, b, HL_EXP_C2)), u,
                   fmaf(HL_EXP_C1, b, 1.0f));
    return ldexpf(p, (int)n); /* one rounding, as the AVX2 path's two steps */
}

static void silu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + hl_vec_expf(0.0f - g[i])) * u[i];
}

/* GELU as llama.cpp's CPU backend computes it, so that our logits can match
 * its: the tanh form evaluated at x rounded to half and the result rounded
 * to half (one table entry per half), 0 at or below -10 and x at or above
 * 10. The table is written once, under the same pthread_once as the path
 * choice, before any table of ops is handed out. */
float hl_gelu_half_table[65536];

static float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

static void fill_gelu_table(void) {
    for (uint32_t h = 0; h < 65536; h++)
        hl_gelu_half_table[h] = hl_f16_to_f32(hl_f32_to_f16(gelu_tanh(hl_f16_to_f32((uint16_t)h))));
}

static void gelu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) {
        float x = g[i];
        g[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * u[i] : hl_gelu_half_table[hl_f32_to_f16(x)] * u[i];
    }
}

static void softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = hl_vec_expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static void dots_f32(float *out, const float *rows, int n, const float *q, int dim) {
    for (int i = 0; i < n; i++) out[i] = dot_f32(rows + (size_t)i * dim, q, dim);
}

static void dots_f16(float *out, const uint16_t *rows, int n, const float *q, int dim) {
    for (int i = 0; i < n; i++) out[i] = dot_f16_f32(rows + (size_t)i * dim, q, dim);
}

static void wsum_f32(float *out, const float *rows, int n, const float *w, int dim) {
    for (int i = 0; i < n; i++) mad_f32(out, rows + (size_t)i * dim, w[i], dim);
}

static void wsum_f16(float *out, const uint16_t *rows, int n, const float *w, int dim) {
    for (int i = 0; i < n; i++) mad_f16(out, rows + (size_t)i * dim, w[i], dim);
}

static void round_f16(float *x, int n) {
    for (int i = 0; i < n; i++) x[i] = hl_f16_to_f32(hl_f32_to_f16(x[i]));
}

static const hl_vec_ops scalar_table = {
    .name = "scalar",
    .dot_f32 = dot_f32,
    .dot_f16_f32 = dot_f16_f32,
    .mad_f32 = mad_f32,
    .mad_f16 = mad_f16,
    .scale_f32 = scale_f32,
    .silu_mul = silu_mul,
    .gelu_mul = gelu_mul,
    .softmax = softmax,
    .dots_f32 = dots_f32,
    .dots_f16 = dots_f16,
    .wsum_f32 = wsum_f32,
    .wsum_f16 = wsum_f16,
    .round_f16 = round_f16,
};

static const hl_vec_ops *avx2; /* NULL when the CPU lacks it */
static const hl_vec_ops *best;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void choose(void) {
    fill_gelu_table();
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && hl_cpu_has_f16c())
        avx2 = &hl_vec_avx2_table;
#endif
    const char *want = getenv("HL_CPU_PATH");
    best = avx2 && !(want && strcmp(want, "scalar") == 0) ? avx2 : &scalar_table;
}

const hl_vec_ops *hl_vec_ops_best(void) {
    pthread_once(&once, choose);
    return best;
}

const hl_vec_ops *hl_vec_ops_scalar(void) {
    return &scalar_table;
}

const hl_vec_ops *hl_vec_ops_avx2(void) {
    pthread_once(&once, choose);
    return avx2;
}

float hl_vec_dot_f32(const float *a, const float *b, int n) {
    return hl_vec_ops_best()->dot_f32(a, b, n);
}

float hl_vec_dot_f16_f32(const uint16_t *a_half, const float *b, int n) {
    return hl_vec_ops_best()->dot_f16_f32(a_half, b, n);
}

void hl_vec_mad_f32(float *y, const float *x, float a, int n) {
    hl_vec_ops_best()->mad_f32(y, x, a, n);
}

void hl_vec_mad_f16(float *y, const uint16_t *x_half, float a, int n) {
    hl_vec_ops_best()->mad_f16(y, x_half, a, n);
}

void hl_vec_scale_f32(float *y, float a, int n) {
    hl_vec_ops_best()->scale_f32(y, a, n);
}
