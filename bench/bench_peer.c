#include "bench_peer.h"

#include "bench_cell.h"
#include "bench_models.h"
#include "lcsm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int bench_peer_parse(const char *spec, bench_peer *p)
{
    memset(p, 0, sizeof *p);
    if (strlen(spec) >= sizeof p->name)
        return -1;
    snprintf(p->name, sizeof p->name, "%s", spec);
    char base[32];
    snprintf(base, sizeof base, "%s", spec);
    char *plus = strchr(base, '+');
    if (plus) {
        if (strcmp(plus, "+graphs") != 0)
            return -1;
        *plus = 0;
        p->graphs = 1;
    }
    if (!strcmp(base, "torch"))
        return 0;
    if (!strcmp(base, "torch:cuda") || (!strcmp(base, "torch:cpu") && !p->graphs)) {
        snprintf(p->device, sizeof p->device, "%s", strcmp(base, "torch:cpu") ? "cuda" : "cpu");
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------ the model */

int bench_peer_save_model(const bench_model *model, int L, uint64_t seed, char *dir, size_t dir_cap, char *err,
                          size_t err_cap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dir_cap, "%s/lcsm-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, err_cap, "mkdtemp %s: %s", dir, strerror(errno));
        return -1;
    }
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(err, err_cap, "pipe: %s", strerror(errno));
        rmdir(dir);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The same config and seed as the lcsm cells (bench_cell.c), on the CPU
         * backend: the weights come from the seed alone, whatever the backend.
         * Spectra are deferred: saving needs none of them. */
        close(fd[0]);
        char msg[256] = "";
        lcsm_backend *be = NULL;
        lcsm_model *m = NULL;
        lcsm_model_options mo;
        lcsm_model_options_default(&mo);
        mo.defer_spectra = 1;
        lcsm_backend_options bo;
        lcsm_backend_options_default(&bo);
        bo.n_threads = 1;
        bo.fft_threshold = 64; /* no measurement: no tile runs here */
        lcsm_status st = lcsm_backend_create("cpu", &bo, &be);
        char *json = bench_model_config_json(model, L, 0);
        if (st == LCSM_OK)
            st = json ? lcsm_model_create_random_config(be, json, seed, &mo, &m) : LCSM_ERR_OUT_OF_MEMORY;
        free(json);
        if (st == LCSM_OK)
            st = lcsm_model_save(m, dir);
        if (st != LCSM_OK)
            snprintf(msg, sizeof msg, "%s: %s", lcsm_strerror(st), lcsm_last_error());
        lcsm_model_destroy(m);
        lcsm_backend_destroy(be);
        int bad = bench_write_all(fd[1], msg, sizeof msg) != 0;
        _exit(st != LCSM_OK || bad);
    }
    close(fd[1]);
    char msg[256] = "";
    int got = pid > 0 && bench_read_all(fd[0], msg, sizeof msg) == 0;
    close(fd[0]);
    int status = 1;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        msg[sizeof msg - 1] = '\0';
        snprintf(err, err_cap, "saving the model for the peer: %s", *msg ? msg : "the process failed");
        bench_peer_remove_model(dir);
        return -1;
    }
    return 0;
}

