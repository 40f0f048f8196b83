/*
 * Model families as data (DESIGN.md section 6). A family (src/arch_<name>.c) is
 * one lcsm_arch: it reads its config into lcsm_hparams, lists its tensors by
 * role (name, shape, where the rows go, how to initialise them randomly), says
 * what every layer is (lcsm_layer_spec), and materialises the long filters of
 * its tiled convolutions. Nothing outside src/arch_*.c names a tensor; the
 * engine walks the layer table with one generic step and one generic forward.
 */
#ifndef LCSM_ARCH_H
#define LCSM_ARCH_H

#include "backend.h"
#include "lcsm.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* Largest sizes accepted, so that every size computation stays far from overflow:
 * at most 2^24 positions, 2^16 channels, 2^12 layers, 2^20 vocabulary entries. */
#define LCSM_MAX_LMAX (1 << 24)
#define LCSM_MAX_DMODEL (1 << 16)
#define LCSM_MAX_LAYERS (1 << 12)
#define LCSM_MAX_VOCAB (1 << 20)
#define LCSM_MAX_INNER_MLPS 6
/* The smallest norm eps a config file may give (a normal float): 0 makes a constant
 * row's norm 0/0, so the readers refuse it as a format error naming the field. */
#define LCSM_MIN_NORM_EPS 0x1p-126

typedef struct lcsm_arch lcsm_arch;

/* Hyper-parameters of every family (llama.cpp's llama_hparams): the shared
 * shape first, then each family's own fields. */
typedef struct lcsm_hparams {
    const lcsm_arch *arch;
    int d_model, n_layer, d_inner, vocab_size, pad_vocab_size_multiple, l_max;
    int n_vocab; /* embedding rows: vocab_size rounded up to pad_vocab_size_multiple */
    float norm_eps;
    lcsm_norm_kind norm_kind; /* the kind of every norm (LayerNorm unless the family says) */
    /* hyenadna: implicit filters */
    int emb_dim, filter_order, num_inner_mlps, short_filter_order, hyena_order;
    float activation_freq;
    /* longconv: explicit taps, soft-thresholded by lam, optionally smoothed */
    float lam;
    int ma_window; /* moving-average window (odd), 0: no smoothing */
    /* stripedhyena, evo2 (arch_striped.c) */
    int n_heads, n_kv_heads, state_size;
    int short_filter_bias, in_bias, out_bias, tie_embeddings, final_norm;
    int column_split_hyena, interleave, flip_x1x2; /* how the 3D projection splits into streams */
    lcsm_norm_kind rms;                          /* RMSNorm formula */
    lcsm_act mlp_act;
    int act_first_layer_only;                    /* Evo 2: the MLP activation in layer 0 only */
    int fir_len[2], fir_groups[2];               /* Evo 2's hcs [0] and hcm [1] */
    float rope_base, rope_scale;
    int qkv_bias, attn_out_bias, column_split_attn;
    /* hedgehog: linear attention layers (n_heads, qkv_bias, attn_out_bias too) */
    int feature_dim;
    float fm_eps, lin_eps;
    unsigned char layer_kind[LCSM_MAX_LAYERS];   /* the family's kinds (arch_striped.h, arch_hedgehog.c) */
} lcsm_hparams;

/* ---- layers */

typedef enum lcsm_mixer_kind {
    LCSM_MIXER_HYENA = 0,
    LCSM_MIXER_ATTN = 1,    /* causal softmax attention with a KV cache */
    LCSM_MIXER_LINATTN = 2, /* Hedgehog linear attention: a constant-size state per head */
    LCSM_MIXER_COUNT
} lcsm_mixer_kind;
typedef enum lcsm_filter_kind {
    LCSM_FILTER_IMPLICIT = 0,   /* HyenaDNA's filter MLP, materialised at load and tiled */
    LCSM_FILTER_EXPLICIT = 1,   /* stored taps over the whole length (longconv), tiled */
    LCSM_FILTER_MODAL = 2,      /* h_k = Re sum_n R_n p_n^k, complex poles (StripedHyena) */
    LCSM_FILTER_MODAL_REAL = 3, /* h_k = sum_n R_n exp(log_p_n k), real (Evo 2's hcl) */
    LCSM_FILTER_FIR = 4,        /* a short explicit filter (Evo 2's hcs, hcm): a ring of inputs */
    LCSM_FILTER_COUNT
} lcsm_filter_kind;

