/*
 * cpu.c - the CPU device: a Qwen2/Llama forward pass in fp32.
 *
 * Weights are widened to fp32 once at open (F32 tensors are used in place
 * from the mapping); q|k|v and gate|up are concatenated so a layer is four
 * GEMMs: qkv, o, gate|up, down.  The lm_head GEMM runs only on the rows
 * whose logits are asked for.
 *
 * KV cache: fp32, K and V in separate arrays laid out
 * [slot][layer][position][kv_heads * head_dim], so one slot is one
 * contiguous block per layer and copy_slot is a memcpy per layer.
 *
 * Every kernel (cpu_ops.c) computes an element the same way whatever the
 * batch, so a row's logits are bit-identical in any batch composition.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_ops.h"
#include "device.h"

#define DEFAULT_SLOTS 8
#define DEFAULT_CONTEXT 4096
#define DEFAULT_ROWS 512
#define MAX_SLOTS (1 << 28) /* keeps slot counts and row counts in int */
/* GEMM column chunks per thread: enough to even out a busy core. */
#define GEMM_TASKS_PER_THREAD 4

typedef struct cpu_layer {
    const float *attn_norm, *mlp_norm;
    const float *qkv, *qkv_bias; /* [q + 2kv, hidden], [q + 2kv] or NULL */
    const float *o;              /* [hidden, q] */
    const float *gate_up;        /* [2 * inter, hidden] */
    const float *down;           /* [hidden, inter] */
} cpu_layer;

typedef struct cpu_device {
    ssf_device base;
    ssf_model_config cfg;
    ssf_cpu_isa isa;
    ssf_cpu_pool *pool;
    int hidden, hd, n_heads, n_kv, q_dim, kv_dim, qkv_dim, inter, vocab;
    float eps, scale;
    const float *embed, *final_norm, *lm_head;
    cpu_layer *layers;
    float **owned; /* buffers widened or concatenated at open */
    int n_owned;
    size_t owned_bytes;
    float *inv_freq;
    float *kcache, *vcache;
    size_t slot_floats, layer_floats; /* cache strides */
    int32_t *len;                     /* positions each slot holds */
    int32_t *next;                    /* validation scratch: next position per slot */
    uint32_t *touched, batch_id;      /* the last batch with a row in each slot */
    float *x, *xn, *qkv, *attn, *gu, *act, *hout, *scores;
} cpu_device;

/* ---- weights ------------------------------------------------------------------- */

static float *own_floats(cpu_device *d, size_t n, const char *what, ssf_error *err)
{
    float *p = malloc(n * sizeof(float));
    if (!p) {
        ssf_fail(err, "cpu device: cannot allocate %zu bytes for %s", n * sizeof(float), what);
        return NULL;
    }
    d->owned[d->n_owned++] = p;
    d->owned_bytes += n * sizeof(float);
    return p;
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

static int load_layer(cpu_device *d, const ssf_layer_weights *w, cpu_layer *l, ssf_error *err)
{
    const ssf_tensor *qkv[3] = {w->q, w->k, w->v};
    const ssf_tensor *gu[2] = {w->gate, w->up};
    l->attn_norm = weight(d, w->attn_norm, err);
    l->mlp_norm = l->attn_norm ? weight(d, w->mlp_norm, err) : NULL;
    l->qkv = l->mlp_norm ? concat(d, qkv, 3, err) : NULL;
    l->o = l->qkv ? weight(d, w->o, err) : NULL;
    l->gate_up = l->o ? concat(d, gu, 2, err) : NULL;
    l->down = l->gate_up ? weight(d, w->down, err) : NULL;
    if (!l->down) return -1;
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
    d->embed = weight(d, w->embed, err);
    if (!d->embed) return -1;
    d->lm_head = w->lm_head == w->embed ? d->embed : weight(d, w->lm_head, err);
    d->final_norm = d->lm_head ? weight(d, w->final_norm, err) : NULL;
    if (!d->final_norm) return -1;
    for (int i = 0; i < n_layers; i++)
        if (load_layer(d, &w->layers[i], &d->layers[i], err)) return -1;
    return 0;
}

/* ---- sizes and buffers ----------------------------------------------------------- */

static int resolve_sizes(cpu_device *d, const ssf_device_options *o, ssf_error *err)
{
    const ssf_model_config *c = &d->cfg;
    int model_max = c->max_position_embeddings;
    int n_slots = o && o->n_slots > 0 ? o->n_slots : DEFAULT_SLOTS;
    int ctx = o && o->max_context > 0 ? o->max_context : DEFAULT_CONTEXT;
    if (!(o && o->max_context > 0) && model_max > 0 && ctx > model_max) ctx = model_max;
    if (model_max > 0 && ctx > model_max)
        return ssf_fail(err,
                        "cpu device: --max-context %d is past the model's "
                        "max_position_embeddings %d",
                        ctx, model_max);
    if (n_slots > MAX_SLOTS)
        return ssf_fail(err, "cpu device: --slots %d is more than %d", n_slots, MAX_SLOTS);
    d->base.n_slots = n_slots;
    d->base.max_context = ctx;
    d->base.max_rows = DEFAULT_ROWS > n_slots + 1 ? DEFAULT_ROWS : n_slots + 1;
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
                (size_t)d->inter * 3) +
           (size_t)threads * (size_t)d->base.max_context * (size_t)(d->n_heads / d->n_kv);
}

