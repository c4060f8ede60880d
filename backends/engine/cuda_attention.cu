/*
 * cuda_attention.cu - the CUDA device's paged decode attention (see
 * ssfk_attention in cuda_kernels.cuh; launch shapes in cuda_plan.c).
 */
#include <math.h>

#include <cuda_fp8.h>

#include "cuda_common.cuh"
#include "cuda_kernels.cuh"
#include "cuda_mma.cuh"

/* ---- paged attention ------------------------------------------------------ */

/* mma_16816_full with rows 8-15 of a zero: a decode CTA computes at most 8
 * query heads, the MMA's rows 0-7. */
__device__ static inline void mma_16816(float c[4], uint32_t a0, uint32_t a2, uint32_t b0,
                                        uint32_t b1)
{
    mma_16816_full(c, a0, 0u, a2, 0u, b0, b1);
}

#define ATTN_WARPS (SSF_ATTN_THREADS / WARP)
#define KV_ROW(HD) ((HD) + SSF_ATTN_KV_PAD) /* a K or V row in shared memory, in bf16 */

static_assert(SSF_ATTN_TILE == 16, "a warp's tile is one k-step of the P.V MMA");
static_assert(SSF_ATTN_MAX_GROUP == 8, "query heads fill the MMA's rows 0-7");

/* A warp's share of shared memory.  BF16: two stages, each the K rows
 * then the V rows of SSF_ATTN_TILE positions.  Rows are 16 bytes apart
 * modulo 128, so the 4-byte K reads of an MMA fragment and the 16-byte rows
 * of ldmatrix both hit 32 distinct banks.  FP8: the K and V rows widened to
 * BF16 (the same layout as one BF16 stage, which the MMAs read), then two
 * stages of raw e4m3 rows, then two stages of their scales (K then V). */
template <int HD> struct warp_smem {
    static constexpr int ROWS = 2 * SSF_ATTN_TILE; /* K then V */
    static constexpr size_t BYTES = 2 * ROWS * KV_ROW(HD) * sizeof(bf16);
    static constexpr size_t WIDE = ROWS * KV_ROW(HD) * sizeof(bf16);
    static constexpr size_t RAW = ROWS * HD; /* one fp8 stage */
};
template <int HD> constexpr bool fp8_fits(void)
{
    return warp_smem<HD>::WIDE + 2 * warp_smem<HD>::RAW + 2 * 2 * SSF_ATTN_TILE * sizeof(float) <=
           warp_smem<HD>::BYTES;
}
static_assert(fp8_fits<64>() && fp8_fits<128>(), "an fp8 warp fits in a BF16 warp's bytes");

template <int HD> __device__ static char *warp_base(char *smem, int warp)
{
    return smem + (size_t)warp * warp_smem<HD>::BYTES;
}

/* The K rows of the stage the MMAs read (V rows follow). */
template <int HD, bool FP8> __device__ static bf16 *mma_rows(char *smem, int warp, int stage)
{
    char *w = warp_base<HD>(smem, warp);
    return (bf16 *)(FP8 ? w : w + stage * warp_smem<HD>::WIDE);
}

template <int HD> __device__ static uint8_t *fp8_rows(char *smem, int warp, int stage)
{
    return (uint8_t *)warp_base<HD>(smem, warp) + warp_smem<HD>::WIDE + stage * warp_smem<HD>::RAW;
}

template <int HD> __device__ static float *fp8_scales(char *smem, int warp, int stage)
{
    return (float *)((char *)fp8_rows<HD>(smem, warp, 2)) + stage * 2 * SSF_ATTN_TILE;
}

/* Queues the K and V rows of positions t0 .. t0 + cnt - 1 (cnt >= 1) of
 * KV head kvh into the warp's stage (zeros for the rest of the tile), 16
 * bytes a copy; fp8 rows bring their scales.  in_block: the tile lies in
 * one block, so its rows follow its first, and one walk of the table
 * serves the tile where the general case divides by the block size and
 * reads the table for every row (most of the kernel's instructions). */
