/*
 * The OpenCL backend: device choice, context and queue, our kernels (compiled
 * into the library, built through the binary cache), buffers, VkFFT plans, and
 * the operation table. One in-order queue; ops enqueue without waiting, read()
 * waits. A mutex serialises launches (kernel arguments are per kernel object)
 * and the shared scratch, so sessions may run on several threads.
 */
#include "cl_backend.h"
#include "cl_cache.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The .cl files of cl/, embedded at build time (cmake/embed_cl.cmake). */
extern const char lcsm_cl_kernels[];
extern const size_t lcsm_cl_kernels_len;


/* Our kernels' names (clCreateKernel, messages, the profile), and "fft" for
 * VkFFT's launches in the profile. */
static const char *const kernel_names[K_PROF_COUNT] = {
    [K_EMBED] = "embed",
    [K_EMBED_F16] = "embed_f16",
    [K_EMBED_BF16] = "embed_bf16",
    [K_GEMV] = "gemv_vec",
    [K_GEMV_F16] = "gemv_vec_f16",
    [K_GEMV_BF16] = "gemv_vec_bf16",
    [K_GEMM] = "gemm",
    [K_GEMM_F16] = "gemm_f16",
    [K_GEMM_BF16] = "gemm_bf16",
    [K_GEMV_NORM] = "gemv_norm",
    [K_GEMV_NORM_F16] = "gemv_norm_f16",
    [K_GEMV_NORM_BF16] = "gemv_norm_bf16",
    [K_NORM] = "norm",
    [K_GLU] = "glu",
    [K_SHORTCONV_SEQ] = "shortconv_seq",
    [K_CONV_STATE_SEQ] = "conv_state_seq",
    [K_MUL_SEQ] = "mul_seq",
    [K_GATE_SEQ] = "gate_seq",
    [K_LAZY_PARTIAL] = "lazy_partial",
    [K_MODAL_SEQ] = "modal_seq",
    [K_FIR_SEQ] = "fir_seq",
    [K_FIR_RING_SEQ] = "fir_ring_seq",
    [K_HYENA_STEP] = "hyena_step",
    [K_BLOCK_DIRECT] = "block_direct",
    [K_LONG_DIRECT] = "long_direct",
    [K_FFT_GATHER] = "fft_gather",
    [K_FFT_MAC] = "fft_mac",
    [K_FFT_SCATTER] = "fft_scatter",
    [K_SAMPLE] = "sample",
    [K_ATTN_ROPE] = "attn_rope",
    [K_ATTN_STORE] = "attn_store",
    [K_ATTN_STORE_F16] = "attn_store_f16",
    [K_ATTN_STORE_BF16] = "attn_store_bf16",
    [K_ATTN_PART] = "attn_part",
    [K_ATTN_PART_F16] = "attn_part_f16",
    [K_ATTN_PART_BF16] = "attn_part_bf16",
    [K_ATTN_COMBINE] = "attn_combine",
    [K_LINATTN_PHI] = "linattn_phi",
    [K_LINATTN_REC] = "linattn_rec",
    [K_LINATTN_Z] = "linattn_z",
    [K_PROF_FFT] = "fft",
};

const char *clb_kernel_name(int k) { return k >= 0 && k < K_PROF_COUNT ? kernel_names[k] : "?"; }

/* Default FFT tile threshold: direct tiles are cheap on a GPU up to here. */
#define CL_DEFAULT_THRESHOLD_GPU 128
#define CL_DEFAULT_THRESHOLD_CPU 64

/* What an OpenCL error means to the caller: the device or the driver out of
 * memory or resources is LCSM_ERR_OUT_OF_MEMORY, wherever it shows up (buffer
 * creation, an enqueue, or a wait that reports an earlier command's failure:
 * drivers that allocate lazily report a full device only there); anything else
 * is a backend failure. */
static lcsm_status cl_status(cl_int err)
{
    return err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_OUT_OF_HOST_MEMORY
               ? LCSM_ERR_OUT_OF_MEMORY
               : LCSM_ERR_BACKEND;
}

