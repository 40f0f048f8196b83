/*
 * Hostile model files: lcsm_model_load must answer every malformed, truncated
 * or inconsistent config.json / model.safetensors with the right status and a
 * message (lcsm_last_error(), the backend's last error), clear *out, never crash
 * (run it under valgrind too), and leave the backend usable.
 *
 * A small valid model is written with lcsm_model_save; the test reads its
 * tensors back (st_open, white-box) into its own list and writes variants with
 * its own small safetensors writer, so every header field can be set to
 * anything. Also: F16 / BF16 tensors (decoders on known bit patterns and over
 * all 65536 patterns against an independent decoder; models stored in half
 * precision give the logits of the F32 model with the same rounded weights),
 * the "model." / "hyena." prefixes, and shapes with dropped unit dimensions.
 */
#include "testutil.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t g_rng;
static lcsm_backend *g_be;
static char g_root[256], g_case[512], g_cfg_path[600], g_st_path[600];
static int g_verbose;

/* ------------------------------------------------------------ file helpers */

static int has(const char *hay, const char *needle) { return hay && needle && strstr(hay, needle) != NULL; }

static unsigned char *find_bytes(unsigned char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(p + i, needle, k))
            return p + i;
    return NULL;
}

static void write_all(const char *path, const void *buf, size_t n)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL, "cannot write %s: %s", path, strerror(errno));
    if (!fp)
        return;
    CHECK(fwrite(buf, 1, n, fp) == n, "short write to %s", path);
    fclose(fp);
}

/* A fresh, empty case directory. */
static void fresh_case(void)
{
    tu_rm_rf(g_case);
    CHECK(mkdir(g_case, 0700) == 0, "mkdir %s: %s", g_case, strerror(errno));
}

/* ----------------------------------------------------- a growable string */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        if (!b->p) {
            b->cap = 1024;
            b->p = malloc(b->cap);
            b->n = 0;
        }
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
}

/* ------------------------------------------ the test's safetensors writer */

typedef struct tensor {
    char name[256];
    char dtype[24];
    int ndim;
    long long shape[12];
    unsigned char *data; /* written in list order, back to back */
    size_t nbytes;
    int off_given;        /* 1: write off[] as data_offsets instead of the real place */
    long long off[2];
    char raw[256];        /* non-empty: the entry's whole JSON value */
} tensor;

typedef struct tset {
    int n;
    tensor *t;
} tset;

static tset tset_clone(const tset *s)
{
    tset c = {s->n, calloc((size_t)s->n + 4, sizeof(tensor))};
    for (int i = 0; i < s->n; i++) {
        c.t[i] = s->t[i];
        c.t[i].data = malloc(s->t[i].nbytes + 1);
        memcpy(c.t[i].data, s->t[i].data, s->t[i].nbytes);
    }
    return c;
}

static void tset_free(tset *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->t[i].data);
    free(s->t);
    s->t = NULL;
    s->n = 0;
}

/* Gives tensor t another dtype of esize bytes per element, keeping its shape:
 * the data is cut or zero-extended to numel * esize bytes. */
static void set_dtype(tensor *t, const char *dtype, size_t esize)
{
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= (size_t)t->shape[d];
    size_t nb = numel * esize;
    t->data = realloc(t->data, nb + 1);
    if (nb > t->nbytes)
        memset(t->data + t->nbytes, 0, nb - t->nbytes);
    t->nbytes = nb;
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
}

static int tset_find(const tset *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name))
            return i;
    CHECK(0, "test bug: no tensor '%s' in the saved model", name);
    return 0;
}

/* Appends a copy of tensor i (room for 4 extra entries was reserved). */
static tensor *tset_dup(tset *s, int i)
{
    tensor *t = &s->t[s->n++];
    *t = s->t[i];
    t->data = malloc(t->nbytes + 1);
    memcpy(t->data, s->t[i].data, t->nbytes);
    return t;
}

/* Builds the whole file in memory: header (names with `prefix`), padded to 8
 * bytes with spaces if `pad`, then the data. */
static unsigned char *st_build(const tset *s, const char *prefix, int pad, const char *meta, size_t *size)
{
    sbuf h = {0};
    sb_printf(&h, "{");
    int first = 1;
    if (meta) {
        sb_printf(&h, "\"__metadata__\":%s", meta);
        first = 0;
    }
    size_t off = 0, total = 0;
    for (int i = 0; i < s->n; i++) {
        const tensor *t = &s->t[i];
        sb_printf(&h, "%s\"%s%s\":", first ? "" : ",", prefix, t->name);
        first = 0;
        if (t->raw[0]) {
            sb_printf(&h, "%s", t->raw);
        } else {
            sb_printf(&h, "{\"dtype\":\"%s\",\"shape\":[", t->dtype);
            for (int d = 0; d < t->ndim; d++)
                sb_printf(&h, "%s%lld", d ? "," : "", t->shape[d]);
            long long b = t->off_given ? t->off[0] : (long long)off;
            long long e = t->off_given ? t->off[1] : (long long)(off + t->nbytes);
            sb_printf(&h, "],\"data_offsets\":[%lld,%lld]}", b, e);
        }
        off += t->nbytes;
    }
    sb_printf(&h, "}");
    while (pad && h.n % 8)
        sb_printf(&h, " ");
    total = 8 + h.n + off;
    unsigned char *buf = malloc(total);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    memcpy(buf + 8, h.p, h.n);
    size_t at = 8 + h.n;
    for (int i = 0; i < s->n; i++) {
        memcpy(buf + at, s->t[i].data, s->t[i].nbytes);
        at += s->t[i].nbytes;
    }
    free(h.p);
    *size = total;
    return buf;
}

static void st_write(const char *path, const tset *s, const char *prefix)
{
    size_t n;
    unsigned char *buf = st_build(s, prefix, 1, "{\"format\":\"pt\"}", &n);
    write_all(path, buf, n);
    free(buf);
}

/* Reads a safetensors file written by lcsm_model_save into a tensor list. */
static int tset_read(const char *path, tset *out)
{
    st_file f;
    char err[256];
    lcsm_status st = st_open(path, &f, err, sizeof err);
    CHECK(st == LCSM_OK, "st_open(%s): %s", path, err);
    if (st != LCSM_OK)
        return -1;
    out->n = f.n;
    out->t = calloc((size_t)f.n + 4, sizeof(tensor));
    for (int i = 0; i < f.n; i++) {
        tensor *t = &out->t[i];
        snprintf(t->name, sizeof t->name, "%s", f.t[i].name);
        CHECK(f.t[i].dtype == ST_F32, "saved tensor %s is not F32", f.t[i].name);
        snprintf(t->dtype, sizeof t->dtype, "F32");
        t->ndim = f.t[i].ndim;
        for (int d = 0; d < t->ndim; d++)
            t->shape[d] = f.t[i].shape[d];
        t->nbytes = f.t[i].end - f.t[i].begin;
        t->data = malloc(t->nbytes + 1);
        CHECK_OK(st_read_raw(&f, &f.t[i], t->data, err, sizeof err));
    }
    /* List order = data order (our writer puts the data in list order). */
    size_t *begin = malloc((size_t)f.n * sizeof *begin);
    for (int i = 0; i < f.n; i++)
        begin[i] = f.t[i].begin;
    for (int i = 1; i < out->n; i++)
        for (int j = i; j > 0 && begin[j - 1] > begin[j]; j--) {
            tensor tmp = out->t[j];
            out->t[j] = out->t[j - 1];
            out->t[j - 1] = tmp;
            size_t b = begin[j];
            begin[j] = begin[j - 1];
            begin[j - 1] = b;
        }
    free(begin);
    st_close(&f);
    return 0;
}

/* -------------------------------------------------------- config writer */

typedef struct kv {
    const char *key, *val;
} kv;

