/*
 * rows_emu.cpp - runs the CUDA device's row kernels' own source
 * (backends/engine/cuda_kernels.cu from warp_sum to the timing section:
 * RMSNorm, bias + RoPE + KV store, SiLU . up, the gains' fold; copied out by
 * extract.c, with cuda_common.cuh's normed_biased, the folded norm's own
 * arithmetic; the other helpers are emu_math.h's) on the CPU, through their own host launchers.  A
 * CTA's 256 threads are emu_cta.h's coroutines in random order, CTAs in a shuffled one.  What it
 * holds them to:
 *
 *  - the norms folded into the GEMMs (the device option fold_norms): the
 *    weights times their gains bit for bit as BF16 rounds them; q|k|v of
 *    x . (W g)^T scaled by each row's 1 / rms, through bias, RoPE and the
 *    KV store (BF16 and fp8 pools), and SwiGLU's h of gate|up scaled the
 *    same way, against the same in double from the unrounded norm: within
 *    the error of the unfolded path (the RMSNorm kernel, then the GEMM on
 *    its BF16 rows) times 2, plus 2^-9 of the row's largest value (2^-4
 *    with an fp8 pool), and both within 2^-6 of it (2^-3);
 *  - the unfolded kernels as before: SiLU . up bit for bit against
 *    silu_times, RoPE within the same bounds;
 *  - every output element written (outputs start as NaN) and nothing past
 *    an output or the pool (guard words after each).
 *
 * Rows are scaled so that their 1 / rms lies far from 1 (0.01-90): a
 * scale applied to the wrong values, or a row's sums taken from another
 * row, shows as an error of the order of the values; a row of zeros needs
 * the norm's eps.  Host GEMMs stand in
 * for cuBLAS's (fp32 sums, rounded to BF16 once).
 *
 * Usage: rows_emu [-x] [-s seed]: -x stops at the first failing case, -s
 * seeds the thread and CTA orders (1 by default).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "cuda_plan.h"
#include "emu.h"
#define EMU_THREADS 256 /* what every launch here asks for */
#include "emu_cta.h"
#include "emu_math.h"

/* ---- the CUDA runtime the launchers use ---- */
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
typedef void *cudaStream_t;
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
static const dim3e g_block_dim = {NT, 1, 1};
#define blockDim g_block_dim

/* what a launch's threads run: the kernel on its arguments, then the end */
static std::function<void()> g_body;
static void entry(void)
{
    g_body();
    thread_exit();
}

/* Every CTA of the grid, shuffled, each to the end (emu_cta.h). */
template <typename... Params, typename... Args>
static cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                              cudaStream_t st, Args... args)
{
    (void)st;
    if (smem) fail("a row kernel asks for %zu bytes of dynamic shared memory", smem);
    if (block.x != NT || block.y != 1 || block.z != 1)
        fail("a launch of %ux%ux%u threads; the emulator runs %d", block.x, block.y, block.z, NT);
    g_grid = {grid.x, grid.y, grid.z};
    g_body = [&]() { kernel(args...); };
    std::vector<dim3e> ctas = grid_blocks();
    std::shuffle(ctas.begin(), ctas.end(), g_rng);
    for (dim3e b : ctas) {
        g_block = b;
        run_threads(entry);
    }
    return cudaSuccess;
}

/* ---- what the kernels take from cuda_kernels.cuh and cuda_common.cuh ---- */
typedef struct ssfk_row_norm {
    const bf16 *x;
    int C;
    float eps;
} ssfk_row_norm;

static float g_rows_buf[WARP]; /* the kernels' __shared__ reduction buffer */

/* cuda_common.cuh's constants, and the e4m3 conversion its store_fp8_row
 * calls (saturating: the row's scale keeps |x| within 448) */
#define FP8_MAX 448.0f
#define FP8_PER_LANE 4
enum { __NV_SATFINITE };
static uint8_t __nv_cvt_float_to_fp8(float x, int saturate, int kind)
{
    if (saturate != __NV_SATFINITE || kind != __NV_E4M3)
        fail("fp8 conversion %d/%d", saturate, kind);
    return to_e4m3(fminf(fmaxf(x, -FP8_MAX), FP8_MAX));
}

