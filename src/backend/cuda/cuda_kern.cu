/* cuda_kern.cu - the CUDA backend's kernels; see cuda.h for the contract.
 *
 * Every weight type is decoded through one device function per type,
 * unit<T>(row, u, v): the 32 elements [32u, 32u + 32) of a row as floats.
 * The fused matmul, the f16 dequantizer (cuBLAS path), row lookup and the
 * tests all go through it, so a type's layout is written once. The layouts
 * are those of quant.h (ggml's); quant.c's scalar dequantizers are the
 * reference the tests compare against.
 */
#include <cfloat>
#include <cstdint>
#include <cstdio>

#include "cuda_internal.h"

/* ------------------------------------------------------------ launches -- */

/* Every kernel is launched with programmatic dependent launch (Hopper):
 * its blocks may be scheduled while the previous kernel in the stream is
 * still running, and wait at pdl_wait() until that kernel has finished
 * and its writes are visible. In a graph of ~130 small kernels per token
 * this hides most of the gap between one kernel and the next. */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* How far a kernel lets its successor run ahead: bits of c_overlap, set
 * per device by hl_cu_new (HL_CUDA_OVERLAP overrides, for A/B runs).
 *  OV_PREFETCH: the matmuls load their first weights before they wait
 *    (weights never depend on the previous kernel), so a small matmul's
 *    weight reads overlap the kernel before it; for that to happen the
 *    kernel before must let it launch early:
 *  OV_NORM, OV_ATTN, OV_OTHER: those kernels trigger their successor's
 *    launch as soon as their own wait is over (at most one kernel's blocks
 *    wait at a time);
 *  OV_MATMUL_LATE: the int8 matmul triggers once its accumulation is
 *    done; OV_MATMUL at its start instead measured slower.
 * H200, tg128 (bench/RESULTS.md): 1B Q4_0 1,313 (0) -> 1,445 (30) -> 1,468
 * (62, the default), 31 gave 1,283; 8B Q4_0 404 -> 428 -> 438. */
__constant__ int c_overlap;

enum { OV_MATMUL = 1, OV_PREFETCH = 2, OV_NORM = 4, OV_ATTN = 8, OV_OTHER = 16, OV_MATMUL_LATE = 32 };
enum { OV_DEFAULT = OV_PREFETCH | OV_NORM | OV_ATTN | OV_OTHER | OV_MATMUL_LATE }; /* 62 */

__device__ __forceinline__ void pdl_trigger(int kind) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (c_overlap & kind) asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

__device__ __forceinline__ void pdl_wait_trigger(int kind = OV_OTHER) {
    pdl_wait();
    pdl_trigger(kind);
}

extern "C" void hl_cu_set_overlap(int mode) {
    if (mode < 0) mode = OV_DEFAULT;
    cudaMemcpyToSymbol(c_overlap, &mode, sizeof mode);
}

template <typename... KArgs, typename... Args>
static void pdl_launch(hl_cu *cu, void (*k)(KArgs...), dim3 grid, dim3 block, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = 0;
    cfg.stream = cu->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaError_t rc = cudaLaunchKernelEx(&cfg, k, ((KArgs)args)...);
    if (rc != cudaSuccess) hl_cu_set_error(cu, rc, "launch");
}

/* ------------------------------------------------------- weight decode -- */

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t ld16(const uint8_t *p) { return *(const uint16_t *)p; }
__device__ __forceinline__ uint32_t ld32_2(const uint8_t *p) { /* 2-byte aligned */
    return (uint32_t)ld16(p) | (uint32_t)ld16(p + 2) << 16;
}

/* 8 bytes from a 2-byte aligned address, as two little-endian words. */
__device__ __forceinline__ void ld8_2(const uint8_t *p, uint32_t &a, uint32_t &b) {
    a = ld32_2(p);
    b = ld32_2(p + 4);
}
/* q - off as a float for 0 <= q < 2^22, without an int-to-float conversion
 * (a quarter-rate instruction): q is placed in the mantissa of 2^23. */
__device__ __forceinline__ float small_f(uint32_t q, int off) {
    return __uint_as_float(0x4b000000u | q) - (8388608.0f + (float)off);
}
__device__ __forceinline__ int byte_of(uint32_t a, uint32_t b, int i) {
    return (int)((i < 4 ? a >> (8 * i) : b >> (8 * (i - 4))) & 0xff);
}

/* Each type gives unit(row, u, v): elements [32u, 32u + 32) of a row, and
 * piece(row, u, p, v, d, m): the 8 elements [32u + 8p, 32u + 8p + 8) of it
 * as d * v[i] + m (m = 0 unless MIN), so the matmul scales a piece's dot
 * product once (its lanes each take one piece, so that their reads of x
 * are contiguous). row may be in shared memory; alignment within a block is as
 * in the file. */
template <int T> struct wt;

template <> struct wt<HL_F32> {
    static constexpr int UPB = 1, BB = 128; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const float4 *q = (const float4 *)(row + (size_t)u * 128 + 32 * p);
        float4 a = q[0], b = q[1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
        d = 1.0f, m = 0.0f;
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const float4 *p = (const float4 *)(row + (size_t)u * 128);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 f = p[i];
            v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
        }
    }
};

template <> struct wt<HL_F16> {
    static constexpr int UPB = 1, BB = 64; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        uint4 q = *(const uint4 *)(row + (size_t)u * 64 + 16 * p);
        uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float2 f = __half22float2(*(const __half2 *)&w[k]);
            v[2 * k] = f.x, v[2 * k + 1] = f.y;
        }
        d = 1.0f, m = 0.0f;
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint4 *p = (const uint4 *)(row + (size_t)u * 64);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 q = p[i];
            uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (int k = 0; k < 4; k++) {
                float2 f = __half22float2(*(const __half2 *)&w[k]);
                v[8 * i + 2 * k] = f.x, v[8 * i + 2 * k + 1] = f.y;
            }
        }
    }
};

template <> struct wt<HL_BF16> {
    static constexpr int UPB = 1, BB = 64; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        uint4 q = *(const uint4 *)(row + (size_t)u * 64 + 16 * p);
        uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            v[2 * k] = __uint_as_float(w[k] << 16);
            v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
        }
        d = 1.0f, m = 0.0f;
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint4 *p = (const uint4 *)(row + (size_t)u * 64);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 q = p[i];
            uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[8 * i + 2 * k] = __uint_as_float(w[k] << 16);
                v[8 * i + 2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
            }
        }
    }
};

template <> struct wt<HL_Q4_0> { /* 18 bytes: d, qs[16] */
    static constexpr int UPB = 1, BB = 18; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)u * 18;
        d = h2f(ld16(b)), m = 0.0f;
        uint32_t x, y;
        ld8_2(b + 2 + 8 * (p & 1), x, y);
        const int sh = 4 * (p >> 1);
        x >>= sh, y >>= sh;
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = small_f((x >> (8 * i)) & 0xf, 8);
#pragma unroll
        for (int i = 0; i < 4; i++) v[4 + i] = small_f((y >> (8 * i)) & 0xf, 8);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)u * 18;
        const float d = h2f(ld16(b));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = ld32_2(b + 2 + 4 * i);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * i + k] = d * (float)((int)(q >> (8 * k) & 0xf) - 8);
                v[16 + 4 * i + k] = d * (float)((int)(q >> (8 * k + 4) & 0xf) - 8);
            }
        }
    }
};

template <> struct wt<HL_Q4_1> { /* 20 bytes: d, m, qs[16] */
    static constexpr int UPB = 1, BB = 20; /* units per block, bytes per block */
    static constexpr bool MIN = true; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)u * 20;
        d = h2f(ld16(b)), m = h2f(ld16(b + 2));
        uint32_t x, y;
        ld8_2(b + 4 + 8 * (p & 1), x, y);
        const int sh = 4 * (p >> 1);
        x >>= sh, y >>= sh;
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = small_f((x >> (8 * i)) & 0xf, 0);
#pragma unroll
        for (int i = 0; i < 4; i++) v[4 + i] = small_f((y >> (8 * i)) & 0xf, 0);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)u * 20;
        const float d = h2f(ld16(b)), m = h2f(ld16(b + 2));
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = *(const uint32_t *)(b + 4 + 4 * i);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * i + k] = d * (float)(q >> (8 * k) & 0xf) + m;
                v[16 + 4 * i + k] = d * (float)(q >> (8 * k + 4) & 0xf) + m;
            }
        }
    }
};

template <> struct wt<HL_Q5_0> { /* 22 bytes: d, qh[4], qs[16] */
    static constexpr int UPB = 1, BB = 22; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)u * 22;
        d = h2f(ld16(b)), m = 0.0f;
        const uint32_t qh = ld32_2(b + 2) >> (8 * p);
        uint32_t x, y;
        ld8_2(b + 6 + 8 * (p & 1), x, y);
        const int sh = 4 * (p >> 1);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = small_f(((byte_of(x, y, i) >> sh) & 0xf) | (int)(qh >> i & 1) << 4, 16);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)u * 22;
        const float d = h2f(ld16(b));
        const uint32_t qh = ld32_2(b + 2);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = ld32_2(b + 6 + 4 * i);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                int j = 4 * i + k;
                int lo = (q >> (8 * k) & 0xf) | (qh >> j & 1) << 4;
                int hi = (q >> (8 * k + 4) & 0xf) | (qh >> (j + 16) & 1) << 4;
                v[j] = d * (float)(lo - 16);
                v[16 + j] = d * (float)(hi - 16);
            }
        }
    }
};

template <> struct wt<HL_Q5_1> { /* 24 bytes: d, m, qh[4], qs[16] */
    static constexpr int UPB = 1, BB = 24; /* units per block, bytes per block */
    static constexpr bool MIN = true; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)u * 24;
        d = h2f(ld16(b)), m = h2f(ld16(b + 2));
        const uint32_t qh = ld32_2(b + 4) >> (8 * p);
        uint32_t x, y;
        ld8_2(b + 8 + 8 * (p & 1), x, y);
        const int sh = 4 * (p >> 1);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = small_f(((byte_of(x, y, i) >> sh) & 0xf) | (int)(qh >> i & 1) << 4, 0);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)u * 24;
        const float d = h2f(ld16(b)), m = h2f(ld16(b + 2));
        const uint32_t qh = *(const uint32_t *)(b + 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint32_t q = *(const uint32_t *)(b + 8 + 4 * i);
#pragma unroll
            for (int k = 0; k < 4; k++) {
                int j = 4 * i + k;
                int lo = (q >> (8 * k) & 0xf) | (qh >> j & 1) << 4;
                int hi = (q >> (8 * k + 4) & 0xf) | (qh >> (j + 16) & 1) << 4;
                v[j] = d * (float)lo + m;
                v[16 + j] = d * (float)hi + m;
            }
        }
    }
};

template <> struct wt<HL_Q8_0> { /* 34 bytes: d, qs[32] */
    static constexpr int UPB = 1, BB = 34; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)u * 34;
        d = h2f(ld16(b)), m = 0.0f;
        uint32_t x, y;
        ld8_2(b + 2 + 8 * p, x, y);
        x ^= 0x80808080u, y ^= 0x80808080u; /* int8 -> offset binary */
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = small_f((x >> (8 * i)) & 0xff, 128);
#pragma unroll
        for (int i = 0; i < 4; i++) v[4 + i] = small_f((y >> (8 * i)) & 0xff, 128);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)u * 34;
        const float d = h2f(ld16(b));
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t q = ld32_2(b + 2 + 4 * i);
#pragma unroll
            for (int k = 0; k < 4; k++) v[4 * i + k] = d * (float)(int8_t)(q >> (8 * k));
        }
    }
};

