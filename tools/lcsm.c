/*
 * lcsm: the command-line front end of the lcsm library.
 *
 *   lcsm generate     sample DNA from a model (the built-in one without -m)
 *   lcsm score        per-token log-likelihoods of a text under a model
 *   lcsm info         print a model's family, layers, size and the memory a session needs
 *   lcsm make-model   write a model with random weights to a directory
 *   lcsm devices      list the devices of every compiled-in backend
 *   lcsm version      print the library version
 *
 * It uses only the public API (include/lcsm.h), so it doubles as an example.
 * Exit status: 0 success, 1 a library call (or an allocation) failed, 2 a bad
 * command line. Results go to stdout, diagnostics and timings to stderr, so that
 * `lcsm generate > seqs.txt` keeps only the sequences.
 */
#include "lcsm.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_LIB = 1, EXIT_USAGE = 2 };

enum {
    TOKEN_CLS = 0, /* the prompt when none is given */
    TOKEN_A = 7,   /* A C G T are 7..10: the default sampling range */
    TOKEN_T = 10,
};

/* The seed of lcsm_model_create_default, so that a bare `make-model DIR` writes
 * the built-in model. */
#define DEFAULT_MODEL_SEED 20250101u

/* ------------------------------------------------------------ arguments */

/* Every option of every subcommand lands in this one struct; each subcommand's
 * table names the fields it accepts. Parsing, range checks and the usage text
 * are thus written once, from the tables. */
typedef struct cli_args {
    /* generate, info */
    const char *model_dir; /* NULL: the built-in default model */
    const char *backend;   /* NULL: $LCSM_BACKEND, else "cpu" */
    const char *device;    /* NULL: $LCSM_DEVICE, else the backend's first GPU */
    /* generate */
    const char *prompt; /* NULL or "": the single token [CLS] */
    int n_predict;
    lcsm_algo algo;
    int batch;
    float temp, top_p, shift;
    int top_k;
    uint64_t seed; /* the sampler's in generate, the weights' in make-model */
    int threads;
    int max_len; /* 0: what generate needs, prompt + n_predict - 1 */
    bool all_tokens;
    int lag;                /* generate: lagged flash (0 = the library's auto) */
    bool progress, quiet;   /* generate: progress on stderr (default: when stderr is a terminal) */
    lcsm_weight_dtype weights; /* generate, info, score; make-model: how the file stores them */
    /* make-model; 0 means "keep the family's default" */
    const char *out_dir;
    const char *arch;
    int d_model, n_layer, l_max, d_inner;
    const char *attn_layers; /* "1,3" or "none"; NULL: the family's stripes */
} cli_args;

/* OPT_STR is a non-empty string (a directory, a name); OPT_TEXT may be empty. */
typedef enum opt_kind { OPT_FLAG, OPT_STR, OPT_TEXT, OPT_INT, OPT_U64, OPT_FLOAT, OPT_ALGO, OPT_WEIGHTS } opt_kind;

typedef struct opt_def {
    const char *short_name; /* "-m", or NULL */
    const char *long_name;  /* "--model" */
    opt_kind kind;
    size_t field; /* offsetof(cli_args, ...) */
    double lo, hi; /* inclusive range of OPT_INT / OPT_FLOAT */
    bool lo_open;  /* the range excludes lo (top-p must be > 0) */
    const char *metavar;
    const char *help;
} opt_def;

#define FIELD(f) offsetof(cli_args, f)

/* For options without a range; -FLT_MAX..FLT_MAX keeps a float finite. */
#define NO_RANGE 0, 0, false

static const opt_def generate_opts[] = {
    {"-m", "--model", OPT_STR, FIELD(model_dir), NO_RANGE, "DIR",
     "model directory (config.json + model.safetensors); default: the built-in model"},
    {"-p", "--prompt", OPT_TEXT, FIELD(prompt), NO_RANGE, "DNA",
     "prompt of A C G T N letters; default: the single token [CLS]"},
    {"-n", "--n-predict", OPT_INT, FIELD(n_predict), 0, INT_MAX, false, "N", "new tokens per sequence (default 64)"},
    {NULL, "--algo", OPT_ALGO, FIELD(algo), NO_RANGE, "NAME", "flash | lazy | eager | modal | smooth (default flash)"},
    {NULL, "--backend", OPT_STR, FIELD(backend), NO_RANGE, "NAME", "compute backend (default $LCSM_BACKEND, else cpu)"},
    {NULL, "--device", OPT_STR, FIELD(device), NO_RANGE, "DEV",
     "device of a GPU backend: index, platform:device or name part (default $LCSM_DEVICE, else the first GPU)"},
    {NULL, "--batch", OPT_INT, FIELD(batch), 1, 65536, false, "B", "sequences generated together (default 1)"},
    {NULL, "--temp", OPT_FLOAT, FIELD(temp), 0, FLT_MAX, false, "T", "sampling temperature; 0 = greedy (default 1.0)"},
    {NULL, "--top-k", OPT_INT, FIELD(top_k), 0, INT_MAX, false, "K", "keep the K most likely tokens; 0 = all (default 0)"},
    {NULL, "--top-p", OPT_FLOAT, FIELD(top_p), 0, 1, true, "P", "nucleus sampling mass in (0, 1] (default 1.0)"},
    {"-s", "--seed", OPT_U64, FIELD(seed), NO_RANGE, "S", "sampler seed (default 0)"},
    {"-t", "--threads", OPT_INT, FIELD(threads), 0, 1024, false, "N", "CPU threads; 0 = one per processor (default 0)"},
    {NULL, "--max-len", OPT_INT, FIELD(max_len), 1, INT_MAX, false, "L",
     "session length (default prompt + N - 1, what generation needs; at most the model's l_max)"},
    {NULL, "--all-tokens", OPT_FLAG, FIELD(all_tokens), NO_RANGE, NULL,
     "sample from the whole vocabulary, not only A C G T"},
    {NULL, "--shift", OPT_FLOAT, FIELD(shift), -LCSM_MAX_FILTER_SHIFT, LCSM_MAX_FILTER_SHIFT, false, "F",
     "filter_shift of the implicit filters (default 0.05)"},
    {NULL, "--weights", OPT_WEIGHTS, FIELD(weights), NO_RANGE, "DT",
     "f32 | f16 | bf16 | auto (as the file stores them): weight storage on the device (default f32)"},
    {NULL, "--lag", OPT_INT, FIELD(lag), 0, LCSM_MAX_LAG, false, "N",
     "lagged flash: the taps a step adds directly, 1 = the plain schedule (default 0: auto, l_max / 256)"},
    {NULL, "--progress", OPT_FLAG, FIELD(progress), NO_RANGE, NULL,
     "show load and generation progress on stderr (default when stderr is a terminal)"},
    {NULL, "--quiet", OPT_FLAG, FIELD(quiet), NO_RANGE, NULL, "no progress and no timing report on stderr"},
};

