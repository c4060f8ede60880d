/*
 * cuda_ops.h - each kernel of the CUDA device on host arrays, for the
 * per-operation tests (tests/test_engine_cuda.c) and bench/gpu_check.c.
 *
 * Inputs are fp32 and rounded to BF16 on the way in, exactly as the device
 * stores them, so a CPU reference computed from the rounded inputs isolates
 * the kernel's own arithmetic.  Outputs are widened back to fp32.  Every
 * call allocates, runs, synchronises and frees on the current device.
 * Without a CUDA build each returns -1 with the reason.
 */
#ifndef SSFTEVAL_CUDA_OPS_H
#define SSFTEVAL_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "cuda_plan.h"
#include "device.h"
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [rows][C], add [rows][C] or NULL, w [C]; x_out (may be NULL) receives x
 * after the residual add, out the normalised rows. */
int ssf_cuda_op_rmsnorm(int rows, int C, float eps, const float *x, const float *add,
                        const float *w, float *x_out, float *out, ssf_error *err);

/* gu [rows][2 inter] (gate then up, or interleaved in blocks of `block`:
 * ssfk_silu_mul) -> h [rows][inter] */
int ssf_cuda_op_silu_mul(int rows, int inter, int block, const float *gu, float *h, ssf_error *err);

/* How ssf_cuda_op_gemm runs its GEMM. */
typedef struct ssf_gemm_op {
    int splits;      /* 0: the shape tuned as the device tunes it by default; > 1: cublasLt's
                        first heuristic algorithm that splits K in fp32 and takes this count,
                        split that many ways (ssfk_gemm_pin_split: what the search may take) */
    int bf16_out;    /* Y BF16 on the device, as the engine's layer GEMMs write it */
    int accumulate;  /* Y += X . W^T in place (cuBLAS's beta 1), Y's values on entry (rounded
                        to BF16 with bf16_out) the C */
    const char *how; /* out: what ran (ssfk_gemm_how_name: "cublasLt-split4", ...) */
} ssf_gemm_op;

/* Y [M][N] = X [M][K] . W [N][K]^T through the device's tuned path
 * (cuda_gemm.cuh) as op says (NULL: tuned, fp32 out, beta 0); the tuning
 * runs on a buffer of its own, and Y's device buffer starts as NaNs unless
 * it accumulates. */
int ssf_cuda_op_gemm(int M, int N, int K, const float *X, const float *W, float *Y, ssf_gemm_op *op,
                     ssf_error *err);

/* Y [M][N] = X [M][K] . W [N][K]^T (M <= 64), fp32 out of BF16, through
 * the engine's own GEMM kernel in the shape the device plans for N x K:
 * launched three times, which must give the same bits (the splits' tile
 * counts back at zero after each); *shape receives the shape.  swiglu: W
 * is gate|up with rows interleaved in blocks of shape.bn / 2, and Y [M][N
 * / 2] is SwiGLU's h (ssfk_pgemm). */
int ssf_cuda_op_pgemm(int M, int N, int K, int swiglu, const float *X, const float *W, float *Y,
                      ssf_pgemm_shape *shape, ssf_error *err);

/* The paged pool of the op tests: one sequence whose table[i] is the block
 * of positions i*bs.., in a pool of n_blocks blocks of two layers (layer 1
 * is used, so that the layer stride is exercised); blocks outside the table
 * hold NaN, so a stray read shows. */
typedef struct ssf_cuda_op_pages {
    int block_size;
    const int32_t *table; /* ids < n_blocks, distinct */
    int n_blocks;
    int fp8; /* the pool holds e4m3 K and V with a scale a row (ssf_cuda_op_fp8_rows) */
} ssf_cuda_op_pages;

/* out = x as an fp8 pool keeps it, row by row of hd values: rounded to
 * BF16, to e4m3 at scale max|row| / 448, and back.  Host arithmetic (CUDA's
 * e4m3 conversion), no device needed. */
