/*
 * Small batches: out[rows][o0..o1) (op)= x W[o0..o1)^T (W given from row o0) for
 * 2 <= rows <= CPU_SMALL_GEMM_ROWS, each pair of weight rows read once for
 * four rows of x at a time (held in registers), where OpenBLAS's sgemm, made
 * for large products, packs and pays for it. x stays in L1 (32 rows of at most
 * a few thousand floats); the sums run in vector lanes and are reduced at the
 * end, so they differ from sgemm's order by rounding only.
 *
 * AVX-512 where the CPU has it, else AVX2 + FMA; neither: sgemm stays.
 */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* One kernel per vector width: VW floats per vector, V the vector type. */
#define SMALL_GEMM(NAME, TARGET, V, VW, ZERO, LOAD, FMA, SUM)                                                  \
    __attribute__((target(TARGET))) static void NAME(const float *x, const float *W, float *out, int rows,      \
                                                     int n_in, int n_out, int o0, int o1, int acc)              \
    {                                                                                                         \
        const int kv = n_in - n_in % VW;                                                                      \
        for (int n = o0; n < o1; n += 2) {                                                                    \
            const int two = n + 1 < o1;                                                                       \
            const float *w0 = W + (size_t)(n - o0) * n_in, *w1 = two ? w0 + n_in : w0;                        \
            for (int r0 = 0; r0 < rows; r0 += 4) {                                                            \
                const int nr = rows - r0 < 4 ? rows - r0 : 4;                                                 \
                const float *xr[4];                                                                           \
                for (int r = 0; r < 4; r++)                                                                   \
                    xr[r] = x + (size_t)(r0 + (r < nr ? r : 0)) * n_in;                                       \
                V a0[4] = {ZERO, ZERO, ZERO, ZERO}, a1[4] = {ZERO, ZERO, ZERO, ZERO};                          \
                for (int k = 0; k < kv; k += VW) {                                                            \
                    const V v0 = LOAD(w0 + k), v1 = LOAD(w1 + k);                                             \
                    for (int r = 0; r < 4; r++) {                                                             \
                        const V y = LOAD(xr[r] + k);                                                          \
                        a0[r] = FMA(v0, y, a0[r]);                                                            \
                        a1[r] = FMA(v1, y, a1[r]);                                                            \
                    }                                                                                         \
                }                                                                                             \
                for (int r = 0; r < nr; r++) {                                                                \
                    float s0 = SUM(a0[r]), s1 = SUM(a1[r]);                                                   \
                    for (int k = kv; k < n_in; k++) {                                                         \
                        s0 += w0[k] * xr[r][k];                                                               \
                        s1 += w1[k] * xr[r][k];                                                               \
                    }                                                                                         \
                    float *o = out + (size_t)(r0 + r) * n_out + n;                                            \
                    o[0] = acc ? o[0] + s0 : s0;                                                              \
                    if (two)                                                                                  \
                        o[1] = acc ? o[1] + s1 : s1;                                                          \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
    }

__attribute__((target("avx2,fma"))) static inline float sum8(__m256 v)
{
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_add_ss(a, _mm_shuffle_ps(a, a, 1)));
}

SMALL_GEMM(small_gemm_avx2, "avx2,fma", __m256, 8, _mm256_setzero_ps(), _mm256_loadu_ps, _mm256_fmadd_ps, sum8)
SMALL_GEMM(small_gemm_avx512, "avx512f", __m512, 16, _mm512_setzero_ps(), _mm512_loadu_ps, _mm512_fmadd_ps,
           _mm512_reduce_add_ps)
#endif

void cpu_small_gemm_init(cpu_backend *cb)
{
    cb->small_gemm = NULL;
    const char *env = getenv("LCSM_CPU_SMALL_GEMM");
    if (env && !strcmp(env, "0"))
        return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        cb->small_gemm = small_gemm_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        cb->small_gemm = small_gemm_avx2;
#endif
}
