/*
 * cuda_kernels.cu - the CUDA device's row kernels (see cuda_kernels.cuh):
 * embedding, RMSNorm, bias + RoPE + KV write, SiLU, and the cuBLAS GEMM.
 * The paged attention is cuda_attention.cu.
 *
 * Straightforward kernels in the style of llm.c's: one block per row, fp32
 * math, block reductions through warp shuffles.
 */
#include "cuda_kernels.cuh"

#include <math.h>

#include <atomic>

#include <cuda_fp8.h>

#include "cuda_common.cuh"

static std::atomic<int> pdl_on{1};

void ssfk_set_pdl(int on)
{
    pdl_on.store(on != 0);
}

int ssfk_pdl(void)
{
    return pdl_on.load(std::memory_order_relaxed);
}

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

/* 1 / rms of row r of a folded norm's residual stream (every thread gets
 * it), summed as ssfk_rmsnorm sums it; 1 when the norm is not folded. */
__device__ static float folded_rstd(ssfk_row_norm nm, int r, float *buf)
{
    if (!nm.x) return 1.0f;
    const bf16 *xr = nm.x + (size_t)r * nm.C;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < nm.C; i += blockDim.x) {
        float v = __bfloat162float(xr[i]);
        ss += v * v;
    }
    return rms_rstd(block_sum(ss, buf), nm.C, nm.eps);
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
    kv.fp8 = 0;
    kv.scales = NULL;
    return kv;
}

size_t ssfk_kv_block_bytes(ssfk_kv_layout kv)
{
    return kv.block_stride * (kv.fp8 ? 1 : sizeof(bf16));
}

size_t ssfk_kv_scale_bytes(ssfk_kv_layout kv)
{
    return kv.fp8 ? kv.block_stride / kv.head_dim * sizeof(float) : 0;
}

void ssfk_inv_freq(float *inv_freq, int head_dim, double theta)
{
    for (int i = 0; i < head_dim / 2; i++)
        inv_freq[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
}

/* ---- embedding, norms, gathers -------------------------------------------- */

/* CTA r normalises row r. */
__global__ static void rmsnorm_kernel(bf16 *x, const bf16 *add, const bf16 *w, bf16 *out, int C,
                                      float eps)
{
    grid_dep_enter();
    __shared__ float buf[WARP];
    bf16 *xr = x + (size_t)blockIdx.x * C;
    const bf16 *ar = add ? add + (size_t)blockIdx.x * C : NULL;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float v = __bfloat162float(xr[i]);
        if (ar) {
            /* the residual stream stays BF16, as in HF */
            v = residual_add(v, __bfloat162float(ar[i]));
            xr[i] = __float2bfloat16(v);
        }
        ss += v * v;
    }
    float rstd = rms_rstd(block_sum(ss, buf), C, eps);
    bf16 *o = out + (size_t)blockIdx.x * C;
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
        /* HF order: normalise in fp32, cast to bf16, then scale by the weight */
        o[i] = __float2bfloat16(rms_scaled(__bfloat162float(xr[i]), rstd, __bfloat162float(w[i])));
    }
}

cudaError_t ssfk_rmsnorm(bf16 *x, const bf16 *add, const bf16 *w, bf16 *out, int rows, int C,
                         float eps, cudaStream_t st)
{
    return launch_pdl(rmsnorm_kernel, rows, 256, 0, st, x, add, w, out, C, eps);
}

/* A CTA copies one row of C elements. */
__device__ static void copy_row(bf16 *dst, const bf16 *src, int C)
{
    for (int i = threadIdx.x; i < C; i += blockDim.x)
        dst[i] = src[i];
}

__global__ static void gather_rows_kernel(bf16 *out, const bf16 *in, const int32_t *rows, int C)
{
    grid_dep_enter();
    copy_row(out + (size_t)blockIdx.x * C, in + (size_t)rows[blockIdx.x] * C, C);
}

cudaError_t ssfk_gather_rows(bf16 *out, const bf16 *in, const int32_t *rows, int n, int C,
                             cudaStream_t st)
{
    return launch_pdl(gather_rows_kernel, n, 256, 0, st, out, in, rows, C);
}

/* The embedding lookup: a gather of the tokens' rows, a fed token read
 * from the ids the step before drew. */
__global__ static void embed_kernel(bf16 *out, const bf16 *embed, const int32_t *token,
                                    const int32_t *feed, const int32_t *drawn, int C)
{
    grid_dep_enter();
    int r = blockIdx.x, t = feed[r] < 0 ? token[r] : drawn[feed[r]];
    copy_row(out + (size_t)r * C, embed + (size_t)(t < 0 ? 0 : t) * C, C);
}

cudaError_t ssfk_embed(bf16 *out, const bf16 *embed, const int32_t *token, const int32_t *feed,
                       const int32_t *drawn, int rows, int C, cudaStream_t st)
{
    return launch_pdl(embed_kernel, rows, 256, 0, st, out, embed, token, feed, drawn, C);
}

