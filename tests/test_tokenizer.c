/*
 * test_tokenizer.c - the byte-level BPE tokenizer against the `tokenizers`
 * package: tests/fixtures/tokenizer-cases.json (made by
 * tools/make-tokenizer-fixtures.py) holds the oracle's ids for MATH-500 and
 * AIME text, every task's rendered prompts and hand-written edge cases, for
 * the Qwen2.5 and Qwen3 tokenizer.json files of ../shared.  Also: decoding,
 * the vocab.json + merges.txt layout, malformed files and threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "ssfteval/prompt.h"
#include "ssfteval/task.h"
#include "ssfteval/tokenizer.h"
#include "ssfteval/util.h"
#include "test-support.h"

static const char *const names[2] = {"qwen2.5", "qwen3"};

typedef struct fixture {
    ssf_tokenizer *tok[2];
    json_t *cases;
    ssf_registry reg;
    ssf_docs docs[4];
    const char *task_names[4];
} fixture;

static fixture fx;

static ssf_tokenizer *load_shared(const char *rel)
{
    char *p = shared_path(rel);
    ssf_tokenizer *t = NULL;
    ssf_error err;
    if (ssf_tokenizer_load(p, &t, &err)) fail_msg("%s", err.msg);
    free(p);
    return t;
}

static int setup(void **state)
{
    (void)state;
    fx.tok[0] = load_shared("tokenizers/qwen2.5/tokenizer.json");
    fx.tok[1] = load_shared("tokenizers/qwen3");
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer-cases.json", root ? root : ".");
    json_error_t jerr;
    fx.cases = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (!fx.cases) fail_msg("%s: %s", path, jerr.text);
    ssf_error err;
    if (ssf_registry_init(&fx.reg, &err)) fail_msg("%s", err.msg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        ssf_tokenizer_free(fx.tok[i]);
    for (int i = 0; i < 4; i++)
        if (fx.task_names[i]) ssf_docs_free(&fx.docs[i]);
    ssf_registry_free(&fx.reg);
    json_decref(fx.cases);
    return 0;
}

static void ids_digest(const int32_t *ids, size_t n, char hex[65])
{
    ssf_buf b = {0};
    ssf_buf_append(&b, "", 0);
    for (size_t i = 0; i < n; i++)
        ssf_buf_printf(&b, "%s%d", i ? "," : "", ids[i]);
    ssf_sha256_hex(b.data, b.len, hex);
    ssf_buf_free(&b);
}

static int32_t *encode(ssf_tokenizer *t, const char *s, size_t len, size_t *n)
{
    int32_t *ids;
    ssf_error err;
    if (ssf_tokenizer_encode(t, s, len, &ids, n, &err)) fail_msg("encode: %s", err.msg);
    return ids;
}

/* ---- texts the fixture refers to ------------------------------------------ */

/* Field `field` of line `line` of a ../shared JSONL file, optionally one
 * part of it split at "\n\n" or "\n". */
static char *shared_text(const json_t *c)
{
    char *path = shared_path(json_string_value(json_object_get(c, "src")));
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    long want = (long)json_integer_value(json_object_get(c, "line"));
    char *line = NULL;
    size_t cap = 0;
    for (long i = 0; i < want; i++)
        if (getline(&line, &cap, f) < 0) fail_msg("%s: no line %ld", path, want);
    fclose(f);
    json_t *row = json_loads(line, 0, NULL);
    free(line);
    json_t *v = json_object_get(row, json_string_value(json_object_get(c, "field")));
    char *text = json_is_string(v) ? ssf_xstrdup(json_string_value(v))
                                   : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(row);
    free(path);
    const char *split = json_string_value(json_object_get(c, "split"));
    if (!split) return text;
    const char *sep = strcmp(split, "paragraph") == 0 ? "\n\n" : "\n";
    long part = (long)json_integer_value(json_object_get(c, "part"));
    char *p = text;
    for (long k = 0; k < part; k++) {
        p = strstr(p, sep);
        assert_non_null(p);
        p += strlen(sep);
    }
    char *end = strstr(p, sep);
    char *out = ssf_xstrndup(p, end ? (size_t)(end - p) : strlen(p));
    free(text);
    return out;
}

static const ssf_docs *task_docs(const char *task)
{
    int i = 0;
    for (; i < 4 && fx.task_names[i]; i++)
        if (strcmp(fx.task_names[i], task) == 0) return &fx.docs[i];
    assert_true(i < 4);
    const ssf_task *t = ssf_registry_find(&fx.reg, task);
    assert_non_null(t);
    char *data_dir = shared_path("data");
    ssf_data_options o = {.data_dir = data_dir, .order_override = -1};
    ssf_error err;
    if (ssf_task_load_docs(t, &o, &fx.docs[i], &err)) fail_msg("%s", err.msg);
    free(data_dir);
    fx.task_names[i] = task;
    return &fx.docs[i];
}

/* The prompt of (task, doc, tag, template), rendered by the library. */
static char *prompt_text(const json_t *c)
{
    const char *task = json_string_value(json_object_get(c, "task"));
    const ssf_docs *docs = task_docs(task);
    size_t doc = (size_t)json_integer_value(json_object_get(c, "doc"));
    assert_true(doc < docs->n);
    int tpl = ssf_chat_template_from_name(json_string_value(json_object_get(c, "template")));
    assert_true(tpl >= 0);
    int tag = (int)json_integer_value(json_object_get(c, "tag"));
    return ssf_prompt_render(ssf_registry_find(&fx.reg, task), &docs->items[doc],
                             (ssf_chat_template)tpl, tag);
}