static inline int lcsm_filter_is_modal(lcsm_filter_kind k) { return k == LCSM_FILTER_MODAL || k == LCSM_FILTER_MODAL_REAL; }

/* One stage of a layer's Hyena chain. */
typedef struct lcsm_stage_spec {
    int mult;                /* stream multiplied in before the stage, -1: none */
    lcsm_filter_kind filter;
    int group;               /* the model-wide tiled convolution, -1 when not tiled (set by the model) */
    int n_modes;             /* MODAL*: states per channel */
    int fir_len;             /* FIR: taps */
} lcsm_stage_spec;
typedef enum lcsm_mlp_kind { LCSM_MLP_NONE = 0, LCSM_MLP_PLAIN = 1, LCSM_MLP_GATED = 2, LCSM_MLP_COUNT } lcsm_mlp_kind;

/* What a layer is: the generic step and forward read nothing else. */
typedef struct lcsm_layer_spec {
    lcsm_norm_kind norm; /* norm1 and norm2 */
    int norm_bias;       /* the norms have a shift */
    lcsm_mixer_kind mixer;
    /* Hyena: S streams from the input projection, a K-tap short conv, the stages */
    int streams, short_taps, short_bias, in_bias, out_bias;
    int n_stage;
    lcsm_stage_spec stage[LCSM_MAX_STAGES];
    /* attention: heads, kv heads (grouped queries), head width, rotary embedding
     * (base 0: none); the input projection is q | k | v, in_bias / out_bias */
    int n_heads, n_kv_heads, head_dim;
    float rope_base, rope_scale;
    /* linear attention (n_kv_heads = n_heads; the projection is q | k | v):
     * features per sign of the learned feature maps (LCSM_R_FMAP_Q/K), the
     * feature clamp and the denominator's eps */
    int feature_dim;
    float fm_eps, lin_eps;
    /* MLP */
    lcsm_mlp_kind mlp;
    lcsm_act act;
    int d_inner, mlp_bias;
} lcsm_layer_spec;

/* Device tensors of a layer, by role (lcsm_model.w). UP holds fc1, or
 * [W1; W2] of a gated MLP stacked at load; DOWN fc2 / W3. A stage that is not
 * tiled has its filter's tensors at LCSM_R_STAGE(i, k): poles p and residues R
 * ([D][N], c64 or f32; p = exp(log p) for real poles), the skip D [D], FIR taps
 * [D][len] (tap 0 on the current input, one row per channel). A linear
 * attention layer's feature maps FMAP_Q, FMAP_K are [H][hd][F] (f32). */
enum {
    LCSM_R_NORM1_W, LCSM_R_NORM1_B, LCSM_R_IN_W, LCSM_R_IN_B, LCSM_R_SHORT_W, LCSM_R_SHORT_B,
    LCSM_R_OUT_W, LCSM_R_OUT_B, LCSM_R_NORM2_W, LCSM_R_NORM2_B, LCSM_R_UP_W, LCSM_R_UP_B,
    LCSM_R_DOWN_W, LCSM_R_DOWN_B, LCSM_R_FMAP_Q, LCSM_R_FMAP_K, LCSM_R_STAGE0
};
enum { LCSM_RS_POLES, LCSM_RS_RESIDUES, LCSM_RS_SKIP, LCSM_RS_TAPS, LCSM_RS_COUNT };
#define LCSM_R_STAGE(i, k) (LCSM_R_STAGE0 + (i) * LCSM_RS_COUNT + (k))
#define LCSM_R_COUNT LCSM_R_STAGE(LCSM_MAX_STAGES, 0)
/* Global device tensors (lcsm_model.g). */
enum { LCSM_G_EMB, LCSM_G_NORMF_W, LCSM_G_NORMF_B, LCSM_G_HEAD, LCSM_G_COUNT };
/* Roles from here on are host-only parameters of a family's filters (not
 * uploaded): LCSM_ROLE_HOST + the family's own index. */
#define LCSM_ROLE_HOST 64

/* ---- tensors */

enum {
    LCSM_T_OPTIONAL = 1, /* may be absent from a checkpoint: the family's init fills it */
    LCSM_T_MATRIX = 2,   /* a weight matrix or embedding: stored in the weight dtype */
    LCSM_T_TIED = 4,     /* the head: absent from checkpoints that tie it to the embedding */
};

