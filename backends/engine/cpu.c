/*
 * cpu.c - the CPU device: a Qwen2/Llama forward pass in fp32.
 *
 * The GEMMs' weights are packed once at open (cpu_ops.h: panels of 24
 * rows), as BF16 from a BF16 checkpoint (the GEMM widens them as it goes,
 * exactly) and as fp32 from any other; q|k|v and gate|up are concatenated so a
 * layer is four GEMMs: qkv, o, gate|up, down.  Norms and an untied
 * embedding stay as they are (F32 in place from the mapping); a tied
 * embedding is read from the packed lm_head.  The lm_head GEMM runs only on
 * the rows whose logits are asked for.
 *
 * KV cache: fp32 and paged (device.h), one array of n_blocks blocks laid
 * out [block][layer][K|V][block_size][kv_heads * head_dim]: a block holds
 * every layer's K and V for its positions, so copy_blocks is one memcpy a
 * pair, and a block's positions are contiguous for attention.
 *
 * Every kernel (cpu_ops.c) computes an element the same way whatever the
 * batch, so a row's logits are bit-identical in any batch composition.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu_ops.h"
#include "device.h"

#define DEFAULT_SLOTS 8
#define DEFAULT_BLOCK 16
#define MAX_BLOCK (1 << 20) /* keeps a block's floats far from overflow */
#define DEFAULT_CONTEXT 4096
#define DEFAULT_ROWS 512
#define MAX_SLOTS (1 << 28) /* keeps slot counts and row counts in int */
/* GEMM column chunks per thread: enough to even out a busy core. */
#define GEMM_TASKS_PER_THREAD 4
/* Owned buffers start on a cache line; from HUGE_BUFFER bytes on a huge
 * page, with the advice to back them with huge pages. */
#define CACHE_LINE ((size_t)64)
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_BUFFER ((size_t)4 << 20)

typedef struct cpu_layer {
    const float *attn_norm, *mlp_norm;
    ssf_cpu_matrix qkv;     /* packed [q + 2kv, hidden] */
    const float *qkv_bias;  /* [q + 2kv] or NULL */
    ssf_cpu_matrix o;       /* packed [hidden, q] */
    ssf_cpu_matrix gate_up; /* packed [2 * inter, hidden] */
    ssf_cpu_matrix down;    /* packed [hidden, inter] */
} cpu_layer;

typedef struct cpu_device {
    ssf_device base;
    ssf_model_config cfg;
    ssf_cpu_isa isa;
    ssf_cpu_pool *pool;
    int hidden, hd, n_heads, n_kv, q_dim, kv_dim, qkv_dim, inter, vocab;
    float eps, scale;
    const float *embed;     /* [vocab, hidden], NULL when tied: rows of lm_head */
    ssf_cpu_matrix lm_head; /* packed [vocab, hidden] */
    const float *final_norm;
    cpu_layer *layers;
    void **owned; /* buffers widened or packed at open */
    int n_owned;
    size_t owned_bytes;
    float *inv_freq;
    float *kv;                  /* the block pool */
    size_t block_floats;        /* one block: every layer's K and V */
    size_t layer_floats, v_off; /* a layer within a block; V after K */
    float *x, *xn, *qkv, *attn, *gu, *act, *hout, *scores;
    float *rope; /* per row: its position's cos and sin (ssf_cpu_rope_angles) */
} cpu_device;

/* ---- weights ------------------------------------------------------------------- */

/* Weights are read a cache line at a time by the GEMM, so their buffers
 * start on a line; large ones ask for huge pages, which keep the TLB from
 * missing every 4 KB of a decode step's stream over all the weights. */
