/* quant.h - block layouts of every weight type, scalar reference
 * quantize / dequantize / dot kernels.
 *
 *   float x[256], y[256]; uint8_t q[144];
 *   hl_quantize_row(HL_Q4_K, x, q, 256);
 *   hl_dequantize_row(HL_Q4_K, q, y, 256);
 *
 * The block structs are byte-exact with the GGUF / ggml on-disk layouts
 * (static_assert on every size). These scalar functions are the correctness
 * reference every SIMD path is compared against. All are pure functions of
 * their arguments: thread-safe, no allocation. n must be a multiple of the
 * type's block size (dtype.h); callers check that at model load.
 *
 * Types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K (plus Q8_K, used only for activations).
 */
#ifndef HL_QUANT_H
#define HL_QUANT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "../../util/dtype.h"

/* Block layouts, byte-exact with ggml's. f16 fields hold IEEE half bits.
 * A block's alignment is that of its widest field (2 bytes; 4 for Q8_K),
 * which GGUF's tensor alignment guarantees; src/row/dst pointers passed to
 * the functions below must be aligned the same way. */
#define HL_QK 32   /* elements per block of the Q4_0..Q8_0 types */
#define HL_QK_K 256 /* elements per block of the K-quants */

typedef struct hl_block_q4_0 { /* x = d * (q - 8) */
    uint16_t d;
    uint8_t qs[HL_QK / 2]; /* element j in the low nibble of qs[j], j+16 in the high */
} hl_block_q4_0;

typedef struct hl_block_q4_1 { /* x = d * q + m */
    uint16_t d, m;
    uint8_t qs[HL_QK / 2];
} hl_block_q4_1;

typedef struct hl_block_q5_0 { /* x = d * (q - 16) */
    uint16_t d;
    uint8_t qh[4]; /* bit j (little-endian u32): 5th bit of element j */
    uint8_t qs[HL_QK / 2];
} hl_block_q5_0;

typedef struct hl_block_q5_1 { /* x = d * q + m */
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[HL_QK / 2];
} hl_block_q5_1;

typedef struct hl_block_q8_0 { /* x = d * q */
    uint16_t d;
    int8_t qs[HL_QK];
} hl_block_q8_0;

typedef struct hl_block_q8_1 { /* x = d * q; s = d * sum(q); activations only */
    uint16_t d, s;
    int8_t qs[HL_QK];
} hl_block_q8_1;

typedef struct hl_block_q2_k { /* 16 sub-blocks of 16: x = d*sc*q - dmin*mn */
    uint8_t scales[HL_QK_K / 16]; /* low nibble sc, high nibble mn */
    uint8_t qs[HL_QK_K / 4];      /* 2-bit quants */
    uint16_t d, dmin;
} hl_block_q2_k;

typedef struct hl_block_q3_k { /* 16 sub-blocks of 16: x = d*(sc-32)*(q-4) */
    uint8_t hmask[HL_QK_K / 8]; /* 3rd bit of each quant */
    uint8_t qs[HL_QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];         /* 16 scales of 6 bits */
    uint16_t d;
} hl_block_q3_k;

typedef struct hl_block_q4_k { /* 8 sub-blocks of 32: x = d*sc*q - dmin*mn */
    uint16_t d, dmin;
    uint8_t scales[12]; /* 8 scales and 8 mins of 6 bits */
    uint8_t qs[HL_QK_K / 2];
} hl_block_q4_k;

typedef struct hl_block_q5_k { /* as Q4_K with a 5th bit per quant */
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[HL_QK_K / 8];
    uint8_t qs[HL_QK_K / 2];
} hl_block_q5_k;

typedef struct hl_block_q6_k { /* 16 sub-blocks of 16: x = d*sc*(q-32) */
    uint8_t ql[HL_QK_K / 2]; /* low 4 bits */
    uint8_t qh[HL_QK_K / 4]; /* high 2 bits */
    int8_t scales[HL_QK_K / 16];
    uint16_t d;
} hl_block_q6_k;

typedef struct hl_block_q8_k { /* x = d * q; activations only */
    float d;
    int8_t qs[HL_QK_K];
    int16_t bsums[HL_QK_K / 16]; /* sum of each 16 quants */
} hl_block_q8_k;

static_assert(sizeof(hl_block_q4_0) == 18, "Q4_0 block");
static_assert(sizeof(hl_block_q4_1) == 20, "Q4_1 block");
static_assert(sizeof(hl_block_q5_0) == 22, "Q5_0 block");
static_assert(sizeof(hl_block_q5_1) == 24, "Q5_1 block");
static_assert(sizeof(hl_block_q8_0) == 34, "Q8_0 block");
static_assert(sizeof(hl_block_q8_1) == 36, "Q8_1 block");
static_assert(sizeof(hl_block_q2_k) == 84, "Q2_K block");
static_assert(sizeof(hl_block_q3_k) == 110, "Q3_K block");
static_assert(sizeof(hl_block_q4_k) == 144, "Q4_K block");
static_assert(sizeof(hl_block_q5_k) == 176, "Q5_K block");
static_assert(sizeof(hl_block_q6_k) == 210, "Q6_K block");
static_assert(sizeof(hl_block_q8_k) == 292, "Q8_K block");

/* Half / bfloat16 conversions (round to nearest even). */
float hl_f16_to_f32(uint16_t h);
uint16_t hl_f32_to_f16(float f);
float hl_bf16_to_f32(uint16_t h);
uint16_t hl_f32_to_bf16(float f);

/* Dequantizes n elements of type t at src into dst. */
void hl_dequantize_row(hl_dtype t, const void *src, float *dst, int64_t n);

/* Quantizes n floats to type t (the reference quantizer, matching what
 * llama.cpp's quantizer produces without an importance matrix closely
 * enough that round-trip error is of the same order). dst holds
 * hl_dtype_row_size(t, n) bytes. */
void hl_quantize_row(hl_dtype t, const float *src, void *dst, int64_t n);

/* Dot product of a row of type t with n f32 activations. */
float hl_dot_row_f32(hl_dtype t, const void *row, const float *x, int64_t n);

#endif
