/*
 * emu_cta.h - one CTA of SSF_ATTN_THREADS threads on the CPU, for the
 * emulators whose kernels take that many (decode_emu.cpp's and
 * prefill_emu.cpp's attention, pgemm_emu.cpp's small GEMM; the sampler's
 * CTA is larger): coroutine threads in a random order,
 * __syncthreads and __syncwarp, a shared-memory race detector, cp.async
 * landing at issue or only at wait_group, and the warp collectives
 * (mma.m16n8k16, shfl, ldmatrix.x4.trans) from the PTX ISA's fragment
 * layouts.  The includer defines cp_async16 (and what else copies) with
 * its own checks of the source, through issue().
 */
#ifndef SSFTEVAL_CUDA_EMU_CTA_H
#define SSFTEVAL_CUDA_EMU_CTA_H

#include <setjmp.h>
#include <ucontext.h>

#include "cuda_plan.h"
#include "emu.h"

/* no __shared__, asm or __ldg: a new one in the kernel fails to build here
 * rather than go unchecked */

/* what one emulator's kernel uses and another's does not */
#define EMU_UNUSED __attribute__((unused))

static int g_fail_fast;

/* ---- scheduler ----
 * Threads switch with _setjmp/_longjmp (swapcontext makes a system call a
 * switch, and a tile takes thousands of switches); makecontext only gives
 * each thread its stack. */
/* a CTA's threads: the attention's, unless the includer sets EMU_THREADS */
#ifndef EMU_THREADS
#define EMU_THREADS SSF_ATTN_THREADS
#endif
enum { NT = EMU_THREADS, NW = NT / 32 };
enum st { RUN, WCTA, WWARP, DONE };
enum coll { C_SYNCWARP, C_MMA, C_SHFL, C_LDMATRIX };
static const char *coll_name[] = {"__syncwarp", "mma", "shfl", "ldmatrix"};
struct cp_op {
    char *dst;
    const char *src;
    int size, bytes; /* copy size (16 or 4) and bytes read (0: zero-fill) */
};
struct ctx {
    jmp_buf jb;
    ucontext_t uc;
    bool started;
    st state;
    int coll, phase; /* the collective it waits at; its warp buffer half */
    dim3e tidx;
    std::vector<std::vector<cp_op>> groups; /* committed */
    std::vector<cp_op> open;
};
static ctx g_ctx[NT];
static jmp_buf g_sched_jb;
static int g_cur;
static dim3e g_block, g_grid;
static int g_epoch;   /* CTA barriers so far */
static int g_wep[NW]; /* each warp's __syncwarps so far */
static std::mt19937 g_rng(1);
static int g_late = 1; /* cp.async lands at wait (1) or at issue (0) */
#define threadIdx (g_ctx[g_cur].tidx)
#define blockIdx g_block
#define gridDim g_grid

static void yield_to_sched(void)
{
    if (!_setjmp(g_ctx[g_cur].jb)) _longjmp(g_sched_jb, 1);
}
static __attribute__((noinline)) void resume(int i)
{
    g_cur = i;
    if (_setjmp(g_sched_jb)) return;
    if (g_ctx[i].started) _longjmp(g_ctx[i].jb, 1);
    g_ctx[i].started = true;
    setcontext(&g_ctx[i].uc);
}

static void __syncthreads(void)
{
    g_ctx[g_cur].state = WCTA;
    yield_to_sched();
}
/* every lane of the warp at the same collective; returns once they all are */
static void warp_barrier(int c)
{
    g_ctx[g_cur].state = WWARP;
    g_ctx[g_cur].coll = c;
    yield_to_sched();
}
EMU_UNUSED static void __syncwarp(unsigned mask = 0xffffffffu)
{
    if (mask != 0xffffffffu) fail("__syncwarp mask %#x", mask);
    warp_barrier(C_SYNCWARP);
}

/* ---- shared memory and race detector ----
 * Two accesses of a word by different threads are ordered when a CTA
 * barrier lies between them, or, in one warp, a __syncwarp.  Per word: the
 * last writer with its CTA and warp epochs, the cp.async in flight to it,
 * and the readers of the current CTA epoch per warp (those of the warp's
 * current __syncwarp epoch). */
static char *g_smem;
static size_t g_smem_bytes;
static char g_static[16] __attribute__((aligned(16))); /* the kernel's __shared__ variables */
struct wordmeta {
    int wthr, wcta, wwep, pending, rcta;
    int rwep[NW];
    uint32_t rmask[NW];
};
static std::vector<wordmeta> g_meta;

/* A launch's dynamic shared memory of `bytes`, and the race detector's
 * words for it and g_static; smem_close frees it after the launch. */
