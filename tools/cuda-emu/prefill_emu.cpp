/*
 * prefill_emu.cpp - runs the flash prefill kernel's own source
 * (backends/engine/cuda_prefill.cu, copied out by extract.c) on the CPU,
 * for machines without a GPU, on emu_cta.h's CTA: 128 coroutine threads in
 * random order, mma.m16n8k16, ldmatrix.x4.trans and shfl from the PTX
 * ISA's fragment layouts (written from the spec, not from cuda_mma.cuh),
 * cp.async copies landing at issue or only at wait_group.  It fails on a
 * shared-memory race (accesses of different threads not ordered by a
 * barrier), a read of a word in flight or never written, a misaligned
 * access, a block-table read past a sequence's staged table, a copy from
 * outside the pool, and an output element written other than once for a
 * q-block row (never for others); the outputs must match a
 * double-precision reference.  It follows the
 * PTX spec, not the hardware: it is no substitute for the GPU check, but
 * it runs the kernel's logic wherever a C++ compiler does.
 */
#include <assert.h>
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

static_assert(SSF_PREFILL_THREADS == NT, "a prefill CTA is emu_cta.h's");

/* ---- global memory ---- */
static const char *g_pool;
static size_t g_pool_bytes;
static const char *g_qkv;
static size_t g_qkv_bytes;
static const float *g_scales; /* an fp8 pool's, one a row */
static size_t g_n_scales;
static char *g_out;
static size_t g_out_bytes;
static std::vector<int> g_out_writes; /* per 4 bytes */
static uint32_t ld32g(const uint32_t *p)
{
    const char *c = (const char *)p;
    if (c < g_qkv || c + 4 > g_qkv + g_qkv_bytes || (uintptr_t)c % 4) fail("bad q read");
    return *p;
}
static void st32g(uint32_t *p, uint32_t v)
{
    char *c = (char *)p;
    if (c < g_out || c + 4 > g_out + g_out_bytes || (uintptr_t)c % 4) fail("bad out write");
    g_out_writes[(c - g_out) / 4]++;
    *p = v;
}

/* ---- cp.async: from the pool or its scales only ---- */
static void cp_async16(void *dst, const void *src, int bytes)
{
    if (bytes != 0 && bytes != 16) fail("cp.async bytes %d", bytes);
    if (bytes && ((const char *)src < g_pool || (const char *)src + 16 > g_pool + g_pool_bytes))
        fail("cp.async src outside the pool");
    issue(dst, src, 16, bytes);
}
static void cp_async4(void *dst, const void *src, int bytes)
{
    if (bytes != 0 && bytes != 4) fail("cp.async 4 bytes %d", bytes);
    const float *f = (const float *)src;
    if (bytes && (!g_scales || f < g_scales || f >= g_scales + g_n_scales))
        fail("scale copy outside the scales");
    issue(dst, src, 4, bytes);
}

/* ---- the paged walk (cuda_common.cuh), bounds-checked ---- */
static int g_tab_len; /* entries of the CTA's sequence's table */
static size_t kv_pos(ssfk_kv_layout kv, const int32_t *table, int layer, int p)
{
    if (p < 0 || p / kv.block_size >= g_tab_len)
        fail("table read at position %d (entry %d of %d)", p, p / kv.block_size, g_tab_len);
    size_t blk = (size_t)table[p / kv.block_size];
    return blk * kv.block_stride + (size_t)layer * kv.layer_stride +
           (size_t)(p % kv.block_size) * kv.head_dim;
}
static const int32_t *row_table(ssfk_tables tb, int r)
{
    return tb.tab + tb.tab_off[tb.seq[r]];
}

#include "prefill_body.inc" /* extract.c writes it */

static float scale_log2_of(int hd)
{
    return 1.4426950408889634f / sqrtf((float)hd);
}

