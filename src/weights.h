/*
 * The host-side weights of a Hyena LM and the one table that names them.
 *
 * Every tensor the model has is one row of a table (name, shape in symbols of the
 * config, how to initialise it randomly); loading, random creation, saving and
 * the device upload all walk that table, so a new tensor is one new row.
 */
#ifndef LCSM_WEIGHTS_H
#define LCSM_WEIGHTS_H

#include "lcsm.h"
#include <stddef.h>
#include <stdint.h>

/* Per-layer tensors, in table order. The implicit filter's Linears follow
 * W_FLIN: weight 0, bias 0, weight 2, bias 2, ..., and the last weight (no bias). */
enum {
    W_NORM1_W, W_NORM1_B, W_IN_W, W_IN_B, W_CONV_W, W_CONV_B, W_OUT_W, W_OUT_B, W_FBIAS, W_Z, W_T,
    W_FREQ, W_DELTAS, W_NORM2_W, W_NORM2_B, W_FC1_W, W_FC1_B, W_FC2_W, W_FC2_B, W_FLIN
};
/* Global tensors come first. */
enum { W_EMB, W_LNF_W, W_LNF_B, W_GLOBAL_COUNT };

typedef struct lcsm_tensor {
    char name[160]; /* without any checkpoint prefix */
    int ndim;
    int64_t shape[3];
    size_t numel;
    int optional; /* may be absent from a checkpoint (filled from the config) */
    int init;     /* random initialisation rule (weights.c) */
    float *data;
} lcsm_tensor;

struct lcsm_weights {
    lcsm_model_config cfg;
    int n_vocab;
    int per_layer; /* tensors per layer */
    int n;
    lcsm_tensor *t;
};
typedef struct lcsm_weights lcsm_weights;

/* Builds the table for cfg with data allocated (zeroed). NULL if out of memory. */
lcsm_weights *lcsm__weights_alloc(const lcsm_model_config *cfg);
void lcsm__weights_free(lcsm_weights *w);
/* Index of a per-layer tensor (kind W_*) of layer l, or of the k-th filter Linear
 * weight/bias (see lcsm__flin). */
static inline int lcsm__widx(const lcsm_weights *w, int layer, int kind)
{
    return W_GLOBAL_COUNT + layer * w->per_layer + kind;
}
/* Filter Linear j (0 .. n_inner+1): weight index and bias index (-1 for the last). */
int lcsm__flin_weight(const lcsm_weights *w, int layer, int j);
int lcsm__flin_bias(const lcsm_weights *w, int layer, int j);

/* Random weights from seed (deterministic across platforms). */
void lcsm__weights_randomise(lcsm_weights *w, uint64_t seed);
/* Loads `dir`/model.safetensors into w (shapes checked against the table). */
lcsm_status lcsm__weights_load(lcsm_weights *w, const char *path, char *err, size_t cap);
lcsm_status lcsm__weights_save(const lcsm_weights *w, const char *path, char *err, size_t cap);

#endif