static void *aligned_buffer(size_t align, size_t n)
{
    size_t bytes = (n + align - 1) / align * align;
    void *p = aligned_alloc(align, bytes ? bytes : align);
#ifdef MADV_HUGEPAGE
    if (p && align == HUGE_PAGE) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void *own_bytes(cpu_device *d, size_t n, const char *what, ssf_error *err)
{
    void *p = aligned_buffer(n >= HUGE_BUFFER ? HUGE_PAGE : CACHE_LINE, n);
    if (!p) {
        ssf_fail(err, "cpu device: cannot allocate %zu bytes for %s", n, what);
        return NULL;
    }
    d->owned[d->n_owned++] = p;
    d->owned_bytes += n;
    return p;
}

static float *own_floats(cpu_device *d, size_t n, const char *what, ssf_error *err)
{
    return own_bytes(d, n * sizeof(float), what, err);
}

/* An F32 tensor in place (the mapping is 4-byte aligned in practice); any
 * other dtype, or a misaligned one, widened into a buffer of our own. */
static const float *weight(cpu_device *d, const ssf_tensor *t, ssf_error *err)
{
    if (t->dtype == SSF_DTYPE_F32 && (uintptr_t)t->data % sizeof(float) == 0)
        return (const float *)t->data;
    float *p = own_floats(d, (size_t)t->numel, t->name, err);
    if (p) ssf_tensor_read_f32(t, 0, t->numel, p);
    return p;
}

/* Tensors stacked along their first dimension, widened. */
static const float *concat(cpu_device *d, const ssf_tensor *const *t, int n, ssf_error *err)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += (size_t)t[i]->numel;
    float *p = own_floats(d, total, t[0]->name, err);
    if (!p) return NULL;
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        ssf_tensor_read_f32(t[i], 0, t[i]->numel, p + at);
        at += (size_t)t[i]->numel;
    }
    return p;
}

static int all_bf16(const ssf_tensor *const *t, int n)
{
    for (int i = 0; i < n; i++)
        if (t[i]->dtype != SSF_DTYPE_BF16) return 0;
    return 1;
}

/* Linear weights of k columns stacked along their rows (q|k|v, gate|up),
 * packed for the GEMM: BF16 as it is when every part is BF16, else widened
 * to fp32.  Both leave {NULL, NULL} on failure. */
static ssf_cpu_matrix packed(cpu_device *d, const ssf_tensor *const *t, int n, int k,
                             ssf_error *err)
{
    int64_t rows = 0;
    for (int i = 0; i < n; i++)
        rows += t[i]->numel / k;
    size_t elems = ssf_cpu_packed_floats((int)rows, k);
    int bf16 = all_bf16(t, n);
    size_t elem = bf16 ? sizeof(uint16_t) : sizeof(float);
    void *p = own_bytes(d, elems * elem, t[0]->name, err);
    if (!p) return (ssf_cpu_matrix){NULL, NULL};
    memset(p, 0, elems * elem); /* the last panel's rows past the end */
    void *row = ssf_xmalloc((size_t)k * sizeof(float));
    int r = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < t[i]->numel / k; j++, r++) {
            if (bf16) {
                /* the mapping need not be 2-byte aligned: copied, not cast */
                memcpy(row, (const char *)t[i]->data + (size_t)(j * k) * elem, (size_t)k * elem);
                ssf_cpu_pack_row_bf16(p, k, r, row);
            } else {
                ssf_tensor_read_f32(t[i], j * k, k, row);
                ssf_cpu_pack_row(p, k, r, row);
            }
        }
    free(row);
    return bf16 ? (ssf_cpu_matrix){NULL, p} : (ssf_cpu_matrix){p, NULL};
}

static ssf_cpu_matrix packed1(cpu_device *d, const ssf_tensor *t, int k, ssf_error *err)
{
    return packed(d, &t, 1, k, err);
}

static int failed(ssf_cpu_matrix m)
{
    return !m.f32 && !m.bf16;
}

static int load_layer(cpu_device *d, const ssf_layer_weights *w, cpu_layer *l, ssf_error *err)
{
    const ssf_tensor *qkv[3] = {w->q, w->k, w->v};
    const ssf_tensor *gu[2] = {w->gate, w->up};
    int H = d->cfg.hidden_size;
    if (!(l->attn_norm = weight(d, w->attn_norm, err))) return -1;
    if (!(l->mlp_norm = weight(d, w->mlp_norm, err))) return -1;
    if (failed(l->qkv = packed(d, qkv, 3, H, err))) return -1;
    if (failed(l->o = packed1(d, w->o, d->cfg.n_heads * d->cfg.head_dim, err))) return -1;
    if (failed(l->gate_up = packed(d, gu, 2, H, err))) return -1;
    if (failed(l->down = packed1(d, w->down, d->cfg.intermediate_size, err))) return -1;
    l->qkv_bias = NULL;
    if (w->q_bias) {
        const ssf_tensor *b[3] = {w->q_bias, w->k_bias, w->v_bias};
        l->qkv_bias = concat(d, b, 3, err);
        if (!l->qkv_bias) return -1;
    }
    return 0;
}

