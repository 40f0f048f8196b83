/* Model handles: load, random creation, save, upload to the backend, filters. */
#include "engine.h"
#include "file_io.h"
#include "schedule.h"
#include "weights.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SEED 20250101u

void lcsm_model_options_default(lcsm_model_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->filter_shift = 0.05f;
    opt->weight_dtype = LCSM_WEIGHTS_F32;
}

static const char *const weight_dtype_names[] = {"f32", "f16", "bf16", "auto"};

const char *lcsm_weight_dtype_name(lcsm_weight_dtype d)
{
    return (unsigned)d < sizeof weight_dtype_names / sizeof weight_dtype_names[0] ? weight_dtype_names[d] : "?";
}

lcsm_status lcsm_weight_dtype_from_name(const char *name, lcsm_weight_dtype *out)
{
    for (int i = 0; name && out && i < (int)(sizeof weight_dtype_names / sizeof weight_dtype_names[0]); i++)
        if (!strcmp(name, weight_dtype_names[i])) {
            *out = (lcsm_weight_dtype)i;
            return LCSM_OK;
        }
    return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "unknown weight dtype '%s' (f32, f16, bf16, auto)",
                      name ? name : "(null)");
}

/* ---- what a model needs of its backend (ggml's supports-op query) */

static const char *op_name(lcsm_op op, int v, char *buf, size_t cap)
{
    static const char *const norms[] = {"layernorm", "rmsnorm", "rmsnorm (StripedHyena)"};
    static const char *const acts[] = {"none", "gelu (tanh)", "gelu", "silu"};
    switch (op) {
    case LCSM_OP_NORM: snprintf(buf, cap, "norm %s", (unsigned)v < 3 ? norms[v] : "?"); break;
    case LCSM_OP_ACT: snprintf(buf, cap, "activation %s", (unsigned)v < 4 ? acts[v] : "?"); break;
    case LCSM_OP_WEIGHTS: snprintf(buf, cap, "%s weights", lcsm_dtype_name(v)); break;
    case LCSM_OP_GLU: snprintf(buf, cap, "gated MLP"); break;
    case LCSM_OP_SHORT_CONV: snprintf(buf, cap, "short conv of %d taps", v); break;
    case LCSM_OP_HYENA: snprintf(buf, cap, "Hyena step of %d stages", v); break;
    case LCSM_OP_MODAL: snprintf(buf, cap, "modal recurrence (%s poles)", v ? "complex" : "real"); break;
    case LCSM_OP_FIR: snprintf(buf, cap, "FIR filter of %d taps", v); break;
    case LCSM_OP_ATTN: snprintf(buf, cap, "attention with %s caches", lcsm_dtype_name(v)); break;
    case LCSM_OP_ATTN_HEAD: snprintf(buf, cap, "attention heads of width %d", v); break;
    case LCSM_OP_LINATTN: snprintf(buf, cap, "linear attention of %d features", v); break;
    default: snprintf(buf, cap, "op %d", (int)op); break;
    }
    return buf;
}

static lcsm_status need(lcsm_model *m, int layer, lcsm_op op, int variant)
{
    lcsm_backend *be = m->be;
    if (be->ops->supports(be, op, variant))
        return LCSM_OK;
    char name[64];
    return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "backend %s has no %s (needed by %s%.0d%s)", be->name,
                        op_name(op, variant, name, sizeof name), layer >= 0 ? "layer " : "the model's head",
                        layer >= 0 ? layer : 0, layer == 0 ? "0" : "");
}

