/*
 * backend.h - the one interface every generator implements: the replay of
 * stored generations, a remote OpenAI-compatible server, the in-process
 * engine.
 *
 * The pipeline hands a backend all the requests it wants at once; the
 * backend calls `done` once per request as each finishes, in any order,
 * from the thread that called generate.  A request that fails is reported
 * with result->error set and no text: the pipeline stores it as failed and
 * never grades it.
 */
#ifndef SSFTEVAL_BACKENDS_BACKEND_H
#define SSFTEVAL_BACKENDS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_sampling {
    double temperature;
    double top_p;
    long top_k;   /* 0 = off */
    double min_p; /* 0 = off */
    long max_new_tokens;
} ssf_sampling;

typedef struct ssf_gen_request {
    const char *task;
    int64_t doc;
    int tag;   /* 0 untagged, 1..6 <thinkK> */
    int index; /* among the question's samples with this tag */
    uint64_t seed;
    const char *prompt;       /* the fully rendered prompt text (chat template + tag suffix) */
    const char *user_content; /* the user message alone, for chat APIs */
    ssf_sampling sampling;
} ssf_gen_request;

/* Texts are C strings: a U+0000 the model wrote is kept as U+FFFD
 * (ssf_buf_append_text), so the text after it is graded too. */
typedef struct ssf_gen_result {
    const char *text;                         /* NULL when failed */
    const char *reasoning;                    /* reasoning_content, may be NULL */
    const char *finish_reason;                /* "stop", "length", ... */
    const char *error;                        /* non-NULL: failed, with the reason */
    const char *request_json;                 /* what was sent (no secrets), may be NULL */
    int64_t prompt_tokens, completion_tokens; /* -1 if unknown */
    double latency_ms;
    int attempts;
    const int32_t *token_ids; /* the generated ids, when the backend knows them (engine) */
    size_t n_token_ids;
} ssf_gen_result;

/* A sample's key as text, "task<US>doc<US>tag<US>index" (US: 0x1f, the
 * unit separator), for sets of samples keyed by it (replay.c, run.c). */
void ssf_sample_key(ssf_buf *b, const char *task, int64_t doc, int tag, int index);

/* Return non-zero to stop the backend early (it returns that value). */
typedef int (*ssf_gen_done_fn)(const ssf_gen_request *req, const ssf_gen_result *res, void *ud);

/* A line for the user while the backend works that concerns no one sample
 * (a server that stopped answering, and when it answers again). */
typedef void (*ssf_gen_notice_fn)(const char *line, void *ud);

typedef struct ssf_backend ssf_backend;
struct ssf_backend {
    const char *name; /* "replay", "openai", "engine" */
    int (*generate)(ssf_backend *b, const ssf_gen_request *reqs, size_t n, ssf_gen_done_fn done,
                    void *ud, ssf_error *err);
    void (*destroy)(ssf_backend *b);
    void *impl;
    /* Where notices go, set by the caller before generate; NULL: nowhere. */
    ssf_gen_notice_fn notice;
    void *notice_ud;
};

/* ---- remote OpenAI-compatible servers (openai.c) ------------------------ */

typedef enum ssf_openai_api {
    SSF_API_COMPLETIONS, /* /v1/completions with the client-rendered prompt */
    SSF_API_CHAT,        /* /v1/chat/completions with messages */
} ssf_openai_api;

typedef struct ssf_openai_options {
    const char *endpoint; /* base URL up to and including /v1, e.g. http://127.0.0.1:8000/v1 */
    const char *api_key;  /* Bearer token, may be NULL; never stored or logged */
    const char *model;    /* the request's "model" field (NULL: ask /v1/models) */
    ssf_openai_api api;
    int concurrency; /* transfers attached at once (default 64) */
    int request_n; /* 0: auto (probe whether the server honours n), k >= 1: at most k per request */
    int stream;    /* -1 auto (on), 0 off, 1 on */
    double timeout_s;         /* non-streaming: per attempt; streaming: idle time without a byte */
    int max_attempts;         /* per sample (default 8) */
    double max_retry_delay_s; /* cap of the exponential backoff (default 60) */
    double outage_wait_s;     /* how long the circuit breaker waits for a server that stopped
                                 answering before its samples' attempts decide (default 900) */
    const volatile int *stop; /* set (e.g. by SIGINT) to abandon in-flight work; may be NULL */
    const char *const *stop_strings; /* sent as "stop": the text ends before the first */
    size_t n_stop_strings;
    size_t max_response_bytes; /* one response, decoded, at most (default 256 MiB): a longer
                                  one (a server that never stops) is a failed attempt */
    size_t max_held_bytes;     /* all responses together, as held in memory (bodies, streams'
                                  texts so far), at most (default 8 x max_response_bytes) */
} ssf_openai_options;

/* Fills the defaults above. */
void ssf_openai_options_default(ssf_openai_options *o);

/* A backend that drives an OpenAI-compatible server (vLLM, SGLang,
 * llama.cpp, OpenAI) from one I/O thread with curl_multi: at most
 * `concurrency` transfers attached, connection reuse, TCP keepalive, SSE
 * streaming with an idle timeout, retries as openai-python does them
 * (408/409/429/5xx, timeouts, connection errors; Retry-After and
 * retry-after-ms up to 120 s; exponential backoff with jitter; never
 * 400/401/403/404/422 or quota errors) and a circuit breaker that pauses all
 * traffic and polls /health after many consecutive connection failures.
 * Every sample ends in exactly one `done` call: text, or error after the
 * last attempt.  A response with fewer choices than asked never counts. */
ssf_backend *ssf_backend_openai_new(const ssf_openai_options *o, ssf_error *err);

/* The model an openai backend asks for: options.model, or else the first
 * the server lists at /models, asked now (retried like a sample; NULL with
 * err when the server cannot say).  It names the run's model, so that a
 * server restarted with another model is another run.  The backend owns it. */
const char *ssf_backend_openai_model(ssf_backend *b, ssf_error *err);

/* Replays generations from a JSONL file of lines {"task", "doc", "tag",
 * "sample", "text", "finish_reason"} (tag 0 when untagged; lines in any
 * order).  A requested sample that the file lacks is reported failed
 * ("missing from FILE"), never scored. */
ssf_backend *ssf_backend_replay_new(const char *path, ssf_error *err);

/* The SHA-256 of the file as the replay backend read and indexed it (one
 * pass, so the digest is of the very bytes indexed); NULL when b is not a
 * replay backend.  Another file, or this one rewritten, is another run. */
const char *ssf_backend_replay_sha256(const ssf_backend *b);

#ifdef __cplusplus
}
#endif
#endif
