/*
 * StripedHyena 2 / Evo 2 (Zymrael/vortex, ArcInstitute/evo2): three Hyena
 * kinds, each a single stage after the short conv: hcs, a short explicit filter
 * (7 taps, shared by groups of channels, no D); hcm, a medium one (128 taps,
 * grouped, with D); hcl, a modal filter with real poles, h_t = sum_n R_n
 * exp(log_p_n t), with D; plus attention layers (attn_layer_idxs). The streams
 * are interleaved (x2 = z[3j], x1 = z[3j+1], v = z[3j+2]); the MLP's activation
 * is in layer 0 only (evo2_style_activations). Config: vortex's YAML keys (as
 * the converter writes them into config.json). Shared parts: arch_striped.c.
 */
#include "arch_striped.h"

#include <string.h>

static void defaults(lcsm_hparams *hp)
{
    /* a small Evo 2-like model for random creation */
    hp->vocab_size = 512;
    hp->d_model = 64;
    hp->n_layer = 6;
    hp->n_heads = 4;
    hp->n_kv_heads = 4;
    hp->state_size = 16;
    hp->short_filter_order = 3;
    hp->in_bias = 0;
    hp->out_bias = 1;
    hp->l_max = 8192;
    hp->norm_eps = 1e-6f;
    hp->rms = hp->norm_kind = LCSM_NORM_RMS_SH;
    hp->mlp_act = LCSM_ACT_GELU;
    hp->act_first_layer_only = 1;
    hp->tie_embeddings = 1;
    hp->final_norm = 1;
    hp->column_split_hyena = 0;
    hp->interleave = 1;
    hp->column_split_attn = 1;
    hp->fir_len[0] = 7;
    hp->fir_len[1] = 128;
    hp->fir_groups[0] = hp->fir_groups[1] = 16;
    hp->rope_base = 1000000.0f; /* vortex AttentionBlock's default */
    hp->rope_scale = 1.0f;
    hp->qkv_bias = 1;
    hp->attn_out_bias = 1;
    memset(hp->layer_kind, LK_NONE, sizeof hp->layer_kind);
}

static int detect(const cJSON *root)
{
    return cJSON_GetObjectItemCaseSensitive(root, "hcl_layer_idxs") ||
           cJSON_GetObjectItemCaseSensitive(root, "hcs_layer_idxs") ||
           cJSON_GetObjectItemCaseSensitive(root, "hcm_layer_idxs");
}

static lcsm_status read_config(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    /* vortex reads column_split_hyena with a default of True; random models keep lcsm's (False) */
    if (strict)
        hp->column_split_hyena = 1, hp->interleave = 0, hp->out_bias = 0, hp->act_first_layer_only = 0;
    lcsm_status st = lcsm__striped_read(root, strict, 1, hp, err, cap);
    /* the kinds in vortex's get_block order: attention, hcl, hcm, hcs */
    static const struct {
        const char *key;
        int kind;
    } lists[] = {{"attn_layer_idxs", LK_ATTN}, {"hcl_layer_idxs", LK_HCL}, {"hcm_layer_idxs", LK_HCM},
                 {"hcs_layer_idxs", LK_HCS}};
    int any = 0;
    memset(hp->layer_kind, LK_NONE, sizeof hp->layer_kind);
    for (size_t i = 0; i < sizeof lists / sizeof lists[0] && st == LCSM_OK; i++) {
        int present = 0;
        st = lcsm__striped_layer_list(root, lists[i].key, lists[i].kind, 1, hp, &present, err, cap);
        any |= present;
    }
    /* a random model: with no list, Evo 2's stripes of seven (hcs hcm hcl
     * attention hcs hcm hcl: attention at layers 3, 10, 17, ...); the layers
     * the lists leave out hcs, hcm, hcl repeating */
    static const unsigned char stripe[7] = {LK_HCS, LK_HCM, LK_HCL, LK_ATTN, LK_HCS, LK_HCM, LK_HCL};
    for (int l = 0; st == LCSM_OK && !strict && l < hp->n_layer; l++)
        if (hp->layer_kind[l] == LK_NONE)
            hp->layer_kind[l] = any ? (unsigned char)(LK_HCS + l % 3) : stripe[l % 7];
    return st;
}

static lcsm_status write_config(const lcsm_hparams *hp, cJSON *o)
{
    return lcsm__striped_write(hp, 1, o);
}

static void layers(const lcsm_hparams *hp, lcsm_layer_spec *spec)
{
    for (int l = 0; l < hp->n_layer; l++)
        spec[l] = hp->layer_kind[l] == LK_ATTN ? lcsm__striped_attn_spec(hp, l)
                  : lcsm__striped_hyena_spec(hp, l, hp->layer_kind[l] == LK_HCL ? LCSM_FILTER_MODAL_REAL
                                                                                : LCSM_FILTER_FIR);
}


static lcsm_status tensors(lcsm_weights *w)
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, S = hp->state_size;
    lcsm_tensor *t;
    lcsm_status st = lcsm__striped_globals(w);
    for (int l = 0; l < hp->n_layer && st == LCSM_OK; l++) {
        const int kind = hp->layer_kind[l];
        if ((st = lcsm__striped_block(w, l)) != LCSM_OK)
            break;
        if (kind == LK_ATTN) {
            st = lcsm__striped_attn_io(w, l);
            continue;
        }
        if ((st = lcsm__striped_hyena_io(w, l)) != LCSM_OK)
            break;
        if (kind == LK_HCL) {
            {
                SHAPE(D, S, 1);
                ADD(l, LCSM_R_STAGE(0, LCSM_RS_POLES), 0, I_LOG_POLES, "blocks.%d.filter.log_poles", l);
                t->map = MAP_EXP; /* the device holds p = exp(log p) */
            }
            {
                SHAPE(D, S);
                ADD(l, LCSM_R_STAGE(0, LCSM_RS_RESIDUES), 0, I_RESIDUES_REAL, "blocks.%d.filter.residues", l);
            }
        } else {
            const int k = kind == LK_HCM, L = hp->fir_len[k];
            SHAPE(hp->fir_groups[k], 1, L);
            ADD(l, LCSM_R_STAGE(0, LCSM_RS_TAPS), 0, I_FIR, "blocks.%d.filter.h", l);
            t->map = MAP_FIR;
            t->dev_numel = (size_t)D * L;
        }
        /* the D skip: hcl, and FIR filters of 128 taps or more (vortex's rule) */
        if (kind == LK_HCL || hp->fir_len[kind == LK_HCM] >= 128) {
            SHAPE(D);
            ADD(l, LCSM_R_STAGE(0, LCSM_RS_SKIP), 0, LCSM_I_UNIT, "blocks.%d.filter.D", l);
        }
    }
    return st;
}

static const char *const prefixes[] = {"", "backbone.", NULL};

const lcsm_arch lcsm_arch_evo2 = {
    .name = "evo2",
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
