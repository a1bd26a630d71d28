/* kern_k235_avx512.c - AVX-512 (F, BW, VL, VNNI) dot kernels of Q2_K, Q3_K
 * and Q5_K against Q8_K activations.
 *
 * Contract: kernels.h's hl_vec_dot_fn; the same integer block sums as the
 * scalar reference (kern_k235.c), so results differ from it only in the
 * order of the float additions. Unaligned loads; never reads past a block.
 *
 * Math and layout: exactly as kern_k235_avx2.c (read that first), on the
 * same 256-bit vectors, with three AVX-512 instructions that shorten the
 * inner step: vpdpwssd (VNNI) multiplies the 16-bit pair sums of
 * vpmaddubsw by the sub-block scales and accumulates into 32-bit lanes in
 * one instruction (vpmaddwd + vpaddd on AVX2), and the extra high bit of
 * Q3_K/Q5_K codes is tested into a mask register (vptestmb) and added under
 * that mask. Q3_K's -4 * sum_s sc[s] * bsums[s] term starts each block's
 * integer sum, also by vpdpwssd. 512-bit vectors (64 codes per step) were
 * measured slower at n_a = 1 on Zen 4, where they execute as two halves,
 * so the path stays 256-bit.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define INLINE static inline __attribute__((always_inline))
/* Full unrolling of the short loops: constant shift counts and shuffle
 * masks, and per-row accumulators that live in registers. */
#ifdef __clang__
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 8")
#endif

static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float half_to_f32(uint16_t h) {
    return _cvtsh_ss(h);
}

/* A byte-shuffle mask that fills each 16-bit lane of the low 128 bits with
 * word lo and of the high 128 bits with word hi (words of one 128-bit lane). */
INLINE __m256i word_pick(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16((short)(2 * hi | (2 * hi + 1) << 8)),
                            _mm_set1_epi16((short)(2 * lo | (2 * lo + 1) << 8)));
}

/* v + add in the bytes whose bit `bit` of sel is set. */
INLINE __m256i add_where_bit(__m256i v, __m256i sel, int bit, int add) {
    const __mmask32 m = _mm256_test_epi8_mask(sel, _mm256_set1_epi8((char)(1 << bit)));
    return _mm256_mask_add_epi8(v, m, v, _mm256_set1_epi8((char)add));
}

/* The n_a activation blocks number i. */
INLINE void act_blocks(const void *a, size_t a_stride, const int n_a, int i,
                       const hl_block_q8_k **y) {
    UNROLL for (int r = 0; r < n_a; r++) {
        y[r] = (const hl_block_q8_k *)((const char *)a + (size_t)r * a_stride) + i;
    }
}

/* Integer accumulators per row: a block's chain of dependent vpdpwssd is
 * its critical path when n_a = 1, so that case splits it in two (the rows
 * already give n_a > 1 independent chains). Row r uses isum[r * k + j]. */
#define CHAINS(n_a) ((n_a) == 1 ? 2 : 1)

/* isum[r] += scale-weighted dot of 32 codes u with activations at offset off. */
INLINE void madd_rows(__m256i *isum, __m256i u, __m256i scale, const hl_block_q8_k **y,
                      const int n_a, int off) {
    const int k = CHAINS(n_a), j = (off / 32) % k;
    UNROLL for (int r = 0; r < n_a; r++) {
        const __m256i p =
            _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(y[r]->qs + off)));
        isum[r * k + j] = _mm256_dpwssd_epi32(isum[r * k + j], p, scale);
    }
}

/* Sums the chains of each row into isum[r]. */
INLINE void join_chains(__m256i *isum, const int n_a) {
    const int k = CHAINS(n_a);
    UNROLL for (int r = 0; r < n_a; r++) {
        __m256i t = isum[r * k];
        UNROLL for (int j = 1; j < k; j++) t = _mm256_add_epi32(t, isum[r * k + j]);
        isum[r] = t;
    }
}

/* acc[r] += (d * d_a) * isum[r] - (dmin * d_a) * (mins . bsums), with the
 * block's f16 d and dmin converted together. */
INLINE void finish_rows(__m256 *acc, const __m256i *isum, uint16_t d, uint16_t dmin, __m256i mins,
                        const hl_block_q8_k **y, const int n_a) {
    const __m128 d_dmin = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(d | (uint32_t)dmin << 16)));
    UNROLL for (int r = 0; r < n_a; r++) {
        const __m128 f = _mm_mul_ps(d_dmin, _mm_broadcast_ss(&y[r]->d));
        const __m256i msum =
            _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)y[r]->bsums));
        acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(isum[r]), acc[r]);
        acc[r] = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(f)),
                                  _mm256_cvtepi32_ps(msum), acc[r]);
    }
}

