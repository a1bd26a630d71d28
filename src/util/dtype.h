/* dtype.h - weight types as GGUF numbers them, and their block traits.
 *
 *   const hl_dtype_traits *t = hl_dtype_get(HL_Q4_K);
 *   size_t row_bytes = hl_dtype_row_size(HL_Q4_K, 4096);
 *
 * Pure data, no state: safe from any thread. The numbering is the on-disk
 * GGUF/ggml one, so it can be compared with a tensor's type field directly.
 * `supported` marks the types our kernels implement (DESIGN.md's list);
 * the others have names only, so a file using them is refused by name.
 */
#ifndef HL_DTYPE_H
#define HL_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum hl_dtype {
    HL_F32 = 0,
    HL_F16 = 1,
    HL_Q4_0 = 2,
    HL_Q4_1 = 3,
    HL_Q5_0 = 6,
    HL_Q5_1 = 7,
    HL_Q8_0 = 8,
    HL_Q8_1 = 9,
    HL_Q2_K = 10,
    HL_Q3_K = 11,
    HL_Q4_K = 12,
    HL_Q5_K = 13,
    HL_Q6_K = 14,
    HL_Q8_K = 15,
    HL_IQ2_XXS = 16,
    HL_IQ2_XS = 17,
    HL_IQ3_XXS = 18,
    HL_IQ1_S = 19,
    HL_IQ4_NL = 20,
    HL_IQ3_S = 21,
    HL_IQ2_S = 22,
    HL_IQ4_XS = 23,
    HL_I8 = 24,
    HL_I16 = 25,
    HL_I32 = 26,
    HL_I64 = 27,
    HL_F64 = 28,
    HL_IQ1_M = 29,
    HL_BF16 = 30,
    HL_TQ1_0 = 34,
    HL_TQ2_0 = 35,
    HL_MXFP4 = 39,
    HL_DTYPE_COUNT = 40,
} hl_dtype;

typedef struct hl_dtype_traits {
    const char *name;     /* "Q4_K"; NULL for numbers no format uses */
    uint32_t block_elems; /* elements per block (1 for plain types) */
    uint32_t block_bytes; /* bytes per block */
    bool supported;       /* our kernels load and run it */
} hl_dtype_traits;

/* Traits of type t, or NULL when t is not a known type number. */
const hl_dtype_traits *hl_dtype_get(uint32_t t);
/* Name of t, or "unknown" for numbers outside the table. */
const char *hl_dtype_name(uint32_t t);
/* Parses a name ("q4_k", "Q4_K", "f16") to a type; returns -1 if unknown. */
int hl_dtype_from_name(const char *name);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block
 * size or t is unknown. */
size_t hl_dtype_row_size(uint32_t t, uint64_t n);

#endif
