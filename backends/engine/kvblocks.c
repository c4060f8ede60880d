/*
 * kvblocks.c - block pool, block tables and copy-on-write forks for the
 * paged KV cache.
 */
#include "kvblocks.h"

#include <stdlib.h>
#include <string.h>

#include "ssfteval/util.h"

void ssf_kv_pool_init(ssf_kv_pool *p, int n_blocks, int block_size)
{
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->refs = ssf_xcalloc((size_t)n_blocks, sizeof *p->refs);
    p->free_list = ssf_xmalloc((size_t)n_blocks * sizeof *p->free_list);
    /* handed out lowest id first, which keeps tests readable */
    for (int i = 0; i < n_blocks; i++)
        p->free_list[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
}

void ssf_kv_pool_free(ssf_kv_pool *p)
{
    free(p->refs);
    free(p->free_list);
    memset(p, 0, sizeof *p);
}

static int32_t take_block(ssf_kv_pool *p)
{
    int32_t b = p->free_list[--p->n_free];
    p->refs[b] = 1;
    return b;
}

static void drop_block(ssf_kv_pool *p, int32_t b)
{
    if (--p->refs[b] == 0) p->free_list[p->n_free++] = b;
}

static int last_block_shared_partial(const ssf_kv_pool *p, const ssf_kv_table *t)
{
    return t->n_blocks > 0 && t->n_tokens % p->block_size != 0 &&
           p->refs[t->blocks[t->n_blocks - 1]] > 1;
}

int ssf_kv_blocks_needed(const ssf_kv_pool *p, const ssf_kv_table *t, int n)
{
    int have = t->n_blocks * p->block_size;
    int want = t->n_tokens + n;
    int fresh = want > have ? (want - have + p->block_size - 1) / p->block_size : 0;
    return fresh + (n > 0 && last_block_shared_partial(p, t));
}

static void push_block(ssf_kv_table *t, int32_t b)
{
    if (t->n_blocks == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 8;
        t->blocks = ssf_xrealloc(t->blocks, (size_t)t->cap * sizeof *t->blocks);
    }
    t->blocks[t->n_blocks++] = b;
}

int ssf_kv_grow(ssf_kv_pool *p, ssf_kv_table *t, int n, ssf_kv_copy *copy)
{
    if (ssf_kv_blocks_needed(p, t, n) > p->n_free) return -1;
    int copied = 0;
    if (n > 0 && last_block_shared_partial(p, t)) {
        int32_t shared = t->blocks[t->n_blocks - 1];
        int32_t own = take_block(p);
        drop_block(p, shared);
        t->blocks[t->n_blocks - 1] = own;
        *copy = (ssf_kv_copy){shared, own};
        copied = 1;
    }
    while (t->n_blocks * p->block_size < t->n_tokens + n)
        push_block(t, take_block(p));
    t->n_tokens += n;
    return copied;
}

void ssf_kv_fork(ssf_kv_pool *p, const ssf_kv_table *parent, ssf_kv_table *child)
{
    child->n_blocks = 0;
    child->n_tokens = parent->n_tokens;
    for (int i = 0; i < parent->n_blocks; i++) {
        p->refs[parent->blocks[i]]++;
        push_block(child, parent->blocks[i]);
    }
}

void ssf_kv_release(ssf_kv_pool *p, ssf_kv_table *t)
{
    for (int i = 0; i < t->n_blocks; i++)
        drop_block(p, t->blocks[i]);
    free(t->blocks);
    memset(t, 0, sizeof *t);
}
