/*
 * cuda_ops.cu - the kernels of cuda_kernels.cu on host arrays (cuda_ops.h),
 * for per-operation tests against CPU references.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "cuda_common.cuh"
#include "cuda_gemm.cuh"
#include "cuda_kernels.cuh"
#include "cuda_ops.h"

/* The device buffers of one call, freed together whatever happened. */
typedef struct scratch {
    void *p[16];
    int n;
    cudaStream_t st;
    cublasHandle_t blas;
    ssfk_gemm_ctx *gemm; /* scratch_gemm's */
} scratch;

static void scratch_free(scratch *s)
{
    if (s->st) cudaStreamSynchronize(s->st);
    for (int i = 0; i < s->n; i++)
        cudaFree(s->p[i]);
    if (s->blas) cublasDestroy(s->blas);
    if (s->gemm) ssfk_gemm_ctx_free(s->gemm);
    free(s->gemm);
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
    e = ssfk_attention_init();
    if (e != cudaSuccess) return fail_cuda(err, "raising the attention's shared memory", e);
    if (!want_blas) return 0;
    cublasStatus_t b = cublasCreate(&s->blas);
    if (b == CUBLAS_STATUS_SUCCESS) b = cublasSetStream(s->blas, s->st);
    if (b != CUBLAS_STATUS_SUCCESS) /* the reason: a library that did not load, say */
        return ssf_fail(err, "cublas: opening a handle: %s", cublasGetStatusString(b));
    return 0;
}

/* Copies host memory to the device in s->st's order and waits for it, so the
 * launch that follows on s->st sees the data and the host buffer may go. */
static cudaError_t upload(scratch *s, void *d, const void *h, size_t bytes)
{
    cudaError_t e = cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, s->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s->st);
    return e;
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

