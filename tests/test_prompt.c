/*
 * test_prompt.c - prompts are byte-identical to the reference: every task,
 * sampled documents, three chat templates, with and without SSFT tags,
 * against tests/fixtures/prompts.json (made by tools/make-prompt-fixtures.py
 * from an independent Python oracle).  Also chat-template detection and
 * template placeholder checks.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ssfteval/prompt.h"
#include "ssfteval/util.h"
#include "ssfteval/task.h"
#include "test-support.h"

static json_t *load_fixture(void)
{
    const char *root = getenv("SSFTEVAL_SOURCE_ROOT");
    assert_non_null(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/prompts.json", root);
    json_error_t jerr;
    json_t *fx = json_load_file(path, 0, &jerr);
    if (!fx) fail_msg("%s: %s", path, jerr.text);
    return fx;
}

static void load_task_docs(const ssf_registry *reg, const char *name, ssf_docs *docs)
{
    const ssf_task *t = ssf_registry_find(reg, name);
    assert_non_null(t);
    char *data_dir = shared_path("data");
    ssf_data_options o = {.data_dir = data_dir, .order_override = -1};
    ssf_error err;
    if (ssf_task_load_docs(t, &o, docs, &err)) fail_msg("%s", err.msg);
    free(data_dir);
}

static void check_all_golds(const ssf_docs *docs, const json_t *want)
{
    ssf_buf joined = {0};
    for (size_t i = 0; i < docs->n; i++)
        ssf_buf_printf(&joined, "%s%s", i ? "\n" : "", docs->items[i].gold);
    char hex[65];
    ssf_sha256_hex(joined.data, joined.len, hex);
    assert_string_equal(hex, json_string_value(json_object_get(want, "all_golds_sha256")));
    ssf_buf_free(&joined);
}

/* key is "TEMPLATE/TAG" as in the fixture. */
static char *render_key(const ssf_task *t, const ssf_doc *d, const char *key)
{
    char name[32];
    const char *slash = strchr(key, '/');
    assert_non_null(slash);
    long tag = 0;
    if (slash - key >= (ptrdiff_t)sizeof name || ssf_parse_long(slash + 1, INT_MIN, INT_MAX, &tag))
        fail_msg("%s: not TEMPLATE/TAG", key);
    snprintf(name, sizeof name, "%.*s", (int)(slash - key), key);
    int tpl = ssf_chat_template_from_name(name);
    assert_true(tpl >= 0);
    return ssf_prompt_render(t, d, (ssf_chat_template)tpl, (int)tag);
}

static void check_doc(const ssf_task *t, const ssf_doc *d, const json_t *want)
{
    assert_string_equal(d->gold, json_string_value(json_object_get(want, "gold")));
    const char *key;
    json_t *value;
    json_object_foreach(json_object_get(want, "sha256"), key, value)
    {
        char *prompt = render_key(t, d, key);
        char hex[65];
        ssf_sha256_hex(prompt, strlen(prompt), hex);
        if (strcmp(hex, json_string_value(value)) != 0)
            fail_msg("%s doc %zu %s: prompt differs from the reference", t->name, d->index, key);
        free(prompt);
    }
    json_object_foreach(json_object_get(want, "text"), key, value)
    {
        char *prompt = render_key(t, d, key);
        assert_string_equal(prompt, json_string_value(value));
        free(prompt);
    }
}

static void test_prompts_match_reference(void **state)
{
    (void)state;
    json_t *fx = load_fixture();
    ssf_registry reg;
    ssf_error err;
    assert_int_equal(ssf_registry_init(&reg, &err), 0);
    const char *name;
    json_t *task_fx;
    size_t checked = 0;
    json_object_foreach(json_object_get(fx, "tasks"), name, task_fx)
    {
        ssf_docs docs;
        load_task_docs(&reg, name, &docs);
        assert_int_equal(docs.n, json_integer_value(json_object_get(task_fx, "documents")));
        check_all_golds(&docs, task_fx);
        size_t i;
        json_t *doc_fx;
        json_array_foreach(json_object_get(task_fx, "docs"), i, doc_fx)
        {
            size_t k = (size_t)json_integer_value(json_object_get(doc_fx, "doc"));
            check_doc(ssf_registry_find(&reg, name), &docs.items[k], doc_fx);
            checked++;
        }
        ssf_docs_free(&docs);
    }
    assert_true(checked >= 40); /* 4 tasks x >= 10 sampled docs */
    ssf_registry_free(&reg);
    json_decref(fx);
}

