/* vec_avx2.c - the AVX2 + FMA + F16C float vector helpers; see vec.h.
 * Compiled with those -m flags; vec.c enters it only on CPUs that have
 * them.
 *
 * 8 floats per vector. Halves are widened with vcvtph2ps (exact). Dots
 * keep four vector accumulators (32 partial sums, enough independent FMA
 * chains to hide the FMA latency) and add them at the end; the mads are
 * y = fma(a, x, y) per element. The last n % 8 elements use masked float
 * loads and stores (vmaskmovps: masked-off lanes read as zero and are
 * neither read nor written in memory) and, for halves, a zero-padded copy.
 */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "vec.h"

/* Lanes 0..m-1 of a 32-bit mask set, for 0 <= m < 8. */
static inline __m256i first_lanes(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* 8 halves widened to floats. */
static inline __m256 load8_f16(const uint16_t *h) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

/* The first m < 8 halves widened, the other lanes zero. */
static inline __m256 load_f16_tail(const uint16_t *h, int m) {
    uint16_t t[8] = {0};
    memcpy(t, h, sizeof(uint16_t) * (size_t)m);
    return load8_f16(t);
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hsum4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static float dot_f32(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        const __m256i m = first_lanes(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum4(s0, s1, s2, s3);
}

static float dot_f16_f32(const uint16_t *a_half, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load8_f16(a_half + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(load8_f16(a_half + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(load8_f16(a_half + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(load8_f16(a_half + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(load8_f16(a_half + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        const __m256 bt = _mm256_maskload_ps(b + i, first_lanes(n - i));
        s1 = _mm256_fmadd_ps(load_f16_tail(a_half + i, n - i), bt, s1);
    }
    return hsum4(s0, s1, s2, s3);
}

static void mad_f32(float *y, const float *x, float a, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        const __m256i m = first_lanes(n - i);
        const __m256 r =
            _mm256_fmadd_ps(av, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, r);
    }
}

static void mad_f16(float *y, const uint16_t *x_half, float a, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, load8_f16(x_half + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        const __m256i m = first_lanes(n - i);
        const __m256 r =
            _mm256_fmadd_ps(av, load_f16_tail(x_half + i, n - i), _mm256_maskload_ps(y + i, m));
        _mm256_maskstore_ps(y + i, m, r);
    }
}

static void scale_f32(float *y, float a, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), av));
    if (i < n) {
        const __m256i m = first_lanes(n - i);
        _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(_mm256_maskload_ps(y + i, m), av));
    }
}

/* e^x for 8 floats, bit for bit the scalar path's hl_vec_expf (vec.h):
 * n = nearest(x log2 e) by the 1.5 * 2^23 rounding trick, b = x - n ln2 in
 * two fused steps, e^b by a degree-5 polynomial in Estrin form, times 2^n
 * in two exact-then-rounded steps (so a subnormal result is rounded once,
 * as a scale instruction would). |n| > 192 gives 0 or +inf; NaN stays NaN. */
static inline __m256 exp8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(HL_EXP_SHIFT);
    __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(HL_EXP_LOG2E), shift);
    __m256 n = _mm256_sub_ps(z, shift);
    __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(HL_EXP_LN2_HI), x);
    b = _mm256_fnmadd_ps(n, _mm256_set1_ps(HL_EXP_LN2_LO), b);
    __m256 u = _mm256_mul_ps(b, b);
    __m256 p45 = _mm256_fmadd_ps(_mm256_set1_ps(HL_EXP_C5), b, _mm256_set1_ps(HL_EXP_C4));
    __m256 p23 = _mm256_fmadd_ps(_mm256_set1_ps(HL_EXP_C3), b, _mm256_set1_ps(HL_EXP_C2));
    __m256 p01 = _mm256_fmadd_ps(_mm256_set1_ps(HL_EXP_C1), b, _mm256_set1_ps(1.0f));
    __m256 p = _mm256_fmadd_ps(_mm256_fmadd_ps(p45, u, p23), u, p01);
    __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), n), _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    __m256i ki = _mm256_cvtps_epi32(_mm256_andnot_ps(big, n)); /* 0 where |n| > 192 or NaN */
    __m256i k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, _mm256_set1_epi32(127)), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    __m256 edge = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                   _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    y = _mm256_blendv_ps(y, edge, big);
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static inline __m256 silu8(__m256 x) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* gelu(x) * u with the table's GELU (vec.h): exactly +0 at or below -10,
 * x * u at or above 10. */
static inline __m256 gelu_mul8(__m256 x, __m256 u) {
    __m256i h = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    __m256 y = _mm256_i32gather_ps(hl_gelu_half_table, h, 4);
    y = _mm256_mul_ps(_mm256_blendv_ps(y, x, _mm256_cmp_ps(x, _mm256_set1_ps(10.0f), _CMP_GE_OQ)), u);
    return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-10.0f), _CMP_LE_OQ), y);
}

static void silu_mul(float *g, const float *u, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    if (i < n) {
        __m256i m = first_lanes(n - i);
        __m256 v = silu8(_mm256_maskload_ps(g + i, m));
        _mm256_maskstore_ps(g + i, m, _mm256_mul_ps(v, _mm256_maskload_ps(u + i, m)));
    }
}

static void gelu_mul(float *g, const float *u, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, gelu_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
    if (i < n) {
        __m256i m = first_lanes(n - i);
        _mm256_maskstore_ps(g + i, m, gelu_mul8(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(u + i, m)));
    }
}

