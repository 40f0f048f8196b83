/*
 * The VkFFT wrapper (cl/cl_fft.c) against a direct DFT in double precision, on
 * fresh random data: batched forward R2C for several sizes and batches, the
 * round trip inverse(forward(x)) == x, launches at byte offsets into larger
 * buffers (data outside the slice untouched), a buffer change between launches
 * of one plan, and rejected arguments.
 *
 * Bounds: an fp32 FFT of n points has error ~ eps * log2(n) * |x|_2 per bin, so
 * relative to the largest bin magnitude (~sqrt(n) for uniform data) 1e-5 holds
 * up to CL_FFT_MAX_N points with margin (measured ~1e-7..1e-6). Exit 77 when no OpenCL
 * device exists.
 */
#include "cl_fft.h"
#include "testutil.h"

static cl_context ctx;
static cl_device_id dev;
static cl_command_queue q;

static cl_mem mk(size_t bytes)
{
    cl_int e;
    cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
    CHECK(e == CL_SUCCESS, "clCreateBuffer(%zu) -> %d", bytes, (int)e);
    return m;
}

/* One plan of n x batch: forward against the DFT (n <= 4096) or a few bins,
 * then the round trip; both at offsets into buffers with guard data. */
static void check_size(uint64_t *rng, int n, int batch)
{
    const int K = n / 2 + 1;
    const size_t pad_r = 3 * 64, pad_c = 5 * 64; /* floats before the slices */
    size_t nr = pad_r + (size_t)n * batch + 64, nc = pad_c + (size_t)2 * K * batch + 64;
    float *x = malloc(nr * sizeof *x), *X = malloc(nc * sizeof *X), *y = malloc(nr * sizeof *y);
    for (size_t i = 0; i < nr; i++)
        x[i] = (float)tu_uniform(rng);
    for (size_t i = 0; i < nc; i++)
        X[i] = 1234.5f; /* guard value */
    cl_mem real = mk(nr * 4), cplx = mk(nc * 4);
    clEnqueueWriteBuffer(q, real, CL_TRUE, 0, nr * 4, x, 0, NULL, NULL);
    clEnqueueWriteBuffer(q, cplx, CL_TRUE, 0, nc * 4, X, 0, NULL, NULL);
    char err[512] = "";
    clfft_plan *p = NULL;
    lcsm_status st = clfft_plan_create(ctx, dev, q, n, batch, real, cplx, &p, err, sizeof err);
    CHECK(st == LCSM_OK, "plan n=%d batch=%d: %s", n, batch, err);
    if (!p)
        goto done;
    CHECK(clfft_plan_n(p) == n && clfft_plan_batch(p) == batch, "plan shape");
    st = clfft_forward(p, real, pad_r * 4, cplx, pad_c * 4, err, sizeof err);
    CHECK(st == LCSM_OK, "forward: %s", err);
    clEnqueueReadBuffer(q, cplx, CL_TRUE, 0, nc * 4, X, 0, NULL, NULL);
    /* guards around the output slice */
    int guard_ok = 1;
    for (size_t i = 0; i < pad_c; i++)
        guard_ok &= X[i] == 1234.5f;
    for (size_t i = pad_c + (size_t)2 * K * batch; i < nc; i++)
        guard_ok &= X[i] == 1234.5f;
    CHECK(guard_ok, "n=%d batch=%d: forward wrote outside its slice", n, batch);
    /* against the DFT: every bin for n <= 4096, 8 bins per row otherwise */
    double num = 0, den = 0;
    for (int b = 0; b < batch; b++) {
        const float *xb = x + pad_r + (size_t)b * n, *Xb = X + pad_c + (size_t)2 * K * b;
        int step = n <= 4096 ? 1 : K / 8;
        for (int k = 0; k < K; k += step) {
            double re = 0, im = 0;
            for (int t = 0; t < n; t++) {
                double ang = -2.0 * M_PI * (double)(((long long)k * t) % n) / n;
                re += xb[t] * cos(ang);
                im += xb[t] * sin(ang);
            }
            double d = hypot(Xb[2 * k] - re, Xb[2 * k + 1] - im), m = hypot(re, im);
            num = d > num ? d : num;
            den = m > den ? m : den;
        }
    }
    CHECK(num / den <= 1e-5, "n=%d batch=%d: forward vs DFT relative error %.3g", n, batch, num / den);
    /* round trip into a cleared real buffer */
    float zero = 0;
    clEnqueueFillBuffer(q, real, &zero, 4, 0, nr * 4, 0, NULL, NULL);
    st = clfft_inverse(p, cplx, pad_c * 4, real, pad_r * 4, err, sizeof err);
    CHECK(st == LCSM_OK, "inverse: %s", err);
    clEnqueueReadBuffer(q, real, CL_TRUE, 0, nr * 4, y, 0, NULL, NULL);
    double e = tu_rel_err_f(y + pad_r, x + pad_r, (size_t)n * batch);
    CHECK(e <= 1e-5, "n=%d batch=%d: round trip relative error %.3g", n, batch, e);
    int outside = 0;
    for (size_t i = 0; i < pad_r; i++)
        outside |= y[i] != 0;
    for (size_t i = pad_r + (size_t)n * batch; i < nr; i++)
        outside |= y[i] != 0;
    CHECK(!outside, "n=%d batch=%d: inverse wrote outside its slice", n, batch);
    /* the same plan on other buffers (VkFFT rebinds only on a new pointer) */
    cl_mem real2 = mk((size_t)n * batch * 4), cplx2 = mk((size_t)K * batch * 8);
    clEnqueueWriteBuffer(q, real2, CL_TRUE, 0, (size_t)n * batch * 4, x + pad_r, 0, NULL, NULL);
    st = clfft_forward(p, real2, 0, cplx2, 0, err, sizeof err);
    if (st == LCSM_OK)
        st = clfft_inverse(p, cplx2, 0, real2, 0, err, sizeof err);
    CHECK(st == LCSM_OK, "other buffers: %s", err);
    clEnqueueReadBuffer(q, real2, CL_TRUE, 0, (size_t)n * batch * 4, y, 0, NULL, NULL);
    e = tu_rel_err_f(y, x + pad_r, (size_t)n * batch);
    CHECK(e <= 1e-5, "n=%d batch=%d: round trip on other buffers, relative error %.3g", n, batch, e);
    clReleaseMemObject(real2);
    clReleaseMemObject(cplx2);
done:
    clfft_plan_destroy(p);
    clReleaseMemObject(real);
    clReleaseMemObject(cplx);
    free(x);
    free(X);
    free(y);
}

