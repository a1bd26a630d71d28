/* kern_k235.c - scalar dot kernels of the weight types Q2_K, Q3_K and Q5_K
 * against Q8_K activations: the correctness reference of the SIMD paths.
 *
 * Contract: kernels.h's hl_vec_dot_fn. Pure, thread-safe, no allocation.
 *
 * Math. A weight block of 256 quants is decoded once into small integers
 * q[256] with one integer scale sc[s] and one integer min mn[s] per
 * sub-block s of 16 (Q5_K's sub-blocks of 32 give each half the same pair),
 * and float factors d, dmin. A Q8_K activation block holds d_a, int8 a[256]
 * and bsums[s] = sum of a over sub-block s. Then, exactly in integers,
 *   isum = sum_s sc[s] * sum_{l<16} q[16s+l] * a[16s+l]
 *   msum = sum_s mn[s] * bsums[s]
 * and, as llama.cpp's reference does, the block adds
 *   (d * d_a) * isum - (dmin * d_a) * msum
 * to the float sum. Per type:
 *   Q2_K  q = 2-bit code (0..3), sc/mn = low/high nibble of scales[s]
 *   Q3_K  q = 2-bit code + 4 * 3rd bit - 4 (-4..3), sc = 6-bit scale - 32,
 *         no min
 *   Q5_K  q = 4-bit code + 16 * 5th bit (0..31), sc/mn = the 6-bit pair of
 *         sub-block s/2
 * Integer ranges: |isum| < 256 * 31 * 127 * 63 < 2^26, |msum| < 2^24.
 */
#include "kernels.h"
#include "quant.h"

typedef struct kblock {
    int8_t q[HL_QK_K];
    int16_t sc[HL_QK_K / 16];
    int16_t mn[HL_QK_K / 16];
    float d, dmin;
    int has_min; /* Q3_K has none */
} kblock;

/* Q2_K/Q3_K: element 128c + 32g + l (l < 32) keeps its 2-bit code at bit 2g
 * of qs[32c + l]; Q3_K's 3rd bit is bit 4c + g of hmask[l]. */
static void decode_q2_k(const hl_block_q2_k *b, kblock *k) {
    for (int c = 0; c < 2; c++)
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++)
                k->q[128 * c + 32 * g + l] = (int8_t)(b->qs[32 * c + l] >> (2 * g) & 3);
    for (int s = 0; s < 16; s++) {
        k->sc[s] = (int16_t)(b->scales[s] & 0xf);
        k->mn[s] = (int16_t)(b->scales[s] >> 4);
    }
    k->d = hl_f16_to_f32(b->d);
    k->dmin = hl_f16_to_f32(b->dmin);
    k->has_min = 1;
}

/* Q3_K scale s: low nibble from byte s % 8 (high nibble for s >= 8), top two
 * bits from byte 8 + s % 4 at bit 2 * (s / 4). */
static int q3_k_scale(const uint8_t *sc, int s) {
    const int lo = sc[s % 8] >> (4 * (s / 8)) & 0xf;
    const int hi = sc[8 + s % 4] >> (2 * (s / 4)) & 3;
    return lo | hi << 4;
}

static void decode_q3_k(const hl_block_q3_k *b, kblock *k) {
    for (int c = 0; c < 2; c++)
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                const int lo = b->qs[32 * c + l] >> (2 * g) & 3;
                const int hi = b->hmask[l] >> (4 * c + g) & 1;
                k->q[128 * c + 32 * g + l] = (int8_t)(lo + 4 * hi - 4);
            }
    for (int s = 0; s < 16; s++) {
        k->sc[s] = (int16_t)(q3_k_scale(b->scales, s) - 32);
        k->mn[s] = 0;
    }
    k->d = hl_f16_to_f32(b->d);
    k->dmin = 0.0f;
    k->has_min = 0;
}

/* Q4_K/Q5_K scale and min j of 6 bits: j < 4 whole in bytes j and j + 4;
 * j >= 4 low nibbles in byte j + 4, top bits in bits 6..7 of bytes j - 4
 * (scale) and j (min). */
