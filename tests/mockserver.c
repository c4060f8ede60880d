/*
 * mockserver.c - a fault-injecting OpenAI-compatible server on libmicrohttpd
 * (see mockserver.h).
 *
 * One thread per connection: faults sleep (slow answers, token delays,
 * stalls) right in the handler or the stream reader, which with a shared
 * polling thread would hold up every other client.  Sleeps wait on a
 * condition variable so that mockserver_stop never waits for them.
 */
#include "mockserver.h"
#include "mhd-tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#define DEFAULT_MODEL "mock-model"
#define DEFAULT_CHUNKS 4
#define MAX_BODY (64u << 20)
#define CREATED 1700000000
#define CONNECTION_LIMIT 16384u
#define STACK_SIZE ((size_t)256 << 10)

struct key_stat {
    uint64_t key;
    unsigned attempts, served;
    int used;
};

struct mockserver {
    struct MHD_Daemon *daemon;
    unsigned port;
    struct mockserver_options o;
    mhd_tls tls;
    char *model;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* broadcast on stop, to end sleeps early */
    int stopping;
    struct mockserver_stats stats;
    size_t open_connections;
    unsigned health_polls;
    struct key_stat *keys;
    size_t keys_cap, keys_len;
    char *last_request;
    int log; /* $MOCKSERVER_LOG set: log_request */
};

/* Per-request state: the body as it arrives. */
struct request {
    ssf_buf body;
    int too_big;
};

/* A generation request, parsed. */
struct gen {
    int chat;
    char *prompt; /* chat: the last user message */
    long n;       /* as asked */
    uint64_t seed, key;
    int has_seed, stream, include_usage;
};

/* ---- the deterministic text ------------------------------------------- */

static uint32_t prompt_hash(const char *p)
{
    uint32_t h = 2166136261u;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

unsigned mockserver_expected_answer(uint64_t seed)
{
    return (unsigned)(seed % 7);
}

void mockserver_expected(uint64_t seed, const char *prompt, char **reasoning, char **content)
{
    ssf_buf r = {0}, c = {0};
    ssf_buf_printf(&r,
                   "Reasoning for seed %" PRIu64 " on prompt %08" PRIx32
                   ": there are %u cases, so I check each of them in turn.\n\n",
                   seed, prompt_hash(prompt), (unsigned)(seed % 97));
    ssf_buf_printf(&c, "Therefore, the final answer is: $\\boxed{%u}$. I hope it is correct.",
                   mockserver_expected_answer(seed));
    *reasoning = ssf_buf_take(&r);
    *content = ssf_buf_take(&c);
}

char *mockserver_expected_text(uint64_t seed, const char *prompt)
{
    char *r, *c;
    mockserver_expected(seed, prompt, &r, &c);
    ssf_buf b = {0};
    ssf_buf_puts(&b, r);
    ssf_buf_puts(&b, c);
    free(r);
    free(c);
    return ssf_buf_take(&b);
}

/* Words stand in for tokens in the usage numbers. */
static json_int_t count_words(const char *s)
{
    json_int_t n = 0;
    for (int in = 0; s && *s; s++) {
        int space = *s == ' ' || *s == '\n';
        n += !space && !in;
        in = !space;
    }
    return n;
}

/* ---- counters ---------------------------------------------------------- */

static size_t key_slot(const struct key_stat *t, size_t cap, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
    while (t[i].used && t[i].key != key)
        i = (i + 1) & (cap - 1);
    return i;
}

/* The caller holds the lock. */
static struct key_stat *key_stat(struct mockserver *s, uint64_t key)
{
    if (2 * (s->keys_len + 1) > s->keys_cap) {
        size_t cap = s->keys_cap ? 2 * s->keys_cap : 1024;
        struct key_stat *t = ssf_xcalloc(cap, sizeof *t);
        for (size_t i = 0; i < s->keys_cap; i++)
            if (s->keys[i].used) t[key_slot(t, cap, s->keys[i].key)] = s->keys[i];
        free(s->keys);
        s->keys = t;
        s->keys_cap = cap;
    }
    struct key_stat *k = &s->keys[key_slot(s->keys, s->keys_cap, key)];
    if (!k->used) {
        k->used = 1;
        k->key = key;
        s->keys_len++;
    }
    return k;
}

static void count_status(struct mockserver *s, unsigned status)
{
    pthread_mutex_lock(&s->lock);
    s->stats.status[status < 600 ? status : 0]++;
    pthread_mutex_unlock(&s->lock);
}

static void count_served(struct mockserver *s, uint64_t seed, long n)
{
    pthread_mutex_lock(&s->lock);
    for (long i = 0; i < n; i++)
        key_stat(s, seed + (uint64_t)i)->served++;
    s->stats.choices += (size_t)n;
    pthread_mutex_unlock(&s->lock);
}

/* Counts the request and returns which attempt of its key it is. */
static unsigned count_attempt(struct mockserver *s, const struct gen *g, const ssf_buf *body)
{
    pthread_mutex_lock(&s->lock);
    unsigned attempt = key_stat(s, g->key)->attempts++;
    s->stats.generations++;
    if (g->n > 1) s->stats.multi_n++;
    if (g->n > s->stats.max_n) s->stats.max_n = g->n;
    free(s->last_request);
    s->last_request = ssf_xstrndup(body->data ? body->data : "", body->len);
    pthread_mutex_unlock(&s->lock);
    return attempt;
}

static enum mock_fault pick_fault(const struct mockserver *s, uint64_t key, unsigned attempt)
{
    for (size_t i = 0; i < MOCK_MAX_RULES; i++) {
        const struct mock_rule *r = &s->o.rules[i];
        if (r->fault == MOCK_OK || attempt < r->from) continue;
        if (r->count && attempt - r->from >= r->count) continue;
        if (r->mod && key % r->mod != r->rem) continue;
        return r->fault;
    }
    return MOCK_OK;
}

/* Sleeps ms milliseconds, or less when the server stops. */
static void nap(struct mockserver *s, unsigned ms)
{
    if (!ms) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->lock);
}

