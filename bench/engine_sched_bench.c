/*
 * engine_sched_bench.c - the engine's own host time per decode step: the
 * scheduler, block tables, forks, text and stop checks, over a device that
 * costs nothing (it writes the sampled ids and returns).
 *
 * A GPU decode step of a 1.5B model at batch 64 takes 3.3 ms on an H100
 * (bench/README-gpu.md), and the device waits while the host prepares the
 * next step, so the engine's share of that time is lost throughput.  This
 * prints it for the batch shapes of bench/gpu-check.sh: Q questions x S
 * samples, 200-token prompts, STEPS tokens each.
 *
 *   engine_sched_bench [STEPS [GPU_STEP_MS_64 [GPU_STEP_MS_256]]]
 *
 * The two step times (default 3.31 and 6.51 ms, the H100's for the 1.5B
 * model at batch 64 and 256 over 2,048 steps) only scale the printed share;
 * the host time itself is measured here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-args.h"
#include "engine.h"
#include "ssfteval/util.h"

/* Qwen2.5's logit rows: each sample's first token is drawn on the host from
 * its prompt's row, and the filters of a draw cost what the row's width
 * makes them cost.  null_forward's rows are all equal (a random-weight
 * model's are nearly so), the costliest to draw from: top-p keeps them
 * all. */
#define VOCAB 151936
#define N_VALID 151643
#define PROMPT 200
#define BLOCK 16

static const int32_t eos_ids[1] = {299};

#include "../tests/byte-tokens.h"

/* ---- a device that only draws tokens ------------------------------------------ */

/* A deferred step's ids, written at collect (at most two queued). */
static struct {
    int32_t *dest[2];
    int32_t ids[2][512];
    int n[2], queued;
} held;

/* Ids cycle through the letters: never eos, never a stop string. */
static void draw_letters(const ssf_fwd_batch *b, int32_t *ids)
{
    for (int i = 0; i < b->n_sample; i++)
        ids[i] = 'a' + (int32_t)((b->pos[b->sample_rows[i]] + i) % 26);
}

static int null_forward(ssf_device *d, const ssf_fwd_batch *b, float *logits, ssf_error *err)
{
    (void)d;
    for (int i = 0; i < b->n_out; i++)
        memset(logits + (size_t)i * VOCAB, 0, VOCAB * sizeof *logits);
    if (!b->defer) {
        draw_letters(b, b->sampled);
        return 0;
    }
    if (held.queued == 2 || b->n_sample > 512) return ssf_fail(err, "null device: queue full");
    int q = held.queued++;
    held.dest[q] = b->sampled, held.n[q] = b->n_sample;
    draw_letters(b, held.ids[q]);
    return 0;
}

static int null_collect(ssf_device *d, ssf_error *err)
{
    (void)d;
    if (held.queued == 0) return ssf_fail(err, "null device: nothing queued");
    memcpy(held.dest[0], held.ids[0], (size_t)held.n[0] * sizeof(int32_t));
    held.dest[0] = held.dest[1], held.n[0] = held.n[1];
    memcpy(held.ids[0], held.ids[1], sizeof held.ids[0]);
    held.queued--;
    return 0;
}

static int null_copy(ssf_device *d, const ssf_block_copy *c, int n, ssf_error *err)
{
    (void)d, (void)c, (void)n, (void)err;
    return 0;
}

static void null_close(ssf_device *d)
{
    (void)d;
}

/* ---- one shape ------------------------------------------------------------------- */

static int count_done(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    (void)req;
    int *failed = ud;
    *failed += res->error != NULL;
    return 0;
}

/* Q questions of S samples each for `steps` tokens, the device's steps
 * deferred or not; prints the host time per decode step and its share of a
 * device step of gpu_ms. */
static int run_shape(int q, int s, int steps, int defer, double gpu_ms)
{
    int n = q * s, blocks_per_seq = (PROMPT + steps + BLOCK) / BLOCK + 1;
    ssf_device dev = {.name = "null",
                      .n_slots = n,
                      .max_context = PROMPT + steps + 8,
                      .max_rows = 512 + n,
                      .block_size = BLOCK,
                      .n_blocks = (n + 1) * blocks_per_seq,
                      .can_sample = 1,
                      .can_defer = defer,
                      .forward = null_forward,
                      .collect = null_collect,
                      .copy_blocks = null_copy,
                      .close = null_close};
    ssf_engine_model m = byte_token_model(&dev, VOCAB, eos_ids);
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    ssf_engine *e = ssf_engine_new(&m, &o);
    char(*prompts)[PROMPT + 1] = ssf_xmalloc((size_t)q * sizeof *prompts);
    ssf_gen_request *reqs = ssf_xcalloc((size_t)n, sizeof *reqs);
    for (int i = 0; i < q; i++) {
        for (int k = 0; k < PROMPT; k++)
            prompts[i][k] = (char)('A' + (i * 7 + k) % 26);
        prompts[i][PROMPT] = '\0';
    }
    for (int i = 0; i < n; i++) {
        reqs[i].doc = i / s, reqs[i].index = i % s, reqs[i].seed = 1000 + (uint64_t)i;
        reqs[i].prompt = prompts[i / s];
        reqs[i].sampling.temperature = 0.6, reqs[i].sampling.top_p = 0.95;
        reqs[i].sampling.max_new_tokens = steps;
    }
    ssf_error err = {0};
    int failed = 0;
    double t0 = ssf_monotonic_seconds();
    int rc = ssf_engine_generate(e, reqs, (size_t)n, count_done, &failed, &err);
    double wall = ssf_monotonic_seconds() - t0;
    const ssf_engine_stats *st = ssf_engine_stats_of(e);
    if (rc || failed)
        fprintf(stderr, "engine_sched_bench: %d of %d failed: %s\n", failed, n,
                rc ? err.msg : "(see results)");
    else {
        double us = wall * 1e6 / (double)st->steps;
        printf("%-9d %-8d %-7d %-8s %7lld %10lld %12.1f %14.1f%%\n", q, s, n, defer ? "yes" : "no",
               (long long)st->steps, (long long)st->decode_tokens, us, 100.0 * us / (gpu_ms * 1e3));
    }
    ssf_engine_free(e);
    free(prompts), free(reqs);
    return rc || failed ? -1 : 0;
}

int main(int argc, char **argv)
{
    /* usage: engine_sched_bench [STEPS [GPU_STEP_MS_64 [GPU_STEP_MS_256]]] */
    int steps =
        argc > 1 ? (int)bench_long_arg("engine_sched_bench STEPS", argv[1], 1, 1 << 20) : 2048;
    double ms64 =
        argc > 2 ? bench_double_arg("engine_sched_bench GPU_STEP_MS_64", argv[2], 1e-3, 1e4) : 3.31;
    double ms256 = argc > 3
                       ? bench_double_arg("engine_sched_bench GPU_STEP_MS_256", argv[3], 1e-3, 1e4)
                       : 6.51;
    printf("engine host time per step, %d-token prompts, %d tokens a sample, a device that costs "
           "nothing\n",
           PROMPT, steps);
    printf("questions samples batch   deferred   steps decode_tok us_per_step share_of_gpu_step\n");
    int rc = 0;
    for (int defer = 0; defer <= 1 && !rc; defer++)
        rc = run_shape(2, 32, steps, defer, ms64) || run_shape(64, 1, steps, defer, ms64) ||
             run_shape(8, 32, steps, defer, ms256) || run_shape(256, 1, steps, defer, ms256);
    return rc ? 1 : 0;
}
