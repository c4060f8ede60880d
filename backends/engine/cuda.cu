/*
 * cuda.cu - the CUDA engine device: BF16 weights, a paged BF16 KV pool
 * [block][layer][K|V][kv_head][block_size][head_dim] (cuda_kernels.cuh says
 * why that order), cuBLAS GEMMs with fp32 accumulation and the kernels of
 * cuda_kernels.cu.
 *
 * Memory is planned before anything big is allocated: the device's total
 * times --gpu-memory-utilization, less the memory already in use (the
 * context, the cuBLAS workspace and what other processes hold), must cover
 * the weights, the activations of max_rows rows, a logits chunk and the
 * block tables of n_slots sequences; the rest is KV pool (as many blocks as
 * fit when n_blocks is 0).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_gemm.cuh"
#include "cuda_kernels.cuh"
#include "cuda_ops.h"
#include "cuda_plan.h"
#include "device.h"

/* Rows one forward call accepts: a prefill chunk plus the running samples. */
#define CUDA_MAX_ROWS 1024
/* Logits are produced and copied back this many rows at a time, so the fp32
 * buffer stays at 256 x vocab. */
#define LOGIT_CHUNK 256
#define DEFAULT_BLOCK_SIZE 16
/* sequences a step may hold when the options leave it open (and the pool
 * has that many blocks) */
#define DEFAULT_MAX_SEQS 256
/* cudaMalloc rounding, the cuBLAS handle's own buffers, the kernels' modules */
#define MEM_SLACK (256ull << 20)
#define GIB (1024.0 * 1024.0 * 1024.0)
/* Steps whose every row is sampled (decode steps) run as a CUDA graph, one
 * per padded row count: 1, 2, 4, 8, then multiples of 16 up to
 * LOGIT_CHUNK.  A step's ~300 launches (cuBLAS's host work included) cost
 * ~2 ms on the host against ~0.75 ms of weight reads for a 1.5B model on
 * an H200 (measured), which a graph launch replaces. */
#define GRAPH_MAX_ROWS LOGIT_CHUNK
static_assert(GRAPH_MAX_ROWS == SSF_CUDA_GRAPH_MAX_ROWS, "cuda_ops.h tells the benches");
#define GRAPH_BUCKETS (4 + GRAPH_MAX_ROWS / 16)

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
    bf16 *wgu;   /* [2 inter][hidden]: gate rows then up rows (interleaved: gu_block) */
    bf16 *wdown; /* [hidden][inter] */
} cuda_layer;

/* How a step's rows share the attention kernels: all go to the decode
 * kernel, or (flash prefill on, BF16 pool, not a graph step) runs of a
 * sequence's consecutive positions go to the prefill kernel in q-blocks
 * and the rest to the decode kernel (ssf_prefill_split). */
typedef struct attn_step {
    ssf_attn_shape shape;       /* the decode kernel's, for n_decode rows */
    int n_decode;               /* 0: no decode launch */
    const int32_t *decode_rows; /* device; NULL: rows 0 .. n_decode - 1 */
    int n_qblocks;
    const int32_t *qblocks; /* device */
    int rope;               /* RoPE and the KV store in the decode kernel (ssfk_attn_rope) */
} attn_step;

/* The GEMMs of a layer that the own kernel may take, in d->pg's order. */
enum { PG_QKV, PG_O, PG_GU, PG_DOWN, SMALL_GEMMS };
static const char *const small_gemm_names[SMALL_GEMMS] = {"qkv", "o", "gate_up", "down"};

/* A deferred step's ids on their way to the host (cuda_collect). */
typedef struct ids_flight {
    int32_t *dest; /* the caller's ssf_fwd_batch.sampled */
    int n, slot;
    int timed; /* a graph replay between replay_ev[slot]'s two events */
} ids_flight;

/* One captured decode step and what its kernels were launched with. */
typedef struct step_graph {
    cudaGraphExec_t exec; /* NULL until captured */
    ssf_attn_shape shape;
    int n_valid;
    int rope; /* attn_step.rope */
} step_graph;