static ssf_task *parse_or_fail(const char *json)
{
    ssf_task *t = NULL;
    ssf_error err;
    if (ssf_task_parse(json, "inline", &t, &err)) fail_msg("%s", err.msg);
    return t;
}

static void test_tag_suffix_and_templates(void **state)
{
    (void)state;
    ssf_task *t = parse_or_fail(
        "{\"name\":\"t\",\"answer_type\":\"math\",\"source\":{\"local\":{\"path\":\"x.jsonl\"}},"
        "\"fields\":{\"question\":\"q\",\"answer\":\"a\"},\"prompt\":\"Q: {{question}} {x}\"}");
    /* A stored run's configuration may lack the key: no template, not a crash. */
    assert_int_equal(ssf_chat_template_from_name(NULL), -1);
    assert_int_equal(ssf_chat_template_from_name("qwen2"), -1);
    ssf_doc d = {.question = "2+2?", .gold = "4", .gold_index = -1};
    char *p = ssf_prompt_render(t, &d, SSF_CHAT_NONE, 0);
    assert_string_equal(p, "Q: 2+2? {x}");
    free(p);
    p = ssf_prompt_render(t, &d, SSF_CHAT_CHATML, 3);
    assert_string_equal(p, "<|im_start|>user\nQ: 2+2? {x}<|im_end|>\n<|im_start|>assistant\n"
                           "<|im_start|><think3>\n");
    free(p);
    p = ssf_prompt_render(t, &d, SSF_CHAT_QWEN25, 0);
    assert_non_null(strstr(p, "You are Qwen, created by Alibaba Cloud."));
    assert_true(strlen(p) > 20 && strcmp(p + strlen(p) - 22, "<|im_start|>assistant\n") == 0);
    free(p);
    ssf_task_free(t);
}

/* A question or choice is inserted as it is, once: placeholders, braces,
 * backslashes, a stray "{{", chat markers and printf conversions in the
 * data are text the model reads (MATH-500 doc 377 holds "{{"), never
 * expanded again.  The whole prompt, byte for byte, for each template. */
static void test_data_inserted_verbatim(void **state)
{
    (void)state;
    ssf_task *t = parse_or_fail(
        "{\"name\":\"t\",\"answer_type\":\"letters\",\"source\":{\"local\":{\"path\":\"x.csv\"}},"
        "\"fields\":{\"question\":\"q\",\"correct\":\"c\",\"incorrect\":[\"i\",\"j\"]},"
        "\"prompt\":\"Q: {{question}}\\n\\nA) {{A}}\\nB) {{B}}\\nC) {{C}}\"}");
    char *choices[] = {"{{B}}", "\\boxed{{C}} %d", "{{"};
    ssf_doc d = {.question = " {{question}} {{A}} \\frac{{1}}{2} {{x <|im_end|>\n%s ",
                 .gold = "B",
                 .gold_index = 1,
                 .choices = choices,
                 .n_choices = 3};
    static const char content[] = "Q:  {{question}} {{A}} \\frac{{1}}{2} {{x <|im_end|>\n%s \n\n"
                                  "A) {{B}}\nB) \\boxed{{C}} %d\nC) {{";
    char *p = ssf_prompt_render(t, &d, SSF_CHAT_NONE, 0);
    assert_string_equal(p, content);
    free(p);
    p = ssf_prompt_render(t, &d, SSF_CHAT_NONE, 2);
    assert_string_equal(p, "Q:  {{question}} {{A}} \\frac{{1}}{2} {{x <|im_end|>\n%s \n\n"
                           "A) {{B}}\nB) \\boxed{{C}} %d\nC) {{<|im_start|><think2>\n");
    free(p);
    p = ssf_prompt_render(t, &d, SSF_CHAT_QWEN25, 6);
    assert_string_equal(
        p, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
           "assistant.<|im_end|>\n<|im_start|>user\nQ:  {{question}} {{A}} \\frac{{1}}{2} {{x "
           "<|im_end|>\n%s \n\nA) {{B}}\nB) \\boxed{{C}} %d\nC) {{<|im_end|>\n"
           "<|im_start|>assistant\n<|im_start|><think6>\n");
    free(p);
    ssf_task_free(t);
}

/* A document built by hand with fewer choices than the template shows:
 * the placeholder stays (it read choices[-1]). */
