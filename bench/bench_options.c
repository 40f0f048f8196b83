#include "bench_options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LCSM_BENCH_PEER_SCRIPT
#define LCSM_BENCH_PEER_SCRIPT "bench/peers/torch_peer.py"
#endif

/*
 * The main experiment of the Flash Inference paper: Oncescu, Purandare, Idreos,
 * Kakade, "Flash Inference: Near Linear Time Inference for Long Convolution
 * Sequence Models and Beyond", ICLR 2025, arXiv:2410.12982 (v2), Section 5
 * (experiments). Published: "up to 7.8x end-to-end improvement ... by improving
 * up to 110x within the position-mixing part" (abstract), against the standard
 * (lazy) inference, on an NVIDIA H100.
 *
 * The model is a Hyena of the Hyena-153M shape (18 layers, width 864, the
 * safari hyena-153m configuration), generating sequences of up to 2^17 tokens at
 * batch size 1. CHECK BEFORE QUOTING: the two speed-ups above are the paper's
 * own words, but the shape, the lengths and the batch come from our reading of
 * its experiment section and could not be re-checked against the text when this
 * preset was written (the search tool returned only the abstract). The lengths
 * here are a subset (2^12, 2^14, 2^16, 2^17) so that lazy's O(L^2) stays within
 * one run; --paper-scale N divides them by N for machines where lazy at 2^17
 * takes too long or the state does not fit (at 2^17 the filters, spectra and
 * state of this model need about 40 GB).
 */
const bench_paper_setting bench_paper = {
    .d_model = 864,
    .n_layer = 18,
    .batches = {1},
    .n_batches = 1,
    .lens = {4096, 16384, 65536, 131072},
    .n_lens = 4,
    .mixer_speedup = 110,
    .e2e_speedup = 7.8,
};

/* ------------------------------------------------------------- parsers */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi || (*s != '+' && (*s < '0' || *s > '9')))
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo) || v > 1e12)
        return -1;
    *out = v;
    return 0;
}

/* Splits a comma list into `*copy` (malloc'd; the items point into it); returns
 * the number of items (<= cap) or -1 when there are more or an item is empty.
 * The caller frees *copy unless it keeps the items (then they live as long as the
 * options do). */
static int split_list(const char *s, char **items, int cap, char **copy)
{
    char *c = *copy = strdup(s);
    if (!c)
        return -1;
    int n = 0;
    for (char *p = c;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p || n == cap)
            return -1;
        items[n++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    return n;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static int parse_int_list(const char *s, int lo, int hi, int *out, int *n_out, int sort)
{
    char *items[BENCH_MAX_LIST], *copy;
    int n = split_list(s, items, BENCH_MAX_LIST, &copy);
    for (int i = 0; i < n; i++) {
        long v;
        if (parse_long(items[i], lo, hi, &v))
            n = -1;
        else
            out[i] = (int)v;
    }
    free(copy);
    if (n <= 0)
        return -1;
    if (sort) { /* ascending and distinct: the budget's estimates scale from shorter lengths */
        qsort(out, (size_t)n, sizeof *out, cmp_int);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!k || out[i] != out[k - 1])
                out[k++] = out[i];
        n = k;
    }
    *n_out = n;
    return 0;
}

static int parse_algo_set(const char *s, int *flags, int peer)
{
    char *items[BENCH_MAX_LIST], *copy;
    int n = split_list(s, items, BENCH_MAX_LIST, &copy), bad = n <= 0;
    if (!bad)
        memset(flags, 0, sizeof(int) * BENCH_N_ALGOS);
    for (int i = 0; i < n && !bad; i++) {
        bench_algo a = bench_algo_from_name(items[i]);
        if (a == BENCH_N_ALGOS || (peer && a == BENCH_EAGER))
            bad = 1;
        else
            flags[a] = 1;
    }
    free(copy);
    return bad ? -1 : 0;
}

/* d_model and n_layer of a saved model, for the budget's estimates (0 when the
 * config keeps them elsewhere: the cells then run without an estimate). */
static void read_model_shape(const char *dir, bench_model *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *o = cJSON_Parse(buf);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "d_model"), *l = cJSON_GetObjectItemCaseSensitive(o, "n_layer");
    if (cJSON_IsNumber(d) && cJSON_IsNumber(l)) {
        m->d_model = d->valueint;
        m->n_layer = l->valueint;
    }
    cJSON_Delete(o);
}

