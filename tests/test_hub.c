/*
 * test_hub.c - the Hub client against the in-process test Hub (hubserver.h):
 * downloads, cache hits, offline mode, checksums, resume, gated access, the
 * /rows API and error messages.  Every test gets an empty cache directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "hubserver.h"
#include "ssfteval/hub.h"
#include "ssfteval/records.h"

#define MATH500 "HuggingFaceH4/MATH-500"
#define MATH500_REV "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be"
#define MATH500_SHA "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132"
#define GPQA "Idavidrein/gpqa"
#define GPQA_REV "83022cefff930aea54f654c0b282e74b9eeda5c6"
#define GPQA_SHA "41d1213cd7a4998605a26c2798500652572007161b3a92817ba46b35befcd305"
#define TOKEN "hf_ssfteval_test_token"
#define WRONG_SHA "0000000000000000000000000000000000000000000000000000000000000000"

static char *g_data_dir; /* $SSFTEVAL_SHARED/data */
static char *g_tmp_dir;  /* holds the decrypted GPQA member while tests run */
static char *g_gpqa_csv; /* g_tmp_dir/gpqa_diamond.csv */
static struct hubserver *g_server;

struct fixture {
    ssf_hub hub;
    char *cache;
};

/* ---- helpers ----------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    ssf_buf buf = {0};
    ssf_buf_printf(&buf, "%s/%s", a, b);
    return ssf_buf_take(&buf);
}

static char *make_temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = join(tmp && *tmp ? tmp : "/tmp", "ssfteval-test-hub-XXXXXX");
    if (!mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    if (dir) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static size_t requests(void)
{
    return hubserver_request_count(g_server);
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* A failure must be -1 with one line that says what went wrong. */
static void assert_error(int rc, const ssf_error *err, const char *needle)
{
    assert_int_equal(rc, -1);
    if (!strstr(err->msg, needle)) fail_msg("error \"%s\" lacks \"%s\"", err->msg, needle);
    if (strchr(err->msg, '\n')) fail_msg("error \"%s\" spans several lines", err->msg);
}

static void assert_ok(int rc, const ssf_error *err)
{
    if (rc != 0) fail_msg("unexpected error: %s", err->msg);
}

static void assert_sha(const char *path, const char *want)
{
    char got[65];
    ssf_error err;
    assert_ok(ssf_sha256_file(path, got, &err), &err);
    assert_string_equal(got, want);
}

static void write_file(const char *path, const char *data, size_t len)
{
    ssf_error err;
    char *dir = ssf_xstrdup(path);
    *strrchr(dir, '/') = '\0';
    assert_ok(ssf_mkdirs(dir, &err), &err);
    assert_ok(ssf_write_file_atomic(path, data, len, &err), &err);
    free(dir);
}

static void read_shared(const char *name, char **data, size_t *len)
{
    ssf_error err;
    char *path = join(g_data_dir, name);
    assert_ok(ssf_read_file(path, data, len, &err), &err);
    free(path);
}

/* One JSON value per non-empty line. */
static json_t *load_jsonl(const char *path)
{
    ssf_error err;
    char *data;
    size_t len;
    assert_ok(ssf_read_file(path, &data, &len, &err), &err);
    json_t *rows = json_array();
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *v = json_loads(line, 0, &jerr);
        if (!v) fail_msg("%s: %s", path, jerr.text);
        json_array_append_new(rows, v);
    }
    free(data);
    return rows;
}

/* The cache must hold the same objects as the source file, one compact
 * line each, in the source's order and key order. */
static void assert_rows_match(const char *got_path, const char *want_name, size_t n)
{
    char *want_path = join(g_data_dir, want_name);
    json_t *got = load_jsonl(got_path), *want = load_jsonl(want_path);
    assert_int_equal(json_array_size(got), n);
    assert_int_equal(json_array_size(want), n);
    char *data;
    size_t len;
    ssf_error err;
    assert_ok(ssf_read_file(got_path, &data, &len, &err), &err);
    char *line = data;
    for (size_t i = 0; i < n; i++) {
        assert_true(json_equal(json_array_get(got, i), json_array_get(want, i)));
        char *compact = json_dumps(json_array_get(want, i), JSON_COMPACT);
        size_t clen = strlen(compact);
        assert_memory_equal(line, compact, clen);
        assert_int_equal(line[clen], '\n');
        line += clen + 1;
        free(compact);
    }
    assert_int_equal((size_t)(line - data), len);
    free(data);
    json_decref(got);
    json_decref(want);
    free(want_path);
}

static int fetch_math500(struct fixture *f, const char *sha, char **local, ssf_error *err)
{
    return ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, MATH500, MATH500_REV, "test.jsonl", sha,
                              local, err);
}

static char *math500_cache_path(struct fixture *f)
{
    return ssf_hub_cache_path(&f->hub, SSF_REPO_DATASET, MATH500, MATH500_REV, "test.jsonl");
}

