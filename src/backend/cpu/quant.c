/* quant.c - scalar reference kernels for every weight type; see quant.h.
 *
 * Owns nothing: every function is pure, thread-safe and allocation-free.
 * Per type there is one block decoder (the definition of the format), one
 * block encoder, and row functions built from them; a kernel table indexed
 * by hl_dtype dispatches. Decoders evaluate exactly the float expressions of
 * the reference (ggml / gguf-py), in the same order, so their output is
 * bit-identical to it; tests/unit/test_quant.c checks that against
 * tests/data/quant_golden.bin.
 *
 * The dot kernels decode up to 256 elements (one or more blocks) into a
 * stack buffer and multiply-accumulate them into LANES independent partial
 * sums; the decoders are written so that GCC/Clang vectorise them for
 * baseline x86-64 (SSE2): constant shift counts, no per-lane branches. No
 * sum is reassociated beyond the fixed lane split, so results do not depend
 * on vector width. Assumes a little-endian host, as the GGUF mmap does.
 *
 * Encoders: F16/BF16 round to nearest even. Q4_0..Q8_0 are the reference
 * quantizers (byte-identical to gguf-py / llama.cpp without imatrix). The
 * K-quants fit a scale (and min) per sub-block by a weighted least-squares
 * search, then quantize those scales to the layout's 4/6/8-bit codes with
 * an f16 super-scale, then re-round every element with the final scales.
 */
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- floats */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Branch-free (masks, no per-lane shift counts), so that loops over halves
 * vectorise even on baseline x86-64. Normal and Inf/NaN halves only rebias
 * the exponent (by 112, or 224 for exponent 31); a subnormal m * 2^-24 is
 * (1 + m/1024) * 2^-14 - 2^-14, which that subtraction gives exactly. */
static inline float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t em = h & 0x7fff;
    const uint32_t infnan = 0u - (uint32_t)(em >= 0x7c00), sub = 0u - (uint32_t)(em < 0x400);
    const uint32_t normal = (em << 13) + (112u << 23) + (infnan & (112u << 23));
    const uint32_t subnormal = f32_bits(bits_f32((em << 13) + (113u << 23)) - 0x1p-14f);
    return bits_f32(sign | (normal & ~sub) | (subnormal & sub));
}

/* The same for one scale per block: normal halves take a predictable
 * branch that skips the mask arithmetic. */
static inline float half_scale(uint16_t h) {
    const uint32_t em = h & 0x7fff;
    if (em - 0x400u < 0x7800u)
        return bits_f32((uint32_t)(h & 0x8000) << 16 | ((em << 13) + (112u << 23)));
    return half_to_float(h);
}

static inline uint16_t float_to_half(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff); /* quiet NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to Inf */
    if (ax >= 0x38800000u) {                     /* normal half: drop 13 bits, ties to even */
        const uint32_t r = ax + 0xfff + ((ax >> 13) & 1);
        return sign | (uint16_t)((r - (112u << 23)) >> 13);
    }
    /* Subnormal half (or zero): the result is round(|f| * 2^24). */
    const uint32_t e = ax >> 23;
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    const uint32_t m = (ax & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
}

static inline float bf16_to_float(uint16_t h) { return bits_f32((uint32_t)h << 16); }

static inline uint16_t float_to_bf16(float f) {
    const uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float hl_f16_to_f32(uint16_t h) { return half_to_float(h); }
uint16_t hl_f32_to_f16(float f) { return float_to_half(f); }
float hl_bf16_to_f32(uint16_t h) { return bf16_to_float(h); }
uint16_t hl_f32_to_bf16(float f) { return float_to_bf16(f); }

/* Integer nearest to v (ties to even), v clamped to [lo, hi] first. */
static inline int round_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo; /* also NaN */
    if (v > (float)hi) return hi;
    return (int)lrintf(v);
}

/* ------------------------------------------------------- dot accumulator */

#define LANES 16

/* acc[k] += sum over j of y[j*LANES + k] * x[j*LANES + k]; n % LANES == 0.
 * The lane loop is unrolled before vectorisation so that acc stays in
 * registers (otherwise GCC keeps it on the stack: 2x the instructions). */
static inline void lanes_madd(float *restrict acc, const float *restrict y,
                              const float *restrict x, int n) {
    for (int j = 0; j < n; j += LANES) {
#pragma GCC unroll 16
        for (int k = 0; k < LANES; k++) acc[k] += y[j + k] * x[j + k];
    }
}