static const kv g_cfg_fields[] = {
    {"model_type", "\"hyenadna\""}, {"d_model", "16"},         {"n_layer", "2"},
    {"d_inner", "64"},              {"vocab_size", "12"},      {"pad_vocab_size_multiple", "8"},
    {"max_seq_len", "64"},          {"emb_dim", "5"},          {"filter_order", "8"},
    {"num_inner_mlps", "2"},        {"short_filter_order", "3"}, {"hyena_order", "2"},
    {"activation_freq", "1"},       {"layer_norm_epsilon", "1e-05"}, {"tie_word_embeddings", "true"},
};

/* The config of the test model with `key` set to the raw JSON `val` (NULL:
 * left out; a key not in the list is added). */
static char *config_text(const char *key, const char *val)
{
    sbuf b = {0};
    sb_printf(&b, "{\n");
    int found = 0, first = 1;
    for (size_t i = 0; i < sizeof g_cfg_fields / sizeof g_cfg_fields[0]; i++) {
        const char *v = g_cfg_fields[i].val;
        if (key && !strcmp(key, g_cfg_fields[i].key)) {
            found = 1;
            v = val;
        }
        if (!v)
            continue;
        sb_printf(&b, "%s  \"%s\": %s", first ? "" : ",\n", g_cfg_fields[i].key, v);
        first = 0;
    }
    if (key && !found && val)
        sb_printf(&b, ",\n  \"%s\": %s", key, val);
    sb_printf(&b, "\n}\n");
    return b.p;
}

static void write_config(const char *key, const char *val)
{
    char *t = config_text(key, val);
    write_all(g_cfg_path, t, strlen(t));
    free(t);
}

/* --------------------------------------------------------------- checks */

static tset g_good;
static unsigned char *g_good_bytes;
static size_t g_good_size;
static float *g_ref; /* logits of the saved model on g_tok */
static size_t g_nlog;
enum { TB = 2, TL = 37 };
static int32_t g_tok[TB * TL];

/* Loads the case directory; checks the status, *out, the messages. Returns the
 * model on success (caller destroys), NULL otherwise. */
static lcsm_model *load_case(const char *label, lcsm_status want, const char *substr, const lcsm_model_options *opt)
{
    lcsm_algo dummy;
    lcsm_algo_from_name("__probe__", &dummy); /* a known message to see it replaced */
    lcsm_model *m = (lcsm_model *)&dummy;
    lcsm_status st = lcsm_model_load(g_be, g_case, opt, &m);
    CHECK(st == want, "%s: load -> %s, want %s (%s)", label, lcsm_strerror(st), lcsm_strerror(want),
          lcsm_last_error());
    if (g_verbose || st != want)
        printf("  %-44s %-22s %s\n", label, lcsm_strerror(st), st ? lcsm_last_error() : "");
    if (st != LCSM_OK) {
        const char *msg = lcsm_last_error();
        CHECK(m == NULL, "%s: *out not cleared on failure", label);
        CHECK(msg[0] && !has(msg, "__probe__"), "%s: no message of its own ('%s')", label, msg);
        CHECK(!strcmp(msg, lcsm_backend_last_error(g_be)), "%s: backend message '%s' != '%s'", label,
              lcsm_backend_last_error(g_be), msg);
        if (substr)
            CHECK(has(msg, substr), "%s: message '%s' does not name '%s'", label, msg, substr);
        return NULL;
    }
    CHECK(m != NULL && m != (lcsm_model *)&dummy, "%s: OK but no model", label);
    return m != (lcsm_model *)&dummy ? m : NULL;
}

static void expect_load(const char *label, lcsm_status want, const char *substr)
{
    lcsm_model_destroy(load_case(label, want, substr, NULL));
}

/* Loads and compares the logits with `ref` (the saved model's when NULL). */
static void expect_same(const char *label, const float *ref, double tol)
{
    lcsm_model *m = load_case(label, LCSM_OK, NULL, NULL);
    if (!m)
        return;
    float *got = malloc(g_nlog * sizeof *got);
    CHECK_OK(lcsm_model_forward(m, g_tok, TB, TL, got));
    double e = tu_rel_err_f(got, ref ? ref : g_ref, g_nlog);
    CHECK(e <= tol, "%s: logits differ by %.3g (tolerance %.1g)", label, e, tol);
    free(got);
    lcsm_model_destroy(m);
}

/* The case directory with the good config and the given safetensors bytes. */
static void case_bytes(const unsigned char *buf, size_t n)
{
    fresh_case();
    write_config(NULL, NULL);
    write_all(g_st_path, buf, n);
}

static void case_tset(const tset *s, const char *prefix)
{
    fresh_case();
    write_config(NULL, NULL);
    st_write(g_st_path, s, prefix);
}

static void set_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* ------------------------------------------------------------ the cases */

static void test_missing_files(void)
{
    char p[700];
    snprintf(p, sizeof p, "%s/does_not_exist", g_root);
    lcsm_model *m = (lcsm_model *)&m;
    CHECK_STATUS(lcsm_model_load(g_be, p, NULL, &m), LCSM_ERR_IO);
    CHECK(m == NULL && *lcsm_last_error(), "missing dir: out %p, message '%s'", (void *)m, lcsm_last_error());

    fresh_case();
    expect_load("empty directory", LCSM_ERR_IO, "config.json");
    write_config(NULL, NULL);
    expect_load("missing model.safetensors", LCSM_ERR_IO, "model.safetensors");
    fresh_case();
    write_all(g_st_path, g_good_bytes, g_good_size);
    expect_load("missing config.json", LCSM_ERR_IO, "config.json");
    /* The directory is a regular file. */
    snprintf(p, sizeof p, "%s/plainfile", g_root);
    write_all(p, "x", 1);
    m = (lcsm_model *)&m;
    CHECK_STATUS(lcsm_model_load(g_be, p, NULL, &m), LCSM_ERR_IO);
    CHECK(m == NULL, "dir is a file: out not cleared");
    unlink(p);
    /* model.safetensors / config.json are directories. */
    fresh_case();
    write_config(NULL, NULL);
    CHECK(mkdir(g_st_path, 0700) == 0, "mkdir");
    expect_load("model.safetensors is a directory", LCSM_ERR_IO, "model.safetensors");
    fresh_case();
    write_all(g_st_path, g_good_bytes, g_good_size);
    CHECK(mkdir(g_cfg_path, 0700) == 0, "mkdir");
    /* Regression: on ext4 fopen() of a directory succeeds and ftell() after
     * SEEK_END gives LLONG_MAX; the reader must refuse non-regular files. */
    expect_load("config.json is a directory", LCSM_ERR_IO, "config.json");
    /* The good pair loads (the test's own config writer is right). */
    fresh_case();
    write_config(NULL, NULL);
    write_all(g_st_path, g_good_bytes, g_good_size);
    expect_same("good files", NULL, 0);
}

