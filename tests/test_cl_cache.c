/*
 * The OpenCL program binary cache (cl/cl_cache.c): a first build comes from
 * source and writes the file, a second comes from the file; a file that is
 * truncated, corrupt, foreign, or valid to us but refused by the driver is
 * rebuilt from source and rewritten; the key follows the options; no cache dir
 * means no files; build errors carry the build log; an unwritable cache is no
 * error; concurrent builders all succeed; no temporary file is left behind; and
 * running out of host memory anywhere is a clean error without leaks. Every
 * program is checked by running its kernel. Exit 77 without an OpenCL device.
 */
#include "testutil.h"

#include "cl_cache.h"

#include <pthread.h>
#include <time.h>

enum { N = 1000, HEADER = 40, N_THREADS = 4 };

static cl_context ctx;
static cl_device_id dev;
static cl_command_queue queue;
static char src[1024];     /* this run's kernel: a nonce makes a fresh key */
static char thr_src[1024]; /* the threads' kernel, another fresh key */
static float k_scale;

static const char *kernel_fmt = "/* nonce %llu */\n"
                                "__kernel void vadd(__global const float *a, __global const float *b,\n"
                                "                   __global float *c, const float k)\n"
                                "{\n"
                                "    size_t i = get_global_id(0);\n"
                                "    c[i] = a[i] + k * b[i];\n"
                                "}\n";

/* ---- helpers */

static int open_device(void)
{
    cl_platform_id plats[8];
    cl_uint np = 0;
    if (clGetPlatformIDs(8, plats, &np) != CL_SUCCESS || np == 0) {
        printf("SKIP: no OpenCL platform\n");
        return -1;
    }
    for (cl_uint i = 0; i < np && i < 8; i++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 1, &dev, &nd) == CL_SUCCESS && nd > 0) {
            cl_int e;
            ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
            if (e == CL_SUCCESS)
                queue = clCreateCommandQueue(ctx, dev, 0, &e);
            if (e == CL_SUCCESS)
                return 0;
            printf("SKIP: cannot create a context or queue (%d)\n", (int)e);
            return -1;
        }
    }
    printf("SKIP: no OpenCL device\n");
    return -1;
}

/* Runs vadd of program p and compares with the host; 1 if right. */
static int kernel_ok(cl_program p)
{
    float a[N], b[N], c[N];
    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = (float)(N - i) * 0.5f;
    }
    cl_int e;
    cl_kernel k = clCreateKernel(p, "vadd", &e);
    if (e != CL_SUCCESS)
        return 0;
    cl_mem ma = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof a, a, &e);
    cl_mem mb = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof b, b, &e);
    cl_mem mc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof c, NULL, &e);
    size_t global = N;
    e = clSetKernelArg(k, 0, sizeof ma, &ma) | clSetKernelArg(k, 1, sizeof mb, &mb) |
        clSetKernelArg(k, 2, sizeof mc, &mc) | clSetKernelArg(k, 3, sizeof k_scale, &k_scale);
    if (e == CL_SUCCESS)
        e = clEnqueueNDRangeKernel(queue, k, 1, NULL, &global, NULL, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueReadBuffer(queue, mc, CL_TRUE, 0, sizeof c, c, 0, NULL, NULL);
    int ok = e == CL_SUCCESS;
    for (int i = 0; ok && i < N; i++)
        ok = fabsf(c[i] - (a[i] + k_scale * b[i])) <= 1e-5f * fabsf(a[i] + k_scale * b[i]) + 1e-6f;
    clReleaseMemObject(ma);
    clReleaseMemObject(mb);
    clReleaseMemObject(mc);
    clReleaseKernel(k);
    return ok;
}

static char errbuf[8192];

