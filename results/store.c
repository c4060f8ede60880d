/*
 * store.c - the results store on SQLite (see store.h).
 *
 * Three rules shape this file:
 *
 *  1. A file we do not recognise is never written.  ssf_store_open reads the
 *     header fields and the schema first, and only then sets WAL mode or
 *     migrates.  Refused files are closed without a checkpoint when a WAL
 *     file was already there, so even another program's pending WAL is left
 *     as we found it.
 *  2. Every write is one short BEGIN IMMEDIATE ... COMMIT.  IMMEDIATE takes
 *     the write lock up front, so busy_timeout applies; a deferred
 *     transaction that upgrades later can fail with SQLITE_BUSY at once.
 *  3. Statements are prepared once (SQLITE_PREPARE_PERSISTENT) and reset
 *     after use.  With WAL and synchronous=NORMAL a commit is a write() to
 *     the WAL without fsync, so committing each sample costs little more
 *     than the bytes it adds.
 */
#include "store.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <sqlite3.h>

/* "SSFT": marks the file as ours, so that another program's database that
 * happens to use user_version is not mistaken for a store. */
#define STORE_APPLICATION_ID 0x53534654
#define STORE_BUSY_TIMEOUT_MS 5000
/* quick_check reads the whole file; above this size it would slow down
 * every open more than it is worth. */
#define STORE_QUICK_CHECK_MAX ((off_t)64 << 20)

/* ---- schema ------------------------------------------------------------- */

/* migrations[v] upgrades schema v to v + 1.  Append, never edit: a store
 * written by an older ssfteval runs the scripts from its version on, all in
 * one transaction with the new user_version. */
/* grades and metrics are small rows under a composite key, so they are
 * WITHOUT ROWID: one b-tree instead of a table plus its key index, which is
 * one page less per committed sample.  samples stays a rowid table because
 * its rows are large (WITHOUT ROWID suits rows well under a page). */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY,"
    " created_at TEXT NOT NULL,"
    " finished_at TEXT,"
    " status TEXT NOT NULL CHECK (status IN ('running', 'done', 'incomplete', 'failed')),"
    " config_json TEXT NOT NULL,"
    " config_hash TEXT NOT NULL,"
    " tasks TEXT, metrics TEXT, model TEXT, backend TEXT, protocol TEXT, compat TEXT,"
    " profile TEXT, version TEXT"
    ") STRICT;"
    "CREATE INDEX runs_by_config ON runs (config_hash);"
    "CREATE TABLE samples ("
    " run_id INTEGER NOT NULL REFERENCES runs (id),"
    " task TEXT NOT NULL, doc INTEGER NOT NULL, tag INTEGER NOT NULL, idx INTEGER NOT NULL,"
    " seed INTEGER NOT NULL,"
    " request_json TEXT, text TEXT, reasoning TEXT, finish_reason TEXT,"
    " prompt_tokens INTEGER, completion_tokens INTEGER, latency_ms REAL,"
    " attempts INTEGER NOT NULL, error TEXT, created_at TEXT NOT NULL,"
    " PRIMARY KEY (run_id, task, doc, tag, idx)"
    ") STRICT;"
    "CREATE TABLE grades ("
    " run_id INTEGER NOT NULL, task TEXT NOT NULL, doc INTEGER NOT NULL,"
    " tag INTEGER NOT NULL, idx INTEGER NOT NULL, profile TEXT NOT NULL,"
    " verdict INTEGER NOT NULL CHECK (verdict IN (-1, 0, 1)),"
    " no_answer INTEGER NOT NULL CHECK (no_answer IN (0, 1)),"
    " gold_extracted TEXT, pred_extracted TEXT, pred_key TEXT, reason TEXT,"
    " PRIMARY KEY (run_id, task, doc, tag, idx, profile),"
    " FOREIGN KEY (run_id, task, doc, tag, idx)"
    "  REFERENCES samples (run_id, task, doc, tag, idx)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE metrics ("
    " run_id INTEGER NOT NULL REFERENCES runs (id),"
    " task TEXT NOT NULL, metric TEXT NOT NULL, profile TEXT NOT NULL,"
    " value REAL, stderr REAL, ci_lo REAL, ci_hi REAL,"
    " n_questions INTEGER, n_samples INTEGER, n_failed INTEGER, n_missing INTEGER,"
    " PRIMARY KEY (run_id, task, metric, profile)"
    ") STRICT, WITHOUT ROWID;"
    "PRAGMA application_id = 1397966420;",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == SSF_STORE_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- statements --------------------------------------------------------- */

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_RUN_FIND,
    ST_RUN_RESUME,
    ST_RUN_VERSION,
    ST_RUN_INSERT,
    ST_RUN_FINISH,
    ST_RUN_SETTLE,
    ST_RUN_ABANDON,
    ST_RUN_GET,
    ST_RUN_ALL,
    ST_SAMPLE_PUT,
    ST_GRADE_PUT,
    ST_METRIC_PUT,
    ST_METRICS_RUN,
    ST_COUNT
};

#define RUN_COLUMNS                                                                                \
    "id, created_at, finished_at, status, config_json, config_hash, tasks, metrics, model, "       \
    "backend, protocol, compat, profile, version"

/* A sample's columns, in fill_sample's order; the long ones (request, text,
 * reasoning) read whole, or (keys only) as what typeof() tells without
 * loading them: text "" when stored. */
#define SAMPLE_SELECT_HEAD "SELECT s.task, s.doc, s.tag, s.idx, s.seed,"
#define SAMPLE_LONG_COLUMNS " s.request_json, s.text, s.reasoning,"
#define SAMPLE_LONG_AS_KEYS " NULL, CASE WHEN typeof(s.text) = 'null' THEN NULL ELSE '' END, NULL,"
#define SAMPLE_SELECT_TAIL                                                                         \
    " s.finish_reason, s.error, s.prompt_tokens, s.completion_tokens, s.latency_ms, s.attempts,"   \
    " g.profile IS NOT NULL, g.verdict, g.no_answer, g.gold_extracted, g.pred_extracted,"          \
    " g.pred_key, g.reason"                                                                        \
    " FROM samples s LEFT JOIN grades g ON g.run_id = s.run_id AND g.task = s.task"                \
    " AND g.doc = s.doc AND g.tag = s.tag AND g.idx = s.idx AND g.profile = ?2"                    \
    " WHERE s.run_id = ?1"

