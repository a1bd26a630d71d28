/* kern_legacy_avx2.c - AVX2 (+FMA, F16C) kernels of the 32-element block
 * types Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 and the Q8_0 / Q8_1 activation
 * quantizers; same results as kern_legacy.c up to the order of the float
 * additions (kernels.h).
 *
 * Math. A weight block decodes to one 32-byte vector, element j in byte j:
 * the unsigned 4- or 5-bit codes q, or Q8_0's signed values c. Against an
 * activation block a (int8 codes in [-127, 127], as every Q8 quantizer
 * here and in llama.cpp produces), maddubs gives 16 exact i16 pair sums:
 *   Q4_0 / Q5_0:  maddubs(q, a) - maddubs(off, a), off = 8 | 16, which is
 *                 sum((q - off) a) pairwise (each term < 2 * 31 * 127);
 *   Q8_0:         maddubs(|c|, a * sign(c)) (each < 2 * 128 * 127 < 2^15);
 *   Q4_1 / Q5_1:  maddubs(q, a); the min term is m * s, s the f16 field
 *                 of the Q8_1 block, as in llama.cpp (see kern_legacy.c);
 * madd with ones widens them to 8 i32 lanes totalling the block's exact
 * integer sum.
 *
 * Float order (batch invariance). dot and gemm give bit-identical results
 * for a (weight row, activation row) pair, whatever the tile or the other
 * rows of the call, because both follow one order, kept in 8 float lanes:
 *  - quads of 4 blocks, quad q (blocks 4q..4q+3) in lanes 0-3 when q is
 *    even, 4-7 when odd: lane j of those takes block j of the quad,
 *    acc = fma(float(isum), dw * da, acc), then for the _1 types
 *    acc = fma(m, s, acc);
 *  - each leftover block (n / 32 not a multiple of 4) in turn: its 8
 *    partial integer sums (lane l: codes 4l..4l+3) as
 *    acc = fma(float(p), dw * da, acc), then the min term into lane 0 as
 *    acc = fma(m, (s, 0, ..., 0), acc);
 *  - the result is hsum: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
 *
 * The row kernel (dot) reduces a quad's 4 lane vectors (unpacks and adds)
 * to one vector whose lane j is block j's sum, converted to float once and
 * multiply-added with the 4 scale products dw * da (then the 4 min terms
 * m * s) into one of two 128-bit accumulators; the f16 scales are packed
 * through a general register and converted with one vcvtph2ps. A quad is
 * decoded once for all n_a activation rows. (Decoding 8 blocks at once,
 * as the AVX-512 file does, needs more than 16 vector registers: measured
 * slower.)
 *
 * The prefill tiles (gemm) of Q4_0 Q4_1 Q5_0 Q5_1 compute the same
 * integer sums in a transposed layout, in the same float order; see their
 * section.
 *
 * Quantizers round to nearest even with id = 127 / amax, as llama.cpp's
 * AVX code does. Pure functions over caller memory: thread-safe, no
 * allocation; loads are unaligned and stay inside the rows.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define INLINE static inline __attribute__((always_inline))
#define GROUP 4 /* blocks reduced together */

INLINE float half(const void *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}

INLINE uint64_t load_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return h;
}

/* The f16 values at p, p + stride, p + 2 stride, p + 3 stride, as floats. */
INLINE __m128 halves4(const uint8_t *p, size_t stride) {
    const uint64_t v = load_u16(p) | load_u16(p + stride) << 16 | load_u16(p + 2 * stride) << 32 |
                       load_u16(p + 3 * stride) << 48;
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)v));
}

/* Bytes 0..15 the low nibbles of qs, bytes 16..31 the high nibbles. */
INLINE __m256i nibbles(const uint8_t *qs) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0f));
}

/* Byte j = 0xff when bit j of the little-endian u32 at qh is set, else 0. */
INLINE __m256i bit_bytes(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

INLINE __m256i widen_pairs(__m256i p16) {
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
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
INLINE int offset(hl_dtype t) {
    return t == HL_Q4_0 ? 8 : t == HL_Q5_0 ? 16 : 0;
}

/* Decoded weight block: u the unsigned codes (Q4/Q5) or signed values
 * (Q8_0), and for Q8_0 |values|. */
typedef struct wcodes {
    __m256i u, mag;
} wcodes;

INLINE wcodes decode(hl_dtype t, const uint8_t *blk) {
    wcodes r;
    switch (t) {
    case HL_Q4_0:
        r.u = nibbles(((const hl_block_q4_0 *)blk)->qs);
        break;
    case HL_Q4_1:
        r.u = nibbles(((const hl_block_q4_1 *)blk)->qs);
        break;
    case HL_Q5_0: {
        const hl_block_q5_0 *b = (const hl_block_q5_0 *)blk;
        const __m256i high = _mm256_and_si256(bit_bytes(b->qh), _mm256_set1_epi8(0x10));
        r.u = _mm256_or_si256(nibbles(b->qs), high);
        break;
    }
    case HL_Q5_1: {
        const hl_block_q5_1 *b = (const hl_block_q5_1 *)blk;
        const __m256i high = _mm256_and_si256(bit_bytes(b->qh), _mm256_set1_epi8(0x10));
        r.u = _mm256_or_si256(nibbles(b->qs), high);
        break;
    }
    default:
        r.u = _mm256_loadu_si256((const __m256i *)((const hl_block_q8_0 *)blk)->qs);
        r.mag = _mm256_sign_epi8(r.u, r.u);
        return r;
    }
    r.mag = r.u;
    return r;
}

INLINE size_t abytes(hl_dtype t) {
    return has_min(t) ? sizeof(hl_block_q8_1) : sizeof(hl_block_q8_0);
}
INLINE size_t acodes(hl_dtype t) {
    return has_min(t) ? offsetof(hl_block_q8_1, qs) : offsetof(hl_block_q8_0, qs);
}

/* 8 i32 lanes totalling the block's integer sum: sum((u - off) a) or, for
 * Q8_0, sum(u a). */
INLINE __m256i block_sum(hl_dtype t, wcodes w, const uint8_t *ab) {
    const __m256i a = _mm256_loadu_si256((const __m256i *)(ab + acodes(t)));
    if (t == HL_Q8_0) return widen_pairs(_mm256_maddubs_epi16(w.mag, _mm256_sign_epi8(a, w.u)));
    __m256i p16 = _mm256_maddubs_epi16(w.u, a);
    if (!has_min(t))
        p16 = _mm256_sub_epi16(p16, _mm256_maddubs_epi16(_mm256_set1_epi8((char)offset(t)), a));
    return widen_pairs(p16);
}

/* The Q8_1 block's s field (the _1 types' min term is m * s). */
INLINE float act_s(const uint8_t *ab) {
    return half(ab + offsetof(hl_block_q8_1, s));
}

/* x in lane 0, zeros above (a leftover block's s, for the min term's FMA). */
INLINE __m256 lane0(float x) {
    return _mm256_zextps128_ps256(_mm_set_ss(x));
}

/* Lane j of the result = the total of v[j]'s 8 lanes. */
INLINE __m128i totals4(const __m256i v[GROUP]) {
    const __m256i p01 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(v[0], v[1]), _mm256_unpackhi_epi32(v[0], v[1]));
    const __m256i p23 =
        _mm256_add_epi32(_mm256_unpacklo_epi32(v[2], v[3]), _mm256_unpackhi_epi32(v[2], v[3]));
    const __m256i q =
        _mm256_add_epi32(_mm256_unpacklo_epi64(p01, p23), _mm256_unpackhi_epi64(p01, p23));
    return _mm_add_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
}

/* The shared order's final sum: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). */
INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* A leftover block's step of the shared order: p its 8 partial integer
 * sums (block_sum's layout), ablk the activation block. */
INLINE __m256 block_step(hl_dtype t, __m256 acc, __m256i p, float dw, float m,
                         const uint8_t *ablk) {
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * half(ablk)), acc);
    return has_min(t) ? _mm256_fmadd_ps(_mm256_set1_ps(m), lane0(act_s(ablk)), acc) : acc;
}