static char *part_path(const char *dest)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s.incomplete", dest);
    return ssf_buf_take(&b);
}

/* Decrypts one zip member to dest (the archive's password is public); the
 * plain text only ever exists in a temporary directory. */
static int extract_member(const char *zip_path, const char *member, const char *password,
                          const char *dest)
{
    ssf_error err;
    char *data = NULL;
    size_t len = 0;
    int rc = ssf_zip_read_member(zip_path, member, password, &data, &len, &err);
    if (rc == 0) rc = ssf_write_file_atomic(dest, data, len, &err);
    if (rc != 0) fprintf(stderr, "%s\n", err.msg);
    free(data);
    return rc;
}

/* ---- fixtures ---------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    ssf_error err;
    g_tmp_dir = make_temp_dir();
    if (!g_tmp_dir) return -1;
    char *zip_path = join(g_data_dir, "gpqa/dataset.zip");
    g_gpqa_csv = join(g_tmp_dir, "gpqa_diamond.csv");
    int rc =
        extract_member(zip_path, "dataset/gpqa_diamond.csv", "deserted-untie-orchid", g_gpqa_csv);
    free(zip_path);
    if (rc != 0) {
        fprintf(stderr, "cannot extract the GPQA Diamond member\n");
        return -1;
    }
    struct hubserver_options o = {.data_dir = g_data_dir, .gpqa_csv = g_gpqa_csv, .token = TOKEN};
    g_server = hubserver_start(&o, &err);
    if (!g_server) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", hubserver_port(g_server));
    /* The trailing slash checks that the endpoint is normalised. */
    ssf_buf endpoint = {0};
    ssf_buf_printf(&endpoint, "%s/", base);
    setenv("HF_ENDPOINT", endpoint.data, 1);
    setenv("SSFTEVAL_ROWS_ENDPOINT", base, 1);
    ssf_buf_free(&endpoint);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hubserver_stop(g_server);
    remove_tree(g_tmp_dir);
    free(g_gpqa_csv);
    free(g_tmp_dir);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = ssf_xcalloc(1, sizeof *f);
    ssf_error err;
    f->cache = make_temp_dir();
    if (!f->cache) return -1;
    setenv("SSFTEVAL_CACHE", f->cache, 1);
    if (ssf_hub_init_from_env(&f->hub, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ssf_hub_free(&f->hub);
    remove_tree(f->cache);
    free(f->cache);
    free(f);
    return 0;
}

/* ---- files ------------------------------------------------------------- */

static void test_download_verified_and_cached(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *again = NULL, *want = math500_cache_path(f);
    size_t before = requests();
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    assert_string_equal(local, want);
    /* The layout is what a cache filled by an earlier version is found by. */
    char *layout = join(f->cache, "hub/datasets/" MATH500 "/" MATH500_REV "/test.jsonl");
    assert_string_equal(local, layout);
    free(layout);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 1);
    char *part = part_path(want);
    assert_false(exists(part));
    assert_ok(fetch_math500(f, MATH500_SHA, &again, &err), &err);
    assert_string_equal(again, want);
    assert_int_equal(requests(), before + 1); /* a cache hit asks nobody */
    assert_ok(ssf_hub_verify_file(&f->hub, SSF_REPO_DATASET, MATH500, MATH500_REV, "test.jsonl",
                                  MATH500_SHA, &err),
              &err);
    free(part);
    free(local);
    free(again);
    free(want);
}

static void test_download_without_sha(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *again = NULL;
    size_t before = requests();
    assert_ok(fetch_math500(f, NULL, &local, &err), &err);
    assert_sha(local, MATH500_SHA);
    assert_ok(fetch_math500(f, NULL, &again, &err), &err);
    assert_int_equal(requests(), before + 1);
    free(local);
    free(again);
}

static void test_offline_empty_cache(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    f->hub.offline = 1;
    size_t before = requests();
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err,
                 "is not in the cache (offline mode)");
    assert_error(-1, &err, "run `ssfteval data fetch` with network access");
    assert_null(local);
    assert_int_equal(requests(), before);
}

/* A pinned file is refused as soon as its download passes the cap (here
 * 1,000 bytes of MATH-500's 447 kB), keeping nothing, where a file of any
 * size would have been written whole before its digest refused it. */
