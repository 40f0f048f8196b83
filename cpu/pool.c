#include "pool.h"
#include "../src/util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPIN_ROUNDS 20000 /* ~tens of microseconds of polling before sleeping */

struct lcsm_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t run_lock; /* one job at a time */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint generation; /* bumped for every job (and for shutdown) */
    /* (generation << 32) | next task: a worker only takes tasks of the job it woke
     * for, so a late worker can never take or skip a task of the next job. */
    atomic_ullong ticket;
    atomic_int done_tasks;
    atomic_int sleepers;
    atomic_int n_tasks; /* a late worker may read it while the next job sets it */
    lcsm_pool_fn fn;
    void *ctx;
    atomic_int quit; /* read by workers between jobs while destroy sets it */
};

typedef struct worker_arg {
    lcsm_pool *p;
    int id;
} worker_arg;

static void drain(lcsm_pool *p, unsigned gen, int thread)
{
    int done = 0;
    unsigned long long v = atomic_load_explicit(&p->ticket, memory_order_acquire);
    for (;;) {
        if ((unsigned)(v >> 32) != gen ||
            (int)(v & 0xffffffffu) >= atomic_load_explicit(&p->n_tasks, memory_order_seq_cst))
            break;
        if (!atomic_compare_exchange_weak_explicit(&p->ticket, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* v was reloaded */
        p->fn(p->ctx, (int)(v & 0xffffffffu), thread);
        done++;
        v = atomic_load_explicit(&p->ticket, memory_order_acquire);
    }
    if (done)
        atomic_fetch_add_explicit(&p->done_tasks, done, memory_order_release);
}

static void *worker(void *arg)
{
    worker_arg wa = *(worker_arg *)arg;
    lcsm_pool *p = wa.p;
    lcsm__free(arg);
    /* The generation the pool was created with, not the current one: a thread
     * that starts late must still see every bump since (the shutdown's too). */
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen && spins < SPIN_ROUNDS) {
            spins++;
            if ((spins & 63) == 0)
                sched_yield();
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while ((g = atomic_load(&p->generation)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (p->quit)
            return NULL;
        drain(p, g, wa.id);
    }
}

lcsm_pool *lcsm_pool_create(int n_threads)
{
    lcsm_pool *p = lcsm__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = lcsm__calloc((size_t)p->n_threads, sizeof *p->threads);
    if (!p->threads) {
        lcsm_pool_destroy(p);
        return NULL;
    }
    for (int i = 1; i < p->n_threads; i++) {
        worker_arg *wa = lcsm__malloc(sizeof *wa);
        if (!wa || (wa->p = p, wa->id = i, pthread_create(&p->threads[i], NULL, worker, wa) != 0)) {
            lcsm__free(wa);
            p->n_threads = i; /* destroy joins the ones that started */
            lcsm_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void lcsm_pool_destroy(lcsm_pool *p)
{
    if (!p)
        return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        atomic_fetch_add(&p->generation, 1);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n_threads; i++)
            pthread_join(p->threads[i], NULL);
        lcsm__free(p->threads);
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_lock);
    lcsm__free(p);
}

int lcsm_pool_threads(const lcsm_pool *p) { return p->n_threads; }

void lcsm_pool_run(lcsm_pool *p, int n_tasks, lcsm_pool_fn fn, void *ctx)
{
    pthread_mutex_lock(&p->run_lock);
    if (n_tasks <= 1 || p->n_threads == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        pthread_mutex_unlock(&p->run_lock);
        return;
    }
    pthread_mutex_lock(&p->mu);
    unsigned gen = atomic_load(&p->generation) + 1;
    /* The new ticket goes first: a late worker of the previous job still holds an
     * old ticket value, and once it can see the new (larger) n_tasks its
     * compare-exchange must already fail. Publishing n_tasks first let such a
     * worker take task n_old of the new job a second time (a tile added twice:
     * seen as rare wrong results with many threads). */
    atomic_store_explicit(&p->ticket, (unsigned long long)gen << 32, memory_order_seq_cst);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->done_tasks, 0);
    atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_seq_cst);
    /* Publish the job, then wake whoever sleeps. */
    atomic_store_explicit(&p->generation, gen, memory_order_release);
    if (atomic_load(&p->sleepers) > 0)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, gen, 0);
    while (atomic_load_explicit(&p->done_tasks, memory_order_acquire) < n_tasks)
        ;
    pthread_mutex_unlock(&p->run_lock);
}
