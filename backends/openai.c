/*
 * openai.c - the backend for OpenAI-compatible servers (vLLM, SGLang,
 * llama.cpp, OpenAI), driven from the caller's thread with curl_multi.
 *
 * Work is a queue of jobs, one job being one HTTP request for one sample or
 * for a run of consecutive samples of the same prompt sent with n = k (see
 * groupable()).  The loop admits due jobs while fewer than `concurrency`
 * transfers are attached (libcurl's own queueing would charge the waiting
 * time to each transfer's timeout), drives the transfers, and sorts each
 * finished one into success, retry (requeued on a heap by not_before) or
 * final failure.  Easy handles are pooled and the multi handle keeps the
 * connections, so requests reuse them.
 *
 * Before the first request the backend may have to learn the model's name
 * (GET /models) and whether the server honours n (a probe with n = 2 and
 * max_tokens = 1); both are remembered for later generate() calls.
 *
 * A response with a choice count other than n never counts: the group is
 * split into single requests with their own seeds (the server ignores or
 * mangles n, so asking again would not help), and later groups go out
 * singly too.
 *
 * After BREAKER_FAILURES consecutive connection failures, with a server that
 * has answered before, a circuit breaker stops admitting and polls /health
 * until it answers; failures that trip it or arrive while it is open are
 * not charged to the samples.  A server that never answered is a wrong
 * endpoint, not a restart: where nothing listens, its samples fail after
 * UNANSWERED_CONNECT_ATTEMPTS.
 *
 * CURLOPT_PIPEWAIT is deliberately not set: over HTTP/1.1 it makes every new
 * transfer wait for the first connection's response headers (to learn
 * whether it multiplexes), which for a long generation is minutes of head-
 * of-line blocking.  HTTP/2 endpoints still multiplex once connected.
 */
#include "backend.h"
#include "retry.h"
#include "sse.h"
#include "tls.h"
#include "ssfteval/records.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define BREAKER_FAILURES 20
#define OUTAGE_WAIT_DEFAULT_S 900.0 /* then the breaker lets the attempts decide */
#define HEALTH_POLL_MAX_S 8.0
#define HEALTH_TIMEOUT_S 5.0
#define POLL_MAX_MS 100 /* how soon *stop is noticed */
#define CONNECT_TIMEOUT_MS 10000L
#define AUTO_CHUNK 8
#define UNANSWERED_CONNECT_ATTEMPTS 2 /* for a port where nothing ever answered */
#define STREAM_IDLE_DEFAULT_S 300.0
#define REQUEST_TIMEOUT_DEFAULT_S 3600.0 /* 32k tokens at 10 tok/s, with margin */

/* One response, decoded: 4,000 choices of 64 kB. */
#define KEPT_BODY_BYTES ((size_t)1 << 20)
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)256 << 20)
enum { MODE_UNDECIDED, MODE_SSE, MODE_BODY };
enum { OUT_OK, OUT_SPLIT, OUT_RETRY, OUT_FINAL };

typedef struct job {
    size_t first; /* the samples reqs[first .. first + count) */
    int count;
    int attempts;
    double not_before;
    char *body; /* the request JSON, built at first admission */
    size_t body_len;
    char *last_error;
    struct job *next; /* in the ready list */
} job;

typedef struct openai openai;

typedef struct slot {
    CURL *easy;
    job *job;   /* NULL when free or for a control transfer */
    int stream; /* asked for a stream */
    int mode;
    double started, last_byte;
    double idle_s;   /* streaming: the idle limit, 0 for none */
    int idle_fired;  /* the transfer was ended for idling */
    CURLcode result; /* control transfers: how the last one ended */
    ssf_buf body;    /* a non-SSE body */
    size_t received; /* bytes of the response so far (decoded), SSE or not */
    int too_long;    /* past max_response_bytes or max_held_bytes: ended, not asked again */
    size_t held;     /* bytes this transfer holds in memory (bytes_held) */
    openai *owner;   /* whose caps and held total count it (set by prepare) */
    ssf_sse sse;
    ssf_completion acc;
    ssf_retry_hints hints;
    char errbuf[CURL_ERROR_SIZE];
} slot;

struct openai {
    ssf_openai_options o; /* strings point at the copies below */
    char *endpoint, *model, *url, *models_url, *health_url;
    int stream;
    double timeout_s;
    int chunk;     /* samples per request at most; 0 until probed */
    int answered;  /* the server has sent an HTTP response */
    int top_k_off; /* what "top_k off" is sent as: -1 (vLLM, SGLang) or 0 (llama.cpp) */
    int strict;    /* the server takes only OpenAI's own fields (api.openai.com) */
    int top_k_probed;
    json_t *stop_strings; /* the request's "stop" array */
    CURLM *multi;
    struct curl_slist *headers; /* holds the API key for the requests */
    /* What no message may repeat: the API key, and the user:password of
     * an endpoint URL that carries one (a server or proxy may echo them
     * back in its error text, which is stored and printed). */
    char *secrets[3]; /* the key, user:password, password */
    slot **slots, **free_slots;
    int nslots, nfree;
    slot *control; /* /models, the n probe, /health */
    size_t held;   /* what all transfers hold in memory now */
    uint64_t rng;
};

typedef struct run {
    openai *b;
    const ssf_backend *self; /* for its notices */
    const ssf_gen_request *reqs;
    size_t n;
    ssf_gen_done_fn done;
    void *ud;
    job *ready, *ready_tail;
    job **heap; /* waiting retries, by not_before */
    size_t heap_len, heap_cap;
    size_t unfinished;
    int attached;
    int rc;
    int conn_failures; /* consecutive, without any HTTP response */
    int breaker_open, breaker_off, health_busy, health_polls;
    double breaker_since, breaker_next;
} run;

static double uniform(openai *b)
{
    b->rng ^= b->rng << 13; /* xorshift64: jitter needs no quality */
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return (double)(b->rng >> 11) / 9007199254740992.0;
}

static int stopped(const run *r)
{
    return r->b->o.stop && *r->b->o.stop;
}

/* ---- request bodies ----------------------------------------------------- */

/* The fewest significant digits that print x back exactly, so 0.7 goes
 * out as 0.7 rather than 0.69999999999999996. */
static int digits_for(double x)
{
    char s[32];
    for (int p = 1; p < 17; p++) {
        snprintf(s, sizeof s, "%.*g", p, x);
        if (ssf_strtod(s, NULL) == x) return p;
    }
    return 17;
}

static int set(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1; /* NULL: a string was not UTF-8 */
}

static int add_prompt(json_t *o, const openai *b, const ssf_gen_request *q, const char **why)
{
    if (b->o.api == SSF_API_COMPLETIONS) {
        *why = "the prompt is not valid UTF-8";
        return set(o, "prompt", json_string(q->prompt));
    }
    *why = "the user message is not valid UTF-8";
    if (!q->user_content) {
        *why = "no user message for the chat API; use --api completions";
        return -1;
    }
    json_t *msgs = json_array();
    int rc = set(o, "messages", msgs);
    json_t *user = json_pack("{s:s,s:o}", "role", "user", "content", json_string(q->user_content));
    rc |= user ? json_array_append_new(msgs, user) : -1;
    if (q->tag <= 0) return b->strict ? rc : rc | set(o, "add_generation_prompt", json_true());
    if (b->strict) {
        *why = "the server takes only OpenAI's own request fields, so it cannot continue an "
               "SSFT tag's assistant turn; use a server such as vLLM or SGLang for --protocol ssft";
        return -1;
    }
    /* The tag opens the assistant turn, which the server must continue
     * rather than close and start another. */
    char prefill[64];
    snprintf(prefill, sizeof prefill, "<|im_start|><think%d>\n", q->tag);
    rc |= json_array_append_new(msgs,
                                json_pack("{s:s,s:s}", "role", "assistant", "content", prefill));
    rc |= set(o, "continue_final_message", json_true());
    return rc | set(o, "add_generation_prompt", json_false());
}

