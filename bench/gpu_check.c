/*
 * gpu_check.c - the checker bench/gpu-check.sh builds and runs on a GPU
 * machine (no meson there: it is compiled from the model reader, the CPU
 * and CUDA devices and this file alone).
 *
 *   gpu_check fixtures DIR...        CUDA vs CPU logits on each tiny checkpoint
 *   gpu_check hf DIR DUMP            CUDA vs transformers' logits in DUMP
 *   gpu_check cuda DIR               CUDA alone (prefill, decode, fork), for
 *                                    compute-sanitizer
 *   gpu_check sampler                the device sampler against sampler.c's
 *                                    greedy choice and filtered distributions
 *   gpu_check ops H I HEADS KV HD LAYERS VOCAB   each GEMM and the
 *                                    attention of that shape timed alone
 *   gpu_check bench DIR B[,B...] PROMPT STEPS   decode tokens/s per batch,
 *                                    the bytes a step moves (weights + KV
 *                                    read) and the GB/s that makes against
 *                                    the device's measured copy bandwidth
 *   gpu_check engine DIR MAX_NEW     the scheduler (engine.c) over the CUDA
 *                                    device, its steps deferred and not:
 *                                    the same samples, and the wall times
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

#include "../tests/fixture-vocab.h"
#include "bench-args.h"
#include "cuda_ops.h"
#include "cuda_plan.h"
#include "device.h"
#include "sampler-rows.h"
#include "sampler.h"
#include "ssfteval/model.h"
#include "ssfteval/util.h"

/* CUDA (BF16) against the CPU (fp32): BF16 keeps 8 significant bits, and
 * the fixtures' random weights make every layer add its rounding. */
#define REL_TOL 4e-2
/* CUDA against fp32 may be this much further off than transformers' own
 * BF16 model is (plus HF_SLACK absolute). */
#define HF_RATIO 1.25
#define HF_SLACK 2e-3
#define TOP1_MIN 0.99
/* The FP8 (e4m3) KV cache against fp32: 3 mantissa bits in every K and V
 * element, on top of BF16's rounding everywhere else. */
#define FP8_REL_TOL 2e-1
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
    int n = fixture_tokenizer_ids(dir, vocab);
    if (n < 0) {
        fprintf(stderr, "%s/expected.json: tokenizer_ids is not an integer\n", dir);
        exit(1);
    }
    return n;
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

/* Rows (token, position, sequence) over every sequence of pg, nothing asked. */
static ssf_fwd_batch rows_of(const pages *pg, const int32_t *tok, const int32_t *pos,
                             const int32_t *sq, int rows)
{
    ssf_fwd_batch b = {.n_rows = rows,
                       .token = tok,
                       .pos = pos,
                       .seq = sq,
                       .n_seqs = pg->n_seqs,
                       .tables = pg->tables};
    return b;
}

/* One forward with the logits of the listed rows. */
static int forward(ssf_device *d, const pages *pg, const int32_t *tok, const int32_t *pos,
                   const int32_t *sq, int rows, const int32_t *out, int n_out, float *logits,
                   ssf_error *err)
{
    ssf_fwd_batch b = rows_of(pg, tok, pos, sq, rows);
    b.n_out = n_out;
    b.out_rows = out;
    return d->forward(d, &b, logits, err);
}

/* One forward whose listed rows are drawn on the device as `spec` asks. */
static int forward_sampled(ssf_device *d, const pages *pg, const int32_t *tok, const int32_t *pos,
                           const int32_t *sq, int rows, const int32_t *sample_rows, int n_sample,
                           const ssf_sample_spec *spec, int n_valid, int32_t *ids, ssf_error *err)
{
    ssf_fwd_batch b = rows_of(pg, tok, pos, sq, rows);
    b.n_sample = n_sample;
    b.sample_rows = sample_rows;
    b.sample = spec;
    b.sampled = ids;
    b.n_valid = n_valid;
    return d->forward(d, &b, NULL, err);
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

/* The reference's lead of its top-1 over its top-2 logit. */
static double top_margin(const float *x, int n)
{
    int b = argmax(x, n);
    double second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != b && x[i] > second) second = x[i];
    return (double)x[b] - second;
}

/* How far `got` is from `ref` over rows [from, to): the worst per-row
 * max|d| / max|ref|, and top-1 agreement, all rows and decisive rows (where
 * the reference's top-1 leads by more than twice the row's max|d|, so
 * that no error of that size could flip it). */
typedef struct closeness {
    double worst;
    int rows, agree, decisive, decisive_agree;
} closeness;

static closeness compare(const float *got, const float *ref, int vocab, int n_valid, int from,
                         int to)
{
    closeness c = {0, to - from, 0, 0, 0};
    for (int r = from; r < to; r++) {
        const float *g = got + (size_t)r * vocab, *e = ref + (size_t)r * vocab;
        double md = 0, mr = 0;
        for (int i = 0; i < vocab; i++) {
            md = fmax(md, fabs((double)g[i] - e[i]));
            mr = fmax(mr, fabs((double)e[i]));
        }
        double rel = md / (mr > 0 ? mr : 1);
        c.worst = isnan(rel) ? INFINITY : fmax(c.worst, rel);
        int same = argmax(g, n_valid) == argmax(e, n_valid);
        c.agree += same;
        if (top_margin(e, n_valid) > 2 * md) c.decisive++, c.decisive_agree += same;
    }
    return c;
}

static int close_enough(closeness c, double tol)
{
    return c.worst <= tol && c.decisive_agree >= TOP1_MIN * c.decisive;
}

static void report_tol(const char *what, const float *got, const float *ref, int vocab, int n_valid,
                       int from, int to, double tol)
{
    closeness c = compare(got, ref, vocab, n_valid, from, to);
    int ok = close_enough(c, tol);
    failures += !ok;
    printf("%s %s: max rel err %.3g (<= %g), top-1 %d/%d, where decisive %d/%d\n",
           ok ? "PASS" : "FAIL", what, c.worst, tol, c.agree, c.rows, c.decisive_agree, c.decisive);
}

static void report(const char *what, const float *got, const float *ref, int vocab, int n_valid,
                   int from, int to)
{
    report_tol(what, got, ref, vocab, n_valid, from, to, REL_TOL);
}

/* How a check or bench opens the CUDA device besides its pages: decode
 * steps as CUDA graphs or not, an e4m3 KV cache or BF16, prompts through
 * the flash prefill kernel or not (with an e4m3 cache too, as by default),
 * kernels launched only after the one before completed (no_pdl) or not,
 * decode steps' RoPE and KV store in the attention kernel (rope) or not,
 * which GEMMs of up to 64 rows go through the engine's own rather than
 * cuBLAS (own_gemms, an ssf_own_gemms; 0: SSFK_OWN_SMALL_GEMMS's), deferred
 * decode steps, each fed on the device from the step before's draws
 * (overlap), the RMSNorms between own GEMMs fused into them (fuse), the
 * RMSNorms before q|k|v and gate|up folded into cuBLAS's GEMMs (fold: 1
 * asks for it, -1 turns it off where SSFK_FOLD_NORMS makes it the
 * default, 0 leaves the default), the cuBLAS tuner's split search
 * (search, the same three ways); `suffix` names it in TIME lines. */
typedef struct variant {
    int graphs, fp8, flash, no_pdl, rope, own_gemms, overlap, fuse, fold, search;
    const char *suffix;
} variant;

static const variant DEFAULT = {.graphs = 1, .flash = 1, .suffix = ""};
static const variant FP8_KV = {.graphs = 1, .fp8 = 1, .flash = 1, .suffix = "-fp8kv"};
static const variant FP8_NO_FLASH = {.graphs = 1, .fp8 = 1, .suffix = "-fp8kv-noflash"};
static const variant NO_FLASH = {.graphs = 1, .suffix = "-noflash"};
static const variant NO_GRAPH = {.flash = 1, .suffix = "-nograph"};
static const variant NO_PDL = {.graphs = 1, .flash = 1, .no_pdl = 1, .suffix = "-nopdl"};
static const variant ROPE = {.graphs = 1, .flash = 1, .rope = 1, .suffix = "-rope"};
static const variant OWN_GEMMS = {
    .graphs = 1, .flash = 1, .own_gemms = SSF_OWN_GEMMS_ALWAYS, .suffix = "-pgemm"};
static const variant ROPE_OWN_GEMMS = {
    .graphs = 1, .flash = 1, .rope = 1, .own_gemms = SSF_OWN_GEMMS_ALWAYS, .suffix = "-rope-pgemm"};
static const variant TUNED_GEMMS = {
    .graphs = 1, .flash = 1, .own_gemms = SSF_OWN_GEMMS_TUNED, .suffix = "-tuned"};
static const variant ROPE_TUNED_GEMMS = {
    .graphs = 1, .flash = 1, .rope = 1, .own_gemms = SSF_OWN_GEMMS_TUNED, .suffix = "-rope-tuned"};
static const variant ROPE_OWN_FUSED = {.graphs = 1,
                                       .flash = 1,
                                       .rope = 1,
                                       .own_gemms = SSF_OWN_GEMMS_ALWAYS,
                                       .fuse = 1,
                                       .suffix = "-rope-pgemm-fused"};
static const variant OWN_FUSED = {.graphs = 1,
                                  .flash = 1,
                                  .own_gemms = SSF_OWN_GEMMS_ALWAYS,
                                  .fuse = 1,
                                  .suffix = "-pgemm-fused"};
static const variant TUNED_FUSED = {
    .graphs = 1, .flash = 1, .own_gemms = SSF_OWN_GEMMS_TUNED, .fuse = 1, .suffix = "-tuned-fused"};
static const variant CUBLAS_GEMMS = {
    .graphs = 1, .flash = 1, .own_gemms = SSF_OWN_GEMMS_NEVER, .suffix = "-cublas"};
static const variant FP8_ROPE = {
    .graphs = 1, .fp8 = 1, .flash = 1, .rope = 1, .suffix = "-fp8kv-rope"};
static const variant OVERLAP = {.graphs = 1, .flash = 1, .overlap = 1, .suffix = "-overlap"};
static const variant FOLD = {.graphs = 1, .flash = 1, .fold = 1, .suffix = "-fold"};
static const variant FP8_FOLD = {
    .graphs = 1, .fp8 = 1, .flash = 1, .fold = 1, .suffix = "-fp8kv-fold"};
static const variant FOLD_NO_FLASH = {.graphs = 1, .fold = 1, .suffix = "-fold-noflash"};
static const variant NO_FOLD = {.graphs = 1, .flash = 1, .fold = -1, .suffix = "-nofold"};
static const variant SEARCH = {.graphs = 1, .flash = 1, .search = 1, .suffix = "-search"};
static const variant NO_SEARCH = {.graphs = 1, .flash = 1, .search = -1, .suffix = "-nosearch"};