typedef struct cuda_dev {
    ssf_device base; /* first: the scheduler holds a ssf_device * */
    ssf_model_config cfg;
    int ordinal;
    int q_dim, kv_dim, qkv_dim;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;
    ssfk_gemm_ctx *gemm; /* the GEMM choices, tuned per graph bucket */
    /* weights: one allocation */
    char *wmem;
    bf16 *embed, *final_norm, *lm_head; /* lm_head == embed when tied */
    cuda_layer *layers;
    float *inv_freq;
    float2 *rope_cs; /* a step's angles, [CUDA_MAX_ROWS][head_dim / 2], with attn_rope */
    int attn_slots;  /* attention CTAs the device runs at once (ssfk_attention_slots) */
    /* KV pool */
    char *pool; /* BF16 or e4m3 elements (d->kv.fp8); the scales at d->kv.scales */
    ssfk_kv_layout kv;
    int seq_blocks; /* table entries one sequence of max_context needs */
    int seq_cap;    /* sequences the table buffers hold (>= n_slots) */
    /* activations: one allocation */
    char *amem;
    bf16 *x, *xn, *qkv, *att, *tmp, *gu, *h, *xo;
    float *logits;
    float *part;                      /* split-KV partials, ssf_attn_partial_floats_max */
    int32_t *d_idx;                   /* token | pos | seq | out_rows | sample_rows | decode_rows |
                                         qblocks, CUDA_MAX_ROWS each (IDX_ROW_ARRAYS); then tab_off
                                         [seq_cap + 1] | tab [(seq_cap + 1) x seq_blocks] (the
                                         last sequence: a graph's padding rows) */
    int32_t *h_idx;                   /* pinned staging for d_idx */
    ssf_sample_spec *d_spec, *h_spec; /* [CUDA_MAX_ROWS], h_spec pinned */
    /* sampled ids [CUDA_MAX_ROWS]; h_ids pinned, two slots of as many, the steps taking turns,
     * so that a deferred step's ids land while the next step's are drawn */
    int32_t *d_ids, *h_ids;
    cudaEvent_t ids_ev[2]; /* a slot's ids landed */
    ids_flight flying[2];  /* the deferred steps not yet collected, oldest first */
    int n_flying;
    int prev_samples;      /* rows the last forward drew: what the next one's feed may name */
    cudaEvent_t staged_ev; /* the last forward's staging copies are done (h_idx, h_spec free) */
    /* decode steps as graphs; padding rows write into the pool's extra
     * block scratch_block, which no sequence owns */
    int use_graphs;
    int flash_prefill; /* prompts' runs through the prefill kernel */
    int fp8_flash;     /* ... over an fp8 pool too (SSFK_PREFILL_FP8, fp8_flash_prefill) */
    int pdl;           /* kernels as programmatic dependent launches (ssfk_set_pdl) */
    int attn_rope;     /* decode steps' RoPE in the attention (SSFK_ATTN_ROPE, rope_in_attention) */
    /* the GEMMs of up to SSF_PGEMM_MAX_M rows through ssfk_pgemm (own_mode, an
     * ssf_own_gemms): the shapes (splits 0 where cuBLAS keeps the GEMM; gate|up's writes h
     * through SwiGLU's epilogue), the tuner's verdicts by row count, and the partials and
     * tile counts, which the four take turns with */
    int own_mode;
    ssf_pgemm_shape pg[SMALL_GEMMS];
    ssf_pgemm_verdict own[SSF_PGEMM_MAX_M + 1][SMALL_GEMMS];
    /* gate|up's rows interleaved in blocks of this many of each (pg[PG_GU]'s bn / 2), as
     * its epilogue needs; 0: gate's rows, then up's */
    int gu_block;
    float *pg_part;
    int *pg_count;
    /* the RMSNorms between the own GEMMs fused into them (SSFK_FUSE_NORMS, fuse_norms): the
     * residual add and each 64 columns' sums of squares in o's and down's epilogues, into
     * norm_ss, the norm in gate|up's and the next layer's q|k|v's prologue */
    int fuse_norms;
    float *norm_ss;
    /* the RMSNorms before q|k|v and gate|up folded into their weights (SSFK_FOLD_NORMS,
     * fold_norms): the GEMMs read x, RoPE's and SiLU's kernels scale by 1 / rms, o and down
     * add into x through cuBLAS's beta (forward_layer_folded) */
    int fold_norms;
    /* the cuBLAS tuner's split search (SSFK_GEMM_SPLIT_SEARCH, gemm_split_search) */
    int gemm_split_search;
    int scratch_block;
    step_graph graphs[GRAPH_BUCKETS];
    /* the bucket's GEMM shapes were tuned (before its first capture) */
    int gemm_tuned[GRAPH_BUCKETS];
    int32_t *h_need; /* [seq_cap] table entries the step's rows reach */
    /* graph replays timed on the device (ssf_cuda_time_replays): events around the
     * launch, so the step's time less this is the host's share (staging, launch, sync) */
    cudaEvent_t replay_ev[2][2]; /* per ids slot, read when the step's ids land */
    long replays;
    double replay_ms;
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

/* The int32 staging of one step: eight per-row arrays (token, pos, seq,
 * out_rows, sample_rows, then the decode kernel's rows and the prefill
 * q-blocks when a step splits, and the feed) and the tables. */
#define IDX_ROW_ARRAYS 8
#define IDX_DECODE_ROWS 5
#define IDX_QBLOCKS 6
#define IDX_FEED 7
static size_t idx_ints(const cuda_dev *d)
{
    size_t seqs = (size_t)d->seq_cap + 1; /* + the padding rows' sequence */
    return IDX_ROW_ARRAYS * (size_t)CUDA_MAX_ROWS + seqs * (1 + (size_t)d->seq_blocks);
}

/* The tile counts and the partials ssfk_pgemm needs: the four GEMMs take
 * turns with one set of each. */
static void small_gemm_work(const cuda_dev *d, size_t *tiles, size_t *partial_floats)
{
    *tiles = *partial_floats = 0;
    for (int g = 0; g < SMALL_GEMMS; g++) {
        const ssf_pgemm_shape *sh = &d->pg[g];
        if (sh->splits > 1 && (size_t)sh->tiles > *tiles) *tiles = (size_t)sh->tiles;
        if (sh->partial_floats > *partial_floats) *partial_floats = sh->partial_floats;
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
    d->part = (float *)arena_take(a, ssf_attn_partial_floats_max(d->attn_slots, c->head_dim) * 4);
    size_t angles = d->attn_rope ? R * (size_t)c->head_dim / 2 : 0; /* only the RoPE path's */
    d->rope_cs = (float2 *)arena_take(a, angles * sizeof(float2));
    size_t pg_tiles, pg_floats;
    small_gemm_work(d, &pg_tiles, &pg_floats);
    d->pg_part = (float *)arena_take(a, pg_floats * sizeof(float));
    d->pg_count = (int *)arena_take(a, pg_tiles * sizeof(int));
    size_t groups = (H + SSF_PGEMM_BN - 1) / SSF_PGEMM_BN;
    d->norm_ss = (float *)arena_take(a, groups * SSF_PGEMM_MAX_M * sizeof(float));
    d->d_idx = (int32_t *)arena_take(a, idx_ints(d) * sizeof(int32_t));
    d->d_spec = (ssf_sample_spec *)arena_take(a, R * sizeof(ssf_sample_spec));
    d->d_ids = (int32_t *)arena_take(a, R * sizeof(int32_t));
}

/* A block's K and V, with their scales in fp8 mode. */
static size_t block_bytes(const cuda_dev *d)
{
    return ssfk_kv_block_bytes(d->kv) + ssfk_kv_scale_bytes(d->kv);
}

static int refuse_memory(const cuda_dev *d, int blocks, double fixed, double usable, double util,
                         size_t wbytes, ssf_error *err)
{
    double kv = (double)block_bytes(d) * blocks;
    return ssf_fail(err,
                    "model needs %.2f GiB (weights %.2f, KV %d blocks of %d positions %.2f, "
                    "activations and slack %.2f), device has %.2f GiB at "
                    "--gpu-memory-utilization %.2f",
                    (fixed + kv) / GIB, (double)wbytes / GIB, blocks, d->kv.block_size, kv / GIB,
                    (fixed - (double)wbytes) / GIB, usable / GIB, util);
}

/*
 * Chooses n_blocks from the memory left after weights and activations.  The
 * usable share is total x utilisation less what is already in use (vLLM's
 * reading of --gpu-memory-utilization), measured with the context and cuBLAS
 * up, so the cuBLAS workspace is already counted as in use.  Without
 * n_blocks the pool must hold at least one sequence of max_context.
 */
static int plan_blocks(cuda_dev *d, const ssf_device_options *o, size_t wbytes, size_t abytes,
                       ssf_error *err)
{
    size_t free_b, total_b;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    double util = o->gpu_memory_utilization > 0 ? o->gpu_memory_utilization : 0.9;
    double usable = (double)total_b * util - (double)(total_b - free_b);
    if (usable < 0) usable = 0;
    /* the pool's scratch block (graph padding) counts as fixed */
    double fixed = (double)wbytes + (double)abytes + (double)MEM_SLACK + (double)block_bytes(d);
    double per_block = (double)block_bytes(d);
    int want = o->n_blocks > 0 ? o->n_blocks : d->seq_blocks;
    if (fixed + per_block * want > usable)
        return refuse_memory(d, want, fixed, usable, util, wbytes, err);
    double fit = floor((usable - fixed) / per_block);
    d->base.n_blocks = o->n_blocks > 0 ? o->n_blocks : fit > INT_MAX / 2 ? INT_MAX / 2 : (int)fit;
    d->base.n_slots = o->n_slots > 0
                          ? o->n_slots
                          : (d->base.n_blocks < d->seq_cap ? d->base.n_blocks : d->seq_cap);
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

static int check_numel(const ssf_tensor *t, int64_t numel, ssf_error *err)
{
    if (!t || t->numel != numel)
        return ssf_fail(err, "cuda: tensor %s has %lld elements, expected %lld",
                        t ? t->name : "(missing)", t ? (long long)t->numel : 0LL, (long long)numel);
    return 0;
}

/* Elements [from, from + n) of an F32 or F16 t (n <= UPLOAD_CHUNK) to dst
 * as BF16, converted on the host. */
static int upload_converted(const ssf_tensor *t, int64_t from, int64_t n, bf16 *dst, float *fbuf,
                            uint16_t *hbuf, ssf_error *err)
{
    ssf_tensor_read_f32(t, from, n, fbuf);
    for (int64_t j = 0; j < n; j++)
        hbuf[j] = f32_to_bf16(fbuf[j]);
    CU_TRY(cudaMemcpy(dst, hbuf, (size_t)n * 2, cudaMemcpyHostToDevice));
    return 0;
}

/* Copies `numel` elements of t (checked) to dst as BF16, converting F32 and
 * F16 on the host in chunks. */
static int upload_bf16(const ssf_tensor *t, int64_t numel, bf16 *dst, float *fbuf, uint16_t *hbuf,
                       ssf_error *err)
{
    if (check_numel(t, numel, err)) return -1;
    if (t->dtype == SSF_DTYPE_BF16) {
        CU_TRY(cudaMemcpy(dst, t->data, (size_t)numel * 2, cudaMemcpyHostToDevice));
        return 0;
    }
    for (int64_t i = 0; i < numel; i += UPLOAD_CHUNK) {
        int64_t n = numel - i < UPLOAD_CHUNK ? numel - i : UPLOAD_CHUNK;
        if (upload_converted(t, i, n, dst + i, fbuf, hbuf, err)) return -1;
    }
    return 0;
}

/* upload_bf16 of t's `rows` rows of `cols` in pieces of `block` rows, each
 * `pitch` elements after the one before in dst: gate's or up's half of an
 * interleaved gate|up. */
static int upload_blocks(const ssf_tensor *t, int64_t rows, int64_t cols, int64_t block,
                         int64_t pitch, bf16 *dst, float *fbuf, uint16_t *hbuf, ssf_error *err)
{
    int64_t piece = block * cols;
    if (check_numel(t, rows * cols, err)) return -1;
    if (t->dtype == SSF_DTYPE_BF16) {
        size_t w = (size_t)piece * 2;
        CU_TRY(cudaMemcpy2D(dst, (size_t)pitch * 2, t->data, w, w, (size_t)(rows / block),
                            cudaMemcpyHostToDevice));
        return 0;
    }
    if (piece > UPLOAD_CHUNK) return ssf_fail(err, "cuda: rows of %s are too long", t->name);
    for (int64_t b = 0; b < rows / block; b++)
        if (upload_converted(t, b * piece, piece, dst + b * pitch, fbuf, hbuf, err)) return -1;
    return 0;
}

/* gate's then up's rows into wgu, or, with gu_block, interleaved in blocks
 * of gu_block rows of each (ssfk_pgemm's SwiGLU epilogue). */
static int upload_gate_up(const cuda_dev *d, const ssf_layer_weights *w, bf16 *wgu, float *fbuf,
                          uint16_t *hbuf, ssf_error *err)
{
    int64_t H = d->cfg.hidden_size, I = d->cfg.intermediate_size, b = d->gu_block;
    int rc = b ? upload_blocks(w->gate, I, H, b, 2 * b * H, wgu, fbuf, hbuf, err) ||
                     upload_blocks(w->up, I, H, b, 2 * b * H, wgu + b * H, fbuf, hbuf, err)
               : upload_bf16(w->gate, I * H, wgu, fbuf, hbuf, err) ||
                     upload_bf16(w->up, I * H, wgu + I * H, fbuf, hbuf, err);
    return rc ? -1 : 0;
}

static int upload_f32(const ssf_tensor *t, int64_t numel, float *dst, float *fbuf, ssf_error *err)
{
    if (check_numel(t, numel, err)) return -1;
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
        upload_gate_up(d, w, L->wgu, fbuf, hbuf, err) ||
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

/* Row r's feed: the sample row of the last forward that it names. */
static int check_feed(const cuda_dev *d, const ssf_fwd_batch *b, int r, ssf_error *err)
{
    if (b->feed[r] < -1 || b->feed[r] >= d->prev_samples)
        return ssf_fail(err, "cuda: row %d: fed from sample row %d of a step that drew %d", r,
                        (int)b->feed[r], d->prev_samples);
    return 0;
}

static int check_rows(const cuda_dev *d, const ssf_fwd_batch *b, ssf_error *err)
{
    for (int r = 0; r < b->n_rows; r++) {
        if (b->feed && check_feed(d, b, r, err)) return -1;
        int fed = b->feed && b->feed[r] >= 0; /* token[r] is not read */
        if (!fed && (b->token[r] < 0 || b->token[r] >= d->cfg.vocab_size))
            return ssf_fail(err, "cuda: row %d: token %d outside the vocabulary of %d", r,
                            (int)b->token[r], d->cfg.vocab_size);
        if (b->pos[r] < 0 || b->pos[r] >= d->base.max_context)
            return ssf_fail(err, "cuda: row %d: position %d outside the context of %d", r,
                            (int)b->pos[r], d->base.max_context);
        if (b->seq[r] < 0 || b->seq[r] >= b->n_seqs || !b->tables[b->seq[r]])
            return ssf_fail(err, "cuda: row %d: sequence %d has no table (%d sequences)", r,
                            (int)b->seq[r], b->n_seqs);
    }
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] < 0 || b->out_rows[i] >= b->n_rows)
            return ssf_fail(err, "cuda: output row %d outside the batch of %d", (int)b->out_rows[i],
                            b->n_rows);
    for (int i = 0; i < b->n_sample; i++)
        if (b->sample_rows[i] < 0 || b->sample_rows[i] >= b->n_rows)
            return ssf_fail(err, "cuda: sampled row %d outside the batch of %d",
                            (int)b->sample_rows[i], b->n_rows);
    return 0;
}

static int check_batch(const cuda_dev *d, const ssf_fwd_batch *b, const float *logits,
                       ssf_error *err)
{
    if (b->n_rows < 0 || b->n_rows > d->base.max_rows)
        return ssf_fail(err, "cuda: batch of %d rows, the device takes 1..%d", b->n_rows,
                        d->base.max_rows);
    if (b->n_out < 0 || b->n_out > b->n_rows || (b->n_out > 0 && (!b->out_rows || !logits)))
        return ssf_fail(err, "cuda: %d output rows for a batch of %d", b->n_out, b->n_rows);
    if (b->n_sample < 0 || b->n_sample > b->n_rows ||
        (b->n_sample > 0 && (!b->sample_rows || !b->sample || !b->sampled)))
        return ssf_fail(err, "cuda: %d sampled rows for a batch of %d", b->n_sample, b->n_rows);
    if (b->n_sample > 0 && (b->n_valid < 1 || b->n_valid > d->cfg.vocab_size))
        return ssf_fail(err, "cuda: %d sampleable ids for a vocabulary of %d", (int)b->n_valid,
                        d->cfg.vocab_size);
    if (b->n_rows > 0 && (b->n_seqs < 1 || b->n_seqs > d->seq_cap || !b->tables))
        return ssf_fail(err, "cuda: %d sequences in a step, the device holds 1..%d", b->n_seqs,
                        d->seq_cap);
    if ((b->feed || b->defer) && !d->base.can_defer)
        return ssf_fail(err, "cuda: a fed or deferred step on a device opened without "
                             "overlap_steps");
    if (d->n_flying == 2)
        return ssf_fail(err, "cuda: a step after two deferred ones (collect the oldest first)");
    if (b->defer && b->n_rows == 0) return ssf_fail(err, "cuda: a deferred step of no rows");
    return check_rows(d, b, err);
}

/* The sampled rows' settings. */
static int stage_specs(cuda_dev *d, const ssf_fwd_batch *b, int R_pad, ssf_error *err)
{
    size_t n = (size_t)b->n_sample;
    memcpy(d->h_spec, b->sample, n * sizeof(ssf_sample_spec));
    memset(d->h_spec + n, 0, (size_t)(R_pad - b->n_rows) * sizeof(ssf_sample_spec)); /* greedy */
    n += (size_t)(R_pad - b->n_rows);
    CU_TRY(cudaMemcpyAsync(d->d_spec, d->h_spec, n * sizeof(ssf_sample_spec),
                           cudaMemcpyHostToDevice, d->stream));
    return 0;
}

/* Rows n_rows .. R_pad - 1 of a graph step: token 0 at position 0 of an
 * extra sequence whose one block is the scratch block, sampled greedily;
 * what they compute is thrown away. */
static void stage_padding(cuda_dev *d, const ssf_fwd_batch *b, int R_pad)
{
    size_t cap = CUDA_MAX_ROWS;
    for (int r = b->n_rows; r < R_pad; r++) {
        d->h_idx[r] = 0;
        d->h_idx[cap + r] = 0;
        d->h_idx[2 * cap + r] = b->n_seqs;
        d->h_idx[4 * cap + r] = r;
        d->h_idx[IDX_FEED * cap + r] = -1;
    }
}

/* Each sequence's table entries up to the last block its rows reach
 * (tab_off[s] where they start), every block id checked against the pool;
 * returns the entries written, -1 on a bad id. */
static int stage_tables(cuda_dev *d, const ssf_fwd_batch *b, int padded, ssf_error *err)
{
    int bs = d->kv.block_size;
    for (int s = 0; s < b->n_seqs; s++)
        d->h_need[s] = 0;
    for (int r = 0; r < b->n_rows; r++) {
        int need = b->pos[r] / bs + 1;
        if (need > d->h_need[b->seq[r]]) d->h_need[b->seq[r]] = need;
    }
    int32_t *off = d->h_idx + IDX_ROW_ARRAYS * (size_t)CUDA_MAX_ROWS, *tab = off + d->seq_cap + 1;
    int32_t n = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        off[s] = n;
        for (int i = 0; i < d->h_need[s]; i++, n++) {
            tab[n] = b->tables[s][i];
            if (tab[n] < 0 || tab[n] >= d->base.n_blocks)
                return ssf_fail(err, "cuda: sequence %d: block %d at entry %d outside 0..%d", s,
                                (int)tab[n], i, d->base.n_blocks - 1);
        }
    }
    if (padded) off[b->n_seqs] = n, tab[n++] = d->scratch_block;
    return n;
}

/* Stages token | pos | seq | out_rows | sample_rows (plan_step has put the
 * decode rows and q-blocks beside them), the sampling settings and the
 * tables for R_pad rows (R_pad > n_rows: a graph step's padding). */
static int stage_batch(cuda_dev *d, const ssf_fwd_batch *b, int R_pad, ssf_error *err)
{
    size_t cap = CUDA_MAX_ROWS;
    int R = b->n_rows;
    memcpy(d->h_idx, b->token, (size_t)R * sizeof(int32_t));
    memcpy(d->h_idx + cap, b->pos, (size_t)R * sizeof(int32_t));
    memcpy(d->h_idx + 2 * cap, b->seq, (size_t)R * sizeof(int32_t));
    if (b->n_out > 0) memcpy(d->h_idx + 3 * cap, b->out_rows, (size_t)b->n_out * sizeof(int32_t));
    if (b->n_sample > 0)
        memcpy(d->h_idx + 4 * cap, b->sample_rows, (size_t)b->n_sample * sizeof(int32_t));
    for (int r = 0; r < R; r++)
        d->h_idx[IDX_FEED * cap + r] = b->feed ? b->feed[r] : -1;
    stage_padding(d, b, R_pad);
    if (b->n_sample > 0 && stage_specs(d, b, R_pad, err)) return -1;
    int n = stage_tables(d, b, R_pad > R, err);
    if (n < 0) return -1;
    size_t ints = IDX_ROW_ARRAYS * cap + (size_t)d->seq_cap + 1 + (size_t)n;
    CU_TRY(cudaMemcpyAsync(d->d_idx, d->h_idx, ints * sizeof(int32_t), cudaMemcpyHostToDevice,
                           d->stream));
    CU_TRY(cudaEventRecord(d->staged_ev, d->stream));
    return 0;
}

/* Y = X . W^T (accumulate: Y +=) through the tuned choice for the shape,
 * if any. */
static cublasStatus_t gemm(const cuda_dev *d, const bf16 *X, const bf16 *W, void *Y,
                           cudaDataType_t y_type, int M, int N, int K, int accumulate)
{
    return ssfk_gemm_run(d->gemm, d->blas, X, W, Y, y_type, M, N, K, accumulate, d->stream);
}

/* Whether GEMM g (PG_*) of M rows goes through the own kernel: the device
 * has a shape for it (splits 0: none), the rows fit, and own_mode takes
 * every such GEMM or the tuner chose the kernel at M rows. */
static int own_gemm(const cuda_dev *d, int g, int M)
{
    if (d->pg[g].splits == 0 || M > SSF_PGEMM_MAX_M) return 0;
    return d->own_mode == SSF_OWN_GEMMS_ALWAYS || d->own[M][g].own;
}

/* A small GEMM's operands: Y = X . W^T, X [M][K], Y [M][N] (gate|up: h,
 * [M][N / 2], by either path). */
typedef struct small_io {
    bf16 *X, *Y;
    int N, K;
} small_io;

static small_io small_io_of(const cuda_dev *d, int g)
{
    int H = d->cfg.hidden_size, I = d->cfg.intermediate_size;
    switch (g) {
    case PG_QKV:
        return small_io{d->xn, d->qkv, d->qkv_dim, H};
    case PG_O:
        return small_io{d->att, d->tmp, H, d->q_dim};
    case PG_GU:
        return small_io{d->xn, d->h, 2 * I, H};
    default:
        return small_io{d->h, d->tmp, H, I};
    }
}

static const bf16 *small_weights(const cuda_layer *L, int g)
{
    const bf16 *w[SMALL_GEMMS] = {L->wqkv, L->wo, L->wgu, L->wdown};
    return w[g];
}

/* GEMM g of M rows on weights W through the own kernel (own) or cuBLAS;
 * gate|up's writes h either way: through the kernel's SwiGLU epilogue, or
 * cuBLAS's gate|up and then the SiLU kernel.  fz (the own kernel's only,
 * may be NULL): the norm before fused in, X the residual stream; or the
 * residual add after, into it. */
static int run_small(const cuda_dev *d, int g, int own, const bf16 *W, int M,
                     const ssfk_pgemm_fuse *fz, ssf_error *err)
{
    small_io io = small_io_of(d, g);
    int gu = g == PG_GU;
    if (own) {
        const bf16 *X = fz && fz->norm_ss ? d->x : io.X;
        bf16 *Y = fz && fz->res ? NULL : io.Y;
        K_TRY(ssfk_pgemm(&d->pg[g], X, W, Y, gu ? NULL : d->pg_part, gu ? NULL : d->pg_count, M,
                         io.N, io.K, fz, d->stream));
        return 0;
    }
    if (fz) return ssf_fail(err, "cuda: a norm fused into cuBLAS's %s GEMM", small_gemm_names[g]);
    BLAS_TRY(gemm(d, io.X, W, gu ? d->gu : io.Y, CUDA_R_16BF, M, io.N, io.K, 0));
    if (gu) K_TRY(ssfk_silu_mul(d->h, d->gu, M, io.N / 2, d->gu_block, NULL, d->stream));
    return 0;
}

/* GEMM g of layer L at M rows, by the path own_gemm gives it. */
static int small_gemm(const cuda_dev *d, int g, const cuda_layer *L, int M,
                      const ssfk_pgemm_fuse *fz, ssf_error *err)
{
    return run_small(d, g, own_gemm(d, g, M), small_weights(L, g), M, fz, err);
}

/* Whether the RMSNorm between GEMM a and the GEMM b after it, at M rows,
 * is fused into them (fuse_norms): both must take the own kernel. */
static int fused_norm(const cuda_dev *d, int a, int b, int M)
{
    return d->fuse_norms && own_gemm(d, a, M) && own_gemm(d, b, M);
}

/* Layer l's attention on its q|k|v rows: bias, RoPE (scaled first by a
 * folded norm's 1 / rms, nm) and the KV store, unless the decode kernel
 * does them (as->rope), then the decode and prefill attention into att. */
static int attend(cuda_dev *d, int l, int rows, const int32_t *pos, ssfk_tables tb,
                  const attn_step *as, const ssfk_row_norm *nm, ssf_error *err)
{
    const ssf_model_config *c = &d->cfg;
    const cuda_layer *L = &d->layers[l];
    if (!as->rope)
        K_TRY(ssfk_qkv_rope_store(d->qkv, L->bqkv, pos, tb, d->inv_freq, d->pool, d->kv, l, rows,
                                  c->n_heads, c->n_kv_heads, nm, d->stream));
    ssfk_attn_io io = {d->att, d->qkv, d->pool, d->kv, l, pos, tb, c->n_heads, c->n_kv_heads};
    ssfk_attn_rope rope = {d->rope_cs, L->bqkv};
    if (as->n_decode > 0)
        K_TRY(ssfk_attention(&as->shape, io, as->rope ? &rope : NULL, as->decode_rows, d->part,
                             d->stream));
    K_TRY(ssfk_prefill_attention(io, as->qblocks, as->n_qblocks, d->stream));
    return 0;
}

/* One layer with its two RMSNorms folded into q|k|v's and gate|up's
 * weights (fold_norms): those GEMMs read the residual stream x as it is,
 * RoPE's and SiLU's kernels scale each row by its 1 / rms, and o and down
 * add their output into x through cuBLAS's beta, rounded once.  Four
 * cuBLAS GEMMs and two small kernels besides the attention, where
 * forward_layer launches four. */
static int forward_layer_folded(cuda_dev *d, int l, int rows, const int32_t *pos, ssfk_tables tb,
                                const attn_step *as, ssf_error *err)
{
    const cuda_layer *L = &d->layers[l];
    int H = d->cfg.hidden_size, I = d->cfg.intermediate_size;
    ssfk_row_norm nm = {d->x, H, (float)d->cfg.rms_norm_eps};
    BLAS_TRY(gemm(d, d->x, L->wqkv, d->qkv, CUDA_R_16BF, rows, d->qkv_dim, H, 0));
    if (attend(d, l, rows, pos, tb, as, &nm, err)) return -1;
    BLAS_TRY(gemm(d, d->att, L->wo, d->x, CUDA_R_16BF, rows, H, d->q_dim, 1));
    BLAS_TRY(gemm(d, d->x, L->wgu, d->gu, CUDA_R_16BF, rows, 2 * I, H, 0));
    K_TRY(ssfk_silu_mul(d->h, d->gu, rows, I, d->gu_block, &nm, d->stream));
    BLAS_TRY(gemm(d, d->h, L->wdown, d->x, CUDA_R_16BF, rows, H, I, 1));
    return 0;
}

/* One layer of the staged rows.  A prefetch of the small GEMMs' weights
 * into L2 by the kernels before them (the RMSNorm before q|k|v, the
 * attention before o) was measured and removed: on an H100 it made 1.5B's
 * decode step 7-7.5% slower at batch 64 and 1% slower to 3% faster at 256
 * (bench/README-gpu.md, runs I and N). */
static int forward_layer(cuda_dev *d, int l, int rows, const int32_t *pos, ssfk_tables tb,
                         const attn_step *as, ssf_error *err)
{
    const ssf_model_config *c = &d->cfg;
    const cuda_layer *L = &d->layers[l];
    int H = c->hidden_size;
    float eps = (float)c->rms_norm_eps;
    /* fused, each norm's sums come from the GEMM before's epilogue, which
     * has added its output to the residual stream */
    int fuse_attn = fused_norm(d, PG_DOWN, PG_QKV, rows), fuse_in = l > 0 && fuse_attn;
    int fuse_mlp = fused_norm(d, PG_O, PG_GU, rows);
    ssfk_pgemm_fuse attn_norm = {d->norm_ss, L->attn_norm, eps, NULL, NULL};
    ssfk_pgemm_fuse mlp_norm = {d->norm_ss, L->mlp_norm, eps, NULL, NULL};
    ssfk_pgemm_fuse residual = {NULL, NULL, 0.0f, d->x, d->norm_ss};
    /* the previous layer's MLP output joins the residual stream here */
    if (!fuse_in)
        K_TRY(ssfk_rmsnorm(d->x, l > 0 ? d->tmp : NULL, L->attn_norm, d->xn, rows, H, eps,
                           d->stream));
    if (small_gemm(d, PG_QKV, L, rows, fuse_in ? &attn_norm : NULL, err)) return -1;
    if (attend(d, l, rows, pos, tb, as, NULL, err)) return -1;
    if (small_gemm(d, PG_O, L, rows, fuse_mlp ? &residual : NULL, err)) return -1;
    if (!fuse_mlp) K_TRY(ssfk_rmsnorm(d->x, d->tmp, L->mlp_norm, d->xn, rows, H, eps, d->stream));
    if (small_gemm(d, PG_GU, L, rows, fuse_mlp ? &mlp_norm : NULL, err)) return -1;
    return small_gemm(d, PG_DOWN, L, rows, fuse_attn ? &residual : NULL, err);
}

/* The longest context among the rows listed (all rows when `rows` is NULL). */
static int longest_context(const ssf_fwd_batch *b, const int32_t *rows, int n)
{
    int max_ctx = 1;
    for (int i = 0; i < n; i++) {
        int r = rows ? rows[i] : i;
        max_ctx = b->pos[r] + 1 > max_ctx ? b->pos[r] + 1 : max_ctx;
    }
    return max_ctx;
}

/* Whether no two rows are of one sequence (a decode step's rows): then no
 * row reads a position that another writes in the step.  Marks in h_need,
 * which stage_tables fills afresh. */
static int one_row_a_sequence(cuda_dev *d, const ssf_fwd_batch *b)
{
    for (int s = 0; s < b->n_seqs; s++)
        d->h_need[s] = 0;
    for (int r = 0; r < b->n_rows; r++)
        if (d->h_need[b->seq[r]]++) return 0;
    return 1;
}

/* The step's attention: which rows each kernel takes (staged in h_idx for
 * stage_batch to copy) and the decode kernel's launch shape, which every
 * layer uses.  A graph step is all decode rows, R_pad of them. */
static int plan_step(cuda_dev *d, const ssf_fwd_batch *b, int R_pad, int graph, attn_step *as,
                     ssf_error *err)
{
    size_t cap = CUDA_MAX_ROWS;
    int32_t *decode_rows = d->h_idx + IDX_DECODE_ROWS * cap;
    memset(as, 0, sizeof *as);
    as->n_decode = R_pad;
    if (!graph && d->flash_prefill && (!d->kv.fp8 || d->fp8_flash)) {
        as->n_qblocks = ssf_prefill_split(b->seq, b->pos, b->n_rows, SSF_PREFILL_MIN_RUN,
                                          d->h_idx + IDX_QBLOCKS * cap, decode_rows, &as->n_decode);
        as->qblocks = d->d_idx + IDX_QBLOCKS * cap;
        if (as->n_qblocks > 0) as->decode_rows = d->d_idx + IDX_DECODE_ROWS * cap;
    }
    if (as->n_decode == 0) return 0;
    const ssf_model_config *c = &d->cfg;
    int max_ctx = as->decode_rows ? longest_context(b, decode_rows, as->n_decode)
                                  : longest_context(b, NULL, b->n_rows);
    if (ssf_attn_plan(as->n_decode, c->n_kv_heads, c->n_heads / c->n_kv_heads, max_ctx, c->head_dim,
                      d->kv.block_size, d->attn_slots, &as->shape))
        return ssf_fail(err, "cuda: no attention launch shape for head_dim %d", c->head_dim);
    /* a graph's padding rows share one sequence but only write and read
     * the scratch block's position 0, all with the same values */
    as->rope = d->attn_rope && as->n_qblocks == 0 && as->shape.head_chunks == 1 &&
               one_row_a_sequence(d, b);
    return 0;
}

/* d->logits = fp32 logits of the n (<= LOGIT_CHUNK) final-normed rows
 * listed in rows (device memory). */
static int chunk_logits(cuda_dev *d, const int32_t *rows, int n, ssf_error *err)
{
    int H = d->cfg.hidden_size, V = d->cfg.vocab_size;
    K_TRY(ssfk_gather_rows(d->xo, d->xn, rows, n, H, d->stream));
    BLAS_TRY(gemm(d, d->xo, d->lm_head, d->logits, CUDA_R_32F, n, V, H, 0));
    return 0;
}

/* Logits of the listed rows, LOGIT_CHUNK at a time, into the host array. */
static int forward_logits(cuda_dev *d, const int32_t *out_rows, int n_out, float *logits,
                          ssf_error *err)
{
    int V = d->cfg.vocab_size;
    for (int i = 0; i < n_out; i += LOGIT_CHUNK) {
        int n = n_out - i < LOGIT_CHUNK ? n_out - i : LOGIT_CHUNK;
        if (chunk_logits(d, out_rows + i, n, err)) return -1;
        CU_TRY(cudaMemcpyAsync(logits + (size_t)i * V, d->logits, (size_t)n * V * sizeof(float),
                               cudaMemcpyDeviceToHost, d->stream));
        CU_TRY(cudaStreamSynchronize(d->stream));
    }
    return 0;
}

/* The sampled rows' tokens, LOGIT_CHUNK rows at a time, into d_ids. */
static int enqueue_samples(cuda_dev *d, int n_all, int n_valid, ssf_error *err)
{
    int V = d->cfg.vocab_size;
    const int32_t *rows = d->d_idx + 4 * (size_t)CUDA_MAX_ROWS;
    for (int i = 0; i < n_all; i += LOGIT_CHUNK) {
        int n = n_all - i < LOGIT_CHUNK ? n_all - i : LOGIT_CHUNK;
        if (chunk_logits(d, rows + i, n, err)) return -1;
        K_TRY(ssfk_sample(d->d_ids + i, d->logits, n, (size_t)V, n_valid, d->d_spec + i,
                          SSFK_SAMPLE_GATHER, d->stream));
    }
    return 0;
}

/* The ids slot of the next step: the one no deferred step holds. */
static int free_slot(const cuda_dev *d)
{
    return d->n_flying ? d->flying[d->n_flying - 1].slot ^ 1 : 0;
}

/* A step's ids, landed in their slot, to the caller; its replay's time
 * counted. */
static int land_ids(cuda_dev *d, ids_flight f, ssf_error *err)
{
    if (f.n)
        memcpy(f.dest, d->h_ids + (size_t)f.slot * CUDA_MAX_ROWS, (size_t)f.n * sizeof *f.dest);
    if (f.timed) {
        float ms;
        CU_TRY(cudaEventElapsedTime(&ms, d->replay_ev[f.slot][0], d->replay_ev[f.slot][1]));
        d->replays++, d->replay_ms += ms;
    }
    return 0;
}

/* The ids alone cross to the host, into the step's slot.  A deferred step
 * returns at once (cuda_collect waits); otherwise the synchronisation also
 * surfaces the faults of any kernel of the step. */
static int fetch_samples(cuda_dev *d, const ssf_fwd_batch *b, int timed, ssf_error *err)
{
    ids_flight f = {b->sampled, b->n_sample, free_slot(d), timed};
    if (f.n)
        CU_TRY(cudaMemcpyAsync(d->h_ids + (size_t)f.slot * CUDA_MAX_ROWS, d->d_ids,
                               (size_t)f.n * sizeof(int32_t), cudaMemcpyDeviceToHost, d->stream));
    if (b->defer) {
        CU_TRY(cudaEventRecord(d->ids_ev[f.slot], d->stream));
        d->flying[d->n_flying++] = f;
        return 0;
    }
    CU_TRY(cudaStreamSynchronize(d->stream));
    return land_ids(d, f, err);
}

static int cuda_collect(ssf_device *dev, ssf_error *err)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (d->n_flying == 0) return ssf_fail(err, "cuda: collect with no deferred step queued");
    ids_flight f = d->flying[0];
    d->flying[0] = d->flying[1];
    d->n_flying--;
    CU_TRY(cudaSetDevice(d->ordinal));
    cudaError_t e = cudaEventSynchronize(d->ids_ev[f.slot]);
    if (e != cudaSuccess)
        return ssf_fail(err, "cuda: a deferred step failed: %s", cudaGetErrorString(e));
    return land_ids(d, f, err);
}