/* The fields vLLM, SGLang and llama.cpp add to OpenAI's: a strict server
 * gets them only where they are off, by leaving them out; a request that
 * needs one cannot go to it. */
static int add_extensions(const openai *b, json_t *o, const ssf_sampling *s, const char **why)
{
    if (b->strict && (s->top_k || s->min_p > 0)) {
        *why = s->top_k
                   ? "the server takes only OpenAI's own request fields: no top_k; drop --top-k"
                   : "the server takes only OpenAI's own request fields: no min_p; drop --min-p";
        return -1;
    }
    if (b->strict) return 0;
    int rc = set(o, "top_k", json_integer(s->top_k ? s->top_k : b->top_k_off));
    rc |= set(o, "min_p", json_real(s->min_p));
    rc |= set(o, "skip_special_tokens", json_false());
    return rc | set(o, "add_special_tokens", json_false());
}

/* Every sampling parameter goes out explicitly, since server defaults
 * differ (llama.cpp's temperature 0.8, vLLM's generation_config.json). */
static int add_sampling(const openai *b, json_t *o, const ssf_gen_request *q, int n,
                        long max_tokens, int stream, const char **why)
{
    const ssf_sampling *s = &q->sampling;
    int rc = set(o, "n", json_integer(n));
    rc |= set(o, "seed", json_integer((json_int_t)q->seed));
    rc |= set(o, "temperature", json_real(s->temperature));
    rc |= set(o, "top_p", json_real(s->top_p));
    rc |= set(o, "max_tokens", json_integer(max_tokens));
    /* OpenAI's own field; an empty list for the servers that take it, so
     * that none applies a default of its own. */
    if (!b->strict || json_array_size(b->stop_strings))
        rc |= set(o, "stop", json_copy(b->stop_strings));
    rc |= add_extensions(b, o, s, why);
    rc |= set(o, "stream", json_boolean(stream));
    if (stream) rc |= set(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
    return rc;
}

/* The request for samples q .. q + n - 1 (seed q->seed; the server gives
 * choice i seed + i), compact; NULL with *why set if it cannot be sent. */
static char *build_body(const openai *b, const ssf_gen_request *q, int n, long max_tokens,
                        int stream, const char **why)
{
    json_t *o = json_object();
    int rc = set(o, "model", json_string(b->model));
    rc |= add_prompt(o, b, q, why);
    if (rc == 0) rc = add_sampling(b, o, q, n, max_tokens, stream, why);
    int p = digits_for(q->sampling.temperature);
    if (digits_for(q->sampling.top_p) > p) p = digits_for(q->sampling.top_p);
    if (digits_for(q->sampling.min_p) > p) p = digits_for(q->sampling.min_p);
    char *s = rc ? NULL : json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(p));
    json_decref(o);
    return s;
}

/* ---- transfers ---------------------------------------------------------- */

static int on_event(const char *data, size_t len, void *ud)
{
    slot *s = ud;
    return ssf_completion_event(&s->acc, data, len);
}

/* The first bytes decide: a 200 event stream goes through the SSE parser,
 * anything else (an error body, or JSON from a server that ignored
 * "stream") is kept whole. */
static int decide_mode(slot *s)
{
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &type);
    return status == 200 && type && strcasestr(type, "text/event-stream") ? MODE_SSE : MODE_BODY;
}

/* Ends the transfer as failed, with why, unless it failed already. */
static size_t abandon_response(slot *s, const char *why)
{
    if (!s->acc.failed) {
        s->acc.failed = 1;
        snprintf(s->acc.error.message, sizeof s->acc.error.message, "%s", why);
    }
    return 0;
}

/* Bytes the transfer holds in memory: its body, or a stream's partial
 * line and event and the texts so far (a stream's bytes are mostly JSON
 * framing, several times the text it carries). */
static size_t bytes_held(const slot *s)
{
    if (s->mode != MODE_SSE) return s->body.len;
    size_t n = s->sse.line.len + s->sse.data.len;
    for (int i = 0; i < s->acc.n; i++)
        n += s->acc.choices[i].text.len + s->acc.choices[i].reasoning.len;
    return n;
}

/* A transfer over: what it held no longer counts against max_held_bytes
 * (the cap is on responses in flight). */
static void forget_held(slot *s)
{
    if (s->owner) s->owner->held -= s->held;
    s->held = 0;
}

/* Counts what s holds into the total; 1 if that total passed its cap. */
static int over_held_cap(slot *s)
{
    size_t now = bytes_held(s);
    s->owner->held = s->owner->held - s->held + now;
    s->held = now;
    return s->owner->held > s->owner->o.max_held_bytes;
}

/* Ends the transfer for passing a cap: "<before> <cap><after> from the
 * server", the cap in MiB where it is whole ones, else in bytes. */
static size_t too_long(slot *s, const char *before, size_t cap, const char *after)
{
    char amount[32], why[128];
    if (cap % ((size_t)1 << 20) == 0)
        snprintf(amount, sizeof amount, "%zu MiB", cap >> 20);
    else
        snprintf(amount, sizeof amount, "%zu bytes", cap);
    snprintf(why, sizeof why, "%s %s%s from the server", before, amount, after);
    s->too_long = 1;
    return abandon_response(s, why);
}

static size_t took(slot *s, size_t n)
{
    if (!over_held_cap(s)) return n;
    return too_long(s, "responses held at once past", s->owner->o.max_held_bytes, " in all");
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    slot *s = ud;
    size_t n = size * nmemb;
    s->last_byte = ssf_monotonic_seconds();
    /* A response is held (a body) or accumulated (a stream's texts) in
     * memory: a server that never stops, or a small gzip bomb, must end as
     * a failed attempt, not exhaust the memory of every transfer at once. */
    s->received += n;
    if (s->received > s->owner->o.max_response_bytes)
        return too_long(s, "a response of more than", s->owner->o.max_response_bytes, "");
    if (s->mode == MODE_UNDECIDED) s->mode = decide_mode(s);
    if (s->mode == MODE_BODY) {
        ssf_buf_append(&s->body, p, n);
        return took(s, n);
    }
    if (ssf_sse_feed(&s->sse, p, n) == 0) return took(s, n);
    if (s->acc.failed) return 0; /* an error arrived in-band: end the transfer now */
    char why[80];
    snprintf(why, sizeof why, "a stream line longer than %u bytes from the server",
             SSF_SSE_MAX_LINE);
    return abandon_response(s, why);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    slot *s = ud;
    s->last_byte = ssf_monotonic_seconds();
    ssf_retry_header_line(&s->hints, p, size * nmemb);
    return size * nmemb;
}

