/*
 * cuda_sample.cu - each row's next token drawn on the device, so that only
 * ids cross to the host.  One CTA of SAMPLE_THREADS threads a row.
 *
 * The filters are sampler.c's (temperature, top-k, top-p, min-p, in Hugging
 * Face's order) without sorting the vocabulary: each cut is a threshold on
 * the weight w = exp((x - max) / T) found by a radix select over w's float
 * bits (3 passes of 11, 11 and 10 bits), ties at the threshold kept lowest
 * id first as the host sampler keeps them.  Masses are integers (w in 2^-40
 * units), so every sum, hence every draw, is the same whatever order the
 * threads add in: a sample's tokens depend on its seed and logits only.
 * The draw walks the kept tokens in id order where the host walks them
 * heaviest first: the same distribution, a different map from the uniform
 * to the token.
 *
 * A trained model's row gives most ids a weight below one mass unit, and
 * those can neither be drawn nor move a mass cut; a top-k cut counts them,
 * but they rank below every id with mass, so a cut that drops one of those
 * falls among them.  So when the ids with mass fit in shared memory
 * (SAMPLE_CANDIDATES), they can be gathered there after two reads of the
 * row (its maximum, then its ids with mass, sorted into id order in shared
 * memory), and every filter and the draw run over them: the same cuts and
 * the same draw as over the whole row, without its ~8 further reads from
 * memory (256 rows of Qwen2.5's vocabulary are 156 MB, more than L2).
 *
 * Reads of the row are most of the kernel's time, and one CTA reads a row,
 * so every pass whose order does not matter (the maximum, the gather, the
 * sums and the histograms) walks it with LOAD_UNROLL 16-byte loads in
 * flight a thread.  With one 4-byte load at a time a CTA read some 5 GB/s
 * (an H100, run N: 0.37 ms for 256 rows' three reads of 0.6 MB), the
 * memory's latency over what one thread a load keeps in flight.  The two
 * walks in id order (a cut's ties, the draw) narrow the row in two rounds
 * read across all the warps before one warp scans what is left.
 *
 * An uncertain row can leave more ids with mass than shared memory holds
 * while top-p keeps a few hundred: a language model's bulk a dozen logits
 * below the maximum weighs some 2^-30 a token at temperature 0.6, mass the
 * first floor counts, but a vocabulary of it weighs under 1% of the row.
 * Then one walk counts the ids and their mass above a few higher floors
 * (tiers), and the highest floor whose ids decide every cut (a top-k cut
 * that falls above it, a top-p cut whose mass lies above it, or a min-p
 * cut at or over it) and fit is gathered instead: the mass below it enters
 * the top-p cut as a sum, and none of it can be drawn.  The draws are the
 * whole row's still; only a row with no such floor walks the whole row.
 *
 * The gathered path is the caller's choice (`gather`): the engine's since
 * it passed bench/gpu_check's distribution checks on an H100, drawing what
 * the whole-row path draws, 2.5x faster on peaked rows and 13% slower on
 * flat ones (SSFK_SAMPLE_GATHER; both timed before the 16-byte walks and
 * the tiers).
 */
#include <float.h>
#include <limits.h>
#include <math.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "cuda_common.cuh"
#include "cuda_kernels.cuh"

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define RADIX_BINS 2048
#define MASS_SCALE 1099511627776.0f /* 2^40: w = 1 (the maximum) weighs 2^40 */
/* ids with mass gathered in shared memory (the kernel's static shared
 * memory stays under 48 KB) */
#define SAMPLE_CANDIDATES 2048
/* the gather's first floor: one mass unit, a weight of 2^-40 */
#define MASS_FLOOR_EXP 40
/* the tiers' floors, highest first: weights of 2^-10, 2^-16 and 2^-24
 * (Qwen2.5's 151,936 ids under 2^-24 weigh under 1% of the maximum) */
