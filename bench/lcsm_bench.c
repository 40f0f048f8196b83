/*
 * lcsm-bench: times generation over a grid of models, batch sizes, lengths,
 * decoding algorithms and backends, optionally next to PyTorch peers on the same
 * weights, and prints a table, ratios measured in the same invocation, and JSON
 * lines (bench/plot.py draws them). `lcsm-bench --help` lists the options;
 * bench/RESULTS.md has the commands behind each published table.
 *
 * Order: for each model, batch and length (ascending), the lcsm algorithms
 * (lazy, eager, flash, modal, recompute), each with every weight type (f32
 * first) on each backend, then the peers; ratio lines close each group. Then
 * the prefill cells (--prefill-lens): for each model, batch and prompt length,
 * every session algorithm, weight type, chunk size and backend, with their own
 * ratio lines. Every lcsm cell runs in its own child process (bench_cell.c), so
 * this process never creates a thread or loads a driver and each cell's peak
 * memory is its own.
 */
#include "bench.h"
#include "bench_cell.h"
#include "bench_models.h"
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

static const char *const algo_names[BENCH_N_ALGOS] = {"lazy", "eager", "flash", "modal", "recompute", "plain",
                                                                "smooth"};
static const char *const weights_names[BENCH_N_WEIGHTS] = {"f32", "bf16", "f16", "auto"};

const char *bench_weights_name(bench_weights w) { return w >= 0 && w < BENCH_N_WEIGHTS ? weights_names[w] : "?"; }

bench_weights bench_weights_from_name(const char *name)
{
    for (int w = 0; w < BENCH_N_WEIGHTS; w++)
        if (!strcmp(name, weights_names[w]))
            return (bench_weights)w;
    return BENCH_N_WEIGHTS;
}

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
    bench_weights weights;
    bench_mode mode;
    int chunk;
    int ok;
    double gen_s, mixer_s; /* prefill cells: the prefill time; mixer_s < 0: unknown */
} history_entry;

static history_entry history[MAX_HISTORY];
static int n_history;

static void remember(int model, const bench_cell *c, int who, const bench_result *r)
{
    if (n_history == MAX_HISTORY)
        return;
    const int prefill = c->mode == BENCH_PREFILL;
    history[n_history++] = (history_entry){model, c->batch, who, c->L, c->algo, c->weights, c->mode, c->chunk, r->ok,
                                           prefill ? r->prefill_s : r->gen_s,
                                           !prefill && r->split[0] ? r->mixer_s : -1};
}

/* The longest earlier cell of the same model, batch, runner, algorithm, weights
 * and mode (and chunk). */
