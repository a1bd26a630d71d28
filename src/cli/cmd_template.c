/* cmd_template.c - `heylookllm template --template FILE --messages FILE.json
 * [--add-generation-prompt] [--bos-token S] [--eos-token S] [--extra FILE.json]`:
 * renders a chat template (engine/template.h) and prints the text exactly,
 * with no newline added, so it can be compared byte for byte with Hugging
 * Face's apply_chat_template (tests/template/reference.py).
 *
 * --template is a Jinja file, or a GGUF file (its name ends in .gguf): then
 * its tokenizer.chat_template is rendered, and the BOS and EOS tokens
 * default to the texts of its tokenizer.ggml.bos_token_id / eos_token_id.
 * --messages holds the JSON array of messages; --extra a JSON object whose
 * keys become more template variables (tools, documents, enable_thinking...).
 *
 * Exit status: 0 rendered; 1 the template failed (syntax error, type error,
 * a limit), with "heylookllm template: <message>" on stderr; 3 the template
 * called raise_exception (same line, its message); 2 bad usage or unreadable
 * input. Runs on the main thread; owns everything it reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/template.h"
#include "../gguf/gguf.h"
#include "../util/buf.h"
#include "cli.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: heylookllm template --template FILE.jinja|MODEL.gguf --messages FILE.json\n"
        "         [--add-generation-prompt] [--bos-token S] [--eos-token S] [--extra FILE.json]\n");
}

/* Reads a whole file, NUL-terminated; NULL if it cannot. */
static char *read_file(const char *path, size_t *len) {
    hl_buf b = {0};
    if (hl_buf_read_file(&b, path) < 0) {
        hl_buf_free(&b);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}

static char *str_dup_view(hl_str s) {
    char *p = malloc(s.len + 1);
    if (!p) return NULL;
    memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    return p;
}

/* The text of token `key`'s id in f's vocabulary, or NULL. */
static char *token_text(const gguf_file *f, const char *key) {
    uint32_t id;
    const gguf_array *toks;
    hl_str s;
    if (gguf_get_u32(f, key, &id) < 0 || gguf_get_arr(f, "tokenizer.ggml.tokens", &toks) < 0 ||
        gguf_arr_str(toks, id, &s) < 0)
        return NULL;
    return str_dup_view(s);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cmd_template(int argc, char **argv) {
    const char *tpath = NULL, *mpath = NULL, *xpath = NULL, *bos = NULL, *eos = NULL;
    bool gen = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--template") && has_val)
            tpath = argv[++i];
        else if (!strcmp(a, "--messages") && has_val)
            mpath = argv[++i];
        else if (!strcmp(a, "--extra") && has_val)
            xpath = argv[++i];
        else if (!strcmp(a, "--bos-token") && has_val)
            bos = argv[++i];
        else if (!strcmp(a, "--eos-token") && has_val)
            eos = argv[++i];
        else if (!strcmp(a, "--add-generation-prompt"))
            gen = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "heylookllm template: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!tpath || !mpath) {
        fprintf(stderr, "heylookllm template: --template and --messages are required\n");
        usage(stderr);
        return 2;
    }

    int status = 2;
    char *src = NULL, *messages = NULL, *extra = NULL, *gguf_bos = NULL, *gguf_eos = NULL;
    size_t src_len = 0;
    hl_template *t = NULL;
    hl_buf out = {0};
    hl_err e = {{0}};
    if (ends_with(tpath, ".gguf")) {
        gguf_file *g = NULL;
        hl_str s;
        if (gguf_open(&g, tpath, &e) < 0) {
            fprintf(stderr, "heylookllm template: %s\n", e.msg);
            goto done;
        }
        if (gguf_get_str(g, "tokenizer.chat_template", &s) == 0 && (src = str_dup_view(s)))
            src_len = s.len;
        gguf_bos = token_text(g, "tokenizer.ggml.bos_token_id");
        gguf_eos = token_text(g, "tokenizer.ggml.eos_token_id");
        gguf_close(g);
        if (!src) {
            fprintf(stderr, "heylookllm template: %s has no tokenizer.chat_template\n", tpath);
            goto done;
        }
    } else if (!(src = read_file(tpath, &src_len))) {
        fprintf(stderr, "heylookllm template: cannot read '%s'\n", tpath);
        goto done;
    }
    if (!(messages = read_file(mpath, NULL))) {
        fprintf(stderr, "heylookllm template: cannot read '%s'\n", mpath);
        goto done;
    }
    if (xpath && !(extra = read_file(xpath, NULL))) {
        fprintf(stderr, "heylookllm template: cannot read '%s'\n", xpath);
        goto done;
    }

    status = 1;
    if (hl_template_parse(&t, src, src_len, &e) < 0) {
        fprintf(stderr, "heylookllm template: %s\n", e.msg);
        goto done;
    }
    hl_template_vars v = {.messages_json = messages,
                          .add_generation_prompt = gen,
                          .bos_token = bos ? bos : gguf_bos,
                          .eos_token = eos ? eos : gguf_eos,
                          .extra_json = extra};
    int rc = hl_template_render(t, &v, &out, &e);
    if (rc < 0) {
        fprintf(stderr, "heylookllm template: %s\n", e.msg);
        status = rc == HL_TEMPLATE_RAISED ? 3 : 1;
        goto done;
    }
    if ((out.len && fwrite(out.p, 1, out.len, stdout) != out.len) || fflush(stdout) != 0) {
        fprintf(stderr, "heylookllm template: cannot write the output\n");
        goto done;
    }
    status = 0;
done:
    hl_buf_free(&out);
    hl_template_free(t);
    free(src);
    free(messages);
    free(extra);
    free(gguf_bos);
    free(gguf_eos);
    return status;
}
