/*
 * decode_emu.cpp - runs the paged decode attention kernel's own source
 * (backends/engine/cuda_attention.cu: paged_attention_kernel and its
 * helpers, copied out by extract.c) on the CPU, for machines without a
 * GPU.  As prefill_emu.cpp: a CTA's 128 threads are coroutines, the warp
 * collectives (mma.m16n8k16, ldmatrix.x4.trans, shfl) follow the PTX ISA's
 * fragment layouts, cp.async lands at issue or only at wait_group, threads
 * run in random order.  What the decode kernel adds:
 *
 *  - warps that only __syncwarp: the race detector orders accesses by the
 *    CTA's barriers and by each warp's __syncwarp (not by its collectives,
 *    which the PTX memory model does not make fences), so a stage that a
 *    lane refills while another still reads it is a race;
 *  - the whole grid, CTA after CTA in a shuffled order, then with splits
 *    the merge kernel (attn_combine_kernel), block after block, twice over
 *    the same partials (NaN-filled before each launch, as cuda_ops.cu's
 *    run_attention does): every output and partial element written once per
 *    launch, the merge reading only partials of its own row and head that
 *    this launch wrote, and the second launch equal to the first bit for
 *    bit;
 *  - FP8 pools: e4m3 decoded bit-exactly (every e4m3 value is a half and a
 *    float, so __nv_cvt_fp8x2_to_halfraw2 needs no rounding model);
 *  - every copy from the pool must be a K or V row of the CTA's own row's
 *    sequence, KV head and layer, at a position of its split that the row
 *    sees; every q read of the CTA's row and heads; every output write of
 *    its row and heads;
 *  - with RoPE in the kernel (its build with ssfk_attn_rope), each listed
 *    row's own position's K and V (NaN before each launch) must be stored
 *    by one warp, bit for bit as qkv_rope_store would (bias, rotate-half
 *    RoPE, e4m3 and its scale), before that warp copies them, with a
 *    __syncwarp between; q is rotated at its load, checked through the
 *    output;
 *  - the programmatic launch's wait: q|k|v, the angles, and every store
 *    only after it; copies from the pool before it only in the RoPE build,
 *    only of positions before the row's own (which that step writes), and
 *    there every warp whose first tile ends before that position queues
 *    it before the wait.
 *
 * It follows the PTX spec, not the hardware: it is no substitute for the
 * GPU check, but it runs the kernel's logic wherever a C++ compiler does.
 * Usage: decode_emu [-x] [-s seed]: -x stops at the first failing case, -s
 * seeds the thread and CTA orders (1 by default).
 */
#include <math.h>
#include <stdarg.h>
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

/* ---- what the emulator knows of the launch and the CTA ---- */
struct pool_row {
    int seq, pos, head, kv; /* seq -1: not a row of any sequence (NaN) */
};
static struct {
    const char *pool;
    size_t pool_bytes;
    int elem, hd; /* bytes an element: 2 BF16, 1 fp8 */
    std::vector<pool_row> owner;
    const float *scales;
    size_t n_scales;
    const bf16 *qkv;
    size_t qkv_elems;
    int width; /* a q|k|v row, elements */
    bf16 *out;
    size_t out_elems;
    std::vector<int> out_writes;
    float *part;
    size_t part_floats, n_parts;
    std::vector<int> part_launch, part_writes; /* the launch that wrote each, and how often */
    const int32_t *rows;
    int n_list, n_rows, launch, nh, splits;
    const int32_t *seq, *pos, *tab, *tab_off;
    std::vector<int> tab_len;
    int nkv;
    /* RoPE in the kernel: the rows' angles (NULL: off) and the bias; per
     * pool row (and scale), the launch whose kernel last stored it, and
     * the storing warp and its __syncwarp epoch then */
    const float2 *cs;
    const float *bias;
    std::vector<int> own_launch, own_warp, own_wep;
} G;
/* the CTA's row, sequence, KV head, heads h0 .. h0 + ng - 1 and positions
 * [lo, hi), and the row's own position p: what its reads and writes must
 * stay within */
static struct {
    int r, seq, kvh, h0, ng, lo, hi, p;
    bool waited[SSF_ATTN_THREADS];       /* each thread past grid_dep_wait */
    bool early[SSF_ATTN_THREADS / WARP]; /* each warp copied from the pool before it */
} E;
static void on_wait(void)
{
    E.waited[g_cur] = true;
}
/* what the kernel before may still be writing, or reading, is touched only
 * after the wait */
static void after_wait(const char *what)
{
    if (!E.waited[g_cur])
        fail("%s before grid_dep_wait: block (%u,%u,%u) thread %d", what, g_block.x, g_block.y,
             g_block.z, g_cur);
}

