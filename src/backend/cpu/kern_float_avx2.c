/* kern_float_avx2.c - AVX2 + FMA + F16C kernels of the float weight types
 * F32, F16 and BF16 and of the F16 / BF16 activation quantizers; see
 * kernels.h. Entered only on CPUs with those features.
 *
 * Dot: 16 elements at a time are widened to two float vectors (F32: two
 * loads; F16: two vcvtph2ps; BF16: one 256-bit load whose 32-bit lanes each
 * hold an even element in the low half and an odd one in the high half, so
 * a left shift by 16 gives the even elements' floats and clearing the low
 * half the odd ones', exactly and without shuffles), then multiplied and
 * added with FMA into float accumulators. Each row keeps 4 accumulators:
 * 16-element step s of the row's first n / 32 * 32 elements goes into
 * accumulators 2 (s % 2) and 2 (s % 2) + 1, in order; the elements past
 * those through a zero-padded copy into the first two, so n can be any
 * count; the 4 are then added in order, and across lanes. That order is
 * the same for every n_a (batch invariance: a row's result does not
 * depend on the other rows of the call); the weight vectors are loaded
 * once for all n_a activation rows. The result differs from the scalar
 * path's only in the order of the float additions.
 *
 * Quantizers: F16 by vcvtps2ph with round-to-nearest-even, bit-identical to
 * hl_f32_to_f16; BF16 by adding 0x7fff plus the kept lowest bit and
 * dropping 16 bits (round to nearest even), with a NaN kept as a quiet NaN
 * (upper half | 0x40), bit-identical to hl_f32_to_bf16. F32 (a copy) keeps
 * the scalar entry.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"

/* 16 elements widened to floats as two vectors. Which element lands in
 * which lane depends on the type, but is the same for weights and
 * activations, which is all a dot product needs. */
typedef struct pair {
    __m256 lo, hi;
} pair;
typedef pair (*load16_fn)(const void *row, int i);

static inline pair load16_f32(const void *row, int i) {
    const float *p = (const float *)row + i;
    return (pair){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
static inline pair load16_f16(const void *row, int i) {
    const __m128i *p = (const __m128i *)((const uint16_t *)row + i);
    return (pair){_mm256_cvtph_ps(_mm_loadu_si128(p)), _mm256_cvtph_ps(_mm_loadu_si128(p + 1))};
}
/* Each 32-bit lane holds an even element (low half) and an odd one (high
 * half): shifting left 16 gives the even one's float, masking the low half
 * off the odd one's. No shuffles. */
static inline pair load16_bf16(const void *row, int i) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
    return (pair){_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)),
                  _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(-65536)))};
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* acc[r][2 p] and acc[r][2 p + 1] += 16-element steps p, p + 2, p + 4, ...
 * of the first `body` elements (a multiple of 32), for rows r < n_a. */
