/*
 * pgemm_emu.cpp - runs the own GEMM kernel's source
 * (backends/engine/cuda_pgemm.cu, copied out by extract.c) on the CPU, on
 * emu_cta.h's CTA: coroutine threads in a random order, PTX-spec MMAs,
 * cp.async landing at issue or only at wait_group, shared-memory races
 * (a ring slot queued again while a warp still reads it among them).
 * What it holds the kernel to:
 *
 *  - every copy from W within the CTA's column tile and K chunk, every
 *    copy from X within its K chunk and X's M rows, and none from X before
 *    the thread's griddepcontrol.wait (X is the kernel before's output; W
 *    no kernel writes);
 *  - the ring's first slices of W, all of the CTA's tile when the ring
 *    holds its chunk, queued before the wait: what the kernel is for;
 *  - no global write before the wait; each Y element of the M rows written
 *    once a launch, by its column tile; each partial by its own split;
 *  - with splits, a CTA's partials fenced before its tile's count moves,
 *    the count its own tile's, the sum read only from partials this launch
 *    wrote, and every count back at zero after the launch;
 *  - Y against a double GEMM (with SwiGLU's epilogue, h from the gate and
 *    up rows its tile interleaves), and a second launch (another CTA and thread
 *    order, copies landing at issue instead of at wait) equal to the first
 *    bit for bit;
 *  - with the norm before fused in (ssfk_pgemm_fuse), X the residual
 *    stream, normalised as ssfk_rmsnorm would from the given group sums
 *    and gains (each gain copy within the CTA's chunk), the sums read only
 *    after the wait and only of rows below M;
 *  - with the residual add after fused in, no Y: each element of the
 *    residual's M rows rewritten once a launch by its column tile, x +
 *    bf16(y) against the double GEMM, and each 64 columns' sum of squares
 *    of the new rows written once, by the tile that holds them, against
 *    the rows the kernel wrote;
 *  - either fusion bit for bit what the unfused build gives on the X the
 *    norm should make (its Y), or x + its Y rounded to BF16 (the add), so
 *    that a rounding off ssfk_rmsnorm's order shows, which the tolerances
 *    against double would pass.
 *
 * Usage: pgemm_emu [-x] [-s seed].
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <random>
#include <vector>

#include "cuda_plan.h"
#include "emu.h"
#include "emu_cta.h"
#include "emu_math.h"

static_assert(SSF_PGEMM_THREADS == NT, "the small GEMM's CTA is emu_cta.h's");

/* ---- what a launch may touch ---- */
static struct {
    const bf16 *X, *W;
    bf16 *Y;
    float *part;
    int *count;
    int M, N, K, bn, chunk, stages, swiglu, launch;
    std::vector<int> y_writes, part_launch;
    bool waited[NT], stored[NT], fenced[NT];
    long w_early;         /* the CTA's 16-byte copies of W before their thread's wait */
    std::vector<int> any; /* __syncthreads_or's value at each CTA barrier */
    /* the fused norm (fuse 1) or residual add (fuse 2): cuda_kernels.cuh */
    int fuse;
    const bf16 *gain;
    const float *norm_ss;
    bf16 *res;
    float *res_ss;
    std::vector<int> res_writes, ss_writes;
} P;

static void on_wait(void)
{
    P.waited[g_cur] = true;
}
static void need_wait(const char *what)
{
    if (!P.waited[g_cur])
        fail("thread %d of block (%u,%u) %s before its griddepcontrol.wait", g_cur, g_block.x,
             g_block.y, what);
}
/* Y's columns: h's N / 2 with SwiGLU's epilogue */
static size_t y_cols(void)
{
    return P.swiglu ? (size_t)P.N / 2 : (size_t)P.N;
}

/* element e's row and column, checked against the CTA's column tile (of
 * Y's columns) and the M rows */
static void own_column(size_t e, const char *what)
{
    size_t width = P.swiglu ? (size_t)P.bn / 2 : (size_t)P.bn;
    size_t row = e / y_cols(), col = e % y_cols(), n0 = (size_t)g_block.x * width;
    if ((int)row >= P.M || col < n0 || col >= n0 + width)
        fail("%s at row %zu column %zu: block (%u,%u) has columns %zu-%zu of rows 0-%d", what, row,
             col, g_block.x, g_block.y, n0, n0 + width - 1, P.M - 1);
}