/* ---- plain responses --------------------------------------------------- */

static enum MHD_Result reply(struct mockserver *s, struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *r)
{
    if (!r) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    count_status(s, status);
    return ret;
}

static struct MHD_Response *text_response(char *text, size_t len, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return r;
}

static struct MHD_Response *json_response(json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text ? text_response(text, strlen(text), "application/json") : NULL;
}

static enum MHD_Result reply_json(struct mockserver *s, struct MHD_Connection *c, unsigned status,
                                  json_t *body)
{
    return reply(s, c, status, json_response(body));
}

/* OpenAI, Ollama and new vLLM: {"error": {...}}. */
static json_t *nested_error(const char *message, const char *type, json_t *code)
{
    return json_pack("{s:{s:s,s:s,s:n,s:o}}", "error", "message", message, "type", type, "param",
                     "code", code ? code : json_null());
}

/* SGLang and old vLLM: {"object": "error", ...}. */
static json_t *flat_error(const char *message, const char *type, int code)
{
    return json_pack("{s:s,s:s,s:s,s:n,s:i}", "object", "error", "message", message, "type", type,
                     "param", "code", code);
}

static void add_retry_after(const struct mockserver *s, struct MHD_Response *r)
{
    char v[32];
    if (!r) return;
    if (s->o.retry_after_s > 0) {
        snprintf(v, sizeof v, "%g", s->o.retry_after_s);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (s->o.retry_after_ms > 0) {
        snprintf(v, sizeof v, "%u", s->o.retry_after_ms);
        MHD_add_response_header(r, "retry-after-ms", v);
    }
}

static enum MHD_Result reply_retry_after(struct mockserver *s, struct MHD_Connection *c,
                                         unsigned status, json_t *body)
{
    struct MHD_Response *r = json_response(body);
    add_retry_after(s, r);
    return reply(s, c, status, r);
}

/* Closes the socket with an RST and no response, as a crashed or restarted
 * server looks to its clients. */
static enum MHD_Result reset_connection(struct mockserver *s, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    pthread_mutex_lock(&s->lock);
    s->stats.resets++;
    s->stats.status[0]++;
    pthread_mutex_unlock(&s->lock);
    return MHD_NO;
}

/* Closes the connection in order (FIN) without a response. */
static enum MHD_Result hang_up(struct mockserver *s)
{
    pthread_mutex_lock(&s->lock);
    s->stats.status[0]++;
    pthread_mutex_unlock(&s->lock);
    return MHD_NO;
}

/* ---- request parsing --------------------------------------------------- */

/* Chat content is a string or a list of {"type": "text", "text": ...} parts. */
static char *content_text(const json_t *content)
{
    if (json_is_string(content)) return ssf_xstrdup(json_string_value(content));
    if (!json_is_array(content)) return NULL;
    ssf_buf b = {0};
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t) ssf_buf_puts(&b, t);
    }
    return ssf_buf_take(&b);
}

static char *last_user_message(const json_t *messages)
{
    for (size_t i = json_array_size(messages); i-- > 0;) {
        const json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && strcmp(role, "user") == 0) return content_text(json_object_get(m, "content"));
    }
    return NULL;
}

/* A string, a one-string list, or token ids (kept as their JSON). */
static char *completion_prompt(const json_t *prompt)
{
    if (json_is_string(prompt)) return ssf_xstrdup(json_string_value(prompt));
    if (json_is_array(prompt) && json_array_size(prompt) == 1 &&
        json_is_string(json_array_get(prompt, 0)))
        return ssf_xstrdup(json_string_value(json_array_get(prompt, 0)));
    if (json_is_array(prompt) && json_array_size(prompt) > 0)
        return json_dumps(prompt, JSON_COMPACT);
    return NULL;
}

/* NULL when fine, else why the request is refused (a 400). */
static const char *check_sampling(const json_t *root)
{
    static const char *const numbers[] = {"temperature", "top_p", "top_k", "min_p"};
    static const char *const counts[] = {"max_tokens", "max_completion_tokens", "n", "seed"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const json_t *v = json_object_get(root, numbers[i]);
        if (v && !json_is_number(v) && !json_is_null(v))
            return "a sampling parameter is not a number";
    }
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        const json_t *v = json_object_get(root, counts[i]);
        if (v && !json_is_integer(v) && !json_is_null(v)) return "a count is not an integer";
    }
    const json_t *stream = json_object_get(root, "stream");
    if (stream && !json_is_boolean(stream) && !json_is_null(stream))
        return "stream is not a boolean";
    return NULL;
}

