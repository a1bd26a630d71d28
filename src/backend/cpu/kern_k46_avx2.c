/* kern_k46_avx2.c - AVX2 (+FMA, F16C) kernels of Q4_K and Q6_K against
 * Q8_K activations, and the Q8_K quantizer; see kernels.h and kern_k46.c
 * for the block math this computes. kern_k46_avx512.c builds the same dot
 * kernels a second time with K46_VNNI defined (see madd_acc below).
 *
 * Integer core. vpmaddubsw multiplies the unsigned weight quants (Q4_K
 * q in [0, 15], Q6_K q in [0, 63]) with the signed activation bytes and
 * adds adjacent pairs into int16 (at most 2 * 63 * 127, no saturation);
 * vpmaddwd then multiplies those pairs by the sub-block scale and adds
 * pairs again into int32 lanes (with VNNI, vpdpwssd does that and the
 * accumulation in one instruction). A sub-block's scale is the same in
 * every lane it touches, so the int32 lanes summed over a block hold
 * exactly the block's scaled integer sum, split in 8 parts.
 *  - Q4_K: one 32-byte load of qs gives sub-block 2c (low nibbles) and
 *    2c+1 (high nibbles), 32 quants each; their scales are vpshufb
 *    broadcasts of the block's 8 int16 scales. The mins term is
 *    vpmaddwd(bsums, (mn0, mn0, mn1, mn1, ...)), the pairs of bsums being
 *    the two halves of a sub-block.
 *  - Q6_K: the quants of a 32-byte vector are two sub-blocks of 16 (one per
 *    128-bit lane); the lane-wise scales come from one vpshufb of the scales
 *    laid out [even sub-blocks | odd sub-blocks]. The -32 offset is taken
 *    out once per block as 32 * vpmaddwd(bsums, scales).
 * The int32 sums run in two chains (low and high nibbles, even and odd
 * groups) so that the multiply-add latency does not serialize a block.
 * Q6_K: per block and row they are converted and added with an FMA by
 * dw * da into 8 float lanes, summed at the end. Q4_K: see the float order
 * below. So only the float order differs from the scalar path.
 *
 * Q4_K float order (batch invariance). The row kernel and the tile give
 * bit-identical results for a (weight row, activation row) pair, whatever
 * the tile or the other rows of the call: both reduce a block's integer
 * sums exactly to two halves, h = 0, 1,
 *   I_h = sum over the 8 sub-blocks j of sc_j * sum(q_l a_l), l in
 *         [16h, 16h + 16) of the sub-block's 32 elements,
 *   M_h = sum over sub-blocks j in [4h, 4h + 4) of mn_j * S_j,
 * accumulate per half acc_h = fma(d * da, I_h, acc_h), then
 * acc_h = fnma(dmin * da, M_h, acc_h), block after block, and return
 * acc_0 + acc_1. (These halves are the 128-bit halves of the row kernel's
 * vectors and the tile's lanes (k, h).)
 *
 * Each weight block is decoded once into registers and multiplied with all
 * n_a activation rows; the row count is a compile-time constant in each
 * specialization (1..4) so the accumulators stay in registers.
 *
 * Prefill tile (gemm) of Q4_K: its own layout, described in its section
 * below. Q6_K has none (the dot kernel serves prefill as fast).
 *
 * Q8_K quantizer: as the scalar one (d = max / -127, max the element of
 * largest magnitude), rounding x * (-127 / max) to nearest even with
 * vcvtps2dq. Where +m and -m both reach the largest magnitude, +m is taken
 * (the scalar path takes the first); the decoded values are the same.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

INLINE const hl_block_q8_k *act_block(const void *a, size_t a_stride, int r, int i) {
    return (const hl_block_q8_k *)((const char *)a + (size_t)r * a_stride) + i;
}

/* clang-format off */
/* dot_<t>: the kernel <t>_rows specialized for each activation-row count,
 * each in a function of its own so that each gets its own register
 * allocation. */
typedef void (*rows_fn)(int nb, const void *w, const void *a, size_t as, float *out, size_t os);
#define ROWS_N(t, k)                                                                               \
    static __attribute__((noinline)) void t##_rows##k(int nb, const void *w, const void *a,        \
                                                       size_t as, float *out, size_t os) {         \
        t##_rows(nb, w, a, as, k, out, os);                                                        \
    }
