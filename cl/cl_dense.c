/*
 * Dense and per-token operations of the OpenCL backend: argument checks and
 * launches of the kernels in dense.cl. Every op is enqueued without waiting;
 * the engine's read() is the only synchronisation in a step.
 */
#include "cl_backend.h"

#include <string.h>

#define GEMV_R 8     /* rows of x per work-group of gemv_vec (dense.cl) */
#define GV_LANES 32 /* items per weight row, and */
#define GV_ROWS 4   /* weight rows per work-group, of gemv_vec */

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

static lcsm_status locked(cl_backend *cb, clk_id k, int dims, const size_t *g, const size_t *l, const cl_arg *a,
                          int n)
{
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = clb_launch(cb, k, dims, g, l, a, n);
    pthread_mutex_unlock(&cb->lock);
    return st;
}

/* out[i][:] = E[ids[i]][:] with the ids (int32) at a ref on the device: the
 * host's ids after staging (embed), or a session's sampled ids (embed_dev). */
static lcsm_status embed_launch(cl_backend *cb, lcsm_ref E, lcsm_ref ids, int n, int D, lcsm_ref out)
{
    size_t g[2] = {round_up((size_t)D, 64), (size_t)n}, l[2] = {64, 1};
    cl_arg a[] = {A_REF(E), A_REF(ids), A_I32(D), A_REF(out)};
    return clb_launch(cb, clb_wkernel(K_EMBED, E.dt), 2, g, l, a, N_ARGS(a));
}

