/*
 * test_score.c - metrics: the pass@k estimator, LightEval's metric fixtures
 * (../shared/cases/lighteval_metric_cases.jsonl, the rows gradable by exact
 * match), a hand-built SSFT question set whose Pass@1, native Cons@6,
 * Cons@32 (round-robin) and compat maj@32 (block order) all differ, vote
 * rules, sample needs, parse errors and aggregation.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "score.h"
#include "test-support.h"
#include "vote_form.h"

#define EPS 1e-12
#define MAX_INDEX 32

/* ---- helpers ------------------------------------------------------------ */

/* cmocka 1.1 has no assert_double_equal. */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), #a, __FILE__, __LINE__)

static void assert_near_at(double got, double want, double eps, const char *what, const char *file,
                           int line)
{
    if (fabs(got - want) <= eps) return;
    print_error("%s = %.17g, expected %.17g (+- %g)\n", what, got, want, eps);
    _fail(file, line);
}

static ssf_metric_context ctx_none(int samples)
{
    ssf_metric_context c = {SSF_PROTOCOL_NONE, SSF_COMPAT_NONE, samples, 0, 6};
    return c;
}

static ssf_metric_context ctx_ssft(int task_groups, ssf_compat compat)
{
    ssf_metric_context c = {SSF_PROTOCOL_SSFT, compat, 0, 0, task_groups};
    return c;
}

static ssf_metric parse_ok(const char *name, const ssf_metric_context *ctx)
{
    ssf_metric m;
    ssf_error err = {0};
    int rc = ssf_metric_parse(name, ctx, &m, &err);
    if (rc != 0) fail_msg("parse '%s': %s", name, err.msg);
    return m;
}

/* A question's samples by (tag, index), with distinct completions. */
typedef struct question {
    ssf_outcome o[SSF_MAX_TAGS + 1][MAX_INDEX];
    char raw[SSF_MAX_TAGS + 1][MAX_INDEX][48];
} question;

static const ssf_outcome *get_outcome(int tag, int index, void *ud)
{
    question *q = ud;
    if (tag < 0 || tag > SSF_MAX_TAGS || index < 0 || index >= MAX_INDEX) return NULL;
    return &q->o[tag][index];
}

static void set_answer(question *q, int tag, int index, const char *answer, const char *gold)
{
    ssf_outcome *o = &q->o[tag][index];
    snprintf(q->raw[tag][index], sizeof q->raw[tag][index], "reasoning t%d i%d: %s", tag, index,
             answer);
    *o = (ssf_outcome){.present = 1,
                       .verdict = strcmp(answer, gold) == 0,
                       .key = answer,
                       .raw_text = q->raw[tag][index],
                       .extracted = answer,
                       .gold_extracted = gold};
}

static void set_no_answer(question *q, int tag, int index)
{
    ssf_outcome *o = &q->o[tag][index];
    snprintf(q->raw[tag][index], sizeof q->raw[tag][index], "rambling t%d i%d", tag, index);
    *o = (ssf_outcome){.present = 1, .no_answer = 1, .raw_text = q->raw[tag][index]};
}

static double question_value(const char *name, const ssf_metric_context *ctx, int letters,
                             question *q)
{
    ssf_metric m = parse_ok(name, ctx);
    return ssf_metric_question(&m, ctx, letters, get_outcome, q);
}

/* ---- 1. the pass@k estimator ------------------------------------------- */

static long double binom(int n, int k)
{
    if (k < 0 || k > n) return 0;
    long double r = 1;
    for (int i = 1; i <= k; i++)
        r = r * (n - k + i) / i;
    return r;
}

static void test_pass_at_k_product(void **state)
{
    (void)state;
    static const int ks[] = {1, 8};
    for (size_t a = 0; a < 2; a++) {
        int k = ks[a];
        for (int c = 0; c <= 32; c++) {
            long double fail = 1;
            for (int m = 32 - c + 1; m <= 32; m++)
                fail *= 1.0L - (long double)k / m;
            double want = 32 - c < k ? 1.0 : (double)(1.0L - fail);
            assert_near(ssf_pass_at_k(32, c, k), want, EPS);
        }
    }
    for (int c = 0; c <= 32; c++)
        assert_near(ssf_pass_at_k(32, c, 1), c / 32.0, EPS);
    assert_near(ssf_pass_at_k(32, 25, 8), 1.0, 0); /* n - c < k */
    assert_near(ssf_pass_at_k(32, 0, 8), 0.0, 0);
}

static void test_pass_at_k_exact(void **state)
{
    (void)state;
    for (int n = 1; n <= 20; n++)
        for (int k = 1; k <= n; k++)
            for (int c = 0; c <= n; c++) {
                double want = (double)(1.0L - binom(n - c, k) / binom(n, k));
                assert_near(ssf_pass_at_k(n, c, k), want, 1e-12);
            }
}

static void test_pass_at_k_invalid(void **state)
{
    (void)state;
    assert_true(isnan(ssf_pass_at_k(0, 0, 1)));
    assert_true(isnan(ssf_pass_at_k(4, 1, 5)));
    assert_true(isnan(ssf_pass_at_k(4, 5, 1)));
    assert_true(isnan(ssf_pass_at_k(4, -1, 1)));
    assert_true(isnan(ssf_pass_at_k(4, 1, 0)));
}

/* ---- 2. LightEval metric fixtures --------------------------------------- */

typedef struct fixture {
    ssf_outcome o[16];
    char *text[16];
    size_t n;
} fixture;

static const ssf_outcome *get_fixture(int tag, int index, void *ud)
{
    fixture *f = ud;
    if (tag != 0 || index < 0 || (size_t)index >= f->n) return NULL;
    return &f->o[index];
}