/* Builds, checks status and origin, runs the kernel, releases. */
static void build_expect(const char *s, const char *opt, const char *dir, clc_origin want, const char *what)
{
    cl_program p = NULL;
    clc_origin o = (clc_origin)-1;
    errbuf[0] = '\0';
    lcsm_status st = clc_program_build(ctx, dev, s, strlen(s), opt, dir, &p, &o, errbuf, sizeof errbuf);
    CHECK(st == LCSM_OK && p, "%s: %s: %s", what, lcsm_strerror(st), errbuf);
    CHECK(o == want, "%s: origin %d, want %d", what, (int)o, (int)want);
    if (p) {
        CHECK(kernel_ok(p), "%s: wrong kernel result", what);
        clReleaseProgram(p);
    }
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Whole file, malloc'd (test memory, not the library's). */
static unsigned char *slurp(const char *path, long *n)
{
    *n = file_size(path);
    FILE *f = fopen(path, "rb");
    unsigned char *b = *n > 0 ? malloc((size_t)*n) : NULL;
    if (!f || !b || fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    if (f)
        fclose(f);
    return b;
}

static int spill(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f)
        ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

/* Entries of dir (other than . and ..) whose name contains `part` ("" = all). */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, part);
    if (d)
        closedir(d);
    return n;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the cases */

/* clc_program_build alone, in ms (PoCL compiles work-group code at the first
 * launch, so the kernel run is kept out of the time). */
static double timed_build(const char *dir, clc_origin want, const char *what)
{
    cl_program p = NULL;
    clc_origin o = (clc_origin)-1;
    double t0 = now_ms();
    lcsm_status st = clc_program_build(ctx, dev, src, strlen(src), "", dir, &p, &o, errbuf, sizeof errbuf);
    double t = now_ms() - t0;
    CHECK(st == LCSM_OK && p && o == want, "%s: %s, origin %d: %s", what, lcsm_strerror(st), (int)o, errbuf);
    if (p) {
        CHECK(kernel_ok(p), "%s: wrong kernel result", what);
        clReleaseProgram(p);
    }
    return t;
}

/* (1), (2): cold and warm, with times. */
static void test_cold_warm(const char *dir, const char *path)
{
    enum { REPS = 5 };
    double cold = timed_build(dir, CLC_FROM_SOURCE, "cold build");
    CHECK(file_size(path) > HEADER, "no cache file %s after the first build", path);
    double warm = 0, first = timed_build(dir, CLC_FROM_CACHE, "warm build");
    for (int i = 0; i < REPS; i++)
        warm += timed_build(dir, CLC_FROM_CACHE, "warm build (repeat)") / REPS;
    printf("clc_program_build: %.1f ms from source (incl. writing the cache), %.1f ms from the cache "
           "(%.1f ms mean of %d more)\n",
           cold, first, warm, REPS);
}

/* (3): truncations of every kind are misses, then the rewritten file is a hit. */
static void test_truncated(const char *dir, const char *path)
{
    long n = file_size(path);
    CHECK(n > HEADER, "no cache file %s", path);
    const long cuts[] = {n / 2, n - 1, HEADER, HEADER - 1, 10, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        CHECK(truncate(path, cuts[i]) == 0, "truncate: %s", strerror(errno));
        build_expect(src, "", dir, CLC_FROM_SOURCE, "truncated file");
        /* Not == n: PoCL's binary grows once kernels have run (it adds the code
         * it specialised), so a rewritten file may be larger than the first. */
        CHECK(file_size(path) > HEADER && file_size(path) > cuts[i], "truncated to %ld: rewritten file has %ld bytes",
              cuts[i], file_size(path));
        build_expect(src, "", dir, CLC_FROM_CACHE, "rewritten after truncation");
    }
}

/* (4): flipped bytes in the binary fail the checksum; a bad magic fails too. */
static void test_corrupt(const char *dir, const char *path)
{
    long n;
    unsigned char *b = slurp(path, &n);
    CHECK(b && n > HEADER + 16, "cannot read %s", path);
    if (!b || n <= HEADER + 16) {
        free(b);
        return;
    }
    long mid = HEADER + (n - HEADER) / 2;
    for (int i = 0; i < 4; i++)
        b[mid + i] ^= 0x5a;
    CHECK(spill(path, b, (size_t)n) == 0, "cannot write %s", path);
    build_expect(src, "", dir, CLC_FROM_SOURCE, "flipped bytes");
    build_expect(src, "", dir, CLC_FROM_CACHE, "rewritten after flipped bytes");

    free(b);
    b = slurp(path, &n);
    CHECK(b != NULL, "cannot read %s", path);
    if (b) {
        b[0] ^= 1;
        CHECK(spill(path, b, (size_t)n) == 0, "cannot write %s", path);
        build_expect(src, "", dir, CLC_FROM_SOURCE, "bad magic");
        build_expect(src, "", dir, CLC_FROM_CACHE, "rewritten after bad magic");
    }
    free(b);
}

