/*
 * Kernel profiling of the OpenCL backend (lcsm_backend_options.profile or
 * LCSM_PROFILE=1): every launch gets an event; events are read in batches (when
 * the pending list fills, and when the caller asks for the profile), so a
 * profiled run keeps its launches asynchronous except once per PROF_BATCH.
 * VkFFT enqueues its own kernels, so an FFT is timed between a marker before it
 * and one after it (the end of the first to the end of the second; on an
 * in-order queue that is the FFT's time plus any gap the host left).
 * All functions run under the backend's lock.
 */
#include "cl_backend.h"

#include <stdlib.h>

#define PROF_BATCH 4096


static cl_ulong stamp(cl_event ev, cl_profiling_info what)
{
    cl_ulong t = 0;
    if (clGetEventProfilingInfo(ev, what, sizeof t, &t, NULL) != CL_SUCCESS)
        return 0;
    return t;
}

/* Reads every pending event (waiting for them) into the totals. */
static void collect(cl_backend *cb)
{
    for (int i = 0; i < cb->prof_n; i++) {
        cl_prof_event *p = &cb->prof_pending[i];
        cl_event last = p->end ? p->end : p->start;
        if (clWaitForEvents(1, &last) == CL_SUCCESS) {
            cl_ulong t0 = p->end ? stamp(p->start, CL_PROFILING_COMMAND_END) : stamp(p->start, CL_PROFILING_COMMAND_START);
            cl_ulong t1 = stamp(last, CL_PROFILING_COMMAND_END);
            if (t1 > t0)
                cb->prof_s[p->k] += (double)(t1 - t0) * 1e-9;
            cb->prof_calls[p->k]++;
        }
        clReleaseEvent(p->start);
        if (p->end)
            clReleaseEvent(p->end);
    }
    cb->prof_n = 0;
}

lcsm_status clb_prof_init(cl_backend *cb)
{
    cb->prof_pending = lcsm__calloc(PROF_BATCH, sizeof *cb->prof_pending);
    if (!cb->prof_pending)
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "opencl: profiling events");
    cb->prof_cap = PROF_BATCH;
    cb->profiling = 1;
    return LCSM_OK;
}

void clb_prof_free(cl_backend *cb)
{
    if (cb->prof_pending)
        collect(cb);
    lcsm__free(cb->prof_pending);
    cb->prof_pending = NULL;
}

void clb_prof_record(cl_backend *cb, int k, cl_event start, cl_event end)
{
    if (cb->prof_n == cb->prof_cap)
        collect(cb);
    cb->prof_pending[cb->prof_n++] = (cl_prof_event){start, end, k};
}

void clb_prof_begin(cl_backend *cb, cl_event *ev)
{
    *ev = NULL;
    if (cb->profiling && clEnqueueMarkerWithWaitList(cb->queue, 0, NULL, ev) != CL_SUCCESS)
        *ev = NULL;
}

void clb_prof_end(cl_backend *cb, clk_id k, cl_event start)
{
    cl_event end = NULL;
    if (!start)
        return;
    if (clEnqueueMarkerWithWaitList(cb->queue, 0, NULL, &end) != CL_SUCCESS) {
        clReleaseEvent(start);
        return;
    }
    clb_prof_record(cb, (int)k, start, end);
}

static int by_time_desc(const void *a, const void *b)
{
    const lcsm_profile_entry *x = a, *y = b;
    return x->seconds < y->seconds ? 1 : x->seconds > y->seconds ? -1 : 0;
}

lcsm_status cl_profile(lcsm_backend *be, lcsm_profile_entry *out, int cap, int *count, int reset)
{
    cl_backend *cb = (cl_backend *)be;
    if (!cb->profiling)
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED,
                            "opencl: profiling is off (lcsm_backend_options.profile = 1 or LCSM_PROFILE=1)");
    pthread_mutex_lock(&cb->lock);
    clFinish(cb->queue);
    collect(cb);
    lcsm_profile_entry all[K_PROF_COUNT];
    int n = 0;
    for (int k = 0; k < K_PROF_COUNT; k++)
        if (cb->prof_calls[k])
            all[n++] = (lcsm_profile_entry){clb_kernel_name(k), cb->prof_calls[k], cb->prof_s[k]};
    qsort(all, (size_t)n, sizeof all[0], by_time_desc);
    for (int i = 0; i < n && i < cap; i++)
        out[i] = all[i];
    *count = n;
    if (reset)
        for (int k = 0; k < K_PROF_COUNT; k++) {
            cb->prof_s[k] = 0;
            cb->prof_calls[k] = 0;
        }
    pthread_mutex_unlock(&cb->lock);
    return LCSM_OK;
}
