/*
 * Every family, every backend, every algorithm against the plain-C double
 * reference of the generic block (ref_model.c): the parallel forward and
 * teacher-forced decoding at every position, batch 1 and 3, with and without a
 * prompt, lengths that are not powers of two, f32 and half-precision weights
 * (the reference computes with the same rounded values: storage is the only
 * change), lagged flash (lag 5 and 100: a band past the OpenCL step kernel's own). Then: a half-precision model saved and loaded as f32 gives the same
 * logits, --weights auto keeps a checkpoint's type, and a layer kind the
 * backend lacks is refused at load, naming the op.
 *
 * Attention layers' K and V caches are f32, f16 or bf16; the reference holds
 * them as rounded as the session does.
 *
 * Bound: 1e-4 relative (max abs difference / max abs logit); fp32 against a
 * float64 direct-sum reference agrees to ~1e-6. Sessions with half-precision
 * caches: 5e-3. A K or V value that falls next to a midpoint of the half grid
 * may round to the other neighbour than the reference's (its f32 sums run in
 * another order), a change of 2^-8 relative for bf16; such a flip moved the
 * logits by up to 1.8e-3 in 50 seeds (below 1e-5 without one).
 */
#include "ref_model.h"
#include "testutil.h"

#define TOL 1e-4
#define TOL_HALF_KV 5e-3


/* Worst relative error over rows of V logits. */
static double rows_err(const float *got, const float *want, int rows, int V)
{
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double e = tu_rel_err_f(got + (size_t)r * V, want + (size_t)r * V, (size_t)V);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* Teacher-forced decoding of tokens [B][T] after a prompt of P against ref. */
static double decode_err(lcsm_model *m, lcsm_algo algo, lcsm_weight_dtype kv, const int32_t *tok, int B, int T, int P,
                         const float *ref, int V)
{
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = B;
    so.max_len = T;
    so.algo = algo;
    so.kv_dtype = kv;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(m, &so, &s));
    if (!s)
        return INFINITY;
    float *lg = malloc(sizeof *lg * (size_t)B * V), *want = malloc(sizeof *want * (size_t)B * V);
    int32_t *buf = malloc(sizeof *buf * (size_t)B * (P ? P : 1));
    double worst = 0;
    for (int t = P ? P - 1 : 0; t < T; t++) {
        lcsm_status st;
        if (P && t == P - 1) {
            for (int b = 0; b < B; b++)
                memcpy(buf + (size_t)b * P, tok + (size_t)b * T, sizeof *buf * P);
            st = lcsm_session_prefill(s, buf, P, lg);
        } else {
            for (int b = 0; b < B; b++)
                buf[b] = tok[(size_t)b * T + t];
            st = lcsm_session_step(s, buf, lg);
        }
        CHECK(st == LCSM_OK, "%s t=%d: %s", lcsm_algo_name(algo), t, lcsm_session_last_error(s));
        if (st != LCSM_OK) {
            worst = INFINITY;
            break;
        }
        for (int b = 0; b < B; b++)
            memcpy(want + (size_t)b * V, ref + ((size_t)b * T + t) * V, sizeof *want * V);
        double e = rows_err(lg, want, B, V);
        worst = e > worst ? e : worst;
    }
    free(lg), free(want), free(buf);
    lcsm_session_destroy(s);
    return worst;
}

/* kv: the sessions' KV caches (forward's are f32; the reference holds K and V
 * as each does, so the caches' rounding is no error). */
