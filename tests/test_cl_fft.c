/*
 * The VkFFT wrapper (cl/cl_fft.c) against a direct DFT in double precision, on
 * fresh random data, for n in {2, 8, 256, 4096, CL_FFT_MAX_N} and batches 1, 3, 37:
 *  - forward R2C vs the DFT: every bin for n <= 4096, a few bins per row above
 *    (a full O(n^2) DFT of 32768 points per row is too slow for a unit test);
 *  - the round trip inverse(forward(x)) == x;
 *  - every launch at byte offsets (multiples of 8) into larger buffers, data outside the
 *    slices checked untouched (and the forward's input left as it was);
 *  - one plan on other buffers, then back on the first ones (VkFFT rebinds
 *    buffers only when the pointer it is handed changes: cl_fft.c);
 *  - the multi-pass plans GPUs get, made on any device by capping the local
 *    memory VkFFT sees (LCSM_CLFFT_LOCAL_MEM, cl_fft.c); a multi-pass inverse at
 *    a complex offset is what 1.2.26 gets wrong unless cl_fft.c copies the slice;
 *  - plans made from several threads at once (creation is serialised);
 *  - rejected arguments.
 * 65536 points is beyond CL_FFT_MAX_N (see cl_fft.h) and checked rejected.
 *
 * Bounds, both relative to the largest magnitude of the reference: an fp32 FFT of n
 * points has error ~ eps * log2(n) * ||x||_2 per output, eps = 6e-8, so for
 * n <= 32768 (log2 n <= 15) about 1e-6 of the largest bin (~ ||x||_2 for uniform
 * data) or of the largest input after the round trip; 1e-5 leaves a factor ~10
 * (measured ~1e-7 on PoCL). Exit 77 when no OpenCL platform or device exists.
 */
#include "cl_fft.h"
#include "testutil.h"

#include <pthread.h>
#include <time.h>

#define TOL 1e-5
#define GUARD 1234.5f /* written outside slices that must stay untouched */

static cl_context ctx;
static cl_device_id dev;
static cl_command_queue q;

static cl_mem mk(size_t bytes)
{
    cl_int e;
    cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
    CHECK(e == CL_SUCCESS && m, "clCreateBuffer(%zu) -> %d", bytes, (int)e);
    return m;
}

static void put(cl_mem m, const float *h, size_t nfloats)
{
    cl_int e = clEnqueueWriteBuffer(q, m, CL_TRUE, 0, nfloats * 4, h, 0, NULL, NULL);
    CHECK(e == CL_SUCCESS, "clEnqueueWriteBuffer -> %d", (int)e);
}

