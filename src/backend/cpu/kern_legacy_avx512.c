/* kern_legacy_avx512.c - placeholder: this path's kernels for these types are not written
 * yet, so the table keeps the entries of the path below. */
#include "kernels.h"

void hl_kernels_fill_avx512_legacy(hl_kernels *k) { (void)k; }
