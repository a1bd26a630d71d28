/* kern_k46_avx2.c - placeholder: this path's kernels for these types are not written
 * yet, so the table keeps the entries of the path below. */
#include "kernels.h"

void hl_kernels_fill_avx2_k46(hl_kernels *k) { (void)k; }
