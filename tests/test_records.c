/*
 * test_records.c - JSONL, JSON and CSV readers and the zip member reader,
 * against small inline inputs and the real benchmark files.
 *
 * The GPQA checks never print record contents: the CSV carries a canary
 * string and its authors ask that questions stay out of logs.  So they use
 * assert_true/assert_int_equal on counts and lengths only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ssfteval/records.h"
#include "ssfteval/util.h"

#define GPQA_PASSWORD "deserted-untie-orchid"
#define GPQA_MEMBER "dataset/gpqa_diamond.csv"
#define GPQA_SHA256 "41d1213cd7a4998605a26c2798500652572007161b3a92817ba46b35befcd305"

static const char *shared_dir; /* NULL: ../shared is not there, and the tests of its files skip */

/* Everything a read delivered: the records (kept) and, for the first few,
 * their numbers and start lines. */
typedef struct collect {
    json_t *records;
    size_t numbers[32];
    size_t lines[32];
    size_t count;
    size_t stop_after; /* 0: never stop */
} collect;

static int collect_fn(json_t *record, size_t number, size_t line, void *ud)
{
    collect *c = ud;
    if (c->count < 32) {
        c->numbers[c->count] = number;
        c->lines[c->count] = line;
    }
    json_array_append(c->records, record);
    c->count++;
    return c->stop_after && c->count == c->stop_after ? 42 : 0;
}

static void collect_init(collect *c)
{
    memset(c, 0, sizeof *c);
    c->records = json_array();
}

static void collect_free(collect *c)
{
    json_decref(c->records);
}

static json_t *rec(const collect *c, size_t i)
{
    return json_array_get(c->records, i);
}

static const char *str_field(const collect *c, size_t i, const char *key)
{
    return json_string_value(json_object_get(rec(c, i), key));
}

/* A file of ../shared; a test that asks for one without it skips. */
static char *shared_path(const char *rel)
{
    if (!shared_dir) skip();
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%s/%s", shared_dir, rel);
    return ssf_buf_take(&b);
}