static void test_pinned_download_cap(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *dest = math500_cache_path(f), *part = part_path(dest);
    f->hub.max_pinned_bytes = 1000;
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err,
                 MATH500 "@" MATH500_REV "/test.jsonl: the server sent more than 1000 bytes, the "
                         "cap on a file pinned by its sha256");
    assert_error(-1, &err,
                 "the download was deleted: check HF_ENDPOINT, or raise "
                 "SSFTEVAL_MAX_PINNED_BYTES");
    assert_null(local);
    assert_false(exists(dest));
    assert_false(exists(part));
    /* A file with no sha256 (a model's weights, gigabytes) has no cap. */
    assert_ok(fetch_math500(f, NULL, &local, &err), &err);
    assert_sha(local, MATH500_SHA);
    free(local);
    assert_int_equal(unlink(dest), 0);
    /* The cap counts what a leftover .incomplete holds too: resumed, the
     * file would pass it. */
    char *data;
    size_t len;
    read_shared("math500.jsonl", &data, &len);
    write_file(part, data, 1000);
    f->hub.max_pinned_bytes = (long long)len - 1;
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err, "the server sent more than");
    assert_false(exists(part));
    /* A file exactly as long as the cap is taken. */
    f->hub.max_pinned_bytes = (long long)len;
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    free(local);
    assert_int_equal(unlink(dest), 0);
    f->hub.max_pinned_bytes = 0; /* no cap */
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    free(data);
    free(local);
    free(dest);
    free(part);
}

static void test_offline_cached(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *again = NULL;
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    f->hub.offline = 1;
    size_t before = requests();
    assert_ok(fetch_math500(f, MATH500_SHA, &again, &err), &err);
    assert_string_equal(again, local);
    assert_int_equal(requests(), before);
    free(local);
    free(again);
}

static void test_wrong_sha_deletes_download(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *dest = math500_cache_path(f), *part = part_path(dest);
    assert_error(fetch_math500(f, WRONG_SHA, &local, &err), &err,
                 "checksum mismatch for " MATH500 "@" MATH500_REV "/test.jsonl: expected " WRONG_SHA
                 ", got " MATH500_SHA);
    assert_error(-1, &err, "the download was deleted");
    assert_null(local);
    assert_false(exists(dest));
    assert_false(exists(part));
    free(dest);
    free(part);
}

static void test_corrupt_download(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    char *dest = ssf_hub_cache_path(&f->hub, SSF_REPO_DATASET, "ssfteval-test/corrupt", "main",
                                    "test.jsonl");
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/corrupt", "main",
                                    "test.jsonl", MATH500_SHA, &local, &err),
                 &err, "checksum mismatch");
    assert_false(exists(dest));
    free(dest);
}

static void test_flaky_download_resumes(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    size_t before = requests();
    assert_ok(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/flaky", "main",
                                 "test.jsonl", MATH500_SHA, &local, &err),
              &err);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 2); /* cut off once, then resumed */
    free(local);
}

static void test_resumes_leftover_part(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *data, *dest = math500_cache_path(f), *part = part_path(dest);
    size_t len;
    read_shared("math500.jsonl", &data, &len);
    write_file(part, data, 1000);
    size_t before = requests();
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 1);
    assert_false(exists(part));
    free(data);
    free(local);
    free(dest);
    free(part);
}

/* A leftover as long as the file gets 416: the client must start over. */
static void test_restarts_when_part_is_whole(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *data, *dest = math500_cache_path(f), *part = part_path(dest);
    size_t len;
    read_shared("math500.jsonl", &data, &len);
    write_file(part, data, len);
    size_t before = requests();
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 2);
    free(data);
    free(local);
    free(dest);
    free(part);
}

/* A server that ignores Range answers 200: appending would corrupt the file. */
static void test_restarts_without_range_support(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    char *dest = ssf_hub_cache_path(&f->hub, SSF_REPO_DATASET, "ssfteval-test/norange", "main",
                                    "test.jsonl");
    char *part = part_path(dest);
    write_file(part, "leftover", 8);
    size_t before = requests();
    assert_ok(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/norange", "main",
                                 "test.jsonl", MATH500_SHA, &local, &err),
              &err);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 2);
    free(local);
    free(dest);
    free(part);
}

/* Another process holds the .incomplete: leave it alone, say so. */
static void test_locked_part_refused(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *dest = math500_cache_path(f), *part = part_path(dest);
    write_file(part, "", 0);
    int fd = open(part, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    size_t before = requests();
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err, "is locked");
    assert_int_equal(requests(), before);
    close(fd);
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    free(local);
    free(dest);
    free(part);
}

/* A link planted at the .incomplete name (a cache others can write) is
 * refused, its target untouched; so is a hard link to someone's file. */
static void test_planted_part_refused(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *dest = math500_cache_path(f), *part = part_path(dest);
    char *victim = join(f->cache, "victim.txt");
    write_file(victim, "precious\n", 9);
    char *dir = ssf_xstrdup(part);
    *strrchr(dir, '/') = '\0';
    ssf_error ignored;
    assert_int_equal(ssf_mkdirs(dir, &ignored), 0);
    assert_int_equal(symlink(victim, part), 0);
    size_t before = requests();
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err, "is a symbolic link");
    assert_int_equal(requests(), before);
    unlink(part);
    assert_int_equal(link(victim, part), 0);
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err, "a hard link");
    unlink(part);
    assert_int_equal(mkfifo(part, 0600), 0); /* it must not hang the download */
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err, "is a FIFO");
    unlink(part);
    char *text = NULL;
    assert_int_equal(ssf_read_file(victim, &text, NULL, &ignored), 0);
    assert_string_equal(text, "precious\n");
    free(text);
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    free(local);
    free(dir);
    free(victim);
    free(dest);
    free(part);
}