static int load_weights(cpu_device *d, const ssf_model *m, ssf_error *err)
{
    const ssf_model_weights *w = ssf_model_weights_of(m);
    int n_layers = d->cfg.n_layers;
    /* at most 7 a layer (2 norms, qkv, its bias, o, gate_up, down), embed,
     * lm_head, final norm and the activations */
    d->owned = calloc((size_t)n_layers * 7 + 4, sizeof *d->owned);
    d->layers = calloc((size_t)n_layers, sizeof *d->layers);
    if (!d->owned || !d->layers) return ssf_fail(err, "cpu device: out of memory for the layers");
    d->lm_head = packed1(d, w->lm_head, d->cfg.hidden_size, err);
    if (failed(d->lm_head)) return -1;
    d->embed = NULL;
    if (w->lm_head != w->embed && !(d->embed = weight(d, w->embed, err))) return -1;
    d->final_norm = weight(d, w->final_norm, err);
    if (!d->final_norm) return -1;
    for (int i = 0; i < n_layers; i++)
        if (load_layer(d, &w->layers[i], &d->layers[i], err)) return -1;
    return 0;
}

/* ---- sizes and buffers ----------------------------------------------------------- */

/* Block size and pool size; by default the pool holds every slot at full
 * context, as the contiguous cache did. */
static int resolve_blocks(cpu_device *d, const ssf_device_options *o, ssf_error *err)
{
    int bs = o && o->block_size > 0 ? o->block_size : DEFAULT_BLOCK;
    if (bs > MAX_BLOCK)
        return ssf_fail_usage(err, "cpu device: a KV block of %d positions is more than %d", bs,
                              MAX_BLOCK);
    int64_t per_seq = ((int64_t)d->base.max_context + bs - 1) / bs;
    int64_t n = o && o->n_blocks > 0 ? o->n_blocks : (int64_t)d->base.n_slots * per_seq;
    if (n > INT32_MAX)
        return ssf_fail_usage(err,
                              "cpu device: %lld KV blocks of %d positions is more than %d; lower "
                              "--max-context or --slots",
                              (long long)n, bs, INT32_MAX);
    d->base.block_size = bs;
    d->base.n_blocks = (int)n;
    return 0;
}

static int resolve_sizes(cpu_device *d, const ssf_device_options *o, ssf_error *err)
{
    const ssf_model_config *c = &d->cfg;
    int model_max = c->max_position_embeddings;
    int n_slots = o && o->n_slots > 0 ? o->n_slots : DEFAULT_SLOTS;
    int ctx = o && o->max_context > 0 ? o->max_context : DEFAULT_CONTEXT;
    if (!(o && o->max_context > 0) && model_max > 0 && ctx > model_max) ctx = model_max;
    if (model_max > 0 && ctx > model_max)
        return ssf_fail_usage(err,
                              "cpu device: --max-context %d is past the model's "
                              "max_position_embeddings %d; give at most %d",
                              ctx, model_max, model_max);
    if (n_slots > MAX_SLOTS)
        return ssf_fail_usage(err, "cpu device: --slots %d is more than %d", n_slots, MAX_SLOTS);
    d->base.n_slots = n_slots;
    d->base.max_context = ctx;
    d->base.max_rows = DEFAULT_ROWS > n_slots + 1 ? DEFAULT_ROWS : n_slots + 1;
    if (resolve_blocks(d, o, err)) return -1;
    d->hidden = c->hidden_size;
    d->hd = c->head_dim;
    d->n_heads = c->n_heads;
    d->n_kv = c->n_kv_heads;
    d->q_dim = c->n_heads * c->head_dim;
    d->kv_dim = c->n_kv_heads * c->head_dim;
    d->qkv_dim = d->q_dim + 2 * d->kv_dim;
    d->inter = c->intermediate_size;
    d->vocab = c->vocab_size;
    d->eps = (float)c->rms_norm_eps;
    d->scale = (float)(1.0 / sqrt((double)c->head_dim));
    return 0;
}

static size_t activation_floats(const cpu_device *d, int threads)
{
    size_t r = (size_t)d->base.max_rows;
    return r * ((size_t)d->hidden * 3 + (size_t)d->qkv_dim + (size_t)d->q_dim +
                (size_t)d->inter * 3 + (size_t)d->hd) +
           (size_t)threads * (size_t)d->base.max_context * (size_t)(d->n_heads / d->n_kv);
}