static void check_model(lcsm_model *m, const char *tag, lcsm_weight_dtype kv, int half_weights, uint64_t *rng)
{
    lcsm_model_info info;
    CHECK_OK(lcsm_model_get_info(m, &info));
    const int V = info.n_vocab, T = 150;
    const int shapes[][2] = {{1, 0}, {3, 7}}; /* (batch, prompt) */
    int32_t *tok = malloc(sizeof *tok * 3 * T);
    float *ref = malloc(sizeof *ref * (size_t)3 * T * V), *got = malloc(sizeof *got * (size_t)3 * T * V);
    for (int i = 0; i < 3 * T; i++)
        tok[i] = (int32_t)(tu_next(rng) % (uint64_t)info.config.vocab_size);
    CHECK(ref_model_logits(m, tok, 3, T, LCSM_WEIGHTS_F32, ref), "%s: reference failed", tag);
    CHECK_OK(lcsm_model_forward(m, tok, 3, T, got));
    double e = rows_err(got, ref, 3 * T, V);
    CHECK(e <= TOL, "%s forward: rel err %.3g", tag, e);
    printf("  %-36s forward        B=3 T=%d: %.2e\n", tag, T, e);
    int half_kv = 0; /* attention layers with f16 or bf16 caches */
    for (int l = 0; l < info.config.n_layer; l++) {
        lcsm_layer_info li;
        CHECK_OK(lcsm_model_get_layer(m, l, &li));
        half_kv |= !strcmp(li.mixer, "attention") && (kv == LCSM_WEIGHTS_F16 || kv == LCSM_WEIGHTS_BF16 ||
                                                      (kv == LCSM_WEIGHTS_AUTO && half_weights));
    }
    if (kv != LCSM_WEIGHTS_F32) /* attention layers' sessions hold K and V otherwise */
        CHECK(ref_model_logits(m, tok, 3, T, kv, ref), "%s: reference failed", tag);
    const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER, LCSM_ALGO_MODAL, LCSM_ALGO_SMOOTH};
    for (int a = 0; a < 5; a++)
        for (int k = 0; k < 2; k++) {
            const int B = shapes[k][0], P = shapes[k][1];
            /* batch 1 decodes sequence 0 of the batch of 3 (the first T rows of ref) */
            e = decode_err(m, algos[a], kv, tok, B, T, P, ref, V);
            CHECK(e <= (half_kv ? TOL_HALF_KV : TOL), "%s %s B=%d P=%d: rel err %.3g", tag, lcsm_algo_name(algos[a]), B, P, e);
            printf("  %-36s %-5s B=%d P=%d T=%d: %.2e\n", tag, lcsm_algo_name(algos[a]), B, P, T, e);
        }
    free(tok), free(ref), free(got);
}

/* The forward logits of two models on the same tokens. */
static double models_err(lcsm_model *a, lcsm_model *b, uint64_t *rng)
{
    lcsm_model_info info;
    lcsm_model_get_info(a, &info);
    const int B = 2, T = 77, V = info.n_vocab;
    int32_t tok[2 * 77];
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)(tu_next(rng) % (uint64_t)info.config.vocab_size);
    float *la = malloc(sizeof *la * (size_t)B * T * V), *lb = malloc(sizeof *lb * (size_t)B * T * V);
    CHECK_OK(lcsm_model_forward(a, tok, B, T, la));
    CHECK_OK(lcsm_model_forward(b, tok, B, T, lb));
    double e = rows_err(la, lb, B * T, V);
    free(la), free(lb);
    return e;
}

/* A half-precision model and the f32 model holding its rounded weights agree;
 * --weights auto keeps the checkpoint's type. */
static void check_storage(lcsm_backend *be, const tu_family *f, lcsm_weight_dtype wd, uint64_t *rng, const char *dir)
{
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    mo.weight_dtype = wd;
    lcsm_model *half = NULL, *back = NULL, *autod = NULL;
    CHECK_OK(lcsm_model_create_random_config(be, f->config, tu_next(rng), &mo, &half));
    if (!half)
        return;
    CHECK_OK(lcsm_model_save(half, dir));
    lcsm_model_options_default(&mo); /* f32 */
    CHECK_OK(lcsm_model_load(be, dir, &mo, &back));
    mo.weight_dtype = LCSM_WEIGHTS_AUTO;
    CHECK_OK(lcsm_model_load(be, dir, &mo, &autod));
    if (back && autod) {
        double e = models_err(half, back, rng);
        CHECK(e <= TOL, "%s %s vs f32 of the same values: rel err %.3g", f->name, lcsm_weight_dtype_name(wd), e);
        printf("  %-36s %s model = f32 model of its values: %.2e\n", f->name, lcsm_weight_dtype_name(wd), e);
        lcsm_model_info hi, bi, ai;
        lcsm_model_get_info(half, &hi);
        lcsm_model_get_info(back, &bi);
        lcsm_model_get_info(autod, &ai);
        CHECK(hi.dense_bytes == hi.dense_bytes_f16 && bi.dense_bytes == bi.dense_bytes_f32 &&
                  ai.dense_bytes == hi.dense_bytes && hi.dense_bytes < bi.dense_bytes,
              "dense bytes: %s %zu, f32 load %zu, auto load %zu", lcsm_weight_dtype_name(wd), hi.dense_bytes,
              bi.dense_bytes, ai.dense_bytes);
        e = models_err(half, autod, rng);
        CHECK(e <= TOL, "%s auto-loaded %s: rel err %.3g", f->name, lcsm_weight_dtype_name(wd), e);
    }
    lcsm_model_destroy(half);
    lcsm_model_destroy(back);
    lcsm_model_destroy(autod);
}

/* A backend that lacks one op (a copy of the table with supports() saying no)
 * refuses the model at load with the op's name; the backend stays usable. */
static lcsm_op g_missing;
static int supports_but(const lcsm_backend *be, lcsm_op op, int v)
{
    (void)be;
    (void)v;
    return op != g_missing;
}

