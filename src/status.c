/* Status codes, error messages, version and small host helpers. */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The calling thread's last message (lcsm_last_error). A handle's buffer (a
 * backend's, model's or session's last_error) may be written by calls on
 * several threads at once (sessions of one model, models of one backend), so
 * it is written and read only under handle_lock, and read into a copy of the
 * reading thread (tls_view: four in turn). */
static _Thread_local char tls_error[512];
static _Thread_local char tls_view[4][512]; /* a few, so one printf may show several */
static _Thread_local int tls_view_next;
static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;

void lcsm_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = LCSM_VERSION_MAJOR;
    if (minor)
        *minor = LCSM_VERSION_MINOR;
    if (patch)
        *patch = LCSM_VERSION_PATCH;
}

const char *lcsm_version_string(void) { return LCSM_VERSION_STRING; }

const char *lcsm_strerror(lcsm_status st)
{
    static const char *const text[] = {
        [LCSM_OK] = "success",
        [LCSM_ERR_INVALID_ARGUMENT] = "invalid argument",
        [LCSM_ERR_OUT_OF_MEMORY] = "out of memory",
        [LCSM_ERR_IO] = "input/output error",
        [LCSM_ERR_FORMAT] = "malformed model file",
        [LCSM_ERR_MISSING_TENSOR] = "missing tensor",
        [LCSM_ERR_SHAPE] = "tensor shape mismatch",
        [LCSM_ERR_UNSUPPORTED] = "unsupported",
        [LCSM_ERR_TOKEN_RANGE] = "token id out of range",
        [LCSM_ERR_LENGTH] = "sequence too long",
        [LCSM_ERR_STATE] = "call out of order",
        [LCSM_ERR_BACKEND] = "backend failure",
        [LCSM_ERR_NO_BACKEND] = "no such backend",
        [LCSM_ERR_NUMERIC] = "non-finite result",
    };
    if ((unsigned)st < sizeof text / sizeof text[0] && text[st])
        return text[st];
    return "unknown status";
}

const char *lcsm_last_error(void) { return tls_error; }

const char *lcsm__handle_error(const char *buf)
{
    char *view = tls_view[tls_view_next++ % 4];
    pthread_mutex_lock(&handle_lock);
    snprintf(view, sizeof tls_view[0], "%s", buf);
    pthread_mutex_unlock(&handle_lock);
    return view;
}

lcsm_status lcsm__fail(char *dst, size_t cap, lcsm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char text[sizeof tls_error];
    pthread_mutex_lock(&handle_lock); /* fmt's arguments may be handle buffers */
    vsnprintf(text, sizeof text, fmt, ap);
    if (dst && cap && dst != tls_error)
        snprintf(dst, cap, "%s", text);
    pthread_mutex_unlock(&handle_lock);
    va_end(ap);
    memcpy(tls_error, text, sizeof text);
    return st;
}

lcsm_status lcsm__relay(char *dst, size_t cap, lcsm_status st, const char *from)
{
    char text[sizeof tls_error];
    pthread_mutex_lock(&handle_lock); /* `from` may be a handle's buffer */
    snprintf(text, sizeof text, "%s", from && *from ? from : lcsm_strerror(st));
    pthread_mutex_unlock(&handle_lock);
    return lcsm__fail(dst, cap, st, "%s", text);
}

int lcsm__all_finite(const float *x, size_t n, size_t *first)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            *first = i;
            return 0;
        }
    return 1;
}

int lcsm__only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return 0;
    return 1;
}

int lcsm__mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a && b > (size_t)-1 / a)
        return 1;
    *out = a * b;
    return 0;
}

double lcsm__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
