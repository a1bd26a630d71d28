/* test_engine.c - the thread pool, the paged KV cache and the CPU kernels
 * the forward pass is built from. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/backend/cpu/cpu.h"
#include "../../src/backend/cpu/kernels.h"
#include "../../src/backend/cpu/quant.h"
#include "../../src/backend/cpu/repack.h"
#include "../../src/backend/cpu/vec.h"
#include "../../src/engine/kv.h"
#include "../../src/util/pool.h"
#include "test.h"

static void count_task(void *ctx, int task, int thread) {
    atomic_int *hits = ctx;
    (void)thread;
    atomic_fetch_add(&hits[task], 1);
}

TEST(pool_runs_every_task_once) {
    for (int nt = 1; nt <= 4; nt++) {
        hl_pool *p = hl_pool_new(nt);
        CHECK(p != NULL);
        if (!p) return;
        static atomic_int hits[1000];
        for (int round = 0; round < 50; round++) {
            int n = 1 + (round * 37) % 1000;
            for (int i = 0; i < n; i++) atomic_store(&hits[i], 0);
            hl_pool_run(p, count_task, hits, n);
            int bad = 0;
            for (int i = 0; i < n; i++) bad += atomic_load(&hits[i]) != 1;
            CHECK_EQ_INT(bad, 0);
        }
        hl_pool_free(p);
    }
}

TEST(kv_reserve_truncate_and_errors) {
    hl_kv *kv;
    hl_err e = {0};
    hl_kv_shape s = {.n_layer = 2, .n_kv_head = 2, .head_dim = 8, .n_seq = 2, .n_ctx = 100,
                     .type = HL_F16};
    CHECK(hl_kv_new(&kv, &s, &e) == 0);
    CHECK(hl_kv_seq_reserve(kv, 0, 40, &e) == 0);
    CHECK_EQ_INT(hl_kv_seq_len(kv, 0), 40);
    CHECK(hl_kv_seq_reserve(kv, 1, 100, &e) == 0);
    /* Rows of different (layer, seq, pos, head) never alias. */
    uint16_t *a = hl_kv_k(kv, 0, 0, 39, 1), *b = hl_kv_v(kv, 0, 0, 39, 1);
    uint16_t *c = hl_kv_k(kv, 1, 1, 39, 1), *d = hl_kv_k(kv, 0, 0, 38, 1);
    float row[8] = {1, -2, 0.5f, 3, 0, 0, 0, 1e-3f}, back[8];
    hl_kv_store(kv, c, row);
    hl_kv_load(kv, c, back);
    for (int i = 0; i < 8; i++) CHECK_NEAR(back[i], row[i], 1e-6);
    CHECK(a != b && a != c && a != d);
    a[7] = 0x3c00;
    CHECK(((uint16_t *)hl_kv_k(kv, 0, 0, 39, 1))[7] == 0x3c00);
    CHECK(hl_kv_seq_reserve(kv, 0, 101, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "context full");
    CHECK_EQ_INT(hl_kv_seq_len(kv, 0), 40); /* failed call changed nothing */
    CHECK(hl_kv_seq_reserve(kv, 5, 1, &e) < 0);
    hl_kv_seq_truncate(kv, 1, 0);
    CHECK_EQ_INT(hl_kv_seq_len(kv, 1), 0);
    /* Freed blocks are reusable: fill both sequences to the brim again. */
    CHECK(hl_kv_seq_reserve(kv, 1, 100, &e) == 0);
    CHECK(hl_kv_seq_reserve(kv, 0, 100, &e) == 0);
    hl_kv_free(kv);
}

