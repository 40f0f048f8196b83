#include "config.h"
#include "file_io.h"
#include "internal.h"
#include "json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(st, ...) (snprintf(err, cap, __VA_ARGS__), (st))

void lcsm_model_config_default(lcsm_model_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->d_model = 128;
    c->n_layer = 2;
    c->d_inner = 512;
    c->vocab_size = 12;
    c->pad_vocab_size_multiple = 8;
    c->l_max = 16384;
    c->emb_dim = 5;
    c->filter_order = 64;
    c->num_inner_mlps = 2;
    c->short_filter_order = 3;
    c->hyena_order = 2;
    c->activation_freq = 1.0f;
    c->layer_norm_epsilon = 1e-5f;
}

int lcsm__config_n_vocab(const lcsm_model_config *c)
{
    int m = c->pad_vocab_size_multiple > 0 ? c->pad_vocab_size_multiple : 1;
    return (c->vocab_size + m - 1) / m * m;
}

/* The integer fields, table-driven: JSON key, where it lives, bounds, whether
 * required, and the key inside safari's nested "layer" object that may hold it. */
typedef struct int_field {
    const char *key;
    size_t offset;
    int lo, hi;
    int required;
    const char *nested;
} int_field;

#define F(field) offsetof(lcsm_model_config, field)
static const int_field int_fields[] = {
    {"d_model", F(d_model), 1, LCSM_MAX_DMODEL, 1, NULL},
    {"n_layer", F(n_layer), 1, LCSM_MAX_LAYERS, 1, NULL},
    {"d_inner", F(d_inner), 1, 4 * LCSM_MAX_DMODEL, 0, NULL},
    {"vocab_size", F(vocab_size), 1, LCSM_MAX_VOCAB, 1, NULL},
    {"pad_vocab_size_multiple", F(pad_vocab_size_multiple), 1, 4096, 0, NULL},
    {"max_seq_len", F(l_max), 1, LCSM_MAX_LMAX, 1, "l_max"},
    {"emb_dim", F(emb_dim), 1, 1024, 0, "emb_dim"},
    {"filter_order", F(filter_order), 1, 4096, 0, "filter_order"},
    {"num_inner_mlps", F(num_inner_mlps), 0, LCSM_MAX_INNER_MLPS, 0, NULL},
    {"short_filter_order", F(short_filter_order), 1, 64, 0, NULL},
    {"hyena_order", F(hyena_order), 1, 16, 0, "order"},
};
#undef F

static const cJSON *lookup(const cJSON *root, const char *key, const char *nested)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v && nested) {
        const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
        if (cJSON_IsObject(layer))
            v = cJSON_GetObjectItemCaseSensitive(layer, nested);
    }
    return v;
}

static lcsm_status read_float(const cJSON *root, const char *key, float lo, float hi, float *dst,
                              char *err, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v))
        return LCSM_OK; /* keep the default */
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return ERR(LCSM_ERR_FORMAT, "config: '%s' must be a finite number in [%g, %g]", key, lo, hi);
    *dst = (float)v->valuedouble;
    return LCSM_OK;
}

static lcsm_status from_json(const cJSON *root, lcsm_model_config *c, char *err, size_t cap)
{
    lcsm_model_config_default(c);
    c->d_inner = 0; /* derived below unless given */
    for (size_t i = 0; i < sizeof int_fields / sizeof int_fields[0]; i++) {
        const int_field *f = &int_fields[i];
        const cJSON *v = lookup(root, f->key, f->nested);
        if (!v || cJSON_IsNull(v)) {
            if (f->required)
                return ERR(LCSM_ERR_FORMAT, "config: required field '%s' is missing", f->key);
            continue;
        }
        double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!isfinite(d) || d != floor(d) || d < f->lo || d > f->hi)
            return ERR(LCSM_ERR_FORMAT, "config: '%s' must be an integer in [%d, %d]", f->key, f->lo, f->hi);
        *(int *)((char *)c + f->offset) = (int)d;
    }
    if (!c->d_inner)
        c->d_inner = 4 * c->d_model;
    lcsm_status st = read_float(root, "activation_freq", -1e6f, 1e6f, &c->activation_freq, err, cap);
    if (st == LCSM_OK)
        st = read_float(root, "layer_norm_epsilon", 0.0f, 1.0f, &c->layer_norm_epsilon, err, cap);
    if (st != LCSM_OK)
        return st;
    int tie_given = 0, tie = 1;
    if ((st = lcsm__json_get_bool(root, "tie_word_embeddings", &tie_given, &tie, err, cap)) != LCSM_OK)
        return st;
    if (tie_given && !tie)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: untied word embeddings (tie_word_embeddings false) are not supported");
    return lcsm__config_check(c, err, cap);
}

