/*
 * cuda_kernels.cuh - the CUDA device's own kernels and its cuBLAS GEMM, one
 * launcher per operation.  Activations are BF16 [rows][width] row-major; all
 * arithmetic inside a kernel is fp32, rounded to BF16 where Hugging Face's
 * bf16 model rounds (see the reference's section 1.2).
 *
 * Every launcher enqueues on `st` and returns the launch's error; faults
 * inside a kernel surface at the caller's next synchronisation.
 */
#ifndef SSFTEVAL_CUDA_KERNELS_CUH
#define SSFTEVAL_CUDA_KERNELS_CUH

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_plan.h"
#include "device.h"

typedef __nv_bfloat16 bf16;

/*
 * The paged KV pool: [block][layer][K|V][kv_head][block_size][head_dim].
 * One block holds every layer's K and V of its block_size positions, so a
 * fork's copy is one contiguous memcpy, and the block_size x head_dim rows
 * of one (layer, K or V, KV head) are contiguous, so the attention CTA of a
 * KV head streams whole rows per position.  Elements are BF16 (the
 * reference mode) or, with fp8, e4m3 bytes: then `scales` holds one fp32
 * scale per row, the row at element offset e having scales[e / head_dim],
 * which lays the scales out as the rows are, head_dim times smaller.
 */
typedef struct ssfk_kv_layout {
    size_t block_stride; /* n_layers * layer_stride, in elements */
    size_t layer_stride; /* 2 * v_offset */
    size_t v_offset;     /* n_kv_heads * head_stride: K to V */
    size_t head_stride;  /* block_size * head_dim */
    int block_size, head_dim;
    int fp8;       /* elements are e4m3 scaled by `scales` */
    float *scales; /* fp8 only: [block_stride / head_dim] per block */
} ssfk_kv_layout;

/* A BF16 layout; fp8 and scales are the caller's to set. */
ssfk_kv_layout ssfk_kv_layout_make(int n_layers, int n_kv_heads, int block_size, int head_dim);

/* Bytes of one block's elements, and of its scales (0 for BF16). */
size_t ssfk_kv_block_bytes(ssfk_kv_layout kv);
size_t ssfk_kv_scale_bytes(ssfk_kv_layout kv);

/* A step's block tables on the device: row r's table starts at
 * tab + tab_off[seq[r]]. */
typedef struct ssfk_tables {
    const int32_t *seq;     /* [rows] */
    const int32_t *tab_off; /* [n_seqs] */
    const int32_t *tab;     /* flattened block ids */
} ssfk_tables;

/* inv_freq[i] = 1 / theta^(2i/d), i < d/2, in fp32 as transformers computes
 * it (arange(0, d, 2).float() / d, then base ** that).  Host code. */
void ssfk_inv_freq(float *inv_freq, int head_dim, double theta);

/* Whether the kernels are launched as programmatic dependents of the
 * stream's previous kernel (cuda_common.cuh's launch_pdl): on unless turned
 * off.  Process-wide, as it changes when a kernel may start, never a value. */
void ssfk_set_pdl(int on);
int ssfk_pdl(void);

/* out[r] = embed[t]: t = token[r] where feed[r] < 0, else drawn[feed[r]], an id the step
 * before drew on the device (row 0 where that is -1, no finite logit: the engine fails such a
 * sample and throws its row away). */
cudaError_t ssfk_embed(bf16 *out, const bf16 *embed, const int32_t *token, const int32_t *feed,
                       const int32_t *drawn, int rows, int C, cudaStream_t st);

/* Per row: if `add`, x = bf16(x + add) in place (the residual add); then
 * out = bf16(w * bf16(x * rsqrt(mean(x^2) + eps))). */
cudaError_t ssfk_rmsnorm(bf16 *x, const bf16 *add, const bf16 *w, bf16 *out, int rows, int C,
                         float eps, cudaStream_t st);

/* out[i] = in[rows[i]], i < n. */
cudaError_t ssfk_gather_rows(bf16 *out, const bf16 *in, const int32_t *rows, int n, int C,
                             cudaStream_t st);

/* An RMSNorm folded into the GEMM after it (the device option fold_norms):
 * its gains are multiplied into the GEMM's weights once (ssfk_fold_gains),
 * the GEMM reads the residual stream x [rows][C] itself, and the kernel
 * that takes the GEMM's output scales each row by 1 / rms of x's row,
 * which it sums itself.  x NULL: no norm folded. */
typedef struct ssfk_row_norm {
    const bf16 *x;
    int C;
    float eps;
} ssfk_row_norm;

