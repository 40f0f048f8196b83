/*
 * StripedHyena and StripedHyena 2 (Evo 2): the parts both families share.
 * Facts from togethercomputer/stripedhyena (model.py, layers.py, engine.py,
 * utils.py) and Zymrael/vortex (model/model.py, engine.py, utils.py, layers.py);
 * tests/reference/stripedhyena_ref.py and evo2_ref.py are their oracles.
 *
 * A Hyena block: x += out_filter_dense(x2 * conv(x1 * v)), with [x2 | x1 | v]
 * the streams of z = projections(RMSNorm_pre(x)) after a depthwise causal
 * short conv (tap K-1 on the current input, bias added after). Then
 * x += l3(act(l1 n) * l2 n), n = RMSNorm_post(x). Final RMSNorm, head = the
 * embedding when tied.
 */
#include "arch_striped.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))
#define KEY(k) cJSON_GetObjectItemCaseSensitive(root, k)

lcsm_status lcsm__striped_layer_list(const cJSON *root, const char *key, int kind, int keep_first, lcsm_hparams *hp,
                                     int *present, char *err, size_t cap)
{
    const cJSON *v = KEY(key), *e;
    *present = v && !cJSON_IsNull(v);
    if (!*present)
        return LCSM_OK;
    if (!cJSON_IsArray(v))
        return ERR(LCSM_ERR_FORMAT, "config: '%s' must be a list of layer indices", key);
    cJSON_ArrayForEach(e, v)
    {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!isfinite(d) || d != floor(d) || d < 0 || d > 1e9)
            return ERR(LCSM_ERR_FORMAT, "config: '%s' holds something that is not a layer index", key);
        if (d >= hp->n_layer)
            continue; /* upstream ignores them too (SH-7B lists layer 32 of 32) */
        unsigned char *k = &hp->layer_kind[(int)d];
        if (*k != LK_NONE && !keep_first)
            return ERR(LCSM_ERR_FORMAT, "config: layer %d is listed twice ('%s')", (int)d, key);
        if (*k == LK_NONE)
            *k = (unsigned char)kind;
    }
    return LCSM_OK;
}

/* An activation by its upstream name. */
static lcsm_status read_act(const cJSON *v, lcsm_act *dst, char *err, size_t cap)
{
    if (!v || cJSON_IsNull(v))
        return LCSM_OK;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "silu"))
        *dst = LCSM_ACT_SILU;
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "gelu"))
        *dst = LCSM_ACT_GELU; /* F.gelu's default: the exact (erf) form */
    else if (cJSON_IsString(v) && !strcmp(v->valuestring, "identity"))
        *dst = LCSM_ACT_NONE;
    else
        return ERR(LCSM_ERR_UNSUPPORTED, "config: mlp_activation must be \"silu\", \"gelu\" or \"identity\"");
    return LCSM_OK;
}