/* Embedding, every layer and the final norm of R staged rows. */
static int enqueue_body(cuda_dev *d, int R, const attn_step *as, ssf_error *err)
{
    size_t cap = CUDA_MAX_ROWS;
    const int32_t *tok = d->d_idx, *pos = d->d_idx + cap;
    ssfk_tables tb;
    tb.seq = d->d_idx + 2 * cap;
    tb.tab_off = d->d_idx + IDX_ROW_ARRAYS * cap;
    tb.tab = tb.tab_off + d->seq_cap + 1;
    K_TRY(ssfk_embed(d->x, d->embed, tok, d->d_idx + IDX_FEED * cap, d->d_ids, R,
                     d->cfg.hidden_size, d->stream));
    if (as->rope)
        K_TRY(ssfk_rope_table(d->rope_cs, pos, d->inv_freq, R, d->cfg.head_dim, d->stream));
    for (int l = 0; l < d->cfg.n_layers; l++)
        if ((d->fold_norms ? forward_layer_folded : forward_layer)(d, l, R, pos, tb, as, err))
            return -1;
    /* the last down GEMM's output is in x already when its add was fused
     * or folded */
    const bf16 *last = d->fold_norms || fused_norm(d, PG_DOWN, PG_QKV, R) ? NULL : d->tmp;
    K_TRY(ssfk_rmsnorm(d->x, last, d->final_norm, d->xn, R, d->cfg.hidden_size,
                       (float)d->cfg.rms_norm_eps, d->stream));
    return 0;
}