/* libcurl's low-speed check averages over five seconds, so after a burst
 * it notices silence late; this ends a stream idle for exactly idle_s.
 * Called about once a second even while nothing arrives. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    slot *s = ud;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (s->idle_s > 0 && ssf_monotonic_seconds() - s->last_byte > s->idle_s) s->idle_fired = 1;
    return s->idle_fired;
}

static slot *new_slot(void)
{
    slot *s = ssf_xcalloc(1, sizeof *s);
    s->easy = curl_easy_init();
    if (!s->easy) {
        free(s);
        return NULL;
    }
    ssf_sse_init(&s->sse, on_event, s);
    ssf_completion_init(&s->acc, 1);
    return s;
}

static void free_slot(slot *s)
{
    if (!s) return;
    curl_easy_cleanup(s->easy);
    ssf_buf_free(&s->body);
    ssf_sse_free(&s->sse);
    ssf_completion_free(&s->acc);
    free(s);
}

/* Sets every option afresh: curl_easy_reset keeps the handle's caches but
 * drops the last transfer's settings (GET or POST, streaming or not). */
static void prepare(openai *b, slot *s, const char *url, const char *body, size_t len, int stream,
                    double timeout_s, int nchoices)
{
    CURL *e = s->easy;
    curl_easy_reset(e);
    s->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L); /* dead peers during silent waits */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 60L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 30L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
#if LIBCURL_VERSION_NUM >= 0x075000
    curl_easy_setopt(e, CURLOPT_MAXLIFETIME_CONN, 600L); /* behind load balancers */
    ssf_tls_trust(e);
#endif
    if (body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    long t = (long)(timeout_s + 0.999);
    if (stream) { /* an idle timeout: a long generation is fine while bytes flow */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, t);
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, s);
    } else {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    }
    s->stream = stream;
    s->idle_s = stream ? timeout_s : 0;
    s->idle_fired = 0;
    s->mode = MODE_UNDECIDED;
    s->result = CURLE_OK;
    s->received = 0;
    s->too_long = 0;
    forget_held(s);
    s->owner = b;
    /* A long body's buffer goes, not kept for the rest of the run by a slot. */
    if (s->body.cap > KEPT_BODY_BYTES) ssf_buf_free(&s->body);
    ssf_buf_reset(&s->body);
    ssf_sse_reset(&s->sse);
    ssf_completion_reset(&s->acc, nchoices);
    ssf_retry_hints_reset(&s->hints);
    s->started = s->last_byte = ssf_monotonic_seconds();
}

/* ---- describing failures ------------------------------------------------ */