/* K-quants: unit u of a row is sub-range 32 * (u % 8) of block u / 8. */
__device__ __forceinline__ void k4_scale_min(const uint8_t *s, int j, int &sc, int &mn) {
    if (j < 4) {
        sc = s[j] & 63;
        mn = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

template <> struct wt<HL_Q4_K> { /* 144 bytes: d, dmin, scales[12], qs[128] */
    static constexpr int UPB = 8, BB = 144; /* units per block, bytes per block */
    static constexpr bool MIN = true; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)(u >> 3) * 144;
        const int s = u & 7;
        int sc, mn;
        k4_scale_min(b + 4, s, sc, mn);
        d = h2f(ld16(b)) * (float)sc, m = -h2f(ld16(b + 2)) * (float)mn;
        uint32_t x, y;
        ld8_2(b + 16 + 32 * (s >> 1) + 8 * p, x, y);
        const int sh = 4 * (s & 1);
        x >>= sh, y >>= sh;
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = small_f((x >> (8 * i)) & 0xf, 0);
#pragma unroll
        for (int i = 0; i < 4; i++) v[4 + i] = small_f((y >> (8 * i)) & 0xf, 0);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)(u >> 3) * 144;
        const int s = u & 7;
        const float d = h2f(ld16(b)), dmin = h2f(ld16(b + 2));
        int sc, mn;
        k4_scale_min(b + 4, s, sc, mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        const uint4 *q = (const uint4 *)(b + 16 + 32 * (s >> 1));
        const int sh = 4 * (s & 1);
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint4 x = q[i];
            uint32_t w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
            for (int k = 0; k < 16; k++) v[16 * i + k] = d1 * (float)(w[k / 4] >> (8 * (k % 4) + sh) & 0xf) - m1;
        }
    }
};

template <> struct wt<HL_Q5_K> { /* 176 bytes: d, dmin, scales[12], qh[32], qs[128] */
    static constexpr int UPB = 8, BB = 176; /* units per block, bytes per block */
    static constexpr bool MIN = true; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)(u >> 3) * 176;
        const int s = u & 7;
        int sc, mn;
        k4_scale_min(b + 4, s, sc, mn);
        d = h2f(ld16(b)) * (float)sc, m = -h2f(ld16(b + 2)) * (float)mn;
        uint32_t x, y, hx, hy;
        ld8_2(b + 48 + 32 * (s >> 1) + 8 * p, x, y);
        ld8_2(b + 16 + 8 * p, hx, hy);
        const int sh = 4 * (s & 1);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = small_f(((byte_of(x, y, i) >> sh) & 0xf) | ((byte_of(hx, hy, i) >> s) & 1) << 4, 0);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)(u >> 3) * 176;
        const int s = u & 7;
        const float d = h2f(ld16(b)), dmin = h2f(ld16(b + 2));
        int sc, mn;
        k4_scale_min(b + 4, s, sc, mn);
        const float d1 = d * (float)sc, m1 = dmin * (float)mn;
        const uint4 *q = (const uint4 *)(b + 48 + 32 * (s >> 1));
        const uint4 *h = (const uint4 *)(b + 16);
        const int sh = 4 * (s & 1);
#pragma unroll
        for (int i = 0; i < 2; i++) {
            uint4 x = q[i], y = h[i];
            uint32_t w[4] = {x.x, x.y, x.z, x.w}, hb[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int k = 0; k < 16; k++) {
                int lo = w[k / 4] >> (8 * (k % 4) + sh) & 0xf;
                int hi = hb[k / 4] >> (8 * (k % 4) + s) & 1;
                v[16 * i + k] = d1 * (float)(lo | hi << 4) - m1;
            }
        }
    }
};

/* Q2_K / Q3_K / Q6_K: element e = 128c + 32g + l of a block (c = s / 4,
 * g = s % 4 for unit s); sub-block of 16 = 8c + 2g + l / 16. */
template <> struct wt<HL_Q6_K> { /* 210 bytes: ql[128], qh[64], scales[16], d */
    static constexpr int UPB = 8, BB = 210; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        const uint8_t *b = row + (size_t)(u >> 3) * 210;
        const int s = u & 7, c = s >> 2, g = s & 3;
        d = h2f(ld16(b + 208)) * (float)((const int8_t *)(b + 192))[8 * c + 2 * g + (p >> 1)], m = 0.0f;
        uint32_t x, y, hx, hy;
        ld8_2(b + 64 * c + 32 * (g & 1) + 8 * p, x, y);
        ld8_2(b + 128 + 32 * c + 8 * p, hx, hy);
        const int shl = 4 * (g >> 1), shh = 2 * g;
        x = (x >> shl) & 0x0f0f0f0fu, y = (y >> shl) & 0x0f0f0f0fu;
        hx = ((hx >> shh) & 0x03030303u) << 4, hy = ((hy >> shh) & 0x03030303u) << 4;
        x |= hx, y |= hy;
#pragma unroll
        for (int i = 0; i < 4; i++) v[i] = small_f((x >> (8 * i)) & 0xff, 32);
#pragma unroll
        for (int i = 0; i < 4; i++) v[4 + i] = small_f((y >> (8 * i)) & 0xff, 32);
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)(u >> 3) * 210;
        const int s = u & 7, c = s >> 2, g = s & 3;
        const float d = h2f(ld16(b + 208));
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * c + 2 * g;
        const float d0 = d * (float)sc[0], d1 = d * (float)sc[1];
        const uint8_t *ql = b + 64 * c + 32 * (g & 1), *qh = b + 128 + 32 * c;
        const int shl = 4 * (g >> 1), shh = 2 * g;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            uint32_t a = ld16(ql + 2 * i), h = ld16(qh + 2 * i);
#pragma unroll
            for (int k = 0; k < 2; k++) {
                int l = 2 * i + k;
                int q = ((a >> (8 * k + shl)) & 0xf) | ((h >> (8 * k + shh)) & 3) << 4;
                v[l] = (l < 16 ? d0 : d1) * (float)(q - 32);
            }
        }
    }
};

template <> struct wt<HL_Q2_K> { /* 84 bytes: scales[16], qs[64], d, dmin */
    static constexpr int UPB = 8, BB = 84; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        float w[32]; /* rare types: decode the unit, keep the piece */
        unit(row, u, w);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = w[8 * p + i];
        d = 1.0f, m = 0.0f;
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)(u >> 3) * 84;
        const int s = u & 7, c = s >> 2, g = s & 3;
        const float d = h2f(ld16(b + 80)), dmin = h2f(ld16(b + 82));
        const uint8_t s0 = b[8 * c + 2 * g], s1 = b[8 * c + 2 * g + 1];
        const float d0 = d * (float)(s0 & 0xf), m0 = dmin * (float)(s0 >> 4);
        const float d1 = d * (float)(s1 & 0xf), m1 = dmin * (float)(s1 >> 4);
        const uint32_t *q = (const uint32_t *)(b + 16 + 32 * c);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            uint32_t w = q[i];
#pragma unroll
            for (int k = 0; k < 4; k++) {
                int l = 4 * i + k;
                int x = w >> (8 * k + 2 * g) & 3;
                v[l] = l < 16 ? d0 * (float)x - m0 : d1 * (float)x - m1;
            }
        }
    }
};

__device__ __forceinline__ int q3k_scale(const uint8_t *s, int j) {
    const int lo = (s[j % 8] >> (4 * (j / 8))) & 0xf;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return lo | hi << 4;
}

template <> struct wt<HL_Q3_K> { /* 110 bytes: hmask[32], qs[64], scales[12], d */
    static constexpr int UPB = 8, BB = 110; /* units per block, bytes per block */
    static constexpr bool MIN = false; /* piece values carry an offset m */
    __device__ static void piece(const uint8_t *row, int u, int p, float v[8], float &d, float &m) {
        float w[32]; /* rare types: decode the unit, keep the piece */
        unit(row, u, w);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = w[8 * p + i];
        d = 1.0f, m = 0.0f;
    }
    __device__ static void unit(const uint8_t *row, int u, float v[32]) {
        const uint8_t *b = row + (size_t)(u >> 3) * 110;
        const int s = u & 7, c = s >> 2, g = s & 3;
        const float d = h2f(ld16(b + 108));
        const float d0 = d * (float)(q3k_scale(b + 96, 8 * c + 2 * g) - 32);
        const float d1 = d * (float)(q3k_scale(b + 96, 8 * c + 2 * g + 1) - 32);
        const uint8_t *qs = b + 32 + 32 * c;
        const int hbit = 4 * c + g;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            uint32_t w = ld16(qs + 2 * i), h = ld16(b + 2 * i);
#pragma unroll
            for (int k = 0; k < 2; k++) {
                int l = 2 * i + k;
                int x = (int)(w >> (8 * k + 2 * g) & 3) - ((h >> (8 * k + hbit) & 1) ? 0 : 4);
                v[l] = (l < 16 ? d0 : d1) * (float)x;
            }
        }
    }
};

/* Device layouts (cuda.h's HL_CU_*): re-laid copies of three hot types
 * that the int8 matmul reads with aligned 16-byte loads. Q4_0S / Q8_0S: a
 * row's quants of every block back to back, then its f16 scales; Q6_KP:
 * Q6_K blocks padded to 224 bytes. unit() serves dequantization and row
 * lookup; the f32 matmul never sees these types. */
template <> struct wt<HL_CU_Q4_0S> {
    static constexpr int UPB = 1, BB = 18;
    static constexpr bool MIN = false;
    __device__ static void unit_nu(const uint8_t *row, int nu, int u, float v[32]) {
        const float d = h2f(ld16(row + 16 * (size_t)nu + 2 * (size_t)u));
        const uint4 q = *(const uint4 *)(row + 16 * (size_t)u);
        const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int i = 0; i < 16; i++) {
            const int b = (w[i / 4] >> (8 * (i % 4))) & 0xff;
            v[i] = d * (float)((b & 0xf) - 8);
            v[16 + i] = d * (float)((b >> 4) - 8);
        }
    }
};

template <> struct wt<HL_CU_Q8_0S> {
    static constexpr int UPB = 1, BB = 34;
    static constexpr bool MIN = false;
    __device__ static void unit_nu(const uint8_t *row, int nu, int u, float v[32]) {
        const float d = h2f(ld16(row + 32 * (size_t)nu + 2 * (size_t)u));
        const int8_t *q = (const int8_t *)(row + 32 * (size_t)u);
#pragma unroll
        for (int i = 0; i < 32; i++) v[i] = d * (float)q[i];
    }
};

template <> struct wt<HL_CU_Q6_KP> {
    static constexpr int UPB = 8, BB = 224;
    static constexpr bool MIN = false;
    __device__ static void unit_nu(const uint8_t *row, int nu, int u, float v[32]) {
        (void)nu;
        wt<HL_Q6_K>::unit(row + (size_t)(u >> 3) * 224, u & 7, v); /* one padded block */
    }
};

/* unit() for every type, given the row's unit count (the split layouts
 * need it to find their scales). */
template <int T> struct has_unit_nu { static constexpr bool v = false; };
template <> struct has_unit_nu<HL_CU_Q4_0S> { static constexpr bool v = true; };
template <> struct has_unit_nu<HL_CU_Q8_0S> { static constexpr bool v = true; };
template <> struct has_unit_nu<HL_CU_Q6_KP> { static constexpr bool v = true; };
template <int T, bool N = has_unit_nu<T>::v> struct unit_any;
template <int T> struct unit_any<T, false> {
    __device__ static void f(const uint8_t *row, int nu, int u, float v[32]) {
        (void)nu;
        wt<T>::unit(row, u, v);
    }
};
template <int T> struct unit_any<T, true> {
    __device__ static void f(const uint8_t *row, int nu, int u, float v[32]) { wt<T>::unit_nu(row, nu, u, v); }
};

