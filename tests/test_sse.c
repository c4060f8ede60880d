/*
 * test_sse.c - the SSE framing fed in every split, and the choices, usage
 * and errors read from streamed chunks and whole bodies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sse.h"
#include "ssfteval/records.h"

/* ---- framing ------------------------------------------------------------- */

#define MAX_EVENTS 64

typedef struct events {
    char *data[MAX_EVENTS];
    size_t n;
    int stop_at; /* return 7 from the callback for this event (-1: never) */
} events;

static int collect(const char *data, size_t len, void *ud)
{
    events *ev = ud;
    assert_true(ev->n < MAX_EVENTS);
    assert_int_equal(strlen(data), len); /* NUL-terminated, no embedded NUL here */
    ev->data[ev->n++] = strdup(data);
    return (int)ev->n - 1 == ev->stop_at ? 7 : 0;
}

static void events_free(events *ev)
{
    for (size_t i = 0; i < ev->n; i++)
        free(ev->data[i]);
    ev->n = 0;
}

/* Feeds text cut at the given offsets (ascending, ending with len). */
static void feed_split(const char *text, const size_t *cuts, size_t ncuts, events *ev)
{
    ssf_sse p;
    ssf_sse_init(&p, collect, ev);
    size_t at = 0;
    for (size_t i = 0; i < ncuts; i++) {
        assert_int_equal(ssf_sse_feed(&p, text + at, cuts[i] - at), 0);
        at = cuts[i];
    }
    ssf_sse_free(&p);
}

static void feed_whole(const char *text, events *ev)
{
    size_t len = strlen(text);
    feed_split(text, &len, 1, ev);
}

/* Every line end, comments, the other fields (one whose name only starts
 * with "data"), multi-line data, the single
 * optional space, an empty data field, and an event left open at EOF. */
static const char stream_text[] = ": ping from llama-server\n"
                                  "data: one\n\n"
                                  "data: two\r\n\r\n"
                                  "data: three\r\rdata:four\n"
                                  "\n"
                                  "event: message\nid: 7\nretry: 1000\ndatabase: no\n"
                                  "data: five\n\n"
                                  "data: line1\ndata: line2\r\ndata:  spaced\n\n"
                                  "data\n\n"
                                  "\n\n:only a comment\n\n"
                                  "data: {\"choices\":[]}\r\n\r\n"
                                  "data: [DONE]\n\n"
                                  "data: never dispatched";

static const char *const stream_events[] = {
    "one",   "two", "three", "four", "five", "line1\nline2\n spaced", "", "{\"choices\":[]}",
    "[DONE]"};

static void check_stream_events(const events *ev)
{
    size_t want = sizeof stream_events / sizeof *stream_events;
    assert_int_equal(ev->n, want);
    for (size_t i = 0; i < want; i++)
        assert_string_equal(ev->data[i], stream_events[i]);
}

static void test_framing_whole(void **state)
{
    (void)state;
    events ev = {.stop_at = -1};
    feed_whole(stream_text, &ev);
    check_stream_events(&ev);
    events_free(&ev);
}

static void test_framing_byte_by_byte(void **state)
{
    (void)state;
    size_t len = strlen(stream_text);
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    events ev = {.stop_at = -1};
    feed_split(stream_text, cuts, len, &ev);
    check_stream_events(&ev);
    events_free(&ev);
    free(cuts);
}

static void test_framing_random_splits(void **state)
{
    (void)state;
    size_t len = strlen(stream_text);
    size_t *cuts = malloc(2 * (len + 1) * sizeof *cuts);
    srand(12345);
    for (int round = 0; round < 500; round++) {
        size_t n = 0;
        for (size_t at = 0; at < len;) {
            at += 1 + (size_t)rand() % 9;
            if (round % 3 == 0 && at < len && n > 0) { /* an empty feed now and then */
                cuts[n] = cuts[n - 1];
                n++;
            }
            cuts[n++] = at < len ? at : len;
        }
        events ev = {.stop_at = -1};
        feed_split(stream_text, cuts, n, &ev);
        check_stream_events(&ev);
        events_free(&ev);
    }
    free(cuts);
}

/* "\r" at the end of one feed and "\n" at the start of the next are one
 * line end, not two (which would dispatch an extra, empty-line event). */
static void test_split_crlf(void **state)
{
    (void)state;
    events ev = {.stop_at = -1};
    ssf_sse p;
    ssf_sse_init(&p, collect, &ev);
    assert_int_equal(ssf_sse_feed(&p, "data: a\r", 8), 0);
    assert_int_equal(ssf_sse_feed(&p, "\ndata: b\r", 9), 0);
    assert_int_equal(ssf_sse_feed(&p, "\n\r", 2), 0);
    assert_int_equal(ssf_sse_feed(&p, "\n", 1), 0);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.data[0], "a\nb");
    ssf_sse_free(&p);
    events_free(&ev);
}

