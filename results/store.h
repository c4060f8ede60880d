/*
 * store.h - the results store: every run, request, sample, grade and metric
 * in one SQLite file, so a killed run resumes where it stopped and any
 * report can be rebuilt from it.
 *
 * The file is opened with WAL, busy_timeout and foreign keys; tables are
 * STRICT; PRAGMA user_version holds the schema version and migrations run in
 * one transaction.  A file that is not an ssfteval store (no or a foreign
 * schema), a newer schema, or a corrupt file is refused without writing to
 * it.  Each completed sample is committed at once (BEGIN IMMEDIATE ...
 * COMMIT), so `kill -9` loses at most the samples in flight.
 *
 * Not thread-safe: one connection per thread.
 */
#ifndef SSFTEVAL_RESULTS_STORE_H
#define SSFTEVAL_RESULTS_STORE_H

#include <stdint.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SSF_STORE_SCHEMA_VERSION 1

typedef struct ssf_store ssf_store;

/* Opens (creating when create is set and the file does not exist) and
 * migrates.  readonly never changes the database, but in a writable
 * directory SQLite makes (and may leave) the -shm and -wal files that reading
 * a WAL store needs; in a read-only one it reads the file immutable. */
int ssf_store_open(const char *path, int create, int readonly, ssf_store **out, ssf_error *err);
void ssf_store_close(ssf_store *s);

/* ---- runs --------------------------------------------------------------- */

typedef struct ssf_run_meta {
    const char *config_json; /* the full, canonical configuration (no secrets) */
    const char *config_hash; /* sha256 of what changes outputs: resume key */
    const char *tasks;       /* "aime25,math_500" */
    const char *metrics;     /* "pass@1,cons@32" */
    const char *model;       /* model id or path */
    const char *backend;     /* the run's backend_desc: "replay:<sha256>", "openai:chat" ... */
    const char *protocol;    /* "ssft" or "none" */
    const char *compat;      /* "ssft-lighteval" or "" */
    const char *profile;     /* grading profile */
    const char *version;     /* the build that grades the run (ssf_version) */
} ssf_run_meta;

typedef struct ssf_run_row {
    int64_t id;
    char *created_at, *finished_at, *status; /* status: running, done, incomplete, failed */
    char *config_json, *config_hash, *tasks, *metrics, *model, *backend, *protocol, *compat,
        *profile, *version;
} ssf_run_row;

/* Finds the newest run with this config_hash (whatever its status: a done
 * run has nothing left to generate) or creates one; *resumed tells which.
 * A resumed run is marked running again.  The run is claimed for this
 * handle until ssf_store_release_run or ssf_store_close (or the process's
 * end, however it ends): while it is, beginning it from another handle, in
 * this process or another, is refused, and the run is left as it was. */
int ssf_store_begin_run(ssf_store *s, const ssf_run_meta *meta, int64_t *run_id, int *resumed,
                        ssf_error *err);
void ssf_store_release_run(ssf_store *s, int64_t run_id);
/* Whether a process (this one included) holds the run's claim now. */
int ssf_store_run_generating(const ssf_store *s, int64_t run_id);
/* The run's status to show: as stored, but "stopped" for one stored as
 * running that no process generates (killed, or its machine went down;
 * running its command again resumes it). */
const char *ssf_store_run_status(const ssf_store *s, const ssf_run_row *r);
int ssf_store_finish_run(ssf_store *s, int64_t run_id, const char *status, ssf_error *err);
/* Ends a run as "done" when the store holds all `planned` samples of it
 * without an error, else "incomplete"; *status (static) says which.  The
 * store decides, not the caller's own count: an earlier process (or one of
 * a build from before claims) may have stored what this one failed. */
int ssf_store_settle_run(ssf_store *s, int64_t run_id, int64_t planned, const char **status,
                         ssf_error *err);
/* Ends a run this process could not finish: "incomplete", unless it is
 * already "done" (its metrics computed); *status (static, may be NULL)
 * says which. */
int ssf_store_abandon_run(ssf_store *s, int64_t run_id, const char **status, ssf_error *err);
int ssf_store_get_run(ssf_store *s, int64_t run_id, ssf_run_row *out, ssf_error *err);
/* Records the build that now grades the run (ssf_version()). */
int ssf_store_set_run_version(ssf_store *s, int64_t run_id, const char *version, ssf_error *err);
typedef int (*ssf_run_fn)(const ssf_run_row *run, void *ud);
int ssf_store_foreach_run(ssf_store *s, ssf_run_fn fn, void *ud, ssf_error *err);
void ssf_run_row_clear(ssf_run_row *r);

