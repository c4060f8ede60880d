/*
 * cuda_kernels.cu - the CUDA device's kernels (see cuda_kernels.cuh).
 *
 * Straightforward kernels in the style of llm.c's: one block per row (or per
 * row and head), fp32 math, block reductions through warp shuffles.  Offsets
 * into the KV cache are size_t: one slot of a 32B model at 32k positions is
 * already 2^31 values.
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

__device__ static inline size_t kv_row(ssfk_kv_layout kv, int slot, int layer, int pos)
{
    return (size_t)slot * kv.slot_stride + (size_t)layer * kv.layer_stride +
           (size_t)pos * (size_t)kv.kv_dim;
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
                                             const int32_t *slot, const float *inv_freq,
                                             bf16 *kcache, bf16 *vcache, ssfk_kv_layout kv,
                                             int layer, int n_heads, int n_kv, int hd)
{
    int r = blockIdx.x, half = hd / 2, p = pos[r];
    int width = (n_heads + 2 * n_kv) * hd;
    bf16 *row = qkv + (size_t)r * width;
    size_t at = kv_row(kv, slot[r], layer, p);
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
            size_t k = at + (size_t)(h - n_heads) * hd + d;
            kcache[k] = o1;
            kcache[k + half] = o2;
        }
    }
    int voff = (n_heads + n_kv) * hd;
    for (int i = threadIdx.x; i < n_kv * hd; i += blockDim.x) {
        float v = __bfloat162float(row[voff + i]);
        if (bias) v = v + bias[voff + i];
        vcache[at + i] = __float2bfloat16(v);
    }
}

cudaError_t ssfk_qkv_rope_store(bf16 *qkv, const float *bias, const int32_t *pos,
                                const int32_t *slot, const float *inv_freq, bf16 *kcache,
                                bf16 *vcache, ssfk_kv_layout kv, int layer, int rows, int n_heads,
                                int n_kv_heads, int head_dim, cudaStream_t st)
{
    qkv_rope_store_kernel<<<rows, 256, 0, st>>>(qkv, bias, pos, slot, inv_freq, kcache, vcache, kv,
                                                layer, n_heads, n_kv_heads, head_dim);
    return cudaGetLastError();
}

/* ---- attention ------------------------------------------------------------ */

/*
 * One block per (row, q-head), HD threads; thread t owns output dimension t.
 * The cache is walked in tiles of HD positions with an online softmax: each
 * warp scores a share of the tile's positions (lanes split the dot product),
 * then every thread rescales its accumulator by exp(m_old - m_new) and adds
 * the tile's p_j * v_j[t].  Any GQA ratio: the KV head is h / (n_heads /
 * n_kv), re-read by each q-head of its group.
 */
template <int HD>
__global__ static void attention_kernel(bf16 *out, const bf16 *qkv, const bf16 *kcache,
                                        const bf16 *vcache, const int32_t *pos, const int32_t *slot,
                                        ssfk_kv_layout kv, int layer, int n_heads, int n_kv,
                                        float scale)
{
    __shared__ float q_s[HD];
    __shared__ float p_s[HD];
    int r = blockIdx.x, h = blockIdx.y, t = threadIdx.x;
    int lane = t % WARP, warp = t / WARP, nwarps = HD / WARP;
    int kvh = h / (n_heads / n_kv), n = pos[r] + 1;
    int width = (n_heads + 2 * n_kv) * HD;
    q_s[t] = __bfloat162float(qkv[(size_t)r * width + (size_t)h * HD + t]);
    size_t base = kv_row(kv, slot[r], layer, 0) + (size_t)kvh * HD;
    const bf16 *K = kcache + base, *V = vcache + base;
    float m = -INFINITY, l = 0.0f, acc = 0.0f;
    __syncthreads();
    for (int t0 = 0; t0 < n; t0 += HD) {
        int cnt = min(HD, n - t0);
        for (int j = warp; j < cnt; j += nwarps) {
            const bf16 *k = K + (size_t)(t0 + j) * kv.kv_dim;
            float s = 0.0f;
            for (int d = lane; d < HD; d += WARP)
                s += q_s[d] * __bfloat162float(k[d]);
            s = warp_sum(s);
            if (lane == 0) p_s[j] = s * scale;
        }
        __syncthreads();
        float mt = -INFINITY;
        for (int j = 0; j < cnt; j++)
            mt = fmaxf(mt, p_s[j]);
        float m_new = fmaxf(m, mt);
        float alpha = expf(m - m_new); /* 0 on the first tile (m = -inf) */
        __syncthreads();               /* everyone has read the scores */
        if (t < cnt) p_s[t] = expf(p_s[t] - m_new);
        __syncthreads();
        float lt = 0.0f;
        acc *= alpha;
        for (int j = 0; j < cnt; j++) {
            lt += p_s[j];
            acc += p_s[j] * __bfloat162float(V[(size_t)(t0 + j) * kv.kv_dim + t]);
        }
        l = l * alpha + lt;
        m = m_new;
        __syncthreads(); /* before the next tile overwrites p_s */
    }
    out[(size_t)r * n_heads * HD + (size_t)h * HD + t] = __float2bfloat16(acc / l);
}

cudaError_t ssfk_attention(bf16 *out, const bf16 *qkv, const bf16 *kcache, const bf16 *vcache,
                           const int32_t *pos, const int32_t *slot, ssfk_kv_layout kv, int layer,
                           int rows, int n_heads, int n_kv_heads, int head_dim, cudaStream_t st)
{
    dim3 grid(rows, n_heads);
    float scale = 1.0f / sqrtf((float)head_dim);
    if (head_dim == 64)
        attention_kernel<64><<<grid, 64, 0, st>>>(out, qkv, kcache, vcache, pos, slot, kv, layer,
                                                  n_heads, n_kv_heads, scale);
    else if (head_dim == 128)
        attention_kernel<128><<<grid, 128, 0, st>>>(out, qkv, kcache, vcache, pos, slot, kv, layer,
                                                    n_heads, n_kv_heads, scale);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
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
