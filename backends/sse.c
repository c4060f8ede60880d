/*
 * sse.c - Server-Sent Events framing and the OpenAI response shapes that
 * travel in it (or in a whole JSON body).
 *
 * The framing follows the WHATWG rules: lines end in "\n", "\r\n" or "\r",
 * and a "\r\n" may be split across two feeds, so a trailing '\r' is
 * remembered; "data:" lines are joined with '\n'; lines starting with ':'
 * are comments (llama-server pings); a blank line dispatches the event.  An
 * event left incomplete at EOF is dropped, as the standard says: the caller
 * judges truncation from [DONE] and the finish reasons instead.
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- framing ---------------------------------------------------------------- */

void ssf_sse_init(ssf_sse *p, ssf_sse_event_fn on_event, void *ud)
{
    memset(p, 0, sizeof *p);
    p->on_event = on_event;
    p->ud = ud;
}

void ssf_sse_reset(ssf_sse *p)
{
    ssf_buf_reset(&p->line);
    ssf_buf_reset(&p->data);
    p->after_cr = 0;
    p->stopped = 0;
}

void ssf_sse_free(ssf_sse *p)
{
    ssf_buf_free(&p->line);
    ssf_buf_free(&p->data);
}

static int dispatch(ssf_sse *p)
{
    if (p->data.len == 0) return 0;
    p->data.data[--p->data.len] = '\0'; /* the '\n' after the last data line */
    int rc = p->on_event ? p->on_event(p->data.data, p->data.len, p->ud) : 0;
    ssf_buf_reset(&p->data);
    return rc;
}

/* One complete line, without its end. */
static int process_line(ssf_sse *p, const char *line, size_t len)
{
    if (len == 0) return dispatch(p);
    if (line[0] == ':') return 0;
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    if (name_len != 4 || memcmp(line, "data", 4) != 0) return 0; /* event:, id:, retry: unused */
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    ssf_buf_append(&p->data, value, value_len);
    ssf_buf_putc(&p->data, '\n');
    return 0;
}

static int end_line(ssf_sse *p)
{
    int rc = process_line(p, p->line.data ? p->line.data : "", p->line.len);
    ssf_buf_reset(&p->line);
    return rc;
}

static int append_line(ssf_sse *p, const char *s, size_t n)
{
    if (p->line.len + n > SSF_SSE_MAX_LINE) return -1;
    ssf_buf_append(&p->line, s, n);
    return 0;
}

int ssf_sse_feed(ssf_sse *p, const char *s, size_t n)
{
    if (p->stopped) return p->stopped;
    size_t i = 0;
    if (p->after_cr && n > 0) {
        p->after_cr = 0;
        if (s[0] == '\n') i = 1; /* the second half of a split "\r\n" */
    }
    int rc = 0;
    while (i < n && rc == 0) {
        size_t j = i;
        while (j < n && s[j] != '\n' && s[j] != '\r')
            j++;
        rc = append_line(p, s + i, j - i);
        if (rc || j == n) break;
        if (s[j] == '\r') {
            if (j + 1 == n)
                p->after_cr = 1;
            else if (s[j + 1] == '\n')
                j++;
        }
        rc = end_line(p);
        i = j + 1;
    }
    p->stopped = rc;
    return rc;
}

/* ---- error objects ----------------------------------------------------------- */

/* Copies s into a fixed field as one line: control characters become spaces
 * and a long text is cut with "...". */
static void copy_line(char *dst, size_t cap, const char *s, size_t len)
{
    size_t n = len;
    if (len > cap - 1) { /* cut before "...", at a UTF-8 character boundary */
        n = cap - 4;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[i] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
    }
    strcpy(dst + n, len > cap - 1 ? "..." : "");
}

static void copy_json_string(char *dst, size_t cap, const json_t *v)
{
    if (json_is_string(v)) copy_line(dst, cap, json_string_value(v), json_string_length(v));
}

static void read_code(ssf_api_error *e, const json_t *code)
{
    if (json_is_integer(code)) {
        e->status = (long)json_integer_value(code);
        snprintf(e->code, sizeof e->code, "%ld", e->status);
    } else if (json_is_string(code)) {
        copy_json_string(e->code, sizeof e->code, code);
        char *end;
        long v = strtol(e->code, &end, 10);
        if (end != e->code && *end == '\0') e->status = v;
    }
}

