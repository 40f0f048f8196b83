/*
 * The projections alone: a backend's linear (each flag) and LayerNorm then
 * linear (lcsm__norm_linear, the engine's pre-norm pattern) against a
 * double-precision reference, on fresh random data.
 *
 * Rows run from 1 (decode at batch 1) across the CPU's small-batch kernel
 * (2 to 32 rows, then sgemm) and the OpenCL backend's kernel choices:
 * gemv_vec blocks of 8 rows (9, 17: a partial last block), its last size
 * (128, CL_GEMV_MAX_ROWS) and the tiled gemm beyond (129, 200). Widths
 * include ones that are not multiples of 4 (the unaligned loads) and offsets
 * into buffers that are not 16-byte aligned.
 *
 * Bound: 2e-5 relative to the largest |output|. The sums have n_in <= 520
 * terms of size ~1; fp32 accumulation in any order errs by about
 * sqrt(n_in) * 6e-8 relative to the sum of |terms|, ~1e-6 here; the LayerNorm
 * adds an error of a few ulps of its output per input.
 */
#include "engine.h" /* the backend table and lcsm__norm_linear */
#include "testutil.h"

#include <math.h>

#define TOL 2e-5

typedef struct dense_case {
    int rows, n_in, n_out, flags, bias, ln, off; /* off: floats before each tensor */
} dense_case;

static double gelu_tanh(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double silu(double x) { return x / (1.0 + exp(-x)); }

static const lcsm_layer_spec layernorm = {.norm = LCSM_NORM_LAYER, .norm_bias = 1};

static void upload(lcsm_backend *be, lcsm_buf *buf, size_t off, const float *v, size_t n)
{
    CHECK_OK(be->ops->write(be, lcsm_f32(buf, off), v, n));
}

/* Returns the relative error of the backend's output, or -1 when an op failed. */
static double run(lcsm_backend *be, const dense_case *c, uint64_t *rng)
{
    const int R = c->rows, K = c->n_in, N = c->n_out, off = c->off;
    const float eps = 1e-5f;
    const size_t nx = (size_t)R * K, nw = (size_t)N * K, no = (size_t)R * N;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *bias = malloc(N * sizeof *bias);
    float *g = malloc(K * sizeof *g), *b = malloc(K * sizeof *b), *out = malloc(no * sizeof *out);
    double *ref = malloc(no * sizeof *ref), *xn = malloc((size_t)K * sizeof *xn);
    double err = -1;
    if (!x || !w || !bias || !g || !b || !out || !ref || !xn)
        goto done;
    for (size_t i = 0; i < nx; i++) /* an offset mean, as in a residual stream */
        x[i] = (float)(tu_uniform(rng) + 0.3);
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)(tu_uniform(rng) / sqrt((double)K));
    for (int i = 0; i < N; i++)
        bias[i] = (float)(0.1 * tu_uniform(rng));
    for (int i = 0; i < K; i++) {
        g[i] = (float)(1.0 + 0.2 * tu_uniform(rng));
        b[i] = (float)(0.1 * tu_uniform(rng));
    }
    for (size_t i = 0; i < no; i++)
        out[i] = (float)tu_uniform(rng); /* what ACCUMULATE adds to */

    /* reference, in double */
    for (int r = 0; r < R; r++) {
        const float *xr = x + (size_t)r * K;
        double mean = 0, var = 0;
        for (int k = 0; k < K; k++)
            mean += xr[k];
        mean /= K;
        for (int k = 0; k < K; k++)
            var += (xr[k] - mean) * (xr[k] - mean);
        const double rstd = 1.0 / sqrt(var / K + eps);
        for (int k = 0; k < K; k++)
            xn[k] = c->ln ? (xr[k] - mean) * rstd * g[k] + b[k] : xr[k];
        for (int n = 0; n < N; n++) {
            double v = c->bias ? bias[n] : 0.0;
            for (int k = 0; k < K; k++)
                v += (double)w[(size_t)n * K + k] * xn[k];
            if (LCSM_LINEAR_ACT_OF(c->flags) == LCSM_ACT_GELU_TANH)
                v = gelu_tanh(v);
            else if (LCSM_LINEAR_ACT_OF(c->flags) == LCSM_ACT_SILU)
                v = silu(v);
            if (c->flags & LCSM_LINEAR_ACCUMULATE)
                v += out[(size_t)r * N + n];
            ref[(size_t)r * N + n] = v;
        }
    }

    /* one buffer: x, W, bias, g, b, xn scratch, out; each `off` floats past a boundary */
    size_t o_x = off, o_w = o_x + nx + off, o_bias = o_w + nw + off, o_g = o_bias + N + off, o_b = o_g + K + off;
    size_t o_xn = o_b + K + off, o_out = o_xn + nx + off, total = o_out + no;
    lcsm_buf *buf = NULL;
    lcsm_status st = be->ops->alloc(be, total * sizeof(float), &buf);
    CHECK_OK(st);
    if (st != LCSM_OK)
        goto done;
    upload(be, buf, o_x, x, nx);
    upload(be, buf, o_w, w, nw);
    upload(be, buf, o_bias, bias, N);
    upload(be, buf, o_g, g, K);
    upload(be, buf, o_b, b, K);
    upload(be, buf, o_out, out, no);
    lcsm_ref rx = lcsm_f32(buf, o_x), rw = lcsm_f32(buf, o_w), rbias = c->bias ? lcsm_f32(buf, o_bias) : (lcsm_ref){0};
    lcsm_ref rout = lcsm_f32(buf, o_out);
    if (c->ln)
        st = lcsm__norm_linear(be, &layernorm, eps, rx, lcsm_f32(buf, o_g), lcsm_f32(buf, o_b), lcsm_f32(buf, o_xn), rw,
                               rbias, rout, R, K, N, c->flags);
    else
        st = be->ops->linear(be, rx, rw, rbias, rout, R, K, N, c->flags);
    CHECK_OK(st);
    if (st == LCSM_OK && (st = be->ops->read(be, rout, out, no)) == LCSM_OK) {
        double d = 0, m = 0;
        for (size_t i = 0; i < no; i++) {
            d = fmax(d, fabs(out[i] - ref[i]));
            m = fmax(m, fabs(ref[i]));
        }
        err = isnan(d) ? INFINITY : d / (m > 0 ? m : 1);
    }
    be->ops->release(be, buf);
done:
    free(x), free(w), free(bias), free(g), free(b), free(out), free(ref), free(xn);
    return err;
}

