/* Tokenizers: HyenaDNA's characters (special tokens 0..6, then A C G T N), and
 * the one each model has (Evo's bytes, or none). */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char *const token_text[] = {"[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]",
                                         "[UNK]", "A",     "C",     "G",      "T",     "N"};

const char *lcsm_token_text(int32_t id)
{
    return id >= 0 && id < (int32_t)(sizeof token_text / sizeof token_text[0]) ? token_text[id] : "?";
}

lcsm_status lcsm_tokenize(const char *text, int32_t *ids, int cap, int *n_out)
{
    if (!text || !n_out || cap < 0 || (cap > 0 && !ids))
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_tokenize: NULL argument or negative capacity");
    int n = 0;
    for (const char *p = text; *p; p++) {
        const char *hit = strchr("ACGTN", *p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        if (!hit)
            return lcsm__fail(NULL, 0, LCSM_ERR_TOKEN_RANGE,
                              "lcsm_tokenize: character 0x%02x at offset %td is not one of ACGTN",
                              (unsigned char)*p, p - text);
        if (n < cap)
            ids[n] = LCSM_TOK_A + (int32_t)(hit - "ACGTN");
        if (n == 0x7fffffff)
            return lcsm__fail(NULL, 0, LCSM_ERR_LENGTH, "lcsm_tokenize: text too long");
        n++;
    }
    *n_out = n;
    return LCSM_OK;
}

/* ---- the model's tokenizer */

static int kind(const lcsm_model *m) { return m->hp.arch->tokenizer(&m->hp); }

const char *lcsm_model_tokenizer(const lcsm_model *m)
{
    static const char *const names[] = {"none", "dna", "byte"};
    return m ? names[kind(m)] : "";
}

lcsm_status lcsm_model_tokenize(const lcsm_model *m, const char *text, int32_t *ids, int cap, int *n_out)
{
    if (!m || !text || !n_out || cap < 0 || (cap > 0 && !ids))
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_model_tokenize: NULL argument or negative capacity");
    switch (kind(m)) {
    case LCSM_TOKENIZER_DNA: return lcsm_tokenize(text, ids, cap, n_out);
    case LCSM_TOKENIZER_BYTE: { /* Evo: the UTF-8 bytes of the text */
        size_t n = strlen(text);
        if (n > 0x7fffffff)
            return lcsm__fail(NULL, 0, LCSM_ERR_LENGTH, "lcsm_model_tokenize: text too long");
        for (size_t i = 0; i < n && i < (size_t)cap; i++)
            ids[i] = (unsigned char)text[i];
        *n_out = (int)n;
        return LCSM_OK;
    }
    default:
        return lcsm__fail(NULL, 0, LCSM_ERR_UNSUPPORTED,
                          "lcsm_model_tokenize: this %s model's vocabulary of %d has no tokenizer in lcsm; pass ids",
                          m->hp.arch->name, m->hp.vocab_size);
    }
}

/* UTF-8 of code point cp into out (at most 4 bytes); returns the length. */
static int utf8(unsigned cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xc0 | (cp >> 6)); /* Evo's ids stay below 0x800 */
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
}

lcsm_status lcsm_model_detokenize(const lcsm_model *m, const int32_t *ids, int n, char *text, size_t cap,
                                  size_t *len_out)
{
    if (!m || (n > 0 && !ids) || n < 0 || !text || cap < 1 || !len_out)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_detokenize: NULL argument or no room");
    const int k = kind(m);
    if (k == LCSM_TOKENIZER_NONE)
        return lcsm__fail(NULL, 0, LCSM_ERR_UNSUPPORTED,
                          "lcsm_model_detokenize: this %s model's vocabulary of %d has no tokenizer in lcsm",
                          m->hp.arch->name, m->hp.vocab_size);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->hp.n_vocab)
            return lcsm__fail(NULL, 0, LCSM_ERR_TOKEN_RANGE, "lcsm_model_detokenize: id %d at %d is outside [0, %d)",
                              (int)ids[i], i, m->hp.n_vocab);
        char buf[16];
        int w;
        if (k == LCSM_TOKENIZER_DNA) {
            w = snprintf(buf, sizeof buf, "%s", lcsm_token_text(ids[i]));
        } else { /* Evo's chr(clamp(id, 32, 512)) */
            const unsigned cp = ids[i] < 32 ? 32u : ids[i] > 512 ? 512u : (unsigned)ids[i];
            w = utf8(cp, buf);
        }
        for (int j = 0; j < w; j++, len++)
            if (len + 1 < cap)
                text[len] = buf[j];
    }
    text[len + 1 < cap ? len : cap - 1] = '\0';
    *len_out = len;
    return LCSM_OK;
}

lcsm_status lcsm_model_dna_ids(const lcsm_model *m, int32_t ids[4])
{
    if (!m || !ids)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_dna_ids: NULL argument");
    int n;
    lcsm_status st = lcsm_model_tokenize(m, "ACGT", ids, 4, &n);
    return st == LCSM_OK && n != 4 ? lcsm__fail(NULL, 0, LCSM_ERR_UNSUPPORTED, "lcsm_model_dna_ids: no A C G T") : st;
}
