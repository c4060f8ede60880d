/*
 * test_attn_plan.c - the CUDA paged attention's launch shape (cuda_plan.h),
 * checked on the CPU: the grid covers every (row, KV head, query head,
 * position) exactly once, split-KV happens only when the unsplit grid
 * under-fills the SMs and the context is long (and then does happen),
 * chunks are whole blocks, the GQA group is padded to the kernel's
 * power-of-two width, shared memory and the split workspace stay in their
 * bounds.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_plan.h"

/* slots: the CTAs the device runs at once (an H200 at head_dim 128: 132
 * SMs x 3) */
static ssf_attn_shape plan(int rows, int nkv, int group, int ctx, int hd, int bs, int slots)
{
    ssf_attn_shape s;
    if (ssf_attn_plan(rows, nkv, group, ctx, hd, bs, slots, &s))
        fail_msg("no plan for rows %d nkv %d group %d ctx %d hd %d bs %d slots %d", rows, nkv,
                 group, ctx, hd, bs, slots);
    return s;
}

/* Waves of CTAs of `chunk` positions over the slots, times the share of
 * the context each walks, and no less than the base unsplit CTAs' bytes
 * at SSF_ATTN_SATURATE_PCT of the slots' rate: the time the planner
 * minimises. */
static double modelled_chunk(int chunk, int ctx, int base, int slots)
{
    long long splits = (ctx + (long long)chunk - 1) / chunk;
    long long waves = (base * splits + slots - 1) / slots;
    double waves_time = (double)waves * (chunk < ctx ? chunk : ctx) / ctx;
    double saturating = slots * SSF_ATTN_SATURATE_PCT / 100.0;
    double memory_time = base / (saturating > 1 ? saturating : 1);
    return waves_time > memory_time ? waves_time : memory_time;
}

static double modelled(const ssf_attn_shape *s, int base, int slots, int ctx)
{
    return modelled_chunk(s->chunk, ctx, base, slots);
}

/* No chunk of whole 64-position rounds the planner may take (at least
 * SSF_ATTN_MIN_CHUNK positions a split, within SSF_ATTN_OVERSUB waves) is
 * modelled more than 5% faster than its pick. */
static void expect_near_best(const ssf_attn_shape *s, int base, int ctx, int slots)
{
    double got = modelled(s, base, slots, ctx);
    for (int chunk = 128; chunk < ctx; chunk += 64) {
        int splits = (ctx + chunk - 1) / chunk;
        if (splits > ctx / SSF_ATTN_MIN_CHUNK || (long long)base * splits > 4LL * slots) continue;
        if (got > 1.05 * modelled_chunk(chunk, ctx, base, slots))
            fail_msg("ctx %d base %d slots %d: %d splits of %d modelled %.4f, %d splits of %d %.4f",
                     ctx, base, slots, s->splits, s->chunk, got, splits, chunk,
                     modelled_chunk(chunk, ctx, base, slots));
    }
}

/* The kernel's own arithmetic: CTA (x, y, z) computes query heads
 * y%hc * group_pad .. + min(group_pad, rest) of KV head y/hc and positions
 * [z chunk, min(ctx, (z+1) chunk)).  Every (head, position) once. */
static void expect_coverage(const ssf_attn_shape *s, int nkv, int group, int ctx)
{
    int n_heads = nkv * group;
    int *seen = calloc((size_t)n_heads * ctx, sizeof(int));
    for (int y = 0; y < s->grid[1]; y++) {
        int kvh = y / s->head_chunks, qc = y % s->head_chunks;
        int h0 = kvh * group + qc * s->group_pad;
        int ng =
            group - qc * s->group_pad < s->group_pad ? group - qc * s->group_pad : s->group_pad;
        assert_true(ng >= 1); /* no CTA without a head */
        for (int z = 0; z < s->grid[2]; z++) {
            int lo = z * s->chunk, hi = lo + s->chunk < ctx ? lo + s->chunk : ctx;
            assert_true(lo < hi); /* no split empty for the longest row */
            for (int g = 0; g < ng; g++)
                for (int t = lo; t < hi; t++)
                    seen[(size_t)(h0 + g) * ctx + t]++;
        }
    }
    for (size_t i = 0; i < (size_t)n_heads * ctx; i++)
        if (seen[i] != 1)
            fail_msg("head %zu position %zu covered %d times", i / ctx, i % ctx, seen[i]);
    free(seen);
}

/* The planner's chunks are whole 64-position rounds of the CTA's warps
 * where blocks nest in them, else whole blocks. */
static int chunk_unit_of(int bs)
{
    return 64 % bs == 0 ? 64 : bs;
}

/* Invariants of one plan. */
static void expect_sound(int rows, int nkv, int group, int ctx, int hd, int bs, int slots)
{
    ssf_attn_shape s = plan(rows, nkv, group, ctx, hd, bs, slots);
    int base = rows * nkv * s.head_chunks;
    assert_int_equal(s.grid[0], rows);
    assert_int_equal(s.grid[1], nkv * s.head_chunks);
    assert_int_equal(s.grid[2], s.splits);
    assert_int_equal(s.threads, SSF_ATTN_THREADS);
    assert_true(s.group_pad * s.head_chunks >= group);
    assert_true(s.group_pad <= SSF_ATTN_MAX_GROUP);
    assert_int_equal(s.group_pad & (s.group_pad - 1), 0);
    assert_int_equal(s.chunk % bs, 0);
    /* the kernel's one table walk a tile needs tiles inside blocks */
    if (bs % SSF_ATTN_TILE == 0) assert_int_equal(s.chunk % SSF_ATTN_TILE, 0);
    assert_true((long long)s.chunk * s.splits >= ctx);
    assert_true((long long)s.chunk * (s.splits - 1) < ctx);
    assert_true(s.smem < SSF_ATTN_SMEM_MAX);
    if (s.splits > 1) {
        assert_true(ctx >= 2 * SSF_ATTN_MIN_CHUNK); /* long */
        assert_true(s.chunk >= SSF_ATTN_MIN_CHUNK); /* each split worth its CTA */
        assert_true((long long)base * s.splits <= (long long)SSF_ATTN_OVERSUB * slots);
        assert_true(modelled(&s, base, slots, ctx) <
                    modelled_chunk(ctx, ctx, base, slots)); /* faster than unsplit */
        if (chunk_unit_of(bs) == 64) expect_near_best(&s, base, ctx, slots);
        assert_true(s.partial_floats >= (size_t)rows * nkv * group * s.splits * (hd + 2));
        assert_true(s.partial_floats <= ssf_attn_partial_floats_max(slots, hd));
    } else {
        assert_true(s.chunk >= ctx);
        assert_int_equal(s.partial_floats, 0);
    }
    /* under-filled and long enough for two chunks: split */
    if (2 * base <= slots && ctx >= 2 * SSF_ATTN_MIN_CHUNK) assert_true(s.splits >= 2);
    /* filled past the share of the slots that keeps the memory busy: the
     * bytes take as long split, and the merge would come on top */
    if (100LL * base >= (long long)SSF_ATTN_SATURATE_PCT * slots && base <= slots)
        assert_int_equal(s.splits, 1);
}

