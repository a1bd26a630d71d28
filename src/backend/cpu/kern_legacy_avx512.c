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
 * all exact (a lane is at most 4 * 255 * 127 in size). The _1 types' min
 * term is m * s, s the Q8_1 block's f16 field, as in llama.cpp (see
 * kern_legacy.c).
 *
 * Float order (batch invariance). dot and gemm give bit-identical results
 * for a (weight row, activation row) pair, whatever the tile or the other
 * rows of the call, because both follow one order, kept in 8 float lanes:
 *  - whole groups of 8 blocks: lane j takes block j of the group,
 *    acc = fma(float(isum), dw * da, acc), then for the _1 types
 *    acc = fma(m, s, acc);
 *  - each leftover block (n / 32 not a multiple of 8) in turn: its 8
 *    partial integer sums (lane l: codes 4l..4l+3) as
 *    acc = fma(float(p), dw * da, acc), then the min term into lane 0 as
 *    acc = fma(m, (s, 0, ..., 0), acc);
 *  - the result is hsum: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
 *
 * The row kernel (dot) reduces the 8 lane vectors of a group to one vector
 * whose lane j is block j's integer sum (unpacks and adds); the f16 scales
 * are gathered through general registers and converted with one vcvtph2ps
 * each. A weight group is decoded once and used for all n_a activation
 * rows. 256-bit vectors: on the Zen-4-class CPU this was tuned on,
 * 512-bit forms (double-pumped; two blocks a vector) measured 30% slower,
 * the sign trick (|c|, a * sign(c)) 20% slower.
 *
 * The prefill tiles (gemm, up to 4 weight rows x 4 activation rows; see
 * their section) get the same integer sums from a transposed layout, with
 * 512-bit vpdpbusd there, where it halves the instruction count, and
 * follow the same float order.
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

#include "simd256.h"

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

/* 8 i32 lanes totalling the block's integer sum sum((u - off) a). */
INLINE __m256i block_sum(hl_dtype t, __m256i u, const uint8_t *ab) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(ab + acodes(t)));
    const __m256i zero = _mm256_setzero_si256();
    const __m256i p = _mm256_dpbusd_epi32(zero, u, a);
    if (has_min(t)) return p;
    return _mm256_dpbusd_epi32(p, _mm256_set1_epi8((char)offset(t)), _mm256_sub_epi8(zero, a));
}

/* The Q8_1 block's s field (the _1 types' min term is m * s). */
INLINE float act_s(const uint8_t *ab) {
    return half(ab + offsetof(hl_block_q8_1, s));
}

/* x in lane 0, zeros above (a leftover block's s, for the min term's FMA). */
INLINE __m256 lane0(float x) {
    return _mm256_zextps128_ps256(_mm_set_ss(x));
}

/* A whole group's step of the shared float order: lane j of isum is block
 * j's integer sum, dw / m / da / s its weight and activation fields. */
INLINE __m256 group_step(hl_dtype t, __m256 acc, __m256i isum, __m256 dw, __m256 m, __m256 da,
                         __m256 s) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, da), acc);
    return has_min(t) ? _mm256_fmadd_ps(m, s, acc) : acc;
}

/* A leftover block's step: p its 8 partial integer sums (block_sum's
 * layout), ablk the activation block. */
INLINE __m256 block_step(hl_dtype t, __m256 acc, __m256i p, float dw, float m,
                         const uint8_t *ablk) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * half(ablk)), acc);
    return has_min(t) ? _mm256_fmadd_ps(_mm256_set1_ps(m), lane0(act_s(ablk)), acc) : acc;
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
            __m256i p[GROUP];
