/*
 * test_engine_cpu.c - the CPU device: its kernels against naive double
 * references, batch invariance (bit for bit), the KV cache (prefill, decode,
 * chunks, forks) on a written tiny model, and parity with transformers on
 * the fixtures of tools/make-engine-fixtures.py (tests/fixtures/engine).
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend.h"
#include "cpu_ops.h"
#include "device.h"
#include "engine.h"
#include "model-fixture.h"
#include "ssfteval/model.h"
#include "ssfteval/tokenizer.h"
#include "test-support.h"

/* Deterministic values in [-1, 1). */
static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xFFFFFF) / (float)(1 << 23) - 1.0f;
}

static float *rnd_array(size_t n, uint64_t seed)
{
    float *a = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        a[i] = rnd(&seed);
    return a;
}

/* ---- kernels ---------------------------------------------------------------------- */

/* BF16 bits of a float that BF16 holds exactly, and such floats. */
static uint16_t bf16_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)(u >> 16);
}

static void round_to_bf16(float *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], sizeof u);
        u &= 0xFFFF0000u;
        memcpy(&a[i], &u, sizeof u);
    }
}

/* Every row of W packed (cpu_ops.h), as fp32 or as BF16 (W's values must
 * then be BF16's), and read back. */
static ssf_cpu_matrix pack(const float *w, int n, int k, int bf16)
{
    size_t elems = ssf_cpu_packed_floats(n, k);
    ssf_cpu_matrix m = {NULL, NULL};
    if (bf16) {
        uint16_t *p = calloc(elems, sizeof(uint16_t)), *row = malloc((size_t)k * 2);
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < k; c++)
                row[c] = bf16_bits(w[(size_t)r * k + c]);
            ssf_cpu_pack_row_bf16(p, k, r, row);
        }
        free(row);
        m.bf16 = p;
    } else {
        float *p = calloc(elems, sizeof(float));
        for (int r = 0; r < n; r++)
            ssf_cpu_pack_row(p, k, r, w + (size_t)r * k);
        m.f32 = p;
    }
    float *back = malloc((size_t)k * sizeof(float));
    for (int r = 0; r < n; r++) {
        ssf_cpu_unpack_row(m, k, r, back);
        assert_memory_equal(back, w + (size_t)r * k, (size_t)k * sizeof(float));
    }
    free(back);
    return m;
}

/* Odd sizes: two whole panels and a partial one, row tiles with a
 * remainder, k over one k block with a tail. */
enum { GM = 37, GN = 2 * SSF_CPU_PANEL + 5, GK = 300 };

static float *check_gemm(ssf_cpu_isa isa, int bf16)
{
    float *x = rnd_array((size_t)GM * GK, 1), *w = rnd_array((size_t)GN * GK, 2);
    float *bias = rnd_array(GN, 3);
    round_to_bf16(w, (size_t)GN * GK); /* the same values for both storages */
    ssf_cpu_matrix wp = pack(w, GN, GK, bf16);
    float *all = calloc((size_t)GM * GN, sizeof(float));
    float *y = calloc((size_t)GM * GN, sizeof(float));
    ssf_cpu_gemm_range(isa, x, GM, GK, wp, GN, bias, all, GN, 0, GN);
    for (int i = 0; i < GM; i++)
        for (int n = 0; n < GN; n++) {
            /* exactly one fma chain over k, then the bias */
            float chain = 0.0f;
            double ref = bias[n];
            for (int k = 0; k < GK; k++) {
                chain = fmaf(x[i * GK + k], w[n * GK + k], chain);
                ref += (double)x[i * GK + k] * w[n * GK + k];
            }
            assert_true(all[i * GN + n] == chain + bias[n]);
            assert_true(fabs(all[i * GN + n] - ref) < 1e-4);
        }
    /* any number of rows, any row offset, any column split: same bits */
    for (int m = 1; m <= GM; m++)
        for (int off = 0; off + m <= GM; off += 5) {
            memset(y, 0, (size_t)GM * GN * sizeof(float));
            int split = (m % 3) * SSF_CPU_PANEL;
            ssf_cpu_gemm_range(isa, x + (size_t)off * GK, m, GK, wp, GN, bias, y, GN, 0, split);
            ssf_cpu_gemm_range(isa, x + (size_t)off * GK, m, GK, wp, GN, bias, y, GN, split, GN);
            assert_memory_equal(y, all + (size_t)off * GN, (size_t)m * GN * sizeof(float));
        }
    free(x), free(w), free(bias), free((void *)wp.f32), free((void *)wp.bf16), free(y);
    return all;
}

static void test_gemm(void **state)
{
    (void)state;
    float *ref = check_gemm(SSF_CPU_PORTABLE, 0);
    /* the kernel sets and the weights' storage agree bit for bit */
    for (int isa = 0; isa < 2; isa++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            float *y = check_gemm(isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE, bf16);
            assert_memory_equal(y, ref, (size_t)GM * GN * sizeof(float));
            free(y);
        }
    free(ref);
}

static void test_rmsnorm_swiglu(void **state)
{
    (void)state;
    enum { N = 45 };
    float *x = rnd_array(N, 4), *w = rnd_array(N, 5), y[N];
    double ss = 0;
    for (int i = 0; i < N; i++)
        ss += (double)x[i] * x[i];
    double inv = 1 / sqrt(ss / N + 1e-6);
    for (int isa = 0; isa < 2; isa++) {
        ssf_cpu_rmsnorm(isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE, x, w, N, 1e-6f, y);
        for (int i = 0; i < N; i++)
            assert_true(fabs(y[i] - x[i] * inv * w[i]) < 1e-6);
    }
    for (int isa = 0; isa < 2; isa++) {
        ssf_cpu_swiglu(isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE, x, w, N, y);
        for (int i = 0; i < N; i++)
            assert_true(fabs(y[i] - x[i] / (1 + exp(-(double)x[i])) * w[i]) < 1e-6);
    }
    free(x), free(w);
}

/* ssf_cpu_exp within 2 ulp of exp over softmax's and SiLU's range, and an
 * element's bits the same alone as in any place of a longer array. */
