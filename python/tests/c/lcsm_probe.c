/*
 * lcsm_probe: a small C program over the public API (include/lcsm.h) that the
 * Python tests compile against the very liblcsm the binding loaded, so that the
 * binding's results can be compared with the C library's own, bitwise.
 *
 *   lcsm_probe layout
 *       sizeof and offsetof of every public struct and field: "struct field offset size";
 *       "struct sizeof 0 size"; "enum NAME value"
 *   lcsm_probe forward MODEL THRESHOLD BATCH LEN TOKENS...
 *       lcsm_model_forward's logits [BATCH][LEN][n_vocab]
 *   lcsm_probe steps MODEL THRESHOLD ALGO BATCH PROMPT LEN TOKENS...
 *       a session of max_len LEN: lcsm_session_prefill of the first PROMPT tokens
 *       of each row (when PROMPT > 0; its logits), then lcsm_session_step for the
 *       others (the logits of each step)
 *   lcsm_probe generate MODEL THRESHOLD ALGO BATCH MAX_LEN TEMP TOP_K TOP_P SEED LO HI N PLEN TOKENS...
 *       lcsm_generate's ids [BATCH][N] (decimal)
 *
 * MODEL is "default" (lcsm_model_create_default) or a model directory. A first
 * argument pair "--weights DTYPE" (f32, f16, bf16, auto) before the mode loads
 * the model with lcsm_model_options.weight_dtype = DTYPE ("default" then is
 * lcsm_model_create_random of lcsm_model_config_default() and the default
 * model's seed, 20250101, with that dtype). The CPU
 * backend is created with fft_threshold THRESHOLD (0 = measure). Floats are
 * printed as the hex of their bits, one per line, so nothing is lost.
 * Exit status: 0, or 1 with the library's message on stderr.
 */
#include "lcsm.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(lcsm_status st, const char *what)
{
    fprintf(stderr, "lcsm_probe: %s: %s: %s\n", what, lcsm_strerror(st), lcsm_last_error());
    return 1;
}

#define TRY(call, what)                                                                                    \
    do {                                                                                                   \
        lcsm_status st_ = (call);                                                                          \
        if (st_ != LCSM_OK)                                                                                \
            return fail(st_, what);                                                                        \
    } while (0)

static void print_floats(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        printf("%08" PRIx32 "\n", u);
    }
}

#define S(type, field) printf(#type " " #field " %zu %zu\n", offsetof(type, field), sizeof(((type *)0)->field))
#define SIZE(type) printf(#type " sizeof 0 %zu\n", sizeof(type))