#pragma GCC unroll 8
            for (int j = 0; j < GROUP; j++) p[j] = block_sum(t, u[j], ag + j * ab);
            const __m256 s = has_min(t) ? halves8(ag + offsetof(hl_block_q8_1, s), ab) : dw;
            acc[k] = group_step(t, acc[k], totals8(p), dw, m, halves8(ag, ab), s);
        }
    }
    for (; ib < nb; ib++) {
        const uint8_t *wblk = w + ib * wb;
        const __m256i u = codes(t, wblk);
        const float dw = half(wblk), m = has_min(t) ? half(wblk + 2) : 0.0f;
        for (int k = 0; k < n_a; k++) {
            const uint8_t *ablk = a + k * a_stride + ib * ab;
            acc[k] = block_step(t, acc[k], block_sum(t, u, ablk), dw, m, ablk);
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

/* --- prefill tiles (gemm) ------------------------------------------------
 *
 * A tile of up to 4 weight rows x 4 activation rows works on groups of 8
 * blocks in a transposed layout: code dword c (codes 4c..4c+3) of block j
 * sits in lane j, so vpdpbusd leaves each block's integer sum in its own
 * lanes and a group needs no horizontal reduction: one conversion and one
 * FMA with the 8 scale products dw * da finish a (weight row, activation
 * row) pair. A 512-bit vector holds two such dword rows (lanes 0-7: dword
 * m, lanes 8-15: dword m + 4; m = 0..3), so a pair takes 4 vpdpbusd a
 * group and its two halves are added once. The 4 weight rows of a group
 * stay in registers (16 vectors, transposed from the packed bytes for the
 * Q4 types, after adding the fifth bits for Q5, from the values for Q8_0),
 * and each activation row is transposed once per group and meets all of
 * them. The offset correction -off * sum(a) is computed once per
 * activation row and group (4 vpdpbusd against the constant off) and
 * starts each pair's sum; the _1 types instead add the min term m * s,
 * s the Q8_1 blocks' f16 field. 16 float accumulators (one per
 * pair, summed by hsum at the end) and the 16 weight vectors fill the 32
 * registers. Leftover blocks (n / 32 not a multiple of 8) go block by
 * block in the natural layout, as in the row kernel.
 *
 * Measured on the Zen-4-class CPU: the per-call transposes of the
 * activation rows cost about a third of the time (a wider weight tile
 * would amortise them); 256-bit forms of this tile (weights of one row in
 * registers, activations staged in memory) were up to 10% slower, more at
 * n = 576. On CPUs that lower their clock for 512-bit integer work
 * (Skylake-SP, Cascade Lake) this choice is untested. */

/* Transposes the dwords of each 128-bit lane of v[0..3] as a 4x4 matrix:
 * v[i] lane h dword c -> v[c] lane h dword i. */
INLINE void transpose_lanes(__m256i v[4]) {
    const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    v[0] = _mm256_unpacklo_epi64(t0, t2);
    v[1] = _mm256_unpackhi_epi64(t0, t2);
    v[2] = _mm256_unpacklo_epi64(t1, t3);
    v[3] = _mm256_unpackhi_epi64(t1, t3);
}

INLINE void transpose_lanes512(__m512i v[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
    v[0] = _mm512_unpacklo_epi64(t0, t2);
    v[1] = _mm512_unpackhi_epi64(t0, t2);
    v[2] = _mm512_unpacklo_epi64(t1, t3);
    v[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* The 16 bytes at lo, then the 16 at hi. */
INLINE __m256i pair16(const uint8_t *lo, const uint8_t *hi) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                                   _mm_loadu_si128((const __m128i *)hi), 1);
}

/* Two dword rows in one vector: lanes 0-7 lo, lanes 8-15 hi. */
INLINE __m512i join(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* The 8 lanes of v plus the 8 above them. */
INLINE __m256i fold(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* The 32 bytes at p + j * stride (j < 8), transposed: z[m] lanes 0-7 =
 * dword m of rows 0-7, lanes 8-15 = dword m + 4. */
INLINE void transpose8x32(const uint8_t *p, size_t stride, __m512i z[4]) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) /* 128-bit lanes: row j lo, hi, row j + 4 lo, hi */
        z[j] = join(_mm256_loadu_si256((const __m256i *)(p + j * stride)),
                    _mm256_loadu_si256((const __m256i *)(p + (j + 4) * stride)));
    transpose_lanes512(z); /* lanes: rows 0-3 dword m, m + 4, rows 4-7 m, m + 4 */
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) z[m] = _mm512_shuffle_i64x2(z[m], z[m], _MM_SHUFFLE(3, 1, 2, 0));
}

/* A weight group (8 blocks from wg) in that layout, codes as codes()
 * gives them. */
INLINE void weight_group(hl_dtype t, const uint8_t *wg, __m512i w[4]) {
    const size_t wb = wbytes(t);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    if (t == HL_Q8_0) {
        transpose8x32(wg + offsetof(hl_block_q8_0, qs), wb, w);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) w[m] = _mm512_xor_si512(w[m], _mm512_set1_epi8((char)0x80));
        return;
    }
    const size_t qs = t == HL_Q4_0   ? offsetof(hl_block_q4_0, qs)
                      : t == HL_Q4_1 ? offsetof(hl_block_q4_1, qs)
                      : t == HL_Q5_0 ? offsetof(hl_block_q5_0, qs)
                                     : offsetof(hl_block_q5_1, qs);
    __m256i x[4], y[4];
    if (t == HL_Q4_0 || t == HL_Q4_1) {
        /* Transpose the packed bytes, then split: dword m of qs holds codes
         * 4m..4m+3 (low nibbles) and 16+4m.. (high nibbles). */
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) x[j] = pair16(wg + j * wb + qs, wg + (j + 4) * wb + qs);
        transpose_lanes(x);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++)
            w[m] = join(_mm256_and_si256(x[m], low4),
                        _mm256_and_si256(_mm256_srli_epi32(x[m], 4), low4));
        return;
    }
    /* Q5: split the nibbles of blocks j and j + 4, add the fifth bits (bit
     * e of qh belongs to code e), then transpose. */
    const size_t qh = t == HL_Q5_0 ? offsetof(hl_block_q5_0, qh) : offsetof(hl_block_q5_1, qh);
    const __m256i sixteen = _mm256_set1_epi8(16);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const uint8_t *b0 = wg + j * wb, *b1 = wg + (j + 4) * wb;
        const __m256i q = pair16(b0 + qs, b1 + qs);
        uint32_t h0, h1;
        memcpy(&h0, b0 + qh, sizeof h0);
        memcpy(&h1, b1 + qh, sizeof h1);
        const __m256i l = _mm256_and_si256(q, low4);
        const __m256i h = _mm256_and_si256(_mm256_srli_epi32(q, 4), low4);
        x[j] = _mm256_mask_add_epi8(l, _cvtu32_mask32((h0 & 0xffff) | h1 << 16), l, sixteen);
        y[j] = _mm256_mask_add_epi8(h, _cvtu32_mask32(h0 >> 16 | (h1 & 0xffff0000u)), h, sixteen);
    }
    transpose_lanes(x);
    transpose_lanes(y);
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) w[m] = join(x[m], y[m]);
}