/* The text of a case and its length (edge cases may hold NUL). */
static char *case_text_len(const json_t *c, size_t *len)
{
    json_t *text = json_object_get(c, "text");
    if (text) {
        *len = json_string_length(text);
        return ssf_xstrndup(json_string_value(text), *len);
    }
    char *s = json_object_get(c, "src") ? shared_text(c) : prompt_text(c);
    char hex[65];
    ssf_sha256_hex(s, strlen(s), hex);
    assert_string_equal(hex, json_string_value(json_object_get(c, "sha256")));
    *len = strlen(s);
    return s;
}

static char *case_text(const json_t *c)
{
    size_t len;
    return case_text_len(c, &len);
}

/* ---- the fixture cases --------------------------------------------------- */

static int ids_equal_json(const int32_t *ids, size_t n, const json_t *want)
{
    if (json_is_array(want)) {
        if (json_array_size(want) != n) return 0;
        for (size_t i = 0; i < n; i++)
            if (json_integer_value(json_array_get(want, i)) != ids[i]) return 0;
        return 1;
    }
    char hex[65];
    ids_digest(ids, n, hex);
    return (size_t)json_integer_value(json_object_get(want, "n")) == n &&
           strcmp(hex, json_string_value(json_object_get(want, "sha256"))) == 0;
}

/* decode(encode(x)) is x, or what the oracle's decode gave (NFC(x)). */
static int roundtrip_ok(const ssf_tokenizer *t, const char *name, const json_t *c, const char *text,
                        size_t len, const int32_t *ids, size_t n)
{
    ssf_error err;
    char *dec = ssf_tokenizer_decode(t, ids, n, 0, NULL, &err);
    if (!dec) {
        fail_msg("decode: %s", err.msg);
        return 0; /* not reached (fail_msg longjmps): for the analyzer */
    }
    char key[32];
    snprintf(key, sizeof key, "%s_decoded", name);
    json_t *want = json_object_get(c, key);
    int ok;
    if (memchr(text, 0, len)) { /* decode's result is NUL-terminated: compare up to it */
        free(dec);
        return 1;
    }
    if (!want)
        ok = strcmp(dec, text) == 0;
    else if (json_object_get(c, "text"))
        ok = strcmp(dec, json_string_value(want)) == 0;
    else {
        char hex[65];
        ssf_sha256_hex(dec, strlen(dec), hex);
        ok = strcmp(hex, json_string_value(want)) == 0;
    }
    free(dec);
    return ok;
}

static size_t check_cases(const char *group, size_t *n_checked)
{
    json_t *list = json_object_get(fx.cases, group);
    size_t bad = 0, i;
    json_t *c;
    json_array_foreach(list, i, c)
    {
        size_t len;
        char *text = case_text_len(c, &len);
        for (int k = 0; k < 2; k++) {
            size_t n;
            int32_t *ids = encode(fx.tok[k], text, len, &n);
            int ok = ids_equal_json(ids, n, json_object_get(c, names[k]));
            int rt = roundtrip_ok(fx.tok[k], names[k], c, text, len, ids, n);
            if (!ok || !rt) {
                char *dump = json_dumps(c, JSON_COMPACT);
                fprintf(stderr, "%s %s: %s%s\n", names[k], ok ? "roundtrip" : "ids", group, dump);
                free(dump);
                bad++;
            }
            n_checked[k] += ok;
            free(ids);
        }
        free(text);
    }
    return bad;
}

static void test_fixture_shared(void **state)
{
    (void)state;
    size_t n[2] = {0, 0};
    size_t bad = check_cases("shared", n);
    fprintf(stderr, "shared data and prompts: %zu matched (qwen2.5), %zu matched (qwen3)\n", n[0],
            n[1]);
    assert_true(json_array_size(json_object_get(fx.cases, "shared")) >= 3000);
    assert_int_equal(bad, 0);
}

static void test_fixture_edge(void **state)
{
    (void)state;
    size_t n[2] = {0, 0};
    size_t bad = check_cases("edge", n);
    fprintf(stderr, "edge cases: %zu matched (qwen2.5), %zu matched (qwen3)\n", n[0], n[1]);
    assert_true(n[0] > 400);
    assert_int_equal(bad, 0);
}

static void test_fixture_decode(void **state)
{
    (void)state;
    size_t i, bad = 0;
    json_t *c;
    json_array_foreach(json_object_get(fx.cases, "decode"), i, c)
    {
        json_t *arr = json_object_get(c, "ids");
        size_t n = json_array_size(arr);
        int32_t *ids = ssf_xmalloc((n + 1) * sizeof *ids);
        for (size_t k = 0; k < n; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(arr, k));
        for (int skip = 0; skip < 2; skip++) {
            ssf_error err;
            char *dec = ssf_tokenizer_decode(fx.tok[0], ids, n, skip, NULL, &err);
            assert_non_null(dec);
            const char *want =
                json_string_value(json_object_get(c, skip ? "text_skip_special" : "text"));
            if (strcmp(dec, want) != 0) {
                fprintf(stderr, "decode case %zu (skip %d) differs\n", i, skip);
                bad++;
            }
            free(dec);
        }
        free(ids);
    }
    assert_true(i > 400);
    assert_int_equal(bad, 0);
}

/* ---- ../shared/tokenizers/README.md section 7 ---------------------------- */

