/*
 * The long convolutions of the OpenCL backend: filters and tile spectra on the
 * device, flash tiles and eager pushes, and the whole-sequence
 * convolution of prompts (long_conv).
 *
 * Every FFT convolution here is one routine, fft_conv(): the (input, output)
 * square of a convolution is cut into S x S blocks; input block p reaches output
 * block q through the filter segment of offset d = q - p, whose spectrum (size
 * N = 2S) is known. Output block q = sum_p X_p * Spec_{q-p}: one inverse FFT per
 * output block. S is at most fft_max_n / 2, so no FFT exceeds CL_FFT_MAX_N points
 * (PoCL + VkFFT crash above; BACKEND-NOTES.md) however long the tile or prompt.
 * Rows (columns of the time-major signals) go in chunks that fit the scratch
 * budget; a plan is made per (N, chunk rows) once and reused.
 */
#include "cl_backend.h"

#include <stdlib.h>
#include <string.h>


static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* ---- filters */

lcsm_status cl_filters_create(lcsm_backend *be, float *hT, const float *dbias, int G, int D, int lh, int lag,
                              lcsm_filters **out)
{
    cl_backend *cb = (cl_backend *)be;
    size_t GD = (size_t)G * D, n = GD * (size_t)lh; /* the caller's buffer holds n */
    lcsm_filters *f = lcsm__calloc(1, sizeof *f);
    float *h0d = NULL;
    lcsm_status st = LCSM_OK;
    if (!f || !(h0d = lcsm__malloc(GD * sizeof(float)))) {
        st = LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "opencl: filters of %zu x %d floats", GD, lh);
        goto done;
    }
    f->G = G;
    f->D = D;
    f->lh = lh;
    f->lag = lag;
    lcsm__filters_diagonal(hT, dbias, GD, h0d);
    if ((st = clb_mem(cb, n * sizeof(float), "filters", &f->hT)) != LCSM_OK ||
        (st = clb_mem(cb, GD * sizeof(float), "filter skip terms", &f->dbias)) != LCSM_OK ||
        (st = clb_mem(cb, GD * sizeof(float), "filter diagonals", &f->h0d)) != LCSM_OK)
        goto done;
    cl_int e = clEnqueueWriteBuffer(cb->queue, f->hT, CL_TRUE, 0, n * sizeof(float), hT, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueWriteBuffer(cb->queue, f->dbias, CL_TRUE, 0, GD * sizeof(float), dbias, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueWriteBuffer(cb->queue, f->h0d, CL_TRUE, 0, GD * sizeof(float), h0d, 0, NULL, NULL);
    st = clb_check(cb, e, "clEnqueueWriteBuffer(filters)");
    f->bytes = (n + 2 * GD) * sizeof(float);
done:
    lcsm__free(hT);
    lcsm__free(h0d);
    if (st != LCSM_OK) {
        cl_filters_destroy(be, f);
        return st;
    }
    *out = f;
    return LCSM_OK;
}

void cl_filters_destroy(lcsm_backend *be, lcsm_filters *f)
{
    cl_backend *cb = (cl_backend *)be;
    if (!f)
        return;
    for (int k = 0; k <= CL_MAX_LOG2; k++)
        for (int v = 0; v < LCSM_SPEC_VARIANTS; v++)
            clb_release(cb, f->spec[k][v].mem);
    clb_release(cb, f->hT);
    clb_release(cb, f->dbias);
    clb_release(cb, f->h0d);
    lcsm__free(f);
}

size_t cl_filters_bytes(const lcsm_filters *f) { return f->bytes; }

/* ---- the generic blocked FFT convolution */

typedef struct fft_conv {
    /* rows: gb in [gb_begin, gb_begin + n_gb), channels [c_begin, c_end) ([0, D) unless
     * a part of a tile); filter (g0 + gb/B)*D + c */
    int gb_begin, n_gb, B, D, g0, c_begin, c_end;
    /* input: time-major, times [in0, in0 + n_in), valid only in [t_lo, t_hi) */
    cl_mem src;
    size_t src_off, src_stride;
    long in0, t_lo, t_hi;
    int n_in;
    /* output: times [out0, out0 + n_out); t < t_split assigned to A, else added to B */
    long out0, t_split;
    int n_out;
    cl_mem A, Bm;
    size_t a_off, a_stride, b_off, b_stride;
    /* spectra: segment d in [d_lo, d_hi] at index d - d_lo, [seg][n_spec_f][S+1],
     * filter f at f - f0. */
    int S, d_lo, d_hi;
    cl_mem spec;
    int n_spec_f, f0;
    /* how to fill the spectra per chunk (prompts); NULL spec_fill = precomputed */
    lcsm_status (*spec_fill)(cl_backend *cb, struct fft_conv *c, int c0, int cw, clfft_plan *plan, int plan_rows);
    const lcsm_filters *flt;
} fft_conv;

/* Rows per chunk for blocks of S with P input blocks and Y separate or not. */
static int chunk_rows(const cl_backend *cb, int S, int P, int separate_y, int extra_per_row_k, int total_rows)
{
    size_t K = (size_t)S + 1, per = (size_t)2 * S * 4 + ((size_t)P + separate_y + extra_per_row_k) * K * 8;
    size_t r = cb->fft_budget / per;
    if (r < 1)
        r = 1;
    if (r > (size_t)total_rows)
        r = (size_t)total_rows;
    return (int)r;
}

/* Forward (scratch reals -> complex at cplx_off bytes) or inverse (back) FFT;
 * VkFFT's message goes through a local buffer into the backend's error. */
static lcsm_status fft(cl_backend *cb, clfft_plan *plan, int inverse, size_t cplx_off)
{
    char err[256];
    cl_event ev;
    clb_prof_begin(cb, &ev);
    lcsm_status st = inverse ? clfft_inverse(plan, cb->fft_cplx.mem, cplx_off, cb->fft_real.mem, 0, err, sizeof err)
                             : clfft_forward(plan, cb->fft_real.mem, 0, cb->fft_cplx.mem, cplx_off, err, sizeof err);
    clb_prof_end(cb, K_PROF_FFT, ev);
    return st == LCSM_OK ? st : LCSM_FAIL_BE(&cb->base, st, "opencl: %s", err);
}

static lcsm_status gather(cl_backend *cb, cl_mem src, size_t so, size_t stride, long t0, int n_valid, long t_lo,
                          long t_hi, int gb0, int cw, int c0, int D, int n_rows, int N)
{
    size_t g[2] = {round_up((size_t)n_rows, 16), round_up((size_t)N, 16)}, l[2] = {16, 16};
    cl_arg a[] = {A_MEM(src), A_U64(so),   A_U64(stride), A_I64(t0),      A_I32(n_valid), A_I64(t_lo),
                  A_I64(t_hi), A_I32(gb0), A_I32(cw),     A_I32(c0),      A_I32(D),       A_I32(n_rows),
                  A_I32(N),   A_MEM(cb->fft_real.mem),    A_U64(0)};
    return clb_launch(cb, K_FFT_GATHER, 2, g, l, a, N_ARGS(a));
}

/* One chunk of rows: gb in [gb0, gb0 + ngb), channels [c0, c0 + cw). */
static lcsm_status fft_conv_chunk(cl_backend *cb, fft_conv *c, clfft_plan *plan, int plan_rows, int gb0, int ngb,
                                  int c0, int cw, void *unused)
{
    (void)unused;
    const int S = c->S, N = 2 * S, K = S + 1, n_rows = ngb * cw;
    const int P = (c->n_in + S - 1) / S, Q = (c->n_out + S - 1) / S;
    const int in_place = P == 1 && Q == 1;
    const size_t blk = (size_t)plan_rows * K; /* complex values per block */
    lcsm_status st;
    if (c->spec_fill && (st = c->spec_fill(cb, c, c0, cw, plan, plan_rows)) != LCSM_OK)
        return st;
    for (int p = 0; p < P; p++) {
        int n_valid = c->n_in - p * S < S ? c->n_in - p * S : S;
        if ((st = gather(cb, c->src, c->src_off, c->src_stride, c->in0 + (long)p * S, n_valid, c->t_lo, c->t_hi,
                         gb0, cw, c0, c->D, n_rows, N)) != LCSM_OK ||
            (st = fft(cb, plan, 0, p * blk * 8)) != LCSM_OK)
            return st;
    }
    for (int q = 0; q < Q; q++) {
        int p_lo = q - c->d_hi > 0 ? q - c->d_hi : 0, p_hi = q - c->d_lo < P - 1 ? q - c->d_lo : P - 1;
        if (p_lo > p_hi)
            continue; /* no segment reaches this block (cannot happen for tiles or prompts) */
        size_t y_off = in_place ? 0 : (size_t)P * blk;
        {
            size_t g[2] = {round_up((size_t)K, 64), (size_t)n_rows}, l[2] = {64, 1};
            cl_arg a[] = {A_MEM(cb->fft_cplx.mem), A_U64(0),     A_MEM(c->spec),  A_U64(0),   A_I32(c->n_spec_f),
                          A_MEM(cb->fft_cplx.mem), A_U64(y_off), A_I32(q),        A_I32(p_lo), A_I32(p_hi),
                          A_I32(-c->d_lo),         A_I32(K),     A_I32(plan_rows), A_I32(n_rows), A_I32(gb0),
                          A_I32(cw),               A_I32(c0),    A_I32(c->B),     A_I32(c->D), A_I32(c->g0),
                          A_I32(c->f0)};
            if ((st = clb_launch(cb, K_FFT_MAC, 2, g, l, a, N_ARGS(a))) != LCSM_OK)
                return st;
        }
        if ((st = fft(cb, plan, 1, y_off * 8)) != LCSM_OK)
            return st;
        int n_out = c->n_out - q * S < S ? c->n_out - q * S : S;
        size_t g[2] = {round_up((size_t)n_rows, 16), round_up((size_t)n_out, 16)}, l[2] = {16, 16};
        cl_arg a[] = {A_MEM(cb->fft_real.mem), A_U64(0),          A_I32(N),       A_I32(S),
                      A_I64(c->out0 + (long)q * S), A_I32(n_out), A_I64(c->t_split), A_MEM(c->A),
                      A_U64(c->a_off),         A_U64(c->a_stride), A_MEM(c->Bm),   A_U64(c->b_off),
                      A_U64(c->b_stride),      A_I32(gb0),         A_I32(cw),      A_I32(c0),
                      A_I32(c->D),             A_I32(n_rows)};
        if ((st = clb_launch(cb, K_FFT_SCATTER, 2, g, l, a, N_ARGS(a))) != LCSM_OK)
            return st;
    }
    return LCSM_OK;
}

/* Chunking: whole channel ranges of several gb when D fits, else channel slices. */
static void chunk_shape(int plan_rows, int D, int *ngb_per, int *cw)
{
    if (D <= plan_rows) {
        *cw = D;
        *ngb_per = plan_rows / D;
    } else {
        *cw = plan_rows;
        *ngb_per = 1;
    }
}

/* Channels of each group c covers. */
static int conv_width(const fft_conv *c) { return c->c_end > c->c_begin ? c->c_end - c->c_begin : c->D; }

static int plan_rows_for(const cl_backend *cb, const fft_conv *c, int extra_k)
{
    const int P = (c->n_in + c->S - 1) / c->S, Q = (c->n_out + c->S - 1) / c->S, Dw = conv_width(c);
    int total = c->n_gb * Dw;
    int r = chunk_rows(cb, c->S, P, !(P == 1 && Q == 1), extra_k, total);
    int ngb, cw;
    chunk_shape(r, Dw, &ngb, &cw);
    if (cw == Dw)
        return (ngb < c->n_gb ? ngb : c->n_gb) * Dw;
    return cw;
}

static lcsm_status fft_conv_reserve(cl_backend *cb, const fft_conv *c, int plan_rows, int extra_k)
{
    const int S = c->S, P = (c->n_in + S - 1) / S, Q = (c->n_out + S - 1) / S;
    const size_t K = (size_t)S + 1;
    lcsm_status st = clb_scratch(cb, &cb->fft_real, (size_t)plan_rows * 2 * S * 4, "FFT input scratch");
    if (st == LCSM_OK)
        st = clb_scratch(cb, &cb->fft_cplx, ((size_t)P + !(P == 1 && Q == 1)) * plan_rows * K * 8,
                         "FFT spectrum scratch");
    if (st == LCSM_OK && extra_k)
        st = clb_scratch(cb, &cb->fft_spec, (size_t)extra_k * plan_rows * K * 8, "prompt filter spectra");
    return st;
}

/* Scratch and plan for convolution c: rows per chunk (the plan's batch) and the plan. */
static lcsm_status fft_conv_setup(cl_backend *cb, const fft_conv *c, int extra_k, clfft_plan **plan, int *plan_rows)
{
    *plan_rows = plan_rows_for(cb, c, extra_k);
    lcsm_status st = fft_conv_reserve(cb, c, *plan_rows, extra_k);
    return st == LCSM_OK ? clb_plan(cb, 2 * c->S, *plan_rows, plan) : st;
}

/* Work on one chunk of rows: gb in [gb0, gb0 + ngb), channels [c0, c0 + cw). */
typedef lcsm_status (*chunk_fn)(cl_backend *cb, fft_conv *c, clfft_plan *plan, int plan_rows, int gb0, int ngb,
                                int c0, int cw, void *ctx);

/* Sets c up, then calls fn for every chunk of its rows. */
static lcsm_status each_chunk(cl_backend *cb, fft_conv *c, int extra_k, chunk_fn fn, void *ctx)
{
    int plan_rows, ngb_per, cw;
    clfft_plan *plan;
    lcsm_status st = fft_conv_setup(cb, c, extra_k, &plan, &plan_rows);
    const int c_lo = c->c_end > c->c_begin ? c->c_begin : 0, c_hi = c->c_end > c->c_begin ? c->c_end : c->D;
    chunk_shape(plan_rows, c_hi - c_lo, &ngb_per, &cw);
    for (int gb = 0; st == LCSM_OK && gb < c->n_gb; gb += ngb_per)
        for (int c0 = c_lo; st == LCSM_OK && c0 < c_hi; c0 += cw) {
            int ngb = c->n_gb - gb < ngb_per ? c->n_gb - gb : ngb_per;
            int w = c_hi - c0 < cw ? c_hi - c0 : cw;
            st = fn(cb, c, plan, plan_rows, c->gb_begin + gb, ngb, c0, w, ctx);
        }
    return st;
}

static lcsm_status fft_conv_run(cl_backend *cb, fft_conv *c, int extra_k)
{
    return each_chunk(cb, c, extra_k, fft_conv_chunk, NULL);
}

/* Spectra of filter segments seg_d[i] = h[e + d*S - (S-1) + i], i < 2S-1, for the
 * filters f0 .. f0 + nf of the FFT rows [gb0*D + c0, ...) of a chunk, written as
 * [d - d_lo][n_spec_f][S+1] into dst at filter index (filter - f0_dst). */
static lcsm_status segment_spectra(cl_backend *cb, const lcsm_filters *flt, long e, int S, int d_lo, int d_hi,
                                   int gb0, int ngb, int c0, int cw, clfft_plan *plan, cl_mem dst, int n_spec_f,
                                   int f_first)
{
    const int N = 2 * S, K = S + 1, n_rows = ngb * cw;
    const size_t GD = (size_t)flt->G * flt->D;
    lcsm_status st = LCSM_OK;
    for (int d = d_lo; st == LCSM_OK && d <= d_hi; d++) {
        st = gather(cb, flt->hT, 0, GD, e + (long)d * S - (S - 1), N - 1, 0, flt->lh, gb0, cw, c0, flt->D, n_rows,
                    N);
        if (st == LCSM_OK)
            st = fft(cb, plan, 0, 0);
        /* The chunk's filters are contiguous: whole groups, or a slice of one. */
        size_t dst_off = (((size_t)(d - d_lo) * n_spec_f) + (size_t)f_first) * K * 8;
        if (st == LCSM_OK)
            st = clb_check(cb,
                           clEnqueueCopyBuffer(cb->queue, cb->fft_cplx.mem, dst, 0, dst_off, (size_t)n_rows * K * 8, 0,
                                               NULL, NULL),
                           "clEnqueueCopyBuffer(spectra)");
    }
    return st;
}

/* ---- tile spectra: made once per tile size, for every filter */

static void tile_shape(const cl_backend *cb, int U, int *S, int *P)
{
    *S = U <= cb->fft_max_n / 2 ? U : cb->fft_max_n / 2;
    *P = U / *S;
}

typedef struct tile_spec_job {
    const lcsm_filters *f;
    int U, P, d; /* d: the delay (src/backend.h) */
    cl_mem mem;
} tile_spec_job;

static lcsm_status tile_spec_chunk(cl_backend *cb, fft_conv *c, clfft_plan *plan, int plan_rows, int gb0, int ngb,
                                   int c0, int cw, void *ctx)
{
    (void)plan_rows;
    const tile_spec_job *j = ctx;
    const int GD = j->f->G * j->f->D;
    /* tap U + d - 1 ends segment 0: the tile's outputs start d - 1 after its inputs */
    return segment_spectra(cb, j->f, j->U + j->d - 1, c->S, -(j->P - 1), j->P - 1, gb0, ngb, c0, cw, plan,
                           j->mem, GD, gb0 * j->f->D + c0);
}

/* The spectra of tile size U and delay variant v (src/backend.h). */
static lcsm_status make_tile_spec(cl_backend *cb, lcsm_filters *f, int U, int v)
{
    cl_tile_spec *ts = &f->spec[lcsm_ilog2((unsigned)U)][v];
    int S, P;
    tile_shape(cb, U, &S, &P);
    const int GD = f->G * f->D, K = S + 1, nseg = 2 * P - 1;
    size_t bytes = (size_t)nseg * GD * K * 8;
    cl_mem mem;
    lcsm_status st = clb_mem(cb, bytes, "tile spectra", &mem);
    if (st != LCSM_OK)
        return st;
    /* rows of the spectrum FFTs: the filters themselves (gb = layer, B = 1) */
    fft_conv shape = {.n_gb = f->G, .D = f->D, .B = 1, .n_in = S, .n_out = S, .S = S};
    tile_spec_job job = {f, U, P, lcsm_spec_delay(v, U, f->lag), mem};
    st = each_chunk(cb, &shape, 0, tile_spec_chunk, &job);
    if (st == LCSM_OK)
        st = clb_check(cb, clFinish(cb->queue), "clFinish(tile spectra)");
    if (st != LCSM_OK) {
        clb_release(cb, mem);
        return st;
    }
    ts->S = S;
    ts->P = P;
    ts->mem = mem;
    ts->bytes = bytes;
    f->bytes += bytes;
    return LCSM_OK;
}

lcsm_status cl_filters_prepare(lcsm_backend *be, lcsm_filters *f, int max_tile, unsigned variants)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_status st = LCSM_OK;
    pthread_mutex_lock(&cb->lock);
    for (int U = be->fft_threshold; st == LCSM_OK && U <= max_tile; U *= 2)
        for (int v = 0; st == LCSM_OK && v < LCSM_SPEC_VARIANTS; v++)
            if ((variants >> v & 1u) && !f->spec[lcsm_ilog2((unsigned)U)][v].mem)
                st = make_tile_spec(cb, f, U, v);
    pthread_mutex_unlock(&cb->lock);
    return st;
}