/* Reads an inline input; returns the reader's result. */
static int read_mem(const char *text, const char *name, collect *c, ssf_error *err)
{
    err->msg[0] = '\0';
    return ssf_records_read_memory(text, strlen(text), name, SSF_FORMAT_AUTO, collect_fn, c, err);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* ------------------------------------------------------------------------ */
/* Benchmark JSONL files                                                     */
/* ------------------------------------------------------------------------ */

static void read_shared(const char *rel, collect *c)
{
    char *path = shared_path(rel);
    ssf_error err = {0};
    collect_init(c);
    int rc = ssf_records_read_file(path, SSF_FORMAT_AUTO, collect_fn, c, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    free(path);
}

static void test_aime24(void **state)
{
    (void)state;
    collect c;
    read_shared("data/aime24.jsonl", &c);
    assert_int_equal(c.count, 30);
    assert_string_equal(str_field(&c, 0, "id"), "2024-I-1");
    assert_string_equal(str_field(&c, 0, "answer"), "204");
    assert_int_equal(c.numbers[0], 1);
    assert_int_equal(c.lines[0], 1);
    assert_int_equal(c.numbers[29], 30);
    assert_int_equal(c.lines[29], 30);
    /* Key order is the file's order, which prompts built from records rely on. */
    assert_string_equal(json_object_iter_key(json_object_iter(rec(&c, 0))), "id");
    collect_free(&c);
}

static void test_aime25(void **state)
{
    (void)state;
    collect c;
    read_shared("data/aime25.jsonl", &c);
    assert_int_equal(c.count, 30);
    assert_string_equal(str_field(&c, 0, "id"), "2025-I-1");
    assert_string_equal(str_field(&c, 0, "answer"), "70");
    collect_free(&c);
}

/* The unique_id on the file's last non-empty line, read without the reader. */
static char *last_unique_id(const char *path)
{
    char *text;
    size_t len;
    ssf_error err = {0};
    if (ssf_read_file(path, &text, &len, &err) != 0) fail_msg("%s", err.msg);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    char *start = strrchr(text, '\n');
    start = start ? start + 1 : text;
    json_error_t jerr;
    json_t *obj = json_loads(start, 0, &jerr);
    assert_non_null(obj);
    const char *id = json_string_value(json_object_get(obj, "unique_id"));
    assert_non_null(id);
    char *copy = ssf_xstrdup(id);
    json_decref(obj);
    free(text);
    return copy;
}

static void test_math500(void **state)
{
    (void)state;
    collect c;
    read_shared("data/math500.jsonl", &c);
    assert_int_equal(c.count, 500);
    char *path = shared_path("data/math500.jsonl");
    char *want = last_unique_id(path);
    assert_string_equal(str_field(&c, 499, "unique_id"), want);
    assert_true(json_is_integer(json_object_get(rec(&c, 499), "level")));
    free(want);
    free(path);
    collect_free(&c);
}

/* ------------------------------------------------------------------------ */
/* JSONL edge cases                                                          */
/* ------------------------------------------------------------------------ */

static void test_jsonl_malformed(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("{\"a\":1}\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n", "mem.jsonl", &c, &err);
    assert_int_equal(rc, -1);
    /* One line: the file and line, jansson's reason, then the fix. */
    static const char head[] = "mem.jsonl:3: malformed JSON line: ";
    static const char fix[] = "; fix or remove that line";
    size_t n = strlen(err.msg);
    assert_memory_equal(err.msg, head, sizeof head - 1);
    assert_true(n > sizeof head - 1 + sizeof fix - 1); /* jansson's reason between */
    assert_string_equal(err.msg + n - (sizeof fix - 1), fix);
    assert_null(strchr(err.msg, '\n'));
    /* Streaming: the two good records before the bad line were delivered. */
    assert_int_equal(c.count, 2);
    collect_free(&c);
}

static void test_jsonl_trailing_junk(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("{\"a\":1} x\n", "mem.jsonl", &c, &err), -1);
    assert_contains(err.msg, "mem.jsonl:1: malformed JSON line");
    assert_int_equal(c.count, 0);
    /* Valid JSON, but a NUL would cut the text short: said as such, not
     * with jansson's option name. */
    assert_int_equal(read_mem("{\"a\":1}\n{\"t\":\"a\\u0000b\"}\n", "mem.jsonl", &c, &err), -1);
    assert_contains(err.msg, "mem.jsonl:2: a string holds \\u0000");
    assert_null(strstr(err.msg, "JSON_ALLOW_NUL"));
    assert_int_equal(read_mem("[{\"t\":\"a\\u0000b\"}]", "mem.json", &c, &err), -1);
    assert_contains(err.msg, "mem.json:1:");
    assert_contains(err.msg, "a string holds \\u0000");
    collect_free(&c);
}

static void test_jsonl_not_object(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("{\"a\":1}\n[1,2]\n", "mem.jsonl", &c, &err), -1);
    assert_contains(err.msg, "mem.jsonl:2: expected a JSON object per line");
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("\"text\"\n", "mem.jsonl", &c, &err), -1);
    assert_contains(err.msg, "mem.jsonl:1: expected a JSON object per line");
    collect_free(&c);
}

static void test_jsonl_blank_lines(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("\n{\"a\":1}\n   \n\t\r\n{\"a\":2}\n\n", "mem.jsonl", &c, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(c.numbers[0], 1);
    assert_int_equal(c.lines[0], 2);
    assert_int_equal(c.numbers[1], 2);
    assert_int_equal(c.lines[1], 5);
    collect_free(&c);
}

static void test_jsonl_crlf_bom(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("\xEF\xBB\xBF{\"a\":\"x\",\"b\":1}\r\n{\"b\":2,\"a\":\"y\"}\r\n", "mem.jsonl",
                      &c, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.count, 2);
    assert_string_equal(str_field(&c, 0, "a"), "x");
    assert_string_equal(str_field(&c, 1, "a"), "y");
    /* Insertion order survives: "b" comes first in the second record. */
    assert_string_equal(json_object_iter_key(json_object_iter(rec(&c, 1))), "b");
    collect_free(&c);
}

/* The last line need not end in a newline: its last byte is data. */
static void test_jsonl_last_line(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("{\"a\":1}\n{\"a\":2}", "mem.jsonl", &c, &err), 0);
    assert_int_equal(c.count, 2);
    assert_int_equal(json_integer_value(json_object_get(rec(&c, 1), "a")), 2);
    assert_int_equal(c.lines[1], 2);
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("{\"a\":\"x\"}\r\n{\"a\":\"y\"}", "mem.jsonl", &c, &err), 0);
    assert_int_equal(c.count, 2);
    assert_string_equal(str_field(&c, 1, "a"), "y");
    collect_free(&c);
}

