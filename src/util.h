/*
 * What a backend may use of the engine: errors, host allocation (counted and
 * failure-injected), time, the cache directory and FFT-threshold settings, and
 * small helpers both backends need. Backends include this and backend.h, never
 * internal.h (the model and session internals are the engine's own).
 */
#ifndef LCSM_UTIL_H
#define LCSM_UTIL_H

#include "backend.h"
#include "lcsm.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors: every failure goes through here */

/* Formats the message into `dst` (a handle's last_error, may be NULL) and into the
 * thread-local last error, and returns `st`. */
lcsm_status lcsm__fail(char *dst, size_t cap, lcsm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define LCSM_FAIL_BE(be, st, ...) lcsm__fail((be)->last_error, sizeof (be)->last_error, st, __VA_ARGS__)
/* Copies a message (a local one or a handle's buffer) into another handle's
 * buffer and the thread-local one. */
lcsm_status lcsm__relay(char *dst, size_t cap, lcsm_status st, const char *from);
/* A handle's message, copied under the lock that its writers take into a
 * buffer of the calling thread (valid for its next three calls of this). */
const char *lcsm__handle_error(const char *buf);

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

/* ---- settings shared by the backends (backend.c) */

/* The cache directory: the option, $LCSM_CACHE_DIR, $XDG_CACHE_HOME/lcsm,
 * $HOME/.cache/lcsm, else "" (no caching). May return buf. */
const char *lcsm__cache_dir(const lcsm_backend_options *opt, char *buf, size_t cap);
/* The FFT tile threshold: the option, else $LCSM_FFT_THRESHOLD, else 0 (the
 * backend's default). LCSM_ERR_INVALID_ARGUMENT for a bad variable. */
lcsm_status lcsm__fft_threshold(const lcsm_backend_options *opt, int *out);

/* ---- checks every backend makes (backend.c) */

/* n elements of r's type at r must lie within its buffer of buf_bytes (and
 * r.buf must be set): sets *bytes to their size, else fails with
 * LCSM_ERR_INVALID_ARGUMENT naming `what`. */
lcsm_status lcsm__check_ref(lcsm_backend *be, lcsm_ref r, size_t n, size_t buf_bytes, const char *what,
                            size_t *bytes);

/* ---- filters: the layout every backend keeps (backend.c) */

/* Transposes h [rows][lh] (filter-major) into hT [lh][rows] (time-major) in
 * cache-sized tiles, and writes the diagonal of a decode step, h0d[r] =
 * h[r][0] + dbias[r] (h0d may be NULL). */
/* h0d[r] = hT[r] + dbias[r]: a filter's tap 0 plus its skip term, the diagonal
 * of a step (hT time-major, its first row). */
void lcsm__filters_diagonal(const float *hT, const float *dbias, size_t rows, float *h0d);

/* ---- half precision (weights.c) */

/* f32 -> f16 / bf16 with round-to-nearest-even (NaN stays a NaN, overflow goes
 * to infinity, as torch's .half() and .bfloat16()); the way back is
 * st_f16_to_f32 / st_bf16_to_f32 (safetensors.h) or a backend's own. */
uint16_t lcsm__f32_to_f16(float f);
uint16_t lcsm__f32_to_bf16(float f);

/* ---- timing */
double lcsm__now(void);

#endif /* LCSM_UTIL_H */
