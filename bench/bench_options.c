#include "bench_options.h"

#include "bench_models.h"
#include "lcsm.h"

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
        if (a == BENCH_N_ALGOS || (peer && (a == BENCH_EAGER || a == BENCH_MODAL || a == BENCH_PLAIN || a == BENCH_SMOOTH)))
            bad = 1;
        else
            flags[a] = 1;
    }
    free(copy);
    return bad ? -1 : 0;
}

/* d_model, n_layer and family of a saved model, for the budget's estimates (0
 * when the config keeps them elsewhere: the cells then run without an estimate). */
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
    if (!cJSON_IsNumber(d) || !cJSON_IsNumber(l)) { /* StripedHyena's and Evo 2's keys */
        d = cJSON_GetObjectItemCaseSensitive(o, "hidden_size");
        l = cJSON_GetObjectItemCaseSensitive(o, "num_layers");
    }
    if (cJSON_IsNumber(d) && cJSON_IsNumber(l)) {
        m->d_model = d->valueint;
        m->n_layer = l->valueint;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    for (int i = 0; cJSON_IsString(mt) && lcsm_arch_name(i); i++)
        if (!strcmp(mt->valuestring, lcsm_arch_name(i)))
            m->arch = lcsm_arch_name(i);
    cJSON_Delete(o);
}

/* ------------------------------------------------------------- options */

typedef int (*opt_fn)(bench_options *o, const char *v);

/* The family's static name (lcsm_arch_name), or NULL. */
static const char *arch_static(const char *name, size_t len)
{
    for (int i = 0; lcsm_arch_name(i); i++)
        if (strlen(lcsm_arch_name(i)) == len && !strncmp(name, lcsm_arch_name(i), len))
            return lcsm_arch_name(i);
    return NULL;
}

/* NAME (a preset), DxN or ARCH:DxN; the family of a plain DxN is set after
 * parsing, from --arch. */
static int opt_models(bench_options *o, const char *v)
{
    char *items[BENCH_MAX_LIST], *copy;
    int n = split_list(v, items, BENCH_MAX_LIST, &copy), bad = n <= 0;
    for (int i = 0; i < n && !bad; i++) {
        const bench_preset *p = bench_preset_find(items[i]);
        if (p) {
            o->models[i] = (bench_model){p->hidden, p->layers, NULL, p->arch, p};
            continue;
        }
        char *shape = items[i], *colon = strchr(items[i], ':');
        const char *arch = NULL;
        if (colon) {
            if (!(arch = arch_static(items[i], (size_t)(colon - items[i]))))
                bad = 1;
            shape = colon + 1;
        }
        char *x = strchr(shape, 'x');
        long d, l;
        if (x)
            *x = '\0';
        if (bad || !x || parse_long(shape, 1, 65536, &d) || parse_long(x + 1, 1, 4096, &l))
            bad = 1;
        else
            o->models[i] = (bench_model){(int)d, (int)l, NULL, arch, NULL};
    }
    free(copy);
    if (bad)
        return -1;
    o->n_models = n;
    return 0;
}

static int opt_model_dir(bench_options *o, const char *v)
{
    o->models[0] = (bench_model){0, 0, v, NULL, NULL};
    read_model_shape(v, &o->models[0]);
    o->n_models = 1;
    return 0;
}

static int opt_lens(bench_options *o, const char *v)
{
    o->lens_given = 1;
    return parse_int_list(v, 2, 1 << 24, o->lens, &o->n_lens, 1);
}
static int opt_prefill_lens(bench_options *o, const char *v)
{
    return parse_int_list(v, 1, 1 << 24, o->prefill_lens, &o->n_prefill_lens, 1);
}

static int opt_prefill_chunk(bench_options *o, const char *v)
{
    char *items[BENCH_MAX_CHUNKS], *copy;
    int n = split_list(v, items, BENCH_MAX_CHUNKS, &copy), bad = n <= 0;
    for (int i = 0; i < n && !bad; i++) {
        long c;
        bad = parse_long(items[i], 0, 1 << 24, &c) != 0;
        for (int k = 0; k < i && !bad; k++)
            bad = o->chunks[k] == (int)c;
        if (!bad)
            o->chunks[i] = (int)c;
    }
    free(copy);
    if (bad)
        return -1;
    qsort(o->chunks, (size_t)n, sizeof *o->chunks, cmp_int); /* 0 (one call) first: the others compare with it */
    o->n_chunks = n;
    return 0;
}

static int opt_arch(bench_options *o, const char *v)
{
    return (o->arch = arch_static(v, strlen(v))) ? 0 : -1;
}

/* f32 first (every narrow type's row compares with it), then as given. */
static int opt_weights(bench_options *o, const char *v)
{
    char *items[BENCH_MAX_LIST], *copy;
    int n = split_list(v, items, BENCH_MAX_LIST, &copy), bad = n <= 0, seen[BENCH_N_WEIGHTS] = {0}, k = 0;
    for (int i = 0; i < n && !bad; i++) {
        bench_weights w = bench_weights_from_name(items[i]);
        bad = w == BENCH_N_WEIGHTS || seen[w]++;
    }
    if (!bad) {
        if (seen[BENCH_W_F32])
            o->weights[k++] = BENCH_W_F32;
        for (int i = 0; i < n; i++) {
            bench_weights w = bench_weights_from_name(items[i]);
            if (w != BENCH_W_F32)
                o->weights[k++] = w;
        }
        o->n_weights = k;
    }
    free(copy);
    return bad ? -1 : 0;
}
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
INT_OPT(opt_state_size, state_size, 1, 4096)

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
static int opt_modal_tiled(bench_options *o, const char *v) { return (void)v, o->modal_tiled = 1, 0; }
static int opt_lag(bench_options *o, const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > LCSM_MAX_LAG)
        return -1;
    o->lag = (int)n;
    return 0;
}