#define TIERS 3
#define TIER_EXP(j) ((j) == 0 ? 10 : (j) == 1 ? 16 : 24)
/* 16-byte loads a thread has in flight in a walk over the row */
#define LOAD_UNROLL 4
#define WALK_STEP (SAMPLE_THREADS * LOAD_UNROLL) /* float4s a CTA reads per round */

typedef unsigned long long u64;

/* ---- Philox4x32-10, as sampler.c ------------------------------------------------------ */

__device__ static double philox_uniform(u64 seed, u64 step)
{
    uint32_t c[4] = {(uint32_t)step, (uint32_t)(step >> 32), 0, 0};
    uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int round = 0; round < 10; round++) {
        if (round > 0) k[0] += 0x9E3779B9u, k[1] += 0xBB67AE85u;
        u64 p0 = (u64)0xD2511F53u * c[0], p1 = (u64)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k[0], n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k[1], n3 = (uint32_t)p0;
        c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
    }
    u64 bits = ((u64)(c[0] >> 5) << 26) | (c[1] >> 6);
    return (double)bits * (1.0 / 9007199254740992.0);
}

/* ---- walks over a row ------------------------------------------------------------------- */

/* A row as its walks read it: `head` ids one at a time up to the first
 * 16-byte boundary (the row's start is 4-byte aligned, its stride need not
 * be a multiple of 4), n4 float4s from there, then the last n - tail ids
 * one at a time. */
typedef struct row_walk {
    const float4 *v; /* the row + head */
    int n, head, n4, tail;
} row_walk;

__device__ static row_walk walk_of(const float *x, int n)
{
    int head = (int)((16 - ((uintptr_t)x & 15)) / 4 % 4);
    if (head > n) head = n;
    int n4 = (n - head) / 4;
    return row_walk{(const float4 *)(x + head), n, head, n4, head + 4 * n4};
}

__device__ __forceinline__ static float4 logits4(const float4 *p)
{
    return *p; /* 16 bytes of logits */
}

__device__ __forceinline__ static float logit(const float *p)
{
    return *p; /* 4 bytes of logits */
}

/* Round `base` of a walk (base advances by WALK_STEP): this thread's
 * LOAD_UNROLL float4s, all loaded before any is used, as x[4 u + c] with
 * ids id[4 u + c] (-1 past the float4s). */
__device__ static void walk_round(const row_walk &w, int base, float (&x)[4 * LOAD_UNROLL],
                                  int (&id)[4 * LOAD_UNROLL])
{
    float4 v[LOAD_UNROLL];
#pragma unroll
    for (int u = 0; u < LOAD_UNROLL; u++) {
        int q = base + u * SAMPLE_THREADS + threadIdx.x;
        v[u] = q < w.n4 ? logits4(w.v + q) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int u = 0; u < LOAD_UNROLL; u++) {
        int q = base + u * SAMPLE_THREADS + threadIdx.x, i = w.head + 4 * q;
        x[4 * u] = v[u].x, x[4 * u + 1] = v[u].y, x[4 * u + 2] = v[u].z, x[4 * u + 3] = v[u].w;
#pragma unroll
        for (int c = 0; c < 4; c++)
            id[4 * u + c] = q < w.n4 ? i + c : -1;
    }
}

/* The id this thread reads alone, among the walk's head and tail (at most
 * 6), or -1. */
__device__ static int walk_single(const row_walk &w)
{
    int j = threadIdx.x;
    if (j < w.head) return j;
    j -= w.head;
    return j < w.n - w.tail ? w.tail + j : -1;
}

/* g(v, id) for each round of a walk over the row's ids below n: this
 * thread's 4 LOAD_UNROLL logits, then its lone id, as arrays (id -1 where
 * the thread has none).  Every thread makes the same calls, so g may hold
 * warp collectives. */
template <typename G> __device__ static void for_each_round(const float *x, int n, G g)
{
    row_walk w = walk_of(x, n);
    for (int base = 0; base < w.n4; base += WALK_STEP) {
        float v[4 * LOAD_UNROLL];
        int id[4 * LOAD_UNROLL];
        walk_round(w, base, v, id);
        g(v, id);
    }
    int i = walk_single(w);
    float v[1] = {i >= 0 ? logit(x + i) : 0.0f};
    int id[1] = {i};
    g(v, id);
}

