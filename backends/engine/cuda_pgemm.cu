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
#define SS_GROUP SSF_PGEMM_BN /* columns a FUSE_RES sum of squares covers */

static_assert(PG_WARPS * 16 == MR, "a warp a 16-row block of X");
static_assert(SSF_PGEMM_BN % 8 == 0 && SSF_PGEMM_BN_WIDE % 8 == 0 && KS % 16 == 0,
              "columns in MMA slices of 8, K in steps of 16");
static_assert(SSF_PGEMM_MAX_STAGES == 8, "cp_async_wait_upto's cases");

/* What a build fuses of the RMSNorms around it (ssfk_pgemm_fuse). */
enum { FUSE_NONE, FUSE_NORM, FUSE_RES };

/* One slot of the ring: a slice's BN rows of W, then X's MR rows, then
 * (FUSE_NORM) the slice's gains of the norm. */
struct slot {
    bf16 *w, *x, *gain;
};

template <int BN> __device__ static slot ring_slot(char *smem, int i)
{
    slot s;
    s.w = (bf16 *)(smem + (size_t)i * SSF_PGEMM_SLOT_BYTES(BN));
    s.x = s.w + BN * KSTRIDE;
    s.gain = s.x + MR * KSTRIDE;
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

/* The slot's slice k of X's M rows (and of the norm's gains, when not
 * NULL). */
__device__ static void queue_x(slot s, const bf16 *X, const bf16 *gain, int M, int K, int k)
{
    queue_rows(s.x, X + k, K, MR, M);
    if (gain) queue_rows(s.gain, gain + k, 0, 1, 1);
}

/* The slot's slice k of W's tile, of X's M rows and of the gains. */
template <int BN>
__device__ static void queue_slice(slot s, const bf16 *w_tile, const bf16 *X, const bf16 *gain,
                                   int M, int K, int k)
{
    queue_rows(s.w, w_tile + k, K, BN, BN);
    queue_x(s, X, gain, M, K, k);
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

/* Two elements of a residual row, normalised as ssfk_rmsnorm writes them:
 * bf16(gain . bf16(x r)). */
__device__ static uint32_t normed(uint32_t x2, float r, uint32_t gain2)
{
    float2 x = __bfloat1622float2(*(const __nv_bfloat162 *)&x2);
    float2 g = __bfloat1622float2(*(const __nv_bfloat162 *)&gain2);
    return pack_bf16(rms_scaled(x.x, r, g.x), rms_scaled(x.y, r, g.y));
}

/* A row's 1 / rms from its groups' sums of squares (the GEMM before's
 * FUSE_RES epilogue), summed in group order: 0 for rows past M, whose X is
 * zeros. */
__device__ static float row_rstd(const float *ss, int row, int M, int K, float eps)
{
    if (row >= M) return 0.0f;
    float sum = 0.0f;
    for (int j = 0; j < K / KS; j++)
        sum += __ldcg(ss + (size_t)j * MR + row);
    return rms_rstd(sum, K, eps);
}

/* acc += X's 16 rows at xs . W's BN rows at ws ^T over a slice: A
 * fragments from X, B fragments straight from W's rows (a column of W^T
 * is a row of W); rows KSTRIDE apart, so the 32 lanes' 4-byte reads fall
 * in 32 banks.  NORM: X is the residual stream, each A fragment
 * normalised as it is read, by its rows' r (r_lo: row g, r_hi: g + 8) and
 * the slice's gains. */
template <int BN, bool NORM>
__device__ static void multiply(float (&acc)[BN / 8][4], const bf16 *xs, const bf16 *ws,
                                const bf16 *gains, float r_lo, float r_hi)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
    const bf16 *x0 = xs + g * KSTRIDE + 2 * t, *x8 = x0 + 8 * KSTRIDE;
    const bf16 *w0 = ws + g * KSTRIDE + 2 * t;
#pragma unroll
    for (int k = 0; k < KS; k += 16) {
        uint32_t a0 = *(const uint32_t *)(x0 + k), a1 = *(const uint32_t *)(x8 + k);
        uint32_t a2 = *(const uint32_t *)(x0 + k + 8), a3 = *(const uint32_t *)(x8 + k + 8);
        if (NORM) {
            uint32_t g0 = *(const uint32_t *)(gains + k + 2 * t);
            uint32_t g8 = *(const uint32_t *)(gains + k + 8 + 2 * t);
            a0 = normed(a0, r_lo, g0), a1 = normed(a1, r_hi, g0);
            a2 = normed(a2, r_lo, g8), a3 = normed(a3, r_hi, g8);
        }
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

/* FUSE_RES: two sums y added to the residual stream at x2, x = bf16(x +
 * bf16(y)) as ssfk_rmsnorm's add; returns the new values' sum of squares. */
__device__ static float add_residual(uint32_t *x2, float y_lo, float y_hi)
{
    float2 x = __bfloat1622float2(*(const __nv_bfloat162 *)x2);
    float lo = residual_add(x.x, round_bf16(y_lo)), hi = residual_add(x.y, round_bf16(y_hi));
    *x2 = pack_bf16(lo, hi);
    return lo * lo + hi * hi;
}

/* FUSE_RES without splits: the warp's 16 rows added to the residual
 * stream, and each SS_GROUP columns' sum of squares of the new rows into
 * res_ss [N / SS_GROUP][MR]: a lane sums its own columns in order, then
 * the row's 4 lanes a fixed tree (the same bits every launch). */
template <int BN>
__device__ static void store_res(const float (&acc)[BN / 8][4], const ssfk_pgemm_fuse &fz, int row0,
                                 int M, int N, int n0)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int row = row0 + g + 8 * h;
#pragma unroll
        for (int grp = 0; grp < BN / SS_GROUP; grp++) {
            float ss = 0.0f;
#pragma unroll
            for (int n = grp * SS_GROUP / 8; n < (grp + 1) * SS_GROUP / 8 && row < M; n++) {
                uint32_t *x2 = (uint32_t *)(fz.res + (size_t)row * N + n0 + n * 8 + 2 * t);
                ss += add_residual(x2, acc[n][2 * h], acc[n][2 * h + 1]);
            }
            ss += __shfl_xor_sync(0xffffffffu, ss, 1); /* every lane: rows past M too */
            ss += __shfl_xor_sync(0xffffffffu, ss, 2);
            if (row < M && t == 0) fz.res_ss[(size_t)(n0 / SS_GROUP + grp) * MR + row] = ss;
        }
    }
}

/* The tile's splits summed in split order (the same bits every launch),
 * into Y as BF16, or (RES) added to the residual stream with each
 * SS_GROUP columns' sum of squares: a warp's 32 pairs are one row's
 * group, summed a fixed tree.  Partials read from L2, past this SM's L1,
 * four splits' reads in flight at once. */
template <int BN, bool RES>
__device__ static void sum_splits(const float *part, bf16 *Y, const ssfk_pgemm_fuse &fz, int splits,
                                  int M, int N, int n0)
{
    static_assert(BN / 2 % WARP == 0 && SS_GROUP / 2 == WARP, "a warp a row's group");
    size_t split_stride = (size_t)M * N;
    for (int i = threadIdx.x; i < M * BN / 2; i += SSF_PGEMM_THREADS) {
        int row = i / (BN / 2), pair = i % (BN / 2);
        size_t at = (size_t)row * N + n0 + 2 * pair;
        float2 s = make_float2(0.0f, 0.0f);
#pragma unroll 4
        for (int sp = 0; sp < splits; sp++) {
            float2 v = __ldcg((const float2 *)(part + sp * split_stride + at));
            s.x += v.x, s.y += v.y;
        }
        if (!RES) {
            *(uint32_t *)(Y + at) = pack_bf16(s.x, s.y);
            continue;
        }
        float ss = add_residual((uint32_t *)(fz.res + at), s.x, s.y);
        for (int o = WARP / 2; o > 0; o /= 2)
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (threadIdx.x % WARP == 0)
            fz.res_ss[(size_t)(n0 / SS_GROUP + pair / WARP) * MR + row] = ss;
    }
}

/* One CTA per (column tile of BN, K chunk): grid (tiles, splits).  The
 * ring's copies are one commit group a slice: W's first `stages` slices,
 * then X's, then one a slice consumed (empty once none is left to queue),
 * so that slice i's W and X have landed when at most stages - 1 groups are
 * in flight.  Bound to SSF_PGEMM_SM_CTAS(BN) CTAs an SM, which the plan
 * counts on. */
template <int BN, bool SWIGLU, int FUSE>
__global__ static void __launch_bounds__(SSF_PGEMM_THREADS, SSF_PGEMM_SM_CTAS(BN))
    pgemm_kernel(const bf16 *X, const bf16 *W, bf16 *Y, float *part, int *count, int M, int N,
                 int K, int chunk, int stages, ssfk_pgemm_fuse fz)
{
    constexpr bool NORM = FUSE == FUSE_NORM, RES = FUSE == FUSE_RES;
    static_assert(!(SWIGLU && RES), "SwiGLU's h is not the residual stream's");
    extern __shared__ __align__(16) char smem[];
    int n0 = blockIdx.x * BN, k0 = blockIdx.y * chunk, slices = chunk / KS;
    const bf16 *w_tile = W + (size_t)n0 * K, *gain = NORM ? fz.gain : NULL;
    /* no kernel writes the weights: they land while the one before drains */
    for (int i = 0; i < stages; i++) {
        if (i < slices) queue_rows(ring_slot<BN>(smem, i).w, w_tile + k0 + i * KS, K, BN, BN);
        cp_async_commit();
    }
    grid_dep_enter();
    for (int i = 0; i < stages; i++) {
        if (i < slices) queue_x(ring_slot<BN>(smem, i), X, gain, M, K, k0 + i * KS);
        cp_async_commit();
    }
    int row0 = threadIdx.x / WARP * 16, splits = gridDim.y, g = threadIdx.x % WARP / 4;
    /* NORM: the rows' 1 / rms, read while X's first slices land */
    float r_lo = NORM ? row_rstd(fz.norm_ss, row0 + g, M, K, fz.eps) : 0.0f;
    float r_hi = NORM ? row_rstd(fz.norm_ss, row0 + g + 8, M, K, fz.eps) : 0.0f;
    float acc[BN / 8][4] = {};
    for (int i = 0; i < slices; i++) {
        slot s = ring_slot<BN>(smem, i % stages);
        cp_async_wait_upto(stages - 1);
        __syncthreads();
        if (row0 < M) multiply<BN, NORM>(acc, s.x + row0 * KSTRIDE, s.w, s.gain, r_lo, r_hi);
        int next = i + stages;
        if (next < slices) {
            __syncthreads(); /* every warp is done with the slot */
            queue_slice<BN>(s, w_tile, X, gain, M, K, k0 + next * KS);
        }
        cp_async_commit();
    }
    if (SWIGLU) { /* the plan gives it no splits */
        store_swiglu<BN>(acc, Y, row0, M, N, n0);
        return;
    }
    float *mine = splits > 1 ? part + (size_t)blockIdx.y * M * N : NULL;
    if (RES && !mine) {
        store_res<BN>(acc, fz, row0, M, N, n0);
        return;
    }
    store_warp<BN>(acc, Y, mine, row0, M, N, n0);
    if (splits > 1 && last_of_tile(count + blockIdx.x, splits))
        sum_splits<BN, RES>(part, Y, fz, splits, M, N, n0);
}

/* Every build ssfk_pgemm launches, by tile width. */
#define PGEMM_BUILDS(BN)                                                                           \
    pgemm_kernel<BN, false, FUSE_NONE>, pgemm_kernel<BN, true, FUSE_NONE>,                         \
        pgemm_kernel<BN, false, FUSE_NORM>, pgemm_kernel<BN, true, FUSE_NORM>,                     \
        pgemm_kernel<BN, false, FUSE_RES>

typedef void (*pgemm_fn)(const bf16 *, const bf16 *, bf16 *, float *, int *, int, int, int, int,
                         int, ssfk_pgemm_fuse);

static const pgemm_fn pgemm_builds[2][5] = {{PGEMM_BUILDS(SSF_PGEMM_BN)},
                                            {PGEMM_BUILDS(SSF_PGEMM_BN_WIDE)}};

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
    for (int w = 0; w < 2; w++)
        for (int b = 0; e == cudaSuccess && b < 5; b++)
            e = allow_smem(pgemm_builds[w][b], (size_t)cta);
    dev->sms = sms, dev->cta_smem = (size_t)cta, dev->sm_smem = (size_t)sm;
    return e;
}

