/*
 * lcsm-bench: the command line, and the --paper preset.
 */
#ifndef LCSM_BENCH_OPTIONS_H
#define LCSM_BENCH_OPTIONS_H

#include "bench.h"
#include "bench_peer.h"

typedef struct bench_options {
    bench_model models[BENCH_MAX_LIST];
    int n_models;
    const char *arch; /* family of the DxN models without an ARCH: prefix (default hyenadna) */
    int lens[BENCH_MAX_LIST], n_lens; /* ascending; none when only --prefill-lens is given */
    int lens_given;
    int batches[BENCH_MAX_LIST], n_batches;
    int algos[BENCH_N_ALGOS]; /* 1 = run */
    bench_weights weights[BENCH_N_WEIGHTS]; /* f32 first when present, then as given */
    int n_weights;
    int modal_tiled; /* load with lcsm_model_options.modal_tiled = 1 */
    int lag;         /* lagged flash's lag (0: the library's auto) */
    int state_size;  /* random StripedHyena / Evo 2 DxN models; 0 = the family's */
    int prefill_lens[BENCH_MAX_LIST], n_prefill_lens; /* ascending */
    int chunks[BENCH_MAX_CHUNKS], n_chunks;           /* prefill chunk sizes; 0 = one lcsm_session_prefill */
    const char *backends[BENCH_MAX_LIST];
    int n_backends;
    const char *device;
    uint64_t seed;
    int prompt, threads, warmup, repeats, profile;
    float temperature;
    double budget; /* seconds per cell; 0 = no limit */
    const char *json_path;
    int latencies;
    bench_peer peers[BENCH_MAX_PEERS];
    int n_peers;
    int peer_algos[BENCH_N_ALGOS];
    int peer_graphs;
    const char *peer_script, *python;
    double peer_timeout;
    int paper;       /* the Flash Inference paper's grid (bench_options.c) */
    int paper_scale; /* its lengths divided by this */
} bench_options;

/* The shape of the paper's main experiment, and its published speed-ups. */
typedef struct bench_paper_setting {
    int d_model, n_layer;
    int batches[4], n_batches;
    int lens[8], n_lens;
    double mixer_speedup, e2e_speedup;
} bench_paper_setting;

extern const bench_paper_setting bench_paper;

enum { BENCH_OPTIONS_OK, BENCH_OPTIONS_HELP, BENCH_OPTIONS_ERROR };

/* Parses argv into `o` (defaults first, then --paper, then the options in
 * order). On error prints the reason and the usage to stderr; on --help prints
 * the usage to stdout. */
int bench_parse_options(int argc, char **argv, bench_options *o);

#endif /* LCSM_BENCH_OPTIONS_H */