template <int HD, bool FP8>
__device__ static void load_tile(char *smem, int warp, int stage, const void *pool,
                                 ssfk_kv_layout kv, int kvh, const int32_t *table, int layer,
                                 int t0, int cnt, bool in_block)
{
    constexpr int ELEM = FP8 ? 1 : 2, CH = HD * ELEM / 16; /* 16-byte pieces a row */
    constexpr int ROW = FP8 ? HD : KV_ROW(HD) * 2;         /* a row in shared memory, bytes */
    char *ks = FP8 ? (char *)fp8_rows<HD>(smem, warp, stage)
                   : (char *)mma_rows<HD, false>(smem, warp, stage);
    char *vs = ks + SSF_ATTN_TILE * ROW;
    const char *base = (const char *)pool;
    size_t head = (size_t)kvh * kv.head_stride, first = head + kv_pos(kv, table, layer, t0);
    /* the K row of position t0 + j, j < cnt (the table ends at the context) */
    auto row_of = [&](int j) -> size_t {
        return in_block ? first + (size_t)j * HD : head + kv_pos(kv, table, layer, t0 + j);
    };
    int lane = threadIdx.x % WARP;
    for (int c = lane; c < SSF_ATTN_TILE * CH; c += WARP) {
        int j = c / CH, e = (c % CH) * 16;
        size_t at = j < cnt ? row_of(j) * ELEM + e : 0;
        int bytes = j < cnt ? 16 : 0;
        cp_async16(ks + j * ROW + e, base + at, bytes);
        cp_async16(vs + j * ROW + e, base + (j < cnt ? at + kv.v_offset * ELEM : 0), bytes);
    }
    if (!FP8) return;
    /* lanes 0-15: K scales, 16-31: V scales */
    int j = lane % SSF_ATTN_TILE, sel = lane / SSF_ATTN_TILE;
    size_t row = j < cnt ? row_of(j) + sel * kv.v_offset : 0;
    cp_async4(fp8_scales<HD>(smem, warp, stage) + lane, kv.scales + row / HD, j < cnt ? 4 : 0);
}

/* Widens the stage's e4m3 K and V rows to BF16 for the MMAs (exactly:
 * e4m3 fits in half, half in fp32, and 3 mantissa bits in BF16's 7). */
template <int HD> __device__ static void widen_fp8(char *smem, int warp, int stage)
{
    constexpr int CH = HD / 16;
    const uint8_t *raw = fp8_rows<HD>(smem, warp, stage);
    bf16 *wide = mma_rows<HD, true>(smem, warp, stage);
    for (int c = threadIdx.x % WARP; c < 2 * SSF_ATTN_TILE * CH; c += WARP) {
        int j = c / CH, e = (c % CH) * 16;
        uint4 in = *(const uint4 *)(raw + j * HD + e);
        const __nv_fp8x2_storage_t *pairs = (const __nv_fp8x2_storage_t *)&in;
        uint32_t o[8];
#pragma unroll
        for (int i = 0; i < 8; i++) {
            __half2 h = __nv_cvt_fp8x2_to_halfraw2(pairs[i], __NV_E4M3);
            float2 f = __half22float2(h);
            o[i] = pack_bf16(f.x, f.y);
        }
        uint4 *dst = (uint4 *)(wide + j * KV_ROW(HD) + e);
        dst[0] = make_uint4(o[0], o[1], o[2], o[3]);
        dst[1] = make_uint4(o[4], o[5], o[6], o[7]);
    }
}

/* One warp's running attention over the tiles it has seen, for query head
 * g = lane / 4 (the MMA's rows 8-15 are unused): max and sum of the
 * weights, in log2 units, and the unnormalised output columns 8 n + 2 t,
 * + 1 in o[n][0..1]. */
template <int HD> struct warp_acc {
    float m, l;
    float o[HD / 8][4];
};

/* S = Q K^T for the tile's 16 positions: s[n][0..1] are head g's scores at
 * positions 8 n + 2 t, + 1 (scaled to log2 units, -inf past cnt).  ksc:
 * the fp8 rows' scales, or NULL. */
template <int HD>
__device__ static void score_tile(const bf16 *ks, const float *ksc, const uint32_t (*qf)[2],
                                  float s[2][4], int cnt, float scale_log2)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
#pragma unroll
    for (int n = 0; n < 2; n++) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        const bf16 *krow = ks + (n * 8 + g) * KV_ROW(HD) + 2 * t;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t b0 = *(const uint32_t *)(krow + kk * 16);
            uint32_t b1 = *(const uint32_t *)(krow + kk * 16 + 8);
            mma_16816(s[n], qf[kk][0], qf[kk][1], b0, b1);
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int j = n * 8 + 2 * t + i;
            float f = ksc ? scale_log2 * ksc[j] : scale_log2;
            s[n][i] = j < cnt ? s[n][i] * f : -INFINITY;
        }
    }
}