static lcsm_status check_supported(lcsm_model *m)
{
    lcsm_status st = LCSM_OK;
    for (int i = 0; i < m->host->n && st == LCSM_OK; i++)
        if (m->host->t[i].flags & LCSM_T_MATRIX)
            st = need(m, m->host->t[i].layer, LCSM_OP_WEIGHTS, (int)m->host->t[i].dt);
    for (int l = 0; l < m->hp.n_layer && st == LCSM_OK; l++) {
        const lcsm_layer_spec *s = &m->spec[l];
        if ((st = need(m, l, LCSM_OP_NORM, s->norm)) != LCSM_OK || (st = need(m, l, LCSM_OP_ACT, s->act)) != LCSM_OK)
            break;
        if (s->mlp == LCSM_MLP_GATED && (st = need(m, l, LCSM_OP_GLU, 0)) != LCSM_OK)
            break;
        if (s->mixer == LCSM_MIXER_ATTN && (st = need(m, l, LCSM_OP_ATTN, (int)m->w[l][LCSM_R_IN_W].dt)) == LCSM_OK)
            st = need(m, l, LCSM_OP_ATTN_HEAD, s->head_dim);
        if (s->mixer == LCSM_MIXER_LINATTN)
            st = need(m, l, LCSM_OP_LINATTN, s->feature_dim);
        if (s->mixer == LCSM_MIXER_HYENA) {
            if (s->short_taps && (st = need(m, l, LCSM_OP_SHORT_CONV, s->short_taps)) != LCSM_OK)
                break;
            st = need(m, l, LCSM_OP_HYENA, s->n_stage);
            for (int i = 0; i < s->n_stage && st == LCSM_OK; i++) {
                const lcsm_stage_spec *sg = &s->stage[i];
                if (lcsm_filter_is_modal(sg->filter))
                    st = need(m, l, LCSM_OP_MODAL, sg->filter == LCSM_FILTER_MODAL);
                else if (sg->filter == LCSM_FILTER_FIR)
                    st = need(m, l, LCSM_OP_FIR, sg->fir_len);
            }
        }
    }
    return st;
}

/* ---- upload: every device tensor in one buffer, each role at a multiple of
 * LCSM_ALIGN_BYTES so device kernels may read rows as aligned vectors */

/* f32 values of the whole role a tensor belongs to (its rows may be a part;
 * a mapped tensor's device form may have another size). */
static size_t role_values(const lcsm_tensor *t)
{
    if (t->map)
        return t->dev_numel ? t->dev_numel : t->numel;
    return t->rows_total ? t->numel / (size_t)t->shape[0] * (size_t)t->rows_total : t->numel;
}

/* Device bytes of n f32 values stored as dt (c64 holds two values per element). */
static size_t values_bytes(size_t n, lcsm_dtype dt) { return n * (dt == LCSM_DT_F16 || dt == LCSM_DT_BF16 ? 2 : 4); }

float *lcsm__tensor_device_form(const lcsm_weights *w, const lcsm_tensor *t)
{
    if (!t->map)
        return t->data;
    float *out = lcsm__malloc(role_values(t) * sizeof *out);
    if (out)
        w->hp.arch->device_form(w, t, out);
    return out;
}

static lcsm_ref *role_ref(lcsm_model *m, const lcsm_tensor *t)
{
    return t->layer < 0 ? &m->g[t->role] : &m->w[t->layer][t->role];
}

static lcsm_status upload(lcsm_model *m)
{
    lcsm_backend *be = m->be;
    const lcsm_weights *w = m->host;
    /* Place the roles, in tensor order; the parts of a role share its place. */
    size_t total = 0;
    for (int i = 0; i < w->n; i++) {
        const lcsm_tensor *t = &w->t[i];
        if (t->role >= LCSM_ROLE_HOST || lcsm__tensor_get(w, t->layer, t->role) != t)
            continue;
        *role_ref(m, t) = (lcsm_ref){NULL, total, t->dt};
        total += lcsm_align_bytes(values_bytes(role_values(t), t->dt));
    }
    m->wbuf_bytes = total;
    lcsm_status st = be->ops->alloc(be, total, &m->wbuf);
    if (st != LCSM_OK)
        return st;
    for (int l = -1; l < m->hp.n_layer; l++)
        for (int r = 0; r < (l < 0 ? LCSM_G_COUNT : LCSM_R_COUNT); r++) {
            lcsm_ref *ref = l < 0 ? &m->g[r] : &m->w[l][r];
            if (lcsm__tensor_get(w, l, r))
                ref->buf = m->wbuf;
        }
    /* Each tensor at its rows of its role (or its device form), converted to
     * the role's type. */
    void *staging = NULL;
    size_t staging_bytes = 0;
    for (int i = 0; i < w->n && st == LCSM_OK; i++) {
        const lcsm_tensor *t = &w->t[i];
        if (t->role >= LCSM_ROLE_HOST)
            continue;
        const size_t values = t->map ? role_values(t) : t->numel, row = t->numel / (size_t)t->shape[0];
        const size_t bytes = values_bytes(values, t->dt), n_el = bytes / lcsm_dtype_size(t->dt);
        float *form = lcsm__tensor_device_form(w, t);
        if (!form) {
            st = LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "weights: device form of %s", t->name);
            break;
        }
        const void *src = form;
        if (t->dt == LCSM_DT_F16 || t->dt == LCSM_DT_BF16) {
            if (bytes > staging_bytes) {
                lcsm__free(staging);
                if (!(staging = lcsm__malloc(bytes))) {
                    staging_bytes = 0;
                    st = LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "weights: staging of %zu bytes", bytes);
                    break;
                }
                staging_bytes = bytes;
            }
            lcsm__f32_convert(form, values, t->dt, staging);
            src = staging;
        }
        st = be->ops->write(be, lcsm_ref_at(*role_ref(m, t), t->map ? 0 : (size_t)t->row0 * row), src, n_el);
        if (form != t->data)
            lcsm__free(form);
    }
    lcsm__free(staging);
    if (!m->g[LCSM_G_HEAD].buf)
        m->g[LCSM_G_HEAD] = m->g[LCSM_G_EMB]; /* tied */
    return st;
}