static void test_callback_stops(void **state)
{
    (void)state;
    events ev = {.stop_at = 1};
    ssf_sse p;
    ssf_sse_init(&p, collect, &ev);
    const char *text = "data: a\n\ndata: b\n\ndata: c\n\n";
    assert_int_equal(ssf_sse_feed(&p, text, strlen(text)), 7);
    assert_int_equal(ev.n, 2);
    assert_int_equal(ssf_sse_feed(&p, "data: d\n\n", 9), 7); /* stays stopped */
    assert_int_equal(ev.n, 2);
    ssf_sse_reset(&p);
    ev.stop_at = -1;
    assert_int_equal(ssf_sse_feed(&p, "data: e\n\n", 9), 0);
    assert_int_equal(ev.n, 3);
    assert_string_equal(ev.data[2], "e");
    ssf_sse_free(&p);
    events_free(&ev);
}

/* A transfer cut inside a line and an event leaves both half-read: the next
 * attempt's stream, on the same parser after reset, must not start with
 * them (its first event would be garbled, and that attempt wasted). */
static void test_reset_forgets_partial(void **state)
{
    (void)state;
    events ev = {.stop_at = -1};
    ssf_sse p;
    ssf_sse_init(&p, collect, &ev);
    const char *cut = "data: {\"a\":1}\ndata: {\"choices\":[{\"te";
    assert_int_equal(ssf_sse_feed(&p, cut, strlen(cut)), 0);
    assert_int_equal(ev.n, 0);
    ssf_sse_reset(&p);
    assert_int_equal(ssf_sse_feed(&p, "data: fresh\n\n", 13), 0);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.data[0], "fresh");
    ssf_sse_free(&p);
    events_free(&ev);
}

static void test_line_limit(void **state)
{
    (void)state;
    events ev = {.stop_at = -1};
    ssf_sse p;
    ssf_sse_init(&p, collect, &ev);
    size_t chunk = 1 << 20;
    char *a = malloc(chunk);
    memset(a, 'a', chunk);
    int rc = 0;
    for (size_t fed = 0; fed <= SSF_SSE_MAX_LINE && rc == 0; fed += chunk)
        rc = ssf_sse_feed(&p, a, chunk);
    assert_int_equal(rc, -1);
    assert_int_equal(ev.n, 0);
    ssf_sse_free(&p);
    free(a);
}

/* ---- choices from a stream ------------------------------------------------ */

static int to_completion(const char *data, size_t len, void *ud)
{
    return ssf_completion_event(ud, data, len);
}

/* Runs an SSE text through the parser into a completion for n choices,
 * one byte at a time. */
static int parse_stream(ssf_completion *c, int n, const char *text)
{
    ssf_completion_init(c, n);
    ssf_sse p;
    ssf_sse_init(&p, to_completion, c);
    int rc = 0;
    for (size_t i = 0; text[i] && rc == 0; i++)
        rc = ssf_sse_feed(&p, text + i, 1);
    ssf_sse_free(&p);
    return rc;
}

/* n = 2, chunks of both indices interleaved, the two reasoning names, an
 * event whose data is empty (nothing in it, not a malformed chunk), the
 * usage chunk with empty choices, [DONE]. */
