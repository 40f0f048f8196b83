/*
 * Activations of the CPU backend: one value (cpu_act, the definition), and a
 * row of values with GELU (tanh form) and SiLU vectorised where AVX2 + FMA
 * run (cpu_act_row).
 */
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float cpu_act(lcsm_act act, float v)
{
    switch (act) {
    case LCSM_ACT_GELU_TANH: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case LCSM_ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    case LCSM_ACT_SILU: return v / (1.0f + expf(-v));
    default: return v;
    }
}

/* ---- activations over a row: GELU (tanh form) and SiLU as x * sigmoid(z)
 * (0.5 (1 + tanh u) = sigmoid(2u)), the exponential vectorised (Cody-Waite
 * reduction, degree-6 polynomial: within 1.3 ulp of exp over [-87, 88]); the rest, and CPUs
 * without AVX2, through cpu_act one value at a time. */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) static int act_row_avx2(lcsm_act act, float *o, int n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(o + i);
        __m256 z; /* the sigmoid's argument, negated */
        if (act == LCSM_ACT_GELU_TANH) {
            const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
            z = _mm256_mul_ps(_mm256_set1_ps(-2.0f * 0.7978845608028654f),
                              _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
        } else {
            z = _mm256_sub_ps(_mm256_setzero_ps(), x);
        }
        _mm256_storeu_ps(o + i, _mm256_div_ps(x, _mm256_add_ps(one, exp8(z))));
    }
    return i;
}
#endif

void cpu_act_row(const cpu_backend *cb, lcsm_act act, float *o, int n)
{
    int i = 0;
#if defined(__x86_64__) || defined(__i386__)
    if (cb->act_avx2 && (act == LCSM_ACT_GELU_TANH || act == LCSM_ACT_SILU))
        i = act_row_avx2(act, o, n);
#else
    (void)cb;
#endif
    for (; i < n; i++)
        o[i] = cpu_act(act, o[i]);
}

void cpu_act_init(cpu_backend *cb)
{
    cb->act_avx2 = 0;
    const char *env = getenv("LCSM_CPU_SMALL_GEMM"); /* the A/B switch of both */
    if (env && !strcmp(env, "0"))
        return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    cb->act_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
}
