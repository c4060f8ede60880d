/*
 * gpu_check.c - the checker bench/gpu-check.sh builds and runs on a GPU
 * machine (no meson there: it is compiled from the model reader, the CPU
 * and CUDA devices and this file alone).
 *
 *   gpu_check fixtures DIR...        CUDA vs CPU logits on each tiny checkpoint
 *   gpu_check hf DIR DUMP            CUDA vs transformers' logits in DUMP
 *   gpu_check cuda DIR               CUDA alone (prefill, decode, fork), for
 *                                    compute-sanitizer
 *   gpu_check bench DIR B[,B...] PROMPT STEPS   decode tokens/s per batch
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
#include <time.h>

#include "device.h"
#include "ssfteval/model.h"
#include "ssfteval/util.h"

#define REL_TOL 2e-2
#define TOP1_MIN 0.99
#define MAX_CONTEXT 256

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

/* ---- running a device ----------------------------------------------------------- */

static int forward(ssf_device *d, const int32_t *tok, const int32_t *pos, const int32_t *slot,
                   int rows, const int32_t *out, int n_out, float *logits, ssf_error *err)
{
    ssf_fwd_batch b = {rows, tok, pos, slot, n_out, out};
    return d->forward(d, &b, logits, err);
}

/* All rows of s in one slot, in chunks of at most max_rows. */
static float *full_forward(ssf_device *d, const seq *s, int vocab, int slot, ssf_error *err)
{
    float *lg = ssf_xmalloc((size_t)s->n * vocab * sizeof(float));
    int32_t *pos = ssf_xmalloc((size_t)s->n * 4), *sl = ssf_xmalloc((size_t)s->n * 4);
    int32_t *out = ssf_xmalloc((size_t)s->n * 4);
    int rc = 0;
    for (int i = 0; i < s->n; i++)
        pos[i] = i, sl[i] = slot;
    for (int at = 0; !rc && at < s->n; at += d->max_rows) {
        int n = s->n - at < d->max_rows ? s->n - at : d->max_rows;
        for (int i = 0; i < n; i++)
            out[i] = i;
        rc = forward(d, s->tok + at, pos + at, sl + at, n, out, n, lg + (size_t)at * vocab, err);
    }
    free(pos), free(sl), free(out);
    if (rc) free(lg);
    return rc ? NULL : lg;
}

/* The prompt in chunks of 16, then one token a call; rows before len - 1
 * are left as they were. */