static ssf_device *open_cuda_as(const ssf_model *m, const pages *pg, int ctx, variant v,
                                ssf_error *err)
{
    ssf_device_options o = {.n_slots = pg->n_seqs,
                            .max_context = ctx,
                            .block_size = BLOCK_SIZE,
                            .n_blocks = pg->n_blocks,
                            .gpu_memory_utilization = 0.9,
                            .disable_cuda_graphs = !v.graphs,
                            .kv_fp8 = v.fp8,
                            .disable_flash_prefill = !v.flash,
                            .disable_pdl = v.no_pdl,
                            .rope_in_attention = v.rope,
                            .own_small_gemms = v.own_gemms,
                            .overlap_steps = v.overlap,
                            .fuse_norms = v.fuse,
                            .fold_norms = (v.fold > 0),
                            .disable_fold_norms = (v.fold < 0),
                            .gemm_split_search = (v.search > 0),
                            .disable_gemm_split_search = (v.search < 0)};
    return ssf_device_cuda_open(m, &o, err);
}

static ssf_device *open_cuda(const ssf_model *m, const pages *pg, int ctx, ssf_error *err)
{
    return open_cuda_as(m, pg, ctx, DEFAULT, err);
}

/* The fp32 reference device over the same pages. */
static ssf_device *open_cpu(const ssf_model *m, const pages *pg, ssf_error *err)
{
    ssf_device_options o = {.n_slots = pg->n_seqs,
                            .max_context = MAX_CONTEXT,
                            .block_size = BLOCK_SIZE,
                            .n_blocks = pg->n_blocks};
    return ssf_device_cpu_open(m, &o, err);
}

/* The same prompt in sequences 1..3: prefilled (its first token drawn on
 * the device), then decoded teacher-forced with the fixture's tokens, three
 * rows a step, which is a CUDA graph of 4 rows with one row of padding.
 * Every drawn id (greedy) must equal the others' and, where the fp32
 * reference's top-1 is decisive, its argmax.  `as` names the device's
 * variant in the report ("" for the default). */
static void check_graph_decode(ssf_device *d, const pages *pg, const seq *s, const float *ref,
                               int vocab, int n_valid, const char *dir, int p, const char *as)
{
    enum { K = 3 };
    ssf_error err;
    int32_t tok[16 * K], pos[16 * K], sq[16 * K], rows[K], ids[K] = {-1, -1, -1};
    ssf_sample_spec spec[K] = {{0}};
    int rc = 0, agree = 0, decisive = 0, same = 1;
    for (int at = 0; !rc && at < s->len; at += 16) {
        int n = s->len - at < 16 ? s->len - at : 16, nr = 0, ns = 0;
        for (int k = 0; k < K; k++)
            for (int i = 0; i < n; i++, nr++) {
                tok[nr] = s->tok[at + i], pos[nr] = at + i, sq[nr] = 1 + k;
                if (at + i == s->len - 1) rows[ns++] = nr;
            }
        rc = forward_sampled(d, pg, tok, pos, sq, nr, rows, ns, spec, n_valid, ids, &err);
    }
    for (int q = s->len - 1; !rc && q < s->n; q++) {
        if (q >= s->len) {
            for (int k = 0; k < K; k++)
                tok[k] = s->tok[q], pos[k] = q, sq[k] = 1 + k, rows[k] = k;
            rc = forward_sampled(d, pg, tok, pos, sq, K, rows, K, spec, n_valid, ids, &err);
        }
        const float *e = ref + (size_t)q * vocab;
        same &= ids[1] == ids[0] && ids[2] == ids[0];
        /* decisive: a lead no BF16 error of this model (4% of the largest
         * logit, REL_TOL) could overturn */
        double big = 0;
        for (int i = 0; i < n_valid; i++)
            big = fmax(big, fabs((double)e[i]));
        if (top_margin(e, n_valid) > 2 * REL_TOL * big)
            decisive++, agree += ids[0] == argmax(e, n_valid);
    }
    int ok = !rc && same && agree >= TOP1_MIN * decisive;
    failures += !ok;
    if (rc)
        printf("FAIL %s prompt %d: graph decode%s: %s\n", dir, p, as, err.msg);
    else
        printf("%s %s prompt %d: CUDA graph decode%s (3 rows + 1 padding), device greedy: rows "
               "identical %s, top-1 as fp32 %d/%d where decisive\n",
               ok ? "PASS" : "FAIL", dir, p, as, same ? "yes" : "NO", agree, decisive);
}

/* The same forward on a device opened as v, against fp32 within tol: full
 * forward (with an FP8 cache, K and V read back from e4m3 within the step;
 * with flash prefill off, the prompt's rows through the decode kernel) and
 * prefill + decode. */
static void check_variant(const ssf_model *m, const pages *pg, const seq *s, const float *ref,
                          int vocab, int n_valid, const char *dir, int p, variant v,
                          const char *name, double tol)
{
    ssf_error err;
    ssf_device *d = open_cuda_as(m, pg, MAX_CONTEXT, v, &err);
    float *g = d ? full_forward(d, pg, s, vocab, 0, &err) : NULL;
    if (g) {
        char what[2300];
        snprintf(what, sizeof what, "%s prompt %d: CUDA %s vs CPU, full forward", dir, p, name);
        report_tol(what, g, ref, vocab, n_valid, 0, s->n, tol);
        if (prefill_decode(d, pg, s, vocab, 1, g, &err) == 0) {
            snprintf(what, sizeof what, "%s prompt %d: CUDA %s prefill+decode vs CPU", dir, p,
                     name);
            report_tol(what, g, ref, vocab, n_valid, s->len - 1, s->n, tol);
        } else {
            printf("FAIL %s prompt %d: %s prefill+decode: %s\n", dir, p, name, err.msg), failures++;
        }
    } else {
        printf("FAIL %s prompt %d: %s: %s\n", dir, p, name, err.msg), failures++;
    }
    free(g);
    if (d) d->close(d);
}

/* A device opened as v, once check_graph_decode (`as` naming v) has run
 * on it; NULL, the failure counted, when it does not open. */
static ssf_device *graph_checked(const ssf_model *m, const pages *pg, const seq *s,
                                 const float *ref, int vocab, int n_valid, const char *dir, int p,
                                 variant v, const char *as)
{
    ssf_error err;
    ssf_device *d = open_cuda_as(m, pg, MAX_CONTEXT, v, &err);
    if (!d) {
        printf("FAIL %s prompt %d: graph decode%s: %s\n", dir, p, as, err.msg), failures++;
        return NULL;
    }
    check_graph_decode(d, pg, s, ref, vocab, n_valid, dir, p, as);
    return d;
}

/* How many of the n floats differ in their bits. */
static size_t bits_differ(const float *a, const float *b, size_t n)
{
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t x, y;
        memcpy(&x, &a[i], sizeof x), memcpy(&y, &b[i], sizeof y);
        differ += x != y;
    }
    return differ;
}

/* d's logits of the full forward (sequence 0) into lg[0] and of the
 * prefill+decode (sequence 1) into lg[1]. */
static int both_ways(ssf_device *d, const pages *pg, const seq *s, int vocab, float **lg,
                     ssf_error *err)
{
    lg[0] = full_forward(d, pg, s, vocab, 0, err);
    lg[1] = lg[0] ? ssf_xcalloc((size_t)s->n * vocab, sizeof(float)) : NULL;
    return lg[1] && prefill_decode(d, pg, s, vocab, 1, lg[1], err) == 0 ? 0 : -1;
}

/* A variant that moves no value (launches without PDL, RoPE in the
 * attention): a fresh device opened as v must give the full forward's and
 * the prefill+decode's logits bit for bit as a fresh device opened as base
 * (both run the same calls, so cuBLAS picks the same kernels), then decode
 * through graphs as check_graph_decode asks.  `name` says what v changes. */
static void check_same_values(const ssf_model *m, const pages *pg, const seq *s, const float *ref,
                              int vocab, int n_valid, const char *dir, int p, variant base,
                              variant v, const char *name)
{
    ssf_error err;
    ssf_device *plain = open_cuda_as(m, pg, MAX_CONTEXT, base, &err);
    ssf_device *d = plain ? open_cuda_as(m, pg, MAX_CONTEXT, v, &err) : NULL;
    float *a[2] = {NULL, NULL}, *b[2] = {NULL, NULL};
    int ok = plain && d && both_ways(plain, pg, s, vocab, a, &err) == 0 &&
             both_ways(d, pg, s, vocab, b, &err) == 0;
    if (ok) {
        /* prefill+decode: the rows from the prompt's last on */
        size_t n = (size_t)s->n * vocab, first = (size_t)(s->len - 1) * vocab;
        size_t full = bits_differ(a[0], b[0], n),
               dec = bits_differ(a[1] + first, b[1] + first, n - first);
        failures += full + dec != 0;
        printf("%s %s prompt %d: %s: %zu of %zu logits of the full forward and %zu of %zu of "
               "prefill+decode differ from the device without it\n",
               (full + dec) ? "FAIL" : "PASS", dir, p, name, full, n, dec, n - first);
        char as[128];
        snprintf(as, sizeof as, " (%s)", name);
        check_graph_decode(d, pg, s, ref, vocab, n_valid, dir, p, as);
    } else {
        printf("FAIL %s prompt %d: %s: %s\n", dir, p, name, err.msg), failures++;
    }
    free(a[0]), free(a[1]), free(b[0]), free(b[1]);
    if (d) d->close(d);
    if (plain) plain->close(plain);
}

/* The tuner's verdicts on d's own GEMMs for steps of M rows, a line each: `tag`
 * "TIME" (a bench's) or "PASS" (a check's, which every planned GEMM must
 * have been judged by); FAIL where the kernel disagreed with cuBLAS.  The
 * number of GEMMs judged, -1 on an error. */
static int report_verdicts(const ssf_device *d, int M, const char *tag, const char *what)
{
    ssf_pgemm_verdict v[SSF_CUDA_SMALL_GEMMS];
    ssf_error err;
    if (ssf_cuda_gemm_verdicts(d, M, v, &err)) {
        printf("FAIL %s: %s\n", what, err.msg), failures++;
        return -1;
    }
    int judged = 0;
    for (int g = 0; g < SSF_CUDA_SMALL_GEMMS; g++) {
        if (!v[g].tuned) continue;
        judged++;
        failures += !v[g].agrees;
        printf("%s %s gemm_verdict M=%d rows=%d gemm=%s agrees=%d own=%d worst=%.3f blas_ms=%.4f "
               "own_ms=%.4f ratio=%.3f\n",
               v[g].agrees ? tag : "FAIL", what, M, v[g].rows, v[g].gemm, v[g].agrees, v[g].own,
               v[g].worst, v[g].blas_ms, v[g].own_ms,
               v[g].blas_ms > 0 ? v[g].own_ms / v[g].blas_ms : 0.0);
    }
    return judged;
}

