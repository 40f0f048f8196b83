/*
 * JSON read like the rest of the ecosystem (src/json.c): a key twice in any
 * object of config.json or of the safetensors header is refused, naming the key
 * (Python keeps the last value, cJSON's lookup the first: the same file would
 * load as two different models); "tie_word_embeddings" must be true or false
 * (0 read as true before). Unit checks of the helper, then through
 * lcsm_model_load on a saved model whose files are edited as text.
 */
#include "testutil.h"
#include "internal.h"
#include "json.h"

static char g_dir[128], g_cfg[256], g_st[256];
static char *g_cfg_text;           /* the saved config.json */
static unsigned char *g_st_bytes;  /* the saved model.safetensors */
static size_t g_st_n;
static lcsm_backend *g_be;

static int has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* ------------------------------------------------------------ the helper */

static void parse_case(const char *text, lcsm_status want, const char *key, const char *where)
{
    cJSON *root = (cJSON *)&root;
    lcsm_json_dup dup;
    char why[256] = "";
    lcsm_status st = lcsm__json_parse_object(text, strlen(text), 1 << 20, &root, &dup, why, sizeof why);
    CHECK(st == want, "parse %s: %s, want %s (%s)", text, lcsm_strerror(st), lcsm_strerror(want), why);
    if (want == LCSM_OK) {
        CHECK(root != NULL, "parse %s: no tree", text);
    } else {
        CHECK(root == NULL, "parse %s: a tree after an error", text);
        if (key) {
            CHECK(!strcmp(dup.key, key) && !strcmp(dup.where, where), "parse %s: duplicate '%s' in '%s', want '%s' in '%s'",
                  text, dup.key, dup.where, key, where);
            char k[160];
            snprintf(k, sizeof k, "key '%s' appears twice", key);
            CHECK(has(why, k), "parse %s: message '%s'", text, why);
        }
    }
    cJSON_Delete(root);
}

static void test_helper(void)
{
    parse_case("{\"a\": 1, \"b\": {\"a\": 2}, \"c\": [{\"a\": 1}, {\"a\": 2}]}", LCSM_OK, NULL, NULL);
    parse_case("{\"a\": 1, \"a\": 2}", LCSM_ERR_FORMAT, "a", "");
    parse_case("{\"b\": 0, \"a\": 1, \"c\": 0, \"a\": 1}", LCSM_ERR_FORMAT, "a", "");
    parse_case("{\"layer\": {\"l_max\": 64, \"l_max\": 128}}", LCSM_ERR_FORMAT, "l_max", "layer");
    parse_case("{\"x\": {\"y\": {\"z\": 1, \"z\": 1}}}", LCSM_ERR_FORMAT, "z", "x.y");
    parse_case("{\"x\": [1, {\"k\": 1, \"k\": 2}]}", LCSM_ERR_FORMAT, "k", "x.[]");
    { /* a big object: the sort, not the small-object path */
        char big[4096];
        size_t n = (size_t)snprintf(big, sizeof big, "{");
        for (int i = 0; i < 100; i++)
            n += (size_t)snprintf(big + n, sizeof big - n, "\"k%d\": %d, ", i, i);
        snprintf(big + n, sizeof big - n, "\"k57\": 0}");
        parse_case(big, LCSM_ERR_FORMAT, "k57", "");
    }
    parse_case("[1, 2]", LCSM_ERR_FORMAT, NULL, NULL);
    parse_case("{\"a\": 1} x", LCSM_ERR_FORMAT, NULL, NULL);
    parse_case("{\"a\": 1}  \n", LCSM_OK, NULL, NULL);
    { /* the length limit */
        cJSON *root;
        char why[128];
        CHECK_STATUS(lcsm__json_parse_object("{\"a\": 1}", 8, 7, &root, NULL, why, sizeof why), LCSM_ERR_FORMAT);
        CHECK(root == NULL && has(why, "limit"), "over the limit: '%s'", why);
    }
    /* The strict boolean. */
    cJSON *o = cJSON_Parse("{\"t\": true, \"f\": false, \"zero\": 0, \"one\": 1, \"s\": \"true\", \"n\": null}");
    const struct {
        const char *key;
        lcsm_status want;
        int present, value;
    } b[] = {{"t", LCSM_OK, 1, 1},           {"f", LCSM_OK, 1, 0},           {"absent", LCSM_OK, 0, -1},
             {"zero", LCSM_ERR_FORMAT, 1, -1}, {"one", LCSM_ERR_FORMAT, 1, -1}, {"s", LCSM_ERR_FORMAT, 1, -1},
             {"n", LCSM_ERR_FORMAT, 1, -1}};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, b[i].key);
        int present = item != NULL, v = -1;
        char why[128] = "";
        lcsm_status st = lcsm__json_bool(item, b[i].key, &v, why, sizeof why);
        CHECK(st == b[i].want && present == b[i].present && (st != LCSM_OK || v == b[i].value),
              "bool '%s': %s, present %d, value %d (%s)", b[i].key, lcsm_strerror(st), present, v, why);
        if (st != LCSM_OK)
            CHECK(has(why, b[i].key) && has(why, "true or false"), "bool '%s': message '%s'", b[i].key, why);
    }
    cJSON_Delete(o);
}

