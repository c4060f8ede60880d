/*
 * cuda_common.cuh - what the CUDA device's kernel files share: the warp
 * width, the walk from a row's position to its K and V rows in the paged
 * pool, and the programmatic dependent launch.  Offsets into the pool are
 * size_t: the pool of a 32B model on an H200 holds about 2^35 values.
 */
#ifndef SSFTEVAL_CUDA_COMMON_CUH
#define SSFTEVAL_CUDA_COMMON_CUH

#include <math.h>

#include "cuda_kernels.cuh"

#define WARP 32

/* The attention's score scale, 1/sqrt(hd), times log2(e): its softmax runs
 * on exp2. */
static inline float scale_log2_of(int head_dim)
{
    return 1.4426950408889634f / sqrtf((float)head_dim);
}

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

/* ---- programmatic dependent launch ------------------------------------------ */

/*
 * Programmatic dependent launch (sm_90 on; no effect before).  A kernel
 * launched with launch_pdl may be dispatched while the stream's previous
 * kernel drains, rather than once it has completed and flushed: an H100
 * decode step of ~280 launches was 3% faster at 1.5B (bench/README-gpu.md,
 * run L).  Its first act must be grid_dep_wait, which holds it until that
 * kernel has completed and its writes are visible, so that it reads and
 * writes nothing early.  grid_dep_launch then lets the next kernel be
 * dispatched; that is safe wherever it comes, since the next one waits too
 * and a kernel completes only after its own wait returned, so the waits
 * chain back through the stream.
 */
__device__ static inline void grid_dep_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ static inline void grid_dep_launch(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* What an engine kernel does first: the decode attention alone waits
 * with its trigger until its tiles are read (see there). */
__device__ static inline void grid_dep_enter(void)
{
    grid_dep_wait();
    grid_dep_launch();
}

/* Lets `kernel` take `bytes` of dynamic shared memory: past the default
 * 48 KB a kernel must opt in, once per device. */
template <typename... Params> static cudaError_t allow_smem(void (*kernel)(Params...), size_t bytes)
{
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

/* kernel<<<grid, block, smem, st>>>(args...), as a programmatic dependent
 * of the stream's previous kernel unless ssfk_set_pdl turned that off. */
template <typename... Params, typename... Args>
static cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                              cudaStream_t st, Args... args)
{
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cfg.attrs = attr;
    cfg.numAttrs = ssfk_pdl() ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

#endif