static char *strip_dup(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return ssf_xstrndup(s, n);
}

/* LightEval scores a list gold_index against its first gold ("Avg at K -
 * Multiple Correct" expects 1/3 with golds London, Paris, Berlin). */
static const char *fixture_gold(json_t *doc)
{
    json_t *gi = json_object_get(doc, "gold_index");
    if (json_is_array(gi)) gi = json_array_get(gi, 0);
    json_t *gold = json_array_get(json_object_get(doc, "choices"), json_integer_value(gi));
    assert_non_null(gold);
    return json_string_value(gold);
}

/* The metric name and context of a plain row; NULL when not one we grade. */
static const char *fixture_metric(const char *cls, json_t *params, char *name, size_t size,
                                  ssf_metric_context *ctx)
{
    int k = (int)json_integer_value(json_object_get(params, "k"));
    int n = (int)json_integer_value(json_object_get(params, "n"));
    *ctx = ctx_none(n);
    if (strcmp(cls, "pass_at_k") == 0)
        snprintf(name, size, "pass@%d", k);
    else if (strcmp(cls, "avg_at_k") == 0)
        snprintf(name, size, "avg@%d", k);
    else if (strcmp(cls, "maj_at_k") == 0)
        snprintf(name, size, "maj@%d", k);
    else
        return NULL;
    return name;
}

static double run_fixture(json_t *row, const char *metric, const ssf_metric_context *ctx)
{
    char *gold = strip_dup(fixture_gold(json_object_get(row, "doc")));
    json_t *texts = json_object_get(json_object_get(row, "model_response"), "text");
    fixture f = {.n = json_array_size(texts)};
    assert_true(f.n <= 16);
    for (size_t i = 0; i < f.n; i++) {
        f.text[i] = strip_dup(json_string_value(json_array_get(texts, i)));
        f.o[i] = (ssf_outcome){.present = 1,
                               .verdict = strcmp(f.text[i], gold) == 0,
                               .key = f.text[i],
                               .raw_text = f.text[i],
                               .extracted = f.text[i]};
    }
    ssf_metric m = parse_ok(metric, ctx);
    double v = ssf_metric_question(&m, ctx, 0, get_fixture, &f);
    ssf_aggregate agg;
    ssf_aggregate_values(&v, 1, 100, 1, &agg);
    for (size_t i = 0; i < f.n; i++)
        free(f.text[i]);
    free(gold);
    return agg.value;
}

static int is_grader_row(const char *cls)
{
    static const char *const names[] = {"pass_at_k_math", "pass_at_k_letters", "avg_at_k_math",
                                        "gpqa_instruct_pass_at_k"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(cls, names[i]) == 0) return 1;
    return 0;
}

static void test_lighteval_fixtures(void **state)
{
    (void)state;
    char *path = shared_path("cases/lighteval_metric_cases.jsonl");
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    json_error_t jerr;
    int ran = 0, skipped = 0;
    json_t *row;
    while ((row = json_loadf(fp, JSON_DISABLE_EOF_CHECK, &jerr)) != NULL) {
        const char *cls = json_string_value(json_object_get(row, "metric_class"));
        const char *name = json_string_value(json_object_get(row, "name"));
        char buf[32];
        ssf_metric_context ctx;
        const char *metric =
            fixture_metric(cls, json_object_get(row, "metric_params"), buf, sizeof buf, &ctx);
        if (metric) {
            const char *key;
            json_t *want;
            json_object_foreach(json_object_get(row, "expected_output"), key, want)
            {
                double tol = json_number_value(json_object_get(row, "tolerance"));
                double got = run_fixture(row, metric, &ctx);
                if (fabs(got - json_number_value(want)) > tol)
                    fail_msg("%s (%s): got %g, expected %g", name, key, got,
                             json_number_value(want));
            }
            ran++;
        } else if (is_grader_row(cls)) {
            printf("# skipped: needs the grader (%s)\n", name);
            skipped++;
        }
        json_decref(row);
    }
    fclose(fp);
    free(path);
    printf("# lighteval metric fixtures: %d rows ran, %d skipped (need the grader)\n", ran,
           skipped);
    assert_int_equal(ran, 10);
    assert_int_equal(skipped, 20);
}

/* ---- 3. a synthetic SSFT question set ----------------------------------- */

/* Q1: tags 1-2 right ("7"), tags 3-6 wrong ("3"). */
static const char *q1_answer(int tag, int index)
{
    (void)index;
    return tag <= 2 ? "7" : "3";
}

/* Q2: t1 "9", t2 "7", t3 "9", t4 "7", t5 "7" for index < 3 else "8", t6 "8":
 * native groups s < 3 vote 7 (3 of 6); later groups tie 2-2-2 and the tag-1
 * answer "9" wins. */
static const char *q2_answer(int tag, int index)
{
    static const char *const by_tag[] = {"", "9", "7", "9", "7", "7", "8"};
    if (tag == 5 && index >= 3) return "8";
    return by_tag[tag];
}

static question *make_question(const char *(*answer)(int, int))
{
    question *q = calloc(1, sizeof *q);
    assert_non_null(q);
    for (int t = 1; t <= SSF_MAX_TAGS; t++)
        for (int i = 0; i < MAX_INDEX; i++) {
            if (answer)
                set_answer(q, t, i, answer(t, i), "7");
            else
                set_no_answer(q, t, i);
        }
    return q;
}

/* Q3: no answer anywhere but one "7" at (tag 3, index 0). */
static question *make_q3(void)
{
    question *q = make_question(NULL);
    set_answer(q, 3, 0, "7", "7");
    return q;
}

