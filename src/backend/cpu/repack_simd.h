/* repack_simd.h - what the SIMD kernels on packed groups share
 * (repack_avx2.c, repack_avx512.c, repack_amx.c): unaligned loads, a packed
 * block's size and where its codes start, and an 8 x 8 transposing sum.
 * Not a standalone header: each of those files includes it after
 * <immintrin.h>, <string.h>, quant.h and repack.h, with INLINE defined, so
 * that everything here is compiled with that file's instruction set.
 */

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

/* Lane j of the result = the total of v[j]'s 8 lanes. */
INLINE __m256i totals8(const __m256i v[8]) {
    __m256i pair[4], quad[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        pair[i] = _mm256_add_epi32(_mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                   _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        quad[i] = _mm256_add_epi32(_mm256_unpacklo_epi64(pair[2 * i], pair[2 * i + 1]),
                                   _mm256_unpackhi_epi64(pair[2 * i], pair[2 * i + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(quad[0], quad[1], 0x20),
                            _mm256_permute2x128_si256(quad[0], quad[1], 0x31));
}
