/*
 * cuda_common.cuh - what the CUDA device's kernel files share: the warp
 * width and the walk from a row's position to its K and V rows in the
 * paged pool.  Offsets into the pool are size_t: the pool of a 32B model on
 * an H200 holds about 2^35 values.
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

/* Whether the bulk L2 prefetch is there: sm_90 and CUDA 12's PTX. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && __CUDACC_VER_MAJOR__ >= 12
#define SSFK_BULK_PREFETCH 1
#else
#define SSFK_BULK_PREFETCH 0
#endif

/* This thread's share of pf, spread over the whole grid of 1-D blocks.
 * Nothing waits for a prefetch, so the kernel pays an instruction a piece.
 * sm_90 has a bulk prefetch of any 16-byte multiple; before it, one 32-byte
 * sector a prefetch (the L2 fills lines a sector at a time). */
__device__ static inline void prefetch_share(ssfk_prefetch pf)
{
#if SSFK_BULK_PREFETCH
    const size_t piece = 4096;
#else
    const size_t piece = 32;
#endif
    size_t block = blockIdx.x + (size_t)gridDim.x * (blockIdx.y + (size_t)gridDim.y * blockIdx.z);
    size_t threads = (size_t)gridDim.x * gridDim.y * gridDim.z * blockDim.x;
    const char *p = (const char *)pf.p;
    for (size_t at = (block * blockDim.x + threadIdx.x) * piece; at < pf.bytes;
         at += threads * piece) {
#if SSFK_BULK_PREFETCH
        size_t n = pf.bytes - at < piece ? (pf.bytes - at) / 16 * 16 : piece;
        if (n > 0)
            asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p + at),
                         "r"((unsigned)n)
                         : "memory");
#else
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + at));
#endif
    }
}

#endif