static const char *parse_gen(const json_t *root, int chat, struct gen *g)
{
    const char *why = check_sampling(root);
    if (why) return why;
    g->chat = chat;
    g->prompt = chat ? last_user_message(json_object_get(root, "messages"))
                     : completion_prompt(json_object_get(root, "prompt"));
    if (!g->prompt) return chat ? "messages has no user message" : "prompt is missing";
    const json_t *n = json_object_get(root, "n");
    g->n = json_is_integer(n) ? (long)json_integer_value(n) : 1;
    if (g->n < 1) return "n must be at least 1";
    const json_t *seed = json_object_get(root, "seed");
    g->has_seed = json_is_integer(seed);
    g->seed = g->has_seed ? (uint64_t)json_integer_value(seed) : 0;
    g->key = g->has_seed ? g->seed : prompt_hash(g->prompt);
    g->stream = json_is_true(json_object_get(root, "stream"));
    g->include_usage =
        json_is_true(json_object_get(json_object_get(root, "stream_options"), "include_usage"));
    return NULL;
}

/* ---- answers ----------------------------------------------------------- */

struct choice_text {
    char *reasoning, *content; /* content NULL: null in chat, "" in completions */
    const char *finish;
};

static void choice_text(const struct mockserver *s, const struct gen *g, long i, int empty,
                        struct choice_text *t)
{
    mockserver_expected(g->seed + (uint64_t)i, g->prompt, &t->reasoning, &t->content);
    t->finish = empty ? "length" : "stop";
    int split = g->chat && s->o.reasoning != MOCK_REASONING_OFF;
    if (!split) {
        /* The reasoning stays in the text, as with no reasoning parser. */
        ssf_buf full = {0};
        ssf_buf_puts(&full, empty ? "" : t->reasoning);
        ssf_buf_puts(&full, empty ? "" : t->content);
        free(t->reasoning);
        free(t->content);
        t->reasoning = NULL;
        t->content = ssf_buf_take(&full);
    } else if (empty) {
        /* lm-eval #3244: the reasoning took every token, content is null. */
        free(t->content);
        t->content = NULL;
    }
}

static void choice_text_free(struct choice_text *t)
{
    free(t->reasoning);
    free(t->content);
}

static const char *reasoning_field(const struct mockserver *s)
{
    return s->o.reasoning == MOCK_REASONING_FIELD ? "reasoning" : "reasoning_content";
}

static json_t *usage_json(const struct gen *g, json_int_t completion)
{
    json_int_t prompt = count_words(g->prompt);
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", prompt, "completion_tokens", completion,
                     "total_tokens", prompt + completion);
}

static json_t *answer_choice(const struct mockserver *s, const struct gen *g, long i,
                             const struct choice_text *t)
{
    if (!g->chat)
        return json_pack("{s:I,s:s,s:n,s:s,s:n}", "index", (json_int_t)i, "text",
                         t->content ? t->content : "", "logprobs", "finish_reason", t->finish,
                         "stop_reason");
    json_t *message = json_pack("{s:s,s:o}", "role", "assistant", "content",
                                t->content ? json_string(t->content) : json_null());
    if (t->reasoning) json_object_set_new(message, reasoning_field(s), json_string(t->reasoning));
    return json_pack("{s:I,s:o,s:n,s:s}", "index", (json_int_t)i, "message", message, "logprobs",
                     "finish_reason", t->finish);
}

static json_t *envelope(const struct mockserver *s, const struct gen *g, int chunk)
{
    char id[64];
    snprintf(id, sizeof id, "%s-mock-%" PRIx64, g->chat ? "chatcmpl" : "cmpl", g->key);
    const char *object = !g->chat ? "text_completion"
                         : chunk  ? "chat.completion.chunk"
                                  : "chat.completion";
    return json_pack("{s:s,s:s,s:i,s:s,s:[]}", "id", id, "object", object, "created", CREATED,
                     "model", s->model, "choices");
}

static json_t *answer_json(const struct mockserver *s, const struct gen *g, long n, int empty)
{
    json_t *root = envelope(s, g, 0), *choices = json_object_get(root, "choices");
    json_int_t words = 0;
    for (long i = 0; i < n; i++) {
        struct choice_text t;
        choice_text(s, g, i, empty, &t);
        words += count_words(t.reasoning) + count_words(t.content);
        json_array_append_new(choices, answer_choice(s, g, i, &t));
        choice_text_free(&t);
    }
    json_object_set_new(root, "usage", usage_json(g, words));
    return root;
}

/* ---- streams ----------------------------------------------------------- */

struct stream {
    struct mockserver *s;
    char **events; /* whole "data: ...\n\n" lines */
    size_t n, next, off;
    size_t cut; /* where a STALL or TRUNCATED fault strikes */
    enum mock_fault fault;
    uint64_t seed; /* counted as served at a clean end */
    long choices;
};

static void add_event(struct stream *st, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    ssf_buf b = {0};
    ssf_buf_printf(&b, "data: %s\n\n", text);
    free(text);
    st->events = ssf_xrealloc(st->events, (st->n + 1) * sizeof *st->events);
    st->events[st->n++] = ssf_buf_take(&b);
}

static void add_raw_event(struct stream *st, const char *line)
{
    st->events = ssf_xrealloc(st->events, (st->n + 1) * sizeof *st->events);
    st->events[st->n++] = ssf_xstrdup(line);
}