/* Random initialisation rules shared by the families (weights.c); a family's
 * own rules start at LCSM_I_FAMILY and go to its init hook. Scales follow the
 * reference training codes closely enough for healthy activations. */
enum {
    LCSM_I_LINEAR,  /* N(0, 1/fan_in) */
    LCSM_I_BIAS,    /* N(0, 0.02^2) */
    LCSM_I_NORM_W,  /* 1 + N(0, 0.1^2) */
    LCSM_I_NORM_B,  /* N(0, 0.1^2) */
    LCSM_I_CONV,    /* N(0, 0.5^2) */
    LCSM_I_UNIT,    /* N(0, 1) */
    LCSM_I_EMB,     /* N(0, 0.5^2) */
    LCSM_I_FAMILY = 32
};

typedef struct lcsm_tensor {
    char name[160];  /* without any checkpoint prefix */
    int layer;       /* -1: global */
    int role;        /* LCSM_R_* (layer), LCSM_G_* (global) or LCSM_ROLE_HOST + k */
    int ndim;
    int64_t shape[4];
    size_t numel;
    unsigned flags;  /* LCSM_T_* */
    int init;        /* LCSM_I_* or the family's */
    int row0, rows_total; /* rows [row0, row0 + shape[0]) of a role of rows_total rows (0: the whole role) */
    int map;         /* nonzero: the family's device_form makes the role's values (a permutation, ...) */
    size_t dev_numel; /* f32 values of the device form when mapped (0: numel) */
    lcsm_dtype dt;   /* device storage type (matrices: the weight dtype; c64 for complex) */
    int disk_dtype;  /* as found in the checkpoint (safetensors.h ST_*), -1 before loading */
    float *data;     /* host copy, f32 (holding the rounded values of a narrow dt) */
} lcsm_tensor;

/* The host side of a model: hyper-parameters and every tensor in checkpoint
 * order. index[layer + 1][role] is the first tensor of that role, -1 if none. */
typedef struct lcsm_weights {
    lcsm_hparams hp;
    int n, cap;
    lcsm_tensor *t;
    int (*index)[LCSM_ROLE_HOST + 32];
} lcsm_weights;

/* Appends a tensor (data not allocated yet); the name is printf-formatted.
 * Returns it, or NULL when out of memory (weights_alloc then fails). */
lcsm_tensor *lcsm__tensor_add(lcsm_weights *w, int layer, int role, int ndim, const int64_t *shape, unsigned flags,
                              int init, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* In a family's tensors(): SHAPE(dims...) then ADD(layer, role, flags, init,
 * name format, ...) appends the tensor and leaves it in `t` (an lcsm_tensor *
 * the function declares) for setting row0, map, ...; out of memory returns
 * LCSM_ERR_OUT_OF_MEMORY from the function. */
#define SHAPE(...) const int64_t shp[] = {__VA_ARGS__}
#define ADD(layer, role, flags, init, ...)                                                                   \
    do {                                                                                                     \
        if (!(t = lcsm__tensor_add(w, layer, role, (int)(sizeof shp / sizeof shp[0]), shp, flags, init,      \
                                   __VA_ARGS__)))                                                            \
            return LCSM_ERR_OUT_OF_MEMORY;                                                                   \
    } while (0)

/* The first tensor of (layer, role) (layer -1 for globals), or NULL. */
const lcsm_tensor *lcsm__tensor_get(const lcsm_weights *w, int layer, int role);
/* A tensor's values as the device holds them (f32): t->data, or for a mapped
 * tensor a new block from the family's device_form (free it when != t->data);
 * NULL when out of memory. */
float *lcsm__tensor_device_form(const lcsm_weights *w, const lcsm_tensor *t);

/* ---- the family interface */

