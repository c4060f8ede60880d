/*
 * hubserver.c - a stand-in for the Hugging Face Hub on libmicrohttpd (see
 * hubserver.h).  Everything is loaded into memory at start, so handlers never
 * touch the disk and responses can point into the loaded buffers.
 */
#include "hubserver.h"
#include "mhd-tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#define MATH500_REV "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"
#define MATH500_PATH "/datasets/HuggingFaceH4/MATH-500/resolve/" MATH500_REV "/test.jsonl"
#define GPQA_REV "83022cefff930aea54f654c0b282e74b9eeda5c6"
#define FLAKY_CUT 100000 /* bytes the flaky route sends before it hangs up */
#define STALL_AFTER 1    /* bytes the stalling route sends before it goes quiet */
#define STALL_MS 12000   /* how long it stays quiet before it hangs up */
#define PAGE_MAX 100     /* the real /rows API refuses longer pages */

struct blob {
    char *data;
    size_t len;
};

#define N_ROWS_SOURCES 10 /* the datasets /rows serves, rows_sources below */

/* What a /rows answer gets wrong, for tests of the client's checks. */
enum rows_flaw {
    ROWS_SOUND,
    ROWS_PARTIAL,   /* "partial": true, as a partial export says */
    ROWS_TRUNCATED, /* row 3 comes with its "problem" cell in truncated_cells */
    ROWS_GAP,       /* row_idx skips 5 */
    ROWS_SHRINKING, /* num_rows_total one lower on pages after the first */
    ROWS_SHORT,     /* num_rows_total 5 past the rows there are */
    ROWS_LONG,      /* num_rows_total 1 short of the rows there are */
};

struct rows_source {
    const char *dataset;
    const char *split;
    const char *file; /* under data_dir; NULL: answer malformed JSON */
    enum rows_flaw flaw;
    json_t *rows; /* array of row objects */
};

struct hubserver {
    struct MHD_Daemon *daemon;
    unsigned port;
    mhd_tls tls;
    char *downgrade_to; /* the downgrade route's target server */
    char *token;
    char *models_dir;                   /* NULL: no model repositories */
    struct blob math500, corrupt, gpqa; /* gpqa.data is NULL when not given */
    struct rows_source rows[N_ROWS_SOURCES];
    atomic_size_t requests;
    atomic_int stopping; /* ends the stalling route's wait */
};

static const struct rows_source rows_sources[N_ROWS_SOURCES] = {
    {"HuggingFaceH4/aime_2024", "train", "aime24.jsonl", ROWS_SOUND, NULL},
    {"yentinglin/aime_2025", "train", "aime25.jsonl", ROWS_SOUND, NULL},
    {"HuggingFaceH4/MATH-500", "test", "math500.jsonl", ROWS_SOUND, NULL},
    /* Let tests see how the client takes a broken answer. */
    {"ssfteval-test/malformed", "train", NULL, ROWS_SOUND, NULL},
    {"ssfteval-test/partial", "train", "aime24.jsonl", ROWS_PARTIAL, NULL},
    {"ssfteval-test/truncated", "train", "aime24.jsonl", ROWS_TRUNCATED, NULL},
    {"ssfteval-test/gap", "train", "aime24.jsonl", ROWS_GAP, NULL},
    {"ssfteval-test/shrinking", "test", "math500.jsonl", ROWS_SHRINKING, NULL},
    {"ssfteval-test/short", "train", "aime24.jsonl", ROWS_SHORT, NULL},
    {"ssfteval-test/long", "train", "aime24.jsonl", ROWS_LONG, NULL},
};

/* ---- loading ----------------------------------------------------------- */

static int load_blob(struct blob *b, const char *dir, const char *name, ssf_error *err)
{
    ssf_buf path = {0};
    if (dir)
        ssf_buf_printf(&path, "%s/%s", dir, name);
    else
        ssf_buf_puts(&path, name);
    int rc = ssf_read_file(path.data, &b->data, &b->len, err);
    ssf_buf_free(&path);
    return rc;
}

static json_t *parse_jsonl(const struct blob *b, const char *name, ssf_error *err)
{
    json_t *rows = json_array();
    size_t line = 0;
    for (const char *p = b->data, *end = b->data + b->len; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        json_error_t jerr;
        json_t *row = n ? json_loadb(p, n, 0, &jerr) : NULL;
        if (n && !json_is_object(row)) {
            json_decref(row);
            json_decref(rows);
            ssf_fail(err, "%s:%zu: not a JSON object", name, line + 1);
            return NULL;
        }
        if (row) json_array_append_new(rows, row);
        p += n + 1;
    }
    return rows;
}

