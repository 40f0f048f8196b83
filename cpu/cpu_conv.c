/*
 * The long convolutions of the CPU backend: filter storage and spectra, the
 * flash tiles and eager pushes, and the whole-sequence FFT convolution
 * used by prefill and the parallel forward (long_conv).
 *
 * Signals are time-major ([time][rows]); an FFT job takes CPU_FFT_W adjacent
 * columns and transforms them as one vector-major FFTW batch, so gathering a
 * tile's input is a row-by-row copy and scattering its output a row-by-row add.
 */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

#define W CPU_FFT_W
#define PAR_MIN_WORK (1 << 16)

static int tasks_for(const cpu_backend *cb, double work, int max_tasks)
{
    if (work < PAR_MIN_WORK || max_tasks < 2)
        return 1;
    int n = 4 * cb->n_threads; /* a few tasks per thread evens out the tails */
    return n < max_tasks ? n : max_tasks;
}

/* ---- filters */

lcsm_status cpu_filters_create(lcsm_backend *be, float *hT, const float *dbias, int G, int D, int lh, int lag,
                               lcsm_filters **out)
{
    size_t GD = (size_t)G * D;
    lcsm_filters *f = lcsm__calloc(1, sizeof *f);
    if (f)
        f->hT = hT; /* kept: the filters are the caller's time-major buffer */
    else
        lcsm__free(hT);
    if (!f || !(f->dbias = lcsm__calloc(GD, sizeof(float))) || !(f->h0d = lcsm__calloc(GD, sizeof(float)))) {
        cpu_filters_destroy(be, f);
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "cpu: filters of %zu x %d floats", GD, lh);
    }
    f->G = G;
    f->D = D;
    f->lh = lh;
    f->lag = lag;
    lcsm__filters_diagonal(hT, dbias, GD, f->h0d);
    memcpy(f->dbias, dbias, GD * sizeof *dbias);
    *out = f;
    return LCSM_OK;
}

void cpu_filters_destroy(lcsm_backend *be, lcsm_filters *f)
{
    (void)be;
    if (!f)
        return;
    for (int k = 0; k <= CPU_MAX_LOG2; k++)
        for (int v = 0; v < LCSM_SPEC_VARIANTS; v++)
            cpu_ffree(f->spec[k][v]);
    lcsm__free(f->hT);
    lcsm__free(f->dbias);
    lcsm__free(f->h0d);
    lcsm__free(f);
}

size_t cpu_filters_bytes(const lcsm_filters *f)
{
    return (size_t)f->lh * f->G * f->D * sizeof(float) + 2 * (size_t)f->G * f->D * sizeof(float) + f->spec_bytes;
}

typedef struct spec_job {
    cpu_backend *cb;
    const lcsm_filters *f;
    const cpu_plan *plan;
    fftwf_complex *spec;
    int U, d;
} spec_job;

/* Spectrum of h[d .. d+2U-2] for W filters: one column block. */
static void spec_task(void *ctx, int task, int thread)
{
    const spec_job *j = ctx;
    const lcsm_filters *f = j->f;
    const int U = j->U, GD = f->G * f->D, f0 = task * W, wmax = GD - f0 < W ? GD - f0 : W;
    float *X = j->cb->scratch[thread];
    fftwf_complex *Xf = (fftwf_complex *)(X + (size_t)2 * U * W);
    memset(X, 0, (size_t)2 * U * W * sizeof *X);
    for (int m = 0; m < 2 * U - 1 && j->d + m < f->lh; m++)
        memcpy(X + (size_t)m * W, f->hT + (size_t)(j->d + m) * GD + f0, (size_t)wmax * sizeof *X);
    fftwf_execute_dft_r2c(j->plan->fwd, X, Xf);
    const float scale = 1.0f / (float)(2 * U); /* FFTW's inverse is unnormalised */
    for (int k = 0; k <= U; k++)
        for (int w = 0; w < wmax; w++) {
            j->spec[(size_t)k * GD + f0 + w][0] = Xf[(size_t)k * W + w][0] * scale;
            j->spec[(size_t)k * GD + f0 + w][1] = Xf[(size_t)k * W + w][1] * scale;
        }
}

