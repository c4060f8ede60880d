/*
 * cuda_mma.cuh - the tensor-core and asynchronous-copy primitives (sm_80+)
 * of the CUDA device's attention kernels: cp.async into shared memory,
 * mma.m16n8k16 on BF16, ldmatrix.
 */
#ifndef SSFTEVAL_CUDA_MMA_CUH
#define SSFTEVAL_CUDA_MMA_CUH

#include <stdint.h>

#include "cuda_kernels.cuh" /* bf16 */

/* cp.async (sm_80+): 16 bytes global -> shared without passing through
 * registers, so a warp keeps its next tile of K and V in flight while it
 * computes on this one.  `bytes` 0 writes zeros and reads nothing: rows
 * past the end of a chunk must be finite, since a zero weight times a NaN
 * left in shared memory would still be NaN inside the MMA. */
__device__ static inline void cp_async16(void *dst, const void *src, int bytes)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(bytes)
                 : "memory");
}

/* cp_async16 for 4 bytes (an fp8 row's scale), through L1. */
__device__ static inline void cp_async4(void *dst, const void *src, int bytes)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src), "r"(bytes)
                 : "memory");
}

__device__ static inline void cp_async_commit(void)
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Waits until at most N committed groups are still in flight. */
template <int N> __device__ static inline void cp_async_wait(void)
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* c += a . b on the tensor cores: a 16 x 16 BF16 (row-major fragment), b
 * 16 x 8 BF16 (column-major fragment), c 16 x 8 fp32.  Fragment layouts are
 * PTX's for mma.m16n8k16: lane = 4 g + t holds a's rows g and g + 8 at
 * columns 2t, 2t + 1 (a0 and a1) and 2t + 8, 2t + 9 (a2 and a3; a1 and a3
 * are row g + 8), b's column g at rows 2t, 2t + 1 (b0) and + 8 (b1), and
 * c's rows g (c[0], c[1]) and g + 8 (c[2], c[3]) at columns 2t, 2t + 1. */
__device__ static inline void mma_16816_full(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                             uint32_t a3, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Four 8 x 8 BF16 matrices from shared memory, transposed: lanes 8i .. 8i
 * + 7 give the row addresses of matrix i, and r[i] receives its elements
 * (2t, g) and (2t + 1, g): with positions as rows, that is the b fragment
 * of V. */
__device__ static inline void ldmatrix_x4_trans(uint32_t r[4], const bf16 *row)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s)
                 : "memory");
}

__device__ static inline uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

#endif
