/*
 * Long convolutions (Fu et al. 2023, "Simple Hardware-Efficient Long
 * Convolutions for Sequence Modeling"; HazyResearch/safari h3_conv.py and
 * long_conv_kernel.py) in safari's LM block: pre-norm LayerNorm blocks of an
 * H3-style mixer and an MLP (fc1, tanh-GELU, fc2), final LayerNorm, tied head.
 *
 * The mixer (head_dim 1): q, k, v = three projections D -> D; s = h_k * k + k_D k;
 * s = h * (s v) + D (s v); out = output_linear(q s). Two tiled convolutions per
 * layer, no short conv. q, v, k are stacked at load into one [3D][D] input
 * projection in stream order (post gate q, the second stage's multiplier v,
 * the chain input k).
 *
 * Filters are stored taps (1, D, l_max), made at load as LongConvKernel does at
 * inference: an optional moving average (AvgPool1d, zero-padded, divided by the
 * window everywhere), then the soft threshold sign(k) relu(|k| - lam). The
 * filter of a shorter sequence is the prefix (safari's forward truncates
 * differently and then wraps around; an autoregressive engine must be causal).
 */
#include "arch_hyenadna.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

/* Host-only filter parameters: stage 0 (k's filter and skip), stage 1 (kv's). */
enum { H_KERNEL0 = LCSM_ROLE_HOST, H_SKIP0, H_KERNEL1, H_SKIP1 };

enum { I_TAPS = LCSM_I_FAMILY }; /* raw taps: ~N(0, (3 lam)^2), decaying over the length */

static void defaults(lcsm_hparams *hp)
{
    hp->d_model = 64;
    hp->n_layer = 2;
    hp->d_inner = 0;
    hp->vocab_size = 12; /* HyenaDNA's characters, for random models */
    hp->pad_vocab_size_multiple = 8;
    hp->l_max = 1024;
    hp->norm_eps = 1e-5f;
    hp->lam = 0.003f; /* safari's configs/model/layer/h3-conv.yaml */
    hp->ma_window = 0;
}

static void public_config(const lcsm_hparams *hp, lcsm_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->d_model = hp->d_model;
    c->n_layer = hp->n_layer;
    c->d_inner = hp->d_inner;
    c->vocab_size = hp->vocab_size;
    c->pad_vocab_size_multiple = hp->pad_vocab_size_multiple;
    c->l_max = hp->l_max;
    c->layer_norm_epsilon = hp->norm_eps;
}

static int detect(const cJSON *root)
{
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
    const cJSON *name = cJSON_IsObject(layer) ? cJSON_GetObjectItemCaseSensitive(layer, "_name_") : NULL;
    return cJSON_IsString(name) && !strcmp(name->valuestring, "h3-conv");
}

