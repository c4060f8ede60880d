/*
 * sample_emu.cpp - runs the device sampler's own source
 * (backends/engine/cuda_sample.cu: sample_kernel<GATHER> and its helpers,
 * copied out by extract.c) on the CPU, for machines without a GPU.  As the
 * attention emulators: a CTA's 1024 threads are coroutines run in random
 * order, __ballot_sync and the shuffles follow the PTX ISA (every lane of
 * the warp at the same collective, full masks only), and shared memory is
 * race-checked by barrier epochs (atomics may meet atomics, nothing else;
 * a read of a word nothing wrote fails).  cub::BlockReduce and
 * cub::BlockScan are exact stand-ins with cub's shape (a warp step, one
 * aggregate a warp in the TempStorage, a barrier, the aggregates read back),
 * so a TempStorage reused without a barrier between is a race here too.
 * Every shared array index is bounds-checked, every logit read must lie in
 * the CTA's own row below n_valid (a 16-byte read on a 16-byte boundary),
 * and each row's id is written once.
 *
 * What it checks, per case (a row of logits, drawn at steps 0 .. draws-1,
 * one CTA a draw, whole-row and gathered):
 *  - every draw equals an exact host model of the kernel's documented
 *    semantics (weights as the kernel computes them, masses in 2^-40 units,
 *    top-k, top-p, min-p cuts heaviest first with ties lowest id first, the
 *    uniform walked in id order), so the gathered path's ids equal the
 *    whole-row path's, draw for draw;
 *  - the gather found exactly the ids with mass, in id order, with their
 *    keys, or returned -1 when they are more than SAMPLE_CANDIDATES; and
 *    then the ids at or above the floor of the tier the model chooses (the
 *    highest whose ids decide every cut and fit), or none when no tier
 *    does;
 *  - the model's distribution is bench/sampler-rows.h's reference_dist
 *    (gpu_check's; the filters of sampler.c in double): no id outside its support,
 *    total variation under 1e-5, and the draws fit it (chi-square, loose);
 *  - greedy rows (temperature <= 0 or top-k 1) equal sampler.c's argmax:
 *    ties to the lowest id, non-finite logits skipped, -1 with no finite
 *    logit, padding never;
 *  - the kernel's Philox is sampler.c's.
 *
 * It follows the PTX spec, not the hardware, and the host's expf, not the
 * device's: it is no substitute for bench/gpu_check's sampler checks on a
 * GPU, but it runs the kernel's logic wherever a C++ compiler does.
 * Usage: sample_emu [-x] [-s seed]: -x stops at the first failing case, -s
 * seeds the thread orders (1 by default).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <algorithm>
#include <random>
#include <vector>

#include "device.h"  /* ssf_sample_spec */
#include "sampler.h" /* the host sampler */
#include "emu.h"
#include "sampler-rows.h" /* bench/gpu_check.c's rows */

/* no __shared__, asm or __syncwarp: a new one in the kernel fails to build
 * here rather than go unchecked */

/* sampler.c's allocation helpers (libssfteval's util.c, less its other
 * dependencies) */
extern "C" void *ssf_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fail("out of memory");
    return p;
}
extern "C" void *ssf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) fail("out of memory");
    return q;
}

/* ---- scheduler ----
 * A CTA takes some 50,000 switches, so they are GCC's __builtin_setjmp and
 * __builtin_longjmp (a stack and frame pointer and a label, no signal mask
 * or unwinding), and the 1024 coroutines outlive a CTA: each loops over
 * the kernel, so makecontext and setcontext run once a thread. */
enum { NT = 1024, NW = NT / 32 };
enum st { RUN, WCTA, WWARP, DONE };
enum coll { C_BALLOT, C_SHFL_XOR, C_SHFL_UP, C_SHFL_IDX, C_CUB };
static const char *coll_name[] = {"__ballot_sync", "__shfl_xor_sync", "__shfl_up_sync",
                                  "__shfl_sync", "a cub warp step"};
struct ctx {
    void *jb[5];
    bool started;
    st state;
    int coll, phase;
    dim3e tidx;
};
static ctx g_ctx[NT];
static ucontext_t g_uc[NT]; /* each thread's start */
static void *g_sched_jb[5];
static int g_cur;
static dim3e g_block;
static int g_epoch; /* CTA barriers so far */
#define threadIdx (g_ctx[g_cur].tidx)
#define blockIdx g_block

/* the thread and CTA orders: xorshift64*, seeded by -s (1 by default) */
static uint64_t g_rs = 3 * 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
    g_rs ^= g_rs >> 12, g_rs ^= g_rs << 25, g_rs ^= g_rs >> 27;
    return (uint32_t)(((g_rs * 0x2545F4914F6CDD1Dull) >> 32) * n >> 32);
}
template <typename T> static void shuffle(T *a, int n)
{
    for (int i = n - 1; i > 0; i--)
        std::swap(a[i], a[rnd((uint32_t)i + 1)]);
}

/* The switches are called through volatile pointers: a call the optimizer
 * cannot see into clobbers what the ABI says and any memory, where a call
 * it can see into (-fipa-ra, mod/ref) might keep a value in a register the
 * callee leaves alone, but another thread does not.  And no switch may be
 * a tail call (the asm after each): the frame that a setjmp point returns
 * through must outlive the call. */
static void jump_impl(void **jb)
{
    __builtin_longjmp(jb, 1);
}
static void (*volatile jump)(void **) = jump_impl;
static void yield_impl(void)
{
    if (!__builtin_setjmp(g_ctx[g_cur].jb)) jump(g_sched_jb);
    asm volatile("" ::: "memory");
}
static void (*volatile yield_to_sched)(void) = yield_impl;
static void resume_impl(int i)
{
    g_cur = i;
    if (!__builtin_setjmp(g_sched_jb)) {
        if (g_ctx[i].started)
            jump(g_ctx[i].jb);
        else
            g_ctx[i].started = true, setcontext(&g_uc[i]);
    }
    asm volatile("" ::: "memory");
}
static void (*volatile resume)(int) = resume_impl;
static void __syncthreads(void)
{
    g_ctx[g_cur].state = WCTA;
    yield_to_sched();
}
static void warp_barrier(int c)
{
    g_ctx[g_cur].state = WWARP;
    g_ctx[g_cur].coll = c;
    yield_to_sched();
}

/* ---- shared memory and race detector ----
 * The kernel's __shared__ variables live in one arena (slot 0: its
 * shared_state; 1 and 2: row_argmax's TempStorage and result).  Per 4-byte
 * word: the last writer and its epoch (MANY: several atomics), whether that
 * write was atomic, and the readers of the current epoch. */
