/*
 * lcsm-bench: times generation over a grid of models, batch sizes, lengths,
 * decoding algorithms and backends, optionally next to PyTorch peers on the same
 * weights, and prints a table, ratios measured in the same invocation, and JSON
 * lines (bench/plot.py draws them). `lcsm-bench --help` lists the options;
 * bench/RESULTS.md has the commands behind each published table.
 *
 * Order: for each model, batch and length (ascending), the lcsm algorithms
 * (lazy, eager, flash, recompute) on each backend, then the peers; a ratio line
 * closes each group. Every lcsm cell runs in its own child process
 * (bench_cell.c), so this process never creates a thread or loads a driver and
 * each cell's peak memory is its own.
 */
#include "bench.h"
#include "bench_cell.h"
#include "bench_options.h"
#include "bench_peer.h"
#include "bench_report.h"
#include "bench_stats.h"
#include "lcsm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const algo_names[BENCH_N_ALGOS] = {"lazy", "eager", "flash", "recompute"};

const char *bench_algo_name(bench_algo a) { return a >= 0 && a < BENCH_N_ALGOS ? algo_names[a] : "?"; }

bench_algo bench_algo_from_name(const char *name)
{
    for (int a = 0; a < BENCH_N_ALGOS; a++)
        if (!strcmp(name, algo_names[a]))
            return (bench_algo)a;
    return BENCH_N_ALGOS;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bench_result_free(bench_result *r)
{
    free(r->lat_ms);
    r->lat_ms = NULL;
    r->n_lat = 0;
}

/* ------------------------------------------------ measured history (budget) */

/* "Who" ran a cell: lcsm backend k is k, peer p is PEER_BASE + p. */
enum { PEER_BASE = 100, MAX_HISTORY = 4096 };

typedef struct history_entry {
    int model, batch, who, L;
    bench_algo algo;
    int ok;
    double gen_s, mixer_s; /* mixer_s < 0: unknown */
} history_entry;

static history_entry history[MAX_HISTORY];
static int n_history;

static void remember(int model, int batch, int who, bench_algo algo, int L, const bench_result *r)
{
    if (n_history == MAX_HISTORY)
        return;
    history[n_history++] = (history_entry){model, batch, who, L, algo, r->ok, r->gen_s,
                                           r->split[0] ? r->mixer_s : -1};
}

/* The longest earlier cell of the same model, batch, runner and algorithm. */
static const history_entry *previous(int model, int batch, int who, bench_algo algo, int L)
{
    const history_entry *best = NULL;
    for (int i = 0; i < n_history; i++) {
        const history_entry *h = &history[i];
        if (h->model == model && h->batch == batch && h->who == who && h->algo == algo && h->L < L &&
            (!best || h->L > best->L))
            best = h;
    }
    return best;
}

/* Decides whether a cell runs. Returns 1 to run; 0 with `why` filled to skip.
 * *estimate_s gets the estimate (0 when none). */
static int should_run(const bench_options *o, int model, const bench_cell *c, int who, int on_device, double runs,
                      double *estimate_s, char *why, size_t cap)
{
    const history_entry *h = previous(model, c->batch, who, c->algo, c->L);
    *estimate_s = 0;
    if (h && !h->ok) {
        snprintf(why, cap, "it failed at L = %d", h->L);
        return 0;
    }
    double one = h ? bench_estimate_scaled(c->algo, h->gen_s, h->mixer_s, h->L, c->L)
                   : bench_estimate_static(c, o->models[model].d_model, o->models[model].n_layer, on_device);
    *estimate_s = one * runs;
    /* The static model is calibrated on a CPU: on a device (or a CUDA peer) the
     * first length runs whatever it says, and longer ones scale from it. */
    if (!h && on_device)
        return 1;
    if (o->budget > 0 && *estimate_s > o->budget) {
        snprintf(why, cap, "estimated %.*f s > budget %g s (%s)", *estimate_s < 10 ? 3 : 0, *estimate_s, o->budget,
                 h ? "scaled from a shorter cell" : "static estimate");
        return 0;
    }
    return 1;
}

/* -------------------------------------------------------- cell groups */

/* The results of one (model, batch, length): lcsm per backend and algorithm,
 * peers per peer and algorithm. */
typedef struct group {
    bench_result lcsm[BENCH_MAX_LIST][BENCH_N_ALGOS];
    bench_result peer[BENCH_MAX_PEERS][BENCH_N_ALGOS];
} group;

static group g_group; /* large: kept off the stack */

static void group_clear(group *g)
{
    for (int k = 0; k < BENCH_MAX_LIST; k++)
        for (int a = 0; a < BENCH_N_ALGOS; a++)
            bench_result_free(&g->lcsm[k][a]);
    for (int p = 0; p < BENCH_MAX_PEERS; p++)
        for (int a = 0; a < BENCH_N_ALGOS; a++)
            bench_result_free(&g->peer[p][a]);
    memset(g, 0, sizeof *g);
}

/* The per-step generation time: what every ratio compares. */
static double per_tok(const bench_result *r) { return r->gen_s / (r->steps > 0 ? (double)r->steps : 1); }

/* Published results of the paper block: one line per backend, batch and length. */
typedef struct paper_line {
    const char *backend;
    int batch, L;
    double mixer_x, total_x; /* mixer_x <= 0: no mixer split */
} paper_line;

static paper_line paper_lines[256];
static int n_paper_lines;

typedef struct run_ctx {
    const bench_options *o;
    const bench_machine *m;
    FILE *json;
    group *g;
    int shown_backend[BENCH_MAX_LIST], shown_peer[BENCH_MAX_PEERS];
} run_ctx;

static void run_lcsm_cells(run_ctx *x, int mi, int batch, int L)
{
    const bench_options *o = x->o;
    static const bench_algo order[] = {BENCH_LAZY, BENCH_EAGER, BENCH_FLASH, BENCH_RECOMPUTE};
    for (size_t ai = 0; ai < sizeof order / sizeof order[0]; ai++) {
        const bench_algo algo = order[ai];
        if (!o->algos[algo])
            continue;
        for (int k = 0; k < o->n_backends; k++) {
            const int on_device = strcmp(o->backends[k], "cpu") != 0;
            bench_cell c = {o->models[mi], batch, L, o->prompt, algo, o->backends[k], o->device, o->threads,
                            o->warmup, o->repeats, o->temperature, o->seed, o->profile && on_device};
            bench_row row = {&o->models[mi], o->models[mi].d_model, o->models[mi].n_layer, batch, L, o->prompt,
                             "lcsm", o->backends[k], algo};
            char why[256];
            double est = 0;
            /* A profiled pass on a device is one more generation. */
            const double runs = o->repeats + (c.profile && algo != BENCH_RECOMPUTE ? 1 : 0);
            if (!should_run(o, mi, &c, k, on_device, runs, &est, why, sizeof why)) {
                bench_print_not_run(&row, "skipped", why);
                bench_json_cell(x->json, x->m, &row, NULL, "skipped", why, est, 0);
                continue;
            }
            bench_result *r = &x->g->lcsm[k][algo];
            bench_run_cell(&c, r);
            remember(mi, batch, k, algo, L, r);
            if (!r->ok) {
                bench_print_not_run(&row, "failed", r->err);
                bench_json_cell(x->json, x->m, &row, r, "failed", r->err, est, 0);
                continue;
            }
            if (!x->shown_backend[k]++)
                printf("  (backend %s: %s)\n", o->backends[k], r->device);
            const bench_result *lazy = &x->g->lcsm[k][BENCH_LAZY];
            double xl = 0, xm = 0;
            if (algo != BENCH_LAZY && lazy->ok) {
                xl = per_tok(lazy) / per_tok(r);
                if (lazy->split[0] && r->split[0] && r->mixer_s > 0)
                    xm = lazy->mixer_s / r->mixer_s;
            }
            bench_print_row(&row, r, xl, xm);
            bench_json_cell(x->json, x->m, &row, r, "ok", NULL, est, o->latencies);
        }
    }
}

static void run_peer_cells(run_ctx *x, int mi, int batch, int L)
{
    const bench_options *o = x->o;
    static const bench_algo order[] = {BENCH_LAZY, BENCH_FLASH, BENCH_RECOMPUTE};
    const bench_model *model = &o->models[mi];
    char dir[4096] = "", err[256] = "";
    const int saved = !model->dir; /* random weights: save this cell's model for the peers */
    int have_dir = model->dir != NULL;
    if (model->dir)
        snprintf(dir, sizeof dir, "%s", model->dir);
    bench_peer_opts po = {o->python, o->peer_script, o->threads, o->warmup, o->peer_graphs, o->latencies,
                          o->peer_timeout};
    for (int p = 0; p < o->n_peers; p++)
        for (size_t ai = 0; ai < sizeof order / sizeof order[0]; ai++) {
            const bench_algo algo = order[ai];
            if (!o->peer_algos[algo])
                continue;
            const bench_peer *peer = &o->peers[p];
            bench_cell c = {*model, batch, L, o->prompt, algo, peer->name, NULL, o->threads, o->warmup,
                            o->repeats, o->temperature, o->seed, 0};
            bench_row row = {model, model->d_model, model->n_layer, batch, L, o->prompt, peer->name, peer->name, algo};
            char why[256];
            double est = 0;
            if (!should_run(o, mi, &c, PEER_BASE + p, strcmp(peer->device, "cpu") != 0, 1, &est, why, sizeof why)) {
                bench_print_not_run(&row, "skipped", why);
                bench_json_cell(x->json, x->m, &row, NULL, "skipped", why, est, 0);
                continue;
            }
            if (!have_dir && !*err) {
                if (bench_peer_save_model(model->d_model, model->n_layer, L, o->seed, dir, sizeof dir, err,
                                          sizeof err) == 0)
                    have_dir = 1;
            }
            bench_result *r = &x->g->peer[p][algo];
            if (!have_dir) {
                memset(r, 0, sizeof *r);
                snprintf(r->err, sizeof r->err, "%s", err);
            } else {
                bench_run_peer(&po, peer, dir, algo, batch, L, o->prompt, r);
            }
            remember(mi, batch, PEER_BASE + p, algo, L, r);
            if (!r->ok) {
                bench_print_not_run(&row, "failed", r->err);
                bench_json_cell(x->json, x->m, &row, r, "failed", r->err, est, 0);
                continue;
            }
            if (!x->shown_peer[p]++)
                printf("  (peer %s: %s, torch %s%s)\n", peer->name, r->device, r->peer_version,
                       r->cuda_graphs ? ", CUDA graphs" : "");
            const bench_result *lazy = &x->g->peer[p][BENCH_LAZY];
            double xl = algo != BENCH_LAZY && lazy->ok ? per_tok(lazy) / per_tok(r) : 0;
            bench_print_row(&row, r, xl, 0);
            bench_json_cell(x->json, x->m, &row, r, "ok", NULL, est, o->latencies);
        }
    if (saved && have_dir)
        bench_peer_remove_model(dir);
}

/* Appends one item to a comma-separated line. */
static void add_item(char *line, size_t cap, int *n_items, const char *fmt, ...)
{
    size_t len = strlen(line);
    snprintf(line + len, cap - len, "%s", (*n_items)++ ? ", " : "");
    len = strlen(line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + len, cap - len, fmt, ap);
    va_end(ap);
}

/* The ratio lines of a group, and their JSON objects. A ratio is "x N": the
 * first named is N times faster (per generated token, prefill excluded). */
static void print_ratios(run_ctx *x, int mi, int batch, int L)
{
    const bench_options *o = x->o;
    group *g = x->g;
    char label[64], head[128], line[1024], a[96], b[96];
    bench_model_label(&o->models[mi], label, sizeof label);
    snprintf(head, sizeof head, "  = %s B=%d L=%d", label, batch, L);
    bench_row row = {&o->models[mi], o->models[mi].d_model, o->models[mi].n_layer, batch, L, o->prompt, "lcsm", "", 0};
    static const bench_algo others[] = {BENCH_LAZY, BENCH_EAGER, BENCH_RECOMPUTE};
    for (int k = 0; k < o->n_backends; k++) {
        const bench_result *f = &g->lcsm[k][BENCH_FLASH];
        if (!f->ok)
            continue;
        int n = 0;
        line[0] = '\0';
        snprintf(a, sizeof a, "lcsm %s flash", o->backends[k]);
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
            const bench_result *r = &g->lcsm[k][others[i]];
            if (!r->ok)
                continue;
            const double xr = per_tok(r) / per_tok(f);
            add_item(line, sizeof line, &n, "x%.2f vs %s", xr, bench_algo_name(others[i]));
            snprintf(b, sizeof b, "lcsm %s %s", o->backends[k], bench_algo_name(others[i]));
            bench_json_ratio(x->json, x->m, &row, a, b, "gen", xr);
            if (r->split[0] && f->split[0] && f->mixer_s > 0) {
                const double xm = r->mixer_s / f->mixer_s;
                size_t len = strlen(line);
                snprintf(line + len, sizeof line - len, " (mixer x%.1f)", xm);
                bench_json_ratio(x->json, x->m, &row, a, b, "mixer", xm);
            }
            if (others[i] == BENCH_LAZY && o->paper && n_paper_lines < 256)
                paper_lines[n_paper_lines++] = (paper_line){
                    o->backends[k], batch, L,
                    r->split[0] && f->split[0] && f->mixer_s > 0 ? r->mixer_s / f->mixer_s : 0,
                    r->total_s / f->total_s};
        }
        if (n)
            printf("%s  %s flash: %s\n", head, o->backends[k], line);
    }
    /* Backend against backend, algorithm by algorithm: each against the first backend. */
    for (int k = 1; k < o->n_backends; k++) {
        int n = 0;
        line[0] = '\0';
        for (int al = 0; al < BENCH_N_ALGOS; al++) {
            const bench_result *r0 = &g->lcsm[0][al], *r1 = &g->lcsm[k][al];
            if (!r0->ok || !r1->ok)
                continue;
            const double xr = per_tok(r0) / per_tok(r1);
            add_item(line, sizeof line, &n, "%s x%.2f", bench_algo_name((bench_algo)al), xr);
            snprintf(a, sizeof a, "lcsm %s %s", o->backends[k], bench_algo_name((bench_algo)al));
            snprintf(b, sizeof b, "lcsm %s %s", o->backends[0], bench_algo_name((bench_algo)al));
            bench_json_ratio(x->json, x->m, &row, a, b, "gen", xr);
        }
        if (n)
            printf("%s  %s vs %s: %s\n", head, o->backends[k], o->backends[0], line);
    }
    /* lcsm's flash against every peer algorithm. */
    for (int k = 0; k < o->n_backends; k++) {
        const bench_result *f = &g->lcsm[k][BENCH_FLASH];
        if (!f->ok)
            continue;
        for (int p = 0; p < o->n_peers; p++) {
            int n = 0;
            line[0] = '\0';
            snprintf(a, sizeof a, "lcsm %s flash", o->backends[k]);
            static const bench_algo peer_order[] = {BENCH_FLASH, BENCH_LAZY, BENCH_RECOMPUTE};
            for (size_t i = 0; i < sizeof peer_order / sizeof peer_order[0]; i++) {
                const bench_result *r = &g->peer[p][peer_order[i]];
                if (!r->ok)
                    continue;
                const double xr = per_tok(r) / per_tok(f);
                add_item(line, sizeof line, &n, "x%.2f vs its %s", xr, bench_algo_name(peer_order[i]));
                snprintf(b, sizeof b, "%s %s", o->peers[p].name, bench_algo_name(peer_order[i]));
                bench_json_ratio(x->json, x->m, &row, a, b, "gen", xr);
            }
            if (n)
                printf("%s  lcsm %s flash vs %s: %s\n", head, o->backends[k], o->peers[p].name, line);
        }
    }
    /* Greedy decoding must not depend on the algorithm: compare the tokens. */
    if (o->temperature == 0)
        for (int k = 0; k < o->n_backends; k++) {
            const bench_result *first = NULL;
            int differ = 0;
            for (int al = 0; al < BENCH_N_ALGOS; al++) {
                const bench_result *r = &g->lcsm[k][al];
                if (!r->ok || !r->has_tokens)
                    continue;
                if (!first)
                    first = r;
                else if (r->tokens_hash != first->tokens_hash)
                    differ = 1;
            }
            if (differ)
                printf("%s  %s: NOTE greedy tokens differ between algorithms (fp32 near-ties can do this at "
                       "long L; the tests check exactness)\n",
                       head, o->backends[k]);
        }
}