static void softmax(float *x, int n) {
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(x + i));
    float mx = -INFINITY, tail[8];
    _mm256_storeu_ps(tail, mx8);
    for (int j = 0; j < 8; j++) mx = tail[j] > mx ? tail[j] : mx;
    for (int j = i; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    __m256 m = _mm256_set1_ps(mx), sum8 = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        sum8 = _mm256_add_ps(sum8, e);
    }
    double sum = hsum(sum8);
    if (i < n) {
        __m256i lanes = first_lanes(n - i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, lanes), m));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(lanes));
        _mm256_maskstore_ps(x + i, lanes, e);
        sum += hsum(e);
    }
    scale_f32(x, (float)(1.0 / sum), n);
}

/* Attention over a cache block. Rows of a multiple of 8 values take the
 * register-blocked loops; other widths fall back to the row helpers. */
static void dots_f32(float *out, const float *rows, int n, const float *q, int dim) {
    for (int i = 0; i < n; i++) out[i] = dot_f32(rows + (size_t)i * dim, q, dim);
}

static void dots_f16(float *out, const uint16_t *rows, int n, const float *q, int dim) {
    if (dim % 8 || dim > 256) {
        for (int i = 0; i < n; i++) out[i] = dot_f16_f32(rows + (size_t)i * dim, q, dim);
        return;
    }
    for (int i = 0; i < n; i++) {
        const uint16_t *r = rows + (size_t)i * dim;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0;
        int d = 0;
        for (; d + 16 <= dim; d += 16) {
            s0 = _mm256_fmadd_ps(load8_f16(r + d), _mm256_loadu_ps(q + d), s0);
            s1 = _mm256_fmadd_ps(load8_f16(r + d + 8), _mm256_loadu_ps(q + d + 8), s1);
        }
        if (d < dim) s0 = _mm256_fmadd_ps(load8_f16(r + d), _mm256_loadu_ps(q + d), s0);
        out[i] = hsum(_mm256_add_ps(s0, s1));
    }
}

/* out[d..d+32) (+ out[d+32..d+64) when WIDE) += sum_i w[i] rows[i][same]
 * with out held in 4 (8) named registers: every element by one fused
 * multiply-add per row, rows in order. (An indexed register array here was
 * kept in memory by the compiler: a store and reload per row.) */
#define WSUM_CHUNK(LOAD, WIDE)                                                                     \
    do {                                                                                           \
        float *o = out + d;                                                                        \
        __m256 a0 = _mm256_loadu_ps(o), a1 = _mm256_loadu_ps(o + 8);                               \
        __m256 a2 = _mm256_loadu_ps(o + 16), a3 = _mm256_loadu_ps(o + 24);                         \
        __m256 a4 = a0, a5 = a0, a6 = a0, a7 = a0;                                                 \
        if (WIDE) {                                                                                \
            a4 = _mm256_loadu_ps(o + 32), a5 = _mm256_loadu_ps(o + 40);                            \
            a6 = _mm256_loadu_ps(o + 48), a7 = _mm256_loadu_ps(o + 56);                            \
        }                                                                                          \
        for (int i = 0; i < n; i++) {                                                              \
            const __m256 wv = _mm256_set1_ps(w[i]);                                                \
            const __typeof__(rows) r = rows + (size_t)i * dim + d;                                 \
            a0 = _mm256_fmadd_ps(wv, LOAD(r), a0);                                                 \
            a1 = _mm256_fmadd_ps(wv, LOAD(r + 8), a1);                                             \
            a2 = _mm256_fmadd_ps(wv, LOAD(r + 16), a2);                                            \
            a3 = _mm256_fmadd_ps(wv, LOAD(r + 24), a3);                                            \
            if (WIDE) {                                                                            \
                a4 = _mm256_fmadd_ps(wv, LOAD(r + 32), a4);                                        \
                a5 = _mm256_fmadd_ps(wv, LOAD(r + 40), a5);                                        \
                a6 = _mm256_fmadd_ps(wv, LOAD(r + 48), a6);                                        \
                a7 = _mm256_fmadd_ps(wv, LOAD(r + 56), a7);                                        \
            }                                                                                      \
        }                                                                                          \
        _mm256_storeu_ps(o, a0), _mm256_storeu_ps(o + 8, a1);                                      \
        _mm256_storeu_ps(o + 16, a2), _mm256_storeu_ps(o + 24, a3);                                \
        if (WIDE) {                                                                                \
            _mm256_storeu_ps(o + 32, a4), _mm256_storeu_ps(o + 40, a5);                            \
            _mm256_storeu_ps(o + 48, a6), _mm256_storeu_ps(o + 56, a7);                            \
        }                                                                                          \
    } while (0)

static void wsum_f32(float *out, const float *rows, int n, const float *w, int dim) {
    int d = 0;
    for (; d + 64 <= dim; d += 64) WSUM_CHUNK(_mm256_loadu_ps, true);
    for (; d + 32 <= dim; d += 32) WSUM_CHUNK(_mm256_loadu_ps, false);
    for (int i = 0; d < dim && i < n; i++) mad_f32(out + d, rows + (size_t)i * dim + d, w[i], dim - d);
}

static void wsum_f16(float *out, const uint16_t *rows, int n, const float *w, int dim) {
    int d = 0;
    for (; d + 64 <= dim; d += 64) WSUM_CHUNK(load8_f16, true);
    for (; d + 32 <= dim; d += 32) WSUM_CHUNK(load8_f16, false);
    for (int i = 0; d < dim && i < n; i++) mad_f16(out + d, rows + (size_t)i * dim + d, w[i], dim - d);
}

static void round_f16(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) {
        __m128i h = _mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT);
        x[i] = _mm_cvtss_f32(_mm_cvtph_ps(h));
    }
}

const hl_vec_ops hl_vec_avx2_table = {
    .name = "avx2",
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