/* The deltas of one choice, each a choices[] element. */
struct deltas {
    json_t **items;
    size_t n;
};

static void push_delta(struct deltas *d, json_t *item)
{
    d->items = ssf_xrealloc(d->items, (d->n + 1) * sizeof *d->items);
    d->items[d->n++] = item;
}

static json_t *delta_item(const struct gen *g, long i, const char *field, const char *piece)
{
    if (!g->chat)
        return json_pack("{s:I,s:s,s:n,s:n}", "index", (json_int_t)i, "text", piece, "logprobs",
                         "finish_reason");
    json_t *delta = json_object();
    if (field) json_object_set_new(delta, field, json_string(piece));
    return json_pack("{s:I,s:o,s:n,s:n}", "index", (json_int_t)i, "delta", delta, "logprobs",
                     "finish_reason");
}

/* text in `chunks` pieces, cut at byte offsets (the text is ASCII). */
static void push_pieces(struct deltas *d, const struct gen *g, long i, const char *field,
                        const char *text, unsigned chunks)
{
    size_t len = strlen(text), from = 0;
    for (unsigned j = 1; j <= chunks; j++) {
        size_t to = len * j / chunks;
        if (to == from) continue;
        char *piece = ssf_xstrndup(text + from, to - from);
        push_delta(d, delta_item(g, i, field, piece));
        free(piece);
        from = to;
    }
}

static void choice_deltas(const struct mockserver *s, const struct gen *g, long i, int empty,
                          struct deltas *d)
{
    struct choice_text t;
    unsigned chunks = s->o.chunks ? s->o.chunks : DEFAULT_CHUNKS;
    choice_text(s, g, i, empty, &t);
    if (g->chat) {
        json_t *first = delta_item(g, i, "content", "");
        json_object_set_new(json_object_get(first, "delta"), "role", json_string("assistant"));
        push_delta(d, first);
    }
    if (t.reasoning) push_pieces(d, g, i, reasoning_field(s), t.reasoning, chunks);
    if (t.content) push_pieces(d, g, i, "content", t.content, chunks);
    /* The finish reason rides on a last, empty delta, as vLLM sends it. */
    json_t *last = delta_item(g, i, g->chat ? NULL : "text", "");
    json_object_set_new(last, "finish_reason", json_string(t.finish));
    push_delta(d, last);
    choice_text_free(&t);
}

/* Choices interleave: round r carries delta r of every choice that has one. */
static void build_stream(struct stream *st, const struct gen *g, long n, int empty)
{
    struct deltas *d = ssf_xcalloc((size_t)n, sizeof *d);
    size_t rounds = 0;
    for (long i = 0; i < n; i++) {
        choice_deltas(st->s, g, i, empty, &d[i]);
        if (d[i].n > rounds) rounds = d[i].n;
    }
    json_int_t words = 0;
    for (size_t r = 0; r < rounds; r++)
        for (long i = 0; i < n; i++) {
            if (r >= d[i].n) continue;
            json_t *chunk = envelope(st->s, g, 1);
            json_t *item = d[i].items[r];
            const json_t *delta = json_object_get(item, "delta");
            json_t *piece =
                g->chat ? json_object_get(delta, "content") : json_object_get(item, "text");
            words += count_words(json_string_value(piece));
            words += count_words(json_string_value(json_object_get(delta, reasoning_field(st->s))));
            json_array_append_new(json_object_get(chunk, "choices"), item);
            add_event(st, chunk);
        }
    for (long i = 0; i < n; i++)
        free(d[i].items);
    free(d);
    if (g->include_usage) {
        json_t *chunk = envelope(st->s, g, 1);
        json_object_set_new(chunk, "usage", usage_json(g, words));
        add_event(st, chunk);
    }
    add_raw_event(st, "data: [DONE]\n\n");
}

static void free_stream(void *cls)
{
    struct stream *st = cls;
    for (size_t i = 0; i < st->n; i++)
        free(st->events[i]);
    free(st->events);
    free(st);
}

/* Replaces everything from the cut on with one event (or none) and [DONE]. */
static void cut_stream(struct stream *st, const char *event)
{
    while (st->n > st->cut)
        free(st->events[--st->n]);
    if (event) add_raw_event(st, event);
    add_raw_event(st, "data: [DONE]\n\n");
}

/* The finish_reason a fault ends the generation with; NULL for the rest. */
static const char *fault_finish(enum mock_fault fault)
{
    return fault == MOCK_ABORT ? "abort" : fault == MOCK_FILTERED ? "content_filter" : NULL;
}

