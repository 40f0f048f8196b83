/*
 * The online convolution, alone: a backend's tiles (flash) and pushes (eager),
 * walked by the real schedule, and its prompt push (long_conv), against a direct
 * O(L^2) convolution in double precision, on fresh random data.
 *
 * Setup per case: G groups x B sequences x D channels of random signals a and
 * random decaying filters h of length L. Inputs arrive one position at a time;
 * before position t is written, the accumulator acc[t] must hold exactly
 * sum_{s<t} h[t-s] a[s] (everything but the diagonal). With a prompt of P
 * positions, long_conv must return y[t] = sum_{s<=t} h[t-s] a[s] for t < P and
 * push the prompt's part of every later output. Lagged flash (lag > 1): acc[t]
 * lacks the band, the inputs P <= s and t - lag < s < t, and its tiles may run
 * in row parts (units of the backend's spread_unit channels).
 *
 * Bound: 1e-5 relative to the largest output. fp32 FFT convolution errors grow
 * like eps * log2(N) * (sum |h||a|) / |y|; with these inputs that is ~1e-6.
 */
#include "internal.h" /* the backend table and lcsm__block_conv */
#include "schedule.h"
#include "testutil.h"

#define TOL 1e-5

typedef struct conv_case {
    int G, B, D, L, P;
    lcsm_algo algo; /* FLASH or EAGER */
    int lag;        /* flash: 0 or 1 plain, else lagged */
    int parts;      /* flash: tiles in row parts */
} conv_case;