/* W [rows][K] *= gains [K] column by column, rounded to BF16: the RMSNorm
 * before a GEMM folded into its weights (ssfk_row_norm).  Once, at load. */
cudaError_t ssfk_fold_gains(bf16 *W, const bf16 *gains, int rows, int K, cudaStream_t st);

/* On the fused q|k|v rows: adds the bias (may be NULL), rotates q and k
 * (rotate-half RoPE at each row's position), writes the rotated q back in
 * place and k, v into the pool at (table[pos / bs], layer, pos % bs).  With
 * an fp8 pool each K and V row is scaled by its largest magnitude / 448
 * (e4m3's largest finite value) from the BF16 values the reference would
 * store; k, v are then also left in place in the q|k|v row.  nm (may be
 * NULL): each row is first scaled by its folded norm's 1 / rms. */
cudaError_t ssfk_qkv_rope_store(bf16 *qkv, const float *bias, const int32_t *pos, ssfk_tables tb,
                                const float *inv_freq, void *pool, ssfk_kv_layout kv, int layer,
                                int rows, int n_heads, int n_kv_heads, const ssfk_row_norm *nm,
                                cudaStream_t st);

/* cs[r][d] = (cos, sin) of pos[r] * inv_freq[d], d < head_dim / 2: a
 * step's angles, computed once for every layer's ssfk_attention with RoPE
 * (ssfk_attn_rope.cs), the same bits ssfk_qkv_rope_store computes. */
cudaError_t ssfk_rope_table(float2 *cs, const int32_t *pos, const float *inv_freq, int rows,
                            int head_dim, cudaStream_t st);

/* One layer's attention for a step's rows: out[r][h] = softmax(q[r][h] .
 * K^T / sqrt(hd)) V over positions 0..pos[r] of row r's table, with K, V of
 * q-head h's KV head.  q is read from the fused q|k|v rows (row width
 * (n_heads + 2 n_kv_heads) * hd). */
typedef struct ssfk_attn_io {
    bf16 *out; /* [rows][n_heads * hd] */
    const bf16 *qkv;
    void *pool; /* written only by the decode kernel with RoPE */
    ssfk_kv_layout kv;
    int layer;
    const int32_t *pos; /* [rows] */
    ssfk_tables tb;
    int n_heads, n_kv_heads;
} ssfk_attn_io;

/* The decode kernel's RoPE: with it, the kernel does ssfk_qkv_rope_store's
 * work itself, one launch a layer fewer.  It reads q unrotated, adds the
 * bias and rotates it as it loads it, and stores each row's own K and V
 * (biased, K rotated; e4m3 and a scale with fp8) at pos[r] before reading
 * them, with the same bits as ssfk_qkv_rope_store.  The qkv rows are left
 * as they are.  Only for rows that are each the one row of their sequence
 * (a decode step), with shape.head_chunks 1: no other CTA may read a row's
 * new position.  (Not a field of ssfk_attn_io: a larger struct cost the
 * kernel without RoPE 10 registers at head_dim 64 with fp8.) */
typedef struct ssfk_attn_rope {
    const float2 *cs;  /* [rows][hd / 2] (ssfk_rope_table) */
    const float *bias; /* the q|k|v bias, or NULL */
} ssfk_attn_rope;

/* The decode kernel over the rows listed in `rows` (NULL: rows 0, 1, ...),
 * launched as `shape` (cuda_plan.h; planned for that many rows, n_kv_heads
 * and group), with RoPE when `rope` is not NULL.  With shape.splits > 1
 * `part` holds shape.partial_floats floats, which a second kernel merges. */
cudaError_t ssfk_attention(const ssf_attn_shape *shape, ssfk_attn_io io, const ssfk_attn_rope *rope,
                           const int32_t *rows, float *part, cudaStream_t st);

/* The prefill kernel (cuda_plan.h) over n_qblocks q-blocks as
 * ssf_prefill_split lists them (qblocks in device memory), over a BF16 or
 * an fp8 pool, after ssfk_qkv_rope_store. */
cudaError_t ssfk_prefill_attention(ssfk_attn_io io, const int32_t *qblocks, int n_qblocks,
                                   cudaStream_t st);

/* Whether the engine sends an fp8 pool's prompts through the prefill
 * kernel by default, rather than the decode kernel, which reads a prompt's
 * K and V once a row.  1 since run O (an H200, 2026-11-28) checked its fp8
 * path (against the CPU 0.0566-0.0972, as close as the decode kernel's)
 * and timed it: 1,000-token prompts at 1.5B prefilled at 133,112 tok/s
 * against 104,445 (bench/README-gpu.md).  The device option
 * disable_flash_prefill still sends every prompt to the decode kernel. */