enum { ARENA = 48 * 1024 };
static char g_shm[ARENA] __attribute__((aligned(64)));
static const size_t SLOT[3] = {0, 40960, 45056};
struct wordmeta {
    int wthr, wcta, rcta, reader;
    bool atomic;
};
static wordmeta g_meta[ARENA / 4];
enum { NONE = -1, MANY = -2 };

template <typename T> static T &emu_shared(int slot)
{
    return *(T *)(g_shm + SLOT[slot]);
}
static size_t widx(const void *p)
{
    const char *c = (const char *)p;
    if (c < g_shm || c >= g_shm + ARENA) fail("shared access %p outside the arena", p);
    return (size_t)(c - g_shm) / 4;
}
static void check_read(const void *p, size_t bytes, size_t align)
{
    if ((uintptr_t)p % align) fail("misaligned shared read of %zu bytes", bytes);
    for (size_t b = 0; b < bytes; b += 4) {
        size_t i = widx((const char *)p + b);
        wordmeta &m = g_meta[i];
        if (m.wthr == NONE)
            fail("thread %d reads shared word %zu that nothing has written (a missing barrier, or "
                 "a read past what was written), block %u",
                 g_cur, i, g_block.x);
        if (m.wcta == g_epoch && m.wthr != g_cur)
            fail("RAW race: thread %d reads shared word %zu that thread %d wrote with no barrier "
                 "between, block %u",
                 g_cur, i, m.wthr, g_block.x);
        if (m.rcta != g_epoch)
            m.rcta = g_epoch, m.reader = g_cur;
        else if (m.reader != g_cur)
            m.reader = MANY;
    }
}
static void check_war(wordmeta &m, size_t i)
{
    if (m.rcta == g_epoch && m.reader != NONE && m.reader != g_cur)
        fail("WAR race: thread %d writes shared word %zu that thread %d read with no barrier "
             "between, block %u",
             g_cur, i, m.reader, g_block.x);
}
static void check_write(const void *p, size_t bytes, size_t align)
{
    if ((uintptr_t)p % align) fail("misaligned shared write of %zu bytes", bytes);
    for (size_t b = 0; b < bytes; b += 4) {
        size_t i = widx((const char *)p + b);
        wordmeta &m = g_meta[i];
        if (m.wthr != NONE && m.wcta == g_epoch && m.wthr != g_cur)
            fail("WAW race: threads %d and %d write shared word %zu with no barrier between, "
                 "block %u",
                 m.wthr, g_cur, i, g_block.x);
        check_war(m, i);
        m.wthr = g_cur, m.wcta = g_epoch, m.atomic = false;
    }
}
static void check_atomic(const void *p, size_t bytes)
{
    if ((uintptr_t)p % bytes) fail("misaligned shared atomic");
    for (size_t b = 0; b < bytes; b += 4) {
        size_t i = widx((const char *)p + b);
        wordmeta &m = g_meta[i];
        if (m.wthr == NONE)
            fail("thread %d adds atomically to shared word %zu that nothing has written, block %u",
                 g_cur, i, g_block.x);
        bool mine = m.wcta != g_epoch || m.wthr == g_cur;
        if (!mine && !m.atomic)
            fail("race: thread %d adds atomically to shared word %zu that thread %d wrote with no "
                 "barrier between, block %u",
                 g_cur, i, m.wthr, g_block.x);
        check_war(m, i);
        m.wthr = mine ? g_cur : MANY, m.wcta = g_epoch, m.atomic = true;
    }
}
template <typename T> static T ld_sh(const T *p)
{
    check_read(p, sizeof(T), alignof(T));
    return *p;
}
template <typename T> static void st_sh(T *p, T v)
{
    check_write(p, sizeof(T), alignof(T));
    *p = v;
}
/* an element of a shared array: reads and writes checked */
template <typename T> struct sh_ref {
    T *p;
    operator T() const
    {
        return ld_sh(p);
    }
    sh_ref &operator=(T v)
    {
        st_sh(p, v);
        return *this;
    }
    sh_ref &operator=(const sh_ref &o)
    {
        st_sh(p, (T)o);
        return *this;
    }
    T *operator&() const
    {
        return p;
    }
};
/* a shared array of the kernel's: indices checked */
template <typename T, int N> struct sh_arr {
    T v[N];
    template <typename I> sh_ref<T> operator[](I i)
    {
        if ((long long)i < 0 || (long long)i >= N)
            fail("thread %d indexes a shared array of %d at %lld, block %u", g_cur, N, (long long)i,
                 g_block.x);
        return sh_ref<T>{v + i};
    }
    operator const T *() const
    {
        return v;
    }
};
/* a shared variable of the kernel's */
template <typename T> struct sh_var {
    T v;
    operator T() const
    {
        return ld_sh(&v);
    }
    sh_var &operator=(T x)
    {
        st_sh(&v, x);
        return *this;
    }
    sh_var &operator=(const sh_var &) = delete;
};

static unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
    check_atomic(p, sizeof *p);
    unsigned long long old = *p;
    *p = old + v;
    return old;
}
static int atomicAdd(sh_var<int> *p, int v)
{
    check_atomic(&p->v, sizeof p->v);
    int old = p->v;
    p->v = old + v;
    return old;
}

/* ---- warp collectives (PTX: shfl.sync, vote.sync.ballot) ----
 * As decode_emu.cpp: each lane leaves its operand in one half of its
 * warp's buffer, alternating, and reads the others' after the barrier. */
static unsigned char g_wb[NW][2][32][16];