static void expect_ids(ssf_tokenizer *t, const char *text, const int32_t *want, size_t n_want)
{
    size_t n;
    int32_t *ids = encode(t, text, strlen(text), &n);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void test_sanity_vectors(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        ssf_tokenizer *t = fx.tok[k];
        expect_ids(t, "Hello world", (const int32_t[]){9707, 1879}, 2);
        expect_ids(t, " Hello world", (const int32_t[]){21927, 1879}, 2);
        expect_ids(t, "<|im_start|>hello<|im_end|>", (const int32_t[]){151644, 14990, 151645}, 3);
        for (int i = 1; i <= 6; i++) {
            char s[32];
            snprintf(s, sizeof s, "<|im_start|><think%d>\n", i);
            expect_ids(t, s, (const int32_t[]){151644, 13708, 766, 15 + i, 397}, 5);
        }
        expect_ids(t, "\n", (const int32_t[]){198}, 1);
        expect_ids(t, "\n\n", (const int32_t[]){271}, 1);
        for (int d = 0; d <= 9; d++) {
            char s[2] = {(char)('0' + d), 0};
            expect_ids(t, s, (const int32_t[]){15 + d}, 1);
        }
        expect_ids(t, "", NULL, 0);
    }
    assert_int_equal(ssf_tokenizer_n_ids(fx.tok[0]), 151665);
    assert_int_equal(ssf_tokenizer_n_ids(fx.tok[1]), 151669);
    assert_int_equal(ssf_tokenizer_token_id(fx.tok[1], "</think>"), 151668);
    assert_int_equal(ssf_tokenizer_token_id(fx.tok[0], "</think>"), -1);
    assert_int_equal(ssf_tokenizer_token_id(fx.tok[0], "Hello"), 9707);
    assert_true(ssf_tokenizer_is_special(fx.tok[0], 151645));
    assert_false(ssf_tokenizer_is_special(fx.tok[0], 151657)); /* <tool_call> */
    assert_false(ssf_tokenizer_is_special(fx.tok[0], 9707));
    size_t len;
    const char *b = ssf_tokenizer_token_bytes(fx.tok[0], 198, &len);
    assert_int_equal(len, 1);
    assert_int_equal(b[0], '\n');
    assert_null(ssf_tokenizer_token_bytes(fx.tok[0], 151665, &len));
}