static const char chat_stream[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":1,\"delta\":{\"reasoning\":\"think \"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm \"}}]}\n\n"
    "data: {\"choices\":[{\"index\":1,\"delta\":{\"reasoning\":\"more\",\"content\":null}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"ok\"}}]}\n\n"
    ": keep-alive\n\n"
    "data:\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"The answer\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"\\u00e9t\\u00e9 \\\\boxed{2}\"},"
    "\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" is 1\"},"
    "\"finish_reason\":\"stop\"}]}\n\n"
    "data: {\"choices\":[{\"index\":1,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,"
    "\"total_tokens\":46}}\n\n"
    "data: [DONE]\n\n";

static void test_chat_stream(void **state)
{
    (void)state;
    ssf_completion c;
    assert_int_equal(parse_stream(&c, 2, chat_stream), 0);
    assert_true(c.done);
    assert_false(c.failed);
    assert_true(ssf_completion_count_ok(&c));
    assert_true(ssf_completion_all_finished(&c));
    assert_string_equal(c.choices[0].text.data, "The answer is 1");
    assert_string_equal(c.choices[0].reasoning.data, "hmm ok");
    assert_string_equal(c.choices[0].finish_reason, "stop");
    assert_string_equal(c.choices[1].text.data, "\xc3\xa9t\xc3\xa9 \\boxed{2}");
    assert_string_equal(c.choices[1].reasoning.data, "think more");
    assert_string_equal(c.choices[1].finish_reason, "length");
    assert_int_equal(c.prompt_tokens, 12);
    assert_int_equal(c.completion_tokens, 34);
    ssf_completion_free(&c);
}

/* The same events in random splits give the same result. */
static void test_chat_stream_random_splits(void **state)
{
    (void)state;
    size_t len = strlen(chat_stream);
    srand(99);
    for (int round = 0; round < 200; round++) {
        ssf_completion c;
        ssf_completion_init(&c, 2);
        ssf_sse p;
        ssf_sse_init(&p, to_completion, &c);
        for (size_t at = 0; at < len;) {
            size_t k = 1 + (size_t)rand() % 40;
            if (k > len - at) k = len - at;
            assert_int_equal(ssf_sse_feed(&p, chat_stream + at, k), 0);
            at += k;
        }
        assert_true(c.done);
        assert_string_equal(c.choices[0].text.data, "The answer is 1");
        assert_string_equal(c.choices[1].reasoning.data, "think more");
        assert_int_equal(c.completion_tokens, 34);
        ssf_sse_free(&p);
        ssf_completion_free(&c);
    }
}

/* vLLM sent the reasoning under both names for a while: count it once. */
static void test_both_reasoning_names(void **state)
{
    (void)state;
    ssf_completion c;
    const char *text = "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"r1\","
                       "\"reasoning_content\":\"r1\"}}]}\n\n"
                       "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"r2\"}}]}\n\n"
                       "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},"
                       "\"finish_reason\":\"stop\"}]}\n\n";
    assert_int_equal(parse_stream(&c, 1, text), 0);
    assert_string_equal(c.choices[0].reasoning.data, "r1r2");
    assert_true(c.choices[0].has_reasoning);
    assert_false(c.done); /* no [DONE], but every choice finished: complete */
    assert_true(ssf_completion_all_finished(&c));
    ssf_completion_free(&c);
}

static void test_completions_stream(void **state)
{
    (void)state;
    ssf_completion c;
    const char *text =
        "data: {\"choices\":[{\"index\":0,\"text\":\"12\",\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"text\":\"3\",\"finish_reason\":\"stop\","
        "\"stop_reason\":null}]}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
        "\"completion_tokens\":2}}\n\n"
        "data: [DONE]\n\n";
    assert_int_equal(parse_stream(&c, 1, text), 0);
    assert_string_equal(c.choices[0].text.data, "123");
    assert_int_equal(c.choices[0].text.len, 3);
    assert_false(c.choices[0].has_reasoning);
    assert_int_equal(c.prompt_tokens, 5);
    ssf_completion_free(&c);
}

/* A text is one C string: a \u0000 in it becomes U+FFFD (what follows was
 * lost behind the NUL). */
static void test_nul_in_text(void **state)
{
    (void)state;
    ssf_completion c;
    const char *text = "data: {\"choices\":[{\"index\":0,\"text\":\"a\\u0000b \\\\boxed{7}\","
                       "\"finish_reason\":\"stop\"}]}\n\n"
                       "data: [DONE]\n\n";
    assert_int_equal(parse_stream(&c, 1, text), 0);
    assert_string_equal(c.choices[0].text.data, "a\xEF\xBF\xBD"
                                                "b \\boxed{7}");
    ssf_completion_free(&c);
}

/* EOF without [DONE] and with a choice unfinished: truncated. */
static void test_truncated_stream(void **state)
{
    (void)state;
    ssf_completion c;
    const char *text =
        "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":\"stop\"}]}\n\n"
        "data: {\"choices\":[{\"index\":1,\"text\":\"b\"}]}\n\n"
        "data: {\"choices\":[{\"index\":1,\"text\":\"c\",\"finish_reason\":\"st";
    assert_int_equal(parse_stream(&c, 2, text), 0);
    assert_false(c.done);
    assert_false(ssf_completion_all_finished(&c));
    assert_string_equal(c.choices[1].text.data, "b");
    ssf_completion_free(&c);
}

/* A server that ignores n answers index 0 only; one that mangles it sends
 * an index out of range. */
static void test_choice_count(void **state)
{
    (void)state;
    ssf_completion c;
    const char *one =
        "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    assert_int_equal(parse_stream(&c, 2, one), 0);
    assert_true(c.done);
    assert_false(ssf_completion_count_ok(&c));
    ssf_completion_free(&c);
    const char *beyond =
        "data: {\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":\"stop\"},"
        "{\"index\":2,\"text\":\"c\",\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"text\":\"b\",\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    assert_int_equal(parse_stream(&c, 2, beyond), 0);
    assert_true(c.bad_index);
    assert_false(ssf_completion_count_ok(&c));
    ssf_completion_free(&c);
}

/* vLLM's create_streaming_error_response: an error after HTTP 200. */
static void test_in_band_error(void **state)
{
    (void)state;
    ssf_completion c;
    const char *text =
        "data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\n"
        "data: {\"error\":{\"message\":\"The request queue is full.\",\"type\":\"server_error\","
        "\"param\":null,\"code\":503}}\n\n"
        "data: [DONE]\n\n";
    assert_int_equal(parse_stream(&c, 1, text), -1);
    assert_true(c.failed);
    assert_true(c.in_band);
    assert_false(c.done); /* the parser stopped at the error */
    assert_string_equal(c.error.message, "The request queue is full.");
    assert_string_equal(c.error.type, "server_error");
    assert_string_equal(c.error.code, "503");
    assert_int_equal(c.error.status, 503);
    ssf_completion_free(&c);

    const char *flat = "data: {\"object\":\"error\",\"message\":\"bad\\nthing\",\"type\":"
                       "\"BadRequestError\",\"param\":null,\"code\":400}\n\n";
    assert_int_equal(parse_stream(&c, 1, flat), -1);
    assert_true(c.in_band);
    assert_string_equal(c.error.message, "bad thing"); /* one line */
    assert_int_equal(c.error.status, 400);
    ssf_completion_free(&c);
}

static void test_malformed_event(void **state)
{
    (void)state;
    ssf_completion c;
    assert_int_equal(parse_stream(&c, 1, "data: {\"choices\":[{\"ind\n\n"), -1);
    assert_true(c.failed);
    assert_false(c.in_band);
    assert_non_null(strstr(c.error.message, "malformed stream event"));
    ssf_completion_free(&c);
    assert_int_equal(parse_stream(&c, 1, "data: [1,2]\n\n"), -1);
    assert_true(c.failed);
    ssf_completion_free(&c);
}

/* ---- whole bodies ------------------------------------------------------------ */

/* lm-eval #3244: content null with the reasoning, cut by length, is a
 * result, not an error. */
static void test_body_chat(void **state)
{
    (void)state;
    ssf_completion c;
    ssf_completion_init(&c, 1);
    const char *body =
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":null,\"reasoning_content\":\"long thought\"},"
        "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":9}}";
    assert_int_equal(ssf_completion_body(&c, body, strlen(body)), 0);
    assert_true(ssf_completion_count_ok(&c));
    assert_true(ssf_completion_all_finished(&c));
    assert_string_equal(c.choices[0].text.data, "");
    assert_string_equal(c.choices[0].reasoning.data, "long thought");
    assert_string_equal(c.choices[0].finish_reason, "length");
    assert_int_equal(c.completion_tokens, 9);

    ssf_completion_reset(&c, 2); /* reused for the next attempt */
    const char *two = "{\"choices\":[{\"index\":1,\"text\":\"b\",\"finish_reason\":\"stop\"},"
                      "{\"index\":0,\"text\":\"a\",\"finish_reason\":\"stop\"}]}";
    assert_int_equal(ssf_completion_body(&c, two, strlen(two)), 0);
    assert_true(ssf_completion_count_ok(&c));
    assert_string_equal(c.choices[0].text.data, "a");
    assert_string_equal(c.choices[1].text.data, "b");
    assert_int_equal(c.prompt_tokens, -1);

    ssf_completion_reset(&c, 2); /* no "index": the array's order */
    const char *unindexed = "{\"choices\":[{\"text\":\"a\",\"finish_reason\":\"stop\"},"
                            "{\"text\":\"b\",\"finish_reason\":\"stop\"}]}";
    assert_int_equal(ssf_completion_body(&c, unindexed, strlen(unindexed)), 0);
    assert_true(ssf_completion_count_ok(&c));
    assert_string_equal(c.choices[0].text.data, "a");
    assert_string_equal(c.choices[1].text.data, "b");
    ssf_completion_free(&c);
}

