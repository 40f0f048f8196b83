/*
 * Causal softmax attention on an OpenCL device (attn.cl): rotate, store into
 * the caches, then one work-group per (split, query head, row). A decode step
 * has few rows, so the positions are split across work-groups to fill the
 * device and attn_combine merges the splits' partial softmaxes; a prompt's rows
 * fill it already and run unsplit.
 */
#include "cl_backend.h"

#define ATTN_WG 64           /* attn.cl */
#define ATTN_MAX_SPLITS 64
/* Partials scratch: reserved once at its full size, so no step allocates. */
#define ATTN_PART_BYTES ((size_t)4 << 20)

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

/* Splits of the positions 0..n-1 for `rows` x H work-groups. */
static int attn_splits(const cl_backend *cb, int n, int rows, int H, int hd)
{
    int s = n / cb->attn_min_span;
    const size_t per = (size_t)rows * H * (hd + 2) * sizeof(float);
    const int fit = (int)(ATTN_PART_BYTES / per), fill = 1024 / (rows * H) + 1; /* ~1024 work-groups */
    if (s > fill)
        s = fill;
    if (s > ATTN_MAX_SPLITS)
        s = ATTN_MAX_SPLITS;
    if (s > fit)
        s = fit;
    return s < 2 ? 1 : s;
}

lcsm_status cl_attn(lcsm_backend *be, const lcsm_attn_args *a)
{
    cl_backend *cb = (cl_backend *)be;
    const int H = a->H, Hkv = a->Hkv, hd = a->hd, rows = a->B * a->len, dt = a->k_cache.dt;
    if (hd > CL_ATTN_MAX_HD || hd % 2)
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "opencl: attention head width %d (even, at most %d)", hd,
                            CL_ATTN_MAX_HD);
    const int kofs = dt == LCSM_DT_F16 ? 1 : dt == LCSM_DT_BF16 ? 2 : 0;
    const int last = a->pos0 + a->len; /* positions the last row attends to */
    const int n_split = a->len == 1 ? attn_splits(cb, last, rows, H, hd) : 1;
    lcsm_status st = LCSM_OK;
    pthread_mutex_lock(&cb->lock);
    st = clb_scratch(cb, &cb->attn_part, ATTN_PART_BYTES, "attention partials");
    if (st == LCSM_OK && a->rope_base > 0) {
        size_t g[3] = {round_up((size_t)hd / 2, 32), (size_t)(H + Hkv), (size_t)rows}, l[3] = {32, 1, 1};
        cl_arg ar[] = {A_REF(a->qkv),        A_I32(H),      A_I32(Hkv),           A_I32(hd),
                       A_I32(a->len),        A_I32(a->pos0), A_F32(a->rope_base), A_F32(a->rope_scale)};
        st = clb_launch(cb, K_ATTN_ROPE, 3, g, l, ar, N_ARGS(ar));
    }
    if (st == LCSM_OK) {
        size_t g[2] = {round_up((size_t)Hkv * hd, 64), (size_t)rows}, l[2] = {64, 1};
        cl_arg ar[] = {A_REF(a->qkv),  A_I32(H),       A_I32(Hkv),          A_I32(hd),
                       A_I32(a->len),  A_I32(a->pos0), A_I32(a->L),         A_REF(a->k_cache),
                       A_REF(a->v_cache)};
        st = clb_launch(cb, (clk_id)(K_ATTN_STORE + kofs), 2, g, l, ar, N_ARGS(ar));
    }
    if (st == LCSM_OK) {
        size_t g[3] = {(size_t)n_split * ATTN_WG, (size_t)H, (size_t)rows}, l[3] = {ATTN_WG, 1, 1};
        cl_arg ar[] = {A_REF(a->qkv),        A_I32(H),         A_I32(Hkv),      A_I32(hd),
                       A_I32(a->len),        A_I32(a->pos0),   A_I32(a->L),     A_REF(a->k_cache),
                       A_REF(a->v_cache),    A_REF(a->out),    A_I32(n_split),  A_MEM(cb->attn_part.mem)};
        st = clb_launch(cb, (clk_id)(K_ATTN_PART + kofs), 3, g, l, ar, N_ARGS(ar));
    }
    if (st == LCSM_OK && n_split > 1) {
        size_t g[3] = {round_up((size_t)hd, 64), (size_t)H, (size_t)rows}, l[3] = {64, 1, 1};
        cl_arg ar[] = {A_MEM(cb->attn_part.mem), A_I32(H), A_I32(hd), A_I32(n_split), A_REF(a->out)};
        st = clb_launch(cb, K_ATTN_COMBINE, 3, g, l, ar, N_ARGS(ar));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}
