/* The registry of compiled-in backends and the generic parts of the handle. */
#include "internal.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <strings.h>

/* Each backend folder defines its factory; the engine knows only this prototype. */
lcsm_status lcsm_cpu_backend_create(const lcsm_backend_options *opt, lcsm_backend **out);
#ifdef LCSM_WITH_OPENCL
lcsm_status lcsm_cl_backend_create(const lcsm_backend_options *opt, lcsm_backend **out);
lcsm_status lcsm_cl_list_devices(lcsm_device_info *out, int cap, int *count);
#endif
lcsm_status lcsm_cpu_list_devices(lcsm_device_info *out, int cap, int *count);

static const struct {
    const char *name;
    lcsm_backend_factory create;
    lcsm_backend_lister list;
} registry[] = {
    {"cpu", lcsm_cpu_backend_create, lcsm_cpu_list_devices},
#ifdef LCSM_WITH_OPENCL
    {"opencl", lcsm_cl_backend_create, lcsm_cl_list_devices},
#endif
};

#ifdef LCSM_WITH_OPENCL
#define COMPILED_IN "cpu, opencl"
#else
#define COMPILED_IN "cpu"
#endif

lcsm_status lcsm_list_devices(const char *name, lcsm_device_info *out, int cap, int *count)
{
    if (!count || cap < 0 || (cap > 0 && !out))
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_list_devices: NULL count, or NULL out with cap > 0");
    *count = 0;
    if (!name)
        name = "cpu";
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (!strcasecmp(name, registry[i].name))
            return registry[i].list(out, cap, count);
    return lcsm__fail(NULL, 0, LCSM_ERR_NO_BACKEND, "no backend named '%s' in this build (have: %s)", name,
                      COMPILED_IN);
}

const char *lcsm_backend_available(int i)
{
    return i >= 0 && i < (int)(sizeof registry / sizeof registry[0]) ? registry[i].name : NULL;
}

void lcsm_backend_options_default(lcsm_backend_options *opt)
{
    if (opt)
        memset(opt, 0, sizeof *opt);
}

lcsm_status lcsm_backend_create(const char *name, const lcsm_backend_options *opt, lcsm_backend **out)
{
    if (out)
        *out = NULL;
    if (!out)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_backend_create: NULL output");
    lcsm_backend_options defaults;
    if (!opt) {
        lcsm_backend_options_default(&defaults);
        opt = &defaults;
    }
    if (opt->n_threads < 0 || opt->n_threads > 1024 || opt->fft_threshold < 0 || opt->fft_threshold == 1 ||
        (opt->fft_threshold & (opt->fft_threshold - 1)))
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_backend_create: n_threads %d must be in [0, 1024], fft_threshold %d 0 or a power "
                          "of two >= 2",
                          opt->n_threads, opt->fft_threshold);
    if (!name)
        name = "cpu";
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (!strcasecmp(name, registry[i].name))
            return registry[i].create(opt, out);
    return lcsm__fail(NULL, 0, LCSM_ERR_NO_BACKEND, "no backend named '%s' in this build (have: %s)", name,
                      COMPILED_IN);
}

void lcsm_backend_destroy(lcsm_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const char *lcsm_backend_name(const lcsm_backend *be) { return be ? be->name : ""; }
const char *lcsm_backend_description(const lcsm_backend *be) { return be ? be->description : ""; }
int lcsm_backend_fft_threshold(const lcsm_backend *be) { return be ? be->fft_threshold : 0; }
const char *lcsm_backend_last_error(const lcsm_backend *be) { return be ? lcsm__handle_error(be->last_error) : ""; }

lcsm_status lcsm_backend_get_stats(const lcsm_backend *be, lcsm_backend_stats *stats)
{
    if (!be || !stats)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_backend_get_stats: NULL argument");
    *stats = be->stats;
    return LCSM_OK;
}

lcsm_status lcsm_backend_get_profile(lcsm_backend *be, lcsm_profile_entry *out, int cap, int *count, int reset)
{
    if (!be || !count || cap < 0 || (cap > 0 && !out))
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_backend_get_profile: NULL argument or cap < 0");
    *count = 0;
    if (!be->ops->profile)
        return lcsm__fail(be->last_error, sizeof be->last_error, LCSM_ERR_UNSUPPORTED,
                          "backend %s does not profile kernels", be->name);
    return be->ops->profile(be, out, cap, count, reset);
}

const char *lcsm__cache_dir(const lcsm_backend_options *opt, char *buf, size_t cap)
{
    const char *env;
    if (opt->cache_dir)
        return opt->cache_dir;
    if ((env = getenv("LCSM_CACHE_DIR")))
        return env;
    /* A derived directory that does not fit is no cache, never a cut name (the
     * callers' buffers hold PATH_MAX bytes, more than the system opens). */
    int n = -1;
    if ((env = getenv("XDG_CACHE_HOME")) && *env)
        n = snprintf(buf, cap, "%s/lcsm", env);
    else if ((env = getenv("HOME")) && *env)
        n = snprintf(buf, cap, "%s/.cache/lcsm", env);
    return n >= 0 && (size_t)n < cap ? buf : "";
}

lcsm_status lcsm__fft_threshold(const lcsm_backend_options *opt, int *out)
{
    const char *thr = getenv("LCSM_FFT_THRESHOLD");
    int t = opt->fft_threshold;
    if (!t && thr && *thr) {
        t = atoi(thr);
        if (t < 2 || (t & (t - 1)))
            return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "LCSM_FFT_THRESHOLD=%s is not a power of two >= 2",
                              thr);
    }
    *out = t;
    return LCSM_OK;
}

