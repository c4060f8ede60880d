/*
 * test_engine.c - the engine's scheduler over a fake device whose logits
 * are a pure function of the tokens a slot holds.  That makes every sample's
 * tokens computable by a plain serial loop, so the tests can say exactly
 * what each sample must produce whatever the number of slots, the prefill
 * chunk or the order of requests; and the fake device checks the contract
 * of device.h (contiguous positions, forks copying the prompt).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "sampler.h"

#define VOCAB 300 /* logit rows */
#define N_VALID 260
#define EOS 256
#define MAX_CTX 96

#include "byte-tokens.h"

/* ---- the fake device ------------------------------------------------------ */

#define MAX_BLOCK_CELLS 8192
#define MAX_SAMPLED 64 /* sampled rows a step */

/* A deferred step's ids, held until collected. */
typedef struct held {
    int32_t ids[MAX_SAMPLED];
    int32_t *dest;
    int n;
} held;

typedef struct fake {
    ssf_device d;
    int32_t mem[MAX_BLOCK_CELLS]; /* n_blocks x block_size token cells */
    int fail_at_step;             /* forward fails at this call (0: never) */
    int fail_at_collect;          /* collect fails at this call (0: never) */
    int calls, collects;
    /* can_defer: the previous call's draws (what feed reads), the deferred
     * steps not yet collected (oldest first) and the most ever queued */
    int32_t last[MAX_SAMPLED];
    int n_last;
    held queue[2];
    int queued, most_queued;
    int most_rows;  /* the most rows a step */
    int nan_hashes; /* histories that open with '#' give NaN logits from position 12 on */
} fake;

/* Logits of a history: FNV-1a over the tokens seeds a generator.  EOS gets
 * a modest logit so that some samples stop early. */
static void history_logits(const int32_t *toks, int n, float *out)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)toks[i];
        h *= 1099511628211ULL;
    }
    for (int v = 0; v < VOCAB; v++) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        out[v] = (float)((h >> 40) % 1000) / 250.0f; /* 0 .. 4 */
    }
    out[EOS] = 2.5f;
    for (int v = N_VALID; v < VOCAB; v++)
        out[v] = 9.0f; /* padding rows must be masked by the sampler */
}

/* The cell of position pos through a table. */
static int32_t *cell(fake *f, const int32_t *table, int pos)
{
    int bs = f->d.block_size;
    int32_t block = table[pos / bs];
    if (block < 0 || block >= f->d.n_blocks) return NULL;
    return &f->mem[block * bs + pos % bs];
}

/* The logits of row r: its history read back through its table. */
static void row_logits(fake *f, const ssf_fwd_batch *b, int r, float *out)
{
    int32_t hist[MAX_CTX];
    int n = b->pos[r] + 1;
    for (int p = 0; p < n; p++) {
        const int32_t *c = cell(f, b->tables[b->seq[r]], p);
        if (!c) fail_msg("row %d: position %d has no block in its table", r, p);
        hist[p] = *c;
    }
    history_logits(hist, n, out);
    if (f->nan_hashes && n > 12 && hist[0] == '#')
        for (int v = 0; v < VOCAB; v++)
            out[v] = NAN;
}

/* Row r's token: token[r], or what the previous call drew for the sample
 * row feed[r] names; -1 when neither is a token. */
static int32_t row_token(const fake *f, const ssf_fwd_batch *b, int r)
{
    if (!b->feed || b->feed[r] < 0) return b->token[r];
    return b->feed[r] < f->n_last ? f->last[b->feed[r]] : -1;
}

/* Writes every row's token through its table. */
static int write_rows(fake *f, const ssf_fwd_batch *b, ssf_error *err)
{
    for (int r = 0; r < b->n_rows; r++) {
        if (b->seq[r] < 0 || b->seq[r] >= b->n_seqs) return ssf_fail(err, "bad sequence");
        if (b->pos[r] >= f->d.max_context) return ssf_fail(err, "past the context");
        if (r > 0 && b->seq[r] == b->seq[r - 1] && b->pos[r] != b->pos[r - 1] + 1)
            return ssf_fail(err, "rows of a sequence out of order");
        int32_t *c = cell(f, b->tables[b->seq[r]], b->pos[r]);
        if (!c) return ssf_fail(err, "bad block");
        *c = row_token(f, b, r);
        if (*c < 0)
            return ssf_fail(err, "row %d has no token (feed %d)", r,
                            b->feed ? (int)b->feed[r] : -1);
    }
    return 0;
}

/* The sampled rows' draws into ids. */
static int draw_rows(fake *f, const ssf_fwd_batch *b, int32_t *ids, ssf_error *err)
{
    if (b->n_sample > 0 && !f->d.can_sample) return ssf_fail(err, "sample rows to a logits device");
    if (b->n_sample > MAX_SAMPLED) return ssf_fail(err, "%d sampled rows", b->n_sample);
    for (int i = 0; i < b->n_sample; i++) {
        for (int j = 0; j < b->n_out; j++)
            if (b->out_rows[j] == b->sample_rows[i]) return ssf_fail(err, "row asked twice");
        float row[VOCAB];
        row_logits(f, b, b->sample_rows[i], row);
        const ssf_sample_spec *sp = &b->sample[i];
        ssf_sampler_params p = {sp->temperature, sp->top_p, sp->top_k, sp->min_p};
        ssf_sampler_scratch scratch = {0};
        ids[i] = ssf_sample(row, b->n_valid, &p, sp->seed, sp->step, &scratch);
        ssf_sampler_scratch_free(&scratch);
    }
    return 0;
}

/* A deferred step's ids wait in the queue; the caller's array meanwhile
 * holds a value no draw gives, so that a read before collect shows. */
static int hold(fake *f, const ssf_fwd_batch *b, const int32_t *ids, ssf_error *err)
{
    if (f->queued == 2) return ssf_fail(err, "a third deferred step queued");
    held *h = &f->queue[f->queued++];
    memcpy(h->ids, ids, (size_t)b->n_sample * sizeof *ids);
    h->dest = b->sampled;
    h->n = b->n_sample;
    for (int i = 0; i < b->n_sample; i++)
        b->sampled[i] = -7;
    if (f->queued > f->most_queued) f->most_queued = f->queued;
    return 0;
}