static size_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : SIZE_MAX;
}

/* The KV cache and activations, refused up front when they and the widened
 * weights would not fit in memory. */
static int alloc_state(cpu_device *d, int threads, ssf_error *err)
{
    size_t ns = (size_t)d->base.n_slots, ctx = (size_t)d->base.max_context;
    d->layer_floats = ctx * (size_t)d->kv_dim;
    d->slot_floats = d->layer_floats * (size_t)d->cfg.n_layers;
    size_t kv_bytes = 2 * ns * d->slot_floats * sizeof(float);
    size_t act_bytes = activation_floats(d, threads) * sizeof(float);
    size_t need = kv_bytes + act_bytes + d->owned_bytes, phys = physical_memory();
    if (need > phys / 10 * 9)
        return ssf_fail(err,
                        "cpu device: the fp32 KV cache of %zu slots x %zu positions needs %zu "
                        "bytes (weights and activations %zu more), over 90%% of the %zu bytes "
                        "of memory; lower --max-context or --slots",
                        ns, ctx, kv_bytes, need - kv_bytes, phys);
    d->kcache = malloc(kv_bytes / 2);
    d->vcache = malloc(kv_bytes / 2);
    float *act = malloc(act_bytes);
    d->len = calloc(ns, sizeof *d->len);
    d->next = calloc(ns, sizeof *d->next);
    d->touched = calloc(ns, sizeof *d->touched);
    d->inv_freq = calloc((size_t)d->hd / 2 + 1, sizeof *d->inv_freq);
    if (act) d->owned[d->n_owned++] = act;
    if (!d->kcache || !d->vcache || !act || !d->len || !d->next || !d->touched || !d->inv_freq)
        return ssf_fail(err,
                        "cpu device: cannot allocate the %zu-byte KV cache (%zu slots x %zu "
                        "positions) and %zu bytes of activations; lower --max-context or --slots",
                        kv_bytes, ns, ctx, act_bytes);
    size_t r = (size_t)d->base.max_rows;
    d->x = act;
    d->xn = d->x + r * (size_t)d->hidden;
    d->hout = d->xn + r * (size_t)d->hidden;
    d->qkv = d->hout + r * (size_t)d->hidden;
    d->attn = d->qkv + r * (size_t)d->qkv_dim;
    d->gu = d->attn + r * (size_t)d->q_dim;
    d->act = d->gu + r * 2 * (size_t)d->inter;
    d->scores = d->act + r * (size_t)d->inter;
    ssf_cpu_rope_inv_freq(d->cfg.rope_theta, d->hd, d->inv_freq);
    return 0;
}

/* ---- parallel pieces --------------------------------------------------------------- */

typedef struct {
    cpu_device *d;
    const float *x, *w, *bias;
    float *y;
    int m, k, n, ldy, chunk;
} gemm_job;