/* ---- bias + RoPE + KV write ----------------------------------------------- */

/* (cos, sin) of position p's angle for pair d: the angle in fp32 as
 * transformers computes it (position * inv_freq), then the accurate
 * sincosf, since arguments reach 32768 rad.  qkv_rope_store and the table
 * for the attention's RoPE both take it from here: the same bits. */
__device__ static inline float2 rope_angle(int p, const float *inv_freq, int d)
{
    float s, c;
    sincosf((float)p * inv_freq[d], &s, &c);
    return make_float2(c, s);
}

/* The K rows (sel 0) then V rows (sel 1) of every KV head, BF16 in `src`
 * (n_kv rows each), into the fp8 pool at element offset `at` (head 0's K
 * row): a warp a row. */
__device__ static void store_fp8_rows(const bf16 *src, ssfk_kv_layout kv, uint8_t *pool, size_t at,
                                      int n_kv)
{
    int lane = threadIdx.x % WARP, hd = kv.head_dim, per = hd / WARP;
    for (int w = threadIdx.x / WARP; w < 2 * n_kv; w += blockDim.x / WARP) {
        int sel = w / n_kv, h = w % n_kv;
        const bf16 *x = src + (size_t)w * hd;
        float v[FP8_PER_LANE];
        int col[FP8_PER_LANE];
#pragma unroll
        for (int i = 0; i < FP8_PER_LANE; i++) {
            col[i] = lane * per + i;
            v[i] = i < per ? __bfloat162float(x[col[i]]) : 0.0f;
        }
        size_t row = at + (size_t)sel * kv.v_offset + (size_t)h * kv.head_stride;
        store_fp8_row(v, col, per, pool + row, kv.scales + row / hd);
    }
}