/* f(v, id) for every logit v of the row, id below n, in no set order. */
template <typename F> __device__ static void for_each_logit(const float *x, int n, F f)
{
    for_each_round(x, n, [&](const auto &v, const auto &id) {
        constexpr int K = sizeof id / sizeof id[0];
#pragma unroll
        for (int k = 0; k < K; k++)
            if (id[k] >= 0) f(v[k], id[k]);
    });
}

/* ---- the row's weights and cuts ----------------------------------------------------------- */

typedef struct row_in {
    const float *x;
    int n;
    float max, inv_t;
} row_in;

/* A token's key: the float bits of its weight, which order like the weights;
 * 0 for a non-finite logit or a weight that underflowed (never drawn). */
__device__ __forceinline__ static uint32_t weight_key(const row_in &r, float x)
{
    if (!isfinite(x)) return 0;
    return __float_as_uint(expf((x - r.max) * r.inv_t));
}

__device__ __forceinline__ static uint32_t key_of(const row_in &r, int i)
{
    float x = r.x[i];
    return weight_key(r, x);
}

__device__ __forceinline__ static u64 mass_of(uint32_t key)
{
    return (u64)(__uint_as_float(key) * MASS_SCALE);
}

/* The key of a weight of 2^-e: keys at or above it weigh at least that
 * (MASS_FLOOR_EXP's: at least one mass unit, since w * 2^40 is exact). */
__device__ __forceinline__ static uint32_t floor_key(int e)
{
    return (uint32_t)(127 - e) << 23;
}

/* The ids of a row at or above a floor, in id order, and their keys (shared
 * memory); the row's ids below the floor weigh `tail` mass units, and n_all
 * ids of the row have a weight (a key) at all. */
typedef struct cand_in {
    const uint32_t *key;
    const int32_t *id;
    int n;
    u64 tail, n_all;
} cand_in;

/* Entry i of a source (the whole row, or its gathered candidates): its key
 * and its token id.  Entries are in increasing id order in both. */
__device__ __forceinline__ static uint32_t key_at(const row_in &r, int i)
{
    return key_of(r, i);
}

__device__ __forceinline__ static int id_at(const row_in &, int i)
{
    return i;
}

__device__ __forceinline__ static uint32_t key_at(const cand_in &c, int i)
{
    return c.key[i];
}

__device__ __forceinline__ static int id_at(const cand_in &c, int i)
{
    return c.id[i];
}

/* The mass of the row that the source leaves out (top-p's cut counts it). */
__device__ __forceinline__ static u64 tail_of(const row_in &)
{
    return 0;
}

__device__ __forceinline__ static u64 tail_of(const cand_in &c)
{
    return c.tail;
}

/* f(key, id) for every entry of a source, in no set order (the order-free
 * passes: sums and histograms). */
template <typename F> __device__ static void for_each_entry(const row_in &r, F f)
{
    for_each_logit(r.x, r.n, [&](float x, int id) { f(weight_key(r, x), id); });
}

template <typename F> __device__ static void for_each_entry(const cand_in &c, F f)
{
    for (int i = threadIdx.x; i < c.n; i += SAMPLE_THREADS)
        f(key_at(c, i), id_at(c, i));
}

/* Keeps keys above `key`, and at `key` ids up to `id`. */
typedef struct cut {
    uint32_t key;
    int id;
} cut;

__device__ __forceinline__ static bool passes(cut c, uint32_t key, int i)
{
    return key > c.key || (key == c.key && i <= c.id);
}

/* What survives so far: candidates that pass the cuts made (and min-p). */
typedef struct kept_set {
    cut k, p;
    float min_w;
} kept_set;

