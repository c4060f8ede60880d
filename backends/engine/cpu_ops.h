/*
 * cpu_ops.h - the fp32 arithmetic of the CPU device: GEMM, RMSNorm, RoPE,
 * SwiGLU, one head of attention, and a small pthread pool.
 *
 * Batch invariance is the design rule: every output element is computed by
 * the same sequence of floating-point operations whatever the number of rows
 * in the call and wherever the row sits among them, so a row's logits are
 * bit-identical alone or in any batch.  OpenBLAS does not give that (its
 * micro-kernel edge paths and thread splits change the rounding of a row
 * with M), hence the GEMM here.
 */
#ifndef SSFTEVAL_ENGINE_CPU_OPS_H
#define SSFTEVAL_ENGINE_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Which GEMM/dot kernels: chosen once per device, never per call, so the
 * rounding of a row cannot change between calls. */
typedef enum ssf_cpu_isa {
    SSF_CPU_PORTABLE, /* plain C: 8 partial sums, multiply then add */
    SSF_CPU_AVX2,     /* x86-64 AVX2 + FMA intrinsics */
} ssf_cpu_isa;

/* The best kernel set this CPU runs. */
ssf_cpu_isa ssf_cpu_isa_detect(void);
const char *ssf_cpu_isa_name(ssf_cpu_isa isa);

/* The GEMM's weights are packed once at open: W [n, k] (a PyTorch Linear
 * weight) as panels of SSF_CPU_PANEL rows, panel p holding rows p*24 ..
 * p*24+23 as [k][24] (rows past n zero), so that the kernel reads 24
 * output columns' weights a k step from one cache line and a half.
 *
 * A packed weight holds fp32 or, from a BF16 checkpoint, the BF16 values
 * themselves: the GEMM widens a slice of k steps at a time as it reaches
 * it, which is exact, so both give the same bits, and BF16 halves the bytes
 * a decode step streams from memory. */
#define SSF_CPU_PANEL 24

typedef struct ssf_cpu_matrix {
    const float *f32;     /* NULL when bf16 is set */
    const uint16_t *bf16; /* NULL when f32 is set */
} ssf_cpu_matrix;

/* Elements a packed [n, k] weight takes. */
size_t ssf_cpu_packed_floats(int n, int k);
/* Writes row r (k values) of W into its packed image / reads it back. */
void ssf_cpu_pack_row(float *packed, int k, int r, const float *row);
void ssf_cpu_pack_row_bf16(uint16_t *packed, int k, int r, const uint16_t *row);
void ssf_cpu_unpack_row(ssf_cpu_matrix w, int k, int r, float *row);

/* Y[m, n0..n1) = X[m, :] . W[n, :] (+ bias[n]) for all m rows of X, W
 * packed ([n, k] before packing; n0 a multiple of SSF_CPU_PANEL).  X is
 * [m, k] (row stride k), Y row stride ldy.  Each element is one FMA chain,
 * y = fma(x[c], w[c], y) for c = 0, 1, .. k-1 from 0, then + bias: the
 * same bits whatever m, n0, n1, the kernel set or the storage of W (fma
 * rounds once either way), so a row's result never depends on the batch
 * around it. */
void ssf_cpu_gemm_range(ssf_cpu_isa isa, const float *x, int m, int k, ssf_cpu_matrix w, int n,
                        const float *bias, float *y, int ldy, int n0, int n1);

/* y = x * rsqrt(mean(x^2) + eps) * w over one row of n (x and y may alias). */
void ssf_cpu_rmsnorm(ssf_cpu_isa isa, const float *x, const float *w, int n, float eps, float *y);

/* inv_freq[i] = 1 / theta^((2i)/d) for i < d/2, in fp32 as transformers
 * computes it. */
void ssf_cpu_rope_inv_freq(double theta, int head_dim, float *inv_freq);

/* The rotation of position pos: cos_sin[i] = cos(pos * inv_freq[i]) and
 * cos_sin[d/2 + i] its sin, for i < d/2 (fp32 product, fp32 cos/sin).  One
 * table serves every head of every layer at that position. */
void ssf_cpu_rope_angles(int head_dim, const float *inv_freq, int32_t pos, float *cos_sin);

/* Rotate-half RoPE of one head vector v[head_dim]: pairs (i, i + d/2) turn
 * by the angles of a ssf_cpu_rope_angles table. */
void ssf_cpu_rope_rotate(float *v, int head_dim, const float *cos_sin);

/* Both, for one vector at position pos (cos_sin: head_dim floats). */
void ssf_cpu_rope(float *v, int head_dim, const float *inv_freq, int32_t pos, float *cos_sin);

/* x[i] = exp(x[i]): glibc's vector expf 8 at a time where the build has
 * it (libmvec) and the CPU runs AVX2, expf otherwise; either way the
 * function of an element does not depend on where it sits. */
void ssf_cpu_exp(ssf_cpu_isa isa, float *x, int n);

/* out[i] = silu(gate[i]) * up[i], exp as ssf_cpu_exp (out may not alias). */
void ssf_cpu_swiglu(ssf_cpu_isa isa, const float *gate, const float *up, int n, float *out);

/* One layer's K and V for one KV head of a sequence in the paged cache:
 * position j is row j % block_size of block table[j / block_size].  k and v
 * point at row 0 of block 0 (layer and head offsets included). */
typedef struct ssf_cpu_kv_pages {
    const float *k, *v;
    const int32_t *table;
    int block_size;
    size_t block_stride; /* floats from block b to block b + 1 */
    int row_stride;      /* floats from one position to the next in a block */
} ssf_cpu_kv_pages;

/* n_group query heads (consecutive in q and out) sharing one KV head
 * against positions 0..n_ctx) of kv: out = softmax(q.K^T * scale) V with
 * fp32 max-subtracted softmax.  Each K/V row is read once for the group, and
 * positions are visited in order with the same dot and axpy calls whatever
 * the block size, so the result does not depend on the paging.  scores
 * holds n_group * n_ctx floats. */
void ssf_cpu_attention_group(ssf_cpu_isa isa, const float *q, int n_group,
                             const ssf_cpu_kv_pages *kv, int n_ctx, int head_dim, float scale,
                             float *scores, float *out);
/* One head against n_ctx contiguous K and V rows `stride` floats apart (one
 * block); scores holds n_ctx floats. */
void ssf_cpu_attention(ssf_cpu_isa isa, const float *q, const float *k, const float *v, int stride,
                       int n_ctx, int head_dim, float scale, float *scores, float *out);

/* ---- thread pool ------------------------------------------------------------ */

typedef struct ssf_cpu_pool ssf_cpu_pool;
/* fn(ctx, task, worker) for task in [0, n_tasks); worker < n_threads picks
 * the caller's scratch. */
typedef void (*ssf_cpu_task_fn)(void *ctx, int task, int worker);

/* n_threads workers counting the caller (1: no threads are started).
 * NULL when a thread cannot be created. */
ssf_cpu_pool *ssf_cpu_pool_new(int n_threads);
int ssf_cpu_pool_threads(const ssf_cpu_pool *p);
/* Runs all tasks, the calling thread included, and returns when all are done. */
void ssf_cpu_pool_run(ssf_cpu_pool *p, int n_tasks, ssf_cpu_task_fn fn, void *ctx);
void ssf_cpu_pool_free(ssf_cpu_pool *p);

#endif