/* An event that ends every choice with `why`, as vLLM's abort does. */
static char *finish_event(const struct mockserver *s, const struct gen *g, long n, const char *why)
{
    json_t *chunk = envelope(s, g, 1), *choices = json_object_get(chunk, "choices");
    for (long i = 0; i < n; i++)
        json_array_append_new(choices, g->chat ? json_pack("{s:I,s:{},s:s}", "index", (json_int_t)i,
                                                           "delta", "finish_reason", why)
                                               : json_pack("{s:I,s:s,s:s}", "index", (json_int_t)i,
                                                           "text", "", "finish_reason", why));
    char *text = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    ssf_buf b = {0};
    ssf_buf_printf(&b, "data: %s\n\n", text);
    free(text);
    return ssf_buf_take(&b);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    (void)pos;
    if (st->off == 0) {
        if (st->next == st->cut && st->fault == MOCK_TRUNCATED)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->next == st->cut && st->fault == MOCK_STALL) nap(st->s, st->s->o.stall_ms);
        if (st->next == st->n) {
            if (st->fault == MOCK_OK || st->fault == MOCK_DONE_DROP)
                count_served(st->s, st->seed, st->choices);
            /* no last chunk: the client sees the body cut short */
            return st->fault == MOCK_DONE_DROP ? MHD_CONTENT_READER_END_WITH_ERROR
                                               : MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (st->next > 0) nap(st->s, st->s->o.token_delay_ms);
    }
    const char *e = st->events[st->next];
    size_t left = strlen(e) - st->off, n = left < max ? left : max;
    memcpy(buf, e + st->off, n);
    st->off += n;
    if (st->off == strlen(e)) {
        st->next++;
        st->off = 0;
    }
    return (ssize_t)n;
}

static enum MHD_Result reply_stream(struct mockserver *s, struct MHD_Connection *c,
                                    const struct gen *g, long n, enum mock_fault fault)
{
    struct stream *st = ssf_xcalloc(1, sizeof *st);
    st->s = s;
    st->fault = fault == MOCK_LENGTH_EMPTY || fault == MOCK_SLOW ? MOCK_OK : fault;
    st->seed = g->seed;
    st->choices = n;
    st->cut = SIZE_MAX;
    build_stream(st, g, n, fault == MOCK_LENGTH_EMPTY);
    if (st->fault != MOCK_OK) {
        /* Never at 0 or at [DONE]: the fault is meant to strike mid-stream. */
        st->cut = s->o.fault_after ? s->o.fault_after : st->n / 2;
        if (st->cut >= st->n - 1) st->cut = st->n - 2;
        if (st->cut == 0) st->cut = 1;
    }
    if (st->fault == MOCK_STREAM_ERROR)
        cut_stream(st, "data: {\"error\":{\"object\":\"error\",\"message\":\"The request queue is "
                       "full.\",\"type\":\"ServiceUnavailableError\",\"param\":null,\"code\":503}}"
                       "\n\n");
    if (st->fault == MOCK_REFUSED_IN_BAND)
        cut_stream(st, "data: {\"error\":{\"object\":\"error\",\"message\":\"This model's maximum "
                       "context length is 32768 tokens.\",\"type\":\"BadRequestError\","
                       "\"param\":null,\"code\":400}}\n\n");
    if (st->fault == MOCK_NO_FINISH) cut_stream(st, NULL);
    if (fault_finish(st->fault)) {
        char *event = finish_event(s, g, n, fault_finish(st->fault));
        cut_stream(st, event);
        free(event);
    }
    if (st->fault == MOCK_INVALID_JSON) {
        free(st->events[st->cut]);
        st->events[st->cut] =
            ssf_xstrdup("data: {\"id\":\"broken\",\"choices\":[{\"index\":0,\n\n");
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, st, free_stream);
    if (!r) {
        free_stream(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return reply(s, c, MHD_HTTP_OK, r);
}

/* ---- non-streaming answers --------------------------------------------- */

struct cut_body {
    char *text;
    size_t len, cut;
};

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct cut_body *b = cls;
    /* Hanging up short of Content-Length is what a dying server does. */
    if (pos >= b->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = b->cut - (size_t)pos < max ? b->cut - (size_t)pos : max;
    memcpy(buf, b->text + pos, n);
    return (ssize_t)n;
}

static void free_cut_body(void *cls)
{
    struct cut_body *b = cls;
    free(b->text);
    free(b);
}

static enum MHD_Result reply_answer(struct mockserver *s, struct MHD_Connection *c,
                                    const struct gen *g, long n, enum mock_fault fault)
{
    json_t *root = answer_json(s, g, n, fault == MOCK_LENGTH_EMPTY);
    if (fault_finish(fault) || fault == MOCK_NO_FINISH)
        for (size_t i = 0; i < json_array_size(json_object_get(root, "choices")); i++)
            json_object_set_new(
                json_array_get(json_object_get(root, "choices"), i), "finish_reason",
                fault_finish(fault) ? json_string(fault_finish(fault)) : json_null());
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) return MHD_NO;
    size_t len = strlen(text);
    if (fault == MOCK_TRUNCATED) {
        struct cut_body *b = ssf_xcalloc(1, sizeof *b);
        *b = (struct cut_body){text, len, len / 2};
        struct MHD_Response *r =
            MHD_create_response_from_callback(len, 4096, cut_reader, b, free_cut_body);
        if (!r) free_cut_body(b);
        return reply(s, c, MHD_HTTP_OK, r);
    }
    if (fault == MOCK_INVALID_JSON) len /= 2; /* a complete answer of half a document */
    if (fault == MOCK_OK || fault == MOCK_LENGTH_EMPTY || fault == MOCK_SLOW ||
        fault == MOCK_STALL || fault == MOCK_NO_FINISH)
        count_served(s, g->seed, n);
    return reply(s, c, MHD_HTTP_OK, text_response(text, len, "application/json"));
}

/* ---- a response without end -------------------------------------------- */

/* The same bytes over and over: one text event, or the inside of a JSON
 * string, as long as the client reads. */
static ssize_t endless_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    const char *unit = cls;
    size_t len = strlen(unit);
    for (size_t i = 0; i < max; i++)
        buf[i] = unit[(pos + i) % len];
    return (ssize_t)max;
}

