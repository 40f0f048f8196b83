/* Engine internals shared by the files of src/ (and by white-box tests). */
#ifndef LCSM_INTERNAL_H
#define LCSM_INTERNAL_H

#include "backend.h"
#include "lcsm.h"
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

/* ---- errors: every failure goes through here */

/* Formats the message into `dst` (a handle's last_error, may be NULL) and into the
 * thread-local last error, and returns `st`. */
lcsm_status lcsm__fail(char *dst, size_t cap, lcsm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define LCSM_FAIL_BE(be, st, ...) lcsm__fail((be)->last_error, sizeof (be)->last_error, st, __VA_ARGS__)
/* Copies a backend's message into another handle's buffer and the thread-local one. */
lcsm_status lcsm__relay(char *dst, size_t cap, lcsm_status st, const char *from);

/* 1 if the n bytes at p are all JSON whitespace (or n == 0). */
int lcsm__only_space(const char *p, size_t n);

/* ---- host memory (alloc.c): every allocation of the library goes through
 * these, so tests can count live blocks and inject failures. */
void *lcsm__malloc(size_t n);
void *lcsm__calloc(size_t n, size_t size); /* overflow-checked */
void *lcsm__realloc(void *p, size_t n);
char *lcsm__strdup(const char *s);
void lcsm__free(void *p);
/* For allocators of others: 1 = behave as if out of memory now. */
int lcsm__alloc_fails(void);
void lcsm__alloc_track(long delta);
/* Test hooks: fail the n-th allocation from now (-1: none); whether it happened;
 * blocks alive; allocations attempted so far. */
void lcsm__alloc_inject(long n);
int lcsm__alloc_injected(void);
long lcsm__alloc_live(void);
long lcsm__alloc_count(void);
/* Device allocations (GPU backends' buffers) have their own counter, so a test
 * can fail the n-th device buffer for every n without also failing host blocks:
 * lcsm__dev_alloc_fails() is asked before each device allocation (1 = fail it as
 * out of memory), lcsm__dev_alloc_track(+1 / -1) told of each buffer made and
 * released; inject, injected, live and count as for host allocations. */
int lcsm__dev_alloc_fails(void);
void lcsm__dev_alloc_track(long delta);
void lcsm__dev_alloc_inject(long n);
int lcsm__dev_alloc_injected(void);
long lcsm__dev_alloc_live(void);
long lcsm__dev_alloc_count(void);
int lcsm__mul_overflows(size_t a, size_t b, size_t *out);

/* ---- shared by the backends (backend.c) */

/* The cache directory: the option, $LCSM_CACHE_DIR, $XDG_CACHE_HOME/lcsm,
 * $HOME/.cache/lcsm, else "" (no caching). May return buf. */
const char *lcsm__cache_dir(const lcsm_backend_options *opt, char *buf, size_t cap);
/* The FFT tile threshold: the option, else $LCSM_FFT_THRESHOLD, else 0 (the
 * backend's default). LCSM_ERR_INVALID_ARGUMENT for a bad variable. */
lcsm_status lcsm__fft_threshold(const lcsm_backend_options *opt, int *out);
/* 1 if [r.off, r.off + n) lies within a buffer of buf_n floats. */
static inline int lcsm__ref_fits(size_t off, size_t n, size_t buf_n) { return off <= buf_n && n <= buf_n - off; }
/* A block of the (input, output) square (src/backend.h): checks it against the
 * geometry, then runs it as an FFT tile when it is one of at least the backend's
 * threshold, else directly. The one place that decides, for every backend. */
lcsm_status lcsm__block_conv(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                             lcsm_ref acc, int in0, int n_in, int out0, int n_out);

/* ---- the model */

typedef struct lcsm_layer {
    lcsm_ref norm1_w, norm1_b, norm2_w, norm2_b;
    lcsm_ref in_w, in_b;   /* [3D][D], [3D] */
    lcsm_ref conv_w, conv_b; /* [3D][3], [3D] */
    lcsm_ref out_w, out_b; /* [D][D], [D] */
    lcsm_ref fc1_w, fc1_b; /* [DI][D], [DI] */
    lcsm_ref fc2_w, fc2_b; /* [D][DI], [D] */
} lcsm_layer;

/* Host copy of the weights in lcsm's canonical order (model.c's tensor table). */
typedef struct lcsm_weights lcsm_weights;

struct lcsm_model {
    lcsm_backend *be;
    lcsm_model_config cfg;
    lcsm_model_options opt;
    int n_vocab;   /* padded rows of the embedding */
    size_t n_params;
    lcsm_buf *wbuf; /* all dense weights in one device buffer */
    size_t wbuf_floats;
    lcsm_layer *layers;
    lcsm_ref emb, lnf_w, lnf_b, head; /* head == emb when tied */
    lcsm_filters *filters; /* all layers: G = n_layer */
    lcsm_weights *host;    /* kept for lcsm_model_save */
    pthread_mutex_t lock;  /* guards filters_prepare */
    char last_error[512];
};

/* Builds a model from host weights (takes ownership of w on success and failure). */
lcsm_status lcsm__model_from_weights(lcsm_backend *be, lcsm_weights *w,
                                     const lcsm_model_options *opt, lcsm_model **out);

/* ---- implicit filter (filter.c) */

/* Parameters of one layer's implicit filter, host pointers. */
typedef struct lcsm_filter_params {
    const float *z;     /* [l_max][emb_dim] */
    const float *t;     /* [l_max] */
    const float *w[8];  /* Linear weights, w[0] [F][E], w[1..n] [F][F], w[n+1] [D][F] */
    const float *b[8];  /* biases of the first n+1 Linears */
    const float *freq;  /* [F] */
    const float *deltas; /* [D] */
    int n_inner;        /* num_inner_mlps */
    int emb_dim, order, D;
} lcsm_filter_params;

/* h[c][k] for c < D, k < len (len <= l_max): the materialised filter. */
lcsm_status lcsm__filter_materialise(const lcsm_filter_params *p, float shift, int len, float *h);

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

/* ---- timing */
double lcsm__now(void);

#endif /* LCSM_INTERNAL_H */
