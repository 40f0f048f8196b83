/*
 * The backend interface: a table of operations per device (ggml's habit).
 *
 * The engine (src/) owns the model, the schedule and the order of work; a backend
 * owns memory and arithmetic. Buffers are opaque; the engine names places in them
 * with lcsm_ref (buffer + offset in floats) and never dereferences them, so a
 * device backend keeps everything resident and the engine stays the same.
 *
 * Layouts (all float32, row-major):
 *   activations   [rows][width], rows = batch (decode) or batch*len (prefill)
 *   long-conv signals are TIME-MAJOR: [time][rows], rows = G*B*D, where row
 *     r = (g*B + b)*D + c is group (layer) g, sequence b, channel c, and uses
 *     filter g*D + c. Time-major makes a token's column contiguous and lets
 *     lazy/eager/direct work vectorise across rows.
 *   filters (lcsm_filters) are backend-owned: G*D filters of length lh, plus the
 *     per-channel skip term dbias, plus the spectra of the flash tile segments.
 *
 * Every operation returns LCSM_OK or an error with the backend's last-error text
 * set (lcsm__set_error). Operations are issued in order; a device backend may
 * queue them and only synchronise in read().
 */
#ifndef LCSM_BACKEND_H
#define LCSM_BACKEND_H

#include "lcsm.h"
#include <stddef.h>

typedef struct lcsm_buf lcsm_buf;         /* backend-defined */
typedef struct lcsm_filters lcsm_filters; /* backend-defined */

/* Weights and the activations of a step start at multiples of LCSM_ALIGN
 * floats (64 bytes) of their buffers, so device kernels may read their rows as
 * aligned vectors when the row length allows. */
#define LCSM_ALIGN 16

/* n rounded up to a multiple of LCSM_ALIGN. */
static inline size_t lcsm_align_up(size_t n) { return (n + LCSM_ALIGN - 1) / LCSM_ALIGN * LCSM_ALIGN; }

typedef struct lcsm_ref {
    lcsm_buf *buf;
    size_t off; /* in floats */
} lcsm_ref;

static inline lcsm_ref lcsm_ref_at(lcsm_ref r, size_t floats)
{
    r.off += floats;
    return r;
}

/* Prompts up to this length push their contribution into the accumulators
 * directly in long_conv (every backend): an FFT of the whole session length
 * costs more than len multiply-adds per output. */
#define LCSM_LONG_CONV_DIRECT_MAX 32

/* log2 of a power of two (the flash tile sizes index their spectra by it). */
static inline int lcsm_ilog2(unsigned v)
{
    int k = 0;
    while (v > 1) {
        v >>= 1;
        k++;
    }
    return k;
}

/* Geometry of a batched set of long convolutions (see the layout above). */
typedef struct lcsm_conv_geom {
    int G; /* groups (layers) covered */
    int B; /* sequences */
    int D; /* channels */
    int L; /* length of the time axis of history and accumulator buffers */
} lcsm_conv_geom;

enum {
    LCSM_LINEAR_ACCUMULATE = 1, /* out += x W^T (+ b) instead of out = */
    LCSM_LINEAR_GELU = 2        /* out = gelu_tanh(x W^T + b); not with ACCUMULATE */
};

/* How the mixer of one decode step gets the long-convolution value. */
typedef enum lcsm_mix_mode {
    LCSM_MIX_LAZY = 0,  /* sum over the whole history now */
    LCSM_MIX_CACHED = 1 /* acc[t] holds every past contribution; add the diagonal */
} lcsm_mix_mode;

