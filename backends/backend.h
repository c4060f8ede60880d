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
    const char *prompt; /* the fully rendered prompt text */
    ssf_sampling sampling;
} ssf_gen_request;

typedef struct ssf_gen_result {
    const char *text;          /* NULL when failed */
    const char *reasoning;     /* reasoning_content, may be NULL */
    const char *finish_reason; /* "stop", "length", ... */
    const char *error;         /* non-NULL: failed, with the reason */
    const char *request_json;  /* what was sent (no secrets), may be NULL */
    int64_t prompt_tokens, completion_tokens; /* -1 if unknown */
    double latency_ms;
    int attempts;
} ssf_gen_result;

/* Return non-zero to stop the backend early (it returns that value). */
typedef int (*ssf_gen_done_fn)(const ssf_gen_request *req, const ssf_gen_result *res, void *ud);

typedef struct ssf_backend ssf_backend;
struct ssf_backend {
    const char *name; /* "replay", "openai", "engine" */
    int (*generate)(ssf_backend *b, const ssf_gen_request *reqs, size_t n, ssf_gen_done_fn done,
                    void *ud, ssf_error *err);
    void (*destroy)(ssf_backend *b);
    void *impl;
};

/* Replays generations from a JSONL file of lines {"task", "doc", "tag",
 * "sample", "text", "finish_reason"} (tag 0 when untagged; lines in any
 * order).  A requested sample that the file lacks is reported failed
 * ("missing from FILE"), never scored. */
ssf_backend *ssf_backend_replay_new(const char *path, ssf_error *err);

#endif