static const opt_def score_opts[] = {
    {"-m", "--model", OPT_STR, FIELD(model_dir), NO_RANGE, "DIR", "model directory; default: the built-in model"},
    {"-p", "--prompt", OPT_STR, FIELD(prompt), NO_RANGE, "TEXT", "the text to score (its tokens, after the first)"},
    {NULL, "--backend", OPT_STR, FIELD(backend), NO_RANGE, "NAME", "compute backend (default $LCSM_BACKEND, else cpu)"},
    {NULL, "--device", OPT_STR, FIELD(device), NO_RANGE, "DEV",
     "device of a GPU backend: index, platform:device or name part (default $LCSM_DEVICE, else the first GPU)"},
    {"-t", "--threads", OPT_INT, FIELD(threads), 0, 1024, false, "N", "CPU threads; 0 = one per processor (default 0)"},
    {NULL, "--weights", OPT_WEIGHTS, FIELD(weights), NO_RANGE, "DT", "f32 | f16 | bf16 | auto (default f32)"},
};

static const opt_def info_opts[] = {
    {"-m", "--model", OPT_STR, FIELD(model_dir), NO_RANGE, "DIR", "model directory; default: the built-in model"},
    {NULL, "--backend", OPT_STR, FIELD(backend), NO_RANGE, "NAME", "compute backend (default $LCSM_BACKEND, else cpu)"},
    {NULL, "--device", OPT_STR, FIELD(device), NO_RANGE, "DEV",
     "device of a GPU backend: index, platform:device or name part (default $LCSM_DEVICE, else the first GPU)"},
    {NULL, "--weights", OPT_WEIGHTS, FIELD(weights), NO_RANGE, "DT",
     "f32 | f16 | bf16 | auto: load the weights so (the bytes of each type are printed anyway)"},
};

static const opt_def devices_opts[] = {
    {NULL, "--backend", OPT_STR, FIELD(backend), NO_RANGE, "NAME", "only this backend (default: all compiled in)"},
};

static const opt_def make_model_opts[] = {
    {NULL, "--arch", OPT_STR, FIELD(arch), NO_RANGE, "NAME",
     "model family: hyenadna | longconv | stripedhyena | evo2 | hedgehog (default hyenadna)"},
    {NULL, "--d-model", OPT_INT, FIELD(d_model), 1, 65536, false, "D", "model width (default: the family's; 128)"},
    {NULL, "--n-layer", OPT_INT, FIELD(n_layer), 1, 4096, false, "N", "layers (default 2)"},
    {NULL, "--l-max", OPT_INT, FIELD(l_max), 1, INT_MAX, false, "L", "longest sequence (default: 16384; 1024)"},
    {NULL, "--d-inner", OPT_INT, FIELD(d_inner), 1, INT_MAX, false, "DI", "MLP width (default 4*D)"},
    {NULL, "--attn-layers", OPT_STR, FIELD(attn_layers), NO_RANGE, "LIST",
     "stripedhyena, evo2: the attention layers, e.g. 1,3, or none (default: the family's stripes, "
     "8, 16, ... and 3, 10, 17, ...)"},
    {NULL, "--weights", OPT_WEIGHTS, FIELD(weights), NO_RANGE, "DT",
     "f32 | f16 | bf16: the stored weight matrices, rounded to that type (default f32)"},
    {"-s", "--seed", OPT_U64, FIELD(seed), NO_RANGE, "S",
     "weight seed (default 20250101, that of the built-in model)"},
};

/* -------------------------------------------------------------- commands */

static int cmd_generate(const cli_args *a);
static int cmd_score(const cli_args *a);
static int cmd_info(const cli_args *a);
static int cmd_make_model(const cli_args *a);
static int cmd_devices(const cli_args *a);
static int cmd_version(const cli_args *a);

static void generate_defaults(cli_args *a)
{
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    lcsm_sampler_params sp;
    lcsm_sampler_params_default(&sp);
    a->n_predict = 64;
    a->algo = LCSM_ALGO_FLASH;
    a->batch = 1;
    a->temp = sp.temperature;
    a->top_k = sp.top_k;
    a->top_p = sp.top_p;
    a->seed = sp.seed;
    a->shift = mo.filter_shift;
}

static void make_model_defaults(cli_args *a) { a->seed = DEFAULT_MODEL_SEED; }

typedef struct command {
    const char *name;
    const char *positional; /* metavar of the one required positional argument, or NULL */
    const char *summary;
    const opt_def *opts;
    size_t n_opts;
    void (*defaults)(cli_args *); /* may be NULL: all zero */
    int (*run)(const cli_args *);
} command;

#define OPTS(t) t, sizeof t / sizeof t[0]