/* The step after stage_batch queued its indices, launch by launch. */
static int forward_staged(cuda_dev *d, const ssf_fwd_batch *b, const attn_step *as, float *logits,
                          ssf_error *err)
{
    if (enqueue_body(d, b->n_rows, as, err)) return -1;
    if (forward_logits(d, d->d_idx + 3 * (size_t)CUDA_MAX_ROWS, b->n_out, logits, err)) return -1;
    if (b->n_sample > 0 && enqueue_samples(d, b->n_sample, b->n_valid, err)) return -1;
    return fetch_samples(d, b, 0, err);
}

/* ---- decode steps as CUDA graphs ------------------------------------------------------ */

/* A step can replay a graph when every row is sampled, in row order, and
 * its rows fit a bucket. */
static int graph_eligible(const cuda_dev *d, const ssf_fwd_batch *b)
{
    if (!d->use_graphs || b->n_out != 0 || b->n_sample != b->n_rows || b->n_rows > GRAPH_MAX_ROWS)
        return 0;
    for (int i = 0; i < b->n_sample; i++)
        if (b->sample_rows[i] != i) return 0;
    return 1;
}

/* The bucket of n rows and its padded row count. */
static int graph_bucket(int n, int *rows)
{
    if (n <= 8) {
        int i = 0;
        for (*rows = 1; *rows < n; *rows *= 2)
            i++;
        return i;
    }
    *rows = (n + 15) / 16 * 16;
    return 3 + *rows / 16;
}

