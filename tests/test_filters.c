/*
 * The long filters as the engine makes them: time-major, in ranges of
 * positions taken by threads (8192 per task), and deferred (defer_spectra 2).
 *
 * 1. A family's filter made in uneven ranges equals the same filter made in
 *    one call, bitwise (the arch table's contract: any range gives the same taps).
 * 2. Models whose filters span two tasks (l_max 8300 > 8192): the forward of a
 *    HyenaDNA model equals the plain-C double reference at every position, and
 *    a StripedHyena model with its modal (complex) filters tiled gives the same
 *    logits from the forward (the tiled filters; the second task starts at
 *    p^8192) as from a modal session's recurrence, which never materialises them.
 * 3. defer_spectra 2 makes no filters at load, the first forward or session
 *    makes them, and the logits equal those of a model made at load, bitwise;
 *    a first session that runs out of memory leaves the model as it was (the
 *    next one makes them); defer_spectra 3 is refused.
 */
#include "ref_model.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define T 8300 /* > one task of 8192 positions */
#define TOL 1e-4
/* HyenaDNA's forward against the double reference over all 8300 positions:
 * fp32 FFT convolutions of an untrained model's long filters cancel in long
 * sums; over 170 seeds the worst was 2.8e-4 (most near 1e-5). A range of taps
 * made wrong gives errors of order 1 (ranges are also checked bitwise). */
#define TOL_LONG 2e-3

static const char *const hyenadna_cfg = "{\"model_type\": \"hyenadna\", \"d_model\": 8, \"n_layer\": 1, "
                                        "\"d_inner\": 16, \"max_seq_len\": 8300, \"filter_order\": 8}";
static const char *const longconv_cfg = "{\"model_type\": \"longconv\", \"d_model\": 6, \"n_layer\": 1, \"d_inner\": 12, "
                                        "\"max_seq_len\": 8300, \"layer\": {\"_name_\": \"h3-conv\", \"lam\": 0.01, "
                                        "\"use_ma_smoothing\": true, \"ma_window_len\": 5}}";
static const char *const striped_cfg = "{\"model_type\": \"stripedhyena\", \"d_model\": 8, \"n_layer\": 1, "
                                       "\"max_seq_len\": 8300, \"num_attention_heads\": 2, \"state_size\": 4}";

static lcsm_model *make(lcsm_backend *be, const char *cfg, uint64_t seed, int defer, int modal_tiled)
{
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    mo.defer_spectra = defer;
    mo.modal_tiled = modal_tiled;
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_create_random_config(be, cfg, seed, &mo, &m));
    return m;
}

/* 1: ranges [0, a), [a, b), [b, L) against [0, L), for stage `i` of layer 0 */
static void check_ranges(const lcsm_model *m, const char *name, int i)
{
    const int D = m->hp.d_model, L = m->hp.l_max, cuts[] = {0, 1, 4097, L};
    float *whole = malloc(sizeof *whole * (size_t)L * D), *parts = malloc(sizeof *parts * (size_t)L * D);
    float *db0 = malloc(sizeof *db0 * D), *db1 = malloc(sizeof *db1 * D);
    CHECK(whole && parts && db0 && db1, "%s: buffers", name);
    if (whole && parts && db0 && db1) {
        CHECK_OK(m->hp.arch->filter(m->host, &m->opt, 0, i, 0, L, whole, (size_t)D, db0));
        for (int c = 0; c + 1 < 4; c++)
            CHECK_OK(m->hp.arch->filter(m->host, &m->opt, 0, i, cuts[c], cuts[c + 1], parts + (size_t)cuts[c] * D,
                                        (size_t)D, c == 0 ? db1 : NULL));
        CHECK(!memcmp(whole, parts, sizeof *whole * (size_t)L * D), "%s stage %d: taps made in ranges differ", name, i);
        CHECK(!memcmp(db0, db1, sizeof *db0 * D), "%s stage %d: skip terms differ", name, i);
    }
    free(whole), free(parts), free(db0), free(db1);
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double scale = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        scale = fabs((double)b[i]) > scale ? fabs((double)b[i]) : scale;
        err = fabs((double)a[i] - b[i]) > err ? fabs((double)a[i] - b[i]) : err;
    }
    return err / (scale > 0 ? scale : 1);
}

/* Teacher-forced logits of a session of `algo` at every position of tok [T]. */
static void session_logits(lcsm_model *m, lcsm_algo algo, const int32_t *tok, int V, float *out)
{
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.max_len = T;
    so.algo = algo;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(m, &so, &s));
    if (!s)
        return;
    CHECK_OK(lcsm_session_prefill(s, tok, 1, out));
    for (int t = 1; t < T; t++)
        CHECK_OK(lcsm_session_step(s, tok + t, out + (size_t)t * V));
    lcsm_session_destroy(s);
}

