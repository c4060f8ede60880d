/*
 * test_model.c - the model reader: jsonlite, safetensors (values, widening,
 * every malformed header), config.json/generation_config.json defaults and
 * checks, whole checkpoints (single file and shards, tied and untied) and
 * the tiny real checkpoints under tests/fixtures/engine when present.
 *
 * This program links only libssfteval-model (and cmocka): it is the proof
 * that the model reader needs nothing but the C library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <dirent.h>

#include <cmocka.h>

#include "jsonlite.h"
#include "model-fixture.h"
#include "ssfteval/model.h"
#include "test-support.h"

/* Asserts that err.msg contains each of the (NULL-terminated) strings. */
static void assert_msg(const ssf_error *err, ...)
{
    va_list ap;
    va_start(ap, err);
    for (const char *s; (s = va_arg(ap, const char *));) {
        if (!strstr(err->msg, s)) fprintf(stderr, "message lacks '%s': %s\n", s, err->msg);
        assert_non_null(strstr(err->msg, s));
    }
    va_end(ap);
    assert_null(strchr(err->msg, '\n'));
}

/* ---- jsonlite -------------------------------------------------------------- */

static jl_value *parse_ok(const char *text)
{
    ssf_error err = {0};
    jl_value *v = ssf_jl_parse(text, strlen(text), JL_DEFAULT_DEPTH, &err);
    if (!v) fprintf(stderr, "%s: %s\n", text, err.msg);
    assert_non_null(v);
    return v;
}

static void test_json_values(void **state)
{
    (void)state;
    jl_value *v = parse_ok(" {\"a\": [1, -2, 3.5, -0, 1e2, 9223372036854775807, "
                           "-9223372036854775808, 9223372036854775808],"
                           " \"t\": true, \"f\": false, \"n\": null, \"o\": {}, \"e\": []} ");
    const jl_value *a = ssf_jl_get(v, "a");
    assert_int_equal(a->type, JL_ARRAY);
    assert_int_equal(a->u.arr.n, 8);
    assert_true(a->u.arr.items[0]->u.num.is_int && a->u.arr.items[0]->u.num.i == 1);
    assert_true(a->u.arr.items[1]->u.num.is_int && a->u.arr.items[1]->u.num.i == -2);
    assert_false(a->u.arr.items[2]->u.num.is_int);
    assert_true(a->u.arr.items[2]->u.num.d == 3.5);
    assert_true(a->u.arr.items[3]->u.num.is_int && a->u.arr.items[3]->u.num.i == 0);
    assert_false(a->u.arr.items[4]->u.num.is_int); /* an exponent is not an integer */
    assert_true(a->u.arr.items[4]->u.num.d == 100.0);
    assert_true(a->u.arr.items[5]->u.num.is_int && a->u.arr.items[5]->u.num.i == INT64_MAX);
    assert_true(a->u.arr.items[6]->u.num.is_int && a->u.arr.items[6]->u.num.i == INT64_MIN);
    assert_false(a->u.arr.items[7]->u.num.is_int); /* 2^63 does not fit */
    assert_true(a->u.arr.items[7]->u.num.d == 9223372036854775808.0);
    int b;
    assert_true(ssf_jl_is_bool(ssf_jl_get(v, "t"), &b) && b == 1);
    assert_true(ssf_jl_is_bool(ssf_jl_get(v, "f"), &b) && b == 0);
    assert_false(ssf_jl_is_bool(ssf_jl_get(v, "n"), &b));
    assert_int_equal(ssf_jl_get(v, "n")->type, JL_NULL);
    assert_int_equal(ssf_jl_get(v, "o")->u.obj.n, 0);
    assert_int_equal(ssf_jl_get(v, "e")->u.arr.n, 0);
    assert_null(ssf_jl_get(v, "missing"));
    assert_int_equal(a->offset, 7);
    ssf_jl_free(v);
}

static void test_json_strings(void **state)
{
    (void)state;
    jl_value *v = parse_ok("[\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20AC\", "
                           "\"\\ud83d\\ude00\", \"a\\u0000b\", \"\", \"\xc3\xa9\xe2\x82\xac\"]");
    assert_string_equal(v->u.arr.items[0]->u.str.s, "q\"b\\s/\b\f\n\r\t");
    assert_string_equal(v->u.arr.items[1]->u.str.s, "\xc3\xa9\xe2\x82\xac");
    assert_string_equal(v->u.arr.items[2]->u.str.s, "\xf0\x9f\x98\x80");
    assert_int_equal(v->u.arr.items[3]->u.str.len, 3);
    assert_memory_equal(v->u.arr.items[3]->u.str.s, "a\0b", 3);
    assert_string_equal(v->u.arr.items[4]->u.str.s, "");
    assert_string_equal(v->u.arr.items[5]->u.str.s, "\xc3\xa9\xe2\x82\xac");
    ssf_jl_free(v);
}

static void json_fails(const char *text, int depth, const char *what)
{
    ssf_error err = {0};
    jl_value *v = ssf_jl_parse(text, strlen(text), depth, &err);
    if (v) fprintf(stderr, "accepted: %s\n", text);
    assert_null(v);
    assert_msg(&err, what, (char *)NULL);
}

