/*
 * replay.c - the replay backend: generations produced elsewhere, read from
 * a JSONL file, served by (task, doc, tag, sample).  It lets any set of
 * outputs be graded and scored with the same pipeline and store.
 *
 * Replay files run to gigabytes (100k completions of 30 kB), so the file is
 * not held in memory: opening it validates every line and indexes each
 * sample's byte offset, and generate() reads the requested lines back in
 * file order.  Lines are parsed with cJSON rather than jansson, which the
 * rest of ssfteval uses: on completion-sized strings cJSON is about ten
 * times faster (0.4 s against 4.1 s for 170 MB here), and the replay parse
 * would otherwise dominate a run.
 */
#include "backend.h"
#include "retry.h"
#include "ssfteval/records.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <jansson.h>

typedef struct replay {
    char *path;
    FILE *file;
    json_t *offsets; /* "task\x1fdoc\x1ftag\x1fsample" -> [offset, line number] */
    char sha256[65]; /* of the bytes indexed */
} replay;

void ssf_sample_key(ssf_buf *b, const char *task, int64_t doc, int tag, int index)
{
    ssf_buf_reset(b);
    ssf_buf_printf(b, "%s\x1f%" PRId64 "\x1f%d\x1f%d", task, doc, tag, index);
}

/* A line's fields; the strings point into the cJSON tree. */
typedef struct replay_line {
    const char *task, *text, *finish_reason, *reasoning;
    int64_t doc;
    int tag, sample;
} replay_line;

static int int_field(const cJSON *obj, const char *name, int required, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) return required ? -1 : 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

static const char *string_field(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int read_fields(const cJSON *obj, replay_line *l)
{
    int64_t tag = 0, sample = 0;
    l->doc = 0;
    l->task = string_field(obj, "task");
    l->text = string_field(obj, "text");
    l->finish_reason = string_field(obj, "finish_reason");
    l->reasoning = string_field(obj, "reasoning");
    if (!cJSON_IsObject(obj) || !l->task || !l->text || int_field(obj, "doc", 1, &l->doc) ||
        int_field(obj, "sample", 1, &sample) || int_field(obj, "tag", 0, &tag) || tag > 64 ||
        sample > 1000000)
        return -1;
    l->tag = (int)tag;
    l->sample = (int)sample;
    return 0;
}

/* Reads the line at the stream's position; NULL at the end. */
/* A text is one C string (backend.h), and cJSON would end it at a decoded
 * U+0000: the escape becomes U+FFFD's, the same six bytes, so the line's
 * length and the offsets indexed stay as they are. */
static void replace_nul_escapes(char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            memcpy(s + i + 2, "fffd", 4);
        i++; /* the escaped character, which may be a backslash */
    }
}

/* digest, when not NULL, is fed the line's bytes as the file holds them. */
static cJSON *next_line(FILE *f, char **buf, size_t *cap, ssize_t *len, ssf_sha256_ctx *digest)
{
    *len = getline(buf, cap, f);
    if (*len < 0) return NULL;
    if (digest) ssf_sha256_update(digest, *buf, (size_t)*len);
    replace_nul_escapes(*buf, (size_t)*len);
    return cJSON_ParseWithLength(*buf, (size_t)*len);
}