static void test_exp(void **state)
{
    (void)state;
    enum { N = 21 };
    for (int isa = 0; isa < 2; isa++) {
        ssf_cpu_isa which = isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE;
        float x[N], y[N];
        for (int i = 0; i < N; i++)
            x[i] = y[i] = -87.0f + 5.1f * (float)i;
        ssf_cpu_exp(which, y, N);
        for (int i = 0; i < N; i++) {
            double ref = exp((double)x[i]);
            assert_true(fabs(y[i] - ref) <= 2.4e-7 * ref);
            float alone = x[i];
            ssf_cpu_exp(which, &alone, 1);
            assert_memory_equal(&alone, &y[i], sizeof alone);
        }
    }
}

static void test_rope(void **state)
{
    (void)state;
    float inv[64], cs[128];
    ssf_cpu_rope_inv_freq(10000.0, 4, inv);
    assert_true(inv[0] == 1.0f);
    assert_true(fabsf(inv[1] - 0.01f) < 1e-9f);
    /* pairs (0, 2) and (1, 3) turn by 3 and 0.03 radians at position 3 */
    float v[4] = {1, 2, 3, 4};
    ssf_cpu_rope(v, 4, inv, 3, cs);
    assert_true(fabs(v[0] - (1 * cos(3.0) - 3 * sin(3.0))) < 1e-6);
    assert_true(fabs(v[2] - (3 * cos(3.0) + 1 * sin(3.0))) < 1e-6);
    assert_true(fabs(v[1] - (2 * cos(0.03) - 4 * sin(0.03))) < 1e-6);
    assert_true(fabs(v[3] - (4 * cos(0.03) + 2 * sin(0.03))) < 1e-6);
    /* position 0 is the identity; theta 1e6, d 128 as in Qwen2 */
    ssf_cpu_rope_inv_freq(1e6, 128, inv);
    for (int i = 0; i < 64; i++)
        assert_true(fabs(inv[i] - pow(1e6, -2.0 * i / 128)) <= 1e-6 * pow(1e6, -2.0 * i / 128));
    float *u = rnd_array(128, 6), *u0 = rnd_array(128, 6);
    ssf_cpu_rope(u, 128, inv, 0, cs);
    assert_memory_equal(u, u0, 128 * sizeof(float));
    free(u), free(u0);
}

/* One head against a double-precision reference: ctx x hd with rows
 * `stride` floats apart. */
static void check_attention(int ctx, int hd, int stride)
{
    float *q = rnd_array((size_t)hd, 7), *k = rnd_array((size_t)ctx * stride, 8);
    float *v = rnd_array((size_t)ctx * stride, 9);
    float *scores = calloc((size_t)ctx, sizeof(float)), *out = calloc((size_t)hd, sizeof(float));
    double *p = calloc((size_t)ctx, sizeof(double));
    float scale = 1.0f / sqrtf((float)hd);
    for (int isa = 0; isa < 2; isa++) {
        ssf_cpu_attention(isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE, q, k, v, stride, ctx, hd,
                          scale, scores, out);
        double sum = 0, max = -INFINITY;
        for (int j = 0; j < ctx; j++) {
            p[j] = 0;
            for (int d = 0; d < hd; d++)
                p[j] += (double)q[d] * k[(size_t)j * stride + d];
            p[j] *= scale;
            max = fmax(max, p[j]);
        }
        for (int j = 0; j < ctx; j++)
            sum += p[j] = exp(p[j] - max);
        for (int d = 0; d < hd; d++) {
            double ref = 0;
            for (int j = 0; j < ctx; j++)
                ref += p[j] / sum * v[(size_t)j * stride + d];
            assert_true(fabs(out[d] - ref) < 1e-6);
        }
    }
    free(q), free(k), free(v), free(scores), free(out), free(p);
}

/* Shapes that take every path: fewer positions than a score tile or the
 * prefetch distance, and more; head dims with whole 32-float V tiles, 8-float
 * ones and a tail. */
static void test_attention(void **state)
{
    (void)state;
    check_attention(13, 24, 50);
    check_attention(45, 70, 80);
}

/* Paged attention visits the positions in order whatever the block size or
 * block order, so its bits equal one contiguous block's; each head of a
 * group gets the bits it gets alone.  The block table has exactly the
 * sequence's blocks, so a read past it (the prefetches ahead) shows under
 * AddressSanitizer. */
static void check_paged_attention(ssf_cpu_isa isa, int ctx, int hd, int stride)
{
    enum { GROUP = 3 };
    float *q = rnd_array(GROUP * (size_t)hd, 10), *k = rnd_array((size_t)ctx * stride, 11);
    float *v = rnd_array((size_t)ctx * stride, 12);
    float *scores = calloc((size_t)GROUP * ctx, sizeof(float));
    float *ref = calloc((size_t)GROUP * hd, sizeof(float)), *out = calloc((size_t)GROUP * hd, 4);
    float scale = 1.0f / sqrtf((float)hd);
    static const int32_t block0 = 0;
    ssf_cpu_kv_pages one = {k, v, &block0, ctx, 0, stride};
    ssf_cpu_attention_group(isa, q, GROUP, &one, ctx, hd, scale, scores, ref);
    for (int g = 0; g < GROUP; g++) {
        ssf_cpu_attention(isa, q + (size_t)g * hd, k, v, stride, ctx, hd, scale, scores, out);
        assert_memory_equal(out, ref + (size_t)g * hd, (size_t)hd * sizeof(float));
    }
    int sizes[] = {1, 2, 3, 5, 13, 16, ctx};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int bs = sizes[s], used = (ctx + bs - 1) / bs, nb = used + 2;
        float *kp = calloc((size_t)nb * bs * stride, sizeof(float));
        float *vp = calloc((size_t)nb * bs * stride, sizeof(float));
        int32_t *table = calloc((size_t)used, sizeof(int32_t));
        for (int i = 0; i < used; i++)
            table[i] = nb - 1 - i; /* descending, the two lowest unused */
        for (int j = 0; j < ctx; j++) {
            size_t at = ((size_t)table[j / bs] * bs + j % bs) * stride;
            memcpy(kp + at, k + (size_t)j * stride, (size_t)stride * sizeof(float));
            memcpy(vp + at, v + (size_t)j * stride, (size_t)stride * sizeof(float));
        }
        ssf_cpu_kv_pages kv = {kp, vp, table, bs, (size_t)bs * stride, stride};
        ssf_cpu_attention_group(isa, q, GROUP, &kv, ctx, hd, scale, scores, out);
        assert_memory_equal(out, ref, (size_t)GROUP * hd * sizeof(float));
        free(kp), free(vp), free(table);
    }
    free(q), free(k), free(v), free(scores), free(ref), free(out);
}

