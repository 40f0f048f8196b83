/* The CPU backend's private types, shared by the files of cpu/. */
#ifndef LCSM_CPU_H
#define LCSM_CPU_H

#include "../src/backend.h"
#include "../src/util.h"
#include "pool.h"

#include <fftw3.h>
#include <pthread.h>

struct lcsm_buf {
    void *data;
    size_t bytes;
};

/* The host address of a ref, and of an f32 ref as floats. */
static inline void *cpu_vptr(lcsm_ref r) { return (char *)r.buf->data + r.off; }
static inline float *cpu_ptr(lcsm_ref r) { return (float *)cpu_vptr(r); }

/* FFTW's aligned allocator, counted and failure-injected like the rest (alloc.c). */
static inline float *cpu_falloc(size_t floats)
{
    if (lcsm__alloc_fails())
        return NULL;
    float *p = fftwf_alloc_real(floats);
    if (p)
        lcsm__alloc_track(1);
    return p;
}

static inline void cpu_ffree(void *p)
{
    if (p) {
        lcsm__alloc_track(-1);
        fftwf_free(p);
    }
}

/* Columns an FFT job handles at once: FFTW transforms them as one vector-major
 * batch (stride W, distance 1), so time-major data needs no transposition. */
#define CPU_FFT_W 16


/* Plans for one transform size over CPU_FFT_W interleaved columns. */
typedef struct cpu_plan {
    int n; /* real length */
    fftwf_plan fwd, inv;   /* CPU_FFT_W columns, vector-major */
    fftwf_plan fwd1, inv1; /* one contiguous column (cpu_plan_lane; NULL until then) */
} cpu_plan;

#define CPU_MAX_LOG2 31

typedef struct cpu_backend {
    lcsm_backend base;
    lcsm_pool *pool;
    int n_threads;
    int saved_blas_threads;
    unsigned planner_flags; /* FFTW_MEASURE or FFTW_ESTIMATE for tile plans */
    char *wisdom_path;      /* NULL = no wisdom file (allocated: any length) */
    int wisdom_dirty;
    pthread_mutex_t lock;   /* plans and scratch */
    cpu_plan **plans;       /* every size made so far; entries never move */
    int n_plans;
    /* Per-thread scratch for tile FFTs: 4 * U_max * W floats each. */
    float **scratch;
    size_t scratch_floats;
    /* Per-thread f32 copies of a block of half-precision weight rows (cpu_half.c). */
    float **wblock;
    /* half -> f32 conversion of n values: the best this CPU has (cpu_half.c). */
    void (*half_to_f32)(const uint16_t *src, size_t n, int bf16, float *dst);
    int half_fused; /* the fused AVX2 half-precision GEMV runs here */
    /* f32 linear for 2..CPU_SMALL_GEMM_ROWS rows, W from row o0 (cpu_gemm_small.c); NULL: sgemm */
    void (*small_gemm)(const float *x, const float *W, float *out, int rows, int n_in, int n_out, int o0, int o1,
                       int acc);
    int act_avx2; /* cpu_act_row's vector path runs here (cpu_act.c) */
} cpu_backend;

struct lcsm_filters {
    int G, D, lh;
    int lag;      /* the tile spectra start at tap lag (src/backend.h) */
    float *hT;    /* time-major [lh][G*D] */
    float *dbias; /* [G*D] */
    float *h0d;   /* [G*D]: h[0] + dbias, the diagonal of a decode step */
    /* Spectra of the flash tile segments h[d .. d+2U-2] (zero-padded to 2U, scaled
     * by 1/(2U)), frequency-major [U+1][G*D] complex, for U = 2^k >= threshold and
     * each delay variant v (d = lcsm_spec_delay(v, U, lag), src/backend.h). */
    fftwf_complex *spec[CPU_MAX_LOG2 + 1][LCSM_SPEC_VARIANTS];
    const cpu_plan *plan[CPU_MAX_LOG2 + 1]; /* the backend's plan of size 2U, looked up once */
    size_t spec_bytes;
};

/* cpu_blas.c: OpenBLAS's work buffers for the pool's threads, made now (or
 * LCSM_ERR_OUT_OF_MEMORY), so that no projection waits for one later. */
lcsm_status cpu_blas_reserve(cpu_backend *cb);

/* cpu_fft.c */
lcsm_status cpu_plan_get(cpu_backend *cb, int n, unsigned flags, const cpu_plan **out);
/* Makes p's one-column transforms (a spread tile's single channels), once. */
lcsm_status cpu_plan_lane(cpu_backend *cb, const cpu_plan *p, unsigned flags);
/* Makes every thread's scratch at least `floats` long. Runs as a pool job, so it
 * never pulls scratch from under a running job of another session. */
lcsm_status cpu_scratch_reserve(cpu_backend *cb, size_t floats);
/* Smallest n >= need of the form 2^a 3^b 5^c (sizes FFTW is fast at). */
int cpu_fft_size(int need);
void cpu_plans_destroy(cpu_backend *cb);
void cpu_wisdom_load(cpu_backend *cb, const char *cache_dir);
void cpu_wisdom_save(cpu_backend *cb);
int cpu_calibrate_threshold(cpu_backend *cb);

/* cpu_conv.c internals used by the calibration */
lcsm_status cpu_tile_fft(cpu_backend *cb, const lcsm_filters *f, const lcsm_conv_geom *g, const float *hist,
                         float *acc, int in0, int U, int out0, int n_out, const lcsm_rows *rows);