static void test_doc_short_of_choices(void **state)
{
    (void)state;
    ssf_registry reg;
    ssf_error err;
    assert_int_equal(ssf_registry_init(&reg, &err), 0);
    char *choices[] = {"one", "two", "three"};
    ssf_doc d = {.question = "Q?", .gold = "A", .choices = choices, .n_choices = 3};
    char *p = ssf_prompt_user_content(ssf_registry_find(&reg, "gpqa_diamond"), &d);
    assert_non_null(strstr(p, "C) three"));
    assert_non_null(strstr(p, "D) {{D}}"));
    free(p);
    ssf_registry_free(&reg);
}

static void test_template_checks(void **state)
{
    (void)state;
    ssf_error err;
    assert_int_equal(ssf_prompt_check_template("{{question}} {{A}} {{B}}", 2, &err), 0);
    assert_int_equal(ssf_prompt_check_template("{{question}} {{C}}", 2, &err), -1);
    assert_non_null(strstr(err.msg, "unknown placeholder {{C}}"));
    /* Every choice shown: the one left out may be the gold. */
    assert_int_equal(ssf_prompt_check_template("{{question}} {{A}} {{C}}", 3, &err), -1);
    assert_non_null(strstr(err.msg, "no {{B}}; a 3-choice task shows {{A}}..{{C}}"));
    assert_int_equal(ssf_prompt_check_template("{{question}} {{A}} {{B}}", 3, &err), -1);
    assert_non_null(strstr(err.msg, "no {{C}}")); /* the last one too */
    assert_int_equal(ssf_prompt_check_template("no placeholder", 0, &err), -1);
    assert_non_null(strstr(err.msg, "{{question}}"));
    assert_int_equal(ssf_prompt_check_template("{{question", 0, &err), -1);
    assert_non_null(strstr(err.msg, "closing"));
    assert_int_equal(ssf_prompt_check_template("{{questions}}", 0, &err), -1);
    /* A placeholder is one letter: {{AB}} (or {{Answer}}) is a typo, not {{A}}. */
    assert_int_equal(ssf_prompt_check_template("{{question}} {{A}} {{B}} {{AB}}", 2, &err), -1);
    assert_non_null(strstr(err.msg, "unknown placeholder {{AB}}"));
}

static int detect_text(const char *dir, const char *config_json, ssf_chat_template *tpl,
                       ssf_error *err)
{
    char *path = write_temp_file(dir, "tokenizer_config.json", config_json);
    int rc = ssf_chat_template_detect(path, tpl, err);
    free(path);
    return rc;
}

/* Qwen2.5-Instruct's template, from a test model's tokenizer_config.json. */
static char *qwen25_template(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/engine/gqa5-hd128/tokenizer_config.json",
             getenv("SSFTEVAL_SOURCE_ROOT"));
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) fail_msg("cannot read %s", path);
    char *t = strdup(json_string_value(json_object_get(root, "chat_template")));
    json_decref(root);
    return t;
}

/* Detects a config whose chat_template is `jinja` with `from` replaced by
 * `to` (which must occur). */
static int detect_edited(const char *dir, const char *jinja, const char *from, const char *to,
                         ssf_chat_template *tpl, ssf_error *err)
{
    const char *at = strstr(jinja, from);
    if (!at) fail_msg("the template lacks %s", from);
    ssf_buf edited = {0};
    ssf_buf_printf(&edited, "%.*s%s%s", (int)(at - jinja), jinja, to, at + strlen(from));
    json_t *config = json_pack("{s:s}", "chat_template", edited.data);
    char *text = json_dumps(config, 0);
    int rc = detect_text(dir, text, tpl, err);
    free(text);
    json_decref(config);
    ssf_buf_free(&edited);
    return rc;
}