#define DOT_BY_COUNT(t)                                                                            \
    ROWS_N(t, 1)                                                                                   \
    ROWS_N(t, 2)                                                                                   \
    ROWS_N(t, 3)                                                                                   \
    ROWS_N(t, 4)                                                                                   \
    static void dot_##t(int n, const void *w, const void *a, size_t as, int n_a, float *out,       \
                        size_t os) {                                                               \
        static const rows_fn rows[HL_DOT_MAX_A] = {t##_rows1, t##_rows2, t##_rows3, t##_rows4};    \
        rows[n_a - 1](n / HL_QK_K, w, a, as, out, os);                                             \
    }
/* clang-format on */

INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float half(uint16_t h) {
    return _cvtsh_ss(h);
}

/* Two consecutive f16 (Q4_K's d and dmin) as floats in lanes 0 and 1. */
INLINE __m128 half2(const uint16_t *h) {
    int32_t v;
    memcpy(&v, h, sizeof v);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
}

/* vpshufb indices that copy int16 j of each 128-bit lane to all of it. */
INLINE __m256i word_index(int j) {
    return _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j));
}

/* acc + p * sc on int16 pairs, each pair's two products added into int32. */
INLINE __m256i madd_acc(__m256i acc, __m256i p, __m256i sc) {
#ifdef K46_VNNI
    return _mm256_dpwssd_epi32(acc, p, sc);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc));
#endif
}

/* acc += (scale * da) * float(sumi), da the activation block's scale. */
INLINE __m256 fma_block(__m256 acc, float scale, const hl_block_q8_k *y, __m256i sumi) {
    const __m256 f = _mm256_mul_ps(_mm256_set1_ps(scale), _mm256_broadcast_ss(&y->d));
    return _mm256_fmadd_ps(f, _mm256_cvtepi32_ps(sumi), acc);
}

/* ------------------------------------------------------------------ Q4_K */

/* The 12 scale bytes of a Q4_K block unpacked to bytes
 * [sc0..sc3, mn0..mn3, sc4..sc7, mn4..mn7]: the low six bits of bytes 0..7
 * are entries 0..3; entries 4..7 take their nibbles from bytes 8..11 (scale
 * low, min high) and their top two bits from the top of bytes 0..7. */
INLINE __m128i q4_k_scale_bytes(const uint8_t *s) {
    uint64_t lo;
    uint32_t nib;
    memcpy(&lo, s, 8);
    memcpy(&nib, s + 8, 4);
    const uint64_t top = (lo >> 2) & 0x3030303030303030ull; /* bits 6,7 -> 4,5 */
    const uint64_t hi =
        ((uint64_t)(nib & 0x0f0f0f0f) | (uint64_t)((nib >> 4) & 0x0f0f0f0f) << 32) | top;
    return _mm_set_epi64x((long long)hi, (long long)(lo & 0x3f3f3f3f3f3f3f3full));
}