/* extract.c writes it, the helpers it borrows from cuda_common.cuh first */
#include "rows_body.inc"

/* ---- buffers with guards ---- */
enum { GUARD = 64 };
static const bf16 BF16_NAN = 0x7fc0, GUARD_WORD = 0x5a5a;

/* n values, then GUARD guard words that no kernel may touch */
template <typename T> struct guarded {
    std::vector<T> v;
    T guard;
    guarded(size_t n, T fill, T g) : v(n + GUARD, g), guard(g)
    {
        std::fill_n(v.begin(), n, fill);
    }
    T *data()
    {
        return v.data();
    }
    size_t size() const
    {
        return v.size() - GUARD;
    }
    bool intact() const
    {
        for (size_t i = size(); i < v.size(); i++)
            if (memcmp(&v[i], &guard, sizeof guard)) return false;
        return true;
    }
};

static int g_bad;
static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
    if (g_bad++ >= 8) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static bf16 rand_bf16(std::mt19937 &rng, double scale)
{
    return f2bf((float)(scale * urand(rng)));
}

/* Rows whose 1 / rms spans 0.01-90: row r's values uniform within
 * +-10^(r % 5 - 1.7); of 3 rows or more the last is zeros, which only the
 * norm's eps keeps finite. */
static std::vector<bf16> rows_far_from_unit(std::mt19937 &rng, int R, int C)
{
    std::vector<bf16> x((size_t)R * C);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            x[(size_t)r * C + c] =
                R >= 3 && r == R - 1 ? 0 : rand_bf16(rng, pow(10.0, r % 5 - 1.7));
    return x;
}

/* 1 / rms of each row, in double */
static std::vector<double> rstd_ref(const std::vector<bf16> &x, int R, int C, float eps)
{
    std::vector<double> out(R);
    for (int r = 0; r < R; r++) {
        double ss = 0;
        for (int c = 0; c < C; c++)
            ss += (double)bf2f(x[(size_t)r * C + c]) * bf2f(x[(size_t)r * C + c]);
        out[r] = 1.0 / sqrt(ss / C + eps);
    }
    return out;
}

/* Y [R][N] = X [R][K] . W [N][K]^T: fp32 sums rounded to BF16 once, as
 * cuBLAS's GEMM with an fp32 compute type gives them */
static std::vector<bf16> gemm_bf16(const bf16 *X, const bf16 *W, int R, int N, int K)
{
    std::vector<bf16> Y((size_t)R * N);
    for (int r = 0; r < R; r++)
        for (int n = 0; n < N; n++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += bf2f(X[(size_t)r * K + k]) * bf2f(W[(size_t)n * K + k]);
            Y[(size_t)r * N + n] = f2bf(s);
        }
    return Y;
}

/* ---- the gains' fold ---- */
static void check_fold(std::mt19937 &rng, int N, int K)
{
    std::vector<bf16> W((size_t)N * K), g(K);
    for (auto &w : W)
        w = rand_bf16(rng, 0.1);
    for (auto &x : g)
        x = rand_bf16(rng, 3);
    guarded<bf16> Wf(W.size(), 0, GUARD_WORD);
    std::copy(W.begin(), W.end(), Wf.data());
    if (ssfk_fold_gains(Wf.data(), g.data(), N, K, NULL) != cudaSuccess) fail("fold launch");
    int differ = 0;
    for (size_t e = 0; e < W.size(); e++)
        differ += Wf.data()[e] != f2bf(bf2f(W[e]) * bf2f(g[e % K]));
    if (differ) complain("  fold %dx%d: %d weights unlike bf16(w . g)\n", N, K, differ);
    if (!Wf.intact()) complain("  fold %dx%d: a write past the weights\n", N, K);
    printf("%s fold %d x %d\n", differ || !Wf.intact() ? "FAIL" : "ok  ", N, K);
}

/* ---- bias + RoPE + KV store, folded and not ---- */
struct rope_case {
    int R, H, nh, nkv, hd, bs, fp8, bias;
};

/* The paged pool of one layer's worth of two layers (layer 1 written): row
 * r is sequence r at position pos[r], its table blocks in shuffled order. */