lcsm_status lcsm__striped_read(const cJSON *root, int strict, int evo2, lcsm_hparams *hp, char *err, size_t cap)
{
    int proj_groups = 1, flash_rms = hp->rms == LCSM_NORM_RMS, mult = 64, interp = hp->rope_scale != 1.0f;
    int evo2_acts = hp->act_first_layer_only, smeared = 0, filter_groups = 1;
    lcsm_status st;
    /* A random model's config may name the shape as every family does
     * (lcsm_model_create_random_config); the family's own keys win. */
    if (!strict &&
        ((st = lcsm__json_int(KEY("d_model"), "d_model", 0, 1, LCSM_MAX_DMODEL, &hp->d_model, err, cap)) ||
         (st = lcsm__json_int(KEY("n_layer"), "n_layer", 0, 1, LCSM_MAX_LAYERS, &hp->n_layer, err, cap)) ||
         (st = lcsm__json_int(KEY("d_inner"), "d_inner", 0, 1, 4 * LCSM_MAX_DMODEL, &hp->d_inner, err, cap)) ||
         (st = lcsm__json_int(KEY("max_seq_len"), "max_seq_len", 0, 1, LCSM_MAX_LMAX, &hp->l_max, err, cap))))
        return st;
    const int inner_given = (KEY("inner_mlp_size") && !cJSON_IsNull(KEY("inner_mlp_size"))) ||
                            (!strict && KEY("d_inner") && !cJSON_IsNull(KEY("d_inner")));
    if ((st = lcsm__json_int(KEY("vocab_size"), "vocab_size", strict, 1, LCSM_MAX_VOCAB, &hp->vocab_size, err, cap)) ||
        (st = lcsm__json_int(KEY("hidden_size"), "hidden_size", strict, 1, LCSM_MAX_DMODEL, &hp->d_model, err, cap)) ||
        (st = lcsm__json_int(KEY("num_layers"), "num_layers", strict, 1, LCSM_MAX_LAYERS, &hp->n_layer, err, cap)) ||
        (st = lcsm__json_int(KEY("num_attention_heads"), "num_attention_heads", strict, 1, LCSM_MAX_DMODEL,
                             &hp->n_heads, err, cap)) ||
        (st = lcsm__json_int(KEY("proj_groups"), "proj_groups", 0, 1, LCSM_MAX_DMODEL, &proj_groups, err, cap)) ||
        (st = lcsm__json_int(KEY("state_size"), "state_size", strict, 1, LCSM_MAX_MODES, &hp->state_size, err, cap)) ||
        (st = lcsm__json_int(KEY("short_filter_length"), "short_filter_length", 0, 1, LCSM_MAX_SHORT,
                             &hp->short_filter_order, err, cap)) ||
        (st = lcsm__json_int(KEY("inner_mlp_size"), "inner_mlp_size", 0, 1, 4 * LCSM_MAX_DMODEL, &hp->d_inner, err,
                             cap)) ||
        (st = lcsm__json_int(KEY("inner_size_multiple_of"), "inner_size_multiple_of", 0, 1, 1 << 16, &mult, err,
                             cap)) ||
        (st = lcsm__json_int(KEY("max_seqlen"), "max_seqlen", 0, 1, LCSM_MAX_LMAX, &hp->l_max, err, cap)) ||
        (st = lcsm__json_int(KEY("hyena_filter_groups"), "hyena_filter_groups", 0, 1, LCSM_MAX_DMODEL,
                             &filter_groups, err, cap)) ||
        (st = lcsm__json_float(KEY("eps"), "eps", strict, LCSM_MIN_NORM_EPS, 1.0, &hp->norm_eps, err, cap)) ||
        (st = lcsm__json_float(KEY("rotary_emb_base"), "rotary_emb_base", 0, 1.0, 1e12, &hp->rope_base, err, cap)) ||
        (st = lcsm__json_float(KEY("rotary_emb_scaling_factor"), "rotary_emb_scaling_factor", 0, 1e-6, 1e9,
                               &hp->rope_scale, err, cap)) ||
        (st = lcsm__json_bool(KEY("use_interpolated_rotary_pos_emb"), "use_interpolated_rotary_pos_emb", &interp,
                              err, cap)) ||
        (st = lcsm__json_bool(KEY("use_flash_rmsnorm"), "use_flash_rmsnorm", &flash_rms, err, cap)) ||
        (st = lcsm__json_bool(KEY("short_filter_bias"), "short_filter_bias", &hp->short_filter_bias, err, cap)) ||
        (st = lcsm__json_bool(KEY("tie_embeddings"), "tie_embeddings", &hp->tie_embeddings, err, cap)) ||
        (st = lcsm__json_bool(KEY("final_norm"), "final_norm", &hp->final_norm, err, cap)) ||
        (st = lcsm__json_bool(KEY("column_split_hyena"), "column_split_hyena", &hp->column_split_hyena, err, cap)) ||
        (st = lcsm__json_bool(KEY("mha_out_proj_bias"), "mha_out_proj_bias", &hp->attn_out_bias, err, cap)) ||
        (st = lcsm__json_bool(KEY("smeared_gqa"), "smeared_gqa", &smeared, err, cap)) ||
        (st = read_act(KEY("mlp_activation"), &hp->mlp_act, err, cap)))
        return st;
    /* vortex reads qkv_proj_bias as an attribute for the Hyena projections (absent:
     * off) and with a default of True for Wqkv; StripedHyena's projections always
     * have a bias. */
    const cJSON *qb = KEY("qkv_proj_bias");
    hp->qkv_bias = 1;
    if ((st = lcsm__json_bool(qb, "qkv_proj_bias", &hp->qkv_bias, err, cap)))
        return st;
    hp->in_bias = evo2 ? (qb && cJSON_IsTrue(qb)) : 1;
    if (evo2 && ((st = lcsm__json_bool(KEY("interleave"), "interleave", &hp->interleave, err, cap)) ||
                 (st = lcsm__json_bool(KEY("hyena_flip_x1x2"), "hyena_flip_x1x2", &hp->flip_x1x2, err, cap)) ||
                 (st = lcsm__json_bool(KEY("hyena_out_proj_bias"), "hyena_out_proj_bias", &hp->out_bias, err, cap)) ||
                 (st = lcsm__json_bool(KEY("evo2_style_activations"), "evo2_style_activations", &evo2_acts, err,
                                       cap)) ||
                 (st = lcsm__json_bool(KEY("column_split"), "column_split", &hp->column_split_attn, err, cap)) ||
                 (st = lcsm__json_int(KEY("hcs_filter_length"), "hcs_filter_length", 0, 1, LCSM_MAX_FIR,
                                      &hp->fir_len[0], err, cap)) ||
                 (st = lcsm__json_int(KEY("hcm_filter_length"), "hcm_filter_length", 0, 1, LCSM_MAX_FIR,
                                      &hp->fir_len[1], err, cap)) ||
                 (st = lcsm__json_int(KEY("hcs_filter_groups"), "hcs_filter_groups", 0, 1, LCSM_MAX_DMODEL,
                                      &hp->fir_groups[0], err, cap)) ||
                 (st = lcsm__json_int(KEY("hcm_filter_groups"), "hcm_filter_groups", 0, 1, LCSM_MAX_DMODEL,
                                      &hp->fir_groups[1], err, cap))))
        return st;
    if (smeared)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: smeared_gqa is not supported");
    if (!evo2 && filter_groups != 1 && filter_groups != hp->d_model)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: hyena_filter_groups %d (one modal system per channel is supported)",
                   filter_groups);
    hp->act_first_layer_only = evo2_acts;
    hp->rms = flash_rms ? LCSM_NORM_RMS : LCSM_NORM_RMS_SH;
    hp->norm_kind = hp->rms;
    hp->rope_scale = interp ? hp->rope_scale : 1.0f;
    if (evo2 && hp->column_split_attn && proj_groups != 1)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: column_split attention with proj_groups %d (vortex needs 1)",
                   proj_groups);
    if (hp->n_heads < 1 || hp->d_model % hp->n_heads || hp->n_heads % proj_groups)
        return ERR(LCSM_ERR_FORMAT, "config: num_attention_heads %d must divide hidden_size %d, proj_groups %d divide it",
                   hp->n_heads, hp->d_model, proj_groups);
    hp->n_kv_heads = hp->n_heads / proj_groups;
    if (!inner_given) /* layers.py: rounded 8/3 D */
        hp->d_inner = mult * (((int)(2.0 * hp->d_model * 4 / 3) + mult - 1) / mult);
    for (int k = 0; evo2 && !strict && k < 2; k++) /* a random model's default groups must divide D */
        if (hp->fir_groups[k] > 0 && hp->d_model % hp->fir_groups[k] &&
            !KEY(k ? "hcm_filter_groups" : "hcs_filter_groups"))
            hp->fir_groups[k] = 1;
    hp->pad_vocab_size_multiple = 1;
    return LCSM_OK;
}

