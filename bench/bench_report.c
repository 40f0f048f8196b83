#include "bench_report.h"

#include "bench_models.h"
#include "lcsm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench_commit.h" /* LCSM_BENCH_COMMIT, written at every build (cmake/bench_commit.cmake) */

/* ------------------------------------------------------------- machine */

static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (colon && !strncmp(line, "model name", 10)) {
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, cap, "%s", colon);
            break;
        }
    }
    fclose(f);
}

void bench_machine_describe(bench_machine *m)
{
    memset(m, 0, sizeof *m);
    gethostname(m->host, sizeof m->host - 1);
    cpu_model(m->cpu, sizeof m->cpu);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->os, sizeof m->os, "%.40s %.60s %.20s", u.sysname, u.release, u.machine);
    snprintf(m->commit, sizeof m->commit, "%s", LCSM_BENCH_COMMIT);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->started, sizeof m->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    m->cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    m->mem_gib = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0 * 1024.0);
}

void bench_model_label(const bench_model *m, char *buf, size_t cap)
{
    if (m->preset) {
        snprintf(buf, cap, "%s", m->preset->name);
        return;
    }
    if (!m->dir) {
        if (m->arch && strcmp(m->arch, "hyenadna"))
            snprintf(buf, cap, "%s:%dx%d", m->arch, m->d_model, m->n_layer);
        else
            snprintf(buf, cap, "%dx%d", m->d_model, m->n_layer);
        return;
    }
    size_t n = strlen(m->dir);
    while (n > 1 && m->dir[n - 1] == '/')
        n--;
    size_t s = n;
    while (s > 0 && m->dir[s - 1] != '/')
        s--;
    snprintf(buf, cap, "%.*s", (int)(n - s), m->dir + s);
}

/* --------------------------------------------------------------- table */

static int model_width = 9;

void bench_set_model_width(int width) { model_width = width < 9 ? 9 : width > 40 ? 40 : width; }

#define ROW_HEAD "%-*.*s %2d %7d %-10.10s %-9s %-4s"
#define ROW_ARGS(label, row, al) model_width, model_width, label, (row)->batch, (row)->L, (row)->backend, al, \
                                 bench_weights_name((row)->weights)

/* "flash", or "flash+t" for a model with modal layers loaded with modal_tiled
 * (flash, lazy and eager then tile its modal filters). */
static const char *algo_label(const bench_row *row, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", bench_algo_name(row->algo),
             row->modal_tiled && bench_model_has_modal(row->model) ? "+t" : "");
    return buf;
}

void bench_print_table_header(void)
{
    printf("%-*s %2s %7s %-10s %-9s %-4s | %8s %8s %8s %9s | %7s %7s %7s %6s | %8s %8s | %7s %8s %8s | %6s %7s "
           "%6s\n",
           model_width, "model", "B", "L", "backend", "algo", "wts", "total s", "ms/tok", "tok/s", "prefill s", "p50 ms", "p99 ms",
           "max ms", "spikes", "mixer ms", "rest ms", "setup s", "host MiB", "dev MiB", "x lazy", "x mixer", "x f32");
}

static void fmt_or_dash(char *buf, size_t cap, const char *fmt, double v, int have)
{
    if (have)
        snprintf(buf, cap, fmt, v);
    else
        snprintf(buf, cap, "-");
}

void bench_print_row(const bench_row *row, const bench_result *r, double x_lazy, double x_lazy_mixer, double x_f32)
{
    char label[64], mix[16], rest[16], dev[16], xl[16], xm[16], xf[16], al[24];
    bench_model_label(row->model, label, sizeof label);
    const double steps = r->steps > 0 ? (double)r->steps : 1;
    const int split = r->split[0] != '\0', is_lcsm = !strcmp(row->impl, "lcsm");
    fmt_or_dash(mix, sizeof mix, "%.3f", 1e3 * r->mixer_s / steps, split);
    fmt_or_dash(rest, sizeof rest, "%.3f", 1e3 * r->dense_s / steps, split);
    fmt_or_dash(dev, sizeof dev, "%.0f", r->device_peak_mib, is_lcsm);
    fmt_or_dash(xl, sizeof xl, "%.2f", x_lazy, x_lazy > 0);
    fmt_or_dash(xm, sizeof xm, "%.2f", x_lazy_mixer, x_lazy_mixer > 0);
    fmt_or_dash(xf, sizeof xf, "%.2f", x_f32, x_f32 > 0);
    printf(ROW_HEAD " | %8.2f %8.3f %8.0f %9.3f | %7.3f %7.3f %7.2f %5.1f%% | %8s %8s | %7.2f %8.0f %8s | %6s %7s "
                    "%6s\n",
           ROW_ARGS(label, row, algo_label(row, al, sizeof al)), r->total_s, 1e3 * r->gen_s / steps, row->batch * steps / (r->total_s > 0 ? r->total_s : 1), r->prefill_s,
           r->lat.p50_ms, r->lat.p99_ms, r->lat.max_ms, 100 * r->lat.spike_frac, mix, rest, r->setup_s,
           r->host_peak_mib, dev, xl, xm, xf);
    fflush(stdout);
}