/* The base URL up to /v1, for messages about reaching the server. */
static void describe_curl(const openai *b, const slot *s, const char *url, CURLcode res,
                          long status, ssf_buf *msg)
{
    const char *why = s->idle_fired  ? "idle timeout"
                      : s->errbuf[0] ? s->errbuf
                                     : curl_easy_strerror(res);
    curl_off_t connect_us = 0;
    curl_easy_getinfo(s->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    int unreached = ssf_retry_curl_connection(res) && res != CURLE_RECV_ERROR &&
                    res != CURLE_SEND_ERROR && res != CURLE_GOT_NOTHING;
    const char *tls_fix = ssf_tls_fix(res, why);
    if (unreached || (res == CURLE_OPERATION_TIMEDOUT && status == 0 && connect_us == 0))
        ssf_buf_printf(msg, "cannot reach %s: %s; is the server running? check --endpoint",
                       b->endpoint, why);
    else if (res == CURLE_OPERATION_TIMEDOUT && s->stream)
        ssf_buf_printf(msg,
                       "%s sent nothing for %.0f s (%s); raise --timeout if the server is "
                       "just slow",
                       url, b->timeout_s, why);
    else if (res == CURLE_OPERATION_TIMEDOUT) /* b->stream: a probe, never streamed */
        ssf_buf_printf(msg, "no answer from %s within %.0f s (%s); raise --timeout%s", url,
                       b->timeout_s, why, b->stream ? "" : " or use --stream on");
    else if (tls_fix)
        ssf_buf_printf(msg, "cannot trust %s: %s; %s", b->endpoint, why, tls_fix);
    else
        ssf_buf_printf(msg, "request to %s failed: %s", url, why);
}

/* The fix for a refusal that says what on the command line is wrong: the
 * key (401, 403), or the URL or the model name (404).  It follows the
 * server's sentence, so that sentence's full stop goes; the "..." of a
 * sentence cut short stays, to say so. */
static void http_fix(const openai *b, long status, ssf_buf *msg)
{
    if (status != 401 && status != 403 && status != 404) return;
    int cut_short = msg->len >= 3 && strcmp(msg->data + msg->len - 3, "...") == 0;
    if (msg->len > 0 && msg->data[msg->len - 1] == '.' && !cut_short) msg->data[--msg->len] = '\0';
    if (status == 404)
        ssf_buf_printf(msg, "; check --endpoint (%s) and --model", b->endpoint);
    else
        ssf_buf_puts(msg, "; set OPENAI_API_KEY or name the variable with --api-key-env");
}

/* An HTTP error status or a failed transfer: the message, and whether
 * another attempt may succeed. */
static int describe_failure(const openai *b, const slot *s, const char *url, CURLcode res,
                            long status, ssf_buf *msg)
{
    if (status >= 300 || (status > 0 && status < 200)) {
        ssf_api_error e;
        ssf_api_error_from_body(&e, s->body.data, s->body.len);
        ssf_buf_printf(msg, "HTTP %ld from %s%s%s", status, url, e.message[0] ? ": " : "",
                       e.message);
        http_fix(b, status, msg);
        return ssf_retry_http(status, s->body.data, &s->hints);
    }
    describe_curl(b, s, url, res, status, msg);
    return ssf_retry_curl_retryable(res);
}

static void prefix(ssf_buf *msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void prefix(ssf_buf *msg, const char *fmt, ...)
{
    char head[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    ssf_buf tmp = {0};
    ssf_buf_printf(&tmp, "%s%s", head, msg->data ? msg->data : "");
    ssf_buf_free(msg);
    *msg = tmp;
}

static void prefix_gave_up(ssf_buf *msg, int attempts)
{
    prefix(msg, "gave up after %d attempt%s: ", attempts, attempts == 1 ? "" : "s");
}

/* A transfer that arrived whole may still hold a generation the server
 * did not finish: vLLM and SGLang end a stream they abort (shutdown,
 * scale-down, a dropped engine) with finish_reason "abort" and the text so
 * far, and some servers say "error".  Those are retried, never graded; a
 * completion a content filter cut is final.  Other reasons ("stop",
 * "length", TGI's "eos_token" ...) are finished generations. */
static int finished_whole(const openai *b, const ssf_completion *c, ssf_buf *msg)
{
    for (int i = 0; i < c->n; i++) {
        const char *why = c->choices[i].finish_reason;
        ssf_finish_kind kind = ssf_finish_kind_of(why);
        if (kind == SSF_FINISH_UNFINISHED) {
            ssf_buf_printf(msg, "%s stopped the generation unfinished (finish_reason \"%s\")",
                           b->url, why);
            return OUT_RETRY;
        }
        if (kind == SSF_FINISH_WITHHELD) {
            ssf_buf_printf(msg, "%s withheld the completion (finish_reason \"content_filter\")",
                           b->url);
            return OUT_FINAL;
        }
    }
    return OUT_OK;
}

/* Sorts a finished sample transfer into OUT_*, with a message unless OK. */
static int judge(const openai *b, slot *s, const job *j, CURLcode res, long status, ssf_buf *msg)
{
    ssf_completion *c = &s->acc;
    if (c->failed && c->in_band) {
        ssf_buf_printf(msg, "error from %s: %s", b->url,
                       c->error.message[0] ? c->error.message : c->error.type);
        return ssf_retry_in_band(c->error.status, c->error.type, c->error.code) ? OUT_RETRY
                                                                                : OUT_FINAL;
    }
    if (c->failed) {
        ssf_buf_printf(msg, "%s (from %s)", c->error.message, b->url);
        return s->too_long ? OUT_FINAL : OUT_RETRY; /* a server that sent that much would again */
    }
    if (s->mode == MODE_SSE && c->done && ssf_completion_count_ok(c) &&
        ssf_completion_all_finished(c))
        return finished_whole(b, c, msg); /* a hiccup while closing does not matter */
    if (res != CURLE_OK || status < 200 || status >= 300) {
        int retry = describe_failure(b, s, b->url, res, status, msg);
        /* A server may refuse n > 1 outright (llama.cpp: 500 "Only one
         * completion choice is allowed"; others 400): try those singly. */
        if (j->count > 1 && (status == 400 || status == 422 || status == 500)) return OUT_SPLIT;
        return retry ? OUT_RETRY : OUT_FINAL;
    }
    if (s->mode != MODE_SSE && ssf_completion_body(c, s->body.data, s->body.len))
        return judge(b, s, j, res, status, msg);
    if (s->mode == MODE_SSE && !c->done && !ssf_completion_all_finished(c)) {
        ssf_buf_printf(msg, "the stream from %s ended before [DONE] (truncated)", b->url);
        return OUT_RETRY;
    }
    if (!ssf_completion_count_ok(c)) {
        ssf_buf_printf(msg, "%s did not return %d choice%s as asked", b->url, j->count,
                       j->count == 1 ? "" : "s");
        return j->count > 1 ? OUT_SPLIT : OUT_RETRY;
    }
    if (s->mode == MODE_SSE && !ssf_completion_all_finished(c)) {
        ssf_buf_printf(msg, "the stream from %s ended without a finish_reason", b->url);
        return OUT_RETRY;
    }
    return finished_whole(b, c, msg);
}

/* ---- the job queue ------------------------------------------------------ */

static void push_ready(run *r, job *j)
{
    j->next = NULL;
    if (r->ready_tail)
        r->ready_tail->next = j;
    else
        r->ready = j;
    r->ready_tail = j;
}

static void push_ready_front(run *r, job *j)
{
    j->next = r->ready;
    r->ready = j;
    if (!r->ready_tail) r->ready_tail = j;
}

static job *pop_ready(run *r)
{
    job *j = r->ready;
    if (j) r->ready = j->next;
    if (!r->ready) r->ready_tail = NULL;
    return j;
}

static void swap_jobs(job **a, job **b)
{
    job *t = *a;
    *a = *b;
    *b = t;
}

static void heap_push(run *r, job *j)
{
    if (r->heap_len == r->heap_cap) {
        r->heap_cap = r->heap_cap ? 2 * r->heap_cap : 64;
        r->heap = ssf_xrealloc(r->heap, r->heap_cap * sizeof *r->heap);
    }
    size_t i = r->heap_len++;
    r->heap[i] = j;
    for (; i > 0 && r->heap[(i - 1) / 2]->not_before > r->heap[i]->not_before; i = (i - 1) / 2)
        swap_jobs(&r->heap[(i - 1) / 2], &r->heap[i]);
}

static job *heap_pop(run *r)
{
    job *top = r->heap[0];
    r->heap[0] = r->heap[--r->heap_len];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->heap_len && r->heap[l]->not_before < r->heap[m]->not_before) m = l;
        if (l + 1 < r->heap_len && r->heap[l + 1]->not_before < r->heap[m]->not_before) m = l + 1;
        if (m == i) break;
        swap_jobs(&r->heap[i], &r->heap[m]);
        i = m;
    }
    return top;
}

static job *new_job(size_t first, int count)
{
    job *j = ssf_xcalloc(1, sizeof *j);
    j->first = first;
    j->count = count;
    return j;
}

static void free_job(job *j)
{
    if (!j) return;
    free(j->body);
    free(j->last_error);
    free(j);
}

/* Requests a and b = a + 1 can share one request with n = 2: the same
 * prompt and sampling, the next index and the next seed (vLLM gives choice
 * i the seed + i). */
static int groupable(const ssf_gen_request *a, const ssf_gen_request *b)
{
    const ssf_sampling *x = &a->sampling, *y = &b->sampling;
    return b->doc == a->doc && b->tag == a->tag && b->index == a->index + 1 &&
           b->seed == a->seed + 1 && strcmp(a->task, b->task) == 0 &&
           (a->prompt == b->prompt || (a->prompt && b->prompt && !strcmp(a->prompt, b->prompt))) &&
           (a->user_content == b->user_content ||
            (a->user_content && b->user_content && !strcmp(a->user_content, b->user_content))) &&
           x->temperature == y->temperature && x->top_p == y->top_p && x->top_k == y->top_k &&
           x->min_p == y->min_p && x->max_new_tokens == y->max_new_tokens;
}

static void enqueue_all(run *r, int chunk)
{
    for (size_t i = 0; i < r->n;) {
        int k = 1;
        while (k < chunk && i + (size_t)k < r->n && groupable(&r->reqs[i + k - 1], &r->reqs[i + k]))
            k++;
        push_ready(r, new_job(i, k));
        i += (size_t)k;
    }
}

/* Replaces a group by single requests, at the front of the queue. */
static void split_job(run *r, job *j)
{
    for (int i = j->count - 1; i >= 0; i--) {
        job *one = new_job(j->first + (size_t)i, 1);
        one->attempts = j->attempts;
        one->not_before = j->not_before;
        one->last_error = j->last_error ? ssf_xstrdup(j->last_error) : NULL;
        push_ready_front(r, one);
    }
    free_job(j);
}

/* ---- results ------------------------------------------------------------ */

/* Length of the longest head of secret that ends text at end, where a
 * server's long error text was cut before "..." (sse.c): the cut may fall
 * inside an echoed secret and leave its first characters. */
static size_t cut_secret_head(const char *text, const char *end, const char *secret)
{
    size_t most = strlen(secret) - 1, have = (size_t)(end - text);
    for (size_t n = most < have ? most : have; n > 0; n--)
        if (memcmp(end - n, secret, n) == 0) return n;
    return 0;
}

/* text with each whole secret, and each head of one cut short by "...",
 * replaced by "***". */
static void redact_secret(ssf_buf *text, const char *secret)
{
    size_t n = strlen(secret);
    ssf_buf next = {0};
    for (const char *p = text->data ? text->data : "";;) {
        const char *hit = strstr(p, secret), *cut = strstr(p, "...");
        if (cut && (!hit || cut < hit)) {
            size_t head = cut_secret_head(p, cut, secret);
            ssf_buf_append(&next, p, (size_t)(cut - p) - head);
            ssf_buf_puts(&next, head ? "***..." : "...");
            p = cut + 3;
        } else if (hit) {
            ssf_buf_append(&next, p, (size_t)(hit - p));
            ssf_buf_puts(&next, "***");
            p = hit + n;
        } else {
            ssf_buf_puts(&next, p);
            break;
        }
    }
    ssf_buf_free(text);
    *text = next;
}

/* msg with each secret replaced by "***" (free it). */
static char *redacted(const openai *b, const char *msg)
{
    ssf_buf out = {0};
    ssf_buf_puts(&out, msg);
    for (size_t k = 0; k < sizeof b->secrets / sizeof b->secrets[0]; k++)
        if (b->secrets[k] && b->secrets[k][0]) redact_secret(&out, b->secrets[k]);
    return ssf_buf_take(&out);
}

static int deliver_error(run *r, const job *j, const char *raw_msg, double latency_ms)
{
    char *msg = redacted(r->b, raw_msg);
    for (int i = 0; i < j->count && r->rc == 0; i++) {
        ssf_gen_result res = {.error = msg,
                              .request_json = j->body,
                              .prompt_tokens = -1,
                              .completion_tokens = -1,
                              .latency_ms = latency_ms,
                              .attempts = j->attempts};
        r->unfinished--;
        r->rc = r->done(&r->reqs[j->first + (size_t)i], &res, r->ud);
    }
    free(msg);
    return r->rc;
}

/* Usage counts a request, not a choice: with n > 1 the per-sample counts
 * are unknown (-1) rather than guessed. */
static void deliver(run *r, const job *j, const slot *s, double latency_ms)
{
    const ssf_completion *c = &s->acc;
    for (int i = 0; i < j->count && r->rc == 0; i++) {
        const ssf_choice *ch = &c->choices[i];
        ssf_gen_result res = {.text = ch->text.data ? ch->text.data : "",
                              .reasoning = ch->has_reasoning ? ch->reasoning.data : NULL,
                              .finish_reason = ch->finish_reason,
                              .request_json = j->body,
                              .prompt_tokens = j->count == 1 ? c->prompt_tokens : -1,
                              .completion_tokens = j->count == 1 ? c->completion_tokens : -1,
                              .latency_ms = latency_ms,
                              .attempts = j->attempts};
        r->unfinished--;
        r->rc = r->done(&r->reqs[j->first + (size_t)i], &res, r->ud);
    }
}

/* ---- circuit breaker ---------------------------------------------------- */

/* A notice for the user (backend.h), its secrets hidden. */
static void notify(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notify(const run *r, const char *fmt, ...)
{
    if (!r->self->notice) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    char *said = redacted(r->b, line);
    r->self->notice(said, r->self->notice_ud);
    free(said);
}

static void count_connection_failure(run *r, job *j)
{
    r->conn_failures++;
    if (!r->b->answered || r->breaker_off) return;
    if (!r->breaker_open && r->conn_failures < BREAKER_FAILURES) return;
    j->attempts--; /* the outage's fault, not the sample's */
    if (r->breaker_open) return;
    r->breaker_open = 1;
    r->breaker_since = ssf_monotonic_seconds();
    r->breaker_next = r->breaker_since + 1.0;
    r->health_polls = 0;
    notify(r,
           "%s stopped answering (%d connections failed in a row): requests paused, "
           "waiting up to %g s for it to answer again (--outage-wait); Ctrl-C stops "
           "and keeps every finished sample",
           r->b->endpoint, r->conn_failures, r->b->o.outage_wait_s);
}

static void start_health(run *r)
{
    openai *b = r->b;
    prepare(b, b->control, b->health_url ? b->health_url : b->models_url, NULL, 0, 0,
            HEALTH_TIMEOUT_S, 1);
    curl_multi_add_handle(b->multi, b->control->easy);
    r->health_busy = 1;
}

static void breaker_tick(run *r, double now)
{
    if (!r->breaker_open || r->health_busy) return;
    if (now - r->breaker_since > r->b->o.outage_wait_s) {
        r->breaker_open = 0; /* waited long enough: let the attempts decide */
        r->breaker_off = 1;
        notify(r,
               "%s did not answer for %.0f s: its remaining samples fail as their "
               "attempts run out; rerun the command once it is back",
               r->b->endpoint, now - r->breaker_since);
        return;
    }
    if (now >= r->breaker_next) start_health(r);
}

static void health_done(run *r)
{
    openai *b = r->b;
    long status = 0;
    curl_easy_getinfo(b->control->easy, CURLINFO_RESPONSE_CODE, &status);
    r->health_busy = 0;
    if (status >= 200 && status < 300) {
        r->breaker_open = 0;
        r->conn_failures = 0;
        notify(r, "%s answers again after %.0f s: requests resumed", b->endpoint,
               ssf_monotonic_seconds() - r->breaker_since);
        return;
    }
    if (status == 404 && b->health_url) { /* no /health here (OpenAI, Ollama): use /models */
        free(b->health_url);
        b->health_url = NULL;
        r->breaker_next = ssf_monotonic_seconds();
        return;
    }
    double wait = 1.0;
    for (int i = 0; i < r->health_polls && wait < HEALTH_POLL_MAX_S; i++)
        wait *= 2;
    r->health_polls++;
    r->breaker_next =
        ssf_monotonic_seconds() + (wait < HEALTH_POLL_MAX_S ? wait : HEALTH_POLL_MAX_S);
}

/* ---- the loop ----------------------------------------------------------- */

static slot *take_slot(openai *b)
{
    if (b->nfree > 0) return b->free_slots[--b->nfree];
    slot *s = new_slot();
    if (!s) return NULL;
    b->slots[b->nslots++] = s;
    return s;
}

/* The transfer's results are delivered: its texts go, and a long body, not
 * kept by an idle slot until it is taken again. */
static void release_slot(openai *b, slot *s)
{
    forget_held(s);
    ssf_completion_reset(&s->acc, 0);
    if (s->body.cap > KEPT_BODY_BYTES) ssf_buf_free(&s->body);
    s->job = NULL;
    b->free_slots[b->nfree++] = s;
}

/* Attempts a request gets after a failure `res`.  Nothing listening where
 * nothing ever answered is a wrong endpoint or a server not started, to be
 * named now rather than after a minute of backoff; a server that answered
 * before is restarting, and its requests keep every attempt. */
static int attempts_allowed(const openai *b, CURLcode res)
{
    int never = !b->answered && (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST);
    return never && UNANSWERED_CONNECT_ATTEMPTS < b->o.max_attempts ? UNANSWERED_CONNECT_ATTEMPTS
                                                                    : b->o.max_attempts;
}

static void retry_or_fail(run *r, job *j, ssf_buf *msg, int retryable, const slot *s, CURLcode res,
                          double latency_ms)
{
    openai *b = r->b;
    free(j->last_error);
    j->last_error = ssf_xstrdup(msg->data);
    if (retryable && j->attempts < attempts_allowed(b, res)) {
        double delay = ssf_retry_delay_s(&s->hints, time(NULL), j->attempts - 1,
                                         b->o.max_retry_delay_s, uniform(b));
        j->not_before = ssf_monotonic_seconds() + delay;
        heap_push(r, j);
        return;
    }
    if (retryable) prefix_gave_up(msg, j->attempts);
    deliver_error(r, j, msg->data, latency_ms);
    free_job(j);
}

static void transfer_done(run *r, slot *s, CURLcode res)
{
    openai *b = r->b;
    job *j = s->job;
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    double latency_ms = (ssf_monotonic_seconds() - s->started) * 1000.0;
    if (s->idle_fired) res = CURLE_OPERATION_TIMEDOUT;
    if (status > 0) {
        r->conn_failures = 0;
        b->answered = 1;
    } else if (ssf_retry_curl_connection(res)) {
        count_connection_failure(r, j);
    }
    ssf_buf msg = {0};
    int out = judge(b, s, j, res, status, &msg);
    if (out == OUT_OK) {
        deliver(r, j, s, latency_ms);
        free_job(j);
    } else if (out == OUT_SPLIT) {
        if (status == 200) b->chunk = 1; /* the server does not honour n */
        free(j->last_error);
        j->last_error = ssf_xstrdup(msg.data);
        split_job(r, j);
    } else {
        retry_or_fail(r, j, &msg, out == OUT_RETRY, s, res, latency_ms);
    }
    ssf_buf_free(&msg);
}

static void attach(run *r, job *j)
{
    openai *b = r->b;
    const ssf_gen_request *q = &r->reqs[j->first];
    const char *why = "cannot build the request";
    if (!j->body) j->body = build_body(b, q, j->count, q->sampling.max_new_tokens, b->stream, &why);
    if (!j->body) {
        ssf_buf msg = {0};
        ssf_buf_printf(&msg, "task %s doc %" PRId64 ": %s", q->task, q->doc, why);
        deliver_error(r, j, msg.data, 0);
        ssf_buf_free(&msg);
        free_job(j);
        return;
    }
    j->body_len = strlen(j->body);
    slot *s = take_slot(b);
    if (!s) {
        deliver_error(r, j, "curl_easy_init failed (out of memory?)", 0);
        free_job(j);
        return;
    }
    s->job = j;
    j->attempts++;
    prepare(b, s, b->url, j->body, j->body_len, b->stream, b->timeout_s, j->count);
    curl_multi_add_handle(b->multi, s->easy);
    r->attached++;
}

static void admit(run *r, double now)
{
    openai *b = r->b;
    int chunk = b->chunk > 0 ? b->chunk : 1; /* 0: not probed since nothing could be grouped */
    while (r->heap_len > 0 && r->heap[0]->not_before <= now)
        push_ready(r, heap_pop(r));
    while (!r->breaker_open && r->ready && r->attached < b->o.concurrency && r->rc == 0) {
        job *j = pop_ready(r);
        if (j->count > chunk)
            split_job(r, j); /* n turned out not to be honoured */
        else
            attach(r, j);
    }
}

static void drain(run *r)
{
    openai *b = r->b;
    CURLMsg *m;
    int left;
    while (r->rc == 0 && (m = curl_multi_info_read(b->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result; /* m dies with the removal */
        char *p = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &p);
        slot *s = (slot *)p;
        curl_multi_remove_handle(b->multi, e);
        if (s == b->control) {
            forget_held(s);
            health_done(r);
            continue;
        }
        r->attached--;
        transfer_done(r, s, res);
        release_slot(b, s);
    }
}

static int poll_timeout_ms(const run *r, double now)
{
    if (r->ready && !r->breaker_open && r->attached < r->b->o.concurrency) return 0;
    double wait = POLL_MAX_MS / 1000.0;
    if (r->heap_len > 0 && r->heap[0]->not_before - now < wait) wait = r->heap[0]->not_before - now;
    if (r->breaker_open && !r->health_busy && r->breaker_next - now < wait)
        wait = r->breaker_next - now;
    return wait <= 0 ? 0 : (int)(wait * 1000.0 + 0.999);
}

static int run_loop(run *r, ssf_error *err)
{
    openai *b = r->b;
    while (r->unfinished > 0 && r->rc == 0) {
        if (stopped(r))
            return ssf_fail(err, "interrupted: %zu samples not finished", r->unfinished);
        breaker_tick(r, ssf_monotonic_seconds());
        admit(r, ssf_monotonic_seconds());
        int running;
        CURLMcode mc = curl_multi_perform(b->multi, &running);
        if (mc == CURLM_OK) drain(r);
        if (mc == CURLM_OK && r->rc == 0 && r->unfinished > 0)
            mc = curl_multi_poll(b->multi, NULL, 0, poll_timeout_ms(r, ssf_monotonic_seconds()),
                                 NULL);
        if (mc != CURLM_OK) return ssf_fail(err, "curl: %s", curl_multi_strerror(mc));
    }
    return r->rc;
}

/* Abandons whatever is still attached or queued. */
static void run_cleanup(run *r)
{
    openai *b = r->b;
    for (int i = 0; i < b->nslots; i++) {
        slot *s = b->slots[i];
        if (!s->job) continue;
        curl_multi_remove_handle(b->multi, s->easy);
        free_job(s->job);
        release_slot(b, s);
    }
    if (r->health_busy) curl_multi_remove_handle(b->multi, b->control->easy);
    for (job *j; (j = pop_ready(r));)
        free_job(j);
    while (r->heap_len > 0)
        free_job(heap_pop(r));
    free(r->heap);
}

/* ---- setup: the model's name and the n probe ---------------------------- */

/* Sleeps, waking for *stop; 1 if stopped. */
static int sleep_s(const run *r, double s)
{
    for (double end = ssf_monotonic_seconds() + s; ssf_monotonic_seconds() < end;) {
        if (stopped(r)) return 1;
        struct timespec ts = {0, POLL_MAX_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return stopped(r);
}

/* Runs the control transfer to its end; 1 if stopped first. */
static int perform_control(run *r)
{
    openai *b = r->b;
    CURL *e = b->control->easy;
    curl_multi_add_handle(b->multi, e);
    for (;;) {
        int running, left;
        if (stopped(r)) break;
        curl_multi_perform(b->multi, &running);
        for (CURLMsg *m; (m = curl_multi_info_read(b->multi, &left));) {
            if (m->msg != CURLMSG_DONE || m->easy_handle != e) continue;
            b->control->result = m->data.result;
            curl_multi_remove_handle(b->multi, e);
            forget_held(b->control); /* its body is read now, not held against samples */
            return 0;
        }
        curl_multi_poll(b->multi, NULL, 0, POLL_MAX_MS, NULL);
    }
    curl_multi_remove_handle(b->multi, e);
    forget_held(b->control);
    return 1;
}

/* A GET (body NULL) or POST on the control slot, retried like a sample
 * (but a 500 is final for the n probe: llama.cpp's answer to n > 1).  0 on
 * a 2xx, 1 when stopped, -1 with msg set; *attempts counts the tries. */
static int control_call(run *r, const char *url, const char *body, double timeout_s, int probe,
                        ssf_buf *msg, int *attempts)
{
    openai *b = r->b;
    slot *s = b->control;
    for (int attempt = 1;; attempt++) {
        *attempts = attempt;
        prepare(b, s, url, body, body ? strlen(body) : 0, 0, timeout_s, 2);
        if (perform_control(r)) return 1;
        long status = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status > 0) b->answered = 1;
        if (status >= 200 && status < 300 && s->result == CURLE_OK) return 0;
        ssf_buf_reset(msg);
        int retry = describe_failure(b, s, url, s->result, status, msg);
        if (probe && status == 500) retry = 0;
        if (!retry || attempt >= attempts_allowed(b, s->result)) {
            if (retry) prefix_gave_up(msg, attempt);
            return -1;
        }
        double delay = ssf_retry_delay_s(&s->hints, time(NULL), attempt - 1, b->o.max_retry_delay_s,
                                         uniform(b));
        if (sleep_s(r, delay)) return 1;
    }
}

/* Setup failed: every sample carries the setup's attempts, so that the
 * count matches "gave up after N attempts" in the message. */
static int fail_all(run *r, const char *msg, int attempts)
{
    job j = {.first = 0, .count = (int)r->n, .attempts = attempts};
    return deliver_error(r, &j, msg, 0);
}

/* The first "data"[].id of GET /models. */
static int learn_model(run *r, ssf_buf *msg, int *attempts)
{
    openai *b = r->b;
    int rc = control_call(r, b->models_url, NULL, 60.0, 0, msg, attempts);
    if (rc) return rc;
    json_t *root = json_loadb(b->control->body.data, b->control->body.len, 0, NULL);
    const char *id =
        json_string_value(json_object_get(json_array_get(json_object_get(root, "data"), 0), "id"));
    if (id)
        b->model = ssf_xstrdup(id);
    else
        ssf_buf_printf(msg, "%s lists no model; pass --model NAME", b->models_url);
    json_decref(root);
    return id ? 0 : -1;
}

const char *ssf_backend_openai_model(ssf_backend *bk, ssf_error *err)
{
    openai *b = bk->impl;
    if (b->model) return b->model;
    run r = {.b = b};
    ssf_buf msg = {0};
    int attempts = 0, rc = learn_model(&r, &msg, &attempts);
    /* The server's text and the URL may hold the key or the password, as
     * a sample's error may (deliver_error). */
    char *said = redacted(b, rc < 0 && msg.data ? msg.data : b->models_url);
    if (rc == 1)
        ssf_fail(err, "interrupted while asking %s for its model", said);
    else if (rc)
        ssf_fail(err, "no --model given, and asking the server failed: %s", said);
    free(said);
    ssf_buf_free(&msg);
    return rc ? NULL : b->model;
}

/* Asks for n = 2 with max_tokens = 1 and counts the choices: servers that
 * ignore n (TGI, Ollama) answer one, llama.cpp refuses.  Any final answer
 * but two choices means one sample per request; only a server that never
 * answered is an error. */
static int probe_n(run *r, const ssf_gen_request *q, ssf_buf *msg, int *attempts)
{
    openai *b = r->b;
    const char *why = "cannot build the probe";
    char *body = build_body(b, q, 2, 1, 0, &why);
    if (!body) {
        b->chunk = 1;
        return 0;
    }
    int rc = control_call(r, b->url, body, b->timeout_s, 1, msg, attempts);
    free(body);
    if (rc == 1) return 1;
    if (rc && !b->answered) return -1; /* the server is not there at all */
    slot *s = b->control;
    int two = rc == 0 && ssf_completion_body(&s->acc, s->body.data, s->body.len) == 0 &&
              ssf_completion_count_ok(&s->acc);
    b->chunk = two ? AUTO_CHUNK : 1;
    return 0;
}

/* One one-token request of q's as the server's fields now stand: 0 when
 * answered 2xx or when it cannot be built, 1 when stopped, -1 when refused
 * or unanswered (msg set). */
static int probe_once(run *r, const ssf_gen_request *q, ssf_buf *msg, int *attempts)
{
    openai *b = r->b;
    const char *why = "cannot build the probe";
    char *body = build_body(b, q, 1, 1, 0, &why);
    if (!body) return 0; /* the sample meets the same refusal, and says why */
    int rc = control_call(r, b->url, body, b->timeout_s, 1, msg, attempts);
    free(body);
    return rc;
}

/* Whether the error body the control slot holds names a field ssfteval
 * adds to OpenAI's (OpenAI: "Unrecognized request argument supplied: X"). */
static int names_extension(const openai *b, const char *only)
{
    static const char *const fields[] = {"top_k",
                                         "min_p",
                                         "skip_special_tokens",
                                         "add_special_tokens",
                                         "add_generation_prompt",
                                         "continue_final_message"};
    const char *body = b->control->body.data;
    for (size_t i = 0; body && i < sizeof fields / sizeof fields[0]; i++)
        if ((!only || strcmp(only, fields[i]) == 0) && strstr(body, fields[i])) return 1;
    return 0;
}

/* Which fields this server takes, from one-token requests of a sample
 * whose top_k is off.  vLLM and SGLang take them all, with top_k -1 for
 * off (SGLang refuses 0); llama-cpp-python refuses -1 and takes 0;
 * OpenAI's own API refuses every field it does not define, so there the
 * extensions are left out (all off for such a sample).  Only a server that
 * never answered is an error: any other refusal is the samples' to meet. */
static int probe_fields(run *r, const ssf_gen_request *q, ssf_buf *msg, int *attempts)
{
    openai *b = r->b;
    b->top_k_off = -1;
    b->strict = 0;
    int rc = probe_once(r, q, msg, attempts);
    if (rc < 0 && b->answered && names_extension(b, "top_k")) {
        b->top_k_off = 0;
        rc = probe_once(r, q, msg, attempts);
    }
    if (rc < 0 && b->answered && names_extension(b, NULL)) {
        b->top_k_off = -1;
        b->strict = 1;
        rc = probe_once(r, q, msg, attempts);
    }
    if (rc == 1) return 1;
    if (rc && !b->answered) return -1; /* the server is not there at all */
    b->top_k_probed = 1;
    return 0;
}

static const ssf_gen_request *first_with_top_k_off(const run *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->reqs[i].sampling.top_k == 0) return &r->reqs[i];
    return NULL;
}

static const ssf_gen_request *first_groupable(const run *r)
{
    for (size_t i = 0; i + 1 < r->n; i++)
        if (groupable(&r->reqs[i], &r->reqs[i + 1])) return &r->reqs[i];
    return NULL;
}

/* 0: ready; 1: stopped; -1: every sample was failed with the reason. */
static int setup(run *r)
{
    openai *b = r->b;
    ssf_buf msg = {0};
    int rc = 0, attempts = 0;
    if (!b->model) {
        rc = learn_model(r, &msg, &attempts);
        if (rc < 0) prefix(&msg, "no --model given, and asking the server failed: ");
    }
    if (rc == 0 && !b->top_k_probed) {
        const ssf_gen_request *q = first_with_top_k_off(r);
        if (q) rc = probe_fields(r, q, &msg, &attempts);
    }
    if (rc == 0 && b->chunk == 0) {
        const ssf_gen_request *q = first_groupable(r);
        if (q) rc = probe_n(r, q, &msg, &attempts);
    }
    if (rc < 0) fail_all(r, msg.data, attempts);
    ssf_buf_free(&msg);
    return rc;
}

static int openai_generate(ssf_backend *bk, const ssf_gen_request *reqs, size_t n,
                           ssf_gen_done_fn done, void *ud, ssf_error *err)
{
    run r = {
        .b = bk->impl, .self = bk, .reqs = reqs, .n = n, .done = done, .ud = ud, .unfinished = n};
    if (n == 0) return 0;
    int rc = setup(&r);
    if (rc == 1) return ssf_fail(err, "interrupted: %zu samples not finished", r.unfinished);
    if (rc < 0) return r.rc;
    /* Until probed, one sample per request: the probe was skipped because
     * nothing here can be grouped. */
    enqueue_all(&r, r.b->chunk > 0 ? r.b->chunk : 1);
    rc = run_loop(&r, err);
    run_cleanup(&r);
    return rc;
}

/* ---- construction ------------------------------------------------------- */

void ssf_openai_options_default(ssf_openai_options *o)
{
    *o = (ssf_openai_options){.api = SSF_API_COMPLETIONS,
                              .concurrency = 64,
                              .request_n = 0,
                              .stream = -1,
                              .timeout_s = 0,
                              .max_attempts = 8,
                              .max_retry_delay_s = 60.0,
                              .outage_wait_s = OUTAGE_WAIT_DEFAULT_S,
                              .max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES};
}

static void openai_destroy(ssf_backend *bk)
{
    openai *b = bk->impl;
    for (int i = 0; i < b->nslots; i++)
        free_slot(b->slots[i]);
    free_slot(b->control);
    free(b->slots);
    free(b->free_slots);
    if (b->multi) curl_multi_cleanup(b->multi);
    curl_slist_free_all(b->headers);
    free(b->endpoint);
    for (size_t k = 0; k < sizeof b->secrets / sizeof b->secrets[0]; k++)
        free(b->secrets[k]);
    free(b->model);
    json_decref(b->stop_strings);
    free(b->url);
    free(b->models_url);
    free(b->health_url);
    free(b);
    free(bk);
    curl_global_cleanup();
}

static char *concat(const char *a, const char *b)
{
    ssf_buf s = {0};
    ssf_buf_printf(&s, "%s%s", a, b);
    return ssf_buf_take(&s);
}

static int check_options(const ssf_openai_options *o, ssf_error *err)
{
    const char *e = o->endpoint;
    if (!e || (strncasecmp(e, "http://", 7) != 0 && strncasecmp(e, "https://", 8) != 0) ||
        !e[strncasecmp(e, "http://", 7) == 0 ? 7 : 8])
        return ssf_fail_usage(err,
                              "--endpoint %s: not an http:// or https:// URL; use e.g. "
                              "http://127.0.0.1:8000/v1",
                              e ? e : "(none)");
    if (o->concurrency < 1 || o->max_attempts < 1 || o->request_n < 0 || o->timeout_s < 0 ||
        o->max_retry_delay_s < 0 || !(o->outage_wait_s >= 0))
        return ssf_fail_usage(err, "openai backend: concurrency and max_attempts must be at least "
                                   "1, request_n, timeout_s, max_retry_delay_s and outage_wait_s "
                                   "at least 0");
    for (size_t i = 0; i < o->n_stop_strings; i++) {
        const char *stop = o->stop_strings[i];
        if (!stop || !*stop || !ssf_utf8_valid(stop, strlen(stop)))
            return ssf_fail_usage(err, "openai backend: stop string %zu is empty or not UTF-8",
                                  i + 1);
    }
    return 0;
}

/* Each transfer holds a descriptor; 4096 of them need more than the usual
 * soft limit of 1024, and the hard limit is normally far higher. */
static void raise_fd_limit(int concurrency)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)concurrency + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void set_urls(openai *b, const char *endpoint)
{
    b->endpoint = ssf_xstrdup(endpoint);
    size_t len = strlen(b->endpoint);
    while (len > 0 && b->endpoint[len - 1] == '/')
        b->endpoint[--len] = '\0';
    b->url = concat(b->endpoint, b->o.api == SSF_API_CHAT ? "/chat/completions" : "/completions");
    b->models_url = concat(b->endpoint, "/models");
    if (len >= 3 && strcmp(b->endpoint + len - 3, "/v1") == 0) {
        char *base = ssf_xstrndup(b->endpoint, len - 3);
        b->health_url = concat(base, "/health");
        free(base);
    }
}

/* The key, and the user:password of scheme://user:password@host/... and
 * its password, each when long enough that hiding it cannot garble a
 * message. */
static void keep_secrets(openai *b, const char *api_key, const char *endpoint)
{
    if (api_key && strlen(api_key) >= 4) b->secrets[0] = ssf_xstrdup(api_key);
    const char *start = strstr(endpoint, "://");
    if (!start) return;
    start += 3;
    size_t host_part = strcspn(start, "/?#");
    const char *at = memchr(start, '@', host_part);
    if (at && at - start >= 4) b->secrets[1] = ssf_xstrndup(start, (size_t)(at - start));
    const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
    if (colon && at - colon - 1 >= 4) /* a server may echo the password alone */
        b->secrets[2] = ssf_xstrndup(colon + 1, (size_t)(at - colon - 1));
}

static struct curl_slist *make_headers(const char *api_key)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue stall on large prompts */
    if (api_key && *api_key) {
        ssf_buf auth = {0};
        ssf_buf_printf(&auth, "Authorization: Bearer %s", api_key);
        h = curl_slist_append(h, auth.data);
        memset(auth.data, 0, auth.len); /* the key lives only in the header list */
        ssf_buf_free(&auth);
    }
    return h;
}

ssf_backend *ssf_backend_openai_new(const ssf_openai_options *o, ssf_error *err)
{
    if (check_options(o, err)) return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        ssf_fail(err, "curl_global_init failed");
        return NULL;
    }
    openai *b = ssf_xcalloc(1, sizeof *b);
    ssf_backend *bk = ssf_xcalloc(1, sizeof *bk);
    *bk = (ssf_backend){
        .name = "openai", .generate = openai_generate, .destroy = openai_destroy, .impl = b};
    b->o = *o;
    b->o.endpoint = b->o.api_key = b->o.model = NULL;
    if (!b->o.max_response_bytes) b->o.max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES;
    if (!b->o.max_held_bytes)
        b->o.max_held_bytes =
            b->o.max_response_bytes > SIZE_MAX / 8 ? SIZE_MAX : 8 * b->o.max_response_bytes;
    set_urls(b, o->endpoint);
    b->o.endpoint = b->endpoint;
    b->model = o->model ? ssf_xstrdup(o->model) : NULL;
    b->stop_strings = json_array();
    for (size_t i = 0; i < o->n_stop_strings; i++)
        json_array_append_new(b->stop_strings, json_string(o->stop_strings[i]));
    b->o.stop_strings = NULL; /* b->stop_strings holds them */
    b->o.n_stop_strings = 0;
    b->stream = o->stream != 0;
    b->timeout_s = o->timeout_s > 0 ? o->timeout_s
                   : b->stream      ? STREAM_IDLE_DEFAULT_S
                                    : REQUEST_TIMEOUT_DEFAULT_S;
    b->chunk = o->request_n;
    b->top_k_off = -1; /* until probed: the vLLM and SGLang spelling */
    b->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() ^ 1;
    b->headers = make_headers(o->api_key);
    keep_secrets(b, o->api_key, o->endpoint);
    b->slots = ssf_xcalloc((size_t)o->concurrency, sizeof *b->slots);
    b->free_slots = ssf_xcalloc((size_t)o->concurrency, sizeof *b->free_slots);
    b->multi = curl_multi_init();
    b->control = new_slot();
    if (!b->multi || !b->control || !b->headers) {
        openai_destroy(bk);
        ssf_fail(err, "cannot set up libcurl (out of memory?)");
        return NULL;
    }
    curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)o->concurrency + 4);
    raise_fd_limit(o->concurrency);
    return bk;
}
