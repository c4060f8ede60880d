/*
 * cpu_attention.c - one GQA group's attention over the paged fp32 KV cache
 * of the CPU device (cpu_ops.h).
 *
 * Two passes over the positions in order: the group's scores against every
 * K row, a max-subtracted softmax per head, then the weighted sum of the V
 * rows.  In a decode step the K and V rows are the largest stream after the
 * weights, and a sequence's blocks lie anywhere in the pool, so the
 * hardware prefetcher loses the stream at every block edge: both passes
 * prefetch the rows PREFETCH_AHEAD positions ahead of the one they work on.
 *
 * Every number is computed by the same operations whatever the block size,
 * the block order, the tile a position falls in or the group around a head,
 * so a head's output has the same bits in every layout and every batch.
 */
#include "cpu_ops.h"
#include "cpu_simd.h"

#include <math.h>
#include <string.h>

/* The scores' tile: one query head against SCORE_TILE positions, one
 * accumulator each, so the K rows' loads are shared by eight dots and the
 * eight horizontal sums by one reduction. */
#define SCORE_TILE 8
/* The values' tile: VALUE_HEADS heads over VALUE_VECS vectors of the row
 * (8 accumulators), so each V load feeds two heads. */
#define VALUE_HEADS 2
#define VALUE_VECS 4
/* Positions ahead of the current one whose rows are prefetched: far enough
 * for a miss to memory to come back in time. */
#define PREFETCH_AHEAD 16

/* ---- walking the pages ------------------------------------------------------------ */

/* Position blk * block_size + i of a sequence. */
typedef struct kv_cursor {
    int blk, i;
} kv_cursor;

static kv_cursor cursor_at(const ssf_cpu_kv_pages *kv, int j)
{
    return (kv_cursor){j / kv->block_size, j % kv->block_size};
}

static void cursor_step(kv_cursor *c, const ssf_cpu_kv_pages *kv)
{
    if (++c->i == kv->block_size) c->i = 0, c->blk++;
}

/* The row of the cursor's position in base (kv->k or kv->v). */
static const float *cursor_row(const float *base, const ssf_cpu_kv_pages *kv, kv_cursor c)
{
    return base + (size_t)kv->table[c.blk] * kv->block_stride +
           (size_t)c.i * (size_t)kv->row_stride;
}

/* Asks for the cache lines of row[0..n) (a hint: nothing is read). */
static void prefetch_row(const float *row, int n)
{
#if defined(__GNUC__) || defined(__clang__)
    for (int c = 0; c < n; c += 16)
        __builtin_prefetch(row + c);
    __builtin_prefetch(row + n - 1);
#else
    (void)row, (void)n;
#endif
}

/* Prefetches the rows of the next n positions of `ahead` that are before
 * n_ctx, where `ahead` is at position j. */
static void prefetch_rows(const float *base, const ssf_cpu_kv_pages *kv, kv_cursor *ahead, int j,
                          int n, int n_ctx, int head_dim)
{
    for (int t = 0; t < n && j + t < n_ctx; t++) {
        prefetch_row(cursor_row(base, kv, *ahead), head_dim);
        cursor_step(ahead, kv);
    }
}

/* ---- portable kernels --------------------------------------------------------------- */

/* Eight partial sums, reduced as the AVX2 tile reduces its lanes. */
static float dot_portable(const float *a, const float *b, int k)
{
    float s[8] = {0};
    int k8 = k & ~7;
    for (int i = 0; i < k8; i += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[i + l] * b[i + l];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (int i = k8; i < k; i++)
        r += a[i] * b[i];
    return r;
}

static void scores_portable(const float *q, int n_group, const ssf_cpu_kv_pages *kv, int n_ctx,
                            int head_dim, float scale, float *scores)
{
    kv_cursor at = {0, 0};
    for (int j = 0; j < n_ctx; j++, cursor_step(&at, kv)) {
        const float *kj = cursor_row(kv->k, kv, at);
        for (int g = 0; g < n_group; g++)
            scores[(size_t)g * n_ctx + j] =
                dot_portable(q + (size_t)g * head_dim, kj, head_dim) * scale;
    }
}

static void values_portable(const float *p, int n_group, const ssf_cpu_kv_pages *kv, int n_ctx,
                            int head_dim, float *out)
{
    memset(out, 0, sizeof(float) * (size_t)head_dim * (size_t)n_group);
    kv_cursor at = {0, 0};
    for (int j = 0; j < n_ctx; j++, cursor_step(&at, kv)) {
        const float *vj = cursor_row(kv->v, kv, at);
        for (int g = 0; g < n_group; g++) {
            float a = p[(size_t)g * n_ctx + j], *o = out + (size_t)g * head_dim;
            for (int d = 0; d < head_dim; d++)
                o[d] += a * vj[d];
        }
    }
}

/* ---- AVX2 kernels ------------------------------------------------------------------- */

#ifdef SSF_CPU_X86
/* Lane t: the sum of a[t]'s lanes, as ((0+1)+(2+3))+((4+5)+(6+7)). */
SSF_AVX2_INLINE __m256 sum_lanes8(const __m256 *a)
{
    __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    /* lanes 0-3: a[0..3]'s (0+1)+(2+3); lanes 4-7: their (4+5)+(6+7) */
    __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    return _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                         _mm256_permute2f128_ps(s0123, s4567, 0x31));
}

