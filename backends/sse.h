/*
 * sse.h - what an OpenAI-compatible server sends back: the Server-Sent
 * Events framing of a streamed response, and the choices, usage and errors
 * inside streamed chunks or a whole JSON body.
 *
 * Both halves are pure (no I/O), so the tests can feed them bytes in any
 * split and compare.
 */
#ifndef SSFTEVAL_BACKENDS_SSE_H
#define SSFTEVAL_BACKENDS_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

/* ---- SSE framing (WHATWG) ------------------------------------------------ */

/* Called once per complete event with its data lines joined by '\n'
 * (NUL-terminated).  A non-zero return stops the parser: feed returns it. */
typedef int (*ssf_sse_event_fn)(const char *data, size_t len, void *ud);

typedef struct ssf_sse {
    ssf_buf line; /* the current line, until its end arrives */
    ssf_buf data; /* the current event's data lines, each followed by '\n' */
    int after_cr; /* the last byte was '\r': a '\n' next belongs to it */
    int stopped;  /* non-zero: what stopped the parser (callback or limit) */
    ssf_sse_event_fn on_event;
    void *ud;
} ssf_sse;

/* Longest line accepted; a server that sends more is broken or hostile. */
#define SSF_SSE_MAX_LINE (16u << 20)

void ssf_sse_init(ssf_sse *p, ssf_sse_event_fn on_event, void *ud);
/* Forgets any partial line or event, for the next transfer. */
void ssf_sse_reset(ssf_sse *p);
void ssf_sse_free(ssf_sse *p);
/* Feeds the next bytes, split anywhere.  Returns 0, the callback's non-zero
 * value, or -1 for a line over SSF_SSE_MAX_LINE; after a non-zero return
 * the parser ignores further input until reset. */
int ssf_sse_feed(ssf_sse *p, const char *bytes, size_t n);

/* ---- choices, usage and errors -------------------------------------------- */

/* An error object as servers send it, in a non-2xx body or in-band in a
 * stream: {"error": {"message", "type", "code"}}, the flat
 * {"object": "error", "message", "type", "code"} (vLLM, SGLang),
 * {"error": "...", "error_type": "..."} (TGI) or {"detail": "..."} (FastAPI). */
typedef struct ssf_api_error {
    char message[512]; /* one line */
    char type[64];
    char code[64]; /* the code as text, numeric or not */
    long status;   /* a numeric code (e.g. 503), 0 if none */
} ssf_api_error;

/* Fills e from a JSON error body; a body that is not JSON gives its first
 * line as the message.  Always leaves a usable (possibly empty) message. */
void ssf_api_error_from_body(ssf_api_error *e, const char *body, size_t len);

typedef struct ssf_choice {
    ssf_buf text;      /* content (chat) or text (completions) */
    ssf_buf reasoning; /* reasoning_content or reasoning */
    int has_reasoning;
    char *finish_reason; /* NULL until the server sends one */
    int seen;
} ssf_choice;

/* The response to a request for n choices, built from streamed chunks or
 * from a whole body. */
typedef struct ssf_completion {
    int n;
    ssf_choice *choices;
    int64_t prompt_tokens, completion_tokens; /* -1 until usage arrives */
    int done;                                 /* data: [DONE] arrived */
    int bad_index;                            /* a choice index outside 0..n-1 arrived */
    int nchoices_body;                        /* whole body: how many choices it held */
    int failed;                               /* an error event or malformed JSON; see error */
    int in_band;                              /* failed because the server sent an error object */
    ssf_api_error error;
} ssf_completion;

void ssf_completion_init(ssf_completion *c, int n);
/* Empties it for a new attempt expecting n choices. */
void ssf_completion_reset(ssf_completion *c, int n);
void ssf_completion_free(ssf_completion *c);

/* One SSE event's data.  Returns -1 (and sets failed and error) for an
 * error object or malformed JSON, else 0. */
int ssf_completion_event(ssf_completion *c, const char *data, size_t len);
/* A whole non-streamed body.  Returns -1 (and sets failed and error) for
 * an error object or malformed JSON, else 0. */
int ssf_completion_body(ssf_completion *c, const char *body, size_t len);

/* Every choice 0..n-1 has a finish_reason. */
int ssf_completion_all_finished(const ssf_completion *c);
/* Every choice 0..n-1 was seen, no other index was, and (whole body) the
 * body held exactly n: the server honoured n. */
int ssf_completion_count_ok(const ssf_completion *c);

#endif
