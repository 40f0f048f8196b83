/*
 * The parallel forward: every position of whole sequences at once, with the
 * long convolutions done by FFT (the backend's long_conv). Used for scoring
 * (lcsm_model_forward) and for prompt prefill, where it also fills the session's
 * state so decoding continues exactly where the prompt ends.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

lcsm_status lcsm__check_tokens(const lcsm_model *m, const int32_t *ids, size_t n, char *dst, size_t cap)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->hp.n_vocab)
            return lcsm__fail(dst, cap, LCSM_ERR_TOKEN_RANGE, "token id %d at index %zu is outside [0, %d)",
                              (int)ids[i], i, m->hp.n_vocab);
    return LCSM_OK;
}

#define TRY(call)                                                                                          \
    do {                                                                                                   \
        if ((st = (call)) != LCSM_OK)                                                                      \
            goto done;                                                                                     \
    } while (0)

/* Scratch of one parallel forward: activations [N = B*len][.], and the long
 * convolutions' signals time-major [len][B*D]. */
typedef struct fwd_scratch {
    lcsm_ref r, xn, u, uc, hid2, a, y, lg, kv, lin; /* kv, lin: a forward's own caches and linear attention state */
} fwd_scratch;

/* The Hyena mixer of layer l over whole sequences: xn = the gated output
 * [N][D] (the input of out_proj). With a session, every tiled stage's input
 * goes into its history (group stride G*B*D) and, unless lazy, the prompt's
 * pushes into its accumulator; a modal stage leaves its state, a FIR stage its
 * ring, the short conv its state. */
static lcsm_status hyena_seq(lcsm_model *m, lcsm_session *s, const fwd_scratch *x, int l, int B, int len)
{
    lcsm_backend *be = m->be;
    const lcsm_backend_ops *op = be->ops;
    const lcsm_layer_spec *sp = &m->spec[l];
    const lcsm_ref *w = m->w[l];
    const int D = m->hp.d_model, S = sp->streams, G = s ? s->geom.G : m->n_tiled;
    const int p0 = s ? s->pos : 0; /* a continued prompt's first position */
    const size_t BD = (size_t)B * D, hist_stride = (size_t)G * BD;
    lcsm_status st = LCSM_OK;
    lcsm_ref uc = x->u;
    if (sp->short_taps > 0) {
        uc = x->uc;
        st = op->shortconv_seq(be, x->u, w[LCSM_R_SHORT_W], w[LCSM_R_SHORT_B], sp->short_taps, B, len, S * D, uc,
                               s ? s->conv_state[l] : (lcsm_ref){0});
    }
    /* stream j of the projection as a [B][len][D] signal */
#define STREAM(j) lcsm_seq_rows(uc, len, S * D, (j) * D)
    const lcsm_seq none = {{0}, 0, 0};
    /* Stage i's input: its history with a session and a tiled stage, else scratch. */
    lcsm_seq in[LCSM_MAX_STAGES];
    lcsm_hyena_stage args[LCSM_MAX_STAGES];
    for (int i = 0; i < sp->n_stage; i++) {
        args[i] = lcsm__stage_args(m, l, i, G, s ? s->stage_state[l][i] : (lcsm_ref){0});
        in[i] = s && args[i].kind == LCSM_PAST_TILED
                    ? lcsm_seq_time(lcsm_ref_at(s->hist, (size_t)p0 * hist_stride + (size_t)args[i].group * BD),
                                    hist_stride, D)
                    : lcsm_seq_time(lcsm_ref_at(x->a, (size_t)i * len * BD), BD, D);
    }
    /* A tiled stage convolves the whole history [0, p0 + len) (a chunk after
     * the first sees every earlier input exactly): y holds p0 + len rows, the
     * chunk's from row p0. */
    const lcsm_seq y = lcsm_seq_time(lcsm_ref_at(x->y, (size_t)p0 * BD), BD, D);
    if (st == LCSM_OK) /* the chain's input, times the first stage's multiplier */
        st = op->mul_seq(be, STREAM(S - 1), sp->stage[0].mult >= 0 ? STREAM(sp->stage[0].mult) : none, in[0], B, len,
                         D);
    for (int i = 0; i < sp->n_stage && st == LCSM_OK; i++) {
        const lcsm_hyena_stage *a = &args[i];
        switch (a->kind) {
        case LCSM_PAST_TILED: {
            const lcsm_ref acc =
                s && s->opt.algo != LCSM_ALGO_LAZY ? lcsm_ref_at(s->acc, (size_t)a->group * BD) : (lcsm_ref){0};
            /* from row 0 of the history (the chunk's rows start at p0) */
            const lcsm_ref hist0 = s ? lcsm_ref_at(s->hist, (size_t)a->group * BD) : in[i].r;
            st = op->long_conv(be, m->filters, a->group, B, p0 + len, hist0, in[i].st, x->y, BD, acc,
                               s ? s->geom.L : 0);
            break;
        }
        case LCSM_PAST_MODAL: st = op->modal_seq(be, &a->modal, a->state, B, len, D, in[i], y); break;
        case LCSM_PAST_FIR: st = op->fir_seq(be, &a->fir, p0, B, len, D, in[i], y); break;
        }
        if (st != LCSM_OK)
            break;
        /* s = y (+ dbias a for a tiled stage), times the next stage's multiplier
         * into its input, or the post gate into the output */
        const int last = i + 1 == sp->n_stage, mult = last ? 0 : sp->stage[i + 1].mult;
        const lcsm_seq m_seq = mult >= 0 ? STREAM(mult) : none;
        const lcsm_seq out = last ? lcsm_seq_rows(x->xn, len, D, 0) : in[i + 1];
        st = a->kind == LCSM_PAST_TILED ? op->gate_seq(be, m->filters, a->group, B, len, y, in[i], m_seq, out)
                                        : op->mul_seq(be, y, m_seq, out, B, len, D);
    }
#undef STREAM
    return st;
}

