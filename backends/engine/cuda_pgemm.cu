/*
 * cuda_pgemm.cu - the decode step's GEMMs of few rows through a kernel of
 * the engine's own (ssfk_pgemm in cuda_kernels.cuh; shape and reasons in
 * cuda_plan.h): each CTA streams its column tile of W through a ring of
 * slices in shared memory, the first of them copied before it waits for
 * the kernel before it, and multiplies on the tensor cores.
 */
#include "cuda_common.cuh"
#include "cuda_kernels.cuh"
#include "cuda_mma.cuh"

/* ---- the small GEMM ------------------------------------------------------- */

#define MR SSF_PGEMM_MAX_M
#define KS SSF_PGEMM_KS
#define KSTRIDE (KS + SSF_PGEMM_PAD) /* a row of a slice in shared memory */
#define PG_WARPS (SSF_PGEMM_THREADS / WARP)

static_assert(PG_WARPS * 16 == MR, "a warp a 16-row block of X");
static_assert(SSF_PGEMM_BN % 8 == 0 && SSF_PGEMM_BN_WIDE % 8 == 0 && KS % 16 == 0,
              "columns in MMA slices of 8, K in steps of 16");
static_assert(SSF_PGEMM_MAX_STAGES == 8, "cp_async_wait_upto's cases");

/* One slot of the ring: a slice's BN rows of W, then X's MR rows. */
struct slot {
    bf16 *w, *x;
};

template <int BN> __device__ static slot ring_slot(char *smem, int i)
{
    slot s;
    s.w = (bf16 *)(smem + (size_t)i * SSF_PGEMM_SLOT_BYTES(BN));
    s.x = s.w + BN * KSTRIDE;
    return s;
}

/* Queues rows [0, rows) of a slice, KS columns each from src + row x ld,
 * into a slot's rows, 16 bytes a copy; rows from `have` on are zeros (X
 * past its M rows). */
__device__ static void queue_rows(bf16 *dst, const bf16 *src, size_t ld, int rows, int have)
{
    const int pieces = KS / 8;
    for (int c = threadIdx.x; c < rows * pieces; c += SSF_PGEMM_THREADS) {
        int r = c / pieces, e = (c % pieces) * 8;
        bool in = r < have;
        cp_async16(dst + r * KSTRIDE + e, src + (in ? (size_t)r * ld + e : 0), in ? 16 : 0);
    }
}

/* The slot's slice k of W's tile and of X's M rows. */
template <int BN>
__device__ static void queue_slice(slot s, const bf16 *w_tile, const bf16 *X, int M, int K, int k)
{
    queue_rows(s.w, w_tile + k, K, BN, BN);
    queue_rows(s.x, X + k, K, MR, M);
}

/* cp_async_wait<n> for the ring's n, known at run time. */
__device__ static void cp_async_wait_upto(int n)
{
    switch (n) {
    case 0:
        cp_async_wait<0>();
        break;
    case 1:
        cp_async_wait<1>();
        break;
    case 2:
        cp_async_wait<2>();
        break;
    case 3:
        cp_async_wait<3>();
        break;
    case 4:
        cp_async_wait<4>();
        break;
    case 5:
        cp_async_wait<5>();
        break;
    case 6:
        cp_async_wait<6>();
        break;
    default:
        cp_async_wait<7>();
        break;
    }
}

/* acc += X's 16 rows at xs . W's BN rows at ws ^T over a slice: A
 * fragments from X, B fragments straight from W's rows (a column of W^T
 * is a row of W); rows KSTRIDE apart, so the 32 lanes' 4-byte reads fall
 * in 32 banks. */
template <int BN>
__device__ static void multiply(float (&acc)[BN / 8][4], const bf16 *xs, const bf16 *ws)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
    const bf16 *x0 = xs + g * KSTRIDE + 2 * t, *x8 = x0 + 8 * KSTRIDE;
    const bf16 *w0 = ws + g * KSTRIDE + 2 * t;
