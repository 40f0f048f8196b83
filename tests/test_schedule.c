/*
 * The flash schedule covers every pair (s, t), s < t, exactly once, and each
 * tile finishes before any of its outputs is needed: checked without running a
 * single convolution.
 *
 * For each output t we keep cov[t], the first input not yet covered. Walking the
 * steps in order, a tile with inputs [in0, in0+U) and output t must start exactly
 * at cov[t] (earlier = overlap, later = gap) and must run at a step i < t (its
 * result is read at step t). At the end cov[t] == t for every t (all s < t
 * covered; s == t is the diagonal of step t). For a schedule with origin P, only
 * inputs s >= P are the schedule's (the prompt is pushed at prefill), so cov
 * starts at P for outputs t >= P.
 *
 * Clipping at the length L only drops outputs >= L, so one run at L = 2^20
 * decides every L <= 2^20 for outputs below L; we still run many L directly,
 * all L up to 2048 and with origins, because the clipping is part of the code.
 * The smooth schedule (lcsm_schedule_smooth) is checked the same way.
 */
#include "engine.h" /* LCSM_MAX_PENDING */
#include "schedule.h"
#include "testutil.h"

/* A spread tile in flight (the test's units: UNITS each). */
enum { UNITS = 37 };
typedef struct pending {
    int done, start, deadline;
} pending;

/* Step i's shares of the tiles in flight (lcsm_spread_units): none negative or
 * past the tile, at least the evenly spaced share total * (i - start + 1) /
 * (deadline - start + 1) rounded down, all done at the deadline; finished
 * tiles leave the list. Returns 0 (and says why) on a wrong share. */
static int run_shares(pending *pend, int *n_pend, int i, const char *what, int L)
{
    for (int k = 0; k < *n_pend;) {
        pending *p = &pend[k];
        const int n = lcsm_spread_units(UNITS, p->done, p->start, i, p->deadline);
        const int even = (int)((long long)UNITS * (i - p->start + 1) / (p->deadline - p->start + 1));
        if (n < 0 || p->done + n > UNITS || (i == p->deadline && p->done + n != UNITS) || p->done + n < even) {
            fprintf(stderr, "%s L=%d step %d: spread share %d of %d left, deadline %d\n", what, L, i, n,
                    UNITS - p->done, p->deadline);
            return 0;
        }
        p->done += n;
        if (p->done == UNITS)
            *p = pend[--*n_pend];
        else
            k++;
    }
    return 1;
}

/* Lagged flash (lag >= 1) adds: the tile after step i feeds outputs from
 * i + lag on, so its inputs reach outputs t >= s + lag only, cov[t] ends at
 * max(origin, t - lag + 1) (the band of step t takes the rest), and a tile
 * of lcsm_spread_from(lag) inputs or more is spread over the steps i .. i + lag - 1
 * in units (lcsm_spread_units) and done
 * before step i + lag reads its first output; at most LCSM_MAX_PENDING (the
 * engine's capacity) spread tiles are in flight. */
static int check_lag(int L, int origin, int lag)
{
    int *cov = malloc(sizeof *cov * (size_t)(L > 0 ? L : 1));
    int ok = 1, max_u = 0;
    enum { CAP = LCSM_MAX_PENDING }; /* spread tiles: U >= lcsm_spread_from(lag) */
    pending pend[CAP];
    int n_pend = 0, max_pend = 0;
    for (int t = 0; t < L; t++)
        cov[t] = origin;
    for (int i = origin; i < L && ok; i++) {
        lcsm_tile tl;
        int work = lcsm_schedule_tile_lag(i, origin, L, lag, &tl);
        if (!work) {
            /* No work is only right when every output of the tile is past L. */
            if (i + lag < L && lcsm_schedule_tile_lag(i, origin, L + lag, lag, &tl) && tl.out0 < L) {
                fprintf(stderr, "L=%d origin=%d lag %d step %d: no tile but outputs remain\n", L, origin, lag, i);
                ok = 0;
            }
        } else {
            max_u = tl.U > max_u ? tl.U : max_u;
            if (tl.in0 < origin || tl.in0 + tl.U - 1 != i || tl.out0 != i + lag || tl.n_out < 1 || tl.n_out > tl.U ||
                tl.out0 + tl.n_out > L || (tl.U & (tl.U - 1))) {
                fprintf(stderr, "L=%d origin=%d lag %d step %d: malformed tile U=%d in0=%d out0=%d n_out=%d\n", L,
                        origin, lag, i, tl.U, tl.in0, tl.out0, tl.n_out);
                ok = 0;
                break;
            }
            for (int t = tl.out0; t < tl.out0 + tl.n_out; t++) {
                if (cov[t] != tl.in0 || i + lag - 1 >= t) {
                    fprintf(stderr, "L=%d origin=%d lag %d step %d: output %d expects input %d, tile starts at %d\n",
                            L, origin, lag, i, t, cov[t], tl.in0);
                    ok = 0;
                    break;
                }
                cov[t] = tl.in0 + tl.U;
            }
            if (lcsm_spread_from(lag) && tl.U >= lcsm_spread_from(lag)) {
                if (n_pend == CAP) {
                    fprintf(stderr, "L=%d lag %d step %d: more than %d spread tiles in flight\n", L, lag, i, CAP);
                    ok = 0;
                    break;
                }
                pend[n_pend].done = 0;
                pend[n_pend].start = i;
                pend[n_pend++].deadline = i + lag - 1;
            }
        }
        max_pend = n_pend > max_pend ? n_pend : max_pend;
        ok = ok && run_shares(pend, &n_pend, i, "lagged", L);
    }
    for (int t = origin; t < L && ok; t++)
        if (cov[t] != (t - lag + 1 > origin ? t - lag + 1 : origin)) {
            fprintf(stderr, "L=%d origin=%d lag %d: output %d covered up to input %d\n", L, origin, lag, t, cov[t]);
            ok = 0;
        }
    if (ok && lag == 1 && max_u != lcsm_schedule_max_tile(origin, L)) {
        fprintf(stderr, "L=%d origin=%d: largest tile %d, lcsm_schedule_max_tile says %d\n", L, origin, max_u,
                lcsm_schedule_max_tile(origin, L));
        ok = 0;
    }
    if (ok && max_u > lcsm_schedule_max_tile(origin, L)) {
        fprintf(stderr, "L=%d lag %d: a tile of %d past the prepared %d\n", L, lag, max_u,
                lcsm_schedule_max_tile(origin, L));
        ok = 0;
    }
    free(cov);
    return ok;
}

