/*
 * Causal softmax attention on the CPU (src/backend.h, lcsm_attn_args): rotary
 * embedding of q and k in place, k and v into the caches, then each query row
 * against every cached position up to its own with an online softmax (running
 * maximum and sum), so no score matrix is ever formed: O(hd) memory per row.
 * Rows x query heads are split over the pool.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

/* The caches' element k of row (b, position, kv head) as a float, and stores. */
static inline float cache_get(const void *c, lcsm_dtype dt, size_t i)
{
    if (dt == LCSM_DT_F32)
        return ((const float *)c)[i];
    uint16_t h = ((const uint16_t *)c)[i];
    if (dt == LCSM_DT_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return cpu_f16_to_f32(h);
}

static inline void cache_put(void *c, lcsm_dtype dt, size_t i, float v)
{
    if (dt == LCSM_DT_F32)
        ((float *)c)[i] = v;
    else
        ((uint16_t *)c)[i] = dt == LCSM_DT_BF16 ? lcsm__f32_to_bf16(v) : lcsm__f32_to_f16(v);
}

/* Rotates the pairs (j, j + hd/2) of x by angle (pos / scale) * inv[j]. */
static void rope(float *x, int hd, int pos, float scale, const float *inv)
{
    const int half = hd / 2;
    const float p = (float)pos / scale;
    for (int j = 0; j < half; j++) {
        const float th = p * inv[j], c = cosf(th), s = sinf(th), a = x[j], b = x[j + half];
        x[j] = a * c - b * s;
        x[j + half] = b * c + a * s;
    }
}

typedef struct attn_job {
    const lcsm_attn_args *a;
    float *qkv, *out;
    const void *kc, *vc;
    int n_tasks;
} attn_job;

/* Task = (row, query head). */
static void attn_task(void *ctx, int task, int thread)
{
    (void)thread;
    const attn_job *j = ctx;
    const lcsm_attn_args *a = j->a;
    const int H = a->H, Hkv = a->Hkv, hd = a->hd, W = (H + 2 * Hkv) * hd;
    const int row = task / H, h = task % H, b = row / a->len, t = row % a->len, g = h / (H / Hkv);
    const float *q = j->qkv + (size_t)row * W + (size_t)h * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float acc[CPU_ATTN_MAX_HD];
    float m = -INFINITY, l = 0.0f;
    memset(acc, 0, sizeof(float) * (size_t)hd);
    const int last = a->pos0 + t;
    for (int s = 0; s <= last; s++) {
        const size_t base = (((size_t)b * a->L + s) * Hkv + g) * hd;
        float dot = 0.0f;
        for (int k = 0; k < hd; k++)
            dot += q[k] * cache_get(j->kc, a->k_cache.dt, base + k);
        const float x = dot * scale;
        if (x > m) { /* rescale what was summed against the new maximum */
            const float r = expf(m - x);
            l *= r;
            for (int k = 0; k < hd; k++)
                acc[k] *= r;
            m = x;
        }
        const float e = expf(x - m);
        l += e;
        for (int k = 0; k < hd; k++)
            acc[k] += e * cache_get(j->vc, a->v_cache.dt, base + k);
    }
    float *o = j->out + (size_t)row * H * hd + (size_t)h * hd;
    for (int k = 0; k < hd; k++)
        o[k] = acc[k] / l;
}

lcsm_status cpu_attn(lcsm_backend *be, const lcsm_attn_args *a)
{
    cpu_backend *cb = (cpu_backend *)be;
    const int H = a->H, Hkv = a->Hkv, hd = a->hd, W = (H + 2 * Hkv) * hd, rows = a->B * a->len;
    if (hd > CPU_ATTN_MAX_HD || hd % 2)
        return LCSM_FAIL_BE(be, LCSM_ERR_UNSUPPORTED, "cpu: attention head width %d (even, at most %d)", hd,
                            CPU_ATTN_MAX_HD);
    float *qkv = cpu_ptr(a->qkv);
    void *kc = cpu_vptr(a->k_cache), *vc = cpu_vptr(a->v_cache);
    /* inv_freq[j] = base^(-2j/hd) in f32, as the published models compute it */
    float inv[CPU_ATTN_MAX_HD / 2];
    for (int k = 0; k < hd / 2; k++)
        inv[k] = a->rope_base > 0 ? 1.0f / powf(a->rope_base, (float)(2 * k) / (float)hd) : 0.0f;
    for (int r = 0; r < rows; r++) {
        const int b = r / a->len, pos = a->pos0 + r % a->len;
        float *x = qkv + (size_t)r * W;
        for (int h = 0; a->rope_base > 0 && h < H + Hkv; h++) /* q heads, then k heads */
            rope(x + (size_t)h * hd, hd, pos, a->rope_scale, inv);
        const size_t base = ((size_t)b * a->L + pos) * Hkv * hd;
        for (int k = 0; k < Hkv * hd; k++) {
            cache_put(kc, a->k_cache.dt, base + k, x[(size_t)H * hd + k]);
            cache_put(vc, a->v_cache.dt, base + k, x[(size_t)(H + Hkv) * hd + k]);
        }
    }
    attn_job j = {a, qkv, cpu_ptr(a->out), kc, vc, rows * H};
    lcsm_pool_run(cb->pool, rows * H, attn_task, &j);
    return LCSM_OK;
}
