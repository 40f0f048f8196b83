/*
 * HyenaDNA / safari Hyena LM (HazyResearch/hyena-dna, safari; DESIGN.md section 4):
 * pre-norm LayerNorm blocks of an order-2 Hyena operator (in_proj D -> 3D, a
 * 3-tap short conv, streams x0 x1 v, y = x0 * (h * (v x1) + bias * (v x1)),
 * out_proj) and an MLP (fc1, tanh-GELU, fc2); implicit filters (a sin-MLP over
 * the stored positional embedding, times an exponential decay) materialised
 * once for l_max; final LayerNorm; LM head tied to the word embedding.
 */
#include "arch_hyenadna.h"
#include "filter_implicit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

/* The filter's parameters: host-only tensors. Linear j of the filter MLP has its
 * weight at H_FLIN + 2j and its bias at H_FLIN + 2j + 1 (none for the last). */
enum { H_FBIAS = LCSM_ROLE_HOST, H_Z, H_T, H_FREQ, H_DELTAS, H_FLIN };

/* This family's random initialisation rules. */
enum {
    I_POS_Z = LCSM_I_FAMILY, /* hyena-dna PositionalEmbedding z */
    I_POS_T,                 /* t = linspace(0, 1, l_max) */
    I_FREQ,                  /* activation_freq * (1 + N(0, 0.1^2)) */
    I_DELTAS                 /* linspace(log(1e-2)/1.5, log(1e-2)/0.3, D) */
};

void lcsm_model_config_default(lcsm_model_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->d_model = 128;
    c->n_layer = 2;
    c->d_inner = 512;
    c->vocab_size = 12;
    c->pad_vocab_size_multiple = 8;
    c->l_max = 16384;
    c->emb_dim = 5;
    c->filter_order = 64;
    c->num_inner_mlps = 2;
    c->short_filter_order = 3;
    c->hyena_order = 2;
    c->activation_freq = 1.0f;
    c->layer_norm_epsilon = 1e-5f;
}

void lcsm__hyenadna_defaults(lcsm_hparams *hp)
{
    lcsm_model_config c;
    lcsm_model_config_default(&c);
    hp->d_model = c.d_model;
    hp->n_layer = c.n_layer;
    hp->d_inner = 0; /* 4 * d_model unless given */
    hp->vocab_size = c.vocab_size;
    hp->pad_vocab_size_multiple = c.pad_vocab_size_multiple;
    hp->l_max = c.l_max;
    hp->emb_dim = c.emb_dim;
    hp->filter_order = c.filter_order;
    hp->num_inner_mlps = c.num_inner_mlps;
    hp->short_filter_order = c.short_filter_order;
    hp->hyena_order = c.hyena_order;
    hp->activation_freq = c.activation_freq;
    hp->norm_eps = c.layer_norm_epsilon;
}

void lcsm__hyenadna_public_config(const lcsm_hparams *hp, lcsm_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->d_model = hp->d_model;
    c->n_layer = hp->n_layer;
    c->d_inner = hp->d_inner;
    c->vocab_size = hp->vocab_size;
    c->pad_vocab_size_multiple = hp->pad_vocab_size_multiple;
    c->l_max = hp->l_max;
    c->emb_dim = hp->emb_dim;
    c->filter_order = hp->filter_order;
    c->num_inner_mlps = hp->num_inner_mlps;
    c->short_filter_order = hp->short_filter_order;
    c->hyena_order = hp->hyena_order;
    c->activation_freq = hp->activation_freq;
    c->layer_norm_epsilon = hp->norm_eps;
}

