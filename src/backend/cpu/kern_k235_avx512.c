/* kern_k235_avx512.c - the AVX-512 path's (F, BW, VL, VNNI) dot kernels of
 * Q2_K, Q3_K and Q5_K against Q8_K activations: those of kern_k235_avx2.c
 * built again with this path's flags and K235_VNNI (vpdpwssd, mask-register
 * high bits, two accumulation chains for one activation row; described
 * there). Same integer block sums as the scalar reference (kern_k235.c),
 * so results differ from it only in the order of the float additions.
 */
#define K235_VNNI
#include "kern_k235_avx2.c"

void hl_kernels_fill_avx512_k235(hl_kernels *k) {
    k->dot[HL_Q2_K] = dot_q2_k;
    k->dot[HL_Q3_K] = dot_q3_k;
    k->dot[HL_Q5_K] = dot_q5_k;
}
