/*
 * engine.c - the scheduler of the in-process engine: prompts prefilled once,
 * samples forked from them, one token per running sample every step, slots
 * recycled as samples finish.  Device arithmetic is behind device.h, token
 * choice in sampler.c.
 */
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sampler.h"

enum group_state { GROUP_WAITING, GROUP_PREFILLING, GROUP_READY, GROUP_DONE };

/* The samples of one prompt. */
typedef struct group {
    const char *prompt;
    int32_t *ids; /* the prompt's tokens */
    size_t n_ids;
    size_t *reqs; /* indices of its requests */
    size_t n_reqs;
    size_t next;      /* the next sample to start */
    int slot;         /* the slot holding the prompt's KV, -1 */
    size_t prefilled; /* prompt tokens already in the slot */
    float *logits;    /* the last prompt position's logits, once prefilled */
    enum group_state state;
} group;

/* A running sample. */
typedef struct seq {
    size_t req;
    group *g;
    int slot;
    int32_t *out; /* generated ids */
    size_t n_out, cap;
    ssf_buf bytes; /* their raw bytes, for stop strings */
    int32_t feed;  /* the token to feed next step */
    double t_start;
    int active;
} seq;

struct ssf_engine {
    ssf_engine_model m;
    ssf_engine_options o;
    ssf_engine_stats stats;
    ssf_sampler_scratch scratch;
    /* per generate call */
    const ssf_gen_request *reqs;
    size_t n_reqs, n_finished;
    ssf_gen_done_fn done;
    void *ud;
    int stop_rc;
    group *groups;
    size_t n_groups, next_group;
    seq *seqs; /* one per slot */
    int *free_slots;
    int n_free;
    /* one step's batch */
    int32_t *row_token, *row_pos, *row_slot, *out_rows;
    void **out_owner; /* seq or group behind each out row */
    int *out_is_group;
    float *logits;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

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
    int slots = m->device->n_slots, rows = m->device->max_rows;
    e->seqs = ssf_xcalloc((size_t)slots, sizeof *e->seqs);
    e->free_slots = ssf_xcalloc((size_t)slots, sizeof *e->free_slots);
    e->row_token = ssf_xcalloc((size_t)rows, sizeof(int32_t));
    e->row_pos = ssf_xcalloc((size_t)rows, sizeof(int32_t));
    e->row_slot = ssf_xcalloc((size_t)rows, sizeof(int32_t));
    e->out_rows = ssf_xcalloc((size_t)rows, sizeof(int32_t));
    e->out_owner = ssf_xcalloc((size_t)rows, sizeof(void *));
    e->out_is_group = ssf_xcalloc((size_t)rows, sizeof(int));
    e->logits = ssf_xmalloc((size_t)rows * (size_t)m->vocab_size * sizeof(float));
    return e;
}

void ssf_engine_free(ssf_engine *e)
{
    if (!e) return;
    ssf_sampler_scratch_free(&e->scratch);
    free(e->seqs);
    free(e->free_slots);
    free(e->row_token);
    free(e->row_pos);
    free(e->row_slot);
    free(e->out_rows);
    free(e->out_owner);
    free(e->out_is_group);
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

/* ---- slots ---------------------------------------------------------------- */

static int take_slot(ssf_engine *e)
{
    return e->n_free > 0 ? e->free_slots[--e->n_free] : -1;
}

static void give_slot(ssf_engine *e, int slot)
{
    e->free_slots[e->n_free++] = slot;
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
                              .latency_ms = (now_s() - s->t_start) * 1e3,
                              .attempts = 1,
                              .token_ids = s->out,
                              .n_token_ids = s->n_out};
        report(e, s->req, &res);
    }
    free(text);
    free(s->out);
    ssf_buf_free(&s->bytes);
    give_slot(e, s->slot);
    memset(s, 0, sizeof *s);
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

/* Takes a sampled token: stop on eos, a stop string, the token budget or
 * the context limit; otherwise it is fed next step. */
