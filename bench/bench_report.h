/*
 * lcsm-bench: what it prints. The table on stdout (one row per cell, a ratio
 * line per group of cells that share model, batch and length) and the JSON lines
 * (one object per cell, skipped and failed cells included, and one per ratio).
 */
#ifndef LCSM_BENCH_REPORT_H
#define LCSM_BENCH_REPORT_H

#include "bench.h"

#include <stdio.h>

/* The machine and the build, repeated in every JSON object. */
typedef struct bench_machine {
    char host[128], cpu[160], os[160], commit[64], started[32];
    int cpus;
    double mem_gib;
} bench_machine;

void bench_machine_describe(bench_machine *m);

/* What a row is about. */
typedef struct bench_row {
    const bench_model *model;
    int d_model, n_layer; /* as known before running (0 for a model directory without them) */
    int batch, L, prompt; /* prefill cells: L = the prompt's length */
    const char *impl;    /* "lcsm" or the peer's name ("torch:cuda") */
    const char *backend; /* lcsm's backend, or the peer's name */
    bench_algo algo;
    bench_weights weights; /* peers: f32 */
    int modal_tiled;
    bench_mode mode;
    int chunk; /* prefill cells: 0 = one prefill call */
} bench_row;

/* "256x8" (HyenaDNA), "evo2:256x6" (another family), a preset's name
 * ("evo2-1b"), or the directory's last part. */
void bench_model_label(const bench_model *m, char *buf, size_t cap);

/* Width of the model column: the longest label of the grid (at least 9). */
void bench_set_model_width(int width);

void bench_print_table_header(void);
/* A measured row; `x_lazy` / `x_lazy_mixer` are lazy's time / this row's,
 * `x_f32` f32 weights' time / this row's (<= 0: none). */
void bench_print_row(const bench_row *row, const bench_result *r, double x_lazy, double x_lazy_mixer, double x_f32);
/* A row that did not run, with the reason (a skip or a failure). */
void bench_print_not_run(const bench_row *row, const char *what, const char *why);

/* Prefill cells: their own table. `x_f32`: the f32 cell's prefill time / this
 * row's; `x_whole`: the whole-prompt cell's / this row's (<= 0: none). */
void bench_print_prefill_header(void);
void bench_print_prefill_row(const bench_row *row, const bench_result *r, double x_f32, double x_whole);

/* One JSON object per cell. `status` is "ok", "skipped" or "failed"; `reason`
 * may be NULL; `estimate_s` <= 0 when there was none; the per-step times go in
 * when `latencies` is set. */
void bench_json_cell(FILE *f, const bench_machine *m, const bench_row *row, const bench_result *r,
                     const char *status, const char *reason, double estimate_s, int latencies);

/* One side of a ratio: "lcsm cpu flash", "torch:cuda lazy"; its weights and,
 * for prefill ratios, its chunk. */
typedef struct bench_side {
    const char *name;
    bench_weights weights;
    int chunk;
} bench_side;

/* One JSON object per ratio: "a" is `speedup` times faster than "b" (time of b /
 * time of a), measured as `what`: "gen" (generation time per token, prefill
 * excluded), "mixer" (time in the mixer), "dense" (the rest), "total" (prefill +
 * generation) or "prefill" (a prefill cell's prompt). */
void bench_json_ratio(FILE *f, const bench_machine *m, const bench_row *row, bench_side a, bench_side b,
                      const char *what, double speedup);

#endif /* LCSM_BENCH_REPORT_H */