static void get(cl_mem m, float *h, size_t nfloats)
{
    cl_int e = clEnqueueReadBuffer(q, m, CL_TRUE, 0, nfloats * 4, h, 0, NULL, NULL);
    CHECK(e == CL_SUCCESS, "clEnqueueReadBuffer -> %d", (int)e);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Count of a[lo..hi) differing from b[lo..hi) (b NULL: from GUARD). */
static size_t changed(const float *a, const float *b, size_t lo, size_t hi)
{
    size_t c = 0;
    for (size_t i = lo; i < hi; i++)
        c += a[i] != (b ? b[i] : GUARD);
    return c;
}

/* max over the checked bins of |X - DFT(x)| / max |DFT(x)|; all bins for n <= 4096,
 * else 0, 1, K/2, K-1 and 4 random bins per row. */
static double dft_err(uint64_t *rng, const float *x, const float *X, int n, int batch, const double *cs,
                      const double *sn)
{
    const int K = n / 2 + 1;
    double num = 0, den = 0;
    for (int b = 0; b < batch; b++) {
        const float *xb = x + (size_t)b * n, *Xb = X + (size_t)2 * K * b;
        int bins[8] = {0, 1, K / 2, K - 1}, nb = n <= 4096 ? K : 8;
        for (int i = 4; i < 8; i++)
            bins[i] = (int)(tu_next(rng) % (uint64_t)K);
        for (int i = 0; i < nb; i++) {
            int k = n <= 4096 ? i : bins[i];
            double re = 0, im = 0;
            for (int t = 0; t < n; t++) { /* exp(-2 pi i k t / n) through the table */
                size_t j = (size_t)k * t % (size_t)n;
                re += xb[t] * cs[j];
                im -= xb[t] * sn[j];
            }
            double d = hypot(Xb[2 * k] - re, Xb[2 * k + 1] - im), m = hypot(re, im);
            num = d > num || isnan(d) ? d : num;
            den = m > den ? m : den;
        }
    }
    return den > 0 ? num / den : num;
}

/* One plan of n x batch, launched at float offsets off_r / off_c (odd ones too)
 * into buffers with `tail` floats after the slices. */
static void check_size(uint64_t *rng, int n, int batch, size_t off_r, size_t off_c)
{
    const int K = n / 2 + 1;
    const size_t tail = 67, nx = (size_t)n * batch, nX = (size_t)2 * K * batch;
    const size_t nr = off_r + nx + tail, nc = off_c + nX + tail;
    float *x = malloc(nr * 4), *y = malloc(nr * 4), *X = malloc(nc * 4), *X1 = malloc(nc * 4);
    double *cs = malloc((size_t)n * sizeof *cs), *sn = malloc((size_t)n * sizeof *sn);
    CHECK(x && y && X && X1 && cs && sn, "host allocation");
    if (!(x && y && X && X1 && cs && sn))
        goto out;
    for (int j = 0; j < n; j++) {
        cs[j] = cos(2 * M_PI * j / n);
        sn[j] = sin(2 * M_PI * j / n);
    }
    for (size_t i = 0; i < nr; i++) /* random around the slice too: the forward must not write it */
        x[i] = (float)tu_uniform(rng);
    for (size_t i = 0; i < nc; i++)
        X[i] = GUARD;
    cl_mem real = mk(nr * 4), cplx = mk(nc * 4), real2 = mk(nx * 4), cplx2 = mk(nX * 4);
    put(real, x, nr);
    put(cplx, X, nc);

    char err[512] = "";
    clfft_plan *p = NULL;
    double t0 = now_ms();
    lcsm_status st = clfft_plan_create(ctx, dev, q, n, batch, real, cplx, &p, err, sizeof err);
    printf("plan n=%d batch=%d: %.0f ms\n", n, batch, now_ms() - t0);
    CHECK(st == LCSM_OK && p, "plan n=%d batch=%d: %s", n, batch, err);
    if (!p)
        goto release;
    CHECK(clfft_plan_n(p) == n && clfft_plan_batch(p) == batch, "plan shape %d x %d", clfft_plan_n(p),
          clfft_plan_batch(p));

    /* forward at offsets */
    st = clfft_forward(p, real, off_r * 4, cplx, off_c * 4, err, sizeof err);
    CHECK(st == LCSM_OK, "forward: %s", err);
    get(cplx, X, nc);
    get(real, y, nr);
    CHECK(!changed(X, NULL, 0, off_c) && !changed(X, NULL, off_c + nX, nc),
          "n=%d batch=%d: forward wrote outside its output slice", n, batch);
    CHECK(!changed(y, x, 0, nr), "n=%d batch=%d: forward changed its real buffer", n, batch);
    double e = dft_err(rng, x + off_r, X + off_c, n, batch, cs, sn);
    CHECK(e <= TOL, "n=%d batch=%d off=%zu,%zu: forward vs DFT relative error %.3g", n, batch, off_r, off_c, e);

    /* inverse at offsets into a real buffer of guard values */
    for (size_t i = 0; i < nr; i++)
        y[i] = GUARD;
    put(real, y, nr);
    st = clfft_inverse(p, cplx, off_c * 4, real, off_r * 4, err, sizeof err);
    CHECK(st == LCSM_OK, "inverse: %s", err);
    get(real, y, nr);
    e = tu_rel_err_f(y + off_r, x + off_r, nx);
    CHECK(e <= TOL, "n=%d batch=%d off=%zu,%zu: round trip relative error %.3g", n, batch, off_r, off_c, e);
    CHECK(!changed(y, NULL, 0, off_r) && !changed(y, NULL, off_r + nx, nr),
          "n=%d batch=%d: inverse wrote outside its output slice", n, batch);

    /* the same plan on other (exactly sized) buffers at offset 0 ... */
    put(real2, x + off_r, nx);
    st = clfft_forward(p, real2, 0, cplx2, 0, err, sizeof err);
    if (st == LCSM_OK)
        st = clfft_inverse(p, cplx2, 0, real2, 0, err, sizeof err);
    CHECK(st == LCSM_OK, "other buffers: %s", err);
    get(real2, y, nx);
    e = tu_rel_err_f(y, x + off_r, nx);
    CHECK(e <= TOL, "n=%d batch=%d: round trip on other buffers, relative error %.3g", n, batch, e);

    /* ... and back on the first ones: the same kernels on the same data, so the
     * spectrum must match the first forward bit for bit */
    put(real, x, nr);
    st = clfft_forward(p, real, off_r * 4, cplx, off_c * 4, err, sizeof err);
    CHECK(st == LCSM_OK, "forward again: %s", err);
    get(cplx, X1, nc);
    CHECK(!changed(X1, X, 0, nc), "n=%d batch=%d: forward back on the first buffers differs", n, batch);

release:
    clfft_plan_destroy(p);
    clReleaseMemObject(real);
    clReleaseMemObject(cplx);
    clReleaseMemObject(real2);
    clReleaseMemObject(cplx2);
out:
    free(x);
    free(y);
    free(X);
    free(X1);
    free(cs);
    free(sn);
}

/* Plans made and used from several threads at once, each on its own queue. */
struct thr {
    int n, batch, ok;
    char err[256];
};

static void *thread_main(void *arg)
{
    struct thr *t = arg;
    size_t nx = (size_t)t->n * t->batch;
    cl_int e;
    cl_command_queue tq = clCreateCommandQueue(ctx, dev, 0, &e);
    cl_mem r = clCreateBuffer(ctx, CL_MEM_READ_WRITE, nx * 4, NULL, &e);
    cl_mem c = clCreateBuffer(ctx, CL_MEM_READ_WRITE, (size_t)(t->n / 2 + 1) * t->batch * 8, NULL, &e);
    float *x = malloc(nx * 4), *y = malloc(nx * 4);
    clfft_plan *p = NULL;
    if (tq && r && c && x && y) {
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
        clEnqueueWriteBuffer(tq, r, CL_TRUE, 0, nx * 4, x, 0, NULL, NULL);
        if (clfft_plan_create(ctx, dev, tq, t->n, t->batch, r, c, &p, t->err, sizeof t->err) == LCSM_OK &&
            clfft_forward(p, r, 0, c, 0, t->err, sizeof t->err) == LCSM_OK &&
            clfft_inverse(p, c, 0, r, 0, t->err, sizeof t->err) == LCSM_OK &&
            clEnqueueReadBuffer(tq, r, CL_TRUE, 0, nx * 4, y, 0, NULL, NULL) == CL_SUCCESS)
            t->ok = tu_rel_err_f(y, x, nx) <= TOL;
    }
    clfft_plan_destroy(p);
    free(x);
    free(y);
    if (r)
        clReleaseMemObject(r);
    if (c)
        clReleaseMemObject(c);
    if (tq)
        clReleaseCommandQueue(tq);
    return NULL;
}

static void check_threads(void)
{
    enum { NT = 4 };
    struct thr t[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = (struct thr){.n = 64 << i, .batch = i + 2};
        CHECK(pthread_create(&th[i], NULL, thread_main, &t[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        CHECK(t[i].ok, "thread %d (n=%d batch=%d): %s", i, t[i].n, t[i].batch, t[i].err);
    }
}

static void check_invalid(void)
{
    char err[256];
    clfft_plan *p = (clfft_plan *)&err; /* must come back NULL */
    cl_mem m = mk(1 << 20);
    const int bad_n[] = {0, 1, -4, 3, 100, 4095, 2 * CL_FFT_MAX_N, 65536, 1 << 30};
    for (size_t i = 0; i < sizeof bad_n / sizeof bad_n[0]; i++) {
        if (bad_n[i] <= CL_FFT_MAX_N && bad_n[i] > 1 && !(bad_n[i] & (bad_n[i] - 1)))
            continue; /* 65536 is valid if the cap is ever raised */
        err[0] = 0;
        p = (clfft_plan *)&err;
        lcsm_status st = clfft_plan_create(ctx, dev, q, bad_n[i], 1, m, m, &p, err, sizeof err);
        CHECK(st == LCSM_ERR_INVALID_ARGUMENT && !p && err[0], "n=%d: status %d", bad_n[i], (int)st);
    }
    const int bad_batch[] = {0, -1};
    for (int i = 0; i < 2; i++) {
        p = (clfft_plan *)&err;
        lcsm_status st = clfft_plan_create(ctx, dev, q, 64, bad_batch[i], m, m, &p, err, sizeof err);
        CHECK(st == LCSM_ERR_INVALID_ARGUMENT && !p, "batch=%d: status %d", bad_batch[i], (int)st);
    }
    /* launches: NULL buffers, offsets not multiples of 8 bytes */
    p = NULL;
    lcsm_status st = clfft_plan_create(ctx, dev, q, 16, 2, m, m, &p, err, sizeof err);
    CHECK(st == LCSM_OK && p, "plan 16x2: %s", err);
    if (p) {
        CHECK(clfft_forward(p, NULL, 0, m, 0, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "NULL real");
        CHECK(clfft_inverse(p, NULL, 0, m, 0, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "NULL complex");
        CHECK(clfft_forward(p, m, 2, m, 0, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "real offset 2 bytes");
        CHECK(clfft_inverse(p, m, 0, m, 4, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "real offset 4 bytes");
        CHECK(clfft_forward(p, m, 0, m, 4, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "complex offset 4 bytes");
        CHECK(clfft_inverse(p, m, 12, m, 0, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "complex offset 12");
        clfft_plan_destroy(p);
    }
    clfft_plan_destroy(NULL);
    clReleaseMemObject(m);

    CHECK(!strcmp(clfft_result_name(0), "VKFFT_SUCCESS"), "name of 0: %s", clfft_result_name(0));
    CHECK(!strcmp(clfft_result_name(1), "VKFFT_ERROR_MALLOC_FAILED"), "name of 1: %s", clfft_result_name(1));
    CHECK(!strcmp(clfft_result_name(2001), "VKFFT_ERROR_EMPTY_FFTdim"), "name of 2001: %s", clfft_result_name(2001));
    CHECK(!strcmp(clfft_result_name(4055), "VKFFT_ERROR_FAILED_TO_SUBMIT_BARRIER"), "name of 4055: %s",
          clfft_result_name(4055));
    CHECK(clfft_result_name(-7) && strstr(clfft_result_name(-7), "unknown"), "name of -7: %s", clfft_result_name(-7));
}

int main(void)
{
    uint64_t rng = tu_seed();
    cl_platform_id plat;
    cl_uint np = 0;
    if (clGetPlatformIDs(1, &plat, &np) != CL_SUCCESS || np == 0) {
        printf("SKIP: no OpenCL platform\n");
        return 77;
    }
    if (clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) {
        printf("SKIP: no OpenCL device\n");
        return 77;
    }
    char name[256] = "";
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name, name, NULL);
    printf("device: %s\n", name);
    cl_int e;
    ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    CHECK(e == CL_SUCCESS, "clCreateContext -> %d", (int)e);
    q = clCreateCommandQueue(ctx, dev, 0, &e); /* in order, as VkFFT needs */
    CHECK(e == CL_SUCCESS, "clCreateCommandQueue -> %d", (int)e);
    if (e != CL_SUCCESS)
        return tu_finish("test_cl_fft");

    const int sizes[] = {2, 8, 256, 4096, CL_FFT_MAX_N}, batches[] = {1, 3, 37};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) {
            /* offsets in floats, multiples of 8 bytes (cl_fft.c says why), some
             * not multiples of 64 bytes */
            size_t off_r = j == 1 ? 2 * 97 : 3 * 64, off_c = j == 2 ? 2 * 161 : 5 * 64;
            check_size(&rng, sizes[i], batches[j], off_r, off_c);
        }
    /* The plans a GPU gets: with 48 KiB of local memory (NVIDIA's) VkFFT splits an
     * R2C above 4096 points (multiUploadR2C) and, without NVIDIA's register
     * boost, a C2C of more than 4096 points into passes; 8 KiB gives three passes
     * at 32768. A CPU device does all sizes in one pass otherwise. */
    const char *caps[] = {"49152", "8192"};
    for (int c = 0; c < 2; c++) {
        setenv("LCSM_CLFFT_LOCAL_MEM", caps[c], 1);
        printf("LCSM_CLFFT_LOCAL_MEM=%s\n", caps[c]);
        for (int nn = 8192; nn <= CL_FFT_MAX_N; nn *= 2)
            for (int j = 0; j < 3; j += 2)
                check_size(&rng, nn, batches[j], 3 * 64, j ? 2 * 161 : 5 * 64);
    }
    unsetenv("LCSM_CLFFT_LOCAL_MEM");
    check_threads();
    check_invalid();
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return tu_finish("test_cl_fft");
}