lcsm_status cl_embed(lcsm_backend *be, lcsm_ref E, const int32_t *ids, int n, int D, lcsm_ref out)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_status st = LCSM_OK;
    pthread_mutex_lock(&cb->lock);
    /* The staging copy must stay untouched until its (asynchronous) write is done. */
    if (cb->ids_event) {
        clWaitForEvents(1, &cb->ids_event);
        clReleaseEvent(cb->ids_event);
        cb->ids_event = NULL;
    }
    if ((size_t)n > cb->ids_cap) {
        size_t cap = (size_t)n < 64 ? 64 : (size_t)n;
        int32_t *h = lcsm__malloc(cap * sizeof *h);
        cl_mem m = NULL;
        if (!h || (st = clb_mem(cb, cap * sizeof(int32_t), "token ids", &m)) != LCSM_OK) {
            lcsm__free(h);
            if (st == LCSM_OK)
                st = LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "opencl: token id staging");
            pthread_mutex_unlock(&cb->lock);
            return st;
        }
        lcsm__free(cb->ids_host);
        clb_release(cb, cb->ids);
        cb->ids_host = h;
        cb->ids = m;
        cb->ids_cap = cap;
    }
    memcpy(cb->ids_host, ids, (size_t)n * sizeof *ids);
    st = clb_check(cb,
                   clEnqueueWriteBuffer(cb->queue, cb->ids, CL_FALSE, 0, (size_t)n * sizeof *ids, cb->ids_host, 0,
                                        NULL, &cb->ids_event),
                   "clEnqueueWriteBuffer(ids)");
    if (st == LCSM_OK) {
        lcsm_buf staged = {cb->ids, cb->ids_cap * sizeof(int32_t)};
        st = embed_launch(cb, E, (lcsm_ref){&staged, 0, LCSM_DT_I32}, n, D, out);
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cl_embed_dev(lcsm_backend *be, lcsm_ref E, lcsm_ref ids, int n, int D, lcsm_ref out)
{
    cl_backend *cb = (cl_backend *)be;
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = embed_launch(cb, E, ids, n, D, out);
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cl_norm(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out, int rows,
                    int D, float eps)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf none = {cb->dummy, 0};
    const int has_b = b.buf != NULL;
    size_t g[2] = {CL_WG, (size_t)rows}, l[2] = {CL_WG, 1};
    cl_arg a[] = {A_REF(x),   A_REF(w),   A_REF(has_b ? b : lcsm_f32(&none, 0)), A_I32(has_b), A_REF(out),
                  A_I32(D), A_F32(eps), A_I32(kind)};
    return locked(cb, K_NORM, 2, g, l, a, N_ARGS(a));
}

lcsm_status cl_glu(lcsm_backend *be, lcsm_ref h, lcsm_ref out, int rows, int n, lcsm_act act)
{
    size_t g[2] = {round_up((size_t)n, 64), (size_t)rows}, l[2] = {64, 1};
    cl_arg a[] = {A_REF(h), A_REF(out), A_I32(n), A_I32(act)};
    return locked((cl_backend *)be, K_GLU, 2, g, l, a, N_ARGS(a));
}

lcsm_status cl_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                      int n_out, int flags)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf none = {cb->dummy, 0};
    int has_bias = bias.buf != NULL;
    lcsm_ref br = has_bias ? bias : lcsm_f32(&none, 0);
    cl_arg a[] = {A_REF(x),    A_REF(W),    A_REF(br),    A_I32(has_bias), A_REF(out),
                  A_I32(rows), A_I32(n_in), A_I32(n_out), A_I32(flags)};
    lcsm_status st;
    pthread_mutex_lock(&cb->lock);
    if (rows <= cb->gemv_max_rows) { /* blocks of GEMV_R rows along the third dimension */
        size_t g[3] = {GV_LANES, round_up((size_t)n_out, GV_ROWS), ((size_t)rows + GEMV_R - 1) / GEMV_R};
        size_t l[3] = {GV_LANES, GV_ROWS, 1};
        st = clb_launch(cb, clb_wkernel(K_GEMV, W.dt), 3, g, l, a, N_ARGS(a));
    } else {
        size_t g[2] = {round_up((size_t)n_out, 64) / 4, round_up((size_t)rows, 64) / 4}, l[2] = {16, 16};
        st = clb_launch(cb, clb_wkernel(K_GEMM, W.dt), 2, g, l, a, N_ARGS(a));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cl_norm_linear(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, float eps,
                           lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int D, int n_out, int flags)
{
    cl_backend *cb = (cl_backend *)be;
    if (!cb->fuse_norm || rows > 1) /* batch 1 decode: at batch 8 the fused kernel measured slower */
        return LCSM_ERR_UNSUPPORTED;
    lcsm_buf none = {cb->dummy, 0};
    const int has_bias = bias.buf != NULL, has_beta = b.buf != NULL;
    cl_arg a[] = {A_REF(x),    A_REF(W),   A_REF(has_bias ? bias : lcsm_f32(&none, 0)), A_I32(has_bias),
                  A_REF(w),    A_REF(has_beta ? b : lcsm_f32(&none, 0)), A_I32(has_beta), A_I32(kind),
                  A_F32(eps),  A_REF(out), A_I32(D),    A_I32(n_out), A_I32(flags)};
    size_t g[3] = {GV_LANES, round_up((size_t)n_out, GV_ROWS), 1}, l[3] = {GV_LANES, GV_ROWS, 1};
    return locked(cb, clb_wkernel(K_GEMV_NORM, W.dt), 3, g, l, a, N_ARGS(a));
}

lcsm_status cl_shortconv_seq(lcsm_backend *be, lcsm_ref u, lcsm_ref conv_w, lcsm_ref conv_b, int K, int B, int len,
                             int C, lcsm_ref out, lcsm_ref state)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf none = {cb->dummy, 0};
    const int has_b = conv_b.buf != NULL;
    size_t g[3] = {round_up((size_t)C, 64), (size_t)len, (size_t)B}, l[3] = {64, 1, 1};
    const int has_state = state.buf != NULL && K > 1;
    cl_arg a[] = {A_REF(u),   A_REF(conv_w), A_REF(has_b ? conv_b : lcsm_f32(&none, 0)), A_I32(has_b), A_I32(K),
                  A_I32(len), A_I32(C),      A_REF(out), A_REF(has_state ? state : lcsm_f32(&none, 0)),
                  A_I32(has_state)};
    lcsm_status st = locked(cb, K_SHORTCONV_SEQ, 3, g, l, a, N_ARGS(a));
    if (st != LCSM_OK || !has_state)
        return st;
    size_t gs[2] = {round_up((size_t)C, 64), (size_t)B}, ls[2] = {64, 1};
    cl_arg as[] = {A_REF(u), A_I32(len), A_I32(C), A_I32(K), A_REF(state)};
    return locked(cb, K_CONV_STATE_SEQ, 2, gs, ls, as, N_ARGS(as));
}

