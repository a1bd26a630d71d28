/* fuzz_tokenizer.c - libFuzzer target: tokenizes arbitrary bytes (invalid
 * UTF-8 included) with a fixed vocabulary, then turns every id back into its
 * piece and streams it through the detokenizer.
 *
 * The vocabulary is $HL_FUZZ_VOCAB (any GGUF with a tokenizer, e.g.
 * .cache/vocab/ggml-vocab-llama-bpe.gguf) or, when unset, a small byte-level
 * BPE vocabulary built in-process with the llama3 pre-tokenizer. The first
 * input byte picks add_special / parse_special.
 *
 *   make fuzz && HL_FUZZ_VOCAB=.cache/vocab/ggml-vocab-qwen2.gguf build-fuzz/fuzz_tokenizer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/engine/tokenizer.h"
#include "../src/engine/tokenizer_internal.h"
#include "../src/gguf/gguf.h"

static hl_tokenizer *g_tok;

static hl_tokenizer *build_synthetic(void) {
    hl_err e = {{0}};
    gguf_writer *w = gguf_writer_new();
    if (!w) return NULL;
    static char sym[256][3];
    const char *toks[270];
    int32_t types[270];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int k = tok_byte_to_utf8((uint8_t)b, sym[b]);
        sym[b][k] = 0;
        toks[n] = sym[b];
        types[n++] = 1;
    }
    const char *extra[] = {"he",         "ll", "hell", "hello", "\xc4\xa0w", "<|endoftext|>",
                           "<|im_end|>", "<u>"};
    for (int i = 0; i < 8; i++) {
        toks[n] = extra[i];
        types[n++] = i == 7 ? 4 : i >= 5 ? 3 : 1;
    }
    const char *merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w"};
    gguf_set_str(w, "tokenizer.ggml.model", "gpt2", &e);
    gguf_set_str(w, "tokenizer.ggml.pre", "llama-bpe", &e);
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n, &e);
    gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_I32, types, (uint64_t)n, &e);
    gguf_set_arr_str(w, "tokenizer.ggml.merges", merges, 5, &e);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 261, &e);
    char path[] = "/tmp/fuzz_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        gguf_writer_free(w);
        return NULL;
    }
    close(fd);
    int rc = gguf_writer_write(w, path, &e);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    hl_tokenizer *t = NULL;
    if (rc == 0 && gguf_open(&f, path, &e) == 0) {
        if (hl_tokenizer_load(&t, f, &e) < 0) t = NULL;
        gguf_close(f);
    }
    unlink(path);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *p = getenv("HL_FUZZ_VOCAB");
    hl_err e = {{0}};
    if (p && *p) {
        gguf_file *f = NULL;
        if (gguf_open(&f, p, &e) < 0 || hl_tokenizer_load(&g_tok, f, &e) < 0) {
            fprintf(stderr, "fuzz_tokenizer: %s: %s\n", p, e.msg);
            abort();
        }
        gguf_close(f);
    } else {
        g_tok = build_synthetic();
        if (!g_tok) {
            fprintf(stderr, "fuzz_tokenizer: cannot build the synthetic vocabulary\n");
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool add = data[0] & 1, sp = data[0] & 2;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    int32_t small[8];
    int64_t k = hl_tokenize(g_tok, text, n, add, sp, small, 8);
    if (k < 0) abort();
    int32_t *ids = malloc((size_t)(k ? k : 1) * sizeof *ids);
    if (!ids) return 0;
    if (hl_tokenize(g_tok, text, n, add, sp, ids, k) != k) abort();
    hl_detok d = {{0}, 0};
    char buf[4096];
    for (int64_t i = 0; i < k; i++) {
        if (ids[i] < 0 || ids[i] >= hl_tokenizer_n_vocab(g_tok)) abort();
        int pl = hl_token_piece(g_tok, ids[i], true, buf, sizeof buf);
        if (pl < 0) abort();
        if (hl_detok_push(g_tok, &d, ids[i], buf, sizeof buf) < 0) abort();
    }
    if (hl_detok_flush(&d, buf, sizeof buf) < 0) abort();
    free(ids);
    return 0;
}