/* n_a rows of one Q4_K weight row; n_a is a constant at each call site. */
INLINE void q4_k_rows(int nb, const hl_block_q4_k *w, const void *a, size_t a_stride, const int n_a,
                      float *out, size_t out_stride) {
    /* byte indices of [sc0 .. sc7, mn0 .. mn7] and [mn0, mn0, mn1, mn1, ...] */
    const __m128i pick_sc = _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
    const __m128i pick_mn = _mm_setr_epi8(4, 4, 5, 5, 6, 6, 7, 7, 12, 12, 13, 13, 14, 14, 15, 15);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc[HL_DOT_MAX_A]; /* lanes 0 and 4: the halves of the float order; the rest unused */
    UNROLL
    for (int r = 0; r < n_a; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const hl_block_q4_k *b = &w[i];
        const __m128i sm = q4_k_scale_bytes(b->scales);
        /* int16 scales [sc0..sc7] in both lanes */
        const __m256i sc16 =
            _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_shuffle_epi8(sm, pick_sc)));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, pick_mn));
        __m256i s_lo[HL_DOT_MAX_A], s_hi[HL_DOT_MAX_A];
        UNROLL
        for (int r = 0; r < n_a; r++) s_lo[r] = s_hi[r] = _mm256_setzero_si256();
        UNROLL
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
            const __m256i lo = _mm256_and_si256(q, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            /* int16 2c and 2c+1 of sc16 in every position */
            const __m256i sc_lo = _mm256_shuffle_epi8(sc16, word_index(2 * c));
            const __m256i sc_hi = _mm256_shuffle_epi8(sc16, word_index(2 * c + 1));
            UNROLL
            for (int r = 0; r < n_a; r++) {
                const int8_t *qa = act_block(a, a_stride, r, i)->qs + 64 * c;
                const __m256i p_lo =
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)qa));
                const __m256i p_hi =
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(qa + 32)));
                s_lo[r] = madd_acc(s_lo[r], p_lo, sc_lo);
                s_hi[r] = madd_acc(s_hi[r], p_hi, sc_hi);
            }
        }
        const __m128 dm = half2(&b->d); /* d, dmin */
        UNROLL
        for (int r = 0; r < n_a; r++) {
            const hl_block_q8_k *y = act_block(a, a_stride, r, i);
            const __m128 f = _mm_mul_ps(dm, _mm_broadcast_ss(&y->d));
            /* lane i of summ: mn_i * S_i; the 128-bit halves of sumi: I_0, I_1 */
            const __m256i summ =
                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), mins);
            const __m256i sumi = _mm256_add_epi32(s_lo[r], s_hi[r]);
            const __m256i x = _mm256_hadd_epi32(sumi, summ);
            /* per 128-bit half h: I_h, I_h, M_h, M_h */
            const __m256 v = _mm256_cvtepi32_ps(
                _mm256_add_epi32(x, _mm256_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1))));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), v, acc[r]);
            acc[r] = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(f)),
                                      _mm256_unpackhi_ps(v, v), acc[r]);
        }
    }
    UNROLL
    for (int r = 0; r < n_a; r++) {
        float h[8];
        _mm256_storeu_ps(h, acc[r]);
        out[(size_t)r * out_stride] = h[0] + h[4];
    }
}

DOT_BY_COUNT(q4_k)

/* ------------------------------------------------------------------ Q6_K */

/* n_a rows of one Q6_K weight row. Element 128c + 32g + l (l < 32) has its
 * low nibble in ql[64c + 32(g%2) + l] at bit 4(g/2) and its top two bits in
 * qh[32c + l] at bit 2g; the 32 quants of one (c, g) are sub-blocks
 * 8c + 2g (low lane) and 8c + 2g + 1 (high lane). */
INLINE void q6_k_rows(int nb, const hl_block_q6_k *w, const void *a, size_t a_stride, const int n_a,
                      float *out, size_t out_stride) {
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const __m256i low4 = _mm256_set1_epi8(0x0f), bits45 = _mm256_set1_epi8(0x30);
    __m256 acc[HL_DOT_MAX_A];
    UNROLL
    for (int r = 0; r < n_a; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < nb; i++) {
        const hl_block_q6_k *b = &w[i];
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        /* int16 scales: [sc0, sc2, .., sc14 | sc1, sc3, .., sc15] */
        const __m256i sc_eo = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, even_odd));
        __m256i sumi[2][HL_DOT_MAX_A]; /* even and odd g */
        UNROLL
        for (int r = 0; r < n_a; r++) sumi[0][r] = sumi[1][r] = _mm256_setzero_si256();
        UNROLL
        for (int c = 0; c < 2; c++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * c));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * c + 32));
            const __m256i h = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * c));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(h, 4), bits45));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(h, 2), bits45));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                   _mm256_and_si256(h, bits45));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                   _mm256_and_si256(_mm256_srli_epi16(h, 2), bits45));
            UNROLL
            for (int g = 0; g < 4; g++) {
                const int m = 4 * c + g; /* int16 m of each lane: sub-blocks 2m, 2m+1 */
                const __m256i sc = _mm256_shuffle_epi8(sc_eo, word_index(m));
                UNROLL
                for (int r = 0; r < n_a; r++) {
                    const int8_t *qa = act_block(a, a_stride, r, i)->qs + 128 * c + 32 * g;
                    const __m256i p =
                        _mm256_maddubs_epi16(q[g], _mm256_loadu_si256((const __m256i *)qa));
                    sumi[g % 2][r] = madd_acc(sumi[g % 2][r], p, sc);
                }
            }
        }
        const float d = half(b->d);
        UNROLL
        for (int r = 0; r < n_a; r++) {
            const hl_block_q8_k *y = act_block(a, a_stride, r, i);
            const __m256i off =
                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), sc16);
            const __m256i sum = _mm256_add_epi32(sumi[0][r], sumi[1][r]);
            acc[r] = fma_block(acc[r], d, y, _mm256_sub_epi32(sum, _mm256_slli_epi32(off, 5)));
        }
    }
    UNROLL
    for (int r = 0; r < n_a; r++) out[(size_t)r * out_stride] = hsum_ps(acc[r]);
}

