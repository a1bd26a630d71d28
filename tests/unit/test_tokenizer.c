/* test_tokenizer.c - tokenizer tests.
 *
 * 1. llama.cpp's own tokenizer suite: every ggml-vocab-*.gguf in the vocab
 *    directory ($HL_VOCAB_DIR, default .cache/vocab, filled from the
 *    llama-cpp-python sdist by the CI bootstrap) with its .inp/.out pair,
 *    tokenized as test-tokenizer-0 does (no BOS/EOS, special text is text).
 * 2. The goldens of tests/data/tokenizer/NAME.txt (written by
 *    tests/ref/gen_tok_golden.py with llama-cpp-python) against the same
 *    vocab files, in both modes. Absent vocab files and tokenizer models we
 *    do not implement are skipped with a message.
 * 3. A synthetic byte-level BPE vocabulary built in-process: every
 *    tokenizer.ggml.pre value loads, unknown values fail with the list,
 *    special tokens, pieces, the streaming detokenizer.
 * Run from the repository root.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/engine/tokenizer.h"
#include "../../src/engine/tokenizer_internal.h"
#include "../../src/gguf/gguf.h"
#include "test.h"

static const char *vocab_dir(void) {
    const char *d = getenv("HL_VOCAB_DIR");
    return d && *d ? d : ".cache/vocab";
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)(l > 0 ? l : 0) + 1);
    if (!b) {
        fclose(f);
        return NULL;
    }
    *n = fread(b, 1, (size_t)(l > 0 ? l : 0), f);
    b[*n] = 0;
    fclose(f);
    return b;
}

/* Loads a tokenizer; returns NULL (after printing why) when it should be skipped. */
static hl_tokenizer *load_vocab(const char *path, bool *unsupported) {
    hl_err e = {{0}};
    gguf_file *f = NULL;
    *unsupported = false;
    if (gguf_open(&f, path, &e) < 0) {
        fprintf(stderr, "  skip %s: %s\n", path, e.msg);
        return NULL;
    }
    hl_tokenizer *t = NULL;
    int rc = hl_tokenizer_load(&t, f, &e);
    gguf_close(f);
    if (rc < 0) {
        *unsupported = strstr(e.msg, "unsupported tokenizer.ggml.model") != NULL;
        if (*unsupported)
            fprintf(stderr, "  skip %s: %s\n", path, e.msg);
        else
            fprintf(stderr, "  %s: load failed: %s\n", path, e.msg);
        return NULL;
    }
    return t;
}

static int64_t tok_all(const hl_tokenizer *t, const char *s, size_t n, bool sp, int32_t **ids) {
    int64_t cap = (int64_t)n + 16;
    *ids = malloc((size_t)cap * sizeof **ids);
    int64_t k = hl_tokenize(t, s, n, sp, sp, *ids, cap);
    if (k > cap) {
        free(*ids);
        *ids = malloc((size_t)k * sizeof **ids);
        k = hl_tokenize(t, s, n, sp, sp, *ids, k);
    }
    return k;
}

/* Compares ids with a space-separated list; prints the first mismatch. */
static bool same_ids(const int32_t *ids, int64_t n, const char *list) {
    const char *p = list;
    for (int64_t i = 0; i < n; i++) {
        char *end;
        while (*p == ' ') p++;
        long v = strtol(p, &end, 10);
        if (end == p || v != ids[i]) return false;
        p = end;
    }
    while (*p == ' ' || *p == '\r' || *p == '\n') p++;
    return *p == 0;
}

