/* cmd_tokenize.c - `heylookllm tokenize --model FILE --file TEXTFILE [--no-special]`:
 * prints the token ids of the whole file on one line, separated by single
 * spaces, with a newline at the end.
 *
 * Default: BOS/EOS are added as the model's metadata asks and text that
 * spells a special token is that token. --no-special: no BOS/EOS, special-
 * token text is plain text. Errors: one line on stderr, exit status 1.
 * Runs on the main thread; owns the gguf_file, the tokenizer and the text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/tokenizer.h"
#include "../gguf/gguf.h"
#include "../util/buf.h"
#include "cli.h"

static void usage(void) {
    fprintf(stderr, "usage: heylookllm tokenize --model FILE --file TEXTFILE [--no-special]\n");
}

/* Reads a whole file; *out is malloc'd (NUL-terminated for convenience). */
static int read_all(const char *path, char **out, size_t *n) {
    hl_buf b = {0};
    if (hl_buf_read_file(&b, path) < 0) {
        hl_buf_free(&b);
        return -1;
    }
    *out = b.p;
    *n = b.len;
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--no-special") == 0) {
            special = false;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "heylookllm tokenize: unknown or incomplete argument '%s'\n", argv[i]);
            usage();
            return 1;
        }
    }
    if (!model || !file) {
        fprintf(stderr, "heylookllm tokenize: --model and --file are required\n");
        usage();
        return 1;
    }

    hl_err e = {{0}};
    gguf_file *g = NULL;
    if (gguf_open(&g, model, &e) < 0) {
        fprintf(stderr, "heylookllm tokenize: %s\n", e.msg);
        return 1;
    }
    hl_tokenizer *t = NULL;
    int rc = hl_tokenizer_load(&t, g, &e);
    gguf_close(g);
    if (rc < 0) {
        fprintf(stderr, "heylookllm tokenize: %s: %s\n", model, e.msg);
        return 1;
    }
    char *text = NULL;
    size_t n = 0;
    if (read_all(file, &text, &n) < 0) {
        fprintf(stderr, "heylookllm tokenize: cannot read '%s'\n", file);
        hl_tokenizer_free(t);
        return 1;
    }
    int64_t cap = (int64_t)n + 16;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int64_t k = ids ? hl_tokenize(t, text, n, special, special, ids, cap) : -1;
    if (k > cap) { /* cannot happen (at most one id per byte plus BOS/EOS), but be safe */
        free(ids);
        cap = k;
        ids = malloc((size_t)cap * sizeof *ids);
        k = ids ? hl_tokenize(t, text, n, special, special, ids, cap) : -1;
    }
    free(text);
    hl_tokenizer_free(t);
    if (k < 0) {
        free(ids);
        fprintf(stderr, "heylookllm tokenize: tokenizing failed (out of memory)\n");
        return 1;
    }
    for (int64_t i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "heylookllm tokenize: cannot write the output\n");
        return 1;
    }
    return 0;
}
