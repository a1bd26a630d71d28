/* tokenizer.c - loading the tokenizer from GGUF metadata, special tokens,
 * the public tokenize / piece / streaming-detokenize API.
 *
 * Contract. hl_tokenizer_load copies every token text, score, type and merge
 * it needs out of the gguf_file (which may be closed afterwards) and builds
 * the lookup tables; a failed load frees everything and leaves *out NULL.
 * The loaded tokenizer is immutable, so hl_tokenize and the piece functions
 * may run concurrently from any threads; they allocate per-call scratch only.
 * Rules (defaults, special-token detection, end-of-generation set, special-
 * token partitioning of the input) follow llama.cpp's llama-vocab so ids
 * match it exactly; see the comments at each step.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* ---- small helpers ---- */

void tok_out_push(tok_out *o, int32_t id) {
    if (o->oom) return;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 256;
        int32_t *r = realloc(o->ids, nc * sizeof *r);
        if (!r) {
            o->oom = true;
            return;
        }
        o->ids = r;
        o->cap = nc;
    }
    o->ids[o->n++] = id;
}

uint64_t tok_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xC2B2AE3D27D4EB4Full;
        h ^= h >> 31;
    }
    uint64_t w = 0;
    for (size_t k = 0; i + k < n; k++) w |= (uint64_t)(uint8_t)s[i + k] << (8 * k);
    h = (h ^ w) * 0x165667B19E3779F9ull;
    h ^= h >> 29;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

uint32_t tok_utf8_decode(const char *s, size_t n, size_t *i) {
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned c = p[0];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        *i += 1;
        return c;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        *i += 1;
        return 0xFFFD;
    }
    if (left < len) {
        *i += 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            *i += 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    /* overlong, surrogate or out of range: not encodable back, so replace */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
        *i += 1;
        return 0xFFFD;
    }
    *i += len;
    return cp;
}

int tok_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static uint32_t map_size_for(size_t n) {
    uint32_t sz = 16;
    while (sz < n * 2 + 16) sz *= 2;
    return sz;
}

int32_t tok_vocab_find(const hl_tokenizer *t, const char *s, size_t n) {
    if (n > t->max_token_len) return -1;
    uint32_t m = t->vocab.mask;
    for (uint32_t h = (uint32_t)tok_hash(s, n) & m;; h = (h + 1) & m) {
        uint32_t v = t->vocab.slots[h];
        if (!v) return -1;
        uint32_t id = v - 1;
        if (t->len[id] == n && memcmp(t->pool + t->off[id], s, n) == 0) return (int32_t)id;
    }
}

static uint64_t merge_hash(const char *a, size_t na, const char *b, size_t nb) {
    uint64_t h = tok_hash(a, na);
    return (h * 0x9E3779B97F4A7C15ull) ^ tok_hash(b, nb) ^ (h >> 17);
}

int32_t tok_merge_rank(const hl_tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    if (!t->n_merges) return -1;
    uint32_t m = t->merge_map.mask;
    for (uint32_t h = (uint32_t)merge_hash(a, na, b, nb) & m;; h = (h + 1) & m) {
        uint32_t v = t->merge_map.slots[h];
        if (!v) return -1;
        const tok_merge *g = &t->merges[v - 1];
        if (g->left_len == na && g->right_len == nb &&
            memcmp(t->merge_pool + g->left_off, a, na) == 0 &&
            memcmp(t->merge_pool + g->right_off, b, nb) == 0)
            return (int32_t)(v - 1);
    }
}

/* ---- loading ---- */

static bool text_is(const hl_tokenizer *t, int32_t id, const char *s) {
    size_t n = strlen(s);
    return t->len[id] == n && memcmp(t->pool + t->off[id], s, n) == 0;
}

static int32_t find_cstr(const hl_tokenizer *t, const char *s) {
    return tok_vocab_find(t, s, strlen(s));
}

static void read_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id) {
    if (*id >= n_vocab) *id = -1; /* default out of range: disable */
    uint32_t v;
    if (gguf_get_u32(f, key, &v) < 0) {
        int64_t s;
        if (gguf_get_i64(f, key, &s) < 0 || s < 0 || s > UINT32_MAX) return;
        v = (uint32_t)s;
    }
    if (v < (uint32_t)n_vocab) *id = (int32_t)v;
}

static void read_bool(const gguf_file *f, const char *key, bool *b) {
    bool v;
    if (gguf_get_bool(f, key, &v) == 0) *b = v;
}