static void accept_token(ssf_engine *e, seq *s, int32_t t)
{
    const ssf_gen_request *r = &e->reqs[s->req];
    if (t < 0) {
        ssf_buf_free(&s->bytes);
        free(s->out);
        give_slot(e, s->slot);
        report_failure(e, s->req, "engine: the logits had no finite value (a numerical fault)");
        memset(s, 0, sizeof *s);
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
    long budget = r->sampling.max_new_tokens;
    if (hits_stop(e, s, len))
        finish_seq(e, s, "stop");
    else if (budget > 0 && (long)s->n_out >= budget)
        finish_seq(e, s, "length");
    else if (s->g->n_ids + s->n_out >= (size_t)e->m.device->max_context)
        finish_seq(e, s, "length");
    else
        s->feed = t;
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

/* Starts sample g->next in `slot`, whose KV already holds the prompt. */
static void start_sample(ssf_engine *e, group *g, int slot)
{
    seq *s = &e->seqs[slot];
    memset(s, 0, sizeof *s);
    s->req = g->reqs[g->next++];
    s->g = g;
    s->slot = slot;
    s->active = 1;
    s->t_start = now_s();
    accept_token(e, s, sample_token(e, s, g->logits));
}

static int running(const ssf_engine *e)
{
    int n = 0;
    for (int i = 0; i < e->m.device->n_slots; i++)
        n += e->seqs[i].active;
    return n;
}

/* Forks the waiting samples of a prefilled prompt into free slots.  The
 * last one inherits the prompt's own slot, so a one-sample prompt costs no
 * copy.  With no free slot and nothing running (a single-slot device), a
 * sample takes the prompt slot and the prompt is prefilled again later. */
static int fork_samples(ssf_engine *e, group *g, ssf_error *err)
{
    while (g->next < g->n_reqs) {
        int last = g->next + 1 == g->n_reqs;
        int slot = last ? -1 : take_slot(e);
        if (slot < 0 && !last && running(e) > 0) return 0;
        if (slot < 0) {
            slot = g->slot;
            g->slot = -1;
            g->state = last ? GROUP_DONE : GROUP_WAITING;
            g->prefilled = 0;
            start_sample(e, g, slot);
            if (!last) e->next_group = (size_t)(g - e->groups);
            return 0;
        }
        if (e->m.device->copy_slot(e->m.device, g->slot, slot, (int)g->n_ids, err)) return -1;
        e->stats.forks++;
        start_sample(e, g, slot);
    }
    return 0;
}

/* The first group not yet done whose prompt still needs a prefill. */
static group *next_waiting(ssf_engine *e)
{
    while (e->next_group < e->n_groups) {
        group *g = &e->groups[e->next_group];
        if (g->state == GROUP_WAITING) return g;
        if (g->state == GROUP_DONE) {
            e->next_group++;
            continue;
        }
        return NULL; /* prefilling or forking: one prompt at a time */
    }
    return NULL;
}

static int admit(ssf_engine *e, ssf_error *err)
{
    for (size_t i = 0; i < e->n_groups; i++) {
        group *g = &e->groups[i];
        if (g->state == GROUP_READY && fork_samples(e, g, err)) return -1;
        if (g->state == GROUP_READY && g->next == g->n_reqs) g->state = GROUP_DONE;
    }
    group *g = next_waiting(e);
    if (g && (g->slot = take_slot(e)) >= 0) {
        g->state = GROUP_PREFILLING;
        g->prefilled = 0;
    }
    return 0;
}

/* ---- one step ------------------------------------------------------------- */

static int add_row(ssf_engine *e, int *n, int32_t token, int32_t pos, int slot)
{
    e->row_token[*n] = token;
    e->row_pos[*n] = pos;
    e->row_slot[*n] = slot;
    return (*n)++;
}

static void add_out(ssf_engine *e, int *n_out, int row, void *owner, int is_group)
{
    e->out_rows[*n_out] = row;
    e->out_owner[*n_out] = owner;
    e->out_is_group[*n_out] = is_group;
    (*n_out)++;
}

/* One decode row per running sample, then prefill rows within the chunk
 * budget and the device's row limit. */
static void build_batch(ssf_engine *e, int *n_rows, int *n_out, int *n_prefill)
{
    *n_rows = *n_out = *n_prefill = 0;
    for (int i = 0; i < e->m.device->n_slots; i++) {
        seq *s = &e->seqs[i];
        if (!s->active) continue;
        int pos = (int)(s->g->n_ids + s->n_out - 1);
        add_out(e, n_out, add_row(e, n_rows, s->feed, pos, s->slot), s, 0);
    }
    int budget = e->o.prefill_chunk;
    for (size_t i = 0; i < e->n_groups && budget > 0; i++) {
        group *g = &e->groups[i];
        if (g->state != GROUP_PREFILLING) continue;
        while (g->prefilled < g->n_ids && budget > 0 && *n_rows < e->m.device->max_rows) {
            int row = add_row(e, n_rows, g->ids[g->prefilled], (int)g->prefilled, g->slot);
            g->prefilled++;
            budget--;
            (*n_prefill)++;
            if (g->prefilled == g->n_ids) add_out(e, n_out, row, g, 1);
        }
    }
}

static void take_outputs(ssf_engine *e, int n_out)
{
    size_t vocab = (size_t)e->m.vocab_size;
    for (int i = 0; i < n_out; i++) {
        const float *row = e->logits + (size_t)i * vocab;
        if (e->out_is_group[i]) {
            group *g = e->out_owner[i];
            g->logits = ssf_xrealloc(g->logits, vocab * sizeof(float));
            memcpy(g->logits, row, vocab * sizeof(float));
            g->state = GROUP_READY;
        } else {
            seq *s = e->out_owner[i];
            accept_token(e, s, sample_token(e, s, row));
        }
    }
}

static int step(ssf_engine *e, ssf_error *err)
{
    int n_rows, n_out, n_prefill;
    build_batch(e, &n_rows, &n_out, &n_prefill);
    if (n_rows == 0) return ssf_fail(err, "engine: scheduler stalled with work left (a bug)");
    ssf_fwd_batch b = {n_rows, e->row_token, e->row_pos, e->row_slot, n_out, e->out_rows};
    double t0 = now_s();
    if (e->m.device->forward(e->m.device, &b, e->logits, err)) return -1;
    double dt = now_s() - t0;
    e->stats.steps++;
    e->stats.prefill_tokens += n_prefill;
    e->stats.decode_tokens += n_rows - n_prefill;
    /* a mixed step's time is shared by its rows */
    e->stats.prefill_s += dt * n_prefill / n_rows;
    e->stats.decode_s += dt * (n_rows - n_prefill) / n_rows;
    take_outputs(e, n_out);
    return 0;
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
        g->slot = -1;
        i = j;
    }
    free(order);
}

static int group_first_req(const void *a, const void *b)
{
    const group *x = a, *y = b;
    return x->reqs[0] < y->reqs[0] ? -1 : x->reqs[0] > y->reqs[0];
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
            snprintf(why, sizeof why,
                     "engine: the prompt has %zu tokens, the context holds %d; raise "
                     "--max-context",
                     g->n_ids, e->m.device->max_context);
            fail_group_rest(e, g, why);
        }
    }
}

