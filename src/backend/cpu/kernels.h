/* kernels.h - the CPU backend's inner kernels, one table per instruction-set
 * path, chosen at run time from the CPU's features.
 *
 *   const hl_kernels *k = hl_kernels_best();
 *   hl_dtype at = hl_act_type(HL_Q4_K);                 // HL_Q8_K
 *   k->quant[at](x, xq, n);                             // activations -> Q8_K
 *   k->dot[HL_Q4_K](n, wrow, xq, a_stride, 4, y, n_out); // 4 tokens at once
 *
 * The matmul quantizes its activations once to the type the weight type's
 * integer dot product pairs with (hl_act_type: Q8_0 for Q4_0/Q5_0/Q8_0,
 * Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F16 / BF16 / F32 for those),
 * exactly as llama.cpp's CPU backend does, then calls dot once per weight
 * row for up to HL_DOT_MAX_A activation rows, so a weight block is decoded
 * once and used for several tokens (prefill) or once (decode).
 *
 * Paths. The scalar path is the portable reference: per-block integer sums,
 * the float arithmetic of llama.cpp's reference code. AVX2 (with FMA and
 * F16C) and AVX-512 (F, BW, VL, VNNI) paths compute the same integer block
 * sums, so they differ from the scalar path only in the order of the float
 * additions across blocks (tests/unit/test_kernels.c bounds it). A path
 * fills only the entries it implements; the rest come from the path below
 * it, so every table is complete for every supported type. Each path lives
 * in files named *_avx2.c / *_avx512.c, compiled with that path's -m flags
 * and never entered unless the CPU has the features. The AMX path is the
 * AVX-512 table; it adds tile kernels for prefill on packed weights
 * (repack.h, repack_amx.c), whose results equal AVX-512's bit for bit.
 *
 * Batch invariance. Within a path, the float result for a (weight row,
 * activation row) pair is bit-identical whichever entry computes it (dot
 * with any n_a, the row at any position of the call; gemm with any tile
 * shape) and whatever other rows share the call: all kernels of a type
 * follow one order of float operations per path, written down at the top
 * of its file. So a token's outputs do not depend on the batch it runs in,
 * and a request's greedy output is the same alone or batched
 * (tests/unit/test_invariance.c checks it bit for bit).
 *
 * All kernels are pure functions over caller-owned memory: thread-safe, no
 * allocation. Pointers to blocks are aligned as GGUF guarantees (2 bytes;
 * 4 for Q8_K activation blocks); SIMD kernels use unaligned loads.
 */
#ifndef HL_KERNELS_H
#define HL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "../../util/dtype.h"

#define HL_DOT_MAX_A 4 /* activation rows one dot call takes */

typedef enum hl_cpu_path {
    HL_PATH_SCALAR = 0,
    HL_PATH_AVX2 = 1,   /* AVX2 + FMA + F16C */
    HL_PATH_AVX512 = 2, /* AVX-512 F/BW/VL/DQ + VNNI (+ the AVX2 set) */
    HL_PATH_AMX = 3,    /* AVX-512's kernels, plus AMX-INT8 tiles for prefill of
                         * packed Q4_0 / Q8_0 (repack.h); needs the OS to grant
                         * the tile state */
    HL_PATH_COUNT
} hl_cpu_path;

/* Quantizes n floats (a multiple of the activation type's block size) into
 * dst, which holds hl_dtype_row_size(type, n) bytes. For HL_F32 it copies. */
typedef void (*hl_quant_act_fn)(const float *x, void *dst, int n);

/* out[k * out_stride] = dot(weight row w, activation row k) for k < n_a,
 * where activation row k starts at (const char *)a + k * a_stride, both rows
 * hold n elements (a multiple of the weight type's block size), and
 * 1 <= n_a <= HL_DOT_MAX_A. Each out[k] is bit-identical to a call with
 * that activation row alone (n_a = 1). */
typedef void (*hl_vec_dot_fn)(int n, const void *w, const void *a, size_t a_stride, int n_a,
                              float *out, size_t out_stride);

/* Prefill tile: out[k * out_stride + r] = dot(weight row r, activation row
 * k) for r < n_w, k < n_a, where weight row r starts at (const char *)w +
 * r * w_stride, 1 <= n_w <= the type's gemm_rows (HL_GEMM_MAX_W when that
 * entry is 0) and 1 <= n_a <= HL_DOT_MAX_A.
 * The kernel holds a tile of weight rows x activation rows in registers, so
 * each decoded weight block and each loaded activation block serves
 * several products. Optional: where NULL, the matmul calls dot per row.
 * Results are bit-identical to dot's for the same rows (same per-block
 * integer sums, same float order). */
#define HL_GEMM_MAX_W 4     /* rows of a gemm call unless gemm_rows says more */
#define HL_GEMM_ROWS_MAX 16 /* the most any gemm_rows entry may say */
typedef void (*hl_gemm_fn)(int n, const void *w, size_t w_stride, int n_w, const void *a,
                           size_t a_stride, int n_a, float *out, size_t out_stride);

typedef struct hl_kernels {
    hl_cpu_path path;
    const char *name;                      /* "scalar", "avx2", "avx512", "amx" */
    hl_vec_dot_fn dot[HL_DTYPE_COUNT];     /* by weight type */
    hl_gemm_fn gemm[HL_DTYPE_COUNT];       /* by weight type; optional */
    int gemm_rows[HL_DTYPE_COUNT];         /* rows per gemm call; 0 = HL_GEMM_MAX_W */
    hl_quant_act_fn quant[HL_DTYPE_COUNT]; /* by activation type */
} hl_kernels;

/* The activation type a weight type's dot product reads (HL_F32 for F32). */
hl_dtype hl_act_type(hl_dtype weight);

/* The best path this CPU runs, unless HL_CPU_PATH=scalar|avx2|avx512|amx in the
 * environment asks for a lower one. Computed once; thread-safe. */
const hl_kernels *hl_kernels_best(void);
/* The table of one path, or NULL when this CPU cannot run it. */
const hl_kernels *hl_kernels_get(hl_cpu_path path);
/* Whether the CPU (and OS) support a path. */
int hl_cpu_has_path(hl_cpu_path path);
/* Whether the CPU has F16C (half conversions), from cpuid. */
int hl_cpu_has_f16c(void);

/* --- Filled in by each path's files; used only by kernels.c. --------------- */
void hl_kernels_fill_scalar_legacy(hl_kernels *k); /* Q4_0 Q4_1 Q5_0 Q5_1 Q8_0; Q8_0 Q8_1 */
void hl_kernels_fill_scalar_k46(hl_kernels *k);    /* Q4_K Q6_K; Q8_K */
void hl_kernels_fill_scalar_k235(hl_kernels *k);   /* Q2_K Q3_K Q5_K */
void hl_kernels_fill_scalar_float(hl_kernels *k);  /* F32 F16 BF16; F32 F16 BF16 */
void hl_kernels_fill_avx2_legacy(hl_kernels *k);
void hl_kernels_fill_avx2_k46(hl_kernels *k);
void hl_kernels_fill_avx2_k235(hl_kernels *k);
void hl_kernels_fill_avx2_float(hl_kernels *k);
void hl_kernels_fill_avx512_legacy(hl_kernels *k);
void hl_kernels_fill_avx512_k46(hl_kernels *k);
void hl_kernels_fill_avx512_k235(hl_kernels *k);
void hl_kernels_fill_avx512_float(hl_kernels *k);

#endif
