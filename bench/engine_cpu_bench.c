/*
 * engine_cpu_bench.c - prefill and batched decode throughput of the CPU
 * device on a model directory.
 *
 * usage: engine_cpu_bench MODEL_DIR [PROMPT_TOKENS [GEN_TOKENS [THREADS [BATCH...]]]]
 *        (defaults 128, 32, all cores, batches 1 8 32)
 *
 * For each batch B: B sequences, each on its own run of consecutive KV
 * blocks (default block size), prefill a prompt of P tokens (random ids,
 * at most max_rows rows a forward), then decode G tokens together, one
 * forward of B rows a step, greedy; REPEATS times (environment, default 2,
 * as bench/engine_hf.py --repeats), the best time of each kept.  One JSON
 * line a batch:
 *   {"impl":"ssfteval","batch":B,"prompt":P,"gen":G,"threads":T,
 *    "prefill_tok_s":B*P/prefill seconds,"decode_tok_s":B*G/decode seconds,
 *    "prefill_gflop":..,"decode_gflop":..,"fma_peak_gflops":..}
 * the shape bench/engine_hf.py prints for transformers, plus the model's
 * arithmetic in each phase (multiply-adds as 2 flops, from config.json) and
 * the fp32 FMA throughput of T threads measured just before the batch, so a
 * reader can tell how far from the machine's ceiling each side runs.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench-args.h"
#include "device.h"
#include "ssfteval/model.h"

/* ---- the machine's fp32 ceiling and the model's arithmetic ---------------------------- */

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* Independent FMA chains: enough to cover the FMA latency on two pipes. */
#define FMA_CHAINS 12
#define FMA_ROUNDS 40000000L

__attribute__((target("avx2,fma"))) static float fma_rounds(long n)
{
    __m256 a[FMA_CHAINS], b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < FMA_CHAINS; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
        _Pragma("GCC unroll 12") for (int i = 0; i < FMA_CHAINS; i++) a[i] =
            _mm256_fmadd_ps(a[i], b, c);
    __m256 s = a[0];
    for (int i = 1; i < FMA_CHAINS; i++)
        s = _mm256_add_ps(s, a[i]);
    return _mm256_cvtss_f32(s);
}

static void *fma_thread(void *sink)
{
    *(float *)sink = fma_rounds(FMA_ROUNDS);
    return NULL;
}

/* GFLOP/s of `threads` threads each running FMA_ROUNDS rounds. */
static double fma_gflops(int threads)
{
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    float *sink = calloc((size_t)threads, sizeof *sink);
    double t0 = ssf_monotonic_seconds();
    int started = 0;
    while (started < threads - 1 &&
           pthread_create(&t[started], NULL, fma_thread, &sink[started + 1]) == 0)
        started++;
    fma_thread(&sink[0]);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    double seconds = ssf_monotonic_seconds() - t0;
    free(t), free(sink);
    return (double)(started + 1) * FMA_ROUNDS * FMA_CHAINS * 16 / seconds / 1e9;
}

/* The best of three tries (a virtual machine's cores vary from one tenth of
 * a second to the next); 0 without AVX2 and FMA. */
static double fma_peak_gflops(int threads)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double g = fma_gflops(threads);
        if (g > best) best = g;
    }
    return best;
}
#else
static double fma_peak_gflops(int threads)
{
    (void)threads;
    return 0;
}
#endif

/* Flops of one token: the layers' linear maps, the lm_head, and the
 * attention per position attended to (q.k and p.v, every layer). */
typedef struct model_flops {
    double linear, lm_head, per_position;
} model_flops;

static model_flops flops_of(const ssf_model_config *c)
{
    double h = c->hidden_size, q = (double)c->n_heads * c->head_dim;
    double kv = (double)c->n_kv_heads * c->head_dim, inter = c->intermediate_size;
    double layer = h * (q + 2 * kv) + q * h + 3 * h * inter;
    return (model_flops){2 * c->n_layers * layer, 2 * h * c->vocab_size, 4.0 * c->n_layers * q};
}