static void test_body_wrong_count(void **state)
{
    (void)state;
    ssf_completion c;
    ssf_completion_init(&c, 2);
    const char *one = "{\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":\"stop\"}]}";
    assert_int_equal(ssf_completion_body(&c, one, strlen(one)), 0);
    assert_false(ssf_completion_count_ok(&c));
    ssf_completion_reset(&c, 1);
    const char *dup = "{\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":\"stop\"},"
                      "{\"index\":0,\"text\":\"b\",\"finish_reason\":\"stop\"}]}";
    assert_int_equal(ssf_completion_body(&c, dup, strlen(dup)), 0);
    assert_false(ssf_completion_count_ok(&c));
    ssf_completion_free(&c);
}

static void test_body_errors(void **state)
{
    (void)state;
    ssf_completion c;
    ssf_completion_init(&c, 1);
    const char *err = "{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\","
                      "\"code\":\"rate_limit_exceeded\"}}";
    assert_int_equal(ssf_completion_body(&c, err, strlen(err)), -1);
    assert_true(c.in_band);
    assert_string_equal(c.error.code, "rate_limit_exceeded");
    assert_int_equal(c.error.status, 0);
    ssf_completion_reset(&c, 1);
    assert_int_equal(ssf_completion_body(&c, "{\"id\":1}", 8), -1);
    assert_false(c.in_band);
    ssf_completion_reset(&c, 1);
    assert_int_equal(ssf_completion_body(&c, "", 0), -1);
    assert_true(c.failed);
    ssf_completion_free(&c);
}

