/* cmd_bench.c - `heylookllm bench`: prompt and generation throughput in the
 * manner of llama-bench, plus the memory bandwidth they use.
 *
 *   heylookllm bench --model M [-p 512] [-n 128] [-r 5] [-t N] [--backend B]
 *                    [--parallel S [--parallel-prompt P]] [--csv]
 *
 * pp<P>: P random tokens prefilled into an empty context as one batch;
 * tg<N>: N tokens decoded one at a time from an empty context, each step's
 * greedy token read as a real decoding loop reads it (hl_ctx_argmax);
 * tg<N>x<S> (--parallel S): S sequences, each first prefilled with P random
 * tokens (untimed), then N steps that each decode one token of every
 * sequence in one batch; tokens/s is the aggregate S*N over the steps'
 * time (llama-batched-bench's generation figure). Each test
 * runs once to warm up, then r times; tokens/s is the mean over the runs
 * with its sample standard deviation. gb_per_s is the weight bytes one
 * forward pass reads (hl_model_pass_bytes) times the passes per second, and
 * bw_fraction divides it by the read bandwidth this command measures first
 * (a multi-threaded streaming read of a 512 MiB buffer, best of 5; on the
 * CUDA backend the GPU's device-to-device copy rate), so the figures say
 * how close decode runs to the memory limit. KV-cache reads are
 * not counted (they are small beside the weights at these lengths).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../backend/cpu/kernels.h"
#include "../engine/model.h"
#include "../util/pool.h"
#include "catalog.h"
#include "cli.h"
#include "../util/clock.h"

static void usage(void) {
    fprintf(stderr,
            "usage: heylookllm bench --model NAME|PATH [options]\n"
            "  -p N        prompt tokens of the pp test (default 512; 0 = no pp test)\n"
            "  -n N        generated tokens of the tg test (default 128; 0 = no tg test)\n"
            "  -r N        repetitions (default 5)\n"
            "  -t N        threads (default: all CPUs)\n"
            "  --backend B auto (default), cpu or cuda\n"
            "  --parallel S          also run S sequences decoding together (tg<N>xS)\n"
            "  --parallel-prompt P   prompt tokens of each of those sequences (default 128)\n"
            "  --csv       print model,test,tokens_per_s,stddev,gb_per_s,bw_fraction rows\n");
}

/* ------------------------------------------------------ read bandwidth -- */

typedef struct bw_job {
    const uint64_t *buf;
    size_t n_words, per_task;
    uint64_t sink[64];
} bw_job;

static void bw_task(void *arg, int task, int thread) {
    bw_job *j = arg;
    size_t a = (size_t)task * j->per_task, b = a + j->per_task;
    if (b > j->n_words) b = j->n_words;
    uint64_t acc[8] = {0};
    for (size_t i = a; i + 8 <= b; i += 8)
        for (int k = 0; k < 8; k++) acc[k] ^= j->buf[i + k];
    j->sink[thread & 63] ^= acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

/* Best-of-5 streaming read bandwidth in GB/s over the pool's threads. */
static double measure_bandwidth(hl_pool *pool) {
    const size_t bytes = (size_t)512 << 20;
    uint64_t *buf = malloc(bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < bytes / 8; i++) buf[i] = i * 0x9e3779b97f4a7c15ull;
    bw_job j = {.buf = buf, .n_words = bytes / 8};
    int n_tasks = hl_pool_threads(pool) * 16;
    j.per_task = (j.n_words + (size_t)n_tasks - 1) / (size_t)n_tasks;
    j.per_task = (j.per_task + 7) & ~(size_t)7;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = hl_now_s();
        hl_pool_run(pool, bw_task, &j, n_tasks);
        double dt = hl_now_s() - t0;
        if (dt > 0 && bytes / dt / 1e9 > best) best = bytes / dt / 1e9;
    }
    volatile uint64_t keep = j.sink[0];
    (void)keep;
    free(buf);
    return best;
}

/* ---------------------------------------------------------------- tests -- */

typedef struct bench_result {
    double mean, sd; /* tokens/s */
    double passes;   /* forward passes per run */
    double mean_s;   /* seconds per run */
} bench_result;

static int run_pp(hl_ctx *c, const int32_t *ids, int n, double *secs, hl_err *e) {
    hl_ctx_seq_truncate(c, 0, 0);
    double t0 = hl_now_s();
    if (hl_ctx_prefill(c, 0, ids, n, e) < 0) return -1;
    *secs = hl_now_s() - t0;
    return 0;
}

