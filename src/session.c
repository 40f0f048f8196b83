/*
 * Sessions: the state of `batch` sequences decoded together, and the decode step
 * that walks the layers and then the schedule.
 *
 * One step (DESIGN.md section 2): embed -> per layer [LN, in_proj, hyena_step
 * (short conv, gate, a_t into the history, y_t from the accumulator or the
 * history), out_proj, LN, MLP] -> final LN -> logits; then the step's long-conv
 * work for all layers at once: the flash tile of this step, or the eager push.
 */
#include "engine.h"
#include "schedule.h"

#include <stdlib.h>
#include <string.h>

#define FAIL(s, st, ...) lcsm__fail((s)->last_error, sizeof (s)->last_error, st, __VA_ARGS__)
/* A failed backend call's message (the thread's: the backend's buffer may hold
 * another thread's by now) into the session. */
#define RELAY(s, st) lcsm__relay((s)->last_error, sizeof (s)->last_error, st, lcsm_last_error())

/* LCSM_ERR_NUMERIC for the first non-finite value of logits [B][V] at position
 * pos; the session is failed then (its state holds the values that made it). */
static lcsm_status check_finite(lcsm_session *s, const float *logits, int pos, const char *what)
{
    const size_t V = (size_t)s->model->hp.n_vocab, n = (size_t)s->opt.batch * V;
    size_t i;
    if (lcsm__all_finite(logits, n, &i))
        return LCSM_OK;
    s->broken = 1;
    return FAIL(s, LCSM_ERR_NUMERIC, "%s at position %d: logit %zu of sequence %zu is %g: " LCSM_NUMERIC_HINT
                "; reset the session", what, pos, i % V, i / V, (double)logits[i]);
}

void lcsm_session_options_default(lcsm_session_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->batch = 1;
    opt->algo = LCSM_ALGO_FLASH;
    opt->kv_dtype = LCSM_WEIGHTS_AUTO;
}

/* The type of layer l's K and V caches under the session's kv_dtype. */
static lcsm_dtype kv_dtype(const lcsm_model *m, int l, lcsm_weight_dtype kd)
{
    switch (kd) {
    case LCSM_WEIGHTS_F16: return LCSM_DT_F16;
    case LCSM_WEIGHTS_BF16: return LCSM_DT_BF16;
    case LCSM_WEIGHTS_F32: return LCSM_DT_F32;
    default: return m->w[l][LCSM_R_IN_W].dt;
    }
}

const char *lcsm_algo_name(lcsm_algo a)
{
    switch (a) {
    case LCSM_ALGO_FLASH: return "flash";
    case LCSM_ALGO_LAZY: return "lazy";
    case LCSM_ALGO_EAGER: return "eager";
    case LCSM_ALGO_MODAL: return "modal";
    case LCSM_ALGO_SMOOTH: return "smooth";
    }
    return "?";
}

lcsm_status lcsm_algo_from_name(const char *name, lcsm_algo *out)
{
    static const lcsm_algo all[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER, LCSM_ALGO_MODAL,
                                    LCSM_ALGO_SMOOTH};
    for (size_t i = 0; name && out && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, lcsm_algo_name(all[i]))) {
            *out = all[i];
            return LCSM_OK;
        }
    return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "unknown algorithm '%s' (flash, lazy, eager, modal, smooth)",
                      name ? name : "(null)");
}

void lcsm__model_widths(const lcsm_model *m, size_t *u_width, size_t *hid_width, size_t *hid2_width)
{
    size_t u = 0, hid = 0, hid2 = 0;
    const size_t D = (size_t)m->hp.d_model;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const lcsm_layer_spec *sp = &m->spec[l];
        const size_t di = (size_t)sp->d_inner, up = sp->mlp == LCSM_MLP_GATED ? 2 * di : sp->mlp ? di : 0;
        const size_t in = lcsm__mixer_in_width(sp, (int)D);
        u = in > u ? in : u;
        hid = up > hid ? up : hid;
        hid2 = sp->mlp == LCSM_MLP_GATED && di > hid2 ? di : hid2;
    }
    *u_width = u;
    *hid_width = hid;
    *hid2_width = hid2;
}