/* (5): a file that passes every check of ours but holds nonsense: the driver
 * must refuse it (binary_status or the build), and we fall back to source. */
static void test_garbage_binary(const char *dir, const char *path, uint64_t *rng)
{
    long n;
    unsigned char *good = slurp(path, &n);
    CHECK(good != NULL, "cannot read %s", path);
    if (!good)
        return;
    const size_t glen = 4096;
    unsigned char *f = malloc(HEADER + glen);
    memcpy(f, good, 24); /* magic and key: ours */
    for (size_t i = 0; i < glen; i++)
        f[HEADER + i] = (unsigned char)tu_next(rng);
    memcpy(f + HEADER, "not a binary at all", 19);
    put64(f + 24, glen);
    put64(f + 32, fnv1a(f + HEADER, glen));
    CHECK(spill(path, f, HEADER + glen) == 0, "cannot write %s", path);
    build_expect(src, "", dir, CLC_FROM_SOURCE, "garbage binary with a valid header");
    CHECK(file_size(path) > HEADER && file_size(path) != (long)(HEADER + glen), "garbage binary not rewritten");
    build_expect(src, "", dir, CLC_FROM_CACHE, "rewritten after a garbage binary");
    free(f);
    free(good);
}

/* (6): the options and the source are in the key; a valid file of another key
 * copied over ours (a working binary of other source!) is refused. */
static void test_key(const char *dir, const char *path)
{
    char p2[1024], p3[1024], p4[1024];
    CHECK(clc_cache_path(dev, src, strlen(src), "-cl-fast-relaxed-math", dir, p2, sizeof p2) == 0, "path");
    CHECK(clc_cache_path(dev, src, strlen(src), NULL, dir, p3, sizeof p3) == 0, "path with NULL options");
    CHECK(clc_cache_path(dev, thr_src, strlen(thr_src), "", dir, p4, sizeof p4) == 0, "path of other source");
    CHECK(strcmp(p2, path) != 0, "options not in the key: %s", p2);
    CHECK(strcmp(p3, path) == 0, "NULL options and \"\" differ: %s vs %s", p3, path);
    CHECK(strcmp(p4, path) != 0, "source not in the key: %s", p4);
    CHECK(clc_cache_path(dev, src, strlen(src), "", dir, p3, strlen(path)) == -1, "a path that does not fit");
    build_expect(src, "-cl-fast-relaxed-math", dir, CLC_FROM_SOURCE, "other options");
    CHECK(file_size(p2) > HEADER, "no cache file %s for other options", p2);
    build_expect(src, "-cl-fast-relaxed-math", dir, CLC_FROM_CACHE, "other options, again");

    long n;
    unsigned char *other = slurp(p2, &n);
    CHECK(other && spill(path, other, (size_t)n) == 0, "cannot copy %s", p2);
    build_expect(src, "", dir, CLC_FROM_SOURCE, "a file of another key");
    build_expect(src, "", dir, CLC_FROM_CACHE, "rewritten after a file of another key");
    free(other);
}

/* (7): no cache dir: built from source, nothing written (not even in the cwd). */
static void test_no_cache(const char *tmp)
{
    char empty[1024], cwd[1024], p[1024];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    CHECK(mkdir(empty, 0755) == 0 && getcwd(cwd, sizeof cwd) && chdir(empty) == 0, "cannot enter %s", empty);
    build_expect(src, "", "", CLC_FROM_SOURCE, "cache_dir \"\"");
    build_expect(src, "", "", CLC_FROM_SOURCE, "cache_dir \"\" again");
    build_expect(src, "", NULL, CLC_FROM_SOURCE, "cache_dir NULL");
    CHECK(count_entries(empty, "") == 0, "files written without a cache dir");
    CHECK(clc_cache_path(dev, src, strlen(src), "", "", p, sizeof p) == -1, "a path for cache_dir \"\"");
    CHECK(chdir(cwd) == 0, "cannot go back to %s", cwd);
}

