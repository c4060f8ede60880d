/*
 * cli.h - what the ssfteval command's files share: the options every
 * command takes and the state they set up.
 */
#ifndef SSFTEVAL_CLI_H
#define SSFTEVAL_CLI_H

#include <getopt.h>

#include "grade.h"
#include "ssfteval/hub.h"
#include "ssfteval/prompt.h"
#include "ssfteval/task.h"

/* Exit codes: 0 success, 1 the work failed, 2 the command line was wrong. */
enum { EXIT_WORK = 1, EXIT_USAGE = 2 };

typedef struct cli {
    const char *data_dir; /* --data-dir / SSFTEVAL_DATA_DIR */
    int offline;
    int json;
    int order_override; /* --gpqa-order, -1 if not given */
    ssf_registry registry;
    ssf_hub hub;
} cli;

/* Options shared by the commands; a command's long option table names the
 * ones it takes (CLI_OPT_* entries, or CLI_TASK_OPTIONS for all the ones
 * that load tasks) and cli_parse handles them, so an option a command
 * does not take is refused rather than ignored. */
enum {
    OPT_DATA_DIR = 1000,
    OPT_TASK_FILE,
    OPT_OFFLINE,
    OPT_JSON,
    OPT_GPQA_ORDER,
    OPT_HELP,
    OPT_COMMAND_BASE, /* commands number their own options from here */
};

#define CLI_OPT_DATA_DIR                                                                           \
    {                                                                                              \
        "data-dir", required_argument, NULL, OPT_DATA_DIR                                          \
    }
#define CLI_OPT_TASK_FILE                                                                          \
    {                                                                                              \
        "task-file", required_argument, NULL, OPT_TASK_FILE                                        \
    }
#define CLI_OPT_OFFLINE                                                                            \
    {                                                                                              \
        "offline", no_argument, NULL, OPT_OFFLINE                                                  \
    }
#define CLI_OPT_JSON                                                                               \
    {                                                                                              \
        "json", no_argument, NULL, OPT_JSON                                                        \
    }
#define CLI_OPT_GPQA_ORDER                                                                         \
    {                                                                                              \
        "gpqa-order", required_argument, NULL, OPT_GPQA_ORDER                                      \
    }
#define CLI_OPT_HELP                                                                               \
    {                                                                                              \
        "help", no_argument, NULL, OPT_HELP                                                        \
    }
#define CLI_TASK_OPTIONS                                                                           \
    CLI_OPT_DATA_DIR, CLI_OPT_TASK_FILE, CLI_OPT_OFFLINE, CLI_OPT_GPQA_ORDER, CLI_OPT_HELP

#define CLI_TASK_HELP                                                                              \
    "  --data-dir DIR      read task data from DIR (laid out like ../shared/data)\n"               \
    "                      instead of the Hub; also SSFTEVAL_DATA_DIR\n"                           \
    "  --task-file FILE    add the task specs in FILE (repeatable)\n"                              \
    "  --offline           never use the network (also HF_HUB_OFFLINE=1)\n"                        \
    "  --gpqa-order ORDER  multiple-choice placement: mt19937 (reference), hash, fixed\n"          \
    "  --help              this text\n"

/* Starts the shared state: registry with the built-ins, Hub settings from
 * the environment, SSFTEVAL_DATA_DIR. */
int cli_init(cli *c);
void cli_free(cli *c);

/* Handles a common option; returns 0 if handled, 1 for --help, -1 on error
 * (message printed), 2 if opt is not a common option. */
int cli_common_option(cli *c, int opt, const char *arg);

/* Parses a command's options.  handle gets the options that are not common
 * ones and returns 0, or -1 after printing an error.  Returns 0 to go on
 * (positional arguments start at optind), or the exit code to end with:
 * 0 after --help (help is printed), EXIT_USAGE on a bad option. */
typedef int (*cli_option_fn)(int opt, const char *arg, void *ud);
int cli_parse(cli *c, int argc, char **argv, const struct option *opts, cli_option_fn handle,
              void *ud, const char *help, int *exit_code);

/* The store when --db is not given: SSFTEVAL_DB unless unset or empty,
 * else ssfteval.sqlite. */
const char *cli_default_db(void);

/* Finds a task by name or prints an error listing the known ones. */
const ssf_task *cli_find_task(const cli *c, const char *name);

/* Options for loading a task's documents as the command line set them. */
ssf_data_options cli_data_options(const cli *c);

/* Option values shared by the commands: each checks its range and, when the
 * value is bad, prints one line naming the option and returns -1. */
int cli_integer_arg(const char *opt, const char *arg, long lo, long hi, long *out);
int cli_number_arg(const char *opt, const char *arg, double lo, double hi, double *out);
int cli_profile_arg(const char *arg, ssf_profile *out);
int cli_chat_template_arg(const char *arg, ssf_chat_template *out);

/* Prints "ssfteval: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_tasks(int argc, char **argv);
int cmd_prompt(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_grade(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_rescore(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif
