/* repack_amx.c - AMX-INT8 tiles for prefill on 8-row packed groups of Q4_0
 * and Q8_0 weights (layout and contract in repack.h).
 *
 * Math. For one block b, 16 activation rows and the 16 rows of two groups,
 * one TDPBSSD of
 *   A: the 16 activation rows' 32 codes (read in place: row k at act +
 *      k * act_stride, the block's qs),
 *   B: the groups' 32 x 16 signed weight codes in the VNNI order the
 *      packed layout already has per group (dword k of row r = the row's
 *      codes 4k..4k+3), the two groups side by side: Q8_0 bytes with their
 *      sign bit flipped back, Q4_0 nibbles minus 8,
 * leaves C[k][r] = the exact sum(c * a) that the AVX-512 packed kernel
 * gets from vpdpbusd and its offset term. C goes through memory to 16-lane
 * vectors, and per activation row k
 *   acc[k] += (float)C[k] * (d_w[0..15] * d_a[k])
 * block after block: repack_avx512.c's float operations in its order, so
 * a (row, activation row) result is bit-identical to that kernel's. The
 * AMX path decodes with that kernel (and prefills leftover rows of fewer
 * than 16 with it), and batch invariance holds across both.
 *
 * Blocks have one scale each, so a tile product covers one block (K = 32),
 * not the 64 the tiles allow; the per-block scaling in AVX-512 is most of
 * the cost.
 *
 * Tiles belong to the calling thread: each call loads its configuration
 * and releases the tiles when done. The process asks the kernel for the
 * tile state once (kernels.c, before this path is ever chosen).
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "repack.h"

#define INLINE static inline __attribute__((always_inline))

#include "repack_simd.h"

/* Tile registers (literals: the intrinsics paste them into the assembly). */
#define T_A 0 /* activations */
#define T_B 1 /* weights */
#define T_C 2 /* sums */

typedef struct tile_cfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_cfg;

static void configure(void) {
    tile_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.rows[T_A] = HL_PACKED_GEMM_ROWS, c.colsb[T_A] = HL_QK;       /* 16 x 32 int8 */
    c.rows[T_B] = HL_QK / 4, c.colsb[T_B] = 2 * HL_PACK_ROWS * 4;   /* 8 x (16 x 4) int8 */
    c.rows[T_C] = HL_PACKED_GEMM_ROWS, c.colsb[T_C] = 2 * HL_PACK_ROWS * 4; /* 16 x 16 int32 */
    _tile_loadconfig(&c);
}

/* Row k of B is [group 0's dword k | group 1's]: 128-bit lanes 0-1 of a
 * and b, or lanes 2-3 (a and b each hold two such 32-byte halves). */
INLINE __m512i pair_lo(__m512i a, __m512i b) { return _mm512_shuffle_i64x2(a, b, 0x44); }
INLINE __m512i pair_hi(__m512i a, __m512i b) { return _mm512_shuffle_i64x2(a, b, 0xee); }

/* The signed codes of block b of two groups (p1 NULL: zeros) in B's
 * layout: 8 rows of 64 bytes. */
INLINE void block_b(hl_dtype t, const uint8_t *p0, const uint8_t *p1, uint8_t bt[512]) {
    if (t == HL_Q4_0) {
        const size_t at = codes_at(HL_Q4_0);
        const __m512i low4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) { /* dwords 2h, 2h + 1 and, high nibbles, 4 + 2h, 5 + 2h */
            const __m512i a = _mm512_loadu_si512(p0 + at + 64 * h);
            const __m512i b = p1 ? _mm512_loadu_si512(p1 + at + 64 * h) : _mm512_setzero_si512();
            const __m512i al = _mm512_sub_epi8(_mm512_and_si512(a, low4), eight);
            const __m512i ah = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(a, 4), low4), eight);
            const __m512i bl = p1 ? _mm512_sub_epi8(_mm512_and_si512(b, low4), eight) : b;
            const __m512i bh =
                p1 ? _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(b, 4), low4), eight) : b;
            _mm512_storeu_si512(bt + 64 * (2 * h), pair_lo(al, bl));
            _mm512_storeu_si512(bt + 64 * (2 * h + 1), pair_hi(al, bl));
            _mm512_storeu_si512(bt + 64 * (4 + 2 * h), pair_lo(ah, bh));
            _mm512_storeu_si512(bt + 64 * (5 + 2 * h), pair_hi(ah, bh));
        }
    } else {
        const size_t at = codes_at(HL_Q8_0);
        const __m512i sign = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) { /* dwords 2h, 2h + 1 */
            const __m512i a = _mm512_xor_si512(_mm512_loadu_si512(p0 + at + 64 * h), sign);
            const __m512i b = p1 ? _mm512_xor_si512(_mm512_loadu_si512(p1 + at + 64 * h), sign)
                                 : _mm512_setzero_si512();
            _mm512_storeu_si512(bt + 64 * (2 * h), pair_lo(a, b));
            _mm512_storeu_si512(bt + 64 * (2 * h + 1), pair_hi(a, b));
        }
    }
}