/* {"message", "type", "code"}, nested under "error" or flat. */
static void read_error_fields(ssf_api_error *e, const json_t *obj)
{
    copy_json_string(e->message, sizeof e->message, json_object_get(obj, "message"));
    copy_json_string(e->type, sizeof e->type, json_object_get(obj, "type"));
    read_code(e, json_object_get(obj, "code"));
}

/* FastAPI's {"detail": "..."} or {"detail": [{"msg": ...}, ...]}. */
static void read_detail(ssf_api_error *e, const json_t *detail)
{
    if (json_is_string(detail)) {
        copy_json_string(e->message, sizeof e->message, detail);
        return;
    }
    char *s = json_dumps(detail, JSON_COMPACT);
    if (s) copy_line(e->message, sizeof e->message, s, strlen(s));
    free(s);
}

/* Returns 1 if root is an error object (and fills e), else 0. */
static int read_error_object(ssf_api_error *e, const json_t *root)
{
    memset(e, 0, sizeof *e);
    const json_t *err = json_object_get(root, "error");
    const json_t *object = json_object_get(root, "object");
    if (json_is_object(err)) {
        read_error_fields(e, err);
    } else if (json_is_string(err)) { /* TGI */
        copy_json_string(e->message, sizeof e->message, err);
        copy_json_string(e->type, sizeof e->type, json_object_get(root, "error_type"));
    } else if (json_is_string(object) && strcmp(json_string_value(object), "error") == 0) {
        read_error_fields(e, root);
    } else if (json_object_get(root, "detail")) {
        read_detail(e, json_object_get(root, "detail"));
    } else {
        return 0;
    }
    return 1;
}

void ssf_api_error_from_body(ssf_api_error *e, const char *body, size_t len)
{
    memset(e, 0, sizeof *e);
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    if (json_is_object(root) && read_error_object(e, root)) {
        json_decref(root);
        return;
    }
    json_decref(root);
    if (!body) return;
    while (len > 0 && (*body == ' ' || *body == '\n' || *body == '\r' || *body == '\t')) {
        body++;
        len--;
    }
    const char *nl = memchr(body, '\n', len);
    copy_line(e->message, sizeof e->message, body, nl ? (size_t)(nl - body) : len);
}

/* ---- choices ----------------------------------------------------------------- */

void ssf_completion_init(ssf_completion *c, int n)
{
    memset(c, 0, sizeof *c);
    ssf_completion_reset(c, n);
}

static void free_choices(ssf_completion *c)
{
    for (int i = 0; i < c->n; i++) {
        ssf_buf_free(&c->choices[i].text);
        ssf_buf_free(&c->choices[i].reasoning);
        free(c->choices[i].finish_reason);
    }
    free(c->choices);
    c->choices = NULL;
    c->n = 0;
}

void ssf_completion_reset(ssf_completion *c, int n)
{
    free_choices(c);
    c->n = n > 0 ? n : 0;
    c->choices = ssf_xcalloc((size_t)c->n + 1, sizeof *c->choices);
    c->prompt_tokens = c->completion_tokens = -1;
    c->done = c->bad_index = c->failed = c->in_band = 0;
    c->nchoices_body = -1;
    memset(&c->error, 0, sizeof c->error);
}

void ssf_completion_free(ssf_completion *c)
{
    free_choices(c);
}

static void append_string(ssf_buf *b, const json_t *v)
{
    if (json_is_string(v)) ssf_buf_append_text(b, json_string_value(v), json_string_length(v));
}

/* Servers name the reasoning text reasoning_content (SGLang, llama.cpp,
 * DeepSeek, older vLLM) or reasoning (vLLM since late 2025, Ollama); vLLM
 * sent both for a while, so one chunk contributes one of them, never both. */