static double mean_over(question *qs[3], const char *name, const ssf_metric_context *ctx)
{
    double v[3];
    for (int i = 0; i < 3; i++)
        v[i] = question_value(name, ctx, 0, qs[i]);
    ssf_aggregate agg;
    ssf_aggregate_values(v, 3, 200, 7, &agg);
    assert_int_equal(agg.n_excluded, 0);
    return agg.value;
}

static void test_ssft_set(void **state)
{
    (void)state;
    question *qs[3] = {make_question(q1_answer), make_question(q2_answer), make_q3()};
    ssf_metric_context s11 = ctx_ssft(11, SSF_COMPAT_NONE), s6 = ctx_ssft(6, SSF_COMPAT_NONE);
    ssf_metric_context c11 = ctx_ssft(11, SSF_COMPAT_SSFT_LIGHTEVAL);
    ssf_metric_context c6 = ctx_ssft(6, SSF_COMPAT_SSFT_LIGHTEVAL);

    /* Per question (Q1, Q2, Q3), worked out by hand in the comments above. */
    static const struct {
        const char *metric;
        int which; /* 0 s11, 1 s6, 2 c11, 3 c6 */
        double q[3];
    } cases[] = {
        {"pass@1", 0, {1, 0, 0}},
        {"cons@6:native", 0, {0, 3.0 / 11, 1.0 / 11}},
        {"cons@6:native", 1, {0, 0.5, 1.0 / 6}},
        /* round-robin: Q1 7:12 vs 3:20; Q2 9:11, 7:14, 8:7; Q3 one answer */
        {"cons@32", 0, {0, 1, 1}},
        {"maj@32", 1, {0, 1, 1}},
        /* block, S=11 (t1 x11, t2 x11, t3 x10): Q1 7:22; Q2 9:21; Q3 "[]" wins */
        {"maj@32", 2, {1, 0, 0}},
        /* block, S=6 (t1..t5 x6, t6 x2): Q1 3:20; Q2 7:15 */
        {"maj@32", 3, {0, 1, 0}},
        /* compat native: same groups, but "[]" is a class that can win */
        {"cons@6:native", 2, {0, 3.0 / 11, 0}},
        {"pass@1", 2, {1, 0, 0}},
        {"pass@1:tag2", 0, {1, 1, 0}},
        {"pass@1:tag5", 0, {0, 3.0 / 11, 0}},
        {"pass@1:tag3", 1, {0, 0, 1.0 / 6}},
    };
    const ssf_metric_context *ctxs[] = {&s11, &s6, &c11, &c6};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int j = 0; j < 3; j++) {
            double got = question_value(cases[i].metric, ctxs[cases[i].which], 0, qs[j]);
            if (fabs(got - cases[i].q[j]) > EPS)
                fail_msg("%s (context %d) Q%d: got %.6f, expected %.6f", cases[i].metric,
                         cases[i].which, j + 1, got, cases[i].q[j]);
        }

    /* The variants' benchmark values differ from each other. */
    assert_near(mean_over(qs, "pass@1", &s11), 1.0 / 3, EPS);
    assert_near(mean_over(qs, "cons@6:native", &s11), 4.0 / 33, EPS);
    assert_near(mean_over(qs, "cons@6:native", &s6), 2.0 / 9, EPS);
    assert_near(mean_over(qs, "cons@32", &s11), 2.0 / 3, EPS);
    assert_near(mean_over(qs, "maj@32", &c11), 1.0 / 3, EPS);
    assert_near(mean_over(qs, "cons@6:native", &c11), 1.0 / 11, EPS);
    for (int i = 0; i < 3; i++)
        free(qs[i]);
}

/* A --groups override replaces the task's S. */
static void test_groups_override(void **state)
{
    (void)state;
    question *q = make_question(q2_answer);
    ssf_metric_context ctx = ctx_ssft(11, SSF_COMPAT_NONE);
    ctx.groups = 6;
    ssf_metric m = parse_ok("cons@6:native", &ctx);
    assert_int_equal(m.groups, 6);
    assert_near(ssf_metric_question(&m, &ctx, 0, get_outcome, q), 0.5, EPS);
    free(q);
}

/* A failed or missing sample the metric reads excludes the question; one it
 * does not read changes nothing. */
static void test_failed_and_missing(void **state)
{
    (void)state;
    ssf_metric_context s11 = ctx_ssft(11, SSF_COMPAT_NONE), s6 = ctx_ssft(6, SSF_COMPAT_NONE);
    ssf_metric_context c11 = ctx_ssft(11, SSF_COMPAT_SSFT_LIGHTEVAL);
    question *q = make_question(q2_answer);
    q->o[4][10].failed = 1; /* read by native S=11 only */
    assert_near(question_value("cons@6:native", &s11, 0, q), -1, 0);
    assert_near(question_value("cons@6:native", &s6, 0, q), 0.5, EPS);
    assert_near(question_value("cons@32", &s11, 0, q), 1, EPS);
    assert_near(question_value("maj@32", &c11, 0, q), 0, EPS); /* tags 1-3 only */
    q->o[1][31].present = 0;
    assert_near(question_value("pass@1", &s11, 0, q), -1, 0);
    assert_near(question_value("pass@1:tag1", &s11, 0, q), 0, EPS);

    /* A getter that has nothing stored beyond index 3. */
    ssf_metric_context none = ctx_none(8);
    fixture f = {.n = 4};
    for (size_t i = 0; i < 4; i++)
        f.o[i] = (ssf_outcome){.present = 1, .verdict = 1, .key = "a"};
    ssf_metric m = parse_ok("pass@2", &none);
    assert_near(ssf_metric_question(&m, &none, 0, get_fixture, &f), -1, 0);
    m = parse_ok("cons@4", &none);
    assert_near(ssf_metric_question(&m, &none, 0, get_fixture, &f), 1, 0);

    /* The excluded question is counted, not scored. */
    question *q1 = make_question(q1_answer), *q3 = make_q3();
    double v[3] = {question_value("cons@6:native", &s11, 0, q1),
                   question_value("cons@6:native", &s11, 0, q),
                   question_value("cons@6:native", &s11, 0, q3)};
    ssf_aggregate agg;
    ssf_aggregate_values(v, 3, 100, 3, &agg);
    assert_int_equal(agg.n_questions, 2);
    assert_int_equal(agg.n_excluded, 1);
    assert_near(agg.value, 1.0 / 22, EPS);
    free(q);
    free(q1);
    free(q3);
}