static int load_vocab(hl_tokenizer *t, const gguf_file *f, hl_err *e) {
    const gguf_array *toks;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) < 0 ||
        gguf_arr_type(toks) != GGUF_VT_STRING)
        return hl_errf(e, "tokenizer.ggml.tokens is missing or not an array of strings; "
                          "the file has no usable vocabulary");
    uint64_t n = gguf_arr_len(toks);
    if (n == 0 || n > (1u << 24))
        return hl_errf(e,
                       "tokenizer.ggml.tokens has %llu entries; "
                       "expected 1..16777216",
                       (unsigned long long)n);
    t->n_vocab = (int32_t)n;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        hl_str s;
        if (gguf_arr_str(toks, i, &s) < 0)
            return hl_errf(e, "tokenizer.ggml.tokens[%llu] unreadable", (unsigned long long)i);
        total += s.len ? s.len : 32;
        if (total > ((size_t)1 << 31)) return hl_errf(e, "tokenizer.ggml.tokens too large");
    }
    t->pool = malloc(total + 1);
    t->off = malloc(n * sizeof *t->off);
    t->len = malloc(n * sizeof *t->len);
    t->score = calloc(n, sizeof *t->score);
    t->attr = malloc(n * sizeof *t->attr);
    t->eog = calloc(n, 1);
    t->vocab.mask = map_size_for(n) - 1;
    t->vocab.slots = calloc((size_t)t->vocab.mask + 1, sizeof *t->vocab.slots);
    if (!t->pool || !t->off || !t->len || !t->score || !t->attr || !t->eog || !t->vocab.slots)
        return hl_errf(e, "out of memory loading the vocabulary");
    size_t o = 0;
    for (uint64_t i = 0; i < n; i++) {
        hl_str s;
        gguf_arr_str(toks, i, &s);
        t->off[i] = (uint32_t)o;
        if (s.len == 0) { /* llama.cpp renames empty tokens */
            int w = snprintf(t->pool + o, 32, "[EMPTY_%llu]", (unsigned long long)i);
            t->len[i] = (uint32_t)w;
        } else {
            memcpy(t->pool + o, s.ptr, s.len);
            t->len[i] = (uint32_t)s.len;
        }
        o += t->len[i];
        if (t->len[i] > t->max_token_len) t->max_token_len = t->len[i];
        t->attr[i] = TOK_ATTR_NORMAL;
    }
    /* text -> id; a later duplicate replaces an earlier one */
    for (uint64_t i = 0; i < n; i++) {
        const char *s = t->pool + t->off[i];
        uint32_t m = t->vocab.mask;
        for (uint32_t h = (uint32_t)tok_hash(s, t->len[i]) & m;; h = (h + 1) & m) {
            uint32_t v = t->vocab.slots[h];
            if (!v || (t->len[v - 1] == t->len[i] &&
                       memcmp(t->pool + t->off[v - 1], s, t->len[i]) == 0)) {
                t->vocab.slots[h] = (uint32_t)i + 1;
                break;
            }
        }
    }

    const gguf_array *sc;
    if (gguf_get_arr(f, "tokenizer.ggml.scores", &sc) == 0) {
        if (gguf_arr_len(sc) < n)
            return hl_errf(e, "tokenizer.ggml.scores has %llu entries for %llu tokens",
                           (unsigned long long)gguf_arr_len(sc), (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            float v;
            int64_t iv;
            if (gguf_arr_f32(sc, i, &v) == 0)
                t->score[i] = v;
            else if (gguf_arr_i64(sc, i, &iv) == 0)
                t->score[i] = (float)iv;
            else
                return hl_errf(e, "tokenizer.ggml.scores must be f32 or i32");
        }
    }
    const gguf_array *tt;
    if (gguf_get_arr(f, "tokenizer.ggml.token_type", &tt) == 0) {
        if (gguf_arr_len(tt) < n)
            return hl_errf(e, "tokenizer.ggml.token_type has %llu entries for %llu tokens",
                           (unsigned long long)gguf_arr_len(tt), (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            int64_t v;
            if (gguf_arr_i64(tt, i, &v) < 0)
                return hl_errf(e, "tokenizer.ggml.token_type must be integers");
            switch (v) {
            case 1:
                t->attr[i] = TOK_ATTR_NORMAL;
                break;
            case 2:
                t->attr[i] = TOK_ATTR_UNKNOWN;
                break;
            case 3:
                t->attr[i] = TOK_ATTR_CONTROL;
                break;
            case 4:
                t->attr[i] = TOK_ATTR_USER_DEFINED;
                break;
            case 5:
                t->attr[i] = TOK_ATTR_UNUSED;
                break;
            case 6:
                t->attr[i] = TOK_ATTR_BYTE;
                break;
            default:
                t->attr[i] = 0;
                break; /* undefined */
            }
        }
    }
    return 0;
}

static int load_merges(hl_tokenizer *t, const gguf_file *f, hl_err *e) {
    const gguf_array *mg;
    if (gguf_get_arr(f, "tokenizer.ggml.merges", &mg) < 0 || gguf_arr_type(mg) != GGUF_VT_STRING)
        return hl_errf(e, "tokenizer.ggml.merges is missing or not an array of strings; "
                          "a BPE vocabulary needs its merges (reconvert the model)");
    uint64_t n = gguf_arr_len(mg);
    if (n > (1u << 24)) return hl_errf(e, "tokenizer.ggml.merges has too many entries");
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        hl_str s;
        if (gguf_arr_str(mg, i, &s) < 0)
            return hl_errf(e, "tokenizer.ggml.merges[%llu] unreadable", (unsigned long long)i);
        total += s.len;
        if (total > ((size_t)1 << 31)) return hl_errf(e, "tokenizer.ggml.merges too large");
    }
    t->merge_pool = malloc(total + 1);
    t->merges = malloc((n ? n : 1) * sizeof *t->merges);
    t->merge_map.mask = map_size_for(n) - 1;
    t->merge_map.slots = calloc((size_t)t->merge_map.mask + 1, sizeof *t->merge_map.slots);
    if (!t->merge_pool || !t->merges || !t->merge_map.slots)
        return hl_errf(e, "out of memory loading the merges");
    size_t o = 0;
    uint32_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        hl_str s;
        gguf_arr_str(mg, i, &s);
        /* "left right": split at the first space after position 0 */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        tok_merge g;
        memcpy(t->merge_pool + o, s.ptr, s.len);
        if (sp) {
            g.left_off = (uint32_t)o;
            g.left_len = (uint32_t)(sp - s.ptr);
            g.right_off = (uint32_t)(o + g.left_len + 1);
            g.right_len = (uint32_t)(s.len - g.left_len - 1);
        } else {
            g.left_off = g.right_off = (uint32_t)o;
            g.left_len = g.right_len = 0; /* never matches */
        }
        o += s.len;
        /* rank = index in the file; keep the rank = slot index identity by
         * storing every merge, but only map the first of duplicates */
        t->merges[k] = g;
        uint32_t m = t->merge_map.mask;
        const char *a = t->merge_pool + g.left_off, *b = t->merge_pool + g.right_off;
        for (uint32_t h = (uint32_t)merge_hash(a, g.left_len, b, g.right_len) & m;;
             h = (h + 1) & m) {
            uint32_t v = t->merge_map.slots[h];
            if (!v) {
                t->merge_map.slots[h] = k + 1;
                break;
            }
            const tok_merge *q = &t->merges[v - 1];
            if (q->left_len == g.left_len && q->right_len == g.right_len &&
                memcmp(t->merge_pool + q->left_off, a, g.left_len) == 0 &&
                memcmp(t->merge_pool + q->right_off, b, g.right_len) == 0)
                break;
        }
        if (g.left_len > t->max_merge_part) t->max_merge_part = g.left_len;
        if (g.right_len > t->max_merge_part) t->max_merge_part = g.right_len;
        k++;
    }
    t->n_merges = k;
    return 0;
}

