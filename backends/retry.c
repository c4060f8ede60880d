/*
 * retry.c - retry decisions and delays for the OpenAI backend.
 *
 * The shape is openai-python's: retry 408, 409, 429 and 5xx, timeouts and
 * connection errors; obey x-should-retry; wait what retry-after-ms or
 * Retry-After says when that is in (0, 120] s, else back off exponentially
 * with up to 25 % of negative jitter.  Two rules are stricter, because a
 * retry there only burns time and quota: a quota error is final even as a
 * 429, and a client error (400, 401, 403, 404, 422) is final even when a
 * proxy says x-should-retry: true.
 */
#include "retry.h"
#include "ssfteval/util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

void ssf_retry_hints_reset(ssf_retry_hints *h)
{
    h->should_retry = -1;
    h->retry_after_ms[0] = '\0';
    h->retry_after[0] = '\0';
}

/* Copies a header's value, trimmed, into dst. */
static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len > 0 && isspace((unsigned char)*v)) {
        v++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)v[len - 1]))
        len--;
    if (len >= cap) len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static int header_is(const char *line, size_t name_len, const char *name)
{
    return name_len == strlen(name) && strncasecmp(line, name, name_len) == 0;
}

void ssf_retry_header_line(ssf_retry_hints *h, const char *line, size_t len)
{
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        ssf_retry_hints_reset(h);
        return;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon) return;
    size_t name_len = (size_t)(colon - line), vlen = len - name_len - 1;
    if (header_is(line, name_len, "retry-after-ms")) {
        copy_value(h->retry_after_ms, sizeof h->retry_after_ms, colon + 1, vlen);
    } else if (header_is(line, name_len, "retry-after")) {
        copy_value(h->retry_after, sizeof h->retry_after, colon + 1, vlen);
    } else if (header_is(line, name_len, "x-should-retry")) {
        char v[16];
        copy_value(v, sizeof v, colon + 1, vlen);
        if (strcasecmp(v, "true") == 0)
            h->should_retry = 1;
        else if (strcasecmp(v, "false") == 0)
            h->should_retry = 0;
    }
}

int ssf_retry_status_retryable(long status)
{
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

int ssf_retry_curl_retryable(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

int ssf_retry_curl_connection(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return 1;
    default:
        return 0;
    }
}

static int never_retried(long status)
{
    return status == 400 || status == 401 || status == 403 || status == 404 || status == 422;
}

int ssf_retry_http(long status, const char *body, const ssf_retry_hints *h)
{
    if (body && strstr(body, "insufficient_quota")) return 0;
    if (never_retried(status)) return 0;
    if (h && h->should_retry >= 0) return h->should_retry;
    return ssf_retry_status_retryable(status);
}

static int contains_any(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcasestr(s, *words)) return 1;
    return 0;
}

int ssf_retry_in_band(long status, const char *type, const char *code)
{
    static const char *const final[] = {
        "insufficient_quota", "invalid_request", "badrequest", "bad_request",    "not_found",
        "notfound",           "authentication",  "permission", "context_length", NULL};
    if (code && strstr(code, "insufficient_quota")) return 0;
    if (status >= 100) return !never_retried(status) && ssf_retry_status_retryable(status);
    if (contains_any(type ? type : "", final) || contains_any(code ? code : "", final)) return 0;
    return 1; /* overloaded, server_error, unknown: another attempt is cheap */
}

/* ---- delays ------------------------------------------------------------------ */

static int month_index(const char *m)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncasecmp(m, names + 3 * (size_t)i, 3) == 0 && m[3] == '\0') return i;
    return -1;
}

/* The three forms of RFC 9110's HTTP-date.  Every number has a width, so no
 * conversion can overflow; a form that does not match fails the count. */
time_t ssf_retry_parse_http_date(const char *s)
{
    char wd[16], mon[4];
    int d, y, hh, mm, ss;
    /* NOLINTBEGIN(cert-err34-c): the widths bound every number */
    int ok =
        sscanf(s, "%15[A-Za-z], %2d %3s %4d %2d:%2d:%2d GMT", wd, &d, mon, &y, &hh, &mm, &ss) == 7;
    if (!ok && sscanf(s, "%15[A-Za-z], %2d-%3s-%4d %2d:%2d:%2d GMT", wd, &d, mon, &y, &hh, &mm,
                      &ss) == 7) {
        ok = 1;
        if (y < 100) y += y < 70 ? 2000 : 1900; /* RFC 850's two-digit year */
    }
    if (!ok)
        ok = sscanf(s, "%15[A-Za-z] %3s %2d %2d:%2d:%2d %4d", wd, mon, &d, &hh, &mm, &ss, &y) == 7;
    /* NOLINTEND(cert-err34-c) */
    int m = ok ? month_index(mon) : -1;
    if (m < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970) return -1;
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = m, .tm_mday = d, .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
    return timegm(&tm);
}

/* A number that fills the whole (trimmed) string; -1 if not. */
static double parse_number(const char *s)
{
    char *end;
    double v = ssf_strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v)) return -1;
    return v;
}

double ssf_retry_after_s(const ssf_retry_hints *h, time_t now)
{
    if (h->retry_after_ms[0]) {
        double ms = parse_number(h->retry_after_ms);
        if (ms >= 0) return ms / 1000.0;
    }
    if (!h->retry_after[0]) return -1;
    double s = parse_number(h->retry_after);
    if (s >= 0) return s;
    time_t at = ssf_retry_parse_http_date(h->retry_after);
    return at < 0 ? -1 : difftime(at, now);
}

double ssf_retry_backoff_s(int retries_taken, double cap, double u)
{
    double d = SSF_RETRY_INITIAL_S;
    for (int k = 0; k < retries_taken && d < cap; k++)
        d *= 2; /* no overflow for huge k */
    if (d > cap) d = cap;
    return d * (1.0 - 0.25 * u);
}

double ssf_retry_delay_s(const ssf_retry_hints *h, time_t now, int retries_taken, double cap,
                         double u)
{
    double wish = h ? ssf_retry_after_s(h, now) : -1;
    if (wish > 0 && wish <= SSF_RETRY_MAX_AFTER_S) return wish;
    return ssf_retry_backoff_s(retries_taken, cap, u);
}

ssf_finish_kind ssf_finish_kind_of(const char *finish_reason)
{
    if (!finish_reason) return SSF_FINISH_WHOLE;
    if (strcmp(finish_reason, "abort") == 0 || strcmp(finish_reason, "error") == 0)
        return SSF_FINISH_UNFINISHED;
    return strcmp(finish_reason, "content_filter") == 0 ? SSF_FINISH_WITHHELD : SSF_FINISH_WHOLE;
}
