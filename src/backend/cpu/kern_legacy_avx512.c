/* kern_legacy_avx512.c - AVX-512 (BW, VL, VNNI) kernels of the 32-element
 * block types Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 (the activation quantizers come from
 * the AVX2 path); same results as kern_legacy.c up to the order of the
 * float additions (kernels.h).
 *
 * Math. A weight block decodes to 32 unsigned codes u, element j in byte j:
 * the 4- or 5-bit q, or for Q8_0 the int8 value plus 128. The signed value
 * the reference multiplies is u - off, off = 8 (Q4_0), 16 (Q5_0), 128
 * (Q8_0); the _1 types have no offset but a min term. vpdpbusd multiplies
 * unsigned by signed bytes and adds each 4 products into an i32 lane, so
 * for an activation block a (codes in [-127, 127], as every Q8 quantizer
 * here and in llama.cpp produces, so -a fits a byte):
 *   dpbusd(dpbusd(0, u, a), off, -a)  = 8 lanes totalling sum((u - off) a)
 *   dpbusd(0, 1, a)                   = 8 lanes totalling sum(a)  (_1 types)
 * all exact (a lane is at most 4 * 255 * 127 in size).
 *
 * Blocks go in groups of 8: the 8 lane vectors are reduced to one vector
 * whose lane j is block j's integer sum (unpacks and adds), converted to
 * float once, and multiply-added with the 8 scale products dw * da (and
 * m * da), whose f16 inputs are gathered through general registers and
 * converted with one vcvtph2ps each. A weight group is decoded once and
 * used for all n_a activation rows. Leftover blocks (n / 32 not a multiple
 * of 8) take a per-block path. 256-bit vectors: on the Zen-4-class CPU
 * this was tuned on, 512-bit forms (double-pumped; two blocks a vector)
 * measured 30% slower, the sign trick (|c|, a * sign(c)) 20% slower.
 *
 * Pure functions over caller memory: thread-safe, no allocation. Loads are
 * unaligned and never reach past the rows.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define INLINE static inline __attribute__((always_inline))
#define GROUP 8 /* blocks reduced together */

INLINE uint64_t load_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return h;
}

/* The f16 values at p, p + stride, ... p + 7 * stride, as 8 floats. */
INLINE __m256 halves8(const uint8_t *p, size_t stride) {
    const uint64_t lo = load_u16(p) | load_u16(p + stride) << 16 | load_u16(p + 2 * stride) << 32 |
                        load_u16(p + 3 * stride) << 48;
    const uint64_t hi = load_u16(p + 4 * stride) | load_u16(p + 5 * stride) << 16 |
                        load_u16(p + 6 * stride) << 32 | load_u16(p + 7 * stride) << 48;
    return _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128((long long)lo), (long long)hi, 1));
}

INLINE float half(const uint8_t *p) {
    return _cvtsh_ss((unsigned short)load_u16(p));
}

/* Bytes 0..15 the low nibbles of qs, bytes 16..31 the high nibbles. */
INLINE __m256i nibbles(const uint8_t *qs) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0f));
}

/* Adds 16 to byte j where bit j of the little-endian u32 at qh is set. */
INLINE __m256i add_fifth_bits(__m256i q, const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    return _mm256_mask_add_epi8(q, _cvtu32_mask32(h), q, _mm256_set1_epi8(16));
}

/* --- per-type traits, constant after inlining ------------------------- */

INLINE size_t wbytes(hl_dtype t) {
    switch (t) {
    case HL_Q4_0:
        return sizeof(hl_block_q4_0);
    case HL_Q4_1:
        return sizeof(hl_block_q4_1);
    case HL_Q5_0:
        return sizeof(hl_block_q5_0);
    case HL_Q5_1:
        return sizeof(hl_block_q5_1);
    default:
        return sizeof(hl_block_q8_0);
    }
}

INLINE int has_min(hl_dtype t) {
    return t == HL_Q4_1 || t == HL_Q5_1;
}

/* off as a byte (0 for the _1 types). */
INLINE int offset(hl_dtype t) {
    return t == HL_Q4_0 ? 8 : t == HL_Q5_0 ? 16 : t == HL_Q8_0 ? 128 : 0;
}

INLINE __m256i codes(hl_dtype t, const uint8_t *blk) {
    switch (t) {
    case HL_Q4_0:
        return nibbles(((const hl_block_q4_0 *)blk)->qs);
    case HL_Q4_1:
        return nibbles(((const hl_block_q4_1 *)blk)->qs);
    case HL_Q5_0: {
        const hl_block_q5_0 *b = (const hl_block_q5_0 *)blk;
        return add_fifth_bits(nibbles(b->qs), b->qh);
    }
    case HL_Q5_1: {
        const hl_block_q5_1 *b = (const hl_block_q5_1 *)blk;
        return add_fifth_bits(nibbles(b->qs), b->qh);
    }
    default: {
        const __m256i q = _mm256_loadu_si256((const __m256i *)((const hl_block_q8_0 *)blk)->qs);
        return _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
    }
    }
}