static void test_json_errors(void **state)
{
    (void)state;
    json_fails("{} x", 64, "byte 3: unexpected data after");
    json_fails("", 64, "byte 0: unexpected end");
    json_fails("[1,]", 64, "byte 3");
    json_fails("{\"a\":1,}", 64, "byte 7: expected a string key");
    json_fails("{\"a\" 1}", 64, "expected ':'");
    json_fails("[01]", 64, "byte 1: invalid number: leading zero");
    json_fails("[1.]", 64, "a digit must follow '.'");
    json_fails("[1e]", 64, "a digit must follow 'e'");
    json_fails("[-]", 64, "a digit must follow '-'");
    json_fails("[+1]", 64, "byte 1: unexpected character");
    json_fails("[NaN]", 64, "unexpected character");
    json_fails("[Infinity]", 64, "unexpected character");
    json_fails("[1e999]", 64, "out of range");
    json_fails("[tru]", 64, "invalid literal");
    json_fails("['a']", 64, "unexpected character");
    json_fails("[\"abc", 64, "byte 1: unterminated string");
    json_fails("[\"a\tb\"]", 64, "byte 3: control character");
    json_fails("[\"\\x\"]", 64, "invalid escape");
    json_fails("[\"\\u12G4\"]", 64, "4 hex digits");
    json_fails("[\"\\u12\"]", 64, "hex digits");
    json_fails("[\"\\ud83d\"]", 64, "high surrogate not followed");
    json_fails("[\"\\ud83d\\u0041\"]", 64, "not followed by a low surrogate");
    json_fails("[\"\\ude00\"]", 64, "lone low surrogate");
    json_fails("[\"\xc3\"]", 64, "byte 2: invalid UTF-8");
    json_fails("[\"\xc0\xaf\"]", 64, "invalid UTF-8");     /* overlong '/' */
    json_fails("[\"\xed\xa0\x80\"]", 64, "invalid UTF-8"); /* encoded surrogate */
    json_fails("{\"a\":1,\"b\":2,\"a\":3}", 64, "byte 13: duplicate key \"a\"");
    json_fails("[[[1]]]", 2, "byte 2: nesting deeper than 2 levels");
    /* Deep input is refused without deep recursion. */
    char deep[10001];
    memset(deep, '[', 10000);
    deep[10000] = '\0';
    json_fails(deep, 64, "byte 64: nesting deeper than 64");
    ssf_jl_free(parse_ok("[[1]]"));
}

/* ---- safetensors: values ------------------------------------------------ */

static void check_values(const ssf_safetensors *st, const fx_file *f)
{
    assert_int_equal(ssf_safetensors_count(st), f->n);
    for (int i = 0; i < f->n; i++) {
        const ssf_tensor *t = ssf_safetensors_find(st, f->e[i].name);
        assert_non_null(t);
        assert_string_equal(ssf_dtype_name(t->dtype), f->e[i].dtype);
        assert_int_equal(t->ndim, f->e[i].ndim);
        assert_int_equal(t->numel, fx_numel(&f->e[i]));
        assert_int_equal(t->nbytes, (size_t)t->numel * ssf_dtype_size(t->dtype));
        float buf[256];
        assert_true(t->numel <= 256);
        ssf_tensor_read_f32(t, 0, t->numel, buf);
        for (int64_t k = 0; k < t->numel; k++) {
            assert_true(buf[k] == fx_value(f->e[i].seed, k));
            assert_true(ssf_tensor_get_f32(t, k) == buf[k]);
        }
    }
    assert_null(ssf_safetensors_find(st, "nope"));
    assert_null(ssf_safetensors_at(st, (size_t)f->n));
}

static void test_st_roundtrip(void **state)
{
    (void)state;
    static const char *const dtypes[] = {"F32", "F16", "BF16"};
    for (int d = 0; d < 3; d++) {
        fx_file f;
        fx_model_tensors(&f, dtypes[d], 0);
        size_t len;
        unsigned char *buf = fx_serialize(&f, &len);
        ssf_safetensors *st;
        ssf_error err = {0};
        assert_int_equal(ssf_safetensors_parse(buf, len, "mem", &st, &err), 0);
        check_values(st, &f);
        ssf_safetensors_close(st);
        free(buf);
    }
}

/* The safetensors bytes of a header and `data_len` bytes of data. */
static unsigned char *raw_st(const char *header, const void *data, size_t data_len, size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *buf = calloc(1, *len + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h + 1); /* its NUL: under the data, or in the byte past the end */
    if (data) memcpy(buf + 8 + h, data, data_len);
    return buf;
}

static void test_st_widening(void **state)
{
    (void)state;
    /* F16: 1, -0, smallest and largest subnormal, largest normal, +-inf,
     * NaN; BF16: 1, inf, NaN, a subnormal, -2. */
    static const uint16_t f16[] = {0x3C00, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0xFC00, 0x7E00};
    static const uint16_t bf16[] = {0x3F80, 0x7F80, 0x7FC1, 0x0001, 0xC000};
    unsigned char data[26];
    for (size_t i = 0; i < 8; i++) {
        data[2 * i] = (unsigned char)f16[i];
        data[2 * i + 1] = (unsigned char)(f16[i] >> 8);
    }
    for (int i = 0; i < 5; i++) {
        data[16 + 2 * i] = (unsigned char)bf16[i];
        data[16 + 2 * i + 1] = (unsigned char)(bf16[i] >> 8);
    }
    size_t len;
    /* Odd header length: the data is unaligned on purpose. */
    unsigned char *buf =
        raw_st("{\"h\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[16,26]}}",
               data, sizeof data, &len);
    ssf_safetensors *st;
    ssf_error err = {0};
    assert_int_equal(ssf_safetensors_parse(buf, len, "w", &st, &err), 0);
    const ssf_tensor *h = ssf_safetensors_find(st, "h"), *b = ssf_safetensors_find(st, "b");
    float v[8];
    ssf_tensor_read_f32(h, 0, 8, v);
    assert_true(v[0] == 1.0f);
    assert_true(v[1] == 0.0f && signbit(v[1]));
    assert_true(v[2] == 0x1p-24f);
    assert_true(v[3] == 1023 * 0x1p-24f);
    assert_true(v[4] == 65504.0f);
    assert_true(isinf(v[5]) && v[5] > 0);
    assert_true(isinf(v[6]) && v[6] < 0);
    assert_true(isnan(v[7]));
    ssf_tensor_read_f32(b, 0, 5, v);
    assert_true(v[0] == 1.0f);
    assert_true(isinf(v[1]));
    assert_true(isnan(v[2]));
    assert_true(v[3] == 0x1p-133f);
    assert_true(v[4] == -2.0f);
    assert_true(ssf_tensor_get_f32(b, 4) == -2.0f);
    ssf_safetensors_close(st);
    free(buf);
}

