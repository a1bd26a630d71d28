/* repack_avx2.c - AVX2 kernels on 8-row packed groups of Q4_0 and Q8_0
 * weights (layout and contract in repack.h).
 *
 * Math. Lane r of a group vector holds 4 consecutive codes of row r; the
 * 4 activation codes they meet are broadcast to every lane, and maddubs
 * (unsigned x signed bytes, pairs summed to i16) then madd with ones
 * (pairs of i16 summed to i32) leave in lane r the sum of those 4
 * products of row r. Activation codes are in [-127, 127].
 *   Q4_0: u = the nibble (value u - 8). A maddubs pair is at most
 *         2 * 15 * 127 = 3810, so the 8 vectors of a block are summed in
 *         i16 (< 2^15) and widened once; -8 * sum(a), taken for 8
 *         activation blocks at a time once per call, is added after.
 *   Q8_0: c = stored byte ^ 0x80 (signed); maddubs(|c|, a * sign(c)) has
 *         pairs up to 2 * 128 * 127 < 2^15 that two vectors would
 *         overflow, so each is widened before the sum.
 * All sums are exact. Then acc += (float)s * (d_w[0..7] * d_a), lane r
 * row r: no horizontal sums.
 *
 * Pure functions over caller memory: thread-safe, no allocation.
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "repack.h"

#define INLINE static inline __attribute__((always_inline))
#define BATCH 8 /* activation blocks summed together */

#include "repack_simd.h"

INLINE __m256i widen(__m256i p16) {
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* Per activation block j < n of a batch starting at ab: base[j] the
 * integer sum's correction (-8 * sum(a) for Q4_0, none for Q8_0), da[j]
 * its scale. */
typedef struct abatch {
    int32_t base[BATCH];
    float da[BATCH];
} abatch;

INLINE void act_batch(hl_dtype t, const hl_block_q8_0 *ab, int n, abatch *o) {
    const __m256i zero = _mm256_setzero_si256(), eight = _mm256_set1_epi8(8);
    __m256i v[BATCH];
    uint64_t lo = 0, hi = 0;
#pragma GCC unroll 8
    for (int j = 0; j < BATCH; j++) {
        v[j] = zero;
        if (j < n) {
            if (t == HL_Q4_0) {
                const __m256i a = _mm256_loadu_si256((const __m256i *)ab[j].qs);
                v[j] = widen(_mm256_maddubs_epi16(eight, a));
            }
            if (j < 4)
                lo |= load_u16(&ab[j].d) << 16 * j;
            else
                hi |= load_u16(&ab[j].d) << 16 * (j - 4);
        }
    }
    if (t == HL_Q4_0) _mm256_storeu_si256((__m256i *)o->base, _mm256_sub_epi32(zero, totals8(v)));
    const __m128i h = _mm_insert_epi64(_mm_cvtsi64_si128((long long)lo), (long long)hi, 1);
    _mm256_storeu_ps(o->da, _mm256_cvtph_ps(h));
}

INLINE __m256i bcast4(const int8_t *a) {
    return _mm256_set1_epi32((int)load_u32(a));
}

/* s[k] lane r: row r's exact integer sum over block b against activation
 * row k's block b (before the Q4_0 correction). */
INLINE void block_sums(hl_dtype t, const uint8_t *qb, const uint8_t *act, size_t act_stride,
                       int n_a, int b, __m256i s[HL_DOT_MAX_A]) {
    const int8_t *a[HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++) a[k] = ((const hl_block_q8_0 *)(act + k * act_stride))[b].qs;
    if (t == HL_Q4_0) {
        const __m256i low4 = _mm256_set1_epi8(0x0f);
        __m256i p[HL_DOT_MAX_A];
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) p[k] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qb + 32 * c));
            const __m256i lo = _mm256_and_si256(v, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 4
            for (int k = 0; k < n_a; k++) {
                p[k] = _mm256_add_epi16(p[k], _mm256_maddubs_epi16(lo, bcast4(a[k] + 4 * c)));
                p[k] = _mm256_add_epi16(p[k], _mm256_maddubs_epi16(hi, bcast4(a[k] + 16 + 4 * c)));
            }
        }
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) s[k] = widen(p[k]);
    } else {
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) s[k] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m256i w = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qb + 32 * c)),
                                               _mm256_set1_epi8((char)0x80));
            const __m256i mag = _mm256_abs_epi8(w);
#pragma GCC unroll 4
            for (int k = 0; k < n_a; k++) {
                const __m256i sa = _mm256_sign_epi8(bcast4(a[k] + 4 * c), w);
                s[k] = _mm256_add_epi32(s[k], widen(_mm256_maddubs_epi16(mag, sa)));
            }
        }
    }
}

/* Blocks b0 .. b0 + n - 1 (n <= BATCH) into acc. */
INLINE void run_batch(hl_dtype t, const uint8_t *grp, const uint8_t *act, size_t act_stride,
                      int n_a, int b0, int n, __m256 acc[HL_DOT_MAX_A]) {
    abatch ab[HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++)
        act_batch(t, (const hl_block_q8_0 *)(act + k * act_stride) + b0, n, &ab[k]);
    for (int j = 0; j < n; j++) {
        const int b = b0 + j;
        const uint8_t *blk = grp + (size_t)b * block_bytes(t);
        __m256i s[HL_DOT_MAX_A];
        block_sums(t, blk + codes_at(t), act, act_stride, n_a, b, s);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) {
            if (t == HL_Q4_0) s[k] = _mm256_add_epi32(s[k], _mm256_set1_epi32(ab[k].base[j]));
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k]),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(ab[k].da[j])), acc[k]);
        }
    }
}

#define PACKED_SELECTOR hl_packed_avx2
#include "repack_packed.h"