#pragma unroll
    for (int k = 0; k < KS; k += 16) {
        uint32_t a0 = *(const uint32_t *)(x0 + k), a1 = *(const uint32_t *)(x8 + k);
        uint32_t a2 = *(const uint32_t *)(x0 + k + 8), a3 = *(const uint32_t *)(x8 + k + 8);
#pragma unroll
        for (int n = 0; n < BN / 8; n++) {
            const bf16 *w = w0 + n * 8 * KSTRIDE + k;
            uint32_t b0 = *(const uint32_t *)w, b1 = *(const uint32_t *)(w + 8);
            mma_16816_full(acc[n], a0, a1, a2, a3, b0, b1);
        }
    }
}

/* The warp's 16 x BN results, rows below M: BF16 into Y, or fp32 into the
 * split's partial [M][N]. */
template <int BN>
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

/* SwiGLU's epilogue: the warp's 16 rows of h = SiLU(gate) . up into Y
 * [M][N / 2].  The tile's first BN / 2 columns are gate's and its last
 * up's, of the same outputs (W's rows interleaved so), so a lane holds
 * both factors of each output it writes.  As the GEMM's BF16 output and
 * ssfk_silu_mul would, gate and up are rounded to BF16 first. */
template <int BN>
__device__ static void store_swiglu(const float (&acc)[BN / 8][4], bf16 *Y, int row0, int M, int N,
                                    int n0)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4, half = BN / 16;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int row = row0 + g + 8 * h;
        if (row >= M) continue;
#pragma unroll
        for (int n = 0; n < half; n++) {
            const float *gate = acc[n], *up = acc[n + half];
            float lo = __bfloat162float(silu_times(round_bf16(gate[2 * h]), round_bf16(up[2 * h])));
            float hi = __bfloat162float(
                silu_times(round_bf16(gate[2 * h + 1]), round_bf16(up[2 * h + 1])));
            size_t at = (size_t)row * (N / 2) + n0 / 2 + n * 8 + 2 * t;
            *(uint32_t *)(Y + at) = pack_bf16(lo, hi);
        }
    }
}

/* The tile's splits summed in split order (the same bits every launch),
 * into Y as BF16; partials read from L2, past this SM's L1, four splits'
 * reads in flight at once. */
template <int BN>
__device__ static void sum_splits(const float *part, bf16 *Y, int splits, int M, int N, int n0)
{
    size_t split_stride = (size_t)M * N;
    for (int i = threadIdx.x; i < M * BN / 2; i += SSF_PGEMM_THREADS) {
        size_t at = (size_t)(i / (BN / 2)) * N + n0 + 2 * (i % (BN / 2));
        float2 s = make_float2(0.0f, 0.0f);
#pragma unroll 4
        for (int sp = 0; sp < splits; sp++) {
            float2 v = __ldcg((const float2 *)(part + sp * split_stride + at));
            s.x += v.x, s.y += v.y;
        }
        *(uint32_t *)(Y + at) = pack_bf16(s.x, s.y);
    }
}

/* One CTA per (column tile of BN, K chunk): grid (tiles, splits).  The
 * ring's copies are one commit group a slice: W's first `stages` slices,
 * then X's, then one a slice consumed (empty once none is left to queue),
 * so that slice i's W and X have landed when at most stages - 1 groups are
 * in flight.  Bound to SSF_PGEMM_SM_CTAS(BN) CTAs an SM, which the plan
 * counts on. */