/* A sequence's arguments: buffer, element offset, time and sequence strides. */
#define A_SEQ(q) A_REF((q).r), A_U64((q).st), A_U64((q).sb)

lcsm_status cl_mul_seq(lcsm_backend *be, lcsm_seq x, lcsm_seq m, lcsm_seq out, int B, int len, int D)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf none = {cb->dummy, 0};
    const int has_m = m.r.buf != NULL;
    if (!has_m)
        m.r = lcsm_f32(&none, 0);
    size_t g[3] = {round_up((size_t)D, 64), (size_t)len, (size_t)B}, l[3] = {64, 1, 1};
    cl_arg a[] = {A_SEQ(x), A_SEQ(m), A_I32(has_m), A_SEQ(out), A_I32(D)};
    return locked(cb, K_MUL_SEQ, 3, g, l, a, N_ARGS(a));
}

lcsm_status cl_gate_seq(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_seq y, lcsm_seq a,
                        lcsm_seq m, lcsm_seq out)
{
    cl_backend *cb = (cl_backend *)be;
    const int D = f->D;
    lcsm_buf none = {cb->dummy, 0};
    const int has_m = m.r.buf != NULL;
    if (!has_m)
        m.r = lcsm_f32(&none, 0);
    size_t gs[3] = {round_up((size_t)D, 64), (size_t)len, (size_t)B}, l[3] = {64, 1, 1};
    /* group g's skip terms, passed as a ref into the filters' buffer */
    lcsm_buf db = {f->dbias, (size_t)f->G * D * sizeof(float)};
    cl_arg args[] = {A_SEQ(y), A_SEQ(a), A_SEQ(m), A_I32(has_m), A_REF(lcsm_f32(&db, (size_t)g * D)), A_I32(D),
                     A_SEQ(out)};
    return locked(cb, K_GATE_SEQ, 3, gs, l, args, N_ARGS(args));
}