static size_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : SIZE_MAX;
}

/* The KV pool and activations, refused up front when they and the widened
 * weights would not fit in memory (sizes in double: a huge pool must be
 * refused, not wrap around). */
static int alloc_state(cpu_device *d, int threads, ssf_error *err)
{
    int nb = d->base.n_blocks, bs = d->base.block_size;
    d->v_off = (size_t)bs * (size_t)d->kv_dim;
    d->layer_floats = 2 * d->v_off;
    d->block_floats = d->layer_floats * (size_t)d->cfg.n_layers;
    double kv_bytes = (double)nb * (double)d->block_floats * sizeof(float);
    size_t act_bytes = activation_floats(d, threads) * sizeof(float), phys = physical_memory();
    double other = (double)act_bytes + (double)d->owned_bytes;
    if (kv_bytes + other > 0.9 * (double)phys)
        return ssf_fail(err,
                        "cpu device: the fp32 KV cache of %d blocks x %d positions needs %.0f "
                        "bytes (weights and activations %.0f more), over 90%% of the %zu bytes "
                        "of memory; lower --max-context or --slots (or the KV block count)",
                        nb, bs, kv_bytes, other, phys);
    /* rows of 64 floats then start on a cache line, as the prefetches assume */
    d->kv = aligned_buffer(CACHE_LINE, (size_t)kv_bytes);
    float *act = malloc(act_bytes);
    d->inv_freq = calloc((size_t)d->hd / 2 + 1, sizeof *d->inv_freq);
    if (act) d->owned[d->n_owned++] = act;
    if (!d->kv || !act || !d->inv_freq)
        return ssf_fail(err,
                        "cpu device: cannot allocate the %.0f-byte KV cache (%d blocks x %d "
                        "positions) and %zu bytes of activations; lower --max-context or --slots",
                        kv_bytes, nb, bs, act_bytes);
    size_t r = (size_t)d->base.max_rows;
    d->x = act;
    d->xn = d->x + r * (size_t)d->hidden;
    d->hout = d->xn + r * (size_t)d->hidden;
    d->qkv = d->hout + r * (size_t)d->hidden;
    d->attn = d->qkv + r * (size_t)d->qkv_dim;
    d->gu = d->attn + r * (size_t)d->q_dim;
    d->act = d->gu + r * 2 * (size_t)d->inter;
    d->rope = d->act + r * (size_t)d->inter;
    d->scores = d->rope + r * (size_t)d->hd;
    ssf_cpu_rope_inv_freq(d->cfg.rope_theta, d->hd, d->inv_freq);
    return 0;
}

/* The embedding of a token: its row, or (tied) its packed lm_head row. */
static void embed_row(const cpu_device *d, int32_t token, float *out)
{
    size_t h = (size_t)d->hidden;
    if (d->embed)
        memcpy(out, d->embed + (size_t)token * h, h * sizeof(float));
    else
        ssf_cpu_unpack_row(d->lm_head, d->hidden, token, out);
}

/* ---- parallel pieces --------------------------------------------------------------- */

typedef struct {
    cpu_device *d;
    const float *x, *bias;
    ssf_cpu_matrix w;
    float *y;
    int m, k, n, ldy, chunk;
} gemm_job;

static void gemm_task(void *ctx, int task, int worker)
{
    gemm_job *j = ctx;
    int n0 = task * j->chunk, n1 = n0 + j->chunk < j->n ? n0 + j->chunk : j->n;
    ssf_cpu_gemm_range(j->d->isa, j->x, j->m, j->k, j->w, j->n, j->bias, j->y, j->ldy, n0, n1);
}

/* Y[m, n] = X[m, k] W[n, k]^T (+ bias) for a packed W, columns split
 * across the pool in whole panels (the tasks write y, through gemm_job). */
static void gemm(cpu_device *d, const float *x, int m, int k, ssf_cpu_matrix w, const float *bias,
                 int n, float *y, int ldy) /* NOLINT(readability-non-const-parameter) */
{
    int tasks = ssf_cpu_pool_threads(d->pool) * GEMM_TASKS_PER_THREAD;
    int chunk = (n + tasks - 1) / tasks;
    chunk = (chunk + SSF_CPU_PANEL - 1) / SSF_CPU_PANEL * SSF_CPU_PANEL;
    gemm_job j = {d, x, bias, w, y, m, k, n, ldy, chunk};
    ssf_cpu_pool_run(d->pool, (n + chunk - 1) / chunk, gemm_task, &j);
}