lcsm_status lcsm_session_create(lcsm_model *m, const lcsm_session_options *opt_in, lcsm_session **out)
{
    if (out)
        *out = NULL;
    if (!m || !out)
        return lcsm__fail(m ? m->last_error : NULL, m ? sizeof m->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_session_create: NULL argument");
    lcsm_session_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        lcsm_session_options_default(&opt);
    if (opt.max_len == 0)
        opt.max_len = m->hp.l_max;
    if (opt.batch < 1 || opt.batch > 65536 || opt.max_len < 1 ||
        (unsigned)opt.algo > LCSM_ALGO_SMOOTH)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_session_create: batch %d must be in [1, 65536], max_len %d >= 1, algo known",
                          opt.batch, opt.max_len);
    if (opt.max_len > m->hp.l_max)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_LENGTH,
                          "lcsm_session_create: max_len %d exceeds the model's l_max %d", opt.max_len, m->hp.l_max);
    if ((unsigned)opt.kv_dtype > LCSM_WEIGHTS_AUTO)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_session_create: kv_dtype %d is not an lcsm_weight_dtype", (int)opt.kv_dtype);
    for (int l = 0; l < m->hp.n_layer; l++)
        if (m->spec[l].mixer == LCSM_MIXER_ATTN && !m->be->ops->supports(m->be, LCSM_OP_ATTN, kv_dtype(m, l, opt.kv_dtype)))
            return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_UNSUPPORTED,
                              "lcsm_session_create: backend %s has no %s KV caches (layer %d)", m->be->name,
                              lcsm_dtype_name(kv_dtype(m, l, opt.kv_dtype)), l);

    lcsm_session *s = lcsm__calloc(1, sizeof *s);
    if (!s)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_OUT_OF_MEMORY, "session handle");
    s->model = m;
    s->be = m->be;
    s->opt = opt;
    /* a modal session tiles only the groups that are not modal */
    const int G = opt.algo == LCSM_ALGO_MODAL ? m->n_tiled_base : m->n_tiled;
    const int B = opt.batch, D = m->hp.d_model, L = opt.max_len, V = m->hp.n_vocab;
    s->geom = (lcsm_conv_geom){G, B, D, L};
    lcsm_sampler_params_default(&s->sampler);
    lcsm_status st = LCSM_OK;
    if (!(s->conv_state = lcsm__calloc((size_t)m->hp.n_layer, sizeof *s->conv_state)) ||
        !(s->stage_state = lcsm__calloc((size_t)m->hp.n_layer, sizeof *s->stage_state)) ||
        !(s->kv = lcsm__calloc((size_t)m->hp.n_layer, sizeof *s->kv)) ||
        !(s->lin_state = lcsm__calloc((size_t)m->hp.n_layer, sizeof *s->lin_state))) {
        st = FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "session handle");
        goto fail;
    }

    /* hist [L][G*B*D], acc (not lazy); the third buffer: every layer's
     * short-conv state, then the activations of one token, each at a multiple
     * of LCSM_ALIGN. */
    size_t rows = (size_t)G * B * D, n_hist, u_w, hid_w, hid2_w;
    if (lcsm__mul_overflows(rows, (size_t)L, &n_hist) || n_hist > ((size_t)1 << 40)) {
        st = FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "session state of %zu x %d floats is too large", rows, L);
        goto fail;
    }
    size_t n_acc = opt.algo == LCSM_ALGO_LAZY ? 0 : n_hist, n_third = 0;
    /* per layer: the short conv's state, then each stage's that is not tiled */
    size_t (*state_off)[1 + LCSM_MAX_STAGES] = lcsm__calloc((size_t)m->hp.n_layer, sizeof *state_off);
    if (!state_off) {
        st = FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "session handle");
        goto fail;
    }
    for (int l = 0; l < m->hp.n_layer; l++) {
        const lcsm_layer_spec *sp = &m->spec[l];
        state_off[l][0] = n_third;
        if (sp->mixer == LCSM_MIXER_HYENA && sp->short_taps > 1)
            n_third += lcsm_align_up((size_t)B * (sp->short_taps - 1) * sp->streams * D);
        if (sp->mixer == LCSM_MIXER_LINATTN)
            n_third += lcsm_align_up(lcsm__linattn_state_elems(sp, B));
        for (int i = 0; i < sp->n_stage; i++) {
            const lcsm_stage_spec *sg = &sp->stage[i];
            state_off[l][1 + i] = n_third;
            switch (lcsm__stage_past(sg, G)) {
            case LCSM_PAST_MODAL:
                n_third += lcsm_align_up((size_t)B * D * sg->n_modes * (sg->filter == LCSM_FILTER_MODAL ? 2 : 1));
                break;
            case LCSM_PAST_FIR: n_third += lcsm_align_up((size_t)B * D * sg->fir_len); break;
            case LCSM_PAST_TILED: break;
            }
        }
    }
    s->states_floats = n_third;
    lcsm__model_widths(m, &u_w, &hid_w, &hid2_w);
    const size_t act[9] = {(size_t)B * D,     (size_t)B * D, (size_t)B * u_w, (size_t)B * D, (size_t)B * D,
                           (size_t)B * hid_w, (size_t)B * hid2_w, (size_t)B * V, (size_t)B};
    size_t act_off[9];
    for (int i = 0; i < 9; i++) {
        act_off[i] = n_third;
        n_third += lcsm_align_up(act[i]);
    }
    /* the KV caches of attention layers (kv_dtype) */
    size_t kv_bytes = 0;
    for (int l = 0; l < m->hp.n_layer; l++)
        if (m->spec[l].mixer == LCSM_MIXER_ATTN)
            kv_bytes += lcsm_align_bytes(lcsm__kv_elems(&m->spec[l], B, L) *
                                         lcsm_dtype_size(kv_dtype(m, l, opt.kv_dtype))) * 2;
    s->state_bytes = (n_hist + n_acc + n_third) * sizeof(float) + kv_bytes;
    const size_t sizes[4] = {n_hist * sizeof(float), n_acc * sizeof(float), n_third * sizeof(float), kv_bytes};
    static const char *const what[4] = {"long-convolution history", "accumulator", "states and activations",
                                        "KV caches"};
    for (int i = 0; i < 4 && st == LCSM_OK; i++) {
        if (!sizes[i])
            continue;
        st = s->be->ops->alloc(s->be, sizes[i], &s->bufs[i]);
        if (st != LCSM_OK) /* say what did not fit, and how much the whole session needs */
            FAIL(s, st, "session of batch %d, max_len %d: its %s of %.1f MiB (%.1f MiB in all) does not fit: %s", B, L,
                 what[i], (double)sizes[i] / (1 << 20), (double)s->state_bytes / (1 << 20), s->be->last_error);
    }
    if (st != LCSM_OK) {
        lcsm__free(state_off);
        goto fail;
    }
    s->hist = lcsm_f32(s->bufs[0], 0); /* buf NULL when the model has no tiled convolution */
    s->acc = lcsm_f32(s->bufs[1], 0);  /* buf NULL for lazy */
    for (int l = 0; l < m->hp.n_layer; l++) {
        const lcsm_layer_spec *sp = &m->spec[l];
        if (sp->mixer == LCSM_MIXER_HYENA && sp->short_taps > 1)
            s->conv_state[l] = lcsm_f32(s->bufs[2], state_off[l][0]);
        if (sp->mixer == LCSM_MIXER_LINATTN)
            s->lin_state[l] = lcsm_f32(s->bufs[2], state_off[l][0]);
        for (int i = 0; i < sp->n_stage; i++) {
            const lcsm_past_kind k = lcsm__stage_past(&sp->stage[i], G);
            if (k != LCSM_PAST_TILED)
                s->stage_state[l][i] = lcsm_ref_as(lcsm_f32(s->bufs[2], state_off[l][1 + i]),
                                                   sp->stage[i].filter == LCSM_FILTER_MODAL ? LCSM_DT_C64 : LCSM_DT_F32);
        }
    }
    lcsm__free(state_off);
    for (size_t l = 0, off = 0; l < (size_t)m->hp.n_layer; l++)
        if (m->spec[l].mixer == LCSM_MIXER_ATTN) {
            const lcsm_dtype dt = kv_dtype(m, l, opt.kv_dtype);
            const size_t bytes = lcsm_align_bytes(lcsm__kv_elems(&m->spec[l], B, L) * lcsm_dtype_size(dt));
            s->kv[l][0] = (lcsm_ref){s->bufs[3], off, dt};
            s->kv[l][1] = (lcsm_ref){s->bufs[3], off + bytes, dt};
            off += 2 * bytes;
        }
    lcsm_ref *act_refs[9] = {&s->r, &s->xn, &s->u, &s->y, &s->work, &s->hid, &s->hid2, &s->logits, &s->ids};
    for (int i = 0; i < 9; i++)
        *act_refs[i] = lcsm_f32(s->bufs[2], act_off[i]);
    s->ids.dt = LCSM_DT_I32;

    s->logits_host = lcsm__calloc((size_t)B * V, sizeof(float));
    s->sample_scratch = lcsm__calloc((size_t)V, 2 * sizeof(float));
    if (!s->logits_host || !s->sample_scratch) {
        st = FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "session host buffers");
        goto fail;
    }
    /* Spectra for every tile size this session can run and the backend's plans
     * and scratch, made now, not per step. */
    const int flash = opt.algo == LCSM_ALGO_FLASH || opt.algo == LCSM_ALGO_MODAL;
    s->smooth = opt.algo == LCSM_ALGO_SMOOTH;
    s->lag = flash ? m->lag : 1;
    /* such tiles are spread over lag steps (the smooth schedule's: over their
     * slack): lcsm_spread_from's, or what the backend finds worth it */
    s->spread_from = s->smooth ? LCSM_SMOOTH_S0 : lcsm_spread_from(s->lag);
    if (s->spread_from && s->spread_from < m->be->spread_min)
        s->spread_from = m->be->spread_min;
    if (m->n_tiled && (st = lcsm__model_filters(m)) != LCSM_OK) {
        RELAY(s, st);
        goto fail;
    }
    if (m->filters) {
        pthread_mutex_lock(&m->lock);
        const int max_tile = !G              ? 0
                             : s->smooth ? lcsm_smooth_max_tile(0, L, LCSM_SMOOTH_S0)
                             : flash     ? lcsm_schedule_max_tile(0, L)
                                         : 0;
        const int thr = s->be->fft_threshold;
        const int fine_from = s->smooth ? s->be->spread_fine_from : s->be->spread_fine_lagged;
        const unsigned variants =
            s->smooth ? 1u << LCSM_SPEC_NEXT2 | 1u << LCSM_SPEC_NEXT3 : 1u << LCSM_SPEC_LAG;
        /* size by size, so that a long session reports its progress ("tiles") */
        int n = 0, k = 0;
        for (int U = thr; U <= max_tile; U *= 2)
            n++;
        for (int U = thr; st == LCSM_OK && U <= max_tile; U *= 2) {
            st = s->be->ops->filters_prepare(s->be, m->filters, U, variants);
            if (st == LCSM_OK && s->be->ops->session_prepare)
                st = s->be->ops->session_prepare(s->be, m->filters, &s->geom, U, s->spread_from, fine_from);
            if (st == LCSM_OK && opt.progress)
                opt.progress(opt.progress_user, "tiles", ++k, n);
        }
        if (st == LCSM_OK && s->be->ops->session_prepare) /* also what a session without tiles needs */
            st = s->be->ops->session_prepare(s->be, m->filters, &s->geom, max_tile, s->spread_from, fine_from);
        pthread_mutex_unlock(&m->lock);
        if (st != LCSM_OK) {
            RELAY(s, st);
            goto fail;
        }
    }
    st = lcsm_session_reset(s);
    if (st != LCSM_OK)
        goto fail;
    *out = s;
    return LCSM_OK;
