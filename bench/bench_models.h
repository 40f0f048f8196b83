/*
 * lcsm-bench: the models of a grid. A random model is a family (--arch, or an
 * ARCH: prefix) and a shape DxN, or one of the presets of published shapes
 * (bench_models.c holds their table); either becomes a config.json text for
 * lcsm_model_create_random_config. A saved model (--model-dir) is loaded.
 */
#ifndef LCSM_BENCH_MODELS_H
#define LCSM_BENCH_MODELS_H

#include "bench.h"

#include <stddef.h>

/* A published shape. layers has one letter per layer: 'h' a (StripedHyena)
 * Hyena layer, 's' / 'm' / 'l' Evo 2's hcs / hcm / hcl, 'A' an attention layer
 * of the published model. */
struct bench_preset {
    const char *name;   /* --models NAME */
    const char *arch;   /* model_type */
    const char *title;  /* "Evo 2 1B" */
    const char *source; /* where the shape comes from */
    int hidden, layers, inner, heads, state, vocab, published_max_seqlen;
    const char *kinds;  /* one letter per layer, see above */
    const char *extra;  /* the remaining config.json keys of the published config, as JSON */
};

extern const bench_preset bench_presets[];
extern const int bench_n_presets;

/* The preset called `name`, or NULL. */
const bench_preset *bench_preset_find(const char *name);

/* The letter of layer l of a preset. */
char bench_preset_kind(const bench_preset *p, int l);

/* The attention layers of a preset, as "3,10,17,24" (empty when none); returns
 * how many. */
int bench_preset_attention(const bench_preset *p, char *buf, size_t cap);

/* The known families: 1 when lcsm_arch_name lists `arch`. */
int bench_arch_known(const char *arch);

/* Heads of a random StripedHyena / Evo 2 model of width D: D / 128 when 128
 * divides D, else the fewest heads of at most 128 channels that divide D. */
int bench_default_heads(int d_model);

/* The config.json text of a random model (m->dir == NULL) with max_seq_len L:
 * malloc'd, NULL when out of memory. state_size 0 keeps the family's default. */
char *bench_model_config_json(const bench_model *m, int L, int state_size);

/* 1 when the model's family has modal layers (StripedHyena, Evo 2), as far as
 * the bench knows before loading it. */
int bench_model_has_modal(const bench_model *m);

/* Fraction of a model's layers whose long convolution runs as a tiled
 * convolution under `algo` (2 for longconv's two per layer), for the budget's
 * estimates: HyenaDNA 1; StripedHyena's and Evo 2's modal (hcl) layers only
 * when loaded with modal_tiled and not decoded by the modal recurrence. */
double bench_tiled_per_layer(const bench_model *m, bench_algo algo, int modal_tiled);

#endif /* LCSM_BENCH_MODELS_H */
