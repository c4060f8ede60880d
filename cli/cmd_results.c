/*
 * cmd_results.c - the commands that read the results store: runs, show,
 * rescore, export, report and compare.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "grade.h"
#include "report.h"
#include "run.h"
#include "store.h"

enum {
    OPT_DB = OPT_COMMAND_BASE,
    OPT_DOC,
    OPT_TASK,
    OPT_PROFILE,
    OPT_FORMAT,
    OPT_METRIC,
    OPT_MAX_DROP,
    OPT_Z,
    OPT_OUT,
};

typedef struct results_args {
    const char *db, *task, *profile, *metric, *out;
    long doc;
    int format;
    double max_drop, z;
} results_args;

#define DB_HELP                                                                                    \
    "  --db FILE           the results store (default ssfteval.sqlite; also SSFTEVAL_DB)\n"
#define HELP_HELP "  --help              this text\n"

/* Each command's table names the options it takes; handle_option serves
 * them all. */
#define OPT_DB_ENTRY                                                                               \
    {                                                                                              \
        "db", required_argument, NULL, OPT_DB                                                      \
    }
#define OPT_PROFILE_ENTRY                                                                          \
    {                                                                                              \
        "profile", required_argument, NULL, OPT_PROFILE                                            \
    }
#define OPTIONS_END                                                                                \
    {                                                                                              \
        NULL, 0, NULL, 0                                                                           \
    }

static const struct option runs_options[] = {OPT_DB_ENTRY, CLI_OPT_JSON, CLI_OPT_HELP, OPTIONS_END};
static const struct option show_options[] = {OPT_DB_ENTRY,
                                             OPT_PROFILE_ENTRY,
                                             CLI_OPT_HELP,
                                             {"doc", required_argument, NULL, OPT_DOC},
                                             {"task", required_argument, NULL, OPT_TASK},
                                             OPTIONS_END};
static const struct option rescore_options[] = {OPT_DB_ENTRY, OPT_PROFILE_ENTRY, CLI_TASK_OPTIONS,
                                                OPTIONS_END};
static const struct option export_options[] = {
    OPT_DB_ENTRY, CLI_OPT_HELP, {"out", required_argument, NULL, OPT_OUT}, OPTIONS_END};
static const struct option report_options[] = {OPT_DB_ENTRY,
                                               OPT_PROFILE_ENTRY,
                                               CLI_OPT_HELP,
                                               {"format", required_argument, NULL, OPT_FORMAT},
                                               OPTIONS_END};
static const struct option compare_options[] = {OPT_DB_ENTRY,
                                                OPT_PROFILE_ENTRY,
                                                CLI_OPT_HELP,
                                                {"metric", required_argument, NULL, OPT_METRIC},
                                                {"max-drop", required_argument, NULL, OPT_MAX_DROP},
                                                {"z", required_argument, NULL, OPT_Z},
                                                OPTIONS_END};

static int handle_option(int opt, const char *arg, void *ud)
{
    results_args *a = ud;
    switch (opt) {
    case OPT_DB:
        a->db = arg;
        return 0;
    case OPT_TASK:
        a->task = arg;
        return 0;
    case OPT_METRIC:
        a->metric = arg;
        return 0;
    case OPT_OUT:
        a->out = arg;
        return 0;
    case OPT_MAX_DROP:
        return cli_number_arg("max-drop", arg, 0, 1e9, &a->max_drop);
    case OPT_Z:
        return cli_number_arg("z", arg, 0, 1e9, &a->z);
    case OPT_DOC:
        return cli_integer_arg("doc", arg, 0, 100000000, &a->doc);
    case OPT_PROFILE: {
        ssf_profile p;
        if (cli_profile_arg(arg, &p)) return -1;
        a->profile = arg;
        return 0;
    }
    case OPT_FORMAT:
        a->format = ssf_report_format_from_name(arg);
        if (a->format >= 0) return 0;
        cli_error("--format: unknown format '%s'; use md, csv or json", arg);
        return -1;
    default:
        return -1;
    }
}

static int parse_run_id(const char *arg, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (end == arg || *end || v <= 0 || errno == ERANGE) {
        cli_error("'%s' is not a run id (see `ssfteval runs`)", arg);
        return -1;
    }
    *id = (int64_t)v;
    return 0;
}

