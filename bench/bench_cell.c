#include "bench_cell.h"

#include "bench_generate.h"
#include "bench_models.h"
#include "bench_stats.h"
#include "lcsm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int bench_read_all(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

int bench_write_all(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t k = write(fd, (const char *)buf + put, n - put);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        put += (size_t)k;
    }
    return 0;
}

int bench_warmup_len(int prompt, int L) { return L < prompt + 128 ? L : prompt + 128; }

static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

/* Everything the child holds, released in one place. */
typedef struct cell_state {
    lcsm_backend *be;
    lcsm_model *model;
    lcsm_session *sess;
    int32_t *prompt, *out, *packed;
    float *logits;
    double *lat;                                  /* [repeats][steps] */
    double *prefill, *gen, *mixer, *tiles, *dense; /* [repeats] */
} cell_state;

static void cell_state_free(cell_state *s)
{
    lcsm_session_destroy(s->sess);
    lcsm_model_destroy(s->model);
    lcsm_backend_destroy(s->be);
    free(s->prompt);
    free(s->out);
    free(s->packed);
    free(s->logits);
    free(s->lat);
    free(s->prefill);
    free(s->gen);
    free(s->mixer);
    free(s->tiles);
    free(s->dense);
}

static lcsm_status fail(bench_result *r, lcsm_status st, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s: %s: %s", what, lcsm_strerror(st), lcsm_last_error());
    return st;
}

/* "25 layers: 8 fir(7), 8 fir(128), 9 modal-real(16); gated MLP" from
 * lcsm_model_get_layer: each filter kind with its count, in order of appearance. */
static void describe_layers(const lcsm_model *m, int n_layer, char *buf, size_t cap)
{
    char kinds[8][64];
    int counts[8] = {0}, n_kinds = 0;
    char mlp[16] = "";
    for (int l = 0; l < n_layer; l++) {
        lcsm_layer_info li;
        if (lcsm_model_get_layer(m, l, &li) != LCSM_OK)
            continue;
        if (!l)
            snprintf(mlp, sizeof mlp, "%s", li.mlp);
        int k = 0;
        while (k < n_kinds && strcmp(kinds[k], li.filter))
            k++;
        if (k == n_kinds && n_kinds < 8)
            snprintf(kinds[n_kinds++], sizeof kinds[0], "%s", li.filter);
        if (k < n_kinds)
            counts[k]++;
    }
    size_t len = (size_t)snprintf(buf, cap, "%d layers:", n_layer);
    for (int k = 0; k < n_kinds && len < cap; k++)
        len += (size_t)snprintf(buf + len, cap - len, "%s %d %s", k ? "," : "", counts[k], kinds[k]);
    if (len < cap)
        snprintf(buf + len, cap - len, "; %s MLP", mlp);
}