static void test_group_padding(void **state)
{
    (void)state;
    /* group -> (padded width, CTAs per KV head) */
    int want[][3] = {{1, 1, 1}, {2, 2, 1}, {3, 4, 1}, {4, 4, 1},  {5, 8, 1},  {6, 8, 1},
                     {7, 8, 1}, {8, 8, 1}, {9, 8, 2}, {12, 8, 2}, {16, 8, 2}, {17, 8, 3}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ssf_attn_shape s = plan(3, 2, want[i][0], 100, 128, 16, 132);
        assert_int_equal(s.group_pad, want[i][1]);
        assert_int_equal(s.head_chunks, want[i][2]);
        expect_coverage(&s, 2, want[i][0], 100);
    }
}

static void test_split_rule(void **state)
{
    (void)state;
    /* Qwen2.5-32B (8 KV heads, group 5), one row on 396 slots: 32 splits
     * of 256, 256 CTAs, as fast by the memory as the 43 of 192 that the
     * waves alone would take (344 CTAs), with a quarter fewer partials */
    ssf_attn_shape s = plan(1, 8, 5, 8192, 128, 16, 396);
    assert_int_equal(s.splits, 32);
    assert_int_equal(s.chunk, 256);
    /* Qwen2.5-1.5B, one row over 4,096 positions: 32 splits of 128 in one
     * wave.  31 asked for would round to 22 of 192, half as long again,
     * which a model of waves / splits took for 3% slower */
    s = plan(1, 2, 6, 4096, 128, 16, 396);
    assert_int_equal(s.splits, 32);
    assert_int_equal(s.chunk, 128);
    /* Qwen2.5-1.5B (2 KV heads, group 6) at batch 64: 128 CTAs leave the
     * memory idle (run O: the plan's 3 splits 1.12-1.15x faster than none
     * from 1,224 positions); 2 splits make the 256 CTAs that keep it busy */
    assert_int_equal(plan(64, 2, 6, 456, 128, 16, 396).splits, 2);
    assert_int_equal(plan(64, 2, 6, 1224, 128, 16, 396).splits, 2);
    /* 256 CTAs (7B at batch 64) or 512 (1.5B at batch 256) on 396 slots
     * keep the memory busy unsplit: run O found none 1-8% faster than 3
     * splits there, whose 2 or 4 waves of a third the waves alone favour */
    assert_int_equal(plan(64, 4, 7, 2048, 128, 16, 396).splits, 1);
    assert_int_equal(plan(256, 2, 6, 456, 128, 16, 396).splits, 1);
    assert_int_equal(plan(256, 2, 6, 2048, 128, 16, 396).splits, 1);
    /* many waves already: a prefill of 1000 rows */
    assert_int_equal(plan(1000, 8, 5, 1000, 128, 16, 396).splits, 1);
    /* unsplit, the shape does not follow the context, so a captured decode
     * step stays valid as its sequences grow */
    ssf_attn_shape a = plan(256, 8, 5, 300, 128, 16, 396), b = plan(256, 8, 5, 30000, 128, 16, 396);
    assert_int_equal(a.splits, 1);
    assert_int_equal(b.splits, 1);
    assert_int_equal(a.chunk, b.chunk);
    assert_memory_equal(a.grid, b.grid, sizeof a.grid);
    /* an exact wave gains nothing from splitting */
    assert_int_equal(plan(99, 4, 7, 4096, 128, 16, 396).splits, 1);
    /* short: under-filled but nothing worth splitting */
    assert_int_equal(plan(1, 8, 5, 255, 128, 16, 396).splits, 1);
    assert_int_equal(plan(1, 2, 7, 255, 64, 16, 396).splits, 1);
    assert_true(plan(1, 2, 7, 256, 64, 16, 396).splits >= 2);
    /* plans within 5% of the best, 72 CTAs of 512 positions in one wave
     * on 108 slots (memory-bound at 65 of them) or 88 of 384: the fewer
     * splits, whose partials cost less to write and merge */
    s = plan(1, 8, 5, 4224, 128, 16, 108);
    assert_int_equal(s.splits, 9);
    assert_int_equal(s.chunk, 512);
    /* a block size the tile does not divide: chunks still whole blocks */
    s = plan(1, 1, 8, 10000, 64, 96, 132);
    assert_int_equal(s.chunk % 96, 0);
    expect_coverage(&s, 1, 8, 10000);
}

static void test_invariants_sweep(void **state)
{
    (void)state;
    int rows[] = {1, 2, 3, 7, 16, 64, 128, 256, 1024};
    int kv_group[][2] = {{1, 1}, {2, 6}, {2, 7}, {4, 7}, {8, 5}, {2, 8}, {4, 4}, {1, 12}};
    int ctx[] = {1, 15, 16, 17, 255, 512, 513, 4096, 10000, 32768};
    int bs[] = {1, 16, 32, 48, 128};
    int slots[] = {1, 8, 108, 132, 396, 528};
    int n = 0;
    for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
        for (size_t b = 0; b < sizeof kv_group / sizeof *kv_group; b++)
            for (size_t c = 0; c < sizeof ctx / sizeof *ctx; c++)
                for (size_t d = 0; d < sizeof bs / sizeof *bs; d++)
                    for (size_t e = 0; e < sizeof slots / sizeof *slots; e++)
                        for (int hd = 64; hd <= 128; hd += 64, n++)
                            expect_sound(rows[a], kv_group[b][0], kv_group[b][1], ctx[c], hd, bs[d],
                                         slots[e]);
    assert_true(n > 10000);
}

static void test_coverage_with_splits(void **state)
{
    (void)state;
    int cases[][6] = {/* nkv, group, ctx, hd, bs, slots */
                      {1, 5, 4097, 128, 16, 132},
                      {2, 7, 2000, 64, 1, 132},
                      {1, 8, 777, 128, 32, 132},
                      {2, 6, 3000, 64, 16, 8}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int *c = cases[i];
        ssf_attn_shape s = plan(1, c[0], c[1], c[2], c[3], c[4], c[5]);
        assert_true(s.splits >= 2);
        expect_coverage(&s, c[0], c[1], c[2]);
    }
}

/* The device sizes its partials once, with ssf_attn_partial_floats_max,
 * for SSF_ATTN_OVERSUB CTAs a slot of full groups of 8.  The plan stops
 * splitting where the memory is busy, but a launch of a wave and a bit
 * over a short context still splits to shorten its last wave, and that
 * can take more than 3 CTAs a slot. */
