#include "weights.h"
#include "internal.h"
#include "safetensors.h"
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

/* Shape symbols, resolved against the config. */
enum { S_1 = -1, S_3 = -2, S_D = -3, S_3D = -4, S_DI = -5, S_V = -6, S_F = -7, S_E = -8, S_LM = -9 };

/* Random initialisation rules. Scales follow the reference training code closely
 * enough to give healthy activations; exact equality with it is not the point. */
enum {
    I_LINEAR,  /* N(0, 1/fan_in) */
    I_BIAS,    /* N(0, 0.02^2) */
    I_LN_W,    /* 1 + N(0, 0.1^2) */
    I_LN_B,    /* N(0, 0.1^2) */
    I_CONV,    /* N(0, 0.5^2) */
    I_UNIT,    /* N(0, 1) */
    I_EMB,     /* N(0, 0.5^2) */
    I_FLIN0,   /* first implicit-filter Linear: N(0, 1) so the Sin has work */
    I_POS_Z,   /* hyena-dna PositionalEmbedding z */
    I_POS_T,   /* t = linspace(0, 1, l_max) */
    I_FREQ,    /* activation_freq * (1 + N(0, 0.1^2)) */
    I_DELTAS   /* linspace(log(1e-2)/1.5, log(1e-2)/0.3, D) */
};

typedef struct row {
    int kind;
    const char *name; /* per layer: after "backbone.layers.{i}." */
    int ndim;
    int shape[3];
    int init;
    int optional;
} row;

static const row global_rows[W_GLOBAL_COUNT] = {
    {W_EMB, "backbone.embeddings.word_embeddings.weight", 2, {S_V, S_D}, I_EMB, 0},
    {W_LNF_W, "backbone.ln_f.weight", 1, {S_D}, I_LN_W, 0},
    {W_LNF_B, "backbone.ln_f.bias", 1, {S_D}, I_LN_B, 0},
};

static const row layer_rows[W_FLIN] = {
    {W_NORM1_W, "norm1.weight", 1, {S_D}, I_LN_W, 0},
    {W_NORM1_B, "norm1.bias", 1, {S_D}, I_LN_B, 0},
    {W_IN_W, "mixer.in_proj.weight", 2, {S_3D, S_D}, I_LINEAR, 0},
    {W_IN_B, "mixer.in_proj.bias", 1, {S_3D}, I_BIAS, 0},
    {W_CONV_W, "mixer.short_filter.weight", 3, {S_3D, S_1, S_3}, I_CONV, 0},
    {W_CONV_B, "mixer.short_filter.bias", 1, {S_3D}, I_BIAS, 0},
    {W_OUT_W, "mixer.out_proj.weight", 2, {S_D, S_D}, I_LINEAR, 0},
    {W_OUT_B, "mixer.out_proj.bias", 1, {S_D}, I_BIAS, 0},
    {W_FBIAS, "mixer.filter_fn.bias", 1, {S_D}, I_UNIT, 0},
    {W_Z, "mixer.filter_fn.pos_emb.z", 3, {S_1, S_LM, S_E}, I_POS_Z, 0},
    {W_T, "mixer.filter_fn.pos_emb.t", 3, {S_1, S_LM, S_1}, I_POS_T, 0},
    {W_FREQ, "mixer.filter_fn.implicit_filter.1.freq", 2, {S_1, S_F}, I_FREQ, 1},
    {W_DELTAS, "mixer.filter_fn.modulation.deltas", 3, {S_1, S_1, S_D}, I_DELTAS, 0},
    {W_NORM2_W, "norm2.weight", 1, {S_D}, I_LN_W, 0},
    {W_NORM2_B, "norm2.bias", 1, {S_D}, I_LN_B, 0},
    {W_FC1_W, "mlp.fc1.weight", 2, {S_DI, S_D}, I_LINEAR, 0},
    {W_FC1_B, "mlp.fc1.bias", 1, {S_DI}, I_BIAS, 0},
    {W_FC2_W, "mlp.fc2.weight", 2, {S_D, S_DI}, I_LINEAR, 0},
    {W_FC2_B, "mlp.fc2.bias", 1, {S_D}, I_BIAS, 0},
};

static int64_t resolve(int sym, const lcsm_model_config *c, int n_vocab)
{
    switch (sym) {
    case S_1: return 1;
    case S_3: return 3;
    case S_D: return c->d_model;
    case S_3D: return 3 * (int64_t)c->d_model;
    case S_DI: return c->d_inner;
    case S_V: return n_vocab;
    case S_F: return c->filter_order;
    case S_E: return c->emb_dim;
    case S_LM: return c->l_max;
    default: return sym;
    }
}

static void set_row(lcsm_tensor *t, const lcsm_model_config *c, int n_vocab, const char *prefix,
                    const char *name, int ndim, const int *shape, int init, int optional)
{
    snprintf(t->name, sizeof t->name, "%s%s", prefix, name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = resolve(shape[d], c, n_vocab);
        t->numel *= (size_t)t->shape[d];
    }
    t->init = init;
    t->optional = optional;
}

