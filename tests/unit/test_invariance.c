/* test_invariance.c - batch invariance: the float result for a (weight row,
 * activation row) pair is bit-identical whichever kernel computes it and
 * whatever other rows share the call, and the engine's logits for a token
 * do not depend on the batch it runs in (kernels.h, cpu.h).
 *
 * For every weight type and every path this CPU runs (the others are
 * reported as skipped), on rows of many lengths (leftovers past the
 * kernels' groups of blocks and elements included), memcmp equality of:
 *   - dot with n_a = 2, 3, 4, the row at every position of the call,
 *     against dot with n_a = 1;
 *   - gemm, every tile shape n_w x n_a, against dot with n_a = 1;
 *   - the packed kernels (repack.h) with n_a = 2, 3, 4 against n_a = 1;
 * and on the best path:
 *   - the matmul (threads, tasks, tiles at the matrix's edges) of 2..35
 *     tokens against the matmul of each token alone, rows kept and packed
 *     (on the AMX path, 16 and more run through its tiles);
 *   - a tiny model's logits for every token of a sequence: alone with its
 *     prompt in one batch, against the prompt in chunks of other sizes, one
 *     token at a time, and batched with two other sequences' tokens.
 * The scalar reference's accuracy is test_kernels.c's; here only
 * bit-identical floats pass, as greedy output must not change with the
 * batch.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/backend/cpu/cpu.h"
#include "../../src/backend/cpu/kernels.h"
#include "../../src/backend/cpu/quant.h"
#include "../../src/backend/cpu/repack.h"
#include "../../src/engine/model.h"
#include "../../src/gguf/gguf.h"
#include "../../src/util/pool.h"
#include "test.h"

static uint64_t iv_state;
static uint64_t iv_next(void) { /* splitmix64 */
    uint64_t z = (iv_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float iv_uniform(void) { /* [-1, 1) */
    return (float)((double)(iv_next() >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static const hl_dtype weight_types[] = {HL_F32,  HL_F16,  HL_BF16, HL_Q4_0, HL_Q4_1,
                                        HL_Q5_0, HL_Q5_1, HL_Q8_0, HL_Q2_K, HL_Q3_K,
                                        HL_Q4_K, HL_Q5_K, HL_Q6_K};

/* Row lengths of a type: block counts around the kernels' groups of 4 and
 * 8 blocks (whole groups, leftovers, both); for the float types lengths
 * around their steps of 16, 32 and 64 elements. Returns the count. */
static int row_lengths(hl_dtype wt, int n[10]) {
    static const int plain[] = {1, 7, 16, 33, 64, 100, 517, 2053};
    static const int blocks32[] = {1, 3, 4, 7, 8, 9, 13, 18, 24, 35};
    static const int blocks256[] = {1, 2, 3, 6, 9};
    const int bs = (int)hl_dtype_get(wt)->block_elems;
    const int *src = bs == 1 ? plain : bs == 32 ? blocks32 : blocks256;
    const int count = bs == 1 ? 8 : bs == 32 ? 10 : 5;
    for (int i = 0; i < count; i++) n[i] = src[i] * bs;
    return count;
}

/* Strides past the row, so no kernel can rely on more alignment than the
 * contract's (2 bytes for weight blocks, 4 for activation blocks). */
static size_t w_stride(hl_dtype wt, int n) {
    return hl_dtype_row_size(wt, (uint64_t)n) + 6;
}
static size_t a_stride(hl_dtype wt, int n) {
    const hl_dtype at = hl_act_type(wt);
    const size_t b = at == HL_F32 ? (size_t)n * sizeof(float) : hl_dtype_row_size(at, (uint64_t)n);
    return b + 12;
}

/* n_rows quantized weight rows of wt at stride ws, and HL_DOT_MAX_A
 * activation rows of the paired type at stride as, quantized by the
 * path's own quantizer (one row has an outlier). */
static void make_rows(const hl_kernels *k, hl_dtype wt, int n, int n_rows, uint8_t *w, size_t ws,
                      uint8_t *a, size_t as) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < n_rows; r++) {
        for (int i = 0; i < n; i++) x[i] = iv_uniform() * (0.02f + 0.01f * (float)(r % 5));
        hl_quantize_row(wt, x, w + (size_t)r * ws, n);
    }
    for (int r = 0; r < HL_DOT_MAX_A; r++) {
        for (int i = 0; i < n; i++) x[i] = iv_uniform() * (float)(r + 1);
        if (r == 2) x[n / 2] = 30.0f;
        k->quant[hl_act_type(wt)](x, a + (size_t)r * as, n);
    }
    free(x);
}

/* Counts got in *bad unless it has want's bits; prints the first mismatch. */
static void same(float got, float want, int *bad, const char *what, const hl_kernels *k,
                 hl_dtype wt, int n) {
    if (memcmp(&got, &want, sizeof got) == 0) return;
    if (!*bad)
        fprintf(stderr, "  %s %s n=%d: %s: %.9g, dot alone %.9g\n", k->name, hl_dtype_name(wt), n,
                what, got, want);
    ++*bad;
}

/* Mismatches of dot with n_a = 2..4 (every position) against n_a = 1. */
static int dot_mismatches(const hl_kernels *k, hl_dtype wt, int n) {
    const size_t ws = w_stride(wt, n), as = a_stride(wt, n);
    uint8_t *w = malloc(ws), *a = malloc(as * HL_DOT_MAX_A);
    make_rows(k, wt, n, 1, w, ws, a, as);
    float alone[HL_DOT_MAX_A];
    for (int r = 0; r < HL_DOT_MAX_A; r++) k->dot[wt](n, w, a + r * as, as, 1, &alone[r], 1);
    int bad = 0;
    for (int na = 2; na <= HL_DOT_MAX_A; na++)
        for (int first = 0; first + na <= HL_DOT_MAX_A; first++) {
            float got[3 * HL_DOT_MAX_A];
            k->dot[wt](n, w, a + first * as, as, na, got, 3);
            for (int j = 0; j < na; j++) same(got[3 * j], alone[first + j], &bad, "dot", k, wt, n);
        }
    free(w);
    free(a);
    return bad;
}

/* Mismatches of gemm, every tile shape and place among `rows` weight rows,
 * against dot with n_a = 1. */
static int gemm_mismatches(const hl_kernels *k, hl_dtype wt, int n, int rows) {
    enum { OS = HL_GEMM_ROWS_MAX + 3 }; /* output stride */
    const size_t ws = w_stride(wt, n), as = a_stride(wt, n);
    uint8_t *w = malloc(ws * (size_t)rows), *a = malloc(as * HL_DOT_MAX_A);
    make_rows(k, wt, n, rows, w, ws, a, as);
    float alone[HL_GEMM_ROWS_MAX][HL_DOT_MAX_A];
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < HL_DOT_MAX_A; j++)
            k->dot[wt](n, w + r * ws, a + j * as, as, 1, &alone[r][j], 1);
    int bad = 0;
    for (int nw = 1; nw <= rows; nw++)
        for (int na = 1; na <= HL_DOT_MAX_A; na++)
            for (int r0 = 0; r0 + nw <= rows; r0 += nw) {
                const int a0 = HL_DOT_MAX_A - na; /* the call's activation rows end at the last */
                float got[HL_DOT_MAX_A * OS];
                k->gemm[wt](n, w + r0 * ws, ws, nw, a + a0 * as, as, na, got, OS);
                for (int j = 0; j < na; j++)
                    for (int r = 0; r < nw; r++)
                        same(got[j * OS + r], alone[r0 + r][a0 + j], &bad, "gemm", k, wt, n);
            }
    free(w);
    free(a);
    return bad;
}

TEST(invariance_dot_rows_of_a_call) {
    for (int p = 0; p < HL_PATH_COUNT; p++) {
        const hl_kernels *k = hl_kernels_get((hl_cpu_path)p);
        if (!k) {
            fprintf(stderr, "  invariance: path %d not on this CPU: skipped\n", p);
            continue;
        }
        for (size_t ti = 0; ti < sizeof weight_types / sizeof *weight_types; ti++) {
            const hl_dtype wt = weight_types[ti];
            int lens[10], bad = 0;
            const int nl = row_lengths(wt, lens);
            iv_state = 99 + ti * 13 + (uint64_t)p;
            for (int li = 0; li < nl; li++) bad += dot_mismatches(k, wt, lens[li]);
            if (bad)
                hl_test_fail(__FILE__, __LINE__, "%s %s: %d dot results depend on n_a", k->name,
                             hl_dtype_name(wt), bad);
            hl_test_checks++;
        }
    }
}

TEST(invariance_gemm_tiles_equal_dot) {
    int tested = 0;
    for (int p = 0; p < HL_PATH_COUNT; p++) {
        const hl_kernels *k = hl_kernels_get((hl_cpu_path)p);
        if (!k) continue;
        for (size_t ti = 0; ti < sizeof weight_types / sizeof *weight_types; ti++) {
            const hl_dtype wt = weight_types[ti];
            if (!k->gemm[wt]) continue;
            tested++;
            const int rows = k->gemm_rows[wt] ? k->gemm_rows[wt] : HL_GEMM_MAX_W;
            CHECK(rows >= 1 && rows <= HL_GEMM_ROWS_MAX);
            int lens[10], bad = 0;
            const int nl = row_lengths(wt, lens);
            iv_state = 7 + ti * 31 + (uint64_t)p;
            for (int li = 0; li < nl; li++) bad += gemm_mismatches(k, wt, lens[li], rows);
            if (bad)
                hl_test_fail(__FILE__, __LINE__, "%s %s: %d gemm results differ from dot", k->name,
                             hl_dtype_name(wt), bad);
            hl_test_checks++;
        }
    }
    fprintf(stderr, "  invariance: %d gemm kernels tested\n", tested);
}

TEST(invariance_packed_rows_of_a_call) {
    const hl_dtype types[] = {HL_Q4_0, HL_Q8_0};
    const int blocks[] = {1, 3, 8, 9, 18, 35};
    for (int p = 0; p < HL_PATH_COUNT; p++) {
        const hl_kernels *k = hl_kernels_get((hl_cpu_path)p);
        for (size_t ti = 0; ti < 2 && k; ti++) {
            const hl_dtype wt = types[ti];
            const hl_packed_fn kern = hl_packed_kernel_path(wt, (hl_cpu_path)p);
            CHECK(kern != NULL);
            if (!kern) continue;
            iv_state = 5 + ti + 10 * (uint64_t)p;
            int bad = 0;
            for (size_t bi = 0; bi < sizeof blocks / sizeof *blocks; bi++) {
                const int n = blocks[bi] * HL_QK;
                const size_t rb = hl_dtype_row_size(wt, (uint64_t)n), as = a_stride(wt, n);
                const size_t gb = hl_packed_group_bytes(wt, n);
                uint8_t *w = malloc(rb * HL_PACK_ROWS), *a = malloc(as * HL_DOT_MAX_A);
                uint8_t *pk = aligned_alloc(64, (gb + 63) & ~(size_t)63);
                make_rows(k, wt, n, HL_PACK_ROWS, w, rb, a, as);
                hl_repack(wt, w, rb, n, 0, 1, pk);
                float alone[HL_DOT_MAX_A][HL_PACK_ROWS];
                for (int j = 0; j < HL_DOT_MAX_A; j++)
                    kern(n, pk, a + j * as, as, 1, alone[j], HL_PACK_ROWS);
                for (int na = 2; na <= HL_DOT_MAX_A; na++)
                    for (int first = 0; first + na <= HL_DOT_MAX_A; first++) {
                        float got[HL_DOT_MAX_A][HL_PACK_ROWS + 1];
                        kern(n, pk, a + first * as, as, na, got[0], HL_PACK_ROWS + 1);
                        for (int j = 0; j < na; j++)
                            bad += memcmp(got[j], alone[first + j], sizeof alone[0]) != 0;
                    }
                free(w);
                free(a);
                free(pk);
            }
            if (bad)
                hl_test_fail(__FILE__, __LINE__, "%s packed %s: %d calls depend on n_a", k->name,
                             hl_dtype_name(wt), bad);
            hl_test_checks++;
        }
    }
}

/* One matrix of n_out rows (repacked where the best path's matmul would
 * read it packed): tokens 0..nt-1 together against each alone. */
static int matmul_mismatches(hl_pool *pool, hl_dtype wt, int n_in, int n_out, const float *x, int T,
                             float *scratch, bool *packed_out) {
    const size_t rb = hl_dtype_row_size(wt, (uint64_t)n_in);
    uint8_t *q = malloc(rb * (size_t)n_out);
    float *w = malloc(sizeof(float) * (size_t)n_in);
    float *all = malloc(sizeof(float) * (size_t)n_out * T);
    float *one = malloc(sizeof(float) * (size_t)n_out);
    for (int r = 0; r < n_out; r++) {
        for (int i = 0; i < n_in; i++) w[i] = iv_uniform() * 0.05f;
        hl_quantize_row(wt, w, q + (size_t)r * rb, n_in);
    }
    hl_mat m = {.data = q, .type = wt, .n_in = n_in, .n_out = n_out, .row_bytes = rb};
    const size_t pb = hl_repack_bytes(wt, n_in, n_out);
    void *packed = NULL;
    if (pb && hl_packed_kernel(wt)) {
        packed = aligned_alloc(64, (pb + 63) & ~(size_t)63);
        hl_repack(wt, q, rb, n_in, 0, n_out / HL_PACK_ROWS, packed);
        m.packed = packed;
        m.group_bytes = hl_packed_group_bytes(wt, n_in);
    }
    int bad = 0;
    for (int nt = 2; nt <= T; nt += 3) {
        hl_cpu_matmul(pool, &m, x, nt, all, scratch);
        for (int t = 0; t < nt; t++) {
            hl_cpu_matmul(pool, &m, x + (size_t)t * n_in, 1, one, scratch);
            bad += memcmp(one, all + (size_t)t * n_out, sizeof(float) * (size_t)n_out) != 0;
        }
    }
    *packed_out = packed != NULL;
    free(q), free(w), free(all), free(one), free(packed);
    return bad;
}

TEST(invariance_matmul_tokens_alone_or_together) {
    const int n_in = 512, T = 35; /* on the AMX path: two tiles of 16 and 3 more */
    hl_pool *pool = hl_pool_new(3);
    CHECK(pool != NULL);
    if (!pool) return;
    float *x = malloc(sizeof(float) * (size_t)n_in * T);
    float *scratch = malloc(sizeof(float) * hl_cpu_matmul_scratch(n_in, T, 3));
    iv_state = 2024;
    for (int i = 0; i < n_in * T; i++) x[i] = iv_uniform() * (float)(1 + i % 3);
    for (size_t ti = 0; ti < sizeof weight_types / sizeof *weight_types; ti++) {
        for (int n_out = 37; n_out <= 40; n_out += 3) { /* 40 rows repack for Q4_0 / Q8_0 */
            bool packed;
            const hl_dtype wt = weight_types[ti];
            const int bad = matmul_mismatches(pool, wt, n_in, n_out, x, T, scratch, &packed);
            if (bad)
                hl_test_fail(__FILE__, __LINE__,
                             "%s n_out=%d%s: %d tokens differ alone and batched", hl_dtype_name(wt),
                             n_out, packed ? " (packed)" : "", bad);
            hl_test_checks++;
        }
    }
    free(x), free(scratch);
    hl_pool_free(pool);
}

/* --- engine ---------------------------------------------------------------
 * A tiny llama model (2 layers, 256 embd, 4 heads over 2 KV heads, 75
 * tokens: the output matrix ends in a partial tile and does not repack)
 * with random weights of one type, written with the GGUF writer. */

enum { TE = 256, TL = 2, TH = 4, THKV = 2, TF = 512, TV = 75, TPROMPT = 21, TGEN = 7 }; /* a prompt of 21: AMX tiles of 16 and 5 more */

/* Tensor `name` of n_out rows of n_in values mean + U(-std, std). */
static int add_tensor(gguf_writer *w, const char *name, hl_dtype t, int n_in, int n_out, float std,
                      float mean, hl_err *e) {
    const size_t rb = hl_dtype_row_size(t, (uint64_t)n_in);
    uint8_t *data = malloc(rb * (size_t)n_out);
    float *row = malloc(sizeof(float) * (size_t)n_in);
    for (int r = 0; r < n_out; r++) {
        for (int i = 0; i < n_in; i++) row[i] = mean + iv_uniform() * std;
        hl_quantize_row(t, row, data + (size_t)r * rb, n_in);
    }
    const uint64_t ne[2] = {(uint64_t)n_in, (uint64_t)n_out};
    const int rc = gguf_add_tensor(w, name, t, n_out > 1 ? 2 : 1, ne, data, e);
    free(data), free(row);
    return rc;
}

static int add_layer(gguf_writer *w, int l, hl_dtype t, hl_err *e) {
    const int hd = TE / TH;
    char n[64];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", l, s), n)
    return add_tensor(w, NAME("attn_norm.weight"), HL_F32, TE, 1, 0.1f, 1.0f, e) < 0 ||
                   add_tensor(w, NAME("ffn_norm.weight"), HL_F32, TE, 1, 0.1f, 1.0f, e) < 0 ||
                   add_tensor(w, NAME("attn_q.weight"), t, TE, TH * hd, 0.15f, 0, e) < 0 ||
                   add_tensor(w, NAME("attn_k.weight"), t, TE, THKV * hd, 0.15f, 0, e) < 0 ||
                   add_tensor(w, NAME("attn_v.weight"), t, TE, THKV * hd, 0.15f, 0, e) < 0 ||
                   add_tensor(w, NAME("attn_output.weight"), t, TH * hd, TE, 0.1f, 0, e) < 0 ||
                   add_tensor(w, NAME("ffn_gate.weight"), t, TE, TF, 0.1f, 0, e) < 0 ||
                   add_tensor(w, NAME("ffn_up.weight"), t, TE, TF, 0.1f, 0, e) < 0 ||
                   add_tensor(w, NAME("ffn_down.weight"), t, TF, TE, 0.1f, 0, e) < 0
               ? -1
               : 0;
#undef NAME
}

static int write_tiny_model(const char *path, hl_dtype t, hl_err *e) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return hl_errf(e, "out of memory");
    char names[TV][16];
    const char *toks[TV];
    for (int i = 0; i < TV; i++) {
        static const char *const special[] = {"<unk>", "<s>", "</s>"};
        snprintf(names[i], sizeof names[i], "t%d", i);
        toks[i] = i < 3 ? special[i] : names[i];
    }
    int rc = -1;
    if (gguf_set_str(w, "general.architecture", "llama", e) < 0 ||
        gguf_set_u32(w, "llama.context_length", 256, e) < 0 ||
        gguf_set_u32(w, "llama.embedding_length", TE, e) < 0 ||
        gguf_set_u32(w, "llama.block_count", TL, e) < 0 ||
        gguf_set_u32(w, "llama.feed_forward_length", TF, e) < 0 ||
        gguf_set_u32(w, "llama.attention.head_count", TH, e) < 0 ||
        gguf_set_u32(w, "llama.attention.head_count_kv", THKV, e) < 0 ||
        gguf_set_f32(w, "llama.rope.freq_base", 10000.0f, e) < 0 ||
        gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f, e) < 0 ||
        gguf_set_str(w, "tokenizer.ggml.model", "llama", e) < 0 ||
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, TV, e) < 0 ||
        add_tensor(w, "token_embd.weight", t, TE, TV, 1.0f, 0, e) < 0 || /* tied output */
        add_tensor(w, "output_norm.weight", HL_F32, TE, 1, 0.1f, 1.0f, e) < 0)
        goto out;
    for (int l = 0; l < TL; l++)
        if (add_layer(w, l, t, e) < 0) goto out;
    rc = gguf_writer_write(w, path, e);
