/*
 * cuda_prefill.cu - the CUDA device's prefill attention, flash style, over
 * the paged BF16 pool (see ssfk_prefill_attention in cuda_kernels.cuh; the
 * q-blocks come from ssf_prefill_split in cuda_plan.c).
 *
 * The decode kernel serves one row per CTA and reads every position of the
 * row's context: a prompt of n rows makes it read n^2/2 positions, which a
 * recompute after preemption (thousands of rows) turns into seconds.  Here
 * a CTA holds SSF_PREFILL_QB consecutive rows of one sequence for one query
 * head, and its four warps (16 rows each) share every SSF_PREFILL_KT
 * positions of K and V that the whole CTA loads into shared memory: the
 * context is read once per q-block.  The arithmetic is the decode
 * kernel's: scores, softmax and output in fp32 on the tensor cores, the
 * weights rounded to BF16 for the P.V MMA, the softmax on exp2; an fp8
 * pool's rows are widened to BF16 in shared memory and their scales folded
 * into the scores and the weights, as there.
 */
#include <math.h>

#include <cuda_fp8.h>

#include "cuda_common.cuh"
#include "cuda_kernels.cuh"
#include "cuda_mma.cuh"

#define QB SSF_PREFILL_QB
#define KT SSF_PREFILL_KT
#define PREFILL_WARPS (SSF_PREFILL_THREADS / WARP)
#define KV_ROW(HD) ((HD) + SSF_ATTN_KV_PAD) /* a padded K or V row in shared memory, in bf16 */

static_assert(QB == 16 * PREFILL_WARPS, "each warp holds one MMA's 16 query rows");
static_assert(KT % 16 == 0 && KT <= SSF_PREFILL_THREADS, "a thread finds each row's offset");
static_assert(2 * KT == SSF_PREFILL_THREADS, "a thread copies each K and V row's fp8 scale");

/* Shared memory.  BF16: two stages, each KT K rows then KT V rows (padded
 * as in the decode kernel, so that MMA fragment reads and ldmatrix rows hit
 * 32 distinct banks).  FP8: one such BF16 stage, which each tile's rows are
 * widened into for the MMAs, then two stages of the raw e4m3 rows and two
 * of their scales (K then V).  Then each stage's pool offsets of its KT
 * rows. */
template <int HD, bool FP8> struct prefill_smem {
    static constexpr size_t STAGE = (size_t)2 * KT * KV_ROW(HD) * sizeof(bf16);
    static constexpr size_t RAW = (size_t)2 * KT * HD;
    static constexpr size_t SCALES = (size_t)2 * KT * sizeof(float);
    static constexpr size_t OFFSETS = FP8 ? STAGE + 2 * (RAW + SCALES) : 2 * STAGE;
    static constexpr size_t BYTES = OFFSETS + 2 * KT * sizeof(size_t);
};

/* The BF16 K rows the MMAs read for tile `stage` (V rows follow). */
template <int HD, bool FP8> __device__ static bf16 *stage_rows(char *smem, int stage)
{
    return (bf16 *)(FP8 ? smem : smem + stage * prefill_smem<HD, FP8>::STAGE);
}

template <int HD> __device__ static uint8_t *raw_rows(char *smem, int stage)
{
    return (uint8_t *)smem + prefill_smem<HD, true>::STAGE + stage * prefill_smem<HD, true>::RAW;
}

template <int HD> __device__ static float *raw_scales(char *smem, int stage)
{
    char *at = smem + prefill_smem<HD, true>::STAGE + 2 * prefill_smem<HD, true>::RAW;
    return (float *)at + stage * 2 * KT;
}

template <int HD, bool FP8> __device__ static size_t *stage_offsets(char *smem, int stage)
{
    return (size_t *)(smem + prefill_smem<HD, FP8>::OFFSETS) + stage * KT;
}

/* The q-block's geometry: rows row0 .. row0 + n - 1 at positions p0 ..,
 * keys 0 .. hi - 1 (hi = p0 + n: the last row's context). */