lcsm_status lcsm__striped_write(const lcsm_hparams *hp, int evo2, cJSON *o)
{
    cJSON *lists[5] = {NULL};
    static const char *const keys[5] = {"hyena_layer_idxs", "attn_layer_idxs", "hcs_layer_idxs", "hcm_layer_idxs",
                                        "hcl_layer_idxs"};
    for (int k = 0; k < 5; k++) {
        if (!evo2 && k >= LK_HCS)
            continue;
        if (evo2 && k == LK_HYENA)
            continue;
        if (!(lists[k] = cJSON_AddArrayToObject(o, keys[k])))
            return LCSM_ERR_OUT_OF_MEMORY;
    }
    for (int l = 0; l < hp->n_layer; l++)
        if (lists[hp->layer_kind[l]] && !cJSON_AddItemToArray(lists[hp->layer_kind[l]], cJSON_CreateNumber(l)))
            return LCSM_ERR_OUT_OF_MEMORY;
    static const char *const acts[] = {"identity", "gelu", "gelu", "silu"};
    int ok = cJSON_AddNumberToObject(o, "vocab_size", hp->vocab_size) &&
             cJSON_AddNumberToObject(o, "hidden_size", hp->d_model) &&
             cJSON_AddNumberToObject(o, "num_filters", hp->d_model) &&
             cJSON_AddNumberToObject(o, "num_layers", hp->n_layer) &&
             cJSON_AddNumberToObject(o, "num_attention_heads", hp->n_heads) &&
             cJSON_AddNumberToObject(o, "proj_groups", hp->n_heads / hp->n_kv_heads) &&
             cJSON_AddNumberToObject(o, "state_size", hp->state_size) &&
             cJSON_AddNumberToObject(o, "short_filter_length", hp->short_filter_order) &&
             cJSON_AddBoolToObject(o, "short_filter_bias", hp->short_filter_bias) &&
             cJSON_AddNumberToObject(o, "inner_mlp_size", hp->d_inner) &&
             cJSON_AddNumberToObject(o, "eps", hp->norm_eps) &&
             cJSON_AddBoolToObject(o, "use_flash_rmsnorm", hp->rms == LCSM_NORM_RMS) &&
             cJSON_AddBoolToObject(o, "tie_embeddings", hp->tie_embeddings) &&
             cJSON_AddBoolToObject(o, "final_norm", hp->final_norm) &&
             cJSON_AddNumberToObject(o, "max_seqlen", hp->l_max) &&
             cJSON_AddBoolToObject(o, "column_split_hyena", hp->column_split_hyena) &&
             cJSON_AddStringToObject(o, "mlp_activation", acts[hp->mlp_act]) &&
             cJSON_AddNumberToObject(o, "rotary_emb_base", hp->rope_base) &&
             cJSON_AddBoolToObject(o, "use_interpolated_rotary_pos_emb", hp->rope_scale != 1.0f) &&
             cJSON_AddNumberToObject(o, "rotary_emb_scaling_factor", hp->rope_scale) &&
             cJSON_AddBoolToObject(o, "mha_out_proj_bias", hp->attn_out_bias);
    /* Evo 2's one key sets both biases; absent, Wqkv has one and the Hyena
     * projections none (read above) */
    if (ok && (!evo2 || hp->in_bias == hp->qkv_bias))
        ok = cJSON_AddBoolToObject(o, "qkv_proj_bias", hp->qkv_bias) != NULL;
    if (ok && evo2)
        ok = cJSON_AddBoolToObject(o, "interleave", hp->interleave) &&
             cJSON_AddBoolToObject(o, "hyena_flip_x1x2", hp->flip_x1x2) &&
             cJSON_AddBoolToObject(o, "hyena_out_proj_bias", hp->out_bias) &&
             cJSON_AddBoolToObject(o, "evo2_style_activations", hp->act_first_layer_only) &&
             cJSON_AddBoolToObject(o, "column_split", hp->column_split_attn) &&
             cJSON_AddNumberToObject(o, "hcs_filter_length", hp->fir_len[0]) &&
             cJSON_AddNumberToObject(o, "hcm_filter_length", hp->fir_len[1]) &&
             cJSON_AddNumberToObject(o, "hcs_filter_groups", hp->fir_groups[0]) &&
             cJSON_AddNumberToObject(o, "hcm_filter_groups", hp->fir_groups[1]);
    return ok ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
}