static void test_partials_bound_covers(void **state)
{
    (void)state;
    for (int hd = 64; hd <= 128; hd += 64) {
        /* 226 rows of one KV head of 10 query heads (2 head chunks): 452
         * CTAs unsplit take 2 waves of 396 slots, 2 splits of 192 of 317
         * positions 3 waves of 0.6 */
        ssf_attn_shape s = plan(226, 1, 10, 317, hd, 16, 396);
        assert_int_equal(s.splits, 2);
        assert_int_equal(s.grid[0] * s.grid[1] * s.grid[2], 904);
        assert_int_equal(s.partial_floats, (size_t)226 * 10 * 2 * (hd + 2));
        assert_true(s.partial_floats <= ssf_attn_partial_floats_max(396, hd));
        /* the widest plan a search of 1-800 rows of 1.5B, 7B, 32B and
         * full groups over 256-20,000 positions found: 211 rows of 2 KV
         * heads of 8 over 513 positions, 422 CTAs unsplit (2 waves; the
         * memory's floor 1.78), take 3 splits of 192: 1,266 CTAs, 3.2 a
         * slot, 4 waves of 0.37 under that floor, where 2 splits of 320
         * (3 waves of 0.62, 1.87) are just over 5% slower.  Their
         * partials are 80% of the bound. */
        s = plan(211, 2, 8, 513, hd, 16, 396);
        assert_int_equal(s.splits, 3);
        assert_int_equal(s.chunk, 192);
        assert_int_equal(s.grid[0] * s.grid[1] * s.grid[2], 1266);
        assert_int_equal(s.partial_floats, (size_t)211 * 2 * 8 * 3 * (hd + 2));
        assert_true(s.partial_floats <= ssf_attn_partial_floats_max(396, hd));
    }
    /* every launch of up to two waves of full groups over short contexts,
     * where splits are the widest: inside the bound */
    for (int rows = 1; rows <= 396; rows++)
        for (int ctx = 256; ctx <= 1100; ctx++) {
            ssf_attn_shape s = plan(rows, 2, 8, ctx, 128, 16, 396);
            if (s.partial_floats > ssf_attn_partial_floats_max(396, 128))
                fail_msg("%d rows over %d positions: %d splits, %zu partial floats", rows, ctx,
                         s.splits, s.partial_floats);
        }
}

static void test_refusals(void **state)
{
    (void)state;
    ssf_attn_shape s;
    assert_int_equal(ssf_attn_plan(1, 1, 1, 10, 96, 16, 132, &s), -1);
    assert_int_equal(ssf_attn_plan(0, 1, 1, 10, 128, 16, 132, &s), -1);
    assert_int_equal(ssf_attn_plan(1, 0, 1, 10, 128, 16, 132, &s), -1);
    assert_int_equal(ssf_attn_plan(1, 1, 1, 0, 128, 16, 132, &s), -1);
    assert_int_equal(ssf_attn_plan(1, 1, 1, 10, 128, 0, 132, &s), -1);
    assert_int_equal(ssf_attn_plan(1, 1, 1, 10, 128, 16, 0, &s), -1);
    /* the longest context an unsplit chunk covers, split or not, and one
     * past it; INT_MAX would overflow the chunk arithmetic */
    assert_int_equal(ssf_attn_plan(1, 8, 8, SSF_ATTN_WHOLE, 128, 16, 132, &s), 0);
    assert_true((long long)s.chunk * s.splits >= SSF_ATTN_WHOLE);
    assert_int_equal(ssf_attn_plan(64, 8, 8, SSF_ATTN_WHOLE, 128, 16, 132, &s), 0);
    assert_true((long long)s.chunk * s.splits >= SSF_ATTN_WHOLE);
    assert_int_equal(ssf_attn_plan(64, 8, 8, SSF_ATTN_WHOLE + 1, 128, 16, 132, &s), -1);
    assert_int_equal(ssf_attn_plan(1, 8, 8, INT32_MAX, 128, 16, 132, &s), -1);
    /* a block size that does not divide SSF_ATTN_WHOLE rounds the unsplit
     * chunk down to whole blocks: a context past that is refused, not
     * planned with its last positions outside every split */
    static const int odd_blocks[] = {3, 24, 1000};
    for (int i = 0; i < 3; i++) {
        int bs = odd_blocks[i], whole = SSF_ATTN_WHOLE - SSF_ATTN_WHOLE % bs;
        assert_int_equal(ssf_attn_plan(1, 1, 1, whole, 128, bs, 1, &s), 0);
        assert_true((long long)s.chunk * s.splits >= whole);
        for (int ctx = whole + 1; ctx <= SSF_ATTN_WHOLE && ctx <= whole + 2; ctx++)
            if (ssf_attn_plan(1, 1, 1, ctx, 128, bs, 1, &s) == 0 &&
                (long long)s.chunk * s.splits < ctx)
                fail_msg("block size %d, context %d: %d splits of %d positions", bs, ctx, s.splits,
                         s.chunk);
    }
}

static void test_shared_memory(void **state)
{
    (void)state;
    /* 4 warps x 2 stages x (K, V) x 16 padded BF16 rows; the merge of the
     * warps' (acc, max, sum) for 8 heads must fit in the same bytes */
    const int hds[] = {64, 128};
    for (int i = 0; i < 2; i++) {
        int hd = hds[i];
        ssf_attn_shape s = plan(1, 1, 8, 100, hd, 16, 132);
        size_t want = (size_t)(hd + SSF_ATTN_KV_PAD) * 4 * 2 * 2 * 16 * 2;
        assert_int_equal(s.smem, want);
        assert_int_equal(ssf_attn_smem(hd), want);
        assert_true((size_t)(hd + 2) * 4 * 8 * sizeof(float) <= s.smem);
        assert_true(s.smem < SSF_ATTN_SMEM_MAX);
    }
    assert_int_equal(ssf_attn_smem(128), 69632);
}

/* Runs of one sequence at consecutive positions: long ones become q-blocks
 * of at most SSF_PREFILL_QB rows, the rest stay decode rows in order. */