/* The last k % 8 products, fused like the vector ones. */
SSF_AVX2_INLINE float tail_fma(const float *a, const float *b, int k8, int k, float s)
{
    __m128 acc = _mm_set_ss(s);
    for (int i = k8; i < k; i++)
        acc = _mm_fmadd_ss(_mm_set_ss(a[i]), _mm_set_ss(b[i]), acc);
    return _mm_cvtss_f32(acc);
}

/* out[t] = (q . rows[t]) * scale for t < n (n <= SCORE_TILE; the other
 * entries of rows repeat a valid row and their dots are dropped): 8 partial
 * sums over k, reduced by sum_lanes8, then the tail. */
SSF_AVX2 static void score_tile_avx2(const float *q, const float *const *rows, int n, int k,
                                     float scale, float *out)
{
    __m256 acc[SCORE_TILE];
    UNROLL8 for (int t = 0; t < SCORE_TILE; t++) acc[t] = _mm256_setzero_ps();
    int k8 = k & ~7;
    for (int c = 0; c < k8; c += 8) {
        __m256 qv = _mm256_loadu_ps(q + c);
        UNROLL8 for (int t = 0; t < SCORE_TILE; t++) acc[t] =
            _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[t] + c), acc[t]);
    }
    float s[SCORE_TILE];
    _mm256_storeu_ps(s, sum_lanes8(acc));
    for (int t = 0; t < n; t++)
        out[t] = tail_fma(q, rows[t], k8, k, s[t]) * scale;
}

SSF_AVX2 static void scores_avx2(const float *q, int n_group, const ssf_cpu_kv_pages *kv, int n_ctx,
                                 int head_dim, float scale, float *scores)
{
    kv_cursor at = {0, 0}, ahead = cursor_at(kv, PREFETCH_AHEAD);
    for (int j0 = 0; j0 < n_ctx; j0 += SCORE_TILE) {
        int n = n_ctx - j0 < SCORE_TILE ? n_ctx - j0 : SCORE_TILE;
        const float *rows[SCORE_TILE];
        for (int t = 0; t < n; t++, cursor_step(&at, kv))
            rows[t] = cursor_row(kv->k, kv, at);
        for (int t = n; t < SCORE_TILE; t++)
            rows[t] = rows[0];
        prefetch_rows(kv->k, kv, &ahead, j0 + PREFETCH_AHEAD, n, n_ctx, head_dim);
        for (int g = 0; g < n_group; g++)
            score_tile_avx2(q + (size_t)g * head_dim, rows, n, head_dim, scale,
                            scores + (size_t)g * n_ctx + j0);
    }
}

/* out[h][c * 8 ..] for h < nh (<= VALUE_HEADS) and c < nv (<= VALUE_VECS)
 * over the V rows' floats from d: each element one FMA chain over the
 * positions in order from 0.  p and out are the first head's (strides n_ctx
 * and head_dim).  The first tile of a call prefetches the rows ahead. */
SSF_AVX2_INLINE void values_tile_avx2(const float *p, const ssf_cpu_kv_pages *kv, int n_ctx,
                                      int head_dim, int d, int nh, int nv, int prefetch, float *out)
{
    __m256 acc[VALUE_HEADS][VALUE_VECS];
    UNROLL for (int h = 0; h < nh; h++) UNROLL for (int c = 0; c < nv; c++) acc[h][c] =
        _mm256_setzero_ps();
    kv_cursor at = {0, 0}, ahead = cursor_at(kv, PREFETCH_AHEAD);
    for (int j = 0; j < n_ctx; j++, cursor_step(&at, kv)) {
        const float *row = cursor_row(kv->v, kv, at) + d;
        if (prefetch) prefetch_rows(kv->v, kv, &ahead, j + PREFETCH_AHEAD, 1, n_ctx, head_dim);
        UNROLL for (int h = 0; h < nh; h++)
        {
            __m256 pv = _mm256_set1_ps(p[(size_t)h * n_ctx + j]);
            UNROLL for (int c = 0; c < nv; c++) acc[h][c] =
                _mm256_fmadd_ps(pv, _mm256_loadu_ps(row + 8 * (size_t)c), acc[h][c]);
        }
    }
    UNROLL for (int h = 0; h < nh; h++) UNROLL for (int c = 0; c < nv; c++)
        _mm256_storeu_ps(out + (size_t)h * head_dim + d + 8 * (size_t)c, acc[h][c]);
}

