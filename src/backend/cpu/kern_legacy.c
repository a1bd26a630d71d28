/* kern_legacy.c - scalar reference kernels of the 32-element block types
 * Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 and their activation quantizers Q8_0 / Q8_1;
 * see kernels.h for the table contract.
 *
 * Math. Weight block b holds codes q (4, 5 or 8 bits) and an f16 scale dw
 * (and, for the _1 types, an f16 minimum m); activation block b holds int8
 * codes a and an f16 scale da. Per block:
 *   Q4_0 / Q5_0 / Q8_0:  x = dw * c, c = q - 8 | q - 16 | q (signed)
 *                        dot += (float)sum(c * a) * (dw * da)
 *   Q4_1 / Q5_1:         x = dw * q + m
 *                        dot += (dw * da) * sum(q * a) + m * s
 * where s is the activation block's f16 field s = f16(d * sum(a)), d the
 * unrounded scale: the min term is llama.cpp's, including the rounding
 * of s (up to 2^-11 of it), not the dot of the decoded rows (m * da *
 * sum(a)); every path uses s. The integer sums are exact; only the float
 * sums across blocks round.
 *
 * Quantizers follow llama.cpp's reference: d = amax / 127 stored as f16,
 * a = roundf(x * (1 / d)) (ties away from zero), Q8_1's s = f16(d *
 * sum(a)) with the float product of the unrounded d and the exact sum.
 *
 * Pure functions over caller memory: thread-safe, no allocation.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

/* One weight block decoded to signed codes c[j] (element j) with its scale
 * and minimum (0 for the types without one). */
typedef struct wblock {
    int8_t c[HL_QK];
    float d, m;
} wblock;

typedef void (*decode_fn)(const void *blk, wblock *out);

/* Bit j of a little-endian u32, as a mask (a table rather than a shift by
 * j, so the loop below vectorises on baseline x86-64). */
static const uint32_t BIT[HL_QK] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31,
};

/* Low nibbles are elements 0..15, high nibbles 16..31; bit j of qh (when
 * given) adds 16 to element j; then off is subtracted. */