/* cons@k over tag-0 samples given as (key, verdict) pairs. */
static double vote_keys(const char *const *keys, const int *verdicts, int n, int compat)
{
    fixture f = {.n = (size_t)n};
    for (int i = 0; i < n; i++)
        f.o[i] =
            (ssf_outcome){.present = 1,
                          .verdict = verdicts[i],
                          .key = keys[i],
                          .extracted = keys[i] && strcmp(keys[i], "none") != 0 ? keys[i] : NULL,
                          .gold_extracted = verdicts[i] == 1 ? keys[i] : "(the gold)",
                          .raw_text = keys[i]};
    ssf_metric_context ctx = ctx_none(0);
    if (compat) ctx.compat = SSF_COMPAT_SSFT_LIGHTEVAL;
    char name[24];
    snprintf(name, sizeof name, "cons@%d", n);
    ssf_metric m = parse_ok(name, &ctx);
    return ssf_metric_question(&m, &ctx, 0, get_fixture, &f);
}

static void test_vote_rules(void **state)
{
    (void)state;
    /* Ties: the class seen first wins. */
    const char *abba[] = {"a", "b", "b", "a"};
    assert_near(vote_keys(abba, (int[]){1, 0, 0, 1}, 4, 0), 1, 0);
    assert_near(vote_keys(abba, (int[]){0, 1, 1, 0}, 4, 0), 0, 0);
    /* "No answer" (NULL or "none") loses to a single answer ... */
    const char *mostly_none[] = {NULL, "none", NULL, "7", "none"};
    assert_near(vote_keys(mostly_none, (int[]){0, 0, 0, 1, 0}, 5, 0), 1, 0);
    /* ... unless compat, where nothing extracted is the class "[]" */
    assert_near(vote_keys(mostly_none, (int[]){0, 0, 0, 1, 0}, 5, 1), 0, 0);
    /* No answer anywhere: no vote, score 0. */
    const char *all_none[] = {NULL, "none", NULL};
    assert_near(vote_keys(all_none, (int[]){1, 1, 1}, 3, 0), 0, 0);
    /* The winner is scored by its first member; ungradable counts as 0. */
    const char *xxy[] = {"x", "y", "x"};
    assert_near(vote_keys(xxy, (int[]){1, 0, 0}, 3, 0), 1, 0);
    assert_near(vote_keys(xxy, (int[]){-1, 1, 1}, 3, 0), 0, 0);
    /* no_answer = 1 abstains even with a key. */
    fixture f = {.n = 3};
    f.o[0] = (ssf_outcome){.present = 1, .no_answer = 1, .key = "5"};
    f.o[1] = (ssf_outcome){.present = 1, .no_answer = 1, .key = "5"};
    f.o[2] = (ssf_outcome){.present = 1, .verdict = 1, .key = "6"};
    ssf_metric_context none = ctx_none(0);
    ssf_metric m = parse_ok("maj@3", &none);
    assert_near(ssf_metric_question(&m, &none, 0, get_fixture, &f), 1, 0);
    /* An empty key is an answer, not the same class as no answer. */
    const char *empty[] = {NULL, ""};
    assert_near(vote_keys(empty, (int[]){0, 1}, 2, 0), 1, 0);
    /* Keys are whole: "1" and "10" are two classes, and "" is one of its own. */
    const char *prefix[] = {"1", "10", "10"};
    assert_near(vote_keys(prefix, (int[]){1, 0, 0}, 3, 0), 0, 0);
    const char *empties[] = {"", "7", "7"};
    assert_near(vote_keys(empties, (int[]){1, 0, 0}, 3, 0), 0, 0);
    /* compat: an empty completion is the reference's "", a class apart
     * from "[]" (nothing extracted): 7 x2, "[]" x2, "" x2, and 7 came first */
    fixture e = {.n = 6};
    for (int i = 0; i < 6; i++) {
        int right = i == 0 || i == 5;
        e.o[i] = (ssf_outcome){.present = 1,
                               .verdict = right,
                               .no_answer = !right,
                               .empty_text = i == 2 || i == 4,
                               .key = right ? "q:7" : NULL,
                               .extracted = right ? "7" : NULL,
                               .gold_extracted = "7"};
    }
    ssf_metric_context compat_e = ctx_none(0);
    compat_e.compat = SSF_COMPAT_SSFT_LIGHTEVAL;
    ssf_metric me = parse_ok("maj@6", &compat_e);
    assert_near(ssf_metric_question(&me, &compat_e, 0, get_fixture, &e), 1, 0);
    e.o[2].empty_text = e.o[4].empty_text = 0; /* all "[]": x4 wins */
    assert_near(ssf_metric_question(&me, &compat_e, 0, get_fixture, &e), 0, 0);
    /* compat: the vote's winner against the gold's text, whole too */
    fixture g = {.n = 3};
    for (int i = 0; i < 3; i++)
        g.o[i] = (ssf_outcome){.present = 1,
                               .verdict = 0,
                               .key = "q:10",
                               .extracted = "10",
                               .gold_extracted = "1",
                               .raw_text = "so 10"};
    ssf_metric_context compat = ctx_none(0);
    compat.compat = SSF_COMPAT_SSFT_LIGHTEVAL;
    m = parse_ok("maj@3", &compat);
    assert_near(ssf_metric_question(&m, &compat, 0, get_fixture, &g), 0, 0);
}