/* ---- launch ---- */
template <int HD> struct launch_args {
    ssfk_attn_io io;
    const int32_t *qb;
    float scale;
};
static void *g_args;
template <int HD, bool FP8> static void entry(void)
{
    launch_args<HD> *a = (launch_args<HD> *)g_args;
    prefill_attention_kernel<HD, FP8>(a->io, a->qb, a->scale);
    thread_exit();
}
template <int HD, bool FP8> static void run_cta(launch_args<HD> *a)
{
    g_args = a;
    run_threads(entry<HD, FP8>);
}

/* ---- a test case ---- */
struct seqspec {
    int p0, n; /* rows at positions p0 .. p0 + n - 1 */
};

/* A K or V row of hd values as the pool holds it at `at` (BF16, or e4m3
 * with its scale in scales[at / hd], as qkv_rope_store writes them; now
 * and then a row of zeros, scale 0), and in ref the values the kernel
 * should see. */
static void put_row(char *pool, std::vector<float> &scales, size_t at, int hd, bool fp8,
                    float range, std::mt19937 &rng, float *ref)
{
    float x[128], amax = 0;
    for (int d = 0; d < hd; d++)
        x[d] = bf2f(f2bf((float)(range * urand(rng)))), amax = std::max(amax, fabsf(x[d]));
    if (!fp8) {
        for (int d = 0; d < hd; d++)
            ((bf16 *)pool)[at + d] = f2bf(x[d]), ref[d] = x[d];
        return;
    }
    float sc = at / hd % 97 == 5 ? 0.0f : amax / 448.0f;
    scales[at / hd] = sc;
    for (int d = 0; d < hd; d++) {
        uint8_t b = sc ? to_e4m3(x[d] / sc) : 0;
        pool[at + d] = (char)b;
        ref[d] = e4m3(b) * sc;
    }
}