int lcsm__flin_weight(const lcsm_weights *w, int layer, int j)
{
    return lcsm__widx(w, layer, W_FLIN) + 2 * j;
}

int lcsm__flin_bias(const lcsm_weights *w, int layer, int j)
{
    return j <= w->cfg.num_inner_mlps ? lcsm__widx(w, layer, W_FLIN) + 2 * j + 1 : -1;
}

lcsm_weights *lcsm__weights_alloc(const lcsm_model_config *c)
{
    lcsm_weights *w = lcsm__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = *c;
    w->n_vocab = lcsm__config_n_vocab(c);
    int n_flin = c->num_inner_mlps + 2; /* Linears of the implicit filter */
    w->per_layer = W_FLIN + 2 * n_flin - 1;
    w->n = W_GLOBAL_COUNT + c->n_layer * w->per_layer;
    w->t = lcsm__calloc((size_t)w->n, sizeof *w->t);
    if (!w->t) {
        lcsm__free(w);
        return NULL;
    }
    for (int k = 0; k < W_GLOBAL_COUNT; k++)
        set_row(&w->t[k], c, w->n_vocab, "", global_rows[k].name, global_rows[k].ndim, global_rows[k].shape,
                global_rows[k].init, 0);
    for (int l = 0; l < c->n_layer; l++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "backbone.layers.%d.", l);
        for (int k = 0; k < W_FLIN; k++) {
            const row *r = &layer_rows[k];
            set_row(&w->t[lcsm__widx(w, l, k)], c, w->n_vocab, prefix, r->name, r->ndim, r->shape, r->init,
                    r->optional);
        }
        for (int j = 0; j < n_flin; j++) {
            char name[80];
            int in = j == 0 ? S_E : S_F, out = j == n_flin - 1 ? S_D : S_F;
            int shape[2] = {out, in};
            snprintf(name, sizeof name, "mixer.filter_fn.implicit_filter.%d.weight", 2 * j);
            set_row(&w->t[lcsm__flin_weight(w, l, j)], c, w->n_vocab, prefix, name, 2, shape,
                    j == 0 ? I_FLIN0 : I_LINEAR, 0);
            if (lcsm__flin_bias(w, l, j) >= 0) {
                snprintf(name, sizeof name, "mixer.filter_fn.implicit_filter.%d.bias", 2 * j);
                set_row(&w->t[lcsm__flin_bias(w, l, j)], c, w->n_vocab, prefix, name, 1, &shape[0], I_BIAS, 0);
            }
        }
    }
    for (int i = 0; i < w->n; i++) {
        w->t[i].data = lcsm__calloc(w->t[i].numel, sizeof(float));
        if (!w->t[i].data) {
            lcsm__weights_free(w);
            return NULL;
        }
    }
    return w;
}

void lcsm__weights_free(lcsm_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        lcsm__free(w->t[i].data);
    lcsm__free(w->t);
    lcsm__free(w);
}