fail:
    lcsm__relay(m->last_error, sizeof m->last_error, st, s->last_error);
    lcsm_session_destroy(s);
    return st;
}

void lcsm_session_destroy(lcsm_session *s)
{
    if (!s)
        return;
    for (int i = 0; i < 4; i++)
        if (s->bufs[i])
            s->be->ops->release(s->be, s->bufs[i]);
    lcsm__free(s->conv_state);
    lcsm__free(s->kv);
    lcsm__free(s->lin_state);
    lcsm__free(s->stage_state);
    lcsm__free(s->logits_host);
    lcsm__free(s->sample_scratch);
    lcsm__free(s);
}

const char *lcsm_session_last_error(const lcsm_session *s) { return s ? lcsm__handle_error(s->last_error) : ""; }

int lcsm_session_position(const lcsm_session *s) { return s ? s->pos : 0; }

lcsm_status lcsm_session_reset(lcsm_session *s)
{
    if (!s)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_session_reset: NULL session");
    /* Only the histories, accumulators and per-layer states carry meaning
     * across steps; the activations are overwritten by every step. */
    const lcsm_conv_geom *g = &s->geom;
    const size_t n_hist = (size_t)g->G * g->B * g->D * g->L;
    lcsm_status st = s->hist.buf ? s->be->ops->zero(s->be, s->hist, n_hist) : LCSM_OK;
    if (st == LCSM_OK && s->acc.buf)
        st = s->be->ops->zero(s->be, s->acc, n_hist);
    if (st == LCSM_OK && s->states_floats)
        st = s->be->ops->zero(s->be, lcsm_f32(s->bufs[2], 0), s->states_floats);
    if (st != LCSM_OK)
        return RELAY(s, st);
    s->pos = 0;
    s->origin = 0;
    s->n_pending = 0;
    s->broken = 0;
    memset(&s->stats, 0, sizeof s->stats);
    s->stats.state_bytes = s->state_bytes;
    return lcsm_session_set_sampler(s, &s->sampler);
}

