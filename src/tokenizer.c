/* HyenaDNA's character tokenizer: special tokens 0..6, then A C G T N. */
#include "internal.h"

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
