/* repack_amx.c - AMX-INT8 tiles for prefill on 8-row packed groups of Q4_0
 * and Q8_0 weights (layout and contract in repack.h).
 *
 * Math. For one block b, 16 activation rows and the 8 rows of a group, one
 * TDPBSSD of
 *   A: the 16 activation rows' 32 codes (read in place: row k at act +
 *      k * act_stride, the block's qs),
 *   B: the group's 32 x 8 signed weight codes in the VNNI order the packed
 *      layout already has (dword k of row r = the row's codes 4k..4k+3):
 *      Q8_0 bytes with their sign bit flipped back, Q4_0 nibbles minus 8,
 * leaves C[k][r] = the exact sum(c * a) that the AVX-512 packed kernel
 * gets from vpdpbusd and its offset term. C goes through memory to 8-lane
 * vectors, and per activation row k
 *   acc[k] += (float)C[k] * (d_w[0..7] * d_a[k])
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
    c.rows[T_A] = HL_PACKED_GEMM_ROWS, c.colsb[T_A] = HL_QK;          /* 16 x 32 int8 */
    c.rows[T_B] = HL_QK / 4, c.colsb[T_B] = HL_PACK_ROWS * 4;          /* 8 x (8 x 4) int8 */
    c.rows[T_C] = HL_PACKED_GEMM_ROWS, c.colsb[T_C] = HL_PACK_ROWS * 4; /* 16 x 8 int32 */
    _tile_loadconfig(&c);
}

/* The block's signed codes in B's layout (8 rows of 32 bytes). */
INLINE void block_b(hl_dtype t, const uint8_t *blk, uint8_t bt[256]) {
    if (t == HL_Q4_0) {
        const uint8_t *q = blk + offsetof(hl_block_q4_0x8, qs);
        const __m512i low4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m512i v = _mm512_loadu_si512(q + 64 * h);
            _mm512_storeu_si512(bt + 64 * h, _mm512_sub_epi8(_mm512_and_si512(v, low4), eight));
            _mm512_storeu_si512(bt + 128 + 64 * h,
                                _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), low4), eight));
        }
    } else {
        const uint8_t *q = blk + offsetof(hl_block_q8_0x8, qs);
        const __m512i sign = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++)
            _mm512_storeu_si512(bt + 64 * h, _mm512_xor_si512(_mm512_loadu_si512(q + 64 * h), sign));
    }
}

/* One group against activation rows k0 .. k0 + 15. */
INLINE void group_rows(hl_dtype t, int nb, const uint8_t *grp, const uint8_t *act, size_t act_stride,
                       float *out, size_t out_stride) {
    const size_t bb = t == HL_Q4_0 ? sizeof(hl_block_q4_0x8) : sizeof(hl_block_q8_0x8);
    _Alignas(64) uint8_t bt[256];
    _Alignas(64) int32_t c[HL_PACKED_GEMM_ROWS][HL_PACK_ROWS];
    __m256 acc[HL_PACKED_GEMM_ROWS];
#pragma GCC unroll 16
    for (int k = 0; k < HL_PACKED_GEMM_ROWS; k++) acc[k] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = grp + (size_t)b * bb;
        const uint8_t *ab = act + (size_t)b * sizeof(hl_block_q8_0);
        block_b(t, blk, bt);
        _tile_loadd(T_B, bt, HL_PACK_ROWS * 4);
        _tile_loadd(T_A, ab + offsetof(hl_block_q8_0, qs), act_stride);
        _tile_zero(T_C);
        _tile_dpbssd(T_C, T_A, T_B);
        _tile_stored(T_C, c, HL_PACK_ROWS * 4);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk)); /* d[8] first */
#pragma GCC unroll 16
        for (int k = 0; k < HL_PACKED_GEMM_ROWS; k++) {
            uint16_t dh;
            memcpy(&dh, ab + k * act_stride, sizeof dh);
            const __m256 da = _mm256_set1_ps(_cvtsh_ss(dh));
            const __m256 s = _mm256_cvtepi32_ps(_mm256_load_si256((const __m256i *)c[k]));
            acc[k] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw, da), acc[k]);
        }
    }
#pragma GCC unroll 16
    for (int k = 0; k < HL_PACKED_GEMM_ROWS; k++) _mm256_storeu_ps(out + k * out_stride, acc[k]);
}

INLINE void gemm(hl_dtype t, int n_in, const void *packed, int g0, int g1, const void *act,
                 size_t act_stride, int n_a, float *out, size_t out_stride) {
    const int nb = n_in / HL_QK;
    const size_t gb = hl_packed_group_bytes(t, n_in);
    configure();
    for (int g = g0; g < g1; g++)
        for (int k0 = 0; k0 + HL_PACKED_GEMM_ROWS <= n_a; k0 += HL_PACKED_GEMM_ROWS)
            group_rows(t, nb, (const uint8_t *)packed + (size_t)g * gb,
                       (const uint8_t *)act + (size_t)k0 * act_stride, act_stride,
                       out + (size_t)k0 * out_stride + (size_t)g * HL_PACK_ROWS, out_stride);
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
