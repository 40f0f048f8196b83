/*
 * Dense and per-token kernels of the OpenCL backend (see src/backend.h for the
 * meaning and layout of every operation). Buffers come with an offset in
 * elements of their type (ulong), so one device allocation holds many tensors.
 * Weight matrices and embeddings are f32, f16 (read with vload_half: no
 * cl_khr_fp16 needed) or bf16 (ushort, the top half of an f32): the kernels
 * that read them exist once per type (WEIGHT_KERNELS below) and accumulate in
 * f32. Built with -DWG=<n> (work-group size of the reductions) and the engine's
 * limits -DMAX_SHORT, -DMAX_STREAMS, -DMAX_STAGES (src/backend.h).
 */


/* Sum of v over the work-group (size WG, a power of two). */
static float wg_sum(float v, __local float *red)
{
    const int l = get_local_id(0);
    red[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG / 2; s > 0; s >>= 1) {
        if (l < s)
            red[l] += red[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

#define EMBED(NAME, T)                                                                                       \
    __kernel void NAME(__global const WTYPE_##T *E, ulong eo, __global const int *ids, ulong io, int D,        \
                       __global float *out, ulong oo)                                                          \
    {                                                                                                        \
        const int c = get_global_id(0), i = get_global_id(1), id = ids[io + i];                              \
        if (c < D) /* id -1: sample's mark of non-finite logits (a NaN row, never a read outside E) */      \
            out[oo + (size_t)i * D + c] = id >= 0 ? LOAD1_##T(E, eo + (size_t)id * D + c) : NAN;             \
    }
EMBED(embed, f32)
EMBED(embed_f16, f16)
EMBED(embed_bf16, bf16)

#define NORM_LAYER 0
#define NORM_RMS 1
#define NORM_RMS_SH 2 /* StripedHyena's: x / (||x|| / sqrt(D) + eps) */

/* One work-group per row. LayerNorm in two passes (mean, then centred
 * variance) like the CPU; the RMS kinds in one. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
norm(__global const float *x, ulong xo, __global const float *w, ulong wo, __global const float *b, ulong bo,
     int has_b, __global float *out, ulong oo, int D, float eps, int kind)
{
    __local float red[WG];
    const int l = get_local_id(0);
    const size_t row = get_group_id(1);
    x += xo + row * D;
    out += oo + row * D;
    w += wo;
    b += bo;
    float mean = 0.0f, scale;
    if (kind == NORM_LAYER) {
        float s = 0.0f;
        for (int i = l; i < D; i += WG)
            s += x[i];
        mean = wg_sum(s, red) / (float)D;
        float v = 0.0f;
        for (int i = l; i < D; i += WG) {
            float d = x[i] - mean;
            v += d * d;
        }
        scale = 1.0f / sqrt(wg_sum(v, red) / (float)D + eps);
    } else {
        float v = 0.0f;
        for (int i = l; i < D; i += WG)
            v += x[i] * x[i];
        const float ss = wg_sum(v, red);
        scale = kind == NORM_RMS ? 1.0f / sqrt(ss / (float)D + eps) : 1.0f / (sqrt(ss) / sqrt((float)D) + eps);
    }
    for (int i = l; i < D; i += WG)
        out[i] = (x[i] - mean) * scale * w[i] + (has_b ? b[i] : 0.0f);
}

#define FLAG_ACCUMULATE 1
#define ACT_OF(flags) (((flags) >> 1) & 7) /* src/backend.h: LCSM_LINEAR_ACT */
#define ACT_GELU_TANH 1
#define ACT_GELU 2
#define ACT_SILU 3

static float act(int a, float x)
{
    switch (a) {
    case ACT_GELU_TANH: return 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ACT_GELU: return 0.5f * x * (1.0f + erf(x * 0.7071067811865476f));
    case ACT_SILU: return x / (1.0f + exp(-x));
    default: return x;
    }
}

static float epilogue(float v, __global const float *bias, int has_bias, int n, int flags, __global float *o)
{
    if (has_bias)
        v += bias[n];
    v = act(ACT_OF(flags), v);
    if (flags & FLAG_ACCUMULATE)
        v += *o;
    return v;
}

/* The gate of a gated MLP: out[r][i] = act(h[r][i]) * h[r][n + i]. Item (i, r). */
__kernel void glu(__global const float *h, ulong ho, __global float *out, ulong oo, int n, int a)
{
    const int i = get_global_id(0);
    const size_t r = get_global_id(1);
    if (i < n)
        out[oo + r * n + i] = act(a, h[ho + 2 * r * n + i]) * h[ho + 2 * r * n + n + i];
}

#define GEMV_R 8 /* rows of x (batch) a work-group of the matrix-vector kernel takes */
#define GV_LANES 32
#define GV_ROWS 4

/* The end of a matrix-vector work-group: the GV_LANES partial sums of each
 * (output, row) are reduced, item p of the first GV_ROWS * GEMV_R taking
 * (output p / GEMV_R, row p % GEMV_R), then the epilogue. */
static void gemv_finish(__local float (*red)[GEMV_R][GV_LANES + 1], const float *acc, int nr, __global const float *bias,
                        int has_bias, __global float *out, int n_out, int flags)
{
    const int l = get_local_id(0), j = get_local_id(1);
    for (int r = 0; r < GEMV_R; r++)
        red[j][r][l] = acc[r];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int p = j * GV_LANES + l, jn = p / GEMV_R, r = p % GEMV_R;
    const int no = get_group_id(1) * GV_ROWS + jn;
    if (p < GV_ROWS * GEMV_R && r < nr && no < n_out) {
        float v = 0.0f;
        for (int i = 0; i < GV_LANES; i++)
            v += red[jn][r][i];
        __global float *o = out + (size_t)r * n_out + no;
        *o = epilogue(v, bias, has_bias, no, flags, o);
    }
}

/* Matrix-vector for a few rows of x (decode): out[r][n] = x[r][:] . W[n][:],
 * GEMV_R rows per work-group. One weight row per group of GV_LANES items: each
 * item reads float4s of the weight row (a group reads 512 contiguous bytes at a
 * time) and the same float4s of every row of x straight from global memory (x
 * is small and stays in the L1 cache), so each weight is read once for all rows
 * of x with no barrier in the loop, with four weight loads in flight per item (a
 * GEMV is bound by memory latency times the loads outstanding). The third
 * dimension takes the rows of x GEMV_R at a time (each block reads the weights
 * again, from L2 once the first block has). Its measurements against a tiled
 * GEMM, CLBlast and a LayerNorm-fused variant are in bench/RESULTS.md. */
__kernel __attribute__((reqd_work_group_size(GV_LANES, GV_ROWS, 1))) void
gemv_vec(__global const float *x, ulong xo, __global const float *W, ulong wo, __global const float *bias, ulong bo,
         int has_bias, __global float *out, ulong oo, int rows, int n_in, int n_out, int flags)
{
    __local float red[GV_ROWS][GEMV_R][GV_LANES + 1];
    const int l = get_local_id(0), j = get_local_id(1);
    const int n = get_group_id(1) * GV_ROWS + j;
    const size_t r0 = (size_t)get_group_id(2) * GEMV_R;
    xo += r0 * n_in;
    oo += r0 * n_out;
    rows -= (int)r0;
    const int nr = rows < GEMV_R ? rows : GEMV_R;
    float acc[GEMV_R];
    for (int r = 0; r < GEMV_R; r++)
        acc[r] = 0.0f;
    if (n < n_out) {
        __global const float *w = W + wo + (size_t)n * n_in;
        __global const float *xr = x + xo;
        const int k4 = n_in & ~3, step = 4 * GV_LANES;
        int k = 4 * l;
        if ((((size_t)n_in | wo | xo) & 3) == 0) {
            /* 16-byte aligned rows (LCSM_ALIGN): vector loads of whole float4s */
            __global const float4 *w4 = (__global const float4 *)w;
            const int n4 = n_in / 4, l4 = GV_LANES;
            int q = l;
            for (; q + 3 * l4 < n4; q += 4 * l4) {
                const float4 w0 = w4[q], w1 = w4[q + l4], w2 = w4[q + 2 * l4], w3 = w4[q + 3 * l4];
                for (int r = 0; r < GEMV_R; r++)
                    if (r < nr) {
                        __global const float4 *x4 = (__global const float4 *)(xr + (size_t)r * n_in);
                        acc[r] += dot(w0, x4[q]) + dot(w1, x4[q + l4]) + dot(w2, x4[q + 2 * l4]) + dot(w3, x4[q + 3 * l4]);
                    }
            }
            for (; q < n4; q += l4) {
                const float4 wv = w4[q];
                for (int r = 0; r < GEMV_R; r++)
                    if (r < nr)
                        acc[r] += dot(wv, ((__global const float4 *)(xr + (size_t)r * n_in))[q]);
            }
            k = k4; /* no tail: n_in % 4 == 0 */
        }
        for (; k + 3 * step < k4; k += 4 * step) {
            const float4 w0 = vload4(0, w + k), w1 = vload4(0, w + k + step);
            const float4 w2 = vload4(0, w + k + 2 * step), w3 = vload4(0, w + k + 3 * step);
            for (int r = 0; r < GEMV_R; r++)
                if (r < nr) {
                    __global const float *xk = xr + (size_t)r * n_in + k;
                    acc[r] += dot(w0, vload4(0, xk)) + dot(w1, vload4(0, xk + step)) +
                              dot(w2, vload4(0, xk + 2 * step)) + dot(w3, vload4(0, xk + 3 * step));
                }
        }
        for (; k < k4; k += step) {
            const float4 wv = vload4(0, w + k);
            for (int r = 0; r < GEMV_R; r++)
                if (r < nr)
                    acc[r] += dot(wv, vload4(0, xr + (size_t)r * n_in + k));
        }
        for (int k = k4 + l; k < n_in; k += GV_LANES)
            for (int r = 0; r < nr; r++)
                acc[r] += w[k] * xr[(size_t)r * n_in + k];
    }
    gemv_finish(red, acc, nr, bias + bo, has_bias, out + oo, n_out, flags);
}

/* The same for half-precision weights (T = f16, bf16): four converted values
 * per load, x as in gemv_vec. */
#define GEMV_HALF(NAME, T)                                                                                    \
    __kernel __attribute__((reqd_work_group_size(GV_LANES, GV_ROWS, 1))) void NAME(                          \
        __global const float *x, ulong xo, __global const WTYPE_##T *W, ulong wo, __global const float *bias,   \
        ulong bo, int has_bias, __global float *out, ulong oo, int rows, int n_in, int n_out, int flags)       \
    {                                                                                                         \
        __local float red[GV_ROWS][GEMV_R][GV_LANES + 1];                                                     \
        const int l = get_local_id(0), j = get_local_id(1);                                                   \
        const int n = get_group_id(1) * GV_ROWS + j;                                                          \
        const size_t r0 = (size_t)get_group_id(2) * GEMV_R;                                                   \
        xo += r0 * n_in;                                                                                      \
        oo += r0 * n_out;                                                                                     \
        rows -= (int)r0;                                                                                      \
        const int nr = rows < GEMV_R ? rows : GEMV_R;                                                         \
        float acc[GEMV_R];                                                                                    \
        for (int r = 0; r < GEMV_R; r++)                                                                      \
            acc[r] = 0.0f;                                                                                    \
        if (n < n_out) {                                                                                      \
            __global const WTYPE_##T *w = W + wo + (size_t)n * n_in;                                          \
            __global const float *xr = x + xo;                                                                \
            const int k4 = n_in & ~3, step = 4 * GV_LANES;                                                    \
            int k = 4 * l;                                                                                    \
            for (; k + 3 * step < k4; k += 4 * step) {                                                        \
                const float4 w0 = LOAD4_##T(w, k), w1 = LOAD4_##T(w, k + step);                               \
                const float4 w2 = LOAD4_##T(w, k + 2 * step), w3 = LOAD4_##T(w, k + 3 * step);                \
                for (int r = 0; r < GEMV_R; r++)                                                              \
                    if (r < nr) {                                                                             \
                        __global const float *xk = xr + (size_t)r * n_in + k;                                 \
                        acc[r] += dot(w0, vload4(0, xk)) + dot(w1, vload4(0, xk + step)) +                    \
                                  dot(w2, vload4(0, xk + 2 * step)) + dot(w3, vload4(0, xk + 3 * step));      \
                    }                                                                                         \
            }                                                                                                 \
            for (; k < k4; k += step) {                                                                       \
                const float4 wv = LOAD4_##T(w, k);                                                            \
                for (int r = 0; r < GEMV_R; r++)                                                              \
                    if (r < nr)                                                                               \
                        acc[r] += dot(wv, vload4(0, xr + (size_t)r * n_in + k));                              \
            }                                                                                                 \
            for (int k = k4 + l; k < n_in; k += GV_LANES)                                                     \
                for (int r = 0; r < nr; r++)                                                                  \
                    acc[r] += LOAD1_##T(w, k) * xr[(size_t)r * n_in + k];                                     \
        }                                                                                                     \
        gemv_finish(red, acc, nr, bias + bo, has_bias, out + oo, n_out, flags);                               \
    }
GEMV_HALF(gemv_vec_f16, f16)
GEMV_HALF(gemv_vec_bf16, bf16)

/* A norm and the projection after it in one pass (batch-1 decode): out[n] =
 * W[n] . norm(x) + bias[n], the norm's statistics summed while x is read for
 * the product, so there is no prologue and no normalised copy of x:
 *   W[n] . (g * (x - mu) rstd + beta) = rstd (A - mu' C) + E
 * with A = sum w g (x - x0), C = sum w g, E = sum w beta and mu' = mean(x) - x0
 * (x0 = x[0], a shift that keeps the one-pass variance from cancelling when
 * the mean is large); the RMS kinds use A = sum w g x and sum x^2. Work-group
 * layout as gemv_vec, one row of x (the host sends larger batches to the
 * unfused pair); each item also keeps its part of the row statistics. */
#define GEMV_NORM(NAME, T)                                                                                    \
    __kernel __attribute__((reqd_work_group_size(GV_LANES, GV_ROWS, 1))) void NAME(                          \
        __global const float *x, ulong xo, __global const WTYPE_##T *W, ulong wo, __global const float *bias,   \
        ulong bo, int has_bias, __global const float *gam, ulong go, __global const float *bet, ulong beo,     \
        int has_beta, int kind, float eps, __global float *out, ulong oo, int n_in, int n_out, int flags)      \
    {                                                                                                         \
        __local float red[GV_ROWS][5][GV_LANES + 1];                                                          \
        const int l = get_local_id(0), j = get_local_id(1);                                                   \
        const int n = get_group_id(1) * GV_ROWS + j, layer = kind == NORM_LAYER;                              \
        __global const float *xr = x + xo, *g = gam + go, *be = bet + beo;                                    \
        const float x0 = layer ? xr[0] : 0.0f;                                                                \
        float A = 0.0f, S1 = 0.0f, S2 = 0.0f, C = 0.0f, E = 0.0f;                                             \
        const int nn = n < n_out ? n : n_out - 1; /* items past n_out read a valid row, write nothing */       \
        __global const WTYPE_##T *w = W + wo + (size_t)nn * n_in;                                             \
        const int k4 = n_in & ~3, step = 4 * GV_LANES;                                                        \
        for (int k = 4 * l; k < k4; k += step) {                                                              \
            const float4 wv = LOAD4_##T(w, k), wg = wv * vload4(0, g + k), xv = vload4(0, xr + k) - x0;      \
            C += wg.x + wg.y + wg.z + wg.w;                                                                   \
            if (has_beta)                                                                                     \
                E += dot(wv, vload4(0, be + k));                                                              \
            A += dot(wg, xv);                                                                                 \
            S1 += xv.x + xv.y + xv.z + xv.w;                                                                  \
            S2 += dot(xv, xv);                                                                                \
        }                                                                                                     \
        for (int k = k4 + l; k < n_in; k += GV_LANES) {                                                       \
            const float wv = LOAD1_##T(w, k), wg = wv * g[k], xv = xr[k] - x0;                                \
            C += wg;                                                                                          \
            if (has_beta)                                                                                     \
                E += wv * be[k];                                                                              \
            A += wg * xv;                                                                                     \
            S1 += xv;                                                                                         \
            S2 += xv * xv;                                                                                    \
        }                                                                                                     \
        red[j][0][l] = A;                                                                                     \
        red[j][1][l] = S1;                                                                                    \
        red[j][2][l] = S2;                                                                                    \
        red[j][3][l] = C;                                                                                     \
        red[j][4][l] = E;                                                                                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                                                         \
        if (l == 0 && n < n_out) {                                                                            \
            float a = 0.0f, s1 = 0.0f, s2 = 0.0f, c = 0.0f, e = 0.0f;                                         \
            for (int i = 0; i < GV_LANES; i++) {                                                              \
                a += red[j][0][i];                                                                            \
                s1 += red[j][1][i];                                                                           \
                s2 += red[j][2][i];                                                                           \
                c += red[j][3][i];                                                                            \
                e += red[j][4][i];                                                                            \
            }                                                                                                 \
            float v;                                                                                          \
            if (layer) {                                                                                      \
                const float mu = s1 / (float)n_in, var = fmax(s2 / (float)n_in - mu * mu, 0.0f);              \
                v = (a - mu * c) / sqrt(var + eps) + e;                                                       \
            } else {                                                                                          \
                v = a * (kind == NORM_RMS ? 1.0f / sqrt(s2 / (float)n_in + eps)                               \
                                          : 1.0f / (sqrt(s2) / sqrt((float)n_in) + eps)) + e;                 \
            }                                                                                                 \
            __global float *o = out + oo + n;                                                                 \
            *o = epilogue(v, bias + bo, has_bias, n, flags, o);                                               \
        }                                                                                                     \
    }
GEMV_NORM(gemv_norm, f32)
GEMV_NORM(gemv_norm_f16, f16)
GEMV_NORM(gemv_norm_bf16, bf16)

/* Matrix-matrix (prefill, batches): out[M][N] = x[M][K] W[N][K]^T. A 64x64 block of
 * the output per work-group of 16x16 items, 4x4 outputs per item, K in steps of 16
 * through local memory; W of type T. */
#define GT 64
#define GK 16
#define GEMM(NAME, T)                                                                                         \
    __kernel __attribute__((reqd_work_group_size(16, 16, 1))) void NAME(                                      \
        __global const float *x, ulong xo, __global const WTYPE_##T *W, ulong wo, __global const float *bias,   \
        ulong bo, int has_bias, __global float *out, ulong oo, int M, int K, int N, int flags)                 \
    {                                                                                                         \
        __local float As[GK][GT + 1], Bs[GK][GT + 1];                                                         \
        const int tx = get_local_id(0), ty = get_local_id(1);                                                 \
        const int n0 = get_group_id(0) * GT, m0 = get_group_id(1) * GT;                                       \
        const int tid = ty * 16 + tx;                                                                         \
        x += xo;                                                                                              \
        W += wo;                                                                                              \
        float c[4][4];                                                                                        \
        for (int i = 0; i < 4; i++)                                                                           \
            for (int j = 0; j < 4; j++)                                                                       \
                c[i][j] = 0.0f;                                                                               \
        for (int k0 = 0; k0 < K; k0 += GK) {                                                                  \
            /* 64 rows x 16 k of each operand: 1024 values, 4 per item, k fastest. */                         \
            for (int e = tid; e < GT * GK; e += 256) {                                                        \
                int rr = e / GK, kk = e % GK, k = k0 + kk;                                                    \
                int m = m0 + rr, nn = n0 + rr;                                                                \
                As[kk][rr] = (m < M && k < K) ? x[(size_t)m * K + k] : 0.0f;                                  \
                Bs[kk][rr] = (nn < N && k < K) ? LOAD1_##T(W, (size_t)nn * K + k) : 0.0f;                     \
            }                                                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                     \
            for (int kk = 0; kk < GK; kk++) {                                                                 \
                float a[4], b[4];                                                                             \
                for (int i = 0; i < 4; i++) {                                                                 \
                    a[i] = As[kk][ty + 16 * i];                                                               \
                    b[i] = Bs[kk][tx + 16 * i];                                                               \
                }                                                                                             \
                for (int i = 0; i < 4; i++)                                                                   \
                    for (int j = 0; j < 4; j++)                                                               \
                        c[i][j] += a[i] * b[j];                                                               \
            }                                                                                                 \
            barrier(CLK_LOCAL_MEM_FENCE);                                                                     \
        }                                                                                                     \
        for (int i = 0; i < 4; i++) {                                                                         \
            int m = m0 + ty + 16 * i;                                                                         \
            if (m >= M)                                                                                       \
                continue;                                                                                     \
            for (int j = 0; j < 4; j++) {                                                                     \
                int nn = n0 + tx + 16 * j;                                                                    \
                if (nn < N) {                                                                                 \
                    __global float *o = out + oo + (size_t)m * N + nn;                                        \
                    *o = epilogue(c[i][j], bias + bo, has_bias, nn, flags, o);                                \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
    }
GEMM(gemm, f32)
GEMM(gemm_f16, f16)
GEMM(gemm_bf16, bf16)

/* ---- the Hyena operator */

/* Causal K-tap conv of one channel (tap K-1 multiplies the current position):
 * p[k] is the input at t - (K-1) + k. */
static float conv_k(__global const float *w, int K, const float *p, float bias)
{
    float v = 0.0f;
    for (int k = 0; k < K; k++)
        v += w[k] * p[k];
    return v + bias;
}

/* Whole sequences, u [B][len][C] -> out; the K-1 rows before the chunk from
 * the state (has_state) or zero: item (ch, t, b). */
__kernel void shortconv_seq(__global const float *u, ulong uo, __global const float *w, ulong wo,
                            __global const float *cb, ulong cbo, int has_b, int K, int len, int C,
                            __global float *out, ulong oo, __global const float *st, ulong so, int has_state)
{
    const int ch = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (ch >= C)
        return;
    __global const float *ub = u + uo + (size_t)b * len * C;
    __global const float *sb = st + so + (size_t)b * (K > 1 ? K - 1 : 0) * C;
    float p[MAX_SHORT];
    for (int k = 0; k < K; k++) {
        const int s = t - (K - 1) + k;
        p[k] = s >= 0 ? ub[(size_t)s * C + ch] : has_state ? sb[(size_t)(s + K - 1) * C + ch] : 0.0f;
    }
    out[oo + ((size_t)b * len + t) * C + ch] = conv_k(w + wo + (size_t)K * ch, K, p, has_b ? cb[cbo + ch] : 0.0f);
}

/* The state after the chunk: rows len .. len+K-2 of [state; u], in ascending
 * order by one item per (ch, b) (a row may come from a later row of the state). */
__kernel void conv_state_seq(__global const float *u, ulong uo, int len, int C, int K, __global float *st, ulong so)
{
    const int ch = get_global_id(0), b = get_global_id(1);
    if (ch >= C)
        return;
    __global float *sb = st + so + (size_t)b * (K - 1) * C;
    for (int k = 0; k < K - 1; k++) {
        const int j = len + k;
        sb[(size_t)k * C + ch] = j < K - 1 ? sb[(size_t)j * C + ch] : u[uo + ((size_t)b * len + j - (K - 1)) * C + ch];
    }
}

/* Element (b, t, c) of a sequence (src/backend.h, lcsm_seq). */
#define SEQ(o, st, sb) ((o) + (size_t)t * (st) + (size_t)b * (sb) + c)

/* out = x * m (or x): item (c, t, b). */
__kernel void mul_seq(__global const float *x, ulong xo, ulong xst, ulong xsb, __global const float *m, ulong mo,
                      ulong mst, ulong msb, int has_m, __global float *out, ulong oo, ulong ost, ulong osb, int D)
{
    const int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= D)
        return;
    const float v = x[SEQ(xo, xst, xsb)];
    out[SEQ(oo, ost, osb)] = has_m ? v * m[SEQ(mo, mst, msb)] : v;
}

/* out = m * (y + dbias a) (or without m): item (c, t, b). */
__kernel void gate_seq(__global const float *y, ulong yo, ulong yst, ulong ysb, __global const float *a, ulong ao,
                       ulong ast, ulong asb, __global const float *m, ulong mo, ulong mst, ulong msb, int has_m,
                       __global const float *dbias, ulong dbo, int D, __global float *out, ulong oo, ulong ost,
                       ulong osb)
{
    const int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= D)
        return;
    const float s = y[SEQ(yo, yst, ysb)] + dbias[dbo + c] * a[SEQ(ao, ast, asb)];
    out[SEQ(oo, ost, osb)] = has_m ? m[SEQ(mo, mst, msb)] * s : s;
}

/* Lazy mixer, first pass: part[po + p*B*D + col] = sum over s in chunk p of
 * [0, t) of h[t-s][filter] * hist[s][row]; col = b*D + c of group g. Item (col, p). */
__kernel void lazy_partial(__global const float *hist, ulong ho, __global const float *hT, ulong GD, int g, int B,
                           int D, int t, int s_lo, int n_split, __global float *part, ulong po)
{
    const int col = get_global_id(0), p = get_global_id(1);
    if (col >= B * D)
        return;
    const size_t rows = GD * B, row = (size_t)g * B * D + col, f = (size_t)g * D + col % D;
    const int n = t - s_lo; /* inputs s_lo .. t-1: all (lazy) or lagged flash's band */
    const int s0 = s_lo + (int)((long)n * p / n_split), s1 = s_lo + (int)((long)n * (p + 1) / n_split);
    float sum = 0.0f;
    for (int s = s0; s < s1; s++)
        sum += hT[(size_t)(t - s) * GD + f] * hist[ho + (size_t)s * rows + row];
    part[po + (size_t)p * B * D + col] = sum;
}

/* ---- modal and FIR stages (src/backend.h, lcsm_modal, lcsm_fir). Complex
 * values are pairs of floats [re, im]; offsets of such refs count floats. */

#define PAST_TILED 0
#define PAST_MODAL 1
#define PAST_FIR 2

/* One step of a modal stage for one channel: z_n <- p_n z_n + a, returns
 * Re sum_n R_n z_n + D a. p, R, z point at the channel's N modes. */
static float modal_update(float a, __global const float *p, __global const float *R, float skip, __global float *z,
                          int N, int cx)
{
    float sum = 0.0f;
    if (cx) {
        for (int n = 0; n < N; n++) {
            const float zr = z[2 * n], zi = z[2 * n + 1];
            const float nr = p[2 * n] * zr - p[2 * n + 1] * zi + a, ni = p[2 * n] * zi + p[2 * n + 1] * zr;
            z[2 * n] = nr;
            z[2 * n + 1] = ni;
            sum += R[2 * n] * nr - R[2 * n + 1] * ni;
        }
    } else {
        for (int n = 0; n < N; n++) {
            const float zn = p[n] * z[n] + a;
            z[n] = zn;
            sum += R[n] * zn;
        }
    }
    return sum + skip * a;
}

/* Whole sequences: the recurrence for one (channel, sequence) over every
 * position, from the state (has_state) or zero, the state left at the end.
 * Item (c, b). */
__kernel void modal_seq(__global const float *p, ulong po, __global const float *R, ulong ro,
                        __global const float *skip, ulong sko, __global float *state, ulong sto, int has_state,
                        __global float *scratch, ulong sco, int N, int cx, int len, int D, __global const float *a,
                        ulong ao, ulong ast, ulong asb, __global float *y, ulong yo, ulong yst, ulong ysb)
{
    const int c = get_global_id(0), b = get_global_id(1);
    if (c >= D)
        return;
    const int w = cx ? 2 : 1;
    const size_t zoff = ((size_t)b * D + c) * N * w;
    /* the state lives in the session's buffer, or in scratch for a forward */
    __global float *z = has_state ? state + sto + zoff : scratch + sco + zoff;
    if (!has_state)
        for (int n = 0; n < N * w; n++)
            z[n] = 0.0f;
    const float sk = skip[sko + c];
    for (int t = 0; t < len; t++)
        y[SEQ(yo, yst, ysb)] =
            modal_update(a[SEQ(ao, ast, asb)], p + po + (size_t)c * N * w, R + ro + (size_t)c * N * w, sk, z, N, cx);
}

/* A chunk of a FIR stage at position pos0: y = sum_{k<L} taps[c][k] x(pos0+t-k) +
 * skip a(t), x from the chunk or, before it, the ring (has_ring). Item (c, t, b). */
__kernel void fir_seq(__global const float *taps, ulong to, int L, __global const float *skip, ulong sko, int has_skip,
                      int D, __global const float *a, ulong ao, ulong ast, ulong asb, __global float *y, ulong yo,
                      ulong yst, ulong ysb, __global const float *ring, ulong rgo, int has_ring, int pos0)
{
    const int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= D)
        return;
    float v = has_skip ? skip[sko + c] * a[SEQ(ao, ast, asb)] : 0.0f;
    for (int k = 0; k < L; k++) {
        float x;
        if (k <= t)
            x = a[ao + (size_t)(t - k) * ast + (size_t)b * asb + c];
        else if (has_ring && pos0 + t - k >= 0)
            x = ring[rgo + ((size_t)b * L + (size_t)((pos0 + t - k) % L)) * D + c];
        else
            break;
        v += taps[to + (size_t)c * L + k] * x;
    }
    y[SEQ(yo, yst, ysb)] = v;
}

/* The chunk's last min(len, L) inputs into their ring slots (after fir_seq has
 * read the old ones): item (c, j, b), t = len - n + j. */
__kernel void fir_ring_seq(__global const float *a, ulong ao, ulong ast, ulong asb, int len, int n, int L, int D,
                           int pos0, __global float *ring, ulong rgo)
{
    const int c = get_global_id(0), j = get_global_id(1), b = get_global_id(2);
    if (c >= D)
        return;
    const int t = len - n + j;
    ring[rgo + ((size_t)b * L + (size_t)((pos0 + t) % L)) * D + c] = a[ao + (size_t)t * ast + (size_t)b * asb + c];
}

/* One step of a FIR stage for one channel: a into the ring at t % L, returns
 * sum_k taps[k] a_{t-k} + D a (slots never written hold zeros). */
static float fir_update(float a, __global const float *taps, float skip, __global float *ring, int L, int t, int D)
{
    ring[(size_t)(t % L) * D] = a;
    float v = skip * a;
    for (int k = 0; k < L; k++)
        v += taps[k] * ring[(size_t)(((t - k) % L + L) % L) * D];
    return v;
}

/* The arguments of one stage of the decode step: its kind, multiplier, tiled
 * group, and for a modal or FIR stage its filter (f1: poles or taps, f2:
 * residues), skip, state or ring, modes or taps, complex. */
#define STAGE_ARGS(i)                                                                                         \
    int kind##i, int mult##i, int group##i, __global const float *f1_##i, ulong f1o##i, __global const float *f2_##i, \
        ulong f2o##i, __global const float *sk##i, ulong sko##i, int has_sk##i, __global float *st##i, ulong sto##i,  \
        int n##i, int cx##i

/* One decode step of one Hyena operator (src/backend.h, lcsm_hyena_step_args):
 * the K-tap short conv of each of the S streams with its state, then the chain
 * s = u[S-1]; per stage s *= u[mult] and the stage's long convolution: tiled
 * (a into the history, s = past + (h0 + dbias) a, the past from acc[t] when
 * n_split == 0 or the lazy partial sums), modal or FIR (s = its update);
 * y = u[0] * s. Item (c, b). */
__kernel void hyena_step(__global const float *u, ulong uo, int S, __global const float *w, ulong wo,
                         __global const float *cb, ulong cbo, int has_b, int K, __global float *st, ulong so,
                         __global float *hist, ulong ho, __global const float *acc, ulong aco,
                         __global const float *h0d, __global const float *part, int n_split, int cached,
                         __global const float *hT, int band, int n_stage, STAGE_ARGS(0), STAGE_ARGS(1),
                         __global float *y, ulong yo, int G, int B, int D, int t)
{
    const int c = get_global_id(0), b = get_global_id(1);
    if (c >= D)
        return;
    const int C = S * D;
    __global const float *ub = u + uo + (size_t)b * C;
    __global float *sb = st + so + (size_t)b * (K > 1 ? K - 1 : 0) * C;
    float v[MAX_STREAMS];
    for (int s = 0; s < S; s++) {
        const int ch = s * D + c;
        const float cur = ub[ch];
        if (K == 0) {
            v[s] = cur;
            continue;
        }
        float p[MAX_SHORT];
        for (int k = 0; k < K - 1; k++)
            p[k] = sb[(size_t)k * C + ch];
        p[K - 1] = cur;
        v[s] = conv_k(w + wo + (size_t)K * ch, K, p, has_b ? cb[cbo + ch] : 0.0f);
        for (int k = 0; k + 1 < K; k++) /* the oldest row drops out */
            sb[(size_t)k * C + ch] = p[k + 1];
    }
    const size_t col = (size_t)b * D + c, row_t = (size_t)t * G * B * D;
    float s = v[S - 1];
    for (int i = 0; i < n_stage; i++) {
#define PICK(x) (i ? x##1 : x##0)
        const int mult = PICK(mult), g = PICK(group), kind = PICK(kind), n = PICK(n), cx = PICK(cx);
        const float a = mult >= 0 ? s * v[mult] : s;
        if (kind == PAST_MODAL) {
            const int wd = cx ? 2 : 1;
            __global const float *f1 = PICK(f1_) + PICK(f1o) + (size_t)c * n * wd;
            __global const float *f2 = PICK(f2_) + PICK(f2o) + (size_t)c * n * wd;
            __global float *z = PICK(st) + PICK(sto) + col * n * wd;
            s = modal_update(a, f1, f2, PICK(sk)[PICK(sko) + c], z, n, cx);
            continue;
        }
        if (kind == PAST_FIR) {
            const float skip = PICK(has_sk) ? PICK(sk)[PICK(sko) + c] : 0.0f;
            __global float *ring = PICK(st) + PICK(sto) + (size_t)b * n * D + c;
            s = fir_update(a, PICK(f1_) + PICK(f1o) + (size_t)c * n, skip, ring, n, t, D);
            continue;
        }
#undef PICK
        const size_t idx = row_t + (size_t)g * B * D + col;
        hist[ho + idx] = a;
        float past = cached ? acc[aco + idx] : 0.0f; /* plus the band's or the lazy sum's partials */
        for (int p = 0; p < n_split; p++)
            past += part[((size_t)i * n_split + p) * B * D + col];
        /* a short band (lagged flash) here, saving a launch: taps 1 .. band of the history */
        const size_t GD = (size_t)G * D, rows = GD * B;
        for (int k = 1; k <= band; k++)
            past += hT[(size_t)k * GD + (size_t)g * D + c] * hist[ho + idx - (size_t)k * rows];
        s = past + h0d[(size_t)g * D + c] * a;
    }
    y[yo + col] = v[0] * s;
}