lcsm_status clb_check(cl_backend *cb, cl_int err, const char *what)
{
    if (err == CL_SUCCESS)
        return LCSM_OK;
    return LCSM_FAIL_BE(&cb->base, cl_status(err), "opencl: %s failed: %s (%d)", what, lcsm_cl_error_name(err),
                        (int)err);
}

/* Device bytes held (lcsm_backend_stats): added where clb_mem makes a buffer,
 * taken off where clb_release drops it. Atomic: sessions on several threads
 * allocate without the backend's lock. */
static void count_device_bytes(cl_backend *cb, size_t bytes, int add)
{
    lcsm_backend_stats *s = &cb->base.stats;
    if (!add) {
        __atomic_sub_fetch(&s->device_bytes_live, bytes, __ATOMIC_RELAXED);
        return;
    }
    size_t live = __atomic_add_fetch(&s->device_bytes_live, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&s->device_bytes_peak, __ATOMIC_RELAXED);
    while (live > peak &&
           !__atomic_compare_exchange_n(&s->device_bytes_peak, &peak, live, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

lcsm_status clb_mem(cl_backend *cb, size_t bytes, const char *what, cl_mem *out)
{
    *out = NULL;
    if (bytes == 0)
        bytes = 4;
    if (bytes > cb->base.max_buffer) /* the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE, or a test's less */
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY,
                            "opencl: %s needs %zu bytes in one buffer; the device allows %zu", what, bytes,
                            cb->base.max_buffer);
    cl_int e;
    cl_mem m = NULL;
    const int injected = lcsm__dev_alloc_fails(); /* a test failing the n-th device allocation */
    if (injected)
        e = CL_MEM_OBJECT_ALLOCATION_FAILURE;
    else
        m = clCreateBuffer(cb->ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
    if (e != CL_SUCCESS || !m)
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY,
                            "opencl: clCreateBuffer of %zu bytes for %s failed: %s (%d)%s", bytes, what,
                            lcsm_cl_error_name(e), (int)e, injected ? " (injected by a test)" : "");
    count_device_bytes(cb, bytes, 1);
    lcsm__dev_alloc_track(1);
    *out = m;
    return LCSM_OK;
}

void clb_release(cl_backend *cb, cl_mem m)
{
    if (!m)
        return;
    size_t bytes = 0;
    if (clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) == CL_SUCCESS)
        count_device_bytes(cb, bytes, 0);
    lcsm__dev_alloc_track(-1);
    clReleaseMemObject(m); /* the driver keeps it until queued commands that use it are done */
}

lcsm_status clb_scratch(cl_backend *cb, cl_scratch *s, size_t bytes, const char *what)
{
    if (s->bytes >= bytes)
        return LCSM_OK;
    cl_mem m;
    /* Drain the queue before dropping the old buffer only matters to the driver,
     * which keeps it alive until queued users finish (OpenCL's retain rules). */
    lcsm_status st = clb_mem(cb, bytes, what, &m);
    if (st != LCSM_OK)
        return st;
    clb_release(cb, s->mem);
    s->mem = m;
    s->bytes = bytes;
    return LCSM_OK;
}

lcsm_status clb_plan(cl_backend *cb, int n, int batch, clfft_plan **out)
{
    for (int i = 0; i < cb->n_plans; i++)
        if (clfft_plan_n(cb->plans[i]) == n && clfft_plan_batch(cb->plans[i]) == batch) {
            *out = cb->plans[i];
            return LCSM_OK;
        }
    clfft_plan **grown = lcsm__realloc(cb->plans, (size_t)(cb->n_plans + 1) * sizeof *grown);
    if (!grown)
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "opencl: plan table");
    cb->plans = grown;
    double t0 = lcsm__now();
    char err[256];
    lcsm_status st = clfft_plan_create(cb->ctx, cb->device, cb->queue, n, batch, cb->fft_real.mem, cb->fft_cplx.mem,
                                       &cb->plans[cb->n_plans], err, sizeof err);
    cb->base.stats.plan_s += lcsm__now() - t0;
    if (st != LCSM_OK)
        return LCSM_FAIL_BE(&cb->base, st, "opencl: %s", err);
    *out = cb->plans[cb->n_plans++];
    return LCSM_OK;
}

