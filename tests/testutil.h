/* Tiny test helpers: checks that count failures, relative errors, the backends
 * to run on, and random numbers. Each test binary prints a summary line. */
#ifndef LCSM_TESTUTIL_H
#define LCSM_TESTUTIL_H

#include "lcsm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_failures, tu_checks;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        tu_checks++;                                                                                       \
        if (!(cond)) {                                                                                     \
            tu_failures++;                                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

#define CHECK_OK(call)                                                                                     \
    do {                                                                                                   \
        lcsm_status st_ = (call);                                                                          \
        CHECK(st_ == LCSM_OK, "%s -> %s (%s)", #call, lcsm_strerror(st_), lcsm_last_error());              \
    } while (0)

#define CHECK_STATUS(call, want)                                                                           \
    do {                                                                                                   \
        lcsm_status st_ = (call);                                                                          \
        CHECK(st_ == (want), "%s -> %s, want %s (%s)", #call, lcsm_strerror(st_), lcsm_strerror(want),     \
              lcsm_last_error());                                                                          \
    } while (0)

static inline int tu_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

/* max |a - b| / max |b|: the relative error we state bounds for. */
static inline double tu_rel_err_f(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), m = fabs((double)b[i]);
        num = d > num || isnan(d) ? d : num;
        den = m > den ? m : den;
    }
    return den > 0 ? num / den : num;
}

static inline uint64_t tu_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline double tu_uniform(uint64_t *s) { return (double)(tu_next(s) >> 11) * 0x1.0p-52 - 1.0; }

/* Seed: fresh per run unless LCSM_TEST_SEED is set; printed so a failure can be
 * reproduced. */
static inline uint64_t tu_seed(void)
{
    const char *e = getenv("LCSM_TEST_SEED");
    uint64_t s;
    if (e && *e) {
        s = strtoull(e, NULL, 0);
    } else {
        FILE *fp = fopen("/dev/urandom", "rb");
        if (!fp || fread(&s, sizeof s, 1, fp) != 1)
            s = 12345;
        if (fp)
            fclose(fp);
    }
    printf("seed: LCSM_TEST_SEED=%llu\n", (unsigned long long)s);
    return s;
}

/* The backends every parameterised test runs on: $LCSM_TEST_BACKENDS (comma
 * separated), default "cpu". Exit code 77 (CTest's skip) when none can start. */
static inline int tu_backends(const char *names[8])
{
    static char buf[256];
    const char *e = getenv("LCSM_TEST_BACKENDS");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : "cpu");
    int n = 0;
    for (char *tok = strtok(buf, ","); tok && n < 8; tok = strtok(NULL, ","))
        names[n++] = tok;
    return n;
}

#endif