/* ---- filters of the tiled convolutions, materialised on the host, time-major,
 * in ranges of positions taken by threads (up to the processors online): the
 * implicit filter MLP at every position of l_max is seconds to minutes for long
 * models on one thread */

enum { FILTER_CHUNK = 8192 }; /* positions per task */

typedef struct filter_job {
    const lcsm_model *m;
    const int (*groups)[2]; /* [n_tiled]: (layer, stage) */
    float *hT, *dbias;      /* [l_max][n_tiled * D], [n_tiled * D] */
    int n_chunks;           /* per group */
    atomic_int next;        /* the next task to take */
    atomic_int done;        /* tasks done */
    atomic_int status;      /* the first failure, else LCSM_OK */
    pthread_t caller;       /* reports progress (lcsm_model_options.progress) */
} filter_job;

/* z = p^k for a complex p, by squaring (in double: a few roundings, not k) */
static void complex_pow(double pr, double pi, long k, double *zr, double *zi)
{
    double rr = 1, ri = 0;
    while (k) {
        if (k & 1) {
            const double t = rr * pr - ri * pi;
            ri = rr * pi + ri * pr;
            rr = t;
        }
        const double t = pr * pr - pi * pi;
        pi = 2 * pr * pi;
        pr = t;
        k >>= 1;
    }
    *zr = rr;
    *zi = ri;
}

/* Taps k0 .. k1-1 of a modal stage's filter h[k][c] = Re sum_n R p^k, and (dbias
 * not NULL) its skip term, from its device-form tensors (poles already p, not
 * log p). */
static lcsm_status modal_filter(const lcsm_model *m, int l, int i, int k0, int k1, float *hT, size_t ld,
                                float *dbias)
{
    const lcsm_weights *w = m->host;
    const lcsm_tensor *tp = lcsm__tensor_get(w, l, LCSM_R_STAGE(i, LCSM_RS_POLES)),
                      *tr = lcsm__tensor_get(w, l, LCSM_R_STAGE(i, LCSM_RS_RESIDUES)),
                      *ts = lcsm__tensor_get(w, l, LCSM_R_STAGE(i, LCSM_RS_SKIP));
    float *p = lcsm__tensor_device_form(w, tp), *R = lcsm__tensor_device_form(w, tr),
          *skip = dbias ? lcsm__tensor_device_form(w, ts) : NULL;
    double *acc = lcsm__malloc((size_t)(k1 - k0) * sizeof *acc);
    lcsm_status st = p && R && acc && (skip || !dbias) ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
    const int D = m->hp.d_model, N = m->spec[l].stage[i].n_modes, cx = tp->dt == LCSM_DT_C64;
    for (int c = 0; st == LCSM_OK && c < D; c++) {
        if (dbias)
            dbias[c] = skip[c];
        memset(acc, 0, (size_t)(k1 - k0) * sizeof *acc);
        for (int n = 0; n < N; n++) {
            const size_t q = ((size_t)c * N + n) * (cx ? 2 : 1);
            const double pr = p[q], pi = cx ? p[q + 1] : 0, rr = R[q], ri = cx ? R[q + 1] : 0;
            double zr, zi; /* p^k */
            complex_pow(pr, pi, k0, &zr, &zi);
            for (int k = k0; k < k1; k++) {
                acc[k - k0] += rr * zr - ri * zi;
                const double nr = zr * pr - zi * pi;
                zi = zr * pi + zi * pr;
                zr = nr;
            }
        }
        for (int k = k0; k < k1; k++)
            hT[(size_t)(k - k0) * ld + c] = (float)acc[k - k0];
    }
    lcsm__free(acc);
    if (p != tp->data)
        lcsm__free(p);
    if (R != tr->data)
        lcsm__free(R);
    if (skip && skip != ts->data)
        lcsm__free(skip);
    return st;
}

