/*
 * The backend interface: a table of operations per device (ggml's habit).
 *
 * The engine (src/) owns the model, the schedule and the order of work; a backend
 * owns memory and arithmetic. Buffers are opaque; the engine names places in them
 * with lcsm_ref (buffer + byte offset + element type) and never dereferences them,
 * so a device backend keeps everything resident and the engine stays the same.
 * Operations grow by kind, not by model: a norm of a kind, an activation code on
 * linear, one Hyena decode step for every stage layout; a backend says which it
 * has (supports), and a model that needs one it lacks is refused at load.
 *
 * Layouts (row-major):
 *   activations   [rows][width] f32, rows = batch (decode) or batch*len (prefill)
 *   weights       [n_out][n_in] in f32, f16 or bf16 (lcsm_ref.dt); everything
 *                 else is f32, token ids i32
 *   long-conv signals are TIME-MAJOR: [time][rows], rows = G*B*D, where row
 *     r = (g*B + b)*D + c is group g (one tiled convolution of a layer), sequence
 *     b, channel c, and uses filter g*D + c. Time-major makes a token's column
 *     contiguous and lets lazy/eager/direct work vectorise across rows.
 *   sequences (lcsm_seq): element (b, t, c) of a [B][len][D] signal at
 *     t*st + b*sb + c elements from the ref: row-major activations (st = width,
 *     sb = len*width) and time-major signals (st = row stride, sb = D) alike.
 *   filters (lcsm_filters) are backend-owned: G*D filters of length lh, plus the
 *     per-channel skip term dbias, plus the spectra of the flash tile segments.
 *
 * Every operation returns LCSM_OK or an error with the backend's last-error text
 * set. Operations are issued in order; a device backend may queue them and only
 * synchronise in read().
 */
#ifndef LCSM_BACKEND_H
#define LCSM_BACKEND_H

#include "lcsm.h"
#include <stddef.h>

typedef struct lcsm_buf lcsm_buf;         /* backend-defined */
typedef struct lcsm_filters lcsm_filters; /* backend-defined */

/* Element types of buffer contents. */
typedef enum lcsm_dtype {
    LCSM_DT_F32 = 0,
    LCSM_DT_F16 = 1,  /* IEEE half */
    LCSM_DT_BF16 = 2, /* the top half of an f32 */
    LCSM_DT_I32 = 3,
    LCSM_DT_C64 = 4,  /* complex: two f32, real first */
    LCSM_DT_COUNT
} lcsm_dtype;

static inline size_t lcsm_dtype_size(lcsm_dtype dt)
{
    return dt == LCSM_DT_F16 || dt == LCSM_DT_BF16 ? 2 : dt == LCSM_DT_C64 ? 8 : 4;
}

static inline const char *lcsm_dtype_name(int dt)
{
    static const char *const names[LCSM_DT_COUNT] = {"f32", "f16", "bf16", "i32", "c64"};
    return (unsigned)dt < LCSM_DT_COUNT ? names[dt] : "?";
}

/* Weights and the activations of a step start at multiples of LCSM_ALIGN_BYTES
 * of their buffers, so device kernels may read their rows as aligned vectors
 * when the row length allows. LCSM_ALIGN is the same in f32 elements. */
#define LCSM_ALIGN_BYTES 64
#define LCSM_ALIGN (LCSM_ALIGN_BYTES / 4)

/* n rounded up to a multiple of LCSM_ALIGN (elements of 4 bytes). */
static inline size_t lcsm_align_up(size_t n) { return (n + LCSM_ALIGN - 1) / LCSM_ALIGN * LCSM_ALIGN; }
/* bytes rounded up to a multiple of LCSM_ALIGN_BYTES. */
static inline size_t lcsm_align_bytes(size_t n) { return (n + LCSM_ALIGN_BYTES - 1) / LCSM_ALIGN_BYTES * LCSM_ALIGN_BYTES; }