out:
    gguf_writer_free(w);
    return rc;
}

/* One sequence-0 token's logits per row, in the order fed. */
typedef struct run_logits {
    float v[TPROMPT + TGEN][TV];
    int n;
} run_logits;

/* A token of sequence s (1 or 2) continuing it, for batch b. */
static void other_token(hl_ctx *c, int s, int o, int b, const int32_t *seq, int m, int32_t *tok,
                        int32_t *pos) {
    *tok = 3 + (o * 7 + b) % (TV - 3);
    *pos = hl_ctx_seq_len(c, s);
    for (int j = 0; j < m; j++) *pos += seq[j] == s; /* earlier in this batch */
}

/* Feeds ids[0..n) to sequence 0 in batches of sizes[0], sizes[1], ...
 * (cycled), each of its tokens wanting logits, appended to out. Each
 * batch also carries `others` tokens of sequences 1 and 2, alternating
 * with sequence 0's (other, own, other, own, ..., then the rest), some of
 * them wanting logits. */
static int feed(hl_ctx *c, const int32_t *ids, int n, const int *sizes, int n_sizes, int others,
                run_logits *out, hl_err *e) {
    for (int done = 0, b = 0; done < n; b++) {
        const int k = n - done < sizes[b % n_sizes] ? n - done : sizes[b % n_sizes];
        int32_t tok[64], pos[64], seq[64];
        bool want[64];
        int m = 0, mine[64], o = 0, s = 0;
        while (s < k || o < others) {
            if (o < others && (s >= k || m % 2 == 0)) {
                seq[m] = 1 + o % 2;
                other_token(c, seq[m], o, b, seq, m, &tok[m], &pos[m]);
                want[m] = (o + b) % 3 == 0;
                o++;
            } else {
                tok[m] = ids[done + s];
                pos[m] = hl_ctx_seq_len(c, 0) + s;
                seq[m] = 0;
                want[m] = true;
                mine[s++] = m;
            }
            m++;
        }
        const hl_batch batch = {.n = m, .token = tok, .pos = pos, .seq = seq, .want_logits = want};
        if (hl_ctx_decode(c, &batch, e) < 0) return -1;
        for (int j = 0; j < k; j++) {
            int idx = 0; /* among the batch's tokens that want logits */
            for (int q = 0; q < mine[j]; q++) idx += want[q];
            memcpy(out->v[out->n++], hl_ctx_logits(c, idx), sizeof out->v[0]);
        }
        done += k;
    }
    return 0;
}

