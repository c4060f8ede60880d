/*
 * registry.c - the set of known tasks: the built-ins compiled from
 * tasks/NAME.json, plus specs loaded from --task-file.
 */
#include "ssfteval/task.h"
#include "task-internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int registry_add(ssf_registry *reg, ssf_task *task, ssf_error *err)
{
    const ssf_task *old = ssf_registry_find(reg, task->name);
    if (old) {
        ssf_fail(err, "%s: task '%s' is already defined (%s); give it another name", task->origin,
                 task->name, old->origin);
        ssf_task_free(task);
        return -1;
    }
    reg->tasks = ssf_xrealloc(reg->tasks, (reg->n + 1) * sizeof *reg->tasks);
    reg->tasks[reg->n++] = task;
    return 0;
}

/* A spec file holds one task object or an array of them.  A file is taken
 * whole or not at all: a bad spec after good ones takes the good ones back,
 * so that the file, corrected, can be added again. */
static int add_json(ssf_registry *reg, const json_t *root, const char *origin, ssf_error *err)
{
    if (!json_is_array(root)) {
        ssf_task *task;
        if (ssf_task_parse_json(root, origin, &task, err)) return -1;
        return registry_add(reg, task, err);
    }
    size_t before = reg->n, i;
    json_t *item;
    json_array_foreach(root, i, item)
    {
        ssf_buf where = {0};
        ssf_buf_printf(&where, "%s[%zu]", origin, i);
        ssf_task *task;
        int rc = ssf_task_parse_json(item, where.data, &task, err);
        ssf_buf_free(&where);
        if (rc || registry_add(reg, task, err)) {
            while (reg->n > before)
                ssf_task_free(reg->tasks[--reg->n]);
            return -1;
        }
    }
    return 0;
}

static int add_text(ssf_registry *reg, const char *text, const char *origin, ssf_error *err)
{
    if (strncmp(text, "\xef\xbb\xbf", 3) == 0) text += 3; /* a BOM, as editors on Windows save */
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ssf_fail(err, "%s:%d:%d: invalid JSON: %s", origin, jerr.line, jerr.column,
                        jerr.text);
    int rc = add_json(reg, root, origin, err);
    json_decref(root);
    return rc;
}

int ssf_registry_init(ssf_registry *reg, ssf_error *err)
{
    memset(reg, 0, sizeof *reg);
    for (size_t i = 0; i < ssf_builtin_spec_count; i++) {
        ssf_buf origin = {0};
        ssf_buf_printf(&origin, "built-in tasks/%s", ssf_builtin_specs[i].file);
        int rc = add_text(reg, ssf_builtin_specs[i].json, origin.data, err);
        ssf_buf_free(&origin);
        if (rc) {
            ssf_registry_free(reg);
            return -1;
        }
    }
    return 0;
}

int ssf_registry_add_file(ssf_registry *reg, const char *path, ssf_error *err)
{
    char *text;
    if (ssf_read_file(path, &text, NULL, err)) return ssf_fail_prefix(err, "--task-file");
    int rc = add_text(reg, text, path, err);
    free(text);
    return rc;
}

const ssf_task *ssf_registry_find(const ssf_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->tasks[i]->name, name) == 0) return reg->tasks[i];
    return NULL;
}

void ssf_registry_free(ssf_registry *reg)
{
    for (size_t i = 0; i < reg->n; i++)
        ssf_task_free(reg->tasks[i]);
    free(reg->tasks);
    memset(reg, 0, sizeof *reg);
}

/* Finds the brace that closes the group opening at open, or NULL. */
static const char *closing_brace(const char *open)
{
    int depth = 0;
    for (const char *p = open; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++; /* \{ and \} are literal braces, not grouping */
            continue;
        }
        if (*p == '{') depth++;
        if (*p == '}' && --depth == 0) return p;
    }
    return NULL;
}

/* The last \cmd in text that is that whole command (not \fboxsep for
 * \fbox, or \boxeds for \boxed). */
static const char *last_command(const char *text, const char *cmd)
{
    size_t n = strlen(cmd);
    const char *last = NULL;
    for (const char *p = strstr(text, cmd); p; p = strstr(p + 1, cmd))
        if (!isalpha((unsigned char)p[n])) last = p;
    return last;
}

/* As Hendrycks' last_boxed_only_string, which made MATH's answers: the last
 * \boxed, or the last \fbox when there is no \boxed; its braced argument,
 * or for "\boxed 7" the run up to a space or '$' (less a closing '.' or
 * ','). */
char *ssf_last_boxed(const char *text)
{
    const char *at = last_command(text, "\\boxed");
    const char *p = at ? at + 6 : NULL;
    if (!at) {
        at = last_command(text, "\\fbox");
        p = at ? at + 5 : NULL;
    }
    if (!p) return NULL;
    while (*p == ' ')
        p++;
    if (*p == '{') {
        const char *close = closing_brace(p);
        return close ? ssf_xstrndup(p + 1, (size_t)(close - p - 1)) : NULL;
    }
    size_t n = strcspn(p, " \t\n$");
    while (n > 0 && (p[n - 1] == '.' || p[n - 1] == ','))
        n--;
    return n && *p != '\\' && *p != '}' ? ssf_xstrndup(p, n) : NULL;
}
