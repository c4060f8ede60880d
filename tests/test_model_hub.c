/*
 * test_model_hub.c - ssf_model_resolve: local directories, and hf:ORG/NAME
 * specs downloaded from the in-process test Hub (hubserver.h) serving model
 * repositories written by model-fixture.h: sharded and single-file repos,
 * optional files absent, a missing tokenizer, a missing shard, the cache
 * reused offline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "hubserver.h"
#include "model-fixture.h"
#include "ssfteval/hub.h"
#include "ssfteval/model.h"
#include "test-support.h"

static struct hubserver *g_server;
static char *g_models; /* the server's models_dir */
static char *g_data_dir;

/* models_dir/ORG/NAME, created (malloc'd). */
static char *repo_dir(const char *repo)
{
    ssf_buf b = {0};
    ssf_error err = {0};
    ssf_buf_printf(&b, "%s/%s", g_models, repo);
    if (ssf_mkdirs(b.data, &err)) abort();
    return ssf_buf_take(&b);
}

static void remove_in(const char *dir, const char *name)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/%s", dir, name);
    unlink(b.data);
    ssf_buf_free(&b);
}

static void write_repos(void)
{
    char *d = repo_dir("ssfteval-test/tiny");
    fx_write_model(d, "BF16", 0, 3);
    fx_write_text(d, "tokenizer.json", "{}");
    fx_write_text(d, "tokenizer_config.json", "{}");
    fx_write_text(d, "chat_template.jinja", "{{ messages }}");
    free(d);
    d = repo_dir("ssfteval-test/single"); /* no generation or tokenizer config */
    fx_write_model(d, "F32", 1, 1);
    remove_in(d, "generation_config.json");
    fx_write_text(d, "tokenizer.json", "{}");
    free(d);
    d = repo_dir("ssfteval-test/notok");
    fx_write_model(d, "F32", 1, 1);
    free(d);
    d = repo_dir("ssfteval-test/noshard");
    fx_write_model(d, "F32", 0, 2);
    fx_write_text(d, "tokenizer.json", "{}");
    remove_in(d, "model-00002-of-00002.safetensors");
    free(d);
    d = repo_dir("ssfteval-test/slowtok"); /* a slow tokenizer's files, no tokenizer.json */
    fx_write_model(d, "F32", 1, 1);
    fx_write_text(d, "vocab.json", "{\"a\": 0}");
    fx_write_text(d, "merges.txt", "#version: 0.2\n");
    free(d);
    d = repo_dir("ssfteval-test/fp8"); /* a dtype ssfteval does not read */
    fx_write_model(d, "F8_E4M3", 1, 1);
    fx_write_text(d, "tokenizer.json", "{}");
    free(d);
    d = repo_dir("ssfteval-test/genfail"); /* generation_config.json answers 503 */
    fx_write_model(d, "F32", 1, 1);
    fx_write_text(d, "tokenizer.json", "{}");
    fx_write_text(d, "generation_config.json.status", "503");
    free(d);
}

static int group_setup(void **state)
{
    (void)state;
    g_data_dir = shared_path("data");
    g_models = make_temp_dir();
    write_repos();
    struct hubserver_options o = {.data_dir = g_data_dir};
    ssf_error err = {0};
    g_server = hubserver_start(&o, &err);
    if (!g_server) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    hubserver_serve_models(g_server, g_models);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", hubserver_port(g_server));
    setenv("HF_ENDPOINT", base, 1);
    unsetenv("HF_TOKEN");
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("SSFTEVAL_OFFLINE");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    hubserver_stop(g_server);
    if (g_models) remove_tree(g_models);
    free(g_models);
    free(g_data_dir);
    return 0;
}

struct fixture {
    ssf_hub hub;
    char *cache;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    ssf_error err = {0};
    f->cache = make_temp_dir();
    setenv("SSFTEVAL_CACHE", f->cache, 1);
    if (ssf_hub_init_from_env(&f->hub, &err)) return -1;
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

static int exists_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_local(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    assert_int_equal(ssf_model_resolve(g_models, &f->hub, &dir, &err), 0);
    assert_string_equal(dir, g_models);
    free(dir);
    assert_int_equal(ssf_model_resolve("/nonexistent/m", &f->hub, &dir, &err), -1);
    assert_null(dir);
    assert_string_equal(err.msg, "model directory /nonexistent/m not found; pass a directory "
                                 "with config.json or hf:ORG/NAME[@REV]");
    static const char *const bad[] = {"hf:",     "hf:org",   "hf:/name",
                                      "hf:org/", "hf:a/b/c", "hf:org/name@"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ssf_model_resolve(bad[i], &f->hub, &dir, &err), -1);
        assert_non_null(strstr(err.msg, "is not hf:ORG/NAME[@REVISION]"));
    }
}