template <int BN, bool SWIGLU>
__global__ static void __launch_bounds__(SSF_PGEMM_THREADS, SSF_PGEMM_SM_CTAS(BN))
    pgemm_kernel(const bf16 *X, const bf16 *W, bf16 *Y, float *part, int *count, int M, int N,
                 int K, int chunk, int stages)
{
    extern __shared__ __align__(16) char smem[];
    int n0 = blockIdx.x * BN, k0 = blockIdx.y * chunk, slices = chunk / KS;
    const bf16 *w_tile = W + (size_t)n0 * K;
    /* no kernel writes the weights: they land while the one before drains */
    for (int i = 0; i < stages; i++) {
        if (i < slices) queue_rows(ring_slot<BN>(smem, i).w, w_tile + k0 + i * KS, K, BN, BN);
        cp_async_commit();
    }
    grid_dep_enter();
    for (int i = 0; i < stages; i++) {
        if (i < slices) queue_rows(ring_slot<BN>(smem, i).x, X + k0 + i * KS, K, MR, M);
        cp_async_commit();
    }
    int row0 = threadIdx.x / WARP * 16, splits = gridDim.y;
    float acc[BN / 8][4] = {};
    for (int i = 0; i < slices; i++) {
        slot s = ring_slot<BN>(smem, i % stages);
        cp_async_wait_upto(stages - 1);
        __syncthreads();
        if (row0 < M) multiply<BN>(acc, s.x + row0 * KSTRIDE, s.w);
        int next = i + stages;
        if (next < slices) {
            __syncthreads(); /* every warp is done with the slot */
            queue_slice<BN>(s, w_tile, X, M, K, k0 + next * KS);
        }
        cp_async_commit();
    }
    if (SWIGLU) { /* the plan gives it no splits */
        store_swiglu<BN>(acc, Y, row0, M, N, n0);
        return;
    }
    float *mine = splits > 1 ? part + (size_t)blockIdx.y * M * N : NULL;
    store_warp<BN>(acc, Y, mine, row0, M, N, n0);
    if (splits > 1 && last_of_tile(count + blockIdx.x, splits))
        sum_splits<BN>(part, Y, splits, M, N, n0);
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
    if (e == cudaSuccess) e = allow_smem(pgemm_kernel<SSF_PGEMM_BN, false>, (size_t)cta);
    if (e == cudaSuccess) e = allow_smem(pgemm_kernel<SSF_PGEMM_BN, true>, (size_t)cta);
    if (e == cudaSuccess) e = allow_smem(pgemm_kernel<SSF_PGEMM_BN_WIDE, false>, (size_t)cta);
    if (e == cudaSuccess) e = allow_smem(pgemm_kernel<SSF_PGEMM_BN_WIDE, true>, (size_t)cta);
    dev->sms = sms, dev->cta_smem = (size_t)cta, dev->sm_smem = (size_t)sm;
    return e;
}

int ssfk_pgemm_plan(const ssfk_pgemm_device *dev, int N, int K, int swiglu, ssf_pgemm_shape *sh)
{
    return ssf_pgemm_plan(N, K, swiglu, dev->sms, dev->cta_smem, dev->sm_smem, sh);
}

typedef void (*pgemm_fn)(const bf16 *, const bf16 *, bf16 *, float *, int *, int, int, int, int,
                         int);

/* The kernel build for a shape's tile width and epilogue; NULL for none. */
static pgemm_fn pgemm_build(const ssf_pgemm_shape *sh)
{
    if (sh->bn == SSF_PGEMM_BN)
        return sh->swiglu ? pgemm_kernel<SSF_PGEMM_BN, true> : pgemm_kernel<SSF_PGEMM_BN, false>;
    if (sh->bn == SSF_PGEMM_BN_WIDE)
        return sh->swiglu ? pgemm_kernel<SSF_PGEMM_BN_WIDE, true>
                          : pgemm_kernel<SSF_PGEMM_BN_WIDE, false>;
    return NULL;
}

cudaError_t ssfk_pgemm(const ssf_pgemm_shape *sh, const bf16 *X, const bf16 *W, bf16 *Y,
                       float *part, int *count, int M, int N, int K, cudaStream_t st)
{
    pgemm_fn kernel = pgemm_build(sh);
    if (!kernel || M < 1 || M > MR || N != sh->tiles * sh->bn || K != sh->splits * sh->chunk ||
        sh->chunk % KS || sh->stages < 1 || sh->stages > SSF_PGEMM_MAX_STAGES ||
        sh->stages > sh->chunk / KS || sh->smem != ssf_pgemm_smem(sh->bn, sh->stages) ||
        (sh->swiglu && sh->splits != 1) || (sh->splits > 1 && (!part || !count)))
        return cudaErrorInvalidValue;
    return launch_pdl(kernel, dim3(sh->tiles, sh->splits), SSF_PGEMM_THREADS, sh->smem, st, X, W, Y,
                      part, count, M, N, K, sh->chunk, sh->stages);
}