lcsm_status clb_launch(cl_backend *cb, clk_id k, int dims, const size_t *global, const size_t *local,
                       const cl_arg *args, int n_args)
{
    for (size_t d = 0; d < (size_t)dims; d++)
        if (global[d] == 0)
            return LCSM_OK; /* nothing to do (OpenCL 1.2 rejects empty ranges) */
    for (int i = 0; i < n_args; i++) {
        cl_int e = clSetKernelArg(cb->k[k], (cl_uint)i, args[i].size, args[i].ptr);
        if (e != CL_SUCCESS)
            return LCSM_FAIL_BE(&cb->base, LCSM_ERR_BACKEND, "opencl: clSetKernelArg(%s, %d) failed: %s (%d)",
                                clb_kernel_name(k), i, lcsm_cl_error_name(e), (int)e);
    }
    cl_event ev = NULL;
    cl_int e = clEnqueueNDRangeKernel(cb->queue, cb->k[k], (cl_uint)dims, NULL, global, local, 0, NULL,
                                      cb->profiling ? &ev : NULL);
    if (ev)
        clb_prof_record(cb, (int)k, ev, NULL);
    if (e != CL_SUCCESS)
        return LCSM_FAIL_BE(&cb->base, cl_status(e), "opencl: clEnqueueNDRangeKernel(%s) failed: %s (%d)",
                            clb_kernel_name(k), lcsm_cl_error_name(e), (int)e);
    return LCSM_OK;
}

/* ---- memory ops of the table */

static lcsm_status cl_alloc(lcsm_backend *be, size_t bytes, lcsm_buf **out)
{
    cl_backend *cb = (cl_backend *)be;
    lcsm_buf *b = lcsm__malloc(sizeof *b);
    if (!b)
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "opencl: buffer handle");
    lcsm_status st = clb_mem(cb, bytes, "a buffer", &b->mem);
    if (st != LCSM_OK) {
        lcsm__free(b);
        return st;
    }
    b->bytes = bytes;
    *out = b;
    return LCSM_OK;
}

static void cl_release(lcsm_backend *be, lcsm_buf *b)
{
    if (b) {
        clb_release((cl_backend *)be, b->mem);
        lcsm__free(b);
    }
}

static lcsm_status cl_write(lcsm_backend *be, lcsm_ref dst, const void *src, size_t n)
{
    cl_backend *cb = (cl_backend *)be;
    size_t bytes;
    lcsm_status st = lcsm__check_ref(be, dst, n, dst.buf ? dst.buf->bytes : 0, "write", &bytes);
    if (st != LCSM_OK || !n)
        return st;
    pthread_mutex_lock(&cb->lock);
    st = clb_check(cb, clEnqueueWriteBuffer(cb->queue, dst.buf->mem, CL_TRUE, dst.off, bytes, src, 0, NULL, NULL),
                   "clEnqueueWriteBuffer");
    pthread_mutex_unlock(&cb->lock);
    return st;
}

static lcsm_status cl_read(lcsm_backend *be, lcsm_ref src, void *dst, size_t n)
{
    cl_backend *cb = (cl_backend *)be;
    size_t bytes;
    lcsm_status st = lcsm__check_ref(be, src, n, src.buf ? src.buf->bytes : 0, "read", &bytes);
    if (st != LCSM_OK || !n)
        return st;
    /* Enqueue under the lock, wait outside it: other threads keep enqueuing. */
    cl_event ev = NULL;
    pthread_mutex_lock(&cb->lock);
    st = clb_check(cb, clEnqueueReadBuffer(cb->queue, src.buf->mem, CL_FALSE, src.off, bytes, dst, 0, NULL, &ev),
                   "clEnqueueReadBuffer");
    if (st == LCSM_OK)
        clFlush(cb->queue);
    pthread_mutex_unlock(&cb->lock);
    return st == LCSM_OK ? clb_wait(cb, ev) : st;
}

lcsm_status clb_wait(cl_backend *cb, cl_event ev)
{
    cl_int e = clWaitForEvents(1, &ev);
    cl_int status = CL_COMPLETE;
    clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
    if (e == CL_SUCCESS && status < 0)
        e = status; /* an earlier command of the queue failed */
    clReleaseEvent(ev);
    return clb_check(cb, e, "a queued operation (reported at a wait)");
}

