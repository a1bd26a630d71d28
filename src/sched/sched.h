/* sched.h - one worker per loaded model: it owns the model's context (KV
 * cache of n_seq sequences), takes jobs from a bounded queue and runs them
 * with continuous batching (every step decodes one token of every running
 * sequence in one batch; a new job joins at the next step).
 *
 *   hl_sched *s; hl_sched_new(&s, model, &(hl_sched_params){.n_seq = 4}, &e);
 *   hl_job *j; int rc = hl_sched_submit(s, &(hl_job_params){.messages_json = m, .n = 1, ...}, &j, &e);
 *   hl_job_lock(j); ... read hl_job_choice(j, 0)->text ...; hl_job_unlock(j);
 *   hl_job_release(j); ... hl_sched_free(s);
 *
 * Contract. hl_sched borrows the model (the caller frees it after
 * hl_sched_free) and owns one hl_ctx, the chat template and one worker
 * thread. hl_sched_submit may be called from any thread: it renders the chat
 * template and tokenizes on the caller's thread, then queues the job. A job
 * is shared by the worker and its submitter and refcounted: the submitter
 * holds one reference and drops it with hl_job_release (which also cancels
 * the job if it still runs). Output is read under hl_job_lock; the worker
 * appends under the same lock and, when it does and the job's `waiting`
 * flag is set, clears the flag and calls the job's notify callback with the
 * lock held (the callback must not take the job lock or block). The worker
 * allocates per job at admission (sampler, output buffers), never per token
 * except for output growth.
 *
 * Backpressure: a choice whose unsent text (text.len - sent, `sent` being
 * kept by the reader) passes max_unsent bytes is paused (the others go on)
 * until the reader catches up. Disconnects: while a job is `waiting` with a
 * client_fd >= 0, the worker checks that socket each step (a non-blocking
 * peek) and cancels the job when the peer has closed it; a cancelled job's
 * sequences are freed before the next step.
 */
#ifndef HL_SCHED_H
#define HL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/model.h"
#include "../engine/sampler.h"
#include "../engine/stop.h"
#include "../util/buf.h"
#include "../util/err.h"
#include "stats.h"

typedef struct hl_sched_params {
    int n_seq;          /* sequences running at once (0 = 4) */
    int n_ctx;          /* positions per sequence (0 = min(train ctx, 4096)) */
    int n_threads;      /* 0 = all CPUs */
    int n_batch;        /* most tokens in one forward pass (0 = 512) */
    int max_queue;      /* jobs waiting for a sequence before submit reports busy (0 = 64) */
    size_t max_unsent;  /* bytes a slow reader may fall behind before its choice pauses
                           (0 = 256 KiB) */
    const char *chat_template; /* template text overriding the model's; NULL = the model's
                                  tokenizer.chat_template, or ChatML when it has none */
    const char *name;   /* for log lines */
    bool generation_lock; /* one request at a time (its n choices still run together) */
    hl_stats *stats;    /* where the worker records figures (stats.h); NULL = nowhere. Must
                           outlive the scheduler. */
} hl_sched_params;

typedef struct hl_sched hl_sched;

int hl_sched_new(hl_sched **out, const hl_model *m, const hl_sched_params *p, hl_err *e);
/* Stops the worker: every running or queued job ends with an error ("the
 * server is shutting down", its reader notified) and later submits fail.
 * The scheduler stays allocated, so threads still holding it may call it. */
void hl_sched_shutdown(hl_sched *s);
/* hl_sched_shutdown, then frees the context and the template. Jobs still
 * referenced by submitters stay valid until released. */
void hl_sched_free(hl_sched *s);
const hl_sched_params *hl_sched_params_get(const hl_sched *s);
/* Bytes of the context (KV cache and scratch) the scheduler holds. */
uint64_t hl_sched_ctx_bytes(const hl_sched *s);
/* Where the chat template came from: "gguf", "file" or "chatml (the model has none)". */
const char *hl_sched_template_origin(const hl_sched *s);

typedef struct hl_job hl_job;

