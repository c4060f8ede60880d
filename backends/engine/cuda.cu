/*
 * cuda.cu - the CUDA engine device: BF16 weights, a contiguous BF16 KV cache
 * [slot][layer][pos][kv_dim] for K and for V, cuBLAS GEMMs with fp32
 * accumulation and the kernels of cuda_kernels.cu.
 *
 * Memory is planned before anything big is allocated: the device's total
 * times --gpu-memory-utilization, less what others already hold, must cover
 * the weights, the activations of max_rows rows, a logits chunk and the
 * cuBLAS workspace; the rest is KV cache (as many slots as fit when n_slots
 * is 0).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_kernels.cuh"
#include "device.h"

/* Rows one forward call accepts: a prefill chunk plus the running samples. */
#define CUDA_MAX_ROWS 1024
/* Logits are produced and copied back this many rows at a time, so the fp32
 * buffer stays at 256 x vocab. */
#define LOGIT_CHUNK 256
#define CUBLAS_WORKSPACE (32u << 20)
/* cudaMalloc rounding, the cuBLAS handle's own buffers, the kernels' modules */
#define MEM_SLACK (256ull << 20)
#define GIB (1024.0 * 1024.0 * 1024.0)

#define CU_TRY(call)                                                                               \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return ssf_fail(err, "cuda: %s failed: %s", #call, cudaGetErrorString(e_));            \
    } while (0)

#define BLAS_TRY(call)                                                                             \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return ssf_fail(err, "cublas: %s failed: %s", #call, cublasGetStatusString(s_));       \
    } while (0)

typedef struct cuda_layer {
    bf16 *attn_norm, *mlp_norm;
    bf16 *wqkv;  /* [q_dim + 2 kv_dim][hidden] */
    float *bqkv; /* [q_dim + 2 kv_dim], NULL without bias */
    bf16 *wo;    /* [hidden][q_dim] */
    bf16 *wgu;   /* [2 inter][hidden]: gate rows then up rows */
    bf16 *wdown; /* [hidden][inter] */
} cuda_layer;

typedef struct cuda_dev {
    ssf_device base; /* first: the scheduler holds a ssf_device * */
    ssf_model_config cfg;
    int ordinal;
    int q_dim, kv_dim, qkv_dim;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;
    /* weights: one allocation */
    char *wmem;
    bf16 *embed, *final_norm, *lm_head; /* lm_head == embed when tied */
    cuda_layer *layers;
    float *inv_freq;
    /* KV cache */
    bf16 *kcache, *vcache;
    ssfk_kv_layout kv;
    /* activations: one allocation */
    char *amem;
    bf16 *x, *xn, *qkv, *att, *tmp, *gu, *h, *xo;
    float *logits;
    int32_t *d_idx; /* token | pos | slot | out_rows, CUDA_MAX_ROWS each */
    int32_t *h_idx; /* pinned staging for d_idx */
} cuda_dev;

/* ---- planning ----------------------------------------------------------------- */

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/* A bump allocator over one cudaMalloc: the sizes are computed first with a
 * NULL base, then again to hand out pointers. */
typedef struct arena {
    char *base;
    size_t used;
} arena;

static void *arena_take(arena *a, size_t bytes)
{
    void *p = a->base ? a->base + a->used : NULL;
    a->used += align256(bytes);
    return p;
}

static void plan_weights(cuda_dev *d, arena *a)
{
    const ssf_model_config *c = &d->cfg;
    size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t V = (size_t)c->vocab_size, B = sizeof(bf16);
    d->embed = (bf16 *)arena_take(a, V * H * B);
    d->lm_head = c->tie_word_embeddings ? d->embed : (bf16 *)arena_take(a, V * H * B);
    d->final_norm = (bf16 *)arena_take(a, H * B);
    d->inv_freq = (float *)arena_take(a, (size_t)c->head_dim / 2 * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        cuda_layer *L = &d->layers[l];
        L->attn_norm = (bf16 *)arena_take(a, H * B);
        L->mlp_norm = (bf16 *)arena_take(a, H * B);
        L->wqkv = (bf16 *)arena_take(a, (size_t)d->qkv_dim * H * B);
        L->bqkv = c->qkv_bias ? (float *)arena_take(a, (size_t)d->qkv_dim * sizeof(float)) : NULL;
        L->wo = (bf16 *)arena_take(a, H * (size_t)d->q_dim * B);
        L->wgu = (bf16 *)arena_take(a, 2 * I * H * B);
        L->wdown = (bf16 *)arena_take(a, H * I * B);
    }
}