/* ---- safetensors: malformed ---------------------------------------------- */

static void st_fails(const char *header, size_t data_len, const char *a, const char *b)
{
    size_t len;
    unsigned char *buf = raw_st(header, NULL, data_len, &len);
    ssf_safetensors *st = (ssf_safetensors *)1;
    ssf_error err = {0};
    assert_int_equal(ssf_safetensors_parse(buf, len, "bad.safetensors", &st, &err), -1);
    assert_null(st);
    assert_msg(&err, "bad.safetensors", a, b, (char *)NULL);
    free(buf);
}

#define T(dtype, shape, offsets)                                                                   \
    "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static void test_st_malformed(void **state)
{
    (void)state;
    st_fails("[1]", 0, "not a JSON object", "an array");
    st_fails("{\"w\":", 0, "not valid JSON", "byte 5");
    st_fails("{\"w\":" T("F8_E4M3", "[2]", "[0,2]") "}", 2,
             "unsupported dtype F8_E4M3 for tensor w in bad.safetensors", NULL);
    st_fails("{\"w\":" T("I64", "[1]", "[0,8]") "}", 8, "unsupported dtype I64 for tensor w", NULL);
    st_fails("{\"w\":" T("Q4", "[1]", "[0,1]") "}", 1, "unknown dtype \"Q4\" for tensor w", NULL);
    st_fails("{\"w\":" T("F32", "[3]", "[0,8]") "}", 8, "tensor w", "span 8 bytes");
    st_fails("{\"w\":" T("F32", "[2]", "[0,8]") "}", 4, "tensor w", "past the end");
    st_fails("{\"w\":" T("F32", "[2]", "[8,0]") "}", 8, "tensor w", "end before begin");
    st_fails("{\"w\":" T("F32", "[-2]", "[0,8]") "}", 8, "tensor w", "not a non-negative");
    st_fails("{\"w\":" T("F32", "[2.0]", "[0,8]") "}", 8, "tensor w", "not a non-negative");
    st_fails("{\"w\":" T("F32", "[1,1,1,1,1]", "[0,4]") "}", 4, "tensor w", "5 dimensions");
    st_fails("{\"w\":" T("F32", "[4294967296,4294967296]", "[0,4]") "}", 4, "tensor w",
             "overflows");
    st_fails("{\"w\":" T("F32", "[2305843009213693952]", "[0,4]") "}", 4, "tensor w",
             "span 4 bytes");
    st_fails("{\"w\":" T("F32", "[2]", "[0]") "}", 8, "tensor w", "data_offsets");
    st_fails("{\"w\":" T("F32", "[2]", "[0,-8]") "}", 8, "tensor w", "data_offsets");
    st_fails("{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[2]", "[4,12]") "}", 12,
             "tensors a and b overlap", NULL);
    st_fails("{\"a\":" T("F32", "[4]", "[0,16]") ",\"b\":" T("F32", "[1]", "[4,8]") "}", 16,
             "overlap", NULL);
    st_fails("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
             "tensor w", "unknown key \"x\"");
    st_fails("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor w", "\"dtype\"");
    st_fails("{\"w\":7}", 0, "tensor w", "expected an object");
    st_fails("{\"__metadata__\":{\"format\":1}}", 0, "__metadata__", "format");
    st_fails("{\"a\\nb\":" T("F32", "[1]", "[0,4]") "}", 4, "control character", NULL);
    st_fails("{\"w\":" T("F32", "[1]", "[0,4]") ",\"w\":" T("F32", "[1]", "[4,8]") "}", 8,
             "duplicate key \"w\"", NULL);

    /* Legal corner cases: empty header object, zero-size tensors anywhere,
     * scalars, metadata strings, trailing padding spaces. */
    const char *good[] = {
        "{}",
        "{\"__metadata__\":{\"format\":\"pt\"},\"s\":" T("BF16", "[]", "[0,2]") ",\"z\":" T(
            "F32", "[0,3]", "[1,1]") "}   ",
    };
    for (int i = 0; i < 2; i++) {
        size_t len;
        unsigned char *buf = raw_st(good[i], NULL, 2, &len);
        ssf_safetensors *st;
        ssf_error err = {0};
        assert_int_equal(ssf_safetensors_parse(buf, len, "good", &st, &err), 0);
        assert_int_equal(ssf_safetensors_count(st), (size_t)(i ? 2 : 0));
        ssf_safetensors_close(st);
        free(buf);
    }

    /* Header sizes: shorter than 8 bytes, longer than the file. */
    ssf_safetensors *st;
    ssf_error err = {0};
    assert_int_equal(ssf_safetensors_parse("abc", 3, "short.safetensors", &st, &err), -1);
    assert_msg(&err, "short.safetensors", "truncated", (char *)NULL);
    unsigned char big[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_int_equal(ssf_safetensors_parse(big, sizeof big, "big.safetensors", &st, &err), -1);
    assert_msg(&err, "big.safetensors", "header length 65535 is larger than the file",
               (char *)NULL);
    unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ssf_safetensors_parse(huge, sizeof huge, "huge", &st, &err), -1);
    assert_msg(&err, "huge", "larger than the file", (char *)NULL);
}