/* Groups g0 and g0 + 1 (g1 NULL: g0 alone) against activation rows k0 ..
 * k0 + 15; out holds row 8 * g0 of activation row k0. */
INLINE void pair_rows(hl_dtype t, int nb, const uint8_t *g0, const uint8_t *g1, const uint8_t *act,
                      size_t act_stride, float *out, size_t out_stride) {
    const size_t bb = block_bytes(t);
    _Alignas(64) uint8_t bt[512];
    _Alignas(64) int32_t c[HL_PACKED_GEMM_ROWS][2 * HL_PACK_ROWS];
    __m512 acc[HL_PACKED_GEMM_ROWS];
#pragma GCC unroll 16
    for (int k = 0; k < HL_PACKED_GEMM_ROWS; k++) acc[k] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *p0 = g0 + (size_t)b * bb, *p1 = g1 ? g1 + (size_t)b * bb : NULL;
        const uint8_t *ab = act + (size_t)b * sizeof(hl_block_q8_0);
        block_b(t, p0, p1, bt);
        _tile_loadd(T_B, bt, 2 * HL_PACK_ROWS * 4);
        _tile_loadd(T_A, ab + offsetof(hl_block_q8_0, qs), act_stride);
        _tile_zero(T_C);
        _tile_dpbssd(T_C, T_A, T_B);
        _tile_stored(T_C, c, 2 * HL_PACK_ROWS * 4);
        /* the 8 scales at the start of each group's block */
        const __m128i d0 = _mm_loadu_si128((const __m128i *)p0);
        const __m128i d1 = p1 ? _mm_loadu_si128((const __m128i *)p1) : _mm_setzero_si128();
        const __m512 dw = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(d0), d1, 1));
#pragma GCC unroll 16
        for (int k = 0; k < HL_PACKED_GEMM_ROWS; k++) {
            uint16_t dh;
            memcpy(&dh, ab + k * act_stride, sizeof dh);
            const __m512 da = _mm512_set1_ps(_cvtsh_ss(dh));
            const __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(c[k]));
            acc[k] = _mm512_fmadd_ps(s, _mm512_mul_ps(dw, da), acc[k]);
        }
    }
    const __mmask16 keep = g1 ? 0xffff : 0x00ff;
#pragma GCC unroll 16
    for (int k = 0; k < HL_PACKED_GEMM_ROWS; k++) _mm512_mask_storeu_ps(out + k * out_stride, keep, acc[k]);
}

INLINE void gemm(hl_dtype t, int n_in, const void *packed, int g0, int g1, const void *act,
                 size_t act_stride, int n_a, float *out, size_t out_stride) {
    const int nb = n_in / HL_QK;
    const size_t gb = hl_packed_group_bytes(t, n_in);
    configure();
    for (int g = g0; g < g1; g += 2) {
        const uint8_t *p0 = (const uint8_t *)packed + (size_t)g * gb;
        const uint8_t *p1 = g + 1 < g1 ? p0 + gb : NULL;
        for (int k0 = 0; k0 + HL_PACKED_GEMM_ROWS <= n_a; k0 += HL_PACKED_GEMM_ROWS)
            pair_rows(t, nb, p0, p1, (const uint8_t *)act + (size_t)k0 * act_stride, act_stride,
                      out + (size_t)k0 * out_stride + (size_t)g * HL_PACK_ROWS, out_stride);
    }
    _tile_release();
}

static void gemm_q4_0(int n_in, const void *packed, int g0, int g1, const void *act, size_t act_stride,
                      int n_a, float *out, size_t out_stride) {
    gemm(HL_Q4_0, n_in, packed, g0, g1, act, act_stride, n_a, out, out_stride);
}

static void gemm_q8_0(int n_in, const void *packed, int g0, int g1, const void *act, size_t act_stride,
                      int n_a, float *out, size_t out_stride) {
    gemm(HL_Q8_0, n_in, packed, g0, g1, act, act_stride, n_a, out, out_stride);
}

hl_packed_gemm_fn hl_packed_gemm_amx(hl_dtype t) {
    return t == HL_Q4_0 ? gemm_q4_0 : t == HL_Q8_0 ? gemm_q8_0 : NULL;
}