INLINE void store_rows(const __m256 *acc, const int n_a, float *out, size_t out_stride) {
    UNROLL for (int r = 0; r < n_a; r++) out[(size_t)r * out_stride] = hsum8(acc[r]);
}

/* --------------------------------------------------------------- Q2_K */

/* Element 128c + 32g + l has its code at bit 2g of qs[32c + l] and lies in
 * sub-block 8c + 2g + l/16; scales[s] holds sc (low nibble), mn (high). */
INLINE void q2_k_rows(int n, const hl_block_q2_k *x, const void *a, size_t a_stride, const int n_a,
                      float *out, size_t out_stride) {
    const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi16(0xf);
    __m256 acc[HL_DOT_MAX_A];
    UNROLL for (int r = 0; r < n_a; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < n / HL_QK_K; i++, x++) {
        const hl_block_q8_k *y[HL_DOT_MAX_A];
        act_blocks(a, a_stride, n_a, i, y);
        const __m256i sm = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
        const __m256i sc = _mm256_and_si256(sm, m15), mins = _mm256_srli_epi16(sm, 4);
        __m256i isum[HL_DOT_MAX_A];
        UNROLL for (int r = 0; r < HL_DOT_MAX_A; r++) isum[r] = _mm256_setzero_si256();
        const __m256i sc_lo = _mm256_permute4x64_epi64(sc, 0x44),
                      sc_hi = _mm256_permute4x64_epi64(sc, 0xee);
        UNROLL for (int c = 0; c < 2; c++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
            const __m256i half = c ? sc_hi : sc_lo;
            UNROLL for (int g = 0; g < 4; g++) {
                const __m256i u = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m3);
                const __m256i scale = _mm256_shuffle_epi8(half, word_pick(2 * g, 2 * g + 1));
                madd_rows(isum, u, scale, y, n_a, 128 * c + 32 * g);
            }
        }
        join_chains(isum, n_a);
        finish_rows(acc, isum, x->d, x->dmin, mins, y, n_a);
    }
    store_rows(acc, n_a, out, out_stride);
}

/* --------------------------------------------------------------- Q3_K */

/* The 16 six-bit scales, minus 32, as bytes: scale s has its low nibble in
 * byte s % 8 (high nibble for s >= 8) and its top two bits in byte
 * 8 + s % 4 at bit 2 * (s / 4). */
static __m128i q3_k_scales(const uint8_t *s) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s, 4);
    memcpy(&w1, s + 4, 4);
    memcpy(&w2, s + 8, 4);
    const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
    const __m128i v = _mm_setr_epi32(
        (int)((w0 & lo) | (w2 & hi) << 4), (int)((w1 & lo) | (w2 >> 2 & hi) << 4),
        (int)((w0 >> 4 & lo) | (w2 >> 4 & hi) << 4), (int)((w1 >> 4 & lo) | (w2 >> 6 & hi) << 4));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* Element 128c + 32g + l: low bits as Q2_K, 3rd bit at bit 4c + g of
 * hmask[l]. */
INLINE void q3_k_rows(int n, const hl_block_q3_k *x, const void *a, size_t a_stride, const int n_a,
                      float *out, size_t out_stride) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[HL_DOT_MAX_A];
    UNROLL for (int r = 0; r < n_a; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < n / HL_QK_K; i++, x++) {
        const hl_block_q8_k *y[HL_DOT_MAX_A];
        act_blocks(a, a_stride, n_a, i, y);
        const __m256i sc = _mm256_cvtepi8_epi16(q3_k_scales(x->scales));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x->hmask);
        const __m256i off = _mm256_mullo_epi16(sc, _mm256_set1_epi16(-4));
        __m256i isum[HL_DOT_MAX_A];
        UNROLL for (int r = 0; r < HL_DOT_MAX_A; r++) isum[r] = _mm256_setzero_si256();
        UNROLL for (int r = 0; r < n_a; r++) {
            const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[r]->bsums);
            isum[r * CHAINS(n_a)] = _mm256_dpwssd_epi32(isum[r * CHAINS(n_a)], bsums, off);
        }
        const __m256i sc_lo = _mm256_permute4x64_epi64(sc, 0x44),
                      sc_hi = _mm256_permute4x64_epi64(sc, 0xee);
        UNROLL for (int c = 0; c < 2; c++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
            const __m256i half = c ? sc_hi : sc_lo;
            UNROLL for (int g = 0; g < 4; g++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m3);
                const __m256i u = add_where_bit(lo, hm, 4 * c + g, 4);
                const __m256i scale = _mm256_shuffle_epi8(half, word_pick(2 * g, 2 * g + 1));
                madd_rows(isum, u, scale, y, n_a, 128 * c + 32 * g);
            }
        }
        join_chains(isum, n_a);
        const float d = half_to_f32(x->d);
        UNROLL for (int r = 0; r < n_a; r++) {
            const __m256 f = _mm256_set1_ps(d * y[r]->d);
            acc[r] = _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(isum[r]), acc[r]);
        }
    }
    store_rows(acc, n_a, out, out_stride);
}

