/*
 * Batched real FFTs through VkFFT 1.2.26 (see cl_fft.h and BACKEND-NOTES.md).
 * The only translation unit that includes vkFFT.h (it takes ~15 s to compile).
 *
 * How 1.2.26's OpenCL backend treats launch-time buffers (read from vkFFT.h):
 * VkFFTAppend -> VkFFTCheckUpdateBufferSet copies launchParams->buffer /
 * inputBuffer (cl_mem *) into the configuration only when the *pointer* differs
 * from the one it holds, and the axes keep that pointer; every kernel launch then
 * does clSetKernelArg(kernel, i, sizeof(cl_mem), axis->inputBuffer), which reads
 * the cl_mem through the pointer at that moment. Offsets (bytes) are compared by
 * value and go to the kernels as push-constant arguments (specifyOffsetsAtLaunch),
 * divided by the element size VkFFT reads. So launch-time buffers and offsets do
 * take effect; we still hand over a different pointer whenever the buffer changes
 * (two slots per side), so nothing relies on the late dereference.
 */
#include "cl_errors.h"
#include "cl_fft.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Test aid: LCSM_CLFFT_LOCAL_MEM=<bytes> makes VkFFT plan as if the device had
 * that little local memory, so a CPU device (PoCL: 1.25 MiB, every size one pass)
 * runs the multi-pass plans GPUs get (48 KiB: R2C above 4096 points splits).
 * vkFFT.h queries the device through clGetDeviceInfo only; the wrapper caps that
 * one answer. Read under plan_lock, at plan creation. */
static cl_ulong local_mem_cap;

static cl_int clfft_get_device_info(cl_device_id d, cl_device_info what, size_t size, void *value, size_t *ret)
{
    cl_int r = clGetDeviceInfo(d, what, size, value, ret);
    if (r == CL_SUCCESS && what == CL_DEVICE_LOCAL_MEM_SIZE && local_mem_cap && value && size >= sizeof(cl_ulong) &&
        *(cl_ulong *)value > local_mem_cap)
        *(cl_ulong *)value = local_mem_cap;
    return r;
}

#define VKFFT_BACKEND 3 /* OpenCL */
#define clGetDeviceInfo clfft_get_device_info /* CL/cl.h is already in: only vkFFT.h's calls change */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#include <vkFFT.h>
#pragma GCC diagnostic pop
#undef clGetDeviceInfo

/* VkFFT keeps pointers to everything in its configuration (device, context,
 * queue, buffers, sizes): all of it lives here, on the heap, as long as the plan. */
struct clfft_plan {
    VkFFTApplication app;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    uint64_t real_bytes, cplx_bytes;
    /* The buffers VkFFT points at. A buffer that differs from the current slot's
     * goes into the other slot, so VkFFT sees a new pointer and rebinds. */
    cl_mem slot_real[2], slot_cplx[2];
    int cur_real, cur_cplx;
    /* Inverse split into several passes (four-step: numAxisUploads > 1): 1.2.26
     * then gets a nonzero complex offset wrong (wrong values, and writes outside
     * the buffers: heap corruption on PoCL with LCSM_CLFFT_LOCAL_MEM=49152 from
     * 16384 points; likely the NVIDIA 65536-point failure in cl_fft.h). Such an
     * inverse reads a copy of the slice at offset 0 in `scratch` (cplx_bytes,
     * made at first need). Forward passes take offsets right. */
    int inverse_split;
    cl_mem scratch;
    int n, batch;
};

/* initializeVkFFT calls setlocale (process-global) and compiles kernels; plan
 * creation and destruction go one at a time. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every enumerator of 1.2.26's VkFFTResult, in the header's order (generated with
 * awk '/typedef enum VkFFTResult/,/} VkFFTResult;/' vkFFT.h | grep -o 'VKFFT_[A-Za-z0-9_]*'). */