static inline float lanes_sum(float *acc) {
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

/* --------------------------------------------------- 32-element formats */

static void dequant_q4_0(const hl_block_q4_0 *b, float *restrict y) {
    const float d = half_scale(b->d);
    for (int j = 0; j < HL_QK / 2; j++) {
        y[j] = d * (float)((b->qs[j] & 0xf) - 8);
        y[j + HL_QK / 2] = d * (float)((b->qs[j] >> 4) - 8);
    }
}

static void dequant_q4_1(const hl_block_q4_1 *b, float *restrict y) {
    const float d = half_scale(b->d), m = half_scale(b->m);
    for (int j = 0; j < HL_QK / 2; j++) {
        y[j] = d * (float)(b->qs[j] & 0xf) + m;
        y[j + HL_QK / 2] = d * (float)(b->qs[j] >> 4) + m;
    }
}

/* Q5_0/Q5_1: bit j of qh (4 bytes, little-endian) is the 5th bit of element
 * j. It is tested against a table of masks rather than shifted by a per-
 * element count: that vectorises on baseline x86-64 (measured 1.9x faster
 * than spreading the bits to bytes first). */
static const uint32_t BIT[HL_QK] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31,
};

static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dequant_q5_0(const hl_block_q5_0 *b, float *restrict y) {
    const float d = half_scale(b->d);
    const uint32_t qh = load_le32(b->qh);
    for (int j = 0; j < HL_QK / 2; j++) {
        const int lo = (b->qs[j] & 0xf) | ((qh & BIT[j]) ? 16 : 0);
        const int hi = (b->qs[j] >> 4) | ((qh & BIT[j + HL_QK / 2]) ? 16 : 0);
        y[j] = d * (float)(lo - 16);
        y[j + HL_QK / 2] = d * (float)(hi - 16);
    }
}

static void dequant_q5_1(const hl_block_q5_1 *b, float *restrict y) {
    const float d = half_scale(b->d), m = half_scale(b->m);
    const uint32_t qh = load_le32(b->qh);
    for (int j = 0; j < HL_QK / 2; j++) {
        const int lo = (b->qs[j] & 0xf) | ((qh & BIT[j]) ? 16 : 0);
        const int hi = (b->qs[j] >> 4) | ((qh & BIT[j + HL_QK / 2]) ? 16 : 0);
        y[j] = d * (float)lo + m;
        y[j + HL_QK / 2] = d * (float)hi + m;
    }
}

static void dequant_q8_0(const hl_block_q8_0 *b, float *restrict y) {
    const float d = half_scale(b->d);
    for (int j = 0; j < HL_QK; j++) y[j] = (float)b->qs[j] * d;
}

/* The element of x with the largest magnitude (the first, on ties). */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, v = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            v = x[j];
        }
    return v;
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    float a = x[0], b = x[0];
    for (int j = 1; j < n; j++) {
        a = x[j] < a ? x[j] : a;
        b = x[j] > b ? x[j] : b;
    }
    *lo = a;
    *hi = b;
}

/* The legacy reference encoders truncate v + 0.5 (v >= 0 by construction):
 * that is floor, clamped to [0, hi]. */
static inline int trunc_clamp(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    return v >= (float)hi ? hi : (int)v;
}

static void quant_q4_0(const float *restrict x, hl_block_q4_0 *b) {
    const float d = signed_absmax(x, HL_QK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = float_to_half(d);
    for (int j = 0; j < HL_QK / 2; j++) {
        const int lo = trunc_clamp(x[j] * id + 8.5f, 15);
        const int hi = trunc_clamp(x[j + HL_QK / 2] * id + 8.5f, 15);
        b->qs[j] = (uint8_t)(lo | hi << 4);
    }
}

static void quant_q4_1(const float *restrict x, hl_block_q4_1 *b) {
    float lo, hi;
    min_max(x, HL_QK, &lo, &hi);
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = float_to_half(d);
    b->m = float_to_half(lo);
    for (int j = 0; j < HL_QK / 2; j++) {
        const int q0 = trunc_clamp((x[j] - lo) * id + 0.5f, 15);
        const int q1 = trunc_clamp((x[j + HL_QK / 2] - lo) * id + 0.5f, 15);
        b->qs[j] = (uint8_t)(q0 | q1 << 4);
    }
}

/* Packs 32 five-bit codes into qs (low nibbles) and qh (5th bits). */
static void pack_q5(const int *q, uint8_t *qs, uint8_t *qh) {
    uint32_t h = 0;
    for (int j = 0; j < HL_QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0xf) | (q[j + HL_QK / 2] & 0xf) << 4);
        h |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + HL_QK / 2] >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

