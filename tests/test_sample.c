/*
 * The device sampler (OpenCL) against the host's (src/sampler.c).
 *
 * 1. Kernel level: random logits [B][V] for several V (16 to 2048, not powers
 *    of two too), every sampler mode (greedy; temperature; top-k; top-p; an id
 *    range), many seeds and draw counts. Greedy must match exactly. A sampled
 *    id may differ only where the host's draw lies within rounding of a
 *    boundary between two neighbouring candidates (the device sums in float
 *    with its own exp): each mismatch is checked to be such a case, |u - edge|
 *    <= 1e-4 of the mass, or a pair of candidates whose probabilities are
 *    within a few float ulps (their order in the sort is the rounding's), and
 *    mismatches must stay rare (< 0.5%).
 * 2. Engine level: lcsm_generate on OpenCL (ids stay on the device, the loop
 *    never waits) against the CPU backend fed the same tokens (teacher
 *    forcing): every generated id must be what the host sampler picks from the
 *    CPU's logits, up to the boundary rule above; and it must equal a loop of
 *    lcsm_session_step_sample on the same OpenCL session (same kernel).
 *    Some trials put a NaN or an infinity in some rows: those rows get id -1 (the mark
 *    lcsm_generate reports as LCSM_ERR_NUMERIC), the others are drawn as usual.
 * 3. lcsm_backend_get_profile: kernels of a profiled backend are listed, most
 *    expensive first, reset clears; the CPU backend says LCSM_ERR_UNSUPPORTED.
 * Exit 77 (skip) without an OpenCL device.
 */
#include "internal.h"
#include "testutil.h"

#include <float.h>
#include <math.h>

#define EDGE_TOL 1e-4 /* of the kept mass */
#define TIE_ULPS 4     /* probabilities this close (in float ulps) are a tie to the sort */