typedef struct {
    cpu_device *d;
    const ssf_fwd_batch *b;
    int layer;
} layer_job;

/* The rotation of the row's position, for every layer's RoPE. */
static void rope_angles_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    ssf_cpu_rope_angles(d->hd, d->inv_freq, j->b->pos[r], d->rope + (size_t)r * (size_t)d->hd);
}

/* RoPE on the row's q and k heads, then its K and V into the cache. */
static void rope_store_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    float *row = d->qkv + (size_t)r * (size_t)d->qkv_dim;
    int32_t pos = j->b->pos[r];
    for (int h = 0; h < d->n_heads + d->n_kv; h++)
        ssf_cpu_rope_rotate(row + (size_t)h * (size_t)d->hd, d->hd,
                            d->rope + (size_t)r * (size_t)d->hd);
    const int32_t *table = j->b->tables[j->b->seq[r]];
    int bs = d->base.block_size;
    float *k = d->kv + (size_t)table[pos / bs] * d->block_floats +
               (size_t)j->layer * d->layer_floats + (size_t)(pos % bs) * (size_t)d->kv_dim;
    memcpy(k, row + d->q_dim, sizeof(float) * (size_t)d->kv_dim);
    memcpy(k + d->v_off, row + d->q_dim + d->kv_dim, sizeof(float) * (size_t)d->kv_dim);
}

/* One (row, KV head) with the query heads of its group: GQA maps head h to
 * KV head h / (heads / kv_heads), so a group's heads are consecutive. */
static void attention_task(void *ctx, int task, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    int group = d->n_heads / d->n_kv;
    int r = task / d->n_kv, g = task % d->n_kv;
    const float *k = d->kv + (size_t)j->layer * d->layer_floats + (size_t)g * (size_t)d->hd;
    ssf_cpu_kv_pages kv = {
        k,        k + d->v_off, j->b->tables[j->b->seq[r]], d->base.block_size, d->block_floats,
        d->kv_dim};
    size_t first = (size_t)g * (size_t)group * (size_t)d->hd;
    const float *q = d->qkv + (size_t)r * (size_t)d->qkv_dim + first;
    float *out = d->attn + (size_t)r * (size_t)d->q_dim + first;
    float *scores = d->scores + (size_t)worker * (size_t)d->base.max_context * (size_t)group;
    ssf_cpu_attention_group(d->isa, q, group, &kv, j->b->pos[r] + 1, d->hd, d->scale, scores, out);
}

static void attn_norm_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    size_t at = (size_t)r * (size_t)d->hidden;
    ssf_cpu_rmsnorm(d->isa, d->x + at, d->layers[j->layer].attn_norm, d->hidden, d->eps,
                    d->xn + at);
}

/* The o projection's output (in xn) joins the residual, then the MLP norm. */
static void mlp_norm_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    size_t at = (size_t)r * (size_t)d->hidden;
    for (int i = 0; i < d->hidden; i++)
        d->x[at + i] += d->xn[at + i];
    ssf_cpu_rmsnorm(d->isa, d->x + at, d->layers[j->layer].mlp_norm, d->hidden, d->eps, d->xn + at);
}

static void swiglu_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    const float *gu = d->gu + (size_t)r * 2 * (size_t)d->inter;
    ssf_cpu_swiglu(d->isa, gu, gu + d->inter, d->inter, d->act + (size_t)r * (size_t)d->inter);
}

static void residual_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    size_t at = (size_t)r * (size_t)d->hidden;
    for (int i = 0; i < d->hidden; i++)
        d->x[at + i] += d->xn[at + i];
}

