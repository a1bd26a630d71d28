/* router.h - the models a server offers, loaded on demand behind an LRU
 * bounded by max_loaded_models and a memory budget.
 *
 *   hl_router *r; hl_router_new(&r, &cfg_models, n, &(hl_router_params){.max_loaded = 2}, &e);
 *   hl_router_prewarm(r, "qwen");                      // at start, in the background
 *   rc = hl_router_acquire(r, "qwen", &sched, &waiter, &e);   // 0: use sched; 1: wait; <0: error
 *   ... hl_router_release(r, sched) when the request is done ...
 *
 * Contract. The router owns one loader thread, every loaded model and its
 * scheduler. A model is acquired per request (its in-flight count rises) and
 * released when the request has ended; a model with requests in flight or
 * `pinned` is never evicted. Loads run one at a time on the loader thread:
 * first idle models are evicted, least recently used first, until the new
 * model fits both limits (memory is freed *before* the new model loads; the
 * budget counts weights and KV cache wherever the backend keeps them); if
 * it cannot fit because the others are busy or pinned, its waiters get
 * HL_ROUTER_NO_ROOM. Requests for a model that is loading wait for that
 * load: acquire returns 1 and calls the waiter's fn once the load has ended
 * either way (from the loader thread, with the router's lock held: fn must
 * be short and must not call the router); the caller then acquires again.
 * After hl_router_cancel_wait returns, fn is not running and will not run. A failed load is remembered (its error is returned) until the
 * model is requested again after HL_ROUTER_RETRY_S seconds. Any thread may
 * call any function; hl_router_free must be the last call.
 */
#ifndef HL_ROUTER_H
#define HL_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/model.h"
#include "../sched/sched.h"
#include "../util/err.h"

#define HL_ROUTER_RETRY_S 30

/* Sampling defaults of a model (models.yaml); a request's own fields win. */
enum {
    HL_DEF_TEMPERATURE = 1u << 0,
    HL_DEF_TOP_P = 1u << 1,
    HL_DEF_TOP_K = 1u << 2,
    HL_DEF_MIN_P = 1u << 3,
    HL_DEF_MAX_TOKENS = 1u << 4,
    HL_DEF_REPETITION_PENALTY = 1u << 5,
    HL_DEF_REPETITION_CONTEXT_SIZE = 1u << 6,
};
typedef struct hl_model_defaults {
    uint32_t set; /* HL_DEF_* bits of the fields given */
    float temperature, top_p, min_p, repetition_penalty;
    int top_k, max_tokens, repetition_context_size;
} hl_model_defaults;

/* One model the router may load (copied at hl_router_new). */
typedef struct hl_router_model {
    const char *id;
    const char *path;            /* GGUF file */
    const char *template_file;   /* NULL = the model's own chat template */
    hl_sched_params sched;       /* n_seq, n_ctx, n_threads, ... (chat_template, name: set by the router) */
    hl_backend backend;          /* where it runs (AUTO: CUDA when the engine can, else the CPU) */
    int device;                  /* CUDA device index */
    bool pinned;
    int idle_unload_s;           /* 0 = never */
    const char *unsupported;     /* non-NULL: a configured feature not built yet; loading fails
                                    with "<unsupported> is not supported yet" */
    hl_model_defaults defaults;
} hl_router_model;

typedef struct hl_router_params {
    int max_loaded;              /* 0 = 2 */
    uint64_t mem_budget;         /* bytes for weights + KV of all loaded models; 0 = 90% of the
                                    memory available at start */
} hl_router_params;

typedef struct hl_router hl_router;

int hl_router_new(hl_router **out, const hl_router_model *models, int n, const hl_router_params *p, hl_err *e);
/* Unloads everything (hl_sched_shutdown first, so waiting readers wake). */
void hl_router_free(hl_router *r);
/* Cancels every job of every loaded model (graceful shutdown's last step). */
void hl_router_shutdown(hl_router *r);

/* Starts loading id in the background (no waiter). */
void hl_router_prewarm(hl_router *r, const char *id);

typedef struct hl_router_waiter {
    void (*fn)(void *arg);
    void *arg;
    struct hl_router_waiter *next; /* the router's */
} hl_router_waiter;

/* acquire results */
#define HL_ROUTER_WAIT 1          /* loading: the waiter will be called */
#define HL_ROUTER_UNKNOWN (-1)    /* 404: no such model */
#define HL_ROUTER_FAILED (-2)     /* 500: the load failed (e says why) */
#define HL_ROUTER_NO_ROOM (-3)    /* 503: the others are busy or pinned */
#define HL_ROUTER_STOPPING (-4)   /* 503: shutting down */

int hl_router_acquire(hl_router *r, const char *id, hl_sched **out, hl_router_waiter *w, hl_err *e);
/* Takes a waiter back (its request went away before the load ended). */
void hl_router_cancel_wait(hl_router *r, hl_router_waiter *w);
void hl_router_release(hl_router *r, hl_sched *s);

typedef enum hl_model_status { HL_STATUS_UNLOADED, HL_STATUS_LOADING, HL_STATUS_LOADED } hl_model_status;

typedef struct hl_router_info {
    const char *id;
    hl_model_status status;
    int in_flight;
    bool pinned;
    uint64_t bytes;              /* weights + context when loaded, else the estimate */
    double load_s;               /* last load's duration, -1 before one */
    int64_t created;             /* file mtime */
    char error[HL_ERR_MSG_MAX];  /* the last load error, "" if none */
    uint64_t hits, misses, evictions, loads;
    int n_seq, n_ctx, max_queue; /* the scheduler's settings (n_ctx 0 until first loaded) */
    hl_backend backend;          /* the loaded model's (CPU or CUDA), else the configured one */
    hl_backend backend_configured;
    int device;                  /* the configured CUDA device index */
} hl_router_info;

int hl_router_count(const hl_router *r);
/* The sampling defaults of model id (NULL if unknown); valid until hl_router_free. */
const hl_model_defaults *hl_router_defaults(const hl_router *r, const char *id);
/* A snapshot of model i (0 <= i < count). */
void hl_router_info_at(hl_router *r, int i, hl_router_info *out);
/* Model i's serving figures (kept across unloads; valid until hl_router_free). */
hl_stats *hl_router_stats(hl_router *r, int i);
uint64_t hl_router_budget(const hl_router *r);
uint64_t hl_router_used(hl_router *r);
int hl_router_max_loaded(const hl_router *r);

#endif