/* Online softmax: folds the tile's scores into (m, l), rescales o, and
 * returns the weights as the P fragment (BF16, as flash attention feeds
 * its P.V MMA), times the fp8 V rows' scales vsc when not NULL.  The 4
 * lanes of a head reduce through shuffles. */
template <int HD>
__device__ static void softmax_tile(warp_acc<HD> &a, float s[2][4], const float *vsc, uint32_t *p0,
                                    uint32_t *p2)
{
    float mx = fmaxf(fmaxf(s[0][0], s[0][1]), fmaxf(s[1][0], s[1][1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    float m_new = fmaxf(a.m, mx);
    float base = m_new == -INFINITY ? 0.0f : m_new; /* nothing seen yet: no NaN */
    float alpha = exp2f(a.m - base);
    float w[4] = {exp2f(s[0][0] - base), exp2f(s[0][1] - base), exp2f(s[1][0] - base),
                  exp2f(s[1][1] - base)};
    float sum = (w[0] + w[1]) + (w[2] + w[3]);
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    a.l = a.l * alpha + sum;
    a.m = m_new;
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        a.o[n][0] *= alpha, a.o[n][1] *= alpha;
    if (vsc) {
        int t = threadIdx.x % 4;
        w[0] *= vsc[2 * t], w[1] *= vsc[2 * t + 1];
        w[2] *= vsc[8 + 2 * t], w[3] *= vsc[8 + 2 * t + 1];
    }
    *p0 = pack_bf16(w[0], w[1]); /* positions 2t, 2t + 1: k 0-7 of the fragment */
    *p2 = pack_bf16(w[2], w[3]); /* positions 8 + 2t, + 1 */
}

/* o += P V over the tile: V's b fragments come transposed out of shared
 * memory, two 8-column slices per ldmatrix. */
template <int HD>
__device__ static void accumulate_tile(warp_acc<HD> &a, const bf16 *vs, uint32_t p0, uint32_t p2)
{
    int lane = threadIdx.x % WARP, mi = lane / 8;
    const bf16 *row = vs + (lane % 8 + 8 * (mi & 1)) * KV_ROW(HD) + 8 * (mi >> 1);
#pragma unroll
    for (int d = 0; d < HD / 16; d++) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, row + d * 16);
        mma_16816(a.o[2 * d], p0, p2, b[0], b[1]);
        mma_16816(a.o[2 * d + 1], p0, p2, b[2], b[3]);
    }
}

/* The q fragments of heads h0 .. h0 + ng - 1 (zero rows past ng). */
template <int HD> __device__ static void load_q(uint32_t (*qf)[2], const bf16 *qrow, int ng)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        const bf16 *q = qrow + g * HD + kk * 16 + 2 * t;
        qf[kk][0] = g < ng ? *(const uint32_t *)q : 0u;
        qf[kk][1] = g < ng ? *(const uint32_t *)(q + 8) : 0u;
    }
}

/* ---- RoPE in the kernel (ssfk_attn_rope) ---- */

/* load_q's fragments with the bias added and RoPE applied, as
 * qkv_rope_store does both (cuda_common.cuh): dims d and d + HD/2 of a head
 * are one lane's, in fragments kk and kk + HD/32, so no lane needs
 * another's.  qrow is the row's q|k|v, cs its angles. */
template <int HD>
__device__ static void load_q_rope(uint32_t (*qf)[2], const bf16 *qrow, const float *bias,
                                   const float2 *cs, int h0, int ng)
{
    int g = threadIdx.x % WARP / 4, t = threadIdx.x % 4, col = (h0 + g) * HD;
#pragma unroll
    for (int kk = 0; kk < HD / 32; kk++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            float2 o[2] = {make_float2(0.0f, 0.0f), make_float2(0.0f, 0.0f)};
#pragma unroll
            for (int e = 0; e < 2 && g < ng; e++) {
                int d = kk * 16 + 8 * j + 2 * t + e;
                float2 angle = cs[d];
                o[e] = rope_pair(biased(qrow, bias, col + d), biased(qrow, bias, col + d + HD / 2),
                                 angle);
            }
            qf[kk][j] = pack_bf16(o[0].x, o[1].x); /* exact: rope_pair rounds to BF16 */
            qf[kk + HD / 32][j] = pack_bf16(o[0].y, o[1].y);
        }
}

