/*
 * Prefix invariance: the same tokens give the same logits whether fed as one
 * prompt, as a prompt plus steps, or in chunks of several sizes
 * (lcsm_session_extend), for every family, backend and algorithm, batch 1 and
 * 3 - including a 1-token prompt, shorter than Evo 2's 7- and 128-tap FIR
 * filters and StripedHyena's short conv (the published engines' cached paths
 * go wrong there: their FIR step assumes a full filter state).
 *
 * A prompt whose forward would pass the backend's largest buffer goes in
 * chunks inside the one lcsm_session_prefill call: a plan lowers the
 * backend's max_buffer below what its prompt needs (the backends refuse larger
 * buffers), and the logits must not change; lcsm_model_forward's own
 * chunks too (chunked_forward).
 *
 * Reference: lcsm_model_forward over all T tokens at once. Every logit row a
 * chunk or a step returns is compared with the forward's row at that position.
 * Bound 1e-4 relative (fp32, different summation orders; ~1e-6 observed).
 */
#include "engine.h" /* the session's backend and lcsm__forward_bytes */
#include "testutil.h"

#define TOL 1e-4
#define T 140 /* > 128 so the hcm filter's whole length is exercised; not a power of two */


/* Chunk plans: a positive n feeds n tokens in one call (prefill at position 0,
 * extend later), -1 one step; the last entry repeats until T. */
typedef struct plan {
    const char *name;
    int n;
    int chunk[8];
    int split; /* > 0: the backend's largest buffer a split-th of what the first call needs */
} plan;

static const plan plans[] = {
    {"prompt 1 + steps", 2, {1, -1}, 0},
    {"prompt 41 + steps", 2, {41, -1}, 0},
    {"one prompt", 1, {T}, 0},
    {"chunks of 7", 1, {7}, 0},
    {"chunks 1 2 3 5 8 13", 7, {1, 2, 3, 5, 8, 13, 29}, 0},
    {"prompt 5, chunk 20, steps, chunk 9", 6, {5, 20, -1, -1, 9, -1}, 0},
    {"prompt 97 in buffer-bound chunks + steps", 2, {97, -1}, 5},
};

static double run_plan(lcsm_model *m, lcsm_algo algo, const plan *p, const int32_t *tok, int B, const float *ref,
                       int V)
{
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = B;
    so.max_len = T;
    so.algo = algo;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(m, &so, &s));
    if (!s)
        return INFINITY;
    const size_t max_buffer = s->be->max_buffer;
    if (p->split) /* the session's own buffers exist: only the prompt's forward meets the limit */
        s->be->max_buffer = lcsm__forward_bytes(m, s, B, p->chunk[0], 0) / (size_t)p->split;
    int32_t *buf = malloc(sizeof *buf * (size_t)B * T);
    float *lg = malloc(sizeof *lg * (size_t)B * V), *want = malloc(sizeof *want * (size_t)B * V);
    double worst = 0;
    for (int pos = 0, k = 0; pos < T; k++) {
        int n = p->chunk[k < p->n ? k : p->n - 1];
        if (n > T - pos)
            n = T - pos;
        lcsm_status st;
        if (n < 0) { /* a step */
            for (int b = 0; b < B; b++)
                buf[b] = tok[(size_t)b * T + pos];
            st = lcsm_session_step(s, buf, lg);
            n = 1;
        } else {
            for (int b = 0; b < B; b++)
                memcpy(buf + (size_t)b * n, tok + (size_t)b * T + pos, sizeof *buf * (size_t)n);
            st = pos == 0 ? lcsm_session_prefill(s, buf, n, lg) : lcsm_session_extend(s, buf, n, lg);
        }
        CHECK(st == LCSM_OK, "%s at %d: %s", p->name, pos, lcsm_session_last_error(s));
        if (st != LCSM_OK) {
            worst = INFINITY;
            break;
        }
        pos += n; /* the logits are those of position pos - 1 */
        for (int b = 0; b < B; b++)
            memcpy(want + (size_t)b * V, ref + ((size_t)b * T + pos - 1) * V, sizeof *want * (size_t)V);
        for (int b = 0; b < B; b++) {
            double e = tu_rel_err_f(lg + (size_t)b * V, want + (size_t)b * V, (size_t)V);
            worst = e > worst ? e : worst;
        }
    }
    s->be->max_buffer = max_buffer;
    free(buf), free(lg), free(want);
    lcsm_session_destroy(s);
    return worst;
}

