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
 * (SAMPLE_CANDIDATES), they can be gathered there in id order after two
 * reads of the row, and every filter and the draw run over them: the same
 * cuts and the same draw as over the whole row, without its ~8 further reads
 * from memory (256 rows of Qwen2.5's vocabulary are 156 MB, more than L2).
 * The gathered path is the caller's choice (`gather`): the engine's since
 * it passed bench/gpu_check's distribution checks on an H100, drawing what
 * the whole-row path draws, 2.5x faster on peaked rows and 13% slower on
 * flat ones (SSFK_SAMPLE_GATHER).
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

/* ---- the row's weights and cuts ----------------------------------------------------------- */

typedef struct row_in {
    const float *x;
    int n;
    float max, inv_t;
} row_in;

/* A token's key: the float bits of its weight, which order like the weights;
 * 0 for a non-finite logit or a weight that underflowed (never drawn). */
__device__ __forceinline__ static uint32_t key_of(const row_in &r, int i)
{
    float x = r.x[i];
    if (!isfinite(x)) return 0;
    return __float_as_uint(expf((x - r.max) * r.inv_t));
}

__device__ __forceinline__ static u64 mass_of(uint32_t key)
{
    return (u64)(__uint_as_float(key) * MASS_SCALE);
}

/* The ids of a row with mass, in id order, and their keys (shared memory). */
typedef struct cand_in {
    const uint32_t *key;
    const int32_t *id;
    int n;
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
    int warp_base[SAMPLE_WARPS];
    uint32_t cand_key[SAMPLE_CANDIDATES];
    int32_t cand_id[SAMPLE_CANDIDATES];
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
    for (int i = threadIdx.x; i < r.n; i += SAMPLE_THREADS)
        s += value(i);
    s = cub::BlockReduce<u64, SAMPLE_THREADS>(sh.cub.sum).Sum(s);
    if (threadIdx.x == 0) sh.u64_out = s;
    __syncthreads();
    s = sh.u64_out;
    __syncthreads();
    return s;
}

/* The first entry whose inclusive running sum of `value` in order exceeds
 * `goal` (goal < the source's sum).  Each warp owns a contiguous segment:
 * the warps' sums locate the segment, whose warp then scans it 32 entries
 * at a time, so the reads stay coalesced. */
template <typename R, typename F>
__device__ static int find_in_order(const R &r, F value, u64 goal, shared_state &sh)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int seg = (r.n + SAMPLE_WARPS * 32 - 1) / (SAMPLE_WARPS * 32) * 32;
    int lo = warp * seg, hi = min(r.n, lo + seg);
    u64 s = 0;
    for (int i = lo + lane; i < hi; i += 32)
        s += value(i);
    for (int o = 16; o > 0; o /= 2)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) sh.warp_sum[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        u64 before = 0;
        int w = 0;
        while (w < SAMPLE_WARPS - 1 && before + sh.warp_sum[w] <= goal)
            before += sh.warp_sum[w++];
        sh.int_out[0] = w;
        sh.u64_out = before;
        sh.int_out[1] = -1;
    }
    __syncthreads();
    if (warp == sh.int_out[0]) {
        u64 running = sh.u64_out;
        for (int base = lo; base < hi; base += 32) {
            int i = base + lane;
            u64 v = i < hi ? value(i) : 0, incl = v;
            for (int o = 1; o < 32; o *= 2) {
                u64 t = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += t;
            }
            unsigned hit = __ballot_sync(0xffffffffu, running + incl > goal);
            if (hit) {
                if (lane == __ffs(hit) - 1) sh.int_out[1] = i;
                break;
            }
            running += __shfl_sync(0xffffffffu, incl, 31);
        }
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
        for (int i = threadIdx.x; i < r.n; i += SAMPLE_THREADS) {
            uint32_t key = key_at(r, i);
            if (kept(base, key, id_at(r, i)) && (key & mask) == prefix)
                atomicAdd(&sh.hist[(key >> shift) & digit], by_mass ? mass_of(key) : 1ull);
        }
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
    auto tie = [&](int i) -> u64 {
        uint32_t key = key_at(r, i);
        return key == prefix && kept(base, key, id_at(r, i)) ? unit : 0;
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
    arg_best b = {0.0f, -1};
    for (int i = threadIdx.x; i < n; i += SAMPLE_THREADS)
        if (isfinite(x[i]) && (b.i < 0 || x[i] > b.v)) b = arg_best{x[i], i};
    b = cub::BlockReduce<arg_best, SAMPLE_THREADS>(tmp).Reduce(b, arg_max_op());
    if (threadIdx.x == 0) out = b;
    __syncthreads();
    return out;
}

template <typename R>
__device__ static int draw_filtered(const R &r, const ssf_sample_spec &sp, shared_state &sh)
{
    kept_set s = {{0, INT_MAX}, {0, INT_MAX}, 0.0f};
    auto count = [&](int i) -> u64 { return key_at(r, i) != 0; };
    auto mass = [&](int i) -> u64 {
        uint32_t key = key_at(r, i);
        return kept(s, key, id_at(r, i)) ? mass_of(key) : 0;
    };
    if (sp.top_k > 0 && (u64)sp.top_k < row_sum(r, count, sh))
        s.k = select_heaviest(r, s, false, (u64)sp.top_k, sh);
    if (sp.top_p > 0 && sp.top_p < 1) {
        u64 total = row_sum(r, mass, sh);
        u64 need = (u64)ceil(sp.top_p * (double)total);
        if (need < 1) need = 1;
        if (need < total) s.p = select_heaviest(r, s, true, need, sh);
    }
    if (sp.min_p > 0) s.min_w = (float)sp.min_p;
    u64 total = row_sum(r, mass, sh);
    u64 target = (u64)(philox_uniform(sp.seed, sp.step) * (double)total);
    if (target >= total) target = total - 1;
    int at = find_in_order(r, mass, target, sh);
    return at >= 0 ? id_at(r, at) : -1;
}

/* Gathers the row's ids with mass, in id order, into sh.cand_key and
 * sh.cand_id: each warp counts its segment, the counts give each warp its
 * place, and a second walk writes.  Returns how many, or -1 when they are
 * more than SAMPLE_CANDIDATES (nothing is written then). */
__device__ static int gather_candidates(const row_in &r, shared_state &sh)
{
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int seg = (r.n + SAMPLE_WARPS * 32 - 1) / (SAMPLE_WARPS * 32) * 32;
    int lo = warp * seg, hi = min(r.n, lo + seg), count = 0;
    for (int base = lo; base < hi; base += 32) {
        int i = base + lane;
        count += __popc(__ballot_sync(0xffffffffu, i < hi && mass_of(key_of(r, i)) > 0));
    }
    if (lane == 0) sh.warp_base[warp] = count;
    __syncthreads();
    if (threadIdx.x == 0) {
        int total = 0;
        for (int w = 0; w < SAMPLE_WARPS; w++) {
            int c = sh.warp_base[w];
            sh.warp_base[w] = total;
            total += c;
        }
        sh.int_out[0] = total;
    }
    __syncthreads();
    int total = sh.int_out[0];
    __syncthreads();
    if (total > SAMPLE_CANDIDATES) return -1;
    int at = sh.warp_base[warp];
    for (int base = lo; base < hi; base += 32) {
        int i = base + lane;
        uint32_t key = i < hi ? key_of(r, i) : 0;
        bool has_mass = mass_of(key) > 0;
        unsigned ballot = __ballot_sync(0xffffffffu, has_mass);
        if (has_mass) {
            int pos = at + __popc(ballot & ((1u << lane) - 1));
            sh.cand_key[pos] = key;
            sh.cand_id[pos] = i;
        }
        at += __popc(ballot);
    }
    __syncthreads();
    return total;
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
        /* the maximum weighs 2^40, so every row has a candidate */
        int n = GATHER ? gather_candidates(r, sh) : 0;
        if (GATHER && n > 0)
            id = draw_filtered(cand_in{sh.cand_key, sh.cand_id, n}, sp, sh);
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