int ssfk_pgemm_plan(const ssfk_pgemm_device *dev, int N, int K, int swiglu, ssf_pgemm_shape *sh)
{
    return ssf_pgemm_plan(N, K, swiglu, dev->sms, dev->cta_smem, dev->sm_smem, sh);
}

/* What fz asks to fuse: FUSE_NONE, FUSE_NORM (norm_ss and gain), FUSE_RES
 * (res and res_ss, no SwiGLU), or -1 for a mix. */
static int fuse_kind(const ssfk_pgemm_fuse *fz, int swiglu)
{
    if (!fz || (!fz->norm_ss && !fz->gain && !fz->res && !fz->res_ss)) return FUSE_NONE;
    if (fz->norm_ss && fz->gain && !fz->res && !fz->res_ss) return FUSE_NORM;
    if (fz->res && fz->res_ss && !fz->norm_ss && !fz->gain && !swiglu) return FUSE_RES;
    return -1;
}

/* The kernel build for a shape's tile width, epilogue and fusion; NULL for
 * none. */
static pgemm_fn pgemm_build(const ssf_pgemm_shape *sh, int fuse)
{
    int w = sh->bn == SSF_PGEMM_BN ? 0 : sh->bn == SSF_PGEMM_BN_WIDE ? 1 : -1;
    if (w < 0 || fuse < 0) return NULL;
    return pgemm_builds[w][fuse == FUSE_RES ? 4 : 2 * (fuse == FUSE_NORM) + (sh->swiglu != 0)];
}

