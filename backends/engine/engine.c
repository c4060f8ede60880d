/*
 * engine.c - the scheduler of the in-process engine: prompts prefilled once,
 * samples forked from them over shared KV blocks, one token per running
 * sample every step, blocks recycled as samples finish or are preempted.
 * Device arithmetic is behind device.h, block bookkeeping in kvblocks.c,
 * token choice in sampler.c.
 */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvblocks.h"
#include "sampler.h"

enum group_state { GROUP_WAITING, GROUP_PREFILLING, GROUP_READY, GROUP_DONE };

/* The samples of one prompt. */
typedef struct group {
    const char *prompt;
    int32_t *ids; /* the prompt's tokens */
    size_t n_ids;
    size_t *reqs; /* indices of its requests */
    size_t n_reqs;
    size_t next;            /* the next sample to start */
    ssf_kv_table table;     /* the prompt's blocks, from prefill until the last fork */
    size_t prefilled;       /* prompt positions computed so far */
    float *logits;          /* the last prompt position's logits, from prefill until its last
                               sample has drawn from them */
    ssf_sampler_kept first; /* the logits filtered under first_params */
    ssf_sampler_params first_params; /* valid once first.id is set */
    enum group_state state;
} group;

enum seq_state { SEQ_RUNNING, SEQ_PREEMPTED, SEQ_RESUMING };

/* A started sample.  Its KV holds every token but the last one sampled,
 * which is fed next step. */
typedef struct seq {
    size_t req;
    group *g;
    ssf_kv_table table;
    int32_t *out; /* generated ids */
    size_t n_out, cap;
    ssf_buf bytes; /* their raw bytes, for stop strings */
    double t_start;
    uint64_t order;    /* start order: the youngest is preempted first */
    size_t recomputed; /* while resuming: positions computed again so far */
    enum seq_state state;
    /* Tokens the device has drawn for it that the host has not yet taken
     * (a deferring device: 0 or 1 while a step is built, 2 for a moment),
     * the newest as sample drawn_at of the step in flight. */
    int inflight, drawn_at;
} seq;

/* The rows of a step whose tokens the device draws, until the host takes
 * them.  A deferring device (can_defer) runs a step while the host builds
 * the next, so there are two: the step in flight and the one being built. */
typedef struct flight {
    seq **owner;      /* per sampled row; NULL once its sample is dropped */
    int32_t *sampled; /* the drawn ids, once collected */
    int n;
    int n_rows, n_prefill, n_copies; /* the step's, for the stats */
} flight;

/* What a row of this step's batch belongs to. */
typedef struct row_owner {
    seq *s; /* a sample, or NULL for a prompt's prefill */
    group *g;
} row_owner;

struct ssf_engine {
    ssf_engine_model m;
    ssf_engine_options o;
    ssf_engine_stats stats;
    ssf_sampler_scratch scratch;
    ssf_kv_pool pool;
    int watermark; /* blocks kept free when admitting new work */
    /* per generate call */
    const ssf_gen_request *reqs;
    size_t n_reqs, n_finished;
    ssf_gen_done_fn done;
    void *ud;
    int stop_rc;
    group *groups;
    size_t n_groups, next_group;
    seq **live; /* started, unfinished samples (running, preempted or resuming) */
    int n_live, cap_live;
    uint64_t next_order;
    /* one step's batch */
    int32_t *row_token, *row_pos, *row_seq, *row_feed, *out_rows;
    const int32_t **tables;
    row_owner *seq_owner; /* per batch sequence */
    row_owner *out_owner; /* per out row */
    int32_t *sample_rows; /* rows the device samples (devices with can_sample) */
    ssf_sample_spec *specs;
    flight flights[2];
    int building;  /* the flight this step fills */
    int flying;    /* the flight of the step the device runs, not yet collected; -1: none */
    double t_mark; /* when the step now collected started to count (count_step) */
    ssf_block_copy *copies;
    int n_copies;
    float *logits;
    int64_t prompts_holding_logits;
};

void ssf_engine_options_default(ssf_engine_options *o)
{
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->dev.gpu_memory_utilization = 0.9;
    o->prefill_chunk = 512;
}

