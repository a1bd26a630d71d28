/* repack.h - weights re-laid at load time in groups of 8 rows, and the
 * kernels that multiply such a group with up to 4 activation rows.
 *
 *   size_t bytes = hl_repack_bytes(HL_Q4_0, n_in, n_out);    // 0: keep rows
 *   hl_repack(HL_Q4_0, w, row_bytes, n_in, 0, n_out / 8, packed);
 *   hl_packed_kernel(HL_Q4_0)(n_in, packed + g * hl_packed_group_bytes(HL_Q4_0, n_in),
 *                             xq, 0, 1, y + 8 * g, 1);       // rows 8g..8g+7
 *
 * Why. A row-at-a-time dot product reduces every block's partial sums
 * horizontally and handles its scale alone. Here the 8 rows of a group are
 * interleaved so that one 32-bit vector lane holds 4 consecutive codes of
 * one row: one vpdpbusd (or maddubs + madd) of a group vector with 4
 * activation bytes broadcast to every lane advances the 8 rows' dot
 * products at once, lane r = row r, and a block ends with one int-to-float
 * conversion and one FMA with the 8 row scales times the activation scale.
 *
 * Layout. A group is n_in / 32 packed blocks, one per block index b: the
 * 8 rows' scales, then their codes in 4-byte units, unit u of row r at
 * qs[u][r] (structs below); groups follow each other. Codes:
 *   Q4_0: unit u < 4 is the row's qs[4u..4u+3] as stored (low nibbles
 *         elements 4u..4u+3, high nibbles 16+4u..16+4u+3);
 *   Q8_0: unit u < 8 is elements 4u..4u+3 as bytes c + 128 (the int8 code
 *         with its sign bit flipped: the unsigned operand vpdpbusd takes).
 * One stream through memory per group, like a row's blocks. (Scales of a
 * whole group after its codes made decode up to 2.5x slower here: the
 * prefetchers lose the second stream; a 64-byte-aligned variant with the
 * scales of 4 blocks in one line measured no faster.)
 *
 * Kernels return exactly the row kernels' per-block integer sums (the
 * activations are Q8_0 blocks with codes in [-127, 127], as every Q8_0
 * quantizer here produces); like kernels.h's paths they differ from the
 * scalar reference only in the rounding of the float sums across blocks.
 * The scalar kernel does the reference's float arithmetic exactly.
 * Batch invariance: a (row, activation row) result accumulates block by
 * block in its own lane, so it is bit-identical whatever n_a and the
 * row's position in the call (not necessarily equal to the row kernels':
 * a matrix is read packed or by rows for the whole life of a model).
 *
 * Use. The packed buffer needs the structs' 2-byte alignment (64 is best).
 * Decode streams each group once at memory speed. For prefill, run the
 * token groups inside the loop over row groups, so that a group (n_in / 32
 * * 144 or 272 bytes) stays in L1 while every token passes over it.
 *
 * Everything here is a pure function over caller memory: thread-safe, no
 * allocation. Repack groups g0..g1 from several threads at once if wanted.
 */
#ifndef HL_REPACK_H
#define HL_REPACK_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define HL_PACK_ROWS 8 /* rows per group */

typedef struct hl_block_q4_0x8 {    /* block b of 8 Q4_0 rows */
    uint16_t d[HL_PACK_ROWS];       /* f16 scale of each row */
    uint8_t qs[4][HL_PACK_ROWS][4]; /* [u][r]: row r's qs[4u..4u+3] */
} hl_block_q4_0x8;

typedef struct hl_block_q8_0x8 {    /* block b of 8 Q8_0 rows */
    uint16_t d[HL_PACK_ROWS];       /* f16 scale of each row */
    uint8_t qs[8][HL_PACK_ROWS][4]; /* [u][r]: row r's codes 4u..4u+3, + 128 */
} hl_block_q8_0x8;

static_assert(sizeof(hl_block_q4_0x8) == 144, "Q4_0 x8 block");
static_assert(sizeof(hl_block_q8_0x8) == 272, "Q8_0 x8 block");

/* Bytes of the packed form of an n_out x n_in matrix of type t, or 0 when
 * it is not repackable: t is not Q4_0 / Q8_0, n_out % 8 != 0, or n_in is
 * not a positive multiple of 32. */
size_t hl_repack_bytes(hl_dtype t, int n_in, int n_out);

/* Bytes of one 8-row group: group g starts at g * hl_packed_group_bytes(t,
 * n_in). 0 when t / n_in are not supported. */
size_t hl_packed_group_bytes(hl_dtype t, int n_in);

/* Writes groups g0 <= g < g1 of the packed matrix at dst (its start, not
 * group g0's) from the rows of src: row i at (const char *)src + i *
 * src_row_bytes, rows 8 * g0 .. 8 * g1 - 1 read. The matrix must be
 * repackable (hl_repack_bytes > 0). Disjoint ranges may run in parallel. */
void hl_repack(hl_dtype t, const void *src, size_t src_row_bytes, int n_in, int g0, int g1,
               void *dst);

/* For the 8 rows of one packed group: out[k * out_stride + r] = dot(row r,
 * activation row k) for r < 8, k < n_a, 1 <= n_a <= HL_DOT_MAX_A, where
 * activation row k is n_in / 32 Q8_0 blocks at (const char *)act + k *
 * act_stride. Writes 8 consecutive floats per activation row. */
typedef void (*hl_packed_fn)(int n_in, const void *group, const void *act, size_t act_stride,
                             int n_a, float *out, size_t out_stride);

/* Prefill on whole groups (the AMX path): for groups g0 <= g < g1 of the
 * packed matrix at packed (its start) and activation rows k < n_a rounded
 * down to a multiple of HL_PACKED_GEMM_ROWS (the caller runs the rest
 * through hl_packed_fn), out[k * out_stride + 8 * g + r] = dot(row 8g + r,
 * activation row k). Bit-identical to the same path's hl_packed_fn. */
#define HL_PACKED_GEMM_ROWS 16 /* activation rows of one tile */
typedef void (*hl_packed_gemm_fn)(int n_in, const void *packed, int g0, int g1, const void *act,
                                  size_t act_stride, int n_a, float *out, size_t out_stride);

/* The kernel of the path hl_kernels_best() picks (so HL_CPU_PATH applies),
 * or NULL when t is not repackable. */
hl_packed_fn hl_packed_kernel(hl_dtype t);
/* One path's kernel, or NULL when this CPU lacks the path or t is not
 * repackable (for tests and benchmarks). */
hl_packed_fn hl_packed_kernel_path(hl_dtype t, hl_cpu_path path);

/* The group kernel of the best path / of one path, or NULL where the path
 * has none (only AMX has) or t is not repackable. */
hl_packed_gemm_fn hl_packed_gemm(hl_dtype t);
hl_packed_gemm_fn hl_packed_gemm_path(hl_dtype t, hl_cpu_path path);

/* --- Each path's kernels; used only by repack.c. ----------------------- */
hl_packed_fn hl_packed_avx2(hl_dtype t);
hl_packed_fn hl_packed_avx512(hl_dtype t);
hl_packed_gemm_fn hl_packed_gemm_amx(hl_dtype t);

#endif
