/*
 * test_kvblocks.c - the paged KV bookkeeping, checked against a simulated
 * device memory: every sequence writes its own values through its block
 * table (copying a shared block first when told to) and must always read
 * back exactly its own history, while forks share and free blocks
 * correctly and the pool never leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvblocks.h"

static void test_grow_and_release(void **state)
{
    (void)state;
    ssf_kv_pool p;
    ssf_kv_pool_init(&p, 4, 16);
    ssf_kv_table t = {0};
    ssf_kv_copy c;
    assert_int_equal(ssf_kv_blocks_needed(&p, &t, 17), 2);
    assert_int_equal(ssf_kv_grow(&p, &t, 17, &c), 0);
    assert_int_equal(t.n_blocks, 2);
    assert_int_equal(p.n_free, 2);
    assert_int_equal(ssf_kv_grow(&p, &t, 15, &c), 0); /* fills block 2 exactly */
    assert_int_equal(t.n_blocks, 2);
    assert_int_equal(ssf_kv_grow(&p, &t, 40, &c), -1); /* needs 3, has 2: nothing changes */
    assert_int_equal(t.n_tokens, 32);
    assert_int_equal(p.n_free, 2);
    ssf_kv_release(&p, &t);
    assert_int_equal(p.n_free, 4);
    ssf_kv_pool_free(&p);
}

/* A fork shares everything; the first write into the shared partial block
 * copies it, a full shared block is never copied. */
static void test_fork_copy_on_write(void **state)
{
    (void)state;
    ssf_kv_pool p;
    ssf_kv_pool_init(&p, 8, 4);
    ssf_kv_table prompt = {0}, a = {0}, b = {0};
    ssf_kv_copy c;
    assert_int_equal(ssf_kv_grow(&p, &prompt, 6, &c), 0); /* blocks 0 (full), 1 (2 of 4) */
    ssf_kv_fork(&p, &prompt, &a);
    ssf_kv_fork(&p, &prompt, &b);
    assert_int_equal(p.refs[prompt.blocks[0]], 3);
    assert_int_equal(p.n_free, 6);
    assert_int_equal(ssf_kv_blocks_needed(&p, &a, 1), 1);
    assert_int_equal(ssf_kv_grow(&p, &a, 1, &c), 1);
    assert_int_equal(c.src, prompt.blocks[1]);
    assert_int_equal(c.dst, a.blocks[1]);
    assert_int_not_equal(a.blocks[1], prompt.blocks[1]);
    assert_int_equal(a.blocks[0], prompt.blocks[0]); /* the full block stays shared */
    assert_int_equal(p.refs[prompt.blocks[1]], 2);
    ssf_kv_release(&p, &prompt); /* the prompt's holder lets go: b still shares */
    assert_int_equal(ssf_kv_grow(&p, &b, 1, &c), 0); /* b is the last user: no copy */
    ssf_kv_release(&p, &a);
    ssf_kv_release(&p, &b);
    assert_int_equal(p.n_free, 8);
    ssf_kv_pool_free(&p);
}

/* A prompt that fills its last block exactly: a fork shares it and writes
 * into a new block of its own, copying nothing, and needs only that one. */
static void test_fork_block_aligned(void **state)
{
    (void)state;
    ssf_kv_pool p;
    ssf_kv_pool_init(&p, 8, 4);
    ssf_kv_table prompt = {0}, a = {0};
    ssf_kv_copy c;
    assert_int_equal(ssf_kv_grow(&p, &prompt, 8, &c), 0);
    ssf_kv_fork(&p, &prompt, &a);
    assert_int_equal(ssf_kv_blocks_needed(&p, &a, 1), 1);
    assert_int_equal(ssf_kv_grow(&p, &a, 1, &c), 0);
    assert_int_equal(a.n_blocks, 3);
    assert_int_equal(a.blocks[1], prompt.blocks[1]);
    assert_int_equal(p.refs[prompt.blocks[1]], 2);
    assert_int_equal(p.n_free, 5);
    ssf_kv_release(&p, &a);
    ssf_kv_release(&p, &prompt);
    assert_int_equal(p.n_free, 8);
    ssf_kv_pool_free(&p);
}

/* Growing by nothing is no write: a fork's shared partial block stays
 * shared, nothing is taken and nothing needs copying. */
static void test_grow_by_zero(void **state)
{
    (void)state;
    ssf_kv_pool p;
    ssf_kv_pool_init(&p, 8, 4);
    ssf_kv_table prompt = {0}, a = {0};
    ssf_kv_copy c = {-1, -1};
    assert_int_equal(ssf_kv_grow(&p, &prompt, 6, &c), 0);
    ssf_kv_fork(&p, &prompt, &a);
    assert_int_equal(ssf_kv_blocks_needed(&p, &a, 0), 0);
    assert_int_equal(ssf_kv_grow(&p, &a, 0, &c), 0);
    assert_int_equal(c.src, -1); /* no copy asked of the device */
    assert_int_equal(a.n_blocks, 2);
    assert_int_equal(a.blocks[1], prompt.blocks[1]);
    assert_int_equal(p.refs[prompt.blocks[1]], 2);
    assert_int_equal(p.n_free, 6);
    ssf_kv_release(&p, &a);
    ssf_kv_release(&p, &prompt);
    assert_int_equal(p.n_free, 8);
    ssf_kv_pool_free(&p);
}

/* The pool's last blocks can be used, for new positions and for the copy
 * of a shared partial block, and nothing more: a grow one block short is
 * refused and changes nothing. */