static const char *const statement_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_RUN_FIND] = "SELECT id FROM runs WHERE config_hash = ?1"
                    " ORDER BY id DESC LIMIT 1",
    [ST_RUN_RESUME] = "UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?1",
    [ST_RUN_VERSION] = "UPDATE runs SET version = ?2 WHERE id = ?1",
    [ST_RUN_INSERT] = "INSERT INTO runs (created_at, status, config_json, config_hash, tasks,"
                      " metrics, model, backend, protocol, compat, profile, version)"
                      " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [ST_RUN_FINISH] = "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
    [ST_RUN_SETTLE] = "UPDATE runs SET status = CASE WHEN (SELECT count(*) FROM samples"
                      " WHERE run_id = ?1 AND error IS NULL) >= ?2 THEN 'done'"
                      " ELSE 'incomplete' END, finished_at = ?3 WHERE id = ?1 RETURNING status",
    /* ?2 unused: end_run binds it for every statement */
    [ST_RUN_ABANDON] = "UPDATE runs SET status = CASE status WHEN 'done' THEN 'done'"
                       " ELSE 'incomplete' END, finished_at = ?3 WHERE id = ?1 RETURNING status",
    [ST_RUN_GET] = "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1",
    [ST_RUN_ALL] = "SELECT " RUN_COLUMNS " FROM runs ORDER BY id",
    /* The WHERE on the upsert is the resume rule: a failed attempt is
     * replaced, a successful sample is kept (no row changes). */
    [ST_SAMPLE_PUT] =
        "INSERT INTO samples (run_id, task, doc, tag, idx, seed, request_json, text, reasoning,"
        " finish_reason, prompt_tokens, completion_tokens, latency_ms, attempts, error, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, task, doc, tag, idx) DO UPDATE SET seed = excluded.seed,"
        " request_json = excluded.request_json, text = excluded.text,"
        " reasoning = excluded.reasoning, finish_reason = excluded.finish_reason,"
        " prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,"
        " latency_ms = excluded.latency_ms, attempts = excluded.attempts, error = excluded.error,"
        " created_at = excluded.created_at"
        " WHERE samples.error IS NOT NULL",
    [ST_GRADE_PUT] =
        "INSERT INTO grades (run_id, task, doc, tag, idx, profile, verdict, no_answer,"
        " gold_extracted, pred_extracted, pred_key, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, task, doc, tag, idx, profile) DO UPDATE SET"
        " verdict = excluded.verdict, no_answer = excluded.no_answer,"
        " gold_extracted = excluded.gold_extracted, pred_extracted = excluded.pred_extracted,"
        " pred_key = excluded.pred_key, reason = excluded.reason",
    [ST_METRIC_PUT] =
        "INSERT INTO metrics (run_id, task, metric, profile, value, stderr, ci_lo, ci_hi,"
        " n_questions, n_samples, n_failed, n_missing)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_id, task, metric, profile) DO UPDATE SET value = excluded.value,"
        " stderr = excluded.stderr, ci_lo = excluded.ci_lo, ci_hi = excluded.ci_hi,"
        " n_questions = excluded.n_questions, n_samples = excluded.n_samples,"
        " n_failed = excluded.n_failed, n_missing = excluded.n_missing",
    [ST_METRICS_RUN] = "SELECT task, metric, profile, value, stderr, ci_lo, ci_hi, n_questions,"
                       " n_samples, n_failed, n_missing FROM metrics WHERE run_id = ?1"
                       " ORDER BY task, metric, profile",
};

struct ssf_store {
    sqlite3 *db;
    char *path;
    int readonly;
    int claims_fd;                /* "<store>-lock", open once a run is claimed; else -1 */
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared on first use */
};

/* ---- errors ------------------------------------------------------------- */

/* Whether a statement of this connection is still reading: its read
 * transaction stays open, and a write begun inside it cannot wait for
 * another writer (SQLite calls no busy handler there) nor follow one that
 * committed since the read began (SQLITE_BUSY_SNAPSHOT). */
static int reading(ssf_store *s)
{
    for (sqlite3_stmt *st = sqlite3_next_stmt(s->db, NULL); st; st = sqlite3_next_stmt(s->db, st))
        if (sqlite3_stmt_busy(st) && sqlite3_stmt_readonly(st)) return 1;
    return 0;
}

/* Turns an SQLite result code into one line naming the file and the fix.
 * Call it before anything else touches the connection: a ROLLBACK would
 * replace sqlite3_errmsg. */
static int db_fail(ssf_store *s, int rc, const char *what, ssf_error *err)
{
    const char *msg = sqlite3_errmsg(s->db);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        /* Refused at once, not after STORE_BUSY_TIMEOUT_MS. */
        if (sqlite3_extended_errcode(s->db) == SQLITE_BUSY_SNAPSHOT || reading(s))
            return ssf_fail(err,
                            "%s: cannot %s in the middle of reading it while another ssfteval "
                            "writes to it (SQLite lets no write wait inside a read: an internal "
                            "error); run the command again",
                            s->path, what);
        return ssf_fail(err,
                        "%s is busy (another ssfteval is writing?): cannot %s within %d ms; "
                        "wait for the other writer to finish or use another --db path",
                        s->path, what, STORE_BUSY_TIMEOUT_MS);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ssf_fail(err,
                        "%s is corrupt (%s): restore it from a backup or use another --db path",
                        s->path, msg);
    case SQLITE_FULL:
        return ssf_fail(err, "%s: disk full, cannot %s: free some space and rerun (it resumes)",
                        s->path, what);
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return ssf_fail(err,
                        "%s is not writable (%s): check its permissions or use another --db path",
                        s->path, msg);
    case SQLITE_IOERR: {
        /* SQLite records no errno for a write that fails in a commit
         * (sqlite3_system_errno is 0 after a COMMIT's SQLITE_IOERR_WRITE,
         * EFBIG, in 3.40): a file past its size limit looks like any other
         * write error */
        int errnum = sqlite3_system_errno(s->db);
        return ssf_fail(err, "%s: I/O error, cannot %s (%s): %s", s->path, what, msg,
                        errnum ? ssf_write_fix(errnum)
                               : "check that the disk has room and works, or use another --db "
                                 "path");
    }
    default:
        return ssf_fail(err, "%s: cannot %s: %s", s->path, what, msg);
    }
}

