/*
 * cpu_ops.c - fp32 kernels of the CPU device (see cpu_ops.h for the batch
 * invariance rule they follow).
 */
#include "cpu_ops.h"
#include "cpu_simd.h"
#include "ssfteval/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The GEMM's register tile: GEMM_MR rows of X times one packed panel of
 * SSF_CPU_PANEL columns (three 8-float vectors), 12 accumulators. */
#define GEMM_MR 4
/* k is walked in blocks of GEMM_KC so that a panel's slice (24 KB) stays in
 * L1 while every row tile passes over it; the accumulators go through Y
 * between blocks, which rounds nothing. */
#define GEMM_KC 256

ssf_cpu_isa ssf_cpu_isa_detect(void)
{
#ifdef SSF_CPU_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SSF_CPU_AVX2;
#endif
    return SSF_CPU_PORTABLE;
}

/* The exp of softmax and SwiGLU is libmvec's vector expf where the build
 * has it, which differs from the scalar expf in the last bit of half its
 * results: so it is named too. */
const char *ssf_cpu_isa_name(ssf_cpu_isa isa)
{
#if defined(SSF_CPU_X86) && defined(SSF_EXP8)
    return isa == SSF_CPU_AVX2 ? "avx2-libmvec" : "portable";
#else
    return isa == SSF_CPU_AVX2 ? "avx2" : "portable";
#endif
}

/* ---- the packed GEMM ---------------------------------------------------------- */

size_t ssf_cpu_packed_floats(int n, int k)
{
    return (size_t)((n + SSF_CPU_PANEL - 1) / SSF_CPU_PANEL) * SSF_CPU_PANEL * (size_t)k;
}

/* Where element (r, c) of a packed [n, k] weight sits. */
static size_t packed_at(int k, int r, int c)
{
    return (size_t)(r / SSF_CPU_PANEL) * (size_t)k * SSF_CPU_PANEL + (size_t)c * SSF_CPU_PANEL +
           (size_t)(r % SSF_CPU_PANEL);
}

void ssf_cpu_pack_row(float *packed, int k, int r, const float *row)
{
    for (int c = 0; c < k; c++)
        packed[packed_at(k, r, c)] = row[c];
}

void ssf_cpu_pack_row_bf16(uint16_t *packed, int k, int r, const uint16_t *row)
{
    for (int c = 0; c < k; c++)
        packed[packed_at(k, r, c)] = row[c];
}

static float widen_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

void ssf_cpu_unpack_row(ssf_cpu_matrix w, int k, int r, float *row)
{
    for (int c = 0; c < k; c++)
        row[c] = w.bf16 ? widen_bf16(w.bf16[packed_at(k, r, c)]) : w.f32[packed_at(k, r, c)];
}

/* What every kernel below computes for Y's rows [0, mr) and one panel
 * slice w of kc k steps ([kc][SSF_CPU_PANEL], x and w advanced to the
 * slice's first k): each element continues its own FMA chain,
 * y = fma(x[c], w[c], y) for c ascending, from 0 for the first slice of k
 * (more == 0) or from the value left in y. */
static void slice_portable(const float *x, int ldx, const float *w, int kc, int more, float *y,
                           int ldy, int mr)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < SSF_CPU_PANEL; j++) {
            float acc = more ? y[(size_t)i * ldy + j] : 0.0f;
            for (int c = 0; c < kc; c++)
                /* The analyzer lets widen()'s kc * SSF_CPU_PANEL overflow, leaving w unwritten. */
                /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage) */
                acc = fmaf(x[(size_t)i * ldx + c], w[(size_t)c * SSF_CPU_PANEL + j], acc);
            y[(size_t)i * ldy + j] = acc;
        }
}

#ifdef SSF_CPU_X86
/* Where a pass over a panel slice prefetches: an address (never
 * dereferenced, so it may point past the weights) and its advance a k step. */
typedef struct prefetch_cursor {
    uintptr_t at, step;
} prefetch_cursor;