lcsm_status cpu_filters_prepare(lcsm_backend *be, lcsm_filters *f, int max_tile, unsigned variants)
{
    cpu_backend *cb = (cpu_backend *)be;
    const int GD = f->G * f->D;
    if (max_tile < be->fft_threshold)
        return LCSM_OK;
    lcsm_status st = cpu_scratch_reserve(cb, (size_t)(4 * max_tile + 2) * W);
    for (int U = be->fft_threshold; st == LCSM_OK && U <= max_tile; U *= 2)
        for (int v = 0; st == LCSM_OK && v < LCSM_SPEC_VARIANTS; v++) {
            int k = lcsm_ilog2((unsigned)U);
            if (f->spec[k][v] || !(variants >> v & 1u))
                continue;
            const cpu_plan *plan;
            if ((st = cpu_plan_get(cb, 2 * U, cb->planner_flags, &plan)) != LCSM_OK)
                break;
            fftwf_complex *spec = (fftwf_complex *)cpu_falloc(2 * ((size_t)(U + 1) * GD));
            if (!spec) {
                st = LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "cpu: spectra for tile size %d (%zu bytes)", U,
                                  (size_t)(U + 1) * GD * sizeof *spec);
                break;
            }
            spec_job j = {cb, f, plan, spec, U, lcsm_spec_delay(v, U, f->lag)};
            lcsm_pool_run(cb->pool, (GD + W - 1) / W, spec_task, &j);
            f->plan[k] = plan;
            f->spec[k][v] = spec;
            f->spec_bytes += (size_t)(U + 1) * GD * sizeof *spec;
        }
    return st;
}

/* ---- direct blocks: acc[out0+j] += sum_m h[out0+j-in0-m] hist[in0+m] */

typedef struct direct_job {
    const lcsm_filters *f;
    const lcsm_conv_geom *g;
    const float *hist;
    float *acc;
    int in0, n_in, out0, n_out, n_tasks;
    int u0, u1, unit; /* the rows: units of `unit` channels (src/backend.h, lcsm_rows) */
} direct_job;

static void direct_task(void *ctx, int task, int thread)
{
    (void)thread;
    const direct_job *j = ctx;
    const int G = j->g->G, B = j->g->B, D = j->g->D;
    const size_t rows = (size_t)G * B * D, GD = (size_t)G * D;
    (void)G;
    int j0 = (int)((long long)j->n_out * task / j->n_tasks), j1 = (int)((long long)j->n_out * (task + 1) / j->n_tasks);
    for (int jj = j0; jj < j1; jj++) {
        float *arow = j->acc + (size_t)(j->out0 + jj) * rows;
        for (int m = 0; m < j->n_in; m++) {
            int k = j->out0 + jj - j->in0 - m; /* >= 1 */
            if (k >= j->f->lh)
                continue;
            const float *hrow = j->f->hT + (size_t)k * GD, *xrow = j->hist + (size_t)(j->in0 + m) * rows;
            const int unit = j->unit, per = lcsm_units_per_group(unit, D);
            for (int u = j->u0; u < j->u1;) { /* the units of one group at a time */
                const int gb = u / per, u_end = (gb + 1) * per < j->u1 ? (gb + 1) * per : j->u1;
                const int c0 = (u % per) * unit, c1 = u_end == (gb + 1) * per ? D : (u_end % per) * unit;
                const float *h = hrow + (size_t)(gb / B) * D, *x = xrow + (size_t)gb * D;
                float *a = arow + (size_t)gb * D;
                for (int c = c0; c < c1; c++)
                    a[c] += h[c] * x[c];
                u = u_end;
            }
        }
    }
}