static void test_jsonl_callback_stops(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    c.stop_after = 2;
    int rc = read_mem("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", "mem.jsonl", &c, &err);
    assert_int_equal(rc, 42);
    assert_int_equal(c.count, 2);
    collect_free(&c);
}

/* ------------------------------------------------------------------------ */
/* JSON arrays                                                               */
/* ------------------------------------------------------------------------ */

static void test_json_array(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("[\n  {\"a\": 1},\n  {\"z\": \"[,{\\\"\",\n   \"b\": [3, {}]},\n"
                      "  {\"c\": null}\n]\n",
                      "mem.json", &c, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.count, 3);
    assert_int_equal(c.numbers[2], 3);
    assert_int_equal(c.lines[0], 2);
    assert_int_equal(c.lines[1], 3);
    assert_int_equal(c.lines[2], 5);
    assert_string_equal(str_field(&c, 1, "z"), "[,{\"");
    assert_string_equal(json_object_iter_key(json_object_iter(rec(&c, 1))), "z");
    collect_free(&c);

    /* Saved with a UTF-8 BOM, as Windows editors do. */
    collect_init(&c);
    assert_int_equal(read_mem("\xEF\xBB\xBF[{\"a\": 1}]", "mem.json", &c, &err), 0);
    assert_int_equal(c.count, 1);
    collect_free(&c);
}

static void test_json_errors(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("[{\"a\":1},\n 5]", "mem.json", &c, &err), -1);
    assert_contains(err.msg, "mem.json:2: array element 1 (record 2) is a number");
    assert_int_equal(c.count, 1);
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("{\"a\":1}", "mem.json", &c, &err), -1);
    assert_contains(err.msg, "expected a JSON array of objects, got an object");
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("[{\"a\":1},\n{\"a\" 2}]", "mem.json", &c, &err), -1);
    assert_contains(err.msg, "mem.json:2:");
    assert_contains(err.msg, "malformed JSON");
    assert_int_equal(c.count, 0);
    collect_free(&c);
}

/* ------------------------------------------------------------------------ */
/* CSV                                                                       */
/* ------------------------------------------------------------------------ */

static void test_csv_quoting(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("id,text,n\n"
                      "1,\"line one\nline two, with comma\",x\n"
                      "2,\"say \"\"hi\"\"\",y\n"
                      "3,,\"\"\n",
                      "mem.csv", &c, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.count, 3);
    assert_string_equal(str_field(&c, 0, "id"), "1");
    assert_string_equal(str_field(&c, 0, "text"), "line one\nline two, with comma");
    assert_string_equal(str_field(&c, 0, "n"), "x");
    assert_string_equal(str_field(&c, 1, "text"), "say \"hi\"");
    assert_string_equal(str_field(&c, 2, "text"), "");
    assert_string_equal(str_field(&c, 2, "n"), "");
    assert_int_equal(c.numbers[2], 3);
    assert_int_equal(c.lines[0], 2);
    assert_int_equal(c.lines[1], 4);
    assert_int_equal(c.lines[2], 5);
    assert_int_equal(json_object_size(rec(&c, 0)), 3);
    assert_string_equal(json_object_iter_key(json_object_iter(rec(&c, 0))), "id");
    collect_free(&c);
}

static void test_csv_crlf(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("a,b\r\n1,\"x\r\ny\"\r\n2,3\r\n", "mem.csv", &c, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.count, 2);
    /* Line breaks inside quotes are data and are kept byte for byte. */
    assert_string_equal(str_field(&c, 0, "b"), "x\r\ny");
    assert_string_equal(str_field(&c, 1, "a"), "2");
    assert_string_equal(str_field(&c, 1, "b"), "3");
    assert_int_equal(c.lines[0], 2);
    assert_int_equal(c.lines[1], 4);
    collect_free(&c);

    /* A lone CR ends a line too (old Mac exports): nothing after it is
     * eaten, and lines are counted. */
    collect_init(&c);
    rc = read_mem("a,b\r1,2\r34,5\r", "mem.csv", &c, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.count, 2);
    assert_string_equal(str_field(&c, 1, "a"), "34");
    assert_int_equal(c.lines[0], 2);
    assert_int_equal(c.lines[1], 3);
    collect_free(&c);
}