/* Sequences 1 and 2 get a history of their own (2 + 2 s tokens). */
static int other_history(hl_ctx *c, hl_err *e) {
    for (int s = 1; s <= 2; s++) {
        int32_t tok[6], pos[6], seq[6];
        bool want[6] = {0};
        for (int i = 0; i < 6; i++) tok[i] = 3 + (i * 5 + s) % (TV - 3), pos[i] = i, seq[i] = s;
        const hl_batch b = {
            .n = 2 + 2 * s, .token = tok, .pos = pos, .seq = seq, .want_logits = want};
        if (hl_ctx_decode(c, &b, e) < 0) return -1;
    }
    return 0;
}

/* The prompt in batches of `sizes` with `others` tokens of other sequences
 * in each, then TGEN tokens one by one (with 2 other tokens each when
 * others > 0), from an empty cache. */
static int run_seq0(hl_ctx *c, const int32_t *ids, const int *sizes, int n_sizes, int others,
                    run_logits *out, hl_err *e) {
    static const int one[] = {1};
    for (int s = 0; s < 3; s++) hl_ctx_seq_truncate(c, s, 0);
    out->n = 0;
    if (others && other_history(c, e) < 0) return -1;
    if (feed(c, ids, TPROMPT, sizes, n_sizes, others, out, e) < 0) return -1;
    return feed(c, ids + TPROMPT, TGEN, one, 1, others ? 2 : 0, out, e);
}

