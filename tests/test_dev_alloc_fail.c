/*
 * Out of device memory anywhere, on a GPU backend (OpenCL; PoCL in CI): the
 * n-th device buffer of a whole job fails, for every n. The job: create the
 * backend, a random model, save + load it, a session of each algorithm with a
 * prompt long enough for the FFT prefill and blocked tiles, generation, the
 * parallel forward. For every n:
 *   - the job ends in LCSM_ERR_OUT_OF_MEMORY with a message naming the call
 *     (clCreateBuffer), never a crash or another status;
 *   - when the backend was made before the failure, it stays usable: the same
 *     job on it succeeds and samples the tokens of a clean run, and its device
 *     bytes (lcsm_backend_stats.device_bytes_live) come back to those of a
 *     clean run, so nothing the failed job made is still held;
 *   - after lcsm_backend_destroy no device buffer and no host block is left
 *     (the counters of src/alloc.c).
 * Also: device_bytes_live / _peak follow models and sessions exactly, and a
 * session whose prefill fails on the device is marked dead (LCSM_ERR_STATE)
 * until lcsm_session_reset, then works again.
 *
 * Backends from LCSM_TEST_BACKENDS; "cpu" has no device buffers (its memory is
 * host memory, test_alloc_fail covers it) and is passed over. Exit 77 when no
 * device backend can run here.
 */
#include "internal.h"
#include "testutil.h"

enum { B = 2, P = 40, N = 30, ML = 80 };

static char g_dir[128];
static const char *g_name;

static lcsm_status open_backend(lcsm_backend **be)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.fft_threshold = 8; /* FFT tiles from U = 8: the tile path is exercised at this size */
    return lcsm_backend_create(g_name, &bo, be);
}

static void small_config(lcsm_model_config *cfg)
{
    lcsm_model_config_default(cfg);
    cfg->d_model = 16;
    cfg->d_inner = 64;
    cfg->l_max = 96;
    cfg->filter_order = 8;
}

static size_t live_bytes(const lcsm_backend *be)
{
    lcsm_backend_stats s;
    return lcsm_backend_get_stats(be, &s) == LCSM_OK ? s.device_bytes_live : (size_t)-1;
}

/* Everything after the backend; destroys what it made. out: [3][B * N] tokens. */
static lcsm_status work(lcsm_backend *be, int32_t out[3][B * N])
{
    lcsm_model *m = NULL, *m2 = NULL;
    lcsm_session *s = NULL;
    lcsm_model_config cfg;
    small_config(&cfg);
    lcsm_status st = lcsm_model_create_random(be, &cfg, 5, NULL, &m);
    if (st == LCSM_OK)
        st = lcsm_model_save(m, g_dir);
    if (st == LCSM_OK)
        st = lcsm_model_load(be, g_dir, NULL, &m2);
    int32_t prompt[B * P];
    for (int i = 0; i < B * P; i++)
        prompt[i] = 7 + i % 4;
    const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER};
    for (int a = 0; a < 3 && st == LCSM_OK; a++) {
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.batch = B;
        so.max_len = ML;
        so.algo = algos[a];
        st = lcsm_session_create(m2, &so, &s);
        if (st == LCSM_OK)
            st = lcsm_generate(s, prompt, P, N, out[a]);
        lcsm_session_destroy(s);
        s = NULL;
    }
    float logits[B * 8 * 16];
    if (st == LCSM_OK)
        st = lcsm_model_forward(m2, prompt, B, 8, logits);
    lcsm_model_destroy(m2);
    lcsm_model_destroy(m);
    return st;
}

