/*
 * mockserver.h - a fault-injecting stand-in for an OpenAI-compatible server
 * (vLLM, llama.cpp, TGI, OpenAI), so that backends/openai.c can be tested
 * offline and deterministically.
 *
 * It binds 127.0.0.1 on a port the kernel picks and serves
 *   POST /v1/completions, POST /v1/chat/completions   (stream or not, n >= 1)
 *   GET  /v1/models, GET /health
 * with one thread per connection, so that thousands of clients can wait at
 * once and a slow or stalled answer holds up nobody else.
 *
 * Text is a pure function of (seed, prompt): choice i of a request with seed S
 * gets seed S + i (vLLM's rule), so a test can compute every sample's text
 * with mockserver_expected() and prove that seeds and n grouping are right.
 * For chat the prompt is the content of the last user message.
 *
 * Faults are chosen by rules over a per-key attempt counter, where the key of
 * a generation request is its seed (a hash of the prompt without one): "the
 * first 2 attempts of every key get a 503" lets the third succeed, so retries
 * can be tested for their result as well as their count.
 */
#ifndef SSFTEVAL_TESTS_MOCKSERVER_H
#define SSFTEVAL_TESTS_MOCKSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

enum mock_fault {
    MOCK_OK = 0,       /* a normal answer (also: an unused rule) */
    MOCK_SLOW,         /* the answer comes after slow_ms */
    MOCK_429,          /* rate limited (OpenAI body), with the retry_after_* headers */
    MOCK_TGI_429,      /* TGI's {"error":"Model is overloaded","error_type":"overloaded"} */
    MOCK_500,          /* vLLM's flat {"object":"error",...} body */
    MOCK_503,          /* OpenAI's nested {"error":{...}} body, with the retry_after_* headers */
    MOCK_RESET,        /* the connection is reset before any response */
    MOCK_STALL,        /* stream: fault_after events, then silence for stall_ms, then the rest;
                          non-streaming: silence for stall_ms, then the answer */
    MOCK_TRUNCATED,    /* non-streaming: the body stops short of its Content-Length;
                          stream: fault_after events, then a clean end without [DONE] */
    MOCK_INVALID_JSON, /* a complete 200 answer whose JSON is broken (stream: one bad event) */
    MOCK_STREAM_ERROR, /* stream: fault_after events, then data: {"error":{...}} and [DONE];
                          non-streaming: a 200 whose body is {"error":{...}} */
    MOCK_400,          /* 400 BadRequestError (context too long): never worth a retry */
    MOCK_QUOTA,        /* 429 insufficient_quota: never worth a retry */
    MOCK_LENGTH_EMPTY, /* finish_reason "length" with empty content (null in chat with reasoning) */
    MOCK_ABORT,        /* vLLM aborting a request: stream: fault_after events, then every
                          choice ends with finish_reason "abort" and [DONE]; non-streaming:
                          a 200 whose choices end "abort" */
    MOCK_FILTERED,     /* the same with finish_reason "content_filter": never worth a retry */
    MOCK_401,          /* OpenAI's 401 for a wrong API key: never worth a retry */
    MOCK_ENDLESS,      /* a 200 that never ends: stream: text events without end;
                          non-streaming: a JSON body without end */
    MOCK_NO_CHOICES,   /* a whole 200 answer with no choice in it (stream: only [DONE]) */
    MOCK_NO_FINISH,    /* no finish_reason: stream: fault_after events, then [DONE] at once;
                          non-streaming: the whole answer with finish_reason null */
    MOCK_REFUSED_IN_BAND, /* a 400 (context too long) after HTTP 200: stream: fault_after events,
                             then data: {"error":{...,"code":400}} and [DONE]; non-streaming: a
                             200 whose body is that error: never worth a retry */
    MOCK_DONE_DROP,       /* stream: the whole answer and [DONE], then the connection drops
                             before the chunked body's end; non-streaming: a normal answer */
    MOCK_403,             /* OpenAI's 403 for a key without access to the model */
    MOCK_HANGUP,          /* the connection closed (FIN) with no response: libcurl's "Empty
                             reply from server", a server that took the request and died */
};

/* A rule matches attempt a (counted from 0) of key k when from <= a <
 * from + count (count 0: no end) and k % mod == rem (mod 0: every key).  The
 * first matching rule decides; none: MOCK_OK. */
struct mock_rule {
    enum mock_fault fault;
    unsigned from, count;
    unsigned mod, rem;
};

