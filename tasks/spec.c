/*
 * spec.c - parsing and validating JSON task specs.
 *
 * Validation is table driven: each object of the spec has a list of allowed
 * keys with their type and whether they are required, so an unknown key, a
 * missing key and a wrong type all produce one line naming the file, the key
 * path and what was expected.
 */
#include "ssfteval/prompt.h"
#include "ssfteval/task.h"
#include "task-internal.h"
#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

typedef enum key_type {
    KEY_STRING,
    KEY_INTEGER,
    KEY_NUMBER,
    KEY_BOOLEAN,
    KEY_OBJECT,
    KEY_STRINGS, /* an array of strings */
} key_type;

typedef struct spec_key {
    const char *name;
    key_type type;
    int required;
    const char *what; /* how errors describe the expected value */
} spec_key;

static const spec_key top_keys[] = {
    {"name", KEY_STRING, 1, "the task name, e.g. \"aime24\""},
    {"description", KEY_STRING, 0, "one line about the task"},
    {"answer_type", KEY_STRING, 1, "\"math\" or \"letters\""},
    {"source", KEY_OBJECT, 1, "an object with \"local\" and/or \"hub\""},
    {"fields", KEY_OBJECT, 1, "an object mapping question/answer to record fields"},
    {"choices", KEY_OBJECT, 0, "an object {\"order\": ..., \"seed\": ...}"},
    {"prompt", KEY_STRING, 1, "the prompt template with {{question}}"},
    {"generation", KEY_OBJECT, 0, "generation defaults"},
    {"metrics", KEY_STRINGS, 0, "an array of metric names"},
    {"groups", KEY_INTEGER, 0, "SSFT native Cons@6 groups per question (1..64, default 6)"},
    {NULL, 0, 0, NULL},
};

static const spec_key source_keys[] = {
    {"local", KEY_OBJECT, 0, "where the data sits in a --data-dir"},
    {"hub", KEY_OBJECT, 0, "where the data sits on the Hugging Face Hub"},
    {"documents", KEY_INTEGER, 0, "an integer, the number of documents the data holds"},
    {NULL, 0, 0, NULL},
};

static const spec_key local_keys[] = {
    {"path", KEY_STRING, 1, "a file path relative to the data directory"},
    {"zip", KEY_STRING, 0, "an archive path relative to the data directory"},
    {"member", KEY_STRING, 0, "the archive member holding the data"},
    {"password", KEY_STRING, 0, "the archive password"},
    {"sha256", KEY_STRING, 0, "64 hex digits"},
    {NULL, 0, 0, NULL},
};

static const spec_key hub_keys[] = {
    {"repo", KEY_STRING, 1, "\"owner/name\" of a dataset repository"},
    {"revision", KEY_STRING, 0, "a commit (40 hex digits) or a branch"},
    {"path", KEY_STRING, 0, "the file inside the repository"},
    {"sha256", KEY_STRING, 0, "64 hex digits"},
    {"gated", KEY_BOOLEAN, 0, "true for repositories that need HF_TOKEN"},
    {"rows", KEY_OBJECT, 0, "{\"config\": ..., \"split\": ...} for the /rows API"},
    {NULL, 0, 0, NULL},
};

static const spec_key rows_keys[] = {
    {"config", KEY_STRING, 1, "the dataset config, usually \"default\""},
    {"split", KEY_STRING, 1, "the split, e.g. \"train\" or \"test\""},
    {NULL, 0, 0, NULL},
};

static const spec_key field_keys[] = {
    {"id", KEY_STRING, 0, "the record field holding a document id"},
    {"question", KEY_STRING, 1, "the record field holding the question"},
    {"answer", KEY_STRING, 0, "the record field holding the gold answer (math)"},
    {"gold_extract", KEY_STRING, 0, "\"none\" or \"last_boxed\""},
    {"correct", KEY_STRING, 0, "the record field holding the correct choice (letters)"},
    {"incorrect", KEY_STRINGS, 0, "the record fields holding the incorrect choices (letters)"},
    {NULL, 0, 0, NULL},
};

