/*
 * test_run_api.c - the run pipeline as a library user calls it: ssf_run_execute
 * writes its progress, failure reasons and notes to cfg.log alone (a NULL
 * log: nothing at all on the process's stderr), and the summary and store
 * say what happened.  Also the replay backend's digest of its file, and the
 * seeds of samples.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "run.h"
#include "store.h"
#include "test-support.h"

/* Two questions, a default metric that needs the SSFT tags (left out, with
 * a note, without --protocol ssft) and a replay file lacking question 1. */
static const char spec[] =
    "{\"name\": \"synth\", \"answer_type\": \"math\", \"source\": {\"local\": {\"path\": "
    "\"synth.jsonl\"}}, \"fields\": {\"question\": \"q\", \"answer\": \"a\"}, \"prompt\": \"Q: "
    "{{question}}\", \"metrics\": [\"pass@1\", \"cons@6:native\"]}";
static const char data[] = "{\"q\": \"one\", \"a\": \"1\"}\n{\"q\": \"two\", \"a\": \"2\"}\n";
static const char generations[] =
    "{\"task\": \"synth\", \"doc\": 0, \"tag\": 0, \"sample\": 0, \"text\": \"\\\\boxed{1}\", "
    "\"finish_reason\": \"stop\"}\n";

typedef struct fixture {
    char *dir;
    ssf_registry reg;
    ssf_backend *backend;
    ssf_store *store;
    ssf_run_config cfg;
    const ssf_task *tasks[1];
} fixture;

static void setup_fixture(fixture *f, const char *db)
{
    ssf_error err;
    f->dir = make_temp_dir();
    char *spec_path = write_temp_file(f->dir, "synth.json", spec);
    free(write_temp_file(f->dir, "synth.jsonl", data));
    char *gen_path = write_temp_file(f->dir, "gen.jsonl", generations);
    char *db_path = ssf_path_join(f->dir, db);
    assert_int_equal(ssf_registry_init(&f->reg, &err), 0);
    assert_int_equal(ssf_registry_add_file(&f->reg, spec_path, &err), 0);
    f->backend = ssf_backend_replay_new(gen_path, &err);
    assert_non_null(f->backend);
    assert_int_equal(ssf_store_open(db_path, 1, 0, &f->store, &err), 0);
    f->tasks[0] = ssf_registry_find(&f->reg, "synth");
    f->cfg = (ssf_run_config){.tasks = f->tasks,
                              .n_tasks = 1,
                              .seed = 1,
                              .sampling = {-1, -1, -1, -1, -1},
                              .chat_template = SSF_CHAT_NONE,
                              .profile = SSF_PROFILE_DEFAULT,
                              .model = "m",
                              .backend_desc = "replay",
                              .data = {.data_dir = f->dir, .order_override = -1},
                              .progress = 0};
    free(spec_path);
    free(gen_path);
    free(db_path);
}

static void teardown_fixture(fixture *f)
{
    ssf_store_close(f->store);
    f->backend->destroy(f->backend);
    ssf_registry_free(&f->reg);
    remove_tree(f->dir);
    free(f->dir);
}

