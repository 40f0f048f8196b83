/*
 * Exactness of decoding: for every algorithm (flash, lazy, eager), batch 1 and 3,
 * with and without a prompt, the logits of every step equal those of the
 * parallel FFT forward over the same tokens (teacher forcing), at lengths that
 * are not powers of two, with FFT tiles from small sizes on (so the FFT tile
 * path is exercised) and with the backend's measured threshold.
 *
 * Bound: 1e-4 relative (max abs difference / max abs logit). Both sides are
 * fp32; they sum the same terms in different orders (FFTs of different sizes,
 * direct sums), so they differ by a few ulps of the intermediate magnitudes
 * times the depth: we observe ~1e-6.
 */
#include "testutil.h"

#define TOL 1e-4

static void run_case(lcsm_model *m, int n_vocab, lcsm_algo algo, int B, int P, int L, uint64_t *rng,
                     const char *tag)
{
    int32_t *tok = malloc(sizeof *tok * (size_t)B * L);
    float *ref = malloc(sizeof *ref * (size_t)B * L * n_vocab);
    float *got = malloc(sizeof *got * (size_t)B * n_vocab);
    for (int i = 0; i < B * L; i++)
        tok[i] = (int32_t)(tu_next(rng) % 12);
    CHECK_OK(lcsm_model_forward(m, tok, B, L, ref));

    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = B;
    so.max_len = L;
    so.algo = algo;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(m, &so, &s));
    if (!s)
        goto out;
    double worst = 0;
    int start = 0;
    if (P > 0) {
        /* Prompt: [B][P] taken from the token matrix [B][L]. */
        int32_t *prompt = malloc(sizeof *prompt * (size_t)B * P);
        for (int b = 0; b < B; b++)
            memcpy(prompt + (size_t)b * P, tok + (size_t)b * L, sizeof *prompt * P);
        CHECK_OK(lcsm_session_prefill(s, prompt, P, got));
        for (int b = 0; b < B; b++) {
            double e = tu_rel_err_f(got + (size_t)b * n_vocab, ref + ((size_t)b * L + P - 1) * n_vocab, n_vocab);
            worst = e > worst ? e : worst;
        }
        free(prompt);
        start = P;
    }
    int32_t cur[8];
    for (int t = start; t < L; t++) {
        for (int b = 0; b < B; b++)
            cur[b] = tok[(size_t)b * L + t];
        lcsm_status st = lcsm_session_step(s, cur, got);
        if (st != LCSM_OK) {
            CHECK(st == LCSM_OK, "%s: step %d: %s", tag, t, lcsm_session_last_error(s));
            break;
        }
        for (int b = 0; b < B; b++) {
            double e = tu_rel_err_f(got + (size_t)b * n_vocab, ref + ((size_t)b * L + t) * n_vocab, n_vocab);
            worst = e > worst ? e : worst;
        }
    }
    CHECK(worst <= TOL, "%s: worst relative error %.3g", tag, worst);
    printf("  %-44s max rel err %.2e\n", tag, worst);
    /* The session is full now: one more token must be refused, state intact. */
    CHECK_STATUS(lcsm_session_step(s, cur, got), LCSM_ERR_LENGTH);
    CHECK(lcsm_session_position(s) == L, "position %d after the refused step", lcsm_session_position(s));
    lcsm_session_destroy(s);
out:
    free(tok);
    free(ref);
    free(got);
}

int main(void)
{
    uint64_t rng = tu_seed();
    const char *backends[8];
    int nb = tu_backends(backends);
    for (int bi = 0; bi < nb; bi++) {
        /* Threshold 4: FFT tiles from U = 4; 0: the backend's measured choice. */
        const int thresholds[] = {4, 0};
        for (int ti = 0; ti < 2; ti++) {
            int skip;
            lcsm_backend *be = tu_backend_open(backends[bi], thresholds[ti], &skip);
            if (skip && nb == 1)
                return 77;
            if (!be)
                break;
            printf("backend %s: %s\n", backends[bi], lcsm_backend_description(be));
            lcsm_model_config cfg;
            lcsm_model_config_default(&cfg);
            cfg.d_model = 24; /* not a multiple of the FFT column block */
            cfg.n_layer = 2;
            cfg.d_inner = 96;
            cfg.l_max = 300;
            cfg.filter_order = 16;
            lcsm_model *m = NULL;
            CHECK_OK(lcsm_model_create_random(be, &cfg, tu_next(&rng), NULL, &m));
            lcsm_model_info info;
            CHECK_OK(lcsm_model_get_info(m, &info));
            const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER};
            /* (batch, prompt, length): no prompt, a short prompt pushed directly, a
             * long one pushed by FFT; lengths 300 (= l_max), 173, 64. */
            const int cases[][3] = {{1, 0, 300}, {3, 0, 173}, {1, 5, 173}, {3, 40, 300}, {3, 1, 64}};
            for (size_t a = 0; a < 3 && m; a++)
                for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                    char tag[96];
                    snprintf(tag, sizeof tag, "%s thr=%d %s B=%d P=%d L=%d", backends[bi],
                             lcsm_backend_fft_threshold(be), lcsm_algo_name(algos[a]), cases[c][0], cases[c][1],
                             cases[c][2]);
                    run_case(m, info.n_vocab, algos[a], cases[c][0], cases[c][1], cases[c][2], &rng, tag);
                }
            lcsm_model_destroy(m);
            lcsm_backend_destroy(be);
        }
    }
    return tu_finish("test_decode");
}