static void test_config(void)
{
    fresh_case();
    write_all(g_st_path, g_good_bytes, g_good_size);
    struct {
        const char *label, *key, *val, *substr;
        lcsm_status want;
    } cases[] = {
        {"d_model -5", "d_model", "-5", "d_model", LCSM_ERR_FORMAT},
        {"d_model 0", "d_model", "0", "d_model", LCSM_ERR_FORMAT},
        {"d_model 1.5", "d_model", "1.5", "d_model", LCSM_ERR_FORMAT},
        {"d_model \"abc\"", "d_model", "\"abc\"", "d_model", LCSM_ERR_FORMAT},
        {"d_model \"16\"", "d_model", "\"16\"", "d_model", LCSM_ERR_FORMAT},
        {"d_model true", "d_model", "true", "d_model", LCSM_ERR_FORMAT},
        {"d_model [16]", "d_model", "[16]", "d_model", LCSM_ERR_FORMAT},
        {"d_model {}", "d_model", "{}", "d_model", LCSM_ERR_FORMAT},
        {"d_model null", "d_model", "null", "d_model", LCSM_ERR_FORMAT},
        {"d_model 1e400 (inf)", "d_model", "1e400", "d_model", LCSM_ERR_FORMAT},
        {"d_model -1e400 (-inf)", "d_model", "-1e400", "d_model", LCSM_ERR_FORMAT},
        {"d_model 2^16+1", "d_model", "65537", "d_model", LCSM_ERR_FORMAT},
        {"d_model 4294967312 (2^32+16)", "d_model", "4294967312", "d_model", LCSM_ERR_FORMAT},
        {"missing d_model", "d_model", NULL, "d_model", LCSM_ERR_FORMAT},
        {"missing n_layer", "n_layer", NULL, "n_layer", LCSM_ERR_FORMAT},
        {"missing vocab_size", "vocab_size", NULL, "vocab_size", LCSM_ERR_FORMAT},
        {"missing max_seq_len", "max_seq_len", NULL, "max_seq_len", LCSM_ERR_FORMAT},
        {"max_seq_len 1e30", "max_seq_len", "1e30", "max_seq_len", LCSM_ERR_FORMAT},
        {"max_seq_len 2^24+1", "max_seq_len", "16777217", "max_seq_len", LCSM_ERR_FORMAT},
        {"max_seq_len -64", "max_seq_len", "-64", "max_seq_len", LCSM_ERR_FORMAT},
        {"n_layer 1e400", "n_layer", "1e400", "n_layer", LCSM_ERR_FORMAT},
        {"n_layer 0", "n_layer", "0", "n_layer", LCSM_ERR_FORMAT},
        {"vocab_size 0", "vocab_size", "0", "vocab_size", LCSM_ERR_FORMAT},
        {"pad_vocab_size_multiple 0", "pad_vocab_size_multiple", "0", "pad_vocab_size_multiple", LCSM_ERR_FORMAT},
        {"num_inner_mlps 7", "num_inner_mlps", "7", "num_inner_mlps", LCSM_ERR_FORMAT},
        {"num_inner_mlps -1", "num_inner_mlps", "-1", "num_inner_mlps", LCSM_ERR_FORMAT},
        {"emb_dim 1e400", "emb_dim", "1e400", "emb_dim", LCSM_ERR_FORMAT},
        {"layer_norm_epsilon 1e400", "layer_norm_epsilon", "1e400", "layer_norm_epsilon", LCSM_ERR_FORMAT},
        {"layer_norm_epsilon -1", "layer_norm_epsilon", "-1", "layer_norm_epsilon", LCSM_ERR_FORMAT},
        {"layer_norm_epsilon 0", "layer_norm_epsilon", "0", "layer_norm_epsilon", LCSM_ERR_FORMAT},
        {"layer_norm_epsilon \"x\"", "layer_norm_epsilon", "\"x\"", "layer_norm_epsilon", LCSM_ERR_FORMAT},
        {"activation_freq -1e400", "activation_freq", "-1e400", "activation_freq", LCSM_ERR_FORMAT},
        {"activation_freq 1e7", "activation_freq", "1e7", "activation_freq", LCSM_ERR_FORMAT},
        {"hyena_order 3", "hyena_order", "3", "hyena_order", LCSM_ERR_UNSUPPORTED},
        {"hyena_order 17", "hyena_order", "17", "hyena_order", LCSM_ERR_FORMAT},
        {"short_filter_order 4", "short_filter_order", "4", "short_filter_order", LCSM_ERR_UNSUPPORTED},
        {"tie_word_embeddings false", "tie_word_embeddings", "false", "tie_word_embeddings", LCSM_ERR_UNSUPPORTED},
        /* Valid configs that disagree with the tensors. */
        {"d_model 32 (tensors: 16)", "d_model", "32", "word_embeddings", LCSM_ERR_SHAPE},
        {"d_model 8 (tensors: 16)", "d_model", "8", "word_embeddings", LCSM_ERR_SHAPE},
        {"d_inner 32 (tensors: 64)", "d_inner", "32", "fc1", LCSM_ERR_SHAPE},
        {"max_seq_len 128 (tensors: 64)", "max_seq_len", "128", "pos_emb", LCSM_ERR_SHAPE},
        {"vocab_size 20 (tensors: 16 rows)", "vocab_size", "20", "word_embeddings", LCSM_ERR_SHAPE},
        {"emb_dim 3 (tensors: 5)", "emb_dim", "3", "pos_emb", LCSM_ERR_SHAPE},
        {"filter_order 16 (tensors: 8)", "filter_order", "16", "implicit_filter", LCSM_ERR_SHAPE},
        {"num_inner_mlps 1 (tensors: 2)", "num_inner_mlps", "1", "implicit_filter", LCSM_ERR_SHAPE},
        {"num_inner_mlps 3 (tensors: 2)", "num_inner_mlps", "3", "implicit_filter", LCSM_ERR_SHAPE},
        {"n_layer 3 (tensors: 2)", "n_layer", "3", "layers.2", LCSM_ERR_MISSING_TENSOR},
        {"n_layer 1 (tensors: 2)", "n_layer", "1", "layers.1", LCSM_ERR_SHAPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_config(cases[i].key, cases[i].val);
        char label[96];
        snprintf(label, sizeof label, "config %s", cases[i].label);
        expect_load(label, cases[i].want, cases[i].substr);
        /* Errors name the file. */
        if (cases[i].want == LCSM_ERR_FORMAT || cases[i].want == LCSM_ERR_UNSUPPORTED)
            CHECK(has(lcsm_last_error(), "config.json"), "%s: message does not name config.json", label);
    }
    const struct {
        const char *label, *text;
    } raw[] = {
        {"config not JSON", "this is not json"},
        {"config JSON array", "[16, 2, 64]"},
        {"config JSON string", "\"d_model\""},
        {"config JSON number", "16"},
        {"config empty file", ""},
        {"config only whitespace", " \n\t "},
        {"config truncated object", "{\"d_model\": 16, \"n_layer\": 2,"},
        {"config NUL inside", "{\"d_model\": 16\0, \"n_layer\": 2}"},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        size_t len = strlen(raw[i].text);
        if (has(raw[i].label, "NUL"))
            len = 30;
        write_all(g_cfg_path, raw[i].text, len);
        expect_load(raw[i].label, LCSM_ERR_FORMAT, "config.json");
    }
    /* A valid object followed by junk. */
    {
        char *t = config_text(NULL, NULL);
        sbuf b = {0};
        sb_printf(&b, "%s}} trailing junk", t);
        write_all(g_cfg_path, b.p, b.n);
        free(t);
        free(b.p);
        /* Regression: cJSON stops after the first value; what follows must be
         * refused, not ignored. */
        expect_load("config object followed by junk", LCSM_ERR_FORMAT, "config.json");
    }
    /* A config larger than the 16 MiB limit. */
    {
        size_t n = (17u << 20);
        char *big = malloc(n);
        memset(big, ' ', n);
        big[0] = '{';
        big[n - 1] = '}';
        write_all(g_cfg_path, big, n);
        free(big);
        expect_load("config of 17 MiB", LCSM_ERR_FORMAT, "config.json");
    }
    /* Accepted variants: unknown extra keys, the safari nesting ("layer": {l_max,
     * emb_dim, filter_order, order}), d_inner derived from d_model, vocab_size 13
     * (still 16 padded rows), the optional floats null. */
    write_config("some_unknown_key", "[1, {\"x\": null}]");
    expect_same("config with an unknown key", NULL, 0);
    {
        const char *safari = "{\"d_model\": 16, \"n_layer\": 2, \"vocab_size\": 12, \"pad_vocab_size_multiple\": 8,"
                             " \"num_inner_mlps\": 2, \"layer_norm_epsilon\": 1e-5,"
                             " \"layer\": {\"l_max\": 64, \"emb_dim\": 5, \"filter_order\": 8, \"order\": 2}}";
        write_all(g_cfg_path, safari, strlen(safari));
        expect_same("config in safari's nested form", NULL, 0);
        const char *safari3 = "{\"d_model\": 16, \"n_layer\": 2, \"vocab_size\": 12, \"max_seq_len\": 64,"
                              " \"layer\": {\"order\": 3}}";
        write_all(g_cfg_path, safari3, strlen(safari3));
        expect_load("config safari layer.order 3", LCSM_ERR_UNSUPPORTED, "hyena_order");
    }
    write_config("d_inner", NULL);
    expect_same("config without d_inner (4*d_model)", NULL, 0);
    write_config("vocab_size", "13");
    {
        lcsm_model *m = load_case("config vocab_size 13 (16 padded rows)", LCSM_OK, NULL, NULL);
        lcsm_model_info info;
        if (m && lcsm_model_get_info(m, &info) == LCSM_OK)
            CHECK(info.config.vocab_size == 13 && info.n_vocab == 16, "vocab %d, n_vocab %d", info.config.vocab_size,
                  info.n_vocab);
        lcsm_model_destroy(m);
    }
    write_config("activation_freq", "null");
    expect_same("config activation_freq null (default)", NULL, 0);
}

/* Byte-level damage to the safetensors file. */
static void test_st_bytes(void)
{
    const size_t n = g_good_size;
    unsigned char *b = malloc(n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | g_good_bytes[i];
    const size_t cuts[] = {0, 1, 7, 8, 9, 100, 8 + (size_t)hlen - 1, 8 + (size_t)hlen, 8 + (size_t)hlen + 1, n / 2,
                           n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "truncated to %zu of %zu bytes", cuts[i], n);
        case_bytes(g_good_bytes, cuts[i]);
        /* Cut inside the header: the message names the file; after it, the
         * tensor whose data is missing. */
        expect_load(label, LCSM_ERR_FORMAT, cuts[i] < 8 + hlen ? "model.safetensors" : "tensor '");
    }
    const struct {
        const char *label;
        uint64_t v;
    } lens[] = {
        {"header length = file size - 7", (uint64_t)n - 7},
        {"header length = file size", (uint64_t)n},
        {"header length 2^63", 1ull << 63},
        {"header length 2^64-1", ~0ull},
        {"header length 2^32+actual", (1ull << 32) + hlen},
        {"header length 0", 0},
        {"header length 1", 1},
        {"header length - 1 (cuts the JSON)", hlen - 1},
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memcpy(b, g_good_bytes, n);
        set_u64(b, lens[i].v);
        case_bytes(b, n);
        expect_load(lens[i].label, LCSM_ERR_FORMAT, "model.safetensors");
    }
    /* Header length + 8 (takes 8 data bytes into the header): the JSON is
     * followed by binary junk. */
    memcpy(b, g_good_bytes, n);
    set_u64(b, hlen + 8);
    case_bytes(b, n);
    {
        lcsm_model *m = load_case("header length + 8 (binary after the JSON)", LCSM_ERR_FORMAT, NULL, NULL);
        lcsm_model_destroy(m);
    }
    /* Junk after the JSON object, inside the header. The safetensors format
     * allows only trailing spaces (the reference reader refuses anything else). */
    {
        size_t end = 8 + (size_t)hlen;
        while (end > 8 && g_good_bytes[end - 1] == ' ')
            end--;
        const char *junk = "} garbage";
        size_t jl = strlen(junk), nh = end - 8 + jl;
        nh = (nh + 7) / 8 * 8;
        size_t nn = 8 + nh + (n - 8 - (size_t)hlen);
        unsigned char *f = malloc(nn);
        set_u64(f, nh);
        memcpy(f + 8, g_good_bytes + 8, end - 8);
        memcpy(f + end, junk, jl);
        memset(f + end + jl, ' ', 8 + nh - end - jl);
        memcpy(f + 8 + nh, g_good_bytes + 8 + hlen, n - 8 - (size_t)hlen);
        case_bytes(f, nn);
        /* Regression: the format pads the header with spaces only. */
        expect_load("header JSON followed by junk", LCSM_ERR_FORMAT, "model.safetensors");
        free(f);
    }
    /* Not JSON / not an object. */
    memcpy(b, g_good_bytes, n);
    b[8] = 'x';
    case_bytes(b, n);
    expect_load("header not JSON", LCSM_ERR_FORMAT, "model.safetensors");
    const char *non_objects[] = {"[]      ", "\"text\"  ", "12345678", "null    ", "        "};
    for (size_t i = 0; i < sizeof non_objects / sizeof non_objects[0]; i++) {
        unsigned char f[16 + 64];
        set_u64(f, 8);
        memcpy(f + 8, non_objects[i], 8);
        memset(f + 16, 0, 64);
        case_bytes(f, sizeof f);
        char label[64];
        snprintf(label, sizeof label, "header '%s'", non_objects[i]);
        expect_load(label, LCSM_ERR_FORMAT, "model.safetensors");
    }
    /* Empty object: nothing to find. */
    {
        unsigned char f[16];
        set_u64(f, 8);
        memcpy(f + 8, "{}      ", 8);
        case_bytes(f, sizeof f);
        expect_load("header {} (no tensors)", LCSM_ERR_MISSING_TENSOR, "word_embeddings");
    }
    free(b);
}

/* Damage to the header's entries, through the test's writer. */
static void test_st_entries(void)
{
    const char *emb = "backbone.embeddings.word_embeddings.weight";
    const char *fc2b = "backbone.layers.1.mlp.fc2.bias";
    const char *inw = "backbone.layers.0.mixer.in_proj.weight";
    tset s;
    int k;
    char label[128];

    /* The writer itself: the unmodified list loads to the same model, also
     * without padding (unaligned data), reversed, with extra tensors, and
     * with junk bytes between tensors. */
    s = tset_clone(&g_good);
    case_tset(&s, "");
    expect_same("rewritten by the test's writer", NULL, 0);
    {
        size_t n;
        unsigned char *buf = st_build(&s, "", 0, NULL, &n);
        case_bytes(buf, n);
        free(buf);
        expect_same("unpadded header (data not 8-aligned)", NULL, 0);
    }
    for (int i = 0; i < s.n / 2; i++) {
        tensor t = s.t[i];
        s.t[i] = s.t[s.n - 1 - i];
        s.t[s.n - 1 - i] = t;
    }
    case_tset(&s, "");
    expect_same("tensors in reverse order", NULL, 0);
    tset_free(&s);
    s = tset_clone(&g_good);
    tensor *x = tset_dup(&s, tset_find(&s, inw));
    snprintf(x->name, sizeof x->name, "lm_head.weight");
    x = tset_dup(&s, tset_find(&s, fc2b));
    snprintf(x->name, sizeof x->name, "some.int.tensor");
    snprintf(x->dtype, sizeof x->dtype, "I32");
    x = tset_dup(&s, tset_find(&s, fc2b));
    snprintf(x->name, sizeof x->name, "some.f64.tensor");
    snprintf(x->dtype, sizeof x->dtype, "F64");
    x->shape[0] /= 2;
    case_tset(&s, "");
    expect_same("extra tensors the model does not use", NULL, 0);
    tset_free(&s);

    /* dtype */
    /* dtype: unknown names are malformed files; known dtypes lcsm does not read
     * (with a byte count that agrees with the shape, so only the dtype is
     * wrong) are valid files this version does not handle. */
    const struct {
        const char *dtype;
        size_t esize;
        lcsm_status want;
    } dts[] = {
        {"Q7", 4, LCSM_ERR_FORMAT},         {"f32", 4, LCSM_ERR_FORMAT},         {"", 4, LCSM_ERR_FORMAT},
        {"F32 ", 4, LCSM_ERR_FORMAT},       {"I32", 4, LCSM_ERR_UNSUPPORTED},    {"U32", 4, LCSM_ERR_UNSUPPORTED},
        {"I8", 1, LCSM_ERR_UNSUPPORTED},    {"BOOL", 1, LCSM_ERR_UNSUPPORTED},   {"F8_E4M3", 1, LCSM_ERR_UNSUPPORTED},
        {"I64", 8, LCSM_ERR_UNSUPPORTED},   {"F64", 8, LCSM_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        s = tset_clone(&g_good);
        k = tset_find(&s, fc2b);
        set_dtype(&s.t[k], dts[i].dtype, dts[i].esize);
        case_tset(&s, "");
        snprintf(label, sizeof label, "dtype '%s'", dts[i].dtype);
        expect_load(label, dts[i].want, fc2b);
        tset_free(&s);
    }

    /* data_offsets */
    size_t data_size = 0;
    for (int i = 0; i < g_good.n; i++)
        data_size += g_good.t[i].nbytes;
    struct {
        const char *label;
        int which;   /* 0 first tensor, 1 last, 2 a middle one */
        long long db, de; /* added to the real offsets */
    } offs[] = {
        {"offsets past the end (last tensor +4)", 1, 4, 4},
        {"offsets past the end (first tensor moved to the end)", 0, (long long)data_size, (long long)data_size},
        {"offsets [b, e-4] (size < shape*dtype)", 2, 0, -4},
        {"offsets [b, e+4] (size > shape*dtype)", 2, 0, 4},
        {"offsets overlapping the previous tensor by 4", 2, -4, -4},
        {"offsets overlapping the next tensor by 4", 2, 4, 4},
        {"offsets reversed", 2, 0, 0},
        {"offsets of the last tensor at 2^62", 1, 1ll << 62, 1ll << 62},
        {"offsets negative", 0, -8, -8},
    };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        s = tset_clone(&g_good);
        int which = offs[i].which == 0 ? 0 : offs[i].which == 1 ? s.n - 1 : s.n / 2;
        long long b = 0;
        for (int j = 0; j < which; j++)
            b += (long long)s.t[j].nbytes;
        long long e = b + (long long)s.t[which].nbytes;
        s.t[which].off_given = 1;
        s.t[which].off[0] = b + offs[i].db;
        s.t[which].off[1] = e + offs[i].de;
        if (!strcmp(offs[i].label, "offsets reversed")) {
            s.t[which].off[0] = e;
            s.t[which].off[1] = b;
        }
        case_tset(&s, "");
        expect_load(offs[i].label, LCSM_ERR_FORMAT, s.t[which].name);
        tset_free(&s);
    }
    /* Two tensors with the very same offsets (one aliasing another's data). */
    s = tset_clone(&g_good);
    s.t[2].off_given = 1;
    s.t[2].off[0] = (long long)s.t[0].nbytes;
    s.t[2].off[1] = s.t[2].off[0] + (long long)s.t[2].nbytes;
    {
        /* t[1] and t[2] are both (D) vectors (ln_f weight and bias): t[2] points at t[1]'s bytes */
        CHECK(s.t[1].nbytes == s.t[2].nbytes, "test bug: tensors 1 and 2 differ in size");
        case_tset(&s, "");
        expect_load("two tensors on the same bytes", LCSM_ERR_FORMAT, "overlap");
    }
    tset_free(&s);
    /* Raw entries: bad shapes and offsets. */
    k = tset_find(&g_good, fc2b);
    long long kb = 0;
    for (int j = 0; j < k; j++)
        kb += (long long)g_good.t[j].nbytes;
    /* Raw entries ($B, $E: the tensor's real offsets). */
    const struct {
        const char *label, *tmpl;
    } raws[] = {
        {"shape [-16]", "{\"dtype\":\"F32\",\"shape\":[-16],\"data_offsets\":[$B,$E]}"},
        {"shape [16.5]", "{\"dtype\":\"F32\",\"shape\":[16.5],\"data_offsets\":[$B,$E]}"},
        {"shape [\"16\"]", "{\"dtype\":\"F32\",\"shape\":[\"16\"],\"data_offsets\":[$B,$E]}"},
        {"shape [null]", "{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[$B,$E]}"},
        {"shape [-4, -4]", "{\"dtype\":\"F32\",\"shape\":[-4,-4],\"data_offsets\":[$B,$E]}"},
        {"shape [1e400]", "{\"dtype\":\"F32\",\"shape\":[1e400],\"data_offsets\":[$B,$E]}"},
        {"shape with 9 dims", "{\"dtype\":\"F32\",\"shape\":[16,1,1,1,1,1,1,1,1],\"data_offsets\":[$B,$E]}"},
        {"shape 2^32 x 2^32 x 2^32 (elements overflow)",
         "{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[$B,$E]}"},
        {"shape 2^52 x 2^11 (bytes overflow)",
         "{\"dtype\":\"F32\",\"shape\":[4503599627370496,2048],\"data_offsets\":[$B,$E]}"},
        {"shape 2^62 (above 2^53)", "{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[$B,$E]}"},
        {"shape not an array", "{\"dtype\":\"F32\",\"shape\":16,\"data_offsets\":[$B,$E]}"},
        {"no shape", "{\"dtype\":\"F32\",\"data_offsets\":[$B,$E]}"},
        {"no dtype", "{\"shape\":[16],\"data_offsets\":[$B,$E]}"},
        {"dtype a number", "{\"dtype\":32,\"shape\":[16],\"data_offsets\":[$B,$E]}"},
        {"no data_offsets", "{\"dtype\":\"F32\",\"shape\":[16],\"x\":[$B,$E]}"},
        {"data_offsets with 3 entries", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[$B,$E,0]}"},
        {"data_offsets with 1 entry", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[$B]}"},
        {"data_offsets an object", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":{\"a\":$B,\"b\":$E}}"},
        {"data_offsets as strings", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[\"$B\",\"$E\"]}"},
        {"data_offsets not integers", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[$B.5,$E.5]}"},
        {"data_offsets end 1e400", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[$B,1e400]}"},
        {"data_offsets begin -1e400", "{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[-1e400,$E]}"},
        {"entry is a number", "$B"},
        {"entry is an array", "[$B,$E]"},
        {"entry is null", "null"},
        {"entry is a string", "\"F32\""},
    };
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        s = tset_clone(&g_good);
        char *o = s.t[k].raw;
        size_t left = sizeof s.t[k].raw;
        for (const char *p = raws[i].tmpl; *p && left > 24; p++) {
            int w;
            if (p[0] == '$' && (p[1] == 'B' || p[1] == 'E')) {
                w = snprintf(o, left, "%lld", p[1] == 'B' ? kb : kb + (long long)s.t[k].nbytes);
                p++;
            } else {
                *o = *p;
                o[1] = 0;
                w = 1;
            }
            o += w;
            left -= (size_t)w;
        }
        case_tset(&s, "");
        snprintf(label, sizeof label, "entry: %s", raws[i].label);
        expect_load(label, LCSM_ERR_FORMAT, fc2b);
        tset_free(&s);
    }
    /* Duplicate names: a second entry of the same name after all the others
     * (with its own bytes), and twice with the same bytes. */
    s = tset_clone(&g_good);
    x = tset_dup(&s, tset_find(&s, inw));
    case_tset(&s, "");
    expect_load("duplicate name (own bytes)", LCSM_ERR_FORMAT, inw);
    tset_free(&s);
    s = tset_clone(&g_good);
    x = tset_dup(&s, tset_find(&s, emb));
    case_tset(&s, "");
    expect_load("duplicate embedding name", LCSM_ERR_FORMAT, emb);
    tset_free(&s);
    /* Shape: same element count, other layout; a transposed (3D, D). */
    s = tset_clone(&g_good);
    k = tset_find(&s, inw);
    long long t0 = s.t[k].shape[0];
    s.t[k].shape[0] = s.t[k].shape[1];
    s.t[k].shape[1] = t0;
    case_tset(&s, "");
    expect_load("in_proj stored transposed (D, 3D)", LCSM_ERR_SHAPE, inw);
    tset_free(&s);
    s = tset_clone(&g_good);
    k = tset_find(&s, emb);
    s.t[k].ndim = 1;
    s.t[k].shape[0] = 16 * 16;
    case_tset(&s, "");
    expect_load("embedding stored flat (V*D)", LCSM_ERR_SHAPE, emb);
    tset_free(&s);
    /* Missing tensors: renamed (header length changes, the writer takes care). */
    const char *renames[] = {fc2b, emb, "backbone.ln_f.bias", "backbone.layers.0.mixer.filter_fn.pos_emb.z",
                             "backbone.layers.1.mixer.filter_fn.implicit_filter.6.weight",
                             "backbone.layers.0.mixer.filter_fn.modulation.deltas"};
    for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
        s = tset_clone(&g_good);
        k = tset_find(&s, renames[i]);
        snprintf(s.t[k].name, sizeof s.t[k].name, "%s_renamed", renames[i]);
        case_tset(&s, "");
        snprintf(label, sizeof label, "missing %s", renames[i]);
        expect_load(label, LCSM_ERR_MISSING_TENSOR, renames[i]);
        tset_free(&s);
    }
    /* Rename within the same header length (the brief's "keep the header
     * length"): the file is the good one byte for byte except one letter. */
    {
        unsigned char *b = malloc(g_good_size);
        memcpy(b, g_good_bytes, g_good_size);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--)
            hl = hl << 8 | b[i];
        unsigned char *hit = find_bytes(b + 8, (size_t)hl, "mlp.fc2.bias");
        CHECK(hit != NULL, "test bug: fc2.bias not in the saved header");
        if (hit)
            hit[4] = 'X'; /* "mlp.Xc2.bias" */
        case_bytes(b, g_good_size);
        expect_load("missing fc2.bias (renamed in place)", LCSM_ERR_MISSING_TENSOR, "fc2.bias");
        free(b);
    }
    /* Non-finite weights. */
    const struct {
        const char *label;
        float v;
        const char *name;
        int at;
    } bad_vals[] = {
        {"NaN weight", NAN, inw, 5},
        {"NaN in the embedding", NAN, emb, 0},
        {"+inf weight", INFINITY, fc2b, 15},
        {"-inf weight", -INFINITY, "backbone.layers.1.mixer.filter_fn.modulation.deltas", 3},
        {"NaN in pos_emb.t", NAN, "backbone.layers.1.mixer.filter_fn.pos_emb.t", 63},
    };
    for (size_t i = 0; i < sizeof bad_vals / sizeof bad_vals[0]; i++) {
        s = tset_clone(&g_good);
        k = tset_find(&s, bad_vals[i].name);
        memcpy(s.t[k].data + 4 * bad_vals[i].at, &bad_vals[i].v, 4);
        case_tset(&s, "");
        expect_load(bad_vals[i].label, LCSM_ERR_FORMAT, bad_vals[i].name);
        tset_free(&s);
    }
    /* The same as F16: 0x7C00 is inf, 0x7E00 NaN. */
    {
        s = tset_clone(&g_good);
        k = tset_find(&s, fc2b);
        snprintf(s.t[k].dtype, sizeof s.t[k].dtype, "F16");
        s.t[k].nbytes /= 2;
        memset(s.t[k].data, 0, s.t[k].nbytes);
        s.t[k].data[2 * 3] = 0x00;
        s.t[k].data[2 * 3 + 1] = 0x7e;
        case_tset(&s, "");
        expect_load("F16 NaN weight", LCSM_ERR_FORMAT, fc2b);
        s.t[k].data[2 * 3 + 1] = 0x7c;
        case_tset(&s, "");
        expect_load("F16 inf weight", LCSM_ERR_FORMAT, fc2b);
        tset_free(&s);
    }
    /* __metadata__ of any kind is ignored. */
    {
        s = tset_clone(&g_good);
        const char *metas[] = {"\"a string\"", "[1,2,3]", "{\"format\":\"pt\",\"x\":{\"y\":[]}}", "null"};
        for (size_t i = 0; i < 4; i++) {
            size_t n;
            unsigned char *buf = st_build(&s, "", 1, metas[i], &n);
            case_bytes(buf, n);
            free(buf);
            snprintf(label, sizeof label, "__metadata__ %s", metas[i]);
            expect_same(label, NULL, 0);
        }
        tset_free(&s);
    }
}

