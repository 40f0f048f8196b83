/*
 * JSON read the way the rest of the ecosystem reads it (on top of cJSON), for
 * config.json and the safetensors header.
 *
 * cJSON keeps every member of an object, and cJSON_GetObjectItem returns the
 * first of two with the same key, where Python's json (and so transformers and
 * the safetensors package) keeps the last: the same file would mean two models.
 * A key that appears twice in any object of the tree is therefore refused. And a
 * boolean is true or false, not 0 or "false" (cJSON_IsFalse(0) is 0, so 0 read
 * as "not false").
 */
#ifndef LCSM_JSON_H
#define LCSM_JSON_H

#include "lcsm.h"
#include <cjson/cJSON.h>
#include <stddef.h>

/* Where a duplicate key was found. */
typedef struct lcsm_json_dup {
    char key[128];   /* the repeated key, cut to fit */
    char where[256]; /* the keys of the objects around it, '.'-separated; "" for the top level */
} lcsm_json_dup;

/* Parses text[0, len) as one JSON object with nothing but whitespace after it,
 * len at most `limit`, and no object anywhere in it with a key twice. On success
 * *out is the tree (free with cJSON_Delete). On failure *out is NULL and `why`
 * holds a phrase to put after the file's name: LCSM_ERR_FORMAT for "N bytes,
 * more than the limit of M", "not a JSON object", "text after the JSON object",
 * "key 'K' appears twice" (+ " in 'WHERE'"; also in *dup when dup is not NULL),
 * LCSM_ERR_OUT_OF_MEMORY when the check cannot allocate. */
lcsm_status lcsm__json_parse_object(const char *text, size_t len, size_t limit, cJSON **out, lcsm_json_dup *dup,
                                    char *why, size_t cap);

/* Booleans: lcsm__json_bool (arch.h). */

#endif
