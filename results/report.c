/*
 * report.c - Markdown, CSV and JSON reports and the paired CI gate.
 */
#include "report.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "run.h"
#include "run-internal.h"

int ssf_report_format_from_name(const char *name)
{
    if (strcmp(name, "md") == 0 || strcmp(name, "markdown") == 0) return SSF_REPORT_MARKDOWN;
    if (strcmp(name, "csv") == 0) return SSF_REPORT_CSV;
    if (strcmp(name, "json") == 0) return SSF_REPORT_JSON;
    return -1;
}

/* ---- collecting ----------------------------------------------------------- */

typedef struct entry {
    int64_t run_id;
    char *model, *protocol, *compat, *profile, *task, *metric;
    double value, stderr_, ci_lo, ci_hi;
    int64_t n_questions, n_samples, n_failed, n_missing;
    int64_t limit; /* the questions a --limit run took, 0 when it took them all */
    int k, n;      /* the metric's k and samples a question; -1 when the run does not say */
    char *config_hash, *version;
    char *provenance; /* JSON: what the numbers came from (provenance_of) */
} entry;

typedef struct collection {
    entry *items;
    size_t n, cap;
    const ssf_run_row *run; /* while collecting one run */
    json_t *conf;           /* its stored configuration, parsed once */
    const char *profile;
} collection;

/* How many of a task's questions a --limit run took, from its stored
 * configuration; 0 when it took them all (or had no limit). */
static int64_t limited_to(const json_t *conf, const char *task)
{
    json_int_t limit = json_integer_value(json_object_get(conf, "limit")), took = 0;
    const json_t *t = ssf_run_config_task(conf, task);
    if (t) {
        json_t *all = json_object_get(t, "task_documents");
        json_int_t documents = json_integer_value(json_object_get(t, "documents"));
        if (all)
            took = documents < json_integer_value(all) ? documents : 0;
        else /* a store from before task_documents: fewer than the limit were all there were */
            took = documents >= limit ? limit : 0;
    }
    return limit > 0 && took > 0 ? (int64_t)took : 0;
}

/* What a reader needs to reproduce a task's numbers, as a JSON object in
 * text: the run's identity, build, seed, backend and template, and the
 * task's sampling, sample count and data digests, from the stored
 * configuration (what a run stored before a field was kept lacks). */
static char *provenance_of(const ssf_run_row *r, const json_t *conf, const char *task)
{
    json_t *p = json_pack("{s:s?, s:s?, s:s?}", "config_hash", r->config_hash, "version",
                          r->version, "backend", r->backend);
    static const char *const run_fields[] = {"seed", "chat_template", "gpqa_order", "limit"};
    for (size_t k = 0; p && k < sizeof run_fields / sizeof run_fields[0]; k++)
        if (json_object_get(conf, run_fields[k]))
            json_object_set(p, run_fields[k], json_object_get(conf, run_fields[k]));
    static const char *const task_fields[] = {"samples", "sampling", "documents_sha256",
                                              "questions_sha256"};
    const json_t *t = ssf_run_config_task(conf, task);
    for (size_t k = 0; p && k < sizeof task_fields / sizeof task_fields[0]; k++)
        if (json_object_get(t, task_fields[k]))
            json_object_set(p, task_fields[k], json_object_get(t, task_fields[k]));
    char *text = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(p);
    return text ? text : ssf_xstrdup("{}");
}

