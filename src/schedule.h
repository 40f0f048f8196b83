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

#endif