/* Checkpoint prefixes and shapes that differ only by unit dimensions. */
static void test_names_shapes(void)
{
    const char *prefixes[] = {"model.", "hyena.", "model.hyena."};
    char label[96];
    for (size_t i = 0; i < 3; i++) {
        case_tset(&g_good, prefixes[i]);
        snprintf(label, sizeof label, "prefix '%s' on every name", prefixes[i]);
        expect_same(label, NULL, 0);
    }
    const char *not_prefixes[] = {"other.", "Model.", "model"};
    for (size_t i = 0; i < 3; i++) {
        case_tset(&g_good, not_prefixes[i]);
        snprintf(label, sizeof label, "unknown prefix '%s'", not_prefixes[i]);
        expect_load(label, LCSM_ERR_MISSING_TENSOR, "word_embeddings");
    }
    /* Mixed: the embedding with "model.", everything else bare. */
    tset s = tset_clone(&g_good);
    int k = tset_find(&s, "backbone.embeddings.word_embeddings.weight");
    memmove(s.t[k].name + 6, s.t[k].name, strlen(s.t[k].name) + 1);
    memcpy(s.t[k].name, "model.", 6);
    case_tset(&s, "");
    expect_load("prefix only on the embedding", LCSM_ERR_MISSING_TENSOR, "model.backbone.ln_f");
    tset_free(&s);

    /* Unit dimensions: conv taps (3D, 3) instead of (3D, 1, 3), z (L, E),
     * t (L) and (1, 1, L, 1), freq (F), deltas (D), a bias as (1, D). */
    s = tset_clone(&g_good);
    for (int i = 0; i < s.n; i++) {
        tensor *t = &s.t[i];
        if (has(t->name, "short_filter.weight")) {
            t->ndim = 2;
            t->shape[1] = 3;
        } else if (has(t->name, "pos_emb.z")) {
            t->ndim = 2;
            t->shape[0] = t->shape[1];
            t->shape[1] = t->shape[2];
        } else if (has(t->name, "layers.0.mixer.filter_fn.pos_emb.t")) {
            t->ndim = 1;
            t->shape[0] = t->shape[1];
        } else if (has(t->name, "layers.1.mixer.filter_fn.pos_emb.t")) {
            long long L = t->shape[1];
            t->ndim = 4;
            t->shape[0] = 1;
            t->shape[1] = 1;
            t->shape[2] = L;
            t->shape[3] = 1;
        } else if (has(t->name, ".freq") || has(t->name, "deltas")) {
            t->shape[0] = t->shape[t->ndim - 1];
            t->ndim = 1;
        } else if (has(t->name, "fc2.bias")) {
            t->ndim = 2;
            t->shape[1] = t->shape[0];
            t->shape[0] = 1;
        }
    }
    case_tset(&s, "");
    expect_same("unit dimensions dropped or added", NULL, 0);
    tset_free(&s);
    /* freq is optional: without it, activation_freq fills it. It loads; the
     * model differs from the saved one (whose freq is randomised). */
    s = tset_clone(&g_good);
    k = tset_find(&s, "backbone.layers.0.mixer.filter_fn.implicit_filter.1.freq");
    snprintf(s.t[k].name, sizeof s.t[k].name, "unused.freq");
    case_tset(&s, "");
    expect_load("without layer 0's freq (optional)", LCSM_OK, NULL);
    tset_free(&s);
}