static int keep_metric(const ssf_metric_row *m, void *ud)
{
    collection *c = ud;
    const char *want = c->profile ? c->profile : c->run->profile;
    if (want && m->profile && strcmp(want, m->profile) != 0) return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->items = ssf_xrealloc(c->items, c->cap * sizeof *c->items);
    }
    const ssf_run_row *r = c->run;
    c->items[c->n++] = (entry){.run_id = r->id,
                               .model = ssf_xstrdup(r->model ? r->model : ""),
                               .protocol = ssf_xstrdup(r->protocol ? r->protocol : ""),
                               .compat = ssf_xstrdup(r->compat ? r->compat : ""),
                               .profile = ssf_xstrdup(m->profile ? m->profile : ""),
                               .task = ssf_xstrdup(m->task),
                               .metric = ssf_xstrdup(m->metric),
                               .value = m->value,
                               .stderr_ = m->stderr_,
                               .ci_lo = m->ci_lo,
                               .ci_hi = m->ci_hi,
                               .n_questions = m->n_questions,
                               .n_samples = m->n_samples,
                               .n_failed = m->n_failed,
                               .n_missing = m->n_missing,
                               .limit = limited_to(c->conf, m->task),
                               .config_hash = ssf_xstrdup(r->config_hash ? r->config_hash : ""),
                               .version = ssf_xstrdup(r->version ? r->version : ""),
                               .provenance = provenance_of(r, c->conf, m->task)};
    entry *e = &c->items[c->n - 1];
    if (ssf_run_metric_shape(c->conf, m->task, m->metric, &e->k, &e->n)) e->k = e->n = -1;
    return 0;
}

/* Why a run named on the command line has nothing to report, and the fix:
 * one that is not done has no metrics yet, a done one none under another
 * profile until a rescore grades it there. */
static int no_metrics(const ssf_store *store, const ssf_run_row *run, const char *profile,
                      ssf_error *err)
{
    const char *status = ssf_store_run_status(store, run);
    long long id = (long long)run->id;
    if (strcmp(status, "running") == 0)
        return ssf_fail(err,
                        "run %lld is being generated and has no metrics yet: report it once its "
                        "`ssfteval run` has ended",
                        id);
    if (strcmp(status, "stopped") == 0 || strcmp(status, "failed") == 0)
        return ssf_fail(err,
                        "run %lld is %s and has no metrics: run its command again to finish it", id,
                        status);
    if (profile)
        return ssf_fail(err,
                        "run %lld has no metrics under profile %s; grade it with `ssfteval "
                        "rescore %lld --profile %s`",
                        id, profile, id, profile);
    return ssf_fail(err, "run %lld has no metrics; run its command again to score it", id);
}

/* The run's metrics into c; a run with none is an error when `named`. */
static int collect_run(ssf_store *store, int64_t id, int named, collection *c, ssf_error *err)
{
    ssf_run_row run;
    if (ssf_store_get_run(store, id, &run, err)) return -1;
    size_t before = c->n;
    c->run = &run;
    c->conf = json_loads(run.config_json ? run.config_json : "", 0, NULL);
    int rc = ssf_store_foreach_metric(store, id, keep_metric, c, err);
    json_decref(c->conf);
    c->conf = NULL;
    c->run = NULL;
    if (rc == 0 && named && c->n == before) rc = no_metrics(store, &run, c->profile, err);
    ssf_run_row_clear(&run);
    return rc;
}

typedef struct id_list {
    int64_t *ids;
    size_t n, cap;
} id_list;

static int keep_id(const ssf_run_row *r, void *ud)
{
    id_list *l = ud;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->ids = ssf_xrealloc(l->ids, l->cap * sizeof *l->ids);
    }
    l->ids[l->n++] = r->id;
    return 0;
}

static void free_collection(collection *c)
{
    for (size_t i = 0; i < c->n; i++) {
        entry *e = &c->items[i];
        free(e->model);
        free(e->protocol);
        free(e->compat);
        free(e->profile);
        free(e->task);
        free(e->metric);
        free(e->config_hash);
        free(e->version);
        free(e->provenance);
    }
    free(c->items);
}

/* ---- formats -------------------------------------------------------------- */

static const char *mode_of(const entry *e)
{
    return *e->compat ? e->compat : "ssfteval";
}

/* A text field and the character that ends it (a comma, or the line's
 * end), as RFC 4180 has it: quoted, inner quotes doubled, when it holds a
 * comma, a quote or a line break.  Model and task names are the user's and
 * may hold any of them. */