/* An activation group: codes z in that layout, the start of each pair's
 * integer sum (-off * sum(a), by halves; 0 for the _1 types), scales da
 * and, for the _1 types, the s fields. */
typedef struct agroup {
    __m512i z[4], base;
    __m256 da, s;
} agroup;

INLINE void act_group(hl_dtype t, const uint8_t *ag, agroup *g) {
    const size_t ab = abytes(t);
    transpose8x32(ag + acodes(t), ab, g->z);
    g->da = halves8(ag, ab);
    if (has_min(t)) {
        g->base = _mm512_setzero_si512();
        g->s = halves8(ag + offsetof(hl_block_q8_1, s), ab);
        return;
    }
    const __m512i by = _mm512_set1_epi8((char)offset(t));
    __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int m = 0; m < 4; m++) s = _mm512_dpbusd_epi32(s, by, g->z[m]);
    g->base = _mm512_sub_epi32(_mm512_setzero_si512(), s);
    g->s = g->da;
}

/* The tile over the first nb8 blocks (a multiple of 8) into acc[r][k],
 * whose lanes are summed at the end. n_w and n_a are constants for the
 * full tile. */
INLINE void tile_groups(hl_dtype t, int nb8, const uint8_t *w, size_t w_stride, int n_w,
                        const uint8_t *a, size_t a_stride, int n_a,
                        __m256 acc[HL_GEMM_MAX_W][HL_DOT_MAX_A]) {
    const size_t wb = wbytes(t), ab = abytes(t);
    for (int ib = 0; ib < nb8; ib += GROUP) {
        __m512i wz[HL_GEMM_MAX_W][4];
        __m256 dw[HL_GEMM_MAX_W], m[HL_GEMM_MAX_W];
#pragma GCC unroll 4
        for (int r = 0; r < n_w; r++) {
            const uint8_t *wg = w + r * w_stride + ib * wb;
            weight_group(t, wg, wz[r]);
            dw[r] = halves8(wg, wb);
            m[r] = has_min(t) ? halves8(wg + 2, wb) : dw[r];
        }
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) {
            agroup g;
            act_group(t, a + k * a_stride + ib * ab, &g);
#pragma GCC unroll 4
            for (int r = 0; r < n_w; r++) {
                __m512i s = g.base;
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) s = _mm512_dpbusd_epi32(s, wz[r][j], g.z[j]);
                acc[r][k] = group_step(t, acc[r][k], fold(s), dw[r], m[r], g.da, g.s);
            }
        }
    }
}