static const spec_key choice_keys[] = {
    {"order", KEY_STRING, 1, "\"mt19937\", \"hash\" or \"fixed\""},
    {"seed", KEY_INTEGER, 0, "a non-negative integer seed for mt19937"},
    {NULL, 0, 0, NULL},
};

static const spec_key generation_keys[] = {
    {"max_new_tokens", KEY_INTEGER, 0, "a positive integer"},
    {"temperature", KEY_NUMBER, 0, "a number >= 0"},
    {"top_p", KEY_NUMBER, 0, "a number in (0, 1]"},
    {"top_k", KEY_INTEGER, 0, "an integer >= 0 (0 = off)"},
    {"min_p", KEY_NUMBER, 0, "a number in [0, 1]"},
    {NULL, 0, 0, NULL},
};

static int type_matches(const json_t *v, key_type type)
{
    switch (type) {
    case KEY_STRING:
        return json_is_string(v);
    case KEY_INTEGER:
        return json_is_integer(v);
    case KEY_NUMBER:
        return json_is_number(v);
    case KEY_BOOLEAN:
        return json_is_boolean(v);
    case KEY_OBJECT:
        return json_is_object(v);
    case KEY_STRINGS: {
        if (!json_is_array(v)) return 0;
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item) if (!json_is_string(item)) return 0;
        return 1;
    }
    }
    return 0;
}

static void list_keys(ssf_buf *b, const spec_key *keys)
{
    for (const spec_key *k = keys; k->name; k++) {
        if (k != keys) ssf_buf_puts(b, ", ");
        ssf_buf_puts(b, k->name);
    }
}

/* Checks one object against its key table.  where is the key path of the
 * object ("" at the top), used in messages such as "source.hub.repo". */
static int check_object(const char *origin, const char *where, const json_t *obj,
                        const spec_key *keys, ssf_error *err)
{
    const char *dot = *where ? "." : "";
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)obj, name, value)
    {
        const spec_key *k = keys;
        while (k->name && strcmp(k->name, name) != 0)
            k++;
        if (!k->name) {
            ssf_buf allowed = {0};
            list_keys(&allowed, keys);
            ssf_fail(err, "%s: unknown key '%s%s%s'; expected one of: %s", origin, where, dot, name,
                     allowed.data);
            ssf_buf_free(&allowed);
            return -1;
        }
        if (!type_matches(value, k->type))
            return ssf_fail(err, "%s: key '%s%s%s' has the wrong type; expected %s", origin, where,
                            dot, name, k->what);
    }
    for (const spec_key *k = keys; k->name; k++)
        if (k->required && !json_object_get(obj, k->name))
            return ssf_fail(err, "%s: missing key '%s%s%s'; expected %s", origin, where, dot,
                            k->name, k->what);
    return 0;
}

static char *dup_string(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? ssf_xstrdup(s) : NULL;
}

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64) return 0;
    return strspn(s, "0123456789abcdef") == 64;
}

/* A path inside --data-dir: relative, no ".." segment.  (A task file from
 * elsewhere could otherwise read any file of the user's and send its rows
 * to the endpoint as prompts.) */
