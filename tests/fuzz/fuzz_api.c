/*
 * libFuzzer target for sequences of API calls: the input is a program of
 * one-byte opcodes with their operands, run against a small model made once
 * (CPU backend, one thread): session options (batch, max_len, algo, valid or
 * not), prefill / step / step_sample / generate / reset in any order, sampler
 * parameters (NaN, infinities, negative, out-of-range id windows), token ids
 * out of range, tokenizer input and capacities, the parallel forward, the
 * stats and name functions. Up to three sessions live at once, on two models
 * (one with defer_spectra).
 *
 * Every output buffer is allocated at exactly the size the API documents, so
 * ASan reports any write past it. Besides crashes, sanitizer reports and leaks,
 * the harness aborts (a finding) when the API breaks its contract (lcsm.h):
 *  - a status outside the enum, or a failure without a message;
 *  - a refused call that moved the session (position changed);
 *  - positions that do not follow prefill = len, step = +1, reset = 0,
 *    generate = prompt + n_new - 1;
 *  - a sampled id outside the sampler's [token_lo, token_hi);
 *  - logits that are not finite (the weights are finite and small);
 *  - lcsm_tokenize disagreeing with its own definition (A C G T N, either case).
 *
 * Input: bytes read in order; a read past the end gives 0, so every input is a
 * valid program. The seed corpus (corpus_api/) is written by make_corpus_api.py.
 */
#include "lcsm.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SESSIONS 3
#define MAX_OPS 64 /* per input: keeps each unit fast */

static lcsm_backend *g_be;
static lcsm_model *g_models[2];
static lcsm_model_info g_info;
static char g_dir[64];

typedef struct sess {
    lcsm_session *s;
    int model;
    int batch, max_len;
    int lo, hi; /* the sampler's window in effect */
} sess;

typedef struct reader {
    const uint8_t *p;
    size_t n, at;
} reader;

static uint8_t u8(reader *r) { return r->at < r->n ? r->p[r->at++] : 0; }
static int s8(reader *r) { return (int8_t)u8(r); }
static uint32_t u32(reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)u8(r) << (8 * i);
    return v;
}

#define FINDING(...)                                                                                              \
    do {                                                                                                          \
        fprintf(stderr, "fuzz_api: contract broken: " __VA_ARGS__);                                               \
        fputc('\n', stderr);                                                                                      \
        abort();                                                                                                  \
    } while (0)

static void check_status(lcsm_status st, const char *call)
{
    if ((int)st < LCSM_OK || (int)st > LCSM_ERR_NO_BACKEND)
        FINDING("%s returned %d, not a status", call, (int)st);
    if (st != LCSM_OK && !lcsm_last_error()[0])
        FINDING("%s failed (%s) without a message", call, lcsm_strerror(st));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    strcpy(g_dir, "/tmp/lcsm-fuzz-api-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("fuzz_api: mkdtemp");
        abort();
    }
    setenv("LCSM_CACHE_DIR", g_dir, 1);
    setenv("LCSM_FFTW_EFFORT", "estimate", 1);
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = 1;
    bo.fft_threshold = 8; /* FFT tiles from size 8: both tile kinds run at l_max 64 */
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 8;
    cfg.d_inner = 16;
    cfg.l_max = 64;
    cfg.emb_dim = 3;
    cfg.filter_order = 4;
    cfg.num_inner_mlps = 1;
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    if (lcsm_backend_create("cpu", &bo, &g_be) != LCSM_OK ||
        lcsm_model_create_random(g_be, &cfg, 7, &mo, &g_models[0]) != LCSM_OK)
        goto fail;
    mo.defer_spectra = 1;
    if (lcsm_model_create_random(g_be, &cfg, 8, &mo, &g_models[1]) != LCSM_OK ||
        lcsm_model_get_info(g_models[0], &g_info) != LCSM_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "fuzz_api: setup failed: %s\n", lcsm_last_error());
    abort();
}

/* A token id: mostly valid, sometimes just outside or far outside. */
static int32_t token(reader *r)
{
    uint8_t b = u8(r);
    if (b < 200)
        return b % g_info.n_vocab;
    const int32_t odd[] = {-1, g_info.n_vocab, g_info.n_vocab + 1, INT32_MAX, INT32_MIN, -100};
    return odd[b % 6];
}

static int32_t *tokens(reader *r, size_t n)
{
    int32_t *t = malloc(n ? n * sizeof *t : 1);
    for (size_t i = 0; i < n; i++)
        t[i] = token(r);
    return t;
}

static float pick_float(reader *r, const float *table, int n) { return table[u8(r) % n]; }

static void check_logits(const float *l, size_t n, const char *call)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(l[i]))
            FINDING("%s: logit %zu is %g", call, i, (double)l[i]);
}