DOT_BY_COUNT(q6_k)

/* ------------------------------------------------------- prefill tiles */

/* Q4_K tile (kernels.h's gemm): n_w weight rows times 4 activation rows
 * (a missing row repeats the last; its outputs are not written).
 *
 * Layout. In the dot kernels' layout every vector holds one sub-block, so
 * each 32 products need their own multiply by the sub-block's scale. Here
 * the 4 activation rows' block is rearranged once per call and block
 * (q4_k_act_prep; the weight rows of the call then reuse it, much of it
 * from registers) and each weight block the same way in registers, so that
 * every dword lane of 4 consecutive vectors stays in one sub-block: their
 * products add up as integers and are scaled once.
 * The rearrangement is a 4x4 dword transpose inside each 128-bit half
 * (transpose4): of the 4 qs vectors it puts sub-block 2k (low nibbles) and
 * 2k + 1 (high nibbles) in dword lane k; of the activations it transposes
 * sub-blocks 0, 2, 4, 6 and 1, 3, 5, 7 alike.
 *
 * Integer sums per row, block and nibble half (4 vectors):
 *  - AVX2: 4 vpmaddubsw (each int16 at most 2 * 15 * 128) added as int16,
 *    then one vpmaddwd by the sub-block scales: 2 per row and block
 *    instead of the dot kernel's 8.
 *  - VNNI: 4 vpdpbusd into int32 lanes of at most 4 * 4 * 15 * 128 < 2^15,
 *    so vpackssdw of two rows' sums is exact, and one vpmaddwd (vpdpwssd)
 *    by the scales serves two rows: 8 vpdpbusd per row and block plus 1
 *    vpackssdw and 1 multiply-add, against 8 vpmaddubsw and 8 vpdpwssd.
 * The rows' lanes are then reduced to lane (k, h) = row k's I_h,
 * converted once and added with one FMA by dw * (da0 .. da3) per block;
 * the mins term is two vpmaddwd of the activations' sub-block sums (laid
 * out per row, q4_k_act_sums) by the mins pairs, and one FNMA by dmin * da.
 * The integer block sums are those of the dot kernels, and so is the
 * float order (see the top of the file).
 *
 * Q6_K has no tile: transposing its decoded quants (16 vpunpck per block
 * on top of the decoding) costs what the saved multiplies gain; measured
 * no faster than its dot kernel with 4 rows. */