static void quant_q5_0(const float *restrict x, hl_block_q5_0 *b) {
    const float d = signed_absmax(x, HL_QK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[HL_QK];
    for (int j = 0; j < HL_QK; j++) q[j] = trunc_clamp(x[j] * id + 16.5f, 31);
    b->d = float_to_half(d);
    pack_q5(q, b->qs, b->qh);
}

static void quant_q5_1(const float *restrict x, hl_block_q5_1 *b) {
    float lo, hi;
    min_max(x, HL_QK, &lo, &hi);
    const float d = (hi - lo) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[HL_QK];
    for (int j = 0; j < HL_QK; j++) q[j] = trunc_clamp((x[j] - lo) * id + 0.5f, 31);
    b->d = float_to_half(d);
    b->m = float_to_half(lo);
    pack_q5(q, b->qs, b->qh);
}

static void quant_q8_0(const float *restrict x, hl_block_q8_0 *b) {
    float amax = 0.0f;
    for (int j = 0; j < HL_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = float_to_half(d);
    for (int j = 0; j < HL_QK; j++) {
        const float v = x[j] * id; /* |v| <= 127 up to rounding */
        b->qs[j] = (int8_t)(v >= 127.0f ? 127 : v <= -127.0f ? -127 : (int)roundf(v));
    }
}

/* ------------------------------------------------------------- K-quants */

/* Q3_K: 16 six-bit scales; low nibbles in bytes 0..7 (j and j+8 share a
 * byte), top two bits in bytes 8..11 (j, j+4, j+8, j+12 share a byte). */
static inline int q3k_scale(const uint8_t *s, int j) {
    const int lo = (s[j % 8] >> (4 * (j / 8))) & 0xf;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return lo | hi << 4;
}

/* Q4_K/Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes. Entries 0..3
 * sit whole in bytes 0..3 (scale) and 4..7 (min); entries 4..7 keep their
 * low nibbles in bytes 8..11 and their top two bits in the spare top bits
 * of bytes 0..7. */
static inline void k4_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q2_K/Q3_K: element e = 128c + 32g + l (g < 4, l < 32) has its low two
 * bits in qs[32c + l] at bit 2g and sits in sub-block e/16 = 8c + 2g + l/16.
 * Q3_K's 3rd bit is bit 4c + g of hmask[l]; a clear bit means 4 lower. The
 * loops run over (c, sub-block half h, l < 16) and write the four g at
 * once, so every shift count is a constant. */
static void dequant_q2_k(const hl_block_q2_k *b, float *restrict y) {
    const float d = half_scale(b->d), dmin = half_scale(b->dmin);
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b->qs + 32 * c + 16 * h, *sc = b->scales + 8 * c + h;
            float *yc = y + 128 * c + 16 * h;
            float dl[4], ml[4];
            for (int g = 0; g < 4; g++) {
                dl[g] = d * (float)(sc[2 * g] & 0xf);
                ml[g] = dmin * (float)(sc[2 * g] >> 4);
            }
            for (int l = 0; l < 16; l++) {
                yc[l] = dl[0] * (float)(q[l] & 3) - ml[0];
                yc[l + 32] = dl[1] * (float)(q[l] >> 2 & 3) - ml[1];
                yc[l + 64] = dl[2] * (float)(q[l] >> 4 & 3) - ml[2];
                yc[l + 96] = dl[3] * (float)(q[l] >> 6) - ml[3];
            }
        }
}

static void dequant_q3_k(const hl_block_q3_k *b, float *restrict y) {
    const float d = half_scale(b->d);
    uint8_t hb[32]; /* hmask, shifted so that bits 0..3 are the current c's */
    memcpy(hb, b->hmask, sizeof hb);
    for (int c = 0; c < 2; c++) {
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b->qs + 32 * c + 16 * h, *hm = hb + 16 * h;
            float *yc = y + 128 * c + 16 * h;
            float dl[4];
            for (int g = 0; g < 4; g++)
                dl[g] = d * (float)(q3k_scale(b->scales, 8 * c + 2 * g + h) - 32);
            for (int l = 0; l < 16; l++) {
                yc[l] = dl[0] * (float)((q[l] & 3) - ((hm[l] & 1) ? 0 : 4));
                yc[l + 32] = dl[1] * (float)((q[l] >> 2 & 3) - ((hm[l] & 2) ? 0 : 4));
                yc[l + 64] = dl[2] * (float)((q[l] >> 4 & 3) - ((hm[l] & 4) ? 0 : 4));
                yc[l + 96] = dl[3] * (float)((q[l] >> 6) - ((hm[l] & 8) ? 0 : 4));
            }
        }
        for (int l = 0; l < 32; l++) hb[l] >>= 4;
    }
}