/* Writes every row's token through its table, then gives each asked row
 * the logits of the history read back through the same table: a wrong
 * table, a missed copy or a block shared while written shows up as a
 * different history, hence a different sample. */
static int fake_forward(ssf_device *d, const ssf_fwd_batch *b, float *logits, ssf_error *err)
{
    fake *f = (fake *)d;
    if (f->fail_at_step && ++f->calls == f->fail_at_step)
        return ssf_fail(err, "fake device: injected failure");
    /* as the CUDA device: no more sequences than slots */
    if (b->n_rows > d->max_rows || b->n_seqs > d->n_slots)
        return ssf_fail(err, "batch of %d rows, %d sequences", b->n_rows, b->n_seqs);
    if (b->n_rows > f->most_rows) f->most_rows = b->n_rows;
    if ((b->feed || b->defer) && !d->can_defer) return ssf_fail(err, "feed or defer, no can_defer");
    if (b->defer && b->n_rows == 0) return ssf_fail(err, "a deferred step of no rows");
    if (write_rows(f, b, err)) return -1;
    for (int i = 0; i < b->n_out; i++)
        row_logits(f, b, b->out_rows[i], logits + (size_t)i * VOCAB);
    int32_t ids[MAX_SAMPLED];
    if (draw_rows(f, b, ids, err)) return -1;
    memcpy(f->last, ids, (size_t)b->n_sample * sizeof *ids);
    f->n_last = b->n_sample;
    if (b->defer) return hold(f, b, ids, err);
    memcpy(b->sampled, ids, (size_t)b->n_sample * sizeof *ids);
    return 0;
}

static int fake_collect(ssf_device *d, ssf_error *err)
{
    fake *f = (fake *)d;
    if (f->queued == 0) return ssf_fail(err, "collect with no deferred step");
    held h = f->queue[0];
    f->queue[0] = f->queue[1];
    f->queued--;
    /* the faulted step counts as collected */
    if (f->fail_at_collect && ++f->collects == f->fail_at_collect)
        return ssf_fail(err, "fake device: injected fault in a deferred step");
    memcpy(h.dest, h.ids, (size_t)h.n * sizeof *h.ids);
    return 0;
}

static int fake_copy(ssf_device *d, const ssf_block_copy *c, int n, ssf_error *err)
{
    fake *f = (fake *)d;
    int bs = d->block_size;
    for (int i = 0; i < n; i++) {
        if (c[i].src == c[i].dst) return ssf_fail(err, "copy of a block onto itself");
        memcpy(&f->mem[(size_t)c[i].dst * bs], &f->mem[(size_t)c[i].src * bs],
               (size_t)bs * sizeof(int32_t));
    }
    return 0;
}

static void fake_close(ssf_device *d)
{
    (void)d;
}

/* A device of `slots` sequences a step over `blocks` blocks of `bs`
 * positions (blocks 0: room for every slot at full context). */
static void fake_init(fake *f, int slots, int blocks, int bs)
{
    memset(f, 0, sizeof *f);
    if (blocks == 0) blocks = (slots + 1) * ((MAX_CTX + bs - 1) / bs);
    assert_true(blocks * bs <= MAX_BLOCK_CELLS);
    for (int i = 0; i < MAX_BLOCK_CELLS; i++)
        f->mem[i] = -1;
    f->d = (ssf_device){.name = "fake",
                        .n_slots = slots,
                        .max_context = MAX_CTX,
                        .max_rows = 512,
                        .block_size = bs,
                        .n_blocks = blocks,
                        .forward = fake_forward,
                        .collect = fake_collect,
                        .copy_blocks = fake_copy,
                        .close = fake_close};
}

static const int32_t eos_ids[1] = {EOS};
/* A second stop id, which a test may give the model and the reference. */
static int32_t second_eos = -1;

static ssf_engine_model fake_model(fake *f)
{
    static int32_t two_eos[2] = {EOS, 0};
    ssf_engine_model m = byte_token_model(&f->d, VOCAB, eos_ids);
    if (second_eos >= 0) {
        two_eos[1] = second_eos;
        m.eos = two_eos;
        m.n_eos = 2;
    }
    return m;
}

/* ---- the serial reference ------------------------------------------------- */

typedef struct expect {
    int32_t ids[MAX_CTX];
    int n;
    const char *reason;
} expect;

static void reference(const ssf_gen_request *r, expect *x)
{
    int32_t hist[MAX_CTX] = {0};
    int n = 0;
    for (const char *p = r->prompt; *p; p++)
        hist[n++] = (unsigned char)*p;
    ssf_sampler_scratch s = {0};
    ssf_sampler_params sp = {r->sampling.temperature, r->sampling.top_p, r->sampling.top_k,
                             r->sampling.min_p};
    float logits[VOCAB];
    x->n = 0;
    for (;;) {
        history_logits(hist, n, logits);
        int32_t t = ssf_sample(logits, N_VALID, &sp, r->seed, (uint64_t)x->n, &s);
        if (t == EOS || t == second_eos) {
            x->reason = "stop";
            break;
        }
        x->ids[x->n++] = t;
        hist[n++] = t;
        if (r->sampling.max_new_tokens > 0 && x->n >= r->sampling.max_new_tokens) {
            x->reason = "length";
            break;
        }
        if (n >= MAX_CTX) {
            x->reason = "length";
            break;
        }
    }
    ssf_sampler_scratch_free(&s);
}

/* ---- collecting results ----------------------------------------------------- */

typedef struct got {
    int64_t prompt_tokens, completion_tokens;
    int32_t ids[MAX_CTX];
    int n, calls, failed;
    char reason[16];
    char text[MAX_CTX + 1];
    char error[256];
} got;

typedef struct sink {
    const ssf_gen_request *reqs;
    got *g;
} sink;