static void test_error_bodies(void **state)
{
    (void)state;
    ssf_api_error e;
    const char *tgi = "{\"error\":\"Model is overloaded\",\"error_type\":\"overloaded\"}";
    ssf_api_error_from_body(&e, tgi, strlen(tgi));
    assert_string_equal(e.message, "Model is overloaded");
    assert_string_equal(e.type, "overloaded");

    const char *detail = "{\"detail\":[{\"loc\":[\"body\",\"n\"],\"msg\":\"bad\"}]}";
    ssf_api_error_from_body(&e, detail, strlen(detail));
    assert_non_null(strstr(e.message, "\"msg\":\"bad\""));

    const char *quota = "{\"error\":{\"message\":\"You exceeded your current quota\","
                        "\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}";
    ssf_api_error_from_body(&e, quota, strlen(quota));
    assert_string_equal(e.code, "insufficient_quota");

    const char *html = "\n  Bad Gateway\r\n<html>...</html>";
    ssf_api_error_from_body(&e, html, strlen(html));
    assert_string_equal(e.message, "Bad Gateway ");

    ssf_api_error_from_body(&e, NULL, 0);
    assert_string_equal(e.message, "");

    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ssf_api_error_from_body(&e, big, strlen(big));
    assert_int_equal(strlen(e.message), sizeof e.message - 1);
    assert_string_equal(e.message + sizeof e.message - 4, "...");

    /* A long text of two-byte characters is cut between characters: one of
     * the two offsets lands the cut inside one. */
    for (int skew = 0; skew < 2; skew++) {
        char wide[2101] = "x";
        for (int i = 0; i < 1000; i++)
            memcpy(wide + skew + 2 * (size_t)i, "\xc3\xa9", 2);
        wide[skew + 2000] = '\0';
        ssf_api_error_from_body(&e, wide, strlen(wide));
        size_t kept = strlen(e.message) - 3;
        assert_string_equal(e.message + kept, "...");
        assert_true(kept >= sizeof e.message - 5);
        assert_true(ssf_utf8_valid(e.message, kept));
    }

    const char *fastapi = "{\"detail\":\"Not Found\"}"; /* the string itself, unquoted */
    ssf_api_error_from_body(&e, fastapi, strlen(fastapi));
    assert_string_equal(e.message, "Not Found");

    const char *code = "{\"object\":\"error\",\"message\":\"m\",\"code\":\"503\"}";
    ssf_api_error_from_body(&e, code, strlen(code));
    assert_int_equal(e.status, 503);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_whole),
        cmocka_unit_test(test_framing_byte_by_byte),
        cmocka_unit_test(test_framing_random_splits),
        cmocka_unit_test(test_split_crlf),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_reset_forgets_partial),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_chat_stream),
        cmocka_unit_test(test_chat_stream_random_splits),
        cmocka_unit_test(test_both_reasoning_names),
        cmocka_unit_test(test_completions_stream),
        cmocka_unit_test(test_nul_in_text),
        cmocka_unit_test(test_truncated_stream),
        cmocka_unit_test(test_choice_count),
        cmocka_unit_test(test_in_band_error),
        cmocka_unit_test(test_malformed_event),
        cmocka_unit_test(test_body_chat),
        cmocka_unit_test(test_body_wrong_count),
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_error_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
