/* Hedgehog linear attention on an OpenCL device (linattn.cl): the feature maps
 * of a block of rows into scratch, the recurrence over them, the sums z; a
 * long prompt goes block by block, so the scratch stays small. */
#include "cl_backend.h"

/* Feature-map scratch: reserved once at its full size, so no step allocates. */
#define LA_PHI_BYTES ((size_t)16 << 20)

static size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }

lcsm_status cl_linattn(lcsm_backend *be, const lcsm_linattn_args *a)
{
    cl_backend *cb = (cl_backend *)be;
    if (a->F < 1 || a->F > CL_LINATTN_MAX_F)
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "opencl: linear attention of %d features (1 to %d)", a->F,
                            CL_LINATTN_MAX_F);
    const size_t per_row = (size_t)a->B * a->H * 4 * a->F * sizeof(float); /* phi of q and k, every sequence */
    if (per_row > LA_PHI_BYTES)
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "opencl: linear attention of batch %d x %d heads x %d features "
                            "exceeds its feature scratch", a->B, a->H, a->F);
    const int block = (int)(LA_PHI_BYTES / per_row);
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = clb_scratch(cb, &cb->linattn_phi, LA_PHI_BYTES, "linear attention feature maps");
    for (int r0 = 0; st == LCSM_OK && r0 < a->len; r0 += block) {
        const int n = a->len - r0 < block ? a->len - r0 : block, items = a->B * n * a->H * 2;
        size_t g1 = round_up((size_t)items, 64), l1 = 64;
        cl_arg a1[] = {A_REF(a->qkv), A_REF(a->fmq), A_REF(a->fmk), A_MEM(cb->linattn_phi.mem), A_I32(a->H),
                       A_I32(a->hd),  A_I32(a->F),   A_F32(a->fm_eps), A_I32(r0), A_I32(a->len), A_I32(n),
                       A_I32(items)};
        st = clb_launch(cb, K_LINATTN_PHI, 1, &g1, &l1, a1, N_ARGS(a1));
        if (st != LCSM_OK)
            break;
        size_t g2[2] = {round_up((size_t)a->hd, 32), (size_t)a->H * a->B}, l2[2] = {32, 1};
        cl_arg a2[] = {A_REF(a->qkv), A_MEM(cb->linattn_phi.mem), A_REF(a->state), A_REF(a->out), A_I32(a->H),
                       A_I32(a->hd),  A_I32(a->F), A_F32(a->eps), A_I32(r0), A_I32(a->len), A_I32(n)};
        st = clb_launch(cb, K_LINATTN_REC, 2, g2, l2, a2, N_ARGS(a2));
        if (st != LCSM_OK)
            break;
        const int zi = a->B * a->H * 2 * a->F;
        size_t g3 = round_up((size_t)zi, 64), l3 = 64;
        cl_arg a3[] = {A_MEM(cb->linattn_phi.mem), A_REF(a->state), A_I32(a->H), A_I32(a->hd), A_I32(a->F), A_I32(n),
                       A_I32(zi)};
        st = clb_launch(cb, K_LINATTN_Z, 1, &g3, &l3, a3, N_ARGS(a3));
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}
