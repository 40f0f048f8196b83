/*
 * lcsm — exact, near-linear-time autoregressive inference of long convolution
 * sequence models (Hyena and its family) on CPUs and OpenCL devices.
 *
 * Handles, in the order a program creates them:
 *
 *   lcsm_backend  a compute device ("cpu", later "opencl") with its plans and threads
 *   lcsm_model    weights loaded onto a backend; the implicit filters are materialised
 *                 once at load; read-only afterwards, shareable between sessions
 *   lcsm_session  the state of `batch` sequences being generated together: per-layer
 *                 histories and accumulators of the long convolutions, the short-conv
 *                 state, the position, the sampler
 *
 * Conventions (the same for every function):
 *   - Every call returns an lcsm_status; LCSM_OK is 0. Nothing is printed, nothing
 *     calls exit(). lcsm_strerror() names a status; lcsm_last_error() gives the
 *     message of the last failure on the calling thread, and each handle keeps the
 *     message of the last failure of a call on it (lcsm_*_last_error(), safe
 *     while other threads fail on the same handle: they return a copy, valid on
 *     the calling thread until its fourth next such call).
 *   - Destroy functions accept NULL and do nothing then.
 *   - A failed call leaves its handles as they were. Arguments are checked before
 *     any work starts (bad tokens, lengths, sizes change nothing). The exception
 *     is a failure inside the backend in the middle of a prefill or step (out of
 *     memory, a driver error): the session is then marked failed, every prefill,
 *     step or generate on it returns LCSM_ERR_STATE until lcsm_session_reset()
 *     (which makes it usable again), and the other session calls still work.
 *     The model and the backend stay usable after any failure.
 *   - Tokens are int32; logits are float, `n_vocab` (the padded vocabulary of the
 *     model, lcsm_model_info.n_vocab) per sequence.
 *   - A model must outlive its sessions; a backend must outlive its models.
 *     Handles are plain pointers: a session used after its model was destroyed
 *     (or a model after its backend, or any handle after its destroy) is not
 *     detected and is undefined behaviour, like a use after free().
 *   - Threads: a model may be used by several sessions on several threads at once;
 *     one session must not be used by two threads at the same time.
 */
#ifndef LCSM_H
#define LCSM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LCSM_STATIC_DEFINE)
#define LCSM_API
#elif defined(_WIN32)
#ifdef LCSM_BUILDING
#define LCSM_API __declspec(dllexport)
#else
#define LCSM_API __declspec(dllimport)
#endif
#else
#define LCSM_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- version */

#define LCSM_VERSION_MAJOR 0
#define LCSM_VERSION_MINOR 1
#define LCSM_VERSION_PATCH 0
#define LCSM_VERSION_STRING "0.1.0"

/** Runtime version of the linked library; any pointer may be NULL. */
LCSM_API void lcsm_version(int *major, int *minor, int *patch);
/** Runtime version as "MAJOR.MINOR.PATCH". Static storage. */
LCSM_API const char *lcsm_version_string(void);

/* ----------------------------------------------------------------- status */

typedef enum lcsm_status {
    LCSM_OK = 0,
    LCSM_ERR_INVALID_ARGUMENT = 1, /* NULL handle, bad size, bad option value */
    LCSM_ERR_OUT_OF_MEMORY = 2,    /* host or device allocation failed */
    LCSM_ERR_IO = 3,               /* a file could not be opened, read or written */
    LCSM_ERR_FORMAT = 4,           /* malformed or truncated model file or config */
    LCSM_ERR_MISSING_TENSOR = 5,   /* a tensor the model needs is not in the file */
    LCSM_ERR_SHAPE = 6,            /* a tensor's shape disagrees with the config */
    LCSM_ERR_UNSUPPORTED = 7,      /* valid input this version does not handle */
    LCSM_ERR_TOKEN_RANGE = 8,      /* a token id outside [0, n_vocab) */
    LCSM_ERR_LENGTH = 9,           /* a sequence longer than the session or l_max */
    LCSM_ERR_STATE = 10,           /* call out of order (e.g. prefill after a step) */
    LCSM_ERR_BACKEND = 11,         /* the backend failed (driver or library error) */
    LCSM_ERR_NO_BACKEND = 12,      /* unknown backend name, or not compiled in */
    LCSM_ERR_NUMERIC = 13          /* the arithmetic gave NaN or infinity (logits; the message names the
                                      position); the session is failed until lcsm_session_reset() */
} lcsm_status;