int ssf_cuda_op_fp8_rows(int n_rows, int hd, const float *x, float *out, ssf_error *err);

/* qkv [rows][(nh + 2 nkv) hd] (+ bias [(nh + 2 nkv) hd] or NULL) at
 * positions pos[]: the rotated q [rows][nh hd] and the K, V rows the
 * kernel wrote through the table [rows][nkv hd].  Positions must be
 * distinct. */
int ssf_cuda_op_rope_store(int rows, int n_heads, int n_kv, int head_dim, double theta,
                           const float *qkv, const float *bias, const int32_t *pos,
                           const ssf_cuda_op_pages *pages, float *q_out, float *k_out, float *v_out,
                           ssf_error *err);

/* q [rows][nh hd]; k, v [n_ctx][nkv hd] written into the pages; row r
 * attends to positions 0..pos[r] (< n_ctx).  out [rows][nh hd].  The launch
 * is planned for `slots` CTAs at once (0: the device's), which decides
 * split-KV; *splits (may be NULL) receives the splits used.  The kernel
 * runs twice, the second time over an output and partials set to NaN; a
 * merge counter left non-zero, or a second output unlike the first, is an
 * error (the split merge's counters must reset themselves). */
int ssf_cuda_op_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx, const float *q,
                          const float *k, const float *v, const int32_t *pos,
                          const ssf_cuda_op_pages *pages, int slots, float *out, int *splits,
                          ssf_error *err);

/* ssf_cuda_op_attention's rows as the engine splits a step's with flash
 * prefill on: runs of SSF_PREFILL_MIN_RUN or more consecutive positions
 * through the prefill kernel in q-blocks (*n_qblocks, may be NULL, receives
 * how many), the other rows through the decode kernel; BF16 or fp8 pages. */
int ssf_cuda_op_prefill_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx,
                                  const float *q, const float *k, const float *v,
                                  const int32_t *pos, const ssf_cuda_op_pages *pages, float *out,
                                  int *n_qblocks, ssf_error *err);

/* Device-to-device cudaMemcpy bandwidth over `bytes`, best of `iters`, in
 * GB/s counting the bytes read and written. */
int ssf_cuda_op_copy_bandwidth(size_t bytes, int iters, double *gb_per_s, ssf_error *err);

/* Two kernels launched as the engine's are (launch_pdl, cuda_common.cuh),
 * on a stream and replayed from a CUDA graph: the first spins for spin_us
 * and then sets a flag; the second notes when it started and reads the flag
 * after its grid_dep_wait.  *seen: 1 when both reads found the flag set
 * (the order holds); *early_us: how long before the first kernel finished
 * the second started, on the stream and in the graph (0 or less: it did
 * not start early, as without PDL or before sm_90). */
int ssf_cuda_op_pdl_order(int spin_us, int *seen, double early_us[2], ssf_error *err);

/* ids[r] = the token the device's sampler draws from logits row r (rows x
 * vocab fp32, ids below n_valid) as spec[r] asks, gathering the ids with
 * mass first when `gather` (ssfk_sample); *kernel_ms (may be NULL)
 * receives the sampling kernel's own time, after two warm-up launches. */
int ssf_cuda_op_sample(int rows, int vocab, int n_valid, const float *logits,
                       const ssf_sample_spec *spec, int gather, int32_t *ids, double *kernel_ms,
                       ssf_error *err);

/* A GEMM's times (ms a call) and choices, from ssf_cuda_op_time_gemm. */
typedef struct ssf_gemm_times {
    double default_ms;  /* cublasGemmEx: cuBLAS's own pick */
    double tuned_ms;    /* the choice ssfk_gemm_tune makes (cublasGemmEx again when it wins) */
    double searched_ms; /* the same with the split search's variants timed too */
    const char *tuned, *searched; /* each choice as ssfk_gemm_how_name names it (static) */
} ssf_gemm_times;

