/*
 * cuda_ops.cu - the kernels of cuda_kernels.cu on host arrays (cuda_ops.h),
 * for per-operation tests against CPU references.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.cuh"
#include "cuda_ops.h"

/* The device buffers of one call, freed together whatever happened. */
typedef struct scratch {
    void *p[16];
    int n;
    cudaStream_t st;
    cublasHandle_t blas;
} scratch;

static void scratch_free(scratch *s)
{
    if (s->st) cudaStreamSynchronize(s->st);
    for (int i = 0; i < s->n; i++)
        cudaFree(s->p[i]);
    if (s->blas) cublasDestroy(s->blas);
    if (s->st) cudaStreamDestroy(s->st);
}

static int fail_cuda(ssf_error *err, const char *what, cudaError_t e)
{
    return ssf_fail(err, "cuda: %s: %s", what, cudaGetErrorString(e));
}

static int scratch_init(scratch *s, int want_blas, ssf_error *err)
{
    memset(s, 0, sizeof *s);
    cudaError_t e = cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking);
    if (e != cudaSuccess) return fail_cuda(err, "creating a stream", e);
    if (!want_blas) return 0;
    if (cublasCreate(&s->blas) != CUBLAS_STATUS_SUCCESS)
        return ssf_fail(err, "cublas: cublasCreate failed");
    if (cublasSetStream(s->blas, s->st) != CUBLAS_STATUS_SUCCESS)
        return ssf_fail(err, "cublas: cublasSetStream failed");
    return 0;
}

static void *dev_alloc(scratch *s, size_t bytes, ssf_error *err)
{
    void *p = NULL;
    cudaError_t e = s->n < 16 ? cudaMalloc(&p, bytes ? bytes : 1) : cudaErrorMemoryAllocation;
    if (e != cudaSuccess) {
        fail_cuda(err, "cudaMalloc", e);
        return NULL;
    }
    s->p[s->n++] = p;
    return p;
}

/* A device copy of n floats rounded to BF16. */
static bf16 *up_bf16(scratch *s, const float *x, size_t n, ssf_error *err)
{
    bf16 *d = (bf16 *)dev_alloc(s, n * sizeof(bf16), err);
    if (!d) return NULL;
    bf16 *h = (bf16 *)ssf_xmalloc(n * sizeof(bf16) + 1);
    for (size_t i = 0; i < n; i++)
        h[i] = __float2bfloat16(x[i]);
    cudaError_t e = cudaMemcpy(d, h, n * sizeof(bf16), cudaMemcpyHostToDevice);
    free(h);
    if (e != cudaSuccess) {
        fail_cuda(err, "upload", e);
        return NULL;
    }
    return d;
}

static void *up_raw(scratch *s, const void *x, size_t bytes, ssf_error *err)
{
    void *d = dev_alloc(s, bytes, err);
    if (!d) return NULL;
    cudaError_t e = cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        fail_cuda(err, "upload", e);
        return NULL;
    }
    return d;
}

/* Waits for the stream, then widens n BF16 values at d (row stride `ld`,
 * `width` used per row) into out. */
static int down_bf16(scratch *s, const bf16 *d, int rows, int width, size_t ld, float *out,
                     ssf_error *err)
{
    cudaError_t e = cudaStreamSynchronize(s->st);
    if (e != cudaSuccess) return fail_cuda(err, "kernel", e);
    size_t n = (size_t)rows * ld;
    bf16 *h = (bf16 *)ssf_xmalloc(n * sizeof(bf16) + 1);
    e = cudaMemcpy(h, d, n * sizeof(bf16), cudaMemcpyDeviceToHost);
    if (e == cudaSuccess)
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < width; i++)
                out[(size_t)r * width + i] = __bfloat162float(h[(size_t)r * ld + i]);
    free(h);
    return e == cudaSuccess ? 0 : fail_cuda(err, "download", e);
}

/* ---- one function per kernel ------------------------------------------------ */