static enum MHD_Result reply_endless(struct mockserver *s, struct MHD_Connection *c, int stream)
{
    static const char event[] = "data: {\"id\":\"e\",\"object\":\"text_completion\","
                                "\"choices\":[{\"index\":0,\"text\":\"and so on, \"}]}\n\n";
    static const char body[] = "and so on, ";
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 65536, endless_reader, (void *)(stream ? event : body), NULL);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            stream ? "text/event-stream" : "application/json");
    return reply(s, c, MHD_HTTP_OK, r);
}

/* ---- generation -------------------------------------------------------- */

/* OpenAI's 401, repeating the key sent (as a careless proxy would; OpenAI
 * itself masks the middle), or "sk-wrong" when none was. */
static enum MHD_Result reply_bad_key(struct mockserver *s, struct MHD_Connection *c)
{
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "sk-wrong";
    json_t *message = json_sprintf("Incorrect API key provided: %s. You can find your API key "
                                   "at https://platform.openai.com/account/api-keys.",
                                   key);
    json_t *body = nested_error(json_string_value(message), "invalid_request_error",
                                json_string("invalid_api_key"));
    json_decref(message);
    return reply_json(s, c, 401, body);
}

static enum MHD_Result reply_fault(struct mockserver *s, struct MHD_Connection *c,
                                   enum mock_fault fault)
{
    switch (fault) {
    case MOCK_429:
        return reply_retry_after(s, c, 429,
                                 nested_error("Rate limit reached for requests", "requests",
                                              json_string("rate_limit_exceeded")));
    case MOCK_TGI_429:
        return reply_retry_after(
            s, c, 429,
            json_pack("{s:s,s:s}", "error", "Model is overloaded", "error_type", "overloaded"));
    case MOCK_500:
        return reply_json(
            s, c, 500, flat_error("EngineCore encountered an issue.", "InternalServerError", 500));
    case MOCK_503:
        return reply_retry_after(s, c, 503,
                                 nested_error("The request queue is full.",
                                              "ServiceUnavailableError", json_integer(503)));
    case MOCK_400:
        return reply_json(
            s, c, 400,
            nested_error("This model's maximum context length is 32768 tokens. However, you "
                         "requested 40000 tokens.",
                         "BadRequestError", json_integer(400)));
    case MOCK_401:
        return reply_bad_key(s, c);
    case MOCK_403:
        return reply_json(s, c, 403,
                          nested_error("Project `proj_mock` does not have access to model "
                                       "`mock-model`.",
                                       "invalid_request_error", json_string("model_not_found")));
    case MOCK_QUOTA:
        return reply_json(s, c, 429,
                          nested_error("You exceeded your current quota, please check your plan "
                                       "and billing details.",
                                       "insufficient_quota", json_string("insufficient_quota")));
    case MOCK_HANGUP:
        return hang_up(s);
    default:
        return reset_connection(s, c);
    }
}

static int is_early_fault(enum mock_fault f)
{
    return f == MOCK_429 || f == MOCK_TGI_429 || f == MOCK_500 || f == MOCK_503 || f == MOCK_400 ||
           f == MOCK_401 || f == MOCK_403 || f == MOCK_QUOTA || f == MOCK_RESET || f == MOCK_HANGUP;
}

/* One line per generation request on stderr, for debugging a client. */
static void log_request(const struct gen *g, unsigned attempt, enum mock_fault fault)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "mockserver: %ld.%03ld key %" PRIu64 " attempt %u n %ld stream %d fault %d\n",
            (long)ts.tv_sec, ts.tv_nsec / 1000000L, g->key, attempt, g->n, g->stream, (int)fault);
}

/* The status with which an n_mode refuses n != 1; 0: it does not. */
static int n_refusal(enum mock_n mode)
{
    return mode == MOCK_N_REJECT       ? 400
           : mode == MOCK_N_REJECT_500 ? 500
           : mode == MOCK_N_REJECT_422 ? 422
                                       : 0;
}

static enum MHD_Result answer_gen(struct mockserver *s, struct MHD_Connection *c,
                                  const struct gen *g, unsigned attempt)
{
    long n = g->n;
    int refused = n != 1 ? n_refusal(s->o.n_mode) : 0;
    if (refused == 422) {
        char msg[64];
        snprintf(msg, sizeof msg, "n must be 1 for this model, got %ld.", n);
        return reply_json(s, c, 422, flat_error(msg, "BadRequestError", 422));
    }
    if (refused)
        return reply_json(s, c, refused,
                          json_pack("{s:{s:i,s:s,s:s}}", "error", "code", refused, "message",
                                    "Only one completion choice is allowed", "type",
                                    "invalid_request_error"));
    if (s->o.n_mode == MOCK_N_IGNORE) n = 1;
    nap(s, s->o.delay_ms);
    enum mock_fault fault = pick_fault(s, g->key, attempt);
    if (s->log) log_request(g, attempt, fault);
    if (is_early_fault(fault)) return reply_fault(s, c, fault);
    if (fault == MOCK_ENDLESS) return reply_endless(s, c, g->stream);
    if (fault == MOCK_NO_CHOICES) n = 0;
    if (fault == MOCK_SLOW) nap(s, s->o.slow_ms);
    if (fault == MOCK_STREAM_ERROR && !g->stream)
        return reply_json(s, c, 200,
                          nested_error("The request queue is full.", "ServiceUnavailableError",
                                       json_integer(503)));
    if (fault == MOCK_REFUSED_IN_BAND && !g->stream)
        return reply_json(s, c, 200,
                          nested_error("This model's maximum context length is 32768 tokens.",
                                       "BadRequestError", json_integer(400)));
    if (fault == MOCK_DONE_DROP && !g->stream) fault = MOCK_OK;
    if (g->stream) return reply_stream(s, c, g, n, fault);
    if (fault == MOCK_STALL) nap(s, s->o.stall_ms);
    return reply_answer(s, c, g, n, fault);
}