static int prefill_decode(ssf_device *d, const seq *s, int vocab, int slot, float *lg,
                          ssf_error *err)
{
    int32_t pos[16], sl[16], last;
    for (int i = 0; i < 16; i++)
        sl[i] = slot;
    for (int at = 0; at < s->len; at += 16) {
        int n = s->len - at < 16 ? s->len - at : 16;
        for (int i = 0; i < n; i++)
            pos[i] = at + i;
        last = n - 1;
        if (forward(d, s->tok + at, pos, sl, n, &last, at + n == s->len,
                    lg + (size_t)(s->len - 1) * vocab, err))
            return -1;
    }
    for (int p = s->len; p < s->n; p++) {
        int32_t zero = 0;
        pos[0] = p;
        if (forward(d, s->tok + p, pos, sl, 1, &zero, 1, lg + (size_t)p * vocab, err)) return -1;
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

static ssf_device *open_cuda(const ssf_model *m, int slots, int ctx, ssf_error *err)
{
    ssf_device_options o = {.n_slots = slots, .max_context = ctx, .gpu_memory_utilization = 0.9};
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
    ssf_device_options co = {.n_slots = 2, .max_context = MAX_CONTEXT, .threads = 0};
    ssf_device *cpu = ssf_device_cpu_open(m, &co, &err);
    ssf_device *gpu = cpu ? open_cuda(m, 2, MAX_CONTEXT, &err) : NULL;
    seq s;
    for (int p = 0; gpu && fixture_seq(st, p, &s); p++) {
        char what[2300];
        float *c = full_forward(cpu, &s, vocab, 0, &err),
              *g = c ? full_forward(gpu, &s, vocab, 0, &err) : NULL;
        if (g) {
            snprintf(what, sizeof what, "%s prompt %d: CUDA vs CPU, full forward", dir, p);
            report(what, g, c, vocab, n_valid, 0, s.n);
            if (prefill_decode(gpu, &s, vocab, 1, g, &err) == 0) {
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
    ssf_device *gpu = open_cuda(m, 1, MAX_CONTEXT, &err);
    seq s;
    int vocab, p = 0;
    while (gpu && read_record(f, &s, &vocab)) {
        char what[2300];
        float *g = vocab == ssf_model_config_of(m)->vocab_size
                       ? full_forward(gpu, &s, vocab, 0, &err)
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
    fclose(f);
    ssf_model_close(m);
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
    int ok = ssf_model_open(dir, &m, &err) == 0 && ssf_safetensors_open(path, &st, &err) == 0 &&
             (gpu = open_cuda(m, 3, MAX_CONTEXT, &err)) != NULL && fixture_seq(st, 0, &s);
    if (ok) {
        int vocab = ssf_model_config_of(m)->vocab_size;
        float *g = full_forward(gpu, &s, vocab, 0, &err);
        ok = g && prefill_decode(gpu, &s, vocab, 1, g, &err) == 0 &&
             gpu->copy_slot(gpu, 1, 2, s.len, &err) == 0;
        free(g);
        seq_free(&s);
    }
    printf("%s %s: CUDA prefill, decode and fork ran%s%s\n", ok ? "PASS" : "FAIL", dir,
           ok ? "" : ": ", ok ? "" : err.msg);
    failures += !ok;
    if (gpu) gpu->close(gpu);
    ssf_safetensors_close(st);
    ssf_model_close(m);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Prefill B random prompts, then `steps` greedy decode steps of B rows with
 * every row's logits copied back, as the engine runs. */
static int bench_batch(ssf_device *d, int vocab, int B, int P, int steps, ssf_error *err)
{
    /* whole prompts per prefill call */
    int rows = (B * P > d->max_rows ? d->max_rows : B * P) / P * P;
    if (B > d->max_rows || rows == 0) return ssf_fail(err, "batch %d x %d does not fit", B, P);
    float *lg = ssf_xmalloc((size_t)B * vocab * sizeof(float));
    int32_t *tok = ssf_xmalloc((size_t)B * P * 4), *pos = ssf_xmalloc((size_t)B * P * 4);
    int32_t *sl = ssf_xmalloc((size_t)B * P * 4), *out = ssf_xmalloc((size_t)B * 4);
    uint32_t x = 12345;
    for (int i = 0; i < B * P; i++) {
        x = x * 1664525u + 1013904223u;
        tok[i] = (int32_t)((x >> 8) % (uint32_t)(vocab > 1024 ? vocab - 512 : vocab));
        pos[i] = i % P, sl[i] = i / P;
    }
    double t0 = now();
    int rc = 0;
    for (int at = 0; !rc && at < B * P; at += rows) {
        int n_out = 0;
        int n = B * P - at < rows ? B * P - at : rows;
        for (int i = 0; i < n; i++)
            if (pos[at + i] == P - 1) out[n_out++] = i;
        rc = forward(d, tok + at, pos + at, sl + at, n, out, n_out, lg + (size_t)(at / P) * vocab,
                     err);
    }
    double t1 = now();
    for (int s = 0; !rc && s < steps; s++) {
        for (int b = 0; b < B; b++) {
            tok[b] = argmax(lg + (size_t)b * vocab, vocab);
            pos[b] = P + s, sl[b] = b, out[b] = b;
        }
        rc = forward(d, tok, pos, sl, B, out, B, lg, err);
    }
    double t2 = now();
    if (!rc)
        printf("TIME engine=cuda batch=%d prefill_tok_s=%.0f decode_tok_s=%.1f ms_per_step=%.2f\n",
               B, B * P / (t1 - t0), (double)B * steps / (t2 - t1), (t2 - t1) * 1e3 / steps);
    free(lg), free(tok), free(pos), free(sl), free(out);
    return rc;
}

static void bench(const char *dir, const char *batches, int P, int steps)
{
    ssf_error err;
    ssf_model *m = NULL;
    int bs[16], nb = 0, maxb = 1;
    for (const char *c = batches; *c && nb < 16; c = strchr(c, ',') ? strchr(c, ',') + 1 : "") {
        bs[nb] = atoi(c);
        maxb = bs[nb] > maxb ? bs[nb] : maxb;
        nb++;
    }
    ssf_device *gpu = NULL;
    double t0 = now();
    if (ssf_model_open(dir, &m, &err) == 0) gpu = open_cuda(m, maxb, P + steps + 8, &err);
    if (gpu) printf("TIME engine=cuda open_s=%.1f\n", now() - t0);
    int vocab = m ? ssf_model_config_of(m)->vocab_size : 0;
    /* a warm-up: cuBLAS picks its kernels on first use */
    int ok = gpu && bench_batch(gpu, vocab, 1, P, 4, &err) == 0;
    for (int i = 0; ok && i < nb; i++)
        ok = bench_batch(gpu, vocab, bs[i], P, steps, &err) == 0;
    printf("%s bench %s: CUDA decode timing%s%s\n", ok ? "PASS" : "FAIL", dir, ok ? "" : ": ",
           ok ? "" : err.msg);
    failures += !ok;
    if (gpu) gpu->close(gpu);
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
