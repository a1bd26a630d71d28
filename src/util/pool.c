/* pool.c - see pool.h.
 *
 * Protocol: the caller publishes (fn, ctx, n_tasks), resets the task counter,
 * then bumps `gen`. Workers watch `gen`; each takes tasks until the counter
 * runs past n_tasks, then bumps `n_done`. The caller works too and waits for
 * n_done == n_threads - 1, so the job's ctx is never touched after return.
 * A worker that has spun for a while without a new generation registers in
 * `n_sleeping` and waits on the condition variable; the caller only takes
 * the mutex to broadcast when someone sleeps. All atomics are seq_cst, which
 * is what makes the sleep/wake handshake race-free (see hl_pool_run).
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ROUNDS 20000

/* Tells the core this is a spin-wait: on x86 `pause` stops the loop from
 * flooding the pipeline, which matters when the other worker is an SMT
 * sibling doing the real work. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef struct worker {
    hl_pool *pool;
    int index;
    pthread_t thread;
} worker;

struct hl_pool {
    int n_threads;
    worker *workers;
    hl_pool_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
    atomic_int n_done;
    atomic_uint gen;
    atomic_int n_sleeping;
    atomic_bool quit;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void run_tasks(hl_pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    hl_pool *p = w->pool;
    /* Generation 0 is "no job yet": a worker that starts late must still
     * take the job published before it ran, so it may not read gen here. */
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = atomic_load(&p->gen);
        run_tasks(p, w->index);
        atomic_fetch_add(&p->n_done, 1);
    }
}

int hl_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

hl_pool *hl_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    hl_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            p->n_threads = i; /* join the ones that started */
            hl_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void hl_pool_free(hl_pool *p) {
    if (!p) return;
    atomic_store(&p->quit, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int hl_pool_threads(const hl_pool *p) { return p->n_threads; }

void hl_pool_run(hl_pool *p, hl_pool_fn fn, void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->n_done, 0);
    atomic_store(&p->next_task, 0);
    atomic_fetch_add(&p->gen, 1);
    /* A worker registers in n_sleeping before its last check of gen; since
     * both are seq_cst, either it sees the new gen or we see it sleeping. */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    run_tasks(p, 0);
    for (int spins = 0; atomic_load(&p->n_done) < p->n_threads - 1; spins++) {
        if (spins < SPIN_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}