/* Parses the options and opens the store; returns an exit code or -1 to go on. */
static int start(int argc, char **argv, const struct option *opts, const char *help, cli *c,
                 results_args *a, ssf_store **store, int readonly)
{
    *a = (results_args){.db = cli_default_db(),
                        .doc = -1,
                        .format = SSF_REPORT_MARKDOWN,
                        .max_drop = 1.0,
                        .z = 1.64};
    int rc;
    *store = NULL;
    if (cli_init(c)) return EXIT_WORK;
    if (cli_parse(c, argc, argv, opts, handle_option, a, help, &rc) != 0) return rc;
    ssf_error err;
    if (ssf_store_open(a->db, 0, readonly, store, &err)) {
        cli_error("%s", err.msg);
        return EXIT_WORK;
    }
    return -1;
}

/* start() for the commands that take one RUN argument. */
static int start_run(int argc, char **argv, const struct option *opts, const char *help, cli *c,
                     results_args *a, ssf_store **store, int readonly, int64_t *run)
{
    int rc = start(argc, argv, opts, help, c, a, store, readonly);
    if (rc >= 0) return rc;
    if (optind + 1 == argc && parse_run_id(argv[optind], run) == 0) return -1;
    if (optind + 1 != argc) cli_error("%s: give one RUN id (see `ssfteval runs`)", argv[0]);
    return EXIT_USAGE;
}

static int finish(cli *c, ssf_store *store, int rc)
{
    ssf_store_close(store);
    cli_free(c);
    return rc;
}

/* ---- runs ------------------------------------------------------------- */

typedef struct run_list {
    ssf_store *store;
    json_t *json; /* NULL: a table on stdout */
} run_list;

static int print_run(const ssf_run_row *r, void *ud)
{
    const run_list *l = ud;
    const char *status = ssf_store_run_status(l->store, r);
    if (l->json) {
        json_array_append_new(l->json,
                              json_pack("{s:I, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}",
                                        "run_id", (json_int_t)r->id, "status", status, "created_at",
                                        r->created_at, "finished_at", r->finished_at, "tasks",
                                        r->tasks, "metrics", r->metrics, "model", r->model,
                                        "backend", r->backend, "profile", r->profile));
        return 0;
    }
    printf("%5" PRId64 "  %-10s  %-24s  %-24s  %-28s  %s\n", r->id, status ? status : "",
           r->created_at ? r->created_at : "", r->tasks ? r->tasks : "",
           r->metrics ? r->metrics : "", r->model && *r->model ? r->model : "-");
    return 0;
}

int cmd_runs(int argc, char **argv)
{
    static const char help[] =
        "usage: ssfteval runs [--db FILE] [--json]\n\n"
        "List the runs in the store: id, status, created, tasks, metrics,\n"
        "model.  Status: running (a process generates it now), stopped (it was\n"
        "running when its process died: its command resumes it), incomplete\n"
        "(ended with samples failed or missing), done, or failed.\n\n"
        "  --json              an array of objects, one a run\n" DB_HELP HELP_HELP;
    cli c;
    results_args a;
    ssf_store *store;
    int rc = start(argc, argv, runs_options, help, &c, &a, &store, 1);
    if (rc >= 0) return finish(&c, store, rc);
    if (optind < argc) {
        cli_error("runs: unexpected argument '%s'; see `ssfteval runs --help`", argv[optind]);
        return finish(&c, store, EXIT_USAGE);
    }
    run_list list = {store, c.json ? json_array() : NULL};
    if (!list.json)
        printf("%5s  %-10s  %-24s  %-24s  %-28s  %s\n", "run", "status", "created", "tasks",
               "metrics", "model");
    ssf_error err;
    rc = ssf_store_foreach_run(store, print_run, &list, &err) ? EXIT_WORK : 0;
    if (rc) cli_error("%s", err.msg);
    if (list.json) {
        json_dumpf(list.json, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(list.json);
    }
    return finish(&c, store, rc);
}

/* ---- show --------------------------------------------------------------- */

static int show_sample(const ssf_stored_sample *s, void *ud)
{
    ++*(size_t *)ud; /* samples shown */
    printf("%s doc %" PRId64 " tag %d sample %d  seed %" PRIu64 "  %s", s->task, s->doc, s->tag,
           s->index, s->seed,
           s->error           ? "FAILED"
           : s->finish_reason ? s->finish_reason
                              : "");
    if (s->error)
        printf(": %s\n", s->error);
    else if (s->graded)
        printf("  %s  extracted %s  key %s  (%s)\n",
               s->verdict == 1   ? "right"
               : s->verdict == 0 ? "wrong"
                                 : "ungradable",
               s->pred_extracted ? s->pred_extracted : "(none)", s->pred_key ? s->pred_key : "-",
               s->reason ? s->reason : "");
    else
        printf("  not graded under this profile\n");
    return 0;
}

/* Whether the comma-separated list holds name. */
static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = p[len] ? p + len + 1 : NULL;
    }
    return 0;
}

