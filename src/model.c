/* Model handles: load, random creation, save, upload to the backend, filters. */
#include "config.h"
#include "file_io.h"
#include "internal.h"
#include "schedule.h"
#include "weights.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SEED 20250101u

void lcsm_model_options_default(lcsm_model_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->filter_shift = 0.05f;
}

/* Per-layer tensors that live on the device, and where lcsm_layer keeps them. */
static const struct {
    int kind;
    size_t field;
} device_tensors[] = {
    {W_NORM1_W, offsetof(lcsm_layer, norm1_w)}, {W_NORM1_B, offsetof(lcsm_layer, norm1_b)},
    {W_IN_W, offsetof(lcsm_layer, in_w)},       {W_IN_B, offsetof(lcsm_layer, in_b)},
    {W_CONV_W, offsetof(lcsm_layer, conv_w)},   {W_CONV_B, offsetof(lcsm_layer, conv_b)},
    {W_OUT_W, offsetof(lcsm_layer, out_w)},     {W_OUT_B, offsetof(lcsm_layer, out_b)},
    {W_NORM2_W, offsetof(lcsm_layer, norm2_w)}, {W_NORM2_B, offsetof(lcsm_layer, norm2_b)},
    {W_FC1_W, offsetof(lcsm_layer, fc1_w)},     {W_FC1_B, offsetof(lcsm_layer, fc1_b)},
    {W_FC2_W, offsetof(lcsm_layer, fc2_w)},     {W_FC2_B, offsetof(lcsm_layer, fc2_b)},
};
#define N_DEVICE_TENSORS (sizeof device_tensors / sizeof device_tensors[0])

/* Every tensor starts at a multiple of LCSM_ALIGN floats of the weight buffer,
 * so that device kernels may read rows as aligned vectors. */
static lcsm_status upload(lcsm_model *m, const lcsm_weights *w)
{
    lcsm_backend *be = m->be;
    const int globals[] = {W_EMB, W_LNF_W, W_LNF_B};
    size_t total = 0;
    for (size_t k = 0; k < 3; k++)
        total += lcsm_align_up(w->t[globals[k]].numel);
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (size_t k = 0; k < N_DEVICE_TENSORS; k++)
            total += lcsm_align_up(w->t[lcsm__widx(w, l, device_tensors[k].kind)].numel);
    m->wbuf_floats = total;
    lcsm_status st = be->ops->alloc(be, total * sizeof(float), &m->wbuf);
    if (st != LCSM_OK)
        return st;
    lcsm_ref cur = {m->wbuf, 0};
    lcsm_ref *global_refs[] = {&m->emb, &m->lnf_w, &m->lnf_b};
    for (size_t k = 0; k < 3 && st == LCSM_OK; k++) {
        const lcsm_tensor *t = &w->t[globals[k]];
        *global_refs[k] = cur;
        st = be->ops->write(be, cur, t->data, t->numel);
        cur = lcsm_ref_at(cur, lcsm_align_up(t->numel));
    }
    m->head = m->emb; /* tied */
    for (int l = 0; l < m->cfg.n_layer && st == LCSM_OK; l++)
        for (size_t k = 0; k < N_DEVICE_TENSORS && st == LCSM_OK; k++) {
            const lcsm_tensor *t = &w->t[lcsm__widx(w, l, device_tensors[k].kind)];
            *(lcsm_ref *)((char *)&m->layers[l] + device_tensors[k].field) = cur;
            st = be->ops->write(be, cur, t->data, t->numel);
            cur = lcsm_ref_at(cur, lcsm_align_up(t->numel));
        }
    return st;
}

/* Materialising the implicit filters (the filter MLP at every position of
 * l_max, for every layer) is O(layers * l_max * D * order) host work: seconds
 * to minutes for long models, so the layers are shared among threads. */
typedef struct filter_job {
    const lcsm_model *m;
    const lcsm_weights *w;
    float *h;
    atomic_int next;     /* the next layer to take */
    atomic_int status;   /* the first failure, else LCSM_OK */
} filter_job;

