/* simd256.h - helpers on 256-bit integer vectors that several SIMD kernel
 * files share (kern_legacy_avx512.c, and the packed-group kernels through
 * repack_simd.h). Not a standalone header: a file includes it after
 * <immintrin.h>, with INLINE defined, so that it is compiled with that
 * file's instruction set.
 */

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