/* Parameters of one Hyena operator's decode step. */
typedef struct lcsm_hyena_step_args {
    lcsm_ref u;       /* [B][3D] in_proj output of this token */
    lcsm_ref conv_w;  /* [3D][3] short conv taps (tap 2 = current) */
    lcsm_ref conv_b;  /* [3D] */
    lcsm_ref state;   /* [B][2][3D] in_proj outputs of positions t-2, t-1 */
    lcsm_ref hist;    /* time-major [L][G*B*D] history of a = v*x1, all groups */
    lcsm_ref acc;     /* same layout; accumulated past contributions (not LAZY) */
    lcsm_ref y;       /* [B][D] out: (conv + skip) * x0 */
    lcsm_ref work;    /* [B][D] scratch the op may overwrite */
    int group;        /* which group (layer) of hist/acc/filters */
    int t;            /* position */
    lcsm_mix_mode mode;
} lcsm_hyena_step_args;

typedef struct lcsm_backend_ops {
    const char *name;
    void (*destroy)(lcsm_backend *be);

    /* ---- memory */
    lcsm_status (*alloc)(lcsm_backend *be, size_t bytes, lcsm_buf **out);
    void (*release)(lcsm_backend *be, lcsm_buf *buf);
    lcsm_status (*write)(lcsm_backend *be, lcsm_ref dst, const float *src, size_t n);
    lcsm_status (*read)(lcsm_backend *be, lcsm_ref src, float *dst, size_t n);
    lcsm_status (*zero)(lcsm_backend *be, lcsm_ref dst, size_t n);

    /* ---- dense ops */
    /* out[i][:] = E[ids[i]][:] for i < n; ids on the host, already range-checked. */
    lcsm_status (*embed)(lcsm_backend *be, lcsm_ref E, const int32_t *ids, int n, int D,
                         lcsm_ref out);
    lcsm_status (*layernorm)(lcsm_backend *be, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out,
                             int rows, int D, float eps);
    /* out[rows][n_out] (op)= act(x[rows][n_in] W^T + bias); W is [n_out][n_in];
     * bias.buf may be NULL. */
    lcsm_status (*linear)(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out,
                          int rows, int n_in, int n_out, int flags);

    /* ---- Hyena operator, whole sequences (prefill and the parallel forward) */
    /* Short causal conv over u [B][len][3D] from a zero state; writes
     * x0 [B][len][D], a = v*x1 time-major into a_tm ([len][a_stride] starting at
     * column 0 of the ref: column b*D + c), and, if state.buf, the last two rows of
     * u per sequence into state [B][2][3D] (zeros where len < 2). */
    lcsm_status (*shortconv_seq)(lcsm_backend *be, lcsm_ref u, lcsm_ref conv_w, lcsm_ref conv_b,
                                 int B, int len, int D, lcsm_ref x0, lcsm_ref a_tm,
                                 size_t a_stride, lcsm_ref state);
    /* Causal long convolution of group g of `f` for whole sequences, B*D columns
     * starting at the refs, time-major:
     *   y_tm[t][col] = sum_{s<=t} h[t-s] a_tm[s][col]            for t < len
     * and, if acc.buf (same row stride as a_tm), the prompt's contribution to
     * later outputs:
     *   acc[t][col] += sum_{s<len} h[t-s] a_tm[s][col]           for len <= t < acc_len */
    lcsm_status (*long_conv)(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len,
                             lcsm_ref a_tm, size_t a_stride, lcsm_ref y_tm, size_t y_stride,
                             lcsm_ref acc, int acc_len);
    /* out[b*len+t][c] = x0[b*len+t][c] * (y_tm[t][b*D+c] + dbias[g*D+c] * a_tm[t][b*D+c]) */
    lcsm_status (*gate_seq)(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len,
                            lcsm_ref y_tm, size_t y_stride, lcsm_ref a_tm, size_t a_stride,
                            lcsm_ref x0, lcsm_ref out);

    /* ---- Hyena operator, one decode step */
    lcsm_status (*hyena_step)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                              const lcsm_hyena_step_args *args);
    /* A block of the (input, output) square for every row (all groups at once):
     *   acc[out0 + j] += sum_{m < n_in} h[out0 + j - in0 - m] hist[in0 + m],  j < n_out
     * with out0 >= in0 + n_in, 1 <= n_out, inside the geometry (the engine's
     * lcsm__block_conv checks and picks the op). block_direct sums directly (eager
     * pushes, small tiles); tile_fft computes a flash tile (n_in = U a power of two
     * >= fft_threshold, out0 = in0 + U, n_out <= U) with the spectra made by
     * filters_prepare. */
    lcsm_status (*block_direct)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                                lcsm_ref hist, lcsm_ref acc, int in0, int n_in, int out0, int n_out);
    lcsm_status (*tile_fft)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                            lcsm_ref hist, lcsm_ref acc, int in0, int U, int out0, int n_out);

    /* ---- filters */
    /* h is host [G*D][lh] (row-major), dbias host [G*D]. */
    lcsm_status (*filters_create)(lcsm_backend *be, const float *h, const float *dbias, int G,
                                  int D, int lh, lcsm_filters **out);
    /* Makes sure the spectra for FFT tiles up to size max_tile exist and that
     * tile_fft on them needs no allocation. The engine calls it under the
     * model's lock (several sessions of one model may be created at once). */
    lcsm_status (*filters_prepare)(lcsm_backend *be, lcsm_filters *f, int max_tile);
    /* Optional (NULL = nothing to do): makes what a session of this geometry needs
     * (FFT plans and scratch for tiles up to max_tile, 0 when it runs none; the
     * mixer's scratch), so no step allocates. Called for every session, after
     * filters_prepare, under the model's lock. */
    lcsm_status (*session_prepare)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                                   int max_tile);
    void (*filters_destroy)(lcsm_backend *be, lcsm_filters *f);
    size_t (*filters_bytes)(const lcsm_filters *f);

    /* ---- decoding on the device (optional: all three or none). The engine's
     * generate loop then keeps the sampled ids on the device and never waits
     * inside the loop, so the host queues step t+1 while the device runs step t. */
    /* out[i][:] = E[ids[i]][:], the ids already on the device (from sample). */
    lcsm_status (*embed_dev)(lcsm_backend *be, lcsm_ref E, lcsm_ref ids, int n, int D, lcsm_ref out);
    /* Samples one id per row of logits [B][V] as lcsm__sample does (greedy, or
     * temperature / top-k / top-p over [p->token_lo, p->token_hi), sequence b's
     * generator at lcsm__rng_state(p->seed, b, draws)) into ids (B int32 on the
     * device) and copies them to host_ids: before returning with wait, else
     * asynchronously (host_ids untouched by the caller until finish or a later
     * waiting call). With temperature > 0 only for token_hi - token_lo <=
     * be->sample_max. */
    lcsm_status (*sample)(lcsm_backend *be, lcsm_ref logits, int B, int V, const lcsm_sampler_params *p,
                          uint64_t draws, lcsm_ref ids, int32_t *host_ids, int wait);
    /* Waits for all queued work, copies included. */
    lcsm_status (*finish)(lcsm_backend *be);

    /* ---- optional (NULL = not supported) */
    /* lcsm_backend_get_profile: waits for queued work, then reports (and with
     * reset clears) device time per kernel. */
    lcsm_status (*profile)(lcsm_backend *be, lcsm_profile_entry *out, int cap, int *count, int reset);

} lcsm_backend_ops;

/* The part of every backend the engine sees; backends embed it first. */
struct lcsm_backend {
    const lcsm_backend_ops *ops;
    char name[32];
    char description[256];
    int fft_threshold;
    int sample_max; /* candidates the device sampler handles at temperature > 0 */
    lcsm_backend_stats stats; /* kept up to date by the backend */
    char last_error[512];
};

/* The backends compiled in; each returns LCSM_OK and a backend, or an error. */
typedef lcsm_status (*lcsm_backend_factory)(const lcsm_backend_options *opt, lcsm_backend **out);
/* Lists a backend's devices: fills up to cap entries, sets *count to how many exist. */
typedef lcsm_status (*lcsm_backend_lister)(lcsm_device_info *out, int cap, int *count);

#endif /* LCSM_BACKEND_H */