static const history_entry *previous(int model, const bench_cell *c, int who)
{
    const history_entry *best = NULL;
    for (int i = 0; i < n_history; i++) {
        const history_entry *h = &history[i];
        if (h->model == model && h->batch == c->batch && h->who == who && h->algo == c->algo &&
            h->weights == c->weights && h->mode == c->mode && h->chunk == c->chunk && h->L < c->L &&
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
    const history_entry *h = previous(model, c, who);
    *estimate_s = 0;
    if (h && !h->ok) {
        snprintf(why, cap, "it failed at %s = %d", c->mode == BENCH_PREFILL ? "P" : "L", h->L);
        return 0;
    }
    double one = h ? bench_estimate_scaled(c, h->gen_s, h->mixer_s, h->L)
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

/* The results of one (model, batch, length): lcsm per backend, weight type and
 * algorithm, peers per peer and algorithm. */
typedef struct group {
    bench_result lcsm[BENCH_MAX_LIST][BENCH_N_WEIGHTS][BENCH_N_ALGOS];
    bench_result peer[BENCH_MAX_PEERS][BENCH_N_ALGOS];
} group;

/* The prefill cells of one (model, batch, prompt length), by backend, weight
 * type, algorithm and chunk (the index into --prefill-chunk). */
typedef struct prefill_group {
    bench_result r[BENCH_MAX_LIST][BENCH_N_WEIGHTS][BENCH_N_ALGOS][BENCH_MAX_CHUNKS];
} prefill_group;

static group g_group;                 /* large: kept off the stack */
static prefill_group g_prefill_group; /* likewise */

static void group_clear(group *g)
{
    for (int k = 0; k < BENCH_MAX_LIST; k++)
        for (int w = 0; w < BENCH_N_WEIGHTS; w++)
            for (int a = 0; a < BENCH_N_ALGOS; a++)
                bench_result_free(&g->lcsm[k][w][a]);
    for (int p = 0; p < BENCH_MAX_PEERS; p++)
        for (int a = 0; a < BENCH_N_ALGOS; a++)
            bench_result_free(&g->peer[p][a]);
    memset(g, 0, sizeof *g);
}

static void prefill_group_clear(prefill_group *g) { memset(g, 0, sizeof *g); } /* prefill cells keep no step times */

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
    prefill_group *pg;
    int shown_backend[BENCH_MAX_LIST], shown_peer[BENCH_MAX_PEERS], shown_model[BENCH_MAX_LIST];
    int shown_prefill_header;
} run_ctx;

static bench_cell make_cell(const bench_options *o, int mi, int batch, int L, bench_algo algo, bench_weights w, int k,
                            bench_mode mode, int chunk)
{
    const int on_device = strcmp(o->backends[k], "cpu") != 0;
    return (bench_cell){.model = o->models[mi],
                        .batch = batch,
                        .L = L,
                        .prompt = mode == BENCH_PREFILL ? L : o->prompt,
                        .algo = algo,
                        .mode = mode,
                        .chunk = chunk,
                        .weights = w,
                        .modal_tiled = o->modal_tiled,
                        .lag = algo == BENCH_PLAIN ? 1 : o->lag,
                        .state_size = o->state_size,
                        .backend = o->backends[k],
                        .device = o->device,
                        .threads = o->threads,
                        .warmup = o->warmup,
                        .repeats = o->repeats,
                        .temperature = o->temperature,
                        .seed = o->seed,
                        .profile = o->profile && on_device && mode == BENCH_DECODE};
}

static bench_row make_row(const bench_options *o, int mi, const bench_cell *c, const char *impl, const char *backend)
{
    return (bench_row){.model = &o->models[mi],
                       .d_model = o->models[mi].d_model,
                       .n_layer = o->models[mi].n_layer,
                       .batch = c->batch,
                       .L = c->L,
                       .prompt = c->prompt,
                       .impl = impl,
                       .backend = backend,
                       .algo = c->algo,
                       .weights = c->weights,
                       .modal_tiled = c->modal_tiled,
                       .mode = c->mode,
                       .chunk = c->chunk};
}

/* The model as the first cell that ran it found it (once per model). */
static void show_model(run_ctx *x, int mi, const bench_result *r, bench_weights w)
{
    if (x->shown_model[mi]++)
        return;
    char label[64];
    bench_model_label(&x->o->models[mi], label, sizeof label);
    printf("  (model %s: %s, D %d, d_inner %d, %s, %d tiled conv%s, weights %.3g MiB as %s)\n", label, r->arch,
           r->d_model, r->d_inner, r->layers, r->n_tiled_convs, r->n_tiled_convs == 1 ? "" : "s", r->dense_mib,
           bench_weights_name(w));
}

static void run_lcsm_cells(run_ctx *x, int mi, int batch, int L)
{
    const bench_options *o = x->o;
    static const bench_algo order[] = {BENCH_LAZY,  BENCH_EAGER,  BENCH_PLAIN,    BENCH_FLASH,
                                       BENCH_SMOOTH, BENCH_MODAL, BENCH_RECOMPUTE};
    for (size_t ai = 0; ai < sizeof order / sizeof order[0]; ai++) {
        const bench_algo algo = order[ai];
        if (!o->algos[algo])
            continue;
        for (int wi = 0; wi < o->n_weights; wi++) {
            const bench_weights w = o->weights[wi];
            for (int k = 0; k < o->n_backends; k++) {
                const int on_device = strcmp(o->backends[k], "cpu") != 0;
                bench_cell c = make_cell(o, mi, batch, L, algo, w, k, BENCH_DECODE, 0);
                bench_row row = make_row(o, mi, &c, "lcsm", o->backends[k]);
                char why[256];
                double est = 0;
                /* A profiled pass on a device is one more generation. */
                const double runs = o->repeats + (c.profile && algo != BENCH_RECOMPUTE ? 1 : 0);
                if (!should_run(o, mi, &c, k, on_device, runs, &est, why, sizeof why)) {
                    bench_print_not_run(&row, "skipped", why);
                    bench_json_cell(x->json, x->m, &row, NULL, "skipped", why, est, 0);
                    continue;
                }
                bench_result *r = &x->g->lcsm[k][w][algo];
                bench_run_cell(&c, r);
                remember(mi, &c, k, r);
                if (!r->ok) {
                    bench_print_not_run(&row, "failed", r->err);
                    bench_json_cell(x->json, x->m, &row, r, "failed", r->err, est, 0);
                    continue;
                }
                if (!x->shown_backend[k]++)
                    printf("  (backend %s: %s)\n", o->backends[k], r->device);
                show_model(x, mi, r, w);
                const bench_result *lazy = &x->g->lcsm[k][w][BENCH_LAZY], *f32 = &x->g->lcsm[k][BENCH_W_F32][algo];
                double xl = 0, xm = 0, xf = 0;
                if (algo != BENCH_LAZY && lazy->ok) {
                    xl = per_tok(lazy) / per_tok(r);
                    if (lazy->split[0] && r->split[0] && r->mixer_s > 0)
                        xm = lazy->mixer_s / r->mixer_s;
                }
                if (w != BENCH_W_F32 && f32->ok)
                    xf = per_tok(f32) / per_tok(r);
                bench_print_row(&row, r, xl, xm, xf);
                bench_json_cell(x->json, x->m, &row, r, "ok", NULL, est, o->latencies);
            }
        }
    }
}

/* The PyTorch peer implements HyenaDNA: other families are not given to it. */
static int peer_can_run(const bench_model *m)
{
    return !m->preset && (!m->arch || !strcmp(m->arch, "hyenadna"));
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
            bench_cell c = make_cell(o, mi, batch, L, algo, BENCH_W_F32, 0, BENCH_DECODE, 0);
            c.backend = peer->name;
            c.device = NULL;
            c.profile = 0;
            c.modal_tiled = 0;
            bench_row row = make_row(o, mi, &c, peer->name, peer->name);
            char why[256];
            double est = 0;
            if (!peer_can_run(model)) {
                snprintf(why, sizeof why, "the PyTorch peer implements HyenaDNA only (this model is %s)",
                         model->preset ? model->preset->arch : model->arch);
                bench_print_not_run(&row, "skipped", why);
                bench_json_cell(x->json, x->m, &row, NULL, "skipped", why, 0, 0);
                continue;
            }
            if (!should_run(o, mi, &c, PEER_BASE + p, strcmp(peer->device, "cpu") != 0, 1, &est, why, sizeof why)) {
                bench_print_not_run(&row, "skipped", why);
                bench_json_cell(x->json, x->m, &row, NULL, "skipped", why, est, 0);
                continue;
            }
            if (!have_dir && !*err) {
                if (bench_peer_save_model(model, L, o->seed, dir, sizeof dir, err, sizeof err) == 0)
                    have_dir = 1;
            }
            bench_result *r = &x->g->peer[p][algo];
            if (!have_dir) {
                memset(r, 0, sizeof *r);
                snprintf(r->err, sizeof r->err, "%s", err);
            } else {
                bench_run_peer(&po, peer, dir, algo, batch, L, o->prompt, r);
            }
            remember(mi, &c, PEER_BASE + p, r);
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
            bench_print_row(&row, r, xl, 0, 0);
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

static void append(char *line, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + len, cap - len, fmt, ap);
    va_end(ap);
}

/* " bf16" after an algorithm's name when the grid has several weight types or not f32. */
static const char *wsuffix(const bench_options *o, bench_weights w, char *buf, size_t cap)
{
    if (o->n_weights > 1 || w != BENCH_W_F32)
        snprintf(buf, cap, " %s", bench_weights_name(w));
    else
        buf[0] = '\0';
    return buf;
}

static bench_side side(const char *name, bench_weights w, int chunk) { return (bench_side){name, w, chunk}; }

/* 1 if two of the n results that ran and kept their tokens sampled different
 * greedy tokens. */
static int tokens_differ(const bench_result *r, int n)
{
    const bench_result *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!r[i].ok || !r[i].has_tokens)
            continue;
        if (!first)
            first = &r[i];
        else if (r[i].tokens_hash != first->tokens_hash)
            return 1;
    }
    return 0;
}