/** Short English description of a status. Never NULL. */
LCSM_API const char *lcsm_strerror(lcsm_status status);
/** Message of the last failed call on this thread ("" if none). Thread-local. */
LCSM_API const char *lcsm_last_error(void);

/* ---------------------------------------------------------------- backend */

typedef struct lcsm_backend lcsm_backend;

typedef struct lcsm_backend_options {
    /* Worker threads for the CPU backend; 0 = one per online processor. */
    int n_threads;
    /* Tile size from which tiles use FFT instead of a direct convolution; must be
     * a power of two >= 2; 0 = measure on this device when the backend is created
     * (or take the environment variable LCSM_FFT_THRESHOLD if set). */
    int fft_threshold;
    /* Directory for caches (FFTW wisdom, compiled kernels); NULL = $LCSM_CACHE_DIR,
     * else $XDG_CACHE_HOME/lcsm, else $HOME/.cache/lcsm; "" disables caching. */
    const char *cache_dir;
    /* Device selection for GPU backends: index or case-insensitive name
     * substring; NULL = $LCSM_DEVICE, else the first GPU. Ignored by "cpu". */
    const char *device;
    /* 1: time every kernel on the device (lcsm_backend_get_profile); costs an
     * event per launch. Default 0; the environment variable LCSM_PROFILE=1 also
     * turns it on. The CPU backend has no kernels to time and ignores it. */
    int profile;
} lcsm_backend_options;

/** Fills `opt` with the defaults (all zero / NULL). */
LCSM_API void lcsm_backend_options_default(lcsm_backend_options *opt);

/** The i-th backend compiled in ("cpu", then "opencl" when built with it), or
 *  NULL past the last. Static storage. A compiled-in backend may still find no
 *  device at creation (LCSM_ERR_NO_BACKEND). */
LCSM_API const char *lcsm_backend_available(int i);

/** Creates a backend by name: "cpu" (always available) or "opencl" (when built
 *  with it). `opt` may be NULL for defaults; its strings are read during the
 *  call only (the backend keeps no pointer to them). Results of the CPU backend
 *  are reproducible run to run for the same options, thread count and FFT
 *  threshold; a measured threshold (fft_threshold 0) or measured FFTW plans may
 *  differ between runs by a few ulps of the logits (LCSM_FFTW_EFFORT=estimate
 *  and a fixed threshold make them bitwise repeatable). */
LCSM_API lcsm_status lcsm_backend_create(const char *name, const lcsm_backend_options *opt,
                                         lcsm_backend **out);
LCSM_API void lcsm_backend_destroy(lcsm_backend *backend);
/** The backend's name ("cpu"), and a one-line description of its device. */
LCSM_API const char *lcsm_backend_name(const lcsm_backend *backend);
LCSM_API const char *lcsm_backend_description(const lcsm_backend *backend);
/** The FFT threshold in effect (measured or given). */
LCSM_API int lcsm_backend_fft_threshold(const lcsm_backend *backend);
/** Message of the last failure of a call on this backend (or of a model load on it). */
LCSM_API const char *lcsm_backend_last_error(const lcsm_backend *backend);

/** Start-up costs of a backend so far (GPU backends; the CPU backend counts its
 *  FFTW planning as plan time) and its device memory. */
typedef struct lcsm_backend_stats {
    double kernel_build_s;    /* building our kernels, or loading them from the cache */
    int kernels_from_cache;   /* 1 when the kernels came from the binary cache */
    double plan_s;            /* FFT plan creation (VkFFT or FFTW) so far */
    size_t device_bytes_live; /* device buffers held now (0 for the CPU backend, whose */
    size_t device_bytes_peak; /* memory is host memory); and the most held at once */
} lcsm_backend_stats;