void bench_print_not_run(const bench_row *row, const char *what, const char *why)
{
    char label[64], al[24], chunk[16] = "";
    bench_model_label(row->model, label, sizeof label);
    if (row->mode == BENCH_PREFILL)
        snprintf(chunk, sizeof chunk, " %6d", row->chunk);
    printf(ROW_HEAD "%s | %s: %s\n", ROW_ARGS(label, row, algo_label(row, al, sizeof al)), chunk, what, why);
    fflush(stdout);
}

/* Peak memory per prompt token: KiB of `peak_mib` over B x P tokens. */
static double kib_per_token(double peak_mib, const bench_row *row)
{
    return peak_mib * 1024.0 / ((double)row->batch * row->L);
}

void bench_print_prefill_header(void)
{
    printf("%-*s %2s %7s %-10s %-9s %-4s %6s | %9s %9s | %8s %7s %8s %7s | %9s %10s | %7s | %6s %7s\n", model_width,
           "model", "B",
           "P", "backend", "algo", "wts", "chunk", "prefill s", "tok/s", "host MiB", "KiB/tok", "dev MiB", "KiB/tok",
           "state MiB", "weight MiB", "setup s", "x f32", "x whole");
}

void bench_print_prefill_row(const bench_row *row, const bench_result *r, double x_f32, double x_whole)
{
    char label[64], al[24], dev[16], dev_tok[16], xf[16], xw[16];
    bench_model_label(row->model, label, sizeof label);
    const int on_device = r->device_peak_mib > 0;
    fmt_or_dash(dev, sizeof dev, "%.0f", r->device_peak_mib, on_device);
    fmt_or_dash(dev_tok, sizeof dev_tok, "%.2f", kib_per_token(r->device_peak_mib, row), on_device);
    fmt_or_dash(xf, sizeof xf, "%.2f", x_f32, x_f32 > 0);
    fmt_or_dash(xw, sizeof xw, "%.2f", x_whole, x_whole > 0);
    printf(ROW_HEAD " %6d | %9.3f %9.0f | %8.0f %7.2f %8s %7s | %9.1f %10.1f | %7.2f | %6s %7s\n",
           ROW_ARGS(label, row, algo_label(row, al, sizeof al)), row->chunk,
           r->prefill_s, row->batch * (double)row->L / (r->prefill_s > 0 ? r->prefill_s : 1), r->host_peak_mib,
           kib_per_token(r->host_peak_mib, row), dev, dev_tok, r->state_mib, r->weight_mib, r->setup_s, xf, xw);
    fflush(stdout);
}

/* ---------------------------------------------------------------- JSON */

static cJSON *json_common(const bench_machine *m, const bench_row *row, const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "tool", "lcsm-bench");
    cJSON_AddStringToObject(o, "lcsm_version", lcsm_version_string());
    cJSON_AddStringToObject(o, "commit", m->commit);
    cJSON_AddStringToObject(o, "run_started", m->started);
    cJSON *mach = cJSON_AddObjectToObject(o, "machine");
    cJSON_AddStringToObject(mach, "host", m->host);
    cJSON_AddStringToObject(mach, "cpu", m->cpu);
    cJSON_AddNumberToObject(mach, "cpus", m->cpus);
    cJSON_AddNumberToObject(mach, "mem_gib", round(m->mem_gib * 10) / 10);
    cJSON_AddStringToObject(mach, "os", m->os);
    char label[64];
    bench_model_label(row->model, label, sizeof label);
    cJSON *model = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(model, "name", label);
    if (row->model->dir)
        cJSON_AddStringToObject(model, "dir", row->model->dir);
    cJSON_AddNumberToObject(model, "d_model", row->d_model);
    cJSON_AddNumberToObject(model, "n_layer", row->n_layer);
    if (row->model->arch)
        cJSON_AddStringToObject(model, "arch", row->model->arch);
    else
        cJSON_AddNullToObject(model, "arch");
    if (row->model->preset) {
        const bench_preset *p = row->model->preset;
        cJSON_AddStringToObject(model, "preset", p->name);
        cJSON_AddStringToObject(model, "preset_source", p->source);
        cJSON *a = cJSON_AddArrayToObject(model, "attention_layers");
        for (int l = 0; l < p->layers; l++)
            if (p->kinds[l] == 'A')
                cJSON_AddItemToArray(a, cJSON_CreateNumber(l));
    }
    cJSON_AddStringToObject(o, "mode", row->mode == BENCH_PREFILL ? "prefill" : "decode");
    cJSON_AddNumberToObject(o, "batch", row->batch);
    cJSON_AddNumberToObject(o, "L", row->L);
    cJSON_AddNumberToObject(o, "prompt", row->mode == BENCH_PREFILL ? row->L : row->prompt);
    return o;
}

