/*
 * Sampling on the device: one work-group of SAMPLE_WG items per sequence, the
 * same rule as src/sampler.c (lcsm__sample), so that generation never brings
 * the logits to the host:
 *   greedy: the largest logit in [lo, hi), ties to the smallest id;
 *   else:   p_i = exp((logit_i - max) / temperature), candidates sorted by
 *           (p descending, id ascending), cut to top_k, then to the shortest
 *           prefix whose share of the mass reaches top_p, then one draw of the
 *           sequence's splitmix64 generator picks from the prefix.
 * The host sums in double and the device in float with its own exp, so a draw
 * that falls within rounding of a boundary between two candidates may pick
 * the neighbour (tests/test_sample.c bounds how often and how close).
 */
#define SAMPLE_WG 256
#define SAMPLE_MAX 2048 /* candidates sorted in local memory (temperature > 0) */

#define RNG_INCREMENT 0x9E3779B97F4A7C15UL

/* Does candidate a come before b: larger p first, then the smaller id. */
static bool before(float pa, int ia, float pb, int ib) { return pa > pb || (pa == pb && ia < ib); }

__kernel __attribute__((reqd_work_group_size(SAMPLE_WG, 1, 1))) void
sample(__global const float *logits, ulong lo_off, int V, int lo, int hi, float temperature, int top_k,
       float top_p, ulong seed, ulong draws, __global int *ids, ulong io)
{
    __local float pv[SAMPLE_MAX];
    __local int pid[SAMPLE_MAX];
    __local float redv[SAMPLE_WG];
    __local int redi[SAMPLE_WG];
    const int b = get_group_id(0), l = get_local_id(0);
    __global const float *x = logits + lo_off + (size_t)b * V;

    /* the largest logit (ties: smallest id); a non-finite one makes the id -1 */
    __local int bad;
    if (l == 0)
        bad = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    float bv = -INFINITY;
    int bi = INT_MAX, nonfinite = 0;
    for (int i = lo + l; i < hi; i += SAMPLE_WG) {
        const float v = x[i];
        nonfinite |= !isfinite(v);
        if (v > bv || (v == bv && i < bi)) {
            bv = v;
            bi = i;
        }
    }
    if (nonfinite)
        atomic_or(&bad, 1);
    redv[l] = bv;
    redi[l] = bi;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (bad) {
        if (l == 0)
            ids[io + b] = -1;
        return;
    }
    for (int s = SAMPLE_WG / 2; s > 0; s >>= 1) {
        if (l < s && (redv[l + s] > redv[l] || (redv[l + s] == redv[l] && redi[l + s] < redi[l]))) {
            redv[l] = redv[l + s];
            redi[l] = redi[l + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (temperature <= 0.0f) {
        if (l == 0)
            ids[io + b] = redi[0] == INT_MAX ? lo : redi[0];
        return;
    }
    const float mx = redv[0];
    const int m = hi - lo;
    int n2 = 1;
    while (n2 < m)
        n2 <<= 1;
    for (int i = l; i < n2; i += SAMPLE_WG) {
        const float v = i < m ? x[lo + i] : 0.0f;
        /* padding sorts last; a NaN logit, or all -inf, has probability 0 as on the host */
        pv[i] = i >= m ? -1.0f : isnan(v) || mx == -INFINITY ? 0.0f : exp((v - mx) / temperature);
        pid[i] = lo + i;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* bitonic sort of n2 candidates into `before` order */
    for (int k = 2; k <= n2; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = l; i < n2; i += SAMPLE_WG) {
                const int o = i ^ j;
                if (o > i) {
                    const bool up = (i & k) == 0;
                    const bool first = before(pv[i], pid[i], pv[o], pid[o]);
                    if (up != first) {
                        float tp = pv[i];
                        pv[i] = pv[o];
                        pv[o] = tp;
                        int ti = pid[i];
                        pid[i] = pid[o];
                        pid[o] = ti;
                    }
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    if (l != 0)
        return;
    float sum = 0.0f;
    for (int i = 0; i < m; i++)
        sum += pv[i];
    int keep = top_k > 0 && top_k < m ? top_k : m;
    if (top_p < 1.0f) {
        float acc = 0.0f;
        for (int i = 0; i < keep; i++) {
            acc += pv[i] / sum;
            if (acc >= top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    float mass = 0.0f;
    for (int i = 0; i < keep; i++)
        mass += pv[i];
    /* splitmix64, state as lcsm__rng_state(seed, b, draws) */
    ulong z = (seed ^ (ulong)(b + 1) * 0xD1B54A32D192ED03UL) + draws * RNG_INCREMENT + RNG_INCREMENT;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
    z ^= z >> 31;
    float u = (float)(z >> 40) * 0x1.0p-24f * mass; /* the top 24 of the host's 53 bits */
    int pick = pid[keep - 1];
    for (int i = 0; i < keep; i++) {
        u -= pv[i];
        if (u < 0.0f) {
            pick = pid[i];
            break;
        }
    }
    ids[io + b] = pick;
}
