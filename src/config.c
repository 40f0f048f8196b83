/*
 * config.json of every family: read (with cJSON), pick the family, hand the
 * fields to it, write. The field readers every family uses live here too.
 */
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

const lcsm_arch *const lcsm__archs[] = {&lcsm_arch_hyenadna, &lcsm_arch_longconv, &lcsm_arch_stripedhyena,
                                        &lcsm_arch_evo2, &lcsm_arch_hedgehog, NULL};

const lcsm_arch *lcsm__arch_find(const char *name)
{
    for (int i = 0; name && lcsm__archs[i]; i++)
        if (!strcmp(lcsm__archs[i]->name, name))
            return lcsm__archs[i];
    return NULL;
}

lcsm_status lcsm__json_int(const cJSON *v, const char *key, int required, int lo, int hi, int *dst, char *err,
                           size_t cap)
{
    if (!v || cJSON_IsNull(v))
        return required ? ERR(LCSM_ERR_FORMAT, "config: required field '%s' is missing", key) : LCSM_OK;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
        return ERR(LCSM_ERR_FORMAT, "config: '%s' must be an integer in [%d, %d]", key, lo, hi);
    *dst = (int)d;
    return LCSM_OK;
}

lcsm_status lcsm__json_float(const cJSON *v, const char *key, int required, double lo, double hi, float *dst,
                             char *err, size_t cap)
{
    if (!v || cJSON_IsNull(v))
        return required ? ERR(LCSM_ERR_FORMAT, "config: required field '%s' is missing", key) : LCSM_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return ERR(LCSM_ERR_FORMAT, "config: '%s' must be a finite number in [%g, %g]", key, lo, hi);
    *dst = (float)v->valuedouble;
    return LCSM_OK;
}

lcsm_status lcsm__json_bool(const cJSON *v, const char *key, int *dst, char *err, size_t cap)
{
    if (!v) /* null is no boolean: Python would read it as False, not as the default */
        return LCSM_OK;
    if (!cJSON_IsBool(v))
        return ERR(LCSM_ERR_FORMAT, "config: '%s' must be true or false", key);
    *dst = cJSON_IsTrue(v);
    return LCSM_OK;
}

lcsm_status lcsm__hparams_check_shape(const lcsm_hparams *hp, char *err, size_t cap)
{
    if (hp->d_model < 1 || hp->d_model > LCSM_MAX_DMODEL || hp->n_layer < 1 || hp->n_layer > LCSM_MAX_LAYERS ||
        hp->d_inner < 1 || hp->d_inner > 4 * LCSM_MAX_DMODEL || hp->vocab_size < 1 ||
        hp->vocab_size > LCSM_MAX_VOCAB || hp->pad_vocab_size_multiple < 1 || hp->pad_vocab_size_multiple > 4096 ||
        hp->l_max < 1 || hp->l_max > LCSM_MAX_LMAX || !(hp->norm_eps > 0.0f && hp->norm_eps <= 1.0f))
        return ERR(LCSM_ERR_INVALID_ARGUMENT,
                   "config: a size is out of range (d_model %d, n_layer %d, d_inner %d, vocab %d, l_max %d; "
                   "norm eps %g must be in (0, 1]: 0 makes a constant row's norm 0/0)",
                   hp->d_model, hp->n_layer, hp->d_inner, hp->vocab_size, hp->l_max, (double)hp->norm_eps);
    return LCSM_OK;
}

/* The family of a config: its model_type, else the first whose detect claims
 * it, else HyenaDNA (the first family's configs carry no model_type). */
static lcsm_status pick_arch(const cJSON *root, const lcsm_arch **out, char *err, size_t cap)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !cJSON_IsNull(mt)) {
        const lcsm_arch *a = cJSON_IsString(mt) ? lcsm__arch_find(mt->valuestring) : NULL;
        if (!a) {
            char known[128] = "";
            for (int i = 0; lcsm__archs[i]; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                         lcsm__archs[i]->name);
            return ERR(LCSM_ERR_UNSUPPORTED, "config: model_type %s%s%s is not a known family (%s)",
                       cJSON_IsString(mt) ? "'" : "", cJSON_IsString(mt) ? mt->valuestring : "(not a string)",
                       cJSON_IsString(mt) ? "'" : "", known);
        }
        *out = a;
        return LCSM_OK;
    }
    for (int i = 0; lcsm__archs[i]; i++)
        if (lcsm__archs[i]->detect && lcsm__archs[i]->detect(root)) {
            *out = lcsm__archs[i];
            return LCSM_OK;
        }
    *out = &lcsm_arch_hyenadna;
    return LCSM_OK;
}

static lcsm_status from_json(const cJSON *root, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    const lcsm_arch *a;
    lcsm_status st = pick_arch(root, &a, err, cap);
    if (st != LCSM_OK)
        return st;
    memset(hp, 0, sizeof *hp);
    hp->arch = a;
    a->defaults(hp);
    st = a->read_config(root, strict, hp, err, cap);
    if (st != LCSM_OK)
        return st;
    int m = hp->pad_vocab_size_multiple;
    hp->n_vocab = (hp->vocab_size + m - 1) / m * m;
    return a->check(hp, err, cap);
}

lcsm_status lcsm__config_parse(const char *text, size_t len, int strict, lcsm_hparams *hp, char *err, size_t cap)
{
    cJSON *root = NULL;
    char why[300];
    lcsm_status st = lcsm__json_parse_object(text, len, (size_t)1 << 24, &root, NULL, why, sizeof why);
    if (st != LCSM_OK)
        st = ERR(st, "config: %s", why);
    else
        st = from_json(root, strict, hp, err, cap);
    cJSON_Delete(root);
    return st;
}

lcsm_status lcsm__config_read(const char *path, lcsm_hparams *hp, char *err, size_t cap)
{
    char *buf = NULL;
    size_t len = 0;
    lcsm_status st = lcsm__file_read_all(path, (size_t)1 << 24, &buf, &len, err, cap); /* 16 MiB */
    if (st == LCSM_OK) {
        char inner[400];
        st = lcsm__config_parse(buf, len, 1, hp, inner, sizeof inner);
        if (st != LCSM_OK)
            snprintf(err, cap, "%s: %s", path, inner);
    }
    lcsm__free(buf);
    return st;
}

lcsm_status lcsm__config_write(const char *path, const lcsm_hparams *hp, char *err, size_t cap)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "model_type", hp->arch->name) || hp->arch->write_config(hp, o) != LCSM_OK) {
        cJSON_Delete(o);
        return ERR(LCSM_ERR_OUT_OF_MEMORY, "%s: config", path);
    }
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