#define SSFK_PREFILL_FP8 1

/* Whether the engine's decode steps leave bias, RoPE and the KV store to
 * the decode kernel (ssfk_attn_io.rope_cs) by default.  0 until a GPU has
 * checked and timed it, which only tools/cuda-emu has run so far
 * (2026-11-26); the device option rope_in_attention asks for it. */
#define SSFK_ATTN_ROPE 0

/* Which of the engine's GEMMs of up to 64 rows (q|k|v, o, gate|up with
 * SwiGLU's epilogue, down) go through ssfk_pgemm rather than cuBLAS by
 * default (an ssf_own_gemms): none until a GPU has checked and timed it
 * (only tools/cuda-emu has run it, 2026-11-27), then SSF_OWN_GEMMS_TUNED;
 * the device option own_small_gemms asks for either. */
#define SSFK_OWN_SMALL_GEMMS SSF_OWN_GEMMS_NEVER

/* Whether the engine's CUDA device defers its steps (ssf_device.can_defer)
 * by default.  0 until a GPU has checked and timed it (the engine's tests
 * run it on a fake device, 2026-11-27); the device option overlap_steps
 * asks for it. */
#define SSFK_OVERLAP_STEPS 0

/* Whether the RMSNorms between the engine's own GEMMs (ssfk_pgemm_fuse:
 * o's and down's residual add, gate|up's and q|k|v's norm) are fused into
 * them by default: 55 launches fewer a 1.5B step where all four GEMMs take
 * the own kernel.  0 until a GPU has checked and timed it (only
 * tools/cuda-emu has run it, 2026-11-27); the device option fuse_norms
 * asks for it. */
#define SSFK_FUSE_NORMS 0

/* Whether the RMSNorms before q|k|v and gate|up are folded into those
 * GEMMs' weights by default (ssfk_row_norm; 2 L launches fewer a step, the
 * GEMMs cuBLAS's).  On since run P (H200, 2026-11-28): its checks passed on
 * every fixture (CPU parity 0.0096-0.0198, compute-sanitizer 0 errors) and
 * it took 2.1-6.4% off every decode step timed (7B at batch 64: 6.53 ->
 * 6.22 ms, 67% -> 71% of the copy roofline).  disable_fold_norms
 * (--no-fold-norms) is the way back. */
#define SSFK_FOLD_NORMS 1

/* Whether the cuBLAS tuner times the split search's variants
 * (cuda_gemm.cuh, ssf_gemm_split_counts) by default: cublasLt's first
 * split-capable heuristic algorithms at 2-16 splits of K, beside the
 * heuristic's own picks.  0: run P (H200) timed decode steps with it
 * 1.7-2.6% slower, its picks mostly the heuristic's own; the device option
 * gemm_split_search asks for it. */
#define SSFK_GEMM_SPLIT_SEARCH 0

/* Lets the prefill kernels use ssf_prefill_smem bytes of shared memory:
 * once per device, before the first ssfk_prefill_attention. */
cudaError_t ssfk_prefill_init(void);

/* Lets the attention kernels use ssf_attn_smem bytes of shared memory, past
 * the default 48 KB: once per device, before the first ssfk_attention. */
cudaError_t ssfk_attention_init(void);

/* *slots = the attention CTAs the current device runs at once (SMs x the
 * CTAs an SM holds, from the kernel's registers and shared memory; rope:
 * the build that does RoPE): what ssf_attn_plan fills.  After
 * ssfk_attention_init. */
cudaError_t ssfk_attention_slots(int head_dim, int fp8, int rope, int *slots);

/* h[r][i] = bf16(bf16(silu(g)) * u) with g = gu[r][i], u = gu[r][inter +
 * i]; or, with `block` (gate|up's rows interleaved for ssfk_pgemm's SwiGLU
 * epilogue, a divisor of inter), g and u of output i from the pairs of
 * `block` columns: g = gu[r][i / block * 2 block + i % block], u `block`
 * further.  nm (may be NULL): g and u are first scaled by their row's
 * folded norm's 1 / rms and rounded to BF16. */
cudaError_t ssfk_silu_mul(bf16 *h, const bf16 *gu, int rows, int inter, int block,
                          const ssfk_row_norm *nm, cudaStream_t st);

/* Occupies the stream for ns nanoseconds (one thread).  A timing queued
 * behind it runs its launches back to back on the device, however slowly
 * the host issues them: a GEMM of a few microseconds takes about as long
 * to launch, so a timing of it on an idle stream measures the host. */
cudaError_t ssfk_hold(long long ns, cudaStream_t st);

/* What a timing of `calls` launches holds its stream for: room for the
 * host's issue, ~5 us a cuBLAS call, four times over. */