LCSM_API lcsm_status lcsm_backend_get_stats(const lcsm_backend *backend, lcsm_backend_stats *stats);

/** Device time of one kernel (see lcsm_backend_get_profile). */
typedef struct lcsm_profile_entry {
    const char *name; /* the kernel's name ("gemv", "fft" for VkFFT's), static */
    long long calls;  /* launches timed */
    double seconds;   /* device time, from the launch's start to its end */
} lcsm_profile_entry;

/** Device time per kernel since the backend was created with profile = 1 (or
 *  since the last reset), most expensive first: fills up to `cap` entries and
 *  sets *count to how many kernels ran. Waits for all queued work first. With
 *  `reset` != 0 the counts start again from zero afterwards. Returns
 *  LCSM_ERR_UNSUPPORTED for a backend that does not profile (the CPU backend,
 *  or profile = 0); `out` may be NULL when cap is 0. */
LCSM_API lcsm_status lcsm_backend_get_profile(lcsm_backend *backend, lcsm_profile_entry *out, int cap,
                                              int *count, int reset);

/** One device a backend can run on (see lcsm_list_devices). */
typedef struct lcsm_device_info {
    int index;              /* what lcsm_backend_options.device / LCSM_DEVICE accept ("3") */
    int platform, device;   /* also accepted as "platform:device" ("0:1") */
    char platform_name[128];
    char name[128];
    char type[16];          /* "gpu", "cpu", "accelerator" or "other" */
    char version[128];      /* e.g. "OpenCL 3.0 CUDA" */
    char driver[64];        /* driver version */
    uint64_t global_mem_bytes;
    int compute_units;
    int max_clock_mhz;
} lcsm_device_info;

/** Lists the devices of backend `name` ("cpu", "opencl"): fills up to `cap`
 *  entries of `out` (may be NULL when cap is 0) and sets *count to the number of
 *  devices. LCSM_ERR_NO_BACKEND when the backend is not compiled in or finds no
 *  platform (the message says which). */
LCSM_API lcsm_status lcsm_list_devices(const char *name, lcsm_device_info *out, int cap, int *count);

/* ------------------------------------------------------------------ model */

typedef struct lcsm_model lcsm_model;

/** The shape of a HyenaDNA / safari Hyena LM (the fields of its config.json).
 *  Other families are described by their own config.json (see
 *  lcsm_model_create_random_config); lcsm_model_info.config then holds the
 *  fields they share with this one. */
typedef struct lcsm_model_config {
    int d_model;          /* D */
    int n_layer;
    int d_inner;          /* MLP width, 4*D for HyenaDNA */
    int vocab_size;       /* real vocabulary (12 for HyenaDNA's characters) */
    int pad_vocab_size_multiple; /* embedding rows = vocab_size rounded up to this */
    int l_max;            /* max_seq_len: longest sequence the filters cover */
    int emb_dim;          /* features of the filter's positional embedding z */
    int filter_order;     /* width of the implicit filter MLP */
    int num_inner_mlps;   /* hidden Linear+Sin pairs after the first one */
    int short_filter_order; /* taps of the short causal conv; 3 */
    int hyena_order;      /* 2 */
    float activation_freq; /* Sin frequency when the checkpoint stores none */
    float layer_norm_epsilon;
} lcsm_model_config;

/** HyenaDNA-tiny-like defaults: D 128, 2 layers, d_inner 512, vocab 12 (padded 16),
 *  l_max 16384, emb_dim 5, filter_order 64, num_inner_mlps 2. */
LCSM_API void lcsm_model_config_default(lcsm_model_config *cfg);

/** How weight matrices and embeddings are stored on the device. Norms,
 *  biases, filters, spectra, states and all arithmetic stay f32: kernels read
 *  the narrow type and accumulate in f32. */