/* Q4_K/Q5_K: sub-blocks 2c and 2c+1 (32 elements each) take the low and
 * high nibbles of qs[32c ..]; Q5_K's 5th bit of sub-block s is bit s of
 * qh[l]. */
static void dequant_q4_k(const hl_block_q4_k *b, float *restrict y) {
    const float d = half_scale(b->d), dmin = half_scale(b->dmin);
    for (int c = 0; c < 4; c++) {
        int sc0, mn0, sc1, mn1;
        k4_scale_min(b->scales, 2 * c, &sc0, &mn0);
        k4_scale_min(b->scales, 2 * c + 1, &sc1, &mn1);
        const float d0 = d * (float)sc0, m0 = dmin * (float)mn0;
        const float d1 = d * (float)sc1, m1 = dmin * (float)mn1;
        const uint8_t *q = b->qs + 32 * c;
        float *yc = y + 64 * c;
        for (int l = 0; l < 32; l++) {
            yc[l] = d0 * (float)(q[l] & 0xf) - m0;
            yc[l + 32] = d1 * (float)(q[l] >> 4) - m1;
        }
    }
}

static void dequant_q5_k(const hl_block_q5_k *b, float *restrict y) {
    const float d = half_scale(b->d), dmin = half_scale(b->dmin);
    uint8_t hb[32];
    memcpy(hb, b->qh, sizeof hb);
    for (int c = 0; c < 4; c++) {
        int sc0, mn0, sc1, mn1;
        k4_scale_min(b->scales, 2 * c, &sc0, &mn0);
        k4_scale_min(b->scales, 2 * c + 1, &sc1, &mn1);
        const float d0 = d * (float)sc0, m0 = dmin * (float)mn0;
        const float d1 = d * (float)sc1, m1 = dmin * (float)mn1;
        const uint8_t *q = b->qs + 32 * c;
        float *yc = y + 64 * c;
        for (int l = 0; l < 32; l++) {
            yc[l] = d0 * (float)((q[l] & 0xf) | (hb[l] & 1) << 4) - m0;
            yc[l + 32] = d1 * (float)((q[l] >> 4) | (hb[l] & 2) << 3) - m1;
            hb[l] >>= 2; /* next pair of sub-blocks */
        }
    }
}

/* Q6_K: element e = 128c + 32g + l (g < 4, l < 32): low nibble from
 * ql[64c + 32(g%2) + l] at bit 4(g/2), top two bits from qh[32c + l] at
 * bit 2g. Loops are laid out so that every shift count is a constant. */
static void dequant_q6_k(const hl_block_q6_k *b, float *restrict y) {
    const float d = half_scale(b->d);
    for (int c = 0; c < 2; c++)
        for (int h = 0; h < 2; h++) { /* sub-block halves of 16 */
            const uint8_t *ql = b->ql + 64 * c + 16 * h, *qh = b->qh + 32 * c + 16 * h;
            const int8_t *sc = b->scales + 8 * c + h;
            float *yc = y + 128 * c + 16 * h;
            const float d0 = d * (float)sc[0], d1 = d * (float)sc[2];
            const float d2 = d * (float)sc[4], d3 = d * (float)sc[6];
            for (int l = 0; l < 16; l++) {
                const int q0 = (ql[l] & 0xf) | (qh[l] & 3) << 4;
                const int q1 = (ql[l + 32] & 0xf) | (qh[l] >> 2 & 3) << 4;
                const int q2 = (ql[l] >> 4) | (qh[l] >> 4 & 3) << 4;
                const int q3 = (ql[l + 32] >> 4) | (qh[l] >> 6) << 4;
                yc[l] = d0 * (float)(q0 - 32);
                yc[l + 32] = d1 * (float)(q1 - 32);
                yc[l + 64] = d2 * (float)(q2 - 32);
                yc[l + 96] = d3 * (float)(q3 - 32);
            }
        }
}

static void dequant_q8_k(const hl_block_q8_k *b, float *restrict y) {
    for (int j = 0; j < HL_QK_K; j++) y[j] = b->d * (float)b->qs[j];
}

/* Fits x[i] ~ s*q[i] - m, q integer in [0, nmax], s > 0, m >= 0, minimising
 * sum w[i]*err[i]^2. Sweeps the grid step around the min-max one; for each
 * grid the codes are fixed and (s, m) solved by weighted least squares; the
 * best pair is then polished by re-rounding and solving again. All-equal
 * input gives s = 0, m = -min(x, 0). */