lcsm_status lcsm_session_set_sampler(lcsm_session *s, const lcsm_sampler_params *p)
{
    if (!s || !p)
        return lcsm__fail(s ? s->last_error : NULL, s ? sizeof s->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_session_set_sampler: NULL argument");
    int V = s->model->hp.vocab_size;
    int hi = p->token_hi ? p->token_hi : V;
    /* Padding rows of the embedding are never sampled: hi <= vocab_size. */
    if (!(p->temperature >= 0.0f) || p->top_k < 0 || !(p->top_p > 0.0f && p->top_p <= 1.0f) || p->token_lo < 0 ||
        hi > V || p->token_lo >= hi)
        return FAIL(s, LCSM_ERR_INVALID_ARGUMENT,
                    "sampler: temperature %g >= 0, top_k %d >= 0, top_p %g in (0, 1], 0 <= token_lo %d < "
                    "token_hi %d <= %d needed",
                    p->temperature, p->top_k, p->top_p, p->token_lo, hi, V);
    if (p->n_allowed < 0 || p->n_allowed > LCSM_MAX_ALLOWED || (p->n_allowed && !p->allowed))
        return FAIL(s, LCSM_ERR_INVALID_ARGUMENT, "sampler: n_allowed %d must be in [0, %d] with its ids",
                    p->n_allowed, LCSM_MAX_ALLOWED);
    int in_range = 0;
    for (int k = 0; k < p->n_allowed; k++) {
        if (p->allowed[k] < 0 || p->allowed[k] >= V)
            return FAIL(s, LCSM_ERR_INVALID_ARGUMENT, "sampler: allowed id %d is outside [0, %d)",
                        (int)p->allowed[k], V);
        in_range |= p->allowed[k] >= p->token_lo && p->allowed[k] < hi;
    }
    if (p->n_allowed && !in_range)
        return FAIL(s, LCSM_ERR_INVALID_ARGUMENT, "sampler: no allowed id lies in [%d, %d)", p->token_lo, hi);
    if (p != &s->sampler) {
        const int n = p->n_allowed;
        if (n)
            memmove(s->allowed, p->allowed, (size_t)n * sizeof *s->allowed);
        s->sampler = *p;
    }
    s->sampler.allowed = s->sampler.n_allowed ? s->allowed : NULL;
    s->sampler.token_hi = hi;
    s->draws = 0;
    return LCSM_OK;
}

static lcsm_status check_usable(lcsm_session *s, const void *tokens, int n_new)
{
    if (!s || !tokens)
        return lcsm__fail(s ? s->last_error : NULL, s ? sizeof s->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "NULL session or tokens");
    if (s->broken)
        return FAIL(s, LCSM_ERR_STATE, "the session failed in an earlier step; call lcsm_session_reset");
    if (n_new > s->geom.L - s->pos)
        return FAIL(s, LCSM_ERR_LENGTH, "%d more tokens at position %d exceed the session's max_len %d", n_new,
                    s->pos, s->geom.L);
    return LCSM_OK;
}

/* len tokens of every sequence through the parallel forward at s's position:
 * one forward, or consecutive chunks of it (as lcsm_session_extend would take
 * them) when its scratch would pass the backend's largest buffer. logits: the
 * last position's [B][V], or with `all` every position's [B][len][V]; NULL:
 * none. A failed chunk leaves s broken. */
static lcsm_status forward_chunks(lcsm_session *s, const int32_t *tokens, int len, float *logits, int all,
                                  const char *what)
{
    const int B = s->opt.batch;
    const size_t V = (size_t)s->model->hp.n_vocab;
    int32_t *packed = NULL;
    float *rows = NULL; /* a chunk's logits of every position, [B][n][V] */
    size_t rows_cap = 0;
    lcsm_status st = LCSM_OK;
    for (int c0 = 0; st == LCSM_OK && c0 < len;) {
        int n = len - c0;
        while (n > 1 && lcsm__forward_bytes(s->model, s, B, n, all) > s->be->max_buffer)
            n = (n + 1) / 2;
        const int32_t *chunk = tokens;
        float *out = all || c0 + n == len ? logits : NULL;
        if (n < len) { /* rows [c0, c0 + n) of every sequence, packed */
            if (!packed && !(packed = lcsm__malloc(sizeof *packed * (size_t)B * len))) { /* any later chunk fits */
                st = FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "%s: chunks of %d tokens", what, n);
                break;
            }
            for (int b = 0; b < B; b++)
                memcpy(packed + (size_t)b * n, tokens + (size_t)b * len + c0, sizeof *packed * (size_t)n);
            chunk = packed;
            if (all && logits) { /* each sequence's rows go to their place below */
                if ((size_t)n * B * V > rows_cap) {
                    lcsm__free(rows);
                    rows_cap = (size_t)n * B * V;
                    if (!(rows = lcsm__malloc(sizeof *rows * rows_cap))) {
                        st = FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "%s: logits of chunks of %d tokens", what, n);
                        break;
                    }
                }
                out = rows;
            }
        }
        st = lcsm__forward_seq(s->model, s, chunk, B, n, out, all);
        if (st != LCSM_OK) {
            s->broken = 1;
            st = RELAY(s, st);
            break;
        }
        if (out && out == rows)
            for (int b = 0; b < B; b++)
                memcpy(logits + ((size_t)b * len + c0) * V, rows + (size_t)b * n * V, sizeof *rows * n * V);
        s->pos += n;
        s->origin = s->pos; /* the flash schedule restarts after the prompt (which pushed every earlier input) */
        s->n_pending = 0;
        c0 += n;
    }
    lcsm__free(packed);
    lcsm__free(rows);
    return st;
}