/* One quad (4 blocks from wg, activation blocks from a) into acc[k],
 * 4 lanes of the shared order, for activation rows k < n_a. */
INLINE void quad_rows(hl_dtype t, const uint8_t *wg, const uint8_t *a, size_t a_stride, int n_a,
                      __m128 acc[HL_DOT_MAX_A]) {
    const size_t wb = wbytes(t), ab = abytes(t);
    wcodes u[GROUP];
#pragma GCC unroll 4
    for (int j = 0; j < GROUP; j++) u[j] = decode(t, wg + j * wb);
    const __m128 dw = halves4(wg, wb);
    const __m128 m = has_min(t) ? halves4(wg + 2, wb) : dw;
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++) {
        const uint8_t *ag = a + k * a_stride;
        __m256i p[GROUP];
#pragma GCC unroll 4
        for (int j = 0; j < GROUP; j++) p[j] = block_sum(t, u[j], ag + j * ab);
        const __m128 da = halves4(ag, ab);
        acc[k] = _mm_fmadd_ps(_mm_cvtepi32_ps(totals4(p)), _mm_mul_ps(dw, da), acc[k]);
        if (has_min(t))
            acc[k] = _mm_fmadd_ps(m, halves4(ag + offsetof(hl_block_q8_1, s), ab), acc[k]);
    }
}

/* The whole row; t and (for the specialised calls) n_a are constants.
 * acc4[0] holds lanes 0-3 of the shared order, acc4[1] lanes 4-7. */
INLINE void dot_rows(hl_dtype t, int n, const uint8_t *w, const uint8_t *a, size_t a_stride,
                     int n_a, float *out, size_t out_stride) {
    const size_t wb = wbytes(t), ab = abytes(t);
    const int nb = n / HL_QK;
    __m128 acc4[2][HL_DOT_MAX_A];
    for (int k = 0; k < n_a; k++) acc4[0][k] = acc4[1][k] = _mm_setzero_ps();
    int ib = 0;
    for (; ib + GROUP <= nb; ib += GROUP) { /* quads in pairs, the last may be alone */
        quad_rows(t, w + ib * wb, a + ib * ab, a_stride, n_a, acc4[0]);
        ib += GROUP;
        if (ib + GROUP > nb) break;
        quad_rows(t, w + ib * wb, a + ib * ab, a_stride, n_a, acc4[1]);
    }
    __m256 acc[HL_DOT_MAX_A];
    for (int k = 0; k < n_a; k++) acc[k] = _mm256_set_m128(acc4[1][k], acc4[0][k]);
    for (; ib < nb; ib++) {
        const uint8_t *wblk = w + ib * wb;
        const wcodes u = decode(t, wblk);
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
 * blocks in a transposed layout: vector c (c = 0..7) holds code dword c
 * (codes 4c..4c+3) of each of the 8 blocks, lane j = block j. maddubs of a
 * weight row's vector c with an activation row's gives 16-bit pair sums
 * inside each block's lanes; the group's 8 add up in 16 bits, one madd
 * widens them to lane j = block j's integer sum, and one conversion and
 * one FMA with the 8 scale products finish the group (lane j: block j,
 * the shared float order): no horizontal reduction per block. The 16-bit
 * sums are exact: a pair's sum starts at -off times the activation pair
 * sums (wrapping arithmetic), so each
 * 16-bit lane ends at a sum of 16 products (u - off) a, at most
 * 16 * 16 * 127 = 32512 in size (Q4_0, Q5_0); maddubs itself never
 * saturates (its pairs stay under 2 * 31 * 127). Q4_1 sums 16 u a <=
 * 30480; Q5_1 (up to 62992) sums two halves of 4 vectors separately.
 * Q8_0 has no tile here: its 16-bit pair sums (sign trick) cannot be
 * added, and with a madd per vector the tile measured no faster than the
 * row kernel.
 *
 * Registers are few (16), so the activation rows of up to CHUNK groups
 * are transposed once into a stack buffer, with their corrections, scales
 * and (_1 types) s fields; then each weight row sweeps the chunk with its
 * n_a accumulators in registers, its group decoded once into 8 registers
 * for the n_a activation rows. Leftover blocks (n / 32 not a multiple of
 * 8) go as the row kernel takes them: a quad, if 4 or more are left, then
 * one by one in the natural layout. The _1 types' min term is m * s, s the
 * Q8_1 blocks' f16 field, as in the row kernel. */

#define TGROUP 8 /* blocks of a transposed group */
#define CHUNK 16 /* groups staged at once */

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

/* The 16 bytes at lo, then the 16 at hi (broadcast loads and a blend: no
 * cross-lane shuffle). */
INLINE __m256i pair16(const uint8_t *lo, const uint8_t *hi) {
    return _mm256_blend_epi32(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                              _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hi)),
                              0xf0);
}

