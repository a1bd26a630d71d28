/* stats.h - a model's serving figures, counted by its scheduler as jobs run
 * and read by /v1/performance and /metrics.
 *
 *   hl_stats st; hl_stats_init(&st);           // owned by whoever outlives the scheduler
 *   hl_sched_params p = {.stats = &st};        // the worker records into it
 *   hl_stats_view v; hl_stats_read(&st, &v);   // any thread
 *
 * Contract. All figures are real measurements: per job, the wait in the
 * queue (submit to admission), the time to first token (submit to the first
 * generated token) and token counts; per forward pass, its duration split
 * between prompt and generated tokens by their share of the batch.
 * Percentiles cover the last HL_STATS_WINDOW jobs. A mutex guards
 * everything, so any thread may record or read.
 */
#ifndef HL_STATS_H
#define HL_STATS_H

#include <pthread.h>
#include <stdint.h>

#define HL_STATS_WINDOW 1024

typedef struct hl_stats {
    pthread_mutex_t mu;
    uint64_t requests, failed, cancelled;
    uint64_t prompt_tokens, gen_tokens;
    double prompt_s, gen_s; /* forward-pass time spent on prompt / generated tokens */
    double ttft[HL_STATS_WINDOW], queue[HL_STATS_WINDOW];
    uint64_t n_window; /* jobs recorded into the rings (the ring holds the last WINDOW) */
} hl_stats;

typedef struct hl_stats_view {
    uint64_t requests, failed, cancelled;
    uint64_t prompt_tokens, gen_tokens;
    double prompt_s, gen_s;
    double prompt_tps, gen_tps;       /* tokens per second of forward-pass time (0 before any) */
    double ttft_p50, ttft_p95;        /* seconds; -1 when no job produced a token yet */
    double queue_p50, queue_p95;      /* seconds; -1 before any job */
    int n_samples;
} hl_stats_view;

void hl_stats_init(hl_stats *s);
void hl_stats_destroy(hl_stats *s);
/* One finished job: outcome 0 ok, 1 failed, 2 cancelled; ttft < 0 when it produced no token. */
void hl_stats_job(hl_stats *s, int outcome, double queue_s, double ttft_s);
/* One forward pass of dt seconds holding n_prompt prompt and n_gen generated tokens. */
void hl_stats_pass(hl_stats *s, double dt, int n_prompt, int n_gen);
void hl_stats_read(hl_stats *s, hl_stats_view *v);
/* Totals and percentiles of several stats taken together (the overall figures); reads one. */
void hl_stats_merge(hl_stats *const *all, int n, hl_stats_view *v);

#endif