lcsm_status lcsm__striped_check(const lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = lcsm__hparams_check_shape(hp, err, cap);
    if (st != LCSM_OK)
        return st;
    if (hp->n_heads < 1 || hp->d_model % hp->n_heads || hp->n_kv_heads < 1 || hp->n_heads % hp->n_kv_heads ||
        hp->state_size < 1 || hp->state_size > LCSM_MAX_MODES || hp->short_filter_order < 1 ||
        hp->short_filter_order > LCSM_MAX_SHORT)
        return ERR(LCSM_ERR_INVALID_ARGUMENT,
                   "config: heads %d / kv heads %d must divide hidden_size %d, state_size %d in [1, %d], "
                   "short_filter_length %d in [1, %d]",
                   hp->n_heads, hp->n_kv_heads, hp->d_model, hp->state_size, LCSM_MAX_MODES, hp->short_filter_order,
                   LCSM_MAX_SHORT);
    for (int l = 0; l < hp->n_layer; l++) {
        if (hp->layer_kind[l] == LK_NONE)
            return ERR(LCSM_ERR_FORMAT, "config: layer %d is in no layer list", l);
        if (hp->layer_kind[l] == LK_HCS || hp->layer_kind[l] == LK_HCM) {
            const int k = hp->layer_kind[l] == LK_HCM, G = hp->fir_groups[k];
            if (hp->fir_len[k] < 1 || hp->fir_len[k] > LCSM_MAX_FIR || G < 1 || hp->d_model % G)
                return ERR(LCSM_ERR_INVALID_ARGUMENT,
                           "config: %s_filter_length %d must be in [1, %d] and its groups %d divide hidden_size %d",
                           k ? "hcm" : "hcs", hp->fir_len[k], LCSM_MAX_FIR, G, hp->d_model);
        }
    }
    return LCSM_OK;
}

