/* kern_k46_avx512.c - the AVX-512 path's Q4_K and Q6_K dot kernels: the
 * AVX2 kernels of kern_k46_avx2.c built again with this path's flags and
 * K46_VNNI, which makes each multiply-by-scale-and-accumulate one vpdpwssd
 * (VNNI) instead of vpmaddwd + vpaddd, and lets the compiler use 32 vector
 * registers. The block math and its exactness are described there and in
 * kern_k46.c. The Q8_K quantizer is inherited from the AVX2 path (this
 * path has nothing to add to it).
 *
 * Measured on the Zen 4 these were tuned on (512-bit arithmetic split in
 * two halves): this beats a 512-bit design (64-byte loads of the
 * activations, vpdpbusd, vpackssdw and vpdpwssd on zmm) at 1 and 4
 * activation rows, and the AVX2 build by about 5% (1 row) and 25% (4).
 */
#define K46_VNNI
#include "kern_k46_avx2.c"