static void plan_activations(cuda_dev *d, arena *a)
{
    const ssf_model_config *c = &d->cfg;
    size_t R = CUDA_MAX_ROWS, H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t B = sizeof(bf16);
    d->x = (bf16 *)arena_take(a, R * H * B);
    d->xn = (bf16 *)arena_take(a, R * H * B);
    d->tmp = (bf16 *)arena_take(a, R * H * B);
    d->qkv = (bf16 *)arena_take(a, R * (size_t)d->qkv_dim * B);
    d->att = (bf16 *)arena_take(a, R * (size_t)d->q_dim * B);
    d->gu = (bf16 *)arena_take(a, R * 2 * I * B);
    d->h = (bf16 *)arena_take(a, R * I * B);
    d->xo = (bf16 *)arena_take(a, (size_t)LOGIT_CHUNK * H * B);
    d->logits = (float *)arena_take(a, (size_t)LOGIT_CHUNK * (size_t)c->vocab_size * sizeof(float));
    d->d_idx = (int32_t *)arena_take(a, 4 * R * sizeof(int32_t));
}

/* Bytes one slot of max_context positions takes, K and V. */
static size_t slot_bytes(const cuda_dev *d, int max_context)
{
    return 2 * (size_t)d->cfg.n_layers * (size_t)max_context * (size_t)d->kv_dim * sizeof(bf16);
}

/*
 * Chooses n_slots from the memory left after weights and activations.  The
 * usable share is total x utilisation less what is already in use (vLLM's
 * reading of --gpu-memory-utilization), measured with the context and cuBLAS
 * up.
 */
static int plan_slots(cuda_dev *d, const ssf_device_options *o, size_t wbytes, size_t abytes,
                      ssf_error *err)
{
    size_t free_b, total_b;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    double util = o->gpu_memory_utilization > 0 ? o->gpu_memory_utilization : 0.9;
    double usable = (double)total_b * util - (double)(total_b - free_b);
    if (usable < 0) usable = 0;
    double fixed = (double)wbytes + (double)abytes + (double)CUBLAS_WORKSPACE + (double)MEM_SLACK;
    double per_slot = (double)slot_bytes(d, d->base.max_context);
    int want = o->n_slots > 0 ? o->n_slots : 1;
    if (fixed + per_slot * want > usable)
        return ssf_fail(err,
                        "model needs %.2f GiB (weights %.2f, %d KV slot%s of %d positions %.2f, "
                        "activations %.2f), device has %.2f GiB free at "
                        "--gpu-memory-utilization %.2f",
                        (fixed + per_slot * want) / GIB, (double)wbytes / GIB, want,
                        want == 1 ? "" : "s", d->base.max_context, per_slot * want / GIB,
                        (double)abytes / GIB, usable / GIB, util);
    if (o->n_slots > 0)
        d->base.n_slots = o->n_slots;
    else {
        double fit = floor((usable - fixed) / per_slot);
        d->base.n_slots = fit > INT_MAX / 2 ? INT_MAX / 2 : (int)fit;
    }
    return 0;
}

/* ---- weight upload ---------------------------------------------------------------- */

/* Round to nearest even, as torch's float -> bfloat16. */
static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#define UPLOAD_CHUNK (1 << 22)

/* Copies `numel` elements of t (checked) to dst as BF16, converting F32 and
 * F16 on the host in chunks. */
static int upload_bf16(const ssf_tensor *t, int64_t numel, bf16 *dst, float *fbuf, uint16_t *hbuf,
                       ssf_error *err)
{
    if (!t || t->numel != numel)
        return ssf_fail(err, "cuda: tensor %s has %lld elements, expected %lld",
                        t ? t->name : "(missing)", t ? (long long)t->numel : 0LL, (long long)numel);
    if (t->dtype == SSF_DTYPE_BF16) {
        CU_TRY(cudaMemcpy(dst, t->data, (size_t)numel * 2, cudaMemcpyHostToDevice));
        return 0;
    }
    for (int64_t i = 0; i < numel; i += UPLOAD_CHUNK) {
        int64_t n = numel - i < UPLOAD_CHUNK ? numel - i : UPLOAD_CHUNK;
        ssf_tensor_read_f32(t, i, n, fbuf);
        for (int64_t j = 0; j < n; j++)
            hbuf[j] = f32_to_bf16(fbuf[j]);
        CU_TRY(cudaMemcpy(dst + i, hbuf, (size_t)n * 2, cudaMemcpyHostToDevice));
    }
    return 0;
}

