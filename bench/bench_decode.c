/*
 * lcsm-bench-decode: time to generate L tokens from a short prompt with each
 * decoding algorithm, end to end and mixer only, and the ratios flash/lazy
 * measured in the same run. One table row per (model, batch, L, algorithm).
 *
 * Every cell runs in a child process (fork before any thread exists in it):
 * the child builds the backend, a random model with l_max = L and the session,
 * then times lcsm_generate; the parent collects the timings through a pipe and
 * the child's peak resident memory from wait4(). Model creation (filter
 * materialisation) and session creation (spectra, plans) are outside the timed
 * region and reported as setup.
 *
 * Usage: lcsm-bench-decode [--models 256x8,768x12] [--batches 1,8]
 *          [--lens 1024,4096,16384] [--algos lazy,eager,flash]
 *          [--flash-lens 65536,262144] [--prompt 16] [--threads N]
 *          [--backend cpu|opencl] [--device DEV]
 *          [--budget SECONDS]   skip a cell whose estimate exceeds this
 *          [--json FILE]        also write one JSON object per cell
 */
#include "lcsm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Backend and device of every cell (from the command line). */
static const char *g_backend = "cpu", *g_device = NULL;

typedef struct cell {
    int D, layers, batch, L, prompt, threads;
    lcsm_algo algo;
} cell;

typedef struct result {
    int ok;
    double setup_s, total_s, prefill_s, mixer_s, tiles_s, dense_s;
    long long steps;
    double peak_mib;
    char err[256];
    char device[256]; /* the backend's description, from the child */
} result;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Runs in the child. */
static void run_cell(const cell *c, result *r)
{
    memset(r, 0, sizeof *r);
    double t0 = now();
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = c->threads;
    bo.device = g_device;
    lcsm_backend *be = NULL;
    lcsm_model *m = NULL;
    lcsm_session *s = NULL;
    int32_t *prompt = NULL, *out = NULL;
    lcsm_status st = lcsm_backend_create(g_backend, &bo, &be);
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = c->D;
    cfg.n_layer = c->layers;
    cfg.d_inner = 4 * c->D;
    cfg.l_max = c->L;
    if (st == LCSM_OK)
        st = lcsm_model_create_random(be, &cfg, 1234, NULL, &m);
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = c->batch;
    so.max_len = c->L;
    so.algo = c->algo;
    if (st == LCSM_OK)
        st = lcsm_session_create(m, &so, &s);
    int n_new = c->L - c->prompt + 1; /* the last sampled token needs no step */
    prompt = malloc(sizeof *prompt * (size_t)c->batch * c->prompt);
    out = malloc(sizeof *out * (size_t)c->batch * n_new);
    if (st == LCSM_OK && (!prompt || !out))
        st = LCSM_ERR_OUT_OF_MEMORY;
    if (st == LCSM_OK) {
        for (int i = 0; i < c->batch * c->prompt; i++)
            prompt[i] = 7 + (i * 7919) % 4;
        lcsm_sampler_params sp;
        lcsm_sampler_params_default(&sp);
        sp.seed = 42;
        st = lcsm_session_set_sampler(s, &sp);
    }
    r->setup_s = now() - t0;
    if (st == LCSM_OK) {
        double t1 = now();
        st = lcsm_generate(s, prompt, c->prompt, n_new, out);
        r->total_s = now() - t1;
        lcsm_session_stats ss;
        lcsm_session_get_stats(s, &ss);
        r->prefill_s = ss.prefill_s;
        r->mixer_s = ss.mixer_s;
        r->tiles_s = ss.tiles_s;
        r->dense_s = ss.dense_s;
        r->steps = ss.steps;
    }
    r->ok = st == LCSM_OK;
    if (be)
        snprintf(r->device, sizeof r->device, "%s", lcsm_backend_description(be));
    if (!r->ok)
        snprintf(r->err, sizeof r->err, "%s: %s", lcsm_strerror(st), lcsm_last_error());
    free(prompt);
    free(out);
    lcsm_session_destroy(s);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
}

