/*
 * test_tasks.c - the built-in tasks load with the right counts and golds
 * and carry the reference's sampling, metrics and groups; specs' defaults;
 * GPQA placement follows the reference (and the hash order depends on the
 * row alone); bad specs and bad data give one clear line naming the problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ssfteval/records.h"
#include "ssfteval/task.h"
#include "test-support.h"

static ssf_registry registry;
static char *data_dir;

static int setup(void **state)
{
    (void)state;
    ssf_error err;
    if (ssf_registry_init(&registry, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    data_dir = shared_path("data");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ssf_registry_free(&registry);
    free(data_dir);
    return 0;
}

static void load(const char *name, int order, ssf_docs *docs)
{
    const ssf_task *t = ssf_registry_find(&registry, name);
    assert_non_null(t);
    ssf_data_options o = {.data_dir = data_dir, .order_override = order};
    ssf_error err;
    if (ssf_task_load_docs(t, &o, docs, &err)) fail_msg("%s", err.msg);
}

static void test_counts(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t n;
    } want[] = {{"aime24", 30}, {"aime25", 30}, {"math_500", 500}, {"gpqa_diamond", 198}};
    assert_int_equal(registry.n, 4);
    for (size_t i = 0; i < 4; i++) {
        ssf_docs docs;
        load(want[i].name, -1, &docs);
        assert_int_equal(docs.n, want[i].n);
        ssf_docs_free(&docs);
    }
}

static void test_aime_golds(void **state)
{
    (void)state;
    static const char *aime25[] = {"70",  "588", "16",  "117", "279", "504", "821", "77",
                                   "62",  "81",  "259", "510", "204", "60",  "735", "468",
                                   "49",  "82",  "106", "336", "293", "237", "610", "149",
                                   "907", "113", "19",  "248", "104", "240"};
    ssf_docs docs;
    load("aime25", -1, &docs);
    for (size_t i = 0; i < 30; i++)
        assert_string_equal(docs.items[i].gold, aime25[i]);
    assert_string_equal(docs.items[0].id, "2025-I-1");
    ssf_docs_free(&docs);
    load("aime24", -1, &docs);
    assert_string_equal(docs.items[0].gold, "204");
    assert_string_equal(docs.items[29].id, "2024-II-15");
    ssf_docs_free(&docs);
}

typedef struct math_rows {
    json_t *rows;
} math_rows;

static int keep_row(json_t *rec, size_t number, size_t line, void *ud)
{
    (void)number;
    (void)line;
    json_array_append(((math_rows *)ud)->rows, rec);
    return 0;
}

/* The gold is the answer field, and equals the last box of the solution. */
static void test_math500_golds(void **state)
{
    (void)state;
    math_rows m = {json_array()};
    char *path = shared_path("data/math500.jsonl");
    ssf_error err;
    assert_int_equal(ssf_records_read_file(path, SSF_FORMAT_JSONL, keep_row, &m, &err), 0);
    ssf_docs docs;
    load("math_500", -1, &docs);
    assert_int_equal(json_array_size(m.rows), docs.n);
    for (size_t i = 0; i < docs.n; i++) {
        json_t *row = json_array_get(m.rows, i);
        const char *answer = json_string_value(json_object_get(row, "answer"));
        assert_string_equal(docs.items[i].gold, answer);
        char *boxed = ssf_last_boxed(json_string_value(json_object_get(row, "solution")));
        assert_non_null(boxed);
        assert_string_equal(boxed, answer);
        free(boxed);
        assert_string_equal(docs.items[i].id, json_string_value(json_object_get(row, "unique_id")));
    }
    ssf_docs_free(&docs);
    json_decref(m.rows);
    free(path);
}

static void test_gpqa_reference_letters(void **state)
{
    (void)state;
    char *path = shared_path("cases/rng_reference.json");
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    assert_non_null(ref);
    const char *letters =
        json_string_value(json_object_get(ref, "gpqa_gold_letters_seed1234_first198"));
    ssf_docs docs;
    load("gpqa_diamond", -1, &docs);
    for (size_t i = 0; i < docs.n; i++) {
        const ssf_doc *d = &docs.items[i];
        assert_int_equal(d->gold[0], letters[i]);
        assert_int_equal(d->gold_index, letters[i] - 'A');
        assert_int_equal(d->n_choices, 4);
    }
    ssf_docs_free(&docs);
    json_decref(ref);
    free(path);
}

static int find_doc(const ssf_docs *docs, const char *id)
{
    for (size_t i = 0; i < docs->n; i++)
        if (strcmp(docs->items[i].id, id) == 0) return (int)i;
    return -1;
}

/* The hash placement of a row must not depend on which rows are loaded or
 * in what order: a file with every third row in reverse order gives each of
 * its rows the same choices as the full set. */
