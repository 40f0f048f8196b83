/* Dense operations of the CPU backend: embedding, norms, projections, the GLU. */
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
    cpu_backend *cb = (cpu_backend *)be;
    for (int i = 0; i < n; i++) {
        float *o = cpu_ptr(out) + (size_t)i * D;
        if (E.dt == LCSM_DT_F32)
            memcpy(o, cpu_ptr(E) + (size_t)ids[i] * D, (size_t)D * sizeof(float));
        else
            cb->half_to_f32((const uint16_t *)cpu_vptr(E) + (size_t)ids[i] * D, (size_t)D, E.dt == LCSM_DT_BF16, o);
    }
    return LCSM_OK;
}

/* ---- norms */

typedef struct norm_job {
    const float *x, *w, *b;
    float *out;
    int rows, D, n_tasks;
    lcsm_norm_kind kind;
    float eps;
} norm_job;

static void norm_task(void *ctx, int task, int thread)
{
    (void)thread;
    const norm_job *j = ctx;
    int r0 = (int)((long long)j->rows * task / j->n_tasks), r1 = (int)((long long)j->rows * (task + 1) / j->n_tasks);
    for (int r = r0; r < r1; r++) {
        const float *x = j->x + (size_t)r * j->D;
        float *o = j->out + (size_t)r * j->D;
        if (j->kind == LCSM_NORM_LAYER) {
            float mean = 0, var = 0;
            for (int i = 0; i < j->D; i++)
                mean += x[i];
            mean /= (float)j->D;
            for (int i = 0; i < j->D; i++)
                var += (x[i] - mean) * (x[i] - mean);
            float inv = 1.0f / sqrtf(var / (float)j->D + j->eps);
            for (int i = 0; i < j->D; i++)
                o[i] = (x[i] - mean) * inv * j->w[i] + (j->b ? j->b[i] : 0.0f);
            continue;
        }
        float ss = 0;
        for (int i = 0; i < j->D; i++)
            ss += x[i] * x[i];
        /* RMS: 1 / sqrt(mean(x^2) + eps); StripedHyena's: 1 / (||x|| / sqrt(D) + eps) */
        float inv = j->kind == LCSM_NORM_RMS ? 1.0f / sqrtf(ss / (float)j->D + j->eps)
                                             : 1.0f / (sqrtf(ss) / sqrtf((float)j->D) + j->eps);
        for (int i = 0; i < j->D; i++)
            o[i] = x[i] * inv * j->w[i] + (j->b ? j->b[i] : 0.0f);
    }
}

lcsm_status cpu_norm(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out,
                     int rows, int D, float eps)
{
    cpu_backend *cb = (cpu_backend *)be;
    norm_job j = {cpu_ptr(x), cpu_ptr(w), b.buf ? cpu_ptr(b) : NULL, cpu_ptr(out), rows, D, 1, kind, eps};
    j.n_tasks = n_tasks_for(cb, 4.0 * rows * D, rows);
    lcsm_pool_run(cb->pool, j.n_tasks, norm_task, &j);
    return LCSM_OK;
}

/* ---- linear: out (op)= act(x W^T + b), split over output columns */

typedef struct lin_job {
    cpu_backend *cb;
    const float *x, *bias;
    const void *W;
    lcsm_dtype wdt;
    float *out;
    int rows, n_in, n_out, flags, n_tasks;
} lin_job;

static void lin_task(void *ctx, int task, int thread)
{
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
    if (j->wdt != LCSM_DT_F32) {
        cpu_linear_half(j->cb, j->x, j->W, j->wdt == LCSM_DT_BF16, j->rows, j->n_in, j->n_out, o0, o1, beta, j->out,
                        thread);
    } else {
        const float *W = (const float *)j->W + (size_t)o0 * j->n_in;
        if (j->rows == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, m, j->n_in, 1.0f, W, j->n_in, j->x, 1, beta, j->out + o0, 1);
        else if (j->rows <= CPU_SMALL_GEMM_ROWS && j->cb->small_gemm)
            j->cb->small_gemm(j->x, W, j->out, j->rows, j->n_in, j->n_out, o0, o1, beta != 0.0f);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->rows, m, j->n_in, 1.0f, j->x, j->n_in, W,
                        j->n_in, beta, j->out + o0, j->n_out);
    }
    const lcsm_act act = LCSM_LINEAR_ACT_OF(j->flags);
    if (!j->bias && act == LCSM_ACT_NONE)
        return;
    for (int r = 0; r < j->rows; r++) {
        float *o = j->out + (size_t)r * j->n_out;
        if (j->bias)
            for (int i = o0; i < o1; i++)
                o[i] += j->bias[i];
        if (act != LCSM_ACT_NONE)
            cpu_act_row(j->cb, act, o + o0, o1 - o0);
    }
}

lcsm_status cpu_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                       int n_out, int flags)
{
    cpu_backend *cb = (cpu_backend *)be;
    lin_job j = {cb,  cpu_ptr(x), bias.buf ? cpu_ptr(bias) : NULL, cpu_vptr(W), W.dt, cpu_ptr(out), rows, n_in,
                 n_out, flags, 1};
    j.n_tasks = n_tasks_for(cb, (double)rows * n_in * n_out, (n_out + 15) / 16);
    lcsm_pool_run(cb->pool, j.n_tasks, lin_task, &j);
    return LCSM_OK;
}

/* ---- the gate of a gated MLP: out = act(h[:, :n]) * h[:, n:] */

lcsm_status cpu_glu(lcsm_backend *be, lcsm_ref h_ref, lcsm_ref out_ref, int rows, int n, lcsm_act act)
{
    (void)be;
    const float *h = cpu_ptr(h_ref);
    float *out = cpu_ptr(out_ref);
    for (int r = 0; r < rows; r++) {
        const float *hr = h + (size_t)r * 2 * n;
        float *o = out + (size_t)r * n;
        for (int i = 0; i < n; i++)
            o[i] = cpu_act(act, hr[i]) * hr[n + i];
    }
    return LCSM_OK;
}