static void print_paper_block(const bench_options *o)
{
    char label[64];
    bench_model_label(&o->models[0], label, sizeof label);
    printf("\nFlash Inference paper setting (Oncescu et al., ICLR 2025, arXiv:2410.12982): flash vs lazy, %s%s\n",
           label, o->models[0].d_model == bench_paper.d_model && o->models[0].n_layer == bench_paper.n_layer && o->n_models == 1
                      ? " (the paper's shape)"
                      : " (NOT the paper's shape: --models overrides it)");
    if (o->paper_scale > 1)
        printf("Lengths scaled DOWN by %d from the preset's (--paper-scale %d): not the paper's lengths.\n",
               o->paper_scale, o->paper_scale);
    printf("  %-10s %2s %7s | %9s %6s | %11s %6s\n", "backend", "B", "L", "mixer", "paper", "end to end", "paper");
    for (int i = 0; i < n_paper_lines; i++) {
        const paper_line *p = &paper_lines[i];
        char mx[24], e2e[24];
        if (p->mixer_x > 0)
            snprintf(mx, sizeof mx, "x%.1f", p->mixer_x);
        else
            snprintf(mx, sizeof mx, "-");
        snprintf(e2e, sizeof e2e, "x%.2f", p->total_x);
        printf("  %-10s %2d %7d | %9s %5.0fx | %11s %5.1fx\n", p->backend, p->batch, p->L, mx, bench_paper.mixer_speedup,
               e2e, bench_paper.e2e_speedup);
    }
    if (!n_paper_lines)
        printf("  (no cell has both lazy and flash)\n");
    printf("  Ours: lazy's time / flash's in the same run; mixer = time in the mixer ('-': unknown, add --profile\n"
           "  on a GPU backend), end to end = prefill + generation. The paper's: its best (\"up to\") on an H100.\n");
}