/* --------------------------------------------------------- half precision */

static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return s ? -v : v;
}

static double ref_bf16(uint16_t h)
{
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(m + 128, e - 134);
    return s ? -v : v;
}

/* Round to nearest even, finite inputs, in exact double arithmetic. */
static uint16_t to_f16(float f)
{
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (a < ldexp(1, -14)) /* subnormal range: units of 2^-24; 1024 is the smallest normal */
        return sign | (uint16_t)nearbyint(a * ldexp(1, 24));
    int k;
    frexp(a, &k); /* a = m 2^k, m in [0.5, 1) */
    int E = k - 1;
    double q = nearbyint(ldexp(a, 10 - E)); /* in [1024, 2048] */
    if (q == 2048) {
        q = 1024;
        E++;
    }
    if (E + 15 >= 31)
        return sign | 0x7c00;
    return sign | (uint16_t)((E + 15) << 10 | ((int)q - 1024));
}

static uint16_t to_bf16(float f)
{
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (a < ldexp(1, -126))
        return sign | (uint16_t)nearbyint(a * ldexp(1, 133));
    int k;
    frexp(a, &k);
    int E = k - 1;
    double q = nearbyint(ldexp(a, 7 - E)); /* in [128, 256] */
    if (q == 256) {
        q = 128;
        E++;
    }
    if (E + 127 >= 255)
        return sign | 0x7f80;
    return sign | (uint16_t)((E + 127) << 7 | ((int)q - 128));
}

