/* The OpenCL backend's private types, shared by the files of cl/. */
#ifndef LCSM_CL_BACKEND_H
#define LCSM_CL_BACKEND_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <pthread.h>

#include "../src/backend.h"
#include "../src/util.h"
#include "cl_errors.h"
#include "cl_fft.h"

struct lcsm_buf {
    cl_mem mem;
    size_t bytes;
};

/* A ref's offset in elements of its type: what our kernels take (refs made by
 * the engine are aligned to their element size). */
static inline size_t clb_elems(lcsm_ref r) { return r.off / lcsm_dtype_size(r.dt); }

/* The kernels of the .cl files, one table (names in cl_backend.c). */
typedef enum clk_id {
    /* per weight type: f32, f16, bf16 in this order (clb_wkernel) */
    K_EMBED, K_EMBED_F16, K_EMBED_BF16, K_GEMV, K_GEMV_F16, K_GEMV_BF16, K_GEMM, K_GEMM_F16, K_GEMM_BF16,
    K_GEMV_NORM, K_GEMV_NORM_F16, K_GEMV_NORM_BF16,
    K_NORM, K_GLU, K_SHORTCONV_SEQ, K_CONV_STATE_SEQ, K_MUL_SEQ, K_GATE_SEQ, K_LAZY_PARTIAL, K_MODAL_SEQ, K_FIR_SEQ,
    K_FIR_RING_SEQ,
    K_HYENA_STEP, K_BLOCK_DIRECT, K_LONG_DIRECT, K_FFT_GATHER, K_FFT_MAC, K_FFT_SCATTER, K_SAMPLE,
    K_ATTN_ROPE, K_ATTN_STORE, K_ATTN_STORE_F16, K_ATTN_STORE_BF16, K_ATTN_PART, K_ATTN_PART_F16, K_ATTN_PART_BF16,
    K_ATTN_COMBINE, K_LINATTN_PHI, K_LINATTN_REC, K_LINATTN_Z, K_COUNT,
    K_PROF_FFT = K_COUNT, /* VkFFT's launches, timed between two markers */
    K_PROF_COUNT
} clk_id;

/* A launch whose event has not been read yet (profiling only). */
typedef struct cl_prof_event {
    cl_event start, end; /* end only for a marker pair (VkFFT); else start == the launch */
    int k;
} cl_prof_event;

#define CL_MAX_LOG2 31
#define CL_WG 256 /* work-group size of the reduction kernels */
#define CL_FILL_MAX ((size_t)1 << 30) /* bytes per clEnqueueFillBuffer (cl_zero) */
#define CL_SPREAD_BATCH 64 /* channels a spread part's FFT runs at once (spread_align units) */

/* A device scratch buffer that only grows. */
typedef struct cl_scratch {
    cl_mem mem;
    size_t bytes;
} cl_scratch;

typedef struct cl_backend {
    lcsm_backend base;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    cl_program program;
    cl_kernel k[K_COUNT];
    int is_cpu_device;
    int gemv_max_rows;  /* projections of up to this many rows use gemv_vec, more the tiled gemm */
    cl_ulong max_alloc, global_mem;
    size_t fft_budget;  /* bytes of FFT scratch one convolution may use */
    int fft_max_n;      /* largest FFT (CL_FFT_MAX_N, or less for tests) */
    int attn_min_span;  /* positions per split of a decode step's attention (cl_attn.c) */
    int fuse_norm;      /* decode's norms folded into the projections after them (LCSM_CL_FUSE_NORM) */
    int band_taps;      /* lagged flash's band: taps per work-item (LCSM_CL_BAND_TAPS) */
    pthread_mutex_t lock; /* kernels' arguments, scratch and plans: one op at a time */
    cl_mem dummy;         /* bound where an optional buffer is absent */
    cl_mem ids;           /* token ids of embed */
    size_t ids_cap;
    int32_t *ids_host;    /* staging: stays valid until the write completes */
    cl_event ids_event;
    cl_event ids_copy;    /* the last sample's copy to the host (sample_wait) */
    cl_scratch fft_real, fft_cplx, fft_spec, lazy_part, modal_state, attn_part, linattn_phi;
    clfft_plan **plans; /* cache keyed by (n, batch) */
    int n_plans;
    /* Kernel profiling (lcsm_backend_options.profile): launches whose events are
     * read in batches, and the device time per kernel so far. */
    int profiling;
    cl_prof_event *prof_pending;
    int prof_n, prof_cap;
    double prof_s[K_PROF_COUNT];
    long long prof_calls[K_PROF_COUNT];
} cl_backend;

