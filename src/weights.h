/*
 * The host-side weights of a model: the family's tensor list (arch.h) with
 * data, and what every family shares about them: random initialisation,
 * loading from a safetensors checkpoint (prefix, names, shapes, finiteness),
 * saving, and rounding to the weight dtype.
 */
#ifndef LCSM_WEIGHTS_H
#define LCSM_WEIGHTS_H

#include "arch.h"

/* Builds hp's tensor list (the family's) with zeroed f32 data; matrices get
 * device type `weight_dt` (LCSM_DT_F32, F16 or BF16; the loader may change a
 * tensor's for --weights auto). NULL if out of memory. */
lcsm_weights *lcsm__weights_alloc(const lcsm_hparams *hp, lcsm_dtype weight_dt);
void lcsm__weights_free(lcsm_weights *w);

/* Random weights from seed (deterministic across platforms). */
void lcsm__weights_randomise(lcsm_weights *w, uint64_t seed);
/* Loads a safetensors checkpoint into w (names and shapes checked against the
 * list). With keep_disk_dtype, a matrix stored as F16 or BF16 keeps that type
 * on the device (--weights auto). */
lcsm_status lcsm__weights_load(lcsm_weights *w, const char *path, int keep_disk_dtype, char *err, size_t cap);
/* Rounds the host copy of every tensor to its device type (the f32 values the
 * device will compute with). */
void lcsm__weights_round(lcsm_weights *w);
/* Writes every tensor in its device type, under its checkpoint name. */
lcsm_status lcsm__weights_save(const lcsm_weights *w, const char *path, char *err, size_t cap);

/* n values of host f32 into dst as dt (F32, F16 or BF16). */
void lcsm__f32_convert(const float *src, size_t n, lcsm_dtype dt, void *dst);

#endif