/* The row's own position's K and V of KV head kvh (K biased and rotated, V
 * biased, as qkv_rope_store writes them) into the pool at `at`, head 0's K
 * row.  One warp stores both rows, a lane's values at columns lane + 32 i,
 * then waits for its lanes: the warp that stores them is the one that
 * reads them, by cp.async, which the warp barrier orders after the stores. */
template <int HD, bool FP8>
__device__ static void store_own_kv(const ssfk_attn_io &io, const float *bias, const bf16 *qrow,
                                    const float2 *cs, int kvh, size_t at)
{
    constexpr int PER = HD / WARP; /* values a lane, of each row */
    static_assert(PER <= FP8_PER_LANE, "a row fits store_fp8_row");
    int lane = threadIdx.x % WARP, kcol = (io.n_heads + kvh) * HD;
    int vcol = (io.n_heads + io.n_kv_heads + kvh) * HD;
    float k[FP8_PER_LANE] = {0}, v[FP8_PER_LANE] = {0};
    int col[FP8_PER_LANE] = {0};
#pragma unroll
    for (int i = 0; i < PER / 2; i++) { /* pairs (d, d + HD/2): K's columns i and i + PER/2 */
        int d = lane + WARP * i;
        float2 angle = cs[d];
        float2 o =
            rope_pair(biased(qrow, bias, kcol + d), biased(qrow, bias, kcol + d + HD / 2), angle);
        k[i] = o.x, k[i + PER / 2] = o.y;
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        col[i] = lane + WARP * i;
        v[i] = biased(qrow, bias, vcol + col[i]);
    }
    size_t krow = at + (size_t)kvh * io.kv.head_stride, vrow = krow + io.kv.v_offset;
    if (FP8) {
        uint8_t *pool = (uint8_t *)io.pool;
        store_fp8_row(k, col, PER, pool + krow, io.kv.scales + krow / HD);
        store_fp8_row(v, col, PER, pool + vrow, io.kv.scales + vrow / HD);
    } else {
        bf16 *pool = (bf16 *)io.pool;
#pragma unroll
        for (int i = 0; i < PER; i++) {
            pool[krow + col[i]] = __float2bfloat16(k[i]);
            pool[vrow + col[i]] = __float2bfloat16(v[i]);
        }
    }
    __syncwarp();
}

/* The warps' results merged: each warp leaves (m, l) and o in shared
 * memory, free once every warp's last tile is done; then thread i sums
 * element i % HD of head i / HD over the warps with weights 2^(m_w - M).
 * Unsplit, the output row orow is written normalised; split, (acc, M, L)
 * go to `part` at the CTA's row rl for attn_combine_kernel. */
template <int HD>
__device__ static void merge_warps(char *smem, const warp_acc<HD> &a, bf16 *orow, float *part,
                                   int rl, int h0, int ng, int n_heads)
{
    float *ob = (float *)smem;                             /* [warp][8][HD] */
    float *ml = ob + ATTN_WARPS * SSF_ATTN_MAX_GROUP * HD; /* [warp][8][2] */
    int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, g = lane / 4, t = lane % 4;
    float *mine = ob + (warp * SSF_ATTN_MAX_GROUP + g) * HD;
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        mine[8 * n + 2 * t] = a.o[n][0], mine[8 * n + 2 * t + 1] = a.o[n][1];
    if (t == 0) ml[2 * (warp * SSF_ATTN_MAX_GROUP + g)] = a.m;
    if (t == 0) ml[2 * (warp * SSF_ATTN_MAX_GROUP + g) + 1] = a.l;
    __syncthreads();
    size_t n_parts = (size_t)gridDim.x * n_heads * gridDim.z;
    for (int i = threadIdx.x; i < ng * HD; i += SSF_ATTN_THREADS) {
        int h = i / HD, d = i % HD;
        float M = -INFINITY, L = 0.0f, o = 0.0f;
        for (int w = 0; w < ATTN_WARPS; w++)
            M = fmaxf(M, ml[2 * (w * SSF_ATTN_MAX_GROUP + h)]);
        float base = M == -INFINITY ? 0.0f : M;
        for (int w = 0; w < ATTN_WARPS; w++) {
            float f = exp2f(ml[2 * (w * SSF_ATTN_MAX_GROUP + h)] - base);
            L += f * ml[2 * (w * SSF_ATTN_MAX_GROUP + h) + 1];
            o += f * ob[(w * SSF_ATTN_MAX_GROUP + h) * HD + d];
        }
        if (gridDim.z == 1) {
            orow[(size_t)(h0 + h) * HD + d] = __float2bfloat16(o / L);
            continue;
        }
        size_t k = ((size_t)rl * n_heads + h0 + h) * gridDim.z + blockIdx.z;
        part[k * HD + d] = o;
        if (d == 0) part[n_parts * HD + 2 * k] = M, part[n_parts * HD + 2 * k + 1] = L;
    }
}

