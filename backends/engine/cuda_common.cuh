/*
 * cuda_common.cuh - what the CUDA device's kernel files share: the warp
 * width, the walk from a row's position to its K and V rows in the paged
 * pool, and the programmatic dependent launch.  Offsets into the pool are
 * size_t: the pool of a 32B model on an H200 holds about 2^35 values.
 */
#ifndef SSFTEVAL_CUDA_COMMON_CUH
#define SSFTEVAL_CUDA_COMMON_CUH

#include <math.h>

#include <cuda_fp8.h>

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

/* ---- bias, RoPE and the fp8 store ----------------------------------------------
 * qkv_rope_store (cuda_kernels.cu) and the decode attention's q load with
 * RoPE (cuda_attention.cu) both rotate and store through these, so the two
 * paths give the same bits. */

/* Rounds to BF16 and back, where Hugging Face's bf16 model stores a tensor. */
__device__ static inline float round_bf16(float v)
{
    return __bfloat162float(__float2bfloat16(v));
}

/* The RMSNorm in transformers' rounding order, the residual stream BF16:
 * the residual add, a row's 1 / rms from its sum of squares over n
 * elements, and an element normalised and scaled by its gain (fp32; the
 * caller rounds it to BF16).  ssfk_rmsnorm and the own GEMM's fused norm
 * (cuda_pgemm.cu) both go through these, so the two paths give the same
 * bits but for the sum of squares' order. */
__device__ static inline float residual_add(float x, float add)
{
    return round_bf16(x + add);
}
__device__ static inline float rms_rstd(float sum_sq, int n, float eps)
{
    return rsqrtf(sum_sq / (float)n + eps);
}
__device__ static inline float rms_scaled(float x, float rstd, float gain)
{
    return round_bf16(x * rstd) * gain;
}

/* Column j of a q|k|v row with its bias, the row first scaled by rstd (a
 * folded norm's 1 / rms; 1 otherwise, which leaves the BF16 value as it
 * is): HF's linear rounds x W^T + b to BF16 before RoPE. */
__device__ static inline float normed_biased(const bf16 *row, const float *bias, int j, float rstd)
{
    float x = __bfloat162float(row[j]) * rstd;
    return round_bf16(bias ? x + bias[j] : x);
}

/* Column j of a q|k|v row with its bias, no norm folded in. */
__device__ static inline float biased(const bf16 *row, const float *bias, int j)
{
    return normed_biased(row, bias, j, 1.0f);
}

/* Rotate-half RoPE of the pair (x1 at d, x2 at d + head_dim / 2) by the
 * angle whose (cos, sin) is cs, each result rounded to BF16.  The products
 * are pinned (__fmul_rn, __fmaf_rn: no contraction left to the compiler),
 * so every kernel that rotates gives the same bits. */
__device__ static inline float2 rope_pair(float x1, float x2, float2 cs)
{
    return make_float2(round_bf16(__fmaf_rn(x1, cs.x, -__fmul_rn(x2, cs.y))),
                       round_bf16(__fmaf_rn(x2, cs.x, __fmul_rn(x1, cs.y))));
}

#define FP8_MAX 448.0f /* e4m3's largest finite value */
#define FP8_PER_LANE 4 /* a row of head_dim 128 over a warp */

/* One K or V row that a warp holds, n <= FP8_PER_LANE values a lane (v[i],
 * already BF16-rounded, is column col[i]), stored as e4m3 at dst, scaled by
 * the row's largest magnitude / FP8_MAX (1 for a row of zeros), the scale
 * at *scale. */
__device__ static inline void store_fp8_row(const float (&v)[FP8_PER_LANE],
                                            const int (&col)[FP8_PER_LANE], int n, uint8_t *dst,
                                            float *scale)
{
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < FP8_PER_LANE; i++)
        if (i < n) amax = fmaxf(amax, fabsf(v[i]));
    for (int o = WARP / 2; o > 0; o >>= 1)
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    float s = amax > 0.0f ? amax / FP8_MAX : 1.0f;
#pragma unroll
    for (int i = 0; i < FP8_PER_LANE; i++)
        if (i < n) dst[col[i]] = __nv_cvt_float_to_fp8(v[i] / s, __NV_SATFINITE, __NV_E4M3);
    if (threadIdx.x % WARP == 0) *scale = s;
}

/* ---- SwiGLU ------------------------------------------------------------------ */

/* One element of SwiGLU's product, as Hugging Face's bf16 MLP makes it:
 * act_fn(gate) is a bf16 tensor before the product with up.  The SiLU
 * kernel and the own GEMM's SwiGLU epilogue (cuda_pgemm.cu) both go
 * through it, so the two paths give the same bits. */
__device__ static inline bf16 silu_times(float g, float u)
{
    float a = round_bf16(g / (1.0f + expf(-g)));
    return __float2bfloat16(a * u);
}

/* The device's nanosecond clock. */
__device__ static inline unsigned long long global_ns(void)
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
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
