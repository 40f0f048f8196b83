/* The decode engine: session state and the parallel forward it shares with
 * lcsm_model_forward. */
#ifndef LCSM_ENGINE_H
#define LCSM_ENGINE_H

#include "internal.h"

struct lcsm_session {
    lcsm_model *model;
    lcsm_backend *be;
    lcsm_session_options opt;
    lcsm_conv_geom geom; /* G = layers, B, D, L = max_len */
    int pos;             /* next position */
    int origin;          /* where the flash schedule started (prompt length) */
    int broken;          /* a backend op failed mid-step: only reset helps */
    /* device state */
    /* hist, acc (not lazy), and conv state + activations: three allocations, so
     * that long sessions stay within a device's largest single buffer. */
    lcsm_buf *bufs[3];
    lcsm_ref hist, acc, conv_state;
    lcsm_ref r, xn, u, y, work, hid, logits;
    lcsm_ref ids; /* [B] int32: sampled ids kept on the device (backends with sample) */
    size_t state_floats;
    /* host */
    float *logits_host; /* [B][n_vocab] */
    void *sample_scratch;
    lcsm_sampler_params sampler;
    uint64_t draws; /* draws of each sequence's generator since the sampler was set */
    lcsm_session_stats stats;
    char last_error[512];
};

/* out = linear(LayerNorm(x)) through the scratch xn: the pre-norm pattern of
 * every block, in the step and the parallel forward alike. (Folding the two
 * into one OpenCL kernel was measured slower; see gemv_vec in cl/dense.cl.) */
static inline lcsm_status lcsm__ln_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref ln_w, lcsm_ref ln_b, float eps,
                                          lcsm_ref xn, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int D,
                                          int n_out, int flags)
{
    lcsm_status st = be->ops->layernorm(be, x, ln_w, ln_b, xn, rows, D, eps);
    return st != LCSM_OK ? st : be->ops->linear(be, xn, W, bias, out, rows, D, n_out, flags);
}

/* The MLP half of block ly on rows of the residual stream r [rows][D]:
 * r += fc2(gelu(fc1(LayerNorm2(r)))), through the scratch xn [rows][D] and
 * hid [rows][DI]. */
static inline lcsm_status lcsm__block_mlp(lcsm_backend *be, const lcsm_layer *ly, lcsm_ref r, lcsm_ref xn,
                                          lcsm_ref hid, int rows, int D, int DI, float eps)
{
    lcsm_status st = lcsm__ln_linear(be, r, ly->norm2_w, ly->norm2_b, eps, xn, ly->fc1_w, ly->fc1_b, hid, rows, D,
                                     DI, LCSM_LINEAR_GELU);
    return st != LCSM_OK ? st
                         : be->ops->linear(be, hid, ly->fc2_w, ly->fc2_b, r, rows, DI, D, LCSM_LINEAR_ACCUMULATE);
}

/* Parallel forward over tokens [B][len] from position 0 (token ids checked by
 * the caller). With a session, also leaves its state as if the tokens had been
 * stepped: history, short-conv state, and (unless lazy) the prompt's pushes into
 * the accumulators. logits: [B][len][V] if all_positions, else [B][V] of the
 * last position; may be NULL. Errors go to be->last_error. */
lcsm_status lcsm__forward_seq(lcsm_model *m, lcsm_session *s, const int32_t *tokens, int B, int len,
                              float *logits, int all_positions);

/* Checks ids against the model's vocabulary; writes a message to dst on failure. */
lcsm_status lcsm__check_tokens(const lcsm_model *m, const int32_t *ids, size_t n, char *dst, size_t cap);

#endif