static int same_shape(const ssf_attn_shape *a, const ssf_attn_shape *b)
{
    return a->group_pad == b->group_pad && a->head_chunks == b->head_chunks &&
           a->splits == b->splits && a->chunk == b->chunk && a->grid[0] == b->grid[0] &&
           a->grid[1] == b->grid[1] && a->grid[2] == b->grid[2] && a->smem == b->smem;
}

/* Records the step's launches into g (replacing what it held). */
static int capture_step(cuda_dev *d, int R, const attn_step *as, int n_valid, step_graph *g,
                        ssf_error *err)
{
    cudaGraph_t graph = NULL;
    CU_TRY(cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal));
    int rc = enqueue_body(d, R, as, err) || enqueue_samples(d, R, n_valid, err);
    cudaError_t e = cudaStreamEndCapture(d->stream, &graph);
    if (rc || e != cudaSuccess) {
        if (graph) cudaGraphDestroy(graph);
        return rc ? -1 : ssf_fail(err, "cuda: capturing a decode step: %s", cudaGetErrorString(e));
    }
    if (g->exec) cudaGraphExecDestroy(g->exec);
    g->exec = NULL;
    e = cudaGraphInstantiate(&g->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        g->exec = NULL;
        return ssf_fail(err, "cuda: instantiating a decode step graph: %s", cudaGetErrorString(e));
    }
    g->shape = as->shape;
    g->n_valid = n_valid;
    g->rope = as->rope;
    return 0;
}

/* The own kernel against cuBLAS (own_small_gemms tuned; cuda_plan.h). */
#define OWN_PROBE_SEED 0x5eed
#define OWN_TIME_ROUNDS 3

/* GEMM g of M rows on W by cuBLAS's path into y[0 .. ny) and by the own
 * kernel into y[ny .. 2 ny), each on the host's probe X, [M][K].  Before
 * each path its output and X are filled with NaN, so that an element a
 * path leaves unwritten disagrees, and X is then written by the row
 * gather, a programmatic dependent launch as the kernel before a step's
 * GEMM is, so that an X read before the kernel's wait may show; it gathers
 * from a copy in the logits buffer, which a step rewrites. */
static int queue_probe(cuda_dev *d, int g, int M, const bf16 *W, const uint16_t *x, uint16_t *y,
                       size_t ny, ssf_error *err)
{
    small_io io = small_io_of(d, g);
    size_t nx = (size_t)M * (size_t)io.K;
    size_t room = (size_t)LOGIT_CHUNK * (size_t)d->cfg.vocab_size * sizeof(float);
    if (nx * sizeof(bf16) + SSF_PGEMM_MAX_M * sizeof(int32_t) > room)
        return ssf_fail(err,
                        "cuda: the own GEMM's %d x %d probe does not fit the logits buffer; "
                        "use --own-small-gemms never",
                        M, io.K);
    bf16 *staged = (bf16 *)d->logits;
    int32_t *rows = (int32_t *)(staged + nx); /* K is whole slices: 4-byte aligned */
    int32_t idx[SSF_PGEMM_MAX_M];
    for (int i = 0; i < M; i++)
        idx[i] = i;
    /* pageable sources: staged before the calls return */
    CU_TRY(cudaMemcpyAsync(staged, x, nx * sizeof(bf16), cudaMemcpyHostToDevice, d->stream));
    CU_TRY(
        cudaMemcpyAsync(rows, idx, (size_t)M * sizeof(int32_t), cudaMemcpyHostToDevice, d->stream));
    for (int own = 0; own <= 1; own++) {
        CU_TRY(cudaMemsetAsync(io.Y, 0xff, ny * sizeof(bf16), d->stream));
        CU_TRY(cudaMemsetAsync(io.X, 0xff, nx * sizeof(bf16), d->stream));
        K_TRY(ssfk_gather_rows(io.X, staged, rows, M, io.K, d->stream));
        if (run_small(d, g, own, W, M, NULL, err)) return -1;
        CU_TRY(cudaMemcpyAsync(y + (size_t)own * ny, io.Y, ny * sizeof(bf16),
                               cudaMemcpyDeviceToHost, d->stream));
    }
    return 0;
}

/* queue_probe, finished: also when it fails part-way, since copies from
 * the caller's x may still be queued. */
static int probe_paths(cuda_dev *d, int g, int M, const bf16 *W, const uint16_t *x, uint16_t *y,
                       size_t ny, ssf_error *err)
{
    int rc = queue_probe(d, g, M, W, x, y, ny, err);
    cudaError_t e = cudaStreamSynchronize(d->stream);
    if (rc) return -1;
    if (e != cudaSuccess)
        return ssf_fail(err, "cuda: the own GEMM's probe: %s", cudaGetErrorString(e));
    return 0;
}

/* Whether the own kernel's GEMM g of M rows on W agrees with cuBLAS's
 * (ssf_pgemm_agrees) on a probe X. */