/* The forward's scratch, in floats: n[] the parts (fwd_scratch's order), *kv_w
 * the width of one attention cache of a session-less forward; returns the total. */
static size_t scratch_floats(const lcsm_model *m, const lcsm_session *s, int B, int len, int all_positions,
                             size_t n[10], size_t *kv_out)
{
    const lcsm_hparams *hp = &m->hp;
    const int D = hp->d_model, V = hp->n_vocab, L = hp->n_layer;
    const size_t N = (size_t)B * (size_t)len; /* rows of the activations */
    const size_t BD = (size_t)B * D;
    size_t u_w, hid_w, hid2_w, uc_w = 0, kv_w = 0, lin_w = 0;
    int max_stage = 0, untiled = 0;
    lcsm__model_widths(m, &u_w, &hid_w, &hid2_w);
    for (int l = 0; l < L; l++) {
        const lcsm_layer_spec *sp = &m->spec[l];
        if (sp->short_taps > 0 && (size_t)sp->streams * D > uc_w)
            uc_w = (size_t)sp->streams * D;
        max_stage = sp->n_stage > max_stage ? sp->n_stage : max_stage;
        for (int i = 0; i < sp->n_stage; i++)
            untiled |= lcsm__stage_past(&sp->stage[i], s ? s->geom.G : m->n_tiled) != LCSM_PAST_TILED;
        if (sp->mixer == LCSM_MIXER_ATTN && !s && lcsm__kv_elems(sp, B, len) > kv_w)
            kv_w = lcsm__kv_elems(sp, B, len);
        if (sp->mixer == LCSM_MIXER_LINATTN && !s && lcsm__linattn_state_elems(sp, B) > lin_w)
            lin_w = lcsm__linattn_state_elems(sp, B);
    }
    /* u holds the input projection, then the MLP's hidden layer */
    const size_t widest = u_w > hid_w ? u_w : hid_w;
    /* stage inputs: in scratch unless a session's history holds them all; y:
     * the whole prefix of a continued prompt */
    const int p0 = s ? s->pos : 0;
    const size_t parts[10] = {N * D, N * D, N * widest, N * uc_w, N * hid2_w,
                              s && !untiled ? 0 : (size_t)max_stage * len * BD, (size_t)(p0 + len) * BD,
                              (all_positions ? N : (size_t)B) * V, 2 * kv_w, lin_w};
    size_t total = 0;
    for (int i = 0; i < 10; i++)
        total += n[i] = parts[i];
    *kv_out = kv_w;
    return total;
}