static lcsm_status read_config(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
    if (layer && !cJSON_IsObject(layer))
        return ERR(LCSM_ERR_FORMAT, "config: 'layer' must be an object");
#define TOP(k) cJSON_GetObjectItemCaseSensitive(root, k)
#define LAYER(k) (layer ? cJSON_GetObjectItemCaseSensitive(layer, k) : NULL)
    const cJSON *lmax = TOP("max_seq_len") ? TOP("max_seq_len") : LAYER("l_max");
    int head_dim = 1, channels = 1, smoothing = hp->ma_window > 0, smooth_freq = 0, causal = 1, window = 7,
        pos_emb = 0, tie = 1;
    lcsm_status st;
    if ((st = lcsm__json_int(TOP("d_model"), "d_model", strict, 1, LCSM_MAX_DMODEL, &hp->d_model, err, cap)) ||
        (st = lcsm__json_int(TOP("n_layer"), "n_layer", strict, 1, LCSM_MAX_LAYERS, &hp->n_layer, err, cap)) ||
        (st = lcsm__json_int(TOP("d_inner"), "d_inner", 0, 1, 4 * LCSM_MAX_DMODEL, &hp->d_inner, err, cap)) ||
        (st = lcsm__json_int(TOP("vocab_size"), "vocab_size", strict, 1, LCSM_MAX_VOCAB, &hp->vocab_size, err, cap)) ||
        (st = lcsm__json_int(TOP("pad_vocab_size_multiple"), "pad_vocab_size_multiple", 0, 1, 4096,
                             &hp->pad_vocab_size_multiple, err, cap)) ||
        (st = lcsm__json_int(lmax, "max_seq_len", strict, 1, LCSM_MAX_LMAX, &hp->l_max, err, cap)) ||
        (st = lcsm__json_float(TOP("layer_norm_epsilon"), "layer_norm_epsilon", 0, LCSM_MIN_NORM_EPS, 1.0,
                               &hp->norm_eps, err, cap)) ||
        (st = lcsm__json_float(LAYER("lam"), "layer.lam", strict, 0.0, 1e6, &hp->lam, err, cap)) ||
        (st = lcsm__json_int(LAYER("head_dim"), "layer.head_dim", 0, 1, LCSM_MAX_DMODEL, &head_dim, err, cap)) ||
        (st = lcsm__json_int(LAYER("channels"), "layer.channels", 0, 1, 64, &channels, err, cap)) ||
        (st = lcsm__json_int(LAYER("ma_window_len"), "layer.ma_window_len", 0, 1, 4095, &window, err, cap)) ||
        (st = lcsm__json_int(TOP("max_position_embeddings"), "max_position_embeddings", 0, 0, LCSM_MAX_LMAX, &pos_emb,
                             err, cap)) ||
        (st = lcsm__json_bool(LAYER("use_ma_smoothing"), "layer.use_ma_smoothing", &smoothing, err, cap)) ||
        (st = lcsm__json_bool(LAYER("smooth_freq"), "layer.smooth_freq", &smooth_freq, err, cap)) ||
        (st = lcsm__json_bool(LAYER("causal"), "layer.causal", &causal, err, cap)) ||
        (st = lcsm__json_bool(TOP("tie_word_embeddings"), "tie_word_embeddings", &tie, err, cap)))
        return st;
    const cJSON *attn = TOP("attn_layer_idx");
#undef TOP
#undef LAYER
    if (head_dim != 1 || channels != 1 || smooth_freq || !causal || pos_emb != 0 || !tie ||
        (attn && !cJSON_IsNull(attn) && !(cJSON_IsArray(attn) && cJSON_GetArraySize(attn) == 0)))
        return ERR(LCSM_ERR_UNSUPPORTED,
                   "config: only head_dim 1, channels 1, causal filters without smooth_freq, no position "
                   "embeddings, tied embeddings and no attention layers are supported (head_dim %d, channels %d)",
                   head_dim, channels);
    if (smoothing && window % 2 == 0)
        return ERR(LCSM_ERR_FORMAT, "config: 'layer.ma_window_len' %d must be odd", window);
    hp->ma_window = smoothing ? window : 0;
    if (!hp->d_inner)
        hp->d_inner = 4 * hp->d_model;
    return LCSM_OK;
}

static lcsm_status check(const lcsm_hparams *hp, char *err, size_t cap)
{
    lcsm_status st = lcsm__hparams_check_shape(hp, err, cap);
    if (st == LCSM_OK && (!(hp->lam >= 0.0f && hp->lam <= 1e6f) || hp->ma_window < 0 ||
                          (hp->ma_window && hp->ma_window % 2 == 0)))
        st = ERR(LCSM_ERR_INVALID_ARGUMENT, "config: lam %g must be >= 0 and the smoothing window %d odd (0: none)",
                 hp->lam, hp->ma_window);
    return st;
}