ssf_engine *ssf_engine_new(const ssf_engine_model *m, const ssf_engine_options *o)
{
    ssf_engine *e = ssf_xcalloc(1, sizeof *e);
    e->m = *m;
    e->o = *o;
    if (e->o.prefill_chunk <= 0) e->o.prefill_chunk = 512;
    const ssf_device *d = m->device;
    size_t rows = (size_t)d->max_rows, seqs = (size_t)d->n_slots + 1;
    ssf_kv_pool_init(&e->pool, d->n_blocks, d->block_size);
    e->watermark = d->n_blocks / 100 > 1 ? d->n_blocks / 100 : 1;
    e->row_token = ssf_xcalloc(rows, sizeof(int32_t));
    e->row_pos = ssf_xcalloc(rows, sizeof(int32_t));
    e->row_seq = ssf_xcalloc(rows, sizeof(int32_t));
    e->row_feed = ssf_xcalloc(rows, sizeof(int32_t));
    /* a step asks logits of one row per sequence at most: a sample's next
     * token or a prompt's last position */
    e->out_rows = ssf_xcalloc(seqs, sizeof(int32_t));
    e->tables = ssf_xcalloc(seqs, sizeof *e->tables);
    e->seq_owner = ssf_xcalloc(seqs, sizeof *e->seq_owner);
    e->out_owner = ssf_xcalloc(seqs, sizeof *e->out_owner);
    e->sample_rows = ssf_xcalloc(seqs, sizeof *e->sample_rows);
    e->specs = ssf_xcalloc(seqs, sizeof *e->specs);
    for (int i = 0; i < 2; i++) {
        e->flights[i].owner = ssf_xcalloc(seqs, sizeof *e->flights[i].owner);
        e->flights[i].sampled = ssf_xcalloc(seqs, sizeof *e->flights[i].sampled);
    }
    e->flying = -1;
    e->copies = ssf_xcalloc(seqs, sizeof *e->copies);
    e->logits = ssf_xmalloc(seqs * (size_t)m->vocab_size * sizeof(float));
    return e;
}

void ssf_engine_free(ssf_engine *e)
{
    if (!e) return;
    ssf_sampler_scratch_free(&e->scratch);
    ssf_kv_pool_free(&e->pool);
    free(e->live);
    free(e->row_token);
    free(e->row_pos);
    free(e->row_seq);
    free(e->row_feed);
    free(e->out_rows);
    free(e->tables);
    free(e->seq_owner);
    free(e->out_owner);
    free(e->sample_rows);
    free(e->specs);
    for (int i = 0; i < 2; i++) {
        free(e->flights[i].owner);
        free(e->flights[i].sampled);
    }
    free(e->copies);
    free(e->logits);
    free(e);
}

const ssf_engine_stats *ssf_engine_stats_of(const ssf_engine *e)
{
    return &e->stats;
}

/* ---- reporting ------------------------------------------------------------ */

static void report(ssf_engine *e, size_t req, const ssf_gen_result *res)
{
    e->n_finished++;
    if (e->stop_rc) return;
    e->stop_rc = e->done(&e->reqs[req], res, e->ud);
}

static void report_failure(ssf_engine *e, size_t req, const char *why)
{
    ssf_gen_result res = {
        .error = why, .prompt_tokens = -1, .completion_tokens = -1, .attempts = 1};
    report(e, req, &res);
}

static void fail_group_rest(ssf_engine *e, group *g, const char *why)
{
    for (; g->next < g->n_reqs; g->next++)
        report_failure(e, g->reqs[g->next], why);
    g->state = GROUP_DONE;
}

/* ---- sequences ----------------------------------------------------------- */

static void add_live(ssf_engine *e, seq *s)
{
    if (e->n_live == e->cap_live) {
        e->cap_live = e->cap_live ? 2 * e->cap_live : 64;
        e->live = ssf_xrealloc(e->live, (size_t)e->cap_live * sizeof *e->live);
    }
    e->live[e->n_live++] = s;
}

/* A dropped sample's rows in a step not yet collected: their ids are
 * thrown away when it is. */
static void forget_in_flights(ssf_engine *e, const seq *s)
{
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < e->flights[f].n; i++)
            if (e->flights[f].owner[i] == s) e->flights[f].owner[i] = NULL;
}

/* Drops a finished sample: its blocks back to the pool, its memory freed. */
static void drop_seq(ssf_engine *e, seq *s)
{
    if (s->inflight) forget_in_flights(e, s);
    for (int i = 0; i < e->n_live; i++)
        if (e->live[i] == s) {
            memmove(e->live + i, e->live + i + 1, (size_t)(e->n_live - i - 1) * sizeof *e->live);
            e->n_live--;
            break;
        }
    ssf_kv_release(&e->pool, &s->table);
    free(s->out);
    ssf_buf_free(&s->bytes);
    free(s);
}

/* Positions a sample's KV must hold to run: every token but the last. */
static size_t seq_kv_len(const seq *s)
{
    return s->g->n_ids + s->n_out - 1;
}

static int32_t seq_token_at(const seq *s, size_t pos)
{
    return pos < s->g->n_ids ? s->g->ids[pos] : s->out[pos - s->g->n_ids];
}

/* ---- finishing a sample --------------------------------------------------- */

/* The text of a finished sample: its tokens decoded (special tokens
 * dropped), cut before the first stop string. */
static char *finished_text(ssf_engine *e, const seq *s, int *stopped, ssf_error *err)
{
    char *text = e->m.decode(e->m.ud, s->out, s->n_out, err);
    if (!text) return NULL;
    for (size_t i = 0; i < e->o.n_stop; i++) {
        char *hit = strstr(text, e->o.stop[i]);
        if (hit) {
            *hit = '\0';
            *stopped = 1;
        }
    }
    return text;
}