void cpu_block_direct(cpu_backend *cb, const lcsm_filters *f, const lcsm_conv_geom *g, const float *hist,
                      float *acc, int in0, int n_in, int out0, int n_out, const lcsm_rows *rows)
{
    const int unit = cb->base.spread_unit;
    direct_job j = {f, g, hist, acc, in0, n_in, out0, n_out, 1, 0, g->G * g->B * lcsm_units_per_group(unit, g->D), unit};
    if (rows)
        j.u0 = rows->u0, j.u1 = rows->u1;
    j.n_tasks = tasks_for(cb, (double)n_in * n_out * (j.u1 - j.u0) * unit, n_out);
    lcsm_pool_run(cb->pool, j.n_tasks, direct_task, &j);
}

/* ---- FFT tiles */

typedef struct tile_job {
    cpu_backend *cb;
    const lcsm_filters *f;
    const lcsm_conv_geom *g;
    const cpu_plan *plan;
    const fftwf_complex *spec;
    const float *hist;
    float *acc;
    int in0, U, out0, n_out;
    /* task k: column block blk0 + k of W channels (blocks of a group in a row);
     * of a part, the channels [lo, hi) of every row (gb * D + c) */
    int blk0;
    long lo, hi;
} tile_job;

/* One channel (row gb, channel c) of a tile: a part narrower than a column
 * block transforms its channels one by one, so that a spread tile's unit of
 * work is one channel's. */
static void tile_lane(const tile_job *j, int gb, int c, int thread)
{
    const int B = j->g->B, D = j->g->D, U = j->U;
    const size_t rows = (size_t)j->g->G * B * D, GD = (size_t)j->g->G * D;
    const size_t col = (size_t)gb * D + c, fcol = (size_t)(gb / B) * D + c;
    float *x = j->cb->scratch[thread];
    fftwf_complex *xf = (fftwf_complex *)(x + (size_t)2 * U + 16); /* aligned as the plan's arrays */
    for (int m = 0; m < U; m++)
        x[m] = j->hist[(size_t)(j->in0 + m) * rows + col];
    memset(x + U, 0, (size_t)U * sizeof *x);
    fftwf_execute_dft_r2c(j->plan->fwd1, x, xf);
    for (int k = 0; k <= U; k++) {
        const fftwf_complex *s = j->spec + (size_t)k * GD + fcol;
        const float re = xf[k][0] * (*s)[0] - xf[k][1] * (*s)[1], im = xf[k][0] * (*s)[1] + xf[k][1] * (*s)[0];
        xf[k][0] = re;
        xf[k][1] = im;
    }
    fftwf_execute_dft_c2r(j->plan->inv1, xf, x);
    for (int jj = 0; jj < j->n_out; jj++) /* as in tile_task: output jj is index U-1+jj */
        j->acc[(size_t)(j->out0 + jj) * rows + col] += x[U - 1 + jj];
}

