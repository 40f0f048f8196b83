/*
 * Long paths are never cut short: a model directory whose file names do not fit
 * is LCSM_ERR_INVALID_ARGUMENT ("path too long") for save and load (a cut name
 * is another file: make-model used to write "<dir>/model.safete" and report
 * success, and load read it); cache directories of any length put their files
 * where they belong (FFTW wisdom used to go to a name cut at 1023 bytes).
 *
 * The directories are real: components of 200 bytes under a temporary
 * directory, up to about 4080 bytes (Linux opens paths below 4096).
 */
#include "testutil.h"

static char g_root[64];

/* Makes a directory at exactly `len` bytes of path under g_root (components
 * of at most 200 bytes), into out. */
static void make_deep(size_t len, const char *tag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s/%s", g_root, tag);
    CHECK(mkdir(out, 0700) == 0 || errno == EEXIST, "mkdir %s", out);
    while (n < len) {
        size_t k = len - n - 1; /* bytes of the next component after its '/' */
        if (k > 200)
            k = 200;
        if (len - n - 1 - k > 0 && len - n - 1 - k < 2)
            k -= 2; /* leave room for a last component of at least one byte */
        out[n++] = '/';
        memset(out + n, 'd', k);
        n += k;
        out[n] = 0;
        CHECK(mkdir(out, 0700) == 0 || errno == EEXIST, "mkdir (%zu bytes): %s", n, strerror(errno));
    }
    CHECK(strlen(out) == len, "deep directory of %zu bytes, want %zu", strlen(out), len);
}

static lcsm_backend *cpu(const char *cache_dir, int measure)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = 1;
    bo.fft_threshold = measure ? 0 : 16;
    bo.cache_dir = cache_dir;
    lcsm_backend *be = NULL;
    CHECK_OK(lcsm_backend_create("cpu", &bo, &be));
    return be;
}

static int exists(const char *dir, const char *name)
{
    char p[8192];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* 1 if dir holds an entry whose name starts with prefix and is longer than it. */
static int has_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        found |= !strncmp(e->d_name, prefix, strlen(prefix)) && strlen(e->d_name) > strlen(prefix);
    if (d)
        closedir(d);
    return found;
}

/* The number of entries anywhere under dir whose name starts with prefix. */
static int count_under(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n += !strncmp(e->d_name, prefix, strlen(prefix));
        char sub[8192];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
            n += count_under(sub, prefix);
    }
    if (d)
        closedir(d);
    return n;
}

static void test_model_dir(void)
{
    lcsm_backend *be = cpu("", 0);
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.d_inner = 64;
    cfg.l_max = 64;
    cfg.filter_order = 8;
    lcsm_model *m = NULL, *m2 = NULL;
    CHECK_OK(lcsm_model_create_random(be, &cfg, 3, NULL, &m));
    if (!m)
        return;
    /* 4080 bytes: "<dir>/config.json" fits below 4096, "<dir>/model.safetensors" does not. */
    static char dir[4200], good[256];
    make_deep(4080, "model", dir, sizeof dir);
    CHECK_STATUS(lcsm_model_save(m, dir), LCSM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(lcsm_last_error(), "path too long"), "save: message '%s'", lcsm_last_error());
    CHECK(!exists(dir, "config.json"), "save wrote config.json before refusing the directory");
    CHECK(!has_entry(dir, "model.saf"), "save wrote a file with a cut name");
    /* What the old make-model left there: config.json and model.safetensors cut
     * to fit. A load must refuse the directory, not read the cut name. */
    snprintf(good, sizeof good, "%s/good", g_root);
    CHECK_OK(lcsm_model_save(m, good));
    char from[300], to[4300];
    const char *names[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", good, names[i]);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        to[4095] = '\0'; /* cut at 4095 bytes, as snprintf into path[4096] did */
        CHECK(link(from, to) == 0, "link %s: %s", to, strerror(errno));
    }
    CHECK_STATUS(lcsm_model_load(be, dir, NULL, &m2), LCSM_ERR_INVALID_ARGUMENT);
    CHECK(m2 == NULL && strstr(lcsm_last_error(), "path too long"), "load: message '%s'", lcsm_last_error());
    lcsm_model_destroy(m2);
    m2 = NULL;
    /* Longer than any path: refused as too long, not cut to some directory. */
    static char huge[6000];
    size_t n = (size_t)snprintf(huge, sizeof huge, "%s", good);
    while (n < 5000)
        n += (size_t)snprintf(huge + n, sizeof huge - n, "/%s", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    CHECK_STATUS(lcsm_model_load(be, huge, NULL, &m2), LCSM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(lcsm_model_save(m, huge), LCSM_ERR_INVALID_ARGUMENT);
    /* 4000 bytes: both names fit; save and load work. */
    make_deep(4000, "fits", dir, sizeof dir);
    CHECK_OK(lcsm_model_save(m, dir));
    CHECK_OK(lcsm_model_load(be, dir, NULL, &m2));
    lcsm_model_destroy(m2);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
}

/* FFTW wisdom in a cache directory of 1100 bytes, given as the option and as
 * $XDG_CACHE_HOME (then in its "lcsm" subdirectory). */
static void test_cache_dirs(void)
{
    static char dir[1300], top[300];
    make_deep(1100, "cache", dir, sizeof dir);
    lcsm_backend_destroy(cpu(dir, 1)); /* measures its threshold: FFTW_MEASURE plans, wisdom written */
    CHECK(has_entry(dir, "fftwf-wisdom-"), "no wisdom file in the %zu-byte cache directory", strlen(dir));
    snprintf(top, sizeof top, "%s/cache", g_root);
    CHECK(count_under(top, "fftwf-w") == 1, "%d wisdom files under %s (want 1: none under a cut name)",
          count_under(top, "fftwf-w"), top);

    make_deep(1100, "xdg", dir, sizeof dir);
    unsetenv("LCSM_CACHE_DIR");
    setenv("XDG_CACHE_HOME", dir, 1);
    lcsm_backend_destroy(cpu(NULL, 1));
    char sub[1400];
    snprintf(sub, sizeof sub, "%s/lcsm", dir);
    CHECK(has_entry(sub, "fftwf-wisdom-"), "no wisdom file in $XDG_CACHE_HOME/lcsm (%zu bytes)", strlen(sub));
    snprintf(top, sizeof top, "%s/xdg", g_root);
    CHECK(count_under(top, "fftwf-w") == 1, "%d wisdom files under %s (want 1)", count_under(top, "fftwf-w"), top);
    /* OpenCL: its kernel cache under the same derived directory. */
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    lcsm_backend *be = NULL;
    lcsm_status st = lcsm_backend_create("opencl", &bo, &be);
    if (st == LCSM_ERR_NO_BACKEND || st == LCSM_ERR_UNSUPPORTED) {
        printf("SKIP the OpenCL kernel cache: %s\n", lcsm_last_error());
    } else {
        CHECK_OK(st);
        CHECK(has_entry(sub, "cl-"), "no kernel-cache entry in $XDG_CACHE_HOME/lcsm");
    }
    lcsm_backend_destroy(be);
    unsetenv("XDG_CACHE_HOME");
}

int main(void)
{
    snprintf(g_root, sizeof g_root, "/tmp/lcsm_test_path_len_XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    test_model_dir();
    test_cache_dirs();
    tu_rm_rf(g_root);
    return tu_finish("test_path_len");
}
