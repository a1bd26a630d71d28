/* cmd_synth.c - `heylookllm synth`: writes a GGUF model of a supported
 * architecture with seeded random weights (normal, std 0.02; norms 1), in any
 * supported weight type, with the tokenizer copied from another GGUF file.
 *
 * Shapes come from ../shared/ANCHORS.md by name or from explicit dimensions.
 * The output is a pure function of the arguments: every row's random stream
 * is seeded from (seed, tensor name, row), so threads do not change it.
 * A K-quant type on a tensor whose rows are not a multiple of 256 falls back
 * as llama.cpp's quantizer does (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K ->
 * Q5_1, Q6_K -> Q8_0), and says so on stderr.
 * --type Q4_K_M writes llama.cpp's Q4_K_M mix: Q4_K, with attn_v and
 * ffn_down in Q6_K on the layers its quantizer gives more bits (the first
 * and last eighth, and every third between) and a Q6_K output matrix.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../backend/cpu/quant.h"
#include "../gguf/gguf.h"
#include "../util/pool.h"
#include "cli.h"

typedef struct shape {
    const char *name;
    int n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab;
    float rope_base;
} shape;

static const shape SHAPES[] = {
    {"smollm2-135m-like", 576, 30, 9, 3, 1536, 49152, 100000.0f},
    {"llama32-1b-like", 2048, 16, 32, 8, 8192, 128256, 500000.0f},
    {"llama31-8b-like", 4096, 32, 32, 8, 14336, 128256, 500000.0f},
};

typedef struct synth_opts {
    const char *arch, *vocab_from, *out;
    shape s;
    int type, output_type;
    uint64_t seed;
    int n_swa;
    bool untied;
    bool km_mix; /* Q4_K_M: Q6_K attn_v / ffn_down on some layers */
    int n_threads;
} synth_opts;

static void usage(void) {
    fprintf(stderr,
            "usage: heylookllm synth [--arch llama|qwen2|gemma3] (--shape NAME | --n-embd N --n-layer N\n"
            "         --n-head N --n-head-kv N --n-ff N [--n-vocab N]) --type TYPE --vocab-from FILE\n"
            "         [--output-type TYPE] [--untied] [--sliding-window N] [--seed S] [-t THREADS] -o OUT.gguf\n"
            "shapes:");
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) fprintf(stderr, " %s", SHAPES[i].name);
    fprintf(stderr, "\ntypes: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M (mix)\n");
}

/* ---- deterministic random numbers ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void fill_normal(float *x, int n, float std, uint64_t state) {
    for (int i = 0; i < n; i += 2) {
        double u1 = ((splitmix64(&state) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (splitmix64(&state) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(2 * M_PI * u2)) * std;
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2 * M_PI * u2)) * std;
    }
}

/* ---- tensors ---- */

typedef struct gen_job {
    uint64_t seed;
    int type, n_in, n_rows;
    float std;
    uint8_t *out;
    size_t row_bytes;
    float *scratch; /* per thread n_in floats */
} gen_job;

static void gen_rows(void *arg, int task, int thread) {
    gen_job *j = arg;
    float *row = j->scratch + (size_t)thread * j->n_in;
    for (int r = task * 64; r < j->n_rows && r < (task + 1) * 64; r++) {
        fill_normal(row, j->n_in, j->std, j->seed ^ ((uint64_t)r * 0xD1B54A32D192ED03ull));
        hl_quantize_row(j->type, row, j->out + (size_t)r * j->row_bytes, j->n_in);
    }
}

static int fallback_type(int t, int n_in) {
    if (hl_dtype_row_size((uint32_t)t, (uint64_t)n_in)) return t;
    switch (t) {
    case HL_Q2_K: case HL_Q3_K: return HL_Q4_0;
    case HL_Q4_K: return HL_Q5_0;
    case HL_Q5_K: return HL_Q5_1;
    case HL_Q6_K: return HL_Q8_0;
    default: return -1;
    }
}