static void print_ids(const char *what, const int32_t *ids, int64_t n) {
    fprintf(stderr, "    %s:", what);
    for (int64_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

TEST(tokenizer_llama_cpp_suite) {
    DIR *d = opendir(vocab_dir());
    if (!d) {
        fprintf(stderr, "  skip: no vocab directory %s (set HL_VOCAB_DIR)\n", vocab_dir());
        return;
    }
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (strncmp(de->d_name, "ggml-vocab-", 11) != 0 || l < 5 ||
            strcmp(de->d_name + l - 5, ".gguf"))
            continue;
        char path[1024], pin[1100], pout[1100];
        snprintf(path, sizeof path, "%s/%s", vocab_dir(), de->d_name);
        snprintf(pin, sizeof pin, "%s.inp", path);
        snprintf(pout, sizeof pout, "%s.out", path);
        size_t ni, no;
        char *inp = slurp(pin, &ni), *out = slurp(pout, &no);
        if (!inp || !out) {
            free(inp);
            free(out);
            continue;
        }
        bool unsup;
        hl_tokenizer *t = load_vocab(path, &unsup);
        if (!t) {
            CHECK(unsup);
            free(inp);
            free(out);
            continue;
        }
        files++;
        const char *sep = "\n__ggml_vocab_test__\n";
        char *ip = inp, *op = out;
        int pass = 0, fail = 0;
        for (;;) {
            char *nx = strstr(ip, sep);
            size_t len = nx ? (size_t)(nx - ip) : strlen(ip);
            char *oe = strchr(op, '\n');
            if (!oe) break;
            *oe = 0;
            int32_t *ids;
            int64_t n = tok_all(t, ip, len, false, &ids);
            if (n >= 0 && same_ids(ids, n, op)) {
                pass++;
            } else {
                fail++;
                fprintf(stderr, "  %s: '%.*s'\n    want: %s\n", de->d_name,
                        (int)(len > 60 ? 60 : len), ip, op);
                print_ids("got ", ids, n);
            }
            free(ids);
            op = oe + 1;
            if (!nx) break;
            ip = nx + strlen(sep);
        }
        CHECK_EQ_INT(fail, 0);
        CHECK(pass > 0);
        hl_tokenizer_free(t);
        free(inp);
        free(out);
    }
    closedir(d);
    if (!files) fprintf(stderr, "  skip: no ggml-vocab-*.gguf with .inp/.out in %s\n", vocab_dir());
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

TEST(tokenizer_goldens) {
    DIR *d = opendir("tests/data/tokenizer");
    if (!d) {
        fprintf(stderr, "  skip: tests/data/tokenizer missing (run from the repository root)\n");
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".txt")) continue;
        char path[1024], gpath[1024];
        snprintf(path, sizeof path, "%s/ggml-vocab-%.*s.gguf", vocab_dir(), (int)(l - 4),
                 de->d_name);
        snprintf(gpath, sizeof gpath, "tests/data/tokenizer/%s", de->d_name);
        FILE *probe = fopen(path, "rb");
        if (!probe) {
            fprintf(stderr, "  skip %s: %s absent\n", de->d_name, path);
            continue;
        }
        fclose(probe);
        bool unsup;
        hl_tokenizer *t = load_vocab(path, &unsup);
        if (!t) {
            CHECK(unsup);
            continue;
        }
        size_t gn;
        char *g = slurp(gpath, &gn);
        CHECK(g != NULL);
        int fail = 0, cases = 0;
        char *line = g, *text = NULL;
        size_t tlen = 0;
        int mode = 0;
        while (line && *line) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            if (strncmp(line, "case ", 5) == 0) {
                mode = line[5] - '0';
                const char *hx = line + 7;
                size_t hl = strlen(hx) / 2;
                free(text);
                text = malloc(hl + 1);
                for (size_t i = 0; i < hl; i++)
                    text[i] = (char)(hexval(hx[2 * i]) * 16 + hexval(hx[2 * i + 1]));
                tlen = hl;
            } else if (strncmp(line, "ids", 3) == 0 && text) {
                int32_t *ids;
                int64_t n = tok_all(t, text, tlen, mode == 1, &ids);
                cases++;
                if (n < 0 || !same_ids(ids, n, line + 3)) {
                    fail++;
                    fprintf(stderr, "  %s mode %d: '%.*s'\n    want:%s\n", de->d_name, mode,
                            (int)(tlen > 60 ? 60 : tlen), text, line + 3);
                    print_ids("got ", ids, n);
                }
                free(ids);
            }
            line = nl ? nl + 1 : NULL;
        }
        free(text);
        free(g);
        CHECK_EQ_INT(fail, 0);
        CHECK(cases > 0);
        hl_tokenizer_free(t);
    }
    closedir(d);
}