static void test_stale_cache_redownloaded(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *dest = math500_cache_path(f);
    write_file(dest, "stale\n", 6);
    size_t before = requests();
    assert_ok(fetch_math500(f, MATH500_SHA, &local, &err), &err);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 1);
    free(local);
    free(dest);
}

static void test_wrong_revision_not_found(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    size_t before = requests();
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, MATH500, "refs/convert/parquet",
                                    "test.jsonl", NULL, &local, &err),
                 &err,
                 "/datasets/" MATH500 "/resolve/refs%2Fconvert%2Fparquet/test.jsonl: not "
                 "found (HTTP 404): check the repository, revision and path");
    /* Asked once (a 404 is no interrupted download to resume), and no
     * .incomplete is left: the error page is not content. */
    assert_int_equal(requests(), before + 1);
    char *dest = ssf_hub_cache_path(&f->hub, SSF_REPO_DATASET, MATH500, "refs/convert/parquet",
                                    "test.jsonl");
    char *part = part_path(dest);
    assert_false(exists(dest));
    assert_false(exists(part));
    free(part);
    free(dest);
}

/* A server error says so, and to try later; nothing is kept, and it is asked
 * once. */
static void test_server_error(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    size_t before = requests();
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/unavailable", "main",
                                    "test.jsonl", NULL, &local, &err),
                 &err,
                 "/datasets/ssfteval-test/unavailable/resolve/main/test.jsonl: the server "
                 "answered HTTP 503: try again later, or check the endpoint");
    assert_int_equal(requests(), before + 1);
    char *dest = ssf_hub_cache_path(&f->hub, SSF_REPO_DATASET, "ssfteval-test/unavailable", "main",
                                    "test.jsonl");
    char *part = part_path(dest);
    assert_false(exists(dest));
    assert_false(exists(part));
    free(part);
    free(dest);
}

/* The Hub sends downloads on to its CDN: the redirect is followed, and a
 * leftover .incomplete resumed there (Range goes with it). */
static void test_redirect_followed(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *data;
    char *dest = ssf_hub_cache_path(&f->hub, SSF_REPO_DATASET, "ssfteval-test/redirect", "main",
                                    "test.jsonl");
    char *part = part_path(dest);
    size_t len;
    read_shared("math500.jsonl", &data, &len);
    write_file(part, data, 1000);
    size_t before = requests();
    assert_ok(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/redirect", "main",
                                 "test.jsonl", MATH500_SHA, &local, &err),
              &err);
    assert_string_equal(local, dest);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 2); /* the redirect, then the rest of the file */
    assert_false(exists(part));
    free(data);
    free(local);
    free(dest);
    free(part);
}

/* Redirects that never end are given up after 10, in one line. */
static void test_redirect_loop(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    size_t before = requests();
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/loop", "main",
                                    "test.jsonl", NULL, &local, &err),
                 &err, "/datasets/ssfteval-test/loop/resolve/main/test.jsonl: ");
    assert_error(-1, &err, "(HTTP 302)");
    assert_int_equal(requests(), before + 11);
}

/* tests/fixtures/tls/name in the source tree, malloc'd. */
static char *tls_fixture(const char *name)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/tests/fixtures/tls%s%s", getenv("SSFTEVAL_SOURCE_ROOT"),
                   *name ? "/" : "", name);
    return ssf_buf_take(&b);
}

/* MATH-500's file fetched afresh (the cache emptied first) and checked. */
static int fetch_math500_anew(struct fixture *f, ssf_error *err)
{
    char *local = math500_cache_path(f);
    unlink(local);
    free(local);
    int rc = fetch_math500(f, MATH500_SHA, &local, err);
    if (rc == 0) assert_sha(local, MATH500_SHA);
    free(local);
    return rc;
}

/* A Hub on https with the certificate in tests/fixtures/tls/dir (its
 * downgrade route sent to downgrade_to), made f's endpoint, and no CA
 * named in the environment. */
static struct hubserver *start_secure_hub(struct fixture *f, const char *dir,
                                          const char *downgrade_to)
{
    ssf_error err;
    char *tls = tls_fixture(dir);
    struct hubserver_options o = {
        .data_dir = g_data_dir, .tls_dir = tls, .downgrade_to = downgrade_to};
    struct hubserver *secure = hubserver_start(&o, &err);
    free(tls);
    assert_ok(secure ? 0 : -1, &err);
    char base[64];
    snprintf(base, sizeof base, "https://127.0.0.1:%u", hubserver_port(secure));
    free(f->hub.endpoint);
    f->hub.endpoint = ssf_xstrdup(base);
    unsetenv("CURL_CA_BUNDLE");
    unsetenv("SSL_CERT_DIR");
    unsetenv("SSL_CERT_FILE");
    return secure;
}

