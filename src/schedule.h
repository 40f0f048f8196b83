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

/* A tile's delay d: its outputs start d - 1 after its inputs end (1 for the
 * plain schedule, lag for lagged flash); its taps are d .. d + 2U - 2. */
static inline int lcsm_tile_delay(const lcsm_tile *t) { return t->out0 - (t->in0 + t->U - 1); }

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

/* How much of a spread tile to run now: `total` units of work, `done` of them
 * done, the tile made at step `start` and due complete at the end of step
 * `deadline` (>= start), this step `step` in [start, deadline]: what brings it
 * to ceil(total * (step - start + 1) / (deadline - start + 1)) units, so its
 * work is evenly spaced over its steps and complete on time whatever the units
 * cost (0 on some steps when it has fewer units than steps). */
int lcsm_spread_units(int total, int done, int start, int step, int deadline);

/* The smooth schedule (DESIGN.md section 6): every tile has slack of its own
 * size, so a tile's work spreads evenly over as many steps as it has inputs.
 * Positions count in blocks from `origin`; at level U = s0 * 2^k, input block
 * b (inputs origin + bU .. +U-1) reaches output block b + 2, and block b + 3
 * too when b is even: tiles of delay U + 1 and 2U + 1 (taps U+1 .. 3U-1 and
 * 2U+1 .. 4U-1). The pairs of the same or the adjacent s0-block are the band
 * (lcsm_smooth_band); every other pair is in exactly one tile (test_schedule).
 * After the step that processed position t, the tiles whose input block ends
 * at t (at most two per level) go to tiles[] (clipped at L; a tile's first
 * output out0 is read by step out0, so it is due by the end of step out0 - 1);
 * returns their number. `cap` >= 2 * 31. */
int lcsm_schedule_smooth(int t, int origin, int L, int s0, lcsm_tile *tiles, int cap);

/* The band of the smooth schedule at output t: the taps 1 .. band (inputs t -
 * band .. t - 1) summed directly, band = t - max(origin, the start of the
 * s0-block before t's), fewer than 2 * s0. */
int lcsm_smooth_band(int t, int origin, int s0);

/* The largest U a smooth schedule over [origin, L) runs (0 if none). */
int lcsm_smooth_max_tile(int origin, int L, int s0);

/* The smallest block of the smooth schedule (its band is under 2 * 16 taps). */
#define LCSM_SMOOTH_S0 16

#endif
