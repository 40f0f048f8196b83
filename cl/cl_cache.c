/*
 * The on-disk cache of our OpenCL program binaries (BACKEND-NOTES.md "Our own
 * OpenCL program binaries"). Compiling our kernels from source costs from a few
 * hundred milliseconds to seconds per process; loading the driver's binary back
 * costs a few milliseconds.
 *
 * A file is never trusted: the driver happily runs a binary that belongs to other
 * source, so everything that decides what the binary is (source, options, device,
 * driver, platform, our format) goes into the 128-bit key, the key is stored again
 * inside the file (a copied or renamed file is refused), and a checksum over the
 * binary catches torn or corrupt files. A file that passes all of that can still
 * be stale for the driver (an upgrade that kept its version string), so the
 * driver's own verdict (binary_status, then clBuildProgram, which OpenCL requires
 * for binaries anyway) decides last. Any doubt means: build from source and
 * rewrite the file.
 *
 * File layout (all integers little-endian, so a file means the same on any host):
 *   0  "LCSMCLB1"                 magic, also the format version of the layout
 *   8  key[0], 16 key[1]          the key the file name was made from
 *   24 size                       bytes of binary that follow the header
 *   32 FNV-1a 64 of the binary
 *   40 the binary
 *
 * Threads and processes: there is no shared state but an atomic counter. Each
 * writer writes its own temporary file (pid and counter in the name, created with
 * O_EXCL) and rename()s it over the final name, which is atomic on POSIX file
 * systems: a reader sees a whole old file, a whole new file or none, never a
 * partial one. Two threads building the same program at once therefore both
 * build from source (or both load) and both succeed; the last rename wins and
 * both files were equally valid. OpenCL itself allows concurrent builds of
 * distinct program objects.
 *
 * Host memory going short is reported (LCSM_ERR_OUT_OF_MEMORY) even on the
 * cache's own paths, so allocation-failure tests see every failure; every other
 * problem with the cache file only turns into a build from source.
 */
#include "cl_cache.h"
#include "cl_errors.h"
#include "../src/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bump when anything about how binaries are produced changes without the key's
 * inputs changing (say, an option we add inside this file): old files then miss. */
#define CLC_FORMAT "lcsm-cl-cache-1"
#define CLC_MAGIC "LCSMCLB1"
#define CLC_HEADER 40

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

typedef struct clc_key {
    uint64_t h[2];
} clc_key;

/* ---- messages */