/* A Hub or mirror behind a certificate of one's own CA: refused with the
 * fix named until SSL_CERT_FILE (or CURL_CA_BUNDLE) names that CA, trusted
 * then; and from an https endpoint, a redirect to plain http is not
 * followed, where from an http one it is. */
static void test_https(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *ca = tls_fixture("ca.pem");
    char plain[64];
    snprintf(plain, sizeof plain, "http://127.0.0.1:%u", hubserver_port(g_server));
    struct hubserver *secure = start_secure_hub(f, "", plain);

    assert_error(fetch_math500_anew(f, &err), &err, "cannot trust https://127.0.0.1:");
    assert_error(-1, &err,
                 "if a CA of your own signed its certificate, name that CA's file in "
                 "SSL_CERT_FILE");
    setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem", 1);
    assert_error(fetch_math500_anew(f, &err), &err,
                 "the CA file or folder that CURL_CA_BUNDLE, SSL_CERT_FILE or SSL_CERT_DIR "
                 "names cannot be read: check the path");
    unsetenv("CURL_CA_BUNDLE");
    setenv("SSL_CERT_FILE", ca, 1);
    assert_ok(fetch_math500_anew(f, &err), &err);

    size_t plain_before = requests();
    char *local = NULL;
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/downgrade", "main",
                                    "test.jsonl", NULL, &local, &err),
                 &err,
                 "/datasets/ssfteval-test/downgrade/resolve/main/test.jsonl: redirected from "
                 "https to plain http, which is not followed (the file would travel "
                 "unencrypted); use an https mirror");
    assert_int_equal(requests(), plain_before); /* the http server was never asked */
    free(f->hub.endpoint);
    f->hub.endpoint = ssf_xstrdup(plain);
    assert_ok(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/downgrade", "main",
                                 "test.jsonl", MATH500_SHA, &local, &err),
              &err);
    assert_int_equal(requests(), plain_before + 2);
    free(local);
    unsetenv("SSL_CERT_FILE");
    hubserver_stop(secure);
    free(ca);
}

/* A redirect to another scheme than http(s) is refused by that scheme's
 * name, not as a downgrade to plain http. */
static void test_redirect_to_ftp(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *ca = tls_fixture("ca.pem");
    struct hubserver *secure = start_secure_hub(f, "", "ftp://127.0.0.1:9");
    setenv("SSL_CERT_FILE", ca, 1);
    char *local = NULL;
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/downgrade", "main",
                                    "test.jsonl", NULL, &local, &err),
                 &err,
                 "/datasets/ssfteval-test/downgrade/resolve/main/test.jsonl: redirected to a "
                 "URL of the scheme 'ftp', which is not followed (only http and https are); use "
                 "a mirror that serves the files over https");
    assert_null(strstr(err.msg, "unencrypted"));
    unsetenv("SSL_CERT_FILE");
    hubserver_stop(secure);
    free(ca);
}

/* A mirror whose certificate the trusted CA signed for another name: the
 * fix named is the name in HF_ENDPOINT, not a CA file. */
static void test_https_other_name(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *ca = tls_fixture("ca.pem");
    struct hubserver *secure = start_secure_hub(f, "other-name", NULL);
    setenv("SSL_CERT_FILE", ca, 1);
    assert_error(fetch_math500_anew(f, &err), &err,
                 "; its certificate is not for the host in the URL: give the server by a name "
                 "its certificate names");
    assert_null(strstr(err.msg, "CA"));
    unsetenv("SSL_CERT_FILE");
    hubserver_stop(secure);
    free(ca);
}

/* A server that goes quiet mid-download is given up on after the
 * low-speed timeout (1 s here), and the download resumed, rather than
 * waited on (12 s here; for ever on a real connection). */
static void test_stalled_download_resumes(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    f->hub.low_speed_timeout_s = 1;
    size_t before = requests();
    double start = ssf_monotonic_seconds();
    assert_ok(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/stalling", "main",
                                 "test.jsonl", MATH500_SHA, &local, &err),
              &err);
    double took = ssf_monotonic_seconds() - start;
    if (took >= 8.0) fail_msg("the stalled download took %.1f s", took);
    assert_sha(local, MATH500_SHA);
    assert_int_equal(requests(), before + 2);
    free(local);
}

static void test_unreachable_endpoint(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    free(f->hub.endpoint);
    f->hub.endpoint = ssf_xstrdup("http://127.0.0.1:1");
    assert_error(fetch_math500(f, MATH500_SHA, &local, &err), &err,
                 "cannot reach http://127.0.0.1:1: ");
    free(f->hub.rows_endpoint);
    f->hub.rows_endpoint = ssf_xstrdup("http://127.0.0.1:1");
    assert_error(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 30,
                                    &local, &err),
                 &err, "cannot reach http://127.0.0.1:1: ");
}