static void check_unsupported(lcsm_backend *be)
{
    const lcsm_backend_ops *orig = be->ops;
    lcsm_backend_ops ops = *orig;
    ops.supports = supports_but;
    const struct {
        lcsm_op op;
        const char *needle;
        int family; /* of tu_families */
    } cases[] = {{LCSM_OP_HYENA, "Hyena step", 0},        {LCSM_OP_NORM, "layernorm", 0},
                 {LCSM_OP_ACT, "gelu", 0},                {LCSM_OP_SHORT_CONV, "short conv", 0},
                 {LCSM_OP_MODAL, "modal recurrence", 2},  {LCSM_OP_FIR, "FIR filter of 7 taps", 3},
                 {LCSM_OP_ATTN, "attention with f32", 4}, {LCSM_OP_ATTN_HEAD, "heads of width 8", 4},
                 {LCSM_OP_LINATTN, "linear attention of 6 features (needed by layer 1)", 6}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        g_missing = cases[i].op;
        be->ops = &ops;
        lcsm_model *m = NULL;
        lcsm_status st = lcsm_model_create_random_config(be, tu_families[cases[i].family].config, 1, NULL, &m);
        be->ops = orig;
        CHECK(st == LCSM_ERR_UNSUPPORTED && !m, "missing op %d: status %s", (int)cases[i].op, lcsm_strerror(st));
        CHECK(strstr(lcsm_last_error(), cases[i].needle) != NULL, "message '%s' does not name '%s'",
              lcsm_last_error(), cases[i].needle);
        lcsm_model_destroy(m);
    }
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_create_random_config(be, tu_families[0].config, 1, NULL, &m));
    lcsm_model_destroy(m);
}

int main(void)
{
    uint64_t rng = tu_seed();
    const char *backends[8];
    int nb = tu_backends(backends);
    char dir[] = "/tmp/lcsm_generic_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    for (int bi = 0; bi < nb; bi++) {
        const int thresholds[] = {4, 0}; /* FFT tiles from U = 4, and the backend's choice */
        for (int ti = 0; ti < 2; ti++) {
            int skip;
            lcsm_backend *be = tu_backend_open(backends[bi], thresholds[ti], &skip);
            if (skip && nb == 1)
                return 77;
            if (!be)
                break;
            printf("backend %s: %s\n", backends[bi], lcsm_backend_description(be));
            for (size_t f = 0; f < TU_N_FAMILIES; f++) {
                /* f32, bf16, f16; modal filters tiled (for the others: the same model); lagged flash with
                 * lag 5 (tiles from 5 inputs spread in row parts), and 100 at the backend's threshold */
                const lcsm_weight_dtype dts[] = {LCSM_WEIGHTS_F32, LCSM_WEIGHTS_BF16, LCSM_WEIGHTS_F16,
                                                 LCSM_WEIGHTS_F32, LCSM_WEIGHTS_F32};
                for (int d = 0; d < (ti == 0 ? 5 : 2); d++) {
                    const int v = ti == 0 ? d : d * 4; /* the backend's threshold: f32, then lag 64 */
                    lcsm_model_options mo;
                    lcsm_model_options_default(&mo);
                    mo.weight_dtype = dts[v];
                    mo.modal_tiled = v == 3;
                    mo.lag = v == 4 ? (ti == 0 ? 5 : 100) : 1;
                    lcsm_model *m = NULL;
                    CHECK_OK(lcsm_model_create_random_config(be, tu_families[f].config, tu_next(&rng), &mo, &m));
                    if (!m)
                        continue;
                    /* the caches follow the weights; at the backend's threshold f16 ones for f32 weights */
                    const lcsm_weight_dtype kv = ti == 1 ? LCSM_WEIGHTS_F16 : LCSM_WEIGHTS_AUTO;
                    char tag[96], lagged[16] = "";
                    if (mo.lag > 1)
                        snprintf(lagged, sizeof lagged, " lag %d", mo.lag);
                    snprintf(tag, sizeof tag, "%s %s thr=%d %s%s%s%s", backends[bi], tu_families[f].name,
                             lcsm_backend_fft_threshold(be), lcsm_weight_dtype_name(dts[v]),
                             mo.modal_tiled ? " tiled" : "", lagged, ti == 1 ? " kv f16" : "");
                    check_model(m, tag, kv, dts[v] != LCSM_WEIGHTS_F32, &rng);
                    lcsm_model_destroy(m);
                }
                if (ti == 0) {
                    check_storage(be, &tu_families[f], LCSM_WEIGHTS_BF16, &rng, dir);
                    check_storage(be, &tu_families[f], LCSM_WEIGHTS_F16, &rng, dir);
                }
            }
            if (ti == 0)
                check_unsupported(be);
            lcsm_backend_destroy(be);
        }
    }
    tu_rm_rf(dir);
    return tu_finish("test_generic");
}