void cpu_block_direct(cpu_backend *cb, const lcsm_filters *f, const lcsm_conv_geom *g, const float *hist,
                      float *acc, int in0, int n_in, int out0, int n_out, const lcsm_rows *rows);

/* cpu_conv.c: the long-convolution operations of the table */
lcsm_status cpu_filters_create(lcsm_backend *be, float *hT, const float *dbias, int G, int D, int lh,
                               int lag, lcsm_filters **out);
lcsm_status cpu_filters_prepare(lcsm_backend *be, lcsm_filters *f, int max_tile, unsigned variants);
lcsm_status cpu_session_prepare(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom, int max_tile,
                                int spread_from, int fine_from);
void cpu_filters_destroy(lcsm_backend *be, lcsm_filters *f);
size_t cpu_filters_bytes(const lcsm_filters *f);
lcsm_status cpu_tile_fft_op(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                            lcsm_ref acc, int in0, int U, int out0, int n_out, const lcsm_rows *rows);
lcsm_status cpu_block_direct_op(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                                lcsm_ref acc, int in0, int n_in, int out0, int n_out, const lcsm_rows *rows);
lcsm_status cpu_long_conv(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref a_tm,
                          size_t a_stride, lcsm_ref y_tm, size_t y_stride, lcsm_ref acc, int acc_len);

/* cpu_dense.c: dense and per-token operations of the table */
lcsm_status cpu_embed(lcsm_backend *be, lcsm_ref E, const int32_t *ids, int n, int D, lcsm_ref out);
lcsm_status cpu_norm(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out,
                     int rows, int D, float eps);
lcsm_status cpu_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                       int n_out, int flags);
lcsm_status cpu_glu(lcsm_backend *be, lcsm_ref h, lcsm_ref out, int rows, int n, lcsm_act act);
/* cpu_act.c: act(v); o[0..n) = act(o[0..n)), GELU and SiLU vectorised where
 * cpu_act_init found AVX2 + FMA (LCSM_CPU_SMALL_GEMM=0: scalar, for A/B runs). */
float cpu_act(lcsm_act act, float v);
void cpu_act_row(const cpu_backend *cb, lcsm_act act, float *o, int n);
void cpu_act_init(cpu_backend *cb);

/* cpu_hyena.c: the Hyena operator, whole sequences and one decode step */
lcsm_status cpu_shortconv_seq(lcsm_backend *be, lcsm_ref u, lcsm_ref conv_w, lcsm_ref conv_b, int K, int B,
                              int len, int C, lcsm_ref out, lcsm_ref state);
lcsm_status cpu_mul_seq(lcsm_backend *be, lcsm_seq x, lcsm_seq m, lcsm_seq out, int B, int len, int D);
lcsm_status cpu_gate_seq(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_seq y, lcsm_seq a,
                         lcsm_seq m, lcsm_seq out);
lcsm_status cpu_hyena_step(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                           const lcsm_hyena_step_args *a);
lcsm_status cpu_modal_seq(lcsm_backend *be, const lcsm_modal *md, lcsm_ref state, int B, int len, int D, lcsm_seq a,
                          lcsm_seq y);
#define CPU_ATTN_MAX_HD 1024 /* widest head (even) */
lcsm_status cpu_attn(lcsm_backend *be, const lcsm_attn_args *a);
#define CPU_LINATTN_MAX_F 1024 /* features per sign */
lcsm_status cpu_linattn(lcsm_backend *be, const lcsm_linattn_args *a);
lcsm_status cpu_fir_seq(lcsm_backend *be, const lcsm_fir *fir, int pos0, int B, int len, int D, lcsm_seq a,
                        lcsm_seq y);

/* cpu_gemm_small.c: out[rows][o0..o1) = (out +) x W[o0..o1)^T for small batches
 * (W points at row o0; f32, or half weights converted in blocks by cpu_half.c),
 * each weight row read once per four rows of x; picks the kernel for this CPU
 * (LCSM_CPU_SMALL_GEMM=0: none, sgemm for every batch). */
#define CPU_SMALL_GEMM_ROWS 32
void cpu_small_gemm_init(cpu_backend *cb);


/* cpu_half.c: half-precision weights */
/* f16 -> f32 without F16C: rebias the exponent; subnormals through a float
 * subtraction; Inf and NaN keep an all-ones exponent. */
float cpu_f16_to_f32(uint16_t h);
/* Picks the conversion routine for this CPU. */
void cpu_half_init(cpu_backend *cb);
/* Per-thread blocks of CPU_WBLOCK_FLOATS floats (64 KiB, cache-resident) for
 * linear on half weights; made with the backend. */
#define CPU_WBLOCK_FLOATS 16384
lcsm_status cpu_wblock_reserve(cpu_backend *cb);
void cpu_wblock_free(cpu_backend *cb);
/* out[rows][o0..o1) (op)= x W[o0..o1)^T with W half (bf16 or f16), beta 0 or 1:
 * blocks of W rows converted to f32 in the thread's block, then BLAS on them. */
void cpu_linear_half(cpu_backend *cb, const float *x, const uint16_t *W, int bf16, int rows, int n_in, int n_out,
                     int o0, int o1, float beta, float *out, int thread);

#endif