static void test_verify_file(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_error(ssf_hub_verify_file(&f->hub, SSF_REPO_DATASET, MATH500, MATH500_REV, "test.jsonl",
                                     MATH500_SHA, &err),
                 &err, "is not in the cache");
    assert_ok(fetch_math500(f, NULL, &local, &err), &err);
    assert_error(ssf_hub_verify_file(&f->hub, SSF_REPO_DATASET, MATH500, MATH500_REV, "test.jsonl",
                                     WRONG_SHA, &err),
                 &err, "checksum mismatch");
    write_file(local, "x", 1);
    assert_error(ssf_hub_verify_file(&f->hub, SSF_REPO_DATASET, MATH500, MATH500_REV, "test.jsonl",
                                     MATH500_SHA, &err),
                 &err, "checksum mismatch");
    free(local);
}

static void test_bad_names_refused(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    size_t before = requests();
    assert_error(
        ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "../etc", "main", "x", NULL, &local, &err),
        &err, "invalid repository");
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, MATH500, "main", "a/../../x", NULL,
                                    &local, &err),
                 &err, "invalid path");
    assert_error(fetch_math500(f, "abc", &local, &err), &err, "invalid sha256");
    /* A control character would break the one-line messages that name it. */
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, MATH500, "main\nx", "test.jsonl",
                                    NULL, &local, &err),
                 &err, "invalid revision: it contains a control character");
    assert_error(ssf_hub_fetch_rows(&f->hub, MATH500, "default", "../x", 0, &local, &err), &err,
                 "invalid split");
    assert_int_equal(requests(), before);
}

/* ---- gated GPQA -------------------------------------------------------- */

static int fetch_gpqa(struct fixture *f, char **local, ssf_error *err)
{
    return ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, GPQA, GPQA_REV, "gpqa_diamond.csv",
                              GPQA_SHA, local, err);
}

static void test_gated_without_token(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_error(fetch_gpqa(f, &local, &err), &err,
                 "access to gated dataset " GPQA " refused (HTTP 401): set HF_TOKEN");
    assert_error(-1, &err, "/datasets/" GPQA); /* where to accept the terms */
}

static void test_gated_wrong_token(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    f->hub.token = ssf_xstrdup("hf_wrong");
    assert_error(fetch_gpqa(f, &local, &err), &err, "HF_TOKEN was refused");
    assert_error(-1, &err, "HTTP 403");
    assert_error(-1, &err, "gated");
}

/* The Hub answers a request for a private or missing repository with 401
 * and RepoNotFound: both are named, with the fixes (the name, the token). */
static void test_private_without_token(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/private", "main",
                                    "test.jsonl", NULL, &local, &err),
                 &err,
                 "dataset ssfteval-test/private not found, or private (HTTP 401): check the "
                 "name, or set HF_TOKEN to a token of an account with access to ");
    /* with a token, the token is what was refused */
    f->hub.token = ssf_xstrdup(TOKEN);
    assert_error(ssf_hub_fetch_file(&f->hub, SSF_REPO_DATASET, "ssfteval-test/private", "main",
                                    "test.jsonl", NULL, &local, &err),
                 &err, "or HF_TOKEN was refused: use a token of an account with access to ");
}

static void test_gated_right_token(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    f->hub.token = ssf_xstrdup(TOKEN);
    assert_ok(fetch_gpqa(f, &local, &err), &err);
    assert_sha(local, GPQA_SHA);
    free(local);
}

/* ---- the /rows API ----------------------------------------------------- */

static void test_rows_aime24(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *again = NULL;
    size_t before = requests();
    assert_ok(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 30, &local,
                                 &err),
              &err);
    assert_int_equal(requests(), before + 1);
    assert_rows_match(local, "aime24.jsonl", 30);
    char *want = ssf_hub_rows_cache_path(&f->hub, "HuggingFaceH4/aime_2024", "default", "train");
    assert_string_equal(local, want);
    assert_ok(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 30, &again,
                                 &err),
              &err);
    assert_int_equal(requests(), before + 1);
    free(want);
    free(local);
    free(again);
}

static void test_rows_aime25(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_ok(
        ssf_hub_fetch_rows(&f->hub, "yentinglin/aime_2025", "default", "train", 0, &local, &err),
        &err);
    assert_rows_match(local, "aime25.jsonl", 30);
    free(local);
}

static void test_rows_math500_pages(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    size_t before = requests();
    assert_ok(ssf_hub_fetch_rows(&f->hub, MATH500, "default", "test", 500, &local, &err), &err);
    assert_int_equal(requests(), before + 5);
    assert_rows_match(local, "math500.jsonl", 500);
    free(local);
}