static void csv_text(FILE *out, const char *s, char end)
{
    if (!s[strcspn(s, ",\"\r\n")]) {
        fprintf(out, "%s%c", s, end);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fprintf(out, "\"%c", end);
}

/* A value no question gave (or a standard error of one question) is an
 * empty field, as CSV readers take a missing number, not "nan". */
static void csv_number(FILE *out, double v)
{
    if (isfinite(v)) fprintf(out, "%.6f", v);
    fputc(',', out);
}

static void write_csv(const collection *c, FILE *out)
{
    fputs("run_id,model,task,protocol,mode,profile,metric,value,stderr,ci_lo,ci_hi,"
          "n_questions,n_samples,n_failed,n_missing,k,n,config_hash,version\n",
          out);
    for (size_t i = 0; i < c->n; i++) {
        const entry *e = &c->items[i];
        fprintf(out, "%" PRId64 ",", e->run_id);
        const char *texts[] = {e->model, e->task, e->protocol, mode_of(e), e->profile, e->metric};
        for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
            csv_text(out, texts[k], ',');
        const double numbers[] = {e->value, e->stderr_, e->ci_lo, e->ci_hi};
        for (size_t k = 0; k < sizeof numbers / sizeof numbers[0]; k++)
            csv_number(out, numbers[k]);
        fprintf(out, "%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",", e->n_questions,
                e->n_samples, e->n_failed, e->n_missing);
        if (e->k > 0)
            fprintf(out, "%d,%d,", e->k, e->n);
        else
            fputs(",,", out);
        csv_text(out, e->config_hash, ',');
        csv_text(out, e->version, '\n');
    }
}

static json_t *number_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *run_task_object(const entry *e)
{
    json_t *provenance = json_loads(e->provenance, 0, NULL);
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:{}, s:o}", "run_id", (json_int_t)e->run_id,
                     "model", e->model, "task", e->task, "protocol", e->protocol, "compat",
                     e->compat, "profile", e->profile, "metrics", "provenance",
                     provenance ? provenance : json_object());
}

static void write_json(const collection *c, FILE *out)
{
    json_t *runs = json_array(), *cur = NULL;
    for (size_t i = 0; i < c->n; i++) {
        const entry *e = &c->items[i];
        if (!cur || i == 0 || c->items[i - 1].run_id != e->run_id ||
            strcmp(c->items[i - 1].task, e->task) != 0) {
            cur = run_task_object(e);
            json_array_append_new(runs, cur);
        }
        json_t *ci = json_pack("[o, o]", number_or_null(e->ci_lo), number_or_null(e->ci_hi));
        json_object_set_new(
            json_object_get(cur, "metrics"), e->metric,
            json_pack("{s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o}", "value",
                      number_or_null(e->value), "stderr", number_or_null(e->stderr_), "ci95", ci,
                      "n_questions", (json_int_t)e->n_questions, "n_samples",
                      (json_int_t)e->n_samples, "n_failed", (json_int_t)e->n_failed, "n_missing",
                      (json_int_t)e->n_missing, "k", e->k > 0 ? json_integer(e->k) : json_null(),
                      "n", e->k > 0 ? json_integer(e->n) : json_null()));
    }
    json_t *root = json_pack("{s:o}", "runs", runs);
    json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
}

/* Distinct strings of one field, in first-seen order (out holds c->n). */
static size_t distinct(const collection *c, size_t field_offset, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *v = *(char *const *)((const char *)&c->items[i] + field_offset);
        size_t k = 0;
        while (k < n && strcmp(out[k], v) != 0)
            k++;
        if (k == n) out[n++] = v;
    }
    return n;
}

static const entry *find_entry(const collection *c, int64_t run, const char *task,
                               const char *metric)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->items[i].run_id == run && strcmp(c->items[i].task, task) == 0 &&
            strcmp(c->items[i].metric, metric) == 0)
            return &c->items[i];
    return NULL;
}

/* A table cell's text: '|' would end the cell and a line break the row. */
static void markdown_cell(const char *s, FILE *out)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' || *s == '\r' ? ' ' : *s, out);
    }
}