static int add_matrix(gguf_writer *w, hl_pool *pool, const synth_opts *o, const char *name, int type,
                      int n_in, int n_rows, float std, hl_err *e) {
    int t = fallback_type(type, n_in);
    if (t < 0)
        return hl_errf(e, "synth: tensor '%s' has rows of %d, not a multiple of %s's block of %u",
                       name, n_in, hl_dtype_name((uint32_t)type), hl_dtype_get((uint32_t)type)->block_elems);
    if (t != type)
        fprintf(stderr, "synth: %s: rows of %d are not a multiple of 256; using %s instead of %s\n",
                name, n_in, hl_dtype_name((uint32_t)t), hl_dtype_name((uint32_t)type));
    gen_job j = {.seed = o->seed ^ hash_str(name), .type = t, .n_in = n_in, .n_rows = n_rows, .std = std,
                 .row_bytes = hl_dtype_row_size((uint32_t)t, (uint64_t)n_in)};
    j.out = malloc(j.row_bytes * (size_t)n_rows);
    j.scratch = malloc(sizeof(float) * (size_t)n_in * (size_t)hl_pool_threads(pool));
    int rc = -1;
    if (!j.out || !j.scratch) {
        hl_errf(e, "synth: out of memory for tensor '%s'", name);
    } else {
        hl_pool_run(pool, gen_rows, &j, (n_rows + 63) / 64);
        uint64_t ne[2] = {(uint64_t)n_in, (uint64_t)n_rows};
        rc = gguf_add_tensor(w, name, (uint32_t)t, n_rows > 1 ? 2 : 1, ne, j.out, e);
    }
    free(j.out);
    free(j.scratch);
    return rc;
}

static int add_vector(gguf_writer *w, const synth_opts *o, const char *name, int n, float mean,
                      float std, hl_err *e) {
    float *v = malloc(sizeof(float) * (size_t)n);
    if (!v) return hl_errf(e, "synth: out of memory");
    fill_normal(v, n, std, o->seed ^ hash_str(name));
    for (int i = 0; i < n; i++) v[i] += mean;
    uint64_t ne[1] = {(uint64_t)n};
    int rc = gguf_add_tensor(w, name, HL_F32, 1, ne, v, e);
    free(v);
    return rc;
}

/* ---- tokenizer copy, padded or trimmed to n_vocab ---- */

/* An open-addressing set of the new vocabulary's token texts. */
typedef struct text_set {
    char **texts;
    int32_t *slots;
    size_t cap;
} text_set;

static bool set_has(const text_set *ts, const char *s) {
    for (size_t h = hash_str(s) & (ts->cap - 1); ts->slots[h] >= 0; h = (h + 1) & (ts->cap - 1))
        if (!strcmp(ts->texts[ts->slots[h]], s)) return true;
    return false;
}

/* Merges ("a b") whose parts and result all survive in the trimmed
 * vocabulary, as new C strings; NULL on out-of-memory. */
static char **trim_merges(const gguf_array *mg, char **texts, int n_vocab, uint64_t *n_kept) {
    text_set ts = {.texts = texts, .cap = 1};
    while (ts.cap < (size_t)n_vocab * 2) ts.cap <<= 1;
    ts.slots = malloc(sizeof(int32_t) * ts.cap);
    uint64_t nm = gguf_arr_len(mg);
    char **kept = calloc(nm ? nm : 1, sizeof *kept);
    if (!ts.slots || !kept) {
        free(ts.slots);
        free(kept);
        return NULL;
    }
    memset(ts.slots, 0xff, sizeof(int32_t) * ts.cap);
    for (int i = 0; i < n_vocab; i++) {
        size_t h = hash_str(texts[i]) & (ts.cap - 1);
        while (ts.slots[h] >= 0) h = (h + 1) & (ts.cap - 1);
        ts.slots[h] = i;
    }
    *n_kept = 0;
    for (uint64_t i = 0; i < nm; i++) {
        hl_str s;
        char left[512], joined[512];
        if (gguf_arr_str(mg, i, &s) < 0 || s.len >= sizeof left) continue;
        memcpy(left, s.ptr, s.len);
        left[s.len] = 0;
        char *sp = strchr(left, ' ');
        if (!sp) continue;
        *sp = 0;
        snprintf(joined, sizeof joined, "%s%s", left, sp + 1);
        if (!set_has(&ts, left) || !set_has(&ts, sp + 1) || !set_has(&ts, joined)) continue;
        if (!(kept[*n_kept] = strndup(s.ptr, s.len))) break;
        ++*n_kept;
    }
    free(ts.slots);
    return kept;
}