static int on_done(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    sink *k = ud;
    got *g = &k->g[req - k->reqs];
    g->calls++;
    if (res->error) {
        g->failed = 1;
        snprintf(g->error, sizeof g->error, "%s", res->error);
        return 0;
    }
    g->n = (int)res->n_token_ids;
    g->prompt_tokens = res->prompt_tokens;
    g->completion_tokens = res->completion_tokens;
    memcpy(g->ids, res->token_ids, res->n_token_ids * sizeof(int32_t));
    snprintf(g->reason, sizeof g->reason, "%s", res->finish_reason);
    snprintf(g->text, sizeof g->text, "%s", res->text);
    return 0;
}

/* g was reported once, and ran as the serial reference draws r: not
 * failed, the same ids (the reference's draw left in *x). */
static void expect_as_reference(const ssf_gen_request *r, const got *g, expect *x)
{
    reference(r, x);
    assert_int_equal(g->calls, 1);
    assert_false(g->failed);
    assert_int_equal(g->n, x->n);
    assert_memory_equal(g->ids, x->ids, (size_t)x->n * sizeof(int32_t));
    assert_int_equal(g->completion_tokens, x->n);
    assert_int_equal(g->prompt_tokens, (int64_t)strlen(r->prompt)); /* a byte a token */
}

/* One request through e, reported once into *g. */
static void generate_one(ssf_engine *e, const ssf_gen_request *r, got *g)
{
    memset(g, 0, sizeof *g);
    sink k = {r, g};
    ssf_error err;
    if (ssf_engine_generate(e, r, 1, on_done, &k, &err)) fail_msg("%s", err.msg);
    assert_int_equal(g->calls, 1);
}

#define N_REQ 40

static const char *prompts[] = {"What is 2+2?", "Solve x^2 = 9.", "Name a prime.",
                                "A much longer prompt about geometry and circles."};

/* 4 prompts x 10 samples, mixed sampling settings, interleaved order. */
static void make_requests(ssf_gen_request *r)
{
    for (int i = 0; i < N_REQ; i++) {
        r[i] = (ssf_gen_request){.task = "t", .doc = i % 4, .index = i / 4};
        r[i].prompt = prompts[i % 4];
        r[i].seed = 1000 + (uint64_t)i * 17;
        r[i].sampling = (ssf_sampling){.temperature = i % 5 == 0 ? 0 : 0.8,
                                       .top_p = i % 3 == 0 ? 0.9 : 1.0,
                                       .top_k = i % 7 == 0 ? 20 : 0,
                                       .min_p = i % 11 == 0 ? 0.05 : 0,
                                       .max_new_tokens = 10 + i % 13};
    }
}

/* An engine over a fresh fake device (see fake_init). */
static ssf_engine *open_paged_engine(fake *f, int slots, int blocks, int bs, ssf_engine_options *o)
{
    fake_init(f, slots, blocks, bs);
    ssf_engine_model m = fake_model(f);
    return ssf_engine_new(&m, o);
}

static ssf_engine *open_engine(fake *f, int slots, ssf_engine_options *o)
{
    return open_paged_engine(f, slots, 0, 16, o);
}

typedef struct pool_shape {
    int slots, blocks, bs, chunk;
    int device_samples; /* 1: the fake device draws the running samples' tokens; 2: and defers */
} pool_shape;

/* Which fake device the tests run on (pool_shape.device_samples). */
static void fake_kind(fake *f, int device_samples)
{
    f->d.can_sample = device_samples >= 1;
    f->d.can_defer = device_samples == 2;
}

/* The most deferred steps the last run_engine's device held at once. */
static int most_queued, most_rows;