static void test_prefill_split(void **state)
{
    (void)state;
    enum { N = 200 };
    int32_t seq[N], pos[N], qb[N], dec[N];
    int n = 0, nd = -1;
    for (int i = 0; i < 3; i++) /* three decode rows of three sequences */
        seq[n] = i, pos[n] = 50 + i, n++;
    for (int i = 0; i < 150; i++) /* a prompt chunk of sequence 7 from position 10 */
        seq[n] = 7, pos[n] = 10 + i, n++;
    for (int i = 0; i < 15; i++) /* one row short of a q-block */
        seq[n] = 8, pos[n] = i, n++;
    for (int i = 0; i < 16; i++) /* exactly one, right after another sequence's run */
        seq[n] = 9, pos[n] = 100 + i, n++;
    seq[n] = 9, pos[n] = 300, n++; /* the same sequence, not the next position */
    int nq = ssf_prefill_split(seq, pos, n, SSF_PREFILL_MIN_RUN, qb, dec, &nd);
    assert_int_equal(nq, 4);
    int32_t want_qb[] = {3, 64, 67, 64, 131, 22, 168, 16};
    assert_memory_equal(qb, want_qb, sizeof want_qb);
    assert_int_equal(nd, 3 + 15 + 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(dec[i], i);
    for (int i = 0; i < 15; i++)
        assert_int_equal(dec[3 + i], 153 + i);
    assert_int_equal(dec[18], 184);
    /* every row once, in one list or the other */
    int seen[N] = {0};
    for (int i = 0; i < nd; i++)
        seen[dec[i]]++;
    for (int b = 0; b < nq; b++)
        for (int i = 0; i < qb[2 * b + 1]; i++)
            seen[qb[2 * (size_t)b] + i]++;
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    /* a run of exactly two q-blocks; no rows at all */
    for (int i = 0; i < 2 * SSF_PREFILL_QB; i++)
        seq[i] = 1, pos[i] = i;
    nq = ssf_prefill_split(seq, pos, 2 * SSF_PREFILL_QB, SSF_PREFILL_MIN_RUN, qb, dec, &nd);
    assert_int_equal(nq, 2);
    assert_int_equal(nd, 0);
    assert_int_equal(qb[1], SSF_PREFILL_QB);
    assert_int_equal(qb[2], SSF_PREFILL_QB);
    assert_int_equal(qb[3], SSF_PREFILL_QB);
    assert_int_equal(ssf_prefill_split(seq, pos, 0, SSF_PREFILL_MIN_RUN, qb, dec, &nd), 0);
    assert_int_equal(nd, 0);
    /* min_run below 2 acts as 2: single rows stay decode rows */
    for (int i = 0; i < 3; i++)
        seq[i] = i, pos[i] = 50 + i;
    nq = ssf_prefill_split(seq, pos, 3, 0, qb, dec, &nd);
    assert_int_equal(nq, 0);
    assert_int_equal(nd, 3);
    /* 1 too: one-row q-blocks would take two entries a row of qblocks'
     * n_rows */
    nq = ssf_prefill_split(seq, pos, 3, 1, qb, dec, &nd);
    assert_int_equal(nq, 0);
    assert_int_equal(nd, 3);
}

static void test_prefill_smem(void **state)
{
    (void)state;
    assert_int_equal(ssf_prefill_smem(128, 0), 2 * 2 * 64 * 136 * 2 + 2 * 64 * 8);
    /* one BF16 stage, two of e4m3 rows and two of scales */
    assert_int_equal(ssf_prefill_smem(128, 1),
                     2 * 64 * 136 * 2 + 2 * (2 * 64 * 128 + 2 * 64 * 4) + 2 * 64 * 8);
    for (int fp8 = 0; fp8 <= 1; fp8++) {
        assert_true(ssf_prefill_smem(128, fp8) < SSF_ATTN_SMEM_MAX);
        assert_true(ssf_prefill_smem(64, fp8) < ssf_prefill_smem(128, fp8));
    }
    /* an fp8 CTA takes no more than a BF16 one: as many fit an SM */
    assert_true(ssf_prefill_smem(128, 1) <= ssf_prefill_smem(128, 0));
    assert_true(ssf_prefill_smem(64, 1) <= ssf_prefill_smem(64, 0));
}

/* ---- the small GEMMs' own kernel ---- */

#define H100_SMS 132
#define H100_CTA_SMEM 232448 /* cudaDevAttrMaxSharedMemoryPerBlockOptin */
#define H100_SM_SMEM 233472  /* cudaDevAttrMaxSharedMemoryPerMultiprocessor */

static ssf_pgemm_shape pgemm(int N, int K, int swiglu)
{
    ssf_pgemm_shape s;
    if (ssf_pgemm_plan(N, K, swiglu, H100_SMS, H100_CTA_SMEM, H100_SM_SMEM, &s))
        fail_msg("no own-GEMM plan for N %d K %d swiglu %d", N, K, swiglu);
    return s;
}

static void expect_shape(ssf_pgemm_shape s, int tiles, int splits, int stages)
{
    assert_int_equal(s.tiles, tiles);
    assert_int_equal(s.splits, splits);
    assert_int_equal(s.stages, stages);
}

/* The decode GEMMs of the models the engine is measured on, on an H100. */
static void test_pgemm_models(void **state)
{
    (void)state;
    /* 1.5B q|k|v: 32 tiles x 4 chunks of 384 (128 CTAs, one an SM), the
     * whole chunk in the ring: all of W copied before the wait */
    ssf_pgemm_shape s = pgemm(2048, 1536, 0);
    expect_shape(s, 32, 4, 6);
    assert_int_equal(s.chunk, 384);
    assert_int_equal(s.smem, 6 * (64 + 64 + 1) * 72 * 2);
    assert_int_equal(s.partial_floats, 4 * 64 * 2048);
    assert_int_equal(s.swiglu, 0);
    /* 1.5B o: 4 chunks would leave 36 SMs idle; 6 are 144 CTAs, two on
     * some SMs, each ring a whole chunk of 4 slices */
    expect_shape(pgemm(1536, 1536, 0), 24, 6, 4);
    assert_int_equal(s.bn, 64);
    /* 1.5B gate|up with SwiGLU's epilogue: 140 tiles of 128 columns, one
     * chunk (64-column tiles would read X from L2 as often as W), two
     * CTAs on some SMs, a ring of 4 of the 24 slices */
    s = pgemm(17920, 1536, 1);
    expect_shape(s, 140, 1, 4);
    assert_int_equal(s.bn, 128);
    assert_int_equal(s.swiglu, 1);
    assert_int_equal(s.smem, 4 * (128 + 64 + 1) * 72 * 2);
    assert_int_equal(s.partial_floats, 0);
    /* 1.5B down: 5 chunks of 28 slices, 120 CTAs, a ring of 8 */
    s = pgemm(1536, 8960, 0);
    expect_shape(s, 24, 5, 8);
    assert_int_equal(s.smem, 8 * (64 + 64 + 1) * 72 * 2);
    assert_int_equal(s.bn, 64);
    /* 7B: q|k|v 144 CTAs of 28 slices, o 224 of 14, gate|up 296 wide
     * ones of 56 (three on an SM: a ring of 2), down 224 of 74 */
    expect_shape(pgemm(4608, 3584, 0), 72, 2, 6);
    expect_shape(pgemm(3584, 3584, 0), 56, 4, 6);
    s = pgemm(37888, 3584, 1);
    expect_shape(s, 296, 1, 2);
    assert_int_equal(s.bn, 128);
    expect_shape(pgemm(3584, 18944, 0), 56, 4, 6);
    /* 0.5B gate|up with SwiGLU's epilogue: 76 wide tiles would leave 56
     * SMs idle, so 152 of 64 columns, still unsplit */
    s = pgemm(9728, 896, 1);
    expect_shape(s, 152, 1, 6);
    assert_int_equal(s.bn, 64);
    /* 0.5B q|k|v: 18 tiles x 7 chunks of 128 */
    s = pgemm(1152, 896, 0);
    expect_shape(s, 18, 7, 2);
    assert_int_equal(s.chunk, 128);
    /* one split needs no partials */
    s = pgemm(64, 256, 0);
    assert_int_equal(s.tiles, 1);
    assert_int_equal(s.partial_floats, s.splits > 1 ? (size_t)s.splits * 64 * 64 : 0);
}

/* A shape the kernel launches (ssfk_pgemm's checks) as one wave. */
static void expect_runnable(const ssf_pgemm_shape *s, int N, int K, int swiglu)
{
    assert_true(s->bn == SSF_PGEMM_BN || s->bn == SSF_PGEMM_BN_WIDE);
    assert_int_equal(s->tiles * s->bn, N);
    assert_int_equal(s->splits * s->chunk, K);
    assert_int_equal(s->chunk % SSF_PGEMM_KS, 0);
    assert_true(s->stages >= 1 && s->stages <= SSF_PGEMM_MAX_STAGES);
    assert_true(s->stages <= s->chunk / SSF_PGEMM_KS);
    assert_int_equal(s->smem, ssf_pgemm_smem(s->bn, s->stages));
    assert_int_equal(s->swiglu, swiglu);
    if (swiglu) assert_int_equal(s->splits, 1);
    int ctas = s->tiles * s->splits, per_sm = (ctas + H100_SMS - 1) / H100_SMS;
    assert_true(2 * ctas >= H100_SMS);
    assert_true(per_sm <= SSF_PGEMM_SM_CTAS(s->bn));
    assert_true(s->smem <= H100_CTA_SMEM && (size_t)per_sm * (s->smem + 1024) <= H100_SM_SMEM);
}

/* The shapes the GPU check times around the plan's pick: each runnable,
 * none twice, the pick among them, and rings of 2, 4 and the most. */
static void test_pgemm_shapes(void **state)
{
    (void)state;
    const int gemms[][3] = {{2048, 1536, 0}, {1536, 1536, 0}, {17920, 1536, 1}, {1536, 8960, 0},
                            {4608, 3584, 0}, {3584, 3584, 0}, {37888, 3584, 1}, {3584, 18944, 0},
                            {1152, 896, 0},  {9728, 896, 1}};
    ssf_pgemm_shape all[256];
    for (size_t g = 0; g < sizeof gemms / sizeof gemms[0]; g++) {
        int N = gemms[g][0], K = gemms[g][1], swiglu = gemms[g][2];
        int n = ssf_pgemm_shapes(N, K, swiglu, H100_SMS, H100_CTA_SMEM, H100_SM_SMEM, all, 256);
        assert_true(n > 1 && n <= 256);
        ssf_pgemm_shape pick = pgemm(N, K, swiglu);
        int found = 0;
        for (int i = 0; i < n; i++) {
            expect_runnable(&all[i], N, K, swiglu);
            for (int j = 0; j < i; j++)
                assert_false(all[j].bn == all[i].bn && all[j].splits == all[i].splits &&
                             all[j].stages == all[i].stages);
            found += all[i].bn == pick.bn && all[i].splits == pick.splits &&
                     all[i].stages == pick.stages;
        }
        assert_int_equal(found, 1);
        /* fewer slots than shapes: the first ones, and the same count */
        ssf_pgemm_shape few[2];
        assert_int_equal(
            ssf_pgemm_shapes(N, K, swiglu, H100_SMS, H100_CTA_SMEM, H100_SM_SMEM, few, 2), n);
        assert_int_equal(few[1].stages, all[1].stages);
    }
    /* 1.5B down, 64-column tiles in 5 chunks: rings of 2, 4 and 8 */
    int n = ssf_pgemm_shapes(1536, 8960, 0, H100_SMS, H100_CTA_SMEM, H100_SM_SMEM, all, 256);
    int rings = 0;
    for (int i = 0; i < n; i++)
        if (all[i].bn == 64 && all[i].splits == 5) rings = rings * 10 + all[i].stages;
    assert_int_equal(rings, 248);
    /* 1.5B o: 1,536 x 1,536 as one 64 x 64 slice a chunk (24 splits), and
     * past a wave (none) or under half the SMs (splits 1, 2: 24, 48 CTAs) */
    n = ssf_pgemm_shapes(1536, 1536, 0, H100_SMS, H100_CTA_SMEM, H100_SM_SMEM, all, 256);
    for (int i = 0; i < n; i++)
        assert_true(all[i].tiles * all[i].splits >= 66);
    assert_int_equal(
        ssf_pgemm_shapes(100, 1536, 0, H100_SMS, H100_CTA_SMEM, H100_SM_SMEM, all, 256), 0);
}

static uint16_t bf16_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); /* round to nearest even */
}