/* A value over fewer questions than the task has is marked: the questions
 * with failed or missing samples are left out, never scored as wrong. */
static void markdown_value(const entry *e, FILE *out)
{
    fprintf(out, " %.2f", 100 * e->value);
    if (isfinite(e->stderr_)) /* one question: no standard error */
        fprintf(out, " ± %.2f", 100 * e->stderr_);
    if (e->n_missing > 0) fprintf(out, " (%" PRId64 " left out)", e->n_missing);
    if (e->limit > 0) fprintf(out, " (first %" PRId64 ")", e->limit);
    fputs(" |", out);
}

/* The mode's cell, and the grading profile after it when it is not the
 * mode's own (a compat run graded under another --profile): values under
 * two profiles must not read as the same mode's. */
static void markdown_mode(const entry *e, FILE *out)
{
    const char *own = *e->compat ? e->compat : "default";
    fputs(mode_of(e), out);
    if (*e->profile && strcmp(e->profile, own) != 0) fprintf(out, " (profile %s)", e->profile);
    fputs(" |", out);
}

/* Whether an entry before i has the same metric, task and shape (another
 * run's): its task is listed once. */
static int listed_before(const collection *c, size_t i, const char *metric)
{
    const entry *e = &c->items[i];
    for (size_t j = 0; j < i; j++) {
        const entry *o = &c->items[j];
        if (strcmp(o->metric, metric) == 0 && strcmp(o->task, e->task) == 0 && o->n == e->n &&
            o->k == e->k)
            return 1;
    }
    return 0;
}

/* The metric's k and the samples a question it reads, under its heading:
 * one n, or each with the tasks that have it (cons@6:native reads 6 x S). */
static void markdown_shape(const collection *c, const char *metric, FILE *out)
{
    const entry *seen[64];
    size_t n_seen = 0;
    for (size_t i = 0; i < c->n && n_seen < 64; i++) {
        const entry *e = &c->items[i];
        if (strcmp(e->metric, metric) != 0 || e->k <= 0) continue;
        size_t j = 0;
        while (j < n_seen && !(seen[j]->n == e->n && seen[j]->k == e->k))
            j++;
        if (j == n_seen) seen[n_seen++] = e;
    }
    for (size_t j = 0; j < n_seen; j++) {
        fprintf(out, "%sk = %d, n = %d samples a question", j ? "; " : "", seen[j]->k, seen[j]->n);
        if (n_seen == 1) continue;
        const char *sep = " (";
        for (size_t i = 0; i < c->n; i++) {
            const entry *e = &c->items[i];
            if (strcmp(e->metric, metric) != 0 || e->n != seen[j]->n || e->k != seen[j]->k ||
                listed_before(c, i, metric))
                continue;
            fprintf(out, "%s%s", sep, e->task);
            sep = ", ";
        }
        fputc(')', out);
    }
    if (n_seen) fputs(".\n\n", out);
}

/* One table per metric: a row per run (model), a column per task, and the
 * unweighted Average of the tasks, as in the SSFT README. */
static void markdown_table(const collection *c, const char *metric, const char **tasks,
                           size_t n_tasks, const int64_t *runs, size_t n_runs, FILE *out)
{
    fprintf(out, "### %s\n\n", metric);
    markdown_shape(c, metric, out);
    fputs("| model | run | mode |", out);
    for (size_t t = 0; t < n_tasks; t++) {
        fputc(' ', out);
        markdown_cell(tasks[t], out);
        fputs(" |", out);
    }
    fputs(" Average |\n|---|---:|---|", out);
    for (size_t t = 0; t <= n_tasks; t++)
        fputs("---:|", out);
    fputc('\n', out);
    for (size_t r = 0; r < n_runs; r++) {
        const entry *any = NULL;
        double sum = 0;
        size_t have = 0;
        for (size_t t = 0; t < n_tasks; t++)
            if (!any) any = find_entry(c, runs[r], tasks[t], metric);
        if (!any) continue;
        fputs("| ", out);
        markdown_cell(*any->model ? any->model : "-", out);
        fprintf(out, " | %" PRId64 " | ", runs[r]);
        markdown_mode(any, out);
        for (size_t t = 0; t < n_tasks; t++) {
            const entry *e = find_entry(c, runs[r], tasks[t], metric);
            if (e && isfinite(e->value)) {
                markdown_value(e, out);
                sum += 100 * e->value;
                have++;
            } else {
                fputs(" - |", out);
            }
        }
        if (have == n_tasks)
            fprintf(out, " %.2f |\n", sum / (double)n_tasks);
        else
            fputs(" - |\n", out);
    }
    fputc('\n', out);
}