/* (8): a syntax error: LCSM_ERR_BACKEND with the build log, cut to fit. */
static void test_build_error(const char *dir)
{
    static const char bad[] = "__kernel void broken(__global float *x) { x[0] = undeclared_thing + ; }\n";
    char p[1024];
    cl_program prog = (cl_program)1;
    clc_origin o;
    lcsm_status st = clc_program_build(ctx, dev, bad, strlen(bad), "", dir, &prog, &o, errbuf, sizeof errbuf);
    CHECK(st == LCSM_ERR_BACKEND, "syntax error gave %s", lcsm_strerror(st));
    CHECK(prog == NULL, "a program after a failed build");
    CHECK(!strncmp(errbuf, "OpenCL program build failed on ", 31), "message: %s", errbuf);
    CHECK(strstr(errbuf, "CL_BUILD_PROGRAM_FAILURE (-11)\n"), "message: %s", errbuf);
    CHECK(strstr(errbuf, "error"), "no build log in: %s", errbuf);
    CHECK(clc_cache_path(dev, bad, strlen(bad), "", dir, p, sizeof p) == 0 && file_size(p) < 0,
          "a cache file for a failed build");
    char small[48];
    memset(small, 'x', sizeof small);
    st = clc_program_build(ctx, dev, bad, strlen(bad), "", "", &prog, &o, small, sizeof small);
    CHECK(st == LCSM_ERR_BACKEND && strlen(small) == sizeof small - 1, "cut message: %s", small);
    st = clc_program_build(ctx, dev, bad, strlen(bad), "", "", &prog, &o, NULL, 0);
    CHECK(st == LCSM_ERR_BACKEND, "no error buffer gave %s", lcsm_strerror(st));
    st = clc_program_build(ctx, dev, src, strlen(src), "-no-such-option", "", &prog, &o, errbuf, sizeof errbuf);
    CHECK(st == LCSM_ERR_BACKEND && prog == NULL, "bad options gave %s", lcsm_strerror(st));
    CHECK(strstr(errbuf, "CL_INVALID_BUILD_OPTIONS") || strstr(errbuf, "CL_BUILD_PROGRAM_FAILURE"), "message: %s",
          errbuf);
}

/* (10): a cache dir that cannot exist (under a regular file): no error. */
static void test_unwritable(const char *tmp)
{
    char file[1024], dir[1100];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    snprintf(dir, sizeof dir, "%s/sub/dir", file);
    CHECK(spill(file, "x", 1) == 0, "cannot write %s", file);
    build_expect(src, "", dir, CLC_FROM_SOURCE, "unwritable cache dir");
    build_expect(src, "", dir, CLC_FROM_SOURCE, "unwritable cache dir again");
    CHECK(file_size(file) == 1, "the regular file changed");
}

/* mkdir -p with a trailing slash, and no doubled slash in the path. */
static void test_mkdir(const char *tmp)
{
    char dir[1024], p[1024];
    snprintf(dir, sizeof dir, "%s/a/b/c/", tmp);
    CHECK(clc_cache_path(dev, src, strlen(src), "", dir, p, sizeof p) == 0 && !strstr(p, "//"), "path %s", p);
    build_expect(src, "", dir, CLC_FROM_SOURCE, "missing nested cache dir");
    CHECK(file_size(p) > HEADER, "no file %s in the created dir", p);
    build_expect(src, "", dir, CLC_FROM_CACHE, "created dir, again");
    CHECK(strstr(p, "/cl-") && strlen(strstr(p, "/cl-")) == 4 + 32 + 4, "file name %s", p);
}

typedef struct job {
    const char *dir;
    cl_program p;
    lcsm_status st;
} job;