static int load_rows(struct hubserver *s, const char *data_dir, ssf_error *err)
{
    memcpy(s->rows, rows_sources, sizeof s->rows);
    for (size_t i = 0; i < sizeof s->rows / sizeof s->rows[0]; i++) {
        struct blob b = {0};
        if (!s->rows[i].file) continue;
        if (load_blob(&b, data_dir, s->rows[i].file, err) != 0) return -1;
        s->rows[i].rows = parse_jsonl(&b, s->rows[i].file, err);
        free(b.data);
        if (!s->rows[i].rows) return -1;
    }
    return 0;
}

static int load_data(struct hubserver *s, const struct hubserver_options *o, ssf_error *err)
{
    if (!o->data_dir) return ssf_fail(err, "hubserver: no data directory given");
    if (load_blob(&s->math500, o->data_dir, "math500.jsonl", err) != 0) return -1;
    if (s->math500.len <= FLAKY_CUT)
        return ssf_fail(err, "hubserver: math500.jsonl is too short for the flaky route");
    s->corrupt.data = ssf_xstrndup(s->math500.data, s->math500.len);
    s->corrupt.len = s->math500.len;
    s->corrupt.data[s->corrupt.len / 2] ^= 1; /* any change breaks the sha256 */
    if (o->gpqa_csv && load_blob(&s->gpqa, NULL, o->gpqa_csv, err) != 0) return -1;
    s->token = o->token ? ssf_xstrdup(o->token) : NULL;
    s->downgrade_to = o->downgrade_to ? ssf_xstrdup(o->downgrade_to) : NULL;
    return load_rows(s, o->data_dir, err);
}

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    if (!r) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body,
                                  const char *error_code)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (error_code) MHD_add_response_header(r, "X-Error-Code", error_code);
    return reply(c, status, r);
}

/* The Hub answers errors as {"error": "..."} plus an X-Error-Code header. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status,
                                   const char *error_code, const char *message)
{
    return reply_json(c, status, json_pack("{s:s}", "error", message), error_code);
}

/* 1: a range in [*start, *end), 0: none (or one we do not understand, which
 * HTTP says to ignore), -1: unsatisfiable. */
static int parse_range(const char *h, size_t size, size_t *start, size_t *end)
{
    if (!h || strncmp(h, "bytes=", 6) != 0 || !isdigit((unsigned char)h[6])) return 0;
    char *p;
    unsigned long long a = strtoull(h + 6, &p, 10), b = size ? size - 1 : 0;
    if (*p++ != '-') return 0;
    if (*p) {
        if (!isdigit((unsigned char)*p)) return 0;
        b = strtoull(p, &p, 10);
        if (*p || b < a) return 0;
    }
    if (a >= size) return -1;
    *start = (size_t)a;
    *end = b >= size ? size : (size_t)b + 1;
    return 1;
}

static ssize_t flaky_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    const struct blob *b = cls;
    /* Hanging up mid-body is what a dropped connection looks like. */
    if (pos >= FLAKY_CUT) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = FLAKY_CUT - (size_t)pos < max ? FLAKY_CUT - (size_t)pos : max;
    memcpy(buf, b->data + pos, n);
    return (ssize_t)n;
}

/* Sends STALL_AFTER bytes, then nothing for STALL_MS (each connection has
 * its own thread, so only this one waits), then hangs up: a client without
 * a low-speed timeout waits the whole time.  One byte, because libcurl
 * averages the speed over its last few seconds: after a burst, it would
 * take them to see the stall. */
static ssize_t stalling_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct hubserver *s = cls;
    if (pos >= STALL_AFTER) {
        /* in steps, so that stopping the server does not wait it out */
        struct timespec step = {0, 50 * 1000000L};
        for (int ms = 0; ms < STALL_MS && !atomic_load(&s->stopping); ms += 50)
            nanosleep(&step, NULL);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = STALL_AFTER - (size_t)pos < max ? STALL_AFTER - (size_t)pos : max;
    memcpy(buf, s->math500.data + pos, n);
    return (ssize_t)n;
}

enum mode { PLAIN, FLAKY, NO_RANGES };