static void fit_scale_min(const float *x, const float *w, int n, int nmax, float *s_out,
                          float *m_out) {
    float lo, hi;
    min_max(x, n, &lo, &hi);
    if (lo > 0.0f) lo = 0.0f;
    *s_out = 0.0f;
    *m_out = -lo;
    if (!(hi > lo)) return;

    float sw = 0.0f, swx = 0.0f, swxx = 0.0f;
    for (int i = 0; i < n; i++) {
        sw += w[i];
        swx += w[i] * x[i];
        swxx += w[i] * x[i] * x[i];
    }
    float best_err = INFINITY, best_s = (hi - lo) / (float)nmax, best_off = lo;
    for (int k = -10; k <= 12; k++) {
        const float step = (k <= 10) ? (hi - lo) / ((float)nmax + 0.1f * (float)k)
                                     : best_s; /* k > 10: polish the best so far */
        const float off0 = (k <= 10) ? lo : best_off;
        if (!(step > 0.0f)) continue;
        const float istep = 1.0f / step;
        float swq = 0.0f, swqq = 0.0f, swqx = 0.0f;
        for (int i = 0; i < n; i++) {
            const float q = (float)round_clamp((x[i] - off0) * istep, 0, nmax);
            swq += w[i] * q;
            swqq += w[i] * q * q;
            swqx += w[i] * q * x[i];
        }
        const float det = sw * swqq - swq * swq;
        if (!(det > 0.0f)) continue;
        float s = (sw * swqx - swq * swx) / det;
        float off = (swqq * swx - swq * swqx) / det;
        if (off > 0.0f) { /* the format's offset is never positive */
            off = 0.0f;
            s = swqx / swqq;
        }
        if (!(s > 0.0f)) continue;
        /* Weighted error of s*q + off, expanded so no second pass is needed. */
        const float err = swxx + s * s * swqq + off * off * sw + 2.0f * s * off * swq -
                          2.0f * s * swqx - 2.0f * off * swx;
        if (err < best_err) {
            best_err = err;
            best_s = s;
            best_off = off;
        }
    }
    if (best_err < INFINITY) {
        *s_out = best_s;
        *m_out = -best_off;
    } else {
        *s_out = (hi - lo) / (float)nmax;
    }
}

/* Fits x[i] ~ s*q[i], q integer in [-nneg, nneg-1] (s may be negative, so
 * the element of largest magnitude can use the longer negative side),
 * minimising sum w[i]*err[i]^2 over a sweep of steps, then polished. */
static float fit_scale_sym(const float *x, const float *w, int n, int nneg) {
    const float vmax = signed_absmax(x, n);
    if (vmax == 0.0f) return 0.0f;
    float best_gain = 0.0f, best_s = -vmax / (float)nneg;
    for (int k = -9; k <= 12; k++) {
        const float is = (k <= 9) ? -((float)nneg + 0.1f * (float)k) / vmax : 1.0f / best_s;
        float swqx = 0.0f, swqq = 0.0f;
        for (int i = 0; i < n; i++) {
            const float q = (float)round_clamp(is * x[i], -nneg, nneg - 1);
            swqx += w[i] * q * x[i];
            swqq += w[i] * q * q;
        }
        /* For fixed codes the best s is swqx/swqq and the error drops by
         * swqx^2/swqq: maximise that. */
        if (swqq > 0.0f && swqx * swqx > best_gain * swqq) {
            best_gain = swqx * swqx / swqq;
            best_s = swqx / swqq;
        }
    }
    return best_s;
}

/* Weights for the sub-block fits: every element counts, larger ones more. */
static void fit_weights(const float *x, int n, float *w) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const float rms = sqrtf(ss / (float)n);
    for (int i = 0; i < n; i++) w[i] = rms + fabsf(x[i]);
}

/* Quantizes per-sub-block scales (all >= 0) to codes in [0, qmax] times a
 * super-scale; returns the super-scale (0 when all scales are 0). */
static float quant_scales_unsigned(const float *s, int n, int qmax, uint8_t *code) {
    float smax = 0.0f;
    for (int j = 0; j < n; j++) smax = fmaxf(smax, s[j]);
    const float d = smax / (float)qmax;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < n; j++) code[j] = (uint8_t)round_clamp(s[j] * id, 0, qmax);
    return d;
}

/* Codes in [0, nmax] for x ~ ds*q - dm; all zero when ds == 0. */
static void requant_affine(const float *x, int n, float ds, float dm, int nmax, uint8_t *q) {
    const float ids = ds != 0.0f ? 1.0f / ds : 0.0f;
    for (int i = 0; i < n; i++) q[i] = (uint8_t)round_clamp((x[i] + dm) * ids, 0, nmax);
}