static int check(int L, int origin) { return check_lag(L, origin, 1); }

/* The smooth schedule (block s0): the same walk, the tiles of each step from
 * lcsm_schedule_smooth. A tile reaches its outputs only from a later step
 * (out0 > i), covers them from cov[t] on, and is spread over i .. out0 - 1 in
 * units; in the end cov[t] is where the band of output t starts
 * (lcsm_smooth_band). Every tile of level U has U + 1 or 2U + 1 as its delay,
 * and its slack (out0 - i) is at least U. */
static int check_smooth(int L, int origin, int s0)
{
    int *cov = malloc(sizeof *cov * (size_t)(L > 0 ? L : 1));
    int ok = 1, max_u = 0, n_pend = 0;
    enum { CAP = LCSM_MAX_PENDING, MAXT = 64 };
    pending pend[CAP];
    for (int t = 0; t < L; t++)
        cov[t] = origin;
    for (int i = origin; i < L && ok; i++) {
        lcsm_tile tiles[MAXT];
        const int n = lcsm_schedule_smooth(i, origin, L, s0, tiles, MAXT);
        for (int k = 0; k < n && ok; k++) {
            const lcsm_tile *tl = &tiles[k];
            const int d = lcsm_tile_delay(tl);
            max_u = tl->U > max_u ? tl->U : max_u;
            if (tl->in0 < origin || tl->in0 + tl->U - 1 != i || (d != tl->U + 1 && d != 2 * tl->U + 1) ||
                tl->n_out < 1 || tl->n_out > tl->U || tl->out0 + tl->n_out > L || (tl->U & (tl->U - 1)) ||
                tl->U < s0 || tl->out0 - i < tl->U) {
                fprintf(stderr, "smooth L=%d origin=%d step %d: malformed tile U=%d in0=%d out0=%d n_out=%d\n", L,
                        origin, i, tl->U, tl->in0, tl->out0, tl->n_out);
                ok = 0;
                break;
            }
            for (int t = tl->out0; t < tl->out0 + tl->n_out; t++) {
                if (cov[t] != tl->in0) {
                    fprintf(stderr, "smooth L=%d origin=%d step %d: output %d expects input %d, tile starts at %d\n",
                            L, origin, i, t, cov[t], tl->in0);
                    ok = 0;
                    break;
                }
                cov[t] = tl->in0 + tl->U;
            }
            if (n_pend == CAP) {
                fprintf(stderr, "smooth L=%d step %d: more than %d tiles in flight\n", L, i, CAP);
                ok = 0;
                break;
            }
            pend[n_pend].done = 0;
            pend[n_pend].start = i;
            pend[n_pend++].deadline = tl->out0 - 1;
        }
        ok = ok && run_shares(pend, &n_pend, i, "smooth", L);
    }
    for (int t = origin; t < L && ok; t++) {
        const int band = lcsm_smooth_band(t, origin, s0);
        if (cov[t] != t - band || band >= 2 * s0) {
            fprintf(stderr, "smooth L=%d origin=%d: output %d covered up to input %d, band %d\n", L, origin, t, cov[t],
                    band);
            ok = 0;
        }
    }
    if (ok && max_u != lcsm_smooth_max_tile(origin, L, s0)) {
        fprintf(stderr, "smooth L=%d origin=%d: largest tile %d, lcsm_smooth_max_tile says %d\n", L, origin, max_u,
                lcsm_smooth_max_tile(origin, L, s0));
        ok = 0;
    }
    free(cov);
    return ok;
}