static void test_gpqa_hash_order(void **state)
{
    (void)state;
    ssf_docs full, part;
    load("gpqa_diamond", SSF_ORDER_HASH, &full);
    /* The letters tools/gpqa-hash-order.py works out from the Record IDs
     * apart from this code: a change of the hash moves them. */
    size_t per_letter[4] = {0};
    char letters[256];
    assert_int_equal(full.n, 198);
    for (size_t i = 0; i < full.n; i++) {
        per_letter[full.items[i].gold_index]++;
        letters[i] = (char)('A' + full.items[i].gold_index);
    }
    assert_int_equal(per_letter[0], 54);
    assert_int_equal(per_letter[1], 45);
    assert_int_equal(per_letter[2], 53);
    assert_int_equal(per_letter[3], 46);
    char hex[65];
    ssf_sha256_hex(letters, full.n, hex);
    assert_string_equal(hex, "06487d715ad8073a2723bc0ffd9ca944775b369cbadb27a5c4edbf492e6fe469");

    char *dir = make_temp_dir();
    char *csv_path = NULL;
    {
        char *zip = shared_path("data/gpqa/dataset.zip");
        char *csv;
        size_t len;
        ssf_error err;
        assert_int_equal(ssf_zip_read_member(zip, "dataset/gpqa_diamond.csv",
                                             "deserted-untie-orchid", &csv, &len, &err),
                         0);
        /* Only the columns the task reads, every third row, reversed. */
        json_t *rows = json_array();
        math_rows m = {rows};
        assert_int_equal(
            ssf_records_read_memory(csv, len, "gpqa", SSF_FORMAT_CSV, keep_row, &m, &err), 0);
        json_t *subset = json_array();
        for (size_t i = json_array_size(rows); i-- > 0;)
            if (i % 3 == 0) json_array_append(subset, json_array_get(rows, i));
        char *text = json_dumps(subset, 0);
        free(csv_path);
        csv_path = write_temp_file(dir, "subset.json", text);
        free(text);
        json_decref(subset);
        json_decref(rows);
        free(csv);
        free(zip);
    }
    ssf_buf spec = {0};
    ssf_buf_printf(&spec,
                   "{\"name\":\"gpqa_subset\",\"answer_type\":\"letters\","
                   "\"source\":{\"local\":{\"path\":\"subset.json\"}},"
                   "\"fields\":{\"id\":\"Record ID\",\"question\":\"Question\","
                   "\"correct\":\"Correct Answer\",\"incorrect\":[\"Incorrect Answer 1\","
                   "\"Incorrect Answer 2\",\"Incorrect Answer 3\"]},"
                   "\"choices\":{\"order\":\"hash\"},\"prompt\":\"{{question}} {{A}} {{B}} {{C}} "
                   "{{D}}\"}");
    ssf_task *t;
    ssf_error err;
    assert_int_equal(ssf_task_parse(spec.data, "subset spec", &t, &err), 0);
    ssf_data_options o = {.data_dir = dir, .order_override = -1};
    if (ssf_task_load_docs(t, &o, &part, &err)) fail_msg("%s", err.msg);
    assert_int_equal(part.n, 66);
    for (size_t i = 0; i < part.n; i++) {
        int k = find_doc(&full, part.items[i].id);
        assert_true(k >= 0);
        assert_int_equal(part.items[i].gold_index, full.items[k].gold_index);
        for (size_t c = 0; c < 4; c++)
            assert_string_equal(part.items[i].choices[c], full.items[k].choices[c]);
    }
    ssf_docs_free(&part);
    ssf_docs_free(&full);
    ssf_task_free(t);
    ssf_buf_free(&spec);
    free(csv_path);
    remove_tree(dir);
    free(dir);
}

/* A minimal valid math spec with one member replaced. */
#define SPEC_HEAD "{\"name\":\"bad\",\"answer_type\":\"math\","
#define SPEC_SOURCE "\"source\":{\"local\":{\"path\":\"d.jsonl\"}},"
#define SPEC_FIELDS "\"fields\":{\"question\":\"q\",\"answer\":\"a\"},"
#define SPEC_PROMPT "\"prompt\":\"{{question}}\""

