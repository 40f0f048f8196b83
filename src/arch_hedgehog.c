/*
 * Hedgehog (Zhang et al., ICLR 2024) linear attention in a safari Hyena LM:
 * HyenaDNA's blocks (arch_hyenadna.c), with the layers of attn_layer_idx
 * mixing through learned-feature-map linear attention (lolcats' softmax_dim
 * map with untied per-head einsum kernels):
 *   q, k, v = W x + b; per head h, phi(u) = [softmax(u), softmax(-u)] clamped
 *   at feature_map_eps, u = x_h^T W_f[h]; S += phi(k) v^T, z += phi(k);
 *   y = phi(q)^T S / (phi(q)^T z + eps); out_proj.
 * A constant-size state per head (S [2F][hd], z [2F]) replaces a KV cache.
 * Spec and reference: tests/reference/hedgehog_ref.py.
 */
#include "arch_hyenadna.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

/* hp->layer_kind */
enum { K_HYENA = 0, K_HEDGEHOG = 1 };

/* Random initialisation of the feature maps (after HyenaDNA's own rules). */
enum { I_FMAP = LCSM_I_FAMILY + 16 };

static void defaults(lcsm_hparams *hp)
{
    lcsm__hyenadna_defaults(hp);
    hp->n_heads = 4;
    hp->feature_dim = 16;
    hp->fm_eps = 1e-12f;
    hp->lin_eps = 1e-12f;
    hp->qkv_bias = hp->attn_out_bias = 1;
}

/* attn_cfg: the keys that change the math, and those lcsm refuses. */
static lcsm_status read_attn_cfg(const cJSON *c, int strict, int needed, lcsm_hparams *hp, char *err, size_t cap)
{
    if (c && !cJSON_IsNull(c) && !cJSON_IsObject(c))
        return ERR(LCSM_ERR_FORMAT, "config: 'attn_cfg' must be an object");
    const int have = cJSON_IsObject(c);
#define CFG(k) (have ? cJSON_GetObjectItemCaseSensitive(c, k) : NULL)
    lcsm_status st;
    int tie = 0, causal = 1, heads_kv = 0, rotary = 0;
    if ((st = lcsm__json_int(CFG("num_heads"), "attn_cfg.num_heads", strict && needed, 1, LCSM_MAX_DMODEL,
                             &hp->n_heads, err, cap)) ||
        (st = lcsm__json_int(CFG("feature_dim"), "attn_cfg.feature_dim", strict && needed, 1, 4096, &hp->feature_dim,
                             err, cap)) ||
        (st = lcsm__json_float(CFG("feature_map_eps"), "attn_cfg.feature_map_eps", 0, 0.0, 1.0, &hp->fm_eps, err,
                               cap)) ||
        (st = lcsm__json_float(CFG("eps"), "attn_cfg.eps", 0, 0.0, 1.0, &hp->lin_eps, err, cap)) ||
        (st = lcsm__json_bool(CFG("qkv_proj_bias"), "attn_cfg.qkv_proj_bias", &hp->qkv_bias, err, cap)) ||
        (st = lcsm__json_bool(CFG("out_proj_bias"), "attn_cfg.out_proj_bias", &hp->attn_out_bias, err, cap)) ||
        (st = lcsm__json_bool(CFG("tie_qk_kernels"), "attn_cfg.tie_qk_kernels", &tie, err, cap)) ||
        (st = lcsm__json_bool(CFG("causal"), "attn_cfg.causal", &causal, err, cap)) ||
        (st = lcsm__json_int(CFG("num_heads_kv"), "attn_cfg.num_heads_kv", 0, 0, LCSM_MAX_DMODEL, &heads_kv, err,
                             cap)) ||
        (st = lcsm__json_int(CFG("rotary_emb_dim"), "attn_cfg.rotary_emb_dim", 0, 0, LCSM_MAX_DMODEL, &rotary, err,
                             cap)))
        return st;
    static const struct {
        const char *key, *only;
    } fixed[] = {{"feature_map", "softmax_dim"}, {"learned_kernel", "untied_head_einsum"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        const cJSON *v = CFG(fixed[i].key);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, fixed[i].only)))
            return ERR(LCSM_ERR_UNSUPPORTED, "config: attn_cfg.%s must be \"%s\" (the Hedgehog map lcsm runs)",
                       fixed[i].key, fixed[i].only);
    }