template <int HD, bool FP8>
static int run_case(int nh, int nkv, int bs, std::vector<seqspec> seqs, unsigned seed)
{
    std::mt19937 rng(seed);
    int n_layers = 2, layer = 1, width = (nh + 2 * nkv) * HD, elem = FP8 ? 1 : 2;
    ssfk_kv_layout kv;
    kv.block_size = bs, kv.head_dim = HD, kv.head_stride = (size_t)bs * HD;
    kv.v_offset = (size_t)nkv * kv.head_stride, kv.layer_stride = 2 * kv.v_offset;
    kv.block_stride = (size_t)n_layers * kv.layer_stride, kv.fp8 = FP8, kv.scales = NULL;
    /* rows: each spec's rows in order */
    std::vector<int32_t> seq, pos;
    std::vector<int> need(seqs.size());
    for (size_t s = 0; s < seqs.size(); s++) {
        for (int i = 0; i < seqs[s].n; i++)
            seq.push_back((int32_t)s), pos.push_back(seqs[s].p0 + i);
        need[s] = (seqs[s].p0 + seqs[s].n - 1) / bs + 1;
    }
    int rows = (int)seq.size();
    int total_blocks = 0;
    for (int x : need)
        total_blocks += x;
    int n_blocks = total_blocks + 3;
    std::vector<int32_t> perm(n_blocks);
    for (int i = 0; i < n_blocks; i++)
        perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    std::vector<int32_t> tab_off(seqs.size()), tab;
    for (size_t s = 0; s < seqs.size(); s++) {
        tab_off[s] = (int32_t)tab.size();
        for (int i = 0; i < need[s]; i++)
            tab.push_back(perm[tab.size()]);
    }
    /* the pool: NaN everywhere (e4m3 0x7f; NaN scales), then each
     * sequence's positions */
    size_t pool_elems = (size_t)n_blocks * kv.block_stride;
    std::vector<char> pool_bytes(pool_elems * elem + 16);
    char *pool = pool_bytes.data() + (16 - (uintptr_t)pool_bytes.data() % 16) % 16;
    if (FP8)
        memset(pool, 0x7f, pool_elems);
    else
        std::fill((bf16 *)pool, (bf16 *)pool + pool_elems, (bf16)0x7fc0);
    std::vector<float> scales(FP8 ? pool_elems / HD : 0, NAN);
    std::vector<std::vector<float>> K(seqs.size()), V(seqs.size());
    for (size_t s = 0; s < seqs.size(); s++) {
        int ctx = seqs[s].p0 + seqs[s].n;
        K[s].resize((size_t)ctx * nkv * HD), V[s].resize((size_t)ctx * nkv * HD);
        for (int p = 0; p < ctx; p++)
            for (int h = 0; h < nkv; h++) {
                size_t at = (size_t)tab[tab_off[s] + p / bs] * kv.block_stride +
                            layer * kv.layer_stride + h * kv.head_stride + (size_t)(p % bs) * HD;
                size_t i = ((size_t)p * nkv + h) * HD;
                put_row(pool, scales, at, HD, FP8, 2.0f, rng, &K[s][i]);
                put_row(pool, scales, at + kv.v_offset, HD, FP8, 1.0f, rng, &V[s][i]);
            }
    }
    kv.scales = FP8 ? scales.data() : NULL;
    std::vector<bf16> qkv((size_t)rows * width, 0x7fc0);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < nh * HD; i++)
            qkv[(size_t)r * width + i] = f2bf((float)(2 * urand(rng)));
    std::vector<bf16> out((size_t)rows * nh * HD, 0xffff);
    /* the split */
    std::vector<int32_t> qb(rows + 1), dec(rows + 1);
    int nd = 0, nq = ssf_prefill_split(seq.data(), pos.data(), rows, SSF_PREFILL_MIN_RUN, qb.data(),
                                       dec.data(), &nd);
    g_pool = pool, g_pool_bytes = pool_elems * elem;
    g_scales = kv.scales, g_n_scales = scales.size();
    g_qkv = (const char *)qkv.data(), g_qkv_bytes = qkv.size() * 2;
    g_out = (char *)out.data(), g_out_bytes = out.size() * 2;
    g_out_writes.assign(g_out_bytes / 4, 0);
    launch_args<HD> a;
    a.io = ssfk_attn_io{out.data(),
                        qkv.data(),
                        pool,
                        kv,
                        layer,
                        pos.data(),
                        ssfk_tables{seq.data(), tab_off.data(), tab.data()},
                        nh,
                        nkv};
    a.qb = qb.data();
    a.scale = scale_log2_of(HD);
    size_t smem = ssf_prefill_smem(HD, FP8);
    if (smem != prefill_smem<HD, FP8>::BYTES)
        fail("ssf_prefill_smem(%d, %d) is %zu bytes, the kernel's layout %zu", HD, FP8, smem,
             prefill_smem<HD, FP8>::BYTES);
    smem_open(smem);
    g_grid = {(unsigned)nh, (unsigned)nq, 1};
    for (dim3e blk : grid_blocks()) {
        g_block = blk;
        int qbi = nq - 1 - (int)blk.y; /* the kernel's q-block for blockIdx.y */
        g_tab_len = need[seq[qb[2 * qbi]]];
        run_cta<HD, FP8>(&a);
    }
    smem_close();
    /* check */
    std::vector<char> in_q(rows, 0);
    for (int b = 0; b < nq; b++)
        for (int i = 0; i < qb[2 * b + 1]; i++)
            in_q[qb[2 * b] + i] = 1;
    double worst = 0;
    int bad = 0, group = nh / nkv;
    for (int r = 0; r < rows; r++) {
        for (int h = 0; h < nh; h++)
            for (int d = 0; d < HD; d += 2) {
                int wc = g_out_writes[(((size_t)r * nh + h) * HD + d) / 2];
                if (wc != (in_q[r] ? 1 : 0)) {
                    if (bad++ < 5)
                        printf("  row %d head %d col %d written %d times (q-block row: %d)\n", r, h,
                               d, wc, in_q[r]);
                }
            }
        if (!in_q[r]) continue;
        int s = seq[r], p = pos[r];
        for (int h = 0; h < nh; h++) {
            double want[HD];
            attention_ref(&qkv[(size_t)r * width + h * HD], K[s], V[s], p, nkv, h / group, HD,
                          want);
            for (int d = 0; d < HD; d++) {
                double o = want[d];
                double got = bf2f(out[((size_t)r * nh + h) * HD + d]);
                double err = fabs(got - o);
                if (!(err <= 8e-3 + 2e-3 * fabs(o))) {
                    if (bad++ < 10)
                        printf("  row %d (pos %d) head %d col %d: got %g want %g\n", r, p, h, d,
                               got, o);
                }
                if (!(err <= worst)) worst = err;
            }
        }
    }
    printf("%s hd %d heads %d/%d bs %d %s rows %d q-blocks %d decode %d late %d: worst abs err "
           "%.3g\n",
           bad ? "FAIL" : "ok", HD, nh, nkv, bs, FP8 ? "fp8 " : "bf16", rows, nq, nd, g_late,
           worst);
    return bad;
}