static void test_bad_specs(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *expect; /* substrings, '|'-separated */
    } cases[] = {
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"colour\":1}",
         "unknown key 'colour'|expected one of"},
        {SPEC_HEAD SPEC_SOURCE SPEC_PROMPT "}", "missing key 'fields'"},
        {SPEC_HEAD SPEC_SOURCE "\"fields\":{\"answer\":\"a\"}," SPEC_PROMPT "}",
         "missing key 'fields.question'"},
        {SPEC_HEAD SPEC_SOURCE "\"fields\":{\"question\":\"q\"}," SPEC_PROMPT "}",
         "'fields.answer'"},
        {SPEC_HEAD "\"source\":{\"local\":{\"path\":\"d\",\"zipp\":1}}," SPEC_FIELDS SPEC_PROMPT
                   "}",
         "unknown key 'source.local.zipp'; expected one of: path, zip, member, password, sha256"},
        {SPEC_HEAD
         "\"source\":{\"local\":{\"path\":\"../secret/creds.csv\"}}," SPEC_FIELDS SPEC_PROMPT "}",
         "key 'source.local.path' must be a path inside the data directory|../secret"},
        {SPEC_HEAD
         "\"source\":{\"local\":{\"path\":\"sub/../../x.jsonl\"}}," SPEC_FIELDS SPEC_PROMPT "}",
         "source.local.path"},
        {SPEC_HEAD "\"source\":{\"local\":{\"path\":\"/etc/x.json\"}}," SPEC_FIELDS SPEC_PROMPT "}",
         "source.local.path"},
        {SPEC_HEAD "\"source\":{\"local\":{\"path\":\"d.csv\",\"zip\":\"../"
                   "d.zip\",\"member\":\"m\"}}," SPEC_FIELDS SPEC_PROMPT "}",
         "key 'source.local.zip' must be"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS "\"prompt\":7}",
         "key 'prompt' has the wrong type; expected the prompt template with {{question}}"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS "\"prompt\":\"{{question}} {{A}}\"}",
         "{{A}}|key 'prompt'"},
        {"{\"name\":\"bad\",\"answer_type\":\"essay\"," SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "}",
         "'answer_type' is \"essay\""},
        {SPEC_HEAD "\"source\":{}," SPEC_FIELDS SPEC_PROMPT "}", "'source.local' or"},
        {SPEC_HEAD
         "\"source\":{\"hub\":{\"repo\":\"norepo\",\"path\":\"x\"}}," SPEC_FIELDS SPEC_PROMPT "}",
         "owner/name"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"top_p\":1.5}}",
         "generation.top_p"},
        /* The ends of each range: what the command line refuses too. */
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"top_p\":0}}",
         "generation.top_p"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"temperature\":-0.1}}",
         "'generation.temperature' must be a number in [0, 100]"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"max_new_tokens\":0}}",
         "'generation.max_new_tokens' must be an integer in [1, 1e+07]"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"min_p\":1.5}}",
         "'generation.min_p' must be a number in [0, 1]"},
        /* Past what the int the devices take holds (top_k 2^32 + 1 was greedy on the GPU),
         * past what a long holds, and not integers. */
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"top_k\":4294967297}}",
         "'generation.top_k' must be an integer in [0, 1e+09]"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"max_new_tokens\":1e30}}",
         "generation.max_new_tokens"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"top_k\":2.5}}",
         "generation.top_k"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"generation\":{\"min_p\":\"0.1\"}}",
         "generation.min_p"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"metrics\":[\"bogus@x\"]}",
         "key 'metrics': metric 'bogus@x'"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"metrics\":[1]}", "'metrics'"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT, "invalid JSON"},
        {"[]", "must be a JSON object"},
        {"{\"name\":\"Bad Name\",\"answer_type\":\"math\"," SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "}",
         "key 'name'"},
        {SPEC_HEAD
         "\"source\":{\"local\":{\"path\":\"d.csv\",\"zip\":\"d.zip\"}}," SPEC_FIELDS SPEC_PROMPT
         "}",
         "missing key 'source.local.member'"},
        {SPEC_HEAD
         "\"source\":{\"local\":{\"path\":\"d\",\"sha256\":"
         "\"000000000000000000000000000000000000000000000000000000000000000\"}}," SPEC_FIELDS
             SPEC_PROMPT "}",
         "'source.local.sha256' must be 64 lowercase hex digits"},
        /* Digests are compared as lowercase hex: an uppercase pin would
         * never match its file. */
        {SPEC_HEAD
         "\"source\":{\"local\":{\"path\":\"d\",\"sha256\":"
         "\"35DC41080A3680858B27FA7E0533D2D547825316FC5DAFE5D316F4CCC5A06132\"}}," SPEC_FIELDS
             SPEC_PROMPT "}",
         "'source.local.sha256' must be 64 lowercase hex digits"},
        {SPEC_HEAD
         "\"source\":{\"hub\":{\"repo\":\"o/"
         "n\",\"path\":\"x\",\"sha256\":"
         "\"000000000000000000000000000000000000000000000000000000000000000\"}}," SPEC_FIELDS
             SPEC_PROMPT "}",
         "'source.hub.sha256' must be 64 lowercase hex digits"},
        {SPEC_HEAD "\"source\":{\"hub\":{\"repo\":\"o/n\",\"path\":\"x\",\"rows\":{"
                   "\"config\":\"c\",\"split\":\"s\"}}}," SPEC_FIELDS SPEC_PROMPT "}",
         "'source.hub' has both 'rows' and 'path'; keep one"},
        {SPEC_HEAD "\"source\":{\"hub\":{\"repo\":\"o/n\"}}," SPEC_FIELDS SPEC_PROMPT "}",
         "missing key 'source.hub.path'"},
        {SPEC_HEAD
         "\"source\":{\"local\":{\"path\":\"d\"},\"documents\":-1}," SPEC_FIELDS SPEC_PROMPT "}",
         "'source.documents' must be >= 0"},
        {SPEC_HEAD SPEC_SOURCE "\"fields\":{\"question\":\"q\",\"answer\":\"a\",\"gold_"
                               "extract\":\"first\"}," SPEC_PROMPT "}",
         "'fields.gold_extract' is \"first\"; expected \"none\" or \"last_boxed\""},
        {"{\"name\":\"bad\",\"answer_type\":\"letters\"," SPEC_SOURCE
         "\"fields\":{\"question\":\"q\",\"correct\":\"c\"}," SPEC_PROMPT "}",
         "missing key 'fields.correct' or 'fields.incorrect'"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"choices\":{\"order\":\"random\"}}",
         "'choices.order' is \"random\""},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT
         ",\"choices\":{\"order\":\"hash\",\"seed\":-1}}",
         "'choices.seed' must be >= 0"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"groups\":0}",
         "'groups' must be in 1..64"},
        {SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT ",\"groups\":65}",
         "'groups' must be in 1..64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssf_task *t = NULL;
        ssf_error err = {0};
        if (ssf_task_parse(cases[i].json, "spec.json", &t, &err) == 0)
            fail_msg("case %zu was accepted: %s", i, cases[i].json);
        assert_null(t);
        assert_non_null(strstr(err.msg, "spec.json"));
        assert_null(strchr(err.msg, '\n'));
        char want[256];
        snprintf(want, sizeof want, "%s", cases[i].expect);
        for (char *tok = strtok(want, "|"); tok; tok = strtok(NULL, "|"))
            if (!strstr(err.msg, tok)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, tok);
    }
}