static void test_st_files(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char path[4096];
    fx_file f;
    fx_model_tensors(&f, "BF16", 1);
    size_t len;
    unsigned char *buf = fx_serialize(&f, &len);
    /* Whole file through mmap. */
    fx_write(dir, "ok.safetensors", buf, len);
    snprintf(path, sizeof path, "%s/ok.safetensors", dir);
    ssf_safetensors *st;
    ssf_error err = {0};
    assert_int_equal(ssf_safetensors_open(path, &st, &err), 0);
    check_values(st, &f);
    assert_string_equal(ssf_safetensors_at(st, 0)->file, path);
    ssf_safetensors_close(st);
    /* Cut off inside the last tensor: the error names it. */
    fx_write(dir, "cut.safetensors", buf, len - 3);
    snprintf(path, sizeof path, "%s/cut.safetensors", dir);
    assert_int_equal(ssf_safetensors_open(path, &st, &err), -1);
    assert_msg(&err, path, "model.norm.weight", "truncated; copy or download it again",
               (char *)NULL);
    /* Cut off inside the header. */
    fx_write(dir, "head.safetensors", buf, 40);
    snprintf(path, sizeof path, "%s/head.safetensors", dir);
    assert_int_equal(ssf_safetensors_open(path, &st, &err), -1);
    assert_msg(&err, path, "larger than the file", (char *)NULL);
    fx_write(dir, "tiny.safetensors", buf, 5);
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    assert_int_equal(ssf_safetensors_open(path, &st, &err), -1);
    assert_msg(&err, path, "truncated: 5 bytes", (char *)NULL);
    fx_write(dir, "empty.safetensors", buf, 0);
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    assert_int_equal(ssf_safetensors_open(path, &st, &err), -1);
    assert_msg(&err, path, "truncated: 0 bytes", (char *)NULL);
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    assert_int_equal(ssf_safetensors_open(path, &st, &err), -1);
    assert_msg(&err, path, "No such file", (char *)NULL);
    assert_int_equal(ssf_safetensors_open(dir, &st, &err), -1);
    assert_msg(&err, "not a regular file", (char *)NULL);
    free(buf);
    remove_tree(dir);
    free(dir);
}

/* ---- config.json ------------------------------------------------------- */

static int config(const char *text, const char *gen, ssf_model_config *cfg, ssf_error *err)
{
    return ssf_model_config_parse(text, strlen(text), gen, gen ? strlen(gen) : 0, "m", cfg, err);
}

#define QWEN_BASE                                                                                  \
    "\"architectures\":[\"Qwen2ForCausalLM\"],\"num_hidden_layers\":2,\"intermediate_size\":128,"  \
    "\"vocab_size\":100"

static void test_config_defaults(void **state)
{
    (void)state;
    ssf_model_config c;
    ssf_error err = {0};
    /* Llama with every optional key left out. */
    assert_int_equal(config("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                            "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                            "\"intermediate_size\":128,\"vocab_size\":100}",
                            NULL, &c, &err),
                     0);
    assert_string_equal(c.architecture, "LlamaForCausalLM");
    assert_string_equal(c.model_type, "llama");
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.n_kv_heads, 4);
    assert_true(c.rope_theta == 10000.0);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_int_equal(c.tie_word_embeddings, 0);
    assert_int_equal(c.qkv_bias, 0);
    assert_int_equal(c.max_position_embeddings, 2048);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.n_eos, 0);
    assert_true(c.gen_temperature < 0 && c.gen_top_p < 0 && c.gen_top_k < 0);
    assert_string_equal(c.torch_dtype, "");
    /* Llama's attention_bias would need an o_proj bias: refused. */
    assert_int_equal(config("{\"model_type\":\"llama\",\"hidden_size\":64,"
                            "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                            "\"attention_bias\":true,\"intermediate_size\":128,"
                            "\"vocab_size\":100}",
                            NULL, &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "attention_bias is true"));
    /* Llama with head_dim, eos list; "dtype" (new spelling). */
    assert_int_equal(config("{\"model_type\":\"llama\",\"hidden_size\":64,"
                            "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                            "\"num_key_value_heads\":2,\"head_dim\":32,\"attention_bias\":false,"
                            "\"intermediate_size\":128,\"vocab_size\":100,\"eos_token_id\":[1,2],"
                            "\"bos_token_id\":null,\"dtype\":\"float16\",\"rope_scaling\":null}",
                            NULL, &c, &err),
                     0);
    assert_string_equal(c.architecture, "LlamaForCausalLM");
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.qkv_bias, 0);
    assert_int_equal(c.n_eos, 2);
    assert_int_equal(c.eos_ids[1], 2);
    assert_string_equal(c.torch_dtype, "float16");
    /* Qwen2: bias always; 32768 positions; generation_config overrides. */
    assert_int_equal(config("{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,"
                            "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                            "\"intermediate_size\":128,\"vocab_size\":100,\"eos_token_id\":9,"
                            "\"rms_norm_eps\":1e-5,\"rope_theta\":1e6,"
                            "\"layer_types\":[\"full_attention\",\"full_attention\"]}",
                            "{\"eos_token_id\":[7,8,9],\"temperature\":0.6,\"top_p\":0.95,"
                            "\"top_k\":20}",
                            &c, &err),
                     0);
    assert_int_equal(c.qkv_bias, 1);
    assert_int_equal(c.max_position_embeddings, 32768);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_true(c.rope_theta == 1e6);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_ids[0], 7);
    assert_true(c.gen_temperature == 0.6 && c.gen_top_p == 0.95 && c.gen_top_k == 20);
    /* generation_config with a single eos int, no sampling keys. */
    assert_int_equal(config("{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,"
                            "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                            "\"intermediate_size\":128,\"vocab_size\":100,\"eos_token_id\":9}",
                            "{\"eos_token_id\":5}", &c, &err),
                     0);
    assert_int_equal(c.n_eos, 1);
    assert_int_equal(c.eos_ids[0], 5);
    assert_true(c.gen_top_k == -1 && c.gen_temperature < 0);
    /* Sampling defaults are only reported: an odd one is left out, and the
     * model still opens (top_p 1.5 kept it shut). */
    assert_int_equal(config("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4}",
                            "{\"top_p\":1.5,\"temperature\":\"hot\",\"top_k\":2.5}", &c, &err),
                     0);
    assert_true(c.gen_top_p < 0 && c.gen_temperature < 0 && c.gen_top_k == -1);
    /* transformers 5: theta only inside rope_parameters (it was read as 10000). */
    assert_int_equal(config("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                            "\"rope_parameters\":{\"rope_theta\":1000000.0,"
                            "\"rope_type\":\"default\"}}",
                            NULL, &c, &err),
                     0);
    assert_true(c.rope_theta == 1e6);
    /* A null top-level theta beside it is no second theta. */
    assert_int_equal(config("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                            "\"rope_theta\":null,\"rope_parameters\":{\"rope_theta\":1e6}}",
                            NULL, &c, &err),
                     0);
    assert_true(c.rope_theta == 1e6);
    /* Settings that ask for plain RoPE are no scaling. */
    static const char *const plain[] = {"\"rope_scaling\":{}",
                                        "\"rope_scaling\":{\"rope_type\":\"default\"}",
                                        "\"rope_parameters\":null", "\"rope_parameters\":{}"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{" QWEN_BASE
                 ",\"hidden_size\":64,\"num_attention_heads\":4,\"rope_theta\":5e5,%s}",
                 plain[i]);
        if (config(text, NULL, &c, &err)) fail_msg("%s: %s", plain[i], err.msg);
        assert_true(c.rope_theta == 5e5);
    }
}