static const char *const k_eog_texts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<|return|>",
                                          "<|call|>",
                                          "<|flush|>",
                                          "<|calls|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "</s>",
                                          "<|eom_id|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "[EOS]",
                                          "<|end_of_text|>",
                                          "<end_of_utterance>",
                                          "<eos>",
                                          "<turn|>",
                                          "<|tool_response>",
                                          "<\xef\xbd\x9c"
                                          "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "[e~[",
                                          NULL};
static const char *const k_eot_texts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "<|end_of_text|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "<\xef\xbd\x9c"
                                          "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "<end_of_utterance>",
                                          NULL};
static const char *const k_fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                              "<PAD>",       "[PAD]",     NULL};
static const char *const k_fim_rep_texts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                              "<REPO>",       "<reponame>",    NULL};
static const char *const k_fim_sep_texts[] = {"<|file_sep|>", NULL};
static const char *const k_fim_pre_texts[] = {"<|fim_prefix|>",
                                              "<fim-prefix>",
                                              "<fim_prefix>",
                                              "<\xef\xbd\x9c"
                                              "fim\xe2\x96\x81"
                                              "begin\xef\xbd\x9c>",
                                              "<PRE>",
                                              "\xe2\x96\x81<PRE>",
                                              "<|code_prefix|>",
                                              "<|prefix|>",
                                              NULL};
static const char *const k_fim_suf_texts[] = {"<|fim_suffix|>",
                                              "<fim-suffix>",
                                              "<fim_suffix>",
                                              "<\xef\xbd\x9c"
                                              "fim\xe2\x96\x81hole\xef\xbd\x9c>",
                                              "<SUF>",
                                              "\xe2\x96\x81<SUF>",
                                              "<|code_suffix|>",
                                              "<|suffix|>",
                                              NULL};
static const char *const k_fim_mid_texts[] = {"<|fim_middle|>",
                                              "<fim-middle>",
                                              "<fim_middle>",
                                              "<\xef\xbd\x9c"
                                              "fim\xe2\x96\x81"
                                              "end\xef\xbd\x9c>",
                                              "<MID>",
                                              "\xe2\x96\x81<MID>",
                                              "<|code_middle|>",
                                              "<|middle|>",
                                              NULL};

static bool in_list(const hl_tokenizer *t, int32_t id, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (text_is(t, id, list[i])) return true;
    return false;
}

/* Finds the first token (by id) whose text is in list and marks it control;
 * returns it or -1. llama.cpp does this when the metadata names no id. */
static int32_t detect(hl_tokenizer *t, const char *const *list) {
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (in_list(t, id, list)) {
            t->attr[id] |= TOK_ATTR_CONTROL;
            return id;
        }
    }
    return -1;
}