/* lcsm_model_forward whose one-piece scratch passes the backend's largest
 * buffer: the limit a third of it, or the history of the session the chunks
 * go through where that is larger (the one-piece forward is refused either
 * way); every row as ref's; batch 3 and 1 (sequence 0). */
static void chunked_forward(lcsm_model *m, const int32_t *tok, const float *ref, int V, const char *backend,
                            const char *arch)
{
    float *lg = malloc(sizeof *lg * (size_t)3 * T * V);
    const size_t max_buffer = m->be->max_buffer;
    for (int B = 3; lg && B >= 1; B -= 2) {
        const size_t whole = lcsm__forward_bytes(m, NULL, B, T, 1), hist = sizeof(float) * m->n_tiled * B * m->hp.d_model * T;
        m->be->max_buffer = whole / 3 > hist ? whole / 3 : hist;
        CHECK(lcsm__forward_seq(m, NULL, tok, B, T, lg, 1) == LCSM_ERR_OUT_OF_MEMORY,
              "%s %s B=%d: the one-piece forward passes the lowered limit", backend, arch, B);
        const lcsm_status st = lcsm_model_forward(m, tok, B, T, lg);
        m->be->max_buffer = max_buffer;
        CHECK(st == LCSM_OK, "%s %s B=%d: forward in chunks: %s", backend, arch, B, lcsm_model_last_error(m));
        const double e = st == LCSM_OK ? tu_rel_err_f(lg, ref, (size_t)B * T * V) : INFINITY;
        CHECK(e <= TOL, "%s %s B=%d: forward in chunks against one piece: rel err %.3g", backend, arch, B, e);
    }
    m->be->max_buffer = max_buffer;
    free(lg);
}

int main(void)
{
    uint64_t rng = tu_seed();
    const char *backends[8];
    int nb = tu_backends(backends);
    for (int bi = 0; bi < nb; bi++) {
        int skip;
        lcsm_backend *be = tu_backend_open(backends[bi], 8, &skip);
        if (skip && nb == 1)
            return 77;
        if (!be)
            continue;
        for (size_t f = 0; f < TU_N_FAMILIES; f++)
            for (int variant = 0; variant < 3; variant++) { /* plain, modal filters tiled, lag 6 */
                const int tiled = variant == 1;
                lcsm_model_options mo;
                lcsm_model_options_default(&mo);
                mo.modal_tiled = tiled;
                mo.lag = variant == 2 ? 6 : 1;
                lcsm_model *m = NULL;
                CHECK_OK(lcsm_model_create_random_config(be, tu_families[f].config, tu_next(&rng), &mo, &m));
                if (!m)
                    continue;
                lcsm_model_info info;
                CHECK_OK(lcsm_model_get_info(m, &info));
                if (tiled && info.n_tiled_convs == 0) { /* no modal layer: nothing else to tile */
                    lcsm_model_destroy(m);
                    continue;
                }
                const int V = info.n_vocab;
                int32_t *tok = malloc(sizeof *tok * 3 * T);
                float *ref = malloc(sizeof *ref * (size_t)3 * T * V);
                for (int i = 0; i < 3 * T; i++)
                    tok[i] = (int32_t)(tu_next(&rng) % (uint64_t)info.config.vocab_size);
                CHECK_OK(lcsm_model_forward(m, tok, 3, T, ref));
                chunked_forward(m, tok, ref, V, backends[bi], info.arch);
                const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER, LCSM_ALGO_MODAL,
                                           LCSM_ALGO_SMOOTH};
                for (int a = 0; a < 5; a++)
                    for (int B = 1; B <= 3; B += 2)
                        for (size_t pi = 0; pi < sizeof plans / sizeof plans[0]; pi++) {
                            /* batch 1 takes sequence 0 (the first T rows of ref) */
                            double e = run_plan(m, algos[a], &plans[pi], tok, B, ref, V);
                            const char *kind = tiled ? "modal tiled" : variant == 2 ? "lag 6" : "";
                            CHECK(e <= TOL, "%s %s %s %s B=%d %s: rel err %.3g", backends[bi], info.arch, kind,
                                  lcsm_algo_name(algos[a]), B, plans[pi].name, e);
                            if (B == 3 && (pi == 0 || pi == 4 || plans[pi].split))
                                printf("  %-6s %-12s %-13s %-5s B=3 %-36s %.2e\n", backends[bi], info.arch, kind,
                                       lcsm_algo_name(algos[a]), plans[pi].name, e);
                        }
                free(tok), free(ref);
                lcsm_model_destroy(m);
            }
        lcsm_backend_destroy(be);
    }
    return tu_finish("test_prefix");
}