static void test_task_file_registry(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_temp_file(
        dir, "tasks.json",
        "[" SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "},"
        "{\"name\":\"bad3\",\"answer_type\":\"math\"," SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "},"
        "{\"name\":\"aime24\",\"answer_type\":\"math\"," SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "}]");
    ssf_registry reg;
    ssf_error err;
    assert_int_equal(ssf_registry_init(&reg, &err), 0);
    assert_int_equal(ssf_registry_add_file(&reg, path, &err), -1);
    /* The entry of the file, and where the name was taken. */
    assert_non_null(strstr(err.msg, "tasks.json[2]: task 'aime24' is already defined (built-in "
                                    "tasks/aime24.json)"));
    /* All or nothing: the entries before were taken back, so the file
     * corrected goes in (it used to say 'bad' was already defined). */
    assert_null(ssf_registry_find(&reg, "bad"));
    assert_null(ssf_registry_find(&reg, "bad3"));
    size_t before = reg.n;
    free(path);
    path = write_temp_file(
        dir, "tasks.json",
        "[" SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "},"
        "{\"name\":\"bad2\",\"answer_type\":\"math\"," SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "}]");
    assert_int_equal(ssf_registry_add_file(&reg, path, &err), 0);
    assert_int_equal(reg.n, before + 2);
    assert_non_null(ssf_registry_find(&reg, "bad"));
    assert_int_equal(ssf_registry_add_file(&reg, "/nonexistent/tasks.json", &err), -1);
    assert_non_null(strstr(err.msg, "--task-file"));
    assert_non_null(strstr(err.msg, "/nonexistent/tasks.json"));
    ssf_registry_free(&reg);
    free(path);
    remove_tree(dir);
    free(dir);
}

/* Loads a one-file task over data text; returns the error or "" (static). */
static const char *load_error(const char *spec_json, const char *file, const char *data)
{
    static ssf_error err;
    char *dir = make_temp_dir();
    if (data) free(write_temp_file(dir, file, data));
    ssf_task *t;
    if (ssf_task_parse(spec_json, "spec.json", &t, &err)) fail_msg("%s", err.msg);
    ssf_data_options o = {.data_dir = dir, .order_override = -1};
    ssf_docs docs;
    int rc = ssf_task_load_docs(t, &o, &docs, &err);
    if (rc == 0) {
        ssf_docs_free(&docs);
        err.msg[0] = '\0';
    }
    ssf_task_free(t);
    remove_tree(dir);
    free(dir);
    return err.msg;
}

/* The documents a spec loads from one data file (fails the test if not). */
static void load_spec_docs(const char *spec_json, const char *file, const char *data, ssf_task **t,
                           ssf_docs *docs)
{
    char *dir = make_temp_dir();
    free(write_temp_file(dir, file, data));
    ssf_error err;
    if (ssf_task_parse(spec_json, "spec.json", t, &err)) fail_msg("%s", err.msg);
    ssf_data_options o = {.data_dir = dir, .order_override = -1};
    if (ssf_task_load_docs(*t, &o, docs, &err)) fail_msg("%s", err.msg);
    remove_tree(dir);
    free(dir);
}

