/* kern_float_avx512.c - AVX-512 (F/BW/VL) kernels of the float weight types
 * F32, F16 and BF16 and of the F16 / BF16 activation quantizers; see
 * kernels.h. Entered only on CPUs with the avx512 path's features.
 *
 * The same math as kern_float_avx2.c, 32 elements per step as two 16-float
 * vectors: F16 widened by vcvtph2ps; BF16 from one 512-bit load, the even
 * elements by shifting each 32-bit lane left 16 and the odd ones by clearing
 * its low half (exact; AVX512_BF16's vdpbf16ps is not used because it is
 * not among this path's guaranteed features); then float FMA into
 * accumulators, each weight vector loaded once for all n_a activation rows.
 * Each row keeps 4 accumulators: 32-element step s of the row's first
 * n / 64 * 64 elements goes into accumulators 2 (s % 2) and 2 (s % 2) + 1,
 * in order; the elements past those 32 at a time into the first two, the
 * last step with masked loads (the masked-off lanes read as zero and touch
 * no memory), so n can be any count; the 4 are then added in order, and
 * across lanes. That order is the same for every n_a (batch invariance: a
 * row's result does not depend on the other rows of the call; 4 rows x 4
 * accumulators fit the 32 registers). The result differs from the scalar
 * path's only in the order of the float additions.
 *
 * Quantizers: F16 by vcvtps2ph, round to nearest even; BF16 by adding
 * 0x7fff plus the kept lowest bit and narrowing with vpmovdw, a NaN kept
 * as a quiet NaN (upper half | 0x40). Both are bit-identical to quant.c's
 * converters; tails use masked loads and stores. F32 keeps the scalar copy.
 */
#include <immintrin.h>

#include "kernels.h"

/* 32 elements widened to floats as two vectors; lanes outside the mask m
 * read as zero and touch no memory. Which element lands in which lane
 * depends on the type, but is the same for weights and activations, which
 * is all a dot product needs. */
typedef struct pair {
    __m512 lo, hi;
} pair;
typedef pair (*load32_fn)(const void *row, int i, __mmask32 m);

static inline pair load32_f32(const void *row, int i, __mmask32 m) {
    const float *p = (const float *)row + i;
    return (pair){_mm512_maskz_loadu_ps((__mmask16)m, p),
                  _mm512_maskz_loadu_ps((__mmask16)(m >> 16), p + 16)};
}
static inline pair load32_f16(const void *row, int i, __mmask32 m) {
    const uint16_t *p = (const uint16_t *)row + i;
    return (pair){_mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)m, p)),
                  _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)(m >> 16), p + 16))};
}
/* Each 32-bit lane holds an even element (low half) and an odd one (high
 * half): shifting left 16 gives the even one's float, masking the low half
 * off the odd one's. No shuffles. */
static inline pair load32_bf16(const void *row, int i, __mmask32 m) {
    const __m512i v = _mm512_maskz_loadu_epi16(m, (const uint16_t *)row + i);
    return (pair){_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)),
                  _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(-65536)))};
}

#define UNROLL 2 /* steps per loop iteration, each feeding two accumulators per row */

/* Shared body, inlined per type with constant n_a (two 32-element steps
 * per iteration; each step feeds two accumulators per row). */
static inline __attribute__((always_inline)) void dot_rows(int n, const void *w, const void *a,
                                                           size_t a_stride, const int n_a,
                                                           float *out, size_t out_stride,
                                                           load32_fn load) {
    const __mmask32 all = 0xffffffffu;
    __m512 acc[HL_DOT_MAX_A][4];
    const char *row[HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int r = 0; r < n_a; r++) {
        row[r] = (const char *)a + (size_t)r * a_stride;
#pragma GCC unroll 4
        for (int u = 0; u < 2 * UNROLL; u++) acc[r][u] = _mm512_setzero_ps();
    }
    int i = 0;
    for (; i + 32 * UNROLL <= n; i += 32 * UNROLL) {
#pragma GCC unroll 4
        for (int u = 0; u < UNROLL; u++) {
            const pair wv = load(w, i + 32 * u, all);
#pragma GCC unroll 4
            for (int r = 0; r < n_a; r++) {
                const pair av = load(row[r], i + 32 * u, all);
                acc[r][2 * u] = _mm512_fmadd_ps(wv.lo, av.lo, acc[r][2 * u]);
                acc[r][2 * u + 1] = _mm512_fmadd_ps(wv.hi, av.hi, acc[r][2 * u + 1]);
            }
        }
    }
    for (; i < n; i += 32) { /* whole steps left, then the masked last one */
        const __mmask32 m = n - i >= 32 ? all : (__mmask32)((1u << (n - i)) - 1);
        const pair wv = load(w, i, m);
#pragma GCC unroll 4
        for (int r = 0; r < n_a; r++) {
            const pair av = load(row[r], i, m);
            acc[r][0] = _mm512_fmadd_ps(wv.lo, av.lo, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(wv.hi, av.hi, acc[r][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < n_a; r++) {
#pragma GCC unroll 4
        for (int u = 1; u < 2 * UNROLL; u++) acc[r][0] = _mm512_add_ps(acc[r][0], acc[r][u]);
        out[(size_t)r * out_stride] = _mm512_reduce_add_ps(acc[r][0]);
    }
}

/* One kernel per type, specialised for each n_a. */
#define DOT_KERNEL(name, load)                                                                     \
    static void dot_##name(int n, const void *w, const void *a, size_t a_stride, int n_a,          \
                           float *out, size_t out_stride) {                                        \
        switch (n_a) {                                                                             \
        case 1:                                                                                    \
            dot_rows(n, w, a, a_stride, 1, out, out_stride, load);                                 \
            break;                                                                                 \
        case 2:                                                                                    \
            dot_rows(n, w, a, a_stride, 2, out, out_stride, load);                                 \
            break;                                                                                 \
        case 3:                                                                                    \
            dot_rows(n, w, a, a_stride, 3, out, out_stride, load);                                 \
            break;                                                                                 \
        default:                                                                                   \
            dot_rows(n, w, a, a_stride, 4, out, out_stride, load);                                 \
            break;                                                                                 \
        }                                                                                          \
    }

DOT_KERNEL(f32, load32_f32)
DOT_KERNEL(f16, load32_f16)
DOT_KERNEL(bf16, load32_bf16)

static inline __mmask16 tail_mask(int left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

static void quant_f16(const float *x, void *dst, int n) {
    uint16_t *h = dst;
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm256_mask_storeu_epi16(h + i, m,
                                 _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
}

/* 16 floats to 16 bfloat16 values. */
static inline __m256i to_bf16(__m512 v) {
    const __m512i x = _mm512_castps_si512(v), hi = _mm512_srli_epi32(x, 16);
    const __m512i bias =
        _mm512_add_epi32(_mm512_and_si512(hi, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7fff));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(x, bias), 16);
    const __m512i qnan = _mm512_or_si512(hi, _mm512_set1_epi32(0x40));
    const __mmask16 is_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(is_nan, rounded, qnan));
}

static void quant_bf16(const float *x, void *dst, int n) {
    uint16_t *h = dst;
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = tail_mask(n - i);
        _mm256_mask_storeu_epi16(h + i, m, to_bf16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void hl_kernels_fill_avx512_float(hl_kernels *k) {
    k->dot[HL_F32] = dot_f32;
    k->dot[HL_F16] = dot_f16;
    k->dot[HL_BF16] = dot_bf16;
    k->quant[HL_F16] = quant_f16;
    k->quant[HL_BF16] = quant_bf16;
}
