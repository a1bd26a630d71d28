/* amx_probe.c - whether this host can run AMX-INT8 tiles: asks the kernel
 * for tile state (ARCH_REQ_XCOMP_PERM), multiplies one 16x64 by 64x16 int8
 * tile pair with TDPBSSD and checks every value against a scalar loop.
 * Not part of the build; the AMX path of the CPU issue needs a host that
 * passes this (the lent GPU machine's Xeon did, under gVisor, 2026-11-28):
 *
 *   gcc -O2 -mamx-tile -mamx-int8 -o amx_probe scripts/amx_probe.c && ./amx_probe
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
typedef struct { uint8_t palette, start; uint8_t rsv[14]; uint16_t colsb[16]; uint8_t rows[16]; } cfg_t;
int main(void) {
    long rc = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
    printf("ARCH_REQ_XCOMP_PERM: %ld\n", rc);
    if (rc) { perror("arch_prctl"); return 1; }
    cfg_t c; memset(&c, 0, sizeof c); c.palette = 1;
    for (int i = 0; i < 3; i++) c.rows[i] = 16, c.colsb[i] = 64;
    _tile_loadconfig(&c);
    int8_t a[16][64], b[16][64]; int32_t out[16][16];
    for (int i = 0; i < 16; i++) for (int j = 0; j < 64; j++) a[i][j] = (int8_t)(i + j % 7 - 3), b[i][j] = (int8_t)(j % 5 - 2);
    _tile_zero(0); _tile_loadd(1, a, 64); _tile_loadd(2, b, 64);
    _tile_dpbssd(0, 1, 2); _tile_stored(0, out, 64); _tile_release();
    /* reference: out[m][n] = sum_k sum_{q<4} a[m][4k+q] * b[k][4n+q] */
    long bad = 0;
    for (int m = 0; m < 16; m++) for (int n = 0; n < 16; n++) {
        int32_t s = 0;
        for (int k = 0; k < 16; k++) for (int q = 0; q < 4; q++) s += a[m][4 * k + q] * b[k][4 * n + q];
        bad += s != out[m][n];
    }
    printf("amx tdpbssd: %ld of 256 wrong\n", bad);
    return bad != 0;
}