void bench_peer_remove_model(const char *dir)
{
    static const char *const files[] = {"config.json", "model.safetensors"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    if (rmdir(dir) != 0 && errno != ENOENT)
        fprintf(stderr, "lcsm-bench: could not remove %s: %s\n", dir, strerror(errno));
}

/* ------------------------------------------------------------- the run */

/* Reads the child's stdout to the end (or the deadline); returns the text
 * (malloc'd, NUL-terminated) or NULL on timeout / no memory. */
static char *read_output(int fd, double timeout_s, int *timed_out)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    const double deadline = bench_now() + timeout_s;
    *timed_out = 0;
    while (buf) {
        int wait_ms = -1;
        if (timeout_s > 0) {
            double left = deadline - bench_now();
            if (left <= 0) {
                *timed_out = 1;
                break;
            }
            wait_ms = left > 1e6 ? 1000000000 : (int)(left * 1e3) + 1;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, wait_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            continue; /* the deadline check above ends it */
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    if (*timed_out) {
        free(buf);
        return NULL;
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* The last non-empty line of `text` (modified in place). */
static char *last_line(char *text)
{
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = '\0';
    char *nl = strrchr(text, '\n');
    return nl ? nl + 1 : text;
}

static int get_number(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return -1;
    *out = v->valuedouble;
    return 0;
}

/* Fills r from the peer's JSON object; -1 with r->err set when it is not usable. */
static int parse_peer_json(const char *line, int L, int prompt, bench_result *r)
{
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
        snprintf(r->err, sizeof r->err, "peer printed no JSON object (last line: %.120s)", line);
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (e) {
        snprintf(r->err, sizeof r->err, "peer: %.200s", cJSON_IsString(e) ? e->valuestring : "error");
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(o, "lat_ms");
    const char *missing = NULL;
    if (get_number(o, "setup_s", &r->setup_s))
        missing = "setup_s";
    else if (get_number(o, "prefill_s", &r->prefill_s))
        missing = "prefill_s";
    else if (get_number(o, "gen_s", &r->gen_s))
        missing = "gen_s";
    else if (!cJSON_IsObject(lat) || get_number(lat, "p50", &r->lat.p50_ms) || get_number(lat, "p99", &r->lat.p99_ms) ||
             get_number(lat, "max", &r->lat.max_ms) || get_number(lat, "spike_frac", &r->lat.spike_frac))
        missing = "lat_ms {p50, p99, max, spike_frac}";
    if (missing) {
        snprintf(r->err, sizeof r->err, "peer output lacks %s", missing);
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(o, "device");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "torch");
    const cJSON *graphs = cJSON_GetObjectItemCaseSensitive(o, "cuda_graphs");
    snprintf(r->device, sizeof r->device, "%s", cJSON_IsString(dev) ? dev->valuestring : "?");
    snprintf(r->peer_version, sizeof r->peer_version, "%s", cJSON_IsString(ver) ? ver->valuestring : "?");
    r->cuda_graphs = cJSON_IsTrue(graphs);
    r->startup.model_s = r->setup_s;
    r->steps = L - prompt;
    r->total_s = r->prefill_s + r->gen_s;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "latencies_ms");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n > 0 && (r->lat_ms = malloc(sizeof *r->lat_ms * (size_t)n)) != NULL) {
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, arr) r->lat_ms[i++] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        r->n_lat = n;
    }
    cJSON_Delete(o);
    return 0;
}

void bench_run_peer(const bench_peer_opts *o, const bench_peer *p, const char *model_dir, bench_algo algo, int batch,
                    int L, int prompt, bench_result *r)
{
    memset(r, 0, sizeof *r);
    char sb[16], sl[16], sp[16], st[16], sw[16];
    snprintf(sb, sizeof sb, "%d", batch);
    snprintf(sl, sizeof sl, "%d", L);
    snprintf(sp, sizeof sp, "%d", prompt);
    snprintf(st, sizeof st, "%d", o->threads);
    snprintf(sw, sizeof sw, "%d", o->warmup);
    const char *argv[32];
    int n = 0;
    argv[n++] = o->python;
    argv[n++] = o->script;
    const char *fixed[] = {"--model", model_dir, "--algo", bench_algo_name(algo), "--batch", sb, "--len", sl,
                           "--prompt", sp, "--warmup", sw};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = fixed[i];
    if (*p->device) {
        argv[n++] = "--device";
        argv[n++] = p->device;
    }
    if (o->threads > 0) {
        argv[n++] = "--threads";
        argv[n++] = st;
    }
    if ((o->cuda_graphs || p->graphs) && strcmp(p->device, "cpu") != 0) /* graphs are CUDA's */
        argv[n++] = "--cuda-graphs";
    if (o->latencies)
        argv[n++] = "--latencies";
    argv[n] = NULL;

    int fd[2];
    pid_t pid = bench_fork_pipe(fd, r->err, sizeof r->err);
    if (pid < 0)
        return;
    if (pid == 0) {
        close(fd[0]);
        if (dup2(fd[1], STDOUT_FILENO) < 0)
            _exit(127);
        close(fd[1]);
        execv(o->python, (char *const *)argv);
        fprintf(stderr, "lcsm-bench: cannot run %s: %s\n", o->python, strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    int timed_out = 0;
    char *text = read_output(fd[0], o->timeout_s, &timed_out);
    if (timed_out)
        kill(pid, SIGKILL);
    close(fd[0]);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR)
        ;
    r->host_peak_mib = ru.ru_maxrss / 1024.0;
    if (timed_out) {
        snprintf(r->err, sizeof r->err, "peer timed out after %.0f s (--peer-timeout)", o->timeout_s);
    } else if (!text) {
        snprintf(r->err, sizeof r->err, "out of memory reading the peer's output");
    } else if (parse_peer_json(last_line(text), L, prompt, r) == 0) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            r->ok = 1;
        else
            snprintf(r->err, sizeof r->err, "peer printed results but exited with status %d", status);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !*text) {
        snprintf(r->err, sizeof r->err, "could not run %s %s", o->python, o->script);
    }
    free(text);
    if (!r->ok) {
        free(r->lat_ms);
        r->lat_ms = NULL;
        r->n_lat = 0;
    }
}
