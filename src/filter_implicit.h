/* HyenaDNA's implicit filter (filter_implicit.c): the filter MLP of a layer
 * evaluated at every position, once, at load. */
#ifndef LCSM_FILTER_IMPLICIT_H
#define LCSM_FILTER_IMPLICIT_H

#include "lcsm.h"

/* Parameters of one layer's implicit filter, host pointers. */
typedef struct lcsm_filter_params {
    const float *z;      /* [l_max][emb_dim] */
    const float *t;      /* [l_max] */
    const float *w[8];   /* Linear weights, w[0] [F][E], w[1..n] [F][F], w[n+1] [D][F] */
    const float *b[8];   /* biases of the first n+1 Linears */
    const float *freq;   /* [F] */
    const float *deltas; /* [D] */
    int n_inner;         /* num_inner_mlps */
    int emb_dim, order, D;
} lcsm_filter_params;

/* Taps k0 <= k < k1 (<= l_max) of the materialised filter, time-major: tap k
 * of channel c < D at hT[(k - k0) * ld + c]. */
lcsm_status lcsm__filter_materialise(const lcsm_filter_params *p, float shift, int k0, int k1, float *hT, size_t ld);

#endif
