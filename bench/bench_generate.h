/*
 * lcsm-bench: the timed generation loops. Both produce the same work as the
 * PyTorch peer's: a P-token prompt through the parallel forward (prefill), the
 * first token sampled from its last logits, then L - P steps, each feeding one
 * token per sequence and sampling the next; every step's wall time is recorded.
 */
#ifndef LCSM_BENCH_GENERATE_H
#define LCSM_BENCH_GENERATE_H

#include "lcsm.h"

#include <stdint.h>

/* Only A, C, G, T are sampled (ids 7..10), as `lcsm generate` does: the random
 * model would otherwise also emit special tokens. Timing does not depend on it. */
enum { BENCH_TOKEN_LO = 7, BENCH_TOKEN_HI = 11 };

/* Runs of more than twice this many steps print a progress line on stderr
 * every this many steps, and at each power of two from 1024 before that (a
 * cell is a child process: a run stopped by a time limit still shows its rate
 * and its slowest steps). */
enum { BENCH_PROGRESS_STEPS = 1 << 16 };
static inline int bench_long_run(int steps) { return steps > 2 * BENCH_PROGRESS_STEPS; }
static inline int bench_progress_due(int step)
{
    return step % BENCH_PROGRESS_STEPS == 0 || (step >= 1024 && !(step & (step - 1)));
}

typedef struct bench_gen {
    int batch, prompt, L; /* L = prompt + steps = total length per sequence */
    int n_vocab;
    float temperature; /* 0: greedy */
    uint64_t seed;
    const int32_t *prompt_ids; /* [batch][prompt] */
    int32_t *out;              /* [batch][L - prompt + 1]: every sampled token */
    double *lat_ms;            /* [L - prompt] step times, or NULL */
    lcsm_backend *profiled;    /* non-NULL: its kernel profile is reset after the prefill */
    double prefill_s, gen_s;   /* set by the loops */
} bench_gen;

/* The prompt a cell uses: a fixed pattern of A C G T, different per sequence. */
void bench_make_prompt(int32_t *ids, int batch, int prompt);

/* Lazy, eager or flash through a session (created with max_len >= L):
 * lcsm_session_prefill, then lcsm_session_step_sample. The first
 * token is sampled on the host from the prefill's logits with the same rule
 * (greedy is the same argmax; at temperature > 0 the first token comes from the
 * bench's own generator). Resets the session and reseeds its sampler first. */
lcsm_status bench_generate_session(lcsm_session *s, bench_gen *g);

/* The cache-less baseline: lcsm_model_forward over the whole prefix for every
 * new token (lengths prompt, prompt+1, ..., L), sampling from the last position
 * on the host. The model's l_max must be >= L. */
lcsm_status bench_generate_recompute(lcsm_model *m, bench_gen *g);

/* A prefill cell's timed work: resets the session, then feeds `prompt`
 * ([batch][P]) whole (chunk 0 or >= P: one lcsm_session_prefill) or in chunks
 * of `chunk` tokens (lcsm_session_prefill of the first, lcsm_session_extend of
 * the others; `packed` holds [batch][chunk] for them). Only the last call asks
 * for logits ([batch][n_vocab] into `logits`), which also waits for a device.
 * *secs: from the first call to the return of the last; *n_calls: the calls. */
lcsm_status bench_prefill(lcsm_session *s, const int32_t *prompt, int batch, int P, int chunk, float *logits,
                          int32_t *packed, double *secs, int *n_calls);

/* The greedy next token of each sequence ([batch][n_vocab] logits), as the
 * generation loops pick it, hashed (bench_fnv1a) for exactness checks. */
uint64_t bench_greedy_hash(const float *logits, int batch, int n_vocab);

#endif /* LCSM_BENCH_GENERATE_H */