/*
 * One CTA of SSF_ATTN_THREADS per (row, KV head x head chunk, split), on
 * the positions [split * chunk, min(pos[r] + 1, (split + 1) * chunk)).
 * Each warp takes every ATTN_WARPS-th tile of SSF_ATTN_TILE positions and
 * runs a flash-attention loop of its own, with no CTA barrier: while it
 * scores a tile against the group's query heads on the tensor cores (the
 * K row is read once for the whole group: the GQA packing), turns the
 * scores into weights and sums V, its next tile is landing (cp.async, two
 * stages).  The warps merge at the end.  The first kernel, fp32 FMAs from
 * shared memory, was compute-bound: it read KV at 0.9-1.4 TB/s on an H200.
 * Scores, softmax and the output accumulate in fp32; only the weights are
 * rounded to BF16 for the P.V MMA.
 */
template <int HD, bool FP8, bool ROPE>
__global__ static void __launch_bounds__(SSF_ATTN_THREADS)
    paged_attention_kernel(ssfk_attn_io io, ssfk_attn_rope rope, const int32_t *rows, float *part,
                           int head_chunks, int chunk, float scale_log2, bool tile_in_block)
{
    extern __shared__ __align__(16) char smem_raw[];
    int r = rows ? rows[blockIdx.x] : blockIdx.x, kvh = blockIdx.y / head_chunks,
        qc = blockIdx.y % head_chunks;
    int n_heads = io.n_heads, group = n_heads / io.n_kv_heads;
    int h0 = kvh * group + qc * SSF_ATTN_MAX_GROUP;
    int ng = min(SSF_ATTN_MAX_GROUP, group - qc * SSF_ATTN_MAX_GROUP);
    int warp = threadIdx.x / WARP;
    int p = io.pos[r], lo = blockIdx.z * chunk, hi = min(p + 1, lo + chunk);
    int n_tiles = hi > lo ? (hi - lo + SSF_ATTN_TILE - 1) / SSF_ATTN_TILE : 0;
    int mine = n_tiles > warp ? (n_tiles - warp + ATTN_WARPS - 1) / ATTN_WARPS : 0;
    const int32_t *table = row_table(io.tb, r);
    size_t qkv_row = (size_t)r * (n_heads + 2 * io.n_kv_heads) * HD;
    /* What the wait orders: the rows, positions and tables above were
     * staged by the host before the step, and K and V before p by earlier
     * steps.  With RoPE here a step's rows are each the one row of their
     * sequence and nothing but this kernel writes this layer's K and V
     * this step, so a first tile that ends before p is queued before the
     * wait, while the q|k|v GEMM before drains. */
    int first = lo + warp * SSF_ATTN_TILE, first_cnt = min(SSF_ATTN_TILE, hi - first);
    bool early = ROPE && mine > 0 && first + first_cnt <= p;
    if (early)
        load_tile<HD, FP8>(smem_raw, warp, 0, io.pool, io.kv, kvh, table, io.layer, first,
                           first_cnt, tile_in_block);
    grid_dep_wait();
    /* With RoPE here (a build of its own: its code cost the others
     * registers, 105 where 96 at head_dim 64 with fp8), position p is
     * stored by the warp whose last tile holds it, in the CTA whose split
     * does, before that warp loads a tile. */
    if (ROPE && p >= lo && p < lo + chunk && warp == (n_tiles - 1) % ATTN_WARPS)
        store_own_kv<HD, FP8>(io, rope.bias, io.qkv + qkv_row, rope.cs + (size_t)r * (HD / 2), kvh,
                              kv_pos(io.kv, table, io.layer, p));
    if (mine > 0 && !early)
        load_tile<HD, FP8>(smem_raw, warp, 0, io.pool, io.kv, kvh, table, io.layer, first,
                           first_cnt, tile_in_block);
    cp_async_commit();
    uint32_t qf[HD / 16][2];
    if (ROPE)
        load_q_rope<HD>(qf, io.qkv + qkv_row, rope.bias, rope.cs + (size_t)r * (HD / 2), h0, ng);
    else
        load_q<HD>(qf, io.qkv + qkv_row + (size_t)h0 * HD, ng);
    warp_acc<HD> a;
    a.m = -INFINITY, a.l = 0.0f;
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
        a.o[n][0] = a.o[n][1] = a.o[n][2] = a.o[n][3] = 0.0f;
    for (int i = 0; i < mine; i++) {
        int t0 = lo + (warp + i * ATTN_WARPS) * SSF_ATTN_TILE;
        if (i + 1 < mine) {
            int t1 = t0 + ATTN_WARPS * SSF_ATTN_TILE;
            load_tile<HD, FP8>(smem_raw, warp, (i + 1) & 1, io.pool, io.kv, kvh, table, io.layer,
                               t1, min(SSF_ATTN_TILE, hi - t1), tile_in_block);
        }
        cp_async_commit();
        cp_async_wait<1>(); /* tile i has landed (tile i + 1 may be in flight) */
        __syncwarp();
        const float *ksc = NULL, *vsc = NULL;
        if (FP8) {
            widen_fp8<HD>(smem_raw, warp, i & 1);
            ksc = fp8_scales<HD>(smem_raw, warp, i & 1);
            vsc = ksc + SSF_ATTN_TILE;
            __syncwarp();
        }
        const bf16 *ks = mma_rows<HD, FP8>(smem_raw, warp, i & 1);
        float s[2][4];
        uint32_t p0, p2;
        score_tile<HD>(ks, ksc, qf, s, min(SSF_ATTN_TILE, hi - t0), scale_log2);
        softmax_tile<HD>(a, s, vsc, &p0, &p2);
        accumulate_tile<HD>(a, ks + SSF_ATTN_TILE * KV_ROW(HD), p0, p2);
        __syncwarp(); /* every lane is done with the stage before tile i + 2 lands in it */
    }
    cp_async_wait<0>();
    /* The merge kernel may be dispatched now, not at the start: its CTAs
     * would wait on the SMs through a one-wave grid's whole walk. */
    grid_dep_launch();
    __syncthreads();
    merge_warps<HD>(smem_raw, a, io.out + (size_t)r * n_heads * HD, part, blockIdx.x, h0, ng,
                    n_heads);
}

