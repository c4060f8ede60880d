/*
 * replay.c - the replay backend: generations produced elsewhere, read from
 * a JSONL file, served by (task, doc, tag, sample).  It lets any set of
 * outputs be graded and scored with the same pipeline and store.
 */
#include "backend.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ssfteval/records.h"

typedef struct replay {
    char *path;
    json_t *by_key; /* "task\x1fdoc\x1ftag\x1fsample" -> line object */
} replay;

static void sample_key(ssf_buf *b, const char *task, int64_t doc, int tag, int index)
{
    ssf_buf_reset(b);
    ssf_buf_printf(b, "%s\x1f%" PRId64 "\x1f%d\x1f%d", task, doc, tag, index);
}

typedef struct load_ctx {
    replay *r;
    ssf_error *err;
} load_ctx;

static int int_field(const json_t *line, const char *name, json_int_t *out)
{
    const json_t *v = json_object_get(line, name);
    if (!json_is_integer(v)) return -1;
    *out = json_integer_value(v);
    return *out >= 0 ? 0 : -1;
}

static int add_line(json_t *line, size_t number, size_t lineno, void *ud)
{
    load_ctx *c = ud;
    (void)number;
    json_int_t doc, tag = 0, sample;
    const char *task = json_string_value(json_object_get(line, "task"));
    const json_t *text = json_object_get(line, "text");
    if (!task || int_field(line, "doc", &doc) || int_field(line, "sample", &sample) ||
        (json_object_get(line, "tag") && int_field(line, "tag", &tag)) || !json_is_string(text))
        return ssf_fail(c->err, "%s:%zu: each line needs \"task\" (string), \"doc\" and \"sample\" "
                        "(integers >= 0), \"text\" (string) and optionally \"tag\" and "
                        "\"finish_reason\"", c->r->path, lineno);
    ssf_buf key = {0};
    sample_key(&key, task, doc, (int)tag, (int)sample);
    int dup = json_object_get(c->r->by_key, key.data) != NULL;
    if (!dup) json_object_set(c->r->by_key, key.data, line);
    ssf_buf_free(&key);
    if (dup)
        return ssf_fail(c->err, "%s:%zu: a second line for task %s doc %" JSON_INTEGER_FORMAT
                        " tag %" JSON_INTEGER_FORMAT " sample %" JSON_INTEGER_FORMAT
                        "; keep one", c->r->path, lineno, task, doc, tag, sample);
    return 0;
}

static int replay_generate(ssf_backend *b, const ssf_gen_request *reqs, size_t n,
                           ssf_gen_done_fn done, void *ud, ssf_error *err)
{
    replay *r = b->impl;
    ssf_buf key = {0}, missing = {0};
    int rc = 0;
    (void)err;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const ssf_gen_request *q = &reqs[i];
        sample_key(&key, q->task, q->doc, q->tag, q->index);
        const json_t *line = json_object_get(r->by_key, key.data);
        ssf_gen_result res = {.prompt_tokens = -1, .completion_tokens = -1, .attempts = 1};
        if (line) {
            res.text = json_string_value(json_object_get(line, "text"));
            res.finish_reason = json_string_value(json_object_get(line, "finish_reason"));
            res.reasoning = json_string_value(json_object_get(line, "reasoning"));
            if (!res.finish_reason) res.finish_reason = "stop";
        } else {
            ssf_buf_reset(&missing);
            ssf_buf_printf(&missing, "missing from %s: no line for task %s doc %" PRId64
                           " tag %d sample %d", r->path, q->task, q->doc, q->tag, q->index);
            res.error = missing.data;
            res.attempts = 0;
        }
        rc = done(q, &res, ud);
    }
    ssf_buf_free(&key);
    ssf_buf_free(&missing);
    return rc;
}

static void replay_destroy(ssf_backend *b)
{
    replay *r = b->impl;
    json_decref(r->by_key);
    free(r->path);
    free(r);
    free(b);
}

ssf_backend *ssf_backend_replay_new(const char *path, ssf_error *err)
{
    replay *r = ssf_xcalloc(1, sizeof *r);
    r->path = ssf_xstrdup(path);
    r->by_key = json_object();
    load_ctx c = {r, err};
    ssf_backend *b = ssf_xcalloc(1, sizeof *b);
    *b = (ssf_backend){.name = "replay", .generate = replay_generate, .destroy = replay_destroy,
                       .impl = r};
    if (ssf_records_read_file(path, SSF_FORMAT_JSONL, add_line, &c, err)) {
        ssf_fail_prefix(err, "--generations");
        replay_destroy(b);
        return NULL;
    }
    return b;
}