typedef struct qblock {
    int row0, n, p0, hi, kvh;
    const int32_t *table;
} qblock;

/* Threads 0 .. KT - 1 put the pool offsets (elements, KV head included) of
 * the K rows of positions kt0 .. kt0 + KT - 1 below hi in the stage's
 * table; the table ends at the last row's block, so rows past hi get none. */
template <int HD, bool FP8>
__device__ static void tile_offsets(char *smem, int stage, const ssfk_attn_io &io, const qblock &q,
                                    int kt0)
{
    int j = threadIdx.x;
    if (j >= KT) return;
    size_t off = 0;
    if (kt0 + j < q.hi)
        off = (size_t)q.kvh * io.kv.head_stride + kv_pos(io.kv, q.table, io.layer, kt0 + j);
    stage_offsets<HD, FP8>(smem, stage)[j] = off;
}

/* Every thread queues its share of the tile's K and V rows (16 bytes a
 * copy; zeros past hi), after tile_offsets and a barrier; fp8 rows go to
 * the raw stage and bring their scales. */
template <int HD, bool FP8>
__device__ static void load_tile(char *smem, int stage, const ssfk_attn_io &io, const qblock &q,
                                 int kt0)
{
    constexpr int ELEM = FP8 ? 1 : 2, CH = HD * ELEM / 16; /* 16-byte pieces a row */
    constexpr int ROW = FP8 ? HD : KV_ROW(HD) * 2;         /* a row in shared memory, bytes */
    const size_t *off = stage_offsets<HD, FP8>(smem, stage);
    char *ks = FP8 ? (char *)raw_rows<HD>(smem, stage) : (char *)stage_rows<HD, FP8>(smem, stage);
    char *vs = ks + KT * ROW;
    const char *pool = (const char *)io.pool;
    for (int c = threadIdx.x; c < KT * CH; c += SSF_PREFILL_THREADS) {
        int j = c / CH, e = (c % CH) * 16;
        bool in = kt0 + j < q.hi;
        size_t at = in ? off[j] * ELEM + e : 0;
        cp_async16(ks + j * ROW + e, pool + at, in ? 16 : 0);
        cp_async16(vs + j * ROW + e, pool + (in ? at + io.kv.v_offset * ELEM : 0), in ? 16 : 0);
    }
    if (!FP8) return;
    /* threads 0 .. KT - 1: the K rows' scales, KT .. 2 KT - 1: the V rows' */
    int j = threadIdx.x % KT, sel = threadIdx.x / KT;
    bool in = kt0 + j < q.hi;
    size_t row = in ? off[j] + sel * io.kv.v_offset : 0;
    cp_async4(raw_scales<HD>(smem, stage) + threadIdx.x, io.kv.scales + row / HD, in ? 4 : 0);
}

/* The stage's e4m3 K and V rows widened into the BF16 rows the MMAs read
 * (exactly: e4m3 fits in half, half in fp32, and 3 mantissa bits in BF16's
 * 7); their scales stay apart, for the scores and the weights. */
template <int HD> __device__ static void widen_tile(char *smem, int stage)
{
    constexpr int CH = HD / 16;
    const uint8_t *raw = raw_rows<HD>(smem, stage);
    bf16 *wide = stage_rows<HD, true>(smem, stage);
    for (int c = threadIdx.x; c < 2 * KT * CH; c += SSF_PREFILL_THREADS) {
        int j = c / CH, e = (c % CH) * 16;
        uint4 in = *(const uint4 *)(raw + j * HD + e);
        const __nv_fp8x2_storage_t *pairs = (const __nv_fp8x2_storage_t *)&in;
        uint32_t o[8];
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float2 f = __half22float2(__nv_cvt_fp8x2_to_halfraw2(pairs[i], __NV_E4M3));
            o[i] = pack_bf16(f.x, f.y);
        }
        uint4 *dst = (uint4 *)(wide + j * KV_ROW(HD) + e);
        dst[0] = make_uint4(o[0], o[1], o[2], o[3]);
        dst[1] = make_uint4(o[4], o[5], o[6], o[7]);
    }
}