/* One BF16 GEMM Y[M][N] = X[M][K] W[N][K]^T timed on device data, over
 * `iters` calls that cycle through copies of W larger than L2 together (a
 * step's next layer finds no weights there either): cublasGemmEx, the
 * tuner's choice, and the tuner's choice with the split search, each
 * tuning on the same operands. */
int ssf_cuda_op_time_gemm(int M, int N, int K, int iters, ssf_gemm_times *t, ssf_error *err);

/* ssf_cuda_op_time_pgemm's fusions (ssfk_pgemm_fuse) */
enum { SSF_PGEMM_PLAIN, SSF_PGEMM_NORM_IN, SSF_PGEMM_RESIDUAL_OUT };

/* Mean milliseconds of the own GEMM kernel on the shape
 * ssf_cuda_op_time_gemm times, W's copies cycled the same way (swiglu:
 * with SwiGLU's epilogue; fused: an SSF_PGEMM_* fusion, the RMSNorm
 * before it or the residual add after); *shape receives the shape. */
int ssf_cuda_op_time_pgemm(int M, int N, int K, int swiglu, int fused, int iters, double *ms,
                           ssf_pgemm_shape *shape, ssf_error *err);

/* The same for each shape ssf_pgemm_shapes gives on this device, up to
 * max, into shapes[] and ms[]: what the plan's pick is tuned by.  *n: the
 * shapes timed; *pick: the plan's among them (-1: it has none). */
int ssf_cuda_op_time_pgemm_shapes(int M, int N, int K, int swiglu, int iters,
                                  ssf_pgemm_shape *shapes, double *ms, int max, int *n, int *pick,
                                  ssf_error *err);

#define SSF_CUDA_SMALL_GEMMS 4

/* What dev's tuner found of the own GEMM (device option own_small_gemms
 * tuned) for decode steps of M rows (1 to SSF_PGEMM_MAX_M), for the
 * benches: q|k|v, o, gate|up, down (cuda_plan.h).  dev: opened by
 * ssf_device_cuda_open. */
int ssf_cuda_gemm_verdicts(const ssf_device *dev, int M, ssf_pgemm_verdict *out, ssf_error *err);

/* Decode steps of up to this many rows, each row sampled, replay a CUDA
 * graph (cuda.cu's GRAPH_MAX_ROWS). */
#define SSF_CUDA_GRAPH_MAX_ROWS 256

/* From now on, times each decode step's graph replay on dev with events
 * around its launch, the totals reset: a step's time less its replay's is
 * the host's share (staging the batch, the launch, the wait for the ids).
 * ssf_cuda_replay_time gives the replays timed and their milliseconds in
 * all.  For the benches; dev: opened by ssf_device_cuda_open. */
int ssf_cuda_time_replays(ssf_device *dev, ssf_error *err);
int ssf_cuda_replay_time(const ssf_device *dev, long *replays, double *ms, ssf_error *err);

/* Mean milliseconds of a decode step's small kernels at `rows` rows, each
 * timed alone over `iters` launches run back to back (queued behind a
 * hold, as a graph replays them, each a programmatic dependent launch as
 * in a step): ms[0] the RMSNorm with its residual add (two a layer), ms[1]
 * bias + RoPE + the KV store at position 999, ms[2] SiLU . mul (the
 * kernels a fusion into the GEMMs or the attention would save); ms[3] and
 * ms[4] the last two with a norm folded in (ssfk_row_norm), the only small
 * kernels a layer keeps with fold_norms. */
int ssf_cuda_op_time_small(int rows, int hidden, int inter, int n_heads, int n_kv, int head_dim,
                           int iters, double ms[5], ssf_error *err);

/* Mean milliseconds of one paged decode attention launch: rows sequences at
 * position ctx - 1, a pool laid out for n_layers layers (call i reads layer
 * i % n_layers).  chunk > 0 replaces the plan's split (positions a CTA);
 * *splits receives the splits used. */

int ssf_cuda_op_time_attention(int rows, int n_heads, int n_kv, int head_dim, int ctx, int n_layers,
                               int block_size, int chunk, int iters, double *ms, int *splits,
                               ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