/* ---- global memory ---- */
static uint32_t ld32g(const uint32_t *p)
{
    after_wait("q read");
    const bf16 *b = (const bf16 *)p;
    if ((uintptr_t)p % 4 || b < G.qkv || b + 2 > G.qkv + G.qkv_elems) fail("q read outside qkv");
    size_t e = (size_t)(b - G.qkv), row = e / G.width, col = e % G.width;
    if ((int)row != E.r || col < (size_t)E.h0 * G.hd || col + 2 > (size_t)(E.h0 + E.ng) * G.hd)
        fail("q read of row %zu column %zu: block (%u,%u,%u) is row %d heads %d-%d", row, col,
             g_block.x, g_block.y, g_block.z, E.r, E.h0, E.h0 + E.ng - 1);
    return *p;
}
static void st_out(bf16 *p, bf16 v)
{
    after_wait("output write");
    if (p < G.out || p >= G.out + G.out_elems) fail("output write outside out");
    size_t e = (size_t)(p - G.out), row = e / ((size_t)G.nh * G.hd), h = e / G.hd % G.nh;
    if ((int)row != E.r || (int)h < E.h0 || (int)h >= E.h0 + E.ng)
        fail("output write at row %zu head %zu: block (%u,%u,%u) is row %d heads %d-%d", row, h,
             g_block.x, g_block.y, g_block.z, E.r, E.h0, E.h0 + E.ng - 1);
    G.out_writes[e]++;
    *p = v;
}
/* the (row-list index, head, split) of a partial's element */
static void part_of(size_t i, size_t *x, size_t *h, size_t *z)
{
    size_t k = i < G.n_parts * G.hd ? i / G.hd : (i - G.n_parts * G.hd) / 2;
    size_t s = (size_t)G.splits;
    *z = k % s, *h = k / s % G.nh, *x = k / s / G.nh;
}
static void st_part(float *p, float v)
{
    after_wait("partial write");
    if (!G.part || p < G.part || p >= G.part + G.part_floats) fail("partial write outside part");
    size_t i = (size_t)(p - G.part), x, h, z;
    part_of(i, &x, &h, &z);
    if (x != g_block.x || z != g_block.z || (int)h < E.h0 || (int)h >= E.h0 + E.ng)
        fail("block (%u,%u,%u) writes the partial of (%zu, head %zu, split %zu)", g_block.x,
             g_block.y, g_block.z, x, h, z);
    G.part_launch[i] = G.launch, G.part_writes[i]++;
    *p = v;
}
/* a merge block (row-list index blockIdx.x, head blockIdx.y) reads the
 * partials of its own row and head that the attention launch before it
 * wrote */
static float ld_part(const float *p)
{
    if (!G.part || p < G.part || p >= G.part + G.part_floats) fail("merge read outside part");
    size_t i = (size_t)(p - G.part), x, h, z;
    part_of(i, &x, &h, &z);
    if (x != g_block.x || h != g_block.y)
        fail("merge block (%u,%u) reads the partial of (%zu, head %zu)", g_block.x, g_block.y, x,
             h);
    if (G.part_launch[i] != G.launch)
        fail("merge block (%u,%u) reads split %zu's partial, which this launch did not write",
             g_block.x, g_block.y, z);
    return *p;
}
static int ld_row(const int32_t *rows, unsigned i)
{
    if (rows != G.rows || i >= (unsigned)G.n_list) fail("row list read at %u", i);
    return rows[i];
}
static int ld_pos(const int32_t *pos, int r)
{
    if (pos != G.pos || r < 0 || r >= G.n_rows) fail("pos read at row %d", r);
    return pos[r];
}

/* ---- RoPE in the kernel: cuda_common.cuh's helpers, from their spec ---- */
#define FP8_PER_LANE 4
/* column j of the CTA's row: q of its heads, or k and v of its KV head */
static float biased(const bf16 *row, const float *bias, int j)
{
    int hd = G.hd, kcol = (G.nh + E.kvh) * hd, vcol = (G.nh + G.nkv + E.kvh) * hd;
    after_wait("q|k|v read");
    if (row != G.qkv + (size_t)E.r * G.width) fail("q|k|v read of another row than %d", E.r);
    bool q = j >= E.h0 * hd && j < (E.h0 + E.ng) * hd;
    bool kv = (j >= kcol && j < kcol + hd) || (j >= vcol && j < vcol + hd);
    if (!q && !kv)
        fail("q|k|v read of column %d: block (%u,%u,%u) is heads %d-%d, KV head %d", j, g_block.x,
             g_block.y, g_block.z, E.h0, E.h0 + E.ng - 1, E.kvh);
    if (bias != G.bias) fail("a bias other than the q|k|v bias");
    float x = bf2f(row[j]);
    return bias ? round_bf16(x + bias[j]) : x;
}
static float2 ld_cs(const float2 *p)
{
    const float2 *row = G.cs + (size_t)E.r * (G.hd / 2);
    after_wait("angle read");
    if (!G.cs || p < row || p >= row + G.hd / 2) fail("angle read outside row %d's", E.r);
    return *p;
}
/* a store of the row's own K or V (or its scale) at position p, pool row
 * `row`: of the CTA's sequence and KV head, by one warp */