static void print_header(const bench_options *o, const bench_machine *m)
{
    printf("lcsm-bench: lcsm %s, commit %s, %s\n", lcsm_version_string(), m->commit, m->started);
    printf("machine: %s, %s, %d CPUs online, %.1f GiB, %s\n", m->host, m->cpu, m->cpus, m->mem_gib, m->os);
    printf("grid: models");
    for (int i = 0; i < o->n_models; i++) {
        char label[64];
        bench_model_label(&o->models[i], label, sizeof label);
        printf("%s%s", i ? "," : " ", label);
    }
    printf("; B");
    for (int i = 0; i < o->n_batches; i++)
        printf("%s%d", i ? "," : " ", o->batches[i]);
    printf("; L");
    for (int i = 0; i < o->n_lens; i++)
        printf("%s%d", i ? "," : " ", o->lens[i]);
    printf("; algos");
    for (int a = 0, n = 0; a < BENCH_N_ALGOS; a++)
        if (o->algos[a])
            printf("%s%s", n++ ? "," : " ", bench_algo_name((bench_algo)a));
    printf("; backends");
    for (int i = 0; i < o->n_backends; i++)
        printf("%s%s", i ? "," : " ", o->backends[i]);
    printf("\n      prompt %d, %s, warm-up %d, repeats %d (medians), seed %llu, budget ", o->prompt,
           o->temperature == 0 ? "greedy" : "sampled", o->warmup, o->repeats, (unsigned long long)o->seed);
    if (o->budget > 0)
        printf("%.0f s per cell\n", o->budget);
    else
        printf("none\n");
    if (o->n_peers) {
        printf("peers:");
        for (int p = 0; p < o->n_peers; p++)
            printf(" %s", o->peers[p].name);
        printf(" (%s %s%s)\n", o->python, o->peer_script, o->peer_graphs ? ", CUDA graphs" : "");
    }
    printf("\n");
    bench_print_table_header();
}