/* A letters task of "incorrect" fields i1..iN, in hash order. */
static char *letters_spec(int n_incorrect)
{
    ssf_buf b = {0};
    ssf_buf_puts(&b, "{\"name\":\"many\",\"answer_type\":\"letters\"," SPEC_SOURCE
                     "\"fields\":{\"question\":\"q\",\"correct\":\"c\",\"incorrect\":[");
    for (int i = 1; i <= n_incorrect; i++)
        ssf_buf_printf(&b, "%s\"i%d\"", i > 1 ? "," : "", i);
    ssf_buf_puts(&b, "]},\"prompt\":\"{{question}}");
    for (int i = 0; i <= n_incorrect && i < 26; i++)
        ssf_buf_printf(&b, " {{%c}}", 'A' + i);
    ssf_buf_puts(&b, "\",\"choices\":{\"order\":\"hash\"}}");
    return ssf_buf_take(&b);
}

/* Letters run A-Z: 25 incorrect choices load as 26 lettered ones; 26 would
 * pass the letters (and the arrays sized for them) and are refused. */
static void test_letters_limit(void **state)
{
    (void)state;
    char *spec = letters_spec(26);
    ssf_task *t = NULL;
    ssf_error err;
    assert_int_equal(ssf_task_parse(spec, "spec.json", &t, &err), -1);
    assert_non_null(strstr(err.msg, "key 'fields.incorrect' lists 26 fields; at most 25"));
    free(spec);

    spec = letters_spec(25);
    ssf_buf row = {0};
    ssf_buf_puts(&row, "{\"q\":\"which?\",\"c\":\"right\"");
    for (int i = 1; i <= 25; i++)
        ssf_buf_printf(&row, ",\"i%d\":\"wrong %d\"", i, i);
    ssf_buf_puts(&row, "}\n");
    ssf_docs docs;
    load_spec_docs(spec, "d.jsonl", row.data, &t, &docs);
    assert_int_equal(docs.n, 1);
    const ssf_doc *d = &docs.items[0];
    assert_int_equal(d->n_choices, 26);
    assert_true(d->gold_index >= 0 && d->gold_index < 26);
    assert_string_equal(d->choices[d->gold_index], "right");
    char letter[2] = {(char)('A' + d->gold_index), 0};
    assert_string_equal(d->gold, letter);
    ssf_docs_free(&docs);
    ssf_task_free(t);
    ssf_buf_free(&row);
    free(spec);
}

/* fields.gold_extract "last_boxed" takes the gold from a worked solution's
 * last box, and refuses a row without one. */
static void test_gold_from_last_box(void **state)
{
    (void)state;
    const char *spec = SPEC_HEAD SPEC_SOURCE "\"fields\":{\"question\":\"q\",\"answer\":\"a\","
                                             "\"gold_extract\":\"last_boxed\"}," SPEC_PROMPT "}";
    ssf_task *t;
    ssf_docs docs;
    load_spec_docs(spec, "d.jsonl",
                   "{\"q\":\"x\",\"a\":\"first \\\\boxed{1}, so \\\\boxed{\\\\frac12}\"}\n", &t,
                   &docs);
    assert_string_equal(docs.items[0].gold, "\\frac12");
    ssf_docs_free(&docs);
    ssf_task_free(t);
    const char *e = load_error(spec, "d.jsonl", "{\"q\":\"x\",\"a\":\"7\"}\n");
    assert_non_null(strstr(e, "has no \\boxed{} answer"));
}

static void test_bad_data(void **state)
{
    (void)state;
    const char *spec = SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "}";
    const char *counted = SPEC_HEAD
        "\"source\":{\"local\":{\"path\":\"d.jsonl\"},\"documents\":3}," SPEC_FIELDS SPEC_PROMPT
        "}";
    const char *hashed = SPEC_HEAD
        "\"source\":{\"local\":{\"path\":\"d.jsonl\",\"sha256\":"
        "\"0000000000000000000000000000000000000000000000000000000000000000\"}}," SPEC_FIELDS
            SPEC_PROMPT "}";
    assert_string_equal(load_error(spec, "d.jsonl", "{\"q\":\"x\",\"a\":\"1\"}\n"), "");
    const char *e =
        load_error(spec, "d.jsonl", "{\"q\":\"x\",\"a\":\"1\"}\n{\"q\":\"y\",\"a\":2}\n{\"q\":\n");
    assert_non_null(strstr(e, "d.jsonl:3"));
    e = load_error(spec, "d.jsonl", "{\"q\":\"x\"}\n");
    assert_non_null(strstr(e, "field 'a' is missing"));
    assert_non_null(strstr(e, "record 1"));
    e = load_error(spec, "d.jsonl", NULL);
    assert_non_null(strstr(e, "data not found"));
    assert_non_null(strstr(e, "d.jsonl"));
    e = load_error(counted, "d.jsonl", "{\"q\":\"x\",\"a\":\"1\"}\n");
    assert_non_null(strstr(e, "1 documents, task bad expects 3"));
    e = load_error(
        counted, "d.jsonl",
        "{\"q\":\"x\",\"a\":\"1\"}\n{\"q\":\"y\",\"a\":\"2\"}\n{\"q\":\"z\",\"a\":\"3\"}\n"
        "{\"q\":\"x\",\"a\":\"1\"}\n");
    assert_non_null(strstr(e, "4 documents, task bad expects 3")); /* a row too many */
    e = load_error(hashed, "d.jsonl", "{\"q\":\"x\",\"a\":\"1\"}\n");
    assert_non_null(strstr(e, "checksum mismatch"));
}

