/* test_kernels.c - every kernel path against the scalar reference, and the
 * scalar reference against exact arithmetic on the decoded values.
 *
 * For each weight type and each path this CPU runs (scalar, avx2, avx512;
 * the paths it lacks are reported as skipped), on random rows of many sizes
 * (1..67 blocks, so never only vector-width multiples) and 1..4 activation
 * rows at odd strides:
 *   - the path's activation quantizer decodes to within half a quantum of
 *     the input, as the scalar one does;
 *   - the scalar dot equals the double-precision dot of the decoded weight
 *     and activation values to 1e-5 relative to sum |w_i a_i| (the integer
 *     block sums are exact; only the float sums across blocks round); for
 *     Q4_1 / Q5_1 the exact value takes each block's min term as m * s,
 *     s the Q8_1 block's f16 field, as llama.cpp does (s rounds d * sum(a)
 *     to f16, so it is not the decoded activations' sum);
 *   - every SIMD path's dot, on the same quantized activations, equals the
 *     scalar dot within the same bound: that is the documented tolerance.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../src/backend/cpu/kernels.h"
#include "../../src/backend/cpu/quant.h"
#include "test.h"

static uint64_t kr_state;
static uint64_t kr_next(void) { /* splitmix64 */
    uint64_t z = (kr_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float kr_normal(void) {
    double u = (double)(kr_next() >> 11) * 0x1p-53 + 0x1p-60, v = (double)(kr_next() >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

static const hl_dtype weight_types[] = {HL_F32,  HL_F16,  HL_BF16, HL_Q4_0, HL_Q4_1,
                                        HL_Q5_0, HL_Q5_1, HL_Q8_0, HL_Q2_K, HL_Q3_K,
                                        HL_Q4_K, HL_Q5_K, HL_Q6_K};

/* Decoded activation row: Q8_1 and Q8_K have no dequantizer in quant.c. */
static void decode_act(hl_dtype at, const void *src, float *dst, int n) {
    if (at == HL_Q8_1) {
        const hl_block_q8_1 *b = src;
        for (int i = 0; i < n / HL_QK; i++)
            for (int j = 0; j < HL_QK; j++) dst[i * HL_QK + j] = hl_f16_to_f32(b[i].d) * b[i].qs[j];
    } else if (at == HL_Q8_K) {
        const hl_block_q8_k *b = src;
        for (int i = 0; i < n / HL_QK_K; i++)
            for (int j = 0; j < HL_QK_K; j++) dst[i * HL_QK_K + j] = b[i].d * b[i].qs[j];
    } else {
        hl_dequantize_row(at, src, dst, n);
    }
}

/* Largest quantization step of an activation row (the half-quantum bound). */
static double act_step(hl_dtype at, const void *src, int n) {
    double s = 0;
    if (at == HL_Q8_0 || at == HL_Q8_1) {
        for (int i = 0; i < n / HL_QK; i++) {
            uint16_t d = at == HL_Q8_0 ? ((const hl_block_q8_0 *)src)[i].d : ((const hl_block_q8_1 *)src)[i].d;
            s = fmax(s, fabs(hl_f16_to_f32(d)));
        }
    } else if (at == HL_Q8_K) {
        for (int i = 0; i < n / HL_QK_K; i++) s = fmax(s, fabs(((const hl_block_q8_k *)src)[i].d));
    }
    return s;
}

/* Block i of a Q4_1 / Q5_1 row: scale, minimum and the unsigned codes. */
static void decode_min_block(hl_dtype wt, const void *row, int i, double *d, double *m,
                             int q[HL_QK]) {
    const uint8_t *qs, *qh = NULL;
    uint16_t dh, mh;
    if (wt == HL_Q4_1) {
        const hl_block_q4_1 *b = (const hl_block_q4_1 *)row + i;
        dh = b->d, mh = b->m, qs = b->qs;
    } else {
        const hl_block_q5_1 *b = (const hl_block_q5_1 *)row + i;
        dh = b->d, mh = b->m, qs = b->qs, qh = b->qh;
    }
    uint32_t h = 0;
    for (int k = 0; qh && k < 4; k++) h |= (uint32_t)qh[k] << (8 * k); /* bit j: code j's 5th bit */
    for (int j = 0; j < HL_QK / 2; j++) {
        q[j] = (qs[j] & 0xf) | (int)((h >> j) & 1) << 4;
        q[j + HL_QK / 2] = (qs[j] >> 4) | (int)((h >> (j + HL_QK / 2)) & 1) << 4;
    }
    *d = hl_f16_to_f32(dh);
    *m = hl_f16_to_f32(mh);
}

/* The exact dot of a Q4_1 / Q5_1 row with a Q8_1 row as llama.cpp defines
 * it: per block d_w d_a sum(q_w q_a) + m_w s_a, in double. */
static double exact_min_dot(hl_dtype wt, const void *w, const void *a, int n) {
    const hl_block_q8_1 *ab = a;
    double sum = 0;
    for (int i = 0; i < n / HL_QK; i++) {
        double dw, mw;
        int q[HL_QK];
        long sumi = 0;
        decode_min_block(wt, w, i, &dw, &mw, q);
        for (int j = 0; j < HL_QK; j++) sumi += (long)q[j] * ab[i].qs[j];
        sum += dw * hl_f16_to_f32(ab[i].d) * (double)sumi + mw * hl_f16_to_f32(ab[i].s);
    }
    return sum;
}

static void check_act(const hl_kernels *k, hl_dtype at, const float *x, int n, void *buf, float *dec) {
    k->quant[at](x, buf, n);
    decode_act(at, buf, dec, n);
    double step = act_step(at, buf, n), worst = 0;
    double amax = 0;
    for (int i = 0; i < n; i++) amax = fmax(amax, fabs(x[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(dec[i] - x[i]));
    /* F16/BF16: relative rounding. Q8: half a step, plus |q| <= 127 times
     * the f16 rounding of d (Q8_0/Q8_1 quantize with the unrounded scale). */
    double tol = at == HL_F16    ? amax * 0x1p-11
                 : at == HL_BF16 ? amax * 0x1p-8
                 : at == HL_F32  ? 0
                 : at == HL_Q8_K ? step * 0.5 + 1e-7
                                 : step * (0.5 + 127 * 0x1p-11) + 1e-7;
    if (!(worst <= tol))
        hl_test_fail(__FILE__, __LINE__, "%s act %s n=%d: error %g > %g", k->name, hl_dtype_name(at), n,
                     worst, tol);
    hl_test_checks++;
    if (at == HL_Q8_1) { /* s = d * sum(q), rounded to f16 */
        const hl_block_q8_1 *b = buf;
        for (int i = 0; i < n / HL_QK; i++) {
            int sum = 0;
            for (int j = 0; j < HL_QK; j++) sum += b[i].qs[j];
            float want = hl_f16_to_f32(b[i].d) * sum;
            CHECK_NEAR(hl_f16_to_f32(b[i].s), want, fabs(want) * 0x1p-10 + 1e-6);
        }
    } else if (at == HL_Q8_K) { /* bsums are the sums of each 16 quants */
        const hl_block_q8_k *b = buf;
        int bad = 0;
        for (int i = 0; i < n / HL_QK_K; i++)
            for (int g = 0; g < HL_QK_K / 16; g++) {
                int sum = 0;
                for (int j = 0; j < 16; j++) sum += b[i].qs[g * 16 + j];
                bad += sum != b[i].bsums[g];
            }
        CHECK_EQ_INT(bad, 0);
    }
}

TEST(kernels_every_path_matches_the_reference) {
    const hl_kernels *ref = hl_kernels_get(HL_PATH_SCALAR);
    CHECK(ref != NULL);
    CHECK(hl_kernels_best() != NULL);
    for (int p = 0; p < HL_PATH_COUNT; p++) {
        const hl_kernels *k = hl_kernels_get((hl_cpu_path)p);
        if (!k) {
            fprintf(stderr, "  kernels: path %d not on this CPU: skipped\n", p);
            continue;
        }
        for (size_t ti = 0; ti < sizeof weight_types / sizeof *weight_types; ti++) {
            hl_dtype wt = weight_types[ti], at = hl_act_type(wt);
            CHECK(k->dot[wt] != NULL);
            CHECK(k->quant[at] != NULL);
            if (!k->dot[wt] || !k->quant[at]) continue;
            int bs = (int)hl_dtype_get(wt)->block_elems;
            bool plain = bs == 1; /* float types: any length, tails included */
            if (!plain && bs < 256) bs = at == HL_Q8_K ? 256 : 32; /* blocks of the pair */
            kr_state = 1234 + ti * 77 + (uint64_t)p;
            const int sizes[] = {1, 2, 3, 5, 8, 18, 67};
            const int plain_sizes[] = {1, 7, 33, 300, 517, 1000, 2053};
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                int n = plain ? plain_sizes[si] : sizes[si] * bs;
                if (bs == 256 && sizes[si] > 18) n = 9 * bs;
                size_t wrow = hl_dtype_row_size(wt, (uint64_t)n), arow = hl_dtype_row_size(at, (uint64_t)n);
                size_t astride = arow + 4 * 7; /* odd stride, 4-byte aligned */
                float *x = malloc(sizeof(float) * (size_t)n * 5), *dec = malloc(sizeof(float) * (size_t)n * 5);
                uint8_t *wq = malloc(wrow), *aq = malloc(astride * HL_DOT_MAX_A), *aq2 = malloc(arow);
                for (int i = 0; i < n; i++) x[i] = kr_normal() * 0.05f;
                hl_quantize_row(wt, x, wq, n);
                hl_dequantize_row(wt, wq, dec + (size_t)4 * n, n);
                for (int a = 0; a < HL_DOT_MAX_A; a++) {
                    for (int i = 0; i < n; i++) x[(size_t)a * n + i] = kr_normal() * (a + 1);
                    if (a == 3) x[(size_t)a * n + 5 % n] = 40.0f; /* an outlier */
                    ref->quant[at](x + (size_t)a * n, aq + a * astride, n);
                    check_act(k, at, x + (size_t)a * n, n, aq2, dec + (size_t)a * n);
                }
                for (int na = 1; na <= HL_DOT_MAX_A; na++) {
                    float out_ref[2 * HL_DOT_MAX_A] = {0}, out[2 * HL_DOT_MAX_A] = {0};
                    ref->dot[wt](n, wq, aq, astride, na, out_ref, 2);
                    k->dot[wt](n, wq, aq, astride, na, out, 2);
                    for (int a = 0; a < na; a++) {
                        decode_act(at, aq + a * astride, dec + (size_t)a * n, n);
                        double exact = 0, mag = 0;
                        for (int i = 0; i < n; i++) {
                            double t = (double)dec[(size_t)4 * n + i] * dec[(size_t)a * n + i];
                            exact += t;
                            mag += fabs(t);
                        }
                        if (at == HL_Q8_1) exact = exact_min_dot(wt, wq, aq + a * astride, n);
                        double tol = 1e-5 * mag + 1e-6;
                        hl_test_checks += 2;
                        if (p == HL_PATH_SCALAR && !(fabs(out_ref[2 * a] - exact) <= tol))
                            hl_test_fail(__FILE__, __LINE__, "scalar %s n=%d na=%d row %d: %.9g vs exact %.9g",
                                         hl_dtype_name(wt), n, na, a, out_ref[2 * a], exact);
                        if (!(fabs(out[2 * a] - out_ref[2 * a]) <= tol))
                            hl_test_fail(__FILE__, __LINE__, "%s %s n=%d na=%d row %d: %.9g vs scalar %.9g",
                                         k->name, hl_dtype_name(wt), n, na, a, out[2 * a], out_ref[2 * a]);
                        if (out[2 * a + 1] != 0) /* the stride is honoured */
                            hl_test_fail(__FILE__, __LINE__, "%s %s wrote between outputs", k->name,
                                         hl_dtype_name(wt));
                    }
                }
                free(x);
                free(dec);
                free(wq);
                free(aq);
                free(aq2);
            }
        }
    }
}

TEST(kernels_act_type_pairs) {
    CHECK_EQ_INT(hl_act_type(HL_Q4_0), HL_Q8_0);
    CHECK_EQ_INT(hl_act_type(HL_Q4_1), HL_Q8_1);
    CHECK_EQ_INT(hl_act_type(HL_Q5_1), HL_Q8_1);
    CHECK_EQ_INT(hl_act_type(HL_Q6_K), HL_Q8_K);
    CHECK_EQ_INT(hl_act_type(HL_F16), HL_F16);
    CHECK_EQ_INT(hl_act_type(HL_F32), HL_F32);
}

/* Every path's gemm (where it has one) against its dot on the same rows:
 * all tile shapes 1..4 x 1..4, odd strides. */
TEST(kernels_gemm_tiles_match_dot) {
    int tested = 0;
    for (int p = 0; p < HL_PATH_COUNT; p++) {
        const hl_kernels *k = hl_kernels_get((hl_cpu_path)p);
        if (!k) continue;
        for (size_t ti = 0; ti < sizeof weight_types / sizeof *weight_types; ti++) {
            hl_dtype wt = weight_types[ti], at = hl_act_type(wt);
            if (!k->gemm[wt]) continue;
            tested++;
            int bs = (int)hl_dtype_get(wt)->block_elems;
            if (bs < 256) bs = at == HL_Q8_K ? 256 : 32;
            kr_state = 77 + ti;
            for (int nb = 1; nb <= 9; nb += 4) {
                int n = nb * bs;
                size_t wrow = hl_dtype_row_size(wt, (uint64_t)n) + 6, arow = hl_dtype_row_size(at, (uint64_t)n) + 12;
                float *x = malloc(sizeof(float) * (size_t)n);
                int rows = k->gemm_rows[wt] ? k->gemm_rows[wt] : HL_GEMM_MAX_W;
                CHECK(rows >= 1 && rows <= HL_GEMM_ROWS_MAX);
                uint8_t *wq = malloc(wrow * HL_GEMM_ROWS_MAX), *aq = malloc(arow * HL_DOT_MAX_A);
                for (int r = 0; r < HL_GEMM_ROWS_MAX; r++) {
                    for (int i = 0; i < n; i++) x[i] = kr_normal() * 0.05f;
                    hl_quantize_row(wt, x, wq + r * wrow, n);
                }
                for (int a = 0; a < HL_DOT_MAX_A; a++) {
                    for (int i = 0; i < n; i++) x[i] = kr_normal();
                    k->quant[at](x, aq + a * arow, n);
                }
                int bad = 0;
                enum { OS = HL_GEMM_ROWS_MAX + 3 }; /* output stride, with gaps */
                for (int nw = 1; nw <= rows; nw++)
                    for (int na = 1; na <= HL_DOT_MAX_A; na++) {
                        float got[HL_DOT_MAX_A * OS], want[HL_DOT_MAX_A * OS];
                        for (int i = 0; i < HL_DOT_MAX_A * OS; i++) got[i] = want[i] = -1.0f;
                        k->gemm[wt](n, wq, wrow, nw, aq, arow, na, got, OS);
                        for (int r = 0; r < nw; r++)
                            k->dot[wt](n, wq + r * wrow, aq, arow, na, want + r, OS);
                        for (int i = 0; i < HL_DOT_MAX_A * OS; i++)
                            bad += !(fabsf(got[i] - want[i]) <= 1e-5f * (fabsf(want[i]) + 1.0f));
                    }
                if (bad)
                    hl_test_fail(__FILE__, __LINE__, "%s %s gemm n=%d: %d outputs differ from dot", k->name,
                                 hl_dtype_name(wt), n, bad);
                hl_test_checks++;
                free(x);
                free(wq);
                free(aq);
            }
        }
    }
    fprintf(stderr, "  kernels: %d gemm kernels tested\n", tested);
}