static void finish_seq(ssf_engine *e, seq *s, const char *reason)
{
    ssf_error err;
    int stopped = 0;
    char *text = finished_text(e, s, &stopped, &err);
    if (!text) {
        report_failure(e, s->req, err.msg);
    } else {
        ssf_gen_result res = {.text = text,
                              .finish_reason = stopped ? "stop" : reason,
                              .prompt_tokens = (int64_t)s->g->n_ids,
                              .completion_tokens = (int64_t)s->n_out,
                              .latency_ms = (ssf_monotonic_seconds() - s->t_start) * 1e3,
                              .attempts = 1,
                              .token_ids = s->out,
                              .n_token_ids = s->n_out};
        report(e, s->req, &res);
    }
    free(text);
    drop_seq(e, s);
}

static void fail_seq(ssf_engine *e, seq *s, const char *why)
{
    report_failure(e, s->req, why);
    drop_seq(e, s);
}

static int is_eos(const ssf_engine *e, int32_t t)
{
    for (int i = 0; i < e->m.n_eos; i++)
        if (e->m.eos[i] == t) return 1;
    return 0;
}

/* Whether the newest bytes complete a stop string; only the tail that the
 * last token can have completed is searched. */
static int hits_stop(const ssf_engine *e, const seq *s, size_t added)
{
    for (size_t i = 0; i < e->o.n_stop; i++) {
        size_t len = strlen(e->o.stop[i]);
        if (len == 0 || s->bytes.len < len) continue;
        size_t from = s->bytes.len > len + added ? s->bytes.len - len - added : 0;
        if (memmem(s->bytes.data + from, s->bytes.len - from, e->o.stop[i], len)) return 1;
    }
    return 0;
}

/* Whether a sample with n_out tokens has reached its token budget or the
 * context's end. */
static int at_length(const ssf_engine *e, const seq *s, size_t n_out)
{
    long budget = e->reqs[s->req].sampling.max_new_tokens;
    return (budget > 0 && (long)n_out >= budget) ||
           s->g->n_ids + n_out >= (size_t)e->m.device->max_context;
}

/* Takes a sampled token: stop on eos, a stop string, the token budget or
 * the context limit; otherwise it is fed next step. */
static void accept_token(ssf_engine *e, seq *s, int32_t t)
{
    if (t < 0) {
        fail_seq(e, s, "engine: the logits had no finite value (a numerical fault)");
        return;
    }
    if (is_eos(e, t)) {
        finish_seq(e, s, "stop");
        return;
    }
    if (s->n_out == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->out = ssf_xrealloc(s->out, s->cap * sizeof *s->out);
    }
    s->out[s->n_out++] = t;
    size_t len = 0;
    const char *bytes = e->m.token_bytes(e->m.ud, t, &len);
    if (bytes) ssf_buf_append(&s->bytes, bytes, len);
    if (hits_stop(e, s, len))
        finish_seq(e, s, "stop");
    else if (at_length(e, s, s->n_out))
        finish_seq(e, s, "length");
}

static ssf_sampler_params sampler_params(const ssf_gen_request *r)
{
    return (ssf_sampler_params){.temperature = r->sampling.temperature,
                                .top_p = r->sampling.top_p,
                                .top_k = r->sampling.top_k,
                                .min_p = r->sampling.min_p};
}

static int32_t sample_token(ssf_engine *e, const seq *s, const float *logits)
{
    const ssf_gen_request *r = &e->reqs[s->req];
    ssf_sampler_params p = sampler_params(r);
    return ssf_sample(logits, e->m.n_valid, &p, r->seed, s->n_out, &e->scratch);
}

/* ---- admission ------------------------------------------------------------ */

static int n_running(const ssf_engine *e)
{
    int n = 0;
    for (int i = 0; i < e->n_live; i++)
        n += e->live[i]->state != SEQ_PREEMPTED;
    return n;
}

/* Sequences that take part in a step: running and resuming samples and
 * prompts being prefilled; at most the device's n_slots. */
static int n_stepping(const ssf_engine *e)
{
    int n = n_running(e);
    for (size_t i = 0; i < e->n_groups; i++)
        n += e->groups[i].state == GROUP_PREFILLING;
    return n;
}

static int free_blocks(const ssf_engine *e)
{
    return e->pool.n_free;
}

/* A vocabulary of floats a prompt (600 KB for Qwen's), so held only while
 * its samples start: a whole evaluation is one call of thousands. */
static void keep_logits(ssf_engine *e, group *g, const float *row)
{
    size_t bytes = (size_t)e->m.vocab_size * sizeof(float);
    if (!g->logits) {
        g->logits = ssf_xmalloc(bytes);
        if (++e->prompts_holding_logits > e->stats.peak_prompt_logits)
            e->stats.peak_prompt_logits = e->prompts_holding_logits;
    }
    memcpy(g->logits, row, bytes);
}

static void drop_logits(ssf_engine *e, group *g)
{
    if (!g->logits) return;
    free(g->logits);
    g->logits = NULL;
    ssf_sampler_kept_free(&g->first);
    e->prompts_holding_logits--;
}

static int same_params(const ssf_sampler_params *a, const ssf_sampler_params *b)
{
    return a->temperature == b->temperature && a->top_p == b->top_p && a->top_k == b->top_k &&
           a->min_p == b->min_p;
}