static float bf16_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The probe X: in [-1, 1], spread, the same for a seed, another for
 * another seed. */
static void test_pgemm_probe(void **state)
{
    (void)state;
    enum { N = 4096 };
    static uint16_t a[N], b[N], c[N];
    ssf_pgemm_probe(a, N, 7);
    ssf_pgemm_probe(b, N, 7);
    ssf_pgemm_probe(c, N, 8);
    assert_memory_equal(a, b, sizeof a);
    int same = 0, neg = 0, big = 0;
    double sum = 0;
    for (int i = 0; i < N; i++) {
        float v = bf16_float(a[i]);
        assert_true(v >= -1.0f && v <= 1.0f);
        same += a[i] == c[i];
        neg += v < 0;
        big += fabsf(v) > 0.5f;
        sum += v;
    }
    assert_true(same < N / 16);
    assert_in_range(neg, N / 2 - N / 16, N / 2 + N / 16);
    assert_in_range(big, N / 2 - N / 16, N / 2 + N / 16);
    assert_true(fabs(sum / N) < 0.05);
}

/* Y = X . W^T of M x K and N x K values, each product summed in fp32 from
 * k = 0 up (down: from K - 1), rounded to BF16. */
static void small_product(const float *X, const float *W, int M, int N, int K, int down,
                          uint16_t *Y)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc = 0;
            for (int i = 0; i < K; i++) {
                int k = down ? K - 1 - i : i;
                acc += X[m * K + k] * W[n * K + k];
            }
            Y[m * N + n] = bf16_bits(acc);
        }
}

