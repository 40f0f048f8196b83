#include "schedule.h"

int lcsm_schedule_tile(int t, int origin, int L, lcsm_tile *tile)
{
    unsigned j1 = (unsigned)(t - origin) + 1u; /* j + 1 >= 1 */
    int U = (int)(j1 & (~j1 + 1u));            /* lowbit(j + 1) */
    int out0 = t + 1;
    int n_out = L - out0 < U ? L - out0 : U;
    tile->U = U;
    tile->in0 = t + 1 - U;
    tile->out0 = out0;
    tile->n_out = n_out > 0 ? n_out : 0;
    return n_out > 0;
}

int lcsm_schedule_max_tile(int origin, int L)
{
    /* Steps with work have t + 1 < L, i.e. j + 1 in [1, L - 1 - origin]; the largest
     * lowbit over that range is the largest power of two not above its end. */
    int n = L - 1 - origin;
    int U = 0;
    if (n < 1)
        return 0;
    for (U = 1; U <= n / 2; U *= 2)
        ;
    return U;
}

int lcsm_schedule_tile_lag(int t, int origin, int L, int lag, lcsm_tile *tile)
{
    /* the plain schedule in time shifted by lag - 1: its outputs t+1 .. are ours t+lag .. */
    int work = lcsm_schedule_tile(t, origin, L - (lag - 1) > t + 1 ? L - (lag - 1) : t + 1, tile);
    tile->out0 += lag - 1;
    return work && tile->n_out > 0;
}

int lcsm_spread_units(int total, int done, int start, int step, int deadline)
{
    if (step >= deadline)
        return total - done;
    const long long span = (long long)deadline - start + 1, due = ((long long)total * (step - start + 1) + span - 1) / span;
    return due > done ? (int)(due - done) : 0;
}

int lcsm_spread_from(int lag)
{
    if (lag <= 1)
        return 0;
    return lag / 16 > 16 ? lag / 16 : 16;
}

int lcsm_schedule_smooth(int t, int origin, int L, int s0, lcsm_tile *tiles, int cap)
{
    const long j1 = (long)t - origin + 1; /* inputs of the schedule so far */
    int n = 0;
    for (long U = s0; U <= j1 && n + 2 <= cap; U *= 2) {
        if (j1 % U)
            break; /* a block of U ends here only if every smaller one does */
        const long b = j1 / U - 1;
        for (int r = 2; r <= 3; r++) {
            if (r == 3 && b % 2)
                continue;
            const long out0 = origin + (b + r) * U;
            if (out0 >= L)
                continue;
            tiles[n].U = (int)U;
            tiles[n].in0 = (int)(origin + b * U);
            tiles[n].out0 = (int)out0;
            tiles[n].n_out = (int)(L - out0 < U ? L - out0 : U);
            n++;
        }
    }
    return n;
}

int lcsm_smooth_band(int t, int origin, int s0)
{
    const int bt = (t - origin) / s0, start = bt > 0 ? origin + (bt - 1) * s0 : origin;
    return t - start;
}

int lcsm_smooth_max_tile(int origin, int L, int s0)
{
    /* the first tile of level U reaches output origin + 2U */
    int U = 0;
    for (long u = s0; origin + 2 * u < L; u *= 2)
        U = (int)u;
    return U;
}