typedef enum lcsm_weight_dtype {
    LCSM_WEIGHTS_F32 = 0,  /* default */
    LCSM_WEIGHTS_F16 = 1,  /* IEEE half, rounded to nearest even at load */
    LCSM_WEIGHTS_BF16 = 2, /* bfloat16, rounded to nearest even at load */
    LCSM_WEIGHTS_AUTO = 3  /* each matrix as the checkpoint stores it (F32, F16 or BF16) */
} lcsm_weight_dtype;

/** "f32", "f16", "bf16", "auto"; and the reverse (LCSM_ERR_INVALID_ARGUMENT
 *  for an unknown name). */
LCSM_API const char *lcsm_weight_dtype_name(lcsm_weight_dtype d);
LCSM_API lcsm_status lcsm_weight_dtype_from_name(const char *name, lcsm_weight_dtype *out);

#define LCSM_MAX_FILTER_SHIFT 1e6

/** Progress of long work: `stage` ("filters", "spectra", "generate"), `done`
 *  of `total` units of it (ranges of filter positions, tile sizes, tokens). Called on the thread
 *  that made the call, at most every stage step (and about every 1/4 s while
 *  generating); it must not call back into the library on the same handle. */
typedef void (*lcsm_progress_fn)(void *user, const char *stage, long long done, long long total);

typedef struct lcsm_model_options {
    /* Added to the exponential modulation of the implicit filter:
     * h *= exp(-t*|delta|) + shift. 0.05 in the published inference code (default),
     * 0.0 in the training code. At most LCSM_MAX_FILTER_SHIFT in magnitude. */
    float filter_shift;
    /* 0 (default): the spectra of every flash tile size up to l_max are made at
     * load, so a session never waits for them. 1: make them when the first
     * session that needs a size is created (less memory when sessions are much
     * shorter than l_max). 2: also materialise the long filters themselves only
     * when the first session or lcsm_model_forward needs them (for programs
     * that only inspect or save a model: lcsm make-model). Never per step. */
    int defer_spectra;
    /* Storage of weight matrices and embeddings (default LCSM_WEIGHTS_F32). */
    lcsm_weight_dtype weight_dtype;
    /* 1: also materialise the filters of modal layers (StripedHyena, Evo 2's
     * hcl) at load and run them as tiled convolutions in flash, lazy and eager
     * sessions (4 bytes per tap, channel and layer, up to l_max: for checking the
     * modal recurrence against the tiling). 0 (default): modal layers always run
     * their O(states) recurrence and need no filter. */
    int modal_tiled;
    /* Lagged flash (flash and modal sessions; DESIGN.md section 7): a step adds
     * the last `lag` filter taps directly from the history, and the tiles take
     * the taps from `lag` on, so each tile has `lag` steps until its first output
     * is read and a large one is spread over them: the worst step stays near the
     * median instead of growing with the length. Exact either way. 1: the plain
     * schedule (a tile's whole work in the step after its last input);
     * LCSM_LAG_AUTO (0, the default): 1 below l_max 4096, else l_max / 256
     * between 16 and 1024; at most LCSM_MAX_LAG. Fixed at load (the tile
     * spectra depend on it); lcsm_model_info.lag says what was chosen. */
    int lag;
    /* Called as the filters and tile spectra of a load are made (NULL: none). */
    lcsm_progress_fn progress;
    void *progress_user;
} lcsm_model_options;

#define LCSM_LAG_AUTO 0
#define LCSM_MAX_LAG 4096

/** Fills `opt` with the defaults (filter_shift 0.05, defer_spectra 0, f32 weights). */
LCSM_API void lcsm_model_options_default(lcsm_model_options *opt);

/** Loads `dir`/config.json and `dir`/model.safetensors (F32, F16 or BF16 tensors).
 *  The family comes from the config's model_type ("hyenadna", "longconv"; see
 *  lcsm_arch_name), else from its layout (safari's nested "layer" object), else
 *  HyenaDNA; tensor names are the family's published ones (HyenaDNA's
 *  optionally prefixed "model." or "hyena."). `opt` may be NULL. Errors name
 *  the file, tensor or field; see also lcsm_backend_last_error. A layer kind
 *  the backend cannot run is LCSM_ERR_UNSUPPORTED, naming the operation. */
