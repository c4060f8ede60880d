/*
 * gpu_check.c - the checker bench/gpu-check.sh builds and runs on a GPU
 * machine (no meson there: it is compiled from the model reader, the CPU
 * and CUDA devices and this file alone).
 *
 *   gpu_check fixtures DIR...        CUDA vs CPU logits on each tiny checkpoint
 *   gpu_check hf DIR DUMP            CUDA vs transformers' logits in DUMP
 *   gpu_check cuda DIR               CUDA alone (prefill, decode, fork), for
 *                                    compute-sanitizer
 *   gpu_check bench DIR B[,B...] PROMPT STEPS   decode tokens/s per batch,
 *                                    the bytes a step moves (weights + KV
 *                                    read) and the GB/s that makes against
 *                                    the device's measured copy bandwidth
 *
 * A dump is a sequence of records, little-endian: int32 n_tokens, int32
 * vocab, int32 n_valid, int32 tokens[n], float32 logits[n][vocab].
 * Every check prints one "PASS" or "FAIL" line; the exit status is 1 when
 * any failed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ops.h"
#include "device.h"
#include "ssfteval/model.h"
#include "ssfteval/util.h"

#define REL_TOL 2e-2
#define TOP1_MIN 0.99
#define MAX_CONTEXT 256
#define BLOCK_SIZE 16

static int failures;

/* ---- sequences ---------------------------------------------------------------- */

typedef struct seq {
    int32_t *tok;
    int n;       /* tokens fed */
    int len;     /* prompt length (decode starts here) */
    float *ref;  /* [n][vocab] when read from a dump */
    int n_valid; /* ids a sample may take */
} seq;

static void seq_free(seq *s)
{
    free(s->tok);
    free(s->ref);
}

/* Prompt p of a fixture's expected.safetensors: its ids then the greedy
 * continuation but the last token. */
static int fixture_seq(const ssf_safetensors *st, int p, seq *s)
{
    char a[64], b[64];
    snprintf(a, sizeof a, "prompt%d.ids", p);
    snprintf(b, sizeof b, "prompt%d.gen_ids", p);
    const ssf_tensor *ids = ssf_safetensors_find(st, a), *gen = ssf_safetensors_find(st, b);
    if (!ids || !gen) return 0;
    memset(s, 0, sizeof *s);
    s->len = (int)ids->numel;
    s->n = s->len + (int)gen->numel - 1;
    s->tok = ssf_xmalloc((size_t)(s->n + 1) * sizeof(int32_t));
    for (int i = 0; i < s->len; i++)
        s->tok[i] = (int32_t)ssf_tensor_get_f32(ids, i);
    for (int j = 0; j + 1 < gen->numel; j++)
        s->tok[s->len + j] = (int32_t)ssf_tensor_get_f32(gen, j);
    return 1;
}

/* "tokenizer_ids" of the fixture's expected.json, else the whole vocab. */
static int fixture_n_valid(const char *dir, int vocab)
{
    char path[2048], *text = NULL;
    size_t len = 0;
    ssf_error err;
    int n = vocab;
    snprintf(path, sizeof path, "%s/expected.json", dir);
    if (ssf_read_file(path, &text, &len, &err) == 0) {
        const char *k = strstr(text, "\"tokenizer_ids\":");
        if (k) n = atoi(k + strlen("\"tokenizer_ids\":"));
        free(text);
    }
    return n > 0 && n <= vocab ? n : vocab;
}

/* ---- block tables --------------------------------------------------------------- */

/* n_seqs sequences of ctx positions, sequence s in blocks s * per_seq ..
 * of a pool of n_seqs * per_seq blocks (the CPU device's default pool for
 * n_slots = n_seqs). */
typedef struct pages {
    int n_seqs, per_seq, n_blocks;
    int32_t *ids;
    const int32_t **tables;
} pages;

static void pages_init(pages *p, int n_seqs, int ctx)
{
    p->n_seqs = n_seqs;
    p->per_seq = (ctx + BLOCK_SIZE - 1) / BLOCK_SIZE;
    p->n_blocks = n_seqs * p->per_seq;
    p->ids = ssf_xmalloc((size_t)p->n_blocks * sizeof(int32_t));
    p->tables = ssf_xmalloc((size_t)n_seqs * sizeof(*p->tables));
    for (int i = 0; i < p->n_blocks; i++)
        p->ids[i] = i;
    for (int s = 0; s < n_seqs; s++)
        p->tables[s] = p->ids + (size_t)s * p->per_seq;
}

static void pages_free(pages *p)
{
    free(p->ids);
    free(p->tables);
}