static lcsm_status cl_zero(lcsm_backend *be, lcsm_ref dst, size_t n)
{
    cl_backend *cb = (cl_backend *)be;
    size_t bytes;
    lcsm_status st = lcsm__check_ref(be, dst, n, dst.buf ? dst.buf->bytes : 0, "zero", &bytes);
    if (st != LCSM_OK || !n)
        return st;
    /* a fill pattern of the element size (2 or 4 bytes) divides every offset;
     * fills of at most CL_FILL_MAX bytes each (on NVIDIA's driver sessions with
     * an 8 GiB history stalled in their reset: docs/DESIGN.md §5) */
    const cl_uint zero = 0;
    const size_t pattern = lcsm_dtype_size(dst.dt) == 2 ? 2 : 4;
    pthread_mutex_lock(&cb->lock);
    for (size_t done = 0; st == LCSM_OK && done < bytes; done += CL_FILL_MAX) {
        const size_t n_bytes = bytes - done < CL_FILL_MAX ? bytes - done : CL_FILL_MAX;
        st = clb_check(cb,
                       clEnqueueFillBuffer(cb->queue, dst.buf->mem, &zero, pattern, dst.off + done, n_bytes, 0, NULL,
                                           NULL),
                       "clEnqueueFillBuffer");
    }
    pthread_mutex_unlock(&cb->lock);
    return st;
}

static void cl_destroy(lcsm_backend *be)
{
    cl_backend *cb = (cl_backend *)be;
    if (cb->queue)
        clFinish(cb->queue);
    if (cb->ids_event)
        clReleaseEvent(cb->ids_event);
    if (cb->ids_copy)
        clReleaseEvent(cb->ids_copy);
    clb_prof_free(cb);
    for (int i = 0; i < cb->n_plans; i++)
        clfft_plan_destroy(cb->plans[i]);
    lcsm__free(cb->plans);
    cl_scratch *sc[] = {&cb->fft_real, &cb->fft_cplx, &cb->fft_spec, &cb->lazy_part, &cb->modal_state, &cb->attn_part, &cb->linattn_phi};
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++)
        clb_release(cb, sc[i]->mem);
    clb_release(cb, cb->dummy);
    clb_release(cb, cb->ids);
    lcsm__free(cb->ids_host);
    for (int k = 0; k < K_COUNT; k++)
        if (cb->k[k])
            clReleaseKernel(cb->k[k]);
    if (cb->program)
        clReleaseProgram(cb->program);
    if (cb->queue)
        clReleaseCommandQueue(cb->queue);
    if (cb->ctx)
        clReleaseContext(cb->ctx);
    pthread_mutex_destroy(&cb->lock);
    lcsm__free(cb);
}

static int cl_supports(const lcsm_backend *be, lcsm_op op, int v)
{
    (void)be;
    static const lcsm_op_limits lim = {CL_ATTN_MAX_HD, CL_LINATTN_MAX_F};
    return lcsm_supports_all(&lim, op, v);
}

static const lcsm_backend_ops cl_ops = {
    .name = "opencl",
    .destroy = cl_destroy,
    .supports = cl_supports,
    .embed_dev = cl_embed_dev,
    .sample = cl_sample,
    .sample_wait = cl_sample_wait,
    .finish = cl_finish,
    .profile = cl_profile,
    .alloc = cl_alloc,
    .release = cl_release,
    .write = cl_write,
    .read = cl_read,
    .zero = cl_zero,
    .embed = cl_embed,
    .norm = cl_norm,
    .linear = cl_linear,
    .norm_linear = cl_norm_linear,
    .glu = cl_glu,
    .shortconv_seq = cl_shortconv_seq,
    .mul_seq = cl_mul_seq,
    .long_conv = cl_long_conv,
    .gate_seq = cl_gate_seq,
    .modal_seq = cl_modal_seq,
    .fir_seq = cl_fir_seq,
    .hyena_step = cl_hyena_step,
    .attn = cl_attn,
    .linattn = cl_linattn,
    .block_direct = cl_block_direct,
    .tile_fft = cl_tile_fft,
    .filters_create = cl_filters_create,
    .filters_prepare = cl_filters_prepare,
    .session_prepare = cl_session_prepare,
    .filters_destroy = cl_filters_destroy,
    .filters_bytes = cl_filters_bytes,
};