/* Block layout of an FFT convolution over segments of a filter, shared by the
 * tile spectra (made at prepare time) and the runs (cl_conv.c). */
typedef struct cl_tile_spec {
    int S, P;       /* sub-block size (N = 2S) and blocks per tile side */
    cl_mem mem;     /* [2P-1][GD][S+1] complex: segment d at index d + P - 1 */
    size_t bytes;
} cl_tile_spec;

struct lcsm_filters {
    int G, D, lh;
    int lag; /* tile spectra start at tap lag (src/backend.h) */
    cl_mem hT;    /* time-major [lh][G*D] */
    cl_mem dbias; /* [G*D] */
    cl_mem h0d;   /* [G*D] h[0] + dbias */
    cl_tile_spec spec[CL_MAX_LOG2 + 1][LCSM_SPEC_VARIANTS]; /* [log2 U][delay variant] (src/backend.h) */
    size_t bytes;
};

/* Kernel arguments as compound literals: valid until the end of the enclosing
 * block, which outlives the clb_launch call that reads them. */
#define A_I32(x) {sizeof(cl_int), &(cl_int){(cl_int)(x)}}
#define A_U64(x) {sizeof(cl_ulong), &(cl_ulong){(cl_ulong)(x)}}
#define A_I64(x) {sizeof(cl_long), &(cl_long){(cl_long)(x)}}
#define A_F32(x) {sizeof(cl_float), &(cl_float){(cl_float)(x)}}
#define A_MEM(m) {sizeof(cl_mem), &(cl_mem){(m)}}
#define A_REF(r) A_MEM((r).buf->mem), A_U64(clb_elems(r))
/* A ref whose kernel reads floats (complex as pairs): the offset in floats. */
#define A_FREF(r) A_MEM((r).buf->mem), A_U64((r).off / sizeof(float))

/* The kernel of `k` (K_EMBED, K_GEMV, K_GEMM or K_GEMV_NORM) for weights of type dt. */
static inline clk_id clb_wkernel(clk_id k, lcsm_dtype dt)
{
    return (clk_id)(k + (dt == LCSM_DT_F16 ? 1 : dt == LCSM_DT_BF16 ? 2 : 0));
}
#define N_ARGS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* cl_backend.c */
/* Sets a kernel's arguments from a list and enqueues it (no wait). */
typedef struct cl_arg {
    size_t size;
    const void *ptr;
} cl_arg;
lcsm_status clb_launch(cl_backend *cb, clk_id k, int dims, const size_t *global, const size_t *local,
                       const cl_arg *args, int n_args);
lcsm_status clb_check(cl_backend *cb, cl_int err, const char *what);
/* A kernel's name (clk_id, K_PROF_FFT included). */
const char *clb_kernel_name(int k);
/* Waits for ev (outside the lock), releases it, and reports a failure of it or
 * of an earlier command of the queue. */
lcsm_status clb_wait(cl_backend *cb, cl_event ev);
/* Profiling of launches the backend does not make itself (VkFFT's): a marker
 * before and after; no-ops unless profiling. */
void clb_prof_begin(cl_backend *cb, cl_event *ev);
void clb_prof_end(cl_backend *cb, clk_id k, cl_event start);

/* cl_profile.c: the rest of profiling. */
lcsm_status clb_prof_init(cl_backend *cb);
void clb_prof_free(cl_backend *cb);
void clb_prof_record(cl_backend *cb, int k, cl_event start, cl_event end);
lcsm_status cl_profile(lcsm_backend *be, lcsm_profile_entry *out, int cap, int *count, int reset);
lcsm_status clb_scratch(cl_backend *cb, cl_scratch *s, size_t bytes, const char *what);
lcsm_status clb_plan(cl_backend *cb, int n, int batch, clfft_plan **out);
/* Every device buffer of the backend is made by clb_mem and dropped by
 * clb_release (NULL: nothing), which keep lcsm_backend_stats' device bytes and
 * hold the failure-injection hook of tests (lcsm__dev_alloc_fails). */
lcsm_status clb_mem(cl_backend *cb, size_t bytes, const char *what, cl_mem *out);
void clb_release(cl_backend *cb, cl_mem m);