static void run_layer(cpu_device *d, const ssf_fwd_batch *b, int l)
{
    const cpu_layer *w = &d->layers[l];
    int n = b->n_rows;
    layer_job j = {d, b, l};
    ssf_cpu_pool_run(d->pool, n, attn_norm_task, &j);
    gemm(d, d->xn, n, d->hidden, w->qkv, w->qkv_bias, d->qkv_dim, d->qkv, d->qkv_dim);
    /* every row's K/V is cached before any row of the batch attends */
    ssf_cpu_pool_run(d->pool, n, rope_store_task, &j);
    ssf_cpu_pool_run(d->pool, n * d->n_kv, attention_task, &j);
    gemm(d, d->attn, n, d->q_dim, w->o, NULL, d->hidden, d->xn, d->hidden);
    ssf_cpu_pool_run(d->pool, n, mlp_norm_task, &j);
    gemm(d, d->xn, n, d->hidden, w->gate_up, NULL, 2 * d->inter, d->gu, 2 * d->inter);
    ssf_cpu_pool_run(d->pool, n, swiglu_task, &j);
    gemm(d, d->act, n, d->inter, w->down, NULL, d->hidden, d->xn, d->hidden);
    ssf_cpu_pool_run(d->pool, n, residual_task, &j);
}

/* ---- the device interface ----------------------------------------------------------- */

/* The blocks holding positions 0..pos of a sequence are pool blocks. */
static int validate_table(cpu_device *d, const int32_t *table, int r, int32_t pos, ssf_error *err)
{
    if (!table) return ssf_fail(err, "cpu device: row %d: its sequence has no block table", r);
    for (int i = 0; i <= pos / d->base.block_size; i++)
        if (table[i] < 0 || table[i] >= d->base.n_blocks)
            return ssf_fail(err, "cpu device: row %d: block table entry %d is block %d of %d", r, i,
                            table[i], d->base.n_blocks);
    return 0;
}

static int validate_row(cpu_device *d, const ssf_fwd_batch *b, int r, ssf_error *err)
{
    int32_t s = b->seq[r], p = b->pos[r], t = b->token[r];
    if (s < 0 || s >= b->n_seqs)
        return ssf_fail(err, "cpu device: row %d: sequence %d of %d", r, s, b->n_seqs);
    if (p < 0 || p >= d->base.max_context)
        return ssf_fail(err, "cpu device: row %d: position %d outside the context of %d", r, p,
                        d->base.max_context);
    if (t < 0 || t >= d->vocab)
        return ssf_fail(err, "cpu device: row %d: token %d outside the vocabulary of %d", r, t,
                        d->vocab);
    return validate_table(d, b->tables[s], r, p, err);
}

/* One line for the first row that breaks the batch contract of device.h,
 * before anything is written.  Which blocks a sequence may write (not
 * shared, device.h) is the scheduler's to keep: the device cannot see it. */
static int validate(cpu_device *d, const ssf_fwd_batch *b, const float *logits, ssf_error *err)
{
    if (b->n_rows < 1 || b->n_rows > d->base.max_rows)
        return ssf_fail(err, "cpu device: a batch of %d rows (1 to %d allowed)", b->n_rows,
                        d->base.max_rows);
    if (b->n_out < 0 || b->n_out > b->n_rows || (b->n_out > 0 && !logits))
        return ssf_fail(err, "cpu device: %d output rows for a batch of %d", b->n_out, b->n_rows);
    if (b->n_seqs < 1 || !b->tables)
        return ssf_fail(err, "cpu device: a batch with %d block tables", b->n_seqs);
    for (int r = 0; r < b->n_rows; r++)
        if (validate_row(d, b, r, err)) return -1;
    for (int i = 0; i < b->n_out; i++)
        if (b->out_rows[i] < 0 || b->out_rows[i] >= b->n_rows)
            return ssf_fail(err, "cpu device: output %d names row %d of %d", i, b->out_rows[i],
                            b->n_rows);
    return 0;
}

static int cpu_forward(ssf_device *dev, const ssf_fwd_batch *b, float *logits, ssf_error *err)
{
    cpu_device *d = (cpu_device *)dev;
    if (validate(d, b, logits, err)) return -1;
    size_t h = (size_t)d->hidden;
    for (int r = 0; r < b->n_rows; r++)
        embed_row(d, b->token[r], d->x + (size_t)r * h);
    layer_job angles = {d, b, 0};
    ssf_cpu_pool_run(d->pool, b->n_rows, rope_angles_task, &angles);
    for (int l = 0; l < d->cfg.n_layers; l++)
        run_layer(d, b, l);
    for (int i = 0; i < b->n_out; i++)
        ssf_cpu_rmsnorm(d->isa, d->x + (size_t)b->out_rows[i] * h, d->final_norm, d->hidden, d->eps,
                        d->hout + (size_t)i * h);
    if (b->n_out > 0)
        gemm(d, d->hout, b->n_out, d->hidden, d->lm_head, NULL, d->vocab, logits, d->vocab);
    return 0;
}

