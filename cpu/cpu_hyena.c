/* The Hyena operator on the CPU: over whole sequences (short conv, the stage
 * inputs and gates) and one decode step (short conv, the chain of stages, each
 * stage's past from the accumulator or summed from the history). */
#include "cpu.h"

#include <string.h>

#define PAR_MIN_WORK (1 << 16)

static int n_tasks_for(const cpu_backend *cb, double work, int max_tasks)
{
    if (work < PAR_MIN_WORK || max_tasks < 2)
        return 1;
    return cb->n_threads < max_tasks ? cb->n_threads : max_tasks;
}

/* Causal K-tap conv of one channel (PyTorch's cross-correlation: tap K-1
 * multiplies the current position): p[k] is the input at t - (K-1) + k. */
static inline float conv_k(const float *w, int K, const float *p, float bias)
{
    float v = 0.0f;
    for (int k = 0; k < K; k++)
        v += w[k] * p[k];
    return v + bias;
}

/* ---- whole sequences */

lcsm_status cpu_shortconv_seq(lcsm_backend *be, lcsm_ref u_ref, lcsm_ref w_ref, lcsm_ref b_ref, int K, int B, int len,
                              int C, lcsm_ref out_ref, lcsm_ref state_ref)
{
    (void)be;
    const float *u = cpu_ptr(u_ref), *w = cpu_ptr(w_ref), *bias = b_ref.buf ? cpu_ptr(b_ref) : NULL;
    float *out = cpu_ptr(out_ref), *st = state_ref.buf && K > 1 ? cpu_ptr(state_ref) : NULL;
    float p[LCSM_MAX_SHORT];
    for (int b = 0; b < B; b++) {
        const float *ub = u + (size_t)b * len * C;
        float *sb = st ? st + (size_t)b * (K - 1) * C : NULL; /* rows -(K-1) .. -1 of the chunk */
        for (int t = 0; t < len; t++) {
            float *o = out + ((size_t)b * len + t) * C;
            for (int ch = 0; ch < C; ch++) {
                for (int k = 0; k < K; k++) {
                    int s = t - (K - 1) + k;
                    p[k] = s >= 0 ? ub[(size_t)s * C + ch] : sb ? sb[(size_t)(s + K - 1) * C + ch] : 0.0f;
                }
                o[ch] = conv_k(w + (size_t)K * ch, K, p, bias ? bias[ch] : 0.0f);
            }
        }
        /* the new state: rows len .. len+K-2 of [state; u], in ascending order
         * (a row comes from a later one, so nothing is overwritten early) */
        for (int k = 0; sb && k < K - 1; k++) {
            const int j = len + k; /* in [state; u] */
            const float *src = j < K - 1 ? sb + (size_t)j * C : ub + (size_t)(j - (K - 1)) * C;
            memmove(sb + (size_t)k * C, src, (size_t)C * sizeof *sb);
        }
    }
    return LCSM_OK;
}

lcsm_status cpu_mul_seq(lcsm_backend *be, lcsm_seq x, lcsm_seq m, lcsm_seq out, int B, int len, int D)
{
    (void)be;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len; t++) {
            const float *xt = cpu_ptr(x.r) + t * x.st + b * x.sb;
            float *o = cpu_ptr(out.r) + t * out.st + b * out.sb;
            if (!m.r.buf) {
                memcpy(o, xt, (size_t)D * sizeof *o);
                continue;
            }
            const float *mt = cpu_ptr(m.r) + t * m.st + b * m.sb;
            for (int c = 0; c < D; c++)
                o[c] = xt[c] * mt[c];
        }
    return LCSM_OK;
}

lcsm_status cpu_gate_seq(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_seq y, lcsm_seq a,
                         lcsm_seq m, lcsm_seq out)
{
    (void)be;
    const int D = f->D;
    const float *db = f->dbias + (size_t)g * D;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len; t++) {
            const float *yt = cpu_ptr(y.r) + t * y.st + b * y.sb, *at = cpu_ptr(a.r) + t * a.st + b * a.sb;
            float *o = cpu_ptr(out.r) + t * out.st + b * out.sb;
            if (!m.r.buf) {
                for (int c = 0; c < D; c++)
                    o[c] = yt[c] + db[c] * at[c];
                continue;
            }
            const float *mt = cpu_ptr(m.r) + t * m.st + b * m.sb;
            for (int c = 0; c < D; c++)
                o[c] = mt[c] * (yt[c] + db[c] * at[c]);
        }
    return LCSM_OK;
}

/* ---- modal and FIR stages over whole sequences */