static int copy_tokenizer(gguf_writer *w, const gguf_file *src, int n_vocab, hl_err *e) {
    const gguf_array *toks;
    if (gguf_get_arr(src, "tokenizer.ggml.tokens", &toks) < 0 || gguf_arr_type(toks) != GGUF_VT_STRING)
        return hl_errf(e, "synth: the --vocab-from file has no tokenizer.ggml.tokens");
    uint64_t have = gguf_arr_len(toks);
    char **texts = calloc((size_t)n_vocab, sizeof *texts);
    if (!texts) return hl_errf(e, "synth: out of memory");
    int rc = -1;
    for (int i = 0; i < n_vocab; i++) {
        hl_str s = {0};
        char pad[32];
        if ((uint64_t)i < have) {
            gguf_arr_str(toks, (uint64_t)i, &s);
        } else {
            s.len = (uint64_t)snprintf(pad, sizeof pad, "<|synth_pad_%d|>", i);
            s.ptr = pad;
        }
        if (!(texts[i] = strndup(s.ptr, s.len))) goto out;
    }
    for (uint64_t k = 0; k < gguf_kv_count(src); k++) {
        const gguf_kv *kv = gguf_kv_at(src, k);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (strncmp(key, "tokenizer.", 10)) continue;
        bool vocab_sized = !strcmp(key, "tokenizer.ggml.tokens") ||
                           !strcmp(key, "tokenizer.ggml.scores") ||
                           !strcmp(key, "tokenizer.ggml.token_type");
        bool is_id = strstr(key, "_token_id") != NULL;
        bool is_merges = !strcmp(key, "tokenizer.ggml.merges");
        if ((uint64_t)n_vocab == have || !(vocab_sized || is_id || is_merges)) {
            if (gguf_set_kv_from(w, kv, e) < 0) goto out;
        } else if (is_id) {
            /* A special token the trim removed is dropped. */
            if (kv->val.v.u64 < (uint64_t)n_vocab && gguf_set_kv_from(w, kv, e) < 0) goto out;
        } else if (!strcmp(key, "tokenizer.ggml.tokens")) {
            if (gguf_set_arr_str(w, key, (const char *const *)texts, (uint64_t)n_vocab, e) < 0) goto out;
        } else if (is_merges) {
            uint64_t n_kept = 0;
            char **kept = (uint64_t)n_vocab < have ? trim_merges(kv->val.v.arr, texts, n_vocab, &n_kept) : NULL;
            if ((uint64_t)n_vocab > have) {
                if (gguf_set_kv_from(w, kv, e) < 0) goto out;
                continue;
            }
            int r = kept ? gguf_set_arr_str(w, key, (const char *const *)kept, n_kept, e)
                         : hl_errf(e, "synth: out of memory");
            for (uint64_t i = 0; kept && i < n_kept; i++) free(kept[i]);
            free(kept);
            if (r < 0) goto out;
        } else {
            /* scores (F32) or token types (I32): copied, padded with 0 / "unused" (5). */
            const gguf_array *a = kv->val.v.arr;
            gguf_vtype et = gguf_arr_type(a);
            if (et != GGUF_VT_F32 && et != GGUF_VT_I32) {
                hl_errf(e, "synth: %s has element type %d, expected F32 or I32", key, (int)et);
                goto out;
            }
            uint32_t *buf = malloc(sizeof(uint32_t) * (size_t)n_vocab);
            if (!buf) goto out;
            const uint8_t *src_data = gguf_arr_data(a);
            for (int i = 0; i < n_vocab; i++) {
                if ((uint64_t)i < gguf_arr_len(a)) memcpy(&buf[i], src_data + 4 * (size_t)i, 4);
                else buf[i] = et == GGUF_VT_I32 ? 5u : 0u; /* 0.0f is all zero bits */
            }
            int r = gguf_set_arr(w, key, et, buf, (uint64_t)n_vocab, e);
            free(buf);
            if (r < 0) goto out;
        }
    }
    rc = 0;
out:
    for (int i = 0; i < n_vocab; i++) free(texts[i]);
    free(texts);
    return rc;
}

