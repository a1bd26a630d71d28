/* router.c - see router.h. One mutex guards every entry's state; loads,
 * evictions and idle unloads run on the loader thread, which drops the
 * mutex while it loads or frees (acquire keeps answering meanwhile: a model
 * being loaded is LOADING, one being evicted is already UNLOADED to others
 * and is never evicted while a request holds it).
 */
#include "router.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../engine/model.h"
#include "../util/clock.h"

typedef struct entry {
    hl_router_model cfg; /* strings owned (copied) */
    char *tmpl;          /* template text read at load */
    hl_model_status status;
    hl_backend backend;  /* the loaded model's; the configured one while unloaded */
    bool want_load;      /* queued for the loader */
    hl_model *model;
    hl_sched *sched;
    int in_flight;
    uint64_t bytes, estimate;
    double last_used, load_s, failed_at;
    int64_t created;
    char error[HL_ERR_MSG_MAX];
    int fail_code;       /* HL_ROUTER_FAILED or HL_ROUTER_NO_ROOM, with error and failed_at */
    hl_router_waiter *waiters;
    uint64_t hits, misses, evictions, loads;
    hl_stats stats; /* kept across unloads */
} entry;

struct hl_router {
    entry *m;
    int n;
    int max_loaded;
    uint64_t budget;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t loader;
    bool loader_started, stopping;
};

/* MemAvailable from /proc/meminfo, in bytes; 0 when unknown. */
static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static entry *find(hl_router *r, const char *id) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->m[i].cfg.id, id)) return &r->m[i];
    return NULL;
}

/* Models loaded or loading, other than `except`. */
static int n_loaded(const hl_router *r, const entry *except) {
    int n = 0;
    for (int i = 0; i < r->n; i++) n += &r->m[i] != except && r->m[i].status != HL_STATUS_UNLOADED;
    return n;
}

/* Their bytes: measured when loaded, estimated while loading. */
static uint64_t used_locked(const hl_router *r, const entry *except) {
    uint64_t u = 0;
    for (int i = 0; i < r->n; i++) {
        const entry *x = &r->m[i];
        if (x != except && x->status != HL_STATUS_UNLOADED) u += x->status == HL_STATUS_LOADED ? x->bytes : x->estimate;
    }
    return u;
}

/* Waiters are called with the lock held, so hl_router_cancel_wait (which
 * takes it) returns only once no call to that waiter is running. */
static hl_router_waiter *take_waiters(entry *x) {
    hl_router_waiter *w = x->waiters;
    x->waiters = NULL;
    return w;
}

static void wake(hl_router_waiter *w) {
    while (w) {
        hl_router_waiter *next = w->next; /* fn may free w */
        w->fn(w->arg);
        w = next;
    }
}

/* Unloads x (idle, loaded); called with the lock held, drops it while freeing. */
static void unload_locked(hl_router *r, entry *x, const char *why) {
    hl_sched *s = x->sched;
    hl_model *m = x->model;
    x->sched = NULL;
    x->model = NULL;
    x->status = HL_STATUS_UNLOADED;
    x->backend = x->cfg.backend;
    x->bytes = 0;
    pthread_mutex_unlock(&r->mu);
    fprintf(stderr, "heylookllm: unloading %s (%s)\n", x->cfg.id, why);
    hl_sched_free(s);
    hl_model_free(m);
    pthread_mutex_lock(&r->mu);
}

/* The least recently used loaded model that may go, or NULL. */
static entry *victim(hl_router *r, const entry *except) {
    entry *v = NULL;
    for (int i = 0; i < r->n; i++) {
        entry *x = &r->m[i];
        if (x == except || x->status != HL_STATUS_LOADED || x->in_flight > 0 || x->cfg.pinned) continue;
        if (!v || x->last_used < v->last_used) v = x;
    }
    return v;
}

static char *read_file(const char *path, hl_err *e) {
    hl_buf b = {0};
    if (hl_buf_read_file(&b, path) < 0 || !b.len) {
        hl_buf_free(&b);
        hl_errf(e, "cannot read the chat template '%s' (or it is empty)", path);
        return NULL;
    }
    return b.p;
}

