/*
 * A small, bounds-checked safetensors reader and writer.
 *
 * File: 8-byte little-endian header length N, N bytes of JSON (name -> {dtype,
 * shape, data_offsets [begin, end)} relative to the data that follows, plus an
 * optional "__metadata__"), then the data. The reader trusts nothing it has not
 * checked: header length within the file, every offset pair inside the data,
 * sizes matching dtype x shape without overflow, no two tensors overlapping, no
 * duplicate names.
 *
 * It reads with pread(), never through a mapping: the header at st_open, each
 * tensor's bytes when it is read. A file that another process truncates,
 * extends or rewrites while it is open (its size or modification time moves,
 * or a read ends early) gives LCSM_ERR_IO "changed while loading", never a
 * signal (a truncation under a mapping raises SIGBUS).
 */
#ifndef LCSM_SAFETENSORS_H
#define LCSM_SAFETENSORS_H

#include "lcsm.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

enum { ST_F32, ST_F16, ST_BF16, ST_I32, ST_OTHER };

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    int dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* within the data section */
} st_tensor;

typedef struct st_file {
    int fd;          /* open read-only while the file is open, else -1 */
    struct stat sb;  /* fstat() at open: what "unchanged" means */
    char *path;      /* for messages */
    size_t size;
    size_t data_off; /* 8 + N */
    int n;
    st_tensor *t;
    st_tensor **by_name; /* t sorted by name: st_find's index */
} st_file;

/* Opens and validates (the header is read and checked here). On failure writes
 * a message to err and returns the code. */
lcsm_status st_open(const char *path, st_file *f, char *err, size_t cap);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
/* Reads a F32/F16/BF16 tensor as float; numel floats written. */
lcsm_status st_read_f32(const st_file *f, const st_tensor *t, float *out, char *err, size_t cap);
lcsm_status st_read_i32(const st_file *f, const st_tensor *t, int32_t *out, char *err, size_t cap);
/* The tensor's bytes as stored (end - begin of them). */
lcsm_status st_read_raw(const st_file *f, const st_tensor *t, void *out, char *err, size_t cap);

/* Test hook: when set, called at the end of every successful st_open, before
 * any tensor is read (a test changes the file there). NULL by default. */
extern void (*st_test_hook_opened)(const char *path);

/* One tensor to write: float32 data, stored as `dtype` (ST_F32, ST_F16 or
 * ST_BF16, rounded to nearest even). */
typedef struct st_out {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
    int dtype;
} st_out;

lcsm_status st_save(const char *path, const st_out *t, int n, char *err, size_t cap);

/* Half-precision decoders, exposed for tests. */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

#endif