static int upload_f32(const ssf_tensor *t, int64_t numel, float *dst, float *fbuf, ssf_error *err)
{
    if (!t || t->numel != numel)
        return ssf_fail(err, "cuda: tensor %s has %lld elements, expected %lld",
                        t ? t->name : "(missing)", t ? (long long)t->numel : 0LL, (long long)numel);
    if (numel > UPLOAD_CHUNK) return ssf_fail(err, "cuda: bias %s is too large", t->name);
    ssf_tensor_read_f32(t, 0, numel, fbuf);
    CU_TRY(cudaMemcpy(dst, fbuf, (size_t)numel * sizeof(float), cudaMemcpyHostToDevice));
    return 0;
}

static int upload_layer(cuda_dev *d, const ssf_layer_weights *w, cuda_layer *L, float *fbuf,
                        uint16_t *hbuf, ssf_error *err)
{
    int64_t H = d->cfg.hidden_size, I = d->cfg.intermediate_size;
    int64_t Q = d->q_dim, KV = d->kv_dim;
    if (upload_bf16(w->attn_norm, H, L->attn_norm, fbuf, hbuf, err) ||
        upload_bf16(w->mlp_norm, H, L->mlp_norm, fbuf, hbuf, err) ||
        upload_bf16(w->q, Q * H, L->wqkv, fbuf, hbuf, err) ||
        upload_bf16(w->k, KV * H, L->wqkv + Q * H, fbuf, hbuf, err) ||
        upload_bf16(w->v, KV * H, L->wqkv + (Q + KV) * H, fbuf, hbuf, err) ||
        upload_bf16(w->o, H * Q, L->wo, fbuf, hbuf, err) ||
        upload_bf16(w->gate, I * H, L->wgu, fbuf, hbuf, err) ||
        upload_bf16(w->up, I * H, L->wgu + I * H, fbuf, hbuf, err) ||
        upload_bf16(w->down, H * I, L->wdown, fbuf, hbuf, err))
        return -1;
    if (!L->bqkv) return 0;
    if (upload_f32(w->q_bias, Q, L->bqkv, fbuf, err) ||
        upload_f32(w->k_bias, KV, L->bqkv + Q, fbuf, err) ||
        upload_f32(w->v_bias, KV, L->bqkv + Q + KV, fbuf, err))
        return -1;
    return 0;
}

static int upload_inv_freq(cuda_dev *d, ssf_error *err)
{
    int half = d->cfg.head_dim / 2;
    float *f = (float *)ssf_xmalloc((size_t)half * sizeof(float));
    ssfk_inv_freq(f, d->cfg.head_dim, d->cfg.rope_theta);
    cudaError_t e =
        cudaMemcpy(d->inv_freq, f, (size_t)half * sizeof(float), cudaMemcpyHostToDevice);
    free(f);
    if (e != cudaSuccess)
        return ssf_fail(err, "cuda: uploading inv_freq: %s", cudaGetErrorString(e));
    return 0;
}

static int upload_weights(cuda_dev *d, const ssf_model *m, ssf_error *err)
{
    const ssf_model_weights *w = ssf_model_weights_of(m);
    int64_t H = d->cfg.hidden_size, V = d->cfg.vocab_size;
    float *fbuf = (float *)ssf_xmalloc(UPLOAD_CHUNK * sizeof(float));
    uint16_t *hbuf = (uint16_t *)ssf_xmalloc(UPLOAD_CHUNK * sizeof(uint16_t));
    int rc =
        upload_bf16(w->embed, V * H, d->embed, fbuf, hbuf, err) ||
        upload_bf16(w->final_norm, H, d->final_norm, fbuf, hbuf, err) ||
        (d->lm_head != d->embed && upload_bf16(w->lm_head, V * H, d->lm_head, fbuf, hbuf, err));
    for (int l = 0; !rc && l < d->cfg.n_layers; l++)
        rc = upload_layer(d, &w->layers[l], &d->layers[l], fbuf, hbuf, err);
    free(fbuf);
    free(hbuf);
    if (rc) return -1;
    return upload_inv_freq(d, err);
}

