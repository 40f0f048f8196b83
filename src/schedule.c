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

int lcsm_spread_units(int remaining, int step, int deadline)
{
    const int steps = deadline - step + 1;
    return steps <= 1 ? remaining : (remaining + steps - 1) / steps;
}

int lcsm_spread_from(int lag)
{
    if (lag <= 1)
        return 0;
    return lag / 16 > 16 ? lag / 16 : 16;
}