LCSM_API lcsm_status lcsm_model_load(lcsm_backend *backend, const char *dir,
                                     const lcsm_model_options *opt, lcsm_model **out);

/** Makes a model of shape `cfg` with deterministic random weights from `seed`
 *  (the initialisation of the reference training code, scaled to stay healthy). */
LCSM_API lcsm_status lcsm_model_create_random(lcsm_backend *backend, const lcsm_model_config *cfg,
                                              uint64_t seed, const lcsm_model_options *opt,
                                              lcsm_model **out);

/** Makes a model of any family with deterministic random weights from `seed`:
 *  `config_json` is a config.json text of that family (model_type names it,
 *  default "hyenadna"); fields it leaves out take the family's defaults, e.g.
 *  {"model_type": "longconv", "d_model": 64, "n_layer": 2, "max_seq_len": 1024}.
 *  Every family also takes the shape as d_model, n_layer, d_inner and
 *  max_seq_len here (StripedHyena's and Evo 2's own keys are hidden_size,
 *  num_layers, inner_mlp_size and max_seqlen). */
LCSM_API lcsm_status lcsm_model_create_random_config(lcsm_backend *backend, const char *config_json,
                                                     uint64_t seed, const lcsm_model_options *opt,
                                                     lcsm_model **out);

/** The i-th model family compiled in ("hyenadna", "longconv", ...), or NULL
 *  past the last. Static storage. */
LCSM_API const char *lcsm_arch_name(int i);

/** The built-in default model: lcsm_model_config_default() with seed 20250101.
 *  Needs no files. */
LCSM_API lcsm_status lcsm_model_create_default(lcsm_backend *backend, lcsm_model **out);

/** Writes the model as `dir`/config.json + `dir`/model.safetensors, creating
 *  `dir` if needed; weight matrices in their device type (F16 or BF16 for such
 *  models, so nothing is lost), the rest F32; lcsm_model_load reads it back to
 *  the same weights. */
LCSM_API lcsm_status lcsm_model_save(lcsm_model *model, const char *dir);

LCSM_API void lcsm_model_destroy(lcsm_model *model);

typedef struct lcsm_model_info {
    lcsm_model_config config; /* the shape (fields another family lacks are 0) */
    char arch[32];            /* the family: "hyenadna", "longconv" */
    int n_vocab;              /* logits per position: padded vocabulary */
    size_t n_params;          /* weights, without the materialised filters */
    size_t weight_bytes;      /* device bytes of weights + filters + the tile spectra
                                 prepared so far (sessions prepare what they need) */
    int n_tiled_convs;        /* long convolutions run by the tiling schedule */
    size_t dense_bytes;       /* device bytes of the weights alone, as stored */
    size_t dense_bytes_f32;   /* the same with f32 matrices, and */
    size_t dense_bytes_f16;   /* with f16 or bf16 matrices */
    int lag;                  /* lagged flash's lag (lcsm_model_options.lag; 1 = plain) */
    size_t state_bytes_per_token; /* session state per position of one sequence
                                     (history + accumulator of every tiled conv,
                                     attention's K and V at kv_dtype auto) */
} lcsm_model_info;

LCSM_API lcsm_status lcsm_model_get_info(const lcsm_model *model, lcsm_model_info *info);