static void tile_task(void *ctx, int task, int thread)
{
    const tile_job *j = ctx;
    const int B = j->g->B, D = j->g->D, U = j->U, bpg = (D + W - 1) / W;
    const size_t rows = (size_t)j->g->G * B * D, GD = (size_t)j->g->G * D;
    const int blk = j->blk0 + task, gb = blk / bpg, c0 = (blk % bpg) * W, gi = gb / B;
    /* a block the part covers only in part: its channels one by one */
    const long b_lo = (long)gb * D + c0, b_hi = b_lo + (D - c0 < W ? D - c0 : W);
    if (b_lo < j->lo || b_hi > j->hi) {
        for (long r = b_lo > j->lo ? b_lo : j->lo; r < (b_hi < j->hi ? b_hi : j->hi); r++)
            tile_lane(j, gb, (int)(r - (long)gb * D), thread);
        return;
    }
    const int wmax = D - c0 < W ? D - c0 : W;
    const size_t col0 = (size_t)gb * D + c0, fcol0 = (size_t)gi * D + c0;
    float *X = j->cb->scratch[thread];
    fftwf_complex *Xf = (fftwf_complex *)(X + (size_t)2 * U * W);
    /* Gather the U inputs (zero-padded to 2U and to W lanes). */
    if (wmax < W)
        memset(X, 0, (size_t)U * W * sizeof *X);
    for (int m = 0; m < U; m++)
        memcpy(X + (size_t)m * W, j->hist + (size_t)(j->in0 + m) * rows + col0, (size_t)wmax * sizeof *X);
    memset(X + (size_t)U * W, 0, (size_t)U * W * sizeof *X);
    fftwf_execute_dft_r2c(j->plan->fwd, X, Xf);
    for (int k = 0; k <= U; k++) {
        const fftwf_complex *s = j->spec + (size_t)k * GD + fcol0;
        fftwf_complex *x = Xf + (size_t)k * W;
        for (int w = 0; w < wmax; w++) {
            float re = x[w][0] * s[w][0] - x[w][1] * s[w][1];
            float im = x[w][0] * s[w][1] + x[w][1] * s[w][0];
            x[w][0] = re;
            x[w][1] = im;
        }
    }
    fftwf_execute_dft_c2r(j->plan->inv, Xf, X);
    /* Output j of the tile is index U-1+j of the circular product (no aliasing
     * there: the linear product has length 3U-2 and 2U + U-1 > 3U-3). */
    for (int jj = 0; jj < j->n_out; jj++) {
        const float *src = X + (size_t)(U - 1 + jj) * W;
        float *dst = j->acc + (size_t)(j->out0 + jj) * rows + col0;
        for (int w = 0; w < wmax; w++)
            dst[w] += src[w];
    }
}

/* A session's spread parts split column blocks (and run channel by channel,
 * tile_lane) only in tiles from its schedule's fine size on (below it the
 * engine ends parts on block boundaries): their one-channel plans, for the sizes
 * from max(spread_from, fine_from) on (none when the session spreads nothing). */
lcsm_status cpu_session_prepare(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom, int max_tile,
                                int spread_from, int fine_from)
{
    cpu_backend *cb = (cpu_backend *)be;
    (void)geom;
    lcsm_status st = LCSM_OK;
    const int from = spread_from > fine_from ? spread_from : fine_from;
    for (int U = be->fft_threshold; spread_from && st == LCSM_OK && U <= max_tile; U *= 2) {
        const cpu_plan *plan = f->plan[lcsm_ilog2((unsigned)U)];
        if (U >= from)
            st = plan ? cpu_plan_lane(cb, plan, cb->planner_flags)
                      : LCSM_FAIL_BE(be, LCSM_ERR_STATE, "cpu: tile size %d has no plan", U);
    }
    return st;
}

lcsm_status cpu_tile_fft(cpu_backend *cb, const lcsm_filters *f, const lcsm_conv_geom *g, const float *hist,
                         float *acc, int in0, int U, int out0, int n_out, const lcsm_rows *rows)
{
    const int k = lcsm_ilog2((unsigned)U), d = out0 - (in0 + U - 1), v = lcsm_spec_variant(d, U, f->lag);
    const fftwf_complex *spec = v >= 0 ? f->spec[k][v] : NULL;
    /* a part that splits a column block needs the one-channel plans */
    const int splits = rows && (rows->u0 % g->D % W || (rows->u1 % g->D && rows->u1 % g->D % W));
    if (!spec || cb->scratch_floats < (size_t)(4 * U + 2) * W || (splits && !f->plan[k]->fwd1))
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_STATE, "cpu: tile size %d of delay %d was not prepared", U, d);
    /* Plan and spectrum were made at prepare time: a step takes no lock. A unit
     * of rows is one channel (spread_unit = 1, cpu_backend.c): a part runs the
     * column blocks it touches, whole ones as blocks, the others channel by
     * channel. */
    const int bpg = (g->D + W - 1) / W;
    const long n_rows = (long)g->G * g->B * g->D, lo = rows ? rows->u0 : 0, hi = rows ? rows->u1 : n_rows;
    const int blk_lo = (int)(lo / g->D) * bpg + (int)(lo % g->D) / W;
    const int blk_hi = (int)((hi - 1) / g->D) * bpg + (int)((hi - 1) % g->D) / W + 1;
    tile_job j = {cb, f, g, f->plan[k], spec, hist, acc, in0, U, out0, n_out, blk_lo, lo, hi};
    lcsm_pool_run(cb->pool, blk_hi - blk_lo, tile_task, &j);
    return LCSM_OK;
}

