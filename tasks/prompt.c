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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char qwen25_system[] =
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n";

static const char *const chat_names[] = {"qwen2.5", "chatml", "none"};

int ssf_chat_template_from_name(const char *name)
{
    if (!name) return -1; /* a key a stored configuration lacks */
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
    uint32_t shown = 0; /* bit i: {{A + i}} */
    for (const char *p = strstr(tmpl, "{{"); p; p = strstr(p, "{{")) {
        const char *name = NULL;
        size_t len = 0;
        const char *next = placeholder(p, &name, &len);
        if (!next) return ssf_fail(err, "'{{' without a closing '}}'");
        int choice = choice_index(name, len, n_choices);
        if (is_question(name, len))
            has_question = 1;
        else if (choice < 0)
            return ssf_fail(err, "unknown placeholder {{%.*s}}; expected {{question}}%s", (int)len,
                            name, n_choices ? " or a choice letter {{A}}, {{B}}, ..." : "");
        else
            shown |= 1u << choice;
        p = next;
    }
    if (!has_question) return ssf_fail(err, "the template has no {{question}} placeholder");
    /* A choice left out of the prompt may be the gold one. */
    for (size_t i = 0; i < n_choices; i++)
        if (!(shown & (1u << i)))
            return ssf_fail(err,
                            "the template has no {{%c}}; a %zu-choice task shows {{A}}..{{%c}}",
                            'A' + (int)i, n_choices, 'A' + (int)n_choices - 1);
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
        /* Templates were checked when the spec was parsed; a document built
         * by hand may still lack a choice the template shows: then the
         * placeholder stays, to be seen, rather than a read past the array. */
        int choice = is_question(name, len) ? -1 : choice_index(name, len, doc->n_choices);
        if (is_question(name, len))
            ssf_buf_puts(&out, doc->question);
        else if (choice >= 0)
            ssf_buf_puts(&out, doc->choices[choice]);
        else
            ssf_buf_append(&out, at, (size_t)(next - at));
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

/* The chat templates whose rendering of one user message with a
 * generation prompt a built-in reproduces byte for byte.  A template is
 * known by the SHA-256 of its source with each run of white space inside
 * its {{ }}, {% %} and {# #} tags (outside string literals) made one space:
 * such white space never reaches the output, but whether there is some
 * can matter ({{- 1 }} is not {{ -1 }}).  Everything else, the text between
 * tags included, counts as it is; for the known templates the digest is
 * their file's own.  Recognising templates by their features instead went
 * wrong on look-alikes (a trimmed message, a system prompt in a variable,
 * QwQ's "<think>\n" after the generation prompt); anything not listed is
 * refused, so a prompt is never silently wrong. */
static const struct known_template {
    const char *digest;
    ssf_chat_template tpl;
} known_templates[] = {
    /* Qwen2.5-Instruct (and the SSFT checkpoints fine-tuned from it). */
    {"cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f", SSF_CHAT_QWEN25},
    /* Qwen3: no default system turn, nothing after "assistant\n" unless
     * thinking is turned off. */
    {"87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5", SSF_CHAT_CHATML},
};

/* The closing delimiter of a Jinja tag opening at p, or NULL. */
static const char *tag_close(const char *p)
{
    if (p[0] != '{') return NULL;
    return p[1] == '{' ? "}}" : p[1] == '%' ? "%}" : p[1] == '#' ? "#}" : NULL;
}

typedef struct digest_state {
    const char *close; /* inside a tag: its closing delimiter */
    char quote;        /* inside a string literal of a tag */
    int space;         /* a space was just written for a run of white space */
} digest_state;

/* One byte of a tag's inside (p[0]); returns how many bytes it took. */
static int digest_in_tag(digest_state *d, const char *p, ssf_buf *b)
{
    if (d->quote) {
        ssf_buf_putc(b, *p);
        if (*p == '\\' && p[1]) {
            ssf_buf_putc(b, p[1]);
            return 2;
        }
        if (*p == d->quote) d->quote = 0;
        return 1;
    }
    if (p[0] == d->close[0] && p[1] == d->close[1]) {
        ssf_buf_append(b, p, 2);
        d->close = NULL;
        return 2;
    }
    if (strchr(" \t\n\v\f\r", *p)) {
        if (!d->space) ssf_buf_putc(b, ' ');
        d->space = 1;
        return 1;
    }
    d->space = 0;
    if ((*p == '\'' || *p == '"') && d->close[0] != '#') d->quote = *p; /* comments hold none */
    ssf_buf_putc(b, *p);
    return 1;
}

static void template_digest(const char *jinja, char hex[65])
{
    ssf_buf b = {0};
    digest_state d = {NULL, 0, 0};
    for (const char *p = jinja; *p;) {
        if (d.close) {
            p += digest_in_tag(&d, p, &b);
        } else if ((d.close = tag_close(p)) != NULL) {
            ssf_buf_append(&b, p, 2);
            d.space = 0;
            p += 2;
        } else {
            ssf_buf_putc(&b, *p++);
        }
    }
    ssf_buf_append(&b, "", 0);
    ssf_sha256_hex(b.data, b.len, hex);
    ssf_buf_free(&b);
}

static int classify_template(const char *jinja, ssf_chat_template *out, char hex[65])
{
    template_digest(jinja, hex);
    for (size_t i = 0; i < sizeof known_templates / sizeof known_templates[0]; i++)
        if (strcmp(hex, known_templates[i].digest) == 0) {
            *out = known_templates[i].tpl;
            return 0;
        }
    return -1;
}

/* chat_template.jinja beside the tokenizer config at path (as newer
 * transformers save it); malloc'd, or NULL when there is none. */
static char *jinja_beside(const char *path, char **jinja_path)
{
    const char *slash = strrchr(path, '/');
    ssf_buf b = {0};
    ssf_buf_printf(&b, "%.*schat_template.jinja", slash ? (int)(slash - path + 1) : 0, path);
    *jinja_path = ssf_buf_take(&b);
    char *text = NULL;
    ssf_error ignored;
    return ssf_read_file(*jinja_path, &text, NULL, &ignored) == 0 ? text : NULL;
}

/* The template's source, where transformers looks: chat_template.jinja
 * beside the config (it wins, as transformers has it), else
 * tokenizer_config.json's "chat_template" string or the "default" one of
 * its list of named templates.  *from names the file it came from.  Caller
 * frees both. */
static char *template_source(const char *path, char **from, ssf_error *err)
{
    char *jinja_path = NULL;
    char *text = jinja_beside(path, &jinja_path);
    if (text) {
        *from = jinja_path;
        return text;
    }
    *from = ssf_xstrdup(path);
    json_error_t jerr;
    json_t *config = json_load_file(path, 0, &jerr);
    json_t *t = json_object_get(config, "chat_template");
    if (json_is_string(t)) text = ssf_xstrdup(json_string_value(t));
    size_t i;
    json_t *named;
    json_array_foreach(t, i, named)
    {
        const char *name = json_string_value(json_object_get(named, "name"));
        const char *body = json_string_value(json_object_get(named, "template"));
        if (!text && name && body && strcmp(name, "default") == 0) text = ssf_xstrdup(body);
    }
    if (!text && !config && jerr.line > 0)
        ssf_fail(err, "%s:%d: cannot read the tokenizer config: %s", path, jerr.line, jerr.text);
    else if (!text && !config)
        ssf_fail(err,
                 "cannot read the tokenizer config %s (%s), and there is no %s; pass "
                 "--chat-template qwen2.5|chatml|none",
                 path, jerr.text, jinja_path);
    else if (!text)
        ssf_fail(err,
                 "%s has no chat template (a 'chat_template' string or a list with a "
                 "'default' one), and there is no %s; pass --chat-template qwen2.5|chatml|none",
                 path, jinja_path);
    free(jinja_path);
    json_decref(config);
    return text;
}

int ssf_chat_template_detect(const char *path, ssf_chat_template *out, ssf_error *err)
{
    char *from = NULL;
    char *jinja = template_source(path, &from, err);
    char hex[65];
    int rc = jinja ? 0 : -1;
    if (rc == 0 && classify_template(jinja, out, hex))
        rc = ssf_fail(err,
                      "%s: the chat template (digest %.12s) is not one ssfteval renders byte for "
                      "byte (Qwen2.5-Instruct's, Qwen3's); render a prompt with the model's "
                      "tokenizer and pass the --chat-template (qwen2.5, chatml, none) that "
                      "matches it",
                      from, hex);
    free(jinja);
    free(from);
    return rc;
}