static void run_engine(pool_shape ps, const ssf_gen_request *reqs, size_t n, got *g,
                       ssf_engine_stats *stats)
{
    fake f;
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    o.prefill_chunk = ps.chunk;
    fake_init(&f, ps.slots, ps.blocks, ps.bs);
    fake_kind(&f, ps.device_samples);
    ssf_engine_model m = fake_model(&f);
    ssf_engine *e = ssf_engine_new(&m, &o);
    memset(g, 0, n * sizeof *g);
    sink k = {reqs, g};
    ssf_error err;
    int rc = ssf_engine_generate(e, reqs, n, on_done, &k, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    if (stats) *stats = *ssf_engine_stats_of(e);
    assert_int_equal(f.queued, 0); /* nothing left queued on the device */
    most_queued = f.most_queued;
    most_rows = f.most_rows;
    ssf_engine_free(e);
}

/* Every sample of the fixture equals the serial reference. */
static void check_against_reference(pool_shape ps, int *stops, int *lengths,
                                    ssf_engine_stats *stats)
{
    ssf_gen_request reqs[N_REQ];
    make_requests(reqs);
    got g[N_REQ];
    run_engine(ps, reqs, N_REQ, g, stats);
    for (int i = 0; i < N_REQ; i++) {
        expect x;
        expect_as_reference(&reqs[i], &g[i], &x);
        assert_string_equal(g[i].reason, x.reason);
        *stops += strcmp(x.reason, "stop") == 0;
        *lengths += strcmp(x.reason, "length") == 0;
    }
}

/* For any number of sequences a step, prefill chunk and block size: the
 * batch a sample ran in never changes its tokens, and shared prompt blocks
 * are never written over. */
static void test_samples_match_reference(void **state)
{
    (void)state;
    static const int slots[] = {1, 2, 3, 8, 33};
    static const int chunks[] = {1, 5, 512};
    static const int block_sizes[] = {1, 4, 16};
    int stops = 0, lengths = 0;
    for (size_t si = 0; si < 5; si++)
        for (size_t ci = 0; ci < 3; ci++)
            for (size_t bi = 0; bi < 3; bi++) {
                pool_shape ps = {slots[si], 0, block_sizes[bi], chunks[ci], 0};
                check_against_reference(ps, &stops, &lengths, NULL);
            }
    /* the fixture exercises both ways of finishing */
    assert_true(stops > 0 && lengths > 0);
}

/* A pool far smaller than the work: samples are preempted, recomputed
 * later, and still come out exactly as the reference. */
static void test_preemption_keeps_samples(void **state)
{
    (void)state;
    int stops = 0, lengths = 0;
    ssf_engine_stats st;
    pool_shape tight = {8, 34, 4, 512, 0};
    check_against_reference(tight, &stops, &lengths, &st);
    assert_true(st.preemptions > 0);
    assert_true(st.recomputed_tokens > 0);
    pool_shape chunked = {8, 34, 4, 3, 0};
    check_against_reference(chunked, &stops, &lengths, &st);
    assert_true(st.preemptions > 0);
}

/* Pools that hold any one sample, or a little more, with few slots: a
 * sample running alone while prompts hold blocks for later must get them
 * back, not be failed (the run used to end "scheduler stalled"). */
static void test_small_pools_finish(void **state)
{
    (void)state;
    int stops = 0, lengths = 0;
    const int bs = 4, alone = 18; /* 48 prompt + 22 new tokens: the longest sample */
    for (int slots = 1; slots <= 3; slots++)
        for (int extra = 0; extra <= 12; extra += 1)
            for (int kind = 0; kind <= 2; kind += 2) {
                pool_shape ps = {slots, alone + extra, bs, 512, kind};
                check_against_reference(ps, &stops, &lengths, NULL);
            }
}

/* A device that draws the running samples' tokens itself (the CUDA
 * device): the engine hands it each sample's settings, seed and draw
 * number, takes the ids back, and the samples come out as the reference,
 * with and without preemption. */
static void test_device_sampling(void **state)
{
    (void)state;
    int stops = 0, lengths = 0;
    ssf_engine_stats st;
    static const pool_shape shapes[] = {
        {1, 0, 16, 512, 1}, {3, 0, 4, 5, 1}, {33, 0, 1, 512, 1}, {8, 34, 4, 3, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_against_reference(shapes[i], &stops, &lengths, &st);
        assert_int_equal(st.discarded_rows, 0);
    }
    assert_true(st.preemptions > 0);
    assert_true(stops > 0 && lengths > 0);
}

/* A device that runs a step while the engine builds the next (can_defer):
 * a sample's token still in flight is fed on the device from the step that
 * drew it, the engine takes each step's ids one step late, and the samples
 * come out as the reference all the same, with and without preemption.
 * A sample ended by eos may have had one more row computed, thrown away;
 * one its budget or the context ends is not given that row. */
static void test_deferred_steps(void **state)
{
    (void)state;
    int stops = 0, lengths = 0;
    int64_t discarded = 0;
    ssf_engine_stats st;
    static const pool_shape shapes[] = {{1, 0, 16, 512, 2}, {3, 0, 4, 5, 2},  {33, 0, 1, 512, 2},
                                        {8, 0, 16, 512, 2}, {8, 34, 4, 3, 2}, {8, 34, 4, 512, 2}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_against_reference(shapes[i], &stops, &lengths, &st);
        assert_int_equal(most_queued, 2); /* a step was queued behind another */
        discarded += st.discarded_rows;
    }
    assert_true(st.preemptions > 0);
    assert_true(stops > 0 && lengths > 0);
    assert_true(discarded > 0 && discarded <= stops);
}

/* A pool that holds one sample's KV exactly up to its budget (3 blocks of
 * 4: a 4-token prompt and 8 of its 9 tokens fed): the sample ends by length
 * on each kind of device; a deferring one must not ask a block for the row
 * that its last token, in flight, will never take. */
static void test_exact_pool(void **state)
{
    (void)state;
    static const char *texts[] = {"abcd", "wxyz", "1234", "qrst", "mnop"};
    ssf_gen_request r = {0};
    expect x = {0};
    for (int p = 0; p < 5 && x.n != 9; p++)
        for (uint64_t seed = 1; seed < 40 && x.n != 9; seed++) {
            r = (ssf_gen_request){
                .prompt = texts[p],
                .seed = seed,
                .sampling = {.temperature = 0.8, .top_p = 1, .max_new_tokens = 9}};
            reference(&r, &x);
        }
    assert_int_equal(x.n, 9);
    for (int kind = 0; kind <= 2; kind++) {
        got g;
        pool_shape ps = {1, 3, 4, 512, kind};
        run_engine(ps, &r, 1, &g, NULL);
        assert_false(g.failed);
        assert_int_equal(g.n, 9);
        assert_memory_equal(g.ids, x.ids, 9 * sizeof(int32_t));
        assert_string_equal(g.reason, "length");
    }
}

/* A prompt is prefilled once however many samples it has. */
static void test_one_prefill_per_prompt(void **state)
{
    (void)state;
    ssf_gen_request reqs[N_REQ];
    make_requests(reqs);
    for (int i = 0; i < N_REQ; i++) /* equal texts, not one pointer, make a prompt */
        reqs[i].prompt = strdup(reqs[i].prompt);
    got g[N_REQ];
    ssf_engine_stats st;
    pool_shape ps = {8, 0, 16, 512, 0};
    run_engine(ps, reqs, N_REQ, g, &st);
    int64_t prompt_tokens = 0;
    for (int p = 0; p < 4; p++)
        prompt_tokens += (int64_t)strlen(prompts[p]);
    assert_int_equal(st.prefill_tokens, prompt_tokens);
    assert_int_equal(st.forks, N_REQ - 4); /* the last sample of each takes the prompt slot */
    for (int i = 0; i < N_REQ; i++)
        free((char *)reqs[i].prompt);
}

/* Up to 16 requests on each of the three fake devices (4 slots, blocks
 * of 16): every sample as the serial reference draws it. */
static void expect_reference_on_each_device(ssf_gen_request *reqs, int n)
{
    got g[16];
    assert_true(n <= 16);
    for (int kind = 0; kind <= 2; kind++) {
        pool_shape ps = {4, 0, 16, 512, kind};
        run_engine(ps, reqs, n, g, NULL);
        for (int i = 0; i < n; i++) {
            expect x;
            expect_as_reference(&reqs[i], &g[i], &x);
        }
    }
}

/* The samples of a prompt draw their first tokens from its logits, filtered
 * once for each run of equal parameters: a sample whose parameters differ
 * from the one before it, in min-p alone, draws under its own. */
static void test_first_draws_follow_each_sample(void **state)
{
    (void)state;
    enum { N = 16 };
    ssf_gen_request reqs[N];
    for (int i = 0; i < N; i++) {
        reqs[i] = (ssf_gen_request){.task = "t", .index = i, .seed = 77 + (uint64_t)i};
        reqs[i].prompt = prompts[0];
        reqs[i].sampling = (ssf_sampling){
            .temperature = 1.0, .top_p = 1.0, .min_p = i % 2 ? 0.5 : 0, .max_new_tokens = 2};
    }
    expect_reference_on_each_device(reqs, N);
}

/* A request's sampling left zeroed (temperature 0, top-p 0: greedy, and
 * equal to the kept row's parameters before any were kept) draws its first
 * token greedily, whether it is the prompt's first sample or follows one
 * at temperature 1, and a sample at temperature 1 after it draws under
 * its own: the first draws are kept only for equal parameters actually
 * filtered. */
static void test_first_draws_zeroed_sampling(void **state)
{
    (void)state;
    enum { N = 16 };
    ssf_gen_request reqs[N];
    for (int i = 0; i < N; i++) {
        reqs[i] = (ssf_gen_request){.task = "t", .index = i, .seed = 301 + (uint64_t)i};
        reqs[i].prompt = prompts[1];
        reqs[i].sampling =
            i % 2 ? (ssf_sampling){.temperature = 1.0, .top_p = 1.0, .max_new_tokens = 2}
                  : (ssf_sampling){.max_new_tokens = 2};
    }
    expect_reference_on_each_device(reqs, N);
}

/* A step's prefill rows stay within --prefill-chunk: a long prompt does
 * not stall the running samples behind it in one step. */
static void test_prefill_chunk_bounds_steps(void **state)
{
    (void)state;
    int stops = 0, lengths = 0;
    for (int slots = 1; slots <= 3; slots++) {
        pool_shape ps = {slots, 0, 4, 5, 0};
        check_against_reference(ps, &stops, &lengths, NULL);
        if (most_rows > 5 + slots)
            fail_msg("%d slots, chunk 5: a step of %d rows", slots, most_rows);
    }
}

/* Every eos id of the model ends a sample (Qwen lists two), not only the
 * first: here an id the fixture draws is made the second. */
static void test_every_eos_stops(void **state)
{
    (void)state;
    int stops = 0, lengths = 0, by_second = 0;
    ssf_gen_request reqs[N_REQ];
    make_requests(reqs);
    expect x;
    reference(&reqs[1], &x);
    assert_true(x.n > 3);
    int32_t second = x.ids[2];        /* an id the fixture draws: the second stop */
    for (int i = 0; i < N_REQ; i++) { /* the samples that it ends sooner */
        expect one, two;
        reference(&reqs[i], &one);
        second_eos = second;
        reference(&reqs[i], &two);
        second_eos = -1;
        by_second += two.n < one.n;
    }
    second_eos = second;
    for (int kind = 0; kind <= 2; kind++)
        check_against_reference((pool_shape){3, 0, 16, 512, kind}, &stops, &lengths, NULL);
    second_eos = -1;
    assert_true(by_second > 0);
}

/* Two bytes a token, as BPE has many: a stop string that ends inside the
 * newest token's bytes is found when the token arrives. */
static const char *two_byte_token(void *ud, int32_t id, size_t *len)
{
    static char pairs[256][2];
    (void)ud;
    if (id < 0 || id >= 256) {
        *len = 0;
        return id < N_VALID ? "" : NULL;
    }
    pairs[id][0] = (char)id;
    pairs[id][1] = '!';
    *len = 2;
    return pairs[id];
}

static void test_stop_inside_a_token(void **state)
{
    (void)state;
    ssf_gen_request r = {.prompt = "What is 2+2?",
                         .seed = 5,
                         .sampling = {.temperature = 1.0, .top_p = 1, .max_new_tokens = 40}};
    expect x;
    reference(&r, &x);
    assert_true(x.n >= 3 && x.ids[1] > 0 && x.ids[1] < 256 && x.ids[1] != '!');
    char stop[3] = {'!', (char)x.ids[1], 0}; /* the first token's '!', the second's byte */
    const char *stops[1] = {stop};
    for (int kind = 0; kind <= 2; kind++) {
        fake f;
        ssf_engine_options o;
        ssf_engine_options_default(&o);
        o.stop = stops;
        o.n_stop = 1;
        fake_init(&f, 2, 0, 16);
        fake_kind(&f, kind);
        ssf_engine_model m = fake_model(&f);
        m.token_bytes = two_byte_token;
        ssf_engine *e = ssf_engine_new(&m, &o);
        got g;
        generate_one(e, &r, &g);
        assert_string_equal(g.reason, "stop");
        assert_int_equal(g.n, 2);
        ssf_engine_free(e);
    }
}

/* A prompt the tokenizer refuses fails its own samples, and logits with no
 * finite value fail their own sample: the others run as the reference. */
static int encode_refusing_bad(void *ud, const char *text, int32_t **ids, size_t *n, ssf_error *err)
{
    if (strncmp(text, "BAD", 3) == 0) return ssf_fail(err, "no token for this text");
    return tok_encode(ud, text, ids, n, err);
}

static void check_failures_stay_alone(int kind, int nan)
{
    ssf_gen_request reqs[N_REQ];
    make_requests(reqs);
    for (int i = 0; i < N_REQ; i += 4)
        reqs[i].prompt = nan ? "#NaN from position 12 on" : "BAD prompt";
    fake f;
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    fake_init(&f, 3, 0, 16);
    fake_kind(&f, kind);
    f.nan_hashes = nan;
    ssf_engine_model m = fake_model(&f);
    if (!nan) m.encode = encode_refusing_bad;
    ssf_engine *e = ssf_engine_new(&m, &o);
    got g[N_REQ];
    memset(g, 0, sizeof g);
    sink k = {reqs, g};
    ssf_error err;
    if (ssf_engine_generate(e, reqs, N_REQ, on_done, &k, &err)) fail_msg("%s", err.msg);
    for (int i = 0; i < N_REQ; i++) {
        if (i % 4 == 0) {
            assert_int_equal(g[i].calls, 1);
            assert_true(g[i].failed);
            assert_non_null(
                strstr(g[i].error, nan ? "no finite value" : "tokenizing the prompt: no token"));
        } else {
            expect x;
            expect_as_reference(&reqs[i], &g[i], &x);
        }
    }
    ssf_engine_free(e);
}

static void test_failures_stay_alone(void **state)
{
    (void)state;
    check_failures_stay_alone(0, 0);
    check_failures_stay_alone(2, 0);
    check_failures_stay_alone(0, 1);
    check_failures_stay_alone(2, 1);
}

/* A prompt's last logits (a vocabulary of floats) are freed once its last
 * sample starts, not at the end of the call: 64 prompts of one sample each
 * through 2 slots hold a few at a time, not 64. */
static void test_prompt_logits_freed(void **state)
{
    (void)state;
    enum { N = 64 };
    char texts[N][16];
    ssf_gen_request reqs[N];
    for (int i = 0; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], "prompt %d?", i);
        reqs[i] =
            (ssf_gen_request){.task = "t",
                              .doc = i,
                              .prompt = texts[i],
                              .seed = 50 + (uint64_t)i,
                              .sampling = {.temperature = 0.8, .top_p = 1, .max_new_tokens = 6}};
    }
    got g[N];
    ssf_engine_stats st;
    for (int kind = 0; kind <= 2; kind++) {
        pool_shape ps = {2, 0, 16, 512, kind};
        run_engine(ps, reqs, N, g, &st);
        for (int i = 0; i < N; i++)
            assert_false(g[i].failed);
        fprintf(stderr, "kind %d: at most %lld prompts held their logits\n", kind,
                (long long)st.peak_prompt_logits);
        assert_true(st.peak_prompt_logits >= 1);
        assert_true(st.peak_prompt_logits <= 8);
    }
}