template <typename T> static int warp_put(T v, int c)
{
    static_assert(sizeof(T) <= 16, "warp operand too wide");
    int w = g_cur / 32, l = g_cur % 32, ph = g_ctx[g_cur].phase ^= 1;
    memcpy(g_wb[w][ph][l], &v, sizeof v);
    warp_barrier(c);
    return ph;
}
template <typename T> static T warp_get(int ph, int lane)
{
    T v;
    memcpy(&v, g_wb[g_cur / 32][ph][lane], sizeof v);
    return v;
}
static void full_mask(unsigned mask, const char *what)
{
    if (mask != 0xffffffffu) fail("%s with mask %#x (the kernel's are full)", what, mask);
}
static unsigned __ballot_sync(unsigned mask, int pred)
{
    full_mask(mask, "__ballot_sync");
    int ph = warp_put(pred != 0, C_BALLOT);
    unsigned r = 0;
    for (int j = 0; j < 32; j++)
        r |= (unsigned)warp_get<bool>(ph, j) << j;
    return r;
}
template <typename T> static T __shfl_xor_sync(unsigned mask, T v, int m)
{
    full_mask(mask, "__shfl_xor_sync");
    int ph = warp_put(v, C_SHFL_XOR), j = (g_cur % 32) ^ m;
    return j < 32 ? warp_get<T>(ph, j) : v;
}
template <typename T> static T __shfl_up_sync(unsigned mask, T v, unsigned d)
{
    full_mask(mask, "__shfl_up_sync");
    int ph = warp_put(v, C_SHFL_UP), j = g_cur % 32 - (int)d;
    return j >= 0 ? warp_get<T>(ph, j) : v;
}
template <typename T> static T __shfl_sync(unsigned mask, T v, int src)
{
    full_mask(mask, "__shfl_sync");
    int ph = warp_put(v, C_SHFL_IDX);
    return warp_get<T>(ph, src & 31);
}
static int __ffs(unsigned x)
{
    return __builtin_ffs((int)x);
}
static uint32_t __float_as_uint(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float __uint_as_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* cvt.rzi.u64.f32: toward zero, clamped to [0, 2^64 - 1], NaN to 0 */
static unsigned long long cvt_rzi_u64(float f)
{
    if (!(f > 0)) return 0;
    if (f >= 18446744073709551616.0f) return ~0ull;
    return (unsigned long long)f;
}

/* ---- cub, exactly: cub's BLOCK_REDUCE_WARP_REDUCTIONS and
 * BLOCK_SCAN_WARP_SCANS shapes over the checked TempStorage ---- */
template <typename T> static T poison(void)
{
    T v;
    memset((void *)&v, 0xa5, sizeof v);
    return v;
}
namespace cub
{
template <typename T, int N> class BlockReduce
{
  public:
    struct TempStorage {
        sh_arr<T, N / 32> warp_aggregate;
    };
    explicit BlockReduce(TempStorage &t) : t_(t) {}
    /* valid in thread 0 alone, as cub's */
    template <typename Op> T Reduce(T x, Op op)
    {
        static_assert(N == NT, "a block of another size");
        int w = g_cur / 32, ph = warp_put(x, C_CUB);
        T acc = warp_get<T>(ph, 0);
        for (int j = 1; j < 32; j++)
            acc = op(acc, warp_get<T>(ph, j));
        if (g_cur % 32 == 0) t_.warp_aggregate[w] = acc;
        __syncthreads();
        if (g_cur != 0) return poison<T>();
        acc = t_.warp_aggregate[0];
        for (int v = 1; v < N / 32; v++)
            acc = op(acc, (T)t_.warp_aggregate[v]);
        return acc;
    }
    T Sum(T x)
    {
        return Reduce(x, [](const T &a, const T &b) { return a + b; });
    }

  private:
    TempStorage &t_;
};
template <typename T, int N> class BlockScan
{
  public:
    struct TempStorage {
        sh_arr<T, N / 32> warp_aggregate;
    };
    explicit BlockScan(TempStorage &t) : t_(t) {}
    /* thread t's K items are items tK .. tK + K - 1 of the block's */
    template <int K> void InclusiveSum(T (&in)[K], T (&out)[K])
    {
        static_assert(N == NT, "a block of another size");
        T mine = in[0];
        for (int k = 1; k < K; k++)
            mine += in[k];
        int w = g_cur / 32, l = g_cur % 32, ph = warp_put(mine, C_CUB);
        T before = T(), total = T();
        for (int j = 0; j < 32; j++) {
            T v = warp_get<T>(ph, j);
            if (j < l) before += v;
            total += v;
        }
        if (l == 31) t_.warp_aggregate[w] = total;
        __syncthreads();
        for (int v = 0; v < N / 32; v++) {
            T a = t_.warp_aggregate[v];
            if (v < w) before += a;
        }
        for (int k = 0; k < K; k++)
            out[k] = before += in[k];
    }

  private:
    TempStorage &t_;
};
} // namespace cub

/* The ids at or above a floor (a weight's key) and their keys, in id order. */
struct cand_set {
    uint32_t floor;
    std::vector<int32_t> id;
    std::vector<uint32_t> key;
};

/* ---- global memory: the launch's rows, specs and ids ---- */
static struct {
    const float *logits;
    size_t stride;
    int n_valid, rows;
    const ssf_sample_spec *spec;
    int32_t *ids;
    std::vector<int> id_writes;
    /* what a gather at each floor must find in every row (the rows of a
     * launch are copies of one) */
    const std::vector<cand_set> *sets;
    std::vector<int> gathered;   /* per row: what gather_candidates last returned */
    std::vector<uint32_t> floor; /* per row: at which floor */
    std::vector<int> cand_wrong; /* per row: candidates found wrong */
} G;

static float ld_logit(const float *p)
{
    if (p < G.logits || p >= G.logits + (size_t)G.rows * G.stride)
        fail("logit read outside the logits, block %u", g_block.x);
    size_t e = (size_t)(p - G.logits), row = e / G.stride, col = e % G.stride;
    if (row != g_block.x) fail("block %u reads row %zu's logits", g_block.x, row);
    if (col >= (size_t)G.n_valid)
        fail("block %u reads id %zu, past n_valid %d (padding)", g_block.x, col, G.n_valid);
    return *p;
}
/* 16 bytes of logits: each of the four as ld_logit, and 16-byte aligned as
 * a vector load must be */
static float4 ld_logit4(const float4 *p)
{
    if ((uintptr_t)p % 16)
        fail("block %u: a 16-byte logit read at a misaligned address", g_block.x);
    const float *f = (const float *)p;
    return float4{ld_logit(f), ld_logit(f + 1), ld_logit(f + 2), ld_logit(f + 3)};
}
static ssf_sample_spec ld_spec(const ssf_sample_spec *p)
{
    if (p != G.spec + g_block.x) fail("block %u reads another row's spec", g_block.x);
    return *p;
}
static void st_id(int32_t *p, int32_t v)
{
    if (p != G.ids + g_block.x) fail("block %u writes another row's id", g_block.x);
    G.id_writes[g_block.x]++;
    *p = v;
}
/* as gather_candidates returns (every thread, past its last barrier):
 * thread 0 notes what it returned at which floor and compares what it
 * gathered with the host's set at that floor */
template <typename S> static int emu_gathered(int n, uint32_t floor, S &sh)
{
    if (g_cur != 0) return n;
    G.gathered[g_block.x] = n, G.floor[g_block.x] = floor;
    const cand_set *want = NULL;
    for (const cand_set &c : *G.sets)
        if (c.floor == floor) want = &c;
    if (!want) {
        G.cand_wrong[g_block.x]++;
        return n;
    }
    if (n > 0 && (size_t)n == want->id.size())
        for (int k = 0; k < n; k++)
            G.cand_wrong[g_block.x] +=
                sh.cand_id.v[k] != want->id[k] || sh.cand_key.v[k] != want->key[k];
    return n;
}

#include "sample_body.inc" /* extract.c writes it */

static_assert(SAMPLE_THREADS == NT, "the emulator's block is not the kernel's");
static_assert(sizeof(shared_state) <= 40960, "shared_state outgrew its arena slot");
static_assert(sizeof(cub::BlockReduce<arg_best, SAMPLE_THREADS>::TempStorage) <= 4096,
              "row_argmax's TempStorage outgrew its slot");

/* ---- launch ---- */
static bool g_gather;
static void entry(void)
{
    for (;;) {
        if (g_gather)
            sample_kernel<true>(G.ids, G.logits, G.stride, G.n_valid, G.spec);
        else
            sample_kernel<false>(G.ids, G.logits, G.stride, G.n_valid, G.spec);
        g_ctx[g_cur].state = DONE;
        yield_to_sched(); /* resumed for the next CTA */
    }
}

/* stacks 64 KB and 3 cache lines apart: a power of two apart, the tops of
 * all 1024 would share a few cache sets and every switch would miss */
enum { STACK = (1 << 16) + 192 };
static void run_cta(void)
{
    memset(g_shm, 0xff, sizeof g_shm);
    std::fill(g_meta, g_meta + ARENA / 4, wordmeta{NONE, -1, -1, NONE, false});
    g_epoch = 0;
    static char *stacks;
    if (!stacks) {
        stacks = (char *)aligned_alloc(64, (size_t)NT * STACK);
        for (int i = 0; i < NT; i++) {
            g_ctx[i].tidx = {(unsigned)i, 0, 0};
            getcontext(&g_uc[i]);
            g_uc[i].uc_stack.ss_sp = stacks + (size_t)i * STACK;
            g_uc[i].uc_stack.ss_size = STACK;
            g_uc[i].uc_link = NULL;
            makecontext(&g_uc[i], entry, 0);
        }
    }
    for (int i = 0; i < NT; i++)
        g_ctx[i].state = RUN, g_ctx[i].phase = 0;
    int run[NT];
    for (;;) {
        int n = 0;
        for (int i = 0; i < NT; i++)
            if (g_ctx[i].state == RUN) run[n++] = i;
        shuffle(run, n);
        for (int k = 0; k < n; k++)
            resume(run[k]);
        int done = 0, wcta = 0;
        for (int i = 0; i < NT; i++)
            done += g_ctx[i].state == DONE, wcta += g_ctx[i].state == WCTA;
        if (done == NT) break;
        bool released = false;
        for (int w = 0; w < NW; w++) {
            int k = 0;
            for (int l = 0; l < 32; l++)
                k += g_ctx[32 * w + l].state == WWARP;
            if (k < 32) continue;
            int c = g_ctx[32 * w].coll;
            for (int l = 1; l < 32; l++)
                if (g_ctx[32 * w + l].coll != c)
                    fail("warp %d diverges: lane 0 at %s, lane %d at %s, block %u", w, coll_name[c],
                         l, coll_name[g_ctx[32 * w + l].coll], g_block.x);
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
        fail("deadlock: %d threads done, %d at __syncthreads, the rest at a warp collective "
             "without all their warp, block %u",
             done, wcta, g_block.x);
    }
}

/* The kernel over `rows` rows (CTAs in a shuffled order); ids out. */
static void launch(const float *logits, int rows, size_t stride, int n_valid,
                   const ssf_sample_spec *spec, bool gather, int32_t *ids)
{
    G.logits = logits, G.rows = rows, G.stride = stride, G.n_valid = n_valid;
    G.spec = spec, G.ids = ids;
    G.id_writes.assign(rows, 0), G.gathered.assign(rows, -2), G.cand_wrong.assign(rows, 0);
    G.floor.assign(rows, 0);
    g_gather = gather;
    std::fill(ids, ids + rows, (int32_t)0x7eadbeef);
    std::vector<int> order(rows);
    for (int r = 0; r < rows; r++)
        order[r] = r;
    shuffle(order.data(), rows);
    for (int r : order) {
        g_block = {(unsigned)r, 0, 0};
        run_cta();
    }
    for (int r = 0; r < rows; r++)
        if (G.id_writes[r] != 1) fail("row %d's id written %d times", r, G.id_writes[r]);
}

/* ---- rows (bench/gpu_check.c's, and rows with a set count of ids with mass) ---- */

/* The ids 0 .. n_valid - 1 in an order drawn from r. */
static std::vector<int> shuffled_ids(int n_valid, std::mt19937 &r)
{
    std::vector<int> ids(n_valid);
    for (int i = 0; i < n_valid; i++)
        ids[i] = i;
    std::shuffle(ids.begin(), ids.end(), r);
    return ids;
}

/* k ids with mass at temperatures up to 1 (logits in [-9, 0], the first
 * at 0; `tied`: on a grid of 0.25, so that weights tie), the rest weighing
 * under one mass unit but not 0 (logits in [-38, -28]), a few of them NaN
 * or infinite; padding high. */
static void fill_with_mass(float *x, int n, int n_valid, uint32_t seed, int k, bool tied)
{
    std::mt19937 r(seed);
    std::uniform_real_distribution<float> u(0, 1);
    std::vector<int> ids = shuffled_ids(n_valid, r);
    for (int i = 0; i < n; i++)
        x[i] = i < n_valid ? -28.0f - 10.0f * u(r) : 50.0f;
    for (int j = 0; j < k; j++) {
        float v = j == 0 ? 0.0f : -9.0f * u(r);
        x[ids[j]] = tied ? floorf(v * 4) / 4 : v;
    }
    static const float odd[] = {NAN, INFINITY, -INFINITY, NAN, INFINITY};
    for (int j = 0; j < 5 && k + j < n_valid; j++)
        x[ids[k + j]] = odd[j];
}

/* ---- the host's view ---- */

/* The kernel's semantics, plainly: each id's key (its weight's float bits,
 * the weight computed as the kernel does) and mass (2^-40 units), the cuts
 * heaviest first with ties lowest id first (top-k by count over the ids
 * with a nonzero key, top-p by mass, min-p on the weight), and the kept
 * masses, which the uniform walks in id order.  And what the gathered
 * path must gather: the ids at or above one mass unit (sets[0]) and at or
 * above each tier's floor (sets[1 + j]), and where it must end: the ids
 * with mass when they fit, else the highest tier whose ids decide every cut
 * and fit, else none (-1 at the first floor). */
struct model {
    std::vector<uint32_t> key;
    std::vector<uint64_t> kept; /* the mass of each id that survives */
    uint64_t total;
    std::vector<cand_set> sets;
    uint32_t want_floor;
    int want_n;
};

/* The key of a weight of 2^-e. */
static uint32_t key_of_exp(int e)
{
    return __float_as_uint(ldexpf(1.0f, -e));
}

/* Whether the ids at or above 2^-e decide the draw: a top-k cut (over the
 * row's count of weighted ids) keeping no more than they are; else a top-p
 * cut (on the row's whole mass) whose mass they hold; else a min-p at or
 * over 2^-e. */
static bool tier_decides_host(const ssf_sample_spec &sp, int n_all, uint64_t total,
                              const cand_set &c, const std::vector<uint64_t> &mass, int e)
{
    if (sp.top_k > 0 && sp.top_k < n_all) return (int)c.id.size() >= sp.top_k;
    if (sp.top_p > 0 && sp.top_p < 1) {
        uint64_t need = (uint64_t)ceil(sp.top_p * (double)total), held = 0;
        if (need < 1) need = 1;
        for (int32_t i : c.id)
            held += mass[i];
        if (need < total && held >= need) return true;
    }
    return sp.min_p > 0 && (float)sp.min_p >= ldexpf(1.0f, -e);
}
static model make_model(const float *x, int n, const ssf_sample_spec &sp)
{
    model m;
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && x[i] > max) max = x[i];
    double inv = 1.0 / sp.temperature; /* held below FLT_MAX, as the kernel holds it */
    float inv_t = inv < FLT_MAX ? (float)inv : FLT_MAX;
    m.key.assign(n, 0);
    std::vector<uint64_t> mass(n, 0);
    std::vector<int> live; /* nonzero key, and a weight min-p 0 keeps (not NaN) */
    int count = 0;
    uint64_t all_mass = 0;
    const int floors[1 + TIERS] = {40, TIER_EXP(0), TIER_EXP(1), TIER_EXP(2)};
    static_assert(TIERS == 3, "floors lists every tier");
    m.sets.resize(1 + TIERS);
    for (int f = 0; f <= TIERS; f++)
        m.sets[f].floor = key_of_exp(floors[f]);
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        float w = expf((x[i] - max) * inv_t);
        m.key[i] = __float_as_uint(w), mass[i] = cvt_rzi_u64(w * 1099511627776.0f);
        count += m.key[i] != 0, all_mass += mass[i];
        if (m.key[i] != 0 && w >= 0.0f) live.push_back(i);
        for (cand_set &c : m.sets)
            if (w >= __uint_as_float(c.floor)) c.id.push_back(i), c.key.push_back(m.key[i]);
    }
    if ((int)m.sets[0].id.size() <= 2048) {
        m.want_floor = m.sets[0].floor, m.want_n = (int)m.sets[0].id.size();
    } else {
        m.want_floor = m.sets[0].floor, m.want_n = -1;
        for (int j = 0; j < TIERS; j++)
            if (m.sets[1 + j].id.size() <= 2048 &&
                tier_decides_host(sp, count, all_mass, m.sets[1 + j], mass, floors[1 + j])) {
                m.want_floor = m.sets[1 + j].floor, m.want_n = (int)m.sets[1 + j].id.size();
                break;
            }
    }
    std::sort(live.begin(), live.end(),
              [&](int a, int b) { return m.key[a] != m.key[b] ? m.key[a] > m.key[b] : a < b; });
    if (sp.top_k > 0 && sp.top_k < count) live.resize(std::min<size_t>(live.size(), sp.top_k));
    if (sp.top_p > 0 && sp.top_p < 1) {
        uint64_t total = 0, run = 0;
        for (int i : live)
            total += mass[i];
        uint64_t need = (uint64_t)ceil(sp.top_p * (double)total);
        if (need < 1) need = 1;
        if (need < total)
            for (size_t j = 0; j < live.size(); j++)
                if ((run += mass[live[j]]) >= need) {
                    live.resize(j + 1);
                    break;
                }
    }
    m.kept.assign(n, 0), m.total = 0;
    for (int i : live)
        if (sp.min_p <= 0 || __uint_as_float(m.key[i]) >= (float)sp.min_p)
            m.kept[i] = mass[i], m.total += mass[i];
    return m;
}
static int32_t model_draw(const model &m, uint64_t seed, uint64_t step)
{
    if (m.total == 0) return -1;
    uint64_t target = (uint64_t)(ssf_philox_uniform(seed, step) * (double)m.total), run = 0;
    if (target >= m.total) target = m.total - 1;
    for (size_t i = 0; i < m.kept.size(); i++)
        if ((run += m.kept[i]) > target) return (int32_t)i;
    return -1;
}

