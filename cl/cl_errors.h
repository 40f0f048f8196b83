/* Names of OpenCL error codes, for messages ("CL_OUT_OF_RESOURCES (-5)"). */
#ifndef LCSM_CL_ERRORS_H
#define LCSM_CL_ERRORS_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

const char *lcsm_cl_error_name(cl_int err);

#endif
