/*
 * lcsm-bench: small statistics (medians, percentiles, the latency summary) and the
 * cost estimates that --budget compares against.
 */
#ifndef LCSM_BENCH_STATS_H
#define LCSM_BENCH_STATS_H

#include "bench.h"

/* Median of n values (the mean of the two middle ones for even n); 0 for n = 0.
 * Does not change `v`. */
double bench_median(const double *v, int n);

/* Nearest-rank percentile q in [0, 1] of n values; 0 for n = 0. */
double bench_percentile(const double *v, int n, double q);

/* p50, p99, max and the fraction of steps above twice the median, from step times
 * in milliseconds. */
bench_latency bench_latency_summary(const double *ms, int n);

/* FNV-1a over int32 tokens, continuing from `h` (start with BENCH_FNV_INIT). */
#define BENCH_FNV_INIT 0xcbf29ce484222325ull
uint64_t bench_fnv1a(uint64_t h, const int32_t *tokens, size_t n);

/* Seconds one timed generation (or prefill) of `c` should take on the CPU
 * (on_device 0) or a device (1) when nothing of this shape has been measured
 * yet: a coarse model of dense work plus the algorithm's mixer work. Only used
 * for --budget. */
double bench_estimate_static(const bench_cell *c, int d_model, int n_layer, int on_device);

/* Scales a measured cell at length L0 to c->L: the dense part grows with L,
 * the mixer part as the algorithm does on this model (L^2 for lazy, eager and
 * recompute, L log^2 L for flash and modal, when the model has tiled
 * convolutions; L when it has only recurrences and FIR rings); a prefill as
 * L log L. `mixer_s` may be negative when unknown: then all of `gen_s` scales
 * as the mixer does. */
double bench_estimate_scaled(const bench_cell *c, double gen_s, double mixer_s, int L0);

#endif /* LCSM_BENCH_STATS_H */
