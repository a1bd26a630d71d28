/* repack_simd.h - what the SIMD kernels on packed groups share
 * (repack_avx2.c, repack_avx512.c, repack_amx.c): unaligned loads, a packed
 * block's size and where its codes start, and simd256.h's vector helpers.
 * Not a standalone header: each of those files includes it after
 * <immintrin.h>, <string.h>, quant.h and repack.h, with INLINE defined, so
 * that everything here is compiled with that file's instruction set.
 */

#include "simd256.h"

INLINE uint32_t load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

INLINE uint64_t load_u16(const void *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Bytes of a packed block, and where its codes start. */
INLINE size_t block_bytes(hl_dtype t) {
    return t == HL_Q4_0 ? sizeof(hl_block_q4_0x8) : sizeof(hl_block_q8_0x8);
}
INLINE size_t codes_at(hl_dtype t) {
    return t == HL_Q4_0 ? offsetof(hl_block_q4_0x8, qs) : offsetof(hl_block_q8_0x8, qs);
}