static void test_sharded(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    int rc = ssf_model_resolve("hf:ssfteval-test/tiny@v1", &f->hub, &dir, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    char want[4096];
    snprintf(want, sizeof want, "%s/hub/models/ssfteval-test/tiny/v1", f->cache);
    assert_string_equal(dir, want);
    static const char *const files[] = {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja", /* where newer transformers save the template */
        "model.safetensors.index.json",
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        assert_true(exists_in(dir, files[i]));
    assert_false(exists_in(dir, "model.safetensors"));
    ssf_model *m;
    assert_int_equal(ssf_model_open(dir, &m, &err), 0);
    assert_int_equal(ssf_model_param_count(m), FX_PARAMS_UNTIED);
    assert_int_equal(ssf_model_file_count(m), 3);
    ssf_model_close(m);
    /* A second resolve is served from the cache, even offline. */
    size_t before = hubserver_request_count(g_server);
    free(dir);
    f->hub.offline = 1;
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/tiny@v1", &f->hub, &dir, &err), 0);
    assert_int_equal(hubserver_request_count(g_server), before);
    free(dir);
    /* Offline, another revision is not cached. */
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/tiny@v2", &f->hub, &dir, &err), -1);
    assert_non_null(strstr(err.msg, "model ssfteval-test/tiny@v2"));
    assert_non_null(strstr(err.msg, "offline"));
    /* the fix for a model: name it once online */
    assert_non_null(
        strstr(err.msg, "run `ssfteval model info hf:ssfteval-test/tiny@v2` once with network"));
}

static void test_single(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    int rc = ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &dir, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(dir, "/hub/models/ssfteval-test/single/main"));
    assert_true(exists_in(dir, "model.safetensors"));
    assert_false(exists_in(dir, "generation_config.json"));
    assert_false(exists_in(dir, "tokenizer_config.json"));
    assert_false(exists_in(dir, "chat_template.jinja"));
    ssf_model *m;
    assert_int_equal(ssf_model_open(dir, &m, &err), 0);
    assert_int_equal(ssf_model_param_count(m), FX_PARAMS_TIED);
    assert_int_equal(ssf_model_config_of(m)->n_eos, 1); /* config.json's alone */
    ssf_model_close(m);
    free(dir);
}

/* A repository with vocab.json and merges.txt and no tokenizer.json is
 * fetched with those, as a local directory with them is read. */
static void test_slow_tokenizer(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    int rc = ssf_model_resolve("hf:ssfteval-test/slowtok", &f->hub, &dir, &err);
    if (rc) fail_msg("%s", err.msg);
    assert_true(exists_in(dir, "vocab.json"));
    assert_true(exists_in(dir, "merges.txt"));
    assert_false(exists_in(dir, "tokenizer.json"));
    free(dir);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/notok", &f->hub, &dir, &err), -1);
    assert_non_null(strstr(err.msg, "model ssfteval-test/notok@main"));
    assert_non_null(strstr(err.msg, "tokenizer.json: not found (HTTP 404), nor vocab.json and "
                                    "merges.txt"));
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/noshard", &f->hub, &dir, &err), -1);
    assert_non_null(strstr(err.msg, "shard model-00002-of-00002.safetensors named by"));
    /* Only a 404 makes an optional file absent: a server error on one
     * fails (taken as absent, the model would run with other EOS ids). */
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/genfail", &f->hub, &dir, &err), -1);
    assert_non_null(strstr(err.msg, "generation_config.json"));
    assert_non_null(strstr(err.msg, "HTTP 503"));
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/nothere", &f->hub, &dir, &err), -1);
    assert_non_null(strstr(err.msg, "config.json"));
    assert_null(dir);
}

static void edit_file(const char *dir, const char *name, const char *from, const char *to);

/* dir/name cut to its first `keep` bytes. */
static void truncate_in(const char *dir, const char *name, off_t keep)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(truncate(path, keep), 0);
}