static const command commands[] = {
    {"generate", NULL, "generate DNA with a model", OPTS(generate_opts), generate_defaults, cmd_generate},
    {"score", NULL, "print the log-likelihood of each token of a text", OPTS(score_opts), NULL, cmd_score},
    {"info", NULL, "print a model's family, layers, size and memory needs", OPTS(info_opts), NULL, cmd_info},
    {"make-model", "DIR", "write a model with random weights to DIR", OPTS(make_model_opts), make_model_defaults,
     cmd_make_model},
    {"devices", NULL, "list the devices of the backends (platform, memory, compute units)", OPTS(devices_opts), NULL,
     cmd_devices},
    {"version", NULL, "print the library version", NULL, 0, NULL, cmd_version},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* ----------------------------------------------------------------- usage */

static void print_command_usage(FILE *f, const command *c)
{
    fprintf(f, "usage: lcsm %s%s%s%s\n", c->name, c->positional ? " " : "", c->positional ? c->positional : "",
            c->n_opts ? " [options]" : "");
    fprintf(f, "  %s\n", c->summary);
    for (size_t i = 0; i < c->n_opts; i++) {
        const opt_def *o = &c->opts[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s%s%s", o->short_name ? o->short_name : "    ",
                 o->short_name ? ", " : "", o->long_name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        /* Short names are two characters, so the long names line up. */
        fprintf(f, "    %-24s %s\n", left, o->help);
    }
    fprintf(f, "    %-24s %s\n", "-h, --help", "print this help and exit");
}

static void print_usage(FILE *f, const command *only)
{
    if (only) {
        print_command_usage(f, only);
        return;
    }
    fprintf(f, "lcsm %s - exact, near-linear-time inference of long convolution sequence models\n\n",
            lcsm_version_string());
    fprintf(f, "usage: lcsm <command> [options]\n       lcsm --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fputc('\n', f);
        print_command_usage(f, &commands[i]);
    }
    fprintf(f, "\nenvironment: LCSM_BACKEND (backend when --backend is absent), LCSM_FFT_THRESHOLD,\n"
               "             LCSM_CACHE_DIR (see lcsm.h)\n"
               "exit status: 0 success, 1 library error, 2 bad command line\n");
}

/* Reports a bad command line: the reason, then the usage (of command `c`, or of
 * all when NULL), both to stderr. */
static int usage_error(const command *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lcsm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n\n", stderr);
    va_end(ap);
    print_usage(stderr, c);
    return EXIT_USAGE;
}

/* ---------------------------------------------------------------- parsing */

/* strtol & co. skip leading blanks and strtoull accepts "-1"; a number on our
 * command line starts with a digit or a sign, nothing else. */
static bool starts_like_number(const char *s, bool allow_minus)
{
    return (*s >= '0' && *s <= '9') || *s == '.' || *s == '+' || (allow_minus && *s == '-');
}

static bool parse_int(const char *s, const opt_def *o, int *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!starts_like_number(s, true) || end == s || *end || errno == ERANGE || v < o->lo || v > o->hi ||
        (o->lo_open && v == o->lo))
        return false;
    *out = (int)v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!starts_like_number(s, false) || end == s || *end || errno == ERANGE)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_float(const char *s, const opt_def *o, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end); /* errno ERANGE also on underflow: 1e-999 is refused too */
    if (!starts_like_number(s, true) || end == s || *end || errno == ERANGE || !isfinite(v) || v < o->lo ||
        v > o->hi || (o->lo_open && v == o->lo))
        return false;
    *out = (float)v;
    return true;
}

/* Stores `value` into the field of `o`; false if it does not parse or is out of range. */
static bool set_option(cli_args *a, const opt_def *o, const char *value)
{
    void *field = (char *)a + o->field;
    switch (o->kind) {
    case OPT_FLAG: *(bool *)field = true; return true;
    case OPT_STR: /* -m "" would be a lookup of /config.json */
        if (!*value)
            return false;
        *(const char **)field = value;
        return true;
    case OPT_TEXT: *(const char **)field = value; return true;
    case OPT_INT: return parse_int(value, o, (int *)field);
    case OPT_U64: return parse_u64(value, (uint64_t *)field);
    case OPT_FLOAT: return parse_float(value, o, (float *)field);
    case OPT_ALGO: return lcsm_algo_from_name(value, (lcsm_algo *)field) == LCSM_OK;
    case OPT_WEIGHTS: return lcsm_weight_dtype_from_name(value, (lcsm_weight_dtype *)field) == LCSM_OK;
    }
    return false;
}

/* What a bad value should have been, for the error message. */
static void describe_range(const opt_def *o, char *buf, size_t cap)
{
    switch (o->kind) {
    case OPT_INT: snprintf(buf, cap, "an integer in [%.0f, %.0f]", o->lo, o->hi); return;
    case OPT_U64: snprintf(buf, cap, "an integer in [0, %llu]", (unsigned long long)UINT64_MAX); return;
    case OPT_FLOAT:
        if (o->lo == -FLT_MAX)
            snprintf(buf, cap, "a finite number");
        else if (o->hi == FLT_MAX)
            snprintf(buf, cap, "a finite number %s %g", o->lo_open ? ">" : ">=", o->lo);
        else
            snprintf(buf, cap, "a number in %c%g, %g]", o->lo_open ? '(' : '[', o->lo, o->hi);
        return;
    case OPT_ALGO: snprintf(buf, cap, "flash, lazy, eager, modal or smooth"); return;
    case OPT_WEIGHTS: snprintf(buf, cap, "f32, f16, bf16 or auto"); return;
    case OPT_STR: snprintf(buf, cap, "a non-empty value"); return;
    case OPT_FLAG:
    case OPT_TEXT: break;
    }
    snprintf(buf, cap, "a value");
}

static const opt_def *find_option(const command *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_opts; i++) {
        const opt_def *o = &c->opts[i];
        if ((o->short_name && strlen(o->short_name) == len && !strncmp(o->short_name, name, len)) ||
            (strlen(o->long_name) == len && !strncmp(o->long_name, name, len)))
            return o;
    }
    return NULL;
}

enum { PARSE_OK, PARSE_HELP, PARSE_ERROR };

/* Parses argv (the words after the command name): "-x VALUE", "--long VALUE",
 * "--long=VALUE", flags, and the command's positional argument. A value may start
 * with '-' (--shift -0.1). On error the message and usage are printed. */