lcsm_status lcsm__hparams_from_config(const lcsm_model_config *c, lcsm_hparams *hp, char *err, size_t cap)
{
    memset(hp, 0, sizeof *hp);
    hp->arch = &lcsm_arch_hyenadna;
    hp->d_model = c->d_model;
    hp->n_layer = c->n_layer;
    hp->d_inner = c->d_inner;
    hp->vocab_size = c->vocab_size;
    hp->pad_vocab_size_multiple = c->pad_vocab_size_multiple;
    hp->l_max = c->l_max;
    hp->emb_dim = c->emb_dim;
    hp->filter_order = c->filter_order;
    hp->num_inner_mlps = c->num_inner_mlps;
    hp->short_filter_order = c->short_filter_order;
    hp->hyena_order = c->hyena_order;
    hp->activation_freq = c->activation_freq;
    hp->norm_eps = c->layer_norm_epsilon;
    int m = hp->pad_vocab_size_multiple > 0 ? hp->pad_vocab_size_multiple : 1;
    hp->n_vocab = (hp->vocab_size + m - 1) / m * m;
    return lcsm__hyenadna_check(hp, err, cap);
}

/* The integer fields, table-driven: JSON key, where it lives, bounds, whether
 * required, and the key inside safari's nested "layer" object that may hold it. */
typedef struct int_field {
    const char *key;
    size_t offset;
    int lo, hi;
    int required;
    const char *nested;
} int_field;

#define F(field) offsetof(lcsm_hparams, field)
static const int_field int_fields[] = {
    {"d_model", F(d_model), 1, LCSM_MAX_DMODEL, 1, NULL},
    {"n_layer", F(n_layer), 1, LCSM_MAX_LAYERS, 1, NULL},
    {"d_inner", F(d_inner), 1, 4 * LCSM_MAX_DMODEL, 0, NULL},
    {"vocab_size", F(vocab_size), 1, LCSM_MAX_VOCAB, 1, NULL},
    {"pad_vocab_size_multiple", F(pad_vocab_size_multiple), 1, 4096, 0, NULL},
    {"max_seq_len", F(l_max), 1, LCSM_MAX_LMAX, 1, "l_max"},
    {"emb_dim", F(emb_dim), 1, 1024, 0, "emb_dim"},
    {"filter_order", F(filter_order), 1, 4096, 0, "filter_order"},
    {"num_inner_mlps", F(num_inner_mlps), 0, LCSM_MAX_INNER_MLPS, 0, NULL},
    {"short_filter_order", F(short_filter_order), 1, 64, 0, NULL},
    {"hyena_order", F(hyena_order), 1, 16, 0, "order"},
};
#undef F
#define N_INT_FIELDS (sizeof int_fields / sizeof int_fields[0])

static const cJSON *lookup(const cJSON *root, const char *key, const char *nested)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v && nested) {
        const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
        if (cJSON_IsObject(layer))
            v = cJSON_GetObjectItemCaseSensitive(layer, nested);
    }
    return v;
}

static int detect(const cJSON *root)
{
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
    const cJSON *name = cJSON_IsObject(layer) ? cJSON_GetObjectItemCaseSensitive(layer, "_name_") : NULL;
    return cJSON_IsString(name) && !strcmp(name->valuestring, "hyena");
}

lcsm_status lcsm__hyenadna_read(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = LCSM_OK;
    for (size_t i = 0; i < N_INT_FIELDS && st == LCSM_OK; i++) {
        const int_field *f = &int_fields[i];
        st = lcsm__json_int(lookup(root, f->key, f->nested), f->key, strict && f->required, f->lo, f->hi,
                            (int *)((char *)hp + f->offset), err, cap);
    }
    if (st == LCSM_OK)
        st = lcsm__json_float(cJSON_GetObjectItemCaseSensitive(root, "activation_freq"), "activation_freq", 0, -1e6,
                              1e6, &hp->activation_freq, err, cap);
    if (st == LCSM_OK)
        st = lcsm__json_float(cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon"), "layer_norm_epsilon", 0,
                              LCSM_MIN_NORM_EPS, 1.0, &hp->norm_eps, err, cap);
    if (st != LCSM_OK)
        return st;
    if (!hp->d_inner)
        hp->d_inner = 4 * hp->d_model;
    int tie = 1;
    if ((st = lcsm__json_bool(cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings"), "tie_word_embeddings",
                              &tie, err, cap)) != LCSM_OK)
        return st;
    if (!tie)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: untied word embeddings (tie_word_embeddings false) are not supported");
    return LCSM_OK;
}

