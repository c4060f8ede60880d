/*
 * test_retry.c - which failures are retried, and how long each wait is:
 * status codes, curl results, quota bodies, x-should-retry, Retry-After
 * in its three forms, the exponential backoff, its jitter and its cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "retry.h"

static void header(ssf_retry_hints *h, const char *line)
{
    ssf_retry_header_line(h, line, strlen(line));
}

static void test_status_table(void **state)
{
    (void)state;
    static const struct {
        long status;
        int retry;
    } table[] = {{408, 1}, {409, 1}, {429, 1}, {500, 1}, {502, 1}, {503, 1}, {504, 1}, {599, 1},
                 {400, 0}, {401, 0}, {403, 0}, {404, 0}, {405, 0}, {413, 0}, {418, 0}, {422, 0}};
    ssf_retry_hints h;
    ssf_retry_hints_reset(&h);
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        assert_int_equal(ssf_retry_status_retryable(table[i].status), table[i].retry);
        assert_int_equal(ssf_retry_http(table[i].status, "{}", &h), table[i].retry);
        assert_int_equal(ssf_retry_http(table[i].status, NULL, NULL), table[i].retry);
    }
}

static void test_quota_never(void **state)
{
    (void)state;
    const char *quota = "{\"error\":{\"message\":\"You exceeded your current quota\","
                        "\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}";
    const char *rate = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\","
                       "\"code\":\"rate_limit_exceeded\"}}";
    ssf_retry_hints h;
    ssf_retry_hints_reset(&h);
    assert_int_equal(ssf_retry_http(429, quota, &h), 0);
    assert_int_equal(ssf_retry_http(429, rate, &h), 1);
    header(&h, "x-should-retry: true\r\n");
    assert_int_equal(ssf_retry_http(429, quota, &h), 0); /* quota wins over the header */
}

static void test_should_retry_header(void **state)
{
    (void)state;
    ssf_retry_hints h;
    ssf_retry_hints_reset(&h);
    assert_int_equal(h.should_retry, -1);
    header(&h, "X-Should-Retry: false\r\n");
    assert_int_equal(h.should_retry, 0);
    assert_int_equal(ssf_retry_http(503, NULL, &h), 0);
    header(&h, "x-should-retry:true\r\n");
    assert_int_equal(h.should_retry, 1);
    assert_int_equal(ssf_retry_http(418, NULL, &h), 1);
    assert_int_equal(ssf_retry_http(400, NULL, &h), 0); /* client errors stay final */
    assert_int_equal(ssf_retry_http(401, NULL, &h), 0);
    assert_int_equal(ssf_retry_http(422, NULL, &h), 0);
    header(&h, "x-should-retry: maybe\r\n"); /* not a boolean: ignored */
    assert_int_equal(h.should_retry, 1);
    header(&h, "HTTP/1.1 503 Service Unavailable\r\n"); /* a new response */
    assert_int_equal(h.should_retry, -1);
}

static void test_headers(void **state)
{
    (void)state;
    ssf_retry_hints h;
    ssf_retry_hints_reset(&h);
    header(&h, "HTTP/1.1 429 Too Many Requests\r\n");
    header(&h, "Content-Type: application/json\r\n");
    header(&h, "Retry-After:   7  \r\n");
    header(&h, "retry-after-ms: 1500\r\n");
    header(&h, "x-retry-after: 99\r\n"); /* not ours */
    header(&h, "\r\n");
    assert_string_equal(h.retry_after, "7");
    assert_string_equal(h.retry_after_ms, "1500");
    header(&h, "HTTP/2 200\r\n");
    assert_string_equal(h.retry_after, "");
    assert_string_equal(h.retry_after_ms, "");
}

static void test_curl_codes(void **state)
{
    (void)state;
    static const CURLcode retry[] = {CURLE_COULDNT_CONNECT,
                                     CURLE_COULDNT_RESOLVE_HOST,
                                     CURLE_COULDNT_RESOLVE_PROXY,
                                     CURLE_RECV_ERROR,
                                     CURLE_SEND_ERROR,
                                     CURLE_GOT_NOTHING,
                                     CURLE_OPERATION_TIMEDOUT,
                                     CURLE_PARTIAL_FILE,
                                     CURLE_SSL_CONNECT_ERROR,
                                     CURLE_HTTP2,
                                     CURLE_HTTP2_STREAM,
                                     CURLE_WEIRD_SERVER_REPLY};
    /* of those, the ones where the server was not reached or dropped the
     * connection */
    static const CURLcode connection[] = {
        CURLE_COULDNT_CONNECT,   CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY,
        CURLE_SSL_CONNECT_ERROR, CURLE_GOT_NOTHING,          CURLE_SEND_ERROR,
        CURLE_RECV_ERROR};
    static const CURLcode final[] = {CURLE_OK,
                                     CURLE_URL_MALFORMAT,
                                     CURLE_UNSUPPORTED_PROTOCOL,
                                     CURLE_PEER_FAILED_VERIFICATION,
                                     CURLE_WRITE_ERROR,
                                     CURLE_ABORTED_BY_CALLBACK,
                                     CURLE_OUT_OF_MEMORY,
                                     CURLE_TOO_MANY_REDIRECTS};
    for (size_t i = 0; i < sizeof retry / sizeof *retry; i++)
        assert_true(ssf_retry_curl_retryable(retry[i]));
    for (size_t i = 0; i < sizeof final / sizeof *final; i++)
        assert_false(ssf_retry_curl_retryable(final[i]));
    /* The breaker counts failures to reach the server, not slow answers. */
    for (size_t i = 0; i < sizeof connection / sizeof *connection; i++)
        assert_true(ssf_retry_curl_connection(connection[i]));
    assert_false(ssf_retry_curl_connection(CURLE_OPERATION_TIMEDOUT));
    assert_false(ssf_retry_curl_connection(CURLE_WEIRD_SERVER_REPLY));
    assert_false(ssf_retry_curl_connection(CURLE_HTTP2));
    assert_false(ssf_retry_curl_connection(CURLE_PARTIAL_FILE));
    assert_false(ssf_retry_curl_connection(CURLE_OK));
}