static void *filter_worker(void *arg)
{
    filter_job *j = arg;
    const lcsm_hparams *hp = &j->m->hp;
    const int n_tasks = j->m->n_tiled * j->n_chunks;
    const size_t D = (size_t)hp->d_model, ld = D * (size_t)j->m->n_tiled;
    for (int t; (t = atomic_fetch_add(&j->next, 1)) < n_tasks && atomic_load(&j->status) == LCSM_OK;) {
        const int g = t / j->n_chunks, c = t % j->n_chunks, l = j->groups[g][0], i = j->groups[g][1];
        const int k0 = c * FILTER_CHUNK, k1 = k0 + FILTER_CHUNK < hp->l_max ? k0 + FILTER_CHUNK : hp->l_max;
        float *hT = j->hT + (size_t)k0 * ld + (size_t)g * D, *dbias = c == 0 ? j->dbias + (size_t)g * D : NULL;
        lcsm_status st = lcsm_filter_is_modal(j->m->spec[l].stage[i].filter)
                             ? modal_filter(j->m, l, i, k0, k1, hT, ld, dbias)
                             : hp->arch->filter(j->m->host, &j->m->opt, l, i, k0, k1, hT, ld, dbias);
        if (st != LCSM_OK) {
            int ok = LCSM_OK;
            atomic_compare_exchange_strong(&j->status, &ok, (int)st);
        }
        const int done = atomic_fetch_add(&j->done, 1) + 1;
        if (j->m->opt.progress && pthread_equal(pthread_self(), j->caller))
            j->m->opt.progress(j->m->opt.progress_user, "filters", done, n_tasks);
    }
    return NULL;
}