/* A spec whose rows are a plain file p.csv or, when that is absent, the GPQA
 * member in g.zip; `extra` goes into source.local. */
#define ZIP_SPEC(extra)                                                                            \
    "{\"name\":\"z\",\"answer_type\":\"math\",\"source\":{\"local\":{\"path\":\"p.csv\","          \
    "\"zip\":\"g.zip\",\"member\":\"dataset/gpqa_diamond.csv\",\"password\":"                      \
    "\"deserted-untie-orchid\"" extra "}},\"fields\":{\"question\":\"Question\",\"answer\":"       \
    "\"Correct Answer\"}," SPEC_PROMPT "}"

#define SHA256_ZEROS "0000000000000000000000000000000000000000000000000000000000000000"

/* Loads spec from data directory dir; returns 0 or -1 with err set. */
static int load_from(const char *spec, const char *dir, ssf_docs *docs, ssf_error *err)
{
    ssf_task *t;
    if (ssf_task_parse(spec, "spec.json", &t, err)) fail_msg("%s", err->msg);
    ssf_data_options o = {.data_dir = dir, .order_override = -1};
    int rc = ssf_task_load_docs(t, &o, docs, err);
    ssf_task_free(t);
    return rc;
}

/* source.local's zip is read when its path is absent, and then the member is
 * what errors and the documents' origin name; the checksum covers it.  (Only
 * counts and names are checked: GPQA's rows stay out of the logs.) */
static void test_zip_source(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *zip = shared_path("data/gpqa/dataset.zip");
    ssf_buf link = {0}, want = {0};
    ssf_buf_printf(&link, "%s/g.zip", dir);
    ssf_docs docs;
    ssf_error err;

    assert_int_equal(load_from(ZIP_SPEC(""), dir, &docs, &err), -1);
    ssf_buf_printf(&want, "neither %s/p.csv nor %s exists", dir, link.data);
    if (!strstr(err.msg, want.data)) fail_msg("%s", err.msg);

    assert_int_equal(symlink(zip, link.data), 0);
    ssf_buf_reset(&want);
    ssf_buf_printf(&want, "%s:dataset/gpqa_diamond.csv", link.data);
    if (load_from(ZIP_SPEC(""), dir, &docs, &err)) fail_msg("%s", err.msg);
    assert_int_equal(docs.n, 198);
    assert_string_equal(docs.origin, want.data);
    ssf_docs_free(&docs);

    assert_int_equal(load_from(ZIP_SPEC(",\"sha256\":\"" SHA256_ZEROS "\""), dir, &docs, &err), -1);
    ssf_buf_puts(&want, ": checksum mismatch");
    if (!strstr(err.msg, want.data)) fail_msg("%s", err.msg);

    /* The plain file, when there is one, is read instead. */
    char *csv = write_temp_file(dir, "p.csv", "Question,Correct Answer\nq,a\n");
    if (load_from(ZIP_SPEC(""), dir, &docs, &err)) fail_msg("%s", err.msg);
    assert_int_equal(docs.n, 1);
    assert_string_equal(docs.origin, csv);
    ssf_docs_free(&docs);

    free(csv);
    ssf_buf_free(&want);
    ssf_buf_free(&link);
    free(zip);
    remove_tree(dir);
    free(dir);
}

static void test_last_boxed(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"so \\boxed{12}", "12"},
        {"\\boxed{1} then \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"},
        {"\\fbox{7} and \\boxed{8}", "8"},
        {"\\boxed{8} and \\fbox{7}", "8"}, /* \fbox only without a \boxed, as Hendrycks */
        {"\\fbox{7}", "7"},
        {"$\\boxed{12}$. {\\setlength{\\fboxsep}{0pt} x}", "12"}, /* \fboxsep is no box */
        {"\\boxed{5} \\boxeds", "5"},
        {"\\boxed 7 then {x}", "7"},
        {"so \\boxed 57.", "57"},
        {"so $\\boxed 7$.", "7"}, /* the run stops at a '$', as Hendrycks' split */
        {"so \\boxed.", NULL},    /* a sentence's stop is no answer */
        {"\\boxed{\\{1,2\\}}", "\\{1,2\\}"},
        {"\\boxed {3}", "3"},
        {"no box", NULL},
        {"\\boxed{unclosed", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = ssf_last_boxed(cases[i].text);
        if (cases[i].want) {
            assert_non_null(got);
            assert_string_equal(got, cases[i].want);
        } else {
            assert_null(got);
        }
        free(got);
    }
}

/* A four-choice letters spec over rows q, c, i1..i3 in `order` (seed
 * `seed` for mt19937), with or without an id field. */