/* ---- forward -------------------------------------------------------------------------- */

#define K_TRY(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return ssf_fail(err, "cuda: kernel %s: %s", #call, cudaGetErrorString(e_));            \
    } while (0)

static int check_batch(const cuda_dev *d, const ssf_fwd_batch *b, ssf_error *err)
{
    if (b->n_rows < 0 || b->n_rows > d->base.max_rows)
        return ssf_fail(err, "cuda: batch of %d rows, the device takes 1..%d", b->n_rows,
                        d->base.max_rows);
    if (b->n_out < 0 || b->n_out > d->base.max_rows || (b->n_out > 0 && !b->out_rows))
        return ssf_fail(err, "cuda: %d output rows, the device takes 0..%d", b->n_out,
                        d->base.max_rows);
    for (int r = 0; r < b->n_rows; r++) {
        if (b->token[r] < 0 || b->token[r] >= d->cfg.vocab_size)
            return ssf_fail(err, "cuda: row %d: token %d outside the vocabulary of %d", r,
                            (int)b->token[r], d->cfg.vocab_size);
        if (b->pos[r] < 0 || b->pos[r] >= d->base.max_context)
            return ssf_fail(err, "cuda: row %d: position %d outside the context of %d", r,
                            (int)b->pos[r], d->base.max_context);
        if (b->slot[r] < 0 || b->slot[r] >= d->base.n_slots)
            return ssf_fail(err, "cuda: row %d: slot %d outside 0..%d", r, (int)b->slot[r],
                            d->base.n_slots - 1);
    }
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] < 0 || b->out_rows[i] >= b->n_rows)
            return ssf_fail(err, "cuda: output row %d outside the batch of %d", (int)b->out_rows[i],
                            b->n_rows);
    return 0;
}

static int forward_layer(cuda_dev *d, int l, int rows, const int32_t *pos, const int32_t *slot,
                         ssf_error *err)
{
    const ssf_model_config *c = &d->cfg;
    const cuda_layer *L = &d->layers[l];
    int H = c->hidden_size, I = c->intermediate_size;
    float eps = (float)c->rms_norm_eps;
    /* the previous layer's MLP output joins the residual stream here */
    K_TRY(ssfk_rmsnorm(d->x, l > 0 ? d->tmp : NULL, L->attn_norm, d->xn, rows, H, eps, d->stream));
    BLAS_TRY(ssfk_gemm(d->blas, d->xn, L->wqkv, d->qkv, CUDA_R_16BF, rows, d->qkv_dim, H));
    K_TRY(ssfk_qkv_rope_store(d->qkv, L->bqkv, pos, slot, d->inv_freq, d->kcache, d->vcache, d->kv,
                              l, rows, c->n_heads, c->n_kv_heads, c->head_dim, d->stream));
    K_TRY(ssfk_attention(d->att, d->qkv, d->kcache, d->vcache, pos, slot, d->kv, l, rows,
                         c->n_heads, c->n_kv_heads, c->head_dim, d->stream));
    BLAS_TRY(ssfk_gemm(d->blas, d->att, L->wo, d->tmp, CUDA_R_16BF, rows, H, d->q_dim));
    K_TRY(ssfk_rmsnorm(d->x, d->tmp, L->mlp_norm, d->xn, rows, H, eps, d->stream));
    BLAS_TRY(ssfk_gemm(d->blas, d->xn, L->wgu, d->gu, CUDA_R_16BF, rows, 2 * I, H));
    K_TRY(ssfk_silu_mul(d->h, d->gu, rows, I, d->stream));
    BLAS_TRY(ssfk_gemm(d->blas, d->h, L->wdown, d->tmp, CUDA_R_16BF, rows, H, I));
    return 0;
}