static void own_store(size_t row, const char *what)
{
    after_wait(what);
    const pool_row &o = G.owner[row];
    if (!G.cs || o.seq != E.seq || o.pos != E.p || o.head != E.kvh)
        fail("%s to pool row %zu (seq %d pos %d head %d): block (%u,%u,%u) may store seq %d pos "
             "%d head %d",
             what, row, o.seq, o.pos, o.head, g_block.x, g_block.y, g_block.z, E.seq, E.p, E.kvh);
    int w = g_cur / 32;
    if (G.own_launch[row] == G.launch && G.own_warp[row] != w)
        fail("%s: warps %d and %d both store pool row %zu", what, G.own_warp[row], w, row);
    G.own_launch[row] = G.launch, G.own_warp[row] = w, G.own_wep[row] = g_wep[w];
}
static void st_pool(bf16 *p, bf16 v)
{
    const bf16 *base = (const bf16 *)G.pool;
    if (G.elem != 2 || p < base || (const char *)(p + 1) > G.pool + G.pool_bytes)
        fail("K/V store outside the pool");
    own_store((size_t)(p - base) / G.hd, "K/V store");
    *p = v;
}
/* as cuda_common.cuh: the row's largest magnitude maps to 448 */
static void store_fp8_row(const float (&v)[FP8_PER_LANE], const int (&col)[FP8_PER_LANE], int n,
                          uint8_t *dst, float *scale)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(v[i]));
    for (int o = 16; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float sc = amax > 0.0f ? amax / 448.0f : 1.0f;
    for (int i = 0; i < n; i++) {
        uint8_t *q = dst + col[i];
        if (G.elem != 1 || (const char *)q < G.pool || (const char *)q >= G.pool + G.pool_bytes)
            fail("e4m3 store outside the pool");
        own_store((size_t)((const char *)q - G.pool) / G.hd, "e4m3 store");
        *q = to_e4m3(v[i] / sc);
    }
    if (g_cur % 32) return;
    if (!G.scales || scale < G.scales || scale >= G.scales + G.n_scales)
        fail("scale store outside the scales");
    own_store((size_t)(scale - G.scales), "scale store");
    *scale = sc;
}
/* a copy of the row's own position must follow its store, by the same
 * warp with a __syncwarp between */
static void check_stored(size_t row, const char *what)
{
    if (!G.cs || G.owner[row].pos != E.p) return;
    int w = g_cur / 32;
    if (G.own_launch[row] != G.launch)
        fail("%s of pool row %zu (position %d) before the kernel stored it, block (%u,%u,%u)", what,
             row, E.p, g_block.x, g_block.y, g_block.z);
    if (G.own_warp[row] != w || g_wep[w] <= G.own_wep[row])
        fail("%s of pool row %zu by warp %d, which warp %d stored with no __syncwarp between", what,
             row, w, G.own_warp[row]);
}

/* ---- cp.async ---- */
/* a copy from the pool (or its scales) must bring a row of the CTA's row's
 * sequence, KV head and layer at a position it attends to in its split;
 * before the wait, only in the RoPE build and before the row's own
 * position */
static void check_row(size_t row, const char *what)
{
    const pool_row &o = G.owner[row];
    if (o.seq != E.seq || o.head != E.kvh || o.pos < E.lo || o.pos >= E.hi)
        fail("%s of pool row %zu (seq %d pos %d head %d %c): block (%u,%u,%u) wants seq %d head "
             "%d positions %d-%d",
             what, row, o.seq, o.pos, o.head, o.kv ? 'V' : 'K', g_block.x, g_block.y, g_block.z,
             E.seq, E.kvh, E.lo, E.hi - 1);
    if (E.waited[g_cur]) return;
    if (!G.cs || o.pos >= E.p)
        fail("%s of position %d before grid_dep_wait: block (%u,%u,%u) (own position %d%s)", what,
             o.pos, g_block.x, g_block.y, g_block.z, E.p, G.cs ? "" : ", no RoPE");
    E.early[g_cur / WARP] = true;
}
static void cp_async16(void *dst, const void *src, int bytes)
{
    if (bytes != 0 && bytes != 16) fail("cp.async bytes %d", bytes);
    if (bytes) {
        const char *s = (const char *)src;
        if (s < G.pool || s + 16 > G.pool + G.pool_bytes) fail("cp.async src outside the pool");
        check_row((size_t)(s - G.pool) / G.elem / G.hd, "cp.async");
        check_stored((size_t)(s - G.pool) / G.elem / G.hd, "cp.async");
    }
    issue(dst, src, 16, bytes);
}
static void cp_async4(void *dst, const void *src, int bytes)
{
    if (bytes != 0 && bytes != 4) fail("cp.async 4 bytes %d", bytes);
    if (bytes) {
        const float *s = (const float *)src;
        if (!G.scales || s < G.scales || s >= G.scales + G.n_scales)
            fail("scale copy outside the scales");
        check_row((size_t)(s - G.scales), "scale copy");
        check_stored((size_t)(s - G.scales), "scale copy");
    }
    issue(dst, src, 4, bytes);
}
/* ---- the paged walk (cuda_common.cuh), bounds-checked ---- */
static size_t kv_pos(ssfk_kv_layout kv, const int32_t *table, int layer, int p)
{
    if (table != G.tab + G.tab_off[E.seq])
        fail("block (%u,%u,%u) walks another row's table", g_block.x, g_block.y, g_block.z);
    if (p < E.lo || p >= E.hi)
        fail("table read at position %d: block (%u,%u,%u) has positions %d-%d", p, g_block.x,
             g_block.y, g_block.z, E.lo, E.hi - 1);
    if (p / kv.block_size >= G.tab_len[E.seq]) fail("table read past the table");
    size_t blk = (size_t)table[p / kv.block_size];
    return blk * kv.block_stride + (size_t)layer * kv.layer_stride +
           (size_t)(p % kv.block_size) * kv.head_dim;
}
static const int32_t *row_table(ssfk_tables tb, int r)
{
    if (r < 0 || r >= G.n_rows || tb.seq != G.seq) fail("row_table of row %d", r);
    return tb.tab + tb.tab_off[tb.seq[r]];
}

#include "decode_body.inc" /* extract.c writes it */

static float scale_log2_of(int hd)
{
    return 1.4426950408889634f / sqrtf((float)hd);
}