static lcsm_status write_config(const lcsm_hparams *hp, cJSON *o)
{
    cJSON *layer = cJSON_CreateObject();
    if (!layer || !cJSON_AddItemToObject(o, "layer", layer)) {
        cJSON_Delete(layer);
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    int ok = cJSON_AddNumberToObject(o, "d_model", hp->d_model) && cJSON_AddNumberToObject(o, "n_layer", hp->n_layer) &&
             cJSON_AddNumberToObject(o, "d_inner", hp->d_inner) &&
             cJSON_AddNumberToObject(o, "vocab_size", hp->vocab_size) &&
             cJSON_AddNumberToObject(o, "pad_vocab_size_multiple", hp->pad_vocab_size_multiple) &&
             cJSON_AddNumberToObject(o, "max_seq_len", hp->l_max) &&
             cJSON_AddNumberToObject(o, "layer_norm_epsilon", hp->norm_eps) &&
             cJSON_AddBoolToObject(o, "tie_word_embeddings", 1) && cJSON_AddStringToObject(layer, "_name_", "h3-conv") &&
             cJSON_AddNumberToObject(layer, "l_max", hp->l_max) && cJSON_AddNumberToObject(layer, "lam", hp->lam) &&
             cJSON_AddNumberToObject(layer, "head_dim", 1) &&
             cJSON_AddBoolToObject(layer, "use_ma_smoothing", hp->ma_window > 0) &&
             cJSON_AddNumberToObject(layer, "ma_window_len", hp->ma_window > 0 ? hp->ma_window : 7);
    return ok ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
}

static void layers(const lcsm_hparams *hp, lcsm_layer_spec *spec)
{
    for (int l = 0; l < hp->n_layer; l++)
        spec[l] = (lcsm_layer_spec){
            .norm = LCSM_NORM_LAYER,
            .norm_bias = 1,
            .mixer = LCSM_MIXER_HYENA,
            .streams = 3, /* q (post gate), v (multiplies the second stage's input), k (the chain input) */
            .short_taps = 0,
            .in_bias = 1,
            .out_bias = 1,
            .n_stage = 2,
            .stage = {{.mult = -1, .filter = LCSM_FILTER_EXPLICIT}, {.mult = 1, .filter = LCSM_FILTER_EXPLICIT}},
            .mlp = LCSM_MLP_PLAIN,
            .act = LCSM_ACT_GELU_TANH,
            .d_inner = hp->d_inner,
            .mlp_bias = 1,
        };
}


static lcsm_status tensors(lcsm_weights *w)
{
    const lcsm_hparams *hp = &w->hp;
    const int64_t D = hp->d_model, V = hp->n_vocab, L = hp->l_max;
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
    /* q, v, k in the rows of the stacked projection: streams 0, 1, 2 */
    static const struct {
        const char *name;
        int stream;
    } qkv[] = {{"q_proj", 0}, {"k_proj", 2}, {"v_proj", 1}};
    for (int l = 0; l < hp->n_layer; l++) {
#define P "backbone.layers.%d."
        {
            SHAPE(D);
            ADD(l, LCSM_R_NORM1_W, 0, LCSM_I_NORM_W, P "norm1.weight", l);
            ADD(l, LCSM_R_NORM1_B, 0, LCSM_I_NORM_B, P "norm1.bias", l);
        }
        for (int i = 0; i < 3; i++) {
            {
                SHAPE(D, D);
                ADD(l, LCSM_R_IN_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "mixer.%s.weight", l, qkv[i].name);
                t->row0 = qkv[i].stream * (int)D;
                t->rows_total = 3 * (int)D;
            }
            {
                SHAPE(D);
                ADD(l, LCSM_R_IN_B, 0, LCSM_I_BIAS, P "mixer.%s.bias", l, qkv[i].name);
                t->row0 = qkv[i].stream * (int)D;
                t->rows_total = 3 * (int)D;
            }
        }
        {
            SHAPE(1, D, L);
            ADD(l, H_KERNEL0, 0, I_TAPS, P "mixer.k_kernel.kernel", l);
        }
        {
            SHAPE(D);
            ADD(l, H_SKIP0, 0, LCSM_I_UNIT, P "mixer.k_D", l);
        }
        {
            SHAPE(1, D, L);
            ADD(l, H_KERNEL1, 0, I_TAPS, P "mixer.kernel.kernel", l);
        }
        {
            SHAPE(D);
            ADD(l, H_SKIP1, 0, LCSM_I_UNIT, P "mixer.D", l);
        }
        {
            SHAPE(D, D);
            ADD(l, LCSM_R_OUT_W, LCSM_T_MATRIX, LCSM_I_LINEAR, P "mixer.output_linear.weight", l);
        }
        {
            SHAPE(D);
            ADD(l, LCSM_R_OUT_B, 0, LCSM_I_BIAS, P "mixer.output_linear.bias", l);
        }
        lcsm_status st = lcsm__safari_mlp_tensors(w, l);
        if (st != LCSM_OK)
            return st;
#undef P
    }
    return LCSM_OK;
}

static void init(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out)
{
    /* I_TAPS over (1, D, L): std 3 lam (sqrt(window) more with smoothing, which
     * averages), decaying by exp(-r t / L) with r from 0.5 to 2.5 across channels,
     * so that many taps survive the threshold and the filter reaches far. */
    const size_t D = (size_t)hp->d_model, L = (size_t)hp->l_max;
    const double sd = 3.0 * (hp->lam > 0 ? hp->lam : 0.05) * sqrt(hp->ma_window > 1 ? hp->ma_window : 1);
    for (size_t i = 0; i < t->numel; i++) {
        size_t c = i / L, k = i % L;
        double r = 0.5 + 2.0 * (D > 1 ? (double)c / (double)(D - 1) : 0.0);
        out[i] = (float)(sd * lcsm__normal(rng) * exp(-r * (double)k / (double)L));
    }
}

/* LongConvKernel at inference: moving average (when configured), then the soft
 * threshold, for taps k0 .. k1-1 of the l_max filter. */
static lcsm_status filter(const lcsm_weights *w, const lcsm_model_options *opt, int l, int stage, int k0, int k1,
                          float *hT, size_t ld, float *dbias)
{
    (void)opt;
    const lcsm_hparams *hp = &w->hp;
    const int D = hp->d_model, L = hp->l_max, win = hp->ma_window, half = win / 2;
    const float *raw = lcsm__tensor_get(w, l, stage ? H_KERNEL1 : H_KERNEL0)->data;
    if (dbias)
        memcpy(dbias, lcsm__tensor_get(w, l, stage ? H_SKIP1 : H_SKIP0)->data, (size_t)D * sizeof *dbias);
    const float lam = hp->lam;
    for (int c = 0; c < D; c++) {
        const float *k = raw + (size_t)c * L;
        for (int t = k0; t < k1; t++) {
            float v = k[t];
            if (win > 1) { /* zero-padded average of the taps t-half .. t+half */
                float s = 0.0f;
                for (int j = t - half; j <= t + half; j++)
                    if (j >= 0 && j < L)
                        s += k[j];
                v = s / (float)win;
            }
            const float mag = fabsf(v) - lam;
            hT[(size_t)(t - k0) * ld + c] = mag > 0.0f ? copysignf(mag, v) : 0.0f;
        }
    }
    return LCSM_OK;
}

/* HyenaDNA's characters when the vocabulary is theirs (safari's language models
 * used GPT-2's BPE, which lcsm does not tokenize). */
static int tokenizer(const lcsm_hparams *hp) { return hp->vocab_size == 12 ? LCSM_TOKENIZER_DNA : LCSM_TOKENIZER_NONE; }

static const char *const prefixes[] = {"", "model.", NULL};

const lcsm_arch lcsm_arch_longconv = {
    .name = "longconv",
    .prefixes = prefixes,
    .detect = detect,
    .defaults = defaults,
    .read_config = read_config,
    .check = check,
    .write_config = write_config,
    .layers = layers,
    .tensors = tensors,
    .init = init,
    .filter = filter,
    .public_config = public_config,
    .tokenizer = tokenizer,
};