/** What one layer is (lcsm_model_get_layer): kinds as short names. */
typedef struct lcsm_layer_info {
    char norm[16];   /* "layernorm", "rmsnorm", "rmsnorm-sh" */
    char mixer[16];  /* "hyena", "attention", "linear-attn" (Hedgehog) */
    char filter[64]; /* per stage, comma-separated: "implicit", "explicit", "modal(N)", "modal-real(N)",
                        "fir(taps)"; attention: "H heads, Hkv kv, hd wide[, rotary]";
                        linear attention: "H heads, hd wide, F features" */
    char mlp[16];    /* "none", "plain", "gated" */
    char act[16];    /* the MLP's activation: "gelu-tanh", "gelu", "silu", "none" */
    int n_stage;     /* long convolutions in the mixer's chain */
    int streams;     /* D-wide streams of the input projection */
    int short_taps;  /* taps of the short causal conv (0: none) */
    int d_inner;     /* MLP width */
    size_t weight_bytes; /* device bytes of the layer's weights */
} lcsm_layer_info;

/** Describes layer `layer` (0 <= layer < n_layer). */
LCSM_API lcsm_status lcsm_model_get_layer(const lcsm_model *model, int layer, lcsm_layer_info *info);
LCSM_API const char *lcsm_model_last_error(const lcsm_model *model);

/** Parallel (FFT) forward over whole sequences: `tokens` is [batch][len],
 *  `logits` receives [batch][len][n_vocab]. len <= l_max. For scoring and tests.
 *  A forward whose scratch would need a buffer larger than the device allows in
 *  one runs as consecutive chunks through a session of its own (lazy, f32 KV
 *  caches), as lcsm_session_prefill does: the same logits, that session's
 *  memory for the call's duration. */
LCSM_API lcsm_status lcsm_model_forward(lcsm_model *model, const int32_t *tokens, int batch,
                                        int len, float *logits);

/* --------------------------------------------------------------- tokenizer */

/** The model's own tokenizer: "dna" (HyenaDNA's characters, as lcsm_tokenize),
 *  "byte" (Evo 1 / Evo 2: ids are the UTF-8 bytes of the text, vocabulary
 *  512), or "none" (a vocabulary lcsm cannot tokenize, e.g. StripedHyena-7B's
 *  BPE: pass ids). Static storage. */
LCSM_API const char *lcsm_model_tokenizer(const lcsm_model *model);
/** Text to ids with the model's tokenizer: writes at most `cap` ids and sets
 *  *n_out to the number the text needs. LCSM_ERR_TOKEN_RANGE for a character
 *  the tokenizer does not have, LCSM_ERR_UNSUPPORTED for "none". */
LCSM_API lcsm_status lcsm_model_tokenize(const lcsm_model *model, const char *text, int32_t *ids, int cap,
                                         int *n_out);
/** Ids to text with the model's tokenizer, NUL-terminated: writes at most `cap`
 *  bytes (cap >= 1) and sets *len_out to the length the text needs. A byte id
 *  below 32 (control characters, Evo's end of text 0) prints as a space, one
 *  from 256 on as the code point it names, as Evo's detokenizer does; a DNA
 *  special token as its name ("[CLS]"). */
LCSM_API lcsm_status lcsm_model_detokenize(const lcsm_model *model, const int32_t *ids, int n, char *text, size_t cap,
                                           size_t *len_out);
/** The ids of A, C, G and T in the model's tokenizer (what DNA generation samples
 *  from); LCSM_ERR_UNSUPPORTED for a tokenizer without them. */
LCSM_API lcsm_status lcsm_model_dna_ids(const lcsm_model *model, int32_t ids[4]);

/** Character tokenizer of HyenaDNA: A C G T N map to 7 8 9 10 11 (either case);
 *  any other character is an error. Writes at most `cap` ids and sets *n_out to
 *  the number of ids the text needs. */
LCSM_API lcsm_status lcsm_tokenize(const char *text, int32_t *ids, int cap, int *n_out);
/** Text of one token ("A", "[CLS]", ...); "?" for ids outside the vocabulary. */
LCSM_API const char *lcsm_token_text(int32_t id);

/* ---------------------------------------------------------------- session */

/** How a session decodes its long convolutions. Each applies to the layers it
 *  concerns: tiled convolutions (HyenaDNA's implicit filters, long explicit
 *  filters, and modal filters of a model loaded with modal_tiled) run the
 *  chosen tiling; modal layers otherwise run their recurrence; short FIR
 *  filters (Evo 2's hcs, hcm) always a ring of their last inputs. */
