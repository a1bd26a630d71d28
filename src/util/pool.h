/* pool.h - a fixed thread pool that runs one parallel job at a time.
 *
 *   hl_pool *p = hl_pool_new(4);
 *   hl_pool_run(p, fn, ctx, n_tasks);   // fn(ctx, task, thread) for task in [0, n_tasks)
 *   hl_pool_free(p);
 *
 * Contract. hl_pool_run hands tasks out through an atomic counter to the
 * calling thread (thread index 0) and n_threads-1 workers, and returns when
 * every task has finished; it must be called from one thread at a time (the
 * pool belongs to one model context). Workers spin briefly after a job, then
 * sleep on a condition variable, so back-to-back jobs (one per matmul) cost
 * microseconds, while an idle pool costs nothing. Nothing is allocated per
 * job. Threads are numbered so callers can index per-thread scratch.
 */
#ifndef HL_POOL_H
#define HL_POOL_H

typedef struct hl_pool hl_pool;
typedef void (*hl_pool_fn)(void *ctx, int task, int thread);

/* n_threads >= 1 counts the caller. NULL when threads cannot be created. */
hl_pool *hl_pool_new(int n_threads);
void hl_pool_free(hl_pool *p);
int hl_pool_threads(const hl_pool *p);
void hl_pool_run(hl_pool *p, hl_pool_fn fn, void *ctx, int n_tasks);

/* Number of online CPUs (at least 1). */
int hl_cpu_count(void);

#endif
