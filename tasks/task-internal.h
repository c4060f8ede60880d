/*
 * task-internal.h - what the task module's files share and the public
 * header does not promise.
 */
#ifndef SSFTEVAL_TASK_INTERNAL_H
#define SSFTEVAL_TASK_INTERNAL_H

#include <jansson.h>
#include "ssfteval/task.h"

/* Parses one already-decoded spec object. */
int ssf_task_parse_json(const json_t *root, const char *origin, ssf_task **out, ssf_error *err);

/* The built-in specs, generated at build time from tasks/NAME.json. */
typedef struct ssf_builtin_spec {
    const char *file;
    const char *json;
} ssf_builtin_spec;

extern const ssf_builtin_spec ssf_builtin_specs[];
extern const size_t ssf_builtin_spec_count;

#endif
