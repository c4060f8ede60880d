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

/* cp.async (sm_80+): 16 bytes global -> shared without passing through
 * registers, so a CTA keeps a whole tile of K and V in flight. */
__device__ static inline void cp_async16(void *dst, const void *src)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src));
}

__device__ static inline void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::);
}

/* Waits until at most N committed groups are still in flight. */
template <int N> __device__ static inline void cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

static_assert(SSF_ATTN_TILE == WARP, "softmax_tile gives each lane one position");
static_assert(SSF_ATTN_THREADS % 128 == 0, "head_dim 64 and 128 both divide the CTA");

#define KV_ROW(HD) ((HD) + SSF_ATTN_KV_PAD) /* a K or V row in shared memory, in bf16 */

/* The shared memory of one attention CTA (ssf_attn_plan sizes it). */
template <int HD, int GP> struct attn_smem {
    bf16 *k, *v;          /* [2 stages][TILE][KV_ROW]: the tile being read, the next landing */
    float *q;             /* [GP][HD] */
    float *p;             /* [GP][TILE] scores, then softmax weights */
    float *m, *l, *alpha; /* [GP] running max, running sum, this tile's rescale */
};

template <int HD, int GP> __device__ static attn_smem<HD, GP> attn_smem_at(char *base)
{
    attn_smem<HD, GP> sm;
    sm.k = (bf16 *)base;
    sm.v = sm.k + 2 * SSF_ATTN_TILE * KV_ROW(HD);
    sm.q = (float *)(sm.v + 2 * SSF_ATTN_TILE * KV_ROW(HD));
    sm.p = sm.q + GP * HD;
    sm.m = sm.p + GP * SSF_ATTN_TILE;
    sm.l = sm.m + GP;
    sm.alpha = sm.l + GP;
    return sm;
}

/* Queues the K and V rows of positions t0 .. t0 + cnt - 1 into `stage`, 16
 * bytes a copy, spread over all threads. */
template <int HD, int GP>
__device__ static void load_tile(attn_smem<HD, GP> sm, int stage, const bf16 *kbase,
                                 ssfk_kv_layout kv, const int32_t *table, int layer, int t0,
                                 int cnt)
{
    constexpr int CH = HD / 8; /* 16-byte pieces a row */
    bf16 *ks = sm.k + stage * SSF_ATTN_TILE * KV_ROW(HD);
    bf16 *vs = sm.v + stage * SSF_ATTN_TILE * KV_ROW(HD);
    for (int c = threadIdx.x; c < cnt * CH; c += SSF_ATTN_THREADS) {
        int j = c / CH, e = (c % CH) * 8;
        size_t off = kv_pos(kv, table, layer, t0 + j) + e;
        cp_async16(ks + j * KV_ROW(HD) + e, kbase + off);
        cp_async16(vs + j * KV_ROW(HD) + e, kbase + kv.v_offset + off);
    }
}

/* p[g][j] = scale * q_g . k_j for the tile's positions (-inf past cnt and
 * for padding heads).  A warp takes one head's 32 positions: q is a
 * broadcast, and rows 16 bytes apart modulo 128 keep the 16-byte K reads
 * free of bank conflicts.  Each K row is read once for the whole group:
 * the GQA packing. */
template <int HD, int GP>
__device__ static void score_tile(attn_smem<HD, GP> sm, int stage, int cnt, int ng, float scale)
{
    const bf16 *ks = sm.k + stage * SSF_ATTN_TILE * KV_ROW(HD);
    for (int idx = threadIdx.x; idx < GP * SSF_ATTN_TILE; idx += SSF_ATTN_THREADS) {
        int g = idx / SSF_ATTN_TILE, j = idx % SSF_ATTN_TILE;
        float s = -INFINITY;
        if (g < ng && j < cnt) {
            const float *q = sm.q + g * HD;
            const bf16 *k = ks + j * KV_ROW(HD);
            s = 0.0f;
#pragma unroll
            for (int e = 0; e < HD; e += 8) {
                uint4 raw = *(const uint4 *)(k + e);
                const __nv_bfloat162 *h2 = (const __nv_bfloat162 *)&raw;
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    float2 f = __bfloat1622float2(h2[u]);
                    s += q[e + 2 * u] * f.x + q[e + 2 * u + 1] * f.y;
                }
            }
            s *= scale;
        }
        sm.p[g * SSF_ATTN_TILE + j] = s;
    }
}

/* Online softmax over the tile, one warp per query head, a lane per
 * position: scores become weights exp(s - m_new), and alpha = exp(m_old -
 * m_new) rescales what was accumulated before (0 on the first tile, m_old
 * being -inf). */
template <int HD, int GP> __device__ static void softmax_tile(attn_smem<HD, GP> sm, int ng)
{
    constexpr int NW = SSF_ATTN_THREADS / WARP;
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    for (int g = warp; g < ng; g += NW) {
        float *p = sm.p + g * SSF_ATTN_TILE;
        float s = p[lane], m_old = sm.m[g], m_new = fmaxf(m_old, warp_max(s));
        float e = expf(s - m_new); /* 0 past the tile's end (-inf) */
        p[lane] = e;
        float lt = warp_sum(e);
        if (lane == 0) {
            float a = expf(m_old - m_new);
            sm.alpha[g] = a;
            sm.l[g] = sm.l[g] * a + lt;
            sm.m[g] = m_new;
        }
    }
}

/* acc[g] = alpha_g acc[g] + sum_j p[g][j] v_j[d]: thread t owns dimension
 * t % HD and, when HD is under the CTA's width, every (CTA / HD)-th
 * position. */