lcsm_status lcsm__block_conv(lcsm_backend *be, const lcsm_filters *f, const lcsm_conv_geom *g, lcsm_ref hist,
                             lcsm_ref acc, int in0, int n_in, int out0, int n_out, int lag, const lcsm_rows *rows)
{
    if (in0 < 0 || n_in < 1 || n_out < 0 || out0 < in0 + n_in || out0 + n_out > g->L)
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "block [%d, +%d) -> [%d, +%d) outside length %d", in0,
                            n_in, out0, n_out, g->L);
    if (n_out == 0)
        return LCSM_OK;
    const int n_units = g->G * g->B * lcsm_units_per_group(be->spread_unit, g->D);
    if (rows && (rows->u0 < 0 || rows->u0 >= rows->u1 || rows->u1 > n_units))
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "block rows: units [%d, %d) outside %d", rows->u0,
                            rows->u1, n_units);
    /* a tile of the filters' spectra: its outputs start lag - 1 after its inputs end */
    const int is_tile = !(n_in & (n_in - 1)) && out0 == in0 + n_in + lag - 1 && n_out <= n_in;
    if (is_tile && n_in >= be->fft_threshold)
        return be->ops->tile_fft(be, f, g, hist, acc, in0, n_in, out0, n_out, rows);
    return be->ops->block_direct(be, f, g, hist, acc, in0, n_in, out0, n_out, rows);
}

void lcsm__filters_diagonal(const float *hT, const float *dbias, size_t rows, float *h0d)
{
    for (size_t r = 0; r < rows; r++)
        h0d[r] = hT[r] + dbias[r];
}

lcsm_status lcsm__check_ref(lcsm_backend *be, lcsm_ref r, size_t n, size_t buf_bytes, const char *what,
                            size_t *bytes)
{
    const size_t es = lcsm_dtype_size(r.dt);
    if (!r.buf || n > SIZE_MAX / es || !lcsm__ref_fits(r.off, n * es, buf_bytes))
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "%s: %s of %zu elements at byte %zu outside the buffer",
                            be->name, what, n, r.off);
    *bytes = n * es;
    return LCSM_OK;
}

int lcsm_supports_all(const lcsm_op_limits *lim, lcsm_op op, int v)
{
    switch (op) {
    case LCSM_OP_NORM: return v >= 0 && v < LCSM_NORM_COUNT;
    case LCSM_OP_ACT: return v >= 0 && v < LCSM_ACT_COUNT;
    case LCSM_OP_WEIGHTS:
    case LCSM_OP_ATTN: return v == LCSM_DT_F32 || v == LCSM_DT_F16 || v == LCSM_DT_BF16; /* weights, caches */
    case LCSM_OP_GLU:
    case LCSM_OP_MODAL: return 1;
    case LCSM_OP_SHORT_CONV: return v >= 1 && v <= LCSM_MAX_SHORT;
    case LCSM_OP_HYENA: return v >= 1 && v <= LCSM_MAX_STAGES;
    case LCSM_OP_FIR: return v >= 1 && v <= LCSM_MAX_FIR;
    case LCSM_OP_ATTN_HEAD: return v >= 2 && v <= lim->attn_max_head && v % 2 == 0;
    case LCSM_OP_LINATTN: return v >= 1 && v <= lim->linattn_max_features;
    default: return 0;
    }
}