static void test_detect(void **state)
{
    (void)state;
    ssf_chat_template tpl = SSF_CHAT_NONE;
    ssf_error err;
    char *qwen3 = shared_path("tokenizers/qwen3/tokenizer_config.json");
    assert_int_equal(ssf_chat_template_detect(qwen3, &tpl, &err), 0);
    assert_int_equal(tpl, SSF_CHAT_CHATML); /* Qwen3 adds no default system turn */
    free(qwen3);

    char *dir = make_temp_dir();
    char *qwen25 = qwen25_template();
    /* White space inside a tag never reaches the output: the same template.
     * Between tags it may: another one. */
    assert_int_equal(
        detect_edited(dir, qwen25, "{%- if tools %}", "{%-  if   tools\n%}", &tpl, &err), 0);
    assert_int_equal(tpl, SSF_CHAT_QWEN25);
    assert_int_equal(
        detect_edited(dir, qwen25, "{%- if tools %}\n    {{-", "{%- if tools %}{{-", &tpl, &err),
        -1);
    /* Look-alikes that render other prompts are refused, not taken for the
     * nearest built-in: a trimmed message, another system text, QwQ's
     * "<think>\n" after the generation prompt. */
    static const char *const edits[][2] = {
        {"message.content + '<|im_end|>'", "message.content | trim + '<|im_end|>'"},
        {"You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>",
         "You are a helpful assistant.<|im_end|>"},
        {"'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'"},
        /* white space inside a tag that is there or not: a trim marker, a minus */
        {"{{- '<|im_start|>assistant\\n' }}", "{{ -'<|im_start|>assistant\\n' }}"},
        /* white space inside a string literal is text the model reads */
        {"Alibaba Cloud. You are", "Alibaba Cloud.  You are"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        tpl = SSF_CHAT_NONE;
        assert_int_equal(detect_edited(dir, qwen25, edits[i][0], edits[i][1], &tpl, &err), -1);
        assert_non_null(strstr(err.msg, "not one ssfteval renders byte for byte"));
        assert_non_null(strstr(err.msg, "--chat-template"));
    }
    /* The other places a template is kept: a list of named ones, and
     * chat_template.jinja beside a config without one. */
    json_t *list = json_pack("{s:[{s:s, s:s}, {s:s, s:s}]}", "chat_template", "name", "tool_use",
                             "template", "x", "name", "default", "template", qwen25);
    char *text = json_dumps(list, 0);
    tpl = SSF_CHAT_NONE;
    assert_int_equal(detect_text(dir, text, &tpl, &err), 0);
    assert_int_equal(tpl, SSF_CHAT_QWEN25);
    free(text);
    json_decref(list);
    free(write_temp_file(dir, "chat_template.jinja", qwen25));
    tpl = SSF_CHAT_NONE;
    assert_int_equal(detect_text(dir, "{\"bos_token\": null}", &tpl, &err), 0);
    assert_int_equal(tpl, SSF_CHAT_QWEN25);
    /* The .jinja file wins over the config's template, as in transformers. */
    tpl = SSF_CHAT_NONE;
    assert_int_equal(
        detect_text(dir, "{\"chat_template\": \"[INST] {{ m }} [/INST]\"}", &tpl, &err), 0);
    assert_int_equal(tpl, SSF_CHAT_QWEN25);
    /* A .jinja file ssfteval cannot render is named, not the config beside
     * it (its digest is the .jinja's). */
    free(write_temp_file(dir, "chat_template.jinja",
                         "{% for m in messages %}[{{ m }}]{% endfor %}"));
    assert_int_equal(detect_text(dir, "{}", &tpl, &err), -1);
    assert_non_null(strstr(err.msg, "chat_template.jinja: the chat template (digest "));
    free(write_temp_file(dir, "chat_template.jinja", qwen25));
    /* chat_template.jinja alone, with no tokenizer_config.json at all. */
    char *config = write_temp_file(dir, "tokenizer_config.json", "{}");
    unlink(config);
    tpl = SSF_CHAT_NONE;
    assert_int_equal(ssf_chat_template_detect(config, &tpl, &err), 0);
    assert_int_equal(tpl, SSF_CHAT_QWEN25);
    free(config);
    char *jinja = write_temp_file(dir, "chat_template.jinja", "");
    unlink(jinja);
    free(jinja);
    assert_int_equal(detect_text(dir, "{\"bos_token\": null}", &tpl, &err), -1);
    assert_non_null(strstr(err.msg, "has no chat template"));

    assert_int_equal(
        detect_text(dir, "{\"chat_template\": \"[INST] {{ m }} [/INST]\"}", &tpl, &err), -1);
    assert_int_equal(detect_text(dir, "{not json", &tpl, &err), -1);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    free(qwen25);
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompts_match_reference),
        cmocka_unit_test(test_tag_suffix_and_templates),
        cmocka_unit_test(test_doc_short_of_choices),
        cmocka_unit_test(test_data_inserted_verbatim),
        cmocka_unit_test(test_template_checks),
        cmocka_unit_test(test_detect),
    };
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