static int layout(void)
{
    SIZE(lcsm_backend_options);
    S(lcsm_backend_options, n_threads); S(lcsm_backend_options, fft_threshold);
    S(lcsm_backend_options, cache_dir); S(lcsm_backend_options, device); S(lcsm_backend_options, profile);
    SIZE(lcsm_backend_stats);
    S(lcsm_backend_stats, kernel_build_s); S(lcsm_backend_stats, kernels_from_cache); S(lcsm_backend_stats, plan_s);
    S(lcsm_backend_stats, device_bytes_live); S(lcsm_backend_stats, device_bytes_peak);
    SIZE(lcsm_profile_entry);
    S(lcsm_profile_entry, name); S(lcsm_profile_entry, calls); S(lcsm_profile_entry, seconds);
    SIZE(lcsm_device_info);
    S(lcsm_device_info, index); S(lcsm_device_info, platform); S(lcsm_device_info, device);
    S(lcsm_device_info, platform_name); S(lcsm_device_info, name); S(lcsm_device_info, type);
    S(lcsm_device_info, version); S(lcsm_device_info, driver); S(lcsm_device_info, global_mem_bytes);
    S(lcsm_device_info, compute_units); S(lcsm_device_info, max_clock_mhz);
    SIZE(lcsm_model_config);
    S(lcsm_model_config, d_model); S(lcsm_model_config, n_layer); S(lcsm_model_config, d_inner);
    S(lcsm_model_config, vocab_size); S(lcsm_model_config, pad_vocab_size_multiple); S(lcsm_model_config, l_max);
    S(lcsm_model_config, emb_dim); S(lcsm_model_config, filter_order); S(lcsm_model_config, num_inner_mlps);
    S(lcsm_model_config, short_filter_order); S(lcsm_model_config, hyena_order);
    S(lcsm_model_config, activation_freq); S(lcsm_model_config, layer_norm_epsilon);
    SIZE(lcsm_model_options);
    S(lcsm_model_options, filter_shift); S(lcsm_model_options, defer_spectra); S(lcsm_model_options, weight_dtype);
    S(lcsm_model_options, modal_tiled); S(lcsm_model_options, lag); S(lcsm_model_options, progress);
    S(lcsm_model_options, progress_user);
    SIZE(lcsm_model_info);
    S(lcsm_model_info, config); S(lcsm_model_info, arch); S(lcsm_model_info, n_vocab); S(lcsm_model_info, n_params);
    S(lcsm_model_info, weight_bytes); S(lcsm_model_info, n_tiled_convs); S(lcsm_model_info, dense_bytes);
    S(lcsm_model_info, dense_bytes_f32); S(lcsm_model_info, dense_bytes_f16);
    S(lcsm_model_info, lag); S(lcsm_model_info, state_bytes_per_token);
    SIZE(lcsm_layer_info);
    S(lcsm_layer_info, norm); S(lcsm_layer_info, mixer); S(lcsm_layer_info, filter); S(lcsm_layer_info, mlp);
    S(lcsm_layer_info, act); S(lcsm_layer_info, n_stage); S(lcsm_layer_info, streams);
    S(lcsm_layer_info, short_taps); S(lcsm_layer_info, d_inner); S(lcsm_layer_info, weight_bytes);
    SIZE(lcsm_session_options);
    S(lcsm_session_options, batch); S(lcsm_session_options, max_len); S(lcsm_session_options, algo);
    S(lcsm_session_options, kv_dtype); S(lcsm_session_options, progress); S(lcsm_session_options, progress_user);
    SIZE(lcsm_sampler_params);
    S(lcsm_sampler_params, temperature); S(lcsm_sampler_params, top_k); S(lcsm_sampler_params, top_p);
    S(lcsm_sampler_params, seed); S(lcsm_sampler_params, token_lo); S(lcsm_sampler_params, token_hi);
    S(lcsm_sampler_params, allowed); S(lcsm_sampler_params, n_allowed);
    SIZE(lcsm_session_stats);
    S(lcsm_session_stats, prefill_s); S(lcsm_session_stats, mixer_s); S(lcsm_session_stats, tiles_s);
    S(lcsm_session_stats, dense_s); S(lcsm_session_stats, steps); S(lcsm_session_stats, state_bytes);
    printf("enum LCSM_ALGO_FLASH %d\nenum LCSM_ALGO_LAZY %d\nenum LCSM_ALGO_EAGER %d\n", LCSM_ALGO_FLASH,
           LCSM_ALGO_LAZY, LCSM_ALGO_EAGER);
    printf("enum LCSM_WEIGHTS_F32 %d\nenum LCSM_WEIGHTS_F16 %d\nenum LCSM_WEIGHTS_BF16 %d\nenum LCSM_WEIGHTS_AUTO %d\n",
           LCSM_WEIGHTS_F32, LCSM_WEIGHTS_F16, LCSM_WEIGHTS_BF16, LCSM_WEIGHTS_AUTO);
    printf("enum sizeof_lcsm_weight_dtype %zu\nenum sizeof_lcsm_algo %zu\n", sizeof(lcsm_weight_dtype),
           sizeof(lcsm_algo));
    return 0;
}

/* The weight dtype of --weights (NULL: the library's defaults, no options at all). */
static const char *weights;

/* lcsm.h: lcsm_model_create_default is lcsm_model_config_default() with this seed. */
#define DEFAULT_MODEL_SEED 20250101u

static int open_model(const char *spec, const char *threshold, lcsm_backend **be, lcsm_model **m)
{
    lcsm_backend_options bo;
    lcsm_backend_options_default(&bo);
    bo.fft_threshold = atoi(threshold);
    TRY(lcsm_backend_create("cpu", &bo, be), "backend");
    lcsm_model_options mo;
    lcsm_model_options_default(&mo);
    if (weights)
        TRY(lcsm_weight_dtype_from_name(weights, &mo.weight_dtype), "--weights");
    if (!strcmp(spec, "default") && !weights) {
        TRY(lcsm_model_create_default(*be, m), "default model");
    } else if (!strcmp(spec, "default")) { /* the default model's shape and seed, stored as --weights says */
        lcsm_model_config cfg;
        lcsm_model_config_default(&cfg);
        TRY(lcsm_model_create_random(*be, &cfg, DEFAULT_MODEL_SEED, &mo, m), "default model");
    } else {
        TRY(lcsm_model_load(*be, spec, weights ? &mo : NULL, m), "model load");
    }
    return 0;
}