static void test_in_band(void **state)
{
    (void)state;
    assert_true(ssf_retry_in_band(503, "server_error", "503"));
    assert_true(ssf_retry_in_band(500, "InternalServerError", NULL));
    assert_true(ssf_retry_in_band(429, NULL, NULL));
    assert_false(ssf_retry_in_band(400, "BadRequestError", "400"));
    assert_false(ssf_retry_in_band(404, NULL, NULL));
    assert_true(ssf_retry_in_band(0, "overloaded", NULL));
    assert_true(ssf_retry_in_band(0, "server_error", ""));
    assert_true(ssf_retry_in_band(0, NULL, NULL)); /* unknown: another attempt is cheap */
    assert_false(ssf_retry_in_band(0, "invalid_request_error", NULL));
    assert_false(ssf_retry_in_band(0, "", "context_length_exceeded"));
    assert_false(ssf_retry_in_band(0, "insufficient_quota", "insufficient_quota"));
    assert_false(ssf_retry_in_band(429, "requests", "insufficient_quota"));
    /* A request the server refuses as such is refused again, whatever the
     * spelling (OpenAI's, vLLM's exception names, Anthropic's). */
    assert_false(ssf_retry_in_band(0, "BadRequestError", NULL));
    assert_false(ssf_retry_in_band(0, "bad_request", NULL));
    assert_false(ssf_retry_in_band(0, "authentication_error", NULL));
    assert_false(ssf_retry_in_band(0, "permission_error", NULL));
    assert_false(ssf_retry_in_band(0, "not_found_error", NULL));
    assert_false(ssf_retry_in_band(0, "NotFoundError", NULL));
}

/* A generation the server stopped unfinished is retried, one withheld is
 * final, and every other reason is a whole text. */
static void test_finish_kinds(void **state)
{
    (void)state;
    assert_int_equal(ssf_finish_kind_of("abort"), SSF_FINISH_UNFINISHED);
    assert_int_equal(ssf_finish_kind_of("error"), SSF_FINISH_UNFINISHED);
    assert_int_equal(ssf_finish_kind_of("content_filter"), SSF_FINISH_WITHHELD);
    static const char *const whole[] = {"stop", "length", "tool_calls", "eos_token", "", NULL};
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++)
        assert_int_equal(ssf_finish_kind_of(whole[i]), SSF_FINISH_WHOLE);
}

/* ---- delays ------------------------------------------------------------------ */

static const time_t NOW = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */

static void test_http_dates(void **state)
{
    (void)state;
    assert_int_equal(ssf_retry_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), NOW);
    assert_int_equal(ssf_retry_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), NOW);
    assert_int_equal(ssf_retry_parse_http_date("Sun Nov  6 08:49:37 1994"), NOW);
    assert_int_equal(ssf_retry_parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), -1);
    /* RFC 850's two-digit years below 70 are this century's */
    assert_int_equal(ssf_retry_parse_http_date("Wednesday, 05-Nov-25 08:49:37 GMT"), 1762332577);
    /* fields out of range are no date */
    assert_int_equal(ssf_retry_parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT"), -1);
    assert_int_equal(ssf_retry_parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"), -1);
    assert_int_equal(ssf_retry_parse_http_date("Sun, 06 Nov 1994 08:60:00 GMT"), -1);
    assert_int_equal(ssf_retry_parse_http_date("Sun, 06 Nov 1969 08:49:37 GMT"), -1);
    assert_int_equal(ssf_retry_parse_http_date("soon"), -1);
    assert_int_equal(ssf_retry_parse_http_date(""), -1);
}

static double after(const char *ms, const char *s)
{
    ssf_retry_hints h;
    ssf_retry_hints_reset(&h);
    if (ms) snprintf(h.retry_after_ms, sizeof h.retry_after_ms, "%s", ms);
    if (s) snprintf(h.retry_after, sizeof h.retry_after, "%s", s);
    return ssf_retry_after_s(&h, NOW);
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_float_equal(after(NULL, NULL), -1, 0);
    assert_float_equal(after(NULL, "5"), 5, 1e-9);
    assert_float_equal(after(NULL, "1.5"), 1.5, 1e-9);
    assert_float_equal(after("250", NULL), 0.25, 1e-9);
    assert_float_equal(after("250", "9"), 0.25, 1e-9); /* the millisecond header first */
    assert_float_equal(after("soon", "9"), 9, 1e-9);   /* a bad one is skipped */
    assert_float_equal(after(NULL, "Sun, 06 Nov 1994 08:50:07 GMT"), 30, 1e-9);
    assert_true(after(NULL, "Sun, 06 Nov 1994 08:49:00 GMT") < 0); /* in the past */
    assert_float_equal(after(NULL, "tomorrow"), -1, 0);
    assert_float_equal(after(NULL, "5s"), -1, 0);
}

static double delay(const char *ms, const char *s, int retries, double u)
{
    ssf_retry_hints h;
    ssf_retry_hints_reset(&h);
    if (ms) snprintf(h.retry_after_ms, sizeof h.retry_after_ms, "%s", ms);
    if (s) snprintf(h.retry_after, sizeof h.retry_after, "%s", s);
    return ssf_retry_delay_s(&h, NOW, retries, 60.0, u);
}

/* The server's wish rules in (0, 120] s; outside, the backoff does. */
static void test_delay_honours_server(void **state)
{
    (void)state;
    assert_float_equal(delay(NULL, "7", 3, 0.5), 7, 1e-9);
    assert_float_equal(delay(NULL, "120", 0, 0), 120, 1e-9);
    assert_float_equal(delay("120000", NULL, 0, 0), 120, 1e-9);
    assert_float_equal(delay("20", NULL, 5, 0.9), 0.02, 1e-9);
    assert_float_equal(delay(NULL, "Sun, 06 Nov 1994 08:49:47 GMT", 0, 0), 10, 1e-9);
    assert_float_equal(delay(NULL, "120.5", 0, 0), 0.5, 1e-9); /* too long: backoff */
    assert_float_equal(delay(NULL, "3600", 2, 0), 2.0, 1e-9);
    assert_float_equal(delay("200000", NULL, 1, 0), 1.0, 1e-9);
    assert_float_equal(delay(NULL, "0", 1, 0), 1.0, 1e-9); /* not in (0, 120] */
    assert_float_equal(delay(NULL, "-3", 1, 0), 1.0, 1e-9);
    assert_float_equal(delay(NULL, "Sun, 06 Nov 1994 08:40:00 GMT", 0, 0), 0.5, 1e-9);
    assert_float_equal(ssf_retry_delay_s(NULL, NOW, 0, 60, 0), 0.5, 1e-9);
}

static void test_backoff_growth_and_cap(void **state)
{
    (void)state;
    double want[] = {0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60};
    for (int k = 0; k < 10; k++)
        assert_float_equal(ssf_retry_backoff_s(k, 60, 0), want[k], 1e-9);
    assert_float_equal(ssf_retry_backoff_s(3, 8, 0), 4, 1e-9); /* openai-python's cap */
    assert_float_equal(ssf_retry_backoff_s(4, 8, 0), 8, 1e-9);
    assert_float_equal(ssf_retry_backoff_s(9, 8, 0), 8, 1e-9);
    assert_float_equal(ssf_retry_backoff_s(100000, 60, 0), 60, 1e-9); /* no overflow */
    assert_float_equal(ssf_retry_backoff_s(-1, 60, 0), 0.5, 1e-9);
    assert_float_equal(ssf_retry_backoff_s(0, 0.1, 0), 0.1, 1e-9); /* a cap below the start */
}

/* The jitter only shortens, by at most a quarter: (1 - 0.25 u), u in [0, 1). */
static void test_jitter_bounds(void **state)
{
    (void)state;
    assert_float_equal(ssf_retry_backoff_s(2, 60, 0.5), 2 * 0.875, 1e-9);
    assert_float_equal(ssf_retry_backoff_s(7, 60, 0.999999), 60 * 0.75, 1e-3);
    srand(7);
    double lo = 1e9, hi = 0;
    for (int i = 0; i < 10000; i++) {
        double u = (double)rand() / ((double)RAND_MAX + 1.0);
        int k = i % 12;
        double full = ssf_retry_backoff_s(k, 60, 0);
        double d = ssf_retry_backoff_s(k, 60, u);
        assert_true(d <= full);
        assert_true(d > 0.75 * full);
        if (d / full < lo) lo = d / full;
        if (d / full > hi) hi = d / full;
    }
    assert_true(lo < 0.76); /* the whole range is used */
    assert_true(hi > 0.99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_quota_never),
        cmocka_unit_test(test_should_retry_header),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_curl_codes),
        cmocka_unit_test(test_in_band),
        cmocka_unit_test(test_finish_kinds),
        cmocka_unit_test(test_http_dates),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_delay_honours_server),
        cmocka_unit_test(test_backoff_growth_and_cap),
        cmocka_unit_test(test_jitter_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