/* Sample s's first token, drawn from its prompt's logits.  The filters run
 * once for the samples of a prompt that share their parameters, as they
 * nearly always do: they are most of a draw's time (1-2 ms on Qwen's
 * vocabulary), and a prompt has 32 or 64 samples whose draws hold up the
 * device's next step. */
static int32_t first_token(ssf_engine *e, group *g, const seq *s)
{
    const ssf_gen_request *r = &e->reqs[s->req];
    ssf_sampler_params p = sampler_params(r);
    if (!g->first.id || !same_params(&p, &g->first_params)) {
        ssf_sampler_keep(g->logits, e->m.n_valid, &p, &e->scratch, &g->first);
        g->first_params = p;
    }
    return ssf_sample_kept(&g->first, r->seed, s->n_out);
}

/* Starts sample g->next: it shares the prompt's blocks (the last one takes
 * them over) and draws its first token from the prompt's logits. */
static void start_sample(ssf_engine *e, group *g)
{
    seq *s = ssf_xcalloc(1, sizeof *s);
    s->req = g->reqs[g->next++];
    s->g = g;
    s->t_start = ssf_monotonic_seconds();
    s->order = e->next_order++;
    s->state = SEQ_RUNNING;
    if (g->next == g->n_reqs) {
        s->table = g->table;
        memset(&g->table, 0, sizeof g->table);
        g->state = GROUP_DONE;
    } else {
        ssf_kv_fork(&e->pool, &g->table, &s->table);
        e->stats.forks++;
    }
    add_live(e, s);
    accept_token(e, s, first_token(e, g, s));
    if (g->state == GROUP_DONE) drop_logits(e, g);
}

static int n_preempted(const ssf_engine *e)
{
    int n = 0;
    for (int i = 0; i < e->n_live; i++)
        n += e->live[i]->state == SEQ_PREEMPTED;
    return n;
}

/* The preempted sample that has waited longest (started first). */
static seq *oldest_preempted(const ssf_engine *e)
{
    seq *best = NULL;
    for (int i = 0; i < e->n_live; i++) {
        seq *s = e->live[i];
        if (s->state == SEQ_PREEMPTED && (!best || s->order < best->order)) best = s;
    }
    return best;
}

static int blocks_for(const ssf_engine *e, size_t positions)
{
    return (int)((positions + (size_t)e->pool.block_size - 1) / (size_t)e->pool.block_size);
}

/* Takes the blocks of n positions for a table that holds none: new work
 * gets all its blocks when admitted, so a prompt or a recompute never
 * stalls half-way for want of blocks. */
static void reserve(ssf_engine *e, ssf_kv_table *t, size_t n)
{
    ssf_block_copy unused;
    ssf_kv_grow(&e->pool, t, (int)n, &unused); /* fresh blocks: never a copy */
}

/* Preempted samples come back first, each once its whole KV fits.  With a
 * deferring device, its last token is known by then: it was preempted as
 * step n was built, so it has no row in step n, and step n - 1, which drew
 * that token, was collected once step n was queued. */
static void resume_preempted(ssf_engine *e)
{
    seq *s;
    while ((s = oldest_preempted(e)) && n_stepping(e) < e->m.device->n_slots &&
           blocks_for(e, seq_kv_len(s)) + e->watermark <= free_blocks(e)) {
        reserve(e, &s->table, seq_kv_len(s));
        s->recomputed = 0;
        s->state = SEQ_RESUMING;
    }
}

/* Forks cost no blocks at once (the prompt's are shared), so they go on
 * while sequences may be added; they wait behind preempted samples unless
 * nothing runs. */
static void fork_ready(ssf_engine *e, group *g)
{
    while (g->state == GROUP_READY && n_stepping(e) < e->m.device->n_slots &&
           free_blocks(e) >= e->watermark && (n_preempted(e) == 0 || n_running(e) == 0))
        start_sample(e, g);
}

/* The first group not yet done whose prompt still needs a prefill; one
 * prompt is prefilled or forked at a time. */
static group *next_waiting(ssf_engine *e)
{
    while (e->next_group < e->n_groups) {
        group *g = &e->groups[e->next_group];
        if (g->state == GROUP_WAITING) return g;
        if (g->state != GROUP_DONE) return NULL;
        e->next_group++;
    }
    return NULL;
}

static void admit(ssf_engine *e)
{
    resume_preempted(e);
    for (size_t i = 0; i < e->n_groups; i++)
        fork_ready(e, &e->groups[i]);
    group *g = next_waiting(e);
    if (g && n_preempted(e) == 0 && n_stepping(e) < e->m.device->n_slots &&
        blocks_for(e, g->n_ids) + e->watermark <= free_blocks(e)) {
        reserve(e, &g->table, g->n_ids);
        g->prefilled = 0;
        g->state = GROUP_PREFILLING;
    }
}

/* ---- preemption ----------------------------------------------------------- */

/* The running (or resuming) sample started last. */
static seq *youngest_running(const ssf_engine *e)
{
    seq *best = NULL;
    for (int i = 0; i < e->n_live; i++) {
        seq *s = e->live[i];
        if (s->state != SEQ_PREEMPTED && (!best || s->order > best->order)) best = s;
    }
    return best;
}