struct lcsm_arch {
    const char *name; /* "hyenadna": model_type in config.json, --arch */
    /* Name prefixes of the checkpoints it reads, tried in order; NULL-terminated. */
    const char *const *prefixes;
    /* 1 if a config.json without a known model_type is this family's. */
    int (*detect)(const cJSON *root);
    /* The defaults of every field (the family's smallest sensible model). */
    void (*defaults)(lcsm_hparams *hp);
    /* Reads root over hp (already holding the defaults); strict: the fields a
     * checkpoint's config must have are required. */
    lcsm_status (*read_config)(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap);
    /* Ranges and consistency (config files, random models and the public config alike). */
    lcsm_status (*check)(const lcsm_hparams *hp, char *err, size_t cap);
    /* Adds this family's keys to a config.json being written. */
    lcsm_status (*write_config)(const lcsm_hparams *hp, cJSON *root);
    /* Fills spec[0 .. n_layer). */
    void (*layers)(const lcsm_hparams *hp, lcsm_layer_spec *spec);
    /* Adds every tensor, in checkpoint order (0 or LCSM_ERR_OUT_OF_MEMORY). */
    lcsm_status (*tensors)(lcsm_weights *w);
    /* Random values for the family's own init rules (>= LCSM_I_FAMILY). */
    void (*init)(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out);
    /* Taps k0 .. k1-1 of the long filter of stage `stage` of layer `layer`,
     * time-major: tap k of channel c at hT[(k - k0) * ld + c] (every one
     * written); and, when dbias is not NULL, its skip term dbias [D]. Any range
     * gives the taps of the whole filter's computation (the engine splits a
     * long filter into ranges across threads). Thread-safe. */
    lcsm_status (*filter)(const lcsm_weights *w, const lcsm_model_options *opt, int layer, int stage, int k0, int k1,
                          float *hT, size_t ld, float *dbias);
    /* The device form of a mapped tensor (t->map != 0): dev_numel f32 values
     * (rows permuted at load, filters expanded or transformed) from t->data. */
    void (*device_form)(const lcsm_weights *w, const lcsm_tensor *t, float *out);
    /* The public view of hp (lcsm_model_info.config). */
    void (*public_config)(const lcsm_hparams *hp, lcsm_model_config *cfg);
    /* The model's tokenizer (LCSM_TOKENIZER_*). */
    int (*tokenizer)(const lcsm_hparams *hp);
};

/* Tokenizers a model may have (tokenizer.c). */
enum { LCSM_TOKENIZER_NONE, LCSM_TOKENIZER_DNA, LCSM_TOKENIZER_BYTE };

extern const lcsm_arch lcsm_arch_hyenadna;
extern const lcsm_arch lcsm_arch_longconv;
extern const lcsm_arch lcsm_arch_stripedhyena;
extern const lcsm_arch lcsm_arch_evo2;
extern const lcsm_arch lcsm_arch_hedgehog;

/* The family named `name` (case-sensitive), or NULL. */
const lcsm_arch *lcsm__arch_find(const char *name);
/* Every family compiled in, NULL-terminated. */
extern const lcsm_arch *const lcsm__archs[];

/* ---- config.json (config.c) */

/* Reads a config file into hp: the family from model_type (or its detect), its
 * defaults, then the file's fields. */
lcsm_status lcsm__config_read(const char *path, lcsm_hparams *hp, char *err, size_t cap);
/* The same for a config given as text (random models): missing fields keep
 * the family's defaults; model_type (default "hyenadna") names the family. */
lcsm_status lcsm__config_parse(const char *text, size_t len, int strict, lcsm_hparams *hp, char *err, size_t cap);
lcsm_status lcsm__config_write(const char *path, const lcsm_hparams *hp, char *err, size_t cap);
/* hp from the public config (HyenaDNA's shape), checked. */
lcsm_status lcsm__hparams_from_config(const lcsm_model_config *cfg, lcsm_hparams *hp, char *err, size_t cap);
/* Shared field readers for the families: an integer or float at key (NULL or
 * null keeps *dst), required when `required`, within [lo, hi]. */
lcsm_status lcsm__json_int(const cJSON *v, const char *key, int required, int lo, int hi, int *dst, char *err,
                           size_t cap);
lcsm_status lcsm__json_float(const cJSON *v, const char *key, int required, double lo, double hi, float *dst,
                             char *err, size_t cap);
/* A boolean that must be exactly true or false (absent keeps *dst; null is refused). */
lcsm_status lcsm__json_bool(const cJSON *v, const char *key, int *dst, char *err, size_t cap);
/* The shape every family shares (d_model ... pad_vocab_size_multiple), checked. */
lcsm_status lcsm__hparams_check_shape(const lcsm_hparams *hp, char *err, size_t cap);

#endif /* LCSM_ARCH_H */