static void nibbles_to_codes(const uint8_t *qs, const uint8_t *qh, int off, int8_t *c) {
    for (int j = 0; j < HL_QK / 2; j++) {
        c[j] = (int8_t)((qs[j] & 0xf) - off);
        c[j + HL_QK / 2] = (int8_t)((qs[j] >> 4) - off);
    }
    if (!qh) return;
    const uint32_t h =
        (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    for (int j = 0; j < HL_QK; j++) c[j] = (int8_t)(c[j] + ((h & BIT[j]) ? 16 : 0));
}

static void decode_q4_0(const void *blk, wblock *o) {
    const hl_block_q4_0 *b = blk;
    nibbles_to_codes(b->qs, NULL, 8, o->c);
    o->d = hl_f16_to_f32(b->d);
    o->m = 0.0f;
}

static void decode_q4_1(const void *blk, wblock *o) {
    const hl_block_q4_1 *b = blk;
    nibbles_to_codes(b->qs, NULL, 0, o->c);
    o->d = hl_f16_to_f32(b->d);
    o->m = hl_f16_to_f32(b->m);
}

static void decode_q5_0(const void *blk, wblock *o) {
    const hl_block_q5_0 *b = blk;
    nibbles_to_codes(b->qs, b->qh, 16, o->c);
    o->d = hl_f16_to_f32(b->d);
    o->m = 0.0f;
}

static void decode_q5_1(const void *blk, wblock *o) {
    const hl_block_q5_1 *b = blk;
    nibbles_to_codes(b->qs, b->qh, 0, o->c);
    o->d = hl_f16_to_f32(b->d);
    o->m = hl_f16_to_f32(b->m);
}

static void decode_q8_0(const void *blk, wblock *o) {
    const hl_block_q8_0 *b = blk;
    memcpy(o->c, b->qs, HL_QK);
    o->d = hl_f16_to_f32(b->d);
    o->m = 0.0f;
}

/* The shared loop. Activation blocks are Q8_0 (act_bytes 34, codes at 2) or
 * Q8_1 (36, s at 2, codes at 4); both start with the f16 scale. with_min
 * selects the second formula of the header. */
static inline void dot_rows(int n, const void *w, size_t w_bytes, decode_fn decode, int with_min,
                            const void *a, size_t a_stride, int n_a, float *out,
                            size_t out_stride) {
    const size_t act_bytes = with_min ? sizeof(hl_block_q8_1) : sizeof(hl_block_q8_0);
    const size_t act_codes = with_min ? offsetof(hl_block_q8_1, qs) : offsetof(hl_block_q8_0, qs);
    float sum[HL_DOT_MAX_A] = {0};
    for (int ib = 0; ib < n / HL_QK; ib++) {
        wblock wb;
        decode((const char *)w + ib * w_bytes, &wb);
        for (int k = 0; k < n_a; k++) {
            const uint8_t *ab = (const uint8_t *)a + k * a_stride + ib * act_bytes;
            const int8_t *qa = (const int8_t *)(ab + act_codes);
            uint16_t dh;
            memcpy(&dh, ab, sizeof dh);
            const float da = hl_f16_to_f32(dh);
            int sumi = 0;
            for (int j = 0; j < HL_QK; j++) sumi += wb.c[j] * qa[j];
            if (with_min) {
                uint16_t sh;
                memcpy(&sh, ab + offsetof(hl_block_q8_1, s), sizeof sh);
                sum[k] += (wb.d * da) * (float)sumi + wb.m * hl_f16_to_f32(sh);
            } else {
                sum[k] += (float)sumi * (wb.d * da);
            }
        }
    }
    for (int k = 0; k < n_a; k++) out[k * out_stride] = sum[k];
}

#define DEFINE_DOT(type, block, with_min)                                                          \
    static void dot_##type(int n, const void *w, const void *a, size_t a_stride, int n_a,          \
                           float *out, size_t out_stride) {                                        \
        dot_rows(n, w, sizeof(block), decode_##type, with_min, a, a_stride, n_a, out, out_stride); \
    }

DEFINE_DOT(q4_0, hl_block_q4_0, 0)
DEFINE_DOT(q4_1, hl_block_q4_1, 1)
DEFINE_DOT(q5_0, hl_block_q5_0, 0)
DEFINE_DOT(q5_1, hl_block_q5_1, 1)
DEFINE_DOT(q8_0, hl_block_q8_0, 0)

/* Reference Q8 rounding of one block: the scale d and the codes. */
static float quant_block(const float *x, int8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < HL_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < HL_QK; j++) q[j] = (int8_t)roundf(x[j] * id);
    return d;
}

static void quant_q8_0(const float *x, void *dst, int n) {
    hl_block_q8_0 *b = dst;
    for (int i = 0; i < n / HL_QK; i++) b[i].d = hl_f32_to_f16(quant_block(x + i * HL_QK, b[i].qs));
}

static void quant_q8_1(const float *x, void *dst, int n) {
    hl_block_q8_1 *b = dst;
    for (int i = 0; i < n / HL_QK; i++) {
        const float d = quant_block(x + i * HL_QK, b[i].qs);
        int sum = 0;
        for (int j = 0; j < HL_QK; j++) sum += b[i].qs[j];
        b[i].d = hl_f32_to_f16(d);
        b[i].s = hl_f32_to_f16((float)sum * d);
    }
}

void hl_kernels_fill_scalar_legacy(hl_kernels *k) {
    k->dot[HL_Q4_0] = dot_q4_0;
    k->dot[HL_Q4_1] = dot_q4_1;
    k->dot[HL_Q5_0] = dot_q5_0;
    k->dot[HL_Q5_1] = dot_q5_1;
    k->dot[HL_Q8_0] = dot_q8_0;
    k->quant[HL_Q8_0] = quant_q8_0;
    k->quant[HL_Q8_1] = quant_q8_1;
}