/* Whether a sample takes a decode row this step: it runs, and no token in
 * flight ends it by its budget or the context (it waits for that token). */
static int takes_row(const ssf_engine *e, const seq *s)
{
    return s->state == SEQ_RUNNING && !(s->inflight && at_length(e, s, s->n_out + 1));
}

/* Blocks the running samples need to feed one token each. */
static int decode_blocks_needed(const ssf_engine *e)
{
    int need = 0;
    for (int i = 0; i < e->n_live; i++)
        if (takes_row(e, e->live[i])) need += ssf_kv_blocks_needed(&e->pool, &e->live[i]->table, 1);
    return need;
}

/* Gives back the blocks prompts hold that no running sample needs yet: a
 * prompt being prefilled, or one prefilled whose samples have not all
 * started.  Such a prompt waits again and is computed again later.  A
 * prompt whose last rows are in a step in flight keeps its blocks: that
 * step's logits will make it ready.  Returns how many prompts gave back. */
static int release_prompts(ssf_engine *e)
{
    int n = 0;
    for (size_t i = 0; i < e->n_groups; i++) {
        group *g = &e->groups[i];
        int in_flight = g->state == GROUP_PREFILLING && g->prefilled == g->n_ids && e->flying >= 0;
        if ((g->state != GROUP_PREFILLING && g->state != GROUP_READY) || in_flight) continue;
        ssf_kv_release(&e->pool, &g->table);
        drop_logits(e, g); /* made again with the prompt */
        g->prefilled = 0;
        g->state = GROUP_WAITING;
        n++;
    }
    return n;
}

/* Why a prompt of n tokens cannot run, and the fix there is: a longer
 * --max-context where the model takes more, else none but a shorter
 * prompt (every rerun would fail it the same way). */
static void too_long(const ssf_engine *e, size_t n, char *why, size_t size)
{
    int ctx = e->m.device->max_context, most = e->m.max_positions;
    if (most > ctx)
        snprintf(why, size,
                 "engine: the prompt has %zu tokens, the context holds %d; raise --max-context "
                 "(the model takes up to %d)",
                 n, ctx, most);
    else if (most == 0)
        snprintf(why, size,
                 "engine: the prompt has %zu tokens, the context holds %d; raise "
                 "--max-context",
                 n, ctx);
    else
        snprintf(why, size,
                 "engine: the prompt has %zu tokens, more than the model's %d positions "
                 "(max_position_embeddings): this question cannot run on this model; shorten its "
                 "prompt",
                 n, most);
}

/* Frees blocks by recompute preemption until every running sample can take
 * its next token.  A sample alone that cannot grow, once no prompt holds
 * blocks for later, has outgrown the pool. */
static void preempt_for_decode(ssf_engine *e)
{
    while (decode_blocks_needed(e) > free_blocks(e)) {
        seq *s = youngest_running(e);
        if (n_running(e) == 1 && s->state == SEQ_RUNNING) {
            if (release_prompts(e)) continue;
            fail_seq(e, s,
                     "engine: the KV pool cannot hold this sample; raise --kv-blocks or lower "
                     "--max-context");
            return;
        }
        ssf_kv_release(&e->pool, &s->table);
        s->state = SEQ_PREEMPTED;
        e->stats.preemptions++;
    }
}

/* ---- one step ------------------------------------------------------------- */

typedef struct batch {
    int n_rows, n_out, n_seqs, n_prefill, n_fed;
} batch;

static int batch_seq(ssf_engine *e, batch *b, seq *s, group *g)
{
    e->seq_owner[b->n_seqs] = (row_owner){s, g};
    return b->n_seqs++;
}

static int add_row(ssf_engine *e, batch *b, int32_t token, size_t pos, int seq_index)
{
    e->row_token[b->n_rows] = token;
    e->row_pos[b->n_rows] = (int32_t)pos;
    e->row_seq[b->n_rows] = seq_index;
    e->row_feed[b->n_rows] = -1;
    return b->n_rows++;
}

static void add_out(ssf_engine *e, batch *b, int row, seq *s, group *g)
{
    e->out_rows[b->n_out] = row;
    e->out_owner[b->n_out] = (row_owner){s, g};
    b->n_out++;
}

/* top_k as the device takes it: any k past INT32_MAX keeps the whole
 * vocabulary, as INT32_MAX does (a plain cast could make it 1: greedy).
 * (min_p goes capped at 1, as the CPU sampler caps it: the largest stays.) */
static int32_t top_k_of(const ssf_sampling *s)
{
    return s->top_k > INT32_MAX ? INT32_MAX : (int32_t)s->top_k;
}

/* A running sample's row whose token the device draws itself: draw
 * number n_out + inflight, its tokens in flight counted. */
static void add_sampled(ssf_engine *e, int row, seq *s)
{
    const ssf_gen_request *r = &e->reqs[s->req];
    flight *f = &e->flights[e->building];
    e->sample_rows[f->n] = row;
    e->specs[f->n] = (ssf_sample_spec){.temperature = r->sampling.temperature,
                                       .top_p = r->sampling.top_p,
                                       .min_p = fmin(r->sampling.min_p, 1.0),
                                       .top_k = top_k_of(&r->sampling),
                                       .seed = r->seed,
                                       .step = s->n_out + (size_t)s->inflight};
    f->owner[f->n] = s;
    s->drawn_at = f->n++;
    s->inflight++;
}