typedef struct modal_job {
    const lcsm_modal *md;
    float *state; /* [B][D][N] (x2 complex) or NULL: start from zero, keep nothing */
    lcsm_seq a, y;
    int B, len, D, cx;
} modal_job;

#define MODAL_CHANNELS 32 /* channels per task: a row of a and y per step stays in cache */

/* The recurrence for one sequence and a block of channels, over every position. */
static void modal_task(void *ctx, int task, int thread)
{
    (void)thread;
    const modal_job *j = ctx;
    const int blocks = (j->D + MODAL_CHANNELS - 1) / MODAL_CHANNELS, b = task / blocks;
    const int c0 = (task % blocks) * MODAL_CHANNELS, nc = j->D - c0 < MODAL_CHANNELS ? j->D - c0 : MODAL_CHANNELS;
    const int N = j->md->N, w = j->cx ? 2 : 1;
    const float *p = cpu_ptr(j->md->p) + (size_t)c0 * N * w, *R = cpu_ptr(j->md->R) + (size_t)c0 * N * w;
    const float *skip = cpu_ptr(j->md->skip) + c0;
    float z[MODAL_CHANNELS * LCSM_MAX_MODES * 2];
    const size_t zn = (size_t)nc * N * w;
    float *st = j->state ? j->state + ((size_t)b * j->D + c0) * N * w : NULL;
    if (st)
        memcpy(z, st, zn * sizeof *z);
    else
        memset(z, 0, zn * sizeof *z);
    for (int t = 0; t < j->len; t++) {
        const float *at = cpu_ptr(j->a.r) + t * j->a.st + b * j->a.sb + c0;
        float *yt = cpu_ptr(j->y.r) + t * j->y.st + b * j->y.sb + c0;
        for (int c = 0; c < nc; c++) {
            const float x = at[c];
            float sum = 0.0f;
            float *zc = z + (size_t)c * N * w;
            const float *pc = p + (size_t)c * N * w, *rc = R + (size_t)c * N * w;
            if (j->cx) {
                for (int n = 0; n < N; n++) {
                    const float zr = zc[2 * n], zi = zc[2 * n + 1];
                    const float nr = pc[2 * n] * zr - pc[2 * n + 1] * zi + x, ni = pc[2 * n] * zi + pc[2 * n + 1] * zr;
                    zc[2 * n] = nr;
                    zc[2 * n + 1] = ni;
                    sum += rc[2 * n] * nr - rc[2 * n + 1] * ni;
                }
            } else {
                for (int n = 0; n < N; n++) {
                    zc[n] = pc[n] * zc[n] + x;
                    sum += rc[n] * zc[n];
                }
            }
            yt[c] = sum + skip[c] * x;
        }
    }
    if (st)
        memcpy(st, z, zn * sizeof *z);
}

lcsm_status cpu_modal_seq(lcsm_backend *be, const lcsm_modal *md, lcsm_ref state, int B, int len, int D, lcsm_seq a,
                          lcsm_seq y)
{
    cpu_backend *cb = (cpu_backend *)be;
    modal_job j = {md, state.buf ? cpu_ptr(state) : NULL, a, y, B, len, D, md->p.dt == LCSM_DT_C64};
    lcsm_pool_run(cb->pool, B * ((D + MODAL_CHANNELS - 1) / MODAL_CHANNELS), modal_task, &j);
    return LCSM_OK;
}

typedef struct fir_job {
    const lcsm_fir *fir;
    lcsm_seq a, y;
    int pos0, B, len, D, n_tasks;
} fir_job;

/* Output positions split over tasks; every task all channels of its rows. */
static void fir_task(void *ctx, int task, int thread)
{
    (void)thread;
    const fir_job *j = ctx;
    const int L = j->fir->len, D = j->D;
    const float *taps = cpu_ptr(j->fir->taps), *skip = j->fir->skip.buf ? cpu_ptr(j->fir->skip) : NULL;
    const int rows = j->B * j->len;
    const int r0 = (int)((long long)rows * task / j->n_tasks), r1 = (int)((long long)rows * (task + 1) / j->n_tasks);
    for (int r = r0; r < r1; r++) {
        const int b = r / j->len, t = r % j->len;
        float *yt = cpu_ptr(j->y.r) + t * j->y.st + b * j->y.sb;
        const float *at = cpu_ptr(j->a.r) + t * j->a.st + b * j->a.sb;
        for (int c = 0; c < D; c++)
            yt[c] = skip ? skip[c] * at[c] : 0.0f;
        for (int k = 0; k < L; k++) {
            const float *as; /* input pos0 + t - k: in the chunk, else in the ring */
            if (k <= t)
                as = cpu_ptr(j->a.r) + (t - k) * j->a.st + b * j->a.sb;
            else if (j->fir->ring.buf && j->pos0 + t - k >= 0)
                as = cpu_ptr(j->fir->ring) + ((size_t)b * L + (size_t)((j->pos0 + t - k) % L)) * D;
            else
                break;
            for (int c = 0; c < D; c++)
                yt[c] += taps[(size_t)c * L + k] * as[c];
        }
    }
}