static void print_legend(const bench_options *o)
{
    printf("\nms/tok: generation time per step (one token for each of the B sequences), prefill excluded;\n"
           "tok/s = B x (L - prompt) / total; p50/p99/max: per-step latency; spikes: steps above 2x the median.\n"
           "mixer/rest: per step, long + short convolutions and gating vs everything else (host times on the\n"
           "CPU; device kernel times with --profile on a GPU backend; '-' when unknown). setup: backend + model +\n"
           "session creation, outside the timed region. host MiB: the cell process's peak RSS; dev MiB: peak device\n"
           "buffers. x lazy / x mixer: lazy's time / this row's, same backend and invocation. Ratio lines (=):\n"
           "'x N vs A' means N times faster than A per generated token.\n");
    (void)o;
}

int main(int argc, char **argv)
{
    static bench_options o;
    switch (bench_parse_options(argc, argv, &o)) {
    case BENCH_OPTIONS_HELP: return 0;
    case BENCH_OPTIONS_ERROR: return 2;
    default: break;
    }
    if (o.n_peers && access(o.peer_script, R_OK) != 0) {
        fprintf(stderr, "lcsm-bench: the peer script %s is not readable (--peer-script)\n", o.peer_script);
        return 2;
    }
    FILE *json = NULL;
    if (o.json_path && !(json = fopen(o.json_path, "w"))) {
        fprintf(stderr, "lcsm-bench: cannot write %s\n", o.json_path);
        return 1;
    }
    bench_machine m;
    bench_machine_describe(&m);
    print_header(&o, &m);
    run_ctx x = {&o, &m, json, &g_group, {0}, {0}};
    for (int mi = 0; mi < o.n_models; mi++)
        for (int bi = 0; bi < o.n_batches; bi++)
            for (int li = 0; li < o.n_lens; li++) {
                group_clear(&g_group);
                run_lcsm_cells(&x, mi, o.batches[bi], o.lens[li]);
                if (o.n_peers)
                    run_peer_cells(&x, mi, o.batches[bi], o.lens[li]);
                print_ratios(&x, mi, o.batches[bi], o.lens[li]);
            }
    group_clear(&g_group);
    if (o.paper)
        print_paper_block(&o);
    print_legend(&o);
    if (json && fclose(json) != 0) {
        fprintf(stderr, "lcsm-bench: error writing %s\n", o.json_path);
        return 1;
    }
    return 0;
}