static void *dev_zeros(scratch *s, size_t bytes, ssf_error *err)
{
    void *p = dev_alloc(s, bytes, err);
    /* on the ops' stream: a plain cudaMemset runs on the legacy stream,
     * which the non-blocking s->st does not wait for */
    cudaError_t e = p ? cudaMemsetAsync(p, 0, bytes, s->st) : cudaSuccess;
    if (e != cudaSuccess) {
        fail_cuda(err, "cudaMemset", e);
        return NULL;
    }
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
    cudaError_t e = upload(s, d, h, n * sizeof(bf16));
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
    cudaError_t e = upload(s, d, x, bytes);
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

static int run_silu_mul(scratch *s, int rows, int inter, int block, const float *gu, float *h,
                        ssf_error *err)
{
    bf16 *dgu = up_bf16(s, gu, (size_t)rows * 2 * inter, err);
    bf16 *dh = (bf16 *)dev_alloc(s, (size_t)rows * inter * 2, err);
    if (!dgu || !dh) return -1;
    cudaError_t e = ssfk_silu_mul(dh, dgu, rows, inter, block, NULL, s->st);
    if (e != cudaSuccess) return fail_cuda(err, "silu_mul launch", e);
    return down_bf16(s, dh, rows, inter, (size_t)inter, h, err);
}

extern "C" int ssf_cuda_op_silu_mul(int rows, int inter, int block, const float *gu, float *h,
                                    ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) || run_silu_mul(&s, rows, inter, block, gu, h, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* A GEMM context (and the cuBLAS handle) on a workspace of the device's
 * size, so that both see the candidates the device does.  Needs s->blas. */
static ssfk_gemm_ctx *scratch_gemm(scratch *s, ssf_error *err)
{
    void *ws = dev_alloc(s, SSFK_GEMM_WORKSPACE, err);
    if (!ws) return NULL;
    cublasStatus_t b = cublasSetWorkspace(s->blas, ws, SSFK_GEMM_WORKSPACE);
    if (b != CUBLAS_STATUS_SUCCESS) {
        ssf_fail(err, "cublas: cublasSetWorkspace: %s", cublasGetStatusString(b));
        return NULL;
    }
    s->gemm = (ssfk_gemm_ctx *)ssf_xcalloc(1, sizeof *s->gemm);
    b = ssfk_gemm_ctx_init(s->gemm, ws, SSFK_GEMM_WORKSPACE);
    if (b != CUBLAS_STATUS_SUCCESS) {
        ssf_fail(err, "cublasLt: cublasLtCreate: %s", cublasGetStatusString(b));
        return NULL;
    }
    return s->gemm;
}

/* Y's device buffer for run_gemm: C uploaded when it accumulates, else
 * NaNs (all bits set, in fp32 and BF16 alike), so that an element the GEMM
 * leaves unwritten fails the caller's check. */
static void *gemm_output(scratch *s, const ssf_gemm_op *op, int M, int N, const float *Y,
                         ssf_error *err)
{
    size_t n = (size_t)M * N;
    if (op->accumulate && op->bf16_out) return up_bf16(s, Y, n, err);
    if (op->accumulate) return up_raw(s, Y, n * sizeof(float), err);
    size_t bytes = n * (op->bf16_out ? sizeof(bf16) : sizeof(float));
    void *d = dev_alloc(s, bytes, err);
    cudaError_t e = d ? cudaMemsetAsync(d, 0xff, bytes, s->st) : cudaSuccess;
    if (e == cudaSuccess) return d;
    fail_cuda(err, "cudaMemsetAsync", e);
    return NULL;
}

/* Through the tuned path, as a graph step runs it: tuned (or its split
 * pinned) on a buffer of its own, then run into Y. */
static int run_gemm(scratch *s, int M, int N, int K, const float *X, const float *W, float *Y,
                    ssf_gemm_op *op, ssf_error *err)
{
    cudaDataType_t y_type = op->bf16_out ? CUDA_R_16BF : CUDA_R_32F;
    size_t y_bytes = (size_t)M * N * (op->bf16_out ? sizeof(bf16) : sizeof(float));
    bf16 *dx = up_bf16(s, X, (size_t)M * K, err), *dw = up_bf16(s, W, (size_t)N * K, err);
    void *tuning_y = dev_alloc(s, y_bytes, err);
    ssfk_gemm_ctx *g = scratch_gemm(s, err);
    if (!dx || !dw || !tuning_y || !g) return -1;
    const bf16 *const ws[1] = {dw};
    g->split_search = SSFK_GEMM_SPLIT_SEARCH;
    int rc = op->splits > 1
                 ? ssfk_gemm_pin_split(g, M, N, K, y_type, op->splits, err)
                 : ssfk_gemm_tune(g, s->blas, dx, ws, 1, tuning_y, y_type, M, N, K, s->st, err);
    void *dy = rc ? NULL : gemm_output(s, op, M, N, Y, err);
    if (!dy) return -1;
    op->how = ssfk_gemm_how_name(g, M, N, K, y_type);
    cublasStatus_t bs =
        ssfk_gemm_run(g, s->blas, dx, dw, dy, y_type, M, N, K, op->accumulate, s->st);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return ssf_fail(err, "cublas: gemm: %s", cublasGetStatusString(bs));
    if (op->bf16_out) return down_bf16(s, (const bf16 *)dy, M, N, (size_t)N, Y, err);
    cudaError_t e = cudaStreamSynchronize(s->st);
    if (e == cudaSuccess) e = cudaMemcpy(Y, dy, y_bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : fail_cuda(err, "gemm", e);
}

extern "C" int ssf_cuda_op_gemm(int M, int N, int K, const float *X, const float *W, float *Y,
                                ssf_gemm_op *op, ssf_error *err)
{
    ssf_gemm_op tuned = {0, 0, 0, NULL};
    scratch s;
    int rc = scratch_init(&s, 1, err) || run_gemm(&s, M, N, K, X, W, Y, op ? op : &tuned, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* ---- the small GEMMs' own kernel ------------------------------------------------- */

/* ssfk_pgemm's shape for N x K on this device (as the CUDA device plans
 * it), its shared memory opted in. */
static int pgemm_shape(int N, int K, int swiglu, ssf_pgemm_shape *sh, ssf_error *err)
{
    ssfk_pgemm_device dev;
    cudaError_t e = ssfk_pgemm_init(&dev);
    if (e != cudaSuccess) return fail_cuda(err, "ssfk_pgemm_init", e);
    if (ssfk_pgemm_plan(&dev, N, K, swiglu, sh))
        return ssf_fail(err, "cuda: no own-GEMM shape for N %d, K %d%s", N, K,
                        swiglu ? " with SwiGLU's epilogue" : "");
    return 0;
}

/* The partials and the zeroed tile counts a shape asks for. */
static int pgemm_work(scratch *s, const ssf_pgemm_shape *sh, float **part, int **count,
                      ssf_error *err)
{
    *part = sh->partial_floats ? (float *)dev_alloc(s, sh->partial_floats * 4, err) : NULL;
    *count = (int *)dev_zeros(s, (size_t)sh->tiles * sizeof(int), err);
    return (sh->partial_floats && !*part) || !*count ? -1 : 0;
}

/* Three launches, Y's bits all set before the second and third: each must
 * write every element and leave the counts at zero for the next, and all
 * give the same bits. */
static int run_pgemm(scratch *s, int M, int N, int K, int swiglu, const float *X, const float *W,
                     float *Y, ssf_pgemm_shape *sh_out, ssf_error *err)
{
    ssf_pgemm_shape sh;
    float *part = NULL;
    int *count = NULL;
    if (pgemm_shape(N, K, swiglu, &sh, err)) return -1;
    int cols = swiglu ? N / 2 : N; /* Y's */
    bf16 *dx = up_bf16(s, X, (size_t)M * K, err), *dw = up_bf16(s, W, (size_t)N * K, err);
    bf16 *dy = (bf16 *)dev_alloc(s, (size_t)M * cols * 2, err);
    if (!dx || !dw || !dy || pgemm_work(s, &sh, &part, &count, err)) return -1;
    size_t n = (size_t)M * cols;
    float *first = (float *)ssf_xmalloc(n * sizeof(float));
    int rc = 0;
    for (int launch = 0; !rc && launch < 3; launch++) {
        cudaError_t e = launch ? cudaMemsetAsync(dy, 0xff, n * 2, s->st) : cudaSuccess;
        if (e == cudaSuccess) e = ssfk_pgemm(&sh, dx, dw, dy, part, count, M, N, K, NULL, s->st);
        if (e != cudaSuccess) rc = fail_cuda(err, "small GEMM launch", e);
        if (!rc) rc = down_bf16(s, dy, M, cols, (size_t)cols, launch ? Y : first, err);
        if (!rc && launch && memcmp(first, Y, n * sizeof(float)) != 0)
            rc = ssf_fail(err, "cuda: small GEMM launch %d differs from the first", launch + 1);
    }
    free(first);
    *sh_out = sh;
    return rc;
}

extern "C" int ssf_cuda_op_pgemm(int M, int N, int K, int swiglu, const float *X, const float *W,
                                 float *Y, ssf_pgemm_shape *shape, ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) || run_pgemm(&s, M, N, K, swiglu, X, W, Y, shape, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* ---- the paged pool of the op tests -------------------------------------------- */

#define OP_LAYERS 2
#define OP_LAYER 1

typedef struct op_pool {
    ssfk_kv_layout kv; /* fp8: kv.scales is the device copy of hs */
    char *h;           /* host image of the elements (BF16 or e4m3) */
    float *hs;         /* fp8: host image of the scales, one a row */
    void *d;           /* device elements */
    size_t n;          /* elements */
} op_pool;

static size_t elem_bytes(const op_pool *p)
{
    return p->kv.fp8 ? 1 : sizeof(bf16);
}

static size_t scale_count(const op_pool *p)
{
    return p->kv.fp8 ? p->n / (size_t)p->kv.head_dim : 0;
}

static int check_pages(const ssf_cuda_op_pages *pg, int n_ctx, ssf_error *err)
{
    int need = (n_ctx + pg->block_size - 1) / pg->block_size;
    if (pg->block_size < 1 || pg->n_blocks < need)
        return ssf_fail(err, "cuda: %d positions need %d blocks of %d, the pool has %d", n_ctx,
                        need, pg->block_size, pg->n_blocks);
    for (int i = 0; i < need; i++)
        if (pg->table[i] < 0 || pg->table[i] >= pg->n_blocks)
            return ssf_fail(err, "cuda: table entry %d: block %d outside 0..%d", i,
                            (int)pg->table[i], pg->n_blocks - 1);
    return 0;
}

/* Host pool filled with NaN (a stray read poisons the result). */
static void pool_init(op_pool *p, const ssf_cuda_op_pages *pg, int nkv, int hd)
{
    p->kv = ssfk_kv_layout_make(OP_LAYERS, nkv, pg->block_size, hd);
    p->kv.fp8 = pg->fp8 != 0;
    p->n = p->kv.block_stride * (size_t)pg->n_blocks;
    p->h = (char *)ssf_xmalloc(p->n * elem_bytes(p));
    p->hs = p->kv.fp8 ? (float *)ssf_xmalloc(scale_count(p) * sizeof(float)) : NULL;
    bf16 nan = __float2bfloat16(NAN);
    for (size_t i = 0; i < p->n; i++)
        if (p->kv.fp8)
            p->h[i] = 0x7f; /* e4m3 NaN */
        else
            ((bf16 *)p->h)[i] = nan;
    for (size_t i = 0; i < scale_count(p); i++)
        p->hs[i] = NAN;
    p->d = NULL;
}

static void pool_free(op_pool *p)
{
    free(p->h);
    free(p->hs);
}

static float bf16_round(float x)
{
    return __bfloat162float(__float2bfloat16(x));
}

static float from_e4m3(uint8_t b)
{
    __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)b, __NV_E4M3);
    return __half2float(__half(h));
}

/* The e4m3 bytes and scale of a row of hd values as qkv_rope_store writes
 * it: rounded to BF16, scaled by its largest magnitude / 448. */
static float to_fp8_row(const float *x, int hd, uint8_t *out)
{
    float amax = 0.0f;
    for (int d = 0; d < hd; d++)
        amax = fmaxf(amax, fabsf(bf16_round(x[d])));
    float scale = amax > 0.0f ? amax / 448.0f : 1.0f;
    for (int d = 0; d < hd; d++)
        out[d] = __nv_cvt_float_to_fp8(bf16_round(x[d]) / scale, __NV_SATFINITE, __NV_E4M3);
    return scale;
}

extern "C" int ssf_cuda_op_fp8_rows(int n_rows, int hd, const float *x, float *out, ssf_error *err)
{
    (void)err;
    uint8_t *b = (uint8_t *)ssf_xmalloc((size_t)hd);
    for (int r = 0; r < n_rows; r++) {
        float scale = to_fp8_row(x + (size_t)r * hd, hd, b);
        for (int d = 0; d < hd; d++)
            out[(size_t)r * hd + d] = from_e4m3(b[d]) * scale;
    }
    free(b);
    return 0;
}

/* Row x (hd values) into the image at element `at`, as the device stores it. */
static void put_row(op_pool *p, size_t at, const float *x)
{
    int hd = p->kv.head_dim;
    if (p->kv.fp8) {
        p->hs[at / hd] = to_fp8_row(x, hd, (uint8_t *)p->h + at);
        return;
    }
    for (int d = 0; d < hd; d++)
        ((bf16 *)p->h)[at + d] = __float2bfloat16(x[d]);
}

/* The value at element `at` of the image, scaled back from e4m3. */
static float get_value(const op_pool *p, size_t at)
{
    if (p->kv.fp8) return from_e4m3((uint8_t)p->h[at]) * p->hs[at / p->kv.head_dim];
    return __bfloat162float(((const bf16 *)p->h)[at]);
}

/* The image onto the device (elements, and scales into kv.scales). */
static int pool_upload(scratch *s, op_pool *p, ssf_error *err)
{
    p->d = up_raw(s, p->h, p->n * elem_bytes(p), err);
    if (p->kv.fp8) p->kv.scales = (float *)up_raw(s, p->hs, scale_count(p) * sizeof(float), err);
    return p->d && (!p->kv.fp8 || p->kv.scales) ? 0 : -1;
}

static int pool_download(op_pool *p, ssf_error *err)
{
    cudaError_t e = cudaMemcpy(p->h, p->d, p->n * elem_bytes(p), cudaMemcpyDeviceToHost);
    if (e == cudaSuccess && p->kv.fp8)
        e = cudaMemcpy(p->hs, p->kv.scales, scale_count(p) * sizeof(float), cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : fail_cuda(err, "download", e);
}

/* Where value d of KV head h at position t lives (K; V is v_offset on). */
static size_t pool_at(const op_pool *p, const ssf_cuda_op_pages *pg, int t, int h, int d)
{
    const ssfk_kv_layout *kv = &p->kv;
    return (size_t)pg->table[t / kv->block_size] * kv->block_stride + OP_LAYER * kv->layer_stride +
           (size_t)h * kv->head_stride + (size_t)(t % kv->block_size) * kv->head_dim + d;
}

/* The one-sequence tables of the op tests on the device. */
static int op_tables(scratch *s, const ssf_cuda_op_pages *pg, int rows, int n_ctx, ssfk_tables *tb,
                     ssf_error *err)
{
    int need = (n_ctx + pg->block_size - 1) / pg->block_size;
    int32_t *zeros = (int32_t *)ssf_xcalloc((size_t)rows + 1, sizeof(int32_t));
    tb->seq = (const int32_t *)up_raw(s, zeros, (size_t)rows * sizeof(int32_t), err);
    tb->tab_off = (const int32_t *)up_raw(s, zeros, sizeof(int32_t), err);
    free(zeros);
    tb->tab = (const int32_t *)up_raw(s, pg->table, (size_t)need * sizeof(int32_t), err);
    return tb->seq && tb->tab_off && tb->tab ? 0 : -1;
}

static int max_pos(int rows, const int32_t *pos)
{
    int m = 0;
    for (int r = 0; r < rows; r++)
        m = pos[r] > m ? pos[r] : m;
    return m;
}

static int run_rope_store(scratch *s, int rows, int nh, int nkv, int hd, double theta,
                          const float *qkv, const float *bias, const int32_t *pos,
                          const ssf_cuda_op_pages *pg, op_pool *p, float *q_out, ssf_error *err)
{
    int width = (nh + 2 * nkv) * hd, n_ctx = max_pos(rows, pos) + 1;
    float *inv = (float *)ssf_xmalloc((size_t)hd / 2 * sizeof(float));
    ssfk_inv_freq(inv, hd, theta);
    float *dinv = (float *)up_raw(s, inv, (size_t)hd / 2 * sizeof(float), err);
    free(inv);
    ssfk_tables tb;
    int32_t *dpos = (int32_t *)up_raw(s, pos, (size_t)rows * sizeof(int32_t), err);
    bf16 *dqkv = up_bf16(s, qkv, (size_t)rows * width, err);
    float *dbias = bias ? (float *)up_raw(s, bias, (size_t)width * sizeof(float), err) : NULL;
    if (!dinv || !dpos || !dqkv || (bias && !dbias) || pool_upload(s, p, err) ||
        op_tables(s, pg, rows, n_ctx, &tb, err))
        return -1;
    cudaError_t e = ssfk_qkv_rope_store(dqkv, dbias, dpos, tb, dinv, p->d, p->kv, OP_LAYER, rows,
                                        nh, nkv, NULL, s->st);
    if (e != cudaSuccess) return fail_cuda(err, "rope launch", e);
    if (down_bf16(s, dqkv, rows, nh * hd, (size_t)width, q_out, err)) return -1;
    return pool_download(p, err);
}

/* The K and V rows at each row's position, read from the host image. */
static void read_kv(const op_pool *p, const ssf_cuda_op_pages *pg, int rows, int nkv,
                    const int32_t *pos, float *k_out, float *v_out)
{
    int hd = p->kv.head_dim;
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < nkv; h++)
            for (int d = 0; d < hd; d++) {
                size_t at = pool_at(p, pg, pos[r], h, d), o = ((size_t)r * nkv + h) * hd + d;
                k_out[o] = get_value(p, at);
                v_out[o] = get_value(p, at + p->kv.v_offset);
            }
}

extern "C" int ssf_cuda_op_rope_store(int rows, int n_heads, int n_kv, int head_dim, double theta,
                                      const float *qkv, const float *bias, const int32_t *pos,
                                      const ssf_cuda_op_pages *pages, float *q_out, float *k_out,
                                      float *v_out, ssf_error *err)
{
    if (check_pages(pages, max_pos(rows, pos) + 1, err)) return -1;
    scratch s;
    op_pool p;
    pool_init(&p, pages, n_kv, head_dim);
    int rc = scratch_init(&s, 0, err) || run_rope_store(&s, rows, n_heads, n_kv, head_dim, theta,
                                                        qkv, bias, pos, pages, &p, q_out, err);
    if (!rc) read_kv(&p, pages, rows, n_kv, pos, k_out, v_out);
    scratch_free(&s);
    pool_free(&p);
    return rc ? -1 : 0;
}

/* k, v [n_ctx][nkv hd] into the host image through the table. */
static void scatter_kv(op_pool *p, const ssf_cuda_op_pages *pg, int n_ctx, int nkv, const float *k,
                       const float *v)
{
    int hd = p->kv.head_dim;
    for (int t = 0; t < n_ctx; t++)
        for (int h = 0; h < nkv; h++) {
            size_t at = pool_at(p, pg, t, h, 0), i = ((size_t)t * nkv + h) * hd;
            put_row(p, at, k + i);
            put_row(p, at + p->kv.v_offset, v + i);
        }
}

static int device_slots(int hd, int fp8, int *slots, ssf_error *err)
{
    cudaError_t e = ssfk_attention_init();
    if (e == cudaSuccess) e = ssfk_attention_slots(hd, fp8, 0, slots);
    return e == cudaSuccess ? 0 : fail_cuda(err, "attention slots", e);
}

/* The attention kernels' operands on the device: q inside fused q|k|v
 * rows, as the kernels read it (k, v parts unused), the pool, the tables
 * and an output buffer. */
static int attention_io(scratch *s, int rows, int nh, int nkv, int hd, int n_ctx, const float *q,
                        const int32_t *pos, const ssf_cuda_op_pages *pg, op_pool *p,
                        ssfk_attn_io *io, ssf_error *err)
{
    int width = (nh + 2 * nkv) * hd;
    float *qkv = (float *)ssf_xcalloc((size_t)rows * width, sizeof(float));
    for (int r = 0; r < rows; r++)
        memcpy(qkv + (size_t)r * width, q + (size_t)r * nh * hd, (size_t)nh * hd * sizeof(float));
    bf16 *dqkv = up_bf16(s, qkv, (size_t)rows * width, err);
    free(qkv);
    ssfk_tables tb;
    int32_t *dpos = (int32_t *)up_raw(s, pos, (size_t)rows * sizeof(int32_t), err);
    bf16 *dout = (bf16 *)dev_alloc(s, (size_t)rows * nh * hd * 2, err);
    if (!dqkv || !dpos || pool_upload(s, p, err) || !dout ||
        op_tables(s, pg, rows, n_ctx, &tb, err))
        return -1;
    *io = ssfk_attn_io{dout, dqkv, p->d, p->kv, OP_LAYER, dpos, tb, nh, nkv};
    return 0;
}

/* The split workspace a launch shape asks for (NULL without splits); -1
 * when its allocation failed. */
static int split_workspace(scratch *s, const ssf_attn_shape *sh, float **part, ssf_error *err)
{
    *part =
        sh->partial_floats ? (float *)dev_alloc(s, sh->partial_floats * sizeof(float), err) : NULL;
    return sh->partial_floats && !*part ? -1 : 0;
}

static int run_attention(scratch *s, int rows, int nh, int nkv, int hd, int n_ctx, const float *q,
                         const int32_t *pos, const ssf_cuda_op_pages *pg, op_pool *p,
                         const ssf_attn_shape *sh, float *out, ssf_error *err)
{
    ssfk_attn_io io;
    float *part;
    if (split_workspace(s, sh, &part, err) ||
        attention_io(s, rows, nh, nkv, hd, n_ctx, q, pos, pg, p, &io, err))
        return -1;
    /* Twice, the output and the partials NaN (all bits set) before the
     * second launch: an element left unwritten, or a merge that read a
     * partial before it was written, shows as a NaN or as an output unlike
     * the first launch's. */
    size_t n = (size_t)rows * nh * hd;
    float *first = (float *)ssf_xmalloc(n * sizeof(float));
    int rc = 0;
    for (int launch = 0; !rc && launch < 2; launch++) {
        cudaError_t e = cudaSuccess;
        if (launch) e = cudaMemsetAsync(io.out, 0xff, n * sizeof(bf16), s->st);
        if (launch && part && e == cudaSuccess)
            e = cudaMemsetAsync(part, 0xff, sh->partial_floats * sizeof(float), s->st);
        if (e == cudaSuccess) e = ssfk_attention(sh, io, NULL, NULL, part, s->st);
        if (e != cudaSuccess) rc = fail_cuda(err, "attention launch", e);
        if (!rc)
            rc = down_bf16(s, io.out, rows, nh * hd, (size_t)nh * hd, launch ? out : first, err);
    }
    if (!rc && memcmp(first, out, n * sizeof(float)) != 0)
        rc = ssf_fail(err, "cuda: a second attention launch (%d splits) differs from the first",
                      sh->splits);
    free(first);
    return rc;
}

static int plan_op(int rows, int nh, int nkv, int hd, const int32_t *pos,
                   const ssf_cuda_op_pages *pg, int slots, ssf_attn_shape *sh, ssf_error *err)
{
    int block_size = pg->block_size;
    if (slots <= 0 && device_slots(hd, pg->fp8, &slots, err)) return -1;
    if (nkv < 1 || nh % nkv != 0 ||
        ssf_attn_plan(rows, nkv, nh / nkv, max_pos(rows, pos) + 1, hd, block_size, slots, sh))
        return ssf_fail(err, "cuda: no attention plan for %d/%d heads, head_dim %d", nh, nkv, hd);
    return 0;
}

/* The decode kernel over the listed rows of io (n of them, at positions
 * pos[rows[i]]), planned for the device. */
static int decode_rows(scratch *s, ssfk_attn_io io, const int32_t *rows, int n, const int32_t *pos,
                       const ssf_cuda_op_pages *pg, ssf_error *err)
{
    int32_t *at = (int32_t *)ssf_xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        at[i] = pos[rows[i]];
    ssf_attn_shape sh;
    int rc = plan_op(n, io.n_heads, io.n_kv_heads, io.kv.head_dim, at, pg, 0, &sh, err);
    free(at);
    if (rc) return -1;
    int32_t *drows = (int32_t *)up_raw(s, rows, (size_t)n * sizeof(int32_t), err);
    float *part;
    if (!drows || split_workspace(s, &sh, &part, err)) return -1;
    cudaError_t e = ssfk_attention(&sh, io, NULL, drows, part, s->st);
    return e == cudaSuccess ? 0 : fail_cuda(err, "attention launch", e);
}

/* The rows as the engine splits a step's (ssf_prefill_split; the op's rows
 * are one sequence): q-blocks through the prefill kernel, the rest through
 * the decode kernel. */
static int run_prefill(scratch *s, int rows, int nh, int nkv, int hd, int n_ctx, const float *q,
                       const int32_t *pos, const ssf_cuda_op_pages *pg, op_pool *p, float *out,
                       int *n_qblocks, ssf_error *err)
{
    int32_t *seq = (int32_t *)ssf_xcalloc((size_t)rows, sizeof(int32_t));
    int32_t *qb = (int32_t *)ssf_xmalloc((size_t)rows * sizeof(int32_t));
    int32_t *dec = (int32_t *)ssf_xmalloc((size_t)rows * sizeof(int32_t));
    int n_dec = 0, nq = ssf_prefill_split(seq, pos, rows, SSF_PREFILL_MIN_RUN, qb, dec, &n_dec);
    *n_qblocks = nq;
    ssfk_attn_io io;
    int rc = attention_io(s, rows, nh, nkv, hd, n_ctx, q, pos, pg, p, &io, err);
    /* NaN (all bits set) in every row first: a row neither kernel wrote shows */
    cudaError_t fill =
        rc ? cudaSuccess
           : cudaMemsetAsync(io.out, 0xff, (size_t)rows * nh * hd * sizeof(bf16), s->st);
    if (fill != cudaSuccess) rc = fail_cuda(err, "cudaMemsetAsync", fill);
    if (!rc && n_dec > 0) rc = decode_rows(s, io, dec, n_dec, pos, pg, err);
    if (!rc && nq > 0) {
        int32_t *dqb = (int32_t *)up_raw(s, qb, (size_t)nq * 2 * sizeof(int32_t), err);
        cudaError_t e = ssfk_prefill_init();
        if (e == cudaSuccess && dqb) e = ssfk_prefill_attention(io, dqb, nq, s->st);
        rc = !dqb ? -1 : e == cudaSuccess ? 0 : fail_cuda(err, "prefill attention launch", e);
    }
    if (!rc) rc = down_bf16(s, io.out, rows, nh * hd, (size_t)nh * hd, out, err);
    free(seq), free(qb), free(dec);
    return rc;
}

extern "C" int ssf_cuda_op_prefill_attention(int rows, int n_heads, int n_kv, int head_dim,
                                             int n_ctx, const float *q, const float *k,
                                             const float *v, const int32_t *pos,
                                             const ssf_cuda_op_pages *pages, float *out,
                                             int *n_qblocks, ssf_error *err)
{
    for (int r = 0; r < rows; r++)
        if (pos[r] < 0 || pos[r] >= n_ctx)
            return ssf_fail(err, "cuda: attention row %d: position %d outside 0..%d", r,
                            (int)pos[r], n_ctx - 1);
    if (check_pages(pages, n_ctx, err)) return -1;
    op_pool p;
    pool_init(&p, pages, n_kv, head_dim);
    scatter_kv(&p, pages, n_ctx, n_kv, k, v);
    scratch s;
    int nq = 0,
        rc = scratch_init(&s, 0, err) || run_prefill(&s, rows, n_heads, n_kv, head_dim, n_ctx, q,
                                                     pos, pages, &p, out, &nq, err);
    if (n_qblocks) *n_qblocks = nq;
    scratch_free(&s);
    pool_free(&p);
    return rc ? -1 : 0;
}

extern "C" int ssf_cuda_op_attention(int rows, int n_heads, int n_kv, int head_dim, int n_ctx,
                                     const float *q, const float *k, const float *v,
                                     const int32_t *pos, const ssf_cuda_op_pages *pages, int slots,
                                     float *out, int *splits, ssf_error *err)
{
    for (int r = 0; r < rows; r++)
        if (pos[r] < 0 || pos[r] >= n_ctx)
            return ssf_fail(err, "cuda: attention row %d: position %d outside 0..%d", r,
                            (int)pos[r], n_ctx - 1);
    ssf_attn_shape sh;
    if (check_pages(pages, n_ctx, err) ||
        plan_op(rows, n_heads, n_kv, head_dim, pos, pages, slots, &sh, err))
        return -1;
    if (splits) *splits = sh.splits;
    op_pool p;
    pool_init(&p, pages, n_kv, head_dim);
    scatter_kv(&p, pages, n_ctx, n_kv, k, v);
    scratch s;
    int rc = scratch_init(&s, 0, err) || run_attention(&s, rows, n_heads, n_kv, head_dim, n_ctx, q,
                                                       pos, pages, &p, &sh, out, err);
    scratch_free(&s);
    pool_free(&p);
    return rc ? -1 : 0;
}

/* ---- device copy bandwidth --------------------------------------------------------- */

static int time_copies(scratch *s, size_t bytes, int iters, double *gbps, ssf_error *err)
{
    void *a = dev_alloc(s, bytes, err), *b = dev_alloc(s, bytes, err);
    if (!a || !b) return -1;
    cudaEvent_t t0 = NULL, t1 = NULL;
    cudaError_t e = cudaEventCreate(&t0);
    if (e != cudaSuccess) return fail_cuda(err, "cudaEventCreate", e);
    e = cudaEventCreate(&t1);
    if (e != cudaSuccess) t1 = NULL;
    float best = INFINITY;
    for (int i = 0; e == cudaSuccess && i < iters + 1; i++) {
        float ms = 0;
        e = cudaEventRecord(t0, s->st);
        if (e == cudaSuccess) e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s->st);
        if (e == cudaSuccess) e = cudaEventRecord(t1, s->st);
        if (e == cudaSuccess) e = cudaEventSynchronize(t1);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, t0, t1);
        if (i > 0 && ms < best) best = ms; /* the first copy warms up */
    }
    cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (e != cudaSuccess) return fail_cuda(err, "timing a device copy", e);
    *gbps = 2.0 * (double)bytes / (best * 1e-3) / 1e9;
    return 0;
}

extern "C" int ssf_cuda_op_copy_bandwidth(size_t bytes, int iters, double *gb_per_s, ssf_error *err)
{
    if (bytes == 0 || iters < 1) return ssf_fail(err, "cuda: copy bandwidth of nothing");
    scratch s;
    int rc = scratch_init(&s, 0, err) || time_copies(&s, bytes, iters, gb_per_s, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* ---- the order launch_pdl keeps ------------------------------------------------------- */

/* What the two kernels of ssf_cuda_op_pdl_order write. */
typedef struct pdl_probe {
    int flag, seen;
    unsigned long long done_ns, start_ns;
} pdl_probe;

/* An engine kernel's entry, then a spin long enough for the next launch to
 * start early if it can, then the write the next kernel must see. */
__global__ static void pdl_first_kernel(pdl_probe *p, long long spin_ns)
{
    grid_dep_enter();
    if (threadIdx.x != 0) return;
    unsigned long long t0 = global_ns();
    while ((long long)(global_ns() - t0) < spin_ns) {
    }
    *(volatile int *)&p->flag = 1;
    p->done_ns = global_ns();
}

/* Notes when it started (a field the first kernel does not touch), then
 * reads the flag as every engine kernel reads its inputs: after the wait. */
__global__ static void pdl_second_kernel(pdl_probe *p)
{
    if (threadIdx.x != 0) return;
    p->start_ns = global_ns();
    grid_dep_wait();
    p->seen = *(volatile int *)&p->flag;
}

static cudaError_t launch_probe(scratch *s, pdl_probe *p, long long spin_ns)
{
    cudaError_t e = cudaMemsetAsync(p, 0, sizeof *p, s->st);
    if (e == cudaSuccess) e = launch_pdl(pdl_first_kernel, 1, WARP, 0, s->st, p, spin_ns);
    if (e == cudaSuccess) e = launch_pdl(pdl_second_kernel, 1, WARP, 0, s->st, p);
    return e;
}

/* The probe's launches captured into a graph and replayed once. */
static cudaError_t replay_probe(scratch *s, pdl_probe *p, long long spin_ns)
{
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    cudaError_t e = cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return e;
    cudaError_t launched = launch_probe(s, p, spin_ns);
    e = cudaStreamEndCapture(s->st, &g);
    if (launched != cudaSuccess) e = launched;
    if (e == cudaSuccess) e = cudaGraphInstantiate(&x, g, 0);
    if (e == cudaSuccess) e = cudaGraphLaunch(x, s->st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s->st);
    if (x) cudaGraphExecDestroy(x);
    if (g) cudaGraphDestroy(g);
    return e;
}

static cudaError_t read_probe(scratch *s, const pdl_probe *p, pdl_probe *h)
{
    cudaError_t e = cudaMemcpyAsync(h, p, sizeof *h, cudaMemcpyDeviceToHost, s->st);
    return e == cudaSuccess ? cudaStreamSynchronize(s->st) : e;
}

/* Runs the probe on the stream, then from a graph, into h[0] and h[1]. */
static cudaError_t run_probe(scratch *s, pdl_probe *p, long long spin_ns, pdl_probe h[2])
{
    cudaError_t e = launch_probe(s, p, spin_ns);
    if (e == cudaSuccess) e = read_probe(s, p, &h[0]);
    if (e == cudaSuccess) e = replay_probe(s, p, spin_ns);
    if (e == cudaSuccess) e = read_probe(s, p, &h[1]);
    return e;
}

extern "C" int ssf_cuda_op_pdl_order(int spin_us, int *seen, double early_us[2], ssf_error *err)
{
    scratch s;
    pdl_probe h[2];
    int rc = scratch_init(&s, 0, err);
    pdl_probe *p = rc ? NULL : (pdl_probe *)dev_alloc(&s, sizeof *p, err);
    cudaError_t e = p ? run_probe(&s, p, (long long)spin_us * 1000, h) : cudaSuccess;
    if (!p || e != cudaSuccess) {
        rc = p ? fail_cuda(err, "the launch-order probe", e) : -1;
    } else {
        *seen = h[0].seen == 1 && h[1].seen == 1;
        for (int i = 0; i < 2; i++)
            early_us[i] = ((double)h[i].done_ns - (double)h[i].start_ns) / 1e3;
    }
    scratch_free(&s);
    return rc;
}

/* ---- timing on the device's clock --------------------------------------------------- */

/* Mean milliseconds of `iters` calls of launch(i) after two warm-up calls,
 * queued behind ssfk_hold: the device's time, not the host's issue rate. */
template <typename F>
static int time_launches(scratch *s, int iters, F launch, double *ms, ssf_error *err)
{
    cudaEvent_t t0 = NULL, t1 = NULL;
    cudaError_t e = cudaEventCreate(&t0);
    if (e == cudaSuccess) e = cudaEventCreate(&t1);
    for (int i = 0; e == cudaSuccess && i < 2; i++)
        e = launch(i);
    if (e == cudaSuccess) e = ssfk_hold(SSFK_HOLD_NS(iters), s->st);
    if (e == cudaSuccess) e = cudaEventRecord(t0, s->st);
    for (int i = 0; e == cudaSuccess && i < iters; i++)
        e = launch(i);
    if (e == cudaSuccess) e = cudaEventRecord(t1, s->st);
    if (e == cudaSuccess) e = cudaEventSynchronize(t1);
    float total = 0;
    if (e == cudaSuccess) e = cudaEventElapsedTime(&total, t0, t1);
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (e != cudaSuccess) return fail_cuda(err, "timing", e);
    *ms = total / iters;
    return 0;
}

/* ---- sampling -------------------------------------------------------------------------- */

static int run_sample(scratch *s, int rows, int vocab, int n_valid, const float *logits,
                      const ssf_sample_spec *spec, int gather, int32_t *ids, double *kernel_ms,
                      ssf_error *err)
{
    size_t n = (size_t)rows * vocab;
    float *x = (float *)up_raw(s, logits, n * sizeof(float), err);
    ssf_sample_spec *sp = (ssf_sample_spec *)up_raw(s, spec, (size_t)rows * sizeof *spec, err);
    int32_t *d_ids = (int32_t *)dev_alloc(s, (size_t)rows * sizeof(int32_t), err);
    if (!x || !sp || !d_ids) return -1;
    /* every launch draws the same ids: the last one's are read back */
    auto launch = [&](int) {
        return ssfk_sample(d_ids, x, rows, (size_t)vocab, n_valid, sp, gather, s->st);
    };
    double ms = 0;
    if (time_launches(s, 1, launch, &ms, err)) return -1;
    cudaError_t e = cudaMemcpy(ids, d_ids, (size_t)rows * sizeof(int32_t), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) return fail_cuda(err, "sampling", e);
    if (kernel_ms) *kernel_ms = ms;
    return 0;
}

extern "C" int ssf_cuda_op_sample(int rows, int vocab, int n_valid, const float *logits,
                                  const ssf_sample_spec *spec, int gather, int32_t *ids,
                                  double *kernel_ms, ssf_error *err)
{
    if (rows < 1 || n_valid < 1 || n_valid > vocab)
        return ssf_fail(err, "cuda: sampling %d rows of %d ids (%d valid)", rows, vocab, n_valid);
    scratch s;
    int rc = scratch_init(&s, 0, err) ||
             run_sample(&s, rows, vocab, n_valid, logits, spec, gather, ids, kernel_ms, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* ---- timing one operation on device-resident data ------------------------------------ */

/* Weight copies a GEMM timing cycles through: enough that call i + 1 does
 * not find its weights in L2 (50-60 MB on an H100 or H200), as a step's
 * next layer would not. */
#define TIME_WEIGHT_BYTES (160u << 20)
#define TIME_WEIGHT_COPIES 16

/* Zeroed X [M][K] and Y [M][N], and copies of an N x K W for a timing
 * to cycle through (*n_w of them). */
static int timing_operands(scratch *s, int M, int N, int K, bf16 **X, bf16 **Y,
                           const bf16 *ws[TIME_WEIGHT_COPIES], int *n_w, ssf_error *err)
{
    size_t wstride = ((size_t)N * K * 2 + 255) / 256 * 256;
    int n = (int)((TIME_WEIGHT_BYTES + wstride - 1) / wstride);
    *n_w = n > TIME_WEIGHT_COPIES ? TIME_WEIGHT_COPIES : n;
    *X = (bf16 *)dev_zeros(s, (size_t)M * K * 2, err);
    char *Wall = *X ? (char *)dev_zeros(s, wstride * *n_w, err) : NULL;
    *Y = Wall ? (bf16 *)dev_zeros(s, (size_t)M * N * 2, err) : NULL;
    for (int i = 0; Wall && i < *n_w; i++)
        ws[i] = (const bf16 *)(Wall + wstride * i);
    return *Y ? 0 : -1;
}

/* cublasGemmEx timed, then the shape tuned and its choice timed, then
 * tuned again with the split search (the table emptied first) and timed. */
static int run_time_gemm(scratch *s, int M, int N, int K, int iters, ssf_gemm_times *t,
                         ssf_error *err)
{
    bf16 *X, *Y;
    const bf16 *ws[TIME_WEIGHT_COPIES];
    int n_w = 0;
    ssfk_gemm_ctx *g =
        timing_operands(s, M, N, K, &X, &Y, ws, &n_w, err) == 0 ? scratch_gemm(s, err) : NULL;
    if (!g) return -1;
    auto plain = [&](int i) {
        cublasStatus_t b = ssfk_gemm(s->blas, X, ws[i % n_w], Y, CUDA_R_16BF, M, N, K, 0);
        return b == CUBLAS_STATUS_SUCCESS ? cudaGetLastError() : cudaErrorUnknown;
    };
    auto tuned = [&](int i) {
        cublasStatus_t b =
            ssfk_gemm_run(g, s->blas, X, ws[i % n_w], Y, CUDA_R_16BF, M, N, K, 0, s->st);
        return b == CUBLAS_STATUS_SUCCESS ? cudaGetLastError() : cudaErrorUnknown;
    };
    if (time_launches(s, iters, plain, &t->default_ms, err)) return -1;
    double *ms[2] = {&t->tuned_ms, &t->searched_ms};
    const char **how[2] = {&t->tuned, &t->searched};
    for (int search = 0; search < 2; search++) {
        g->n = 0, g->split_search = search;
        if (ssfk_gemm_tune(g, s->blas, X, ws, n_w, Y, CUDA_R_16BF, M, N, K, s->st, err)) return -1;
        *how[search] = ssfk_gemm_how_name(g, M, N, K, CUDA_R_16BF);
        if (time_launches(s, iters, tuned, ms[search], err)) return -1;
    }
    return 0;
}

/* The own kernel timed, launched as the engine launches it (a
 * programmatic dependent of the launch before, here the same GEMM on the
 * next copy of W). */
/* What a fused timing adds: the norm's sums (each row's mean square 1)
 * and gains, or the residual stream and its sums; X doubles as the
 * residual the norm reads. */
static int fuse_operands(scratch *s, int fused, int M, int N, int K, ssfk_pgemm_fuse *fz,
                         ssf_error *err)
{
    *fz = ssfk_pgemm_fuse{NULL, NULL, 1e-6f, NULL, NULL};
    if (fused == SSF_PGEMM_NORM_IN) {
        size_t n = (size_t)K / SSF_PGEMM_KS * SSF_PGEMM_MAX_M;
        float *sums = (float *)ssf_xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            sums[i] = (float)SSF_PGEMM_KS;
        fz->norm_ss = (const float *)up_raw(s, sums, n * sizeof(float), err);
        free(sums);
        fz->gain = fz->norm_ss ? (const bf16 *)dev_zeros(s, (size_t)K * 2, err) : NULL;
        return fz->gain ? 0 : -1;
    }
    if (fused == SSF_PGEMM_RESIDUAL_OUT) {
        fz->res = (bf16 *)dev_zeros(s, (size_t)M * N * 2, err);
        fz->res_ss = (float *)dev_zeros(s, (size_t)N / SSF_PGEMM_BN * SSF_PGEMM_MAX_M * 4, err);
        return fz->res && fz->res_ss ? 0 : -1;
    }
    return 0;
}

static int run_time_pgemm(scratch *s, int M, int N, int K, int swiglu, int fused, int iters,
                          double *ms, ssf_pgemm_shape *sh_out, ssf_error *err)
{
    bf16 *X, *Y;
    const bf16 *ws[TIME_WEIGHT_COPIES];
    int n_w = 0, *count = NULL;
    float *part = NULL;
    ssf_pgemm_shape sh;
    ssfk_pgemm_fuse fz;
    if (pgemm_shape(N, K, swiglu, &sh, err) || timing_operands(s, M, N, K, &X, &Y, ws, &n_w, err) ||
        pgemm_work(s, &sh, &part, &count, err) || fuse_operands(s, fused, M, N, K, &fz, err))
        return -1;
    *sh_out = sh;
    bf16 *out = fused == SSF_PGEMM_RESIDUAL_OUT ? NULL : Y;
    auto own = [&](int i) {
        return ssfk_pgemm(&sh, X, ws[i % n_w], out, part, count, M, N, K, &fz, s->st);
    };
    return time_launches(s, iters, own, ms, err);
}

static int same_pgemm(const ssf_pgemm_shape *a, const ssf_pgemm_shape *b)
{
    return a->bn == b->bn && a->splits == b->splits && a->stages == b->stages;
}

/* One partial workspace and one count array for all the shapes: a launch
 * leaves its tiles' counts at zero for the next. */
static int run_time_pgemm_shapes(scratch *s, int M, int N, int K, int swiglu, int iters,
                                 ssf_pgemm_shape *shapes, double *ms, int max, int *n, int *pick,
                                 ssf_error *err)
{
    ssfk_pgemm_device dev;
    cudaError_t e = ssfk_pgemm_init(&dev);
    if (e != cudaSuccess) return fail_cuda(err, "ssfk_pgemm_init", e);
    int total = ssf_pgemm_shapes(N, K, swiglu, dev.sms, dev.cta_smem, dev.sm_smem, shapes, max);
    *n = total < max ? total : max, *pick = -1;
    ssf_pgemm_shape plan;
    int planned = ssfk_pgemm_plan(&dev, N, K, swiglu, &plan) == 0;
    ssf_pgemm_shape most = {};
    for (int i = 0; i < *n; i++) {
        if (planned && same_pgemm(&shapes[i], &plan)) *pick = i;
        if (shapes[i].partial_floats > most.partial_floats)
            most.partial_floats = shapes[i].partial_floats;
        if (shapes[i].tiles > most.tiles) most.tiles = shapes[i].tiles;
    }
    bf16 *X, *Y;
    const bf16 *ws[TIME_WEIGHT_COPIES];
    int n_w = 0, *count = NULL;
    float *part = NULL;
    if (timing_operands(s, M, N, K, &X, &Y, ws, &n_w, err) ||
        pgemm_work(s, &most, &part, &count, err))
        return -1;
    for (int i = 0; i < *n; i++) {
        const ssf_pgemm_shape *sh = &shapes[i];
        auto own = [&](int c) {
            return ssfk_pgemm(sh, X, ws[c % n_w], Y, part, count, M, N, K, NULL, s->st);
        };
        if (time_launches(s, iters, own, &ms[i], err)) return -1;
    }
    return 0;
}

extern "C" int ssf_cuda_op_time_pgemm_shapes(int M, int N, int K, int swiglu, int iters,
                                             ssf_pgemm_shape *shapes, double *ms, int max, int *n,
                                             int *pick, ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) ||
             run_time_pgemm_shapes(&s, M, N, K, swiglu, iters, shapes, ms, max, n, pick, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

extern "C" int ssf_cuda_op_time_pgemm(int M, int N, int K, int swiglu, int fused, int iters,
                                      double *ms, ssf_pgemm_shape *shape, ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) ||
             run_time_pgemm(&s, M, N, K, swiglu, fused, iters, ms, shape, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

extern "C" int ssf_cuda_op_time_gemm(int M, int N, int K, int iters, ssf_gemm_times *t,
                                     ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 1, err) || run_time_gemm(&s, M, N, K, iters, t, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

/* Block tables on the device for `rows` sequences of `nb` blocks each, on
 * blocks of their own (sequence r's are r nb .. r nb + nb - 1), every row
 * at position `pos` of its sequence; *dpos the rows' positions.  NULL on
 * failure. */
static const int32_t *upload_tables(scratch *s, int rows, int nb, int pos, ssfk_tables *tb,
                                    const int32_t **dpos, ssf_error *err)
{
    size_t n_blocks = (size_t)rows * nb, n = n_blocks + 3 * (size_t)rows;
    int32_t *h = (int32_t *)ssf_xmalloc(n * sizeof(int32_t));
    int32_t *seq = h + n_blocks, *off = seq + rows, *at = off + rows;
    for (size_t i = 0; i < n_blocks; i++)
        h[i] = (int32_t)i;
    for (int r = 0; r < rows; r++)
        seq[r] = r, off[r] = r * nb, at[r] = pos;
    const int32_t *d = (const int32_t *)up_raw(s, h, n * sizeof(int32_t), err);
    free(h);
    if (d) *tb = ssfk_tables{d + n_blocks, d + n_blocks + rows, d}, *dpos = d + n_blocks + 2 * rows;
    return d;
}

/* rows sequences of ctx positions, each on its own blocks, the pool laid
 * out for n_layers layers; call i reads layer i % n_layers, so that
 * consecutive calls do not find their K and V in L2. */
static int run_time_attention(scratch *s, int rows, int nh, int nkv, int hd, int ctx, int n_layers,
                              int bs, const ssf_attn_shape *sh, int iters, double *ms,
                              ssf_error *err)
{
    ssfk_kv_layout kv = ssfk_kv_layout_make(n_layers, nkv, bs, hd);
    int nb = (ctx + bs - 1) / bs;
    size_t n_blocks = (size_t)rows * nb;
    ssfk_tables tb = {NULL, NULL, NULL};
    const int32_t *dpos = NULL;
    const int32_t *d = upload_tables(s, rows, nb, ctx - 1, &tb, &dpos, err);
    bf16 *pool = (bf16 *)dev_zeros(s, kv.block_stride * n_blocks * 2, err);
    bf16 *qkv = (bf16 *)dev_zeros(s, (size_t)rows * (nh + 2 * nkv) * hd * 2, err);
    bf16 *out = (bf16 *)dev_zeros(s, (size_t)rows * nh * hd * 2, err);
    float *part;
    if (!d || !pool || !qkv || !out || split_workspace(s, sh, &part, err)) return -1;
    auto launch = [&](int i) {
        ssfk_attn_io io = {out, qkv, pool, kv, i % n_layers, dpos, tb, nh, nkv};
        return ssfk_attention(sh, io, NULL, NULL, part, s->st);
    };
    return time_launches(s, iters, launch, ms, err);
}

#define SMALL_CTX 1000 /* the RoPE kernel's position + 1 */

/* rows sequences of SMALL_CTX positions on blocks of their own, one layer */
static int run_time_small(scratch *s, int rows, int H, int I, int nh, int nkv, int hd, int iters,
                          double ms[5], ssf_error *err)
{
    const int bs = 16, nb = SMALL_CTX / bs + 1;
    ssfk_kv_layout kv = ssfk_kv_layout_make(1, nkv, bs, hd);
    size_t n_blocks = (size_t)rows * nb, width = (size_t)(nh + 2 * nkv) * hd;
    ssfk_tables tb = {NULL, NULL, NULL};
    const int32_t *dpos = NULL;
    const int32_t *d = upload_tables(s, rows, nb, SMALL_CTX - 1, &tb, &dpos, err);
    float *freq = (float *)ssf_xmalloc((size_t)hd / 2 * sizeof(float));
    ssfk_inv_freq(freq, hd, 1e6);
    float *d_freq = d ? (float *)up_raw(s, freq, (size_t)hd / 2 * sizeof(float), err) : NULL;
    free(freq);
    bf16 *x = (bf16 *)dev_zeros(s, (size_t)rows * H * 2 * 2, err), *add = x + (size_t)rows * H;
    bf16 *w = (bf16 *)dev_zeros(s, (size_t)H * 2, err);
    bf16 *xn = (bf16 *)dev_zeros(s, (size_t)rows * H * 2, err);
    bf16 *gu = (bf16 *)dev_zeros(s, (size_t)rows * I * 3 * 2, err),
         *act = gu + (size_t)rows * 2 * I;
    bf16 *qkv = (bf16 *)dev_zeros(s, (size_t)rows * width * 2, err);
    void *pool = dev_zeros(s, kv.block_stride * n_blocks * 2, err);
    if (!d || !d_freq || !x || !w || !xn || !gu || !qkv || !pool) return -1;
    auto norm = [&](int) { return ssfk_rmsnorm(x, add, w, xn, rows, H, 1e-6f, s->st); };
    auto rope = [&](int) {
        return ssfk_qkv_rope_store(qkv, NULL, dpos, tb, d_freq, pool, kv, 0, rows, nh, nkv, NULL,
                                   s->st);
    };
    auto silu = [&](int) { return ssfk_silu_mul(act, gu, rows, I, 0, NULL, s->st); };
    ssfk_row_norm nm = {x, H, 1e-6f};
    auto rope_folded = [&](int) {
        return ssfk_qkv_rope_store(qkv, NULL, dpos, tb, d_freq, pool, kv, 0, rows, nh, nkv, &nm,
                                   s->st);
    };
    auto silu_folded = [&](int) { return ssfk_silu_mul(act, gu, rows, I, 0, &nm, s->st); };
    return time_launches(s, iters, norm, &ms[0], err) ||
                   time_launches(s, iters, rope, &ms[1], err) ||
                   time_launches(s, iters, silu, &ms[2], err) ||
                   time_launches(s, iters, rope_folded, &ms[3], err) ||
                   time_launches(s, iters, silu_folded, &ms[4], err)
               ? -1
               : 0;
}

extern "C" int ssf_cuda_op_time_small(int rows, int hidden, int inter, int n_heads, int n_kv,
                                      int head_dim, int iters, double ms[5], ssf_error *err)
{
    scratch s;
    int rc = scratch_init(&s, 0, err) ||
             run_time_small(&s, rows, hidden, inter, n_heads, n_kv, head_dim, iters, ms, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}

extern "C" int ssf_cuda_op_time_attention(int rows, int n_heads, int n_kv, int head_dim, int ctx,
                                          int n_layers, int block_size, int chunk, int iters,
                                          double *ms, int *splits, ssf_error *err)
{
    int slots = 0;
    ssf_attn_shape sh;
    if (device_slots(head_dim, 0, &slots, err)) return -1;
    if (n_kv < 1 || n_heads % n_kv ||
        ssf_attn_plan(rows, n_kv, n_heads / n_kv, ctx, head_dim, block_size, slots, &sh))
        return ssf_fail(err, "cuda: no attention plan for %d/%d heads", n_heads, n_kv);
    if (chunk > 0) { /* the split the caller asks for instead of the plan's */
        sh.chunk = chunk;
        sh.splits = sh.grid[2] = (ctx + chunk - 1) / chunk;
        sh.partial_floats = sh.splits > 1 ? (size_t)rows * n_heads * sh.splits * (head_dim + 2) : 0;
    }
    *splits = sh.splits;
    scratch s;
    int rc =
        scratch_init(&s, 0, err) || run_time_attention(&s, rows, n_heads, n_kv, head_dim, ctx,
                                                       n_layers, block_size, &sh, iters, ms, err);
    scratch_free(&s);
    return rc ? -1 : 0;
}
