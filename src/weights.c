/*
 * The host-side weights: the family's tensor list with data, random
 * initialisation, checkpoint loading and saving, and rounding to the weight
 * dtype. The families only list their tensors (arch_*.c); everything done to a
 * tensor list is here, once.
 */
#include "weights.h"
#include "internal.h"
#include "safetensors.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

lcsm_tensor *lcsm__tensor_add(lcsm_weights *w, int layer, int role, int ndim, const int64_t *shape, unsigned flags,
                              int init, const char *fmt, ...)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        lcsm_tensor *grown = lcsm__realloc(w->t, (size_t)cap * sizeof *grown);
        if (!grown)
            return NULL;
        w->t = grown;
        w->cap = cap;
    }
    lcsm_tensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->layer = layer;
    t->role = role;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->flags = flags;
    t->init = init;
    t->dt = LCSM_DT_F32;
    t->disk_dtype = -1;
    return t;
}

const lcsm_tensor *lcsm__tensor_get(const lcsm_weights *w, int layer, int role)
{
    if (layer < -1 || layer >= w->hp.n_layer || role < 0 || role >= LCSM_ROLE_HOST + 32)
        return NULL;
    int i = w->index[layer + 1][role];
    return i >= 0 ? &w->t[i] : NULL;
}

void lcsm__weights_free(lcsm_weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        lcsm__free(w->t[i].data);
    lcsm__free(w->t);
    lcsm__free(w->index);
    lcsm__free(w);
}

lcsm_weights *lcsm__weights_alloc(const lcsm_hparams *hp, lcsm_dtype weight_dt)
{
    lcsm_weights *w = lcsm__calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->hp = *hp;
    if (hp->arch->tensors(w) != LCSM_OK || !(w->index = lcsm__malloc((size_t)(hp->n_layer + 1) * sizeof *w->index))) {
        lcsm__weights_free(w);
        return NULL;
    }
    memset(w->index, 0xff, (size_t)(hp->n_layer + 1) * sizeof *w->index); /* -1 */
    for (int i = 0; i < w->n; i++) {
        lcsm_tensor *t = &w->t[i];
        if (t->flags & LCSM_T_MATRIX)
            t->dt = weight_dt;
        if (w->index[t->layer + 1][t->role] < 0)
            w->index[t->layer + 1][t->role] = i;
        if (!(t->data = lcsm__calloc(t->numel, sizeof(float)))) {
            lcsm__weights_free(w);
            return NULL;
        }
    }
    return w;
}

/* ---- conversions */

uint16_t lcsm__f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* a quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);          /* round to nearest, ties to even */
    return (uint16_t)(x >> 16);
}

uint16_t lcsm__f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    uint16_t h;
    if (x >= 0x47800000u) { /* 2^16 and above (and Inf, NaN): out of range */
        h = x > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (x < 0x38800000u) {
        /* Below 2^-14 the result is subnormal: adding 0.5 puts the half's
         * mantissa in the low bits of the float, rounded by the FPU (to even). */
        float v, magic = 0.5f;
        memcpy(&v, &x, 4);
        v += magic;
        uint32_t r;
        memcpy(&r, &v, 4);
        h = (uint16_t)(r - 0x3f000000u);
    } else {
        /* Rebias the exponent, round the 13 dropped bits to nearest even; a
         * carry into the exponent (up to infinity) is the right answer. */
        x += 0xc8000fffu + ((x >> 13) & 1);
        h = (uint16_t)(x >> 13);
    }
    return (uint16_t)(h | sign);
}

void lcsm__f32_convert(const float *src, size_t n, lcsm_dtype dt, void *dst)
{
    uint16_t *h = dst;
    switch (dt) {
    case LCSM_DT_F16:
        for (size_t i = 0; i < n; i++)
            h[i] = lcsm__f32_to_f16(src[i]);
        break;
    case LCSM_DT_BF16:
        for (size_t i = 0; i < n; i++)
            h[i] = lcsm__f32_to_bf16(src[i]);
        break;
    default:
        memcpy(dst, src, n * sizeof *src);
        break;
    }
}

void lcsm__weights_round(lcsm_weights *w)
{
    for (int i = 0; i < w->n; i++) {
        lcsm_tensor *t = &w->t[i];
        if (t->dt == LCSM_DT_F16)
            for (size_t k = 0; k < t->numel; k++)
                t->data[k] = st_f16_to_f32(lcsm__f32_to_f16(t->data[k]));
        else if (t->dt == LCSM_DT_BF16)
            for (size_t k = 0; k < t->numel; k++)
                t->data[k] = st_bf16_to_f32(lcsm__f32_to_bf16(t->data[k]));
    }
}