/* Two summation orders agree; a row, a column, a split lost, a NaN or one
 * value 10% off do not. */
static void test_pgemm_agrees(void **state)
{
    (void)state;
    enum { M = 16, N = 64, K = 512 };
    static float X[M * K], W[N * K];
    static uint16_t xb[M * K], wb[N * K], ref[M * N], got[M * N], bad[M * N];
    ssf_pgemm_probe(xb, (size_t)M * K, 1);
    ssf_pgemm_probe(wb, (size_t)N * K, 2);
    for (int i = 0; i < M * K; i++)
        X[i] = bf16_float(xb[i]);
    for (int i = 0; i < N * K; i++)
        W[i] = bf16_float(wb[i]);
    small_product(X, W, M, N, K, 0, ref);
    small_product(X, W, M, N, K, 1, got);
    double worst = -1;
    assert_true(ssf_pgemm_agrees(ref, got, (size_t)M * N, &worst));
    assert_true(ssf_pgemm_agrees(ref, ref, (size_t)M * N, &worst));
    assert_true(worst == 0);
    /* rows 3 and 4 swapped */
    memcpy(bad, got, sizeof bad);
    memcpy(bad + (size_t)3 * N, got + (size_t)4 * N, (size_t)N * 2);
    memcpy(bad + (size_t)4 * N, got + (size_t)3 * N, (size_t)N * 2);
    assert_false(ssf_pgemm_agrees(ref, bad, (size_t)M * N, &worst));
    assert_true(worst > 1);
    /* columns 8 and 9 swapped in every row */
    memcpy(bad, got, sizeof bad);
    for (int m = 0; m < M; m++)
        bad[m * N + 8] = got[m * N + 9], bad[m * N + 9] = got[m * N + 8];
    assert_false(ssf_pgemm_agrees(ref, bad, (size_t)M * N, NULL));
    /* the last of 4 splits of K never added */
    static float Xh[M * K];
    memcpy(Xh, X, sizeof Xh);
    for (int m = 0; m < M; m++)
        for (int k = 3 * K / 4; k < K; k++)
            Xh[m * K + k] = 0;
    small_product(Xh, W, M, N, K, 0, bad);
    assert_false(ssf_pgemm_agrees(ref, bad, (size_t)M * N, NULL));
    /* one NaN, one value 10% off */
    memcpy(bad, got, sizeof bad);
    bad[77] = 0x7fc0;
    assert_false(ssf_pgemm_agrees(ref, bad, (size_t)M * N, &worst));
    assert_true(isinf(worst));
    memcpy(bad, got, sizeof bad);
    int i = 0;
    while (fabsf(bf16_float(ref[i])) < 8) /* a value past the rms (about 7.5) */
        i++;
    bad[i] = bf16_bits(bf16_float(ref[i]) * 1.1f);
    assert_false(ssf_pgemm_agrees(ref, bad, (size_t)M * N, NULL));
    /* a reference with an infinity vouches for nothing */
    memcpy(bad, ref, sizeof bad);
    bad[5] = 0x7f80;
    assert_false(ssf_pgemm_agrees(bad, got, (size_t)M * N, &worst));
    assert_true(isinf(worst));
}

/* SwiGLU's h = round(round(SiLU(gate)) . up) of gate and up rounded to
 * BF16, as cuBLAS's gate|up and the SiLU kernel and the own kernel's
 * epilogue both make it (silu_times), from sums in the two orders: the
 * tolerance's tightest case. */
static uint16_t swiglu_bits(float g, float u)
{
    float gr = bf16_float(bf16_bits(g)), ur = bf16_float(bf16_bits(u));
    float a = bf16_float(bf16_bits(gr / (1 + expf(-gr))));
    return bf16_bits(a * ur);
}

static void test_pgemm_agrees_swiglu(void **state)
{
    (void)state;
    enum { M = 64, I = 256, K = 1536 };
    static float X[M * K], Wg[I * K], Wu[I * K];
    static uint16_t xb[M * K], gb[I * K], ub[I * K], ref[M * I], got[M * I];
    ssf_pgemm_probe(xb, (size_t)M * K, 3);
    ssf_pgemm_probe(gb, (size_t)I * K, 4);
    ssf_pgemm_probe(ub, (size_t)I * K, 5);
    for (int i = 0; i < M * K; i++)
        X[i] = bf16_float(xb[i]);
    for (int i = 0; i < I * K; i++) /* weights of a trained layer's size */
        Wg[i] = bf16_float(bf16_bits(bf16_float(gb[i]) / 16)),
        Wu[i] = bf16_float(bf16_bits(bf16_float(ub[i]) / 16));
    for (int m = 0; m < M; m++)
        for (int n = 0; n < I; n++) {
            float g[2] = {0, 0}, u[2] = {0, 0};
            for (int k = 0; k < K; k++) {
                int down = K - 1 - k;
                g[0] += X[m * K + k] * Wg[n * K + k], u[0] += X[m * K + k] * Wu[n * K + k];
                g[1] += X[m * K + down] * Wg[n * K + down],
                    u[1] += X[m * K + down] * Wu[n * K + down];
            }
            ref[m * I + n] = swiglu_bits(g[0], u[0]);
            got[m * I + n] = swiglu_bits(g[1], u[1]);
        }
    double worst = -1;
    assert_true(ssf_pgemm_agrees(ref, got, (size_t)M * I, &worst));
    assert_true(worst > 0 && worst < 0.75);
    /* gate and up swapped in one block of 32 outputs: h = SiLU(up) . gate */
    for (int m = 0; m < M; m++)
        for (int n = 0; n < 32; n++) {
            float g = 0, u = 0;
            for (int k = 0; k < K; k++)
                g += X[m * K + k] * Wg[n * K + k], u += X[m * K + k] * Wu[n * K + k];
            got[m * I + n] = swiglu_bits(u, g);
        }
    assert_false(ssf_pgemm_agrees(ref, got, (size_t)M * I, NULL));
}

/* The verdicts' log line: the judged ones, by rows, their time ratio,
 * "own" where taken, a disagreement named; cut short safely. */
static ssf_pgemm_verdict judged(const char *gemm, int rows, int agrees, int own, double blas_ms,
                                double own_ms)
{
    return (ssf_pgemm_verdict){.gemm = gemm,
                               .rows = rows,
                               .tuned = 1,
                               .agrees = agrees,
                               .own = own,
                               .blas_ms = blas_ms,
                               .own_ms = own_ms};
}

