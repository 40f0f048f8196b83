/*
 * Host allocation for the whole library (engine and backends): plain malloc
 * and friends, plus a live count and a failure-injection hook so a test can
 * fail the n-th allocation for every n and check for a clean error and no
 * leak. Allocators we do not own (posix_memalign, FFTW's, mmap) ask
 * lcsm__alloc_fails() first and report what they hold with lcsm__alloc_track().
 * Not covered: allocations inside cJSON, FFTW's planner and OpenBLAS.
 * Device buffers of GPU backends ask lcsm__dev_alloc_fails(), a second counter
 * (the backend counts their bytes itself: lcsm_backend_stats).
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live;      /* allocations not yet freed */
static atomic_long count;     /* allocations attempted */
static atomic_long fail_at = -1; /* the attempt number that fails; -1 = none */
static atomic_int injected;   /* an injected failure happened */

int lcsm__alloc_fails(void)
{
    long n = atomic_fetch_add(&count, 1);
    if (n == atomic_load(&fail_at)) {
        atomic_store(&injected, 1);
        return 1;
    }
    return 0;
}

void lcsm__alloc_track(long delta) { atomic_fetch_add(&live, delta); }

void *lcsm__malloc(size_t n)
{
    if (lcsm__alloc_fails())
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        lcsm__alloc_track(1);
    return p;
}

void *lcsm__calloc(size_t n, size_t size)
{
    size_t total;
    if (lcsm__mul_overflows(n, size, &total) || lcsm__alloc_fails())
        return NULL;
    void *p = calloc(total ? n : 1, total ? size : 1);
    if (p)
        lcsm__alloc_track(1);
    return p;
}

void *lcsm__realloc(void *old, size_t n)
{
    if (lcsm__alloc_fails())
        return NULL;
    void *p = realloc(old, n ? n : 1);
    if (p && !old)
        lcsm__alloc_track(1);
    return p;
}

char *lcsm__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lcsm__malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void lcsm__free(void *p)
{
    if (p) {
        lcsm__alloc_track(-1);
        free(p);
    }
}

void lcsm__alloc_inject(long n)
{
    atomic_store(&injected, 0);
    atomic_store(&fail_at, n < 0 ? -1 : atomic_load(&count) + n);
}

int lcsm__alloc_injected(void) { return atomic_load(&injected); }
long lcsm__alloc_live(void) { return atomic_load(&live); }
long lcsm__alloc_count(void) { return atomic_load(&count); }

/* ---- device allocations: the same hook on a counter of their own */

static atomic_long dev_live;
static atomic_long dev_count;
static atomic_long dev_fail_at = -1;
static atomic_int dev_injected;

int lcsm__dev_alloc_fails(void)
{
    long n = atomic_fetch_add(&dev_count, 1);
    if (n == atomic_load(&dev_fail_at)) {
        atomic_store(&dev_injected, 1);
        return 1;
    }
    return 0;
}

void lcsm__dev_alloc_track(long delta) { atomic_fetch_add(&dev_live, delta); }

void lcsm__dev_alloc_inject(long n)
{
    atomic_store(&dev_injected, 0);
    atomic_store(&dev_fail_at, n < 0 ? -1 : atomic_load(&dev_count) + n);
}

int lcsm__dev_alloc_injected(void) { return atomic_load(&dev_injected); }
long lcsm__dev_alloc_live(void) { return atomic_load(&dev_live); }
long lcsm__dev_alloc_count(void) { return atomic_load(&dev_count); }
