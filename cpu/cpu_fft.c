/*
 * FFTW plans, wisdom and scratch of the CPU backend, and the measurement of the
 * direct/FFT crossover.
 *
 * FFTW's planner is process-global and not thread-safe: every planner call
 * (planning, wisdom import/export, destroy) holds planner_lock. Only execution
 * with new arrays runs unlocked. We never call fftwf_cleanup: other code in the
 * process may use FFTW too.
 */
#include "cpu.h"
#include "../src/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

/* The largest wisdom file read back (ours are a few kB). */
#define CPU_WISDOM_MAX ((size_t)16 << 20)

int cpu_fft_size(int need)
{
    long best = 1;
    while (best < need)
        best *= 2;
    for (long p5 = 1; p5 < best; p5 *= 5)
        for (long p3 = p5; p3 < best; p3 *= 3) {
            long n = p3;
            while (n < need)
                n *= 2;
            if (n < best)
                best = n;
        }
    return (int)best;
}

static lcsm_status make_plan(cpu_backend *cb, int n, unsigned flags, cpu_plan *p)
{
    const int W = CPU_FFT_W;
    float *re = cpu_falloc((size_t)n * W);
    fftwf_complex *cx = (fftwf_complex *)cpu_falloc(2 * ((size_t)(n / 2 + 1) * W));
    p->n = n;
    p->fwd = p->inv = p->fwd1 = p->inv1 = NULL;
    if (re && cx) {
        /* Vector-major: W columns interleaved (stride W, distance 1). MEASURE
         * overwrites the arrays, which is why they are scratch of our own. */
        pthread_mutex_lock(&planner_lock);
        p->fwd = fftwf_plan_many_dft_r2c(1, &n, W, re, NULL, W, 1, cx, NULL, W, 1, flags);
        p->inv = fftwf_plan_many_dft_c2r(1, &n, W, cx, NULL, W, 1, re, NULL, W, 1, flags);
        pthread_mutex_unlock(&planner_lock);
    }
    const int no_memory = !re || !cx; /* then FFTW was not asked: out of memory, not a planner failure */
    cpu_ffree(re);
    cpu_ffree(cx);
    if (!p->fwd || !p->inv) {
        pthread_mutex_lock(&planner_lock);
        if (p->fwd)
            fftwf_destroy_plan(p->fwd);
        if (p->inv)
            fftwf_destroy_plan(p->inv);
        pthread_mutex_unlock(&planner_lock);
        if (no_memory)
            return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "cpu: no memory to plan an FFT of size %d", n);
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_BACKEND, "cpu: FFTW could not plan a transform of size %d", n);
    }
    if (!(flags & FFTW_ESTIMATE)) /* FFTW_MEASURE is 0: test for the absence of ESTIMATE */
        cb->wisdom_dirty = 1;
    return LCSM_OK;
}