lcsm_status lcsm__hyenadna_check(const lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = lcsm__hparams_check_shape(hp, err, cap);
    if (st != LCSM_OK)
        return st;
    if (hp->emb_dim < 1 || hp->emb_dim > 1024 || hp->filter_order < 1 || hp->filter_order > 4096 ||
        hp->num_inner_mlps < 0 || hp->num_inner_mlps > LCSM_MAX_INNER_MLPS || !isfinite(hp->activation_freq))
        return ERR(LCSM_ERR_INVALID_ARGUMENT, "config: a size is out of range (d_model %d, n_layer %d, "
                   "d_inner %d, vocab %d, l_max %d, emb_dim %d, filter_order %d, num_inner_mlps %d)",
                   hp->d_model, hp->n_layer, hp->d_inner, hp->vocab_size, hp->l_max, hp->emb_dim,
                   hp->filter_order, hp->num_inner_mlps);
    if (hp->hyena_order != 2)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: hyena_order %d (only 2 is supported)", hp->hyena_order);
    if (hp->short_filter_order != 3)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: short_filter_order %d (only 3 is supported)",
                   hp->short_filter_order);
    return LCSM_OK;
}

lcsm_status lcsm__hyenadna_write(const lcsm_hparams *hp, cJSON *o)
{
    for (size_t i = 0; i < N_INT_FIELDS; i++)
        if (!cJSON_AddNumberToObject(o, int_fields[i].key, *(const int *)((const char *)hp + int_fields[i].offset)))
            return LCSM_ERR_OUT_OF_MEMORY;
    if (!cJSON_AddNumberToObject(o, "activation_freq", hp->activation_freq) ||
        !cJSON_AddNumberToObject(o, "layer_norm_epsilon", hp->norm_eps) ||
        !cJSON_AddBoolToObject(o, "tie_word_embeddings", 1))
        return LCSM_ERR_OUT_OF_MEMORY;
    return LCSM_OK;
}

lcsm_layer_spec lcsm__hyenadna_layer(const lcsm_hparams *hp)
{
    return (lcsm_layer_spec){
            .norm = LCSM_NORM_LAYER,
            .norm_bias = 1,
            .mixer = LCSM_MIXER_HYENA,
            .streams = 3, /* x0 (post gate), x1 (multiplies v), v */
            .short_taps = hp->short_filter_order,
            .short_bias = 1,
            .in_bias = 1,
            .out_bias = 1,
            .n_stage = 1,
            .stage = {{.mult = 1, .filter = LCSM_FILTER_IMPLICIT}},
            .mlp = LCSM_MLP_PLAIN,
            .act = LCSM_ACT_GELU_TANH,
            .d_inner = hp->d_inner,
            .mlp_bias = 1,
        };
}

static void layers(const lcsm_hparams *hp, lcsm_layer_spec *spec)
{
    for (int l = 0; l < hp->n_layer; l++)
        spec[l] = lcsm__hyenadna_layer(hp);
}


lcsm_status lcsm__safari_mlp_tensors(lcsm_weights *w, int l)
{
    const int64_t D = w->hp.d_model, DI = w->hp.d_inner;
    lcsm_tensor *t;
#define P "backbone.layers.%d."
    {
        SHAPE(D);
        ADD(l, LCSM_R_NORM2_W, 0, LCSM_I_NORM_W, P "norm2.weight", l);
        ADD(l, LCSM_R_NORM2_B, 0, LCSM_I_NORM_B, P "norm2.bias", l);
    }
    {
        SHAPE(DI, D);
        ADD(l, LCSM_R_UP_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "mlp.fc1.weight", l);
    }
    {
        SHAPE(DI);
        ADD(l, LCSM_R_UP_B, 0, LCSM_I_BIAS, P "mlp.fc1.bias", l);
    }
    {
        SHAPE(D, DI);
        ADD(l, LCSM_R_DOWN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "mlp.fc2.weight", l);
    }
    {
        SHAPE(D);
        ADD(l, LCSM_R_DOWN_B, 0, LCSM_I_BIAS, P "mlp.fc2.bias", l);
    }
#undef P
    return LCSM_OK;
}

