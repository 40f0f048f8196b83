/*
 * The CPU backend: FFTW3f for the FFT convolutions, OpenBLAS for the
 * projections, our own thread pool for everything that splits. "Device"
 * buffers are host memory.
 */
#include "cpu.h"
#include "../src/file_io.h"

#include <cblas.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS's thread count is process-global; we run it single-threaded inside our
 * own pool and restore the caller's setting when the backend goes away. */
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

static lcsm_status cpu_alloc(lcsm_backend *be, size_t bytes, lcsm_buf **out)
{
    lcsm_buf *b = lcsm__malloc(sizeof *b);
    /* 64-byte alignment: FFTW's SIMD paths and whole cache lines. */
    size_t rounded = (bytes + 63) / 64 * 64;
    void *data = NULL;
    if (bytes > be->max_buffer) {
        lcsm__free(b);
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "cpu: %zu bytes in one buffer; the backend allows %zu", bytes,
                            be->max_buffer);
    }
    if (!b || rounded < bytes || lcsm__alloc_fails() || posix_memalign(&data, 64, rounded ? rounded : 64) != 0) {
        lcsm__free(b);
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", bytes);
    }
    lcsm__alloc_track(1); /* freed by lcsm__free in cpu_release */
    b->data = data;
    b->bytes = bytes;
    *out = b;
    return LCSM_OK;
}

static void cpu_release(lcsm_backend *be, lcsm_buf *b)
{
    (void)be;
    if (b) {
        lcsm__free(b->data);
        lcsm__free(b);
    }
}

static lcsm_status cpu_write(lcsm_backend *be, lcsm_ref dst, const void *src, size_t n)
{
    size_t bytes;
    lcsm_status st = lcsm__check_ref(be, dst, n, dst.buf ? dst.buf->bytes : 0, "write", &bytes);
    if (st == LCSM_OK && n)
        memcpy(cpu_vptr(dst), src, bytes);
    return st;
}

static lcsm_status cpu_read(lcsm_backend *be, lcsm_ref src, void *dst, size_t n)
{
    size_t bytes;
    lcsm_status st = lcsm__check_ref(be, src, n, src.buf ? src.buf->bytes : 0, "read", &bytes);
    if (st == LCSM_OK && n)
        memcpy(dst, cpu_vptr(src), bytes);
    return st;
}

static lcsm_status cpu_zero(lcsm_backend *be, lcsm_ref dst, size_t n)
{
    size_t bytes;
    lcsm_status st = lcsm__check_ref(be, dst, n, dst.buf ? dst.buf->bytes : 0, "zero", &bytes);
    if (st == LCSM_OK && n)
        memset(cpu_vptr(dst), 0, bytes);
    return st;
}

/* Every op of the table, every variant the engine names. */
static int cpu_supports(const lcsm_backend *be, lcsm_op op, int v)
{
    (void)be;
    static const lcsm_op_limits lim = {CPU_ATTN_MAX_HD, CPU_LINATTN_MAX_F};
    return lcsm_supports_all(&lim, op, v);
}

static void cpu_destroy(lcsm_backend *be)
{
    cpu_backend *cb = (cpu_backend *)be;
    cpu_wisdom_save(cb);
    lcsm__free(cb->wisdom_path);
    cpu_plans_destroy(cb);
    cpu_wblock_free(cb);
    lcsm_pool_destroy(cb->pool);
    if (cb->saved_blas_threads > 0) /* we changed it */
        openblas_set_num_threads(cb->saved_blas_threads);
    pthread_mutex_destroy(&cb->lock);
    lcsm__free(cb);
}

static const lcsm_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .supports = cpu_supports,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .write = cpu_write,
    .read = cpu_read,
    .zero = cpu_zero,
    .embed = cpu_embed,
    .norm = cpu_norm,
    .linear = cpu_linear,
    .glu = cpu_glu,
    .shortconv_seq = cpu_shortconv_seq,
    .mul_seq = cpu_mul_seq,
    .long_conv = cpu_long_conv,
    .gate_seq = cpu_gate_seq,
    .modal_seq = cpu_modal_seq,
    .fir_seq = cpu_fir_seq,
    .attn = cpu_attn,
    .linattn = cpu_linattn,
    .hyena_step = cpu_hyena_step,
    .block_direct = cpu_block_direct_op,
    .tile_fft = cpu_tile_fft_op,
    .filters_create = cpu_filters_create,
    .filters_prepare = cpu_filters_prepare,
    .session_prepare = cpu_session_prepare,
    .filters_destroy = cpu_filters_destroy,
    .filters_bytes = cpu_filters_bytes,
};