/* A warp's 16 query rows: the a fragments of q (zero for rows past the
 * q-block), the running max and sum of rows g and g + 8 (log2 units), and
 * their unnormalised output, o[n][0..1] row g and o[n][2..3] row g + 8 at
 * columns 8 n + 2 t, + 1. */
template <int HD> struct warp_rows {
    uint32_t qa[HD / 16][4];
    float m[2], l[2];
    float o[HD / 8][4];
};

template <int HD>
__device__ static void load_rows(warp_rows<HD> &w, const ssfk_attn_io &io, const qblock &q,
                                 int first)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4, width = io.n_heads + 2 * io.n_kv_heads;
    int h = blockIdx.x;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int i = first + g + 8 * half; /* the row within the q-block */
        const bf16 *qrow = io.qkv + ((size_t)(q.row0 + i) * width + h) * HD + 2 * t;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            w.qa[kk][half] = i < q.n ? *(const uint32_t *)(qrow + kk * 16) : 0u;
            w.qa[kk][2 + half] = i < q.n ? *(const uint32_t *)(qrow + kk * 16 + 8) : 0u;
        }
        w.m[half] = -INFINITY, w.l[half] = 0.0f;
    }
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        w.o[n][0] = w.o[n][1] = w.o[n][2] = w.o[n][3] = 0.0f;
}

/* S = Q K^T for the tile's KT positions, scaled to log2 units (and by the
 * fp8 K rows' scales ksc, when not NULL); -inf where the key is past the
 * row's own position (causal) or past hi.  s[nb][0..1]: row g at positions
 * kt0 + 8 nb + 2t, + 1; s[nb][2..3]: row g + 8. */
template <int HD>
__device__ static void score_rows(const warp_rows<HD> &w, const bf16 *ks, const float *ksc,
                                  const qblock &q, int first, int kt0, float scale_log2,
                                  float s[KT / 8][4])
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
#pragma unroll
    for (int nb = 0; nb < KT / 8; nb++) {
        s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
        const bf16 *krow = ks + (nb * 8 + g) * KV_ROW(HD) + 2 * t;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t b0 = *(const uint32_t *)(krow + kk * 16);
            uint32_t b1 = *(const uint32_t *)(krow + kk * 16 + 8);
            mma_16816_full(s[nb], w.qa[kk][0], w.qa[kk][1], w.qa[kk][2], w.qa[kk][3], b0, b1);
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int j = nb * 8 + 2 * t + (e & 1), key = kt0 + j;
            int last = min(q.p0 + first + g + 8 * (e >> 1), q.hi - 1);
            float f = ksc ? scale_log2 * ksc[j] : scale_log2;
            s[nb][e] = key <= last ? s[nb][e] * f : -INFINITY;
        }
    }
}

/* Online softmax of rows g and g + 8 over the tile: folds the scores into
 * (m, l), rescales o, and leaves the weights in s.  The 4 lanes of a row
 * reduce through shuffles. */