/* A 400 body when the server's dialect refuses a field of root, else NULL. */
static json_t *dialect_refusal(const struct mockserver *s, json_t *root)
{
    static const char *const openai_fields[] = {"model",
                                                "prompt",
                                                "messages",
                                                "n",
                                                "seed",
                                                "temperature",
                                                "top_p",
                                                "max_tokens",
                                                "max_completion_tokens",
                                                "stream",
                                                "stream_options",
                                                "stop",
                                                "logprobs",
                                                "user"};
    if (s->o.dialect == MOCK_DIALECT_LLAMA_PY) {
        const json_t *k = json_object_get(root, "top_k");
        if (json_is_integer(k) && json_integer_value(k) < 0)
            return json_pack("{s:[{s:s,s:[s,s],s:s}]}", "detail", "type", "greater_than_equal",
                             "loc", "body", "top_k", "msg",
                             "Input should be greater than or equal to 0");
        return NULL;
    }
    if (s->o.dialect != MOCK_DIALECT_OPENAI) return NULL;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        size_t i = 0, n = sizeof openai_fields / sizeof openai_fields[0];
        while (i < n && strcmp(key, openai_fields[i]) != 0)
            i++;
        if (i < n) continue;
        ssf_buf m = {0};
        ssf_buf_printf(&m, "Unrecognized request argument supplied: %s", key);
        json_t *body = nested_error(m.data, "invalid_request_error", NULL);
        ssf_buf_free(&m);
        return body;
    }
    return NULL;
}

static enum MHD_Result serve_gen(struct mockserver *s, struct MHD_Connection *c,
                                 const struct request *rq, int chat)
{
    json_error_t jerr;
    json_t *root = rq->body.data ? json_loadb(rq->body.data, rq->body.len, 0, &jerr) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return reply_json(
            s, c, 400,
            flat_error("The request body is not a JSON object.", "BadRequestError", 400));
    }
    const char *model = json_string_value(json_object_get(root, "model"));
    if (model && strcmp(model, s->model) != 0) {
        ssf_buf m = {0};
        ssf_buf_printf(&m, "The model `%s` does not exist.", model);
        enum MHD_Result ret =
            reply_json(s, c, 404, nested_error(m.data, "NotFoundError", json_integer(404)));
        ssf_buf_free(&m);
        json_decref(root);
        return ret;
    }
    json_t *refusal = dialect_refusal(s, root);
    if (refusal) {
        json_decref(root);
        return reply_json(s, c, 400, refusal);
    }
    struct gen g = {0};
    const char *why = parse_gen(root, chat, &g);
    json_decref(root);
    enum MHD_Result ret;
    if (why)
        ret = reply_json(s, c, 400, nested_error(why, "BadRequestError", json_integer(400)));
    else
        ret = answer_gen(s, c, &g, count_attempt(s, &g, &rq->body));
    free(g.prompt);
    return ret;
}

/* ---- other routes ------------------------------------------------------ */

static enum MHD_Result serve_health(struct mockserver *s, struct MHD_Connection *c)
{
    pthread_mutex_lock(&s->lock);
    unsigned poll = s->health_polls++;
    s->stats.health++;
    pthread_mutex_unlock(&s->lock);
    if (poll < s->o.health_fail)
        return reply_json(s, c, 503,
                          json_pack("{s:{s:i,s:s,s:s}}", "error", "code", 503, "message",
                                    "Loading model", "type", "unavailable_error"));
    return reply(s, c, 200, text_response(ssf_xstrdup(""), 0, "application/json"));
}

static enum MHD_Result serve_models(struct mockserver *s, struct MHD_Connection *c)
{
    pthread_mutex_lock(&s->lock);
    s->stats.models++;
    pthread_mutex_unlock(&s->lock);
    /* A key refused for every request (a rule of 401 alone) is refused here too. */
    const struct mock_rule *first = &s->o.rules[0];
    if (first->fault == MOCK_401 && !first->from && !first->count && !first->mod)
        return reply_bad_key(s, c);
    if (s->o.no_models)
        return reply_json(s, c, 200, json_pack("{s:s,s:[]}", "object", "list", "data"));
    return reply_json(s, c, 200,
                      json_pack("{s:s,s:[{s:s,s:s,s:i,s:s,s:i}]}", "object", "list", "data", "id",
                                s->model, "object", "model", "created", CREATED, "owned_by",
                                "mockserver", "max_model_len", 32768));
}