static int fork_cell(const cell *c, result *r)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fd[0]);
        result rr;
        run_cell(c, &rr);
        ssize_t w = write(fd[1], &rr, sizeof rr);
        _exit(w == (ssize_t)sizeof rr ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = 0, n;
    while (got < (ssize_t)sizeof *r && (n = read(fd[0], (char *)r + got, sizeof *r - (size_t)got)) > 0)
        got += n;
    close(fd[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || got != (ssize_t)sizeof *r) {
        memset(r, 0, sizeof *r);
        snprintf(r->err, sizeof r->err, "child failed (status %d)", status);
        return 0;
    }
    r->peak_mib = ru.ru_maxrss / 1024.0; /* kB on Linux */
    return 0;
}

static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    char *end;
    while (*s && n < cap) {
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v <= 0 || v > (1 << 24))
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int usage(void)
{
    fprintf(stderr, "usage: lcsm-bench-decode [--models DxN,...] [--batches B,...] [--lens L,...]\n"
                    "         [--algos lazy,eager,flash] [--flash-lens L,...] [--prompt P] [--threads N]\n"
                    "         [--budget SECONDS] [--json FILE]\n");
    return 2;
}

/* Rough cost model to skip hopeless cells: seconds for lazy/eager ~ L^2/2 * rows
 * multiply-adds at ~1 GMAC/s (memory-bound), plus the dense part. */
static double estimate_s(const cell *c)
{
    double rows = (double)c->batch * c->D * c->layers;
    double dense = 12.0 * c->D * c->D * c->layers * c->L / 2e9;
    if (c->algo == LCSM_ALGO_FLASH)
        return dense + rows * c->L * 1e-7 * 20;
    return dense + (double)c->L * c->L / 2 * rows / 1e9;
}

int main(int argc, char **argv)
{
    int models[8][2] = {{256, 8}, {768, 12}}, n_models = 2;
    int batches[8] = {1, 8}, n_batches = 2, lens[8] = {1024, 4096, 16384}, n_lens = 3;
    int flash_lens[8] = {65536, 262144}, n_flash = 2, prompt = 16, threads = 0;
    int use_algo[3] = {1, 1, 1}; /* flash, lazy, eager (lcsm_algo order) */
    double budget = 1e30;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        i++;
        if (!strcmp(a, "--models")) {
            n_models = 0;
            for (const char *p = v; *p && n_models < 8;) {
                char *e;
                long d = strtol(p, &e, 10);
                if (*e != 'x')
                    return usage();
                long n = strtol(e + 1, &e, 10);
                if (d <= 0 || n <= 0)
                    return usage();
                models[n_models][0] = (int)d;
                models[n_models++][1] = (int)n;
                p = *e == ',' ? e + 1 : e;
            }
        } else if (!strcmp(a, "--batches")) {
            if ((n_batches = parse_list(v, batches, 8)) <= 0)
                return usage();
        } else if (!strcmp(a, "--lens")) {
            if ((n_lens = parse_list(v, lens, 8)) < 0)
                return usage();
        } else if (!strcmp(a, "--flash-lens")) {
            if (!strcmp(v, "none"))
                n_flash = 0;
            else if ((n_flash = parse_list(v, flash_lens, 8)) < 0)
                return usage();
        } else if (!strcmp(a, "--algos")) {
            use_algo[0] = strstr(v, "flash") != NULL;
            use_algo[1] = strstr(v, "lazy") != NULL;
            use_algo[2] = strstr(v, "eager") != NULL;
        } else if (!strcmp(a, "--prompt")) {
            prompt = atoi(v);
        } else if (!strcmp(a, "--threads")) {
            threads = atoi(v);
        } else if (!strcmp(a, "--budget")) {
            budget = atof(v);
        } else if (!strcmp(a, "--backend")) {
            g_backend = v;
        } else if (!strcmp(a, "--device")) {
            g_device = v;
        } else if (!strcmp(a, "--json")) {
            json_path = v;
        } else {
            return usage();
        }
    }
    if (prompt < 1)
        return usage();
    FILE *js = json_path ? fopen(json_path, "w") : NULL;
    char host[256] = "";
    gethostname(host, sizeof host);
    printf("lcsm %s decode benchmark, %s backend, %ld online CPUs, prompt %d tokens, sampling at temperature 1\n",
           lcsm_version_string(), g_backend, sysconf(_SC_NPROCESSORS_ONLN), prompt);
    if (strcmp(g_backend, "cpu"))
        printf("(device backend: mixer/dense columns are host enqueue times; total and ms/tok are end to end)\n");
    printf("%-9s %2s %7s %-5s | %9s %9s %9s %9s | %8s %8s | %8s %8s\n", "model", "B", "L", "algo", "total s",
           "ms/tok", "mixer ms", "dense ms", "x total", "x mixer", "setup s", "peak MiB");
    for (int mi = 0; mi < n_models; mi++)
        for (int bi = 0; bi < n_batches; bi++) {
            int all_lens[16], n_all = 0;
            for (int i = 0; i < n_lens; i++)
                all_lens[n_all++] = lens[i];
            for (int i = 0; i < n_flash; i++)
                all_lens[n_all++] = flash_lens[i];
            for (int li = 0; li < n_all; li++) {
                int flash_only = li >= n_lens;
                result res[3];
                int have[3] = {0, 0, 0};
                /* lazy first, then eager, then flash: ratios need lazy's time. */
                const lcsm_algo order[3] = {LCSM_ALGO_LAZY, LCSM_ALGO_EAGER, LCSM_ALGO_FLASH};
                for (int k = 0; k < 3; k++) {
                    lcsm_algo al = order[k];
                    if (!use_algo[al] || (flash_only && al != LCSM_ALGO_FLASH))
                        continue;
                    cell c = {models[mi][0], models[mi][1], batches[bi], all_lens[li], prompt, threads, al};
                    char name[32];
                    snprintf(name, sizeof name, "%dx%d", c.D, c.layers);
                    if (estimate_s(&c) > budget) {
                        printf("%-9s %2d %7d %-5s | skipped: estimated %.0f s > budget %.0f s\n", name, c.batch, c.L,
                               lcsm_algo_name(al), estimate_s(&c), budget);
                        continue;
                    }
                    result *r = &res[al];
                    if (fork_cell(&c, r) != 0 || !r->ok) {
                        printf("%-9s %2d %7d %-5s | failed: %s\n", name, c.batch, c.L, lcsm_algo_name(al), r->err);
                        continue;
                    }
                    have[al] = 1;
                    static int device_shown;
                    if (!device_shown++) /* the parent stays free of threads and drivers: fork safety */
                        printf("device: %s\n", r->device);
                    double steps = r->steps > 0 ? (double)r->steps : 1;
                    double gen = r->total_s - r->prefill_s;
                    char xt[16] = "", xm[16] = "";
                    if (al != LCSM_ALGO_LAZY && have[LCSM_ALGO_LAZY]) {
                        snprintf(xt, sizeof xt, "%.2f", (res[LCSM_ALGO_LAZY].total_s - res[LCSM_ALGO_LAZY].prefill_s) / gen);
                        snprintf(xm, sizeof xm, "%.2f", res[LCSM_ALGO_LAZY].mixer_s / r->mixer_s);
                    }
                    printf("%-9s %2d %7d %-5s | %9.2f %9.3f %9.3f %9.3f | %8s %8s | %8.2f %8.0f\n", name, c.batch,
                           c.L, lcsm_algo_name(al), r->total_s, 1e3 * gen / steps, 1e3 * r->mixer_s / steps,
                           1e3 * r->dense_s / steps, xt, xm, r->setup_s, r->peak_mib);
                    fflush(stdout);
                    if (js)
                        fprintf(js,
                                "{\"host\":\"%s\",\"backend\":\"%s\",\"d_model\":%d,\"n_layer\":%d,\"batch\":%d,\"L\":%d,\"prompt\":%d,"
                                "\"algo\":\"%s\",\"total_s\":%.6f,\"prefill_s\":%.6f,\"mixer_s\":%.6f,\"tiles_s\":%.6f,"
                                "\"dense_s\":%.6f,\"steps\":%lld,\"setup_s\":%.6f,\"peak_mib\":%.1f}\n",
                                host, g_backend, c.D, c.layers, c.batch, c.L, c.prompt, lcsm_algo_name(al), r->total_s,
                                r->prefill_s, r->mixer_s, r->tiles_s, r->dense_s, r->steps, r->setup_s, r->peak_mib);
                }
            }
        }
    if (js)
        fclose(js);
    printf("x total = lazy / this algorithm, generation time without prefill; x mixer = lazy / this, mixer time.\n");
    return 0;
}
