/*
 * lcsm-bench: one lcsm cell in a child process.
 *
 * The parent forks before any thread or driver exists in it; the child creates
 * the backend, the model (random weights with l_max = L, or loaded) and the
 * session, runs the warm-up generations untimed, then the timed repeats, and
 * sends the results and the per-step times back through a pipe. The parent
 * takes the child's peak resident memory from wait4(), so every cell's figure
 * is its own, whatever ran before it.
 */
#ifndef LCSM_BENCH_CELL_H
#define LCSM_BENCH_CELL_H

#include "bench.h"

#include <sys/types.h>

/* Runs `c` and fills `r` (r->ok tells whether it worked; r->err why not). The
 * per-step times of the median repeat land in r->lat_ms (free with
 * bench_result_free). */
void bench_run_cell(const bench_cell *c, bench_result *r);

/* Length of the untimed warm-up generations of a cell of total length L. */
int bench_warmup_len(int prompt, int L);

/* Reads exactly n bytes from fd (0), or fails (-1); retries on EINTR. Writes
 * likewise. Shared with the peer runner. */
int bench_read_all(int fd, void *buf, size_t n);
int bench_write_all(int fd, const void *buf, size_t n);

/* Forks with a pipe from the child to the parent: returns the child's pid
 * (0 in the child) with fd[0] the parent's read end and fd[1] the child's
 * write end; each side closes the other's end. On failure returns -1 with a
 * message in err and no descriptor open. */
pid_t bench_fork_pipe(int fd[2], char *err, size_t cap);

#endif /* LCSM_BENCH_CELL_H */