/* ---- devices */

typedef struct cl_dev {
    cl_platform_id platform;
    cl_device_id device;
    int p, d;
} cl_dev;

/* Every device of every platform, in (platform, device) order. */
static lcsm_status enumerate(cl_dev **out, int *n_out, char *err, size_t errlen)
{
    cl_uint np = 0;
    *out = NULL;
    *n_out = 0;
    cl_int e = clGetPlatformIDs(0, NULL, &np);
    if (e == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: the ICD loader found no driver */ || np == 0) {
        snprintf(err, errlen, "opencl: no OpenCL platform found (is an ICD such as pocl-opencl-icd installed?)");
        return LCSM_ERR_NO_BACKEND;
    }
    if (e != CL_SUCCESS) {
        snprintf(err, errlen, "opencl: clGetPlatformIDs failed: %s (%d)", lcsm_cl_error_name(e), (int)e);
        return LCSM_ERR_BACKEND;
    }
    cl_platform_id *ps = lcsm__calloc(np, sizeof *ps);
    cl_dev *devs = NULL;
    int n = 0;
    if (!ps) {
        snprintf(err, errlen, "opencl: out of memory listing platforms");
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    if ((e = clGetPlatformIDs(np, ps, NULL)) != CL_SUCCESS) {
        lcsm__free(ps);
        snprintf(err, errlen, "opencl: clGetPlatformIDs failed: %s (%d)", lcsm_cl_error_name(e), (int)e);
        return LCSM_ERR_BACKEND;
    }
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
            continue;
        cl_device_id *ds = lcsm__calloc(nd, sizeof *ds);
        cl_dev *grown = lcsm__realloc(devs, (size_t)(n + nd) * sizeof *devs);
        if (!ds || !grown) {
            lcsm__free(ds);
            lcsm__free(grown ? grown : devs);
            lcsm__free(ps);
            snprintf(err, errlen, "opencl: out of memory listing devices");
            return LCSM_ERR_OUT_OF_MEMORY;
        }
        devs = grown;
        if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, nd, ds, NULL) == CL_SUCCESS)
            for (cl_uint d = 0; d < nd; d++)
                devs[n++] = (cl_dev){ps[p], ds[d], (int)p, (int)d};
        lcsm__free(ds);
    }
    lcsm__free(ps);
    if (n == 0) {
        lcsm__free(devs);
        snprintf(err, errlen, "opencl: the OpenCL platforms have no devices");
        return LCSM_ERR_NO_BACKEND;
    }
    *out = devs;
    *n_out = n;
    return LCSM_OK;
}

static void device_info(const cl_dev *d, int index, lcsm_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->index = index;
    info->platform = d->p;
    info->device = d->d;
    clGetPlatformInfo(d->platform, CL_PLATFORM_NAME, sizeof info->platform_name - 1, info->platform_name, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_NAME, sizeof info->name - 1, info->name, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_VERSION, sizeof info->version - 1, info->version, NULL);
    clGetDeviceInfo(d->device, CL_DRIVER_VERSION, sizeof info->driver - 1, info->driver, NULL);
    cl_device_type type = 0;
    cl_ulong mem = 0;
    cl_uint cu = 0, mhz = 0;
    clGetDeviceInfo(d->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d->device, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof mhz, &mhz, NULL);
    snprintf(info->type, sizeof info->type, "%s",
             type & CL_DEVICE_TYPE_GPU           ? "gpu"
             : type & CL_DEVICE_TYPE_CPU         ? "cpu"
             : type & CL_DEVICE_TYPE_ACCELERATOR ? "accelerator"
                                                 : "other");
    info->global_mem_bytes = mem;
    info->compute_units = (int)cu;
    info->max_clock_mhz = (int)mhz;
}