lcsm_status lcsm__config_check(const lcsm_model_config *c, char *err, size_t cap)
{
    if (c->d_model < 1 || c->d_model > LCSM_MAX_DMODEL || c->n_layer < 1 || c->n_layer > LCSM_MAX_LAYERS ||
        c->d_inner < 1 || c->d_inner > 4 * LCSM_MAX_DMODEL || c->vocab_size < 1 ||
        c->vocab_size > LCSM_MAX_VOCAB || c->pad_vocab_size_multiple < 1 ||
        c->pad_vocab_size_multiple > 4096 || c->l_max < 1 || c->l_max > LCSM_MAX_LMAX || c->emb_dim < 1 ||
        c->emb_dim > 1024 || c->filter_order < 1 || c->filter_order > 4096 || c->num_inner_mlps < 0 ||
        c->num_inner_mlps > LCSM_MAX_INNER_MLPS || !isfinite(c->activation_freq) ||
        !(c->layer_norm_epsilon >= 0.0f && c->layer_norm_epsilon <= 1.0f))
        return ERR(LCSM_ERR_INVALID_ARGUMENT, "config: a size is out of range (d_model %d, n_layer %d, "
                   "d_inner %d, vocab %d, l_max %d, emb_dim %d, filter_order %d, num_inner_mlps %d)",
                   c->d_model, c->n_layer, c->d_inner, c->vocab_size, c->l_max, c->emb_dim,
                   c->filter_order, c->num_inner_mlps);
    if (c->hyena_order != 2)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: hyena_order %d (only 2 is supported)", c->hyena_order);
    if (c->short_filter_order != 3)
        return ERR(LCSM_ERR_UNSUPPORTED, "config: short_filter_order %d (only 3 is supported)",
                   c->short_filter_order);
    return LCSM_OK;
}

lcsm_status lcsm__config_read(const char *path, lcsm_model_config *cfg, char *err, size_t cap)
{
    char *buf = NULL;
    size_t len = 0;
    lcsm_status st = lcsm__file_read_all(path, (size_t)1 << 24, &buf, &len, err, cap); /* 16 MiB */
    if (st == LCSM_OK) {
        cJSON *root = NULL;
        char inner[400];
        st = lcsm__json_parse_object(buf, len, (size_t)1 << 24, &root, NULL, inner, sizeof inner);
        if (st == LCSM_OK)
            st = from_json(root, cfg, inner, sizeof inner);
        if (st != LCSM_OK)
            snprintf(err, cap, "%s: %s", path, inner);
        cJSON_Delete(root);
    }
    lcsm__free(buf);
    return st;
}

lcsm_status lcsm__config_write(const char *path, const lcsm_model_config *c, char *err, size_t cap)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: config", path);
    cJSON_AddStringToObject(o, "model_type", "hyenadna");
    for (size_t i = 0; i < sizeof int_fields / sizeof int_fields[0]; i++)
        cJSON_AddNumberToObject(o, int_fields[i].key, *(const int *)((const char *)c + int_fields[i].offset));
    cJSON_AddNumberToObject(o, "activation_freq", c->activation_freq);
    cJSON_AddNumberToObject(o, "layer_norm_epsilon", c->layer_norm_epsilon);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", 1);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s)
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: config", path);
    FILE *fp = fopen(path, "wb");
    lcsm_status st = LCSM_OK;
    if (!fp) {
        st = ERR(LCSM_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        int ok = fputs(s, fp) >= 0 && fputc('\n', fp) != EOF;
        if (fclose(fp) != 0 || !ok)
            st = ERR(LCSM_ERR_IO, "%s: write failed", path);
    }
    cJSON_free(s); /* cJSON's allocation */
    return st;
}