static void test_half_decoders(void)
{
    const struct {
        uint16_t h;
        float want;
    } f16[] = {
        {0x3C00, 1.0f},     {0xC000, -2.0f},           {0x7BFF, 65504.0f},         {0x0001, 0x1p-24f},
        {0x03FF, 0x3FFp-24f}, {0x0400, 0x1p-14f},      {0x3555, 0x1.554p-2f},      {0x8001, -0x1p-24f},
        {0x0000, 0.0f},     {0x3800, 0.5f},            {0xFBFF, -65504.0f},        {0x0200, 0x1p-15f},
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
        float v = st_f16_to_f32(f16[i].h);
        CHECK(v == f16[i].want, "f16 0x%04X -> %a, want %a", f16[i].h, v, f16[i].want);
    }
    CHECK(isinf(st_f16_to_f32(0x7C00)) && st_f16_to_f32(0x7C00) > 0, "f16 0x7C00 is not +inf");
    CHECK(isinf(st_f16_to_f32(0xFC00)) && st_f16_to_f32(0xFC00) < 0, "f16 0xFC00 is not -inf");
    CHECK(isnan(st_f16_to_f32(0x7E00)) && isnan(st_f16_to_f32(0x7C01)), "f16 NaNs");
    CHECK(st_f16_to_f32(0x8000) == 0 && signbit(st_f16_to_f32(0x8000)), "f16 -0");
    const struct {
        uint16_t h;
        float want;
    } bf[] = {
        {0x3F80, 1.0f}, {0xC000, -2.0f}, {0x7F7F, 0x1.FEp127f}, {0x0080, 0x1p-126f}, {0x0001, 0x1p-133f},
        {0x3E80, 0.25f}, {0x0000, 0.0f},
    };
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++) {
        float v = st_bf16_to_f32(bf[i].h);
        CHECK(v == bf[i].want, "bf16 0x%04X -> %a, want %a", bf[i].h, v, bf[i].want);
    }
    CHECK(isinf(st_bf16_to_f32(0x7F80)) && st_bf16_to_f32(0xFF80) < 0 && isnan(st_bf16_to_f32(0x7FC0)),
          "bf16 inf/NaN");
    /* Every bit pattern against the independent decoders. */
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = st_f16_to_f32((uint16_t)h), r = (float)ref_f16((uint16_t)h);
        if (isnan(r) ? !isnan(a) : (a != r || signbit(a) != signbit(r))) {
            if (bad16++ < 5)
                fprintf(stderr, "  f16 0x%04X: %a, want %a\n", h, a, r);
        }
        a = st_bf16_to_f32((uint16_t)h);
        r = (float)ref_bf16((uint16_t)h);
        if (isnan(r) ? !isnan(a) : (a != r || signbit(a) != signbit(r))) {
            if (badbf++ < 5)
                fprintf(stderr, "  bf16 0x%04X: %a, want %a\n", h, a, r);
        }
    }
    CHECK(bad16 == 0, "%d of 65536 f16 patterns decode wrongly", bad16);
    CHECK(badbf == 0, "%d of 65536 bf16 patterns decode wrongly", badbf);
    /* The test's encoders round-trip every finite pattern (so the models below
     * store exactly the values the reference uses). */
    int badenc = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double r = ref_f16((uint16_t)h);
        if (isfinite(r) && to_f16((float)r) != h)
            badenc++;
        r = ref_bf16((uint16_t)h);
        if (isfinite(r) && to_bf16((float)r) != h)
            badenc++;
    }
    CHECK(badenc == 0, "test bug: %d patterns do not round-trip through the test's encoders", badenc);
    CHECK(to_f16(1.0f + 0x1p-11f) == 0x3C00 && to_f16(1.0f + 0x3p-11f) == 0x3C02 && to_f16(65520.0f) == 0x7C00,
          "test bug: f16 rounding");
}