static void test_errors_on_input(void **state)
{
    (void)state;
    int32_t *ids;
    size_t n;
    ssf_error err;
    assert_int_equal(ssf_tokenizer_encode(fx.tok[0], "ab\xff", 3, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_non_null(strstr(err.msg, "byte 2"));
    assert_int_equal(ssf_tokenizer_encode(fx.tok[0], "\xed\xa0\x80", 3, &ids, &n, &err), -1);
    assert_int_equal(ssf_tokenizer_encode(fx.tok[0], "a\0b", 3, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    free(ids);
    int32_t bad[] = {9707, 151665};
    assert_null(ssf_tokenizer_decode(fx.tok[0], bad, 2, 0, NULL, &err));
    assert_non_null(strstr(err.msg, "151665"));
    int32_t neg[] = {-1};
    assert_null(ssf_tokenizer_decode(fx.tok[0], neg, 1, 0, NULL, &err));
    /* A whitespace run far beyond PCRE2's default JIT stack. */
    size_t big = 300000;
    char *spaces = ssf_xmalloc(big + 2);
    memset(spaces, ' ', big);
    memcpy(spaces + big, "x", 2);
    assert_int_equal(ssf_tokenizer_encode(fx.tok[0], spaces, big + 1, &ids, &n, &err), 0);
    char *back = ssf_tokenizer_decode(fx.tok[0], ids, n, 0, NULL, &err);
    assert_string_equal(back, spaces);
    free(back);
    free(ids);
    free(spaces);
    char *s = ssf_tokenizer_decode(fx.tok[0], NULL, 0, 0, NULL, &err);
    assert_string_equal(s, "");
    free(s);
    /* Id 188 is the byte 0x00: the text holds a NUL, and its length says
     * so, as Hugging Face decodes [64, 188, 65] to "a\0b". */
    int32_t nul[] = {64, 188, 65};
    size_t len = 0;
    s = ssf_tokenizer_decode(fx.tok[0], nul, 3, 0, &len, &err);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);
    free(s);
    /* Ill-formed sequences decode to one U+FFFD per maximal subpart, as
     * Rust's from_utf8_lossy (which tokenizers uses) and Python's
     * decode("utf-8", "replace") give them: an overlong lead, an overlong
     * 3- and 4-byte form, a code point past U+10FFFF, each a byte apiece. */
    static const struct {
        int32_t ids[4];
        unsigned char bytes[4];
        size_t n;
    } ill[] = {
        {{124, 107}, {0xC0, 0xAF}, 2},
        {{156, 222, 222}, {0xE0, 0x80, 0x80}, 3},
        {{172, 222, 222, 222}, {0xF0, 0x80, 0x80, 0x80}, 4},
        {{176, 238, 222, 222}, {0xF4, 0x90, 0x80, 0x80}, 4},
    };
    for (size_t c = 0; c < sizeof ill / sizeof ill[0]; c++) {
        for (size_t k = 0; k < ill[c].n; k++) { /* the ids are those bytes */
            size_t blen;
            const char *b = ssf_tokenizer_token_bytes(fx.tok[0], ill[c].ids[k], &blen);
            assert_int_equal(blen, 1);
            assert_int_equal((unsigned char)b[0], ill[c].bytes[k]);
        }
        s = ssf_tokenizer_decode(fx.tok[0], ill[c].ids, ill[c].n, 0, &len, &err);
        assert_int_equal(len, 3 * ill[c].n);
        for (size_t k = 0; k < ill[c].n; k++)
            assert_memory_equal(s + 3 * k, "\xef\xbf\xbd", 3);
        free(s);
        assert_int_equal(
            ssf_tokenizer_encode(fx.tok[0], (const char *)ill[c].bytes, ill[c].n, &ids, &n, &err),
            -1);
        assert_non_null(strstr(err.msg, "byte 0"));
    }
}

/* More distinct words than the word cache holds (65,536): it starts over
 * when full, and the ids stay those of a first encoding. */
static void test_word_cache_overflow(void **state)
{
    (void)state;
    ssf_buf text = {0};
    for (unsigned i = 0; i < 100000; i++) {
        char w[8];
        unsigned v = i;
        for (int k = 0; k < 5; k++, v /= 26)
            w[k] = (char)('a' + v % 26);
        ssf_buf_printf(&text, " %.5s", w);
    }
    ssf_tokenizer *t = load_shared("tokenizers/qwen2.5"); /* a cache of its own */
    ssf_error err;
    size_t n1, n2, len;
    int32_t *first = encode(t, text.data, text.len, &n1);
    int32_t *second = encode(t, text.data, text.len, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(first, second, n1 * sizeof *first);
    char *back = ssf_tokenizer_decode(t, first, n1, 0, &len, &err);
    assert_int_equal(len, text.len);
    assert_memory_equal(back, text.data, len);
    free(back);
    free(first);
    free(second);
    ssf_tokenizer_free(t);
    ssf_buf_free(&text);
}

/* ---- the vocab.json + merges.txt layout ---------------------------------- */

/* added_tokens_decoder for tokenizer_config.json, from the tokenizer.json
 * of the same model. */
static char *config_from_tokenizer_json(const char *rel)
{
    char *p = shared_path(rel);
    json_t *root = json_load_file(p, 0, NULL);
    assert_non_null(root);
    json_t *dec = json_object(), *cfg = json_object();
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(root, "added_tokens"), i, a)
    {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(a, "id")));
        json_t *copy = json_deep_copy(a);
        json_object_del(copy, "id");
        json_object_set_new(dec, key, copy);
    }
    json_object_set_new(cfg, "added_tokens_decoder", dec);
    json_object_set_new(cfg, "tokenizer_class", json_string("Qwen2Tokenizer"));
    char *text = json_dumps(cfg, JSON_INDENT(1));
    json_decref(cfg);
    json_decref(root);
    free(p);
    return text;
}

static void link_into(const char *dir, const char *rel, const char *name)
{
    char *src = shared_path(rel), dst[4096];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    assert_int_equal(symlink(src, dst), 0);
    free(src);
}

/* Every edge case and the first shared texts give the same ids. */
static void assert_same_ids(ssf_tokenizer *a, ssf_tokenizer *b, int skip_added)
{
    size_t i, compared = 0;
    json_t *c;
    const char *groups[] = {"edge", "shared"};
    for (int g = 0; g < 2; g++) {
        json_array_foreach(json_object_get(fx.cases, groups[g]), i, c)
        {
            if (g == 1 && i >= 400) break;
            size_t len;
            char *text = case_text_len(c, &len);
            if (skip_added &&
                (strstr(text, "<|") || strstr(text, "tool_") || strstr(text, "think>"))) {
                free(text);
                continue;
            }
            size_t na, nb;
            int32_t *x = encode(a, text, len, &na), *y = encode(b, text, len, &nb);
            if (na != nb || memcmp(x, y, na * sizeof *x) != 0)
                fail_msg("layouts differ on case %zu of %s: '%.80s'", i, groups[g], text);
            free(x);
            free(y);
            free(text);
            compared++;
        }
    }
    assert_true(compared > 500);
}

static void test_legacy_layout(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    link_into(dir, "tokenizers/qwen2.5/vocab.json", "vocab.json");
    link_into(dir, "tokenizers/qwen2.5/merges.txt", "merges.txt");
    ssf_tokenizer *bare;
    ssf_error err;
    /* Without tokenizer_config.json: no added tokens. */
    if (ssf_tokenizer_load(dir, &bare, &err)) fail_msg("%s", err.msg);
    assert_int_equal(ssf_tokenizer_n_ids(bare), 151643);
    assert_same_ids(fx.tok[0], bare, 1);
    ssf_tokenizer_free(bare);

    char *cfg = config_from_tokenizer_json("tokenizers/qwen2.5/tokenizer.json");
    free(write_temp_file(dir, "tokenizer_config.json", cfg));
    free(cfg);
    ssf_tokenizer *legacy;
    if (ssf_tokenizer_load(dir, &legacy, &err)) fail_msg("%s", err.msg);
    assert_int_equal(ssf_tokenizer_n_ids(legacy), 151665);
    assert_same_ids(fx.tok[0], legacy, 0);
    assert_true(ssf_tokenizer_is_special(legacy, 151644));
    ssf_tokenizer_free(legacy);

    /* tokenizer_class GPT2Tokenizer: no NFC and GPT-2's regex (digit runs,
     * contractions in lower case only); ids from tokenizers 0.23.3's BPE of
     * these files under ByteLevel(use_regex=true), as GPT2TokenizerFast. */
    free(write_temp_file(dir, "tokenizer_config.json", "{\"tokenizer_class\": \"GPT2Tokenizer\"}"));
    ssf_tokenizer *gpt2;
    if (ssf_tokenizer_load(dir, &gpt2, &err)) fail_msg("%s", err.msg);
    expect_ids(gpt2, "e\xcc\x81 IT'S x=12345",
               (const int32_t[]){68, 53839, 8700, 6, 50, 856, 28, 16, 17, 18, 19, 20}, 12);
    expect_ids(gpt2, "caf\xc3\xa9  don't\n\n 2024",
               (const int32_t[]){924, 58858, 220, 1513, 944, 271, 220, 17, 15, 17, 19}, 11);
    size_t n, len;
    int32_t *ids = encode(gpt2, "e\xcc\x81", 3, &n);
    char *back = ssf_tokenizer_decode(gpt2, ids, n, 0, &len, &err);
    assert_int_equal(len, 3);
    assert_memory_equal(back, "e\xcc\x81", 3); /* not composed */
    free(back);
    free(ids);
    ssf_tokenizer_free(gpt2);
    remove_tree(dir);
    free(dir);
}

/* The Qwen2/Qwen3 merges.txt starts with "#version: 0.2"; CRLF lines too. */
static void test_merges_header(void **state)
{
    (void)state;
    char *dir = make_temp_dir(), *mp = shared_path("tokenizers/qwen2.5/merges.txt"), *text;
    size_t len;
    ssf_error err;
    assert_int_equal(ssf_read_file(mp, &text, &len, &err), 0);
    ssf_buf b = {0};
    ssf_buf_puts(&b, "#version: 0.2\r\n");
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') ssf_buf_putc(&b, '\r');
        ssf_buf_putc(&b, text[i]);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    assert_int_equal(ssf_write_file_atomic(path, b.data, b.len, &err), 0);
    link_into(dir, "tokenizers/qwen2.5/vocab.json", "vocab.json");
    ssf_tokenizer *t;
    if (ssf_tokenizer_load(dir, &t, &err)) fail_msg("%s", err.msg);
    assert_same_ids(fx.tok[0], t, 1);
    ssf_tokenizer_free(t);
    ssf_buf_free(&b);
    free(text);
    free(mp);
    remove_tree(dir);
    free(dir);
}

/* split_special_tokens in tokenizer_config.json: special added tokens are
 * plain text, the others still match (ids from tokenizers 0.23 with
 * encode_special_tokens = True). */
static void test_split_special_tokens(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    link_into(dir, "tokenizers/qwen2.5/tokenizer.json", "tokenizer.json");
    free(write_temp_file(dir, "tokenizer_config.json", "{\"split_special_tokens\": true}"));
    ssf_tokenizer *t;
    ssf_error err;
    if (ssf_tokenizer_load(dir, &t, &err)) fail_msg("%s", err.msg);
    expect_ids(t, "<|im_start|>x<tool_call>",
               (const int32_t[]){27, 91, 318, 4906, 91, 29, 87, 151657}, 8);
    ssf_tokenizer_free(t);
    free(write_temp_file(dir, "tokenizer_config.json", "{not json"));
    assert_int_equal(ssf_tokenizer_load(dir, &t, &err), -1);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    remove_tree(dir);
    free(dir);
}

/* An added token is split out before the NFC normalizer sees the text, as
 * Hugging Face's tokenizers does: a combining mark after "</think>" stays
 * a mark of its own, where NFC of the whole text would compose it with the
 * token's '>' (U+003E U+0338 -> U+226F).  Ids and decode from tokenizers
 * 0.23.3 on the Qwen3 file; found by fuzz_tokenizer. */
static void test_added_token_before_nfc(void **state)
{
    (void)state;
    const char *text = "\xc3\xa3</think>\xcc\xb8";
    expect_ids(fx.tok[1], text, (const int32_t[]){3202, 151668, 136, 116}, 4);
    size_t n;
    int32_t *ids = encode(fx.tok[1], text, strlen(text), &n);
    ssf_error err;
    char *dec = ssf_tokenizer_decode(fx.tok[1], ids, n, 0, NULL, &err);
    assert_non_null(dec);
    assert_string_equal(dec, text);
    free(dec);
    free(ids);
}

/* ---- malformed files ----------------------------------------------------- */

static void expect_load_error(const char *json, const char *needle)
{
    ssf_tokenizer *t = (ssf_tokenizer *)1;
    ssf_error err;
    assert_int_equal(ssf_tokenizer_load_json(json, strlen(json), "bad.json", &t, &err), -1);
    assert_null(t);
    if (!strstr(err.msg, needle)) fail_msg("'%s' lacks '%s'", err.msg, needle);
    assert_null(strchr(err.msg, '\n'));
    assert_non_null(strstr(err.msg, "bad.json"));
}

#define SMALL_HEAD "{\"normalizer\":{\"type\":\"NFC\"},\"decoder\":{\"type\":\"ByteLevel\"},"

/* A Split pre-tokenizer (pattern, behavior, invert) before a ByteLevel
 * without regex, over the vocabulary a, b, ab, space. */
static void expect_split(const char *pattern, const char *behavior, int invert, const char *text,
                         const int32_t *want, size_t n_want)
{
    char json[1024];
    snprintf(json, sizeof json,
             SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":"
                        "\"Split\",\"pattern\":%s,\"behavior\":\"%s\",\"invert\":%s},{\"type\":"
                        "\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
                        "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3},"
                        "\"merges\":[\"a b\"]}}",
             pattern, behavior, invert ? "true" : "false");
    ssf_tokenizer *t;
    ssf_error err;
    if (ssf_tokenizer_load_json(json, strlen(json), "split", &t, &err)) fail_msg("%s", err.msg);
    expect_ids(t, text, want, n_want);
    ssf_tokenizer_free(t);
}

/* \P{L} and \P{N} inside a class, alone, among other items and in a
 * negated class, are Oniguruma's too: U+1E030 (a letter since Unicode 15)
 * and U+16130 (a digit since 16) are neither "no letter" nor "no digit"
 * (Debian 12's PCRE2 took both for unassigned), and the other items and
 * code points keep their meaning. */
static void expect_class_negations(void)
{
    static const char letter[] = "a\xf0\x9e\x80\xb0"
                                 "b",
                      digit[] = "a\xf0\x96\x84\xb0"
                                "b";
    static const int32_t kept[] = {2}, a_space_b[] = {0, 3, 1};
    expect_split("{\"Regex\":\"a[\\\\P{L}]b\"}", "Removed", 0, letter, kept, 1);
    expect_split("{\"Regex\":\"a[x\\\\PL]b\"}", "Removed", 0, letter, kept, 1);
    expect_split("{\"Regex\":\"a[\\\\P{N}\\\\d]b\"}", "Removed", 0, digit, kept, 1);
    expect_split("{\"Regex\":\"a[\\\\P{L}x]b\"}", "Removed", 0, "a b", NULL, 0);
    expect_split("{\"Regex\":\"a[y\\\\P{L}x]b\"}", "Removed", 0, "axb", NULL, 0);
    /* [^\P{L}] is a letter, the new ones among them; a space is none */
    expect_split("{\"Regex\":\"a[^\\\\P{L}]b\"}", "Removed", 0, letter, NULL, 0);
    expect_split("{\"Regex\":\"a[^\\\\P{L}]b\"}", "Removed", 0, "a b", a_space_b, 3);
    expect_split("{\"Regex\":\"a[^x\\\\P{N}]b\"}", "Removed", 0, digit, NULL, 0);
    expect_split("{\"Regex\":\"a[^x\\\\P{N}]b\"}", "Removed", 0, "a1b", NULL, 0);
    expect_split("{\"Regex\":\"a[^1\\\\P{N}]b\"}", "Removed", 0, "a1b", (const int32_t[]){2}, 1);
    /* a quantifier takes the negated class whole: [^\P{L}]+ is a run of
     * letters, which stops at the space (it took everything) */
    expect_split("{\"Regex\":\"[^\\\\P{L}]+\"}", "Removed", 0, "a b", (const int32_t[]){3}, 1);
    /* a ^ that comes first once \P{L} is taken out stays a ^ (the class
     * did not load) */
    expect_split("{\"Regex\":\"a[\\\\P{L}^]b\"}", "Removed", 0, "a^b", NULL, 0);
    expect_split("{\"Regex\":\"a[\\\\P{L}^]b\"}", "Removed", 0, letter, kept, 1);
}

/* As tokenizers' Split: Removed drops the delimiters, the matches or with
 * invert the gaps (it kept and dropped the wrong ones); a String pattern
 * is literal (it did not load). */
static void expect_split_behaviours(void)
{
    expect_split("{\"Regex\":\" +\"}", "Removed", 0, "ab  ab", (const int32_t[]){2, 2}, 2);
    expect_split("{\"Regex\":\"b\"}", "Removed", 1, "ab ab", (const int32_t[]){1, 1}, 2);
    expect_split("{\"Regex\":\" \"}", "Isolated", 0, "ab ab", (const int32_t[]){2, 3, 2}, 3);
    expect_split("{\"String\":\" \"}", "Removed", 0, "ab ab", (const int32_t[]){2, 2}, 2);
    expect_split("{\"String\":\".\"}", "Removed", 0, "ab", (const int32_t[]){2}, 1);
    /* \S in a class is Oniguruma's too: [\s\S] holds U+180E, which PCRE2's
     * \S and Oniguruma's \s leave out (a\u180eb was not removed). */
    expect_split("{\"Regex\":\"a[\\\\s\\\\S]b\"}", "Removed", 0,
                 "a\xe1\xa0\x8e"
                 "b",
                 NULL, 0);
    /* \P{L} and \PL are Oniguruma's too: U+1E030, a letter since Unicode 15,
     * is not removed (the PCRE2 of Debian 12 took it for no letter, and the
     * two halves stayed apart); its bytes, not in the vocabulary, drop. */
    for (int k = 0; k < 2; k++)
        expect_split(k ? "{\"Regex\":\"\\\\PL\"}" : "{\"Regex\":\"\\\\P{L}\"}", "Removed", 0,
                     "a\xf0\x9e\x80\xb0"
                     "b",
                     (const int32_t[]){2}, 1);
    /* a\P{N}b: U+16130, a digit since Unicode 16, is no match either */
    expect_split("{\"Regex\":\"a\\\\P{N}b\"}", "Removed", 0,
                 "a\xf0\x96\x84\xb0"
                 "b",
                 (const int32_t[]){2}, 1);
    expect_class_negations();
}

static void test_malformed(void **state)
{
    (void)state;
    expect_load_error("not json", "not valid JSON");
    expect_load_error("[1,2]", "not a JSON object");
    expect_load_error("{\"version\":\"1.0\"}", "no \"model\"");
    expect_load_error(SMALL_HEAD
                      "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":"
                      "\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}",
                      "'c', which is not in the vocabulary");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":"
                                 "\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]}}",
                      "merge 0 makes 'ab', which is not in the vocabulary");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{"
                                 "\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":"
                                 "\"Isolated\"},{\"type\":\"ByteLevel\",\"use_regex\":false}]},"
                                 "\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "regex does not compile");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{"
                                 "\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "Whitespace");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":"
                                 "\"WordPiece\",\"vocab\":{\"a\":0}}}",
                      "WordPiece");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":"
                                 "{\"a\":0,\"b\":0},\"merges\":[]}}",
                      "id 0 is given to two tokens");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":"
                                 "{\"a\":0},\"merges\":[\"ab\"]}}",
                      "is not \"a b\"");
    /* What would change the ids and is not done, refused by name rather
     * than ignored: a post-processor that adds BOS (Llama 3's), another
     * normalizer or decoder, BPE dropout and byte fallback, Split forms. */
