/* The decode engine: session state, the block helpers the step and the
 * parallel forward share, and the parallel forward itself. */
#ifndef LCSM_ENGINE_H
#define LCSM_ENGINE_H

#include "internal.h"
#include "schedule.h"

/* Spread tiles in flight at most: lagged flash, ceil(lag / 2U) of each size U
 * from lcsm_spread_from(lag) on, at most 16 + 24 for 2^24 positions; the
 * smooth schedule, up to 4 per level (test_schedule checks both). */
#define LCSM_MAX_PENDING 128

struct lcsm_session {
    lcsm_model *model;
    lcsm_backend *be;
    lcsm_session_options opt;
    lcsm_conv_geom geom; /* G = the model's tiled convolutions, B, D, L = max_len */
    int pos;             /* next position */
    int origin;          /* where the flash schedule started (prompt length) */
    int broken;          /* a backend op failed mid-step: only reset helps */
    /* Lagged flash: the band's taps (1: plain flash; lazy and eager ignore it),
     * tiles from spread_from on are spread over the steps up to their deadline
     * (0: none is), and the spread tiles not finished yet. */
    int lag, spread_from, n_pending;
    int smooth; /* LCSM_ALGO_SMOOTH: the smooth schedule's tiles and band instead */
    struct lcsm_pending {
        lcsm_tile tile;
        int done, total, start, deadline; /* units (row parts) done, in all; the step that made it, that must finish it */
    } pending[LCSM_MAX_PENDING];
    /* device state */
    /* hist, acc (not lazy), and the per-layer states + activations: three
     * allocations, so that long sessions stay within a device's largest single
     * buffer. */
    lcsm_buf *bufs[4]; /* hist, acc, states + activations, KV caches */
    lcsm_ref hist, acc;
    lcsm_ref *conv_state; /* [n_layer]: [B][K-1][S*D] short-conv inputs (buf NULL: none) */
    lcsm_ref (*stage_state)[LCSM_MAX_STAGES]; /* [n_layer]: a modal stage's [B][D][N], a FIR's ring [B][len][D] */
    lcsm_ref (*kv)[2]; /* [n_layer]: an attention layer's K and V caches [B][L][Hkv][hd] */
    lcsm_ref *lin_state; /* [n_layer]: a linear attention layer's S and z [B][H][2F][hd + 1] */
    size_t states_floats; /* of the third buffer, before the activations */
    lcsm_ref r, xn, u, y, work, hid, hid2, logits;
    lcsm_ref ids; /* [B] int32: sampled ids kept on the device (backends with sample) */
    size_t state_bytes;
    /* host */
    float *logits_host; /* [B][n_vocab] */
    void *sample_scratch;
    lcsm_sampler_params sampler; /* .allowed points at allowed[] */
    int32_t allowed[LCSM_MAX_ALLOWED];
    uint64_t draws; /* draws of each sequence's generator since the sampler was set */
    lcsm_session_stats stats;
    char last_error[512];
};

/* Widths of a model's activations: the input projection and MLP hidden (u),
 * a gated MLP's gate output (hid2, 0 if none), over every layer. */
void lcsm__model_widths(const lcsm_model *m, size_t *u_width, size_t *hid_width, size_t *hid2_width);

/* Elements of one cache (K or V) of attention layer s for B sequences of L positions. */
static inline size_t lcsm__kv_elems(const lcsm_layer_spec *s, int B, int L)
{
    return (size_t)B * (size_t)L * (size_t)s->n_kv_heads * (size_t)s->head_dim;
}

/* Width of layer s's input projection: S streams of D, or q | k | v of its heads. */
static inline size_t lcsm__mixer_in_width(const lcsm_layer_spec *s, int D)
{
    return s->mixer == LCSM_MIXER_HYENA ? (size_t)s->streams * (size_t)D
                                        : (size_t)(s->n_heads + 2 * s->n_kv_heads) * (size_t)s->head_dim;
}

/* Floats of a linear attention layer's state for B sequences. */
static inline size_t lcsm__linattn_state_elems(const lcsm_layer_spec *s, int B)
{
    return (size_t)B * (size_t)s->n_heads * 2 * (size_t)s->feature_dim * ((size_t)s->head_dim + 1);
}

/* The attention op's arguments for a chunk of len rows at pos0 of layer l. */
static inline lcsm_attn_args lcsm__attn_args(const lcsm_layer_spec *s, lcsm_ref qkv, lcsm_ref kc, lcsm_ref vc,
                                             lcsm_ref out, int B, int len, int pos0, int L)
{
    return (lcsm_attn_args){qkv, kc, vc, out, s->n_heads, s->n_kv_heads, s->head_dim, s->rope_base, s->rope_scale,
                            B, len, pos0, L};
}

/* The linear attention op's arguments for a chunk of len rows of layer l. */
static inline lcsm_linattn_args lcsm__linattn_args(const lcsm_model *m, int l, lcsm_ref qkv, lcsm_ref state,
                                                   lcsm_ref out, int B, int len)
{
    const lcsm_layer_spec *s = &m->spec[l];
    return (lcsm_linattn_args){qkv,        m->w[l][LCSM_R_FMAP_Q], m->w[l][LCSM_R_FMAP_K], state, out, s->n_heads,
                               s->head_dim, s->feature_dim,        s->fm_eps,              s->lin_eps, B, len};
}

/* How stage sg runs with G tiled groups (a session's geom.G; the model's
 * n_tiled for a forward without session). */