static uint64_t rng;

static int run_backend(const char *name)
{
    int skip;
    lcsm_backend *be = tu_backend_open(name, 0, &skip);
    if (!be)
        return skip ? 77 : 1;
    const int rows[] = {1, 2, 8, 9, 17, 32, 33, 128, 129, 200}; /* 32: the CPU's small-batch kernel's last */
    const int G = LCSM_LINEAR_GELU, A = LCSM_LINEAR_ACCUMULATE, S = LCSM_LINEAR_ACT(LCSM_ACT_SILU);
    /* rows x {n_in, n_out, flags, bias, ln, off}: D = 128 as in a model, 520 -> 130 as an MLP's
     * second projection, odd widths for the unaligned paths */
    const dense_case shapes[] = {
        {0, 128, 384, 0, 1, 1, 0}, {0, 128, 128, A, 1, 0, 0}, {0, 128, 520, G, 1, 1, 0},
        {0, 520, 130, A, 1, 0, 0}, {0, 128, 300, 0, 0, 1, 0}, {0, 37, 23, G, 1, 1, 0}, {0, 37, 23, A, 0, 1, 2},
        {0, 64, 96, 0, 1, 1, 3},   {0, 100, 77, S, 1, 0, 0}, {0, 6, 5, 0, 0, 1, 1},
    };
    /* LCSM_TEST_QUICK: the small shapes (the last four) at 1 row, a partial
     * gemv_vec block and the gemm, every kernel path with little work. */
    const int quick = tu_quick(), quick_rows[] = {1, 9, 129};
    const size_t n_shapes = sizeof shapes / sizeof shapes[0], n_rows = quick ? 3 : sizeof rows / sizeof rows[0];
    size_t n_cases = 0;
    for (size_t si = quick ? n_shapes - 4 : 0; si < n_shapes; si++)
        for (size_t ri = 0; ri < n_rows; ri++, n_cases++) {
            dense_case c = shapes[si];
            c.rows = quick ? quick_rows[ri] : rows[ri];
            double e = run(be, &c, &rng);
            CHECK(e >= 0 && e <= TOL, "%s rows %d n_in %d n_out %d flags %d bias %d ln %d off %d: rel err %.3g",
                  name, c.rows, c.n_in, c.n_out, c.flags, c.bias, c.ln, c.off, e);
        }
    printf("  %s: %zu cases%s\n", name, n_cases, quick ? " (LCSM_TEST_QUICK)" : "");
    lcsm_backend_destroy(be);
    return 0;
}

int main(void)
{
    rng = tu_seed();
    char dir[256];
    return tu_for_backends("test_dense", dir, sizeof dir, run_backend);
}
