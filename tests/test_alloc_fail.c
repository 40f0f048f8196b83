/*
 * Out of memory anywhere: the n-th host allocation of a whole job (backend,
 * random model, save + load, sessions of all three algorithms with a prompt
 * long enough for the FFT prefill, generation, the parallel forward) fails, for
 * every n (the loaded copy defers its filters to its first session, so their
 * making fails there too). Each run must end in LCSM_OK or LCSM_ERR_OUT_OF_MEMORY with a
 * message, never a crash, and every block the library allocated must be freed
 * once the handles are destroyed (the allocator's live count, src/alloc.c).
 * Allocations inside cJSON, FFTW's planner, OpenBLAS, the OpenCL driver and
 * VkFFT are outside the hook. Then a prefill failing that way marks its session
 * dead until reset (test_dead_session).
 *
 * Backends from LCSM_TEST_BACKENDS (default cpu); on OpenCL this covers the
 * backend's host side (kernel cache, plan table, staging); its device buffers
 * are test_dev_alloc_fail's.
 */
#include "internal.h"
#include "testutil.h"

static char g_dir[128];
static const char *g_name = "cpu";

static lcsm_status open_backend(lcsm_backend **be)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.fft_threshold = 8;
    bo.n_threads = 2;
    /* No FFTW wisdom files from a test; OpenCL kernels through the binary cache
     * in LCSM_CACHE_DIR, so its reading is under the hook too. */
    bo.cache_dir = strcmp(g_name, "cpu") ? NULL : "";
    return lcsm_backend_create(g_name, &bo, be);
}

/* The job; returns the first error (or LCSM_OK). */
static lcsm_status job(void)
{
    lcsm_backend *be = NULL;
    lcsm_model *m = NULL, *m2 = NULL;
    lcsm_session *s = NULL;
    lcsm_status st = open_backend(&be);
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.d_inner = 64;
    cfg.l_max = 96;
    cfg.filter_order = 8;
    if (st == LCSM_OK)
        st = lcsm_model_create_random(be, &cfg, 5, NULL, &m);
    if (st == LCSM_OK)
        st = lcsm_model_save(m, g_dir);
    lcsm_model_options mo; /* the loaded copy makes its filters at its first session (defer_spectra 2) */
    lcsm_model_options_default(&mo);
    mo.defer_spectra = 2;
    if (st == LCSM_OK)
        st = lcsm_model_load(be, g_dir, &mo, &m2);
    int32_t prompt[2 * 40], out[2 * 30];
    for (int i = 0; i < 80; i++)
        prompt[i] = 7 + i % 4;
    const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER};
    for (int a = 0; a < 3 && st == LCSM_OK; a++) {
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.batch = 2;
        so.max_len = 80;
        so.algo = algos[a];
        st = lcsm_session_create(m2, &so, &s);
        if (st == LCSM_OK)
            st = lcsm_generate(s, prompt, 40, 30, out);
        lcsm_session_destroy(s);
        s = NULL;
    }
    float logits[2 * 8 * 16];
    if (st == LCSM_OK)
        st = lcsm_model_forward(m2, prompt, 2, 8, logits);
    lcsm_model_destroy(m2);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    return st;
}

/* A prefill that fails inside the backend (here: its buffer) marks the session
 * dead: every call that runs it returns LCSM_ERR_STATE until reset, which
 * makes it usable again (include/lcsm.h, conventions). The OpenCL version is in
 * test_dev_alloc_fail. */