/* -------------------------------------------------------- through loading */

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp && fwrite(p, 1, n, fp) == n, "write %s", path);
    if (fp)
        fclose(fp);
}

/* s with the first `from` replaced by `to`, allocated; NULL if absent. */
static char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    if (!at)
        return NULL;
    size_t a = (size_t)(at - s), n = strlen(s) - strlen(from) + strlen(to);
    char *r = malloc(n + 1);
    memcpy(r, s, a);
    strcpy(r + a, to);
    strcat(r, at + strlen(from));
    return r;
}

static void expect(const char *label, lcsm_status want, const char *sub1, const char *sub2)
{
    lcsm_model *m = NULL;
    lcsm_status st = lcsm_model_load(g_be, g_dir, NULL, &m);
    CHECK(st == want, "%s: %s, want %s (%s)", label, lcsm_strerror(st), lcsm_strerror(want), lcsm_last_error());
    if (st != LCSM_OK) {
        CHECK(m == NULL, "%s: out set after an error", label);
        CHECK((!sub1 || has(lcsm_last_error(), sub1)) && (!sub2 || has(lcsm_last_error(), sub2)),
              "%s: message '%s' should name '%s' and '%s'", label, lcsm_last_error(), sub1 ? sub1 : "",
              sub2 ? sub2 : "");
    }
    lcsm_model_destroy(m);
}

/* config.json = the saved text with `from` replaced by `to`. */
static void config_case(const char *label, const char *from, const char *to, lcsm_status want, const char *sub)
{
    char *t = replace(g_cfg_text, from, to);
    CHECK(t != NULL, "%s: '%s' not in the saved config", label, from);
    if (!t)
        return;
    write_file(g_cfg, t, strlen(t));
    free(t);
    expect(label, want, "config.json", sub);
    write_file(g_cfg, g_cfg_text, strlen(g_cfg_text));
}

/* model.safetensors with its header text edited (`from` -> `to`) and its
 * length rewritten; the data stays where its offsets say. */
static void header_case(const char *label, const char *from, const char *to, lcsm_status want, const char *sub)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | g_st_bytes[i];
    char *h = malloc(hlen + 1);
    memcpy(h, g_st_bytes + 8, hlen);
    h[hlen] = 0;
    char *e = replace(h, from, to);
    CHECK(e != NULL, "%s: '%s' not in the header", label, from);
    if (e) {
        size_t n = strlen(e), data = g_st_n - 8 - hlen;
        unsigned char *out = malloc(8 + n + data);
        for (int i = 0; i < 8; i++)
            out[i] = (unsigned char)((uint64_t)n >> (8 * i));
        memcpy(out + 8, e, n);
        memcpy(out + 8 + n, g_st_bytes + 8 + hlen, data);
        write_file(g_st, out, 8 + n + data);
        free(out);
        expect(label, want, "model.safetensors", sub);
    }
    free(e);
    free(h);
    write_file(g_st, g_st_bytes, g_st_n);
}