/* Activation blocks: Q8_1 for the _1 types, else Q8_0; codes after d (and s). */
INLINE size_t abytes(hl_dtype t) {
    return has_min(t) ? sizeof(hl_block_q8_1) : sizeof(hl_block_q8_0);
}
INLINE size_t acodes(hl_dtype t) {
    return has_min(t) ? offsetof(hl_block_q8_1, qs) : offsetof(hl_block_q8_0, qs);
}

/* 8 i32 lanes totalling the block's integer sum: *p sum((u - off) a), and
 * *s sum(a) for the _1 types. */
INLINE void block_sums(hl_dtype t, __m256i u, const uint8_t *ab, __m256i *p, __m256i *s) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(ab + acodes(t)));
    const __m256i zero = _mm256_setzero_si256();
    *p = _mm256_dpbusd_epi32(zero, u, a);
    if (has_min(t))
        *s = _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(1), a);
    else
        *p = _mm256_dpbusd_epi32(*p, _mm256_set1_epi8((char)offset(t)), _mm256_sub_epi8(zero, a));
}

/* Lane j of the result = the total of v[j]'s 8 lanes. */
INLINE __m256i totals8(const __m256i v[GROUP]) {
    __m256i pair[4], quad[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        pair[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                   _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        quad[i] = _mm256_add_epi32(_mm256_unpacklo_epi64(pair[2 * i], pair[2 * i + 1]),
                                   _mm256_unpackhi_epi64(pair[2 * i], pair[2 * i + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(quad[0], quad[1], 0x20),
                            _mm256_permute2x128_si256(quad[0], quad[1], 0x31));
}

INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The whole row; t and (for the specialised calls) n_a are constants. */
INLINE void dot_rows(hl_dtype t, int n, const uint8_t *w, const uint8_t *a, size_t a_stride,
                     int n_a, float *out, size_t out_stride) {
    const size_t wb = wbytes(t), ab = abytes(t);
    const int nb = n / HL_QK;
    __m256 acc[HL_DOT_MAX_A];
    for (int k = 0; k < n_a; k++) acc[k] = _mm256_setzero_ps();
    int ib = 0;
    for (; ib + GROUP <= nb; ib += GROUP) {
        const uint8_t *wg = w + ib * wb;
        __m256i u[GROUP];
#pragma GCC unroll 8
        for (int j = 0; j < GROUP; j++) u[j] = codes(t, wg + j * wb);
        const __m256 dw = halves8(wg, wb);
        const __m256 m = has_min(t) ? halves8(wg + 2, wb) : dw;
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) {
            const uint8_t *ag = a + k * a_stride + ib * ab;
            __m256i p[GROUP], s[GROUP];
#pragma GCC unroll 8
            for (int j = 0; j < GROUP; j++) block_sums(t, u[j], ag + j * ab, &p[j], &s[j]);
            const __m256 da = halves8(ag, ab);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(totals8(p)), _mm256_mul_ps(dw, da), acc[k]);
            if (has_min(t))
                acc[k] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(totals8(s)), _mm256_mul_ps(m, da), acc[k]);
        }
    }
    for (; ib < nb; ib++) {
        const uint8_t *wblk = w + ib * wb;
        const __m256i u = codes(t, wblk);
        const float dw = half(wblk), m = has_min(t) ? half(wblk + 2) : 0.0f;
        for (int k = 0; k < n_a; k++) {
            const uint8_t *ablk = a + k * a_stride + ib * ab;
            __m256i p, s;
            block_sums(t, u, ablk, &p, &s);
            const float da = half(ablk);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * da), acc[k]);
            if (has_min(t))
                acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(m * da), acc[k]);
        }
    }
    for (int k = 0; k < n_a; k++) out[k * out_stride] = hsum(acc[k]);
}

/* One kernel per type, specialised for decode (1 row) and prefill (4). */
#define DEFINE_DOT(name, type)                                                                     \
    static void name(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,    \
                     size_t out_stride) {                                                          \
        if (n_a == 1)                                                                              \
            dot_rows(type, n, w, a, a_stride, 1, out, out_stride);                                 \
        else if (n_a == 4)                                                                         \
            dot_rows(type, n, w, a, a_stride, 4, out, out_stride);                                 \
        else                                                                                       \
            dot_rows(type, n, w, a, a_stride, n_a, out, out_stride);                               \
    }

DEFINE_DOT(dot_q4_0, HL_Q4_0)
DEFINE_DOT(dot_q4_1, HL_Q4_1)
DEFINE_DOT(dot_q5_0, HL_Q5_0)
DEFINE_DOT(dot_q5_1, HL_Q5_1)
DEFINE_DOT(dot_q8_0, HL_Q8_0)

void hl_kernels_fill_avx512_legacy(hl_kernels *k) {
    k->dot[HL_Q4_0] = dot_q4_0;
    k->dot[HL_Q4_1] = dot_q4_1;
    k->dot[HL_Q5_0] = dot_q5_0;
    k->dot[HL_Q5_1] = dot_q5_1;
    k->dot[HL_Q8_0] = dot_q8_0;
}
