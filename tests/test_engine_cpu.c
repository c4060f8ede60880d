/*
 * test_engine_cpu.c - the CPU device: its kernels against naive double
 * references, batch invariance (bit for bit), the KV cache (prefill, decode,
 * chunks, forks) on a written tiny model, and parity with transformers on
 * the fixtures of tools/make-engine-fixtures.py (tests/fixtures/engine).
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cpu_ops.h"
#include "device.h"
#include "model-fixture.h"
#include "ssfteval/model.h"
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

static void check_gemm(ssf_cpu_isa isa)
{
    enum { M = 37, N = 29, K = 83 }; /* odd sizes: every tile edge and a k tail */
    float *x = rnd_array(M * K, 1), *w = rnd_array(N * K, 2), *bias = rnd_array(N, 3);
    float *all = calloc(M * N, sizeof(float)), *y = calloc(M * N, sizeof(float));
    ssf_cpu_gemm_range(isa, x, M, K, w, bias, all, N, 0, N);
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            double ref = bias[n];
            for (int k = 0; k < K; k++)
                ref += (double)x[i * K + k] * w[n * K + k];
            assert_true(fabs(all[i * N + n] - ref) < 1e-5);
        }
    /* any number of rows, any row offset, any column split: same bits */
    for (int m = 1; m <= M; m++)
        for (int off = 0; off + m <= M; off += 5) {
            memset(y, 0, M * N * sizeof(float));
            int split = (m * 7) % N;
            ssf_cpu_gemm_range(isa, x + off * K, m, K, w, bias, y, N, 0, split);
            ssf_cpu_gemm_range(isa, x + off * K, m, K, w, bias, y, N, split, N);
            assert_memory_equal(y, all + off * N, (size_t)m * N * sizeof(float));
        }
    for (int i = 0; i < M; i++)
        assert_true(ssf_cpu_dot(isa, x + i * K, w, K) + bias[0] == all[i * N]);
    free(x), free(w), free(bias), free(all), free(y);
}

static void test_gemm(void **state)
{
    (void)state;
    check_gemm(SSF_CPU_PORTABLE);
    check_gemm(ssf_cpu_isa_detect());
}

static void test_rmsnorm_swiglu(void **state)
{
    (void)state;
    enum { N = 45 };
    float *x = rnd_array(N, 4), *w = rnd_array(N, 5), y[N];
    ssf_cpu_rmsnorm(x, w, N, 1e-6f, y);
    double ss = 0;
    for (int i = 0; i < N; i++)
        ss += (double)x[i] * x[i];
    double inv = 1 / sqrt(ss / N + 1e-6);
    for (int i = 0; i < N; i++)
        assert_true(fabs(y[i] - x[i] * inv * w[i]) < 1e-6);
    ssf_cpu_swiglu(x, w, N, y);
    for (int i = 0; i < N; i++)
        assert_true(fabs(y[i] - x[i] / (1 + exp(-x[i])) * w[i]) < 1e-6);
    free(x), free(w);
}

static void test_rope(void **state)
{
    (void)state;
    float inv[64];
    ssf_cpu_rope_inv_freq(10000.0, 4, inv);
    assert_true(inv[0] == 1.0f);
    assert_true(fabsf(inv[1] - 0.01f) < 1e-9f);
    /* pairs (0, 2) and (1, 3) turn by 3 and 0.03 radians at position 3 */
    float v[4] = {1, 2, 3, 4};
    ssf_cpu_rope(v, 4, inv, 3);
    assert_true(fabs(v[0] - (1 * cos(3.0) - 3 * sin(3.0))) < 1e-6);
    assert_true(fabs(v[2] - (3 * cos(3.0) + 1 * sin(3.0))) < 1e-6);
    assert_true(fabs(v[1] - (2 * cos(0.03) - 4 * sin(0.03))) < 1e-6);
    assert_true(fabs(v[3] - (4 * cos(0.03) + 2 * sin(0.03))) < 1e-6);
    /* position 0 is the identity; theta 1e6, d 128 as in Qwen2 */
    ssf_cpu_rope_inv_freq(1e6, 128, inv);
    for (int i = 0; i < 64; i++)
        assert_true(fabs(inv[i] - pow(1e6, -2.0 * i / 128)) <= 1e-6 * pow(1e6, -2.0 * i / 128));
    float *u = rnd_array(128, 6), *u0 = rnd_array(128, 6);
    ssf_cpu_rope(u, 128, inv, 0);
    assert_memory_equal(u, u0, 128 * sizeof(float));
    free(u), free(u0);
}