static double run(lcsm_backend *be, const conv_case *c, uint64_t *rng)
{
    const lcsm_backend_ops *op = be->ops;
    const int G = c->G, B = c->B, D = c->D, L = c->L, P = c->P, lag = c->lag > 1 ? c->lag : 1;
    const size_t rows = (size_t)G * B * D, GD = (size_t)G * D;
    float *h = malloc(sizeof *h * GD * L), *dbias = calloc(GD, sizeof *dbias);
    float *a = malloc(sizeof *a * rows * L), *row = malloc(sizeof *row * rows);
    float *y = malloc(sizeof *y * (size_t)(P > 0 ? P : 1) * B * D);
    double *ref = calloc(rows * L, sizeof *ref);
    for (size_t f = 0; f < GD; f++)
        for (int k = 0; k < L; k++) /* decaying like a Hyena filter, plus noise */
            h[f * L + k] = (float)(tu_uniform(rng) * exp(-4.0 * k / L) + 0.05 * tu_uniform(rng));
    for (size_t i = 0; i < rows * L; i++)
        a[i] = (float)tu_uniform(rng);
    /* Reference in double: ref[t][r] = sum_{s<t} h[t-s] a[s] (no diagonal). */
    for (int t = 0; t < L; t++)
        for (int gi = 0; gi < G; gi++)
            for (int b = 0; b < B; b++)
                for (int d = 0; d < D; d++) {
                    size_t r = ((size_t)gi * B + b) * D + d, f = (size_t)gi * D + d;
                    double s = 0;
                    for (int u = 0; u < t; u++)
                        s += (double)h[f * L + t - u] * a[(size_t)u * rows + r];
                    ref[(size_t)t * rows + r] = s;
                    for (int u = t - lag + 1 > P ? t - lag + 1 : P; u < t; u++) /* the band: the step's own */
                        ref[(size_t)t * rows + r] -= (double)h[f * L + t - u] * a[(size_t)u * rows + r];
                }
    double ymax = 0, err = 0;
    for (size_t i = 0; i < rows * L; i++)
        ymax = fabs(ref[i]) > ymax ? fabs(ref[i]) : ymax;

    lcsm_filters *flt = NULL;
    lcsm_buf *hist = NULL, *acc = NULL, *ybuf = NULL;
    lcsm_conv_geom geom = {G, B, D, L};
    float *hT = lcsm__malloc(sizeof *hT * GD * L); /* time-major, the backend's from the call on */
    for (size_t f = 0; hT && f < GD; f++)
        for (int k = 0; k < L; k++)
            hT[(size_t)k * GD + f] = h[f * L + k];
    CHECK(hT != NULL, "time-major filters");
    CHECK_OK(op->filters_create(be, hT, dbias, G, D, L, lag, &flt));
    CHECK_OK(op->filters_prepare(be, flt, lcsm_schedule_max_tile(P, L), 1u << LCSM_SPEC_LAG));
    /* every tile size runs in parts here, of any unit range (a session ends its
     * parts on the backend's blocks below its schedule's fine size: not this test) */
    if (op->session_prepare)
        CHECK_OK(op->session_prepare(be, flt, &geom, lcsm_schedule_max_tile(P, L), 1, 0));
    CHECK_OK(op->alloc(be, sizeof(float) * rows * L, &hist));
    CHECK_OK(op->alloc(be, sizeof(float) * rows * L, &acc));
    CHECK_OK(op->alloc(be, sizeof(float) * (size_t)(P > 0 ? P : 1) * B * D, &ybuf));
    lcsm_ref H = lcsm_f32(hist, 0), A = lcsm_f32(acc, 0), Y = lcsm_f32(ybuf, 0);
    CHECK_OK(op->zero(be, H, rows * L));
    CHECK_OK(op->zero(be, A, rows * L));
    if (P > 0) {
        CHECK_OK(op->write(be, H, a, rows * P));
        for (int gi = 0; gi < G; gi++) {
            CHECK_OK(op->long_conv(be, flt, gi, B, P, lcsm_ref_at(H, (size_t)gi * B * D), rows, Y, (size_t)B * D,
                                   lcsm_ref_at(A, (size_t)gi * B * D), L));
            CHECK_OK(op->read(be, Y, y, (size_t)P * B * D));
            for (int t = 0; t < P; t++)
                for (size_t i = 0; i < (size_t)B * D; i++) {
                    size_t r = (size_t)gi * B * D + i, f = (size_t)gi * D + i % D;
                    double want = (double)h[f * L] * a[(size_t)t * rows + r]; /* inside the prompt: no band */
                    for (int u = 0; u < t; u++)
                        want += (double)h[f * L + t - u] * a[(size_t)u * rows + r];
                    double e = fabs(y[(size_t)t * B * D + i] - want) / ymax;
                    err = e > err ? e : err;
                }
        }
    }
    for (int t = P; t < L; t++) {
        CHECK_OK(op->write(be, lcsm_ref_at(H, (size_t)t * rows), a + (size_t)t * rows, rows));
        CHECK_OK(op->read(be, lcsm_ref_at(A, (size_t)t * rows), row, rows));
        for (size_t r = 0; r < rows; r++) {
            double e = fabs(row[r] - ref[(size_t)t * rows + r]) / ymax;
            err = e > err ? e : err;
        }
        if (c->algo == LCSM_ALGO_FLASH) {
            lcsm_tile tl;
            if (!lcsm_schedule_tile_lag(t, P, L, lag, &tl))
                continue;
            if (!c->parts) {
                CHECK_OK(lcsm__block_conv(be, flt, &geom, H, A, tl.in0, tl.U, tl.out0, tl.n_out, lag, NULL));
                continue;
            }
            /* the parts lagged flash spreads over its steps: unit ranges of 1 to 5 units */
            const int n_units = G * B * lcsm_units_per_group(be->spread_unit, D);
            for (int u = 0; u < n_units;) {
                const int n = 1 + (int)(tu_next(rng) % 5), u1 = u + n < n_units ? u + n : n_units;
                const lcsm_rows part = {u, u1};
                CHECK_OK(lcsm__block_conv(be, flt, &geom, H, A, tl.in0, tl.U, tl.out0, tl.n_out, lag, &part));
                u = u1;
            }
        } else if (t + 1 < L) {
            CHECK_OK(lcsm__block_conv(be, flt, &geom, H, A, t, 1, t + 1, L - t - 1, 1, NULL));
        }
    }
    op->release(be, hist);
    op->release(be, acc);
    op->release(be, ybuf);
    op->filters_destroy(be, flt);
    free(h);
    free(dbias);
    free(a);
    free(row);
    free(y);
    free(ref);
    return err;
}

