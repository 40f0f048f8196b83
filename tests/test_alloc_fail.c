/*
 * Out of memory anywhere: the n-th host allocation of a whole job (backend,
 * random model, save + load, sessions of all three algorithms with a prompt
 * long enough for the FFT prefill, generation, the parallel forward) fails, for
 * every n. Each run must end in LCSM_OK or a clean error with a message, never
 * a crash, and every block the library allocated must be freed once the
 * handles are destroyed (the allocator's live count, src/alloc.c). Allocations
 * inside cJSON, FFTW's planner and OpenBLAS are outside the hook.
 */
#include "internal.h"
#include "testutil.h"

static char g_dir[128];

/* The job; returns the first error (or LCSM_OK). */
static lcsm_status job(void)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.fft_threshold = 8;
    bo.n_threads = 2;
    bo.cache_dir = "";
    lcsm_backend *be = NULL;
    lcsm_model *m = NULL, *m2 = NULL;
    lcsm_session *s = NULL;
    lcsm_status st = lcsm_backend_create("cpu", &bo, &be);
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
    if (st == LCSM_OK)
        st = lcsm_model_load(be, g_dir, NULL, &m2);
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

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lcsm_alloc_fail_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    long base = lcsm__alloc_live(), c0 = lcsm__alloc_count();
    CHECK_OK(job());
    long total = lcsm__alloc_count() - c0;
    CHECK(lcsm__alloc_live() == base, "a clean run leaks %ld blocks", lcsm__alloc_live() - base);
    int errors = 0, survived = 0;
    for (long n = 0; n < total; n++) {
        lcsm__alloc_inject(n);
        lcsm_status st = job();
        int hit = lcsm__alloc_injected();
        lcsm__alloc_inject(-1);
        if (st != LCSM_OK) {
            errors++;
            CHECK(hit, "allocation %ld: error %s without an injected failure (%s)", n, lcsm_strerror(st),
                  lcsm_last_error());
            CHECK(lcsm_last_error()[0] != 0, "allocation %ld: error without a message", n);
        } else {
            survived++; /* e.g. the FFT-threshold measurement falls back */
        }
        CHECK(lcsm__alloc_live() == base, "allocation %ld failed (%s): %ld blocks leaked", n, lcsm_strerror(st),
              lcsm__alloc_live() - base);
    }
    printf("%ld allocation sites per job; %d runs ended in a clean error, %d recovered\n", total, errors, survived);
    tu_rm_rf(g_dir);
    return tu_finish("test_alloc_fail");
}