lcsm_layer_spec lcsm__striped_hyena_spec(const lcsm_hparams *hp, int l, lcsm_filter_kind filter)
{
    lcsm_layer_spec s = {
        .norm = hp->rms,
        .mixer = LCSM_MIXER_HYENA,
        .streams = 3, /* x2 (post gate), x1 (multiplies v), v */
        .short_taps = hp->short_filter_order,
        .short_bias = hp->short_filter_bias,
        .in_bias = hp->in_bias,
        .out_bias = hp->out_bias,
        .n_stage = 1,
        .stage = {{.mult = 1, .filter = filter, .n_modes = hp->state_size}},
        .mlp = LCSM_MLP_GATED,
        .act = hp->act_first_layer_only && l > 0 ? LCSM_ACT_NONE : hp->mlp_act,
        .d_inner = hp->d_inner,
    };
    if (filter == LCSM_FILTER_FIR)
        s.stage[0].fir_len = hp->fir_len[hp->layer_kind[l] == LK_HCM];
    return s;
}

lcsm_layer_spec lcsm__striped_attn_spec(const lcsm_hparams *hp, int l)
{
    return (lcsm_layer_spec){
        .norm = hp->rms,
        .mixer = LCSM_MIXER_ATTN,
        .in_bias = hp->qkv_bias,
        .out_bias = hp->attn_out_bias,
        .n_heads = hp->n_heads,
        .n_kv_heads = hp->n_kv_heads,
        .head_dim = hp->d_model / hp->n_heads,
        .rope_base = hp->rope_base,
        .rope_scale = hp->rope_scale,
        .mlp = LCSM_MLP_GATED,
        .act = hp->act_first_layer_only && l > 0 ? LCSM_ACT_NONE : hp->mlp_act,
        .d_inner = hp->d_inner,
    };
}


lcsm_status lcsm__striped_globals(lcsm_weights *w)
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, V = hp->n_vocab;
    lcsm_tensor *t;
    {
        SHAPE(V, D);
        ADD(-1, LCSM_G_EMB, LCSM_T_MATRIX, LCSM_I_UNIT, "embedding_layer.weight");
        if (!hp->tie_embeddings)
            ADD(-1, LCSM_G_HEAD, LCSM_T_MATRIX, LCSM_I_LINEAR, "unembed.weight");
    }
    if (hp->final_norm) {
        SHAPE(D);
        ADD(-1, LCSM_G_NORMF_W, 0, LCSM_I_NORM_W, "norm.scale");
    }
    return LCSM_OK;
}

lcsm_status lcsm__striped_block(lcsm_weights *w, int l)
{
    const int64_t D = w->hp.d_model, I = w->hp.d_inner;
    lcsm_tensor *t;
    {
        SHAPE(D);
        ADD(l, LCSM_R_NORM1_W, 0, LCSM_I_NORM_W, "blocks.%d.pre_norm.scale", l);
        ADD(l, LCSM_R_NORM2_W, 0, LCSM_I_NORM_W, "blocks.%d.post_norm.scale", l);
    }
    for (int k = 0; k < 2; k++) { /* [l1; l2] stacked: act(l1 x) * l2 x */
        SHAPE(I, D);
        ADD(l, LCSM_R_UP_W, LCSM_T_MATRIX, LCSM_I_LINEAR, "blocks.%d.mlp.l%d.weight", l, k + 1);
        t->row0 = k * (int)I;
        t->rows_total = 2 * (int)I;
    }
    {
        SHAPE(D, I);
        ADD(l, LCSM_R_DOWN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, "blocks.%d.mlp.l3.weight", l);
    }
    return LCSM_OK;
}