/* ---- launch ---- */
struct launch_args {
    ssfk_attn_io io;
    ssfk_attn_rope rope;
    const int32_t *rows;
    float *part;
    int head_chunks, chunk;
    float scale;
    bool in_block;
};
static launch_args *g_args;
template <int HD, bool FP8, bool ROPE> static void entry(void)
{
    launch_args *a = g_args;
    paged_attention_kernel<HD, FP8, ROPE>(a->io, a->rope, a->rows, a->part, a->head_chunks,
                                          a->chunk, a->scale, a->in_block);
    thread_exit();
}
/* as attention_hd: the RoPE build when the launch has angles */
template <int HD, bool FP8> static void run_cta(launch_args *a)
{
    g_args = a;
    run_threads(a->rope.cs ? entry<HD, FP8, true> : entry<HD, FP8, false>);
}

/* ---- a test case ---- */
struct rowspec {
    int seq, pos;
};
struct dcase {
    int hd, nh, nkv, bs, slots, fp8;
    std::vector<rowspec> rows; /* every row of io */
    std::vector<int> list;     /* the row list; empty: NULL, rows 0 .. */
    unsigned seed;
    int rope = 0, bias = 0; /* RoPE and the KV store in the kernel; a q|k|v bias */
};

/* A case with RoPE in the kernel: what its rows' q|k|v and the kernel's
 * stores must be.  Each listed row's k and v are raw (before bias and RoPE)
 * in its q|k|v row, its pool rows at its position are the kernel's to
 * store (NaN before each launch), and q for the reference is rotated here. */
struct own_row {
    size_t at;                  /* element offset of the pool row */
    std::vector<uint8_t> bytes; /* what the kernel must store there */
    float scale;                /* fp8 */
};
struct rope_setup {
    std::vector<float> bias;
    std::vector<float2> cs;
    std::vector<bf16> qref; /* the q|k|v rows with q rotated */
    std::vector<own_row> own;
};
/* the pool row's bytes for the BF16-rounded values x, and what they read
 * back as */
template <int HD, bool FP8> static own_row stored(size_t at, const float *x, double *back)
{
    own_row o{at, std::vector<uint8_t>(HD * (FP8 ? 1 : 2)), 0.0f};
    float amax = 0;
    for (int d = 0; d < HD; d++)
        amax = std::max(amax, fabsf(x[d]));
    o.scale = amax > 0 ? amax / 448.0f : 1.0f;
    for (int d = 0; d < HD; d++) {
        if (FP8) {
            o.bytes[d] = to_e4m3(x[d] / o.scale);
            back[d] = (double)e4m3(o.bytes[d]) * o.scale;
        } else {
            bf16 b = f2bf(x[d]);
            memcpy(&o.bytes[2 * d], &b, 2);
            back[d] = bf2f(b);
        }
    }
    return o;
}
template <int HD, bool FP8>
static void setup_rope(const dcase &C, std::mt19937 &rng, const std::vector<int> &listed,
                       const int32_t *seq, const int32_t *pos, const int32_t *tab,
                       const int32_t *tab_off, ssfk_kv_layout kv, int layer, std::vector<bf16> &qkv,
                       std::vector<std::vector<double>> &K, std::vector<std::vector<double>> &V,
                       rope_setup &R)
{
    int nh = C.nh, nkv = C.nkv, half = HD / 2, width = (nh + 2 * nkv) * HD;
    int n_rows = (int)C.rows.size();
    if (C.bias)
        for (int c = 0; c < width; c++)
            R.bias.push_back((float)(0.5 * urand(rng)));
    R.cs.assign((size_t)n_rows * half, float2{NAN, NAN});
    for (size_t i = 0; i < listed.size(); i++) {
        int r = listed[i], s = seq[r], p = pos[r];
        bf16 *row = &qkv[(size_t)r * width];
        /* the first listed row's k and v are zeros without a bias: fp8
         * scale 1 */
        for (int c = nh * HD; c < width; c++)
            row[c] = i == 0 && !C.bias ? 0 : f2bf((float)urand(rng));
        for (int d = 0; d < half; d++) {
            double a = p * pow(10000.0, -2.0 * d / HD);
            R.cs[(size_t)r * half + d] = float2{(float)cos(a), (float)sin(a)};
        }
        auto b = [&](int c) {
            float x = bf2f(row[c]);
            return R.bias.empty() ? x : bf2f(f2bf(x + R.bias[c]));
        };
        auto rotate = [&](int col, float *out) {
            for (int d = 0; d < half; d++) {
                float2 o = rope_pair(b(col + d), b(col + d + half), R.cs[(size_t)r * half + d]);
                out[d] = o.x, out[d + half] = o.y;
            }
        };
        float x[HD];
        for (int h = 0; h < nh; h++) {
            rotate(h * HD, x);
            for (int d = 0; d < HD; d++)
                R.qref[(size_t)r * width + h * HD + d] = f2bf(x[d]);
        }
        for (int h = 0; h < nkv; h++) {
            size_t at = (size_t)tab[tab_off[s] + p / kv.block_size] * kv.block_stride +
                        layer * kv.layer_stride + h * kv.head_stride +
                        (size_t)(p % kv.block_size) * HD;
            rotate((nh + h) * HD, x);
            R.own.push_back(stored<HD, FP8>(at, x, &K[s][((size_t)p * nkv + h) * HD]));
            for (int d = 0; d < HD; d++)
                x[d] = b((nh + nkv + h) * HD + d);
            R.own.push_back(
                stored<HD, FP8>(at + kv.v_offset, x, &V[s][((size_t)p * nkv + h) * HD]));
        }
    }
}

