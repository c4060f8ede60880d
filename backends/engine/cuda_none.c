/*
 * cuda_none.c - the CUDA device in a build without CUDA (-Dcuda=disabled, or
 * no nvcc/cuBLAS found): every entry point says so in one line.
 */
#include "cuda_ops.h"
#include "device.h"

#define NO_CUDA "this build has no CUDA support; rebuild with -Dcuda=enabled or use --device cpu"

ssf_device *ssf_device_cuda_open(const ssf_model *m, const ssf_device_options *o, ssf_error *err)
{
    ssf_fail(err, NO_CUDA);
    return NULL;
}

int ssf_device_cuda_available(void)
{
    return 0;
}

int ssf_cuda_op_rmsnorm(int rows, int C, float eps, const float *x, const float *add,
                        const float *w, float *x_out, float *out, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_silu_mul(int rows, int inter, int block, const float *gu, float *h, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_gemm(int M, int N, int K, const float *X, const float *W, float *Y, ssf_gemm_op *op,
                     ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_pgemm(int M, int N, int K, int swiglu, const float *X, const float *W, float *Y,
                      ssf_pgemm_shape *shape, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_rope_store(int rows, int n_heads, int n_kv, int head_dim, double theta,
                           const float *qkv, const float *bias, const int32_t *pos,
                           const ssf_cuda_op_pages *pages, float *q_out, float *k_out, float *v_out,
                           ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx, const float *q,
                          const float *k, const float *v, const int32_t *pos,
                          const ssf_cuda_op_pages *pages, int slots, float *out, int *splits,
                          ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_fp8_rows(int n_rows, int hd, const float *x, float *out, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_prefill_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx,
                                  const float *q, const float *k, const float *v,
                                  const int32_t *pos, const ssf_cuda_op_pages *pages, float *out,
                                  int *n_qblocks, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_copy_bandwidth(size_t bytes, int iters, double *gb_per_s, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_pdl_order(int spin_us, int *seen, double early_us[2], ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_sample(int rows, int vocab, int n_valid, const float *logits,
                       const ssf_sample_spec *spec, int gather, int32_t *ids, double *kernel_ms,
                       ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_time_gemm(int M, int N, int K, int iters, ssf_gemm_times *t, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_time_pgemm(int M, int N, int K, int swiglu, int fused, int iters, double *ms,
                           ssf_pgemm_shape *shape, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_time_pgemm_shapes(int M, int N, int K, int swiglu, int iters,
                                  ssf_pgemm_shape *shapes, double *ms, int max, int *n, int *pick,
                                  ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_gemm_verdicts(const ssf_device *dev, int M, ssf_pgemm_verdict *out, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_time_replays(ssf_device *dev, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_replay_time(const ssf_device *dev, long *replays, double *ms, ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_time_small(int rows, int hidden, int inter, int n_heads, int n_kv, int head_dim,
                           int iters, double ms[5], ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}

int ssf_cuda_op_time_attention(int rows, int n_heads, int n_kv, int head_dim, int ctx, int n_layers,
                               int block_size, int chunk, int iters, double *ms, int *splits,
                               ssf_error *err)
{
    return ssf_fail(err, NO_CUDA);
}