static void gemm_task(void *ctx, int task, int worker)
{
    gemm_job *j = ctx;
    int n0 = task * j->chunk, n1 = n0 + j->chunk < j->n ? n0 + j->chunk : j->n;
    ssf_cpu_gemm_range(j->d->isa, j->x, j->m, j->k, j->w, j->bias, j->y, j->ldy, n0, n1);
}

/* Y[m, n] = X[m, k] W[n, k]^T (+ bias), columns split across the pool. */
static void gemm(cpu_device *d, const float *x, int m, int k, const float *w, const float *bias,
                 int n, float *y, int ldy)
{
    int tasks = ssf_cpu_pool_threads(d->pool) * GEMM_TASKS_PER_THREAD;
    int chunk = (n + tasks - 1) / tasks;
    chunk = (chunk + 2) / 3 * 3; /* whole 3-column tiles */
    gemm_job j = {d, x, w, bias, y, m, k, n, ldy, chunk};
    ssf_cpu_pool_run(d->pool, (n + chunk - 1) / chunk, gemm_task, &j);
}

typedef struct {
    cpu_device *d;
    const ssf_fwd_batch *b;
    int layer;
} layer_job;

/* RoPE on the row's q and k heads, then its K and V into the cache. */
static void rope_store_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    float *row = d->qkv + (size_t)r * (size_t)d->qkv_dim;
    int32_t pos = j->b->pos[r];
    for (int h = 0; h < d->n_heads + d->n_kv; h++)
        ssf_cpu_rope(row + (size_t)h * (size_t)d->hd, d->hd, d->inv_freq, pos);
    size_t at = (size_t)j->b->slot[r] * d->slot_floats + (size_t)j->layer * d->layer_floats +
                (size_t)pos * (size_t)d->kv_dim;
    memcpy(d->kcache + at, row + d->q_dim, sizeof(float) * (size_t)d->kv_dim);
    memcpy(d->vcache + at, row + d->q_dim + d->kv_dim, sizeof(float) * (size_t)d->kv_dim);
}

/* One (row, KV head) with the query heads of its group: GQA maps head h to
 * KV head h / (heads / kv_heads), so a group's heads are consecutive. */
static void attention_task(void *ctx, int task, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    int group = d->n_heads / d->n_kv;
    int r = task / d->n_kv, g = task % d->n_kv;
    size_t base = (size_t)j->b->slot[r] * d->slot_floats + (size_t)j->layer * d->layer_floats +
                  (size_t)g * (size_t)d->hd;
    size_t first = (size_t)g * (size_t)group * (size_t)d->hd;
    const float *q = d->qkv + (size_t)r * (size_t)d->qkv_dim + first;
    float *out = d->attn + (size_t)r * (size_t)d->q_dim + first;
    float *scores = d->scores + (size_t)worker * (size_t)d->base.max_context * (size_t)group;
    ssf_cpu_attention_group(d->isa, q, group, d->kcache + base, d->vcache + base, d->kv_dim,
                            j->b->pos[r] + 1, d->hd, d->scale, scores, out);
}

static void attn_norm_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    size_t at = (size_t)r * (size_t)d->hidden;
    ssf_cpu_rmsnorm(d->x + at, d->layers[j->layer].attn_norm, d->hidden, d->eps, d->xn + at);
}

/* The o projection's output (in xn) joins the residual, then the MLP norm. */
static void mlp_norm_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    size_t at = (size_t)r * (size_t)d->hidden;
    for (int i = 0; i < d->hidden; i++)
        d->x[at + i] += d->xn[at + i];
    ssf_cpu_rmsnorm(d->x + at, d->layers[j->layer].mlp_norm, d->hidden, d->eps, d->xn + at);
}