/* The device byte counts follow what models and sessions hold, exactly. */
static void test_stats(lcsm_backend *be)
{
    lcsm_backend_stats s0, s;
    CHECK_OK(lcsm_backend_get_stats(be, &s0));
    CHECK(s0.device_bytes_live > 0 && s0.device_bytes_peak >= s0.device_bytes_live,
          "a new backend: live %zu, peak %zu", s0.device_bytes_live, s0.device_bytes_peak);
    lcsm_model_config cfg;
    small_config(&cfg);
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_create_random(be, &cfg, 9, NULL, &m));
    if (!m)
        return;
    lcsm_model_info info;
    CHECK_OK(lcsm_model_get_info(m, &info));
    size_t with_model = live_bytes(be);
    CHECK(with_model >= s0.device_bytes_live + info.weight_bytes, "model of %zu device bytes: live %zu -> %zu",
          info.weight_bytes, s0.device_bytes_live, with_model);
    const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER};
    for (int a = 0; a < 3; a++) {
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.batch = 3;
        so.max_len = 64;
        so.algo = algos[a];
        lcsm_session *ss = NULL;
        size_t before = live_bytes(be);
        CHECK_OK(lcsm_session_create(m, &so, &ss));
        if (!ss)
            continue;
        lcsm_session_stats st;
        CHECK_OK(lcsm_session_get_stats(ss, &st));
        size_t with = live_bytes(be);
        CHECK(with >= before + st.state_bytes, "%s session of %zu bytes: live %zu -> %zu", lcsm_algo_name(algos[a]),
              st.state_bytes, before, with);
        int32_t tok[3] = {7, 8, 9};
        CHECK_OK(lcsm_session_step(ss, tok, NULL));
        with = live_bytes(be); /* steps allocate nothing; scratch reserved at creation */
        lcsm_session_destroy(ss);
        size_t after = live_bytes(be);
        CHECK(with - after == st.state_bytes, "%s session destroyed: %zu bytes released, it held %zu",
              lcsm_algo_name(algos[a]), with - after, st.state_bytes);
    }
    CHECK_OK(lcsm_model_get_info(m, &info)); /* spectra the sessions prepared count too */
    size_t before = live_bytes(be);
    lcsm_model_destroy(m);
    size_t after = live_bytes(be);
    CHECK(before - after == info.weight_bytes, "model destroyed: %zu bytes released, it held %zu", before - after,
          info.weight_bytes);
    CHECK_OK(lcsm_backend_get_stats(be, &s));
    CHECK(s.device_bytes_peak >= with_model && s.device_bytes_peak >= s.device_bytes_live, "peak %zu, live %zu",
          s.device_bytes_peak, s.device_bytes_live);
}

/* A prefill that fails inside the backend marks the session dead: every call
 * that runs it returns LCSM_ERR_STATE until reset, which makes it usable again
 * (include/lcsm.h, conventions). */
static void test_dead_session(lcsm_backend *be)
{
    lcsm_model_config cfg;
    small_config(&cfg);
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_create_random(be, &cfg, 11, NULL, &m));
    lcsm_session *s = NULL, *ref = NULL;
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = B;
    so.max_len = ML;
    if (m) {
        CHECK_OK(lcsm_session_create(m, &so, &s));
        CHECK_OK(lcsm_session_create(m, &so, &ref));
    }
    if (s && ref) {
        int32_t prompt[B * P], tok[B] = {7, 8}, out[B * 4];
        for (int i = 0; i < B * P; i++)
            prompt[i] = 7 + (i * 5) % 4;
        float lg[B * 16], want[B * 16];
        lcsm__dev_alloc_inject(0); /* the prefill's device buffer */
        CHECK_STATUS(lcsm_session_prefill(s, prompt, P, lg), LCSM_ERR_OUT_OF_MEMORY);
        CHECK(lcsm__dev_alloc_injected(), "the prefill made no device allocation");
        lcsm__dev_alloc_inject(-1);
        CHECK(strstr(lcsm_session_last_error(s), "clCreateBuffer") != NULL, "message '%s'",
              lcsm_session_last_error(s));
        CHECK_STATUS(lcsm_session_step(s, tok, lg), LCSM_ERR_STATE);
        CHECK_STATUS(lcsm_session_prefill(s, prompt, P, lg), LCSM_ERR_STATE);
        CHECK_STATUS(lcsm_generate(s, prompt, P, 4, out), LCSM_ERR_STATE);
        CHECK(strstr(lcsm_session_last_error(s), "reset") != NULL, "dead-session message '%s'",
              lcsm_session_last_error(s));
        CHECK_OK(lcsm_session_reset(s));
        CHECK_OK(lcsm_session_prefill(s, prompt, P, lg));
        CHECK_OK(lcsm_session_prefill(ref, prompt, P, want));
        double e = tu_rel_err_f(lg, want, B * 16);
        CHECK(e <= 1e-6, "prefill after reset vs a fresh session: %.3g", e);
        CHECK_OK(lcsm_session_step(s, tok, lg));
        CHECK_OK(lcsm_session_step(ref, tok, want));
        e = tu_rel_err_f(lg, want, B * 16);
        CHECK(e <= 1e-6, "step after reset vs a fresh session: %.3g", e);
    }
    lcsm_session_destroy(s);
    lcsm_session_destroy(ref);
    lcsm_model_destroy(m);
}