/* An ungradable sample (over budget, undecided) is not correct in pass@k
 * and avg@n either: only verdict 1 counts. */
static void test_ungradable_not_correct(void **state)
{
    (void)state;
    fixture f = {.n = 4};
    static const int verdicts[4] = {1, -1, -1, 0};
    for (int i = 0; i < 4; i++)
        f.o[i] = (ssf_outcome){.present = 1, .verdict = verdicts[i], .key = "k"};
    ssf_metric_context none = ctx_none(4);
    ssf_metric m = parse_ok("pass@1", &none);
    assert_near(ssf_metric_question(&m, &none, 0, get_fixture, &f), 0.25, EPS);
    m = parse_ok("avg@4", &none);
    assert_near(ssf_metric_question(&m, &none, 0, get_fixture, &f), 0.25, EPS);
    m = parse_ok("pass@2", &none); /* 1 - C(3,2)/C(4,2) */
    assert_near(ssf_metric_question(&m, &none, 0, get_fixture, &f), 0.5, EPS);
}

/* Compat GPQA votes on whole completions: distinct texts, so the first
 * sample's verdict; native groups strip the text first. */
static void test_compat_letters(void **state)
{
    (void)state;
    question *q = calloc(1, sizeof *q);
    assert_non_null(q);
    for (int t = 1; t <= SSF_MAX_TAGS; t++)
        for (int i = 0; i < MAX_INDEX; i++)
            set_answer(q, t, i, t == 1 && i == 0 ? "B" : "C", "B");
    ssf_metric_context s6 = ctx_ssft(6, SSF_COMPAT_NONE);
    ssf_metric_context c6 = ctx_ssft(6, SSF_COMPAT_SSFT_LIGHTEVAL);
    assert_near(question_value("cons@32", &s6, 1, q), 0, 0);
    assert_near(question_value("maj@32", &c6, 1, q), 1, 0);
    assert_near(question_value("cons@6:native", &s6, 1, q), 0, 0);
    assert_near(question_value("cons@6:native", &c6, 1, q), 1.0 / 6, EPS);
    /* Without letters_task compat votes on the extracted "C". */
    assert_near(question_value("maj@32", &c6, 0, q), 0, 0);

    /* Group 0: " Y" and "Y\n" (right) outvote "X" once stripped. */
    q->o[1][0].raw_text = "X";
    q->o[1][0].verdict = 0;
    q->o[2][0].raw_text = " Y";
    q->o[2][0].verdict = 1;
    q->o[3][0].raw_text = "Y\n";
    q->o[3][0].verdict = 1;
    assert_near(question_value("cons@6:native", &c6, 1, q), 1.0 / 6, EPS);
    free(q);

    /* cons@k compares the completions as they are: "X" stays first. */
    fixture f = {.n = 3};
    static const char *const raw[] = {"X", " Y", "Y\n"};
    for (size_t i = 0; i < 3; i++)
        f.o[i] =
            (ssf_outcome){.present = 1, .verdict = i > 0, .key = i ? "Y" : "X", .raw_text = raw[i]};
    ssf_metric_context none = ctx_none(0);
    none.compat = SSF_COMPAT_SSFT_LIGHTEVAL;
    ssf_metric m = parse_ok("maj@3", &none);
    assert_near(ssf_metric_question(&m, &none, 1, get_fixture, &f), 0, 0);
    none.compat = SSF_COMPAT_NONE;
    assert_near(ssf_metric_question(&m, &none, 1, get_fixture, &f), 1, 0);
}

/* ---- 4. sample needs and parsing ---------------------------------------- */

static void assert_need(const char *name, const ssf_metric_context *ctx, const int want[7])
{
    ssf_metric m = parse_ok(name, ctx);
    int need[SSF_MAX_TAGS + 1];
    ssf_metric_need(&m, ctx, need);
    for (int t = 0; t <= SSF_MAX_TAGS; t++)
        if (need[t] != want[t])
            fail_msg("%s: need[%d] = %d, expected %d", name, t, need[t], want[t]);
}

