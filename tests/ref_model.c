/*
 * The generic block in plain C, double precision, direct sums, one thread: the
 * readable statement of every family the engine runs, and the oracle the
 * backends are tested against (test_generic). It reads a model's layer table
 * and its host weights (white-box), nothing of the backends.
 *
 * For every layer l, on the residual stream r [T][D] of each sequence:
 *   x = norm1(r)
 *   Hyena mixer: u = W_in x + b_in, S streams of D channels; each stream through
 *     a K-tap causal conv (tap K-1 on the current position); the chain
 *     s = u[S-1]; per stage: s = s * u[mult]; s = (h * s) + dbias * s, with h the
 *     stage's long filter (a causal convolution over time); y = u[0] * s
 *   r += W_out y + b_out
 *   attention mixer: [q; k; v] = W_in x + b_in (heads of hd), q and k rotated
 *     (pairs (j, j + hd/2) by (t / scale) base^(-2j/hd)), k and v stored as the
 *     caches' type; y = softmax(q k^T / sqrt(hd)) v over positions <= t, query
 *     head h on kv head h / (H / Hkv); r += W_out y + b_out
 *   linear attention mixer (Hedgehog): [q; k; v] = W_in x + b_in; per head,
 *     phi(u) = max([softmax(u), softmax(-u)], fm_eps) of u = x_h^T W_f[h];
 *     y_t = phi(q_t) . sum_{s<=t} phi(k_s) v_s / (phi(q_t) . sum_{s<=t} phi(k_s) + eps)
 *     (the parallel form); r += W_out y + b_out
 *   MLP: x = norm2(r); plain: r += W_down act(W_up x + b_up) + b_down;
 *        gated: [g; v] = W_up x, r += W_down (act(g) * v)
 * logits = W_head final_norm(r).
 */
#include "ref_model.h"

