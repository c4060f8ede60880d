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

/* A metric's k and n (samples a question it reads) as the run with this
 * stored configuration computed it for the task; -1 when the configuration
 * does not say (a task or metric it does not name). */
int ssf_run_metric_shape(const json_t *conf, const char *task, const char *metric, int *k, int *n);

#endif
