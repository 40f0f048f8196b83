#include "bench_models.h"

#include "lcsm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Published shapes (--models NAME). Every field comes from the published
 * config (attention layers included):
 *
 * evo2-1b: Evo 2 1B base, Zymrael/vortex configs/evo2-1b-8k.yml (model_name
 *   shc-evo2-1b-8k-2T-v2; read from a copy of that file in a public
 *   repository): hidden_size 1920, num_layers 25, hcs_layer_idxs
 *   [0,4,7,11,14,18,21], hcm_layer_idxs [1,5,8,12,15,19,22], hcl_layer_idxs
 *   [2,6,9,13,16,20,23], attn_layer_idxs [3,10,17,24], hcs 7 taps and hcm 128
 *   taps in 128 filter groups, hcl 1920 groups of state 16, inner_mlp_size
 *   5120, 15 heads, vocab 512, max_seqlen 8192.
 * evo2-1b-hyena: the same without its 4 attention layers (the 21 Hyena layers
 *   in their order): the Hyena-only cell, and prefills long enough
 *   that attention's quadratic cost would hide the Hyena layers'.
 * evo2-7b: Evo 2 7B base (configs/evo2-7b-1m.yml, as copies in public
 *   repositories give it): hidden_size 4096, num_layers 32, hcs
 *   [0,4,7,11,14,18,21,25,28], hcm [1,5,8,12,15,19,22,26,29], hcl
 *   [2,6,9,13,16,20,23,27,30], attention [3,10,17,24,31], hcs 7 and hcm 128 taps
 *   in 256 groups, hcl 4096 groups of state 16, inner_mlp_size 11264, 32 heads,
 *   rotary base 10000 interpolated by 128, vocab 512, max_seqlen 2^20.
 * sh-7b: StripedHyena-7B, togethercomputer/stripedhyena configs/7b-sh-32k-v1.yml
 *   (the shape of StripedHyena-Hessian-7B's config.json): hidden_size 4096,
 *   num_layers 32 (Hyena at the even indices, attention at the odd ones),
 *   state_size 2, inner_mlp_size 14336, 32 heads (proj_groups 4), vocab 32000,
 *   max_seqlen 32768, untied embeddings.
 * sh-7b-hyena: the same without its 16 attention layers (its 16 Hyena layers):
 *   the StripedHyena cells of the Hyena-only prefills.
 *
 * max_seqlen is the cell's L in the bench (the filters of modal_tiled models
 * are materialised up to it), not the published one.
 */
/* Evo 2 1B's config beyond the table's columns (both of its rows) */
#define EVO2_1B_EXTRA \
     "{\"num_filters\":1920,\"hcs_filter_length\":7,\"hcs_filter_groups\":128,\"hcm_filter_length\":128," \
     "\"hcm_filter_groups\":128,\"hcl_filter_groups\":1920,\"short_filter_length\":3,\"short_filter_bias\":false," \
     "\"eps\":1e-6,\"rotary_emb_base\":10000,\"rotary_emb_scaling_factor\":1," \
     "\"use_interpolated_rotary_pos_emb\":false,\"inner_size_multiple_of\":128,\"proj_groups\":1," \
     "\"column_split_hyena\":false,\"column_split\":true,\"interleave\":true,\"evo2_style_activations\":true," \
     "\"tie_embeddings\":true,\"mha_out_proj_bias\":true,\"hyena_out_proj_bias\":true,\"hyena_flip_x1x2\":false," \
     "\"qkv_proj_bias\":false,\"final_norm\":true,\"mlp_activation\":\"gelu\"}"

/* StripedHyena-7B's config beyond the table's columns (both of its rows) */
#define SH_7B_EXTRA \
     "{\"num_filters\":4096,\"short_filter_length\":3,\"short_filter_bias\":true,\"eps\":1e-5," \
     "\"rotary_emb_base\":500000,\"proj_groups\":4,\"hyena_filter_groups\":1,\"column_split_hyena\":true," \
     "\"column_split\":false,\"tie_embeddings\":false,\"mha_out_proj_bias\":false,\"qkv_proj_bias\":false," \
     "\"final_norm\":true,\"use_flash_rmsnorm\":false}"