lcsm_status lcsm_cl_list_devices(lcsm_device_info *out, int cap, int *count)
{
    cl_dev *devs;
    int n;
    char err[256];
    lcsm_status st = enumerate(&devs, &n, err, sizeof err);
    if (st != LCSM_OK)
        return lcsm__fail(NULL, 0, st, "%s", err);
    for (int i = 0; i < n && i < cap; i++)
        device_info(&devs[i], i, &out[i]);
    *count = n;
    lcsm__free(devs);
    return LCSM_OK;
}

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return 1;
    return n == 0;
}

/* "3" (index in the listing), "0:1" (platform:device) or a name substring;
 * NULL/"" = the first GPU, else the first device. */
static lcsm_status choose(const cl_dev *devs, int n, const char *want, int *chosen, char *err, size_t errlen)
{
    if (!want || !*want) {
        for (int i = 0; i < n; i++) {
            cl_device_type t = 0;
            clGetDeviceInfo(devs[i].device, CL_DEVICE_TYPE, sizeof t, &t, NULL);
            if (t & CL_DEVICE_TYPE_GPU) {
                *chosen = i;
                return LCSM_OK;
            }
        }
        *chosen = 0;
        return LCSM_OK;
    }
    int p, d, used = 0;
    if (sscanf(want, "%d:%d%n", &p, &d, &used) == 2 && want[used] == '\0') {
        for (int i = 0; i < n; i++)
            if (devs[i].p == p && devs[i].d == d) {
                *chosen = i;
                return LCSM_OK;
            }
        snprintf(err, errlen, "opencl: no device %d:%d (platform:device); see `lcsm devices`", p, d);
        return LCSM_ERR_NO_BACKEND;
    }
    if (sscanf(want, "%d%n", &p, &used) == 1 && want[used] == '\0') {
        if (p >= 0 && p < n) {
            *chosen = p;
            return LCSM_OK;
        }
        snprintf(err, errlen, "opencl: device index %d out of range (%d devices); see `lcsm devices`", p, n);
        return LCSM_ERR_NO_BACKEND;
    }
    for (int i = 0; i < n; i++) {
        lcsm_device_info info;
        device_info(&devs[i], i, &info);
        char full[300];
        snprintf(full, sizeof full, "%s %s", info.platform_name, info.name);
        if (contains_nocase(full, want)) {
            *chosen = i;
            return LCSM_OK;
        }
    }
    snprintf(err, errlen, "opencl: no device matches '%s'; see `lcsm devices`", want);
    return LCSM_ERR_NO_BACKEND;
}

static lcsm_status build_kernels(cl_backend *cb, const char *cache_dir)
{
    char options[128];
    snprintf(options, sizeof options, "-cl-std=CL1.2 -DWG=%d -DMAX_SHORT=%d -DMAX_STREAMS=%d -DMAX_STAGES=%d", CL_WG,
             LCSM_MAX_SHORT, LCSM_MAX_STREAMS, LCSM_MAX_STAGES);
    clc_origin origin;
    double t0 = lcsm__now();
    lcsm_status st = clc_program_build(cb->ctx, cb->device, lcsm_cl_kernels, lcsm_cl_kernels_len, options, cache_dir,
                                       &cb->program, &origin, cb->base.last_error, sizeof cb->base.last_error);
    cb->base.stats.kernel_build_s = lcsm__now() - t0;
    if (st != LCSM_OK)
        return st;
    cb->base.stats.kernels_from_cache = origin == CLC_FROM_CACHE;
    for (int k = 0; k < K_COUNT; k++) {
        cl_int e;
        cb->k[k] = clCreateKernel(cb->program, clb_kernel_name(k), &e);
        if (e != CL_SUCCESS)
            return LCSM_FAIL_BE(&cb->base, LCSM_ERR_BACKEND, "opencl: clCreateKernel(%s) failed: %s (%d)",
                                clb_kernel_name(k), lcsm_cl_error_name(e), (int)e);
    }
    return LCSM_OK;
}