static void k4_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q5_K: sub-blocks 2c and 2c + 1 (32 each) take the low and high nibbles of
 * qs[32c + l]; the 5th bit of sub-block t is bit t of qh[l]. */
static void decode_q5_k(const hl_block_q5_k *b, kblock *k) {
    for (int t = 0; t < 8; t++) {
        const int shift = 4 * (t % 2);
        for (int l = 0; l < 32; l++) {
            const int lo = b->qs[32 * (t / 2) + l] >> shift & 0xf;
            const int hi = b->qh[l] >> t & 1;
            k->q[32 * t + l] = (int8_t)(lo | hi << 4);
        }
        int sc, mn;
        k4_scale_min(b->scales, t, &sc, &mn);
        k->sc[2 * t] = k->sc[2 * t + 1] = (int16_t)sc;
        k->mn[2 * t] = k->mn[2 * t + 1] = (int16_t)mn;
    }
    k->d = hl_f16_to_f32(b->d);
    k->dmin = hl_f16_to_f32(b->dmin);
    k->has_min = 1;
}

static int32_t block_isum(const kblock *k, const int8_t *a) {
    int32_t isum = 0;
    for (int s = 0; s < HL_QK_K / 16; s++) {
        int32_t part = 0;
        for (int l = 0; l < 16; l++) part += k->q[16 * s + l] * a[16 * s + l];
        isum += k->sc[s] * part;
    }
    return isum;
}

static int32_t block_msum(const kblock *k, const int16_t *bsums) {
    int32_t msum = 0;
    for (int s = 0; s < HL_QK_K / 16; s++) msum += k->mn[s] * bsums[s];
    return msum;
}

/* Adds one decoded weight block's dot with block i of each activation row. */
static void block_dot_rows(const kblock *k, int i, const void *a, size_t a_stride, int n_a,
                           float *sum) {
    for (int r = 0; r < n_a; r++) {
        const hl_block_q8_k *y =
            (const hl_block_q8_k *)((const char *)a + (size_t)r * a_stride) + i;
        float part = (k->d * y->d) * (float)block_isum(k, y->qs);
        if (k->has_min) part -= (k->dmin * y->d) * (float)block_msum(k, y->bsums);
        sum[r] += part;
    }
}

static void store_rows(const float *sum, int n_a, float *out, size_t out_stride) {
    for (int r = 0; r < n_a; r++) out[(size_t)r * out_stride] = sum[r];
}

static void dot_q2_k(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                     size_t out_stride) {
    const hl_block_q2_k *b = w;
    float sum[HL_DOT_MAX_A] = {0};
    kblock k;
    for (int i = 0; i < n / HL_QK_K; i++) {
        decode_q2_k(&b[i], &k);
        block_dot_rows(&k, i, a, a_stride, n_a, sum);
    }
    store_rows(sum, n_a, out, out_stride);
}

static void dot_q3_k(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                     size_t out_stride) {
    const hl_block_q3_k *b = w;
    float sum[HL_DOT_MAX_A] = {0};
    kblock k;
    for (int i = 0; i < n / HL_QK_K; i++) {
        decode_q3_k(&b[i], &k);
        block_dot_rows(&k, i, a, a_stride, n_a, sum);
    }
    store_rows(sum, n_a, out, out_stride);
}

static void dot_q5_k(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                     size_t out_stride) {
    const hl_block_q5_k *b = w;
    float sum[HL_DOT_MAX_A] = {0};
    kblock k;
    for (int i = 0; i < n / HL_QK_K; i++) {
        decode_q5_k(&b[i], &k);
        block_dot_rows(&k, i, a, a_stride, n_a, sum);
    }
    store_rows(sum, n_a, out, out_stride);
}

void hl_kernels_fill_scalar_k235(hl_kernels *k) {
    k->dot[HL_Q2_K] = dot_q2_k;
    k->dot[HL_Q3_K] = dot_q3_k;
    k->dot[HL_Q5_K] = dot_q5_k;
}