struct pool {
    ssfk_kv_layout kv;
    int per_seq;
    std::vector<int32_t> seq, tab_off, tab, pos;
    guarded<bf16> bf;
    guarded<uint8_t> fp8;
    guarded<float> scales;
    pool(const rope_case &C, std::mt19937 &rng)
        : per_seq(4), bf(0, 0, 0), fp8(0, 0, 0), scales(0, 0, 0)
    {
        kv = ssfk_kv_layout_make(2, C.nkv, C.bs, C.hd);
        kv.fp8 = C.fp8;
        size_t blocks = (size_t)C.R * per_seq, elems = blocks * kv.block_stride;
        for (int r = 0; r < C.R; r++) {
            seq.push_back(r), tab_off.push_back(r * per_seq);
            pos.push_back((int)(rng() % (unsigned)(per_seq * C.bs)));
        }
        tab_off.push_back(C.R * per_seq);
        for (int b = 0; b < (int)blocks; b++)
            tab.push_back(b);
        std::shuffle(tab.begin(), tab.end(), rng);
        if (C.fp8) {
            fp8 = guarded<uint8_t>(elems, 0x7f, 0xa5); /* 0x7f: e4m3's NaN */
            scales = guarded<float>(elems / C.hd, NAN, -7.0f);
            kv.scales = scales.data();
        } else {
            bf = guarded<bf16>(elems, BF16_NAN, GUARD_WORD);
        }
    }
    void *data()
    {
        return kv.fp8 ? (void *)fp8.data() : (void *)bf.data();
    }
    ssfk_tables tables() const
    {
        return ssfk_tables{seq.data(), tab_off.data(), tab.data()};
    }
    /* K (sel 0) or V (sel 1) of KV head h at row r's position, element d:
     * the pool's layout worked out here, not through the kernels' kv_pos */
    float at(int r, int sel, int h, int d) const
    {
        int p = pos[r], blk = tab[tab_off[r] + p / kv.block_size];
        size_t row = (size_t)blk * kv.block_stride + kv.layer_stride +
                     (size_t)(p % kv.block_size) * kv.head_dim + sel * kv.v_offset +
                     (size_t)h * kv.head_stride;
        if (!kv.fp8) return bf2f(bf.v[row + d]);
        return e4m3(fp8.v[row + d]) * scales.v[row / kv.head_dim];
    }
    bool intact() const
    {
        return kv.fp8 ? fp8.intact() && scales.intact() : bf.intact();
    }
};

/* q, k, v of every row in double: x normalised by rstd (1: x is already
 * the norm's output) and gains (NULL: none), times W, plus the bias, q and
 * k rotated at the row's position */
static std::vector<double> qkv_ref(const rope_case &C, const std::vector<bf16> &x,
                                   const std::vector<double> &rstd, const bf16 *gains,
                                   const std::vector<bf16> &W, const std::vector<float> &bias,
                                   const std::vector<float> &inv, const std::vector<int32_t> &pos)
{
    int width = (C.nh + 2 * C.nkv) * C.hd, half = C.hd / 2;
    std::vector<double> out((size_t)C.R * width);
    for (int r = 0; r < C.R; r++) {
        double *o = &out[(size_t)r * width];
        for (int n = 0; n < width; n++) {
            double s = 0;
            for (int k = 0; k < C.H; k++)
                s += bf2f(x[(size_t)r * C.H + k]) * rstd[r] * (gains ? bf2f(gains[k]) : 1.0) *
                     bf2f(W[(size_t)n * C.H + k]);
            o[n] = s + (C.bias ? bias[n] : 0.0);
        }
        for (int h = 0; h < C.nh + C.nkv; h++)
            for (int d = 0; d < half; d++) {
                double a = (double)((float)pos[r] * inv[d]), c = cos(a), sn = sin(a);
                double x1 = o[h * C.hd + d], x2 = o[h * C.hd + d + half];
                o[h * C.hd + d] = x1 * c - x2 * sn, o[h * C.hd + d + half] = x2 * c + x1 * sn;
            }
    }
    return out;
}