typedef struct lcsm_ref {
    lcsm_buf *buf;
    size_t off;     /* in bytes */
    lcsm_dtype dt;  /* of the elements there */
} lcsm_ref;

/* The place `elems` elements (of r's type) after r. */
static inline lcsm_ref lcsm_ref_at(lcsm_ref r, size_t elems)
{
    r.off += elems * lcsm_dtype_size(r.dt);
    return r;
}

/* An f32 ref at `elems` floats into buf (the common case). */
static inline lcsm_ref lcsm_f32(lcsm_buf *buf, size_t elems) { return (lcsm_ref){buf, elems * 4, LCSM_DT_F32}; }

/* The same place seen as another element type. */
static inline lcsm_ref lcsm_ref_as(lcsm_ref r, lcsm_dtype dt)
{
    r.dt = dt;
    return r;
}

/* A [B][len][D] signal: element (b, t, c) at st*t + sb*b + c elements from r. */
typedef struct lcsm_seq {
    lcsm_ref r;
    size_t st, sb;
} lcsm_seq;

/* Row-major [B][len][width] activations, starting at column `col`. */
static inline lcsm_seq lcsm_seq_rows(lcsm_ref r, int len, int width, int col)
{
    return (lcsm_seq){lcsm_ref_at(r, (size_t)col), (size_t)width, (size_t)len * (size_t)width};
}

/* Time-major [len][stride] signals, sequence b at column b*D. */
static inline lcsm_seq lcsm_seq_time(lcsm_ref r, size_t stride, int D) { return (lcsm_seq){r, stride, (size_t)D}; }

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
    int G; /* groups (tiled convolutions) covered */
    int B; /* sequences */
    int D; /* channels */
    int L; /* length of the time axis of history and accumulator buffers */
} lcsm_conv_geom;

/* A part of the rows of a block (tile_fft, block_direct), in units of the
 * backend's spread_unit channels: units [u0, u1), unit u being channels
 * [(u % per) * unit, ...) (up to D) of row group gb = u / per (= g * B + b),
 * per = lcsm_units_per_group(unit, D). NULL: every row. Lagged flash spreads a
 * large tile's units over several steps (src/session.c). */
typedef struct lcsm_rows {
    int u0, u1;
} lcsm_rows;

static inline int lcsm_units_per_group(int unit, int D) { return (D + unit - 1) / unit; }

/* Tile spectra variants. A tile of size U and delay d (its outputs start
 * d - 1 after its inputs end) reads the taps d .. d + 2U - 2, so its spectra
 * depend on d: the filters' lag (lagged flash), or U + 1 and 2U + 1 (the
 * smooth schedule's tiles two and three blocks on, src/schedule.h). */
enum { LCSM_SPEC_LAG, LCSM_SPEC_NEXT2, LCSM_SPEC_NEXT3, LCSM_SPEC_VARIANTS };
static inline int lcsm_spec_delay(int variant, int U, int lag)
{
    return variant == LCSM_SPEC_LAG ? lag : variant == LCSM_SPEC_NEXT2 ? U + 1 : 2 * U + 1;
}
/* The variant whose delay is d for tile size U, or -1 (the first when two
 * coincide: their spectra are the same). */
static inline int lcsm_spec_variant(int d, int U, int lag)
{
    for (int v = 0; v < LCSM_SPEC_VARIANTS; v++)
        if (lcsm_spec_delay(v, U, lag) == d)
            return v;
    return -1;
}

/* Activations, applied elementwise (linear's flags, glu). */
typedef enum lcsm_act {
    LCSM_ACT_NONE = 0,
    LCSM_ACT_GELU_TANH = 1, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    LCSM_ACT_GELU = 2,      /* 0.5 x (1 + erf(x / sqrt 2)) */
    LCSM_ACT_SILU = 3,      /* x / (1 + exp(-x)) */
    LCSM_ACT_COUNT
} lcsm_act;