/* ------------------------------------------------- int8 activations -- */

/* Activations quantized in blocks of 32 as llama.cpp's Q8_1 does: int8
 * q[i] with x ~ d * q, and per block the float pair (d, d * sum(q)). One
 * warp holds one block, a value per lane. d stays f32 (the CPU's blocks
 * round it to f16): codes and scales equal to the CPU's to the bit cost 8B
 * decode 2% and brought the backends no closer on a real model
 * (bench/RESULTS.md, "The real model, CPU against CUDA"). */
__device__ __forceinline__ void warp_q8(float v, int8_t *q, float2 *ds) {
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int qi = __float2int_rn(v * id);
    *q = (int8_t)qi;
    int sum = qi;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) *ds = make_float2(d, d * (float)sum);
}

__global__ void quantize_q8_kernel(const float *__restrict__ x, int ldx, int n, size_t total,
                                   int8_t *__restrict__ q, float2 *__restrict__ ds) {
    pdl_wait_trigger();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return; /* total is a multiple of 32: whole warps leave */
    const size_t t = i / (size_t)n, j = i % (size_t)n;
    warp_q8(x[t * (size_t)ldx + j], q + t * (size_t)ldx + j, ds + (t * (size_t)ldx + j) / 32);
}

extern "C" void hl_cu_quantize_q8(hl_cu *cu, const float *x, int ldx, int n_tok, int n, int8_t *q,
                                  float *ds) {
    const size_t total = (size_t)n_tok * (size_t)n;
    if (!total) return;
    pdl_launch(cu, quantize_q8_kernel, (unsigned)((total + 255) / 256), 256, x, ldx, n, total, q, (float2 *)ds);
    hl_cu_after_launch(cu, "quantize_q8");
}

/* Weights of one unit in registers, and their dot product with a unit of
 * int8 activations (xq: 32 int8, xd: the block's (d, d * sum(q))). */
template <int T> struct q8w;

__device__ __forceinline__ int dp4(int a, int b, int c) { return __dp4a(a, b, c); }

template <> struct q8w<HL_CU_Q4_0S> {
    uint4 q;
    float d;
    __device__ void load(const uint8_t *row, int nu, int u) {
        q = __ldg((const uint4 *)(row + 16 * (size_t)u));
        d = h2f(__ldg((const unsigned short *)(row + 16 * (size_t)nu) + u));
    }
    __device__ float dot(const int4 xa, const int4 xb, float2 xd) const {
        const int w[4] = {(int)q.x, (int)q.y, (int)q.z, (int)q.w};
        const int xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
        int s = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            s = dp4(w[k] & 0x0f0f0f0f, xs[k], s);
            s = dp4((w[k] >> 4) & 0x0f0f0f0f, xs[4 + k], s);
        }
        return d * (xd.x * (float)s - 8.0f * xd.y);
    }
};

template <> struct q8w<HL_CU_Q8_0S> {
    uint4 a, b;
    float d;
    __device__ void load(const uint8_t *row, int nu, int u) {
        const uint4 *p = (const uint4 *)(row + 32 * (size_t)u);
        a = __ldg(p), b = __ldg(p + 1);
        d = h2f(__ldg((const unsigned short *)(row + 32 * (size_t)nu) + u));
    }
    __device__ float dot(const int4 xa, const int4 xb, float2 xd) const {
        int s = 0;
        s = dp4((int)a.x, xa.x, s), s = dp4((int)a.y, xa.y, s), s = dp4((int)a.z, xa.z, s), s = dp4((int)a.w, xa.w, s);
        s = dp4((int)b.x, xb.x, s), s = dp4((int)b.y, xb.y, s), s = dp4((int)b.z, xb.z, s), s = dp4((int)b.w, xb.w, s);
        return d * xd.x * (float)s;
    }
};

template <> struct q8w<HL_Q4_1> { /* GGUF layout, 20-byte blocks: d, m, 16 bytes of nibbles */
    uint32_t w[4];
    float d, m;
    __device__ void load(const uint8_t *row, int nu, int u) {
        (void)nu;
        const uint8_t *blk = row + 20 * (size_t)u; /* 4-byte aligned */
        const uint32_t *q = (const uint32_t *)(blk + 4);
#pragma unroll
        for (int k = 0; k < 4; k++) w[k] = __ldg(q + k);
        d = h2f(ld16(blk)), m = h2f(ld16(blk + 2));
    }
    __device__ float dot(const int4 xa, const int4 xb, float2 xd) const {
        const int xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
        int s = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            s = dp4((int)w[k] & 0x0f0f0f0f, xs[k], s);
            s = dp4((int)(w[k] >> 4) & 0x0f0f0f0f, xs[4 + k], s);
        }
        return d * xd.x * (float)s + m * xd.y;
    }
};

template <> struct q8w<HL_Q8_0> { /* GGUF layout, 34-byte blocks (rows not re-laid: units % 8 != 0) */
    int w[8];
    float d;
    __device__ void load(const uint8_t *row, int nu, int u) {
        (void)nu;
        const uint8_t *blk = row + 34 * (size_t)u; /* 2-byte aligned */
#pragma unroll
        for (int k = 0; k < 8; k++) w[k] = (int)ld32_2(blk + 2 + 4 * k);
        d = h2f(ld16(blk));
    }
    __device__ float dot(const int4 xa, const int4 xb, float2 xd) const {
        const int xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = dp4(w[k], xs[k], s);
        return d * xd.x * (float)s;
    }
};

template <> struct q8w<HL_Q4_K> { /* 144-byte blocks: qs at 16 is 16-byte aligned */
    uint4 a, b;
    float d, m;
    int sh;
    __device__ void load(const uint8_t *row, int nu, int u) {
        (void)nu;
        const uint8_t *blk = row + (size_t)(u >> 3) * 144;
        const int s = u & 7;
        const uint4 *p = (const uint4 *)(blk + 16 + 32 * (s >> 1));
        a = __ldg(p), b = __ldg(p + 1);
        int sc, mn;
        k4_scale_min(blk + 4, s, sc, mn);
        d = h2f(ld16(blk)) * (float)sc, m = h2f(ld16(blk + 2)) * (float)mn;
        sh = 4 * (s & 1);
    }
    __device__ float dot(const int4 xa, const int4 xb, float2 xd) const {
        const int w[8] = {(int)a.x, (int)a.y, (int)a.z, (int)a.w, (int)b.x, (int)b.y, (int)b.z, (int)b.w};
        const int xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
        int s = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) s = dp4((w[k] >> sh) & 0x0f0f0f0f, xs[k], s);
        return d * xd.x * (float)s - m * xd.y;
    }
};

template <> struct q8w<HL_CU_Q6_KP> { /* 224-byte blocks: ql 0, qh 128, scales 192, d 208 */
    uint4 l0, l1, h0, h1;
    float d0, d1;
    int shl, shh;
    __device__ void load(const uint8_t *row, int nu, int u) {
        (void)nu;
        const uint8_t *blk = row + (size_t)(u >> 3) * 224;
        const int s = u & 7, c = s >> 2, g = s & 3;
        const uint4 *pl = (const uint4 *)(blk + 64 * c + 32 * (g & 1));
        const uint4 *ph = (const uint4 *)(blk + 128 + 32 * c);
        l0 = __ldg(pl), l1 = __ldg(pl + 1), h0 = __ldg(ph), h1 = __ldg(ph + 1);
        const float d = h2f(ld16(blk + 208));
        const int8_t *sc = (const int8_t *)(blk + 192) + 8 * c + 2 * g;
        d0 = d * (float)sc[0], d1 = d * (float)sc[1];
        shl = 4 * (g >> 1), shh = 2 * g;
    }
    __device__ float dot(const int4 xa, const int4 xb, float2 xd) const {
        const int lw[8] = {(int)l0.x, (int)l0.y, (int)l0.z, (int)l0.w, (int)l1.x, (int)l1.y, (int)l1.z, (int)l1.w};
        const int hw[8] = {(int)h0.x, (int)h0.y, (int)h0.z, (int)h0.w, (int)h1.x, (int)h1.y, (int)h1.z, (int)h1.w};
        const int xs[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
        int s0 = 0, s1 = 0, x0 = 0, x1 = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int q = ((lw[k] >> shl) & 0x0f0f0f0f) | (((hw[k] >> shh) & 0x03030303) << 4);
            if (k < 4) s0 = dp4(q, xs[k], s0), x0 = dp4(0x01010101, xs[k], x0);
            else s1 = dp4(q, xs[k], s1), x1 = dp4(0x01010101, xs[k], x1);
        }
        return xd.x * (d0 * (float)(s0 - 32 * x0) + d1 * (float)(s1 - 32 * x1));
    }
};

/* act(g) * u, the gated activation (act_mul_kernel's, to the bit). GELU as
 * the CPU backend's table gives it (vec.h): the tanh form at half(g),
 * rounded to half, 0 at or below -10 and g at or above 10. */
__device__ __forceinline__ float glu_act(float g, float u, bool gelu) {
    float a;
    if (gelu) {
        if (g <= -10.0f) return 0.0f;
        if (g >= 10.0f) return g * u;
        const float k = 0.7978845608028654f, h = __half2float(__float2half_rn(g));
        a = __half2float(__float2half_rn(0.5f * h * (1.0f + tanhf(k * h * (1.0f + 0.044715f * h * h)))));
    } else {
        a = g / (1.0f + __expf(-g));
    }
    return a * u;
}

/* The int8 matmul. A block's 8 warps form 8 / wpr groups; each group owns
 * RPW rows and splits their units over its wpr warps (long rows get more
 * warps). A lane takes one unit at a time: it loads that unit of every
 * token's int8 x once and uses it for all RPW rows, whose weights it loads
 * together, so x is read once per RPW rows and several weight loads are in
 * flight per lane. Partial sums meet in shared memory. */
template <int T, int NT, int RPW>
__global__ void __launch_bounds__(256)
gemv_q8_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int nu, int n_out, int wpr,
               const int8_t *__restrict__ xq, const float2 *__restrict__ xds, int ldx, int n_tok,
               float *__restrict__ y, int ldy) {
    __shared__ float red[8][RPW][NT];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * (8 / wpr) + warp / wpr) * RPW, part = warp % wpr;
    float acc[RPW][NT];
