/*
 * cuda_pgemm.cu - the decode step's small GEMMs through a kernel of the
 * engine's own (ssfk_pgemm in cuda_kernels.cuh; shape and reasons in
 * cuda_plan.h): each CTA copies its whole tile of W into shared memory
 * before it waits for the kernel before it, then X's chunk, then multiplies
 * on the tensor cores.
 */
#include "cuda_common.cuh"
#include "cuda_kernels.cuh"
#include "cuda_mma.cuh"

/* ---- the small GEMM ------------------------------------------------------- */

#define BN SSF_PGEMM_BN
#define MR SSF_PGEMM_MAX_M
#define PG_WARPS (SSF_PGEMM_THREADS / WARP)

static_assert(PG_WARPS * 16 == MR, "a warp a 16-row block of X");
static_assert(BN % 8 == 0, "columns in MMA slices of 8");

/* Queues rows [0, rows) of a tile, `chunk` columns each from src + row x
 * ld, into shared memory `stride` apart, 16 bytes a copy; rows from `have`
 * on are zeros (X past its M rows). */
__device__ static void queue_rows(bf16 *dst, const bf16 *src, size_t ld, int rows, int have,
                                  int chunk, int stride)
{
    int pieces = chunk / 8;
    for (int c = threadIdx.x; c < rows * pieces; c += SSF_PGEMM_THREADS) {
        int r = c / pieces, e = (c % pieces) * 8;
        bool in = r < have;
        cp_async16(dst + r * stride + e, src + (in ? (size_t)r * ld + e : 0), in ? 16 : 0);
    }
}

/* acc += X's 16 rows at xs . W's BN rows at ws ^T over the chunk: A
 * fragments from X, B fragments straight from W's rows (a column of W^T
 * is a row of W); rows `stride` apart, so the 32 lanes' 4-byte reads fall
 * in 32 banks. */
__device__ static void multiply(float (&acc)[BN / 8][4], const bf16 *xs, const bf16 *ws, int stride,
                                int chunk)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
    const bf16 *x0 = xs + g * stride + 2 * t, *x8 = x0 + 8 * stride;
    const bf16 *w0 = ws + g * stride + 2 * t;
    for (int k = 0; k < chunk; k += 16) {
        uint32_t a0 = *(const uint32_t *)(x0 + k), a1 = *(const uint32_t *)(x8 + k);
        uint32_t a2 = *(const uint32_t *)(x0 + k + 8), a3 = *(const uint32_t *)(x8 + k + 8);
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            const bf16 *w = w0 + n * 8 * stride + k;
            uint32_t b0 = *(const uint32_t *)w, b1 = *(const uint32_t *)(w + 8);
            mma_16816_full(acc[n], a0, a1, a2, a3, b0, b1);
        }
    }
}

/* The warp's 16 x BN results, rows below M: BF16 into Y, or fp32 into the
 * split's partial [M][N]. */
__device__ static void store_warp(const float (&acc)[BN / 8][4], bf16 *Y, float *part, int row0,
                                  int M, int N, int n0)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int row = row0 + g + 8 * h;
        if (row >= M) continue;
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            size_t at = (size_t)row * N + n0 + n * 8 + 2 * t;
            if (part)
                *(float2 *)(part + at) = make_float2(acc[n][2 * h], acc[n][2 * h + 1]);
            else
                *(uint32_t *)(Y + at) = pack_bf16(acc[n][2 * h], acc[n][2 * h + 1]);
        }
    }
}

/* Whether this CTA is the last of its column tile's splits to finish; that
 * one sets the count back to zero for the next launch.  The fences make
 * every split's partial visible to the last before it reads them. */
__device__ static bool last_of_tile(int *count, int splits)
{
    __threadfence();
    __syncthreads();
    bool last = false;
    if (threadIdx.x == 0) {
        last = atomicAdd(count, 1) == splits - 1;
        if (last) *count = 0;
    }
    last = __syncthreads_or(last);
    if (last) __threadfence();
    return last;
}