/* ---- small helpers ------------------------------------------------------ */

/* ISO 8601 UTC with milliseconds: sorts as text, and samples written in the
 * same second keep their order. */
static void now_iso(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Seeds are full 64-bit values; SQLite integers are signed.  The mapping is
 * the two's complement one, spelled out because a cast of a value above
 * INT64_MAX is implementation-defined. */
static int64_t seed_to_db(uint64_t seed)
{
    if (seed <= (uint64_t)INT64_MAX) return (int64_t)seed;
    return -(int64_t)(UINT64_MAX - seed) - 1;
}

static uint64_t seed_from_db(int64_t v)
{
    return (uint64_t)v;
}

static char *dup_column(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? ssf_xstrdup((const char *)t) : NULL;
}

/* Borrowed text, valid until the next step or reset of st. */
static const char *text_column(sqlite3_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(st, col);
}

/* NaN is stored as NULL (SQLite has no NaN), so NULL reads back as NaN. */
static double real_column(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

/* Token counts: NULL when unknown, -1 in the API. */
static int64_t count_column(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

/* Binds parameters in order and keeps the first failure, so that a write
 * checks one code instead of one per column. */
typedef struct binder {
    sqlite3_stmt *st;
    int i;
    int rc;
} binder;

static void keep_rc(binder *b, int rc)
{
    if (b->rc == SQLITE_OK) b->rc = rc;
}

/* SQLITE_STATIC: the caller's string outlives the step, so no copy. */
static void bind_text(binder *b, const char *v)
{
    keep_rc(b, sqlite3_bind_text(b->st, ++b->i, v, -1, SQLITE_STATIC));
}

static void bind_int(binder *b, int64_t v)
{
    keep_rc(b, sqlite3_bind_int64(b->st, ++b->i, v));
}

static void bind_count(binder *b, int64_t v)
{
    keep_rc(b, v < 0 ? sqlite3_bind_null(b->st, ++b->i) : sqlite3_bind_int64(b->st, ++b->i, v));
}

static void bind_real(binder *b, double v)
{
    keep_rc(b, isnan(v) ? sqlite3_bind_null(b->st, ++b->i) : sqlite3_bind_double(b->st, ++b->i, v));
}

/* The cached statement, or a fresh one when the cached one is still running
 * further up the stack (a foreach callback that calls back into the store). */
static int stmt_get(ssf_store *s, int id, sqlite3_stmt **out)
{
    sqlite3_stmt *st = s->stmt[id];
    if (st && !sqlite3_stmt_busy(st)) {
        *out = st;
        return SQLITE_OK;
    }
    unsigned flags = st ? 0 : SQLITE_PREPARE_PERSISTENT;
    int rc = sqlite3_prepare_v3(s->db, statement_sql[id], -1, flags, out, NULL);
    if (rc != SQLITE_OK) return rc;
    if (!st) s->stmt[id] = *out;
    return SQLITE_OK;
}

static void stmt_put(ssf_store *s, int id, sqlite3_stmt *st)
{
    if (!st) return;
    if (st != s->stmt[id]) {
        sqlite3_finalize(st);
        return;
    }
    /* Reset keeps the error code of a failed step; the caller has already
     * read it.  Clearing drops pointers into the caller's strings. */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows. */
static int stmt_exec(ssf_store *s, int id)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, id, &st);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    stmt_put(s, id, st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* ---- transactions ------------------------------------------------------- */

static int tx_begin(ssf_store *s, const char *what, ssf_error *err)
{
    if (s->readonly)
        return ssf_fail(err, "%s was opened read-only: cannot %s (internal error)", s->path, what);
    int rc = stmt_exec(s, ST_BEGIN);
    return rc == SQLITE_OK ? 0 : db_fail(s, rc, what, err);
}

/* Reports rc and rolls back whatever the transaction did. */
static int tx_abort(ssf_store *s, int rc, const char *what, ssf_error *err)
{
    db_fail(s, rc, what, err);
    if (!sqlite3_get_autocommit(s->db)) stmt_exec(s, ST_ROLLBACK);
    return -1;
}

static int tx_commit(ssf_store *s, const char *what, ssf_error *err)
{
    int rc = stmt_exec(s, ST_COMMIT);
    return rc == SQLITE_OK ? 0 : tx_abort(s, rc, what, err);
}

/* ---- opening ------------------------------------------------------------ */

/* What the file holds, read before anything is written to it. */
typedef struct file_info {
    int version; /* PRAGMA user_version */
    int app_id;  /* PRAGMA application_id */
    int objects; /* rows of sqlite_schema */
} file_info;

static int read_file_info(ssf_store *s, file_info *fi, ssf_error *err)
{
    static const char sql[] = "SELECT (SELECT user_version FROM pragma_user_version),"
                              " (SELECT application_id FROM pragma_application_id),"
                              " (SELECT count(*) FROM sqlite_schema)";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        fi->version = sqlite3_column_int(st, 0);
        fi->app_id = sqlite3_column_int(st, 1);
        fi->objects = sqlite3_column_int(st, 2);
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_NOTADB)
        ssf_fail(err,
                 "%s is not an ssfteval results store (not an SQLite database): "
                 "use another --db path",
                 s->path);
    else if ((rc & 0xff) == SQLITE_CANTOPEN && s->readonly)
        /* in a read-only directory with a -wal, which needs a -shm beside it */
        ssf_fail(err,
                 "%s cannot be read here (%s): a store with a -wal file needs a -shm file beside "
                 "it, which this directory may not allow; copy the store and its -wal to a "
                 "writable directory",
                 s->path, sqlite3_errmsg(s->db));
    else if (rc != SQLITE_OK)
        db_fail(s, rc, "read its header", err);
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* An empty database (a new file) is ours to create; anything else must carry
 * our application_id and a schema version this binary knows. */
static int check_ours(ssf_store *s, const file_info *fi, ssf_error *err)
{
    if (fi->version == 0 && fi->objects == 0 && fi->app_id == 0) return 0;
    if (fi->app_id != STORE_APPLICATION_ID || fi->version == 0)
        return ssf_fail(err, "%s is an SQLite database of another program: use another --db path",
                        s->path);
    if (fi->version > SSF_STORE_SCHEMA_VERSION)
        return ssf_fail(err,
                        "%s was written by a newer ssfteval (schema %d, this one knows up to %d): "
                        "upgrade ssfteval or use another --db path",
                        s->path, fi->version, SSF_STORE_SCHEMA_VERSION);
    return 0;
}

/* quick_check(1): the first problem only, as one line. */
static int quick_check(ssf_store *s, ssf_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") == 0) {
            sqlite3_finalize(st);
            return 0;
        }
        char line[256];
        snprintf(line, sizeof line, "%s", r ? r : "no result");
        for (char *p = line; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        sqlite3_finalize(st);
        return ssf_fail(err,
                        "%s is corrupt (%s): restore it from a backup or use another --db path",
                        s->path, line);
    }
    db_fail(s, rc, "check it", err);
    sqlite3_finalize(st);
    return -1;
}

static int exec_sql(ssf_store *s, const char *sql, const char *what, ssf_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : db_fail(s, rc, what, err);
}

static int configure(ssf_store *s, ssf_error *err)
{
    /* journal_mode is persistent and needs a write, so read-only
     * connections take whatever the file has. */
    if (!s->readonly && exec_sql(s, "PRAGMA journal_mode = WAL", "switch it to WAL", err) != 0)
        return -1;
    return exec_sql(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", "configure it",
                    err);
}

static int read_version(ssf_store *s, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate(ssf_store *s, int version, ssf_error *err)
{
    if (version == SSF_STORE_SCHEMA_VERSION) return 0;
    if (s->readonly) {
        if (version == 0)
            return ssf_fail(
                err,
                "%s holds no ssfteval results (empty database): check the --db path (a copy made "
                "while a run wrote needs the -wal file beside it copied too)",
                s->path);
        return ssf_fail(err,
                        "%s has schema %d, older than this ssfteval's %d: open it once without "
                        "read-only to upgrade it",
                        s->path, version, SSF_STORE_SCHEMA_VERSION);
    }
    if (tx_begin(s, "create its tables", err) != 0) return -1;
    /* Another process may have migrated between our check and our lock. */
    int rc = read_version(s, &version);
    for (int v = version; rc == SQLITE_OK && v < SSF_STORE_SCHEMA_VERSION; v++)
        rc = sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SSF_STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) return tx_abort(s, rc, "create its tables", err);
    return tx_commit(s, "create its tables", err);
}

static void store_free(ssf_store *s)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    if (s->claims_fd >= 0) close(s->claims_fd); /* drops this handle's claims */
    free(s->path);
    free(s);
}

/* Closes a file we refused.  When a WAL file was there before us it may
 * hold another program's commits; the checkpoint SQLite runs on close would
 * copy them into the main file, so skip it.  A WAL file we created ourselves
 * is empty and is cleaned up by the normal close. */
static void close_refused(ssf_store *s, int had_wal)
{
    if (had_wal) sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    store_free(s);
}

static int open_checked(ssf_store *s, off_t size, ssf_error *err)
{
    file_info fi = {0, 0, 0};
    if (read_file_info(s, &fi, err) != 0 || check_ours(s, &fi, err) != 0) return -1;
    if (fi.objects > 0 && size < STORE_QUICK_CHECK_MAX && quick_check(s, err) != 0) return -1;
    if (configure(s, err) != 0) return -1;
    return migrate(s, fi.version, err);
}

/* Reading a WAL store needs its -shm file, which a read-only directory (an
 * archive, a read-only mount) cannot get.  With no -wal beside it the file
 * holds every commit, and nobody can add one there, so it is opened
 * immutable: no -shm, no locks. */
static int directory_writable(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir =
        slash ? ssf_xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : ssf_xstrdup(".");
    int ok = access(dir, W_OK) == 0;
    free(dir);
    return ok;
}

/* file:PATH?immutable=1, PATH percent-encoded but for unreserved bytes. */
static char *immutable_uri(const char *path)
{
    ssf_buf b = {0};
    ssf_buf_puts(&b, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (isalnum(*p) || strchr("/._-~", *p))
            ssf_buf_putc(&b, (char)*p);
        else
            ssf_buf_printf(&b, "%%%02X", *p);
    }
    ssf_buf_puts(&b, "?immutable=1");
    return ssf_buf_take(&b);
}

/* The immutable URI of the store at path when it sits in a directory this
 * process cannot write and has no -wal beside it, else NULL.  SQLite keeps
 * the side files beside the file itself, so a link is resolved first (which
 * also makes the path absolute, one leading '/': no URI authority). */
static char *immutable_uri_if_read_only(const char *path)
{
    char *real = realpath(path, NULL);
    if (!real) return NULL;
    char *wal = ssf_xmalloc(strlen(real) + 5);
    strcat(strcpy(wal, real), "-wal");
    char *uri = !ssf_path_exists(wal) && !directory_writable(real) ? immutable_uri(real) : NULL;
    free(wal);
    free(real);
    return uri;
}

/* A new store is made mode 0600 before SQLite opens it (an empty file is a
 * new database, and SQLite gives its -wal and -shm the file's mode): it
 * holds every prompt, gated GPQA's included, which the data cache keeps
 * 0600 too.  Someone who wants it shared can chmod it. */
static int create_private(const char *path, ssf_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    struct stat st;
    /* EEXIST: another process made it first, or the name is a link to
     * nothing, where SQLite would make the file with the umask's mode. */
    if (fd < 0 && errno == EEXIST && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return ssf_fail(err, "%s is a symbolic link to nothing: give --db the file itself", path);
    if (fd < 0 && errno != EEXIST)
        return ssf_fail(err, "cannot create %s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return 0;
}

int ssf_store_open(const char *path, int create, int readonly, ssf_store **out, ssf_error *err)
{
    *out = NULL;
    if (!*path || strcmp(path, ":memory:") == 0) /* SQLite would keep nothing */
        return ssf_fail(err, "'%s' names no file: give --db a file path", path);
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!exists && (readonly || !create))
        return ssf_fail(err, "%s does not exist: check the --db path", path);
    if (exists && S_ISDIR(st.st_mode))
        return ssf_fail(err, "%s is a directory: give --db a file path", path);

    size_t n = strlen(path) + 5;
    char *wal = ssf_xmalloc(n);
    snprintf(wal, n, "%s-wal", path);
    int had_wal = ssf_path_exists(wal);
    free(wal);
    if (!exists && create_private(path, err)) return -1;

    ssf_store *s = ssf_xcalloc(1, sizeof *s);
    s->path = ssf_xstrdup(path);
    s->readonly = readonly;
    s->claims_fd = -1;
    int flags =
        readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    flags |= SQLITE_OPEN_NOMUTEX; /* one connection per thread (store.h) */
    char *uri = readonly && exists ? immutable_uri_if_read_only(path) : NULL;
    int rc = sqlite3_open_v2(uri ? uri : path, &s->db, flags | (uri ? SQLITE_OPEN_URI : 0), NULL);
    free(uri);
    if (rc != SQLITE_OK) {
        ssf_fail(err, "%s cannot be opened (%s): check the path and its permissions", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        store_free(s);
        return -1;
    }
    /* Before the first read, so that the checks wait for a writer too. */
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (open_checked(s, exists ? st.st_size : 0, err) != 0) {
        close_refused(s, had_wal);
        return -1;
    }
    *out = s;
    return 0;
}

void ssf_store_close(ssf_store *s)
{
    if (s) store_free(s);
}

/* ---- runs --------------------------------------------------------------- */

/* *id is the newest run with this hash, or 0 (run ids start at 1).  A done
 * run is resumed too: running the same command again finds nothing missing
 * and recomputes its metrics, rather than starting over. */
static int find_open_run(ssf_store *s, const char *hash, int64_t *id)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_RUN_FIND, &st);
    if (rc != SQLITE_OK) return rc;
    binder b = {st, 0, SQLITE_OK};
    bind_text(&b, hash);
    rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    stmt_put(s, ST_RUN_FIND, st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int resume_run(ssf_store *s, int64_t id)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_RUN_RESUME, &st);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    stmt_put(s, ST_RUN_RESUME, st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int insert_run(ssf_store *s, const ssf_run_meta *m, int64_t *id)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_RUN_INSERT, &st);
    if (rc != SQLITE_OK) return rc;
    char now[32];
    now_iso(now);
    binder b = {st, 0, SQLITE_OK};
    bind_text(&b, now);
    bind_text(&b, m->config_json);
    bind_text(&b, m->config_hash);
    bind_text(&b, m->tasks);
    bind_text(&b, m->metrics);
    bind_text(&b, m->model);
    bind_text(&b, m->backend);
    bind_text(&b, m->protocol);
    bind_text(&b, m->compat);
    bind_text(&b, m->profile);
    bind_text(&b, m->version);
    rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
    stmt_put(s, ST_RUN_INSERT, st);
    *id = sqlite3_last_insert_rowid(s->db);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* ---- claims: one process generates a run ----------------------------------
 *
 * Two processes generating one run (a job started twice, a requeued job
 * whose first copy still runs) would each make every missing sample, the
 * second's overwriting the first's: twice the device hours for nothing.  So
 * a run is claimed by the handle that begins it, with an open file
 * description lock on the byte at offset run_id of "<store>-lock".  The
 * kernel drops it when the process ends, however it ends, so a killed run
 * is never left claimed.  It is a file of its own because a lock on the
 * store would share SQLite's: POSIX drops every lock a process holds on a
 * file when it closes any descriptor of it. */

/* "<store>-lock" beside the file itself, as SQLite keeps its -wal (malloc'd). */
static char *claims_path(const ssf_store *s)
{
    char *real = realpath(s->path, NULL);
    const char *base = real ? real : s->path;
    size_t n = strlen(base) + sizeof "-lock";
    char *path = ssf_xmalloc(n);
    snprintf(path, n, "%s-lock", base);
    free(real);
    return path;
}

/* The claims file takes the store's permissions, as SQLite's -wal and
 * -shm do (and its owner's read and write, so that it can always be
 * opened to lock): a store chmod'ed for a group is run by the group, where
 * a claims file of its first user's alone would refuse the others every
 * run.  Set with fchmod, past the umask, and again on a file of one's own
 * when the store's mode has changed since. */
static void match_store_mode(int fd, const char *store)
{
    struct stat st, lock;
    if (stat(store, &st) != 0 || fstat(fd, &lock) != 0 || lock.st_uid != geteuid()) return;
    mode_t mode = (st.st_mode & 0777) | S_IRUSR | S_IWUSR;
    if ((lock.st_mode & 0777) != mode) (void)fchmod(fd, mode);
}

static int open_claims(ssf_store *s, ssf_error *err)
{
    if (s->claims_fd >= 0) return 0;
    char *path = claims_path(s);
    s->claims_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->claims_fd >= 0) match_store_mode(s->claims_fd, s->path);
    int rc = 0;
    if (s->claims_fd < 0) {
        int e = errno;
        rc = ssf_fail(err, "cannot open %s, which marks the runs being generated: %s; %s", path,
                      strerror(e), ssf_write_fix(e));
    }
    free(path);
    return rc;
}

/* Whether the claim's byte could be locked: -1 with a message if not. */
static int lock_claim(ssf_store *s, int64_t run_id, short type, ssf_error *err)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = (off_t)run_id, .l_len = 1};
    if (fcntl(s->claims_fd, F_OFD_SETLK, &fl) == 0) return 0;
    if (errno == EAGAIN || errno == EACCES)
        return ssf_fail(err,
                        "run %lld of %s is being generated by another ssfteval now: wait for it "
                        "to end, or stop it (what it stored is kept) and run this command again",
                        (long long)run_id, s->path);
    int e = errno;
    char *path = claims_path(s); /* the file itself, a link to the store resolved */
    ssf_fail(err, "cannot lock %s (%s): keep the store on a local disk", path, strerror(e));
    free(path);
    return -1;
}

