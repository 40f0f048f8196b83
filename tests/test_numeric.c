/*
 * Arithmetic that cannot be done in f32 is an error, never silent NaN logits:
 *   - options and config values that make it undefined are refused at load
 *     (filter_shift NaN, infinite or huge; a norm eps of 0);
 *   - finite weights too large for f32 (every bias 3e38: two layers' sums
 *     overflow) give LCSM_ERR_NUMERIC from a forward, a prefill, a step and a
 *     generate, with the position in the message; the session is failed then
 *     (LCSM_ERR_STATE) until lcsm_session_reset.
 * For every backend. (The device sampler's mark of a non-finite row, id -1, is
 * checked by test_sample.)
 */
#include "safetensors.h"
#include "testutil.h"

#include <math.h>

/* The model in dir with every bias set to v (rewritten in place). */
static void fill_biases(const char *dir, float v)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file f;
    CHECK_OK(st_open(path, &f, err, sizeof err));
    st_out *out = calloc((size_t)f.n, sizeof *out);
    float **data = calloc((size_t)f.n, sizeof *data);
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        data[i] = malloc(sizeof(float) * (t->numel ? t->numel : 1));
        CHECK_OK(st_read_f32(&f, t, data[i], err, sizeof err));
        const size_t len = strlen(t->name);
        if (len > 5 && !strcmp(t->name + len - 5, ".bias"))
            for (size_t k = 0; k < t->numel; k++)
                data[i][k] = v;
        out[i] = (st_out){t->name, t->ndim, t->shape, data[i], t->dtype};
    }
    CHECK_OK(st_save(path, out, f.n, err, sizeof err));
    for (int i = 0; i < f.n; i++)
        free(data[i]);
    free(data);
    free(out);
    st_close(&f);
}

/* st and the message of the call that returned it (read after the call). */
static void expect_numeric(lcsm_status st, const char *what, const char *msg)
{
    CHECK(st == LCSM_ERR_NUMERIC, "%s: %s, want %s (%s)", what, lcsm_strerror(st), lcsm_strerror(LCSM_ERR_NUMERIC),
          msg);
    CHECK(strstr(msg, "position") != NULL, "%s: the message names no position: %s", what, msg);
}

static void check_overflow(lcsm_backend *be, const char *dir, const char *tag)
{
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_load(be, dir, NULL, &m));
    if (!m)
        return;
    lcsm_model_info info;
    lcsm_model_get_info(m, &info);
    const int V = info.n_vocab, T = 9;
    int32_t tok[2 * 9];
    for (int i = 0; i < 2 * T; i++)
        tok[i] = 7 + i % 4;
    float *lg = malloc(sizeof *lg * 2 * T * V);
    lcsm_status st = lcsm_model_forward(m, tok, 2, T, lg);
    expect_numeric(st, tag, lcsm_model_last_error(m));

    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = 2;
    so.max_len = 64;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(m, &so, &s));
    if (s) {
        st = lcsm_session_prefill(s, tok, T, lg);
        expect_numeric(st, "prefill", lcsm_session_last_error(s));
        CHECK_STATUS(lcsm_session_step(s, tok, lg), LCSM_ERR_STATE);
        CHECK_OK(lcsm_session_reset(s));
        CHECK_OK(lcsm_session_prefill(s, tok, T, NULL)); /* no logits asked: nothing to check yet */
        st = lcsm_session_step(s, tok, lg);
        expect_numeric(st, "step", lcsm_session_last_error(s));
        CHECK_OK(lcsm_session_reset(s));
        int32_t out[2 * 8];
        st = lcsm_generate(s, tok, 1, 8, out);
        expect_numeric(st, "generate", lcsm_session_last_error(s));
        CHECK_STATUS(lcsm_generate(s, tok, 1, 8, out), LCSM_ERR_STATE);
        CHECK_OK(lcsm_session_reset(s));
        lcsm_session_destroy(s);
    }
    free(lg);
    lcsm_model_destroy(m);
}

static void check_refused_options(lcsm_backend *be)
{
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.d_inner = 32;
    cfg.l_max = 64;
    cfg.filter_order = 8;
    const float shifts[] = {NAN, INFINITY, -INFINITY, -3.4e38f, 2e6f};
    for (size_t i = 0; i < sizeof shifts / sizeof shifts[0]; i++) {
        lcsm_model_options mo;
        lcsm_model_options_default(&mo);
        mo.filter_shift = shifts[i];
        lcsm_model *m = NULL;
        CHECK_STATUS(lcsm_model_create_random(be, &cfg, 1, &mo, &m), LCSM_ERR_INVALID_ARGUMENT);
        CHECK(!m && strstr(lcsm_last_error(), "filter_shift"), "filter_shift %g: %s", (double)shifts[i],
              lcsm_last_error());
    }
    cfg.d_model = 1;
    cfg.d_inner = 4;
    cfg.layer_norm_epsilon = 0.0f; /* LayerNorm of one channel: 0 / sqrt(0 + 0) */
    lcsm_model *m = NULL;
    CHECK_STATUS(lcsm_model_create_random(be, &cfg, 1, NULL, &m), LCSM_ERR_INVALID_ARGUMENT);
    CHECK(!m && strstr(lcsm_last_error(), "eps"), "eps 0: %s", lcsm_last_error());
}

int main(void)
{
    uint64_t rng = tu_seed();
    const char *backends[8];
    int nb = tu_backends(backends);
    char dir[] = "/tmp/lcsm_numeric_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    for (int bi = 0; bi < nb; bi++) {
        int skip;
        lcsm_backend *be = tu_backend_open(backends[bi], 0, &skip);
        if (skip && nb == 1)
            return 77;
        if (!be)
            continue;
        check_refused_options(be);
        const struct {
            const char *config, *tag;
            lcsm_weight_dtype wd;
        } models[] = {
            {"{\"model_type\": \"hyenadna\", \"d_model\": 16, \"n_layer\": 2, \"d_inner\": 32, \"max_seq_len\": 64, "
             "\"filter_order\": 8}", "hyenadna", LCSM_WEIGHTS_F32},
            {"{\"model_type\": \"evo2\", \"d_model\": 16, \"n_layer\": 4, \"max_seq_len\": 64, "
             "\"num_attention_heads\": 2, \"state_size\": 4, \"hcs_filter_groups\": 4, \"hcm_filter_groups\": 4}",
             "evo2 with attention, bf16", LCSM_WEIGHTS_BF16},
        };
        for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
            lcsm_model_options mo;
            lcsm_model_options_default(&mo);
            mo.weight_dtype = models[k].wd;
            lcsm_model *m = NULL;
            CHECK_OK(lcsm_model_create_random_config(be, models[k].config, tu_next(&rng), &mo, &m));
            CHECK_OK(lcsm_model_save(m, dir));
            lcsm_model_destroy(m);
            fill_biases(dir, 3e38f);
            check_overflow(be, dir, models[k].tag);
        }
        printf("%s: refused options, overflowing models report LCSM_ERR_NUMERIC\n", backends[bi]);
        lcsm_backend_destroy(be);
    }
    tu_rm_rf(dir);
    return tu_finish("test_numeric");
}