static void test_loading(void)
{
    g_be = tu_cpu_backend("");
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.d_inner = 64;
    cfg.l_max = 64;
    cfg.filter_order = 8;
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_create_random(g_be, &cfg, 5, NULL, &m));
    CHECK_OK(lcsm_model_save(m, g_dir));
    lcsm_model_destroy(m);
    size_t n;
    g_cfg_text = (char *)tu_read_file(g_cfg, &n);
    g_st_bytes = tu_read_file(g_st, &g_st_n);
    if (!g_cfg_text || !g_st_bytes)
        return;
    expect("the saved model", LCSM_OK, NULL, NULL);

    /* A duplicate key: refused whichever value comes first. cJSON's lookup took
     * the first (d_model 16, loadable), Python takes the last. */
    config_case("config with d_model twice (16, then 32)", "\"d_model\":\t16", "\"d_model\": 16, \"d_model\": 32",
                LCSM_ERR_FORMAT, "'d_model' appears twice");
    config_case("config with d_model twice (16 both times)", "{", "{\"d_model\": 16, ", LCSM_ERR_FORMAT,
                "'d_model' appears twice");
    config_case("config with an unknown key twice", "{", "{\"x\": 1, \"x\": 2, ", LCSM_ERR_FORMAT,
                "'x' appears twice");
    config_case("config with a key twice in the nested layer object", "{",
                "{\"layer\": {\"l_max\": 64, \"l_max\": 64}, ", LCSM_ERR_FORMAT, "'l_max' appears twice in 'layer'");
    /* tie_word_embeddings: true or false only. */
    config_case("tie_word_embeddings 0", "\"tie_word_embeddings\":\ttrue", "\"tie_word_embeddings\": 0",
                LCSM_ERR_FORMAT, "tie_word_embeddings");
    config_case("tie_word_embeddings 1", "\"tie_word_embeddings\":\ttrue", "\"tie_word_embeddings\": 1",
                LCSM_ERR_FORMAT, "tie_word_embeddings");
    config_case("tie_word_embeddings \"true\"", "\"tie_word_embeddings\":\ttrue",
                "\"tie_word_embeddings\": \"true\"", LCSM_ERR_FORMAT, "tie_word_embeddings");
    config_case("tie_word_embeddings null", "\"tie_word_embeddings\":\ttrue", "\"tie_word_embeddings\": null",
                LCSM_ERR_FORMAT, "tie_word_embeddings");
    config_case("tie_word_embeddings false", "\"tie_word_embeddings\":\ttrue", "\"tie_word_embeddings\": false",
                LCSM_ERR_UNSUPPORTED, "tie_word_embeddings");
    config_case("tie_word_embeddings absent", "\"tie_word_embeddings\":\ttrue", "\"tie_word_embeddings_\": 1",
                LCSM_OK, NULL);

    /* The header: a tensor twice keeps its message; a key twice inside an
     * entry or in __metadata__ is refused too. */
    header_case("header with a tensor twice", "{",
                "{\"backbone.ln_f.bias\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},", LCSM_ERR_FORMAT,
                "tensor 'backbone.ln_f.bias' appears twice");
    header_case("header entry with dtype twice", "\"dtype\":\"F32\"", "\"dtype\":\"F16\",\"dtype\":\"F32\"",
                LCSM_ERR_FORMAT, "'dtype' appears twice in '");
    header_case("header with a __metadata__ key twice", "\"format\":\"pt\"", "\"format\":\"pt\",\"format\":\"np\"",
                LCSM_ERR_FORMAT, "'format' appears twice in '__metadata__'");
    lcsm_backend_destroy(g_be);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lcsm_test_json_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_cfg, sizeof g_cfg, "%s/config.json", g_dir);
    snprintf(g_st, sizeof g_st, "%s/model.safetensors", g_dir);
    test_helper();
    test_loading();
    free(g_cfg_text);
    free(g_st_bytes);
    tu_rm_rf(g_dir);
    return tu_finish("test_json");
}
