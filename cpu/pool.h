/*
 * A small thread pool for the CPU backend: run(n_tasks, fn) spreads task indices
 * over the workers and the calling thread and returns when all are done.
 * Workers spin briefly before sleeping, because a decode step issues dozens of
 * short jobs and waking a sleeping thread costs more than the job.
 * One job at a time: run() holds the pool's lock, so sessions on several
 * threads share the pool safely (their jobs are serialised).
 */
#ifndef LCSM_CPU_POOL_H
#define LCSM_CPU_POOL_H

typedef struct lcsm_pool lcsm_pool;
/* task in [0, n_tasks); thread in [0, n_threads) (0 = the caller). */
typedef void (*lcsm_pool_fn)(void *ctx, int task, int thread);

/* n_threads >= 1 (1 = no workers). NULL on failure. */
lcsm_pool *lcsm_pool_create(int n_threads);
void lcsm_pool_destroy(lcsm_pool *p);
int lcsm_pool_threads(const lcsm_pool *p);
void lcsm_pool_run(lcsm_pool *p, int n_tasks, lcsm_pool_fn fn, void *ctx);

#endif
