/*
 * Decoding with the token ids on the device: sampling (sample.cl) into a
 * session's id slot (the embedding that reads it is cl_embed_dev, cl_dense.c),
 * and a wait for everything queued. With these the engine's generate loop queues step after
 * step without waiting: the ids reach the host by asynchronous copies; and a
 * wait for the last sample's ids alone.
 */
#include "cl_backend.h"

lcsm_status cl_sample(lcsm_backend *be, lcsm_ref logits, int B, int V, const lcsm_sampler_params *p, uint64_t draws,
                      lcsm_ref ids, int32_t *host_ids, int wait)
{
    cl_backend *cb = (cl_backend *)be;
    const int lo = p->token_lo > 0 ? p->token_lo : 0;
    const int hi = p->token_hi > 0 && p->token_hi < V ? p->token_hi : V;
    if (lo >= hi || (p->temperature > 0.0f && hi - lo > CL_SAMPLE_MAX))
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "opencl: the device samples from at most %d ids (not [%d, %d))",
                            CL_SAMPLE_MAX, lo, hi);
    size_t g = (size_t)B * 256, l = 256;
    cl_arg a[] = {A_REF(logits),     A_I32(V),       A_I32(lo),       A_I32(hi),  A_F32(p->temperature),
                  A_I32(p->top_k),   A_F32(p->top_p), A_U64(p->seed), A_U64(draws), A_REF(ids)};
    cl_event ev = NULL;
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = clb_launch(cb, K_SAMPLE, 1, &g, &l, a, N_ARGS(a));
    if (st == LCSM_OK)
        st = clb_check(cb,
                       clEnqueueReadBuffer(cb->queue, ids.buf->mem, CL_FALSE, ids.off,
                                           (size_t)B * sizeof(int32_t), host_ids, 0, NULL, &ev),
                       "clEnqueueReadBuffer(sampled ids)");
    if (st == LCSM_OK) {
        clFlush(cb->queue); /* let the device start while the host queues the next step */
        if (cb->ids_copy)
            clReleaseEvent(cb->ids_copy);
        cb->ids_copy = ev; /* for sample_wait */
        ev = NULL;
    }
    pthread_mutex_unlock(&cb->lock);
    return st == LCSM_OK && wait ? cl_sample_wait(be) : st;
}

lcsm_status cl_sample_wait(lcsm_backend *be)
{
    cl_backend *cb = (cl_backend *)be;
    pthread_mutex_lock(&cb->lock);
    cl_event ev = cb->ids_copy;
    cb->ids_copy = NULL;
    pthread_mutex_unlock(&cb->lock);
    return ev ? clb_wait(cb, ev) : LCSM_OK;
}

lcsm_status cl_finish(lcsm_backend *be)
{
    cl_backend *cb = (cl_backend *)be;
    pthread_mutex_lock(&cb->lock);
    lcsm_status st = clb_check(cb, clFinish(cb->queue), "clFinish");
    pthread_mutex_unlock(&cb->lock);
    return st;
}