/* Converts the listed tensors of `half` to F16 or BF16 and sets the same
 * tensors of `ref` (F32) to the rounded values. which: NULL = all. */
static void to_half(tset *half, tset *ref, const char *which, int bf16)
{
    for (int i = 0; i < half->n; i++) {
        tensor *t = &half->t[i], *r = &ref->t[i];
        if (which && strcmp(t->name, which))
            continue;
        size_t n = t->nbytes / 4;
        for (size_t j = 0; j < n; j++) {
            float v;
            memcpy(&v, t->data + 4 * j, 4);
            uint16_t h = bf16 ? to_bf16(v) : to_f16(v);
            float back = (float)(bf16 ? ref_bf16(h) : ref_f16(h));
            memcpy(r->data + 4 * j, &back, 4);
            t->data[2 * j] = (unsigned char)(h & 0xff);
            t->data[2 * j + 1] = (unsigned char)(h >> 8);
        }
        t->nbytes = 2 * n;
        snprintf(t->dtype, sizeof t->dtype, "%s", bf16 ? "BF16" : "F16");
    }
}

/* Loads the reference (F32, rounded) and the half file; the logits must be
 * equal, and differ from the saved model's (the rounding is real). */
static void half_case(const char *label, const char *which, int bf16, int mixed)
{
    tset half = tset_clone(&g_good), ref = tset_clone(&g_good);
    if (mixed) {
        /* every other tensor F16, the others BF16 and a few left F32 */
        for (int i = 0; i < half.n; i++) {
            if (i % 5 == 4)
                continue;
            to_half(&half, &ref, half.t[i].name, i % 2);
        }
    } else {
        to_half(&half, &ref, which, bf16);
    }
    case_tset(&ref, "");
    float *want = malloc(g_nlog * sizeof *want);
    lcsm_model *m = load_case("reference for a half-precision case", LCSM_OK, NULL, NULL);
    if (m) {
        CHECK_OK(lcsm_model_forward(m, g_tok, TB, TL, want));
        double e = tu_rel_err_f(want, g_ref, g_nlog);
        CHECK(e > 0 && e < 0.5, "%s: rounding changed the logits by %.3g (want > 0, small)", label, e);
        if (g_verbose)
            printf("  %-44s rounding changes the logits by %.2g\n", label, e);
        lcsm_model_destroy(m);
        case_tset(&half, "");
        expect_same(label, want, 0);
    }
    free(want);
    tset_free(&half);
    tset_free(&ref);
}

static void test_half_models(void)
{
    half_case("F16 embedding", "backbone.embeddings.word_embeddings.weight", 0, 0);
    half_case("BF16 embedding", "backbone.embeddings.word_embeddings.weight", 1, 0);
    half_case("F16 in_proj of layer 1", "backbone.layers.1.mixer.in_proj.weight", 0, 0);
    half_case("all tensors F16", NULL, 0, 0);
    half_case("all tensors BF16", NULL, 1, 0);
    half_case("F16, BF16 and F32 mixed", NULL, 0, 1);
    /* An F16 tensor whose byte count is that of F32: size check. */
    tset s = tset_clone(&g_good);
    int k = tset_find(&s, "backbone.ln_f.weight");
    snprintf(s.t[k].dtype, sizeof s.t[k].dtype, "F16");
    case_tset(&s, "");
    expect_load("F16 dtype with F32's byte count", LCSM_ERR_FORMAT, "backbone.ln_f.weight");
    tset_free(&s);
}