/* A case: head_dim, pool, heads, KV heads, block size, the sequences'
 * rows and the seed. */
struct pcase {
    int hd;
    bool fp8;
    int nh, nkv, bs;
    std::vector<seqspec> seqs;
    unsigned seed;
};

static int run(const pcase &c)
{
    if (c.hd == 64)
        return c.fp8 ? run_case<64, true>(c.nh, c.nkv, c.bs, c.seqs, c.seed)
                     : run_case<64, false>(c.nh, c.nkv, c.bs, c.seqs, c.seed);
    return c.fp8 ? run_case<128, true>(c.nh, c.nkv, c.bs, c.seqs, c.seed)
                 : run_case<128, false>(c.nh, c.nkv, c.bs, c.seqs, c.seed);
}

int main(int argc, char **argv)
{
    parse_emu_args(argc, argv, "prefill_emu");
    static const pcase cases[] = {
        {64, false, 2, 1, 16, {{0, 70}}, 1},
        {128, false, 3, 1, 16, {{0, 130}}, 2},
        {64, false, 4, 2, 1, {{37, 150}, {3, 1}, {5, 10}, {100, 29}}, 3},
        {128, false, 2, 2, 48, {{100, 29}, {0, 16}, {60, 1}, {200, 65}}, 4},
        {64, false, 2, 1, 48, {{990, 16}}, 5},
        {128, false, 2, 1, 16, {{5, 16}, {7, 17}}, 6},
        {128, false, 7, 1, 32, {{1, 2}, {63, 64}, {200, 3}, {127, 130}}, 11},
        {64, false, 3, 3, 7, {{500, 100}, {0, 1}, {64, 64}}, 12},
        {128, false, 2, 1, 128, {{1000, 64}, {1, 15}, {0, 300}}, 13},
        /* an fp8 pool: rows widened in shared memory, scales on the side */
        {128, true, 3, 1, 16, {{0, 130}}, 21},
        {64, true, 4, 2, 1, {{37, 150}, {3, 1}, {5, 10}, {100, 29}}, 22},
        {128, true, 2, 2, 48, {{100, 29}, {0, 16}, {60, 1}, {200, 65}}, 23},
        {64, true, 3, 3, 7, {{500, 100}, {0, 1}, {64, 64}}, 24},
        {128, true, 2, 1, 128, {{1000, 64}, {1, 15}, {0, 300}}, 25},
    };
    int fails = 0;
    for (g_late = 0; g_late < 2; g_late++)
        for (const pcase &c : cases) {
            fails += run(c);
            if (g_fail_fast && fails) return 1;
        }
    printf(fails ? "FAILURES\n" : "all ok\n");
    return fails != 0;
}
