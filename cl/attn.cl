/*
 * Causal softmax attention (src/backend.h, lcsm_attn_args). qkv rows are
 * [q (H heads) | k (Hkv) | v (Hkv)] of hd each; the caches [B][L][Hkv][hd] hold
 * f32, f16 (vstore_half / vload_half, no cl_khr_fp16 needed) or bf16.
 *
 *   attn_rope    rotates q and k in place (half split pairs (j, j + hd/2))
 *   attn_store   k and v of the rows into the caches at their positions
 *   attn_part    one work-group per (split, query head, row): the positions of
 *                its split in chunks of ATTN_CHUNK, scores in local memory, an
 *                online softmax (running maximum and sum) into each item's
 *                output dims; the result, or with several splits a partial
 *                (max, sum, acc) that attn_combine merges
 * No score matrix: memory per work-group is one chunk of scores.
 */
#define ATTN_WG 64
#define ATTN_CHUNK 256
#define ATTN_MAX_HD 256 /* head width a work-group's items cover (4 dims each) */

/* item (pair j, head, row) */
__kernel void attn_rope(__global float *qkv, ulong qo, int H, int Hkv, int hd, int len, int pos0, float base,
                        float scale)
{
    const int j = get_global_id(0), h = get_global_id(1), r = get_global_id(2), hh = hd / 2;
    if (j >= hh || h >= H + Hkv)
        return;
    __global float *x = qkv + qo + (size_t)r * (H + 2 * Hkv) * hd + (size_t)h * hd;
    const float inv = 1.0f / pow(base, (float)(2 * j) / (float)hd);
    const float th = ((float)(pos0 + r % len) / scale) * inv, c = cos(th), s = sin(th);
    const float a = x[j], b = x[j + hh];
    x[j] = a * c - b * s;
    x[j + hh] = b * c + a * s;
}

