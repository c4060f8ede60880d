/*
 * score.h - evaluation metrics over graded samples: pass@k (unbiased), avg@n,
 * cons@k / maj@k (majority vote), the SSFT protocol's native Cons@6 and
 * per-tag pass@1, each with a standard error over questions and a bootstrap
 * 95% interval.
 *
 * Samples are named (tag, index): tag 0 when untagged, 1..6 for the SSFT
 * tags <think1>..<think6>; index counts a question's samples of that tag.
 * A metric first says which samples it needs (ssf_metric_need), the run
 * generates their union, then the metric reads them (ssf_metric_question).
 * A failed generation is never a wrong answer: a question missing a sample
 * the metric needs is left out and counted.
 */
#ifndef SSFTEVAL_METRICS_SCORE_H
#define SSFTEVAL_METRICS_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SSF_MAX_TAGS 6

typedef enum ssf_metric_kind {
    SSF_METRIC_PASS_AT_K,   /* pass@k over n samples: the unbiased estimator */
    SSF_METRIC_AVG_AT_N,    /* avg@n: mean correctness of n samples */
    SSF_METRIC_CONS_AT_K,   /* cons@k / maj@k: one vote over k samples */
    SSF_METRIC_CONS_NATIVE, /* cons@6:native: S groups of one sample per tag, averaged */
    SSF_METRIC_PASS1_TAG,   /* pass@1:tagK: mean correctness of the tag-K samples */
} ssf_metric_kind;

typedef enum ssf_protocol {
    SSF_PROTOCOL_NONE, /* untagged samples (tag 0) */
    SSF_PROTOCOL_SSFT, /* <think1>..<think6> layouts of the SSFT paper */
} ssf_protocol;

typedef enum ssf_compat {
    SSF_COMPAT_NONE,
    SSF_COMPAT_SSFT_LIGHTEVAL, /* the reference implementation's quirks (see docs) */
} ssf_compat;

typedef struct ssf_metric {
    char name[64]; /* as the user wrote it, e.g. "cons@32" */
    ssf_metric_kind kind;
    int k;      /* pass@k, cons@k; 6 for native */
    int n;      /* samples per question (pass@k, avg@n) */
    int tag;    /* pass@1:tagK */
    int groups; /* native: S */
} ssf_metric;

typedef struct ssf_metric_context {
    ssf_protocol protocol;
    ssf_compat compat;
    int samples;     /* --samples: n for pass@k without the protocol (0: k; runs pass
                        ssf_metric_default_samples) */
    int groups;      /* --groups: S for cons@6:native (0 = the task's default) */
    int task_groups; /* the task's default S (11 for AIME, 6 otherwise) */
} ssf_metric_context;

/* Parses "pass@1", "pass@8", "avg@32", "cons@32", "maj@16", "cons@6:native",
 * "pass@1:tag3" under the context (which fixes n, S and the tag layout). */
int ssf_metric_parse(const char *text, const ssf_metric_context *ctx, ssf_metric *out,
                     ssf_error *err);

/* The n a run's pass@K metrics take without the protocol when --samples
 * is not given: the most samples any of its metrics draws a question
 * (avg@N N, cons@K K, pass@K K), so that pass@1 beside cons@32 is the mean
 * over all 32 samples, not the first sample's verdict alone.  0 for a
 * context with the protocol or with samples set, or when no name parses. */
int ssf_metric_default_samples(const char *const *names, size_t n, const ssf_metric_context *ctx);

/* Whether some run reads the name: one without tags (n = k samples), or
 * one with the SSFT protocol.  For a task spec's metrics, which runs of
 * either kind take. */
int ssf_metric_name_valid(const char *text, int task_groups, ssf_error *err);

/* Whether the metric is one of the SSFT protocol's alone (cons@6:native,
 * pass@1:tagK), so that ctx, without the protocol, refuses it for that. */
int ssf_metric_needs_tags(const char *text, const ssf_metric_context *ctx);

/* The number of samples of each tag the metric needs per question
 * (need[0..SSF_MAX_TAGS]); the run generates the element-wise maximum. */
void ssf_metric_need(const ssf_metric *m, const ssf_metric_context *ctx,
                     int need[SSF_MAX_TAGS + 1]);

/* Whether cons@K votes read a sample's whole completion (raw_text) under
 * ctx: the compatibility mode's votes on a letters task.  Elsewhere
 * raw_text may be NULL. */
int ssf_metric_votes_on_text(const ssf_metric_context *ctx, int letters_task);

/* One graded sample as the metrics see it. */
typedef struct ssf_outcome {
    int present;                /* generated and stored */
    int failed;                 /* the generation failed: not an answer */
    int verdict;                /* 1 right, 0 wrong, -1 ungradable */
    int no_answer;              /* nothing extracted */
    const char *key;            /* vote key: the grader's canonical key */
    const char *raw_text;       /* the completion, where ssf_metric_votes_on_text */
    int empty_text;             /* the completion was "" (compat: a vote class of its own) */
    const char *extracted;      /* extracted answer text (compat structural votes) */
    const char *gold_extracted; /* the gold as extracted (compat maj@k scores by equality) */
} ssf_outcome;

/* A question's samples: outcome(tag, index) or NULL when not stored. */
typedef const ssf_outcome *(*ssf_outcome_fn)(int tag, int index, void *ud);

/* The metric's value for one question in [0, 1]; -1 when a needed sample is
 * missing or failed (the question is then left out and counted). */
double ssf_metric_question(const ssf_metric *m, const ssf_metric_context *ctx, int letters_task,
                           ssf_outcome_fn get, void *ud);

/* The unbiased pass@k estimator for c correct of n. */
double ssf_pass_at_k(int n, int c, int k);

typedef struct ssf_aggregate {
    double value;        /* mean over included questions */
    double stderr_;      /* sample std / sqrt(N) */
    double ci_lo, ci_hi; /* bootstrap 95% percentile interval over questions */
    size_t n_questions, n_excluded;
} ssf_aggregate;

/* Aggregates per-question values (negative values are excluded and
 * counted); the bootstrap uses `resamples` draws from a generator seeded with
 * seed, so reports are reproducible. */
void ssf_aggregate_values(const double *values, size_t n, unsigned resamples, uint64_t seed,
                          ssf_aggregate *out);

#ifdef __cplusplus
}
#endif
#endif