#pragma unroll
    for (int r = 0; r < RPW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    /* the first unit's weights are loaded before the wait (c_overlap bit 1) */
    q8w<T> wv[RPW];
    int u = part * 32 + lane;
    const bool early = c_overlap & OV_PREFETCH;
    if (early && row0 < n_out && u < nu) {
#pragma unroll
        for (int r = 0; r < RPW; r++)
            if (row0 + r < n_out) wv[r].load(w + (size_t)(row0 + r) * row_bytes, nu, u);
    }
    pdl_wait_trigger(OV_MATMUL);
    if (row0 < n_out) {
        for (bool first = true; u < nu; u += 32 * wpr, first = false) {
            if (!early || !first) {
#pragma unroll
                for (int r = 0; r < RPW; r++)
                    if (row0 + r < n_out) wv[r].load(w + (size_t)(row0 + r) * row_bytes, nu, u);
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const int tt = t < n_tok ? t : 0;
                const int4 *xp = (const int4 *)(xq + (size_t)tt * ldx + 32 * (size_t)u);
                const int4 xa = __ldg(xp), xb = __ldg(xp + 1);
                const float2 xd = __ldg(xds + (size_t)tt * (ldx / 32) + u);
#pragma unroll
                for (int r = 0; r < RPW; r++)
                    if (row0 + r < n_out) acc[r][t] += wv[r].dot(xa, xb, xd);
            }
        }
    }
    pdl_trigger(OV_MATMUL_LATE);
#pragma unroll
    for (int r = 0; r < RPW; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float a = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
            if (lane == 0) red[warp][r][t] = a;
        }
    __syncthreads();
    if (part == 0 && lane < RPW * NT) {
        const int r = lane / NT, t = lane % NT;
        if (t < n_tok && row0 + r < n_out) {
            float a = 0.0f;
            for (int k = 0; k < wpr; k++) a += red[warp + k][r][t];
            y[(size_t)t * ldy + row0 + r] = a;
        }
    }
}

template <int T>
static void gemv_q8_launch(hl_cu *cu, const hl_cu_mat *w, const int8_t *xq, const float *xds, int ldx,
                           int n_tok, float *y, int ldy) {
    const int nu = w->n_in / 32, tiles = (nu + 31) / 32;
    /* tall matrices (the output) have blocks enough: one warp per row
     * there measured faster (1B Q4_0 decode +1.9%) */
    const int wpr = w->n_out >= 65536 ? 1 : tiles >= 8 ? 8 : tiles >= 4 ? 4 : tiles >= 2 ? 2 : 1;
    const uint8_t *d = (const uint8_t *)w->data;
    const float2 *ds = (const float2 *)xds;
#define GQ(NT, RPW)                                                                                \
    pdl_launch(cu, gemv_q8_kernel<T, NT, RPW>,                                                     \
               dim3((unsigned)((w->n_out + (8 / wpr) * RPW - 1) / ((8 / wpr) * RPW))), dim3(256), d, \
               w->row_bytes, nu, w->n_out, wpr, xq, ds, ldx, n_tok, y, ldy)
    if (n_tok <= 1 && T == HL_CU_Q6_KP) GQ(1, 2);
    else if (n_tok <= 1) GQ(1, 4);
    else if (n_tok <= 2) GQ(2, 4);
    else if (n_tok <= 4) GQ(4, 2);
    else GQ(8, 1);
#undef GQ
}

/* The gate|up matmul with the activation in its epilogue (decode), for
 * Q4_K: w interleaves gate and up rows (hl_cu_matmul_act); block b makes
 * outputs [32b, 32b + 32) of act(gate . x) * (up . x), group i (of wpr
 * warps) the four from 32b + 4i, reading the four gate rows and the four
 * up rows together (so each x unit is read once for eight rows). The
 * block's 32 outputs are one int8 block of the next matmul's input,
 * quantized here; the separate activation launch goes away. The
 * activation is act_mul_kernel's, to the bit. Its accumulation loop
 * repeats gemv_q8_kernel's on purpose: one shared inline helper changed
 * the plain kernel's code (64 -> 44 registers) and cost its decode 7-13%
 * (H200, 1B and 8B Q4_0). */
template <int T, int NT>
__global__ void __launch_bounds__(512)
gemv_glu_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int nu, int F, int wpr,
                const int8_t *__restrict__ xq, const float2 *__restrict__ xds, int ldx, int n_tok,
                bool gelu, float *__restrict__ out, int8_t *__restrict__ q8, float2 *__restrict__ q8ds) {
    __shared__ float act[NT][32];
    __shared__ float red[16][8][NT];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int grp = warp / wpr, part = warp % wpr; /* 8 groups of wpr warps */
    const int j0 = blockIdx.x * 32 + grp * 4;
    const uint8_t *rows[8];
#pragma unroll
    for (int r = 0; r < 8; r++) rows[r] = w + (size_t)(2 * (j0 + (r & 3)) + (r >= 4)) * row_bytes;
    float acc[8][NT];
#pragma unroll
    for (int r = 0; r < 8; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;
    q8w<T> wv[8];
    int u = part * 32 + lane;
    const bool early = c_overlap & OV_PREFETCH;
    if (early && u < nu) {
#pragma unroll
        for (int r = 0; r < 8; r++) wv[r].load(rows[r], nu, u);
    }
    pdl_wait_trigger(OV_MATMUL);
    for (bool first = true; u < nu; u += 32 * wpr, first = false) {
        if (!early || !first) {
#pragma unroll
            for (int r = 0; r < 8; r++) wv[r].load(rows[r], nu, u);
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const int tt = t < n_tok ? t : 0;
            const int4 *xp = (const int4 *)(xq + (size_t)tt * ldx + 32 * (size_t)u);
            const int4 xa = __ldg(xp), xb = __ldg(xp + 1);
            const float2 xd = __ldg(xds + (size_t)tt * (ldx / 32) + u);
#pragma unroll
            for (int r = 0; r < 8; r++) acc[r][t] += wv[r].dot(xa, xb, xd);
        }
    }
    pdl_trigger(OV_MATMUL_LATE);
#pragma unroll
    for (int r = 0; r < 8; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float a = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
            if (lane == 0) red[warp][r][t] = a;
        }
    __syncthreads();
    if (part == 0 && lane < 4 * NT) {
        const int r = lane & 3, t = lane >> 2;
        float g = 0.0f, u = 0.0f;
        for (int k = 0; k < wpr; k++) g += red[warp + k][r][t], u += red[warp + k][r + 4][t];
        act[t][grp * 4 + r] = glu_act(g, u, gelu);
    }
    __syncthreads();
    if (warp < NT && warp < n_tok) {
        const size_t i = (size_t)warp * F + blockIdx.x * 32 + lane;
        const float v = act[warp][lane];
        out[i] = v;
        if (q8) warp_q8(v, q8 + i, q8ds + i / 32);
    }
}

template <int T>
static void glu_launch(hl_cu *cu, const hl_cu_mat *w, const int8_t *xq, const float *xds, int ldx, int n_tok,
                       bool gelu, float *out, int8_t *q8, float *q8ds) {
    const int F = w->n_out / 2;
    const uint8_t *d = (const uint8_t *)w->data;
    const float2 *ds = (const float2 *)xds;
    float2 *ods = (float2 *)q8ds;
    const int nu = w->n_in / 32, wpr = nu > 32 ? 2 : 1; /* 8 groups of wpr warps */
    const dim3 grid((unsigned)(F / 32));
#define GLU(TT, NT) pdl_launch(cu, gemv_glu_kernel<TT, NT>, grid, dim3(256 * wpr), d, w->row_bytes, nu, F, wpr, xq, ds, ldx, n_tok, gelu, out, q8, ods)
#define GLU_T(TT)                                                                                  \
    do {                                                                                           \
        if (n_tok == 1) GLU(TT, 1);                                                                \
        else GLU(TT, 2);                                                                           \
    } while (0)
    GLU_T(T);
#undef GLU_T
#undef GLU
    hl_cu_after_launch(cu, "gemv glu");
}

static bool q8_type(int t) {
    return t == HL_CU_Q4_0S || t == HL_CU_Q8_0S || t == HL_CU_Q6_KP || t == HL_Q4_K || t == HL_Q4_1 ||
           t == HL_Q8_0;
}

/* ----------------------------------------------------------- relayout -- */

__global__ void relayout_kernel(const uint8_t *__restrict__ src, size_t src_row, uint8_t *__restrict__ dst,
                                size_t dst_row, int nb, int kind, size_t total) {
    pdl_wait_trigger();
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; /* one block of one row */
    if (i >= total) return;
    const size_t r = i / (size_t)nb;
    const int b = (int)(i % (size_t)nb);
    const uint8_t *s = src + r * src_row;
    uint8_t *d = dst + r * dst_row;
    if (kind == HL_CU_Q4_0S) {
        const uint8_t *blk = s + (size_t)b * 18;
        for (int k = 0; k < 16; k++) d[16 * (size_t)b + k] = blk[2 + k];
        d[16 * (size_t)nb + 2 * b] = blk[0], d[16 * (size_t)nb + 2 * b + 1] = blk[1];
    } else if (kind == HL_CU_Q8_0S) {
        const uint8_t *blk = s + (size_t)b * 34;
        for (int k = 0; k < 32; k++) d[32 * (size_t)b + k] = blk[2 + k];
        d[32 * (size_t)nb + 2 * b] = blk[0], d[32 * (size_t)nb + 2 * b + 1] = blk[1];
    } else { /* HL_CU_Q6_KP */
        const uint8_t *blk = s + (size_t)b * 210;
        uint8_t *o = d + (size_t)b * 224;
        for (int k = 0; k < 210; k++) o[k] = blk[k];
        for (int k = 210; k < 224; k++) o[k] = 0;
    }
}

extern "C" int hl_cu_relayout(hl_cu *cu, const hl_cu_mat *raw, hl_cu_mat *out, hl_err *e) {
    *out = *raw;
    const int nu = raw->n_in / 32;
    int kind = 0;
    size_t row = 0;
    if (raw->type == HL_Q4_0 && nu % 8 == 0) kind = HL_CU_Q4_0S, row = (size_t)nu * 18;
    else if (raw->type == HL_Q8_0 && nu % 8 == 0) kind = HL_CU_Q8_0S, row = (size_t)nu * 34;
    else if (raw->type == HL_Q6_K) kind = HL_CU_Q6_KP, row = (size_t)(nu / 8) * 224;
    if (!kind) return 0;
    void *dst = hl_cu_alloc(cu, row * (size_t)raw->n_out, e);
    if (!dst) return -1;
    const int nb = kind == HL_CU_Q6_KP ? nu / 8 : nu;
    const size_t total = (size_t)nb * (size_t)raw->n_out;
    pdl_launch(cu, relayout_kernel, (unsigned)((total + 255) / 256), 256, 
        (const uint8_t *)raw->data, raw->row_bytes, (uint8_t *)dst, row, nb, kind, total);
    hl_cu_after_launch(cu, "relayout");
    if (hl_cu_sync(cu, e) < 0) {
        hl_cu_dealloc(dst);
        return -1;
    }
    *out = (hl_cu_mat){dst, (hl_dtype)kind, raw->n_in, raw->n_out, row};
    return 1;
}

/* ---------------------------------------------------------- fused gemv -- */

/* Bytes from the start of a row to unit u (u a multiple of the units per
 * block). */
template <int T> __device__ __forceinline__ size_t unit_off(int u) {
    return (size_t)(u / wt<T>::UPB) * wt<T>::BB;
}

/* Blocks of 8 independent warps; each warp owns R whole rows (R = 1, or
 * 2 for tall matrices of short rows) and walks them in tiles (32 units;
 * 1 KiB for the float types). Tiles are copied to the warp's shared-memory
 * ring with cp.async, GEMV_STAGES - 1 tiles ahead of the one being
 * computed, so every warp keeps several loads in flight while it decodes.
 * The copy is 16-byte and coalesced whatever the type's block size or
 * alignment. Each lane then decodes 8-element pieces (4 lanes per unit, 8
 * units per step), so the lanes' reads of x are contiguous, and dots each
 * piece with every token's x. */
#define GW 8
#define GEMV_STAGES 4
template <int T> struct tile_of {
    static constexpr int UNITS = T == HL_F32 ? 8 : (T == HL_F16 || T == HL_BF16) ? 16 : 32;
    static constexpr int BYTES = ((UNITS / wt<T>::UPB) * wt<T>::BB + 47) / 16 * 16;
};

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <int T, int NT>
__global__ void __launch_bounds__(32 * GW)
gemv_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int n_units, int n_out, int R,
            const float *__restrict__ x, int ldx, int n_tok, float *__restrict__ y, int ldy) {
    constexpr int TU = tile_of<T>::UNITS, SB = tile_of<T>::BYTES;
    __shared__ __align__(16) uint8_t stage[GW][GEMV_STAGES][SB];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * GW + warp) * R;
    if (row0 >= n_out) return; /* whole warps only: no block-wide barrier below */
    const int rows = min(R, n_out - row0), tpr = (n_units + TU - 1) / TU, J = rows * tpr;
    /* tile j: row row0 + j / tpr, units [u0, u0 + nu) */
    auto tile_src = [&](int j, int &u0, int &nu, uintptr_t &a0, int &n16) -> const uint8_t * {
        u0 = (j % tpr) * TU;
        nu = min(TU, n_units - u0);
        const uint8_t *src = w + (size_t)(row0 + j / tpr) * row_bytes + unit_off<T>(u0);
        const size_t bytes = unit_off<T>(u0 + nu + wt<T>::UPB - 1) - unit_off<T>(u0);
        a0 = (uintptr_t)src & ~(uintptr_t)15;
        n16 = (int)(((uintptr_t)src + bytes + 15 - a0) >> 4);
        return src;
    };
    auto issue = [&](int j) {
        if (j < J) {
            int u0, nu, n16;
            uintptr_t a0;
            tile_src(j, u0, nu, a0, n16);
            uint8_t *st = stage[warp][j % GEMV_STAGES];
            for (int i = lane; i < n16; i += 32) cp_async16(st + 16 * i, (const void *)(a0 + 16 * (uintptr_t)i));
        }
        cp_async_commit(); /* an empty group keeps the count uniform */
    };
    /* the first tiles' copies start before the wait (c_overlap bit 1) */
    const bool early = c_overlap & OV_PREFETCH;
    if (!early) pdl_wait_trigger(OV_MATMUL);