size_t lcsm__forward_bytes(const lcsm_model *m, const lcsm_session *s, int B, int len, int all_positions)
{
    size_t n[10], kv_w;
    return scratch_floats(m, s, B, len, all_positions, n, &kv_w) * sizeof(float);
}

lcsm_status lcsm__forward_seq(lcsm_model *m, lcsm_session *s, const int32_t *tokens, int B, int len,
                              float *logits, int all_positions)
{
    lcsm_backend *be = m->be;
    const lcsm_backend_ops *op = be->ops;
    const lcsm_hparams *hp = &m->hp;
    const int D = hp->d_model, V = hp->n_vocab, L = hp->n_layer;
    const float eps = hp->norm_eps;
    const size_t N = (size_t)B * (size_t)len; /* rows of the activations */
    const size_t BD = (size_t)B * D;
    const int p0 = s ? s->pos : 0;
    size_t n[10], kv_w;
    const size_t total = scratch_floats(m, s, B, len, all_positions, n, &kv_w);
    lcsm_buf *buf = NULL;
    lcsm_status st = op->alloc(be, total * sizeof(float), &buf);
    if (st != LCSM_OK)
        return st;
    fwd_scratch x;
    lcsm_ref *refs[10] = {&x.r, &x.xn, &x.u, &x.uc, &x.hid2, &x.a, &x.y, &x.lg, &x.kv, &x.lin};
    for (size_t i = 0, off = 0; i < 10; off += n[i++])
        *refs[i] = lcsm_f32(buf, off);

    /* A continued prompt pushes the whole history again: the accumulators'
     * later rows start over. */
    if (s && p0 > 0 && s->acc.buf && p0 + len < s->geom.L)
        TRY(op->zero(be, lcsm_ref_at(s->acc, (size_t)(p0 + len) * s->geom.G * BD),
                     (size_t)(s->geom.L - p0 - len) * s->geom.G * BD));
    TRY(op->embed(be, m->g[LCSM_G_EMB], tokens, (int)N, D, x.r));
    for (int l = 0; l < L; l++) {
        const lcsm_layer_spec *sp = &m->spec[l];
        const lcsm_ref *w = m->w[l];
        TRY(lcsm__norm_linear(be, sp, eps, x.r, w[LCSM_R_NORM1_W], w[LCSM_R_NORM1_B], x.xn, w[LCSM_R_IN_W],
                              w[LCSM_R_IN_B], x.u, (int)N, D, (int)lcsm__mixer_in_width(sp, D), 0));
        if (sp->mixer == LCSM_MIXER_ATTN) { /* the session's caches, or scratch ones of this forward (f32) */
            const lcsm_ref kc = s ? s->kv[l][0] : x.kv, vc = s ? s->kv[l][1] : lcsm_ref_at(x.kv, kv_w);
            const lcsm_attn_args aa = lcsm__attn_args(sp, x.u, kc, vc, x.xn, B, len, p0, s ? s->geom.L : len);
            TRY(op->attn(be, &aa));
        } else if (sp->mixer == LCSM_MIXER_LINATTN) { /* the session's state, or this forward's from zero */
            if (!s)
                TRY(op->zero(be, x.lin, lcsm__linattn_state_elems(sp, B)));
            const lcsm_linattn_args la = lcsm__linattn_args(m, l, x.u, s ? s->lin_state[l] : x.lin, x.xn, B, len);
            TRY(op->linattn(be, &la));
        } else {
            TRY(hyena_seq(m, s, &x, l, B, len));
        }
        TRY(op->linear(be, x.xn, w[LCSM_R_OUT_W], w[LCSM_R_OUT_B], x.r, (int)N, D, D, LCSM_LINEAR_ACCUMULATE));
        TRY(lcsm__block_mlp(be, m, l, x.r, x.xn, x.u, x.hid2, (int)N));
    }
    const lcsm_norm_kind fn = hp->norm_kind;
    const lcsm_ref nw = m->g[LCSM_G_NORMF_W], nb = m->g[LCSM_G_NORMF_B], head = m->g[LCSM_G_HEAD];
    if (all_positions) {
        if (nw.buf)
            TRY(op->norm(be, fn, x.r, nw, nb, x.xn, (int)N, D, eps));
        TRY(op->linear(be, nw.buf ? x.xn : x.r, head, (lcsm_ref){0}, x.lg, (int)N, D, V, 0));
        if (logits)
            TRY(op->read(be, x.lg, logits, N * V));
    } else if (logits) {
        /* Only the last position of each sequence: normalise those rows into
         * xn[0 .. B), then one projection. */
        for (int b = 0; b < B; b++) {
            const lcsm_ref row = lcsm_ref_at(x.r, ((size_t)b * len + len - 1) * D), dst = lcsm_ref_at(x.xn, (size_t)b * D);
            TRY(nw.buf ? op->norm(be, fn, row, nw, nb, dst, 1, D, eps) : op->mul_seq(be, lcsm_seq_rows(row, 1, D, 0),
                                                                               (lcsm_seq){{0}, 0, 0},
                                                                               lcsm_seq_rows(dst, 1, D, 0), 1, 1, D));
        }
        TRY(op->linear(be, x.xn, head, (lcsm_ref){0}, x.lg, B, D, V, 0));
        TRY(op->read(be, x.lg, logits, (size_t)B * V));
    }
done:
    op->release(be, buf);
    return st;
}