static void quant_q2_k(const float *restrict x, hl_block_q2_k *b) {
    float w[16], s[16], m[16];
    uint8_t ls[16], lm[16], q[HL_QK_K];
    for (int j = 0; j < 16; j++) {
        fit_weights(x + 16 * j, 16, w);
        fit_scale_min(x + 16 * j, w, 16, 3, &s[j], &m[j]);
    }
    b->d = float_to_half(quant_scales_unsigned(s, 16, 15, ls));
    b->dmin = float_to_half(quant_scales_unsigned(m, 16, 15, lm));
    const float d = half_scale(b->d), dmin = half_scale(b->dmin);
    for (int j = 0; j < 16; j++) {
        b->scales[j] = (uint8_t)(ls[j] | lm[j] << 4);
        requant_affine(x + 16 * j, 16, d * (float)ls[j], dmin * (float)lm[j], 3, q + 16 * j);
    }
    memset(b->qs, 0, sizeof b->qs);
    for (int e = 0; e < HL_QK_K; e++)
        b->qs[32 * (e / 128) + e % 32] |= (uint8_t)(q[e] << (2 * ((e % 128) / 32)));
}

/* Quantizes signed sub-block scales to codes in [-half, half-1] times a
 * super-scale d (the largest-magnitude scale maps to -half); returns d. */
static float quant_scales_signed(const float *s, int n, int half, int *code) {
    const float vmax = signed_absmax(s, n);
    if (vmax == 0.0f) {
        for (int j = 0; j < n; j++) code[j] = 0;
        return 0.0f;
    }
    const float is = -(float)half / vmax;
    for (int j = 0; j < n; j++) code[j] = round_clamp(is * s[j], -half, half - 1);
    return 1.0f / is;
}

static void quant_q3_k(const float *restrict x, hl_block_q3_k *b) {
    float w[16], s[16];
    int code[16];
    uint8_t q[HL_QK_K];
    for (int j = 0; j < 16; j++) {
        for (int i = 0; i < 16; i++) w[i] = x[16 * j + i] * x[16 * j + i];
        s[j] = fit_scale_sym(x + 16 * j, w, 16, 4);
    }
    b->d = float_to_half(quant_scales_signed(s, 16, 32, code));
    const float d = half_scale(b->d);
    memset(b->scales, 0, sizeof b->scales);
    for (int j = 0; j < 16; j++) {
        const int c = code[j] + 32; /* 6 bits */
        b->scales[j % 8] |= (uint8_t)((c & 0xf) << (4 * (j / 8)));
        b->scales[8 + j % 4] |= (uint8_t)((c >> 4) << (2 * (j / 4)));
        const float ds = d * (float)code[j];
        const float ids = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = (uint8_t)(round_clamp(x[16 * j + i] * ids, -4, 3) + 4);
    }
    memset(b->qs, 0, sizeof b->qs);
    memset(b->hmask, 0, sizeof b->hmask);
    for (int e = 0; e < HL_QK_K; e++) {
        b->qs[32 * (e / 128) + e % 32] |= (uint8_t)((q[e] & 3) << (2 * ((e % 128) / 32)));
        b->hmask[e % 32] |= (uint8_t)((q[e] >> 2) << (e / 32));
    }
}

/* Shared by Q4_K and Q5_K: fits the 8 sub-blocks and writes d, dmin and the
 * packed scales; leaves codes in [0, nmax] in q. */
static void quant_k4_common(const float *restrict x, int nmax, uint16_t *dh, uint16_t *dminh,
                            uint8_t *scales, uint8_t *q) {
    float w[32], s[8], m[8];
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        fit_weights(x + 32 * j, 32, w);
        fit_scale_min(x + 32 * j, w, 32, nmax, &s[j], &m[j]);
    }
    *dh = float_to_half(quant_scales_unsigned(s, 8, 63, ls));
    *dminh = float_to_half(quant_scales_unsigned(m, 8, 63, lm));
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((ls[j + 4] & 0xf) | (lm[j + 4] & 0xf) << 4);
    }
    const float d = half_scale(*dh), dmin = half_scale(*dminh);
    for (int j = 0; j < 8; j++)
        requant_affine(x + 32 * j, 32, d * (float)ls[j], dmin * (float)lm[j], nmax, q + 32 * j);
}

static void quant_q4_k(const float *restrict x, hl_block_q4_k *b) {
    uint8_t q[HL_QK_K];
    quant_k4_common(x, 15, &b->d, &b->dmin, b->scales, q);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++)
            b->qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
}

static void quant_q5_k(const float *restrict x, hl_block_q5_k *b) {
    uint8_t q[HL_QK_K];
    quant_k4_common(x, 31, &b->d, &b->dmin, b->scales, q);
    memset(b->qh, 0, sizeof b->qh);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            const int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((lo & 0xf) | (hi & 0xf) << 4);
            b->qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
        }
}