/* Weights set by their powers of two at temperature t: k heavy ids at
 * 2^-[0, 3] (the first at 1), m ids of a band at 2^-[lo, hi], the rest at
 * 2^-[26, 39] (mass, but little); padding high. */
static void fill_bands(float *x, int n, int n_valid, uint32_t seed, double t, int k, int m,
                       double lo, double hi)
{
    std::mt19937 r(seed);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<int> ids = shuffled_ids(n_valid, r);
    auto at = [&](double e) { return (float)(-e * M_LN2 * t); };
    for (int i = 0; i < n; i++)
        x[i] = i < n_valid ? at(26 + 13 * u(r)) : 50.0f;
    for (int j = 0; j < k + m && j < n_valid; j++)
        x[ids[j]] = j == 0 ? 0.0f : j < k ? at(3 * u(r)) : at(lo + (hi - lo) * u(r));
}

/* ---- cases ---- */
enum kind { FLAT, PEAKED, MASS, TIED, LAST_HEAVY, TAIL, BANDS };
struct scase {
    const char *name;
    kind k;
    double param; /* FLAT: scale; MASS, TIED, LAST_HEAVY: ids with mass; BANDS: a BAND_ROWS entry */
    int n, n_valid, draws;
    ssf_sample_spec sp;
};

/* BANDS rows: heavy ids, ids in the band, the band's weights 2^-lo .. 2^-hi */
static const struct {
    int heavy, band;
    double lo, hi;
} BAND_ROWS[] = {
    /* the band 10% of the mass: the 2^-10 tier holds 90%, 2^-16 all */
    {4, 1500, 11, 15},
    /* the band 3% of the mass, under 2^-10 (which decides top-p 0.95 with
     * the band's mass counted in) */
    {40, 1500, 10.5, 12.5},
    /* 3,000 ids in the band: no tier fits and holds it */
    {4, 3000, 11, 15},
};

