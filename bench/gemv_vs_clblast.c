/*
 * lcsm-gemv-vs-clblast: the OpenCL backend's two projection kernels (gemv_vec
 * and the tiled gemm, each forced at every size) against CLBlast's SGEMV /
 * SGEMM on the same device, queue and buffers, for the projection shapes of a
 * model, from 1 row (decode at batch 1) to 2048 (a prefill chunk). It prints
 * which is fastest at each size, how CLBlast compares with the kernel the
 * backend picks there (CL_GEMV_MAX_ROWS), and CLBlast's first-call kernel
 * compilation, which a program linking it would pay at every start.
 * Each result is first checked against gemm's (1e-5 relative), then timed:
 * the median of 7 rounds of 200 back-to-back launches, divided by 200.
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
    /* decode at batch 1..8, larger batches, prefill chunks */
    const int rows_list[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 2048};
    const int n_rows = (int)(sizeof rows_list / sizeof rows_list[0]), max_rows = rows_list[n_rows - 1];
    int widest = 3 * D > DI ? 3 * D : DI, fails = 0;
    size_t nw = (size_t)widest * widest, nx = (size_t)max_rows * widest;
    lcsm_buf *bw = NULL, *bx = NULL, *obuf[3] = {NULL, NULL, NULL};
    float *hw = malloc(nw * sizeof *hw), *hx = malloc(nx * sizeof *hx), *r[3];
    for (int p = 0; p < 3; p++)
        r[p] = malloc(nx * sizeof(float));
    if (!hw || !hx || !r[0] || !r[1] || !r[2] || be->ops->alloc(be, nw * 4, &bw) ||
        be->ops->alloc(be, nx * 4, &bx) || be->ops->alloc(be, nx * 4, &obuf[0]) || be->ops->alloc(be, nx * 4, &obuf[1]) ||
        be->ops->alloc(be, nx * 4, &obuf[2])) {
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
    /* CLBlast compiles its kernels at a routine's first call (an in-process
     * cache only): that time is start-up a library user would pay each run. */
    for (int k = 0; k < 2; k++) {
        job f = {cb, {bx, 0}, {bw, 0}, {obuf[2], 0}, k ? 32 : 1, D, D};
        clFinish(cb->queue);
        double t0 = lcsm__now();
        int bad = run_clblast(&f);
        clFinish(cb->queue);
        printf("CLBlast first %s call (kernel compilation): %.1f ms%s\n", k ? "SGEMM" : "SGEMV",
               (lcsm__now() - t0) * 1e3, bad ? " (failed)" : "");
    }
    printf("%-9s %5s %5s %4s | %9s %9s %9s | %s\n", "matrix", "n_in", "n_out", "rows", "gemv us", "gemm us",
           "CLBlast us", "fastest (ours at this size)");
    const int gemv_cap = 256; /* gemv_vec beyond this is not worth timing */
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int ri = 0; ri < n_rows; ri++) {
            const shape *sh = &shapes[k];
            const int rows = rows_list[ri];
            const size_t n = (size_t)rows * sh->n_out;
            job j[3];
            double t[3] = {-1, -1, -1};
            for (int p = 0; p < 3; p++)
                j[p] = (job){cb, {bx, 0}, {bw, 0}, {obuf[p], 0}, rows, sh->n_in, sh->n_out};
            int ok = 1;
            static const int order[3] = {1, 0, 2}; /* gemm first: the others are checked against it */
            for (int o = 0; o < 3 && ok; o++) {
                const int p = order[o];
                if (p == 0 && rows > gemv_cap)
                    continue;
                cb->gemv_max_rows = p == 0 ? rows : 0; /* p 0: gemv_vec, p 1: gemm */
                int (*fn)(void *) = p == 2 ? run_clblast : run_lcsm;
                double e = 0;
                if (fn(&j[p]) || be->ops->read(be, j[p].out, r[p], n)) {
                    fprintf(stderr, "%s rows %d: a launch failed: %s\n", sh->name, rows, lcsm_backend_last_error(be));
                    ok = 0;
                } else if (p != 1 && (e = rel_err(r[p], r[1], n)) > 1e-5) {
                    fprintf(stderr, "%s rows %d: %s differs from gemm, relative error %.3g\n", sh->name, rows,
                            p ? "CLBlast" : "gemv", e);
                    ok = 0;
                } else {
                    t[p] = time_us(cb, fn, &j[p]);
                }
            }
            cb->gemv_max_rows = CL_GEMV_MAX_ROWS;
            if (!ok) {
                fails++;
                continue;
            }
            const char *ours = rows <= CL_GEMV_MAX_ROWS ? "gemv" : "gemm";
            double to = rows <= CL_GEMV_MAX_ROWS ? t[0] : t[1];
            int best = 1;
            if (t[0] > 0 && t[0] < t[best])
                best = 0;
            if (t[2] < t[best])
                best = 2;
            static const char *names[] = {"gemv", "gemm", "CLBlast"};
            char g0[16] = "-";
            if (t[0] > 0)
                snprintf(g0, sizeof g0, "%.2f", t[0]);
            printf("%-9s %5d %5d %4d | %9s %9.2f %9.2f | %s (%s: CLBlast x%.2f of it)\n", sh->name, sh->n_in,
                   sh->n_out, rows, g0, t[1], t[2], names[best], ours, t[2] / to);
        }
    be->ops->release(be, bw);
    be->ops->release(be, bx);
    for (int p = 0; p < 3; p++) {
        be->ops->release(be, obuf[p]);
        free(r[p]);
    }
    free(hw);
    free(hx);
    lcsm_backend_destroy(be);
    return fails ? 1 : 0;
}