static enum MHD_Result serve_blob(struct MHD_Connection *c, const struct blob *b, enum mode mode)
{
    const char *h = mode == NO_RANGES
                        ? NULL
                        : MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    size_t start = 0, end = b->len;
    char range[96];
    int ranged = parse_range(h, b->len, &start, &end);
    if (ranged < 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        snprintf(range, sizeof range, "bytes */%zu", b->len);
        if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, range);
        return reply(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
    }
    struct MHD_Response *r;
    if (mode == FLAKY && !ranged)
        r = MHD_create_response_from_callback(b->len, 16384, flaky_reader, (void *)b, NULL);
    else
        r = MHD_create_response_from_buffer(end - start, b->data + start, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (ranged) {
        snprintf(range, sizeof range, "bytes %zu-%zu/%zu", start, end - 1, b->len);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, range);
    }
    return reply(c, ranged ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
}

/* rest is "{revision}/{path}" (already percent-decoded by libmicrohttpd). */
static enum MHD_Result serve_pinned(struct MHD_Connection *c, const char *rest, const char *rev,
                                    const char *file, const struct blob *b)
{
    size_t n = strlen(rev);
    if (strncmp(rest, rev, n) != 0 || rest[n] != '/')
        return reply_error(c, MHD_HTTP_NOT_FOUND, "RevisionNotFound", "Invalid rev id");
    if (strcmp(rest + n + 1, file) != 0 || !b->data)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "EntryNotFound", "Entry not found");
    return serve_blob(c, b, PLAIN);
}

/* Test repositories accept any revision: only the path matters. */
static enum MHD_Result serve_any_rev(struct MHD_Connection *c, const char *rest,
                                     const struct blob *b, enum mode mode)
{
    const char *slash = strrchr(rest, '/');
    if (!slash || slash == rest || strcmp(slash + 1, "test.jsonl") != 0)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "EntryNotFound", "Entry not found");
    return serve_blob(c, b, mode);
}

/* Where the Hub sends a file's download (its CDN), here MATH-500's, by a
 * relative Location; the loop route sends each request back to itself. */
static enum MHD_Result redirect(struct MHD_Connection *c, const char *location)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    return reply(c, MHD_HTTP_FOUND, r);
}

/* A 302 to MATH-500's file on a plain http server, named whole: from an
 * https endpoint, a redirect the client must not follow. */
static enum MHD_Result downgrade(const struct hubserver *s, struct MHD_Connection *c)
{
    char location[256];
    if (s->downgrade_to)
        snprintf(location, sizeof location, "%s%s", s->downgrade_to, MATH500_PATH);
    else
        snprintf(location, sizeof location, "http://127.0.0.1:%u%s", s->port, MATH500_PATH);
    return redirect(c, location);
}

/* MATH-500 at any revision, stalling unless asked for a range. */
static enum MHD_Result serve_stalling(struct hubserver *s, struct MHD_Connection *c,
                                      const char *rest)
{
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE))
        return serve_any_rev(c, rest, &s->math500, PLAIN);
    return reply(
        c, MHD_HTTP_OK,
        MHD_create_response_from_callback(s->math500.len, STALL_AFTER, stalling_reader, s, NULL));
}

static enum MHD_Result serve_gated(struct hubserver *s, struct MHD_Connection *c, const char *rest)
{
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth)
        return reply_error(c, MHD_HTTP_UNAUTHORIZED, "GatedRepo",
                           "Access to dataset Idavidrein/gpqa is restricted. You must be "
                           "authenticated to access it.");
    if (!s->token || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, s->token) != 0)
        return reply_error(c, MHD_HTTP_FORBIDDEN, "GatedRepo",
                           "Access to dataset Idavidrein/gpqa is restricted and you are not in "
                           "the authorized list.");
    return serve_pinned(c, rest, GPQA_REV, "gpqa_diamond.csv", &s->gpqa);
}

/* ---- the /rows API ----------------------------------------------------- */

static const char *arg(struct MHD_Connection *c, const char *key)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

/* A missing value takes def; anything but plain digits is refused. */
static int parse_count(const char *s, size_t def, size_t *out)
{
    if (!s) {
        *out = def;
        return 0;
    }
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9) return -1;
    *out = (size_t)strtoul(s, NULL, 10);
    return 0;
}

static const struct rows_source *find_rows(const struct hubserver *s, const char *dataset,
                                           const char *split)
{
    for (size_t i = 0; i < sizeof s->rows / sizeof s->rows[0]; i++)
        if (!strcmp(dataset, s->rows[i].dataset) && !strcmp(split, s->rows[i].split))
            return &s->rows[i];
    return NULL;
}

static json_t *rows_item(const struct rows_source *src, size_t i)
{
    size_t idx = src->flaw == ROWS_GAP && i >= 5 ? i + 1 : i;
    json_t *cut = json_array();
    if (src->flaw == ROWS_TRUNCATED && i == 3) json_array_append_new(cut, json_string("problem"));
    return json_pack("{s:I,s:O,s:o}", "row_idx", (json_int_t)idx, "row",
                     json_array_get(src->rows, i), "truncated_cells", cut);
}