#define SMALL_BPE "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]"
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"post_processor\":{"
                                 "\"type\":\"TemplateProcessing\",\"single\":[]}," SMALL_BPE "}}",
                      "post_processor TemplateProcessing is not supported");
    expect_load_error("{\"normalizer\":{\"type\":\"NFKC\"},\"decoder\":{\"type\":\"ByteLevel\"},"
                      "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}," SMALL_BPE "}}",
                      "normalizer NFKC is not supported");
    expect_load_error("{\"normalizer\":{\"type\":\"NFC\"},\"decoder\":{\"type\":\"Metaspace\"},"
                      "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}," SMALL_BPE "}}",
                      "decoder Metaspace is not supported");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}," SMALL_BPE
                                 ",\"dropout\":0.1}}",
                      "dropout is not supported");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}," SMALL_BPE
                                 ",\"byte_fallback\":true}}",
                      "byte_fallback is not supported");
    expect_load_error(
        SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{"
                   "\"type\":\"Split\",\"pattern\":{\"Regex\":\" \"},\"behavior\":"
                   "\"Contiguous\"},{\"type\":\"ByteLevel\",\"use_regex\":false}]}," SMALL_BPE "}}",
        "Split behavior 'Contiguous' is not supported");
    expect_load_error(SMALL_HEAD
                      "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{"
                      "\"type\":\"Split\",\"pattern\":{\"Regex\":\" \"},\"behavior\":"
                      "\"Isolated\"},{\"type\":\"ByteLevel\",\"use_regex\":true}]}," SMALL_BPE "}}",
                      "Split followed by ByteLevel(use_regex=true) is not supported");
    expect_load_error(SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{"
                                 "\"type\":\"Split\",\"pattern\":{\"Regex\":\" \"},\"behavior\":"
                                 "\"Isolated\"},{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
                                 "\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\",\"use_regex\":"
                                 "false}]}," SMALL_BPE "}}",
                      "more than one Split pre-tokenizer");
#undef SMALL_BPE
    /* A small valid file: GPT-2 ByteLevel with its own regex. */
    const char *ok =
        SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":"
                   "false},\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,"
                   "\"\\u0120ab\":4},\"merges\":[\"a b\",\"\\u0120 ab\"]}}";
    ssf_tokenizer *t;
    ssf_error err;
    if (ssf_tokenizer_load_json(ok, strlen(ok), "small", &t, &err)) fail_msg("%s", err.msg);
    expect_ids(t, "ab ab", (const int32_t[]){2, 4}, 2);
    expect_ids(t, "ba", (const int32_t[]){1, 0}, 2);
    expect_ids(t, "xa", (const int32_t[]){0}, 1); /* unknown characters dropped, as HF does */
    ssf_tokenizer_free(t);
    expect_split_behaviours();

    char *dir = make_temp_dir();
    ssf_tokenizer *t2;
    assert_int_equal(ssf_tokenizer_load(dir, &t2, &err), -1);
    assert_non_null(strstr(err.msg, "vocab.json"));
    char *p = write_temp_file(dir, "tokenizer.json", "{\"model\": 3");
    assert_int_equal(ssf_tokenizer_load(p, &t2, &err), -1);
    assert_non_null(strstr(err.msg, p));
    free(p);
    remove_tree(dir);
    free(dir);
}

/* ignore_merges (Llama 3 sets it): a word that is itself in the vocabulary
 * is that one id, merges or not; ids from tokenizers 0.23.3. */
static void test_ignore_merges(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int32_t ignore[3], merge[3];
        size_t n_ignore, n_merge;
    } cases[] = {
        {"abc", {5}, {3, 2}, 1, 2},
        {"abcab", {3, 2, 3}, {3, 2, 3}, 3, 3},
        {"bcabc", {4, 3, 2}, {4, 3, 2}, 3, 3},
    };
    for (int ignore = 0; ignore <= 1; ignore++) {
        char json[1024];
        snprintf(json, sizeof json,
                 SMALL_HEAD "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                            "\"use_regex\":false},\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,"
                            "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5},"
                            "\"merges\":[\"a b\",\"b c\"]}}",
                 ignore ? "true" : "false");
        ssf_tokenizer *t;
        ssf_error err;
        if (ssf_tokenizer_load_json(json, strlen(json), "ignore-merges", &t, &err))
            fail_msg("%s", err.msg);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            expect_ids(t, cases[c].text, ignore ? cases[c].ignore : cases[c].merge,
                       ignore ? cases[c].n_ignore : cases[c].n_merge);
        ssf_tokenizer_free(t);
    }
}