#pragma unroll
    for (int j = 0; j < GEMV_STAGES - 1; j++) issue(j);
    if (early) pdl_wait_trigger(OV_MATMUL);
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int j = 0; j < J; j++) {
        issue(j + GEMV_STAGES - 1);
        cp_async_wait<GEMV_STAGES - 1>();
        __syncwarp();
        int u0, nu, n16;
        uintptr_t a0;
        const uint8_t *src = tile_src(j, u0, nu, a0, n16);
        const uint8_t *base = stage[warp][j % GEMV_STAGES] + ((uintptr_t)src - a0);
#pragma unroll
        for (int k0 = 0; k0 < TU; k0 += 8) {
            const int k = k0 + (lane >> 2), pc = lane & 3;
            if (k < nu) {
                float v[8], d, m;
                wt<T>::piece(base, k, pc, v, d, m);
                const int col = (u0 + k) * 32 + 8 * pc;
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    const int tt = t < n_tok ? t : 0;
                    const float4 *xp = (const float4 *)(x + (size_t)tt * ldx + col);
                    const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                    const float dot = v[0] * x0.x + v[1] * x0.y + v[2] * x0.z + v[3] * x0.w +
                                      v[4] * x1.x + v[5] * x1.y + v[6] * x1.z + v[7] * x1.w;
                    acc[t] += d * dot;
                    if (wt<T>::MIN) acc[t] += m * (x0.x + x0.y + x0.z + x0.w + x1.x + x1.y + x1.z + x1.w);
                }
            }
        }
        if (j % tpr == tpr - 1) { /* the row's last tile: reduce and store */
            const int row = row0 + j / tpr;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                float a = acc[t];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
                if (lane == 0 && t < n_tok) y[(size_t)t * ldy + row] = a;
                acc[t] = 0.0f;
            }
        }
        __syncwarp(); /* the next issue reuses this tile's buffer */
    }
    cp_async_wait<0>();
}

template <int T>
static void gemv_launch(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok, float *y,
                        int ldy) {
    const int nu = w->n_in / 32, tpr = (nu + tile_of<T>::UNITS - 1) / tile_of<T>::UNITS;
    const int R = tpr <= 2 && w->n_out >= 8192 ? 2 : 1;
    const int warps = (w->n_out + R - 1) / R;
    dim3 grid((unsigned)((warps + GW - 1) / GW));
    const uint8_t *d = (const uint8_t *)w->data;
#define GEMV(NT) pdl_launch(cu, gemv_kernel<T, NT>, grid, 32 * GW, d, w->row_bytes, nu, w->n_out, R, x, ldx, n_tok, y, ldy)
    if (n_tok <= 1) GEMV(1);
    else if (n_tok <= 2) GEMV(2);
    else if (n_tok <= 4) GEMV(4);
    else GEMV(8);
#undef GEMV
}

/* ------------------------------------------------- dequantize, cuBLAS -- */

template <int T>
__global__ void dequant_f16_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int n_units,
                                   size_t total, __half *__restrict__ out) {
    pdl_wait_trigger();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t row = i / (size_t)n_units;
    int u = (int)(i % (size_t)n_units);
    float v[32];
    unit_any<T>::f(w + row * row_bytes, n_units, u, v);
    uint4 *o = (uint4 *)(out + i * 32);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        __half2 h[4];
#pragma unroll
        for (int j = 0; j < 4; j++) h[j] = __floats2half2_rn(v[8 * k + 2 * j], v[8 * k + 2 * j + 1]);
        o[k] = *(uint4 *)h;
    }
}

template <int T>
__global__ void dequant_f32_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int n_units,
                                   size_t total, float *__restrict__ out) {
    pdl_wait_trigger();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t row = i / (size_t)n_units;
    int u = (int)(i % (size_t)n_units);
    float v[32];
    unit_any<T>::f(w + row * row_bytes, n_units, u, v);
#pragma unroll
    for (int k = 0; k < 32; k++) out[i * 32 + k] = v[k];
}

template <int T>
__global__ void get_rows_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int n_units,
                                const int32_t *__restrict__ ids, float *__restrict__ out, int ld,
                                float scale) {
    pdl_wait_trigger();
    int u = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (u >= n_units) return;
    float v[32];
    unit_any<T>::f(w + (size_t)ids[i] * row_bytes, n_units, u, v);
    float *o = out + (size_t)i * ld + (size_t)u * 32;
#pragma unroll
    for (int k = 0; k < 32; k++) o[k] = v[k] * scale;
}

__global__ void f32_to_f16_kernel(const float *__restrict__ x, int ldx, int n, int n_tok,
                                  __half *__restrict__ out) {
    pdl_wait_trigger();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * n_tok) return;
    size_t t = i / (size_t)n, j = i % (size_t)n;
    out[i] = __float2half_rn(x[t * (size_t)ldx + j]);
}

#define TYPE_SWITCH(t, CALL)                                                                       \
    switch (t) {                                                                                   \
    case HL_F32: { constexpr int TT = HL_F32; CALL; } break;                                       \
    case HL_F16: { constexpr int TT = HL_F16; CALL; } break;                                       \
    case HL_BF16: { constexpr int TT = HL_BF16; CALL; } break;                                     \
    case HL_Q4_0: { constexpr int TT = HL_Q4_0; CALL; } break;                                     \
    case HL_Q4_1: { constexpr int TT = HL_Q4_1; CALL; } break;                                     \
    case HL_Q5_0: { constexpr int TT = HL_Q5_0; CALL; } break;                                     \
    case HL_Q5_1: { constexpr int TT = HL_Q5_1; CALL; } break;                                     \
    case HL_Q8_0: { constexpr int TT = HL_Q8_0; CALL; } break;                                     \
    case HL_Q2_K: { constexpr int TT = HL_Q2_K; CALL; } break;                                     \
    case HL_Q3_K: { constexpr int TT = HL_Q3_K; CALL; } break;                                     \
    case HL_Q4_K: { constexpr int TT = HL_Q4_K; CALL; } break;                                     \
    case HL_Q5_K: { constexpr int TT = HL_Q5_K; CALL; } break;                                     \
    case HL_Q6_K: { constexpr int TT = HL_Q6_K; CALL; } break;                                     \
    default: hl_cu_set_error(cu, cudaErrorInvalidValue, "unsupported weight type"); return;      \
    }
#define TYPE_SWITCH_ALL(t, CALL)                                                                   \
    switch ((int)(t)) {                                                                            \
    case HL_CU_Q4_0S: { constexpr int TT = HL_CU_Q4_0S; CALL; } break;                             \
    case HL_CU_Q8_0S: { constexpr int TT = HL_CU_Q8_0S; CALL; } break;                             \
    case HL_CU_Q6_KP: { constexpr int TT = HL_CU_Q6_KP; CALL; } break;                             \
    default: TYPE_SWITCH(t, CALL)                                                                  \
    }

static void dequant_f16(hl_cu *cu, const hl_cu_mat *w, __half *out) {
    int nu = w->n_in / 32;
    size_t total = (size_t)nu * (size_t)w->n_out;
    unsigned blocks = (unsigned)((total + 255) / 256);
    const uint8_t *d = (const uint8_t *)w->data;
    TYPE_SWITCH_ALL(w->type, (pdl_launch(cu, dequant_f16_kernel<TT>, blocks, 256, d, w->row_bytes, nu, total, out)));
    hl_cu_after_launch(cu, "dequantize");
}

extern "C" void hl_cu_dequant(hl_cu *cu, const hl_cu_mat *w, float *out) {
    int nu = w->n_in / 32;
    size_t total = (size_t)nu * (size_t)w->n_out;
    unsigned blocks = (unsigned)((total + 255) / 256);
    const uint8_t *d = (const uint8_t *)w->data;
    TYPE_SWITCH_ALL(w->type, (pdl_launch(cu, dequant_f32_kernel<TT>, blocks, 256, d, w->row_bytes, nu, total, out)));
    hl_cu_after_launch(cu, "dequantize");
}

extern "C" void hl_cu_get_rows(hl_cu *cu, const hl_cu_mat *w, const int32_t *ids, int n, float *out,
                               int ld, float scale) {
    int nu = w->n_in / 32;
    dim3 grid((unsigned)((nu + 63) / 64), (unsigned)n);
    const uint8_t *d = (const uint8_t *)w->data;
    TYPE_SWITCH_ALL(w->type, (pdl_launch(cu, get_rows_kernel<TT>, grid, 64, d, w->row_bytes, nu, ids, out, ld, scale)));
    hl_cu_after_launch(cu, "get_rows");
}

static void matmul_blas(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok, float *y,
                        int ldy) {
    size_t we = (size_t)w->n_in * (size_t)w->n_out, xe = (size_t)n_tok * (size_t)w->n_in;
    if (we > cu->wh_elems || xe > cu->xh_elems) {
        hl_cu_set_error(cu, cudaErrorMemoryAllocation, "matmul scratch smaller than the matrix (hl_cu_reserve)");
        return;
    }
    dequant_f16(cu, w, cu->wh);
    pdl_launch(cu, f32_to_f16_kernel, (unsigned)((xe + 255) / 256), 256, x, ldx, w->n_in, n_tok, cu->xh);
    hl_cu_after_launch(cu, "f32_to_f16");
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasGemmEx(cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->n_out, n_tok, w->n_in, &one,
                                    cu->wh, CUDA_R_16F, w->n_in, cu->xh, CUDA_R_16F, w->n_in, &zero, y,
                                    CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS && !cu->failed) {
        cu->failed = true;
        snprintf(cu->err, sizeof cu->err, "cuda: cublasGemmEx failed (status %d)", (int)s);
    }
}