static void test_pgemm_report(void **state)
{
    (void)state;
    static const char *const names[4] = {"qkv", "o", "gate_up", "down"};
    static const int rows[3] = {0, 8, 64}; /* graphs of 8 and 64 rows judged */
    ssf_pgemm_verdict v[3][4];
    for (int r = 0; r < 3; r++)
        for (int g = 0; g < 4; g++)
            v[r][g] = (ssf_pgemm_verdict){.gemm = names[g], .rows = rows[r]};
    v[1][0] = judged("qkv", 8, 1, 1, 0.0050, 0.0046);
    v[1][1] = judged("o", 8, 1, 0, 0.0050, 0.0055);
    v[2][0] = judged("qkv", 64, 1, 1, 0.0070, 0.0050);
    v[2][2] = judged("gate_up", 64, 1, 0, 0.0200, 0.0204);
    v[2][3] = judged("down", 64, 0, 0, 0.0150, 0.0100);
    char buf[256];
    size_t n = ssf_pgemm_report(buf, sizeof buf, &v[0][0], 3, 4);
    assert_string_equal(buf, "cuda: own GEMM where tuned, its time over cuBLAS's: 8 rows: qkv "
                             "0.92 own, o 1.10; 64 rows: qkv 0.71 own, gate_up 1.02, down "
                             "disagrees");
    assert_int_equal(n, strlen(buf));
    char small[12];
    assert_int_equal(ssf_pgemm_report(small, sizeof small, &v[0][0], 3, 4), n);
    assert_string_equal(small, "cuda: own G");
    assert_int_equal(ssf_pgemm_report(buf, sizeof buf, &v[0][0], 1, 4), 0);
    assert_string_equal(buf, "");
}

/* The split picks' line: only those that split, grouped by rows, cut
 * short as snprintf cuts. */
static void test_gemm_split_report(void **state)
{
    (void)state;
    const ssf_gemm_split_pick p[] = {{"qkv", 8, 1}, {"o", 8, 2},      {"down", 8, 1},
                                     {"o", 64, 4},  {"qkv", 64, 1},   {"down", 64, 6},
                                     {"o", 256, 1}, {"lm_head", 1, 0}};
    char buf[128];
    size_t n = ssf_gemm_split_report(buf, sizeof buf, p, 8);
    assert_string_equal(buf, "cuda: cuBLAS's choices split K: 8 rows: o 2; 64 rows: o 4, down 6");
    assert_int_equal(n, strlen(buf));
    char small[10];
    assert_int_equal(ssf_gemm_split_report(small, sizeof small, p, 8), n);
    assert_string_equal(small, "cuda: cuB");
    assert_int_equal(ssf_gemm_split_report(buf, sizeof buf, p + 6, 2), 0);
    assert_string_equal(buf, "");
    assert_int_equal(ssf_gemm_split_report(buf, sizeof buf, p, 0), 0);
}

/* The own kernel must beat cuBLAS's choice by the margin. */
static void test_pgemm_wins(void **state)
{
    (void)state;
    assert_true(ssf_pgemm_wins(0.010, 0.0110));
    assert_false(ssf_pgemm_wins(0.010, 0.0102)); /* 2% faster: within noise */
    assert_false(ssf_pgemm_wins(0.012, 0.010));
    assert_false(ssf_pgemm_wins(0, 0.010)); /* never timed */
}

/* The split search's counts at the models' K: 1.5B's q|k|v and o (1,536),
 * down (8,960), 7B's (3,584 and 18,944), and K too short for any. */
static void test_gemm_split_counts(void **state)
{
    (void)state;
    int c[SSF_GEMM_SPLIT_COUNTS];
    const int k1536[] = {2, 3, 4, 6}, k3584[] = {2, 3, 4, 6, 8, 12},
              all[] = {2, 3, 4, 6, 8, 12, 16};
    assert_int_equal(ssf_gemm_split_counts(1536, c), 4);
    assert_memory_equal(c, k1536, sizeof k1536);
    assert_int_equal(ssf_gemm_split_counts(3584, c), 6);
    assert_memory_equal(c, k3584, sizeof k3584);
    assert_int_equal(ssf_gemm_split_counts(8960, c), 7);
    assert_memory_equal(c, all, sizeof all);
    assert_int_equal(ssf_gemm_split_counts(18944, c), 7);
    assert_int_equal(ssf_gemm_split_counts(2 * SSF_GEMM_MIN_SPLIT_K, c), 1);
    assert_int_equal(c[0], 2);
    assert_int_equal(ssf_gemm_split_counts(2 * SSF_GEMM_MIN_SPLIT_K - 1, c), 0);
    assert_int_equal(ssf_gemm_split_counts(0, c), 0);
    /* every count leaves each split its floor of K, for every K */
    for (int K = 1; K <= 20000; K += 37) {
        int n = ssf_gemm_split_counts(K, c);
        for (int i = 0; i < n; i++) {
            assert_true(K / c[i] >= SSF_GEMM_MIN_SPLIT_K);
            assert_true(c[i] <= SSF_GEMM_SPLIT_MAX);
            if (i) assert_true(c[i] > c[i - 1]);
        }
    }
}

static void test_pgemm_refusals(void **state)
{
    (void)state;
    ssf_pgemm_shape s;
    assert_int_equal(ssf_pgemm_plan(100, 1536, 0, 132, H100_CTA_SMEM, H100_SM_SMEM, &s), -1);
    assert_int_equal(ssf_pgemm_plan(0, 1536, 0, 132, H100_CTA_SMEM, H100_SM_SMEM, &s), -1);
    assert_int_equal(ssf_pgemm_plan(2048, 1000, 0, 132, H100_CTA_SMEM, H100_SM_SMEM, &s), -1);
    assert_int_equal(ssf_pgemm_plan(2048, 32, 0, 132, H100_CTA_SMEM, H100_SM_SMEM, &s), -1);
    assert_int_equal(ssf_pgemm_plan(2048, 1536, 0, 0, H100_CTA_SMEM, H100_SM_SMEM, &s), -1);
    /* shared memory too small for one slot */
    assert_int_equal(ssf_pgemm_plan(2048, 1536, 0, 132, 1000, 1000, &s), -1);
    /* room for one slot and no more: two slices must be split, which
     * SwiGLU's epilogue cannot */
    size_t one = SSF_PGEMM_SLOT_BYTES(SSF_PGEMM_BN);
    assert_int_equal(ssf_pgemm_plan(64, 64, 0, 132, one, one + 1024, &s), 0);
    assert_int_equal(ssf_pgemm_plan(64, 128, 0, 132, one, one + 1024, &s), 0);
    assert_int_equal(s.splits, 2);
    assert_int_equal(ssf_pgemm_plan(64, 128, 1, 132, one, one + 1024, &s), -1);
    /* SwiGLU's epilogue takes no splits: 1.5B's q|k|v shape runs as 32
     * unsplit CTAs, where without it it takes 4 splits */
    assert_int_equal(ssf_pgemm_plan(2048, 1536, 1, 132, H100_CTA_SMEM, H100_SM_SMEM, &s), 0);
    assert_int_equal(s.splits, 1);
    assert_int_equal(s.partial_floats, 0);
    /* more tiles than SSF_PGEMM_SM_CTAS an SM can run at once */
    assert_int_equal(ssf_pgemm_plan(64 * 7, 64, 0, 1, H100_CTA_SMEM, H100_SM_SMEM, &s), -1);
}