static void test_context_limit_and_long_prompt(void **state)
{
    (void)state;
    char long_prompt[MAX_CTX + 10], near_limit[MAX_CTX];
    memset(long_prompt, 'a', sizeof long_prompt - 1);
    long_prompt[sizeof long_prompt - 1] = '\0';
    memset(near_limit, 'b', MAX_CTX - 4);
    near_limit[MAX_CTX - 4] = '\0';
    ssf_gen_request reqs[3] = {
        {.prompt = long_prompt, .seed = 1, .sampling = {.temperature = 0.7, .top_p = 1}},
        {.prompt = near_limit, .seed = 2, .sampling = {.temperature = 0, .top_p = 1}},
        {.prompt = "ok",
         .seed = 3,
         .sampling = {.temperature = 0.7, .top_p = 1, .max_new_tokens = 5}},
    };
    got g[3];
    pool_shape ps = {2, 0, 16, 512, 0};
    run_engine(ps, reqs, 3, g, NULL);
    assert_true(g[0].failed);
    assert_non_null(strstr(g[0].error, "context holds 96"));
    assert_false(g[1].failed);
    expect x;
    reference(&reqs[1], &x);
    assert_int_equal(g[1].n, x.n);
    assert_true(g[1].n <= 4);
    assert_false(g[2].failed);
    assert_true(g[2].n <= 5);
}

