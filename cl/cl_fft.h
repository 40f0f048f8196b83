/*
 * Batched real FFTs through VkFFT (the only part of lcsm that includes vkFFT.h).
 *
 * A plan transforms `batch` real sequences of n points (n a power of two,
 * 2 <= n <= CL_FFT_MAX_N), stored contiguously (stride n floats) in a real buffer, to
 * and from rows of n/2+1 complex values (stride n/2+1, interleaved re/im floats)
 * in a complex buffer. Forward is unnormalised, inverse divides by n, so
 * inverse(forward(x)) == x. Buffers and byte offsets are given at every launch, so
 * one plan serves any slice of any buffer large enough for the batch; offsets must
 * be multiples of 8 bytes (else LCSM_ERR_INVALID_ARGUMENT; cl_fft.c says why).
 * LCSM_CLFFT_LOCAL_MEM=<bytes> (a test aid) makes plans as for a device with that
 * little local memory, so a CPU device runs the multi-pass plans GPUs get.
 */
#ifndef LCSM_CL_FFT_H
#define LCSM_CL_FFT_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stddef.h>

#include "../src/util.h"

/* Largest transform the backend makes. PoCL 3.1 + VkFFT 1.2.26 crash for R2C from
 * 131072 points (BACKEND-NOTES.md), and on an H100 (NVIDIA 580 driver) a 65536-point
 * C2R launched at a nonzero buffer offset returned wrong values (test_cl_fft;
 * at offset 0 it was right): VkFFT splits such sizes into several passes there.
 * 32768 points is one pass and right everywhere we ran; longer convolutions are
 * cut into blocks (cl_conv.c). (A multi-pass inverse at a nonzero complex offset
 * is wrong in 1.2.26 on any device: PoCL with LCSM_CLFFT_LOCAL_MEM=49152 from
 * 16384 points. cl_fft.c now runs such an inverse from a copy at offset 0, which
 * may make 65536 right on NVIDIA too: not yet checked there.) */
#define CL_FFT_MAX_N 32768

typedef struct clfft_plan clfft_plan;

/* Makes a plan for the queue's device. `real` and `cplx` are buffers the plan is
 * built against (at least batch*n floats and batch*(n/2+1) complex values); later
 * launches may name other buffers. Creation is serialised process-wide (VkFFT
 * calls setlocale). On failure returns LCSM_ERR_BACKEND (or OUT_OF_MEMORY) and a
 * message in err. */
lcsm_status clfft_plan_create(cl_context ctx, cl_device_id dev, cl_command_queue queue, int n, int batch,
                              cl_mem real, cl_mem cplx, clfft_plan **out, char *err, size_t errlen);
/* Enqueue (no wait) forward real -> complex, or inverse complex -> real, on the
 * plan's queue. Offsets are in bytes. A plan must not be used from two threads at
 * once. */
lcsm_status clfft_forward(clfft_plan *p, cl_mem real, size_t real_off, cl_mem cplx, size_t cplx_off, char *err,
                          size_t errlen);
lcsm_status clfft_inverse(clfft_plan *p, cl_mem cplx, size_t cplx_off, cl_mem real, size_t real_off, char *err,
                          size_t errlen);
int clfft_plan_n(const clfft_plan *p);
int clfft_plan_batch(const clfft_plan *p);
void clfft_plan_destroy(clfft_plan *p); /* NULL is a no-op */
/* Name of a VkFFTResult code ("VKFFT_ERROR_..."), for messages. */
const char *clfft_result_name(int result);

#endif