static char *order_spec(const char *order, int seed, int with_id)
{
    ssf_buf b = {0};
    ssf_buf_printf(&b,
                   "{\"name\":\"ord\",\"answer_type\":\"letters\"," SPEC_SOURCE
                   "\"fields\":{\"question\":\"q\",\"correct\":\"c\",\"incorrect\":[\"i1\",\"i2\","
                   "\"i3\"]%s},\"prompt\":\"{{question}} {{A}} {{B}} {{C}} {{D}}\","
                   "\"choices\":{\"order\":\"%s\",\"seed\":%d}}",
                   with_id ? ",\"id\":\"n\"" : "", order, seed);
    return ssf_buf_take(&b);
}

/* The gold letters of 8 rows loaded under spec, --gpqa-order `override`
 * (-1: the task's own), as a string. */
static void gold_letters(const char *spec, int override, int with_id, char out[9])
{
    ssf_buf rows = {0};
    for (int i = 0; i < 8; i++) {
        ssf_buf_printf(
            &rows, "{\"q\":\"q%d\",\"c\":\"right\",\"i1\":\"w1\",\"i2\":\"w2\",\"i3\":\"w3\"", i);
        if (with_id) ssf_buf_printf(&rows, ",\"n\":\"%d\"", i);
        ssf_buf_puts(&rows, "}\n");
    }
    char *dir = make_temp_dir();
    free(write_temp_file(dir, "d.jsonl", rows.data));
    ssf_task *t;
    ssf_error err;
    if (ssf_task_parse(spec, "spec.json", &t, &err)) fail_msg("%s", err.msg);
    ssf_data_options o = {.data_dir = dir, .order_override = override};
    ssf_docs docs;
    if (ssf_task_load_docs(t, &o, &docs, &err)) fail_msg("%s", err.msg);
    assert_int_equal(docs.n, 8);
    for (size_t i = 0; i < 8; i++) {
        assert_string_equal(docs.items[i].choices[docs.items[i].gold_index], "right");
        out[i] = docs.items[i].gold[0];
    }
    out[8] = '\0';
    ssf_docs_free(&docs);
    ssf_task_free(t);
    remove_tree(dir);
    free(dir);
    ssf_buf_free(&rows);
}

/* mt19937 placement follows the spec's seed (CPython: random.seed(42) and
 * randint(0, 3) a row give AACBBBAA; seed 1234 DAAAAAAC), and
 * --gpqa-order mt19937 takes it over a task whose own order is another;
 * a row's id defaults to its number from 0, the hash order's input. */
static void test_choice_orders(void **state)
{
    (void)state;
    char letters[9], with_ids[9];
    char *spec = order_spec("mt19937", 42, 0);
    gold_letters(spec, -1, 0, letters);
    assert_string_equal(letters, "AACBBBAA");
    free(spec);
    spec = order_spec("fixed", 1234, 0);
    gold_letters(spec, -1, 0, letters);
    assert_string_equal(letters, "AAAAAAAA");
    gold_letters(spec, SSF_ORDER_MT19937, 0, letters);
    assert_string_equal(letters, "DAAAAAAC");
    free(spec);
    /* without an id field the ids are "0".."7": the hash order of rows
     * whose id column holds those */
    spec = order_spec("hash", 0, 0);
    gold_letters(spec, -1, 0, letters);
    free(spec);
    spec = order_spec("hash", 0, 1);
    gold_letters(spec, -1, 1, with_ids);
    free(spec);
    assert_string_equal(letters, with_ids);
    ssf_task *t;
    ssf_docs docs;
    load_spec_docs(SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT "}", "d.jsonl",
                   "{\"q\":\"x\",\"a\":\"1\"}\n{\"q\":\"y\",\"a\":\"2\"}\n", &t, &docs);
    assert_string_equal(docs.items[0].id, "0");
    assert_string_equal(docs.items[1].id, "1");
    ssf_docs_free(&docs);
    ssf_task_free(t);
}

/* The built-in specs run the reference protocol (ssft-protocol.md §2.3,
 * §3): 32768 new tokens at temperature 0.7 and top-p 0.95 with nothing else
 * set, the README's three metrics, 11 native Cons@6 groups for AIME (66
 * samples a question) and 6 for MATH-500 and GPQA (36), the datasets' Hub
 * repositories.  An edit of tasks/NAME.json that changes any of them changes
 * every number a run reports. */