/* ---- synthetic vocabulary ---- */

/* Byte-level BPE: the 256 byte symbols, "he", "ll", "hell", "hello", " w"
 * ("Ġw"), specials <|endoftext|> (control) and <|im_end|> (control, EOG). */
static hl_tokenizer *synth(const char *model, const char *pre, hl_err *e) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return NULL;
    char sym[256][3];
    const char *toks[270];
    int32_t types[270];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int k = tok_byte_to_utf8((uint8_t)b, sym[b]);
        sym[b][k] = 0;
        toks[n] = sym[b];
        types[n++] = 1;
    }
    const char *extra[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "<|endoftext|>", "<|im_end|>"};
    for (int i = 0; i < 7; i++) {
        toks[n] = extra[i];
        types[n++] = i >= 5 ? 3 : 1;
    }
    const char *merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w"};
    gguf_set_str(w, "tokenizer.ggml.model", model, e);
    if (pre) gguf_set_str(w, "tokenizer.ggml.pre", pre, e);
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n, e);
    gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_I32, types, (uint64_t)n, e);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 5, e);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 261, e);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 261, e);
    const char *path = hl_test_tmp("synth_vocab.gguf");
    int rc = gguf_writer_write(w, path, e);
    gguf_writer_free(w);
    if (rc < 0) return NULL;
    gguf_file *f = NULL;
    if (gguf_open(&f, path, e) < 0) return NULL;
    hl_tokenizer *t = NULL;
    rc = hl_tokenizer_load(&t, f, e);
    gguf_close(f);
    return rc < 0 ? NULL : t;
}

TEST(tokenizer_every_pre_loads) {
    char names[4096];
    tok_bpe_names(names, sizeof names);
    CHECK(strstr(names, "llama-bpe") && strstr(names, "qwen2") && strstr(names, "kimi-k2"));
    int n = 0;
    for (char *p = names; *p;) {
        char *end = strstr(p, ", ");
        size_t l = end ? (size_t)(end - p) : strlen(p);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)l, p);
        hl_err e = {{0}};
        hl_tokenizer *t = synth("gpt2", name, &e);
        if (!t) fprintf(stderr, "  pre '%s': %s\n", name, e.msg);
        CHECK(t != NULL);
        if (t) {
            /* every pre-tokenizer must get "hello" through, whatever its split */
            int32_t ids[64];
            int64_t k = hl_tokenize(t, "hello 123 \xe4\xb8\xad\xff", 11, false, false, ids, 64);
            CHECK(k > 0);
            hl_tokenizer_free(t);
        }
        n++;
        p += l;
        if (*p) p += 2;
    }
    CHECK(n > 90);
}

TEST(tokenizer_rejects_unknown) {
    hl_err e = {{0}};
    CHECK(synth("gpt2", "no-such-pre", &e) == NULL);
    CHECK_STR_CONTAINS(e.msg, "no-such-pre");
    CHECK_STR_CONTAINS(e.msg, "llama-bpe");
    CHECK(synth("wordsoup", NULL, &e) == NULL);
    CHECK_STR_CONTAINS(e.msg, "wordsoup");
    CHECK_STR_CONTAINS(e.msg, "gpt2");
}

