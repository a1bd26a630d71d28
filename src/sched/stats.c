/* stats.c - see stats.h. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

void hl_stats_init(hl_stats *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

void hl_stats_destroy(hl_stats *s) { pthread_mutex_destroy(&s->mu); }

void hl_stats_job(hl_stats *s, int outcome, double queue_s, double ttft_s) {
    pthread_mutex_lock(&s->mu);
    s->requests++;
    s->failed += outcome == 1;
    s->cancelled += outcome == 2;
    size_t i = (size_t)(s->n_window % HL_STATS_WINDOW);
    s->queue[i] = queue_s;
    s->ttft[i] = ttft_s;
    s->n_window++;
    pthread_mutex_unlock(&s->mu);
}

void hl_stats_pass(hl_stats *s, double dt, int n_prompt, int n_gen) {
    int n = n_prompt + n_gen;
    if (n <= 0) return;
    pthread_mutex_lock(&s->mu);
    s->prompt_tokens += (uint64_t)n_prompt;
    s->gen_tokens += (uint64_t)n_gen;
    s->prompt_s += dt * n_prompt / n;
    s->gen_s += dt * n_gen / n;
    pthread_mutex_unlock(&s->mu);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the n sorted values. */
static double pct(const double *v, int n, double p) {
    if (n == 0) return -1;
    int k = (int)(p * n + 0.999999) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

void hl_stats_merge(hl_stats *const *all, int n_all, hl_stats_view *v) {
    memset(v, 0, sizeof *v);
    size_t cap = (size_t)(n_all > 0 ? n_all : 1) * HL_STATS_WINDOW;
    double *ttft = malloc(cap * sizeof *ttft), *queue = malloc(cap * sizeof *queue);
    int n_ttft = 0, n_queue = 0;
    for (int k = 0; k < n_all; k++) {
        hl_stats *s = all[k];
        pthread_mutex_lock(&s->mu);
        v->requests += s->requests;
        v->failed += s->failed;
        v->cancelled += s->cancelled;
        v->prompt_tokens += s->prompt_tokens;
        v->gen_tokens += s->gen_tokens;
        v->prompt_s += s->prompt_s;
        v->gen_s += s->gen_s;
        int n = s->n_window < HL_STATS_WINDOW ? (int)s->n_window : HL_STATS_WINDOW;
        for (int i = 0; i < n && ttft && queue; i++) {
            queue[n_queue++] = s->queue[i];
            if (s->ttft[i] >= 0) ttft[n_ttft++] = s->ttft[i];
        }
        pthread_mutex_unlock(&s->mu);
    }
    v->prompt_tps = v->prompt_s > 0 ? v->prompt_tokens / v->prompt_s : 0;
    v->gen_tps = v->gen_s > 0 ? v->gen_tokens / v->gen_s : 0;
    v->ttft_p50 = v->ttft_p95 = v->queue_p50 = v->queue_p95 = -1;
    if (ttft && queue) {
        qsort(ttft, (size_t)n_ttft, sizeof *ttft, cmp_double);
        qsort(queue, (size_t)n_queue, sizeof *queue, cmp_double);
        v->ttft_p50 = pct(ttft, n_ttft, 0.50);
        v->ttft_p95 = pct(ttft, n_ttft, 0.95);
        v->queue_p50 = pct(queue, n_queue, 0.50);
        v->queue_p95 = pct(queue, n_queue, 0.95);
        v->n_samples = n_queue;
    }
    free(ttft);
    free(queue);
}

void hl_stats_read(hl_stats *s, hl_stats_view *v) { hl_stats_merge(&s, 1, v); }