/* The own GEMMs where tuned: a graph decode of 3 rows (a graph of 4) on a
 * fresh device judges each GEMM at 4 rows before its capture (every
 * fixture's shapes have a plan: all four must be judged and agree with
 * cuBLAS), then decodes as check_graph_decode asks, with whichever path
 * won. */
static void check_tuned(const ssf_model *m, const pages *pg, const seq *s, const float *ref,
                        int vocab, int n_valid, const char *dir, int p)
{
    ssf_device *d = graph_checked(m, pg, s, ref, vocab, n_valid, dir, p, TUNED_GEMMS,
                                  " (own GEMMs where tuned)");
    if (!d) return;
    char what[2300];
    snprintf(what, sizeof what, "%s prompt %d", dir, p);
    int judged = report_verdicts(d, 3, "PASS", what);
    if (judged >= 0 && judged != SSF_CUDA_SMALL_GEMMS)
        printf("FAIL %s: %d of %d GEMMs judged for 3 rows\n", what, judged, SSF_CUDA_SMALL_GEMMS),
            failures++;
    d->close(d);
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
    pages_init(&pg, 4, MAX_CONTEXT);
    ssf_device *cpu = open_cpu(m, &pg, &err);
    ssf_device *gpu = cpu ? open_cuda(m, &pg, MAX_CONTEXT, &err) : NULL;
    seq s;
    for (int p = 0; gpu && fixture_seq(st, p, &s); p++) {
        float *c = full_forward(cpu, &pg, &s, vocab, 0, &err),
              *g = c ? full_forward(gpu, &pg, &s, vocab, 0, &err) : NULL;
        if (g) {
            char what[2300];
            snprintf(what, sizeof what, "%s prompt %d: CUDA vs CPU, full forward", dir, p);
            report(what, g, c, vocab, n_valid, 0, s.n);
            if (prefill_decode(gpu, &pg, &s, vocab, 1, g, &err) == 0) {
                snprintf(what, sizeof what, "%s prompt %d: CUDA prefill+decode vs CPU", dir, p);
                report(what, g, c, vocab, n_valid, s.len - 1, s.n);
            }
            check_graph_decode(gpu, &pg, &s, c, vocab, n_valid, dir, p, "");
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, FP8_KV, "fp8 KV", FP8_REL_TOL);
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, FP8_NO_FLASH,
                          "fp8 KV, decode-kernel prefill", FP8_REL_TOL);
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, NO_FLASH, "decode-kernel prefill",
                          REL_TOL);
            check_same_values(m, &pg, &s, c, vocab, n_valid, dir, p, DEFAULT, NO_PDL, "PDL off");
            check_same_values(m, &pg, &s, c, vocab, n_valid, dir, p, DEFAULT, ROPE,
                              "RoPE in the attention");
            check_same_values(m, &pg, &s, c, vocab, n_valid, dir, p, FP8_KV, FP8_ROPE,
                              "fp8 KV, RoPE in the attention");
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, ROPE_OWN_GEMMS,
                          "RoPE in the attention, own small GEMMs", REL_TOL);
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, ROPE_OWN_FUSED,
                          "RoPE in the attention, own small GEMMs, norms fused", REL_TOL);
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, FOLD, "norms folded", REL_TOL);
            ssf_device *fd =
                graph_checked(m, &pg, &s, c, vocab, n_valid, dir, p, FOLD, ", norms folded");
            if (fd) fd->close(fd);
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, FOLD_NO_FLASH,
                          "norms folded, decode-kernel prefill", REL_TOL);
            check_variant(m, &pg, &s, c, vocab, n_valid, dir, p, FP8_FOLD, "fp8 KV, norms folded",
                          FP8_REL_TOL);
            check_tuned(m, &pg, &s, c, vocab, n_valid, dir, p);
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

/* Top-1 agreement with fp32 of a and of b on the rows decisive for both:
 * where fp32's lead exceeds twice the larger of the two rows' max|d|, so
 * that neither error could overturn it.  Each side's own decisive rows
 * follow its own error, so their counts do not compare. */
static void common_decisive(const float *a, const float *b, const float *ref, int vocab,
                            int n_valid, int n, int *rows, int *agree_a, int *agree_b)
{
    *rows = *agree_a = *agree_b = 0;
    for (int r = 0; r < n; r++) {
        const float *x = a + (size_t)r * vocab, *y = b + (size_t)r * vocab,
                    *e = ref + (size_t)r * vocab;
        double md = 0;
        for (int i = 0; i < vocab; i++)
            md = fmax(md, fmax(fabs((double)x[i] - e[i]), fabs((double)y[i] - e[i])));
        if (!(top_margin(e, n_valid) > 2 * md)) continue;
        int top = argmax(e, n_valid);
        (*rows)++;
        *agree_a += argmax(x, n_valid) == top;
        *agree_b += argmax(y, n_valid) == top;
    }
}

/* CUDA and transformers' BF16 model, both against the fp32 CPU device:
 * ours must be about as close to fp32 as transformers' own BF16 is. */
static void three_way(const char *what, const float *cuda, const float *hf, const float *fp32,
                      int vocab, int n_valid, int n)
{
    closeness ours = compare(cuda, fp32, vocab, n_valid, 0, n);
    closeness theirs = compare(hf, fp32, vocab, n_valid, 0, n);
    closeness between = compare(cuda, hf, vocab, n_valid, 0, n);
    double tol = HF_RATIO * theirs.worst + HF_SLACK;
    int rows, agree_ours, agree_theirs;
    common_decisive(cuda, hf, fp32, vocab, n_valid, n, &rows, &agree_ours, &agree_theirs);
    int ok = close_enough(ours, tol) && agree_ours >= agree_theirs - 1;
    failures += !ok;
    printf("%s %s: vs fp32: CUDA max rel err %.3g (<= %.3g), transformers bf16 %.3g; top-1 CUDA "
           "%d/%d, transformers %d/%d (decisive %d/%d, %d/%d; decisive for both: CUDA %d/%d, "
           "transformers %d/%d); CUDA vs transformers %.3g, top-1 %d/%d\n",
           ok ? "PASS" : "FAIL", what, ours.worst, tol, theirs.worst, ours.agree, ours.rows,
           theirs.agree, theirs.rows, ours.decisive_agree, ours.decisive, theirs.decisive_agree,
           theirs.decisive, agree_ours, rows, agree_theirs, rows, between.worst, between.agree,
           between.rows);
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
    ssf_device *cpu = open_cpu(m, &pg, &err);
    ssf_device *gpu = cpu ? open_cuda(m, &pg, MAX_CONTEXT, &err) : NULL;
    seq s;
    int vocab, p = 0;
    while (gpu && read_record(f, &s, &vocab)) {
        char what[2300];
        snprintf(what, sizeof what, "%s prompt %d", dir, p++);
        float *c = vocab == ssf_model_config_of(m)->vocab_size
                       ? full_forward(cpu, &pg, &s, vocab, 0, &err)
                       : NULL;
        float *g = c ? full_forward(gpu, &pg, &s, vocab, 0, &err) : NULL;
        if (g)
            three_way(what, g, s.ref, c, vocab, s.n_valid, s.n);
        else
            printf("FAIL %s: %s\n", what, err.msg), failures++;
        free(c), free(g);
        seq_free(&s);
    }
    if (!gpu) printf("FAIL %s: %s\n", dir, err.msg), failures++;
    if (gpu && p == 0) printf("FAIL %s: empty dump %s\n", dir, dump), failures++;
    if (gpu) gpu->close(gpu);
    if (cpu) cpu->close(cpu);
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

/* The fixture's prompt on a fresh device opened as v over fresh pages:
 * the full forward (its logits into *lg, the caller's to free, when lg is
 * not NULL), prefill + decode, and a fork. */
static int run_alone(const ssf_model *m, const seq *s, variant v, float **lg, ssf_error *err)
{
    pages pg;
    pages_init(&pg, 3, MAX_CONTEXT);
    int vocab = ssf_model_config_of(m)->vocab_size;
    ssf_device *d = open_cuda_as(m, &pg, MAX_CONTEXT, v, err);
    float *g = d ? full_forward(d, &pg, s, vocab, 0, err) : NULL;
    float *dec = g ? ssf_xcalloc((size_t)s->n * vocab, sizeof(float)) : NULL;
    int rc = dec && prefill_decode(d, &pg, s, vocab, 1, dec, err) == 0 &&
                     fork_decode(d, &pg, s, vocab, err) == 0
                 ? 0
                 : -1;
    free(dec);
    if (lg)
        *lg = g;
    else
        free(g);
    if (d) d->close(d);
    pages_free(&pg);
    return rc;
}

/* One fixture with no reference: what compute-sanitizer runs.  The default
 * device, then RoPE in the attention with the own GEMMs always (the norms
 * between them fused and not), then the norms folded into cuBLAS's GEMMs,
 * through the full forward, prefill + decode and a fork; then check_tuned,
 * whose tuning runs both GEMM paths, against the default's logits. */
static void check_cuda_alone(const char *dir)
{
    ssf_error err;
    ssf_model *m = NULL;
    ssf_safetensors *st = NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    seq s;
    float *ref = NULL;
    int ok = ssf_model_open(dir, &m, &err) == 0 && ssf_safetensors_open(path, &st, &err) == 0 &&
             fixture_seq(st, 0, &s);
    if (ok) {
        ok = run_alone(m, &s, DEFAULT, &ref, &err) == 0 &&
             run_alone(m, &s, ROPE_OWN_GEMMS, NULL, &err) == 0 &&
             run_alone(m, &s, ROPE_OWN_FUSED, NULL, &err) == 0 &&
             run_alone(m, &s, FOLD, NULL, &err) == 0;
        seq_free(&s);
    }
    printf("%s %s: CUDA prefill, decode and fork ran, by default and with RoPE in the attention "
           "and the own GEMMs, with the norms between them fused and not, and with the norms "
           "folded into cuBLAS's GEMMs%s%s\n",
           ok ? "PASS" : "FAIL", dir, ok ? "" : ": ", ok ? "" : err.msg);
    failures += !ok;
    pages pg;
    pages_init(&pg, 4, MAX_CONTEXT);
    if (ok && fixture_seq(st, 0, &s)) {
        int vocab = ssf_model_config_of(m)->vocab_size;
        check_tuned(m, &pg, &s, ref, vocab, fixture_n_valid(dir, vocab), dir, 0);
        seq_free(&s);
    }
    pages_free(&pg);
    free(ref);
    ssf_safetensors_close(st);
    ssf_model_close(m);
}

/* What one decode step must read: the weights of every GEMM (lm_head
 * included, the embedding gather not) and the K, V of every row's context. */
typedef struct step_bytes {
    double weights;    /* bytes */
    double kv_per_pos; /* bytes of K and V, all layers, one position */
} step_bytes;

/* fp8: a KV element is one byte, and each row of head_dim has a 4-byte scale */
static step_bytes bytes_of(const ssf_model_config *c, int fp8)
{
    double H = c->hidden_size, I = c->intermediate_size, hd = c->head_dim;
    double q = c->n_heads * hd, kv = c->n_kv_heads * hd;
    double layer = H * (q + 2 * kv) + q * H + 3 * H * I;
    double elem = fp8 ? 1.0 + 4.0 / hd : 2.0;
    step_bytes b = {2.0 * (c->n_layers * layer + (double)c->vocab_size * H),
                    elem * 2.0 * c->n_layers * kv};
    return b;
}

/* Prefills B random prompts of P tokens, whole prompts per call, and draws
 * each prompt's first token into next[]. */
static int prefill_batch(ssf_device *d, const pages *pg, int vocab, int B, int P,
                         const ssf_sample_spec *spec, int32_t *next, ssf_error *err)
{
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
        rc = forward_sampled(d, pg, tok + at, pos + at, sl + at, n, out, n_out, spec + at / P,
                             vocab, next + at / P, err);
    }
    free(tok), free(pos), free(sl), free(out);
    return rc;
}