enum mock_n {
    MOCK_N_HONOUR,     /* n choices, choice i with seed + i (vLLM, SGLang, OpenAI) */
    MOCK_N_IGNORE,     /* always one choice (TGI, Ollama, llama-cpp-python) */
    MOCK_N_REJECT,     /* 400 "Only one completion choice is allowed" unless n == 1 (llama.cpp) */
    MOCK_N_REJECT_500, /* the same refusal as a 500, as llama.cpp's server answers it */
    MOCK_N_REJECT_422, /* a 422 in vLLM's flat error body ("n must be 1 ..."), as a server
                          validating the request refuses it */
};

enum mock_dialect {
    MOCK_DIALECT_VLLM,     /* every field ssfteval sends (vLLM, SGLang) */
    MOCK_DIALECT_LLAMA_PY, /* top_k -1 refused, naming top_k (llama-cpp-python) */
    MOCK_DIALECT_OPENAI,   /* any field OpenAI does not define refused, as api.openai.com does */
};

enum mock_reasoning {
    MOCK_REASONING_OFF,     /* the whole text in content */
    MOCK_REASONING_CONTENT, /* chat: the reasoning in "reasoning_content" (SGLang, llama.cpp) */
    MOCK_REASONING_FIELD,   /* chat: the reasoning part in "reasoning" (vLLM since late 2025) */
};

#define MOCK_MAX_RULES 8

struct mockserver_options {
    struct mock_rule rules[MOCK_MAX_RULES];
    enum mock_n n_mode;
    enum mock_reasoning reasoning;
    enum mock_dialect dialect;
    const char *model;       /* the served id (NULL: "mock-model"); another "model" gets 404 */
    unsigned delay_ms;       /* before every generation answer */
    unsigned token_delay_ms; /* between stream events */
    unsigned slow_ms;        /* MOCK_SLOW */
    unsigned stall_ms;       /* MOCK_STALL */
    unsigned fault_after;    /* stream events sent before a mid-stream fault (0: half of them) */
    unsigned chunks;         /* deltas per part of a choice when streaming (0: 4) */
    double retry_after_s;    /* Retry-After on 429 and 503 (0: none) */
    unsigned retry_after_ms; /* retry-after-ms on 429 and 503 (0: none) */
    unsigned health_fail;    /* GET /health answers 503 to the first K polls */
    int no_models;           /* GET /v1/models lists none */
    unsigned port;           /* where to listen (0: a free port the kernel picks) */
    const char *tls_dir;     /* https with its server.pem, server-key.pem (NULL: http) */
};

struct mockserver_stats {
    size_t requests;         /* every HTTP request */
    size_t generations;      /* POSTs to the two generation routes */
    size_t health, models;   /* GET /health, GET /v1/models */
    size_t choices;          /* choices in complete, fault-free answers */
    size_t resets;           /* connections reset on purpose */
    size_t multi_n;          /* generation requests with n > 1 */
    long max_n;              /* the largest n asked for */
    size_t connections;      /* connections accepted */
    size_t peak_connections; /* most connections open at once */
    size_t status[600];      /* answers queued, by HTTP status */
};

struct mockserver;

/* Also raises this process's RLIMIT_NOFILE as far as allowed (see below). */
struct mockserver *mockserver_start(const struct mockserver_options *options, ssf_error *err);
unsigned mockserver_port(struct mockserver *server);
void mockserver_stop(struct mockserver *server);

void mockserver_get_stats(struct mockserver *server, struct mockserver_stats *out);
/* Generation requests whose key (seed) was `key`. */
unsigned mockserver_attempts(struct mockserver *server, uint64_t key);
/* Choices with this seed in complete, fault-free answers. */
unsigned mockserver_served(struct mockserver *server, uint64_t seed);
/* The body of the latest generation request (malloc'd; NULL before any). */
char *mockserver_last_request(struct mockserver *server);

/* The answer the server gives for (seed, prompt): the boxed value, and the
 * text in its two parts (malloc'd); the full text is reasoning + content. */
unsigned mockserver_expected_answer(uint64_t seed);
void mockserver_expected(uint64_t seed, const char *prompt, char **reasoning, char **content);
char *mockserver_expected_text(uint64_t seed, const char *prompt);

/* Raises the soft RLIMIT_NOFILE to min(want, hard limit); returns the new
 * soft limit.  Thousands of loopback connections need two descriptors each
 * in one process. */
unsigned long mockserver_raise_fd_limit(unsigned long want);

#endif