INLINE __m256i load32(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Dword k of half h of out[t] = dword 4h + t of v[k], for k, t < 4. */
INLINE void transpose4(__m256i v0, __m256i v1, __m256i v2, __m256i v3, __m256i out[4]) {
    const __m256i u0 = _mm256_unpacklo_epi32(v0, v1), u1 = _mm256_unpackhi_epi32(v0, v1);
    const __m256i u2 = _mm256_unpacklo_epi32(v2, v3), u3 = _mm256_unpackhi_epi32(v2, v3);
    out[0] = _mm256_unpacklo_epi64(u0, u2);
    out[1] = _mm256_unpackhi_epi64(u0, u2);
    out[2] = _mm256_unpacklo_epi64(u1, u3);
    out[3] = _mm256_unpackhi_epi64(u1, u3);
}

typedef struct q4_k_act { /* one Q8_K block of the 4 activation rows */
    __m256i q[8][4];      /* [vector][row]: sub-blocks 0, 2, 4, 6 then 1, 3, 5, 7, transposed */
    __m256i sums[2];      /* see q4_k_act_sums */
    __m256 da;            /* (da of rows 0..3) twice */
} q4_k_act;

/* In lane (k, h) the int16 pairs of row k's sub-block sums (S(4h),
 * S(4h + 1)) (s[0]) and (S(4h + 2), S(4h + 3)) (s[1]), S(j) = bsums[2j] +
 * bsums[2j + 1], at most 32 * 127 in magnitude. */
INLINE void q4_k_act_sums(const hl_block_q8_k *const y[4], __m256i s[2]) {
    __m256i v[4];
    UNROLL
    for (int r = 0; r < 4; r++) /* S(0..3) | S(4..7) */
        v[r] = _mm256_madd_epi16(load32(y[r]->bsums), _mm256_set1_epi16(1));
    /* int16 [S0..S3 of row a, of row b | S4..S7 of row a, of row b] */
    const __m256 p01 = _mm256_castsi256_ps(_mm256_packs_epi32(v[0], v[1]));
    const __m256 p23 = _mm256_castsi256_ps(_mm256_packs_epi32(v[2], v[3]));
    s[0] = _mm256_castps_si256(_mm256_shuffle_ps(p01, p23, _MM_SHUFFLE(2, 0, 2, 0)));
    s[1] = _mm256_castps_si256(_mm256_shuffle_ps(p01, p23, _MM_SHUFFLE(3, 1, 3, 1)));
}

static void q4_k_act_prep(const hl_block_q8_k *const y[4], q4_k_act *t) {
    UNROLL
    for (int r = 0; r < 4; r++) {
        UNROLL
        for (int odd = 0; odd < 2; odd++) { /* sub-blocks odd, odd + 2, odd + 4, odd + 6 */
            const int8_t *qs = y[r]->qs + 32 * odd;
            __m256i v[4];
            transpose4(load32(qs), load32(qs + 64), load32(qs + 128), load32(qs + 192), v);
            UNROLL
            for (int j = 0; j < 4; j++) t->q[4 * odd + j][r] = v[j];
        }
    }
    q4_k_act_sums(y, t->sums);
    const __m128 d = _mm_setr_ps(y[0]->d, y[1]->d, y[2]->d, y[3]->d);
    t->da = _mm256_set_m128(d, d);
}

/* pshufb indices over the unpacked scale bytes [sc0..sc3, mn0..mn3,
 * sc4..sc7, mn4..mn7] (q4_k_scale_bytes) in both halves: the int16 mins
 * pairs (mn(4h), mn(4h + 1)) and (mn(4h + 2), mn(4h + 3)) of half h, as
 * q4_k_act_sums pairs the sums; then the scales of sub-blocks 2k (even)
 * and 2k + 1 (odd), for AVX2 in both int16 of dword k, for VNNI in int16 k
 * and 4 + k of each half (the order vpackssdw leaves two rows' dwords in). */
#define Z -1
#define X4(a, b, c, d) a, b, c, d, a, b, c, d, a, b, c, d, a, b, c, d
#ifdef K46_VNNI
#define SC(s0, s1, s2, s3) s0, Z, s1, Z, s2, Z, s3, Z, s0, Z, s1, Z, s2, Z, s3, Z
#else
#define SC(s0, s1, s2, s3) s0, Z, s0, Z, s1, Z, s1, Z, s2, Z, s2, Z, s3, Z, s3, Z
#endif
static const int8_t q4_k_pick[4][32] __attribute__((aligned(32))) = {
    {X4(4, Z, 5, Z), X4(12, Z, 13, Z)},
    {X4(6, Z, 7, Z), X4(14, Z, 15, Z)},
    {SC(0, 2, 8, 10), SC(0, 2, 8, 10)},
    {SC(1, 3, 9, 11), SC(1, 3, 9, 11)},
};
#undef SC
#undef X4
#undef Z

/* Lane (k, h) of the scaled integer sums of the 4 rows, from the low- and
 * high-nibble vectors lo, hi of one weight block and scales sc_even,
 * sc_odd (q4_k_pick[2], [3]). */
INLINE __m256i q4_k_tile_sums(const __m256i lo[4], const __m256i hi[4], const q4_k_act *t,
                              __m256i sc_even, __m256i sc_odd) {
#ifdef K46_VNNI
    __m256i s_lo[4], s_hi[4];
    UNROLL
    for (int r = 0; r < 4; r++) {
        s_lo[r] = s_hi[r] = _mm256_setzero_si256();
        UNROLL
        for (int j = 0; j < 4; j++) {
            s_lo[r] = _mm256_dpbusd_epi32(s_lo[r], lo[j], t->q[j][r]);
            s_hi[r] = _mm256_dpbusd_epi32(s_hi[r], hi[j], t->q[4 + j][r]);
        }
    }
    /* rows 2p, 2p + 1: int32 [2p, 2p, 2p + 1, 2p + 1 | same] */
    __m256 y[2];
    UNROLL
    for (int p = 0; p < 2; p++)
        y[p] = _mm256_castsi256_ps(_mm256_dpwssd_epi32(
            _mm256_madd_epi16(_mm256_packs_epi32(s_lo[2 * p], s_lo[2 * p + 1]), sc_even),
            _mm256_packs_epi32(s_hi[2 * p], s_hi[2 * p + 1]), sc_odd));
    return _mm256_add_epi32(
        _mm256_castps_si256(_mm256_shuffle_ps(y[0], y[1], _MM_SHUFFLE(2, 0, 2, 0))),
        _mm256_castps_si256(_mm256_shuffle_ps(y[0], y[1], _MM_SHUFFLE(3, 1, 3, 1))));
#else
    __m256i x[4];
    UNROLL
    for (int r = 0; r < 4; r++) {
        __m256i s_lo = _mm256_maddubs_epi16(lo[0], t->q[0][r]);
        __m256i s_hi = _mm256_maddubs_epi16(hi[0], t->q[4][r]);
        UNROLL
        for (int j = 1; j < 4; j++) {
            s_lo = _mm256_add_epi16(s_lo, _mm256_maddubs_epi16(lo[j], t->q[j][r]));
            s_hi = _mm256_add_epi16(s_hi, _mm256_maddubs_epi16(hi[j], t->q[4 + j][r]));
        }
        x[r] = _mm256_add_epi32(_mm256_madd_epi16(s_lo, sc_even), _mm256_madd_epi16(s_hi, sc_odd));
    }
    /* lane (k, h) = sum of half h of x[k] */
    const __m256i s01 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(x[0], x[1]), _mm256_unpackhi_epi32(x[0], x[1]));
    const __m256i s23 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(x[2], x[3]), _mm256_unpackhi_epi32(x[2], x[3]));
    return _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