/* The 32 bytes at p + j * stride (j < 8), transposed: out[c] lane j =
 * bytes 4c..4c+3 of row j. */
INLINE void transpose8x32(const uint8_t *p, size_t stride, __m256i out[8]) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        out[j] = pair16(p + j * stride, p + (j + 4) * stride);
        out[j + 4] = pair16(p + j * stride + 16, p + (j + 4) * stride + 16);
    }
    transpose_lanes(out);
    transpose_lanes(out + 4);
}

/* The f16 values at p + j * stride (j < 8) as floats. */
INLINE __m256 halves8(const uint8_t *p, size_t stride) {
    return _mm256_set_m128(halves4(p + 4 * stride, stride), halves4(p, stride));
}

/* A weight group (8 blocks from wg) in the transposed layout, the codes as
 * decode() gives them (Q4 / Q5 types). */
INLINE void weight_group(hl_dtype t, const uint8_t *wg, __m256i u[8]) {
    const size_t wb = wbytes(t);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const size_t qs = t == HL_Q4_0   ? offsetof(hl_block_q4_0, qs)
                      : t == HL_Q4_1 ? offsetof(hl_block_q4_1, qs)
                      : t == HL_Q5_0 ? offsetof(hl_block_q5_0, qs)
                                     : offsetof(hl_block_q5_1, qs);
    if (t == HL_Q4_0 || t == HL_Q4_1) {
        /* Transpose the packed bytes, then split: dword c of qs holds codes
         * 4c..4c+3 (low nibbles) and 16+4c.. (high nibbles). */
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) u[j] = pair16(wg + j * wb + qs, wg + (j + 4) * wb + qs);
        transpose_lanes(u);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            u[c + 4] = _mm256_and_si256(_mm256_srli_epi32(u[c], 4), low4);
            u[c] = _mm256_and_si256(u[c], low4);
        }
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
        uint32_t h0, h1, lo, hi;
        memcpy(&h0, b0 + qh, sizeof h0);
        memcpy(&h1, b1 + qh, sizeof h1);
        lo = (h0 & 0xffff) | h1 << 16; /* codes 0..15 of both blocks */
        hi = h0 >> 16 | (h1 & 0xffff0000u);
        u[j] = _mm256_or_si256(_mm256_and_si256(q, low4),
                               _mm256_and_si256(bit_bytes((const uint8_t *)&lo), sixteen));
        u[j + 4] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(q, 4), low4),
                                   _mm256_and_si256(bit_bytes((const uint8_t *)&hi), sixteen));
    }
    transpose_lanes(u);
    transpose_lanes(u + 4);
}

/* One activation row's share of a group, staged. */
typedef struct agroup {
    __m256i q[8]; /* transposed codes */
    __m256i base; /* 16-bit lanes: -off * the pair sums of a (0 for the _1 types) */
    __m256 d;     /* lane j: block j's scale */
    __m256 s;     /* _1 types, lane j: block j's s field */
} agroup;

INLINE void act_group(hl_dtype t, const uint8_t *ag, agroup *g) {
    const size_t ab = abytes(t);
    const __m256i by = _mm256_set1_epi8((char)offset(t));
    __m256i q[8], s = _mm256_setzero_si256();
    transpose8x32(ag + acodes(t), ab, q);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        g->q[c] = q[c];
        if (!has_min(t))
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(by, q[c])); /* |lane| <= 2032 */
    }
    g->d = halves8(ag, ab);
    g->base = _mm256_sub_epi16(_mm256_setzero_si256(), s);
    g->s = has_min(t) ? halves8(ag + offsetof(hl_block_q8_1, s), ab) : g->d;
}

