#include "file_io.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

static const char *kind_of(mode_t m)
{
    return S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device"
           : S_ISDIR(m) ? "a directory"
           : S_ISSOCK(m) ? "a socket"
                         : "not a plain file";
}

lcsm_status lcsm__file_open(const char *path, int *fd, struct stat *sb, char *err, size_t cap)
{
    *fd = -1;
    /* stat() first, so that a device is not even opened (opening some has side
     * effects); fstat() of the open file below is what counts. */
    if (stat(path, sb) != 0)
        return ERR(LCSM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb->st_mode))
        return ERR(LCSM_ERR_IO, "%s: not a regular file (%s)", path, kind_of(sb->st_mode));
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0)
        return ERR(LCSM_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(f, sb) != 0) {
        int e = errno;
        close(f);
        return ERR(LCSM_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb->st_mode)) { /* replaced between the stat() and the open() */
        close(f);
        return ERR(LCSM_ERR_IO, "%s: not a regular file (%s)", path, kind_of(sb->st_mode));
    }
    int flags = fcntl(f, F_GETFL);
    if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(f);
        return ERR(LCSM_ERR_IO, "%s: fcntl: %s", path, strerror(e));
    }
    *fd = f;
    return LCSM_OK;
}

int lcsm__pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    unsigned char *p = buf;
    while (n) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t r = pread(fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 1;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int lcsm__file_changed(int fd, const struct stat *was)
{
    struct stat now;
    if (fstat(fd, &now) != 0)
        return 1;
    return now.st_size != was->st_size || now.st_mtim.tv_sec != was->st_mtim.tv_sec ||
           now.st_mtim.tv_nsec != was->st_mtim.tv_nsec || now.st_ctim.tv_sec != was->st_ctim.tv_sec ||
           now.st_ctim.tv_nsec != was->st_ctim.tv_nsec;
}

lcsm_status lcsm__file_read_all(const char *path, size_t limit, char **buf, size_t *len, char *err, size_t cap)
{
    int fd;
    struct stat sb;
    *buf = NULL;
    *len = 0;
    lcsm_status st = lcsm__file_open(path, &fd, &sb, err, cap);
    if (st != LCSM_OK)
        return st;
    if (sb.st_size < 0 || (uint64_t)sb.st_size > limit) {
        close(fd);
        return ERR(LCSM_ERR_FORMAT, "%s: %lld bytes, more than the %zu this file may have", path,
                   (long long)sb.st_size, limit);
    }
    size_t n = (size_t)sb.st_size;
    char *b = lcsm__malloc(n + 1);
    if (!b) {
        close(fd);
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: a read buffer of %zu bytes", path, n + 1);
    }
    int r = lcsm__pread_full(fd, b, n, 0);
    if (r < 0)
        st = ERR(LCSM_ERR_IO, "%s: read: %s", path, strerror(errno));
    else if (r > 0 || lcsm__file_changed(fd, &sb))
        st = ERR(LCSM_ERR_IO, "%s: changed while loading", path);
    close(fd);
    if (st != LCSM_OK) {
        lcsm__free(b);
        return st;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return LCSM_OK;
}

lcsm_status lcsm__path_join(char *buf, size_t cap, const char *dir, const char *name, char *err, size_t errcap)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        snprintf(err, errcap, "%.200s%s: path too long (%d bytes with /%s, the limit is %zu)", dir,
                 strlen(dir) > 200 ? "..." : "", n, name, cap ? cap - 1 : 0);
        return LCSM_ERR_INVALID_ARGUMENT;
    }
    return LCSM_OK;
}

char *lcsm__path_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = lcsm__malloc((size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void lcsm__mkdir_p(char *dir, mode_t mode)
{
    for (char *c = dir + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        mkdir(dir, mode);
        *c = '/';
    }
    mkdir(dir, mode);
}

void lcsm__cpu_model_name(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            v += *v == ' ';
            snprintf(out, cap, "%s", v);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
}
