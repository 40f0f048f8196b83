/*
 * Sampling from logits: greedy, temperature, top-k, top-p, restricted to an id
 * range. The generator is splitmix64, one stream per
 * sequence, so the same seed gives the same tokens on every platform.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lcsm_sampler_params_default(lcsm_sampler_params *p)
{
    if (!p)
        return;
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
}

#define RNG_INCREMENT 0x9E3779B97F4A7C15ull

uint64_t lcsm__rng_state(uint64_t seed, uint64_t stream, uint64_t draws)
{
    return (seed ^ (stream + 1) * 0xD1B54A32D192ED03ull) + draws * RNG_INCREMENT;
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += RNG_INCREMENT);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct cand {
    float p;
    int32_t id;
} cand;

static int by_prob_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id; /* ties: smaller id first, deterministic */
}

/* Whether id i may be sampled: in the allowed set, when there is one. */
static int allowed(const lcsm_sampler_params *p, int i)
{
    if (!p->n_allowed)
        return 1;
    for (int k = 0; k < p->n_allowed; k++)
        if (p->allowed[k] == i)
            return 1;
    return 0;
}

int32_t lcsm__sample(const float *logits, int n, const lcsm_sampler_params *p, uint64_t *rng, void *scratch)
{
    int lo = p->token_lo > 0 ? p->token_lo : 0;
    int hi = p->token_hi > 0 && p->token_hi < n ? p->token_hi : n;
    /* A NaN logit counts as -infinity: never the maximum, probability 0 (so the
     * sort's order stays consistent). */
    float mx = -INFINITY;
    int32_t best = lo; /* every candidate NaN or -inf: the first allowed id */
    while (best < hi - 1 && !allowed(p, best))
        best++;
    for (int i = lo; i < hi; i++)
        if (allowed(p, i) && logits[i] > mx) {
            mx = logits[i];
            best = i;
        }
    if (p->temperature <= 0.0f)
        return best;
    cand *c = scratch;
    int m = 0;
    double sum = 0;
    for (int i = lo; i < hi; i++) {
        if (!allowed(p, i))
            continue;
        c[m].id = i;
        c[m].p = isnan(logits[i]) || mx == -INFINITY ? 0.0f : expf((logits[i] - mx) / p->temperature);
        sum += c[m].p;
        m++;
    }
    qsort(c, (size_t)m, sizeof *c, by_prob_desc);
    int keep = p->top_k > 0 && p->top_k < m ? p->top_k : m;
    if (p->top_p < 1.0f) {
        double acc = 0;
        for (int i = 0; i < keep; i++) {
            acc += c[i].p / sum;
            if (acc >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++)
        mass += c[i].p;
    double u = (double)(next_u64(rng) >> 11) * 0x1.0p-53 * mass;
    for (int i = 0; i < keep; i++) {
        u -= c[i].p;
        if (u < 0)
            return c[i].id;
    }
    return c[keep - 1].id;
}
