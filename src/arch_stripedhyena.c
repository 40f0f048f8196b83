/*
 * StripedHyena (togethercomputer/stripedhyena; StripedHyena-7B, Evo 1): Hyena
 * blocks whose long filter is modal with complex poles and residues,
 * h_t = Re sum_n R_n p_n^t (poles and residues stored (D, S, 1, 2) as [re, im],
 * F32), the three streams split per head (column_split_hyena), interleaved
 * with attention blocks (attn_layer_idxs). Config: the HF StripedHyenaConfig
 * keys (config.json, model_type "stripedhyena"). The shared parts are in
 * arch_striped.c.
 */
#include "arch_striped.h"

#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

static void defaults(lcsm_hparams *hp)
{
    /* a small Evo 1-like model for random creation */
    hp->vocab_size = 512;
    hp->d_model = 64;
    hp->n_layer = 4;
    hp->n_heads = 4;
    hp->n_kv_heads = 4;
    hp->state_size = 8;
    hp->short_filter_order = 3;
    hp->short_filter_bias = 1;
    hp->in_bias = hp->out_bias = 1;
    hp->l_max = 8192;
    hp->norm_eps = 1e-6f;
    hp->rms = hp->norm_kind = LCSM_NORM_RMS_SH;
    hp->mlp_act = LCSM_ACT_SILU; /* layers.py's default */
    hp->tie_embeddings = 1;
    hp->final_norm = 1;
    hp->column_split_hyena = 1;
    hp->rope_base = 10000.0f;
    hp->rope_scale = 1.0f;
    hp->qkv_bias = hp->attn_out_bias = 1;
    memset(hp->layer_kind, LK_NONE, sizeof hp->layer_kind);
}

static int detect(const cJSON *root)
{
    return cJSON_GetObjectItemCaseSensitive(root, "hyena_layer_idxs") != NULL;
}

static lcsm_status read_config(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = lcsm__striped_read(root, strict, 0, hp, err, cap);
    int has_attn = 0, has_hyena = 0;
    memset(hp->layer_kind, LK_NONE, sizeof hp->layer_kind);
    if (st == LCSM_OK)
        st = lcsm__striped_layer_list(root, "attn_layer_idxs", LK_ATTN, 1, hp, &has_attn, err, cap);
    if (st == LCSM_OK)
        st = lcsm__striped_layer_list(root, "hyena_layer_idxs", LK_HYENA, 1, hp, &has_hyena, err, cap);
    /* a random model: the unlisted layers Hyena; with no list at all, SH-7B's
     * stripes (attention at layers 8, 16, 24, ...) */
    for (int l = 0; st == LCSM_OK && !strict && l < hp->n_layer; l++)
        if (hp->layer_kind[l] == LK_NONE)
            hp->layer_kind[l] = !has_hyena && !has_attn && l > 0 && l % 8 == 0 ? LK_ATTN : LK_HYENA;
    return st;
}

static lcsm_status write_config(const lcsm_hparams *hp, cJSON *o)
{
    return lcsm__striped_write(hp, 0, o);
}

static void layers(const lcsm_hparams *hp, lcsm_layer_spec *spec)
{
    for (int l = 0; l < hp->n_layer; l++)
        spec[l] = hp->layer_kind[l] == LK_ATTN ? lcsm__striped_attn_spec(hp, l)
                                               : lcsm__striped_hyena_spec(hp, l, LCSM_FILTER_MODAL);
}


static lcsm_status tensors(lcsm_weights *w)
{
    const int64_t D = w->hp.d_model, S = w->hp.state_size;
    lcsm_tensor *t;
    lcsm_status st = lcsm__striped_globals(w);
    for (int l = 0; l < w->hp.n_layer && st == LCSM_OK; l++) {
        if ((st = lcsm__striped_block(w, l)) != LCSM_OK)
            break;
        if (w->hp.layer_kind[l] == LK_ATTN) {
            st = lcsm__striped_attn_io(w, l);
            continue;
        }
        if ((st = lcsm__striped_hyena_io(w, l)) != LCSM_OK)
            break;
        {
            SHAPE(D, S, 1, 2); /* complex [re, im] */
            ADD(l, LCSM_R_STAGE(0, LCSM_RS_POLES), 0, I_POLES, "blocks.%d.filter.poles", l);
            t->dt = LCSM_DT_C64;
            ADD(l, LCSM_R_STAGE(0, LCSM_RS_RESIDUES), 0, I_RESIDUES, "blocks.%d.filter.residues", l);
            t->dt = LCSM_DT_C64;
        }
        {
            SHAPE(D);
            ADD(l, LCSM_R_STAGE(0, LCSM_RS_SKIP), 0, LCSM_I_UNIT, "blocks.%d.filter.D", l);
        }
    }
    return st;
}

static const char *const prefixes[] = {"", "backbone.", NULL};

const lcsm_arch lcsm_arch_stripedhyena = {
    .name = "stripedhyena",
    .prefixes = prefixes,
    .detect = detect,
    .defaults = defaults,
    .read_config = read_config,
    .check = lcsm__striped_check,
    .write_config = write_config,
    .layers = layers,
    .tensors = tensors,
    .init = lcsm__striped_init,
    .filter = lcsm__striped_no_filter,
    .device_form = lcsm__striped_device_form,
    .public_config = lcsm__striped_public_config,
    .tokenizer = lcsm__striped_tokenizer,
};