/* The random model of a cell (l_max = the cell's L), or its saved model. */
static lcsm_status make_model(const bench_cell *c, lcsm_backend *be, lcsm_model **out, bench_result *r)
{
    static const lcsm_weight_dtype dtype_of[] = {[BENCH_W_F32] = LCSM_WEIGHTS_F32, [BENCH_W_BF16] = LCSM_WEIGHTS_BF16,
                                                 [BENCH_W_F16] = LCSM_WEIGHTS_F16, [BENCH_W_AUTO] = LCSM_WEIGHTS_AUTO};
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    mo.weight_dtype = dtype_of[c->weights];
    mo.modal_tiled = c->modal_tiled;
    mo.lag = c->lag;
    /* the smooth schedule's spectra are its own: not flash's at load too */
    mo.defer_spectra = c->algo == BENCH_SMOOTH;
    if (c->model.dir)
        return lcsm_model_load(be, c->model.dir, &mo, out);
    char *json = bench_model_config_json(&c->model, c->L, c->state_size);
    if (!json) {
        snprintf(r->err, sizeof r->err, "model: out of memory for its config");
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    lcsm_status st = lcsm_model_create_random_config(be, json, c->seed, &mo, out);
    free(json);
    return st;
}

/* A long cell reports each part of its set-up as it ends: what came before its
 * progress lines, also when a time limit stops it there. */
static void setup_line(const bench_cell *c, const char *what, double s)
{
    if (bench_long_run(c->L))
        fprintf(stderr, "  (set-up: %s in %.1f s)\n", what, s);
}

/* A long cell's session set-up, tile size by tile size (lcsm_session_create's progress). */
static void setup_progress(void *user, const char *stage, long long done, long long total)
{
    fprintf(stderr, "  (set-up: session %s %lld/%lld at %.1f s)\n", stage, done, total, bench_now() - *(double *)user);
}

/* Backend, model and session, timed apart (none of it is in the timed region). */
static lcsm_status cell_setup(const bench_cell *c, int profile, cell_state *s, bench_result *r, int *n_vocab)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = c->threads;
    bo.device = c->device;
    bo.profile = profile;
    double t = bench_now();
    lcsm_status st = lcsm_backend_create(c->backend, &bo, &s->be);
    if (st != LCSM_OK)
        return fail(r, st, "backend");
    r->startup.backend_s = bench_now() - t;
    setup_line(c, "backend", r->startup.backend_s);
    snprintf(r->device, sizeof r->device, "%s", lcsm_backend_description(s->be));

    t = bench_now();
    if ((st = make_model(c, s->be, &s->model, r)) != LCSM_OK)
        return r->err[0] ? st : fail(r, st, "model");
    r->startup.model_s = bench_now() - t;
    setup_line(c, "model", r->startup.model_s);
    lcsm_model_info mi;
    lcsm_model_get_info(s->model, &mi);
    r->d_model = mi.config.d_model;
    r->n_layer = mi.config.n_layer;
    r->d_inner = mi.config.d_inner;
    r->l_max = mi.config.l_max;
    snprintf(r->arch, sizeof r->arch, "%s", mi.arch);
    describe_layers(s->model, mi.config.n_layer, r->layers, sizeof r->layers);
    r->n_tiled_convs = mi.n_tiled_convs;
    r->lag = mi.lag;
    r->dense_mib = mib(mi.dense_bytes);
    r->state_bytes_per_token = (double)mi.state_bytes_per_token;
    *n_vocab = mi.n_vocab;
    if (c->L > mi.config.l_max) {
        snprintf(r->err, sizeof r->err, "L = %d is longer than the model's l_max %d", c->L, mi.config.l_max);
        return LCSM_ERR_LENGTH;
    }

    if (c->algo != BENCH_RECOMPUTE) {
        static const lcsm_algo algo_of[] = {[BENCH_LAZY] = LCSM_ALGO_LAZY, [BENCH_EAGER] = LCSM_ALGO_EAGER,
                                            [BENCH_FLASH] = LCSM_ALGO_FLASH, [BENCH_MODAL] = LCSM_ALGO_MODAL,
                                            [BENCH_PLAIN] = LCSM_ALGO_FLASH, [BENCH_SMOOTH] = LCSM_ALGO_SMOOTH};
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.batch = c->batch;
        so.max_len = c->L;
        so.algo = algo_of[c->algo];
        t = bench_now();
        if (bench_long_run(c->L)) {
            so.progress = setup_progress;
            so.progress_user = &t;
        }
        if ((st = lcsm_session_create(s->model, &so, &s->sess)) != LCSM_OK)
            return fail(r, st, "session");
        r->startup.session_s = bench_now() - t;
        lcsm_session_stats ss;
        lcsm_session_get_stats(s->sess, &ss);
        r->state_mib = mib(ss.state_bytes);
    }
    lcsm_model_get_info(s->model, &mi); /* again: the session may have made spectra */
    r->weight_mib = mib(mi.weight_bytes);
    lcsm_backend_stats bs;
    lcsm_backend_get_stats(s->be, &bs);
    r->startup.kernel_build_s = bs.kernel_build_s;
    r->startup.kernels_from_cache = bs.kernels_from_cache;
    r->startup.plan_s = bs.plan_s;
    r->setup_s = r->startup.backend_s + r->startup.model_s + r->startup.session_s;
    setup_line(c, "session", r->startup.session_s);
    return LCSM_OK;
}

static lcsm_status generate(const bench_cell *c, cell_state *s, bench_gen *g)
{
    return c->algo == BENCH_RECOMPUTE ? bench_generate_recompute(s->model, g) : bench_generate_session(s->sess, g);
}

/* Index of the repeat whose generation time is the median (the lower middle). */
static int median_repeat(const double *gen, int n)
{
    const double m = bench_median(gen, n);
    int best = -1;
    for (int i = 0; i < n; i++)
        if (gen[i] <= m && (best < 0 || gen[i] > gen[best]))
            best = i;
    return best < 0 ? 0 : best;
}

/* Kernels whose device time is the mixer's (the long and short convolutions and
 * the gating), and of those the flash tiles / eager pushes; every other kernel
 * (projections, norms, MLP, logits) is "rest". By the names the OpenCL backend
 * gives lcsm_backend_get_profile; VkFFT's transforms are "fft". */
static int is_tile_kernel(const char *k)
{
    return !strncmp(k, "fft", 3) || !strcmp(k, "block_direct") || !strcmp(k, "long_direct");
}

static int is_mixer_kernel(const char *k)
{
    return is_tile_kernel(k) || !strcmp(k, "lazy_partial") || !strcmp(k, "hyena_step") || strstr(k, "conv") ||
           strstr(k, "gate");
}

/* Device backends queue their work, so host times only measure enqueueing. The
 * mixer / rest split therefore comes from one more generation on a profiled
 * backend (an event per launch slows it, so it is not the timed one): the first
 * backend, model and session are released, then made again with profiling. */
