/* Status codes, error messages, version and small host helpers. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char tls_error[512];

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
    };
    if ((unsigned)st < sizeof text / sizeof text[0] && text[st])
        return text[st];
    return "unknown status";
}

const char *lcsm_last_error(void) { return tls_error; }

lcsm_status lcsm__fail(char *dst, size_t cap, lcsm_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_error, sizeof tls_error, fmt, ap);
    va_end(ap);
    if (dst && cap && dst != tls_error)
        snprintf(dst, cap, "%s", tls_error);
    return st;
}

lcsm_status lcsm__relay(char *dst, size_t cap, lcsm_status st, const char *from)
{
    return lcsm__fail(dst, cap, st, "%s", from && *from ? from : lcsm_strerror(st));
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
