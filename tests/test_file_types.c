/*
 * Paths that are not regular files: config.json or model.safetensors as a FIFO
 * or as a symlink to /dev/zero must be refused at once with LCSM_ERR_IO; an
 * FFTW wisdom file or an OpenCL kernel-cache entry that is a FIFO or a link to
 * /dev/zero must be ignored (and rewritten as a regular file), never waited on.
 *
 * Each case runs in a child process under a time limit, so that a hang is a
 * failure of this test and not of the whole suite: a FIFO nobody writes makes
 * open() (and fopen()) wait forever, /dev/zero never ends. The parent makes no
 * backend itself (it forks, and a fork of a process with driver threads is not
 * safe).
 */
#include "testutil.h"


#define CASE_SECONDS 60 /* generous: a case takes well under a second, a hang forever */

static char g_dir[128];

/* ----------------------------------------------------------- child cases */

static void run_case(const char *label, int (*fn)(void))
{
    tu_run_child(label, fn, CASE_SECONDS);
    printf("%s: done\n", label);
}

/* In a child: a check failure prints and makes the child's exit status 1. */
static int child_result(void) { return tu_failures ? 1 : 0; }

static char g_model[256], g_other[256];

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Copies a file byte for byte. */
static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0)
        ok = fwrite(buf, 1, n, b) == n;
    if (a)
        fclose(a);
    if (b && fclose(b) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

/* g_other: a copy of the good model whose `name` is replaced by `kind`: "fifo",
 * "zero" (a symlink to /dev/zero) or "link" (a symlink to the good file). */
static void make_variant(const char *name, const char *kind)
{
    char p[300], good[300];
    tu_rm_rf(g_other);
    CHECK(mkdir(g_other, 0700) == 0, "mkdir %s", g_other);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        path_in(p, sizeof p, g_other, files[i]);
        path_in(good, sizeof good, g_model, files[i]);
        if (strcmp(files[i], name)) {
            CHECK(copy_file(good, p) == 0, "copy %s", good);
        } else if (!strcmp(kind, "fifo")) {
            CHECK(mkfifo(p, 0600) == 0, "mkfifo %s: %s", p, strerror(errno));
        } else if (!strcmp(kind, "zero")) {
            CHECK(symlink("/dev/zero", p) == 0, "symlink %s: %s", p, strerror(errno));
        } else {
            CHECK(symlink(good, p) == 0, "symlink %s: %s", p, strerror(errno));
        }
    }
}

static const char *g_name, *g_kind;

static int load_variant(void)
{
    lcsm_backend *be = tu_cpu_backend("");
    if (!be)
        return 1;
    lcsm_model *m = NULL;
    lcsm_status st = lcsm_model_load(be, g_other, NULL, &m);
    if (!strcmp(g_kind, "link")) {
        CHECK(st == LCSM_OK, "%s as a symlink to a regular file: %s (%s)", g_name, lcsm_strerror(st),
              lcsm_last_error());
    } else {
        CHECK(st == LCSM_ERR_IO, "%s as %s: %s, want an I/O error (%s)", g_name, g_kind, lcsm_strerror(st),
              lcsm_last_error());
        CHECK(strstr(lcsm_last_error(), "not a regular file") && strstr(lcsm_last_error(), g_name),
              "message '%s'", lcsm_last_error());
        CHECK(m == NULL, "out not cleared");
    }
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    return child_result();
}

static int save_good_model(void)
{
    lcsm_backend *be = tu_cpu_backend("");
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.d_inner = 64;
    cfg.l_max = 64;
    cfg.filter_order = 8;
    lcsm_model *m = NULL;
    if (be) {
        CHECK_OK(lcsm_model_create_random(be, &cfg, 3, NULL, &m));
        if (m)
            CHECK_OK(lcsm_model_save(m, g_model));
    }
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    return child_result();
}

/* ----------------------------------------------------------- cache entries */

static char g_cache[256];

/* The first entry of g_cache whose name starts with `prefix`, or "" . */
static void find_entry(const char *prefix, char *out, size_t cap)
{
    out[0] = 0;
    DIR *d = opendir(g_cache);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && !strstr(e->d_name, ".tmp")) {
            path_in(out, cap, g_cache, e->d_name);
            break;
        }
    if (d)
        closedir(d);
}

