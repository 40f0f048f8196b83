/*
 * libFuzzer target for the model loader: config.json (src/config.c) and
 * model.safetensors (src/safetensors.c, src/weights.c) are fuzzed together
 * through the public lcsm_model_load.
 *
 * Input: 2 bytes little-endian n, then n bytes of config.json (n is clamped to
 * what is there), then the rest of the input is model.safetensors. Both files
 * are written into one temporary directory per process (made once) and loaded
 * on a CPU backend made once. A model that loads runs one short forward.
 *
 * Size limits of this harness (not of the library, which accepts far larger
 * models): a config whose model would need more than the limits below is
 * skipped before lcsm_model_load, because loading allocates the weights from the
 * config alone and materialises n_layer * d_model * max_seq_len filter floats,
 * which would otherwise show up as slow units or as libFuzzer OOM findings
 * (-rss_limit_mb / -malloc_limit_mb). The check mirrors src/config.c's reading
 * of the fields (same keys, the nested "layer" object, the same defaults); a
 * config with a size field the library rejects is never skipped (nor one it
 * rejects for a repeated key: the check parses with the library's src/json.c).
 *
 * LCSM_FUZZ_VERBOSE=1 prints each input's load status (e.g. to check the seeds).
 */
#include "lcsm.h"
#include "json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FILTER_FLOATS (1 << 22) /* n_layer * d_model * max_seq_len */
#define MAX_MLP_FLOATS (1 << 24)    /* n_layer * d_inner * d_model */
#define MAX_WEIGHT_FLOATS (1 << 24) /* every weight the config implies */
#define MAX_FILTER_MACS (1 << 26)   /* work of materialising the implicit filters */
#define MAX_FORWARD_SIZE 1000000    /* forward only when l_max * d_model * n_layer < this */

static lcsm_backend *g_be;
static char g_dir[64], g_cfg[128], g_st[128];
static int g_verbose;

static void cleanup(void)
{
    unlink(g_cfg);
    unlink(g_st);
    rmdir(g_dir); /* fails harmlessly if the library left wisdom there */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    strcpy(g_dir, "/tmp/lcsm-fuzz-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("fuzz_loader: mkdtemp");
        abort();
    }
    snprintf(g_cfg, sizeof g_cfg, "%s/config.json", g_dir);
    snprintf(g_st, sizeof g_st, "%s/model.safetensors", g_dir);
    atexit(cleanup);
    setenv("LCSM_CACHE_DIR", g_dir, 1);       /* no FFTW wisdom in $HOME */
    setenv("LCSM_FFTW_EFFORT", "estimate", 1); /* no FFTW_MEASURE per new size */
    g_verbose = getenv("LCSM_FUZZ_VERBOSE") && atoi(getenv("LCSM_FUZZ_VERBOSE")) > 0;
    lcsm_backend_options opt;
    lcsm_backend_options_default(&opt);
    opt.n_threads = 1;
    opt.fft_threshold = 64; /* skips the calibration */
    if (lcsm_backend_create("cpu", &opt, &g_be) != LCSM_OK) {
        fprintf(stderr, "fuzz_loader: no cpu backend: %s\n", lcsm_last_error());
        abort();
    }
    return 0;
}

/* ---- the harness's size check, mirroring src/config.c */

typedef struct field {
    const char *key, *nested;
    double lo, hi, def; /* def < 0: required */
} field;

enum { F_D, F_G, F_DI, F_V, F_PAD, F_L, F_E, F_F, F_N, F_COUNT };

static const field fields[F_COUNT] = {
    [F_D] = {"d_model", NULL, 1, 1 << 16, -1},
    [F_G] = {"n_layer", NULL, 1, 1 << 12, -1},
    [F_DI] = {"d_inner", NULL, 1, 4 << 16, 0}, /* 0: 4 * d_model */
    [F_V] = {"vocab_size", NULL, 1, 1 << 20, -1},
    [F_PAD] = {"pad_vocab_size_multiple", NULL, 1, 4096, 8},
    [F_L] = {"max_seq_len", "l_max", 1, 1 << 24, -1},
    [F_E] = {"emb_dim", "emb_dim", 1, 1024, 5},
    [F_F] = {"filter_order", "filter_order", 1, 4096, 64},
    [F_N] = {"num_inner_mlps", NULL, 0, 6, 2},
};