#endif
}

/* acc + weight block b times the 4 rows' block t; lane (k, h) of acc
 * belongs to row k. */
INLINE __m256 q4_k_tile_block(__m256 acc, const hl_block_q4_k *b, const q4_k_act *t) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i q[4], lo[4], hi[4];
    transpose4(load32(b->qs), load32(b->qs + 32), load32(b->qs + 64), load32(b->qs + 96), q);
    UNROLL
    for (int j = 0; j < 4; j++) {
        lo[j] = _mm256_and_si256(q[j], low4);
        hi[j] = _mm256_and_si256(_mm256_srli_epi16(q[j], 4), low4);
    }
    const __m256i sm = _mm256_broadcastsi128_si256(q4_k_scale_bytes(b->scales));
    const __m256i sumi = q4_k_tile_sums(lo, hi, t, _mm256_shuffle_epi8(sm, load32(q4_k_pick[2])),
                                        _mm256_shuffle_epi8(sm, load32(q4_k_pick[3])));
    const __m256i mins =
        madd_acc(_mm256_madd_epi16(t->sums[0], _mm256_shuffle_epi8(sm, load32(q4_k_pick[0]))),
                 t->sums[1], _mm256_shuffle_epi8(sm, load32(q4_k_pick[1])));
    const __m128 dm = half2(&b->d); /* d, dmin */
    acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_broadcastss_ps(dm), t->da), _mm256_cvtepi32_ps(sumi),
                          acc);
    return _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), t->da),
                            _mm256_cvtepi32_ps(mins), acc);
}

