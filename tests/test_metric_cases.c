/*
 * test_metric_cases.c - LightEval's metric fixtures end to end: every
 * response graded by the grader (lighteval profile, the fixture's targets),
 * the verdicts fed to the metrics, and the result compared with the
 * fixture's expected value.  Rows of the metrics outside this harness's
 * scope (G-Pass@k, exact match on raw strings) are counted as skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "grade.h"
#include "score.h"
#include "ssfteval/records.h"
#include "test-support.h"

static ssf_grader *grader;

typedef struct row_kind {
    const char *metric_class;
    int targets;        /* what the fixture's metric extracts; 0: exact string match */
    const char *metric; /* our metric: "pass", "avg", "maj" or "match" */
} row_kind;

static const row_kind kinds[] = {
    {"pass_at_k", 0, "pass"},
    {"pass_at_k_math", SSF_TARGET_LATEX | SSF_TARGET_EXPR, "pass"},
    {"pass_at_k_letters", SSF_TARGET_LETTERS, "pass"},
    {"avg_at_k", 0, "avg"},
    {"avg_at_k_math", SSF_TARGET_LATEX | SSF_TARGET_EXPR, "avg"},
    {"maj_at_k", 0, "maj"},
    {"gpqa_instruct_pass_at_k", SSF_TARGET_LETTERS, "pass"},
    {"gpqa_instruct_metric", SSF_TARGET_LETTERS, "match"},
    {"expr_gold_metric", SSF_TARGET_EXPR, "match"},
};

typedef struct counts {
    size_t ran, skipped;
} counts;

static const row_kind *kind_of(const char *cls)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].metric_class, cls) == 0) return &kinds[i];
    return NULL;
}

static const char *gold_of(const json_t *doc)
{
    const json_t *gi = json_object_get(doc, "gold_index");
    if (json_is_array(gi)) gi = json_array_get(gi, 0);
    return json_string_value(
        json_array_get(json_object_get(doc, "choices"), (size_t)json_integer_value(gi)));
}

typedef struct sample_set {
    ssf_outcome out[64];
    ssf_grade_result res[64];
    size_t n;
} sample_set;

static const ssf_outcome *get_outcome(int tag, int index, void *ud)
{
    sample_set *s = ud;
    return tag == 0 && index >= 0 && (size_t)index < s->n ? &s->out[index] : NULL;
}

/* LightEval's plain metrics compare stripped strings. */
static void exact_match(const char *gold, const char *pred, ssf_grade_result *res)
{
    memset(res, 0, sizeof *res);
    res->pred_key = ssf_xstrdup(pred);
    res->verdict = strcmp(gold, pred) == 0 ? SSF_GRADE_RIGHT : SSF_GRADE_WRONG;
}

static void grade_all(const json_t *row, const row_kind *k, sample_set *s)
{
    const json_t *doc = json_object_get(row, "doc");
    const json_t *texts = json_object_get(json_object_get(row, "model_response"), "text");
    s->n = json_array_size(texts) < 64 ? json_array_size(texts) : 64;
    for (size_t i = 0; i < s->n; i++) {
        ssf_grade_request req = {.gold = gold_of(doc),
                                 .pred = json_string_value(json_array_get(texts, i)),
                                 .targets = k->targets,
                                 .precision = 6,
                                 .n_letters =
                                     (int)json_array_size(json_object_get(doc, "choices"))};
        if (k->targets)
            ssf_grade(grader, &req, &s->res[i]);
        else
            exact_match(req.gold, req.pred, &s->res[i]);
        s->out[i] = (ssf_outcome){.present = 1,
                                  .verdict = s->res[i].verdict,
                                  .no_answer = s->res[i].no_answer,
                                  .key = s->res[i].pred_key,
                                  .raw_text = req.pred,
                                  .extracted = s->res[i].pred_extracted};
    }
}

static double metric_value(const json_t *row, const row_kind *k, sample_set *s)
{
    const json_t *params = json_object_get(row, "metric_params");
    int kk = (int)json_integer_value(json_object_get(params, "k"));
    int n = (int)json_integer_value(json_object_get(params, "n"));
    if (strcmp(k->metric, "match") == 0) { /* extractive_match: any sample right (max) */
        double best = 0;
        for (size_t i = 0; i < s->n; i++)
            if (s->out[i].verdict == 1) best = 1;
        return best;
    }
    char name[32];
    snprintf(name, sizeof name, "%s@%d", k->metric, kk);
    ssf_metric_context ctx = {
        .protocol = SSF_PROTOCOL_NONE, .samples = n ? n : kk, .task_groups = 6};
    ssf_metric m;
    ssf_error err;
    if (ssf_metric_parse(name, &ctx, &m, &err)) fail_msg("%s", err.msg);
    return ssf_metric_question(&m, &ctx, k->targets == SSF_TARGET_LETTERS, get_outcome, s);
}

static int run_row(json_t *row, size_t number, size_t line, void *ud)
{
    counts *c = ud;
    (void)number;
    const row_kind *k = kind_of(json_string_value(json_object_get(row, "metric_class")));
    if (!k) {
        c->skipped++;
        return 0;
    }
    sample_set s;
    grade_all(row, k, &s);
    double got = metric_value(row, k, &s);
    const char *key;
    json_t *want;
    json_object_foreach(json_object_get(row, "expected_output"), key, want)
    {
        double tol = json_number_value(json_object_get(row, "tolerance"));
        double w = json_number_value(want);
        if (!(got >= w - tol && got <= w + tol))
            fail_msg("lighteval_metric_cases.jsonl:%zu (%s, %s): got %g, expected %g", line,
                     json_string_value(json_object_get(row, "name")), key, got, w);
    }
    for (size_t i = 0; i < s.n; i++)
        ssf_grade_result_clear(&s.res[i]);
    c->ran++;
    return 0;
}

static void test_fixtures(void **state)
{
    (void)state;
    ssf_error err;
    grader = ssf_grader_new(SSF_PROFILE_LIGHTEVAL, &err);
    assert_non_null(grader);
    char *path = shared_path("cases/lighteval_metric_cases.jsonl");
    counts c = {0};
    if (ssf_records_read_file(path, SSF_FORMAT_JSONL, run_row, &c, &err)) fail_msg("%s", err.msg);
    printf("# lighteval_metric_cases.jsonl: %zu rows ran through grader and metrics, %zu of "
           "other metric classes (G-Pass@k, exact match) skipped\n",
           c.ran, c.skipped);
    assert_int_equal(c.ran, 52); /* all of the file's rows: none passed over unseen */
    assert_int_equal(c.skipped, 30);
    free(path);
    ssf_grader_free(grader);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fixtures)};
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