static void write_markdown(const collection *c, FILE *out)
{
    const char **metrics = ssf_xcalloc(c->n + 1, sizeof *metrics);
    const char **tasks = ssf_xcalloc(c->n + 1, sizeof *tasks);
    int64_t *runs = ssf_xcalloc(c->n + 1, sizeof *runs);
    size_t n_metrics = distinct(c, offsetof(entry, metric), metrics);
    size_t n_tasks = distinct(c, offsetof(entry, task), tasks);
    size_t n_runs = 0;
    for (size_t i = 0; i < c->n; i++) /* entries come run by run */
        if (n_runs == 0 || runs[n_runs - 1] != c->items[i].run_id)
            runs[n_runs++] = c->items[i].run_id;
    fputs(
        "Values in percent, ± one standard error over questions; \"(K left out)\": K "
        "questions had failed or missing samples and are not in the value; \"(first N)\": the run "
        "took the task's first N questions (--limit). Mode: "
        "\"ssfteval\" (votes on equivalent answers) or the compatibility mode that reproduces "
        "a reference implementation, \"(profile P)\" when graded under another profile than "
        "its own.\n\n",
        out);
    for (size_t m = 0; m < n_metrics; m++)
        markdown_table(c, metrics[m], tasks, n_tasks, runs, n_runs, out);
    free(metrics);
    free(tasks);
    free(runs);
}

int ssf_report_write(ssf_store *store, const int64_t *runs, size_t n_runs, const char *profile,
                     ssf_report_format format, FILE *out, ssf_error *err)
{
    id_list all = {0};
    int named = n_runs > 0; /* else every run, those without metrics passed over */
    if (n_runs == 0) {
        if (ssf_store_foreach_run(store, keep_id, &all, err)) return -1;
        runs = all.ids;
        n_runs = all.n;
    }
    collection c = {.profile = profile};
    int rc = 0;
    for (size_t i = 0; i < n_runs && rc == 0; i++)
        rc = collect_run(store, runs[i], named, &c, err);
    if (rc == 0 && c.n == 0 && !named)
        rc = ssf_fail(err, "%s%s%s to report; `ssfteval runs` lists the runs and their status",
                      n_runs ? "no run has metrics" : "the store has no runs, so no metrics",
                      profile ? " under profile " : "", profile ? profile : "");
    if (rc == 0 && format == SSF_REPORT_CSV) write_csv(&c, out);
    if (rc == 0 && format == SSF_REPORT_JSON) write_json(&c, out);
    if (rc == 0 && format == SSF_REPORT_MARKDOWN) write_markdown(&c, out);
    free_collection(&c);
    free(all.ids);
    return rc;
}

/* ---- compare ----------------------------------------------------------- */

typedef struct paired {
    double base_mean, cand_mean, delta, se;
    size_t n;
} paired;

/* Paired per-question differences over the questions both runs scored. */
static void pair_values(const double *b, const double *c, size_t n, paired *p)
{
    double sum_b = 0, sum_c = 0, sum_d = 0, sum_dd = 0;
    p->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0 || c[i] < 0) continue;
        double d = c[i] - b[i];
        sum_b += b[i];
        sum_c += c[i];
        sum_d += d;
        sum_dd += d * d;
        p->n++;
    }
    double k = (double)p->n;
    p->base_mean = p->n ? sum_b / k : NAN;
    p->cand_mean = p->n ? sum_c / k : NAN;
    p->delta = p->n ? sum_d / k : NAN;
    double var = p->n > 1 ? (sum_dd - k * p->delta * p->delta) / (k - 1) : 0;
    p->se = p->n > 1 && var > 0 ? sqrt(var / k) : 0;
}