static int claim_run(ssf_store *s, int64_t run_id, ssf_error *err)
{
    return open_claims(s, err) != 0 ? -1 : lock_claim(s, run_id, F_WRLCK, err);
}

void ssf_store_release_run(ssf_store *s, int64_t run_id)
{
    ssf_error ignored; /* unlocking a byte cannot be refused */
    if (s->claims_fd >= 0) lock_claim(s, run_id, F_UNLCK, &ignored);
}

/* Asked through a descriptor of its own: a lock is reported only when
 * another open file description holds it, this handle's among them. */
int ssf_store_run_generating(const ssf_store *s, int64_t run_id)
{
    char *path = claims_path(s);
    int fd = open(path, O_RDONLY | O_CLOEXEC); /* none: no run was ever claimed */
    free(path);
    if (fd < 0) return 0;
    struct flock fl = {
        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)run_id, .l_len = 1};
    int held = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    return held;
}

const char *ssf_store_run_status(const ssf_store *s, const ssf_run_row *r)
{
    if (!r->status || strcmp(r->status, "running") != 0) return r->status;
    return ssf_store_run_generating(s, r->id) ? "running" : "stopped";
}

int ssf_store_begin_run(ssf_store *s, const ssf_run_meta *meta, int64_t *run_id, int *resumed,
                        ssf_error *err)
{
    if (!meta->config_hash || !meta->config_json)
        return ssf_fail(err, "%s: a run needs config_json and config_hash (internal error)",
                        s->path);
    const char *what = "start a run";
    if (tx_begin(s, what, err) != 0) return -1;
    int64_t id = 0;
    int rc = find_open_run(s, meta->config_hash, &id);
    int found = id != 0;
    if (rc == SQLITE_OK) rc = found ? resume_run(s, id) : insert_run(s, meta, &id);
    if (rc != SQLITE_OK) return tx_abort(s, rc, what, err);
    /* Claimed inside the write transaction, so that a claim refused rolls
     * the resume back: the run stays as its owner keeps it.  Another
     * handle's claim is refused, so one held before is this handle's. */
    int held = ssf_store_run_generating(s, id);
    if (claim_run(s, id, err) != 0) {
        stmt_exec(s, ST_ROLLBACK);
        return -1;
    }
    /* a start the disk refused leaves no claim it took: the run is not
     * generating, unless this handle was generating it already */
    if (tx_commit(s, what, err) != 0) {
        if (!held) ssf_store_release_run(s, id);
        return -1;
    }
    *run_id = id;
    *resumed = found;
    return 0;
}