__device__ __forceinline__ static bool kept(const kept_set &s, uint32_t key, int i)
{
    return key != 0 && passes(s.k, key, i) && passes(s.p, key, i) &&
           __uint_as_float(key) >= s.min_w;
}

struct shared_state {
    u64 hist[RADIX_BINS];
    u64 warp_sum[SAMPLE_WARPS];
    uint32_t cand_key[SAMPLE_CANDIDATES];
    int32_t cand_id[SAMPLE_CANDIDATES];
    int n_cand; /* gather_candidates' count */
    union {
        cub::BlockScan<u64, SAMPLE_THREADS>::TempStorage scan;
        cub::BlockReduce<u64, SAMPLE_THREADS>::TempStorage sum;
    } cub;
    u64 u64_out;
    int int_out[2];
};

/* Sum over the source of what `value` gives each entry, the same in every
 * thread. */
template <typename R, typename F>
__device__ static u64 row_sum(const R &r, F value, shared_state &sh)
{
    u64 s = 0;
    for_each_entry(r, [&](uint32_t key, int id) { s += value(key, id); });
    s = cub::BlockReduce<u64, SAMPLE_THREADS>(sh.cub.sum).Sum(s);
    if (threadIdx.x == 0) sh.u64_out = s;
    __syncthreads();
    s = sh.u64_out;
    __syncthreads();
    return s;
}

/* How many ids of the row have a weight: top-k cuts only below that many. */
__device__ static u64 count_all(const row_in &r, shared_state &sh)
{
    return row_sum(
        r, [](uint32_t key, int) -> u64 { return key != 0; }, sh);
}

__device__ static u64 count_all(const cand_in &c, shared_state &)
{
    return c.n_all;
}

/* The mass top-p keeps of `total`: at least one unit. */
__device__ static u64 top_p_need(double top_p, u64 total)
{
    u64 need = (u64)ceil(top_p * (double)total);
    return need < 1 ? 1 : need;
}

/* Entries a lane reads at once in an in-order walk's sums */
#define SUM_UNROLL 8

/* Sum of `value` over entries lo .. hi - 1 (lo < hi or none), by one warp,
 * the same in every lane: SUM_UNROLL reads in flight a lane. */