static lcsm_status make_filters(lcsm_model *m)
{
    const lcsm_hparams *hp = &m->hp;
    if (m->n_tiled == 0 || m->filters)
        return LCSM_OK;
    size_t D = (size_t)hp->d_model, G = (size_t)m->n_tiled, L = (size_t)hp->l_max, n;
    if (lcsm__mul_overflows(G * D, L, &n) || n > SIZE_MAX / sizeof(float))
        return LCSM_FAIL_BE(m->be, LCSM_ERR_OUT_OF_MEMORY, "filters of %zu x %zu x %zu floats overflow", G, D, L);
    float *hT = lcsm__malloc(n * sizeof *hT); /* every element is written by one task */
    float *dbias = lcsm__calloc(G * D, sizeof *dbias);
    int (*groups)[2] = lcsm__calloc(G, sizeof *groups);
    lcsm_status st = hT && dbias && groups ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
    if (st == LCSM_OK) {
        for (int l = 0; l < hp->n_layer; l++)
            for (int s = 0; s < m->spec[l].n_stage; s++)
                if (m->spec[l].stage[s].group >= 0) {
                    groups[m->spec[l].stage[s].group][0] = l;
                    groups[m->spec[l].stage[s].group][1] = s;
                }
        filter_job job = {.m = m,
                          .groups = (const int(*)[2])groups,
                          .hT = hT,
                          .dbias = dbias,
                          .n_chunks = (int)((L + FILTER_CHUNK - 1) / FILTER_CHUNK),
                          .caller = pthread_self()};
        atomic_init(&job.next, 0);
        atomic_init(&job.done, 0);
        atomic_init(&job.status, LCSM_OK);
        /* Always threaded (a thread costs ~50 us), so every test that loads a
         * model of 2+ convolutions runs this path; a helper that cannot be
         * started leaves its tasks to the others. */
        enum { MAX_HELPERS = 63 };
        const long cpus = sysconf(_SC_NPROCESSORS_ONLN), n_tasks = (long)G * job.n_chunks;
        int n_help = (int)(cpus < n_tasks ? cpus : n_tasks) - 1;
        n_help = n_help < 0 ? 0 : n_help > MAX_HELPERS ? MAX_HELPERS : n_help;
        pthread_t tid[MAX_HELPERS];
        int started = 0;
        while (started < n_help && pthread_create(&tid[started], NULL, filter_worker, &job) == 0)
            started++;
        filter_worker(&job);
        for (int i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
        st = (lcsm_status)atomic_load(&job.status);
        if (st == LCSM_OK && m->opt.progress) /* the helpers may have made the last ones */
            m->opt.progress(m->opt.progress_user, "filters", n_tasks, n_tasks);
    }
    if (st == LCSM_OK) {
        st = m->be->ops->filters_create(m->be, hT, dbias, m->n_tiled, hp->d_model, hp->l_max, m->lag, &m->filters);
        hT = NULL; /* the backend's now */
    } else {
        LCSM_FAIL_BE(m->be, st, "filters of %zu floats: out of host memory", n);
    }
    lcsm__free(hT);
    lcsm__free(dbias);
    lcsm__free(groups);
    return st;
}

lcsm_status lcsm__model_filters(lcsm_model *m)
{
    pthread_mutex_lock(&m->lock);
    const lcsm_status st = make_filters(m);
    pthread_mutex_unlock(&m->lock);
    return st;
}

lcsm_status lcsm__model_from_weights(lcsm_backend *be, lcsm_weights *w, const lcsm_model_options *opt,
                                     lcsm_model **out)
{
    lcsm_model *m = lcsm__calloc(1, sizeof *m);
    const int L = w->hp.n_layer;
    if (!m || !(m->spec = lcsm__calloc((size_t)L, sizeof *m->spec)) ||
        !(m->w = lcsm__calloc((size_t)L, sizeof *m->w))) {
        if (m)
            lcsm__free(m->spec);
        lcsm__free(m);
        lcsm__weights_free(w);
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "model handle");
    }
    m->be = be;
    m->hp = w->hp;
    if (opt)
        m->opt = *opt;
    else
        lcsm_model_options_default(&m->opt);
    m->host = w;
    /* LCSM_LAG_AUTO: l_max / 256 for long models (their largest tile spread over
     * as many steps costs about what the direct band adds), none for short ones */
    m->lag = m->opt.lag != LCSM_LAG_AUTO ? m->opt.lag : m->hp.l_max < 4096 ? 1 : m->hp.l_max / 256;
    if (m->opt.lag == LCSM_LAG_AUTO)
        m->lag = m->lag < 1 ? 1 : m->lag > 1024 ? 1024 : m->lag;
    pthread_mutex_init(&m->lock, NULL);
    m->hp.arch->layers(&m->hp, m->spec);
    /* Tiled groups: the implicit and explicit filters first, then (modal_tiled)
     * the modal ones, so a modal session tiles a prefix of the groups. */
    for (int pass = 0; pass < 2; pass++) {
        for (int l = 0; l < L; l++)
            for (int i = 0; i < m->spec[l].n_stage; i++) {
                lcsm_stage_spec *sg = &m->spec[l].stage[i];
                const int modal = lcsm_filter_is_modal(sg->filter);
                if (pass == 0)
                    sg->group = -1;
                if (sg->filter == LCSM_FILTER_FIR || modal != pass || (modal && !m->opt.modal_tiled))
                    continue;
                sg->group = m->n_tiled++;
            }
        if (pass == 0)
            m->n_tiled_base = m->n_tiled;
    }
    for (int i = 0; i < w->n; i++)
        m->n_params += w->t[i].numel;
    lcsm_status st = check_supported(m);
    if (st == LCSM_OK)
        st = upload(m);
    if (st == LCSM_OK && m->opt.defer_spectra < 2)
        st = make_filters(m);
    if (st == LCSM_OK && m->filters && !m->opt.defer_spectra) {
        /* size by size, so that a long load reports its progress */
        const int max_tile = lcsm_schedule_max_tile(0, m->hp.l_max), thr = be->fft_threshold;
        int n = 0, k = 0;
        for (int U = thr; U <= max_tile; U *= 2)
            n++;
        for (int U = thr; st == LCSM_OK && U <= max_tile; U *= 2) {
            st = be->ops->filters_prepare(be, m->filters, U, 1u << LCSM_SPEC_LAG);
            if (st == LCSM_OK && m->opt.progress)
                m->opt.progress(m->opt.progress_user, "spectra", ++k, n);
        }
    }
    if (st != LCSM_OK) { /* the failing step set this thread's message */
        lcsm_model_destroy(m);
        return st;
    }
    *out = m;
    return LCSM_OK;
}