/* The columns past the last whole vector, one FMA chain each as above. */
static void values_tail(const float *p, const ssf_cpu_kv_pages *kv, int n_ctx, int head_dim, int d,
                        float *out)
{
    for (; d < head_dim; d++) {
        float acc = 0.0f;
        kv_cursor at = {0, 0};
        for (int j = 0; j < n_ctx; j++, cursor_step(&at, kv))
            acc = fmaf(p[j], cursor_row(kv->v, kv, at)[d], acc);
        out[d] = acc;
    }
}

/* One or two heads' outputs: 32 columns a pass, then 8, then single ones. */
SSF_AVX2 static void values_heads_avx2(const float *p, int nh, const ssf_cpu_kv_pages *kv,
                                       int n_ctx, int head_dim, int prefetch, float *out)
{
    int d = 0;
    for (; d + 8 * VALUE_VECS <= head_dim; d += 8 * VALUE_VECS, prefetch = 0) {
        if (nh == VALUE_HEADS)
            values_tile_avx2(p, kv, n_ctx, head_dim, d, VALUE_HEADS, VALUE_VECS, prefetch, out);
        else
            values_tile_avx2(p, kv, n_ctx, head_dim, d, 1, VALUE_VECS, prefetch, out);
    }
    for (; d + 8 <= head_dim; d += 8, prefetch = 0) {
        if (nh == VALUE_HEADS)
            values_tile_avx2(p, kv, n_ctx, head_dim, d, VALUE_HEADS, 1, prefetch, out);
        else
            values_tile_avx2(p, kv, n_ctx, head_dim, d, 1, 1, prefetch, out);
    }
    for (int h = 0; h < nh; h++)
        values_tail(p + (size_t)h * n_ctx, kv, n_ctx, head_dim, d, out + (size_t)h * head_dim);
}

SSF_AVX2 static void values_avx2(const float *p, int n_group, const ssf_cpu_kv_pages *kv, int n_ctx,
                                 int head_dim, float *out)
{
    for (int g = 0; g < n_group; g += VALUE_HEADS) {
        int nh = n_group - g < VALUE_HEADS ? n_group - g : VALUE_HEADS;
        values_heads_avx2(p + (size_t)g * n_ctx, nh, kv, n_ctx, head_dim, g == 0,
                          out + (size_t)g * head_dim);
    }
}
#endif

/* ---- the group's attention ---------------------------------------------------------- */

/* Softmax of one head's scores, in place, as probabilities. */
static void softmax_in_place(ssf_cpu_isa isa, float *scores, int n_ctx)
{
    float max = -INFINITY;
    for (int j = 0; j < n_ctx; j++)
        if (scores[j] > max) max = scores[j];
    for (int j = 0; j < n_ctx; j++)
        scores[j] -= max;
    ssf_cpu_exp(isa, scores, n_ctx);
    /* Summed in double: at position 30,000 a float sum left the logits
     * 1e-5 (relative) from exact arithmetic, a double one 6e-6. */
    double sum = 0;
    for (int j = 0; j < n_ctx; j++)
        sum += scores[j];
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n_ctx; j++)
        scores[j] *= inv;
}

void ssf_cpu_attention_group(ssf_cpu_isa isa, const float *q, int n_group,
                             const ssf_cpu_kv_pages *kv, int n_ctx, int head_dim, float scale,
                             float *scores, float *out)
{
#ifdef SSF_CPU_X86
    if (isa == SSF_CPU_AVX2) {
        scores_avx2(q, n_group, kv, n_ctx, head_dim, scale, scores);
        for (int g = 0; g < n_group; g++)
            softmax_in_place(isa, scores + (size_t)g * n_ctx, n_ctx);
        values_avx2(scores, n_group, kv, n_ctx, head_dim, out);
        return;
    }
#endif
    scores_portable(q, n_group, kv, n_ctx, head_dim, scale, scores);
    for (int g = 0; g < n_group; g++)
        softmax_in_place(isa, scores + (size_t)g * n_ctx, n_ctx);
    values_portable(scores, n_group, kv, n_ctx, head_dim, out);
}

void ssf_cpu_attention(ssf_cpu_isa isa, const float *q, const float *k, const float *v, int stride,
                       int n_ctx, int head_dim, float scale, float *scores, float *out)
{
    static const int32_t one_block = 0;
    ssf_cpu_kv_pages kv = {k, v, &one_block, n_ctx > 0 ? n_ctx : 1, 0, stride};
    ssf_cpu_attention_group(isa, q, 1, &kv, n_ctx, head_dim, scale, scores, out);
}