#define E CL_CODE_NAME
static const cl_code_name vk_names[] = {
    E(VKFFT_SUCCESS),
    E(VKFFT_ERROR_MALLOC_FAILED),
    E(VKFFT_ERROR_INSUFFICIENT_CODE_BUFFER),
    E(VKFFT_ERROR_INSUFFICIENT_TEMP_BUFFER),
    E(VKFFT_ERROR_PLAN_NOT_INITIALIZED),
    E(VKFFT_ERROR_NULL_TEMP_PASSED),
    E(VKFFT_ERROR_INVALID_PHYSICAL_DEVICE),
    E(VKFFT_ERROR_INVALID_DEVICE),
    E(VKFFT_ERROR_INVALID_QUEUE),
    E(VKFFT_ERROR_INVALID_COMMAND_POOL),
    E(VKFFT_ERROR_INVALID_FENCE),
    E(VKFFT_ERROR_ONLY_FORWARD_FFT_INITIALIZED),
    E(VKFFT_ERROR_ONLY_INVERSE_FFT_INITIALIZED),
    E(VKFFT_ERROR_INVALID_CONTEXT),
    E(VKFFT_ERROR_INVALID_PLATFORM),
    E(VKFFT_ERROR_ENABLED_saveApplicationToString),
    E(VKFFT_ERROR_EMPTY_FILE),
    E(VKFFT_ERROR_EMPTY_FFTdim),
    E(VKFFT_ERROR_EMPTY_size),
    E(VKFFT_ERROR_EMPTY_bufferSize),
    E(VKFFT_ERROR_EMPTY_buffer),
    E(VKFFT_ERROR_EMPTY_tempBufferSize),
    E(VKFFT_ERROR_EMPTY_tempBuffer),
    E(VKFFT_ERROR_EMPTY_inputBufferSize),
    E(VKFFT_ERROR_EMPTY_inputBuffer),
    E(VKFFT_ERROR_EMPTY_outputBufferSize),
    E(VKFFT_ERROR_EMPTY_outputBuffer),
    E(VKFFT_ERROR_EMPTY_kernelSize),
    E(VKFFT_ERROR_EMPTY_kernel),
    E(VKFFT_ERROR_EMPTY_applicationString),
    E(VKFFT_ERROR_EMPRY_useCustomBluesteinPaddingPattern_arrays),
    E(VKFFT_ERROR_UNSUPPORTED_RADIX),
    E(VKFFT_ERROR_UNSUPPORTED_FFT_LENGTH),
    E(VKFFT_ERROR_UNSUPPORTED_FFT_LENGTH_R2C),
    E(VKFFT_ERROR_UNSUPPORTED_FFT_LENGTH_DCT),
    E(VKFFT_ERROR_UNSUPPORTED_FFT_OMIT),
    E(VKFFT_ERROR_FAILED_TO_ALLOCATE),
    E(VKFFT_ERROR_FAILED_TO_MAP_MEMORY),
    E(VKFFT_ERROR_FAILED_TO_ALLOCATE_COMMAND_BUFFERS),
    E(VKFFT_ERROR_FAILED_TO_BEGIN_COMMAND_BUFFER),
    E(VKFFT_ERROR_FAILED_TO_END_COMMAND_BUFFER),
    E(VKFFT_ERROR_FAILED_TO_SUBMIT_QUEUE),
    E(VKFFT_ERROR_FAILED_TO_WAIT_FOR_FENCES),
    E(VKFFT_ERROR_FAILED_TO_RESET_FENCES),
    E(VKFFT_ERROR_FAILED_TO_CREATE_DESCRIPTOR_POOL),
    E(VKFFT_ERROR_FAILED_TO_CREATE_DESCRIPTOR_SET_LAYOUT),
    E(VKFFT_ERROR_FAILED_TO_ALLOCATE_DESCRIPTOR_SETS),
    E(VKFFT_ERROR_FAILED_TO_CREATE_PIPELINE_LAYOUT),
    E(VKFFT_ERROR_FAILED_SHADER_PREPROCESS),
    E(VKFFT_ERROR_FAILED_SHADER_PARSE),
    E(VKFFT_ERROR_FAILED_SHADER_LINK),
    E(VKFFT_ERROR_FAILED_SPIRV_GENERATE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_SHADER_MODULE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_INSTANCE),
    E(VKFFT_ERROR_FAILED_TO_SETUP_DEBUG_MESSENGER),
    E(VKFFT_ERROR_FAILED_TO_FIND_PHYSICAL_DEVICE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_DEVICE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_FENCE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_COMMAND_POOL),
    E(VKFFT_ERROR_FAILED_TO_CREATE_BUFFER),
    E(VKFFT_ERROR_FAILED_TO_ALLOCATE_MEMORY),
    E(VKFFT_ERROR_FAILED_TO_BIND_BUFFER_MEMORY),
    E(VKFFT_ERROR_FAILED_TO_FIND_MEMORY),
    E(VKFFT_ERROR_FAILED_TO_SYNCHRONIZE),
    E(VKFFT_ERROR_FAILED_TO_COPY),
    E(VKFFT_ERROR_FAILED_TO_CREATE_PROGRAM),
    E(VKFFT_ERROR_FAILED_TO_COMPILE_PROGRAM),
    E(VKFFT_ERROR_FAILED_TO_GET_CODE_SIZE),
    E(VKFFT_ERROR_FAILED_TO_GET_CODE),
    E(VKFFT_ERROR_FAILED_TO_DESTROY_PROGRAM),
    E(VKFFT_ERROR_FAILED_TO_LOAD_MODULE),
    E(VKFFT_ERROR_FAILED_TO_GET_FUNCTION),
    E(VKFFT_ERROR_FAILED_TO_SET_DYNAMIC_SHARED_MEMORY),
    E(VKFFT_ERROR_FAILED_TO_MODULE_GET_GLOBAL),
    E(VKFFT_ERROR_FAILED_TO_LAUNCH_KERNEL),
    E(VKFFT_ERROR_FAILED_TO_EVENT_RECORD),
    E(VKFFT_ERROR_FAILED_TO_ADD_NAME_EXPRESSION),
    E(VKFFT_ERROR_FAILED_TO_INITIALIZE),
    E(VKFFT_ERROR_FAILED_TO_SET_DEVICE_ID),
    E(VKFFT_ERROR_FAILED_TO_GET_DEVICE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_CONTEXT),
    E(VKFFT_ERROR_FAILED_TO_CREATE_PIPELINE),
    E(VKFFT_ERROR_FAILED_TO_SET_KERNEL_ARG),
    E(VKFFT_ERROR_FAILED_TO_CREATE_COMMAND_QUEUE),
    E(VKFFT_ERROR_FAILED_TO_RELEASE_COMMAND_QUEUE),
    E(VKFFT_ERROR_FAILED_TO_ENUMERATE_DEVICES),
    E(VKFFT_ERROR_FAILED_TO_GET_ATTRIBUTE),
    E(VKFFT_ERROR_FAILED_TO_CREATE_EVENT),
    E(VKFFT_ERROR_FAILED_TO_CREATE_COMMAND_LIST),
    E(VKFFT_ERROR_FAILED_TO_DESTROY_COMMAND_LIST),
    E(VKFFT_ERROR_FAILED_TO_SUBMIT_BARRIER),
};
#undef E