/* ---- threads ------------------------------------------------------------- */

typedef struct job {
    char **texts;
    size_t n;
    char (*want)[65];
    int failures;
} job;

static void *encode_all(void *arg)
{
    job *j = arg;
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < j->n; i++) {
            int32_t *ids;
            size_t n;
            ssf_error err;
            if (ssf_tokenizer_encode(fx.tok[1], j->texts[i], strlen(j->texts[i]), &ids, &n, &err)) {
                j->failures++;
                continue;
            }
            char hex[65];
            ids_digest(ids, n, hex);
            j->failures += strcmp(hex, j->want[i]) != 0;
            free(ids);
        }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    json_t *list = json_object_get(fx.cases, "shared");
    size_t n = 300;
    char **texts = ssf_xcalloc(n, sizeof *texts);
    char(*want)[65] = ssf_xcalloc(n, sizeof *want);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(list, i * 7 % json_array_size(list));
        texts[i] = case_text(c);
        snprintf(want[i], 65, "%s",
                 json_string_value(json_object_get(json_object_get(c, "qwen3"), "sha256")));
    }
    pthread_t th[6];
    job jobs[6];
    for (int k = 0; k < 6; k++) {
        jobs[k] = (job){texts, n, want, 0};
        assert_int_equal(pthread_create(&th[k], NULL, encode_all, &jobs[k]), 0);
    }
    for (int k = 0; k < 6; k++) {
        pthread_join(th[k], NULL);
        assert_int_equal(jobs[k].failures, 0);
    }
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(want);
}