/* Runs with the process's stderr sent to a file; returns what it got. */
static char *run_capturing_stderr(fixture *f, ssf_run_summary *s)
{
    char *path = ssf_path_join(f->dir, "stderr.txt");
    fflush(stderr);
    int saved = dup(STDERR_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
    ssf_error err;
    int rc = ssf_run_execute(&f->cfg, f->backend, f->store, s, &err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    if (rc) fail_msg("run: %s", err.msg);
    char *text;
    assert_int_equal(ssf_read_file(path, &text, NULL, &err), 0);
    free(path);
    return text;
}

static void test_null_log_is_silent(void **state)
{
    (void)state;
    fixture f;
    setup_fixture(&f, "a.sqlite");
    ssf_run_summary s;
    char *got = run_capturing_stderr(&f, &s);
    assert_string_equal(got, ""); /* it said the failure and the note on stderr */
    assert_string_equal(s.status, "incomplete");
    assert_int_equal(s.failed, 1);
    free(got);
    teardown_fixture(&f);
}

static void test_log_gets_what_stderr_got(void **state)
{
    (void)state;
    fixture f;
    setup_fixture(&f, "b.sqlite");
    char *log_path = ssf_path_join(f.dir, "log.txt");
    f.cfg.log = fopen(log_path, "w");
    assert_non_null(f.cfg.log);
    ssf_run_summary s;
    char *got = run_capturing_stderr(&f, &s);
    fclose(f.cfg.log);
    assert_string_equal(got, "");
    free(got);
    ssf_error err;
    char *log;
    assert_int_equal(ssf_read_file(log_path, &log, NULL, &err), 0);
    assert_non_null(strstr(log, "default metric cons@6:native left out"));
    assert_non_null(strstr(log, "synth doc 1 tag 0 sample 0 failed: "));
    free(log);
    free(log_path);
    teardown_fixture(&f);
}

/* The replay backend digests the file in its indexing pass: the digest
 * must be the whole file's, byte for byte, though the pass rewrites escaped
 * NULs in its copy of a line and skips blank lines. */
static void test_replay_digest_is_the_files(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_temp_file(dir, "gen.jsonl",
                                 "\n{\"task\": \"t\", \"doc\": 0, \"sample\": 0, "
                                 "\"text\": \"a\\u0000b\"}\n  \n{\"task\": \"t\", \"doc\": 1, "
                                 "\"sample\": 0, \"text\": \"c\"}");
    ssf_error err;
    ssf_backend *b = ssf_backend_replay_new(path, &err);
    assert_non_null(b);
    char want[65];
    assert_int_equal(ssf_sha256_file(path, want, &err), 0);
    assert_string_equal(ssf_backend_replay_sha256(b), want);
    ssf_backend other = {.name = "replay"}; /* named so, but not one */
    assert_null(ssf_backend_replay_sha256(&other));
    b->destroy(b);
    remove_tree(dir);
    free(path);
    free(dir);
}

/* A sample's seed is its key's, so that a resumed or replayed run draws
 * the same samples: pinned to values computed apart from the code (Python's
 * hashlib on "ssfteval-seed-v1\n<seed>\n<task>\n<doc>\n<tag>", the first 8
 * bytes big-endian, shifted right by 2, plus the index), each part of the
 * key moving it, and under 2^62 for servers' signed seeds. */
/* A sample the store refuses (a full disk, a lock held too long: here a
 * trigger) stops the run with the store's reason, rather than generating on
 * into nothing; the run is then incomplete. */
static void test_store_refusal_stops_the_run(void **state)
{
    (void)state;
    fixture f;
    setup_fixture(&f, "a.sqlite");
    char *db = ssf_path_join(f.dir, "a.sqlite");
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "CREATE TRIGGER refuse BEFORE INSERT ON samples BEGIN "
                                  "SELECT RAISE(ABORT, 'injected refusal'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    ssf_run_summary s;
    ssf_error err = {0};
    assert_int_equal(ssf_run_execute(&f.cfg, f.backend, f.store, &s, &err), -1);
    assert_non_null(strstr(err.msg, "injected refusal"));
    ssf_run_row row;
    assert_int_equal(ssf_store_get_run(f.store, s.run_id, &row, &err), 0);
    assert_string_equal(row.status, "incomplete");
    ssf_run_row_clear(&row);
    free(db);
    teardown_fixture(&f);
}

/* A run's identity is its configuration without what is only stored with
 * it (the build's version, the task's document count and questions digest):
 * another build of ssfteval resumes the run rather than starting anew. */
static void test_identity_leaves_out_the_build(void **state)
{
    (void)state;
    fixture f;
    setup_fixture(&f, "a.sqlite");
    ssf_run_summary s;
    free(run_capturing_stderr(&f, &s));
    ssf_run_row row;
    ssf_error err;
    assert_int_equal(ssf_store_get_run(f.store, s.run_id, &row, &err), 0);
    json_t *conf = json_loads(row.config_json, 0, NULL);
    assert_non_null(conf);
    assert_non_null(json_object_get(conf, "version"));
    json_object_del(conf, "version");
    size_t i;
    json_t *task;
    json_array_foreach(json_object_get(conf, "tasks"), i, task)
    {
        assert_int_equal(json_object_del(task, "task_documents"), 0);
        assert_int_equal(json_object_del(task, "questions_sha256"), 0);
    }
    char *text = json_dumps(conf, JSON_COMPACT | JSON_SORT_KEYS), hex[65];
    ssf_sha256_hex(text, strlen(text), hex);
    assert_string_equal(hex, row.config_hash);
    free(text);
    json_decref(conf);
    ssf_run_row_clear(&row);
    teardown_fixture(&f);
}

static void test_sample_seeds(void **state)
{
    (void)state;
    assert_true(ssf_sample_seed(1234, "aime25", 7, 3, 0) == 2651283240838464926ULL);
    assert_true(ssf_sample_seed(1234, "aime25", 7, 3, 5) == 2651283240838464931ULL);
    assert_true(ssf_sample_seed(UINT64_MAX, "math_500", 499, 6, 4095) == 2915593083810939240ULL);
    uint64_t base = ssf_sample_seed(1234, "aime25", 7, 3, 0);
    const uint64_t others[] = {
        ssf_sample_seed(1235, "aime25", 7, 3, 0), ssf_sample_seed(1234, "aime24", 7, 3, 0),
        ssf_sample_seed(1234, "aime25", 8, 3, 0), ssf_sample_seed(1234, "aime25", 7, 4, 0),
        ssf_sample_seed(1234, "aime25", 7, 3, 1)};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        assert_true(others[i] != base);
        assert_true(others[i] < (1ULL << 62) + 4096);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_log_is_silent),
        cmocka_unit_test(test_log_gets_what_stderr_got),
        cmocka_unit_test(test_replay_digest_is_the_files),
        cmocka_unit_test(test_sample_seeds),
        cmocka_unit_test(test_identity_leaves_out_the_build),
        cmocka_unit_test(test_store_refusal_stops_the_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