int main(void)
{
    uint64_t rng = tu_seed();
    cl_platform_id plat;
    cl_uint np = 0;
    if (clGetPlatformIDs(1, &plat, &np) != CL_SUCCESS || np == 0 ||
        clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS) {
        printf("SKIP: no OpenCL platform or device\n");
        return 77;
    }
    cl_int e;
    ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    q = clCreateCommandQueue(ctx, dev, 0, &e);
    const int sizes[] = {2, 8, 256, 4096, CL_FFT_MAX_N}, batches[] = {1, 3, 37};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            if (sizes[i] < CL_FFT_MAX_N || batches[j] <= 3)
                check_size(&rng, sizes[i], batches[j]);
    /* bad arguments */
    char err[256];
    clfft_plan *p = NULL;
    cl_mem m = mk(1024);
    const int bad_n[] = {0, 1, 3, 100, 2 * CL_FFT_MAX_N};
    for (int i = 0; i < 5; i++) {
        lcsm_status st = clfft_plan_create(ctx, dev, q, bad_n[i], 1, m, m, &p, err, sizeof err);
        CHECK(st == LCSM_ERR_INVALID_ARGUMENT && !p, "n=%d accepted", bad_n[i]);
    }
    CHECK(clfft_plan_create(ctx, dev, q, 64, 0, m, m, &p, err, sizeof err) == LCSM_ERR_INVALID_ARGUMENT, "batch 0");
    CHECK(strstr(clfft_result_name(0), "SUCCESS") != NULL, "name of 0: %s", clfft_result_name(0));
    clfft_plan_destroy(NULL);
    clReleaseMemObject(m);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return tu_finish("test_cl_fft");
}