/* ---- the model ---- */

static int write_model(const synth_opts *o, const gguf_file *vocab, hl_err *e) {
    const shape *s = &o->s;
    bool gemma = !strcmp(o->arch, "gemma3"), qwen = !strcmp(o->arch, "qwen2");
    int hd = s->n_embd / s->n_head;
    gguf_writer *w = gguf_writer_new();
    hl_pool *pool = hl_pool_new(o->n_threads > 0 ? o->n_threads : hl_cpu_count());
    int rc = -1;
    if (!w || !pool) {
        hl_errf(e, "synth: out of memory");
        goto out;
    }
    char key[128], name[160];
#define ARCH_KEY(k) (snprintf(key, sizeof key, "%s.%s", o->arch, k), key)
    if (gguf_set_str(w, "general.architecture", o->arch, e) < 0) goto out;
    snprintf(name, sizeof name, "heylook synthetic %s %s (seed %llu)", o->arch,
             hl_dtype_name((uint32_t)o->type), (unsigned long long)o->seed);
    if (gguf_set_str(w, "general.name", name, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("context_length"), 8192, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("embedding_length"), (uint32_t)s->n_embd, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("block_count"), (uint32_t)s->n_layer, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)s->n_ff, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)s->n_head, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("attention.key_length"), (uint32_t)hd, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("attention.value_length"), (uint32_t)hd, e) < 0 ||
        gguf_set_u32(w, ARCH_KEY("rope.dimension_count"), (uint32_t)hd, e) < 0 ||
        gguf_set_f32(w, ARCH_KEY("rope.freq_base"), s->rope_base, e) < 0 ||
        gguf_set_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), gemma ? 1e-6f : 1e-5f, e) < 0)
        goto out;
    if (gemma && (gguf_set_u32(w, ARCH_KEY("attention.sliding_window"), (uint32_t)o->n_swa, e) < 0 ||
                  gguf_set_f32(w, ARCH_KEY("rope.freq_base_swa"), 10000.0f, e) < 0))
        goto out;
