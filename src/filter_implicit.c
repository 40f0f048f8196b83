/*
 * The implicit filter of a Hyena operator, materialised once for a length:
 *
 *   h = Linear_last( Sin( ... Sin( Linear_0(z) ) ... ) )        z: [len][emb_dim]
 *   h[k][c] *= exp(-t[k] * |deltas[c]|) + shift
 *
 * with Sin(x) = sin(freq * x) and one freq shared by every Sin. Output is
 * time-major (the layout the backends take), for a range of positions: the
 * engine runs ranges on several threads. Plain C: this runs once per model
 * load, in blocks of positions so the working set stays in cache.
 */
#include "filter_implicit.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256 /* positions per block */

/* out[n][o] = sum_i in[n][i] * W[o][i] + b[o], for n < rows. Loops ordered so the
 * innermost one runs over o with W transposed: vectorisable without reassociation. */
static void linear_block(const float *in, int rows, int n_in, const float *WT, const float *b, int n_out,
                         float *out)
{
    for (int n = 0; n < rows; n++) {
        float *o = out + (size_t)n * n_out;
        for (int j = 0; j < n_out; j++)
            o[j] = b ? b[j] : 0.0f;
        for (int i = 0; i < n_in; i++) {
            float x = in[(size_t)n * n_in + i];
            const float *w = WT + (size_t)i * n_out;
            for (int j = 0; j < n_out; j++)
                o[j] += x * w[j];
        }
    }
}

lcsm_status lcsm__filter_materialise(const lcsm_filter_params *p, float shift, int k0, int k1, float *hT, size_t ld)
{
    int F = p->order, E = p->emb_dim, D = p->D, n_lin = p->n_inner + 2;
    int widest = F > D ? F : D;
    if (E > widest) /* the block buffers hold z's rows too */
        widest = E;
    size_t wt_total = 0;
    for (int j = 0; j < n_lin; j++) {
        int in = j == 0 ? E : F, out = j == n_lin - 1 ? D : F;
        wt_total += (size_t)in * (size_t)out;
    }
    float *wt = lcsm__malloc(wt_total * sizeof *wt);
    float *x = lcsm__malloc((size_t)BLOCK * widest * sizeof *x);
    float *y = lcsm__malloc((size_t)BLOCK * widest * sizeof *y);
    if (!wt || !x || !y) {
        lcsm__free(wt);
        lcsm__free(x);
        lcsm__free(y);
        return LCSM_ERR_OUT_OF_MEMORY;
    }
    /* Transposed weights, one after the other. */
    float *WT[8];
    size_t off = 0;
    for (int j = 0; j < n_lin; j++) {
        int in = j == 0 ? E : F, out = j == n_lin - 1 ? D : F;
        WT[j] = wt + off;
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++)
                WT[j][(size_t)i * out + o] = p->w[j][(size_t)o * in + i];
        off += (size_t)in * out;
    }
    for (int b0 = k0; b0 < k1; b0 += BLOCK) {
        int rows = k1 - b0 < BLOCK ? k1 - b0 : BLOCK;
        memcpy(x, p->z + (size_t)b0 * E, (size_t)rows * E * sizeof *x);
        for (int j = 0; j < n_lin; j++) {
            int in = j == 0 ? E : F, out = j == n_lin - 1 ? D : F;
            linear_block(x, rows, in, WT[j], j < n_lin - 1 ? p->b[j] : NULL, out, y);
            if (j < n_lin - 1)
                for (int n = 0; n < rows; n++)
                    for (int o = 0; o < out; o++)
                        y[(size_t)n * out + o] = sinf(p->freq[o] * y[(size_t)n * out + o]);
            float *tmp = x;
            x = y;
            y = tmp;
        }
        /* x holds [rows][D]: modulate and store, row by row. */
        for (int n = 0; n < rows; n++) {
            const float t = p->t[b0 + n];
            float *out = hT + (size_t)(b0 - k0 + n) * ld;
            for (int c = 0; c < D; c++) {
                float decay = expf(-t * fabsf(p->deltas[c])) + shift;
                out[c] = x[(size_t)n * D + c] * decay;
            }
        }
    }
    lcsm__free(wt);
    lcsm__free(x);
    lcsm__free(y);
    return LCSM_OK;
}
