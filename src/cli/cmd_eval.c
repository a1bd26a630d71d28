/* cmd_eval.c - `heylookllm eval`: the verification harness's view of the
 * engine. For each prompt it prints one JSON line with the prompt's token
 * ids, the top-5 ids of the last position's logits and the greedy
 * continuation (argmax, exactly n tokens, not stopping at end-of-generation
 * tokens), and appends the last position's logits (f32) to --logits-out.
 * tests/ref/check_goldens.py compares these with llama.cpp's.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/model.h"
#include "cli.h"
#include "catalog.h"

#define MAX_PROMPT 4096

static void usage(void) {
    fprintf(stderr,
            "usage: heylookllm eval --model NAME|PATH (--prompts FILE | --prompt-tokens FILE)\n"
            "                       [--n-predict N] [--logits-out FILE] [--kv-type f16|f32] [-t THREADS]\n"
            "                       [--backend auto|cpu|cuda]\n"
            "  --prompts FILE        one prompt per line; \\n \\t \\\\ escapes\n"
            "  --prompt-tokens FILE  one prompt per line as space-separated token ids\n"
            "  --backend B           where the model runs (default: $HL_BACKEND, else auto = CUDA when\n"
            "                        built with it and a GPU can run the model, else the CPU)\n");
}

/* Undoes the escapes of one prompt line in place; returns its length. */
static size_t unescape(char *s) {
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\\' && s[i + 1]) {
            char c = s[++i];
            s[o++] = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = 0;
    return o;
}

static int parse_ids(char *line, int32_t *ids, int cap, int n_vocab) {
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *end;
        errno = 0;
        long v = strtol(tok, &end, 10);
        if (errno || *end || v < 0 || v >= n_vocab || n == cap) return -1;
        ids[n++] = (int32_t)v;
    }
    return n;
}

typedef struct step {
    int32_t best, second;
    float gap, spread;
} step;

static step rank2(const float *x, int n) {
    step s = {0, -1, 0, 0};
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        sum += x[i];
        sum2 += (double)x[i] * x[i];
        if (x[i] > x[s.best]) s.second = s.best, s.best = i;
        else if (i != s.best && (s.second < 0 || x[i] > x[s.second])) s.second = i;
    }
    if (s.second < 0) s.second = s.best;
    s.gap = x[s.best] - x[s.second];
    double mean = sum / n, var = sum2 / n - mean * mean;
    s.spread = (float)sqrt(var > 0 ? var : 0);
    return s;
}

