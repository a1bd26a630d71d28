/* repack_avx512.c - AVX-512 VNNI kernels on 8-row packed groups of Q4_0
 * and Q8_0 weights (layout and contract in repack.h).
 *
 * Math. Lane r of a group vector holds 4 consecutive codes of row r as
 * unsigned bytes u: a Q4_0 nibble q (value q - 8) or a Q8_0 byte c + 128
 * (value c). For a block and an activation block a (codes in [-127, 127]):
 *   s = dpbusd(-off * sum(a), u_0, bcast(a_0..3)) ... u_7, bcast(a_28..31)
 * leaves in lane r the exact sum((u - off) a) of row r, off = 8 | 128 (a
 * lane stays under 2^31: 32 * 255 * 127 plus the offset term). sum(a) is
 * taken once per call for every activation block, 8 blocks at a time
 * (dpbusd with off, then a transposing reduction), so the correction only
 * costs the broadcast that starts each accumulator. Then
 *   acc += (float)s * (d_w[0..7] * d_a)
 * and acc's lane r is row r's result: no horizontal sums at all.
 *
 * 256-bit vectors. On the Zen-4-class CPU this was tuned on, where 512-bit
 * vpdpbusd runs at half the 256-bit rate, a 512-bit form (8-byte units,
 * row r in lanes 2r and 2r + 1, 64-bit activation broadcasts, the lane
 * pairs folded per block) measured no faster in decode or prefill, and one
 * dpbusd chain per block instead of two was 10% slower in prefill. The
 * per-call activation sums are about a fifth of the prefill time.
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

INLINE int offset(hl_dtype t) {
    return t == HL_Q4_0 ? 8 : 128;
}

/* Per activation block j < n of a batch starting at ab: base[j] =
 * -off * sum(a), da[j] = its scale. */
typedef struct abatch {
    int32_t base[BATCH];
    float da[BATCH];
} abatch;

INLINE void act_batch(hl_dtype t, const hl_block_q8_0 *ab, int n, abatch *o) {
    const __m256i zero = _mm256_setzero_si256(), off = _mm256_set1_epi8((char)offset(t));
    __m256i v[BATCH];
    uint64_t lo = 0, hi = 0;
#pragma GCC unroll 8
    for (int j = 0; j < BATCH; j++) {
        v[j] = zero;
        if (j < n) {
            v[j] = _mm256_dpbusd_epi32(zero, off, _mm256_loadu_si256((const __m256i *)ab[j].qs));
            if (j < 4)
                lo |= load_u16(&ab[j].d) << 16 * j;
            else
                hi |= load_u16(&ab[j].d) << 16 * (j - 4);
        }
    }
    _mm256_storeu_si256((__m256i *)o->base, _mm256_sub_epi32(zero, totals8(v)));
    const __m128i h = _mm_insert_epi64(_mm_cvtsi64_si128((long long)lo), (long long)hi, 1);
    _mm256_storeu_ps(o->da, _mm256_cvtph_ps(h));
}

/* The 8 code vectors of the block whose codes are at qb: u[c] meets
 * activation codes 4c..4c+3. */
INLINE void block_codes(hl_dtype t, const uint8_t *qb, __m256i u[8]) {
    if (t == HL_Q4_0) {
        const __m256i low4 = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qb + 32 * p));
            u[p] = _mm256_and_si256(v, low4);
            u[p + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        }
    } else {
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) u[c] = _mm256_loadu_si256((const __m256i *)(qb + 32 * c));
    }
}

/* Lane r: row r's exact integer sum against activation codes a. */
INLINE __m256i block_sum(const __m256i u[8], const int8_t *a, int32_t base) {
    __m256i s0 = _mm256_set1_epi32(base), s1 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 8; c += 2) {
        s0 = _mm256_dpbusd_epi32(s0, u[c], _mm256_set1_epi32((int)load_u32(a + 4 * c)));
        s1 = _mm256_dpbusd_epi32(s1, u[c + 1], _mm256_set1_epi32((int)load_u32(a + 4 * c + 4)));
    }
    return _mm256_add_epi32(s0, s1);
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
        __m256i u[8];
        block_codes(t, blk + codes_at(t), u);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) {
            const hl_block_q8_0 *a = (const hl_block_q8_0 *)(act + k * act_stride) + b;
            const __m256i s = block_sum(u, a->qs, ab[k].base[j]);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                     _mm256_mul_ps(dw, _mm256_set1_ps(ab[k].da[j])), acc[k]);
        }
    }
}

#define PACKED_SELECTOR hl_packed_avx512
#include "repack_packed.h"