TEST(tokenizer_synthetic_bpe) {
    hl_err e = {{0}};
    hl_tokenizer *t = synth("gpt2", "gpt-2", &e);
    CHECK(t != NULL);
    if (!t) return;
    int32_t ids[64];
    int64_t k = hl_tokenize(t, "hello world", 11, false, false, ids, 64);
    /* "hello" merges fully; " world" -> "Ġw" "o" "r" "l" "d" */
    CHECK_EQ_INT(k, 6);
    CHECK_EQ_INT(ids[0], 259);
    CHECK_EQ_INT(ids[1], 260);
    /* the count is returned even when cap is short */
    CHECK_EQ_INT(hl_tokenize(t, "hello world", 11, false, false, ids, 2), 6);
    CHECK_EQ_INT(hl_tokenize(t, "hello", 5, false, false, NULL, 0), 1);
    CHECK_EQ_INT(hl_tokenize(t, "", 0, false, false, ids, 64), 0);
    /* special text: a token with parse_special, bytes without */
    k = hl_tokenize(t, "<|im_end|>", 10, false, true, ids, 64);
    CHECK_EQ_INT(k, 1);
    CHECK_EQ_INT(ids[0], 262);
    CHECK(hl_tokenize(t, "<|im_end|>", 10, false, false, ids, 64) > 1);
    CHECK(hl_tokenizer_is_eog(t, 262));
    CHECK(hl_tokenizer_is_eog(t, 261));
    CHECK(!hl_tokenizer_is_eog(t, 259));
    CHECK(!hl_tokenizer_is_eog(t, -1));
    CHECK(!hl_tokenizer_add_bos(t));
    CHECK_EQ_INT(hl_tokenizer_bos(t), 261);
    CHECK_EQ_INT(hl_tokenizer_n_vocab(t), 263);

    char buf[32];
    CHECK_EQ_INT(hl_token_piece(t, 260, false, buf, sizeof buf), 2);
    CHECK(memcmp(buf, " w", 2) == 0);
    CHECK_EQ_INT(hl_token_piece(t, 262, false, buf, sizeof buf), 0);
    CHECK_EQ_INT(hl_token_piece(t, 262, true, buf, sizeof buf), 10);
    CHECK_EQ_INT(hl_token_piece(t, 263, true, buf, sizeof buf), -1);
    CHECK_EQ_INT(hl_token_piece(t, -5, true, buf, sizeof buf), -1);

    /* streaming: "\xe4\xb8\xad" (3 byte tokens) comes out only when complete */
    hl_detok d = {{0}, 0};
    int32_t cjk[3];
    CHECK_EQ_INT(hl_tokenize(t, "\xe4\xb8\xad!", 4, false, false, ids, 64), 4);
    memcpy(cjk, ids, sizeof cjk);
    CHECK_EQ_INT(hl_detok_push(t, &d, cjk[0], buf, sizeof buf), 0);
    CHECK_EQ_INT(hl_detok_push(t, &d, cjk[1], buf, sizeof buf), 0);
    CHECK_EQ_INT(hl_detok_push(t, &d, cjk[2], buf, sizeof buf), 3);
    CHECK(memcmp(buf, "\xe4\xb8\xad", 3) == 0);
    CHECK_EQ_INT(hl_detok_push(t, &d, ids[3], buf, sizeof buf), 1);
    /* an incomplete tail is released by flush */
    CHECK_EQ_INT(hl_detok_push(t, &d, cjk[0], buf, sizeof buf), 0);
    CHECK_EQ_INT(hl_detok_flush(&d, buf, sizeof buf), 1);
    CHECK_EQ_INT(hl_detok_flush(&d, buf, sizeof buf), 0);
    /* invalid bytes pass through: 0xff alone */
    CHECK_EQ_INT(hl_tokenize(t, "\xff", 1, false, false, ids, 64), 3); /* U+FFFD, as llama.cpp */
    hl_tokenizer_free(t);
}

/* Tokenizes s (copied into an exactly sized heap buffer, no terminator, so
 * ASan sees any over-read) with add_special and parse_special as given. */
static int64_t tok_heap(const hl_tokenizer *t, const char *s, bool sp, int32_t *ids, int64_t cap) {
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1);
    if (!b) return -1;
    memcpy(b, s, n);
    int64_t k = hl_tokenize(t, b, n, sp, sp, ids, cap);
    free(b);
    return k;
}

/* Special-token partitioning on heap text. Regression: the special-token
 * search used memmem, which the sanitizer build (no _GNU_SOURCE) saw as an
 * implicitly declared int function, so the match pointer was truncated to 32
 * bits and the next fragment got a wild offset (SEGV in memmem). */