typedef struct cand {
    double p;
    int id;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

/* Is `got` an acceptable draw where the host drew `want`: both in the kept
 * set, and the host's u within EDGE_TOL of the mass from a boundary that
 * separates them (or the top-p cut within EDGE_TOL of top_p). */
static int near_boundary(const float *logits, int V, const lcsm_sampler_params *p, uint64_t rng, int want, int got)
{
    int lo = p->token_lo, hi = p->token_hi ? p->token_hi : V, m = hi - lo;
    cand *c = malloc(sizeof *c * (size_t)m);
    double mx = -INFINITY, sum = 0;
    for (int i = lo; i < hi; i++)
        mx = logits[i] > mx ? logits[i] : mx; /* NaN never compares greater */
    for (int i = 0; i < m; i++) {
        c[i].id = lo + i;
        c[i].p = isnan(logits[lo + i]) ? 0.0 : exp((logits[lo + i] - mx) / p->temperature);
        sum += c[i].p;
    }
    qsort(c, (size_t)m, sizeof *c, cand_cmp);
    int keep = p->top_k > 0 && p->top_k < m ? p->top_k : m, cut_close = 0;
    if (p->top_p < 1.0f) {
        double acc = 0;
        for (int i = 0; i < keep; i++) {
            acc += c[i].p / sum;
            if (fabs(acc - p->top_p) <= EDGE_TOL)
                cut_close = 1;
            if (acc >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double mass = 0;
    for (int i = 0; i < keep; i++)
        mass += c[i].p;
    uint64_t z = rng + 0x9E3779B97F4A7C15ull; /* splitmix64 as in sampler.c */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = (double)(z >> 11) * 0x1.0p-53 * mass, edge = 0;
    int iw = -1, ig = -1;
    for (int i = 0; i < m; i++) {
        if (c[i].id == want)
            iw = i;
        if (c[i].id == got)
            ig = i;
    }
    int ok = 0;
    /* two candidates float cannot order apart (a few ulps: the device's exp is
     * not the host's expf) may sort either way round, so the draw may land on
     * either of them wherever it falls in their share */
    if (iw >= 0 && ig >= 0 && fabs(c[iw].p - c[ig].p) <= TIE_ULPS * FLT_EPSILON * fmax(c[iw].p, c[ig].p))
        ok = 1;
    if (!ok && iw >= 0 && ig >= 0 && abs(iw - ig) == 1) {
        int j = iw < ig ? iw : ig; /* the boundary after candidate j */
        for (int i = 0; i <= j; i++)
            edge += c[i].p;
        ok = fabs(u - edge) <= EDGE_TOL * mass;
    }
    if (!ok && cut_close && ig >= 0 && ig <= keep + 1)
        ok = 1;
    free(c);
    return ok;
}

static lcsm_sampler_params mode(int k, int V)
{
    lcsm_sampler_params p;
    lcsm_sampler_params_default(&p);
    p.token_hi = V;
    switch (k) {
    case 0: p.temperature = 0; break;
    case 1: p.temperature = 1.0f; break;
    case 2: p.temperature = 0.7f; p.top_k = 5; break;
    case 3: p.temperature = 1.3f; p.top_p = 0.8f; break;
    case 4: p.temperature = 0.9f; p.top_k = 40; p.top_p = 0.9f; p.token_lo = 3; p.token_hi = V - V / 3; break;
    default: p.temperature = 0; p.token_lo = V / 2; break;
    }
    return p;
}

static void check_kernel(lcsm_backend *be, uint64_t *rng)
{
    const int Vs[] = {16, 100, 777, 2048, 5000}, B = 5, n_modes = 6;
    long draws_total = 0, mismatches = 0;
    for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
        const int V = Vs[vi];
        float *logits = malloc(sizeof *logits * (size_t)B * V);
        int32_t dev[5], host[5];
        void *scratch = malloc((size_t)V * 2 * sizeof(float));
        lcsm_buf *buf = NULL;
        CHECK_OK(be->ops->alloc(be, (size_t)(B * V + B) * sizeof(float), &buf));
        lcsm_ref lr = lcsm_f32(buf, 0), ids = {buf, (size_t)B * V * sizeof(float), LCSM_DT_I32};
        for (int trial = 0; trial < 20; trial++) {
            const double scale = trial % 2 ? 3.0 : 0.5; /* peaked and flat distributions */
            for (int i = 0; i < B * V; i++)
                logits[i] = (float)(scale * tu_uniform(rng));
            if (trial % 5 == 4) /* a row with a NaN or an infinity in the range gets id -1 (generate's error) */
                for (int i = 3 + (int)(tu_next(rng) % 5) * V; i < B * V; i += 2 * V + 5)
                    logits[i] = i % 2 ? NAN : INFINITY;
            CHECK_OK(be->ops->write(be, lr, logits, (size_t)B * V));
            for (int k = 0; k < n_modes; k++) {
                lcsm_sampler_params p = mode(k, V);
                p.seed = tu_next(rng);
                uint64_t draws = tu_next(rng) % 1000;
                lcsm_status st = be->ops->sample(be, lr, B, V, &p, draws, ids, dev, 1);
                if (p.temperature > 0 && p.token_hi - p.token_lo > be->sample_max) {
                    CHECK(st == LCSM_ERR_UNSUPPORTED, "V %d mode %d: %d candidates must be refused", V, k,
                          p.token_hi - p.token_lo);
                    continue;
                }
                CHECK(st == LCSM_OK, "sample V %d mode %d: %s", V, k, lcsm_backend_last_error(be));
                for (int b = 0; b < B; b++) {
                    const int lo = p.token_lo > 0 ? p.token_lo : 0, hi = p.token_hi > 0 && p.token_hi < V ? p.token_hi : V;
                    int bad = 0;
                    for (int i = lo; i < hi; i++)
                        bad |= !isfinite(logits[(size_t)b * V + i]);
                    if (bad) {
                        CHECK(dev[b] == -1, "V %d mode %d seq %d: non-finite logits in range, id %d (want -1)", V, k,
                              b, dev[b]);
                        continue;
                    }
                    CHECK(dev[b] >= lo && dev[b] < hi, "V %d mode %d seq %d: id %d outside [%d, %d)", V, k, b, dev[b],
                          lo, hi);
                    uint64_t r = lcsm__rng_state(p.seed, (uint64_t)b, draws), r0 = r;
                    host[b] = lcsm__sample(logits + (size_t)b * V, V, &p, &r, scratch);
                    draws_total++;
                    if (dev[b] == host[b])
                        continue;
                    mismatches++;
                    CHECK(p.temperature > 0, "greedy V %d mode %d seq %d: device %d, host %d", V, k, b, dev[b],
                          host[b]);
                    if (p.temperature > 0)
                        CHECK(near_boundary(logits + (size_t)b * V, V, &p, r0, host[b], dev[b]),
                              "V %d mode %d seq %d: device %d, host %d, not at a boundary", V, k, b, dev[b], host[b]);
                }
            }
        }
        be->ops->release(be, buf);
        free(scratch);
        free(logits);
    }
    printf("kernel: %ld draws, %ld differ from the host (boundary cases)\n", draws_total, mismatches);
    CHECK(mismatches * 200 <= draws_total, "too many mismatches: %ld of %ld", mismatches, draws_total);
}

/* Feeds ids [B][N] (from OpenCL) to a CPU session after the prompt and checks
 * each id against the host sampler on the CPU's logits; id i > 0 was drawn
 * with generator draw i - shift (id 0 with draw 0). */
static void teacher_force(lcsm_model *mc, const lcsm_session_options *so, const int32_t *prompt, int P,
                          const int32_t *ids, int N, const lcsm_sampler_params *p, int shift, const char *what)
{
    const int B = so->batch, V = 16;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(mc, so, &s));
    if (!s)
        return;
    float *logits = malloc(sizeof *logits * B * V);
    void *scratch = malloc((size_t)V * 2 * sizeof(float));
    int32_t cur[8];
    CHECK_OK(lcsm_session_prefill(s, prompt, P, logits));
    int bad = 0, boundary = 0;
    for (int i = 0; i < N && !bad; i++) {
        for (int b = 0; b < B; b++) {
            uint64_t draw = p->temperature > 0 ? (uint64_t)(i > 0 ? i - shift : 0) : 0;
            uint64_t r = lcsm__rng_state(p->seed, (uint64_t)b, draw), r0 = r;
            int want = lcsm__sample(logits + (size_t)b * V, V, p, &r, scratch), got = ids[b * N + i];
            if (want != got) {
                int ok;
                if (p->temperature > 0) {
                    ok = near_boundary(logits + (size_t)b * V, V, p, r0, want, got);
                } else { /* greedy: only a near tie of the two logits */
                    float x = logits[(size_t)b * V + want], y = logits[(size_t)b * V + got];
                    ok = fabsf(x - y) <= 1e-4f * (fabsf(x) > 1 ? fabsf(x) : 1);
                }
                CHECK(ok, "%s: step %d seq %d: OpenCL %d, CPU sampler %d", what, i, b, got, want);
                bad |= !ok;
                boundary += ok;
            }
            cur[b] = got;
        }
        if (i + 1 < N)
            CHECK_OK(lcsm_session_step(s, cur, logits));
    }
    if (boundary)
        printf("%s: %d boundary cases\n", what, boundary);
    free(scratch);
    free(logits);
    lcsm_session_destroy(s);
}

/* lcsm_generate on `mo` (OpenCL), and a loop of lcsm_session_step_sample on
 * it, against `mc` (CPU) fed the same tokens. */
static void check_generate(lcsm_model *mc, lcsm_model *mo, uint64_t *rng, lcsm_algo algo, int k)
{
    enum { B = 3, P = 37, N = 120 };
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = B;
    so.max_len = P + N;
    so.algo = algo;
    lcsm_session *s = NULL;
    CHECK_OK(lcsm_session_create(mo, &so, &s));
    if (!s)
        return;
    lcsm_sampler_params p = mode(k, 12);
    p.seed = tu_next(rng);
    CHECK_OK(lcsm_session_set_sampler(s, &p));
    int32_t prompt[B * P], out[B * N], loop[B * N], cur[B], next[B];
    for (int i = 0; i < B * P; i++)
        prompt[i] = 7 + (int)(tu_next(rng) % 4);
    char what[64];
    snprintf(what, sizeof what, "generate %s mode %d", lcsm_algo_name(algo), k);
    CHECK_OK(lcsm_generate(s, prompt, P, N, out));
    teacher_force(mc, &so, prompt, P, out, N, &p, 0, what);

    /* step by step (each step waits for its ids), from generate's first id */
    CHECK_OK(lcsm_session_reset(s));
    CHECK_OK(lcsm_session_prefill(s, prompt, P, NULL));
    for (int b = 0; b < B; b++)
        loop[b * N] = cur[b] = out[b * N];
    for (int i = 1; i < N; i++) {
        CHECK_OK(lcsm_session_step_sample(s, cur, next));
        for (int b = 0; b < B; b++)
            loop[b * N + i] = cur[b] = next[b];
    }
    snprintf(what, sizeof what, "step_sample %s mode %d", lcsm_algo_name(algo), k);
    teacher_force(mc, &so, prompt, P, loop, N, &p, 1, what);
    lcsm_session_destroy(s);
}

static void check_profile(lcsm_backend *be_prof, lcsm_backend *cpu)
{
    lcsm_profile_entry e[32];
    int n = -1;
    CHECK_STATUS(lcsm_backend_get_profile(cpu, e, 32, &n, 0), LCSM_ERR_UNSUPPORTED);
    CHECK(n == 0, "count %d on failure", n);
    CHECK_STATUS(lcsm_backend_get_profile(be_prof, NULL, 4, &n, 0), LCSM_ERR_INVALID_ARGUMENT);
    CHECK_OK(lcsm_backend_get_profile(be_prof, e, 32, &n, 0));
    CHECK(n > 3, "%d kernels profiled", n);
    int seen_sample = 0, seen_gemv = 0;
    for (int i = 0; i < n && i < 32; i++) {
        CHECK(e[i].calls > 0 && e[i].seconds >= 0, "%s: %lld calls %g s", e[i].name, e[i].calls, e[i].seconds);
        if (i > 0)
            CHECK(e[i].seconds <= e[i - 1].seconds, "not sorted at %d", i);
        seen_sample |= !strcmp(e[i].name, "sample");
        seen_gemv |= !strncmp(e[i].name, "gemv", 4);
    }
    CHECK(seen_sample && seen_gemv, "sample %d gemv %d in the profile", seen_sample, seen_gemv);
    int n1 = 0;
    CHECK_OK(lcsm_backend_get_profile(be_prof, e, 1, &n1, 1)); /* cap 1: count still all */
    CHECK(n1 == n, "count %d with cap 1, %d before", n1, n);
    CHECK_OK(lcsm_backend_get_profile(be_prof, e, 32, &n1, 0));
    CHECK(n1 == 0, "%d kernels after reset", n1);
}

int main(void)
{
    int skip = 0;
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.profile = 1;
    lcsm_backend *be = NULL;
    lcsm_status st = lcsm_backend_create("opencl", &bo, &be);
    if (st == LCSM_ERR_NO_BACKEND || st == LCSM_ERR_BACKEND) {
        printf("SKIP: no OpenCL device (%s)\n", lcsm_last_error());
        return 77;
    }
    CHECK_OK(st);
    lcsm_backend *cpu = tu_backend_open("cpu", 0, &skip);
    if (!be || !cpu)
        return tu_finish("test_sample");
    uint64_t rng = tu_seed();
    check_kernel(be, &rng);

    lcsm_model_config c;
    lcsm_model_config_default(&c);
    c.d_model = 24;
    c.n_layer = 2;
    c.d_inner = 64;
    c.l_max = 200;
    uint64_t wseed = tu_next(&rng);
    lcsm_model *mo = NULL, *mc = NULL;
    CHECK_OK(lcsm_model_create_random(be, &c, wseed, NULL, &mo));
    CHECK_OK(lcsm_model_create_random(cpu, &c, wseed, NULL, &mc));
    const lcsm_algo algos[] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY};
    for (int a = 0; mo && mc && a < 2; a++)
        for (int k = 0; k < 6; k++)
            check_generate(mc, mo, &rng, algos[a], k);
    check_profile(be, cpu);
    lcsm_model_destroy(mo);
    lcsm_model_destroy(mc);
    lcsm_backend_destroy(cpu);
    lcsm_backend_destroy(be);
    return tu_finish("test_sample");
}