lcsm_status lcsm__striped_hyena_io(lcsm_weights *w, int l)
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, K = hp->short_filter_order;
    lcsm_tensor *t;
    {
        SHAPE(3 * D, D);
        ADD(l, LCSM_R_IN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, "blocks.%d.projections.weight", l);
        t->map = MAP_STREAMS;
    }
    if (hp->in_bias) {
        SHAPE(3 * D);
        ADD(l, LCSM_R_IN_B, 0, LCSM_I_BIAS, "blocks.%d.projections.bias", l);
        t->map = MAP_STREAMS;
    }
    {
        SHAPE(3 * D, 1, K);
        ADD(l, LCSM_R_SHORT_W, 0, I_SHORT, "blocks.%d.filter.short_filter_weight", l);
        t->map = MAP_STREAMS;
    }
    if (hp->short_filter_bias) {
        SHAPE(3 * D);
        ADD(l, LCSM_R_SHORT_B, 0, LCSM_I_BIAS, "blocks.%d.filter.short_filter_bias", l);
        t->map = MAP_STREAMS;
    }
    {
        SHAPE(D, D);
        ADD(l, LCSM_R_OUT_W, LCSM_T_MATRIX, LCSM_I_LINEAR, "blocks.%d.out_filter_dense.weight", l);
    }
    if (hp->out_bias) {
        SHAPE(D);
        ADD(l, LCSM_R_OUT_B, 0, LCSM_I_BIAS, "blocks.%d.out_filter_dense.bias", l);
    }
    return LCSM_OK;
}

lcsm_status lcsm__striped_attn_io(lcsm_weights *w, int l)
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, hd = D / hp->n_heads, QKV = (hp->n_heads + 2 * (int64_t)hp->n_kv_heads) * hd;
    const int map = hp->column_split_attn ? MAP_QKV : 0;
    lcsm_tensor *t;
    {
        SHAPE(QKV, D);
        ADD(l, LCSM_R_IN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, "blocks.%d.inner_mha_cls.Wqkv.weight", l);
        t->map = map;
    }
    if (hp->qkv_bias) {
        SHAPE(QKV);
        ADD(l, LCSM_R_IN_B, 0, LCSM_I_BIAS, "blocks.%d.inner_mha_cls.Wqkv.bias", l);
        t->map = map;
    }
    {
        SHAPE(D, D);
        ADD(l, LCSM_R_OUT_W, LCSM_T_MATRIX, LCSM_I_LINEAR, "blocks.%d.inner_mha_cls.out_proj.weight", l);
    }
    if (hp->attn_out_bias) {
        SHAPE(D);
        ADD(l, LCSM_R_OUT_B, 0, LCSM_I_BIAS, "blocks.%d.inner_mha_cls.out_proj.bias", l);
    }
    return LCSM_OK;
}

/* The row of the stored 3D projection that becomes row `dst` = s*D + j of the
 * streams [x2 | x1 | v]: interleaved (vortex: [z[0::3] | z[1::3] | z[2::3]]
 * first), then per head ([x2 | x1 | v] of hd each) or in thirds, then x1 and
 * x2 swapped if asked. */
static int stream_src(const lcsm_hparams *hp, int dst)
{
    const int D = hp->d_model, hd = D / hp->n_heads;
    int s = dst / D, j = dst % D;
    if (hp->flip_x1x2 && s < 2)
        s = 1 - s;
    int q = hp->column_split_hyena ? (j / hd) * 3 * hd + s * hd + j % hd : s * D + j; /* index after interleave */
    return hp->interleave ? 3 * (q % D) + q / D : q;
}