static int own_agrees(cuda_dev *d, int g, int M, const bf16 *W, int *agrees, double *worst,
                      ssf_error *err)
{
    small_io io = small_io_of(d, g);
    size_t nx = (size_t)M * (size_t)io.K;
    size_t ny = (size_t)M * (size_t)(g == PG_GU ? io.N / 2 : io.N);
    uint16_t *x = (uint16_t *)ssf_xmalloc(nx * sizeof *x);
    uint16_t *y = (uint16_t *)ssf_xmalloc(2 * ny * sizeof *y);
    ssf_pgemm_probe(x, nx, OWN_PROBE_SEED + (uint32_t)g);
    int rc = probe_paths(d, g, M, W, x, y, ny, err);
    if (!rc) *agrees = ssf_pgemm_agrees(y, y + ny, ny, worst);
    free(x);
    free(y);
    return rc;
}

/* A graph of GEMM g at M rows by one path, a call on each layer's weights
 * in turn: replayed, it runs as a step's graph does, without the host's
 * launch costs and with the own kernels' programmatic edges. */
static int capture_path(cuda_dev *d, int g, int own, int M, const bf16 *const *W, int n_w,
                        cudaGraphExec_t *exec, ssf_error *err)
{
    cudaGraph_t graph = NULL;
    CU_TRY(cudaStreamBeginCapture(d->stream, cudaStreamCaptureModeThreadLocal));
    int rc = 0;
    for (int i = 0; !rc && i < n_w; i++)
        rc = run_small(d, g, own, W[i], M, NULL, err);
    cudaError_t e = cudaStreamEndCapture(d->stream, &graph);
    if (!rc && e == cudaSuccess) e = cudaGraphInstantiate(exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (rc) return -1;
    if (e != cudaSuccess) {
        *exec = NULL;
        return ssf_fail(err, "cuda: capturing the own GEMM's timing: %s", cudaGetErrorString(e));
    }
    return 0;
}

/* The ms one replay of exec takes. */
static int replay_timed(cuda_dev *d, cudaGraphExec_t exec, cudaEvent_t ev[2], float *ms,
                        ssf_error *err)
{
    CU_TRY(cudaEventRecord(ev[0], d->stream));
    CU_TRY(cudaGraphLaunch(exec, d->stream));
    CU_TRY(cudaEventRecord(ev[1], d->stream));
    CU_TRY(cudaEventSynchronize(ev[1]));
    CU_TRY(cudaEventElapsedTime(ms, ev[0], ev[1]));
    return 0;
}

/* ms[0]: a call of cuBLAS's path for GEMM g at M rows, ms[1]: of the own
 * kernel, each the fastest of OWN_TIME_ROUNDS replays of its graph over
 * every layer, the paths in turn.  A layer's weights are read again only
 * after all the others' by both paths: from memory, as in a step, unless
 * the GEMM's weights of all layers fit in L2 together (1.5B's smallest,
 * o, are 132 MB; an H100's L2 50 MB), when both paths read them warm. */
static int time_small(cuda_dev *d, int g, int M, const bf16 *const *W, int n_w, float ms[2],
                      ssf_error *err)
{
    cudaGraphExec_t exec[2] = {NULL, NULL};
    cudaEvent_t ev[2] = {NULL, NULL};
    int rc = capture_path(d, g, 0, M, W, n_w, &exec[0], err) ||
             capture_path(d, g, 1, M, W, n_w, &exec[1], err);
    if (!rc && (cudaEventCreate(&ev[0]) != cudaSuccess || cudaEventCreate(&ev[1]) != cudaSuccess))
        rc = ssf_fail(err, "cuda: creating the own GEMM's timing events");
    ms[0] = ms[1] = INFINITY;
    for (int r = 0; !rc && r < OWN_TIME_ROUNDS; r++)
        for (int own = 0; !rc && own <= 1; own++) {
            float t = INFINITY;
            rc = replay_timed(d, exec[own], ev, &t, err);
            ms[own] = fminf(ms[own], t / (float)n_w);
        }
    for (int i = 0; i < 2; i++) {
        if (exec[i]) cudaGraphExecDestroy(exec[i]);
        if (ev[i]) cudaEventDestroy(ev[i]);
    }
    return rc ? -1 : 0;
}

/* The verdict on the own kernel for GEMM g at M rows: checked against
 * cuBLAS's output, timed against cuBLAS's tuned path, and taken where it
 * agrees and wins.  It synchronises the stream and overwrites the GEMM's
 * X and output, which a step computes afresh (tune_gemms). */
static int judge_own(cuda_dev *d, int g, int M, const bf16 *const *W, int n_w, ssf_error *err)
{
    int agrees = 0;
    double worst = INFINITY;
    float ms[2];
    if (own_agrees(d, g, M, W[0], &agrees, &worst, err) || time_small(d, g, M, W, n_w, ms, err))
        return -1;
    ssf_pgemm_verdict *v = &d->own[M][g];
    v->tuned = 1;
    v->agrees = agrees;
    v->worst = worst;
    v->blas_ms = ms[0];
    v->own_ms = ms[1];
    v->own = agrees && ssf_pgemm_wins(ms[1], ms[0]);
    return 0;
}

/*
 * Times the GEMM choices of a graph step of R rows (cuda_gemm.cuh), before
 * its first capture: tuning synchronises the stream, which capture forbids.
 * It runs on the step's scratch activations after stage_batch queued its
 * copies, which it does not touch: the GEMMs write q|k|v, tmp, gu, h and
 * logits, and judge_own's probes xn, att and h, all recomputed by the
 * step.  The layers' weights take turns, so that the timing reads them
 * from memory as a step does, not from L2.  With own_small_gemms tuned,
 * each GEMM the own kernel has a plan for is judged at R rows too.
 */
static int tune_gemms(cuda_dev *d, int R, ssf_error *err)
{
    const ssf_model_config *c = &d->cfg;
    int nl = c->n_layers;
    const bf16 **w = (const bf16 **)ssf_xmalloc(SMALL_GEMMS * (size_t)nl * sizeof *w);
    for (int g = 0; g < SMALL_GEMMS; g++)
        for (int l = 0; l < nl; l++)
            w[g * nl + l] = small_weights(&d->layers[l], g);
    int rc = 0;
    for (int g = 0; !rc && g < SMALL_GEMMS; g++) {
        /* a GEMM the own kernel takes every time needs no cuBLAS choice */
        if (d->own_mode == SSF_OWN_GEMMS_ALWAYS && own_gemm(d, g, R)) continue;
        small_io io = small_io_of(d, g);
        rc = ssfk_gemm_tune(d->gemm, d->blas, io.X, w + g * nl, nl, g == PG_GU ? d->gu : io.Y,
                            CUDA_R_16BF, R, io.N, io.K, d->stream, err);
        if (!rc && d->own_mode == SSF_OWN_GEMMS_TUNED && d->pg[g].splits && R <= SSF_PGEMM_MAX_M)
            rc = judge_own(d, g, R, w + g * nl, nl, err);
    }
    const bf16 *lm = d->lm_head;
    rc = rc || ssfk_gemm_tune(d->gemm, d->blas, d->xo, &lm, 1, d->logits, CUDA_R_32F, R,
                              c->vocab_size, c->hidden_size, d->stream, err);
    free(w);
    return rc ? -1 : 0;
}

/* Replays the bucket's graph, captured again when the attention's launch
 * shape (its splits follow the longest context) or n_valid changed; the
 * bucket's GEMMs are tuned before its first capture. */
static int forward_graph(cuda_dev *d, const ssf_fwd_batch *b, int bucket, int R_pad,
                         const attn_step *as, ssf_error *err)
{
    step_graph *g = &d->graphs[bucket];
    if (!d->gemm_tuned[bucket]) {
        if (tune_gemms(d, R_pad, err)) return -1;
        d->gemm_tuned[bucket] = 1;
    }
    if (!g->exec || !same_shape(&g->shape, &as->shape) || g->n_valid != b->n_valid ||
        g->rope != as->rope)
        if (capture_step(d, R_pad, as, b->n_valid, g, err)) return -1;
    cudaEvent_t *ev = d->replay_ev[free_slot(d)]; /* fetch_samples's */
    int timed = d->replay_ev[1][1] != NULL;       /* made last */
    if (timed) CU_TRY(cudaEventRecord(ev[0], d->stream));
    CU_TRY(cudaGraphLaunch(g->exec, d->stream));
    if (timed) CU_TRY(cudaEventRecord(ev[1], d->stream));
    return fetch_samples(d, b, timed, err);
}

static int cuda_forward(ssf_device *dev, const ssf_fwd_batch *b, float *logits, ssf_error *err)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (check_batch(d, b, logits, err)) return -1;
    if (b->n_rows == 0) {
        d->prev_samples = 0; /* the next step's feed names this one's draws: none */
        return 0;
    }
    int graph = graph_eligible(d, b), R_pad = b->n_rows, bucket = 0;
    if (graph) bucket = graph_bucket(b->n_rows, &R_pad);
    attn_step as;
    CU_TRY(cudaSetDevice(d->ordinal)); /* the caller's thread may be new */
    /* plan_step and stage_batch rewrite h_idx and h_spec, which the last
     * step's copies may still read (a deferred step queued behind another) */
    CU_TRY(cudaEventSynchronize(d->staged_ev));
    d->prev_samples = 0; /* a failed step feeds none */
    if (plan_step(d, b, R_pad, graph, &as, err)) return -1;
    ssfk_set_pdl(d->pdl); /* process-wide: the device that launches sets it */
    int rc = stage_batch(d, b, R_pad, err);
    if (!rc)
        rc = graph ? forward_graph(d, b, bucket, R_pad, &as, err)
                   : forward_staged(d, b, &as, logits, err);
    if (rc) {
        /* a copy from h_idx may still be pending: the next forward must not
         * overwrite it; the error already reported wins over this one */
        (void)cudaStreamSynchronize(d->stream);
        return -1;
    }
    d->prev_samples = b->n_sample;
    return 0;
}