/* The ratio lines of a group, and their JSON objects. A ratio is "x N": the
 * first named is N times faster (per generated token, prefill excluded). */
static void print_ratios(run_ctx *x, int mi, int batch, int L)
{
    const bench_options *o = x->o;
    group *g = x->g;
    char label[64], head[128], line[1024], a[96], b[96], ws[16];
    bench_model_label(&o->models[mi], label, sizeof label);
    snprintf(head, sizeof head, "  = %s B=%d L=%d", label, batch, L);
    bench_cell rc = make_cell(o, mi, batch, L, BENCH_FLASH, BENCH_W_F32, 0, BENCH_DECODE, 0);
    bench_row row = make_row(o, mi, &rc, "lcsm", "");
    const bench_weights w0 = o->weights[0]; /* against other backends and the peers */
    static const bench_algo others[] = {BENCH_LAZY, BENCH_EAGER, BENCH_RECOMPUTE};
    for (int k = 0; k < o->n_backends; k++)
        for (int wi = 0; wi < o->n_weights; wi++) {
            const bench_weights w = o->weights[wi];
            const bench_result *f = &g->lcsm[k][w][BENCH_FLASH];
            if (!f->ok)
                continue;
            int n = 0;
            line[0] = '\0';
            snprintf(a, sizeof a, "lcsm %s flash", o->backends[k]);
            for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
                const bench_result *r = &g->lcsm[k][w][others[i]];
                if (!r->ok)
                    continue;
                const double xr = per_tok(r) / per_tok(f);
                add_item(line, sizeof line, &n, "x%.2f vs %s", xr, bench_algo_name(others[i]));
                snprintf(b, sizeof b, "lcsm %s %s", o->backends[k], bench_algo_name(others[i]));
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "gen", xr);
                if (r->split[0] && f->split[0] && f->mixer_s > 0) {
                    const double xm = r->mixer_s / f->mixer_s;
                    append(line, sizeof line, " (mixer x%.1f)", xm);
                    bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "mixer", xm);
                }
                if (others[i] == BENCH_LAZY && o->paper && w == w0 && n_paper_lines < 256)
                    paper_lines[n_paper_lines++] = (paper_line){
                        o->backends[k], batch, L,
                        r->split[0] && f->split[0] && f->mixer_s > 0 ? r->mixer_s / f->mixer_s : 0,
                        r->total_s / f->total_s};
            }
            if (n)
                printf("%s  %s flash%s: %s\n", head, o->backends[k], wsuffix(o, w, ws, sizeof ws), line);
            /* The modal recurrence against flash (the tiled modal filters with --modal-tiled). */
            const bench_result *md = &g->lcsm[k][w][BENCH_MODAL];
            if (md->ok) {
                const double xr = per_tok(f) / per_tok(md);
                snprintf(a, sizeof a, "lcsm %s modal", o->backends[k]);
                snprintf(b, sizeof b, "lcsm %s flash", o->backends[k]);
                line[0] = '\0';
                append(line, sizeof line, "x%.2f vs flash%s", xr,
                       !bench_model_has_modal(&o->models[mi]) ? " (no modal layers: the same schedule)"
                       : o->modal_tiled                      ? " (its modal filters tiled)"
                                                             : " (without --modal-tiled: the same recurrence)");
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "gen", xr);
                if (md->split[0] && f->split[0] && md->mixer_s > 0) {
                    const double xm = f->mixer_s / md->mixer_s;
                    append(line, sizeof line, " (mixer x%.1f)", xm);
                    bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "mixer", xm);
                }
                printf("%s  %s modal%s: %s\n", head, o->backends[k], wsuffix(o, w, ws, sizeof ws), line);
            }
            /* Lagged flash against the plain schedule: the worst and p99 step, each over its own median. */
            const bench_result *pl = &g->lcsm[k][w][BENCH_PLAIN];
            if (pl->ok && f->lat.p50_ms > 0 && pl->lat.p50_ms > 0) {
                const double fw = f->lat.max_ms / f->lat.p50_ms, pw = pl->lat.max_ms / pl->lat.p50_ms;
                printf("%s  %s flash (lag %d)%s: worst step x%.2f of its median (plain x%.2f), p99 x%.2f (plain "
                       "x%.2f); x%.2f vs plain\n",
                       head, o->backends[k], f->lag, wsuffix(o, w, ws, sizeof ws), fw, pw,
                       f->lat.p99_ms / f->lat.p50_ms, pl->lat.p99_ms / pl->lat.p50_ms, per_tok(pl) / per_tok(f));
                snprintf(a, sizeof a, "lcsm %s flash", o->backends[k]);
                snprintf(b, sizeof b, "lcsm %s plain", o->backends[k]);
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "worst_over_median", fw / pw);
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "gen", per_tok(pl) / per_tok(f));
            }
            /* The smooth schedule: its worst and p99 step over its median, its time against flash's. */
            const bench_result *sm = &g->lcsm[k][w][BENCH_SMOOTH];
            if (sm->ok && sm->lat.p50_ms > 0) {
                const double sw = sm->lat.max_ms / sm->lat.p50_ms;
                printf("%s  %s smooth%s: worst step x%.2f of its median, p99 x%.2f", head, o->backends[k],
                       wsuffix(o, w, ws, sizeof ws), sw, sm->lat.p99_ms / sm->lat.p50_ms);
                if (f->lat.p50_ms > 0)
                    printf(" (flash x%.2f, p99 x%.2f); x%.2f vs flash", f->lat.max_ms / f->lat.p50_ms,
                           f->lat.p99_ms / f->lat.p50_ms, per_tok(f) / per_tok(sm));
                printf("\n");
                snprintf(a, sizeof a, "lcsm %s smooth", o->backends[k]);
                snprintf(b, sizeof b, "lcsm %s flash", o->backends[k]);
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "worst_over_median", sw);
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "gen", per_tok(f) / per_tok(sm));
            }
        }
    /* Each narrow weight type against f32, algorithm by algorithm. */
    for (int k = 0; k < o->n_backends; k++)
        for (int al = 0; al < BENCH_N_ALGOS; al++) {
            const bench_result *ref = &g->lcsm[k][BENCH_W_F32][al];
            if (!ref->ok)
                continue;
            int n = 0;
            line[0] = '\0';
            snprintf(a, sizeof a, "lcsm %s %s", o->backends[k], bench_algo_name((bench_algo)al));
            for (int wi = 0; wi < o->n_weights; wi++) {
                const bench_weights w = o->weights[wi];
                const bench_result *r = &g->lcsm[k][w][al];
                if (w == BENCH_W_F32 || !r->ok)
                    continue;
                const double xr = per_tok(ref) / per_tok(r);
                add_item(line, sizeof line, &n, "%s x%.2f vs f32", bench_weights_name(w), xr);
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(a, BENCH_W_F32, -1), "gen", xr);
                if (r->split[0] && ref->split[0] && r->dense_s > 0) {
                    const double xd = ref->dense_s / r->dense_s;
                    append(line, sizeof line, " (rest x%.2f)", xd);
                    bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(a, BENCH_W_F32, -1), "dense", xd);
                }
            }
            if (n)
                printf("%s  %s %s weights: %s\n", head, o->backends[k], bench_algo_name((bench_algo)al), line);
        }
    /* Backend against backend, algorithm by algorithm: each against the first backend. */
    for (int k = 1; k < o->n_backends; k++)
        for (int wi = 0; wi < o->n_weights; wi++) {
            const bench_weights w = o->weights[wi];
            int n = 0;
            line[0] = '\0';
            for (int al = 0; al < BENCH_N_ALGOS; al++) {
                const bench_result *r0 = &g->lcsm[0][w][al], *r1 = &g->lcsm[k][w][al];
                if (!r0->ok || !r1->ok)
                    continue;
                const double xr = per_tok(r0) / per_tok(r1);
                add_item(line, sizeof line, &n, "%s x%.2f", bench_algo_name((bench_algo)al), xr);
                snprintf(a, sizeof a, "lcsm %s %s", o->backends[k], bench_algo_name((bench_algo)al));
                snprintf(b, sizeof b, "lcsm %s %s", o->backends[0], bench_algo_name((bench_algo)al));
                bench_json_ratio(x->json, x->m, &row, side(a, w, -1), side(b, w, -1), "gen", xr);
            }
            if (n)
                printf("%s  %s vs %s%s: %s\n", head, o->backends[k], o->backends[0], wsuffix(o, w, ws, sizeof ws),
                       line);
        }
    /* lcsm's flash (the first weight type) against every peer algorithm (f32 weights). */
    for (int k = 0; k < o->n_backends; k++) {
        const bench_result *f = &g->lcsm[k][w0][BENCH_FLASH];
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
                bench_json_ratio(x->json, x->m, &row, side(a, w0, -1), side(b, BENCH_W_F32, -1), "gen", xr);
            }
            if (n)
                printf("%s  lcsm %s flash%s vs %s: %s\n", head, o->backends[k], wsuffix(o, w0, ws, sizeof ws),
                       o->peers[p].name, line);
        }
    }
    /* Greedy decoding must not depend on the algorithm: compare the tokens. */
    if (o->temperature == 0)
        for (int k = 0; k < o->n_backends; k++)
            for (int wi = 0; wi < o->n_weights; wi++) {
                const bench_weights w = o->weights[wi];
                if (tokens_differ(g->lcsm[k][w], BENCH_N_ALGOS))
                    printf("%s  %s%s: NOTE greedy tokens differ between algorithms (fp32 near-ties can do this at "
                           "long L; the tests check exactness)\n",
                           head, o->backends[k], wsuffix(o, w, ws, sizeof ws));
            }
}