/* attn_combine_kernel over the partials, as attention_hd launches it:
 * block (row-list index, head) of HD threads, blocks and threads in a
 * shuffled order (they share nothing) */
template <int HD>
static void merge_launch(const launch_args &a, const std::vector<int> &listed, int group)
{
    dim3e attn_grid = g_grid;
    g_grid = {attn_grid.x, (unsigned)a.io.n_heads, 1};
    std::vector<dim3e> blocks;
    for (unsigned h = 0; h < g_grid.y; h++)
        for (unsigned x = 0; x < g_grid.x; x++)
            blocks.push_back({x, h, 0});
    std::shuffle(blocks.begin(), blocks.end(), g_rng);
    int threads[HD];
    for (int t = 0; t < HD; t++)
        threads[t] = t;
    for (dim3e b : blocks) {
        g_block = b;
        E.r = listed[b.x], E.kvh = (int)b.y / group, E.h0 = (int)b.y, E.ng = 1;
        std::shuffle(threads, threads + HD, g_rng);
        for (int t : threads) {
            g_cur = t, g_ctx[t].tidx = {(unsigned)t, 0, 0};
            attn_combine_kernel<HD>(a.io.out, a.part, a.rows, a.io.n_heads, G.splits);
        }
    }
    g_grid = attn_grid;
}

/* In the RoPE build, every warp whose first tile ends before the row's own
 * position queued it before the wait (copies of it after the wait are a
 * lost overlap, not a wrong result: only this finds them). */
template <typename F> static void check_early(int launch, F &complain)
{
    int warps = SSF_ATTN_THREADS / WARP;
    int n_tiles = E.hi > E.lo ? (E.hi - E.lo + SSF_ATTN_TILE - 1) / SSF_ATTN_TILE : 0;
    for (int w = 0; w < warps; w++) {
        int first = E.lo + w * SSF_ATTN_TILE;
        bool want = w < n_tiles && std::min(first + SSF_ATTN_TILE, E.hi) <= E.p;
        if (E.early[w] != want)
            complain("  launch %d block (%u,%u,%u) warp %d %s its first tile (%d-%d, own "
                     "position %d) before the wait\n",
                     launch, g_block.x, g_block.y, g_block.z, w, want ? "does not copy" : "copies",
                     first, std::min(first + SSF_ATTN_TILE, E.hi) - 1, E.p);
    }
}

