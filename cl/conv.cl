/*
 * Long-convolution kernels of the OpenCL backend. Signals are time-major
 * ([time][rows], src/backend.h); filters hT are time-major [lh][GD].
 *
 * Direct kernels compute the small flash tiles, eager pushes and short prompts.
 * FFT convolutions (large tiles, long prompts) go block by block (see
 * cl_conv.c): gather a block of S inputs per row into rows of N = 2S reals,
 * R2C (VkFFT), multiply-accumulate with the spectra of filter segments, C2R,
 * scatter S outputs per row back into time-major order. Gather and scatter
 * transpose through local memory so that both sides are coalesced.
 *
 * A chunk of FFT rows maps row r to column gb*D + c and filter (g0 + gb/B)*D + c,
 * with gb = gb0 + r / cw and c = c0 + r % cw: all groups and sequences of a range
 * of channels (flash tiles: gb = g*B + b; prompts: gb = b of one group g0).
 */

/* acc[out0+j][r] += sum_m h[out0+j-in0-m][filter(r)] hist[in0+m][r]. Item (r, j). */
__kernel void block_direct(__global const float *hist, ulong ho, __global float *acc, ulong ao,
                           __global const float *hT, int lh, int G, int B, int D, int in0, int n_in, int out0,
                           int n_out, ulong r0, ulong n_rows)
{
    const size_t r = r0 + get_global_id(0); /* rows r0 .. r0 + n_rows: all, or a part */
    const int j = get_global_id(1);
    const size_t rows = (size_t)G * B * D, GD = (size_t)G * D;
    if (get_global_id(0) >= n_rows || j >= n_out)
        return;
    const size_t f = (r / ((size_t)B * D)) * D + r % D;
    float sum = 0.0f;
    for (int m = 0; m < n_in; m++) {
        int k = out0 + j - in0 - m;
        if (k < lh)
            sum += hT[(size_t)k * GD + f] * hist[ho + (size_t)(in0 + m) * rows + r];
    }
    acc[ao + (size_t)(out0 + j) * rows + r] += sum;
}

/* Short prompts: y[t][col] = sum_{s<=t} h[t-s] a[s][col] for t < len, and the
 * prompt's contribution added to acc[t][col] for len <= t < out_len. Item (col, t). */
__kernel void long_direct(__global const float *a, ulong ao, ulong a_stride, __global float *y, ulong yo,
                          ulong y_stride, __global float *acc, ulong aco, __global const float *hT, int GD, int g,
                          int BD, int D, int len, int out_len)
{
    const int col = get_global_id(0), t = get_global_id(1);
    if (col >= BD || t >= out_len)
        return;
    const size_t f = (size_t)g * D + col % D;
    const int s_hi = t < len - 1 ? t : len - 1;
    float sum = 0.0f;
    for (int s = 0; s <= s_hi; s++)
        sum += hT[(size_t)(t - s) * GD + f] * a[ao + (size_t)s * a_stride + col];
    if (t < len)
        y[yo + (size_t)t * y_stride + col] = sum;
    else
        acc[aco + (size_t)t * a_stride + col] += sum;
}

#define TT 16 /* transpose tile */

/* real[r][i] = src[t0 + i][col(r)] for 0 <= i < n_valid and t_lo <= t0 + i < t_hi,
 * else 0; i < N, r < n_rows (rows of the chunk; later rows of the plan's batch are
 * left alone). col(r) = (gb0 + r/cw)*D + c0 + r%cw. Item (r, i) in TT x TT tiles. */
__kernel __attribute__((reqd_work_group_size(TT, TT, 1))) void
fft_gather(__global const float *src, ulong so, ulong stride, long t0, int n_valid, long t_lo, long t_hi, int gb0,
           int cw, int c0, int D, int n_rows, int N, __global float *real, ulong ro)
{
    __local float tile[TT][TT + 1];
    const int lr = get_local_id(0), li = get_local_id(1);
    const int r0 = get_group_id(0) * TT, i0 = get_group_id(1) * TT;
    /* read: rows along the fast axis (columns of src are contiguous) */
    {
        int r = r0 + lr, i = i0 + li;
        long t = t0 + i;
        float v = 0.0f;
        if (r < n_rows && i < n_valid && t >= t_lo && t < t_hi) {
            size_t col = (size_t)(gb0 + r / cw) * D + c0 + r % cw;
            v = src[so + (size_t)t * stride + col];
        }
        tile[li][lr] = v;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* write: points along the fast axis */
    {
        int r = r0 + li, i = i0 + lr;
        if (r < n_rows && i < N)
            real[ro + (size_t)r * N + i] = tile[lr][li];
    }
}

/* Y[r][k] = sum_{p = p_lo..p_hi} X[p][r][k] * Spec[q - p + d0][filter(r) - f0][k]
 * (complex, interleaved). X blocks are n_rows_plan x K apart; Y may be X[p] when
 * p_lo == p_hi == that p. Item (k, r). */
__kernel void fft_mac(__global const float2 *X, ulong xo, __global const float2 *spec, ulong spo, int n_spec_f,
                      __global float2 *Y, ulong yo, int q, int p_lo, int p_hi, int d0, int K, int plan_rows,
                      int n_rows, int gb0, int cw, int c0, int B, int D, int g0, int f0)
{
    const int k = get_global_id(0), r = get_global_id(1);
    if (k >= K || r >= n_rows)
        return;
    const int gb = gb0 + r / cw;
    const size_t f = (size_t)(g0 + gb / B) * D + c0 + r % cw - f0;
    float2 acc = (float2)(0.0f, 0.0f);
    for (int p = p_lo; p <= p_hi; p++) {
        float2 x = X[xo + ((size_t)p * plan_rows + r) * K + k];
        float2 s = spec[spo + ((size_t)(q - p + d0) * n_spec_f + f) * K + k];
        acc += (float2)(x.x * s.x - x.y * s.y, x.x * s.y + x.y * s.x);
    }
    Y[yo + (size_t)r * K + k] = acc;
}

/* Output j of a block is point S-1+j of the circular product. Time t = t0 + j
 * (j < n_out) goes to A (assigned) when t < t_split, else is added to B. */
__kernel __attribute__((reqd_work_group_size(TT, TT, 1))) void
fft_scatter(__global const float *real, ulong ro, int N, int S, long t0, int n_out, long t_split,
            __global float *A, ulong aoff, ulong a_stride, __global float *Bm, ulong boff, ulong b_stride, int gb0,
            int cw, int c0, int D, int n_rows)
{
    __local float tile[TT][TT + 1];
    const int l0 = get_local_id(0), l1 = get_local_id(1);
    const int r0 = get_group_id(0) * TT, j0 = get_group_id(1) * TT;
    /* read: points along the fast axis */
    {
        int r = r0 + l1, j = j0 + l0;
        tile[l1][l0] = (r < n_rows && j < n_out) ? real[ro + (size_t)r * N + S - 1 + j] : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* write: rows along the fast axis */
    {
        int r = r0 + l0, j = j0 + l1;
        if (r < n_rows && j < n_out) {
            size_t col = (size_t)(gb0 + r / cw) * D + c0 + r % cw;
            long t = t0 + j;
            float v = tile[l0][l1];
            if (t < t_split)
                A[aoff + (size_t)t * a_stride + col] = v;
            else
                Bm[boff + (size_t)t * b_stride + col] += v;
        }
    }
}
