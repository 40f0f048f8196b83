/*
 * A safetensors header with very many entries loads in time linear-ish in its
 * size: st_find used to scan the whole tensor list, once per tensor the model
 * needs, so a file with many tensors loaded in quadratic time (a 34 MB header
 * with 400,000 entries took minutes).
 *
 * The file: a model of 2048 tiny layers (53,000 tensors lcsm reads) saved by
 * lcsm_model_save, with 200,000 entries lcsm ignores (empty tensors named like
 * layer 0's) put in front of them in the header. It must load, and give the
 * logits of the model as saved, within a generous bound (LOAD_LIMIT_S): the
 * bound only tells a hang from a load, it is not a benchmark (the load takes
 * 0.6 s here, and took 42 s before the index).
 */
#include "testutil.h"
#include "safetensors.h"

#include <time.h>

#define N_IGNORED 200000
#define LOAD_LIMIT_S 20.0

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Rewrites dir/model.safetensors with N_IGNORED empty entries before the
 * model's own (the JSON object's members, textually: "{" + ours + "," + theirs). */
static int add_ignored_entries(const char *path)
{
    size_t n;
    unsigned char *old = tu_read_file(path, &n);
    if (!old || n < 8)
        return -1;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | old[i];
    const char *hdr = (const char *)old + 8;
    size_t cap = (size_t)N_IGNORED * 96 + hlen + 64, len = 0;
    char *h = malloc(cap);
    h[len++] = '{';
    for (int i = 0; i < N_IGNORED; i++)
        len += (size_t)snprintf(h + len, cap - len,
                                "\"backbone.layers.0.mixer.unused_%d.weight\":{\"dtype\":\"F32\",\"shape\":[0],"
                                "\"data_offsets\":[0,0]},",
                                i);
    size_t rest = (size_t)hlen - 1; /* the old header without its '{' (and with its padding) */
    memcpy(h + len, hdr + 1, rest);
    len += rest;
    while (len % 8)
        h[len++] = ' ';
    FILE *fp = fopen(path, "wb");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)len >> (8 * i));
    int ok = fp && fwrite(len8, 1, 8, fp) == 8 && fwrite(h, 1, len, fp) == len &&
             fwrite(old + 8 + hlen, 1, n - 8 - hlen, fp) == n - 8 - hlen;
    if (fp && fclose(fp) != 0)
        ok = 0;
    printf("header: %zu bytes, %d ignored entries before the model's\n", len, N_IGNORED);
    free(h);
    free(old);
    return ok ? 0 : -1;
}

int main(void)
{
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "/tmp/lcsm_test_big_header_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    lcsm_backend *be = tu_cpu_backend("");
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    cfg.d_model = 2;
    cfg.d_inner = 4;
    cfg.n_layer = 2048;
    cfg.l_max = 4;
    cfg.emb_dim = 1;
    cfg.filter_order = 2;
    cfg.num_inner_mlps = 0;
    lcsm_model *m = NULL, *m2 = NULL;
    CHECK_OK(lcsm_model_create_random(be, &cfg, 17, NULL, &m));
    CHECK_OK(lcsm_model_save(m, dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(add_ignored_entries(path) == 0, "rewriting %s", path);

    const double t0 = now_s();
    CHECK_OK(lcsm_model_load(be, dir, NULL, &m2));
    const double load_s = now_s() - t0;
    printf("load: %.2f s (%d layers, %d ignored entries)\n", load_s, cfg.n_layer, N_IGNORED);
    CHECK(load_s < LOAD_LIMIT_S, "the load took %.1f s (bound %.0f s): quadratic in the header?", load_s,
          LOAD_LIMIT_S);
    if (m && m2) {
        int32_t tok[4] = {7, 8, 9, 10};
        float a[4 * 16], b[4 * 16];
        CHECK_OK(lcsm_model_forward(m, tok, 1, 4, a));
        CHECK_OK(lcsm_model_forward(m2, tok, 1, 4, b));
        CHECK(!memcmp(a, b, sizeof a), "the loaded model's logits differ from the saved one's");
    }
    lcsm_model_destroy(m2);
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    tu_rm_rf(dir);
    return tu_finish("test_big_header");
}