/* Sets r's seed to the first from `seed` whose sample runs past `at_least`
 * tokens (fails the test when 10,000 seeds give none). */
static void seed_running_past(ssf_gen_request *r, int at_least, uint64_t seed)
{
    expect x;
    for (uint64_t last = seed + 10000; seed < last; seed++) {
        r->seed = seed;
        reference(r, &x);
        if (x.n > at_least) return;
    }
    fail_msg("no seed gives a sample of more than %d tokens", at_least);
}

/* Prompts that cannot run fail alone, each with its reason: an empty one,
 * and one whose blocks (10 of 4 positions) pass the pool's 8; the third
 * runs as the reference does. */
static void test_prompts_that_cannot_run(void **state)
{
    (void)state;
    char long_prompt[41], whole_pool[33];
    memset(long_prompt, 'c', 40);
    long_prompt[40] = '\0';
    memset(whole_pool, 'd', 32); /* 8 blocks: all, with none kept free */
    whole_pool[32] = '\0';
    ssf_gen_request reqs[4] = {
        {.prompt = "", .seed = 1, .sampling = {.temperature = 0.7, .top_p = 1}},
        {.prompt = long_prompt, .seed = 2, .sampling = {.temperature = 0.7, .top_p = 1}},
        {.prompt = "ok",
         .seed = 3,
         .sampling = {.temperature = 0, .top_p = 1, .max_new_tokens = 5}},
        {.prompt = whole_pool, .seed = 4, .sampling = {.temperature = 0.7, .top_p = 1}},
    };
    for (int kind = 0; kind <= 2; kind++) {
        got g[4];
        run_engine((pool_shape){2, 8, 4, 512, kind}, reqs, 4, g, NULL);
        assert_true(g[0].failed);
        assert_string_equal(g[0].error, "engine: the prompt is empty");
        assert_true(g[1].failed);
        assert_string_equal(g[1].error, "engine: the prompt needs 10 KV blocks and 1 kept free, "
                                        "the pool has 8; raise --kv-blocks");
        assert_true(g[3].failed);
        assert_string_equal(g[3].error, "engine: the prompt needs 8 KV blocks and 1 kept free, "
                                        "the pool has 8; raise --kv-blocks");
        expect x;
        expect_as_reference(&reqs[2], &g[2], &x);
    }
}

/* The order samples end in, by request index. */
typedef struct finish_order {
    const ssf_gen_request *reqs;
    int order[8], n;
} finish_order;

static int note_finish(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    finish_order *f = ud;
    assert_null(res->error);
    f->order[f->n++] = (int)(req - f->reqs);
    return 0;
}

/* When blocks run out the sample started last gives its blocks back, and
 * the one that has waited longest comes back first.  Over 16 blocks of 4,
 * samples A, B and C (C's prompt 24 tokens, the others' 4; 40 new tokens
 * each) start in that order: C gives its blocks back first, then B, and
 * once A ends only one of them fits again.  They end A, B, C; preempting
 * the oldest (whose recompute costs most) or resuming the youngest ends
 * them in another order (a scan of prompt lengths, budgets and pools found
 * this shape). */