typedef enum lcsm_algo {
    LCSM_ALGO_FLASH = 0, /* dyadic tiling, O(L log^2 L) per sequence (default) */
    LCSM_ALGO_LAZY = 1,  /* each output as a direct sum over the history, O(L^2) */
    LCSM_ALGO_EAGER = 2, /* each input pushed into all future outputs, O(L^2) */
    LCSM_ALGO_MODAL = 3, /* modal layers by their recurrence (O(states) per token) even in a
                            model loaded with modal_tiled; tiled convolutions as flash */
    LCSM_ALGO_SMOOTH = 4 /* the smooth schedule: tiles of U inputs have U or 2U steps of
                            slack each (docs/DESIGN.md section 6), for a more even cost per
                            token at about 2.5x flash's tile work; its own tile spectra, made
                            at the first such session of a model (twice flash's) */
} lcsm_algo;

/** "flash", "lazy", "eager", "modal", "smooth"; and the reverse (returns
 *  LCSM_ERR_INVALID_ARGUMENT for an unknown name). */
LCSM_API const char *lcsm_algo_name(lcsm_algo algo);
LCSM_API lcsm_status lcsm_algo_from_name(const char *name, lcsm_algo *out);

typedef struct lcsm_session_options {
    int batch;      /* sequences generated together, 1 to 65536 (default 1) */
    int max_len;    /* prompt + generated tokens, <= l_max; 0 = l_max (default) */
    lcsm_algo algo; /* default LCSM_ALGO_FLASH */
    /* Storage of attention layers' K and V caches: LCSM_WEIGHTS_AUTO (default)
     * keeps each layer's weight type (f16/bf16 caches halve the memory per
     * token; scores and sums stay f32), or LCSM_WEIGHTS_F32/F16/BF16 for all.
     * lcsm_model_forward keeps f32 caches. */
    lcsm_weight_dtype kv_dtype;
    /* Called by lcsm_generate as tokens are done ("generate"), and by
     * lcsm_session_create as each tile size is made ready ("tiles": its spectra
     * when deferred, the backend's plans and scratch); NULL: none. */
    lcsm_progress_fn progress;
    void *progress_user;
} lcsm_session_options;

LCSM_API void lcsm_session_options_default(lcsm_session_options *opt);

typedef struct lcsm_session lcsm_session;

/** Allocates all per-sequence state (histories, accumulators, activations) and,
 *  for a model loaded with defer_spectra, makes the tile spectra this session
 *  needs (and with defer_spectra 2 the model's filters, once, for every later
 *  session too); nothing is allocated per token afterwards. Several sessions may share
 *  one model, also from several threads. */
LCSM_API lcsm_status lcsm_session_create(lcsm_model *model, const lcsm_session_options *opt,
                                         lcsm_session **out);
LCSM_API void lcsm_session_destroy(lcsm_session *session);
LCSM_API const char *lcsm_session_last_error(const lcsm_session *session);

/** Back to position 0 with empty state (keeps the allocations and the sampler). */
LCSM_API lcsm_status lcsm_session_reset(lcsm_session *session);
/** Tokens processed so far (the position of the next token). */
LCSM_API int lcsm_session_position(const lcsm_session *session);

/** Runs `len` >= 1 prompt tokens per sequence (`tokens` is [batch][len]) through
 *  the parallel forward and pushes their contribution into the future outputs.
 *  Only at position 0. `logits` (may be NULL) receives [batch][n_vocab] of the
 *  last prompt position. A prompt whose forward would need a buffer larger than
 *  the device allows in one (on GPUs often a quarter of their memory) runs as
 *  consecutive chunks, as lcsm_session_extend would take them: the same logits
 *  (the cost of chunks for tiled convolutions is extend's). */
LCSM_API lcsm_status lcsm_session_prefill(lcsm_session *session, const int32_t *tokens, int len,
                                          float *logits);