/* The device variant being timed; the checkpoint's directory name */
static variant bench_as = {.graphs = 1, .suffix = ""};
/* bench_batch prints no TIME line (check_overlap's runs) */
static int bench_quiet;
static const char *bench_model = "";

/* Step s of a decode over B rows (row b: sequence b at position P + s,
 * pos[] filled here), each row's next token drawn on the device into
 * ids[s * B ..]: its tokens ids[(s - 1) * B ..] (first[] at s 0), or with
 * `fed` the previous call's draws, read on the device; `defer`: queued,
 * its ids collected later.  iota[b] = b: row b's sequence, its sample row
 * and (fed) the sample row of the step before whose draw it takes. */
static int decode_step(ssf_device *d, const pages *pg, int B, int P, int s, ssf_sample_spec *spec,
                       int vocab, const int32_t *first, int32_t *ids, const int32_t *iota,
                       int32_t *pos, int fed, int defer, ssf_error *err)
{
    for (int b = 0; b < B; b++)
        pos[b] = P + s, spec[b].step = (uint64_t)s + 1;
    ssf_fwd_batch fb = rows_of(pg, s ? ids + (size_t)(s - 1) * B : first, pos, iota, B);
    fb.n_sample = B;
    fb.sample_rows = iota;
    fb.sample = spec;
    fb.sampled = ids + (size_t)s * B;
    fb.n_valid = vocab;
    fb.feed = fed ? iota : NULL;
    fb.defer = defer;
    return d->forward(d, &fb, NULL, err);
}

/* `steps` decode steps after prefill_batch, the ids into ids[steps][B]:
 * each step's tokens the host's copy of the step before's ids, or
 * (deferred) each step queued with its tokens fed on the device, the step
 * before collected after it is queued, as the engine runs a deferring
 * device. */
static int decode_steps(ssf_device *d, const pages *pg, int B, int P, int steps,
                        ssf_sample_spec *spec, int vocab, const int32_t *first, int32_t *ids,
                        int deferred, ssf_error *err)
{
    int32_t *iota = ssf_xmalloc((size_t)B * 4), *pos = ssf_xmalloc((size_t)B * 4);
    for (int b = 0; b < B; b++)
        iota[b] = b;
    int rc = 0, queued = 0;
    for (int s = 0; !rc && s < steps; s++) {
        rc = decode_step(d, pg, B, P, s, spec, vocab, first, ids, iota, pos, deferred && s > 0,
                         deferred, err);
        queued += deferred && !rc;
        if (!rc && queued == 2) rc = d->collect(d, err), queued--;
    }
    ssf_error ignored;
    for (; queued > 0; queued--)
        if (d->collect(d, rc ? &ignored : err)) rc = -1;
    free(iota), free(pos);
    return rc;
}

/* Prefill B random prompts, then `steps` decode steps of B rows, each
 * row's next token drawn on the device as the engine runs it (greedy, or
 * temperature 0.6 and top-p 0.95 when `sampled`; deferred steps with
 * bench_as.overlap), into ids[steps][B] when ids is not NULL; the step's
 * bytes (weights + the mean context's KV) over its time give the achieved
 * GB/s, set against copy_gbps, the device's D2D copy rate. */
static int bench_batch(ssf_device *d, const pages *pg, const ssf_model_config *c, int B, int P,
                       int steps, int sampled, double copy_gbps, int32_t *ids, ssf_error *err)
{
    int vocab = c->vocab_size;
    int32_t *tok = ssf_xmalloc((size_t)B * 4);
    int32_t *out = ids ? ids : ssf_xmalloc((size_t)B * steps * 4);
    ssf_sample_spec *spec = ssf_xcalloc((size_t)B, sizeof *spec);
    for (int b = 0; b < B; b++)
        spec[b] = (ssf_sample_spec){.temperature = sampled ? 0.6 : 0,
                                    .top_p = sampled ? 0.95 : 1,
                                    .seed = 1000 + (uint64_t)b};
    double t0 = ssf_monotonic_seconds();
    int rc = prefill_batch(d, pg, vocab, B, P, spec, tok, err);
    double t1 = ssf_monotonic_seconds();
    if (!rc) rc = ssf_cuda_time_replays(d, err);
    if (!rc) rc = decode_steps(d, pg, B, P, steps, spec, vocab, tok, out, bench_as.overlap, err);
    double t2 = ssf_monotonic_seconds(), ms = (t2 - t1) * 1e3 / steps;
    /* the steps' graph replays on the device: the rest of a step is the host's */
    long replays = 0;
    double replay_ms = 0;
    if (!rc) rc = ssf_cuda_replay_time(d, &replays, &replay_ms, err);
    /* every decode step of a graph variant replays a graph, none of another's */
    long want = bench_as.graphs && B <= SSF_CUDA_GRAPH_MAX_ROWS ? steps : 0;
    if (!rc && replays != want) {
        printf("FAIL decode at batch %d: %ld of %d steps replayed a graph, not %ld\n", B, replays,
               steps, want);
        failures++;
    }
    char gpu[64] = "";
    if (replays > 0)
        snprintf(gpu, sizeof gpu, " gpu_ms_per_step=%.3f host_ms_per_step=%.3f",
                 replay_ms / (double)replays, ms - replay_ms / (double)replays);
    step_bytes sb = bytes_of(c, bench_as.fp8);
    /* rows attend to P + s + 1 positions at step s */
    double kv = B * (P + (steps - 1) / 2.0 + 1) * sb.kv_per_pos,
           gbps = (sb.weights + kv) / ms / 1e6;
    if (!rc && !bench_quiet)
        printf("TIME engine=%s%s model=%s batch=%d prompt=%d steps=%d prefill_tok_s=%.0f "
               "decode_tok_s=%.1f "
               "ms_per_step=%.2f step_MB=%.1f (weights %.1f + kv %.1f) achieved_GBps=%.0f "
               "copy_GBps=%.0f roofline_pct=%.0f%s\n",
               sampled ? "cuda-sampled" : "cuda", bench_as.suffix, bench_model, B, P, steps,
               B * P / (t1 - t0), (double)B * steps / (t2 - t1), ms, (sb.weights + kv) / 1e6,
               sb.weights / 1e6, kv / 1e6, gbps, copy_gbps,
               copy_gbps > 0 ? 100 * gbps / copy_gbps : 0.0, gpu);
    if (out != ids) free(out);
    free(tok), free(spec);
    return rc;
}

static int parse_batches(const char *batches, int *bs, int *maxb)
{
    int nb = 0;
    *maxb = 1;
    for (const char *c = batches; *c && nb < 16; c = strchr(c, ',') ? strchr(c, ',') + 1 : "") {
        bs[nb] = (int)strtol(c, NULL, 10);
        *maxb = bs[nb] > *maxb ? bs[nb] : *maxb;
        nb++;
    }
    return nb;
}

/* A few steps of B rows first: the batch's graph bucket tunes its GEMMs and
 * is captured there, not in the timed steps (4-step lines stay out of the
 * summary table). */
static int warm_up(ssf_device *d, const pages *pg, const ssf_model_config *c, int B, int P,
                   ssf_error *err)
{
    return bench_batch(d, pg, c, B, P, 4, 0, 0, NULL, err);
}

#define OVERLAP_CHECK_STEPS 64

/* Deferred steps fed on the device draw the ids that steps fed by the host
 * draw: OVERLAP_CHECK_STEPS greedy steps of B rows both ways on one device
 * (untimed: no TIME lines).  Rows whose ids all agree are
 * counted: a feed that took the wrong draw would change nearly every row at
 * its first fed step; a graph replay that rounded differently from run to
 * run only a row whose greedy margin is that small. */
static int check_overlap(ssf_device *d, const pages *pg, const ssf_model_config *c, int B, int P,
                         ssf_error *err)
{
    size_t n = (size_t)B * OVERLAP_CHECK_STEPS;
    int32_t *want = ssf_xmalloc(n * 4), *got = ssf_xmalloc(n * 4);
    variant as = bench_as;
    bench_quiet = 1;
    bench_as.overlap = 0;
    int rc = bench_batch(d, pg, c, B, P, OVERLAP_CHECK_STEPS, 0, 0, want, err);
    bench_as.overlap = 1;
    if (!rc) rc = bench_batch(d, pg, c, B, P, OVERLAP_CHECK_STEPS, 0, 0, got, err);
    bench_as = as;
    bench_quiet = 0;
    int same = 0;
    for (int b = 0; !rc && b < B; b++) {
        int all = 1;
        for (int s = 0; s < OVERLAP_CHECK_STEPS; s++)
            all &= got[(size_t)s * B + b] == want[(size_t)s * B + b];
        same += all;
    }
    if (!rc) {
        int ok = 2 * same >= B;
        printf("%s overlap batch=%d: %d of %d rows draw the same %d ids deferred as fed by the "
               "host\n",
               ok ? "PASS" : "FAIL", B, same, B, OVERLAP_CHECK_STEPS);
        failures += !ok;
    }
    free(want), free(got);
    return rc;
}

/* Each of the nb batches bs[], warmed up, then timed. */
static int time_batches(ssf_device *d, const pages *pg, const ssf_model_config *c, const int *bs,
                        int nb, int P, int steps, double copy_gbps, ssf_error *err)
{
    int rc = 0;
    for (int i = 0; !rc && i < nb; i++)
        rc = warm_up(d, pg, c, bs[i], P, err) ||
             (bench_as.overlap && check_overlap(d, pg, c, bs[i], P, err)) ||
             bench_batch(d, pg, c, bs[i], P, steps, 0, copy_gbps, NULL, err);
    return rc;
}