static void test_dead_session(void)
{
    lcsm_backend *be = NULL;
    lcsm_model *m = NULL;
    lcsm_session *s = NULL, *ref = NULL;
    CHECK_OK(open_backend(&be));
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.d_inner = 64;
    cfg.l_max = 96;
    cfg.filter_order = 8;
    if (be)
        CHECK_OK(lcsm_model_create_random(be, &cfg, 11, NULL, &m));
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = 2;
    so.max_len = 80;
    if (m) {
        CHECK_OK(lcsm_session_create(m, &so, &s));
        CHECK_OK(lcsm_session_create(m, &so, &ref));
    }
    if (s && ref) {
        int32_t prompt[2 * 40], tok[2] = {7, 8}, out[2 * 4];
        for (int i = 0; i < 80; i++)
            prompt[i] = 7 + (i * 5) % 4;
        float lg[2 * 16], want[2 * 16];
        lcsm__alloc_inject(0); /* the prefill's first allocation */
        CHECK_STATUS(lcsm_session_prefill(s, prompt, 40, lg), LCSM_ERR_OUT_OF_MEMORY);
        CHECK(lcsm__alloc_injected(), "the prefill allocated nothing");
        lcsm__alloc_inject(-1);
        CHECK(*lcsm_session_last_error(s), "no message after the failed prefill");
        CHECK_STATUS(lcsm_session_step(s, tok, lg), LCSM_ERR_STATE);
        CHECK_STATUS(lcsm_session_prefill(s, prompt, 40, lg), LCSM_ERR_STATE);
        CHECK_STATUS(lcsm_generate(s, prompt, 40, 4, out), LCSM_ERR_STATE);
        CHECK(strstr(lcsm_session_last_error(s), "reset") != NULL, "dead-session message '%s'",
              lcsm_session_last_error(s));
        CHECK_OK(lcsm_session_reset(s));
        CHECK_OK(lcsm_session_prefill(s, prompt, 40, lg));
        CHECK_OK(lcsm_session_prefill(ref, prompt, 40, want));
        double e = tu_rel_err_f(lg, want, 2 * 16);
        CHECK(e <= 1e-6, "prefill after reset vs a fresh session: %.3g", e);
        CHECK_OK(lcsm_session_step(s, tok, lg));
        CHECK_OK(lcsm_session_step(ref, tok, want));
        e = tu_rel_err_f(lg, want, 2 * 16);
        CHECK(e <= 1e-6, "step after reset vs a fresh session: %.3g", e);
    }
    lcsm_session_destroy(s);
    lcsm_session_destroy(ref);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
}

static int run_backend(void)
{
    long base = lcsm__alloc_live(), c0 = lcsm__alloc_count();
    lcsm_backend *probe = NULL;
    lcsm_status st = open_backend(&probe);
    lcsm_backend_destroy(probe);
    if (st == LCSM_ERR_NO_BACKEND || st == LCSM_ERR_UNSUPPORTED) {
        printf("SKIP backend %s: %s\n", g_name, lcsm_last_error());
        return 77;
    }
    c0 = lcsm__alloc_count();
    CHECK_OK(job());
    long total = lcsm__alloc_count() - c0;
    CHECK(lcsm__alloc_live() == base, "a clean run leaks %ld blocks", lcsm__alloc_live() - base);
    int errors = 0, survived = 0;
    for (long n = 0; n < total; n++) {
        lcsm__alloc_inject(n);
        st = job();
        int hit = lcsm__alloc_injected();
        lcsm__alloc_inject(-1);
        if (st != LCSM_OK) {
            errors++;
            CHECK(hit, "allocation %ld: error %s without an injected failure (%s)", n, lcsm_strerror(st),
                  lcsm_last_error());
            CHECK(st == LCSM_ERR_OUT_OF_MEMORY, "allocation %ld: %s, want out of memory (%s)", n, lcsm_strerror(st),
                  lcsm_last_error());
            CHECK(lcsm_last_error()[0] != 0, "allocation %ld: error without a message", n);
        } else {
            survived++; /* e.g. the FFT-threshold measurement falls back */
        }
        CHECK(lcsm__alloc_live() == base, "allocation %ld failed (%s): %ld blocks leaked", n, lcsm_strerror(st),
              lcsm__alloc_live() - base);
    }
    printf("%s: %ld allocation sites per job; %d runs ended in a clean error, %d recovered\n", g_name, total, errors,
           survived);
    test_dead_session();
    CHECK(lcsm__alloc_live() == base, "the dead-session test leaks %ld blocks", lcsm__alloc_live() - base);
    return 0;
}

static int run_named(const char *name)
{
    g_name = name;
    return run_backend();
}

int main(void) { return tu_for_backends("test_alloc_fail", g_dir, sizeof g_dir, run_named); }
