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
    int batch, L, prompt;
    const char *impl;    /* "lcsm" or the peer's name ("torch:cuda") */
    const char *backend; /* lcsm's backend, or the peer's name */
    bench_algo algo;
} bench_row;

/* "256x8", or the directory's last part. */
void bench_model_label(const bench_model *m, char *buf, size_t cap);

void bench_print_table_header(void);
/* A measured row; `x_lazy` / `x_lazy_mixer` are lazy's time / this row's (<= 0: none). */
void bench_print_row(const bench_row *row, const bench_result *r, double x_lazy, double x_lazy_mixer);
/* A row that did not run, with the reason (a skip or a failure). */
void bench_print_not_run(const bench_row *row, const char *what, const char *why);

/* One JSON object per cell. `status` is "ok", "skipped" or "failed"; `reason`
 * may be NULL; `estimate_s` <= 0 when there was none; the per-step times go in
 * when `latencies` is set. */
void bench_json_cell(FILE *f, const bench_machine *m, const bench_row *row, const bench_result *r,
                     const char *status, const char *reason, double estimate_s, int latencies);

/* One JSON object per ratio: "a" is `speedup` times faster than "b" (time of b /
 * time of a), measured as `what`: "gen" (generation time per token, prefill
 * excluded), "mixer" (time in the mixer) or "total" (prefill + generation). */
void bench_json_ratio(FILE *f, const bench_machine *m, const bench_row *row, const char *a, const char *b,
                      const char *what, double speedup);

#endif /* LCSM_BENCH_REPORT_H */