/* The device's report line after a bench (the own GEMM's verdicts, the
 * cuBLAS shapes that split K), as an INFO line. */
static void print_report(ssf_device *gpu, const char *suffix)
{
    char line[4096];
    if (gpu->report && gpu->report(gpu, line, sizeof line) > 0)
        printf("INFO model=%s engine=cuda%s %s\n", bench_model, suffix, line);
}

/* The nb batches bs[] again on a device opened as v. */
static int bench_variant(const ssf_model *m, const pages *pg, int ctx, variant v, const int *bs,
                         int nb, int P, int steps, double copy_gbps, ssf_error *err)
{
    ssf_device *gpu = open_cuda_as(m, pg, ctx, v, err);
    if (!gpu) return -1;
    const ssf_model_config *c = ssf_model_config_of(m);
    bench_as = v;
    int rc = time_batches(gpu, pg, c, bs, nb, P, steps, copy_gbps, err);
    char what[256];
    snprintf(what, sizeof what, "model=%s", bench_model);
    for (int i = 0; !rc && v.own_gemms == SSF_OWN_GEMMS_TUNED && i < nb; i++)
        if (bs[i] <= SSF_PGEMM_MAX_M) report_verdicts(gpu, bs[i], "TIME", what);
    if (!rc) print_report(gpu, v.suffix);
    gpu->close(gpu);
    bench_as = DEFAULT;
    return rc;
}

/* Decode timing at each batch; `extra` (comma-separated) adds the largest
 * batch with device sampling ("sampled"), batches 1 and the largest kernel
 * by kernel ("nograph"), the largest with an FP8 KV cache ("fp8"; with its
 * prompts through the decode kernel, "fp8noflash"), and every batch
 * again with prompts through the decode kernel instead of the flash
 * prefill kernel ("noflash"), with each kernel launched after the one
 * before completed ("nopdl"), with decode steps' RoPE and KV store in the
 * attention kernel ("rope"), with the GEMMs through the engine's own
 * ("pgemm", at the batches it takes: up to SSF_PGEMM_MAX_M), or both
 * ("ropepgemm"), through it where the tuner chose it ("tuned", with its
 * verdicts; "ropetuned": and RoPE in the attention), with the RMSNorms
 * between them fused in ("pgemmfused", "tunedfused"), or through cuBLAS
 * alone ("cublas"), every batch with deferred steps fed on the device
 * ("overlap", each batch first checked by check_overlap), and every batch
 * with the RMSNorms folded into cuBLAS's GEMMs ("fold"; "fp8fold": the
 * largest with an fp8 pool as well), and every batch with them kept as
 * kernels of their own ("nofold", the other side of the ratio once
 * SSFK_FOLD_NORMS makes folding the default), and every batch with the
 * cuBLAS tuner's split search ("search"; "nosearch": without it, once
 * SSFK_GEMM_SPLIT_SEARCH makes it the default). */
/* Whether the comma-separated list names `what` (whole names: "fp8" is not
 * in "fp8noflash"). */
static int wants(const char *list, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, what, n) == 0) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

/* The extras timed at every batch, or at the largest alone (largest), in
 * this order. */
static const struct {
    const char *name;
    const variant *v;
    int largest;
} batch_variants[] = {{"fp8", &FP8_KV, 1},        {"fp8noflash", &FP8_NO_FLASH, 1},
                      {"noflash", &NO_FLASH, 0},  {"nopdl", &NO_PDL, 0},
                      {"rope", &ROPE, 0},         {"overlap", &OVERLAP, 0},
                      {"fold", &FOLD, 0},         {"fp8fold", &FP8_FOLD, 1},
                      {"nofold", &NO_FOLD, 0},    {"search", &SEARCH, 0},
                      {"nosearch", &NO_SEARCH, 0}};

/* The extras that choose how the GEMMs of up to SSF_PGEMM_MAX_M rows run,
 * timed at own_gemm_batches only. */
static const struct {
    const char *name;
    const variant *v;
} small_variants[] = {{"pgemm", &OWN_GEMMS},      {"ropepgemm", &ROPE_OWN_GEMMS},
                      {"tuned", &TUNED_GEMMS},    {"ropetuned", &ROPE_TUNED_GEMMS},
                      {"pgemmfused", &OWN_FUSED}, {"tunedfused", &TUNED_FUSED},
                      {"cublas", &CUBLAS_GEMMS}};

/* The batches of bs[n] the own GEMM takes (the others would time cuBLAS
 * again) into out; their count. */
static int own_gemm_batches(const int *bs, int n, int *out)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (bs[i] <= SSF_PGEMM_MAX_M) out[k++] = bs[i];
    return k;
}

static void bench(const char *dir, const char *batches, int P, int steps, const char *extra)
{
    ssf_error err;
    ssf_model *m = NULL;
    int bs[16], maxb, nb = parse_batches(batches, bs, &maxb), small[16];
    int n_small = own_gemm_batches(bs, nb, small);
    ssf_device *gpu = NULL;
    pages pg;
    int ctx = P + steps + 8;
    pages_init(&pg, maxb, ctx);
    const char *slash = strrchr(dir, '/');
    bench_model = slash && slash[1] ? slash + 1 : dir;
    bench_as = DEFAULT;
    double t0 = ssf_monotonic_seconds(), copy_gbps = 0;
    if (ssf_model_open(dir, &m, &err) == 0) gpu = open_cuda(m, &pg, ctx, &err);
    if (gpu) printf("TIME engine=cuda open_s=%.1f\n", ssf_monotonic_seconds() - t0);
    int ok = gpu && ssf_cuda_op_copy_bandwidth((size_t)1 << 30, 5, &copy_gbps, &err) == 0;
    if (ok) printf("TIME device copy (D2D, read + write) %.0f GB/s\n", copy_gbps);
    const ssf_model_config *c = m ? ssf_model_config_of(m) : NULL;
    ok = ok && c != NULL && time_batches(gpu, &pg, c, bs, nb, P, steps, copy_gbps, &err) == 0;
    if (ok && wants(extra, "sampled"))
        ok = bench_batch(gpu, &pg, c, maxb, P, steps, 1, copy_gbps, NULL, &err) == 0;
    if (ok) print_report(gpu, "");
    if (gpu) gpu->close(gpu);
    if (ok && wants(extra, "nograph")) {
        const int ends[2] = {1, maxb};
        ok = bench_variant(m, &pg, ctx, NO_GRAPH, ends, 2, P, steps, copy_gbps, &err) == 0;
    }
    for (size_t i = 0; ok && i < sizeof batch_variants / sizeof *batch_variants; i++)
        if (wants(extra, batch_variants[i].name))
            ok = bench_variant(m, &pg, ctx, *batch_variants[i].v,
                               batch_variants[i].largest ? &maxb : bs,
                               batch_variants[i].largest ? 1 : nb, P, steps, copy_gbps, &err) == 0;
    for (size_t i = 0; ok && n_small && i < sizeof small_variants / sizeof *small_variants; i++)
        if (wants(extra, small_variants[i].name))
            ok = bench_variant(m, &pg, ctx, *small_variants[i].v, small, n_small, P, steps,
                               copy_gbps, &err) == 0;
    printf("%s bench %s: CUDA decode timing%s%s\n", ok ? "PASS" : "FAIL", dir, ok ? "" : ": ",
           ok ? "" : err.msg);
    failures += !ok;
    pages_free(&pg);
    ssf_model_close(m);
}

/* ---- the device sampler ------------------------------------------------------------ */

#define SV 4096       /* ids of the distribution checks' rows */
#define SV_VALID 4000 /* the rest is padding no draw may take */
#define DRAWS 20000

/* The rows of sampler-rows.h: fill_logits' at a scale (every id keeps some
 * mass: the filters' worst case, which the gathered path leaves to the
 * whole-row one), peaked (a confident model: a few ids with mass) and with
 * a tail (an uncertain one: most ids with a little mass, top-p keeping a
 * few hundred: the gathered path's tiers). */
enum row_shape { ROW_FLAT, ROW_PEAKED, ROW_TAIL };
static const char *const row_shape_name[] = {"flat", "peaked", "tail"};

static void fill_row(float *x, int n, int n_valid, uint32_t seed, double scale,
                     enum row_shape shape)
{
    if (shape == ROW_PEAKED)
        fill_peaked_logits(x, n, n_valid, seed);
    else if (shape == ROW_TAIL)
        fill_tail_logits(x, n, n_valid, seed);
    else
        fill_logits(x, n, n_valid, seed, scale);
}

/* The draws against the reference distribution p: no draw outside it, and
 * a chi-square fit (cells expecting under 5 draws pooled) within dof +
 * 5 sqrt(2 dof) + 10. */
static int fit_draws(const char *name, const char *path, const int32_t *ids, const double *p)
{
    int outside = 0, kept = 0, bins = 0;
    double chi = 0, pooled_e = 0, pooled_o = 0;
    int *count = ssf_xcalloc(SV_VALID, sizeof(int));
    for (int d = 0; d < DRAWS; d++) {
        if (ids[d] < 0 || ids[d] >= SV_VALID || p[ids[d]] == 0)
            outside++;
        else
            count[ids[d]]++;
    }
    for (int i = 0; i < SV_VALID; i++) {
        double e = p[i] * DRAWS;
        kept += p[i] > 0;
        if (e >= 5)
            chi += (count[i] - e) * (count[i] - e) / e, bins++;
        else
            pooled_e += e, pooled_o += count[i];
    }
    if (pooled_e > 0) chi += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e, bins++;
    double dof = bins > 1 ? bins - 1 : 1, limit = dof + 5 * sqrt(2 * dof) + 10;
    int ok = outside == 0 && chi <= limit;
    printf("%s sampler %s (%s): %d draws, %d ids kept, %d outside, chi2 %.1f (<= %.1f, %d cells)\n",
           ok ? "PASS" : "FAIL", name, path, DRAWS, kept, outside, chi, limit, bins);
    free(count);
    return ok;
}

/* DRAWS draws from one row (every row a copy, step = the row), on the
 * whole-row path and on the gathered one (ssfk_sample), each fitted to the
 * reference distribution; the two must draw the same ids, seed for seed
 * (the gathered path keeps the whole row's cuts and its map from the
 * uniform to the token). */
