/*
 * test_store.c - the SQLite results store: schema, runs, samples, grades,
 * metrics, refusal of files that are not ours (byte for byte unchanged),
 * waiting for another writer (and refusing past the wait), a full disk, and
 * surviving kill -9 mid-write.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "ssfteval/util.h"
#include "test-support.h"

/* ---- helpers ------------------------------------------------------------ */

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *read_bytes(const char *path, size_t *len)
{
    char *data;
    ssf_error err;
    assert_int_equal(ssf_read_file(path, &data, len, &err), 0);
    return data;
}

static void write_bytes(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Opening path must fail with a message containing want, and leave the
 * file's bytes exactly as they were. */
static void assert_refused_unchanged(const char *path, int readonly, const char *want)
{
    size_t before_len, after_len;
    char *before = read_bytes(path, &before_len);
    ssf_store *s = (ssf_store *)1;
    ssf_error err = {0};
    assert_int_equal(ssf_store_open(path, 1, readonly, &s, &err), -1);
    assert_null(s);
    if (!strstr(err.msg, want) || !strstr(err.msg, path)) fail_msg("message: %s", err.msg);
    assert_null(strchr(err.msg, '\n'));
    char *after = read_bytes(path, &after_len);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
}

static ssf_store *open_store(const char *path)
{
    ssf_store *s = NULL;
    ssf_error err;
    if (ssf_store_open(path, 1, 0, &s, &err) != 0) fail_msg("open: %s", err.msg);
    return s;
}

static ssf_run_meta test_meta(const char *hash)
{
    return (ssf_run_meta){.config_json = "{\"k\":1}",
                          .config_hash = hash,
                          .tasks = "aime25,math_500",
                          .metrics = "pass@1",
                          .model = "m",
                          .backend = "replay",
                          .protocol = "",
                          .compat = "",
                          .profile = "default",
                          .version = "0.1"};
}

static int64_t begin(ssf_store *s, const char *hash, int *resumed)
{
    ssf_run_meta m = test_meta(hash);
    int64_t id = 0;
    ssf_error err;
    if (ssf_store_begin_run(s, &m, &id, resumed, &err) != 0) fail_msg("begin: %s", err.msg);
    return id;
}

static ssf_sample_row sample(const char *task, int64_t doc, int tag, int index, const char *text)
{
    return (ssf_sample_row){.task = task,
                            .doc = doc,
                            .tag = tag,
                            .index = index,
                            .seed = 42,
                            .request_json = "{}",
                            .text = text,
                            .finish_reason = "stop",
                            .prompt_tokens = 10,
                            .completion_tokens = 20,
                            .latency_ms = 1.5,
                            .attempts = 1};
}

static void put(ssf_store *s, int64_t run, const ssf_sample_row *row, const ssf_grade_row *g)
{
    ssf_error err;
    if (ssf_store_put_sample(s, run, row, g, &err) != 0) fail_msg("put_sample: %s", err.msg);
}

/* Runs one query on a raw connection and returns the first column of its
 * first row (malloc'd). */
static char *query1(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *r = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}

static void assert_query(const char *path, const char *sql, const char *want)
{
    char *got = query1(path, sql);
    if (strcmp(got, want) != 0) fail_msg("%s: got %s, want %s", sql, got, want);
    free(got);
}

/* Collects what foreach_sample visits. */
typedef struct seen {
    int n, stop_after;
    char keys[64][64];
    ssf_stored_sample copy; /* the last one; strings not kept */
    char text[256], error[256], reasoning[256], pred_key[256], finish[32], request[64];
} seen;

static int collect(const ssf_stored_sample *st, void *ud)
{
    seen *c = ud;
    if (c->n < 64)
        snprintf(c->keys[c->n], sizeof c->keys[0], "%s/%lld/%d/%d", st->task, (long long)st->doc,
                 st->tag, st->index);
    c->copy = *st;
    snprintf(c->text, sizeof c->text, "%s", st->text ? st->text : "(null)");
    snprintf(c->error, sizeof c->error, "%s", st->error ? st->error : "(null)");
    snprintf(c->reasoning, sizeof c->reasoning, "%s", st->reasoning ? st->reasoning : "(null)");
    snprintf(c->pred_key, sizeof c->pred_key, "%s", st->pred_key ? st->pred_key : "(null)");
    snprintf(c->finish, sizeof c->finish, "%s", st->finish_reason ? st->finish_reason : "(null)");
    snprintf(c->request, sizeof c->request, "%s", st->request_json ? st->request_json : "(null)");
    c->n++;
    return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

static seen *visit_query(ssf_store *s, int64_t run, const ssf_sample_query *q)
{
    seen *c = calloc(1, sizeof *c);
    ssf_error err;
    int rc = ssf_store_visit_samples(s, run, q, collect, c, &err);
    if (rc != 0) fail_msg("visit_samples: %d %s", rc, err.msg);
    return c;
}

static seen *visit(ssf_store *s, int64_t run, const char *task, const char *profile)
{
    return visit_query(s, run, &(ssf_sample_query){.task = task, .profile = profile});
}

/* Most tests work on one store, r.db in a directory of their own. */
typedef struct store_fixture {
    char *dir, *path;
    ssf_store *s; /* NULL while a test has it closed */
} store_fixture;

static int setup_store(void **state)
{
    store_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = make_temp_dir();
    f->path = join(f->dir, "r.db");
    f->s = open_store(f->path);
    *state = f;
    return 0;
}

static int teardown_store(void **state)
{
    store_fixture *f = *state;
    sqlite3_reset_auto_extension(); /* a test that failed before it reset its own */
    ssf_store_close(f->s);
    remove_tree(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

#define with_store(test) cmocka_unit_test_setup_teardown(test, setup_store, teardown_store)

static void close_store(store_fixture *f)
{
    ssf_store_close(f->s);
    f->s = NULL;
}

static ssf_store *reopen_store(store_fixture *f)
{
    return f->s = open_store(f->path);
}

/* ---- schema and runs ---------------------------------------------------- */

static void test_create_reopen(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "r.db");
    mode_t mask = umask(022);
    ssf_store *s = open_store(path);
    umask(mask);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* it holds every prompt, gated ones too */
    int fresh;
    (void)begin(s, "h", &fresh);
    char *wal = join(dir, "r.db-wal");
    assert_int_equal(stat(wal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(wal);
    ssf_store_close(s);
    s = open_store(path);
    ssf_store_close(s);
    assert_query(path, "PRAGMA user_version", "1");
    assert_query(path, "PRAGMA journal_mode", "wal");
    assert_query(path, "PRAGMA application_id", "1397966420");
    assert_query(path,
                 "SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_list"
                 " WHERE strict ORDER BY name)",
                 "grades,metrics,runs,samples");

    ssf_error err;
    assert_int_equal(ssf_store_open(path, 0, 1, &s, &err), 0);
    ssf_run_meta m = test_meta("h");
    int64_t id;
    int resumed;
    assert_int_equal(ssf_store_begin_run(s, &m, &id, &resumed, &err), -1);
    assert_non_null(strstr(err.msg, "read-only"));
    ssf_store_close(s);
    remove_tree(dir);
    free(path);
    free(dir);
}

typedef struct run_seen {
    int n;
    int64_t ids[8];
    char status[8][16];
} run_seen;

static int collect_run(const ssf_run_row *r, void *ud)
{
    run_seen *c = ud;
    c->ids[c->n] = r->id;
    snprintf(c->status[c->n], sizeof c->status[0], "%s", r->status);
    return ++c->n == 8;
}

static void test_runs_resume(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    ssf_error err;
    int resumed = -1;
    int64_t a = begin(s, "hash-a", &resumed);
    assert_int_equal(resumed, 0);
    assert_int_equal(begin(s, "hash-a", &resumed), a);
    assert_int_equal(resumed, 1);
    int64_t b = begin(s, "hash-b", &resumed);
    assert_int_equal(resumed, 0);
    assert_true(b != a);

    /* incomplete is resumed (and running again), and so is done. */
    assert_int_equal(ssf_store_finish_run(s, a, "incomplete", &err), 0);
    assert_int_equal(begin(s, "hash-a", &resumed), a);
    assert_int_equal(resumed, 1);
    ssf_run_row r;
    assert_int_equal(ssf_store_get_run(s, a, &r, &err), 0);
    assert_string_equal(r.status, "running");
    assert_null(r.finished_at);
    ssf_run_row_clear(&r);

    assert_int_equal(ssf_store_finish_run(s, a, "done", &err), 0);
    assert_int_equal(begin(s, "hash-a", &resumed), a);
    assert_int_equal(resumed, 1);
    assert_int_equal(ssf_store_finish_run(s, a, "done", &err), 0);
    int64_t c = begin(s, "hash-c", &resumed);
    assert_int_equal(resumed, 0);
    assert_true(c != a && c != b);

    assert_int_equal(ssf_store_get_run(s, a, &r, &err), 0);
    assert_int_equal(r.id, a);
    assert_string_equal(r.status, "done");
    assert_non_null(r.finished_at);
    assert_int_equal(strlen(r.created_at), strlen("2025-01-01T00:00:00.000Z"));
    assert_int_equal(r.created_at[strlen(r.created_at) - 1], 'Z');
    assert_string_equal(r.config_json, "{\"k\":1}");
    assert_string_equal(r.config_hash, "hash-a");
    assert_string_equal(r.tasks, "aime25,math_500");
    assert_string_equal(r.metrics, "pass@1");
    assert_string_equal(r.model, "m");
    assert_string_equal(r.backend, "replay");
    assert_string_equal(r.protocol, "");
    assert_string_equal(r.compat, "");
    assert_string_equal(r.profile, "default");
    assert_string_equal(r.version, "0.1");
    ssf_run_row_clear(&r);
    assert_null(r.status);

    run_seen rs = {0};
    assert_int_equal(ssf_store_foreach_run(s, collect_run, &rs, &err), 0);
    assert_int_equal(rs.n, 3);
    assert_true(rs.ids[0] == a && rs.ids[1] == b && rs.ids[2] == c);
    assert_string_equal(rs.status[0], "done");
    assert_string_equal(rs.status[1], "running");

    assert_int_equal(ssf_store_get_run(s, 999, &r, &err), -1);
    assert_non_null(strstr(err.msg, "no run 999"));
    assert_int_equal(ssf_store_finish_run(s, 999, "done", &err), -1);
    assert_non_null(strstr(err.msg, "no run 999"));
    assert_int_equal(ssf_store_finish_run(s, a, "finished", &err), -1);
    assert_non_null(strstr(err.msg, "finished"));
}

/* ---- samples and grades ------------------------------------------------- */

static void test_sample_round_trip(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_sample_row row = {.task = "aime25",
                          .doc = 12345678901LL,
                          .tag = 3,
                          .index = 31,
                          .seed = UINT64_MAX,
                          .request_json = "{\"messages\":[]}",
                          .text = "The answer is \\boxed{42}. \xc3\xa9",
                          .reasoning = "think",
                          .finish_reason = "length",
                          .prompt_tokens = 100,
                          .completion_tokens = -1,
                          .latency_ms = 1234.5,
                          .attempts = 2};
    ssf_grade_row g = {.profile = "default",
                       .verdict = 1,
                       .no_answer = 0,
                       .gold_extracted = "42",
                       .pred_extracted = "42",
                       .pred_key = "k42",
                       .reason = "equal"};
    put(s, run, &row, &g);

    seen *c = visit(s, run, NULL, "default");
    assert_int_equal(c->n, 1);
    ssf_stored_sample *o = &c->copy;
    assert_string_equal(c->keys[0], "aime25/12345678901/3/31");
    assert_true(o->seed == UINT64_MAX);
    assert_string_equal(c->text, row.text);
    assert_string_equal(c->reasoning, "think");
    assert_string_equal(c->error, "(null)");
    assert_int_equal(o->prompt_tokens, 100);
    assert_int_equal(o->completion_tokens, -1);
    assert_true(o->latency_ms == 1234.5);
    assert_int_equal(o->attempts, 2);
    assert_int_equal(o->graded, 1);
    assert_int_equal(o->verdict, 1);
    assert_int_equal(o->no_answer, 0);
    assert_string_equal(c->pred_key, "k42");
    free(c);

    /* Other seeds near the signed boundary survive too. */
    const uint64_t seeds[] = {0, 1, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1, UINT64_MAX - 1};
    for (int i = 0; i < 5; i++) {
        ssf_sample_row r2 = sample("seeds", i, 0, 0, "x");
        r2.seed = seeds[i];
        put(s, run, &r2, NULL);
    }
    for (int i = 0; i < 5; i++) {
        seen *d = calloc(1, sizeof *d);
        d->stop_after = i + 1;
        ssf_error err;
        assert_int_equal(ssf_store_foreach_sample(s, run, "seeds", NULL, collect, d, &err), 7);
        assert_true(d->copy.seed == seeds[i]);
        assert_int_equal(d->copy.graded, 0);
        free(d);
    }

    /* The grade under another profile, or no profile, is not shown. */
    c = visit(s, run, "aime25", "strict");
    assert_int_equal(c->n, 1);
    assert_int_equal(c->copy.graded, 0);
    assert_string_equal(c->pred_key, "(null)");
    free(c);
    c = visit(s, run, "aime25", NULL);
    assert_int_equal(c->copy.graded, 0);
    free(c);
}

static void test_failed_then_success(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_grade_row g = {.profile = "default", .verdict = 0, .pred_key = "first"};

    /* A failure carries no grade even when one is passed. */
    ssf_sample_row failed = sample("t", 0, 0, 0, NULL);
    failed.error = "HTTP 500";
    failed.attempts = 3;
    failed.finish_reason = "abort";
    failed.prompt_tokens = failed.completion_tokens = -1;
    failed.latency_ms = 900;
    failed.seed = 41;
    failed.request_json = "{\"try\": 1}";
    put(s, run, &failed, &g);
    seen *c = visit(s, run, NULL, "default");
    assert_int_equal(c->n, 1);
    assert_string_equal(c->error, "HTTP 500");
    assert_string_equal(c->text, "(null)");
    assert_int_equal(c->copy.attempts, 3);
    assert_int_equal(c->copy.graded, 0);
    free(c);

    /* A second failure replaces the first. */
    failed.error = "timeout";
    put(s, run, &failed, NULL);
    c = visit(s, run, NULL, "default");
    assert_string_equal(c->error, "timeout");
    free(c);

    /* The success replaces the failure, with its grade, every column its own. */
    ssf_sample_row ok = sample("t", 0, 0, 0, "first text");
    ok.reasoning = "thought";
    ok.request_json = "{\"try\": 2}";
    put(s, run, &ok, &g);
    c = visit(s, run, NULL, "default");
    assert_int_equal(c->n, 1);
    assert_string_equal(c->error, "(null)");
    assert_string_equal(c->text, "first text");
    assert_int_equal(c->copy.graded, 1);
    assert_string_equal(c->pred_key, "first");
    assert_string_equal(c->reasoning, "thought");
    assert_string_equal(c->finish, "stop");
    assert_string_equal(c->request, "{\"try\": 2}");
    assert_int_equal(c->copy.seed, 42);
    assert_int_equal(c->copy.prompt_tokens, 10);
    assert_int_equal(c->copy.completion_tokens, 20);
    assert_int_equal(c->copy.attempts, 1);
    assert_true(c->copy.latency_ms == 1.5);
    free(c);

    /* A stored success is left alone: neither a new text, its grade, nor a
     * later failure changes it. */
    ssf_sample_row again = sample("t", 0, 0, 0, "second text");
    ssf_grade_row g2 = {.profile = "default", .verdict = 1, .pred_key = "second"};
    put(s, run, &again, &g2);
    put(s, run, &failed, NULL);
    c = visit(s, run, NULL, "default");
    assert_int_equal(c->n, 1);
    assert_string_equal(c->text, "first text");
    assert_string_equal(c->pred_key, "first");
    assert_int_equal(c->copy.verdict, 0);
    free(c);
}

/* The store settles a run's status from what it holds, not from what one
 * process saw: a failure here that a run beside it stored is no failure. */
static void test_settle_by_store(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_sample_row failed = sample("t", 1, 0, 0, NULL);
    failed.error = "HTTP 500";
    ssf_sample_row a = sample("t", 0, 0, 0, "a"), b = sample("t", 1, 0, 0, "b");
    put(s, run, &a, NULL);
    put(s, run, &failed, NULL);
    const char *status = NULL;
    ssf_error err;
    ssf_run_row r;
    assert_int_equal(ssf_store_settle_run(s, run, 2, &status, &err), 0);
    assert_string_equal(status, "incomplete");
    assert_int_equal(ssf_store_get_run(s, run, &r, &err), 0);
    assert_string_equal(r.status, "incomplete");
    ssf_run_row_clear(&r);
    put(s, run, &b, NULL);
    assert_int_equal(ssf_store_settle_run(s, run, 2, &status, &err), 0);
    assert_string_equal(status, "done");
    assert_int_equal(ssf_store_get_run(s, run, &r, &err), 0);
    assert_string_equal(r.status, "done");
    ssf_run_row_clear(&r);
    assert_int_equal(ssf_store_settle_run(s, run, 3, &status, &err), 0); /* one not stored */
    assert_string_equal(status, "incomplete");
    assert_int_equal(ssf_store_settle_run(s, run + 7, 2, &status, &err), -1);
    /* A process that could not finish leaves a run another made done as it is... */
    assert_int_equal(ssf_store_settle_run(s, run, 2, &status, &err), 0);
    assert_int_equal(ssf_store_abandon_run(s, run, &status, &err), 0);
    assert_string_equal(status, "done");
    /* ...and marks one still running incomplete, whatever the store holds. */
    assert_int_equal(begin(s, "h", &resumed), run);
    assert_int_equal(resumed, 1);
    assert_int_equal(ssf_store_abandon_run(s, run, &status, &err), 0);
    assert_string_equal(status, "incomplete");
    assert_int_equal(ssf_store_abandon_run(s, run + 7, &status, &err), -1);
}

/* Begins the run of this hash on s, expecting it refused as claimed by
 * another handle, and the run left with the status it had. */
static void expect_claimed(ssf_store *s, const char *path, const char *hash, int64_t run,
                           const char *status)
{
    ssf_run_meta m = test_meta(hash);
    int64_t id = 0;
    int resumed = -1;
    ssf_error err;
    assert_int_equal(ssf_store_begin_run(s, &m, &id, &resumed, &err), -1);
    char want[512];
    snprintf(want, sizeof want, "run %lld of %s is being generated by another ssfteval now",
             (long long)run, path);
    if (!strstr(err.msg, want)) fail_msg("message: %s", err.msg);
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(id, 0);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)run);
    assert_query(path, sql, status);
}

/* A run is generated by one handle at a time, whichever process holds it:
 * a second begin of it is refused until the first releases it or closes,
 * and leaves the run as the first keeps it.  (test_kill9's writers show
 * that a killed holder leaves no claim behind.) */
static void test_claims(void **state)
{
    store_fixture *f = *state;
    int resumed;
    ssf_error err;
    assert_int_equal(ssf_store_run_generating(f->s, 1), 0); /* no claim yet, no -lock file */
    int64_t run = begin(f->s, "h", &resumed);
    assert_int_equal(ssf_store_finish_run(f->s, run, "done", &err), 0);
    ssf_store *other = open_store(f->path);
    assert_int_equal(ssf_store_run_generating(other, run), 1);
    assert_int_equal(ssf_store_run_generating(f->s, run), 1); /* its own claim too */
    expect_claimed(other, f->path, "h", run, "done");
    expect_claimed(other, f->path, "h", run, "done"); /* refused again, not left half-held */
    int64_t run2 = begin(other, "h2", &resumed);      /* other runs are free */
    assert_int_equal(resumed, 0);
    expect_claimed(f->s, f->path, "h2", run2, "running");
    assert_int_equal(begin(f->s, "h", &resumed), run); /* a handle may begin its own again */

    ssf_store_release_run(f->s, run);
    assert_int_equal(ssf_store_run_generating(other, run), 0);
    assert_int_equal(ssf_store_run_generating(other, run2), 1);
    assert_int_equal(begin(other, "h", &resumed), run);
    assert_int_equal(resumed, 1);
    expect_claimed(f->s, f->path, "h", run, "running");
    ssf_store_close(other); /* closing drops every claim of the handle */
    assert_int_equal(ssf_store_run_generating(f->s, run2), 0);
    ssf_run_row r = {.id = run2, .status = "running"};
    assert_string_equal(ssf_store_run_status(f->s, &r), "stopped");
    assert_int_equal(begin(f->s, "h", &resumed), run);
    assert_int_equal(begin(f->s, "h2", &resumed), run2);

    assert_string_equal(ssf_store_run_status(f->s, &r), "running");
    r.status = "incomplete";
    assert_string_equal(ssf_store_run_status(f->s, &r), "incomplete");
    char *lock = join(f->dir, "r.db-lock");
    struct stat st;
    assert_int_equal(stat(lock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(lock);
}

/* The mode of r.db-lock, the store's claims file. */
static mode_t claims_mode(const store_fixture *f)
{
    char *lock = join(f->dir, "r.db-lock");
    struct stat st;
    assert_int_equal(stat(lock, &st), 0);
    free(lock);
    return st.st_mode & 0777;
}

/* A store chmod'ed for its group (store.c: "Someone who wants it shared
 * can chmod it") is run by the group: its claims file takes the store's
 * mode, whatever the umask, and follows a later chmod, where a file of
 * the first user's alone (0600) refused every other user every run. */
static void test_claims_shared(void **state)
{
    store_fixture *f = *state;
    int resumed;
    assert_int_equal(chmod(f->path, 0660), 0);
    mode_t mask = umask(077);
    int64_t run = begin(f->s, "h", &resumed);
    umask(mask);
    assert_int_equal(claims_mode(f), 0660);
    ssf_store_release_run(f->s, run);
    close_store(f);
    assert_int_equal(chmod(f->path, 0640), 0);
    (void)begin(reopen_store(f), "h", &resumed);
    assert_int_equal(claims_mode(f), 0640);
}

static void test_grades(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    const char *path = f->path;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_sample_row row = sample("t", 4, 1, 2, "text");
    ssf_grade_row g = {.profile = "default", .verdict = 0, .pred_key = "a"};
    put(s, run, &row, &g);
    ssf_error err;

    ssf_grade_row g2 = {.profile = "default", .verdict = -1, .no_answer = 1, .reason = "none"};
    assert_int_equal(ssf_store_put_grade(s, run, "t", 4, 1, 2, &g2, &err), 0);
    ssf_grade_row g3 = {.profile = "strict", .verdict = 1, .pred_key = "c"};
    assert_int_equal(ssf_store_put_grade(s, run, "t", 4, 1, 2, &g3, &err), 0);

    seen *c = visit(s, run, NULL, "default");
    assert_int_equal(c->n, 1);
    assert_int_equal(c->copy.graded, 1);
    assert_int_equal(c->copy.verdict, -1);
    assert_int_equal(c->copy.no_answer, 1);
    assert_string_equal(c->pred_key, "(null)");
    free(c);
    c = visit(s, run, NULL, "strict");
    assert_int_equal(c->copy.verdict, 1);
    assert_string_equal(c->pred_key, "c");
    free(c);
    assert_query(path, "SELECT count(*) FROM grades", "2");

    /* No sample, no grade; and a bad verdict is refused before SQL. */
    assert_int_equal(ssf_store_put_grade(s, run, "t", 5, 1, 2, &g3, &err), -1);
    if (!strstr(err.msg, "no sample t doc 5")) fail_msg("message: %s", err.msg);
    ssf_grade_row bad = {.profile = "default", .verdict = 2};
    assert_int_equal(ssf_store_put_grade(s, run, "t", 4, 1, 2, &bad, &err), -1);
    assert_non_null(strstr(err.msg, "verdict 2"));
    /* A sample of a run that does not exist. */
    assert_int_equal(ssf_store_put_sample(s, run + 100, &row, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "FOREIGN KEY"));
    /* The store still works after the failures (no transaction left open). */
    ssf_sample_row next = sample("t", 5, 1, 2, "text");
    put(s, run, &next, &g3);
}

static void test_foreach_order(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    int64_t other = begin(s, "other", &resumed);
    /* Inserted out of order: the store sorts by task, doc, tag, index. */
    const struct {
        const char *task;
        int doc, tag, index;
    } keys[] = {{"b", 1, 0, 0}, {"a", 10, 0, 1}, {"a", 2, 1, 0}, {"a", 2, 0, 5},
                {"a", 2, 0, 0}, {"b", 0, 2, 0},  {"a", 10, 0, 0}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        ssf_sample_row r = sample(keys[i].task, keys[i].doc, keys[i].tag, keys[i].index, "x");
        put(s, run, &r, NULL);
    }
    ssf_sample_row r = sample("a", 0, 0, 0, "other run");
    put(s, other, &r, NULL);

    const char *want[] = {"a/2/0/0",  "a/2/0/5", "a/2/1/0", "a/10/0/0",
                          "a/10/0/1", "b/0/2/0", "b/1/0/0"};
    seen *c = visit(s, run, NULL, NULL);
    assert_int_equal(c->n, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(c->keys[i], want[i]);
    free(c);

    c = visit(s, run, "b", NULL);
    assert_int_equal(c->n, 2);
    assert_string_equal(c->keys[0], "b/0/2/0");
    free(c);
    c = visit(s, run, "none", NULL);
    assert_int_equal(c->n, 0);
    free(c);

    /* A non-zero return stops the walk and is returned. */
    c = calloc(1, sizeof *c);
    c->stop_after = 3;
    ssf_error err;
    assert_int_equal(ssf_store_foreach_sample(s, run, NULL, NULL, collect, c, &err), 7);
    assert_int_equal(c->n, 3);
    free(c);
    /* ... and the statement is usable again afterwards. */
    c = visit(s, run, NULL, NULL);
    assert_int_equal(c->n, 7);
    free(c);
}

/* The query's filters: one question, the samples ungraded under a profile,
 * and keys alone (a stored text as "", a failed one's as NULL). */
static void test_sample_queries(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_grade_row g = {.profile = "default", .verdict = 1, .pred_key = "k"};
    ssf_sample_row a0 = sample("a", 0, 0, 0, "long text"), a1 = sample("a", 1, 0, 0, "other");
    ssf_sample_row b1 = sample("b", 1, 0, 0, "third"), failed = sample("a", 1, 0, 1, NULL);
    failed.error = "server gone";
    put(s, run, &a0, &g);
    put(s, run, &a1, NULL);
    put(s, run, &b1, &g);
    put(s, run, &failed, NULL);

    seen *c = visit_query(s, run, &(ssf_sample_query){.one_doc = 1, .doc = 1});
    assert_int_equal(c->n, 3);
    assert_string_equal(c->keys[0], "a/1/0/0");
    assert_string_equal(c->keys[2], "b/1/0/0");
    free(c);
    c = visit_query(s, run, &(ssf_sample_query){.task = "a", .one_doc = 1, .doc = 1});
    assert_int_equal(c->n, 2);
    free(c);

    c = visit_query(s, run, &(ssf_sample_query){.profile = "default", .ungraded_only = 1});
    assert_int_equal(c->n, 2); /* a/1/0/0 and the failed a/1/0/1 */
    assert_string_equal(c->keys[0], "a/1/0/0");
    assert_string_equal(c->keys[1], "a/1/0/1");
    free(c);

    c = visit_query(s, run,
                    &(ssf_sample_query){.task = "a", .one_doc = 1, .doc = 0, .keys_only = 1});
    assert_int_equal(c->n, 1);
    assert_string_equal(c->text, "");
    assert_null(c->copy.request_json);
    free(c);
    c = visit_query(s, run,
                    &(ssf_sample_query){.task = "a", .one_doc = 1, .doc = 1, .keys_only = 1});
    assert_int_equal(c->n, 2);
    assert_string_equal(c->text, "(null)"); /* the last, failed one */
    assert_string_equal(c->error, "server gone");
    free(c);
}

/* With no other writer, writes and a nested walk from a callback work on
 * the same connection. */
typedef struct regrade_ctx {
    ssf_store *s;
    int64_t run;
    int n, inner;
} regrade_ctx;

static int count_one(const ssf_stored_sample *st, void *ud)
{
    (void)st;
    ((regrade_ctx *)ud)->inner++;
    return 0;
}

static int regrade(const ssf_stored_sample *st, void *ud)
{
    regrade_ctx *c = ud;
    ssf_grade_row g = {.profile = "new", .verdict = 1, .pred_key = st->text};
    ssf_error err;
    if (ssf_store_put_grade(c->s, c->run, st->task, st->doc, st->tag, st->index, &g, &err) != 0)
        fail_msg("put_grade in callback: %s", err.msg);
    if (ssf_store_foreach_sample(c->s, c->run, st->task, NULL, count_one, c, &err) != 0)
        fail_msg("nested foreach: %s", err.msg);
    c->n++;
    return 0;
}

static void test_write_during_walk(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    const char *path = f->path;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    for (int i = 0; i < 20; i++) {
        ssf_sample_row r = sample("t", i, 0, 0, "x");
        put(s, run, &r, NULL);
    }
    regrade_ctx c = {s, run, 0, 0};
    ssf_error err;
    assert_int_equal(ssf_store_foreach_sample(s, run, NULL, "new", regrade, &c, &err), 0);
    assert_int_equal(c.n, 20);
    assert_int_equal(c.inner, 400);
    assert_query(path, "SELECT count(*) FROM grades WHERE profile = 'new'", "20");
}

/* Another connection writes while this one walks: a write from inside the
 * walk can neither wait for it (SQLite calls no busy handler inside a
 * read) nor follow its commit (SQLITE_BUSY_SNAPSHOT).  It fails at once,
 * and the message must say so, not claim a wait of the busy timeout. */
typedef struct stale_ctx {
    ssf_store *s, *other;
    int other_commits; /* else a third connection holds the write lock */
    int64_t run;
    int rc;
    double took;
    ssf_error err;
} stale_ctx;

static int write_behind_other(const ssf_stored_sample *st, void *ud)
{
    stale_ctx *c = ud;
    ssf_grade_row g = {.profile = "new", .verdict = 1};
    ssf_error err;
    if (c->other_commits &&
        ssf_store_put_grade(c->other, c->run, st->task, st->doc, st->tag, st->index, &g, &err))
        fail_msg("the other connection's write: %s", err.msg);
    double t0 = ssf_monotonic_seconds();
    c->rc = ssf_store_put_grade(c->s, c->run, st->task, st->doc, st->tag, st->index, &g, &c->err);
    c->took = ssf_monotonic_seconds() - t0;
    return 1; /* one sample is enough */
}

static void expect_refused_in_read(stale_ctx *c)
{
    ssf_error err;
    assert_int_equal(
        ssf_store_foreach_sample(c->s, c->run, NULL, NULL, write_behind_other, c, &err), 1);
    assert_int_equal(c->rc, -1);
    if (!strstr(c->err.msg, "cannot store a grade in the middle of reading it while another "
                            "ssfteval writes to it") ||
        !strstr(c->err.msg, "run the command again") || strstr(c->err.msg, "within"))
        fail_msg("message: %s", c->err.msg);
    assert_true(c->took < 1.0);
}

static void test_write_in_stale_read(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "r.db");
    ssf_store *s = open_store(path), *other = open_store(path);
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    for (int i = 0; i < 3; i++) {
        ssf_sample_row r = sample("t", i, 0, 0, "x");
        put(s, run, &r, NULL);
    }
    stale_ctx c = {.s = s, .other = other, .other_commits = 1, .run = run};
    expect_refused_in_read(&c); /* SQLITE_BUSY_SNAPSHOT */
    sqlite3 *holder;
    assert_int_equal(sqlite3_open(path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    c.other_commits = 0;
    expect_refused_in_read(&c); /* SQLITE_BUSY, with no wait */
    sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(holder);
    /* Out of the read, the same write goes through. */
    ssf_grade_row g = {.profile = "new", .verdict = 1};
    ssf_error err;
    if (ssf_store_put_grade(s, run, "t", 0, 0, 0, &g, &err)) fail_msg("put_grade: %s", err.msg);
    ssf_store_close(other);
    ssf_store_close(s);
    remove_tree(dir);
    free(path);
    free(dir);
}

/* ---- metrics ------------------------------------------------------------ */

typedef struct metric_seen {
    int n;
    char keys[8][64];
    ssf_metric_row last;
} metric_seen;

static int collect_metric(const ssf_metric_row *m, void *ud)
{
    metric_seen *c = ud;
    snprintf(c->keys[c->n], sizeof c->keys[0], "%s/%s/%s", m->task, m->metric, m->profile);
    c->last = *m;
    c->last.task = c->last.metric = c->last.profile = NULL;
    c->n++;
    return 0;
}

static void test_metrics_upsert(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_error err;
    ssf_metric_row m = {.task = "t",
                        .metric = "pass@1",
                        .profile = "default",
                        .value = 0.5,
                        .stderr_ = 0.1,
                        .ci_lo = 0.3,
                        .ci_hi = 0.7,
                        .n_questions = 30,
                        .n_samples = 960,
                        .n_failed = 1,
                        .n_missing = 2};
    assert_int_equal(ssf_store_put_metric(s, run, &m, &err), 0);
    ssf_metric_row m2 = {.task = "a", .metric = "cons@32", .profile = "default", .value = 1};
    assert_int_equal(ssf_store_put_metric(s, run, &m2, &err), 0);
    m.value = 0.75;
    m.stderr_ = NAN;
    m.n_missing = 0;
    assert_int_equal(ssf_store_put_metric(s, run, &m, &err), 0);

    metric_seen c = {0};
    assert_int_equal(ssf_store_foreach_metric(s, run, collect_metric, &c, &err), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "a/cons@32/default");
    assert_string_equal(c.keys[1], "t/pass@1/default");
    assert_true(c.last.value == 0.75);
    assert_true(isnan(c.last.stderr_));
    assert_true(c.last.ci_lo == 0.3 && c.last.ci_hi == 0.7);
    assert_int_equal(c.last.n_questions, 30);
    assert_int_equal(c.last.n_samples, 960);
    assert_int_equal(c.last.n_failed, 1);
    assert_int_equal(c.last.n_missing, 0);

    metric_seen none = {0};
    assert_int_equal(ssf_store_foreach_metric(s, run + 1, collect_metric, &none, &err), 0);
    assert_int_equal(none.n, 0);
}

/* ---- files that are not ours -------------------------------------------- */

static void test_refuses_foreign(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "other.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                                  "INSERT INTO notes(body) VALUES ('keep me')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_refused_unchanged(path, 0, "SQLite database of another program");
    assert_refused_unchanged(path, 1, "SQLite database of another program");

    /* Same with a user_version of its own: the application_id tells. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_refused_unchanged(path, 0, "SQLite database of another program");
    remove_tree(dir);
    free(path);
    free(dir);
}

/* Another program's WAL database with commits still in its -wal file (it
 * crashed, or it is running): closing our refused connection must not
 * checkpoint them into the main file. */
static void test_refuses_foreign_wal(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "other.db");
    char *wal = join(dir, "other.db-wal");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;"
                                  "CREATE TABLE notes(body TEXT);"
                                  "INSERT INTO notes VALUES ('in the wal only')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sqlite3_close(db);
    size_t wal_len, wal_len2;
    char *wal_before = read_bytes(wal, &wal_len);
    assert_true(wal_len > 0);
    assert_refused_unchanged(path, 0, "SQLite database of another program");
    char *wal_after = read_bytes(wal, &wal_len2);
    assert_int_equal(wal_len, wal_len2);
    assert_memory_equal(wal_before, wal_after, wal_len);
    free(wal_before);
    free(wal_after);
    remove_tree(dir);
    free(wal);
    free(path);
    free(dir);
}

static void test_refuses_random_bytes(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "noise.db");
    char data[8192];
    srand(7);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(rand() & 0xff);
    write_bytes(path, data, sizeof data);
    assert_refused_unchanged(path, 0, "not an ssfteval results store (not an SQLite database)");
    assert_refused_unchanged(path, 1, "not an SQLite database");
    /* Text is not a database either. */
    char *txt = write_temp_file(dir, "notes.txt", "hello, this is not SQLite\n");
    assert_refused_unchanged(txt, 0, "not an SQLite database");
    free(txt);
    remove_tree(dir);
    free(path);
    free(dir);
}

static void test_refuses_newer(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "r.db");
    ssf_store *s = open_store(path);
    int resumed;
    begin(s, "h", &resumed);
    ssf_store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_refused_unchanged(path, 0, "written by a newer ssfteval (schema 2");
    assert_refused_unchanged(path, 1, "upgrade ssfteval");
    remove_tree(dir);
    free(path);
    free(dir);
}

/* A finished store of about 1 MB: 100 samples of 10 kB, checkpointed into
 * the main file (no WAL), as a user would copy it. */
static char *make_real_store(const char *dir)
{
    char *path = join(dir, "r.db");
    ssf_store *s = open_store(path);
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    char *text = malloc(10001);
    memset(text, 'y', 10000);
    text[10000] = '\0';
    for (int i = 0; i < 100; i++) {
        ssf_sample_row r = sample("t", i, 0, 0, text);
        ssf_grade_row g = {.profile = "default", .verdict = 1};
        put(s, run, &r, &g);
    }
    free(text);
    ssf_error err;
    assert_int_equal(ssf_store_finish_run(s, run, "done", &err), 0);
    ssf_store_close(s);
    return path;
}

static void test_refuses_truncated(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = make_real_store(dir);
    size_t len;
    char *data = read_bytes(path, &len);
    assert_true(len > 500000);
    char *cut = join(dir, "cut.db");
    write_bytes(cut, data, len / 2);
    assert_refused_unchanged(cut, 0, "is corrupt");
    assert_refused_unchanged(cut, 1, "is corrupt");
    free(data);
    free(cut);
    remove_tree(dir);
    free(path);
    free(dir);
}

/* One garbage page in the middle: the header and schema read fine, so only
 * the quick_check on open can catch it. */
static void test_refuses_bit_rot(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = make_real_store(dir);
    size_t len;
    char *data = read_bytes(path, &len);
    size_t page = len / 4096 / 2 * 4096;
    memset(data + page, 0xab, 4096);
    write_bytes(path, data, len);
    free(data);
    assert_refused_unchanged(path, 0, "is corrupt (");
    assert_refused_unchanged(path, 1, "restore it from a backup");
    remove_tree(dir);
    free(path);
    free(dir);
}

static void test_missing_file(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "absent.db");
    ssf_store *s = NULL;
    ssf_error err;
    assert_int_equal(ssf_store_open(path, 1, 1, &s, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_int_equal(ssf_store_open(path, 0, 0, &s, &err), -1);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_int_equal(access(path, F_OK), -1); /* nothing created */
    assert_int_equal(ssf_store_open(dir, 1, 0, &s, &err), -1);
    assert_non_null(strstr(err.msg, "directory"));
    /* SQLite's temporary and in-memory stores would keep nothing. */
    assert_int_equal(ssf_store_open("", 1, 0, &s, &err), -1);
    assert_non_null(strstr(err.msg, "names no file"));
    assert_int_equal(ssf_store_open(":memory:", 1, 0, &s, &err), -1);
    assert_non_null(strstr(err.msg, "names no file"));
    /* A link to nothing: SQLite would make its target with the umask's mode. */
    char *dangling = join(dir, "link.db");
    assert_int_equal(symlink("nowhere.db", dangling), 0);
    assert_int_equal(ssf_store_open(dangling, 1, 0, &s, &err), -1);
    assert_non_null(strstr(err.msg, "symbolic link to nothing"));
    free(dangling);
    remove_tree(dir);
    free(path);
    free(dir);
}

/* ---- concurrency and crashes -------------------------------------------- */

static void *release_later(void *arg)
{
    struct timespec ts = {0, 200L * 1000 * 1000};
    nanosleep(&ts, NULL);
    sqlite3_exec(arg, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

static void test_waits_for_writer(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    const char *path = f->path;
    int resumed;
    int64_t run = begin(s, "h", &resumed);

    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_later, other), 0);
    double t0 = ssf_monotonic_seconds();
    ssf_sample_row r = sample("t", 0, 0, 0, "x");
    put(s, run, &r, NULL);
    double waited = ssf_monotonic_seconds() - t0;
    pthread_join(t, NULL);
    sqlite3_close(other);
    assert_true(waited > 0.1);
    assert_true(waited < 4.0);
    seen *c = visit(s, run, NULL, NULL);
    assert_int_equal(c->n, 1);
    free(c);
}

/* Two runs started at once on a new --db: the other process creates the
 * tables while this one waits for the lock; this one must then find them
 * made (the version read again under the lock), not create them twice. */
static void test_created_meanwhile(void **state)
{
    (void)state;
    char *dir = make_temp_dir(), *ref = join(dir, "ref.db"), *path = join(dir, "new.db");
    ssf_store *s;
    ssf_error err = {0};
    assert_int_equal(ssf_store_open(ref, 1, 0, &s, &err), 0);
    ssf_store_close(s);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);

    /* the other process: the schema of a store this build made, its
     * version and id, in one transaction it commits 200 ms from now */
    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    char sql[4200];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL; ATTACH '%s' AS ref;", ref);
    assert_int_equal(sqlite3_exec(other, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(other,
                                        "SELECT sql FROM ref.sqlite_schema WHERE sql IS NOT NULL "
                                        "ORDER BY rowid",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ssf_buf schema = {0};
    while (sqlite3_step(st) == SQLITE_ROW)
        ssf_buf_printf(&schema, "%s;\n", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(other,
                                        "SELECT application_id FROM ref.pragma_application_id", -1,
                                        &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    ssf_buf_printf(&schema, "PRAGMA user_version = %d; PRAGMA application_id = %d;",
                   SSF_STORE_SCHEMA_VERSION, sqlite3_column_int(st, 0));
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_exec(other, "DETACH ref; BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, schema.data, NULL, NULL, NULL), SQLITE_OK);
    ssf_buf_free(&schema);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_later, other), 0);

    int rc = ssf_store_open(path, 1, 0, &s, &err);
    pthread_join(t, NULL);
    sqlite3_close(other);
    if (rc != 0) fail_msg("%s", err.msg);
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    assert_false(resumed);
    ssf_sample_row r = sample("t", 0, 0, 0, "x");
    put(s, run, &r, NULL);
    ssf_store_close(s);
    remove_tree(dir);
    free(path);
    free(ref);
    free(dir);
}

/* A writer that holds the store past the busy timeout: the write is
 * refused by name and wait, and what was stored stays. */
static void test_busy_past_timeout(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    const char *path = f->path;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_sample_row a = sample("t", 0, 0, 0, "stored before");
    put(s, run, &a, NULL);

    sqlite3 *other;
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ssf_sample_row b = sample("t", 1, 0, 0, "refused");
    ssf_error err = {0};
    double t0 = ssf_monotonic_seconds();
    assert_int_equal(ssf_store_put_sample(s, run, &b, NULL, &err), -1);
    assert_true(ssf_monotonic_seconds() - t0 > 4.5);
    assert_non_null(strstr(err.msg, "is busy (another ssfteval is writing?)"));
    assert_non_null(strstr(err.msg, "within 5000 ms"));
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    seen *c = visit(s, run, NULL, NULL);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->keys[0], "t/0/0/0");
    free(c);
    put(s, run, &b, NULL); /* and the next try, once it is free, is stored */
}

/* Each connection opened while it is registered may not grow its database:
 * a disk that is full. */
static int no_growth(sqlite3 *db, const char **msg, const struct sqlite3_api_routines *api)
{
    (void)msg;
    (void)api;
    return sqlite3_exec(db, "PRAGMA max_page_count = 1", NULL, NULL, NULL);
}

/* A full disk refuses the write with the fix, keeps what was stored, and
 * the run goes on where it stopped once there is room. */
static void test_disk_full(void **state)
{
    store_fixture *f = *state;
    ssf_store *s = f->s;
    int resumed;
    int64_t run = begin(s, "h", &resumed);
    ssf_sample_row a = sample("t", 0, 0, 0, "stored before");
    put(s, run, &a, NULL);
    close_store(f);

    /* max_page_count is held at the pages the file has */
    assert_int_equal(sqlite3_auto_extension((void (*)(void))no_growth), SQLITE_OK);
    s = reopen_store(f);
    sqlite3_reset_auto_extension(); /* the connection keeps it; no later one gets it */
    char *big = malloc(200001);
    memset(big, 'x', 200000);
    big[200000] = '\0';
    ssf_sample_row b = sample("t", 1, 0, 0, big);
    ssf_error err = {0};
    int rc = ssf_store_put_sample(s, run, &b, NULL, &err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "r.db: disk full, cannot "));
    assert_non_null(strstr(err.msg, ": free some space and rerun (it resumes)"));
    close_store(f);

    s = reopen_store(f);
    assert_int_equal(begin(s, "h", &resumed), run);
    assert_int_equal(resumed, 1);
    seen *c = visit(s, run, NULL, NULL);
    assert_int_equal(c->n, 1);
    assert_string_equal(c->keys[0], "t/0/0/0");
    free(c);
    put(s, run, &b, NULL);
    c = visit(s, run, NULL, NULL);
    assert_int_equal(c->n, 2);
    free(c);
    free(big);
}

/* While set, the connections opened under refusing_commits turn every
 * commit into a rollback (a commit the disk refuses). */
static int refuse_commits;

static int refuse_commit(void *unused)
{
    (void)unused;
    return refuse_commits;
}

static int refusing_commits(sqlite3 *db, const char **msg, const struct sqlite3_api_routines *api)
{
    (void)msg;
    (void)api;
    sqlite3_commit_hook(db, refuse_commit, NULL);
    return SQLITE_OK;
}

/* A run whose start cannot be committed is not left claimed: the next
 * begin, once the store takes writes, starts it, and no reader sees it
 * generating in between. */
static void test_begin_commit_refused(void **state)
{
    store_fixture *f = *state;
    close_store(f);
    assert_int_equal(sqlite3_auto_extension((void (*)(void))refusing_commits), SQLITE_OK);
    ssf_store *s = reopen_store(f);
    sqlite3_reset_auto_extension();
    ssf_run_meta m = test_meta("h");
    int64_t id = 0;
    int resumed = -1;
    ssf_error err = {0};
    refuse_commits = 1;
    assert_int_equal(ssf_store_begin_run(s, &m, &id, &resumed, &err), -1);
    refuse_commits = 0;
    assert_non_null(strstr(err.msg, "start a run"));
    assert_int_equal(id, 0);
    assert_int_equal(ssf_store_run_generating(s, 1), 0); /* the claim went with the run */
    assert_int_equal(begin(s, "h", &resumed), 1);
    assert_int_equal(resumed, 0);
    assert_int_equal(ssf_store_run_generating(s, 1), 1);
    /* begun again by its own handle, refused at commit: still its claim */
    refuse_commits = 1;
    assert_int_equal(ssf_store_begin_run(s, &m, &id, &resumed, &err), -1);
    refuse_commits = 0;
    assert_int_equal(ssf_store_run_generating(s, 1), 1);
}

/* The child writes samples whose text length is recorded in request_json,
 * until it is killed. */
static void crash_writer(const char *path, int round)
{
    ssf_store *s;
    ssf_error err;
    if (ssf_store_open(path, 1, 0, &s, &err) != 0) _exit(2);
    int64_t run;
    int resumed;
    ssf_run_meta m = test_meta("crash");
    if (ssf_store_begin_run(s, &m, &run, &resumed, &err) != 0) _exit(3);
    char *text = malloc(30001);
    memset(text, 'z', 30000);
    unsigned seed = (unsigned)getpid();
    for (int i = 0;; i++) {
        int len = 1 + rand_r(&seed) % 30000;
        char req[64];
        snprintf(req, sizeof req, "{\"len\":%d}", len);
        text[len] = '\0';
        ssf_sample_row r = sample("t", (int64_t)round * 1000000 + i, 0, 0, text);
        r.request_json = req;
        ssf_grade_row g = {.profile = "default", .verdict = 1};
        if (ssf_store_put_sample(s, run, &r, &g, &err) != 0) _exit(4);
        text[len] = 'z';
    }
}

typedef struct crash_check {
    int n, bad, ungraded;
} crash_check;

static int check_complete(const ssf_stored_sample *st, void *ud)
{
    crash_check *c = ud;
    static const char head[] = "{\"len\":";
    const char *num = NULL;
    char *end = NULL;
    long len = -1;
    if (st->request_json && strncmp(st->request_json, head, strlen(head)) == 0) {
        num = st->request_json + strlen(head);
        len = strtol(num, &end, 10);
    }
    /* exactly {"len":N}, as crash_writer wrote it */
    if (!end || end == num || strcmp(end, "}") != 0 || !st->text || (long)strlen(st->text) != len)
        c->bad++;
    if (!st->graded) c->ungraded++;
    c->n++;
    return 0;
}

static void test_kill9(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = join(dir, "r.db");
    unsigned seed = (unsigned)time(NULL);
    print_message("kill -9 seed %u\n", seed);
    for (int round = 0; round < 5; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) crash_writer(path, round);
        struct timespec ts = {0, (50L + rand_r(&seed) % 200) * 1000 * 1000};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        /* Killed, not exited early with an error of its own. */
        if (!WIFSIGNALED(status)) fail_msg("writer exited with %d", WEXITSTATUS(status));
    }
    ssf_store *s = open_store(path);
    assert_query(path, "PRAGMA quick_check", "ok");
    assert_query(path, "SELECT count(*) FROM pragma_foreign_key_check", "0");
    crash_check c = {0};
    ssf_error err;
    int resumed;
    int64_t run = begin(s, "crash", &resumed);
    assert_int_equal(resumed, 1);
    assert_int_equal(ssf_store_foreach_sample(s, run, NULL, "default", check_complete, &c, &err),
                     0);
    print_message("kill -9: %d samples survived\n", c.n);
    assert_true(c.n > 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.ungraded, 0);
    ssf_store_close(s);
    remove_tree(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_reopen),
        with_store(test_runs_resume),
        with_store(test_sample_round_trip),
        with_store(test_failed_then_success),
        with_store(test_settle_by_store),
        with_store(test_claims),
        with_store(test_claims_shared),
        with_store(test_grades),
        with_store(test_foreach_order),
        with_store(test_sample_queries),
        with_store(test_write_during_walk),
        cmocka_unit_test(test_write_in_stale_read),
        with_store(test_metrics_upsert),
        cmocka_unit_test(test_refuses_foreign),
        cmocka_unit_test(test_refuses_foreign_wal),
        cmocka_unit_test(test_refuses_random_bytes),
        cmocka_unit_test(test_refuses_newer),
        cmocka_unit_test(test_refuses_truncated),
        cmocka_unit_test(test_refuses_bit_rot),
        cmocka_unit_test(test_missing_file),
        with_store(test_waits_for_writer),
        cmocka_unit_test(test_created_meanwhile),
        with_store(test_busy_past_timeout),
        with_store(test_disk_full),
        with_store(test_begin_commit_refused),
        cmocka_unit_test(test_kill9),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