static void config_fails(const char *text, const char *gen, const char *a, const char *b)
{
    ssf_model_config c;
    ssf_error err = {0};
    assert_int_equal(config(text, gen, &c, &err), -1);
    assert_msg(&err, "m: ", a, b, (char *)NULL);
}

static void test_config_errors(void **state)
{
    (void)state;
    config_fails("{" QWEN_BASE ",\"num_attention_heads\":4}", NULL, "config.json",
                 "required key \"hidden_size\"");
    config_fails("{" QWEN_BASE ",\"hidden_size\":\"64\",\"num_attention_heads\":4}", NULL,
                 "\"hidden_size\" must be an integer >= 1", "got a string");
    config_fails("{" QWEN_BASE ",\"hidden_size\":64.5,\"num_attention_heads\":4}", NULL,
                 "\"hidden_size\"", "a number");
    config_fails("{" QWEN_BASE ",\"hidden_size\":0,\"num_attention_heads\":4}", NULL,
                 "\"hidden_size\" must be an integer >= 1", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"num_key_value_heads\":3}",
                 NULL, "num_attention_heads 4 is not a multiple of num_key_value_heads 3", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":6}", NULL,
                 "hidden_size 64 is not a multiple of num_attention_heads 6", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":60,\"num_attention_heads\":4}", NULL,
                 "head_dim 15 is odd", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0}}",
                 NULL, "rope_scaling asks for RoPE of type \"yarn\", which is not supported", NULL);
    /* a scaling factor without a type names no RoPE ssfteval runs */
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_scaling\":{\"factor\":4.0}}",
                 NULL, "rope_scaling asks for RoPE of type \"unnamed\"", NULL);
    /* YaRN in rope_scaling is not hidden by a plain rope_parameters. */
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_parameters\":{\"rope_theta\":1e6,\"rope_type\":\"default\"},"
                 "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}",
                 NULL, "rope_scaling asks for RoPE of type \"yarn\"", NULL);
    /* transformers 5 keeps the RoPE settings in rope_parameters. */
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_parameters\":{\"rope_theta\":1e6,\"rope_type\":\"yarn\",\"factor\":4}}",
                 NULL, "rope_parameters asks for RoPE of type \"yarn\"", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,\"rope_theta\":1e4,"
                 "\"rope_parameters\":{\"rope_theta\":1e6,\"rope_type\":\"default\"}}",
                 NULL, "rope_theta 10000 and rope_parameters.rope_theta 1000000 differ", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_parameters\":{\"rope_theta\":-2}}",
                 NULL, "rope_parameters: \"rope_theta\" must be a positive number", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_scaling\":{\"rope_type\":\"llama3\"}}",
                 NULL, "\"llama3\"", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"use_sliding_window\":true}",
                 NULL, "use_sliding_window", "not support");
    /* the MLP's biases would be dropped unseen: the model reads no tensor it does not know */
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"mlp_bias\":true}",
                 NULL, "mlp_bias is true", "not support");
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
                 NULL, "layer_types[1]", "full attention only");
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"hidden_act\":\"gelu\"}",
                 NULL, "hidden_act \"gelu\"", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"tie_word_embeddings\":1}",
                 NULL, "\"tie_word_embeddings\" must be true or false", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"rope_theta\":-1}",
                 NULL, "\"rope_theta\" must be a positive number", NULL);
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"eos_token_id\":[1,\"x\"]}",
                 NULL, "eos_token_id", "a string");
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4,"
                 "\"eos_token_id\":[1,2,3,4,5,6,7,8,9]}",
                 NULL, "lists 9 ids", NULL);
    config_fails("{\"architectures\":[\"MistralForCausalLM\"]}", NULL,
                 "\"MistralForCausalLM\" is not supported",
                 "Qwen2ForCausalLM (qwen2), LlamaForCausalLM (llama)");
    config_fails("{\"hidden_size\":1}", NULL, "(none given)", "Qwen2ForCausalLM");
    config_fails("{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"llama\"}", NULL,
                 "model_type \"llama\" does not match", NULL);
    config_fails("{\"architectures\":\"Qwen2ForCausalLM\"}", NULL, "\"architectures\"", NULL);
    config_fails("[]", NULL, "config.json", "expected a JSON object");
    config_fails("{\"a\":", NULL, "config.json is not valid JSON", "byte 5");
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4}",
                 "{\"top_k\":", "generation_config.json is not valid JSON", NULL);

    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4}",
                 "{\"eos_token_id\":-1}", "generation_config.json", "eos_token_id");
    config_fails("{" QWEN_BASE ",\"hidden_size\":64,\"num_attention_heads\":4}", "7",
                 "generation_config.json", "expected a JSON object");
}