static void test_need(void **state)
{
    (void)state;
    ssf_metric_context s11 = ctx_ssft(11, SSF_COMPAT_NONE), s6 = ctx_ssft(6, SSF_COMPAT_NONE);
    ssf_metric_context c11 = ctx_ssft(11, SSF_COMPAT_SSFT_LIGHTEVAL);
    ssf_metric_context c6 = ctx_ssft(6, SSF_COMPAT_SSFT_LIGHTEVAL);
    assert_need("pass@1", &s11, (const int[]){0, 32, 0, 0, 0, 0, 0});
    assert_need("pass@8", &s11, (const int[]){0, 32, 0, 0, 0, 0, 0});
    assert_need("cons@6:native", &s11, (const int[]){0, 11, 11, 11, 11, 11, 11});
    assert_need("cons@6:native", &s6, (const int[]){0, 6, 6, 6, 6, 6, 6});
    assert_need("cons@32", &s11, (const int[]){0, 6, 6, 5, 5, 5, 5});
    assert_need("maj@32", &c11, (const int[]){0, 11, 11, 10, 0, 0, 0});
    assert_need("maj@32", &c6, (const int[]){0, 6, 6, 6, 6, 6, 2});
    assert_need("maj@4", &c6, (const int[]){0, 4, 0, 0, 0, 0, 0});
    assert_need("cons@70", &c11, (const int[]){0, 12, 12, 12, 12, 11, 11});
    assert_need("pass@1:tag3", &s11, (const int[]){0, 0, 0, 11, 0, 0, 0});
    assert_need("avg@16", &s11, (const int[]){0, 16, 0, 0, 0, 0, 0});

    /* The run generates the element-wise maximum of the SSFT trio. */
    static const char *const trio[] = {"pass@1", "cons@6:native", "cons@32"};
    int total[SSF_MAX_TAGS + 1] = {0};
    for (int i = 0; i < 3; i++) {
        ssf_metric m = parse_ok(trio[i], &s11);
        int need[SSF_MAX_TAGS + 1];
        ssf_metric_need(&m, &s11, need);
        for (int t = 0; t <= SSF_MAX_TAGS; t++)
            if (need[t] > total[t]) total[t] = need[t];
    }
    static const int want[] = {0, 32, 11, 11, 11, 11, 11};
    for (int t = 0; t <= SSF_MAX_TAGS; t++)
        assert_int_equal(total[t], want[t]);

    ssf_metric_context n16 = ctx_none(16), n0 = ctx_none(0);
    assert_need("pass@8", &n16, (const int[]){16, 0, 0, 0, 0, 0, 0});
    assert_need("pass@8", &n0, (const int[]){8, 0, 0, 0, 0, 0, 0});
    assert_need("avg@4", &n16, (const int[]){4, 0, 0, 0, 0, 0, 0});
    assert_need("maj@3", &n16, (const int[]){3, 0, 0, 0, 0, 0, 0});
}

static void test_parse_fields(void **state)
{
    (void)state;
    ssf_metric_context s11 = ctx_ssft(11, SSF_COMPAT_NONE), n10 = ctx_none(10);
    ssf_metric m = parse_ok("pass@8", &s11);
    assert_int_equal(m.kind, SSF_METRIC_PASS_AT_K);
    assert_int_equal(m.k, 8);
    assert_int_equal(m.n, 32);
    assert_string_equal(m.name, "pass@8");
    m = parse_ok("pass@4", &n10);
    assert_int_equal(m.n, 10);
    m = parse_ok("maj@16", &n10);
    assert_int_equal(m.kind, SSF_METRIC_CONS_AT_K);
    assert_int_equal(m.k, 16);
    m = parse_ok("avg@32", &n10);
    assert_int_equal(m.kind, SSF_METRIC_AVG_AT_N);
    assert_int_equal(m.n, 32);
    m = parse_ok("cons@6:native", &s11);
    assert_int_equal(m.kind, SSF_METRIC_CONS_NATIVE);
    assert_int_equal(m.k, 6);
    assert_int_equal(m.groups, 11);
    m = parse_ok("pass@1:tag4", &s11);
    assert_int_equal(m.kind, SSF_METRIC_PASS1_TAG);
    assert_int_equal(m.tag, 4);
    assert_int_equal(m.n, 11);
}

/* Without --samples a run's pass@K takes as many samples as its metrics
 * draw a question; --samples or the protocol leave n alone. */
static void test_default_samples(void **state)
{
    (void)state;
    ssf_metric_context none = ctx_none(0), given = ctx_none(4);
    ssf_metric_context ssft = ctx_ssft(6, SSF_COMPAT_NONE);
    const char *const defaults[] = {"pass@1", "cons@6:native", "cons@32"};
    assert_int_equal(ssf_metric_default_samples(defaults, 3, &none), 32);
    const char *const mixed[] = {"avg@8", "pass@2", "maj@4"};
    assert_int_equal(ssf_metric_default_samples(mixed, 3, &none), 8);
    const char *const alone[] = {"pass@4"};
    assert_int_equal(ssf_metric_default_samples(alone, 1, &none), 4);
    const char *const junk[] = {"bogus", NULL};
    assert_int_equal(ssf_metric_default_samples(junk, 2, &none), 0);
    assert_int_equal(ssf_metric_default_samples(defaults, 3, &given), 0);
    assert_int_equal(ssf_metric_default_samples(defaults, 3, &ssft), 0);
    none.samples = ssf_metric_default_samples(defaults, 3, &none);
    ssf_metric m = parse_ok("pass@1", &none);
    assert_int_equal(m.n, 32);
    assert_int_equal(m.k, 1);
}

