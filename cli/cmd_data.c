/*
 * cmd_data.c - `ssfteval data fetch|verify TASK...`: download task data into
 * the cache, or check what is cached against the published checksums.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: ssfteval data fetch|verify [TASK...] [OPTIONS]\n"
    "\n"
    "  fetch   download each task's data from the Hub into the cache\n"
    "          ($SSFTEVAL_CACHE, default ~/.cache/ssfteval), verifying its sha256\n"
    "  verify  check the cached data without using the network\n"
    "\n"
    "With no TASK, every task.  Environment: HF_TOKEN (gated sets such as GPQA),\n"
    "HF_ENDPOINT (a mirror), SSFTEVAL_ROWS_ENDPOINT (the /rows API), HF_HUB_OFFLINE=1.\n"
    "A local data directory is not the cache: `ssfteval tasks --data-dir DIR` checks it,\n"
    "reading each task's file (against its pinned sha256 where the task gives one).\n"
    "\n"
    "  --task-file FILE    add the task specs in FILE (repeatable)\n"
    "  --help              this text\n";

static int run_one(const cli *c, const ssf_task *t, int verify)
{
    ssf_error err;
    int rc = verify ? ssf_task_verify(t, &c->hub, &err) : ssf_task_fetch(t, &c->hub, &err);
    if (rc) {
        cli_error("%s", err.msg);
        return EXIT_WORK;
    }
    printf("%s: %s\n", t->name, verify ? "verified" : "fetched");
    return 0;
}

static int run_all(const cli *c, int argc, char **argv, int verify)
{
    int rc = 0;
    if (optind + 1 == argc) {
        for (size_t i = 0; i < c->registry.n; i++)
            if (run_one(c, c->registry.tasks[i], verify)) rc = EXIT_WORK;
        return rc;
    }
    for (int i = optind + 1; i < argc; i++) {
        const ssf_task *t = cli_find_task(c, argv[i]);
        if (!t) return EXIT_USAGE;
        if (run_one(c, t, verify)) rc = EXIT_WORK;
    }
    return rc;
}

int cmd_data(int argc, char **argv)
{
    static const struct option opts[] = {CLI_OPT_TASK_FILE, CLI_OPT_HELP, {NULL, 0, NULL, 0}};
    cli c;
    int rc;
    if (cli_init(&c)) return EXIT_WORK;
    if (cli_parse(&c, argc, argv, opts, NULL, NULL, help, &rc) == 0) {
        const char *action = optind < argc ? argv[optind] : "";
        if (strcmp(action, "fetch") == 0 || strcmp(action, "verify") == 0) {
            rc = run_all(&c, argc, argv, action[0] == 'v');
        } else {
            cli_error("data: expected 'fetch' or 'verify', got '%s'; see `ssfteval data --help`",
                      action);
            rc = EXIT_USAGE;
        }
    }
    cli_free(&c);
    return rc;
}