static void make_row(const scase &c, float *x)
{
    uint32_t seed = 7 + (uint32_t)c.sp.seed;
    switch (c.k) {
    case FLAT:
        fill_logits(x, c.n, c.n_valid, seed, c.param);
        break;
    case PEAKED:
        fill_peaked_logits(x, c.n, c.n_valid, seed);
        break;
    case MASS:
        fill_with_mass(x, c.n, c.n_valid, seed, (int)c.param, false);
        break;
    case TIED:
        fill_with_mass(x, c.n, c.n_valid, seed, (int)c.param, true);
        break;
    case LAST_HEAVY: /* MASS, and the last valid id as heavy as the first */
        fill_with_mass(x, c.n, c.n_valid, seed, (int)c.param, false);
        x[c.n_valid - 1] = 0.0f;
        break;
    case TAIL:
        fill_tail_logits(x, c.n, c.n_valid, seed);
        break;
    case BANDS:
        fill_bands(x, c.n, c.n_valid, seed, c.sp.temperature, BAND_ROWS[(int)c.param].heavy,
                   BAND_ROWS[(int)c.param].band, BAND_ROWS[(int)c.param].lo,
                   BAND_ROWS[(int)c.param].hi);
        break;
    }
}

static int g_fail_fast;

/* One case: `draws` CTAs of copies of one row (step = the row) through the
 * whole-row kernel and the gathered one. */