#include "safetensors.h"
#include "weights.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A role's tensor as the device holds it, in f64: assembled from its parts
 * (rows row0.. of rows_total), or the family's device form of a mapped tensor
 * (a permutation of the projection's rows, grouped filters, exp of log-poles). */
static double *role(const lcsm_weights *w, int layer, int r, size_t *n_out)
{
    size_t n = 0;
    const lcsm_tensor *first = lcsm__tensor_get(w, layer, r);
    if (first && first->map) {
        n = first->dev_numel ? first->dev_numel : first->numel;
        float *form = lcsm__tensor_device_form(w, first);
        double *out = calloc(n, sizeof *out);
        for (size_t k = 0; k < n; k++)
            out[k] = form[k];
        if (form != first->data)
            lcsm__free(form);
        if (n_out)
            *n_out = n;
        return out;
    }
    for (int i = 0; i < w->n; i++) {
        const lcsm_tensor *t = &w->t[i];
        if (t->layer == layer && t->role == r)
            n = t->rows_total ? t->numel / (size_t)t->shape[0] * (size_t)t->rows_total : t->numel;
    }
    if (!n)
        return NULL;
    double *out = calloc(n, sizeof *out);
    for (int i = 0; i < w->n; i++) {
        const lcsm_tensor *t = &w->t[i];
        if (t->layer != layer || t->role != r)
            continue;
        const size_t row = t->numel / (size_t)t->shape[0];
        for (size_t k = 0; k < t->numel; k++)
            out[(size_t)t->row0 * row + k] = t->data[k];
    }
    if (n_out)
        *n_out = n;
    return out;
}

static void norm(lcsm_norm_kind kind, const double *x, const double *w, const double *b, int D, double eps, double *out)
{
    double mean = 0, ss = 0;
    for (int i = 0; i < D; i++)
        mean += x[i];
    mean /= D;
    double scale;
    if (kind == LCSM_NORM_LAYER) {
        for (int i = 0; i < D; i++)
            ss += (x[i] - mean) * (x[i] - mean);
        scale = 1.0 / sqrt(ss / D + eps);
    } else {
        for (int i = 0; i < D; i++)
            ss += x[i] * x[i];
        mean = 0;
        scale = kind == LCSM_NORM_RMS ? 1.0 / sqrt(ss / D + eps) : 1.0 / (sqrt(ss) / sqrt((double)D) + eps);
    }
    for (int i = 0; i < D; i++)
        out[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0);
}

static double act(lcsm_act a, double v)
{
    switch (a) {
    case LCSM_ACT_GELU_TANH: return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case LCSM_ACT_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case LCSM_ACT_SILU: return v / (1.0 + exp(-v));
    default: return v;
    }
}

/* out[o] = W[o] . x + b[o] */
static void linear(const double *W, const double *b, const double *x, int n_in, int n_out, double *out)
{
    for (int o = 0; o < n_out; o++) {
        double v = b ? b[o] : 0.0;
        for (int i = 0; i < n_in; i++)
            v += W[(size_t)o * n_in + i] * x[i];
        out[o] = v;
    }
}

/* A stage's filter h [D][T] and skip: the family's for tiled kinds; for a modal
 * one h[c][k] = Re sum_n R p^k (real: sum R p^k), for a FIR one its taps. */
static int stage_filter(const lcsm_model *m, int l, int i, int T, float *h, float *db)
{
    const lcsm_weights *w = m->host;
    const lcsm_stage_spec *sg = &m->spec[l].stage[i];
    const int D = m->hp.d_model;
    if (sg->filter == LCSM_FILTER_IMPLICIT || sg->filter == LCSM_FILTER_EXPLICIT) { /* time-major from the family */
        float *hT = malloc((size_t)T * D * sizeof *hT);
        const int ok = hT && m->hp.arch->filter(w, &m->opt, l, i, 0, T, hT, (size_t)D, db) == LCSM_OK;
        for (int c = 0; ok && c < D; c++)
            for (int k = 0; k < T; k++)
                h[(size_t)c * T + k] = hT[(size_t)k * D + c];
        free(hT);
        return ok;
    }
    double *skip = role(w, l, LCSM_R_STAGE(i, LCSM_RS_SKIP), NULL);
    for (int c = 0; c < D; c++)
        db[c] = skip ? (float)skip[c] : 0.0f;
    if (sg->filter == LCSM_FILTER_FIR) {
        double *taps = role(w, l, LCSM_R_STAGE(i, LCSM_RS_TAPS), NULL);
        for (int c = 0; c < D; c++)
            for (int k = 0; k < sg->fir_len && k < T; k++)
                h[(size_t)c * T + k] = (float)taps[(size_t)c * sg->fir_len + k];
        free(taps);
    } else {
        double *p = role(w, l, LCSM_R_STAGE(i, LCSM_RS_POLES), NULL), *R = role(w, l, LCSM_R_STAGE(i, LCSM_RS_RESIDUES), NULL);
        const int cx = sg->filter == LCSM_FILTER_MODAL, N = sg->n_modes;
        for (int c = 0; c < D; c++)
            for (int k = 0; k < T; k++) {
                double v = 0;
                for (int n = 0; n < N; n++) {
                    const size_t q = ((size_t)c * N + n) * (cx ? 2 : 1);
                    if (cx) { /* Re(R p^k) through |p|^k e^{i k arg p} */
                        const double mag = pow(hypot(p[q], p[q + 1]), k), ang = k * atan2(p[q + 1], p[q]);
                        v += R[q] * mag * cos(ang) - R[q + 1] * mag * sin(ang);
                    } else {
                        v += R[q] * pow(p[q], k);
                    }
                }
                h[(size_t)c * T + k] = (float)v;
            }
        free(p);
        free(R);
    }
    free(skip);
    return 1;
}

/* A value as a cache of type dt holds it. */
static double cache_round(double v, lcsm_dtype dt)
{
    if (dt == LCSM_DT_F16)
        return st_f16_to_f32(lcsm__f32_to_f16((float)v));
    if (dt == LCSM_DT_BF16)
        return st_bf16_to_f32(lcsm__f32_to_bf16((float)v));
    return v;
}

/* The attention mixer of layer l over r [T][D]: r += W_out attn(norm1(r)) + b_out. */
static void attention(const lcsm_model *m, int l, lcsm_weight_dtype kv, double *r, int T)
{
    const lcsm_weights *w = m->host;
    const lcsm_layer_spec *s = &m->spec[l];
    const int D = m->hp.d_model, H = s->n_heads, Hkv = s->n_kv_heads, hd = s->head_dim, W = (H + 2 * Hkv) * hd;
    const lcsm_dtype dt = kv == LCSM_WEIGHTS_F16    ? LCSM_DT_F16
                          : kv == LCSM_WEIGHTS_BF16 ? LCSM_DT_BF16
                          : kv == LCSM_WEIGHTS_F32  ? LCSM_DT_F32
                                                    : m->w[l][LCSM_R_IN_W].dt;
    double *n1w = role(w, l, LCSM_R_NORM1_W, NULL), *n1b = role(w, l, LCSM_R_NORM1_B, NULL);
    double *Win = role(w, l, LCSM_R_IN_W, NULL), *bin = role(w, l, LCSM_R_IN_B, NULL);
    double *Wout = role(w, l, LCSM_R_OUT_W, NULL), *bout = role(w, l, LCSM_R_OUT_B, NULL);
    double *qkv = calloc((size_t)T * W, sizeof *qkv), *x = calloc((size_t)D, sizeof *x);
    double *y = calloc((size_t)H * hd, sizeof *y), *o = calloc((size_t)D, sizeof *o), *p = calloc((size_t)T, sizeof *p);
    for (int t = 0; t < T; t++) {
        double *q = qkv + (size_t)t * W;
        norm(s->norm, r + (size_t)t * D, n1w, n1b, D, m->hp.norm_eps, x);
        linear(Win, bin, x, D, W, q);
        for (int h = 0; s->rope_base > 0 && h < H + Hkv; h++) /* q heads, then k heads */
            for (int j = 0; j < hd / 2; j++) {
                const double inv = 1.0f / powf(s->rope_base, (float)(2 * j) / (float)hd); /* f32, as published */
                const double th = t / (double)s->rope_scale * inv, a = q[h * hd + j], b = q[h * hd + j + hd / 2];
                q[h * hd + j] = a * cos(th) - b * sin(th);
                q[h * hd + j + hd / 2] = b * cos(th) + a * sin(th);
            }
        for (int k = H * hd; k < W; k++)
            q[k] = cache_round(q[k], dt);
    }
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            const double *q = qkv + (size_t)t * W + (size_t)h * hd;
            const int g = h / (H / Hkv);
            double mx = -INFINITY, sum = 0;
            for (int u = 0; u <= t; u++) {
                const double *k = qkv + (size_t)u * W + (size_t)(H + g) * hd;
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += q[i] * k[i];
                p[u] = d / sqrt((double)hd);
                mx = p[u] > mx ? p[u] : mx;
            }
            for (int u = 0; u <= t; u++)
                sum += p[u] = exp(p[u] - mx);
            for (int i = 0; i < hd; i++) {
                double v = 0;
                for (int u = 0; u <= t; u++)
                    v += p[u] * qkv[(size_t)u * W + (size_t)(H + Hkv + g) * hd + i];
                y[(size_t)h * hd + i] = v / sum;
            }
        }
        linear(Wout, bout, y, H * hd, D, o);
        for (int c = 0; c < D; c++)
            r[(size_t)t * D + c] += o[c];
    }
    free(qkv), free(x), free(y), free(o), free(p);
    free(n1w), free(n1b), free(Win), free(bin), free(Wout), free(bout);
}

