/* The generic block in plain C, double precision (ref_model.c): the oracle of
 * test_generic, for every family and backend. */
#ifndef LCSM_REF_MODEL_H
#define LCSM_REF_MODEL_H

#include "internal.h"

/* Logits [B][T][n_vocab] of tokens [B][T] from the model's layer table and host
 * weights (the rounded values of half-precision ones), attention's K and V held
 * as a session with kv_dtype kv holds them. 1 on success. */
int ref_model_logits(const lcsm_model *m, const int32_t *tokens, int B, int T, lcsm_weight_dtype kv, float *logits);

#endif