/* One contiguous copy a pair: a block holds every layer's K and V. */
static int cuda_copy_blocks(ssf_device *dev, const ssf_block_copy *c, int n, ssf_error *err)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (n < 0 || (n > 0 && !c)) return ssf_fail(err, "cuda: copy_blocks of %d pairs", n);
    for (int i = 0; i < n; i++)
        if (c[i].src < 0 || c[i].src >= d->base.n_blocks || c[i].dst < 0 ||
            c[i].dst >= d->base.n_blocks)
            return ssf_fail(err, "cuda: copy_blocks %d -> %d outside 0..%d", (int)c[i].src,
                            (int)c[i].dst, d->base.n_blocks - 1);
    if (n <= 0) return 0;
    CU_TRY(cudaSetDevice(d->ordinal));
    size_t bytes = ssfk_kv_block_bytes(d->kv), scale_bytes = ssfk_kv_scale_bytes(d->kv);
    for (int i = 0; i < n; i++) {
        if (c[i].src == c[i].dst) continue;
        CU_TRY(cudaMemcpyAsync(d->pool + (size_t)c[i].dst * bytes,
                               d->pool + (size_t)c[i].src * bytes, bytes, cudaMemcpyDeviceToDevice,
                               d->stream));
        if (d->kv.fp8)
            CU_TRY(cudaMemcpyAsync((char *)d->kv.scales + (size_t)c[i].dst * scale_bytes,
                                   (char *)d->kv.scales + (size_t)c[i].src * scale_bytes,
                                   scale_bytes, cudaMemcpyDeviceToDevice, d->stream));
    }
    /* ordered before the next forward on the same stream, and not waited
     * for: a deferred step may still run, and a copy's fault shows at the
     * next wait (a forward's or collect's) */
    return 0;
}

/* ---- open / close ---------------------------------------------------------------------- */

/* The name of a tuned shape's GEMM: one of the layer's, or lm_head. */
static const char *gemm_name(const cuda_dev *d, const ssfk_gemm_choice *c)
{
    if (c->y_type == CUDA_R_32F) return "lm_head";
    for (int g = 0; g < SMALL_GEMMS; g++) {
        small_io io = small_io_of(d, g);
        if (c->N == io.N && c->K == io.K) return small_gemm_names[g];
    }
    return "gemm";
}

/* The own GEMM's verdicts at every graph's rows the tuner judged, then
 * the tuned cuBLAS shapes that split K (ssf_gemm_split_report, by rows),
 * "; " between; the length as snprintf counts it. */
static size_t cuda_report(const ssf_device *dev, char *buf, size_t n)
{
    const cuda_dev *d = (const cuda_dev *)dev;
    size_t used = ssf_pgemm_report(buf, n, &d->own[0][0], SSF_PGEMM_MAX_M + 1, SMALL_GEMMS);
    ssf_gemm_split_pick picks[SSFK_GEMM_TABLE];
    int count = 0;
    /* the table holds buckets in the order they were first captured */
    for (int R = 1; d->gemm && R <= CUDA_MAX_ROWS; R++)
        for (int i = 0; i < d->gemm->n; i++) {
            const ssfk_gemm_choice *c = &d->gemm->tab[i];
            if (c->M == R)
                picks[count++] = ssf_gemm_split_pick{gemm_name(d, c), R, c->lt ? c->splits : 1};
        }
    size_t k = ssf_gemm_split_report(NULL, 0, picks, count);
    if (k == 0) return used;
    if (used > 0)
        used += (size_t)snprintf(used < n ? buf + used : NULL, used < n ? n - used : 0, "; ");
    ssf_gemm_split_report(used < n ? buf + used : NULL, used < n ? n - used : 0, picks, count);
    return used + k;
}

static void cuda_close(ssf_device *dev)
{
    cuda_dev *d = (cuda_dev *)dev;
    if (!d) return;
    cudaSetDevice(d->ordinal);
    if (d->stream) cudaStreamSynchronize(d->stream);
    for (int i = 0; i < GRAPH_BUCKETS; i++)
        if (d->graphs[i].exec) cudaGraphExecDestroy(d->graphs[i].exec);
    if (d->blas) cublasDestroy(d->blas);
    if (d->gemm) ssfk_gemm_ctx_free(d->gemm);
    free(d->gemm);
    if (d->stream) cudaStreamDestroy(d->stream);
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++)
            if (d->replay_ev[i][j]) cudaEventDestroy(d->replay_ev[i][j]);
        if (d->ids_ev[i]) cudaEventDestroy(d->ids_ev[i]);
    }
    if (d->staged_ev) cudaEventDestroy(d->staged_ev);
    cudaFree(d->workspace);
    cudaFree(d->wmem);
    cudaFree(d->pool);
    cudaFree(d->kv.scales);
    cudaFree(d->amem);
    cudaFreeHost(d->h_idx);
    cudaFreeHost(d->h_spec);
    cudaFreeHost(d->h_ids);
    free(d->h_need);
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

/* The kernels need sm_80 (BF16 MMA, cp.async) and opt in to
 * ssf_attn_smem bytes of shared memory a block: refuse an older device with
 * its name rather than fail at the first launch. */
static int check_capability(int ordinal, int head_dim, ssf_error *err)
{
    cudaDeviceProp p;
    CU_TRY(cudaGetDeviceProperties(&p, ordinal));
    if (p.major < 8)
        return ssf_fail(err,
                        "CUDA device %d (%s) has compute capability %d.%d; the engine needs 8.0 "
                        "or newer (A100, RTX 30xx and later); use --device cpu",
                        ordinal, p.name, p.major, p.minor);
    if (p.sharedMemPerBlockOptin < ssf_attn_smem(head_dim))
        return ssf_fail(err,
                        "CUDA device %d (%s) allows %zu bytes of shared memory a block; the "
                        "attention needs %zu; use --device cpu",
                        ordinal, p.name, p.sharedMemPerBlockOptin, ssf_attn_smem(head_dim));
    return 0;
}

/* The own kernel's shapes on this device for q|k|v, o, gate|up (with
 * SwiGLU's epilogue, its rows then uploaded interleaved) and down; a GEMM
 * it has none for (splits 0) stays cuBLAS's. */
static int plan_small_gemms(cuda_dev *d, ssf_error *err)
{
    ssfk_pgemm_device dev;
    CU_TRY(ssfk_pgemm_init(&dev));
    int H = d->cfg.hidden_size, I = d->cfg.intermediate_size;
    struct {
        ssf_pgemm_shape *shape;
        int N, K, swiglu;
    } gemms[] = {{&d->pg[PG_QKV], d->qkv_dim, H, 0},
                 {&d->pg[PG_O], H, d->q_dim, 0},
                 {&d->pg[PG_GU], 2 * I, H, 1},
                 {&d->pg[PG_DOWN], H, I, 0}};
    for (size_t i = 0; i < sizeof gemms / sizeof *gemms; i++)
        if (ssfk_pgemm_plan(&dev, gemms[i].N, gemms[i].K, gemms[i].swiglu, gemms[i].shape))
            memset(gemms[i].shape, 0, sizeof *gemms[i].shape);
    d->gu_block = d->pg[PG_GU].bn / 2;
    return 0;
}

static int open_runtime(cuda_dev *d, ssf_error *err)
{
    CU_TRY(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking));
    BLAS_TRY(cublasCreate(&d->blas));
    BLAS_TRY(cublasSetStream(d->blas, d->stream));
    CU_TRY(cudaMalloc(&d->workspace, SSFK_GEMM_WORKSPACE));
    BLAS_TRY(cublasSetWorkspace(d->blas, d->workspace, SSFK_GEMM_WORKSPACE));
    d->gemm = (ssfk_gemm_ctx *)ssf_xcalloc(1, sizeof *d->gemm);
    BLAS_TRY(ssfk_gemm_ctx_init(d->gemm, d->workspace, SSFK_GEMM_WORKSPACE));
    d->gemm->split_search = d->gemm_split_search;
    CU_TRY(cudaMallocHost((void **)&d->h_idx, idx_ints(d) * sizeof(int32_t)));
    CU_TRY(cudaMallocHost((void **)&d->h_spec, CUDA_MAX_ROWS * sizeof(ssf_sample_spec)));
    CU_TRY(cudaMallocHost((void **)&d->h_ids, 2 * CUDA_MAX_ROWS * sizeof(int32_t)));
    for (int i = 0; i < 2; i++)
        CU_TRY(cudaEventCreateWithFlags(&d->ids_ev[i], cudaEventDisableTiming));
    CU_TRY(cudaEventCreateWithFlags(&d->staged_ev, cudaEventDisableTiming));
    d->h_need = (int32_t *)ssf_xcalloc((size_t)d->seq_cap, sizeof(int32_t));
    CU_TRY(ssfk_attention_init());
    CU_TRY(ssfk_attention_slots(d->cfg.head_dim, d->kv.fp8, d->attn_rope, &d->attn_slots));
    CU_TRY(ssfk_prefill_init());
    return d->own_mode != SSF_OWN_GEMMS_NEVER ? plan_small_gemms(d, err) : 0;
}

/* With fold_norms, the gains of the norms before q|k|v and gate|up
 * multiplied into those weights (ssfk_row_norm), once they have landed. */
static int fold_weights(cuda_dev *d, ssf_error *err)
{
    if (!d->fold_norms) return 0;
    int H = d->cfg.hidden_size, I = d->cfg.intermediate_size;
    for (int l = 0; l < d->cfg.n_layers; l++) {
        const cuda_layer *L = &d->layers[l];
        CU_TRY(ssfk_fold_gains(L->wqkv, L->attn_norm, d->qkv_dim, H, d->stream));
        CU_TRY(ssfk_fold_gains(L->wgu, L->mlp_norm, 2 * I, H, d->stream));
    }
    CU_TRY(cudaStreamSynchronize(d->stream));
    return 0;
}

