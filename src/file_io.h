/*
 * Reading files the library did not write itself (config.json,
 * model.safetensors, FFTW wisdom, OpenCL kernel-cache entries): one place that
 * opens them and bounds every read.
 *
 * A path is opened read-only with O_NONBLOCK (cleared again once open), so that
 * a FIFO cannot block open() until some writer appears, then fstat()ed: anything
 * that is not a regular file after following symlinks (a FIFO, a device such as
 * /dev/zero, a directory, a socket) is refused with LCSM_ERR_IO before a single
 * byte is read. Reads are bounded by the size fstat() reported, never "until
 * EOF", and a file whose size or modification time moves while it is read is
 * reported as changed (LCSM_ERR_IO, "changed while loading").
 */
#ifndef LCSM_FILE_IO_H
#define LCSM_FILE_IO_H

#include "lcsm.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Opens `path` for reading as described above. On success *fd is the open
 * descriptor (close it with close()) and *sb its fstat(). On failure returns
 * LCSM_ERR_IO with "<path>: <reason>" in err ("not a regular file (a FIFO)" and
 * the like, or the errno text). */
lcsm_status lcsm__file_open(const char *path, int *fd, struct stat *sb, char *err, size_t cap);

/* Reads exactly n bytes at offset off (retrying on EINTR and short reads).
 * Returns 0 on success, 1 when the file ends first (it is shorter than it was),
 * -1 on a read error (errno set). */
int lcsm__pread_full(int fd, void *buf, size_t n, uint64_t off);

/* 1 if the open file no longer has the size, modification or change time of
 * `was` (its fstat() when it was opened), or cannot be fstat()ed; else 0. A
 * rewrite that keeps the size and lands within the file system's timestamp
 * granularity of the previous one is not seen. */
int lcsm__file_changed(int fd, const struct stat *was);

/* The whole of a regular file of at most `limit` bytes: *buf (from lcsm__malloc,
 * NUL-terminated, free with lcsm__free) and *len. Errors: LCSM_ERR_IO (cannot
 * open, not a regular file, read error, changed while loading), LCSM_ERR_FORMAT
 * (larger than limit), LCSM_ERR_OUT_OF_MEMORY. */
lcsm_status lcsm__file_read_all(const char *path, size_t limit, char **buf, size_t *len, char *err, size_t cap);

/* ---- paths: never cut short */

/* dir + "/" + name into buf (cap bytes). LCSM_ERR_INVALID_ARGUMENT with
 * "<dir>: path too long (N bytes with NAME, limit M)" in err when it does not
 * fit: a cut path would name another file. */
lcsm_status lcsm__path_join(char *buf, size_t cap, const char *dir, const char *name, char *err, size_t errcap);

/* A path formatted into a buffer of exactly its size (lcsm__malloc; free with
 * lcsm__free), for names of any length; NULL when out of memory. */
char *lcsm__path_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mkdir -p of the directory `dir` (modified and restored while it runs); best
 * effort: a failure is left for the write that follows to report. */
void lcsm__mkdir_p(char *dir, mode_t mode);

/* ---- the host */

/* The CPU's model name from /proc/cpuinfo ("unknown" when there is none). */
void lcsm__cpu_model_name(char *out, size_t cap);

#endif