lcsm_status lcsm__forward_in_chunks(lcsm_model *m, const int32_t *tokens, int batch, int len, float *logits)
{
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = batch;
    so.max_len = len;
    so.algo = LCSM_ALGO_LAZY;         /* the history only: nothing pushed for later steps */
    so.kv_dtype = LCSM_WEIGHTS_F32; /* as the one-piece forward's caches */
    lcsm_session *s = NULL;
    lcsm_status st = lcsm_session_create(m, &so, &s);
    if (st != LCSM_OK)
        return st;
    st = forward_chunks(s, tokens, len, logits, 1, "lcsm_model_forward");
    if (st != LCSM_OK)
        lcsm__relay(NULL, 0, st, s->last_error);
    lcsm_session_destroy(s);
    return st;
}

/* A chunk of tokens through the parallel forward at the current position. */
static lcsm_status extend(lcsm_session *s, const int32_t *tokens, int len, float *logits, const char *what)
{
    lcsm_status st = check_usable(s, tokens, len > 0 ? len : 0);
    if (st != LCSM_OK)
        return st;
    if (len < 1)
        return FAIL(s, LCSM_ERR_INVALID_ARGUMENT, "%s: length %d must be >= 1", what, len);
    st = lcsm__check_tokens(s->model, tokens, (size_t)s->opt.batch * len, s->last_error, sizeof s->last_error);
    if (st != LCSM_OK)
        return st;
    const int p_end = s->pos + len;
    double t0 = lcsm__now();
    st = forward_chunks(s, tokens, len, logits, 0, what);
    s->stats.prefill_s += lcsm__now() - t0;
    if (st != LCSM_OK)
        return st;
    if (logits && (st = check_finite(s, logits, p_end - 1, what)) != LCSM_OK)
        return st;
    return LCSM_OK;
}

lcsm_status lcsm_session_prefill(lcsm_session *s, const int32_t *tokens, int len, float *logits)
{
    if (s && tokens && s->pos != 0 && !s->broken)
        return FAIL(s, LCSM_ERR_STATE, "prefill: only at position 0 (now %d); reset first, or extend", s->pos);
    return extend(s, tokens, len, logits, "prefill");
}

lcsm_status lcsm_session_extend(lcsm_session *s, const int32_t *tokens, int len, float *logits)
{
    return extend(s, tokens, len, logits, "extend");
}

/* The step's long-convolution work for all layers at once. */