/* ---- whole checkpoints ------------------------------------------------- */

static void check_model(const ssf_model *m, const char *dtype, int tied, size_t files)
{
    const ssf_model_config *c = ssf_model_config_of(m);
    const ssf_model_weights *w = ssf_model_weights_of(m);
    assert_string_equal(c->architecture, "Qwen2ForCausalLM");
    assert_int_equal(c->hidden_size, FX_HIDDEN);
    assert_int_equal(c->n_layers, FX_LAYERS);
    assert_int_equal(c->n_heads, FX_HEADS);
    assert_int_equal(c->n_kv_heads, FX_KV);
    assert_int_equal(c->head_dim, FX_HD);
    assert_int_equal(c->tie_word_embeddings, tied);
    assert_int_equal(c->bos_token_id, 14);
    assert_int_equal(c->n_eos, 2); /* generation_config's [15, 13] over config's 15 */
    assert_int_equal(c->eos_ids[0], 15);
    assert_int_equal(c->eos_ids[1], 13);
    assert_true(c->gen_top_k == 20 && c->gen_top_p == 0.8 && c->gen_temperature == 0.7);
    int64_t params = tied ? FX_PARAMS_TIED : FX_PARAMS_UNTIED;
    assert_int_equal(ssf_model_param_count(m), params);
    assert_int_equal(ssf_model_weight_bytes(m), params * (int64_t)fx_dsize(dtype));
    assert_string_equal(ssf_dtype_name(ssf_model_dtype(m)), dtype);
    assert_int_equal(ssf_model_file_count(m), files);
    assert_int_equal(ssf_model_kv_bytes_per_token(c, 2), 2 * FX_LAYERS * FX_KV * FX_HD * 2);
    assert_true(tied ? w->lm_head == w->embed : w->lm_head != w->embed);
    assert_string_equal(w->embed->name, "model.embed_tokens.weight");
    assert_string_equal(w->layers[1].k->name, "model.layers.1.self_attn.k_proj.weight");
    assert_int_equal(w->layers[1].k->shape[0], FX_KV * FX_HD);
    assert_int_equal(w->layers[1].down->shape[1], FX_INTER);
    assert_non_null(w->layers[0].q_bias);
    assert_string_equal(w->layers[0].v_bias->name, "model.layers.0.self_attn.v_proj.bias");
    assert_string_equal(w->final_norm->name, "model.norm.weight");
    /* Values come back exactly; the seeds follow fx_model_tensors' order. */
    assert_true(ssf_tensor_get_f32(w->embed, 5) == fx_value(1, 5));
    assert_true(ssf_tensor_get_f32(w->layers[0].attn_norm, 3) == fx_value(2, 3));
    assert_true(ssf_tensor_get_f32(w->layers[1].down, 95) == fx_value(25, 95));
    assert_true(ssf_tensor_get_f32(w->final_norm, 7) == fx_value(26, 7));
    if (!tied) assert_true(ssf_tensor_get_f32(w->lm_head, 100) == fx_value(27, 100));
}