static int parse_args(const command *c, int argc, char **argv, cli_args *a)
{
    bool have_positional = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
            return PARSE_HELP;
        if (arg[0] != '-' || arg[1] == '\0') {
            if (!c->positional || have_positional) {
                usage_error(c, "%s: unexpected argument '%s'", c->name, arg);
                return PARSE_ERROR;
            }
            if (!*arg) {
                usage_error(c, "%s: %s must not be empty", c->name, c->positional);
                return PARSE_ERROR;
            }
            a->out_dir = arg;
            have_positional = true;
            continue;
        }
        const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
        const opt_def *o = find_option(c, arg, eq ? (size_t)(eq - arg) : strlen(arg));
        const char *value = NULL;
        if (!o) {
            usage_error(c, "%s: unknown option '%s'", c->name, arg);
            return PARSE_ERROR;
        } else if (o->kind == OPT_FLAG && eq) {
            usage_error(c, "%s: option %s takes no value", c->name, o->long_name);
            return PARSE_ERROR;
        } else if (o->kind != OPT_FLAG) {
            if (!eq && i + 1 >= argc) {
                usage_error(c, "%s: option %s needs a value", c->name, o->long_name);
                return PARSE_ERROR;
            }
            value = eq ? eq + 1 : argv[++i];
        }
        if (!set_option(a, o, value)) {
            char expected[96];
            describe_range(o, expected, sizeof expected);
            usage_error(c, "%s: bad value '%s' for %s: expected %s", c->name, value, o->long_name, expected);
            return PARSE_ERROR;
        }
    }
    if (c->positional && !have_positional) {
        usage_error(c, "%s: missing argument %s", c->name, c->positional);
        return PARSE_ERROR;
    }
    return PARSE_OK;
}

/* ------------------------------------------------------------- helpers */

/* Prints a failed library call in the one format the tool uses; lcsm_last_error()
 * is thread-local and the next failing call overwrites it, so print at once. */
static int lib_error(lcsm_status st)
{
    fprintf(stderr, "lcsm: %s: %s\n", lcsm_strerror(st), lcsm_last_error());
    return EXIT_LIB;
}

static int out_of_memory(const char *what)
{
    fprintf(stderr, "lcsm: %s: %s\n", lcsm_strerror(LCSM_ERR_OUT_OF_MEMORY), what);
    return EXIT_LIB;
}

/* malloc(0) may return NULL; callers treat NULL as failure, so ask for >= 1 byte. */
static void *alloc_array(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t bytes = n * size;
    return malloc(bytes ? bytes : 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static const char *backend_name(const cli_args *a)
{
    if (a->backend)
        return a->backend;
    const char *env = getenv("LCSM_BACKEND");
    return env && *env ? env : "cpu";
}

static lcsm_status open_backend(const char *name, const char *device, int threads, lcsm_backend **out)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = threads;
    bo.device = device;
    return lcsm_backend_create(name, &bo, out);
}

/* Device time per kernel, when the backend profiles (LCSM_PROFILE=1). */
static void print_profile(lcsm_backend *be)
{
    lcsm_profile_entry e[32];
    int n = 0;
    if (lcsm_backend_get_profile(be, e, 32, &n, 0) != LCSM_OK)
        return;
    double total = 0;
    for (int i = 0; i < n && i < 32; i++)
        total += e[i].seconds;
    fprintf(stderr, "lcsm: device time %10.2f ms in all, by kernel:\n", 1e3 * total);
    for (int i = 0; i < n && i < 32; i++)
        fprintf(stderr, "lcsm:   %-16s %10.2f ms %5.1f%% %9lld calls %8.2f us/call\n", e[i].name,
                1e3 * e[i].seconds, total > 0 ? 100 * e[i].seconds / total : 0.0, e[i].calls,
                1e6 * e[i].seconds / (double)(e[i].calls ? e[i].calls : 1));
}

/* -m DIR, or the built-in model when there is no -m. */
/* Progress lines on stderr (lcsm_progress_fn): one line per stage, redrawn. */
typedef struct progress_state {
    char stage[16];
    double t0;
    long long last; /* done at the last report of this stage */
} progress_state;

static void show_progress(void *user, const char *stage, long long done, long long total)
{
    progress_state *p = user;
    const double now = now_s();
    if (strcmp(p->stage, stage)) {
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        p->t0 = now;
    } else if (done == p->last) {
        return; /* said already */
    }
    p->last = done;
    const double el = now - p->t0, rate = el > 0 ? (double)done / el : 0;
    if (!strcmp(stage, "generate") && rate > 0 && done < total) {
        const double eta = (double)(total - done) / rate;
        fprintf(stderr, "\rlcsm: generate %lld/%lld tokens, %.0f steps/s, ETA %dm%02ds   ", done, total, rate,
                (int)(eta / 60), (int)eta % 60);
    } else {
        fprintf(stderr, "\rlcsm: %-8s %lld/%lld, %.1f s   ", stage, done, total, el);
    }
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static progress_state g_progress;

static lcsm_status open_model_opts(lcsm_backend *be, const char *dir, float shift, lcsm_weight_dtype weights,
                                   int lag, bool progress, lcsm_model **out)
{
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    const bool defaults = shift == mo.filter_shift && weights == mo.weight_dtype && lag == mo.lag && !progress;
    mo.filter_shift = shift;
    mo.weight_dtype = weights;
    mo.lag = lag;
    if (progress) {
        mo.progress = show_progress;
        mo.progress_user = &g_progress;
    }
    if (dir)
        return lcsm_model_load(be, dir, &mo, out);
    if (defaults)
        return lcsm_model_create_default(be, out);
    /* lcsm_model_create_default takes no options; lcsm.h defines it as the default
     * config with seed 20250101, so --shift still applies to the built-in model. */
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    return lcsm_model_create_random(be, &cfg, DEFAULT_MODEL_SEED, &mo, out);
}

static lcsm_status open_model(lcsm_backend *be, const char *dir, float shift, lcsm_weight_dtype weights,
                              lcsm_model **out)
{
    return open_model_opts(be, dir, shift, weights, LCSM_LAG_AUTO, false, out);
}

/* Tokenizes `text` with the model's tokenizer into a new array; NULL or ""
 * gives the single token 0 ([CLS], or Evo's end of text: lcsm_generate needs
 * at least one prompt token). Returns 0 or an exit status, the error printed. */
static int tokenize_prompt(const lcsm_model *m, const char *text, int32_t **ids_out, int *n_out)
{
    const bool given = text && *text;
    int n = 1;
    lcsm_status st;
    if (given && (st = lcsm_model_tokenize(m, text, NULL, 0, &n)) != LCSM_OK) /* count first */
        return lib_error(st);
    int32_t *ids = alloc_array((size_t)n, sizeof *ids);
    if (!ids)
        return out_of_memory("prompt tokens");
    if (!given)
        ids[0] = TOKEN_CLS;
    else if ((st = lcsm_model_tokenize(m, text, ids, n, &n)) != LCSM_OK) {
        free(ids);
        return lib_error(st);
    }
    *ids_out = ids;
    *n_out = n;
    return 0;
}

/* Ids as text with the model's tokenizer (as decimal ids when it has none). */
static void print_tokens(FILE *f, const lcsm_model *m, const int32_t *ids, int n)
{
    char buf[4096];
    size_t len;
    if (!strcmp(lcsm_model_tokenizer(m), "none")) {
        for (int i = 0; i < n; i++)
            fprintf(f, "%s%d", i ? " " : "", (int)ids[i]);
        return;
    }
    for (int i = 0; i < n; i += 256) /* 256 ids take at most 4 bytes each here */
        if (lcsm_model_detokenize(m, ids + i, n - i < 256 ? n - i : 256, buf, sizeof buf, &len) == LCSM_OK)
            fputs(buf, f);
}

/* stdout may be a full disk or a closed pipe; the sequences are the product, so
 * losing them is an error, not a success. */
static int finish_stdout(int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "lcsm: %s: writing to stdout: %s\n", lcsm_strerror(LCSM_ERR_IO), strerror(errno));
        return rc ? rc : EXIT_LIB;
    }
    return rc;
}