/* The tiny tokenizer of the engine fixtures (trained by
 * tools/make-engine-fixtures.py with Qwen's pipeline), against the ids
 * transformers' AutoTokenizer gave for it. */
static void test_engine_fixture_tokenizer(void **state)
{
    (void)state;
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/engine", root ? root : ".");
    ssf_tokenizer *t = NULL;
    ssf_error err;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/gqa5-hd128", path);
    if (ssf_tokenizer_load(dir, &t, &err)) fail_msg("%s", err.msg);
    snprintf(dir, sizeof dir, "%s/tokenizer-cases.json", path);
    json_t *doc = json_load_file(dir, 0, NULL);
    assert_non_null(doc);
    json_t *cases = json_object_get(doc, "cases"), *c;
    size_t i;
    assert_true(json_array_size(cases) >= 10);
    json_array_foreach(cases, i, c)
    {
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(ssf_tokenizer_encode(t, text, strlen(text), &ids, &n, &err), 0);
        assert_int_equal(n, json_array_size(want));
        for (size_t k = 0; k < n; k++)
            assert_int_equal(ids[k], json_integer_value(json_array_get(want, k)));
        char *back = ssf_tokenizer_decode(t, ids, n, 1, NULL, &err);
        assert_string_equal(back, json_string_value(json_object_get(c, "decoded_skip_special")));
        free(back);
        free(ids);
    }
    json_decref(doc);
    ssf_tokenizer_free(t);
}

