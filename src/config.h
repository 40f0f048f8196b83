/* config.json of a HyenaDNA / safari Hyena LM: read (with cJSON) and write. */
#ifndef LCSM_CONFIG_H
#define LCSM_CONFIG_H

#include "lcsm.h"
#include <stddef.h>

/* Largest sizes accepted, so that every size computation stays far from overflow:
 * at most 2^24 positions, 2^16 channels, 2^12 layers, 2^20 vocabulary entries. */
#define LCSM_MAX_LMAX (1 << 24)
#define LCSM_MAX_DMODEL (1 << 16)
#define LCSM_MAX_LAYERS (1 << 12)
#define LCSM_MAX_VOCAB (1 << 20)
#define LCSM_MAX_INNER_MLPS 6

lcsm_status lcsm__config_read(const char *path, lcsm_model_config *cfg, char *err, size_t cap);
lcsm_status lcsm__config_write(const char *path, const lcsm_model_config *cfg, char *err, size_t cap);
/* Range and consistency checks shared by load and create_random. */
lcsm_status lcsm__config_check(const lcsm_model_config *cfg, char *err, size_t cap);
/* Embedding rows: vocab_size rounded up to pad_vocab_size_multiple. */
int lcsm__config_n_vocab(const lcsm_model_config *cfg);

#endif