static void test_csv_bom(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("\xEF\xBB\xBF"
                              "id,v\n1,2\n",
                              "mem.csv", &c, &err),
                     0);
    assert_int_equal(c.count, 1);
    assert_string_equal(str_field(&c, 0, "id"), "1");
    collect_free(&c);

    /* Bytes that only start like a BOM are data, not dropped: here they make
     * the first column name invalid UTF-8. */
    collect_init(&c);
    assert_int_equal(read_mem("\xEF\xBB"
                              "x,v\n1,2\n",
                              "mem.csv", &c, &err),
                     -1);
    assert_contains(err.msg, "mem.csv: header (line 1): column 1's name is not valid UTF-8");
    collect_free(&c);

    /* And invalid UTF-8 in a value is reported with its record and column. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,\"\xFF\"\n", "mem.csv", &c, &err), -1);
    assert_contains(err.msg, "mem.csv: record 1 (line 2): field 2 (\"b\") is not valid UTF-8");
    collect_free(&c);
}

static void test_csv_field_count(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    int rc = read_mem("a,b,c\n1,2,3\n4,\"5\n6\"\n7,8,9\n", "mem.csv", &c, &err);
    assert_int_equal(rc, -1);
    assert_string_equal(err.msg, "mem.csv: record 2 (line 3): 2 fields, the header has 3");
    assert_int_equal(c.count, 1);
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,2\n3,4,5\n", "mem.csv", &c, &err), -1);
    assert_string_equal(err.msg, "mem.csv: record 2 (line 3): 3 fields, the header has 2");
    collect_free(&c);
}

static void test_csv_unterminated(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,2\n3,\"open\nmore\n", "mem.csv", &c, &err), -1);
    assert_string_equal(
        err.msg, "mem.csv: record 2 (line 3): unterminated quoted field 2, opened on line 3");
    collect_free(&c);

    /* The record starts on line 2; its third field opens on line 3. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b,c\n1,\"x\ny\",\"open\nmore\n", "mem.csv", &c, &err), -1);
    assert_string_equal(
        err.msg, "mem.csv: record 1 (line 2): unterminated quoted field 3, opened on line 3");
    collect_free(&c);
}

static void test_csv_bad_quotes(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,2\n3,x\"y\n", "mem.csv", &c, &err), -1);
    assert_contains(err.msg, "mem.csv: record 2 (line 3): quote inside unquoted field 2");
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("a,b\n\"x\"y,2\n", "mem.csv", &c, &err), -1);
    assert_contains(err.msg, "mem.csv: record 1 (line 2): text after the closing quote");
    collect_free(&c);

    /* In a record spanning lines, the message names the line of the quote. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n\"x\ny\",z\"w\n", "mem.csv", &c, &err), -1);
    assert_contains(err.msg, "mem.csv: record 1 (line 2): quote inside unquoted field 2 on line 3");
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("a,b\n\"x\ny\"z,w\n", "mem.csv", &c, &err), -1);
    assert_string_equal(err.msg, "mem.csv: record 1 (line 2): text after the closing quote of "
                                 "field 1 on line 3");
    collect_free(&c);
}

static void test_csv_duplicate_header(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    assert_int_equal(read_mem("a,b,a\n1,2,3\n", "mem.csv", &c, &err), -1);
    assert_contains(err.msg, "mem.csv: header (line 1): duplicate column name \"a\"");
    assert_int_equal(c.count, 0);
    collect_free(&c);
}

/* A NUL byte would cut a C string short: refused in a column name and in a
 * value, rather than read as a shorter text. */
static void test_csv_nul(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    static const char head[] = "a\0b,c\n1,2\n";
    collect_init(&c);
    assert_int_equal(ssf_records_read_memory(head, sizeof head - 1, "mem.csv", SSF_FORMAT_AUTO,
                                             collect_fn, &c, &err),
                     -1);
    assert_string_equal(err.msg, "mem.csv: header (line 1): column 1's name contains a NUL byte");
    collect_free(&c);

    static const char value[] = "a,b\n1,2\n3,\"x\0y\"\n";
    collect_init(&c);
    assert_int_equal(ssf_records_read_memory(value, sizeof value - 1, "mem.csv", SSF_FORMAT_AUTO,
                                             collect_fn, &c, &err),
                     -1);
    assert_string_equal(err.msg, "mem.csv: record 2 (line 3): field 2 (\"b\") holds a NUL byte, "
                                 "which ssfteval's texts cannot; remove it");
    assert_int_equal(c.count, 1);
    collect_free(&c);
}