/* Logits of the listed rows, LOGIT_CHUNK at a time, into the host array. */
static int forward_logits(cuda_dev *d, const int32_t *out_rows, int n_out, float *logits,
                          ssf_error *err)
{
    int H = d->cfg.hidden_size, V = d->cfg.vocab_size;
    for (int i = 0; i < n_out; i += LOGIT_CHUNK) {
        int n = n_out - i < LOGIT_CHUNK ? n_out - i : LOGIT_CHUNK;
        K_TRY(ssfk_gather_rows(d->xo, d->xn, out_rows + i, n, H, d->stream));
        BLAS_TRY(ssfk_gemm(d->blas, d->xo, d->lm_head, d->logits, CUDA_R_32F, n, V, H));
        CU_TRY(cudaMemcpyAsync(logits + (size_t)i * V, d->logits, (size_t)n * V * sizeof(float),
                               cudaMemcpyDeviceToHost, d->stream));
        CU_TRY(cudaStreamSynchronize(d->stream));
    }
    return 0;
}

static int cuda_forward(ssf_device *dev, const ssf_fwd_batch *b, float *logits, ssf_error *err)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (check_batch(d, b, err)) return -1;
    int R = b->n_rows, n_out = b->n_out;
    if (R == 0) return 0;
    CU_TRY(cudaSetDevice(d->ordinal)); /* the caller's thread may be new */
    size_t cap = CUDA_MAX_ROWS;
    memcpy(d->h_idx, b->token, (size_t)R * sizeof(int32_t));
    memcpy(d->h_idx + cap, b->pos, (size_t)R * sizeof(int32_t));
    memcpy(d->h_idx + 2 * cap, b->slot, (size_t)R * sizeof(int32_t));
    if (n_out > 0) memcpy(d->h_idx + 3 * cap, b->out_rows, (size_t)n_out * sizeof(int32_t));
    CU_TRY(cudaMemcpyAsync(d->d_idx, d->h_idx, 4 * cap * sizeof(int32_t), cudaMemcpyHostToDevice,
                           d->stream));
    const int32_t *tok = d->d_idx, *pos = d->d_idx + cap, *slot = d->d_idx + 2 * cap;
    K_TRY(ssfk_embed(d->x, d->embed, tok, R, d->cfg.hidden_size, d->stream));
    for (int l = 0; l < d->cfg.n_layers; l++)
        if (forward_layer(d, l, R, pos, slot, err)) return -1;
    K_TRY(ssfk_rmsnorm(d->x, d->tmp, d->final_norm, d->xn, R, d->cfg.hidden_size,
                       (float)d->cfg.rms_norm_eps, d->stream));
    if (forward_logits(d, d->d_idx + 3 * cap, n_out, logits, err)) return -1;
    CU_TRY(cudaStreamSynchronize(d->stream)); /* surfaces faults of any kernel */
    return 0;
}

static int cuda_copy_slot(ssf_device *dev, int src, int dst, int n_tokens, ssf_error *err)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (src < 0 || src >= d->base.n_slots || dst < 0 || dst >= d->base.n_slots)
        return ssf_fail(err, "cuda: copy_slot %d -> %d outside 0..%d", src, dst,
                        d->base.n_slots - 1);
    if (n_tokens < 0 || n_tokens > d->base.max_context)
        return ssf_fail(err, "cuda: copy_slot of %d positions, the context holds %d", n_tokens,
                        d->base.max_context);
    if (src == dst || n_tokens == 0) return 0;
    CU_TRY(cudaSetDevice(d->ordinal));
    size_t bytes = (size_t)n_tokens * (size_t)d->kv_dim * sizeof(bf16);
    for (int l = 0; l < d->cfg.n_layers; l++) {
        size_t s = (size_t)src * d->kv.slot_stride + (size_t)l * d->kv.layer_stride;
        size_t t = (size_t)dst * d->kv.slot_stride + (size_t)l * d->kv.layer_stride;
        CU_TRY(cudaMemcpyAsync(d->kcache + t, d->kcache + s, bytes, cudaMemcpyDeviceToDevice,
                               d->stream));
        CU_TRY(cudaMemcpyAsync(d->vcache + t, d->vcache + s, bytes, cudaMemcpyDeviceToDevice,
                               d->stream));
    }
    CU_TRY(cudaStreamSynchronize(d->stream));
    return 0;
}

/* ---- open / close ---------------------------------------------------------------------- */

static void cuda_close(ssf_device *dev)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (!d) return;
    cudaSetDevice(d->ordinal);
    if (d->stream) cudaStreamSynchronize(d->stream);
    if (d->blas) cublasDestroy(d->blas);
    if (d->stream) cudaStreamDestroy(d->stream);
    cudaFree(d->workspace);
    cudaFree(d->wmem);
    cudaFree(d->kcache);
    cudaFree(d->vcache);
    cudaFree(d->amem);
    cudaFreeHost(d->h_idx);
    free(d->layers);
    free(d);
}