#undef CFG
    if (tie)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: attn_cfg.tie_qk_kernels true (one map for q and k) is not supported");
    if (!causal)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: attn_cfg.causal false: a language model's attention is causal");
    if (heads_kv && heads_kv != hp->n_heads)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: attn_cfg.num_heads_kv %d (grouped keys) is not supported", heads_kv);
    if (rotary)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: attn_cfg.rotary_emb_dim %d: Hedgehog layers here have no rotary "
                   "embedding", rotary);
    return LCSM_OK;
}

static lcsm_status read_config(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = lcsm__hyenadna_read(root, strict, hp, err, cap);
    if (st != LCSM_OK)
        return st;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "attn_layer_idx"), *e;
    memset(hp->layer_kind, K_HYENA, sizeof hp->layer_kind);
    if (list && !cJSON_IsNull(list)) {
        if (!cJSON_IsArray(list))
            return ERR(LCSM_ERR_FORMAT, "config: 'attn_layer_idx' must be a list of layer indices");
        cJSON_ArrayForEach(e, list)
        {
            const double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
            if (!isfinite(d) || d != floor(d) || d < 0 || d >= hp->n_layer)
                return ERR(LCSM_ERR_FORMAT, "config: 'attn_layer_idx' holds something that is not a layer below %d",
                           hp->n_layer);
            if (hp->layer_kind[(int)d] == K_HEDGEHOG)
                return ERR(LCSM_ERR_FORMAT, "config: layer %d is listed twice in 'attn_layer_idx'", (int)d);
            hp->layer_kind[(int)d] = K_HEDGEHOG;
        }
    } else if (strict) {
        return ERR(LCSM_ERR_FORMAT, "config: required field 'attn_layer_idx' is missing");
    } else if (hp->n_layer > 1) { /* a random model: layer 1 (safari's first attention layer) */
        hp->layer_kind[1] = K_HEDGEHOG;
    }
    int needed = 0;
    for (int l = 0; l < hp->n_layer; l++)
        needed |= hp->layer_kind[l] == K_HEDGEHOG;
    return read_attn_cfg(cJSON_GetObjectItemCaseSensitive(root, "attn_cfg"), strict, needed, hp, err, cap);
}

static lcsm_status check(const lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = lcsm__hyenadna_check(hp, err, cap);
    if (st != LCSM_OK)
        return st;
    if (hp->n_heads < 1 || hp->d_model % hp->n_heads || hp->feature_dim < 1 || hp->feature_dim > 4096 ||
        !(hp->fm_eps >= 0.0f) || !(hp->lin_eps >= 0.0f))
        return ERR(LCSM_ERR_INVALID_ARGUMENT,
                   "config: attn_cfg.num_heads %d must divide d_model %d, feature_dim %d be in [1, 4096]", hp->n_heads,
                   hp->d_model, hp->feature_dim);
    return LCSM_OK;
}

static lcsm_status write_config(const lcsm_hparams *hp, cJSON *o)
{
    lcsm_status st = lcsm__hyenadna_write(hp, o);
    if (st != LCSM_OK)
        return st;
    cJSON *list = cJSON_AddArrayToObject(o, "attn_layer_idx"), *c = cJSON_AddObjectToObject(o, "attn_cfg");
    if (!list || !c)
        return LCSM_ERR_OUT_OF_MEMORY;
    for (int l = 0; l < hp->n_layer; l++)
        if (hp->layer_kind[l] == K_HEDGEHOG && !cJSON_AddItemToArray(list, cJSON_CreateNumber(l)))
            return LCSM_ERR_OUT_OF_MEMORY;
    const int ok = cJSON_AddNumberToObject(c, "num_heads", hp->n_heads) &&
                   cJSON_AddNumberToObject(c, "feature_dim", hp->feature_dim) &&
                   cJSON_AddStringToObject(c, "feature_map", "softmax_dim") &&
                   cJSON_AddStringToObject(c, "learned_kernel", "untied_head_einsum") &&
                   cJSON_AddBoolToObject(c, "tie_qk_kernels", 0) &&
                   cJSON_AddNumberToObject(c, "feature_map_eps", hp->fm_eps) &&
                   cJSON_AddNumberToObject(c, "eps", hp->lin_eps) &&
                   cJSON_AddBoolToObject(c, "qkv_proj_bias", hp->qkv_bias) &&
                   cJSON_AddBoolToObject(c, "out_proj_bias", hp->attn_out_bias);
    return ok ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
}