/* A special token and its text length, for sorting with plain ISO C qsort
 * (qsort_r is a GNU/BSD extension with differing signatures). */
typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

/* Longest text first, then lowest id. */
static int cmp_special_key(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void str_lower(char *s) {
    for (; *s; s++) *s = (char)tolower((unsigned char)*s);
}

static int build_special(hl_tokenizer *t, const gguf_file *f, int32_t fim_pad, int32_t fim_rep,
                         int32_t fim_sep, hl_err *e) {
    int32_t n = t->n_vocab;
    /* end-of-turn / end-of-message / fill-in-middle detection by text */
    if (t->eot < 0) t->eot = detect(t, k_eot_texts);
    if (t->eom < 0) {
        static const char *const eom[] = {"<|eom_id|>", NULL};
        t->eom = detect(t, eom);
    }
    /* FIM prefix/suffix/middle only gain the control attribute here (unless
     * the metadata names them, which we do not need) */
    int32_t fim_ids[3] = {-1, -1, -1};
    read_id(f, "tokenizer.ggml.fim_pre_token_id", n, &fim_ids[0]);
    read_id(f, "tokenizer.ggml.fim_suf_token_id", n, &fim_ids[1]);
    read_id(f, "tokenizer.ggml.fim_mid_token_id", n, &fim_ids[2]);
    if (fim_ids[0] < 0) read_id(f, "tokenizer.ggml.prefix_token_id", n, &fim_ids[0]);
    if (fim_ids[1] < 0) read_id(f, "tokenizer.ggml.suffix_token_id", n, &fim_ids[1]);
    if (fim_ids[2] < 0) read_id(f, "tokenizer.ggml.middle_token_id", n, &fim_ids[2]);
    if (fim_ids[0] < 0) (void)detect(t, k_fim_pre_texts);
    if (fim_ids[1] < 0) (void)detect(t, k_fim_suf_texts);
    if (fim_ids[2] < 0) (void)detect(t, k_fim_mid_texts);
    if (fim_pad < 0) fim_pad = detect(t, k_fim_pad_texts);
    if (fim_rep < 0) fim_rep = detect(t, k_fim_rep_texts);
    if (fim_sep < 0) fim_sep = detect(t, k_fim_sep_texts);

    /* control tokens named "unused" are unused */
    for (int32_t id = 0; id < n; id++) {
        if (!(t->attr[id] & TOK_ATTR_CONTROL)) continue;
        const char *s = t->pool + t->off[id];
        size_t l = t->len[id];
        for (size_t i = 0; i + 6 <= l; i++)
            if (memcmp(s + i, "unused", 6) == 0) {
                t->attr[id] |= TOK_ATTR_UNUSED;
                break;
            }
    }

    /* end-of-generation set */
    if (fim_pad >= 0) t->eog[fim_pad] = 1;
    if (fim_rep >= 0) t->eog[fim_rep] = 1;
    if (fim_sep >= 0) t->eog[fim_sep] = 1;
    for (int32_t id = 0; id < n; id++) {
        if (in_list(t, id, k_eog_texts)) {
            t->eog[id] = 1;
            t->attr[id] |= TOK_ATTR_CONTROL;
        }
    }
    static const char *const harmony[] = {"<|channel|>", "<|message|>", "<|start|>",
                                          "<|constrain|>", NULL};
    for (int32_t id = 0; id < n; id++)
        if (in_list(t, id, harmony)) t->attr[id] = TOK_ATTR_USER_DEFINED;
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    {
        bool has_return = false, has_call = false, has_end = false, has_flush = false;
        bool has_marker = false, has_s = false;
        int32_t end_id = -1, s_id = -1;
        for (int32_t id = 0; id < n; id++) {
            if (!t->eog[id]) continue;
            if (text_is(t, id, "<|return|>"))
                has_return = true;
            else if (text_is(t, id, "<|call|>") || text_is(t, id, "<|calls|>"))
                has_call = true;
            else if (text_is(t, id, "<|flush|>"))
                has_flush = true;
            else if (text_is(t, id, "<|end|>")) {
                has_end = true;
                end_id = id;
            }
        }
        if ((has_return && has_call && has_end) || (has_call && has_flush && has_end)) {
            t->eog[end_id] = 0;
            t->attr[end_id] = TOK_ATTR_USER_DEFINED;
        }
        for (int32_t id = 0; id < n; id++) {
            if (!t->eog[id]) continue;
            if (text_is(t, id, "<|tool_response>") || text_is(t, id, "<|plamo:eos|>"))
                has_marker = true;
            else if (text_is(t, id, "</s>")) {
                has_s = true;
                s_id = id;
            }
        }
        if (has_marker && has_s) {
            t->eog[s_id] = 0;
            t->attr[s_id] = TOK_ATTR_NORMAL;
        }
    }

    /* special tokens for partitioning, longest first */
    int32_t ns = 0;
    for (int32_t id = 0; id < n; id++)
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) ns++;
    t->special = malloc((size_t)(ns ? ns : 1) * sizeof *t->special);
    if (!t->special) return hl_errf(e, "out of memory");
    ns = 0;
    for (int32_t id = 0; id < n; id++)
        if (t->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            t->special[ns++] = id;
    t->n_special = ns;
    if (ns > 1) {
        special_key *keys = malloc((size_t)ns * sizeof *keys);
        if (!keys) return hl_errf(e, "out of memory");
        for (int32_t i = 0; i < ns; i++)
            keys[i] = (special_key){t->len[t->special[i]], t->special[i]};
        qsort(keys, (size_t)ns, sizeof *keys, cmp_special_key);
        for (int32_t i = 0; i < ns; i++) t->special[i] = keys[i].id;
        free(keys);
    }

    /* per-model strip attributes (llama.cpp keys them on names) */
    char name[256] = "", pre[256] = "", arch[256] = "";
    hl_str s;
    if (gguf_get_str(f, "general.name", &s) == 0)
        snprintf(name, sizeof name, "%.*s", (int)(s.len < 255 ? s.len : 255), s.ptr);
    if (gguf_get_str(f, "tokenizer.ggml.pre", &s) == 0)
        snprintf(pre, sizeof pre, "%.*s", (int)(s.len < 255 ? s.len : 255), s.ptr);
    if (gguf_get_str(f, "general.architecture", &s) == 0)
        snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 255 ? s.len : 255), s.ptr);
    str_lower(name);
    if (strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code") ||
        strstr(arch, "nomic-bert-moe") || strstr(arch, "jina-bert-v3")) {
        int32_t id = find_cstr(t, "<mask>");
        if (id >= 0) t->attr[id] |= TOK_ATTR_LSTRIP;
    } else if (strstr(name, "phi-3") || strstr(name, "phi3")) {
        for (int32_t i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= TOK_ATTR_RSTRIP;
        int32_t id = find_cstr(t, "</s>");
        if (id >= 0) t->attr[id] |= TOK_ATTR_RSTRIP;
        static const char *const off[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (int i = 0; i < 3; i++) {
            id = find_cstr(t, off[i]);
            if (id >= 0) t->attr[id] &= (uint16_t)~TOK_ATTR_RSTRIP;
        }
    } else if (strstr(name, "modern-bert")) {
        int32_t id = find_cstr(t, "[MASK]");
        if (id >= 0) t->attr[id] |= TOK_ATTR_LSTRIP;
    }
    return 0;
}

/* Decoded text of a token with special=true, appended to the piece pool. */
static int build_pieces(hl_tokenizer *t, hl_err *e) {
    size_t cap = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) cap += t->len[i];
    t->piece_pool = malloc(cap + 1);
    t->piece_off = malloc((size_t)t->n_vocab * sizeof *t->piece_off);
    t->piece_len = malloc((size_t)t->n_vocab * sizeof *t->piece_len);
    if (!t->piece_pool || !t->piece_off || !t->piece_len) return hl_errf(e, "out of memory");
    size_t o = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->pool + t->off[id];
        size_t n = t->len[id], w = 0;
        char *d = t->piece_pool + o;
        uint16_t a = t->attr[id];
        if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
            memcpy(d, s, n);
            w = n;
        } else if (a & TOK_ATTR_NORMAL) {
            if (t->type != TOK_BPE || t->escape_ws) { /* U+2581 -> space */
                for (size_t i = 0; i < n;) {
                    if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                        d[w++] = ' ';
                        i += 3;
                    } else {
                        d[w++] = s[i++];
                    }
                }
            } else { /* undo the byte-to-unicode mapping */
                for (size_t i = 0; i < n;) {
                    size_t j = i;
                    uint32_t cp = tok_utf8_decode(s, n, &j);
                    int b = tok_utf8_to_byte(cp);
                    if (b >= 0) {
                        d[w++] = (char)b;
                    } else { /* not a mapped byte: keep the text */
                        memcpy(d + w, s + i, j - i);
                        w += j - i;
                    }
                    i = j;
                }
            }
        } else if (a & TOK_ATTR_BYTE) {
            unsigned v = 0;
            if (n == 6 && memcmp(s, "<0x", 3) == 0 && sscanf(s + 3, "%2x", &v) == 1) {
                d[w++] = (char)v;
            } else if (n == 1) {
                d[w++] = s[0];
            }
        }
        t->piece_off[id] = (uint32_t)o;
        t->piece_len[id] = (uint32_t)w;
        o += w;
    }
    return 0;
}

