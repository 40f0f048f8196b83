/*
 * lcsm-bench: the types shared by its parts.
 *
 *   lcsm_bench.c     the grid: which cells run, in which order, budget checks, ratios
 *   bench_options.c  the command line and the --paper preset
 *   bench_models.c   model families, the presets of published shapes, their config.json
 *   bench_cell.c     one lcsm cell, run in a child process (setup, warm-up, timed runs)
 *   bench_generate.c the timed loops (generation with each algorithm, recompute, prefill)
 *   bench_peer.c     the PyTorch peer: the model saved for it, its process, its JSON line
 *   bench_stats.c    medians, percentiles, the cost estimates behind --budget
 *   bench_report.c   the table on stdout and the JSON lines
 */
#ifndef LCSM_BENCH_H
#define LCSM_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* The algorithms of the grid, in the order a cell group runs them: lazy first, so
 * that every later row can show its ratio to lazy at once. MODAL is
 * LCSM_ALGO_MODAL (modal layers by their recurrence, tiled convolutions as
 * flash). RECOMPUTE is the cache-less baseline: the whole parallel forward over
 * the prefix for every token. */
/* flash: the library's lagged flash (--lag, default its auto lag); plain: flash with lag 1; smooth:
 * LCSM_ALGO_SMOOTH (the smooth schedule) */
typedef enum bench_algo {
    BENCH_LAZY,
    BENCH_EAGER,
    BENCH_FLASH,
    BENCH_MODAL,
    BENCH_RECOMPUTE,
    BENCH_PLAIN,
    BENCH_SMOOTH,
    BENCH_N_ALGOS
} bench_algo;

const char *bench_algo_name(bench_algo a);
/* BENCH_N_ALGOS for an unknown name. */
bench_algo bench_algo_from_name(const char *name);

/* Weight storage of a cell (lcsm_model_options.weight_dtype), in the order a
 * group runs them: f32 first, so that every narrow type's row shows its ratio
 * to f32 at once. */
typedef enum bench_weights { BENCH_W_F32, BENCH_W_BF16, BENCH_W_F16, BENCH_W_AUTO, BENCH_N_WEIGHTS } bench_weights;

const char *bench_weights_name(bench_weights w);
/* BENCH_N_WEIGHTS for an unknown name. */
bench_weights bench_weights_from_name(const char *name);

enum { BENCH_MAX_LIST = 16, BENCH_MAX_PEERS = 4, BENCH_MAX_CHUNKS = 4 };

typedef struct bench_preset bench_preset; /* bench_models.h */

/* A model of the grid: a family and shape with random weights, a preset of a
 * published shape, or a saved model. */
typedef struct bench_model {
    int d_model, n_layer;       /* 0 when dir is set and its config does not say */
    const char *dir;            /* NULL: random weights from the seed, l_max = the cell's L */
    const char *arch;           /* family of a random model ("hyenadna", ...); a saved one's when known */
    const bench_preset *preset; /* non-NULL: the shape of a published model (bench_models.c) */
} bench_model;

/* What a cell times: generation (prompt, then L - prompt steps), or the prompt
 * alone (L = the prompt's length, fed whole or in chunks). */
typedef enum bench_mode { BENCH_DECODE, BENCH_PREFILL } bench_mode;

/* Everything one lcsm cell needs; the child process gets a copy. */
typedef struct bench_cell {
    bench_model model;
    int batch, L, prompt;
    bench_algo algo;
    bench_mode mode;
    int chunk;             /* prefill cells: tokens per lcsm_session_extend call; 0 = one prefill */
    bench_weights weights; /* storage of the weight matrices */
    int modal_tiled;       /* lcsm_model_options.modal_tiled */
    int lag;               /* lcsm_model_options.lag of flash and modal cells (plain: 1) */
    int state_size;        /* random StripedHyena / Evo 2 models: 0 = the family's default */
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
    char arch[32];                        /* its family (lcsm_model_info.arch) */
    char layers[192];                     /* its layers in short: "2 fir(7), 2 fir(128), 2 modal-real(16); gated MLP" */
    int n_tiled_convs;                    /* lcsm_model_info.n_tiled_convs */
    int lag;                              /* lcsm_model_info.lag */
    double dense_mib;                     /* lcsm_model_info.dense_bytes: the weights as stored */
    double state_bytes_per_token;         /* lcsm_model_info.state_bytes_per_token */
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
    uint64_t tokens_hash;                /* FNV-1a of every sampled token (prefill cells: of the greedy
                                            next token of each sequence), for exactness checks */
    int n_calls;                         /* prefill cells: prefill + extend calls per prompt */
    double *lat_ms;                      /* per-position step times of the median repeat */
    int n_lat;                           /* (owned by the parent, malloc'd) */
} bench_result;

void bench_result_free(bench_result *r);

double bench_now(void);

#endif /* LCSM_BENCH_H */