lcsm_status lcsm_model_forward(lcsm_model *m, const int32_t *tokens, int batch, int len, float *logits)
{
    if (!m || !tokens || !logits)
        return lcsm__fail(m ? m->last_error : NULL, m ? sizeof m->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_model_forward: NULL argument");
    if (batch < 1 || len < 1)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_model_forward: batch %d and len %d must be >= 1", batch, len);
    if (len > m->hp.l_max)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_LENGTH,
                          "lcsm_model_forward: length %d exceeds the model's l_max %d", len, m->hp.l_max);
    lcsm_status st = lcsm__check_tokens(m, tokens, (size_t)batch * len, m->last_error, sizeof m->last_error);
    if (st != LCSM_OK)
        return st;
    if (m->n_tiled && (st = lcsm__model_filters(m)) != LCSM_OK)
        return lcsm__relay(m->last_error, sizeof m->last_error, st, lcsm_last_error());
    st = lcsm__forward_bytes(m, NULL, batch, len, 1) > m->be->max_buffer
             ? lcsm__forward_in_chunks(m, tokens, batch, len, logits)
             : lcsm__forward_seq(m, NULL, tokens, batch, len, logits, 1);
    if (st != LCSM_OK)
        return lcsm__relay(m->last_error, sizeof m->last_error, st, lcsm_last_error());
    const size_t V = (size_t)m->hp.n_vocab;
    size_t i;
    if (!lcsm__all_finite(logits, (size_t)batch * len * V, &i))
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_NUMERIC,
                          "lcsm_model_forward: logit %zu at position %zu of sequence %zu is %g: " LCSM_NUMERIC_HINT, i % V, i / V % (size_t)len,
                          i / V / (size_t)len, (double)logits[i]);
    return LCSM_OK;
}