static int check_inside(const char *origin, const char *key, const char *path, ssf_error *err)
{
    int climbs = 0;
    for (const char *p = path; p && *p && !climbs; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
        climbs = strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0');
    if (path && (path[0] == '/' || climbs))
        return ssf_fail(err,
                        "%s: key '%s' must be a path inside the data directory (relative, no "
                        "'..'), not \"%s\"",
                        origin, key, path);
    return 0;
}

static int parse_local(const char *origin, const json_t *local, ssf_task_source *src,
                       ssf_error *err)
{
    if (check_object(origin, "source.local", local, local_keys, err)) return -1;
    src->local_path = dup_string(local, "path");
    src->local_zip = dup_string(local, "zip");
    src->zip_member = dup_string(local, "member");
    src->zip_password = dup_string(local, "password");
    src->local_sha256 = dup_string(local, "sha256");
    if (src->local_zip && !src->zip_member)
        return ssf_fail(err,
                        "%s: missing key 'source.local.member'; expected the archive member "
                        "holding the data",
                        origin);
    if (src->local_sha256 && !is_hex64(src->local_sha256))
        return ssf_fail(err, "%s: key 'source.local.sha256' must be 64 lowercase hex digits",
                        origin);
    if (check_inside(origin, "source.local.path", src->local_path, err) ||
        check_inside(origin, "source.local.zip", src->local_zip, err))
        return -1;
    return 0;
}

static int parse_hub(const char *origin, const json_t *hub, ssf_task_source *src, ssf_error *err)
{
    if (check_object(origin, "source.hub", hub, hub_keys, err)) return -1;
    src->hub_repo = dup_string(hub, "repo");
    src->hub_revision = dup_string(hub, "revision");
    src->hub_path = dup_string(hub, "path");
    src->hub_sha256 = dup_string(hub, "sha256");
    src->hub_gated = json_is_true(json_object_get(hub, "gated"));
    if (!strchr(src->hub_repo, '/'))
        return ssf_fail(err, "%s: key 'source.hub.repo' must be \"owner/name\", not \"%s\"", origin,
                        src->hub_repo);
    if (src->hub_sha256 && !is_hex64(src->hub_sha256))
        return ssf_fail(err, "%s: key 'source.hub.sha256' must be 64 lowercase hex digits", origin);
    const json_t *rows = json_object_get(hub, "rows");
    if (rows) {
        if (check_object(origin, "source.hub.rows", rows, rows_keys, err)) return -1;
        src->rows_config = dup_string(rows, "config");
        src->rows_split = dup_string(rows, "split");
        if (src->hub_path)
            return ssf_fail(err, "%s: 'source.hub' has both 'rows' and 'path'; keep one", origin);
        return 0;
    }
    if (!src->hub_path)
        return ssf_fail(err,
                        "%s: missing key 'source.hub.path'; expected the file inside the "
                        "repository (or 'rows' for the /rows API)",
                        origin);
    if (!src->hub_revision) src->hub_revision = ssf_xstrdup("main");
    return 0;
}

static int parse_source(const char *origin, const json_t *source, ssf_task_source *src,
                        ssf_error *err)
{
    if (check_object(origin, "source", source, source_keys, err)) return -1;
    const json_t *local = json_object_get(source, "local");
    const json_t *hub = json_object_get(source, "hub");
    if (!local && !hub)
        return ssf_fail(err,
                        "%s: missing key 'source.local' or 'source.hub'; expected at least "
                        "one place to read the data from",
                        origin);
    if (local && parse_local(origin, local, src, err)) return -1;
    if (hub && parse_hub(origin, hub, src, err)) return -1;
    json_int_t n = json_integer_value(json_object_get(source, "documents"));
    if (n < 0) return ssf_fail(err, "%s: key 'source.documents' must be >= 0", origin);
    src->documents = (size_t)n;
    return 0;
}

static char **dup_strings(const json_t *array, size_t *n)
{
    *n = json_array_size(array);
    char **out = ssf_xcalloc(*n + 1, sizeof *out);
    for (size_t i = 0; i < *n; i++)
        out[i] = ssf_xstrdup(json_string_value(json_array_get(array, i)));
    return out;
}

static int parse_fields(const char *origin, const json_t *fields, ssf_task *t, ssf_error *err)
{
    if (check_object(origin, "fields", fields, field_keys, err)) return -1;
    t->field_id = dup_string(fields, "id");
    t->field_question = dup_string(fields, "question");
    t->field_answer = dup_string(fields, "answer");
    t->field_correct = dup_string(fields, "correct");
    const json_t *incorrect = json_object_get(fields, "incorrect");
    if (incorrect) t->field_incorrect = dup_strings(incorrect, &t->n_incorrect);
    const char *extract = json_string_value(json_object_get(fields, "gold_extract"));
    if (extract && strcmp(extract, "last_boxed") == 0)
        t->gold_last_boxed = 1;
    else if (extract && strcmp(extract, "none") != 0)
        return ssf_fail(err,
                        "%s: key 'fields.gold_extract' is \"%s\"; expected \"none\" or "
                        "\"last_boxed\"",
                        origin, extract);
    if (t->answer_type == SSF_ANSWER_MATH && !t->field_answer)
        return ssf_fail(err,
                        "%s: missing key 'fields.answer'; a math task needs the record "
                        "field holding the gold answer",
                        origin);
    if (t->answer_type == SSF_ANSWER_LETTERS && (!t->field_correct || t->n_incorrect == 0))
        return ssf_fail(err,
                        "%s: missing key 'fields.correct' or 'fields.incorrect'; a letters "
                        "task needs the correct choice field and at least one incorrect one",
                        origin);
    if (t->answer_type == SSF_ANSWER_LETTERS && t->n_incorrect > 25)
        return ssf_fail(err,
                        "%s: key 'fields.incorrect' lists %zu fields; at most 25 (letters "
                        "A-Z)",
                        origin, t->n_incorrect);
    return 0;
}

static int parse_choices(const char *origin, const json_t *choices, ssf_task *t, ssf_error *err)
{
    t->order = SSF_ORDER_FIXED;
    if (!choices) return 0;
    if (check_object(origin, "choices", choices, choice_keys, err)) return -1;
    const char *order = json_string_value(json_object_get(choices, "order"));
    int o = ssf_choice_order_from_name(order);
    if (o < 0)
        return ssf_fail(err,
                        "%s: key 'choices.order' is \"%s\"; expected \"mt19937\", \"hash\" "
                        "or \"fixed\"",
                        origin, order);
    t->order = (ssf_choice_order)o;
    json_int_t seed = json_integer_value(json_object_get(choices, "seed"));
    if (seed < 0) return ssf_fail(err, "%s: key 'choices.seed' must be >= 0", origin);
    t->order_seed = (uint64_t)seed;
    return 0;
}

/* generation.KEY as a number in [lo, hi] (the bounds the command line
 * puts on the same setting), or *out untouched when absent. */
static int generation_number(const char *origin, const json_t *gen, const char *key, double lo,
                             double hi, int integer, double *out, ssf_error *err)
{
    const json_t *v = json_object_get(gen, key);
    if (!v) return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi) || (integer && !json_is_integer(v)))
        return ssf_fail(err, "%s: key 'generation.%s' must be %s in [%g, %g]", origin, key,
                        integer ? "an integer" : "a number", lo, hi);
    *out = x;
    return 0;
}