static void test_parse_errors(void **state)
{
    (void)state;
    ssf_metric_context s11 = ctx_ssft(11, SSF_COMPAT_NONE), n4 = ctx_none(4);
    ssf_metric_context no_s = ctx_ssft(0, SSF_COMPAT_NONE);
    static const struct {
        const char *text;
        int ssft; /* 1: s11, 0: none with --samples 4, 2: SSFT without S */
        const char *says;
    } cases[] = {
        {"cons@x", 1, "expected pass@K, avg@N, cons@K, maj@K, cons@6:native or pass@1:tagK"},
        {"foo", 0, "expected pass@K"},
        {"pass@", 0, "expected pass@K"},
        {"pass@-1", 0, "expected pass@K"},
        {"pass@1 ", 0, "expected pass@K"},
        {"maj@6:native", 1, "expected pass@K"},
        {"pass@0", 0, "at least 1"},
        {"avg@99999999999", 0, "1..100000"},
        {"pass@64", 1, "k = 64 exceeds n = 32"},
        {"pass@8", 0, "k = 8 exceeds n = 4"},
        {"cons@8:native", 1, "must be 6"},
        {"cons@6:native", 0, "SSFT protocol"},
        {"cons@6:native", 2, "group count"},
        {"pass@1:tag7", 1, "1..6"},
        {"pass@1:tag0", 1, "expected pass@K"},
        {"pass@1:tag", 1, "expected pass@K"},
        {"pass@1:tag3x", 1, "expected pass@K"},
        {"pass@1:tag3 ", 1, "expected pass@K"},
        {"pass@1:tag3", 0, "SSFT protocol"},
        {"pass@2:tag1", 1, "only pass@1:tagK"},
        /* a second name for pass@1, which compare --metric pass@1 missed */
        {"pass@01", 0, "write the count 1 without leading zeros"},
        {"cons@032", 1, "write the count 32 without leading zeros"},
        {"pass@1:tag01", 1, "write the tag 1 without leading zeros"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ssf_metric_context *ctx = cases[i].ssft == 1 ? &s11 : cases[i].ssft ? &no_s : &n4;
        ssf_metric m;
        ssf_error err = {0};
        if (ssf_metric_parse(cases[i].text, ctx, &m, &err) != -1)
            fail_msg("'%s' parsed", cases[i].text);
        char quoted[80];
        snprintf(quoted, sizeof quoted, "'%s'", cases[i].text);
        if (!strstr(err.msg, quoted) || !strstr(err.msg, cases[i].says))
            fail_msg("'%s': message \"%s\" lacks \"%s\"", cases[i].text, err.msg, cases[i].says);
        assert_null(strchr(err.msg, '\n'));
    }
    ssf_error err = {0};
    ssf_metric m;
    char longname[100];
    memset(longname, '9', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(ssf_metric_parse(longname, &s11, &m, &err), -1);
    assert_non_null(strstr(err.msg, "too long"));
    /* Compat block order needs S as well. */
    ssf_metric_context c0 = ctx_ssft(0, SSF_COMPAT_SSFT_LIGHTEVAL);
    assert_int_equal(ssf_metric_parse("maj@32", &c0, &m, &err), -1);
}

/* ---- 5. aggregation ------------------------------------------------------ */

static void test_aggregate_known(void **state)
{
    (void)state;
    ssf_aggregate agg;
    const double v[] = {1, 0, 1, 1};
    ssf_aggregate_values(v, 4, 1000, 42, &agg);
    assert_near(agg.value, 0.75, EPS);
    assert_near(agg.stderr_, 0.5 / 2, EPS); /* sd = 0.5 */
    assert_int_equal(agg.n_questions, 4);
    assert_int_equal(agg.n_excluded, 0);
    assert_true(agg.ci_lo <= agg.value && agg.value <= agg.ci_hi);
    assert_true(agg.ci_lo >= 0 && agg.ci_hi <= 1 && agg.ci_lo < agg.ci_hi);

    /* Excluded values (negative, NaN) change nothing but the counts. */
    ssf_aggregate ex;
    const double w[] = {1, -1, 0, NAN, 1, 1};
    ssf_aggregate_values(w, 6, 1000, 42, &ex);
    assert_near(ex.value, 0.75, EPS);
    assert_near(ex.stderr_, 0.25, EPS);
    assert_int_equal(ex.n_questions, 4);
    assert_int_equal(ex.n_excluded, 2);
    assert_near(ex.ci_lo, agg.ci_lo, 0);
    assert_near(ex.ci_hi, agg.ci_hi, 0);
}

static void test_aggregate_edges(void **state)
{
    (void)state;
    ssf_aggregate agg;
    const double none[] = {-1, -1};
    ssf_aggregate_values(none, 2, 100, 1, &agg);
    assert_true(isnan(agg.value) && isnan(agg.stderr_));
    assert_int_equal(agg.n_questions, 0);
    assert_int_equal(agg.n_excluded, 2);
    ssf_aggregate_values(NULL, 0, 100, 1, &agg);
    assert_true(isnan(agg.value));

    const double one[] = {0.25};
    ssf_aggregate_values(one, 1, 100, 1, &agg);
    assert_near(agg.value, 0.25, 0);
    assert_true(isnan(agg.stderr_)); /* as LightEval's sample SD: unknown */
    assert_near(agg.ci_lo, 0.25, 0);
    assert_near(agg.ci_hi, 0.25, 0);

    const double two[] = {1, 0}; /* no resamples: a value, no interval */
    ssf_aggregate_values(two, 2, 0, 1, &agg);
    assert_near(agg.value, 0.5, 0);
    assert_near(agg.stderr_, 0.5, 1e-15);
    assert_true(isnan(agg.ci_lo) && isnan(agg.ci_hi));
}

/* Reproducible with a seed, and about mean +- 1.96 SE on a larger set. */
static void test_aggregate_bootstrap(void **state)
{
    (void)state;
    double v[60];
    for (int i = 0; i < 60; i++)
        v[i] = (i % 5) / 4.0;
    ssf_aggregate a, b, c;
    ssf_aggregate_values(v, 60, 20000, 1234, &a);
    ssf_aggregate_values(v, 60, 20000, 1234, &b);
    ssf_aggregate_values(v, 60, 20000, 99, &c);
    assert_near(a.ci_lo, b.ci_lo, 0);
    assert_near(a.ci_hi, b.ci_hi, 0);
    assert_true(a.ci_lo < a.value && a.value < a.ci_hi);
    assert_true(c.ci_lo < c.value && c.value < c.ci_hi);
    double width = a.ci_hi - a.ci_lo, normal = 2 * 1.96 * a.stderr_;
    /* A 90% interval would be 16% narrower. */
    if (fabs(width / normal - 1) > 0.06) fail_msg("bootstrap width %g vs normal %g", width, normal);
}

/* The reference's maj@k scores the voted answer by equality with the
 * extracted gold, not by equivalence: "0.5" voted against gold "\\frac{1}{2}"
 * is right for ssfteval and wrong in compat mode. */
static void test_compat_maj_scores_by_gold_text(void **state)
{
    (void)state;
    fixture f = {.n = 3};
    for (int i = 0; i < 3; i++)
        f.o[i] = (ssf_outcome){.present = 1,
                               .verdict = 1,
                               .key = "q:1/2",
                               .extracted = "0.50",
                               .gold_extracted = "\\frac{1}{2}",
                               .raw_text = "so 0.50"};
    ssf_metric_context ctx = ctx_none(0);
    ssf_metric m;
    ssf_error err;
    assert_int_equal(ssf_metric_parse("maj@3", &ctx, &m, &err), 0);
    assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 1.0, 1e-12);
    ctx.compat = SSF_COMPAT_SSFT_LIGHTEVAL; /* Float(0.50) == Rational(1, 2) is false */
    assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 0.0, 1e-12);
    f.o[1].gold_extracted = f.o[0].gold_extracted = f.o[2].gold_extracted = "0.50";
    assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 1.0, 1e-12);
    /* but "0.5" itself was \frac{1}{2} (LightEval's nits), and \dfrac{2}{4},
     * 2/4 and \frac{1}{2} all parsed to Rational(1, 2) */
    static const char *const halves[] = {"0.5", "\\dfrac{2}{4}", "2/4", "\\frac12"};
    for (size_t k = 0; k < sizeof halves / sizeof halves[0]; k++) {
        for (int i = 0; i < 3; i++) {
            f.o[i].extracted = halves[(k + (size_t)i) % 4];
            f.o[i].gold_extracted = "\\frac{1}{2}";
        }
        assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 1.0, 1e-12);
    }
    /* "final answer is: $\\boxed{5}$" extracts as \\boxed{5}, which the
     * reference parsed to the 5 of the gold: its wrappers do not count, in
     * the score or in the vote */
    const char *forms[3] = {"\\boxed{5}", "5", " $\\boxed{ 5 }$ "};
    for (int i = 0; i < 3; i++)
        f.o[i] = (ssf_outcome){.present = 1,
                               .verdict = 1,
                               .key = "q:5",
                               .extracted = forms[i],
                               .gold_extracted = "5",
                               .raw_text = forms[i]};
    assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 1.0, 1e-12);
    f.o[1].extracted = f.o[2].extracted = "\\boxed{7}";
    f.o[1].verdict = f.o[2].verdict = 0;
    assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 0.0, 1e-12);
    f.o[1].extracted = "7";
    f.o[0].extracted = "\\boxed{5}}"; /* not one box around the whole */
    assert_near(ssf_metric_question(&m, &ctx, 0, get_fixture, &f), 0.0, 1e-12);
}