/* The tile's splits summed in split order (the same bits every launch),
 * into Y as BF16; partials read from L2, past this SM's L1. */
__device__ static void sum_splits(const float *part, bf16 *Y, int splits, int M, int N, int n0)
{
    size_t split_stride = (size_t)M * N;
    for (int i = threadIdx.x; i < M * BN / 2; i += SSF_PGEMM_THREADS) {
        size_t at = (size_t)(i / (BN / 2)) * N + n0 + 2 * (i % (BN / 2));
        float2 s = make_float2(0.0f, 0.0f);
        for (int sp = 0; sp < splits; sp++) {
            float2 v = __ldcg((const float2 *)(part + sp * split_stride + at));
            s.x += v.x, s.y += v.y;
        }
        *(uint32_t *)(Y + at) = pack_bf16(s.x, s.y);
    }
}

/* One CTA per (column tile, K chunk): grid (tiles, splits).  Bound to
 * SSF_PGEMM_SM_CTAS CTAs an SM (64 registers), which the plan counts on. */
__global__ static void __launch_bounds__(SSF_PGEMM_THREADS, SSF_PGEMM_SM_CTAS)
    pgemm_kernel(const bf16 *X, const bf16 *W, bf16 *Y, float *part, int *count, int M, int N,
                 int K, int chunk)
{
    extern __shared__ __align__(16) char smem[];
    int stride = chunk + SSF_PGEMM_PAD, n0 = blockIdx.x * BN, k0 = blockIdx.y * chunk;
    bf16 *ws = (bf16 *)smem, *xs = ws + BN * stride;
    /* no kernel writes the weights: they land while the one before drains */
    queue_rows(ws, W + (size_t)n0 * K + k0, K, BN, BN, chunk, stride);
    cp_async_commit();
    grid_dep_enter();
    queue_rows(xs, X + k0, K, MR, M, chunk, stride);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    int row0 = threadIdx.x / WARP * 16, splits = gridDim.y;
    float acc[BN / 8][4] = {};
    if (row0 < M) multiply(acc, xs + row0 * stride, ws, stride, chunk);
    float *mine = splits > 1 ? part + (size_t)blockIdx.y * M * N : NULL;
    store_warp(acc, Y, mine, row0, M, N, n0);
    if (splits > 1 && last_of_tile(count + blockIdx.x, splits))
        sum_splits(part, Y, splits, M, N, n0);
}

cudaError_t ssfk_pgemm_init(ssfk_pgemm_device *dev)
{
    int ordinal = 0, sms = 0, cta = 0, sm = 0;
    cudaError_t e = cudaGetDevice(&ordinal);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ordinal);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&cta, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, ordinal);
    /* every plan's shape.smem is within the opt-in limit: asking for the
     * limit lets no later open, for another model, lower it under a shape
     * in use */
    if (e == cudaSuccess) e = allow_smem(pgemm_kernel, (size_t)cta);
    dev->sms = sms, dev->cta_smem = (size_t)cta, dev->sm_smem = (size_t)sm;
    return e;
}

int ssfk_pgemm_plan(const ssfk_pgemm_device *dev, int N, int K, ssf_pgemm_shape *sh)
{
    return ssf_pgemm_plan(N, K, dev->sms, dev->cta_smem, dev->sm_smem, sh);
}

cudaError_t ssfk_pgemm(const ssf_pgemm_shape *sh, const bf16 *X, const bf16 *W, bf16 *Y,
                       float *part, int *count, int M, int N, int K, cudaStream_t st)
{
    if (M < 1 || M > MR || N != sh->tiles * BN || K != sh->splits * sh->chunk || sh->chunk % 16 ||
        sh->smem != ssf_pgemm_smem(sh->chunk) || (sh->splits > 1 && (!part || !count)))
        return cudaErrorInvalidValue;
    return launch_pdl(pgemm_kernel, dim3(sh->tiles, sh->splits), SSF_PGEMM_THREADS, sh->smem, st, X,
                      W, Y, part, count, M, N, K, sh->chunk);
}