static void *filter_worker(void *arg)
{
    filter_job *j = arg;
    const lcsm_model_config *c = &j->m->cfg;
    const lcsm_weights *w = j->w;
    const size_t DL = (size_t)c->d_model * (size_t)c->l_max;
    for (int l; (l = atomic_fetch_add(&j->next, 1)) < c->n_layer && atomic_load(&j->status) == LCSM_OK;) {
        lcsm_filter_params p = {
            .z = w->t[lcsm__widx(w, l, W_Z)].data,
            .t = w->t[lcsm__widx(w, l, W_T)].data,
            .freq = w->t[lcsm__widx(w, l, W_FREQ)].data,
            .deltas = w->t[lcsm__widx(w, l, W_DELTAS)].data,
            .n_inner = c->num_inner_mlps,
            .emb_dim = c->emb_dim,
            .order = c->filter_order,
            .D = c->d_model,
        };
        for (int k = 0; k < c->num_inner_mlps + 2; k++) {
            p.w[k] = w->t[lcsm__flin_weight(w, l, k)].data;
            int bi = lcsm__flin_bias(w, l, k);
            p.b[k] = bi >= 0 ? w->t[bi].data : NULL;
        }
        lcsm_status st = lcsm__filter_materialise(&p, j->m->opt.filter_shift, c->l_max, j->h + (size_t)l * DL);
        if (st != LCSM_OK) {
            int ok = LCSM_OK;
            atomic_compare_exchange_strong(&j->status, &ok, (int)st);
        }
    }
    return NULL;
}

static lcsm_status make_filters(lcsm_model *m, const lcsm_weights *w)
{
    const lcsm_model_config *c = &m->cfg;
    size_t D = (size_t)c->d_model, G = (size_t)c->n_layer, L = (size_t)c->l_max, n;
    if (lcsm__mul_overflows(G * D, L, &n))
        return LCSM_FAIL_BE(m->be, LCSM_ERR_OUT_OF_MEMORY, "filters of %zu x %zu x %zu floats overflow", G, D, L);
    float *h = lcsm__calloc(n, sizeof *h);
    float *dbias = lcsm__calloc(G * D, sizeof *dbias);
    lcsm_status st = h && dbias ? LCSM_OK : LCSM_ERR_OUT_OF_MEMORY;
    if (st == LCSM_OK) {
        filter_job job = {.m = m, .w = w, .h = h};
        atomic_init(&job.next, 0);
        atomic_init(&job.status, LCSM_OK);
        /* Always threaded (a thread costs ~50 us), so every test that loads a
         * model of 2+ layers runs this path; a helper that cannot be started
         * leaves its layers to the others. */
        enum { MAX_HELPERS = 63 };
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        int n_help = (int)(cpus < (long)G ? cpus : (long)G) - 1;
        n_help = n_help < 0 ? 0 : n_help > MAX_HELPERS ? MAX_HELPERS : n_help;
        pthread_t tid[MAX_HELPERS];
        int started = 0;
        while (started < n_help && pthread_create(&tid[started], NULL, filter_worker, &job) == 0)
            started++;
        filter_worker(&job);
        for (int i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
        st = (lcsm_status)atomic_load(&job.status);
        for (size_t l = 0; l < G; l++)
            memcpy(dbias + l * D, w->t[lcsm__widx(w, (int)l, W_FBIAS)].data, D * sizeof *dbias);
    }
    if (st == LCSM_OK)
        st = m->be->ops->filters_create(m->be, h, dbias, c->n_layer, c->d_model, c->l_max, &m->filters);
    else
        LCSM_FAIL_BE(m->be, st, "filters of %zu floats: out of host memory", n);
    lcsm__free(h);
    lcsm__free(dbias);
    return st;
}

lcsm_status lcsm__model_from_weights(lcsm_backend *be, lcsm_weights *w, const lcsm_model_options *opt,
                                     lcsm_model **out)
{
    lcsm_model *m = lcsm__calloc(1, sizeof *m);
    lcsm_status st = LCSM_OK;
    if (!m || !(m->layers = lcsm__calloc((size_t)w->cfg.n_layer, sizeof *m->layers))) {
        lcsm__free(m);
        lcsm__weights_free(w);
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "model handle");
    }
    m->be = be;
    m->cfg = w->cfg;
    if (opt)
        m->opt = *opt;
    else
        lcsm_model_options_default(&m->opt);
    m->n_vocab = w->n_vocab;
    m->host = w;
    pthread_mutex_init(&m->lock, NULL);
    for (int i = 0; i < w->n; i++)
        m->n_params += w->t[i].numel;
    st = upload(m, w);
    if (st == LCSM_OK)
        st = make_filters(m, w);
    if (st == LCSM_OK && !m->opt.defer_spectra)
        st = be->ops->filters_prepare(be, m->filters, lcsm_schedule_max_tile(0, m->cfg.l_max));
    if (st != LCSM_OK) {
        lcsm__relay(NULL, 0, st, be->last_error);
        lcsm_model_destroy(m);
        return st;
    }
    *out = m;
    return LCSM_OK;
}