void hl_tokenizer_free(hl_tokenizer *t) {
    if (!t) return;
    tok_bpe_free(t);
    free(t->pool);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->attr);
    free(t->vocab.slots);
    free(t->piece_pool);
    free(t->piece_off);
    free(t->piece_len);
    free(t->merge_pool);
    free(t->merges);
    free(t->merge_map.slots);
    free(t->special);
    free(t->eog);
    free(t);
}

static int load(hl_tokenizer *t, const gguf_file *f, hl_err *e) {
    hl_str model;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model) < 0)
        return hl_errf(e, "tokenizer.ggml.model is missing; the file has no tokenizer "
                          "(supported models: llama, gpt2, gemma4, bert)");
    hl_str pre = {"default", 7};
    bool has_pre = gguf_get_str(f, "tokenizer.ggml.pre", &pre) == 0;
    if (!has_pre) pre = (hl_str){"default", 7};

    t->eot = t->eom = t->sep = t->pad = -1;
    if (hl_str_eq(model, "llama")) {
        t->type = TOK_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_space_prefix = true;
        t->add_bos = true;
    } else if (hl_str_eq(model, "gpt2") || hl_str_eq(model, "gemma4")) {
        t->type = TOK_BPE;
        bool gemma4 = hl_str_eq(model, "gemma4");
        t->bos = gemma4 ? -1 : 11, t->eos = gemma4 ? -1 : 11, t->unk = -1;
        if (gemma4) pre = (hl_str){"gemma4", 6};
    } else if (hl_str_eq(model, "bert")) {
        t->type = TOK_WPM;
        t->bos = 101, t->eos = -1, t->unk = 100, t->sep = 102, t->pad = 0;
        t->add_bos = true;
        t->add_sep = true;
    } else if (hl_str_eq(model, "no_vocab") || hl_str_eq(model, "none")) {
        return hl_errf(e,
                       "the file has no vocabulary (tokenizer.ggml.model = '%.*s'); "
                       "use a GGUF that includes its tokenizer",
                       (int)model.len, model.ptr);
    } else {
        return hl_errf(e,
                       "unsupported tokenizer.ggml.model '%.*s'; supported: llama, gpt2, "
                       "gemma4, bert",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    if (load_vocab(t, f, e) < 0) return -1;
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_tok[b] = find_cstr(t, hex);
        if (t->byte_tok[b] < 0 && t->type == TOK_SPM) {
            char c = (char)b;
            t->byte_tok[b] = tok_vocab_find(t, &c, 1);
        }
    }
    if (t->type == TOK_BPE) {
        if (load_merges(t, f, e) < 0) return -1;
        if (tok_bpe_setup(t, pre.ptr, pre.len, e) < 0) return -1;
    }
    read_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);

    int32_t fim_pad = -1, fim_rep = -1, fim_sep = -1, mask = -1;
    int32_t n = t->n_vocab;
    read_id(f, "tokenizer.ggml.bos_token_id", n, &t->bos);
    read_id(f, "tokenizer.ggml.eos_token_id", n, &t->eos);
    read_id(f, "tokenizer.ggml.eot_token_id", n, &t->eot);
    read_id(f, "tokenizer.ggml.eom_token_id", n, &t->eom);
    read_id(f, "tokenizer.ggml.unknown_token_id", n, &t->unk);
    read_id(f, "tokenizer.ggml.seperator_token_id", n, &t->sep);
    read_id(f, "tokenizer.ggml.padding_token_id", n, &t->pad);
    read_id(f, "tokenizer.ggml.mask_token_id", n, &mask);
    read_id(f, "tokenizer.ggml.fim_pad_token_id", n, &fim_pad);
    read_id(f, "tokenizer.ggml.fim_rep_token_id", n, &fim_rep);
    read_id(f, "tokenizer.ggml.fim_sep_token_id", n, &fim_sep);
    read_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos);
    read_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos);
    read_bool(f, "tokenizer.ggml.add_sep_token", &t->add_sep);
    if (t->type == TOK_BPE && t->gemma4) t->add_bos = true;
    if (t->type == TOK_WPM) {
        t->lowercase = true; /* BertNormalizer defaults */
        read_bool(f, "tokenizer.ggml.normalizer.lowercase", &t->lowercase);
        t->strip_accents = t->lowercase;
        read_bool(f, "tokenizer.ggml.normalizer.strip_accents", &t->strip_accents);
    }
    if (build_special(t, f, fim_pad, fim_rep, fim_sep, e) < 0) return -1;
    return build_pieces(t, e);
}