static int compare_one(ssf_store *store, int64_t base, int64_t cand, const char *task,
                       const char *metric, const char *profile, const ssf_compare_options *o,
                       FILE *out, int *regressed, ssf_error *err)
{
    double *bv = NULL, *cv = NULL;
    int64_t *bd = NULL, *cd = NULL;
    size_t bn = 0, cn = 0;
    int rc = ssf_run_question_values(store, base, task, metric, profile, &bv, &bd, &bn, err);
    if (rc == 0)
        rc = ssf_run_question_values(store, cand, task, metric, profile, &cv, &cd, &cn, err);
    if (rc == 0 && bn != cn)
        rc = ssf_fail(err,
                      "task %s: run %" PRId64 " has %zu questions and run %" PRId64
                      " %zu; compare runs over the same questions",
                      task, base, bn, cand, cn);
    paired p = {0};
    if (rc == 0) pair_values(bv, cv, bn, &p);
    if (rc == 0 && p.n == 0)
        rc = ssf_fail(err,
                      "task %s: no question has %s from both run %" PRId64 " and run %" PRId64
                      "; nothing to compare",
                      task, metric, base, cand);
    if (rc == 0) {
        double limit = -(o->max_drop + o->z * 100 * p.se);
        int bad = 100 * p.delta < limit;
        *regressed |= bad;
        char se[16] = "-"; /* one question has no spread: the gate is --max-drop alone */
        if (p.n > 1) snprintf(se, sizeof se, "%.2f", 100 * p.se);
        fprintf(out, "%-14s %-16s %8.2f %8.2f %+8.2f %7s %6zu  %s\n", task, metric,
                100 * p.base_mean, 100 * p.cand_mean, 100 * p.delta, se, p.n,
                bad ? "REGRESSION" : "ok");
    }
    free(bv);
    free(cv);
    free(bd);
    free(cd);
    return rc;
}

/* The task's questions_sha256 in a run's stored configuration, or NULL
 * (a run stored before it was kept), and how many questions it covers. */
static const char *questions_of(const json_t *conf, const char *task, json_int_t *count)
{
    const json_t *t = ssf_run_config_task(conf, task);
    *count = json_integer_value(json_object_get(t, "documents"));
    return json_string_value(json_object_get(t, "questions_sha256"));
}

/* compare pairs questions by their order: two runs must have asked the
 * same ones, in the same order, with the same answers.  (Runs of another
 * number of questions, a --limit run beside a whole one, are refused by
 * compare_one, which says so.) */
static int same_questions(const ssf_run_row *base, const json_t *base_conf, const ssf_run_row *cand,
                          const json_t *cand_conf, const char *task, ssf_error *err)
{
    json_int_t nb, nc;
    const char *b = questions_of(base_conf, task, &nb), *c = questions_of(cand_conf, task, &nc);
    if (!b || !c || nb != nc || strcmp(b, c) == 0) return 0;
    return ssf_fail(err,
                    "task %s: run %" PRId64 " and run %" PRId64 " asked different questions "
                    "(other data: a --task-file, --data-dir or revision); compare runs over the "
                    "same questions",
                    task, base->id, cand->id);
}

/* A gate over a run that is missing samples would compare the questions
 * that happened to finish (a dead server would pass it), so both runs must
 * be whole. */
static int check_whole(const ssf_store *store, const ssf_run_row *r, ssf_error *err)
{
    if (r->status && strcmp(r->status, "done") == 0) return 0;
    const char *status = ssf_store_run_status(store, r);
    if (status && strcmp(status, "running") == 0)
        return ssf_fail(err,
                        "run %" PRId64 " is being generated now, not done: compare it once its "
                        "`ssfteval run` has ended",
                        r->id);
    return ssf_fail(err,
                    "run %" PRId64 " is %s, not done: some of its samples failed or were never "
                    "made; rerun its `ssfteval run` command (it resumes) before comparing",
                    r->id, status ? status : "without a status");
}