/* ByteLevel(add_prefix_space=true, use_regex=true) alone (GPT-2 style):
 * the space goes before the whole segment, once, and the segment is then
 * split; after an added token a new segment starts.  Ids from tokenizers
 * 0.23.3 on the engine fixtures' tokenizer with that pre-tokenizer. */
static void test_byte_level_prefix_space(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int32_t ids[12];
        size_t n;
    } cases[] = {
        {"Hello,world", {220, 39, 68, 384, 78, 11, 86, 297, 75, 67}, 10},
        {"Hello world", {220, 39, 68, 384, 78, 279, 297, 75, 67}, 9},
        {" x=1, y's done!", {351, 28, 16, 11, 403, 6, 82, 298, 289, 68, 0}, 11},
        {"a<|im_end|>b c", {261, 499, 303, 282}, 4},
    };
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/engine/gqa5-hd128/tokenizer.json",
             root ? root : ".");
    json_t *doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_object_set_new(doc, "pre_tokenizer",
                        json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space",
                                  1, "trim_offsets", 1, "use_regex", 1));
    char *json = json_dumps(doc, 0);
    ssf_tokenizer *t = NULL;
    ssf_error err;
    if (ssf_tokenizer_load_json(json, strlen(json), "gpt2-style", &t, &err))
        fail_msg("%s", err.msg);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(
            ssf_tokenizer_encode(t, cases[c].text, strlen(cases[c].text), &ids, &n, &err), 0);
        assert_int_equal(n, cases[c].n);
        assert_memory_equal(ids, cases[c].ids, n * sizeof *ids);
        free(ids);
    }
    ssf_tokenizer_free(t);
    free(json);
    json_decref(doc);
}

/* The engine fixture's tokenizer with one case's added tokens. */
static ssf_tokenizer *with_added_tokens(const char *root, json_t *added)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/engine/gqa5-hd128/tokenizer.json", root);
    json_t *doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_array_extend(json_object_get(doc, "added_tokens"), added);
    char *json = json_dumps(doc, 0);
    ssf_tokenizer *t = NULL;
    ssf_error err;
    if (ssf_tokenizer_load_json(json, strlen(json), "added", &t, &err)) fail_msg("%s", err.msg);
    free(json);
    json_decref(doc);
    return t;
}

/* Added tokens that strip the spaces beside them (lstrip, rstrip, Unicode
 * spaces too) or match only as a whole word (single_word) or in the NFC
 * text (normalized), the longest of two added tokens that start alike, and
 * a special token outside the byte alphabet: ids and decoded text as
 * tokenizers gives them (tools/make-added-token-cases.py). */
static void test_added_token_flags(void **state)
{
    (void)state;
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/added-token-cases.json", root ? root : ".");
    json_error_t jerr;
    json_t *cases_file = json_load_file(path, 0, &jerr);
    if (!cases_file) fail_msg("%s: %s", path, jerr.text);
    json_t *cases = json_object_get(cases_file, "cases");
    assert_true(json_array_size(cases) >= 28);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        ssf_tokenizer *t = with_added_tokens(root ? root : ".", json_object_get(c, "added"));
        const char *text = json_string_value(json_object_get(c, "text"));
        json_t *want = json_object_get(c, "ids");
        int32_t *ids = NULL;
        size_t n = 0;
        ssf_error err;
        assert_int_equal(ssf_tokenizer_encode(t, text, strlen(text), &ids, &n, &err), 0);
        int same = n == json_array_size(want);
        for (size_t k = 0; same && k < n; k++)
            same = ids[k] == json_integer_value(json_array_get(want, k));
        if (!same) fail_msg("case %zu, '%s': %zu ids, not the oracle's", i, text, n);
        const char *decoded = json_string_value(json_object_get(c, "decoded"));
        char *back = ssf_tokenizer_decode(t, ids, n, 0, NULL, &err);
        assert_non_null(decoded);
        if (!back || strcmp(back, decoded) != 0)
            fail_msg("case %zu, '%s': decoded '%s', the oracle '%s'", i, text,
                     back ? back : err.msg, decoded);
        free(back);
        free(ids);
        ssf_tokenizer_free(t);
    }
    json_decref(cases_file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sanity_vectors),
        cmocka_unit_test(test_fixture_edge),
        cmocka_unit_test(test_fixture_shared),
        cmocka_unit_test(test_fixture_decode),
        cmocka_unit_test(test_errors_on_input),
        cmocka_unit_test(test_legacy_layout),
        cmocka_unit_test(test_merges_header),
        cmocka_unit_test(test_split_special_tokens),
        cmocka_unit_test(test_added_token_before_nfc),
        cmocka_unit_test(test_added_token_flags),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_engine_fixture_tokenizer),
        cmocka_unit_test(test_byte_level_prefix_space),
        cmocka_unit_test(test_word_cache_overflow),
        cmocka_unit_test(test_ignore_merges),
    };
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, setup, teardown);
}