const char *clfft_result_name(int result)
{
    return cl_code_lookup(vk_names, sizeof vk_names / sizeof vk_names[0], result, "unknown VkFFT result");
}

lcsm_status clfft_plan_create(cl_context ctx, cl_device_id dev, cl_command_queue queue, int n, int batch,
                              cl_mem real, cl_mem cplx, clfft_plan **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n < 2 || n > CL_FFT_MAX_N || (n & (n - 1)) || batch < 1) {
        snprintf(err, errlen, "VkFFT plan: n=%d must be a power of two in [2, %d] and batch=%d >= 1", n,
                 CL_FFT_MAX_N, batch);
        return LCSM_ERR_INVALID_ARGUMENT;
    }
    if (!ctx || !dev || !queue) {
        snprintf(err, errlen, "VkFFT plan: no OpenCL context, device or queue");
        return LCSM_ERR_INVALID_ARGUMENT;
    }
    clfft_plan *p = lcsm__calloc(1, sizeof *p); /* zeroed, as VkFFT requires of the application */
    if (!p) {
        snprintf(err, errlen, "VkFFT plan (n=%d, batch=%d): out of host memory", n, batch);
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    p->device = dev;
    p->context = ctx;
    p->queue = queue;
    p->slot_real[0] = real;
    p->slot_cplx[0] = cplx;
    p->n = n;
    p->batch = batch;
    p->real_bytes = (uint64_t)4 * n * batch;
    p->cplx_bytes = (uint64_t)8 * (n / 2 + 1) * batch;

    VkFFTConfiguration c;
    memset(&c, 0, sizeof c); /* zero = VkFFT's defaults */
    c.FFTdim = 1;
    c.size[0] = (uint64_t)n;
    c.size[1] = c.size[2] = 1;
    c.numberBatches = (uint64_t)batch;
    c.performR2C = 1;
    c.normalize = 1;                  /* inverse divides by n */
    c.isInputFormatted = 1;           /* real data in its own buffer (out of place) */
    c.inverseReturnToInputBuffer = 1; /* C2R writes the real buffer, not the complex one */
    /* 1.2.x defaults the input stride to the padded complex one and then reads
     * out of bounds (VkFFT#139): the real rows are exactly n apart. */
    c.inputBufferStride[0] = c.inputBufferStride[1] = c.inputBufferStride[2] = (uint64_t)n;
    c.specifyOffsetsAtLaunch = 1; /* offsets as kernel arguments, not compiled in */
    c.device = &p->device;
    c.context = &p->context;
    c.inputBuffer = &p->slot_real[0];
    c.buffer = &p->slot_cplx[0];
    c.inputBufferSize = &p->real_bytes;
    c.bufferSize = &p->cplx_bytes;
    c.bufferNum = c.inputBufferNum = 1;

    pthread_mutex_lock(&plan_lock);
    const char *cap = getenv("LCSM_CLFFT_LOCAL_MEM");
    local_mem_cap = cap && *cap ? strtoull(cap, NULL, 0) : 0;
    VkFFTResult r = initializeVkFFT(&p->app, c);
    if (r != VKFFT_SUCCESS)
        deleteVkFFT(&p->app); /* it frees on most failure paths itself; a second call is a no-op */
    pthread_mutex_unlock(&plan_lock);
    if (r != VKFFT_SUCCESS) {
        snprintf(err, errlen, "VkFFT initializeVkFFT(n=%d, batch=%d) failed: %s (%d)", n, batch,
                 clfft_result_name((int)r), (int)r);
        lcsm__free(p);
        return r == VKFFT_ERROR_MALLOC_FAILED || r == VKFFT_ERROR_FAILED_TO_ALLOCATE ? LCSM_ERR_OUT_OF_MEMORY
                                                                                      : LCSM_ERR_BACKEND;
    }
    p->inverse_split = p->app.localFFTPlan_inverse && p->app.localFFTPlan_inverse->numAxisUploads[0] > 1;
    *out = p;
    return LCSM_OK;
}