static void swiglu_task(void *ctx, int r, int worker)
{
    layer_job *j = ctx;
    cpu_device *d = j->d;
    const float *gu = d->gu + (size_t)r * 2 * (size_t)d->inter;
    ssf_cpu_swiglu(gu, gu + d->inter, d->inter, d->act + (size_t)r * (size_t)d->inter);
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

/* One line for the first row that breaks the batch contract of device.h. */
static int validate(cpu_device *d, const ssf_fwd_batch *b, const float *logits, ssf_error *err)
{
    if (b->n_rows < 1 || b->n_rows > d->base.max_rows)
        return ssf_fail(err, "cpu device: a batch of %d rows (1 to %d allowed)", b->n_rows,
                        d->base.max_rows);
    if (b->n_out < 0 || b->n_out > b->n_rows || (b->n_out > 0 && !logits))
        return ssf_fail(err, "cpu device: %d output rows for a batch of %d", b->n_out, b->n_rows);
    memcpy(d->next, d->len, sizeof(int32_t) * (size_t)d->base.n_slots);
    d->batch_id++;
    for (int r = 0; r < b->n_rows; r++) {
        int32_t s = b->slot[r], p = b->pos[r], t = b->token[r];
        if (s < 0 || s >= d->base.n_slots)
            return ssf_fail(err, "cpu device: row %d: slot %d of %d", r, s, d->base.n_slots);
        if (p < 0 || p >= d->base.max_context)
            return ssf_fail(err, "cpu device: row %d: position %d past the context of %d", r, p,
                            d->base.max_context);
        if (t < 0 || t >= d->vocab)
            return ssf_fail(err, "cpu device: row %d: token %d outside the vocabulary of %d", r, t,
                            d->vocab);
        /* a slot's first row may rewind it (a new sequence), never skip
         * ahead; its later rows follow one position at a time */
        if (d->touched[s] == d->batch_id ? p != d->next[s] : p > d->next[s])
            return ssf_fail(err,
                            "cpu device: row %d: position %d of slot %d leaves a gap or goes "
                            "back (next is %d)",
                            r, p, s, d->next[s]);
        d->next[s] = p + 1;
        d->touched[s] = d->batch_id;
    }
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
        memcpy(d->x + (size_t)r * h, d->embed + (size_t)b->token[r] * h, h * sizeof(float));
    for (int l = 0; l < d->cfg.n_layers; l++)
        run_layer(d, b, l);
    for (int i = 0; i < b->n_out; i++)
        ssf_cpu_rmsnorm(d->x + (size_t)b->out_rows[i] * h, d->final_norm, d->hidden, d->eps,
                        d->hout + (size_t)i * h);
    if (b->n_out > 0)
        gemm(d, d->hout, b->n_out, d->hidden, d->lm_head, NULL, d->vocab, logits, d->vocab);
    memcpy(d->len, d->next, sizeof(int32_t) * (size_t)d->base.n_slots);
    return 0;
}

static int cpu_copy_slot(ssf_device *dev, int src, int dst, int n_tokens, ssf_error *err)
{
    cpu_device *d = (cpu_device *)dev;
    if (src < 0 || src >= d->base.n_slots || dst < 0 || dst >= d->base.n_slots)
        return ssf_fail(err, "cpu device: copy_slot %d -> %d with %d slots", src, dst,
                        d->base.n_slots);
    if (n_tokens < 0 || n_tokens > d->len[src])
        return ssf_fail(err, "cpu device: copy_slot of %d positions from slot %d, which holds %d",
                        n_tokens, src, d->len[src]);
    if (src != dst) {
        size_t n = (size_t)n_tokens * (size_t)d->kv_dim * sizeof(float);
        for (int l = 0; l < d->cfg.n_layers; l++) {
            size_t from = (size_t)src * d->slot_floats + (size_t)l * d->layer_floats;
            size_t to = (size_t)dst * d->slot_floats + (size_t)l * d->layer_floats;
            memcpy(d->kcache + to, d->kcache + from, n);
            memcpy(d->vcache + to, d->vcache + from, n);
        }
    }
    d->len[dst] = n_tokens;
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
    free(d->kcache);
    free(d->vcache);
    free(d->len);
    free(d->next);
    free(d->touched);
    free(d);
}

static int default_threads(const ssf_device_options *o)
{
    if (o && o->threads > 0) return o->threads;
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
    d->base = (ssf_device){
        .name = "cpu", .forward = cpu_forward, .copy_slot = cpu_copy_slot, .close = cpu_close};
    d->cfg = *ssf_model_config_of(m);
    d->isa = ssf_cpu_isa_detect();
    int threads = default_threads(o);
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