static void emit(FILE *f, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fprintf(f, "%s\n", s);
        fflush(f);
    }
    cJSON_free(s);
    cJSON_Delete(o);
}

static void add_number_or_null(cJSON *o, const char *key, double v, int have)
{
    if (have && isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

void bench_json_cell(FILE *f, const bench_machine *m, const bench_row *row, const bench_result *r,
                     const char *status, const char *reason, double estimate_s, int latencies)
{
    if (!f)
        return;
    const int prefill = row->mode == BENCH_PREFILL;
    cJSON *o = json_common(m, row, prefill ? "prefill" : "cell");
    const int is_lcsm = !strcmp(row->impl, "lcsm"), ok = !strcmp(status, "ok");
    cJSON_AddStringToObject(o, "impl", is_lcsm ? "lcsm" : "torch");
    cJSON_AddStringToObject(o, "backend", row->backend);
    cJSON_AddStringToObject(o, "algo", bench_algo_name(row->algo));
    cJSON_AddStringToObject(o, "weights", bench_weights_name(row->weights));
    cJSON_AddBoolToObject(o, "modal_tiled", row->modal_tiled);
    if (prefill)
        cJSON_AddNumberToObject(o, "chunk", row->chunk);
    cJSON_AddStringToObject(o, "status", status);
    if (reason)
        cJSON_AddStringToObject(o, "reason", reason);
    if (estimate_s > 0)
        cJSON_AddNumberToObject(o, "estimate_s", estimate_s);
    if (!ok || !r) {
        emit(f, o);
        return;
    }
    cJSON_AddStringToObject(o, "device", r->device);
    if (!is_lcsm) {
        cJSON_AddStringToObject(o, "peer_version", r->peer_version);
        cJSON_AddBoolToObject(o, "cuda_graphs", r->cuda_graphs);
    } else {
        cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
        cJSON_ReplaceItemInObject(model, "d_model", cJSON_CreateNumber(r->d_model));
        cJSON_ReplaceItemInObject(model, "n_layer", cJSON_CreateNumber(r->n_layer));
        cJSON_AddNumberToObject(model, "d_inner", r->d_inner);
        cJSON_AddNumberToObject(model, "l_max", r->l_max);
        cJSON_ReplaceItemInObject(model, "arch", cJSON_CreateString(r->arch));
        cJSON_AddStringToObject(model, "layers", r->layers);
        cJSON_AddNumberToObject(model, "n_tiled_convs", r->n_tiled_convs);
        cJSON_AddNumberToObject(model, "lag", r->lag);
        cJSON_AddNumberToObject(model, "dense_mib", r->dense_mib);
        cJSON_AddNumberToObject(model, "state_bytes_per_token", r->state_bytes_per_token);
    }
    if (prefill) {
        const double tokens = (double)row->batch * row->L;
        cJSON_AddNumberToObject(o, "prefill_s", r->prefill_s);
        cJSON_AddNumberToObject(o, "prefill_tok_s", tokens / r->prefill_s);
        cJSON_AddNumberToObject(o, "calls", r->n_calls);
        cJSON_AddNumberToObject(o, "setup_s", r->setup_s);
        cJSON *su = cJSON_AddObjectToObject(o, "startup");
        cJSON_AddNumberToObject(su, "backend_s", r->startup.backend_s);
        cJSON_AddNumberToObject(su, "plan_s", r->startup.plan_s);
        cJSON_AddNumberToObject(su, "model_s", r->startup.model_s);
        cJSON_AddNumberToObject(su, "session_s", r->startup.session_s);
        cJSON_AddNumberToObject(o, "host_peak_mib", r->host_peak_mib);
        cJSON_AddNumberToObject(o, "host_kib_per_prompt_token", r->host_peak_mib * 1024.0 / tokens);
        cJSON_AddNumberToObject(o, "device_peak_mib", r->device_peak_mib);
        cJSON_AddNumberToObject(o, "device_kib_per_prompt_token", r->device_peak_mib * 1024.0 / tokens);
        cJSON_AddNumberToObject(o, "state_mib", r->state_mib);
        cJSON_AddNumberToObject(o, "weight_mib", r->weight_mib);
        char h[20];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)r->tokens_hash);
        cJSON_AddStringToObject(o, "next_tokens_hash", h);
        emit(f, o);
        return;
    }
    const double steps = r->steps > 0 ? (double)r->steps : 1;
    cJSON_AddNumberToObject(o, "steps", (double)r->steps);
    cJSON_AddNumberToObject(o, "total_s", r->total_s);
    cJSON_AddNumberToObject(o, "prefill_s", r->prefill_s);
    cJSON_AddNumberToObject(o, "gen_s", r->gen_s);
    cJSON_AddNumberToObject(o, "ms_per_tok", 1e3 * r->gen_s / steps);
    cJSON_AddNumberToObject(o, "tok_s", row->batch * steps / r->total_s);
    cJSON *lat = cJSON_AddObjectToObject(o, "lat_ms");
    cJSON_AddNumberToObject(lat, "p50", r->lat.p50_ms);
    cJSON_AddNumberToObject(lat, "p99", r->lat.p99_ms);
    cJSON_AddNumberToObject(lat, "max", r->lat.max_ms);
    cJSON_AddNumberToObject(lat, "spike_frac", r->lat.spike_frac);
    const int split = r->split[0] != '\0';
    if (split)
        cJSON_AddStringToObject(o, "split", r->split);
    else
        cJSON_AddNullToObject(o, "split");
    add_number_or_null(o, "mixer_s", r->mixer_s, split);
    add_number_or_null(o, "tiles_s", r->tiles_s, split);
    add_number_or_null(o, "dense_s", r->dense_s, split);
    cJSON_AddNumberToObject(o, "setup_s", r->setup_s);
    if (is_lcsm) {
        cJSON *su = cJSON_AddObjectToObject(o, "startup");
        cJSON_AddNumberToObject(su, "backend_s", r->startup.backend_s);
        cJSON_AddNumberToObject(su, "kernel_build_s", r->startup.kernel_build_s);
        cJSON_AddBoolToObject(su, "kernels_from_cache", r->startup.kernels_from_cache);
        cJSON_AddNumberToObject(su, "plan_s", r->startup.plan_s);
        cJSON_AddNumberToObject(su, "model_s", r->startup.model_s);
        cJSON_AddNumberToObject(su, "session_s", r->startup.session_s);
        cJSON_AddNumberToObject(o, "device_peak_mib", r->device_peak_mib);
        cJSON_AddNumberToObject(o, "state_mib", r->state_mib);
        cJSON_AddNumberToObject(o, "weight_mib", r->weight_mib);
    }
    cJSON_AddNumberToObject(o, "host_peak_mib", r->host_peak_mib);
    if (r->has_tokens) {
        char h[20];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)r->tokens_hash);
        cJSON_AddStringToObject(o, "tokens_hash", h);
    }
    if (latencies && r->lat_ms && r->n_lat > 0) {
        cJSON *a = cJSON_AddArrayToObject(o, "latencies_ms");
        for (int i = 0; i < r->n_lat; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(round(r->lat_ms[i] * 1e4) / 1e4));
    }
    emit(f, o);
}

void bench_json_ratio(FILE *f, const bench_machine *m, const bench_row *row, bench_side a, bench_side b,
                      const char *what, double speedup)
{
    if (!f)
        return;
    cJSON *o = json_common(m, row, "ratio");
    cJSON_AddStringToObject(o, "a", a.name);
    cJSON_AddStringToObject(o, "b", b.name);
    cJSON_AddStringToObject(o, "a_weights", bench_weights_name(a.weights));
    cJSON_AddStringToObject(o, "b_weights", bench_weights_name(b.weights));
    cJSON_AddBoolToObject(o, "modal_tiled", row->modal_tiled);
    if (row->mode == BENCH_PREFILL) {
        cJSON_AddNumberToObject(o, "a_chunk", a.chunk);
        cJSON_AddNumberToObject(o, "b_chunk", b.chunk);
    }
    cJSON_AddStringToObject(o, "what", what);
    cJSON_AddNumberToObject(o, "speedup", speedup);
    emit(f, o);
}