cudaError_t ssfk_pgemm(const ssf_pgemm_shape *sh, const bf16 *X, const bf16 *W, bf16 *Y,
                       float *part, int *count, int M, int N, int K, const ssfk_pgemm_fuse *fuse,
                       cudaStream_t st)
{
    int kind = fuse_kind(fuse, sh->swiglu);
    pgemm_fn kernel = pgemm_build(sh, kind);
    if (!kernel || M < 1 || M > MR || N != sh->tiles * sh->bn || K != sh->splits * sh->chunk ||
        sh->chunk % KS || sh->stages < 1 || sh->stages > SSF_PGEMM_MAX_STAGES ||
        sh->stages > sh->chunk / KS || sh->smem != ssf_pgemm_smem(sh->bn, sh->stages) ||
        (sh->swiglu && sh->splits != 1) || (sh->splits > 1 && (!part || !count)) ||
        (kind != FUSE_RES && !Y))
        return cudaErrorInvalidValue;
    ssfk_pgemm_fuse none = {NULL, NULL, 0.0f, NULL, NULL};
    return launch_pdl(kernel, dim3(sh->tiles, sh->splits), SSF_PGEMM_THREADS, sh->smem, st, X, W, Y,
                      part, count, M, N, K, sh->chunk, sh->stages, fuse ? *fuse : none);
}
