/*
 * cuda_kernels.cu - the CUDA device's kernels (see cuda_kernels.cuh).
 *
 * Straightforward kernels in the style of llm.c's: one block per row (or per
 * row and head), fp32 math, block reductions through warp shuffles.  Offsets
 * into the KV pool are size_t: the pool of a 32B model on an H200 holds
 * about 2^35 values.
 */
#include "cuda_kernels.cuh"

#include <math.h>

#define WARP 32

__device__ static inline float warp_sum(float v)
{
    for (int o = WARP / 2; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over the block; every thread gets the result.  `buf` holds one float
 * per warp; blockDim.x is a multiple of 32. */
__device__ static float block_sum(float v, float *buf)
{
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, nwarps = blockDim.x / WARP;
    v = warp_sum(v);
    __syncthreads(); /* buf may still be read from a previous call */
    if (lane == 0) buf[warp] = v;
    __syncthreads();
    float s = lane < nwarps ? buf[lane] : 0.0f;
    return warp_sum(s);
}

/* Rounds to BF16 and back, where Hugging Face's bf16 model stores a tensor. */
__device__ static inline float round_bf16(float v)
{
    return __bfloat162float(__float2bfloat16(v));
}

ssfk_kv_layout ssfk_kv_layout_make(int n_layers, int n_kv_heads, int block_size, int head_dim)
{
    ssfk_kv_layout kv;
    kv.block_size = block_size;
    kv.head_dim = head_dim;
    kv.head_stride = (size_t)block_size * head_dim;
    kv.v_offset = (size_t)n_kv_heads * kv.head_stride;
    kv.layer_stride = 2 * kv.v_offset;
    kv.block_stride = (size_t)n_layers * kv.layer_stride;
    return kv;
}

/* Offset of position p's K row (head 0) of `layer` in row r's table; the V
 * row is v_offset further, head h head_stride * h further. */
__device__ static inline size_t kv_pos(ssfk_kv_layout kv, const int32_t *table, int layer, int p)
{
    size_t blk = (size_t)table[p / kv.block_size];
    return blk * kv.block_stride + (size_t)layer * kv.layer_stride +
           (size_t)(p % kv.block_size) * kv.head_dim;
}

__device__ static inline const int32_t *row_table(ssfk_tables tb, int r)
{
    return tb.tab + tb.tab_off[tb.seq[r]];
}

void ssfk_inv_freq(float *inv_freq, int head_dim, double theta)
{
    for (int i = 0; i < head_dim / 2; i++)
        inv_freq[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
}

/* ---- embedding, norms, gathers -------------------------------------------- */

__global__ static void rmsnorm_kernel(bf16 *x, const bf16 *add, const bf16 *w, bf16 *out, int C,
                                      float eps)
{
    __shared__ float buf[WARP];
    bf16 *xr = x + (size_t)blockIdx.x * C;
    const bf16 *ar = add ? add + (size_t)blockIdx.x * C : NULL;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float v = __bfloat162float(xr[i]);
        if (ar) {
            /* the residual stream stays BF16, as in HF */
            v = round_bf16(v + __bfloat162float(ar[i]));
            xr[i] = __float2bfloat16(v);
        }
        ss += v * v;
    }
    float rstd = rsqrtf(block_sum(ss, buf) / (float)C + eps);
    bf16 *o = out + (size_t)blockIdx.x * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        /* HF order: normalise in fp32, cast to bf16, then scale by the weight */
        float n = round_bf16(__bfloat162float(xr[i]) * rstd);
        o[i] = __float2bfloat16(n * __bfloat162float(w[i]));
    }
}

cudaError_t ssfk_rmsnorm(bf16 *x, const bf16 *add, const bf16 *w, bf16 *out, int rows, int C,
                         float eps, cudaStream_t st)
{
    rmsnorm_kernel<<<rows, 256, 0, st>>>(x, add, w, out, C, eps);
    return cudaGetLastError();
}

__global__ static void gather_rows_kernel(bf16 *out, const bf16 *in, const int32_t *rows, int C)
{
    const bf16 *src = in + (size_t)rows[blockIdx.x] * C;
    bf16 *dst = out + (size_t)blockIdx.x * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        dst[i] = src[i];
}

cudaError_t ssfk_gather_rows(bf16 *out, const bf16 *in, const int32_t *rows, int n, int C,
                             cudaStream_t st)
{
    gather_rows_kernel<<<n, 256, 0, st>>>(out, in, rows, C);
    return cudaGetLastError();
}

/* The embedding lookup is a gather of the tokens' rows. */
cudaError_t ssfk_embed(bf16 *out, const bf16 *embed, const int32_t *token, int rows, int C,
                       cudaStream_t st)
{
    return ssfk_gather_rows(out, embed, token, rows, C, st);
}

/* ---- bias + RoPE + KV write ----------------------------------------------- */

__global__ static void qkv_rope_store_kernel(bf16 *qkv, const float *bias, const int32_t *pos,
                                             ssfk_tables tb, const float *inv_freq, bf16 *pool,
                                             ssfk_kv_layout kv, int layer, int n_heads, int n_kv)
{
    int r = blockIdx.x, hd = kv.head_dim, half = hd / 2, p = pos[r];
    int width = (n_heads + 2 * n_kv) * hd;
    bf16 *row = qkv + (size_t)r * width;
    bf16 *kdst = pool + kv_pos(kv, row_table(tb, r), layer, p), *vdst = kdst + kv.v_offset;
    /* q and k: pairs (d, d + hd/2) of each head, rotate-half layout */
    for (int i = threadIdx.x; i < (n_heads + n_kv) * half; i += blockDim.x) {
        int h = i / half, d = i % half, j1 = h * hd + d, j2 = j1 + half;
        float x1 = __bfloat162float(row[j1]), x2 = __bfloat162float(row[j2]);
        if (bias) {
            /* HF's linear rounds (x W^T + b) to bf16 before RoPE */
            x1 = round_bf16(x1 + bias[j1]);
            x2 = round_bf16(x2 + bias[j2]);
        }
        /* angle in fp32 like transformers (position * inv_freq), then the
         * accurate sincosf: arguments reach 32768 rad */
        float s, c;
        sincosf((float)p * inv_freq[d], &s, &c);
        bf16 o1 = __float2bfloat16(x1 * c - x2 * s), o2 = __float2bfloat16(x2 * c + x1 * s);
        if (h < n_heads) {
            row[j1] = o1;
            row[j2] = o2;
        } else {
            bf16 *k = kdst + (size_t)(h - n_heads) * kv.head_stride + d;
            k[0] = o1;
            k[half] = o2;
        }
    }
    int voff = (n_heads + n_kv) * hd;
    for (int i = threadIdx.x; i < n_kv * hd; i += blockDim.x) {
        float v = __bfloat162float(row[voff + i]);
        if (bias) v = v + bias[voff + i];
        vdst[(size_t)(i / hd) * kv.head_stride + i % hd] = __float2bfloat16(v);
    }
}

cudaError_t ssfk_qkv_rope_store(bf16 *qkv, const float *bias, const int32_t *pos, ssfk_tables tb,
                                const float *inv_freq, bf16 *pool, ssfk_kv_layout kv, int layer,
                                int rows, int n_heads, int n_kv_heads, cudaStream_t st)
{
    qkv_rope_store_kernel<<<rows, 256, 0, st>>>(qkv, bias, pos, tb, inv_freq, pool, kv, layer,
                                                n_heads, n_kv_heads);
    return cudaGetLastError();
}

/* ---- paged attention ------------------------------------------------------ */

__device__ static inline float warp_max(float v)
{
    for (int o = WARP / 2; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* E consecutive BF16 values (E even, 4-byte aligned) widened to fp32. */
template <int E> __device__ static inline void load_row(const bf16 *p, float *out)
{
#pragma unroll
    for (int e = 0; e < E; e += 2) {
        __nv_bfloat162 v = *(const __nv_bfloat162 *)(p + e);
        out[e] = __low2float(v);
        out[e + 1] = __high2float(v);
    }
}

/* The shared memory of one attention CTA (sizes in cuda_plan.c). */
template <int HD, int GP> struct attn_smem {
    long long *off;       /* [TILE] K-row offsets of the tile's positions */
    float *q;             /* [GP][HD] */
    float *p;             /* [GP][TILE] scores, then softmax weights */
    float *m, *l, *alpha; /* [GP] running max, running sum, this tile's rescale */
};

template <int HD, int GP> __device__ static attn_smem<HD, GP> attn_smem_at(long long *base)
{
    attn_smem<HD, GP> sm;
    sm.off = base;
    sm.q = (float *)(base + SSF_ATTN_TILE);
    sm.p = sm.q + GP * HD;
    sm.m = sm.p + GP * SSF_ATTN_TILE;
    sm.l = sm.m + GP;
    sm.alpha = sm.l + GP;
    return sm;
}

/* Scores of the tile: warp w takes positions w, w + NW, ...; its lanes
 * split the K row (HD/32 values each, one coalesced row load) and the dot
 * product of every query head of the group is reduced by shuffles.  Each K
 * row is read once for the whole group: the GQA packing. */
template <int HD, int GP>
__device__ static void score_row(attn_smem<HD, GP> sm, const float *kf,
                                 const float (*qr)[HD / WARP], int j, int ng, float scale)
{
    constexpr int E = HD / WARP;
#pragma unroll
    for (int g = 0; g < GP; g++) {
        if (g >= ng) break; /* padding heads: nothing to score */
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++)
            s += qr[g][e] * kf[e];
        s = warp_sum(s);
        if (threadIdx.x % WARP == 0) sm.p[g * SSF_ATTN_TILE + j] = s * scale;
    }
}

/* K rows a warp loads before scoring any: independent loads in flight
 * together instead of one memory latency a position. */
#define K_UNROLL 4
/* V rows likewise in the weighted sum */
#define V_UNROLL 8

template <int HD, int GP>
__device__ static void score_tile(attn_smem<HD, GP> sm, const bf16 *kbase,
                                  const float (*qr)[HD / WARP], int cnt, int ng, float scale)
{
    constexpr int E = HD / WARP, NW = HD / WARP;
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, j = warp;
    for (; j + (K_UNROLL - 1) * NW < cnt; j += K_UNROLL * NW) {
        float kf[K_UNROLL][E];
#pragma unroll
        for (int u = 0; u < K_UNROLL; u++)
            load_row<E>(kbase + sm.off[j + u * NW] + lane * E, kf[u]);
#pragma unroll
        for (int u = 0; u < K_UNROLL; u++)
            score_row<HD, GP>(sm, kf[u], qr, j + u * NW, ng, scale);
    }
    for (; j < cnt; j += NW) {
        float kf[E];
        load_row<E>(kbase + sm.off[j] + lane * E, kf);
        score_row<HD, GP>(sm, kf, qr, j, ng, scale);
    }
}

/* acc[g] += sum_j p[g][j] v_j[t] over the tile's positions. */
template <int HD, int GP>
__device__ static void accumulate_tile(attn_smem<HD, GP> sm, const bf16 *vbase, float *acc, int cnt)
{
    int t = threadIdx.x, j = 0;
    for (; j + V_UNROLL <= cnt; j += V_UNROLL) {
        float v[V_UNROLL];
#pragma unroll
        for (int u = 0; u < V_UNROLL; u++)
            v[u] = __bfloat162float(vbase[sm.off[j + u] + t]);
#pragma unroll
        for (int u = 0; u < V_UNROLL; u++)
#pragma unroll
            for (int g = 0; g < GP; g++)
                acc[g] += sm.p[g * SSF_ATTN_TILE + j + u] * v[u];
    }
    for (; j < cnt; j++) {
        float v = __bfloat162float(vbase[sm.off[j] + t]);
#pragma unroll
        for (int g = 0; g < GP; g++)
            acc[g] += sm.p[g * SSF_ATTN_TILE + j] * v;
    }
}

/* Online softmax over the tile, one warp per query head: scores become
 * weights exp(s - m_new), and alpha = exp(m_old - m_new) rescales what was
 * accumulated before (0 on the first tile, m_old being -inf). */
template <int HD, int GP> __device__ static void softmax_tile(attn_smem<HD, GP> sm, int cnt, int ng)
{
    constexpr int NW = HD / WARP;
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    for (int g = warp; g < ng; g += NW) {
        float *p = sm.p + g * SSF_ATTN_TILE;
        float mt = -INFINITY;
        for (int j = lane; j < cnt; j += WARP)
            mt = fmaxf(mt, p[j]);
        float m_old = sm.m[g], m_new = fmaxf(m_old, warp_max(mt)), lt = 0.0f;
        for (int j = lane; j < cnt; j += WARP) {
            float e = expf(p[j] - m_new);
            p[j] = e;
            lt += e;
        }
        lt = warp_sum(lt);
        __syncwarp(); /* every lane has read m_old */
        if (lane == 0) {
            float a = expf(m_old - m_new);
            sm.alpha[g] = a;
            sm.l[g] = sm.l[g] * a + lt;
            sm.m[g] = m_new;
        }
    }
}

/* The CTA's result: the normalised output when unsplit, else its partial
 * (acc, then max and sum) for attn_combine_kernel. */
template <int HD, int GP>
__device__ static void attn_write(attn_smem<HD, GP> sm, const float *acc, bf16 *out, float *part,
                                  int r, int h0, int ng, int n_heads)
{
    int t = threadIdx.x;
    if (gridDim.z == 1) {
        for (int g = 0; g < ng; g++)
            out[((size_t)r * n_heads + h0 + g) * HD + t] = __float2bfloat16(acc[g] / sm.l[g]);
        return;
    }
    size_t n_parts = (size_t)gridDim.x * n_heads * gridDim.z;
    for (int g = 0; g < ng; g++) {
        size_t i = ((size_t)r * n_heads + h0 + g) * gridDim.z + blockIdx.z;
        part[i * HD + t] = acc[g];
        if (t == 0) {
            part[n_parts * HD + 2 * i] = sm.m[g];
            part[n_parts * HD + 2 * i + 1] = sm.l[g];
        }
    }
}

/*
 * One CTA per (row, KV head x head chunk, split), HD threads.  The positions
 * [split * chunk, min(pos[r] + 1, (split + 1) * chunk)) are walked in tiles:
 * the tile's cache offsets are looked up in the block table once, scored
 * (score_tile), turned into weights (softmax_tile), then thread t adds
 * p_g,j * v_j[t] for every head g of the group, V rows read once, coalesced.
 * fp32 throughout; GP is the group padded to a power of two, ng the heads
 * actually computed.
 */
template <int HD, int GP>
__global__ static void paged_attention_kernel(bf16 *out, float *part, const bf16 *qkv,
                                              const bf16 *pool, ssfk_kv_layout kv, int layer,
                                              const int32_t *pos, ssfk_tables tb, int n_heads,
                                              int n_kv, int head_chunks, int chunk, float scale)
{
    extern __shared__ long long smem_raw[];
    attn_smem<HD, GP> sm = attn_smem_at<HD, GP>(smem_raw);
    int r = blockIdx.x, kvh = blockIdx.y / head_chunks, qc = blockIdx.y % head_chunks;
    int group = n_heads / n_kv, h0 = kvh * group + qc * GP, ng = min(GP, group - qc * GP);
    int t = threadIdx.x, lane = t % WARP;
    int lo = blockIdx.z * chunk, hi = min(pos[r] + 1, lo + chunk);
    const bf16 *qrow = qkv + (size_t)r * (n_heads + 2 * n_kv) * HD + (size_t)h0 * HD;
    for (int g = 0; g < GP; g++)
        sm.q[g * HD + t] = g < ng ? __bfloat162float(qrow[(size_t)g * HD + t]) : 0.0f;
    if (t < GP) sm.m[t] = -INFINITY, sm.l[t] = 0.0f, sm.alpha[t] = 1.0f;
    __syncthreads();
    float qr[GP][HD / WARP], acc[GP];
#pragma unroll
    for (int g = 0; g < GP; g++) {
        acc[g] = 0.0f;
        for (int e = 0; e < HD / WARP; e++)
            qr[g][e] = sm.q[g * HD + lane * (HD / WARP) + e];
    }
    const int32_t *table = row_table(tb, r);
    const bf16 *kbase = pool + (size_t)kvh * kv.head_stride, *vbase = kbase + kv.v_offset;
    for (int t0 = lo; t0 < hi; t0 += SSF_ATTN_TILE) {
        int cnt = min(SSF_ATTN_TILE, hi - t0);
        if (t < cnt) sm.off[t] = (long long)kv_pos(kv, table, layer, t0 + t);
        __syncthreads();
        score_tile<HD, GP>(sm, kbase, qr, cnt, ng, scale);
        __syncthreads();
        softmax_tile<HD, GP>(sm, cnt, ng);
        __syncthreads();
#pragma unroll
        for (int g = 0; g < GP; g++)
            acc[g] *= sm.alpha[g];
        accumulate_tile<HD, GP>(sm, vbase, acc, cnt);
        __syncthreads(); /* before the next tile overwrites off and p */
    }
    attn_write<HD, GP>(sm, acc, out, part, r, h0, ng, n_heads);
}

/* Merges the splits of one (row, q-head): out = sum_s w_s acc_s / sum_s w_s
 * l_s with w_s = exp(m_s - max m); empty splits (m = -inf) weigh nothing. */
template <int HD>
__global__ static void attn_combine_kernel(bf16 *out, const float *part, int n_heads, int splits)
{
    int r = blockIdx.x, h = blockIdx.y, t = threadIdx.x;
    size_t n_parts = (size_t)gridDim.x * n_heads * splits, i0 = ((size_t)r * n_heads + h) * splits;
    const float *ml = part + n_parts * HD;
    float M = -INFINITY, L = 0.0f, o = 0.0f;
    for (int s = 0; s < splits; s++)
        M = fmaxf(M, ml[2 * (i0 + s)]);
    for (int s = 0; s < splits; s++) {
        float m = ml[2 * (i0 + s)];
        if (m == -INFINITY) continue;
        float w = expf(m - M);
        L += w * ml[2 * (i0 + s) + 1];
        o += w * part[(i0 + s) * HD + t];
    }
    out[((size_t)r * n_heads + h) * HD + t] = __float2bfloat16(o / L);
}

template <int HD, int GP>
static void launch_attention(const ssf_attn_shape *sh, bf16 *out, float *part, const bf16 *qkv,
                             const bf16 *pool, ssfk_kv_layout kv, int layer, const int32_t *pos,
                             ssfk_tables tb, int n_heads, int n_kv, cudaStream_t st)
{
    dim3 grid(sh->grid[0], sh->grid[1], sh->grid[2]);
    float scale = 1.0f / sqrtf((float)HD);
    paged_attention_kernel<HD, GP><<<grid, HD, sh->smem, st>>>(
        out, part, qkv, pool, kv, layer, pos, tb, n_heads, n_kv, sh->head_chunks, sh->chunk, scale);
}

template <int HD>
static cudaError_t attention_hd(const ssf_attn_shape *sh, bf16 *out, float *part, const bf16 *qkv,
                                const bf16 *pool, ssfk_kv_layout kv, int layer, const int32_t *pos,
                                ssfk_tables tb, int n_heads, int n_kv, cudaStream_t st)
{
    switch (sh->group_pad) {
    case 1:
        launch_attention<HD, 1>(sh, out, part, qkv, pool, kv, layer, pos, tb, n_heads, n_kv, st);
        break;
    case 2:
        launch_attention<HD, 2>(sh, out, part, qkv, pool, kv, layer, pos, tb, n_heads, n_kv, st);
        break;
    case 4:
        launch_attention<HD, 4>(sh, out, part, qkv, pool, kv, layer, pos, tb, n_heads, n_kv, st);
        break;
    case 8:
        launch_attention<HD, 8>(sh, out, part, qkv, pool, kv, layer, pos, tb, n_heads, n_kv, st);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess || sh->splits == 1) return e;
    attn_combine_kernel<HD>
        <<<dim3(sh->grid[0], n_heads), HD, 0, st>>>(out, part, n_heads, sh->splits);
    return cudaGetLastError();
}

cudaError_t ssfk_attention(const ssf_attn_shape *shape, bf16 *out, float *part, const bf16 *qkv,
                           const bf16 *pool, ssfk_kv_layout kv, int layer, const int32_t *pos,
                           ssfk_tables tb, int n_heads, int n_kv_heads, cudaStream_t st)
{
    /* a shape planned for another head layout would leave heads unwritten */
    if (shape->threads != kv.head_dim || shape->grid[1] != n_kv_heads * shape->head_chunks ||
        (shape->splits > 1 && !part))
        return cudaErrorInvalidValue;
    if (kv.head_dim == 64)
        return attention_hd<64>(shape, out, part, qkv, pool, kv, layer, pos, tb, n_heads,
                                n_kv_heads, st);
    if (kv.head_dim == 128)
        return attention_hd<128>(shape, out, part, qkv, pool, kv, layer, pos, tb, n_heads,
                                 n_kv_heads, st);
    return cudaErrorInvalidValue;
}

/* ---- MLP activation --------------------------------------------------------- */

__global__ static void silu_mul_kernel(bf16 *h, const bf16 *gu, int inter, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / inter, c = i % inter;
    const bf16 *row = gu + r * 2 * inter;
    float g = __bfloat162float(row[c]), u = __bfloat162float(row[inter + c]);
    /* HF: act_fn(gate) is a bf16 tensor before the product with up */
    float a = round_bf16(g / (1.0f + expf(-g)));
    h[i] = __float2bfloat16(a * u);
}

cudaError_t ssfk_silu_mul(bf16 *h, const bf16 *gu, int rows, int inter, cudaStream_t st)
{
    size_t n = (size_t)rows * inter;
    unsigned blocks = (unsigned)((n + 255) / 256);
    silu_mul_kernel<<<blocks, 256, 0, st>>>(h, gu, inter, n);
    return cudaGetLastError();
}

/* ---- GEMM ------------------------------------------------------------------ */

cublasStatus_t ssfk_gemm(cublasHandle_t h, const bf16 *X, const bf16 *W, void *Y,
                         cudaDataType_t y_type, int M, int N, int K)
{
    /* Column-major: Y^T (N x M) = (W as K x N)^T . (X as K x M) */
    const float alpha = 1.0f, beta = 0.0f;
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16BF, K, X,
                        CUDA_R_16BF, K, &beta, Y, y_type, N, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}
