/* Dense and per-token operations of the CPU backend. */
#include "cpu.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Below this many multiply-adds a job runs on the calling thread: handing it to
 * the pool would cost more than it saves. */
#define PAR_MIN_WORK (1 << 16)

static int n_tasks_for(const cpu_backend *cb, double work, int max_tasks)
{
    if (work < PAR_MIN_WORK || max_tasks < 2)
        return 1;
    return cb->n_threads < max_tasks ? cb->n_threads : max_tasks;
}

lcsm_status cpu_embed(lcsm_backend *be, lcsm_ref E, const int32_t *ids, int n, int D, lcsm_ref out)
{
    (void)be;
    for (int i = 0; i < n; i++)
        memcpy(cpu_ptr(out) + (size_t)i * D, cpu_ptr(E) + (size_t)ids[i] * D, (size_t)D * sizeof(float));
    return LCSM_OK;
}

/* ---- layernorm */

typedef struct ln_job {
    const float *x, *w, *b;
    float *out;
    int rows, D, n_tasks;
    float eps;
} ln_job;

static void ln_task(void *ctx, int task, int thread)
{
    (void)thread;
    const ln_job *j = ctx;
    int r0 = (int)((long long)j->rows * task / j->n_tasks), r1 = (int)((long long)j->rows * (task + 1) / j->n_tasks);
    for (int r = r0; r < r1; r++) {
        const float *x = j->x + (size_t)r * j->D;
        float *o = j->out + (size_t)r * j->D;
        float mean = 0, var = 0;
        for (int i = 0; i < j->D; i++)
            mean += x[i];
        mean /= (float)j->D;
        for (int i = 0; i < j->D; i++)
            var += (x[i] - mean) * (x[i] - mean);
        float inv = 1.0f / sqrtf(var / (float)j->D + j->eps);
        for (int i = 0; i < j->D; i++)
            o[i] = (x[i] - mean) * inv * j->w[i] + j->b[i];
    }
}

lcsm_status cpu_layernorm(lcsm_backend *be, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out, int rows, int D,
                          float eps)
{
    cpu_backend *cb = (cpu_backend *)be;
    ln_job j = {cpu_ptr(x), cpu_ptr(w), cpu_ptr(b), cpu_ptr(out), rows, D, 1, eps};
    j.n_tasks = n_tasks_for(cb, 4.0 * rows * D, rows);
    lcsm_pool_run(cb->pool, j.n_tasks, ln_task, &j);
    return LCSM_OK;
}

/* ---- linear: out (op)= act(x W^T + b), split over output columns */

typedef struct lin_job {
    const float *x, *W, *bias;
    float *out;
    int rows, n_in, n_out, flags, n_tasks;
} lin_job;

static inline float gelu_tanh(float v)
{
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

static void lin_task(void *ctx, int task, int thread)
{
    (void)thread;
    const lin_job *j = ctx;
    /* Column chunks aligned to 16 so each task streams whole cache lines of W. */
    int chunks = (j->n_out + 15) / 16;
    int o0 = 16 * (int)((long long)chunks * task / j->n_tasks);
    int o1 = 16 * (int)((long long)chunks * (task + 1) / j->n_tasks);
    if (o1 > j->n_out)
        o1 = j->n_out;
    if (o0 >= o1)
        return;
    int m = o1 - o0;
    float beta = (j->flags & LCSM_LINEAR_ACCUMULATE) ? 1.0f : 0.0f;
    const float *W = j->W + (size_t)o0 * j->n_in;
    if (j->rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, m, j->n_in, 1.0f, W, j->n_in, j->x, 1, beta, j->out + o0, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->rows, m, j->n_in, 1.0f, j->x, j->n_in, W, j->n_in,
                    beta, j->out + o0, j->n_out);
    if (!j->bias && !(j->flags & LCSM_LINEAR_GELU))
        return;
    for (int r = 0; r < j->rows; r++) {
        float *o = j->out + (size_t)r * j->n_out;
        if (j->bias)
            for (int i = o0; i < o1; i++)
                o[i] += j->bias[i];
        if (j->flags & LCSM_LINEAR_GELU)
            for (int i = o0; i < o1; i++)
                o[i] = gelu_tanh(o[i]);
    }
}

lcsm_status cpu_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                       int n_out, int flags)
{
    cpu_backend *cb = (cpu_backend *)be;
    lin_job j = {cpu_ptr(x), cpu_ptr(W), bias.buf ? cpu_ptr(bias) : NULL, cpu_ptr(out), rows, n_in, n_out, flags, 1};
    j.n_tasks = n_tasks_for(cb, (double)rows * n_in * n_out, (n_out + 15) / 16);
    lcsm_pool_run(cb->pool, j.n_tasks, lin_task, &j);
    return LCSM_OK;
}