/* The tile work after the step that processed position t. Flash and modal: the
 * (lagged) schedule's tile, at once when small, else spread over the steps up
 * to its deadline with the other spread tiles in flight; eager: the push of
 * input t into every later output. */
static lcsm_status schedule_work(lcsm_session *s, int t)
{
    lcsm_filters *f = s->model->filters;
    if (!f || s->geom.G == 0)
        return LCSM_OK;
    if (s->opt.algo == LCSM_ALGO_FLASH || s->opt.algo == LCSM_ALGO_MODAL || s->smooth) {
        lcsm_tile tiles[2 * 32];
        lcsm_status st = LCSM_OK;
        const int n_tiles = s->smooth ? lcsm_schedule_smooth(t, s->origin, s->geom.L, LCSM_SMOOTH_S0, tiles, 2 * 32)
                                      : lcsm_schedule_tile_lag(t, s->origin, s->geom.L, s->lag, &tiles[0]);
        for (int k = 0; k < n_tiles && st == LCSM_OK; k++) {
            const lcsm_tile *tile = &tiles[k];
            /* due by the end of the step before its first output */
            if (s->spread_from && tile->U >= s->spread_from && s->n_pending < LCSM_MAX_PENDING) {
                s->pending[s->n_pending++] = (struct lcsm_pending){
                    *tile, 0, s->geom.G * s->geom.B * lcsm_units_per_group(s->be->spread_unit, s->geom.D), t,
                    tile->out0 - 1};
            } else {
                st = lcsm__block_conv(s->be, f, &s->geom, s->hist, s->acc, tile->in0, tile->U, tile->out0,
                                      tile->n_out, lcsm_tile_delay(tile), NULL);
            }
        }
        for (int i = 0; i < s->n_pending && st == LCSM_OK;) {
            struct lcsm_pending *p = &s->pending[i];
            int n = lcsm_spread_units(p->total, p->done, p->start, t, p->deadline);
            const int align = s->be->spread_align;
            /* ending on a boundary of align units within a row group (the CPU's column
             * blocks, OpenCL's FFT batches; both restart at every group) for tiles
             * below the schedule's fine size; larger tiles in single units, where a
             * whole block of theirs costs more than a step */
            const int fine_from = s->smooth ? s->be->spread_fine_from : s->be->spread_fine_lagged;
            if (align > 1 && p->tile.U < fine_from && p->done + n < p->total) {
                const int per = lcsm_units_per_group(s->be->spread_unit, s->geom.D), end = p->done + n;
                const int to = end / per * per + end % per / align * align;
                n = to > p->done ? to - p->done : 0;
            }
            const lcsm_rows part = {p->done, p->done + n};
            if (n > 0)
                st = lcsm__block_conv(s->be, f, &s->geom, s->hist, s->acc, p->tile.in0, p->tile.U, p->tile.out0,
                                      p->tile.n_out, lcsm_tile_delay(&p->tile), &part);
            p->done += n;
            if (p->done == p->total)
                *p = s->pending[--s->n_pending]; /* finished: the last one takes its place */
            else
                i++;
        }
        return st;
    }
    if (s->opt.algo == LCSM_ALGO_EAGER && t + 1 < s->geom.L)
        return lcsm__block_conv(s->be, f, &s->geom, s->hist, s->acc, t, 1, t + 1, s->geom.L - t - 1, s->model->lag,
                                NULL);
    return LCSM_OK;
}

#define TRY(call)                                                                                          \
    do {                                                                                                   \
        if ((st = (call)) != LCSM_OK)                                                                      \
            goto fail;                                                                                     \
    } while (0)

/* Whether this session's sampler runs on the device. */
static int samples_on_device(const lcsm_session *s)
{
    const lcsm_backend *be = s->be;
    const lcsm_sampler_params *p = &s->sampler;
    return be->ops->sample && be->ops->sample_wait && be->ops->embed_dev && be->ops->finish && !p->n_allowed &&
           (p->temperature <= 0.0f || p->token_hi - p->token_lo <= be->sample_max);
}

/* Samples every sequence's next id on the host from logits_host. */
static void sample_on_host(lcsm_session *s, int32_t *next)
{
    const int V = s->model->hp.n_vocab;
    for (int b = 0; b < s->opt.batch; b++) {
        uint64_t rng = lcsm__rng_state(s->sampler.seed, (uint64_t)b, s->draws);
        next[b] = lcsm__sample(s->logits_host + (size_t)b * V, V, &s->sampler, &rng, s->sample_scratch);
    }
    if (s->sampler.temperature > 0.0f)
        s->draws++;
}

/* One decode step. The token ids come from `tokens` (host), or with tokens NULL
 * from s->ids on the device (the previous step's device sample). Then either
 * the logits go to `logits` (or logits_host) and, with `next`, are sampled on
 * the host; or, when `next` is set and the device samples, the ids are sampled
 * into s->ids and copied to `next` (asynchronously unless `wait`). The step's
 * tiles are queued after the sample and before the wait, so the device runs
 * them while the host takes the ids. */
