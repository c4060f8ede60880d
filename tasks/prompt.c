/*
 * prompt.c - the exact prompt text: template substitution, chat templates
 * and the SSFT tag suffix.
 *
 * Byte-exactness matters more than generality here: the reference renders
 * with Jinja (Qwen2.5's chat template) and Python str.format, and a single
 * differing byte changes the tokens the model sees.  The built-in chat
 * templates are therefore literal strings, and templates use {{name}}
 * placeholders so that single braces (as in \boxed{ANSWER}) stay literal.
 */
#include "ssfteval/prompt.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char qwen25_system[] =
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n";

static const char *const chat_names[] = {"qwen2.5", "chatml", "none"};

int ssf_chat_template_from_name(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, chat_names[i]) == 0) return i;
    return -1;
}

const char *ssf_chat_template_name(ssf_chat_template tpl)
{
    return chat_names[tpl];
}

/* Parses the placeholder starting at p ("{{"); on success sets *name and
 * *len and returns the first byte after "}}". */
static const char *placeholder(const char *p, const char **name, size_t *len)
{
    const char *end = strstr(p + 2, "}}");
    if (!end) return NULL;
    *name = p + 2;
    *len = (size_t)(end - p - 2);
    return end + 2;
}

static int choice_index(const char *name, size_t len, size_t n_choices)
{
    if (len != 1 || name[0] < 'A' || name[0] > 'Z') return -1;
    size_t i = (size_t)(name[0] - 'A');
    return i < n_choices ? (int)i : -1;
}

static int is_question(const char *name, size_t len)
{
    return len == 8 && memcmp(name, "question", 8) == 0;
}

int ssf_prompt_check_template(const char *tmpl, size_t n_choices, ssf_error *err)
{
    int has_question = 0;
    for (const char *p = strstr(tmpl, "{{"); p; p = strstr(p, "{{")) {
        const char *name = NULL;
        size_t len = 0;
        const char *next = placeholder(p, &name, &len);
        if (!next) return ssf_fail(err, "'{{' without a closing '}}'");
        if (is_question(name, len))
            has_question = 1;
        else if (choice_index(name, len, n_choices) < 0)
            return ssf_fail(err, "unknown placeholder {{%.*s}}; expected {{question}}%s", (int)len,
                            name, n_choices ? " or a choice letter {{A}}, {{B}}, ..." : "");
        p = next;
    }
    if (!has_question) return ssf_fail(err, "the template has no {{question}} placeholder");
    return 0;
}

char *ssf_prompt_user_content(const ssf_task *task, const ssf_doc *doc)
{
    ssf_buf out = {0};
    const char *p = task->prompt;
    for (const char *at = strstr(p, "{{"); at; at = strstr(p, "{{")) {
        const char *name = NULL;
        size_t len = 0;
        const char *next = placeholder(at, &name, &len);
        ssf_buf_append(&out, p, (size_t)(at - p));
        /* Templates were checked when the spec was parsed. */
        if (is_question(name, len))
            ssf_buf_puts(&out, doc->question);
        else
            ssf_buf_puts(&out, doc->choices[choice_index(name, len, doc->n_choices)]);
        p = next;
    }
    ssf_buf_puts(&out, p);
    return ssf_buf_take(&out);
}

char *ssf_prompt_render(const ssf_task *task, const ssf_doc *doc, ssf_chat_template tpl, int tag)
{
    char *content = ssf_prompt_user_content(task, doc);
    ssf_buf out = {0};
    if (tpl == SSF_CHAT_QWEN25) ssf_buf_puts(&out, qwen25_system);
    if (tpl != SSF_CHAT_NONE) ssf_buf_puts(&out, "<|im_start|>user\n");
    ssf_buf_puts(&out, content);
    if (tpl != SSF_CHAT_NONE) ssf_buf_puts(&out, "<|im_end|>\n<|im_start|>assistant\n");
    if (tag > 0) ssf_buf_printf(&out, "<|im_start|><think%d>\n", tag);
    free(content);
    return ssf_buf_take(&out);
}

/* Maps a Jinja chat template onto the built-ins by what decides the
 * rendering of one user message with a generation prompt: ChatML turns, and
 * whether the template writes a system turn of its own when there is none.
 * Such a default shows as a string literal that goes on after
 * "<|im_start|>system\n" (in the Jinja source the newline is the two
 * characters backslash and n); a system turn built from the messages closes
 * the literal right there. */
static int classify_template(const char *jinja, ssf_chat_template *out)
{
    static const char sys[] = "<|im_start|>system\\n";
    static const char qwen[] = "You are Qwen, created by Alibaba Cloud. You are a helpful "
                               "assistant.<|im_end|>";
    if (!strstr(jinja, "<|im_start|>")) return -1;
    *out = SSF_CHAT_CHATML;
    for (const char *p = strstr(jinja, sys); p; p = strstr(p + 1, sys)) {
        const char *lit = p + strlen(sys);
        if (*lit == '\'' || *lit == '"') continue;
        if (strncmp(lit, qwen, strlen(qwen)) != 0) return -1; /* another default system prompt */
        *out = SSF_CHAT_QWEN25;
    }
    return 0;
}

int ssf_chat_template_detect(const char *path, ssf_chat_template *out, ssf_error *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return ssf_fail(err, "%s:%d: cannot read the tokenizer config: %s", path, jerr.line,
                        jerr.text);
    const char *jinja = json_string_value(json_object_get(root, "chat_template"));
    int rc = 0;
    if (!jinja)
        rc = ssf_fail(err,
                      "%s has no 'chat_template' string; pass --chat-template "
                      "qwen2.5|chatml|none",
                      path);
    else if (classify_template(jinja, out))
        rc = ssf_fail(err,
                      "%s: the chat template is not one ssfteval renders exactly (qwen2.5, "
                      "chatml); pass --chat-template to choose one",
                      path);
    json_decref(root);
    return rc;
}