/* A prepared spectrum of tile size U, of any delay (they share their shape), or NULL. */
static const cl_tile_spec *any_spec(const lcsm_filters *f, int U)
{
    for (int v = 0; v < LCSM_SPEC_VARIANTS; v++)
        if (f->spec[lcsm_ilog2((unsigned)U)][v].mem)
            return &f->spec[lcsm_ilog2((unsigned)U)][v];
    return NULL;
}

/* One group's channels [c0, c1): a part of a tile. */
typedef struct cl_part {
    int gb, c0, c1;
} cl_part;

static void tile_conv_init(fft_conv *c, const lcsm_filters *f, const lcsm_conv_geom *g, const cl_tile_spec *ts,
                           lcsm_ref hist, lcsm_ref acc, int in0, int U, int out0, int n_out, const cl_part *part)
{
    memset(c, 0, sizeof *c);
    c->gb_begin = part ? part->gb : 0;
    c->n_gb = part ? 1 : g->G * g->B;
    c->c_begin = part ? part->c0 : 0;
    c->c_end = part ? part->c1 : g->D;
    c->B = g->B;
    c->D = g->D;
    c->src = hist.buf->mem;
    c->src_off = clb_elems(hist);
    c->src_stride = (size_t)g->G * g->B * g->D;
    c->in0 = in0;
    c->n_in = U;
    c->t_lo = 0;
    c->t_hi = g->L;
    c->out0 = out0;
    c->n_out = n_out;
    c->t_split = out0; /* everything is added into acc */
    c->A = c->Bm = acc.buf->mem;
    c->a_off = c->b_off = clb_elems(acc);
    c->a_stride = c->b_stride = c->src_stride;
    c->S = ts->S;
    c->d_lo = -(ts->P - 1);
    c->d_hi = ts->P - 1;
    c->spec = ts->mem;
    c->n_spec_f = f->G * f->D;
    c->f0 = 0;
    c->flt = f;
}

