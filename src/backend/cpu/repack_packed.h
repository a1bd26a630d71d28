/* repack_packed.h - the driver of the packed Q4_0/Q8_0 kernels, shared by
 * repack_avx2.c and repack_avx512.c. Not a standalone header: each of those
 * files defines INLINE, BATCH and its own run_batch (the per-instruction-set
 * inner loop over up to BATCH blocks of an 8-row group), then includes this
 * once, at its end, with PACKED_SELECTOR set to the name of its
 * hl_packed_fn selector (repack.h).
 */

/* All blocks of a row group, in batches, against n_a activation rows. */
INLINE void packed(hl_dtype t, int n_in, const void *group, const void *act, size_t act_stride,
                   int n_a, float *out, size_t out_stride) {
    const int nb = n_in / HL_QK;
    __m256 acc[HL_DOT_MAX_A];
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++) acc[k] = _mm256_setzero_ps();
    int b0 = 0;
    for (; b0 + BATCH <= nb; b0 += BATCH) run_batch(t, group, act, act_stride, n_a, b0, BATCH, acc);
    if (b0 < nb) run_batch(t, group, act, act_stride, n_a, b0, nb - b0, acc);
#pragma GCC unroll 4
    for (int k = 0; k < n_a; k++) _mm256_storeu_ps(out + k * out_stride, acc[k]);
}

/* One kernel per type, specialised for decode (1 row) and prefill (4). */
#define DEFINE_PACKED(name, type)                                                                  \
    static void name(int n_in, const void *group, const void *act, size_t act_stride, int n_a,     \
                     float *out, size_t out_stride) {                                              \
        if (n_a == 1)                                                                              \
            packed(type, n_in, group, act, act_stride, 1, out, out_stride);                        \
        else if (n_a == 4)                                                                         \
            packed(type, n_in, group, act, act_stride, 4, out, out_stride);                        \
        else                                                                                       \
            packed(type, n_in, group, act, act_stride, n_a, out, out_stride);                      \
    }

DEFINE_PACKED(packed_q4_0, HL_Q4_0)
DEFINE_PACKED(packed_q8_0, HL_Q8_0)
#undef DEFINE_PACKED

hl_packed_fn PACKED_SELECTOR(hl_dtype t) {
    return t == HL_Q4_0 ? packed_q4_0 : t == HL_Q8_0 ? packed_q8_0 : NULL;
}