enum {
    LCSM_LINEAR_ACCUMULATE = 1, /* out += x W^T (+ b) instead of out = ; no activation then */
};
/* The activation code of linear's flags: out = act(x W^T + b). */
#define LCSM_LINEAR_ACT(a) ((int)(a) << 1)
#define LCSM_LINEAR_ACT_OF(flags) ((lcsm_act)(((flags) >> 1) & 7))
#define LCSM_LINEAR_GELU LCSM_LINEAR_ACT(LCSM_ACT_GELU_TANH)

/* Norms over the last axis (width D); w is the scale, b the shift (may be absent). */
typedef enum lcsm_norm_kind {
    LCSM_NORM_LAYER = 0,  /* (x - mean) / sqrt(var + eps) * w + b */
    LCSM_NORM_RMS = 1,    /* x / sqrt(mean(x^2) + eps) * w */
    LCSM_NORM_RMS_SH = 2, /* x / (||x||_2 / sqrt(D) + eps) * w: StripedHyena's, eps outside the root */
    LCSM_NORM_COUNT
} lcsm_norm_kind;

/* How the mixer of one decode step gets a tiled convolution's past. */
typedef enum lcsm_mix_mode {
    LCSM_MIX_LAZY = 0,  /* sum over the whole history now */
    LCSM_MIX_CACHED = 1 /* acc[t] holds every past contribution; add the diagonal */
} lcsm_mix_mode;

/* How a stage's long convolution gets its past. */
typedef enum lcsm_past_kind {
    LCSM_PAST_TILED = 0, /* a tiled group: history + accumulator (flash, eager) or the history (lazy) */
    LCSM_PAST_MODAL = 1, /* a modal recurrence: z_n <- p_n z_n + a_t, y = Re sum_n R_n z_n + D a_t */
    LCSM_PAST_FIR = 2    /* a short explicit filter over a ring of the last inputs, + D a_t */
} lcsm_past_kind;

/* A modal filter h[c][k] = Re sum_n R[c][n] p[c][n]^k (k >= 0) with skip D:
 * p and R are [D][N] complex (c64) or real (f32) refs; the state [B][D][N] of
 * the same type. */
typedef struct lcsm_modal {
    lcsm_ref p, R, skip;
    int N;
} lcsm_modal;

/* A FIR filter: taps [D][len] (tap 0 on the current input), skip [D] (buf
 * NULL: none), and a ring [B][len][D] of the last inputs (input s in slot
 * s % len). */
typedef struct lcsm_fir {
    lcsm_ref taps, skip, ring;
    int len;
} lcsm_fir;

/* One stage of a Hyena chain: s = s * u[mult] (unless mult < 0), then
 * s = (h * s)_t + D s_t with the stage's long filter h and skip D. */
typedef struct lcsm_hyena_stage {
    int mult;            /* stream of the projection multiplied in first, -1: none */
    lcsm_past_kind kind;
    int group;           /* TILED: group of history, accumulator and filters (dbias is D) */
    lcsm_modal modal;    /* MODAL (state: the step's own ref) */
    lcsm_ref state;      /* MODAL: [B][D][N] */
    lcsm_fir fir;        /* FIR */
} lcsm_hyena_stage;

#define LCSM_MAX_STAGES 2
#define LCSM_MAX_STREAMS 4
#define LCSM_MAX_SHORT 8   /* short conv taps */
#define LCSM_MAX_FIR 1024  /* taps of a FIR stage */
#define LCSM_MAX_MODES 256 /* states of a modal stage per channel */

/* Parameters of one Hyena operator's decode step. The projection of the token
 * holds S streams of D channels ([post gate, ..., chain input]); each stream
 * goes through a K-tap causal short conv (none when K = 0), the chain starts
 * at stream S-1, runs the stages (each with its own kind of past), and
 * y = u[0] * s. */