static void test_pool_exhausted_exactly(void **state)
{
    (void)state;
    ssf_kv_pool p;
    ssf_kv_pool_init(&p, 3, 4);
    ssf_kv_table t = {0};
    ssf_kv_copy c;
    assert_int_equal(ssf_kv_blocks_needed(&p, &t, 12), 3);
    assert_int_equal(ssf_kv_grow(&p, &t, 12, &c), 0); /* every block, each full */
    assert_int_equal(p.n_free, 0);
    assert_int_equal(ssf_kv_grow(&p, &t, 1, &c), -1);
    assert_int_equal(t.n_tokens, 12);
    ssf_kv_release(&p, &t);

    ssf_kv_table prompt = {0}, a = {0}, b = {0};
    assert_int_equal(ssf_kv_grow(&p, &prompt, 6, &c), 0); /* 1 full, 1 with 2 of 4 */
    ssf_kv_fork(&p, &prompt, &a);
    ssf_kv_fork(&p, &prompt, &b);
    assert_int_equal(p.n_free, 1);
    assert_int_equal(ssf_kv_blocks_needed(&p, &a, 2), 1);
    assert_int_equal(ssf_kv_grow(&p, &a, 2, &c), 1); /* the copy takes the last block */
    assert_int_equal(p.n_free, 0);
    assert_int_equal(ssf_kv_blocks_needed(&p, &b, 1), 1);
    assert_int_equal(ssf_kv_grow(&p, &b, 1, &c), -1); /* b's copy has no block left */
    assert_int_equal(b.n_tokens, 6);
    assert_int_equal(b.blocks[1], prompt.blocks[1]);
    assert_int_equal(p.refs[prompt.blocks[1]], 2);
    ssf_kv_release(&p, &a);
    ssf_kv_release(&p, &b);
    ssf_kv_release(&p, &prompt);
    assert_int_equal(p.n_free, 3);
    ssf_kv_pool_free(&p);
}

/* ---- random operations against a simulated memory ------------------------- */

#define BLOCKS 64
#define BS 4
#define SEQS 12
#define MAXLEN 200

typedef struct sim {
    ssf_kv_pool pool;
    int memory[BLOCKS][BS];
    ssf_kv_table t[SEQS];
    int live[SEQS];
    int hist[SEQS][MAXLEN]; /* what each sequence wrote, position by position */
} sim;

static uint64_t rng = 88172645463325252ULL;
static unsigned next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)rng;
}

static void write_tokens(sim *s, int i, int n)
{
    ssf_kv_copy c;
    int rc = ssf_kv_grow(&s->pool, &s->t[i], n, &c);
    if (rc < 0) return;
    if (rc == 1) memcpy(s->memory[c.dst], s->memory[c.src], sizeof s->memory[0]);
    for (int pos = s->t[i].n_tokens - n; pos < s->t[i].n_tokens; pos++) {
        int v = (int)(next_rand() & 0xffff);
        s->hist[i][pos] = v;
        s->memory[s->t[i].blocks[pos / BS]][pos % BS] = v;
    }
}

static void check_all(const sim *s)
{
    int refs[BLOCKS] = {0};
    for (int i = 0; i < SEQS; i++) {
        if (!s->live[i]) continue;
        for (int pos = 0; pos < s->t[i].n_tokens; pos++)
            assert_int_equal(s->memory[s->t[i].blocks[pos / BS]][pos % BS], s->hist[i][pos]);
        for (int b = 0; b < s->t[i].n_blocks; b++)
            refs[s->t[i].blocks[b]]++;
    }
    int unused = 0;
    for (int b = 0; b < BLOCKS; b++) {
        assert_int_equal(refs[b], s->pool.refs[b]);
        unused += refs[b] == 0;
    }
    assert_int_equal(unused, s->pool.n_free);
}

static void random_step(sim *s)
{
    int i = (int)(next_rand() % SEQS), j = (int)(next_rand() % SEQS);
    unsigned op = next_rand() % 10;
    if (!s->live[i]) {
        s->live[i] = 1;
        write_tokens(s, i, 1 + (int)(next_rand() % 9));
    } else if (op < 6 && s->t[i].n_tokens < MAXLEN - 10) {
        write_tokens(s, i, 1 + (int)(next_rand() % 3));
    } else if (op < 8 && i != j && !s->live[j]) {
        ssf_kv_fork(&s->pool, &s->t[i], &s->t[j]);
        memcpy(s->hist[j], s->hist[i], sizeof s->hist[i]);
        s->live[j] = 1;
    } else {
        ssf_kv_release(&s->pool, &s->t[i]);
        s->live[i] = 0;
    }
}

static void test_random_operations(void **state)
{
    (void)state;
    sim *s = calloc(1, sizeof *s);
    ssf_kv_pool_init(&s->pool, BLOCKS, BS);
    for (int step = 0; step < 20000; step++) {
        random_step(s);
        check_all(s);
    }
    for (int i = 0; i < SEQS; i++)
        if (s->live[i]) ssf_kv_release(&s->pool, &s->t[i]);
    assert_int_equal(s->pool.n_free, BLOCKS);
    ssf_kv_pool_free(&s->pool);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_and_release),       cmocka_unit_test(test_fork_copy_on_write),
        cmocka_unit_test(test_fork_block_aligned),     cmocka_unit_test(test_grow_by_zero),
        cmocka_unit_test(test_pool_exhausted_exactly), cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