static void check_distribution(const char *name, const ssf_sample_spec *sp, double scale,
                               enum row_shape shape)
{
    ssf_error err;
    float *row = ssf_xmalloc(SV * sizeof(float)), *x = ssf_xmalloc((size_t)DRAWS * SV * 4);
    ssf_sample_spec *spec = ssf_xmalloc(DRAWS * sizeof *spec);
    int32_t *ids[2] = {ssf_xmalloc(DRAWS * sizeof(int32_t)), ssf_xmalloc(DRAWS * sizeof(int32_t))};
    double *p = ssf_xmalloc(SV_VALID * sizeof(double));
    fill_row(row, SV, SV_VALID, 7, scale, shape);
    for (int d = 0; d < DRAWS; d++) {
        memcpy(x + (size_t)d * SV, row, SV * sizeof(float));
        spec[d] = *sp;
        spec[d].step = (uint64_t)d;
    }
    reference_dist(row, SV_VALID, sp, p);
    static const char *path[2] = {"whole-row", "gathered"};
    int rc = 0, same = 0;
    for (int g = 0; !rc && g < 2; g++) {
        rc = ssf_cuda_op_sample(DRAWS, SV, SV_VALID, x, spec, g, ids[g], NULL, &err);
        if (rc)
            printf("FAIL sampler %s (%s): %s\n", name, path[g], err.msg), failures++;
        else
            failures += !fit_draws(name, path[g], ids[g], p);
    }
    for (int d = 0; !rc && d < DRAWS; d++)
        same += ids[0][d] == ids[1][d];
    if (!rc) {
        failures += same != DRAWS;
        printf("%s sampler %s: gathered draws equal whole-row draws, %d of %d\n",
               same == DRAWS ? "PASS" : "FAIL", name, same, DRAWS);
    }
    free(row), free(x), free(spec), free(ids[0]), free(ids[1]), free(p);
}

/* Greedy rows, exactly as sampler.c: ties to the lowest id, non-finite
 * logits skipped, a row without a finite one -1, padding never.  Rows
 * `stride` floats apart: SV + 1 starts most of them off a 16-byte
 * boundary, which the kernel's 16-byte reads must step to. */
static void check_greedy(int stride)
{
    enum { ROWS = 64 };
    ssf_error err;
    float *x = ssf_xmalloc((size_t)ROWS * stride * 4);
    ssf_sample_spec spec[ROWS] = {{0}};
    int32_t ids[ROWS];
    for (int r = 0; r < ROWS; r++)
        fill_logits(x + (size_t)r * stride, stride, SV_VALID, 100 + (uint32_t)r, 3.0);
    float *tie = x + stride, *odd = x + 2 * (size_t)stride, *none = x + 3 * (size_t)stride;
    tie[10] = tie[3000] = 40.0f;                         /* two maxima: 10 */
    odd[5] = NAN, odd[6] = INFINITY, odd[7] = -INFINITY; /* skipped */
    for (int i = 0; i < stride; i++)
        none[i] = i < SV_VALID ? -INFINITY : 50.0f;
    /* greedy rows return before the gather, so its setting is moot */
    int rc = ssf_cuda_op_sample(ROWS, stride, SV_VALID, x, spec, 1, ids, NULL, &err);
    int agree = 0;
    ssf_sampler_scratch scratch = {0};
    ssf_sampler_params greedy = {0, 1, 0, 0};
    for (int r = 0; !rc && r < ROWS; r++)
        agree += ids[r] == ssf_sample(x + (size_t)r * stride, SV_VALID, &greedy, 0, 0, &scratch);
    ssf_sampler_scratch_free(&scratch);
    int ok = !rc && agree == ROWS && ids[1] == 10 && ids[3] == -1;
    failures += !ok;
    printf("%s sampler greedy, rows %d floats apart: %d/%d rows as sampler.c (tie -> %d, no "
           "finite logit -> %d)%s%s\n",
           ok ? "PASS" : "FAIL", stride, agree, ROWS, rc ? 0 : ids[1], rc ? 0 : ids[3],
           rc ? ": " : "", rc ? err.msg : "");
    free(x);
}

/* The kernel's own time on a step's worth of rows of a Qwen2.5 vocabulary:
 * greedy, then temperature 0.6 + top-p 0.95 over the whole row and gathered
 * (the two must draw the same ids; the first 16 rows' draws are checked
 * against the reference support), on rows of one shape. */
static void time_sampler_on(int rows, enum row_shape shape)
{
    enum { V = 151936, NV = 151665, MODES = 3 };
    ssf_error err;
    float *x = ssf_xmalloc((size_t)rows * V * 4);
    ssf_sample_spec *spec = ssf_xcalloc((size_t)rows, sizeof *spec);
    int32_t *ids = ssf_xmalloc((size_t)rows * sizeof(int32_t)),
            *whole = ssf_xmalloc((size_t)rows * sizeof(int32_t));
    double *p = ssf_xmalloc(NV * sizeof(double)), ms[MODES] = {0, 0, 0};
    for (int r = 0; r < rows; r++)
        fill_row(x + (size_t)r * V, V, NV, 31 + (uint32_t)r, 3.0, shape);
    int rc = 0, outside = 0, checked = 0, differ = 0;
    for (int mode = 0; !rc && mode < MODES; mode++) {
        for (int r = 0; r < rows; r++)
            spec[r] = (ssf_sample_spec){
                .temperature = mode ? 0.6 : 0, .top_p = mode ? 0.95 : 1, .seed = 5 + (uint64_t)r};
        rc = ssf_cuda_op_sample(rows, V, NV, x, spec, mode == 2, mode == 1 ? whole : ids, &ms[mode],
                                &err);
        for (int r = 0; !rc && mode && r < rows && r < 16; r++, checked++) {
            int32_t id = mode == 1 ? whole[r] : ids[r];
            reference_dist(x + (size_t)r * V, NV, &spec[r], p);
            outside += id < 0 || id >= NV || p[id] == 0;
        }
    }
    for (int r = 0; !rc && r < rows; r++)
        differ += ids[r] != whole[r];
    failures += rc || outside || differ;
    const char *name = row_shape_name[shape];
    if (rc)
        printf("FAIL sampler timing (%s rows): %s\n", name, err.msg);
    else
        printf("%s sampler at %d %s rows x %d ids: %d of %d draws outside the reference support, "
               "%d rows drawn differently gathered\n"
               "TIME sampler rows=%d logits=%s greedy_ms=%.3f top_p_ms=%.3f "
               "top_p_gathered_ms=%.3f\n",
               outside || differ ? "FAIL" : "PASS", rows, name, V, outside, checked, differ, rows,
               name, ms[0], ms[1], ms[2]);
    free(x), free(spec), free(ids), free(whole), free(p);
}

static void time_sampler(int rows)
{
    time_sampler_on(rows, ROW_FLAT);
    time_sampler_on(rows, ROW_PEAKED);
    time_sampler_on(rows, ROW_TAIL);
}