static int run_tg(hl_ctx *c, const int32_t *ids, int n, double *secs, hl_err *e) {
    hl_ctx_seq_truncate(c, 0, 0);
    double t0 = hl_now_s();
    for (int i = 0; i < n; i++) {
        int32_t tok = ids[i], pos = i, seq = 0;
        bool want = true;
        hl_batch b = {.n = 1, .token = &tok, .pos = &pos, .seq = &seq, .want_logits = &want};
        if (hl_ctx_decode(c, &b, e) < 0) return -1;
        if (hl_ctx_argmax(c, 0) < 0) return hl_errf(e, "no logits");
    }
    *secs = hl_now_s() - t0;
    return 0;
}

/* S sequences prefilled with P tokens each (untimed), then n steps of one
 * token per sequence; secs covers the steps. */
typedef struct par_spec {
    int n_seq, n_prompt;
} par_spec;
static par_spec g_par;

static int run_par(hl_ctx *c, const int32_t *ids, int n, double *secs, hl_err *e) {
    int S = g_par.n_seq, P = g_par.n_prompt;
    int32_t tok[256], pos[256], seq[256];
    bool want[256];
    for (int s = 0; s < S; s++) {
        hl_ctx_seq_truncate(c, s, 0);
        if (P > 0 && hl_ctx_prefill(c, s, ids + s, P, e) < 0) return -1;
    }
    double t0 = hl_now_s();
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < S; s++) {
            tok[s] = ids[(i + s) % n];
            pos[s] = P + i;
            seq[s] = s;
            want[s] = true;
        }
        hl_batch b = {.n = S, .token = tok, .pos = pos, .seq = seq, .want_logits = want};
        if (hl_ctx_decode(c, &b, e) < 0) return -1;
        for (int s = 0; s < S; s++)
            if (hl_ctx_argmax(c, s) < 0) return hl_errf(e, "no logits");
    }
    *secs = hl_now_s() - t0;
    return 0;
}