/* The slot to hand VkFFT for buffer `m`: the current one if it holds m, else the
 * other one, now holding m (a new pointer makes VkFFT rebind). */
static cl_mem *slot_for(cl_mem slots[2], int *cur, cl_mem m)
{
    if (slots[*cur] != m) {
        *cur ^= 1;
        slots[*cur] = m;
    }
    return &slots[*cur];
}

static lcsm_status append(clfft_plan *p, int dir, cl_mem real, size_t real_off, cl_mem cplx, size_t cplx_off,
                          char *err, size_t errlen)
{
    const char *what = dir < 0 ? "forward" : "inverse";
    /* VkFFT turns byte offsets into element offsets by dividing, dropping any
     * remainder. Complex values are 8 bytes; the real rows are read as floats
     * in one pass, but as complex pairs when a long R2C is split into passes
     * (multiUploadR2C: on NVIDIA above 4096 points), so a real offset of an odd
     * number of floats comes out wrong there (seen): it must be a multiple of 8
     * bytes too. */
    if (!p || !real || !cplx || real_off % 8 || cplx_off % 8) {
        snprintf(err, errlen, "VkFFT %s: missing plan or buffer, or an offset (real %zu, complex %zu bytes) "
                              "not a multiple of 8", what, real_off, cplx_off);
        return LCSM_ERR_INVALID_ARGUMENT;
    }
    if (dir > 0 && p->inverse_split && cplx_off) { /* see inverse_split */
        cl_int e = CL_SUCCESS;
        const char *call = "clCreateBuffer";
        if (!p->scratch && lcsm__dev_alloc_fails()) /* tests fail the n-th device allocation */
            e = CL_MEM_OBJECT_ALLOCATION_FAILURE;
        else if (!p->scratch)
            p->scratch = clCreateBuffer(p->context, CL_MEM_READ_WRITE, (size_t)p->cplx_bytes, NULL, &e);
        if (e == CL_SUCCESS) {
            call = "clEnqueueCopyBuffer";
            e = clEnqueueCopyBuffer(p->queue, cplx, p->scratch, cplx_off, 0, (size_t)p->cplx_bytes, 0, NULL, NULL);
        }
        if (e != CL_SUCCESS) {
            snprintf(err, errlen, "VkFFT inverse (n=%d, batch=%d): %s for a scratch buffer of %llu bytes failed: %s (%d)",
                     p->n, p->batch, call, (unsigned long long)p->cplx_bytes, lcsm_cl_error_name(e), (int)e);
            return e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES || e == CL_OUT_OF_HOST_MEMORY
                       ? LCSM_ERR_OUT_OF_MEMORY
                       : LCSM_ERR_BACKEND;
        }
        cplx = p->scratch;
        cplx_off = 0;
    }
    VkFFTLaunchParams lp;
    memset(&lp, 0, sizeof lp);
    lp.commandQueue = &p->queue;
    lp.inputBuffer = slot_for(p->slot_real, &p->cur_real, real);
    lp.buffer = slot_for(p->slot_cplx, &p->cur_cplx, cplx);
    lp.inputBufferOffset = real_off;
    lp.bufferOffset = cplx_off;
    VkFFTResult r = VkFFTAppend(&p->app, dir, &lp);
    if (r != VKFFT_SUCCESS) {
        snprintf(err, errlen, "VkFFT %s (n=%d, batch=%d) failed: %s (%d)", what, p->n, p->batch,
                 clfft_result_name((int)r), (int)r);
        return LCSM_ERR_BACKEND;
    }
    return LCSM_OK;
}

lcsm_status clfft_forward(clfft_plan *p, cl_mem real, size_t real_off, cl_mem cplx, size_t cplx_off, char *err,
                          size_t errlen)
{
    return append(p, -1, real, real_off, cplx, cplx_off, err, errlen);
}

lcsm_status clfft_inverse(clfft_plan *p, cl_mem cplx, size_t cplx_off, cl_mem real, size_t real_off, char *err,
                          size_t errlen)
{
    return append(p, 1, real, real_off, cplx, cplx_off, err, errlen);
}

int clfft_plan_n(const clfft_plan *p) { return p->n; }
int clfft_plan_batch(const clfft_plan *p) { return p->batch; }

void clfft_plan_destroy(clfft_plan *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&plan_lock);
    deleteVkFFT(&p->app);
    pthread_mutex_unlock(&plan_lock);
    if (p->scratch)
        clReleaseMemObject(p->scratch); /* OpenCL keeps it until queued copies and kernels are done */
    lcsm__free(p);
}