TEST(invariance_engine_logits_alone_batched_and_chunked) {
    const hl_dtype types[] = {HL_F16, HL_Q4_0, HL_Q4_1, HL_Q8_0, HL_Q4_K, HL_Q5_K, HL_Q6_K};
    static const int whole[] = {TPROMPT}, chunks[] = {5, 1, 4, 3}, one[] = {1};
    const struct {
        const int *sizes;
        int n_sizes, others;
        const char *what;
    } runs[] = {
        {chunks, 4, 0, "prompt in chunks 5 1 4 3"},
        {one, 1, 0, "prompt one token at a time"},
        {whole, 1, 5, "prompt batched with other sequences"},
        {chunks, 4, 3, "chunks batched with other sequences"},
    };
    int32_t ids[TPROMPT + TGEN];
    for (int i = 0; i < TPROMPT + TGEN; i++) ids[i] = 3 + (i * 11) % (TV - 3);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        hl_err e = {0};
        const char *path = hl_test_tmp("invariance.gguf");
        hl_model *m = NULL;
        hl_ctx *c = NULL;
        iv_state = 11 + ti;
        if (write_tiny_model(path, types[ti], &e) < 0 || hl_model_load(&m, path, &e) < 0 ||
            hl_ctx_new(&c, m,
                       &(hl_ctx_params){
                           .n_ctx = 64, .n_seq = 3, .n_batch = 32, .n_logits = 32, .n_threads = 3},
                       &e) < 0) {
            hl_test_fail(__FILE__, __LINE__, "%s model: %s", hl_dtype_name(types[ti]), e.msg);
            hl_model_free(m);
            continue;
        }
        static run_logits ref, got;
        CHECK(run_seq0(c, ids, whole, 1, 0, &ref, &e) == 0); /* alone, prompt in one batch */
        for (size_t ri = 0; ri < sizeof runs / sizeof *runs; ri++) {
            CHECK(run_seq0(c, ids, runs[ri].sizes, runs[ri].n_sizes, runs[ri].others, &got, &e) ==
                  0);
            CHECK_EQ_INT(got.n, TPROMPT + TGEN);
            int bad = 0;
            for (int i = 0; i < got.n; i++) bad += memcmp(got.v[i], ref.v[i], sizeof ref.v[0]) != 0;
            if (bad)
                hl_test_fail(__FILE__, __LINE__,
                             "%s: %s: %d of %d tokens' logits differ from alone",
                             hl_dtype_name(types[ti]), runs[ri].what, bad, got.n);
            hl_test_checks++;
        }
        hl_ctx_free(c);
        hl_model_free(m);
    }
}