/* phi [2F] of x [hd] through W [hd][F]. */
static void feature_map(const double *x, const double *W, int hd, int F, double eps, double *phi)
{
    double hi = -INFINITY, lo = INFINITY, sp = 0, sn = 0;
    for (int f = 0; f < F; f++) {
        double u = 0;
        for (int d = 0; d < hd; d++)
            u += x[d] * W[(size_t)d * F + f];
        phi[f] = u;
        hi = u > hi ? u : hi;
        lo = u < lo ? u : lo;
    }
    for (int f = 0; f < F; f++) {
        const double u = phi[f];
        sp += phi[f] = exp(u - hi);
        sn += phi[F + f] = exp(lo - u);
    }
    for (int f = 0; f < 2 * F; f++) {
        phi[f] /= f < F ? sp : sn;
        phi[f] = phi[f] > eps ? phi[f] : eps;
    }
}

/* The linear attention mixer of layer l over r [T][D], in its parallel form:
 * the sums over s <= t written out, no recurrence. */
static void linear_attention(const lcsm_model *m, int l, double *r, int T)
{
    const lcsm_weights *w = m->host;
    const lcsm_layer_spec *s = &m->spec[l];
    const int D = m->hp.d_model, H = s->n_heads, hd = s->head_dim, F = s->feature_dim, W = 3 * H * hd;
    double *n1w = role(w, l, LCSM_R_NORM1_W, NULL), *n1b = role(w, l, LCSM_R_NORM1_B, NULL);
    double *Win = role(w, l, LCSM_R_IN_W, NULL), *bin = role(w, l, LCSM_R_IN_B, NULL);
    double *Wout = role(w, l, LCSM_R_OUT_W, NULL), *bout = role(w, l, LCSM_R_OUT_B, NULL);
    double *fq = role(w, l, LCSM_R_FMAP_Q, NULL), *fk = role(w, l, LCSM_R_FMAP_K, NULL);
    double *qkv = calloc((size_t)T * W, sizeof *qkv), *x = calloc((size_t)D, sizeof *x);
    double *pq = calloc((size_t)T * H * 2 * F, sizeof *pq), *pk = calloc((size_t)T * H * 2 * F, sizeof *pk);
    double *y = calloc((size_t)D, sizeof *y), *o = calloc((size_t)D, sizeof *o);
    for (int t = 0; t < T; t++) {
        norm(s->norm, r + (size_t)t * D, n1w, n1b, D, m->hp.norm_eps, x);
        linear(Win, bin, x, D, W, qkv + (size_t)t * W);
        for (int h = 0; h < H; h++) {
            const size_t at = ((size_t)t * H + h) * 2 * F;
            feature_map(qkv + (size_t)t * W + (size_t)h * hd, fq + (size_t)h * hd * F, hd, F, s->fm_eps, pq + at);
            feature_map(qkv + (size_t)t * W + (size_t)(H + h) * hd, fk + (size_t)h * hd * F, hd, F, s->fm_eps, pk + at);
        }
    }
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++)
            for (int d = 0; d < hd; d++) {
                double num = 0, den = 0;
                for (int u = 0; u <= t; u++) {
                    double a = 0;
                    for (int f = 0; f < 2 * F; f++)
                        a += pq[((size_t)t * H + h) * 2 * F + f] * pk[((size_t)u * H + h) * 2 * F + f];
                    num += a * qkv[(size_t)u * W + (size_t)(2 * H + h) * hd + d];
                    den += a;
                }
                y[(size_t)h * hd + d] = num / (den + s->lin_eps);
            }
        linear(Wout, bout, y, D, D, o);
        for (int c = 0; c < D; c++)
            r[(size_t)t * D + c] += o[c];
    }
    free(qkv), free(x), free(pq), free(pk), free(y), free(o);
    free(n1w), free(n1b), free(Win), free(bin), free(Wout), free(bout), free(fq), free(fk);
}

