/*
 * Writes the seed corpus of fuzz_loader: tiny random models (lcsm_model_create_random
 * + lcsm_model_save), rewritten in a few of the forms the loader accepts (F16 /
 * BF16 data, "model." / "hyena." prefixes, safari's nested "layer" config, unit
 * dimensions dropped, the optional freq tensor left out), each packed as
 * fuzz_loader's input: 2 bytes little-endian config length, config.json,
 * model.safetensors. Deterministic; run it to regenerate:
 *     fuzz_make_corpus tests/fuzz/corpus
 */
#include "lcsm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DT_F32, DT_F16, DT_BF16 };

typedef struct seed {
    const char *name;
    int d_model, n_layer, d_inner, vocab, pad, l_max, emb_dim, filter_order, num_inner_mlps;
    uint64_t rng_seed;
    int dtype;
    const char *prefix;
    int config_style; /* 0: as saved, 1: minified, 2: safari's nested "layer" */
    int squeeze;      /* drop every unit dimension from the shapes */
    int drop_freq;    /* leave out the optional implicit_filter.1.freq */
} seed;

static const seed seeds[] = {
    {"tiny_f32", 4, 1, 16, 12, 8, 8, 3, 4, 1, 1, DT_F32, "", 0, 0, 0},
    {"two_layers_f32", 8, 2, 16, 12, 8, 16, 3, 4, 1, 2, DT_F32, "", 1, 0, 0},
    {"model_prefix_bf16", 4, 2, 8, 12, 8, 12, 3, 4, 1, 3, DT_BF16, "model.", 1, 0, 0},
    {"hyena_prefix_f16_nested", 6, 1, 24, 12, 4, 16, 3, 4, 1, 4, DT_F16, "hyena.", 2, 0, 0},
    {"squeezed_no_freq", 4, 1, 16, 5, 1, 8, 3, 4, 0, 5, DT_F32, "", 1, 1, 1},
    {"fft_tiles_l256", 4, 1, 8, 12, 8, 256, 3, 4, 1, 6, DT_F16, "", 1, 0, 0},
};

static void die(const char *what)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, lcsm_last_error()[0] ? lcsm_last_error() : strerror(errno));
    exit(1);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        die(path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, fp) != (size_t)len)
        die(path);
    fclose(fp);
    buf[len] = 0;
    *n = (size_t)len;
    return buf;
}

static uint16_t to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int e = (int)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffffu;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u); /* the seeds never get here */
    if (e <= 0) {                          /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift, rest = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (uint32_t)e << 10 | man >> 13, rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
        h++; /* may carry into the exponent, which is right */
    return (uint16_t)(sign | h);
}

static uint16_t to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Rewrites a safetensors file written by lcsm_model_save (F32 only). */
static unsigned char *rewrite_safetensors(const unsigned char *in, size_t n_in, const seed *s, size_t *n_out)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | in[i];
    const unsigned char *data = in + 8 + hlen;
    cJSON *hdr = cJSON_ParseWithLength((const char *)in + 8, (size_t)hlen);
    cJSON *out = cJSON_CreateObject();
    if (!hdr || !out)
        die("safetensors header");
    size_t esize = s->dtype == DT_F32 ? 4 : 2, total = 0;
    unsigned char *body = malloc(n_in * 2 + 16);
    cJSON_AddItemToObject(out, "__metadata__", cJSON_Duplicate(cJSON_GetObjectItem(hdr, "__metadata__"), 1));
    for (const cJSON *e = hdr->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        if (s->drop_freq && strstr(e->string, ".freq"))
            continue;
        const cJSON *shape = cJSON_GetObjectItem(e, "shape"), *off = cJSON_GetObjectItem(e, "data_offsets");
        size_t b = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        size_t en = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble, numel = (en - b) / 4;
        char name[256];
        snprintf(name, sizeof name, "%s%s", s->prefix, e->string);
        cJSON *t = cJSON_AddObjectToObject(out, name);
        cJSON_AddStringToObject(t, "dtype", s->dtype == DT_F32 ? "F32" : s->dtype == DT_F16 ? "F16" : "BF16");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (const cJSON *d = shape->child; d; d = d->next)
            if (!s->squeeze || d->valuedouble != 1)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber(d->valuedouble));
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)total));
        for (size_t k = 0; k < numel; k++) {
            float f;
            memcpy(&f, data + b + 4 * k, 4);
            if (s->dtype == DT_F32) {
                memcpy(body + total + 4 * k, &f, 4);
            } else {
                uint16_t h = s->dtype == DT_F16 ? to_f16(f) : to_bf16(f);
                body[total + 2 * k] = (unsigned char)h;
                body[total + 2 * k + 1] = (unsigned char)(h >> 8);
            }
        }
        total += numel * esize;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)total));
    }
    char *json = cJSON_PrintUnformatted(out);
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    unsigned char *res = malloc(8 + padded + total);
    for (int i = 0; i < 8; i++)
        res[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(res + 8, json, jl);
    memset(res + 8 + jl, ' ', padded - jl);
    memcpy(res + 8 + padded, body, total);
    *n_out = 8 + padded + total;
    free(json);
    free(body);
    cJSON_Delete(hdr);
    cJSON_Delete(out);
    return res;
}

