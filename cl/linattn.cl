/*
 * Hedgehog linear attention (src/backend.h, lcsm_linattn_args), in three
 * kernels per block of rows:
 *   linattn_phi  one item per (row, head, q or k): the feature map
 *                phi = max([softmax(u), softmax(-u)], fm_eps), u = x^T W[h]
 *   linattn_rec  one item per head dim of each (sequence, head): the
 *                recurrence over the chunk's rows, its column of S and the
 *                2F sums z kept in private memory, then S back into the state
 *   linattn_z    z += the block's phi(k) (after linattn_rec: every item of it
 *                reads the z the block started from)
 * None has a barrier: a one-kernel form that shared the maps and z through
 * local memory crashed inside PoCL 3.1's compiled kernel (Oclgrind ran it
 * cleanly).
 */
#define LA_MAX_F 64 /* features per sign (CL_LINATTN_MAX_F) */

__kernel void linattn_phi(__global const float *qkv, ulong qo, __global const float *fmq, ulong fqo,
                          __global const float *fmk, ulong fko, __global float *phi, int H, int hd, int F,
                          float fm_eps, int row0, int len, int n, int n_items)
{
    const int i = get_global_id(0);
    if (i >= n_items)
        return;
    const int m = i % 2, h = (i / 2) % H, r = i / (2 * H), b = r / n, t = row0 + r % n;
    __global const float *x = qkv + qo + ((size_t)b * len + t) * 3 * H * hd + (size_t)(m * H + h) * hd;
    __global const float *W = (m ? fmk + fko : fmq + fqo) + (size_t)h * hd * F;
    __global float *p = phi + (size_t)i * 2 * F;
    float u[LA_MAX_F], hi = -INFINITY, lo = INFINITY, sp = 0.0f, sn = 0.0f;
    for (int f = 0; f < F; f++)
        u[f] = 0.0f;
    for (int d = 0; d < hd; d++) {
        const float xd = x[d];
        for (int f = 0; f < F; f++)
            u[f] += xd * W[(size_t)d * F + f];
    }
    for (int f = 0; f < F; f++) {
        hi = fmax(hi, u[f]);
        lo = fmin(lo, u[f]);
    }
    for (int f = 0; f < F; f++) {
        sp += exp(u[f] - hi);
        sn += exp(lo - u[f]); /* softmax(-u): the maximum of -u is -lo */
    }
    for (int f = 0; f < F; f++) {
        p[f] = fmax(exp(u[f] - hi) / sp, fm_eps);
        p[F + f] = fmax(exp(lo - u[f]) / sn, fm_eps);
    }
}

/* Item (dim j, sequence x head); rows row0 .. row0+n-1 of each sequence. */
__kernel void linattn_rec(__global const float *qkv, ulong qo, __global const float *phi,
                          __global float *state, ulong so, __global float *out, ulong oo, int H, int hd, int F,
                          float eps, int row0, int len, int n)
{
    const int j = get_global_id(0), h = get_global_id(1) % H, b = get_global_id(1) / H, F2 = 2 * F;
    if (j >= hd)
        return;
    __global float *st = state + so + ((size_t)b * H + h) * F2 * (hd + 1);
    float s[2 * LA_MAX_F], z[2 * LA_MAX_F];
    for (int f = 0; f < F2; f++) {
        s[f] = st[(size_t)f * (hd + 1) + j];
        z[f] = st[(size_t)f * (hd + 1) + hd];
    }
    for (int r = 0; r < n; r++) {
        const size_t row = (size_t)b * len + row0 + r;
        __global const float *pq = phi + (((size_t)b * n + r) * H + h) * 2 * F2, *pk = pq + F2;
        const float v = qkv[qo + row * 3 * H * hd + (size_t)(2 * H + h) * hd + j];
        float num = 0.0f, den = 0.0f;
        for (int f = 0; f < F2; f++) {
            z[f] += pk[f];
            s[f] += pk[f] * v;
            den += pq[f] * z[f];
            num += pq[f] * s[f];
        }
        out[oo + row * H * hd + (size_t)h * hd + j] = num / (den + eps);
    }
    for (int f = 0; f < F2; f++)
        st[(size_t)f * (hd + 1) + j] = s[f];
}

/* Item (feature f of 2F, sequence x head). */
__kernel void linattn_z(__global const float *phi, __global float *state, ulong so, int H, int hd, int F, int n,
                        int n_items)
{
    const int i = get_global_id(0), F2 = 2 * F;
    if (i >= n_items)
        return;
    const int f = i % F2, h = (i / F2) % H, b = i / (F2 * H);
    float z = state[so + (((size_t)b * H + h) * F2 + f) * (hd + 1) + hd];
    for (int r = 0; r < n; r++)
        z += phi[(((size_t)b * n + r) * H + h) * 2 * F2 + F2 + f];
    state[so + (((size_t)b * H + h) * F2 + f) * (hd + 1) + hd] = z;
}