#undef ARCH_KEY
    if (copy_tokenizer(w, vocab, s->n_vocab, e) < 0) goto out;

    int E = s->n_embd, qd = s->n_head * hd, kvd = s->n_head_kv * hd;
    const float std = 0.02f;
    if (add_matrix(w, pool, o, "token_embd.weight", o->untied ? o->type : o->output_type, E,
                   s->n_vocab, std, e) < 0)
        goto out;
    if (o->untied && add_matrix(w, pool, o, "output.weight", o->output_type, E, s->n_vocab, std, e) < 0)
        goto out;
    if (add_vector(w, o, "output_norm.weight", E, 1.0f, 0.1f, e) < 0) goto out;
    for (int i = 0; i < s->n_layer; i++) {
        char n[96];
        /* llama.cpp's use_more_bits(i, n) for the Q4_K_M mix */
        int L = s->n_layer;
        bool more = i < L / 8 || i >= 7 * L / 8 || (i - L / 8) % 3 == 2;
        int vd_type = o->km_mix && more ? HL_Q6_K : o->type;
#define NAME(x) (snprintf(n, sizeof n, "blk.%d.%s", i, x), n)
        if (add_vector(w, o, NAME("attn_norm.weight"), E, 1.0f, 0.1f, e) < 0 ||
            add_matrix(w, pool, o, NAME("attn_q.weight"), o->type, E, qd, std, e) < 0 ||
            add_matrix(w, pool, o, NAME("attn_k.weight"), o->type, E, kvd, std, e) < 0 ||
            add_matrix(w, pool, o, NAME("attn_v.weight"), vd_type, E, kvd, std, e) < 0 ||
            add_matrix(w, pool, o, NAME("attn_output.weight"), o->type, qd, E, std, e) < 0 ||
            add_vector(w, o, NAME("ffn_norm.weight"), E, 1.0f, 0.1f, e) < 0 ||
            add_matrix(w, pool, o, NAME("ffn_gate.weight"), o->type, E, s->n_ff, std, e) < 0 ||
            add_matrix(w, pool, o, NAME("ffn_up.weight"), o->type, E, s->n_ff, std, e) < 0 ||
            add_matrix(w, pool, o, NAME("ffn_down.weight"), vd_type, s->n_ff, E, std, e) < 0)
            goto out;
        if (qwen && (add_vector(w, o, NAME("attn_q.bias"), qd, 0.0f, 0.1f, e) < 0 ||
                     add_vector(w, o, NAME("attn_k.bias"), kvd, 0.0f, 0.1f, e) < 0 ||
                     add_vector(w, o, NAME("attn_v.bias"), kvd, 0.0f, 0.1f, e) < 0))
            goto out;
        if (gemma && (add_vector(w, o, NAME("attn_q_norm.weight"), hd, 1.0f, 0.1f, e) < 0 ||
                      add_vector(w, o, NAME("attn_k_norm.weight"), hd, 1.0f, 0.1f, e) < 0 ||
                      add_vector(w, o, NAME("post_attention_norm.weight"), E, 1.0f, 0.1f, e) < 0 ||
                      add_vector(w, o, NAME("post_ffw_norm.weight"), E, 1.0f, 0.1f, e) < 0))
            goto out;
#undef NAME
    }
    rc = gguf_writer_write(w, o->out, e);
