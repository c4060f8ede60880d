/*
 * main.c - the ssfteval command: dispatch to subcommands and the option
 * handling they share.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static const char usage[] =
    "usage: ssfteval COMMAND [OPTIONS]\n"
    "\n"
    "Evaluation harness for reasoning LLMs (AIME 2024/2025, MATH-500, GPQA-Diamond).\n"
    "\n"
    "commands:\n"
    "  tasks               list the tasks with their source, size and metrics\n"
    "  prompt TASK --doc N print the exact prompt of one document\n"
    "  data fetch|verify   download / check the cached task data\n"
    "  grade               grade predictions against gold answers\n"
    "  run TASKS           evaluate: generate, grade, store, compute metrics (resumable)\n"
    "  runs                list the runs in the results store\n"
    "  show RUN --doc N    one question's samples, extractions and verdicts\n"
    "  rescore RUN         grade stored samples again and recompute the metrics\n"
    "  export RUN          write a run's generations in the replay format\n"
    "  report [RUN...]     Markdown, CSV or JSON tables of the stored metrics\n"
    "  compare BASE CAND   paired per-question regression gate for CI\n"
    "  model info MODEL    describe a checkpoint (directory or hf:ORG/NAME[@REV])\n"
    "  tokenize            text to token ids and back (byte-level BPE tokenizers)\n"
    "  version             print the version\n"
    "\n"
    "Run `ssfteval COMMAND --help` for a command's options.\n";

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ssfteval: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_integer_arg(const char *opt, const char *arg, long lo, long hi, long *out)
{
    if (ssf_parse_long(arg, lo, hi, out) == 0) return 0;
    cli_error("--%s: '%s' is not an integer in %ld..%ld", opt, arg, lo, hi);
    return -1;
}

int cli_number_arg(const char *opt, const char *arg, double lo, double hi, double *out)
{
    if (ssf_parse_double(arg, lo, hi, out) == 0) return 0;
    cli_error("--%s: '%s' is not a number in [%g, %g]", opt, arg, lo, hi);
    return -1;
}

int cli_profile_arg(const char *arg, ssf_profile *out)
{
    int p = ssf_profile_from_name(arg);
    if (p < 0) {
        cli_error("--profile: unknown profile '%s'; use default, lighteval or ssft-lighteval", arg);
        return -1;
    }
    *out = (ssf_profile)p;
    return 0;
}

int cli_chat_template_arg(const char *arg, ssf_chat_template *out)
{
    int t = ssf_chat_template_from_name(arg);
    if (t < 0) {
        cli_error("--chat-template: unknown template '%s'; use qwen2.5, chatml or none", arg);
        return -1;
    }
    *out = (ssf_chat_template)t;
    return 0;
}

int cli_init(cli *c)
{
    memset(c, 0, sizeof *c);
    c->order_override = -1;
    c->data_dir = getenv("SSFTEVAL_DATA_DIR");
    if (c->data_dir && !*c->data_dir) c->data_dir = NULL;
    ssf_error err;
    if (ssf_registry_init(&c->registry, &err) || ssf_hub_init_from_env(&c->hub, &err)) {
        cli_error("%s", err.msg);
        return -1;
    }
    return 0;
}

const char *cli_default_db(void)
{
    const char *db = getenv("SSFTEVAL_DB");
    return db && *db ? db : "ssfteval.sqlite";
}

void cli_free(cli *c)
{
    ssf_registry_free(&c->registry);
    ssf_hub_free(&c->hub);
}

int cli_common_option(cli *c, int opt, const char *arg)
{
    ssf_error err;
    switch (opt) {
    case OPT_DATA_DIR:
        c->data_dir = arg;
        return 0;
    case OPT_OFFLINE:
        c->hub.offline = c->offline = 1;
        return 0;
    case OPT_JSON:
        c->json = 1;
        return 0;
    case OPT_HELP:
        return 1;
    case OPT_TASK_FILE:
        if (ssf_registry_add_file(&c->registry, arg, &err) == 0) return 0;
        cli_error("%s", err.msg);
        return -1;
    case OPT_GPQA_ORDER:
        c->order_override = ssf_choice_order_from_name(arg);
        if (c->order_override >= 0) return 0;
        cli_error("--gpqa-order: unknown order '%s'; use mt19937, hash or fixed", arg);
        return -1;
    default:
        return 2;
    }
}

/* An empty value names nothing: an empty --db would open SQLite's
 * throw-away store, an empty --data-dir the root.  Only texts may be
 * empty (an empty prediction is graded as no answer). */
static int empty_value_ok(const char *option)
{
    return strcmp(option, "gold") == 0 || strcmp(option, "pred") == 0 ||
           strcmp(option, "text") == 0;
}

/* The option arg names by its whole name ("--limit", "--limit=3"), or
 * NULL: a positional argument, or no option of opts. */
