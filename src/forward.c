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
        if (ids[i] < 0 || ids[i] >= m->n_vocab)
            return lcsm__fail(dst, cap, LCSM_ERR_TOKEN_RANGE, "token id %d at index %zu is outside [0, %d)",
                              (int)ids[i], i, m->n_vocab);
    return LCSM_OK;
}

#define TRY(call)                                                                                          \
    do {                                                                                                   \
        if ((st = (call)) != LCSM_OK)                                                                      \
            goto done;                                                                                     \
    } while (0)

lcsm_status lcsm__forward_seq(lcsm_model *m, lcsm_session *s, const int32_t *tokens, int B, int len,
                              float *logits, int all_positions)
{
    lcsm_backend *be = m->be;
    const lcsm_backend_ops *op = be->ops;
    const lcsm_model_config *c = &m->cfg;
    const int D = c->d_model, DI = c->d_inner, V = m->n_vocab, G = c->n_layer;
    const float eps = c->layer_norm_epsilon;
    const size_t N = (size_t)B * (size_t)len; /* rows of the activations */
    const size_t BD = (size_t)B * D;
    /* Scratch for this call: activations [N][.], a and y time-major [len][B*D]. */
    const size_t widest = (size_t)(3 * D > DI ? 3 * D : DI);
    const size_t n_r = N * D, n_xn = N * D, n_u = N * widest, n_x0 = N * D, n_a = s ? 0 : (size_t)len * BD,
                 n_y = (size_t)len * BD, n_lg = (all_positions ? N : (size_t)B) * V;
    const size_t total = n_r + n_xn + n_u + n_x0 + n_a + n_y + n_lg;
    lcsm_buf *buf = NULL;
    lcsm_status st = op->alloc(be, total * sizeof(float), &buf);
    if (st != LCSM_OK)
        return st;
    lcsm_ref r = {buf, 0}, xn = lcsm_ref_at(r, n_r), u = lcsm_ref_at(xn, n_xn), x0 = lcsm_ref_at(u, n_u),
             a = lcsm_ref_at(x0, n_x0), y = lcsm_ref_at(a, n_a), lg = lcsm_ref_at(y, n_y);
    /* With a session, a = v*x1 goes straight into the history (group stride G*B*D). */
    const size_t a_stride = s ? (size_t)G * BD : BD;

    TRY(op->embed(be, m->emb, tokens, (int)N, D, r));
    for (int l = 0; l < G; l++) {
        const lcsm_layer *ly = &m->layers[l];
        lcsm_ref a_l = s ? lcsm_ref_at(s->hist, (size_t)l * BD) : a;
        lcsm_ref state = s ? lcsm_ref_at(s->conv_state, (size_t)l * B * 2 * 3 * D) : (lcsm_ref){0};
        lcsm_ref acc = s && s->opt.algo != LCSM_ALGO_LAZY ? lcsm_ref_at(s->acc, (size_t)l * BD) : (lcsm_ref){0};
        TRY(lcsm__ln_linear(be, r, ly->norm1_w, ly->norm1_b, eps, xn, ly->in_w, ly->in_b, u, (int)N, D, 3 * D, 0));
        TRY(op->shortconv_seq(be, u, ly->conv_w, ly->conv_b, B, len, D, x0, a_l, a_stride, state));
        TRY(op->long_conv(be, m->filters, l, B, len, a_l, a_stride, y, BD, acc, s ? s->geom.L : 0));
        TRY(op->gate_seq(be, m->filters, l, B, len, y, BD, a_l, a_stride, x0, xn));
        TRY(op->linear(be, xn, ly->out_w, ly->out_b, r, (int)N, D, D, LCSM_LINEAR_ACCUMULATE));
        TRY(lcsm__block_mlp(be, ly, r, xn, u, (int)N, D, DI, eps));
    }
    if (all_positions) {
        TRY(lcsm__ln_linear(be, r, m->lnf_w, m->lnf_b, eps, xn, m->head, (lcsm_ref){0}, lg, (int)N, D, V, 0));
        if (logits)
            TRY(op->read(be, lg, logits, N * V));
    } else if (logits) {
        /* Only the last position of each sequence: normalise those rows into
         * xn[0 .. B), then one projection. */
        for (int b = 0; b < B; b++) {
            TRY(op->layernorm(be, lcsm_ref_at(r, ((size_t)b * len + len - 1) * D), m->lnf_w, m->lnf_b,
                              lcsm_ref_at(xn, (size_t)b * D), 1, D, eps));
        }
        TRY(op->linear(be, xn, m->head, (lcsm_ref){0}, lg, B, D, V, 0));
        TRY(op->read(be, lg, logits, (size_t)B * V));
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
    if (len > m->cfg.l_max)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_LENGTH,
                          "lcsm_model_forward: length %d exceeds the model's l_max %d", len, m->cfg.l_max);
    lcsm_status st = lcsm__check_tokens(m, tokens, (size_t)batch * len, m->last_error, sizeof m->last_error);
    if (st != LCSM_OK)
        return st;
    st = lcsm__forward_seq(m, NULL, tokens, batch, len, logits, 1);
    return st == LCSM_OK ? st : lcsm__relay(m->last_error, sizeof m->last_error, st, m->be->last_error);
}