/* ---- samples and grades ------------------------------------------------- */

/* A sample is (task, doc, tag, index): doc is the 0-based row, tag 0 when
 * untagged, index the sample's number among that question's samples with
 * that tag. */
typedef struct ssf_sample_row {
    const char *task;
    int64_t doc;
    int tag;
    int index;
    uint64_t seed;
    const char *request_json;                 /* the exact request as sent (no secrets) */
    const char *text;                         /* NULL when failed */
    const char *reasoning;                    /* reasoning_content, stored apart; may be NULL */
    const char *finish_reason;                /* "stop", "length", ... */
    int64_t prompt_tokens, completion_tokens; /* -1 if unknown */
    double latency_ms;
    int attempts;
    const char *error; /* non-NULL: the generation failed (never graded) */
} ssf_sample_row;

typedef struct ssf_grade_row {
    const char *profile;
    int verdict; /* 1, 0, -1 ungradable */
    int no_answer;
    const char *gold_extracted, *pred_extracted, *pred_key, *reason;
} ssf_grade_row;

/* Stores a finished sample and, when grade is not NULL, its grade, in one
 * committed transaction.  Replaces an earlier failed attempt of the same
 * sample; a successful sample already stored is left alone (returns 0). */
int ssf_store_put_sample(ssf_store *s, int64_t run_id, const ssf_sample_row *row,
                         const ssf_grade_row *grade, ssf_error *err);
/* Stores (or replaces) the grade of a stored sample under grade->profile. */
int ssf_store_put_grade(ssf_store *s, int64_t run_id, const char *task, int64_t doc, int tag,
                        int index, const ssf_grade_row *grade, ssf_error *err);

/* Everything known of one sample, as read back.  The strings are SQLite's,
 * valid until the callback returns: copy what you keep. */
typedef struct ssf_stored_sample {
    const char *task;
    int64_t doc;
    int tag, index;
    uint64_t seed;
    const char *request_json, *text, *reasoning, *finish_reason, *error;
    int64_t prompt_tokens, completion_tokens;
    double latency_ms;
    int attempts;
    int graded; /* a grade exists under the profile asked for */
    int verdict, no_answer;
    const char *gold_extracted, *pred_extracted, *pred_key, *reason;
} ssf_stored_sample;

typedef int (*ssf_sample_fn)(const ssf_stored_sample *s, void *ud);
/* Visits the run's samples (of one task when task is not NULL) ordered by
 * task, doc, tag, index, with their grade under profile (may be NULL: no
 * grade columns). */
int ssf_store_foreach_sample(ssf_store *s, int64_t run_id, const char *task, const char *profile,
                             ssf_sample_fn fn, void *ud, ssf_error *err);

/* Which samples ssf_store_visit_samples visits, and how much of each it
 * reads: the filters run in SQL, so a store of long completions is not
 * read whole for one question or for a plan. */
typedef struct ssf_sample_query {
    const char *task; /* NULL: every task */
    int one_doc;      /* 0 (as zeroed): every question; 1: question doc alone */
    int64_t doc;
    const char *profile; /* the grades under it; NULL: no grade columns */
    int ungraded_only;   /* only samples without a grade under profile */
    int keys_only;       /* text is "" when stored (not its content); request and reasoning NULL */
} ssf_sample_query;
int ssf_store_visit_samples(ssf_store *s, int64_t run_id, const ssf_sample_query *q,
                            ssf_sample_fn fn, void *ud, ssf_error *err);

/* ---- metrics ------------------------------------------------------------ */

typedef struct ssf_metric_row {
    const char *task, *metric, *profile;
    double value, stderr_, ci_lo, ci_hi;
    int64_t n_questions, n_samples, n_failed, n_missing;
} ssf_metric_row;

/* Replaces the stored value of (run, task, metric, profile). */
int ssf_store_put_metric(ssf_store *s, int64_t run_id, const ssf_metric_row *m, ssf_error *err);
typedef int (*ssf_metric_fn)(const ssf_metric_row *m, void *ud);
int ssf_store_foreach_metric(ssf_store *s, int64_t run_id, ssf_metric_fn fn, void *ud,
                             ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