static void cp_async16(void *dst, const void *src, int bytes)
{
    if (bytes != 0 && bytes != 16) fail("cp.async bytes %d", bytes);
    const bf16 *b = (const bf16 *)src;
    size_t k0 = (size_t)g_block.y * P.chunk;
    if (bytes && b >= P.W && b + 8 <= P.W + (size_t)P.N * P.K) {
        size_t row = (b - P.W) / P.K, col = (b - P.W) % P.K, n0 = (size_t)g_block.x * P.bn;
        if (row < n0 || row >= n0 + P.bn || col < k0 || col + 8 > k0 + P.chunk)
            fail("copy of W row %zu column %zu: block (%u,%u) has rows %zu-%zu, columns %zu-%zu",
                 row, col, g_block.x, g_block.y, n0, n0 + P.bn - 1, k0, k0 + P.chunk - 1);
        if (!P.waited[g_cur]) P.w_early++;
    } else if (bytes && P.gain && b >= P.gain && b + 8 <= P.gain + P.K) {
        size_t col = (size_t)(b - P.gain);
        if (col < k0 || col + 8 > k0 + P.chunk)
            fail("copy of the gains' column %zu: block (%u,%u) has columns %zu-%zu", col, g_block.x,
                 g_block.y, k0, k0 + P.chunk - 1);
    } else if (bytes && b >= P.X && b + 8 <= P.X + (size_t)P.M * P.K) {
        size_t col = (b - P.X) % P.K;
        need_wait("copies X");
        if (col < k0 || col + 8 > k0 + P.chunk)
            fail("copy of X column %zu: block (%u,%u) has columns %zu-%zu", col, g_block.x,
                 g_block.y, k0, k0 + P.chunk - 1);
    } else if (bytes) {
        fail("cp.async from outside X and W");
    }
    issue(dst, src, 16, bytes);
}

static void st_y(uint32_t *p, uint32_t v)
{
    bf16 *b = (bf16 *)p;
    if ((uintptr_t)p % 4 || b < P.Y || b + 2 > P.Y + (size_t)P.M * y_cols())
        fail("Y write outside Y");
    need_wait("writes Y");
    size_t e = (size_t)(b - P.Y);
    own_column(e, "Y write");
    P.y_writes[e]++, P.y_writes[e + 1]++;
    *p = v;
}

static void pg_st_part(float2 *p, float2 v)
{
    float *f = (float *)p;
    size_t split = (size_t)P.M * P.N;
    if ((uintptr_t)p % 8 || f < P.part || f + 2 > P.part + gridDim.y * split)
        fail("partial write outside the partials");
    need_wait("writes a partial");
    size_t e = (size_t)(f - P.part);
    if (e / split != g_block.y)
        fail("block (%u,%u) writes split %zu's partial", g_block.x, g_block.y, e / split);
    own_column(e % split, "partial write");
    P.part_launch[e] = P.part_launch[e + 1] = P.launch;
    P.stored[g_cur] = true, P.fenced[g_cur] = false;
    *p = v;
}

static float2 __ldcg(const float2 *p)
{
    const float *f = (const float *)p;
    size_t split = (size_t)P.M * P.N;
    if ((uintptr_t)p % 8 || f < P.part || f + 2 > P.part + gridDim.y * split)
        fail("partial read outside the partials");
    size_t e = (size_t)(f - P.part);
    own_column(e % split, "partial read");
    if (P.part_launch[e] != P.launch || P.part_launch[e + 1] != P.launch)
        fail("block (%u,%u) sums split %zu's partial before this launch wrote it", g_block.x,
             g_block.y, e / split);
    return *p;
}

static void __threadfence(void)
{
    P.fenced[g_cur] = true;
}

