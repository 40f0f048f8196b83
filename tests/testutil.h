/* Tiny test helpers: checks that count failures, relative errors, the backends
 * to run on, and random numbers. Each test binary prints a summary line. */
#ifndef LCSM_TESTUTIL_H
#define LCSM_TESTUTIL_H

#include "lcsm.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int tu_failures, tu_checks;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        tu_checks++;                                                                                       \
        if (!(cond)) {                                                                                     \
            tu_failures++;                                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fputc('\n', stderr);                                                                           \
        }                                                                                                  \
    } while (0)

#define CHECK_OK(call)                                                                                     \
    do {                                                                                                   \
        lcsm_status st_ = (call);                                                                          \
        CHECK(st_ == LCSM_OK, "%s -> %s (%s)", #call, lcsm_strerror(st_), lcsm_last_error());              \
    } while (0)

#define CHECK_STATUS(call, want)                                                                           \
    do {                                                                                                   \
        lcsm_status st_ = (call);                                                                          \
        CHECK(st_ == (want), "%s -> %s, want %s (%s)", #call, lcsm_strerror(st_), lcsm_strerror(want),     \
              lcsm_last_error());                                                                          \
    } while (0)

static inline int tu_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

/* max |a - b| / max |b|: the relative error we state bounds for. */
static inline double tu_rel_err_f(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]), m = fabs((double)b[i]);
        num = d > num || isnan(d) ? d : num;
        den = m > den ? m : den;
    }
    return den > 0 ? num / den : num;
}

static inline uint64_t tu_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline double tu_uniform(uint64_t *s) { return (double)(tu_next(s) >> 11) * 0x1.0p-52 - 1.0; }

/* Seed: fresh per run unless LCSM_TEST_SEED is set; printed so a failure can be
 * reproduced. */
static inline uint64_t tu_seed(void)
{
    const char *e = getenv("LCSM_TEST_SEED");
    uint64_t s;
    if (e && *e) {
        s = strtoull(e, NULL, 0);
    } else {
        FILE *fp = fopen("/dev/urandom", "rb");
        if (!fp || fread(&s, sizeof s, 1, fp) != 1)
            s = 12345;
        if (fp)
            fclose(fp);
    }
    printf("seed: LCSM_TEST_SEED=%llu\n", (unsigned long long)s);
    return s;
}

/* The backends every parameterised test runs on: $LCSM_TEST_BACKENDS (comma
 * separated), default "cpu". Exit code 77 (CTest's skip) when none can start. */
static inline int tu_backends(const char *names[8])
{
    static char buf[256];
    const char *e = getenv("LCSM_TEST_BACKENDS");
    snprintf(buf, sizeof buf, "%s", e && *e ? e : "cpu");
    int n = 0;
    for (char *tok = strtok(buf, ","); tok && n < 8; tok = strtok(NULL, ","))
        names[n++] = tok;
    return n;
}

/* Removes a file or a directory tree (for temporary test directories). */
static inline int tu_rm_rf(const char *path);

/* 1 when $LCSM_TEST_QUICK is set (and not "0"): tests that support it run a few
 * small cases only, for slow environments such as a device simulator (the
 * oclgrind CTest). */
static inline int tu_quick(void)
{
    const char *e = getenv("LCSM_TEST_QUICK");
    return e && *e && strcmp(e, "0") != 0;
}

/* Runs `run` once per backend of tu_backends() with a fresh temporary
 * directory in `dir` (cap bytes; removed afterwards). `run` returns 77 when it
 * skips a backend. Returns the test's exit code: 77 when no backend ran and
 * nothing failed, else tu_finish(test). */
static inline int tu_for_backends(const char *test, char *dir, size_t cap, int (*run)(const char *name))
{
    snprintf(dir, cap, "/tmp/lcsm_%s_XXXXXX", test);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const char *names[8];
    int n = tu_backends(names), ran = 0;
    for (int i = 0; i < n; i++)
        if (run(names[i]) != 77)
            ran++;
    tu_rm_rf(dir);
    if (!ran && !tu_failures) {
        printf("%s: no backend of LCSM_TEST_BACKENDS could run here\n", test);
        return 77;
    }
    return tu_finish(test);
}

/* Removes a file or a directory tree (for temporary test directories). */
static inline int tu_rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return -1;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *sub = malloc(n);
            if (!sub)
                break;
            snprintf(sub, n, "%s/%s", path, e->d_name);
            tu_rm_rf(sub);
            free(sub);
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

/* One small random model of every family and hybrid kind (their JSON configs
 * for lcsm_model_create_random_config): the models test_generic and
 * test_prefix run. max_seq_len 160. */
typedef struct tu_family {
    const char *name;
    const char *config;
} tu_family;