/* Plans and scratch for every tile size a session of this shape runs, and the
 * lazy mixer's partial sums, now: a step allocates nothing. */
lcsm_status cl_session_prepare(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, int max_tile,
                               int spread_from, int fine_from)
{
    cl_backend *cb = (cl_backend *)be;
    (void)fine_from; /* every spread size gets the plans of all its piece widths */
    lcsm_buf dummy = {cb->dummy, 0};
    lcsm_ref r = lcsm_f32(&dummy, 0);
    pthread_mutex_lock(&cb->lock);
    const int cols = g->B * g->D;
    lcsm_status st = clb_scratch(cb, &cb->lazy_part,
                                 (size_t)LCSM_MAX_STAGES * cl_lazy_max_splits(cb, cols) * cols * sizeof(float),
                                 "lazy partial sums");
    for (int U = be->fft_threshold; st == LCSM_OK && U <= max_tile; U *= 2) {
        const cl_tile_spec *ts = any_spec(f, U);
        if (!ts) {
            st = LCSM_FAIL_BE(be, LCSM_ERR_STATE, "opencl: tile size %d has no spectra", U);
            break;
        }
        fft_conv c;
        int plan_rows;
        clfft_plan *plan;
        tile_conv_init(&c, f, g, ts, r, r, 0, U, U, U, NULL);
        st = fft_conv_setup(cb, &c, 0, &plan, &plan_rows);
        /* a spread tile also runs in pieces of one group (as cl_tile_fft cuts them): a unit of
         * channels, a batch of align units, the rest of D, all of D */
        const int unit = be->spread_unit, batch = be->spread_align * unit;
        const int widths[4] = {g->D < unit ? g->D : unit, g->D > unit ? g->D % unit : 0,
                               batch > unit && batch < g->D ? batch : 0, g->D > unit ? g->D : 0};
        for (int k = 0; st == LCSM_OK && spread_from && U >= spread_from && k < 4; k++) {
            if (!widths[k])
                continue;
            const cl_part part = {0, 0, widths[k]};
            tile_conv_init(&c, f, g, ts, r, r, 0, U, U, U, &part);
            st = fft_conv_setup(cb, &c, 0, &plan, &plan_rows);
        }
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

/* ---- flash tiles and eager pushes */

lcsm_status cl_tile_fft(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                        lcsm_ref acc, int in0, int U, int out0, int n_out, const lcsm_rows *part)
{
    cl_backend *cb = (cl_backend *)be;
    const int d = out0 - (in0 + U - 1), var = lcsm_spec_variant(d, U, f->lag);
    const cl_tile_spec *ts = var >= 0 ? &f->spec[lcsm_ilog2((unsigned)U)][var] : NULL;
    if (ts && !ts->mem)
        ts = NULL;
    if (!ts)
        return LCSM_FAIL_BE(be, LCSM_ERR_STATE, "opencl: tile size %d of delay %d was not prepared", U, d);
    fft_conv c;
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = LCSM_OK;
    if (!part) {
        tile_conv_init(&c, f, g, ts, hist, acc, in0, U, out0, n_out, NULL);
        st = fft_conv_run(cb, &c, 0);
    }
    /* a part: one group at a time, in pieces of the widths session_prepare made
     * plans for: all of D for a whole group, else a batch of align units where
     * the part holds one (starting on a batch boundary), else unit by unit */
    const int unit = be->spread_unit, per = lcsm_units_per_group(unit, g->D), align = be->spread_align;
    for (int u = part ? part->u0 : 0; part && u < part->u1 && st == LCSM_OK;) {
        const int gb = u / per, u_end = (gb + 1) * per < part->u1 ? (gb + 1) * per : part->u1;
        for (int v = u; v < u_end && st == LCSM_OK;) {
            const int whole = v % per == 0 && u_end == (gb + 1) * per, c0 = (v % per) * unit;
            const int batch = align > 1 && (v % per) % align == 0 && v + align <= u_end && c0 + align * unit <= g->D;
            const int n = whole ? u_end - v : batch ? align : 1;
            const int c1 = whole || c0 + n * unit > g->D ? g->D : c0 + n * unit;
            const cl_part p = {gb, c0, c1};
            tile_conv_init(&c, f, g, ts, hist, acc, in0, U, out0, n_out, &p);
            st = fft_conv_run(cb, &c, 0);
            v += n;
        }
        u = u_end;
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cl_block_direct(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                            lcsm_ref acc, int in0, int n_in, int out0, int n_out, const lcsm_rows *part)
{
    cl_backend *cb = (cl_backend *)be;
    size_t rows = (size_t)g->G * g->B * g->D, r0 = 0;
    if (part) { /* units u0 .. u1: contiguous rows from the first's first channel to the last's last */
        const int unit = be->spread_unit, per = lcsm_units_per_group(unit, g->D), last = part->u1 - 1;
        const size_t end = (size_t)(last / per) * g->D +
                           (last % per == per - 1 ? (size_t)g->D : (size_t)(last % per + 1) * unit);
        r0 = (size_t)(part->u0 / per) * g->D + (size_t)(part->u0 % per) * unit;
        rows = end - r0;
    }
    size_t gs[2] = {round_up(rows, 64), (size_t)n_out}, ls[2] = {64, 1};
    cl_arg a[] = {A_REF(hist), A_REF(acc), A_MEM(f->hT), A_I32(f->lh), A_I32(g->G), A_I32(g->B),
                  A_I32(g->D), A_I32(in0), A_I32(n_in),  A_I32(out0),  A_I32(n_out), A_U64(r0),
                  A_U64(rows)};
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = clb_launch(cb, K_BLOCK_DIRECT, 2, gs, ls, a, N_ARGS(a));
    pthread_mutex_unlock(&cb->lock);
    return st;
}

/* ---- prompts */

/* Spectra of group g0's filters c0 .. c0+cw for the chunk, into fft_spec. */
static lcsm_status prompt_spec_fill(cl_backend *cb, fft_conv *c, int c0, int cw, clfft_plan *plan, int plan_rows)
{
    c->spec = cb->fft_spec.mem;
    c->n_spec_f = cw;
    c->f0 = c->g0 * c->D + c0;
    /* The filters' rows: one "gb" = the group, cw channels, so rows <= plan_rows. */
    return segment_spectra(cb, c->flt, 0, c->S, c->d_lo, c->d_hi, c->g0, 1, c0, cw, plan, cb->fft_spec.mem, cw, 0);
}

lcsm_status cl_long_conv(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref a_tm,
                         size_t a_stride, lcsm_ref y_tm, size_t y_stride, lcsm_ref acc, int acc_len)
{
    cl_backend *cb = (cl_backend *)be;
    if (!acc.buf)
        acc_len = 0;
    int out_len = acc_len > len ? acc_len : len;
    if (out_len > f->lh)
        return LCSM_FAIL_BE(be, LCSM_ERR_LENGTH, "opencl: convolution of length %d past the filter length %d",
                            out_len, f->lh);
    lcsm_status st;
    pthread_mutex_lock(&cb->lock);
    if (len <= LCSM_LONG_CONV_DIRECT_MAX) {
        lcsm_buf none = {cb->dummy, 0};
        lcsm_ref accr = acc.buf ? acc : lcsm_f32(&none, 0);
        size_t gs[2] = {round_up((size_t)B * f->D, 64), (size_t)out_len}, ls[2] = {64, 1};
        cl_arg a[] = {A_REF(a_tm),           A_U64(a_stride), A_REF(y_tm), A_U64(y_stride), A_REF(accr),
                      A_MEM(f->hT),          A_I32(f->G * f->D), A_I32(g), A_I32(B * f->D), A_I32(f->D),
                      A_I32(len),            A_I32(out_len)};
        st = clb_launch(cb, K_LONG_DIRECT, 2, gs, ls, a, N_ARGS(a));
    } else {
        /* Blocks of S: a power of two near the prompt, capped by the FFT size. */
        int S = 1;
        while (S < len && S < cb->fft_max_n / 2)
            S *= 2;
        fft_conv c = {.gb_begin = 0, .n_gb = B, .B = B, .D = f->D, .g0 = g, .src = a_tm.buf->mem,
                      .src_off = clb_elems(a_tm), .src_stride = a_stride, .in0 = 0, .t_lo = 0, .t_hi = len, .n_in = len,
                      .out0 = 0, .t_split = len, .n_out = out_len, .A = y_tm.buf->mem, .a_off = clb_elems(y_tm),
                      .a_stride = y_stride, .S = S, .d_lo = 0, .d_hi = (out_len + S - 1) / S - 1,
                      .spec_fill = prompt_spec_fill, .flt = f};
        c.Bm = acc.buf ? acc.buf->mem : cb->dummy;
        c.b_off = acc.buf ? clb_elems(acc) : 0;
        c.b_stride = a_stride;
        st = fft_conv_run(cb, &c, c.d_hi + 1);
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}