/* One leftover block (weight blocks at w + r * w_stride, activation
 * blocks at a + k * a_stride) in the natural layout: the row kernel's
 * partial integer sums (the offset term taken once per activation row),
 * the row kernel's float step. */
INLINE void tile_block(hl_dtype t, const uint8_t *w, size_t w_stride, int n_w, const uint8_t *a,
                       size_t a_stride, int n_a, __m256 acc[HL_GEMM_MAX_W][HL_DOT_MAX_A]) {
    __m256i u[HL_GEMM_MAX_W];
    float dw[HL_GEMM_MAX_W], m[HL_GEMM_MAX_W];
#pragma GCC unroll 4
    for (int r = 0; r < n_w; r++) {
        u[r] = codes(t, w + r * w_stride);
        dw[r] = half(w + r * w_stride);
        m[r] = has_min(t) ? half(w + r * w_stride + 2) : 0.0f;
    }
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++) {
        const uint8_t *ablk = a + k * a_stride;
        const __m256i q = _mm256_loadu_si256((const __m256i *)(ablk + acodes(t)));
        const __m256i zero = _mm256_setzero_si256();
        const __m256i off = _mm256_set1_epi8((char)offset(t));
        const __m256i base =
            has_min(t) ? zero : _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, off, q));
#pragma GCC unroll 4
        for (int r = 0; r < n_w; r++) {
            const __m256i p = _mm256_dpbusd_epi32(base, u[r], q);
            acc[r][k] = block_step(t, acc[r][k], p, dw[r], m[r], ablk);
        }
    }
}

INLINE void gemm_tile(hl_dtype t, int n, const uint8_t *w, size_t w_stride, int n_w,
                      const uint8_t *a, size_t a_stride, int n_a, float *out, size_t out_stride) {
    const size_t wb = wbytes(t), ab = abytes(t);
    const int nb = n / HL_QK, nb8 = nb / GROUP * GROUP;
    if (n_w < 1 || n_w > HL_GEMM_MAX_W || n_a < 1 || n_a > HL_DOT_MAX_A) __builtin_unreachable();
    __m256 acc[HL_GEMM_MAX_W][HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int r = 0; r < HL_GEMM_MAX_W; r++)
#pragma GCC unroll 4
        for (int k = 0; k < HL_DOT_MAX_A; k++) acc[r][k] = _mm256_setzero_ps();
    tile_groups(t, nb8, w, w_stride, n_w, a, a_stride, n_a, acc);
    for (int ib = nb8; ib < nb; ib++)
        tile_block(t, w + ib * wb, w_stride, n_w, a + ib * ab, a_stride, n_a, acc);
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++)
#pragma GCC unroll 4
        for (int r = 0; r < n_w; r++) out[k * out_stride + r] = hsum(acc[r][k]);
}

/* One tile kernel per type, specialised for the full 4 x 4 tile. */
#define DEFINE_GEMM(name, type)                                                                    \
    static void name(int n, const void *w, size_t w_stride, int n_w, const void *a,                \
                     size_t a_stride, int n_a, float *out, size_t out_stride) {                    \
        if (n_w == 4 && n_a == 4)                                                                  \
            gemm_tile(type, n, w, w_stride, 4, a, a_stride, 4, out, out_stride);                   \
        else                                                                                       \
            gemm_tile(type, n, w, w_stride, n_w, a, a_stride, n_a, out, out_stride);               \
    }

DEFINE_GEMM(gemm_q4_0, HL_Q4_0)
DEFINE_GEMM(gemm_q4_1, HL_Q4_1)
DEFINE_GEMM(gemm_q5_0, HL_Q5_0)
DEFINE_GEMM(gemm_q5_1, HL_Q5_1)
DEFINE_GEMM(gemm_q8_0, HL_Q8_0)

void hl_kernels_fill_avx512_legacy(hl_kernels *k) {
    k->dot[HL_Q4_0] = dot_q4_0;
    k->dot[HL_Q4_1] = dot_q4_1;
    k->dot[HL_Q5_0] = dot_q5_0;
    k->dot[HL_Q5_1] = dot_q5_1;
    k->dot[HL_Q8_0] = dot_q8_0;
    k->gemm[HL_Q4_0] = gemm_q4_0;
    k->gemm[HL_Q4_1] = gemm_q4_1;
    k->gemm[HL_Q5_0] = gemm_q5_0;
    k->gemm[HL_Q5_1] = gemm_q5_1;
    k->gemm[HL_Q8_0] = gemm_q8_0;
}