static lcsm_status say(char *err, size_t errlen, lcsm_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static lcsm_status say(char *err, size_t errlen, lcsm_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* The driver running out of host memory or resources is an out-of-memory, as
 * in cl_backend.c's clb_check; anything else is a backend failure. */
static lcsm_status cl_fail(char *err, size_t errlen, const char *api, cl_int e)
{
    lcsm_status st = (e == CL_OUT_OF_HOST_MEMORY || e == CL_OUT_OF_RESOURCES) ? LCSM_ERR_OUT_OF_MEMORY
                                                                              : LCSM_ERR_BACKEND;
    return say(err, errlen, st, "opencl: %s failed: %s (%d)", api, lcsm_cl_error_name(e), (int)e);
}

static lcsm_status no_memory(char *err, size_t errlen, const char *what)
{
    return say(err, errlen, LCSM_ERR_OUT_OF_MEMORY, "opencl: out of host memory (%s)", what);
}

/* ---- hashing */

/* Two hashes of different structure (FNV-1a, and a multiply-rotate one) make the
 * 128-bit key: a collision would need both to collide at once. */
typedef struct hstate {
    uint64_t a, b;
} hstate;

static void h_bytes(hstate *s, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        s->a = (s->a ^ c[i]) * FNV_PRIME;
        s->b = (s->b + c[i] + 1) * 0x9E3779B97F4A7C15ull;
        s->b = (s->b << 27) | (s->b >> 37);
    }
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Each field is prefixed by its length, so ("ab","c") and ("a","bc") differ. */
static void h_field(hstate *s, const void *p, size_t n)
{
    unsigned char len[8];
    put_u64(len, n);
    h_bytes(s, len, sizeof len);
    h_bytes(s, p, n);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = FNV_BASIS;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

/* ---- the key */

/* One string property of the device (plat NULL) or of a platform, allocated. */
static lcsm_status info_str(cl_device_id dev, cl_platform_id plat, cl_uint param, char **out, char *err,
                            size_t errlen)
{
    const char *api = plat ? "clGetPlatformInfo" : "clGetDeviceInfo";
    size_t n = 0;
    *out = NULL;
    cl_int e = plat ? clGetPlatformInfo(plat, param, 0, NULL, &n) : clGetDeviceInfo(dev, param, 0, NULL, &n);
    if (e != CL_SUCCESS)
        return cl_fail(err, errlen, api, e);
    char *s = lcsm__malloc(n + 1);
    if (!s)
        return no_memory(err, errlen, "device information");
    e = plat ? clGetPlatformInfo(plat, param, n, s, NULL) : clGetDeviceInfo(dev, param, n, s, NULL);
    if (e != CL_SUCCESS) {
        lcsm__free(s);
        return cl_fail(err, errlen, api, e);
    }
    s[n] = '\0';
    *out = s;
    return LCSM_OK;
}

/* Hashes one string property; strlen, not the reported size, so a driver that
 * counts the NUL or not gives the same key. */
static lcsm_status h_info(hstate *s, cl_device_id dev, cl_platform_id plat, cl_uint param, char *err,
                          size_t errlen)
{
    char *v;
    lcsm_status st = info_str(dev, plat, param, &v, err, errlen);
    if (st != LCSM_OK)
        return st;
    h_field(s, v, strlen(v));
    lcsm__free(v);
    return LCSM_OK;
}

/* The device side of the key: what decides which binary the driver produces. */
static lcsm_status h_device(hstate *s, cl_device_id dev, char *err, size_t errlen)
{
    static const cl_uint params[] = {CL_DEVICE_NAME, CL_DRIVER_VERSION, CL_DEVICE_VENDOR};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        lcsm_status st = h_info(s, dev, NULL, params[i], err, errlen);
        if (st != LCSM_OK)
            return st;
    }
    cl_platform_id plat;
    cl_int e = clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL);
    if (e != CL_SUCCESS)
        return cl_fail(err, errlen, "clGetDeviceInfo(CL_DEVICE_PLATFORM)", e);
    return h_info(s, dev, plat, CL_PLATFORM_VERSION, err, errlen);
}

static lcsm_status key_compute(cl_device_id dev, const char *src, size_t src_len, const char *options,
                               clc_key *key, char *err, size_t errlen)
{
    hstate s = {FNV_BASIS, 0x243F6A8885A308D3ull};
    h_field(&s, CLC_FORMAT, strlen(CLC_FORMAT));
    h_field(&s, src, src_len);
    h_field(&s, options, strlen(options));
    lcsm_status st = h_device(&s, dev, err, errlen);
    key->h[0] = mix64(s.a);
    key->h[1] = mix64(s.b);
    return st;
}

/* "<dir>/cl-<32 hex>.bin", allocated; a trailing '/' of dir is not doubled. */
static char *path_of(const char *dir, const clc_key *key)
{
    size_t n = strlen(dir);
    const char *sep = dir[n - 1] == '/' ? "" : "/";
    size_t cap = n + 48;
    char *p = lcsm__malloc(cap);
    if (p)
        snprintf(p, cap, "%s%scl-%016llx%016llx.bin", dir, sep, (unsigned long long)key->h[0],
                 (unsigned long long)key->h[1]);
    return p;
}

/* ---- reading a cache file */

static int read_full(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The binary size the header announces if the header is ours and agrees with
 * the key and the file's real size; 0 otherwise. */
static uint64_t header_check(const unsigned char *h, const clc_key *key, off_t file_size, uint64_t *sum)
{
    uint64_t size = get_u64(h + 24);
    *sum = get_u64(h + 32);
    if (memcmp(h, CLC_MAGIC, 8) || get_u64(h + 8) != key->h[0] || get_u64(h + 16) != key->h[1])
        return 0;
    return size == (uint64_t)file_size - CLC_HEADER ? size : 0;
}

/* Reads and verifies the file: on a hit *bin (allocated) and *size are set; a
 * miss (absent, short, foreign, corrupt) leaves *bin NULL and returns LCSM_OK. */
static lcsm_status cache_read(const char *path, const clc_key *key, unsigned char **bin, size_t *size, char *err,
                              size_t errlen)
{
    unsigned char h[CLC_HEADER];
    struct stat sb;
    uint64_t sum, n = 0;
    lcsm_status st = LCSM_OK;
    *bin = NULL;
    int fd;
    char why[64];
    /* Non-blocking open, regular files only (src/file_io.h): a FIFO or a link to
     * a device in the cache is a miss, never a wait or an endless read. */
    if (lcsm__file_open(path, &fd, &sb, why, sizeof why) != LCSM_OK)
        return LCSM_OK;
    if (sb.st_size > CLC_HEADER && read_full(fd, h, sizeof h) == 0)
        n = header_check(h, key, sb.st_size, &sum);
    n = n == (size_t)n ? n : 0; /* more than this host can address: a miss */
    unsigned char *b = n ? lcsm__malloc((size_t)n) : NULL;
    if (n && !b)
        st = no_memory(err, errlen, "reading a cached program binary");
    if (b && (read_full(fd, b, (size_t)n) != 0 || fnv1a(b, (size_t)n) != sum)) {
        lcsm__free(b);
        b = NULL;
    }
    close(fd);
    *bin = b;
    *size = (size_t)n;
    return st;
}

/* ---- building */

/* The program from a verified binary, or NULL when the driver refuses it at
 * any step: a refusal is never an error, only a miss. */
static cl_program program_from_binary(cl_context ctx, cl_device_id dev, const unsigned char *bin, size_t size,
                                      const char *options)
{
    cl_int e, bin_status = CL_INVALID_BINARY;
    cl_program p = clCreateProgramWithBinary(ctx, 1, &dev, &size, &bin, &bin_status, &e);
    if (e == CL_SUCCESS && bin_status == CL_SUCCESS)
        e = clBuildProgram(p, 1, &dev, options, NULL, NULL);
    else if (e == CL_SUCCESS)
        e = bin_status;
    if (e != CL_SUCCESS && p) {
        clReleaseProgram(p);
        p = NULL;
    }
    return p;
}

/* "OpenCL program build failed on <device>: <error>\n<build log>", cut to errlen. */
static lcsm_status build_failed(cl_program p, cl_device_id dev, cl_int e, char *err, size_t errlen)
{
    char name[256] = "?";
    size_t n = 0;
    char *log = NULL;
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
    name[sizeof name - 1] = '\0';
    if (clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) == CL_SUCCESS && n)
        log = lcsm__malloc(n + 1);
    if (log && clGetProgramBuildInfo(p, dev, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS)
        log[n] = '\0';
    else if (log)
        log[0] = '\0';
    say(err, errlen, LCSM_ERR_BACKEND, "OpenCL program build failed on %s: %s (%d)\n%s", name,
        lcsm_cl_error_name(e), (int)e, log ? log : "(no build log)");
    lcsm__free(log);
    return LCSM_ERR_BACKEND;
}

static lcsm_status program_from_source(cl_context ctx, cl_device_id dev, const char *src, size_t src_len,
                                       const char *options, cl_program *out, char *err, size_t errlen)
{
    cl_int e;
    *out = NULL;
    cl_program p = clCreateProgramWithSource(ctx, 1, &src, &src_len, &e);
    if (e != CL_SUCCESS)
        return cl_fail(err, errlen, "clCreateProgramWithSource", e);
    e = clBuildProgram(p, 1, &dev, options, NULL, NULL);
    if (e == CL_OUT_OF_HOST_MEMORY || e == CL_OUT_OF_RESOURCES) {
        clReleaseProgram(p);
        return cl_fail(err, errlen, "clBuildProgram", e);
    }
    if (e != CL_SUCCESS) {
        lcsm_status st = build_failed(p, dev, e, err, errlen);
        clReleaseProgram(p);
        return st;
    }
    *out = p;
    return LCSM_OK;
}

/* ---- writing a cache file */

/* Where `dev` sits among the program's *n devices (the context's devices, which
 * may be more than the one we built for); *n is 0 when it cannot be told. */
static lcsm_status device_slot(cl_program p, cl_device_id dev, size_t *n, size_t *idx, char *err, size_t errlen)
{
    size_t bytes = 0;
    *n = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_DEVICES, 0, NULL, &bytes) != CL_SUCCESS || bytes < sizeof dev)
        return LCSM_OK;
    cl_device_id *devs = lcsm__malloc(bytes);
    if (!devs)
        return no_memory(err, errlen, "program devices");
    if (clGetProgramInfo(p, CL_PROGRAM_DEVICES, bytes, devs, NULL) == CL_SUCCESS)
        for (size_t i = 0; i < bytes / sizeof dev && !*n; i++)
            if (devs[i] == dev) {
                *idx = i;
                *n = bytes / sizeof dev;
            }
    lcsm__free(devs);
    return LCSM_OK;
}