static void test_paged_attention(void **state)
{
    (void)state;
    for (int isa = 0; isa < 2; isa++) {
        ssf_cpu_isa which = isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE;
        check_paged_attention(which, 13, 24, 50);
        check_paged_attention(which, 45, 70, 80);
    }
}

/* A CPU with AVX2 and FMA runs the AVX2 kernels; the name, which enters a
 * run's identity, says which exp they use (libmvec's differs in last bits). */
static void test_isa(void **state)
{
    (void)state;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_int_equal(ssf_cpu_isa_detect(), SSF_CPU_AVX2);
#ifdef SSF_HAVE_LIBMVEC
    assert_string_equal(ssf_cpu_isa_name(SSF_CPU_AVX2), "avx2-libmvec");
#else
    assert_string_equal(ssf_cpu_isa_name(SSF_CPU_AVX2), "avx2");
#endif
#endif
    assert_string_equal(ssf_cpu_isa_name(SSF_CPU_PORTABLE), "portable");
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void count_task(void *ctx, int task, int worker)
{
    int *hits = ctx;
    __atomic_fetch_add(&hits[task], 1, __ATOMIC_RELAXED);
    assert_true(worker >= 0 && worker < 3);
}

static void test_pool(void **state)
{
    (void)state;
    ssf_cpu_pool *p = ssf_cpu_pool_new(3);
    assert_non_null(p);
    assert_int_equal(ssf_cpu_pool_threads(p), 3);
    int hits[100];
    for (int round = 0; round < 200; round++) {
        int n = round % 100 + 1;
        memset(hits, 0, sizeof hits);
        ssf_cpu_pool_run(p, n, count_task, hits);
        for (int i = 0; i < n; i++)
            assert_int_equal(hits[i], 1);
    }
    /* idle workers sleep: three spinning would take about 0.9 s of CPU in
     * these 0.3 s (the engine idles while the run grades and stores) */
    struct timespec nap = {0, 100000000};
    nanosleep(&nap, NULL);
    double before = cpu_seconds();
    nap.tv_nsec = 300000000;
    nanosleep(&nap, NULL);
    double used = cpu_seconds() - before;
    if (used > 0.1) fail_msg("an idle pool used %.3f s of CPU in 0.3 s", used);
    ssf_cpu_pool_free(p);
}

/* ---- the device on a model ------------------------------------------------------------ */

enum { N_SEQS = 8 };

/* Block tables for N_SEQS sequences, each given its own per_seq blocks of
 * the pool: sequence s the blocks s * per_seq, s * per_seq + 1, ... or,
 * scattered, the same count spread over the pool in a non-monotonic order. */
typedef struct paging {
    int bs, per_seq, n_blocks, scatter;
    int32_t *tab[N_SEQS];
    const int32_t *tables[N_SEQS];
} paging;

static int gcd(int a, int b)
{
    return b ? gcd(b, a % b) : a;
}

static void paging_layout(paging *pg)
{
    int scatter = pg->scatter;
    assert_int_equal(gcd(37, pg->n_blocks), 1); /* i -> 37 i + 11 is a permutation */
    for (int s = 0; s < N_SEQS; s++)
        for (int i = 0; i < pg->per_seq; i++) {
            int idx = s * pg->per_seq + i;
            pg->tab[s][i] = scatter ? pg->n_blocks - 1 - (idx * 37 + 11) % pg->n_blocks : idx;
        }
}

static void paging_init(paging *pg, const ssf_device *d, int scatter)
{
    pg->bs = d->block_size;
    pg->n_blocks = d->n_blocks;
    pg->per_seq = d->n_blocks / N_SEQS;
    assert_true((int64_t)pg->per_seq * pg->bs >= d->max_context);
    for (int s = 0; s < N_SEQS; s++) {
        pg->tab[s] = malloc((size_t)pg->per_seq * sizeof(int32_t));
        pg->tables[s] = pg->tab[s];
    }
    pg->scatter = scatter;
    paging_layout(pg);
}

static void paging_free(paging *pg)
{
    for (int s = 0; s < N_SEQS; s++)
        free(pg->tab[s]);
}

typedef struct rows {
    int n, n_out;
    int32_t token[600], pos[600], seq[600], out[600];
} rows;

static void add_row(rows *r, int32_t token, int32_t pos, int32_t seq, int want)
{
    r->token[r->n] = token;
    r->pos[r->n] = pos;
    r->seq[r->n] = seq;
    if (want) r->out[r->n_out++] = r->n;
    r->n++;
}

static int run_rows(ssf_device *d, const paging *pg, const rows *r, float *logits, ssf_error *err)
{
    ssf_fwd_batch b = {.n_rows = r->n,
                       .token = r->token,
                       .pos = r->pos,
                       .seq = r->seq,
                       .n_seqs = N_SEQS,
                       .tables = pg->tables,
                       .n_out = r->n_out,
                       .out_rows = r->out};
    return d->forward(d, &b, logits, err);
}

static ssf_device *open_cpu(const char *dir, ssf_model **m, int ctx, int block_size, int threads)
{
    ssf_error err;
    if (ssf_model_open(dir, m, &err)) fail_msg("%s", err.msg);
    ssf_device_options o = {
        .n_slots = N_SEQS, .max_context = ctx, .block_size = block_size, .threads = threads};
    ssf_device *d = ssf_device_cpu_open(*m, &o, &err);
    if (!d) fail_msg("%s", err.msg);
    return d;
}

/* The logits of every position of ids[0..n) in one batch (sequence seq). */
static float *full_forward_in(ssf_device *d, const paging *pg, const int32_t *ids, int n, int vocab,
                              int seq)
{
    rows *r = calloc(1, sizeof *r);
    for (int i = 0; i < n; i++)
        add_row(r, ids[i], i, seq, 1);
    float *logits = malloc((size_t)n * vocab * sizeof(float));
    ssf_error err;
    if (run_rows(d, pg, r, logits, &err)) fail_msg("%s", err.msg);
    free(r);
    return logits;
}

static float *full_forward(ssf_device *d, const paging *pg, const int32_t *ids, int n, int vocab)
{
    return full_forward_in(d, pg, ids, n, vocab, 0);
}

/* Prefill in chunks of `chunk` rows (sequence seq): the same bits as one
 * batch at every position, also when decoding one token at a time
 * (chunk 1). */
static void check_chunks(ssf_device *d, const paging *pg, const int32_t *ids, int n, int vocab,
                         const float *ref, int chunk, int seq)
{
    float *logits = malloc((size_t)chunk * vocab * sizeof(float));
    rows *r = calloc(1, sizeof *r);
    ssf_error err;
    for (int at = 0; at < n; at += chunk) {
        r->n = r->n_out = 0;
        for (int i = at; i < n && i < at + chunk; i++)
            add_row(r, ids[i], i, seq, 1);
        if (run_rows(d, pg, r, logits, &err)) fail_msg("%s", err.msg);
        assert_memory_equal(logits, ref + (size_t)at * vocab, (size_t)r->n * vocab * sizeof(float));
    }
    free(r);
    free(logits);
}

/* Row `probe` of the sequence, computed inside batches of `size` rows
 * whose other rows prefill or decode other sequences: bit-identical to
 * `ref_row` every time, wherever it sits in the batch. */
static void check_batch_invariance(ssf_device *d, const paging *pg, const int32_t *ids, int n,
                                   int vocab, const float *ref)
{
    static const int sizes[] = {1, 2, 3, 7, 32};
    float *logits = malloc(40 * (size_t)vocab * sizeof(float));
    rows *r = calloc(1, sizeof *r);
    ssf_error err;
    int probe = n - 1;
    /* sequence 0 holds ids[0..probe) from a one-batch prefill */
    r->n = r->n_out = 0;
    for (int i = 0; i < probe; i++)
        add_row(r, ids[i], i, 0, 0);
    if (run_rows(d, pg, r, logits, &err)) fail_msg("%s", err.msg);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int where = 0; where<sizes[s]; where += sizes[s]> 3 ? 3 : 1) {
            r->n = r->n_out = 0;
            for (int i = 0; i < sizes[s]; i++) {
                if (i == where) {
                    add_row(r, ids[probe], probe, 0, 1);
                    continue;
                }
                /* others: sequence 1 prefills from 0, 2.. decode at varied depths */
                int other = i < where ? i : i - 1;
                if (other < 4)
                    add_row(r, ids[(other * 5) % n], other, 1, other == 3);
                else
                    add_row(r, ids[other % n], (other - 4) / 6, 2 + other % 6, 1);
            }
            if (run_rows(d, pg, r, logits, &err)) fail_msg("%s", err.msg);
            int out_index = 0;
            while (r->out[out_index] != where)
                out_index++;
            assert_memory_equal(logits + (size_t)out_index * vocab, ref + (size_t)probe * vocab,
                                (size_t)vocab * sizeof(float));
        }
    free(r);
    free(logits);
}

