/*
 * The HyenaDNA family's pieces (arch_hyenadna.c) that families built on the
 * same safari LM reuse (arch_hedgehog.c): its config keys, Hyena layer spec,
 * tensors, random initialisation and implicit filters.
 */
#ifndef LCSM_ARCH_HYENADNA_H
#define LCSM_ARCH_HYENADNA_H

#include "internal.h"

extern const char *const lcsm__hyenadna_prefixes[];
void lcsm__hyenadna_defaults(lcsm_hparams *hp);
lcsm_status lcsm__hyenadna_read(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap);
lcsm_status lcsm__hyenadna_check(const lcsm_hparams *hp, char *err, size_t cap);
lcsm_status lcsm__hyenadna_write(const lcsm_hparams *hp, cJSON *o);
void lcsm__hyenadna_public_config(const lcsm_hparams *hp, lcsm_model_config *c);
/* A Hyena layer of the safari LM. */
lcsm_layer_spec lcsm__hyenadna_layer(const lcsm_hparams *hp);
/* Every tensor in checkpoint order; a layer whose hp->layer_kind is not 0 gets
 * `other`'s mixer tensors instead of the Hyena mixer's (other NULL: all Hyena). */
lcsm_status lcsm__hyenadna_tensors(lcsm_weights *w, lcsm_status (*other)(lcsm_weights *w, int l));
/* The safari LM block's second half of layer l (HyenaDNA, long convolutions):
 * norm2 and the fc1, fc2 MLP, in checkpoint order. */
lcsm_status lcsm__safari_mlp_tensors(lcsm_weights *w, int l);
void lcsm__hyenadna_init(const lcsm_hparams *hp, const lcsm_tensor *t, uint64_t *rng, float *out);
lcsm_status lcsm__hyenadna_filter(const lcsm_weights *w, const lcsm_model_options *opt, int l, int stage, int k0,
                                  int k1, float *hT, size_t ld, float *dbias);

#endif