static const struct option *option_named(const char *arg, const struct option *opts)
{
    if (strncmp(arg, "--", 2) != 0) return NULL;
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    for (const struct option *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

/* The options a command line may give more than once, each adding to
 * the last: the others, given twice, would keep only the last silently. */
static int repeatable(const char *option)
{
    return strcmp(option, "task-file") == 0 || strcmp(option, "stop") == 0;
}

/* What getopt_long would let pass: it takes any unambiguous prefix of a
 * long option (--li for --limit), so a script could change meaning when an
 * option is added, and keeps the last of an option given twice.  Only
 * whole names are taken, and (but for repeatable ones) once.  *inexact:
 * the first abbreviated or unknown option word, *repeated: the first
 * option given twice; each NULL when there is none. */
static void scan_options(int argc, char **argv, const struct option *opts, const char **inexact,
                         const char **repeated)
{
    size_t n_opts = 0;
    while (opts[n_opts].name)
        n_opts++;
    unsigned char *seen = ssf_xcalloc(n_opts + 1, 1);
    *inexact = *repeated = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strncmp(argv[i], "--", 2) != 0) continue;
        const struct option *o = option_named(argv[i], opts);
        if (!o) {
            *inexact = argv[i];
            break;
        }
        size_t k = (size_t)(o - opts);
        if (seen[k] && !repeatable(o->name) && !*repeated) *repeated = o->name;
        seen[k] = 1;
        if (o->has_arg == required_argument && !strchr(argv[i], '=')) i++; /* its value */
    }
    free(seen);
}

int cli_parse(cli *c, int argc, char **argv, const struct option *opts, cli_option_fn handle,
              void *ud, const char *help, int *exit_code)
{
    optind = 1;
    opterr = 0;
    *exit_code = 0;
    const char *inexact, *repeated;
    scan_options(argc, argv, opts, &inexact, &repeated);
    if (inexact) {
        cli_error("%s: unknown option '%s'; see `ssfteval %s --help`", argv[0], inexact, argv[0]);
        *exit_code = EXIT_USAGE;
        return -1;
    }
    if (repeated) {
        cli_error("%s: --%s is given twice, and only one would count; give it once", argv[0],
                  repeated);
        *exit_code = EXIT_USAGE;
        return -1;
    }
    for (;;) {
        int index = -1;
        int opt = getopt_long(argc, argv, "", opts, &index);
        if (opt == -1) return 0;
        if (opt == '?' || opt == ':') {
            cli_error("%s: unknown option or missing value '%s'; see `ssfteval %s --help`", argv[0],
                      argv[optind - 1], argv[0]);
            *exit_code = EXIT_USAGE;
            return -1;
        }
        if (optarg && !*optarg && index >= 0 && !empty_value_ok(opts[index].name)) {
            cli_error("--%s: the value is empty; see `ssfteval %s --help`", opts[index].name,
                      argv[0]);
            *exit_code = EXIT_USAGE;
            return -1;
        }
        int rc = cli_common_option(c, opt, optarg);
        if (rc == 2) rc = handle ? handle(opt, optarg, ud) : -1;
        if (rc == 1) fputs(help, stdout);
        if (rc != 0) {
            *exit_code = rc == 1 ? 0 : EXIT_USAGE;
            return -1;
        }
    }
}

const ssf_task *cli_find_task(const cli *c, const char *name)
{
    const ssf_task *t = ssf_registry_find(&c->registry, name);
    if (t) return t;
    ssf_buf known = {0};
    for (size_t i = 0; i < c->registry.n; i++)
        ssf_buf_printf(&known, "%s%s", i ? ", " : "", c->registry.tasks[i]->name);
    cli_error("unknown task '%s'; known tasks: %s (add your own with --task-file)", name,
              known.data);
    ssf_buf_free(&known);
    return NULL;
}

ssf_data_options cli_data_options(const cli *c)
{
    return (ssf_data_options){
        .data_dir = c->data_dir, .hub = &c->hub, .order_override = c->order_override};
}

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"tasks", cmd_tasks},       {"prompt", cmd_prompt},   {"data", cmd_data},
    {"grade", cmd_grade},       {"run", cmd_run},         {"runs", cmd_runs},
    {"show", cmd_show},         {"rescore", cmd_rescore}, {"export", cmd_export},
    {"report", cmd_report},     {"compare", cmd_compare}, {"model", cmd_model},
    {"tokenize", cmd_tokenize},
};

/* Output still buffered is written at exit, where a full disk or a closed
 * file would go unnoticed: a report cut short must not end with status 0.
 * (A command that failed has said why already.) */
static int finish_output(int rc)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    if (rc == 0)
        cli_error("cannot write standard output%s%s; check where it goes (disk space?)",
                  errno ? ": " : "", errno ? strerror(errno) : "");
    return rc ? rc : EXIT_WORK;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return finish_output(argc < 2 ? EXIT_USAGE : 0);
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("ssfteval %s\n", ssf_version());
        return finish_output(0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = commands[i].run(argc - 1, argv + 1);
        curl_global_cleanup();
        return finish_output(rc);
    }
    cli_error("unknown command '%s'; run `ssfteval --help` for the list", argv[1]);
    return EXIT_USAGE;
}