lcsm_status cpu_fir_seq(lcsm_backend *be, const lcsm_fir *fir, int pos0, int B, int len, int D, lcsm_seq a,
                        lcsm_seq y)
{
    cpu_backend *cb = (cpu_backend *)be;
    fir_job j = {fir, a, y, pos0, B, len, D, 1};
    j.n_tasks = n_tasks_for(cb, (double)B * len * D * fir->len, B * len);
    lcsm_pool_run(cb->pool, j.n_tasks, fir_task, &j);
    if (fir->ring.buf) { /* the chunk's last inputs into their slots, after every output read the old ones */
        const int L = fir->len;
        float *ring = cpu_ptr(fir->ring);
        for (int b = 0; b < B; b++)
            for (int t = len > L ? len - L : 0; t < len; t++)
                memcpy(ring + ((size_t)b * L + (size_t)((pos0 + t) % L)) * D, cpu_ptr(a.r) + t * a.st + b * a.sb,
                       (size_t)D * sizeof(float));
    }
    return LCSM_OK;
}

/* ---- one decode step */

typedef struct lazy_job {
    const float *hist, *hT;
    float *y;     /* [B*D] raw sums over s < t */
    size_t rows;  /* G*B*D: hist row stride */
    size_t hrows; /* G*D: hT row stride */
    int g, B, D, t, n_tasks;
    int s_lo; /* the first input summed (lazy: 0; lagged flash's band: t - band) */
} lazy_job;

/* y[b][c] = sum_{s_lo<=s<t} h[t-s][g*D+c] * hist[s][(g*B+b)*D+c], split over column chunks
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
        for (int s = j->s_lo; s < j->t; s++) {
            const float *h = hcol + (size_t)(j->t - s) * j->hrows, *x = xcol + (size_t)s * j->rows;
            for (int i = 0; i < n; i++)
                y[i] += h[i] * x[i];
        }
        col += n;
    }
}

/* A modal stage's step in place: x [B][D] in, y = Re sum R (p z + x) + D x out. */
static void modal_step(const lcsm_modal *md, float *state, int B, int D, float *x)
{
    const int N = md->N, cx = md->p.dt == LCSM_DT_C64, w = cx ? 2 : 1;
    const float *p = cpu_ptr(md->p), *R = cpu_ptr(md->R), *skip = cpu_ptr(md->skip);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < D; c++) {
            const float v = x[(size_t)b * D + c];
            float *z = state + ((size_t)b * D + c) * N * w, sum = 0.0f;
            const float *pc = p + (size_t)c * N * w, *rc = R + (size_t)c * N * w;
            if (cx) {
                for (int n = 0; n < N; n++) {
                    const float zr = z[2 * n], zi = z[2 * n + 1];
                    const float nr = pc[2 * n] * zr - pc[2 * n + 1] * zi + v, ni = pc[2 * n] * zi + pc[2 * n + 1] * zr;
                    z[2 * n] = nr;
                    z[2 * n + 1] = ni;
                    sum += rc[2 * n] * nr - rc[2 * n + 1] * ni;
                }
            } else {
                for (int n = 0; n < N; n++) {
                    z[n] = pc[n] * z[n] + v;
                    sum += rc[n] * z[n];
                }
            }
            x[(size_t)b * D + c] = sum + skip[c] * v;
        }
}

/* A FIR stage's step in place: x [B][D] goes into the ring at slot t % len,
 * y = sum_k taps[k] x_{t-k} + D x_t out (slots never written hold zeros). */
static void fir_step(const lcsm_fir *fir, int B, int D, int t, float *x)
{
    const int L = fir->len;
    const float *taps = cpu_ptr(fir->taps), *skip = fir->skip.buf ? cpu_ptr(fir->skip) : NULL;
    float *ring = cpu_ptr(fir->ring);
    for (int b = 0; b < B; b++) {
        float *rb = ring + (size_t)b * L * D, *xb = x + (size_t)b * D;
        memcpy(rb + (size_t)(t % L) * D, xb, (size_t)D * sizeof *xb);
        for (int c = 0; c < D; c++) {
            float v = skip ? skip[c] * xb[c] : 0.0f;
            for (int k = 0; k < L; k++)
                v += taps[(size_t)c * L + k] * rb[(size_t)(((t - k) % L + L) % L) * D + c];
            xb[c] = v;
        }
    }
}