/* Sequence `to` shares the first `n` blocks of sequence `from` (its own
 * blocks from there on); undone by paging_layout. */
static void share_blocks(paging *pg, int from, int to, int n)
{
    memcpy(pg->tab[to], pg->tab[from], (size_t)n * sizeof(int32_t));
}

/* Sequences 4 and 5 (and then 6) fork sequence 3's prompt of `half`
 * positions as the engine does: sharing its full blocks, each copying the
 * partial last one with copy_blocks. */
static void fork_prompt(ssf_device *d, paging *pg, int half, const int *seqs, int n_seqs)
{
    ssf_error err;
    int full = half / pg->bs;
    ssf_block_copy c[3];
    for (int i = 0; i < n_seqs; i++) {
        share_blocks(pg, 3, seqs[i], full);
        c[i] = (ssf_block_copy){pg->tab[3][full], pg->tab[seqs[i]][full]};
    }
    if (half % pg->bs) assert_int_equal(d->copy_blocks(d, c, n_seqs, &err), 0);
}

/* Decodes ids[from..n) in `seq` one position a step: the reference bits. */
static void decode_matches(ssf_device *d, const paging *pg, const int32_t *ids, int from, int n,
                           int vocab, const float *ref, int seq)
{
    float *logits = malloc((size_t)vocab * sizeof(float));
    ssf_error err;
    for (int i = from; i < n; i++) {
        rows r = {0};
        add_row(&r, ids[i], i, seq, 1);
        assert_int_equal(run_rows(d, pg, &r, logits, &err), 0);
        assert_memory_equal(logits, ref + (size_t)i * vocab, (size_t)vocab * sizeof(float));
    }
    free(logits);
}

/* Two forks of one prefilled prompt decode different continuations in the
 * same batches, each giving its own full forward's bits; a third fork made
 * afterwards still sees the prompt, so the shared blocks were not written. */
static void check_fork(ssf_device *d, paging *pg, const int32_t *ids, int n, int vocab,
                       const float *ref)
{
    ssf_error err;
    int half = n / 2;
    int32_t *alt = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        alt[i] = i < half ? ids[i] : (ids[i] + 5) % vocab;
    float *alt_ref = full_forward(d, pg, alt, n, vocab);
    rows *r = calloc(1, sizeof *r);
    for (int i = 0; i < half; i++)
        add_row(r, ids[i], i, 3, 0);
    assert_int_equal(run_rows(d, pg, r, NULL, &err), 0);
    static const int ab[2] = {4, 5}, c[1] = {6};
    fork_prompt(d, pg, half, ab, 2);
    float *logits = malloc(2 * (size_t)vocab * sizeof(float));
    for (int i = half; i < n; i++) {
        r->n = r->n_out = 0;
        add_row(r, alt[i], i, 4, 1);
        add_row(r, ids[i], i, 5, 1);
        assert_int_equal(run_rows(d, pg, r, logits, &err), 0);
        assert_memory_equal(logits, alt_ref + (size_t)i * vocab, (size_t)vocab * sizeof(float));
        assert_memory_equal(logits + vocab, ref + (size_t)i * vocab, (size_t)vocab * sizeof(float));
    }
    fork_prompt(d, pg, half, c, 1);
    decode_matches(d, pg, ids, half, n, vocab, ref, 6);
    paging_layout(pg);
    free(logits);
    free(r);
    free(alt);
    free(alt_ref);
}

