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
    return clb_launch(cb, K_EMBED, 2, g, l, a, N_ARGS(a));
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
        lcsm_buf staged = {cb->ids, cb->ids_cap};
        st = embed_launch(cb, E, (lcsm_ref){&staged, 0}, n, D, out);
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

lcsm_status cl_layernorm(lcsm_backend *be, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out, int rows, int D,
                         float eps)
{
    size_t g[2] = {CL_WG, (size_t)rows}, l[2] = {CL_WG, 1};
    cl_arg a[] = {A_REF(x), A_REF(w), A_REF(b), A_REF(out), A_I32(D), A_F32(eps)};
    return locked((cl_backend *)be, K_LAYERNORM, 2, g, l, a, N_ARGS(a));
}

lcsm_status cl_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                      int n_out, int flags)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf none = {cb->dummy, 0};
    int has_bias = bias.buf != NULL;
    lcsm_ref br = has_bias ? bias : (lcsm_ref){&none, 0};
    cl_arg a[] = {A_REF(x),    A_REF(W),    A_REF(br),    A_I32(has_bias), A_REF(out),
                  A_I32(rows), A_I32(n_in), A_I32(n_out), A_I32(flags)};
    lcsm_status st;
    pthread_mutex_lock(&cb->lock);
    if (rows <= cb->gemv_max_rows) { /* blocks of GEMV_R rows along the third dimension */
        size_t g[3] = {GV_LANES, round_up((size_t)n_out, GV_ROWS), ((size_t)rows + GEMV_R - 1) / GEMV_R};
        size_t l[3] = {GV_LANES, GV_ROWS, 1};
        st = clb_launch(cb, K_GEMV, 3, g, l, a, N_ARGS(a));
    } else {
        size_t g[2] = {round_up((size_t)n_out, 64) / 4, round_up((size_t)rows, 64) / 4}, l[2] = {16, 16};
        st = clb_launch(cb, K_GEMM, 2, g, l, a, N_ARGS(a));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

lcsm_status cl_shortconv_seq(lcsm_backend *be, lcsm_ref u, lcsm_ref conv_w, lcsm_ref conv_b, int B, int len, int D,
                             lcsm_ref x0, lcsm_ref a_tm, size_t a_stride, lcsm_ref state)
{
    cl_backend *cb = (cl_backend *)be;
    size_t g[3] = {round_up((size_t)D, 64), (size_t)len, (size_t)B}, l[3] = {64, 1, 1};
    cl_arg a[] = {A_REF(u), A_REF(conv_w), A_REF(conv_b), A_I32(len), A_I32(D), A_REF(x0), A_REF(a_tm),
                  A_U64(a_stride)};
    lcsm_status st = locked(cb, K_SHORTCONV_SEQ, 3, g, l, a, N_ARGS(a));
    if (st != LCSM_OK || !state.buf)
        return st;
    size_t gs[3] = {round_up((size_t)3 * D, 64), 2, (size_t)B};
    cl_arg as[] = {A_REF(u), A_I32(len), A_I32(3 * D), A_REF(state)};
    return locked(cb, K_CONV_STATE_SEQ, 3, gs, l, as, N_ARGS(as));
}

lcsm_status cl_gate_seq(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref y_tm,
                        size_t y_stride, lcsm_ref a_tm, size_t a_stride, lcsm_ref x0, lcsm_ref out)
{
    const int D = f->D;
    size_t gs[3] = {round_up((size_t)D, 64), (size_t)len, (size_t)B}, l[3] = {64, 1, 1};
    /* group g's skip terms, passed as a ref into the filters' buffer */
    lcsm_buf db = {f->dbias, 0};
    lcsm_ref dbr = {&db, (size_t)g * D};
    cl_arg a[] = {A_REF(y_tm), A_U64(y_stride), A_REF(a_tm), A_U64(a_stride), A_REF(x0),
                  A_REF(dbr),  A_I32(len),      A_I32(D),    A_REF(out)};
    return locked((cl_backend *)be, K_GATE_SEQ, 3, gs, l, a, N_ARGS(a));
}

int cl_lazy_max_splits(const cl_backend *cb, int cols)
{
    int n = cb->is_cpu_device ? 4 : (1 << 17) / (cols > 0 ? cols : 1);
    return n < 1 ? 1 : n > 256 ? 256 : n;
}

/* Splits of the lazy sum at position t: enough work-items to fill a GPU, each
 * summing at least a few hundred products. */
static int lazy_splits(const cl_backend *cb, int t, int cols)
{
    int n = t / 256, max = cl_lazy_max_splits(cb, cols);
    return n < 1 ? 1 : n > max ? max : n;
}

lcsm_status cl_hyena_step(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                          const lcsm_hyena_step_args *args)
{
    cl_backend *cb = (cl_backend *)be;
    const int B = geom->B, D = geom->D, G = geom->G;
    lcsm_status st = LCSM_OK;
    int n_split = 0;
    pthread_mutex_lock(&cb->lock);
    if (args->mode == LCSM_MIX_LAZY) {
        n_split = lazy_splits(cb, args->t, B * D);
        /* reserved by cl_session_prepare: this never allocates */
        st = clb_scratch(cb, &cb->lazy_part, (size_t)n_split * B * D * sizeof(float), "lazy partial sums");
        if (st == LCSM_OK) {
            size_t g[2] = {round_up((size_t)B * D, 64), (size_t)n_split}, l[2] = {64, 1};
            cl_arg a[] = {A_REF(args->hist), A_MEM(f->hT), A_U64((size_t)G * D), A_I32(args->group), A_I32(B),
                          A_I32(D),          A_I32(args->t), A_I32(n_split),    A_MEM(cb->lazy_part.mem)};
            st = clb_launch(cb, K_LAZY_PARTIAL, 2, g, l, a, N_ARGS(a));
        }
    }
    if (st == LCSM_OK) {
        lcsm_buf none = {cb->dummy, 0};
        lcsm_ref acc = args->mode == LCSM_MIX_CACHED ? args->acc : (lcsm_ref){&none, 0};
        cl_mem part = n_split ? cb->lazy_part.mem : cb->dummy;
        size_t g[2] = {round_up((size_t)D, 64), (size_t)B}, l[2] = {64, 1};
        cl_arg a[] = {A_REF(args->u), A_REF(args->conv_w), A_REF(args->conv_b), A_REF(args->state),
                      A_REF(args->hist), A_REF(acc),     A_MEM(f->h0d),       A_MEM(part),
                      A_I32(n_split),    A_REF(args->y), A_I32(args->group),  A_I32(G),
                      A_I32(B),          A_I32(D),       A_I32(args->t)};
        st = clb_launch(cb, K_HYENA_STEP, 2, g, l, a, N_ARGS(a));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}