int main(void)
{
    uint64_t rng = tu_seed();
    lcsm_backend *be = tu_cpu_backend(NULL);
    if (!be)
        return 1;
    int32_t *tok = malloc(sizeof *tok * T);
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)(tu_next(&rng) % 4 + 7);

    /* 1 and 2: HyenaDNA, then the long convolutions (ranges only) */
    lcsm_model *m = make(be, hyenadna_cfg, tu_next(&rng), 0, 0);
    if (m) {
        check_ranges(m, "hyenadna", 0);
        const int V = m->hp.n_vocab;
        float *got = malloc(sizeof *got * (size_t)T * V), *want = malloc(sizeof *want * (size_t)T * V);
        CHECK_OK(lcsm_model_forward(m, tok, 1, T, got));
        CHECK(ref_model_logits(m, tok, 1, T, LCSM_WEIGHTS_F32, want), "hyenadna: reference");
        const double e = max_rel(got, want, (size_t)T * V);
        CHECK(e <= TOL_LONG, "hyenadna l_max %d: forward against the reference: rel err %.3g", T, e);
        printf("  hyenadna  forward vs double reference, %d positions: %.2e\n", T, e);
        free(got), free(want);
        lcsm_model_destroy(m);
    }
    if ((m = make(be, longconv_cfg, tu_next(&rng), 0, 0))) {
        check_ranges(m, "longconv", 0);
        check_ranges(m, "longconv", 1);
        lcsm_model_destroy(m);
    }
    if ((m = make(be, striped_cfg, tu_next(&rng), 0, 1))) {
        const int V = m->hp.n_vocab;
        float *tiled = malloc(sizeof *tiled * (size_t)T * V), *modal = malloc(sizeof *modal * (size_t)T * V);
        CHECK_OK(lcsm_model_forward(m, tok, 1, T, tiled));
        session_logits(m, LCSM_ALGO_MODAL, tok, V, modal);
        const double e = max_rel(tiled, modal, (size_t)T * V);
        CHECK(e <= TOL, "stripedhyena: forward on tiled modal filters against the recurrence: rel err %.3g", e);
        printf("  stripedhyena forward (tiled filters) vs modal recurrence, %d positions: %.2e\n", T, e);
        free(tiled), free(modal);
        lcsm_model_destroy(m);
    }

    /* 3: deferred filters */
    const uint64_t seed = tu_next(&rng);
    lcsm_model *now = make(be, hyenadna_cfg, seed, 0, 0), *later = make(be, hyenadna_cfg, seed, 2, 0);
    if (now && later) {
        lcsm_model_info a, b;
        CHECK_OK(lcsm_model_get_info(now, &a));
        CHECK_OK(lcsm_model_get_info(later, &b));
        CHECK(later->filters == NULL && b.weight_bytes < a.weight_bytes,
              "defer_spectra 2: filters made at load (%zu against %zu bytes)", b.weight_bytes, a.weight_bytes);
        const int V = now->hp.n_vocab, n = 300;
        float *x = malloc(sizeof *x * (size_t)n * V), *y = malloc(sizeof *y * (size_t)n * V);
        CHECK_OK(lcsm_model_forward(now, tok, 1, n, x));
        CHECK_OK(lcsm_model_forward(later, tok, 1, n, y));
        CHECK(later->filters != NULL, "defer_spectra 2: the forward made no filters");
        CHECK(!memcmp(x, y, sizeof *x * (size_t)n * V), "defer_spectra 2: forward logits differ");
        free(x), free(y);
    }
    lcsm_model_destroy(now);
    lcsm_model_destroy(later);
    if ((later = make(be, hyenadna_cfg, seed, 2, 0))) { /* a session first; out of memory there, then not */
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.max_len = 64;
        lcsm_session *s = NULL;
        int n = 0, failed_without_filters = 0; /* the n-th allocation fails, for every n until none does */
        for (lcsm_status st;; n++) {
            lcsm__alloc_inject(n);
            st = lcsm_session_create(later, &so, &s);
            const int injected = lcsm__alloc_injected();
            lcsm__alloc_inject(-1);
            if (!injected)
                break;
            CHECK(st == LCSM_ERR_OUT_OF_MEMORY && s == NULL, "defer_spectra 2: allocation %d: %s, session %p", n,
                  lcsm_strerror(st), (void *)s);
            failed_without_filters += later->filters == NULL;
        }
        CHECK(s != NULL && n > 0 && failed_without_filters > 0,
              "defer_spectra 2: no session after %d failures (%d before the filters)", n, failed_without_filters);
        CHECK(later->filters != NULL, "defer_spectra 2: the session made no filters");
        lcsm_session_destroy(s);
        lcsm_model_destroy(later);
    }
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    mo.defer_spectra = 3;
    lcsm_model *bad = NULL;
    CHECK_STATUS(lcsm_model_create_random_config(be, hyenadna_cfg, 1, &mo, &bad), LCSM_ERR_INVALID_ARGUMENT);
    CHECK(bad == NULL, "defer_spectra 3: a model");
    free(tok);
    lcsm_backend_destroy(be);
    return tu_finish("test_filters");
}