int main(void)
{
    uint64_t rng = tu_seed();
    int bad = 0;
    for (int L = 1; L <= 2048; L++)
        bad += !check(L, 0);
    CHECK(bad == 0, "%d lengths up to 2048 failed", bad);
    bad = 0;
    for (int L = 2; L <= 600; L += 7)
        for (int P = 1; P < L; P += 13)
            bad += !check(L, P);
    CHECK(bad == 0, "%d (L, origin) pairs failed", bad);
    const int big[] = {1 << 20, (1 << 20) - 1, (1 << 19) + 1, 1000003, 65536, 16384, 100000};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        CHECK(check(big[i], 0), "L=%d", big[i]);
    for (int k = 0; k < 20; k++) {
        int L = 2 + (int)(tu_next(&rng) % (1 << 20));
        int P = (int)(tu_next(&rng) % (unsigned)L);
        CHECK(check(L, P), "random L=%d origin=%d", L, P);
    }
    /* Lagged flash: lags 1 .. 64 at L = 2^20 (which decides every shorter L:
     * clipping only drops outputs), all lags at short lengths with origins. */
    bad = 0;
    for (int lag = 1; lag <= 64; lag++)
        bad += !check_lag(1 << 20, 0, lag);
    CHECK(bad == 0, "%d lags at L = 2^20 failed", bad);
    bad = 0;
    for (int lag = 2; lag <= 64; lag++)
        for (int L = 1; L <= 300; L += 1 + lag % 7)
            for (int P = 0; P < L; P += 1 + L / 5)
                bad += !check_lag(L, P, lag);
    CHECK(bad == 0, "%d (L, origin, lag) triples failed", bad);
    for (int k = 0; k < 8; k++) {
        int L = 2 + (int)(tu_next(&rng) % (1 << 20)), P = (int)(tu_next(&rng) % (unsigned)L);
        int lag = 2 + (int)(tu_next(&rng) % 1023);
        CHECK(check_lag(L, P, lag), "random L=%d origin=%d lag %d", L, P, lag);
    }
    /* The smooth schedule: blocks 1, 2, 16; all short lengths with origins, and
     * 2^20 (deciding every shorter L at origin 0). */
    bad = 0;
    const int s0s[] = {1, 2, LCSM_SMOOTH_S0};
    for (int k = 0; k < 3; k++)
        for (int L = 1; L <= 700; L++)
            for (int P = 0; P < L; P += 1 + L / 3)
                bad += !check_smooth(L, P, s0s[k]);
    CHECK(bad == 0, "%d (L, origin, s0) triples of the smooth schedule failed", bad);
    CHECK(check_smooth(1 << 20, 0, LCSM_SMOOTH_S0), "smooth L = 2^20");
    CHECK(check_smooth((1 << 20) - 5, 77, LCSM_SMOOTH_S0), "smooth L = 2^20 - 5, origin 77");
    for (int k = 0; k < 4; k++) {
        int L = 2 + (int)(tu_next(&rng) % (1 << 18)), P = (int)(tu_next(&rng) % (unsigned)L);
        CHECK(check_smooth(L, P, LCSM_SMOOTH_S0), "smooth random L=%d origin=%d", L, P);
    }
    CHECK(lcsm_spread_units(10, 0, 5, 5, 5) == 10 && lcsm_spread_units(10, 0, 5, 5, 9) == 2 &&
              lcsm_spread_units(9, 0, 0, 0, 3) == 3 && lcsm_spread_units(3, 0, 0, 0, 8) == 1 &&
              lcsm_spread_units(3, 1, 0, 1, 8) == 0 && lcsm_spread_units(3, 1, 0, 3, 8) == 1 &&
              lcsm_spread_units(3, 1, 0, 8, 8) == 2,
          "spread shares");
    /* The tile of a step depends only on lowbit(j + 1). */
    lcsm_tile tl;
    lcsm_schedule_tile(11, 0, 100, &tl); /* j + 1 = 12 -> U = 4 */
    CHECK(tl.U == 4 && tl.in0 == 8 && tl.out0 == 12 && tl.n_out == 4, "step 11: U=%d in0=%d", tl.U, tl.in0);
    lcsm_schedule_tile(14, 7, 100, &tl); /* j + 1 = 8 -> U = 8 */
    CHECK(tl.U == 8 && tl.in0 == 7 && tl.out0 == 15, "origin 7 step 14: U=%d in0=%d", tl.U, tl.in0);
    CHECK(lcsm_schedule_tile(98, 0, 100, &tl) && tl.n_out == 1, "clipped tile n_out=%d", tl.n_out);
    CHECK(!lcsm_schedule_tile(99, 0, 100, &tl), "the last step has no tile");
    return tu_finish("test_schedule");
}