/* Merges the splits of one (listed row, q-head): out = sum_s w_s acc_s /
 * sum_s w_s l_s with w_s = 2^(m_s - max m), m in log2 units; empty splits
 * (m = -inf) weigh nothing.  A launch of its own: merging in the attention
 * kernel, by the last of a row's splits to finish (a counter per row and KV
 * head), was slower on an H100: 0-9% at the plans' splits for 64 and 256
 * rows, 13-26% for one row, 12-30% at 8-32 splits and 0.5-1.5% a decode
 * step, its fences and the merge's tail lengthening every CTA
 * (bench/README-gpu.md, run J). */
template <int HD>
__global__ static void attn_combine_kernel(bf16 *out, const float *part, const int32_t *rows,
                                           int n_heads, int splits)
{
    grid_dep_enter();
    int rl = blockIdx.x, h = blockIdx.y, t = threadIdx.x, r = rows ? rows[rl] : rl;
    size_t n_parts = (size_t)gridDim.x * n_heads * splits;
    size_t i0 = ((size_t)rl * n_heads + h) * splits;
    const float *ml = part + n_parts * HD;
    float M = -INFINITY, L = 0.0f, o = 0.0f;
    for (int s = 0; s < splits; s++)
        M = fmaxf(M, ml[2 * (i0 + s)]);
    for (int s = 0; s < splits; s++) {
        float m = ml[2 * (i0 + s)];
        if (m == -INFINITY) continue;
        float w = exp2f(m - M);
        L += w * ml[2 * (i0 + s) + 1];
        o += w * part[(i0 + s) * HD + t];
    }
    out[((size_t)r * n_heads + h) * HD + t] = __float2bfloat16(o / L);
}