static lcsm_status profiled_split(const bench_cell *c, cell_state *s, bench_result *r, bench_gen *g)
{
    bench_result keep = *r;
    lcsm_session_destroy(s->sess);
    lcsm_model_destroy(s->model);
    lcsm_backend_destroy(s->be);
    s->sess = NULL;
    s->model = NULL;
    s->be = NULL;
    int n_vocab = 0;
    lcsm_status st = cell_setup(c, 1, s, r, &n_vocab);
    /* The timed pass's start-up and memory figures stay. */
    char err[sizeof r->err];
    memcpy(err, r->err, sizeof err);
    *r = keep;
    memcpy(r->err, err, sizeof err);
    if (st != LCSM_OK)
        return st;
    g->L = c->L;
    g->lat_ms = NULL;
    g->profiled = s->be;
    if ((st = bench_generate_session(s->sess, g)) != LCSM_OK)
        return fail(r, st, "profiled generation");
    lcsm_profile_entry e[64];
    int n = 0;
    if ((st = lcsm_backend_get_profile(s->be, e, 64, &n, 0)) != LCSM_OK)
        return fail(r, st, "profile");
    double mixer = 0, tiles = 0, rest = 0;
    for (int i = 0; i < n && i < 64; i++) {
        if (is_tile_kernel(e[i].name))
            tiles += e[i].seconds;
        if (is_mixer_kernel(e[i].name))
            mixer += e[i].seconds;
        else
            rest += e[i].seconds;
    }
    snprintf(r->split, sizeof r->split, "device");
    r->mixer_s = mixer;
    r->tiles_s = tiles;
    r->dense_s = rest;
    return LCSM_OK;
}

/* A prefill cell: the prompt alone, --warmup untimed times, then the timed
 * repeats (each after a reset); the child's peak memory is what the parent
 * reports. */