/* ---- the Hyena operator over whole sequences */

static inline float conv3(const float *w, float bias, float u2, float u1, float u0)
{
    /* PyTorch cross-correlation: tap 2 multiplies the current position. */
    return w[0] * u2 + w[1] * u1 + w[2] * u0 + bias;
}

lcsm_status cpu_shortconv_seq(lcsm_backend *be, lcsm_ref u_ref, lcsm_ref w_ref, lcsm_ref b_ref, int B, int len,
                              int D, lcsm_ref x0_ref, lcsm_ref a_ref, size_t a_stride, lcsm_ref state_ref)
{
    (void)be;
    const float *u = cpu_ptr(u_ref), *w = cpu_ptr(w_ref), *bias = cpu_ptr(b_ref);
    float *x0 = cpu_ptr(x0_ref), *a = cpu_ptr(a_ref);
    const int C = 3 * D;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len; t++) {
            const float *u0 = u + ((size_t)b * len + t) * C;
            const float *u1 = t >= 1 ? u0 - C : NULL, *u2 = t >= 2 ? u0 - 2 * C : NULL;
            float *xo = x0 + ((size_t)b * len + t) * D;
            float *ao = a + (size_t)t * a_stride + (size_t)b * D;
            for (int c = 0; c < D; c++) {
                float v[3];
                for (int k = 0; k < 3; k++) {
                    int ch = k * D + c;
                    v[k] = conv3(w + 3 * ch, bias[ch], u2 ? u2[ch] : 0.0f, u1 ? u1[ch] : 0.0f, u0[ch]);
                }
                xo[c] = v[0];
                ao[c] = v[2] * v[1]; /* a = v * x1 */
            }
        }
    if (state_ref.buf) {
        float *st = cpu_ptr(state_ref);
        for (int b = 0; b < B; b++)
            for (int k = 0; k < 2; k++) { /* state[b][0] = u[len-2], state[b][1] = u[len-1] */
                int t = len - 2 + k;
                float *dst = st + ((size_t)b * 2 + k) * C;
                if (t >= 0)
                    memcpy(dst, u + ((size_t)b * len + t) * C, (size_t)C * sizeof(float));
                else
                    memset(dst, 0, (size_t)C * sizeof(float));
            }
    }
    return LCSM_OK;
}

lcsm_status cpu_gate_seq(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref y_ref,
                         size_t y_stride, lcsm_ref a_ref, size_t a_stride, lcsm_ref x0_ref, lcsm_ref out_ref)
{
    (void)be;
    const int D = f->D;
    const float *y = cpu_ptr(y_ref), *a = cpu_ptr(a_ref), *x0 = cpu_ptr(x0_ref), *db = f->dbias + (size_t)g * D;
    float *out = cpu_ptr(out_ref);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len; t++) {
            const float *yt = y + (size_t)t * y_stride + (size_t)b * D, *at = a + (size_t)t * a_stride + (size_t)b * D;
            const float *xt = x0 + ((size_t)b * len + t) * D;
            float *o = out + ((size_t)b * len + t) * D;
            for (int c = 0; c < D; c++)
                o[c] = xt[c] * (yt[c] + db[c] * at[c]);
        }
    return LCSM_OK;
}

/* ---- the Hyena operator, one decode step */