typedef struct lcsm_hyena_step_args {
    lcsm_ref u;      /* [B][S*D] projection of this token */
    int S;           /* streams, 2..LCSM_MAX_STREAMS */
    lcsm_ref conv_w; /* [S*D][K] short conv taps (tap K-1 = current) */
    lcsm_ref conv_b; /* [S*D], buf NULL: no bias */
    int K;           /* 0 (no short conv) .. LCSM_MAX_SHORT */
    lcsm_ref state;  /* [B][K-1][S*D] projections of positions t-K+1 .. t-1 */
    int n_stage;
    lcsm_hyena_stage stage[LCSM_MAX_STAGES];
    lcsm_ref hist;   /* time-major [L][G*B*D] history of every stage's input */
    lcsm_ref acc;    /* same layout; accumulated past contributions (not LAZY) */
    lcsm_ref y;      /* [B][D] out */
    lcsm_ref work;   /* [B][D] scratch the op may overwrite */
    int t;           /* position */
    lcsm_mix_mode mode;
    int band;        /* CACHED: also sum_{k=1..band} h_k hist[t-k] directly (lagged flash: acc holds
                        the taps from band + 1 on); 0 for plain flash and eager */
} lcsm_hyena_step_args;

/* Causal softmax attention over rows of one chunk (decode: len 1) at positions
 * pos0 .. pos0+len-1 of each sequence. qkv [B*len][(H + 2 Hkv) hd] holds each
 * row's q (H heads), k and v (Hkv heads), head-major; q and k are rotated in
 * place (rotary embedding over the whole head, half split: pairs (j, j + hd/2),
 * angle (pos / rope_scale) * rope_base^(-2j/hd), no rotation when rope_base is
 * 0); k and v go into the caches [B][L][Hkv][hd] (f32, f16 or bf16) at their
 * positions; then out [B*len][H hd] = softmax(q k^T / sqrt(hd)) v over the
 * positions up to each row's, query head h reading kv head h / (H / Hkv). */
typedef struct lcsm_attn_args {
    lcsm_ref qkv, k_cache, v_cache, out;
    int H, Hkv, hd;
    float rope_base, rope_scale;
    int B, len, pos0, L;
} lcsm_attn_args;

/* Hedgehog linear attention over rows of one chunk (decode: len 1), per head h
 * of hd dims: phi(u) = max([softmax(u), softmax(-u)], fm_eps) (2F values, each
 * softmax over F) of u = x_h^T W[h] (W [H][hd][F]: fmq for q, fmk for k);
 * S += phi(k) v^T, z += phi(k) (the row's own token included), then
 * out = phi(q)^T S / (phi(q)^T z + eps). qkv [B*len][3 H hd] holds q | k | v
 * head-major; state [B][H][2F][hd + 1] holds S (columns 0..hd-1) and z (column
 * hd), carried from chunk to chunk; out [B*len][H hd]. */
typedef struct lcsm_linattn_args {
    lcsm_ref qkv, fmq, fmk, state, out;
    int H, hd, F;
    float fm_eps, eps;
    int B, len;
} lcsm_linattn_args;

/* What a model may need of a backend (supports): an op kind and its variant. */
typedef enum lcsm_op {
    LCSM_OP_NORM,       /* variant: lcsm_norm_kind */
    LCSM_OP_ACT,        /* variant: lcsm_act (linear's epilogue and glu) */
    LCSM_OP_WEIGHTS,    /* variant: lcsm_dtype of weight matrices and embeddings */
    LCSM_OP_GLU,        /* gated MLP */
    LCSM_OP_SHORT_CONV, /* variant: taps */
    LCSM_OP_HYENA,      /* variant: stages */
    LCSM_OP_MODAL,      /* variant: 1 complex poles, 0 real */
    LCSM_OP_FIR,        /* variant: taps */
    LCSM_OP_ATTN,       /* variant: the caches' lcsm_dtype */
    LCSM_OP_ATTN_HEAD,  /* variant: head width */
    LCSM_OP_LINATTN,    /* variant: feature dim F (any head width) */
    LCSM_OP_COUNT
} lcsm_op;

