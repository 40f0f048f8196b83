#include "safetensors.h"
#include "file_io.h"
#include "internal.h"
#include "json.h"
#include "weights.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is refused before it is parsed. HyenaDNA checkpoints
 * have headers of a few kB; 64 MiB leaves room for thousands of tensors. */
#define ST_MAX_HEADER (64u << 20)

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

static int dtype_of(const char *s, size_t *bytes)
{
    static const struct { const char *name; int code; size_t bytes; } table[] = {
        {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"I32", ST_I32, 4},
        {"F64", ST_OTHER, 8}, {"I64", ST_OTHER, 8}, {"I16", ST_OTHER, 2}, {"I8", ST_OTHER, 1},
        {"U8", ST_OTHER, 1}, {"BOOL", ST_OTHER, 1}, {"U16", ST_OTHER, 2}, {"U32", ST_OTHER, 4},
        {"U64", ST_OTHER, 8}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(s, table[i].name)) {
            *bytes = table[i].bytes;
            return table[i].code;
        }
    return -1;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_tensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* Parses one header entry into t. Returns LCSM_OK or an error with err set. */
static lcsm_status parse_entry(const cJSON *e, size_t data_size, st_tensor *t, char *err, size_t cap)
{
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': header entry is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': needs dtype, shape and data_offsets", name);
    size_t esize = 0;
    t->dtype = dtype_of(dt->valuestring, &esize);
    if (t->dtype < 0)
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': unknown dtype '%s'", name, dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': %d dimensions (at most %d)", name, nd, ST_MAX_DIMS);
    t->ndim = nd;
    size_t numel = 1;
    for (int i = 0; i < nd; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
        if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
            return ERR(LCSM_ERR_FORMAT, "tensor '%s': bad shape entry %d", name, i);
        t->shape[i] = (int64_t)v;
        if (lcsm__mul_overflows(numel, (size_t)v, &numel))
            return ERR(LCSM_ERR_FORMAT, "tensor '%s': shape overflows", name);
    }
    t->numel = numel;
    if (cJSON_GetArraySize(off) != 2)
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': data_offsets needs two entries", name);
    double b = cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) ? cJSON_GetArrayItem(off, 0)->valuedouble : -1;
    double en = cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) ? cJSON_GetArrayItem(off, 1)->valuedouble : -1;
    if (!(b >= 0 && en >= b && en <= (double)data_size) || b != floor(b) || en != floor(en))
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': data_offsets [%.0f, %.0f) outside the %zu data bytes",
                   name, b, en, data_size);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    size_t bytes;
    if (lcsm__mul_overflows(numel, esize, &bytes) || bytes != t->end - t->begin)
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': %zu data bytes for %zu elements of %s", name,
                   t->end - t->begin, numel, dt->valuestring);
    return LCSM_OK;
}

void (*st_test_hook_opened)(const char *path);

/* The "changed while loading" error for f. */
static lcsm_status changed(const st_file *f, char *err, size_t cap)
{
    return ERR(LCSM_ERR_IO, "%s: changed while loading (another process truncated, extended or rewrote it)",
               f->path);
}

/* n bytes at file offset off into out; the file must be as it was at open,
 * before and after. */
static lcsm_status read_at(const st_file *f, void *out, size_t n, uint64_t off, char *err, size_t cap)
{
    int r = lcsm__pread_full(f->fd, out, n, off);
    if (r < 0)
        return ERR(LCSM_ERR_IO, "%s: read: %s", f->path, strerror(errno));
    if (r > 0 || lcsm__file_changed(f->fd, &f->sb))
        return changed(f, err, cap);
    return LCSM_OK;
}

