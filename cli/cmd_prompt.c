/*
 * cmd_prompt.c - `ssfteval prompt TASK --doc N`: the exact prompt text of one
 * document, so anyone can diff it against the reference.  Plain output is
 * the prompt's bytes and nothing else (no newline added).
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: ssfteval prompt TASK --doc N [--tag K] [--chat-template NAME] [OPTIONS]\n"
    "\n"
    "Print the exact prompt of document N (0-based, in the task's row order).\n"
    "\n"
    "  --doc N                 the document (required)\n"
    "  --tag K                 append the SSFT tag suffix <|im_start|><thinkK>\\n (K >= 1)\n"
    "  --chat-template NAME    qwen2.5 (default, the SSFT reference), chatml, none\n"
    "  --chat-template-from F  detect the template from a model's chat_template.jinja or\n"
    "                          tokenizer_config.json (F: the model directory, or the config)\n"
    "  --json                  an object with the prompt, gold answer and choices\n" CLI_TASK_HELP;

enum { OPT_DOC = OPT_COMMAND_BASE, OPT_TAG, OPT_CHAT_TEMPLATE, OPT_CHAT_TEMPLATE_FROM };

typedef struct prompt_args {
    long doc;
    int tag;
    ssf_chat_template tpl;
} prompt_args;

static int detect_template(const char *arg, ssf_chat_template *tpl)
{
    ssf_buf path = {0};
    size_t n = strlen(arg);
    if (n >= 5 && strcmp(arg + n - 5, ".json") == 0)
        ssf_buf_puts(&path, arg);
    else
        ssf_buf_printf(&path, "%s/tokenizer_config.json", arg);
    ssf_error err;
    int rc = ssf_chat_template_detect(path.data, tpl, &err);
    if (rc) cli_error("--chat-template-from: %s", err.msg);
    ssf_buf_free(&path);
    return rc;
}

static int handle_option(int opt, const char *arg, void *ud)
{
    prompt_args *a = ud;
    long v;
    switch (opt) {
    case OPT_DOC:
        return cli_integer_arg("doc", arg, 0, 100000000, &a->doc);
    case OPT_TAG:
        if (cli_integer_arg("tag", arg, 1, 99, &v)) return -1;
        a->tag = (int)v;
        return 0;
    case OPT_CHAT_TEMPLATE:
        return cli_chat_template_arg(arg, &a->tpl);
    case OPT_CHAT_TEMPLATE_FROM:
        return detect_template(arg, &a->tpl);
    default:
        return -1;
    }
}

static void print_json(const ssf_task *t, const ssf_doc *d, const prompt_args *a,
                       const char *prompt)
{
    json_t *o = json_object();
    json_object_set_new(o, "task", json_string(t->name));
    json_object_set_new(o, "doc", json_integer((json_int_t)d->index));
    json_object_set_new(o, "id", json_string(d->id));
    json_object_set_new(o, "tag", json_integer(a->tag));
    json_object_set_new(o, "chat_template", json_string(ssf_chat_template_name(a->tpl)));
    json_object_set_new(o, "prompt", json_string(prompt));
    json_object_set_new(o, "gold", json_string(d->gold));
    if (d->n_choices) {
        json_t *choices = json_array();
        for (size_t i = 0; i < d->n_choices; i++)
            json_array_append_new(choices, json_string(d->choices[i]));
        json_object_set_new(o, "choices", choices);
        json_object_set_new(o, "gold_index", json_integer(d->gold_index));
    }
    json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(o);
}

static int show_prompt(const cli *c, const char *name, const prompt_args *a)
{
    const ssf_task *t = cli_find_task(c, name);
    if (!t) return EXIT_USAGE;
    ssf_data_options o = cli_data_options(c);
    ssf_docs docs;
    ssf_error err;
    if (ssf_task_load_docs(t, &o, &docs, &err)) {
        cli_error("%s", err.msg);
        return EXIT_WORK;
    }
    int rc = 0;
    if (docs.n == 0) {
        cli_error("task %s has no documents; check its data", t->name);
        rc = EXIT_WORK;
    } else if ((size_t)a->doc >= docs.n) {
        cli_error("--doc %ld: task %s has %zu documents (0..%zu)", a->doc, t->name, docs.n,
                  docs.n - 1);
        rc = EXIT_USAGE;
    } else {
        const ssf_doc *d = &docs.items[a->doc];
        char *prompt = ssf_prompt_render(t, d, a->tpl, a->tag);
        if (c->json)
            print_json(t, d, a, prompt);
        else
            fputs(prompt, stdout);
        free(prompt);
    }
    ssf_docs_free(&docs);
    return rc;
}

int cmd_prompt(int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_TASK_OPTIONS,
        CLI_OPT_JSON,
        {"doc", required_argument, NULL, OPT_DOC},
        {"tag", required_argument, NULL, OPT_TAG},
        {"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
        {"chat-template-from", required_argument, NULL, OPT_CHAT_TEMPLATE_FROM},
        {NULL, 0, NULL, 0},
    };
    prompt_args a = {.doc = -1, .tag = 0, .tpl = SSF_CHAT_QWEN25};
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    if (cli_parse(&c, argc, argv, opts, handle_option, &a, help, &rc) == 0) {
        if (optind + 1 != argc) {
            cli_error("prompt: give exactly one TASK; see `ssfteval prompt --help`");
            rc = EXIT_USAGE;
        } else if (a.doc < 0) {
            cli_error("prompt: --doc N is required; see `ssfteval prompt --help`");
            rc = EXIT_USAGE;
        } else {
            rc = show_prompt(&c, argv[optind], &a);
        }
    }
    cli_free(&c);
    return rc;
}