static void gemv_f32(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok, float *y, int ldy) {
    TYPE_SWITCH(w->type, (gemv_launch<TT>(cu, w, x, ldx, n_tok, y, ldy)));
    hl_cu_after_launch(cu, "gemv");
}

static void matmul_small(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, const int8_t *xq,
                         const float *xds, int n_tok, float *y, int ldy) {
    if (q8_type(w->type)) {
        if (!xq) { /* quantize here; producers that fuse it pass xq */
            if ((size_t)n_tok * (size_t)ldx > cu->q8_elems) {
                hl_cu_set_error(cu, cudaErrorMemoryAllocation, "int8 scratch smaller than the input (hl_cu_reserve)");
                return;
            }
            hl_cu_quantize_q8(cu, x, ldx, n_tok, w->n_in, cu->q8, cu->q8ds);
            xq = cu->q8, xds = cu->q8ds;
        }
        switch ((int)w->type) {
        case HL_CU_Q4_0S: gemv_q8_launch<HL_CU_Q4_0S>(cu, w, xq, xds, ldx, n_tok, y, ldy); break;
        case HL_CU_Q8_0S: gemv_q8_launch<HL_CU_Q8_0S>(cu, w, xq, xds, ldx, n_tok, y, ldy); break;
        case HL_CU_Q6_KP: gemv_q8_launch<HL_CU_Q6_KP>(cu, w, xq, xds, ldx, n_tok, y, ldy); break;
        case HL_Q4_1: gemv_q8_launch<HL_Q4_1>(cu, w, xq, xds, ldx, n_tok, y, ldy); break;
        case HL_Q8_0: gemv_q8_launch<HL_Q8_0>(cu, w, xq, xds, ldx, n_tok, y, ldy); break;
        default: gemv_q8_launch<HL_Q4_K>(cu, w, xq, xds, ldx, n_tok, y, ldy); break;
        }
        hl_cu_after_launch(cu, "gemv q8");
        return;
    }
    gemv_f32(cu, w, x, ldx, n_tok, y, ldy);
}

extern "C" void hl_cu_matmul_path(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok,
                                  float *y, int ldy, int path) {
    if (path == 0) matmul_small(cu, w, x, ldx, NULL, NULL, n_tok > 8 ? 8 : n_tok, y, ldy);
    else matmul_blas(cu, w, x, ldx, n_tok, y, ldy);
}

extern "C" void hl_cu_matmul_q8(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx,
                                const int8_t *xq, const float *xds, int n_tok, float *y, int ldy) {
    if (n_tok <= 8) matmul_small(cu, w, x, ldx, xq, xds, n_tok, y, ldy);
    else matmul_blas(cu, w, x, ldx, n_tok, y, ldy);
}

extern "C" void hl_cu_matmul(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok,
                             float *y, int ldy) {
    hl_cu_matmul_q8(cu, w, x, ldx, NULL, NULL, n_tok, y, ldy);
}

extern "C" void hl_cu_matmul_act(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, const int8_t *xq,
                                 const float *xds, int n_tok, bool gelu, float *gu, float *out, int8_t *q8,
                                 float *q8ds) {
    const int F = w->n_out / 2;
    if (w->type == HL_Q4_K && n_tok >= 1 && n_tok <= 2 && xq && F % 32 == 0) {
        glu_launch<HL_Q4_K>(cu, w, xq, xds, ldx, n_tok, gelu, out, q8, q8ds);
        return;
    }
    hl_cu_matmul_q8(cu, w, x, ldx, xq, xds, n_tok, gu, 2 * F);
    hl_cu_act_mul(cu, gu, n_tok, F, gelu, true, out, q8, q8ds);
}

/* ----------------------------------------------------- norms, residual -- */

__device__ __forceinline__ float block_sum(float v, float *sh) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads(); /* sh may still be read by a previous call */
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* One block per row; every thread keeps its PER elements in registers, so
 * the row is read once with all loads in flight, whatever the steps. */
template <int PER>
__global__ void resid_norm_kernel(float *__restrict__ x, const float *delta,
                                  const float *__restrict__ post, const float *__restrict__ w,
                                  float *out, int n, float eps, const int32_t *__restrict__ rows,
                                  int8_t *__restrict__ q8, float2 *__restrict__ q8ds) {
    __shared__ float sh[32];
    const int t = blockIdx.x, nt = blockDim.x;
    float xv[PER], dv[PER], pv[PER], wv[PER];
#pragma unroll
    for (int k = 0; k < PER; k++) { /* the norms' weights before the wait */
        const int i = threadIdx.x + k * nt;
        const bool in = i < n;
        pv[k] = in && post ? post[i] : 0.0f;
        wv[k] = in && w ? w[i] : 0.0f;
    }
    pdl_wait_trigger(OV_NORM);
    float *xr = x + (size_t)(rows ? rows[t] : t) * n;
    const float *dr = delta ? delta + (size_t)t * n : NULL;
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const int i = threadIdx.x + k * nt;
        const bool in = i < n;
        xv[k] = in ? xr[i] : 0.0f;
        dv[k] = in && dr ? dr[i] : 0.0f;
    }
    if (dr) {
        float r = 1.0f;
        if (post) {
            float ss = 0.0f;
#pragma unroll
            for (int k = 0; k < PER; k++) ss += dv[k] * dv[k];
            r = rsqrtf(block_sum(ss, sh) / (float)n + eps);
        }
#pragma unroll
        for (int k = 0; k < PER; k++) {
            const int i = threadIdx.x + k * nt;
            xv[k] += post ? dv[k] * r * pv[k] : dv[k];
            if (i < n) xr[i] = xv[k];
        }
    }
    if (w) {
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < PER; k++) ss += xv[k] * xv[k];
        const float r = rsqrtf(block_sum(ss, sh) / (float)n + eps);
        float *o = out + (size_t)t * n;
#pragma unroll
        for (int k = 0; k < PER; k++) {
            const int i = threadIdx.x + k * nt;
            if (i < n) { /* whole warps: n % 32 == 0 */
                const float v = xv[k] * r * wv[k];
                o[i] = v;
                if (q8) warp_q8(v, q8 + (size_t)t * n + i, q8ds + ((size_t)t * n + i) / 32);
            }
        }
    }
}

extern "C" void hl_cu_resid_norm(hl_cu *cu, float *x, const float *delta, const float *post,
                                 const float *w, float *out, int n_tok, int n, float eps,
                                 const int32_t *rows, int8_t *q8, float *q8ds) {
    if (n_tok <= 0) return;
    /* more threads, fewer elements each: a shorter chain of latencies (1024
     * measured faster than 512 and 256 at n 2048; registers allow it to 8192) */
    const int threads = n >= 2048 && n <= 8192 ? 1024 : n >= 1024 ? 512 : 256;
    const int per = (n + threads - 1) / threads;
    float2 *ds = (float2 *)q8ds;
    if (per <= 4) pdl_launch(cu, resid_norm_kernel<4>, n_tok, threads, x, delta, post, w, out, n, eps, rows, q8, ds);
    else if (per <= 8) pdl_launch(cu, resid_norm_kernel<8>, n_tok, threads, x, delta, post, w, out, n, eps, rows, q8, ds);
    else if (per <= 16) pdl_launch(cu, resid_norm_kernel<16>, n_tok, threads, x, delta, post, w, out, n, eps, rows, q8, ds);
    else if (per <= 32) pdl_launch(cu, resid_norm_kernel<32>, n_tok, threads, x, delta, post, w, out, n, eps, rows, q8, ds);
    else hl_cu_set_error(cu, cudaErrorInvalidValue, "rms norm: rows over 16384");
    hl_cu_after_launch(cu, "resid_norm");
}

/* ------------------------------------------------ q/k/v post-processing -- */

#define MAX_HD 256

/* The rope angles of a lane at pos: pair i = lane + 32 j (j < NJ, i <
 * n_rot / 2 <= 32 NJ) turns by theta_i, cos in c[j], sin in s[j]. theta_i
 * is pos * step^i by repeated products, as hl_cpu_rope_table computes it. */
template <int NJ> struct rope_cs {
    float c[NJ], s[NJ];
};
#define RJ(hd) (((hd) + 63) / 64) /* NJ for a head size: n_rot <= hd */

template <int NJ>
__device__ __forceinline__ void rope_angles(const hl_cu_attn_shape &s, int pos, int lane, rope_cs<NJ> &r) {
    const int half = s.n_rot / 2;
    const float step = powf(s.rope_base, -2.0f / (float)s.n_rot);
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        const int i = lane + 32 * j;
        if (i >= half) break;
        float theta = (float)pos;
        for (int k = 0; k < i; k++) theta *= step;
        if (s.freq_factors) theta /= s.freq_factors[i];
        theta *= s.rope_scale;
        float sn, cs;
        sincosf(theta, &sn, &cs);
        r.s[j] = sn, r.c[j] = cs;
    }
}

/* One head of [q | k | v] into a warp's buffer b of head_dim floats: the
 * bias (already offset to the head; may be NULL), the per-head rms norm nw
 * (may be NULL), then rope when asked (q and k) by the angles rc
 * (rope_angles at the token's position). qkv_post and the fused attention
 * both prepare heads here, so they agree to the bit. */
template <int NJ>
__device__ __forceinline__ void head_prep(const float *src, const float *bias, const float *nw,
                                          bool rope, const rope_cs<NJ> &rc, const hl_cu_attn_shape &s,
                                          float *b, int lane) {
    const int hd = s.head_dim;
    float ss = 0.0f;
    for (int d = lane; d < hd; d += 32) {
        const float v = src[d] + (bias ? bias[d] : 0.0f);
        b[d] = v;
        ss += v * v;
    }
    if (nw) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
        const float r = rsqrtf(ss / (float)hd + s.eps);
        for (int d = lane; d < hd; d += 32) b[d] = b[d] * r * nw[d];
    }
    __syncwarp();
    if (!rope) return;
    const int half = s.n_rot / 2;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        const int i = lane + 32 * j;
        if (i >= half) break;
        const float cs = rc.c[j], sn = rc.s[j];
        const int a = s.neox ? i : 2 * i, c = s.neox ? i + half : 2 * i + 1;
        const float x0 = b[a], x1 = b[c];
        b[a] = x0 * cs - x1 * sn;
        b[c] = x0 * sn + x1 * cs;
    }
    __syncwarp();
}

/* k or v head kvh of one token's qkv row, prepared (rc: the rope angles
 * at pos) and stored in the cache at (seq, pos) as f16; b is the warp's
 * scratch. */
template <int NJ>
__device__ __forceinline__ void kv_store(const float *row, int kvh, bool is_v, int pos, int seq,
                                        const hl_cu_attn_shape &s, const float *bk, const float *bv,
                                        const float *k_norm, __half *kc, __half *vc, float *b, int lane,
                                        const rope_cs<NJ> &rc) {
    const int hd = s.head_dim, nh = s.n_head, nkv = s.n_head_kv;
    const float *src = row + (size_t)(nh + (is_v ? nkv : 0) + kvh) * hd;
    const float *bias = is_v ? bv : bk;
    head_prep(src, bias ? bias + (size_t)kvh * hd : NULL, is_v ? NULL : k_norm, !is_v, rc, s, b, lane);
    __half *dst = (is_v ? vc : kc) + (((size_t)seq * nkv + kvh) * s.n_ctx + pos) * hd;
    for (int d = lane; d < hd; d += 32) dst[d] = __float2half_rn(b[d]);
    __syncwarp();
}