template <typename R, typename F>
__device__ static u64 warp_range_sum(const R &r, F value, int lo, int hi)
{
    int lane = threadIdx.x % 32;
    u64 s = 0;
    for (int base = lo; base < hi; base += 32 * SUM_UNROLL) {
        uint32_t key[SUM_UNROLL];
#pragma unroll
        for (int u = 0; u < SUM_UNROLL; u++) {
            int i = base + 32 * u + lane;
            key[u] = i < hi ? key_at(r, i) : 0;
        }
#pragma unroll
        for (int u = 0; u < SUM_UNROLL; u++) {
            int i = base + 32 * u + lane;
            if (i < hi) s += value(key[u], id_at(r, i));
        }
    }
    for (int o = 16; o > 0; o /= 2)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

/* Narrows [*lo, *hi), whose entries' running sum starts at *before and
 * passes `goal` inside it, to the one of SAMPLE_WARPS consecutive pieces
 * (a warp sums each) where it passes. */
template <typename R, typename F>
__device__ static void narrow_to_piece(const R &r, F value, u64 goal, int *lo, int *hi, u64 *before,
                                       shared_state &sh)
{
    int warp = threadIdx.x / 32, piece = (*hi - *lo + SAMPLE_WARPS - 1) / SAMPLE_WARPS;
    int from = min(*hi, *lo + warp * piece), to = min(*hi, from + piece);
    u64 s = warp_range_sum(r, value, from, to);
    if (threadIdx.x % 32 == 0) sh.warp_sum[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        u64 run = *before;
        int w = 0;
        while (w < SAMPLE_WARPS - 1 && run + sh.warp_sum[w] <= goal)
            run += sh.warp_sum[w++];
        sh.int_out[0] = w;
        sh.u64_out = run;
    }
    __syncthreads();
    /* read before a barrier: whatever writes them next (the next narrowing,
     * find_in_order's callers) does so past one */
    int w = sh.int_out[0];
    *before = sh.u64_out;
    *lo = min(*hi, *lo + w * piece);
    *hi = min(*hi, *lo + piece);
}

/* The first entry whose inclusive running sum of `value` in order exceeds
 * `goal` (goal < the source's sum), or -1.  Two rounds of narrowing, each
 * reading its range across all the warps, leave a piece of n / 1024 entries
 * (149 of Qwen2.5's vocabulary), which warp 0 scans 32 entries at a time:
 * a warp walking its share of the row in order held a CTA to one read in
 * flight a lane. */
template <typename R, typename F>
__device__ static int find_in_order(const R &r, F value, u64 goal, shared_state &sh)
{
    int lo = 0, hi = r.n;
    u64 running = 0;
    narrow_to_piece(r, value, goal, &lo, &hi, &running, sh);
    narrow_to_piece(r, value, goal, &lo, &hi, &running, sh);
    if (threadIdx.x < 32) {
        int lane = threadIdx.x, found = -1;
        for (int base = lo; base < hi; base += 32) {
            int i = base + lane;
            u64 v = i < hi ? value(key_at(r, i), id_at(r, i)) : 0, incl = v;
            for (int o = 1; o < 32; o *= 2) {
                u64 t = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += t;
            }
            unsigned hit = __ballot_sync(0xffffffffu, running + incl > goal);
            if (hit) {
                found = base + __ffs(hit) - 1;
                break;
            }
            running += __shfl_sync(0xffffffffu, incl, 31);
        }
        if (lane == 0) sh.int_out[1] = found;
    }
    __syncthreads();
    int found = sh.int_out[1];
    __syncthreads();
    return found;
}

/* Which of its two bins (2t, 2t + 1 counted from the top) holds the
 * `need`-th unit of the histogram when walking down from `above`. */
__device__ static void pick_bin(shared_state &sh, u64 above, u64 need)
{
    int t = threadIdx.x;
    u64 h[2] = {sh.hist[RADIX_BINS - 1 - 2 * t], sh.hist[RADIX_BINS - 2 - 2 * t]}, incl[2];
    cub::BlockScan<u64, SAMPLE_THREADS>(sh.cub.scan).InclusiveSum(h, incl);
    for (int j = 0; j < 2; j++)
        if (h[j] > 0 && above + incl[j] >= need && above + incl[j] - h[j] < need) {
            sh.int_out[0] = RADIX_BINS - 1 - 2 * t - j;
            sh.u64_out = above + incl[j] - h[j];
        }
    __syncthreads();
}

/* The cut that keeps the heaviest tokens of `base` (ties lowest id first)
 * until their count (by_mass false) or mass reaches `need`, which must not
 * exceed the whole of base. */
template <typename R>
__device__ static cut select_heaviest(const R &r, const kept_set &base, bool by_mass, u64 need,
                                      shared_state &sh)
{
    uint32_t prefix = 0, mask = 0;
    u64 above = 0;
    for (int pass = 0; pass < 3; pass++) {
        int shift = pass == 0 ? 21 : pass == 1 ? 10 : 0; /* digits of 11, 11, 10 bits */
        uint32_t digit = (1u << (pass == 2 ? 10 : 11)) - 1;
        for (int b = threadIdx.x; b < RADIX_BINS; b += SAMPLE_THREADS)
            sh.hist[b] = 0;
        __syncthreads();
        for_each_entry(r, [&](uint32_t key, int id) {
            if (kept(base, key, id) && (key & mask) == prefix)
                atomicAdd(&sh.hist[(key >> shift) & digit], by_mass ? mass_of(key) : 1ull);
        });
        __syncthreads();
        pick_bin(sh, above, need);
        prefix |= (uint32_t)sh.int_out[0] << shift;
        mask |= digit << shift;
        above = sh.u64_out;
        __syncthreads();
    }
    /* every token above the key is in; ties at it join by id until need */
    cut c = {prefix, INT_MAX};
    u64 unit = by_mass ? mass_of(prefix) : 1;
    auto tie = [&](uint32_t key, int id) -> u64 {
        return key == prefix && kept(base, key, id) ? unit : 0;
    };
    int at = find_in_order(r, tie, need - above - 1, sh);
    c.id = at >= 0 ? id_at(r, at) : -1;
    return c;
}

/* ---- the kernel ------------------------------------------------------------------------------ */

typedef struct arg_best {
    float v;
    int i;
} arg_best;

struct arg_max_op {
    __device__ arg_best operator()(const arg_best &a, const arg_best &b) const
    {
        if (a.i < 0) return b;
        if (b.i < 0) return a;
        if (a.v != b.v) return a.v > b.v ? a : b;
        return a.i < b.i ? a : b;
    }
};

/* The largest finite logit and its lowest id (-1 when none is finite). */
__device__ static arg_best row_argmax(const float *x, int n)
{
    __shared__ cub::BlockReduce<arg_best, SAMPLE_THREADS>::TempStorage tmp;
    __shared__ arg_best out;
    arg_max_op better;
    arg_best b = {0.0f, -1};
    for_each_logit(x, n, [&](float v, int i) {
        if (isfinite(v)) b = better(b, arg_best{v, i});
    });
    b = cub::BlockReduce<arg_best, SAMPLE_THREADS>(tmp).Reduce(b, better);
    if (threadIdx.x == 0) out = b;
    __syncthreads();
    return out;
}

template <typename R>
__device__ static int draw_filtered(const R &r, const ssf_sample_spec &sp, shared_state &sh)
{
    kept_set s = {{0, INT_MAX}, {0, INT_MAX}, 0.0f};
    auto mass = [&](uint32_t key, int id) -> u64 { return kept(s, key, id) ? mass_of(key) : 0; };
    bool cut_k = sp.top_k > 0 && (u64)sp.top_k < count_all(r, sh);
    if (cut_k) s.k = select_heaviest(r, s, false, (u64)sp.top_k, sh);
    if (sp.top_p > 0 && sp.top_p < 1) {
        /* the row's mass below a gathered floor counts, unless a top-k cut
         * dropped it; a cut that falls below the floor keeps all above it */
        u64 in_source = row_sum(r, mass, sh), total = in_source + (cut_k ? 0 : tail_of(r));
        u64 need = top_p_need(sp.top_p, total);
        if (need < total && need <= in_source) s.p = select_heaviest(r, s, true, need, sh);
    }
    if (sp.min_p > 0) s.min_w = (float)sp.min_p;
    u64 total = row_sum(r, mass, sh);
    u64 target = (u64)(philox_uniform(sp.seed, sp.step) * (double)total);
    if (target >= total) target = total - 1;
    int at = find_in_order(r, mass, target, sh);
    return at >= 0 ? id_at(r, at) : -1;
}

/* Appends this thread's entries at or above `floor` (a key) among x[0 ..
 * K) (ids id[k], -1 for none) to sh.cand_key and sh.cand_id, one shared
 * atomic a warp: the warp's lanes take consecutive places.  Every lane of
 * the warp calls it.  Places past SAMPLE_CANDIDATES are counted in
 * sh.n_cand, not written. */
template <int K>
__device__ static void append_above(const row_in &r, const float (&x)[K], const int (&id)[K],
                                    uint32_t floor, shared_state &sh)
{
    int lane = threadIdx.x % 32, mine = 0;
#pragma unroll
    for (int k = 0; k < K; k++)
        mine += id[k] >= 0 && weight_key(r, x[k]) >= floor;
    int incl = mine;
    for (int o = 1; o < 32; o *= 2) {
        int t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    int warp_total = __shfl_sync(0xffffffffu, incl, 31);
    if (warp_total == 0) return;
    int at = 0;
    if (lane == 31) at = atomicAdd(&sh.n_cand, warp_total);
    at = __shfl_sync(0xffffffffu, at, 31) + incl - mine;
    /* the keys again, not held from the count: K more registers in a kernel
     * that spills, and most warps of a peaked row return above */
#pragma unroll
    for (int k = 0; k < K; k++) {
        uint32_t key = weight_key(r, x[k]);
        if (id[k] < 0 || key < floor) continue;
        if (at < SAMPLE_CANDIDATES) sh.cand_key[at] = key, sh.cand_id[at] = id[k];
        at++;
    }
}

/* Sorts the n gathered candidates by id (a bitonic sort over the next power
 * of two, padded with ids above any). */
__device__ static void sort_candidates(shared_state &sh, int n)
{
    int n_pad = 1;
    while (n_pad < n)
        n_pad *= 2;
    for (int i = n + threadIdx.x; i < n_pad; i += SAMPLE_THREADS)
        sh.cand_key[i] = 0, sh.cand_id[i] = INT_MAX;
    __syncthreads();
    for (int k = 2; k <= n_pad; k *= 2)
        for (int j = k / 2; j > 0; j /= 2) {
            for (int i = threadIdx.x; i < n_pad; i += SAMPLE_THREADS) {
                int l = i ^ j;
                if (l < i) continue;
                int32_t a = sh.cand_id[i], b = sh.cand_id[l];
                if ((a > b) != ((i & k) != 0)) { /* ascending where bit k of i is 0 */
                    uint32_t ka = sh.cand_key[i], kb = sh.cand_key[l];
                    sh.cand_id[i] = b, sh.cand_id[l] = a;
                    sh.cand_key[i] = kb, sh.cand_key[l] = ka;
                }
            }
            __syncthreads();
        }
}

/* Gathers the row's ids at or above `floor` (a key), in id order, into
 * sh.cand_key and sh.cand_id in one walk over the row.  Returns how many,
 * or -1 when they are more than SAMPLE_CANDIDATES (what was written is then
 * moot). */
__device__ static int gather_candidates(const row_in &r, uint32_t floor, shared_state &sh)
{
    if (threadIdx.x == 0) sh.n_cand = 0;
    __syncthreads();
    for_each_round(r.x, r.n,
                   [&](const auto &x, const auto &id) { append_above(r, x, id, floor, sh); });
    __syncthreads();
    int total = sh.n_cand;
    if (total > SAMPLE_CANDIDATES) return -1;
    sort_candidates(sh, total);
    return total;
}

/* What choosing a tier takes of a row: how many ids have a weight, their
 * mass, and the count and mass of those at or above each tier's floor. */
typedef struct tier_stats {
    u64 n_all, total;
    u64 count[TIERS], mass[TIERS];
} tier_stats;

#define TIER_SUMS (2 + 2 * TIERS)

/* One walk over the row, summed a warp at a time into sh.hist (unused
 * until a cut's histogram), with integers: the same in any order. */
__device__ static tier_stats count_tiers(const row_in &r, shared_state &sh)
{
    u64 v[TIER_SUMS] = {};
    for (int b = threadIdx.x; b < TIER_SUMS; b += SAMPLE_THREADS)
        sh.hist[b] = 0;
    __syncthreads();
    for_each_entry(r, [&](uint32_t key, int) {
        u64 m = mass_of(key);
        v[0] += key != 0, v[1] += m;
#pragma unroll
        for (int j = 0; j < TIERS; j++)
            if (key >= floor_key(TIER_EXP(j))) v[2 + j]++, v[2 + TIERS + j] += m;
    });
#pragma unroll
    for (int k = 0; k < TIER_SUMS; k++) {
        for (int o = 16; o > 0; o /= 2)
            v[k] += __shfl_xor_sync(0xffffffffu, v[k], o);
        if (threadIdx.x % 32 == 0) atomicAdd(&sh.hist[k], v[k]);
    }
    __syncthreads();
    tier_stats st;
    st.n_all = sh.hist[0], st.total = sh.hist[1];
    for (int j = 0; j < TIERS; j++)
        st.count[j] = sh.hist[2 + j], st.mass[j] = sh.hist[2 + TIERS + j];
    __syncthreads();
    return st;
}

/* Whether the row's ids at or above tier j's floor decide the draw as the
 * whole row does: draw_filtered's cuts, in its order, fall at or above the
 * floor, so that no id below it is drawn or moves a cut.  A top-k cut that
 * keeps no more ids than the tier holds; else a top-p cut whose mass the
 * tier holds; else a min-p cut at or over the floor. */
__device__ static bool tier_decides(const ssf_sample_spec &sp, const tier_stats &st, int j)
{
    if (sp.top_k > 0 && (u64)sp.top_k < st.n_all) return st.count[j] >= (u64)sp.top_k;
    if (sp.top_p > 0 && sp.top_p < 1) {
        u64 need = top_p_need(sp.top_p, st.total);
        if (need < st.total && st.mass[j] >= need) return true;
    }
    return sp.min_p > 0 && (float)sp.min_p >= __uint_as_float(floor_key(TIER_EXP(j)));
}

/* When the ids with mass are too many: the highest tier that decides the
 * draw and fits, gathered, or n -1 when none does. */
__device__ static cand_in gather_tier(const row_in &r, const ssf_sample_spec &sp, shared_state &sh)
{
    tier_stats st = count_tiers(r, sh);
    for (int j = 0; j < TIERS; j++)
        if (st.count[j] <= SAMPLE_CANDIDATES && tier_decides(sp, st, j)) {
            int n = gather_candidates(r, floor_key(TIER_EXP(j)), sh);
            return cand_in{sh.cand_key, sh.cand_id, n, st.total - st.mass[j], st.n_all};
        }
    return cand_in{sh.cand_key, sh.cand_id, -1, 0, 0};
}

/* GATHER a template argument, so that the whole-row kernel carries none of
 * the gathered path's registers (as one kernel, both spilled). */
template <bool GATHER>
__global__ static void __launch_bounds__(SAMPLE_THREADS)
    sample_kernel(int32_t *ids, const float *logits, size_t stride, int n_valid,
                  const ssf_sample_spec *spec)
{
    grid_dep_enter();
    __shared__ shared_state sh;
    const ssf_sample_spec sp = spec[blockIdx.x];
    const float *x = logits + (size_t)blockIdx.x * stride;
    arg_best best = row_argmax(x, n_valid);
    int id = best.i;
    if (id >= 0 && sp.temperature > 0 && sp.top_k != 1) {
        /* 1/T held below FLT_MAX: an infinite one (T under ~3e-39) would
         * weigh the maximum 0 * inf = NaN and leave no id with mass, where
         * sampler.c, in double, draws the maximum; FLT_MAX keeps it at 1 and
         * every lower logit at 0 */
        double inv_t = 1.0 / sp.temperature;
        row_in r = {x, n_valid, best.v, inv_t < FLT_MAX ? (float)inv_t : FLT_MAX};
        /* the maximum weighs 2^40, so every row has a candidate; a
         * candidate of each id with mass leaves no tail */
        int n = GATHER ? gather_candidates(r, floor_key(MASS_FLOOR_EXP), sh) : 0;
        cand_in c = {sh.cand_key, sh.cand_id, n, 0, (u64)n};
        if (GATHER && n < 0) c = gather_tier(r, sp, sh);
        if (GATHER && c.n > 0)
            id = draw_filtered(c, sp, sh);
        else
            id = draw_filtered(r, sp, sh);
    }
    if (threadIdx.x == 0) ids[blockIdx.x] = id;
}

cudaError_t ssfk_sample(int32_t *ids, const float *logits, int rows, size_t stride, int n_valid,
                        const ssf_sample_spec *spec, int gather, cudaStream_t st)
{
    if (rows <= 0) return cudaSuccess;
    return launch_pdl(gather ? sample_kernel<true> : sample_kernel<false>, rows, SAMPLE_THREADS, 0,
                      st, ids, logits, stride, n_valid, spec);
}