/* The bytes of binary idx of n: CL_PROGRAM_BINARIES takes one pointer per
 * device and skips NULL ones, so only ours is allocated, at the size the driver
 * announced in CL_PROGRAM_BINARY_SIZES. */
static lcsm_status fetch_binary(cl_program p, size_t n, size_t idx, size_t *sizes, unsigned char **ptrs,
                                char *err, size_t errlen)
{
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, n * sizeof *sizes, sizes, NULL) != CL_SUCCESS ||
        sizes[idx] == 0)
        return LCSM_OK;
    if (!(ptrs[idx] = lcsm__malloc(sizes[idx])))
        return no_memory(err, errlen, "program binary");
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, n * sizeof *ptrs, ptrs, NULL) != CL_SUCCESS) {
        lcsm__free(ptrs[idx]);
        ptrs[idx] = NULL;
    }
    return LCSM_OK;
}

/* The program's binary for dev, allocated; *bin NULL when the driver gives none. */
static lcsm_status program_binary(cl_program p, cl_device_id dev, unsigned char **bin, size_t *size, char *err,
                                  size_t errlen)
{
    size_t n, idx = 0;
    *bin = NULL;
    lcsm_status st = device_slot(p, dev, &n, &idx, err, errlen);
    if (st != LCSM_OK || n == 0)
        return st;
    size_t *sizes = lcsm__calloc(n, sizeof *sizes);
    unsigned char **ptrs = lcsm__calloc(n, sizeof *ptrs);
    if (!sizes || !ptrs)
        st = no_memory(err, errlen, "program binary sizes");
    else
        st = fetch_binary(p, n, idx, sizes, ptrs, err, errlen);
    if (st == LCSM_OK) {
        *bin = ptrs[idx];
        *size = sizes[idx];
    }
    lcsm__free(sizes);
    lcsm__free(ptrs);
    return st;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes header and binary to tmp (which must not exist yet); removes tmp on
 * any failure. 0 on success. */
static int write_tmp(const char *tmp, const clc_key *key, const unsigned char *bin, size_t size)
{
    unsigned char h[CLC_HEADER];
    memcpy(h, CLC_MAGIC, 8);
    put_u64(h + 8, key->h[0]);
    put_u64(h + 16, key->h[1]);
    put_u64(h + 24, size);
    put_u64(h + 32, fnv1a(bin, size));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int bad = write_full(fd, h, sizeof h) || write_full(fd, bin, size);
    bad |= close(fd) != 0;
    if (bad)
        unlink(tmp);
    return bad ? -1 : 0;
}

/* Publishes the binary under path: a private temporary name, then an atomic
 * rename (see the top of the file). Only running out of memory is reported. */
static lcsm_status publish(const char *path, const char *dir, const clc_key *key, const unsigned char *bin,
                           size_t size, char *err, size_t errlen)
{
    static atomic_ulong counter;
    size_t cap = strlen(path) + 64;
    char *tmp = lcsm__malloc(cap);
    char *d = lcsm__malloc(strlen(dir) + 1);
    if (!tmp || !d) {
        lcsm__free(tmp);
        lcsm__free(d);
        return no_memory(err, errlen, "cache file name");
    }
    lcsm__mkdir_p(strcpy(d, dir), 0755);
    snprintf(tmp, cap, "%s.tmp.%ld.%lu", path, (long)getpid(), (unsigned long)atomic_fetch_add(&counter, 1));
    if (write_tmp(tmp, key, bin, size) == 0 && rename(tmp, path) != 0)
        unlink(tmp);
    lcsm__free(d);
    lcsm__free(tmp);
    return LCSM_OK;
}

static lcsm_status cache_write(cl_program p, cl_device_id dev, const char *path, const char *dir,
                               const clc_key *key, char *err, size_t errlen)
{
    unsigned char *bin;
    size_t size = 0;
    lcsm_status st = program_binary(p, dev, &bin, &size, err, errlen);
    if (st == LCSM_OK && bin)
        st = publish(path, dir, key, bin, size, err, errlen);
    lcsm__free(bin);
    return st;
}

/* ---- the interface */

/* The cached program, or *out NULL on a miss (absent, unverified or refused). */
static lcsm_status try_cache(cl_context ctx, cl_device_id dev, const char *path, const clc_key *key,
                             const char *options, cl_program *out, char *err, size_t errlen)
{
    unsigned char *bin;
    size_t size;
    *out = NULL;
    lcsm_status st = cache_read(path, key, &bin, &size, err, errlen);
    if (st == LCSM_OK && bin)
        *out = program_from_binary(ctx, dev, bin, size, options);
    lcsm__free(bin);
    return st;
}

/* Build through the cache: a hit, or a source build that is then written back. */
static lcsm_status build_cached(cl_context ctx, cl_device_id dev, const char *src, size_t src_len,
                                const char *options, const char *dir, cl_program *out, clc_origin *origin,
                                char *err, size_t errlen)
{
    clc_key key;
    lcsm_status st = key_compute(dev, src, src_len, options, &key, err, errlen);
    char *path = st == LCSM_OK ? path_of(dir, &key) : NULL;
    if (st == LCSM_OK && !path)
        st = no_memory(err, errlen, "cache file name");
    if (st == LCSM_OK)
        st = try_cache(ctx, dev, path, &key, options, out, err, errlen);
    if (st == LCSM_OK && *out)
        *origin = CLC_FROM_CACHE;
    else if (st == LCSM_OK)
        st = program_from_source(ctx, dev, src, src_len, options, out, err, errlen);
    if (st == LCSM_OK && *origin == CLC_FROM_SOURCE)
        st = cache_write(*out, dev, path, dir, &key, err, errlen);
    if (st != LCSM_OK && *out) {
        clReleaseProgram(*out);
        *out = NULL;
    }
    lcsm__free(path);
    return st;
}

lcsm_status clc_program_build(cl_context ctx, cl_device_id dev, const char *src, size_t src_len,
                              const char *options, const char *cache_dir, cl_program *out, clc_origin *origin,
                              char *err, size_t errlen)
{
    clc_origin where = CLC_FROM_SOURCE;
    if (out)
        *out = NULL;
    if (!ctx || !dev || !src || !out)
        return say(err, errlen, LCSM_ERR_INVALID_ARGUMENT, "opencl: clc_program_build: NULL argument");
    /* OpenCL reads a length of 0 as "NUL-terminated"; the key must hash the same bytes. */
    src_len = src_len ? src_len : strlen(src);
    options = options ? options : "";
    lcsm_status st = cache_dir && *cache_dir
                         ? build_cached(ctx, dev, src, src_len, options, cache_dir, out, &where, err, errlen)
                         : program_from_source(ctx, dev, src, src_len, options, out, err, errlen);
    if (origin)
        *origin = where;
    return st;
}

int clc_cache_path(cl_device_id dev, const char *src, size_t src_len, const char *options, const char *cache_dir,
                   char *path, size_t cap)
{
    clc_key key;
    char scratch[256];
    if (!dev || !src || !cache_dir || !*cache_dir || !path)
        return -1;
    src_len = src_len ? src_len : strlen(src);
    if (key_compute(dev, src, src_len, options ? options : "", &key, scratch, sizeof scratch) != LCSM_OK)
        return -1;
    char *p = path_of(cache_dir, &key);
    int fits = p && strlen(p) < cap;
    if (fits)
        memcpy(path, p, strlen(p) + 1);
    lcsm__free(p);
    return fits ? 0 : -1;
}