int cmd_show(int argc, char **argv)
{
    static const char help[] =
        "usage: ssfteval show RUN --doc N [--task T] [--profile P] [--db FILE]\n\n"
        "One question's samples: finish reason, extracted answer, vote key, verdict, reason.\n\n"
        "  --doc N             the question (0-based, in the task's order)\n"
        "  --task T            only task T's samples (a run may hold several tasks)\n"
        "  --profile P         the grades under profile P (default the run's)\n" DB_HELP HELP_HELP;
    cli c;
    results_args a;
    ssf_store *store;
    int64_t run;
    int rc = start_run(argc, argv, show_options, help, &c, &a, &store, 1, &run);
    if (rc >= 0) return finish(&c, store, rc);
    if (a.doc < 0) {
        cli_error("show: --doc N is required; see `ssfteval show --help`");
        return finish(&c, store, EXIT_USAGE);
    }
    ssf_run_row r;
    ssf_error err;
    size_t shown = 0;
    rc = ssf_store_get_run(store, run, &r, &err);
    if (rc == 0) {
        if (a.task && !in_list(r.tasks, a.task))
            rc = ssf_fail(&err, "run %" PRId64 " has no task %s; its tasks: %s", run, a.task,
                          r.tasks ? r.tasks : "none");
        else {
            ssf_sample_query q = {.task = a.task,
                                  .one_doc = 1,
                                  .doc = a.doc,
                                  .profile = a.profile ? a.profile : r.profile};
            rc = ssf_store_visit_samples(store, run, &q, show_sample, &shown, &err);
        }
        ssf_run_row_clear(&r);
    }
    if (rc)
        cli_error("%s", err.msg);
    else if (shown == 0) {
        cli_error("run %" PRId64 " has no stored sample for doc %ld", run, a.doc);
        rc = EXIT_WORK;
    }
    return finish(&c, store, rc ? EXIT_WORK : 0);
}

/* ---- rescore --------------------------------------------------------------- */

typedef struct rescore_ctx {
    ssf_store *store;
    int64_t run;
    const ssf_grader *grader;
    const char *profile;
    cli *c;
    int order_override;      /* the run's multiple-choice order, as its data was loaded */
    const char *config_json; /* the run's stored configuration */
    size_t graded;
    ssf_error *err;
} rescore_ctx;

static int refuse_order(int asked, int64_t run, const char *used, ssf_error *err)
{
    return ssf_fail(err,
                    "--gpqa-order %s: run %" PRId64
                    " placed its choices in the %s order, which its gold letters follow; "
                    "drop --gpqa-order",
                    ssf_choice_order_name((ssf_choice_order)asked), run, used);
}

/* One task of the run with its data loaded as the run loaded it, and checked
 * against what the run stored. */
static int load_task_data(rescore_ctx *r, const char *name, const ssf_task **task, ssf_docs *docs)
{
    /* Not cli_find_task: its list of the known tasks would be a second
     * line, and the fix here is the spec file the run was made with. */
    *task = ssf_registry_find(&r->c->registry, name);
    if (!*task)
        return ssf_fail(r->err,
                        "run %" PRId64 " evaluated task %s, which is not known here; pass "
                        "--task-file FILE with the spec it was run with",
                        r->run, name);
    int asked = r->c->order_override;
    if (r->order_override < 0 && asked >= 0 && (*task)->answer_type == SSF_ANSWER_LETTERS &&
        (int)(*task)->order != asked) /* the run used the task's own order */
        return refuse_order(asked, r->run, ssf_choice_order_name((*task)->order), r->err);
    ssf_data_options o = cli_data_options(r->c);
    o.order_override = r->order_override;
    if (ssf_task_load_docs(*task, &o, docs, r->err)) return -1;
    if (ssf_run_check_documents(r->config_json, r->run, *task, docs, r->err) == 0) return 0;
    ssf_docs_free(docs);
    return -1;
}

/* Every task's data is loaded and checked before any grade is stored: a
 * refusal after the first task would leave its new grades without metrics. */