int ref_model_logits(const lcsm_model *m, const int32_t *tokens, int B, int T, lcsm_weight_dtype kv, float *logits)
{
    const lcsm_weights *w = m->host;
    const lcsm_hparams *hp = &m->hp;
    const int D = hp->d_model, V = hp->n_vocab;
    const double eps = hp->norm_eps;
    double *E = role(w, -1, LCSM_G_EMB, NULL), *head = role(w, -1, LCSM_G_HEAD, NULL);
    double *nfw = role(w, -1, LCSM_G_NORMF_W, NULL), *nfb = role(w, -1, LCSM_G_NORMF_B, NULL);
    if (!head)
        head = E; /* tied */
    double *r = calloc((size_t)T * D, sizeof *r), *x = calloc((size_t)D, sizeof *x);
    int ok = 1;
    for (int b = 0; b < B && ok; b++) {
        for (int t = 0; t < T; t++)
            for (int c = 0; c < D; c++)
                r[(size_t)t * D + c] = E[(size_t)tokens[(size_t)b * T + t] * D + c];
        for (int l = 0; l < hp->n_layer; l++) {
            const lcsm_layer_spec *s = &m->spec[l];
            const int DI = s->d_inner;
            if (s->mixer == LCSM_MIXER_ATTN) {
                attention(m, l, kv, r, T);
                goto mlp;
            }
            if (s->mixer == LCSM_MIXER_LINATTN) {
                linear_attention(m, l, r, T);
                goto mlp;
            }
            const int S = s->streams, C = S * D, K = s->short_taps;
            double *n1w = role(w, l, LCSM_R_NORM1_W, NULL), *n1b = role(w, l, LCSM_R_NORM1_B, NULL);
            double *Win = role(w, l, LCSM_R_IN_W, NULL), *bin = role(w, l, LCSM_R_IN_B, NULL);
            double *cw = role(w, l, LCSM_R_SHORT_W, NULL), *cb = role(w, l, LCSM_R_SHORT_B, NULL);
            double *Wout = role(w, l, LCSM_R_OUT_W, NULL), *bout = role(w, l, LCSM_R_OUT_B, NULL);
            double *u = calloc((size_t)T * C, sizeof *u), *uc = calloc((size_t)T * C, sizeof *uc);
            double *sch = calloc((size_t)T * D, sizeof *sch), *nxt = calloc((size_t)T * D, sizeof *nxt);
            /* projections, then the short conv of every stream */
            for (int t = 0; t < T; t++) {
                norm(s->norm, r + (size_t)t * D, n1w, n1b, D, eps, x);
                linear(Win, bin, x, D, C, u + (size_t)t * C);
            }
            for (int t = 0; t < T; t++)
                for (int ch = 0; ch < C; ch++) {
                    double v = K ? (cb ? cb[ch] : 0.0) : u[(size_t)t * C + ch];
                    for (int k = 0; k < K; k++) {
                        int tt = t - (K - 1) + k;
                        if (tt >= 0)
                            v += cw[(size_t)ch * K + k] * u[(size_t)tt * C + ch];
                    }
                    uc[(size_t)t * C + ch] = v;
                }
            /* the chain of stages, each a causal convolution by direct sums */
            for (int t = 0; t < T; t++)
                for (int c = 0; c < D; c++)
                    sch[(size_t)t * D + c] = uc[(size_t)t * C + (size_t)(S - 1) * D + c];
            for (int i = 0; i < s->n_stage; i++) {
                float *h = calloc((size_t)D * T, sizeof *h), *db = calloc((size_t)D, sizeof *db);
                if (!stage_filter(m, l, i, T, h, db))
                    ok = 0;
                const int mult = s->stage[i].mult;
                for (int t = 0; t < T && mult >= 0; t++)
                    for (int c = 0; c < D; c++)
                        sch[(size_t)t * D + c] *= uc[(size_t)t * C + (size_t)mult * D + c];
                for (int t = 0; t < T; t++)
                    for (int c = 0; c < D; c++) {
                        double v = db[c] * sch[(size_t)t * D + c];
                        for (int k = 0; k <= t; k++)
                            v += h[(size_t)c * T + k] * sch[(size_t)(t - k) * D + c];
                        nxt[(size_t)t * D + c] = v;
                    }
                memcpy(sch, nxt, sizeof *sch * (size_t)T * D);
                free(h);
                free(db);
            }
            for (int t = 0; t < T; t++) {
                for (int c = 0; c < D; c++)
                    x[c] = uc[(size_t)t * C + c] * sch[(size_t)t * D + c];
                linear(Wout, bout, x, D, D, nxt); /* nxt: scratch now */
                for (int c = 0; c < D; c++)
                    r[(size_t)t * D + c] += nxt[c];
            }
            free(u), free(uc), free(sch), free(nxt);
            free(n1w), free(n1b), free(Win), free(bin), free(cw), free(cb), free(Wout), free(bout);
        mlp:
            if (s->mlp != LCSM_MLP_NONE) {
                double *n2w = role(w, l, LCSM_R_NORM2_W, NULL), *n2b = role(w, l, LCSM_R_NORM2_B, NULL);
                double *Wup = role(w, l, LCSM_R_UP_W, NULL), *bup = role(w, l, LCSM_R_UP_B, NULL);
                double *Wdn = role(w, l, LCSM_R_DOWN_W, NULL), *bdn = role(w, l, LCSM_R_DOWN_B, NULL);
                const int gated = s->mlp == LCSM_MLP_GATED;
                double *hid = calloc((size_t)2 * DI, sizeof *hid), *y = calloc((size_t)D, sizeof *y);
                for (int t = 0; t < T; t++) {
                    norm(s->norm, r + (size_t)t * D, n2w, n2b, D, eps, x);
                    linear(Wup, bup, x, D, gated ? 2 * DI : DI, hid);
                    for (int k = 0; k < DI; k++)
                        hid[k] = gated ? act(s->act, hid[k]) * hid[DI + k] : act(s->act, hid[k]);
                    linear(Wdn, bdn, hid, DI, D, y);
                    for (int c = 0; c < D; c++)
                        r[(size_t)t * D + c] += y[c];
                }
                free(hid), free(y), free(n2w), free(n2b), free(Wup), free(bup), free(Wdn), free(bdn);
            }
        }
        for (int t = 0; t < T; t++) {
            if (nfw)
                norm(hp->norm_kind, r + (size_t)t * D, nfw, nfb, D, eps, x);
            else
                memcpy(x, r + (size_t)t * D, sizeof *x * (size_t)D);
            for (int v = 0; v < V; v++) {
                double z = 0;
                for (int c = 0; c < D; c++)
                    z += head[(size_t)v * D + c] * x[c];
                logits[((size_t)b * T + t) * V + v] = (float)z;
            }
        }
    }
    if (head != E)
        free(head);
    free(E), free(nfw), free(nfb), free(r), free(x);
    return ok;
}