static void read_message(ssf_choice *ch, const json_t *m)
{
    append_string(&ch->text, json_object_get(m, "content"));
    const json_t *r = json_object_get(m, "reasoning_content");
    if (!json_is_string(r)) r = json_object_get(m, "reasoning");
    if (json_is_string(r)) {
        append_string(&ch->reasoning, r);
        ch->has_reasoning = 1;
    }
}

static void read_choice(ssf_completion *c, const json_t *obj, size_t pos)
{
    const json_t *index = json_object_get(obj, "index");
    json_int_t i = json_is_integer(index) ? json_integer_value(index) : (json_int_t)pos;
    if (i < 0 || i >= c->n) {
        c->bad_index = 1;
        return;
    }
    ssf_choice *ch = &c->choices[i];
    ch->seen = 1;
    ssf_buf_append(&ch->text, "", 0); /* seen choices have text, even if empty */
    append_string(&ch->text, json_object_get(obj, "text")); /* completions */
    const json_t *m = json_object_get(obj, "delta");        /* streamed chat */
    if (!json_is_object(m)) m = json_object_get(obj, "message");
    if (json_is_object(m)) read_message(ch, m);
    const json_t *fr = json_object_get(obj, "finish_reason");
    if (json_is_string(fr)) {
        free(ch->finish_reason);
        ch->finish_reason = ssf_xstrdup(json_string_value(fr));
    }
}

static void read_usage(ssf_completion *c, const json_t *root)
{
    const json_t *u = json_object_get(root, "usage");
    const json_t *p = json_object_get(u, "prompt_tokens");
    const json_t *t = json_object_get(u, "completion_tokens");
    if (json_is_integer(p)) c->prompt_tokens = (int64_t)json_integer_value(p);
    if (json_is_integer(t)) c->completion_tokens = (int64_t)json_integer_value(t);
}

static int fail_malformed(ssf_completion *c, const char *what, const char *detail)
{
    c->failed = 1;
    c->in_band = 0;
    memset(&c->error, 0, sizeof c->error);
    snprintf(c->error.message, sizeof c->error.message, "malformed %s from the server: %s", what,
             detail);
    return -1;
}

/* Parses a JSON object and checks it for an error; NULL after failing c. */
static json_t *load_object(ssf_completion *c, const char *s, size_t len, const char *what)
{
    json_error_t je;
    /* A model may write U+0000; the text keeps it (as U+FFFD, append_string). */
    json_t *root = json_loadb(s, len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        fail_malformed(c, what, root ? "not a JSON object" : je.text);
        return NULL;
    }
    if (read_error_object(&c->error, root)) {
        c->failed = c->in_band = 1;
        json_decref(root);
        return NULL;
    }
    return root;
}

static void read_choices(ssf_completion *c, const json_t *choices)
{
    size_t i;
    const json_t *ch;
    json_array_foreach(choices, i, ch) if (json_is_object(ch)) read_choice(c, ch, i);
}

int ssf_completion_event(ssf_completion *c, const char *data, size_t len)
{
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->done = 1;
        return 0;
    }
    if (len == 0) return 0;
    json_t *root = load_object(c, data, len, "stream event");
    if (!root) return -1;
    read_choices(c, json_object_get(root, "choices"));
    read_usage(c, root);
    json_decref(root);
    return 0;
}

int ssf_completion_body(ssf_completion *c, const char *body, size_t len)
{
    json_t *root = load_object(c, body ? body : "", body ? len : 0, "response");
    if (!root) return -1;
    const json_t *choices = json_object_get(root, "choices");
    if (!json_is_array(choices)) {
        json_decref(root);
        return fail_malformed(c, "response", "no \"choices\" array");
    }
    c->nchoices_body = (int)json_array_size(choices);
    read_choices(c, choices);
    read_usage(c, root);
    json_decref(root);
    return 0;
}

int ssf_completion_all_finished(const ssf_completion *c)
{
    for (int i = 0; i < c->n; i++)
        if (!c->choices[i].finish_reason) return 0;
    return 1;
}

int ssf_completion_count_ok(const ssf_completion *c)
{
    if (c->bad_index || (c->nchoices_body >= 0 && c->nchoices_body != c->n)) return 0;
    for (int i = 0; i < c->n; i++)
        if (!c->choices[i].seen) return 0;
    return 1;
}