static int bench_test(hl_ctx *c, int mode, const int32_t *ids, int n, int reps, bench_result *r,
                      hl_err *e) {
    int (*fn)(hl_ctx *, const int32_t *, int, double *, hl_err *) =
        mode == 0 ? run_pp : mode == 1 ? run_tg : run_par;
    bool pp = mode == 0;
    double secs, sum = 0, sum2 = 0, tsum = 0, toks = mode == 2 ? (double)n * g_par.n_seq : n;
    if (fn(c, ids, n, &secs, e) < 0) return -1; /* warm-up */
    for (int i = 0; i < reps; i++) {
        if (fn(c, ids, n, &secs, e) < 0) return -1;
        double ts = toks / secs;
        sum += ts;
        sum2 += ts * ts;
        tsum += secs;
    }
    r->mean = sum / reps;
    r->sd = reps > 1 ? sqrt(fmax(0, (sum2 - sum * sum / reps) / (reps - 1))) : 0;
    r->mean_s = tsum / reps;
    int n_batch = hl_ctx_params_get(c)->n_batch;
    r->passes = pp ? (double)((n + n_batch - 1) / n_batch) : (double)n;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    const char *model_arg = NULL, *backend = "auto";
    int n_pp = 512, n_tg = 128, reps = 5, n_threads = 0, n_par = 0, n_par_prompt = 128;
    bool csv = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        if (!strcmp(a, "--csv")) { csv = true; continue; }
        if (!v) {
            fprintf(stderr, "heylookllm bench: option '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        char *end;
        long x = strtol(v, &end, 10);
        bool num = *v && !*end && x >= 0 && x <= 1 << 20;
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) { model_arg = v; continue; }
        if (!strcmp(a, "--backend")) { backend = v; continue; }
        if (!num) {
            fprintf(stderr, "heylookllm bench: %s wants a count, got '%s'\n", a, v);
            return 2;
        }
        if (!strcmp(a, "-p")) n_pp = (int)x;
        else if (!strcmp(a, "-n")) n_tg = (int)x;
        else if (!strcmp(a, "-r")) reps = (int)x;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) n_threads = (int)x;
        else if (!strcmp(a, "--parallel")) n_par = (int)x;
        else if (!strcmp(a, "--parallel-prompt")) n_par_prompt = (int)x;
        else {
            fprintf(stderr, "heylookllm bench: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (!model_arg || reps < 1 || (n_pp == 0 && n_tg == 0) || n_par > 256) {
        usage();
        return 2;
    }
    hl_backend be;
    if (hl_cli_backend("bench", "--backend", backend, &be)) return 2;
    hl_err e = {0};
    char path[4096];
    if (hl_model_resolve(model_arg, path, sizeof path, &e) < 0) {
        fprintf(stderr, "heylookllm bench: %s\n", e.msg);
        return 1;
    }
    hl_model *m = NULL;
    hl_ctx *c = NULL;
    hl_pool *pool = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    hl_model_opts mo = {.backend = be};
    if (hl_model_load_opts(&m, path, &mo, &e) < 0) goto fail;
    bool gpu = hl_model_backend(m) == HL_BACKEND_CUDA;
    const hl_hparams *hp = hl_model_hparams(m);
    int need = (n_pp > n_tg ? n_pp : n_tg) + 1;
    if (n_par && n_par_prompt + n_tg + 1 > need) need = n_par_prompt + n_tg + 1;
    if (need > hp->n_ctx_train) {
        hl_errf(&e, "%d tokens do not fit the model's context of %d", need - 1, hp->n_ctx_train);
        goto fail;
    }
    int threads = n_threads > 0 ? n_threads : hl_cpu_count();
    pool = hl_pool_new(threads);
    if (!pool) {
        hl_errf(&e, "cannot start %d threads", threads);
        goto fail;
    }
    double bw = gpu ? hl_gpu_measure_bandwidth(0) / 1e9 : measure_bandwidth(pool);
    hl_pool_free(pool);
    pool = NULL;
    int n_batch = n_pp > 0 ? n_pp : 1;
    if (n_par > n_batch) n_batch = n_par;
    if (n_par_prompt > n_batch) n_batch = n_par_prompt;
    hl_ctx_params cp = {.n_ctx = need, .n_seq = n_par > 1 ? n_par : 1, .n_threads = threads,
                        .n_logits = n_par > 1 ? n_par : 1, .n_batch = n_batch};
    g_par = (par_spec){n_par, n_par_prompt};
    if (hl_ctx_new(&c, m, &cp, &e) < 0) goto fail;
    need += n_par; /* run_par reads ids + s */
    ids = malloc(sizeof(int32_t) * (size_t)need);
    if (!ids) {
        hl_errf(&e, "out of memory");
        goto fail;
    }
    uint64_t s = 42;
    for (int i = 0; i < need; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % (uint64_t)hp->n_vocab);
    }
    double gb = (double)hl_model_pass_bytes(m) / 1e9;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (csv)
        printf("model,test,tokens_per_s,stddev,gb_per_s,bw_fraction\n");
    else
    {
        char where[320];
        if (gpu) {
            hl_gpu_desc gd;
            hl_gpu_info(0, &gd);
            snprintf(where, sizeof where, "cuda on %s | copy bandwidth", gd.name);
        } else {
            snprintf(where, sizeof where, "%d threads | kernels %s | read bandwidth", threads,
                     hl_kernels_best()->name);
        }
        if (!csv)
            printf("%s | %s | %.1f MB read per pass | %s %.1f GB/s\n\n"
                   "| test | t/s | GB/s | of bandwidth |\n|---|---|---|---|\n",
                   name, hl_model_desc(m), gb * 1e3, where, bw);
    }
    for (int k = 0; k < 3; k++) {
        int n = k == 0 ? n_pp : n_tg;
        if (n == 0 || (k == 2 && n_par < 1)) continue;
        bench_result r;
        if (bench_test(c, k, ids, n, reps, &r, &e) < 0) goto fail;
        double gbs = gb * r.passes / r.mean_s, frac = bw > 0 ? gbs / bw : 0;
        char test[64];
        snprintf(test, sizeof test, k == 2 ? "tg%dx%d" : k == 0 ? "pp%d" : "tg%d", n, n_par);
        if (csv)
            printf("%s,%s,%.2f,%.2f,%.2f,%.3f\n", name, test, r.mean, r.sd, gbs, frac);
        else
            printf("| %s | %.2f ± %.2f | %.2f | %.0f%% |\n", test, r.mean, r.sd, gbs, 100 * frac);
        fflush(stdout);
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "heylookllm bench: %s\n", e.msg);
    free(ids);
    hl_pool_free(pool);
    hl_ctx_free(c);
    hl_model_free(m);
    return rc;
}