static int rescore_tasks(rescore_ctx *r, const char *list)
{
    char *names = ssf_xstrdup(list ? list : ""), *save = NULL;
    size_t n = 0, cap = 4;
    const ssf_task **tasks = ssf_xmalloc(cap * sizeof *tasks);
    ssf_docs *docs = ssf_xmalloc(cap * sizeof *docs);
    int rc = 0;
    for (char *t = strtok_r(names, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        if (n == cap) {
            cap *= 2;
            tasks = ssf_xrealloc(tasks, cap * sizeof *tasks);
            docs = ssf_xrealloc(docs, cap * sizeof *docs);
        }
        rc = load_task_data(r, t, &tasks[n], &docs[n]);
        if (rc == 0) n++;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ssf_run_grade_stored(r->store, r->run, tasks[i], &docs[i], r->grader, r->profile, 0,
                                  &r->graded, r->err);
    for (size_t i = 0; i < n; i++)
        ssf_docs_free(&docs[i]);
    free(docs);
    free(tasks);
    free(names);
    return rc;
}

/* The choice order the run's prompts were made with (its stored
 * "gpqa_order"): the gold letters must follow it, whatever this command's
 * --gpqa-order says, so a different one is refused. */
static int run_choice_order(const ssf_run_row *r, int asked, int *order, ssf_error *err)
{
    json_t *conf = json_loads(r->config_json ? r->config_json : "", 0, NULL);
    const char *name = json_string_value(json_object_get(conf, "gpqa_order"));
    int rc = 0;
    *order = -1; /* "task", or a store from before the key: the task's own */
    if (name && strcmp(name, "task") != 0) {
        *order = ssf_choice_order_from_name(name);
        if (*order < 0)
            rc = ssf_fail(err, "run %" PRId64 ": stored gpqa_order '%s' is unknown to this version",
                          r->id, name);
    }
    if (rc == 0 && asked >= 0 && *order >= 0 && asked != *order) /* "task": rescore_task */
        rc = refuse_order(asked, r->id, name, err);
    json_decref(conf);
    return rc;
}

int cmd_rescore(int argc, char **argv)
{
    static const char help[] =
        "usage: ssfteval rescore RUN [--profile P] [--db FILE] [OPTIONS]\n\n"
        "Grade the stored samples again (no generation) and recompute the metrics.  The task\n"
        "data is loaded again for the gold answers, as the run loaded it.\n\n"
        "  --profile P         default, lighteval or ssft-lighteval (default the run's)\n" DB_HELP
            CLI_TASK_HELP;
    cli c;
    results_args a;
    ssf_store *store;
    int64_t run;
    int rc = start_run(argc, argv, rescore_options, help, &c, &a, &store, 0, &run);
    if (rc >= 0) return finish(&c, store, rc);
    ssf_error err;
    ssf_run_row r;
    if (ssf_store_get_run(store, run, &r, &err)) {
        cli_error("%s", err.msg);
        return finish(&c, store, EXIT_WORK);
    }
    /* Samples stored after this grades them would be graded under the
     * run's own profiles only, and metrics computed now would miss them. */
    if (ssf_store_run_generating(store, run)) {
        cli_error("run %" PRId64 " is being generated now: rescore it once its `ssfteval run` has "
                  "ended",
                  run);
        ssf_run_row_clear(&r);
        return finish(&c, store, EXIT_WORK);
    }
    const char *profile = a.profile ? a.profile : r.profile;
    int which = profile ? ssf_profile_from_name(profile) : -1;
    if (which < 0) /* stored by another version */
        ssf_fail(&err,
                 "run %" PRId64 " was graded under profile '%s', unknown here; pass --profile", run,
                 profile ? profile : "(none)");
    ssf_grader *g = which >= 0 ? ssf_grader_new((ssf_profile)which, &err) : NULL;
    rescore_ctx rc_ctx = {.store = store,
                          .run = run,
                          .grader = g,
                          .profile = profile,
                          .c = &c,
                          .config_json = r.config_json,
                          .err = &err};
    rc = g ? 0 : -1;
    if (rc == 0) rc = run_choice_order(&r, c.order_override, &rc_ctx.order_override, &err);
    if (rc == 0) rc = rescore_tasks(&rc_ctx, r.tasks);
    if (rc == 0) rc = ssf_run_compute_metrics(store, run, profile, stdout, &err);
    if (rc)
        cli_error("%s", err.msg);
    else
        fprintf(stderr, "run %" PRId64 ": %zu samples graded under profile %s\n", run,
                rc_ctx.graded, profile);
    ssf_grader_free(g);
    ssf_run_row_clear(&r);
    return finish(&c, store, rc ? EXIT_WORK : 0);
}

/* ---- export ------------------------------------------------------------- */

typedef struct export_ctx {
    FILE *out;
    const char *path;
    ssf_error *err;
    long failed; /* samples stored as failed: not generations, left out */
} export_ctx;

static int export_sample(const ssf_stored_sample *s, void *ud)
{
    export_ctx *x = ud;
    if (s->error || !s->text) {
        x->failed++;
        return 0;
    }
    json_t *o = json_pack("{s:s, s:I, s:i, s:i, s:s, s:s?}", "task", s->task, "doc",
                          (json_int_t)s->doc, "tag", s->tag, "sample", s->index, "text", s->text,
                          "finish_reason", s->finish_reason);
    json_t *reasoning = s->reasoning ? json_string(s->reasoning) : NULL;
    if (!o || (s->reasoning && !reasoning)) { /* jansson refuses text that is not UTF-8 */
        json_decref(o);
        return ssf_fail(x->err,
                        "%s doc %" PRId64 " tag %d sample %d: the stored text is not valid "
                        "UTF-8 and cannot be written as JSON; the export stops there",
                        s->task, s->doc, s->tag, s->index);
    }
    if (reasoning) json_object_set_new(o, "reasoning", reasoning);
    json_dumpf(o, x->out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', x->out);
    json_decref(o);
    if (ferror(x->out)) return ssf_fail_write(x->err, x->path, errno);
    return 0;
}

/* Whether path is the store itself or one of SQLite's files beside it:
 * writing the export there would destroy the runs it reads. */
static int is_store_file(const char *path, const char *db)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    struct stat out, st;
    if (stat(path, &out) != 0) return 0;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char *name = ssf_xmalloc(strlen(db) + strlen(suffixes[i]) + 1);
        strcat(strcpy(name, db), suffixes[i]);
        int same = stat(name, &st) == 0 && st.st_dev == out.st_dev && st.st_ino == out.st_ino;
        free(name);
        if (same) return 1;
    }
    return 0;
}

/* Writes the run's samples into f, which errors call name; the failed
 * ones, which have no generation to replay, are counted on stderr. */
static int export_into(ssf_store *store, int64_t run, FILE *f, const char *name, ssf_error *err)
{
    export_ctx x = {f, name, err, 0};
    int rc = ssf_store_foreach_sample(store, run, NULL, NULL, export_sample, &x, err);
    if (rc == 0 && x.failed > 0)
        fprintf(stderr,
                "export: run %" PRId64 ": %ld failed sample%s left out: no generation to replay\n",
                run, x.failed, x.failed == 1 ? "" : "s");
    return rc;
}

/* Exports through the path as it is: renaming a file over a link, a device
 * or a pipe would replace it. */
static int export_to_stream(ssf_store *store, int64_t run, const char *path, ssf_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return ssf_fail(err, "--out: cannot open %s: %s", path, strerror(errno));
    int rc = export_into(store, run, f, path, err);
    if (fclose(f) != 0 && rc == 0) rc = ssf_fail_write(err, path, errno);
    return rc;
}

/* Exports to --out.  A plain file (or a new one) is written as a temporary
 * file renamed into place at the end, so a failed export leaves what it
 * held before.  Anything else is written through as the shell's > would:
 * a symbolic link (/dev/stdout, which may stand for a file opened to
 * append), a device, a pipe. */
static int export_to_file(ssf_store *store, int64_t run, const char *path, ssf_error *err)
{
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return export_to_stream(store, run, path, err);
    ssf_atomic_file f;
    if (ssf_atomic_begin(&f, path, 1, err)) return -1;
    if (export_into(store, run, f.f, path, err)) {
        ssf_atomic_abandon(&f);
        return -1;
    }
    return ssf_atomic_commit(&f, err);
}

int cmd_export(int argc, char **argv)
{
    static const char help[] =
        "usage: ssfteval export RUN [--out FILE] [--db FILE]\n\n"
        "Write the run's generations in the replay format (JSONL: task, doc, tag, sample, text,\n"
        "finish_reason), to stdout or FILE (replaced only once the export is whole).\n\n"
        "  --out FILE          write FILE instead of stdout (- is stdout; never the "
        "store)\n" DB_HELP HELP_HELP;
    cli c;
    results_args a;
    ssf_store *store;
    int64_t run;
    int rc = start_run(argc, argv, export_options, help, &c, &a, &store, 1, &run);
    if (rc >= 0) return finish(&c, store, rc);
    if (a.out && is_store_file(a.out, a.db)) {
        cli_error("--out %s is the results store; name another file", a.out);
        return finish(&c, store, EXIT_USAGE);
    }
    ssf_error err;
    ssf_run_row r;
    rc = ssf_store_get_run(store, run, &r, &err);
    if (rc == 0) ssf_run_row_clear(&r);
    /* Opening /dev/stdout anew would truncate a file the shell opened to append to. */
    if (a.out && (strcmp(a.out, "-") == 0 || strcmp(a.out, "/dev/stdout") == 0)) a.out = NULL;
    if (rc == 0 && a.out) rc = export_to_file(store, run, a.out, &err);
    if (rc == 0 && !a.out) rc = export_into(store, run, stdout, "standard output", &err);
    if (rc) cli_error("%s", err.msg);
    return finish(&c, store, rc ? EXIT_WORK : 0);
}

/* ---- report and compare ---------------------------------------------------- */

int cmd_report(int argc, char **argv)
{
    static const char help[] =
        "usage: ssfteval report [RUN...] [--format md|csv|json] [--profile P] [--db FILE]\n\n"
        "Tables of the stored metrics: Markdown in the SSFT README layout (one table per\n"
        "metric, a row per run, a column per task and the Average), CSV or JSON.  With no RUN,\n"
        "every run in the store.\n\n"
        "  --format F          md (default), csv or json\n"
        "  --profile P         the metrics under profile P (default each run's)\n" DB_HELP
            HELP_HELP;
    cli c;
    results_args a;
    ssf_store *store;
    int rc = start(argc, argv, report_options, help, &c, &a, &store, 1);
    if (rc >= 0) return finish(&c, store, rc);
    int64_t *runs = ssf_xcalloc((size_t)(argc - optind) + 1, sizeof *runs);
    size_t n = 0;
    for (int i = optind; i < argc; i++)
        if (parse_run_id(argv[i], &runs[n++])) {
            free(runs);
            return finish(&c, store, EXIT_USAGE);
        }
    ssf_error err;
    rc = ssf_report_write(store, runs, n, a.profile, (ssf_report_format)a.format, stdout, &err);
    if (rc) cli_error("%s", err.msg);
    free(runs);
    return finish(&c, store, rc ? EXIT_WORK : 0);
}

int cmd_compare(int argc, char **argv)
{
    static const char help[] =
        "usage: ssfteval compare BASE CAND [--metric M] [--max-drop D] [--z Z] [--db FILE]\n\n"
        "Paired per-question comparison of two runs over the same questions.  Exit 0 when no\n"
        "metric drops by more than D percentage points (default 1) + Z (default 1.64) times the\n"
        "paired standard error, 1 on a regression, 2 on an error (a run that is not done,\n"
        "having failed or missing samples, is one).  Both are scored under --profile P\n"
        "(default the candidate's profile).\n\n"
        "  --metric M          compare metric M only (default every metric CAND has)\n"
        "  --max-drop D        tolerated drop in percentage points (default 1)\n"
        "  --z Z               one-sided z for the paired standard error (default 1.64)\n"
        "  --profile P         score both runs under profile P\n" DB_HELP HELP_HELP;
    cli c;
    results_args a;
    ssf_store *store;
    int rc = start(argc, argv, compare_options, help, &c, &a, &store, 1);
    if (rc >= 0) return finish(&c, store, rc == EXIT_WORK ? EXIT_USAGE : rc);
    int64_t base, cand;
    if (optind + 2 != argc) {
        cli_error("compare: give two run ids, BASE and CAND; see `ssfteval compare --help`");
        return finish(&c, store, EXIT_USAGE);
    }
    if (parse_run_id(argv[optind], &base) || parse_run_id(argv[optind + 1], &cand))
        return finish(&c, store, EXIT_USAGE); /* it said which */
    ssf_compare_options o = {
        .metric = a.metric, .max_drop = a.max_drop, .z = a.z, .profile = a.profile};
    ssf_error err;
    rc = ssf_compare_runs(store, base, cand, &o, stdout, &err);
    if (rc < 0) cli_error("%s", err.msg);
    if (rc >= 0 && (fflush(stdout) != 0 || ferror(stdout))) { /* 1 would read as a regression */
        cli_error("cannot write standard output: %s", strerror(errno));
        rc = -1;
    }
    return finish(&c, store, rc < 0 ? EXIT_USAGE : rc);
}
