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

/* Calls F::template run<T>() for the matrix's type. */
#define HL_CU_TYPES(X)                                                                             \
    X(HL_F32) X(HL_F16) X(HL_BF16) X(HL_Q4_0) X(HL_Q4_1) X(HL_Q5_0) X(HL_Q5_1) X(HL_Q8_0)          \
    X(HL_Q2_K) X(HL_Q3_K) X(HL_Q4_K) X(HL_Q5_K) X(HL_Q6_K)

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
 * piece with every token's x. ACT: x is act(gate) * up of a [t][2 * n_in]
 * gate|up buffer (the FFN's down projection reads its input straight from
 * the gate/up matmul). */
#define GW 8
#define GEMV_STAGES 4
template <int T> struct tile_of {
    static constexpr int UNITS = T == HL_F32 ? 8 : (T == HL_F16 || T == HL_BF16) ? 16 : 32;
    static constexpr int BYTES = ((UNITS / wt<T>::UPB) * wt<T>::BB + 47) / 16 * 16;
};

__device__ __forceinline__ float act_gate(float g, int act) {
    if (act == 1) return g / (1.0f + __expf(-g));
    const float k = 0.7978845608028654f;
    return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
}

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <int T, int NT, int ACT>
__global__ void __launch_bounds__(32 * GW)
gemv_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int n_units, int n_out, int R,
            const float *__restrict__ x, int ldx, int n_tok, float *__restrict__ y, int ldy) {
    constexpr int TU = tile_of<T>::UNITS, SB = tile_of<T>::BYTES;
    __shared__ __align__(16) uint8_t stage[GW][GEMV_STAGES][SB];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * GW + warp) * R;
    if (row0 >= n_out) return; /* whole warps only: no block-wide barrier below */
    const int rows = min(R, n_out - row0), tpr = (n_units + TU - 1) / TU, J = rows * tpr;
    const int n_in = n_units * 32;
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
#pragma unroll
    for (int j = 0; j < GEMV_STAGES - 1; j++) issue(j);
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
                    float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                    if (ACT) {
                        const float4 *up = (const float4 *)(x + (size_t)tt * ldx + n_in + col);
                        const float4 u0v = __ldg(up), u1v = __ldg(up + 1);
                        x0 = make_float4(act_gate(x0.x, ACT) * u0v.x, act_gate(x0.y, ACT) * u0v.y,
                                         act_gate(x0.z, ACT) * u0v.z, act_gate(x0.w, ACT) * u0v.w);
                        x1 = make_float4(act_gate(x1.x, ACT) * u1v.x, act_gate(x1.y, ACT) * u1v.y,
                                         act_gate(x1.z, ACT) * u1v.z, act_gate(x1.w, ACT) * u1v.w);
                    }
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

template <int T, int ACT>
static void gemv_launch(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok, float *y,
                        int ldy) {
    const int nu = w->n_in / 32, tpr = (nu + tile_of<T>::UNITS - 1) / tile_of<T>::UNITS;
    const int R = tpr <= 2 && w->n_out >= 8192 ? 2 : 1;
    const int warps = (w->n_out + R - 1) / R;
    dim3 grid((unsigned)((warps + GW - 1) / GW));
    const uint8_t *d = (const uint8_t *)w->data;
#define GEMV(NT) gemv_kernel<T, NT, ACT><<<grid, 32 * GW, 0, cu->stream>>>(d, w->row_bytes, nu, w->n_out, R, x, ldx, n_tok, y, ldy)
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
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t row = i / (size_t)n_units;
    int u = (int)(i % (size_t)n_units);
    float v[32];
    wt<T>::unit(w + row * row_bytes, u, v);
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
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t row = i / (size_t)n_units;
    int u = (int)(i % (size_t)n_units);
    float v[32];
    wt<T>::unit(w + row * row_bytes, u, v);
#pragma unroll
    for (int k = 0; k < 32; k++) out[i * 32 + k] = v[k];
}

template <int T>
__global__ void get_rows_kernel(const uint8_t *__restrict__ w, size_t row_bytes, int n_units,
                                const int32_t *__restrict__ ids, float *__restrict__ out, int ld,
                                float scale) {
    int u = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (u >= n_units) return;
    float v[32];
    wt<T>::unit(w + (size_t)ids[i] * row_bytes, u, v);
    float *o = out + (size_t)i * ld + (size_t)u * 32;
#pragma unroll
    for (int k = 0; k < 32; k++) o[k] = v[k] * scale;
}