/* One row of X against a slice (the rows past the last whole tile). */
SSF_AVX2 static void slice_row_avx2(const float *x, const float *w, int kc, int more, float *y,
                                    prefetch_cursor pf)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0;
    if (more) {
        a0 = _mm256_loadu_ps(y), a1 = _mm256_loadu_ps(y + 8), a2 = _mm256_loadu_ps(y + 16);
    }
    for (int c = 0; c < kc; c++, w += SSF_CPU_PANEL, pf.at += pf.step) {
        _mm_prefetch((const char *)pf.at, _MM_HINT_T0); /* NOLINT(performance-no-int-to-ptr) */
        __m256 b = _mm256_broadcast_ss(x + c);
        a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w), a0);
        a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w + 8), a1);
        a2 = _mm256_fmadd_ps(b, _mm256_loadu_ps(w + 16), a2);
    }
    _mm256_storeu_ps(y, a0), _mm256_storeu_ps(y + 8, a1), _mm256_storeu_ps(y + 16, a2);
}

/* The accumulators of row I of a 4 x 24 tile. */
#define ROW_LOAD(I)                                                                                \
    __m256 a##I##0 = _mm256_setzero_ps(), a##I##1 = a##I##0, a##I##2 = a##I##0;                    \
    if (more) {                                                                                    \
        a##I##0 = _mm256_loadu_ps(y + (I) * (size_t)ldy);                                          \
        a##I##1 = _mm256_loadu_ps(y + (I) * (size_t)ldy + 8);                                      \
        a##I##2 = _mm256_loadu_ps(y + (I) * (size_t)ldy + 16);                                     \
    }
#define ROW_FMA(I)                                                                                 \
    b = _mm256_broadcast_ss(x + (I) * (size_t)ldx + c);                                            \
    a##I##0 = _mm256_fmadd_ps(b, w0, a##I##0);                                                     \
    a##I##1 = _mm256_fmadd_ps(b, w1, a##I##1);                                                     \
    a##I##2 = _mm256_fmadd_ps(b, w2, a##I##2);
#define ROW_STORE(I)                                                                               \
    _mm256_storeu_ps(y + (I) * (size_t)ldy, a##I##0);                                              \
    _mm256_storeu_ps(y + (I) * (size_t)ldy + 8, a##I##1);                                          \
    _mm256_storeu_ps(y + (I) * (size_t)ldy + 16, a##I##2);

/* Four rows of X against a slice: 12 accumulators in registers, each k
 * step three panel loads and four broadcasts for 12 FMAs (an outer
 * product), where a dot-product tile pays a horizontal sum per element. */
SSF_AVX2 static void slice_tile_avx2(const float *x, int ldx, const float *w, int kc, int more,
                                     float *y, int ldy, prefetch_cursor pf)
{
    ROW_LOAD(0) ROW_LOAD(1) ROW_LOAD(2) ROW_LOAD(3);
    for (int c = 0; c < kc; c++, w += SSF_CPU_PANEL, pf.at += pf.step) {
        _mm_prefetch((const char *)pf.at, _MM_HINT_T0); /* NOLINT(performance-no-int-to-ptr) */
        __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), w2 = _mm256_loadu_ps(w + 16),
               b;
        ROW_FMA(0) ROW_FMA(1) ROW_FMA(2) ROW_FMA(3)
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3)
}

/* Pass p of n over a slice of kc k steps fetches its share of the next
 * slice (at `next`, `step_bytes` a k step): with one pass a slice the
 * hardware prefetcher keeps up, but with many only the first pass reads
 * memory, faster than it can stream, while the rest compute from L1.
 * Spread over all passes, the next slice arrives during the whole of this
 * one. */
static prefetch_cursor next_slice_share(uintptr_t next, uintptr_t step_bytes, int kc, int p, int n)
{
    uintptr_t step = step_bytes / (uintptr_t)n;
    return (prefetch_cursor){next + (uintptr_t)p * (uintptr_t)kc * step, step};
}

SSF_AVX2 static void slice_avx2(const float *x, int ldx, const float *w, int kc, int more, float *y,
                                int ldy, int mr, uintptr_t next, uintptr_t step_bytes)
{
    int passes = mr / GEMM_MR + mr % GEMM_MR, p = 0, i = 0;
    for (; i + GEMM_MR <= mr; i += GEMM_MR, p++)
        slice_tile_avx2(x + (size_t)i * ldx, ldx, w, kc, more, y + (size_t)i * ldy, ldy,
                        next_slice_share(next, step_bytes, kc, p, passes));
    for (; i < mr; i++, p++)
        slice_row_avx2(x + (size_t)i * ldx, w, kc, more, y + (size_t)i * ldy,
                       next_slice_share(next, step_bytes, kc, p, passes));
}

/* n BF16 values to fp32, 8 at a time (exact: a BF16 is a float's top half). */
SSF_AVX2 static void widen_avx2(const uint16_t *b, int n, float *out)
{
    int n8 = n & ~7;
    for (int i = 0; i < n8; i += 8) {
        __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b + i)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(u, 16)));
    }
    for (int i = n8; i < n; i++)
        out[i] = widen_bf16(b[i]);
}
#endif