static int open_memory(cuda_dev *d, const ssf_model *m, const ssf_device_options *o, ssf_error *err)
{
    arena wa = {NULL, 0}, aa = {NULL, 0};
    plan_weights(d, &wa);
    plan_activations(d, &aa);
    if (plan_blocks(d, o, wa.used, aa.used, err)) return -1;
    CU_TRY(cudaMalloc((void **)&d->wmem, wa.used));
    CU_TRY(cudaMalloc((void **)&d->amem, aa.used));
    wa = arena{d->wmem, 0};
    aa = arena{d->amem, 0};
    plan_weights(d, &wa);
    plan_activations(d, &aa);
    size_t counts, floats;
    small_gemm_work(d, &counts, &floats);
    if (counts) CU_TRY(cudaMemset(d->pg_count, 0, counts * sizeof(int))); /* ssfk_pgemm's start */
    d->scratch_block = d->base.n_blocks;
    size_t blocks = (size_t)d->base.n_blocks + 1;
    CU_TRY(cudaMalloc((void **)&d->pool, ssfk_kv_block_bytes(d->kv) * blocks));
    if (d->kv.fp8) CU_TRY(cudaMalloc((void **)&d->kv.scales, ssfk_kv_scale_bytes(d->kv) * blocks));
    if (upload_weights(d, m, err)) return -1;
    /* a cudaMemcpy from pageable memory may return before its DMA lands, and
     * d->stream does not wait for the legacy stream: finish the uploads */
    CU_TRY(cudaDeviceSynchronize());
    return fold_weights(d, err);
}

/* The ssf_own_gemms o asks for, SSFK_OWN_SMALL_GEMMS's when it leaves it
 * open. */
static int own_mode_of(const ssf_device_options *o)
{
    return o->own_small_gemms ? o->own_small_gemms : SSFK_OWN_SMALL_GEMMS;
}

/* Whether o asks for a path that folded norms leave out: the decode
 * kernel's RoPE, the own GEMM, or norms fused into it. */
static int asks_unfolded(const ssf_device_options *o)
{
    return o->rope_in_attention || o->fuse_norms || o->own_small_gemms == SSF_OWN_GEMMS_ALWAYS ||
           o->own_small_gemms == SSF_OWN_GEMMS_TUNED;
}

/* Whether the norms are folded: asked for, or SSFK_FOLD_NORMS's default,
 * which yields to an explicit ask for a path it leaves out (else
 * --rope-in-attention and the like would be dropped without a word, and
 * gpu_check's variants of them would time the folded path). */
static int folds_norms(const ssf_device_options *o)
{
    if (o->disable_fold_norms) return 0;
    return o->fold_norms || (SSFK_FOLD_NORMS && !asks_unfolded(o));
}

static int check_options(const ssf_model_config *c, const ssf_device_options *o, ssf_error *err)
{
    if (o->block_size < 0 || o->n_blocks < 0 || o->n_slots < 0 || o->max_context < 0)
        return ssf_fail_usage(err, "cuda: negative block_size, n_blocks, n_slots or max_context");
    if (o->own_small_gemms < SSF_OWN_GEMMS_DEFAULT || o->own_small_gemms > SSF_OWN_GEMMS_NEVER)
        return ssf_fail_usage(err, "cuda: own_small_gemms %d is not an ssf_own_gemms",
                              o->own_small_gemms);
    if (o->fold_norms && o->disable_fold_norms)
        return ssf_fail_usage(err, "cuda: --fold-norms and --no-fold-norms ask for opposites; "
                                   "drop one");
    if (o->gemm_split_search && o->disable_gemm_split_search)
        return ssf_fail_usage(err, "cuda: --gemm-split-search and --no-gemm-split-search ask for "
                                   "opposites; drop one");
    if (o->fold_norms && asks_unfolded(o))
        return ssf_fail_usage(err, "cuda: --fold-norms keeps cuBLAS's GEMMs and the RoPE kernel; "
                                   "drop --rope-in-attention, --own-small-gemms and --fuse-norms");
    /* folded norms leave SSFK_OWN_SMALL_GEMMS's tuned default out */
    if (!folds_norms(o) && own_mode_of(o) == SSF_OWN_GEMMS_TUNED && o->disable_cuda_graphs)
        return ssf_fail_usage(err,
                              "cuda: --own-small-gemms tuned judges the kernel before a decode "
                              "graph's first capture; drop --no-cuda-graphs, or use always");
    /* a step holds a row of every sequence plus a prefill chunk */
    if (o->n_slots >= CUDA_MAX_ROWS)
        return ssf_fail_usage(err, "cuda: --slots %d: at most %d", o->n_slots, CUDA_MAX_ROWS - 1);
    int model_max = c->max_position_embeddings;
    if (model_max > 0 && o->max_context > model_max)
        return ssf_fail_usage(err,
                              "cuda: --max-context %d is past the model's max_position_embeddings "
                              "%d; give at most %d",
                              o->max_context, model_max, model_max);
    return 0;
}

/* Sizes that follow from the config and the options alone. */
static void set_shape(cuda_dev *d, const ssf_model_config *c, const ssf_device_options *o)
{
    d->cfg = *c;
    d->ordinal = o->cuda_device;
    d->q_dim = c->n_heads * c->head_dim;
    d->kv_dim = c->n_kv_heads * c->head_dim;
    d->qkv_dim = d->q_dim + 2 * d->kv_dim;
    d->layers = (cuda_layer *)ssf_xcalloc((size_t)c->n_layers, sizeof(cuda_layer));
    d->base.name = "cuda";
    d->base.max_context = o->max_context > 0 ? o->max_context : c->max_position_embeddings;
    d->base.max_rows = CUDA_MAX_ROWS;
    d->base.block_size = o->block_size > 0 ? o->block_size : DEFAULT_BLOCK_SIZE;
    d->base.forward = cuda_forward;
    d->base.copy_blocks = cuda_copy_blocks;
    d->base.can_sample = 1;
    d->base.can_defer = SSFK_OVERLAP_STEPS || o->overlap_steps;
    d->base.collect = cuda_collect;
    d->use_graphs = !o->disable_cuda_graphs;
    d->flash_prefill = !o->disable_flash_prefill;
    d->fp8_flash = SSFK_PREFILL_FP8 || o->fp8_flash_prefill;
    d->pdl = !o->disable_pdl;
    /* folded norms keep cuBLAS's GEMMs and the RoPE kernel (check_options
     * refuses the others asked for with them) */
    d->fold_norms = folds_norms(o);
    /* folded norms round o's and down's sums once into the residual, where
     * the RMSNorm kernel rounded twice: another run's numbers, so another
     * run (the engine's identity names it) */
    d->base.numerics = d->fold_norms ? "folded" : "";
    d->attn_rope = !d->fold_norms && (SSFK_ATTN_ROPE || o->rope_in_attention);
    d->fuse_norms = !d->fold_norms && (SSFK_FUSE_NORMS || o->fuse_norms);
    d->own_mode = d->fold_norms ? SSF_OWN_GEMMS_NEVER : own_mode_of(o);
    d->gemm_split_search =
        !o->disable_gemm_split_search && (SSFK_GEMM_SPLIT_SEARCH || o->gemm_split_search);
    for (int R = 0; R <= SSF_PGEMM_MAX_M; R++)
        for (int g = 0; g < SMALL_GEMMS; g++)
            d->own[R][g].gemm = small_gemm_names[g], d->own[R][g].rows = R;
    d->base.report = cuda_report;
    d->base.close = cuda_close;
    d->kv = ssfk_kv_layout_make(c->n_layers, c->n_kv_heads, d->base.block_size, c->head_dim);
    d->kv.fp8 = o->kv_fp8 != 0;
    d->seq_blocks = (d->base.max_context + d->base.block_size - 1) / d->base.block_size;
    /* n_slots defaults to min(DEFAULT_MAX_SEQS, n_blocks), known only
     * after planning: the table buffers are sized for the larger */
    d->seq_cap = o->n_slots > 0 ? o->n_slots : DEFAULT_MAX_SEQS;
}

extern "C" ssf_device *ssf_device_cuda_open(const ssf_model *m, const ssf_device_options *o,
                                            ssf_error *err)
{
    const ssf_model_config *c = ssf_model_config_of(m);
    if (check_config(c, err) || check_options(c, o, err) || select_device(o->cuda_device, err) ||
        check_capability(o->cuda_device, c->head_dim, err))
        return NULL;
    cuda_dev *d = (cuda_dev *)ssf_xcalloc(1, sizeof *d);
    set_shape(d, c, o);
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

static const cuda_dev *cuda_of(const ssf_device *dev, const char *what, ssf_error *err)
{
    if (dev && dev->name && strcmp(dev->name, "cuda") == 0) return (const cuda_dev *)dev;
    ssf_fail(err, "cuda: %s of a device that is not a CUDA one", what);
    return NULL;
}

extern "C" int ssf_cuda_time_replays(ssf_device *dev, ssf_error *err)
{
    cuda_dev *d = (cuda_dev *)cuda_of(dev, "replay times", err);
    if (!d) return -1;
    CU_TRY(cudaSetDevice(d->ordinal));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (!d->replay_ev[i][j]) CU_TRY(cudaEventCreate(&d->replay_ev[i][j]));
    d->replays = 0, d->replay_ms = 0;
    return 0;
}

extern "C" int ssf_cuda_replay_time(const ssf_device *dev, long *replays, double *ms,
                                    ssf_error *err)
{
    const cuda_dev *d = cuda_of(dev, "replay times", err);
    if (!d) return -1;
    *replays = d->replays;
    *ms = d->replay_ms;
    return 0;
}

extern "C" int ssf_cuda_gemm_verdicts(const ssf_device *dev, int M, ssf_pgemm_verdict *out,
                                      ssf_error *err)
{
    static_assert(SSF_CUDA_SMALL_GEMMS == SMALL_GEMMS, "cuda_ops.h counts the small GEMMs");
    const cuda_dev *d = cuda_of(dev, "GEMM verdicts", err);
    if (!d) return -1;
    if (M < 1 || M > SSF_PGEMM_MAX_M)
        return ssf_fail(err, "cuda: GEMM verdicts at %d rows: 1 to %d", M, SSF_PGEMM_MAX_M);
    int R;
    graph_bucket(M, &R);
    memcpy(out, d->own[R], sizeof d->own[R]);
    return 0;
}