/* --------------------------------------------------------------- Q5_K */

/* The 8 six-bit scales (low 8 bytes) and mins (high 8 bytes): entry j < 4
 * whole in bytes j (scale) and j + 4 (min); entry j >= 4 has its low
 * nibbles in byte j + 4 and its top bits in bits 6..7 of bytes j - 4
 * (scale) and j (min). */
static __m128i k4_scales_mins(const uint8_t *s) {
    uint32_t w0, w1, w2;
    memcpy(&w0, s, 4);
    memcpy(&w1, s + 4, 4);
    memcpy(&w2, s + 8, 4);
    const uint32_t six = 0x3f3f3f3f, lo = 0x0f0f0f0f, top = 0x03030303;
    return _mm_setr_epi32((int)(w0 & six), (int)((w2 & lo) | (w0 >> 6 & top) << 4), (int)(w1 & six),
                          (int)((w2 >> 4 & lo) | (w1 >> 6 & top) << 4));
}

/* Sub-blocks 2c and 2c + 1 take the low and high nibbles of qs[32c + l];
 * the 5th bit of sub-block t is bit t of qh[l]. */
INLINE void q5_k_rows(int n, const hl_block_q5_k *x, const void *a, size_t a_stride, const int n_a,
                      float *out, size_t out_stride) {
    const __m256i m15 = _mm256_set1_epi8(0xf);
    __m256 acc[HL_DOT_MAX_A];
    UNROLL for (int r = 0; r < n_a; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < n / HL_QK_K; i++, x++) {
        const hl_block_q8_k *y[HL_DOT_MAX_A];
        act_blocks(a, a_stride, n_a, i, y);
        const __m128i sm = k4_scales_mins(x->scales);
        const __m256i sc =
            _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm)); /* 8 scales per lane */
        const __m128i mn = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
        const __m256i mins =
            _mm256_set_m128i(_mm_unpackhi_epi16(mn, mn), _mm_unpacklo_epi16(mn, mn));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)x->qh);
        __m256i isum[HL_DOT_MAX_A];
        UNROLL for (int r = 0; r < HL_DOT_MAX_A; r++) isum[r] = _mm256_setzero_si256();
        UNROLL for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
            const __m256i u0 = add_where_bit(_mm256_and_si256(q, m15), hb, 2 * c, 16);
            const __m256i u1 =
                add_where_bit(_mm256_and_si256(_mm256_srli_epi16(q, 4), m15), hb, 2 * c + 1, 16);
            madd_rows(isum, u0, _mm256_shuffle_epi8(sc, word_pick(2 * c, 2 * c)), y, n_a, 64 * c);
            madd_rows(isum, u1, _mm256_shuffle_epi8(sc, word_pick(2 * c + 1, 2 * c + 1)), y, n_a,
                      64 * c + 32);
        }
        join_chains(isum, n_a);
        finish_rows(acc, isum, x->d, x->dmin, mins, y, n_a);
    }
    store_rows(acc, n_a, out, out_stride);
}

/* ------------------------------------------------------------- entries */

#define DOT_ENTRY(name, block_t)                                                                   \
    static void dot_##name(int n, const void *w, const void *a, size_t a_stride, int n_a,          \
                           float *out, size_t out_stride) {                                        \
        const block_t *x = w;                                                                      \
        switch (n_a) {                                                                             \
        case 1:                                                                                    \
            name##_rows(n, x, a, a_stride, 1, out, out_stride);                                    \
            break;                                                                                 \
        case 2:                                                                                    \
            name##_rows(n, x, a, a_stride, 2, out, out_stride);                                    \
            break;                                                                                 \
        case 3:                                                                                    \
            name##_rows(n, x, a, a_stride, 3, out, out_stride);                                    \
            break;                                                                                 \
        default:                                                                                   \
            name##_rows(n, x, a, a_stride, 4, out, out_stride);                                    \
            break;                                                                                 \
        }                                                                                          \
    }

DOT_ENTRY(q2_k, hl_block_q2_k)
DOT_ENTRY(q3_k, hl_block_q3_k)
DOT_ENTRY(q5_k, hl_block_q5_k)

void hl_kernels_fill_avx512_k235(hl_kernels *k) {
    k->dot[HL_Q2_K] = dot_q2_k;
    k->dot[HL_Q3_K] = dot_q3_k;
    k->dot[HL_Q5_K] = dot_q5_k;
}