static void test_builtin_specs(void **state)
{
    (void)state;
    static const struct {
        const char *name, *repo, *split; /* split: read through the /rows API */
        ssf_answer_type type;
        int groups;
    } want[] = {
        {"aime24", "HuggingFaceH4/aime_2024", "train", SSF_ANSWER_MATH, 11},
        {"aime25", "yentinglin/aime_2025", "train", SSF_ANSWER_MATH, 11},
        {"math_500", "HuggingFaceH4/MATH-500", NULL, SSF_ANSWER_MATH, 6},
        {"gpqa_diamond", "Idavidrein/gpqa", NULL, SSF_ANSWER_LETTERS, 6},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const ssf_task *t = ssf_registry_find(&registry, want[i].name);
        assert_non_null(t);
        char origin[64];
        snprintf(origin, sizeof origin, "built-in tasks/%s.json", want[i].name);
        assert_string_equal(t->origin, origin);
        assert_int_equal(t->answer_type, want[i].type);
        assert_int_equal(t->groups, want[i].groups);
        assert_string_equal(t->source.hub_repo, want[i].repo);
        if (want[i].split) {
            assert_string_equal(t->source.rows_config, "default");
            assert_string_equal(t->source.rows_split, want[i].split);
        }
        assert_int_equal(t->generation.max_new_tokens, 32768);
        assert_true(t->generation.temperature == 0.7);
        assert_true(t->generation.top_p == 0.95);
        assert_int_equal(t->generation.top_k, -1);
        assert_true(t->generation.min_p < 0);
        assert_int_equal(t->n_metrics, 3);
        assert_string_equal(t->metrics[0], "pass@1");
        assert_string_equal(t->metrics[1], "cons@6:native");
        assert_string_equal(t->metrics[2], "cons@32");
    }
}

/* What a spec leaves out takes its documented default, and what it gives
 * is taken as given. */
static void test_spec_defaults_and_values(void **state)
{
    (void)state;
    ssf_task *t = NULL;
    ssf_error err;
    /* A letters task without "choices" keeps the file's order (the correct
     * answer first), a hub path without a revision reads main. */
    assert_int_equal(
        ssf_task_parse("{\"name\":\"gpqa:x.y-z_1\",\"answer_type\":\"letters\","
                       "\"source\":{\"hub\":{\"repo\":\"o/n\",\"path\":\"d.csv\",\"gated\":false}},"
                       "\"fields\":{\"question\":\"q\",\"correct\":\"c\",\"incorrect\":[\"i\"]},"
                       "\"prompt\":\"{{question}} {{A}} {{B}}\"}",
                       "spec.json", &t, &err),
        0);
    assert_string_equal(t->name, "gpqa:x.y-z_1"); /* as the reference names its GPQA tasks */
    assert_string_equal(t->description, "");
    assert_int_equal(t->order, SSF_ORDER_FIXED);
    assert_string_equal(t->source.hub_revision, "main");
    assert_int_equal(t->source.hub_gated, 0);
    assert_int_equal(t->source.documents, 0);
    assert_int_equal(t->groups, 6);
    assert_int_equal(t->n_metrics, 0);
    assert_int_equal(t->generation.max_new_tokens, -1);
    assert_true(t->generation.temperature < 0 && t->generation.top_p < 0);
    assert_true(t->generation.top_k < 0 && t->generation.min_p < 0);
    ssf_task_free(t);

    assert_int_equal(
        ssf_task_parse(
            SPEC_HEAD "\"source\":{\"local\":{\"path\":\"..v2/d.jsonl\"}},"
                      "\"fields\":{\"question\":\"q\",\"answer\":\"a\",\"gold_extract\":\"none\"},"
                      "\"prompt\":\"{{question}}\",\"groups\":1,\"generation\":{\"max_new_"
                      "tokens\":8192,\"temperature\":0,\"top_p\":0.5,\"top_k\":20,\"min_p\":0.05}}",
            "spec.json", &t, &err),
        0);
    /* A name that begins with "..", not a ".." segment: inside the data directory. */
    assert_string_equal(t->source.local_path, "..v2/d.jsonl");
    assert_int_equal(t->gold_last_boxed, 0);
    assert_int_equal(t->groups, 1);
    assert_int_equal(t->generation.max_new_tokens, 8192);
    assert_true(t->generation.temperature == 0); /* greedy: 0 is a setting, not "unset" */
    assert_true(t->generation.top_p == 0.5);
    assert_int_equal(t->generation.top_k, 20);
    assert_true(t->generation.min_p == 0.05);
    ssf_task_free(t);
}

/* A spec with a key twice (an edit gone wrong) is refused, not read as
 * its last value. */
static void test_duplicate_keys(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *path = write_temp_file(dir, "dup.json",
                                 SPEC_HEAD SPEC_SOURCE SPEC_FIELDS SPEC_PROMPT
                                 ",\"prompt\":\"x {{question}}\"}");
    ssf_registry reg;
    ssf_error err;
    assert_int_equal(ssf_registry_init(&reg, &err), 0);
    assert_int_equal(ssf_registry_add_file(&reg, path, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "duplicate"));
    ssf_registry_free(&reg);
    free(path);
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_aime_golds),
        cmocka_unit_test(test_math500_golds),
        cmocka_unit_test(test_gpqa_reference_letters),
        cmocka_unit_test(test_gpqa_hash_order),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_task_file_registry),
        cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_zip_source),
        cmocka_unit_test(test_letters_limit),
        cmocka_unit_test(test_gold_from_last_box),
        cmocka_unit_test(test_choice_orders),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_last_boxed),
        cmocka_unit_test(test_builtin_specs),
        cmocka_unit_test(test_spec_defaults_and_values),
    };
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, setup, teardown);
}