/* One block per token; warp i takes heads i, i + 8, ... of [q | k | v]. */
__global__ void qkv_post_kernel(float *__restrict__ qkv, int ld, hl_cu_attn_shape s,
                                const float *__restrict__ bq, const float *__restrict__ bk,
                                const float *__restrict__ bv, const float *__restrict__ q_norm,
                                const float *__restrict__ k_norm, const int32_t *__restrict__ posv,
                                const int32_t *__restrict__ seqv, __half *__restrict__ kc,
                                __half *__restrict__ vc) {
    pdl_wait_trigger();
    __shared__ float buf[8][MAX_HD];
    const int t = blockIdx.x, wi = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int hd = s.head_dim, pos = posv[t], seq = seqv[t];
    const int nh = s.n_head, nkv = s.n_head_kv;
    float *row = qkv + (size_t)t * ld;
    float *b = buf[wi];
    rope_cs<MAX_HD / 64> rc;
    rope_angles(s, pos, lane, rc);
    for (int h = blockIdx.y * 8 + wi; h < nh + 2 * nkv; h += gridDim.y * 8) {
        if (h >= nh) {
            kv_store(row, (h - nh) % nkv, h >= nh + nkv, pos, seq, s, bk, bv, k_norm, kc, vc, b, lane, rc);
            continue;
        }
        float *src = row + (size_t)h * hd;
        head_prep(src, bq ? bq + (size_t)h * hd : NULL, q_norm, true, rc, s, b, lane);
        for (int d = lane; d < hd; d += 32) src[d] = b[d];
        __syncwarp();
    }
}

extern "C" void hl_cu_qkv_post(hl_cu *cu, float *qkv, int ld, int n_tok, const hl_cu_attn_shape *s,
                               const float *bq, const float *bk, const float *bv,
                               const float *q_norm, const float *k_norm, const int32_t *pos,
                               const int32_t *seq, void *k_cache, void *v_cache) {
    if (n_tok <= 0) return;
    if (s->head_dim > MAX_HD) {
        hl_cu_set_error(cu, cudaErrorInvalidValue, "head dimension over 256");
        return;
    }
    dim3 grid((unsigned)n_tok, (unsigned)((s->n_head + 2 * s->n_head_kv + 7) / 8));
    pdl_launch(cu, qkv_post_kernel, grid, 256, qkv, ld, *s, bq, bk, bv, q_norm, k_norm, pos, seq,
                                                   (__half *)k_cache, (__half *)v_cache);
    hl_cu_after_launch(cu, "qkv_post");
}

/* ------------------------------------------------------------ attention -- */

/* Attention, one warp per (token, query head, split) and no block-wide
 * barrier. A split is a run of the token's visible range [start, pos]:
 * ATT_CHUNK_DECODE positions in batches of up to ATT_DECODE_TOK tokens
 * (decode steps), ATT_CHUNK in larger ones, and longer (by 32s) where the
 * range needs more splits than the grid has (at most ATT_MAX_SPLIT_DECODE
 * for decode steps, ATT_MAX_SPLIT for larger batches). Each block works
 * out its token's split length from the token's position, so a graph
 * sizes the grid for the whole context, a short range still splits
 * finely, and splits past the range exit at once.
 *
 * The warp walks its split 32 positions at a time with an online softmax:
 * lane i scores position i (the query sits in shared memory, read by
 * broadcast), then the warp accumulates the value rows, lane i owning
 * dims i, i + 32, ... A token whose range fits one split writes its
 * output directly; otherwise each split leaves (max, sum, output) and the
 * last to finish, by a per-(token, head) counter, merges them. The
 * output's int8 form is made on the way (q8).
 *
 * The walk is serial, so the split length is decode's latency. Measured on
 * an H200 (1B Q4_0, tg128 / tg512 tok/s): splits of 256 positions 1,497 /
 * 1,020, of 64 1,625 / 1,567, of 32 1,684 / 1,633 (8B tg128 462 -> 514);
 * 64 sequences decoding together 15,316 with 256, 16,155 with 32 for up
 * to 8 tokens only, 17,757 with 32 for up to 64. */
#define ATT_CHUNK 256
#define ATT_CHUNK_DECODE 32
#define ATT_DECODE_TOK 64
#define ATT_MAX_SPLIT 32
#define ATT_MAX_SPLIT_DECODE 128
static_assert(ATT_MAX_SPLIT <= ATT_MAX_SPLIT_DECODE && ATT_MAX_SPLIT_DECODE % 32 == 0,
              "the merge holds up to ATT_MAX_SPLIT_DECODE records, 32 a pass");
#define ATT_WARPS 4

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The q/k/v preparation of the fused form (POST): biases, norms and the
 * cache rows it writes. */
struct qkv_prep {
    const float *bq, *bk, *bv, *q_norm, *k_norm;
    int n_tok;
};

/* POST: the kernel also does qkv_post's work for the heads a block reads,
 * without a launch of its own. Before attending, a block stores the k and
 * v rows of every batch token of its sequence whose position lies in its
 * split (the rows it is about to read; blocks that share such a row write
 * the same bits), and each warp prepares its q head in shared memory; qkv
 * is not modified. The cache is then read with coherent loads. Cost: the
 * rows are prepared once per block that reads them, which is why the
 * engine takes this form for small batches only. */