/* GFLOP of the prefill of `batch` prompts of P (logits of the last rows
 * only) and of G decode steps after it. */
static double prefill_gflop(model_flops f, int batch, int prompt)
{
    double attended = (double)prompt * (prompt + 1) / 2;
    return batch * (prompt * f.linear + f.lm_head + attended * f.per_position) / 1e9;
}

static double decode_gflop(model_flops f, int batch, int prompt, int gen)
{
    double attended = (double)gen * (prompt + 1) + (double)gen * (gen - 1) / 2;
    return batch * (gen * (f.linear + f.lm_head) + attended * f.per_position) / 1e9;
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct bench {
    ssf_device *d;
    int vocab, prompt, gen, batch;
    int32_t *token, *pos, *seq, *out;
    float *logits;
    int32_t *next;    /* per sequence: the token to feed */
    int32_t *blocks;  /* sequence s: blocks[s * per_seq ...] */
    int32_t **tables; /* [batch] into blocks */
} bench;

static int forward(bench *b, int n_rows, int n_out, ssf_error *err)
{
    ssf_fwd_batch fb = {.n_rows = n_rows,
                        .token = b->token,
                        .pos = b->pos,
                        .seq = b->seq,
                        .n_seqs = b->batch,
                        .tables = (const int32_t *const *)b->tables,
                        .n_out = n_out,
                        .out_rows = b->out};
    return b->d->forward(b->d, &fb, b->logits, err);
}

/* All prompts, max_rows rows a forward; each sequence's last row gives logits. */
static int prefill(bench *b, ssf_error *err)
{
    uint64_t s = 12345;
    int n = 0, n_out = 0;
    for (int sl = 0; sl < b->batch; sl++)
        for (int p = 0; p < b->prompt; p++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            b->token[n] = (int32_t)((s >> 33) % (uint64_t)b->vocab);
            b->pos[n] = p;
            b->seq[n] = sl;
            if (p == b->prompt - 1) b->out[n_out++] = n;
            n++;
            int last = sl == b->batch - 1 && p == b->prompt - 1;
            if (n == b->d->max_rows || last) {
                if (forward(b, n, n_out, err)) return -1;
                for (int i = 0; i < n_out; i++)
                    b->next[b->seq[b->out[i]]] = argmax(b->logits + (size_t)i * b->vocab, b->vocab);
                n = n_out = 0;
            }
        }
    return 0;
}

static int decode(bench *b, ssf_error *err)
{
    for (int g = 0; g < b->gen; g++) {
        for (int sl = 0; sl < b->batch; sl++) {
            b->token[sl] = b->next[sl];
            b->pos[sl] = b->prompt + g;
            b->seq[sl] = sl;
            b->out[sl] = sl;
        }
        if (forward(b, b->batch, b->batch, err)) return -1;
        for (int sl = 0; sl < b->batch; sl++)
            b->next[sl] = argmax(b->logits + (size_t)sl * b->vocab, b->vocab);
    }
    return 0;
}

/* Sequence s holds blocks s * per_seq .. (s + 1) * per_seq - 1: the default
 * pool is exactly batch x ceil(max_context / block_size) blocks. */
static void make_tables(bench *b)
{
    int per_seq = b->d->n_blocks / b->batch;
    b->blocks = malloc((size_t)b->d->n_blocks * sizeof(int32_t));
    b->tables = malloc((size_t)b->batch * sizeof *b->tables);
    for (int i = 0; i < b->d->n_blocks; i++)
        b->blocks[i] = i;
    for (int s = 0; s < b->batch; s++)
        b->tables[s] = b->blocks + (size_t)s * (size_t)per_seq;
}

static int run_batch(const ssf_model *m, int prompt, int gen, int threads, int batch, int repeats)
{
    ssf_error err;
    ssf_device_options o = {.n_slots = batch, .max_context = prompt + gen + 1, .threads = threads};
    bench b = {.d = ssf_device_cpu_open(m, &o, &err), .prompt = prompt, .gen = gen, .batch = batch};
    if (!b.d) {
        fprintf(stderr, "engine_cpu_bench: %s\n", err.msg);
        return -1;
    }
    b.vocab = ssf_model_config_of(m)->vocab_size;
    int rows = b.d->max_rows;
    b.token = calloc((size_t)rows, sizeof(int32_t));
    b.pos = calloc((size_t)rows, sizeof(int32_t));
    b.seq = calloc((size_t)rows, sizeof(int32_t));
    b.out = calloc((size_t)rows, sizeof(int32_t));
    b.next = calloc((size_t)batch, sizeof(int32_t));
    b.logits = malloc((size_t)rows * (size_t)b.vocab * sizeof(float));
    make_tables(&b);
    int n_threads = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    double peak = fma_peak_gflops(n_threads > 0 ? n_threads : 1);
    double best_prefill = 1e300, best_decode = 1e300;
    int rc = 0;
    for (int r = 0; r < repeats && !rc; r++) {
        double t0 = ssf_monotonic_seconds();
        rc = prefill(&b, &err);
        double t1 = ssf_monotonic_seconds();
        if (!rc) rc = decode(&b, &err);
        double t2 = ssf_monotonic_seconds();
        if (t1 - t0 < best_prefill) best_prefill = t1 - t0;
        if (t2 - t1 < best_decode) best_decode = t2 - t1;
    }
    model_flops f = flops_of(ssf_model_config_of(m));
    if (rc)
        fprintf(stderr, "engine_cpu_bench: %s\n", err.msg);
    else
        printf("{\"impl\":\"ssfteval\",\"batch\":%d,\"prompt\":%d,\"gen\":%d,\"threads\":%d,"
               "\"prefill_tok_s\":%.2f,\"decode_tok_s\":%.2f,\"prefill_gflop\":%.3f,"
               "\"decode_gflop\":%.3f,\"fma_peak_gflops\":%.1f}\n",
               batch, prompt, gen, n_threads, batch * prompt / best_prefill,
               batch * gen / best_decode, prefill_gflop(f, batch, prompt),
               decode_gflop(f, batch, prompt, gen), peak);
    fflush(stdout);
    free(b.token), free(b.pos), free(b.seq), free(b.out), free(b.next), free(b.logits);
    free(b.blocks), free(b.tables);
    b.d->close(b.d);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: engine_cpu_bench MODEL_DIR [PROMPT [GEN [THREADS [BATCH...]]]]\n");
        return 2;
    }
    int prompt =
        argc > 2 ? (int)bench_long_arg("engine_cpu_bench PROMPT", argv[2], 1, 1 << 20) : 128;
    int gen = argc > 3 ? (int)bench_long_arg("engine_cpu_bench GEN", argv[3], 1, 1 << 20) : 32;
    int threads = argc > 4 ? (int)bench_long_arg("engine_cpu_bench THREADS", argv[4], 0, 4096) : 0;
    const char *env = getenv("REPEATS");
    int repeats = env ? (int)bench_long_arg("engine_cpu_bench REPEATS", env, 1, 1000) : 2;
    ssf_model *m;
    ssf_error err;
    if (ssf_model_open(argv[1], &m, &err)) {
        fprintf(stderr, "engine_cpu_bench: %s\n", err.msg);
        return 1;
    }
    static const int default_batches[] = {1, 8, 32};
    int rc = 0;
    if (argc > 5) {
        for (int i = 5; i < argc && !rc; i++)
            rc =
                run_batch(m, prompt, gen, threads,
                          (int)bench_long_arg("engine_cpu_bench BATCH", argv[i], 1, 4096), repeats);
    } else {
        for (size_t i = 0; i < sizeof default_batches / sizeof *default_batches && !rc; i++)
            rc = run_batch(m, prompt, gen, threads, default_batches[i], repeats);
    }
    ssf_model_close(m);
    return rc ? 1 : 0;
}