lcsm_status st_open(const char *path, st_file *f, char *err, size_t cap)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    lcsm_status opened = lcsm__file_open(path, &f->fd, &f->sb, err, cap);
    if (opened != LCSM_OK)
        return opened;
    size_t size = (size_t)f->sb.st_size;
    f->size = size;
    char *hdr = NULL;
    lcsm_status st = LCSM_OK;
    cJSON *root = NULL;
    if (!(f->path = lcsm__strdup(path))) {
        st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: file name", path);
        goto fail;
    }
    if (size < 8) {
        st = ERR(LCSM_ERR_FORMAT, "%s: truncated (%zu bytes, no header)", path, size);
        goto fail;
    }
    unsigned char len8[8];
    if ((st = read_at(f, len8, 8, 0, err, cap)) != LCSM_OK)
        goto fail;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | len8[i];
    if (hlen > size - 8 || hlen > ST_MAX_HEADER) {
        st = ERR(LCSM_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes) or the %u-byte limit",
                 path, (unsigned long long)hlen, size, ST_MAX_HEADER);
        goto fail;
    }
    f->data_off = 8 + (size_t)hlen;
    if (!(hdr = lcsm__malloc((size_t)hlen + 1))) {
        st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header of %llu bytes", path, (unsigned long long)hlen);
        goto fail;
    }
    if ((st = read_at(f, hdr, (size_t)hlen, 8, err, cap)) != LCSM_OK)
        goto fail;
    hdr[hlen] = '\0';
    /* One object, only (space) padding after it, no key twice anywhere: a
     * tensor listed twice is refused as such, a repeated key inside an entry or
     * in __metadata__ too (Python would take the last, cJSON the first). */
    lcsm_json_dup dup;
    char why[400];
    st = lcsm__json_parse_object(hdr, (size_t)hlen, ST_MAX_HEADER, &root, &dup, why, sizeof why);
    if (st == LCSM_ERR_FORMAT && root == NULL && dup.key[0] && !dup.where[0]) {
        st = ERR(LCSM_ERR_FORMAT, "%s: tensor '%s' appears twice", path, dup.key);
        goto fail;
    }
    if (st != LCSM_OK) {
        st = ERR(st, "%s: header: %s", path, why);
        goto fail;
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        n += strcmp(e->string, "__metadata__") != 0;
    f->t = lcsm__calloc((size_t)n + 1, sizeof *f->t);
    if (!f->t) {
        st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header of %d tensors", path, n);
        goto fail;
    }
    size_t data_size = size - f->data_off;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        st_tensor *t = &f->t[f->n];
        t->name = lcsm__strdup(e->string);
        if (!t->name) {
            st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: tensor names", path);
            goto fail;
        }
        f->n++;
        st = parse_entry(e, data_size, t, err, cap);
        if (st != LCSM_OK)
            goto fail;
    }
    /* The index st_find searches: the tensors sorted by name, made once, so a
     * load is O(n log n) in the header and not n lookups of O(n) each. Also
     * finds duplicate names: JSON allows them, we do not. */
    if (f->n > 0 && !(f->by_name = lcsm__malloc((size_t)f->n * sizeof *f->by_name))) {
        st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header index of %d tensors", path, f->n);
        goto fail;
    }
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = &f->t[i];
    if (f->n > 1)
        qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name)) {
            st = ERR(LCSM_ERR_FORMAT, "%s: tensor '%s' appears twice", path, f->by_name[i]->name);
            goto fail;
        }
    if (f->n > 1) {
        /* Overlaps: sort a copy by offset and check neighbours. */
        st_tensor *sorted = lcsm__malloc((size_t)f->n * sizeof *sorted);
        if (!sorted) {
            st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header", path);
            goto fail;
        }
        memcpy(sorted, f->t, (size_t)f->n * sizeof *sorted);
        qsort(sorted, (size_t)f->n, sizeof *sorted, cmp_begin);
        size_t max_end = 0; /* furthest end of the non-empty tensors seen so far */
        const char *max_name = NULL;
        for (int i = 0; i < f->n; i++) {
            if (sorted[i].begin == sorted[i].end)
                continue;
            if (max_name && sorted[i].begin < max_end) {
                st = ERR(LCSM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path, max_name,
                         sorted[i].name);
                break;
            }
            max_end = sorted[i].end;
            max_name = sorted[i].name;
        }
        lcsm__free(sorted);
        if (st != LCSM_OK)
            goto fail;
    }
    cJSON_Delete(root);
    lcsm__free(hdr);
    if (st_test_hook_opened)
        st_test_hook_opened(path);
    return LCSM_OK;