static int run_rmsnorm(scratch *s, int rows, int C, float eps, const float *x, const float *add,
                       const float *w, float *x_out, float *out, ssf_error *err)
{
    size_t n = (size_t)rows * C;
    bf16 *dx = up_bf16(s, x, n, err), *dw = up_bf16(s, w, (size_t)C, err);
    bf16 *da = add ? up_bf16(s, add, n, err) : NULL, *dout = (bf16 *)dev_alloc(s, n * 2, err);
    if (!dx || !dw || (add && !da) || !dout) return -1;
    cudaError_t e = ssfk_rmsnorm(dx, da, dw, dout, rows, C, eps, s->st);
    if (e != cudaSuccess) return fail_cuda(err, "rmsnorm launch", e);
    if (x_out && down_bf16(s, dx, rows, C, (size_t)C, x_out, err)) return -1;
    return down_bf16(s, dout, rows, C, (size_t)C, out, err);
}

extern "C" int ssf_cuda_op_rmsnorm(int rows, int C, float eps, const float *x, const float *add,
                                   const float *w, float *x_out, float *out, ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) || run_rmsnorm(&s, rows, C, eps, x, add, w, x_out, out, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

static int run_silu_mul(scratch *s, int rows, int inter, const float *gu, float *h, ssf_error *err)
{
    bf16 *dgu = up_bf16(s, gu, (size_t)rows * 2 * inter, err);
    bf16 *dh = (bf16 *)dev_alloc(s, (size_t)rows * inter * 2, err);
    if (!dgu || !dh) return -1;
    cudaError_t e = ssfk_silu_mul(dh, dgu, rows, inter, s->st);
    if (e != cudaSuccess) return fail_cuda(err, "silu_mul launch", e);
    return down_bf16(s, dh, rows, inter, (size_t)inter, h, err);
}

extern "C" int ssf_cuda_op_silu_mul(int rows, int inter, const float *gu, float *h, ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) || run_silu_mul(&s, rows, inter, gu, h, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

static int run_gemm(scratch *s, int M, int N, int K, const float *X, const float *W, float *Y,
                    ssf_error *err)
{
    bf16 *dx = up_bf16(s, X, (size_t)M * K, err), *dw = up_bf16(s, W, (size_t)N * K, err);
    float *dy = (float *)dev_alloc(s, (size_t)M * N * sizeof(float), err);
    if (!dx || !dw || !dy) return -1;
    cublasStatus_t bs = ssfk_gemm(s->blas, dx, dw, dy, CUDA_R_32F, M, N, K);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return ssf_fail(err, "cublas: gemm: %s", cublasGetStatusString(bs));
    cudaError_t e = cudaStreamSynchronize(s->st);
    if (e == cudaSuccess)
        e = cudaMemcpy(Y, dy, (size_t)M * N * sizeof(float), cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : fail_cuda(err, "gemm", e);
}

extern "C" int ssf_cuda_op_gemm(int M, int N, int K, const float *X, const float *W, float *Y,
                                ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 1, err) || run_gemm(&s, M, N, K, X, W, Y, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* A one-slot, one-layer cache of n_ctx positions. */
static ssfk_kv_layout one_slot(int n_ctx, int kv_dim)
{
    ssfk_kv_layout kv;
    kv.kv_dim = kv_dim;
    kv.layer_stride = (size_t)n_ctx * kv_dim;
    kv.slot_stride = kv.layer_stride;
    return kv;
}

static int max_pos(int rows, const int32_t *pos)
{
    int m = 0;
    for (int r = 0; r < rows; r++)
        m = pos[r] > m ? pos[r] : m;
    return m;
}

static int run_rope_store(scratch *s, int rows, int nh, int nkv, int hd, double theta,
                          const float *qkv, const float *bias, const int32_t *pos, float *q_out,
                          float *k_out, float *v_out, ssf_error *err)
{
    int width = (nh + 2 * nkv) * hd, kvd = nkv * hd, n_ctx = max_pos(rows, pos) + 1;
    float *inv = (float *)ssf_xmalloc((size_t)hd / 2 * sizeof(float));
    ssfk_inv_freq(inv, hd, theta);
    float *dinv = (float *)up_raw(s, inv, (size_t)hd / 2 * sizeof(float), err);
    free(inv);
    int32_t *zeros = (int32_t *)ssf_xcalloc((size_t)rows, sizeof(int32_t));
    int32_t *dslot = (int32_t *)up_raw(s, zeros, (size_t)rows * sizeof(int32_t), err);
    free(zeros);
    int32_t *dpos = (int32_t *)up_raw(s, pos, (size_t)rows * sizeof(int32_t), err);
    bf16 *dqkv = up_bf16(s, qkv, (size_t)rows * width, err);
    float *dbias = bias ? (float *)up_raw(s, bias, (size_t)width * sizeof(float), err) : NULL;
    bf16 *kc = (bf16 *)dev_alloc(s, (size_t)n_ctx * kvd * 2, err);
    bf16 *vc = (bf16 *)dev_alloc(s, (size_t)n_ctx * kvd * 2, err);
    if (!dinv || !dslot || !dpos || !dqkv || (bias && !dbias) || !kc || !vc) return -1;
    ssfk_kv_layout kv = one_slot(n_ctx, kvd);
    cudaError_t e = ssfk_qkv_rope_store(dqkv, dbias, dpos, dslot, dinv, kc, vc, kv, 0, rows, nh,
                                        nkv, hd, s->st);
    if (e != cudaSuccess) return fail_cuda(err, "rope launch", e);
    if (down_bf16(s, dqkv, rows, nh * hd, (size_t)width, q_out, err)) return -1;
    for (int r = 0; r < rows; r++)
        if (down_bf16(s, kc + (size_t)pos[r] * kvd, 1, kvd, (size_t)kvd, k_out + (size_t)r * kvd,
                      err) ||
            down_bf16(s, vc + (size_t)pos[r] * kvd, 1, kvd, (size_t)kvd, v_out + (size_t)r * kvd,
                      err))
            return -1;
    return 0;
}

extern "C" int ssf_cuda_op_rope_store(int rows, int n_heads, int n_kv, int head_dim, double theta,
                                      const float *qkv, const float *bias, const int32_t *pos,
                                      float *q_out, float *k_out, float *v_out, ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) || run_rope_store(&s, rows, n_heads, n_kv, head_dim, theta,
                                                        qkv, bias, pos, q_out, k_out, v_out, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

static int run_attention(scratch *s, int rows, int nh, int nkv, int hd, int n_ctx, const float *q,
                         const float *k, const float *v, const int32_t *pos, float *out,
                         ssf_error *err)
{
    int width = (nh + 2 * nkv) * hd, kvd = nkv * hd;
    /* q inside fused q|k|v rows, as the kernel reads it; k, v parts unused */
    float *qkv = (float *)ssf_xcalloc((size_t)rows * width, sizeof(float));
    for (int r = 0; r < rows; r++)
        memcpy(qkv + (size_t)r * width, q + (size_t)r * nh * hd, (size_t)nh * hd * sizeof(float));
    bf16 *dqkv = up_bf16(s, qkv, (size_t)rows * width, err);
    free(qkv);
    int32_t *zeros = (int32_t *)ssf_xcalloc((size_t)rows, sizeof(int32_t));
    int32_t *dslot = (int32_t *)up_raw(s, zeros, (size_t)rows * sizeof(int32_t), err);
    free(zeros);
    int32_t *dpos = (int32_t *)up_raw(s, pos, (size_t)rows * sizeof(int32_t), err);
    bf16 *kc = up_bf16(s, k, (size_t)n_ctx * kvd, err),
         *vc = up_bf16(s, v, (size_t)n_ctx * kvd, err);
    bf16 *dout = (bf16 *)dev_alloc(s, (size_t)rows * nh * hd * 2, err);
    if (!dqkv || !dslot || !dpos || !kc || !vc || !dout) return -1;
    cudaError_t e = ssfk_attention(dout, dqkv, kc, vc, dpos, dslot, one_slot(n_ctx, kvd), 0, rows,
                                   nh, nkv, hd, s->st);
    if (e != cudaSuccess) return fail_cuda(err, "attention launch", e);
    return down_bf16(s, dout, rows, nh * hd, (size_t)nh * hd, out, err);
}

extern "C" int ssf_cuda_op_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx,
                                     const float *q, const float *k, const float *v,
                                     const int32_t *pos, float *out, ssf_error *err)
{
    for (int r = 0; r < rows; r++)
        if (pos[r] < 0 || pos[r] >= n_ctx)
            return ssf_fail(err, "cuda: attention row %d: position %d outside 0..%d", r,
                            (int)pos[r], n_ctx - 1);
    scratch s;
    int rc = scratch_init(&s, 0, err) ||
             run_attention(&s, rows, n_heads, n_kv, head_dim, n_ctx, q, k, v, pos, out, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}