void lcsm__striped_device_form(const lcsm_weights *w, const lcsm_tensor *t, float *out)
{
    const lcsm_hparams *hp = &w->hp;
    switch (t->map) {
    case MAP_STREAMS: {
        const size_t rows = (size_t)t->shape[0], len = t->numel / rows;
        for (size_t r = 0; r < rows; r++)
            memcpy(out + r * len, t->data + (size_t)stream_src(hp, (int)r) * len, len * sizeof *out);
        break;
    }
    case MAP_FIR: {
        /* (G, 1, L) -> (D, L): channel c uses group c / (D/G); a filter shorter
         * than 128 taps is applied by F.conv1d (tap L-1 on the current input),
         * a longer one as a convolution (tap 0): lcsm's is tap 0 (vortex's rule). */
        const int G = (int)t->shape[0], L = (int)t->shape[t->ndim - 1], D = hp->d_model, per = D / G;
        for (int c = 0; c < D; c++)
            for (int k = 0; k < L; k++)
                out[(size_t)c * L + k] = t->data[(size_t)(c / per) * L + (L >= 128 ? k : L - 1 - k)];
        break;
    }
    case MAP_EXP:
        for (size_t i = 0; i < t->numel; i++)
            out[i] = expf(t->data[i]);
        break;
    case MAP_QKV: { /* vortex: flash row j*D + h*hd + d is stored row h*3hd + j*hd + d */
        const size_t rows = (size_t)t->shape[0], len = t->numel / rows;
        const int D = hp->d_model, hd = D / hp->n_heads;
        for (size_t r = 0; r < rows; r++) {
            const int j = (int)r / D, h = ((int)r % D) / hd, d = (int)r % hd;
            memcpy(out + r * len, t->data + (size_t)(h * 3 * hd + j * hd + d) * len, len * sizeof *out);
        }
        break;
    }
    }
}

void lcsm__striped_init(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out)
{
    const int S = hp->state_size;
    for (size_t i = 0; i < t->numel; i++) {
        double v = 0;
        switch (t->init) {
        case I_POLES:
        case I_LOG_POLES: {
            /* decay time log-uniform in [4, 120] steps, phases within 0.6 */
            const int cx = t->init == I_POLES;
            const double tau = exp(log(4.0) + lcsm__uniform(rng) * (log(120.0) - log(4.0)));
            if (!cx) {
                v = -1.0 / tau;
                break;
            }
            const double r = exp(-1.0 / tau), th = 0.6 * (2.0 * lcsm__uniform(rng) - 1.0);
            out[i] = (float)(r * cos(th));
            out[++i] = (float)(r * sin(th));
            continue;
        }
        case I_RESIDUES:
        case I_RESIDUES_REAL: v = lcsm__normal(rng) * sqrt(2.0 / (S * 30.0)); break;
        case I_FIR: {
            const int L = (int)t->shape[t->ndim - 1], k = (int)(i % (size_t)L);
            v = lcsm__normal(rng) * sqrt(2.0 / L) * exp(-k / (0.7 * L));
            break;
        }
        case I_SHORT: v = 0.6 * lcsm__normal(rng); break;
        }
        out[i] = (float)v;
    }
}

void lcsm__striped_public_config(const lcsm_hparams *hp, lcsm_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->d_model = hp->d_model;
    c->n_layer = hp->n_layer;
    c->d_inner = hp->d_inner;
    c->vocab_size = hp->vocab_size;
    c->pad_vocab_size_multiple = hp->pad_vocab_size_multiple;
    c->l_max = hp->l_max;
    c->short_filter_order = hp->short_filter_order;
    c->layer_norm_epsilon = hp->norm_eps;
}

int lcsm__striped_tokenizer(const lcsm_hparams *hp)
{
    return hp->vocab_size >= 256 && hp->vocab_size <= 512 ? LCSM_TOKENIZER_BYTE : LCSM_TOKENIZER_NONE;
}

lcsm_status lcsm__striped_no_filter(const lcsm_weights *w, const lcsm_model_options *opt, int layer, int stage, int k0, int k1,
                                    float *hT, size_t ld, float *dbias)
{
    (void)w, (void)opt, (void)layer, (void)stage, (void)k0, (void)k1, (void)hT, (void)ld, (void)dbias;
    return LCSM_ERR_UNSUPPORTED; /* modal filters are materialised by the engine; FIR ones never */
}
