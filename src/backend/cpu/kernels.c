/* kernels.c - builds the kernel table of each path and picks the best one
 * the CPU runs; see kernels.h.
 *
 * Feature detection uses the compiler's cpuid wrappers, which also check
 * that the OS saves the wider registers (XGETBV), so a path is only entered
 * where its instructions work. Tables are built once, under pthread_once.
 */
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static hl_kernels tables[HL_PATH_COUNT];
static int has_path[HL_PATH_COUNT];
static const hl_kernels *best;
static pthread_once_t once = PTHREAD_ONCE_INIT;

hl_dtype hl_act_type(hl_dtype t) {
    switch (t) {
    case HL_Q4_0: case HL_Q5_0: case HL_Q8_0: return HL_Q8_0;
    case HL_Q4_1: case HL_Q5_1: return HL_Q8_1;
    case HL_Q2_K: case HL_Q3_K: case HL_Q4_K: case HL_Q5_K: case HL_Q6_K: return HL_Q8_K;
    case HL_F16: return HL_F16;
    case HL_BF16: return HL_BF16;
    default: return HL_F32;
    }
}

int hl_cpu_has_f16c(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C); /* clang's builtin lacks "f16c" */
#else
    return 0;
#endif
}

/* AMX-INT8: the CPU's AMX-TILE and AMX-INT8 (cpuid 7.0 EDX bits 24, 25),
 * the OS saving the tile state (XCR0 bits 17, 18), and Linux granting this
 * process that state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once here). */
static int has_amx(void) {
#if defined(__linux__) && defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

static void detect(void) {
    has_path[HL_PATH_SCALAR] = 1;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    has_path[HL_PATH_AVX2] = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                             hl_cpu_has_f16c();
    has_path[HL_PATH_AVX512] = has_path[HL_PATH_AVX2] && __builtin_cpu_supports("avx512f") &&
                               __builtin_cpu_supports("avx512bw") &&
                               __builtin_cpu_supports("avx512vl") &&
                               __builtin_cpu_supports("avx512dq") &&
                               __builtin_cpu_supports("avx512vnni");
    has_path[HL_PATH_AMX] = has_path[HL_PATH_AVX512] && has_amx();
#endif
}

static void build(void) {
    detect();
    hl_kernels *k = &tables[HL_PATH_SCALAR];
    k->path = HL_PATH_SCALAR;
    k->name = "scalar";
    hl_kernels_fill_scalar_legacy(k);
    hl_kernels_fill_scalar_k46(k);
    hl_kernels_fill_scalar_k235(k);
    hl_kernels_fill_scalar_float(k);
    if (has_path[HL_PATH_AVX2]) {
        k = &tables[HL_PATH_AVX2];
        *k = tables[HL_PATH_SCALAR];
        k->path = HL_PATH_AVX2;
        k->name = "avx2";
        hl_kernels_fill_avx2_legacy(k);
        hl_kernels_fill_avx2_k46(k);
        hl_kernels_fill_avx2_k235(k);
        hl_kernels_fill_avx2_float(k);
    }
    if (has_path[HL_PATH_AVX512]) {
        k = &tables[HL_PATH_AVX512];
        *k = tables[HL_PATH_AVX2];
        k->path = HL_PATH_AVX512;
        k->name = "avx512";
        hl_kernels_fill_avx512_legacy(k);
        hl_kernels_fill_avx512_k46(k);
        hl_kernels_fill_avx512_k235(k);
        hl_kernels_fill_avx512_float(k);
    }
    if (has_path[HL_PATH_AMX]) {
        k = &tables[HL_PATH_AMX];
        *k = tables[HL_PATH_AVX512];
        k->path = HL_PATH_AMX;
        k->name = "amx";
    }
    hl_cpu_path p = HL_PATH_SCALAR;
    for (int i = 0; i < HL_PATH_COUNT; i++)
        if (has_path[i]) p = (hl_cpu_path)i;
    const char *want = getenv("HL_CPU_PATH");
    if (want)
        for (int i = 0; i < (int)p; i++)
            if (strcmp(want, tables[i].name) == 0) p = (hl_cpu_path)i;
    best = &tables[p];
}

const hl_kernels *hl_kernels_best(void) {
    pthread_once(&once, build);
    return best;
}

const hl_kernels *hl_kernels_get(hl_cpu_path path) {
    pthread_once(&once, build);
    if ((int)path < 0 || path >= HL_PATH_COUNT || !has_path[path]) return NULL;
    return &tables[path];
}

int hl_cpu_has_path(hl_cpu_path path) { return hl_kernels_get(path) != NULL; }