static void test_model_variants(void **state)
{
    (void)state;
    static const struct {
        const char *dtype;
        int tied, shards;
    } cases[] = {{"F32", 0, 1}, {"BF16", 1, 1}, {"BF16", 0, 3}, {"F16", 1, 2}, {"F32", 1, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = make_temp_dir();
        fx_write_model(dir, cases[i].dtype, cases[i].tied, cases[i].shards);
        ssf_model *m;
        ssf_error err = {0};
        if (ssf_model_open(dir, &m, &err)) fprintf(stderr, "%s\n", err.msg);
        assert_non_null(m);
        assert_string_equal(ssf_model_dir(m), dir);
        check_model(m, cases[i].dtype, cases[i].tied, (size_t)cases[i].shards);
        ssf_model_close(m);
        remove_tree(dir);
        free(dir);
    }
}

static void model_fails(const char *dir, const char *a, const char *b)
{
    ssf_model *m = (ssf_model *)1;
    ssf_error err = {0};
    assert_int_equal(ssf_model_open(dir, &m, &err), -1);
    assert_null(m);
    assert_msg(&err, a, b, (char *)NULL);
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* The test model's config.json with num_hidden_layers `count`. */
static void write_layer_count(const char *dir, const char *count)
{
    fx_write_config(dir, 0, NULL);
    char *config_path = path_in(dir, "config.json"), *text = NULL;
    ssf_error err;
    assert_int_equal(ssf_read_file(config_path, &text, NULL, &err), 0);
    const char *key = "\"num_hidden_layers\": 2";
    char *at = strstr(text, key);
    assert_non_null(at);
    ssf_buf edited = {0};
    ssf_buf_printf(&edited, "%.*s\"num_hidden_layers\": %s%s", (int)(at - text), text, count,
                   at + strlen(key));
    fx_write_text(dir, "config.json", edited.data);
    ssf_buf_free(&edited);
    free(text);
    free(config_path);
}

static void test_model_errors(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *st_path = path_in(dir, "model.safetensors");
    model_fails(dir, "has no config.json", dir);
    fx_write_config(dir, 0, NULL);
    model_fails(dir, "neither model.safetensors nor model.safetensors.index.json", dir);

    /* A tensor missing from the file. */
    fx_file f;
    fx_model_tensors(&f, "F32", 0);
    f.e[23] = f.e[--f.n]; /* drops model.layers.1.mlp.up_proj.weight */
    fx_write_st(dir, "model.safetensors", &f);
    model_fails(dir, "tensor model.layers.1.mlp.up_proj.weight not found in", st_path);
    /* Untied without lm_head. */
    fx_model_tensors(&f, "F32", 1);
    fx_write_st(dir, "model.safetensors", &f);
    model_fails(dir, "tensor lm_head.weight not found in", st_path);
    /* Shape against the config: head_dim 8 makes q_proj [16, 8]. */
    fx_model_tensors(&f, "F32", 0);
    fx_write_st(dir, "model.safetensors", &f);
    fx_write_config(dir, 0, ", \"head_dim\": 8");
    char want[4200];
    snprintf(want, sizeof want,
             "model.layers.0.self_attn.q_proj.weight in %s: shape [8, 8], config says [16, 8]",
             st_path);
    model_fails(dir, want, NULL);
    /* The second dimension checked too: o_proj [8, 4] where the config says [8, 8]. */
    fx_write_config(dir, 0, NULL);
    fx_model_tensors(&f, "F32", 0);
    for (int k = 0; k < f.n; k++)
        if (strcmp(f.e[k].name, "model.layers.0.self_attn.o_proj.weight") == 0) f.e[k].shape[1] = 4;
    fx_write_st(dir, "model.safetensors", &f);
    model_fails(dir, "model.layers.0.self_attn.o_proj.weight in",
                "shape [8, 4], config says [8, 8]");
    fx_model_tensors(&f, "F32", 0);
    fx_write_st(dir, "model.safetensors", &f);
    fx_write_config(dir, 0, ", \"head_dim\": 8");
    /* A checkpoint with more layers than the config says, and far fewer. */
    write_layer_count(dir, "1");
    model_fails(dir, "the checkpoint has a layer 1, but config.json says num_hidden_layers 1",
                NULL);
    write_layer_count(dir, "1000000000"); /* its layer table aborted the allocator */
    model_fails(dir, "config.json says num_hidden_layers 1000000000, but the checkpoint has no",
                "model.layers.999999999.input_layernorm.weight");
    /* A vector where a matrix belongs. */
    fx_write_config(dir, 0, NULL);
    f.e[0].ndim = 1;
    f.e[0].shape[0] = (int64_t)FX_VOCAB * FX_HIDDEN;
    fx_write_st(dir, "model.safetensors", &f);
    model_fails(dir, "model.embed_tokens.weight in", "shape [128], config says [16, 8]");
    /* An unreadable checkpoint. */
    fx_write_text(dir, "model.safetensors", "garbage!garbage!");
    model_fails(dir, st_path, "header length");
    /* A bad config is reported before the weights are looked at. */
    fx_write_config(dir, 0, ", \"head_dim\": 3");
    model_fails(dir, dir, "config.json: head_dim 3 is odd");
    fx_write_config(dir, 0, NULL);
    fx_write_text(dir, "generation_config.json", "{\"eos_token_id\": [1, 2.5]}");
    model_fails(dir, "generation_config.json", "eos_token_id");
    unlink(st_path);
    remove_tree(dir);
    free(dir);
    free(st_path);

    model_fails("/nonexistent/model", "model directory /nonexistent/model not found", NULL);
}

static void test_model_shard_errors(void **state)
{
    (void)state;
    char *dir = make_temp_dir();
    char *index = path_in(dir, "model.safetensors.index.json");
    char *shard2 = path_in(dir, "model-00002-of-00003.safetensors");
    fx_write_model(dir, "BF16", 0, 3);
    /* A tensor the index places in the wrong shard. */
    char *text;
    size_t len;
    ssf_error err = {0};
    assert_int_equal(ssf_read_file(index, &text, &len, &err), 0);
    char *hit = strstr(text, "\"model.norm.weight\": \"model-0000");
    assert_non_null(hit);
    char *digit = hit + strlen("\"model.norm.weight\": \"model-0000");
    *digit = *digit == '1' ? '2' : '1';
    fx_write_text(dir, "model.safetensors.index.json", text);
    model_fails(dir, "tensor model.norm.weight, which", "is missing from");
    /* The index names a shard that is not there. */
    *digit = *digit == '1' ? '2' : '1';
    fx_write_text(dir, "model.safetensors.index.json", text);
    unlink(shard2);
    model_fails(dir, shard2, "is missing");
    /* The index lacks a tensor the model needs. */
    fx_write_model(dir, "BF16", 0, 3);
    fx_write_text(
        dir, "model.safetensors.index.json",
        "{\"weight_map\": {\"model.norm.weight\": \"model-00002-of-00003.safetensors\"}}");
    model_fails(dir, "model.embed_tokens.weight not found in", index);
    /* Index problems. */
    fx_write_text(dir, "model.safetensors.index.json",
                  "{\"weight_map\": {\"a\": \"../model-00001-of-00003.safetensors\"}}");
    model_fails(dir, index, "not a plain file name");
    fx_write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {}}");
    model_fails(dir, index, "non-empty object");
    fx_write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"a\": 1}}");
    model_fails(dir, index, "must be a file name");
    /* A NUL in a key cut it short of itself, and the lookup crashed. */
    fx_write_text(dir, "model.safetensors.index.json",
                  "{\"weight_map\": {\"a\\u0000\": \"model-00001-of-00003.safetensors\"}}");
    model_fails(dir, index, "holds a NUL character");
    fx_write_text(dir, "model.safetensors.index.json",
                  "{\"weight_map\": {\"a\": \"model-00001-of-00003.safetensors\\u0000\"}}");
    model_fails(dir, index, "holds a NUL character");
    fx_write_text(dir, "model.safetensors.index.json", "{");
    model_fails(dir, index, "not valid JSON");
    free(text);
    free(index);
    free(shard2);
    remove_tree(dir);
    free(dir);
}