static int run_case(const scase &c)
{
    int D = c.draws, bad = 0;
    auto complain = [&](const char *fmt, auto... args) {
        if (bad++ < 6) printf(fmt, args...);
    };
    std::vector<float> row(c.n), x((size_t)D * c.n);
    make_row(c, row.data());
    std::vector<ssf_sample_spec> spec(D, c.sp);
    for (int d = 0; d < D; d++) {
        memcpy(&x[(size_t)d * c.n], row.data(), c.n * sizeof(float));
        spec[d].step = (uint64_t)d;
    }
    model m = make_model(row.data(), c.n_valid, c.sp);
    std::vector<double> p(c.n_valid);
    reference_dist(row.data(), c.n_valid, &c.sp, p.data());
    /* the model against the reference: support and total variation */
    double tv = 0;
    int kept = 0, outside = 0;
    for (int i = 0; i < c.n_valid; i++) {
        double q = (double)m.kept[i] / (double)m.total;
        tv += fabs(q - p[i]) / 2, kept += m.kept[i] > 0;
        if (m.kept[i] && p[i] == 0) outside++;
    }
    if (outside) complain("  the model keeps %d ids the reference drops\n", outside);
    if (!(tv < 1e-5)) complain("  the model is %.3g (total variation) from the reference\n", tv);

    int n_mass = (int)m.sets[0].id.size(), want_n = m.want_n;
    int tier = 0; /* 0: the first floor; 1 + j: tier j */
    for (int f = 0; f < (int)m.sets.size(); f++)
        if (m.sets[f].floor == m.want_floor) tier = f;
    std::vector<int32_t> ids[2] = {std::vector<int32_t>(D), std::vector<int32_t>(D)};
    G.sets = &m.sets;
    int same = 0, as_model[2] = {0, 0};
    for (int g = 0; g < 2; g++) {
        launch(x.data(), D, c.n, c.n_valid, spec.data(), g, ids[g].data());
        for (int d = 0; d < D; d++) {
            int32_t want = model_draw(m, c.sp.seed, (uint64_t)d), got = ids[g][d];
            as_model[g] += got == want;
            if (got != want)
                complain("  %s draw %d (step %d): id %d, the model's %d\n",
                         g ? "gathered" : "whole-row", d, d, got, want);
            if (got < 0 || got >= c.n_valid || p[got] == 0)
                complain("  %s draw %d: id %d outside the reference support\n",
                         g ? "gathered" : "whole-row", d, got);
            if (g && (G.gathered[d] != want_n || G.floor[d] != m.want_floor))
                complain("  draw %d: gather_candidates returned %d at the floor %08x, the row has "
                         "%d ids with mass (want %d at %08x)\n",
                         d, G.gathered[d], G.floor[d], n_mass, want_n, m.want_floor);
            if (g && G.cand_wrong[d])
                complain("  draw %d: %d gathered candidates differ from the ids with mass\n", d,
                         G.cand_wrong[d]);
        }
    }
    for (int d = 0; d < D; d++)
        same += ids[0][d] == ids[1][d];
    if (same != D) complain("  gathered draws equal whole-row draws %d of %d\n", same, D);
    /* the draws against the reference, loosely: a chi-square over cells of
     * consecutive ids of about equal reference probability, some 8 draws
     * expected in each, within dof + 5 sqrt(2 dof) + 10 */
    int cells = std::max(1, std::min(D / 8, kept));
    std::vector<double> e(cells, 0);
    std::vector<int> o(cells, 0);
    std::vector<int> cell(c.n_valid);
    double cum = 0;
    for (int i = 0; i < c.n_valid; i++) {
        cell[i] = std::min(cells - 1, (int)(cum * cells));
        cum += p[i], e[cell[i]] += p[i] * D;
    }
    for (int d = 0; d < D; d++)
        if (ids[0][d] >= 0 && ids[0][d] < c.n_valid) o[cell[ids[0][d]]]++;
    double chi = 0;
    for (int k = 0; k < cells; k++)
        if (e[k] > 0) chi += (o[k] - e[k]) * (o[k] - e[k]) / e[k];
    double dof = cells > 1 ? cells - 1 : 1, limit = dof + 5 * sqrt(2 * dof) + 10;
    if (!(chi <= limit)) complain("  chi2 %.1f over %.1f (%d cells)\n", chi, limit, cells);
    std::vector<int> cnt(c.n_valid, 0);
    for (int d = 0; d < D; d++)
        if (ids[0][d] >= 0 && ids[0][d] < c.n_valid) cnt[ids[0][d]]++;
    int distinct = 0;
    for (int i = 0; i < c.n_valid; i++)
        distinct += cnt[i] > 0;
    char how[32];
    if (want_n < 0)
        snprintf(how, sizeof how, "fallback");
    else if (tier == 0)
        snprintf(how, sizeof how, "gathered");
    else
        snprintf(how, sizeof how, "tier 2^-%d: %d", TIER_EXP(tier - 1), want_n);
    printf("%s %-40s %4d with mass (%s), %4d kept; %d draws: whole %d, gathered %d as the model, "
           "%d alike, %d ids; chi2 %.1f <= %.1f (%d cells); tv %.1e\n",
           bad ? "FAIL" : "ok  ", c.name, n_mass, how, kept, D, as_model[0], as_model[1], same,
           distinct, chi, limit, cells, tv);
    fflush(stdout);
    return bad;
}