static const tu_family tu_families[] = {
    {"hyenadna", "{\"model_type\": \"hyenadna\", \"d_model\": 24, \"n_layer\": 2, \"d_inner\": 64, "
                 "\"max_seq_len\": 160, \"filter_order\": 16}"},
    {"longconv", "{\"model_type\": \"longconv\", \"d_model\": 20, \"n_layer\": 2, \"d_inner\": 48, "
                 "\"max_seq_len\": 160, \"layer\": {\"_name_\": \"h3-conv\", \"lam\": 0.01, "
                 "\"use_ma_smoothing\": true, \"ma_window_len\": 5}}"},
    {"stripedhyena", "{\"model_type\": \"stripedhyena\", \"d_model\": 32, \"n_layer\": 2, \"max_seq_len\": 160, "
                     "\"num_attention_heads\": 4, \"state_size\": 4, \"mlp_activation\": \"gelu\"}"},
    {"evo2", "{\"model_type\": \"evo2\", \"d_model\": 32, \"n_layer\": 3, \"max_seq_len\": 160, "
             "\"num_attention_heads\": 4, \"state_size\": 4, \"hcs_filter_groups\": 8, \"hcm_filter_groups\": 4}"},
    /* hybrids: grouped-query attention (2 query heads per kv head, interpolated
     * positions) between Hyena layers; Evo 2's multi-head attention */
    {"stripedhyena+attn", "{\"model_type\": \"stripedhyena\", \"d_model\": 32, \"n_layer\": 3, "
                          "\"max_seq_len\": 160, \"num_attention_heads\": 4, \"proj_groups\": 2, \"state_size\": 4, "
                          "\"hyena_layer_idxs\": [0, 2], \"attn_layer_idxs\": [1], \"rotary_emb_base\": 500, "
                          "\"use_interpolated_rotary_pos_emb\": true, \"rotary_emb_scaling_factor\": 3}"},
    {"evo2+attn", "{\"model_type\": \"evo2\", \"d_model\": 32, \"n_layer\": 4, \"max_seq_len\": 160, "
                  "\"num_attention_heads\": 2, \"state_size\": 4, \"hcs_filter_groups\": 8, \"hcm_filter_groups\": 4, "
                  "\"hcs_layer_idxs\": [0], \"hcm_layer_idxs\": [2], \"hcl_layer_idxs\": [3], \"attn_layer_idxs\": [1]}"},
    /* Hedgehog linear attention at layer 1 of a safari Hyena LM */
    {"hedgehog", "{\"model_type\": \"hedgehog\", \"d_model\": 24, \"n_layer\": 3, \"d_inner\": 48, "
                 "\"max_seq_len\": 160, \"filter_order\": 16, \"attn_layer_idx\": [1], "
                 "\"attn_cfg\": {\"num_heads\": 3, \"feature_dim\": 6}}"},
};
#define TU_N_FAMILIES (sizeof tu_families / sizeof tu_families[0])

/* Runs fn() in a child process and checks it: exit 0 passes, 77 prints a skip,
 * anything else, a signal (printed by name), or still running after `seconds`
 * (killed: a hang) fails. The child counts only its own failures. Fork only
 * from a process without library threads (no backend made yet). */
static inline void tu_run_child(const char *label, int (*fn)(void), int seconds)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "%s: fork: %s", label, strerror(errno));
        return;
    }
    if (pid == 0) {
        tu_failures = 0;
        int rc = fn();
        fflush(stdout);
        fflush(stderr);
        _exit(rc ? rc : tu_failures ? 1 : 0);
    }
    int status = 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > seconds) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK(0, "%s: still running after %d s (a hang)", label, seconds);
            return;
        }
        struct timespec ms = {0, 5 * 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    if (WIFSIGNALED(status))
        CHECK(0, "%s: killed by signal %d (%s)", label, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WEXITSTATUS(status) == 77)
        printf("SKIP %s\n", label);
    else
        CHECK(WEXITSTATUS(status) == 0, "%s: failed (exit %d)", label, WEXITSTATUS(status));
}

/* Creates backend `name` with FFT threshold `thr` (0 = the backend's own).
 * Returns NULL when it cannot: *skip = 1 if this build or machine has no such
 * backend (printed as SKIP; the caller reports a skip), else a failed check. */
static inline lcsm_backend *tu_backend_open(const char *name, int thr, int *skip)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.fft_threshold = thr;
    lcsm_backend *be = NULL;
    lcsm_status st = lcsm_backend_create(name, &bo, &be);
    *skip = st == LCSM_ERR_NO_BACKEND || st == LCSM_ERR_UNSUPPORTED;
    if (*skip)
        printf("SKIP backend %s: %s\n", name, lcsm_last_error());
    else
        CHECK_OK(st);
    return be;
}

/* A quiet CPU backend for file and loader tests: one thread, FFT tiles from
 * 16, FFTW wisdom in `cache_dir` ("" = none). NULL (a failed check) if it
 * cannot be made. */
static inline lcsm_backend *tu_cpu_backend(const char *cache_dir)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = 1;
    bo.fft_threshold = 16;
    bo.cache_dir = cache_dir;
    lcsm_backend *be = NULL;
    CHECK_OK(lcsm_backend_create("cpu", &bo, &be));
    return be;
}

/* The whole of a file, NUL-terminated (n excludes the NUL); NULL if it cannot
 * be read. Free with free(). */
static inline unsigned char *tu_read_file(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (b && fread(b, 1, (size_t)len, fp) != (size_t)len) {
        free(b);
        b = NULL;
    }
    if (b) {
        b[len] = 0;
        *n = (size_t)len;
    }
    fclose(fp);
    return b;
}

#endif