static int atomicAdd(int *p, int v)
{
    if (p != P.count + g_block.x) fail("block (%u,%u) counts another tile", g_block.x, g_block.y);
    for (int i = 0; i < NT; i++)
        if (P.stored[i] && !P.fenced[i])
            fail("block (%u,%u) counts before thread %d fenced its partials", g_block.x, g_block.y,
                 i);
    int old = *p;
    *p += v;
    return old;
}

static void st_count(int *p, int v)
{
    if (p != P.count + g_block.x) fail("block (%u,%u) resets another tile", g_block.x, g_block.y);
    *p = v;
}

static int __syncthreads_or(int pred)
{
    size_t e = (size_t)g_epoch;
    if (P.any.size() <= e) P.any.resize(e + 1, 0);
    if (pred) P.any[e] = 1;
    __syncthreads();
    return P.any[e];
}

/* ---- the fused norm and residual add ---- */
struct __nv_bfloat162 {
    bf16 x, y; /* x the low half */
};
static float2 __bfloat1622float2(__nv_bfloat162 v)
{
    return float2{bf2f(v.x), bf2f(v.y)};
}
typedef struct ssfk_pgemm_fuse {
    const float *norm_ss;
    const bf16 *gain;
    float eps;
    bf16 *res;
    float *res_ss;
} ssfk_pgemm_fuse;

/* the norm's group sums: [K / 64][MR], rows below M, after the wait */
static float __ldcg(const float *p)
{
    size_t n = (size_t)P.K / SSF_PGEMM_KS * SSF_PGEMM_MAX_M;
    if (P.fuse != 1 || p < P.norm_ss || p >= P.norm_ss + n) fail("read outside the norm's sums");
    need_wait("reads the norm's sums");
    if ((int)((p - P.norm_ss) % SSF_PGEMM_MAX_M) >= P.M) fail("a sum read of a row past M");
    return *p;
}
/* the residual stream [M][N]: the CTA's columns, after the wait */
static size_t res_at(const uint32_t *p, const char *what)
{
    const bf16 *b = (const bf16 *)p;
    if (P.fuse != 2 || (uintptr_t)p % 4 || b < P.res || b + 2 > P.res + (size_t)P.M * P.N)
        fail("%s outside the residual stream", what);
    need_wait(what);
    size_t e = (size_t)(b - P.res);
    own_column(e, what);
    return e;
}
static __nv_bfloat162 ld_res2(const uint32_t *p)
{
    res_at(p, "residual read");
    __nv_bfloat162 v;
    memcpy(&v, p, 4);
    return v;
}
static void st_res(uint32_t *p, uint32_t v)
{
    size_t e = res_at(p, "residual write");
    P.res_writes[e]++, P.res_writes[e + 1]++;
    *p = v;
}
/* a sum of squares: [N / 64][MR], of the CTA's columns and a row below M */
static void st_ss(float *p, float v)
{
    size_t n = (size_t)P.N / SSF_PGEMM_BN * SSF_PGEMM_MAX_M;
    if (P.fuse != 2 || p < P.res_ss || p >= P.res_ss + n) fail("write outside the sums");
    need_wait("writes a sum of squares");
    size_t e = (size_t)(p - P.res_ss), grp = e / SSF_PGEMM_MAX_M, row = e % SSF_PGEMM_MAX_M;
    size_t g0 = (size_t)g_block.x * P.bn / SSF_PGEMM_BN;
    if ((int)row >= P.M || grp < g0 || grp >= g0 + (size_t)P.bn / SSF_PGEMM_BN)
        fail("block (%u,%u) writes the sum of group %zu row %zu", g_block.x, g_block.y, grp, row);
    P.ss_writes[e]++;
    *p = v;
}

#define NORM_EPS 1e-6f

#include "pgemm_body.inc" /* extract.c writes it */