/* The device type of weight matrices for an option (AUTO: F32 until the
 * loader sees the checkpoint's). */
static lcsm_status weight_dt(lcsm_backend *be, const lcsm_model_options *opt, lcsm_dtype *dt, int *keep_disk)
{
    lcsm_weight_dtype wd = opt ? opt->weight_dtype : LCSM_WEIGHTS_F32;
    *keep_disk = wd == LCSM_WEIGHTS_AUTO;
    switch (wd) {
    case LCSM_WEIGHTS_F32:
    case LCSM_WEIGHTS_AUTO: *dt = LCSM_DT_F32; return LCSM_OK;
    case LCSM_WEIGHTS_F16: *dt = LCSM_DT_F16; return LCSM_OK;
    case LCSM_WEIGHTS_BF16: *dt = LCSM_DT_BF16; return LCSM_OK;
    }
    return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "model options: weight_dtype %d is not f32, f16, bf16 or auto",
                        (int)wd);
}

static lcsm_status check_options(lcsm_backend *be, const lcsm_model_options *opt)
{
    /* beyond this the filters' values overflow f32 long before they mean anything */
    if (opt && !(fabsf(opt->filter_shift) <= LCSM_MAX_FILTER_SHIFT)) /* NaN fails too */
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "model options: filter_shift %g is not in [-%g, %g]",
                            (double)opt->filter_shift, LCSM_MAX_FILTER_SHIFT, LCSM_MAX_FILTER_SHIFT);
    if (opt && (opt->defer_spectra < 0 || opt->defer_spectra > 2))
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "model options: defer_spectra %d is not 0, 1 or 2",
                            opt->defer_spectra);
    if (opt && (opt->lag < 0 || opt->lag > LCSM_MAX_LAG))
        return LCSM_FAIL_BE(be, LCSM_ERR_INVALID_ARGUMENT, "model options: lag %d is not in [0, %d] (0: auto)", opt->lag,
                            LCSM_MAX_LAG);
    return LCSM_OK;
}

lcsm_status lcsm_model_load(lcsm_backend *be, const char *dir, const lcsm_model_options *opt, lcsm_model **out)
{
    if (out)
        *out = NULL;
    if (!be || !dir || !out)
        return lcsm__fail(be ? be->last_error : NULL, be ? sizeof be->last_error : 0,
                          LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_load: NULL argument");
    lcsm_dtype dt = LCSM_DT_F32;
    int keep_disk = 0;
    char path[4096], st_path[4096], err[512] = "";
    lcsm_status st = check_options(be, opt);
    if (st == LCSM_OK)
        st = weight_dt(be, opt, &dt, &keep_disk);
    if (st != LCSM_OK)
        return st; /* the message is set */
    /* Messages of the steps below go through err: the backend's buffer is
     * written only by lcsm__fail (under its lock), as other threads may fail
     * on the same backend meanwhile. */
    st = lcsm__path_join(path, sizeof path, dir, "config.json", err, sizeof err);
    if (st == LCSM_OK)
        st = lcsm__path_join(st_path, sizeof st_path, dir, "model.safetensors", err, sizeof err);
    lcsm_hparams hp;
    if (st == LCSM_OK)
        st = lcsm__config_read(path, &hp, err, sizeof err);
    if (st != LCSM_OK)
        return lcsm__relay(be->last_error, sizeof be->last_error, st, err);
    lcsm_weights *w = lcsm__weights_alloc(&hp, dt);
    if (!w)
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "%s: weights of this config do not fit in memory", dir);
    st = lcsm__weights_load(w, st_path, keep_disk, err, sizeof err);
    if (st != LCSM_OK) {
        lcsm__weights_free(w);
        return lcsm__relay(be->last_error, sizeof be->last_error, st, err);
    }
    return lcsm__model_from_weights(be, w, opt, out);
}

static lcsm_status create_random(lcsm_backend *be, const lcsm_hparams *hp, uint64_t seed,
                                 const lcsm_model_options *opt, lcsm_model **out)
{
    lcsm_dtype dt = LCSM_DT_F32;
    int keep_disk = 0;
    lcsm_status st = check_options(be, opt);
    if (st == LCSM_OK)
        st = weight_dt(be, opt, &dt, &keep_disk);
    if (st != LCSM_OK)
        return st; /* the message is set */
    lcsm_weights *w = lcsm__weights_alloc(hp, dt);
    if (!w)
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "weights of this config do not fit in memory");
    lcsm__weights_randomise(w, seed);
    return lcsm__model_from_weights(be, w, opt, out);
}