/* ------------------------------------------------------------- options */

typedef int (*opt_fn)(bench_options *o, const char *v);

static int opt_models(bench_options *o, const char *v)
{
    char *items[BENCH_MAX_LIST], *copy;
    int n = split_list(v, items, BENCH_MAX_LIST, &copy), bad = n <= 0;
    for (int i = 0; i < n && !bad; i++) {
        char *x = strchr(items[i], 'x');
        long d, l;
        if (x)
            *x = '\0';
        if (!x || parse_long(items[i], 1, 65536, &d) || parse_long(x + 1, 1, 4096, &l))
            bad = 1;
        else
            o->models[i] = (bench_model){(int)d, (int)l, NULL};
    }
    free(copy);
    if (bad)
        return -1;
    o->n_models = n;
    return 0;
}

static int opt_model_dir(bench_options *o, const char *v)
{
    o->models[0] = (bench_model){0, 0, v};
    read_model_shape(v, &o->models[0]);
    o->n_models = 1;
    return 0;
}

static int opt_lens(bench_options *o, const char *v) { return parse_int_list(v, 2, 1 << 24, o->lens, &o->n_lens, 1); }
static int opt_batches(bench_options *o, const char *v)
{
    return parse_int_list(v, 1, 65536, o->batches, &o->n_batches, 0);
}
static int opt_algos(bench_options *o, const char *v) { return parse_algo_set(v, o->algos, 0); }
static int opt_peer_algos(bench_options *o, const char *v) { return parse_algo_set(v, o->peer_algos, 1); }

static int opt_backends(bench_options *o, const char *v)
{
    char *items[BENCH_MAX_LIST], *copy; /* kept: the names point into it */
    int n = split_list(v, items, BENCH_MAX_LIST, &copy);
    if (n <= 0) {
        free(copy);
        return -1;
    }
    for (int i = 0; i < n; i++)
        o->backends[i] = items[i];
    o->n_backends = n;
    return 0;
}

static int opt_peers(bench_options *o, const char *v)
{
    char *items[BENCH_MAX_PEERS], *copy;
    int n = split_list(v, items, BENCH_MAX_PEERS, &copy), bad = n <= 0;
    for (int i = 0; i < n && !bad; i++)
        bad = bench_peer_parse(items[i], &o->peers[i]) != 0;
    free(copy);
    if (bad)
        return -1;
    o->n_peers = n;
    return 0;
}

#define INT_OPT(name, field, lo, hi)                                                                      \
    static int name(bench_options *o, const char *v)                                                      \
    {                                                                                                     \
        long x;                                                                                           \
        if (parse_long(v, lo, hi, &x))                                                                    \
            return -1;                                                                                    \
        o->field = (int)x;                                                                                \
        return 0;                                                                                         \
    }
INT_OPT(opt_prompt, prompt, 1, 1 << 24)
INT_OPT(opt_threads, threads, 0, 1024)
INT_OPT(opt_warmup, warmup, 0, 1000)
INT_OPT(opt_repeats, repeats, 1, 1000)
INT_OPT(opt_paper_scale, paper_scale, 1, 1 << 20)

static int opt_seed(bench_options *o, const char *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || *v < '0' || *v > '9')
        return -1;
    o->seed = x;
    return 0;
}