const bench_preset bench_presets[] = {
    {"evo2-1b", "evo2", "Evo 2 1B", "Zymrael/vortex configs/evo2-1b-8k.yml", 1920, 25, 5120, 15, 16, 512, 8192,
     "smlAsmlsmlAsmlsmlAsmlsmlA", EVO2_1B_EXTRA},
    {"evo2-1b-hyena", "evo2", "Evo 2 1B's Hyena layers", "Zymrael/vortex configs/evo2-1b-8k.yml", 1920, 21, 5120, 15, 16,
     512, 8192, "smlsmlsmlsmlsmlsmlsml", EVO2_1B_EXTRA},
    {"evo2-7b", "evo2", "Evo 2 7B", "Zymrael/vortex configs/evo2-7b-1m.yml", 4096, 32, 11264, 32, 16, 512, 1048576,
     "smlAsmlsmlAsmlsmlAsmlsmlAsmlsmlA",
     "{\"num_filters\":4096,\"hcs_filter_length\":7,\"hcs_filter_groups\":256,\"hcm_filter_length\":128,"
     "\"hcm_filter_groups\":256,\"hcl_filter_groups\":4096,\"short_filter_length\":3,\"short_filter_bias\":false,"
     "\"eps\":1e-6,\"rotary_emb_base\":10000,\"rotary_emb_scaling_factor\":128,"
     "\"use_interpolated_rotary_pos_emb\":true,\"inner_size_multiple_of\":16,\"proj_groups\":1,"
     "\"column_split_hyena\":false,\"column_split\":true,\"interleave\":true,\"evo2_style_activations\":true,"
     "\"tie_embeddings\":true,\"mha_out_proj_bias\":true,\"hyena_out_proj_bias\":true,\"hyena_flip_x1x2\":false,"
     "\"qkv_proj_bias\":false,\"final_norm\":true,\"mlp_activation\":\"gelu\"}"},
    {"sh-7b", "stripedhyena", "StripedHyena-7B", "togethercomputer/stripedhyena configs/7b-sh-32k-v1.yml", 4096, 32,
     14336, 32, 2, 32000, 32768, "hAhAhAhAhAhAhAhAhAhAhAhAhAhAhAhA", SH_7B_EXTRA},
    {"sh-7b-hyena", "stripedhyena", "StripedHyena-7B's Hyena layers",
     "togethercomputer/stripedhyena configs/7b-sh-32k-v1.yml", 4096, 16, 14336, 32, 2, 32000, 32768, "hhhhhhhhhhhhhhhh",
     SH_7B_EXTRA},
};
const int bench_n_presets = (int)(sizeof bench_presets / sizeof bench_presets[0]);

const bench_preset *bench_preset_find(const char *name)
{
    for (int i = 0; i < bench_n_presets; i++)
        if (!strcmp(name, bench_presets[i].name))
            return &bench_presets[i];
    return NULL;
}

char bench_preset_kind(const bench_preset *p, int l) { return p->kinds[l]; }

int bench_preset_attention(const bench_preset *p, char *buf, size_t cap)
{
    int n = 0;
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (int l = 0; l < p->layers; l++)
        if (p->kinds[l] == 'A') {
            if (len < cap)
                len += (size_t)snprintf(buf + len, cap - len, "%s%d", n ? "," : "", l);
            n++;
        }
    return n;
}

int bench_arch_known(const char *arch)
{
    for (int i = 0; lcsm_arch_name(i); i++)
        if (!strcmp(arch, lcsm_arch_name(i)))
            return 1;
    return 0;
}

int bench_default_heads(int d_model)
{
    if (d_model % 128 == 0)
        return d_model / 128;
    for (int h = 1; h <= d_model; h++)
        if (d_model % h == 0 && d_model / h <= 128)
            return h;
    return 1;
}