#define SSFK_HOLD_NS(calls) (50000LL + 20000LL * (calls))

/* ids[r] = the token drawn for row r of `logits` (rows x stride fp32, ids
 * below n_valid) as spec[r] asks (cuda_sample.cu); -1 for a row without a
 * finite logit.  spec is in device memory.  gather: filter and draw over
 * the row's ids with mass gathered in shared memory when they fit (the same
 * draws, fewer reads of the row); 0 walks the whole row every pass. */
cudaError_t ssfk_sample(int32_t *ids, const float *logits, int rows, size_t stride, int n_valid,
                        const ssf_sample_spec *spec, int gather, cudaStream_t st);

/* The engine's choice of ssfk_sample's gather.  On an H100 (2026-11-26)
 * both paths passed gpu_check's sampler checks, drawing the same ids; over
 * 256 rows of 151,936 ids at T 0.6 and top-p 0.95 the gathered one took
 * 0.37 ms against 0.91 on peaked rows, as a trained model gives, and 1.20
 * against 1.07 on flat rows, the filters' worst case. */
#define SSFK_SAMPLE_GATHER 1

/* Y[M][N] = X[M][K] . W[N][K]^T, BF16, for 1 <= M <= SSF_PGEMM_MAX_M rows,
 * through the engine's own kernel in the launch shape ssf_pgemm_plan made
 * for N and K (cuda_plan.h).  With shape.swiglu, W's rows interleave gate
 * and up in blocks of shape.bn / 2 and Y is SwiGLU's h [M][N / 2], the
 * bits ssfk_silu_mul gives of the BF16 product with that block.  fp32
 * accumulation, each split's partial summed in split order: the same bits
 * every launch.  With splits, `part` holds shape.partial_floats floats and
 * `count` shape.tiles ints, zero before the first launch; each launch
 * leaves them zero.  `fuse` (may be NULL) takes in the RMSNorm before the
 * GEMM or the residual add after it. */
typedef struct ssfk_pgemm_fuse {
    /* the norm before: X is the residual stream x [M][K]; the GEMM
     * multiplies bf16(gain . bf16(x r)), as ssfk_rmsnorm writes it, with a
     * row's r = rsqrt(s / K + eps), s the sum in order of its K / 64 group
     * sums of squares norm_ss [K / 64][SSF_PGEMM_MAX_M] */
    const float *norm_ss;
    const bf16 *gain;
    float eps;
    /* the residual add after: x = bf16(x + bf16(y)) into res [M][N] in
     * place of Y (NULL), as ssfk_rmsnorm's add, and each 64 columns' sum
     * of squares of the new x into res_ss [N / 64][SSF_PGEMM_MAX_M]: the
     * next GEMM's norm_ss.  Not with SwiGLU's epilogue. */
    bf16 *res;
    float *res_ss;
} ssfk_pgemm_fuse;

cudaError_t ssfk_pgemm(const ssf_pgemm_shape *shape, const bf16 *X, const bf16 *W, bf16 *Y,
                       float *part, int *count, int M, int N, int K, const ssfk_pgemm_fuse *fuse,
                       cudaStream_t st);

/* What ssf_pgemm_plan plans for on the current device. */
typedef struct ssfk_pgemm_device {
    int sms;
    size_t cta_smem, sm_smem; /* opt-in shared memory a CTA, shared memory an SM */
} ssfk_pgemm_device;

/* Reads the current device's SMs and shared memory into *dev and lets
 * ssfk_pgemm's kernel take the opt-in limit: once per device, before
 * ssfk_pgemm_plan. */
cudaError_t ssfk_pgemm_init(ssfk_pgemm_device *dev);

/* ssf_pgemm_plan for N x K weights on that device (swiglu: gate|up with
 * SwiGLU's epilogue): 0 and the shape, -1 when none runs as one wave
 * (cuBLAS's GEMM then). */
int ssfk_pgemm_plan(const ssfk_pgemm_device *dev, int N, int K, int swiglu, ssf_pgemm_shape *sh);

/* Y[M][N] = X[M][K] . W[N][K]^T with BF16 X, W and fp32 accumulation; Y is
 * BF16 or fp32 (`y_type`).  W is a PyTorch [out, in] row-major matrix, which
 * cuBLAS sees as the column-major K x N matrix to transpose: the "TN"
 * layout.  accumulate (BF16 Y): Y += X . W^T, in fp32 and rounded once. */
cublasStatus_t ssfk_gemm(cublasHandle_t h, const bf16 *X, const bf16 *W, void *Y,
                         cudaDataType_t y_type, int M, int N, int K, int accumulate);

#endif