/* Whether `ctas` CTAs of bn columns and `slices` slices each run in one
 * wave with a ring of two slots (one for a chunk of one slice). */
static int one_wave(long long ctas, int bn, int slices, int sms, size_t cta, size_t sm)
{
    long long per_sm = (ctas + sms - 1) / sms;
    if (per_sm > SSF_PGEMM_SM_CTAS(bn)) return 0;
    size_t room = sm / (size_t)per_sm - 1024,
           need = SSF_PGEMM_SLOT_BYTES(bn) * (slices < 2 ? 1 : 2);
    return need <= room && need <= cta;
}

/* The tile width rule: 128 columns exactly when those tiles, unsplit,
 * cover 9 in 10 SMs in one wave. */
static void check_width(const ssf_pgemm_shape *s, int N, int K, int sms, size_t cta, size_t sm)
{
    int wide = SSF_PGEMM_BN_WIDE,
        fits_wide = N % wide == 0 && 10LL * (N / wide) >= 9LL * sms &&
                    one_wave(N / wide, wide, K / SSF_PGEMM_KS, sms, cta, sm);
    assert_int_equal(s->bn, fits_wide ? wide : SSF_PGEMM_BN);
    if (s->bn == wide) assert_int_equal(s->splits, 1);
}

/* Every plan: chunks that tile K in whole slices, a ring of at least two
 * slots (or the one slice of its chunk) and at most the chunk's, shared
 * memory and CTAs within the device's, and the split rule: the fewest
 * splits whose one wave covers 9 in 10 SMs, else the most that fit. */
static void test_pgemm_sweep(void **state)
{
    (void)state;
    const int sms_of[] = {1, 108, 132};
    /* sm_86/89, sm_80 (A100: where 128-column CTAs two an SM leave room
     * for 3 slots only when the 1 KB each reserves is forgotten), sm_90;
     * then per-CTA limits below an SM's share, which no card has, so that
     * the clamps to cta_smem and to SSF_PGEMM_MAX_STAGES bind: 3 slots of
     * 64 columns less 100 bytes, 9 slots and 100 bytes */
    const size_t cta_of[] = {101376, 166912, H100_CTA_SMEM, 3 * SSF_PGEMM_SLOT_BYTES(64) - 100,
                             9 * SSF_PGEMM_SLOT_BYTES(64) + 100},
                 sm_of[] = {102400, 167936, H100_SM_SMEM, H100_SM_SMEM, H100_SM_SMEM};
    int planned = 0, wide = 0;
    for (int d = 0; d < 3; d++)
        for (int m = 0; m < 5; m++)
            for (int swiglu = 0; swiglu < 2; swiglu++)
                for (int N = 64; N <= 40000; N += 64 * 23)
                    for (int K = 64; K <= 20000; K += 64 * 13) {
                        ssf_pgemm_shape s;
                        int sms = sms_of[d];
                        if (ssf_pgemm_plan(N, K, swiglu, sms, cta_of[m], sm_of[m], &s)) continue;
                        planned++;
                        wide += s.bn == SSF_PGEMM_BN_WIDE;
                        int slices = s.chunk / SSF_PGEMM_KS;
                        check_width(&s, N, K, sms, cta_of[m], sm_of[m]);
                        assert_int_equal(s.tiles * s.bn, N);
                        assert_int_equal(s.splits * s.chunk, K);
                        assert_int_equal(s.chunk % SSF_PGEMM_KS, 0);
                        assert_true(s.stages >= (slices < 2 ? slices : 2));
                        assert_true(s.stages <= slices && s.stages <= SSF_PGEMM_MAX_STAGES);
                        assert_int_equal(s.swiglu, swiglu);
                        assert_int_equal(s.smem, ssf_pgemm_smem(s.bn, s.stages));
                        assert_true(s.smem <= cta_of[m]);
                        long long ctas = (long long)s.tiles * s.splits;
                        long long per_sm = (ctas + sms - 1) / sms;
                        assert_true(per_sm <= SSF_PGEMM_SM_CTAS(s.bn));
                        assert_true((size_t)per_sm * (s.smem + 1024) <= sm_of[m]);
                        if (swiglu) assert_int_equal(s.splits, 1); /* its epilogue's sums */
                        if (swiglu || s.bn != SSF_PGEMM_BN) continue;
                        /* fewer splits would not cover 9 in 10 SMs in one wave */
                        int all = K / SSF_PGEMM_KS, bn = SSF_PGEMM_BN;
                        for (int fewer = 1; fewer < s.splits; fewer++)
                            if (all % fewer == 0 && one_wave((long long)s.tiles * fewer, bn,
                                                             all / fewer, sms, cta_of[m], sm_of[m]))
                                assert_true(10LL * s.tiles * fewer < 9LL * sms);
                        /* short of that, no more splits would run in one wave */
                        for (int more = s.splits + 1; 10 * ctas < 9LL * sms && more <= all; more++)
                            if (all % more == 0)
                                assert_false(one_wave((long long)s.tiles * more, bn, all / more,
                                                      sms, cta_of[m], sm_of[m]));
                    }
    assert_true(planned > 100);
    assert_true(wide > 20 && wide < planned / 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_padding),     cmocka_unit_test(test_split_rule),
        cmocka_unit_test(test_invariants_sweep),  cmocka_unit_test(test_coverage_with_splits),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_shared_memory),
        cmocka_unit_test(test_prefill_split),     cmocka_unit_test(test_prefill_smem),
        cmocka_unit_test(test_pgemm_models),      cmocka_unit_test(test_pgemm_shapes),
        cmocka_unit_test(test_pgemm_refusals),    cmocka_unit_test(test_pgemm_sweep),
        cmocka_unit_test(test_pgemm_probe),       cmocka_unit_test(test_pgemm_agrees),
        cmocka_unit_test(test_pgemm_wins),        cmocka_unit_test(test_pgemm_agrees_swiglu),
        cmocka_unit_test(test_gemm_split_counts), cmocka_unit_test(test_gemm_split_report),
        cmocka_unit_test(test_pgemm_report),      cmocka_unit_test(test_partials_bound_covers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