static void layers(const lcsm_hparams *hp, lcsm_layer_spec *spec)
{
    for (int l = 0; l < hp->n_layer; l++) {
        spec[l] = lcsm__hyenadna_layer(hp);
        if (hp->layer_kind[l] != K_HEDGEHOG)
            continue;
        lcsm_layer_spec *s = &spec[l];
        s->mixer = LCSM_MIXER_LINATTN;
        s->streams = s->short_taps = s->short_bias = s->n_stage = 0;
        s->n_heads = s->n_kv_heads = hp->n_heads;
        s->head_dim = hp->d_model / hp->n_heads;
        s->feature_dim = hp->feature_dim;
        s->fm_eps = hp->fm_eps;
        s->lin_eps = hp->lin_eps;
        s->in_bias = hp->qkv_bias;
        s->out_bias = hp->attn_out_bias;
    }
}


/* A Hedgehog mixer's tensors: q, k, v stacked into one projection, out_proj,
 * the two feature maps [H][hd][F]. */
static lcsm_status hedgehog_mixer(lcsm_weights *w, int l)
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, H = hp->n_heads, F = hp->feature_dim;
    static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
    lcsm_tensor *t;
#define P "backbone.layers.%d.mixer."
    for (int i = 0; i < 3; i++) {
        {
            SHAPE(D, D);
            ADD(l, LCSM_R_IN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "%s.weight", l, qkv[i]);
            t->row0 = i * (int)D;
            t->rows_total = 3 * (int)D;
        }
        if (hp->qkv_bias) {
            SHAPE(D);
            ADD(l, LCSM_R_IN_B, 0, LCSM_I_BIAS, P "%s.bias", l, qkv[i]);
            t->row0 = i * (int)D;
            t->rows_total = 3 * (int)D;
        }
    }
    {
        SHAPE(D, D);
        ADD(l, LCSM_R_OUT_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "out_proj.weight", l);
    }
    if (hp->attn_out_bias) {
        SHAPE(D);
        ADD(l, LCSM_R_OUT_B, 0, LCSM_I_BIAS, P "out_proj.bias", l);
    }
    {
        SHAPE(H, D / H, F);
        ADD(l, LCSM_R_FMAP_Q, 0, I_FMAP, P "feature_map_q.mlp.layer", l);
        ADD(l, LCSM_R_FMAP_K, 0, I_FMAP, P "feature_map_k.mlp.layer", l);
    }
#undef P
    return LCSM_OK;
}

static lcsm_status tensors(lcsm_weights *w) { return lcsm__hyenadna_tensors(w, hedgehog_mixer); }

/* Feature maps: N(0, 4 / hd), so u = x_h^T W has a spread of about 2 for unit
 * inputs: softmaxes neither uniform nor saturated. */
static void init(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out)
{
    if (t->init != I_FMAP) {
        lcsm__hyenadna_init(hp, t, rng, out);
        return;
    }
    const double sd = 2.0 / sqrt((double)(hp->d_model / hp->n_heads));
    for (size_t i = 0; i < t->numel; i++)
        out[i] = (float)(sd * lcsm__normal(rng));
}

static int tokenizer(const lcsm_hparams *hp)
{
    (void)hp;
    return LCSM_TOKENIZER_DNA;
}

const lcsm_arch lcsm_arch_hedgehog = {
    .name = "hedgehog",
    .prefixes = lcsm__hyenadna_prefixes,
    .defaults = defaults,
    .read_config = read_config,
    .check = check,
    .write_config = write_config,
    .layers = layers,
    .tensors = tensors,
    .init = init,
    .filter = lcsm__hyenadna_filter,
    .public_config = lcsm__hyenadna_public_config,
    .tokenizer = tokenizer,
};