static void check_ids(const sess *x, const int32_t *ids, size_t n, const char *call)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < x->lo || ids[i] >= x->hi)
            FINDING("%s: id %d outside the sampler's [%d, %d)", call, ids[i], x->lo, x->hi);
}

/* Runs one op on session slot x (whose handle may be NULL: calls must refuse). */
static void op_session(reader *r, sess *x, uint8_t op)
{
    const int pos0 = lcsm_session_position(x->s);
    const size_t V = (size_t)g_info.n_vocab, B = x->s ? (size_t)x->batch : 1;
    lcsm_status st = LCSM_OK;
    int moved_ok = 0; /* the position the call must leave on success */
    switch (op) {
    case 1: { /* prefill */
        int len = u8(r) % 70;
        int32_t *t = tokens(r, B * (size_t)len);
        float *lg = u8(r) & 1 ? malloc(B * V * sizeof *lg) : NULL;
        st = lcsm_session_prefill(x->s, t, len, lg);
        check_status(st, "prefill");
        if (st == LCSM_OK && lg)
            check_logits(lg, B * V, "prefill");
        moved_ok = len;
        free(t);
        free(lg);
        break;
    }
    case 2: { /* step */
        int32_t *t = tokens(r, B);
        float *lg = u8(r) & 1 ? malloc(B * V * sizeof *lg) : NULL;
        st = lcsm_session_step(x->s, t, lg);
        check_status(st, "step");
        if (st == LCSM_OK && lg)
            check_logits(lg, B * V, "step");
        moved_ok = pos0 + 1;
        free(t);
        free(lg);
        break;
    }
    case 3: { /* step_sample */
        int32_t *t = tokens(r, B), *next = malloc(B * sizeof *next);
        st = lcsm_session_step_sample(x->s, t, next);
        check_status(st, "step_sample");
        if (st == LCSM_OK)
            check_ids(x, next, B, "step_sample");
        moved_ok = pos0 + 1;
        free(t);
        free(next);
        break;
    }
    case 4: /* reset */
        st = lcsm_session_reset(x->s);
        check_status(st, "reset");
        moved_ok = 0;
        break;
    case 5: { /* sampler */
        static const float temps[] = {0.0f, 1.0f, 0.5f, 1e-30f, 1e30f, -1.0f, INFINITY, NAN, 1000.0f, -0.0f};
        static const float tops[] = {1.0f, 0.5f, 0.0f, -0.1f, 1.5f, NAN, 1e-30f, 0.999f};
        lcsm_sampler_params sp;
        lcsm_sampler_params_default(&sp);
        sp.temperature = pick_float(r, temps, 10);
        sp.top_k = s8(r) % 24;
        sp.top_p = pick_float(r, tops, 8);
        sp.seed = u32(r);
        sp.token_lo = s8(r) % 16;
        sp.token_hi = s8(r) % 16;
        st = lcsm_session_set_sampler(x->s, u8(r) == 255 ? NULL : &sp);
        check_status(st, "set_sampler");
        if (st == LCSM_OK) {
            x->lo = sp.token_lo;
            x->hi = sp.token_hi ? sp.token_hi : g_info.config.vocab_size;
        }
        moved_ok = pos0;
        break;
    }
    case 6: { /* generate */
        int plen = u8(r) % 70, n_new = s8(r) % 70;
        int32_t *t = tokens(r, B * (size_t)plen);
        size_t nout = n_new > 0 ? B * (size_t)n_new : 0;
        int32_t *out = nout || u8(r) & 1 ? malloc(nout ? nout * sizeof *out : 1) : NULL;
        st = lcsm_generate(x->s, t, plen, n_new, out);
        check_status(st, "generate");
        if (st == LCSM_OK)
            check_ids(x, out, nout, "generate");
        moved_ok = n_new > 0 ? plen + n_new - 1 : plen;
        free(t);
        free(out);
        break;
    }
    case 7: { /* stats and errors: any state */
        lcsm_session_stats ss;
        st = lcsm_session_get_stats(x->s, u8(r) & 1 ? &ss : NULL);
        check_status(st, "get_stats");
        (void)lcsm_session_last_error(x->s);
        moved_ok = pos0;
        break;
    }
    default: return;
    }
    const int pos1 = lcsm_session_position(x->s);
    if (st == LCSM_OK && pos1 != moved_ok)
        FINDING("op %d succeeded at position %d -> %d, want %d", op, pos0, pos1, moved_ok);
    if (st != LCSM_OK && st != LCSM_ERR_OUT_OF_MEMORY && st != LCSM_ERR_BACKEND && pos1 != pos0)
        FINDING("op %d was refused (%s) but moved the session %d -> %d", op, lcsm_strerror(st), pos0, pos1);
}