/* Sequence 7 holds token 1 at position 0; position 1 (token 2) gives `want`. */
static void check_seq7(ssf_device *d, const paging *pg, const float *want, int vocab)
{
    ssf_error err;
    float *logits = malloc((size_t)vocab * sizeof(float));
    rows r = {0};
    add_row(&r, 2, 1, 7, 1);
    assert_int_equal(run_rows(d, pg, &r, logits, &err), 0);
    assert_memory_equal(logits, want, (size_t)vocab * sizeof(float));
    free(logits);
}

/* A refused batch: a valid first row that would overwrite sequence 7's
 * position 0, then `bad`; the message names `what`. */
static void refuse(ssf_device *d, const paging *pg, const rows *bad, const char *what)
{
    rows r = *bad;
    memmove(r.token + 1, r.token, (size_t)r.n * sizeof(int32_t));
    memmove(r.pos + 1, r.pos, (size_t)r.n * sizeof(int32_t));
    memmove(r.seq + 1, r.seq, (size_t)r.n * sizeof(int32_t));
    for (int i = 0; i < r.n_out; i++)
        r.out[i]++;
    r.token[0] = 3;
    r.pos[0] = 0;
    r.seq[0] = 7;
    r.n++;
    float logits[1];
    ssf_error err;
    assert_int_equal(run_rows(d, pg, &r, logits, &err), -1);
    assert_non_null(strstr(err.msg, what));
}

static void check_forward_errors(ssf_device *d, paging *pg, int vocab)
{
    rows r = {0};
    add_row(&r, 0, 0, N_SEQS, 0);
    refuse(d, pg, &r, "sequence");
    r.n = 0;
    add_row(&r, vocab, 0, 0, 0);
    refuse(d, pg, &r, "vocabulary");
    r.n = 0;
    add_row(&r, 1, d->max_context, 0, 0);
    refuse(d, pg, &r, "context");
    r.n = 0;
    add_row(&r, 1, -1, 0, 0);
    refuse(d, pg, &r, "context");
    /* a table entry past the pool, then a negative one, below the row's position */
    int last = (d->max_context - 1) / pg->bs;
    pg->tab[2][last] = d->n_blocks;
    r.n = 0;
    add_row(&r, 1, d->max_context - 1, 2, 0);
    refuse(d, pg, &r, "block table");
    pg->tab[2][last] = -1;
    refuse(d, pg, &r, "block table");
    paging_layout(pg);
    const int32_t *none = pg->tables[2];
    pg->tables[2] = NULL;
    refuse(d, pg, &r, "no block table");
    pg->tables[2] = none;
    r.n = 0;
    r.n_out = 1;
    r.out[0] = 3;
    add_row(&r, 1, 0, 0, 0);
    refuse(d, pg, &r, "output");
    /* one row more than max_rows (refuse adds the first) */
    assert_true(d->max_rows < (int)(sizeof r.token / sizeof *r.token));
    r.n = r.n_out = 0;
    for (int i = 0; i < d->max_rows; i++)
        add_row(&r, 1, i % d->max_context, i % N_SEQS, 0);
    refuse(d, pg, &r, "allowed");
}

/* Every refusal changes nothing: sequence 7 reads the same afterwards. */
static void check_errors(ssf_device *d, paging *pg, int vocab)
{
    ssf_error err;
    rows r = {0};
    add_row(&r, 1, 0, 7, 0);
    add_row(&r, 2, 1, 7, 1);
    float *want = malloc((size_t)vocab * sizeof(float));
    assert_int_equal(run_rows(d, pg, &r, want, &err), 0);
    check_forward_errors(d, pg, vocab);
    check_seq7(d, pg, want, vocab);
    /* an empty batch, and a batch without tables */
    ssf_fwd_batch b = {.n_rows = 0,
                       .token = r.token,
                       .pos = r.pos,
                       .seq = r.seq,
                       .n_seqs = N_SEQS,
                       .tables = pg->tables,
                       .n_out = 0,
                       .out_rows = r.out};
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    b = (ssf_fwd_batch){.n_rows = 1,
                        .token = r.token,
                        .pos = r.pos,
                        .seq = r.seq,
                        .n_seqs = 0,
                        .tables = NULL,
                        .n_out = 0,
                        .out_rows = r.out};
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "block tables"));
    /* logits asked for, with nowhere to write them */
    b.n_seqs = N_SEQS;
    b.tables = pg->tables;
    b.n_out = 1;
    assert_int_equal(d->forward(d, &b, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "output rows"));
    /* copy_blocks checks every pair before copying any: the first pair here
     * would overwrite sequence 7's position 0 */
    ssf_block_copy c[2] = {{pg->tab[0][0], pg->tab[7][0]}, {0, d->n_blocks}};
    assert_int_equal(d->copy_blocks(d, c, 2, &err), -1);
    assert_non_null(strstr(err.msg, "copy_blocks"));
    c[1] = (ssf_block_copy){-1, 0};
    assert_int_equal(d->copy_blocks(d, c, 2, &err), -1);
    c[1] = (ssf_block_copy){d->n_blocks, 0};
    assert_int_equal(d->copy_blocks(d, c, 2, &err), -1);
    c[1] = (ssf_block_copy){0, -1};
    assert_int_equal(d->copy_blocks(d, c, 2, &err), -1);
    assert_non_null(strstr(err.msg, "copy_blocks"));
    assert_int_equal(d->copy_blocks(d, c, -1, &err), -1);
    assert_int_equal(d->copy_blocks(d, NULL, 1, &err), -1);
    assert_int_equal(d->copy_blocks(d, NULL, 0, &err), 0);
    check_seq7(d, pg, want, vocab);
    /* and a copy onto itself is a no-op */
    c[0] = (ssf_block_copy){pg->tab[7][0], pg->tab[7][0]};
    assert_int_equal(d->copy_blocks(d, c, 1, &err), 0);
    check_seq7(d, pg, want, vocab);
    free(want);
}

