/* test_repack.c - the 8-row packed layout and its kernels (repack.h)
 * against the scalar row kernels of kernels.h.
 *
 * For Q4_0 and Q8_0, every path this CPU runs (the others are reported as
 * skipped), n_in of 1 to 65 blocks, n_out 8 / 16 / 24 and 1..4
 * activation rows at an odd stride: each packed kernel result equals the
 * scalar dot of the original row within 1e-5 relative to sum |w_i a_i|
 * (+1e-6), and leaves the output gaps alone. Some blocks hold the extreme
 * codes (Q4_0 nibbles 15, Q8_0 -128, activations +-127) that bound the
 * kernels' integer sums. The AMX group kernel, where the CPU has it,
 * equals the packed kernel bit for bit on 16 to 48 rows. Also: the layout
 * repack.h documents, and which shapes and types are refused.
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/backend/cpu/kernels.h"
#include "../../src/backend/cpu/quant.h"
#include "../../src/backend/cpu/repack.h"
#include "test.h"

static uint64_t rp_state = 42;
static uint64_t rp_next(void) { /* splitmix64 */
    uint64_t z = (rp_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rp_uniform(void) {
    return (float)((double)(rp_next() >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* Random rows, quantized; every 5th block of row 0 set to extreme codes. */
static void make_weights(hl_dtype t, int n_in, int n_out, uint8_t *w, size_t row_bytes) {
    float *x = malloc(sizeof(float) * (size_t)n_in);
    for (int r = 0; r < n_out; r++) {
        for (int i = 0; i < n_in; i++) x[i] = rp_uniform() * (1.0f + (float)(r % 3));
        hl_quantize_row(t, x, w + r * row_bytes, n_in);
    }
    for (int b = 0; b < n_in / HL_QK; b += 5) {
        if (t == HL_Q4_0)
            memset(((hl_block_q4_0 *)w)[b].qs, 0xff, HL_QK / 2);
        else
            memset(((hl_block_q8_0 *)w)[b].qs, 0x80, HL_QK);
    }
    free(x);
}

/* n_a activation rows of Q8_0 at act_stride; every 5th block of row 0 all
 * +127 (against the extreme weights above), every 7th all -127. */
static void make_acts(int n_in, int n_a, uint8_t *a, size_t act_stride) {
    const hl_kernels *ref = hl_kernels_get(HL_PATH_SCALAR);
    float *x = malloc(sizeof(float) * (size_t)n_in);
    for (int k = 0; k < n_a; k++) {
        for (int i = 0; i < n_in; i++) x[i] = rp_uniform() * (float)(k + 1);
        ref->quant[HL_Q8_0](x, a + k * act_stride, n_in);
    }
    for (int b = 0; b < n_in / HL_QK; b++) {
        if (b % 5 == 0) memset(((hl_block_q8_0 *)a)[b].qs, 127, HL_QK);
        if (b % 7 == 0) memset(((hl_block_q8_0 *)a)[b].qs, -127, HL_QK);
    }
    free(x);
}

/* sum |w_i a_i| of the decoded values: the scale of the tolerance. */
static double magnitude(hl_dtype t, const void *w, const void *a, int n_in) {
    float *dw = malloc(sizeof(float) * (size_t)n_in), *da = malloc(sizeof(float) * (size_t)n_in);
    hl_dequantize_row(t, w, dw, n_in);
    hl_dequantize_row(HL_Q8_0, a, da, n_in);
    double m = 0;
    for (int i = 0; i < n_in; i++) m += fabs((double)dw[i] * da[i]);
    free(dw);
    free(da);
    return m;
}

/* The group at grp holds the 8 rows at rows as repack.h lays them out. */
static int layout_matches(hl_dtype t, const uint8_t *grp, const uint8_t *rows, size_t row_bytes,
                          int n_in) {
    int ok = 1;
    for (int b = 0; b < n_in / HL_QK; b++)
        for (int r = 0; r < 8; r++) {
            if (t == HL_Q4_0) {
                const hl_block_q4_0x8 *p = (const hl_block_q4_0x8 *)grp + b;
                const hl_block_q4_0 *q = (const hl_block_q4_0 *)(rows + r * row_bytes) + b;
                ok &= p->d[r] == q->d;
                for (int u = 0; u < 4; u++) ok &= memcmp(p->qs[u][r], q->qs + 4 * u, 4) == 0;
            } else {
                const hl_block_q8_0x8 *p = (const hl_block_q8_0x8 *)grp + b;
                const hl_block_q8_0 *q = (const hl_block_q8_0 *)(rows + r * row_bytes) + b;
                ok &= p->d[r] == q->d;
                for (int j = 0; j < HL_QK; j++)
                    ok &= p->qs[j / 4][r][j % 4] == ((uint8_t)q->qs[j] ^ 0x80);
            }
        }
    return ok;
}

/* One shape on one path: every group, n_a = 1..4, against the row dot. */
static void check_shape(hl_dtype t, hl_cpu_path path, int n_in, int n_out) {
    const hl_packed_fn fn = hl_packed_kernel_path(t, path);
    const hl_vec_dot_fn dot = hl_kernels_get(HL_PATH_SCALAR)->dot[t];
    const size_t row_bytes = hl_dtype_row_size(t, (uint64_t)n_in);
    const size_t arow = hl_dtype_row_size(HL_Q8_0, (uint64_t)n_in), astride = arow + 14;
    const size_t gbytes = hl_packed_group_bytes(t, n_in);
    const size_t out_stride = 11; /* 8 results, then 3 untouched */
    CHECK(fn != NULL);
    CHECK_EQ_INT(hl_repack_bytes(t, n_in, n_out), gbytes * (size_t)(n_out / 8));
    CHECK_EQ_INT(gbytes, (size_t)(n_in / HL_QK) * (t == HL_Q4_0 ? 144 : 272));
    uint8_t *w = malloc(row_bytes * (size_t)n_out), *a = malloc(astride * HL_DOT_MAX_A);
    uint8_t *packed = malloc(hl_repack_bytes(t, n_in, n_out));
    memset(packed, 0xa5, hl_repack_bytes(t, n_in, n_out));
    make_weights(t, n_in, n_out, w, row_bytes);
    make_acts(n_in, HL_DOT_MAX_A, a, astride);
    /* two ranges, as parallel callers would split it */
    hl_repack(t, w, row_bytes, n_in, 0, n_out / 16, packed);
    hl_repack(t, w, row_bytes, n_in, n_out / 16, n_out / 8, packed);
    for (int g = 0; g < n_out / 8; g++) {
        const uint8_t *grp = packed + g * gbytes;
        CHECK(layout_matches(t, grp, w + (size_t)8 * g * row_bytes, row_bytes, n_in));
        for (int n_a = 1; n_a <= HL_DOT_MAX_A; n_a++) {
            float out[HL_DOT_MAX_A * 11];
            for (int i = 0; i < HL_DOT_MAX_A * 11; i++) out[i] = -1.0f;
            fn(n_in, grp, a, astride, n_a, out, out_stride);
            for (int r = 0; r < 8; r++) {
                const uint8_t *row = w + (size_t)(8 * g + r) * row_bytes;
                float ref[HL_DOT_MAX_A];
                dot(n_in, row, a, astride, n_a, ref, 1);
                for (int k = 0; k < n_a; k++) {
                    const double tol = 1e-5 * magnitude(t, row, a + k * astride, n_in) + 1e-6;
                    const double got = out[k * out_stride + r];
                    if (!(fabs(got - ref[k]) <= tol))
                        hl_test_fail(__FILE__, __LINE__,
                                     "%s path %d n_in %d row %d act %d/%d: %.9g vs %.9g",
                                     hl_dtype_name(t), (int)path, n_in, 8 * g + r, k, n_a, got,
                                     (double)ref[k]);
                    hl_test_checks++;
                }
            }
            int gaps = 1;
            for (int k = 0; k < HL_DOT_MAX_A; k++)
                for (int r = 0; r < 11; r++)
                    if (r >= 8 || k >= n_a) gaps &= out[k * out_stride + r] == -1.0f;
            CHECK(gaps);
        }
    }
    free(w);
    free(a);
    free(packed);
}

TEST(repack_kernels_match_row_dot) {
    static const hl_dtype types[] = {HL_Q4_0, HL_Q8_0};
    static const int n_ins[] = {32, 64, 96, 128, 576, 2048 + 32};
    static const int n_outs[] = {8, 16, 24};
    for (int p = 0; p < HL_PATH_COUNT; p++) {
        if (!hl_cpu_has_path((hl_cpu_path)p)) {
            fprintf(stderr, "repack: path %d not on this CPU, skipped\n", p);
            continue;
        }
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
            for (size_t i = 0; i < sizeof n_ins / sizeof n_ins[0]; i++)
                for (size_t o = 0; o < sizeof n_outs / sizeof n_outs[0]; o++)
                    check_shape(types[ti], (hl_cpu_path)p, n_ins[i], n_outs[o]);
    }
}

/* The group kernel of a path that has one (AMX) on n_a = 16, 32, 48 rows
 * at an odd stride: every result bit-identical to the same path's packed
 * kernel on 1..4 rows, and nothing written between the groups' outputs. */
static void check_gemm(hl_dtype t, hl_cpu_path path, int n_in, int n_out) {
    const hl_packed_gemm_fn gemm = hl_packed_gemm_path(t, path);
    const hl_packed_fn fn = hl_packed_kernel_path(t, path);
    const size_t row_bytes = hl_dtype_row_size(t, (uint64_t)n_in);
    const size_t arow = hl_dtype_row_size(HL_Q8_0, (uint64_t)n_in), astride = arow + 14;
    const size_t gbytes = hl_packed_group_bytes(t, n_in);
    const int max_a = 3 * HL_PACKED_GEMM_ROWS, os = n_out + 3;
    uint8_t *w = malloc(row_bytes * (size_t)n_out), *a = malloc(astride * (size_t)max_a);
    uint8_t *packed = malloc(hl_repack_bytes(t, n_in, n_out));
    float *got = malloc(sizeof(float) * (size_t)os * max_a), *want = malloc(sizeof(float) * (size_t)os * max_a);
    make_weights(t, n_in, n_out, w, row_bytes);
    for (int k = 0; k < max_a; k += HL_DOT_MAX_A) make_acts(n_in, HL_DOT_MAX_A, a + k * astride, astride);
    hl_repack(t, w, row_bytes, n_in, 0, n_out / 8, packed);
    for (int n_a = HL_PACKED_GEMM_ROWS; n_a <= max_a; n_a += HL_PACKED_GEMM_ROWS) {
        for (int i = 0; i < os * max_a; i++) got[i] = want[i] = -1.0f;
        /* two ranges of groups, as two tasks would */
        gemm(n_in, packed, 0, n_out / 16, a, astride, n_a, got, (size_t)os);
        gemm(n_in, packed, n_out / 16, n_out / 8, a, astride, n_a, got, (size_t)os);
        for (int g = 0; g < n_out / 8; g++)
            for (int k = 0; k < n_a; k += HL_DOT_MAX_A)
                fn(n_in, packed + g * gbytes, a + k * astride, astride, HL_DOT_MAX_A, want + k * os + 8 * g,
                   (size_t)os);
        int bad = 0;
        for (int i = 0; i < os * max_a; i++) bad += memcmp(&got[i], &want[i], sizeof(float)) != 0;
        if (bad)
            hl_test_fail(__FILE__, __LINE__, "%s path %d n_in %d n_out %d n_a %d: %d of %d values differ",
                         hl_dtype_name(t), (int)path, n_in, n_out, n_a, bad, os * max_a);
        hl_test_checks++;
    }
    free(w), free(a), free(packed), free(got), free(want);
}

TEST(repack_gemm_equals_packed) {
    static const hl_dtype types[] = {HL_Q4_0, HL_Q8_0};
    static const int n_ins[] = {32, 96, 576, 2048 + 32};
    int tested = 0;
    for (int p = 0; p < HL_PATH_COUNT; p++)
        for (size_t ti = 0; ti < 2; ti++) {
            const bool has = hl_packed_gemm_path(types[ti], (hl_cpu_path)p) != NULL;
            /* only the AMX path has one, and only where the CPU has AMX */
            CHECK(has == (p == HL_PATH_AMX && hl_cpu_has_path(HL_PATH_AMX)));
            if (!has) continue;
            tested++;
            for (size_t i = 0; i < sizeof n_ins / sizeof n_ins[0]; i++) {
                check_gemm(types[ti], (hl_cpu_path)p, n_ins[i], 8);
                check_gemm(types[ti], (hl_cpu_path)p, n_ins[i], 24);
                check_gemm(types[ti], (hl_cpu_path)p, n_ins[i], 32);
            }
        }
    if (!tested) fprintf(stderr, "repack: no AMX on this CPU, group kernels skipped\n");
}

TEST(repack_refuses_other_shapes_and_types) {
    CHECK(hl_repack_bytes(HL_Q4_0, 64, 8) > 0);
    CHECK(hl_repack_bytes(HL_Q8_0, 64, 16) > 0);
    CHECK_EQ_INT(hl_repack_bytes(HL_Q4_0, 64, 12), 0);
    CHECK_EQ_INT(hl_repack_bytes(HL_Q8_0, 64, 7), 0);
    CHECK_EQ_INT(hl_repack_bytes(HL_Q4_0, 48, 8), 0);
    CHECK_EQ_INT(hl_repack_bytes(HL_Q4_0, 0, 8), 0);
    CHECK_EQ_INT(hl_repack_bytes(HL_Q4_0, 64, 0), 0);
    static const hl_dtype others[] = {HL_F32,  HL_F16,  HL_BF16, HL_Q4_1, HL_Q5_0, HL_Q5_1,
                                      HL_Q2_K, HL_Q3_K, HL_Q4_K, HL_Q5_K, HL_Q6_K};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        CHECK_EQ_INT(hl_repack_bytes(others[i], 256, 8), 0);
        CHECK_EQ_INT(hl_packed_group_bytes(others[i], 256), 0);
        CHECK(hl_packed_kernel(others[i]) == NULL);
        for (int p = 0; p < HL_PATH_COUNT; p++) {
            CHECK(hl_packed_kernel_path(others[i], (hl_cpu_path)p) == NULL);
            CHECK(hl_packed_gemm_path(others[i], (hl_cpu_path)p) == NULL);
        }
    }
    const hl_cpu_path best = hl_kernels_best()->path; /* HL_CPU_PATH applies to both */
    CHECK(hl_packed_kernel(HL_Q4_0) == hl_packed_kernel_path(HL_Q4_0, best));
    CHECK(hl_packed_kernel(HL_Q8_0) == hl_packed_kernel_path(HL_Q8_0, best));
    CHECK(hl_packed_kernel(HL_Q4_0) != NULL);
    CHECK(hl_packed_kernel(HL_Q8_0) != NULL);
}
