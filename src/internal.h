/* Engine internals shared by the files of src/ (and by white-box tests). */
#ifndef LCSM_INTERNAL_H
#define LCSM_INTERNAL_H

#include "arch.h"
#include "backend.h"
#include "lcsm.h"
#include "util.h"

#include <pthread.h>
#include <stddef.h>

/* 1 if the n bytes at p are all JSON whitespace (or n == 0). */
int lcsm__only_space(const char *p, size_t n);
/* 1 if x[0, n) are all finite; else 0 and *first the first that is not. */
int lcsm__all_finite(const float *x, size_t n, size_t *first);

/* A block of the (input, output) square (src/backend.h): checks it against the
 * geometry, then runs it as an FFT tile when it is one of at least the backend's
 * threshold, else directly (lag: the filters' lag; rows: NULL or a part). The
 * one place that decides, for every backend. */
lcsm_status lcsm__block_conv(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                             lcsm_ref acc, int in0, int n_in, int out0, int n_out, int lag, const lcsm_rows *rows);

/* ---- the model */

struct lcsm_model {
    lcsm_backend *be;
    lcsm_hparams hp;
    lcsm_model_options opt;
    lcsm_layer_spec *spec; /* [n_layer]: what each layer is */
    lcsm_ref (*w)[LCSM_R_COUNT]; /* [n_layer]: device tensors by role (buf NULL: absent) */
    lcsm_ref g[LCSM_G_COUNT];    /* global device tensors; the head is the embedding when tied */
    size_t n_params;
    lcsm_buf *wbuf; /* all device tensors in one buffer */
    size_t wbuf_bytes;
    int n_tiled;           /* tiled convolutions of the whole model: G of the filters */
    int n_tiled_base;      /* of them, those that are not modal (groups 0 .. n_tiled_base - 1, then the
                            * modal ones of a model loaded with modal_tiled) */
    lcsm_filters *filters; /* NULL when n_tiled is 0 */
    int lag;               /* lagged flash (lcsm_model_options.lag, resolved): the filters' spectra start there */
    lcsm_weights *host;    /* every tensor on the host, for lcsm_model_save and tests */
    pthread_mutex_t lock;  /* guards filters_prepare */
    char last_error[512];
};

/* Builds a model from host weights (takes ownership of w on success and failure). */
lcsm_status lcsm__model_from_weights(lcsm_backend *be, lcsm_weights *w, const lcsm_model_options *opt,
                                     lcsm_model **out);

/* Makes the tiled convolutions' filters if they are not made yet (a model loaded
 * with defer_spectra 2), under the model's lock. */
lcsm_status lcsm__model_filters(lcsm_model *m);

/* ---- tokenizer constants */
enum { LCSM_TOK_CLS = 0, LCSM_TOK_SEP = 1, LCSM_TOK_BOS = 2, LCSM_TOK_MASK = 3, LCSM_TOK_PAD = 4,
       LCSM_TOK_RESERVED = 5, LCSM_TOK_UNK = 6, LCSM_TOK_A = 7, LCSM_TOK_C = 8, LCSM_TOK_G = 9,
       LCSM_TOK_T = 10, LCSM_TOK_N = 11 };

/* ---- sampling (sampler.c) */
/* The generator (splitmix64) of sequence `stream` after `draws` draws: its
 * state is the seed's plus draws times the increment, so a device sampler can
 * compute it from (seed, stream, draws) alone. */
uint64_t lcsm__rng_state(uint64_t seed, uint64_t stream, uint64_t draws);
/* Samples from logits[n] with p; `scratch` holds n floats + n ints; advances
 * *rng by one draw unless greedy (temperature 0). */
int32_t lcsm__sample(const float *logits, int n, const lcsm_sampler_params *p, uint64_t *rng,
                     void *scratch);

/* A normal deviate and a uniform one in [0, 1) from a splitmix64 stream
 * (weights.c; the families' init). */
double lcsm__normal(uint64_t *s);
double lcsm__uniform(uint64_t *s);

#endif /* LCSM_INTERNAL_H */