/* Lane j: block j's integer sum of weight codes u against the staged
 * activation codes of g. */
INLINE __m256i group_sum(hl_dtype t, const __m256i u[8], const agroup *g) {
    if (t == HL_Q5_1) {
        __m256i lo = _mm256_setzero_si256(), hi = lo;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            lo = _mm256_add_epi16(lo, _mm256_maddubs_epi16(u[c], g->q[c]));
            hi = _mm256_add_epi16(hi, _mm256_maddubs_epi16(u[c + 4], g->q[c + 4]));
        }
        return _mm256_add_epi32(widen_pairs(lo), widen_pairs(hi));
    }
    __m256i s = g->base;
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(u[c], g->q[c]));
    return widen_pairs(s);
}

/* The ng staged groups from block ib, for every weight row, into
 * acc[r][k], in the shared float order. n_w and n_a are constants for the
 * full tile. */
INLINE void tile_chunk(hl_dtype t, int ib, int ng, const uint8_t *w, size_t w_stride, int n_w,
                       const agroup st[HL_DOT_MAX_A][CHUNK], int n_a,
                       __m256 acc[HL_GEMM_MAX_W][HL_DOT_MAX_A]) {
    const size_t wb = wbytes(t);
#pragma GCC unroll 1
    for (int r = 0; r < n_w; r++) {
        __m256 sum[HL_DOT_MAX_A];
#pragma GCC unroll 4
        for (int k = 0; k < HL_DOT_MAX_A; k++) sum[k] = acc[r][k];
        for (int gi = 0; gi < ng; gi++) {
            const uint8_t *wg = w + r * w_stride + (ib + gi * TGROUP) * wb;
            __m256i u[8];
            weight_group(t, wg, u);
            const __m256 dw = halves8(wg, wb);
            const __m256 m = has_min(t) ? halves8(wg + 2, wb) : dw;
#pragma GCC unroll 4
            for (int k = 0; k < n_a; k++) {
                const agroup *g = &st[k][gi];
                sum[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(group_sum(t, u, g)),
                                         _mm256_mul_ps(dw, g->d), sum[k]);
                if (has_min(t)) sum[k] = _mm256_fmadd_ps(m, g->s, sum[k]);
            }
        }
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) acc[r][k] = sum[k];
    }
}

/* One leftover block (weight blocks at w + r * w_stride, activation blocks
 * at a + k * a_stride) in the natural layout, as the row kernel takes it. */
INLINE void tile_block(hl_dtype t, const uint8_t *w, size_t w_stride, int n_w, const uint8_t *a,
                       size_t a_stride, int n_a, __m256 acc[HL_GEMM_MAX_W][HL_DOT_MAX_A]) {
#pragma GCC unroll 1
    for (int r = 0; r < n_w; r++) {
        const uint8_t *wblk = w + r * w_stride;
        const wcodes u = decode(t, wblk);
        const float dw = half(wblk), m = has_min(t) ? half(wblk + 2) : 0.0f;
#pragma GCC unroll 4
        for (int k = 0; k < n_a; k++) {
            const uint8_t *ablk = a + k * a_stride;
            acc[r][k] = block_step(t, acc[r][k], block_sum(t, u, ablk), dw, m, ablk);
        }
    }
}