int cmd_eval(int argc, char **argv) {
    const char *model_arg = NULL, *prompts = NULL, *token_file = NULL, *logits_out = NULL;
    int n_predict = 32, n_threads = 0;
    bool kv_f32 = false, backend_given = false;
    hl_model_opts mo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--model") && has) model_arg = argv[++i];
        else if (!strcmp(a, "--prompts") && has) prompts = argv[++i];
        else if (!strcmp(a, "--prompt-tokens") && has) token_file = argv[++i];
        else if (!strcmp(a, "--logits-out") && has) logits_out = argv[++i];
        else if (!strcmp(a, "--n-predict") && has) n_predict = atoi(argv[++i]);
        else if (!strcmp(a, "--kv-type") && has) {
            const char *v = argv[++i];
            if (strcmp(v, "f16") && strcmp(v, "f32")) {
                fprintf(stderr, "heylookllm eval: --kv-type is f16 or f32, not '%s'\n", v);
                return 2;
            }
            kv_f32 = !strcmp(v, "f32");
        } else if (!strcmp(a, "--backend") && has) {
            if (hl_cli_backend("eval", "--backend", argv[++i], &mo.backend)) return 2;
            backend_given = true;
        }
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has) n_threads = atoi(argv[++i]);
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else {
            fprintf(stderr, "heylookllm eval: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (!model_arg || (!prompts == !token_file) || n_predict < 0) {
        usage();
        return 2;
    }
    hl_err e = {0};
    char path[4096];
    if (hl_model_resolve(model_arg, path, sizeof path, &e) < 0) {
        fprintf(stderr, "heylookllm eval: %s\n", e.msg);
        return 1;
    }
    FILE *in = fopen(prompts ? prompts : token_file, "r");
    if (!in) {
        fprintf(stderr, "heylookllm eval: cannot open %s: %s\n", prompts ? prompts : token_file, strerror(errno));
        return 1;
    }
    hl_model *m = NULL;
    hl_ctx *c = NULL;
    FILE *lo = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (MAX_PROMPT + (size_t)n_predict));
    step *steps = malloc(sizeof(step) * ((size_t)n_predict + 1));
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 1;
    if (!ids || !steps) goto done;
    /* without --backend, hl_model_load honours $HL_BACKEND */
    if ((backend_given ? hl_model_load_opts(&m, path, &mo, &e) : hl_model_load(&m, path, &e)) < 0) {
        fprintf(stderr, "heylookllm eval: %s\n", e.msg);
        goto done;
    }
    const hl_hparams *hp = hl_model_hparams(m);
    hl_ctx_params cp = {.n_ctx = MAX_PROMPT + n_predict, .n_seq = 1, .n_batch = 512, .n_logits = 1,
                        .n_threads = n_threads, .kv_f32 = kv_f32};
    if (hl_ctx_new(&c, m, &cp, &e) < 0) {
        fprintf(stderr, "heylookllm eval: %s\n", e.msg);
        goto done;
    }
    if (logits_out && !(lo = fopen(logits_out, "wb"))) {
        fprintf(stderr, "heylookllm eval: cannot write %s: %s\n", logits_out, strerror(errno));
        goto done;
    }
    const hl_tokenizer *tok = hl_model_tokenizer(m);
    int idx = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, in)) >= 0) {
        if (len && line[len - 1] == '\n') line[--len] = 0;
        if (len == 0) continue;
        int n;
        if (prompts) {
            size_t l = unescape(line);
            int64_t nt = hl_tokenize(tok, line, l, true, false, ids, MAX_PROMPT);
            if (nt < 0 || nt > MAX_PROMPT) {
                fprintf(stderr, "heylookllm eval: prompt %d is longer than %d tokens\n", idx, MAX_PROMPT);
                goto done;
            }
            n = (int)nt;
        } else {
            n = parse_ids(line, ids, MAX_PROMPT, hp->n_vocab);
            if (n <= 0) {
                fprintf(stderr, "heylookllm eval: line %d of %s: bad token ids\n", idx + 1, token_file);
                goto done;
            }
        }
        hl_ctx_seq_truncate(c, 0, 0);
        if (hl_ctx_prefill(c, 0, ids, n, &e) < 0) {
            fprintf(stderr, "heylookllm eval: %s\n", e.msg);
            goto done;
        }
        const float *lg = hl_ctx_logits(c, 0);
        if (lo && fwrite(lg, sizeof(float), (size_t)hp->n_vocab, lo) != (size_t)hp->n_vocab) {
            fprintf(stderr, "heylookllm eval: write to %s failed\n", logits_out);
            goto done;
        }
        int top[5];
        for (int r = 0; r < 5; r++) {
            int best = -1;
            for (int i = 0; i < hp->n_vocab; i++) {
                bool used = false;
                for (int q = 0; q < r; q++) used |= top[q] == i;
                if (!used && (best < 0 || lg[i] > lg[best])) best = i;
            }
            top[r] = best;
        }
        printf("{\"i\": %d, \"tokens\": [", idx);
        for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("], \"top5\": [%d, %d, %d, %d, %d]", top[0], top[1], top[2], top[3], top[4]);
        /* Greedy steps; their ids are printed after the loop with the per-step ranks. */
        step st = rank2(lg, hp->n_vocab);
        for (int g = 0; g < n_predict; g++) {
            steps[g] = st;
            if (g + 1 == n_predict) break;
            int32_t p1 = n + g, s0 = 0, next = st.best;
            bool w = true;
            hl_batch b = {.n = 1, .token = &next, .pos = &p1, .seq = &s0, .want_logits = &w};
            if (hl_ctx_decode(c, &b, &e) < 0) {
                fprintf(stderr, "heylookllm eval: %s\n", e.msg);
                goto done;
            }
            st = rank2(hl_ctx_logits(c, 0), hp->n_vocab);
        }
        printf(", \"greedy\": [");
        for (int g = 0; g < n_predict; g++) printf("%s%d", g ? ", " : "", steps[g].best);
        printf("], \"second\": [");
        for (int g = 0; g < n_predict; g++) printf("%s%d", g ? ", " : "", steps[g].second);
        printf("], \"gap\": [");
        for (int g = 0; g < n_predict; g++) printf("%s%.5g", g ? ", " : "", steps[g].gap);
        printf("], \"spread\": [");
        for (int g = 0; g < n_predict; g++) printf("%s%.5g", g ? ", " : "", steps[g].spread);
        printf("]}\n");
        fflush(stdout);
        idx++;
    }
    rc = 0;
done:
    if (lo && fclose(lo) != 0) rc = 1;
    fclose(in);
    free(line);
    free(ids);
    free(steps);
    hl_ctx_free(c);
    hl_model_free(m);
    return rc;
}