/* In this order (the random initialisation seeds tensors by their index). */
lcsm_status lcsm__hyenadna_tensors(lcsm_weights *w, lcsm_status (*other)(lcsm_weights *w, int l))
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, V = hp->n_vocab, F = hp->filter_order, E = hp->emb_dim,
                  L = hp->l_max;
    lcsm_tensor *t;
    {
        SHAPE(V, D);
        ADD(-1, LCSM_G_EMB, LCSM_T_MATRIX, LCSM_I_EMB, "backbone.embeddings.word_embeddings.weight");
    }
    {
        SHAPE(D);
        ADD(-1, LCSM_G_NORMF_W, 0, LCSM_I_NORM_W, "backbone.ln_f.weight");
        ADD(-1, LCSM_G_NORMF_B, 0, LCSM_I_NORM_B, "backbone.ln_f.bias");
    }
    for (int l = 0; l < hp->n_layer; l++) {
#define P "backbone.layers.%d."
        {
            SHAPE(D);
            ADD(l, LCSM_R_NORM1_W, 0, LCSM_I_NORM_W, P "norm1.weight", l);
            ADD(l, LCSM_R_NORM1_B, 0, LCSM_I_NORM_B, P "norm1.bias", l);
        }
        const int hyena = !other || hp->layer_kind[l] == 0;
        if (!hyena) {
            lcsm_status st = other(w, l);
            if (st != LCSM_OK)
                return st;
        } else {
            {
                SHAPE(3 * D, D);
                ADD(l, LCSM_R_IN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "mixer.in_proj.weight", l);
            }
            {
                SHAPE(3 * D);
                ADD(l, LCSM_R_IN_B, 0, LCSM_I_BIAS, P "mixer.in_proj.bias", l);
            }
            {
                SHAPE(3 * D, 1, 3);
                ADD(l, LCSM_R_SHORT_W, 0, LCSM_I_CONV, P "mixer.short_filter.weight", l);
            }
            {
                SHAPE(3 * D);
                ADD(l, LCSM_R_SHORT_B, 0, LCSM_I_BIAS, P "mixer.short_filter.bias", l);
            }
            {
                SHAPE(D, D);
                ADD(l, LCSM_R_OUT_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "mixer.out_proj.weight", l);
            }
            {
                SHAPE(D);
                ADD(l, LCSM_R_OUT_B, 0, LCSM_I_BIAS, P "mixer.out_proj.bias", l);
                ADD(l, H_FBIAS, 0, LCSM_I_UNIT, P "mixer.filter_fn.bias", l);
            }
            {
                SHAPE(1, L, E);
                ADD(l, H_Z, 0, I_POS_Z, P "mixer.filter_fn.pos_emb.z", l);
            }
            {
                SHAPE(1, L, 1);
                ADD(l, H_T, 0, I_POS_T, P "mixer.filter_fn.pos_emb.t", l);
            }
            {
                SHAPE(1, F);
                ADD(l, H_FREQ, LCSM_T_OPTIONAL, I_FREQ, P "mixer.filter_fn.implicit_filter.1.freq", l);
            }
            {
                SHAPE(1, 1, D);
                ADD(l, H_DELTAS, 0, I_DELTAS, P "mixer.filter_fn.modulation.deltas", l);
            }
        }
        lcsm_status st = lcsm__safari_mlp_tensors(w, l);
        if (st != LCSM_OK)
            return st;
        /* The filter MLP: Linear(E, F) Sin [Linear(F, F) Sin]*n Linear(F, D, no bias). */
        const int n_lin = hyena ? hp->num_inner_mlps + 2 : 0;
        for (int j = 0; j < n_lin; j++) {
            const int64_t in = j == 0 ? E : F, out = j == n_lin - 1 ? D : F;
            {
                SHAPE(out, in);
                ADD(l, H_FLIN + 2 * j, 0, j == 0 ? LCSM_I_UNIT : LCSM_I_LINEAR,
                    P "mixer.filter_fn.implicit_filter.%d.weight", l, 2 * j);
            }
            if (j < n_lin - 1) {
                SHAPE(out);
                ADD(l, H_FLIN + 2 * j + 1, 0, LCSM_I_BIAS, P "mixer.filter_fn.implicit_filter.%d.bias", l, 2 * j);
            }
        }
#undef P
    }
    return LCSM_OK;
}