/* ------------------------------------------------------------ prefill cells */

static void run_prefill_cells(run_ctx *x, int mi, int batch, int P)
{
    const bench_options *o = x->o;
    static const bench_algo order[] = {BENCH_LAZY, BENCH_EAGER, BENCH_FLASH, BENCH_MODAL};
    if (!x->shown_prefill_header++) {
        printf("\nprefill cells: the prompt alone (P tokens per sequence, session max_len P), whole or in chunks\n");
        bench_print_prefill_header();
    }
    for (size_t ai = 0; ai < sizeof order / sizeof order[0]; ai++) {
        const bench_algo algo = order[ai];
        if (!o->algos[algo])
            continue;
        for (int wi = 0; wi < o->n_weights; wi++)
            for (int ci = 0; ci < o->n_chunks; ci++)
                for (int k = 0; k < o->n_backends; k++) {
                    const bench_weights w = o->weights[wi];
                    const int on_device = strcmp(o->backends[k], "cpu") != 0;
                    bench_cell c = make_cell(o, mi, batch, P, algo, w, k, BENCH_PREFILL, o->chunks[ci]);
                    bench_row row = make_row(o, mi, &c, "lcsm", o->backends[k]);
                    char why[256];
                    double est = 0;
                    if (!should_run(o, mi, &c, k, on_device, o->repeats + o->warmup, &est, why, sizeof why)) {
                        bench_print_not_run(&row, "skipped", why);
                        bench_json_cell(x->json, x->m, &row, NULL, "skipped", why, est, 0);
                        continue;
                    }
                    bench_result *r = &x->pg->r[k][w][algo][ci];
                    bench_run_cell(&c, r);
                    bench_result_free(r);
                    remember(mi, &c, k, r);
                    if (!r->ok) {
                        bench_print_not_run(&row, "failed", r->err);
                        bench_json_cell(x->json, x->m, &row, r, "failed", r->err, est, 0);
                        continue;
                    }
                    if (!x->shown_backend[k]++)
                        printf("  (backend %s: %s)\n", o->backends[k], r->device);
                    show_model(x, mi, r, w);
                    const bench_result *f32 = &x->pg->r[k][BENCH_W_F32][algo][ci], *whole = &x->pg->r[k][w][algo][0];
                    const double xf = w != BENCH_W_F32 && f32->ok ? f32->prefill_s / r->prefill_s : 0;
                    const double xw = ci > 0 && o->chunks[0] == 0 && whole->ok ? whole->prefill_s / r->prefill_s : 0;
                    bench_print_prefill_row(&row, r, xf, xw);
                    bench_json_cell(x->json, x->m, &row, r, "ok", NULL, est, 0);
                }
    }
}