static size_t rows_total(const struct rows_source *src, size_t offset)
{
    size_t total = json_array_size(src->rows);
    switch (src->flaw) {
    case ROWS_SHRINKING:
        return offset > 0 ? total - 1 : total;
    case ROWS_SHORT:
        return total + 5;
    case ROWS_LONG:
        return total - 1;
    default:
        return total;
    }
}

static json_t *rows_page(const struct rows_source *src, size_t offset, size_t length)
{
    size_t total = json_array_size(src->rows);
    json_t *rows = json_array();
    for (size_t i = offset; i < total && i < offset + length; i++)
        json_array_append_new(rows, rows_item(src, i));
    return json_pack("{s:[],s:o,s:I,s:i,s:b}", "features", "rows", rows, "num_rows_total",
                     (json_int_t)rows_total(src, offset), "num_rows_per_page", PAGE_MAX, "partial",
                     src->flaw == ROWS_PARTIAL);
}

static enum MHD_Result serve_rows(struct hubserver *s, struct MHD_Connection *c)
{
    const char *dataset = arg(c, "dataset"), *config = arg(c, "config"), *split = arg(c, "split");
    size_t offset, length;
    if (!dataset || !config || !split)
        return reply_error(c, 422, "MissingRequiredParameter",
                           "Parameters 'split', 'config' and 'dataset' are required");
    if (parse_count(arg(c, "offset"), 0, &offset) != 0 ||
        parse_count(arg(c, "length"), PAGE_MAX, &length) != 0 || length > PAGE_MAX)
        return reply_error(c, 422, "InvalidParameter",
                           "Parameter 'length' must be a positive integer not greater than 100");
    const struct rows_source *src = strcmp(config, "default") ? NULL : find_rows(s, dataset, split);
    if (!src)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "ResponseNotFound",
                           "The dataset does not exist, or is not accessible without "
                           "authentication (private or gated).");
    if (!src->rows) {
        static char broken[] = "{\"rows\":[{\"row_idx\":0,";
        return reply(
            c, MHD_HTTP_OK,
            MHD_create_response_from_buffer(sizeof broken - 1, broken, MHD_RESPMEM_PERSISTENT));
    }
    return reply_json(c, MHD_HTTP_OK, rows_page(src, offset, length), NULL);
}

/* ---- model repositories ------------------------------------------------ */

static const char *after(const char *s, const char *prefix);

/* The file is read at each request, unlike the data above: tests write
 * their model repositories after the server starts. */