/* Greedy rows against sampler.c's argmax, both kernels. */
static int run_greedy(int N, int NV)
{
    enum { R = 16 };
    std::vector<float> x((size_t)R * N);
    std::vector<ssf_sample_spec> spec(R);
    for (int r = 0; r < R; r++) {
        fill_logits(&x[(size_t)r * N], N, NV, 100 + (uint32_t)r, 3.0);
        spec[r] = ssf_sample_spec{0, 1, 0, 0, 5, (uint64_t)r};
    }
    float *row[R];
    for (int r = 0; r < R; r++)
        row[r] = &x[(size_t)r * N];
    row[1][10] = row[1][3000] = 40.0f;                            /* two maxima: 10 */
    row[2][5] = NAN, row[2][6] = INFINITY, row[2][7] = -INFINITY; /* skipped */
    for (int i = 0; i < NV; i++)                                  /* no finite logit: -1 */
        row[3][i] = i % 3 ? -INFINITY : i % 2 ? INFINITY : NAN;
    row[4][NV - 1] = 60.0f;                             /* the last valid id */
    row[5][2047] = row[5][1024] = row[5][1023] = 33.0f; /* across warps: 1023 */
    for (int i = 0; i < NV; i++)                        /* all equal: 0 */
        row[6][i] = 1.5f;
    for (int i = 0; i < NV; i++) /* -0 and +0 equal: 0 */
        row[7][i] = i ? 0.0f : -0.0f;
    for (int i = 0; i < NV; i++) /* one finite logit */
        row[8][i] = i == 2500 ? -1e30f : NAN;
    row[9][0] = 41.0f;
    spec[10].temperature = 0.7, spec[10].top_k = 1; /* top-k 1: greedy at any temperature */
    spec[11].temperature = -1;
    spec[12].temperature = 1, spec[12].top_k = 1, spec[12].top_p = 0.5, spec[12].min_p = 0.3;
    row[14][2003] = row[14][2001] = 35.0f; /* in one thread's float4 (an aligned row): 2001 */
    /* 4 WALK_STEP ids apart: one thread's first and second round in a long row */
    int far = 8 + 4 * WALK_STEP < NV ? 8 + 4 * WALK_STEP : NV - 2;
    row[15][far] = row[15][8] = 36.0f; /* 8 */
    int bad = 0, agree = 0;
    ssf_sampler_scratch scratch = {};
    std::vector<int32_t> ids[2] = {std::vector<int32_t>(R), std::vector<int32_t>(R)};
    const int32_t fixed[R] = {-2, 10, -2, -1, NV - 1, 1023, 0, 0, 2500, 0, -2, -2, -2, -2, 2001, 8};
    for (int g = 0; g < 2; g++) {
        launch(x.data(), R, N, NV, spec.data(), g, ids[g].data());
        for (int r = 0; r < R; r++) {
            ssf_sampler_params hp = {spec[r].temperature, spec[r].top_p, spec[r].top_k,
                                     spec[r].min_p};
            int32_t want = ssf_sample(row[r], NV, &hp, spec[r].seed, spec[r].step, &scratch);
            agree += ids[g][r] == want;
            if (ids[g][r] != want || (fixed[r] != -2 && want != fixed[r])) {
                bad++;
                printf("  %s greedy row %d: id %d, sampler.c %d%s\n", g ? "gathered" : "whole-row",
                       r, ids[g][r], want,
                       fixed[r] != -2 && want != fixed[r] ? " (not as built)" : "");
            }
        }
    }
    ssf_sampler_scratch_free(&scratch);
    printf("%s greedy, rows of %d (%d valid): %d of %d rows as sampler.c's argmax (tie %d, no "
           "finite logit %d, across warps %d)\n",
           bad ? "FAIL" : "ok  ", N, NV, agree, 2 * R, ids[0][1], ids[0][3], ids[0][5]);
    fflush(stdout);
    return bad;
}

/* The kernel's Philox against sampler.c's. */
static int check_philox(void)
{
    std::mt19937_64 r(3);
    for (int i = 0; i < 20000; i++) {
        uint64_t seed = i < 100 ? (uint64_t)i : r(), step = i < 100 ? (uint64_t)i * 7 : r();
        if (philox_uniform(seed, step) != ssf_philox_uniform(seed, step)) {
            printf("FAIL philox: seed %llu step %llu differs from sampler.c\n",
                   (unsigned long long)seed, (unsigned long long)step);
            return 1;
        }
    }
    printf("ok   philox: the kernel's uniform is sampler.c's (20000 seeds and steps)\n");
    return 0;
}

