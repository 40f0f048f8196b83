/*
 * A model file that changes while it loads: truncated, extended or rewritten
 * by someone else between st_open and the reads of its tensors. The loader
 * must answer LCSM_ERR_IO ("changed while loading") or, when the change came
 * after the last read, succeed; never a signal (reading through a mapping, a
 * truncation raised SIGBUS).
 *
 * 1. Deterministic (white-box, src/safetensors.h): open, change the file, read
 *    every tensor: the first read after the change fails with the message.
 * 2. Racing: a few dozen lcsm_model_load calls; at the end of each st_open (the
 *    test hook) a second thread starts changing the file after a random delay
 *    (truncate into the data and restore, rewrite bytes in place, extend and
 *    cut back, several times), while the load reads its tensors. Every status
 *    must be OK or LCSM_ERR_IO.
 *
 * Both run in child processes, so a signal is reported as this test's failure.
 * The file's modification time is set to a day ago after each write, so that a
 * change is visible within the file system's timestamp granularity.
 */
#include "testutil.h"
#include "safetensors.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

static char g_dir[128], g_model[256], g_st[300];
static unsigned char *g_good; /* the good model.safetensors */
static size_t g_good_n, g_data_off;

/* Writes the good file and dates it a day back. */
static void restore(void)
{
    int fd = open(g_st, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "open %s: %s", g_st, strerror(errno));
    if (fd < 0)
        return;
    size_t done = 0;
    while (done < g_good_n) {
        ssize_t w = write(fd, g_good + done, g_good_n - done);
        CHECK(w > 0, "write %s", g_st);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= 86400;
    t[1] = t[0];
    CHECK(futimens(fd, t) == 0, "futimens: %s", strerror(errno));
    close(fd);
}

static int save_model(void)
{
    lcsm_backend *be = tu_cpu_backend("");
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 32;
    cfg.d_inner = 128;
    cfg.l_max = 16384;
    cfg.filter_order = 16;
    lcsm_model *m = NULL;
    if (be)
        CHECK_OK(lcsm_model_create_random(be, &cfg, 9, NULL, &m));
    if (m)
        CHECK_OK(lcsm_model_save(m, g_model));
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    return 0;
}

static void load_good_bytes(void)
{
    FILE *fp = fopen(g_st, "rb");
    CHECK(fp != NULL, "open %s", g_st);
    if (!fp)
        exit(1);
    fseek(fp, 0, SEEK_END);
    g_good_n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    g_good = malloc(g_good_n);
    CHECK(fread(g_good, 1, g_good_n, fp) == g_good_n, "read %s", g_st);
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | g_good[i];
    g_data_off = 8 + (size_t)hlen;
}

/* ------------------------------------------------------ 1. deterministic */

typedef enum change { TRUNCATE, REWRITE, SHRINK_RESTORE, EXTEND } change;
static const char *const change_names[] = {"truncated", "rewritten in place", "truncated and restored",
                                           "extended"};

static void apply(change c)
{
    int fd = open(g_st, O_WRONLY);
    CHECK(fd >= 0, "open %s for writing", g_st);
    if (fd < 0)
        return;
    size_t mid = g_data_off + (g_good_n - g_data_off) / 3;
    unsigned char junk[4096];
    memset(junk, 0x5a, sizeof junk);
    switch (c) {
    case TRUNCATE: CHECK(ftruncate(fd, (off_t)mid) == 0, "ftruncate"); break;
    case REWRITE: CHECK(pwrite(fd, junk, sizeof junk, (off_t)mid) == (ssize_t)sizeof junk, "pwrite"); break;
    case SHRINK_RESTORE:
        CHECK(ftruncate(fd, (off_t)mid) == 0, "ftruncate");
        CHECK(pwrite(fd, g_good + mid, g_good_n - mid, (off_t)mid) == (ssize_t)(g_good_n - mid), "pwrite");
        break;
    case EXTEND: CHECK(pwrite(fd, junk, sizeof junk, (off_t)g_good_n) == (ssize_t)sizeof junk, "pwrite"); break;
    }
    close(fd);
}

static int deterministic(void)
{
    for (int c = 0; c < 4; c++) {
        restore();
        st_file f;
        char err[512];
        CHECK_OK(st_open(g_st, &f, err, sizeof err));
        apply((change)c);
        lcsm_status st = LCSM_OK;
        int reads = 0;
        float *buf = NULL;
        for (int i = 0; i < f.n && st == LCSM_OK; i++, reads++) {
            buf = realloc(buf, f.t[i].numel * sizeof *buf + 1);
            st = st_read_f32(&f, &f.t[i], buf, err, sizeof err); /* SIGBUS here, through a mapping */
        }
        free(buf);
        CHECK(st == LCSM_ERR_IO, "file %s after open: reads end in %s, want an I/O error", change_names[c],
              lcsm_strerror(st));
        CHECK(st != LCSM_OK || strstr(err, "changed while loading"), "file %s: message '%s'", change_names[c], err);
        printf("file %s after open: %s after %d reads (%s)\n", change_names[c], lcsm_strerror(st), reads, err);
        st_close(&f);
    }
    return 0;
}

/* -------------------------------------------------------------- 2. racing */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_go, g_done, g_quit;
static uint64_t g_rng;

static void hook(const char *path)
{
    if (!strstr(path, "model.safetensors"))
        return;
    pthread_mutex_lock(&g_mu);
    g_go = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void *mutator(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_mu);
        while (!g_go && !g_quit)
            pthread_cond_wait(&g_cv, &g_mu);
        if (g_quit) {
            pthread_mutex_unlock(&g_mu);
            return NULL;
        }
        g_go = 0;
        pthread_mutex_unlock(&g_mu);
        /* A few changes while the tensors are being read (they take about a
         * millisecond here): a random delay, then a random change. */
        int rounds = 1 + (int)(tu_next(&g_rng) % 4);
        for (int r = 0; r < rounds; r++) {
            struct timespec d = {0, (long)(tu_next(&g_rng) % 150) * 1000};
            nanosleep(&d, NULL);
            int fd = open(g_st, O_WRONLY);
            if (fd < 0)
                continue;
            size_t at = g_data_off + (size_t)(tu_next(&g_rng) % (g_good_n - g_data_off));
            switch (tu_next(&g_rng) % 3) {
            case 0: /* truncate, and put the rest back a little later */
                if (ftruncate(fd, (off_t)at) == 0) {
                    nanosleep(&d, NULL);
                    if (pwrite(fd, g_good + at, g_good_n - at, (off_t)at) < 0)
                        perror("pwrite");
                }
                break;
            case 1: { /* flip bytes in place */
                unsigned char b[512];
                size_t k = g_good_n - at < sizeof b ? g_good_n - at : sizeof b;
                for (size_t i = 0; i < k; i++)
                    b[i] = (unsigned char)(g_good[at + i] ^ 0xff);
                if (pwrite(fd, b, k, (off_t)at) < 0)
                    perror("pwrite");
                break;
            }
            default: /* grow, then cut back */
                if (pwrite(fd, "xxxxxxxx", 8, (off_t)g_good_n) == 8 && ftruncate(fd, (off_t)g_good_n) != 0)
                    perror("ftruncate");
                break;
            }
            close(fd);
        }
        pthread_mutex_lock(&g_mu);
        g_done = 1;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
}

static int racing(void)
{
    enum { LOADS = 40 };
    g_rng = tu_seed();
    lcsm_backend *be = tu_cpu_backend("");
    if (!be)
        return 1;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, mutator, NULL) == 0, "pthread_create");
    st_test_hook_opened = hook;
    int ok = 0, io = 0;
    for (int i = 0; i < LOADS; i++) {
        restore();
        g_done = 0;
        lcsm_model *m = NULL;
        lcsm_status st = lcsm_model_load(be, g_model, NULL, &m); /* SIGBUS here, through a mapping */
        pthread_mutex_lock(&g_mu);
        while (!g_done) /* the hook always fires: the file is whole when opened */
            pthread_cond_wait(&g_cv, &g_mu);
        pthread_mutex_unlock(&g_mu);
        CHECK(st == LCSM_OK || st == LCSM_ERR_IO, "load %d: %s (%s)", i, lcsm_strerror(st), lcsm_last_error());
        if (st == LCSM_ERR_IO)
            CHECK(strstr(lcsm_last_error(), "changed while loading"), "load %d: message '%s'", i, lcsm_last_error());
        ok += st == LCSM_OK;
        io += st == LCSM_ERR_IO;
        lcsm_model_destroy(m);
    }
    st_test_hook_opened = NULL;
    pthread_mutex_lock(&g_mu);
    g_quit = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(th, NULL);
    printf("%d loads while the file changed: %d OK (the change came after the last read), %d \"changed while "
           "loading\"\n", LOADS, ok, io);
    CHECK(io > 0, "no load saw the change (the mutator came too late every time)");
    lcsm_backend_destroy(be);
    return 0;
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lcsm_test_file_change_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_model, sizeof g_model, "%s/model", g_dir);
    snprintf(g_st, sizeof g_st, "%s/model.safetensors", g_model);
    tu_run_child("save the model", save_model, 120);
    load_good_bytes();
    tu_run_child("deterministic changes after open", deterministic, 120);
    tu_run_child("loads racing a writer", racing, 300);
    free(g_good);
    tu_rm_rf(g_dir);
    return tu_finish("test_file_change");
}