static lcsm_status open_device(cl_backend *cb, const lcsm_backend_options *opt, char *err, size_t errlen)
{
    cl_dev *devs;
    int n, i;
    lcsm_status st = enumerate(&devs, &n, err, errlen);
    if (st != LCSM_OK)
        return st;
    const char *want = opt->device ? opt->device : getenv("LCSM_DEVICE");
    st = choose(devs, n, want, &i, err, errlen);
    if (st == LCSM_OK) {
        cb->device = devs[i].device;
        lcsm_device_info info;
        device_info(&devs[i], i, &info);
        cb->is_cpu_device = !strcmp(info.type, "cpu");
        cb->global_mem = info.global_mem_bytes;
        snprintf(cb->base.description, sizeof cb->base.description, "OpenCL device %d: %.80s (%.60s, %.40s, %d CUs, %.1f GiB)",
                 i, info.name, info.platform_name, info.driver, info.compute_units,
                 (double)info.global_mem_bytes / (1 << 30));
    }
    lcsm__free(devs);
    return st;
}

/* A knob from the environment: *out unchanged when `name` is unset or empty;
 * else a count in [lo, hi] or an error naming it. */
static lcsm_status env_count(const char *name, int lo, int hi, int *out, lcsm_backend *be)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return LCSM_OK;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > hi)
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "%s=%s is not a count in [%d, %d]", name, v, lo, hi);
    *out = (int)n;
    return LCSM_OK;
}

/* A switch from the environment: `dflt` when `name` is unset or empty, else off for "0". */
static int env_flag(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? strcmp(v, "0") != 0 : dflt;
}

static lcsm_status setup(cl_backend *cb, const lcsm_backend_options *opt)
{
    char err[512] = "";
    lcsm_status st = open_device(cb, opt, err, sizeof err);
    if (st != LCSM_OK)
        return LCSM_FAIL_BE(&cb->base, st, "%s", err);
    cl_int e;
    cb->ctx = clCreateContext(NULL, 1, &cb->device, NULL, NULL, &e);
    if ((st = clb_check(cb, e, "clCreateContext")) != LCSM_OK)
        return st;
    const char *prof = getenv("LCSM_PROFILE");
    int profile = opt->profile || (prof && *prof && strcmp(prof, "0") != 0);
    /* in order: VkFFT needs it */
    cb->queue = clCreateCommandQueue(cb->ctx, cb->device, profile ? CL_QUEUE_PROFILING_ENABLE : 0, &e);
    if ((st = clb_check(cb, e, "clCreateCommandQueue")) != LCSM_OK)
        return st;
    if (profile && (st = clb_prof_init(cb)) != LCSM_OK)
        return st;
    size_t max_wg = 0;
    clGetDeviceInfo(cb->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    if ((st = clb_check(cb, clGetDeviceInfo(cb->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof cb->max_alloc,
                                            &cb->max_alloc, NULL),
                        "clGetDeviceInfo(CL_DEVICE_MAX_MEM_ALLOC_SIZE)")) != LCSM_OK)
        return st;
    if (max_wg < CL_WG)
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_BACKEND, "opencl: the device's work-groups (%zu) are below %d",
                            max_wg, CL_WG);
    /* FFT scratch per convolution: an eighth of the memory, within one allocation. */
    cb->fft_budget = (size_t)(cb->global_mem / 16);
    if (cb->fft_budget > cb->max_alloc / 2)
        cb->fft_budget = (size_t)(cb->max_alloc / 2);
    if (cb->fft_budget > ((size_t)512 << 20))
        cb->fft_budget = (size_t)512 << 20;
    cb->fft_max_n = CL_FFT_MAX_N;
    const char *cap = getenv("LCSM_CL_FFT_MAX"); /* tests: exercise the blocked path with small sizes */
    if (cap && *cap) {
        int v = atoi(cap);
        if (v < 4 || v > CL_FFT_MAX_N || (v & (v - 1)))
            return LCSM_FAIL_BE(&cb->base, LCSM_ERR_INVALID_ARGUMENT,
                                "LCSM_CL_FFT_MAX=%s is not a power of two in [4, %d]", cap, CL_FFT_MAX_N);
        cb->fft_max_n = v;
    }
    /* spread tiles: units of 16 channels, parts of tiles below 2^18 in whole
     * batches of 64 (as one FFT each), larger tiles' unit by unit (a batch of
     * theirs costs several steps); on a GPU only tiles of 1024 and more, smaller
     * ones cost less whole than as several launches (LCSM_CL_SPREAD_UNIT,
     * LCSM_CL_SPREAD_FINE: A/B in bench/RESULTS.md) */
    cb->base.spread_unit = 16;
    cb->base.spread_fine_from = 1 << 18;
    if ((st = env_count("LCSM_CL_SPREAD_UNIT", 1, 1 << 20, &cb->base.spread_unit, &cb->base)) != LCSM_OK ||
        (st = env_count("LCSM_CL_SPREAD_FINE", 0, 1 << 30, &cb->base.spread_fine_from, &cb->base)) != LCSM_OK)
        return st;
    cb->base.spread_fine_lagged = cb->base.spread_fine_from; /* both schedules alike */
    cb->base.spread_align = cb->base.spread_unit < CL_SPREAD_BATCH && CL_SPREAD_BATCH % cb->base.spread_unit == 0
                                ? CL_SPREAD_BATCH / cb->base.spread_unit
                                : 1;
    /* lagged flash's band: taps per work-item of its partial sums, and bands of
     * up to min(this, CL_INLINE_BAND) taps summed in the step kernel itself
     * (a GPU has threads to spare: short serial sums; LCSM_CL_BAND_TAPS) */
    cb->band_taps = cb->is_cpu_device ? 256 : 16;
    if ((st = env_count("LCSM_CL_BAND_TAPS", 1, 1 << 20, &cb->band_taps, &cb->base)) != LCSM_OK)
        return st;
    cb->base.spread_min = cb->is_cpu_device ? 16 : 1024;
    cb->base.max_buffer = (size_t)cb->max_alloc;
    /* decode's norms folded into the projections after them: on GPUs (on a CPU
     * device the fused kernel measured slower); LCSM_CL_FUSE_NORM=0 or 1 decides
     * (A/B in bench/RESULTS.md; the tests run both) */
    cb->fuse_norm = env_flag("LCSM_CL_FUSE_NORM", !cb->is_cpu_device);
    /* a decode step's attention splits its positions in spans of at least this
     * many (a CPU device has few cores and runs unsplit); tests set
     * LCSM_CL_ATTN_SPAN to exercise the split path with short prompts */
    cb->attn_min_span = cb->is_cpu_device ? INT_MAX : 512;
    if ((st = env_count("LCSM_CL_ATTN_SPAN", 1, INT_MAX, &cb->attn_min_span, &cb->base)) != LCSM_OK)
        return st;
    if ((st = clb_mem(cb, 64, "placeholder", &cb->dummy)) != LCSM_OK)
        return st;
    char buf[4096]; /* PATH_MAX */
    return build_kernels(cb, lcsm__cache_dir(opt, buf, sizeof buf));
}