/* ------------------------------------------------------------- generate */

static void print_generate_summary(const cli_args *a, const lcsm_backend *be, const lcsm_model_info *mi,
                                   int prompt_len, int max_len, double load_s, double total_s,
                                   const lcsm_session_stats *st)
{
    const lcsm_model_config *c = &mi->config;
    const double n_tok = (double)a->batch * a->n_predict;
    fprintf(stderr, "\n");
    fprintf(stderr, "lcsm: backend    %s: %s\n", lcsm_backend_name(be), lcsm_backend_description(be));
    fprintf(stderr, "lcsm: model      %s: %s, d_model %d, n_layer %d, d_inner %d, l_max %d, n_vocab %d, %s weights\n",
            a->model_dir ? a->model_dir : "(built-in)", mi->arch, c->d_model, c->n_layer, c->d_inner, c->l_max,
            mi->n_vocab, lcsm_weight_dtype_name(a->weights));
    fprintf(stderr, "lcsm: session    algo %s%s, batch %d, max_len %d\n", lcsm_algo_name(a->algo),
            a->algo == LCSM_ALGO_FLASH || a->algo == LCSM_ALGO_MODAL ? (mi->lag > 1 ? " (lagged)" : " (plain)") : "",
            a->batch, max_len);
    fprintf(stderr, "lcsm: tokens     prompt %d, generated %d x %d\n", prompt_len, a->n_predict, a->batch);
    fprintf(stderr, "lcsm: load       %10.2f ms (backend + model)\n", 1e3 * load_s);
    fprintf(stderr, "lcsm: prefill    %10.2f ms\n", 1e3 * st->prefill_s);
    fprintf(stderr, "lcsm: decode     %10.2f ms (mixer %.2f ms, of it tiles %.2f ms; dense %.2f ms; %lld steps)\n",
            1e3 * (total_s - st->prefill_s), 1e3 * st->mixer_s, 1e3 * st->tiles_s, 1e3 * st->dense_s, st->steps);
    if (n_tok > 0)
        fprintf(stderr, "lcsm: total      %10.2f ms, %.3f ms/token, %.1f tokens/s\n", 1e3 * total_s,
                1e3 * total_s / n_tok, n_tok / total_s);
    else
        fprintf(stderr, "lcsm: total      %10.2f ms\n", 1e3 * total_s);
}