/* rng NULL: the value of a tensor a checkpoint may omit (freq: activation_freq). */
void lcsm__hyenadna_init(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out)
{
    const size_t L = (size_t)hp->l_max;
    for (size_t i = 0; i < t->numel; i++) {
        double v = 0;
        switch (t->init) {
        case I_POS_T: v = L > 1 ? (double)i / (double)(L - 1) : 0.0; break;
        case I_FREQ: v = hp->activation_freq * (rng ? 1.0 + 0.1 * lcsm__normal(rng) : 1.0); break;
        case I_DELTAS: {
            double lo = log(1e-2) / 1.5, hi = log(1e-2) / 0.3;
            v = t->numel > 1 ? lo + (hi - lo) * (double)i / (double)(t->numel - 1) : lo;
            break;
        }
        case I_POS_Z: {
            /* [pos][feature]: feature 0 is t; then `bands` cos and `bands` -sin of
             * f_k * w with w = 2 pi pos / L and f = linspace(1e-4, bands - 1, bands). */
            size_t E = (size_t)hp->emb_dim, pos = i / E, f = i % E, bands = (E - 1) / 2;
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
        out[i] = (float)v;
    }
}

lcsm_status lcsm__hyenadna_filter(const lcsm_weights *w, const lcsm_model_options *opt, int l, int stage, int k0,
                                  int k1, float *hT, size_t ld, float *dbias)
{
    (void)stage; /* one stage per layer */
    const lcsm_hparams *hp = &w->hp;
    lcsm_filter_params p = {
        .z = lcsm__tensor_get(w, l, H_Z)->data,
        .t = lcsm__tensor_get(w, l, H_T)->data,
        .freq = lcsm__tensor_get(w, l, H_FREQ)->data,
        .deltas = lcsm__tensor_get(w, l, H_DELTAS)->data,
        .n_inner = hp->num_inner_mlps,
        .emb_dim = hp->emb_dim,
        .order = hp->filter_order,
        .D = hp->d_model,
    };
    for (int j = 0; j < hp->num_inner_mlps + 2; j++) {
        p.w[j] = lcsm__tensor_get(w, l, H_FLIN + 2 * j)->data;
        const lcsm_tensor *b = lcsm__tensor_get(w, l, H_FLIN + 2 * j + 1);
        p.b[j] = j <= hp->num_inner_mlps && b ? b->data : NULL;
    }
    if (dbias)
        memcpy(dbias, lcsm__tensor_get(w, l, H_FBIAS)->data, (size_t)hp->d_model * sizeof *dbias);
    return lcsm__filter_materialise(&p, opt->filter_shift, k0, k1, hT, ld);
}

static int tokenizer(const lcsm_hparams *hp)
{
    (void)hp;
    return LCSM_TOKENIZER_DNA;
}

static lcsm_status tensors(lcsm_weights *w) { return lcsm__hyenadna_tensors(w, NULL); }

const char *const lcsm__hyenadna_prefixes[] = {"", "model.", "hyena.", "model.hyena.", NULL};

const lcsm_arch lcsm_arch_hyenadna = {
    .name = "hyenadna",
    .prefixes = lcsm__hyenadna_prefixes,
    .detect = detect,
    .defaults = lcsm__hyenadna_defaults,
    .read_config = lcsm__hyenadna_read,
    .check = lcsm__hyenadna_check,
    .write_config = lcsm__hyenadna_write,
    .layers = layers,
    .tensors = tensors,
    .init = lcsm__hyenadna_init,
    .filter = lcsm__hyenadna_filter,
    .public_config = lcsm__hyenadna_public_config,
    .tokenizer = tokenizer,
};