lcsm_status cl_modal_seq(lcsm_backend *be, const lcsm_modal *md, lcsm_ref state, int B, int len, int D, lcsm_seq a,
                         lcsm_seq y)
{
    cl_backend *cb = (cl_backend *)be;
    const int cx = md->p.dt == LCSM_DT_C64, has_state = state.buf != NULL;
    lcsm_status st = LCSM_OK;
    pthread_mutex_lock(&cb->lock);
    /* without a session's state the recurrence keeps its own in scratch (a
     * forward may allocate; a step never calls this) */
    if (!has_state)
        st = clb_scratch(cb, &cb->modal_state, (size_t)B * D * md->N * (cx ? 2 : 1) * sizeof(float), "modal states");
    if (st == LCSM_OK) {
        lcsm_buf scratch = {cb->modal_state.mem ? cb->modal_state.mem : cb->dummy, cb->modal_state.bytes};
        lcsm_ref stref = has_state ? state : lcsm_f32(&scratch, 0);
        size_t g[2] = {round_up((size_t)D, 64), (size_t)B}, l[2] = {64, 1};
        cl_arg args[] = {A_FREF(md->p), A_FREF(md->R), A_REF(md->skip), A_FREF(stref), A_I32(has_state),
                         A_FREF(lcsm_f32(&scratch, 0)), A_I32(md->N), A_I32(cx), A_I32(len), A_I32(D), A_SEQ(a),
                         A_SEQ(y)};
        st = clb_launch(cb, K_MODAL_SEQ, 2, g, l, args, N_ARGS(args));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cl_fir_seq(lcsm_backend *be, const lcsm_fir *fir, int pos0, int B, int len, int D, lcsm_seq a,
                       lcsm_seq y)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf none = {cb->dummy, 0};
    const int has_skip = fir->skip.buf != NULL, has_ring = fir->ring.buf != NULL, L = fir->len;
    size_t g[3] = {round_up((size_t)D, 64), (size_t)len, (size_t)B}, l[3] = {64, 1, 1};
    cl_arg args[] = {A_REF(fir->taps), A_I32(L), A_REF(has_skip ? fir->skip : lcsm_f32(&none, 0)), A_I32(has_skip),
                     A_I32(D),         A_SEQ(a), A_SEQ(y), A_REF(has_ring ? fir->ring : lcsm_f32(&none, 0)),
                     A_I32(has_ring),  A_I32(pos0)};
    lcsm_status st = locked(cb, K_FIR_SEQ, 3, g, l, args, N_ARGS(args));
    if (st != LCSM_OK || !has_ring)
        return st;
    const int n = len < L ? len : L;
    size_t gr[3] = {round_up((size_t)D, 64), (size_t)n, (size_t)B};
    cl_arg ar[] = {A_SEQ(a), A_I32(len), A_I32(n), A_I32(L), A_I32(D), A_I32(pos0), A_REF(fir->ring)};
    return locked(cb, K_FIR_RING_SEQ, 3, gr, l, ar, N_ARGS(ar));
}

int cl_lazy_max_splits(const cl_backend *cb, int cols)
{
    int n = cb->is_cpu_device ? 4 : (1 << 17) / (cols > 0 ? cols : 1);
    return n < 1 ? 1 : n > 256 ? 256 : n;
}

/* Lagged flash's band up to this many taps (and up to cb->band_taps) runs in
 * the step kernel. */
#define CL_INLINE_BAND 64

/* Splits of a sum over n inputs: enough work-items to fill a GPU, each summing
 * at least `per` products (a few hundred for the lazy sum, band_taps for the
 * band). */
static int lazy_splits(const cl_backend *cb, int n, int per, int cols)
{
    int k = n / per, max = cl_lazy_max_splits(cb, cols);
    return k < 1 ? 1 : k > max ? max : k;
}

lcsm_status cl_hyena_step(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                          const lcsm_hyena_step_args *args)
{
    cl_backend *cb = (cl_backend *)be;
    const int B = geom->B, D = geom->D, G = geom->G, n_stage = args->n_stage;
    lcsm_status st = LCSM_OK;
    int n_split = 0;
    pthread_mutex_lock(&cb->lock);
    /* the sum over history the cache lacks: all of it (lazy) or the band, a
     * short band in the step kernel itself */
    const int s_lo = args->mode == LCSM_MIX_LAZY ? 0 : args->t - args->band;
    const int cached = args->mode == LCSM_MIX_CACHED;
    const int inline_band = cached && args->band <= CL_INLINE_BAND && args->band <= cb->band_taps ? args->band : 0;
    if (s_lo < args->t && !inline_band) {
        n_split = lazy_splits(cb, args->t - s_lo, cached ? cb->band_taps : 256, B * D);
        /* reserved by cl_session_prepare: this never allocates */
        st = clb_scratch(cb, &cb->lazy_part, (size_t)n_stage * n_split * B * D * sizeof(float), "lazy partial sums");
        for (int i = 0; st == LCSM_OK && i < n_stage; i++) {
            if (args->stage[i].kind != LCSM_PAST_TILED)
                continue;
            size_t g[2] = {round_up((size_t)B * D, 64), (size_t)n_split}, l[2] = {64, 1};
            cl_arg a[] = {A_REF(args->hist),  A_MEM(f->hT),  A_U64((size_t)G * D),     A_I32(args->stage[i].group),
                          A_I32(B),           A_I32(D),      A_I32(args->t),           A_I32(s_lo), A_I32(n_split),
                          A_MEM(cb->lazy_part.mem), A_U64((size_t)i * n_split * B * D)};
            st = clb_launch(cb, K_LAZY_PARTIAL, 2, g, l, a, N_ARGS(a));
        }
    }
    if (st == LCSM_OK) {
        lcsm_buf none = {cb->dummy, 0};
        const lcsm_ref dummy = lcsm_f32(&none, 0);
        lcsm_ref acc = args->mode == LCSM_MIX_CACHED && args->acc.buf ? args->acc : dummy;
        lcsm_ref hist = args->hist.buf ? args->hist : dummy; /* none when no stage is tiled */
        cl_mem part = n_split ? cb->lazy_part.mem : cb->dummy;
        const int has_b = args->conv_b.buf != NULL, K = args->K;
        size_t g[2] = {round_up((size_t)D, 64), (size_t)B}, l[2] = {64, 1};
        /* per stage: kind, mult, group, filter (poles or taps, residues), skip, state or ring, modes or taps, complex */
        lcsm_ref f1[2], f2[2], sk[2], sst[2];
        int kind[2] = {0, 0}, mult[2] = {-1, -1}, grp[2] = {0, 0}, has_sk[2] = {0, 0}, nn[2] = {0, 0}, cx[2] = {0, 0};
        for (int i = 0; i < 2; i++) {
            f1[i] = f2[i] = sk[i] = sst[i] = dummy;
            if (i >= n_stage)
                continue;
            const lcsm_hyena_stage *sg = &args->stage[i];
            kind[i] = (int)sg->kind;
            mult[i] = sg->mult;
            grp[i] = sg->group;
            if (sg->kind == LCSM_PAST_MODAL) {
                f1[i] = sg->modal.p;
                f2[i] = sg->modal.R;
                sk[i] = sg->modal.skip;
                has_sk[i] = 1;
                sst[i] = sg->state;
                nn[i] = sg->modal.N;
                cx[i] = sg->modal.p.dt == LCSM_DT_C64;
            } else if (sg->kind == LCSM_PAST_FIR) {
                f1[i] = sg->fir.taps;
                has_sk[i] = sg->fir.skip.buf != NULL;
                sk[i] = has_sk[i] ? sg->fir.skip : dummy;
                sst[i] = sg->fir.ring;
                nn[i] = sg->fir.len;
            }
        }
#define A_STAGE(i)                                                                                                    \
    A_I32(kind[i]), A_I32(mult[i]), A_I32(grp[i]), A_FREF(f1[i]), A_FREF(f2[i]), A_FREF(sk[i]), A_I32(has_sk[i]),    \
        A_FREF(sst[i]), A_I32(nn[i]), A_I32(cx[i])
        cl_arg a[] = {A_REF(args->u),
                      A_I32(args->S),
                      A_REF(K ? args->conv_w : dummy),
                      A_REF(has_b ? args->conv_b : dummy),
                      A_I32(has_b),
                      A_I32(K),
                      A_REF(K > 1 ? args->state : dummy),
                      A_REF(hist),
                      A_REF(acc),
                      A_MEM(f ? f->h0d : cb->dummy),
                      A_MEM(part),
                      A_I32(n_split),
                      A_I32(args->mode == LCSM_MIX_CACHED),
                      A_MEM(f ? f->hT : cb->dummy),
                      A_I32(inline_band),
                      A_I32(n_stage),
                      A_STAGE(0),
                      A_STAGE(1),
                      A_REF(args->y),
                      A_I32(G),
                      A_I32(B),
                      A_I32(D),
                      A_I32(args->t)};
#undef A_STAGE
        st = clb_launch(cb, K_HYENA_STEP, 2, g, l, a, N_ARGS(a));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}
