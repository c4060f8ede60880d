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

#include <stdint.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x [rows][C], add [rows][C] or NULL, w [C]; x_out (may be NULL) receives x
 * after the residual add, out the normalised rows. */
int ssf_cuda_op_rmsnorm(int rows, int C, float eps, const float *x, const float *add,
                        const float *w, float *x_out, float *out, ssf_error *err);

/* gu [rows][2 inter] (gate then up) -> h [rows][inter] */
int ssf_cuda_op_silu_mul(int rows, int inter, const float *gu, float *h, ssf_error *err);

/* Y [M][N] = X [M][K] . W [N][K]^T, fp32 out */
int ssf_cuda_op_gemm(int M, int N, int K, const float *X, const float *W, float *Y, ssf_error *err);

/* qkv [rows][(nh + 2 nkv) hd] (+ bias [(nh + 2 nkv) hd] or NULL) at
 * positions pos[]: the rotated q [rows][nh hd] and the K, V rows the
 * kernel wrote to the cache [rows][nkv hd].  Positions must be distinct. */
int ssf_cuda_op_rope_store(int rows, int n_heads, int n_kv, int head_dim, double theta,
                           const float *qkv, const float *bias, const int32_t *pos, float *q_out,
                           float *k_out, float *v_out, ssf_error *err);

/* q [rows][nh hd]; a cache of n_ctx positions k, v [n_ctx][nkv hd]; row r
 * attends to positions 0..pos[r] (< n_ctx).  out [rows][nh hd]. */
int ssf_cuda_op_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx, const float *q,
                          const float *k, const float *v, const int32_t *pos, float *out,
                          ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
