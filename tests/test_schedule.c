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
 */
#include "schedule.h"
#include "testutil.h"

static int check(int L, int origin)
{
    int *cov = malloc(sizeof *cov * (size_t)(L > 0 ? L : 1));
    int ok = 1, max_u = 0;
    for (int t = 0; t < L; t++)
        cov[t] = origin;
    for (int i = origin; i < L && ok; i++) {
        lcsm_tile tl;
        int work = lcsm_schedule_tile(i, origin, L, &tl);
        if (!work) {
            /* No work is only right when every output of the tile is past L. */
            if (i + 1 < L) {
                fprintf(stderr, "L=%d origin=%d step %d: no tile but outputs remain\n", L, origin, i);
                ok = 0;
            }
            continue;
        }
        max_u = tl.U > max_u ? tl.U : max_u;
        if (tl.in0 < origin || tl.in0 + tl.U - 1 != i || tl.out0 != i + 1 || tl.n_out < 1 || tl.n_out > tl.U ||
            tl.out0 + tl.n_out > L || (tl.U & (tl.U - 1))) {
            fprintf(stderr, "L=%d origin=%d step %d: malformed tile U=%d in0=%d out0=%d n_out=%d\n", L, origin, i,
                    tl.U, tl.in0, tl.out0, tl.n_out);
            ok = 0;
            break;
        }
        for (int t = tl.out0; t < tl.out0 + tl.n_out; t++) {
            if (cov[t] != tl.in0 || i >= t) {
                fprintf(stderr, "L=%d origin=%d step %d: output %d expects input %d, tile starts at %d\n", L,
                        origin, i, t, cov[t], tl.in0);
                ok = 0;
                break;
            }
            cov[t] = tl.in0 + tl.U;
        }
    }
    for (int t = origin; t < L && ok; t++)
        if (cov[t] != t) {
            fprintf(stderr, "L=%d origin=%d: output %d covered only up to input %d\n", L, origin, t, cov[t]);
            ok = 0;
        }
    if (ok && max_u != lcsm_schedule_max_tile(origin, L)) {
        fprintf(stderr, "L=%d origin=%d: largest tile %d, lcsm_schedule_max_tile says %d\n", L, origin, max_u,
                lcsm_schedule_max_tile(origin, L));
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
