/*
 * run.h - `ssfteval run`: plan the samples the metrics need, generate the
 * missing ones through a backend, grade each as it arrives, store
 * everything, then compute the metrics from the store.
 *
 * A run is identified by the hash of everything that changes its outputs
 * (tasks, documents, protocol, metrics, seed, sampling, prompt format,
 * model, backend, grading profile); running the same configuration again
 * resumes it and generates only what is missing.
 */
#ifndef SSFTEVAL_RESULTS_RUN_H
#define SSFTEVAL_RESULTS_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "grade.h"
#include "score.h"
#include "store.h"
#include "ssfteval/prompt.h"
#include "ssfteval/task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_run_config {
    const ssf_task **tasks;
    size_t n_tasks;
    const char **metrics; /* NULL: each task's default metrics */
    size_t n_metrics;
    ssf_protocol protocol;
    ssf_compat compat;
    int groups;  /* 0: the task's */
    int samples; /* 0: from the metrics */
    long limit;  /* first N documents of each task, 0 = all */
    uint64_t seed;
    ssf_sampling sampling; /* negative fields: the task's default (0 is a value:
                            * set them to -1 to take the task's) */
    ssf_chat_template chat_template;
    ssf_profile profile;
    const char *model;
    /* what made the samples, part of the run's identity: "replay:<sha256>",
     * "openai:completions|chat[,stop=...]", "engine:cpu-avx2-libmvec,ctx=N,weights=<sha256>" */
    const char *backend_desc;
    ssf_data_options data;
    int progress; /* 1: a bar on a terminal, 0: periodic lines, -1: quiet */
    FILE *out;    /* the summary table (NULL: none) */
    FILE *log;    /* progress, each distinct failure reason as it comes, notes (NULL: none) */
} ssf_run_config;

typedef struct ssf_run_summary {
    int64_t run_id;
    int resumed;
    size_t planned, reused, generated, failed;
    const char *status; /* "done" or "incomplete" (static) */
} ssf_run_summary;

int ssf_run_execute(const ssf_run_config *cfg, ssf_backend *backend, ssf_store *store,
                    ssf_run_summary *summary, ssf_error *err);

/* SHA-256 of what a run's samples of task t were asked and graded against:
 * the first n documents' user messages, prompts under tpl and golds.  The run
 * stores it; rescore checks the data it loads against it. */
void ssf_run_documents_digest(const ssf_task *t, const ssf_docs *docs, size_t n,
                              ssf_chat_template tpl, char hex[65]);

/* 0 if docs, task t's data loaded now, are what run `run` (its stored
 * configuration config_json) asked and graded against: the documents it
 * planned are there and their digest is the one it stored (a store from
 * before the digest: the count alone).  Else -1, naming the fix: an edited
 * --task-file's rows would grade old samples against other golds. */
int ssf_run_check_documents(const char *config_json, int64_t run, const ssf_task *t,
                            const ssf_docs *docs, ssf_error *err);

/* Grades the stored samples of task t in run_id under g, whose profile is
 * `profile`, against docs (the task's documents as the run loaded them): all
 * of them, or only_ungraded those with no grade under it yet.  *graded (may
 * be NULL) counts the grades stored. */
int ssf_run_grade_stored(ssf_store *store, int64_t run_id, const ssf_task *t, const ssf_docs *docs,
                         const ssf_grader *g, const char *profile, int only_ungraded,
                         size_t *graded, ssf_error *err);

/* The request that grades a sample's text (finish_reason may be NULL) against
 * document d of task t, as run and rescore make it. */
ssf_grade_request ssf_sample_grade_request(const ssf_task *t, const ssf_doc *d, const char *text,
                                           const char *finish_reason);

/* The seed of sample (tag, index) of a question: a base derived from (run
 * seed, task, doc, tag) plus the index, so n-sample requests and n single
 * requests ask for the same samples. */
uint64_t ssf_sample_seed(uint64_t run_seed, const char *task, int64_t doc, int tag, int index);

/* Computes (and stores) every metric of a stored run under a grading
 * profile, from the run's configuration and its graded samples, and prints
 * the summary table to out (may be NULL). */
int ssf_run_compute_metrics(ssf_store *store, int64_t run_id, const char *profile, FILE *out,
                            ssf_error *err);

/* Per-question values of one metric of a stored run (for compare): values[i]
 * for document docs[i]; -1 for excluded questions.  Arrays are malloc'd. */
int ssf_run_question_values(ssf_store *store, int64_t run_id, const char *task, const char *metric,
                            const char *profile, double **values, int64_t **docs, size_t *n,
                            ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