static ssf_sample_spec S(double t, double top_p, int top_k, double min_p, uint64_t seed)
{
    return ssf_sample_spec{t, top_p, min_p, top_k, seed, 0};
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-x"))
            g_fail_fast = 1;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            g_rs = (2 * strtoull(argv[++i], NULL, 10) + 1) * 0x9E3779B97F4A7C15ull;
        else
            fail("usage: sample_emu [-x] [-s seed]");
    const int N = 4096, NV = 4000, DR = 48;
    /* one row a case, as bench/gpu_check.c's check_distribution (4096 ids,
     * 4000 valid, the padding high); its cases first */
    std::vector<scase> cases = {
        {"flat T=1", FLAT, 1.0, N, NV, DR, S(1, 1, 0, 0, 0)},
        {"flat T=0.6 top-p 0.95", FLAT, 1.0, N, NV, DR, S(0.6, 0.95, 0, 0, 1)},
        {"flat T=1 top-k 20", FLAT, 2.0, N, NV, DR, S(1, 1, 20, 0, 2)},
        {"flat T=0.8 top-k 50 top-p 0.8", FLAT, 1.5, N, NV, DR, S(0.8, 0.8, 50, 0, 3)},
        {"flat T=1 min-p 0.1", FLAT, 1.0, N, NV, DR, S(1, 1, 0, 0.1, 4)},
        {"flat T=0.7 top-k 100 top-p 0.9 min-p 0.05", FLAT, 1.0, N, NV, DR,
         S(0.7, 0.9, 100, 0.05, 5)},
        {"peaked T=0.6 top-p 0.95", PEAKED, 0, N, NV, DR, S(0.6, 0.95, 0, 0, 6)},
        {"peaked T=1 top-k 100", PEAKED, 0, N, NV, DR, S(1, 1, 100, 0, 7)},
        {"peaked T=0.6 top-k 40 min-p 0.02", PEAKED, 0, N, NV, DR, S(0.6, 1, 40, 0.02, 8)},
        {"peaked T=0.6 top-k 10", PEAKED, 0, N, NV, DR, S(0.6, 1, 10, 0, 9)},
        {"scale 10 T=1", FLAT, 10.0, N, NV, DR, S(1, 1, 0, 0, 10)},
        {"scale 10 T=1 top-k 1000 top-p 0.99", FLAT, 10.0, N, NV, DR, S(1, 0.99, 1000, 0, 11)},
        /* set counts of ids with mass, the rest weighing under a unit */
        {"1000 with mass T=0.6 top-p 0.95", MASS, 1000, N, NV, DR, S(0.6, 0.95, 0, 0, 12)},
        {"1000 with mass T=1 top-k 1200 min-p 0.0005", MASS, 1000, N, NV, DR,
         S(1, 1, 1200, 0.0005, 22)},
        {"1900 tied T=1 top-k 1899", TIED, 1900, N, NV, DR, S(1, 1, 1899, 0, 13)},
        {"2048 with mass T=1", MASS, 2048, N, NV, DR, S(1, 1, 0, 0, 14)},
        {"2048 with mass T=1 top-k 2048 top-p 0.95", MASS, 2048, N, NV, DR,
         S(1, 0.95, 2048, 0, 15)},
        {"2048 tied T=0.6 top-k 700 min-p 0.001", TIED, 2048, N, NV, DR, S(0.6, 1, 700, 0.001, 16)},
        {"2049 with mass T=1", MASS, 2049, N, NV, DR, S(1, 1, 0, 0, 17)},
        {"2049 tied T=1 top-k 2049 top-p 0.95", TIED, 2049, N, NV, DR, S(1, 0.95, 2049, 0, 18)},
        {"2049 with mass T=0.6 top-k 2000 min-p 0.01", MASS, 2049, N, NV, DR,
         S(0.6, 1, 2000, 0.01, 19)},
        /* n_valid 3001: the last warp's segment ends inside its third
         * round; the padding is never read */
        {"n_valid 3001 1500 with mass T=1 top-p 0.9", MASS, 1500, 3072, 3001, DR,
         S(1, 0.9, 0, 0, 20)},
        {"n_valid 3001 peaked T=0.6", PEAKED, 0, 3072, 3001, DR, S(0.6, 1, 0, 0, 21)},
        /* the heaviest ids include the last, which every walk reads alone */
        {"n_valid 3001 last id heavy T=1 top-p 0.9", LAST_HEAVY, 1000, 3072, 3001, DR,
         S(1, 0.9, 0, 0, 26)},
        /* rows of 20,003: a walk of several rounds, and rows 16-byte
         * aligned or not (each row's first id a head of 0-3 read alone) */
        {"rows of 20003 peaked T=0.6 top-p 0.95", PEAKED, 0, 20003, 20001, 16,
         S(0.6, 0.95, 0, 0, 23)},
        {"rows of 20003 1900 with mass T=1 top-p 0.9", MASS, 1900, 20003, 20001, 16,
         S(1, 0.9, 0, 0, 24)},
        {"rows of 20003 2049 with mass T=1", MASS, 2049, 20003, 20001, 16, S(1, 1, 0, 0, 25)},
    };
    /* 1/T past FLT_MAX: the kernel holds it at FLT_MAX, so the maximum
     * weighs 1 and the rest 0, as sampler.c (in double) has them; an
     * infinite 1/T would weigh the maximum 0 * inf = NaN and draw -1 */
    cases.push_back({"T=1e-39 (1/T past FLT_MAX)", FLAT, 1.0, N, NV, 8, S(1e-39, 1, 0, 0, 30)});
    /* more ids with mass than fit, most of them light: the tiers */
    std::vector<scase> tiers = {
        {"tail T=0.6 top-p 0.95", TAIL, 0, N, NV, DR, S(0.6, 0.95, 0, 0, 40)},
        {"tail T=1 top-k 50", TAIL, 0, N, NV, DR, S(1, 1, 50, 0, 41)},
        {"tail T=0.6 top-k 3000 top-p 0.9", TAIL, 0, N, NV, DR, S(0.6, 0.9, 3000, 0, 42)},
        {"bands 10% T=1 top-p 0.95 (2^-16)", BANDS, 0, N, NV, DR, S(1, 0.95, 0, 0, 43)},
        {"bands 3% T=0.6 top-p 0.95 (2^-10)", BANDS, 1, N, NV, DR, S(0.6, 0.95, 0, 0, 44)},
        {"bands 10% T=1 min-p 0.001", BANDS, 0, N, NV, DR, S(1, 1, 0, 0.001, 45)},
        {"bands 10% T=1 top-p 0.99 min-p 0.001", BANDS, 0, N, NV, DR, S(1, 0.99, 0, 0.001, 46)},
        {"bands 10% T=1 top-p 0.99", BANDS, 0, N, NV, DR, S(1, 0.99, 0, 0, 47)},
        {"bands of 3000 T=1 top-p 0.95", BANDS, 2, N, NV, DR, S(1, 0.95, 0, 0, 48)},
        /* top-k decides: the band's mass is gone with the top-k cut */
        {"bands 3% T=0.6 top-k 30 top-p 0.9", BANDS, 1, N, NV, DR, S(0.6, 0.9, 30, 0, 50)},
        {"bands 3% T=0.6 top-k 40 top-p 0.9", BANDS, 1, N, NV, DR, S(0.6, 0.9, 40, 0, 51)},
        /* a min-p under 2^-10 does not decide the 2^-10 tier; one at it does */
        {"bands 10% T=1 min-p 0.0009", BANDS, 0, N, NV, DR, S(1, 1, 0, 0.0009, 52)},
        {"bands 10% T=1 min-p 2^-10", BANDS, 0, N, NV, DR, S(1, 1, 0, 0.0009765625, 53)},
        /* a top-k at or past the row's weighted ids cuts nothing: the tail
         * stays in top-p's total (NaN and infinities weigh nothing) */
        {"tail T=0.6 top-k 5000 top-p 0.95", TAIL, 0, N, NV, DR, S(0.6, 0.95, 5000, 0, 54)},
        {"2500 with mass T=1 top-k 3995 top-p 0.9", MASS, 2500, N, NV, DR, S(1, 0.9, 3995, 0, 55)},
        {"rows of 20003 tail T=0.6 top-p 0.95", TAIL, 0, 20003, 20001, 16, S(0.6, 0.95, 0, 0, 49)},
    };
    cases.insert(cases.end(), tiers.begin(), tiers.end());
    int fails = check_philox();
    fails += run_greedy(N, NV);
    fails += run_greedy(20003, 20001); /* rows of several rounds, most not 16-byte aligned */
    for (auto &c : cases) {
        if (fails && g_fail_fast) break;
        fails += run_case(c) != 0;
    }
    printf(fails ? "FAILURES\n" : "all ok\n");
    return fails != 0;
}
