/* kern_k46.c - scalar reference kernels of the K-quants Q4_K and Q6_K, and
 * the Q8_K activation quantizer they pair with; see kernels.h.
 *
 * Activations are Q8_K blocks of 256: a = da * qa, qa in [-127, 127], with
 * bsums[g] = sum of qa over elements 16g .. 16g+15.
 *
 * Q4_K: 8 sub-blocks of 32, w = dw * sc_j * q - dmin * mn_j, q in [0, 15],
 * sc_j and mn_j six bits. Per block and activation row the dot is
 *   dw * da * sum_j sc_j * sum_l q_l qa_l  -  dmin * da * sum_j mn_j * S_j
 * where S_j = bsums[2j] + bsums[2j+1] is the activation sum of sub-block
 * j, so the mins never touch the quants. Both integer sums are exact in
 * int32 (|first| <= 8 * 63 * 32 * 15 * 127 < 2^25).
 *
 * Q6_K: 16 sub-blocks of 16, w = dw * sc_j * (q - 32), q in [0, 63], sc_j
 * a signed byte. Per block: dw * da * sum_j sc_j * sum_l (q_l - 32) qa_l,
 * exact in int32 (< 16 * 128 * 16 * 32 * 127 < 2^27).
 *
 * Each block sum becomes one float term, sum += (dw * da) * sumi (minus
 * (dmin * da) * summ for Q4_K), as llama.cpp's reference code does. A
 * weight block is unpacked to bytes once and used for all n_a rows.
 *
 * The Q8_K quantizer is quant.c's reference one (llama.cpp's formula:
 * d = max / -127 with max the element of largest magnitude, qa = round to
 * nearest even of x / d).
 */
#include "kernels.h"
#include "quant.h"

static inline const hl_block_q8_k *act_block(const void *a, size_t a_stride, int r, int i) {
    return (const hl_block_q8_k *)((const char *)a + (size_t)r * a_stride) + i;
}

/* Q4_K's 12 scale bytes: entries 0..3 of scales and mins are the low six
 * bits of bytes 0..3 and 4..7; entries 4..7 take their low nibbles from
 * bytes 8..11 (scale low, min high) and their top two bits from the spare
 * top bits of bytes 0..3 (scales) and 4..7 (mins). */
static void q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0xf) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

static void dot_q4_k(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                     size_t out_stride) {
    const hl_block_q4_k *wb = w;
    float sum[HL_DOT_MAX_A] = {0};
    for (int i = 0; i < n / HL_QK_K; i++) {
        uint8_t q[HL_QK_K], sc[8], mn[8];
        for (int c = 0; c < 4; c++) /* qs[32c + l]: element 64c + l low, 64c + 32 + l high */
            for (int l = 0; l < 32; l++) {
                q[64 * c + l] = wb[i].qs[32 * c + l] & 0xf;
                q[64 * c + 32 + l] = wb[i].qs[32 * c + l] >> 4;
            }
        q4_k_scales(wb[i].scales, sc, mn);
        const float d = hl_f16_to_f32(wb[i].d), dmin = hl_f16_to_f32(wb[i].dmin);
        for (int r = 0; r < n_a; r++) {
            const hl_block_q8_k *y = act_block(a, a_stride, r, i);
            int32_t sumi = 0, summ = 0;
            for (int j = 0; j < 8; j++) {
                int32_t s = 0;
                for (int l = 0; l < 32; l++) s += q[32 * j + l] * y->qs[32 * j + l];
                sumi += sc[j] * s;
                summ += mn[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
            }
            sum[r] += (d * y->d) * (float)sumi - (dmin * y->d) * (float)summ;
        }
    }
    for (int r = 0; r < n_a; r++) out[(size_t)r * out_stride] = sum[r];
}

static void dot_q6_k(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                     size_t out_stride) {
    const hl_block_q6_k *wb = w;
    float sum[HL_DOT_MAX_A] = {0};
    for (int i = 0; i < n / HL_QK_K; i++) {
        int8_t q[HL_QK_K]; /* q - 32 */
        /* element 128c + 32g + l: low nibble of ql[64c + 32(g%2) + l] at bit
         * 4(g/2), top two bits of qh[32c + l] at bit 2g */
        for (int c = 0; c < 2; c++)
            for (int l = 0; l < 32; l++) {
                const uint8_t lo0 = wb[i].ql[64 * c + l], lo1 = wb[i].ql[64 * c + 32 + l];
                const uint8_t hi = wb[i].qh[32 * c + l];
                int8_t *e = q + 128 * c + l;
                e[0] = (int8_t)(((lo0 & 0xf) | (hi & 3) << 4) - 32);
                e[32] = (int8_t)(((lo1 & 0xf) | (hi >> 2 & 3) << 4) - 32);
                e[64] = (int8_t)(((lo0 >> 4) | (hi >> 4 & 3) << 4) - 32);
                e[96] = (int8_t)(((lo1 >> 4) | (hi >> 6) << 4) - 32);
            }
        const float d = hl_f16_to_f32(wb[i].d);
        for (int r = 0; r < n_a; r++) {
            const hl_block_q8_k *y = act_block(a, a_stride, r, i);
            int32_t sumi = 0;
            for (int j = 0; j < 16; j++) {
                int32_t s = 0;
                for (int l = 0; l < 16; l++) s += q[16 * j + l] * y->qs[16 * j + l];
                sumi += wb[i].scales[j] * s;
            }
            sum[r] += (d * y->d) * (float)sumi;
        }
    }
    for (int r = 0; r < n_a; r++) out[(size_t)r * out_stride] = sum[r];
}

static void quant_q8_k(const float *x, void *dst, int n) {
    hl_quantize_row(HL_Q8_K, x, dst, n);
}

void hl_kernels_fill_scalar_k46(hl_kernels *k) {
    k->dot[HL_Q4_K] = dot_q4_k;
    k->dot[HL_Q6_K] = dot_q6_k;
    k->quant[HL_Q8_K] = quant_q8_k;
}