/* ---- running a device ----------------------------------------------------------- */

static int forward(ssf_device *d, const pages *pg, const int32_t *tok, const int32_t *pos,
                   const int32_t *sq, int rows, const int32_t *out, int n_out, float *logits,
                   ssf_error *err)
{
    ssf_fwd_batch b = {rows, tok, pos, sq, pg->n_seqs, pg->tables, n_out, out};
    return d->forward(d, &b, logits, err);
}

/* All rows of s in one sequence, in chunks of at most max_rows. */
static float *full_forward(ssf_device *d, const pages *pg, const seq *s, int vocab, int sq,
                           ssf_error *err)
{
    float *lg = ssf_xmalloc((size_t)s->n * vocab * sizeof(float));
    int32_t *pos = ssf_xmalloc((size_t)s->n * 4), *sl = ssf_xmalloc((size_t)s->n * 4);
    int32_t *out = ssf_xmalloc((size_t)s->n * 4);
    int rc = 0;
    for (int i = 0; i < s->n; i++)
        pos[i] = i, sl[i] = sq;
    for (int at = 0; !rc && at < s->n; at += d->max_rows) {
        int n = s->n - at < d->max_rows ? s->n - at : d->max_rows;
        for (int i = 0; i < n; i++)
            out[i] = i;
        rc =
            forward(d, pg, s->tok + at, pos + at, sl + at, n, out, n, lg + (size_t)at * vocab, err);
    }
    free(pos), free(sl), free(out);
    if (rc) free(lg);
    return rc ? NULL : lg;
}

/* The prompt in chunks of 16, then one token a call; rows before len - 1
 * are left as they were. */
static int prefill_decode(ssf_device *d, const pages *pg, const seq *s, int vocab, int sq,
                          float *lg, ssf_error *err)
{
    int32_t pos[16], sl[16], last;
    for (int i = 0; i < 16; i++)
        sl[i] = sq;
    for (int at = 0; at < s->len; at += 16) {
        int n = s->len - at < 16 ? s->len - at : 16;
        for (int i = 0; i < n; i++)
            pos[i] = at + i;
        last = n - 1;
        if (forward(d, pg, s->tok + at, pos, sl, n, &last, at + n == s->len,
                    lg + (size_t)(s->len - 1) * vocab, err))
            return -1;
    }
    for (int p = s->len; p < s->n; p++) {
        int32_t zero = 0;
        pos[0] = p;
        if (forward(d, pg, s->tok + p, pos, sl, 1, &zero, 1, lg + (size_t)p * vocab, err))
            return -1;
    }
    return 0;
}

/* ---- comparison ------------------------------------------------------------------ */

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Worst per-row max|d|/max|ref| and top-1 agreement over rows [from, to). */
static void report(const char *what, const float *got, const float *ref, int vocab, int n_valid,
                   int from, int to)
{
    double worst = 0;
    int agree = 0, rows = to - from;
    for (int r = from; r < to; r++) {
        const float *g = got + (size_t)r * vocab, *e = ref + (size_t)r * vocab;
        double md = 0, mr = 0;
        for (int i = 0; i < vocab; i++) {
            md = fmax(md, fabs((double)g[i] - e[i]));
            mr = fmax(mr, fabs((double)e[i]));
        }
        double rel = md / (mr > 0 ? mr : 1);
        worst = isnan(rel) ? INFINITY : fmax(worst, rel);
        agree += argmax(g, n_valid) == argmax(e, n_valid);
    }
    int ok = worst <= REL_TOL && agree >= TOP1_MIN * rows;
    failures += !ok;
    printf("%s %s: max rel err %.3g (<= %g), top-1 %d/%d\n", ok ? "PASS" : "FAIL", what, worst,
           REL_TOL, agree, rows);
}

static ssf_device *open_cuda(const ssf_model *m, const pages *pg, int ctx, ssf_error *err)
{
    ssf_device_options o = {.n_slots = pg->n_seqs,
                            .max_context = ctx,
                            .block_size = BLOCK_SIZE,
                            .n_blocks = pg->n_blocks,
                            .gpu_memory_utilization = 0.9};
    return ssf_device_cuda_open(m, &o, err);
}

/* ---- modes ------------------------------------------------------------------------- */

