/*
 * cpu_ops.c - fp32 kernels of the CPU device (see cpu_ops.h for the batch
 * invariance rule they follow) and its thread pool.
 */
#include "cpu_ops.h"
#include "ssfteval/util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SSF_CPU_X86 1
#include <immintrin.h>
/* complete unrolling keeps the accumulators in registers */
#define UNROLL _Pragma("GCC unroll 4")
#define SSF_AVX2 __attribute__((target("avx2,fma")))
#define SSF_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#endif

/* The dot products' tile (attention scores): up to 4 rows of q a K row. */
#define TILE_M 4
#define TILE_N 3
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

const char *ssf_cpu_isa_name(ssf_cpu_isa isa)
{
    return isa == SSF_CPU_AVX2 ? "avx2" : "portable";
}

/* ---- portable kernels --------------------------------------------------------- */

/* Eight partial sums, reduced pairwise: the same shape as the AVX2 kernel,
 * which lets the compiler vectorize it without reassociating anything. */
static float dot_portable(const float *a, const float *b, int k)
{
    float s[8] = {0};
    int k8 = k & ~7;
    for (int i = 0; i < k8; i += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[i + l] * b[i + l];
    float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (int i = k8; i < k; i++)
        r += a[i] * b[i];
    return r;
}

/* ---- AVX2 kernels -------------------------------------------------------------- */

#ifdef SSF_CPU_X86
/* Lanes (0+4, 1+5, 2+6, 3+7), then (0+4)+(2+6) and (1+5)+(3+7), then both. */
SSF_AVX2_INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* The last k % 8 products, fused like the vector ones. */
SSF_AVX2_INLINE float tail_fma(const float *a, const float *b, int k8, int k, float s)
{
    __m128 acc = _mm_set_ss(s);
    for (int i = k8; i < k; i++)
        acc = _mm_fmadd_ss(_mm_set_ss(a[i]), _mm_set_ss(b[i]), acc);
    return _mm_cvtss_f32(acc);
}

/* An mr x nr tile of Y (mr <= 4, nr <= 3, constants after inlining). Every
 * element has its own accumulator and sees the same instruction sequence
 * whatever the tile shape, which is what makes rows batch-invariant. */
SSF_AVX2_INLINE void tile_avx2(const float *x, int k, const float *w, const float *bias, float *y,
                               int ldy, int mr, int nr)
{
    __m256 acc[TILE_M][TILE_N];
    UNROLL for (int i = 0; i < mr; i++) UNROLL for (int j = 0; j < nr; j++) acc[i][j] =
        _mm256_setzero_ps();
    int k8 = k & ~7;
    for (int kk = 0; kk < k8; kk += 8) {
        __m256 wv[TILE_N];
        UNROLL for (int j = 0; j < nr; j++) wv[j] = _mm256_loadu_ps(w + (size_t)j * k + kk);
        UNROLL for (int i = 0; i < mr; i++)
        {
            __m256 xv = _mm256_loadu_ps(x + (size_t)i * k + kk);
            UNROLL for (int j = 0; j < nr; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float s = tail_fma(x + (size_t)i * k, w + (size_t)j * k, k8, k, hsum8(acc[i][j]));
            y[(size_t)i * ldy + j] = bias ? s + bias[j] : s;
        }
}

SSF_AVX2 static float dot_avx2(const float *a, const float *b, int k)
{
    float s;
    tile_avx2(a, k, b, NULL, &s, 1, 1, 1);
    return s;
}

/* The dots of n consecutive rows of q (k floats each) with one row b, into
 * y[0], y[ldy], ...: b is loaded once per 4 rows, and each dot is computed
 * exactly as dot_avx2 computes it. */
SSF_AVX2 static void dots_avx2(const float *q, int n, int k, const float *b, float *y, int ldy)
{
    for (; n >= 4; n -= 4, q += 4 * (size_t)k, y += 4 * (size_t)ldy)
        tile_avx2(q, k, b, NULL, y, ldy, 4, 1);
    if (n == 3) tile_avx2(q, k, b, NULL, y, ldy, 3, 1);
    if (n == 2) tile_avx2(q, k, b, NULL, y, ldy, 2, 1);
    if (n == 1) tile_avx2(q, k, b, NULL, y, ldy, 1, 1);
}

/* Visits the V rows of positions 0..n_ctx) in order, block by block:
 * BODY sees `row` (offset by d) and `pj`. */
#define FOR_VALUE_ROWS(kv, p, n_ctx, d, BODY)                                                      \
    for (int j0 = 0, blk = 0; j0 < (n_ctx); j0 += (kv)->block_size, blk++) {                       \
        const float *vb = (kv)->v + (size_t)(kv)->table[blk] * (kv)->block_stride + (d);           \
        int nb = (n_ctx)-j0 < (kv)->block_size ? (n_ctx)-j0 : (kv)->block_size;                    \
        for (int i = 0; i < nb; i++) {                                                             \
            const float *row = vb + (size_t)i * (size_t)(kv)->row_stride;                          \
            float pj = (p)[j0 + i];                                                                \
            BODY                                                                                   \
        }                                                                                          \
    }

/* out[0..n) = sum over positions j in order of p[j] * V_j[0..n), each
 * element one FMA chain from zero: the same sums as repeated axpy_avx2
 * calls, with 64 of them kept in registers instead of memory. */
SSF_AVX2 static void weighted_rows_avx2(const float *p, const ssf_cpu_kv_pages *kv, int n_ctx,
                                        int n, float *out)
{
    int d = 0;
    for (; d + 64 <= n; d += 64) {
        __m256 acc[8];
        UNROLL for (int c = 0; c < 8; c++) acc[c] = _mm256_setzero_ps();
        FOR_VALUE_ROWS(kv, p, n_ctx, d, {
            __m256 pv = _mm256_set1_ps(pj);
            UNROLL for (int c = 0; c < 8; c++) acc[c] =
                _mm256_fmadd_ps(pv, _mm256_loadu_ps(row + 8 * c), acc[c]);
        })
        UNROLL for (int c = 0; c < 8; c++) _mm256_storeu_ps(out + d + 8 * c, acc[c]);
    }
    for (; d + 8 <= n; d += 8) {
        __m256 acc = _mm256_setzero_ps();
        FOR_VALUE_ROWS(kv, p, n_ctx, d,
                       { acc = _mm256_fmadd_ps(_mm256_set1_ps(pj), _mm256_loadu_ps(row), acc); })
        _mm256_storeu_ps(out + d, acc);
    }
    for (; d < n; d++) {
        float acc = 0.0f;
        FOR_VALUE_ROWS(kv, p, n_ctx, d, { acc = fmaf(pj, *row, acc); })
        out[d] = acc;
    }
}

#endif

/* ---- the packed GEMM ---------------------------------------------------------- */

size_t ssf_cpu_packed_floats(int n, int k)
{
    return (size_t)((n + SSF_CPU_PANEL - 1) / SSF_CPU_PANEL) * SSF_CPU_PANEL * (size_t)k;
}

void ssf_cpu_pack_row(float *packed, int k, int r, const float *row)
{
    float *p = packed + (size_t)(r / SSF_CPU_PANEL) * k * SSF_CPU_PANEL + r % SSF_CPU_PANEL;
    for (int c = 0; c < k; c++)
        p[(size_t)c * SSF_CPU_PANEL] = row[c];
}

void ssf_cpu_unpack_row(const float *packed, int k, int r, float *row)
{
    const float *p = packed + (size_t)(r / SSF_CPU_PANEL) * k * SSF_CPU_PANEL + r % SSF_CPU_PANEL;
    for (int c = 0; c < k; c++)
        row[c] = p[(size_t)c * SSF_CPU_PANEL];
}

/* What every kernel below computes for Y's rows [0, mr) and one panel's
 * SSF_CPU_PANEL columns over k in [k0, k1): each element continues its own
 * FMA chain, y = fma(x[c], w[c], y) for c ascending, from 0 at k0 == 0 or
 * from the value left in y. */
static void panel_portable(const float *x, int ldx, const float *wp, int k0, int k1, float *y,
                           int ldy, int mr)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < SSF_CPU_PANEL; j++) {
            float acc = k0 == 0 ? 0.0f : y[(size_t)i * ldy + j];
            for (int c = k0; c < k1; c++)
                acc = fmaf(x[(size_t)i * ldx + c], wp[(size_t)c * SSF_CPU_PANEL + j], acc);
            y[(size_t)i * ldy + j] = acc;
        }
}

#ifdef SSF_CPU_X86
/* One row of X against a panel (the rows past the last whole tile). */
SSF_AVX2 static void panel_row_avx2(const float *x, const float *wp, int k0, int k1, float *y)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0;
    if (k0 > 0) {
        a0 = _mm256_loadu_ps(y), a1 = _mm256_loadu_ps(y + 8), a2 = _mm256_loadu_ps(y + 16);
    }
    for (int c = k0; c < k1; c++) {
        const float *w = wp + (size_t)c * SSF_CPU_PANEL;
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
    if (k0 > 0) {                                                                                  \
        a##I##0 = _mm256_loadu_ps(y + I * (size_t)ldy);                                            \
        a##I##1 = _mm256_loadu_ps(y + I * (size_t)ldy + 8);                                        \
        a##I##2 = _mm256_loadu_ps(y + I * (size_t)ldy + 16);                                       \
    }
#define ROW_FMA(I)                                                                                 \
    b = _mm256_broadcast_ss(x + I * (size_t)ldx + c);                                              \
    a##I##0 = _mm256_fmadd_ps(b, w0, a##I##0);                                                     \
    a##I##1 = _mm256_fmadd_ps(b, w1, a##I##1);                                                     \
    a##I##2 = _mm256_fmadd_ps(b, w2, a##I##2);
#define ROW_STORE(I)                                                                               \
    _mm256_storeu_ps(y + I * (size_t)ldy, a##I##0);                                                \
    _mm256_storeu_ps(y + I * (size_t)ldy + 8, a##I##1);                                            \
    _mm256_storeu_ps(y + I * (size_t)ldy + 16, a##I##2);

/* Four rows of X against a panel: 12 accumulators in registers, each k
 * step three panel loads and four broadcasts for 12 FMAs (an outer
 * product), where a dot-product tile pays a horizontal sum per element. */
SSF_AVX2 static void panel_tile_avx2(const float *x, int ldx, const float *wp, int k0, int k1,
                                     float *y, int ldy)
{
    ROW_LOAD(0) ROW_LOAD(1) ROW_LOAD(2) ROW_LOAD(3);
    for (int c = k0; c < k1; c++) {
        const float *w = wp + (size_t)c * SSF_CPU_PANEL;
        __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8), w2 = _mm256_loadu_ps(w + 16),
               b;
        ROW_FMA(0) ROW_FMA(1) ROW_FMA(2) ROW_FMA(3)
    }
    ROW_STORE(0) ROW_STORE(1) ROW_STORE(2) ROW_STORE(3)
}

SSF_AVX2 static void panel_avx2(const float *x, int ldx, const float *wp, int k0, int k1, float *y,
                                int ldy, int mr)
{
    int i = 0;
    for (; i + GEMM_MR <= mr; i += GEMM_MR)
        panel_tile_avx2(x + (size_t)i * ldx, ldx, wp, k0, k1, y + (size_t)i * ldy, ldy);
    for (; i < mr; i++)
        panel_row_avx2(x + (size_t)i * ldx, wp, k0, k1, y + (size_t)i * ldy);
}
#endif

static void panel(ssf_cpu_isa isa, const float *x, int ldx, const float *wp, int k0, int k1,
                  float *y, int ldy, int mr)
{
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2) {
        panel_avx2(x, ldx, wp, k0, k1, y, ldy, mr);
        return;
    }
#endif
    panel_portable(x, ldx, wp, k0, k1, y, ldy, mr);
}

/* One panel's columns [n, n + SSF_CPU_PANEL) for all m rows into y (row
 * stride ldy, room for the whole panel), k in blocks of GEMM_KC. */
static void panel_all_k(ssf_cpu_isa isa, const float *x, int m, int k, const float *wp, float *y,
                        int ldy)
{
    for (int k0 = 0; k0 < k; k0 += GEMM_KC) {
        int k1 = k - k0 < GEMM_KC ? k : k0 + GEMM_KC;
        panel(isa, x, k, wp, k0, k1, y, ldy, m);
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

void ssf_cpu_gemm_range(ssf_cpu_isa isa, const float *x, int m, int k, const float *wp, int n,
                        const float *bias, float *y, int ldy, int n0, int n1)
{
    if (n1 > n) n1 = n;
    float *edge = NULL; /* a panel that Y cannot hold whole */
    for (int c = n0; c < n1; c += SSF_CPU_PANEL) {
        const float *w = wp + (size_t)(c / SSF_CPU_PANEL) * k * SSF_CPU_PANEL;
        int cols = n1 - c < SSF_CPU_PANEL ? n1 - c : SSF_CPU_PANEL;
        if (cols == SSF_CPU_PANEL) {
            panel_all_k(isa, x, m, k, w, y + c, ldy);
            if (bias) add_bias(y + c, m, bias + c, ldy);
            continue;
        }
        if (!edge) edge = ssf_xmalloc((size_t)(m > 0 ? m : 1) * SSF_CPU_PANEL * sizeof(float));
        panel_all_k(isa, x, m, k, w, edge, SSF_CPU_PANEL);
        put_columns(edge, m, cols, bias ? bias + c : NULL, y + c, ldy);
    }
    free(edge);
}

/* ---- dispatch -------------------------------------------------------------------- */

float ssf_cpu_dot(ssf_cpu_isa isa, const float *a, const float *b, int k)
{
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2) return dot_avx2(a, b, k);
#endif
    return dot_portable(a, b, k);
}

/* y += a * x over n floats: the attention's weighted sum of V rows. */
static void axpy_portable(float a, const float *restrict x, float *restrict y, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

#ifdef SSF_CPU_X86
SSF_AVX2 static void axpy_avx2(float a, const float *restrict x, float *restrict y, int n)
{
    __m256 av = _mm256_set1_ps(a);
    int n8 = n & ~7;
    for (int i = 0; i < n8; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (int i = n8; i < n; i++)
        y[i] = fmaf(a, x[i], y[i]);
}
#endif

static void axpy(ssf_cpu_isa isa, float a, const float *x, float *y, int n)
{
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2) {
        axpy_avx2(a, x, y, n);
        return;
    }
#endif
    axpy_portable(a, x, y, n);
}

/* ---- element-wise ops --------------------------------------------------------------- */

void ssf_cpu_rmsnorm(const float *x, const float *w, int n, float eps, float *y)
{
    /* the sum of squares in double: its order then hardly matters */
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
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

void ssf_cpu_rope(float *v, int head_dim, const float *inv_freq, int32_t pos)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float f = (float)pos * inv_freq[i];
        float c = cosf(f), s = sinf(f);
        float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
    }
}

void ssf_cpu_swiglu(const float *gate, const float *up, int n, float *out)
{
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* Softmax of one head's scores, in place, as probabilities. */
static void softmax_in_place(float *scores, int n_ctx)
{
    float max = -INFINITY;
    for (int j = 0; j < n_ctx; j++)
        if (scores[j] > max) max = scores[j];
    float sum = 0;
    for (int j = 0; j < n_ctx; j++) {
        scores[j] = expf(scores[j] - max);
        sum += scores[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n_ctx; j++)
        scores[j] *= inv;
}

/* Scores of the group's heads against the K rows of positions 0..n_ctx),
 * block by block (a block's rows are contiguous). */
static void group_scores(ssf_cpu_isa isa, const float *q, int n_group, const ssf_cpu_kv_pages *kv,
                         int n_ctx, int head_dim, float scale, float *scores)
{
    for (int j0 = 0, blk = 0; j0 < n_ctx; j0 += kv->block_size, blk++) {
        const float *kb = kv->k + (size_t)kv->table[blk] * kv->block_stride;
        int n = n_ctx - j0 < kv->block_size ? n_ctx - j0 : kv->block_size;
        for (int i = 0; i < n; i++) {
            const float *kj = kb + (size_t)i * (size_t)kv->row_stride;
#ifdef SSF_CPU_X86
            if (isa == SSF_CPU_AVX2) {
                dots_avx2(q, n_group, head_dim, kj, scores + j0 + i, n_ctx);
                continue;
            }
#endif
            for (int g = 0; g < n_group; g++)
                scores[(size_t)g * n_ctx + j0 + i] =
                    ssf_cpu_dot(isa, q + (size_t)g * head_dim, kj, head_dim);
        }
    }
    /* scaled after the dot, as one float multiply, on every path */
    for (size_t i = 0; i < (size_t)n_group * (size_t)n_ctx; i++)
        scores[i] *= scale;
}

/* out[g] = sum over positions in order of p[g][j] V[j], block by block. */
static void group_values(ssf_cpu_isa isa, const float *p, int n_group, const ssf_cpu_kv_pages *kv,
                         int n_ctx, int head_dim, float *out)
{
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2) {
        for (int g = 0; g < n_group; g++)
            weighted_rows_avx2(p + (size_t)g * n_ctx, kv, n_ctx, head_dim,
                               out + (size_t)g * head_dim);
        return;
    }
#endif
    memset(out, 0, sizeof(float) * (size_t)head_dim * (size_t)n_group);
    for (int j0 = 0, blk = 0; j0 < n_ctx; j0 += kv->block_size, blk++) {
        const float *vb = kv->v + (size_t)kv->table[blk] * kv->block_stride;
        int n = n_ctx - j0 < kv->block_size ? n_ctx - j0 : kv->block_size;
        for (int i = 0; i < n; i++) {
            const float *vj = vb + (size_t)i * (size_t)kv->row_stride;
            for (int g = 0; g < n_group; g++)
                axpy(isa, p[(size_t)g * n_ctx + j0 + i], vj, out + (size_t)g * head_dim, head_dim);
        }
    }
}

void ssf_cpu_attention_group(ssf_cpu_isa isa, const float *q, int n_group,
                             const ssf_cpu_kv_pages *kv, int n_ctx, int head_dim, float scale,
                             float *scores, float *out)
{
    /* Each K and V row is loaded once for all the query heads that share
     * it; every head's arithmetic is the same as alone, and the same for any
     * block size: one dot, then one axpy, per position in order. */
    group_scores(isa, q, n_group, kv, n_ctx, head_dim, scale, scores);
    for (int g = 0; g < n_group; g++)
        softmax_in_place(scores + (size_t)g * n_ctx, n_ctx);
    group_values(isa, scores, n_group, kv, n_ctx, head_dim, out);
}

void ssf_cpu_attention(ssf_cpu_isa isa, const float *q, const float *k, const float *v, int stride,
                       int n_ctx, int head_dim, float scale, float *scores, float *out)
{
    static const int32_t one_block = 0;
    ssf_cpu_kv_pages kv = {k, v, &one_block, n_ctx > 0 ? n_ctx : 1, 0, stride};
    ssf_cpu_attention_group(isa, q, 1, &kv, n_ctx, head_dim, scale, scores, out);
}

/* ---- thread pool --------------------------------------------------------------------- */

struct ssf_cpu_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    unsigned long generation;
    int stop, busy; /* busy: workers not yet finished with this generation */
    ssf_cpu_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next;
};

typedef struct {
    ssf_cpu_pool *p;
    int worker;
} worker_arg;

static void run_tasks(ssf_cpu_pool *p, int worker)
{
    int t;
    while ((t = atomic_fetch_add(&p->next, 1)) < p->n_tasks)
        p->fn(p->ctx, t, worker);
}

static void *worker_main(void *arg)
{
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    ssf_cpu_pool *p = a.p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->stop)
            pthread_cond_wait(&p->start, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, a.worker);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

ssf_cpu_pool *ssf_cpu_pool_new(int n_threads)
{
    ssf_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    p->threads = calloc((size_t)p->n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 1; i < p->n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) *a = (worker_arg){p, i};
        if (!a || pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
            free(a);
            p->n_threads = i; /* join the ones started */
            ssf_cpu_pool_free(p);
            return NULL;
        }
    }
    return p;
}

int ssf_cpu_pool_threads(const ssf_cpu_pool *p)
{
    return p->n_threads;
}

void ssf_cpu_pool_run(ssf_cpu_pool *p, int n_tasks, ssf_cpu_task_fn fn, void *ctx)
{
    if (p->n_threads == 1 || n_tasks <= 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void ssf_cpu_pool_free(ssf_cpu_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}