lcsm_status lcsm_cl_backend_create(const lcsm_backend_options *opt, lcsm_backend **out)
{
    cl_backend *cb = lcsm__calloc(1, sizeof *cb);
    if (!cb)
        return lcsm__fail(NULL, 0, LCSM_ERR_OUT_OF_MEMORY, "opencl backend handle");
    cb->base.ops = &cl_ops;
    snprintf(cb->base.name, sizeof cb->base.name, "opencl");
    pthread_mutex_init(&cb->lock, NULL);
    lcsm_status st = setup(cb, opt);
    if (st == LCSM_OK) {
        int t = 0;
        if ((st = lcsm__fft_threshold(opt, &t)) != LCSM_OK)
            snprintf(cb->base.last_error, sizeof cb->base.last_error, "%s", lcsm_last_error());
        cb->base.fft_threshold = t ? t : cb->is_cpu_device ? CL_DEFAULT_THRESHOLD_CPU : CL_DEFAULT_THRESHOLD_GPU;
        cb->base.sample_max = CL_SAMPLE_MAX;
        cb->gemv_max_rows = CL_GEMV_MAX_ROWS;
    }
    if (st != LCSM_OK) {
        lcsm__fail(NULL, 0, st, "%s", cb->base.last_error);
        cl_destroy(&cb->base);
        return st;
    }
    size_t len = strlen(cb->base.description);
    snprintf(cb->base.description + len, sizeof cb->base.description - len, ", FFT tiles from U=%d, kernels %s",
             cb->base.fft_threshold, cb->base.stats.kernels_from_cache ? "cached" : "built");
    *out = &cb->base;
    return LCSM_OK;
}