/* Grows a table, noting the copy of a shared block the device must make. */
static int grow(ssf_engine *e, ssf_kv_table *t, int n)
{
    ssf_block_copy c;
    int rc = ssf_kv_grow(&e->pool, t, n, &c);
    if (rc == 1) e->copies[e->n_copies++] = c;
    return rc < 0 ? -1 : 0;
}

/* One row per running sample: its last token at the next position.  A
 * token still in flight is fed on the device from the step that drew it;
 * a sample that token will end (its budget, the context) waits for it. */
static void add_decode_rows(ssf_engine *e, batch *b)
{
    for (int i = 0; i < e->n_live; i++) {
        seq *s = e->live[i];
        if (!takes_row(e, s)) continue;
        size_t pos = s->table.n_tokens;
        grow(e, &s->table, 1); /* cannot fail: preempt_for_decode made room */
        int32_t token = s->inflight ? -1 : s->out[s->n_out - 1];
        int row = add_row(e, b, token, pos, batch_seq(e, b, s, NULL));
        if (s->inflight) e->row_feed[row] = s->drawn_at, b->n_fed++;
        if (e->m.device->can_sample)
            add_sampled(e, row, s);
        else
            add_out(e, b, row, s, NULL);
    }
}

/* Room for n more prefill rows this step. */
static int prefill_room(const ssf_engine *e, const batch *b, int budget)
{
    int rows = e->m.device->max_rows - b->n_rows;
    return budget < rows ? budget : rows;
}

/* Recomputes a preempted sample's KV (no logits: its next token is known). */
static void add_resume_rows(ssf_engine *e, batch *b, seq *s, int *budget)
{
    size_t want = seq_kv_len(s) - s->recomputed;
    int n = prefill_room(e, b, *budget);
    if ((size_t)n > want) n = (int)want;
    if (n <= 0) return;
    int index = batch_seq(e, b, s, NULL);
    for (int i = 0; i < n; i++, s->recomputed++)
        add_row(e, b, seq_token_at(s, s->recomputed), s->recomputed, index);
    *budget -= n;
    b->n_prefill += n;
    e->stats.recomputed_tokens += n;
}

static void add_prompt_rows(ssf_engine *e, batch *b, group *g, int *budget)
{
    size_t want = g->n_ids - g->prefilled;
    int n = prefill_room(e, b, *budget);
    if ((size_t)n > want) n = (int)want;
    if (n <= 0) return;
    int index = batch_seq(e, b, NULL, g), row = -1;
    for (int i = 0; i < n; i++, g->prefilled++)
        row = add_row(e, b, g->ids[g->prefilled], g->prefilled, index);
    if (g->prefilled == g->n_ids) add_out(e, b, row, NULL, g);
    *budget -= n;
    b->n_prefill += n;
}

static void add_prefill_rows(ssf_engine *e, batch *b)
{
    int budget = e->o.prefill_chunk;
    for (int i = 0; i < e->n_live && budget > 0; i++)
        if (e->live[i]->state == SEQ_RESUMING) add_resume_rows(e, b, e->live[i], &budget);
    for (size_t i = 0; i < e->n_groups && budget > 0; i++)
        if (e->groups[i].state == GROUP_PREFILLING) add_prompt_rows(e, b, &e->groups[i], &budget);
}

/* Tables are gathered last: growing a table may move its block array. */
static void gather_tables(ssf_engine *e, const batch *b)
{
    for (int i = 0; i < b->n_seqs; i++) {
        row_owner o = e->seq_owner[i];
        e->tables[i] = o.s ? o.s->table.blocks : o.g->table.blocks;
    }
}

/* The logits rows, which a device hands back before forward returns. */
static void take_logits(ssf_engine *e, const batch *b)
{
    size_t vocab = (size_t)e->m.vocab_size;
    for (int i = 0; i < b->n_out; i++) {
        const float *row = e->logits + (size_t)i * vocab;
        row_owner o = e->out_owner[i];
        if (o.g) {
            keep_logits(e, o.g, row);
            o.g->state = GROUP_READY;
        } else {
            accept_token(e, o.s, sample_token(e, o.s, row));
        }
    }
}

/* A recomputed sample whose KV is whole again runs from the next step. */
static void end_resumes(ssf_engine *e)
{
    for (int i = 0; i < e->n_live; i++) {
        seq *s = e->live[i];
        if (s->state == SEQ_RESUMING && s->recomputed == seq_kv_len(s)) s->state = SEQ_RUNNING;
    }
}

/* A step's time runs from its start, or from the collection of the step
 * before when it was queued behind it, to its own collection: with a
 * deferring device the steps' times tile the device's busy time. */