static void quant_q6_k(const float *restrict x, hl_block_q6_k *b) {
    float w[16], s[16];
    int code[16];
    uint8_t q[HL_QK_K];
    for (int j = 0; j < 16; j++) {
        for (int i = 0; i < 16; i++) w[i] = x[16 * j + i] * x[16 * j + i];
        s[j] = fit_scale_sym(x + 16 * j, w, 16, 32);
    }
    b->d = float_to_half(quant_scales_signed(s, 16, 128, code));
    const float d = half_scale(b->d);
    for (int j = 0; j < 16; j++) {
        b->scales[j] = (int8_t)code[j];
        const float ds = d * (float)code[j];
        const float ids = ds != 0.0f ? 1.0f / ds : 0.0f;
        for (int i = 0; i < 16; i++)
            q[16 * j + i] = (uint8_t)(round_clamp(x[16 * j + i] * ids, -32, 31) + 32);
    }
    memset(b->qh, 0, sizeof b->qh);
    for (int e = 0; e < HL_QK_K; e++) {
        const int c = e / 128, r = e % 128;
        uint8_t *ql = &b->ql[64 * c + r % 64];
        if (r < 64)
            *ql = (uint8_t)(q[e] & 0xf);
        else
            *ql |= (uint8_t)((q[e] & 0xf) << 4);
        b->qh[32 * c + r % 32] |= (uint8_t)((q[e] >> 4) << (2 * (r / 32)));
    }
}

static void quant_q8_k(const float *restrict x, hl_block_q8_k *b) {
    const float vmax = signed_absmax(x, HL_QK_K);
    if (vmax == 0.0f) {
        memset(b, 0, sizeof *b);
        return;
    }
    const float is = -127.0f / vmax;
    b->d = 1.0f / is;
    for (int j = 0; j < HL_QK_K; j++) b->qs[j] = (int8_t)round_clamp(is * x[j], -127, 127);
    for (int g = 0; g < HL_QK_K / 16; g++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) sum += b->qs[16 * g + l];
        b->bsums[g] = (int16_t)sum;
    }
}

/* ------------------------------------------------------------ row kernels */

/* Row functions of a block type: loops over whole blocks. The dot decodes
 * up to 256 elements (one or several blocks) into y, then multiply-
 * accumulates them into the lanes. */
#define BLOCK_ROW_KERNELS(name, block_t, qk)                                                     \
    static void dequant_row_##name(const void *src, float *dst, int64_t n) {                     \
        const block_t *b = src;                                                                  \
        for (int64_t i = 0; i < n / (qk); i++) dequant_##name(&b[i], dst + i * (qk));             \
    }                                                                                            \
    static void quant_row_##name(const float *src, void *dst, int64_t n) {                       \
        block_t *b = dst;                                                                        \
        for (int64_t i = 0; i < n / (qk); i++) quant_##name(src + i * (qk), &b[i]);              \
    }                                                                                            \
    static float dot_row_##name(const void *row, const float *x, int64_t n) {                    \
        const block_t *b = row;                                                                  \
        const int64_t nb = n / (qk), per = HL_QK_K / (qk);                                       \
        float acc[LANES] = {0}, y[HL_QK_K];                                                      \
        for (int64_t i = 0; i < nb; i += per) {                                                  \
            const int m = (int)(nb - i < per ? nb - i : per);                                    \
            for (int j = 0; j < m; j++) dequant_##name(&b[i + j], y + j * (qk));                  \
            lanes_madd(acc, y, x + i * (qk), m * (qk));                                          \
        }                                                                                        \
        return lanes_sum(acc);                                                                   \
    }

BLOCK_ROW_KERNELS(q4_0, hl_block_q4_0, HL_QK)
BLOCK_ROW_KERNELS(q4_1, hl_block_q4_1, HL_QK)
BLOCK_ROW_KERNELS(q5_0, hl_block_q5_0, HL_QK)
BLOCK_ROW_KERNELS(q5_1, hl_block_q5_1, HL_QK)
BLOCK_ROW_KERNELS(q8_0, hl_block_q8_0, HL_QK)
BLOCK_ROW_KERNELS(q2_k, hl_block_q2_k, HL_QK_K)
BLOCK_ROW_KERNELS(q3_k, hl_block_q3_k, HL_QK_K)
BLOCK_ROW_KERNELS(q4_k, hl_block_q4_k, HL_QK_K)
BLOCK_ROW_KERNELS(q5_k, hl_block_q5_k, HL_QK_K)
BLOCK_ROW_KERNELS(q6_k, hl_block_q6_k, HL_QK_K)
BLOCK_ROW_KERNELS(q8_k, hl_block_q8_k, HL_QK_K)