static lcsm_status step(lcsm_session *s, const int32_t *tokens, float *logits, int32_t *next, int wait)
{
    lcsm_model *m = s->model;
    lcsm_backend *be = s->be;
    const lcsm_backend_ops *op = be->ops;
    const lcsm_hparams *hp = &m->hp;
    const int B = s->opt.batch, D = hp->d_model, V = hp->n_vocab;
    const float eps = hp->norm_eps;
    const int t = s->pos;
    const int on_device = next && samples_on_device(s);
    int copying = 0; /* a copy to `next` is queued */
    lcsm_status st;
    double t_mix = 0, t0, t1;

    t0 = lcsm__now();
    const lcsm_ref E = m->g[LCSM_G_EMB];
    TRY(tokens ? op->embed(be, E, tokens, B, D, s->r) : op->embed_dev(be, E, s->ids, B, D, s->r));
    for (int l = 0; l < hp->n_layer; l++) {
        const lcsm_layer_spec *sp = &m->spec[l];
        const lcsm_ref *w = m->w[l];
        const int S = sp->streams;
        if (sp->mixer != LCSM_MIXER_HYENA) {
            TRY(lcsm__norm_linear(be, sp, eps, s->r, w[LCSM_R_NORM1_W], w[LCSM_R_NORM1_B], s->xn, w[LCSM_R_IN_W],
                                  w[LCSM_R_IN_B], s->u, B, D, (int)lcsm__mixer_in_width(sp, D), 0));
            double tm = lcsm__now();
            if (sp->mixer == LCSM_MIXER_ATTN) {
                const lcsm_attn_args aa = lcsm__attn_args(sp, s->u, s->kv[l][0], s->kv[l][1], s->y, B, 1, t, s->geom.L);
                TRY(op->attn(be, &aa));
            } else {
                const lcsm_linattn_args la = lcsm__linattn_args(m, l, s->u, s->lin_state[l], s->y, B, 1);
                TRY(op->linattn(be, &la));
            }
            t_mix += lcsm__now() - tm;
            TRY(op->linear(be, s->y, w[LCSM_R_OUT_W], w[LCSM_R_OUT_B], s->r, B, D, D, LCSM_LINEAR_ACCUMULATE));
            TRY(lcsm__block_mlp(be, m, l, s->r, s->xn, s->hid, s->hid2, B));
            continue;
        }
        TRY(lcsm__norm_linear(be, sp, eps, s->r, w[LCSM_R_NORM1_W], w[LCSM_R_NORM1_B], s->xn, w[LCSM_R_IN_W],
                              w[LCSM_R_IN_B], s->u, B, D, S * D, 0));
        lcsm_hyena_step_args a = {
            .u = s->u,
            .S = S,
            .conv_w = w[LCSM_R_SHORT_W],
            .conv_b = w[LCSM_R_SHORT_B],
            .K = sp->short_taps,
            .state = s->conv_state[l],
            .n_stage = sp->n_stage,
            .hist = s->hist,
            .acc = s->acc,
            .y = s->y,
            .work = s->work,
            .t = t,
            .mode = s->opt.algo == LCSM_ALGO_LAZY ? LCSM_MIX_LAZY : LCSM_MIX_CACHED,
            /* lagged flash: the band's taps past the diagonal, over inputs of the schedule (the prompt's
             * contribution is in the accumulator whole) */
            .band = s->smooth ? lcsm_smooth_band(t, s->origin, LCSM_SMOOTH_S0)
                    : s->lag - 1 < t - s->origin ? s->lag - 1
                                                 : t - s->origin,
        };
        for (int i = 0; i < sp->n_stage; i++)
            a.stage[i] = lcsm__stage_args(m, l, i, s->geom.G, s->stage_state[l][i]);
        double tm = lcsm__now();
        TRY(op->hyena_step(be, m->filters, &s->geom, &a));
        t_mix += lcsm__now() - tm;
        TRY(op->linear(be, s->y, w[LCSM_R_OUT_W], w[LCSM_R_OUT_B], s->r, B, D, D, LCSM_LINEAR_ACCUMULATE));
        TRY(lcsm__block_mlp(be, m, l, s->r, s->xn, s->hid, s->hid2, B));
    }
    if (m->g[LCSM_G_NORMF_W].buf) /* a final norm (StripedHyena's may be absent) */
        TRY(op->norm(be, hp->norm_kind, s->r, m->g[LCSM_G_NORMF_W], m->g[LCSM_G_NORMF_B], s->xn, B, D, eps));
    TRY(op->linear(be, m->g[LCSM_G_NORMF_W].buf ? s->xn : s->r, m->g[LCSM_G_HEAD], (lcsm_ref){0}, s->logits, B, D, V,
                   0));
    if (on_device) {
        copying = 1;
        TRY(op->sample(be, s->logits, B, V, &s->sampler, s->draws, s->ids, next, 0));
        if (s->sampler.temperature > 0.0f)
            s->draws++;
    } else {
        TRY(op->read(be, s->logits, logits ? logits : s->logits_host, (size_t)B * V));
        if ((st = check_finite(s, logits ? logits : s->logits_host, t, "step")) != LCSM_OK)
            return st;
        if (next)
            sample_on_host(s, next);
    }
    t1 = lcsm__now();
    double t2 = t1;
    if (s->opt.algo != LCSM_ALGO_LAZY) {
        TRY(schedule_work(s, t));
        t2 = lcsm__now();
    }
    if (copying && wait)
        TRY(op->sample_wait(be));
    copying = 0;
    s->stats.tiles_s += t2 - t1;
    s->stats.mixer_s += t_mix + (t2 - t1);
    s->stats.dense_s += (t1 - t0) - t_mix + (lcsm__now() - t2); /* the wait: the device's share */
    s->stats.steps++;
    s->pos = t + 1;
    return LCSM_OK;
fail:
    if (copying)
        op->finish(be); /* no copy may target the caller's `next` after the return */
    s->broken = 1;
    return RELAY(s, st);
}