static enum MHD_Result serve_model_file(struct MHD_Connection *c, const char *file)
{
    struct blob b = {0};
    ssf_error err;
    /* FILE.status, holding an HTTP status, has FILE answered with it. */
    ssf_buf status_file = {0};
    ssf_buf_printf(&status_file, "%s.status", file);
    int have_status = load_blob(&b, NULL, status_file.data, &err) == 0;
    ssf_buf_free(&status_file);
    if (have_status) {
        unsigned status = (unsigned)strtoul(b.data, NULL, 10);
        free(b.data);
        return reply_error(c, status, NULL, "Failed");
    }
    if (load_blob(&b, NULL, file, &err) != 0)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "EntryNotFound", "Entry not found");
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    size_t start = 0, end = b.len;
    int ranged = parse_range(h, b.len, &start, &end);
    if (ranged < 0) {
        free(b.data);
        return reply(c, MHD_HTTP_RANGE_NOT_SATISFIABLE,
                     MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(end - start, b.data + start, MHD_RESPMEM_MUST_COPY);
    free(b.data);
    return reply(c, ranged ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
}

/* url is /{org}/{name}/resolve/{rev}/{path}; any revision serves the files
 * of models_dir/{org}/{name}/. */
static enum MHD_Result serve_model(struct hubserver *s, struct MHD_Connection *c, const char *url)
{
    const char *org_end = strchr(url + 1, '/');
    const char *name_end = org_end ? strchr(org_end + 1, '/') : NULL;
    const char *rest = name_end ? after(name_end, "/resolve/") : NULL;
    const char *path = rest ? strchr(rest, '/') : NULL;
    if (!path || path == rest || !path[1] || strstr(url, ".."))
        return reply_error(c, MHD_HTTP_NOT_FOUND, "RepoNotFound", "Repository not found");
    ssf_buf file = {0};
    ssf_buf_printf(&file, "%s/%.*s%s", s->models_dir, (int)(name_end - url - 1), url + 1, path);
    enum MHD_Result ret = serve_model_file(c, file.data);
    ssf_buf_free(&file);
    return ret;
}

/* ---- routing ----------------------------------------------------------- */

static const char *after(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

static enum MHD_Result route(struct hubserver *s, struct MHD_Connection *c, const char *url)
{
    const char *rest;
    if (strcmp(url, "/rows") == 0) return serve_rows(s, c);
    if ((rest = after(url, "/datasets/HuggingFaceH4/MATH-500/resolve/")))
        return serve_pinned(c, rest, MATH500_REV, "test.jsonl", &s->math500);
    if ((rest = after(url, "/datasets/Idavidrein/gpqa/resolve/"))) return serve_gated(s, c, rest);
    if ((rest = after(url, "/datasets/ssfteval-test/corrupt/resolve/")))
        return serve_any_rev(c, rest, &s->corrupt, PLAIN);
    if ((rest = after(url, "/datasets/ssfteval-test/flaky/resolve/")))
        return serve_any_rev(c, rest, &s->math500, FLAKY);
    if ((rest = after(url, "/datasets/ssfteval-test/norange/resolve/")))
        return serve_any_rev(c, rest, &s->math500, NO_RANGES);
    if ((rest = after(url, "/datasets/ssfteval-test/stalling/resolve/")))
        return serve_stalling(s, c, rest);
    if (after(url, "/datasets/ssfteval-test/redirect/resolve/")) return redirect(c, MATH500_PATH);
    if (after(url, "/datasets/ssfteval-test/loop/resolve/")) return redirect(c, url);
    if (after(url, "/datasets/ssfteval-test/downgrade/resolve/")) return downgrade(s, c);
    if (after(url, "/datasets/ssfteval-test/unavailable/"))
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Service Unavailable");
    /* The Hub answers a private repository (or a missing one) to a request
     * without a token so. */
    if (after(url, "/datasets/ssfteval-test/private/"))
        return reply_error(c, MHD_HTTP_UNAUTHORIZED, "RepoNotFound",
                           "Invalid username or password.");
    if (s->models_dir && !after(url, "/datasets/")) return serve_model(s, c, url);
    return reply_error(c, MHD_HTTP_NOT_FOUND, "RepoNotFound", "Repository not found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    static int seen; /* marks a request as counted */
    struct hubserver *s = cls;
    (void)version;
    (void)upload_data;
    /* The handler runs more than once for a request with a body. */
    if (*req_cls == NULL) {
        *req_cls = &seen;
        atomic_fetch_add(&s->requests, 1);
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "Method not allowed");
    return route(s, c, url);
}

/* ---- life cycle -------------------------------------------------------- */

static int start_daemon(struct hubserver *s, const struct hubserver_options *options,
                        ssf_error *err)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = 0; /* the kernel picks a free port: tests can run in parallel */
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (mhd_tls_load(&s->tls, options->tls_dir, err) != 0) return -1;
    /* A thread per connection: the stalling route's wait holds up no other. */
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | mhd_tls_flags(&s->tls), 0,
        NULL, NULL, on_request, s, MHD_OPTION_ARRAY, s->tls.items, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!s->daemon)
        return ssf_fail(err, "hubserver: cannot listen on 127.0.0.1: %s", strerror(errno));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) return ssf_fail(err, "hubserver: cannot read the bound port");
    s->port = info->port;
    return 0;
}

struct hubserver *hubserver_start(const struct hubserver_options *options, ssf_error *err)
{
    struct hubserver *s = ssf_xcalloc(1, sizeof *s);
    atomic_init(&s->requests, 0);
    atomic_init(&s->stopping, 0);
    if (load_data(s, options, err) != 0 || start_daemon(s, options, err) != 0) {
        hubserver_stop(s);
        return NULL;
    }
    return s;
}

unsigned hubserver_port(struct hubserver *server)
{
    return server->port;
}

void hubserver_serve_models(struct hubserver *server, const char *dir)
{
    free(server->models_dir);
    server->models_dir = ssf_xstrdup(dir);
}

size_t hubserver_request_count(struct hubserver *server)
{
    return atomic_load(&server->requests);
}

void hubserver_stop(struct hubserver *server)
{
    if (!server) return;
    atomic_store(&server->stopping, 1);
    if (server->daemon) MHD_stop_daemon(server->daemon);
    for (size_t i = 0; i < sizeof server->rows / sizeof server->rows[0]; i++)
        json_decref(server->rows[i].rows);
    free(server->math500.data);
    free(server->corrupt.data);
    free(server->gpqa.data);
    free(server->token);
    free(server->models_dir);
    free(server->downgrade_to);
    mhd_tls_free(&server->tls);
    free(server);
}
