/*
 * lcsm against the independent PyTorch reference (tests/reference/hyena_ref.py):
 * usage test_reference DIR, where DIR holds config.json, model.safetensors and
 * expected.safetensors (tokens [B][T], logits [B][T][V]) written by the script.
 *
 * Checks the parallel forward, and each decoding algorithm with teacher forcing
 * (from position 0, and after a prompt of T/3 tokens), at every position, to
 * 1e-4 relative (max abs difference / max abs logit); a model with modal
 * layers again loaded with modal_tiled, so the tiled path of its filters is
 * checked too. The reference computes in
 * fp32 with FFTs of size 2T; lcsm uses other sizes and orders, so agreement is
 * ~1e-6, not bitwise.
 */
#include "safetensors.h"
#include "testutil.h"

#define TOL 1e-4

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_reference DIR\n");
        return 2;
    }
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/expected.safetensors", argv[1]);
    st_file ex;
    if (st_open(path, &ex, err, sizeof err) != LCSM_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const st_tensor *tt = st_find(&ex, "tokens"), *lt = st_find(&ex, "logits");
    if (!tt || !lt || tt->ndim != 2 || lt->ndim != 3) {
        fprintf(stderr, "%s: needs tokens [B][T] and logits [B][T][V]\n", path);
        return 1;
    }
    const int B = (int)tt->shape[0], T = (int)tt->shape[1], V = (int)lt->shape[2];
    int32_t *tok = malloc(sizeof *tok * tt->numel);
    float *want = malloc(sizeof *want * lt->numel), *got = malloc(sizeof *got * lt->numel);
    CHECK_OK(st_read_i32(&ex, tt, tok, err, sizeof err));
    CHECK_OK(st_read_f32(&ex, lt, want, err, sizeof err));
    st_close(&ex);

    const char *backends[8];
    int nb = tu_backends(backends);
    for (int run = 0; run < 2 * nb; run++) {
        const int bi = run / 2, tiled = run % 2;
        int skip;
        lcsm_backend *be = tu_backend_open(backends[bi], 0, &skip);
        if (skip && nb == 1)
            return 77;
        if (!be)
            continue;
        lcsm_model_options mo;
        lcsm_model_options_default(&mo);
        mo.modal_tiled = tiled;
        lcsm_model *m = NULL;
        CHECK_OK(lcsm_model_load(be, argv[1], &mo, &m));
        if (!m) {
            lcsm_backend_destroy(be);
            continue;
        }
        if (tiled) { /* only if the model has modal layers (more tiled convolutions now) */
            lcsm_model *plain = NULL;
            lcsm_model_info a, b;
            CHECK_OK(lcsm_model_load(be, argv[1], NULL, &plain));
            int same = plain && lcsm_model_get_info(plain, &a) == LCSM_OK && lcsm_model_get_info(m, &b) == LCSM_OK &&
                       a.n_tiled_convs == b.n_tiled_convs;
            lcsm_model_destroy(plain);
            if (same) {
                lcsm_model_destroy(m);
                lcsm_backend_destroy(be);
                continue;
            }
            printf("%s: modal layers tiled (modal_tiled)\n", backends[bi]);
        }
        lcsm_model_info info;
        CHECK_OK(lcsm_model_get_info(m, &info));
        CHECK(info.n_vocab == V, "n_vocab %d, expected logits have %d", info.n_vocab, V);
        CHECK_OK(lcsm_model_forward(m, tok, B, T, got));
        double e = tu_rel_err_f(got, want, (size_t)B * T * V);
        CHECK(e <= TOL, "%s forward: rel err %.3g", backends[bi], e);
        printf("%s forward B=%d T=%d: max rel err %.2e\n", backends[bi], B, T, e);

        const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER, LCSM_ALGO_MODAL};
        for (int a = 0; a < 4; a++)
            for (int P = 0; P <= T / 3; P += T / 3 > 0 ? T / 3 : 1) {
                lcsm_session_options so;
                lcsm_session_options_default(&so);
                so.batch = B;
                so.max_len = T;
                so.algo = algos[a];
                lcsm_session *s = NULL;
                CHECK_OK(lcsm_session_create(m, &so, &s));
                if (!s)
                    continue;
                int32_t *col = malloc(sizeof *col * B), *prompt = malloc(sizeof *prompt * (size_t)B * (P ? P : 1));
                float *lg = malloc(sizeof *lg * (size_t)B * V);
                double worst = 0;
                if (P) {
                    for (int b = 0; b < B; b++)
                        memcpy(prompt + (size_t)b * P, tok + (size_t)b * T, sizeof *prompt * P);
                    CHECK_OK(lcsm_session_prefill(s, prompt, P, lg));
                    for (int b = 0; b < B; b++) {
                        double eb = tu_rel_err_f(lg + (size_t)b * V, want + ((size_t)b * T + P - 1) * V, V);
                        worst = eb > worst ? eb : worst;
                    }
                }
                for (int t = P; t < T; t++) {
                    for (int b = 0; b < B; b++)
                        col[b] = tok[(size_t)b * T + t];
                    CHECK_OK(lcsm_session_step(s, col, lg));
                    for (int b = 0; b < B; b++) {
                        double eb = tu_rel_err_f(lg + (size_t)b * V, want + ((size_t)b * T + t) * V, V);
                        worst = eb > worst ? eb : worst;
                    }
                }
                CHECK(worst <= TOL, "%s %s prompt %d: rel err %.3g", backends[bi], lcsm_algo_name(algos[a]), P, worst);
                printf("%s %-5s prompt %3d, %d steps: max rel err %.2e\n", backends[bi], lcsm_algo_name(algos[a]), P,
                       T - P, worst);
                free(col);
                free(prompt);
                free(lg);
                lcsm_session_destroy(s);
            }
        lcsm_model_destroy(m);
        lcsm_backend_destroy(be);
    }
    free(tok);
    free(want);
    free(got);
    return tu_finish("test_reference");
}