/* The largest error of the kernel's q (in place in qkv) and pool rows
 * against ref, each row's relative to its largest reference value; -1 when
 * an element was not written. */
static double rope_error(const rope_case &C, const bf16 *qkv, const pool &P,
                         const std::vector<double> &ref)
{
    int width = (C.nh + 2 * C.nkv) * C.hd;
    double worst = 0;
    for (int r = 0; r < C.R; r++) {
        const double *o = &ref[(size_t)r * width];
        double big = 1e-30;
        for (int n = 0; n < width; n++)
            big = fmax(big, fabs(o[n]));
        for (int n = 0; n < width; n++) {
            int qcol = n < C.nh * C.hd, sel = (n - C.nh * C.hd) / (C.nkv * C.hd);
            int h = (n - C.nh * C.hd) % (C.nkv * C.hd) / C.hd, d = n % C.hd;
            double got = qcol ? bf2f(qkv[(size_t)r * width + n]) : P.at(r, sel, h, d);
            if (isnan(got)) return -1;
            worst = fmax(worst, fabs(got - o[n]) / big);
        }
    }
    return worst;
}

static void check_rope(std::mt19937 &rng, const rope_case &C)
{
    const float eps = 1e-6f;
    int width = (C.nh + 2 * C.nkv) * C.hd;
    std::vector<bf16> x = rows_far_from_unit(rng, C.R, C.H), g(C.H), W((size_t)width * C.H);
    for (auto &v : g)
        v = rand_bf16(rng, 2);
    for (auto &w : W)
        w = rand_bf16(rng, 0.05);
    std::vector<float> bias(width), inv(C.hd / 2);
    for (auto &b : bias)
        b = (float)urand(rng);
    ssfk_inv_freq(inv.data(), C.hd, 10000.0);
    /* both paths on the same pool layout: tables and positions from seed 7 */
    std::mt19937 layout(7);
    std::vector<double> ref =
        qkv_ref(C, x, rstd_ref(x, C.R, C.H, eps), g.data(), W, bias, inv, pool(C, layout).pos);
    double err[2];
    bool intact = true;
    for (int folded = 0; folded < 2; folded++) {
        layout.seed(7);
        pool P(C, layout);
        std::vector<bf16> qkv;
        ssfk_row_norm nm = {x.data(), C.H, eps};
        if (folded) {
            std::vector<bf16> Wf = W;
            ssfk_fold_gains(Wf.data(), g.data(), width, C.H, NULL);
            qkv = gemm_bf16(x.data(), Wf.data(), C.R, width, C.H);
        } else {
            guarded<bf16> xn((size_t)C.R * C.H, BF16_NAN, GUARD_WORD);
            std::vector<bf16> xc = x;
            ssfk_rmsnorm(xc.data(), NULL, g.data(), xn.data(), C.R, C.H, eps, NULL);
            intact = intact && xn.intact();
            qkv = gemm_bf16(xn.data(), W.data(), C.R, width, C.H);
        }
        guarded<bf16> q(qkv.size(), 0, GUARD_WORD);
        std::copy(qkv.begin(), qkv.end(), q.data());
        if (ssfk_qkv_rope_store(q.data(), C.bias ? bias.data() : NULL, P.pos.data(), P.tables(),
                                inv.data(), P.data(), P.kv, 1, C.R, C.nh, C.nkv,
                                folded ? &nm : NULL, NULL) != cudaSuccess)
            fail("rope launch");
        err[folded] = rope_error(C, q.data(), P, ref);
        intact = intact && q.intact() && P.intact();
    }
    /* BF16's roundings: a few 2^-9 of the row's largest value; an fp8
     * pool's rows carry e4m3's 2^-4 on top */
    double floor = C.fp8 ? 1.0 / 16 : 1.0 / 512, bound = C.fp8 ? 1.0 / 8 : 1.0 / 64;
    bool ok = err[0] >= 0 && err[1] >= 0 && err[0] <= bound && err[1] <= bound &&
              err[1] <= 2 * err[0] + floor && intact;
    if (err[0] < 0 || err[1] < 0) complain("  an element of q, K or V was not written\n");
    if (!intact) complain("  a write past an output or the pool\n");
    printf("%s rope R %d H %d heads %d/%d hd %d bs %d%s%s: worst error %.3g folded, %.3g not\n",
           ok ? "ok  " : "FAIL", C.R, C.H, C.nh, C.nkv, C.hd, C.bs, C.fp8 ? " fp8" : "",
           C.bias ? " bias" : "", err[1], err[0]);
    g_bad += !ok;
}