/* Random damage: never a crash, always a known status. */
static void test_fuzz(void)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | g_good_bytes[i];
    unsigned char *b = malloc(g_good_size);
    const char alphabet[] = "{}[]\",:0123456789-.eE \x00\xff" "abcFBI";
    int n_ok = 0, counts[16] = {0};
    const int N = 160;
    fresh_case();
    write_config(NULL, NULL);
    for (int it = 0; it < N; it++) {
        memcpy(b, g_good_bytes, g_good_size);
        size_t n = g_good_size;
        int kind = (int)(tu_next(&g_rng) % 4);
        int edits = 1 + (int)(tu_next(&g_rng) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = 8 + (size_t)(tu_next(&g_rng) % hlen);
            if (kind == 0)
                b[at] = (unsigned char)alphabet[tu_next(&g_rng) % (sizeof alphabet - 1)];
            else if (kind == 1)
                b[at] = (unsigned char)tu_next(&g_rng);
            else if (kind == 2)
                b[tu_next(&g_rng) % 8] = (unsigned char)tu_next(&g_rng); /* the length field */
            else
                n = 8 + (size_t)(tu_next(&g_rng) % (g_good_size - 8)); /* truncation */
        }
        write_all(g_st_path, b, n);
        lcsm_model *m = NULL;
        lcsm_status st = lcsm_model_load(g_be, g_case, NULL, &m);
        CHECK(st == LCSM_OK || st == LCSM_ERR_FORMAT || st == LCSM_ERR_MISSING_TENSOR || st == LCSM_ERR_SHAPE,
              "fuzz %d: unexpected %s (%s)", it, lcsm_strerror(st), lcsm_last_error());
        CHECK((st == LCSM_OK) == (m != NULL), "fuzz %d: status %s with model %p", it, lcsm_strerror(st), (void *)m);
        if (st != LCSM_OK)
            CHECK(*lcsm_last_error(), "fuzz %d: no message", it);
        counts[(unsigned)st & 15]++;
        n_ok += st == LCSM_OK;
        lcsm_model_destroy(m);
    }
    printf("  fuzzed safetensors: %d loads: %d ok, %d format, %d missing tensor, %d shape\n", N, counts[0],
           counts[LCSM_ERR_FORMAT], counts[LCSM_ERR_MISSING_TENSOR], counts[LCSM_ERR_SHAPE]);
    /* The config too. */
    char *cfg = config_text(NULL, NULL);
    size_t cl = strlen(cfg);
    char *c2 = malloc(cl + 1);
    write_all(g_st_path, g_good_bytes, g_good_size);
    for (int it = 0; it < 80; it++) {
        memcpy(c2, cfg, cl + 1);
        size_t n = cl;
        int edits = 1 + (int)(tu_next(&g_rng) % 3);
        for (int e = 0; e < edits; e++) {
            if (tu_next(&g_rng) % 4 == 0)
                n = (size_t)(tu_next(&g_rng) % cl);
            else
                c2[tu_next(&g_rng) % cl] = alphabet[tu_next(&g_rng) % (sizeof alphabet - 1)];
        }
        write_all(g_cfg_path, c2, n);
        lcsm_model *m = NULL;
        lcsm_status st = lcsm_model_load(g_be, g_case, NULL, &m);
        CHECK(st == LCSM_OK || st == LCSM_ERR_FORMAT || st == LCSM_ERR_MISSING_TENSOR || st == LCSM_ERR_SHAPE ||
                  st == LCSM_ERR_UNSUPPORTED,
              "config fuzz %d: unexpected %s (%s)", it, lcsm_strerror(st), lcsm_last_error());
        CHECK((st == LCSM_OK) == (m != NULL), "config fuzz %d: status/model mismatch", it);
        lcsm_model_destroy(m);
    }
    free(c2);
    free(cfg);
    free(b);
    (void)n_ok;
}

int main(int argc, char **argv)
{
    g_rng = tu_seed();
    g_verbose = argc > 1 && !strcmp(argv[1], "-v");
    setenv("LCSM_FFTW_EFFORT", "estimate", 0);

    lcsm_backend_options o;
    lcsm_backend_options_default(&o);
    o.n_threads = 2;
    o.fft_threshold = 16;
    o.cache_dir = "";
    CHECK_OK(lcsm_backend_create("cpu", &o, &g_be));
    if (!g_be)
        return tu_finish("test_loader");

    snprintf(g_root, sizeof g_root, "/tmp/lcsm_test_loader_XXXXXX");
    CHECK(mkdtemp(g_root) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(g_case, sizeof g_case, "%s/case", g_root);
    snprintf(g_cfg_path, sizeof g_cfg_path, "%s/config.json", g_case);
    snprintf(g_st_path, sizeof g_st_path, "%s/model.safetensors", g_case);

    /* The good model: matches g_cfg_fields. */
    lcsm_model_config c;
    lcsm_model_config_default(&c);
    c.d_model = 16;
    c.n_layer = 2;
    c.d_inner = 64;
    c.l_max = 64;
    c.filter_order = 8;
    lcsm_model *m = NULL;
    CHECK_OK(lcsm_model_create_random(g_be, &c, tu_next(&g_rng), NULL, &m));
    char good[700];
    snprintf(good, sizeof good, "%s/good", g_root);
    if (m)
        CHECK_OK(lcsm_model_save(m, good));
    lcsm_model_info info;
    memset(&info, 0, sizeof info);
    if (m)
        CHECK_OK(lcsm_model_get_info(m, &info));
    g_nlog = (size_t)TB * TL * info.n_vocab;
    g_ref = calloc(g_nlog + 1, sizeof *g_ref);
    for (int i = 0; i < TB * TL; i++)
        g_tok[i] = (int32_t)(tu_next(&g_rng) % 12);
    if (m)
        CHECK_OK(lcsm_model_forward(m, g_tok, TB, TL, g_ref));
    char path[800];
    snprintf(path, sizeof path, "%s/model.safetensors", good);
    g_good_bytes = tu_read_file(path, &g_good_size);
    CHECK(g_good_bytes != NULL && g_good_size > 1000, "cannot read %s", path);
    if (m && g_good_bytes && tset_read(path, &g_good) == 0) {
        test_half_decoders();
        test_missing_files();
        test_config();
        test_st_bytes();
        test_st_entries();
        test_names_shapes();
        test_half_models();
        test_fuzz();
        /* The backend is still fine: the good model loads and matches. */
        fresh_case();
        write_config(NULL, NULL);
        write_all(g_st_path, g_good_bytes, g_good_size);
        expect_same("good files after all the hostile ones", NULL, 0);
        /* Options: filter_shift 0 loads to the random model made with it. */
        lcsm_model_options mo;
        lcsm_model_options_default(&mo);
        mo.filter_shift = 0;
        lcsm_model *l0 = load_case("load with filter_shift 0", LCSM_OK, NULL, &mo);
        if (l0) {
            float *a = malloc(g_nlog * sizeof *a);
            CHECK_OK(lcsm_model_forward(l0, g_tok, TB, TL, a));
            double e = tu_rel_err_f(a, g_ref, g_nlog);
            CHECK(e > 1e-6, "filter_shift 0 did not change the logits (%.3g)", e);
            free(a);
        }
        lcsm_model_destroy(l0);
    }
    tset_free(&g_good);
    free(g_good_bytes);
    free(g_ref);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(g_be);
    CHECK(tu_rm_rf(g_root) == 0, "cannot remove %s", g_root);
    return tu_finish("test_loader");
}
