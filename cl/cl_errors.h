/* Names of OpenCL error codes, for messages ("CL_OUT_OF_RESOURCES (-5)"). */
#ifndef LCSM_CL_ERRORS_H
#define LCSM_CL_ERRORS_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stddef.h>

const char *lcsm_cl_error_name(cl_int err);

/* A table of codes and their names (OpenCL's here, VkFFT's in cl_fft.c), and
 * its lookup: the name, or `unknown` when the code is not in the table. */
typedef struct cl_code_name {
    int code;
    const char *name;
} cl_code_name;
#define CL_CODE_NAME(x) {x, #x}
const char *cl_code_lookup(const cl_code_name *table, size_t n, int code, const char *unknown);

#endif