/* Plain types: any n. The dot works on chunks of LANES with a scalar tail. */
static void dequant_row_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quant_row_f32(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static float dot_tail(const float *y, const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += y[i] * x[i];
    return s;
}

static float dot_row_f32(const void *row, const float *x, int64_t n) {
    const float *w = row;
    float acc[LANES] = {0};
    const int64_t nv = n - n % LANES;
    for (int64_t i = 0; i < nv; i += LANES) lanes_madd(acc, w + i, x + i, LANES);
    return lanes_sum(acc) + dot_tail(w + nv, x + nv, n - nv);
}

#define HALF_ROW_KERNELS(name, to_float, from_float)                                             \
    static void dequant_row_##name(const void *src, float *dst, int64_t n) {                     \
        const uint16_t *h = src;                                                                 \
        for (int64_t i = 0; i < n; i++) dst[i] = to_float(h[i]);                                 \
    }                                                                                            \
    static void quant_row_##name(const float *src, void *dst, int64_t n) {                       \
        uint16_t *h = dst;                                                                       \
        for (int64_t i = 0; i < n; i++) h[i] = from_float(src[i]);                               \
    }                                                                                            \
    static float dot_row_##name(const void *row, const float *x, int64_t n) {                    \
        const uint16_t *h = row;                                                                 \
        float acc[LANES] = {0}, y[LANES];                                                        \
        const int64_t nv = n - n % LANES;                                                        \
        for (int64_t i = 0; i < nv; i += LANES) {                                                \
            for (int k = 0; k < LANES; k++) y[k] = to_float(h[i + k]);                           \
            lanes_madd(acc, y, x + i, LANES);                                                    \
        }                                                                                        \
        float tail = 0.0f;                                                                       \
        for (int64_t i = nv; i < n; i++) tail += to_float(h[i]) * x[i];                          \
        return lanes_sum(acc) + tail;                                                            \
    }

HALF_ROW_KERNELS(f16, half_to_float, float_to_half)
HALF_ROW_KERNELS(bf16, bf16_to_float, float_to_bf16)

/* ----------------------------------------------------------- kernel table */

typedef struct quant_kernels {
    void (*dequant)(const void *src, float *dst, int64_t n);
    void (*quant)(const float *src, void *dst, int64_t n);
    float (*dot)(const void *row, const float *x, int64_t n);
} quant_kernels;

#define KERNELS(name) {dequant_row_##name, quant_row_##name, dot_row_##name}

static const quant_kernels KERNELS_BY_TYPE[HL_DTYPE_COUNT] = {
    [HL_F32] = KERNELS(f32),   [HL_F16] = KERNELS(f16),   [HL_BF16] = KERNELS(bf16),
    [HL_Q4_0] = KERNELS(q4_0), [HL_Q4_1] = KERNELS(q4_1), [HL_Q5_0] = KERNELS(q5_0),
    [HL_Q5_1] = KERNELS(q5_1), [HL_Q8_0] = KERNELS(q8_0), [HL_Q2_K] = KERNELS(q2_k),
    [HL_Q3_K] = KERNELS(q3_k), [HL_Q4_K] = KERNELS(q4_k), [HL_Q5_K] = KERNELS(q5_k),
    [HL_Q6_K] = KERNELS(q6_k), [HL_Q8_K] = KERNELS(q8_k),
};

/* Kernels of t; a type without kernels or a partial block is a caller bug
 * (model load checks both), so it aborts loudly rather than misread memory. */
static const quant_kernels *kernels_for(hl_dtype t, int64_t n) {
    const hl_dtype_traits *tr = hl_dtype_get((uint32_t)t);
    const quant_kernels *k = ((unsigned)t < HL_DTYPE_COUNT) ? &KERNELS_BY_TYPE[t] : NULL;
    if (!tr || !k || !k->dot || n < 0 || n % tr->block_elems != 0) {
        fprintf(stderr, "quant: no kernel for type %s with n=%lld (bug: checked at load)\n",
                hl_dtype_name((uint32_t)t), (long long)n);
        abort();
    }
    return k;
}

void hl_dequantize_row(hl_dtype t, const void *src, float *dst, int64_t n) {
    kernels_for(t, n)->dequant(src, dst, n);
}

void hl_quantize_row(hl_dtype t, const float *src, void *dst, int64_t n) {
    kernels_for(t, n)->quant(src, dst, n);
}

float hl_dot_row_f32(hl_dtype t, const void *row, const float *x, int64_t n) {
    return kernels_for(t, n)->dot(row, x, n);
}