static int blank(const char *s, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* The finish reasons a generations file may give: OpenAI's, and the
 * servers' that stopped a generation unfinished (abort, error).  Any other
 * is a typo for one of them, which would score or fail it wrongly. */
static int known_finish(const char *why)
{
    static const char *const known[] = {"stop",  "length",     "content_filter", "abort",
                                        "error", "tool_calls", "function_call"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(why, known[i]) == 0) return 1;
    return 0;
}

static int index_line(replay *r, cJSON *obj, long offset, size_t lineno, ssf_buf *key,
                      ssf_error *err)
{
    replay_line l;
    if (read_fields(obj, &l))
        return ssf_fail(err,
                        "%s:%zu: each line needs \"task\" (string), \"doc\" and \"sample\" "
                        "(integers >= 0), \"text\" (string) and optionally \"tag\" and "
                        "\"finish_reason\"",
                        r->path, lineno);
    if (l.finish_reason && !known_finish(l.finish_reason))
        return ssf_fail(err,
                        "%s:%zu: finish_reason \"%.40s\" is none of stop, length, "
                        "content_filter, abort, error, tool_calls, function_call; fix the line",
                        r->path, lineno, l.finish_reason);
    ssf_sample_key(key, l.task, l.doc, l.tag, l.sample);
    if (json_object_get(r->offsets, key->data))
        return ssf_fail(err,
                        "%s:%zu: a second line for task %s doc %" PRId64 " tag %d sample %d; "
                        "keep one",
                        r->path, lineno, l.task, l.doc, l.tag, l.sample);
    json_object_set_new(r->offsets, key->data,
                        json_pack("[I, I]", (json_int_t)offset, (json_int_t)lineno));
    return 0;
}

static int build_index(replay *r, ssf_error *err)
{
    char *buf = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    ssf_buf key = {0};
    ssf_sha256_ctx *digest = ssf_sha256_begin();
    int rc = 0;
    for (long offset = ftell(r->file); rc == 0; offset = ftell(r->file)) {
        cJSON *obj = next_line(r->file, &buf, &cap, &len, digest);
        if (len < 0) break;
        lineno++;
        if (!obj && blank(buf, len)) continue;
        /* cJSON passes any bytes through, but text that is not UTF-8 would be
         * stored where jansson can neither report nor export it. */
        if (!obj)
            rc = ssf_fail(err, "%s:%zu: malformed JSON line; fix or remove it", r->path, lineno);
        else if (!ssf_utf8_valid(buf, (size_t)len))
            rc = ssf_fail(err, "%s:%zu: not valid UTF-8; write the file as UTF-8 JSON", r->path,
                          lineno);
        else
            rc = index_line(r, obj, offset, lineno, &key, err);
        cJSON_Delete(obj);
    }
    if (rc == 0 && ferror(r->file))
        rc = ssf_fail(err, "cannot read %s: %s", r->path, strerror(errno));
    ssf_sha256_end(digest, r->sha256);
    ssf_buf_free(&key);
    free(buf);
    return rc;
}

/* ---- generate ----------------------------------------------------------- */

typedef struct wanted {
    size_t request;
    long offset; /* -1: not in the file */
} wanted;

static int by_offset(const void *pa, const void *pb)
{
    const wanted *a = pa, *b = pb;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static int serve_missing(replay *r, const ssf_gen_request *q, ssf_gen_done_fn done, void *ud)
{
    ssf_buf msg = {0};
    ssf_buf_printf(&msg, "missing from %s: it has no line for this sample", r->path);
    ssf_gen_result res = {.error = msg.data, .prompt_tokens = -1, .completion_tokens = -1};
    int rc = done(q, &res, ud);
    ssf_buf_free(&msg);
    return rc;
}

static int serve_line(replay *r, const ssf_gen_request *q, long offset, char **buf, size_t *cap,
                      ssf_gen_done_fn done, void *ud, ssf_error *err)
{
    ssize_t len;
    if (fseek(r->file, offset, SEEK_SET) != 0)
        return ssf_fail(err, "cannot read %s: %s", r->path, strerror(errno));
    cJSON *obj = next_line(r->file, buf, cap, &len, NULL);
    replay_line l;
    if (!obj || read_fields(obj, &l)) {
        cJSON_Delete(obj);
        return ssf_fail(err, "%s changed while it was being replayed; rerun the command", r->path);
    }
    ssf_gen_result res = {.text = l.text,
                          .reasoning = l.reasoning,
                          .finish_reason = l.finish_reason ? l.finish_reason : "stop",
                          .prompt_tokens = -1,
                          .completion_tokens = -1,
                          .attempts = 1};
    ssf_buf msg = {0};
    ssf_finish_kind kind = ssf_finish_kind_of(l.finish_reason);
    if (kind != SSF_FINISH_WHOLE) { /* failed, never graded */
        ssf_buf_printf(&msg, "%s: finish_reason \"%s\": the server %s; regenerate this sample",
                       r->path, l.finish_reason,
                       kind == SSF_FINISH_WITHHELD ? "withheld the completion"
                                                   : "stopped the generation unfinished");
        res = (ssf_gen_result){.error = msg.data, .prompt_tokens = -1, .completion_tokens = -1};
    }
    int rc = done(q, &res, ud);
    ssf_buf_free(&msg);
    cJSON_Delete(obj);
    return rc;
}

static int replay_generate(ssf_backend *b, const ssf_gen_request *reqs, size_t n,
                           ssf_gen_done_fn done, void *ud, ssf_error *err)
{
    replay *r = b->impl;
    wanted *w = ssf_xcalloc(n + 1, sizeof *w);
    ssf_buf key = {0};
    for (size_t i = 0; i < n; i++) {
        ssf_sample_key(&key, reqs[i].task, reqs[i].doc, reqs[i].tag, reqs[i].index);
        const json_t *at = json_object_get(r->offsets, key.data);
        w[i] = (wanted){i, at ? (long)json_integer_value(json_array_get(at, 0)) : -1};
    }
    qsort(w, n, sizeof *w, by_offset); /* the missing first, then file order */
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const ssf_gen_request *q = &reqs[w[i].request];
        rc = w[i].offset < 0 ? serve_missing(r, q, done, ud)
                             : serve_line(r, q, w[i].offset, &buf, &cap, done, ud, err);
    }
    free(buf);
    free(w);
    ssf_buf_free(&key);
    return rc;
}

static void replay_destroy(ssf_backend *b)
{
    replay *r = b->impl;
    if (r->file) fclose(r->file);
    json_decref(r->offsets);
    free(r->path);
    free(r);
    free(b);
}

ssf_backend *ssf_backend_replay_new(const char *path, ssf_error *err)
{
    replay *r = ssf_xcalloc(1, sizeof *r);
    r->path = ssf_xstrdup(path);
    r->offsets = json_object();
    ssf_backend *b = ssf_xcalloc(1, sizeof *b);
    *b = (ssf_backend){
        .name = "replay", .generate = replay_generate, .destroy = replay_destroy, .impl = r};
    r->file = fopen(path, "rb");
    int rc = r->file ? build_index(r, err)
                     : ssf_fail(err, "cannot open %s: %s; check the path", path, strerror(errno));
    if (rc) {
        ssf_fail_prefix(err, "--generations");
        replay_destroy(b);
        return NULL;
    }
    return b;
}

const char *ssf_backend_replay_sha256(const ssf_backend *b)
{
    if (!b || b->destroy != replay_destroy) return NULL;
    const replay *r = b->impl;
    return r->sha256;
}