static void check_fixture(const char *dir)
{
    ssf_error err;
    ssf_model *m = NULL;
    ssf_safetensors *st = NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    if (ssf_model_open(dir, &m, &err) || ssf_safetensors_open(path, &st, &err)) {
        printf("FAIL %s: %s\n", dir, err.msg);
        failures++;
        ssf_model_close(m);
        return;
    }
    int vocab = ssf_model_config_of(m)->vocab_size, n_valid = fixture_n_valid(dir, vocab);
    pages pg;
    pages_init(&pg, 2, MAX_CONTEXT);
    ssf_device_options co = {.n_slots = 2,
                             .max_context = MAX_CONTEXT,
                             .block_size = BLOCK_SIZE,
                             .n_blocks = pg.n_blocks};
    ssf_device *cpu = ssf_device_cpu_open(m, &co, &err);
    ssf_device *gpu = cpu ? open_cuda(m, &pg, MAX_CONTEXT, &err) : NULL;
    seq s;
    for (int p = 0; gpu && fixture_seq(st, p, &s); p++) {
        char what[2300];
        float *c = full_forward(cpu, &pg, &s, vocab, 0, &err),
              *g = c ? full_forward(gpu, &pg, &s, vocab, 0, &err) : NULL;
        if (g) {
            snprintf(what, sizeof what, "%s prompt %d: CUDA vs CPU, full forward", dir, p);
            report(what, g, c, vocab, n_valid, 0, s.n);
            if (prefill_decode(gpu, &pg, &s, vocab, 1, g, &err) == 0) {
                snprintf(what, sizeof what, "%s prompt %d: CUDA prefill+decode vs CPU", dir, p);
                report(what, g, c, vocab, n_valid, s.len - 1, s.n);
            }
        }
        if (!g) printf("FAIL %s prompt %d: %s\n", dir, p, err.msg), failures++;
        free(c), free(g);
        seq_free(&s);
    }
    if (!gpu) printf("FAIL %s: %s\n", dir, err.msg), failures++;
    if (gpu) gpu->close(gpu);
    if (cpu) cpu->close(cpu);
    pages_free(&pg);
    ssf_safetensors_close(st);
    ssf_model_close(m);
}

static int read_record(FILE *f, seq *s, int *vocab)
{
    int32_t h[3];
    if (fread(h, 4, 3, f) != 3) return 0;
    memset(s, 0, sizeof *s);
    s->n = s->len = h[0];
    *vocab = h[1];
    s->n_valid = h[2];
    s->tok = ssf_xmalloc((size_t)s->n * 4);
    s->ref = ssf_xmalloc((size_t)s->n * h[1] * sizeof(float));
    if (fread(s->tok, 4, (size_t)s->n, f) != (size_t)s->n ||
        fread(s->ref, sizeof(float), (size_t)s->n * h[1], f) != (size_t)s->n * h[1]) {
        seq_free(s);
        return 0;
    }
    return 1;
}

static void check_hf(const char *dir, const char *dump)
{
    ssf_error err;
    ssf_model *m = NULL;
    FILE *f = fopen(dump, "rb");
    if (!f || ssf_model_open(dir, &m, &err)) {
        printf("FAIL %s vs transformers: %s\n", dir, f ? err.msg : "no dump");
        failures++;
        if (f) fclose(f);
        return;
    }
    pages pg;
    pages_init(&pg, 1, MAX_CONTEXT);
    ssf_device *gpu = open_cuda(m, &pg, MAX_CONTEXT, &err);
    seq s;
    int vocab, p = 0;
    while (gpu && read_record(f, &s, &vocab)) {
        char what[2300];
        float *g = vocab == ssf_model_config_of(m)->vocab_size
                       ? full_forward(gpu, &pg, &s, vocab, 0, &err)
                       : NULL;
        snprintf(what, sizeof what, "%s prompt %d: CUDA vs transformers bf16 (GPU)", dir, p++);
        if (g)
            report(what, g, s.ref, vocab, s.n_valid, 0, s.n);
        else
            printf("FAIL %s: %s\n", what, err.msg), failures++;
        free(g);
        seq_free(&s);
    }
    if (!gpu) printf("FAIL %s: %s\n", dir, err.msg), failures++;
    if (gpu && p == 0) printf("FAIL %s: empty dump %s\n", dir, dump), failures++;
    if (gpu) gpu->close(gpu);
    pages_free(&pg);
    fclose(f);
    ssf_model_close(m);
}

/* Sequence 2 forks sequence 1's prompt: shares its full blocks, copies the
 * partial last one, decodes one token on it. */