typedef struct lazy_job {
    const float *hist, *hT;
    float *y;     /* [B*D] raw sums over s < t */
    size_t rows;  /* G*B*D: hist row stride */
    size_t hrows; /* G*D: hT row stride */
    int g, B, D, t, n_tasks;
} lazy_job;

/* y[b][c] = sum_{s<t} h[t-s][g*D+c] * hist[s][(g*B+b)*D+c], split over column chunks
 * so every task streams contiguous rows of the history and of the filter. */
static void lazy_task(void *ctx, int task, int thread)
{
    (void)thread;
    const lazy_job *j = ctx;
    int cols = j->B * j->D;
    int c0 = (int)((long long)cols * task / j->n_tasks), c1 = (int)((long long)cols * (task + 1) / j->n_tasks);
    for (int col = c0; col < c1;) {
        int b = col / j->D, c = col % j->D;
        int n = j->D - c < c1 - col ? j->D - c : c1 - col; /* stay within sequence b */
        float *y = j->y + col;
        const float *hcol = j->hT + (size_t)j->g * j->D + c;
        const float *xcol = j->hist + ((size_t)j->g * j->B + b) * j->D + c;
        memset(y, 0, (size_t)n * sizeof *y);
        for (int s = 0; s < j->t; s++) {
            const float *h = hcol + (size_t)(j->t - s) * j->hrows, *x = xcol + (size_t)s * j->rows;
            for (int i = 0; i < n; i++)
                y[i] += h[i] * x[i];
        }
        col += n;
    }
}

lcsm_status cpu_hyena_step(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                           const lcsm_hyena_step_args *a)
{
    cpu_backend *cb = (cpu_backend *)be;
    const int B = geom->B, D = geom->D, G = geom->G, C = 3 * D, g = a->group, t = a->t;
    const size_t rows = (size_t)G * B * D;
    const float *w = cpu_ptr(a->conv_w), *bias = cpu_ptr(a->conv_b), *h0d = f->h0d + (size_t)g * D;
    float *hist_t = cpu_ptr(a->hist) + (size_t)t * rows + (size_t)g * B * D;
    float *y = cpu_ptr(a->y);
    /* Short conv with the two previous in_proj rows, then a = v * x1 into the
     * history; y temporarily holds x0. */
    for (int b = 0; b < B; b++) {
        const float *u0 = cpu_ptr(a->u) + (size_t)b * C;
        float *st = cpu_ptr(a->state) + (size_t)b * 2 * C; /* rows t-2, t-1 */
        for (int c = 0; c < D; c++) {
            float v[3];
            for (int k = 0; k < 3; k++) {
                int ch = k * D + c;
                v[k] = conv3(w + 3 * ch, bias[ch], st[ch], st[C + ch], u0[ch]);
            }
            y[(size_t)b * D + c] = v[0];
            hist_t[(size_t)b * D + c] = v[2] * v[1];
        }
        memcpy(st, st + C, (size_t)C * sizeof *st);
        memcpy(st + C, u0, (size_t)C * sizeof *st);
    }
    if (a->mode == LCSM_MIX_CACHED) {
        const float *acc_t = cpu_ptr(a->acc) + (size_t)t * rows + (size_t)g * B * D;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < D; c++) {
                size_t i = (size_t)b * D + c;
                y[i] *= acc_t[i] + h0d[c] * hist_t[i];
            }
        return LCSM_OK;
    }
    /* Lazy: the whole past now, summed into the caller's work space. */
    float *sum = cpu_ptr(a->work);
    lazy_job j = {cpu_ptr(a->hist), f->hT, sum, rows, (size_t)G * D, g, B, D, t, 1};
    j.n_tasks = n_tasks_for(cb, (double)t * B * D, (B * D + 63) / 64);
    lcsm_pool_run(cb->pool, j.n_tasks, lazy_task, &j);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < D; c++) {
            size_t i = (size_t)b * D + c;
            y[i] *= sum[i] + h0d[c] * hist_t[i];
        }
    return LCSM_OK;
}