static void widen(ssf_cpu_isa isa, const uint16_t *b, int n, float *out)
{
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2) {
        widen_avx2(b, n, out);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        out[i] = widen_bf16(b[i]);
}

/* One panel's columns for all m rows into y (row stride ldy, room for the
 * whole panel), k in slices of GEMM_KC.  BF16 slices are widened into
 * `wide` first, once for all the rows; each slice's passes prefetch the
 * next slice where it is stored. */
static void panel_all_k(ssf_cpu_isa isa, const float *x, int m, int k, ssf_cpu_matrix w,
                        size_t panel, float *wide, float *y, int ldy)
{
    size_t first = panel * (size_t)k * SSF_CPU_PANEL;
    for (int k0 = 0; k0 < k; k0 += GEMM_KC) {
        int kc = k - k0 < GEMM_KC ? k - k0 : GEMM_KC;
        size_t at = first + (size_t)k0 * SSF_CPU_PANEL, end = at + (size_t)kc * SSF_CPU_PANEL;
        const float *slice = wide;
        uintptr_t next, step; /* the next slice where it is stored, and its bytes a k step */
        if (w.bf16) {
            widen(isa, w.bf16 + at, kc * SSF_CPU_PANEL, wide);
            next = (uintptr_t)(w.bf16 + end), step = SSF_CPU_PANEL * sizeof(uint16_t);
        } else {
            slice = w.f32 + at;
            next = (uintptr_t)(w.f32 + end), step = SSF_CPU_PANEL * sizeof(float);
        }
#ifdef SSF_CPU_X86
        if (isa == SSF_CPU_AVX2) {
            slice_avx2(x + k0, k, slice, kc, k0 > 0, y, ldy, m, next, step);
            continue;
        }
#endif
        (void)next, (void)step;
        slice_portable(x + k0, k, slice, kc, k0 > 0, y, ldy, m);
    }
}

/* y[i][j] += bias[j] over a whole panel: the chain's sum, then the bias,
 * as for a partial panel. */
static void add_bias(float *y, int m, const float *bias, int ldy)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < SSF_CPU_PANEL; j++)
            y[(size_t)i * ldy + j] += bias[j];
}

/* Copies columns [0, n) of an m x SSF_CPU_PANEL tile into y, adding bias. */
static void put_columns(const float *t, int m, int n, const float *bias, float *y, int ldy)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            y[(size_t)i * ldy + j] = bias ? t[(size_t)i * SSF_CPU_PANEL + j] + bias[j]
                                          : t[(size_t)i * SSF_CPU_PANEL + j];
}

void ssf_cpu_gemm_range(ssf_cpu_isa isa, const float *x, int m, int k, ssf_cpu_matrix w, int n,
                        const float *bias, float *y, int ldy, int n0, int n1)
{
    if (n1 > n) n1 = n;
    float *edge = NULL; /* a panel that Y cannot hold whole */
    /* a widened BF16 slice: 24 KB, on the stack so each thread has its own */
    _Alignas(64) float wide[GEMM_KC * SSF_CPU_PANEL];
    for (int c = n0; c < n1; c += SSF_CPU_PANEL) {
        size_t panel = (size_t)(c / SSF_CPU_PANEL);
        int cols = n1 - c < SSF_CPU_PANEL ? n1 - c : SSF_CPU_PANEL;
        if (cols == SSF_CPU_PANEL) {
            panel_all_k(isa, x, m, k, w, panel, wide, y + c, ldy);
            if (bias) add_bias(y + c, m, bias + c, ldy);
            continue;
        }
        if (!edge) edge = ssf_xmalloc((size_t)(m > 0 ? m : 1) * SSF_CPU_PANEL * sizeof(float));
        panel_all_k(isa, x, m, k, w, panel, wide, edge, SSF_CPU_PANEL);
        put_columns(edge, m, cols, bias ? bias + c : NULL, y + c, ldy);
    }
    free(edge);
}