template <int HD, bool POST>
__global__ void __launch_bounds__(32 * ATT_WARPS)
attn_kernel(const float *__restrict__ qkv, int ld, hl_cu_attn_shape s,
            const int32_t *__restrict__ posv, const int32_t *__restrict__ seqv,
            __half *kc, __half *vc, int min_chunk,
            float *__restrict__ part, int *__restrict__ counters, float *__restrict__ out,
            int8_t *__restrict__ q8, float2 *__restrict__ q8ds, qkv_prep pp) {
    constexpr int PER = HD / 32; /* dims per lane */
    __shared__ float q_sh[ATT_WARPS][HD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sp = blockIdx.x, t = blockIdx.z, h = blockIdx.y * ATT_WARPS + warp;
    if (!POST && h >= s.n_head) return;
    /* The batch's positions, this block's split, and POST's rope angles for
     * this token, before the wait: every kernel triggers its successor only
     * once its own wait is over, so the kernels before the previous one, and
     * the copy of the batch that starts a pass, have completed. */
    const int pos = posv[t], seq = seqv[t];
    const int start = s.window > 0 && pos - s.window + 1 > 0 ? pos - s.window + 1 : 0;
    /* the token's split length: min_chunk, or longer (a multiple of 32)
     * when its range needs more splits than the grid has */
    const int len = pos + 1 - start, per = (len + gridDim.x - 1) / gridDim.x;
    const int chunk = max(min_chunk, (per + 31) & ~31);
    const int n_act = (len + chunk - 1) / chunk; /* splits this token uses */
    if (sp >= n_act) return; /* the whole block, before it waits */
    rope_cs<RJ(HD)> rc;
    if (POST) rope_angles(s, pos, lane, rc);
    pdl_wait_trigger(OV_ATTN);
    const int p_begin = start + sp * chunk, p_end = min(p_begin + chunk, pos + 1);
    const int kvh = h / (s.n_head / s.n_head_kv);
    float *qs = q_sh[warp];
    if (POST) {
        const int grp = s.n_head / s.n_head_kv, h_lo = blockIdx.y * ATT_WARPS;
        const int kv_lo = h_lo / grp, kv_n = (min(h_lo + ATT_WARPS, s.n_head) - 1) / grp - kv_lo + 1;
        int item = 0;
        for (int t2 = 0; t2 < pp.n_tok; t2++) {
            const int p2 = posv[t2];
            if (seqv[t2] != seq || p2 < p_begin || p2 >= p_end) continue;
            rope_cs<RJ(HD)> r2 = rc; /* another token of the batch: its own angles */
            if (p2 != pos) rope_angles(s, p2, lane, r2);
            for (int k = 0; k < 2 * kv_n; k++, item++)
                if (item % ATT_WARPS == warp)
                    kv_store(qkv + (size_t)t2 * ld, kv_lo + k / 2, k & 1, p2, seq, s, pp.bk, pp.bv,
                             pp.k_norm, kc, vc, qs, lane, r2);
        }
        if (h < s.n_head) {
            head_prep(qkv + (size_t)t * ld + (size_t)h * HD, pp.bq ? pp.bq + (size_t)h * HD : NULL,
                      pp.q_norm, true, rc, s, qs, lane);
#pragma unroll
            for (int k = 0; k < PER; k++) qs[lane + 32 * k] *= s.scale;
        }
        __syncthreads(); /* the block's cache rows are written */
        if (h >= s.n_head) return;
    } else {
        const float *q = qkv + (size_t)t * ld + (size_t)h * HD;
#pragma unroll
        for (int k = 0; k < PER; k++) qs[lane + 32 * k] = q[lane + 32 * k] * s.scale;
    }
    __syncwarp();
    const size_t base = ((size_t)seq * s.n_head_kv + kvh) * s.n_ctx;
    const __half *kb = kc + base * HD, *vb = vc + base * HD;
    float m_run = -FLT_MAX, l_run = 0.0f, o[PER];
#pragma unroll
    for (int k = 0; k < PER; k++) o[k] = 0.0f;
    for (int c0 = p_begin; c0 < p_end; c0 += 32) {
        const int n = min(32, p_end - c0);
        float sc = -FLT_MAX;
        if (lane < n) {
            const uint4 *kr = (const uint4 *)(kb + (size_t)(c0 + lane) * HD);
            float a = 0.0f;
#pragma unroll
            for (int d8 = 0; d8 < HD / 8; d8++) {
                const uint4 raw = POST ? kr[d8] : __ldg(kr + d8);
                const __half2 *h2 = (const __half2 *)&raw;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float2 kv = __half22float2(h2[k]);
                    a += qs[8 * d8 + 2 * k] * kv.x + qs[8 * d8 + 2 * k + 1] * kv.y;
                }
            }
            sc = a;
        }
        const float m_new = fmaxf(m_run, warp_max(sc));
        const float alpha = __expf(m_run - m_new);
        const float p = lane < n ? __expf(sc - m_new) : 0.0f;
        l_run = l_run * alpha + warp_sum(p);
        m_run = m_new;
#pragma unroll
        for (int k = 0; k < PER; k++) o[k] *= alpha;
        const __half *vr = vb + (size_t)c0 * HD + lane;
        /* VU positions' value loads in flight at once (4 before: the walk
         * was a chain of cache round trips; ncu gave a 1B decode step's
         * attention 24 µs at position ~100, one split) */
        constexpr int VU = PER <= 2 ? 16 : PER <= 4 ? 8 : 4;
#pragma unroll VU
        for (int pi = 0; pi < n; pi++) {
            const float w = __shfl_sync(0xffffffffu, p, pi);
#pragma unroll
            for (int k = 0; k < PER; k++) {
                const __half *vp = vr + (size_t)pi * HD + 32 * k;
                o[k] += w * __half2float(POST ? *vp : __ldg(vp));
            }
        }
    }
    const size_t ob = ((size_t)t * s.n_head + h) * HD;
    if (n_act == 1) {
        const float inv = l_run > 0.0f ? 1.0f / l_run : 0.0f;
#pragma unroll
        for (int k = 0; k < PER; k++) {
            const float v = o[k] * inv;
            out[ob + lane + 32 * k] = v;
            if (q8) warp_q8(v, q8 + ob + lane + 32 * k, q8ds + (ob + 32 * k) / 32);
        }
        return;
    }
    /* partial record (max, sum, o[HD]) of this split; the last one merges */
    float *pt = part + ((size_t)t * s.n_head + h) * gridDim.x * (HD + 2);
    float *rec = pt + (size_t)sp * (HD + 2);
    if (lane == 0) rec[0] = m_run, rec[1] = l_run;
#pragma unroll
    for (int k = 0; k < PER; k++) rec[2 + lane + 32 * k] = o[k];
    __threadfence();
    int last = 0;
    if (lane == 0) {
        int *c = counters + (size_t)t * s.n_head + h;
        last = atomicAdd(c, 1) == n_act - 1;
        if (last) *c = 0;
    }
    last = __shfl_sync(0xffffffffu, last, 0);
    if (!last) return;
    __threadfence();
    /* lane j takes records j, j + 32, ... for the max and the weights; the
     * rows then add up with every record's loads independent (read at L2:
     * other blocks wrote them) */
    constexpr int RL = ATT_MAX_SPLIT_DECODE / 32;
    float mj[RL], fj[RL], M = -FLT_MAX, L = 0.0f;
#pragma unroll
    for (int j = 0; j < RL; j++) {
        const int i = lane + 32 * j;
        mj[j] = i < n_act ? __ldcg(pt + (size_t)i * (HD + 2)) : -FLT_MAX;
        M = fmaxf(M, mj[j]);
    }
    M = warp_max(M);
#pragma unroll
    for (int j = 0; j < RL; j++) {
        const int i = lane + 32 * j;
        fj[j] = i < n_act ? __expf(mj[j] - M) : 0.0f;
        L += i < n_act ? __ldcg(pt + (size_t)i * (HD + 2) + 1) * fj[j] : 0.0f;
    }
    L = warp_sum(L);
    float acc[PER];
#pragma unroll
    for (int k = 0; k < PER; k++) acc[k] = 0.0f;
#pragma unroll
    for (int j = 0; j < RL; j++) {
        const int n = min(32, n_act - 32 * j);
#pragma unroll 8
        for (int i0 = 0; i0 < n; i0++) {
            const float f = __shfl_sync(0xffffffffu, fj[j], i0);
            const float *r = pt + (size_t)(32 * j + i0) * (HD + 2) + 2 + lane;
#pragma unroll
            for (int k = 0; k < PER; k++) acc[k] += __ldcg(r + 32 * k) * f;
        }
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
#pragma unroll
    for (int k = 0; k < PER; k++) {
        const float v = acc[k] * inv;
        out[ob + lane + 32 * k] = v;
        if (q8) warp_q8(v, q8 + ob + lane + 32 * k, q8ds + (ob + 32 * k) / 32);
    }
}

extern "C" size_t hl_cu_attn_scratch(int n_tok, int n_head, int head_dim) {
    /* records of (token, head, split): a batch of up to n_tok tokens */
    const size_t big = (size_t)n_tok * ATT_MAX_SPLIT;
    const size_t dec = (size_t)(n_tok < ATT_DECODE_TOK ? n_tok : ATT_DECODE_TOK) * ATT_MAX_SPLIT_DECODE;
    return (big > dec ? big : dec) * (size_t)n_head * (size_t)(head_dim + 2);
}

static void attention(hl_cu *cu, const float *qkv, int ld, int n_tok, const hl_cu_attn_shape *s,
                      const int32_t *pos, const int32_t *seq, void *k_cache, void *v_cache, float *out,
                      int max_len, float *part, int *counters, int8_t *q8, float *q8ds,
                      const qkv_prep *pp) {
    if (n_tok <= 0) return;
    const int hd = s->head_dim;
    if (hd != 64 && hd != 128 && hd != 256 && hd != 32 && hd != 96) {
        hl_cu_set_error(cu, cudaErrorInvalidValue, "attention: head dimension must be 32, 64, 96, 128 or 256");
        return;
    }
    const int chunk = n_tok <= ATT_DECODE_TOK ? ATT_CHUNK_DECODE : ATT_CHUNK;
    const int max_split = n_tok <= ATT_DECODE_TOK ? ATT_MAX_SPLIT_DECODE : ATT_MAX_SPLIT;
    int n_split = (max_len + chunk - 1) / chunk;
    if (n_split > max_split) n_split = max_split;
    dim3 grid((unsigned)n_split, (unsigned)((s->n_head + ATT_WARPS - 1) / ATT_WARPS), (unsigned)n_tok);
    __half *kc = (__half *)k_cache, *vc = (__half *)v_cache;
    float2 *ds = (float2 *)q8ds;
    const qkv_prep none = {};
#define ATT(HD)                                                                                    \
    (pp ? pdl_launch(cu, attn_kernel<HD, true>, grid, 32 * ATT_WARPS, qkv, ld, *s, pos, seq, kc, vc, \
                     chunk, part, counters, out, q8, ds, *pp)                                      \
        : pdl_launch(cu, attn_kernel<HD, false>, grid, 32 * ATT_WARPS, qkv, ld, *s, pos, seq, kc,  \
                     vc, chunk, part, counters, out, q8, ds, none))
    switch (hd) {
    case 32: ATT(32); break;
    case 64: ATT(64); break;
    case 96: ATT(96); break;
    case 128: ATT(128); break;
    default: ATT(256); break;
    }
#undef ATT
    hl_cu_after_launch(cu, "attention");
}

extern "C" void hl_cu_attention(hl_cu *cu, const float *qkv, int ld, int n_tok,
                                const hl_cu_attn_shape *s, const int32_t *pos, const int32_t *seq,
                                const void *k_cache, const void *v_cache, float *out, int max_len,
                                float *part, int *counters, int8_t *q8, float *q8ds) {
    /* read-only without the fused preparation */
    attention(cu, qkv, ld, n_tok, s, pos, seq, (void *)k_cache, (void *)v_cache, out, max_len, part,
              counters, q8, q8ds, NULL);
}

extern "C" void hl_cu_attention_fused(hl_cu *cu, const float *qkv, int ld, int n_tok,
                                      const hl_cu_attn_shape *s, const float *bq, const float *bk,
                                      const float *bv, const float *q_norm, const float *k_norm,
                                      const int32_t *pos, const int32_t *seq, void *k_cache,
                                      void *v_cache, float *out, int max_len, float *part,
                                      int *counters, int8_t *q8, float *q8ds) {
    const qkv_prep pp = {bq, bk, bv, q_norm, k_norm, n_tok};
    attention(cu, qkv, ld, n_tok, s, pos, seq, k_cache, v_cache, out, max_len, part, counters, q8, q8ds,
              &pp);
}

/* ---------------------------------------------------------- elementwise -- */

__global__ void act_mul_kernel(const float *__restrict__ gu, int n, size_t total, bool gelu, bool ilv,
                               float *__restrict__ out, int8_t *__restrict__ q8,
                               float2 *__restrict__ q8ds) {
    pdl_wait_trigger();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t t = i / (size_t)n, j = i % (size_t)n;
    const float g = ilv ? gu[t * 2 * n + 2 * j] : gu[t * 2 * n + j];
    const float u = ilv ? gu[t * 2 * n + 2 * j + 1] : gu[t * 2 * n + n + j];
    const float v = glu_act(g, u, gelu);
    out[i] = v;
    if (q8) warp_q8(v, q8 + i, q8ds + i / 32); /* total % 32 == 0: whole warps */
}

extern "C" void hl_cu_act_mul(hl_cu *cu, const float *gu, int n_tok, int n, bool gelu, bool interleaved,
                              float *out, int8_t *q8, float *q8ds) {
    size_t total = (size_t)n_tok * (size_t)n;
    if (!total) return;
    pdl_launch(cu, act_mul_kernel, (unsigned)((total + 255) / 256), 256, gu, n, total, gelu, interleaved, out, q8,
                                                                            (float2 *)q8ds);
    hl_cu_after_launch(cu, "act_mul");
}

__global__ void softcap_kernel(float *x, size_t n, float cap) {
    pdl_wait_trigger();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

extern "C" void hl_cu_softcap(hl_cu *cu, float *x, size_t n, float cap) {
    if (!n) return;
    pdl_launch(cu, softcap_kernel, (unsigned)((n + 255) / 256), 256, x, n, cap);
    hl_cu_after_launch(cu, "softcap");
}

/* Argmax as one 64-bit atomic max per warp: the key is the value's bits
 * made monotonic in the float order, then the complement of the index (so
 * the first index wins ties). NaN never wins; a row of NaN gives -1. The
 * last block to finish (a counter) turns the keys into indices and zeroes
 * keys and counter for the next call: one launch. */
__device__ __forceinline__ unsigned long long argmax_key(float v, int i) {
    uint32_t b = __float_as_uint(v == 0.0f ? 0.0f : v); /* -0 ties with +0 */
    b = (b & 0x80000000u) ? ~b : b | 0x80000000u;
    return (unsigned long long)b << 32 | (uint32_t)(0xffffffffu - (uint32_t)i);
}

#define ARGMAX_PER 8 /* values per thread: 63 blocks for a 128k vocabulary */

__global__ void argmax_kernel(const float *__restrict__ x, int n, int n_rows, unsigned long long *keys,
                              int *counter, int32_t *__restrict__ ids) {
    pdl_wait_trigger();
    const float *r = x + (size_t)blockIdx.y * n;
    unsigned long long best = 0;
    const int base = blockIdx.x * blockDim.x * ARGMAX_PER;
#pragma unroll
    for (int k = 0; k < ARGMAX_PER; k++) {
        const int i = base + k * blockDim.x + threadIdx.x;
        if (i < n) {
            const float v = r[i];
            if (v == v) {
                const unsigned long long key = argmax_key(v, i);
                best = key > best ? key : best;
            }
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
        best = other > best ? other : best;
    }
    /* one atomic per block: the warps' bests meet in shared memory first
     * (one per warp contended on the row's key, 10.3 us per 128k logits) */
    __shared__ unsigned long long wbest[32];
    __shared__ int last;
    if ((threadIdx.x & 31) == 0) wbest[threadIdx.x >> 5] = best;
    __syncthreads();
    if (threadIdx.x < 32) {
        best = threadIdx.x < (blockDim.x >> 5) ? wbest[threadIdx.x] : 0ull;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xffffffffu, best, o);
            best = other > best ? other : best;
        }
        if (threadIdx.x == 0 && best) atomicMax(keys + blockIdx.y, best);
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(counter, 1) == (int)(gridDim.x * gridDim.y) - 1;
    __syncthreads();
    if (!last) return;
    for (int i = threadIdx.x; i < n_rows; i += blockDim.x) {
        const unsigned long long k = atomicExch(keys + i, 0ull);
        ids[i] = k ? (int32_t)(0xffffffffu - (uint32_t)(k & 0xffffffffu)) : -1;
    }
    if (threadIdx.x == 0) *counter = 0;
}

extern "C" void hl_cu_argmax(hl_cu *cu, const float *x, int n_rows, int n, int32_t *ids) {
    if (n_rows <= 0) return;
    /* the keys live just past the ids, the counter past the keys */
    unsigned long long *keys = (unsigned long long *)(((uintptr_t)(ids + n_rows) + 7) & ~(uintptr_t)7);
    int *counter = (int *)(keys + n_rows);
    dim3 grid((unsigned)((n + 256 * ARGMAX_PER - 1) / (256 * ARGMAX_PER)), (unsigned)n_rows);
    pdl_launch(cu, argmax_kernel, grid, 256, x, n, n_rows, keys, counter, ids);
    hl_cu_after_launch(cu, "argmax");
}
