/*
 * OpenBLAS's work buffers, made while the CPU backend is created, before lcsm
 * allocates any big state.
 *
 * Every OpenBLAS call that is not tiny (our sgemv and sgemm) takes a work
 * buffer from a process-wide table (blas_memory_alloc), and makes a new one,
 * BUFFER_SIZE = 32 << BUFFERSIZE bytes of address space (128 MiB in Debian's
 * 0.3.21 and the default x86-64 builds), whenever more calls run at once than
 * buffers exist. When that allocation fails, OpenBLAS before 0.3.30 retries it
 * forever (OpenMathLib/OpenBLAS#5289): under an address-space limit (ulimit -v)
 * or a strict overcommit policy a projection in the middle of a prefill spun
 * instead of failing.
 *
 * So: one buffer per pool thread (our pool runs at most that many OpenBLAS
 * calls at once; OpenBLAS itself is single-threaded while the backend exists)
 * is taken and given back here, each only after a probe mapping of a bit more
 * than a buffer has succeeded; when a probe fails the backend reports
 * LCSM_ERR_OUT_OF_MEMORY instead of letting OpenBLAS loop. Afterwards the calls
 * reuse those buffers and OpenBLAS allocates nothing more. One more buffer per
 * OpenBLAS worker thread: the pthreads build starts its workers when it is
 * loaded, and each takes a buffer when it first runs and keeps it, which may be
 * after this warm-up, taking one of ours (seen: a pool thread's sgemm then
 * spun under ulimit -v). This runs before the backend's pool threads are
 * started, for the same reason: a thread starting reserves a 64 MiB malloc
 * arena, which can take the room a probe has just seen. Not covered: more
 * concurrent OpenBLAS calls than that (several CPU backends running at once,
 * the application's own), an OpenBLAS built with buffers larger than the
 * probe, and memory taken by another thread between a probe and its buffer.
 *
 * blas_memory_alloc / blas_memory_free are OpenBLAS internals, exported by
 * every OpenBLAS library; they are referenced weakly, and a BLAS without them
 * is simply not warmed.
 */
#include "cpu.h"

#include <sys/mman.h>

extern void *blas_memory_alloc(int procpos) __attribute__((weak));
extern void blas_memory_free(void *buffer) __attribute__((weak));

/* OpenBLAS's buffer (128 MiB) plus its page of slack, and some margin. */
#define PROBE_BYTES ((size_t)132 << 20)
/* OpenBLAS's table has 2 x MAX_THREADS slots (128 in Debian's build); asking for
 * more than it has terminates the process. */
#define MAX_WARM 32

/* 1 if PROBE_BYTES of read-write private memory can be mapped now (counted as
 * OpenBLAS's own mapping is: address space, and commit charge). */
static int room_for_a_buffer(void)
{
    void *p = mmap(NULL, PROBE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 0;
    munmap(p, PROBE_BYTES);
    return 1;
}

lcsm_status cpu_blas_reserve(cpu_backend *cb)
{
    if (!blas_memory_alloc || !blas_memory_free)
        return LCSM_OK;
    const int blas_workers = cb->saved_blas_threads > 1 ? cb->saved_blas_threads - 1 : 0;
    const int want = cb->n_threads + blas_workers, n = want < MAX_WARM ? want : MAX_WARM;
    void *held[MAX_WARM];
    int got = 0;
    int ok = !lcsm__alloc_fails(); /* failure injection (src/alloc.c) */
    while (ok && got < n) {
        ok = room_for_a_buffer();
        if (ok)
            held[got++] = blas_memory_alloc(0); /* held: the next one is a new buffer */
    }
    for (int i = 0; i < got; i++)
        blas_memory_free(held[i]);
    if (!ok)
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY,
                            "cpu: no room for OpenBLAS's work buffers (%d of %d made, about %zu MiB of address "
                            "space each)",
                            got, n, PROBE_BYTES >> 20);
    return LCSM_OK;
}