/* Ends a load that did not happen: waiters are woken and see the error. */
static void fail_locked(entry *x, int code) {
    x->status = HL_STATUS_UNLOADED;
    x->fail_code = code;
    x->failed_at = hl_now_s();
    fprintf(stderr, "heylookllm: %s %s: %s\n", x->cfg.id, code == HL_ROUTER_NO_ROOM ? "cannot load now" : "failed to load",
            x->error);
    wake(take_waiters(x));
}

typedef struct progress {
    const char *id;
    double t0, last;
} progress;

/* A progress line at most once a second while a load lasts. */
static void on_progress(void *arg, double frac) {
    progress *p = arg;
    double t = hl_now_s();
    if (t - p->last < 1.0 || frac >= 1.0) return;
    p->last = t;
    fprintf(stderr, "heylookllm: loading %s: %.0f%% (%.1f s)\n", p->id, frac * 100, t - p->t0);
}

/* Loads x; lock held on entry and exit, dropped during the work. x is
 * LOADING throughout, so requests for it queue as waiters meanwhile. */
static void load_locked(hl_router *r, entry *x) {
    hl_err e = {0};
    x->want_load = false;
    x->status = HL_STATUS_LOADING;
    x->error[0] = 0;
    x->misses++;
    if (x->cfg.unsupported) {
        snprintf(x->error, sizeof x->error, "%s is not supported yet", x->cfg.unsupported);
        fail_locked(x, HL_ROUTER_FAILED);
        return;
    }
    hl_ctx_params cp = {.n_ctx = x->cfg.sched.n_ctx, .n_seq = x->cfg.sched.n_seq ? x->cfg.sched.n_seq : 4,
                        .n_threads = x->cfg.sched.n_threads, .n_batch = x->cfg.sched.n_batch};
    /* The estimate counts weights and KV cache as host memory. A model that
     * ends up on CUDA holds little of it in RAM (the file's pages are read
     * once, on upload), so for it this is conservative; it is still what
     * admission and eviction use, as the backend is known only after load. */
    uint64_t est = 0;
    pthread_mutex_unlock(&r->mu);
    int rc = hl_model_estimate(x->cfg.path, &cp, &est, &e);
    pthread_mutex_lock(&r->mu);
    x->estimate = est;
    if (rc < 0) {
        snprintf(x->error, sizeof x->error, "%s", e.msg);
        fail_locked(x, HL_ROUTER_FAILED);
        return;
    }
    if (est > r->budget) {
        snprintf(x->error, sizeof x->error,
                 "it needs about %.2f GiB (weights and KV cache) but the memory budget is %.2f GiB: lower its "
                 "n_ctx or parallel, or raise the budget",
                 est / 1073741824.0, r->budget / 1073741824.0);
        fail_locked(x, HL_ROUTER_FAILED);
        return;
    }
    /* room first: evict idle models, least recently used first, before loading */
    for (;;) {
        bool count_ok = n_loaded(r, x) < r->max_loaded;
        if (count_ok && used_locked(r, x) + est <= r->budget) break;
        entry *v = victim(r, x);
        if (!v) {
            snprintf(x->error, sizeof x->error,
                     "no room: %d other model(s) loaded (max_loaded_models %d), %.2f of %.2f GiB used, none idle "
                     "(busy or pinned); retry shortly",
                     n_loaded(r, x), r->max_loaded, used_locked(r, x) / 1073741824.0, r->budget / 1073741824.0);
            fail_locked(x, HL_ROUTER_NO_ROOM);
            return;
        }
        v->evictions++;
        unload_locked(r, v, count_ok ? "evicted: memory budget" : "evicted: max_loaded_models");
    }
    pthread_mutex_unlock(&r->mu);
    double t0 = hl_now_s();
    fprintf(stderr, "heylookllm: loading %s from %s (backend %s; about %.0f MiB with its KV cache)\n", x->cfg.id,
            x->cfg.path, hl_backend_name(x->cfg.backend), est / 1048576.0);
    hl_model *m = NULL;
    hl_sched *s = NULL;
    char *tmpl = NULL;
    hl_sched_params sp = x->cfg.sched;
    sp.name = x->cfg.id;
    sp.stats = &x->stats;
    rc = -1;
    if (x->cfg.template_file && !(tmpl = read_file(x->cfg.template_file, &e))) goto done;
    sp.chat_template = tmpl;
    progress pr = {.id = x->cfg.id, .t0 = t0, .last = t0};
    hl_model_opts mo = {.backend = x->cfg.backend, .device = x->cfg.device, .progress = on_progress,
                        .progress_arg = &pr};
    if (hl_model_load_opts(&m, x->cfg.path, &mo, &e) < 0 || hl_sched_new(&s, m, &sp, &e) < 0) goto done;
    rc = 0;
done:
    free(tmpl);
    if (rc < 0) hl_model_free(m);
    double dt = hl_now_s() - t0;
    pthread_mutex_lock(&r->mu);
    if (rc < 0) {
        snprintf(x->error, sizeof x->error, "%s", e.msg);
        fail_locked(x, HL_ROUTER_FAILED);
        return;
    }
    x->model = m;
    x->sched = s;
    x->backend = hl_model_backend(m);
    x->bytes = hl_model_weight_bytes(m) + hl_sched_ctx_bytes(s);
    x->status = HL_STATUS_LOADED;
    x->load_s = dt;
    x->loads++;
    x->last_used = hl_now_s();
    const hl_sched_params *p = hl_sched_params_get(s);
    fprintf(stderr, "heylookllm: %s ready in %.2f s on %s: %s; %d sequences x %d tokens; %.0f MiB; chat template: %s\n",
            x->cfg.id, dt, hl_backend_name(x->backend), hl_model_desc(m), p->n_seq, p->n_ctx, x->bytes / 1048576.0,
            hl_sched_template_origin(s));
    wake(take_waiters(x));
}

