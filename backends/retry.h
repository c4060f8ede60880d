/*
 * retry.h - when to try an HTTP request again and how long to wait first,
 * after openai-python (_should_retry, _calculate_retry_timeout) with the
 * stricter rules ssfteval needs: never retry a client error or a quota
 * error, whatever the headers say.
 *
 * Pure functions of what came back (status, curl result, headers, body)
 * and of the clock and a random number passed in, so the tests can pin them.
 */
#ifndef SSFTEVAL_BACKENDS_RETRY_H
#define SSFTEVAL_BACKENDS_RETRY_H

#include <time.h>

/* The longest wait a server may ask for; a longer Retry-After is ignored
 * in favour of the backoff. */
#define SSF_RETRY_MAX_AFTER_S 120.0
#define SSF_RETRY_INITIAL_S 0.5

/* The response headers that steer retries, as received. */
typedef struct ssf_retry_hints {
    int should_retry;        /* x-should-retry: -1 absent, 0 false, 1 true */
    char retry_after_ms[32]; /* raw values, "" when absent */
    char retry_after[64];
} ssf_retry_hints;

void ssf_retry_hints_reset(ssf_retry_hints *h);
/* Records one raw header line ("Name: value\r\n") if it is one of the
 * above; a status line ("HTTP/...") starts a new response and resets h. */
void ssf_retry_header_line(ssf_retry_hints *h, const char *line, size_t len);

/* 408, 409, 429 and >= 500. */
int ssf_retry_status_retryable(long status);
/* A curl result worth another attempt: timeouts and connection failures
 * (refused, reset, nothing received, cut short), not misconfiguration
 * such as a malformed URL or a certificate that does not verify. */
int ssf_retry_curl_retryable(int curl_code);
/* A curl result meaning the server could not be reached or dropped the
 * connection: what the circuit breaker counts.  Timeouts are not, since a
 * busy server that is up causes them. */
int ssf_retry_curl_connection(int curl_code);
/* The decision for an HTTP error response: quota errors and 400, 401, 403,
 * 404, 422 never; else x-should-retry when present; else by status. */
int ssf_retry_http(long status, const char *body, const ssf_retry_hints *h);
/* The decision for an error object that arrived inside a 200 stream, from
 * its numeric code if any, else its type and code text.  An error that
 * names neither an overload nor a bad request is retried. */
int ssf_retry_in_band(long status, const char *type, const char *code);

/* What a choice's finish_reason says of its text.  "abort" and "error"
 * (vLLM, SGLang) mean the server stopped the generation unfinished: worth
 * another attempt, never a graded answer.  "content_filter" (OpenAI) means
 * the text was withheld: final, and not the model's answer either.  Any
 * other reason (stop, length, tool_calls, a server's own) is a whole text. */
typedef enum ssf_finish_kind {
    SSF_FINISH_WHOLE,
    SSF_FINISH_UNFINISHED,
    SSF_FINISH_WITHHELD
} ssf_finish_kind;
ssf_finish_kind ssf_finish_kind_of(const char *finish_reason);

/* The wait the server asked for, in seconds: retry-after-ms, else
 * Retry-After as seconds or as an HTTP date relative to now; -1 when
 * neither is present or parses. */
double ssf_retry_after_s(const ssf_retry_hints *h, time_t now);
/* min(0.5 * 2^retries_taken, cap) * (1 - 0.25 u) for u in [0, 1): the
 * jitter only shortens, by up to a quarter. */
double ssf_retry_backoff_s(int retries_taken, double cap, double u);
/* The delay before attempt retries_taken + 2: the server's wish when it
 * lies in (0, 120] s, else the backoff. */
double ssf_retry_delay_s(const ssf_retry_hints *h, time_t now, int retries_taken, double cap,
                         double u);

/* Parses an HTTP date (IMF-fixdate, RFC 850 or asctime form); -1 if it
 * is none of them. */
time_t ssf_retry_parse_http_date(const char *s);

#endif
