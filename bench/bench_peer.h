/*
 * lcsm-bench: the PyTorch peer (bench/peers/torch_peer.py), run for the same
 * cells on the same weights.
 *
 * For random models the bench saves the cell's model (lcsm_model_save, in a
 * child process so that the parent stays free of threads) into a temporary
 * directory that is removed afterwards. The peer runs once per cell and peer
 * algorithm:
 *
 *   PYTHON SCRIPT --model DIR --algo recompute|lazy|flash --batch B --len L
 *                 --prompt P [--device cpu|cuda] [--threads N] [--cuda-graphs]
 *                 [--warmup N] [--latencies]
 *
 * and prints exactly one JSON line: its timings, or {"error": "..."} with a
 * nonzero exit status.
 */
#ifndef LCSM_BENCH_PEER_H
#define LCSM_BENCH_PEER_H

#include "bench.h"

/* One --peers entry: "torch" (the peer picks CUDA when present), "torch:cuda",
 * "torch:cpu"; "torch:cuda+graphs" runs that peer under CUDA graphs (so one
 * invocation can list the peer with and without them). */
typedef struct bench_peer {
    char name[32];      /* as given, for the table */
    char device[16];    /* "" (peer's choice), "cuda" or "cpu" */
    int graphs;         /* "+graphs": CUDA graphs for this peer (as --peer-graphs for all) */
} bench_peer;

/* Parses one --peers entry; 0 on success. */
int bench_peer_parse(const char *spec, bench_peer *p);

typedef struct bench_peer_opts {
    const char *python, *script;
    int threads, warmup, cuda_graphs, latencies;
    double timeout_s; /* 0: none */
} bench_peer_opts;

/* Saves the random model of the grid (its config.json text from
 * bench_model_config_json with l_max = L, f32 weights from `seed`, the same as
 * the lcsm cells') into a new temporary directory, written to `dir`. Returns
 * 0, or -1 with the reason in `err`. */
int bench_peer_save_model(const bench_model *model, int L, uint64_t seed, char *dir, size_t dir_cap, char *err,
                          size_t err_cap);

/* Removes what bench_peer_save_model wrote, and the directory. */
void bench_peer_remove_model(const char *dir);

/* Runs the peer for one cell and fills `r` (host_peak_mib from wait4; the peer's
 * per-step times in r->lat_ms when opts->latencies). */
void bench_run_peer(const bench_peer_opts *o, const bench_peer *p, const char *model_dir, bench_algo algo, int batch,
                    int L, int prompt, bench_result *r);

#endif /* LCSM_BENCH_PEER_H */