/* ---- launch ---- */
/* the build ssfk_pgemm's pgemm_build takes */
template <int BN> static void launch_bn(void)
{
    ssfk_pgemm_fuse fz = {P.norm_ss, P.gain, NORM_EPS, P.res, P.res_ss};
    auto kernel =
        P.fuse == FUSE_RES ? pgemm_kernel<BN, false, FUSE_RES>
        : P.fuse == FUSE_NORM
            ? (P.swiglu ? pgemm_kernel<BN, true, FUSE_NORM> : pgemm_kernel<BN, false, FUSE_NORM>)
            : (P.swiglu ? pgemm_kernel<BN, true, FUSE_NONE> : pgemm_kernel<BN, false, FUSE_NONE>);
    kernel(P.X, P.W, P.Y, P.part, P.count, P.M, P.N, P.K, P.chunk, P.stages, fz);
}
static void entry(void)
{
    if (P.bn == SSF_PGEMM_BN)
        launch_bn<SSF_PGEMM_BN>();
    else
        launch_bn<SSF_PGEMM_BN_WIDE>();
    thread_exit();
}

struct gcase {
    int M, N, K, swiglu, sms;
    size_t cta_smem, sm_smem; /* 0: an H100's */
    unsigned seed;
    int fuse = FUSE_NONE; /* or FUSE_NORM, FUSE_RES */
};

static double dot(const std::vector<bf16> &X, const std::vector<bf16> &W, int m, size_t n, int K)
{
    double acc = 0;
    for (int k = 0; k < K; k++)
        acc += (double)bf2f(X[(size_t)m * K + k]) * bf2f(W[n * K + k]);
    return acc;
}

/* Y[m][n] in doubles, and the error allowed: BF16's rounding of the sum
 * and fp32's of its terms; with SwiGLU's epilogue, h from the tile's gate
 * and up rows, each rounded to BF16, where a unit of the last place off
 * the kernel's fp32 sums carries through SiLU and the product. */
static double want_at(const std::vector<bf16> &X, const std::vector<bf16> &W, int m, int n,
                      const gcase &C, int bn, double *tol)
{
    if (!C.swiglu) {
        double want = dot(X, W, m, (size_t)n, C.K);
        *tol = 4e-3 * fabs(want) + 1e-5 * C.K;
        return want;
    }
    size_t half = (size_t)bn / 2, gate = n / half * bn + n % half;
    double g = dot(X, W, m, gate, C.K), u = dot(X, W, m, gate + half, C.K);
    double want = bf2f(silu_times(round_bf16((float)g), round_bf16((float)u)));
    *tol = fabs(want) / 32 + 1e-3;
    return want;
}

/* FUSE_NORM: the gains in [0.5, 1.5), each row's group sums of squares of
 * X (rows past M NaN: never read), and the X a separate ssfk_rmsnorm
 * would have written, which the double GEMM takes. */
static std::vector<bf16> norm_setup(const gcase &C, std::mt19937 &rng, const std::vector<bf16> &X,
                                    std::vector<bf16> &gain, std::vector<float> &sums)
{
    int groups = C.K / SSF_PGEMM_KS;
    gain.resize((size_t)C.K);
    for (auto &g : gain)
        g = f2bf((float)(1.0 + urand(rng) / 2));
    sums.assign((size_t)groups * SSF_PGEMM_MAX_M, NAN);
    std::vector<bf16> normed(X.size());
    for (int m = 0; m < C.M; m++) {
        float total = 0.0f;
        for (int j = 0; j < groups; j++) {
            float s = 0.0f;
            for (int c = j * SSF_PGEMM_KS; c < (j + 1) * SSF_PGEMM_KS; c++)
                s += bf2f(X[(size_t)m * C.K + c]) * bf2f(X[(size_t)m * C.K + c]);
            sums[(size_t)j * SSF_PGEMM_MAX_M + m] = s;
            total += s;
        }
        float r = rsqrtf(total / (float)C.K + NORM_EPS);
        for (int k = 0; k < C.K; k++)
            normed[(size_t)m * C.K + k] =
                f2bf(round_bf16(bf2f(X[(size_t)m * C.K + k]) * r) * bf2f(gain[k]));
    }
    return normed;
}

/* FUSE_RES: every sum of squares of the M rows the kernel wrote (rows past
 * M still NaN), against the new rows' in double. */