lcsm_status lcsm_cpu_backend_create(const lcsm_backend_options *opt, lcsm_backend **out)
{
    cpu_backend *cb = lcsm__calloc(1, sizeof *cb);
    if (!cb)
        return lcsm__fail(NULL, 0, LCSM_ERR_OUT_OF_MEMORY, "cpu backend handle");
    cb->base.ops = &cpu_ops;
    snprintf(cb->base.name, sizeof cb->base.name, "cpu");
    /* one channel: tile_fft runs a part narrower than a column block channel by
     * channel; parts are whole blocks except for the smooth schedule's tiles of
     * 2048 and more (a block of smaller ones costs less than the channel-wise
     * path's strided reads add). Lagged flash keeps whole blocks: one channel of
     * a large tile costs about what its block does, so with lag steps of slack
     * channel-wise parts multiply the tile's work (bench/RESULTS.md) */
    cb->base.spread_unit = 1;
    cb->base.spread_align = CPU_FFT_W;
    cb->base.spread_fine_from = 2048;
    cb->base.spread_fine_lagged = INT_MAX;
    const char *fine = getenv("LCSM_CPU_SPREAD_FINE"); /* A/B: the tile size channel-wise parts start at */
    if (fine && *fine)
        cb->base.spread_fine_from = atoi(fine);
    cb->base.spread_min = 16;
    cb->base.max_buffer = SIZE_MAX;
    pthread_mutex_init(&cb->lock, NULL);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cb->n_threads = opt->n_threads > 0 ? opt->n_threads : (online > 0 ? (int)online : 1);
    /* Only when it changes anything: raising the count again (on destroy) may
     * start OpenBLAS threads, each of which allocates a work buffer. */
    const int blas_threads = openblas_get_num_threads();
    cb->saved_blas_threads = blas_threads != 1 ? blas_threads : 0;
    if (cb->saved_blas_threads)
        openblas_set_num_threads(1);
    /* OpenBLAS's buffers before anything else, and before our threads exist:
     * a thread starting meanwhile (its malloc arena is 64 MiB of address space)
     * could take the room a probe has just seen. */
    lcsm_status st = cpu_blas_reserve(cb);
    if (st == LCSM_OK && !(cb->pool = lcsm_pool_create(cb->n_threads)))
        st = LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "cpu backend: cannot start %d threads", cb->n_threads);
    if (st != LCSM_OK) {
        lcsm__fail(NULL, 0, st, "%s", cb->base.last_error);
        lcsm_backend_destroy(&cb->base);
        return st;
    }
    cpu_half_init(cb);
    cpu_small_gemm_init(cb);
    cpu_act_init(cb);

    /* Tile plans: FFTW_MEASURE by default (they are reused for every step and kept
     * as wisdom); LCSM_FFTW_EFFORT=estimate trades speed for start-up time. */
    const char *effort = getenv("LCSM_FFTW_EFFORT");
    cb->planner_flags = effort && !strcmp(effort, "estimate") ? FFTW_ESTIMATE : FFTW_MEASURE;
    char buf[4096]; /* PATH_MAX */
    cpu_wisdom_load(cb, lcsm__cache_dir(opt, buf, sizeof buf));

    int t;
    st = lcsm__fft_threshold(opt, &t);
    if (st == LCSM_OK)
        st = cpu_wblock_reserve(cb);
    if (st != LCSM_OK) {
        lcsm_backend_destroy(&cb->base);
        return st;
    }
    cb->base.fft_threshold = t ? t : cpu_calibrate_threshold(cb);
    snprintf(cb->base.description, sizeof cb->base.description,
             "CPU, %d thread%s, FFTW %s, OpenBLAS, FFT tiles from U=%d%s", cb->n_threads,
             cb->n_threads == 1 ? "" : "s", fftwf_version,
             cb->base.fft_threshold, t ? "" : " (measured)");
    *out = &cb->base;
    return LCSM_OK;
}

/* The CPU backend has one device: this machine. */
lcsm_status lcsm_cpu_list_devices(lcsm_device_info *out, int cap, int *count)
{
    *count = 1;
    if (cap < 1)
        return LCSM_OK;
    memset(out, 0, sizeof *out);
    snprintf(out->platform_name, sizeof out->platform_name, "lcsm cpu (FFTW %s, OpenBLAS)", fftwf_version);
    lcsm__cpu_model_name(out->name, sizeof out->name);
    snprintf(out->type, sizeof out->type, "cpu");
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE), n = sysconf(_SC_NPROCESSORS_ONLN);
    out->global_mem_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    out->compute_units = n > 0 ? (int)n : 1;
    return LCSM_OK;
}
