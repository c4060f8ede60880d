/*
 * run-internal.h - what run.c shares with report.c alone: reading a run's
 * stored configuration (the JSON that results/run.c writes with a run).
 * Not installed.
 */
#ifndef SSFTEVAL_RUN_INTERNAL_H
#define SSFTEVAL_RUN_INTERNAL_H

#include <jansson.h>

/* The entry of task `name` in a stored configuration's "tasks", or NULL. */
const json_t *ssf_run_config_task(const json_t *conf, const char *name);

#endif