/* ---- deterministic random numbers: splitmix64 + Box-Muller */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double lcsm__normal(uint64_t *s)
{
    double u1 = ((double)(splitmix(s) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(splitmix(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double lcsm__uniform(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1.0p-53; }

static void init_tensor(const lcsm_hparams *hp, lcsm_tensor *t, uint64_t seed)
{
    uint64_t s = seed;
    if (t->init >= LCSM_I_FAMILY) {
        hp->arch->init(hp, t, &s, t->data);
        return;
    }
    double fan_in = t->ndim >= 2 ? (double)t->shape[t->ndim - 1] : 1.0;
    for (size_t i = 0; i < t->numel; i++) {
        double v = 0;
        switch (t->init) {
        case LCSM_I_LINEAR: v = lcsm__normal(&s) / sqrt(fan_in); break;
        case LCSM_I_BIAS: v = 0.02 * lcsm__normal(&s); break;
        case LCSM_I_NORM_W: v = 1.0 + 0.1 * lcsm__normal(&s); break;
        case LCSM_I_NORM_B: v = 0.1 * lcsm__normal(&s); break;
        case LCSM_I_CONV: v = 0.5 * lcsm__normal(&s); break;
        case LCSM_I_UNIT: v = lcsm__normal(&s); break;
        case LCSM_I_EMB: v = 0.5 * lcsm__normal(&s); break;
        }
        t->data[i] = (float)v;
    }
}

typedef struct random_job {
    lcsm_weights *w;
    uint64_t seed;
    atomic_int next; /* the next tensor to fill */
} random_job;

static void *random_worker(void *arg)
{
    random_job *j = arg;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->w->n;)
        init_tensor(&j->w->hp, &j->w->t[i], j->seed * 0x100000001B3ull + (uint64_t)i * 0x9E3779B97F4A7C15ull);
    return NULL;
}

/* Each tensor has its own generator (seeded by its index), so they are filled
 * on every processor at once with the same values as one after another: a
 * model of billions of weights starts in seconds. */
void lcsm__weights_randomise(lcsm_weights *w, uint64_t seed)
{
    random_job job = {.w = w, .seed = seed};
    atomic_init(&job.next, 0);
    enum { MAX_HELPERS = 63 };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n_help = (int)(cpus < (long)w->n ? cpus : (long)w->n) - 1;
    n_help = n_help < 0 ? 0 : n_help > MAX_HELPERS ? MAX_HELPERS : n_help;
    pthread_t tid[MAX_HELPERS];
    int started = 0;
    while (started < n_help && pthread_create(&tid[started], NULL, random_worker, &job) == 0)
        started++;
    random_worker(&job);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    lcsm__weights_round(w);
}

/* ---- checkpoints */

/* Shapes agree when they are equal after dropping every dimension of size 1 (a
 * checkpoint may store freq as (1, F) or (F), the conv taps as (3D, 1, 3) or (3D, 3)). */
static int same_shape(const int64_t *a, int na, const int64_t *b, int nb)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < na && a[i] == 1)
            i++;
        while (j < nb && b[j] == 1)
            j++;
        if (i == na || j == nb)
            return i == na && j == nb;
        if (a[i++] != b[j++])
            return 0;
    }
}

static void shape_text(const int64_t *s, int n, char *buf, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, ")");
}

/* The part of per-layer names before the layer number ("backbone.layers."),
 * taken from the family's first tensor of layer 0; "" if it has none. */
static void layer_stem(const lcsm_weights *w, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < w->n; i++)
        if (w->t[i].layer == 0) {
            const char *name = w->t[i].name, *p = strstr(name, ".0.");
            if (p)
                snprintf(buf, cap, "%.*s", (int)(p - name + 1), name);
            return;
        }
}