static void *loader_main(void *arg) {
    hl_router *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        entry *next = NULL;
        for (int i = 0; i < r->n && !next; i++)
            if (r->m[i].want_load) next = &r->m[i];
        if (next) {
            load_locked(r, next);
            continue;
        }
        /* idle unloads */
        double t = hl_now_s();
        for (int i = 0; i < r->n; i++) {
            entry *x = &r->m[i];
            if (x->status == HL_STATUS_LOADED && x->cfg.idle_unload_s > 0 && x->in_flight == 0 && !x->cfg.pinned &&
                t - x->last_used > x->cfg.idle_unload_s) {
                unload_locked(r, x, "idle");
                i = -1; /* the list may have changed while unlocked */
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int hl_router_new(hl_router **out, const hl_router_model *models, int n, const hl_router_params *p, hl_err *e) {
    *out = NULL;
    hl_router *r = calloc(1, sizeof *r);
    if (!r) return hl_errf(e, "out of memory");
    r->m = calloc((size_t)(n > 0 ? n : 1), sizeof *r->m);
    if (!r->m) {
        free(r);
        return hl_errf(e, "out of memory");
    }
    r->n = n;
    r->max_loaded = p->max_loaded > 0 ? p->max_loaded : 2;
    r->budget = p->mem_budget ? p->mem_budget : mem_available() / 10 * 9;
    if (!r->budget) r->budget = UINT64_MAX;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (int i = 0; i < n; i++) {
        entry *x = &r->m[i];
        x->cfg = models[i];
        x->cfg.id = dup_or_null(models[i].id);
        x->cfg.path = dup_or_null(models[i].path);
        x->cfg.template_file = dup_or_null(models[i].template_file);
        x->cfg.unsupported = dup_or_null(models[i].unsupported);
        x->backend = x->cfg.backend;
        x->load_s = -1;
        hl_stats_init(&x->stats);
        struct stat st;
        x->created = stat(models[i].path, &st) == 0 ? (int64_t)st.st_mtime : 0;
    }
    if (pthread_create(&r->loader, NULL, loader_main, r) != 0) {
        hl_router_free(r);
        return hl_errf(e, "cannot start the model loader thread");
    }
    r->loader_started = true;
    *out = r;
    return 0;
}

void hl_router_shutdown(hl_router *r) {
    pthread_mutex_lock(&r->mu);
    r->stopping = true; /* acquire refuses from now on; the loader ends after its current load */
    pthread_cond_signal(&r->cv);
    for (int i = 0; i < r->n; i++) {
        wake(take_waiters(&r->m[i]));
        if (r->m[i].sched) hl_sched_shutdown(r->m[i].sched);
    }
    pthread_mutex_unlock(&r->mu);
}

void hl_router_free(hl_router *r) {
    if (!r) return;
    if (r->loader_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = true; /* the loader finishes the load it is in, then ends */
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->loader, NULL);
    }
    for (int i = 0; i < r->n; i++) {
        entry *x = &r->m[i];
        wake(take_waiters(x));
        hl_sched_free(x->sched);
        hl_model_free(x->model);
        free((char *)x->cfg.id);
        free((char *)x->cfg.path);
        free((char *)x->cfg.template_file);
        free((char *)x->cfg.unsupported);
        hl_stats_destroy(&x->stats);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->m);
    free(r);
}

void hl_router_prewarm(hl_router *r, const char *id) {
    pthread_mutex_lock(&r->mu);
    entry *x = find(r, id);
    if (x && x->status == HL_STATUS_UNLOADED && !x->want_load) {
        x->want_load = true;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

int hl_router_acquire(hl_router *r, const char *id, hl_sched **out, hl_router_waiter *w, hl_err *e) {
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    int rc;
    entry *x = find(r, id);
    if (!x) {
        rc = HL_ROUTER_UNKNOWN;
        hl_errf(e, "The model '%s' does not exist; GET /v1/models lists the models served", id);
    } else if (r->stopping) {
        rc = HL_ROUTER_STOPPING;
        hl_errf(e, "the server is shutting down");
    } else if (x->status == HL_STATUS_LOADED) {
        x->in_flight++;
        x->hits++;
        x->last_used = hl_now_s();
        *out = x->sched;
        rc = 0;
    } else if (x->status == HL_STATUS_UNLOADED && x->error[0] &&
               hl_now_s() - x->failed_at < (x->fail_code == HL_ROUTER_NO_ROOM ? 1.0 : HL_ROUTER_RETRY_S)) {
        /* a recent failure is the answer, until it is old enough to try again */
        rc = x->fail_code;
        if (rc == HL_ROUTER_NO_ROOM) hl_errf(e, "cannot load the model '%s' now: %s", id, x->error);
        else hl_errf(e, "the model '%s' failed to load: %s", id, x->error);
    } else {
        if (x->status == HL_STATUS_UNLOADED && !x->want_load) {
            x->want_load = true;
            pthread_cond_signal(&r->cv);
        }
        if (w) {
            w->next = x->waiters;
            x->waiters = w;
        }
        rc = HL_ROUTER_WAIT;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void hl_router_cancel_wait(hl_router *r, hl_router_waiter *w) {
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        for (hl_router_waiter **pp = &r->m[i].waiters; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                goto out;
            }
out:
    pthread_mutex_unlock(&r->mu);
}

void hl_router_release(hl_router *r, hl_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        if (r->m[i].sched == s) {
            r->m[i].in_flight--;
            r->m[i].last_used = hl_now_s();
        }
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int hl_router_count(const hl_router *r) { return r->n; }

const hl_model_defaults *hl_router_defaults(const hl_router *r, const char *id) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->m[i].cfg.id, id)) return &r->m[i].cfg.defaults;
    return NULL;
}
hl_stats *hl_router_stats(hl_router *r, int i) { return &r->m[i].stats; }
uint64_t hl_router_budget(const hl_router *r) { return r->budget; }
int hl_router_max_loaded(const hl_router *r) { return r->max_loaded; }

uint64_t hl_router_used(hl_router *r) {
    pthread_mutex_lock(&r->mu);
    uint64_t u = used_locked(r, NULL);
    pthread_mutex_unlock(&r->mu);
    return u;
}

void hl_router_info_at(hl_router *r, int i, hl_router_info *out) {
    pthread_mutex_lock(&r->mu);
    entry *x = &r->m[i];
    *out = (hl_router_info){.id = x->cfg.id, .status = x->status, .in_flight = x->in_flight,
                            .pinned = x->cfg.pinned, .bytes = x->status == HL_STATUS_LOADED ? x->bytes : x->estimate,
                            .load_s = x->load_s, .created = x->created, .hits = x->hits, .misses = x->misses,
                            .evictions = x->evictions, .loads = x->loads, .backend = x->backend,
                            .backend_configured = x->cfg.backend, .device = x->cfg.device};
    snprintf(out->error, sizeof out->error, "%s", x->error);
    const hl_sched_params *sp = x->sched ? hl_sched_params_get(x->sched) : &x->cfg.sched;
    out->n_seq = sp->n_seq ? sp->n_seq : 4;
    out->n_ctx = sp->n_ctx;
    out->max_queue = sp->max_queue ? sp->max_queue : 64;
    pthread_mutex_unlock(&r->mu);
}