/* All pairs are checked before any is copied, so a refused call changes
 * nothing; pairs are applied in order. */
static int cpu_copy_blocks(ssf_device *dev, const ssf_block_copy *c, int n, ssf_error *err)
{
    cpu_device *d = (cpu_device *)dev;
    if (n < 0 || (n > 0 && !c)) return ssf_fail(err, "cpu device: copy_blocks of %d pairs", n);
    for (int i = 0; i < n; i++)
        if (c[i].src < 0 || c[i].src >= d->base.n_blocks || c[i].dst < 0 ||
            c[i].dst >= d->base.n_blocks)
            return ssf_fail(err, "cpu device: copy_blocks pair %d: block %d -> %d of %d", i,
                            c[i].src, c[i].dst, d->base.n_blocks);
    size_t bytes = d->block_floats * sizeof(float);
    for (int i = 0; i < n; i++)
        if (c[i].src != c[i].dst)
            memcpy(d->kv + (size_t)c[i].dst * d->block_floats,
                   d->kv + (size_t)c[i].src * d->block_floats, bytes);
    return 0;
}

static void cpu_close(ssf_device *dev)
{
    cpu_device *d = (cpu_device *)dev;
    if (!d) return;
    ssf_cpu_pool_free(d->pool);
    for (int i = 0; i < d->n_owned; i++)
        free(d->owned[i]);
    free(d->owned);
    free(d->layers);
    free(d->inv_freq);
    free(d->kv);
    free(d);
}

static size_t cpu_report(const ssf_device *base, char *buf, size_t n)
{
    const cpu_device *d = (const cpu_device *)base;
    int threads = ssf_cpu_pool_threads(d->pool);
    int wrote = snprintf(buf, n, "cpu: %d thread%s, %s kernels", threads, threads == 1 ? "" : "s",
                         ssf_cpu_isa_name(d->isa));
    return wrote > 0 ? (size_t)wrote : 0;
}

/* The CPUs this process may run on (taskset, a container's cpuset), not
 * every CPU online: 128 workers spinning on 4 allowed CPUs would crawl. */
static int default_threads(const ssf_device_options *o)
{
    if (o && o->threads > 0) return o->threads;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0)
        return CPU_COUNT(&allowed);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

ssf_device *ssf_device_cpu_open(const ssf_model *m, const ssf_device_options *o, ssf_error *err)
{
    cpu_device *d = calloc(1, sizeof *d);
    if (!d) {
        ssf_fail(err, "cpu device: out of memory");
        return NULL;
    }
    d->base = (ssf_device){.name = "cpu",
                           .forward = cpu_forward,
                           .copy_blocks = cpu_copy_blocks,
                           .close = cpu_close,
                           .report = cpu_report};
    d->cfg = *ssf_model_config_of(m);
    d->isa = ssf_cpu_isa_detect();
    d->base.numerics = ssf_cpu_isa_name(d->isa);
    int threads = default_threads(o);
    if (o && o->kv_fp8) {
        ssf_fail_usage(err,
                       "cpu device: an fp8 KV cache is a CUDA option; drop --kv-cache-dtype fp8 "
                       "(the CPU keeps K and V in fp32)");
        free(d);
        return NULL;
    }
    if (d->cfg.n_heads % d->cfg.n_kv_heads != 0 || d->cfg.head_dim % 2 != 0) {
        ssf_fail(err, "cpu device: %d heads over %d KV heads of dimension %d is not supported",
                 d->cfg.n_heads, d->cfg.n_kv_heads, d->cfg.head_dim);
        free(d);
        return NULL;
    }
    if (resolve_sizes(d, o, err) || load_weights(d, m, err) || alloc_state(d, threads, err)) {
        cpu_close(&d->base);
        return NULL;
    }
    d->pool = ssf_cpu_pool_new(threads);
    if (!d->pool) {
        ssf_fail(err, "cpu device: cannot start %d threads: %s", threads, strerror(errno));
        cpu_close(&d->base);
        return NULL;
    }
    return &d->base;
}