static int load_whole_run(ssf_store *store, int64_t id, ssf_run_row *r, ssf_error *err)
{
    if (ssf_store_get_run(store, id, r, err)) return -1;
    if (check_whole(store, r, err) == 0) return 0;
    ssf_run_row_clear(r);
    return -1;
}

static int compared(const char *metric, const char *asked)
{
    return !asked || strcmp(metric, asked) == 0;
}

/* The candidate's metrics (the comparison covers those compared() names);
 * an error when it covers none. */
static int metrics_to_compare(ssf_store *store, const ssf_run_row *cand, const char *profile,
                              const char *metric, collection *c, ssf_error *err)
{
    c->profile = profile;
    if (collect_run(store, cand->id, 0, c, err)) return -1;
    for (size_t i = 0; i < c->n; i++)
        if (compared(c->items[i].metric, metric)) return 0;
    if (metric)
        return ssf_fail(err, "run %" PRId64 " has no metric %s under profile %s to compare",
                        cand->id, metric, profile);
    return ssf_fail(err,
                    "run %" PRId64 " has no metric under profile %s; grade it with "
                    "`ssfteval rescore %" PRId64 " --profile %s`",
                    cand->id, profile, cand->id, profile);
}

int ssf_compare_runs(ssf_store *store, int64_t base, int64_t cand, const ssf_compare_options *o,
                     FILE *out, ssf_error *err)
{
    ssf_run_row base_run, cand_run;
    if (load_whole_run(store, base, &base_run, err)) return -1;
    if (load_whole_run(store, cand, &cand_run, err)) {
        ssf_run_row_clear(&base_run);
        return -1;
    }
    const char *profile = o->profile ? o->profile : cand_run.profile;
    collection c = {0};
    int rc = metrics_to_compare(store, &cand_run, profile, o->metric, &c, err);
    json_t *base_conf = json_loads(base_run.config_json ? base_run.config_json : "", 0, NULL);
    json_t *cand_conf = json_loads(cand_run.config_json ? cand_run.config_json : "", 0, NULL);
    for (size_t i = 0; i < c.n && rc == 0; i++)
        rc = compared(c.items[i].metric, o->metric)
                 ? same_questions(&base_run, base_conf, &cand_run, cand_conf, c.items[i].task, err)
                 : 0;
    json_decref(base_conf);
    json_decref(cand_conf);
    /* The table is written whole or not at all: a row refused halfway
     * (a damaged store) leaves no table for a CI log to misread. */
    char *table = NULL;
    size_t table_len = 0;
    FILE *t = rc == 0 ? open_memstream(&table, &table_len) : NULL;
    if (rc == 0 && !t) rc = ssf_fail(err, "compare: out of memory");
    if (rc == 0)
        fprintf(t, "%-14s %-16s %8s %8s %8s %7s %6s  %s\n", "task", "metric", "base", "cand",
                "delta", "SE", "N", "decision");
    int regressed = 0;
    for (size_t i = 0; i < c.n && rc == 0; i++)
        if (compared(c.items[i].metric, o->metric))
            rc = compare_one(store, base, cand, c.items[i].task, c.items[i].metric, profile, o, t,
                             &regressed, err);
    if (rc == 0)
        fprintf(t, "gate: drop > %.2f points + %.2f x SE fails; %s\n", o->max_drop, o->z,
                regressed ? "REGRESSION" : "no regression");
    /* a write to the memory stream fails only for want of memory */
    if (t && (ferror(t) | fclose(t)) && rc == 0) rc = ssf_fail(err, "compare: out of memory");
    if (rc == 0) fwrite(table, 1, table_len, out);
    free(table);
    free_collection(&c);
    ssf_run_row_clear(&base_run);
    ssf_run_row_clear(&cand_run);
    return rc ? -1 : regressed;
}