lcsm_status cpu_tile_fft_op(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                            lcsm_ref acc, int in0, int U, int out0, int n_out, const lcsm_rows *rows)
{
    return cpu_tile_fft((cpu_backend *)be, f, g, cpu_ptr(hist), cpu_ptr(acc), in0, U, out0, n_out, rows);
}

lcsm_status cpu_block_direct_op(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                                lcsm_ref acc, int in0, int n_in, int out0, int n_out, const lcsm_rows *rows)
{
    cpu_block_direct((cpu_backend *)be, f, g, cpu_ptr(hist), cpu_ptr(acc), in0, n_in, out0, n_out, rows);
    return LCSM_OK;
}

/* ---- whole sequences */

typedef struct long_job {
    cpu_backend *cb;
    const lcsm_filters *f;
    const cpu_plan *plan; /* FFT path */
    float **bufs;         /* per thread, FFT path */
    int g, B, len, hlen, out_len, acc_len, N, n_tasks;
    const float *a;
    float *y, *acc;
    size_t a_stride, y_stride;
} long_job;

/* Direct: output rows split over tasks. */
static void long_direct_task(void *ctx, int task, int thread)
{
    (void)thread;
    const long_job *j = ctx;
    const int D = j->f->D;
    const size_t GD = (size_t)j->f->G * D;
    int t0 = (int)((long long)j->out_len * task / j->n_tasks), t1 = (int)((long long)j->out_len * (task + 1) / j->n_tasks);
    for (int t = t0; t < t1; t++) {
        int in_y = t < j->len;
        float *dst = in_y ? j->y + (size_t)t * j->y_stride : j->acc + (size_t)t * j->a_stride;
        if (in_y)
            memset(dst, 0, (size_t)j->B * D * sizeof *dst);
        int s_hi = t < j->len - 1 ? t : j->len - 1;
        for (int s = t - j->hlen + 1 > 0 ? t - j->hlen + 1 : 0; s <= s_hi; s++) {
            const float *h = j->f->hT + (size_t)(t - s) * GD + (size_t)j->g * D;
            for (int b = 0; b < j->B; b++) {
                const float *x = j->a + (size_t)s * j->a_stride + (size_t)b * D;
                float *o = dst + (size_t)b * D;
                for (int c = 0; c < D; c++)
                    o[c] += h[c] * x[c];
            }
        }
    }
}

/* FFT: one column block per task; the filter's spectrum is made once and used
 * for every sequence of the batch. */