static void print_prefill_ratios(run_ctx *x, int mi, int batch, int P)
{
    const bench_options *o = x->o;
    prefill_group *g = x->pg;
    char label[64], head[128], line[1024], a[96], b[96], ws[16];
    bench_model_label(&o->models[mi], label, sizeof label);
    snprintf(head, sizeof head, "  = %s B=%d P=%d", label, batch, P);
    bench_cell rc = make_cell(o, mi, batch, P, BENCH_FLASH, BENCH_W_F32, 0, BENCH_PREFILL, 0);
    bench_row row = make_row(o, mi, &rc, "lcsm", "");
    for (int k = 0; k < o->n_backends; k++)
        for (int al = 0; al < BENCH_N_ALGOS; al++)
            for (int ci = 0; ci < o->n_chunks; ci++) {
                const int chunk = o->chunks[ci];
                snprintf(a, sizeof a, "lcsm %s %s", o->backends[k], bench_algo_name((bench_algo)al));
                /* narrow weights against f32 */
                const bench_result *ref = &g->r[k][BENCH_W_F32][al][ci];
                int n = 0;
                line[0] = '\0';
                for (int wi = 0; wi < o->n_weights && ref->ok; wi++) {
                    const bench_weights w = o->weights[wi];
                    const bench_result *r = &g->r[k][w][al][ci];
                    if (w == BENCH_W_F32 || !r->ok)
                        continue;
                    const double xr = ref->prefill_s / r->prefill_s;
                    add_item(line, sizeof line, &n, "%s x%.2f vs f32", bench_weights_name(w), xr);
                    bench_json_ratio(x->json, x->m, &row, side(a, w, chunk), side(a, BENCH_W_F32, chunk), "prefill",
                                     xr);
                }
                if (n)
                    printf("%s  %s %s chunk %d weights: %s\n", head, o->backends[k], bench_algo_name((bench_algo)al),
                           chunk, line);
            }
    for (int k = 0; k < o->n_backends; k++)
        for (int wi = 0; wi < o->n_weights; wi++) {
            const bench_weights w = o->weights[wi];
            for (int al = 0; al < BENCH_N_ALGOS; al++) {
                /* chunked against one prefill call */
                const bench_result *whole = o->chunks[0] == 0 ? &g->r[k][w][al][0] : NULL;
                snprintf(a, sizeof a, "lcsm %s %s", o->backends[k], bench_algo_name((bench_algo)al));
                int n = 0;
                line[0] = '\0';
                for (int ci = 1; ci < o->n_chunks && whole && whole->ok; ci++) {
                    const bench_result *r = &g->r[k][w][al][ci];
                    if (!r->ok)
                        continue;
                    const double xr = whole->prefill_s / r->prefill_s;
                    add_item(line, sizeof line, &n, "chunk %d x%.2f vs whole", o->chunks[ci], xr);
                    bench_json_ratio(x->json, x->m, &row, side(a, w, o->chunks[ci]), side(a, w, 0), "prefill", xr);
                }
                if (n)
                    printf("%s  %s %s%s: %s\n", head, o->backends[k], bench_algo_name((bench_algo)al),
                           wsuffix(o, w, ws, sizeof ws), line);
            }
            /* modal against flash, chunk by chunk */
            for (int ci = 0; ci < o->n_chunks; ci++) {
                const bench_result *f = &g->r[k][w][BENCH_FLASH][ci], *md = &g->r[k][w][BENCH_MODAL][ci];
                if (!f->ok || !md->ok)
                    continue;
                const double xr = f->prefill_s / md->prefill_s;
                snprintf(a, sizeof a, "lcsm %s modal", o->backends[k]);
                snprintf(b, sizeof b, "lcsm %s flash", o->backends[k]);
                bench_json_ratio(x->json, x->m, &row, side(a, w, o->chunks[ci]), side(b, w, o->chunks[ci]), "prefill",
                                 xr);
                printf("%s  %s modal%s chunk %d: x%.2f vs flash\n", head, o->backends[k], wsuffix(o, w, ws, sizeof ws),
                       o->chunks[ci], xr);
            }
            /* every chunking and algorithm should pick the same greedy next token */
            if (tokens_differ(g->r[k][w][0], BENCH_N_ALGOS * BENCH_MAX_CHUNKS)) /* unused chunks: not ok */
                printf("%s  %s%s: NOTE the greedy next tokens differ between chunkings or algorithms (fp32 "
                       "near-ties can do this)\n",
                       head, o->backends[k], wsuffix(o, w, ws, sizeof ws));
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
    if (!o->n_lens)
        printf(" none");
    printf("; algos");
    for (int a = 0, n = 0; a < BENCH_N_ALGOS; a++)
        if (o->algos[a])
            printf("%s%s", n++ ? "," : " ", bench_algo_name((bench_algo)a));
    printf("; weights");
    for (int i = 0; i < o->n_weights; i++)
        printf("%s%s", i ? "," : " ", bench_weights_name(o->weights[i]));
    printf("; backends");
    for (int i = 0; i < o->n_backends; i++)
        printf("%s%s", i ? "," : " ", o->backends[i]);
    if (o->n_prefill_lens) {
        printf("\n      prefill P");
        for (int i = 0; i < o->n_prefill_lens; i++)
            printf("%s%d", i ? "," : " ", o->prefill_lens[i]);
        printf(", chunks");
        for (int i = 0; i < o->n_chunks; i++)
            printf("%s%d", i ? "," : " ", o->chunks[i]);
        printf(" (0 = one prefill call)");
    }
    printf("\n      prompt %d, %s, warm-up %d, repeats %d (medians), seed %llu, budget ", o->prompt,
           o->temperature == 0 ? "greedy" : "sampled", o->warmup, o->repeats, (unsigned long long)o->seed);
    if (o->budget > 0)
        printf("%.0f s per cell\n", o->budget);
    else
        printf("none\n");
    if (o->modal_tiled)
        printf("modal_tiled: modal filters materialised up to each cell's L and tiled by flash, lazy and eager "
               "(algo '+t'); modal runs the recurrence\n");
    for (int i = 0; i < o->n_models; i++) {
        const bench_preset *p = o->models[i].preset;
        if (!p)
            continue;
        char attn[128];
        const int n = bench_preset_attention(p, attn, sizeof attn);
        printf("model %s: the shape of %s (%s; random weights, max_seqlen = L instead of %d)", p->name, p->title,
               p->source, p->published_max_seqlen);
        if (n)
            printf("; attention at layers %s", attn);
        printf("\n");
    }
    if (o->n_peers) {
        printf("peers:");
        for (int p = 0; p < o->n_peers; p++)
            printf(" %s", o->peers[p].name);
        printf(" (%s %s%s; HyenaDNA models, f32 weights)\n", o->python, o->peer_script,
               o->peer_graphs ? ", CUDA graphs" : "");
    }
    printf("\n");
    if (o->n_lens)
        bench_print_table_header();
}

static void print_legend(const bench_options *o)
{
    if (o->n_lens)
        printf("\nms/tok: generation time per step (one token for each of the B sequences), prefill excluded;\n"
               "tok/s = B x (L - prompt) / total; p50/p99/max: per-step latency; spikes: steps above 2x the median.\n"
               "mixer/rest: per step, long + short convolutions and gating vs everything else (host times on the\n"
               "CPU; device kernel times with --profile on a GPU backend; '-' when unknown). setup: backend + model +\n"
               "session creation, outside the timed region. host MiB: the cell process's peak RSS; dev MiB: peak\n"
               "device buffers. wts: storage of the weight matrices; algo+t: a model loaded with modal_tiled. x lazy /\n"
               "x mixer: lazy's time / this row's, same weights and backend; x f32: the f32 row's time / this row's,\n"
               "same algorithm and backend. Ratio lines (=): 'x N vs A' means N times faster than A per generated\n"
               "token.\n");
    if (o->n_prefill_lens)
        printf("\nprefill cells: prefill s = median time of the whole prompt (B x P tokens; chunk C: lcsm_session_prefill\n"
               "of the first C, then lcsm_session_extend of C at a time; 0 = one call), tok/s = B x P / prefill s,\n"
               "host MiB = the cell process's peak RSS (model, state, buffers, warm-up included), dev MiB = peak device\n"
               "buffers, KiB/tok = that peak / (B x P), state MiB = the session's state for max_len P, weight MiB =\n"
               "weights + filters + spectra. x f32 / x whole: the f32 / one-call cell's time / this row's.\n");
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
    int width = 0;
    for (int i = 0; i < o.n_models; i++) {
        char label[64];
        bench_model_label(&o.models[i], label, sizeof label);
        width = (int)strlen(label) > width ? (int)strlen(label) : width;
    }
    bench_set_model_width(width);
    print_header(&o, &m);
    run_ctx x = {.o = &o, .m = &m, .json = json, .g = &g_group, .pg = &g_prefill_group};
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
    for (int mi = 0; mi < o.n_models; mi++)
        for (int bi = 0; bi < o.n_batches; bi++)
            for (int pi = 0; pi < o.n_prefill_lens; pi++) {
                prefill_group_clear(&g_prefill_group);
                run_prefill_cells(&x, mi, o.batches[bi], o.prefill_lens[pi]);
                print_prefill_ratios(&x, mi, o.batches[bi], o.prefill_lens[pi]);
            }
    if (o.paper)
        print_paper_block(&o);
    print_legend(&o);
    if (json && fclose(json) != 0) {
        fprintf(stderr, "lcsm-bench: error writing %s\n", o.json_path);
        return 1;
    }
    return 0;
}
