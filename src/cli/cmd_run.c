/* cmd_run.c - `heylookllm run`: loads a model, prefills the prompt and
 * streams the generated text (only that) to stdout; prompt and generation
 * speed go to stderr at the end. Generation ends at an end-of-generation
 * token, a stop string, -n tokens or a full context.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../engine/model.h"
#include "../engine/sampler.h"
#include "../engine/stop.h"
#include "catalog.h"
#include "cli.h"
#include "../util/clock.h"

static void usage(void) {
    fprintf(stderr,
            "usage: heylookllm run --model NAME|PATH --prompt TEXT [options]\n"
            "  -n N                  tokens to generate (default 128; -1 = until the context is full)\n"
            "  --temp T              temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K --top-p P --min-p P\n"
            "  --repeat-penalty R --repeat-last-n N --presence-penalty P --frequency-penalty F\n"
            "  --seed S              sampling seed (default: random)\n"
            "  --stop TEXT           stop string (repeatable)\n"
            "  -c, --ctx-size N      context size (default 4096 or the model's, if smaller)\n"
            "  -t, --threads N       threads (default: all CPUs)\n"
            "  --backend B           auto, cpu or cuda (default: $HL_BACKEND, else auto = CUDA when built\n"
            "                        with it and a GPU can run the model, else the CPU)\n"
            "  --no-special          treat special-token text in the prompt as plain text\n");
}

static int write_all(const char *p, size_t n) {
    if (n && fwrite(p, 1, n, stdout) != n) return -1;
    return fflush(stdout) == 0 ? 0 : -1;
}

int cmd_run(int argc, char **argv) {
    const char *model_arg = NULL, *prompt = NULL;
    int n_predict = 128, n_threads = 0, n_ctx = 0;
    bool parse_special = true;
    hl_sampler_params sp;
    hl_sampler_params_default(&sp);
    sp.temperature = 0.8f;
    const char *stops[HL_STOP_MAX];
    size_t stop_lens[HL_STOP_MAX];
    int n_stops = 0;
    hl_model_opts mo = {0};
    bool backend_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (!strcmp(a, "--no-special")) { parse_special = false; continue; }
        if (!v) {
            fprintf(stderr, "heylookllm run: option '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) model_arg = v;
        else if (!strcmp(a, "--prompt") || !strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) n_predict = atoi(v);
        else if (!strcmp(a, "--temp")) sp.temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-k")) sp.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) sp.top_p = strtof(v, NULL);
        else if (!strcmp(a, "--min-p")) sp.min_p = strtof(v, NULL);
        else if (!strcmp(a, "--repeat-penalty")) sp.repetition_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--repeat-last-n")) sp.repetition_context_size = atoi(v);
        else if (!strcmp(a, "--presence-penalty")) sp.presence_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--frequency-penalty")) sp.frequency_penalty = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) sp.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) n_threads = atoi(v);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) n_ctx = atoi(v);
        else if (!strcmp(a, "--backend")) {
            if (hl_cli_backend("run", "--backend", v, &mo.backend)) return 2;
            backend_given = true;
        } else if (!strcmp(a, "--stop")) {
            if (n_stops == HL_STOP_MAX) {
                fprintf(stderr, "heylookllm run: at most %d stop strings\n", HL_STOP_MAX);
                return 2;
            }
            stops[n_stops] = v;
            stop_lens[n_stops++] = strlen(v);
        } else {
            fprintf(stderr, "heylookllm run: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (!model_arg || !prompt) {
        usage();
        return 2;
    }
    hl_err e = {0};
    hl_stop stop;
    if (hl_stop_init(&stop, stops, stop_lens, n_stops, &e) < 0) {
        fprintf(stderr, "heylookllm run: %s\n", e.msg);
        return 2;
    }
    char path[4096];
    if (hl_model_resolve(model_arg, path, sizeof path, &e) < 0) {
        fprintf(stderr, "heylookllm run: %s\n", e.msg);
        return 1;
    }
    hl_model *m = NULL;
    hl_ctx *c = NULL;
    hl_sampler *smp = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    double t0 = hl_now_s();
    /* without --backend, hl_model_load honours $HL_BACKEND */
    if ((backend_given ? hl_model_load_opts(&m, path, &mo, &e) : hl_model_load(&m, path, &e)) < 0) goto fail;
    const hl_hparams *hp = hl_model_hparams(m);
    const hl_tokenizer *tok = hl_model_tokenizer(m);
    hl_ctx_params cp = {.n_ctx = n_ctx, .n_seq = 1, .n_threads = n_threads, .n_logits = 1};
    if (hl_ctx_new(&c, m, &cp, &e) < 0) goto fail;
    int ctx_size = hl_ctx_params_get(c)->n_ctx;
    size_t plen = strlen(prompt);
    int64_t n_prompt = hl_tokenize(tok, prompt, plen, true, parse_special, NULL, 0);
    if (n_prompt < 0) {
        hl_errf(&e, "cannot tokenize the prompt");
        goto fail;
    }
    if (n_prompt >= ctx_size) {
        hl_errf(&e, "the prompt is %lld tokens; the context holds %d (raise --ctx-size, up to the "
                    "model's %d)", (long long)n_prompt, ctx_size, hp->n_ctx_train);
        goto fail;
    }
    if (n_prompt == 0) {
        hl_errf(&e, "the prompt is empty and the model adds no BOS token");
        goto fail;
    }
    ids = malloc(sizeof(int32_t) * (size_t)ctx_size);
    if (!ids) {
        hl_errf(&e, "out of memory");
        goto fail;
    }
    hl_tokenize(tok, prompt, plen, true, parse_special, ids, n_prompt);
    if (hl_sampler_init(&smp, hp->n_vocab, &sp, &e) < 0) goto fail;
    if (hl_sampler_accept_prompt(smp, ids, (int32_t)n_prompt, &e) < 0) goto fail;
    double t_load = hl_now_s() - t0;

    double t1 = hl_now_s();
    if (hl_ctx_prefill(c, 0, ids, (int)n_prompt, &e) < 0) goto fail;
    double t_prompt = hl_now_s() - t1;

    double t2 = hl_now_s();
    int n_gen = 0, n_pos = (int)n_prompt;
    hl_detok dt = {0};
    char piece[512], out[512 + HL_STOP_MAX_LEN];
    const char *why = "length";
    for (;;) {
        if (n_predict >= 0 && n_gen >= n_predict) break;
        if (n_pos >= ctx_size) {
            why = "context full";
            break;
        }
        int32_t next = hl_sampler_sample(smp, hl_ctx_logits(c, 0), &e);
        if (next < 0) goto fail;
        n_gen++;
        if (hl_tokenizer_is_eog(tok, next)) {
            why = "end of generation";
            break;
        }
        if (hl_sampler_accept(smp, next, &e) < 0) goto fail;
        int n = hl_detok_push(tok, &dt, next, piece, sizeof piece);
        size_t n_out = 0;
        int st = n > 0 ? hl_stop_feed(&stop, piece, (size_t)n, out, sizeof out, &n_out, &e) : 0;
        if (st < 0) goto fail;
        if (write_all(out, n_out) < 0) {
            hl_errf(&e, "writing to standard output failed");
            goto fail;
        }
        if (st == 1) {
            why = "stop string";
            break;
        }
        bool w = true;
        int32_t seq0 = 0;
        hl_batch b = {.n = 1, .token = &next, .pos = &n_pos, .seq = &seq0, .want_logits = &w};
        if (hl_ctx_decode(c, &b, &e) < 0) goto fail;
        n_pos++;
    }
    if (hl_stop_matched(&stop) < 0) {
        int n = hl_detok_flush(&dt, piece, sizeof piece);
        size_t n_out = 0;
        if (n > 0 && hl_stop_feed(&stop, piece, (size_t)n, out, sizeof out, &n_out, &e) >= 0)
            write_all(out, n_out);
        size_t tail = hl_stop_matched(&stop) < 0 ? hl_stop_flush(&stop, out) : 0;
        write_all(out, tail);
    }
    double t_gen = hl_now_s() - t2;
    printf("\n");
    fprintf(stderr,
            "\n[%s]\nload %.2f s on %s | prompt %lld tokens, %.1f tok/s | generation %d tokens, %.1f tok/s | "
            "stop: %s\n",
            hl_model_desc(m), t_load, hl_backend_name(hl_model_backend(m)), (long long)n_prompt,
            n_prompt / (t_prompt > 0 ? t_prompt : 1e-9), n_gen, n_gen / (t_gen > 0 ? t_gen : 1e-9), why);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "heylookllm run: %s\n", e.msg);
    free(ids);
    hl_sampler_free(smp);
    hl_ctx_free(c);
    hl_model_free(m);
    return rc;
}