static inline __attribute__((always_inline)) void dot_steps(int body, const int p, const void *w,
                                                            const char *const *row, const int n_a,
                                                            __m256 acc[][4], load16_fn load) {
    __m256 lo[HL_DOT_MAX_A], hi[HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int r = 0; r < n_a; r++) lo[r] = acc[r][2 * p], hi[r] = acc[r][2 * p + 1];
    for (int i = 16 * p; i < body; i += 32) {
        const pair wv = load(w, i);
#pragma GCC unroll 4
        for (int r = 0; r < n_a; r++) {
            const pair av = load(row[r], i);
            lo[r] = _mm256_fmadd_ps(wv.lo, av.lo, lo[r]);
            hi[r] = _mm256_fmadd_ps(wv.hi, av.hi, hi[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < n_a; r++) acc[r][2 * p] = lo[r], acc[r][2 * p + 1] = hi[r];
}

/* Shared body, inlined per type with constant n_a. Each accumulator sees
 * its steps in the same order whatever n_a: for 1 or 2 rows the even and
 * odd steps interleave (4 independent FMA chains for one row, decode); 3
 * or 4 rows x 4 accumulators would not fit the 16 registers, so the even
 * steps run as one pass and the odd steps as a second. */
static inline __attribute__((always_inline)) void dot_rows(int n, const void *w, const void *a,
                                                           size_t a_stride, const int n_a,
                                                           float *out, size_t out_stride,
                                                           const size_t elem, load16_fn load) {
    __m256 acc[HL_DOT_MAX_A][4];
    const char *row[HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int r = 0; r < n_a; r++) {
        row[r] = (const char *)a + (size_t)r * a_stride;
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) acc[r][u] = _mm256_setzero_ps();
    }
    const int body = n / 32 * 32;
    if (n_a <= 2) {
        for (int i = 0; i < body; i += 32) {
#pragma GCC unroll 2
            for (int u = 0; u < 2; u++) {
                const pair wv = load(w, i + 16 * u);
#pragma GCC unroll 2
                for (int r = 0; r < n_a; r++) {
                    const pair av = load(row[r], i + 16 * u);
                    acc[r][2 * u] = _mm256_fmadd_ps(wv.lo, av.lo, acc[r][2 * u]);
                    acc[r][2 * u + 1] = _mm256_fmadd_ps(wv.hi, av.hi, acc[r][2 * u + 1]);
                }
            }
        }
    } else {
        dot_steps(body, 0, w, row, n_a, acc, load);
        dot_steps(body, 1, w, row, n_a, acc, load);
    }
    for (int i = body; i < n; i += 16) { /* a whole step left, then the zero-padded last one */
        unsigned char wt[64] = {0}, at[64] = {0};
        const int m = n - i < 16 ? n - i : 16;
        memcpy(wt, (const char *)w + (size_t)i * elem, (size_t)m * elem);
        const pair wv = load(wt, 0);
#pragma GCC unroll 4
        for (int r = 0; r < n_a; r++) {
            memcpy(at, row[r] + (size_t)i * elem, (size_t)m * elem);
            const pair av = load(at, 0);
            acc[r][0] = _mm256_fmadd_ps(wv.lo, av.lo, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(wv.hi, av.hi, acc[r][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < n_a; r++) {
#pragma GCC unroll 4
        for (int u = 1; u < 4; u++) acc[r][0] = _mm256_add_ps(acc[r][0], acc[r][u]);
        out[(size_t)r * out_stride] = hsum(acc[r][0]);
    }
}

/* One kernel per type, specialised for each n_a. */
#define DOT_KERNEL(name, elem, load)                                                               \
    static void dot_##name(int n, const void *w, const void *a, size_t a_stride, int n_a,          \
                           float *out, size_t out_stride) {                                        \
        switch (n_a) {                                                                             \
        case 1:                                                                                    \
            dot_rows(n, w, a, a_stride, 1, out, out_stride, elem, load);                           \
            break;                                                                                 \
        case 2:                                                                                    \
            dot_rows(n, w, a, a_stride, 2, out, out_stride, elem, load);                           \
            break;                                                                                 \
        case 3:                                                                                    \
            dot_rows(n, w, a, a_stride, 3, out, out_stride, elem, load);                           \
            break;                                                                                 \
        default:                                                                                   \
            dot_rows(n, w, a, a_stride, 4, out, out_stride, elem, load);                           \
            break;                                                                                 \
        }                                                                                          \
    }

DOT_KERNEL(f32, sizeof(float), load16_f32)
DOT_KERNEL(f16, sizeof(uint16_t), load16_f16)
DOT_KERNEL(bf16, sizeof(uint16_t), load16_bf16)

/* 8 floats to 8 halves, round to nearest even. */
static inline __m128i to_f16(__m256 v) {
    return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
}

/* 8 floats to 8 bfloat16 values (in the low 16 bits of each lane). */
static inline __m256i to_bf16_lanes(__m256 v) {
    const __m256i x = _mm256_castps_si256(v), hi = _mm256_srli_epi32(x, 16);
    const __m256i bias =
        _mm256_add_epi32(_mm256_and_si256(hi, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7fff));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, bias), 16);
    const __m256i qnan = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_epi8(rounded, qnan, is_nan);
}

/* 16 floats to 16 bfloat16 values, in order. */
static inline __m256i to_bf16(__m256 lo, __m256 hi) {
    const __m256i packed = _mm256_packus_epi32(to_bf16_lanes(lo), to_bf16_lanes(hi));
    return _mm256_permute4x64_epi64(packed, 0xd8); /* undo packus's per-lane order */
}

static void quant_f16(const float *x, void *dst, int n) {
    uint16_t *h = dst;
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(h + i), to_f16(_mm256_loadu_ps(x + i)));
    if (i < n) {
        float xt[8] = {0};
        uint16_t ht[8];
        memcpy(xt, x + i, sizeof(float) * (size_t)(n - i));
        _mm_storeu_si128((__m128i *)ht, to_f16(_mm256_loadu_ps(xt)));
        memcpy(h + i, ht, sizeof(uint16_t) * (size_t)(n - i));
    }
}

static void quant_bf16(const float *x, void *dst, int n) {
    uint16_t *h = dst;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(h + i),
                            to_bf16(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8)));
    if (i < n) {
        float xt[16] = {0};
        uint16_t ht[16];
        memcpy(xt, x + i, sizeof(float) * (size_t)(n - i));
        _mm256_storeu_si256((__m256i *)ht, to_bf16(_mm256_loadu_ps(xt), _mm256_loadu_ps(xt + 8)));
        memcpy(h + i, ht, sizeof(uint16_t) * (size_t)(n - i));
    }
}

void hl_kernels_fill_avx2_float(hl_kernels *k) {
    k->dot[HL_F32] = dot_f32;
    k->dot[HL_F16] = dot_f16;
    k->dot[HL_BF16] = dot_bf16;
    k->quant[HL_F16] = quant_f16;
    k->quant[HL_BF16] = quant_bf16;
}