static void test_attention(void **state)
{
    (void)state;
    enum { CTX = 13, HD = 24, STRIDE = 50 };
    float *q = rnd_array(HD, 7), *k = rnd_array(CTX * STRIDE, 8), *v = rnd_array(CTX * STRIDE, 9);
    float scores[CTX], out[HD];
    float scale = 1.0f / sqrtf(HD);
    for (int isa = 0; isa < 2; isa++) {
        ssf_cpu_attention(isa ? ssf_cpu_isa_detect() : SSF_CPU_PORTABLE, q, k, v, STRIDE, CTX, HD,
                          scale, scores, out);
        double p[CTX], sum = 0, max = -INFINITY;
        for (int j = 0; j < CTX; j++) {
            p[j] = 0;
            for (int d = 0; d < HD; d++)
                p[j] += (double)q[d] * k[j * STRIDE + d];
            p[j] *= scale;
            max = fmax(max, p[j]);
        }
        for (int j = 0; j < CTX; j++)
            sum += p[j] = exp(p[j] - max);
        for (int d = 0; d < HD; d++) {
            double ref = 0;
            for (int j = 0; j < CTX; j++)
                ref += p[j] / sum * v[j * STRIDE + d];
            assert_true(fabs(out[d] - ref) < 1e-6);
        }
    }
    free(q), free(k), free(v);
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
    ssf_cpu_pool_free(p);
}

/* ---- the device on a model ------------------------------------------------------------ */

typedef struct rows {
    int n, n_out;
    int32_t token[600], pos[600], slot[600], out[600];
} rows;

static void add_row(rows *r, int32_t token, int32_t pos, int32_t slot, int want)
{
    r->token[r->n] = token;
    r->pos[r->n] = pos;
    r->slot[r->n] = slot;
    if (want) r->out[r->n_out++] = r->n;
    r->n++;
}

static int run_rows(ssf_device *d, const rows *r, float *logits, ssf_error *err)
{
    ssf_fwd_batch b = {r->n, r->token, r->pos, r->slot, r->n_out, r->out};
    return d->forward(d, &b, logits, err);
}

static ssf_device *open_cpu(const char *dir, ssf_model **m, int slots, int ctx, int threads)
{
    ssf_error err;
    if (ssf_model_open(dir, m, &err)) fail_msg("%s", err.msg);
    ssf_device_options o = {.n_slots = slots, .max_context = ctx, .threads = threads};
    ssf_device *d = ssf_device_cpu_open(*m, &o, &err);
    if (!d) fail_msg("%s", err.msg);
    return d;
}

/* The logits of every position of ids[0..n) in one batch (slot 0). */
static float *full_forward(ssf_device *d, const int32_t *ids, int n, int vocab)
{
    rows *r = calloc(1, sizeof *r);
    for (int i = 0; i < n; i++)
        add_row(r, ids[i], i, 0, 1);
    float *logits = malloc((size_t)n * vocab * sizeof(float));
    ssf_error err;
    if (run_rows(d, r, logits, &err)) fail_msg("%s", err.msg);
    free(r);
    return logits;
}

/* Prefill in chunks of `chunk` rows (slot `slot`): the same bits as one
 * batch at every position, also when decoding one token at a time
 * (chunk 1). */
static void check_chunks(ssf_device *d, const int32_t *ids, int n, int vocab, const float *ref,
                         int chunk, int slot)
{
    float *logits = malloc((size_t)chunk * vocab * sizeof(float));
    rows *r = calloc(1, sizeof *r);
    ssf_error err;
    for (int at = 0; at < n; at += chunk) {
        r->n = r->n_out = 0;
        for (int i = at; i < n && i < at + chunk; i++)
            add_row(r, ids[i], i, slot, 1);
        if (run_rows(d, r, logits, &err)) fail_msg("%s", err.msg);
        assert_memory_equal(logits, ref + (size_t)at * vocab, (size_t)r->n * vocab * sizeof(float));
    }
    free(r);
    free(logits);
}