static void expect_opens(const char *dir)
{
    ssf_model *m;
    ssf_error err = {0};
    if (ssf_model_open(dir, &m, &err)) fail_msg("%s", err.msg);
    ssf_model_close(m);
}

/* A weights file cut short in the cache (a full disk under a copy) is
 * fetched again by the next resolve with network access, shard or single
 * file, its header cut or its data; offline it stays, and opening the
 * model names the damage. */
static void test_damaged_weights(void **state)
{
    struct fixture *f = *state;
    static const char *const specs[][2] = {
        {"hf:ssfteval-test/tiny@v1", "model-00002-of-00003.safetensors"},
        {"hf:ssfteval-test/single", "model.safetensors"},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        for (off_t keep = 4; keep <= 160; keep += 156) {
            char *dir;
            ssf_error err = {0};
            f->hub.offline = 0;
            assert_int_equal(ssf_model_resolve(specs[i][0], &f->hub, &dir, &err), 0);
            truncate_in(dir, specs[i][1], keep);
            f->hub.offline = 1;
            char *again;
            assert_int_equal(ssf_model_resolve(specs[i][0], &f->hub, &again, &err), 0);
            free(again);
            ssf_model *m;
            assert_int_equal(ssf_model_open(dir, &m, &err), -1);
            assert_non_null(strstr(err.msg, specs[i][1]));
            assert_non_null(strstr(err.msg, "truncated"));
            f->hub.offline = 0;
            size_t before = hubserver_request_count(g_server);
            int rc = ssf_model_resolve(specs[i][0], &f->hub, &again, &err);
            if (rc) fail_msg("%s", err.msg);
            assert_true(hubserver_request_count(g_server) > before);
            expect_opens(again);
            free(again);
            free(dir);
        }
    }
    /* The snapshot is fetched again whole: a branch that moved on gives
     * its config with its weights, not the old config beside new weights. */
    char *dir, *served = repo_dir("ssfteval-test/single");
    ssf_error err = {0};
    f->hub.offline = 0;
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &dir, &err), 0);
    edit_file(served, "config.json", "\"rope_theta\": 1000000.0", "\"rope_theta\": 500000.0");
    truncate_in(dir, "model.safetensors", 160);
    free(dir);
    int rc = ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &dir, &err);
    edit_file(served, "config.json", "\"rope_theta\": 500000.0", "\"rope_theta\": 1000000.0");
    if (rc) fail_msg("%s", err.msg);
    char *path = ssf_path_join(dir, "config.json"), *text;
    size_t len;
    assert_int_equal(ssf_read_file(path, &text, &len, &err), 0);
    assert_non_null(strstr(text, "\"rope_theta\": 500000.0"));
    expect_opens(dir);
    free(text);
    free(path);
    free(dir);
    free(served);
}

/* A weights file that does not open for another cause than damage (a dtype
 * ssfteval lacks) is not fetched again at every resolve; and a damaged one
 * with the Hub out of reach keeps the snapshot, the error naming both. */
static void test_damage_is_truncation(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    f->hub.offline = 0;
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/fp8", &f->hub, &dir, &err), 0);
    char *path = ssf_path_join(dir, "model.safetensors");
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    free(dir);
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/fp8", &f->hub, &dir, &err), 0);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino == after.st_ino); /* the same file, not a new download */
    free(path);
    free(dir);
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &dir, &err), 0);
    truncate_in(dir, "model.safetensors", 160);
    char *endpoint = f->hub.endpoint;
    f->hub.endpoint = ssf_xstrdup("http://127.0.0.1:1");
    char *again;
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &again, &err), -1);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_non_null(strstr(err.msg, "and fetching the model again failed: "));
    assert_non_null(strstr(err.msg, "cannot reach"));
    assert_true(exists_in(dir, "config.json")); /* the snapshot was put back */
    assert_true(exists_in(dir, "model.safetensors"));
    free(f->hub.endpoint);
    f->hub.endpoint = endpoint;
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &again, &err), 0);
    expect_opens(again);
    free(again);
    free(dir);
}

