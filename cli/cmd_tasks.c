/*
 * cmd_tasks.c - `ssfteval tasks`: every known task with its source, answer
 * type, document count and default metrics.  The count is read from the
 * data itself, so the command doubles as a check that the data loads.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static const char help[] =
    "usage: ssfteval tasks [OPTIONS]\n"
    "\n"
    "List the tasks: source and revision, document count (from the data), answer type and\n"
    "default metrics.  Loads each task's data, from --data-dir or the Hub cache.\n"
    "\n"
    "  --json              an array of objects, one a task\n" CLI_TASK_HELP;

static json_t *strings_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *task_json(const ssf_task *t, long documents)
{
    const ssf_task_source *s = &t->source;
    json_t *o = json_object();
    char *source = ssf_task_source_string(t);
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "description", json_string(t->description));
    json_object_set_new(o, "origin", json_string(t->origin));
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "revision",
                        s->hub_revision  ? json_string(s->hub_revision)
                        : s->rows_config ? json_string("main (rows API)")
                                         : json_null());
    json_object_set_new(o, "sha256", s->hub_sha256 ? json_string(s->hub_sha256) : json_null());
    json_object_set_new(o, "gated", json_boolean(s->hub_gated));
    json_object_set_new(o, "documents", documents >= 0 ? json_integer(documents) : json_null());
    json_object_set_new(o, "answer_type", json_string(ssf_answer_type_name(t->answer_type)));
    json_object_set_new(o, "metrics", strings_json(t->metrics, t->n_metrics));
    free(source);
    return o;
}

static void print_row(const ssf_task *t, long documents)
{
    char *source = ssf_task_source_string(t);
    char count[32] = "error";
    if (documents >= 0) snprintf(count, sizeof count, "%ld", documents);
    ssf_buf metrics = {0};
    for (size_t i = 0; i < t->n_metrics; i++)
        ssf_buf_printf(&metrics, "%s%s", i ? "," : "", t->metrics[i]);
    printf("%-14s %-8s %9s  %-28s  %s\n", t->name, ssf_answer_type_name(t->answer_type), count,
           metrics.data ? metrics.data : "-", source);
    ssf_buf_free(&metrics);
    free(source);
}

/* The number of documents, or -1 after printing why they did not load. */
static long count_documents(const cli *c, const ssf_task *t)
{
    ssf_data_options o = cli_data_options(c);
    ssf_docs docs;
    ssf_error err;
    if (ssf_task_load_docs(t, &o, &docs, &err)) {
        cli_error("%s", err.msg);
        return -1;
    }
    long n = (long)docs.n;
    ssf_docs_free(&docs);
    return n;
}

static int list_tasks(const cli *c)
{
    int rc = 0;
    json_t *all = json_array();
    if (!c->json)
        printf("%-14s %-8s %9s  %-28s  %s\n", "task", "answers", "documents", "metrics", "source");
    for (size_t i = 0; i < c->registry.n; i++) {
        const ssf_task *t = c->registry.tasks[i];
        long n = count_documents(c, t);
        if (n < 0) rc = EXIT_WORK;
        if (c->json)
            json_array_append_new(all, task_json(t, n));
        else
            print_row(t, n);
    }
    if (c->json) {
        json_dumpf(all, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    }
    json_decref(all);
    return rc;
}

int cmd_tasks(int argc, char **argv)
{
    static const struct option opts[] = {CLI_TASK_OPTIONS, CLI_OPT_JSON, {NULL, 0, NULL, 0}};
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    if (cli_parse(&c, argc, argv, opts, NULL, NULL, help, &rc) == 0) {
        if (optind < argc) {
            cli_error("tasks: unexpected argument '%s'; see `ssfteval tasks --help`", argv[optind]);
            rc = EXIT_USAGE;
        } else {
            rc = list_tasks(&c);
        }
    }
    cli_free(&c);
    return rc;
}