lcsm_status cpu_hyena_step(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                           const lcsm_hyena_step_args *a)
{
    cpu_backend *cb = (cpu_backend *)be;
    const int B = geom->B, D = geom->D, G = geom->G, S = a->S, C = S * D, K = a->K, t = a->t;
    const size_t rows = (size_t)G * B * D;
    const float *w = K ? cpu_ptr(a->conv_w) : NULL, *bias = a->conv_b.buf ? cpu_ptr(a->conv_b) : NULL;
    float *u = cpu_ptr(a->u), *y = cpu_ptr(a->y), *work = cpu_ptr(a->work);
    /* The short conv of every stream with the K-1 previous projections, in
     * place; then the state moves on by one row. */
    if (K > 0) {
        float p[LCSM_MAX_SHORT];
        for (int b = 0; b < B; b++) {
            float *ub = u + (size_t)b * C, *st = K > 1 ? cpu_ptr(a->state) + (size_t)b * (K - 1) * C : NULL;
            for (int ch = 0; ch < C; ch++) {
                for (int k = 0; k < K - 1; k++)
                    p[k] = st[(size_t)k * C + ch];
                p[K - 1] = ub[ch];
                ub[ch] = conv_k(w + (size_t)K * ch, K, p, bias ? bias[ch] : 0.0f);
                for (int k = 0; k < K - 2; k++) /* the oldest row drops out */
                    st[(size_t)k * C + ch] = p[k + 1];
                if (K > 1)
                    st[(size_t)(K - 2) * C + ch] = p[K - 1];
            }
        }
    }
    /* The chain: s = u[S-1]; per stage s *= u[mult], a = s into the history,
     * s = past + (h0 + dbias) a; then y = u[0] * s (y holds s meanwhile). */
    for (int b = 0; b < B; b++)
        memcpy(y + (size_t)b * D, u + (size_t)b * C + (size_t)(S - 1) * D, (size_t)D * sizeof *y);
    for (int i = 0; i < a->n_stage; i++) {
        const lcsm_hyena_stage *sg = &a->stage[i];
        const int g = sg->group, mult = sg->mult;
        if (sg->kind != LCSM_PAST_TILED) {
            for (int b = 0; b < B; b++)
                for (int c = 0; c < D; c++) {
                    size_t k = (size_t)b * D + c;
                    y[k] = mult >= 0 ? y[k] * u[(size_t)b * C + (size_t)mult * D + c] : y[k];
                }
            if (sg->kind == LCSM_PAST_MODAL)
                modal_step(&sg->modal, cpu_ptr(sg->state), B, D, y);
            else
                fir_step(&sg->fir, B, D, t, y);
            continue;
        }
        const float *h0d = f->h0d + (size_t)g * D;
        float *hist_t = cpu_ptr(a->hist) + (size_t)t * rows + (size_t)g * B * D;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < D; c++) {
                size_t k = (size_t)b * D + c;
                hist_t[k] = mult >= 0 ? y[k] * u[(size_t)b * C + (size_t)mult * D + c] : y[k];
            }
        const float *acc = a->mode == LCSM_MIX_CACHED ? cpu_ptr(a->acc) + (size_t)t * rows + (size_t)g * B * D : NULL;
        /* the sum over history the cache lacks: all of it (lazy) or the band */
        const int s_lo = a->mode == LCSM_MIX_CACHED ? t - a->band : 0;
        if (s_lo < t) {
            lazy_job j = {cpu_ptr(a->hist), f->hT, work, rows, (size_t)G * D, g, B, D, t, 1, s_lo};
            j.n_tasks = n_tasks_for(cb, (double)(t - s_lo) * B * D, (B * D + 63) / 64);
            lcsm_pool_run(cb->pool, j.n_tasks, lazy_task, &j);
        }
        for (int b = 0; b < B; b++)
            for (int c = 0; c < D; c++) {
                size_t k = (size_t)b * D + c;
                const float past = acc ? (s_lo < t ? acc[k] + work[k] : acc[k]) : s_lo < t ? work[k] : 0.0f;
                y[k] = past + h0d[c] * hist_t[k];
            }
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < D; c++)
            y[(size_t)b * D + c] *= u[(size_t)b * C + c];
    return LCSM_OK;
}
