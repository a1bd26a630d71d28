/* kern_k235_avx2.c - AVX2 (+FMA, F16C) dot kernels of Q2_K, Q3_K and Q5_K
 * against Q8_K activations. kern_k235_avx512.c builds them a second time
 * with K235_VNNI defined (the end of this comment says what changes).
 *
 * Contract: kernels.h's hl_vec_dot_fn; the same integer block sums as the
 * scalar reference (kern_k235.c), so results differ from it only in the
 * order of the float additions. Unaligned loads; never reads past a block.
 *
 * Math. Every weight quant is taken as an unsigned code u (Q2_K 0..3, Q3_K
 * 0..7, Q5_K 0..31) so that vpmaddubsw can multiply it with the int8
 * activation a: that gives 16-bit sums of two products (|.| <= 2*31*128,
 * never saturating), vpmaddwd then multiplies those by the 16-bit scale of
 * their sub-block and adds pairs into 32-bit lanes. One 32-byte vector of
 * codes covers one Q5_K sub-block of 32, or two Q2_K/Q3_K sub-blocks of 16
 * (one per 128-bit lane, so the scale vector holds one scale per lane).
 * Per block and activation row, with the activation's bsums[s]:
 *   Q2_K  isum = sum_s sc[s] * u.a        msum = sum_s mn[s] * bsums[s]
 *   Q5_K  the same with the 6-bit scale/min of sub-block s/2
 *   Q3_K  the code is q + 4, so q.a = u.a - 4 * bsums[s]:
 *         isum = sum_s sc[s] * u.a - 4 * sum_s sc[s] * bsums[s], msum = 0
 * The 8 lanes of isum and msum are exact integers; each block converts them
 * to float once and adds (d * d_a) * isum - (dmin * d_a) * msum into 8
 * float lanes per row, summed across lanes at the end of the row.
 *
 * Each weight block is decoded 32 codes at a time, and each 32 codes are
 * applied to all n_a activation rows before the next 32 are decoded. The
 * row loop is specialised for every n_a so the accumulators stay in
 * registers.
 *
 * K235_VNNI (the AVX-512 path; same 256-bit vectors): vpdpwssd multiplies
 * the 16-bit pair sums by the sub-block scales and accumulates in one
 * instruction (vpmaddwd + vpaddd here), in two chains per block when n_a
 * = 1 (its critical path); the extra high bit of Q3_K/Q5_K codes is tested
 * into a mask register (vptestmb) and added under that mask; Q3_K's
 * -4 * sum_s sc[s] * bsums[s] term starts each block's integer sum, also
 * by vpdpwssd. 512-bit vectors (64 codes per step) were measured slower at
 * n_a = 1 on Zen 4, where they execute as two halves.
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
#ifndef K235_VNNI
/* An empty asm that keeps a running sum a running sum: without it the
 * compiler reassociates the integer adds into a tree of temporaries that
 * spills registers when n_a = 4. */
#define PIN(v) __asm__("" : "+x"(v))
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

/* The codes lo (bit `to` clear in every byte) with bit `bit` of each byte
 * of sel set as their bit `to` (bit, to constant). */
INLINE __m256i with_bit(__m256i lo, __m256i sel, int bit, int to) {
#ifdef K235_VNNI
    const __mmask32 m = _mm256_test_epi8_mask(sel, _mm256_set1_epi8((char)(1 << bit)));
    return _mm256_mask_add_epi8(lo, m, lo, _mm256_set1_epi8((char)(1 << to)));
#else
    const __m256i m = _mm256_set1_epi8((char)(1 << to));
    __m256i b = _mm256_and_si256(sel, m);
    if (bit < to) b = _mm256_and_si256(_mm256_slli_epi16(sel, to - bit), m);
    if (bit > to) b = _mm256_and_si256(_mm256_srli_epi16(sel, bit - to), m);
    return _mm256_or_si256(lo, b);
#endif
}

