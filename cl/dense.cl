/*
 * Dense and per-token kernels of the OpenCL backend (see src/backend.h for the
 * meaning and layout of every operation). Buffers come with an offset in floats
 * (ulong), so one device allocation holds many tensors. Built with -DWG=<n>, the
 * work-group size of the reduction kernels.
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

__kernel void embed(__global const float *E, ulong eo, __global const int *ids, ulong io, int D, __global float *out,
                    ulong oo)
{
    const int c = get_global_id(0), i = get_global_id(1);
    if (c < D)
        out[oo + (size_t)i * D + c] = E[eo + (size_t)ids[io + i] * D + c];
}

/* One work-group per row; two passes (mean, then centred variance) like the CPU. */
__kernel __attribute__((reqd_work_group_size(WG, 1, 1))) void
layernorm(__global const float *x, ulong xo, __global const float *w, ulong wo, __global const float *b, ulong bo,
          __global float *out, ulong oo, int D, float eps)
{
    __local float red[WG];
    const int l = get_local_id(0);
    const size_t row = get_group_id(1);
    x += xo + row * D;
    out += oo + row * D;
    w += wo;
    b += bo;
    float s = 0.0f;
    for (int i = l; i < D; i += WG)
        s += x[i];
    const float mean = wg_sum(s, red) / (float)D;
    float v = 0.0f;
    for (int i = l; i < D; i += WG) {
        float d = x[i] - mean;
        v += d * d;
    }
    const float rstd = 1.0f / sqrt(wg_sum(v, red) / (float)D + eps);
    for (int i = l; i < D; i += WG)
        out[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

#define FLAG_ACCUMULATE 1
#define FLAG_GELU 2

static float gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static float epilogue(float v, __global const float *bias, int has_bias, int n, int flags, __global float *o)
{
    if (has_bias)
        v += bias[n];
    if (flags & FLAG_GELU)
        v = gelu_tanh(v);
    if (flags & FLAG_ACCUMULATE)
        v += *o;
    return v;
}

#define GEMV_R 8 /* rows of x (batch) a work-group of the matrix-vector kernel takes */

/* Matrix-vector for a few rows of x (decode): out[r][n] = x[r][:] . W[n][:], GEMV_R rows per work-group.
 * One weight row per group of GV_LANES items: each item reads float4s of the
 * weight row (a group reads 512 contiguous bytes at a time) and the same
 * float4s of every row of x straight from global memory (x is small and stays
 * in the L1 cache), so each weight is read once for all rows of x with no
 * barrier in the loop; the GV_LANES partial sums per (output, row) are reduced
 * once at the end. On an H100 (D = 768, 12 layers, L = 4K) this replaced a
 * kernel that staged x through local memory for 4 outputs per work-group:
 * batch 8 went from 27.5 to 13.6 us per GEMV (6.37 -> 3.16 s end to end),
 * batch 1 stayed at 10.2 us (launch- and latency-bound). Up to 128 rows it
 * beats the tiled gemm below on the H100 at every projection shape (e.g.
 * 16.7 vs 68.3 us at 32 rows, 50 vs 69 at 128 for D = 768; bench/RESULTS.md).
 * Folding the preceding LayerNorm into this kernel (each work-group computing
 * its rows' statistics) was measured and removed: 19.3 instead of 8.9 us per
 * call, 0.71 instead of 0.57 ms per token at batch 1 (bench/RESULTS.md). */
#define GV_LANES 32
#define GV_ROWS 4
__kernel __attribute__((reqd_work_group_size(GV_LANES, GV_ROWS, 1))) void
gemv_vec(__global const float *x, ulong xo, __global const float *W, ulong wo, __global const float *bias, ulong bo,
         int has_bias, __global float *out, ulong oo, int rows, int n_in, int n_out, int flags)
{
    __local float red[GV_ROWS][GEMV_R][GV_LANES + 1];
    const int l = get_local_id(0), j = get_local_id(1);
    const int n = get_group_id(1) * GV_ROWS + j;
    /* the third dimension takes the rows of x GEMV_R at a time (each block
     * reads the weights again, from L2 once the first block has) */
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
            /* 16-byte aligned rows (LCSM_ALIGN): vector loads of whole float4s;
             * four weight loads in flight per item, as a GEMV is bound by
             * memory latency times the loads outstanding, not by arithmetic. */
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
    for (int r = 0; r < GEMV_R; r++)
        red[j][r][l] = acc[r];
    barrier(CLK_LOCAL_MEM_FENCE);
    /* item p of the first GV_ROWS * GEMV_R sums the lanes of (output p / GEMV_R, row p % GEMV_R) */
    const int p = j * GV_LANES + l, jn = p / GEMV_R, r = p % GEMV_R;
    const int no = get_group_id(1) * GV_ROWS + jn;
    if (p < GV_ROWS * GEMV_R && r < nr && no < n_out) {
        float v = 0.0f;
        for (int i = 0; i < GV_LANES; i++)
            v += red[jn][r][i];
        __global float *o = out + oo + (size_t)r * n_out + no;
        *o = epilogue(v, bias + bo, has_bias, no, flags, o);
    }
}

/* Matrix-matrix (prefill, batches): out[M][N] = x[M][K] W[N][K]^T. A 64x64 block of
 * the output per work-group of 16x16 items, 4x4 outputs per item, K in steps of 16
 * through local memory. */
#define GT 64
#define GK 16
__kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
gemm(__global const float *x, ulong xo, __global const float *W, ulong wo, __global const float *bias, ulong bo,
     int has_bias, __global float *out, ulong oo, int M, int K, int N, int flags)
{
    __local float As[GK][GT + 1], Bs[GK][GT + 1];
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int n0 = get_group_id(0) * GT, m0 = get_group_id(1) * GT;
    const int tid = ty * 16 + tx;
    x += xo;
    W += wo;
    float c[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            c[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += GK) {
        /* 64 rows x 16 k of each operand: 1024 values, 4 per item, k fastest. */
        for (int e = tid; e < GT * GK; e += 256) {
            int rr = e / GK, kk = e % GK, k = k0 + kk;
            int m = m0 + rr, nn = n0 + rr;
            As[kk][rr] = (m < M && k < K) ? x[(size_t)m * K + k] : 0.0f;
            Bs[kk][rr] = (nn < N && k < K) ? W[(size_t)nn * K + k] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < GK; kk++) {
            float a[4], b[4];
            for (int i = 0; i < 4; i++) {
                a[i] = As[kk][ty + 16 * i];
                b[i] = Bs[kk][tx + 16 * i];
            }
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    c[i][j] += a[i] * b[j];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < 4; i++) {
        int m = m0 + ty + 16 * i;
        if (m >= M)
            continue;
        for (int j = 0; j < 4; j++) {
            int nn = n0 + tx + 16 * j;
            if (nn < N) {
                __global float *o = out + oo + (size_t)m * N + nn;
                *o = epilogue(c[i][j], bias + bo, has_bias, nn, flags, o);
            }
        }
    }
}

/* Depthwise causal conv, 3 taps (tap 2 = current position), for one channel. */
static float conv3(__global const float *w, float bias, float p2, float p1, float cur)
{
    return w[0] * p2 + w[1] * p1 + w[2] * cur + bias;
}

/* Whole sequences from a zero state: item (c, t, b). */
__kernel void shortconv_seq(__global const float *u, ulong uo, __global const float *w, ulong wo,
                            __global const float *cb, ulong cbo, int len, int D, __global float *x0, ulong x0o,
                            __global float *a, ulong ao, ulong a_stride)
{
    const int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= D)
        return;
    const int C = 3 * D;
    __global const float *ub = u + uo + (size_t)b * len * C;
    float v[3];
    for (int k = 0; k < 3; k++) {
        int ch = k * D + c;
        float p2 = t >= 2 ? ub[(size_t)(t - 2) * C + ch] : 0.0f;
        float p1 = t >= 1 ? ub[(size_t)(t - 1) * C + ch] : 0.0f;
        v[k] = conv3(w + wo + 3 * ch, cb[cbo + ch], p2, p1, ub[(size_t)t * C + ch]);
    }
    x0[x0o + ((size_t)b * len + t) * D + c] = v[0];
    a[ao + (size_t)t * a_stride + (size_t)b * D + c] = v[2] * v[1];
}

/* state[b][k] = u[b][len-2+k] (zeros before the start): item (ch, k, b). */
__kernel void conv_state_seq(__global const float *u, ulong uo, int len, int C, __global float *st, ulong so)
{
    const int ch = get_global_id(0), k = get_global_id(1), b = get_global_id(2);
    if (ch >= C)
        return;
    const int t = len - 2 + k;
    st[so + ((size_t)b * 2 + k) * C + ch] = t >= 0 ? u[uo + ((size_t)b * len + t) * C + ch] : 0.0f;
}

/* item (c, t, b) */
__kernel void gate_seq(__global const float *y, ulong yo, ulong y_stride, __global const float *a, ulong ao,
                       ulong a_stride, __global const float *x0, ulong x0o, __global const float *dbias, ulong dbo,
                       int len, int D, __global float *out, ulong oo)
{
    const int c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= D)
        return;
    const size_t col = (size_t)b * D + c, i = ((size_t)b * len + t) * D + c;
    out[oo + i] = x0[x0o + i] * (y[yo + (size_t)t * y_stride + col] + dbias[dbo + c] * a[ao + (size_t)t * a_stride + col]);
}

/* Lazy mixer, first pass: part[p][col] = sum over s in chunk p of [0, t) of
 * h[t-s][filter] * hist[s][row]; col = b*D + c of group g. Item (col, p). */
__kernel void lazy_partial(__global const float *hist, ulong ho, __global const float *hT, ulong GD, int g, int B,
                           int D, int t, int n_split, __global float *part)
{
    const int col = get_global_id(0), p = get_global_id(1);
    if (col >= B * D)
        return;
    const size_t rows = GD * B, row = (size_t)g * B * D + col, f = (size_t)g * D + col % D;
    const int s0 = (int)((long)t * p / n_split), s1 = (int)((long)t * (p + 1) / n_split);
    float sum = 0.0f;
    for (int s = s0; s < s1; s++)
        sum += hT[(size_t)(t - s) * GD + f] * hist[ho + (size_t)s * rows + row];
    part[(size_t)p * B * D + col] = sum;
}

/* One decode step of one Hyena operator: short conv with the state, a = v*x1 into
 * the history, y = x0 * (past + (h0 + dbias) a). The past comes from acc[t]
 * (n_split == 0) or from the lazy partial sums. Item (c, b). */
__kernel void hyena_step(__global const float *u, ulong uo, __global const float *w, ulong wo,
                         __global const float *cb, ulong cbo, __global float *st, ulong so, __global float *hist,
                         ulong ho, __global const float *acc, ulong aco, __global const float *h0d,
                         __global const float *part, int n_split, __global float *y, ulong yo, int g, int G, int B,
                         int D, int t)
{
    const int c = get_global_id(0), b = get_global_id(1);
    if (c >= D)
        return;
    const int C = 3 * D;
    __global const float *ub = u + uo + (size_t)b * C;
    __global float *sb = st + so + (size_t)b * 2 * C;
    float v[3];
    for (int k = 0; k < 3; k++) {
        int ch = k * D + c;
        float cur = ub[ch], p2 = sb[ch], p1 = sb[C + ch];
        v[k] = conv3(w + wo + 3 * ch, cb[cbo + ch], p2, p1, cur);
        sb[ch] = p1;
        sb[C + ch] = cur;
    }
    const float a = v[2] * v[1];
    const size_t col = (size_t)b * D + c, i = (size_t)t * G * B * D + (size_t)g * B * D + col;
    hist[ho + i] = a;
    float past = 0.0f;
    if (n_split == 0) {
        past = acc[aco + i];
    } else {
        for (int p = 0; p < n_split; p++)
            past += part[(size_t)p * B * D + col];
    }
    y[yo + col] = v[0] * (past + h0d[(size_t)g * D + c] * a);
}