/* ---- tiny real checkpoints, when tools/make-engine-fixtures.py made them */

static int64_t meta_int(const jl_value *meta, const char *key)
{
    const jl_value *v = ssf_jl_get(meta, key);
    if (v && v->type == JL_NUMBER && v->u.num.is_int) return v->u.num.i;
    fail_msg("no integer %s", key);
    return 0; /* not reached (fail_msg longjmps): for the analyzer */
}

/* One fixture against the "config" summary of its expected.json, which
 * transformers computed (num_parameters counts a tied lm_head once). */
static void check_fixture(const char *dir, const jl_value *meta)
{
    ssf_model *m;
    ssf_error err = {0};
    if (ssf_model_open(dir, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(m);
    const ssf_model_config *c = ssf_model_config_of(m);
    assert_int_equal(c->hidden_size, meta_int(meta, "hidden_size"));
    assert_int_equal(c->n_layers, meta_int(meta, "num_hidden_layers"));
    assert_int_equal(c->n_heads, meta_int(meta, "num_attention_heads"));
    assert_int_equal(c->n_kv_heads, meta_int(meta, "num_key_value_heads"));
    assert_int_equal(c->n_heads / c->n_kv_heads, meta_int(meta, "gqa_ratio"));
    assert_int_equal(c->head_dim, meta_int(meta, "head_dim"));
    assert_int_equal(c->intermediate_size, meta_int(meta, "intermediate_size"));
    assert_int_equal(c->vocab_size, meta_int(meta, "vocab_size"));
    int tied;
    assert_true(ssf_jl_is_bool(ssf_jl_get(meta, "tie_word_embeddings"), &tied));
    assert_int_equal(c->tie_word_embeddings, tied);
    assert_int_equal(c->qkv_bias, 1);
    assert_true(c->rope_theta == ssf_jl_get(meta, "rope_theta")->u.num.d);
    assert_true(c->rms_norm_eps == ssf_jl_get(meta, "rms_norm_eps")->u.num.d);
    int64_t params = meta_int(meta, "num_parameters");
    assert_int_equal(ssf_model_param_count(m), params);
    const jl_value *dtype = ssf_jl_get(meta, "storage_dtype");
    assert_true(dtype && dtype->type == JL_STRING);
    assert_string_equal(ssf_dtype_name(ssf_model_dtype(m)), dtype->u.str.s);
    assert_int_equal(ssf_model_weight_bytes(m),
                     params * (int64_t)ssf_dtype_size(ssf_model_dtype(m)));
    assert_int_equal(ssf_model_file_count(m), ssf_jl_get(meta, "safetensors_files")->u.arr.n);
    fprintf(stderr, "%s: %lld parameters, %s, %zu file(s)\n", dir, (long long)params,
            dtype->u.str.s, ssf_model_file_count(m));
    ssf_model_close(m);
}

static void test_engine_fixtures(void **state)
{
    (void)state;
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/engine", root ? root : ".");
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "no %s: nothing to check\n", path);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char dir[4400], meta_path[4500];
        snprintf(dir, sizeof dir, "%s/%s", path, e->d_name);
        snprintf(meta_path, sizeof meta_path, "%s/expected.json", dir);
        char *text;
        size_t len;
        ssf_error err = {0};
        if (access(meta_path, F_OK) != 0) continue;
        assert_int_equal(ssf_read_file(meta_path, &text, &len, &err), 0);
        jl_value *meta = ssf_jl_parse(text, len, JL_DEFAULT_DEPTH, &err);
        if (!meta) fprintf(stderr, "%s: %s\n", meta_path, err.msg);
        assert_non_null(meta);
        check_fixture(dir, ssf_jl_get(meta, "config"));
        ssf_jl_free(meta);
        free(text);
    }
    closedir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),     cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_errors),     cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_widening),     cmocka_unit_test(test_st_malformed),
        cmocka_unit_test(test_st_files),        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_errors),   cmocka_unit_test(test_model_variants),
        cmocka_unit_test(test_model_errors),    cmocka_unit_test(test_model_shard_errors),
        cmocka_unit_test(test_engine_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