/** Like lcsm_session_prefill at any position: a chunk of `len` >= 1 tokens per
 *  sequence continues the sequences through the parallel forward, seeing every
 *  earlier token exactly (chunked prompts give the logits one prompt would).
 *  Modal, FIR and attention layers continue from their state; a tiled
 *  convolution convolves its whole history again (O(position) per chunk), so
 *  many small chunks of a long prompt cost more than one prefill. `logits` (may
 *  be NULL): [batch][n_vocab] of the chunk's last position. */
LCSM_API lcsm_status lcsm_session_extend(lcsm_session *session, const int32_t *tokens, int len, float *logits);

/** Feeds one token per sequence (`tokens` is [batch]) at the current position and
 *  writes the next-token logits, [batch][n_vocab] (`logits` may be NULL). */
LCSM_API lcsm_status lcsm_session_step(lcsm_session *session, const int32_t *tokens, float *logits);

typedef struct lcsm_sampler_params {
    float temperature; /* 0 = greedy (argmax); default 1 */
    int top_k;         /* keep the k most likely ids; 0 = all (default) */
    float top_p;       /* keep the smallest set with mass >= top_p; 1 = all (default) */
    uint64_t seed;     /* generator seed (default 0); each sequence gets its own stream */
    int token_lo;      /* sample only ids in [token_lo, token_hi); default 0 and */
    int token_hi;      /* 0 = the model's vocab_size (padding ids are never sampled) */
    const int32_t *allowed; /* NULL (default), or sample only these ids (within the range): */
    int n_allowed;          /* up to LCSM_MAX_ALLOWED, copied by lcsm_session_set_sampler;
                               a session with them samples on the host */
} lcsm_sampler_params;

#define LCSM_MAX_ALLOWED 256

LCSM_API void lcsm_sampler_params_default(lcsm_sampler_params *p);

/** Sets the session's sampler and reseeds its generators. */
LCSM_API lcsm_status lcsm_session_set_sampler(lcsm_session *session, const lcsm_sampler_params *p);

/** Like lcsm_session_step, then samples the next token of each sequence into
 *  `next` ([batch]) with the session's sampler. */
LCSM_API lcsm_status lcsm_session_step_sample(lcsm_session *session, const int32_t *tokens,
                                              int32_t *next);

/** Generates: prefill with `prompt` ([batch][prompt_len], prompt_len >= 1) at
 *  position 0, then samples `n_new` tokens per sequence into `out`
 *  ([batch][n_new]). The last sampled token is returned but not fed back, so
 *  prompt_len + n_new - 1 <= the session's max_len. It is exactly
 *  lcsm_generate(n_new = 1) (the first token, sampled from the prompt's last
 *  logits) followed by n_new - 1 lcsm_session_step_sample calls, each fed the
 *  previous token: the generators' draw counts carry on, so streaming callers
 *  get the same tokens token by token. On a backend that samples
 *  on the device (OpenCL, up to 2048 candidate ids at temperature > 0) the ids
 *  stay on the device between steps and the call waits only at its end; the
 *  device sums probabilities in float, so a draw that falls within rounding of
 *  the boundary between two candidates may pick the neighbour of the CPU
 *  backend's choice (greedy decoding is the same on both). */
LCSM_API lcsm_status lcsm_generate(lcsm_session *session, const int32_t *prompt, int prompt_len,
                                   int n_new, int32_t *out);

/** Seconds spent since creation or reset, split by where (mixer = the long and
 *  short convolutions and the gating; tiles = the part of the mixer that is the
 *  flash tiles or eager pushes; dense = norms, projections, MLPs, logits). */
typedef struct lcsm_session_stats {
    double prefill_s;
    double mixer_s;
    double tiles_s;
    double dense_s;
    long long steps;
    size_t state_bytes; /* histories, accumulators, activations of this session */
} lcsm_session_stats;

LCSM_API lcsm_status lcsm_session_get_stats(const lcsm_session *session, lcsm_session_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* LCSM_H */
