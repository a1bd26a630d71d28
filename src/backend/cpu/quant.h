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

#include <stddef.h>
#include <stdint.h>

#include "../../util/dtype.h"

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
