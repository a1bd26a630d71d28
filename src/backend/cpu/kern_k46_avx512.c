/* kern_k46_avx512.c - the AVX-512 path's Q4_K and Q6_K kernels: those of
 * kern_k46_avx2.c built again with this path's flags and K46_VNNI, which
 * makes each multiply-by-scale-and-accumulate one vpdpwssd (VNNI) instead
 * of vpmaddwd + vpaddd, the Q4_K tile's products vpdpbusd (see there), and
 * lets the compiler use 32 vector registers. The block math and its
 * exactness are described there and in kern_k46.c. The Q8_K quantizer is
 * inherited from the AVX2 path (this path has nothing to add to it).
 *
 * Measured on the Zen 4 these were tuned on (512-bit arithmetic split in
 * two halves): the dot kernels beat a 512-bit design (64-byte loads of the
 * activations, vpdpbusd, vpackssdw and vpdpwssd on zmm) at 1 and 4
 * activation rows, and the AVX2 build by about 5% (1 row) and 25% (4).
 */
#define K46_VNNI
#include "kern_k46_avx2.c"

void hl_kernels_fill_avx512_k46(hl_kernels *k) { /* the quantizer is inherited */
    k->dot[HL_Q4_K] = dot_q4_k;
    k->dot[HL_Q6_K] = dot_q6_k;
    k->gemm[HL_Q4_K] = gemm_q4_k;
    k->gemm_rows[HL_Q4_K] = HL_GEMM_ROWS_MAX;
}