TEST(kv_pool_smaller_than_demand_fails_cleanly) {
    hl_kv *kv;
    hl_err e = {0};
    hl_kv_shape s = {.n_layer = 1, .n_kv_head = 1, .head_dim = 4, .n_seq = 4, .n_ctx = 2 * HL_KV_BLOCK,
                     .n_blocks = 3, .type = HL_F32};
    CHECK(hl_kv_new(&kv, &s, &e) == 0);
    CHECK(hl_kv_seq_reserve(kv, 0, 2 * HL_KV_BLOCK, &e) == 0); /* 2 blocks */
    CHECK(hl_kv_seq_reserve(kv, 1, 2 * HL_KV_BLOCK, &e) < 0);  /* needs 2, 1 free */
    CHECK_STR_CONTAINS(e.msg, "out of blocks");
    CHECK_EQ_INT(hl_kv_seq_len(kv, 1), 0);
    CHECK(hl_kv_seq_reserve(kv, 1, HL_KV_BLOCK, &e) == 0);
    hl_kv_free(kv);
}

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

TEST(matmul_matches_naive_for_decode_and_prefill) {
    const hl_dtype types[] = {HL_F32, HL_F16, HL_Q8_0, HL_Q4_K};
    const int n_in = 512, n_out = 37;
    hl_pool *p = hl_pool_new(3);
    uint32_t seed = 7;
    float *w = malloc(sizeof(float) * n_in * n_out), *x = malloc(sizeof(float) * n_in * 5);
    float *y = malloc(sizeof(float) * n_out * 5), *row = malloc(sizeof(float) * n_in);
    float *scratch = malloc(sizeof(float) * hl_cpu_matmul_scratch(n_in, 5, 3));
    uint8_t *q = malloc(hl_dtype_row_size(HL_F32, n_in) * n_out);
    for (int i = 0; i < n_in * n_out; i++) w[i] = frand(&seed);
    for (int i = 0; i < n_in * 5; i++) x[i] = frand(&seed);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        size_t rb = hl_dtype_row_size(types[ti], n_in);
        for (int r = 0; r < n_out; r++) hl_quantize_row(types[ti], w + r * n_in, q + r * rb, n_in);
        hl_mat m = {.data = q, .type = types[ti], .n_in = n_in, .n_out = n_out, .row_bytes = rb};
        /* The activations are rounded through the type paired with the
         * weights, by the quantizer of the kernel path the matmul uses. */
        hl_dtype at = hl_act_type(types[ti]);
        float *xr = malloc(sizeof(float) * n_in * 5);
        uint8_t *xq = malloc(hl_dtype_row_size(HL_F32, n_in));
        for (int t = 0; t < 5; t++) {
            if (at == HL_F32) {
                memcpy(xr + t * n_in, x + t * n_in, sizeof(float) * n_in);
            } else {
                hl_kernels_best()->quant[at](x + t * n_in, xq, n_in);
                hl_dequantize_row(at, xq, xr + t * n_in, n_in);
            }
        }
        for (int T = 1; T <= 5; T += 4) {
            hl_cpu_matmul(p, &m, x, T, y, scratch);
            double worst = 0, worst_unrounded = 0;
            for (int t = 0; t < T; t++)
                for (int r = 0; r < n_out; r++) {
                    hl_cpu_get_row(&m, r, row);
                    double ref = 0, ref_x = 0;
                    for (int i = 0; i < n_in; i++) {
                        ref += (double)row[i] * xr[t * n_in + i];
                        ref_x += (double)row[i] * x[t * n_in + i];
                    }
                    worst = fmax(worst, fabs(ref - y[t * n_out + r]));
                    worst_unrounded = fmax(worst_unrounded, fabs(ref_x - y[t * n_out + r]));
                }
            CHECK(worst < 1e-3);
            CHECK(worst_unrounded < 0.1); /* 8-bit activations on sums of 512 terms of ~0.3 */
        }
        free(xr);
        free(xq);
    }
    free(w), free(x), free(y), free(row), free(scratch), free(q);
    hl_pool_free(p);
}

static void rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float base, int neox) {
    float cs[64];
    hl_cpu_rope_table(cs, n_rot, pos, base, 1.0f, NULL);
    hl_cpu_rope_apply(x, n_heads, head_dim, n_rot, cs, neox);
}