/* ---- deterministic random numbers: splitmix64 + Box-Muller */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double normal(uint64_t *s)
{
    double u1 = ((double)(splitmix(s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(splitmix(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void init_tensor(lcsm_tensor *t, const lcsm_model_config *c, uint64_t seed)
{
    uint64_t s = seed;
    double fan_in = t->ndim >= 2 ? (double)t->shape[t->ndim - 1] : 1.0;
    size_t L = (size_t)c->l_max;
    for (size_t i = 0; i < t->numel; i++) {
        double v = 0;
        switch (t->init) {
        case I_LINEAR: v = normal(&s) / sqrt(fan_in); break;
        case I_BIAS: v = 0.02 * normal(&s); break;
        case I_LN_W: v = 1.0 + 0.1 * normal(&s); break;
        case I_LN_B: v = 0.1 * normal(&s); break;
        case I_CONV: v = 0.5 * normal(&s); break;
        case I_UNIT: v = normal(&s); break;
        case I_EMB: v = 0.5 * normal(&s); break;
        case I_FLIN0: v = normal(&s); break;
        case I_POS_T: v = L > 1 ? (double)i / (double)(L - 1) : 0.0; break;
        case I_FREQ: v = c->activation_freq * (1.0 + 0.1 * normal(&s)); break;
        case I_DELTAS: {
            double lo = log(1e-2) / 1.5, hi = log(1e-2) / 0.3;
            v = t->numel > 1 ? lo + (hi - lo) * (double)i / (double)(t->numel - 1) : lo;
            break;
        }
        case I_POS_Z: {
            /* [pos][feature]: feature 0 is t; then `bands` cos and `bands` -sin of
             * f_k * w with w = 2 pi pos / L and f = linspace(1e-4, bands - 1, bands). */
            size_t E = (size_t)c->emb_dim, pos = i / E, f = i % E, bands = (E - 1) / 2;
            double w = 6.283185307179586 * (double)pos / (double)L;
            if (f == 0) {
                v = L > 1 ? (double)pos / (double)(L - 1) : 0.0;
            } else if (f <= 2 * bands) {
                size_t k = (f - 1) % bands;
                double fk = bands > 1 ? 1e-4 + (double)k * ((double)bands - 1 - 1e-4) / (double)(bands - 1) : 1e-4;
                v = f <= bands ? cos(fk * w) : -sin(fk * w);
            }
            break;
        }
        }
        t->data[i] = (float)v;
    }
}

void lcsm__weights_randomise(lcsm_weights *w, uint64_t seed)
{
    for (int i = 0; i < w->n; i++)
        init_tensor(&w->t[i], &w->cfg, seed * 0x100000001B3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull);
}

/* Shapes agree when they are equal after dropping every dimension of size 1 (a
 * checkpoint may store freq as (1, F) or (F), the conv taps as (3D, 1, 3) or (3D, 3)). */
static int same_shape(const int64_t *a, int na, const int64_t *b, int nb)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < na && a[i] == 1)
            i++;
        while (j < nb && b[j] == 1)
            j++;
        if (i == na || j == nb)
            return i == na && j == nb;
        if (a[i++] != b[j++])
            return 0;
    }
}

static void shape_text(const int64_t *s, int n, char *buf, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, ")");
}

lcsm_status lcsm__weights_load(lcsm_weights *w, const char *path, char *err, size_t cap)
{
    st_file f;
    lcsm_status st = st_open(path, &f, err, cap);
    if (st != LCSM_OK)
        return st;
    /* The checkpoint's prefix: HF-style "", Lightning "model.", HF LM heads "hyena.". */
    static const char *const prefixes[] = {"", "model.", "hyena.", "model.hyena."};
    const char *prefix = NULL;
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0] && !prefix; p++) {
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefixes[p], w->t[W_EMB].name);
        if (st_find(&f, name))
            prefix = prefixes[p];
    }
    if (!prefix) {
        st_close(&f);
        return ERR(LCSM_ERR_MISSING_TENSOR, "%s: tensor '%s' (with or without a model./hyena. prefix) not found",
                   path, w->t[W_EMB].name);
    }
    /* A file with more layers than the config would otherwise load as a silently
     * truncated model. */
    char layer_prefix[64];
    int plen = snprintf(layer_prefix, sizeof layer_prefix, "%sbackbone.layers.", prefix);
    for (int i = 0; i < f.n; i++) {
        const char *name = f.t[i].name;
        char *end;
        if (strncmp(name, layer_prefix, (size_t)plen) != 0)
            continue;
        long layer = strtol(name + plen, &end, 10);
        if (end != name + plen && *end == '.' && (layer < 0 || layer >= w->cfg.n_layer)) {
            st = ERR(LCSM_ERR_SHAPE, "%s: tensor '%s' belongs to layer %ld, the config has %d layers", path, name,
                     layer, w->cfg.n_layer);
            st_close(&f); /* after the message: name lives in f */
            return st;
        }
    }
    for (int i = 0; i < w->n && st == LCSM_OK; i++) {
        lcsm_tensor *t = &w->t[i];
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const st_tensor *s = st_find(&f, name);
        if (!s) {
            if (t->optional && t->init == I_FREQ) {
                for (size_t k = 0; k < t->numel; k++)
                    t->data[k] = w->cfg.activation_freq;
                continue;
            }
            st = ERR(LCSM_ERR_MISSING_TENSOR, "%s: tensor '%s' not found", path, name);
            break;
        }
        if (!same_shape(s->shape, s->ndim, t->shape, t->ndim)) {
            char have[96], want[96];
            shape_text(s->shape, s->ndim, have, sizeof have);
            shape_text(t->shape, t->ndim, want, sizeof want);
            st = ERR(LCSM_ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies %s", path, name, have, want);
            break;
        }
        st = st_read_f32(&f, s, t->data, err, cap);
        for (size_t k = 0; st == LCSM_OK && k < t->numel; k++)
            if (!isfinite(t->data[k]))
                st = ERR(LCSM_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %zu", path, name, k);
    }
    st_close(&f);
    return st;
}

lcsm_status lcsm__weights_save(const lcsm_weights *w, const char *path, char *err, size_t cap)
{
    st_out *out = lcsm__calloc((size_t)w->n, sizeof *out);
    if (!out)
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: tensor list", path);
    for (int i = 0; i < w->n; i++)
        out[i] = (st_out){w->t[i].name, w->t[i].ndim, w->t[i].shape, w->t[i].data};
    lcsm_status st = st_write_f32(path, out, w->n, err, cap);
    lcsm__free(out);
    return st;
}