template <int HD> __device__ static void softmax_rows(warp_rows<HD> &w, float s[KT / 8][4])
{
#pragma unroll
    for (int half = 0; half < 2; half++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < KT / 8; nb++)
            mx = fmaxf(mx, fmaxf(s[nb][2 * half], s[nb][2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float m_new = fmaxf(w.m[half], mx);
        float base = m_new == -INFINITY ? 0.0f : m_new; /* nothing seen yet: no NaN */
        float alpha = exp2f(w.m[half] - base), sum = 0.0f;
#pragma unroll
        for (int nb = 0; nb < KT / 8; nb++) {
            s[nb][2 * half] = exp2f(s[nb][2 * half] - base);
            s[nb][2 * half + 1] = exp2f(s[nb][2 * half + 1] - base);
            sum += s[nb][2 * half] + s[nb][2 * half + 1];
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        w.l[half] = w.l[half] * alpha + sum;
        w.m[half] = m_new;
#pragma unroll
        for (int n = 0; n < HD / 8; n++)
            w.o[n][2 * half] *= alpha, w.o[n][2 * half + 1] *= alpha;
    }
}

/* o += P V over the tile: the weights' C fragments of positions 16 kk ..
 * 16 kk + 15 (times the fp8 V rows' scales vsc, when not NULL) are the a
 * fragment of P (as BF16), V's b fragments come transposed out of shared
 * memory, two 8-column slices per ldmatrix. */
template <int HD>
__device__ static void accumulate_rows(warp_rows<HD> &w, float s[KT / 8][4], const bf16 *vs,
                                       const float *vsc)
{
    int lane = threadIdx.x % WARP, mi = lane / 8, t = lane % 4;
    if (vsc) {
#pragma unroll
        for (int nb = 0; nb < KT / 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[nb][e] *= vsc[nb * 8 + 2 * t + (e & 1)];
    }
#pragma unroll
    for (int kk = 0; kk < KT / 16; kk++) {
        uint32_t a0 = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
        uint32_t a1 = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
        uint32_t a2 = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        uint32_t a3 = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        const bf16 *row = vs + (16 * kk + lane % 8 + 8 * (mi & 1)) * KV_ROW(HD) + 8 * (mi >> 1);
#pragma unroll
        for (int d = 0; d < HD / 16; d++) {
            uint32_t b[4];
            ldmatrix_x4_trans(b, row + d * 16);
            mma_16816_full(w.o[2 * d], a0, a1, a2, a3, b[0], b[1]);
            mma_16816_full(w.o[2 * d + 1], a0, a1, a2, a3, b[2], b[3]);
        }
    }
}

/* Rows g and g + 8 of the warp, normalised, where they are in the q-block. */
template <int HD>
__device__ static void store_rows(const warp_rows<HD> &w, const ssfk_attn_io &io, const qblock &q,
                                  int first)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4, h = blockIdx.x;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int i = first + g + 8 * half;
        if (i >= q.n) continue;
        bf16 *orow = io.out + ((size_t)(q.row0 + i) * io.n_heads + h) * HD + 2 * t;
        float inv = 1.0f / w.l[half];
#pragma unroll
        for (int n = 0; n < HD / 8; n++)
            *(uint32_t *)(orow + 8 * n) =
                pack_bf16(w.o[n][2 * half] * inv, w.o[n][2 * half + 1] * inv);
    }
}

/*
 * One CTA per (query head, q-block).  The tiles of KT positions from 0 to
 * the last row's position go through two stages: while the warps compute
 * on tile i, tile i + 1 is landing.  Two barriers a tile: one before tile
 * i + 1's copies (its stage's last readers, tile i - 1's, are done, and its
 * row offsets are written), one after tile i has landed; with an fp8 pool
 * a third after the widening, which waits behind the first for tile i - 1's
 * readers of the one BF16 stage.  A warp skips the arithmetic of tiles
 * wholly past its last row's position, and of all tiles when its rows are
 * past the q-block.
 */
template <int HD, bool FP8>
__global__ static void __launch_bounds__(SSF_PREFILL_THREADS)
    prefill_attention_kernel(ssfk_attn_io io, const int32_t *qblocks, float scale_log2)
{
    grid_dep_enter();
    extern __shared__ __align__(16) char smem[];
    /* the last q-blocks first: a run's later rows have the longer contexts,
     * and the longest CTAs should not form the launch's tail */
    int qb = gridDim.y - 1 - blockIdx.y;
    qblock q;
    q.row0 = qblocks[2 * qb], q.n = qblocks[2 * qb + 1];
    q.p0 = io.pos[q.row0], q.hi = q.p0 + q.n;
    q.kvh = blockIdx.x / (io.n_heads / io.n_kv_heads);
    q.table = row_table(io.tb, q.row0);
    int first = threadIdx.x / WARP * 16; /* the warp's first row in the q-block */
    bool active = first < q.n;
    int last_pos = q.p0 + min(first + 15, q.n - 1); /* the warp's last row's position */
    warp_rows<HD> w;
    load_rows<HD>(w, io, q, first);
    int n_tiles = (q.hi + KT - 1) / KT;
    tile_offsets<HD, FP8>(smem, 0, io, q, 0);
    __syncthreads();
    load_tile<HD, FP8>(smem, 0, io, q, 0);
    cp_async_commit();
    for (int i = 0; i < n_tiles; i++) {
        if (i + 1 < n_tiles) tile_offsets<HD, FP8>(smem, (i + 1) & 1, io, q, (i + 1) * KT);
        __syncthreads();
        if (i + 1 < n_tiles) load_tile<HD, FP8>(smem, (i + 1) & 1, io, q, (i + 1) * KT);
        cp_async_commit();
        cp_async_wait<1>(); /* tile i has landed for this thread's copies */
        __syncthreads();    /* and for everyone's */
        const float *ksc = NULL, *vsc = NULL;
        if (FP8) {
            widen_tile<HD>(smem, i & 1);
            ksc = raw_scales<HD>(smem, i & 1), vsc = ksc + KT;
            __syncthreads();
        }
        if (!active || i * KT > last_pos) continue;
        const bf16 *ks = stage_rows<HD, FP8>(smem, i & 1);
        float s[KT / 8][4];
        score_rows<HD>(w, ks, ksc, q, first, i * KT, scale_log2, s);
        softmax_rows<HD>(w, s);
        accumulate_rows<HD>(w, s, ks + KT * KV_ROW(HD), vsc);
    }
    cp_async_wait<0>();
    if (active) store_rows<HD>(w, io, q, first);
}

template <int HD, bool FP8>
static cudaError_t prefill_hd(ssfk_attn_io io, const int32_t *qblocks, int n_qblocks,
                              cudaStream_t st)
{
    /* the heads of a q-block side by side: those of one KV head read the
     * same K and V, which the L2 then serves to all but the first */
    dim3 grid((unsigned)io.n_heads, (unsigned)n_qblocks);
    return launch_pdl(prefill_attention_kernel<HD, FP8>, grid, SSF_PREFILL_THREADS,
                      ssf_prefill_smem(HD, FP8), st, io, qblocks, scale_log2_of(HD));
}

cudaError_t ssfk_prefill_attention(ssfk_attn_io io, const int32_t *qblocks, int n_qblocks,
                                   cudaStream_t st)
{
    if (n_qblocks <= 0) return cudaSuccess;
    ssfk_kv_layout kv = io.kv;
    if (io.n_kv_heads < 1 || io.n_heads % io.n_kv_heads || (kv.fp8 && !kv.scales))
        return cudaErrorInvalidValue;
    if (kv.head_dim == 64)
        return kv.fp8 ? prefill_hd<64, true>(io, qblocks, n_qblocks, st)
                      : prefill_hd<64, false>(io, qblocks, n_qblocks, st);
    if (kv.head_dim == 128)
        return kv.fp8 ? prefill_hd<128, true>(io, qblocks, n_qblocks, st)
                      : prefill_hd<128, false>(io, qblocks, n_qblocks, st);
    return cudaErrorInvalidValue;
}

template <int HD, bool FP8> static cudaError_t allow_prefill_smem(void)
{
    return allow_smem(prefill_attention_kernel<HD, FP8>, ssf_prefill_smem(HD, FP8));
}

cudaError_t ssfk_prefill_init(void)
{
    cudaError_t e = allow_prefill_smem<64, false>();
    if (e == cudaSuccess) e = allow_prefill_smem<128, false>();
    if (e == cudaSuccess) e = allow_prefill_smem<64, true>();
    if (e == cudaSuccess) e = allow_prefill_smem<128, true>();
    return e;
}