/* f32 -> bf16, rounding to nearest even (NaN kept) */
static ushort to_bf16(float f)
{
    uint u = as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((u >> 16) | 0x40);
    return (ushort)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

#define STORE_f32(p, i, v) ((p)[i] = (v))
#define STORE_f16(p, i, v) vstore_half((v), (i), (p))
#define STORE_bf16(p, i, v) ((p)[i] = to_bf16(v))

/* item (k < Hkv*hd, row) */
#define ATTN_STORE(NAME, T)                                                                                  \
    __kernel void NAME(__global const float *qkv, ulong qo, int H, int Hkv, int hd, int len, int pos0, int L,   \
                       __global WTYPE_##T *kc, ulong ko, __global WTYPE_##T *vc, ulong vo)                      \
    {                                                                                                        \
        const int k = get_global_id(0), r = get_global_id(1);                                                \
        if (k >= Hkv * hd)                                                                                   \
            return;                                                                                          \
        const int b = r / len, pos = pos0 + r % len;                                                         \
        __global const float *x = qkv + qo + (size_t)r * (H + 2 * Hkv) * hd;                                 \
        const size_t i = ((size_t)b * L + pos) * Hkv * hd + k;                                               \
        STORE_##T(kc + ko, i, x[(size_t)H * hd + k]);                                                       \
        STORE_##T(vc + vo, i, x[(size_t)(H + Hkv) * hd + k]);                                               \
    }
ATTN_STORE(attn_store, f32)
ATTN_STORE(attn_store_f16, f16)
ATTN_STORE(attn_store_bf16, bf16)

/* Work-group (split, head, row) of ATTN_WG items; part holds [rows][H][n_split]
 * of (max, sum, acc[hd]) when n_split > 1. */
#define ATTN_PART(NAME, T)                                                                                   \
    __kernel __attribute__((reqd_work_group_size(ATTN_WG, 1, 1))) void NAME(                                 \
        __global const float *qkv, ulong qo, int H, int Hkv, int hd, int len, int pos0, int L,                 \
        __global const WTYPE_##T *kc, ulong ko, __global const WTYPE_##T *vc, ulong vo, __global float *out,   \
        ulong oo, int n_split, __global float *part)                                                         \
    {                                                                                                        \
        __local float sc[ATTN_CHUNK];                                                                        \
        __local float red[ATTN_WG];                                                                          \
        __local float qs[ATTN_MAX_HD];                                                                       \
        const int l = get_local_id(0), sp = get_group_id(0), h = get_group_id(1), r = get_group_id(2);       \
        const int b = r / len, last = pos0 + r % len, g = h / (H / Hkv);                                     \
        const int n = last + 1, lo = (int)((long)n * sp / n_split), hi = (int)((long)n * (sp + 1) / n_split);  \
        __global const float *q = qkv + qo + (size_t)r * (H + 2 * Hkv) * hd + (size_t)h * hd;                \
        for (int k = l; k < hd; k += ATTN_WG)                                                                \
            qs[k] = q[k];                                                                                    \
        barrier(CLK_LOCAL_MEM_FENCE);                                                                        \
        const float scale = 1.0f / sqrt((float)hd);                                                          \
        float m = -INFINITY, sum = 0.0f, acc[ATTN_MAX_HD / ATTN_WG];                                         \
        for (int i = 0; i < ATTN_MAX_HD / ATTN_WG; i++)                                                      \
            acc[i] = 0.0f;                                                                                   \
        for (int c0 = lo; c0 < hi; c0 += ATTN_CHUNK) {                                                       \
            const int nc = hi - c0 < ATTN_CHUNK ? hi - c0 : ATTN_CHUNK;                                      \
            float cm = -INFINITY;                                                                            \
            for (int s = l; s < nc; s += ATTN_WG) {                                                          \
                __global const WTYPE_##T *kr = kc + ko + (((size_t)b * L + c0 + s) * Hkv + g) * hd;           \
                float d = 0.0f;                                                                              \
                for (int k = 0; k < hd; k++)                                                                 \
                    d += qs[k] * LOAD1_##T(kr, k);                                                           \
                sc[s] = d * scale;                                                                           \
                cm = fmax(cm, d * scale);                                                                    \
            }                                                                                                \
            red[l] = cm;                                                                                     \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                    \
            for (int w = ATTN_WG / 2; w > 0; w >>= 1) {                                                      \
                if (l < w)                                                                                   \
                    red[l] = fmax(red[l], red[l + w]);                                                       \
                barrier(CLK_LOCAL_MEM_FENCE);                                                                \
            }                                                                                                \
            const float nm = fmax(m, red[0]), rs = exp(m - nm);                                              \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                    \
            sum *= rs;                                                                                       \
            for (int i = 0; i < ATTN_MAX_HD / ATTN_WG; i++)                                                  \
                acc[i] *= rs;                                                                                \
            for (int s = 0; s < nc; s++) {                                                                   \
                const float e = exp(sc[s] - nm);                                                             \
                sum += e;                                                                                    \
                __global const WTYPE_##T *vr = vc + vo + (((size_t)b * L + c0 + s) * Hkv + g) * hd;           \
                for (int i = 0, k = l; k < hd; i++, k += ATTN_WG)                                            \
                    acc[i] += e * LOAD1_##T(vr, k);                                                          \
            }                                                                                                \
            m = nm;                                                                                          \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                    \
        }                                                                                                    \
        if (n_split == 1) {                                                                                  \
            __global float *o = out + oo + (size_t)r * H * hd + (size_t)h * hd;                              \
            for (int i = 0, k = l; k < hd; i++, k += ATTN_WG)                                                \
                o[k] = acc[i] / sum;                                                                         \
            return;                                                                                          \
        }                                                                                                    \
        __global float *p = part + (((size_t)r * H + h) * n_split + sp) * (hd + 2);                          \
        if (l == 0) {                                                                                        \
            p[0] = m;                                                                                        \
            p[1] = sum;                                                                                      \
        }                                                                                                    \
        for (int i = 0, k = l; k < hd; i++, k += ATTN_WG)                                                    \
            p[2 + k] = acc[i];                                                                               \
    }
ATTN_PART(attn_part, f32)
ATTN_PART(attn_part_f16, f16)
ATTN_PART(attn_part_bf16, bf16)

/* Merges the splits' partials: item (k, head, row). */
__kernel void attn_combine(__global const float *part, int H, int hd, int n_split, __global float *out, ulong oo)
{
    const int k = get_global_id(0), h = get_global_id(1), r = get_global_id(2);
    if (k >= hd)
        return;
    __global const float *p = part + ((size_t)r * H + h) * n_split * (hd + 2);
    float m = -INFINITY;
    for (int s = 0; s < n_split; s++)
        m = fmax(m, p[(size_t)s * (hd + 2)]);
    float sum = 0.0f, acc = 0.0f;
    for (int s = 0; s < n_split; s++) {
        const __global float *ps = p + (size_t)s * (hd + 2);
        const float w = ps[1] > 0.0f ? exp(ps[0] - m) : 0.0f; /* an empty split has sum 0 */
        sum += ps[1] * w;
        acc += ps[2 + k] * w;
    }
    out[oo + (size_t)r * H * hd + (size_t)h * hd + k] = acc / sum;
}