/* The limits of a backend that runs the whole op set (cpu, opencl): supports()
 * is lcsm_supports_all with these. */
typedef struct lcsm_op_limits {
    int attn_max_head;        /* widest attention head (even widths only) */
    int linattn_max_features; /* most features per sign of linear attention */
} lcsm_op_limits;
int lcsm_supports_all(const lcsm_op_limits *lim, lcsm_op op, int variant);

typedef struct lcsm_backend_ops {
    const char *name;
    void (*destroy)(lcsm_backend *be);
    /* 1 if the backend has op (with that variant). */
    int (*supports)(const lcsm_backend *be, lcsm_op op, int variant);

    /* ---- memory; n counts elements of the ref's type */
    lcsm_status (*alloc)(lcsm_backend *be, size_t bytes, lcsm_buf **out);
    void (*release)(lcsm_backend *be, lcsm_buf *buf);
    lcsm_status (*write)(lcsm_backend *be, lcsm_ref dst, const void *src, size_t n);
    lcsm_status (*read)(lcsm_backend *be, lcsm_ref src, void *dst, size_t n);
    lcsm_status (*zero)(lcsm_backend *be, lcsm_ref dst, size_t n);

    /* ---- dense ops */
    /* out[i][:] = E[ids[i]][:] for i < n; ids on the host, already range-checked;
     * E in any weight type, out f32. */
    lcsm_status (*embed)(lcsm_backend *be, lcsm_ref E, const int32_t *ids, int n, int D, lcsm_ref out);
    /* out = norm(x) of a kind, rows of width D; b.buf may be NULL. */
    lcsm_status (*norm)(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out,
                        int rows, int D, float eps);
    /* out[rows][n_out] (op)= act(x[rows][n_in] W^T + bias); W is [n_out][n_in] in
     * any weight type; bias.buf may be NULL; flags: LCSM_LINEAR_ACCUMULATE or an
     * activation (LCSM_LINEAR_ACT), not both. */
    lcsm_status (*linear)(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                          int n_out, int flags);
    /* Optional: linear(norm(x)) in one (the normalised x is not written).
     * LCSM_ERR_UNSUPPORTED, with no message, for a shape it leaves to norm and
     * linear (the engine then runs those). */
    lcsm_status (*norm_linear)(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, float eps,
                               lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int D, int n_out, int flags);
    /* out[r][i] = act(h[r][i]) * h[r][n + i]: the gate of a gated MLP, h [rows][2n],
     * out [rows][n] (not overlapping h). */
    lcsm_status (*glu)(lcsm_backend *be, lcsm_ref h, lcsm_ref out, int rows, int n, lcsm_act act);

    /* ---- Hyena operator, whole sequences (prefill and the parallel forward) */
    /* K-tap causal short conv of u [B][len][C] (tap K-1 = current position) into
     * out [B][len][C] (not u). With state.buf, the K-1 rows before the chunk come
     * from state [B][K-1][C] (oldest first; zeros at position 0) and the last
     * K-1 rows of state-then-u are written back; without, the past is zero. */
    lcsm_status (*shortconv_seq)(lcsm_backend *be, lcsm_ref u, lcsm_ref conv_w, lcsm_ref conv_b, int K, int B,
                                 int len, int C, lcsm_ref out, lcsm_ref state);
    /* out = x * m elementwise over [B][len][D] (m.r.buf NULL: out = x). */
    lcsm_status (*mul_seq)(lcsm_backend *be, lcsm_seq x, lcsm_seq m, lcsm_seq out, int B, int len, int D);
    /* Causal long convolution of group g of `f` for whole sequences, B*D columns
     * starting at the refs, time-major:
     *   y_tm[t][col] = sum_{s<=t} h[t-s] a_tm[s][col]            for t < len
     * and, if acc.buf (same row stride as a_tm), the prompt's contribution to
     * later outputs:
     *   acc[t][col] += sum_{s<len} h[t-s] a_tm[s][col]           for len <= t < acc_len */
    lcsm_status (*long_conv)(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref a_tm,
                             size_t a_stride, lcsm_ref y_tm, size_t y_stride, lcsm_ref acc, int acc_len);
    /* out(b,t,c) = m(b,t,c) * (y(b,t,c) + dbias[g*D+c] * a(b,t,c)) over [B][len][D]
     * (m.r.buf NULL: m = 1). */
    lcsm_status (*gate_seq)(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_seq y, lcsm_seq a,
                            lcsm_seq m, lcsm_seq out);
    /* Modal stage over whole sequences: y(b,t,c) = sum_{s<=t} h[c][t-s] a(b,s,c) +
     * D[c] a(b,t,c), by the recurrence from the state (zero unless state.buf holds
     * one), which is left at the end when state.buf. No (channels x states x
     * length) tensor, no filter: O(B D N) memory. */
    lcsm_status (*modal_seq)(lcsm_backend *be, const lcsm_modal *md, lcsm_ref state, int B, int len, int D, lcsm_seq a,
                             lcsm_seq y);
    /* FIR stage over a chunk of len inputs at position pos0: y(b,t,c) = sum_{k <
     * fir->len} taps[c][k] x(pos0+t-k) + skip[c] a(b,t,c), with x the chunk's
     * inputs a and, before the chunk, the ring's (slot s % fir->len holds input
     * s; zeros before 0 and without a ring); the chunk's inputs then go into
     * the ring. */
    lcsm_status (*fir_seq)(lcsm_backend *be, const lcsm_fir *fir, int pos0, int B, int len, int D, lcsm_seq a,
                           lcsm_seq y);

    /* ---- attention (decode steps and chunks alike) */
    lcsm_status (*attn)(lcsm_backend *be, const lcsm_attn_args *a);
    lcsm_status (*linattn)(lcsm_backend *be, const lcsm_linattn_args *a);

    /* ---- Hyena operator, one decode step */
    lcsm_status (*hyena_step)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                              const lcsm_hyena_step_args *args);
    /* A block of the (input, output) square for the rows `rows` (NULL: every
     * row, all groups at once):
     *   acc[out0 + j] += sum_{m < n_in} h[out0 + j - in0 - m] hist[in0 + m],  j < n_out
     * with out0 >= in0 + n_in, 1 <= n_out, inside the geometry (the engine's
     * lcsm__block_conv checks and picks the op). block_direct sums directly (eager
     * pushes, small tiles); tile_fft computes a flash tile (n_in = U a power of two
     * >= fft_threshold, n_out <= U, out0 = in0 + U - 1 + d for a delay d of one of
     * the spectra variants, lcsm_spec_delay) with the spectra made by
     * filters_prepare. */
    lcsm_status (*block_direct)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                                lcsm_ref hist, lcsm_ref acc, int in0, int n_in, int out0, int n_out,
                                const lcsm_rows *rows);
    lcsm_status (*tile_fft)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                            lcsm_ref hist, lcsm_ref acc, int in0, int U, int out0, int n_out, const lcsm_rows *rows);

    /* ---- filters */
    /* hT is host [lh][G*D] (time-major: tap k of filter row r at k*G*D + r),
     * allocated with lcsm__malloc; the backend owns it from the call on, also
     * when the call fails (it keeps it or frees it: no second copy of the
     * largest buffer of a long model). dbias is host [G*D]. lag >= 1: the tile
     * spectra are of the taps lag .. lag + 2U - 2 (lagged flash; 1: taps 1 ..
     * 2U - 1, the plain schedule). */
    lcsm_status (*filters_create)(lcsm_backend *be, float *hT, const float *dbias, int G, int D, int lh,
                                  int lag, lcsm_filters **out);
    /* Makes sure the spectra for FFT tiles up to size max_tile exist, for each
     * delay variant in the mask `variants` (1 << LCSM_SPEC_*), and that
     * tile_fft on them needs no allocation. The engine calls it under the
     * model's lock (several sessions of one model may be created at once). */
    lcsm_status (*filters_prepare)(lcsm_backend *be, lcsm_filters *f, int max_tile, unsigned variants);
    /* Optional (NULL = nothing to do): makes what a session of this geometry needs
     * (FFT plans and scratch for tiles up to max_tile, 0 when it runs none; for
     * tiles from spread_from on also for row parts (lcsm_rows) of one group,
     * 0 when none, and from fine_from on for parts that split spread_align
     * blocks, INT_MAX when none: the session's schedule's fine size; the mixer's
     * scratch), so no step allocates. Called for every session, after
     * filters_prepare, under the model's lock. */
    lcsm_status (*session_prepare)(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                                   int max_tile, int spread_from, int fine_from);
    void (*filters_destroy)(lcsm_backend *be, lcsm_filters *f);
    size_t (*filters_bytes)(const lcsm_filters *f);

    /* ---- decoding on the device (optional: all three or none). The engine's
     * generate loop then keeps the sampled ids on the device and never waits
     * inside the loop, so the host queues step t+1 while the device runs step t. */
    /* out[i][:] = E[ids[i]][:], the ids (i32) already on the device (from sample). */
    lcsm_status (*embed_dev)(lcsm_backend *be, lcsm_ref E, lcsm_ref ids, int n, int D, lcsm_ref out);
    /* Samples one id per row of logits [B][V] as lcsm__sample does (greedy, or
     * temperature / top-k / top-p over [p->token_lo, p->token_hi), sequence b's
     * generator at lcsm__rng_state(p->seed, b, draws)) into ids (B i32 on the
     * device) and copies them to host_ids: before returning with wait, else
     * asynchronously (host_ids untouched by the caller until sample_wait,
     * finish or a later waiting call). With temperature > 0 only for
     * token_hi - token_lo <= be->sample_max. */
    lcsm_status (*sample)(lcsm_backend *be, lcsm_ref logits, int B, int V, const lcsm_sampler_params *p,
                          uint64_t draws, lcsm_ref ids, int32_t *host_ids, int wait);
    /* Waits for the copy of the last sample call's ids (not for work queued
     * after it), and reports an earlier queued failure. The step queues its
     * tiles between sample and this wait, so the device runs them while the
     * host takes the ids. */
    lcsm_status (*sample_wait)(lcsm_backend *be);
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
    /* Lagged flash's parts of a spread tile: channels per unit (lcsm_rows), the
     * smallest tile worth spreading (a GPU runs small tiles faster whole than as
     * many launches), and the units parts end on boundaries of (spread_align) within a row
     * group (the CPU's column blocks, OpenCL's FFT batches: narrower parts run unit by
     * unit), except tiles from spread_fine_from on in the smooth schedule and from
     * spread_fine_lagged on in lagged flash (where a whole block costs more than a
     * step; INT_MAX: never). Set at creation. */
    int spread_unit, spread_min, spread_align, spread_fine_from, spread_fine_lagged;
    /* The largest single buffer alloc makes (the device's limit; SIZE_MAX on the
     * CPU, where tests lower it): a session's prompt whose forward would need
     * more goes in chunks. */
    size_t max_buffer;
    lcsm_backend_stats stats; /* kept up to date by the backend */
    char last_error[512];
};

/* 1 if [off, off + n) lies within a buffer of `size` units. */
static inline int lcsm__ref_fits(size_t off, size_t n, size_t size) { return off <= size && n <= size - off; }

/* The backends compiled in; each returns LCSM_OK and a backend, or an error. */
typedef lcsm_status (*lcsm_backend_factory)(const lcsm_backend_options *opt, lcsm_backend **out);
/* Lists a backend's devices: fills up to cap entries, sets *count to how many exist. */
typedef lcsm_status (*lcsm_backend_lister)(lcsm_device_info *out, int cap, int *count);

#endif /* LCSM_BACKEND_H */