/* cl_dense.c */
lcsm_status cl_embed(lcsm_backend *be, lcsm_ref E, const int32_t *ids, int n, int D, lcsm_ref out);
lcsm_status cl_embed_dev(lcsm_backend *be, lcsm_ref E, lcsm_ref ids, int n, int D, lcsm_ref out);
lcsm_status cl_norm(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, lcsm_ref out, int rows,
                    int D, float eps);
lcsm_status cl_glu(lcsm_backend *be, lcsm_ref h, lcsm_ref out, int rows, int n, lcsm_act act);
lcsm_status cl_norm_linear(lcsm_backend *be, lcsm_norm_kind kind, lcsm_ref x, lcsm_ref w, lcsm_ref b, float eps,
                           lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int D, int n_out, int flags);
/* Projections of up to this many rows run as gemv_vec (8 rows per work-group,
 * each block of 8 reading the weights again), more as the tiled gemm: the
 * crossover measured by lcsm-gemv-vs-clblast (bench/RESULTS.md). */
#define CL_GEMV_MAX_ROWS 128
lcsm_status cl_linear(lcsm_backend *be, lcsm_ref x, lcsm_ref W, lcsm_ref bias, lcsm_ref out, int rows, int n_in,
                      int n_out, int flags);
lcsm_status cl_shortconv_seq(lcsm_backend *be, lcsm_ref u, lcsm_ref conv_w, lcsm_ref conv_b, int K, int B, int len,
                             int C, lcsm_ref out, lcsm_ref state);
lcsm_status cl_mul_seq(lcsm_backend *be, lcsm_seq x, lcsm_seq m, lcsm_seq out, int B, int len, int D);
lcsm_status cl_gate_seq(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_seq y, lcsm_seq a,
                        lcsm_seq m, lcsm_seq out);
lcsm_status cl_modal_seq(lcsm_backend *be, const lcsm_modal *md, lcsm_ref state, int B, int len, int D, lcsm_seq a,
                         lcsm_seq y);
lcsm_status cl_fir_seq(lcsm_backend *be, const lcsm_fir *fir, int pos0, int B, int len, int D, lcsm_seq a,
                       lcsm_seq y);
lcsm_status cl_hyena_step(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom,
                          const lcsm_hyena_step_args *a);

/* cl_attn.c: causal softmax attention (attn.cl; ATTN_MAX_HD there) */
#define CL_ATTN_MAX_HD 256
lcsm_status cl_attn(lcsm_backend *be, const lcsm_attn_args *a);
/* cl_linattn.c (linattn.cl; LA_MAX_F there) */
#define CL_LINATTN_MAX_F 64
lcsm_status cl_linattn(lcsm_backend *be, const lcsm_linattn_args *a);

/* cl_sample.c: sampling on the device */
#define CL_SAMPLE_MAX 2048 /* SAMPLE_MAX of sample.cl */
lcsm_status cl_sample(lcsm_backend *be, lcsm_ref logits, int B, int V, const lcsm_sampler_params *p, uint64_t draws,
                      lcsm_ref ids, int32_t *host_ids, int wait);
lcsm_status cl_sample_wait(lcsm_backend *be);
lcsm_status cl_finish(lcsm_backend *be);

/* The most partial sums the lazy mixer splits a column into (cl_dense.c). */
int cl_lazy_max_splits(const cl_backend *cb, int cols);

/* cl_conv.c */
lcsm_status cl_filters_create(lcsm_backend *be, float *hT, const float *dbias, int G, int D, int lh, int lag,
                              lcsm_filters **out);
lcsm_status cl_filters_prepare(lcsm_backend *be, lcsm_filters *f, int max_tile, unsigned variants);
lcsm_status cl_session_prepare(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *geom, int max_tile,
                               int spread_from, int fine_from);
void cl_filters_destroy(lcsm_backend *be, lcsm_filters *f);
size_t cl_filters_bytes(const lcsm_filters *f);
lcsm_status cl_tile_fft(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                        lcsm_ref acc, int in0, int U, int out0, int n_out, const lcsm_rows *part);
lcsm_status cl_block_direct(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                            lcsm_ref acc, int in0, int n_in, int out0, int n_out, const lcsm_rows *part);
lcsm_status cl_long_conv(lcsm_backend *be, const lcsm_filters *f, int g, int B, int len, lcsm_ref a_tm,
                         size_t a_stride, lcsm_ref y_tm, size_t y_stride, lcsm_ref acc, int acc_len);

#endif