static int valid_status(const char *status)
{
    static const char *const known[] = {"running", "done", "incomplete", "failed"};
    for (size_t i = 0; status && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(status, known[i]) == 0) return 1;
    return 0;
}

/* Sets the run's status by statement `which`: ST_RUN_FINISH the one given,
 * ST_RUN_SETTLE "done" when the store holds `planned` samples of it without
 * an error, ST_RUN_ABANDON "incomplete" unless it is done; *settled (may be
 * NULL) says which it became. */
static int end_run(ssf_store *s, int64_t run_id, int which, const char *status, int64_t planned,
                   const char **settled, ssf_error *err)
{
    const char *what = "finish the run";
    if (tx_begin(s, what, err) != 0) return -1;
    sqlite3_stmt *st;
    int rc = stmt_get(s, which, &st);
    if (rc == SQLITE_OK) {
        char now[32];
        now_iso(now);
        binder b = {st, 0, SQLITE_OK};
        bind_int(&b, run_id);
        if (status)
            bind_text(&b, status);
        else
            bind_int(&b, planned);
        bind_text(&b, now);
        rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
        if (!status && rc == SQLITE_ROW) {
            const char *got = (const char *)sqlite3_column_text(st, 0);
            status = got && strcmp(got, "done") == 0 ? "done" : "incomplete";
            rc = sqlite3_step(st);
        }
        stmt_put(s, which, st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) return tx_abort(s, rc, what, err);
    if (sqlite3_changes(s->db) == 0) {
        stmt_exec(s, ST_ROLLBACK);
        return ssf_fail(err, "%s has no run %lld: check the run id", s->path, (long long)run_id);
    }
    if (tx_commit(s, what, err) != 0) return -1;
    if (settled) *settled = status;
    if (!status || strcmp(status, "done") != 0) return 0;
    /* Fold the WAL into the main file so a finished store is one file.  A
     * reader that keeps the WAL busy only delays this; it is not an error. */
    rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) return 0;
    return db_fail(s, rc, "checkpoint it", err);
}