/* A snapshot fetched whole resolves with the Hub out of reach: the files
 * the repository lacked are kept as absent (they were asked for again, and
 * the resolve failed), while a repository never fetched still needs it. */
static void test_unreachable_after_fetch(void **state)
{
    struct fixture *f = *state;
    char *dir;
    ssf_error err = {0};
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &dir, &err), 0);
    free(dir);
    char *endpoint = f->hub.endpoint;
    f->hub.endpoint = ssf_xstrdup("http://127.0.0.1:1");
    int rc = ssf_model_resolve("hf:ssfteval-test/single", &f->hub, &dir, &err);
    if (rc) fail_msg("%s", err.msg);
    expect_opens(dir);
    free(dir);
    assert_int_equal(ssf_model_resolve("hf:ssfteval-test/tiny@v1", &f->hub, &dir, &err), -1);
    assert_non_null(strstr(err.msg, "cannot reach"));
    free(f->hub.endpoint);
    f->hub.endpoint = endpoint;
}

/* ---- the fingerprint -------------------------------------------------- */

static void fingerprint_of(const char *dir, char hex[65])
{
    ssf_model *m;
    ssf_error err = {0};
    if (ssf_model_open(dir, &m, &err) || ssf_model_fingerprint(m, NULL, NULL, hex, &err))
        fail_msg("%s", err.msg);
    ssf_model_close(m);
}

/* A file of dir with one text replaced. */
static void edit_file(const char *dir, const char *name, const char *from, const char *to)
{
    char *path = ssf_path_join(dir, name), *text;
    size_t len;
    ssf_error err = {0};
    assert_int_equal(ssf_read_file(path, &text, &len, &err), 0);
    char *at = strstr(text, from);
    assert_non_null(at);
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    fx_write_text(dir, name, b.data);
    ssf_buf_free(&b);
    free(text);
    free(path);
}

/* Each thing the engine reads changes the fingerprint, so that a run over
 * a checkpoint edited in it is another run: config values, and each of
 * the tokenizer's files, present or changed. */
static void test_fingerprint(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    fx_write_model(dir, "F32", 0, 1);
    char base[65], hex[65], again[65];
    fingerprint_of(dir, base);
    fingerprint_of(dir, again);
    assert_string_equal(base, again);
    /* (generation_config.json's eos ids are the ones the engine stops at) */
    static const char *const edits[][3] = {
        {"config.json", "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-05"},
        {"config.json", "\"rope_theta\": 1000000.0", "\"rope_theta\": 10000.0"},
        {"config.json", "\"bos_token_id\": 14", "\"bos_token_id\": 12"},
        /* tied embeddings over the same file: lm_head is then not read */
        {"config.json", "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true"},
        {"generation_config.json", "\"eos_token_id\": [15, 13]", "\"eos_token_id\": [15]"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        edit_file(dir, edits[i][0], edits[i][1], edits[i][2]);
        fingerprint_of(dir, hex);
        if (strcmp(hex, base) == 0)
            fail_msg("%s %s: the same fingerprint", edits[i][0], edits[i][2]);
        edit_file(dir, edits[i][0], edits[i][2], edits[i][1]);
        fingerprint_of(dir, hex);
        assert_string_equal(hex, base);
    }
    static const char *const files[] = {"tokenizer.json", "vocab.json", "merges.txt",
                                        "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char first[65];
        fx_write_text(dir, files[i], "{\"one\": 1}\n");
        fingerprint_of(dir, first);
        if (strcmp(first, base) == 0) fail_msg("%s added: the same fingerprint", files[i]);
        fx_write_text(dir, files[i], "{\"two\": 2}\n");
        fingerprint_of(dir, hex);
        if (strcmp(hex, first) == 0) fail_msg("%s edited: the same fingerprint", files[i]);
        char *path = ssf_path_join(dir, files[i]);
        unlink(path);
        free(path);
    }
    fingerprint_of(dir, hex);
    assert_string_equal(hex, base);
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    if (!shared_available()) return 77; /* the test Hub serves ../shared/data */
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {T(test_local),
                                       T(test_sharded),
                                       T(test_single),
                                       T(test_errors),
                                       T(test_slow_tokenizer),
                                       T(test_damaged_weights),
                                       T(test_unreachable_after_fetch),
                                       T(test_damage_is_truncation),
                                       cmocka_unit_test(test_fingerprint)};
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
