/*
 * Half-precision weights on the CPU (f16 or bf16). OpenBLAS 0.3.21 (Debian)
 * has no half-precision GEMV, and decoding is bound by the bytes of weights
 * read, not by arithmetic. With AVX2, F16C and FMA (checked at run time) a few
 * rows of x take a fused kernel: each weight row is converted in registers and
 * multiplied at once. Otherwise, and for prefill-sized products, blocks of
 * weight rows are converted to f32 into a per-thread buffer that stays in
 * cache, and BLAS runs on the block. Either way memory traffic is the
 * half-precision weights once.
 */
#include "cpu.h"

#include <cblas.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CPU_HALF_X86 1
#endif

float cpu_f16_to_f32(uint16_t h)
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
            dst[i] = cpu_f16_to_f32(src[i]);
    }
}

#ifdef CPU_HALF_X86
#define CPU_HALF_TARGET __attribute__((target("avx2,fma,f16c")))

/* Eight weights from element k of a half row, as floats. */
CPU_HALF_TARGET static inline __m256 load8(const uint16_t *w, int bf16)
{
    __m128i h = _mm_loadu_si128((const __m128i *)w);
    return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
}

CPU_HALF_TARGET static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* The decode case, fused: each weight row read once, converted in registers and
 * multiplied into up to CPU_HALF_ROWS rows of x (which stay in L1), so memory
 * traffic is the half-precision row and nothing else. */
#define CPU_HALF_ROWS 4
CPU_HALF_TARGET static void gemv_half_avx2(const float *x, const uint16_t *W, int bf16, int rows, int n_in, int n_out,
                                          int o0, int o1, float beta, float *out)
{
    const int k8 = n_in & ~7;
    for (int r0 = 0; r0 < rows; r0 += CPU_HALF_ROWS) {
        const int nr = rows - r0 < CPU_HALF_ROWS ? rows - r0 : CPU_HALF_ROWS;
        const float *xr = x + (size_t)r0 * n_in;
        for (int o = o0; o < o1; o++) {
            const uint16_t *w = W + (size_t)o * n_in;
            __m256 acc[CPU_HALF_ROWS][2];
            for (int r = 0; r < CPU_HALF_ROWS; r++)
                acc[r][0] = acc[r][1] = _mm256_setzero_ps();
            int k = 0;
            for (; k + 16 <= k8; k += 16) { /* two independent chains per row */
                const __m256 w0 = load8(w + k, bf16), w1 = load8(w + k + 8, bf16);
                for (int r = 0; r < nr; r++) {
                    acc[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr + (size_t)r * n_in + k), acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xr + (size_t)r * n_in + k + 8), acc[r][1]);
                }
            }
            for (; k < k8; k += 8) {
                const __m256 w0 = load8(w + k, bf16);
                for (int r = 0; r < nr; r++)
                    acc[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xr + (size_t)r * n_in + k), acc[r][0]);
            }
            for (int r = 0; r < nr; r++) {
                float v = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
                for (int kk = k8; kk < n_in; kk++) {
                    float wf;
                    half_to_f32_c(w + kk, 1, bf16, &wf);
                    v += wf * xr[(size_t)r * n_in + kk];
                }
                float *op = out + (size_t)(r0 + r) * n_out + o;
                *op = beta != 0.0f ? *op + v : v;
            }
        }
    }
}

CPU_HALF_TARGET static void half_to_f32_avx2(const uint16_t *src, size_t n, int bf16,
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
    cb->half_fused = 0;
#ifdef CPU_HALF_X86
    /* F16C from CPUID itself: Clang 14's __builtin_cpu_supports does not know "f16c". */
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    __builtin_cpu_init();
    if (f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        cb->half_to_f32 = half_to_f32_avx2;
        cb->half_fused = 1;
    }
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
    /* Small batches: blocks of rows converted, then the small-batch kernel
     * (measured faster than the fused GEMV from 2 rows on). */
    const int small = cb->small_gemm && rows >= 2 && rows <= CPU_SMALL_GEMM_ROWS && n_in <= CPU_WBLOCK_FLOATS;
#ifdef CPU_HALF_X86
    if (!small && cb->half_fused && rows <= 2 * CPU_HALF_ROWS) {
        gemv_half_avx2(x, W, bf16, rows, n_in, n_out, o0, o1, beta, out);
        return;
    }
#endif
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
            if (small) /* kw == n_in here */
                cb->small_gemm(x, blk, out, rows, n_in, n_out, o, o + m, b != 0.0f);
            else if (rows == 1)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, m, kw, 1.0f, blk, kw, x + k0, 1, b, out + o, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, kw, 1.0f, x + k0, n_in, blk, kw, b,
                            out + o, n_out);
        }
    }
}