static void *builder(void *arg)
{
    job *j = arg;
    char e[512];
    j->st = clc_program_build(ctx, dev, thr_src, strlen(thr_src), "", j->dir, &j->p, NULL, e, sizeof e);
    return NULL;
}

/* Threads building the same new program at once all succeed. */
static void test_threads(const char *dir)
{
    pthread_t t[N_THREADS];
    job j[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        j[i] = (job){dir, NULL, LCSM_ERR_STATE};
        CHECK(pthread_create(&t[i], NULL, builder, &j[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        CHECK(j[i].st == LCSM_OK && j[i].p, "thread %d: %s", i, lcsm_strerror(j[i].st));
        if (j[i].p) {
            CHECK(kernel_ok(j[i].p), "thread %d: wrong kernel result", i);
            clReleaseProgram(j[i].p);
        }
    }
    build_expect(thr_src, "", dir, CLC_FROM_CACHE, "after concurrent builds");
}

/* Every host allocation failing in turn: a clean LCSM_ERR_OUT_OF_MEMORY or
 * success, and nothing leaked, on the hit path and on the write path. */
static void test_alloc_fail(const char *dir, const char *path, int write_path)
{
    int done = 0;
    for (long n = 0; !done && n < 200; n++) {
        if (write_path)
            unlink(path);
        cl_program p = NULL;
        clc_origin o;
        long live = lcsm__alloc_live();
        lcsm__alloc_inject(n);
        lcsm_status st = clc_program_build(ctx, dev, src, strlen(src), "", dir, &p, &o, errbuf, sizeof errbuf);
        int hit = lcsm__alloc_injected();
        lcsm__alloc_inject(-1);
        done = !hit;
        CHECK(st == LCSM_OK || (hit && st == LCSM_ERR_OUT_OF_MEMORY), "allocation %ld: %s (%s)", n,
              lcsm_strerror(st), errbuf);
        CHECK((st == LCSM_OK) == (p != NULL), "allocation %ld: program %p with %s", n, (void *)p,
              lcsm_strerror(st));
        if (p) {
            CHECK(kernel_ok(p), "allocation %ld: wrong kernel result", n);
            clReleaseProgram(p);
        }
        CHECK(lcsm__alloc_live() == live, "allocation %ld: %ld blocks leaked", n, lcsm__alloc_live() - live);
    }
    CHECK(done, "more than 200 allocations");
    build_expect(src, "", dir, CLC_FROM_CACHE, "after allocation failures");
}

int main(void)
{
    uint64_t rng = tu_seed();
    if (open_device() != 0)
        return 77;
    k_scale = 1.0f + (float)(tu_next(&rng) % 100) / 8.0f;
    snprintf(src, sizeof src, kernel_fmt, (unsigned long long)tu_next(&rng));
    snprintf(thr_src, sizeof thr_src, kernel_fmt, (unsigned long long)tu_next(&rng));

    const char *base = getenv("TMPDIR");
    char tmp[512], dir[600], path[700];
    snprintf(tmp, sizeof tmp, "%s/lcsm_cl_cache_XXXXXX", base && *base ? base : "/tmp");
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(dir, sizeof dir, "%s/cache", tmp);
    CHECK(clc_cache_path(dev, src, strlen(src), "", dir, path, sizeof path) == 0, "clc_cache_path");

    test_cold_warm(dir, path);
    test_truncated(dir, path);
    test_corrupt(dir, path);
    test_garbage_binary(dir, path, &rng);
    test_key(dir, path);
    test_no_cache(tmp);
    test_build_error(dir);
    test_unwritable(tmp);
    test_mkdir(tmp);
    test_threads(dir);
    test_alloc_fail(dir, path, 0);
    test_alloc_fail(dir, path, 1);
    CHECK(count_entries(dir, ".tmp.") == 0, "temporary files left in %s", dir);
    CHECK(count_entries(dir, "") == 3, "%d files in %s, want 3", count_entries(dir, ""), dir);

    clReleaseCommandQueue(queue);
    clReleaseContext(ctx);
    tu_rm_rf(tmp);
    return tu_finish("test_cl_cache");
}