static void long_fft_task(void *ctx, int task, int thread)
{
    const long_job *j = ctx;
    const int D = j->f->D, N = j->N, c0 = task * W, wmax = D - c0 < W ? D - c0 : W;
    const size_t GD = (size_t)j->f->G * D, nf = (size_t)(N / 2 + 1) * W;
    float *X = j->bufs[thread];
    fftwf_complex *Xf = (fftwf_complex *)(X + (size_t)N * W), *Hf = Xf + nf;
    /* Filter h[0 .. hlen) of these channels, scaled by 1/N (FFTW's inverse is
     * unnormalised). */
    memset(X, 0, (size_t)N * W * sizeof *X);
    for (int k = 0; k < j->hlen; k++)
        memcpy(X + (size_t)k * W, j->f->hT + (size_t)k * GD + (size_t)j->g * D + c0, (size_t)wmax * sizeof *X);
    fftwf_execute_dft_r2c(j->plan->fwd, X, Hf);
    const float scale = 1.0f / (float)N;
    for (size_t i = 0; i < nf; i++) {
        Hf[i][0] *= scale;
        Hf[i][1] *= scale;
    }
    for (int b = 0; b < j->B; b++) {
        /* Signal a[0 .. len) of sequence b. */
        memset(X, 0, (size_t)N * W * sizeof *X);
        for (int s = 0; s < j->len; s++)
            memcpy(X + (size_t)s * W, j->a + (size_t)s * j->a_stride + (size_t)b * D + c0, (size_t)wmax * sizeof *X);
        fftwf_execute_dft_r2c(j->plan->fwd, X, Xf);
        for (size_t i = 0; i < nf; i++) {
            float re = Xf[i][0] * Hf[i][0] - Xf[i][1] * Hf[i][1];
            float im = Xf[i][0] * Hf[i][1] + Xf[i][1] * Hf[i][0];
            Xf[i][0] = re;
            Xf[i][1] = im;
        }
        fftwf_execute_dft_c2r(j->plan->inv, Xf, X);
        for (int t = 0; t < j->out_len; t++) {
            const float *src = X + (size_t)t * W;
            if (t < j->len) {
                memcpy(j->y + (size_t)t * j->y_stride + (size_t)b * D + c0, src, (size_t)wmax * sizeof *src);
            } else {
                float *dst = j->acc + (size_t)t * j->a_stride + (size_t)b * D + c0;
                for (int w = 0; w < wmax; w++)
                    dst[w] += src[w];
            }
        }
    }
}

lcsm_status cpu_long_conv(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref a_tm,
                          size_t a_stride, lcsm_ref y_tm, size_t y_stride, lcsm_ref acc, int acc_len)
{
    cpu_backend *cb = (cpu_backend *)be;
    long_job j = {.cb = cb, .f = f, .g = g, .B = B, .len = len, .a = cpu_ptr(a_tm), .y = cpu_ptr(y_tm),
                  .a_stride = a_stride, .y_stride = y_stride};
    j.acc = acc.buf ? cpu_ptr(acc) : NULL;
    j.acc_len = acc.buf ? acc_len : 0;
    j.out_len = j.acc_len > len ? j.acc_len : len;
    if (j.out_len > f->lh)
        return LCSM_FAIL_BE(be, LCSM_ERR_LENGTH, "cpu: convolution of length %d past the filter length %d", j.out_len,
                            f->lh);
    j.hlen = j.out_len;
    if (len <= LCSM_LONG_CONV_DIRECT_MAX) {
        j.n_tasks = tasks_for(cb, (double)len * j.out_len * B * f->D, j.out_len);
        lcsm_pool_run(cb->pool, j.n_tasks, long_direct_task, &j);
        return LCSM_OK;
    }
    j.N = cpu_fft_size(len + j.hlen - 1);
    lcsm_status st = cpu_plan_get(cb, j.N, FFTW_ESTIMATE, &j.plan);
    if (st != LCSM_OK)
        return st;
    size_t per = (size_t)j.N * W + 4 * (size_t)(j.N / 2 + 1) * W;
    j.bufs = lcsm__calloc((size_t)cb->n_threads, sizeof *j.bufs);
    for (int t = 0; j.bufs && t < cb->n_threads; t++)
        if (!(j.bufs[t] = cpu_falloc(per)))
            st = LCSM_ERR_OUT_OF_MEMORY;
    if (!j.bufs || st != LCSM_OK) {
        st = LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "cpu: %d x %zu floats for an FFT of size %d", cb->n_threads,
                          per, j.N);
    } else {
        lcsm_pool_run(cb->pool, (f->D + W - 1) / W, long_fft_task, &j);
    }
    for (int t = 0; j.bufs && t < cb->n_threads; t++)
        cpu_ffree(j.bufs[t]);
    lcsm__free(j.bufs);
    return st;
}