/* hl_ctx_argmax is the first index of the largest logit of a row, the
 * token greedy sampling picks; rows past the batch's give -1. */
TEST(engine_argmax_matches_logits) {
    hl_err e = {0};
    const char *path = hl_test_tmp("argmax.gguf");
    hl_model *m = NULL;
    hl_ctx *c = NULL;
    iv_state = 5;
    if (write_tiny_model(path, HL_Q4_0, &e) < 0 || hl_model_load(&m, path, &e) < 0 ||
        hl_ctx_new(&c, m, &(hl_ctx_params){.n_ctx = 32, .n_seq = 1, .n_batch = 8, .n_logits = 8}, &e) < 0) {
        hl_test_fail(__FILE__, __LINE__, "model: %s", e.msg);
        hl_model_free(m);
        return;
    }
    int32_t tok[6], pos[6], seq[6];
    bool want[6];
    for (int i = 0; i < 6; i++) tok[i] = 3 + 7 * i, pos[i] = i, seq[i] = 0, want[i] = true;
    CHECK(hl_ctx_decode(c, &(hl_batch){.n = 6, .token = tok, .pos = pos, .seq = seq, .want_logits = want}, &e) == 0);
    int n_vocab = hl_model_hparams(m)->n_vocab;
    for (int i = 0; i < 6; i++) {
        const float *l = hl_ctx_logits(c, i);
        int best = 0;
        for (int k = 1; k < n_vocab; k++)
            if (l[k] > l[best]) best = k;
        CHECK_EQ_INT(hl_ctx_argmax(c, i), best);
    }
    CHECK_EQ_INT(hl_ctx_argmax(c, 6), -1);
    CHECK_EQ_INT(hl_ctx_argmax(c, -1), -1);
    hl_ctx_free(c);
    hl_model_free(m);
}