static int fork_decode(ssf_device *d, pages *pg, const seq *s, int vocab, ssf_error *err)
{
    int full = s->len / BLOCK_SIZE;
    int32_t *child = pg->ids + 2 * (size_t)pg->per_seq;
    memcpy(child, pg->tables[1], (size_t)full * sizeof(int32_t));
    ssf_block_copy c = {pg->tables[1][full], child[full]};
    if (s->len % BLOCK_SIZE && d->copy_blocks(d, &c, 1, err)) return -1;
    float *lg = ssf_xmalloc((size_t)vocab * sizeof(float));
    int32_t pos = s->len, sq = 2, zero = 0;
    int rc = forward(d, pg, s->tok + s->len, &pos, &sq, 1, &zero, 1, lg, err);
    free(lg);
    return rc;
}

/* CUDA only: every path once (for compute-sanitizer). */
static void check_cuda_alone(const char *dir)
{
    ssf_error err;
    ssf_model *m = NULL;
    ssf_safetensors *st = NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    ssf_device *gpu = NULL;
    seq s;
    pages pg;
    pages_init(&pg, 3, MAX_CONTEXT);
    int ok = ssf_model_open(dir, &m, &err) == 0 && ssf_safetensors_open(path, &st, &err) == 0 &&
             (gpu = open_cuda(m, &pg, MAX_CONTEXT, &err)) != NULL && fixture_seq(st, 0, &s);
    if (ok) {
        int vocab = ssf_model_config_of(m)->vocab_size;
        float *g = full_forward(gpu, &pg, &s, vocab, 0, &err);
        ok = g && prefill_decode(gpu, &pg, &s, vocab, 1, g, &err) == 0 &&
             fork_decode(gpu, &pg, &s, vocab, &err) == 0;
        free(g);
        seq_free(&s);
    }
    printf("%s %s: CUDA prefill, decode and fork ran%s%s\n", ok ? "PASS" : "FAIL", dir,
           ok ? "" : ": ", ok ? "" : err.msg);
    failures += !ok;
    if (gpu) gpu->close(gpu);
    pages_free(&pg);
    ssf_safetensors_close(st);
    ssf_model_close(m);
}

/* What one decode step must read: the weights of every GEMM (lm_head
 * included, the embedding gather not) and the K, V of every row's context. */
typedef struct step_bytes {
    double weights;    /* bytes */
    double kv_per_pos; /* bytes of K and V, all layers, one position */
} step_bytes;

static step_bytes bytes_of(const ssf_model_config *c)
{
    double H = c->hidden_size, I = c->intermediate_size, hd = c->head_dim;
    double q = c->n_heads * hd, kv = c->n_kv_heads * hd;
    double layer = H * (q + 2 * kv) + q * H + 3 * H * I;
    step_bytes b = {2.0 * (c->n_layers * layer + (double)c->vocab_size * H),
                    2.0 * 2.0 * c->n_layers * kv};
    return b;
}

static int prefill_batch(ssf_device *d, const pages *pg, int vocab, int B, int P, float *lg,
                         ssf_error *err)
{
    /* whole prompts per prefill call */
    int rows = (B * P > d->max_rows ? d->max_rows : B * P) / P * P;
    if (B > d->max_rows || rows == 0) return ssf_fail(err, "batch %d x %d does not fit", B, P);
    int32_t *tok = ssf_xmalloc((size_t)B * P * 4), *pos = ssf_xmalloc((size_t)B * P * 4);
    int32_t *sl = ssf_xmalloc((size_t)B * P * 4), *out = ssf_xmalloc((size_t)rows * 4);
    uint32_t x = 12345;
    for (int i = 0; i < B * P; i++) {
        x = x * 1664525u + 1013904223u;
        tok[i] = (int32_t)((x >> 8) % (uint32_t)(vocab > 1024 ? vocab - 512 : vocab));
        pos[i] = i % P, sl[i] = i / P;
    }
    int rc = 0;
    for (int at = 0; !rc && at < B * P; at += rows) {
        int n_out = 0;
        int n = B * P - at < rows ? B * P - at : rows;
        for (int i = 0; i < n; i++)
            if (pos[at + i] == P - 1) out[n_out++] = i;
        rc = forward(d, pg, tok + at, pos + at, sl + at, n, out, n_out,
                     lg + (size_t)(at / P) * vocab, err);
    }
    free(tok), free(pos), free(sl), free(out);
    return rc;
}

/* Prefill B random prompts, then `steps` greedy decode steps of B rows with
 * every row's logits copied back, as the engine runs; the step's bytes
 * (weights + the mean context's KV) over its time give the achieved GB/s,
 * set against copy_gbps, the device's D2D copy rate. */