/* Row `probe` of the sequence, computed inside batches of `size` rows
 * whose other rows prefill or decode other slots: bit-identical to
 * `ref_row` every time, wherever it sits in the batch. */
static void check_batch_invariance(ssf_device *d, const int32_t *ids, int n, int vocab,
                                   const float *ref)
{
    static const int sizes[] = {1, 2, 3, 7, 32};
    float *logits = malloc(40 * (size_t)vocab * sizeof(float));
    rows *r = calloc(1, sizeof *r);
    ssf_error err;
    int probe = n - 1;
    /* slot 0 holds ids[0..probe) from a one-batch prefill */
    r->n = r->n_out = 0;
    for (int i = 0; i < probe; i++)
        add_row(r, ids[i], i, 0, 0);
    if (run_rows(d, r, logits, &err)) fail_msg("%s", err.msg);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int where = 0; where<sizes[s]; where += sizes[s]> 3 ? 3 : 1) {
            r->n = r->n_out = 0;
            for (int i = 0; i < sizes[s]; i++) {
                if (i == where) {
                    add_row(r, ids[probe], probe, 0, 1);
                    continue;
                }
                /* others: slot 1 prefills from 0, slots 2.. decode at varied depths */
                int other = i < where ? i : i - 1;
                if (other < 4)
                    add_row(r, ids[(other * 5) % n], other, 1, other == 3);
                else
                    add_row(r, ids[other % n], (other - 4) / 6, 2 + other % 6, 1);
            }
            if (run_rows(d, r, logits, &err)) fail_msg("%s", err.msg);
            int out_index = 0;
            while (r->out[out_index] != where)
                out_index++;
            assert_memory_equal(logits + (size_t)out_index * vocab, ref + (size_t)probe * vocab,
                                (size_t)vocab * sizeof(float));
        }
    free(r);
    free(logits);
}

/* copy_slot forks the prompt: decoding the rest in the fork gives the
 * reference bits. */
static void check_fork(ssf_device *d, const int32_t *ids, int n, int vocab, const float *ref)
{
    ssf_error err;
    int half = n / 2;
    rows *r = calloc(1, sizeof *r);
    for (int i = 0; i < half; i++)
        add_row(r, ids[i], i, 3, 0);
    assert_int_equal(run_rows(d, r, NULL, &err), 0);
    assert_int_equal(d->copy_slot(d, 3, 5, half, &err), 0);
    float *logits = malloc((size_t)vocab * sizeof(float));
    for (int i = half; i < n; i++) {
        r->n = r->n_out = 0;
        add_row(r, ids[i], i, 5, 1);
        assert_int_equal(run_rows(d, r, logits, &err), 0);
        assert_memory_equal(logits, ref + (size_t)i * vocab, (size_t)vocab * sizeof(float));
    }
    /* copying more than the source holds is refused */
    assert_int_equal(d->copy_slot(d, 3, 6, half + 1, &err), -1);
    assert_non_null(strstr(err.msg, "holds"));
    free(logits);
    free(r);
}

static void check_errors(ssf_device *d, int vocab)
{
    ssf_error err;
    float logits[1];
    rows r = {0};
    add_row(&r, 0, 0, d->n_slots, 0);
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    assert_non_null(strstr(err.msg, "slot"));
    r.n = 0;
    add_row(&r, vocab, 0, 0, 0);
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    assert_non_null(strstr(err.msg, "vocabulary"));
    r.n = 0;
    add_row(&r, 1, d->max_context, 0, 0);
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    assert_non_null(strstr(err.msg, "context"));
    r.n = 0;
    add_row(&r, 1, 0, 7, 0); /* slot 7 now holds one position */
    assert_int_equal(run_rows(d, &r, logits, &err), 0);
    r.n = 0;
    add_row(&r, 1, 1, 7, 0);
    add_row(&r, 1, 3, 7, 0); /* skips position 2 */
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    assert_non_null(strstr(err.msg, "gap"));
    r.n = 0;
    add_row(&r, 1, 1, 7, 0);
    add_row(&r, 1, 1, 7, 0); /* the same position twice */
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    r.n = 0;
    add_row(&r, 1, 2, 7, 0); /* the failed batches left slot 7 at one position */
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    r.n = 0;
    add_row(&r, 1, 1, 7, 0);
    assert_int_equal(run_rows(d, &r, logits, &err), 0);
    r.n = 0;
    r.n_out = 1;
    r.out[0] = 3;
    add_row(&r, 1, 0, 7, 0);
    assert_int_equal(run_rows(d, &r, logits, &err), -1);
    assert_non_null(strstr(err.msg, "output"));
    assert_int_equal(d->copy_slot(d, 0, d->n_slots, 1, &err), -1);
}