/* ---- element-wise ops --------------------------------------------------------------- */

/* The sum of squares in double, so its order hardly matters: four partial
 * sums over i % 4, added (0+1)+(2+3), on either kernel set. */
static double sum_squares_portable(const float *x, int n)
{
    double s[4] = {0};
    for (int i = 0; i < n; i++)
        s[i % 4] = fma((double)x[i], (double)x[i], s[i % 4]);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

#ifdef SSF_CPU_X86
SSF_AVX2 static double sum_squares_avx2(const float *x, int n)
{
    __m256d acc = _mm256_setzero_pd();
    int n4 = n & ~3;
    for (int i = 0; i < n4; i += 4) {
        __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
        acc = _mm256_fmadd_pd(v, v, acc);
    }
    double s[4];
    _mm256_storeu_pd(s, acc);
    for (int i = n4; i < n; i++)
        s[i % 4] = fma((double)x[i], (double)x[i], s[i % 4]);
    return (s[0] + s[1]) + (s[2] + s[3]);
}
#endif

void ssf_cpu_rmsnorm(ssf_cpu_isa isa, const float *x, const float *w, int n, float eps, float *y)
{
    double ss;
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2)
        ss = sum_squares_avx2(x, n);
    else
#endif
        ss = sum_squares_portable(x, n);
    float var = (float)(ss / n);
    float inv = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++)
        y[i] = w[i] * (x[i] * inv);
}

void ssf_cpu_rope_inv_freq(double theta, int head_dim, float *inv_freq)
{
    /* transformers: 1.0 / (base ** (arange(0, d, 2).float() / d)), all fp32 */
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        inv_freq[i] = 1.0f / powf((float)theta, e);
    }
}

void ssf_cpu_rope_angles(int head_dim, const float *inv_freq, int32_t pos, float *cos_sin)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float f = (float)pos * inv_freq[i];
        cos_sin[i] = cosf(f);
        cos_sin[half + i] = sinf(f);
    }
}

void ssf_cpu_rope_rotate(float *v, int head_dim, const float *cos_sin)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float c = cos_sin[i], s = cos_sin[half + i];
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

void ssf_cpu_rope(float *v, int head_dim, const float *inv_freq, int32_t pos, float *cos_sin)
{
    ssf_cpu_rope_angles(head_dim, inv_freq, pos, cos_sin);
    ssf_cpu_rope_rotate(v, head_dim, cos_sin);
}

#if defined(SSF_CPU_X86) && defined(SSF_EXP8)
SSF_AVX2 static void exp_avx2(float *x, int n)
{
    int n8 = n & ~7;
    for (int i = 0; i < n8; i += 8)
        _mm256_storeu_ps(x + i, SSF_EXP8(_mm256_loadu_ps(x + i)));
    if (n8 == n) return;
    /* the tail through the same function, in a padded vector */
    float t[8] = {0};
    memcpy(t, x + n8, sizeof(float) * (size_t)(n - n8));
    _mm256_storeu_ps(t, SSF_EXP8(_mm256_loadu_ps(t)));
    memcpy(x + n8, t, sizeof(float) * (size_t)(n - n8));
}
#endif

void ssf_cpu_exp(ssf_cpu_isa isa, float *x, int n)
{
#if defined(SSF_CPU_X86) && defined(SSF_EXP8)
    if (isa == SSF_CPU_AVX2) {
        exp_avx2(x, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        x[i] = expf(x[i]);
}

void ssf_cpu_swiglu(ssf_cpu_isa isa, const float *gate, const float *up, int n, float *out)
{
    for (int i = 0; i < n; i++)
        out[i] = -gate[i];
    ssf_cpu_exp(isa, out, n);
    for (int i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + out[i]) * up[i];
}