static void test_csv_endings(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    /* No newline after the last record, unquoted and quoted. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,2\n3,4", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 2);
    assert_string_equal(str_field(&c, 1, "b"), "4");
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("a\n\"x,y\"", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 1);
    assert_string_equal(str_field(&c, 0, "a"), "x,y");
    collect_free(&c);

    /* A trailing empty line is not a record. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,2\n\n", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 1);
    collect_free(&c);

    /* Only a line with nothing on it is blank: a quoted empty value is a
     * record, and so is a line whose first field is empty. */
    collect_init(&c);
    assert_int_equal(read_mem("a\n\"\"\n\n\"x\"\n", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 2);
    assert_string_equal(str_field(&c, 0, "a"), "");
    assert_int_equal(c.lines[1], 4);
    collect_free(&c);

    collect_init(&c);
    assert_int_equal(read_mem("a,b\n,x\n", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 1);
    assert_string_equal(str_field(&c, 0, "b"), "x");
    collect_free(&c);

    /* A header and nothing else: no records, no error. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 0);
    collect_free(&c);

    /* Empty last field before the end of input. */
    collect_init(&c);
    assert_int_equal(read_mem("a,b\n1,", "mem.csv", &c, &err), 0);
    assert_int_equal(c.count, 1);
    assert_string_equal(str_field(&c, 0, "b"), "");
    collect_free(&c);
}

static void test_csv_callback_stops(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    collect_init(&c);
    c.stop_after = 1;
    assert_int_equal(read_mem("a\n1\n2\n", "mem.csv", &c, &err), 42);
    assert_int_equal(c.count, 1);
    collect_free(&c);
}

/* ------------------------------------------------------------------------ */
/* Formats and files                                                         */
/* ------------------------------------------------------------------------ */

static void test_formats(void **state)
{
    (void)state;
    assert_int_equal(ssf_format_from_name("jsonl"), SSF_FORMAT_JSONL);
    assert_int_equal(ssf_format_from_name("json"), SSF_FORMAT_JSON);
    assert_int_equal(ssf_format_from_name("CSV"), SSF_FORMAT_CSV);
    assert_int_equal(ssf_format_from_name("auto"), SSF_FORMAT_AUTO);
    assert_int_equal(ssf_format_from_name("xml"), -1);
    assert_int_equal(ssf_format_from_name(NULL), -1);
    assert_int_equal(ssf_format_from_path("data/x.JSONL"), SSF_FORMAT_JSONL);
    assert_int_equal(ssf_format_from_path("x.json"), SSF_FORMAT_JSON);
    assert_int_equal(ssf_format_from_path("/a.b/x.csv"), SSF_FORMAT_CSV);
    assert_int_equal(ssf_format_from_path("dir.csv/file"), SSF_FORMAT_AUTO);
    assert_int_equal(ssf_format_from_path("x.txt"), SSF_FORMAT_AUTO);
    assert_int_equal(ssf_format_from_path("noext"), SSF_FORMAT_AUTO);
}

static void test_file_errors(void **state)
{
    (void)state;
    collect c;
    ssf_error err;
    char *missing = shared_path("data/no-such-file.jsonl"); /* first: it may skip the test */
    collect_init(&c);
    assert_int_equal(ssf_records_read_file(missing, SSF_FORMAT_AUTO, collect_fn, &c, &err), -1);
    assert_contains(err.msg, "cannot open");
    assert_contains(err.msg, "no-such-file.jsonl");

    char *readme = shared_path("data/README.md");
    assert_int_equal(ssf_records_read_file(readme, SSF_FORMAT_AUTO, collect_fn, &c, &err), -1);
    assert_contains(err.msg, "README.md");
    assert_contains(err.msg, ".jsonl");

    /* An explicit format overrides the name. */
    const char *text = "a\n1\n";
    assert_int_equal(
        ssf_records_read_memory(text, strlen(text), "blob", SSF_FORMAT_CSV, collect_fn, &c, &err),
        0);
    assert_int_equal(c.count, 1);
    assert_int_equal(
        ssf_records_read_memory(text, strlen(text), "blob", SSF_FORMAT_AUTO, collect_fn, &c, &err),
        -1);
    assert_contains(err.msg, "blob");
    /* Empty input is zero records in every format that allows it. */
    assert_int_equal(
        ssf_records_read_memory("", 0, "e.jsonl", SSF_FORMAT_AUTO, collect_fn, &c, &err), 0);
    assert_int_equal(ssf_records_read_memory("", 0, "e.csv", SSF_FORMAT_AUTO, collect_fn, &c, &err),
                     0);
    assert_int_equal(c.count, 1);
    /* A read error (here a directory, which opens but cannot be read) is an
     * error in every format, not an early end of the records. */
    static const char *const dirs[] = {"d.jsonl", "d.json", "d.csv"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        char tmp[] = "/tmp/ssfteval-records-XXXXXX";
        assert_non_null(mkdtemp(tmp));
        ssf_buf dir = {0};
        ssf_buf_printf(&dir, "%s/%s", tmp, dirs[i]);
        int made = mkdir(dir.data, 0700);
        int rc = ssf_records_read_file(dir.data, SSF_FORMAT_AUTO, collect_fn, &c, &err);
        rmdir(dir.data);
        rmdir(tmp);
        ssf_buf_free(&dir);
        assert_int_equal(made, 0);
        assert_int_equal(rc, -1);
        assert_contains(err.msg, "cannot read");
        assert_contains(err.msg, dirs[i]);
    }
    free(readme);
    free(missing);
    collect_free(&c);
}

/* ------------------------------------------------------------------------ */
/* GPQA: zip member, checksum, CSV                                           */
/* ------------------------------------------------------------------------ */

static const char *const gpqa_required[] = {
    "Question",           "Correct Answer",     "Incorrect Answer 1",
    "Incorrect Answer 2", "Incorrect Answer 3", "Record ID",
};

static int gpqa_row_ok(json_t *row)
{
    for (size_t k = 0; k < sizeof gpqa_required / sizeof gpqa_required[0]; k++) {
        const char *v = json_string_value(json_object_get(row, gpqa_required[k]));
        if (!v || !*v) return 0;
    }
    return json_object_size(row) == 78;
}

static void test_gpqa(void **state)
{
    (void)state;
    char *zip = shared_path("data/gpqa/dataset.zip");
    char *data = NULL;
    size_t len = 0;
    ssf_error err = {0};
    int rc = ssf_zip_read_member(zip, GPQA_MEMBER, GPQA_PASSWORD, &data, &len, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(len, 1373492);
    assert_int_equal(data[len], '\0');
    char hex[65];
    ssf_sha256_hex(data, len, hex);
    assert_string_equal(hex, GPQA_SHA256);

    collect c;
    collect_init(&c);
    rc = ssf_records_read_memory(data, len, GPQA_MEMBER, SSF_FORMAT_AUTO, collect_fn, &c, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_int_equal(c.count, 198);
    json_t *ids = json_object();
    size_t bad_rows = 0;
    for (size_t i = 0; i < c.count; i++) {
        json_t *row = rec(&c, i);
        if (!gpqa_row_ok(row)) bad_rows++;
        const char *id = json_string_value(json_object_get(row, "Record ID"));
        if (id) json_object_set_new(ids, id, json_true());
    }
    assert_int_equal(bad_rows, 0);
    assert_int_equal(json_object_size(ids), 198);
    json_decref(ids);
    collect_free(&c);
    free(data);
    free(zip);
}

static void test_zip_errors(void **state)
{
    (void)state;
    char *zip = shared_path("data/gpqa/dataset.zip");
    char *data = NULL;
    ssf_error err;

    assert_int_equal(ssf_zip_read_member(zip, GPQA_MEMBER, "wrong-password", &data, NULL, &err),
                     -1);
    assert_contains(err.msg, "wrong password");
    assert_contains(err.msg, GPQA_MEMBER);
    assert_null(data);

    assert_int_equal(ssf_zip_read_member(zip, GPQA_MEMBER, NULL, &data, NULL, &err), -1);
    assert_contains(err.msg, "is encrypted: no password given");

    assert_int_equal(ssf_zip_read_member(zip, "dataset/nope.csv", GPQA_PASSWORD, &data, NULL, &err),
                     -1);
    assert_contains(err.msg, "dataset/nope.csv");
    assert_contains(err.msg, "no member");

    char *missing = shared_path("data/gpqa/missing.zip");
    assert_int_equal(ssf_zip_read_member(missing, GPQA_MEMBER, NULL, &data, NULL, &err), -1);
    assert_contains(err.msg, "cannot open");
    assert_contains(err.msg, "missing.zip");

    char *not_zip = shared_path("data/aime24.jsonl");
    assert_int_equal(ssf_zip_read_member(not_zip, GPQA_MEMBER, NULL, &data, NULL, &err), -1);
    assert_contains(err.msg, "not a zip archive");
    assert_contains(err.msg, "replace it with the published one");
    assert_null(data);

    free(not_zip);
    free(missing);
    free(zip);
}

static void put_le(FILE *f, unsigned long v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        fputc((int)((v >> (8 * i)) & 0xff), f);
}

/* A stored (not compressed) archive of one member "m" whose data is the
 * byte `data` and whose entries give the CRC-32 of "x" and `claimed` bytes. */
static void write_zip_of(const char *path, unsigned long claimed, char data)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    const unsigned long crc = 0x8cdc1683UL; /* CRC-32 of "x" */
    put_le(f, 0x04034b50UL, 4);             /* local header */
    put_le(f, 20, 2), put_le(f, 0, 2), put_le(f, 0, 2), put_le(f, 0, 4);
    put_le(f, crc, 4), put_le(f, 1, 4), put_le(f, 1, 4), put_le(f, 1, 2), put_le(f, 0, 2);
    fputc('m', f); /* the name, then the data */
    fputc(data, f);
    put_le(f, 0x02014b50UL, 4); /* central directory */
    put_le(f, 20, 2), put_le(f, 20, 2), put_le(f, 0, 2), put_le(f, 0, 2), put_le(f, 0, 4);
    put_le(f, crc, 4), put_le(f, 1, 4), put_le(f, claimed, 4), put_le(f, 1, 2), put_le(f, 0, 2);
    put_le(f, 0, 2), put_le(f, 0, 2), put_le(f, 0, 2), put_le(f, 0, 4), put_le(f, 0, 4);
    fputs("m", f);
    put_le(f, 0x06054b50UL, 4); /* end of central directory */
    put_le(f, 0, 2), put_le(f, 0, 2), put_le(f, 1, 2), put_le(f, 1, 2);
    put_le(f, 47, 4), put_le(f, 32, 4), put_le(f, 0, 2);
    fclose(f);
}

/* A zip of one stored member "m" holding "x" whose central directory
 * claims `claimed` bytes uncompressed. */
static void write_lying_zip(const char *path, unsigned long claimed)
{
    write_zip_of(path, claimed, 'x');
}

/* A member's size is the archive's word: a few bytes claiming 2 GiB are
 * refused before anything is allocated; the honest archive reads. */
static void test_zip_lying_size(void **state)
{
    (void)state;
    char path[] = "/tmp/ssfteval-zip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *data = NULL;
    size_t len = 0;
    ssf_error err;
    write_lying_zip(path, 1);
    assert_int_equal(ssf_zip_read_member(path, "m", NULL, &data, &len, &err), 0);
    assert_string_equal(data, "x");
    free(data);
    data = NULL;
    write_lying_zip(path, 0x7fffffffUL);
    assert_int_equal(ssf_zip_read_member(path, "m", NULL, &data, &len, &err), -1);
    assert_contains(err.msg, "claims 2147483647 bytes");
    assert_null(data);
    /* A member that holds more or fewer bytes than its entry says is
     * refused, not cut to the size or read short. */
    write_lying_zip(path, 0);
    assert_int_equal(ssf_zip_read_member(path, "m", NULL, &data, &len, &err), -1);
    assert_contains(err.msg, "member m is longer than its directory entry says");
    assert_null(data);
    write_lying_zip(path, 2);
    assert_int_equal(ssf_zip_read_member(path, "m", NULL, &data, &len, &err), -1);
    assert_contains(err.msg, "member m: ");
    assert_contains(err.msg, "(a damaged archive); replace it with the published one");
    assert_null(data);
    unlink(path);
}

/* A directory whose entry count is more than it holds: a damaged archive,
 * said with the fix. */
static void test_zip_damaged_directory(void **state)
{
    (void)state;
    char path[] = "/tmp/ssfteval-zip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_lying_zip(path, 1);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -22 + 8, SEEK_END), 0); /* the end record's two entry counts */
    put_le(f, 2, 2), put_le(f, 2, 2);
    fclose(f);
    char *data = NULL;
    ssf_error err;
    assert_int_equal(ssf_zip_read_member(path, "m", NULL, &data, NULL, &err), -1);
    assert_string_equal(err.msg + strlen(path),
                        " is a damaged zip archive; replace it with the published one");
    assert_null(data);
    unlink(path);
}

/* A member's bytes are checked against its CRC-32 once read to the end
 * (what also catches the 1 wrong ZipCrypto password in 256 its check lets
 * by). */
static void test_zip_damaged_member(void **state)
{
    (void)state;
    char path[] = "/tmp/ssfteval-zip-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *data = NULL;
    size_t len = 0;
    ssf_error err;
    write_zip_of(path, 1, 'y');
    assert_int_equal(ssf_zip_read_member(path, "m", NULL, &data, &len, &err), -1);
    assert_contains(err.msg, "member m: CRC mismatch (wrong password or damaged archive)");
    assert_null(data);
    unlink(path);
}

/* Well-formed UTF-8 as RFC 3629 defines it: no overlong form, no
 * surrogate, nothing past U+10FFFF, no sequence cut short. */
static void test_utf8_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t prefix;
    } cases[] = {
        {"", 0},
        {"abc", 3},
        {"\xc3\xa9t\xc3\xa9", 5},
        {"\xf0\x9f\x98\x80!", 5},
        {"ab\xff"
         "cd",
         2},
        {"\x80", 0},
        {"a\xc3", 1},
        {"a\xe2\x82", 1},
        {"\xe2\x28\xa1", 0},
        {"x\xc0\x80", 1},
        {"\xe0\x80\xaf", 0},
        {"\xed\xa0\x80", 0},
        {"\xed\x9f\xbf!", 4},
        {"\xf4\x8f\xbf\xbf", 4},
        {"\xf4\x90\x80\x80", 0},
        {"\xf8\x88\x80\x80\x80", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i].s);
        if (ssf_utf8_valid_prefix(cases[i].s, len) != cases[i].prefix)
            fail_msg("case %zu: valid prefix %zu, want %zu", i,
                     ssf_utf8_valid_prefix(cases[i].s, len), cases[i].prefix);
        assert_int_equal(ssf_utf8_valid(cases[i].s, len), cases[i].prefix == len);
    }
    /* the length bounds the text: a NUL is a character like any other */
    assert_int_equal(ssf_utf8_valid_prefix("a\0b\xff", 3), 3);
    assert_true(ssf_utf8_valid("\xc3\xa9", 2));
    assert_false(ssf_utf8_valid("\xc3\xa9", 1));
}