static lcsm_status prefill_in_child(const bench_cell *c, cell_state *s, bench_result *r, int n_vocab)
{
    const int B = c->batch, P = c->L, R = c->repeats;
    const int chunk = c->chunk > 0 && c->chunk < P ? c->chunk : 0;
    s->prompt = malloc(sizeof *s->prompt * (size_t)B * P);
    s->packed = malloc(sizeof *s->packed * (size_t)B * (chunk ? chunk : 1));
    s->logits = malloc(sizeof *s->logits * (size_t)B * n_vocab);
    s->prefill = calloc((size_t)R, sizeof(double));
    if (!s->prompt || !s->packed || !s->logits || !s->prefill) {
        snprintf(r->err, sizeof r->err, "out of memory for the cell's buffers");
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    bench_make_prompt(s->prompt, B, P);
    lcsm_status st;
    double secs = 0;
    for (int w = 0; w < c->warmup; w++)
        if ((st = bench_prefill(s->sess, s->prompt, B, P, chunk, s->logits, s->packed, &secs, &r->n_calls)) != LCSM_OK)
            return fail(r, st, "warm-up prefill");
    for (int k = 0; k < R; k++) {
        if ((st = bench_prefill(s->sess, s->prompt, B, P, chunk, s->logits, s->packed, &secs, &r->n_calls)) != LCSM_OK)
            return fail(r, st, "prefill");
        s->prefill[k] = secs;
    }
    r->has_tokens = 1;
    r->tokens_hash = bench_greedy_hash(s->logits, B, n_vocab);
    r->prefill_s = bench_median(s->prefill, R);
    r->total_s = r->prefill_s;
    lcsm_backend_stats bs;
    lcsm_backend_get_stats(s->be, &bs);
    r->device_peak_mib = mib(bs.device_bytes_peak);
    return LCSM_OK;
}

/* The child's work; *lat points at the median repeat's step times (in s->lat). */
static lcsm_status cell_in_child(const bench_cell *c, cell_state *s, bench_result *r, const double **lat)
{
    int n_vocab = 0;
    lcsm_status st = cell_setup(c, 0, s, r, &n_vocab);
    if (st != LCSM_OK)
        return st;
    if (c->mode == BENCH_PREFILL)
        return prefill_in_child(c, s, r, n_vocab);
    const int B = c->batch, R = c->repeats, steps = c->L - c->prompt, n_new = steps + 1;
    s->prompt = malloc(sizeof *s->prompt * (size_t)B * c->prompt);
    s->out = malloc(sizeof *s->out * (size_t)B * n_new);
    s->lat = malloc(sizeof *s->lat * (size_t)R * (steps > 0 ? steps : 1));
    double **per[] = {&s->prefill, &s->gen, &s->mixer, &s->tiles, &s->dense};
    for (size_t i = 0; i < sizeof per / sizeof per[0]; i++)
        *per[i] = calloc((size_t)R, sizeof(double));
    if (!s->prompt || !s->out || !s->lat || !s->prefill || !s->gen || !s->mixer || !s->tiles || !s->dense) {
        snprintf(r->err, sizeof r->err, "out of memory for the cell's buffers");
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    bench_make_prompt(s->prompt, B, c->prompt);
    bench_gen g = {.batch = B, .prompt = c->prompt, .n_vocab = n_vocab, .temperature = c->temperature,
                   .seed = c->seed, .prompt_ids = s->prompt, .out = s->out};

    g.L = bench_warmup_len(c->prompt, c->L);
    for (int w = 0; w < c->warmup; w++)
        if ((st = generate(c, s, &g)) != LCSM_OK)
            return fail(r, st, "warm-up");

    g.L = c->L;
    for (int k = 0; k < R; k++) {
        g.lat_ms = s->lat + (size_t)k * steps;
        if ((st = generate(c, s, &g)) != LCSM_OK)
            return fail(r, st, "generation");
        s->prefill[k] = g.prefill_s;
        s->gen[k] = g.gen_s;
        if (s->sess) {
            lcsm_session_stats ss;
            lcsm_session_get_stats(s->sess, &ss);
            s->mixer[k] = ss.mixer_s;
            s->tiles[k] = ss.tiles_s;
            s->dense[k] = ss.dense_s;
        }
    }
    /* The tokens of the last repeat; every repeat samples the same ones. */
    r->has_tokens = 1;
    r->tokens_hash = bench_fnv1a(BENCH_FNV_INIT, s->out, (size_t)B * n_new);
    r->steps = steps;
    r->prefill_s = bench_median(s->prefill, R);
    r->gen_s = bench_median(s->gen, R);
    r->total_s = r->prefill_s + r->gen_s;
    const int on_cpu = !strcmp(c->backend, "cpu");
    if (s->sess && on_cpu) {
        snprintf(r->split, sizeof r->split, "host");
        r->mixer_s = bench_median(s->mixer, R);
        r->tiles_s = bench_median(s->tiles, R);
        r->dense_s = bench_median(s->dense, R);
    }
    *lat = s->lat + (size_t)median_repeat(s->gen, R) * steps;
    r->lat = bench_latency_summary(*lat, steps);
    r->n_lat = steps;
    lcsm_backend_stats bs;
    lcsm_backend_get_stats(s->be, &bs);
    r->device_peak_mib = mib(bs.device_bytes_peak);
    if (s->sess && !on_cpu && c->profile)
        return profiled_split(c, s, r, &g);
    return LCSM_OK;
}

pid_t bench_fork_pipe(int fd[2], char *err, size_t cap)
{
    if (pipe(fd) != 0) {
        snprintf(err, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, cap, "fork: %s", strerror(errno));
        close(fd[0]);
        close(fd[1]);
    }
    return pid;
}

void bench_run_cell(const bench_cell *c, bench_result *r)
{
    memset(r, 0, sizeof *r);
    int fd[2];
    pid_t pid = bench_fork_pipe(fd, r->err, sizeof r->err);
    if (pid < 0)
        return;
    if (pid == 0) {
        close(fd[0]);
        cell_state s;
        memset(&s, 0, sizeof s);
        bench_result rr;
        memset(&rr, 0, sizeof rr);
        const double *lat = NULL;
        rr.ok = cell_in_child(c, &s, &rr, &lat) == LCSM_OK;
        if (!rr.ok)
            rr.n_lat = 0;
        rr.lat_ms = NULL;
        int bad = bench_write_all(fd[1], &rr, sizeof rr) != 0 ||
                  (rr.n_lat > 0 && bench_write_all(fd[1], lat, sizeof *lat * (size_t)rr.n_lat) != 0);
        cell_state_free(&s);
        _exit(bad);
    }
    close(fd[1]);
    int got = bench_read_all(fd[0], r, sizeof *r) == 0;
    r->lat_ms = NULL;
    if (got && r->n_lat > 0) {
        r->lat_ms = malloc(sizeof *r->lat_ms * (size_t)r->n_lat);
        if (!r->lat_ms || bench_read_all(fd[0], r->lat_ms, sizeof *r->lat_ms * (size_t)r->n_lat) != 0) {
            free(r->lat_ms);
            r->lat_ms = NULL;
            r->n_lat = 0;
        }
    }
    close(fd[0]);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    if (!got) {
        memset(r, 0, sizeof *r);
        if (WIFSIGNALED(status))
            snprintf(r->err, sizeof r->err, "the cell's process died from signal %d (out of memory?)", WTERMSIG(status));
        else
            snprintf(r->err, sizeof r->err, "the cell's process exited with status %d without a result",
                     WEXITSTATUS(status));
        return;
    }
    r->host_peak_mib = ru.ru_maxrss / 1024.0; /* kB on Linux */
}