typedef struct opt_def {
    const char *name, *metavar, *help;
    opt_fn fn;
} opt_def;

static const opt_def options[] = {
    {"--models", "M,...",
     "random models: DxN (width x layers, of --arch), ARCH:DxN, or a published shape: evo2-1b, evo2-7b, sh-7b (lcsm-bench -h lists them) "
     "(default 256x8)",
     opt_models},
    {"--arch", "NAME", "family of the DxN models: hyenadna, longconv, stripedhyena, evo2 (default hyenadna)", opt_arch},
    {"--state-size", "S", "modal states of random stripedhyena / evo2 DxN models (default: the family's)",
     opt_state_size},
    {"--model-dir", "DIR", "a saved model (config.json + model.safetensors) instead of --models", opt_model_dir},
    {"--lens", "L,...", "total sequence lengths, prompt included (default 1024,4096; none with only --prefill-lens)",
     opt_lens},
    {"--batches", "B,...", "batch sizes (default 1)", opt_batches},
    {"--algos", "A,...",
     "lazy, eager, flash (lagged: --lag), plain (flash with lag 1), smooth (the smooth schedule), modal, "
     "recompute (default lazy, eager, flash, recompute)",
     opt_algos},
    {"--weights", "W,...", "weight storage: f32, bf16, f16, auto (a checkpoint's own); each a grid dimension "
                           "(default f32)",
     opt_weights},
    {"--modal-tiled", NULL, "load with modal_tiled: flash, lazy, eager tile the modal filters (modal does not)",
     opt_modal_tiled},
    {"--lag", "N", "lagged flash's lag for flash and modal cells (0 = the library's auto, the default; algo plain "
     "runs lag 1 next to it)", opt_lag},
    {"--prefill-lens", "P,...", "also time prompts alone: P tokens per sequence, session max_len P", opt_prefill_lens},
    {"--prefill-chunk", "C,...", "prefill cells feed the prompt by lcsm_session_extend in chunks of C; 0 = one "
                                 "prefill call (default 0)",
     opt_prefill_chunk},
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
    {"--peers", "P,...", "also run PyTorch peers: torch, torch:cuda, torch:cpu; +graphs (torch:cuda+graphs) under CUDA graphs", opt_peers},
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
               "  Times generation with lcsm's decoding algorithms over a grid of models (any family),\n"
               "  weight types, lengths, batches and backends (each cell in a fresh process), optionally\n"
               "  next to PyTorch peers, and prompts alone (--prefill-lens); prints a table with per-token\n"
               "  latencies, memory and speed-up ratios.\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char left[48];
        snprintf(left, sizeof left, "%s%s%s", options[i].name, options[i].metavar ? " " : "",
                 options[i].metavar ? options[i].metavar : "");
        fprintf(f, "  %-24s %s\n", left, options[i].help);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "print this help");
    fprintf(f, "published shapes (--models NAME; random weights):\n");
    fprintf(f, "  %-13s %-12s %6s %6s %6s %5s %5s %6s  %s\n", "name", "family", "hidden", "layers", "inner", "heads",
            "state", "vocab", "attention layers");
    for (int i = 0; i < bench_n_presets; i++) {
        const bench_preset *p = &bench_presets[i];
        char attn[128];
        const int n_attn = bench_preset_attention(p, attn, sizeof attn);
        fprintf(f, "  %-13s %-12s %6d %6d %6d %5d %5d %6d  %s\n", p->name, p->arch, p->hidden, p->layers, p->inner,
                p->heads, p->state, p->vocab, n_attn ? attn : "none");
    }
}

static void set_defaults(bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->models[0] = (bench_model){256, 8, NULL, NULL, NULL};
    o->n_models = 1;
    o->arch = "hyenadna";
    o->weights[0] = BENCH_W_F32;
    o->n_weights = 1;
    o->n_chunks = 1; /* chunks[0] = 0: the whole prompt in one call */
    o->lens[0] = 1024;
    o->lens[1] = 4096;
    o->n_lens = 2;
    o->batches[0] = 1;
    o->n_batches = 1;
    for (int a = 0; a < BENCH_N_ALGOS; a++)
        o->algos[a] = a != BENCH_MODAL && a != BENCH_PLAIN && a != BENCH_SMOOTH;
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
    o->models[0] = (bench_model){bench_paper.d_model, bench_paper.n_layer, NULL, "hyenadna", NULL};
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
    for (int i = 0; i < o->n_models; i++)
        if (!o->models[i].dir && !o->models[i].arch)
            o->models[i].arch = o->arch;
    /* Only prompts: no generation cells unless --lens asks for them too. */
    if (o->n_prefill_lens && !o->lens_given && !o->paper)
        o->n_lens = 0;
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
    if (o->n_prefill_lens) {
        int session_algo = 0;
        for (int a = 0; a < BENCH_N_ALGOS; a++)
            session_algo |= o->algos[a] && a != BENCH_RECOMPUTE;
        if (!session_algo)
            return usage_error("--prefill-lens needs a session algorithm in --algos (recompute has no session)%s%s",
                               "", "");
    }
    return BENCH_OPTIONS_OK;
}
