/*
 * Hedgehog linear attention on the CPU (src/backend.h, lcsm_linattn_args): one
 * task per (sequence, head) runs the recurrence over the chunk's rows, so a
 * prompt costs O(len F hd) per head, as a decode step of each token would,
 * and the state it leaves is the one the steps continue from.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

typedef struct linattn_job {
    const lcsm_linattn_args *a;
    const float *qkv, *fmq, *fmk;
    float *state, *out;
} linattn_job;

/* phi [2F] of x [hd] through W [hd][F]: softmax(u) | softmax(-u), clamped. */
static void feature_map(const float *x, const float *W, int hd, int F, float eps, float *u, float *phi)
{
    for (int f = 0; f < F; f++)
        u[f] = 0.0f;
    for (int d = 0; d < hd; d++)
        for (int f = 0; f < F; f++)
            u[f] += x[d] * W[(size_t)d * F + f];
    float hi = -INFINITY, lo = INFINITY;
    for (int f = 0; f < F; f++) {
        hi = u[f] > hi ? u[f] : hi;
        lo = u[f] < lo ? u[f] : lo;
    }
    float sp = 0.0f, sn = 0.0f;
    for (int f = 0; f < F; f++) {
        phi[f] = expf(u[f] - hi);
        phi[F + f] = expf(lo - u[f]); /* softmax(-u): the maximum of -u is -lo */
        sp += phi[f];
        sn += phi[F + f];
    }
    for (int f = 0; f < F; f++) {
        phi[f] = fmaxf(phi[f] / sp, eps);
        phi[F + f] = fmaxf(phi[F + f] / sn, eps);
    }
}

static void linattn_task(void *ctx, int task, int thread)
{
    (void)thread;
    const linattn_job *j = ctx;
    const lcsm_linattn_args *a = j->a;
    const int H = a->H, hd = a->hd, F = a->F, F2 = 2 * F, W = 3 * H * hd;
    const int b = task / H, h = task % H;
    float *S = j->state + (size_t)task * F2 * (hd + 1); /* [2F][hd + 1]: S | z */
    const float *Wq = j->fmq + (size_t)h * hd * F, *Wk = j->fmk + (size_t)h * hd * F;
    float u[CPU_LINATTN_MAX_F], pq[2 * CPU_LINATTN_MAX_F], pk[2 * CPU_LINATTN_MAX_F];
    for (int t = 0; t < a->len; t++) {
        const size_t row = (size_t)b * a->len + t;
        const float *q = j->qkv + row * W + (size_t)h * hd, *k = q + (size_t)H * hd, *v = k + (size_t)H * hd;
        feature_map(q, Wq, hd, F, a->fm_eps, u, pq);
        feature_map(k, Wk, hd, F, a->fm_eps, u, pk);
        float *o = j->out + row * H * hd + (size_t)h * hd, den = 0.0f;
        memset(o, 0, sizeof *o * (size_t)hd);
        for (int f = 0; f < F2; f++) {
            float *Sf = S + (size_t)f * (hd + 1);
            for (int d = 0; d < hd; d++) {
                Sf[d] += pk[f] * v[d];
                o[d] += pq[f] * Sf[d];
            }
            Sf[hd] += pk[f];
            den += pq[f] * Sf[hd];
        }
        const float inv = 1.0f / (den + a->eps);
        for (int d = 0; d < hd; d++)
            o[d] *= inv;
    }
}

lcsm_status cpu_linattn(lcsm_backend *be, const lcsm_linattn_args *a)
{
    cpu_backend *cb = (cpu_backend *)be;
    if (a->F > CPU_LINATTN_MAX_F || a->F < 1)
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "cpu: linear attention of %d features (1 to %d)", a->F,
                            CPU_LINATTN_MAX_F);
    linattn_job j = {a, cpu_ptr(a->qkv), cpu_ptr(a->fmq), cpu_ptr(a->fmk), cpu_ptr(a->state), cpu_ptr(a->out)};
    lcsm_pool_run(cb->pool, a->B * a->H, linattn_task, &j);
    return LCSM_OK;
}
