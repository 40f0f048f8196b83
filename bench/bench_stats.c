#include "bench_stats.h"

#include "bench_models.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A sorted copy, or NULL (n = 0 or no memory). */
static double *sorted_copy(const double *v, int n)
{
    if (n <= 0)
        return NULL;
    double *s = malloc(sizeof *s * (size_t)n);
    if (!s)
        return NULL;
    memcpy(s, v, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return s;
}

double bench_median(const double *v, int n)
{
    double *s = sorted_copy(v, n);
    if (!s)
        return 0;
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

static double rank_of_sorted(const double *s, int n, double q)
{
    int k = (int)ceil(q * n) - 1; /* nearest rank */
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return s[k];
}

double bench_percentile(const double *v, int n, double q)
{
    double *s = sorted_copy(v, n);
    if (!s)
        return 0;
    double p = rank_of_sorted(s, n, q);
    free(s);
    return p;
}

bench_latency bench_latency_summary(const double *ms, int n)
{
    bench_latency l = {0, 0, 0, 0};
    double *s = sorted_copy(ms, n);
    if (!s)
        return l;
    l.p50_ms = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    l.p99_ms = rank_of_sorted(s, n, 0.99);
    l.max_ms = s[n - 1];
    int spikes = 0;
    for (int i = 0; i < n; i++)
        spikes += ms[i] > 2 * l.p50_ms;
    l.spike_frac = (double)spikes / n;
    free(s);
    return l;
}

uint64_t bench_fnv1a(uint64_t h, const int32_t *tokens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t t = (uint32_t)tokens[i];
        for (int b = 0; b < 4; b++) {
            h ^= (t >> (8 * b)) & 0xffu;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

/*
 * The static model, from the 2-core CPU measurements of the README (D = 256 and
 * 768): dense layers run at about 5 GMAC/s (12 D^2 multiply-adds per layer and
 * token: HyenaDNA's and the striped families' gated MLPs of 8/3 D alike), the
 * lazy mixer at about 1 GMAC/s over the history (memory-bound), eager at twice
 * that, flash's mixer at ~0.5 ns x log2(L)^2 per channel and step, modal
 * recurrences and short FIR rings at ~16 ns per channel and step, and
 * recompute's forward over a prefix of t tokens at ~20 GMAC/s for its dense part
 * plus its FFT convolutions (a prefill cell is one such forward). Only the
 * tiled convolutions of a model (bench_tiled_per_layer) cost lazy and eager
 * their O(L^2). A device is assumed 10x faster (reported, but not used to skip:
 * lcsm_bench.c runs a device's first length regardless). The grid runs lengths
 * in ascending order, so from the second length on the measured times
 * (bench_estimate_scaled) replace this guess.
 */
double bench_estimate_static(const bench_cell *c, int d_model, int n_layer, int on_device)
{
    if (d_model <= 0 || n_layer <= 0)
        return 0; /* unknown shape: no estimate, the cell runs */
    const double B = c->batch, D = d_model, M = n_layer, L = c->L, P = c->prompt;
    const double steps = L - P, rows = B * D * M, lg = log2(L > 2 ? L : 2);
    const double tiled = bench_tiled_per_layer(&c->model, c->algo, c->modal_tiled);
    const double dense_step = B * 12 * D * D * M / 5e9, linear_mix = rows * 16e-9;
    const double history = tiled * rows * (L * L - P * P) / 2; /* multiply-adds of a direct mixer */
    if (c->mode == BENCH_PREFILL)
        return (B * L * 12 * D * D * M / 2e10 + B * L * D * M * lg * 1e-8) * (on_device ? 0.1 : 1);
    double s = 0;
    switch (c->algo) {
    case BENCH_LAZY: s = steps * (dense_step + linear_mix) + history / 1e9; break;
    case BENCH_EAGER: s = steps * (dense_step + linear_mix) + history / 2e9; break;
    case BENCH_FLASH:
    case BENCH_PLAIN:
    case BENCH_SMOOTH:
    case BENCH_MODAL: s = steps * (dense_step + linear_mix + tiled * rows * lg * lg * 0.5e-9); break;
    case BENCH_RECOMPUTE: s = (L * L - P * P) / 2 * B * (12 * D * D * M / 2e10 + D * M * lg * 1e-8); break;
    case BENCH_N_ALGOS: break;
    }
    return on_device ? s / 10 : s;
}

/* How the mixer's time over a whole cell grows with L. */
static double mixer_growth(const bench_cell *c, double L)
{
    double lg = log2(L > 2 ? L : 2);
    if (c->mode == BENCH_PREFILL)
        return L * lg;
    if (c->algo == BENCH_RECOMPUTE)
        return L * L;
    if (bench_tiled_per_layer(&c->model, c->algo, c->modal_tiled) <= 0)
        return L; /* recurrences and FIR rings: constant per step */
    return c->algo == BENCH_FLASH || c->algo == BENCH_MODAL || c->algo == BENCH_PLAIN ||
                   c->algo == BENCH_SMOOTH
               ? L * lg * lg
               : L * L;
}

double bench_estimate_scaled(const bench_cell *c, double gen_s, double mixer_s, int L0)
{
    if (L0 <= 0)
        return 0;
    const double g = mixer_growth(c, c->L) / mixer_growth(c, L0);
    if (mixer_s < 0 || mixer_s > gen_s || c->mode == BENCH_PREFILL)
        return gen_s * g;
    return (gen_s - mixer_s) * ((double)c->L / L0) + mixer_s * g;
}