static void test_rows_expected_mismatch(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_error(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 31,
                                    &local, &err),
                 &err, "has 30 rows, expected 31");
    char *dest = ssf_hub_rows_cache_path(&f->hub, "HuggingFaceH4/aime_2024", "default", "train");
    assert_false(exists(dest));
    free(dest);
}

static void test_rows_unknown_dataset(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_error(ssf_hub_fetch_rows(&f->hub, "nobody/nothing", "default", "train", 0, &local, &err),
                 &err,
                 "/rows?dataset=nobody%2Fnothing&config=default&split=train&offset=0&"
                 "length=100: not found (HTTP 404)");
}

static void test_rows_malformed(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL;
    assert_error(
        ssf_hub_fetch_rows(&f->hub, "ssfteval-test/malformed", "default", "train", 0, &local, &err),
        &err, "/rows?dataset=ssfteval-test%2Fmalformed&");
    assert_error(-1, &err, "is not valid JSON");
}

/* What a /rows answer gets wrong is refused, and nothing is kept: each of
 * these would leave a question set short or cut without a word. */
static void test_rows_flawed_answers(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *dataset, *split, *needle;
    } cases[] = {
        {"ssfteval-test/partial", "train", "the server has only part of ssfteval-test/partial"},
        {"ssfteval-test/truncated", "train",
         "row 3 came with its cell 'problem' truncated by the server"},
        {"ssfteval-test/gap", "train", "row_idx 6 where 5 was expected"},
        {"ssfteval-test/shrinking", "test", "num_rows_total changed from 500 to 499"},
        {"ssfteval-test/short", "train", "no rows at offset 30 of 35"},
        {"ssfteval-test/long", "train", "more rows than num_rows_total (29)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ssf_error err;
        char *local = NULL;
        assert_error(ssf_hub_fetch_rows(&f->hub, cases[i].dataset, "default", cases[i].split, 0,
                                        &local, &err),
                     &err, cases[i].needle);
        assert_null(local);
        char *dest = ssf_hub_rows_cache_path(&f->hub, cases[i].dataset, "default", cases[i].split);
        assert_false(exists(dest));
        free(dest);
    }
}

static void test_rows_offline(void **state)
{
    struct fixture *f = *state;
    ssf_error err;
    char *local = NULL, *again = NULL;
    f->hub.offline = 1;
    assert_error(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 30,
                                    &local, &err),
                 &err, "is not in the cache (offline mode)");
    f->hub.offline = 0;
    assert_ok(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 30, &local,
                                 &err),
              &err);
    f->hub.offline = 1;
    size_t before = requests();
    assert_ok(ssf_hub_fetch_rows(&f->hub, "HuggingFaceH4/aime_2024", "default", "train", 30, &again,
                                 &err),
              &err);
    assert_int_equal(requests(), before);
    free(local);
    free(again);
}

/* ---- configuration ----------------------------------------------------- */

static const char *const env_names[] = {
    "HF_ENDPOINT",    "SSFTEVAL_ROWS_ENDPOINT", "HF_TOKEN", "SSFTEVAL_CACHE",
    "HF_HUB_OFFLINE", "SSFTEVAL_OFFLINE",       "HOME",     "SSFTEVAL_MAX_PINNED_BYTES",
};
#define N_ENV (sizeof env_names / sizeof env_names[0])

static void save_env(char *saved[N_ENV])
{
    for (size_t i = 0; i < N_ENV; i++) {
        const char *v = getenv(env_names[i]);
        saved[i] = v ? ssf_xstrdup(v) : NULL;
        unsetenv(env_names[i]);
    }
}

static void restore_env(char *saved[N_ENV])
{
    for (size_t i = 0; i < N_ENV; i++) {
        if (saved[i])
            setenv(env_names[i], saved[i], 1);
        else
            unsetenv(env_names[i]);
        free(saved[i]);
    }
}

