/*
 * lcsm-bench: the types shared by its parts.
 *
 *   lcsm_bench.c     the grid: which cells run, in which order, budget checks, ratios
 *   bench_options.c  the command line and the presets (--paper)
 *   bench_cell.c     one lcsm cell, run in a child process (setup, warm-up, timed runs)
 *   bench_generate.c the timed generation loops (session algorithms and recompute)
 *   bench_peer.c     the PyTorch peer: the model saved for it, its process, its JSON line
 *   bench_stats.c    medians, percentiles, the cost estimates behind --budget
 *   bench_report.c   the table on stdout and the JSON lines
 */
#ifndef LCSM_BENCH_H
#define LCSM_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* The algorithms of the grid, in the order a cell group runs them: lazy first, so
 * that every later row can show its ratio to lazy at once. RECOMPUTE is the
 * cache-less baseline: the whole parallel forward over the prefix for every token. */
typedef enum bench_algo { BENCH_LAZY, BENCH_EAGER, BENCH_FLASH, BENCH_RECOMPUTE, BENCH_N_ALGOS } bench_algo;

const char *bench_algo_name(bench_algo a);
/* BENCH_N_ALGOS for an unknown name. */
bench_algo bench_algo_from_name(const char *name);

enum { BENCH_MAX_LIST = 16, BENCH_MAX_PEERS = 4 };

/* A model of the grid: a shape with random weights, or a saved model. */
typedef struct bench_model {
    int d_model, n_layer; /* 0 when dir is set: read from the model */
    const char *dir;      /* NULL: random weights from the seed, l_max = the cell's L */
} bench_model;

/* Everything one lcsm cell needs; the child process gets a copy. */
typedef struct bench_cell {
    bench_model model;
    int batch, L, prompt;
    bench_algo algo;
    const char *backend; /* "cpu", "opencl" */
    const char *device;  /* NULL: the backend's default */
    int threads;         /* CPU worker threads, 0 = one per processor */
    int warmup, repeats;
    float temperature; /* 0 = greedy */
    uint64_t seed;     /* weights (random models) and sampler */
    int profile;       /* device backends: one more, profiled generation for the mixer split */
} bench_cell;

/* Start-up costs, outside the timed region. */
typedef struct bench_startup {
    double backend_s;      /* lcsm_backend_create: device, threads, FFT threshold, kernels */
    double kernel_build_s; /* of which building or loading our kernels (GPU backends) */
    int kernels_from_cache;
    double plan_s;    /* FFT plans made so far (after session creation) */
    double model_s;   /* weights, filters, tile spectra */
    double session_s; /* state, plans of the session's tile sizes */
} bench_startup;

/* The per-token latency summary of one generation. */
typedef struct bench_latency {
    double p50_ms, p99_ms, max_ms;
    double spike_frac; /* steps slower than twice the median */
} bench_latency;

/* One measured cell (lcsm or peer). Times are medians over the repeats; the
 * latency summary and the per-position array come from the median repeat. */
typedef struct bench_result {
    int ok;
    char err[256];
    char device[256]; /* the backend's description, or the peer's device */
    char peer_version[64]; /* peers: the framework's version */
    int cuda_graphs;       /* peers */
    int d_model, n_layer, d_inner, l_max; /* the model as run */
    long long steps;                      /* tokens fed per sequence after the prompt: L - prompt */
    double total_s, prefill_s, gen_s;     /* total = prefill + generation */
    /* Where the mixer / rest split comes from: "host" (CPU backend: host time of
     * the operations), "device" (kernel times of a profiled generation, --profile),
     * or "" (unknown: recompute, peers, device backends without --profile, whose
     * host times are only enqueue times). */
    char split[8];
    double mixer_s, tiles_s, dense_s; /* mixer = long + short convolutions and gating; tiles = flash
                                         tiles or eager pushes (part of mixer); dense = the rest */
    bench_latency lat;
    bench_startup startup;
    double setup_s;                      /* all of start-up */
    double host_peak_mib;                /* the child's peak resident memory (wait4) */
    double device_peak_mib;              /* lcsm_backend_stats.device_bytes_peak; 0 on the CPU */
    double state_mib, weight_mib;        /* session state; weights + filters + spectra */
    int has_tokens;
    uint64_t tokens_hash;                /* FNV-1a of every sampled token, for exactness checks */
    double *lat_ms;                      /* per-position step times of the median repeat */
    int n_lat;                           /* (owned by the parent, malloc'd) */
} bench_result;

void bench_result_free(bench_result *r);

double bench_now(void);

#endif /* LCSM_BENCH_H */