static void check_sums(const gcase &C, const std::vector<bf16> &res, const std::vector<float> &sums,
                       int &bad)
{
    for (int j = 0; j < C.N / SSF_PGEMM_BN; j++)
        for (int m = 0; m < SSF_PGEMM_MAX_M; m++) {
            float got = sums[(size_t)j * SSF_PGEMM_MAX_M + m];
            double want = 0;
            for (int c = j * SSF_PGEMM_BN; m < C.M && c < (j + 1) * SSF_PGEMM_BN; c++)
                want += (double)bf2f(res[(size_t)m * C.N + c]) * bf2f(res[(size_t)m * C.N + c]);
            bool ok = m < C.M ? fabs(got - want) <= 1e-5 * want + 1e-6 : isnan(got);
            if (!ok && bad++ < 8)
                printf("  the sum of squares of group %d row %d: got %g want %g\n", j, m, got,
                       want);
        }
}

/* Every CTA of the grid in ctas' order (shuffled first), each held to
 * queue want_early copies of W before its wait. */
template <typename F>
static void run_grid(std::vector<dim3e> &ctas, long want_early, int launch, F &complain)
{
    std::shuffle(ctas.begin(), ctas.end(), g_rng);
    for (dim3e b : ctas) {
        g_block = b;
        for (int i = 0; i < NT; i++)
            P.waited[i] = P.stored[i] = P.fenced[i] = false;
        P.any.clear();
        P.w_early = 0;
        run_threads(entry);
        if (P.w_early != want_early)
            complain("  launch %d block (%u,%u) queues %ld copies of W before the wait, not %ld\n",
                     launch, b.x, b.y, P.w_early, want_early);
    }
}

/* The unfused build on the X the norm must give (Xref): the fused launch's
 * output, bit for bit, is its Y (the norm), or bf16(x + Y) (the add). */
template <typename F>
static void check_unfused(const gcase &C, std::vector<dim3e> &ctas, long want_early,
                          const std::vector<bf16> &Xref, const std::vector<bf16> &res0,
                          const std::vector<bf16> &fused, std::vector<float> &part, F &complain)
{
    size_t cols = C.swiglu ? (size_t)C.N / 2 : (size_t)C.N;
    std::vector<bf16> Y((size_t)C.M * cols, (bf16)0xffff);
    P.fuse = FUSE_NONE, P.gain = NULL, P.norm_ss = NULL, P.res = NULL, P.res_ss = NULL;
    P.X = Xref.data(), P.Y = Y.data(), P.launch = 2;
    std::fill(part.begin(), part.end(), NAN);
    P.y_writes.assign(Y.size(), 0), P.part_launch.assign(part.size(), -1);
    run_grid(ctas, want_early, 2, complain);
    for (size_t e = 0; e < Y.size(); e++) {
        bf16 want = C.fuse == FUSE_RES ? f2bf(bf2f(res0[e]) + bf2f(Y[e])) : Y[e];
        if (fused[e] != want)
            complain("  fused element %zu: %#x, the unfused build's %#x\n", e, fused[e], want);
    }
}