static enum MHD_Result route(struct mockserver *s, struct MHD_Connection *c, const char *url,
                             const char *method, const struct request *rq)
{
    int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (rq->too_big)
        return reply_json(s, c, 413, flat_error("Request too large.", "BadRequestError", 413));
    if (post && strcmp(url, "/v1/completions") == 0) return serve_gen(s, c, rq, 0);
    if (post && strcmp(url, "/v1/chat/completions") == 0) return serve_gen(s, c, rq, 1);
    if (get && strcmp(url, "/v1/models") == 0) return serve_models(s, c);
    if (get && strcmp(url, "/health") == 0) return serve_health(s, c);
    return reply_json(s, c, 404, nested_error("Not Found", "NotFoundError", json_integer(404)));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct mockserver *s = cls;
    struct request *rq = *req_cls;
    (void)version;
    if (!rq) {
        *req_cls = ssf_xcalloc(1, sizeof *rq);
        pthread_mutex_lock(&s->lock);
        s->stats.requests++;
        pthread_mutex_unlock(&s->lock);
        /* A body comes in later calls: answer after the last one.  GETs
         * wait for their second call too, since a response queued in the
         * first one makes libmicrohttpd close the connection. */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (rq->body.len + *upload_data_size > MAX_BODY)
            rq->too_big = 1;
        else
            ssf_buf_append(&rq->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(s, c, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *req_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (!rq) return;
    ssf_buf_free(&rq->body);
    free(rq);
    *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct mockserver *s = cls;
    (void)c;
    (void)socket_context;
    pthread_mutex_lock(&s->lock);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        s->stats.connections++;
        if (++s->open_connections > s->stats.peak_connections)
            s->stats.peak_connections = s->open_connections;
    } else if (s->open_connections > 0) {
        s->open_connections--;
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- life cycle -------------------------------------------------------- */

unsigned long mockserver_raise_fd_limit(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    rlim_t target = (rlim_t)want;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) target = rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= target) return (unsigned long)rl.rlim_cur;
    rl.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    return (unsigned long)rl.rlim_cur;
}

static int start_daemon(struct mockserver *s, ssf_error *err)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    /* by default the kernel picks a free port: tests can run in parallel */
    addr.sin_port = htons((uint16_t)s->o.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (mhd_tls_load(&s->tls, s->o.tls_dir, err) != 0) return -1;
    /* poll() (chosen by MHD_USE_AUTO) has no FD_SETSIZE ceiling. */
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
            mhd_tls_flags(&s->tls),
        0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, s->tls.items, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
        MHD_OPTION_THREAD_STACK_SIZE, STACK_SIZE, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->daemon)
        return ssf_fail(err, "mockserver: cannot listen on 127.0.0.1: %s", strerror(errno));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) return ssf_fail(err, "mockserver: cannot read the bound port");
    s->port = info->port;
    return 0;
}

struct mockserver *mockserver_start(const struct mockserver_options *options, ssf_error *err)
{
    struct mockserver *s = ssf_xcalloc(1, sizeof *s);
    if (options) s->o = *options;
    s->model = ssf_xstrdup(s->o.model ? s->o.model : DEFAULT_MODEL);
    s->o.model = s->model;
    s->log = getenv("MOCKSERVER_LOG") != NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    /* Both ends of every loopback connection live in this process when a
     * test runs the server in-process. */
    mockserver_raise_fd_limit(4ul * CONNECTION_LIMIT);
    if (start_daemon(s, err) != 0) {
        mockserver_stop(s);
        return NULL;
    }
    return s;
}

unsigned mockserver_port(struct mockserver *server)
{
    return server->port;
}

void mockserver_stop(struct mockserver *server)
{
    if (!server) return;
    pthread_mutex_lock(&server->lock);
    server->stopping = 1;
    pthread_cond_broadcast(&server->wake);
    pthread_mutex_unlock(&server->lock);
    if (server->daemon) MHD_stop_daemon(server->daemon);
    pthread_cond_destroy(&server->wake);
    pthread_mutex_destroy(&server->lock);
    free(server->keys);
    free(server->last_request);
    free(server->model);
    mhd_tls_free(&server->tls);
    free(server);
}

void mockserver_get_stats(struct mockserver *server, struct mockserver_stats *out)
{
    pthread_mutex_lock(&server->lock);
    *out = server->stats;
    pthread_mutex_unlock(&server->lock);
}

static unsigned lookup(struct mockserver *server, uint64_t key, int served)
{
    unsigned v = 0;
    pthread_mutex_lock(&server->lock);
    if (server->keys_cap) {
        const struct key_stat *k = &server->keys[key_slot(server->keys, server->keys_cap, key)];
        if (k->used) v = served ? k->served : k->attempts;
    }
    pthread_mutex_unlock(&server->lock);
    return v;
}

unsigned mockserver_attempts(struct mockserver *server, uint64_t key)
{
    return lookup(server, key, 0);
}

unsigned mockserver_served(struct mockserver *server, uint64_t seed)
{
    return lookup(server, seed, 1);
}

char *mockserver_last_request(struct mockserver *server)
{
    pthread_mutex_lock(&server->lock);
    char *copy = server->last_request ? ssf_xstrdup(server->last_request) : NULL;
    pthread_mutex_unlock(&server->lock);
    return copy;
}
