/*
 * kvblocks.h - the paged KV cache's bookkeeping: a pool of fixed-size blocks,
 * a block table per sequence, reference counts so that the samples of one
 * prompt share the prompt's blocks after a single prefill.
 *
 * Only indices live here; the device owns the memory the blocks stand for.
 * When a sequence must write into a block it shares (the last, partial
 * block of a forked prompt), the block is copied first: the call returns
 * the (source, destination) pairs the device has to copy before the step.
 */
#ifndef SSFTEVAL_ENGINE_KVBLOCKS_H
#define SSFTEVAL_ENGINE_KVBLOCKS_H

#include <stdint.h>

#include "device.h"

typedef struct ssf_kv_pool {
    int n_blocks;
    int block_size; /* tokens a block holds */
    int32_t *refs;  /* [n_blocks] sequences using each block */
    int32_t *free_list;
    int n_free;
} ssf_kv_pool;

typedef struct ssf_kv_table {
    int32_t *blocks; /* block ids, in position order */
    int n_blocks, cap;
    int n_tokens; /* positions written */
} ssf_kv_table;

/* The (source, destination) pair a device copies (device.h). */
typedef ssf_block_copy ssf_kv_copy;

void ssf_kv_pool_init(ssf_kv_pool *p, int n_blocks, int block_size);
void ssf_kv_pool_free(ssf_kv_pool *p);

/* Blocks needed to grow a table by n tokens, counting the copy of a shared
 * last block. */
int ssf_kv_blocks_needed(const ssf_kv_pool *p, const ssf_kv_table *t, int n);

/* Makes room for n more tokens: new blocks as needed and, when the last
 * block is shared and not full, a private copy of it (*copy set, return 1).
 * Returns 0 without a copy, -1 (changing nothing) when the pool is short. */
int ssf_kv_grow(ssf_kv_pool *p, ssf_kv_table *t, int n, ssf_kv_copy *copy);

/* child := parent, sharing every block. */
void ssf_kv_fork(ssf_kv_pool *p, const ssf_kv_table *parent, ssf_kv_table *child);

/* Drops a table's references; blocks nobody uses go back to the pool. */
void ssf_kv_release(ssf_kv_pool *p, ssf_kv_table *t);

#endif