static int run_backend(void)
{
    long base = lcsm__alloc_live(), dbase = lcsm__dev_alloc_live();
    /* A clean run: device allocations per job, the tokens, the steady device bytes. */
    static int32_t ref[3][B * N], got[3][B * N];
    lcsm_backend *be = NULL;
    long c0 = lcsm__dev_alloc_count();
    lcsm_status st = open_backend(&be);
    if (st == LCSM_ERR_NO_BACKEND || st == LCSM_ERR_UNSUPPORTED) {
        printf("SKIP backend %s: %s\n", g_name, lcsm_last_error());
        return 77;
    }
    CHECK_OK(st);
    if (!be)
        return 1;
    test_stats(be);
    test_dead_session(be);
    lcsm_backend_destroy(be);
    be = NULL;

    c0 = lcsm__dev_alloc_count();
    CHECK_OK(open_backend(&be));
    if (!be)
        return 1;
    CHECK_OK(work(be, ref));
    const long total = lcsm__dev_alloc_count() - c0;
    const size_t steady = live_bytes(be);
    CHECK_OK(work(be, got));
    CHECK(live_bytes(be) == steady, "a second clean job changed the device bytes: %zu -> %zu", steady,
          live_bytes(be));
    lcsm_backend_destroy(be);
    CHECK(lcsm__dev_alloc_live() == dbase, "a clean run leaks %ld device buffers", lcsm__dev_alloc_live() - dbase);
    CHECK(lcsm__alloc_live() == base, "a clean run leaks %ld host blocks", lcsm__alloc_live() - base);

    int errors = 0, survived = 0, in_backend = 0;
    for (long n = 0; n < total; n++) {
        be = NULL;
        lcsm__dev_alloc_inject(n);
        st = open_backend(&be);
        if (st == LCSM_OK)
            st = work(be, got);
        else
            in_backend++;
        int hit = lcsm__dev_alloc_injected();
        lcsm__dev_alloc_inject(-1);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", lcsm_last_error());
        if (st == LCSM_OK) {
            survived++;
        } else {
            errors++;
            CHECK(hit, "allocation %ld: %s without an injected failure (%s)", n, lcsm_strerror(st), msg);
            CHECK(st == LCSM_ERR_OUT_OF_MEMORY, "allocation %ld: %s, want out of memory (%s)", n, lcsm_strerror(st),
                  msg);
            CHECK(strstr(msg, "clCreateBuffer") != NULL, "allocation %ld: the message does not name the call: '%s'",
                  n, msg);
        }
        if (be) {
            /* The backend goes on: the whole job again, clean, same tokens. */
            memset(got, 0xff, sizeof got);
            st = work(be, got);
            CHECK(st == LCSM_OK, "allocation %ld failed (%s); the job after it: %s (%s)", n, msg, lcsm_strerror(st),
                  lcsm_last_error());
            CHECK(st != LCSM_OK || !memcmp(got, ref, sizeof ref),
                  "allocation %ld failed; the job after it samples other tokens", n);
            CHECK(live_bytes(be) == steady, "allocation %ld failed (%s): %zu device bytes held, a clean run %zu", n,
                  msg, live_bytes(be), steady);
            lcsm_backend_destroy(be);
        }
        CHECK(lcsm__dev_alloc_live() == dbase, "allocation %ld failed (%s): %ld device buffers leaked", n, msg,
              lcsm__dev_alloc_live() - dbase);
        CHECK(lcsm__alloc_live() == base, "allocation %ld failed (%s): %ld host blocks leaked", n, msg,
              lcsm__alloc_live() - base);
    }
    printf("%s: %ld device allocations per job; %d runs ended in a clean error (%d in backend creation), "
           "%d recovered\n",
           g_name, total, errors, in_backend, survived);
    return 0;
}

static int run_named(const char *name)
{
    if (!strcmp(name, "cpu")) {
        printf("backend cpu: no device buffers (host memory: test_alloc_fail)\n");
        return 77;
    }
    g_name = name;
    return run_backend();
}

int main(void) { return tu_for_backends("test_dev_alloc_fail", g_dir, sizeof g_dir, run_named); }
