#include "bench_generate.h"

#include "bench.h"
#include "bench_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bench_make_prompt(int32_t *ids, int batch, int prompt)
{
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < prompt; i++)
            ids[(size_t)b * prompt + i] = BENCH_TOKEN_LO + (int32_t)(((unsigned)i * 7919u + (unsigned)b * 104729u) % 4u);
}

/* splitmix64: one independent draw per (seed, sequence, position). */
static double uniform01(uint64_t seed, int b, int pos)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * ((uint64_t)b * 1000003u + (uint64_t)pos + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Greedy: the first largest logit in [LO, HI), as the library's sampler does.
 * Otherwise a draw from softmax(logits / temperature) over the same range. */
static int32_t host_sample(const float *logits, float temperature, uint64_t seed, int b, int pos)
{
    int best = BENCH_TOKEN_LO;
    for (int i = BENCH_TOKEN_LO + 1; i < BENCH_TOKEN_HI; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temperature <= 0)
        return best;
    double w[BENCH_TOKEN_HI], sum = 0;
    for (int i = BENCH_TOKEN_LO; i < BENCH_TOKEN_HI; i++)
        sum += w[i] = exp(((double)logits[i] - logits[best]) / temperature);
    double u = uniform01(seed, b, pos) * sum;
    for (int i = BENCH_TOKEN_LO; i < BENCH_TOKEN_HI; i++)
        if ((u -= w[i]) <= 0)
            return i;
    return BENCH_TOKEN_HI - 1;
}

lcsm_status bench_generate_session(lcsm_session *s, bench_gen *g)
{
    const int B = g->batch, n_new = g->L - g->prompt + 1;
    float *logits = malloc(sizeof *logits * (size_t)B * g->n_vocab);
    int32_t *cur = malloc(sizeof *cur * (size_t)B), *next = malloc(sizeof *next * (size_t)B);
    lcsm_status st = logits && cur && next ? lcsm_session_reset(s) : LCSM_ERR_OUT_OF_MEMORY;
    /* Reseeding makes every repeat sample the same tokens. */
    lcsm_sampler_params sp;
    lcsm_sampler_params_default(&sp);
    sp.temperature = g->temperature;
    sp.seed = g->seed;
    sp.token_lo = BENCH_TOKEN_LO;
    sp.token_hi = BENCH_TOKEN_HI;
    if (st != LCSM_OK || (st = lcsm_session_set_sampler(s, &sp)) != LCSM_OK)
        goto done;
    const double t0 = bench_now();
    if ((st = lcsm_session_prefill(s, g->prompt_ids, g->prompt, logits)) != LCSM_OK)
        goto done;
    for (int b = 0; b < B; b++) {
        cur[b] = host_sample(logits + (size_t)b * g->n_vocab, g->temperature, g->seed, b, g->prompt);
        g->out[(size_t)b * n_new] = cur[b];
    }
    int n_kernels = 0;
    if (g->profiled && (st = lcsm_backend_get_profile(g->profiled, NULL, 0, &n_kernels, 1)) != LCSM_OK)
        goto done;
    const double t1 = bench_now();
    double win_sum = 0, win_max = 0; /* long runs: the steps since the last progress line */
    int win_from = 0;
    for (int j = 1; j < n_new; j++) {
        const double ts = bench_now();
        if ((st = lcsm_session_step_sample(s, cur, next)) != LCSM_OK)
            goto done;
        const double ms = 1e3 * (bench_now() - ts);
        if (g->lat_ms)
            g->lat_ms[j - 1] = ms;
        win_sum += ms;
        win_max = ms > win_max ? ms : win_max;
        if (bench_long_run(n_new) && bench_progress_due(j)) {
            const int n = j - win_from;
            char med[64] = "";
            if (g->lat_ms) /* the window's steps are lat_ms[win_from .. j - 1] */
                snprintf(med, sizeof med, ", median %.3f ms, p99 %.3f ms", bench_median(g->lat_ms + win_from, n),
                         bench_percentile(g->lat_ms + win_from, n, 0.99));
            fprintf(stderr, "  (step %d of %d: %.1f s; the last %d steps: mean %.3f ms%s, max %.3f ms)\n", j,
                    n_new - 1, bench_now() - t1, n, win_sum / n, med, win_max);
            win_sum = win_max = 0;
            win_from = j;
        }
        for (int b = 0; b < B; b++)
            g->out[(size_t)b * n_new + j] = cur[b] = next[b];
    }
    g->prefill_s = t1 - t0;
    g->gen_s = bench_now() - t1;
done:
    free(logits);
    free(cur);
    free(next);
    return st;
}

lcsm_status bench_generate_recompute(lcsm_model *m, bench_gen *g)
{
    const int B = g->batch, L = g->L, P = g->prompt, V = g->n_vocab, n_new = L - P + 1;
    /* seq holds each sequence's tokens, row stride L; the forward wants
     * [batch][len] packed, so rows are copied to `packed` for every length. */
    int32_t *seq = malloc(sizeof *seq * (size_t)B * L), *packed = malloc(sizeof *packed * (size_t)B * L);
    float *logits = malloc(sizeof *logits * (size_t)B * L * V);
    lcsm_status st = seq && packed && logits ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
    const double t0 = bench_now();
    double t1 = t0;
    for (int len = P; st == LCSM_OK && len <= L; len++) {
        const double ts = bench_now();
        if (len == P)
            memcpy(packed, g->prompt_ids, sizeof *packed * (size_t)B * P);
        else
            for (int b = 0; b < B; b++)
                memcpy(packed + (size_t)b * len, seq + (size_t)b * L, sizeof *packed * (size_t)len);
        if ((st = lcsm_model_forward(m, packed, B, len, logits)) != LCSM_OK)
            break;
        for (int b = 0; b < B; b++) {
            if (len == P)
                memcpy(seq + (size_t)b * L, g->prompt_ids + (size_t)b * P, sizeof *seq * (size_t)P);
            int32_t id = host_sample(logits + ((size_t)b * len + len - 1) * V, g->temperature, g->seed, b, len);
            if (len < L)
                seq[(size_t)b * L + len] = id;
            g->out[(size_t)b * n_new + (len - P)] = id;
        }
        if (len == P)
            t1 = bench_now();
        else if (g->lat_ms)
            g->lat_ms[len - P - 1] = 1e3 * (bench_now() - ts);
    }
    if (st == LCSM_OK) {
        g->prefill_s = t1 - t0;
        g->gen_s = bench_now() - t1;
    }
    free(seq);
    free(packed);
    free(logits);
    return st;
}

lcsm_status bench_prefill(lcsm_session *s, const int32_t *prompt, int batch, int P, int chunk, float *logits,
                          int32_t *packed, double *secs, int *n_calls)
{
    lcsm_status st = lcsm_session_reset(s);
    if (st != LCSM_OK)
        return st;
    if (chunk <= 0 || chunk >= P) {
        const double t0 = bench_now();
        st = lcsm_session_prefill(s, prompt, P, logits);
        *secs = bench_now() - t0;
        *n_calls = 1;
        return st;
    }
    int calls = 0;
    const double t0 = bench_now();
    for (int pos = 0; pos < P && st == LCSM_OK; pos += chunk, calls++) {
        const int len = P - pos < chunk ? P - pos : chunk, last = pos + len == P;
        for (int b = 0; b < batch; b++)
            memcpy(packed + (size_t)b * len, prompt + (size_t)b * P + pos, sizeof *packed * (size_t)len);
        float *lg = last ? logits : NULL;
        st = pos == 0 ? lcsm_session_prefill(s, packed, len, lg) : lcsm_session_extend(s, packed, len, lg);
    }
    *secs = bench_now() - t0;
    *n_calls = calls;
    return st;
}

uint64_t bench_greedy_hash(const float *logits, int batch, int n_vocab)
{
    uint64_t h = BENCH_FNV_INIT;
    for (int b = 0; b < batch; b++) {
        const int32_t id = host_sample(logits + (size_t)b * n_vocab, 0, 0, b, 0);
        h = bench_fnv1a(h, &id, 1);
    }
    return h;
}