static int opt_temp(bench_options *o, const char *v)
{
    double x;
    if (parse_double(v, 0, &x))
        return -1;
    o->temperature = (float)x;
    return 0;
}
static int opt_budget(bench_options *o, const char *v) { return parse_double(v, 0, &o->budget); }
static int opt_peer_timeout(bench_options *o, const char *v) { return parse_double(v, 0, &o->peer_timeout); }
static int opt_device(bench_options *o, const char *v) { return o->device = v, 0; }
static int opt_json(bench_options *o, const char *v) { return o->json_path = v, 0; }
static int opt_peer_script(bench_options *o, const char *v) { return o->peer_script = v, 0; }
static int opt_python(bench_options *o, const char *v) { return o->python = v, 0; }
static int opt_latencies(bench_options *o, const char *v) { return (void)v, o->latencies = 1, 0; }
static int opt_profile(bench_options *o, const char *v) { return (void)v, o->profile = 1, 0; }
static int opt_peer_graphs(bench_options *o, const char *v) { return (void)v, o->peer_graphs = 1, 0; }
static int opt_paper(bench_options *o, const char *v) { return (void)v, o->paper = 1, 0; }

typedef struct opt_def {
    const char *name, *metavar, *help;
    opt_fn fn;
} opt_def;

static const opt_def options[] = {
    {"--models", "DxN,...", "model shapes with random weights: width x layers (default 256x8)", opt_models},
    {"--model-dir", "DIR", "a saved model (config.json + model.safetensors) instead of --models", opt_model_dir},
    {"--lens", "L,...", "total sequence lengths, prompt included (default 1024,4096)", opt_lens},
    {"--batches", "B,...", "batch sizes (default 1)", opt_batches},
    {"--algos", "A,...", "lazy, eager, flash, recompute (default all four)", opt_algos},
    {"--backends", "NAME,...", "cpu, opencl (default cpu)", opt_backends},
    {"--device", "DEV", "device of the GPU backends: index, platform:device or name part", opt_device},
    {"--seed", "S", "seed of the random weights and of the sampler (default 1234)", opt_seed},
    {"--prompt", "P", "prompt tokens per sequence; L - P tokens are generated (default 16)", opt_prompt},
    {"--threads", "N", "CPU threads of the cpu backend and of CPU peers; 0 = all (default 0)", opt_threads},
    {"--temp", "T", "sampling temperature; 0 = greedy, every algorithm then gives the same tokens (default 0)",
     opt_temp},
    {"--warmup", "N", "untimed generations of a short length before the timed ones (default 1)", opt_warmup},
    {"--repeats", "N", "timed generations per cell; medians are reported (default 1)", opt_repeats},
    {"--budget", "SECONDS", "skip a cell whose estimated time exceeds this; 0 = no limit (default 600)",
     opt_budget},
    {"--profile", NULL, "device backends: split mixer / rest by kernel times of one more, profiled generation",
     opt_profile},
    {"--json", "FILE", "also write one JSON object per cell (and per ratio) to FILE", opt_json},
    {"--latencies", NULL, "put every step's time into the JSON (for bench/plot.py)", opt_latencies},
    {"--peers", "P,...", "also run PyTorch peers: torch, torch:cuda, torch:cpu", opt_peers},
    {"--peer-algos", "A,...", "peer algorithms: recompute, lazy, flash (default all three)", opt_peer_algos},
    {"--peer-graphs", NULL, "run the CUDA peers under CUDA graphs", opt_peer_graphs},
    {"--peer-script", "PATH", "the peer (default: bench/peers/torch_peer.py of the source tree)", opt_peer_script},
    {"--python", "PATH", "the python that runs the peer (default /usr/bin/python3)", opt_python},
    {"--peer-timeout", "SECONDS", "kill a peer run after this; 0 = never (default 0)", opt_peer_timeout},
    {"--paper", NULL, "the grid of the Flash Inference paper's main experiment (see RESULTS.md)", opt_paper},
    {"--paper-scale", "N", "with --paper: divide every length by N (say so in the output)", opt_paper_scale},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static void print_usage(FILE *f)
{
    fprintf(f, "usage: lcsm-bench [options]\n"
               "  Times generation with lcsm's decoding algorithms over a grid of models, lengths,\n"
               "  batches and backends (each cell in a fresh process), optionally next to PyTorch peers,\n"
               "  and prints a table with per-token latencies, memory and speed-up ratios.\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[48];
        snprintf(left, sizeof left, "%s%s%s", options[i].name, options[i].metavar ? " " : "",
                 options[i].metavar ? options[i].metavar : "");
        fprintf(f, "  %-24s %s\n", left, options[i].help);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "print this help");
}

static void set_defaults(bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->models[0] = (bench_model){256, 8, NULL};
    o->n_models = 1;
    o->lens[0] = 1024;
    o->lens[1] = 4096;
    o->n_lens = 2;
    o->batches[0] = 1;
    o->n_batches = 1;
    for (int a = 0; a < BENCH_N_ALGOS; a++)
        o->algos[a] = 1;
    o->backends[0] = "cpu";
    o->n_backends = 1;
    o->seed = 1234;
    o->prompt = 16;
    o->warmup = 1;
    o->repeats = 1;
    o->budget = 600;
    o->python = "/usr/bin/python3";
    o->peer_script = LCSM_BENCH_PEER_SCRIPT;
    o->peer_algos[BENCH_RECOMPUTE] = o->peer_algos[BENCH_LAZY] = o->peer_algos[BENCH_FLASH] = 1;
    o->paper_scale = 1;
}

static void apply_paper(bench_options *o)
{
    o->paper = 1;
    o->models[0] = (bench_model){bench_paper.d_model, bench_paper.n_layer, NULL};
    o->n_models = 1;
    memcpy(o->batches, bench_paper.batches, sizeof bench_paper.batches);
    o->n_batches = bench_paper.n_batches;
    memcpy(o->lens, bench_paper.lens, sizeof bench_paper.lens);
    o->n_lens = bench_paper.n_lens;
    memset(o->algos, 0, sizeof o->algos);
    o->algos[BENCH_LAZY] = o->algos[BENCH_FLASH] = 1; /* the paper's ratio: flash against lazy */
}

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "lcsm-bench: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n\n");
    print_usage(stderr);
    return BENCH_OPTIONS_ERROR;
}

