/*
 * report.h - reports from the store (Markdown in the layout of the SSFT
 * README, CSV, JSON) and the paired regression gate behind `compare`.
 */
#ifndef SSFTEVAL_RESULTS_REPORT_H
#define SSFTEVAL_RESULTS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_report_format {
    SSF_REPORT_MARKDOWN,
    SSF_REPORT_CSV,
    SSF_REPORT_JSON,
} ssf_report_format;

int ssf_report_format_from_name(const char *name); /* -1 if unknown */

/* Writes the stored metrics of the runs (all runs when n_runs is 0) under
 * profile (NULL: each run's own). */
int ssf_report_write(ssf_store *store, const int64_t *runs, size_t n_runs, const char *profile,
                     ssf_report_format format, FILE *out, ssf_error *err);

typedef struct ssf_compare_options {
    const char *metric;  /* NULL: every metric the two runs share */
    double max_drop;     /* tolerated drop in percentage points */
    double z;            /* one-sided z for the paired standard error */
    const char *profile; /* NULL: the candidate's profile */
} ssf_compare_options;

/* Compares CAND with BASE question by question; prints a table of deltas.
 * Returns 0 when no metric dropped by more than max_drop + z*SE, 1 on a
 * regression, -1 on error (err set). */
int ssf_compare_runs(ssf_store *store, int64_t base, int64_t cand, const ssf_compare_options *o,
                     FILE *out, ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