/* The checks of a step with host token ids. */
static lcsm_status check_step(lcsm_session *s, const int32_t *tokens)
{
    lcsm_status st = check_usable(s, tokens, 1);
    if (st == LCSM_OK)
        st = lcsm__check_tokens(s->model, tokens, (size_t)s->opt.batch, s->last_error, sizeof s->last_error);
    return st;
}

lcsm_status lcsm_session_step(lcsm_session *s, const int32_t *tokens, float *logits)
{
    lcsm_status st = check_step(s, tokens);
    return st != LCSM_OK ? st : step(s, tokens, logits, NULL, 1);
}

lcsm_status lcsm_session_step_sample(lcsm_session *s, const int32_t *tokens, int32_t *next)
{
    if (!next)
        return lcsm__fail(s ? s->last_error : NULL, s ? sizeof s->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_session_step_sample: NULL output");
    lcsm_status st = check_step(s, tokens);
    if (st == LCSM_OK)
        st = step(s, tokens, NULL, next, 1);
    for (int b = 0; st == LCSM_OK && b < s->opt.batch; b++)
        if (next[b] < 0) { /* the device sampler's mark of non-finite logits */
            s->broken = 1;
            st = FAIL(s, LCSM_ERR_NUMERIC, "step at position %d: non-finite logits in sequence %d: " LCSM_NUMERIC_HINT
                      "; reset the session", s->pos - 1, b);
        }
    return st;
}

lcsm_status lcsm_generate(lcsm_session *s, const int32_t *prompt, int prompt_len, int n_new, int32_t *out)
{
    if (!s || !prompt || (n_new > 0 && !out) || n_new < 0 || prompt_len < 1)
        return lcsm__fail(s ? s->last_error : NULL, s ? sizeof s->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_generate: NULL argument, prompt_len < 1 or n_new < 0");
    /* The last sampled token is not fed back, so it needs no room in the session. */
    if (n_new > 0 && (long long)prompt_len + n_new - 1 > s->geom.L)
        return FAIL(s, LCSM_ERR_LENGTH, "lcsm_generate: prompt %d + %d new tokens exceed max_len %d", prompt_len,
                    n_new, s->geom.L);
    lcsm_status st = lcsm_session_prefill(s, prompt, prompt_len, s->logits_host);
    if (st != LCSM_OK || n_new == 0)
        return st;
    const int B = s->opt.batch;
    /* ids[i][b]: token i of every sequence. With a device sampler the steps
     * after the first take their ids from the device and copy them here
     * asynchronously, so the loop never waits for the device until the end. */
    int32_t *ids = lcsm__malloc((size_t)n_new * B * sizeof *ids);
    if (!ids)
        return FAIL(s, LCSM_ERR_OUT_OF_MEMORY, "lcsm_generate: token buffer");
    sample_on_host(s, ids);
    const int on_device = samples_on_device(s);
    const lcsm_progress_fn progress = s->opt.progress;
    double last = progress ? lcsm__now() : 0;
    if (progress)
        progress(s->opt.progress_user, "generate", 1, n_new);
    for (int i = 1; i < n_new && st == LCSM_OK; i++) {
        const int32_t *in = on_device && i > 1 ? NULL : ids + (size_t)(i - 1) * B;
        st = step(s, in, NULL, ids + (size_t)i * B, i == n_new - 1);
        if (progress && st == LCSM_OK && (i == n_new - 1 || lcsm__now() - last >= 0.25)) {
            last = lcsm__now(); /* with a device sampler: steps queued (the queue keeps close) */
            progress(s->opt.progress_user, "generate", i + 1, n_new);
        }
    }
    if (on_device && st != LCSM_OK)
        s->be->ops->finish(s->be); /* no copy may still target ids once it is freed */
    /* the device marks a row of non-finite logits with id -1 (its later steps
     * then run on NaN and are not reported separately) */
    for (int i = 1; on_device && st == LCSM_OK && i < n_new; i++)
        for (int b = 0; b < B; b++)
            if (ids[(size_t)i * B + b] < 0) {
                s->broken = 1;
                st = FAIL(s, LCSM_ERR_NUMERIC, "generate at position %d: non-finite logits in sequence %d: "
                          LCSM_NUMERIC_HINT "; reset the session",
                          s->pos - n_new + i, b);
                break;
            }
    for (int b = 0; st == LCSM_OK && b < B; b++)
        for (int i = 0; i < n_new; i++)
            out[(size_t)b * n_new + i] = ids[(size_t)i * B + b];
    lcsm__free(ids);
    return st;
}

lcsm_status lcsm_session_get_stats(const lcsm_session *s, lcsm_session_stats *st)
{
    if (!s || !st)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_session_get_stats: NULL argument");
    *st = s->stats;
    return LCSM_OK;
}