lcsm_status cpu_plan_get(cpu_backend *cb, int n, unsigned flags, const cpu_plan **out)
{
    lcsm_status st = LCSM_OK;
    pthread_mutex_lock(&cb->lock);
    for (int i = 0; i < cb->n_plans; i++)
        if (cb->plans[i]->n == n) {
            *out = cb->plans[i];
            pthread_mutex_unlock(&cb->lock);
            return LCSM_OK;
        }
    cpu_plan **grown = lcsm__realloc(cb->plans, (size_t)(cb->n_plans + 1) * sizeof *grown);
    cpu_plan *p = lcsm__malloc(sizeof *p);
    if (grown)
        cb->plans = grown;
    if (!grown || !p) {
        st = LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "cpu: plan table");
    } else {
        double t0 = lcsm__now();
        st = make_plan(cb, n, flags, p);
        cb->base.stats.plan_s += lcsm__now() - t0;
    }
    if (st != LCSM_OK) {
        lcsm__free(p);
    } else {
        cb->plans[cb->n_plans++] = p;
        *out = p;
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cpu_plan_lane(cpu_backend *cb, const cpu_plan *cp, unsigned flags)
{
    cpu_plan *p = (cpu_plan *)cp; /* the table's own entry: made once, under the backend's lock */
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = LCSM_OK;
    if (!p->fwd1) {
        int n = p->n;
        float *re = cpu_falloc((size_t)n);
        fftwf_complex *cx = (fftwf_complex *)cpu_falloc(2 * ((size_t)n / 2 + 1));
        fftwf_plan fwd = NULL, inv = NULL;
        double t0 = lcsm__now();
        if (re && cx) {
            pthread_mutex_lock(&planner_lock);
            fwd = fftwf_plan_dft_r2c_1d(n, re, cx, flags);
            inv = fftwf_plan_dft_c2r_1d(n, cx, re, flags);
            if (!fwd || !inv) {
                if (fwd)
                    fftwf_destroy_plan(fwd);
                if (inv)
                    fftwf_destroy_plan(inv);
                fwd = inv = NULL;
            }
            pthread_mutex_unlock(&planner_lock);
        }
        cb->base.stats.plan_s += lcsm__now() - t0;
        if (!re || !cx)
            st = LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "cpu: no memory to plan an FFT of size %d", n);
        else if (!fwd)
            st = LCSM_FAIL_BE(&cb->base, LCSM_ERR_BACKEND, "cpu: FFTW could not plan a transform of size %d", n);
        cpu_ffree(re);
        cpu_ffree(cx);
        p->fwd1 = fwd;
        p->inv1 = inv;
        if (fwd && !(flags & FFTW_ESTIMATE))
            cb->wisdom_dirty = 1;
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

void cpu_plans_destroy(cpu_backend *cb)
{
    pthread_mutex_lock(&planner_lock);
    for (int i = 0; i < cb->n_plans; i++) {
        fftwf_destroy_plan(cb->plans[i]->fwd);
        fftwf_destroy_plan(cb->plans[i]->inv);
        if (cb->plans[i]->fwd1) {
            fftwf_destroy_plan(cb->plans[i]->fwd1);
            fftwf_destroy_plan(cb->plans[i]->inv1);
        }
        lcsm__free(cb->plans[i]);
    }
    pthread_mutex_unlock(&planner_lock);
    lcsm__free(cb->plans);
    cb->plans = NULL;
    cb->n_plans = 0;
    if (cb->scratch)
        for (int t = 0; t < cb->n_threads; t++)
            cpu_ffree(cb->scratch[t]);
    lcsm__free(cb->scratch);
    cb->scratch = NULL;
}

/* ---- scratch */

typedef struct reserve_job {
    cpu_backend *cb;
    size_t floats;
    lcsm_status st;
} reserve_job;

static void reserve_task(void *ctx, int task, int thread)
{
    (void)task;
    (void)thread;
    reserve_job *j = ctx;
    cpu_backend *cb = j->cb;
    if (!cb->scratch && !(cb->scratch = lcsm__calloc((size_t)cb->n_threads, sizeof *cb->scratch))) {
        j->st = LCSM_ERR_OUT_OF_MEMORY;
        return;
    }
    for (int t = 0; t < cb->n_threads; t++) {
        float *p = cpu_falloc(j->floats);
        if (!p) {
            j->st = LCSM_ERR_OUT_OF_MEMORY;
            return; /* the old (smaller) buffers stay valid */
        }
        cpu_ffree(cb->scratch[t]);
        cb->scratch[t] = p;
    }
    cb->scratch_floats = j->floats;
}

lcsm_status cpu_scratch_reserve(cpu_backend *cb, size_t floats)
{
    if (cb->scratch && cb->scratch_floats >= floats)
        return LCSM_OK;
    reserve_job j = {cb, floats, LCSM_OK};
    lcsm_pool_run(cb->pool, 1, reserve_task, &j);
    if (j.st != LCSM_OK)
        return LCSM_FAIL_BE(&cb->base, j.st, "cpu: %d x %zu floats of FFT scratch", cb->n_threads, floats);
    return LCSM_OK;
}

/* ---- wisdom: FFTW's measured plans, kept per CPU model and FFTW version */

static unsigned long hash_str(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

void cpu_wisdom_load(cpu_backend *cb, const char *dir)
{
    lcsm__free(cb->wisdom_path);
    cb->wisdom_path = NULL;
    if (!dir || !*dir)
        return;
    char model[256];
    lcsm__cpu_model_name(model, sizeof model);
    cb->wisdom_path = lcsm__path_printf("%s/fftwf-wisdom-%08lx-%08lx-w%d", dir, hash_str(model) & 0xffffffffUL,
                                        hash_str(fftwf_version) & 0xffffffffUL, CPU_FFT_W);
    if (!cb->wisdom_path)
        return; /* no memory: no wisdom (only a slower start) */
    /* Not fftwf_import_wisdom_from_filename: FFTW would fopen() a FIFO and wait
     * for a writer forever, and read a link to /dev/zero without end. A wisdom
     * file is a few kB; anything that is not a regular file of at most
     * CPU_WISDOM_MAX bytes is ignored (and replaced by the next save). */
    char *text = NULL, msg[64];
    size_t len;
    if (lcsm__file_read_all(cb->wisdom_path, CPU_WISDOM_MAX, &text, &len, msg, sizeof msg) != LCSM_OK)
        return;
    pthread_mutex_lock(&planner_lock);
    fftwf_import_wisdom_from_string(text); /* bad wisdom: FFTW ignores it */
    pthread_mutex_unlock(&planner_lock);
    lcsm__free(text);
}

void cpu_wisdom_save(cpu_backend *cb)
{
    if (!cb->wisdom_dirty || !cb->wisdom_path)
        return;
    char *slash = strrchr(cb->wisdom_path, '/');
    if (slash && slash != cb->wisdom_path) { /* the directory holding it */
        *slash = '\0';
        lcsm__mkdir_p(cb->wisdom_path, 0777);
        *slash = '/';
    }
    /* Write then rename: a reader never sees half a file. */
    char *tmp = lcsm__path_printf("%s.%ld.tmp", cb->wisdom_path, (long)getpid());
    if (!tmp)
        return;
    /* Our own exclusive create, not fftwf_export_wisdom_to_filename's fopen():
     * whatever lies at that name (a stale file, a FIFO) is removed, never
     * opened. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !fp)
        close(fd);
    int ok = 0;
    if (fp) {
        pthread_mutex_lock(&planner_lock);
        fftwf_export_wisdom_to_file(fp);
        pthread_mutex_unlock(&planner_lock);
        ok = !ferror(fp);
        ok &= fclose(fp) == 0;
    }
    if (ok && rename(tmp, cb->wisdom_path) == 0)
        cb->wisdom_dirty = 0;
    else
        unlink(tmp);
    lcsm__free(tmp);
}

/* ---- the direct/FFT crossover, measured on this machine */

static double time_tile(cpu_backend *cb, const lcsm_filters *f, const lcsm_conv_geom *g, const float *hist,
                        float *acc, int U, int fft)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = lcsm__now();
        if (fft)
            cpu_tile_fft(cb, f, g, hist, acc, 0, U, U, U, NULL);
        else
            cpu_block_direct(cb, f, g, hist, acc, 0, U, U, U, NULL);
        double dt = lcsm__now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int cpu_calibrate_threshold(cpu_backend *cb)
{
    enum { D = 256, UMAX = 256, FALLBACK = 32 };
    const int lh = 2 * UMAX;
    float *h = lcsm__malloc((size_t)D * lh * sizeof *h), *dbias = lcsm__calloc(D, sizeof *dbias);
    float *hist = lcsm__calloc((size_t)lh * D, sizeof *hist), *acc = lcsm__calloc((size_t)lh * D, sizeof *acc);
    lcsm_filters *f = NULL;
    int thr = FALLBACK;
    if (!h || !dbias || !hist || !acc)
        goto done;
    for (size_t i = 0; i < (size_t)D * lh; i++) /* time-major, like every filter */
        h[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
    for (size_t i = 0; i < (size_t)lh * D; i++)
        hist[i] = (float)((i * 40503u) % 1000) * 1e-3f;
    cb->base.fft_threshold = 4;
    float *hT = h;
    h = NULL; /* the filters' from here on */
    if (cpu_filters_create(&cb->base, hT, dbias, 1, D, lh, 1, &f) != LCSM_OK ||
        cpu_filters_prepare(&cb->base, f, UMAX, 1u << LCSM_SPEC_LAG) != LCSM_OK)
        goto done;
    lcsm_conv_geom g = {1, 1, D, lh};
    thr = UMAX * 2; /* if FFT never wins up to UMAX */
    for (int U = 4; U <= UMAX; U *= 2)
        if (time_tile(cb, f, &g, hist, acc, U, 1) < time_tile(cb, f, &g, hist, acc, U, 0)) {
            thr = U;
            break;
        }
done:
    cpu_filters_destroy(&cb->base, f);
    lcsm__free(h);
    lcsm__free(dbias);
    lcsm__free(hist);
    lcsm__free(acc);
    return thr;
}
