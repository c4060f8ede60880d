/*
 * cuda_common.cuh - what the CUDA device's kernel files share: the warp
 * width and the walk from a row's position to its K and V rows in the
 * paged pool.  Offsets into the pool are size_t: the pool of a 32B model on
 * an H200 holds about 2^35 values.
 */
#ifndef SSFTEVAL_CUDA_COMMON_CUH
#define SSFTEVAL_CUDA_COMMON_CUH

#include "cuda_kernels.cuh"

#define WARP 32

/* Offset of position p's K row (head 0) of `layer` in row r's table; the V
 * row is v_offset further, head h head_stride * h further. */
__device__ static inline size_t kv_pos(ssfk_kv_layout kv, const int32_t *table, int layer, int p)
{
    size_t blk = (size_t)table[p / kv.block_size];
    return blk * kv.block_stride + (size_t)layer * kv.layer_stride +
           (size_t)(p % kv.block_size) * kv.head_dim;
}

__device__ static inline const int32_t *row_table(ssfk_tables tb, int r)
{
    return tb.tab + tb.tab_off[tb.seq[r]];
}

#endif