lcsm_status lcsm__weights_load(lcsm_weights *w, const char *path, int keep_disk_dtype, char *err, size_t cap)
{
    st_file f;
    lcsm_status st = st_open(path, &f, err, cap);
    if (st != LCSM_OK)
        return st;
    /* The checkpoint's prefix: the first of the family's that names its first tensor. */
    const char *const *prefixes = w->hp.arch->prefixes;
    const char *prefix = NULL;
    for (size_t p = 0; prefixes[p] && !prefix; p++) {
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefixes[p], w->t[0].name);
        if (st_find(&f, name))
            prefix = prefixes[p];
    }
    if (!prefix) {
        char tried[128] = "";
        for (size_t p = 1; prefixes[p]; p++)
            snprintf(tried + strlen(tried), sizeof tried - strlen(tried), "%s%s", p > 1 ? "/" : "", prefixes[p]);
        st_close(&f);
        return ERR(LCSM_ERR_MISSING_TENSOR, "%s: tensor '%s' (with or without a %s prefix) not found", path,
                   w->t[0].name, tried);
    }
    /* A file with more layers than the config would otherwise load as a silently
     * truncated model. */
    char stem[96], layer_prefix[256];
    layer_stem(w, stem, sizeof stem);
    int plen = snprintf(layer_prefix, sizeof layer_prefix, "%s%s", prefix, stem);
    for (int i = 0; *stem && i < f.n; i++) {
        const char *name = f.t[i].name;
        char *end;
        if (strncmp(name, layer_prefix, (size_t)plen) != 0)
            continue;
        long layer = strtol(name + plen, &end, 10);
        if (end != name + plen && *end == '.' && (layer < 0 || layer >= w->hp.n_layer)) {
            st = ERR(LCSM_ERR_SHAPE, "%s: tensor '%s' belongs to layer %ld, the config has %d layers", path, name,
                     layer, w->hp.n_layer);
            st_close(&f); /* after the message: name lives in f */
            return st;
        }
    }
    for (int i = 0; i < w->n && st == LCSM_OK; i++) {
        lcsm_tensor *t = &w->t[i];
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        const st_tensor *s = st_find(&f, name);
        if (!s) {
            if (t->flags & (LCSM_T_OPTIONAL | LCSM_T_TIED)) {
                if (t->flags & LCSM_T_OPTIONAL)
                    w->hp.arch->init(&w->hp, t, NULL, t->data); /* the value a checkpoint without it means */
                continue;
            }
            st = ERR(LCSM_ERR_MISSING_TENSOR, "%s: tensor '%s' not found", path, name);
            break;
        }
        if (!same_shape(s->shape, s->ndim, t->shape, t->ndim)) {
            char have[96], want[96];
            shape_text(s->shape, s->ndim, have, sizeof have);
            shape_text(t->shape, t->ndim, want, sizeof want);
            st = ERR(LCSM_ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies %s", path, name, have, want);
            break;
        }
        st = st_read_f32(&f, s, t->data, err, cap);
        for (size_t k = 0; st == LCSM_OK && k < t->numel; k++)
            if (!isfinite(t->data[k]))
                st = ERR(LCSM_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at element %zu", path, name, k);
        t->disk_dtype = s->dtype;
        if (keep_disk_dtype && (t->flags & LCSM_T_MATRIX))
            t->dt = s->dtype == ST_F16 ? LCSM_DT_F16 : s->dtype == ST_BF16 ? LCSM_DT_BF16 : LCSM_DT_F32;
    }
    st_close(&f);
    /* The parts of one role (q, k, v of one projection) share its storage: a
     * role whose parts the checkpoint stores in different types holds f32,
     * which represents every f16 and bf16 value exactly. */
    for (int i = 0; keep_disk_dtype && st == LCSM_OK && i < w->n; i++) {
        const lcsm_tensor *first = lcsm__tensor_get(w, w->t[i].layer, w->t[i].role);
        if (first && first != &w->t[i] && first->dt != w->t[i].dt)
            for (int j = 0; j < w->n; j++)
                if (w->t[j].layer == first->layer && w->t[j].role == first->role)
                    w->t[j].dt = LCSM_DT_F32;
    }
    if (st == LCSM_OK)
        lcsm__weights_round(w);
    return st;
}

lcsm_status lcsm__weights_save(const lcsm_weights *w, const char *path, char *err, size_t cap)
{
    st_out *out = lcsm__calloc((size_t)w->n, sizeof *out);
    if (!out)
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: tensor list", path);
    int n = 0;
    for (int i = 0; i < w->n; i++) {
        const lcsm_tensor *t = &w->t[i];
        int dtype = t->dt == LCSM_DT_F16 ? ST_F16 : t->dt == LCSM_DT_BF16 ? ST_BF16 : ST_F32;
        out[n++] = (st_out){t->name, t->ndim, t->shape, t->data, dtype};
    }
    lcsm_status st = st_save(path, out, n, err, cap);
    lcsm__free(out);
    return st;
}