__global__ void f32_to_f16_kernel(const float *__restrict__ x, int ldx, int n, int n_tok,
                                  __half *__restrict__ out) {
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

static void dequant_f16(hl_cu *cu, const hl_cu_mat *w, __half *out) {
    int nu = w->n_in / 32;
    size_t total = (size_t)nu * (size_t)w->n_out;
    unsigned blocks = (unsigned)((total + 255) / 256);
    const uint8_t *d = (const uint8_t *)w->data;
    TYPE_SWITCH(w->type, (dequant_f16_kernel<TT><<<blocks, 256, 0, cu->stream>>>(d, w->row_bytes, nu, total, out)));
    hl_cu_after_launch(cu, "dequantize");
}

extern "C" void hl_cu_dequant(hl_cu *cu, const hl_cu_mat *w, float *out) {
    int nu = w->n_in / 32;
    size_t total = (size_t)nu * (size_t)w->n_out;
    unsigned blocks = (unsigned)((total + 255) / 256);
    const uint8_t *d = (const uint8_t *)w->data;
    TYPE_SWITCH(w->type, (dequant_f32_kernel<TT><<<blocks, 256, 0, cu->stream>>>(d, w->row_bytes, nu, total, out)));
    hl_cu_after_launch(cu, "dequantize");
}

extern "C" void hl_cu_get_rows(hl_cu *cu, const hl_cu_mat *w, const int32_t *ids, int n, float *out,
                               int ld, float scale) {
    int nu = w->n_in / 32;
    dim3 grid((unsigned)((nu + 63) / 64), (unsigned)n);
    const uint8_t *d = (const uint8_t *)w->data;
    TYPE_SWITCH(w->type, (get_rows_kernel<TT><<<grid, 64, 0, cu->stream>>>(d, w->row_bytes, nu, ids, out, ld, scale)));
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
    f32_to_f16_kernel<<<(unsigned)((xe + 255) / 256), 256, 0, cu->stream>>>(x, ldx, w->n_in, n_tok, cu->xh);
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

extern "C" void hl_cu_matmul_path(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok,
                                  float *y, int ldy, int path) {
    if (path == 0) {
        TYPE_SWITCH(w->type, (gemv_launch<TT, 0>(cu, w, x, ldx, n_tok > 8 ? 8 : n_tok, y, ldy)));
        hl_cu_after_launch(cu, "gemv");
    } else {
        matmul_blas(cu, w, x, ldx, n_tok, y, ldy);
    }
}

extern "C" void hl_cu_matmul_act(hl_cu *cu, const hl_cu_mat *w, const float *gu, int n_tok,
                                 bool gelu, float *tmp, float *y, int ldy) {
    if (n_tok <= 8) {
        if (gelu) TYPE_SWITCH(w->type, (gemv_launch<TT, 2>(cu, w, gu, 2 * w->n_in, n_tok, y, ldy)))
        else TYPE_SWITCH(w->type, (gemv_launch<TT, 1>(cu, w, gu, 2 * w->n_in, n_tok, y, ldy)))
        hl_cu_after_launch(cu, "gemv act");
        return;
    }
    hl_cu_act_mul(cu, gu, n_tok, w->n_in, gelu, tmp);
    matmul_blas(cu, w, tmp, w->n_in, n_tok, y, ldy);
}

extern "C" void hl_cu_matmul(hl_cu *cu, const hl_cu_mat *w, const float *x, int ldx, int n_tok,
                             float *y, int ldy) {
    if (n_tok <= 8) {
        hl_cu_matmul_path(cu, w, x, ldx, n_tok, y, ldy, 0);
        return;
    }
    matmul_blas(cu, w, x, ldx, n_tok, y, ldy);
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

__global__ void resid_norm_kernel(float *__restrict__ x, const float *__restrict__ delta,
                                  const float *__restrict__ post, const float *__restrict__ w,
                                  float *__restrict__ out, int n, float eps,
                                  const int32_t *__restrict__ rows) {
    __shared__ float sh[32];
    const int t = blockIdx.x;
    float *xr = x + (size_t)(rows ? rows[t] : t) * n;
    if (delta) {
        const float *dr = delta + (size_t)t * n;
        float r = 1.0f;
        if (post) {
            float ss = 0.0f;
            for (int i = threadIdx.x; i < n; i += blockDim.x) ss += dr[i] * dr[i];
            r = rsqrtf(block_sum(ss, sh) / (float)n + eps);
        }
        for (int i = threadIdx.x; i < n; i += blockDim.x) xr[i] += post ? dr[i] * r * post[i] : dr[i];
        __syncthreads();
    }
    if (w) {
        float ss = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
        float r = rsqrtf(block_sum(ss, sh) / (float)n + eps);
        float *o = out + (size_t)t * n;
        for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = xr[i] * r * w[i];
    }
}

extern "C" void hl_cu_resid_norm(hl_cu *cu, float *x, const float *delta, const float *post,
                                 const float *w, float *out, int n_tok, int n, float eps,
                                 const int32_t *rows) {
    if (n_tok <= 0) return;
    int threads = n >= 4096 ? 1024 : n >= 1024 ? 512 : 256;
    resid_norm_kernel<<<n_tok, threads, 0, cu->stream>>>(x, delta, post, w, out, n, eps, rows);
    hl_cu_after_launch(cu, "resid_norm");
}

/* ------------------------------------------------ q/k/v post-processing -- */

#define MAX_HD 256

/* One block per token; warp i takes heads i, i + 8, ... of [q | k | v]. */
__global__ void qkv_post_kernel(float *__restrict__ qkv, int ld, hl_cu_attn_shape s,
                                const float *__restrict__ bq, const float *__restrict__ bk,
                                const float *__restrict__ bv, const float *__restrict__ q_norm,
                                const float *__restrict__ k_norm, const int32_t *__restrict__ posv,
                                const int32_t *__restrict__ seqv, __half *__restrict__ kc,
                                __half *__restrict__ vc) {
    __shared__ float buf[8][MAX_HD];
    const int t = blockIdx.x, wi = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int hd = s.head_dim, pos = posv[t], seq = seqv[t];
    const int nh = s.n_head, nkv = s.n_head_kv;
    float *row = qkv + (size_t)t * ld;
    float *b = buf[wi];
    for (int h = blockIdx.y * 8 + wi; h < nh + 2 * nkv; h += gridDim.y * 8) {
        const int kind = h < nh ? 0 : h < nh + nkv ? 1 : 2; /* q, k, v */
        const int hh = kind == 0 ? h : kind == 1 ? h - nh : h - nh - nkv;
        float *src = row + (size_t)h * hd; /* q, k and v heads sit in this order */
        const float *bias = kind == 0 ? bq : kind == 1 ? bk : bv;
        const float *nw = kind == 0 ? q_norm : kind == 1 ? k_norm : NULL;
        float ss = 0.0f;
        for (int d = lane; d < hd; d += 32) {
            float v = src[d] + (bias ? bias[(size_t)hh * hd + d] : 0.0f);
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
        if (kind < 2) {
            const int half = s.n_rot / 2;
            for (int i = lane; i < half; i += 32) {
                float theta = (float)pos * powf(s.rope_base, -2.0f * (float)i / (float)s.n_rot);
                if (s.freq_factors) theta /= s.freq_factors[i];
                theta *= s.rope_scale;
                float sn, cs;
                sincosf(theta, &sn, &cs);
                const int a = s.neox ? i : 2 * i, c = s.neox ? i + half : 2 * i + 1;
                const float x0 = b[a], x1 = b[c];
                b[a] = x0 * cs - x1 * sn;
                b[c] = x0 * sn + x1 * cs;
            }
            __syncwarp();
        }
        if (kind == 0) {
            for (int d = lane; d < hd; d += 32) src[d] = b[d];
        } else {
            __half *dst = (kind == 1 ? kc : vc) + (((size_t)seq * nkv + hh) * s.n_ctx + pos) * hd;
            for (int d = lane; d < hd; d += 32) dst[d] = __float2half_rn(b[d]);
        }
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
    qkv_post_kernel<<<grid, 256, 0, cu->stream>>>(qkv, ld, *s, bq, bk, bv, q_norm, k_norm, pos, seq,
                                                   (__half *)k_cache, (__half *)v_cache);
    hl_cu_after_launch(cu, "qkv_post");
}

/* ------------------------------------------------------------ attention -- */

/* Split attention (flash-decoding): block (split, head group, token) walks
 * its share of the token's visible positions in sub-chunks of ATT_CH with
 * an online softmax, for HB query heads that share one KV head, and writes
 * a partial (max, sum, output); the combine kernel merges the splits. */
#define ATT_CH 64
#define ATT_THREADS 128
#define ATT_MAX_SPLIT 32
#define ATT_ITEMS 8 /* (head, dim pair) items per thread: HB * hd / 2 <= 8 * 128 */

template <int HB>
__global__ void __launch_bounds__(ATT_THREADS)
attn_split_kernel(const float *__restrict__ qkv, int ld, hl_cu_attn_shape s,
                  const int32_t *__restrict__ posv, const int32_t *__restrict__ seqv,
                  const __half *__restrict__ kc, const __half *__restrict__ vc, int chunk,
                  float *__restrict__ part) {
    __shared__ float q_sh[HB][MAX_HD];
    __shared__ float sc[HB][ATT_CH];
    __shared__ float m_sh[HB], l_sh[HB], a_sh[HB];
    const int sp = blockIdx.x, t = blockIdx.z, tid = threadIdx.x;
    const int hd = s.head_dim, n_split = gridDim.x, stride = hd + 2;
    const int group = s.n_head / s.n_head_kv;
    const int h0 = blockIdx.y * HB, kvh = h0 / group;
    const int pos = posv[t], seq = seqv[t];
    const int start = s.window > 0 && pos - s.window + 1 > 0 ? pos - s.window + 1 : 0;
    const int p_begin = start + sp * chunk;
    const int p_end = min(p_begin + chunk, pos + 1);
    /* part: per (token, head), n_split records of [max, sum, o[hd]] */
    float *pt = part + ((size_t)t * s.n_head + h0) * n_split * stride;
    if (p_begin >= p_end) {
        if (tid < HB) {
            float *p = pt + ((size_t)tid * n_split + sp) * stride;
            p[0] = -FLT_MAX;
            p[1] = 0.0f;
        }
        return;
    }
    const float *q = qkv + (size_t)t * ld + (size_t)h0 * hd;
    for (int i = tid; i < HB * hd; i += ATT_THREADS) q_sh[i / hd][i % hd] = q[i] * s.scale;
    if (tid < HB) {
        m_sh[tid] = -FLT_MAX;
        l_sh[tid] = 0.0f;
    }
    const size_t base = ((size_t)seq * s.n_head_kv + kvh) * s.n_ctx;
    const __half *kb = kc + base * hd, *vb = vc + base * hd;
    const int hd2 = hd / 2, n_items = HB * hd2;
    float2 acc[ATT_ITEMS];
#pragma unroll
    for (int k = 0; k < ATT_ITEMS; k++) acc[k] = make_float2(0.0f, 0.0f);
    const int wi = tid >> 5, lane = tid & 31;
    __syncthreads();
    for (int c0 = p_begin; c0 < p_end; c0 += ATT_CH) {
        const int n = min(ATT_CH, p_end - c0);
        for (int i = tid; i < n * HB; i += ATT_THREADS) {
            const int p = i % n, j = i / n;
            const uint4 *kr = (const uint4 *)(kb + (size_t)(c0 + p) * hd);
            const float *qj = q_sh[j];
            float a = 0.0f;
            for (int d8 = 0; d8 < hd / 8; d8++) {
                uint4 raw = kr[d8];
                const __half2 *h2 = (const __half2 *)&raw;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    float2 kv = __half22float2(h2[k]);
                    a += qj[8 * d8 + 2 * k] * kv.x + qj[8 * d8 + 2 * k + 1] * kv.y;
                }
            }
            sc[j][p] = a;
        }
        __syncthreads();
        for (int j = wi; j < HB; j += ATT_THREADS / 32) {
            float mx = -FLT_MAX;
            for (int p = lane; p < n; p += 32) mx = fmaxf(mx, sc[j][p]);
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_old = m_sh[j], m_new = fmaxf(m_old, mx);
            float sum = 0.0f;
            for (int p = lane; p < n; p += 32) {
                const float e = __expf(sc[j][p] - m_new);
                sc[j][p] = e;
                sum += e;
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            if (lane == 0) {
                const float a = __expf(m_old - m_new);
                a_sh[j] = a;
                l_sh[j] = l_sh[j] * a + sum;
                m_sh[j] = m_new;
            }
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < ATT_ITEMS; k++) {
            const int item = tid + k * ATT_THREADS;
            if (item < n_items) {
                const int j = item / hd2, d2 = item % hd2;
                const float a = a_sh[j];
                float2 o = make_float2(acc[k].x * a, acc[k].y * a);
                const __half2 *vp = (const __half2 *)(vb + (size_t)c0 * hd) + d2;
                for (int p = 0; p < n; p++) {
                    const float w = sc[j][p];
                    const float2 v = __half22float2(vp[(size_t)p * hd2]);
                    o.x += w * v.x;
                    o.y += w * v.y;
                }
                acc[k] = o;
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int k = 0; k < ATT_ITEMS; k++) {
        const int item = tid + k * ATT_THREADS;
        if (item < n_items) {
            const int j = item / hd2, d2 = item % hd2;
            float *p = pt + ((size_t)j * n_split + sp) * stride + 2;
            p[2 * d2] = acc[k].x;
            p[2 * d2 + 1] = acc[k].y;
        }
    }
    if (tid < HB) {
        float *p = pt + ((size_t)tid * n_split + sp) * stride;
        p[0] = m_sh[tid];
        p[1] = l_sh[tid];
    }
}

__global__ void attn_combine_kernel(const float *__restrict__ part, int n_split, int n_head, int hd,
                                    float *__restrict__ out) {
    const int h = blockIdx.x, t = blockIdx.y, stride = hd + 2;
    const float *pt = part + ((size_t)t * n_head + h) * n_split * stride;
    float M = -FLT_MAX;
    for (int s = 0; s < n_split; s++) M = fmaxf(M, pt[(size_t)s * stride]);
    float L = 0.0f;
    for (int s = 0; s < n_split; s++) {
        const float *p = pt + (size_t)s * stride;
        if (p[1] > 0.0f) L += p[1] * __expf(p[0] - M);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    float *o = out + ((size_t)t * n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int s = 0; s < n_split; s++) {
            const float *p = pt + (size_t)s * stride;
            if (p[1] > 0.0f) a += p[2 + d] * __expf(p[0] - M);
        }
        o[d] = a * inv;
    }
}

static int att_splits(int max_len) {
    int n = (max_len + 63) / 64;
    return n < 1 ? 1 : n > ATT_MAX_SPLIT ? ATT_MAX_SPLIT : n;
}

extern "C" size_t hl_cu_attn_scratch(int n_tok, int n_head, int head_dim) {
    return (size_t)n_tok * (size_t)n_head * ATT_MAX_SPLIT * (size_t)(head_dim + 2);
}

extern "C" void hl_cu_attention(hl_cu *cu, const float *qkv, int ld, int n_tok,
                                const hl_cu_attn_shape *s, const int32_t *pos, const int32_t *seq,
                                const void *k_cache, const void *v_cache, float *out, int max_len,
                                float *part) {
    if (n_tok <= 0) return;
    const int group = s->n_head / s->n_head_kv;
    if (s->head_dim > MAX_HD || s->head_dim % 8) {
        hl_cu_set_error(cu, cudaErrorInvalidValue, "attention: head dimension must be a multiple of 8 up to 256");
        return;
    }
    /* heads per block: the whole group when it fits the per-thread items */
    int hb = 1;
    const int cand[] = {8, 7, 6, 4, 3, 2};
    for (int c : cand)
        if (group % c == 0 && c * s->head_dim / 2 <= ATT_ITEMS * ATT_THREADS) {
            hb = c;
            break;
        }
    if (s->head_dim / 2 > ATT_ITEMS * ATT_THREADS) hb = 0;
    const int n_split = att_splits(max_len);
    const int chunk = (max_len + n_split - 1) / n_split;
    dim3 grid((unsigned)n_split, (unsigned)(s->n_head / (hb ? hb : 1)), (unsigned)n_tok);
    const __half *kc = (const __half *)k_cache, *vc = (const __half *)v_cache;
#define ATT(HB) attn_split_kernel<HB><<<grid, ATT_THREADS, 0, cu->stream>>>(qkv, ld, *s, pos, seq, kc, vc, chunk, part)
    switch (hb) {
    case 8: ATT(8); break;
    case 7: ATT(7); break;
    case 6: ATT(6); break;
    case 4: ATT(4); break;
    case 3: ATT(3); break;
    case 2: ATT(2); break;
    default: ATT(1); break;
    }
#undef ATT
    hl_cu_after_launch(cu, "attention");
    attn_combine_kernel<<<dim3((unsigned)s->n_head, (unsigned)n_tok), 128, 0, cu->stream>>>(
        part, n_split, s->n_head, s->head_dim, out);
    hl_cu_after_launch(cu, "attention combine");
}

/* ---------------------------------------------------------- elementwise -- */

__global__ void act_mul_kernel(const float *__restrict__ gu, int n, size_t total, bool gelu,
                               float *__restrict__ out) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    size_t t = i / (size_t)n, j = i % (size_t)n;
    const float g = gu[t * 2 * n + j], u = gu[t * 2 * n + n + j];
    float a;
    if (gelu) {
        const float k = 0.7978845608028654f;
        a = 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    } else {
        a = g / (1.0f + __expf(-g));
    }
    out[i] = a * u;
}

extern "C" void hl_cu_act_mul(hl_cu *cu, const float *gu, int n_tok, int n, bool gelu, float *out) {
    size_t total = (size_t)n_tok * (size_t)n;
    if (!total) return;
    act_mul_kernel<<<(unsigned)((total + 255) / 256), 256, 0, cu->stream>>>(gu, n, total, gelu, out);
    hl_cu_after_launch(cu, "act_mul");
}

__global__ void softcap_kernel(float *x, size_t n, float cap) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

extern "C" void hl_cu_softcap(hl_cu *cu, float *x, size_t n, float cap) {
    if (!n) return;
    softcap_kernel<<<(unsigned)((n + 255) / 256), 256, 0, cu->stream>>>(x, n, cap);
    hl_cu_after_launch(cu, "softcap");
}

/* Argmax as one 64-bit atomic max per warp: the key is the value's bits
 * made monotonic in the float order, then the complement of the index (so
 * the first index wins ties). NaN never wins. hl_cu_argmax_keys zeroes the
 * keys first; hl_cu_argmax_ids turns keys into indices. */
__device__ __forceinline__ unsigned long long argmax_key(float v, int i) {
    uint32_t b = __float_as_uint(v);
    b = (b & 0x80000000u) ? ~b : b | 0x80000000u;
    return (unsigned long long)b << 32 | (uint32_t)(0xffffffffu - (uint32_t)i);
}

__global__ void argmax_kernel(const float *__restrict__ x, int n, unsigned long long *__restrict__ keys) {
    const float *r = x + (size_t)blockIdx.y * n;
    unsigned long long best = 0;
    const int base = blockIdx.x * blockDim.x * 16;
#pragma unroll
    for (int k = 0; k < 16; k++) {
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
    if ((threadIdx.x & 31) == 0 && best) atomicMax(keys + blockIdx.y, best);
}

__global__ void argmax_ids_kernel(const unsigned long long *__restrict__ keys, int n_rows,
                                  int32_t *__restrict__ ids) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < n_rows) ids[r] = keys[r] ? (int32_t)(0xffffffffu - (uint32_t)(keys[r] & 0xffffffffu)) : 0;
}

extern "C" void hl_cu_argmax(hl_cu *cu, const float *x, int n_rows, int n, int32_t *ids) {
    if (n_rows <= 0) return;
    /* the keys live just past the ids: callers give ids room for 3 * n_rows int32 */
    unsigned long long *keys = (unsigned long long *)(((uintptr_t)(ids + n_rows) + 7) & ~(uintptr_t)7);
    hl_cu_memset(cu, keys, 0, sizeof(unsigned long long) * (size_t)n_rows);
    dim3 grid((unsigned)((n + 256 * 16 - 1) / (256 * 16)), (unsigned)n_rows);
    argmax_kernel<<<grid, 256, 0, cu->stream>>>(x, n, keys);
    argmax_ids_kernel<<<(n_rows + 127) / 128, 128, 0, cu->stream>>>(keys, n_rows, ids);
    hl_cu_after_launch(cu, "argmax");
}