static void test_preemption_order(void **state)
{
    (void)state;
    ssf_gen_request reqs[3] = {
        {.prompt = "aaaa", .sampling = {.temperature = 0, .top_p = 1, .max_new_tokens = 40}},
        {.prompt = "bbbb", .sampling = {.temperature = 0, .top_p = 1, .max_new_tokens = 40}},
        {.prompt = "cccccccccccccccccccccccc",
         .sampling = {.temperature = 0, .top_p = 1, .max_new_tokens = 40}},
    };
    for (int kind = 0; kind <= 2; kind++) {
        fake f;
        ssf_engine_options o;
        ssf_engine_options_default(&o);
        fake_init(&f, 3, 16, 4);
        fake_kind(&f, kind);
        ssf_engine_model m = fake_model(&f);
        ssf_engine *e = ssf_engine_new(&m, &o);
        finish_order fo = {.reqs = reqs};
        ssf_error err;
        if (ssf_engine_generate(e, reqs, 3, note_finish, &fo, &err)) fail_msg("%s", err.msg);
        assert_true(ssf_engine_stats_of(e)->preemptions > 0);
        assert_int_equal(fo.n, 3);
        for (int i = 0; i < 3; i++)
            if (fo.order[i] != i)
                fail_msg("device kind %d: ended %d, %d, %d", kind, fo.order[0], fo.order[1],
                         fo.order[2]);
        ssf_engine_free(e);
    }
}

/* A sample alone that outgrows the pool (4 blocks of 4 positions) fails
 * with the fix; the sample after it runs as the reference does. */
static void test_sample_outgrows_pool(void **state)
{
    (void)state;
    ssf_gen_request reqs[2] = {
        {.prompt = "ab", .sampling = {.temperature = 1.0, .top_p = 1, .max_new_tokens = 40}},
        {.prompt = "cd",
         .seed = 9,
         .sampling = {.temperature = 0, .top_p = 1, .max_new_tokens = 4}},
    };
    seed_running_past(&reqs[0], 20, 1);
    for (int kind = 0; kind <= 2; kind++) {
        got g[2];
        run_engine((pool_shape){1, 4, 4, 512, kind}, reqs, 2, g, NULL);
        assert_int_equal(g[0].calls, 1);
        assert_true(g[0].failed);
        assert_string_equal(g[0].error, "engine: the KV pool cannot hold this sample; raise "
                                        "--kv-blocks or lower --max-context");
        expect x;
        expect_as_reference(&reqs[1], &g[1], &x);
    }
}

/* An engine of 4 slots over a fake device of the given kind, and the
 * fixture's requests. */
static ssf_engine *fixture_engine(fake *f, int device_samples, ssf_gen_request *reqs)
{
    make_requests(reqs);
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    ssf_engine *e = open_engine(f, 4, &o);
    fake_kind(f, device_samples);
    return e;
}

/* After a call that ended early, the same engine and device run the next
 * call whole: every sample once, as the reference draws it. */
static void expect_next_call_whole(ssf_engine *e, const ssf_gen_request *reqs, int n, sink *k)
{
    memset(k->g, 0, (size_t)n * sizeof *k->g);
    ssf_error err;
    assert_int_equal(ssf_engine_generate(e, reqs, (size_t)n, on_done, k, &err), 0);
    for (int i = 0; i < n; i++) {
        expect x;
        expect_as_reference(&reqs[i], &k->g[i], &x);
    }
}

/* Stops at the first sample reported, with the status the caller's
 * callback gives (as the run does when the store refuses a write). */
static int stop_at_first(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    on_done(req, res, ud);
    return 7;
}

/* A callback's nonzero status stops the call: it is returned, no sample is
 * reported after it, nothing is left on the device, and the engine then
 * runs the next call whole. */
static void check_callback_stops(int device_samples)
{
    ssf_gen_request reqs[N_REQ];
    fake f;
    ssf_engine *e = fixture_engine(&f, device_samples, reqs);
    got g[N_REQ];
    memset(g, 0, sizeof g);
    sink k = {reqs, g};
    ssf_error err;
    assert_int_equal(ssf_engine_generate(e, reqs, N_REQ, stop_at_first, &k, &err), 7);
    int calls = 0;
    for (int i = 0; i < N_REQ; i++)
        calls += g[i].calls;
    assert_int_equal(calls, 1);
    assert_int_equal(f.queued, 0);
    expect_next_call_whole(e, reqs, N_REQ, &k);
    ssf_engine_free(e);
}

static void test_callback_stops(void **state)
{
    (void)state;
    for (int kind = 0; kind <= 2; kind++)
        check_callback_stops(kind);
}

/* A stop string ends a sample on the device of each kind (device_samples). */
static void check_stop_strings(int device_samples)
{
    ssf_gen_request r = {.prompt = "What is 2+2?",
                         .seed = 5,
                         .sampling = {.temperature = 1.0, .top_p = 1, .max_new_tokens = 40}};
    expect x;
    reference(&r, &x);
    assert_true(x.n >= 3);
    /* stop on the 2nd and 3rd generated tokens, when both are bytes */
    if (x.ids[1] <= 0 || x.ids[1] >= 256 || x.ids[2] <= 0 || x.ids[2] >= 256) skip();
    char stop[3] = {(char)x.ids[1], (char)x.ids[2], 0};
    const char *stops[1] = {stop};
    fake f;
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    o.stop = stops;
    o.n_stop = 1;
    ssf_engine *e = open_engine(&f, 2, &o);
    fake_kind(&f, device_samples);
    got g;
    generate_one(e, &r, &g);
    assert_string_equal(g.reason, "stop");
    assert_int_equal(g.n, 3); /* generation ends with the token completing the stop */
    /* the text is what came before the stop string's first occurrence */
    char *want = tok_decode(NULL, x.ids, 3, NULL);
    char *cut = strstr(want, stop);
    assert_non_null(cut);
    *cut = '\0';
    assert_string_equal(g.text, want);
    free(want);
    ssf_engine_free(e);
}