template <int HD, bool FP8> static int run_case(const dcase &C)
{
    std::mt19937 rng(C.seed);
    int nh = C.nh, nkv = C.nkv, bs = C.bs, group = nh / nkv;
    int n_layers = 2, layer = 1, width = (nh + 2 * nkv) * HD, elem = FP8 ? 1 : 2;
    int n_rows = (int)C.rows.size(), n_seqs = 0;
    for (auto &r : C.rows)
        n_seqs = std::max(n_seqs, r.seq + 1);
    ssfk_kv_layout kv;
    kv.block_size = bs, kv.head_dim = HD, kv.head_stride = (size_t)bs * HD;
    kv.v_offset = (size_t)nkv * kv.head_stride, kv.layer_stride = 2 * kv.v_offset;
    kv.block_stride = (size_t)n_layers * kv.layer_stride, kv.fp8 = FP8, kv.scales = NULL;
    /* a sequence's context ends at its furthest row; its table holds just
     * the blocks of that, shuffled among some spare ones */
    std::vector<int> ctx(n_seqs, 0), need(n_seqs);
    std::vector<int32_t> seq, pos;
    for (auto &r : C.rows) {
        seq.push_back(r.seq), pos.push_back(r.pos);
        ctx[r.seq] = std::max(ctx[r.seq], r.pos + 1);
    }
    int total = 0;
    for (int s = 0; s < n_seqs; s++)
        total += need[s] = (ctx[s] + bs - 1) / bs;
    int n_blocks = total + 3;
    std::vector<int32_t> perm(n_blocks), tab_off(n_seqs), tab;
    for (int i = 0; i < n_blocks; i++)
        perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int s = 0; s < n_seqs; s++) {
        tab_off[s] = (int32_t)tab.size();
        for (int i = 0; i < need[s]; i++)
            tab.push_back(perm[tab.size()]);
    }
    /* the pool: NaN everywhere (e4m3 0x7f), then each sequence's rows */
    size_t elems = (size_t)n_blocks * kv.block_stride, n_prow = elems / HD;
    char *pool = (char *)aligned_alloc(128, elems * elem);
    if (FP8)
        memset(pool, 0x7f, elems);
    else
        std::fill((bf16 *)pool, (bf16 *)pool + elems, (bf16)0x7fc0);
    std::vector<float> scales(FP8 ? n_prow : 0, NAN);
    std::vector<pool_row> owner(n_prow, pool_row{-1, -1, -1, 0});
    std::vector<std::vector<double>> K(n_seqs), V(n_seqs); /* the values the kernel should see */
    for (int s = 0; s < n_seqs; s++) {
        K[s].resize((size_t)ctx[s] * nkv * HD), V[s].resize((size_t)ctx[s] * nkv * HD);
        for (int p = 0; p < ctx[s]; p++)
            for (int h = 0; h < nkv; h++)
                for (int kvs = 0; kvs < 2; kvs++) {
                    size_t at = (size_t)tab[tab_off[s] + p / bs] * kv.block_stride +
                                layer * kv.layer_stride + kvs * kv.v_offset + h * kv.head_stride +
                                (size_t)(p % bs) * HD;
                    double *ref = (kvs ? V[s] : K[s]).data() + ((size_t)p * nkv + h) * HD;
                    owner[at / HD] = pool_row{s, p, h, kvs};
                    float x[HD], amax = 0;
                    for (int d = 0; d < HD; d++)
                        x[d] = bf2f(f2bf((float)((kvs ? 1 : 2) * urand(rng)))),
                        amax = std::max(amax, fabsf(x[d]));
                    if (!FP8) {
                        for (int d = 0; d < HD; d++)
                            ((bf16 *)pool)[at + d] = f2bf(x[d]), ref[d] = x[d];
                        continue;
                    }
                    /* as qkv_rope_store: the row's largest magnitude maps to 448
                     * (now and then a row of zeros, scale 0) */
                    float sc = p % 97 == 5 ? 0.0f : amax / 448.0f;
                    scales[at / HD] = sc;
                    for (int d = 0; d < HD; d++) {
                        uint8_t b = sc ? to_e4m3(x[d] / sc) : 0;
                        pool[at + d] = (char)b;
                        ref[d] = (double)e4m3(b) * sc;
                    }
                }
    }
    std::vector<bf16> qkv((size_t)n_rows * width, 0x7fc0); /* k and v parts stay NaN */
    for (int r = 0; r < n_rows; r++)
        for (int i = 0; i < nh * HD; i++)
            qkv[(size_t)r * width + i] = f2bf((float)(2 * urand(rng)));
    std::vector<int32_t> list(C.list.begin(), C.list.end());
    int n_list = list.empty() ? n_rows : (int)list.size();
    std::vector<int> listed(n_list);
    for (int i = 0; i < n_list; i++)
        listed[i] = list.empty() ? i : list[i];
    rope_setup R;
    R.qref = qkv;
    if (C.rope) {
        std::vector<char> seen(n_seqs, 0);
        for (int r : listed)
            if (seen[seq[r]]++) fail("a RoPE case lists two rows of sequence %d", seq[r]);
        setup_rope<HD, FP8>(C, rng, listed, seq.data(), pos.data(), tab.data(), tab_off.data(), kv,
                            layer, qkv, K, V, R);
    }
    int max_ctx = 0;
    for (int r : listed)
        max_ctx = std::max(max_ctx, pos[r] + 1);
    ssf_attn_shape sh;
    if (ssf_attn_plan(n_list, nkv, group, max_ctx, HD, bs, C.slots, &sh)) fail("no plan");
    if (C.rope && sh.head_chunks != 1) fail("RoPE in the kernel needs one head chunk");
    std::vector<float> part(sh.partial_floats);

    G.pool = pool, G.pool_bytes = elems * elem, G.elem = elem, G.hd = HD;
    G.owner.swap(owner);
    G.scales = FP8 ? scales.data() : NULL, G.n_scales = scales.size();
    G.qkv = qkv.data(), G.qkv_elems = qkv.size(), G.width = width;
    G.out_elems = (size_t)n_rows * nh * HD;
    std::vector<bf16> out(G.out_elems), first(G.out_elems);
    G.out = out.data();
    G.part = sh.splits > 1 ? part.data() : NULL, G.part_floats = part.size();
    G.n_parts = (size_t)n_list * nh * sh.splits;
    G.splits = sh.splits;
    G.rows = list.empty() ? NULL : list.data(), G.n_list = n_list, G.n_rows = n_rows, G.nh = nh;
    G.seq = seq.data(), G.pos = pos.data(), G.tab = tab.data(), G.tab_off = tab_off.data();
    G.tab_len = need;
    G.nkv = nkv;
    G.cs = C.rope ? R.cs.data() : NULL;
    G.bias = C.rope && C.bias ? R.bias.data() : NULL;
    G.own_launch.assign(n_prow, -1), G.own_warp.assign(n_prow, -1), G.own_wep.assign(n_prow, -1);

    kv.scales = FP8 ? scales.data() : NULL;
    launch_args a;
    a.io = ssfk_attn_io{out.data(),
                        qkv.data(),
                        pool,
                        kv,
                        layer,
                        pos.data(),
                        ssfk_tables{seq.data(), tab_off.data(), tab.data()},
                        nh,
                        nkv};
    a.rope = ssfk_attn_rope{G.cs, G.bias};
    a.rows = G.rows, a.part = G.part;
    a.head_chunks = sh.head_chunks, a.chunk = sh.chunk, a.scale = scale_log2_of(HD);
    /* as attention_hd: tiles start at a multiple of SSF_ATTN_TILE past a
     * chunk's start */
    a.in_block = bs % SSF_ATTN_TILE == 0 && sh.chunk % SSF_ATTN_TILE == 0;
    smem_open(sh.smem);
    g_on_grid_dep_wait = on_wait;
    g_grid = {(unsigned)sh.grid[0], (unsigned)sh.grid[1], (unsigned)sh.grid[2]};

    std::vector<dim3e> ctas = grid_blocks();
    int bad = 0;
    auto complain = [&](const char *fmt, auto... args) {
        if (bad++ < 8) printf(fmt, args...);
    };
    for (int launch = 0; launch < 2; launch++) {
        /* the first launch lands copies at wait, the second at issue */
        G.launch = launch, g_late = launch == 0;
        std::fill(out.begin(), out.end(), (bf16)0xffff);
        std::fill(part.begin(), part.end(), NAN);
        G.out_writes.assign(G.out_elems, 0);
        G.part_launch.assign(part.size(), -1), G.part_writes.assign(part.size(), 0);
        for (const own_row &o : R.own) { /* the kernel's to store, again each launch */
            memset(pool + o.at * elem, FP8 ? 0x7f : 0xff, o.bytes.size());
            if (FP8) scales[o.at / HD] = NAN;
        }
        std::shuffle(ctas.begin(), ctas.end(), g_rng);
        for (dim3e b : ctas) {
            g_block = b;
            E.r = listed[b.x], E.seq = seq[E.r], E.kvh = b.y / sh.head_chunks;
            int qc = b.y % sh.head_chunks;
            E.h0 = E.kvh * group + qc * SSF_ATTN_MAX_GROUP;
            E.ng = std::min(SSF_ATTN_MAX_GROUP, group - qc * SSF_ATTN_MAX_GROUP);
            E.lo = (int)b.z * sh.chunk, E.hi = std::min(pos[E.r] + 1, E.lo + sh.chunk);
            E.p = pos[E.r];
            std::fill(std::begin(E.waited), std::end(E.waited), false);
            std::fill(std::begin(E.early), std::end(E.early), false);
            run_cta<HD, FP8>(&a);
            if (C.rope) check_early(launch, complain);
        }
        if (sh.splits > 1) merge_launch<HD>(a, listed, group);
        for (size_t i = 0; sh.splits > 1 && i < part.size(); i++)
            if (G.part_writes[i] != 1)
                complain("  launch %d writes partial %zu %d times\n", launch, i, G.part_writes[i]);
        std::vector<char> is_listed(n_rows, 0);
        for (int r : listed)
            is_listed[r] = 1;
        for (size_t e = 0; e < G.out_elems; e++) {
            int r = (int)(e / ((size_t)nh * HD));
            if (G.out_writes[e] != is_listed[r])
                complain("  launch %d writes row %d head %d col %d %d times (listed: %d)\n", launch,
                         r, (int)(e / HD % nh), (int)(e % HD), G.out_writes[e], is_listed[r]);
        }
        for (const own_row &o : R.own) {
            size_t row = o.at / HD;
            bool scale_ok = !FP8 || (G.own_launch[row] == launch &&
                                     !memcmp(&scales[row], &o.scale, sizeof(float)));
            if (G.own_launch[row] != launch ||
                memcmp(pool + o.at * elem, o.bytes.data(), o.bytes.size()) || !scale_ok)
                complain("  launch %d: pool row %zu (seq %d pos %d head %d %c) is not what the "
                         "kernel must store\n",
                         launch, row, G.owner[row].seq, G.owner[row].pos, G.owner[row].head,
                         G.owner[row].kv ? 'V' : 'K');
        }
        if (launch == 0) first = out;
    }
    g_on_grid_dep_wait = NULL;
    smem_close();
    free(pool);
    /* the second launch, in another CTA order with NaN partials, must
     * match the first exactly (the merge runs in split order) */
    for (size_t e = 0; e < G.out_elems; e++)
        if (memcmp(&first[e], &out[e], 2))
            complain("  the second launch differs at element %zu: %#x, first %#x\n", e, out[e],
                     first[e]);
    /* against softmax(q K^T / sqrt(hd)) V in double */
    double worst = 0;
    for (int r : listed) {
        int s = seq[r], p = pos[r];
        for (int h = 0; h < nh; h++) {
            double want[HD];
            attention_ref(&R.qref[(size_t)r * width + h * HD], K[s], V[s], p, nkv, h / group, HD,
                          want);
            for (int d = 0; d < HD; d++) {
                double o = want[d];
                double got = bf2f(first[((size_t)r * nh + h) * HD + d]);
                double err = fabs(got - o);
                if (!(err <= 8e-3 + 2e-3 * fabs(o)))
                    complain("  row %d (pos %d) head %d col %d: got %g want %g\n", r, p, h, d, got,
                             o);
                if (!(err <= worst)) worst = err;
            }
        }
    }
    char rl[64] = "-";
    for (size_t i = 0, n = 0; i < C.list.size() && n < sizeof rl - 8; i++)
        n += snprintf(rl + n, sizeof rl - n, "%s%d", i ? "," : "", C.list[i]);
    printf("%s hd %d heads %2d/%d bs %2d %s%s rows %d list %s max ctx %4d splits %2d chunk %d "
           "in_block %d CTAs %zu: worst abs err %.3g\n",
           bad ? "FAIL" : "ok  ", HD, nh, nkv, bs, FP8 ? "fp8 " : "bf16",
           C.rope ? (C.bias ? " rope+bias" : " rope") : "", n_rows, rl, max_ctx, sh.splits,
           sh.splits > 1 ? sh.chunk : -1, a.in_block, ctas.size(), worst);
    fflush(stdout);
    return bad;
}