int hl_tokenizer_load(hl_tokenizer **out, const gguf_file *f, hl_err *e) {
    if (!out || !f) return hl_errf(e, "hl_tokenizer_load: NULL argument");
    *out = NULL;
    hl_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return hl_errf(e, "out of memory");
    if (load(t, f, e) < 0) {
        hl_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int32_t hl_tokenizer_n_vocab(const hl_tokenizer *t) {
    return t->n_vocab;
}
int32_t hl_tokenizer_bos(const hl_tokenizer *t) {
    return t->bos;
}
int32_t hl_tokenizer_eos(const hl_tokenizer *t) {
    return t->eos;
}
bool hl_tokenizer_add_bos(const hl_tokenizer *t) {
    return t->add_bos && t->bos >= 0;
}
bool hl_tokenizer_add_eos(const hl_tokenizer *t) {
    return t->add_eos && t->eos >= 0;
}

bool hl_tokenizer_is_eog(const hl_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->eog[id];
}

/* ---- tokenizing ---- */

/* A fragment of the input: raw text [off, off+len) or a special token. */
typedef struct frag {
    int32_t tok; /* -1 for raw text */
    int32_t next;
    size_t off, len;
} frag;

typedef struct fraglist {
    frag *v;
    int32_t n, cap;
} fraglist;

static int32_t frag_new(fraglist *l, int32_t tok, size_t off, size_t len, int32_t next) {
    if (l->n == l->cap) {
        int32_t nc = l->cap ? l->cap * 2 : 64;
        frag *r = realloc(l->v, (size_t)nc * sizeof *r);
        if (!r) return -1;
        l->v = r;
        l->cap = nc;
    }
    l->v[l->n] = (frag){tok, next, off, len};
    return l->n++;
}

/* First occurrence of needle[0, nl) in hay[0, hn), or NULL. nl must be > 0.
 * Plain ISO C (memmem is a GNU extension: without _GNU_SOURCE it is declared
 * implicitly as returning int, which truncates the pointer). */
static const char *find_bytes(const char *hay, size_t hn, const char *needle, size_t nl) {
    if (nl == 0 || nl > hn) return NULL;
    const char *p = hay, *last = hay + (hn - nl); /* last possible start */
    while (p <= last) {
        p = memchr(p, (unsigned char)needle[0], (size_t)(last - p) + 1);
        if (!p) return NULL;
        if (memcmp(p + 1, needle + 1, nl - 1) == 0) return p;
        p++;
    }
    return NULL;
}

/* Splits raw fragments on special-token texts, longest token first, as
 * llama.cpp's tokenizer_st_partition: control and unknown tokens only when
 * parse_special, user-defined tokens always. Returns false on OOM. */
static bool partition(const hl_tokenizer *t, const char *text, size_t n, bool parse_special,
                      fraglist *l) {
    if (frag_new(l, -1, 0, n, -1) < 0) return false;
    if (t->n_special == 0) return true;
    /* byte pairs present in the text: a token with an absent pair cannot occur */
    uint64_t *pairs = calloc(65536 / 64, sizeof *pairs);
    bool present[256] = {false};
    if (!pairs) return false;
    for (size_t i = 0; i < n; i++) {
        present[(uint8_t)text[i]] = true;
        if (i + 1 < n) {
            unsigned k = ((unsigned)(uint8_t)text[i] << 8) | (uint8_t)text[i + 1];
            pairs[k >> 6] |= 1ull << (k & 63);
        }
    }
    for (int32_t si = 0; si < t->n_special; si++) {
        int32_t id = t->special[si];
        uint16_t a = t->attr[id];
        if (!parse_special && (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        const char *s = t->pool + t->off[id];
        size_t sl = t->len[id];
        if (sl == 0 || sl > n) continue; /* an empty text would match everywhere */
        bool may = present[(uint8_t)s[0]];
        for (size_t i = 0; may && i + 1 < sl; i++) {
            unsigned k = ((unsigned)(uint8_t)s[i] << 8) | (uint8_t)s[i + 1];
            may = (pairs[k >> 6] >> (k & 63)) & 1;
        }
        if (!may) continue;
        for (int32_t fi = 0; fi >= 0; fi = l->v[fi].next) {
            if (l->v[fi].tok >= 0) continue;
            for (;;) {
                frag *f = &l->v[fi];
                const char *base = text + f->off;
                const char *m = find_bytes(base, f->len, s, sl);
                if (!m) break;
                size_t mpos = (size_t)(m - text), end = f->off + f->len;
                size_t left_len = mpos - f->off;
                if (a & TOK_ATTR_LSTRIP)
                    while (left_len > 0 && isspace((unsigned char)text[f->off + left_len - 1]))
                        left_len--;
                size_t roff = mpos + sl, rlen = end - roff;
                if (rlen > 0 && (a & TOK_ATTR_RSTRIP))
                    while (rlen > 0 && isspace((unsigned char)text[roff])) roff++, rlen--;
                int32_t after = f->next;
                int32_t rnode = -1;
                if (rlen > 0) {
                    rnode = frag_new(l, -1, roff, rlen, after);
                    if (rnode < 0) goto oom;
                    after = rnode;
                }
                f = &l->v[fi];
                if (left_len > 0) {
                    int32_t tn = frag_new(l, id, 0, 0, after);
                    if (tn < 0) goto oom;
                    f = &l->v[fi];
                    f->len = left_len;
                    f->next = tn;
                } else {
                    f->tok = id;
                    f->off = f->len = 0;
                    f->next = after;
                }
                if (rnode < 0) break;
                fi = rnode;
            }
        }
    }
    free(pairs);
    return true;
oom:
    free(pairs);
    return false;
}

static bool encode(const hl_tokenizer *t, const char *text, size_t n, bool add_special,
                   bool parse_special, tok_out *o) {
    fraglist l = {0};
    if (n > 0 && !partition(t, text, n, parse_special, &l)) {
        free(l.v);
        return false;
    }
    char *buf = NULL;
    size_t bufcap = 0;
    bool bos = add_special && t->bos >= 0 && (t->type == TOK_WPM || t->add_bos);
    if (bos) tok_out_push(o, t->bos);
    bool prev_special = true;
    for (int32_t fi = l.n ? 0 : -1; fi >= 0 && !o->oom; fi = l.v[fi].next) {
        const frag *f = &l.v[fi];
        if (f->tok >= 0) {
            tok_out_push(o, f->tok);
            prev_special = true;
            continue;
        }
        const char *s = text + f->off;
        size_t sn = f->len;
        bool prefix = t->type == TOK_SPM && t->add_space_prefix && prev_special;
        bool esc = t->type == TOK_SPM || (t->type == TOK_BPE && t->escape_ws);
        if (prefix || esc) { /* spaces -> U+2581 (3 bytes each) */
            size_t need = (sn + 1) * 3;
            if (need > bufcap) {
                char *r = realloc(buf, need);
                if (!r) {
                    o->oom = true;
                    break;
                }
                buf = r;
                bufcap = need;
            }
            size_t w = 0;
            if (prefix) {
                memcpy(buf, esc ? "\xe2\x96\x81" : " ", esc ? 3 : 1);
                w = esc ? 3 : 1;
            }
            for (size_t i = 0; i < sn; i++) {
                if (esc && s[i] == ' ') {
                    memcpy(buf + w, "\xe2\x96\x81", 3);
                    w += 3;
                } else {
                    buf[w++] = s[i];
                }
            }
            s = buf;
            sn = w;
        }
        switch (t->type) {
        case TOK_SPM:
            tok_spm_encode(t, s, sn, o);
            break;
        case TOK_BPE:
            tok_bpe_encode(t, s, sn, o);
            break;
        case TOK_WPM:
            tok_wpm_encode(t, s, sn, o);
            break;
        }
        prev_special = false;
    }
    if (add_special) {
        if (t->type == TOK_WPM) {
            if (t->sep >= 0) tok_out_push(o, t->sep);
        } else if (t->add_eos && t->eos >= 0) {
            tok_out_push(o, t->eos);
        }
    }
    free(buf);
    free(l.v);
    return !o->oom;
}

int64_t hl_tokenize(const hl_tokenizer *t, const char *text, size_t len, bool add_special,
                    bool parse_special, int32_t *ids, int64_t cap) {
    if (!t || (!text && len) || cap < 0 || (!ids && cap > 0)) return -1;
    tok_out o = {0};
    if (!encode(t, text, len, add_special, parse_special, &o)) {
        free(o.ids);
        return -1;
    }
    int64_t n = (int64_t)o.n;
    if (n > 0 && cap > 0) memcpy(ids, o.ids, (size_t)(n < cap ? n : cap) * sizeof *ids);
    free(o.ids);
    return n;
}

/* ---- detokenizing ---- */

int hl_token_piece(const hl_tokenizer *t, int32_t id, bool special, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab || (!buf && cap)) return -1;
    if (!special && (t->attr[id] & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL))) return 0;
    size_t n = t->piece_len[id];
    memcpy(buf, t->piece_pool + t->piece_off[id], n < cap ? n : cap);
    return (int)n;
}

/* Length of the incomplete UTF-8 sequence at the end of s (0 if none). */
static size_t incomplete_tail(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation: look further back */
        size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

int hl_detok_push(const hl_tokenizer *t, hl_detok *d, int32_t id, char *out, size_t cap) {
    if (!t || !d || id < 0 || id >= t->n_vocab || d->n_pending < 0 || d->n_pending > 3) return -1;
    if (t->attr[id] & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)) return 0;
    const char *p = t->piece_pool + t->piece_off[id];
    size_t pn = t->piece_len[id], total = (size_t)d->n_pending + pn;
    /* the held bytes stay held when the piece is all continuation of them */
    size_t hold = 0;
    if (pn >= 3) {
        hold = incomplete_tail(p, pn);
    } else {
        char tmp[8];
        memcpy(tmp, d->pending, (size_t)d->n_pending);
        memcpy(tmp + d->n_pending, p, pn);
        hold = incomplete_tail(tmp, total);
    }
    size_t ready = total - hold;
    if (ready > cap || (!out && ready)) return -1;
    char held[4];
    /* copy the last `hold` bytes of pending+piece before writing out */
    for (size_t k = 0; k < hold; k++) {
        size_t idx = total - hold + k;
        held[k] = idx < (size_t)d->n_pending ? d->pending[idx] : p[idx - (size_t)d->n_pending];
    }
    size_t w = 0;
    for (int k = 0; k < d->n_pending && w < ready; k++) out[w++] = d->pending[k];
    if (w < ready) {
        memcpy(out + w, p, ready - w);
    }
    memcpy(d->pending, held, hold);
    d->n_pending = (int)hold;
    return (int)ready;
}

int hl_detok_flush(hl_detok *d, char *out, size_t cap) {
    if (!d || d->n_pending < 0 || d->n_pending > 8) return -1;
    size_t n = (size_t)d->n_pending;
    if (n > cap || (!out && n)) return -1;
    memcpy(out, d->pending, n);
    d->n_pending = 0;
    return (int)n;
}