int ssf_store_finish_run(ssf_store *s, int64_t run_id, const char *status, ssf_error *err)
{
    if (!valid_status(status))
        return ssf_fail(err,
                        "%s: run status '%s' is not running, done, incomplete or failed "
                        "(internal error)",
                        s->path, status ? status : "(null)");
    return end_run(s, run_id, ST_RUN_FINISH, status, 0, NULL, err);
}

int ssf_store_settle_run(ssf_store *s, int64_t run_id, int64_t planned, const char **status,
                         ssf_error *err)
{
    return end_run(s, run_id, ST_RUN_SETTLE, NULL, planned, status, err);
}

int ssf_store_abandon_run(ssf_store *s, int64_t run_id, const char **status, ssf_error *err)
{
    return end_run(s, run_id, ST_RUN_ABANDON, NULL, 0, status, err);
}

int ssf_store_set_run_version(ssf_store *s, int64_t run_id, const char *version, ssf_error *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_RUN_VERSION, &st);
    if (rc != SQLITE_OK) return db_fail(s, rc, "record the run's version", err);
    binder b = {st, 0, SQLITE_OK};
    bind_int(&b, run_id);
    bind_text(&b, version);
    rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
    stmt_put(s, ST_RUN_VERSION, st);
    if (rc != SQLITE_DONE) return db_fail(s, rc, "record the run's version", err);
    if (sqlite3_changes(s->db) == 0)
        return ssf_fail(err, "%s has no run %lld: check the run id", s->path, (long long)run_id);
    return 0;
}