static int run(const dcase &c)
{
    if (c.hd == 64) return c.fp8 ? run_case<64, true>(c) : run_case<64, false>(c);
    return c.fp8 ? run_case<128, true>(c) : run_case<128, false>(c);
}

/* check_attention's rows (tests/test_engine_cuda.c): one sequence of n_ctx
 * positions, rows at 0, 1, the middle and the last two */
static std::vector<rowspec> ctx_rows(int n)
{
    std::vector<rowspec> r;
    for (int p : {0, 1, n / 2, n - 2, n - 1})
        r.push_back({0, std::max(0, std::min(p, n - 1))});
    return r;
}

int main(int argc, char **argv)
{
    parse_emu_args(argc, argv, "decode_emu");
    const int S = 10000; /* slots: split where the context allows */
    std::vector<dcase> cases = {
        /* check_attention's unsplit cases: GQA 5, 6, 7, 8, 1 and 12 (two
         * head chunks); block sizes 16, 1 and 48 */
        {128, 5, 1, 16, 1, 0, ctx_rows(3), {}, 1},
        {128, 10, 2, 16, 1, 1, ctx_rows(300), {}, 2},
        {128, 12, 2, 1, 1, 0, ctx_rows(129), {}, 3},
        {64, 14, 2, 16, 1, 1, ctx_rows(200), {}, 4},
        {64, 7, 1, 48, 1, 0, ctx_rows(64), {}, 5},
        {128, 16, 2, 16, 1, 0, ctx_rows(1000), {}, 6},
        {64, 4, 4, 16, 1, 1, ctx_rows(65), {}, 7},
        {64, 12, 1, 16, 1, 0, ctx_rows(100), {}, 8},
        {64, 6, 1, 7, 1, 1, ctx_rows(150), {}, 9},
        /* split-KV */
        {128, 5, 1, 16, S, 0, ctx_rows(2000), {}, 10},
        {64, 14, 2, 1, S, 1, ctx_rows(1000), {}, 11},
        {128, 16, 2, 48, S, 0, ctx_rows(777), {}, 12},
        {64, 4, 4, 16, S, 0, ctx_rows(4096), {}, 13},
        {128, 8, 1, 16, S, 1, ctx_rows(1500), {}, 14},
        /* row lists that are not the identity, rows of several sequences
         * (only the listed rows are written) */
        {128, 24, 2, 7, S, 0, {{0, 1200}, {1, 0}, {2, 700}, {0, 40}}, {3, 0, 2}, 15},
        {64, 12, 1, 48, 1, 1, {{0, 300}, {1, 20}, {2, 95}, {1, 5}}, {3, 0, 2}, 16},
        {64, 5, 1, 16, S, 1, {{0, 100}, {1, 2500}, {0, 7}, {2, 300}, {1, 0}}, {4, 1, 3, 0}, 17},
        /* groups of 16 (two full head chunks), 10 (8 + 2) and 3; block
         * sizes 32, 128 and 24; rows at tile and chunk edges, a launch of
         * a few splits (slots 200) */
        {128, 32, 2, 32, S, 1, ctx_rows(1024), {}, 18},
        {64, 30, 3, 128, 1, 0, ctx_rows(600), {}, 19},
        {128,
         12,
         4,
         24,
         200,
         0,
         {{0, 15}, {0, 16}, {0, 63}, {0, 64}, {0, 191}, {0, 192}, {0, 1023}},
         {},
         20},
        {64,
         6,
         2,
         16,
         200,
         1,
         {{0, 127}, {0, 128}, {1, 255}, {1, 256}, {2, 1791}},
         {4, 2, 0, 3, 1},
         21},
        /* many splits: 37, and 29 with a row list */
        {128, 3, 1, 16, S, 0, {{0, 6999}, {1, 3000}, {0, 5}}, {}, 22},
        {64, 4, 2, 32, S, 1, {{0, 5500}, {1, 5499}}, {1, 0}, 23},
        /* RoPE and the KV store in the kernel (one row a sequence): unsplit
         * and split, BF16 and fp8, with and without a bias, row lists,
         * positions 0 and at tile, block and chunk edges */
        {128, 12, 2, 16, 1, 0, {{0, 300}, {1, 17}, {2, 0}}, {}, 30, 1, 1},
        {128, 7, 1, 16, S, 1, {{0, 2000}, {1, 45}}, {}, 31, 1, 1},
        {64, 14, 2, 1, S, 0, {{0, 999}, {1, 1}}, {1, 0}, 32, 1, 0},
        {64, 6, 2, 48, 200, 1, {{0, 127}, {1, 128}, {2, 1791}, {3, 0}}, {3, 1, 0, 2}, 33, 1, 1},
        {128, 8, 1, 24, S, 0, {{0, 4095}, {1, 16}, {2, 15}}, {}, 34, 1, 1},
        {128, 5, 1, 16, 1, 1, {{0, 63}, {1, 64}, {2, 1000}, {3, 5}}, {}, 35, 1, 0},
        {64, 4, 4, 7, S, 1, {{0, 3000}, {1, 70}}, {}, 36, 1, 1},
    };
    /* e4m3 against values the format defines */
    if (e4m3(0x7e) != 448.0f || e4m3(0x38) != 1.0f || e4m3(0xb8) != -1.0f ||
        e4m3(0x08) != ldexpf(1, -6) || e4m3(0x01) != ldexpf(1, -9) || e4m3(0x07) != ldexpf(7, -9) ||
        e4m3(0x00) != 0.0f || !isnan(e4m3(0x7f)) || !isnan(e4m3(0xff)) || to_e4m3(448.0f) != 0x7e ||
        to_e4m3(-1.0f) != 0xb8 || to_e4m3(1.0625f) != 0x38 || to_e4m3(ldexpf(1, -10)) != 0x00 ||
        to_e4m3(ldexpf(3, -10)) != 0x02)
        fail("e4m3 self-check");
    int fails = 0;
    for (auto &c : cases) {
        int bad = run(c);
        fails += bad != 0;
        if (bad && g_fail_fast) break;
    }
    printf(fails ? "FAILURES\n" : "all ok\n");
    return fails != 0;
}