INLINE void gemm_tile(hl_dtype t, int n, const uint8_t *w, size_t w_stride, int n_w,
                      const uint8_t *a, size_t a_stride, int n_a, float *out, size_t out_stride) {
    const size_t wb = wbytes(t), ab = abytes(t);
    const int nb = n / HL_QK, ng_all = nb / TGROUP;
    if (n_w < 1 || n_w > HL_GEMM_MAX_W || n_a < 1 || n_a > HL_DOT_MAX_A) __builtin_unreachable();
    __m256 acc[HL_GEMM_MAX_W][HL_DOT_MAX_A];
    for (int r = 0; r < HL_GEMM_MAX_W; r++)
        for (int k = 0; k < HL_DOT_MAX_A; k++) acc[r][k] = _mm256_setzero_ps();
    agroup st[HL_DOT_MAX_A][CHUNK];
    for (int g0 = 0; g0 < ng_all; g0 += CHUNK) {
        const int ng = ng_all - g0 < CHUNK ? ng_all - g0 : CHUNK;
        for (int k = 0; k < n_a; k++)
            for (int gi = 0; gi < ng; gi++)
                act_group(t, a + k * a_stride + (size_t)(g0 + gi) * TGROUP * ab, &st[k][gi]);
        tile_chunk(t, g0 * TGROUP, ng, w, w_stride, n_w, st, n_a, acc);
    }
    int ib = ng_all * TGROUP;
    if (ib + GROUP <= nb) { /* a leftover quad, into lanes 0-3 as in the row kernel */
        for (int r = 0; r < n_w; r++) {
            __m128 lo[HL_DOT_MAX_A];
            for (int k = 0; k < n_a; k++) lo[k] = _mm256_castps256_ps128(acc[r][k]);
            quad_rows(t, w + r * w_stride + ib * wb, a + ib * ab, a_stride, n_a, lo);
            for (int k = 0; k < n_a; k++) acc[r][k] = _mm256_insertf128_ps(acc[r][k], lo[k], 0);
        }
        ib += GROUP;
    }
    for (; ib < nb; ib++)
        tile_block(t, w + ib * wb, w_stride, n_w, a + ib * ab, a_stride, n_a, acc);
    for (int r = 0; r < n_w; r++)
        for (int k = 0; k < n_a; k++) out[k * out_stride + r] = hsum(acc[r][k]);
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

/* --- activation quantizers ----------------------------------------------- */

/* Quantizes 32 floats to codes; returns d = amax / 127 and, in *sum, the
 * total of the codes. */
INLINE float quant_block(const float *x, int8_t *q, int *sum) {
    __m256 v[4], amax = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float mx = _mm_cvtss_f32(m4);
    const __m256 id = _mm256_set1_ps(mx != 0.0f ? 127.0f / mx : 0.0f);
    __m256i i32[4];
    for (int i = 0; i < 4; i++) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], id)); /* RNE */
    const __m256i s =
        _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
    *sum = _mm_cvtsi128_si32(s4);
    /* Packing works within 128-bit lanes: the bytes come out as 4-lane
     * groups 0 2 4 6 1 3 5 7; one dword permute restores the order. */
    const __m256i p16a = _mm256_packs_epi32(i32[0], i32[1]);
    const __m256i p16b = _mm256_packs_epi32(i32[2], i32[3]);
    const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    const __m256i fixed =
        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, fixed);
    return mx / 127.0f;
}

static void quant_q8_0(const float *x, void *dst, int n) {
    hl_block_q8_0 *b = dst;
    for (int i = 0; i < n / HL_QK; i++) {
        int sum;
        b[i].d = _cvtss_sh(quant_block(x + i * HL_QK, b[i].qs, &sum), _MM_FROUND_TO_NEAREST_INT);
    }
}

static void quant_q8_1(const float *x, void *dst, int n) {
    hl_block_q8_1 *b = dst;
    for (int i = 0; i < n / HL_QK; i++) {
        int sum;
        const float d = quant_block(x + i * HL_QK, b[i].qs, &sum);
        b[i].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        b[i].s = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

void hl_kernels_fill_avx2_legacy(hl_kernels *k) {
    k->dot[HL_Q4_0] = dot_q4_0;
    k->dot[HL_Q4_1] = dot_q4_1;
    k->dot[HL_Q5_0] = dot_q5_0;
    k->dot[HL_Q5_1] = dot_q5_1;
    k->dot[HL_Q8_0] = dot_q8_0;
    k->gemm[HL_Q4_0] = gemm_q4_0;
    k->gemm[HL_Q4_1] = gemm_q4_1;
    k->gemm[HL_Q5_0] = gemm_q5_0;
    k->gemm[HL_Q5_1] = gemm_q5_1;
    k->quant[HL_Q8_0] = quant_q8_0;
    k->quant[HL_Q8_1] = quant_q8_1;
}