fail:
    cJSON_Delete(root);
    lcsm__free(hdr);
    st_close(f);
    return st;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        lcsm__free(f->t[i].name);
    lcsm__free(f->t);
    lcsm__free(f->by_name);
    lcsm__free(f->path);
    if (f->fd >= 0)
        close(f->fd);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    size_t lo = 0, hi = (size_t)f->n; /* binary search of by_name in [lo, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->by_name[mid]->name, name);
        if (c == 0)
            return f->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 1024));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 1023) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 112) << 23 | man << 13;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

float st_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

lcsm_status st_read_raw(const st_file *f, const st_tensor *t, void *out, char *err, size_t cap)
{
    return read_at(f, out, t->end - t->begin, (uint64_t)f->data_off + t->begin, err, cap);
}

lcsm_status st_read_f32(const st_file *f, const st_tensor *t, float *out, char *err, size_t cap)
{
    switch (t->dtype) {
    case ST_F32:
        return st_read_raw(f, t, out, err, cap); /* little-endian host assumed (x86, ARM) */
    case ST_F16:
    case ST_BF16: {
        /* Through a small buffer: half the bytes of the floats they become. */
        unsigned char p[8192];
        const uint64_t at = (uint64_t)f->data_off + t->begin;
        for (size_t done = 0; done < t->numel;) {
            size_t k = t->numel - done < sizeof p / 2 ? t->numel - done : sizeof p / 2;
            lcsm_status st = read_at(f, p, 2 * k, at + 2 * done, err, cap);
            if (st != LCSM_OK)
                return st;
            for (size_t i = 0; i < k; i++) {
                uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
                out[done + i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
            }
            done += k;
        }
        return LCSM_OK;
    }
    default:
        return ERR(LCSM_ERR_UNSUPPORTED, "tensor '%s': dtype is not F32, F16 or BF16", t->name);
    }
}

lcsm_status st_read_i32(const st_file *f, const st_tensor *t, int32_t *out, char *err, size_t cap)
{
    if (t->dtype != ST_I32)
        return ERR(LCSM_ERR_FORMAT, "tensor '%s': dtype is not I32", t->name);
    return st_read_raw(f, t, out, err, cap);
}

lcsm_status st_save(const char *path, const st_out *t, int n, char *err, size_t cap)
{
    cJSON *root = cJSON_CreateObject();
    size_t off = 0;
    lcsm_status st = LCSM_OK;
    char *json = NULL;
    FILE *fp = NULL;
    if (!root)
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header", path);
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    if (meta)
        cJSON_AddStringToObject(meta, "format", "pt");
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = e ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        const int half = t[i].dtype == ST_F16 || t[i].dtype == ST_BF16;
        if (!shape || !offs ||
            !cJSON_AddStringToObject(e, "dtype", t[i].dtype == ST_F16 ? "F16" : t[i].dtype == ST_BF16 ? "BF16" : "F32")) {
            st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header", path);
            goto done;
        }
        for (int d = 0; d < t[i].ndim; d++) {
            numel *= (size_t)t[i].shape[d];
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        }
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += numel * (half ? 2 : 4);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    json = cJSON_PrintUnformatted(root);
    if (!json) {
        st = ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: header", path);
        goto done;
    }
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8; /* keep the data 8-aligned */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fp = fopen(path, "wb");
    if (!fp) {
        st = ERR(LCSM_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(json, 1, jl, fp) == jl;
    for (size_t i = jl; ok && i < padded; i++)
        ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (size_t)t[i].shape[d];
        if (t[i].dtype == ST_F16 || t[i].dtype == ST_BF16) {
            /* little-endian 16-bit values, in blocks to bound the staging */
            uint16_t blk[1024];
            for (size_t k0 = 0; ok && k0 < numel; k0 += 1024) {
                size_t nb = numel - k0 < 1024 ? numel - k0 : 1024;
                lcsm__f32_convert(t[i].data + k0, nb, t[i].dtype == ST_F16 ? LCSM_DT_F16 : LCSM_DT_BF16, blk);
                ok = fwrite(blk, 2, nb, fp) == nb;
            }
        } else {
            ok = fwrite(t[i].data, 4, numel, fp) == numel;
        }
    }
    if (fclose(fp) != 0)
        ok = 0;
    fp = NULL;
    if (!ok)
        st = ERR(LCSM_ERR_IO, "%s: write failed", path);
done:
    cJSON_free(json); /* cJSON's allocation */
    cJSON_Delete(root);
    return st;
}
