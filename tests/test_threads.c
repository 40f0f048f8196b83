/*
 * One model shared by sessions on several threads gives the same logits as the
 * same sessions run one after another (bitwise: every backend operation is
 * deterministic, and concurrent sessions only share read-only model data and the
 * backend's serialised pool). And calls that fail at once on several threads
 * (refused sessions, forwards and loads on one model and backend) each return
 * their own status and message, while others read the handles' messages. Run
 * it under the tsan preset to check for races.
 */
#include "testutil.h"

#include <pthread.h>

enum { N_SESS = 4, LEN = 150, PROMPT = 40 };

typedef struct job {
    lcsm_model *m;
    lcsm_algo algo;
    int batch, prompt;
    const int32_t *tok; /* [batch][LEN] */
    float *logits;      /* [LEN][batch][V] */
    int V;
    lcsm_status st;
} job;

static void *run(void *arg)
{
    job *j = arg;
    lcsm_session_options so;
    lcsm_session_options_default(&so);
    so.batch = j->batch;
    so.max_len = LEN;
    so.algo = j->algo;
    lcsm_session *s = NULL;
    j->st = lcsm_session_create(j->m, &so, &s);
    int32_t *buf = malloc(sizeof *buf * (size_t)j->batch * LEN);
    for (int b = 0; j->st == LCSM_OK && b < j->batch; b++)
        memcpy(buf + (size_t)b * j->prompt, j->tok + (size_t)b * LEN, sizeof *buf * (size_t)j->prompt);
    if (j->st == LCSM_OK && j->prompt)
        j->st = lcsm_session_prefill(s, buf, j->prompt, j->logits + (size_t)(j->prompt - 1) * j->batch * j->V);
    for (int t = j->prompt; j->st == LCSM_OK && t < LEN; t++) {
        for (int b = 0; b < j->batch; b++)
            buf[b] = j->tok[(size_t)b * LEN + t];
        j->st = lcsm_session_step(s, buf, j->logits + (size_t)t * j->batch * j->V);
    }
    free(buf);
    lcsm_session_destroy(s);
    return NULL;
}

/* Failing calls on a shared model and backend, and readers of their messages. */
typedef struct fail_job {
    lcsm_backend *be;
    lcsm_model *m;
    int kind, ok;
} fail_job;

static void *fail_run(void *arg)
{
    fail_job *j = arg;
    j->ok = 1;
    for (int it = 0; it < 200; it++) {
        lcsm_status st, want;
        const char *needle;
        if (j->kind == 0) { /* a session longer than l_max */
            lcsm_session_options so;
            lcsm_session_options_default(&so);
            so.max_len = 1 << 30;
            lcsm_session *s = NULL;
            st = lcsm_session_create(j->m, &so, &s), want = LCSM_ERR_LENGTH, needle = "max_len";
        } else if (j->kind == 1) { /* a forward of an id outside the vocabulary */
            int32_t ids[2] = {1, 1 << 20};
            float lg[2 * 16 * 4];
            st = lcsm_model_forward(j->m, ids, 1, 2, lg), want = LCSM_ERR_TOKEN_RANGE, needle = "token id";
        } else if (j->kind == 2) { /* a load of a directory that does not exist */
            lcsm_model *m = NULL;
            st = lcsm_model_load(j->be, "/nonexistent/lcsm-test", NULL, &m), want = LCSM_ERR_IO, needle = "nonexistent";
        } else { /* reading the handles' messages meanwhile */
            st = want = LCSM_OK, needle = NULL;
            j->ok &= strlen(lcsm_model_last_error(j->m)) < 512 && strlen(lcsm_backend_last_error(j->be)) < 512;
        }
        j->ok &= st == want && (!needle || strstr(lcsm_last_error(), needle) != NULL);
    }
    return NULL;
}

static void check_concurrent_failures(lcsm_backend *be, lcsm_model *m)
{
    fail_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (fail_job){be, m, i, 0};
        CHECK(pthread_create(&th[i], NULL, fail_run, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].ok, "concurrent failures, kind %d: a wrong status or message", i);
    }
}

int main(void)
{
    uint64_t rng = tu_seed();
    const char *backends[8];
    int nb = tu_backends(backends);
    for (int bi = 0; bi < nb; bi++) {
        int skip;
        lcsm_backend *be = tu_backend_open(backends[bi], 8, &skip);
        if (skip && nb == 1)
            return 77;
        if (!be)
            continue;
        lcsm_model_config cfg;
        lcsm_model_config_default(&cfg);
        cfg.d_model = 32;
        cfg.d_inner = 128;
        cfg.l_max = LEN;
        cfg.filter_order = 16;
        lcsm_model *m = NULL;
        CHECK_OK(lcsm_model_create_random(be, &cfg, tu_next(&rng), NULL, &m));
        lcsm_model_info info;
        CHECK_OK(lcsm_model_get_info(m, &info));
        const lcsm_algo algos[N_SESS] = {LCSM_ALGO_FLASH, LCSM_ALGO_LAZY, LCSM_ALGO_EAGER, LCSM_ALGO_FLASH};
        const int batches[N_SESS] = {1, 2, 3, 2}, prompts[N_SESS] = {0, PROMPT, 1, PROMPT};
        job serial[N_SESS], para[N_SESS];
        int32_t *tok[N_SESS];
        for (int i = 0; i < N_SESS && m; i++) {
            tok[i] = malloc(sizeof *tok[i] * (size_t)batches[i] * LEN);
            for (int k = 0; k < batches[i] * LEN; k++)
                tok[i][k] = (int32_t)(tu_next(&rng) % 12);
            size_t n = (size_t)LEN * batches[i] * info.n_vocab;
            serial[i] = (job){m, algos[i], batches[i], prompts[i], tok[i], calloc(n, sizeof(float)), info.n_vocab, 0};
            para[i] = serial[i];
            para[i].logits = calloc(n, sizeof(float));
            run(&serial[i]); /* one after another */
        }
        pthread_t th[N_SESS];
        for (int i = 0; i < N_SESS && m; i++)
            CHECK(pthread_create(&th[i], NULL, run, &para[i]) == 0, "pthread_create");
        for (int i = 0; i < N_SESS && m; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < N_SESS && m; i++) {
            size_t n = (size_t)LEN * batches[i] * info.n_vocab;
            CHECK(serial[i].st == LCSM_OK && para[i].st == LCSM_OK, "session %d: %s / %s", i,
                  lcsm_strerror(serial[i].st), lcsm_strerror(para[i].st));
            CHECK(!memcmp(serial[i].logits, para[i].logits, n * sizeof(float)),
                  "session %d (%s, batch %d): threaded logits differ from serial ones (rel err %.3g)", i,
                  lcsm_algo_name(algos[i]), batches[i], tu_rel_err_f(para[i].logits, serial[i].logits, n));
            free(serial[i].logits);
            free(para[i].logits);
            free(tok[i]);
        }
        printf("%s: %d sessions on %d threads, logits bitwise equal to serial runs\n", backends[bi], N_SESS, N_SESS);
        if (m)
            check_concurrent_failures(be, m);
        lcsm_model_destroy(m);
        lcsm_backend_destroy(be);
    }
    return tu_finish("test_threads");
}