/* Everything on one device: block size bs, tables in order or scattered.
 * The full forward must be `ref` bit for bit when given. */
static float *check_paging(const char *dir, const int32_t *ids, int n, const float *ref, int bs,
                           int scatter, int threads)
{
    ssf_model *m;
    ssf_device *d = open_cpu(dir, &m, 64, bs, threads);
    assert_string_equal(d->name, "cpu");
    assert_string_equal(d->numerics, ssf_cpu_isa_name(ssf_cpu_isa_detect()));
    assert_int_equal(d->n_slots, N_SEQS);
    assert_int_equal(d->max_context, 64);
    assert_int_equal(d->block_size, bs);
    assert_int_equal(d->n_blocks, N_SEQS * ((64 + bs - 1) / bs));
    assert_true(d->max_rows >= 33);
    paging pg;
    paging_init(&pg, d, scatter);
    float *full = full_forward(d, &pg, ids, n, FX_VOCAB);
    for (int i = 0; i < n * FX_VOCAB; i++)
        assert_true(isfinite(full[i]));
    if (ref) assert_memory_equal(full, ref, (size_t)n * FX_VOCAB * sizeof(float));
    check_chunks(d, &pg, ids, n, FX_VOCAB, full, 1, 0);
    check_chunks(d, &pg, ids, n, FX_VOCAB, full, 7, 4);
    check_batch_invariance(d, &pg, ids, n, FX_VOCAB, full);
    check_fork(d, &pg, ids, n, FX_VOCAB, full);
    check_errors(d, &pg, FX_VOCAB);
    paging_free(&pg);
    d->close(d);
    ssf_model_close(m);
    return full;
}

/* The logits of the tiny model stored as dtype, the same bits for every
 * block size and layout. */
static float *check_tiny(const char *dtype, int shards, int threads)
{
    char *dir = make_temp_dir();
    fx_write_model(dir, dtype, 0, shards);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = (i * 7 + 3) % FX_VOCAB;
    /* the same bits for every block size, in order or scattered */
    static const int sizes[] = {16, 1, 3, 64};
    float *ref = NULL;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int scatter = 0; scatter < 2; scatter++) {
            float *full = check_paging(dir, ids, 40, ref, sizes[s], scatter, threads);
            if (ref)
                free(full);
            else
                ref = full;
        }
    remove_tree(dir);
    free(dir);
    return ref;
}

/* The fixture's values are exact in F32, BF16 and F16 alike, so the three
 * storages must give the same logits: each dtype is converted, not taken
 * for another's bits. */
static void test_tiny_model(void **state)
{
    (void)state;
    float *f32 = check_tiny("F32", 1, 1);
    float *bf16 = check_tiny("BF16", 3, 2);
    float *f16 = check_tiny("F16", 1, 3);
    assert_memory_equal(bf16, f32, (size_t)40 * FX_VOCAB * sizeof(float));
    assert_memory_equal(f16, f32, (size_t)40 * FX_VOCAB * sizeof(float));
    free(f32);
    free(bf16);
    free(f16);
}

/* A Llama (no q/k/v biases) runs the same checks: finite logits, the same
 * bits in chunks, batches and forks, for two block sizes; its logits are
 * its own, not the Qwen2 fixture's (biases, rope_theta and eps differ). */
static void test_tiny_llama(void **state)
{
    (void)state;
    char *dir = make_temp_dir(), *qwen = make_temp_dir();
    fx_write_llama_model(dir);
    fx_write_model(qwen, "F32", 0, 1);
    int32_t ids[24];
    for (int i = 0; i < 24; i++)
        ids[i] = (i * 5 + 1) % FX_VOCAB;
    float *ref = check_paging(dir, ids, 24, NULL, 16, 0, 2);
    free(check_paging(dir, ids, 24, ref, 3, 1, 1));
    float *q = check_paging(qwen, ids, 24, NULL, 16, 0, 2);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)24 * FX_VOCAB; i++)
        differ += q[i] != ref[i];
    assert_true(differ > 0);
    free(q);
    free(ref);
    remove_tree(dir);
    remove_tree(qwen);
    free(dir);
    free(qwen);
}

static void test_open_errors(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    fx_write_model(dir, "F32", 1, 1);
    ssf_model *m;
    ssf_error err;
    assert_int_equal(ssf_model_open(dir, &m, &err), 0);
    ssf_device_options o = {.n_slots = 2, .max_context = 65};
    assert_null(ssf_device_cpu_open(m, &o, &err));
    assert_non_null(strstr(err.msg, "max_position_embeddings 64"));
    o = (ssf_device_options){.n_slots = 1 << 29, .max_context = 64};
    assert_null(ssf_device_cpu_open(m, &o, &err));
    assert_non_null(strstr(err.msg, "--slots"));
    /* 2^27 slots of 4 KiB of KV each: 512 GiB, refused before allocating */
    if ((double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) < 500e9) {
        o = (ssf_device_options){.n_slots = 1 << 27, .max_context = 64};
        assert_null(ssf_device_cpu_open(m, &o, &err));
        assert_non_null(strstr(err.msg, "--max-context"));
        assert_non_null(strstr(err.msg, "bytes"));
    }
    /* 2^28 slots of 64 one-position blocks: more blocks than an int counts */
    o = (ssf_device_options){.n_slots = 1 << 28, .max_context = 64, .block_size = 1};
    assert_null(ssf_device_cpu_open(m, &o, &err));
    assert_non_null(strstr(err.msg, "KV blocks"));
    o = (ssf_device_options){.block_size = (1 << 20) + 1};
    assert_null(ssf_device_cpu_open(m, &o, &err));
    assert_non_null(strstr(err.msg, "KV block of"));
    o = (ssf_device_options){0};
    ssf_device *d = ssf_device_cpu_open(m, &o, &err);
    assert_non_null(d);
    assert_int_equal(d->n_slots, 8);
    assert_int_equal(d->max_context, 64); /* min(model max, 4096) */
    assert_int_equal(d->block_size, 16);
    assert_int_equal(d->n_blocks, 8 * 4);
    d->close(d);
    /* a block size that does not divide the context rounds up; n_blocks as asked */
    o = (ssf_device_options){.n_slots = 2, .max_context = 50, .block_size = 3};
    d = ssf_device_cpu_open(m, &o, &err);
    assert_non_null(d);
    assert_int_equal(d->n_blocks, 2 * 17);
    d->close(d);
    o = (ssf_device_options){.max_context = 64, .block_size = 5, .n_blocks = 3};
    d = ssf_device_cpu_open(m, &o, &err);
    assert_non_null(d);
    assert_int_equal(d->block_size, 5);
    assert_int_equal(d->n_blocks, 3);
    d->close(d);
    ssf_model_close(m);
    remove_tree(dir);
    free(dir);
}