/* The compat votes' classes (vote_form.h): a rational number written
 * without a decimal point by its reduced value, however spelled; a decimal
 * (a Float) and everything else by its normalized text. */
static void test_vote_forms(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"25", "q:25"},
        {"025", "q:25"},
        {"-25", "q:-25"},
        {"\\frac{14}{3}", "q:14/3"},
        {"\\dfrac{14}{3}", "q:14/3"},
        {"\\tfrac {14}{ 3}", "q:14/3"},
        {"14/3", "q:14/3"},
        {"4\\frac{2}{3}", "q:14/3"},
        {"-4\\frac{2}{3}", "q:-14/3"},
        {"\\frac{28}{6}", "q:14/3"},
        {"\\frac12", "q:1/2"},
        {"0.5", "q:1/2"},
        {".5", "q:1/2"},
        {"0.50", "0.50"},
        {"-0.5", "-0.5"},
        {"\\frac{1}{0}", "\\frac{1}{0}"},
        {"50\\%", "50\\%"},
        {"x + 1", "x+1"},
        {"\\left( 1, 2 \\right)", "(1,2)"},
        {"\\leftarrow", "\\leftarrow"},
        {"3 \\cdot x", "3\\cdot x"},
        {"\\sqrt{2}\\,\\text{cm}", "\\sqrt{2}\\text{cm}"},
        {"1234567890123456789", "1234567890123456789"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *form = ssf_vote_form(cases[i][0], strlen(cases[i][0]));
        if (strcmp(form, cases[i][1]) != 0)
            fail_msg("'%s': form '%s', want '%s'", cases[i][0], form, cases[i][1]);
        free(form);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compat_maj_scores_by_gold_text),
        cmocka_unit_test(test_vote_forms),
        cmocka_unit_test(test_pass_at_k_product),
        cmocka_unit_test(test_pass_at_k_exact),
        cmocka_unit_test(test_pass_at_k_invalid),
        cmocka_unit_test(test_lighteval_fixtures),
        cmocka_unit_test(test_ssft_set),
        cmocka_unit_test(test_groups_override),
        cmocka_unit_test(test_failed_and_missing),
        cmocka_unit_test(test_vote_rules),
        cmocka_unit_test(test_ungradable_not_correct),
        cmocka_unit_test(test_compat_letters),
        cmocka_unit_test(test_need),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_default_samples),
        cmocka_unit_test(test_aggregate_known),
        cmocka_unit_test(test_aggregate_edges),
        cmocka_unit_test(test_aggregate_bootstrap),
    };
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