out:
    hl_pool_free(pool);
    gguf_writer_free(w);
    return rc;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cmd_synth(int argc, char **argv) {
    synth_opts o = {.arch = "llama", .type = -1, .output_type = -1, .seed = 42, .n_swa = 512};
    const char *shape_name = NULL;
    int dims[6] = {0}; /* embd layer head head_kv ff vocab */
    static const char *const DIM_OPTS[6] = {"--n-embd", "--n-layer", "--n-head", "--n-head-kv", "--n-ff", "--n-vocab"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int d = -1;
        for (int k = 0; k < 6; k++)
            if (!strcmp(a, DIM_OPTS[k])) d = k;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--untied")) {
            o.untied = true;
            continue;
        } else if (!v) {
            fprintf(stderr, "heylookllm synth: option '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        if (d >= 0) {
            if (parse_int(v, 1, 1 << 20, &dims[d]) < 0) {
                fprintf(stderr, "heylookllm synth: %s wants a positive integer, got '%s'\n", a, v);
                return 2;
            }
        } else if (!strcmp(a, "--arch")) o.arch = v;
        else if (!strcmp(a, "--shape")) shape_name = v;
        else if (!strcmp(a, "--type")) {
            o.km_mix = !strcasecmp(v, "Q4_K_M");
            o.type = o.km_mix ? HL_Q4_K : hl_dtype_from_name(v);
        }
        else if (!strcmp(a, "--output-type")) o.output_type = hl_dtype_from_name(v);
        else if (!strcmp(a, "--vocab-from")) o.vocab_from = v;
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--sliding-window")) {
            if (parse_int(v, 1, 1 << 20, &o.n_swa) < 0) { fprintf(stderr, "heylookllm synth: bad --sliding-window\n"); return 2; }
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) o.n_threads = atoi(v);
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) o.out = v;
        else {
            fprintf(stderr, "heylookllm synth: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (strcmp(o.arch, "llama") && strcmp(o.arch, "qwen2") && strcmp(o.arch, "gemma3")) {
        fprintf(stderr, "heylookllm synth: architecture '%s' is not supported (llama, qwen2, gemma3)\n", o.arch);
        return 2;
    }
    const char *tname = NULL;
    for (int i = 1; i < argc; i++) if (!strcmp(argv[i], "--type") && i + 1 < argc) tname = argv[i + 1];
    const hl_dtype_traits *tt = o.type >= 0 ? hl_dtype_get((uint32_t)o.type) : NULL;
    if (!tt || !tt->supported) {
        fprintf(stderr, "heylookllm synth: --type %s is not a supported weight type\n", tname ? tname : "(missing)");
        usage();
        return 2;
    }
    if (o.output_type < 0) {
        for (int i = 1; i < argc; i++)
            if (!strcmp(argv[i], "--output-type")) {
                fprintf(stderr, "heylookllm synth: --output-type %s is not a supported weight type\n", argv[i + 1]);
                return 2;
            }
        o.output_type = o.km_mix ? HL_Q6_K : o.type;
    } else if (!hl_dtype_get((uint32_t)o.output_type)->supported) {
        fprintf(stderr, "heylookllm synth: --output-type is not a supported weight type\n");
        return 2;
    }
    if (shape_name) {
        const shape *found = NULL;
        for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
            if (!strcmp(SHAPES[i].name, shape_name)) found = &SHAPES[i];
        if (!found) {
            fprintf(stderr, "heylookllm synth: unknown shape '%s'\n", shape_name);
            usage();
            return 2;
        }
        o.s = *found;
        if (dims[5]) o.s.n_vocab = dims[5];
    } else {
        for (int k = 0; k < 5; k++)
            if (!dims[k]) {
                fprintf(stderr, "heylookllm synth: give --shape NAME or %s (and the other dimensions)\n", DIM_OPTS[k]);
                return 2;
            }
        o.s = (shape){"custom", dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], 10000.0f};
    }
    if (o.s.n_embd % o.s.n_head || o.s.n_head % o.s.n_head_kv) {
        fprintf(stderr, "heylookllm synth: n_embd must be a multiple of n_head, and n_head of n_head_kv\n");
        return 2;
    }
    if (!o.vocab_from || !o.out) {
        fprintf(stderr, "heylookllm synth: --vocab-from FILE and -o OUT.gguf are required\n");
        return 2;
    }
    hl_err e = {0};
    gguf_file *vocab = NULL;
    if (gguf_open(&vocab, o.vocab_from, &e) < 0) {
        fprintf(stderr, "heylookllm synth: %s\n", e.msg);
        return 1;
    }
    if (!o.s.n_vocab) {
        const gguf_array *toks;
        o.s.n_vocab = gguf_get_arr(vocab, "tokenizer.ggml.tokens", &toks) == 0 ? (int)gguf_arr_len(toks) : 0;
    }
    int rc = o.s.n_vocab > 0 ? write_model(&o, vocab, &e) : hl_errf(&e, "synth: the --vocab-from file has no vocabulary");
    gguf_close(vocab);
    if (rc < 0) {
        fprintf(stderr, "heylookllm synth: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "synth: wrote %s (%s, %s, %d layers, %d embd, vocab %d)\n", o.out, o.arch,
            hl_dtype_name((uint32_t)o.type), o.s.n_layer, o.s.n_embd, o.s.n_vocab);
    return 0;
}