template <int HD, bool FP8>
static cudaError_t attention_hd(const ssf_attn_shape *sh, ssfk_attn_io io,
                                const ssfk_attn_rope *rope, const int32_t *rows, float *part,
                                cudaStream_t st)
{
    dim3 grid(sh->grid[0], sh->grid[1], sh->grid[2]);
    /* tiles start at a multiple of SSF_ATTN_TILE past a chunk's start */
    bool in_block = io.kv.block_size % SSF_ATTN_TILE == 0 && sh->chunk % SSF_ATTN_TILE == 0;
    auto kernel =
        rope ? paged_attention_kernel<HD, FP8, true> : paged_attention_kernel<HD, FP8, false>;
    ssfk_attn_rope none = {NULL, NULL};
    cudaError_t e =
        launch_pdl(kernel, grid, SSF_ATTN_THREADS, sh->smem, st, io, rope ? *rope : none, rows,
                   part, sh->head_chunks, sh->chunk, scale_log2_of(HD), in_block);
    if (e != cudaSuccess || sh->splits == 1) return e;
    return launch_pdl(attn_combine_kernel<HD>, dim3(sh->grid[0], io.n_heads), HD, 0, st, io.out,
                      part, rows, io.n_heads, sh->splits);
}

template <int HD, bool FP8> static cudaError_t allow_attention_smem(void)
{
    cudaError_t e = allow_smem(paged_attention_kernel<HD, FP8, false>, ssf_attn_smem(HD));
    return e == cudaSuccess ? allow_smem(paged_attention_kernel<HD, FP8, true>, ssf_attn_smem(HD))
                            : e;
}

cudaError_t ssfk_attention_init(void)
{
    cudaError_t e = allow_attention_smem<64, false>();
    if (e == cudaSuccess) e = allow_attention_smem<128, false>();
    if (e == cudaSuccess) e = allow_attention_smem<64, true>();
    if (e == cudaSuccess) e = allow_attention_smem<128, true>();
    return e;
}

template <int HD, bool FP8> static cudaError_t resident(bool rope, int *per_sm)
{
    auto kernel =
        rope ? paged_attention_kernel<HD, FP8, true> : paged_attention_kernel<HD, FP8, false>;
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, kernel, SSF_ATTN_THREADS,
                                                         ssf_attn_smem(HD));
}

cudaError_t ssfk_attention_slots(int head_dim, int fp8, int rope, int *slots)
{
    int dev = 0, sms = 0, per_sm = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess) return e;
    if (head_dim == 64)
        e = fp8 ? resident<64, true>(rope, &per_sm) : resident<64, false>(rope, &per_sm);
    else if (head_dim == 128)
        e = fp8 ? resident<128, true>(rope, &per_sm) : resident<128, false>(rope, &per_sm);
    else
        return cudaErrorInvalidValue;
    *slots = sms * (per_sm > 0 ? per_sm : 1);
    return e;
}

cudaError_t ssfk_attention(const ssf_attn_shape *shape, ssfk_attn_io io, const ssfk_attn_rope *rope,
                           const int32_t *rows, float *part, cudaStream_t st)
{
    /* a shape planned for another head layout would leave heads unwritten */
    ssfk_kv_layout kv = io.kv;
    if (shape->threads != SSF_ATTN_THREADS ||
        shape->grid[1] != io.n_kv_heads * shape->head_chunks || (shape->splits > 1 && !part) ||
        shape->smem != ssf_attn_smem(kv.head_dim) || (kv.fp8 && !kv.scales) ||
        (rope && (!rope->cs || shape->head_chunks != 1)))
        return cudaErrorInvalidValue;
    if (kv.head_dim == 64)
        return kv.fp8 ? attention_hd<64, true>(shape, io, rope, rows, part, st)
                      : attention_hd<64, false>(shape, io, rope, rows, part, st);
    if (kv.head_dim == 128)
        return kv.fp8 ? attention_hd<128, true>(shape, io, rope, rows, part, st)
                      : attention_hd<128, false>(shape, io, rope, rows, part, st);
    return cudaErrorInvalidValue;
}