static int32_t *read_ids(char **argv, int n)
{
    int32_t *ids = malloc(sizeof *ids * (size_t)(n > 0 ? n : 1));
    for (int i = 0; ids && i < n; i++)
        ids[i] = (int32_t)strtol(argv[i], NULL, 10);
    return ids;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--weights")) {
        weights = argv[2];
        argv[2] = argv[0];
        argv += 2, argc -= 2;
    }
    if (argc >= 2 && !strcmp(argv[1], "layout"))
        return layout();
    lcsm_backend *be = NULL;
    lcsm_model *m = NULL;
    lcsm_model_info info;
    if (argc >= 6 && !strcmp(argv[1], "forward")) {
        const int B = atoi(argv[4]), L = atoi(argv[5]);
        if (argc != 6 + B * L)
            return fprintf(stderr, "lcsm_probe forward: %d tokens expected\n", B * L), 2;
        if (open_model(argv[2], argv[3], &be, &m))
            return 1;
        TRY(lcsm_model_get_info(m, &info), "info");
        int32_t *tok = read_ids(argv + 6, B * L);
        float *lg = malloc(sizeof *lg * (size_t)B * L * info.n_vocab);
        TRY(lcsm_model_forward(m, tok, B, L, lg), "forward");
        print_floats(lg, (size_t)B * L * info.n_vocab);
        free(tok), free(lg);
    } else if (argc >= 8 && !strcmp(argv[1], "steps")) {
        const int B = atoi(argv[5]), P = atoi(argv[6]), L = atoi(argv[7]);
        if (argc != 8 + B * L)
            return fprintf(stderr, "lcsm_probe steps: %d tokens expected\n", B * L), 2;
        if (open_model(argv[2], argv[3], &be, &m))
            return 1;
        TRY(lcsm_model_get_info(m, &info), "info");
        const int V = info.n_vocab;
        int32_t *tok = read_ids(argv + 8, B * L), *col = malloc(sizeof *col * B);
        int32_t *prompt = malloc(sizeof *prompt * (size_t)B * (P > 0 ? P : 1));
        float *lg = malloc(sizeof *lg * (size_t)B * V);
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.batch = B;
        so.max_len = L;
        TRY(lcsm_algo_from_name(argv[4], &so.algo), "algo");
        lcsm_session *s = NULL;
        TRY(lcsm_session_create(m, &so, &s), "session");
        if (P > 0) {
            for (int b = 0; b < B; b++)
                memcpy(prompt + (size_t)b * P, tok + (size_t)b * L, sizeof *prompt * P);
            TRY(lcsm_session_prefill(s, prompt, P, lg), "prefill");
            print_floats(lg, (size_t)B * V);
        }
        for (int t = P; t < L; t++) {
            for (int b = 0; b < B; b++)
                col[b] = tok[(size_t)b * L + t];
            TRY(lcsm_session_step(s, col, lg), "step");
            print_floats(lg, (size_t)B * V);
        }
        lcsm_session_destroy(s);
        free(tok), free(col), free(prompt), free(lg);
    } else if (argc >= 15 && !strcmp(argv[1], "generate")) {
        const int B = atoi(argv[5]), N = atoi(argv[13]), P = atoi(argv[14]);
        if (argc != 15 + B * P)
            return fprintf(stderr, "lcsm_probe generate: %d prompt tokens expected\n", B * P), 2;
        if (open_model(argv[2], argv[3], &be, &m))
            return 1;
        lcsm_session_options so;
        lcsm_session_options_default(&so);
        so.batch = B;
        so.max_len = atoi(argv[6]);
        TRY(lcsm_algo_from_name(argv[4], &so.algo), "algo");
        lcsm_sampler_params sp;
        lcsm_sampler_params_default(&sp);
        sp.temperature = strtof(argv[7], NULL);
        sp.top_k = atoi(argv[8]);
        sp.top_p = strtof(argv[9], NULL);
        sp.seed = strtoull(argv[10], NULL, 10);
        sp.token_lo = atoi(argv[11]);
        sp.token_hi = atoi(argv[12]);
        lcsm_session *s = NULL;
        TRY(lcsm_session_create(m, &so, &s), "session");
        TRY(lcsm_session_set_sampler(s, &sp), "sampler");
        int32_t *prompt = read_ids(argv + 15, B * P), *out = malloc(sizeof *out * (size_t)B * (N > 0 ? N : 1));
        TRY(lcsm_generate(s, prompt, P, N, out), "generate");
        for (int i = 0; i < B * N; i++)
            printf("%d\n", (int)out[i]);
        lcsm_session_destroy(s);
        free(prompt), free(out);
    } else {
        fprintf(stderr, "usage: lcsm_probe [--weights DTYPE] layout | forward ... | steps ... | generate ... "
                        "(see the source)\n");
        return 2;
    }
    lcsm_model_destroy(m);
    lcsm_backend_destroy(be);
    return fflush(stdout) ? 1 : 0;
}