/* Block by block: the activations' block once, then every weight row's. */
static void gemm_q4_k(int n, const void *w, size_t ws, int n_w, const void *a, size_t as, int n_a,
                      float *out, size_t os) {
    const hl_block_q8_k *rows[4];
    for (int r = 0; r < 4; r++) rows[r] = act_block(a, as, r < n_a ? r : n_a - 1, 0);
    __m256 acc[HL_GEMM_ROWS_MAX];
    for (int r = 0; r < n_w; r++) acc[r] = _mm256_setzero_ps();
    for (int i = 0; i < n / HL_QK_K; i++) {
        const hl_block_q8_k *const y[4] = {rows[0] + i, rows[1] + i, rows[2] + i, rows[3] + i};
        q4_k_act t;
        q4_k_act_prep(y, &t);
        for (int r = 0; r < n_w; r++)
            acc[r] =
                q4_k_tile_block(acc[r], (const hl_block_q4_k *)((const char *)w + r * ws) + i, &t);
    }
    for (int r = 0; r < n_w; r++) {
        float s[8];
        _mm256_storeu_ps(s, acc[r]);
        for (int k = 0; k < n_a; k++) out[k * os + r] = s[k] + s[k + 4];
    }
}

#ifndef K46_VNNI
/* ------------------------------------------------------------------ Q8_K */

INLINE float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Eight floats to int32, scaled and rounded to nearest even. */
INLINE __m256i round8(const float *x, __m256 is) {
    return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), is));
}

/* 32 floats to 32 int8 in order. */
INLINE __m256i round32(const float *x, __m256 is) {
    const __m256i ab = _mm256_packs_epi32(round8(x, is), round8(x + 8, is));
    const __m256i cd = _mm256_packs_epi32(round8(x + 16, is), round8(x + 24, is));
    /* packs work per 128-bit lane: dwords come out as 0 4 1 5 2 6 3 7 */
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Per 32 quants, the two 16-element sums, as int32 lanes 0..3 (first 16)
 * and 4..7 (second 16) still to be added across each half. */
INLINE __m256i quad_sums(__m256i q) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

/* bsums of one block from its eight 32-quant vectors. */
INLINE void block_sums(const __m256i q[8], int16_t bsums[16]) {
    __m256i s[2];
    UNROLL
    for (int h = 0; h < 2; h++) {
        const __m256i *v = q + 4 * h;
        const __m256i s01 = _mm256_hadd_epi32(quad_sums(v[0]), quad_sums(v[1]));
        const __m256i s23 = _mm256_hadd_epi32(quad_sums(v[2]), quad_sums(v[3]));
        /* [g0 g2 g4 g6 | g1 g3 g5 g7] of this half's 8 groups */
        s[h] = _mm256_hadd_epi32(s01, s23);
    }
    const __m256i p = _mm256_packs_epi32(s[0], s[1]); /* [even groups | odd groups] */
    const __m128i ev = _mm256_castsi256_si128(p), od = _mm256_extracti128_si256(p, 1);
    _mm_storeu_si128((__m128i *)bsums, _mm_unpacklo_epi16(ev, od));
    _mm_storeu_si128((__m128i *)(bsums + 8), _mm_unpackhi_epi16(ev, od));
}

static void quant_q8_k(const float *x, void *dst, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    hl_block_q8_k *b = dst;
    for (int i = 0; i < n / HL_QK_K; i++, b++, x += HL_QK_K) {
        __m256 amax = _mm256_setzero_ps(), vmax = _mm256_set1_ps(-INFINITY);
        for (int j = 0; j < HL_QK_K; j += 8) {
            const __m256 v = _mm256_loadu_ps(x + j);
            /* a NaN element is skipped, as in the scalar path */
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, v), amax);
            vmax = _mm256_max_ps(v, vmax);
        }
        const float am = hmax_ps(amax);
        if (am == 0.0f) {
            memset(b, 0, sizeof *b);
            continue;
        }
        const float is = -127.0f / (hmax_ps(vmax) == am ? am : -am);
        b->d = 1.0f / is;
        __m256i q[8];
        UNROLL
        for (int t = 0; t < 8; t++) {
            q[t] = round32(x + 32 * t, _mm256_set1_ps(is));
            _mm256_storeu_si256((__m256i *)(b->qs + 32 * t), q[t]);
        }
        block_sums(q, b->bsums);
    }
}

void hl_kernels_fill_avx2_k46(hl_kernels *k) {
    k->dot[HL_Q4_K] = dot_q4_k;
    k->dot[HL_Q6_K] = dot_q6_k;
    k->gemm[HL_Q4_K] = gemm_q4_k;
    k->gemm_rows[HL_Q4_K] = HL_GEMM_ROWS_MAX; /* the activation block prep pays off over 16 rows */
    k->quant[HL_Q8_K] = quant_q8_k;
}
#endif /* !K46_VNNI */