static void check_sampler(void)
{
    check_greedy(SV);
    check_greedy(SV + 1);
    /* peaked rows (scale unused): at T 0.6 only the 32 raised ids keep any
     * mass; at T 1 some of the bulk does too, and top-k 100 reaches into it */
    static const struct {
        const char *name;
        ssf_sample_spec sp;
        double scale;
        enum row_shape shape;
    } cases[] = {
        {"T=1", {.temperature = 1, .top_p = 1}, 1.0, ROW_FLAT},
        {"T=0.6 top-p 0.95", {.temperature = 0.6, .top_p = 0.95, .seed = 1}, 1.0, ROW_FLAT},
        {"T=1 top-k 20", {.temperature = 1, .top_p = 1, .top_k = 20, .seed = 2}, 2.0, ROW_FLAT},
        {"T=0.8 top-k 50 top-p 0.8",
         {.temperature = 0.8, .top_p = 0.8, .top_k = 50, .seed = 3},
         1.5,
         ROW_FLAT},
        {"T=1 min-p 0.1", {.temperature = 1, .top_p = 1, .min_p = 0.1, .seed = 4}, 1.0, ROW_FLAT},
        {"T=0.7 top-k 100 top-p 0.9 min-p 0.05",
         {.temperature = 0.7, .top_p = 0.9, .top_k = 100, .min_p = 0.05, .seed = 5},
         1.0,
         ROW_FLAT},
        {"peaked T=0.6 top-p 0.95", {.temperature = 0.6, .top_p = 0.95, .seed = 6}, 0, ROW_PEAKED},
        {"peaked T=1 top-k 100",
         {.temperature = 1, .top_p = 1, .top_k = 100, .seed = 7},
         0,
         ROW_PEAKED},
        {"peaked T=0.6 top-k 40 min-p 0.02",
         {.temperature = 0.6, .top_p = 1, .top_k = 40, .min_p = 0.02, .seed = 8},
         0,
         ROW_PEAKED},
        /* scale 10 at T 1: about 1,700 ids with mass, so the gathered path
         * sorts a full 2,048 slots (padded) */
        {"T=1 scale 10", {.temperature = 1, .top_p = 1, .seed = 9}, 10.0, ROW_FLAT},
        {"T=1 top-k 1000 top-p 0.99 scale 10",
         {.temperature = 1, .top_p = 0.99, .top_k = 1000, .seed = 10},
         10.0,
         ROW_FLAT},
        /* tail rows: more ids with mass than the gather holds, the draw
         * decided by the ids above a tier's floor */
        {"tail T=0.6 top-p 0.95", {.temperature = 0.6, .top_p = 0.95, .seed = 11}, 0, ROW_TAIL},
        {"tail T=1 top-k 50", {.temperature = 1, .top_p = 1, .top_k = 50, .seed = 12}, 0, ROW_TAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_distribution(cases[i].name, &cases[i].sp, cases[i].scale, cases[i].shape);
    time_sampler(64); /* the batch of the roofline target */
    time_sampler(256);
}

/* ---- where a decode step's time goes ---------------------------------------------------- */

/* A GEMM at M rows through the engine's own kernel, beside the tuned
 * cuBLAS time (gate|up: with SwiGLU's epilogue, which cuBLAS's time
 * leaves to a kernel of its own), then with its side of a fused RMSNorm
 * (`fused`: the norm in, q|k|v and gate|up; the residual add out, o and
 * down) beside itself unfused: what the fusion costs the GEMM, against
 * the norm kernel it saves (op=small); its ms, or the tuned ms when it has
 * no plan, which it says. */
static double time_own_gemm(const char *name, int M, int N, int K, int swiglu, int fused,
                            double tuned_ms)
{
    ssf_error err;
    double ms = 0, fused_ms = 0, wbytes = 2.0 * N * K;
    ssf_pgemm_shape sh;
    if (ssf_cuda_op_time_pgemm(M, N, K, swiglu, SSF_PGEMM_PLAIN, 20, &ms, &sh, &err) == 0) {
        printf("TIME op=pgemm_%s M=%d N=%d K=%d swiglu=%d bn=%d splits=%d chunk=%d stages=%d "
               "ms=%.4f weight_GBps=%.0f vs_tuned=%.2f\n",
               name, M, N, K, swiglu, sh.bn, sh.splits, sh.chunk, sh.stages, ms, wbytes / ms / 1e6,
               tuned_ms / ms);
        if (ssf_cuda_op_time_pgemm(M, N, K, swiglu, fused, 20, &fused_ms, &sh, &err) == 0)
            printf("TIME op=pgemm_%s_fused M=%d %s ms=%.4f vs_unfused=%.3f\n", name, M,
                   fused == SSF_PGEMM_NORM_IN ? "norm_in" : "residual_out", fused_ms,
                   fused_ms / ms);
        else
            printf("FAIL op=pgemm_%s_fused M=%d: %s\n", name, M, err.msg), failures++;
        return ms;
    }
    printf("TIME op=pgemm_%s M=%d N=%d K=%d: %s\n", name, M, N, K, err.msg);
    return tuned_ms;
}

#define SWEEP_MAX 64

/* The own GEMM at M rows in each shape around the plan's pick (one wave,
 * each tile width, split count and ring depth: ssf_pgemm_shapes), each
 * against the pick and cuBLAS's tuned time: what tuning ssf_pgemm_plan
 * would go by.  One line a shape; the summary keeps the fastest. */
static void sweep_own_gemm(const char *name, int M, int N, int K, int swiglu, double tuned_ms)
{
    ssf_pgemm_shape sh[SWEEP_MAX];
    double ms[SWEEP_MAX];
    int n = 0, pick = -1;
    ssf_error err;
    if (ssf_cuda_op_time_pgemm_shapes(M, N, K, swiglu, 20, sh, ms, SWEEP_MAX, &n, &pick, &err)) {
        printf("TIME op=pgemm_sweep gemm=%s M=%d: %s\n", name, M, err.msg);
        return;
    }
    for (int i = 0; i < n; i++)
        printf("TIME op=pgemm_sweep gemm=%s M=%d N=%d K=%d bn=%d splits=%d stages=%d ms=%.4f "
               "weight_GBps=%.0f plan=%d vs_plan=%.3f vs_tuned=%.3f\n",
               name, M, N, K, sh[i].bn, sh[i].splits, sh[i].stages, ms[i],
               2.0 * N * K / ms[i] / 1e6, i == pick, pick >= 0 ? ms[i] / ms[pick] : 0.0,
               ms[i] / tuned_ms);
}

/* Each GEMM of a model's shape at 1-256 rows (cublasGemmEx, then the
 * device's tuned choice) and the paged attention at a few batches and
 * contexts, on device data: what a step should cost if those were all it
 * did. */
static void time_ops(const ssf_model_config *c)
{
    ssf_error err;
    int H = c->hidden_size, I = c->intermediate_size, hd = c->head_dim, L = c->n_layers;
    int q = c->n_heads * hd, kv = c->n_kv_heads * hd;
    const struct {
        const char *name;
        int N, K, per_layer;
    } g[] = {{"qkv", q + 2 * kv, H, 1},
             {"o", H, q, 1},
             {"gate_up", 2 * I, H, 1},
             {"down", H, I, 1},
             {"lm_head", c->vocab_size, H, 0}};
    static const int Ms[] = {1, 8, 64, 256};
    int ok = 1;
    for (size_t mi = 0; ok && mi < 4; mi++) {
        double step = 0, step_tuned = 0, step_searched = 0, step_own = 0;
        int own = Ms[mi] <= SSF_PGEMM_MAX_M;
        for (size_t i = 0; ok && i < 5; i++) {
            double wbytes = 2.0 * g[i].N * g[i].K;
            ssf_gemm_times t = {0, 0, 0, "", ""};
            ok = ssf_cuda_op_time_gemm(Ms[mi], g[i].N, g[i].K, 20, &t, &err) == 0;
            double tuned = t.tuned_ms;
            step += t.default_ms * (g[i].per_layer ? L : 1);
            step_tuned += tuned * (g[i].per_layer ? L : 1);
            step_searched += t.searched_ms * (g[i].per_layer ? L : 1);
            if (ok)
                printf("TIME op=gemm_%s M=%d N=%d K=%d ms=%.4f weight_GBps=%.0f tuned_ms=%.4f "
                       "tuned_GBps=%.0f speedup=%.2f tuned=%s searched_ms=%.4f searched_GBps=%.0f "
                       "vs_tuned=%.3f searched=%s\n",
                       g[i].name, Ms[mi], g[i].N, g[i].K, t.default_ms, wbytes / t.default_ms / 1e6,
                       tuned, wbytes / tuned / 1e6, t.default_ms / tuned, t.tuned, t.searched_ms,
                       wbytes / t.searched_ms / 1e6, t.searched_ms / tuned, t.searched);
            if (ok && own) /* the engine keeps lm_head on cuBLAS */
                step_own +=
                    (g[i].per_layer ? L : 1) *
                    (g[i].per_layer
                         ? time_own_gemm(g[i].name, Ms[mi], g[i].N, g[i].K, i == 2,
                                         i % 2 ? SSF_PGEMM_RESIDUAL_OUT : SSF_PGEMM_NORM_IN, tuned)
                         : tuned);
            if (ok && g[i].per_layer && Ms[mi] == SSF_PGEMM_MAX_M)
                sweep_own_gemm(g[i].name, Ms[mi], g[i].N, g[i].K, i == 2, tuned);
        }
        if (ok)
            printf("TIME op=gemm_step M=%d ms=%.3f tuned_ms=%.3f speedup=%.2f searched_ms=%.3f "
                   "searched_vs_tuned=%.3f\n",
                   Ms[mi], step, step_tuned, step / step_tuned, step_searched,
                   step_searched / step_tuned);
        if (ok && own)
            printf("TIME op=pgemm_step M=%d ms=%.3f vs_tuned=%.2f\n", Ms[mi], step_own,
                   step_tuned / step_own);
    }
    /* the small kernels of a step: 2 L + 1 RMSNorms (with their residual
     * adds), L RoPE + KV stores, L SiLU . muls, what fusing them into the
     * GEMMs and the attention would save at most; and with the norms folded
     * (fold_norms), the final RMSNorm and L of each of the other two, each
     * summing its rows' squares */
    static const int small_rows[] = {64, 256};
    for (int ri = 0; ok && ri < 2; ri++) {
        double ms[5];
        ok = ssf_cuda_op_time_small(small_rows[ri], H, I, c->n_heads, c->n_kv_heads, hd, 20, ms,
                                    &err) == 0;
        double step = (2 * L + 1) * ms[0] + L * (ms[1] + ms[2]);
        double folded = ms[0] + L * (ms[3] + ms[4]);
        if (ok)
            printf("TIME op=small rows=%d rmsnorm_ms=%.4f rope_ms=%.4f silu_ms=%.4f "
                   "step_ms=%.3f launches=%d rope_folded_ms=%.4f silu_folded_ms=%.4f "
                   "folded_step_ms=%.3f folded_launches=%d\n",
                   small_rows[ri], ms[0], ms[1], ms[2], step, 4 * L + 1, ms[3], ms[4], folded,
                   2 * L + 1);
    }
    /* the plan's split beside 64-position chunks and no split at all (the
     * whole context one chunk: no merge kernel), at contexts up to 2,048
     * and the long decode benches' mean (1,224), and at 64 and 256 rows
     * of those two contexts 2-8 equal splits: what tuning the plan's wave
     * model would go by */
    static const int rows[] = {1, 64, 256}, ctxs[] = {64, 456, 1224, 2048};
    static const struct {
        const char *name;
        int chunk; /* 0: the plan's; -s: s equal splits ("whole": one) */
    } chunks[] = {{"plan", 0}, {"64", 64}, {"whole", -1}, {"s2", -2},
                  {"s3", -3},  {"s4", -4}, {"s6", -6},    {"s8", -8}};
    int n_chunks = (int)(sizeof chunks / sizeof chunks[0]);
    for (int ri = 0; ok && ri < 3; ri++)
        for (int ci = 0; ok && ci < 4; ci++)
            for (int k = 0; ok && k < n_chunks; k++) {
                double ms = 0;
                int splits = 0, chunk = chunks[k].chunk;
                /* equal splits where the plan splits: 64 rows and more, long contexts */
                if (chunk < -1 && (rows[ri] < 64 || ctxs[ci] < 1224)) continue;
                /* ceil(ctx / s) positions a split, in whole blocks, as the plan's
                 * chunks are (a chunk off a 16-position boundary would take the
                 * kernel's slower table walk, which no plan does) */
                if (chunk < 0) {
                    int s = -chunk, per = (ctxs[ci] + s - 1) / s;
                    chunk = (per + BLOCK_SIZE - 1) / BLOCK_SIZE * BLOCK_SIZE;
                }
                ok = ssf_cuda_op_time_attention(rows[ri], c->n_heads, c->n_kv_heads, hd, ctxs[ci],
                                                L, BLOCK_SIZE, chunk, 20, &ms, &splits, &err) == 0;
                double bytes = 2.0 * rows[ri] * ctxs[ci] * kv * 2;
                if (ok)
                    printf("TIME op=attention rows=%d ctx=%d chunk=%s splits=%d ms=%.4f "
                           "kv_GBps=%.0f step_ms=%.3f\n",
                           rows[ri], ctxs[ci], chunks[k].name, splits, ms, bytes / ms / 1e6,
                           ms * L);
            }
    printf("%s ops hidden %d: GEMM and attention timings%s%s\n", ok ? "PASS" : "FAIL", H,
           ok ? "" : ": ", ok ? "" : err.msg);
    failures += !ok;
}

/* ---- the whole engine on the GPU ----------------------------------------------------- */

/* The ids a sample may draw: all of the model's but its last, the stop id,
 * which no draw can then take, so that every sample runs to its budget
 * (byte-tokens.h reads N_VALID). */
static int32_t engine_valid, engine_eos;
#define N_VALID engine_valid
#include "../tests/byte-tokens.h"

#define ENGINE_PROMPT 200
#define ENGINE_QUESTIONS 8
#define ENGINE_SAMPLES 8

typedef struct engine_out {
    int32_t *ids;
    int n, failed;
} engine_out;

typedef struct engine_sink {
    const ssf_gen_request *reqs;
    engine_out *out;
    int failures; /* the first one is printed */
} engine_sink;

static int engine_done(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    engine_sink *k = ud;
    engine_out *o = &k->out[req - k->reqs];
    o->failed = res->error != NULL;
    if (o->failed && k->failures++ == 0) printf("engine: a sample failed: %s\n", res->error);
    o->n = o->failed ? 0 : (int)res->n_token_ids;
    o->ids = ssf_xmalloc(((size_t)o->n + 1) * sizeof *o->ids);
    if (o->n) memcpy(o->ids, res->token_ids, (size_t)o->n * sizeof *o->ids);
    return 0;
}

typedef struct engine_pass {
    int defer, n_blocks; /* the device's steps deferred; the engine's pool (0: the device's) */
    engine_out out[ENGINE_QUESTIONS * ENGINE_SAMPLES];
    ssf_engine_stats st;
    double wall_s;
} engine_pass;

/* The requests through the scheduler on d as p asks: the same device each
 * pass, its can_defer and n_blocks set for the pass (the engine reads both;
 * a smaller pool uses a subset of the device's blocks). */
static int run_pass(ssf_device *d, const ssf_gen_request *reqs, int n, engine_pass *p,
                    ssf_error *err)
{
    ssf_device dev = *d;
    d->can_defer = p->defer;
    if (p->n_blocks) d->n_blocks = p->n_blocks;
    ssf_engine_model m = byte_token_model(d, engine_valid + 1, &engine_eos);
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    ssf_engine *e = ssf_engine_new(&m, &o);
    engine_sink k = {reqs, p->out, 0};
    double t0 = ssf_monotonic_seconds();
    int rc = ssf_engine_generate(e, reqs, (size_t)n, engine_done, &k, err);
    p->wall_s = ssf_monotonic_seconds() - t0;
    p->st = *ssf_engine_stats_of(e);
    ssf_engine_free(e);
    d->can_defer = dev.can_defer, d->n_blocks = dev.n_blocks;
    return rc;
}

static void free_pass(engine_pass *p, int n)
{
    for (int i = 0; i < n; i++)
        free(p->out[i].ids);
}

/* Samples of pass b whose ids equal pass a's; the samples that failed or
 * stopped short of max_new in either into *bad. */
static int same_samples(const engine_pass *a, const engine_pass *b, int n, int max_new, int *bad)
{
    int same = 0;
    *bad = 0;
    for (int i = 0; i < n; i++) {
        const engine_out *x = &a->out[i], *y = &b->out[i];
        *bad += x->failed || y->failed || x->n != max_new || y->n != max_new;
        same += x->n == y->n && memcmp(x->ids, y->ids, (size_t)x->n * sizeof *x->ids) == 0;
    }
    return same;
}

static void print_pass(const char *model, const engine_pass *p, int n, int max_new)
{
    const ssf_engine_stats *st = &p->st;
    printf("TIME engine-run model=%s samples=%d prompt=%d max_new=%d overlap=%d pool=%s "
           "wall_s=%.2f steps=%lld decode_tok_s=%.0f preemptions=%lld discarded_rows=%lld\n",
           model, n, ENGINE_PROMPT, max_new, p->defer, p->n_blocks ? "tight" : "ample", p->wall_s,
           (long long)st->steps, st->decode_s > 0 ? (double)st->decode_tokens / st->decode_s : 0.0,
           (long long)st->preemptions, (long long)st->discarded_rows);
}

/* The requests: ENGINE_QUESTIONS prompts of ENGINE_PROMPT letters, each
 * sampled ENGINE_SAMPLES times at T 0.6 and top-p 0.95 to max_new tokens. */
static void engine_requests(ssf_gen_request *reqs, char (*prompts)[ENGINE_PROMPT + 1], int max_new)
{
    for (int q = 0; q < ENGINE_QUESTIONS; q++) {
        for (int k = 0; k < ENGINE_PROMPT; k++)
            prompts[q][k] = (char)('A' + (q * 7 + k) % 26);
        prompts[q][ENGINE_PROMPT] = '\0';
    }
    for (int i = 0; i < ENGINE_QUESTIONS * ENGINE_SAMPLES; i++)
        reqs[i] = (ssf_gen_request){
            .task = "gpu_check",
            .doc = i / ENGINE_SAMPLES,
            .index = i % ENGINE_SAMPLES,
            .prompt = prompts[i / ENGINE_SAMPLES],
            .seed = 1000 + (uint64_t)i,
            .sampling = {.temperature = 0.6, .top_p = 0.95, .max_new_tokens = max_new}};
}

#define ENGINE_WARM_UP_TOKENS 16

/* One pass of each kind: with a pool that holds every sample, the
 * deferred pass must draw each sample's ids as the synchronous one does
 * (the same device, the same steps); with a pool that forces preemption,
 * every sample must still run to its budget (the passes' schedules may
 * part: a deferring scheduler learns of a sample's end a step later).
 * First a short pass of the same shape, untimed: the device tunes a graph
 * bucket's GEMMs at its first decode step, and later steps of that many
 * rows, graph or not, take the tuned choice, so a first pass would run
 * other GEMMs than the second (and carry the tuning's time). */
static int engine_passes(ssf_device *d, const char *model, const ssf_gen_request *reqs,
                         const ssf_gen_request *warm_reqs, int n, int max_new, engine_pass *p,
                         ssf_error *err)
{
    if (run_pass(d, warm_reqs, n, &p[0], err)) return -1;
    /* half the blocks the samples hold at the end, unshared */
    int tight = n * ((ENGINE_PROMPT + max_new) / d->block_size + 1) / 2;
    const int defer[4] = {0, 1, 0, 1}, blocks[4] = {0, 0, tight, tight};
    for (int i = 1; i <= 4; i++) {
        p[i].defer = defer[i - 1], p[i].n_blocks = blocks[i - 1];
        if (run_pass(d, reqs, n, &p[i], err)) return -1;
        print_pass(model, &p[i], n, max_new);
    }
    p++; /* the warm-up's out of the way */
    int bad, same = same_samples(&p[0], &p[1], n, max_new, &bad), bad_tight;
    same_samples(&p[2], &p[3], n, max_new, &bad_tight);
    int ok = same == n && bad == 0 && bad_tight == 0 && p[3].st.preemptions > 0;
    printf("%s engine %s: deferred steps drew %d of %d samples as the synchronous ones, %d and "
           "%d samples short or failed (ample, tight pool), %lld preemptions deferred; wall "
           "deferred/synchronous %.3f\n",
           ok ? "PASS" : "FAIL", model, same, n, bad, bad_tight, (long long)p[3].st.preemptions,
           p[1].wall_s / p[0].wall_s);
    failures += !ok;
    return 0;
}

/* The scheduler over the CUDA device of DIR's model, opened with
 * overlap_steps, as `ssfteval run` drives it (engine_passes). */
static void check_engine(const char *dir, int max_new)
{
    int n = ENGINE_QUESTIONS * ENGINE_SAMPLES;
    ssf_error err;
    ssf_model *m = NULL;
    ssf_device *d = NULL;
    static engine_pass passes[5]; /* the warm-up's, then engine_passes's four */
    memset(passes, 0, sizeof passes);
    char(*prompts)[ENGINE_PROMPT + 1] = ssf_xmalloc(ENGINE_QUESTIONS * sizeof *prompts);
    ssf_gen_request *reqs = ssf_xcalloc((size_t)n, sizeof *reqs);
    ssf_gen_request *warm = ssf_xcalloc((size_t)n, sizeof *warm);
    engine_requests(reqs, prompts, max_new);
    engine_requests(warm, prompts, ENGINE_WARM_UP_TOKENS);
    const char *slash = strrchr(dir, '/');
    const char *model = slash && slash[1] ? slash + 1 : dir;
    int ok = ssf_model_open(dir, &m, &err) == 0;
    if (ok) {
        engine_valid = ssf_model_config_of(m)->vocab_size - 1;
        engine_eos = engine_valid;
        ssf_device_options o = {.n_slots = n,
                                .max_context = ENGINE_PROMPT + max_new + 8,
                                .gpu_memory_utilization = 0.9,
                                .overlap_steps = 1};
        d = ssf_device_cuda_open(m, &o, &err);
        ok = d != NULL;
    }
    ok = ok && engine_passes(d, model, reqs, warm, n, max_new, passes, &err) == 0;
    if (!ok) {
        printf("FAIL engine %s: %s\n", model, err.msg);
        failures++;
    }
    for (int i = 0; i < 5; i++)
        free_pass(&passes[i], n);
    if (d) d->close(d);
    ssf_model_close(m);
    free(prompts), free(reqs), free(warm);
}

int main(int argc, char **argv)
{
    /* a line at a time through gpu-check.sh's pipe: a step killed at its
     * time limit keeps what it printed */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "fixtures") == 0)
        for (int i = 2; i < argc; i++)
            check_fixture(argv[i]);
    else if (argc == 4 && strcmp(argv[1], "hf") == 0)
        check_hf(argv[2], argv[3]);
    else if (argc == 3 && strcmp(argv[1], "cuda") == 0)
        check_cuda_alone(argv[2]);
    else if (argc == 9 && strcmp(argv[1], "ops") == 0) {
        ssf_model_config c = {.hidden_size = (int)bench_long_arg("ops HIDDEN", argv[2], 1, 1 << 16),
                              .intermediate_size =
                                  (int)bench_long_arg("ops INTER", argv[3], 1, 1 << 18),
                              .n_heads = (int)bench_long_arg("ops HEADS", argv[4], 1, 256),
                              .n_kv_heads = (int)bench_long_arg("ops KV_HEADS", argv[5], 1, 256),
                              .head_dim = (int)bench_long_arg("ops HEAD_DIM", argv[6], 1, 512),
                              .n_layers = (int)bench_long_arg("ops LAYERS", argv[7], 1, 1024),
                              .vocab_size = (int)bench_long_arg("ops VOCAB", argv[8], 1, 1 << 20)};
        time_ops(&c);
    } else if (argc == 2 && strcmp(argv[1], "sampler") == 0)
        check_sampler();
    else if ((argc == 6 || argc == 7) && strcmp(argv[1], "bench") == 0)
        bench(argv[2], argv[3], (int)bench_long_arg("bench PROMPT", argv[4], 1, 1 << 20),
              (int)bench_long_arg("bench STEPS", argv[5], 1, 1 << 20), argc == 7 ? argv[6] : "");
    else if (argc == 4 && strcmp(argv[1], "engine") == 0)
        check_engine(argv[2], (int)bench_long_arg("engine MAX_NEW", argv[3], 1, 1 << 20));
    else {
        fprintf(
            stderr,
            "usage: gpu_check fixtures DIR... | hf DIR DUMP | cuda DIR | sampler | "
            "ops HIDDEN INTER HEADS KV_HEADS HEAD_DIM LAYERS VOCAB | "
            "bench DIR B[,B...] PROMPT STEPS "
            "[sampled,nograph,fp8,fp8noflash,noflash,nopdl,rope,pgemm,ropepgemm,tuned,"
            "ropetuned,pgemmfused,tunedfused,cublas,overlap,fold,fp8fold,nofold,search,nosearch] | "
            "engine DIR MAX_NEW\n");
        return 2;
    }
    return failures ? 1 : 0;
}