static int run_case(const gcase &C)
{
    std::mt19937 rng(C.seed);
    ssf_pgemm_shape sh;
    size_t cta_smem = C.cta_smem ? C.cta_smem : 232448, sm_smem = C.sm_smem ? C.sm_smem : 233472;
    if (ssf_pgemm_plan(C.N, C.K, C.swiglu, C.sms, cta_smem, sm_smem, &sh)) fail("no plan");
    int M = C.M, N = C.N, K = C.K, slices = sh.chunk / SSF_PGEMM_KS, cols = C.swiglu ? N / 2 : N;
    long want_early = (long)std::min(sh.stages, slices) * sh.bn * SSF_PGEMM_KS / 8;
    std::vector<bf16> X((size_t)M * K), W((size_t)N * K), Y((size_t)M * cols), first;
    for (auto &x : X)
        x = f2bf((float)urand(rng));
    for (auto &w : W)
        w = f2bf((float)urand(rng));
    std::vector<float> part(sh.partial_floats ? sh.partial_floats : 1);
    std::vector<int> count(sh.tiles, 0);
    /* the fused norm: X the residual, Xref what the GEMM must multiply; the
     * residual add: the output is res, from res0, and its sums */
    bool res_out = C.fuse == FUSE_RES;
    std::vector<bf16> gain, Xref = X, res0, res;
    std::vector<float> norm_sums, sums;
    if (C.fuse == FUSE_NORM) Xref = norm_setup(C, rng, X, gain, norm_sums);
    if (res_out) {
        res0.resize((size_t)M * N);
        for (auto &x : res0)
            x = f2bf((float)(4 * urand(rng)));
        res = res0, Y.clear(), cols = N;
        sums.resize((size_t)N / SSF_PGEMM_BN * SSF_PGEMM_MAX_M);
    }
    std::vector<bf16> &out = res_out ? res : Y;
    std::vector<int> &writes = res_out ? P.res_writes : P.y_writes;
    P.fuse = C.fuse, P.gain = gain.empty() ? NULL : gain.data();
    P.norm_ss = norm_sums.empty() ? NULL : norm_sums.data();
    P.res = res_out ? res.data() : NULL, P.res_ss = res_out ? sums.data() : NULL;
    P.X = X.data(), P.W = W.data(), P.Y = res_out ? NULL : Y.data(), P.part = part.data();
    P.count = count.data();
    P.M = M, P.N = N, P.K = K, P.bn = sh.bn, P.chunk = sh.chunk, P.stages = sh.stages;
    P.swiglu = C.swiglu;
    smem_open(sh.smem);
    g_grid = {(unsigned)sh.tiles, (unsigned)sh.splits, 1};
    g_on_grid_dep_wait = on_wait;
    std::vector<dim3e> ctas = grid_blocks();
    int bad = 0;
    auto complain = [&](const char *fmt, auto... args) {
        if (bad++ < 8) printf(fmt, args...);
    };
    for (int launch = 0; launch < 2; launch++) {
        P.launch = launch, g_late = launch == 0;
        std::fill(Y.begin(), Y.end(), (bf16)0xffff);
        std::copy(res0.begin(), res0.end(), res.begin());
        std::fill(sums.begin(), sums.end(), NAN);
        std::fill(part.begin(), part.end(), NAN);
        P.y_writes.assign(Y.size(), 0), P.part_launch.assign(part.size(), -1);
        P.res_writes.assign(res.size(), 0), P.ss_writes.assign(sums.size(), 0);
        run_grid(ctas, want_early, launch, complain);
        for (size_t e = 0; e < out.size(); e++)
            if (writes[e] != 1)
                complain("  launch %d writes %s row %zu column %zu %d times\n", launch,
                         res_out ? "the residual" : "Y", e / cols, e % cols, writes[e]);
        for (size_t e = 0; e < sums.size(); e++)
            if (P.ss_writes[e] != ((int)(e % SSF_PGEMM_MAX_M) < M))
                complain("  launch %d writes the sum of group %zu row %zu %d times\n", launch,
                         e / SSF_PGEMM_MAX_M, e % SSF_PGEMM_MAX_M, P.ss_writes[e]);
        for (int t = 0; t < sh.tiles; t++)
            if (count[t])
                complain("  launch %d leaves tile %d's count at %d\n", launch, t, count[t]);
        if (launch == 0) first = out;
    }
    if (C.fuse != FUSE_NONE) check_unfused(C, ctas, want_early, Xref, res0, first, part, complain);
    g_on_grid_dep_wait = NULL;
    smem_close();
    if (memcmp(first.data(), out.data(), out.size() * sizeof(bf16)))
        complain("  the second launch differs from the first\n");
    if (res_out) check_sums(C, res, sums, bad);
    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < cols; n++) {
            double tol, want = want_at(Xref, W, m, n, C, sh.bn, &tol);
            if (res_out) { /* x + bf16(y), rounded to BF16 */
                want += bf2f(res0[(size_t)m * N + n]);
                tol += fabs(want) / 128;
            }
            double got = bf2f(first[(size_t)m * cols + n]), err = fabs(got - want);
            if (!(err <= tol)) complain("  out[%d][%d]: got %g want %g\n", m, n, got, want);
            if (!(err <= worst)) worst = err;
        }
    static const char *const fused[] = {"", " +norm", " +residual"};
    printf("%s M %2d N %5d K %4d%s%s: %d tiles of %d x %d splits of %d, a ring of %d (%zu bytes): "
           "worst abs err %.3g\n",
           bad ? "FAIL" : "ok  ", M, N, K, C.swiglu ? " SwiGLU" : "", fused[C.fuse], sh.tiles,
           sh.bn, sh.splits, sh.chunk, sh.stages, sh.smem, worst);
    fflush(stdout);
    return bad;
}