lcsm_status lcsm_model_create_random(lcsm_backend *be, const lcsm_model_config *cfg, uint64_t seed,
                                     const lcsm_model_options *opt, lcsm_model **out)
{
    if (out)
        *out = NULL;
    if (!be || !cfg || !out)
        return lcsm__fail(be ? be->last_error : NULL, be ? sizeof be->last_error : 0,
                          LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_create_random: NULL argument");
    lcsm_hparams hp;
    char err[512] = "";
    lcsm_status st = lcsm__hparams_from_config(cfg, &hp, err, sizeof err);
    if (st != LCSM_OK)
        return lcsm__relay(be->last_error, sizeof be->last_error, st, err);
    return create_random(be, &hp, seed, opt, out);
}

lcsm_status lcsm_model_create_random_config(lcsm_backend *be, const char *config_json, uint64_t seed,
                                            const lcsm_model_options *opt, lcsm_model **out)
{
    if (out)
        *out = NULL;
    if (!be || !config_json || !out)
        return lcsm__fail(be ? be->last_error : NULL, be ? sizeof be->last_error : 0,
                          LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_create_random_config: NULL argument");
    lcsm_hparams hp;
    char err[512] = "";
    lcsm_status st = lcsm__config_parse(config_json, strlen(config_json), 0, &hp, err, sizeof err);
    if (st != LCSM_OK)
        return lcsm__relay(be->last_error, sizeof be->last_error, st, err);
    return create_random(be, &hp, seed, opt, out);
}

lcsm_status lcsm_model_create_default(lcsm_backend *be, lcsm_model **out)
{
    lcsm_model_config cfg;
    lcsm_model_config_default(&cfg);
    return lcsm_model_create_random(be, &cfg, DEFAULT_SEED, NULL, out);
}

lcsm_status lcsm_model_save(lcsm_model *m, const char *dir)
{
    if (!m || !dir)
        return lcsm__fail(m ? m->last_error : NULL, m ? sizeof m->last_error : 0, LCSM_ERR_INVALID_ARGUMENT,
                          "lcsm_model_save: NULL argument");
    char path[4096], st_path[4096];
    char err[512] = "";
    lcsm_status st = lcsm__path_join(path, sizeof path, dir, "config.json", err, sizeof err);
    if (st == LCSM_OK)
        st = lcsm__path_join(st_path, sizeof st_path, dir, "model.safetensors", err, sizeof err);
    if (st != LCSM_OK)
        return lcsm__relay(m->last_error, sizeof m->last_error, st, err);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_IO, "%s: %s", dir, strerror(errno));
    st = lcsm__config_write(path, &m->hp, err, sizeof err);
    if (st == LCSM_OK)
        st = lcsm__weights_save(m->host, st_path, err, sizeof err);
    return st == LCSM_OK ? st : lcsm__relay(m->last_error, sizeof m->last_error, st, err);
}

void lcsm_model_destroy(lcsm_model *m)
{
    if (!m)
        return;
    if (m->filters)
        m->be->ops->filters_destroy(m->be, m->filters);
    if (m->wbuf)
        m->be->ops->release(m->be, m->wbuf);
    lcsm__weights_free(m->host);
    pthread_mutex_destroy(&m->lock);
    lcsm__free(m->spec);
    lcsm__free(m->w);
    lcsm__free(m);
}

/* Device bytes of the weights (not the filters) if matrices were stored as dt. */
static size_t weights_bytes_as(const lcsm_weights *w, int dt)
{
    size_t total = 0;
    for (int i = 0; i < w->n; i++) {
        const lcsm_tensor *t = &w->t[i];
        if (t->role < LCSM_ROLE_HOST)
            total += values_bytes(t->map ? role_values(t) : t->numel,
                                  dt >= 0 && (t->flags & LCSM_T_MATRIX) ? (lcsm_dtype)dt : t->dt);
    }
    return total;
}

lcsm_status lcsm_model_get_info(const lcsm_model *m, lcsm_model_info *info)
{
    if (!m || !info)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    m->hp.arch->public_config(&m->hp, &info->config);
    snprintf(info->arch, sizeof info->arch, "%s", m->hp.arch->name);
    info->n_vocab = m->hp.n_vocab;
    info->lag = m->lag;
    info->n_params = m->n_params;
    info->weight_bytes = m->wbuf_bytes + (m->filters ? m->be->ops->filters_bytes(m->filters) : 0);
    info->n_tiled_convs = m->n_tiled;
    info->dense_bytes = weights_bytes_as(m->host, -1);
    info->dense_bytes_f32 = weights_bytes_as(m->host, LCSM_DT_F32);
    info->dense_bytes_f16 = weights_bytes_as(m->host, LCSM_DT_F16);
    /* per position of one sequence: history + accumulator of every tiled
     * convolution, and the K and V of every attention layer */
    info->state_bytes_per_token = (size_t)m->n_tiled * (size_t)m->hp.d_model * 2 * sizeof(float);
    for (int l = 0; l < m->hp.n_layer; l++)
        if (m->spec[l].mixer == LCSM_MIXER_ATTN)
            info->state_bytes_per_token +=
                lcsm__kv_elems(&m->spec[l], 1, 1) * 2 * lcsm_dtype_size(m->w[l][LCSM_R_IN_W].dt);
    return LCSM_OK;
}

lcsm_status lcsm_model_get_layer(const lcsm_model *m, int layer, lcsm_layer_info *info)
{
    if (!m || !info || layer < 0 || layer >= m->hp.n_layer)
        return lcsm__fail(m ? ((lcsm_model *)m)->last_error : NULL, m ? sizeof m->last_error : 0,
                          LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_get_layer: NULL argument or layer %d outside [0, %d)",
                          layer, m ? m->hp.n_layer : 0);
    static const char *const norms[] = {"layernorm", "rmsnorm", "rmsnorm-sh"};
    static const char *const mixers[] = {"hyena", "attention", "linear-attn"};
    static const char *const filters[] = {"implicit", "explicit", "modal", "modal-real", "fir"};
    static const char *const mlps[] = {"none", "plain", "gated"};
    static const char *const acts[] = {"none", "gelu-tanh", "gelu", "silu"};
    const lcsm_layer_spec *s = &m->spec[layer];
    memset(info, 0, sizeof *info);
    snprintf(info->norm, sizeof info->norm, "%s", norms[s->norm]);
    snprintf(info->mixer, sizeof info->mixer, "%s", mixers[s->mixer]);
    for (int i = 0; i < s->n_stage; i++) {
        const lcsm_stage_spec *sg = &s->stage[i];
        char extra[32] = "";
        if (lcsm_filter_is_modal(sg->filter))
            snprintf(extra, sizeof extra, "(%d)", sg->n_modes);
        else if (sg->filter == LCSM_FILTER_FIR)
            snprintf(extra, sizeof extra, "(%d)", sg->fir_len);
        snprintf(info->filter + strlen(info->filter), sizeof info->filter - strlen(info->filter), "%s%s%s",
                 i ? "," : "", filters[sg->filter], extra);
    }
    snprintf(info->mlp, sizeof info->mlp, "%s", mlps[s->mlp]);
    snprintf(info->act, sizeof info->act, "%s", acts[s->act]);
    if (s->mixer == LCSM_MIXER_ATTN)
        snprintf(info->filter, sizeof info->filter, "%d heads, %d kv, %d wide%s", s->n_heads, s->n_kv_heads,
                 s->head_dim, s->rope_base > 0 ? ", rotary" : "");
    if (s->mixer == LCSM_MIXER_LINATTN)
        snprintf(info->filter, sizeof info->filter, "%d heads, %d wide, %d features", s->n_heads, s->head_dim,
                 s->feature_dim);
    info->n_stage = s->n_stage;
    info->streams = s->streams;
    info->short_taps = s->short_taps;
    info->d_inner = s->d_inner;
    const lcsm_weights *w = m->host;
    for (int i = 0; i < w->n; i++)
        if (w->t[i].layer == layer && w->t[i].role < LCSM_ROLE_HOST)
            info->weight_bytes += values_bytes(w->t[i].map ? role_values(&w->t[i]) : w->t[i].numel, w->t[i].dt);
    return LCSM_OK;
}

const char *lcsm_arch_name(int i)
{
    int n = 0;
    while (lcsm__archs[n])
        n++;
    return i >= 0 && i < n ? lcsm__archs[i]->name : NULL;
}

const char *lcsm_model_last_error(const lcsm_model *m) { return m ? lcsm__handle_error(m->last_error) : ""; }