static int check_config(const ssf_model_config *c, ssf_error *err)
{
    if (c->head_dim != 64 && c->head_dim != 128)
        return ssf_fail(err, "cuda: head_dim %d is not supported (64 or 128)", c->head_dim);
    if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads != 0)
        return ssf_fail(err, "cuda: %d heads do not group over %d KV heads", c->n_heads,
                        c->n_kv_heads);
    return 0;
}

static int select_device(int ordinal, ssf_error *err)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return ssf_fail(err, "no CUDA device found; use --device cpu");
    }
    if (ordinal < 0 || ordinal >= n)
        return ssf_fail(err, "CUDA device %d does not exist (%d device%s); choose 0..%d", ordinal,
                        n, n == 1 ? "" : "s", n - 1);
    CU_TRY(cudaSetDevice(ordinal));
    CU_TRY(cudaFree(0)); /* create the context now, so memory figures include it */
    return 0;
}

static int open_runtime(cuda_dev *d, ssf_error *err)
{
    CU_TRY(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking));
    BLAS_TRY(cublasCreate(&d->blas));
    BLAS_TRY(cublasSetStream(d->blas, d->stream));
    CU_TRY(cudaMalloc(&d->workspace, CUBLAS_WORKSPACE));
    BLAS_TRY(cublasSetWorkspace(d->blas, d->workspace, CUBLAS_WORKSPACE));
    CU_TRY(cudaMallocHost((void **)&d->h_idx, 4 * CUDA_MAX_ROWS * sizeof(int32_t)));
    return 0;
}

static int open_memory(cuda_dev *d, const ssf_model *m, const ssf_device_options *o, ssf_error *err)
{
    arena wa = {NULL, 0}, aa = {NULL, 0};
    plan_weights(d, &wa);
    plan_activations(d, &aa);
    if (plan_slots(d, o, wa.used, aa.used, err)) return -1;
    CU_TRY(cudaMalloc((void **)&d->wmem, wa.used));
    CU_TRY(cudaMalloc((void **)&d->amem, aa.used));
    wa = arena{d->wmem, 0};
    aa = arena{d->amem, 0};
    plan_weights(d, &wa);
    plan_activations(d, &aa);
    size_t kv = slot_bytes(d, d->base.max_context) / 2 * (size_t)d->base.n_slots;
    CU_TRY(cudaMalloc((void **)&d->kcache, kv));
    CU_TRY(cudaMalloc((void **)&d->vcache, kv));
    return upload_weights(d, m, err);
}

extern "C" ssf_device *ssf_device_cuda_open(const ssf_model *m, const ssf_device_options *o,
                                            ssf_error *err)
{
    const ssf_model_config *c = ssf_model_config_of(m);
    if (check_config(c, err) || select_device(o->cuda_device, err)) return NULL;
    cuda_dev *d = (cuda_dev *)ssf_xcalloc(1, sizeof *d);
    d->cfg = *c;
    d->ordinal = o->cuda_device;
    d->q_dim = c->n_heads * c->head_dim;
    d->kv_dim = c->n_kv_heads * c->head_dim;
    d->qkv_dim = d->q_dim + 2 * d->kv_dim;
    d->layers = (cuda_layer *)ssf_xcalloc((size_t)c->n_layers, sizeof(cuda_layer));
    d->base.name = "cuda";
    d->base.max_context = o->max_context > 0 ? o->max_context : c->max_position_embeddings;
    d->base.max_rows = CUDA_MAX_ROWS;
    d->base.forward = cuda_forward;
    d->base.copy_slot = cuda_copy_slot;
    d->base.close = cuda_close;
    d->kv.kv_dim = d->kv_dim;
    d->kv.layer_stride = (size_t)d->base.max_context * (size_t)d->kv_dim;
    d->kv.slot_stride = (size_t)c->n_layers * d->kv.layer_stride;
    if (open_runtime(d, err) || open_memory(d, m, o, err)) {
        cuda_close(&d->base);
        return NULL;
    }
    return &d->base;
}

extern "C" int ssf_device_cuda_available(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n > 0;
}