static void count_step(ssf_engine *e, const flight *f)
{
    double now = ssf_monotonic_seconds(), dt = now - e->t_mark;
    e->t_mark = now;
    e->stats.steps++;
    e->stats.prefill_tokens += f->n_prefill;
    e->stats.decode_tokens += f->n_rows - f->n_prefill;
    e->stats.block_copies += f->n_copies;
    /* a mixed step's time is shared by its rows */
    e->stats.prefill_s += dt * f->n_prefill / f->n_rows;
    e->stats.decode_s += dt * (f->n_rows - f->n_prefill) / f->n_rows;
}

/* Takes flight i's ids (a deferred step's once the device hands them
 * over); the rows of samples dropped since are thrown away. */
static int collect(ssf_engine *e, int i, int deferred, ssf_error *err)
{
    ssf_device *d = e->m.device;
    if (deferred && d->collect(d, err)) return -1;
    flight *f = &e->flights[i];
    count_step(e, f);
    for (int j = 0; j < f->n; j++) {
        seq *s = f->owner[j];
        if (!s) {
            e->stats.discarded_rows++;
            continue;
        }
        f->owner[j] = NULL;
        s->inflight--;
        accept_token(e, s, f->sampled[j]);
    }
    f->n = 0;
    return 0;
}

/* Collects the step in flight, if any: when no step is left to build, and
 * at the end of a call (every sample has ended or failed by then, so all
 * its rows are thrown away). */
static int drain(ssf_engine *e, ssf_error *err)
{
    int i = e->flying;
    e->flying = -1;
    return i < 0 ? 0 : collect(e, i, 1, err);
}

/* Runs the built step.  A deferring device returns once it is queued;
 * the step before it is then collected while it runs, and the next one is
 * built into the other flight. */
static int launch(ssf_engine *e, const batch *b, ssf_error *err)
{
    ssf_device *d = e->m.device;
    flight *f = &e->flights[e->building];
    f->n_rows = b->n_rows, f->n_prefill = b->n_prefill, f->n_copies = e->n_copies;
    if (e->flying < 0) e->t_mark = ssf_monotonic_seconds();
    if (e->n_copies && d->copy_blocks(d, e->copies, e->n_copies, err)) return -1;
    ssf_fwd_batch fb = {.n_rows = b->n_rows,
                        .token = e->row_token,
                        .pos = e->row_pos,
                        .seq = e->row_seq,
                        .n_seqs = b->n_seqs,
                        .tables = e->tables,
                        .n_out = b->n_out,
                        .out_rows = e->out_rows,
                        .n_sample = f->n,
                        .sample_rows = e->sample_rows,
                        .sample = e->specs,
                        .sampled = f->sampled,
                        .n_valid = e->m.n_valid,
                        .feed = b->n_fed ? e->row_feed : NULL,
                        .defer = d->can_defer};
    if (d->forward(d, &fb, e->logits, err)) return -1;
    /* a synchronous step is counted first: the forward's time alone */
    int rc = d->can_defer ? 0 : collect(e, e->building, 0, err);
    take_logits(e, b);
    end_resumes(e);
    if (!d->can_defer) return rc;
    int before = e->flying;
    e->flying = e->building;
    e->building ^= 1;
    return before < 0 ? 0 : collect(e, before, 1, err);
}

static int step(ssf_engine *e, ssf_error *err)
{
    size_t finished = e->n_finished;
    preempt_for_decode(e);
    batch b = {0};
    e->n_copies = 0;
    e->flights[e->building].n = 0;
    add_decode_rows(e, &b);
    add_prefill_rows(e, &b);
    if (b.n_rows == 0) {
        /* what is left waits on the step in flight */
        if (e->flying >= 0) return drain(e, err);
        /* a sample failed for want of blocks: the next admission decides */
        if (e->n_finished == e->n_reqs || e->n_finished > finished) return 0;
        return ssf_fail(err, "engine: scheduler stalled with work left (a bug)");
    }
    gather_tables(e, &b);
    return launch(e, &b, err);
}

/* ---- grouping requests by prompt ----------------------------------------- */

static int by_prompt(const void *a, const void *b, void *reqs)
{
    const ssf_gen_request *r = reqs;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(r[x].prompt, r[y].prompt);
    if (c) return c;
    return x < y ? -1 : x > y;
}

/* Groups requests with the same prompt text, in the order their first
 * request came. */
static void make_groups(ssf_engine *e)
{
    size_t n = e->n_reqs;
    size_t *order = ssf_xmalloc((n ? n : 1) * sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof *order, by_prompt, (void *)e->reqs);
    e->groups = ssf_xcalloc(n ? n : 1, sizeof *e->groups);
    e->n_groups = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(e->reqs[order[j]].prompt, e->reqs[order[i]].prompt) == 0)
            j++;
        group *g = &e->groups[e->n_groups++];
        g->prompt = e->reqs[order[i]].prompt;
        g->n_reqs = j - i;
        g->reqs = ssf_xmalloc(g->n_reqs * sizeof *g->reqs);
        memcpy(g->reqs, order + i, g->n_reqs * sizeof *g->reqs);
        i = j;
    }
    free(order);
}