/* ---- SiLU . up, folded and not ---- */
static void check_silu(std::mt19937 &rng, int R, int H, int inter, int block)
{
    const float eps = 1e-6f;
    std::vector<bf16> x = rows_far_from_unit(rng, R, H), gu((size_t)R * 2 * inter);
    for (auto &v : gu)
        v = rand_bf16(rng, 40); /* x . (W g)^T: of the order of x's rows */
    std::vector<double> rstd = rstd_ref(x, R, H, eps);
    ssfk_row_norm nm = {x.data(), H, eps};
    guarded<bf16> plain((size_t)R * inter, BF16_NAN, GUARD_WORD),
        h(plain.size(), BF16_NAN, GUARD_WORD);
    ssfk_silu_mul(plain.data(), gu.data(), R, inter, block, NULL, NULL);
    ssfk_silu_mul(h.data(), gu.data(), R, inter, block, &nm, NULL);
    int exact_off = 0, unwritten = 0;
    double worst = 0;
    for (int r = 0; r < R; r++) {
        const bf16 *row = &gu[(size_t)r * 2 * inter];
        double big = 1e-30;
        std::vector<double> want(inter);
        for (int c = 0; c < inter; c++) {
            int gate = block ? c / block * 2 * block + c % block : c;
            int up = gate + (block ? block : inter);
            exact_off +=
                plain.data()[(size_t)r * inter + c] != silu_times(bf2f(row[gate]), bf2f(row[up]));
            double gv = bf2f(row[gate]) * rstd[r], uv = bf2f(row[up]) * rstd[r];
            want[c] = gv / (1 + exp(-gv)) * uv;
            big = fmax(big, fabs(want[c]));
        }
        for (int c = 0; c < inter; c++) {
            double got = bf2f(h.data()[(size_t)r * inter + c]);
            if (isnan(got))
                unwritten++;
            else
                worst = fmax(worst, fabs(got - want[c]) / big);
        }
    }
    /* three roundings to BF16 (g, u, silu(g)) and the product's */
    bool ok = !exact_off && !unwritten && worst <= 4.0 / 256 && plain.intact() && h.intact();
    if (exact_off) complain("  %d outputs of the unfolded build unlike silu_times\n", exact_off);
    if (unwritten) complain("  %d outputs not written\n", unwritten);
    if (!plain.intact() || !h.intact()) complain("  a write past h\n");
    printf("%s silu R %d inter %d block %d: worst error %.3g folded\n", ok ? "ok  " : "FAIL", R,
           inter, block, worst);
    g_bad += !ok;
}

int main(int argc, char **argv)
{
    parse_emu_args(argc, argv, "rows_emu");
    smem_open(16);
    std::mt19937 rng(11);
    check_fold(rng, 24, 300);
    check_fold(rng, 3, 1536);
    const rope_case ropes[] = {
        {5, 96, 4, 2, 16, 4, 0, 1},    {5, 96, 4, 2, 16, 4, 0, 0},   {3, 64, 2, 1, 32, 16, 1, 1},
        {7, 160, 6, 1, 32, 8, 0, 1},   {2, 128, 2, 2, 64, 16, 1, 0}, {3, 200, 1, 1, 128, 16, 0, 1},
        {2, 256, 2, 1, 128, 16, 1, 1},
    };
    for (const rope_case &C : ropes) {
        check_rope(rng, C);
        if (g_fail_fast && g_bad) return 1;
    }
    check_silu(rng, 5, 96, 2500, 0);
    check_silu(rng, 3, 64, 2500, 50);
    check_silu(rng, 4, 40, 2048, 0);
    check_silu(rng, 2, 300, 37, 0);
    smem_close();
    printf(g_bad ? "FAILED\n" : "all ok\n");
    return g_bad ? 1 : 0;
}