static char *rewrite_config(const char *text, const seed *s)
{
    if (s->config_style == 0)
        return strdup(text);
    cJSON *c = cJSON_Parse(text);
    if (!c)
        die("config.json");
    if (s->config_style == 2) {
        static const char *const moved[][2] = {
            {"max_seq_len", "l_max"}, {"emb_dim", "emb_dim"}, {"filter_order", "filter_order"}, {"hyena_order", "order"}};
        cJSON *layer = cJSON_AddObjectToObject(c, "layer");
        cJSON_AddStringToObject(layer, "_name_", "hyena");
        for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++)
            cJSON_AddItemToObject(layer, moved[i][1], cJSON_DetachItemFromObject(c, moved[i][0]));
    }
    char *out = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return out;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    if (mkdir(argv[1], 0777) != 0 && errno != EEXIST)
        die(argv[1]);
    char tmp[] = "/tmp/lcsm-corpus-XXXXXX";
    if (!mkdtemp(tmp))
        die("mkdtemp");
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.n_threads = 1;
    bo.fft_threshold = 64;
    bo.cache_dir = "";
    lcsm_backend *be;
    if (lcsm_backend_create("cpu", &bo, &be) != LCSM_OK)
        die("cpu backend");
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        const seed *s = &seeds[i];
        lcsm_model_config cfg;
        lcsm_model_config_default(&cfg);
        cfg.d_model = s->d_model;
        cfg.n_layer = s->n_layer;
        cfg.d_inner = s->d_inner;
        cfg.vocab_size = s->vocab;
        cfg.pad_vocab_size_multiple = s->pad;
        cfg.l_max = s->l_max;
        cfg.emb_dim = s->emb_dim;
        cfg.filter_order = s->filter_order;
        cfg.num_inner_mlps = s->num_inner_mlps;
        lcsm_model *m;
        if (lcsm_model_create_random(be, &cfg, s->rng_seed, NULL, &m) != LCSM_OK || lcsm_model_save(m, tmp) != LCSM_OK)
            die(s->name);
        lcsm_model_destroy(m);
        char path[256];
        size_t n_cfg, n_st, n_new;
        snprintf(path, sizeof path, "%s/config.json", tmp);
        char *cfg_text = (char *)read_all(path, &n_cfg);
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        unsigned char *st = read_all(path, &n_st);
        char *new_cfg = rewrite_config(cfg_text, s);
        unsigned char *new_st = rewrite_safetensors(st, n_st, s, &n_new);
        size_t lc = strlen(new_cfg);
        if (lc > 0xffff)
            die("config too long");
        snprintf(path, sizeof path, "%s/%s", argv[1], s->name);
        FILE *fp = fopen(path, "wb");
        unsigned char len2[2] = {(unsigned char)lc, (unsigned char)(lc >> 8)};
        if (!fp || fwrite(len2, 1, 2, fp) != 2 || fwrite(new_cfg, 1, lc, fp) != lc ||
            fwrite(new_st, 1, n_new, fp) != n_new || fclose(fp) != 0)
            die(path);
        printf("%s: %zu bytes\n", path, 2 + lc + n_new);
        free(cfg_text);
        free(st);
        free(new_cfg);
        free(new_st);
    }
    lcsm_backend_destroy(be);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", tmp);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    unlink(path);
    rmdir(tmp);
    return 0;
}