static int parse_generation(const char *origin, const json_t *gen, ssf_generation_defaults *g,
                            ssf_error *err)
{
    *g = (ssf_generation_defaults){-1, -1, -1, -1, -1};
    if (!gen) return 0;
    if (check_object(origin, "generation", gen, generation_keys, err)) return -1;
    double max_new_tokens = -1, top_k = -1;
    if (generation_number(origin, gen, "max_new_tokens", 1, 1e7, 1, &max_new_tokens, err) ||
        generation_number(origin, gen, "temperature", 0, 100, 0, &g->temperature, err) ||
        generation_number(origin, gen, "top_p", 1e-9, 1, 0, &g->top_p, err) ||
        generation_number(origin, gen, "top_k", 0, 1e9, 1, &top_k, err) ||
        generation_number(origin, gen, "min_p", 0, 1, 0, &g->min_p, err))
        return -1;
    g->max_new_tokens = (long)max_new_tokens; /* in range: the casts are exact */
    g->top_k = (long)top_k;
    return 0;
}

static int valid_task_name(const char *name)
{
    if (!*name) return 0;
    for (const char *p = name; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9') && !strchr("_-.:", *p)) return 0;
    return 1;
}

static int parse_answer_type(const char *origin, const char *s, ssf_answer_type *out,
                             ssf_error *err)
{
    if (strcmp(s, "math") == 0)
        *out = SSF_ANSWER_MATH;
    else if (strcmp(s, "letters") == 0)
        *out = SSF_ANSWER_LETTERS;
    else
        return ssf_fail(err, "%s: key 'answer_type' is \"%s\"; expected \"math\" or \"letters\"",
                        origin, s);
    return 0;
}

/* Metric names are checked as some run reads them (a run checks them
 * again under its own protocol and --samples). */
static int check_metric_names(const char *origin, const ssf_task *t, ssf_error *err)
{
    for (size_t i = 0; i < t->n_metrics; i++) {
        ssf_error why;
        if (ssf_metric_name_valid(t->metrics[i], 6, &why))
            return ssf_fail(err, "%s: key 'metrics': %s", origin, why.msg);
    }
    return 0;
}

static int parse_spec_object(const json_t *root, const char *origin, ssf_task *t, ssf_error *err)
{
    if (!json_is_object(root))
        return ssf_fail(err, "%s: a task spec must be a JSON object", origin);
    if (check_object(origin, "", root, top_keys, err)) return -1;
    t->name = dup_string(root, "name");
    t->description = dup_string(root, "description");
    if (!t->description) t->description = ssf_xstrdup("");
    t->prompt = dup_string(root, "prompt");
    if (!valid_task_name(t->name))
        return ssf_fail(err,
                        "%s: key 'name' is \"%s\"; expected lowercase letters, digits and "
                        "_-.:",
                        origin, t->name);
    if (parse_answer_type(origin, json_string_value(json_object_get(root, "answer_type")),
                          &t->answer_type, err) ||
        parse_source(origin, json_object_get(root, "source"), &t->source, err) ||
        parse_fields(origin, json_object_get(root, "fields"), t, err) ||
        parse_choices(origin, json_object_get(root, "choices"), t, err) ||
        parse_generation(origin, json_object_get(root, "generation"), &t->generation, err))
        return -1;
    const json_t *metrics = json_object_get(root, "metrics");
    if (metrics) t->metrics = dup_strings(metrics, &t->n_metrics);
    if (check_metric_names(origin, t, err)) return -1;
    const json_t *groups = json_object_get(root, "groups");
    json_int_t n_groups = groups ? json_integer_value(groups) : 6;
    if (n_groups < 1 || n_groups > 64) /* checked before it narrows to an int */
        return ssf_fail(err, "%s: key 'groups' must be in 1..64", origin);
    t->groups = (int)n_groups;
    size_t n_choices = t->answer_type == SSF_ANSWER_LETTERS ? t->n_incorrect + 1 : 0;
    if (ssf_prompt_check_template(t->prompt, n_choices, err))
        return ssf_fail_prefix(err, "%s: key 'prompt'", origin);
    return 0;
}

int ssf_task_parse_json(const json_t *root, const char *origin, ssf_task **out, ssf_error *err)
{
    ssf_task *t = ssf_xcalloc(1, sizeof *t);
    t->origin = ssf_xstrdup(origin);
    if (parse_spec_object(root, origin, t, err)) {
        ssf_task_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int ssf_task_parse(const char *json_text, const char *origin, ssf_task **out, ssf_error *err)
{
    json_error_t jerr;
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ssf_fail(err, "%s:%d:%d: invalid JSON: %s", origin, jerr.line, jerr.column,
                        jerr.text);
    int rc = ssf_task_parse_json(root, origin, out, err);
    json_decref(root);
    return rc;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_source(ssf_task_source *s)
{
    free(s->local_path);
    free(s->local_zip);
    free(s->zip_member);
    free(s->zip_password);
    free(s->local_sha256);
    free(s->hub_repo);
    free(s->hub_revision);
    free(s->hub_path);
    free(s->hub_sha256);
    free(s->rows_config);
    free(s->rows_split);
}

void ssf_task_free(ssf_task *t)
{
    if (!t) return;
    free(t->name);
    free(t->description);
    free(t->origin);
    free_source(&t->source);
    free(t->field_id);
    free(t->field_question);
    free(t->field_answer);
    free(t->field_correct);
    free_strings(t->field_incorrect, t->n_incorrect);
    free(t->prompt);
    free_strings(t->metrics, t->n_metrics);
    free(t);
}

const char *ssf_answer_type_name(ssf_answer_type type)
{
    return type == SSF_ANSWER_LETTERS ? "letters" : "math";
}

static const char *const order_names[] = {"mt19937", "hash", "fixed"};

const char *ssf_choice_order_name(ssf_choice_order order)
{
    return order_names[order];
}

int ssf_choice_order_from_name(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, order_names[i]) == 0) return i;
    return -1;
}