/* Replaces the file at p by a FIFO or a link to /dev/zero. */
static void spoil(const char *p, const char *kind)
{
    unlink(p);
    if (!strcmp(kind, "fifo"))
        CHECK(mkfifo(p, 0600) == 0, "mkfifo %s: %s", p, strerror(errno));
    else
        CHECK(symlink("/dev/zero", p) == 0, "symlink %s: %s", p, strerror(errno));
}

static int is_regular(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* FFTW wisdom: a backend that measures its FFT threshold plans with
 * FFTW_MEASURE and writes wisdom when destroyed. */
static lcsm_backend *open_measuring_cpu(void)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = 1;
    bo.cache_dir = g_cache;
    lcsm_backend *be = NULL;
    CHECK_OK(lcsm_backend_create("cpu", &bo, &be));
    return be;
}

static int wisdom_write(void)
{
    lcsm_backend_destroy(open_measuring_cpu());
    return child_result();
}

static int wisdom_spoilt(void)
{
    char p[512];
    find_entry("fftwf-wisdom-", p, sizeof p);
    CHECK(p[0], "no wisdom file in %s", g_cache);
    if (!p[0])
        return 1;
    spoil(p, g_kind);
    lcsm_backend *be = open_measuring_cpu(); /* hangs here on a FIFO before the fix */
    CHECK(be != NULL, "backend with %s wisdom", g_kind);
    lcsm_backend_destroy(be);
    CHECK(is_regular(p), "the %s wisdom entry was not rewritten as a regular file", g_kind);
    return child_result();
}

static lcsm_backend *open_opencl(int *skip)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.cache_dir = g_cache;
    bo.fft_threshold = 16;
    lcsm_backend *be = NULL;
    lcsm_status st = lcsm_backend_create("opencl", &bo, &be);
    *skip = st == LCSM_ERR_NO_BACKEND || st == LCSM_ERR_UNSUPPORTED;
    if (!*skip)
        CHECK_OK(st);
    return be;
}

static int kernels_write(void)
{
    int skip;
    lcsm_backend *be = open_opencl(&skip);
    lcsm_backend_destroy(be);
    return skip ? 77 : child_result();
}

static int kernels_spoilt(void)
{
    char p[512];
    int skip;
    find_entry("cl-", p, sizeof p);
    if (!p[0]) { /* no OpenCL in this build or on this machine, or no entry written */
        lcsm_backend_destroy(open_opencl(&skip));
        if (skip)
            return 77;
        CHECK(0, "no kernel-cache entry in %s", g_cache);
        return 1;
    }
    spoil(p, g_kind);
    lcsm_backend *be = open_opencl(&skip); /* hangs here on a FIFO before the fix */
    if (skip)
        return 77;
    lcsm_backend_stats bs;
    if (be) {
        CHECK_OK(lcsm_backend_get_stats(be, &bs));
        CHECK(!bs.kernels_from_cache, "kernels from a %s cache entry", g_kind);
    }
    lcsm_backend_destroy(be);
    CHECK(is_regular(p), "the %s cache entry was not rebuilt as a regular file", g_kind);
    return child_result();
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lcsm_test_file_types_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    path_in(g_model, sizeof g_model, g_dir, "good");
    path_in(g_other, sizeof g_other, g_dir, "variant");
    path_in(g_cache, sizeof g_cache, g_dir, "cache");
    run_case("save a good model", save_good_model);

    const char *names[] = {"config.json", "model.safetensors"};
    const char *kinds[] = {"fifo", "zero", "link"};
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) {
            char label[96];
            g_name = names[i];
            g_kind = kinds[k];
            snprintf(label, sizeof label, "%s as %s", g_name, g_kind);
            make_variant(g_name, g_kind);
            run_case(label, load_variant);
        }

    for (int k = 0; k < 2; k++) {
        char label[96];
        g_kind = kinds[k];
        tu_rm_rf(g_cache);
        run_case("write FFTW wisdom", wisdom_write);
        snprintf(label, sizeof label, "FFTW wisdom as %s", g_kind);
        run_case(label, wisdom_spoilt);
        tu_rm_rf(g_cache);
        run_case("write the OpenCL kernel cache", kernels_write);
        snprintf(label, sizeof label, "OpenCL kernel-cache entry as %s", g_kind);
        run_case(label, kernels_spoilt);
    }
    tu_rm_rf(g_dir);
    return tu_finish("test_file_types");
}