static void op_create(reader *r, sess *x)
{
    lcsm_session_destroy(x->s);
    memset(x, 0, sizeof *x);
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    static const int batches[] = {1, 2, 3, 1, 0, -1, 65537, 5};
    static const int lens[] = {0, 1, 2, 17, 63, 64, 65, -1, 40, 8};
    so.batch = batches[u8(r) % 8];
    so.max_len = lens[u8(r) % 10];
    so.algo = (lcsm_algo)(u8(r) % 4); /* 3: not an algorithm */
    x->model = u8(r) & 1;
    lcsm_session *s = (lcsm_session *)&s;
    const int null_options = u8(r) == 255;
    lcsm_status st = lcsm_session_create(g_models[x->model], null_options ? NULL : &so, &s);
    if (null_options) /* what the session has if NULL means the defaults */
        lcsm_session_options_default(&so);
    check_status(st, "session_create");
    if (st != LCSM_OK) {
        if (s)
            FINDING("a failed session_create left *out set");
        return;
    }
    x->s = s;
    x->batch = so.batch;
    x->max_len = so.max_len ? so.max_len : g_info.config.l_max;
    x->lo = 0;
    x->hi = g_info.config.vocab_size;
}

static void op_tokenize(reader *r)
{
    char text[40];
    int n = u8(r) % 40, valid = 1;
    for (int i = 0; i < n; i++) {
        static const char alphabet[] = "ACGTNacgtnXZ -\001\377";
        text[i] = alphabet[u8(r) % (sizeof alphabet - 1)];
        valid &= strchr("ACGTNacgtn", text[i]) != NULL;
    }
    text[n] = 0;
    int cap = u8(r) % 48, n_out = -1;
    int32_t *ids = cap ? malloc((size_t)cap * sizeof *ids) : NULL;
    lcsm_status st = lcsm_tokenize(u8(r) == 255 ? NULL : text, ids, cap, &n_out);
    check_status(st, "tokenize");
    if (st == LCSM_OK && (!valid || n_out != n))
        FINDING("tokenize('%s') succeeded with %d ids", text, n_out);
    if (st == LCSM_OK)
        for (int i = 0; i < n && i < cap; i++)
            if (ids[i] < 7 || ids[i] > 11)
                FINDING("tokenize('%s'): id %d", text, ids[i]);
    free(ids);
}

static void op_forward(reader *r)
{
    int batch = u8(r) % 4, len = u8(r) % 70;
    size_t n = (size_t)(batch > 0 ? batch : 0) * (size_t)(len > 0 ? len : 0);
    int32_t *t = tokens(r, n);
    float *lg = malloc(n * (size_t)g_info.n_vocab * sizeof *lg + 1);
    lcsm_status st = lcsm_model_forward(g_models[u8(r) & 1], t, batch, len, lg);
    check_status(st, "model_forward");
    if (st == LCSM_OK)
        check_logits(lg, n * (size_t)g_info.n_vocab, "model_forward");
    free(t);
    free(lg);
}

static void op_names(reader *r)
{
    char name[8];
    int n = u8(r) % 8;
    for (int i = 0; i < n; i++)
        name[i] = (char)("flashzyeager\0"[u8(r) % 13]);
    name[n] = 0;
    lcsm_algo a;
    lcsm_status st = lcsm_algo_from_name(name, &a);
    check_status(st, "algo_from_name");
    if (st == LCSM_OK && strcmp(lcsm_algo_name(a), name))
        FINDING("algo_from_name('%s') gave %s", name, lcsm_algo_name(a));
    const char *t = lcsm_token_text((int32_t)u32(r));
    if (!t)
        FINDING("token_text returned NULL");
    (void)lcsm_strerror((lcsm_status)s8(r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size, 0};
    sess ss[MAX_SESSIONS];
    memset(ss, 0, sizeof ss);
    for (int i = 0; i < MAX_OPS && r.at < r.n; i++) {
        uint8_t op = u8(&r);
        sess *x = &ss[(op >> 4) % MAX_SESSIONS];
        switch (op & 15) {
        case 0: op_create(&r, x); break;
        case 1: case 2: case 3: case 4: case 5: case 6: case 7: op_session(&r, x, op & 15); break;
        case 8: lcsm_session_destroy(x->s); memset(x, 0, sizeof *x); break;
        case 9: op_tokenize(&r); break;
        case 10: op_forward(&r); break;
        case 11: op_names(&r); break;
        default: break;
        }
    }
    for (int i = 0; i < MAX_SESSIONS; i++)
        lcsm_session_destroy(ss[i].s);
    return 0;
}