lcsm_status lcsm_model_load(lcsm_backend *be, const char *dir, const lcsm_model_options *opt, lcsm_model **out)
{
    if (out)
        *out = NULL;
    if (!be || !dir || !out)
        return lcsm__fail(be ? be->last_error : NULL, be ? sizeof be->last_error : 0,
                          LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_load: NULL argument");
    char path[4096], st_path[4096];
    lcsm_model_config cfg;
    lcsm_status st = lcsm__path_join(path, sizeof path, dir, "config.json", be->last_error, sizeof be->last_error);
    if (st == LCSM_OK)
        st = lcsm__path_join(st_path, sizeof st_path, dir, "model.safetensors", be->last_error,
                             sizeof be->last_error);
    if (st == LCSM_OK)
        st = lcsm__config_read(path, &cfg, be->last_error, sizeof be->last_error);
    if (st != LCSM_OK)
        return lcsm__relay(NULL, 0, st, be->last_error);
    lcsm_weights *w = lcsm__weights_alloc(&cfg);
    if (!w)
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "%s: weights of this config do not fit in memory", dir);
    st = lcsm__weights_load(w, st_path, be->last_error, sizeof be->last_error);
    if (st != LCSM_OK) {
        lcsm__weights_free(w);
        return lcsm__relay(NULL, 0, st, be->last_error);
    }
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
    lcsm_status st = lcsm__config_check(cfg, be->last_error, sizeof be->last_error);
    if (st != LCSM_OK)
        return lcsm__relay(NULL, 0, st, be->last_error);
    lcsm_weights *w = lcsm__weights_alloc(cfg);
    if (!w)
        return LCSM_FAIL_BE(be, LCSM_ERR_OUT_OF_MEMORY, "weights of this config do not fit in memory");
    lcsm__weights_randomise(w, seed);
    return lcsm__model_from_weights(be, w, opt, out);
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
    lcsm_status st = lcsm__path_join(path, sizeof path, dir, "config.json", m->last_error, sizeof m->last_error);
    if (st == LCSM_OK)
        st = lcsm__path_join(st_path, sizeof st_path, dir, "model.safetensors", m->last_error,
                             sizeof m->last_error);
    if (st != LCSM_OK)
        return lcsm__relay(NULL, 0, st, m->last_error);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return lcsm__fail(m->last_error, sizeof m->last_error, LCSM_ERR_IO, "%s: %s", dir, strerror(errno));
    st = lcsm__config_write(path, &m->cfg, m->last_error, sizeof m->last_error);
    if (st == LCSM_OK)
        st = lcsm__weights_save(m->host, st_path, m->last_error, sizeof m->last_error);
    return st == LCSM_OK ? st : lcsm__relay(NULL, 0, st, m->last_error);
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
    lcsm__free(m->layers);
    lcsm__free(m);
}

lcsm_status lcsm_model_get_info(const lcsm_model *m, lcsm_model_info *info)
{
    if (!m || !info)
        return lcsm__fail(NULL, 0, LCSM_ERR_INVALID_ARGUMENT, "lcsm_model_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    info->config = m->cfg;
    info->n_vocab = m->n_vocab;
    info->n_params = m->n_params;
    info->weight_bytes = m->wbuf_floats * sizeof(float) + m->be->ops->filters_bytes(m->filters);
    return LCSM_OK;
}

const char *lcsm_model_last_error(const lcsm_model *m) { return m ? m->last_error : ""; }