static void test_stop_strings(void **state)
{
    (void)state;
    for (int kind = 0; kind <= 2; kind++)
        check_stop_strings(kind);
}

/* Forward call `at_step` and collect call `at_collect` fail (0: none). */
static void inject_faults(fake *f, int at_step, int at_collect)
{
    f->calls = f->collects = 0;
    f->fail_at_step = at_step;
    f->fail_at_collect = at_collect;
}

/* A device failure at forward call `at_step` or collect call `at_collect`
 * fails every unfinished sample (never a silent loss) and the call reports
 * the error; the engine runs again afterwards. */
static void check_device_failure(int device_samples, int at_step, int at_collect)
{
    ssf_gen_request reqs[N_REQ];
    fake f;
    ssf_engine *e = fixture_engine(&f, device_samples, reqs);
    inject_faults(&f, at_step, at_collect);
    got g[N_REQ];
    memset(g, 0, sizeof g);
    sink k = {reqs, g};
    ssf_error err;
    assert_int_equal(ssf_engine_generate(e, reqs, N_REQ, on_done, &k, &err), -1);
    assert_non_null(strstr(err.msg, at_step ? "injected failure" : "injected fault"));
    int failed = 0;
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(g[i].calls, 1);
        failed += g[i].failed;
        if (g[i].failed) assert_non_null(strstr(g[i].error, "injected"));
    }
    assert_true(failed > 0);
    assert_int_equal(f.queued, 0);
    inject_faults(&f, 0, 0);
    expect_next_call_whole(e, reqs, 4, &k);
    ssf_engine_free(e);
}

static void test_device_failure(void **state)
{
    (void)state;
    check_device_failure(0, 7, 0);
    check_device_failure(1, 7, 0);
    check_device_failure(2, 7, 0);
    check_device_failure(2, 0, 5);
}

/* The byte tokenizer, but a prompt that starts with "BAD" ends with an id
 * past the model's vocabulary (a tokenizer larger than the checkpoint). */
static int encode_with_stray_id(void *ud, const char *text, int32_t **ids, size_t *n,
                                ssf_error *err)
{
    if (tok_encode(ud, text, ids, n, err)) return -1;
    if (strncmp(text, "BAD", 3) == 0) (*ids)[*n - 1] = VOCAB + 5;
    return 0;
}

/* Only the prompt with the stray id fails, naming it; the others run. */
static void test_prompt_outside_vocab(void **state)
{
    (void)state;
    ssf_gen_request reqs[N_REQ];
    make_requests(reqs);
    for (int i = 0; i < N_REQ; i++)
        if (i % 4 == 1) reqs[i].prompt = "BAD prompt";
    fake f;
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    fake_init(&f, 4, 0, 16);
    ssf_engine_model m = fake_model(&f);
    m.encode = encode_with_stray_id;
    ssf_engine *e = ssf_engine_new(&m, &o);
    got g[N_REQ];
    memset(g, 0, sizeof g);
    sink k = {reqs, g};
    ssf_error err;
    assert_int_equal(ssf_engine_generate(e, reqs, N_REQ, on_done, &k, &err), 0);
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].failed, i % 4 == 1);
        if (i % 4 == 1) assert_non_null(strstr(g[i].error, "outside the model's vocabulary"));
    }
    ssf_engine_free(e);
}

static volatile int interrupt_flag;

static int interrupt_after_first(const ssf_gen_request *req, const ssf_gen_result *res, void *ud)
{
    interrupt_flag = 1;
    return on_done(req, res, ud);
}

static void check_interrupt(int device_samples)
{
    ssf_gen_request reqs[N_REQ];
    make_requests(reqs);
    fake f;
    ssf_engine_options o;
    ssf_engine_options_default(&o);
    interrupt_flag = 0;
    o.interrupt = &interrupt_flag;
    ssf_engine *e = open_engine(&f, 4, &o);
    fake_kind(&f, device_samples);
    got g[N_REQ];
    memset(g, 0, sizeof g);
    sink k = {reqs, g};
    ssf_error err;
    assert_int_equal(ssf_engine_generate(e, reqs, N_REQ, interrupt_after_first, &k, &err), 0);
    int failed = 0, ok = 0;
    for (int i = 0; i < N_REQ; i++) {
        assert_int_equal(g[i].calls, 1);
        failed += g[i].failed;
        ok += !g[i].failed;
        if (g[i].failed) assert_non_null(strstr(g[i].error, "interrupted"));
    }
    assert_true(ok >= 1 && failed >= N_REQ / 2);
    assert_int_equal(f.queued, 0);
    ssf_engine_free(e);
}

static void test_interrupt(void **state)
{
    (void)state;
    for (int kind = 0; kind <= 2; kind++)
        check_interrupt(kind);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_match_reference),
        cmocka_unit_test(test_preemption_keeps_samples),
        cmocka_unit_test(test_small_pools_finish),
        cmocka_unit_test(test_prompt_outside_vocab),
        cmocka_unit_test(test_device_sampling),
        cmocka_unit_test(test_deferred_steps),
        cmocka_unit_test(test_exact_pool),
        cmocka_unit_test(test_one_prefill_per_prompt),
        cmocka_unit_test(test_first_draws_follow_each_sample),
        cmocka_unit_test(test_first_draws_zeroed_sampling),
        cmocka_unit_test(test_preemption_order),
        cmocka_unit_test(test_prompt_logits_freed),
        cmocka_unit_test(test_prefill_chunk_bounds_steps),
        cmocka_unit_test(test_every_eos_stops),
        cmocka_unit_test(test_stop_inside_a_token),
        cmocka_unit_test(test_failures_stay_alone),
        cmocka_unit_test(test_context_limit_and_long_prompt),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_device_failure),
        cmocka_unit_test(test_interrupt),
        cmocka_unit_test(test_prompts_that_cannot_run),
        cmocka_unit_test(test_sample_outgrows_pool),
        cmocka_unit_test(test_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