static void fill_run(sqlite3_stmt *st, ssf_run_row *r)
{
    r->id = sqlite3_column_int64(st, 0);
    char **fields[] = {&r->created_at,  &r->finished_at, &r->status,  &r->config_json,
                       &r->config_hash, &r->tasks,       &r->metrics, &r->model,
                       &r->backend,     &r->protocol,    &r->compat,  &r->profile,
                       &r->version};
    for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
        *fields[i] = dup_column(st, i + 1);
}

int ssf_store_get_run(ssf_store *s, int64_t run_id, ssf_run_row *out, ssf_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_RUN_GET, &st);
    if (rc != SQLITE_OK) return db_fail(s, rc, "read a run", err);
    rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        fill_run(st, out);
    else if (rc != SQLITE_DONE)
        db_fail(s, rc, "read a run", err);
    stmt_put(s, ST_RUN_GET, st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE)
        ssf_fail(err, "%s has no run %lld: check the run id", s->path, (long long)run_id);
    return -1;
}

int ssf_store_foreach_run(ssf_store *s, ssf_run_fn fn, void *ud, ssf_error *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_RUN_ALL, &st);
    if (rc != SQLITE_OK) return db_fail(s, rc, "read its runs", err);
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ssf_run_row r;
        fill_run(st, &r);
        ret = fn(&r, ud);
        ssf_run_row_clear(&r);
        if (ret != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = db_fail(s, rc, "read its runs", err);
    stmt_put(s, ST_RUN_ALL, st);
    return ret;
}

void ssf_run_row_clear(ssf_run_row *r)
{
    char *fields[] = {r->created_at, r->finished_at, r->status, r->config_json, r->config_hash,
                      r->tasks,      r->metrics,     r->model,  r->backend,     r->protocol,
                      r->compat,     r->profile,     r->version};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        free(fields[i]);
    memset(r, 0, sizeof *r);
}

/* ---- samples and grades ------------------------------------------------- */

/* Upserts the sample; *changed is 0 when a successful sample was already
 * stored and left alone. */
static int insert_sample(ssf_store *s, int64_t run_id, const ssf_sample_row *row, int *changed)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_SAMPLE_PUT, &st);
    if (rc != SQLITE_OK) return rc;
    char now[32];
    now_iso(now);
    binder b = {st, 0, SQLITE_OK};
    bind_int(&b, run_id);
    bind_text(&b, row->task);
    bind_int(&b, row->doc);
    bind_int(&b, row->tag);
    bind_int(&b, row->index);
    bind_int(&b, seed_to_db(row->seed));
    bind_text(&b, row->request_json);
    bind_text(&b, row->text);
    bind_text(&b, row->reasoning);
    bind_text(&b, row->finish_reason);
    bind_count(&b, row->prompt_tokens);
    bind_count(&b, row->completion_tokens);
    bind_real(&b, row->latency_ms);
    bind_int(&b, row->attempts);
    bind_text(&b, row->error);
    bind_text(&b, now);
    rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
    stmt_put(s, ST_SAMPLE_PUT, st);
    *changed = rc == SQLITE_DONE && sqlite3_changes(s->db) > 0;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int upsert_grade(ssf_store *s, int64_t run_id, const char *task, int64_t doc, int tag,
                        int index, const ssf_grade_row *g)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_GRADE_PUT, &st);
    if (rc != SQLITE_OK) return rc;
    binder b = {st, 0, SQLITE_OK};
    bind_int(&b, run_id);
    bind_text(&b, task);
    bind_int(&b, doc);
    bind_int(&b, tag);
    bind_int(&b, index);
    bind_text(&b, g->profile);
    bind_int(&b, g->verdict);
    bind_int(&b, g->no_answer != 0);
    bind_text(&b, g->gold_extracted);
    bind_text(&b, g->pred_extracted);
    bind_text(&b, g->pred_key);
    bind_text(&b, g->reason);
    rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
    stmt_put(s, ST_GRADE_PUT, st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int check_grade(ssf_store *s, const ssf_grade_row *g, ssf_error *err)
{
    if (!g->profile) return ssf_fail(err, "%s: a grade needs a profile (internal error)", s->path);
    if (g->verdict < -1 || g->verdict > 1)
        return ssf_fail(err, "%s: grade verdict %d is not 1, 0 or -1 (internal error)", s->path,
                        g->verdict);
    return 0;
}

int ssf_store_put_sample(ssf_store *s, int64_t run_id, const ssf_sample_row *row,
                         const ssf_grade_row *grade, ssf_error *err)
{
    if (!row->task) return ssf_fail(err, "%s: a sample needs a task (internal error)", s->path);
    /* A failed generation is never graded (store.h), so its grade is dropped
     * rather than stored beside an error. */
    if (row->error) grade = NULL;
    if (grade && check_grade(s, grade, err) != 0) return -1;
    const char *what = "store a sample";
    if (tx_begin(s, what, err) != 0) return -1;
    int changed = 0;
    int rc = insert_sample(s, run_id, row, &changed);
    if (rc == SQLITE_OK && changed && grade)
        rc = upsert_grade(s, run_id, row->task, row->doc, row->tag, row->index, grade);
    if (rc != SQLITE_OK) return tx_abort(s, rc, what, err);
    return tx_commit(s, what, err);
}

int ssf_store_put_grade(ssf_store *s, int64_t run_id, const char *task, int64_t doc, int tag,
                        int index, const ssf_grade_row *grade, ssf_error *err)
{
    if (check_grade(s, grade, err) != 0) return -1;
    const char *what = "store a grade";
    if (tx_begin(s, what, err) != 0) return -1;
    int rc = upsert_grade(s, run_id, task, doc, tag, index, grade);
    if (rc == SQLITE_OK) return tx_commit(s, what, err);
    if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
        stmt_exec(s, ST_ROLLBACK);
        return ssf_fail(err,
                        "%s has no sample %s doc %lld tag %d index %d in run %lld to grade "
                        "(internal error)",
                        s->path, task, (long long)doc, tag, index, (long long)run_id);
    }
    return tx_abort(s, rc, what, err);
}