static void smem_open(size_t bytes)
{
    g_smem_bytes = bytes;
    g_smem = (char *)aligned_alloc(128, bytes);
    g_meta.resize(bytes / 4 + sizeof g_static / 4);
}
static void smem_close(void)
{
    free(g_smem);
    g_smem = NULL;
}
enum { NONE = -1 };

EMU_UNUSED static char *emu_smem(void)
{
    return g_smem;
}
static bool in_smem(const void *p, size_t n)
{
    return (const char *)p >= g_smem && (const char *)p + n <= g_smem + g_smem_bytes;
}
static size_t widx(const void *p)
{
    const char *c = (const char *)p;
    if (c >= g_static && c < g_static + sizeof g_static)
        return g_smem_bytes / 4 + (size_t)(c - g_static) / 4;
    if (!in_smem(p, 1)) fail("smem access %p outside [%p, +%zu)", p, (void *)g_smem, g_smem_bytes);
    return (size_t)(c - g_smem) / 4;
}
static bool unordered(int thr, int cta, int wep)
{
    return thr != g_cur && cta == g_epoch && (thr / 32 != g_cur / 32 || wep == g_wep[g_cur / 32]);
}
static void check_read(const void *p, int bytes)
{
    if ((uintptr_t)p % (bytes < 16 ? bytes : 16)) fail("misaligned smem read of %d bytes", bytes);
    int w = g_cur / 32;
    for (int b = 0; b < bytes; b += 4) {
        size_t i = widx((const char *)p + b);
        wordmeta &m = g_meta[i];
        if (m.pending != NONE)
            fail(
                "thread %d reads smem word %zu in flight (cp.async of thread %d), block (%u,%u,%u)",
                g_cur, i, m.pending, g_block.x, g_block.y, g_block.z);
        if (m.wthr == NONE)
            fail("thread %d reads smem word %zu that nothing has written yet (a missing barrier, "
                 "or a read of memory nothing writes), block (%u,%u,%u)",
                 g_cur, i, g_block.x, g_block.y, g_block.z);
        if (unordered(m.wthr, m.wcta, m.wwep))
            fail("RAW race: thread %d reads smem word %zu that thread %d wrote with no barrier "
                 "between, block (%u,%u,%u)",
                 g_cur, i, m.wthr, g_block.x, g_block.y, g_block.z);
        if (m.rcta != g_epoch) {
            m.rcta = g_epoch;
            for (int v = 0; v < NW; v++)
                m.rmask[v] = 0, m.rwep[v] = -1;
        }
        if (m.rwep[w] != g_wep[w]) m.rwep[w] = g_wep[w], m.rmask[w] = 0;
        m.rmask[w] |= 1u << (g_cur % 32);
    }
}
static void check_write(const void *p, int bytes, bool async)
{
    if ((uintptr_t)p % (bytes < 16 ? bytes : 16)) fail("misaligned smem write of %d bytes", bytes);
    int w = g_cur / 32;
    for (int b = 0; b < bytes; b += 4) {
        size_t i = widx((const char *)p + b);
        wordmeta &m = g_meta[i];
        if (m.pending != NONE)
            fail("WAW: thread %d writes smem word %zu while a cp.async of thread %d is in flight "
                 "to it",
                 g_cur, i, m.pending);
        if (m.wthr != NONE && unordered(m.wthr, m.wcta, m.wwep))
            fail("WAW race: threads %d and %d write smem word %zu with no barrier between", m.wthr,
                 g_cur, i);
        if (m.rcta == g_epoch)
            for (int v = 0; v < NW; v++) {
                uint32_t others =
                    v == w ? (m.rwep[v] == g_wep[w] ? m.rmask[v] & ~(1u << g_cur % 32) : 0)
                           : m.rmask[v];
                if (others)
                    fail("WAR race: thread %d writes smem word %zu that thread %d read with no "
                         "barrier between, block (%u,%u,%u)",
                         g_cur, i, 32 * v + __builtin_ctz(others), g_block.x, g_block.y, g_block.z);
            }
        if (async)
            m.pending = g_cur;
        else
            m.wthr = g_cur, m.wcta = g_epoch, m.wwep = g_wep[w];
    }
}
#include "emu_smem.h"
/* a __shared__ variable of the kernel, at byte `at` of g_static */
template <typename T> struct sh_var {
    T *p;
    explicit sh_var(int at) : p((T *)(g_static + at)) {}
    operator T() const
    {
        check_read(p, sizeof(T));
        return *p;
    }
    sh_var &operator=(T v)
    {
        check_write(p, sizeof(T), false);
        *p = v;
        return *this;
    }
};

/* ---- cp.async ---- */
static void land(const cp_op &op)
{
    if (op.bytes)
        memcpy(op.dst, op.src, op.size);
    else
        memset(op.dst, 0, op.size);
}
EMU_UNUSED static void issue(void *dst, const void *src, int size, int bytes)
{
    if ((uintptr_t)dst % size || (uintptr_t)src % size) fail("cp.async misaligned");
    if (!in_smem(dst, size)) fail("cp.async dst outside smem");
    check_write(dst, size, true);
    cp_op op = {(char *)dst, (const char *)src, size, bytes};
    if (!g_late) land(op);
    g_ctx[g_cur].open.push_back(op);
}
EMU_UNUSED static void cp_async_commit(void)
{
    ctx &c = g_ctx[g_cur];
    c.groups.push_back(c.open);
    c.open.clear();
}
template <int N> static void cp_async_wait(void)
{
    ctx &c = g_ctx[g_cur];
    int w = g_cur / 32;
    while (c.groups.size() > N) {
        for (auto &op : c.groups.front()) {
            if (g_late) land(op);
            for (int b = 0; b < op.size; b += 4) {
                wordmeta &m = g_meta[widx(op.dst + b)];
                m.pending = NONE, m.wthr = g_cur, m.wcta = g_epoch, m.wwep = g_wep[w];
            }
        }
        c.groups.erase(c.groups.begin());
    }
}

/* ---- bf16, fp8 ---- */
EMU_UNUSED static bf16 __float2bfloat16(float f)
{
    return f2bf(f);
}
EMU_UNUSED static float __bfloat162float(bf16 b)
{
    return bf2f(b);
}

/* ---- warp collectives, from the PTX ISA's fragment layouts ----
 * One barrier a collective: each lane leaves its operands in one half of
 * its warp's buffer, alternating, and reads the others' after the barrier;
 * a lane writes a half again only two collectives later, when every lane
 * has passed the barrier in between and so is done reading it. */
struct warpbuf {
    uint32_t a[2][32][4], b[2][32][2];
    float f[2][32];
    const char *addr[2][32];
};
static warpbuf g_wb[NW];

EMU_UNUSED static void mma_16816_full(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                      uint32_t a3, uint32_t b0, uint32_t b1)
{
    int w = g_cur / 32, l = g_cur % 32, ph = g_ctx[g_cur].phase ^= 1;
    warpbuf &B = g_wb[w];
    B.a[ph][l][0] = a0, B.a[ph][l][1] = a1, B.a[ph][l][2] = a2, B.a[ph][l][3] = a3;
    B.b[ph][l][0] = b0, B.b[ph][l][1] = b1;
    warp_barrier(C_MMA);
    /* a: lane 4g + t holds rows g (a0, a2) and g + 8 (a1, a3), columns 2t,
     * 2t + 1 (a0, a1) and 2t + 8, 2t + 9 (a2, a3); b: lane 4g + t holds
     * column g, rows 2t, 2t + 1 (b0) and 2t + 8, 2t + 9 (b1); c: rows g
     * (c0, c1) and g + 8 (c2, c3), columns 2t, 2t + 1 */
    int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; i++) {
        int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        float s = c[i];
        for (int k = 0; k < 16; k++) {
            int hi = k >= 8, e = k % 2, q = k % 8 / 2;
            uint32_t ar = B.a[ph][4 * (row % 8) + q][(row >= 8) + 2 * hi];
            uint32_t br = B.b[ph][4 * col + q][hi];
            s += bf2f((uint16_t)(ar >> 16 * e)) * bf2f((uint16_t)(br >> 16 * e));
        }
        c[i] = s;
    }
}

EMU_UNUSED static float __shfl_xor_sync(unsigned mask, float v, int m)
{
    if (mask != 0xffffffffu) fail("shfl mask %#x", mask);
    int w = g_cur / 32, l = g_cur % 32, ph = g_ctx[g_cur].phase ^= 1;
    g_wb[w].f[ph][l] = v;
    warp_barrier(C_SHFL);
    return g_wb[w].f[ph][l ^ m];
}

/* lanes 8i .. 8i + 7 give matrix i's row addresses; lane 4g + t receives
 * its elements (2t, g) and (2t + 1, g) in r[i] */
