#include "json.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Appends ".key" (or "key" at the start) to where, cut to fit. */
static void where_push(char *where, size_t cap, const char *key)
{
    size_t n = strlen(where);
    if (n + 1 < cap)
        snprintf(where + n, cap - n, "%s%s", n ? "." : "", key);
}

/* 1 with *dup set when an object in the tree under v has a key twice; -1 when
 * out of memory; 0 otherwise. `where` holds the path of v (restored on return).
 * Recursion is bounded by cJSON's nesting limit. */
static int find_dup(const cJSON *v, char *where, size_t wcap, lcsm_json_dup *dup)
{
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        return 0;
    const size_t wlen = strlen(where);
    int found = 0, n = 0;
    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    if (cJSON_IsObject(v) && n > 1) {
        const cJSON *small[16]; /* most objects are small: no allocation for them */
        const cJSON **k = n <= 16 ? small : lcsm__malloc((size_t)n * sizeof *k);
        if (!k)
            return -1;
        int i = 0;
        for (const cJSON *c = v->child; c; c = c->next)
            k[i++] = c;
        qsort(k, (size_t)n, sizeof *k, cmp_key);
        for (i = 1; i < n && !found; i++)
            if (!strcmp(k[i - 1]->string, k[i]->string)) {
                snprintf(dup->key, sizeof dup->key, "%s", k[i]->string);
                snprintf(dup->where, sizeof dup->where, "%s", where);
                found = 1;
            }
        if (k != small)
            lcsm__free(k);
    }
    for (const cJSON *c = v->child; c && !found; c = c->next) {
        if (!cJSON_IsObject(c) && !cJSON_IsArray(c))
            continue;
        if (cJSON_IsObject(v))
            where_push(where, wcap, c->string);
        else
            where_push(where, wcap, "[]");
        found = find_dup(c, where, wcap, dup);
        where[wlen] = '\0';
    }
    return found;
}

lcsm_status lcsm__json_parse_object(const char *text, size_t len, size_t limit, cJSON **out, lcsm_json_dup *dup,
                                    char *why, size_t cap)
{
    lcsm_json_dup local, *d = dup ? dup : &local;
    memset(d, 0, sizeof *d);
    *out = NULL;
    if (len > limit) {
        snprintf(why, cap, "%zu bytes, more than the limit of %zu", len, limit);
        return LCSM_ERR_FORMAT;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        snprintf(why, cap, "not a JSON object");
        return LCSM_ERR_FORMAT;
    }
    if (!lcsm__only_space(end, (size_t)(text + len - end))) {
        cJSON_Delete(root);
        snprintf(why, cap, "text after the JSON object");
        return LCSM_ERR_FORMAT;
    }
    char where[256] = "";
    int r = find_dup(root, where, sizeof where, d);
    if (r != 0) {
        cJSON_Delete(root);
        if (r < 0) {
            snprintf(why, cap, "out of memory checking for duplicate keys");
            return LCSM_ERR_OUT_OF_MEMORY;
        }
        if (d->where[0])
            snprintf(why, cap, "key '%s' appears twice in '%s'", d->key, d->where);
        else
            snprintf(why, cap, "key '%s' appears twice", d->key);
        return LCSM_ERR_FORMAT;
    }
    *out = root;
    return LCSM_OK;
}
