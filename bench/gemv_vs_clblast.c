/*
 * lcsm-gemv-vs-clblast: the OpenCL backend's decode projections (gemv_vec for
 * up to 8 rows, the tiled GEMM above) against CLBlast's SGEMV / SGEMM on the
 * same device, queue and buffers, for the projection shapes of a model.
 * Each shape is first checked (the two results agree to 1e-5 relative), then
 * timed: the median of 7 rounds of 200 back-to-back launches, divided by 200.
 * Built only when CMake finds CLBlast; white-box (it reaches into the OpenCL
 * backend for its queue), so it lives with the benchmarks, not the library.
 *
 * Usage: lcsm-gemv-vs-clblast [--device DEV] [--d-model D] [--d-inner DI]
 */
#include "cl_backend.h"

#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITERS 200
#define ROUNDS 7

typedef struct shape {
    const char *name;
    int n_in, n_out;
} shape;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over ROUNDS of the time per launch of `run` (ITERS launches). */
static double time_us(cl_backend *cb, int (*run)(void *), void *arg)
{
    double t[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        clFinish(cb->queue);
        double t0 = lcsm__now();
        for (int i = 0; i < ITERS; i++)
            if (run(arg) != 0)
                return -1;
        clFinish(cb->queue);
        t[r] = (lcsm__now() - t0) / ITERS * 1e6;
    }
    qsort(t, ROUNDS, sizeof t[0], cmp_double);
    return t[ROUNDS / 2];
}

typedef struct job {
    cl_backend *cb;
    lcsm_ref x, W, out;
    int rows, n_in, n_out;
} job;

static int run_lcsm(void *p)
{
    job *j = p;
    return cl_linear(&j->cb->base, j->x, j->W, (lcsm_ref){0}, j->out, j->rows, j->n_in, j->n_out, 0) != LCSM_OK;
}

static int run_clblast(void *p)
{
    job *j = p;
    CLBlastStatusCode s;
    if (j->rows == 1) /* y = W x */
        s = CLBlastSgemv(CLBlastLayoutRowMajor, CLBlastTransposeNo, (size_t)j->n_out, (size_t)j->n_in, 1.0f,
                         j->W.buf->mem, j->W.off, (size_t)j->n_in, j->x.buf->mem, j->x.off, 1, 0.0f,
                         j->out.buf->mem, j->out.off, 1, &j->cb->queue, NULL);
    else /* out[rows][n_out] = x[rows][n_in] W^T */
        s = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, (size_t)j->rows,
                         (size_t)j->n_out, (size_t)j->n_in, 1.0f, j->x.buf->mem, j->x.off, (size_t)j->n_in,
                         j->W.buf->mem, j->W.off, (size_t)j->n_in, 0.0f, j->out.buf->mem, j->out.off,
                         (size_t)j->n_out, &j->cb->queue, NULL);
    if (s != CLBlastSuccess)
        fprintf(stderr, "CLBlast error %d\n", (int)s);
    return s != CLBlastSuccess;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

int main(int argc, char **argv)
{
    const char *device = NULL;
    int D = 768, DI = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--d-model"))
            D = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--d-inner"))
            DI = atoi(argv[i + 1]);
    }
    if (D < 4) {
        fprintf(stderr, "usage: lcsm-gemv-vs-clblast [--device DEV] [--d-model D >= 4] [--d-inner DI]\n");
        return 2;
    }
    DI = DI > 0 ? DI : 4 * D;
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.device = device;
    lcsm_backend *be = NULL;
    if (lcsm_backend_create("opencl", &bo, &be) != LCSM_OK) {
        fprintf(stderr, "lcsm-gemv-vs-clblast: %s\n", lcsm_last_error());
        return 1;
    }
    cl_backend *cb = (cl_backend *)be;
    printf("device: %s\n", lcsm_backend_description(be));
    const shape shapes[] = {{"in_proj", D, 3 * D}, {"out_proj", D, D}, {"fc1", D, DI}, {"fc2", DI, D}};
    const int rows_list[] = {1, 8, 32};
    int widest = 3 * D > DI ? 3 * D : DI, fails = 0;
    size_t nw = (size_t)widest * widest, nx = (size_t)32 * widest;
    lcsm_buf *bw = NULL, *bx = NULL, *bo1 = NULL, *bo2 = NULL;
    float *hw = malloc(nw * sizeof *hw), *hx = malloc(nx * sizeof *hx);
    float *r1 = malloc(nx * sizeof *r1), *r2 = malloc(nx * sizeof *r2);
    if (!hw || !hx || !r1 || !r2 || be->ops->alloc(be, nw * 4, &bw) || be->ops->alloc(be, nx * 4, &bx) ||
        be->ops->alloc(be, nx * 4, &bo1) || be->ops->alloc(be, nx * 4, &bo2)) {
        fprintf(stderr, "lcsm-gemv-vs-clblast: out of memory\n");
        return 1;
    }
    uint64_t s = 42;
    for (size_t i = 0; i < nw; i++)
        hw[i] = (float)((double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) * 0x1.0p-53 - 0.5);
    for (size_t i = 0; i < nx; i++)
        hx[i] = (float)((double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) * 0x1.0p-53 - 0.5);
    be->ops->write(be, (lcsm_ref){bw, 0}, hw, nw);
    be->ops->write(be, (lcsm_ref){bx, 0}, hx, nx);
    printf("%-9s %5s %5s %4s | %10s %10s | %s\n", "matrix", "n_in", "n_out", "rows", "lcsm us", "CLBlast us",
           "CLBlast / lcsm");
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++) {
            const shape *sh = &shapes[k];
            job a = {cb, {bx, 0}, {bw, 0}, {bo1, 0}, rows_list[ri], sh->n_in, sh->n_out};
            job b = a;
            b.out = (lcsm_ref){bo2, 0};
            const size_t n = (size_t)a.rows * sh->n_out;
            if (run_lcsm(&a) || run_clblast(&b) || be->ops->read(be, a.out, r1, n) ||
                be->ops->read(be, b.out, r2, n)) {
                fprintf(stderr, "%s rows %d: a launch failed: %s\n", sh->name, a.rows, lcsm_backend_last_error(be));
                fails++;
                continue;
            }
            double e = rel_err(r1, r2, n);
            if (e > 1e-5) {
                fprintf(stderr, "%s rows %d: results differ, relative error %.3g\n", sh->name, a.rows, e);
                fails++;
            }
            double tl = time_us(cb, run_lcsm, &a), tc = time_us(cb, run_clblast, &b);
            printf("%-9s %5d %5d %4d | %10.2f %10.2f | x%.2f\n", sh->name, sh->n_in, sh->n_out, a.rows, tl, tc,
                   tc / tl);
        }
    be->ops->release(be, bw);
    be->ops->release(be, bx);
    be->ops->release(be, bo1);
    be->ops->release(be, bo2);
    free(hw);
    free(hx);
    free(r1);
    free(r2);
    lcsm_backend_destroy(be);
    return fails ? 1 : 0;
}
