/*
 * Half-precision weights on the CPU (f16 or bf16). OpenBLAS 0.3.21 (Debian)
 * has no half-precision GEMV, and decoding is bound by the bytes of weights
 * read, not by arithmetic: so blocks of weight rows are converted to f32 into a
 * per-thread buffer that stays in cache, and BLAS runs on the block. Memory
 * traffic is the half-precision weights once; the f32 copy never leaves L1/L2.
 */
#include "cpu.h"

#include <cblas.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_HALF_X86 1
#endif

/* f16 -> f32 without F16C: rebias the exponent; subnormals through a float
 * subtraction; Inf and NaN keep an all-ones exponent. */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t o = ((uint32_t)h & 0x7fffu) << 13, exp = o & (0x7c00u << 13);
    o += (uint32_t)(127 - 15) << 23;
    if (exp == 0x7c00u << 13) {
        o += (uint32_t)(128 - 16) << 23;
    } else if (exp == 0) {
        float f, magic;
        uint32_t m = 113u << 23;
        o += 1u << 23;
        memcpy(&f, &o, 4);
        memcpy(&magic, &m, 4);
        f -= magic;
        memcpy(&o, &f, 4);
    }
    o |= ((uint32_t)h & 0x8000u) << 16;
    float f;
    memcpy(&f, &o, 4);
    return f;
}

static void half_to_f32_c(const uint16_t *src, size_t n, int bf16, float *dst)
{
    if (bf16) {
        uint32_t *d = (uint32_t *)dst;
        for (size_t i = 0; i < n; i++)
            d[i] = (uint32_t)src[i] << 16;
    } else {
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32(src[i]);
    }
}

#ifdef CPU_HALF_X86
__attribute__((target("avx2,f16c"))) static void half_to_f32_avx2(const uint16_t *src, size_t n, int bf16,
                                                                   float *dst)
{
    size_t i = 0;
    if (bf16) {
        for (; i + 8 <= n; i += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(v, 16));
        }
    } else {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    }
    half_to_f32_c(src + i, n - i, bf16, dst + i);
}
#endif

void cpu_half_init(cpu_backend *cb)
{
    cb->half_to_f32 = half_to_f32_c;
#ifdef CPU_HALF_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c"))
        cb->half_to_f32 = half_to_f32_avx2;
#endif
}

lcsm_status cpu_wblock_reserve(cpu_backend *cb)
{
    if (cb->wblock)
        return LCSM_OK;
    float **b = lcsm__calloc((size_t)cb->n_threads, sizeof *b);
    for (int t = 0; b && t < cb->n_threads; t++)
        if (!(b[t] = cpu_falloc(CPU_WBLOCK_FLOATS))) {
            for (int k = 0; k < t; k++)
                cpu_ffree(b[k]);
            lcsm__free(b);
            b = NULL;
        }
    if (!b)
        return LCSM_FAIL_BE(&cb->base, LCSM_ERR_OUT_OF_MEMORY, "cpu: half-precision weight blocks");
    cb->wblock = b;
    return LCSM_OK;
}

void cpu_wblock_free(cpu_backend *cb)
{
    for (int t = 0; cb->wblock && t < cb->n_threads; t++)
        cpu_ffree(cb->wblock[t]);
    lcsm__free(cb->wblock);
    cb->wblock = NULL;
}

void cpu_linear_half(cpu_backend *cb, const float *x, const uint16_t *W, int bf16, int rows, int n_in, int n_out,
                     int o0, int o1, float beta, float *out, int thread)
{
    float *blk = cb->wblock[thread];
    /* Blocks of `per` weight rows by `kc` columns fill the thread's buffer; a
     * row longer than the buffer goes in column chunks, accumulating. */
    const int kc = n_in < CPU_WBLOCK_FLOATS ? n_in : CPU_WBLOCK_FLOATS;
    int per = CPU_WBLOCK_FLOATS / kc;
    per = per > 64 ? 64 : per;
    for (int o = o0; o < o1; o += per) {
        const int m = o1 - o < per ? o1 - o : per;
        for (int k0 = 0; k0 < n_in; k0 += kc) {
            const int kw = n_in - k0 < kc ? n_in - k0 : kc;
            const float b = k0 ? 1.0f : beta;
            for (int r = 0; r < m; r++)
                cb->half_to_f32(W + (size_t)(o + r) * n_in + k0, (size_t)kw, bf16, blk + (size_t)r * kw);
            if (rows == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, m, kw, 1.0f, blk, kw, x + k0, 1, b, out + o, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, kw, 1.0f, x + k0, n_in, blk, kw, b,
                            out + o, n_out);
        }
    }
}