static int gcd(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int is_striped(const char *arch) { return !strcmp(arch, "stripedhyena") || !strcmp(arch, "evo2"); }

/* The layer lists of a preset. */
static int add_layer_lists(cJSON *o, const bench_preset *p)
{
    static const struct {
        char kind;
        const char *key;
    } lists[] = {{'h', "hyena_layer_idxs"}, {'s', "hcs_layer_idxs"}, {'m', "hcm_layer_idxs"}, {'l', "hcl_layer_idxs"},
                 {'A', "attn_layer_idxs"}};
    const int evo2 = !strcmp(p->arch, "evo2");
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        if (lists[i].kind != 'A' && evo2 == (lists[i].kind == 'h'))
            continue;
        cJSON *a = cJSON_AddArrayToObject(o, lists[i].key);
        if (!a)
            return -1;
        for (int l = 0; l < p->layers; l++)
            if (bench_preset_kind(p, l) == lists[i].kind && !cJSON_AddItemToArray(a, cJSON_CreateNumber(l)))
                return -1;
    }
    return 0;
}

char *bench_model_config_json(const bench_model *m, int L, int state_size)
{
    const bench_preset *p = m->preset;
    const char *arch = p ? p->arch : m->arch ? m->arch : "hyenadna";
    cJSON *o = p ? cJSON_Parse(p->extra) : cJSON_CreateObject();
    int ok = o != NULL && cJSON_AddStringToObject(o, "model_type", arch) != NULL;
    if (ok && p) {
        ok = cJSON_AddNumberToObject(o, "hidden_size", p->hidden) && cJSON_AddNumberToObject(o, "num_layers", p->layers) &&
             cJSON_AddNumberToObject(o, "inner_mlp_size", p->inner) &&
             cJSON_AddNumberToObject(o, "num_attention_heads", p->heads) &&
             cJSON_AddNumberToObject(o, "state_size", p->state) && cJSON_AddNumberToObject(o, "vocab_size", p->vocab) &&
             cJSON_AddNumberToObject(o, "max_seqlen", L) && add_layer_lists(o, p) == 0;
    } else if (ok) {
        const int D = m->d_model;
        ok = cJSON_AddNumberToObject(o, "d_model", D) && cJSON_AddNumberToObject(o, "n_layer", m->n_layer) &&
             cJSON_AddNumberToObject(o, "max_seq_len", L);
        /* HyenaDNA's and the long convolutions' MLP is 4 D wide; the striped
         * families keep their own default (8/3 D rounded, gated) */
        if (ok && !is_striped(arch))
            ok = cJSON_AddNumberToObject(o, "d_inner", 4 * D) != NULL;
        if (ok && is_striped(arch))
            ok = cJSON_AddNumberToObject(o, "num_attention_heads", bench_default_heads(D)) &&
                 (state_size <= 0 || cJSON_AddNumberToObject(o, "state_size", state_size));
        if (ok && !strcmp(arch, "evo2")) /* Evo 2 1B: 128 groups of 15 channels */
            ok = cJSON_AddNumberToObject(o, "hcs_filter_groups", gcd(D, 128)) &&
                 cJSON_AddNumberToObject(o, "hcm_filter_groups", gcd(D, 128)) &&
                 cJSON_AddNumberToObject(o, "hcl_filter_groups", D);
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return NULL;
    char *copy = strdup(s); /* the caller frees with free() */
    cJSON_free(s);
    return copy;
}

int bench_model_has_modal(const bench_model *m)
{
    const char *arch = m->preset ? m->preset->arch : m->arch;
    return arch && is_striped(arch);
}

double bench_tiled_per_layer(const bench_model *m, bench_algo algo, int modal_tiled)
{
    const char *arch = m->preset ? m->preset->arch : m->arch ? m->arch : "hyenadna";
    if (!strcmp(arch, "longconv"))
        return 2;
    if (!is_striped(arch))
        return 1;
    if (!modal_tiled || algo == BENCH_MODAL)
        return 0;
    /* the tiled layers: StripedHyena's Hyena layers, Evo 2's hcl; a random
     * model has the library's stripes (attention at 8, 16, ... and Evo 2's
     * hcs hcm hcl attention hcs hcm hcl) */
    const int n = m->preset ? m->preset->layers : m->n_layer, sh = !strcmp(arch, "stripedhyena");
    int tiled = 0;
    for (int l = 0; l < n; l++)
        tiled += m->preset ? bench_preset_kind(m->preset, l) == (sh ? 'h' : 'l')
                 : sh      ? !(l > 0 && l % 8 == 0)
                           : l % 7 == 2 || l % 7 == 6;
    return n > 0 ? (double)tiled / n : 0;
}