int main(void)
{
    struct stat st;
    shared_dir = getenv("SSFTEVAL_SHARED");
    if (shared_dir && (stat(shared_dir, &st) != 0 || !S_ISDIR(st.st_mode))) shared_dir = NULL;
    if (!shared_dir) fprintf(stderr, "../shared not found: the tests of its files skip\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aime24),
        cmocka_unit_test(test_aime25),
        cmocka_unit_test(test_math500),
        cmocka_unit_test(test_jsonl_malformed),
        cmocka_unit_test(test_jsonl_trailing_junk),
        cmocka_unit_test(test_jsonl_not_object),
        cmocka_unit_test(test_jsonl_blank_lines),
        cmocka_unit_test(test_jsonl_crlf_bom),
        cmocka_unit_test(test_jsonl_last_line),
        cmocka_unit_test(test_jsonl_callback_stops),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_csv_crlf),
        cmocka_unit_test(test_csv_bom),
        cmocka_unit_test(test_csv_field_count),
        cmocka_unit_test(test_csv_unterminated),
        cmocka_unit_test(test_csv_bad_quotes),
        cmocka_unit_test(test_csv_duplicate_header),
        cmocka_unit_test(test_csv_nul),
        cmocka_unit_test(test_csv_endings),
        cmocka_unit_test(test_csv_callback_stops),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_gpqa),
        cmocka_unit_test(test_zip_errors),
        cmocka_unit_test(test_zip_lying_size),
        cmocka_unit_test(test_zip_damaged_member),
        cmocka_unit_test(test_zip_damaged_directory),
        cmocka_unit_test(test_utf8_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