template <int HD, int GP>
__device__ static void accumulate_tile(attn_smem<HD, GP> sm, int stage, float *acc, int cnt)
{
    constexpr int SUB = SSF_ATTN_THREADS / HD;
    int d = threadIdx.x % HD, sub = threadIdx.x / HD;
    const bf16 *vs = sm.v + stage * SSF_ATTN_TILE * KV_ROW(HD);
#pragma unroll
    for (int g = 0; g < GP; g++)
        acc[g] *= sm.alpha[g];
    for (int j = sub; j < cnt; j += SUB) {
        float v = __bfloat162float(vs[j * KV_ROW(HD) + d]);
#pragma unroll
        for (int g = 0; g < GP; g++)
            acc[g] += sm.p[g * SSF_ATTN_TILE + j] * v;
    }
}

/* Adds the position subsets' accumulators into subset 0's (HD 64: two
 * subsets), through the K stages, free once the last tile is done. */
template <int HD, int GP> __device__ static void merge_subsets(attn_smem<HD, GP> sm, float *acc)
{
    constexpr int SUB = SSF_ATTN_THREADS / HD;
    if (SUB == 1) return;
    float *buf = (float *)sm.k; /* [SUB - 1][GP][HD] */
    int d = threadIdx.x % HD, sub = threadIdx.x / HD;
    if (sub > 0)
        for (int g = 0; g < GP; g++)
            buf[((sub - 1) * GP + g) * HD + d] = acc[g];
    __syncthreads();
    if (sub == 0)
        for (int s = 1; s < SUB; s++)
            for (int g = 0; g < GP; g++)
                acc[g] += buf[((s - 1) * GP + g) * HD + d];
}

/* The CTA's result: the normalised output when unsplit, else its partial
 * (acc, then max and sum) for attn_combine_kernel.  Threads 0..HD-1. */
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
 * One CTA of SSF_ATTN_THREADS per (row, KV head x head chunk, split).  The
 * positions [split * chunk, min(pos[r] + 1, (split + 1) * chunk)) are
 * walked in tiles of SSF_ATTN_TILE: while a tile is scored (score_tile),
 * turned into weights (softmax_tile) and summed over V (accumulate_tile)
 * from shared memory, the next tile's K and V rows are already landing
 * there (cp.async, two stages).  Keeping 16-32 KB of reads in flight per
 * CTA is what the first version, one memory latency per position, lacked:
 * it read KV at under 0.9 TB/s on an H200.  fp32 throughout; GP is the
 * group padded to a power of two, ng the heads actually computed.
 */
template <int HD, int GP>
__global__ static void __launch_bounds__(SSF_ATTN_THREADS)
    paged_attention_kernel(bf16 *out, float *part, const bf16 *qkv, const bf16 *pool,
                           ssfk_kv_layout kv, int layer, const int32_t *pos, ssfk_tables tb,
                           int n_heads, int n_kv, int head_chunks, int chunk, float scale)
{
    extern __shared__ __align__(16) char smem_raw[];
    attn_smem<HD, GP> sm = attn_smem_at<HD, GP>(smem_raw);
    int r = blockIdx.x, kvh = blockIdx.y / head_chunks, qc = blockIdx.y % head_chunks;
    int group = n_heads / n_kv, h0 = kvh * group + qc * GP, ng = min(GP, group - qc * GP);
    int t = threadIdx.x;
    int lo = blockIdx.z * chunk, hi = min(pos[r] + 1, lo + chunk);
    int n_tiles = hi > lo ? (hi - lo + SSF_ATTN_TILE - 1) / SSF_ATTN_TILE : 0;
    const int32_t *table = row_table(tb, r);
    const bf16 *kbase = pool + (size_t)kvh * kv.head_stride;
    if (n_tiles > 0)
        load_tile<HD, GP>(sm, 0, kbase, kv, table, layer, lo, min(SSF_ATTN_TILE, hi - lo));
    cp_async_commit();
    const bf16 *qrow = qkv + (size_t)r * (n_heads + 2 * n_kv) * HD + (size_t)h0 * HD;
    for (int i = t; i < GP * HD; i += SSF_ATTN_THREADS)
        sm.q[i] = i / HD < ng ? __bfloat162float(qrow[i]) : 0.0f;
    if (t < GP) sm.m[t] = -INFINITY, sm.l[t] = 0.0f, sm.alpha[t] = 1.0f;
    float acc[GP];
#pragma unroll
    for (int g = 0; g < GP; g++)
        acc[g] = 0.0f;
    for (int i = 0; i < n_tiles; i++) {
        int t0 = lo + i * SSF_ATTN_TILE, cnt = min(SSF_ATTN_TILE, hi - t0);
        if (i + 1 < n_tiles)
            load_tile<HD, GP>(sm, (i + 1) & 1, kbase, kv, table, layer, t0 + SSF_ATTN_TILE,
                              min(SSF_ATTN_TILE, hi - t0 - SSF_ATTN_TILE));
        cp_async_commit();
        cp_async_wait<1>(); /* tile i has landed (tile i + 1 may be in flight) */
        __syncthreads();
        score_tile<HD, GP>(sm, i & 1, cnt, ng, scale);
        __syncthreads();
        softmax_tile<HD, GP>(sm, ng);
        __syncthreads();
        accumulate_tile<HD, GP>(sm, i & 1, acc, cnt);
        __syncthreads(); /* before tile i + 2 lands in this stage, p is rewritten */
    }
    cp_async_wait<0>();
    __syncthreads();
    merge_subsets<HD, GP>(sm, acc);
    if (t < HD) attn_write<HD, GP>(sm, acc, out, part, r, h0, ng, n_heads);
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
    paged_attention_kernel<HD, GP><<<grid, SSF_ATTN_THREADS, sh->smem, st>>>(
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
    if (shape->threads != SSF_ATTN_THREADS || shape->grid[1] != n_kv_heads * shape->head_chunks ||
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