template <bool FP8>
__global__ static void qkv_rope_store_kernel(bf16 *qkv, const float *bias, const int32_t *pos,
                                             ssfk_tables tb, const float *inv_freq, void *pool,
                                             ssfk_kv_layout kv, int layer, int n_heads, int n_kv,
                                             ssfk_row_norm nm)
{
    grid_dep_enter();
    __shared__ float buf[WARP];
    int r = blockIdx.x, hd = kv.head_dim, half = hd / 2, p = pos[r];
    float rstd = folded_rstd(nm, r, buf);
    int width = (n_heads + 2 * n_kv) * hd;
    bf16 *row = qkv + (size_t)r * width;
    size_t at = kv_pos(kv, row_table(tb, r), layer, p);
    /* BF16 destinations (an fp8 pool is written by store_fp8_rows) */
    bf16 *kdst = FP8 ? NULL : (bf16 *)pool + at, *vdst = FP8 ? NULL : kdst + kv.v_offset;
    /* q and k: pairs (d, d + hd/2) of each head, rotate-half layout */
    for (int i = threadIdx.x; i < (n_heads + n_kv) * half; i += blockDim.x) {
        int h = i / half, d = i % half, j1 = h * hd + d, j2 = j1 + half;
        float2 o = rope_pair(normed_biased(row, bias, j1, rstd), normed_biased(row, bias, j2, rstd),
                             rope_angle(p, inv_freq, d));
        bf16 o1 = __float2bfloat16(o.x), o2 = __float2bfloat16(o.y);
        if (FP8 || h < n_heads) {
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
        float v = normed_biased(row, bias, voff + i, rstd);
        if (FP8)
            row[voff + i] = __float2bfloat16(v);
        else
            vdst[(size_t)(i / hd) * kv.head_stride + i % hd] = __float2bfloat16(v);
    }
    if (!FP8) return;
    __syncthreads(); /* the row's k and v are complete */
    store_fp8_rows(row + (size_t)n_heads * hd, kv, (uint8_t *)pool, at, n_kv);
}

cudaError_t ssfk_qkv_rope_store(bf16 *qkv, const float *bias, const int32_t *pos, ssfk_tables tb,
                                const float *inv_freq, void *pool, ssfk_kv_layout kv, int layer,
                                int rows, int n_heads, int n_kv_heads, const ssfk_row_norm *nm,
                                cudaStream_t st)
{
    if (kv.fp8 && (!kv.scales || kv.head_dim % WARP || kv.head_dim > 128))
        return cudaErrorInvalidValue;
    ssfk_row_norm none = {NULL, 0, 0.0f};
    return launch_pdl(kv.fp8 ? qkv_rope_store_kernel<true> : qkv_rope_store_kernel<false>, rows,
                      256, 0, st, qkv, bias, pos, tb, inv_freq, pool, kv, layer, n_heads,
                      n_kv_heads, nm ? *nm : none);
}

__global__ static void rope_table_kernel(float2 *cs, const int32_t *pos, const float *inv_freq,
                                         int half)
{
    grid_dep_enter();
    int r = blockIdx.x;
    for (int d = threadIdx.x; d < half; d += blockDim.x)
        cs[(size_t)r * half + d] = rope_angle(pos[r], inv_freq, d);
}

cudaError_t ssfk_rope_table(float2 *cs, const int32_t *pos, const float *inv_freq, int rows,
                            int head_dim, cudaStream_t st)
{
    int half = head_dim / 2;
    return launch_pdl(rope_table_kernel, rows, half < 256 ? half : 256, 0, st, cs, pos, inv_freq,
                      half);
}

/* ---- MLP activation --------------------------------------------------------- */

__global__ static void silu_mul_kernel(bf16 *h, const bf16 *gu, int inter, int block, size_t n)
{
    grid_dep_enter();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / inter, c = i % inter;
    size_t gate = block ? c / block * 2 * block + c % block : c,
           up = gate + (block ? block : inter);
    const bf16 *row = gu + r * 2 * inter;
    h[i] = silu_times(__bfloat162float(row[gate]), __bfloat162float(row[up]));
}

/* CTA (c, r): row r's outputs [c * SILU_SPAN, (c + 1) * SILU_SPAN), gate
 * and up scaled by the row's 1 / rms first, each rounded to BF16 as the
 * unfolded GEMM's outputs are.  Every CTA of a row sums the row's squares
 * itself (from L2: a few KB) rather than wait for a kernel that would. */
#define SILU_SPAN 2048

__global__ static void silu_mul_folded_kernel(bf16 *h, const bf16 *gu, ssfk_row_norm nm, int inter,
                                              int block)
{
    grid_dep_enter();
    __shared__ float buf[WARP];
    int r = blockIdx.y;
    float rstd = folded_rstd(nm, r, buf);
    const bf16 *row = gu + (size_t)r * 2 * inter;
    int c0 = (int)blockIdx.x * SILU_SPAN, end = c0 + SILU_SPAN < inter ? c0 + SILU_SPAN : inter;
    for (int c = c0 + (int)threadIdx.x; c < end; c += blockDim.x) {
        int gate = block ? c / block * 2 * block + c % block : c,
            up = gate + (block ? block : inter);
        float g = round_bf16(__bfloat162float(row[gate]) * rstd);
        float u = round_bf16(__bfloat162float(row[up]) * rstd);
        h[(size_t)r * inter + c] = silu_times(g, u);
    }
}

cudaError_t ssfk_silu_mul(bf16 *h, const bf16 *gu, int rows, int inter, int block,
                          const ssfk_row_norm *nm, cudaStream_t st)
{
    if (block < 0 || (block && inter % block)) return cudaErrorInvalidValue;
    if (nm && nm->x) {
        dim3 grid((unsigned)((inter + SILU_SPAN - 1) / SILU_SPAN), (unsigned)rows);
        return launch_pdl(silu_mul_folded_kernel, grid, 256, 0, st, h, gu, *nm, inter, block);
    }
    size_t n = (size_t)rows * inter;
    unsigned blocks = (unsigned)((n + 255) / 256);
    return launch_pdl(silu_mul_kernel, blocks, 256, 0, st, h, gu, inter, block, n);
}

/* ---- norms folded into the GEMMs' weights ----------------------------------------- */

/* CTA n scales row n of W by the gains, column by column. */
__global__ static void fold_gains_kernel(bf16 *W, const bf16 *gains, int K)
{
    grid_dep_enter();
    bf16 *row = W + (size_t)blockIdx.x * K;
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        row[k] = __float2bfloat16(__bfloat162float(row[k]) * __bfloat162float(gains[k]));
}

cudaError_t ssfk_fold_gains(bf16 *W, const bf16 *gains, int rows, int K, cudaStream_t st)
{
    return launch_pdl(fold_gains_kernel, rows, 256, 0, st, W, gains, K);
}

/* ---- timing --------------------------------------------------------------- */

__global__ static void hold_kernel(long long ns)
{
    unsigned long long t0 = global_ns();
    while ((long long)(global_ns() - t0) < ns) {
    }
}

cudaError_t ssfk_hold(long long ns, cudaStream_t st)
{
    hold_kernel<<<1, 1, 0, st>>>(ns);
    return cudaGetLastError();
}

/* ---- GEMM ------------------------------------------------------------------ */

cublasStatus_t ssfk_gemm(cublasHandle_t h, const bf16 *X, const bf16 *W, void *Y,
                         cudaDataType_t y_type, int M, int N, int K, int accumulate)
{
    /* Column-major: Y^T (N x M) = (W as K x N)^T . (X as K x M) */
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, CUDA_R_16BF, K, X,
                        CUDA_R_16BF, K, &beta, Y, y_type, N, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}
