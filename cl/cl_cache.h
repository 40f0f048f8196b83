/*
 * Our own OpenCL programs, built through an on-disk cache of program binaries
 * (the ggml-opencl way; BACKEND-NOTES.md "Our own OpenCL program binaries").
 *
 * The cache file name is a hash of: the source, the build options, the device
 * name, the driver version, the platform version and a format version. Files are
 * written to a temporary name and renamed (atomic); a file that is truncated,
 * corrupt, stale or rejected by the driver is rebuilt from source and rewritten,
 * never trusted. Failing to read or write the cache is never an error: the program
 * is then built from source.
 */
#ifndef LCSM_CL_CACHE_H
#define LCSM_CL_CACHE_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stddef.h>

#include "../src/util.h"

typedef enum clc_origin {
    CLC_FROM_SOURCE = 0, /* built from source (no cache, or cache miss; written now if possible) */
    CLC_FROM_CACHE = 1   /* loaded from a cached binary */
} clc_origin;

/* Builds `src` (src_len bytes) with `options` for `dev` in `ctx`. cache_dir NULL or
 * "" disables the cache; the directory is created if missing. On success *out is a
 * built program and *origin (may be NULL) says where it came from. On a build
 * failure returns LCSM_ERR_BACKEND with the driver's build log (cut to fit) in err. */
lcsm_status clc_program_build(cl_context ctx, cl_device_id dev, const char *src, size_t src_len,
                              const char *options, const char *cache_dir, cl_program *out, clc_origin *origin,
                              char *err, size_t errlen);

/* The cache file clc_program_build would use (for tests and diagnostics); returns
 * 0 on success, -1 if it does not fit or the device cannot be queried. */
int clc_cache_path(cl_device_id dev, const char *src, size_t src_len, const char *options, const char *cache_dir,
                   char *path, size_t cap);

#endif