static void check_tiny(const char *dtype, int shards, int threads)
{
    char *dir = make_temp_dir();
    fx_write_model(dir, dtype, 0, shards);
    ssf_model *m;
    ssf_device *d = open_cpu(dir, &m, 8, 64, threads);
    assert_string_equal(d->name, "cpu");
    assert_int_equal(d->n_slots, 8);
    assert_int_equal(d->max_context, 64);
    assert_true(d->max_rows >= 33);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = (i * 7 + 3) % FX_VOCAB;
    float *ref = full_forward(d, ids, 40, FX_VOCAB);
    for (int i = 0; i < 40 * FX_VOCAB; i++)
        assert_true(isfinite(ref[i]));
    check_chunks(d, ids, 40, FX_VOCAB, ref, 1, 0);
    check_chunks(d, ids, 40, FX_VOCAB, ref, 7, 4);
    check_batch_invariance(d, ids, 40, FX_VOCAB, ref);
    check_fork(d, ids, 40, FX_VOCAB, ref);
    check_errors(d, FX_VOCAB);
    d->close(d);
    ssf_model_close(m);
    remove_tree(dir);
    free(dir);
    free(ref);
}

static void test_tiny_model(void **state)
{
    (void)state;
    check_tiny("F32", 1, 1);
    check_tiny("BF16", 3, 2);
    check_tiny("F16", 1, 3);
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
    o = (ssf_device_options){0};
    ssf_device *d = ssf_device_cpu_open(m, &o, &err);
    assert_non_null(d);
    assert_int_equal(d->n_slots, 8);
    assert_int_equal(d->max_context, 64); /* min(model max, 4096) */
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
static double check_greedy(ssf_device *d, const int32_t *ids, int n, const float *last,
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
        if (run_rows(d, &r, logits, &err)) fail_msg("%s", err.msg);
    }
    (void)ids;
    free(want);
    free(logits);
    return worst;
}

static void check_variant(const char *dir, const char *variant)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t jerr;
    json_t *meta = json_load_file(path, 0, &jerr);
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
    ssf_device *d = open_cpu(dir, &m, 8, ctx < 1024 ? ctx : 1024, 2);
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
        int n = (int)tids->numel;
        int32_t *ids = read_ids(tids);
        float *ref = full_forward(d, ids, n, vocab);
        for (int i = 0; i < n; i++)
            worst = fmax(worst, row_error(ref + (size_t)i * vocab, tlog, i, vocab));
        /* the greedy continuation runs in slot 1 after a one-batch prefill */
        check_chunks(d, ids, n, vocab, ref, n, 1);
        worst_gen = fmax(worst_gen, check_greedy(d, ids, n, ref + (size_t)(n - 1) * vocab, ex, p,
                                                 vocab, n_valid));
        check_chunks(d, ids, n, vocab, ref, 1, 2);
        check_chunks(d, ids, n, vocab, ref, 5, 3);
        check_batch_invariance(d, ids, n, vocab, ref);
        free(ids);
        free(ref);
    }
    printf("# %s: %d prompts, worst relative logit error %.3g (prompt), %.3g (greedy steps); "
           "greedy identical\n",
           variant, prompts, worst, worst_gen);
    assert_true(prompts > 0);
    assert_true(worst < 1e-4);
    assert_true(worst_gen < 1e-4);
    d->close(d);
    ssf_model_close(m);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),        cmocka_unit_test(test_rmsnorm_swiglu),
        cmocka_unit_test(test_rope),        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_pool),        cmocka_unit_test(test_tiny_model),
        cmocka_unit_test(test_open_errors), cmocka_unit_test(test_transformers_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