static int bench_batch(ssf_device *d, const pages *pg, const ssf_model_config *c, int B, int P,
                       int steps, double copy_gbps, ssf_error *err)
{
    int vocab = c->vocab_size;
    float *lg = ssf_xmalloc((size_t)B * vocab * sizeof(float));
    int32_t *tok = ssf_xmalloc((size_t)B * 4), *pos = ssf_xmalloc((size_t)B * 4);
    int32_t *sl = ssf_xmalloc((size_t)B * 4), *out = ssf_xmalloc((size_t)B * 4);
    double t0 = ssf_monotonic_seconds();
    int rc = prefill_batch(d, pg, vocab, B, P, lg, err);
    double t1 = ssf_monotonic_seconds();
    for (int s = 0; !rc && s < steps; s++) {
        for (int b = 0; b < B; b++) {
            tok[b] = argmax(lg + (size_t)b * vocab, vocab);
            pos[b] = P + s, sl[b] = b, out[b] = b;
        }
        rc = forward(d, pg, tok, pos, sl, B, out, B, lg, err);
    }
    double t2 = ssf_monotonic_seconds(), ms = (t2 - t1) * 1e3 / steps;
    step_bytes sb = bytes_of(c);
    /* rows attend to P + s + 1 positions at step s */
    double kv = B * (P + (steps - 1) / 2.0 + 1) * sb.kv_per_pos,
           gbps = (sb.weights + kv) / ms / 1e6;
    if (!rc)
        printf("TIME engine=cuda batch=%d prefill_tok_s=%.0f decode_tok_s=%.1f ms_per_step=%.2f "
               "step_MB=%.1f (weights %.1f + kv %.1f) achieved_GBps=%.0f copy_GBps=%.0f "
               "(%.0f%%)\n",
               B, B * P / (t1 - t0), (double)B * steps / (t2 - t1), ms, (sb.weights + kv) / 1e6,
               sb.weights / 1e6, kv / 1e6, gbps, copy_gbps,
               copy_gbps > 0 ? 100 * gbps / copy_gbps : 0.0);
    free(lg), free(tok), free(pos), free(sl), free(out);
    return rc;
}

static int parse_batches(const char *batches, int *bs, int *maxb)
{
    int nb = 0;
    *maxb = 1;
    for (const char *c = batches; *c && nb < 16; c = strchr(c, ',') ? strchr(c, ',') + 1 : "") {
        bs[nb] = atoi(c);
        *maxb = bs[nb] > *maxb ? bs[nb] : *maxb;
        nb++;
    }
    return nb;
}

static void bench(const char *dir, const char *batches, int P, int steps)
{
    ssf_error err;
    ssf_model *m = NULL;
    int bs[16], maxb, nb = parse_batches(batches, bs, &maxb);
    ssf_device *gpu = NULL;
    pages pg;
    pages_init(&pg, maxb, P + steps + 8);
    double t0 = ssf_monotonic_seconds(), copy_gbps = 0;
    if (ssf_model_open(dir, &m, &err) == 0) gpu = open_cuda(m, &pg, P + steps + 8, &err);
    if (gpu) printf("TIME engine=cuda open_s=%.1f\n", ssf_monotonic_seconds() - t0);
    int ok = gpu && ssf_cuda_op_copy_bandwidth((size_t)1 << 30, 5, &copy_gbps, &err) == 0;
    if (ok) printf("TIME device copy (D2D, read + write) %.0f GB/s\n", copy_gbps);
    const ssf_model_config *c = m ? ssf_model_config_of(m) : NULL;
    /* a warm-up: cuBLAS picks its kernels on first use */
    ok = ok && bench_batch(gpu, &pg, c, 1, P, 4, copy_gbps, &err) == 0;
    for (int i = 0; ok && i < nb; i++)
        ok = bench_batch(gpu, &pg, c, bs[i], P, steps, copy_gbps, &err) == 0;
    printf("%s bench %s: CUDA decode timing%s%s\n", ok ? "PASS" : "FAIL", dir, ok ? "" : ": ",
           ok ? "" : err.msg);
    failures += !ok;
    if (gpu) gpu->close(gpu);
    pages_free(&pg);
    ssf_model_close(m);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "fixtures") == 0)
        for (int i = 2; i < argc; i++)
            check_fixture(argv[i]);
    else if (argc == 4 && strcmp(argv[1], "hf") == 0)
        check_hf(argv[2], argv[3]);
    else if (argc == 3 && strcmp(argv[1], "cuda") == 0)
        check_cuda_alone(argv[2]);
    else if (argc == 6 && strcmp(argv[1], "bench") == 0)
        bench(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    else {
        fprintf(stderr, "usage: gpu_check fixtures DIR... | hf DIR DUMP | cuda DIR | "
                        "bench DIR B[,B...] PROMPT STEPS\n");
        return 2;
    }
    return failures ? 1 : 0;
}
