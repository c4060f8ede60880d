/*
 * cuda_plan.c - the paged attention's launch shape (cuda_plan.h).
 */
#include "cuda_plan.h"

static int pad_group(int g)
{
    int p = 1;
    while (p < g)
        p *= 2;
    return p;
}

static int ceil_div(int a, int b)
{
    return (a + b - 1) / b;
}

/* Chunks are whole blocks (a CTA never shares a block with another) and,
 * where the two nest, whole rounds of the CTA's warps' tiles too. */
static int chunk_unit(int block_size)
{
    int round = SSF_ATTN_TILE * (SSF_ATTN_THREADS / 32);
    if (round % block_size == 0) return round;
    return block_size;
}

size_t ssf_attn_smem(int head_dim)
{
    size_t stages = (size_t)(SSF_ATTN_THREADS / 32) * 2 * 2 * SSF_ATTN_TILE *
                    (size_t)(head_dim + SSF_ATTN_KV_PAD) * 2;
    size_t merge = (size_t)(SSF_ATTN_THREADS / 32) * SSF_ATTN_MAX_GROUP * (head_dim + 2) * 4;
    return stages > merge ? stages : merge;
}

/* Splits only when the (row, KV head) CTAs are fewer than SSF_ATTN_WAVES
 * per SM and the longest context gives every split at least
 * SSF_ATTN_MIN_CHUNK positions; then as many as reach that count, so a
 * split plan never exceeds SSF_ATTN_WAVES x n_sms CTAs. */
static int choose_splits(int base, int max_ctx, int n_sms)
{
    if (base >= SSF_ATTN_WAVES * n_sms) return 1;
    int by_sms = SSF_ATTN_WAVES * n_sms / base;
    int by_ctx = max_ctx / SSF_ATTN_MIN_CHUNK;
    int s = by_sms < by_ctx ? by_sms : by_ctx;
    return s >= 2 ? s : 1;
}

int ssf_attn_plan(int n_rows, int n_kv_heads, int group, int max_ctx, int head_dim, int block_size,
                  int n_sms, ssf_attn_shape *out)
{
    if ((head_dim != 64 && head_dim != 128) || n_rows < 1 || n_kv_heads < 1 || group < 1 ||
        max_ctx < 1 || block_size < 1 || n_sms < 1)
        return -1;
    ssf_attn_shape s;
    s.head_chunks = ceil_div(group, SSF_ATTN_MAX_GROUP);
    s.group_pad = pad_group(ceil_div(group, s.head_chunks));
    int base = n_rows * n_kv_heads * s.head_chunks;
    s.splits = choose_splits(base, max_ctx, n_sms);
    int unit = chunk_unit(block_size);
    s.chunk = ceil_div(ceil_div(max_ctx, s.splits), unit) * unit;
    /* rounding up may leave the last splits empty for every row: drop them */
    s.splits = ceil_div(max_ctx, s.chunk);
    s.grid[0] = n_rows;
    s.grid[1] = n_kv_heads * s.head_chunks;
    s.grid[2] = s.splits;
    s.threads = SSF_ATTN_THREADS;
    s.smem = ssf_attn_smem(head_dim);
    s.partial_floats =
        s.splits > 1 ? (size_t)n_rows * n_kv_heads * group * s.splits * (head_dim + 2) : 0;
    *out = s;
    return 0;
}

size_t ssf_attn_partial_floats_max(int n_sms, int head_dim)
{
    return (size_t)SSF_ATTN_WAVES * n_sms * SSF_ATTN_MAX_GROUP * (head_dim + 2);
}