EMU_UNUSED static void ldmatrix_x4_trans(uint32_t r[4], const bf16 *row)
{
    int w = g_cur / 32, l = g_cur % 32, ph = g_ctx[g_cur].phase ^= 1;
    if ((uintptr_t)row % 16) fail("ldmatrix row misaligned");
    check_read(row, 16);
    g_wb[w].addr[ph][l] = (const char *)row;
    warp_barrier(C_LDMATRIX);
    int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; i++) {
        const bf16 *r0 = (const bf16 *)g_wb[w].addr[ph][8 * i + 2 * t];
        const bf16 *r1 = (const bf16 *)g_wb[w].addr[ph][8 * i + 2 * t + 1];
        r[i] = (uint32_t)r0[g] | ((uint32_t)r1[g] << 16);
    }
}

/* ---- a CTA's run ---- */
/* What a thread does when its kernel returns: no copy left in flight
 * (groups committed empty, as a ring's last slices leave, are none). */
static void thread_exit(void)
{
    ctx &c = g_ctx[g_cur];
    bool copies = !c.open.empty();
    for (auto &g : c.groups)
        copies = copies || !g.empty();
    if (copies) fail("cp.async left in flight at exit");
    g_ctx[g_cur].state = DONE;
    _longjmp(g_sched_jb, 1);
}

static std::vector<char *> g_stacks;
enum { STACK = 1 << 17 };
/* Runs one CTA of NT threads, each starting at `entry`, to the end. */
static void run_threads(void (*entry)(void))
{
    memset(g_smem, 0xff, g_smem_bytes);
    memset(g_static, 0xff, sizeof g_static);
    wordmeta fresh = {NONE, -1, -1, NONE, -1, {0}, {0}};
    std::fill(g_meta.begin(), g_meta.end(), fresh);
    g_epoch = 0;
    for (int w = 0; w < NW; w++)
        g_wep[w] = 0;
    if (g_stacks.empty())
        for (int i = 0; i < NT; i++)
            g_stacks.push_back((char *)malloc(STACK));
    for (int i = 0; i < NT; i++) {
        ctx &c = g_ctx[i];
        c.groups.clear(), c.open.clear();
        c.tidx = {(unsigned)i, 0, 0};
        c.state = RUN, c.started = false, c.phase = 0;
        getcontext(&c.uc);
        c.uc.uc_stack.ss_sp = g_stacks[i];
        c.uc.uc_stack.ss_size = STACK;
        c.uc.uc_link = NULL;
        makecontext(&c.uc, entry, 0);
    }
    int order[NT];
    for (int i = 0; i < NT; i++)
        order[i] = i;
    for (;;) {
        std::shuffle(order, order + NT, g_rng);
        bool ran = false;
        for (int i : order)
            if (g_ctx[i].state == RUN) resume(i), ran = true;
        if (ran) continue;
        /* everyone waits or is done: release what can go */
        int done = 0, wcta = 0;
        for (int i = 0; i < NT; i++)
            done += g_ctx[i].state == DONE, wcta += g_ctx[i].state == WCTA;
        if (done == NT) break;
        bool released = false;
        for (int w = 0; w < NW; w++) {
            int n = 0;
            for (int l = 0; l < 32; l++)
                n += g_ctx[32 * w + l].state == WWARP;
            if (n < 32) continue;
            int c = g_ctx[32 * w].coll;
            for (int l = 1; l < 32; l++)
                if (g_ctx[32 * w + l].coll != c)
                    fail("warp %d diverges: lane 0 at %s, lane %d at %s", w, coll_name[c], l,
                         coll_name[g_ctx[32 * w + l].coll]);
            if (c == C_SYNCWARP) g_wep[w]++;
            for (int l = 0; l < 32; l++)
                g_ctx[32 * w + l].state = RUN;
            released = true;
        }
        if (released) continue;
        if (wcta == NT) {
            g_epoch++;
            for (int i = 0; i < NT; i++)
                g_ctx[i].state = RUN;
            continue;
        }
        fail("deadlock: %d done, %d at __syncthreads, block (%u,%u,%u)", done, wcta, g_block.x,
             g_block.y, g_block.z);
    }
}

/* Every block of g_grid, for a launch to run in a shuffled order. */
static std::vector<dim3e> grid_blocks(void)
{
    std::vector<dim3e> ctas;
    for (unsigned z = 0; z < g_grid.z; z++)
        for (unsigned y = 0; y < g_grid.y; y++)
            for (unsigned x = 0; x < g_grid.x; x++)
                ctas.push_back({x, y, z});
    return ctas;
}

/* The emulators' arguments: -x stops at the first failing case, -s SEED
 * seeds the thread and CTA orders. */
static void parse_emu_args(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-x"))
            g_fail_fast = 1;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            g_rng.seed((unsigned)strtoul(argv[++i], NULL, 10));
        else
            fail("usage: %s [-x] [-s seed]", name);
}

#endif