static void test_init_from_env(void **state)
{
    (void)state;
    char *saved[N_ENV];
    ssf_hub hub;
    ssf_error err;
    save_env(saved);
    setenv("HOME", "/home/someone", 1);
    assert_ok(ssf_hub_init_from_env(&hub, &err), &err);
    assert_string_equal(hub.endpoint, "https://huggingface.co");
    assert_string_equal(hub.rows_endpoint, "https://datasets-server.huggingface.co");
    assert_string_equal(hub.cache_dir, "/home/someone/.cache/ssfteval");
    assert_null(hub.token);
    assert_int_equal(hub.offline, 0);
    assert_int_equal(hub.connect_timeout_s, 10);
    assert_int_equal(hub.low_speed_timeout_s, 60);
    assert_true(hub.max_pinned_bytes == 1LL << 30);
    ssf_hub_free(&hub);

    setenv("HF_ENDPOINT", "https://hf-mirror.example//", 1);
    setenv("SSFTEVAL_ROWS_ENDPOINT", "http://rows.example/", 1);
    setenv("HF_TOKEN", "hf_abc", 1);
    setenv("SSFTEVAL_CACHE", "/var/cache/x", 1);
    setenv("HF_HUB_OFFLINE", "1", 1);
    assert_ok(ssf_hub_init_from_env(&hub, &err), &err);
    assert_string_equal(hub.endpoint, "https://hf-mirror.example");
    assert_string_equal(hub.rows_endpoint, "http://rows.example");
    assert_string_equal(hub.token, "hf_abc");
    assert_string_equal(hub.cache_dir, "/var/cache/x");
    assert_int_equal(hub.offline, 1);
    ssf_hub_free(&hub);

    unsetenv("HF_HUB_OFFLINE");
    setenv("SSFTEVAL_OFFLINE", "1", 1);
    assert_ok(ssf_hub_init_from_env(&hub, &err), &err);
    assert_int_equal(hub.offline, 1);
    ssf_hub_free(&hub);
    unsetenv("SSFTEVAL_OFFLINE");

    /* huggingface_hub's spellings of true, and only those. */
    static const struct {
        const char *value;
        int offline;
    } spellings[] = {{"true", 1}, {"YES", 1}, {"On", 1}, {"0", 0}, {"false", 0}, {"", 0}};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        setenv("HF_HUB_OFFLINE", spellings[i].value, 1);
        assert_ok(ssf_hub_init_from_env(&hub, &err), &err);
        if (hub.offline != spellings[i].offline)
            fail_msg("HF_HUB_OFFLINE=%s: offline %d", spellings[i].value, hub.offline);
        ssf_hub_free(&hub);
    }
    unsetenv("HF_HUB_OFFLINE");

    setenv("SSFTEVAL_MAX_PINNED_BYTES", "5000", 1);
    assert_ok(ssf_hub_init_from_env(&hub, &err), &err);
    assert_true(hub.max_pinned_bytes == 5000);
    ssf_hub_free(&hub);
    setenv("SSFTEVAL_MAX_PINNED_BYTES", "0", 1); /* no cap */
    assert_ok(ssf_hub_init_from_env(&hub, &err), &err);
    assert_true(hub.max_pinned_bytes == 0);
    ssf_hub_free(&hub);
    setenv("SSFTEVAL_MAX_PINNED_BYTES", "5k", 1);
    assert_error(ssf_hub_init_from_env(&hub, &err), &err,
                 "SSFTEVAL_MAX_PINNED_BYTES is '5k', not a number of bytes");
    assert_null(hub.cache_dir); /* nothing held */
    unsetenv("SSFTEVAL_MAX_PINNED_BYTES");

    unsetenv("SSFTEVAL_CACHE");
    unsetenv("HOME");
    assert_error(ssf_hub_init_from_env(&hub, &err), &err, "SSFTEVAL_CACHE");
    restore_env(saved);
}

int main(void)
{
    const char *shared = getenv("SSFTEVAL_SHARED");
    if (!shared || !*shared) {
        fprintf(stderr, "SSFTEVAL_SHARED is not set: skipping\n");
        return 77;
    }
    g_data_dir = join(shared, "data");
    char *probe = join(g_data_dir, "math500.jsonl");
    int have_data = exists(probe);
    free(probe);
    if (!have_data) {
        fprintf(stderr, "%s has no math500.jsonl: skipping\n", g_data_dir);
        free(g_data_dir);
        return 77;
    }
    /* The caller's Hub settings must not leak into the tests. */
    unsetenv("HF_TOKEN");
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("SSFTEVAL_OFFLINE");

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_download_verified_and_cached),
        T(test_download_without_sha),
        T(test_offline_empty_cache),
        T(test_pinned_download_cap),
        T(test_offline_cached),
        T(test_wrong_sha_deletes_download),
        T(test_corrupt_download),
        T(test_flaky_download_resumes),
        T(test_resumes_leftover_part),
        T(test_restarts_when_part_is_whole),
        T(test_restarts_without_range_support),
        T(test_locked_part_refused),
        T(test_planted_part_refused),
        T(test_stale_cache_redownloaded),
        T(test_wrong_revision_not_found),
        T(test_server_error),
        T(test_redirect_followed),
        T(test_redirect_loop),
        T(test_https),
        T(test_https_other_name),
        T(test_redirect_to_ftp),
        T(test_stalled_download_resumes),
        T(test_unreachable_endpoint),
        T(test_verify_file),
        T(test_bad_names_refused),
        T(test_gated_without_token),
        T(test_gated_wrong_token),
        T(test_private_without_token),
        T(test_gated_right_token),
        T(test_rows_aime24),
        T(test_rows_aime25),
        T(test_rows_math500_pages),
        T(test_rows_expected_mismatch),
        T(test_rows_unknown_dataset),
        T(test_rows_malformed),
        T(test_rows_flawed_answers),
        T(test_rows_offline),
        cmocka_unit_test(test_init_from_env),
    };
#undef T
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    free(g_data_dir);
    return failed;
}
