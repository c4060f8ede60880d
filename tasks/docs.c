/*
 * docs.c - turning a task's data into documents: find the rows (data dir or
 * Hub cache), map the spec's fields, check the count, and place the choices
 * of multiple-choice rows.
 */
#include "ssfteval/records.h"
#include "ssfteval/rng.h"
#include "ssfteval/task.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

typedef struct load_ctx {
    const ssf_task *task;
    ssf_docs *docs;
    size_t cap;
    const char *origin; /* the data's name in errors */
    ssf_error *err;
    /* letters tasks: choices as read, correct first */
    char ***raw_choices;
} load_ctx;

/* A field's value as text: strings as they are (whitespace included, as the
 * reference keeps it), integers printed, anything else an error. */
static int field_text(load_ctx *c, json_t *rec, const char *field, size_t number, size_t line,
                      char **out)
{
    const json_t *v = json_object_get(rec, field);
    if (json_is_string(v)) {
        *out = ssf_xstrndup(json_string_value(v), json_string_length(v));
        return 0;
    }
    if (json_is_integer(v)) {
        ssf_buf b = {0};
        ssf_buf_printf(&b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = ssf_buf_take(&b);
        return 0;
    }
    return ssf_fail(c->err,
                    "%s: record %zu (line %zu): field '%s' is %s; check the 'fields' of "
                    "task %s (%s)",
                    c->origin, number, line, field, v ? "not a string or integer" : "missing",
                    c->task->name, c->task->origin);
}

static int read_gold(load_ctx *c, json_t *rec, size_t number, size_t line, ssf_doc *d)
{
    if (field_text(c, rec, c->task->field_answer, number, line, &d->gold)) return -1;
    if (!c->task->gold_last_boxed) return 0;
    char *boxed = ssf_last_boxed(d->gold);
    if (!boxed)
        return ssf_fail(c->err,
                        "%s: record %zu (line %zu): field '%s' has no \\boxed{} answer "
                        "(the task extracts the last one)",
                        c->origin, number, line, c->task->field_answer);
    free(d->gold);
    d->gold = boxed;
    return 0;
}

static int read_raw_choices(load_ctx *c, json_t *rec, size_t number, size_t line, size_t idx)
{
    const ssf_task *t = c->task;
    char **raw = ssf_xcalloc(t->n_incorrect + 1, sizeof *raw);
    c->raw_choices[idx] = raw;
    if (field_text(c, rec, t->field_correct, number, line, &raw[0])) return -1;
    for (size_t i = 0; i < t->n_incorrect; i++)
        if (field_text(c, rec, t->field_incorrect[i], number, line, &raw[i + 1])) return -1;
    return 0;
}

static void grow(load_ctx *c)
{
    if (c->docs->n < c->cap) return;
    size_t cap = c->cap ? c->cap * 2 : 64;
    c->docs->items = ssf_xrealloc(c->docs->items, cap * sizeof *c->docs->items);
    c->raw_choices = ssf_xrealloc(c->raw_choices, cap * sizeof *c->raw_choices);
    c->cap = cap;
}

static int add_record(json_t *rec, size_t number, size_t line, void *ud)
{
    load_ctx *c = ud;
    const ssf_task *t = c->task;
    grow(c);
    size_t idx = c->docs->n++;
    ssf_doc *d = &c->docs->items[idx];
    memset(d, 0, sizeof *d);
    c->raw_choices[idx] = NULL;
    d->index = idx;
    d->gold_index = -1;
    if (t->field_id) {
        if (field_text(c, rec, t->field_id, number, line, &d->id)) return -1;
    } else {
        ssf_buf b = {0};
        ssf_buf_printf(&b, "%zu", idx);
        d->id = ssf_buf_take(&b);
    }
    if (field_text(c, rec, t->field_question, number, line, &d->question)) return -1;
    if (t->answer_type == SSF_ANSWER_MATH) return read_gold(c, rec, number, line, d);
    return read_raw_choices(c, rec, number, line, idx);
}

/* A permutation of n items drawn from the SHA-256 of the row id, so a row's
 * order depends on nothing but its id (not on load order or other tasks). */
static void hash_permutation(const char *id, size_t *perm, size_t n)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    ssf_buf key = {0};
    ssf_buf_printf(&key, "ssfteval-choice-order-v1\n%s", id);
    EVP_Digest(key.data, key.len, md, &mdlen, EVP_sha256(), NULL);
    ssf_buf_free(&key);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | md[i];
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(v % (i + 1));
        v /= i + 1;
        size_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

/* LightEval's placement: the correct answer is inserted at randint(0, n-1)
 * into the list of incorrect answers, which keep their order. */
static void mt_permutation(ssf_mt19937 *mt, size_t *perm, size_t n)
{
    size_t gold = (size_t)ssf_mt_randint(mt, 0, (int64_t)n - 1);
    for (size_t i = 0, next = 1; i < n; i++)
        perm[i] = i == gold ? 0 : next++;
}

static void place_choices(const ssf_task *t, ssf_choice_order order, ssf_docs *docs, char ***raw)
{
    size_t n = t->n_incorrect + 1;
    size_t perm[26];
    ssf_mt19937 mt = {{0}, 0};
    ssf_mt_seed(&mt, t->order_seed);
    for (size_t k = 0; k < docs->n; k++) {
        ssf_doc *d = &docs->items[k];
        if (order == SSF_ORDER_MT19937)
            mt_permutation(&mt, perm, n);
        else if (order == SSF_ORDER_HASH)
            hash_permutation(d->id, perm, n);
        else
            for (size_t i = 0; i < n; i++)
                perm[i] = i;
        d->n_choices = n;
        d->choices = ssf_xcalloc(n, sizeof *d->choices);
        for (size_t i = 0; i < n; i++) {
            d->choices[i] = raw[k][perm[i]];
            raw[k][perm[i]] = NULL;
            if (perm[i] == 0) d->gold_index = (int)i;
        }
        d->gold = ssf_xstrndup(&"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[d->gold_index], 1);
    }
}

static void free_raw_choices(load_ctx *c)
{
    for (size_t k = 0; k < c->docs->n; k++) {
        if (!c->raw_choices[k]) continue;
        for (size_t i = 0; i <= c->task->n_incorrect; i++)
            free(c->raw_choices[k][i]);
        free(c->raw_choices[k]);
    }
    free(c->raw_choices);
}

static int check_sha256(const char *name, const char *data, size_t len, const char *want,
                        ssf_error *err)
{
    if (!want) return 0;
    char have[65];
    ssf_sha256_hex(data, len, have);
    if (strcmp(have, want) == 0) return 0;
    return ssf_fail(err,
                    "%s: checksum mismatch: expected sha256 %s, got %s; replace the file "
                    "with the published one (see `ssfteval tasks --json` for the source)",
                    name, want, have);
}

/* Reads a local file or zip member whole: the data sets are at most a few
 * MB, and holding the bytes lets the checksum and the parse see the same
 * data. */
static int read_local(const ssf_task *t, const char *data_dir, ssf_buf *name, char **data,
                      size_t *len, ssf_error *err)
{
    const ssf_task_source *s = &t->source;
    if (!s->local_path)
        return ssf_fail(err,
                        "task %s has no 'source.local' in %s, so it cannot be read from "
                        "--data-dir; drop --data-dir to download it from the Hub",
                        t->name, t->origin);
    ssf_buf_printf(name, "%s/%s", data_dir, s->local_path);
    if (ssf_is_file(name->data)) return ssf_read_file(name->data, data, len, err);
    if (s->local_zip) {
        ssf_buf zip = {0};
        ssf_buf_printf(&zip, "%s/%s", data_dir, s->local_zip);
        if (ssf_is_file(zip.data)) {
            ssf_buf_reset(name);
            ssf_buf_printf(name, "%s:%s", zip.data, s->zip_member);
            int rc = ssf_zip_read_member(zip.data, s->zip_member, s->zip_password, data, len, err);
            ssf_buf_free(&zip);
            return rc;
        }
        ssf_fail(err,
                 "task %s: data not found: neither %s nor %s exists; lay the data directory "
                 "out like ../shared/data, or drop --data-dir to download from the Hub",
                 t->name, name->data, zip.data);
        ssf_buf_free(&zip);
        return -1;
    }
    return ssf_fail(err,
                    "task %s: data not found: %s does not exist; lay the data directory out "
                    "like ../shared/data, or drop --data-dir to download from the Hub",
                    t->name, name->data);
}

/* Finds the file holding the rows in the Hub cache, downloading if needed. */
static int hub_local_file(const ssf_task *t, const ssf_hub *hub, char **path, ssf_error *err)
{
    const ssf_task_source *s = &t->source;
    if (!s->hub_repo)
        return ssf_fail(err, "task %s has no 'source.hub' in %s; give --data-dir with its data",
                        t->name, t->origin);
    if (s->rows_config)
        return ssf_hub_fetch_rows(hub, s->hub_repo, s->rows_config, s->rows_split, s->documents,
                                  path, err);
    return ssf_hub_fetch_file(hub, SSF_REPO_DATASET, s->hub_repo, s->hub_revision, s->hub_path,
                              s->hub_sha256, path, err);
}

static int read_source(const ssf_task *t, const ssf_data_options *o, ssf_buf *name, char **data,
                       size_t *len, ssf_error *err)
{
    if (o->data_dir) {
        if (read_local(t, o->data_dir, name, data, len, err)) return -1;
        return check_sha256(name->data, *data, *len, t->source.local_sha256, err);
    }
    char *path = NULL;
    if (!o->hub) return ssf_fail(err, "task %s: no --data-dir and no Hub client", t->name);
    if (hub_local_file(t, o->hub, &path, err)) return -1;
    ssf_buf_puts(name, path);
    int rc = ssf_read_file(path, data, len, err);
    free(path);
    return rc;
}

/* The format of the data: from the file name, the zip member's name or the
 * rows cache (always JSON Lines). */
static ssf_format source_format(const ssf_task *t, const ssf_data_options *o, const char *name)
{
    if (!o->data_dir && t->source.rows_config) return SSF_FORMAT_JSONL;
    if (!o->data_dir) return ssf_format_from_path(t->source.hub_path);
    return ssf_format_from_path(name);
}

static int parse_rows(load_ctx *c, const ssf_task *t, const ssf_data_options *o, const char *name,
                      const char *data, size_t len)
{
    ssf_format fmt = source_format(t, o, name);
    if (fmt == SSF_FORMAT_AUTO)
        return ssf_fail(c->err,
                        "%s: cannot tell the format from the name; use .jsonl, .json or "
                        ".csv",
                        name);
    if (ssf_records_read_memory(data, len, name, fmt, add_record, c, c->err)) return -1;
    if (t->source.documents && c->docs->n != t->source.documents)
        return ssf_fail(c->err,
                        "%s: %zu documents, task %s expects %zu; the file is incomplete "
                        "or not the published one",
                        name, c->docs->n, t->name, t->source.documents);
    return 0;
}

int ssf_task_load_docs(const ssf_task *t, const ssf_data_options *o, ssf_docs *out, ssf_error *err)
{
    memset(out, 0, sizeof *out);
    ssf_buf name = {0};
    char *data = NULL;
    size_t len = 0;
    load_ctx c = {.task = t, .docs = out, .err = err};
    int rc = read_source(t, o, &name, &data, &len, err);
    if (rc == 0) {
        c.origin = name.data;
        rc = parse_rows(&c, t, o, name.data, data, len);
    }
    if (rc == 0 && t->answer_type == SSF_ANSWER_LETTERS) {
        int order = o->order_override >= 0 ? o->order_override : (int)t->order;
        place_choices(t, (ssf_choice_order)order, out, c.raw_choices);
    }
    free_raw_choices(&c);
    free(data);
    out->origin = ssf_buf_take(&name);
    if (rc != 0) ssf_docs_free(out);
    return rc;
}

void ssf_docs_free(ssf_docs *docs)
{
    for (size_t k = 0; k < docs->n; k++) {
        ssf_doc *d = &docs->items[k];
        free(d->id);
        free(d->question);
        free(d->gold);
        for (size_t i = 0; i < d->n_choices; i++)
            free(d->choices[i]);
        free(d->choices);
    }
    free(docs->items);
    free(docs->origin);
    memset(docs, 0, sizeof *docs);
}

int ssf_task_fetch(const ssf_task *t, const ssf_hub *hub, ssf_error *err)
{
    char *path = NULL;
    int rc = hub_local_file(t, hub, &path, err);
    free(path);
    return rc;
}

int ssf_task_verify(const ssf_task *t, const ssf_hub *hub, ssf_error *err)
{
    const ssf_task_source *s = &t->source;
    if (!s->hub_repo) return ssf_fail(err, "task %s has no 'source.hub' to verify", t->name);
    if (s->rows_config) {
        /* The /rows API serves the current export without a revision, so
         * there is no published checksum: verify what can be verified, the
         * cached file being complete JSON with the expected row count. */
        ssf_hub offline = *hub;
        offline.offline = 1;
        ssf_docs docs;
        ssf_data_options o = {.hub = &offline, .order_override = -1};
        if (ssf_task_load_docs(t, &o, &docs, err)) return -1;
        ssf_docs_free(&docs);
        return 0;
    }
    if (!s->hub_sha256)
        return ssf_fail(err, "task %s has no 'source.hub.sha256' to verify against", t->name);
    return ssf_hub_verify_file(hub, SSF_REPO_DATASET, s->hub_repo, s->hub_revision, s->hub_path,
                               s->hub_sha256, err);
}

char *ssf_task_source_string(const ssf_task *t)
{
    const ssf_task_source *s = &t->source;
    ssf_buf b = {0};
    if (s->rows_config)
        ssf_buf_printf(&b, "hub-rows:%s/%s/%s", s->hub_repo, s->rows_config, s->rows_split);
    else if (s->hub_repo)
        ssf_buf_printf(&b, "hub:%s@%s/%s", s->hub_repo, s->hub_revision, s->hub_path);
    else
        ssf_buf_printf(&b, "local:%s", s->local_path);
    return ssf_buf_take(&b);
}