/* ---- parity with transformers --------------------------------------------------------- */

static const char *fixtures_root(char *buf, size_t n)
{
    const char *src = getenv("SSFTEVAL_SOURCE_ROOT");
    snprintf(buf, n, "%s/tests/fixtures/engine", src ? src : ".");
    return buf;
}

static int32_t *read_ids(const ssf_tensor *t)
{
    int32_t *ids = malloc((size_t)t->numel * sizeof(int32_t));
    for (int64_t i = 0; i < t->numel; i++)
        ids[i] = (int32_t)ssf_tensor_get_f32(t, i);
    return ids;
}

/* max |a - ref| / max |ref| over one row. */
static double row_error(const float *a, const ssf_tensor *ref, int64_t row, int vocab)
{
    double num = 0, den = 0;
    for (int v = 0; v < vocab; v++) {
        double r = ssf_tensor_get_f32(ref, row * vocab + v);
        num = fmax(num, fabs(a[v] - r));
        den = fmax(den, fabs(r));
    }
    return num / den;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy decoding from the prompt's last logits, one row a step: the
 * reference's tokens, each step's logits within tolerance. */
static double check_greedy(ssf_device *d, const paging *pg, int n, const float *last,
                           const ssf_safetensors *ex, int p, int vocab, int n_valid)
{
    char name[64];
    snprintf(name, sizeof name, "prompt%d.gen_ids", p);
    const ssf_tensor *gen = ssf_safetensors_find(ex, name);
    snprintf(name, sizeof name, "prompt%d.gen_logits", p);
    const ssf_tensor *gen_logits = ssf_safetensors_find(ex, name);
    assert_non_null(gen);
    assert_non_null(gen_logits);
    int32_t *want = read_ids(gen);
    float *logits = malloc((size_t)vocab * sizeof(float));
    memcpy(logits, last, (size_t)vocab * sizeof(float));
    double worst = 0;
    ssf_error err;
    for (int j = 0; j < gen->numel; j++) {
        worst = fmax(worst, row_error(logits, gen_logits, j, vocab));
        int tok = argmax(logits, n_valid);
        if (tok != want[j]) fail_msg("greedy step %d: %d, transformers %d", j, tok, want[j]);
        rows r = {0};
        add_row(&r, tok, n + j, 1, 1);
        if (run_rows(d, pg, &r, logits, &err)) fail_msg("%s", err.msg);
    }
    free(want);
    free(logits);
    return worst;
}

static void check_variant(const char *dir, const char *variant)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t jerr;
    /* a greedy continuation of random weights may hold any byte, NUL too */
    json_t *meta = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!meta) fail_msg("%s: %s", path, jerr.text);
    json_t *cfg = json_object_get(meta, "config");
    int n_valid = (int)json_integer_value(json_object_get(cfg, "tokenizer_ids"));
    ssf_error err;
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    ssf_safetensors *ex;
    if (ssf_safetensors_open(path, &ex, &err)) fail_msg("%s", err.msg);
    ssf_model *m;
    if (ssf_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    int ctx = ssf_model_config_of(m)->max_position_embeddings;
    ssf_model_close(m);
    ssf_device *d = open_cpu(dir, &m, ctx < 1024 ? ctx : 1024, 0, 2);
    paging pg;
    paging_init(&pg, d, 1);
    /* a second device with 3-position blocks in order: the same bits */
    ssf_model *m3;
    ssf_device *d3 = open_cpu(dir, &m3, ctx < 1024 ? ctx : 1024, 3, 2);
    paging pg3;
    paging_init(&pg3, d3, 0);
    int vocab = ssf_model_config_of(m)->vocab_size;
    assert_true(n_valid > 0 && n_valid <= vocab);
    double worst = 0, worst_gen = 0;
    int prompts = 0;
    for (int p = 0;; p++, prompts++) {
        char name[64];
        snprintf(name, sizeof name, "prompt%d.ids", p);
        const ssf_tensor *tids = ssf_safetensors_find(ex, name);
        if (!tids) break;
        snprintf(name, sizeof name, "prompt%d.logits", p);
        const ssf_tensor *tlog = ssf_safetensors_find(ex, name);
        assert_non_null(tlog);
        /* the checks below read ids[n - 1] and ids[i % n] */
        if (tids->numel <= 0 || tids->numel > INT_MAX) {
            fail_msg("prompt%d.ids: %lld ids", p, (long long)tids->numel);
            break; /* not reached (fail_msg longjmps): for the analyzer */
        }
        int n = (int)tids->numel;
        int32_t *ids = read_ids(tids);
        float *ref = full_forward(d, &pg, ids, n, vocab);
        float *ref3 = full_forward(d3, &pg3, ids, n, vocab);
        assert_memory_equal(ref3, ref, (size_t)n * vocab * sizeof(float));
        free(ref3);
        for (int i = 0; i < n; i++)
            worst = fmax(worst, row_error(ref + (size_t)i * vocab, tlog, i, vocab));
        /* the greedy continuation runs in sequence 1 after a one-batch prefill */
        check_chunks(d, &pg, ids, n, vocab, ref, n, 1);
        worst_gen = fmax(worst_gen, check_greedy(d, &pg, n, ref + (size_t)(n - 1) * vocab, ex, p,
                                                 vocab, n_valid));
        check_chunks(d, &pg, ids, n, vocab, ref, 1, 2);
        check_chunks(d, &pg, ids, n, vocab, ref, 5, 3);
        check_batch_invariance(d, &pg, ids, n, vocab, ref);
        free(ids);
        free(ref);
    }
    printf("# %s: %d prompts, worst relative logit error %.3g (prompt), %.3g (greedy steps); "
           "greedy identical\n",
           variant, prompts, worst, worst_gen);
    assert_true(prompts > 0);
    assert_true(worst < 1e-4);
    assert_true(worst_gen < 1e-4);
    paging_free(&pg);
    paging_free(&pg3);
    d->close(d);
    d3->close(d3);
    ssf_model_close(m);
    ssf_model_close(m3);
    ssf_safetensors_close(ex);
    json_decref(meta);
}