typedef struct hl_job_params {
    /* exactly one of: */
    const char *messages_json;  /* chat: a JSON array of {role, content} for the template */
    const char *prompt;         /* completion: raw text (prompt_len bytes) */
    size_t prompt_len;
    hl_sampler_params sampling; /* logit_bias ids are checked against the vocabulary here */
    int n;                      /* choices (1..n_seq): n sequences with the same prompt */
    int max_tokens;             /* -1 = until end of generation or a full context */
    const char *const *stop;    /* n_stop stop strings */
    const size_t *stop_len;
    int n_stop;
    int top_logprobs;           /* 0..20; only with logprobs */
    bool logprobs;              /* record each token's logprob (and top_logprobs alternatives) */
    bool notify_each_token;     /* notify on every output (streaming); else only when done */
    void (*notify)(void *arg);  /* see the contract; may be NULL */
    void *notify_arg;
    int client_fd;              /* socket to watch while waiting, -1 = none */
} hl_job_params;

/* Submit results. */
#define HL_SUBMIT_BAD_REQUEST (-1) /* 400: prompt too long, bad logit_bias id, n too large,
                                      the template refused the conversation (raise_exception) */
#define HL_SUBMIT_BUSY (-2)        /* 503: the queue is full */
#define HL_SUBMIT_ERROR (-3)       /* 500: the template failed, out of memory, shutting down */

/* Returns 0 with a job holding one reference for the caller, or one of the
 * codes above with e saying why (nothing queued). */
int hl_sched_submit(hl_sched *s, const hl_job_params *p, hl_job **out, hl_err *e);

void hl_job_lock(hl_job *j);
void hl_job_unlock(hl_job *j);
/* Drops the caller's reference; cancels the job if it is still running. */
void hl_job_release(hl_job *j);
/* Asks the worker to stop the job at its next step (finish_reason stays
 * unset; the job ends as cancelled). Safe without the lock. */
void hl_job_cancel(hl_job *j);

typedef enum hl_finish {
    HL_FINISH_NONE = 0, /* still running */
    HL_FINISH_STOP,     /* end of generation token or a stop string */
    HL_FINISH_LENGTH,   /* max_tokens or a full context */
    HL_FINISH_CANCELLED,
    HL_FINISH_ERROR,
} hl_finish;

typedef struct hl_job_logprob {
    int32_t id;
    float logprob;
    int n_top;
    hl_logprob top[HL_SAMPLER_MAX_TOP_LOGPROBS];
    size_t text_offset; /* where the token's bytes start in the choice's stream of text */
} hl_job_logprob;

/* One choice's output; read and `sent`/`lp_sent` written under the lock. */
typedef struct hl_job_choice {
    hl_buf text;           /* text so far (stop strings never appear in it) */
    size_t sent;           /* reader's: bytes of text already delivered */
    hl_job_logprob *lp;    /* n_lp entries when logprobs were asked */
    int n_lp;
    int lp_sent;           /* reader's: entries already delivered */
    int n_tokens;          /* tokens generated (an end-of-generation token excluded) */
    hl_finish finish;
} hl_job_choice;

/* Under the lock. */
int hl_job_n_choices(const hl_job *j);
hl_job_choice *hl_job_choice_at(hl_job *j, int i);
int hl_job_n_prompt(const hl_job *j);
/* True once every choice has finished (or the job failed / was cancelled). */
bool hl_job_done(const hl_job *j);
/* The job's error, when a choice finished with HL_FINISH_ERROR; else NULL. */
const char *hl_job_error(const hl_job *j);
/* Set by the reader, under the lock, before it parks waiting for output. */
void hl_job_set_waiting(hl_job *j, bool waiting);
/* Seconds from submit to the first generated token (-1 before it). */
double hl_job_ttft(const hl_job *j);

/* A token's text for logprobs (special tokens spelled out); valid while
 * the model lives. Any thread. */
int hl_job_token_piece(const hl_job *j, int32_t id, char *buf, size_t cap);

#endif
