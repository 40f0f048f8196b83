/*
 * The flash tiling schedule (DESIGN.md section 1): a pure function from a step to
 * the tile that step must run. No backend, no memory: every backend runs the
 * same tiles, and tests check coverage without convolving anything.
 *
 * A schedule starts at position `origin` (the prompt length; the prompt's
 * contribution to later outputs is pushed at prefill). After the step that
 * processed position t, with j = t - origin and U = lowbit(j + 1), inputs
 * [t+1-U, t] contribute to outputs [t+1, t+U] with filter taps h[1 .. 2U-1].
 * Outputs at or past the buffer length L are dropped.
 */
#ifndef LCSM_SCHEDULE_H
#define LCSM_SCHEDULE_H

typedef struct lcsm_tile {
    int U;     /* tile size, a power of two */
    int in0;   /* first input position; inputs in0 .. in0+U-1 */
    int out0;  /* first output position */
    int n_out; /* outputs out0 .. out0+n_out-1 (n_out <= U, clipped at L) */
} lcsm_tile;

/* Fills *tile for the step that processed position t (origin <= t < L).
 * Returns 1 if there is work, 0 if every output of the tile is past L. */
int lcsm_schedule_tile(int t, int origin, int L, lcsm_tile *tile);

/* The largest U any step in [origin, L) runs (0 if none). */
int lcsm_schedule_max_tile(int origin, int L);

/* Lagged flash (DESIGN.md section 7), lag >= 1: a step reads the taps 0 .. lag-1
 * directly (the band), the tiles take the rest. After the step that processed
 * position t, the tile of the plain schedule shifted by lag - 1: inputs
 * [t+1-U, t] to outputs [t+lag, t+lag+U-1] (taps lag .. lag+2U-2), clipped at L,
 * so the step that reads its first output comes lag steps later. lag 1 is
 * lcsm_schedule_tile. Returns 1 if there is work. */
int lcsm_schedule_tile_lag(int t, int origin, int L, int lag, lcsm_tile *tile);

/* The smallest tile lagged flash spreads (0 for lag 1: none): lag / 16, at
 * least 16, so that at most 16 + log2(L) spread tiles are in flight (tiles of
 * size U come every 2U steps and live lag steps). */
int lcsm_spread_from(int lag);

/* How much of a spread tile to run now: `remaining` units of work left, this
 * step `step`, the tile due complete at the end of step `deadline` (>= step):
 * an even share, ceil(remaining / (deadline - step + 1)), so it completes on
 * time whatever the units cost. */
int lcsm_spread_units(int remaining, int step, int deadline);

#endif