int main(int argc, char **argv)
{
    parse_emu_args(argc, argv, "pgemm_emu");
    const size_t A100_CTA = 166912, A100_SM = 167936;
    const gcase cases[] = {
        /* 1.5B's q|k|v at a batch of 64 on 132 SMs: 4 splits of 384, the
         * ring the whole chunk; a quarter of its columns on 8 SMs */
        {64, 2048, 1536, 0, 132, 0, 0, 1},
        {64, 256, 1536, 0, 8, 0, 0, 2},
        /* 0.5B's q|k|v (7 splits of 128) at rows that leave warps idle and
         * a 16-row block part-full */
        {33, 1152, 896, 0, 132, 0, 0, 3},
        {1, 1152, 896, 0, 132, 0, 0, 4},
        /* one tile over many splits, and a few over two */
        {17, 64, 1024, 0, 132, 0, 0, 5},
        {8, 192, 128, 0, 132, 0, 0, 6},
        /* one split: Y written straight */
        {64, 256, 512, 0, 4, 0, 0, 7},
        /* streaming: chunks longer than the ring, which wraps round 3-4
         * times (two 128-column tiles on two SMs: 24 slices through 8
         * slots) */
        {64, 256, 1536, 0, 2, 0, 0, 8},
        {40, 192, 2048, 0, 3, A100_CTA, A100_SM, 9},
        /* gate|up with SwiGLU's epilogue: 128-column tiles on few SMs (24
         * slices through 8 slots; an A100's room), 64-column ones unsplit
         * (one row; seven tiles of 33 rows), and rows past M */
        {64, 256, 1536, 1, 2, 0, 0, 10},
        {24, 384, 1280, 1, 3, A100_CTA, A100_SM, 11},
        {1, 64, 640, 1, 132, 0, 0, 12},
        {33, 448, 512, 1, 132, 0, 0, 13},
        /* five CTAs on one SM: rings of 2 over 16 slices; a ring of 4 by a
         * CTA's limit, with SwiGLU's epilogue; three 128-column tiles,
         * unsplit, on one SM (a ring of 2 over 24 slices); 1.5B's down on
         * 4 SMs (2 splits of 70 slices through 8 slots) */
        {16, 320, 1024, 0, 1, 0, 0, 14},
        {64, 64, 1024, 1, 1, 83000, 0, 15},
        {64, 384, 1536, 0, 1, 0, 0, 16},
        {64, 128, 8960, 0, 4, 0, 0, 17},
        /* the norm before fused in: q|k|v-like over splits, gate|up-like
         * with SwiGLU's epilogue, rows past M; the residual add after:
         * o-like over splits (64- and 128-column groups), down-like, and
         * unsplit 128-column tiles */
        {64, 256, 1536, 0, 8, 0, 0, 18, FUSE_NORM},
        {33, 448, 512, 1, 132, 0, 0, 19, FUSE_NORM},
        {64, 256, 1536, 1, 2, 0, 0, 20, FUSE_NORM},
        {64, 1536, 1536, 0, 132, 0, 0, 21, FUSE_RES},
        {17, 128, 8960, 0, 4, 0, 0, 22, FUSE_RES},
        {64, 384, 1536, 0, 1, 0, 0, 23, FUSE_RES},
        {5, 256, 512, 0, 4, 0, 0, 24, FUSE_RES},
    };
    int fails = 0;
    for (const gcase &c : cases) {
        int bad = run_case(c);
        fails += bad != 0;
        if (bad && g_fail_fast) break;
    }
    printf(fails ? "FAILURES\n" : "all ok\n");
    return fails != 0;
}