static void fill_sample(sqlite3_stmt *st, ssf_stored_sample *o)
{
    o->task = text_column(st, 0);
    o->doc = sqlite3_column_int64(st, 1);
    o->tag = sqlite3_column_int(st, 2);
    o->index = sqlite3_column_int(st, 3);
    o->seed = seed_from_db(sqlite3_column_int64(st, 4));
    o->request_json = text_column(st, 5);
    o->text = text_column(st, 6);
    o->reasoning = text_column(st, 7);
    o->finish_reason = text_column(st, 8);
    o->error = text_column(st, 9);
    o->prompt_tokens = count_column(st, 10);
    o->completion_tokens = count_column(st, 11);
    o->latency_ms = real_column(st, 12);
    o->attempts = sqlite3_column_int(st, 13);
    o->graded = sqlite3_column_int(st, 14);
    o->verdict = sqlite3_column_int(st, 15);
    o->no_answer = sqlite3_column_int(st, 16);
    o->gold_extracted = text_column(st, 17);
    o->pred_extracted = text_column(st, 18);
    o->pred_key = text_column(st, 19);
    o->reason = text_column(st, 20);
}

static void sample_query_sql(const ssf_sample_query *q, ssf_buf *sql)
{
    ssf_buf_printf(sql, "%s%s%s", SAMPLE_SELECT_HEAD,
                   q->keys_only ? SAMPLE_LONG_AS_KEYS : SAMPLE_LONG_COLUMNS, SAMPLE_SELECT_TAIL);
    if (q->task) ssf_buf_printf(sql, " AND s.task = ?3");
    if (q->one_doc) ssf_buf_printf(sql, " AND s.doc = ?4");
    if (q->ungraded_only) ssf_buf_printf(sql, " AND g.profile IS NULL");
    ssf_buf_printf(sql, " ORDER BY s.task, s.doc, s.tag, s.idx");
}

int ssf_store_visit_samples(ssf_store *s, int64_t run_id, const ssf_sample_query *q,
                            ssf_sample_fn fn, void *ud, ssf_error *err)
{
    ssf_buf sql = {0};
    sample_query_sql(q, &sql);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql.data, -1, &st, NULL);
    ssf_buf_free(&sql);
    if (rc != SQLITE_OK) return db_fail(s, rc, "read its samples", err);
    rc = sqlite3_bind_int64(st, 1, run_id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, q->profile, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && q->task) rc = sqlite3_bind_text(st, 3, q->task, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && q->one_doc) rc = sqlite3_bind_int64(st, 4, q->doc);
    int ret = 0;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) break;
        ssf_stored_sample o;
        fill_sample(st, &o);
        if ((ret = fn(&o, ud)) != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = db_fail(s, rc, "read its samples", err);
    sqlite3_finalize(st);
    return ret;
}

int ssf_store_foreach_sample(ssf_store *s, int64_t run_id, const char *task, const char *profile,
                             ssf_sample_fn fn, void *ud, ssf_error *err)
{
    ssf_sample_query q = {.task = task, .profile = profile};
    return ssf_store_visit_samples(s, run_id, &q, fn, ud, err);
}

/* ---- metrics ------------------------------------------------------------ */

int ssf_store_put_metric(ssf_store *s, int64_t run_id, const ssf_metric_row *m, ssf_error *err)
{
    if (!m->task || !m->metric)
        return ssf_fail(err, "%s: a metric needs a task and a name (internal error)", s->path);
    const char *what = "store a metric";
    if (tx_begin(s, what, err) != 0) return -1;
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_METRIC_PUT, &st);
    if (rc == SQLITE_OK) {
        binder b = {st, 0, SQLITE_OK};
        bind_int(&b, run_id);
        bind_text(&b, m->task);
        bind_text(&b, m->metric);
        /* Part of the key, so never NULL: "" stands for "no profile". */
        bind_text(&b, m->profile ? m->profile : "");
        bind_real(&b, m->value);
        bind_real(&b, m->stderr_);
        bind_real(&b, m->ci_lo);
        bind_real(&b, m->ci_hi);
        bind_int(&b, m->n_questions);
        bind_int(&b, m->n_samples);
        bind_int(&b, m->n_failed);
        bind_int(&b, m->n_missing);
        rc = b.rc == SQLITE_OK ? sqlite3_step(st) : b.rc;
        stmt_put(s, ST_METRIC_PUT, st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK) return tx_abort(s, rc, what, err);
    return tx_commit(s, what, err);
}

int ssf_store_foreach_metric(ssf_store *s, int64_t run_id, ssf_metric_fn fn, void *ud,
                             ssf_error *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(s, ST_METRICS_RUN, &st);
    if (rc != SQLITE_OK) return db_fail(s, rc, "read its metrics", err);
    rc = sqlite3_bind_int64(st, 1, run_id);
    int ret = 0;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) break;
        ssf_metric_row m = {
            .task = text_column(st, 0),
            .metric = text_column(st, 1),
            .profile = text_column(st, 2),
            .value = real_column(st, 3),
            .stderr_ = real_column(st, 4),
            .ci_lo = real_column(st, 5),
            .ci_hi = real_column(st, 6),
            .n_questions = sqlite3_column_int64(st, 7),
            .n_samples = sqlite3_column_int64(st, 8),
            .n_failed = sqlite3_column_int64(st, 9),
            .n_missing = sqlite3_column_int64(st, 10),
        };
        if ((ret = fn(&m, ud)) != 0) break;
    }
    if (ret == 0 && rc != SQLITE_DONE) ret = db_fail(s, rc, "read its metrics", err);
    stmt_put(s, ST_METRICS_RUN, st);
    return ret;
}