static inline lcsm_past_kind lcsm__stage_past(const lcsm_stage_spec *sg, int G)
{
    if (sg->group >= 0 && sg->group < G)
        return LCSM_PAST_TILED;
    return sg->filter == LCSM_FILTER_FIR ? LCSM_PAST_FIR : LCSM_PAST_MODAL;
}

/* The stage's filter tensors for a modal or FIR stage (state and ring: the caller's). */
static inline lcsm_hyena_stage lcsm__stage_args(const lcsm_model *m, int l, int i, int G, lcsm_ref state)
{
    const lcsm_stage_spec *sg = &m->spec[l].stage[i];
    const lcsm_ref *w = m->w[l];
    lcsm_hyena_stage a = {.mult = sg->mult, .kind = lcsm__stage_past(sg, G), .group = sg->group};
    if (a.kind == LCSM_PAST_MODAL) {
        a.modal = (lcsm_modal){w[LCSM_R_STAGE(i, LCSM_RS_POLES)], w[LCSM_R_STAGE(i, LCSM_RS_RESIDUES)],
                               w[LCSM_R_STAGE(i, LCSM_RS_SKIP)], sg->n_modes};
        a.state = state;
    } else if (a.kind == LCSM_PAST_FIR) {
        a.fir = (lcsm_fir){w[LCSM_R_STAGE(i, LCSM_RS_TAPS)], w[LCSM_R_STAGE(i, LCSM_RS_SKIP)], state, sg->fir_len};
    }
    return a;
}

/* out = linear(norm(x)): the pre-norm pattern of every block, in the step and
 * the parallel forward alike; one op where the backend has it, else through the
 * scratch xn. */
static inline lcsm_status lcsm__norm_linear(lcsm_backend *be, const lcsm_layer_spec *s, float eps, lcsm_ref x,
                                            lcsm_ref norm_w, lcsm_ref norm_b, lcsm_ref xn, lcsm_ref W, lcsm_ref bias,
                                            lcsm_ref out, int rows, int D, int n_out, int flags)
{
    if (be->ops->norm_linear) {
        lcsm_status st = be->ops->norm_linear(be, s->norm, x, norm_w, norm_b, eps, W, bias, out, rows, D, n_out, flags);
        if (st != LCSM_ERR_UNSUPPORTED)
            return st;
    }
    lcsm_status st = be->ops->norm(be, s->norm, x, norm_w, norm_b, xn, rows, D, eps);
    return st != LCSM_OK ? st : be->ops->linear(be, xn, W, bias, out, rows, D, n_out, flags);
}

/* The MLP half of block l on rows of the residual stream r [rows][D]:
 * r += down(act(up(norm2(r)))) (plain) or r += down(act(W1 x) * W2 x) (gated,
 * W1 and W2 stacked in up), through the scratch xn [rows][D], hid [rows][up
 * width] and, gated, hid2 [rows][d_inner]. */
static inline lcsm_status lcsm__block_mlp(lcsm_backend *be, const lcsm_model *m, int l, lcsm_ref r, lcsm_ref xn,
                                          lcsm_ref hid, lcsm_ref hid2, int rows)
{
    const lcsm_layer_spec *s = &m->spec[l];
    const lcsm_ref *w = m->w[l];
    const int D = m->hp.d_model, DI = s->d_inner;
    if (s->mlp == LCSM_MLP_NONE)
        return LCSM_OK;
    const int gated = s->mlp == LCSM_MLP_GATED;
    lcsm_status st = lcsm__norm_linear(be, s, m->hp.norm_eps, r, w[LCSM_R_NORM2_W], w[LCSM_R_NORM2_B], xn,
                                       w[LCSM_R_UP_W], w[LCSM_R_UP_B], hid, rows, D, gated ? 2 * DI : DI,
                                       gated ? 0 : LCSM_LINEAR_ACT(s->act));
    if (st == LCSM_OK && gated)
        st = be->ops->glu(be, hid, hid2, rows, DI, s->act);
    return st != LCSM_OK ? st
                         : be->ops->linear(be, gated ? hid2 : hid, w[LCSM_R_DOWN_W], w[LCSM_R_DOWN_B], r, rows, DI, D,
                                           LCSM_LINEAR_ACCUMULATE);
}

/* Parallel forward over tokens [B][len] from position 0 (token ids checked by
 * the caller). With a session, also leaves its state as if the tokens had been
 * stepped: histories, short-conv states, and (unless lazy) the prompt's pushes
 * into the accumulators. logits: [B][len][V] if all_positions, else [B][V] of
 * the last position; may be NULL. Errors go to be->last_error. */
lcsm_status lcsm__forward_seq(lcsm_model *m, lcsm_session *s, const int32_t *tokens, int B, int len,
                              float *logits, int all_positions);

/* The one buffer lcsm__forward_seq allocates for these arguments, in bytes (a
 * session continues at its position). */
size_t lcsm__forward_bytes(const lcsm_model *m, const lcsm_session *s, int B, int len, int all_positions);
/* lcsm_model_forward whose scratch would pass the backend's largest buffer:
 * consecutive chunks through a lazy session of its own (src/session.c), every
 * position's logits [batch][len][V]. */
lcsm_status lcsm__forward_in_chunks(lcsm_model *m, const int32_t *tokens, int batch, int len, float *logits);

/* What LCSM_ERR_NUMERIC's messages add. */
#define LCSM_NUMERIC_HINT "the arithmetic overflowed f32 (weights or inputs too large?)"

/* Checks ids against the model's vocabulary; writes a message to dst on failure. */
lcsm_status lcsm__check_tokens(const lcsm_model *m, const int32_t *ids, size_t n, char *dst, size_t cap);

#endif