TEST(tokenizer_special_partition) {
    hl_err e = {{0}};
    hl_tokenizer *t = synth("gpt2", "gpt-2", &e);
    CHECK(t != NULL);
    if (!t) return;
    int32_t ids[64];
    /* adjacent specials, at the start, in the middle and as the last bytes */
    int64_t k =
        tok_heap(t, "<|im_end|>hello<|im_end|><|endoftext|>hello<|endoftext|>", true, ids, 64);
    CHECK_EQ_INT(k, 6);
    if (k == 6) {
        CHECK_EQ_INT(ids[0], 262);
        CHECK_EQ_INT(ids[1], 259);
        CHECK_EQ_INT(ids[2], 262);
        CHECK_EQ_INT(ids[3], 261);
        CHECK_EQ_INT(ids[4], 259);
        CHECK_EQ_INT(ids[5], 261);
    }
    /* a special's prefix at the very end is text, not a match */
    k = tok_heap(t, "hello<|im_end", true, ids, 64);
    CHECK(k > 1);
    for (int64_t i = 0; i < k && i < 64; i++) CHECK(ids[i] != 262);
    /* the last byte of the special missing, then the whole special */
    k = tok_heap(t, "<|im_end<|im_end|>", true, ids, 64);
    CHECK(k > 1 && k <= 64);
    if (k > 1 && k <= 64) CHECK_EQ_INT(ids[k - 1], 262);
    /* a single byte, shorter than every special */
    CHECK_EQ_INT(tok_heap(t, "h", true, ids, 64), 1);
    /* without parse_special control tokens stay text */
    k = tok_heap(t, "hello<|im_end|>", false, ids, 64);
    CHECK(k > 2);
    for (int64_t i = 0; i < k && i < 64; i++) CHECK(ids[i] != 262);
    hl_tokenizer_free(t);
}

/* The exact golden case that crashed `make asan` (qwen2, mode 1). */
TEST(tokenizer_qwen2_special_text_regression) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ggml-vocab-qwen2.gguf", vocab_dir());
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        fprintf(stderr, "  skip: %s absent\n", path);
        return;
    }
    fclose(probe);
    bool unsup;
    hl_tokenizer *t = load_vocab(path, &unsup);
    CHECK(t != NULL);
    if (!t) return;
    int32_t ids[64];
    int64_t k = tok_heap(t, "<s> </s> <unk> <pad> <mask> [CLS] [SEP] [MASK]", true, ids, 64);
    CHECK(k >= 0 && k <= 64);
    if (k >= 0 && k <= 64) {
        bool ok = same_ids(ids, k,
                           "44047 29 220 128247 366 3122 29 366 13242 29 366 11258 29 508 "
                           "87716 60 508 81376 60 508 49863 60");
        if (!ok) print_ids("got ", ids, k);
        CHECK(ok);
    }
    hl_tokenizer_free(t);
}

TEST(tokenizer_speed_1mb) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ggml-vocab-llama-bpe.gguf", vocab_dir());
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        fprintf(stderr, "  skip: %s absent\n", path);
        return;
    }
    fclose(probe);
    bool unsup;
    hl_tokenizer *t = load_vocab(path, &unsup);
    CHECK(t != NULL);
    if (!t) return;
    size_t n = 1 << 20;
    char *text = malloc(n);
    const char *chunk =
        "The quick brown fox jumps over the lazy dog 1234567; \xe4\xbd\xa0\xe5\xa5\xbd "
        "\xf0\x9f\x98\x81\n    def f(x): return x*x  \n";
    size_t cl = strlen(chunk);
    for (size_t i = 0; i < n; i++) text[i] = chunk[i % cl];
    memset(text + n / 2, 'a', 100000); /* one long word */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *ids;
    int64_t k = tok_all(t, text, n, false, &ids);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "  1 MiB -> %lld tokens in %.3f s\n", (long long)k, s);
    CHECK(k > 100000);
    CHECK(s < 10.0); /* generous: sanitizer builds are slow; -O2 is ~0.3 s */
    free(ids);
    free(text);
    hl_tokenizer_free(t);
}