static void test_transformers_parity(void **state)
{
    (void)state;
    char root[4096];
    DIR *dh = opendir(fixtures_root(root, sizeof root));
    int seen = 0;
    struct dirent *e;
    while (dh && (e = readdir(dh))) {
        char dir[4096 + 256], probe[4096 + 300 + 32];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        snprintf(probe, sizeof probe, "%s/expected.safetensors", dir);
        if (e->d_name[0] == '.' || access(probe, R_OK) != 0) continue;
        check_variant(dir, e->d_name);
        seen++;
    }
    if (dh) closedir(dh);
    if (!seen) skip();
}

/* ---- the engine backend: a NUL the model writes ----------------------------------------- */

/* One result's ids and text, kept. */
typedef struct kept_result {
    int32_t ids[8];
    size_t n;
    char *text;
} kept_result;

static int keep_result(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    (void)req;
    kept_result *k = ud;
    if (res->error) fail_msg("%s", res->error);
    k->n = res->n_token_ids < 8 ? res->n_token_ids : 8;
    memcpy(k->ids, res->token_ids, k->n * sizeof *k->ids);
    k->text = strdup(res->text);
    return 0;
}

/* Three greedy tokens of the fixture in dir, on the CPU. */
static kept_result greedy_three(const char *dir)
{
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    o.device = "cpu";
    ssf_error err;
    ssf_backend *b = ssf_backend_engine_new(dir, &o, &err);
    kept_result k = {0};
    if (!b) {
        fail_msg("%s", err.msg);
        return k;
    }
    ssf_gen_request r = {.task = "t",
                         .prompt = "Q: what is two and two?",
                         .sampling = {.temperature = 0, .top_p = 1, .max_new_tokens = 3}};
    if (b->generate(b, &r, 1, keep_result, &k, &err)) fail_msg("%s", err.msg);
    b->destroy(b);
    assert_int_equal(k.n, 3);
    return k;
}

/* dir/name as a link to from/name (made absolute: from may be relative). */
static void link_into(const char *dir, const char *from, const char *name)
{
    char *relative = ssf_path_join(from, name), *link = ssf_path_join(dir, name);
    char *target = realpath(relative, NULL);
    if (!target || symlink(target, link)) fail_msg("link %s: %s", link, strerror(errno));
    free(relative), free(target), free(link);
}

/* The fixture's tokenizer in dir with the ids of the vocabulary's strings
 * for token `id` and for byte 0 ("Ā" in the byte-level alphabet) swapped. */
static void write_swapped_tokenizer(const char *from, const char *dir, int32_t id)
{
    char *path = ssf_path_join(from, "tokenizer.json");
    json_t *t = json_load_file(path, 0, NULL);
    free(path);
    json_t *vocab = json_object_get(json_object_get(t, "model"), "vocab");
    json_t *nul_id = json_object_get(vocab, "\xc4\x80");
    assert_non_null(nul_id);
    const char *key;
    json_t *v;
    const char *token = NULL;
    json_object_foreach(vocab, key, v) if (json_integer_value(v) == id) token = key;
    assert_non_null(token);
    json_int_t byte0 = json_integer_value(nul_id);
    json_object_set_new(vocab, token, json_integer(byte0));
    json_object_set_new(vocab, "\xc4\x80", json_integer(id));
    path = ssf_path_join(dir, "tokenizer.json");
    assert_int_equal(json_dump_file(t, path, 0), 0);
    free(path);
    json_decref(t);
}

/* A model that writes byte 0: the fixture's weights, with its tokenizer's
 * ids of its first greedy token and of byte 0 swapped, write the same ids,
 * the first of them now a NUL.  A completion is a C string (backend.h), so
 * the NUL comes out as U+FFFD and the text after it is kept, to be graded
 * with the rest; cut at the NUL, it would lose the answer. */
static void test_nul_in_completion(void **state)
{
    (void)state;
    char root[PATH_MAX], from[PATH_MAX + 32];
    snprintf(from, sizeof from, "%s/gqa5-hd128", fixtures_root(root, sizeof root));
    kept_result plain = greedy_three(from);
    char *dir = make_temp_dir();
    static const char *files[] = {"config.json", "generation_config.json", "tokenizer_config.json",
                                  "model.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        link_into(dir, from, files[i]);
    write_swapped_tokenizer(from, dir, plain.ids[0]);
    kept_result nul = greedy_three(dir);
    /* the same prompt ids into the same weights: the same ids out */
    assert_memory_equal(nul.ids, plain.ids, sizeof plain.ids);
    /* each token of the first that was the swapped one is U+FFFD now, the
     * rest as they were */
    ssf_tokenizer *tok;
    char *path = ssf_path_join(from, "tokenizer.json");
    ssf_error err;
    if (ssf_tokenizer_load(path, &tok, &err)) fail_msg("%s", err.msg);
    free(path);
    ssf_buf want = {0};
    for (size_t i = 0; i < plain.n; i++) {
        if (plain.ids[i] == plain.ids[0]) {
            ssf_buf_append(&want, "\xef\xbf\xbd", 3);
            continue;
        }
        char *piece = ssf_tokenizer_decode(tok, &plain.ids[i], 1, 1, NULL, &err);
        assert_non_null(piece);
        ssf_buf_append(&want, piece, strlen(piece));
        free(piece);
    }
    assert_string_equal(nul.text, want.data);
    assert_true(strlen(nul.text) > 3); /* something after the NUL */
    ssf_buf_free(&want);
    ssf_tokenizer_free(tok);
    free(plain.text), free(nul.text);
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_rmsnorm_swiglu),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_paged_attention),
        cmocka_unit_test(test_isa),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_tiny_model),
        cmocka_unit_test(test_tiny_llama),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_transformers_parity),
        cmocka_unit_test(test_nul_in_completion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