int main(void)
{
    uint64_t rng = tu_seed();
    const char *backends[8];
    int nb = tu_backends(backends);
    const conv_case cases[] = {
        {1, 1, 1, 1, 0, LCSM_ALGO_FLASH, 0, 0},    {1, 1, 3, 2, 0, LCSM_ALGO_FLASH, 0, 0},
        {2, 1, 5, 7, 0, LCSM_ALGO_FLASH, 0, 0},    {2, 3, 16, 64, 0, LCSM_ALGO_FLASH, 0, 0},
        {2, 3, 20, 100, 0, LCSM_ALGO_FLASH, 0, 0}, {1, 2, 17, 257, 0, LCSM_ALGO_FLASH, 0, 0},
        {2, 1, 8, 1000, 0, LCSM_ALGO_FLASH, 0, 0}, {1, 1, 33, 1500, 0, LCSM_ALGO_FLASH, 0, 0},
        {2, 3, 16, 300, 7, LCSM_ALGO_FLASH, 0, 0}, {1, 2, 20, 513, 100, LCSM_ALGO_FLASH, 0, 0},
        {2, 1, 16, 1024, 1, LCSM_ALGO_FLASH, 0, 0}, {1, 1, 4, 96, 95, LCSM_ALGO_FLASH, 0, 0},
        {2, 3, 16, 200, 0, LCSM_ALGO_EAGER, 0, 0}, {1, 2, 20, 333, 50, LCSM_ALGO_EAGER, 0, 0},
        /* lagged flash: lag 2, 5, 33, 64; tiles in row parts (D past one part); a lag past the length */
        {2, 3, 16, 300, 7, LCSM_ALGO_FLASH, 2, 0}, {2, 1, 100, 300, 0, LCSM_ALGO_FLASH, 5, 1},
        {1, 2, 70, 513, 100, LCSM_ALGO_FLASH, 33, 1}, {1, 1, 130, 1000, 0, LCSM_ALGO_FLASH, 64, 1},
        {2, 1, 8, 40, 3, LCSM_ALGO_FLASH, 64, 0},
    };
    /* LCSM_TEST_QUICK: small cases with FFT tiles from size 2 (every tile an
     * FFT), a prompt push and eager pushes. */
    const conv_case quick_cases[] = {
        {2, 1, 5, 7, 0, LCSM_ALGO_FLASH, 0, 0}, {2, 3, 4, 40, 0, LCSM_ALGO_FLASH, 0, 0}, {1, 2, 4, 33, 20, LCSM_ALGO_FLASH, 0, 0},
        {1, 2, 3, 24, 5, LCSM_ALGO_EAGER, 0, 0}, {1, 1, 70, 40, 3, LCSM_ALGO_FLASH, 4, 1},
    };
    const int quick = tu_quick();
    const conv_case *run_cases = quick ? quick_cases : cases;
    const size_t n_cases = quick ? sizeof quick_cases / sizeof quick_cases[0] : sizeof cases / sizeof cases[0];
    const int thresholds[] = {2, 16, 0};
    for (int bi = 0; bi < nb; bi++)
        for (int ti = 0; ti < (quick ? 1 : 3); ti++) {
            int skip;
            lcsm_backend *be = tu_backend_open(backends[bi], thresholds[ti], &skip);
            if (skip && nb == 1)
                return 77;
            if (!be)
                break;
            for (size_t i = 0; i < n_cases; i++) {
                const conv_case *c = &run_cases[i];
                double e = run(be, c, &rng);
                CHECK(e <= TOL, "%s thr=%d %s G=%d B=%d D=%d L=%d P=%d lag %d%s: rel err %.3g", backends[bi],
                      be->fft_threshold, lcsm_algo_name(c->algo), c->G, c->B, c->D, c->L, c->P, c->lag,
                      c->parts ? " in parts" : "", e);
                printf("  %s thr=%-3d %-5s G=%d B=%d D=%-3d L=%-4d P=%-3d lag %-2d%-9s rel err %.2e\n", backends[bi],
                       be->fft_threshold, lcsm_algo_name(c->algo), c->G, c->B, c->D, c->L, c->P, c->lag > 1 ? c->lag : 1,
                       c->parts ? " in parts" : "", e);
            }
            lcsm_backend_destroy(be);
        }
    return tu_finish("test_conv");
}