static int group_first_req(const void *a, const void *b)
{
    const group *x = a, *y = b;
    return x->reqs[0] < y->reqs[0] ? -1 : x->reqs[0] > y->reqs[0];
}

/* Whether the prompt holds an id past the model's vocabulary (a tokenizer
 * with more ids than the embedding has rows), with why set if so. */
static int outside_vocab(const ssf_engine *e, const group *g, char *why, size_t size)
{
    for (size_t i = 0; i < g->n_ids; i++)
        if (g->ids[i] < 0 || g->ids[i] >= e->m.vocab_size) {
            snprintf(why, size,
                     "engine: the prompt holds token %d, outside the model's vocabulary of %d; "
                     "the tokenizer does not match the checkpoint",
                     (int)g->ids[i], e->m.vocab_size);
            return 1;
        }
    return 0;
}

/* Tokenizes every prompt up front; a prompt that cannot run fails its
 * samples now instead of holding a slot. */
static void tokenize_prompts(ssf_engine *e)
{
    qsort(e->groups, e->n_groups, sizeof *e->groups, group_first_req);
    for (size_t i = 0; i < e->n_groups; i++) {
        group *g = &e->groups[i];
        ssf_error err;
        char why[SSF_ERROR_MAX + 64];
        if (e->m.encode(e->m.ud, g->prompt, &g->ids, &g->n_ids, &err)) {
            snprintf(why, sizeof why, "engine: tokenizing the prompt: %s", err.msg);
            fail_group_rest(e, g, why);
        } else if (g->n_ids == 0) {
            fail_group_rest(e, g, "engine: the prompt is empty");
        } else if (g->n_ids >= (size_t)e->m.device->max_context) {
            too_long(e, g->n_ids, why, sizeof why);
            fail_group_rest(e, g, why);
        } else if (outside_vocab(e, g, why, sizeof why)) {
            fail_group_rest(e, g, why); /* this prompt cannot run; the others can */
        } else if (blocks_for(e, g->n_ids) + e->watermark > e->pool.n_blocks) {
            snprintf(why, sizeof why,
                     "engine: the prompt needs %d KV blocks and %d kept free, the pool has %d; "
                     "raise --kv-blocks",
                     blocks_for(e, g->n_ids), e->watermark, e->pool.n_blocks);
            fail_group_rest(e, g, why);
        }
    }
}

static void release_groups(ssf_engine *e)
{
    for (size_t i = 0; i < e->n_groups; i++) {
        ssf_kv_release(&e->pool, &e->groups[i].table);
        free(e->groups[i].ids);
        free(e->groups[i].reqs);
        drop_logits(e, &e->groups[i]);
    }
    free(e->groups);
    e->groups = NULL;
    e->n_groups = 0;
}

/* Fails whatever has not finished (interrupt or device error). */
static void fail_unfinished(ssf_engine *e, const char *why)
{
    while (e->n_live > 0)
        fail_seq(e, e->live[e->n_live - 1], why);
    for (size_t i = 0; i < e->n_groups; i++)
        if (e->groups[i].state != GROUP_DONE) fail_group_rest(e, &e->groups[i], why);
}

static void log_progress(ssf_engine *e, double *last)
{
    double t = ssf_monotonic_seconds();
    if (!e->o.log_progress || t - *last < 10) return;
    *last = t;
    double dt = e->stats.decode_s > 0 ? e->stats.decode_s : 1e-9;
    fprintf(stderr,
            "engine: %zu/%zu samples, %d running, %d KV blocks free, %.0f decode tok/s, "
            "%lld preemptions\n",
            e->n_finished, e->n_reqs, n_running(e), free_blocks(e),
            (double)e->stats.decode_tokens / dt, (long long)e->stats.preemptions);
}

int ssf_engine_generate(ssf_engine *e, const ssf_gen_request *reqs, size_t n, ssf_gen_done_fn done,
                        void *ud, ssf_error *err)
{
    e->reqs = reqs;
    e->n_reqs = n;
    e->n_finished = 0;
    e->done = done;
    e->ud = ud;
    e->stop_rc = 0;
    e->next_group = 0;
    e->n_live = 0;
    make_groups(e);
    tokenize_prompts(e);
    int rc = 0;
    double last_log = ssf_monotonic_seconds();
    while (rc == 0 && e->n_finished < n && !e->stop_rc) {
        if (e->o.interrupt && *e->o.interrupt) {
            fail_unfinished(e, "engine: interrupted before this sample finished");
            break;
        }
        admit(e);
        if (e->n_finished < n) rc = step(e, err);
        log_progress(e, &last_log);
    }
    /* a device error fails what is left; a stop asked by `done` reports
     * nothing more (report() is silent then) but frees it all the same */
    if (rc) {
        ssf_error copy = *err; /* failing samples must not overwrite the call's error */
        fail_unfinished(e, copy.msg);
    } else {
        fail_unfinished(e, "engine: stopped before this sample finished");
    }
    /* a step may still be queued (its rows' samples have ended): a fault
     * there is the call's if it has none */
    ssf_error drained;
    if (drain(e, rc ? &drained : err)) rc = -1;
    release_groups(e);
    return rc ? -1 : e->stop_rc;
}