/* 1 when the config is one the library would accept and its model exceeds the
 * harness's limits; 0 otherwise (also for anything the library rejects). */
static int too_big(const uint8_t *text, size_t n)
{
    /* The library's own parse (src/json.h): a config it refuses for a repeated
     * key or text after the object is never skipped either. */
    cJSON *root = NULL;
    char why[256];
    double v[F_COUNT];
    int ok = lcsm__json_parse_object((const char *)text, n, (size_t)1 << 24, &root, NULL, why, sizeof why) == LCSM_OK;
    for (int i = 0; ok && i < F_COUNT; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, fields[i].key);
        if (!x && fields[i].nested) {
            const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
            if (cJSON_IsObject(layer))
                x = cJSON_GetObjectItemCaseSensitive(layer, fields[i].nested);
        }
        if (!x || cJSON_IsNull(x)) {
            v[i] = fields[i].def;
            ok = v[i] >= 0;
            continue;
        }
        double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        ok = isfinite(d) && d == floor(d) && d >= fields[i].lo && d <= fields[i].hi;
        v[i] = d;
    }
    cJSON_Delete(root);
    if (!ok)
        return 0;
    double D = v[F_D], G = v[F_G], DI = v[F_DI] > 0 ? v[F_DI] : 4 * D, L = v[F_L], E = v[F_E], F = v[F_F],
           N = v[F_N];
    double vocab = ceil(v[F_V] / v[F_PAD]) * v[F_PAD];
    double per_layer = 24 * D + 4 * D * D + 2 * D * DI + DI + L * (E + 1) + F * (E + 2) + N * F * (F + 1) + D * F;
    double weights = vocab * D + 2 * D + G * per_layer;
    double macs = G * L * (E * F + N * F * F + F * D);
    return G * D * L > MAX_FILTER_FLOATS || G * DI * D > MAX_MLP_FLOATS || weights > MAX_WEIGHT_FLOATS ||
           macs > MAX_FILTER_MACS;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    int ok = fwrite(p, 1, n, fp) == n;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t n_cfg = (size_t)data[0] | (size_t)data[1] << 8;
    if (n_cfg > size - 2)
        n_cfg = size - 2;
    const uint8_t *cfg = data + 2, *st = cfg + n_cfg;
    size_t n_st = size - 2 - n_cfg;
    if (too_big(cfg, n_cfg))
        return 0;
    if (write_file(g_cfg, cfg, n_cfg) || write_file(g_st, st, n_st)) {
        perror("fuzz_loader: cannot write the input files");
        abort();
    }
    lcsm_model *m = NULL;
    lcsm_status status = lcsm_model_load(g_be, g_dir, NULL, &m);
    if (g_verbose)
        fprintf(stderr, "fuzz_loader: load -> %s%s%s\n", lcsm_strerror(status), status ? ": " : "",
                status ? lcsm_last_error() : "");
    if (status != LCSM_OK) {
        if (m) {
            fprintf(stderr, "fuzz_loader: failed load (%s) left *out set\n", lcsm_strerror(status));
            abort();
        }
        return 0;
    }
    lcsm_model_info info;
    if (lcsm_model_get_info(m, &info) != LCSM_OK)
        abort();
    const lcsm_model_config *c = &info.config;
    if ((double)c->l_max * c->d_model * c->n_layer < MAX_FORWARD_SIZE) {
        int32_t tokens[4];
        int len = c->l_max < 4 ? c->l_max : 4;
        for (int i = 0; i < len; i++)
            tokens[i] = (int32_t)((7 + i) % info.n_vocab);
        float *logits = malloc((size_t)len * (size_t)info.n_vocab * sizeof *logits);
        if (logits) {
            status = lcsm_model_forward(m, tokens, 1, len, logits);
            if (g_verbose)
                fprintf(stderr, "fuzz_loader: forward(%d tokens) -> %s\n", len, lcsm_strerror(status));
            free(logits);
        }
    }
    lcsm_model_destroy(m);
    return 0;
}