static int cmd_generate(const cli_args *a)
{
    int rc = EXIT_LIB;
    lcsm_status st;
    lcsm_backend *be = NULL;
    lcsm_model *model = NULL;
    lcsm_session *sess = NULL;
    int32_t *prompt1 = NULL, *prompt = NULL, *out = NULL;
    int plen = 0;

    const double t_load = now_s();
    if ((st = open_backend(backend_name(a), a->device, a->threads, &be)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    const double backend_s = now_s() - t_load;
    const bool progress = !a->quiet && (a->progress || isatty(STDERR_FILENO));
    if ((st = open_model_opts(be, a->model_dir, a->shift, a->weights, a->lag, progress, &model)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    const double load_s = now_s() - t_load;
    /* the prompt in the model's own tokenizer */
    if ((rc = tokenize_prompt(model, a->prompt, &prompt1, &plen)) != 0)
        goto done;
    rc = EXIT_LIB;
    /* lcsm_generate feeds back all but the last sampled token: a session of
     * prompt + N - 1 positions (the prompt alone when N is 0). */
    long long want_len = (long long)plen + (a->n_predict > 0 ? a->n_predict - 1 : 0);
    if (!a->max_len && want_len > INT_MAX) {
        fprintf(stderr, "lcsm: %s: prompt %d + %d new tokens do not fit an int\n", lcsm_strerror(LCSM_ERR_LENGTH),
                plen, a->n_predict);
        goto done;
    }
    const int max_len = a->max_len ? a->max_len : (int)want_len;

    /* lcsm_generate takes one prompt row per sequence; all rows are the same here. */
    const size_t B = (size_t)a->batch, N = (size_t)a->n_predict;
    prompt = alloc_array(B, (size_t)plen * sizeof *prompt);
    out = alloc_array(B, N * sizeof *out);
    if (!prompt || !out) {
        rc = out_of_memory("prompt and output buffers");
        goto done;
    }
    for (size_t b = 0; b < B; b++)
        memcpy(prompt + b * (size_t)plen, prompt1, (size_t)plen * sizeof *prompt);

    lcsm_model_info mi;
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = a->batch;
    so.max_len = max_len;
    so.algo = a->algo;
    if (progress) {
        so.progress = show_progress;
        so.progress_user = &g_progress;
    }
    lcsm_sampler_params sp;
    lcsm_sampler_params_default(&sp);
    sp.temperature = a->temp;
    sp.top_k = a->top_k;
    sp.top_p = a->top_p;
    sp.seed = a->seed;
    /* The default model is untrained: left to itself it would also sample special
     * tokens; keeping to A C G T makes its output read as DNA (HyenaDNA's are a
     * range; other tokenizers' an allowed set). */
    int32_t dna[4];
    if (!a->all_tokens && !strcmp(lcsm_model_tokenizer(model), "dna")) {
        sp.token_lo = TOKEN_A;
        sp.token_hi = TOKEN_T + 1;
    } else if (!a->all_tokens && lcsm_model_dna_ids(model, dna) == LCSM_OK) {
        sp.allowed = dna;
        sp.n_allowed = 4;
    }
    const double t_sess = now_s();
    if ((st = lcsm_model_get_info(model, &mi)) != LCSM_OK || (st = lcsm_session_create(model, &so, &sess)) != LCSM_OK ||
        (st = lcsm_session_set_sampler(sess, &sp)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    const double session_s = now_s() - t_sess;

    const double t0 = now_s();
    st = lcsm_generate(sess, prompt, plen, a->n_predict, out);
    const double total_s = now_s() - t0;
    if (st != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }

    for (size_t b = 0; b < B; b++) {
        if (a->prompt && *a->prompt) /* an implicit [CLS] prompt prints as nothing */
            print_tokens(stdout, model, prompt1, plen);
        print_tokens(stdout, model, out + b * N, a->n_predict);
        fputc('\n', stdout);
    }
    rc = finish_stdout(0);

    lcsm_session_stats stats;
    if ((st = lcsm_session_get_stats(sess, &stats)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    if (!a->quiet) {
        print_generate_summary(a, be, &mi, plen, max_len, load_s, total_s, &stats);
        /* Start-up split: backend (device, kernel build or cache), model (weights,
         * filters, tile spectra and their FFT plans), session (state, plans). */
        lcsm_backend_stats bs;
        lcsm_backend_get_stats(be, &bs);
        fprintf(stderr, "lcsm: start-up   %10.2f ms (backend %.2f, model %.2f, session %.2f; of it kernels %.2f%s, "
                "FFT plans %.2f)\n",
                1e3 * (load_s + session_s), 1e3 * backend_s, 1e3 * (load_s - backend_s), 1e3 * session_s,
                1e3 * bs.kernel_build_s, bs.kernels_from_cache ? " from cache" : "", 1e3 * bs.plan_s);
        print_profile(be);
    }

done:
    /* Sessions before their model, models before their backend (lcsm.h). */
    lcsm_session_destroy(sess);
    lcsm_model_destroy(model);
    lcsm_backend_destroy(be);
    free(out);
    free(prompt);
    free(prompt1);
    return rc;
}

/* ----------------------------------------------------------------- info */

static void print_config(const lcsm_model_config *c)
{
    /* Every field of lcsm_model_config, in the order of lcsm.h. */
    static const struct {
        const char *name;
        size_t offset;
        bool is_float;
    } fields[] = {
#define CFG_INT(f) {#f, offsetof(lcsm_model_config, f), false}
#define CFG_FLOAT(f) {#f, offsetof(lcsm_model_config, f), true}
        CFG_INT(d_model),
        CFG_INT(n_layer),
        CFG_INT(d_inner),
        CFG_INT(vocab_size),
        CFG_INT(pad_vocab_size_multiple),
        CFG_INT(l_max),
        CFG_INT(emb_dim),
        CFG_INT(filter_order),
        CFG_INT(num_inner_mlps),
        CFG_INT(short_filter_order),
        CFG_INT(hyena_order),
        CFG_FLOAT(activation_freq),
        CFG_FLOAT(layer_norm_epsilon),
#undef CFG_INT
#undef CFG_FLOAT
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *p = (const char *)c + fields[i].offset;
        if (i > 5 && !*(const int *)p) /* a field of another family (0 bits: 0 and 0.0f alike) */
            continue;
        if (fields[i].is_float)
            printf("  %-26s %g\n", fields[i].name, (double)*(const float *)p);
        else
            printf("  %-26s %d\n", fields[i].name, *(const int *)p);
    }
}

static int cmd_info(const cli_args *a)
{
    int rc = EXIT_LIB;
    lcsm_status st;
    lcsm_backend *be = NULL;
    lcsm_model *model = NULL;
    lcsm_session *sess = NULL;
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    lcsm_model_info mi;
    if ((st = open_backend(backend_name(a), a->device, 0, &be)) != LCSM_OK ||
        (st = open_model(be, a->model_dir, mo.filter_shift, a->weights, &model)) != LCSM_OK ||
        (st = lcsm_model_get_info(model, &mi)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    /* The state a session needs is the library's to say: ask a real one. Creating
     * it also makes the filter spectra of its tile sizes, which the model keeps and
     * counts in weight_bytes; read that again afterwards to show both figures. */
    const size_t bytes_at_load = mi.weight_bytes;
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = 1;
    so.max_len = mi.config.l_max;
    so.algo = LCSM_ALGO_FLASH;
    lcsm_session_stats stats;
    if ((st = lcsm_session_create(model, &so, &sess)) != LCSM_OK ||
        (st = lcsm_session_get_stats(sess, &stats)) != LCSM_OK || (st = lcsm_model_get_info(model, &mi)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }

    printf("lcsm %s\n", lcsm_version_string());
    printf("backend:          %s: %s\n", lcsm_backend_name(be), lcsm_backend_description(be));
    printf("fft threshold:    %d\n", lcsm_backend_fft_threshold(be));
    printf("model:            %s\n", a->model_dir ? a->model_dir : "(built-in default)");
    printf("family:           %s\n", mi.arch);
    printf("config:\n");
    print_config(&mi.config);
    printf("n_vocab:          %d\n", mi.n_vocab);
    printf("layers:\n  %-5s %-10s %-11s %-7s %-30s %-5s %-6s %-9s %s\n", "layer", "norm", "mixer", "streams",
           "filters / heads", "short", "mlp", "act", "d_inner");
    for (int l = 0; l < mi.config.n_layer; l++) {
        lcsm_layer_info li;
        if ((st = lcsm_model_get_layer(model, l, &li)) != LCSM_OK) {
            rc = lib_error(st);
            goto done;
        }
        printf("  %-5d %-10s %-11s %-7d %-30s %-5d %-6s %-9s %d\n", l, li.norm, li.mixer, li.streams, li.filter,
               li.short_taps, li.mlp, li.act, li.d_inner);
    }
    printf("parameters:       %zu (%.3f M)\n", mi.n_params, (double)mi.n_params / 1e6);
    printf("weights:          %s: %.2f MiB on the device (f32 %.2f MiB, f16/bf16 %.2f MiB)\n",
           lcsm_weight_dtype_name(a->weights), mib(mi.dense_bytes), mib(mi.dense_bytes_f32), mib(mi.dense_bytes_f16));
    printf("tiled convs:      %d\n", mi.n_tiled_convs);
    printf("state:            %zu bytes per position and sequence (tiled histories, KV caches)\n",
           mi.state_bytes_per_token);
    printf("weight bytes:     %zu (%.2f MiB) weights + filters, as loaded\n", bytes_at_load, mib(bytes_at_load));
    printf("                  %zu (%.2f MiB) with the spectra of a max_len %d flash session\n", mi.weight_bytes,
           mib(mi.weight_bytes), so.max_len);
    printf("session state:    %.2f MiB (batch 1, flash, max_len %d)\n", mib(stats.state_bytes), so.max_len);
    rc = finish_stdout(0);

done:
    lcsm_session_destroy(sess);
    lcsm_model_destroy(model);
    lcsm_backend_destroy(be);
    return rc;
}

/* ----------------------------------------------------------- make-model */

static int cmd_make_model(const cli_args *a)
{
    int rc = EXIT_LIB;
    lcsm_status st;
    lcsm_backend *be = NULL;
    lcsm_model *model = NULL;
    /* A config in the family's own format: the fields given here, the rest the
     * family's defaults (HyenaDNA's: the built-in model's shape). */
    char json[512];
    int n = snprintf(json, sizeof json, "{\"model_type\": \"%s\"", a->arch ? a->arch : "hyenadna");
    const struct {
        const char *key;
        int value;
    } fields[] = {{"d_model", a->d_model}, {"n_layer", a->n_layer}, {"d_inner", a->d_inner}, {"max_seq_len", a->l_max}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].value)
            n += snprintf(json + n, sizeof json - (size_t)n, ", \"%s\": %d", fields[i].key, fields[i].value);
    if (a->attn_layers) {
        const char *arch = a->arch ? a->arch : "hyenadna";
        if (strcmp(arch, "stripedhyena") && strcmp(arch, "evo2"))
            return usage_error(NULL, "make-model: --attn-layers is for --arch stripedhyena or evo2, not %s", arch);
        n += snprintf(json + n, sizeof json - (size_t)n, ", \"attn_layer_idxs\": [");
        if (strcmp(a->attn_layers, "none")) {
            /* digits and commas only: the JSON below can hold nothing else */
            const char *p = a->attn_layers;
            if (!*p || strspn(p, "0123456789,") != strlen(p) || strstr(p, ",,") || *p == ',' ||
                p[strlen(p) - 1] == ',' || strlen(p) > 200)
                return usage_error(NULL, "make-model: --attn-layers '%s' is not a list like 1,3 (or none)", p);
            n += snprintf(json + n, sizeof json - (size_t)n, "%s", p);
        }
        n += snprintf(json + n, sizeof json - (size_t)n, "]");
    }
    snprintf(json + n, sizeof json - (size_t)n, "}");
    if (a->arch && strspn(a->arch, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(a->arch))
        return usage_error(NULL, "make-model: --arch '%s' is not a family name", a->arch);
    if (a->weights == LCSM_WEIGHTS_AUTO)
        return usage_error(NULL, "make-model: --weights auto has no meaning for a new model (f32, f16, bf16)");

    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    mo.weight_dtype = a->weights;
    mo.defer_spectra = 2; /* no session: the filters and their spectra would only cost time and memory */
    lcsm_model_info mi;
    if ((st = open_backend("cpu", NULL, 0, &be)) != LCSM_OK ||
        (st = lcsm_model_create_random_config(be, json, a->seed, &mo, &model)) != LCSM_OK ||
        (st = lcsm_model_save(model, a->out_dir)) != LCSM_OK || (st = lcsm_model_get_info(model, &mi)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    const lcsm_model_config *c = &mi.config;
    printf("wrote %s/config.json and %s/model.safetensors (%s weights)\n", a->out_dir, a->out_dir,
           lcsm_weight_dtype_name(a->weights));
    printf("  %s: d_model %d, n_layer %d, d_inner %d, l_max %d, vocab %d (padded %d), seed %llu\n", mi.arch,
           c->d_model, c->n_layer, c->d_inner, c->l_max, c->vocab_size, mi.n_vocab, (unsigned long long)a->seed);
    printf("  %zu parameters (%.2f MiB of weights)\n", mi.n_params, mib(mi.dense_bytes));
    rc = finish_stdout(0);

done:
    lcsm_model_destroy(model);
    lcsm_backend_destroy(be);
    return rc;
}

/* ---------------------------------------------------------------- score */

/* log p(token t | tokens < t) for t >= 1 of the prompt, from one parallel
 * forward: a log-softmax in double over the real vocabulary. */
static int cmd_score(const cli_args *a)
{
    int rc = EXIT_LIB;
    lcsm_status st;
    lcsm_backend *be = NULL;
    lcsm_model *model = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int n = 0;
    if (!a->prompt || !*a->prompt)
        return usage_error(NULL, "score: -p TEXT is required");
    lcsm_model_info mi;
    if ((st = open_backend(backend_name(a), a->device, a->threads, &be)) != LCSM_OK ||
        (st = open_model(be, a->model_dir, 0.05f, a->weights, &model)) != LCSM_OK ||
        (st = lcsm_model_get_info(model, &mi)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    if ((rc = tokenize_prompt(model, a->prompt, &ids, &n)) != 0)
        goto done;
    rc = EXIT_LIB;
    const int V = mi.n_vocab, real = mi.config.vocab_size;
    if (!(logits = alloc_array((size_t)n, (size_t)V * sizeof *logits))) {
        rc = out_of_memory("logits");
        goto done;
    }
    if ((st = lcsm_model_forward(model, ids, 1, n, logits)) != LCSM_OK) {
        rc = lib_error(st);
        goto done;
    }
    double total = 0;
    printf("%-8s %-8s %s\n", "position", "token", "log-likelihood");
    for (int t = 1; t < n; t++) {
        const float *z = logits + (size_t)(t - 1) * V;
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < real; v++)
            mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < real; v++)
            sum += exp((double)z[v] - mx);
        const double lp = (double)z[ids[t]] - mx - log(sum);
        total += lp;
        printf("%-8d ", t);
        print_tokens(stdout, model, ids + t, 1);
        printf("%*s %.6f\n", 8, "", lp);
    }
    printf("total    %-8d %.6f (%.6f per token)\n", n - 1, total, n > 1 ? total / (n - 1) : 0.0);
    rc = finish_stdout(0);
done:
    lcsm_model_destroy(model);
    lcsm_backend_destroy(be);
    free(ids);
    free(logits);
    return rc;
}

/* -------------------------------------------------------------- devices */

static int list_backend_devices(const char *name, bool quiet_if_absent)
{
    int n = 0;
    lcsm_status st = lcsm_list_devices(name, NULL, 0, &n);
    if (st != LCSM_OK) {
        if (quiet_if_absent && st == LCSM_ERR_NO_BACKEND) {
            printf("%s: none (%s)\n", name, lcsm_last_error());
            return 0;
        }
        return lib_error(st);
    }
    lcsm_device_info *d = alloc_array((size_t)n, sizeof *d);
    if (!d)
        return out_of_memory("device list");
    if ((st = lcsm_list_devices(name, d, n, &n)) != LCSM_OK) {
        free(d);
        return lib_error(st);
    }
    for (int i = 0; i < n; i++) {
        printf("%s device %d (platform %d, device %d): %s\n", name, d[i].index, d[i].platform, d[i].device, d[i].name);
        printf("    platform %s; type %s; %.1f GiB; %d compute units", d[i].platform_name, d[i].type,
               (double)d[i].global_mem_bytes / (1u << 30), d[i].compute_units);
        if (d[i].max_clock_mhz)
            printf(" at %d MHz", d[i].max_clock_mhz);
        if (*d[i].version || *d[i].driver)
            printf("; %s, driver %s", d[i].version, d[i].driver);
        printf("\n");
    }
    free(d);
    return 0;
}

static int cmd_devices(const cli_args *a)
{
    static const char *const all[] = {"cpu", "opencl"};
    int rc = 0;
    if (a->backend)
        rc = list_backend_devices(a->backend, false);
    for (size_t i = 0; !a->backend && i < sizeof all / sizeof all[0] && !rc; i++)
        rc = list_backend_devices(all[i], true);
    return finish_stdout(rc);
}

/* -------------------------------------------------------------- version */

static int cmd_version(const cli_args *a)
{
    (void)a;
    puts(lcsm_version_string()); /* bare, for scripts */
    return finish_stdout(0);
}

/* ----------------------------------------------------------------- main */


static const command *find_command(const char *name)
{
    if (!strcmp(name, "--version"))
        name = "version";
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static bool is_help(const char *s) { return !strcmp(s, "help") || !strcmp(s, "--help") || !strcmp(s, "-h"); }

static int cli_main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error(NULL, "no command given");
    if (is_help(argv[1])) {
        /* `lcsm help generate` is `lcsm generate --help`. */
        const command *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (argc > 3 || (argc > 2 && !c))
            return usage_error(NULL, "help: unknown command '%s'", argv[2]);
        print_usage(stdout, c);
        return finish_stdout(0);
    }
    const command *c = find_command(argv[1]);
    if (!c)
        return usage_error(NULL, "unknown command '%s'", argv[1]);

    cli_args args;
    memset(&args, 0, sizeof args);
    if (c->defaults)
        c->defaults(&args);
    switch (parse_args(c, argc - 2, argv + 2, &args)) {
    case PARSE_HELP: print_usage(stdout, c); return finish_stdout(0);
    case PARSE_ERROR: return EXIT_USAGE;
    default: break;
    }
    return c->run(&args);
}

/* OpenBLAS's pthreads build starts worker threads when it is loaded, before
 * main, and each at once reserves a 128 MiB work buffer; one that cannot (under
 * `ulimit -v`, or because it ran late, after lcsm had taken the memory)
 * retries forever (OpenBLAS before 0.3.30, OpenMathLib/OpenBLAS#5289), racing
 * every later allocation for the address space it frees, and OpenBLAS's exit
 * handler waits for it: even `lcsm version` never ended. lcsm runs OpenBLAS on
 * one thread anyway (the CPU backend splits work in its own pool), so the CLI
 * makes sure OpenBLAS starts no threads at all: without OPENBLAS_NUM_THREADS
 * in its environment it sets it to 1 and executes itself again (OpenBLAS reads
 * it only when loaded; a value set after that is not seen). If that exec fails
 * the CLI just goes on. A value the user set is kept. (Under valgrind, which
 * does not follow exec by default, set OPENBLAS_NUM_THREADS=1 first, as
 * tests/valgrind/cli_memcheck.sh does.)
 *
 * Every exit goes through _exit, after the CLI has released all it made and
 * flushed its output, so that a worker that cannot get its buffer (when the
 * user asked for OpenBLAS threads) cannot hold up the exit either. */
int main(int argc, char **argv)
{
    char self[4096];
    ssize_t n = getenv("OPENBLAS_NUM_THREADS") ? -1 : readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0 && (size_t)n < sizeof self - 1 && setenv("OPENBLAS_NUM_THREADS", "1", 0) == 0) {
        self[n] = '\0'; /* the real path, so that the process keeps its name */
        execv(self, argv); /* returns only if it failed */
    }
    int rc = cli_main(argc, argv);
    if (fflush(NULL) != 0 && rc == 0)
        rc = EXIT_LIB; /* finish_stdout has reported a failed stdout already */
    _exit(rc);
}