int bench_parse_options(int argc, char **argv, bench_options *o)
{
    set_defaults(o);
    for (int i = 1; i < argc; i++) /* the preset first, so that other options refine it */
        if (!strcmp(argv[i], "--paper"))
            apply_paper(o);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_usage(stdout);
            return BENCH_OPTIONS_HELP;
        }
        const char *eq = strchr(argv[i], '=');
        size_t len = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        const opt_def *d = NULL;
        for (size_t k = 0; k < N_OPTIONS && !d; k++)
            if (strlen(options[k].name) == len && !strncmp(options[k].name, argv[i], len))
                d = &options[k];
        if (!d)
            return usage_error("unknown option '%s'%s", argv[i], "");
        const char *v = NULL;
        if (d->metavar) {
            if (!eq && i + 1 >= argc)
                return usage_error("option %s needs a value%s", d->name, "");
            v = eq ? eq + 1 : argv[++i];
        } else if (eq) {
            return usage_error("option %s takes no value%s", d->name, "");
        }
        if (d->fn(o, v))
            return usage_error("bad value '%s' for %s", v, d->name);
    }
    if (o->paper_scale > 1) {
        if (!o->paper)
            return usage_error("--paper-scale needs --paper%s%s", "", "");
        for (int i = 0; i < o->n_lens; i++)
            o->lens[i] /= o->paper_scale;
    }
    for (int i = 0; i < o->n_lens; i++)
        if (o->lens[i] <= o->prompt) {
            char l[32], p[32];
            snprintf(l, sizeof l, "%d", o->lens[i]);
            snprintf(p, sizeof p, "%d", o->prompt);
            return usage_error("length %s leaves no token to generate after a prompt of %s", l, p);
        }
    int any = 0;
    for (int a = 0; a < BENCH_N_ALGOS; a++)
        any |= o->algos[a];
    if (!any)
        return usage_error("no algorithm selected%s%s", "", "");
    return BENCH_OPTIONS_OK;
}