/* The n_a activation blocks number i. */
INLINE void act_blocks(const void *a, size_t a_stride, const int n_a, int i,
                       const hl_block_q8_k **y) {
    UNROLL for (int r = 0; r < n_a; r++) {
        y[r] = (const hl_block_q8_k *)((const char *)a + (size_t)r * a_stride) + i;
    }
}

/* Integer accumulators per row: with VNNI a block's chain of dependent
 * vpdpwssd is its critical path when n_a = 1, so that case splits it in
 * two (the rows already give n_a > 1 independent chains). Row r uses
 * isum[r * k + j]. */
#ifdef K235_VNNI
#define CHAINS(n_a) ((n_a) == 1 ? 2 : 1)
#else
#define CHAINS(n_a) 1
#endif

/* isum[r] += scale-weighted dot of 32 codes u with activations at offset off. */
INLINE void madd_rows(__m256i *isum, __m256i u, __m256i scale, const hl_block_q8_k **y,
                      const int n_a, int off) {
    const int k = CHAINS(n_a), j = (off / 32) % k;
    UNROLL for (int r = 0; r < n_a; r++) {
        const __m256i p =
            _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(y[r]->qs + off)));
#ifdef K235_VNNI
        isum[r * k + j] = _mm256_dpwssd_epi32(isum[r * k + j], p, scale);
#else
        isum[r * k + j] = _mm256_add_epi32(isum[r * k + j], _mm256_madd_epi16(p, scale));
        PIN(isum[r * k + j]);
#endif
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
        __m256i isum[HL_DOT_MAX_A];
        UNROLL for (int r = 0; r < HL_DOT_MAX_A; r++) isum[r] = _mm256_setzero_si256();
#ifdef K235_VNNI
        const __m256i off = _mm256_mullo_epi16(sc, _mm256_set1_epi16(-4));
        UNROLL for (int r = 0; r < n_a; r++) {
            const __m256i bsums = _mm256_loadu_si256((const __m256i *)y[r]->bsums);
            isum[r * CHAINS(n_a)] = _mm256_dpwssd_epi32(isum[r * CHAINS(n_a)], bsums, off);
        }
#endif
        const __m256i sc_lo = _mm256_permute4x64_epi64(sc, 0x44),
                      sc_hi = _mm256_permute4x64_epi64(sc, 0xee);
        UNROLL for (int c = 0; c < 2; c++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
            const __m256i half = c ? sc_hi : sc_lo;
            UNROLL for (int g = 0; g < 4; g++) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * g), m3);
                const __m256i u = with_bit(lo, hm, 4 * c + g, 2);
                const __m256i scale = _mm256_shuffle_epi8(half, word_pick(2 * g, 2 * g + 1));
                madd_rows(isum, u, scale, y, n_a, 128 * c + 32 * g);
            }
        }
        join_chains(isum, n_a);
        const float d = half_to_f32(x->d);
        UNROLL for (int r = 0; r < n_a; r++) {
#ifdef K235_VNNI
            const __m256i total = isum[r]; /* the offset term is in already */
#else
            const __m256i off =
                _mm256_madd_epi16(sc, _mm256_loadu_si256((const __m256i *)y[r]->bsums));
            const __m256i total = _mm256_sub_epi32(isum[r], _mm256_slli_epi32(off, 2));
#endif
            acc[r] =
                _mm256_fmadd_ps(_mm256_set1_ps(d * y[r]->d), _mm256_cvtepi32_ps(total), acc[r]);
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
            const __m256i u0 = with_bit(_mm256_and_si256(q, m15), hb, 2 * c, 4);
            const __m256i u1 = with_bit(_mm256_and_si256(_mm256_srli_epi16(q, 4), m15), hb, 2 * c + 1, 4);
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

#ifndef K235_VNNI
void hl_kernels_fill_avx2_k235(hl_kernels *k) {
    k->dot[HL_Q2_K] = dot_q2_k;
    k->dot[HL_Q3_K] = dot_q3_k;
    k->dot[HL_Q5_K] = dot_q5_k;
}
#endif