static void release_groups(ssf_engine *e)
{
    for (size_t i = 0; i < e->n_groups; i++) {
        free(e->groups[i].ids);
        free(e->groups[i].reqs);
        free(e->groups[i].logits);
    }
    free(e->groups);
    e->groups = NULL;
    e->n_groups = 0;
}

/* Fails whatever has not finished (interrupt or device error). */
static void fail_unfinished(ssf_engine *e, const char *why)
{
    for (int i = 0; i < e->m.device->n_slots; i++) {
        seq *s = &e->seqs[i];
        if (!s->active) continue;
        report_failure(e, s->req, why);
        free(s->out);
        ssf_buf_free(&s->bytes);
        memset(s, 0, sizeof *s);
    }
    for (size_t i = 0; i < e->n_groups; i++)
        if (e->groups[i].state != GROUP_DONE) fail_group_rest(e, &e->groups[i], why);
}

static void log_progress(ssf_engine *e, double *last)
{
    double t = now_s();
    if (!e->o.log_progress || t - *last < 10) return;
    *last = t;
    double dt = e->stats.decode_s > 0 ? e->stats.decode_s : 1e-9;
    fprintf(stderr, "engine: %zu/%zu samples, %d running, %.0f decode tok/s\n", e->n_finished,
            e->n_reqs, running(e), e->stats.decode_tokens / dt);
}

static void reset_slots(ssf_engine *e)
{
    e->n_free = 0;
    for (int i = e->m.device->n_slots - 1; i >= 0; i--)
        e->free_slots[e->n_free++] = i;
    memset(e->seqs, 0, (size_t)e->m.device->n_slots * sizeof *e->seqs);
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
    reset_slots(e);
    make_groups(e);
    tokenize_prompts(e);
    int rc = 0;
    double last_log = now_s();
    while (rc == 0 && e->n_finished < n && !e->stop_rc) {
        if (e->o.interrupt && *e->o.interrupt) {
            fail_unfinished(e, "engine: interrupted before this sample finished");
            break;
        }
        rc = admit(e, err);
        if (rc == 0 && e->n_finished < n) rc = step(e, err);
        log_progress(e, &last_log);
    }
    if (rc) {
        ssf_error copy = *err;
        fail_unfinished(e, copy.msg);
    }
    release_groups(e);
    return rc ? -1 : e->stop_rc;
}
