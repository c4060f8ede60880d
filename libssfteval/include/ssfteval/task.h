/*
 * task.h - evaluation tasks: a task is data (a JSON task spec) saying where
 * the documents come from, which record fields hold the question and the
 * gold answer, how the prompt reads and how answers are graded.
 *
 * The built-in tasks (aime24, aime25, math_500, gpqa_diamond) are specs in
 * tasks/NAME.json compiled into the library; users add their own with
 * --task-file in the same format.  docs/TASK-SPEC.md documents every key.
 */
#ifndef SSFTEVAL_TASK_H
#define SSFTEVAL_TASK_H

#include <stddef.h>
#include <stdint.h>
#include "ssfteval/hub.h"
#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_answer_type {
    SSF_ANSWER_MATH,    /* a LaTeX/plain-text math answer */
    SSF_ANSWER_LETTERS, /* one of the choice letters A, B, C, ... */
} ssf_answer_type;

/* How the correct answer of a multiple-choice row is placed among the
 * incorrect ones. */
typedef enum ssf_choice_order {
    SSF_ORDER_MT19937, /* LightEval: random.seed(seed); randint(0, n-1) per row in row order */
    SSF_ORDER_HASH,    /* a permutation derived from the row's id alone */
    SSF_ORDER_FIXED,   /* correct answer first */
} ssf_choice_order;

/* Where the documents come from, in a --data-dir and on the Hub. */
typedef struct ssf_task_source {
    char *local_path; /* relative to the data dir */
    char *local_zip;  /* alternative: an archive relative to the data dir */
    char *zip_member;
    char *zip_password;
    char *local_sha256; /* of local_path or of the zip member; may be NULL */
    char *hub_repo;
    char *hub_revision; /* resolve downloads: a commit */
    char *hub_path;
    char *hub_sha256;
    int hub_gated;
    char *rows_config; /* set: read through the dataset viewer's /rows API */
    char *rows_split;
    size_t documents; /* expected count, 0 = unchecked */
} ssf_task_source;

/* Generation defaults; a negative value means "not set by the task". */
typedef struct ssf_generation_defaults {
    long max_new_tokens;
    double temperature;
    double top_p;
    long top_k;
    double min_p;
} ssf_generation_defaults;

typedef struct ssf_task {
    char *name;
    char *description;
    char *origin; /* "built-in" or the spec file's path */
    ssf_answer_type answer_type;
    ssf_task_source source;
    char *field_id; /* may be NULL: the row number is the id */
    char *field_question;
    char *field_answer;  /* math: the gold field */
    int gold_last_boxed; /* math: the gold is the last \boxed{} of field_answer */
    char *field_correct; /* letters: the correct choice's field */
    char **field_incorrect;
    size_t n_incorrect;
    ssf_choice_order order;
    uint64_t order_seed;
    char *prompt; /* template with {{question}} and, for letters, {{A}}, {{B}}, ... */
    ssf_generation_defaults generation;
    char **metrics;
    size_t n_metrics;
    int groups; /* SSFT native Cons@6: groups of one sample per tag (default 6) */
} ssf_task;

/* One evaluation document, in the task's row order. */
typedef struct ssf_doc {
    size_t index; /* 0-based row number */
    char *id;
    char *question;
    char *gold;     /* math: the gold answer; letters: the correct letter */
    char **choices; /* letters: the choices in presentation order */
    size_t n_choices;
    int gold_index; /* letters: index of the correct choice, else -1 */
} ssf_doc;

typedef struct ssf_docs {
    ssf_doc *items;
    size_t n;
    char *origin; /* the file the rows were read from */
} ssf_docs;

typedef struct ssf_data_options {
    const char *data_dir; /* read local files laid out like ../shared/data; NULL: the Hub */
    const ssf_hub *hub;   /* used when data_dir is NULL */
    int order_override;   /* -1: the task's; else an ssf_choice_order replacing it
                           * (0 is SSF_ORDER_MT19937, so set -1 explicitly) */
} ssf_data_options;

/* Parses and validates one spec.  origin names the source in errors. */
int ssf_task_parse(const char *json_text, const char *origin, ssf_task **out, ssf_error *err);
void ssf_task_free(ssf_task *task);

/* Loads the task's documents (local files or Hub cache, fetching as needed),
 * checks the expected count and places multiple-choice answers. */
int ssf_task_load_docs(const ssf_task *task, const ssf_data_options *opts, ssf_docs *out,
                       ssf_error *err);
void ssf_docs_free(ssf_docs *docs);

/* Downloads the task's data into the Hub cache / re-checks it there. */
int ssf_task_fetch(const ssf_task *task, const ssf_hub *hub, ssf_error *err);
int ssf_task_verify(const ssf_task *task, const ssf_hub *hub, ssf_error *err);

/* A short description of the source: "hub:REPO@REV/PATH" or
 * "hub-rows:REPO/CONFIG/SPLIT" (free it). */
char *ssf_task_source_string(const ssf_task *task);
const char *ssf_answer_type_name(ssf_answer_type type);
const char *ssf_choice_order_name(ssf_choice_order order);
int ssf_choice_order_from_name(const char *name); /* -1 if unknown */

/* The built-in tasks plus any loaded with ssf_registry_add_file. */
typedef struct ssf_registry {
    ssf_task **tasks;
    size_t n;
} ssf_registry;

int ssf_registry_init(ssf_registry *reg, ssf_error *err); /* loads the built-ins */
/* A file holds one spec object or an array of them.  A name already
 * registered is an error. */
int ssf_registry_add_file(ssf_registry *reg, const char *path, ssf_error *err);
const ssf_task *ssf_registry_find(const ssf_registry *reg, const char *name);
void ssf_registry_free(ssf_registry *reg);

/* As Hendrycks' last_boxed_only_string: the content of the last \boxed{...},
 * or of the last \fbox{...} when there is no \boxed, or for "\boxed 7" the
 * run up to a space or '$' (free it); NULL if there is none or its braces do
 * not close. */
char *ssf_last_boxed(const char *text);

#ifdef __cplusplus
}
#endif
#endif