TEST(rope_rotates_pairs_and_keeps_norm) {
    float x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = y[i] = (float)(i + 1);
    rope(y, 2, 8, 8, 0, 10000.0f, 0);
    for (int i = 0; i < 16; i++) CHECK_NEAR(y[i], x[i], 1e-6); /* position 0 is the identity */
    for (int neox = 0; neox < 2; neox++) {
        for (int i = 0; i < 16; i++) y[i] = x[i];
        rope(y, 2, 8, 8, 5, 10000.0f, neox);
        double n0 = 0, n1 = 0;
        for (int i = 0; i < 8; i++) n0 += x[i] * x[i], n1 += y[i] * y[i];
        CHECK_NEAR(n0, n1, 1e-3);
        /* The first pair turns by exactly pos radians (theta_0 = pos). */
        int a = 0, b = neox ? 4 : 1;
        CHECK_NEAR(y[a], x[a] * cosf(5) - x[b] * sinf(5), 1e-5);
        CHECK_NEAR(y[b], x[a] * sinf(5) + x[b] * cosf(5), 1e-5);
    }
}

TEST(rmsnorm_and_softmax) {
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 2}, o[4];
    hl_cpu_rmsnorm(o, x, w, 4, 0.0f);
    float rms = sqrtf((1 + 4 + 9 + 16) / 4.0f);
    CHECK_NEAR(o[3], 4 / rms * 2, 1e-6);
    /* every path's softmax: no overflow at large inputs */
    const hl_vec_ops *paths[2] = {hl_vec_ops_scalar(), hl_vec_ops_best()};
    for (int p = 0; p < 2; p++) {
        float s[3] = {1000, 1000, 1000 - logf(2)};
        paths[p]->softmax(s, 3);
        CHECK_NEAR(s[0], 0.4, 2e-5); /* 1000 - ln 2 is rounded to float */
        CHECK_NEAR(s[2], 0.2, 2e-5);
    }
}

/* The matmul on repacked 8-row groups gives the row kernels' results, for
 * decode and for prefill, on several threads. */
TEST(matmul_packed_matches_rows) {
    const hl_dtype types[] = {HL_Q4_0, HL_Q8_0};
    const int n_in = 320, n_out = 48, T = 7;
    hl_pool *p = hl_pool_new(2);
    uint32_t seed = 3;
    float *w = malloc(sizeof(float) * n_in * n_out), *x = malloc(sizeof(float) * n_in * T);
    float *y0 = malloc(sizeof(float) * n_out * T), *y1 = malloc(sizeof(float) * n_out * T);
    float *scratch = malloc(sizeof(float) * hl_cpu_matmul_scratch(n_in, T, 2));
    for (int i = 0; i < n_in * n_out; i++) w[i] = frand(&seed);
    for (int i = 0; i < n_in * T; i++) x[i] = frand(&seed);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        size_t rb = hl_dtype_row_size(types[ti], n_in), pb = hl_repack_bytes(types[ti], n_in, n_out);
        CHECK(pb > 0);
        uint8_t *q = malloc(rb * n_out), *packed = aligned_alloc(64, (pb + 63) & ~(size_t)63);
        for (int r = 0; r < n_out; r++) hl_quantize_row(types[ti], w + r * n_in, q + r * rb, n_in);
        hl_repack(types[ti], q, rb, n_in, 0, n_out / 8, packed);
        hl_mat plain = {.data = q, .type = types[ti], .n_in = n_in, .n_out = n_out, .row_bytes = rb};
        hl_mat pk = plain;
        pk.packed = packed;
        pk.group_bytes = hl_packed_group_bytes(types[ti], n_in);
        for (int nt = 1; nt <= T; nt += 6) {
            hl_cpu_matmul(p, &plain, x, nt, y0, scratch);
            hl_cpu_matmul(p, &pk, x, nt, y1, scratch);
            double worst = 0;
            for (int i = 0; i < nt * n_out; i++) worst = fmax(worst, fabs(y0[i] - y1[i]));
            CHECK(worst < 1e-4);
        }
        free(q);
        free(packed);
    }
    free(w), free(x), free(y0), free(y1), free(scratch);
    hl_pool_free(p);
}
