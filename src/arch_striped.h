/*
 * What StripedHyena (togethercomputer/stripedhyena: SH-7B, Evo 1) and
 * StripedHyena 2 (Zymrael/vortex: Evo 2) share (arch_striped.c): RMSNorm
 * blocks, the gated MLP, the 3D input projection split into post gate x2,
 * pre-gate x1 and v (per head, interleaved, or in thirds), a K-tap short conv
 * with optional bias, out_filter_dense, the config keys of both, the layer
 * index lists, and the random initialisation of poles, residues and taps.
 */
#ifndef LCSM_ARCH_STRIPED_H
#define LCSM_ARCH_STRIPED_H

#include "internal.h"

/* hp->layer_kind values. */
enum { LK_HYENA = 0, LK_ATTN, LK_HCS, LK_HCM, LK_HCL, LK_NONE = 255 };

/* Device-form maps (lcsm_tensor.map). */
enum {
    MAP_STREAMS = 1, /* rows of the 3D projection (weight, bias, short conv) into [x2 | x1 | v] */
    MAP_FIR,         /* Evo 2 filter.h (G, 1, L): one row per channel, tap 0 on the current input */
    MAP_EXP,         /* Evo 2 log_poles: p = exp(log p) */
    MAP_QKV,         /* Evo 2 Wqkv stored per head [q_h | k_h | v_h] into [q | k | v] */
};

/* Random initialisation rules of both families. */
enum {
    I_POLES = LCSM_I_FAMILY, /* complex r e^{i theta}, r = exp(-1/tau), tau log-uniform in [4, 120] */
    I_RESIDUES,              /* complex N(0, 2/(S * 30)) */
    I_LOG_POLES,             /* real -1/tau */
    I_RESIDUES_REAL,         /* real N(0, 2/(S * 30)) */
    I_FIR,                   /* N(0, 2/L) decaying over the taps */
    I_SHORT,                 /* N(0, 0.6^2) */
};

/* Reads the keys both families use (StripedHyena's HF config.json, vortex's
 * YAML keys as JSON). `evo2` picks vortex's defaults for absent keys. */
lcsm_status lcsm__striped_read(const cJSON *root, int strict, int evo2, lcsm_hparams *hp, char *err, size_t cap);
/* Marks the layers listed under `key` with `kind` (indices >= n_layer are
 * ignored, as upstream does); a layer already marked keeps its kind when
 * keep_first, else it is an error. present: whether the key was there. */
lcsm_status lcsm__striped_layer_list(const cJSON *root, const char *key, int kind, int keep_first, lcsm_hparams *hp,
                                     int *present, char *err, size_t cap);
/* Writes the keys lcsm__striped_read reads. */
lcsm_status lcsm__striped_write(const lcsm_hparams *hp, int evo2, cJSON *o);
/* Checks the shape and the options lcsm runs. */
lcsm_status lcsm__striped_check(const lcsm_hparams *hp, char *err, size_t cap);

/* The layer spec of a Hyena layer whose single stage is `filter`, and of an
 * attention layer. */
lcsm_layer_spec lcsm__striped_hyena_spec(const lcsm_hparams *hp, int layer, lcsm_filter_kind filter);
lcsm_layer_spec lcsm__striped_attn_spec(const lcsm_hparams *hp, int layer);
/* Tensors: the globals (embedding, unembed when untied, final norm) and, per
 * layer, the norms and the gated MLP; and a Hyena layer's projection, short
 * conv and out_filter_dense. */
lcsm_status lcsm__striped_globals(lcsm_weights *w);
lcsm_status lcsm__striped_block(lcsm_weights *w, int l);
lcsm_status lcsm__striped_hyena_io(lcsm_weights *w, int l);
/* An attention layer's Wqkv and out_proj (flash_attn MHA as inner_mha_cls;
 * the stored rotary inv_freq is not read: lcsm computes it in f32 from the base). */
lcsm_status lcsm__striped_attn_io(lcsm_weights *w, int l);

void lcsm__striped_init(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out);
void lcsm__striped_device_form(const lcsm_weights *w, const lcsm_tensor *t, float *out);
void lcsm__striped_public_config(const lcsm_hparams *hp, lcsm_model_config *c);
/* Evo's byte-level tokenizer for a vocabulary of 256 to 512 ids; none for
 * StripedHyena-7B's BPE (32000). */
int lcsm__striped_tokenizer(const lcsm_hparams *hp);
/* No family of these materialises filters in its own code (modal ones are
 * generic): refuses. */
lcsm_status lcsm__striped_no_filter(const lcsm_weights *w, const lcsm_model_options *opt, int layer, int stage, int k0, int k1,
                                    float *hT, size_t ld, float *dbias);

#endif
