/*
 * grade.c - profiles, gold handling and verdicts (see grade.h).
 */
#include "grade.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Target combinations an extractor is built for: every non-empty subset of
 * latex|expr|letters, so grading compiles no patterns on the hot path (but
 * once for each letter count past ten a run meets). */
#define N_COMBOS 8
#define MAX_LETTER_SETS 26
/* Letter extractors depend on the choice count: those for 1..10 choices
 * are built with the grader, the rare larger counts (to 26) on first use. */
#define EAGER_LETTER_SETS 10

/* [targets][n_letters-1]; a pointer in the grader, so that a const grader
 * can still fill its late slots (under the lock). */
typedef struct extractor_table {
    pthread_mutex_t lock;
    ssf_extractor *x[N_COMBOS][MAX_LETTER_SETS];
} extractor_table;

struct ssf_grader {
    ssf_profile profile;
    extractor_table *ex;
    ssf_parse_options parse;
    ssf_equiv_options equiv;
};

static const char *const profile_names[SSF_N_PROFILES] = {"default", "lighteval", "ssft-lighteval"};

int ssf_profile_from_name(const char *name)
{
    for (int i = 0; i < SSF_N_PROFILES; i++)
        if (strcmp(name, profile_names[i]) == 0) return i;
    return -1;
}

const char *ssf_profile_name(ssf_profile p)
{
    return profile_names[p];
}

/* How a profile parses answers, for its extractors and its bare golds alike:
 * LightEval's `equations` cut and `nits`, and latex2sympy's lower-case
 * symbols and n!!. */
static void profile_parse_options(ssf_profile p, ssf_parse_options *o)
{
    ssf_parse_options_default(o);
    if (p != SSF_PROFILE_DEFAULT) o->equations = o->fold_case = o->nested_factorials = o->nits = 1;
}

static void profile_config(ssf_profile p, int targets, int n_letters, ssf_extract_config *c)
{
    memset(c, 0, sizeof *c);
    profile_parse_options(p, &c->parse);
    c->targets = targets;
    c->n_letters = n_letters;
    if (p != SSF_PROFILE_DEFAULT) {
        c->boxed_priority = 55;
        c->lighteval_numbers = 1;
        c->bare_letters = 1;
    } else {
        c->boxed_priority = 50;
        c->boxed_letters = 1;
        c->box_is_final = 1;
        c->plain_text = 1;
    }
}

static ssf_extractor *build_extractor(const ssf_grader *g, int targets, int n_letters,
                                      ssf_error *err)
{
    ssf_extract_config c;
    profile_config(g->profile, targets, n_letters, &c);
    return ssf_extractor_new(&c, err);
}

static int build_extractors(ssf_grader *g, ssf_error *err)
{
    for (int t = 1; t < N_COMBOS; t++) {
        int lo = t & SSF_TARGET_LETTERS ? 1 : 4;
        int hi = t & SSF_TARGET_LETTERS ? EAGER_LETTER_SETS : 4;
        for (int n = lo; n <= hi; n++)
            if (!(g->ex->x[t][n - 1] = build_extractor(g, t, n, err))) return -1;
    }
    return 0;
}

ssf_grader *ssf_grader_new(ssf_profile profile, ssf_error *err)
{
    ssf_grader *g = ssf_xcalloc(1, sizeof *g);
    g->profile = profile;
    g->ex = ssf_xcalloc(1, sizeof *g->ex);
    pthread_mutex_init(&g->ex->lock, NULL);
    profile_parse_options(profile, &g->parse);
    ssf_equiv_options_default(&g->equiv);
    g->equiv.vectors_as_tuples = profile == SSF_PROFILE_DEFAULT;
    if (profile == SSF_PROFILE_SSFT_LIGHTEVAL) g->equiv.decimals_fail = 1;
    if (build_extractors(g, err)) {
        ssf_grader_free(g);
        return NULL;
    }
    return g;
}

void ssf_grader_free(ssf_grader *g)
{
    if (!g) return;
    for (int t = 0; t < N_COMBOS; t++)
        for (int n = 0; n < MAX_LETTER_SETS; n++)
            ssf_extractor_free(g->ex->x[t][n]);
    pthread_mutex_destroy(&g->ex->lock);
    free(g->ex);
    free(g);
}

static int tag_at(const char *p, size_t left, const char *tag, size_t n)
{
    return left >= n && memcmp(p, tag, n) == 0;
}

/* ssf_answer_part over text[0..n) in one pass: every tag starts with '<'.
 * *unclosed tells that a "<think>" never closed (so there is no answer
 * part yet), as against one that closed before an empty answer. */
static const char *answer_part(const char *text, size_t n, size_t *len, int *unclosed)
{
    const char *answer = NULL, *closed = NULL, *end = text + n;
    int opened = 0;
    for (const char *p = memchr(text, '<', n); p; p = memchr(p + 1, '<', (size_t)(end - p - 1))) {
        size_t left = (size_t)(end - p);
        if (tag_at(p, left, "<|im_start|>answer", 18))
            answer = p + 18;
        else if (tag_at(p, left, "</think>", 8))
            closed = p + 8;
        else if (tag_at(p, left, "<think>", 7))
            opened = 1;
    }
    *unclosed = opened && !answer && !closed;
    const char *at = answer ? answer : closed ? closed : *unclosed ? end : text;
    *len = (size_t)(end - at);
    return at;
}

const char *ssf_answer_part(const char *text, size_t *len)
{
    int unclosed;
    return answer_part(text, strlen(text), len, &unclosed);
}

/* ---- one side --------------------------------------------------------- */

typedef struct side {
    ssf_node *value;
    char *text; /* what parsed, or the raw fallback */
    int raw;    /* text is a raw string, value NULL */
    int over_budget;
    int unclosed; /* the reasoning never closed, so there is no answer part */
} side;

static void side_from_extraction(side *s, ssf_extraction *e, int keep_fallback)
{
    s->over_budget = e->over_budget;
    if (e->value) {
        s->value = e->value;
        s->text = e->answer;
        e->answer = NULL;
    } else if (keep_fallback && e->fallback) {
        s->text = e->fallback;
        e->fallback = NULL;
        s->raw = 1;
    }
    ssf_extraction_clear(e);
}

/* The extractor for more choices than are built eagerly, compiled once.
 * Its patterns are the eager ones' with a longer letter class, so a
 * failure is no input's fault: only memory running out, which aborts as
 * ssf_xmalloc does. */
static const ssf_extractor *late_extractor(const ssf_grader *g, int targets, int n_letters)
{
    extractor_table *ex = g->ex;
    pthread_mutex_lock(&ex->lock);
    ssf_extractor **slot = &ex->x[targets][n_letters - 1];
    if (!*slot) {
        ssf_error err = {0};
        *slot = build_extractor(g, targets, n_letters, &err);
        if (!*slot) {
            fprintf(stderr, "ssfteval: cannot build the extractor for %d choices: %s\n", n_letters,
                    err.msg);
            abort();
        }
    }
    const ssf_extractor *x = *slot;
    pthread_mutex_unlock(&ex->lock);
    return x;
}

static const ssf_extractor *extractor_for(const ssf_grader *g, const ssf_grade_request *r)
{
    int t = r->targets ? r->targets & 7 : SSF_TARGET_LATEX | SSF_TARGET_EXPR;
    if (!t) t = SSF_TARGET_LATEX | SSF_TARGET_EXPR;
    if (!(t & SSF_TARGET_LETTERS)) return g->ex->x[t][3];
    int n = r->n_letters >= 1 && r->n_letters <= MAX_LETTER_SETS ? r->n_letters : 4;
    return n <= EAGER_LETTER_SETS ? g->ex->x[t][n - 1] : late_extractor(g, t, n);
}

static int only_letters(const ssf_grade_request *r)
{
    return r->targets == SSF_TARGET_LETTERS;
}

/* A bare answer: the default profile first reads it whole (golds are
 * usually bare, and "\frac{\pi}{2}" has no $ for the cascade to find), then
 * through the cascade; LightEval runs only the cascade.  When nothing parses
 * the raw string is kept, as LightEval does for golds. */
static void read_answer(const ssf_grader *g, const ssf_grade_request *r, const char *text,
                        ssf_arena *a, side *s)
{
    size_t len = strlen(text);
    if (g->profile == SSF_PROFILE_DEFAULT && !only_letters(r)) {
        s->value = ssf_parse_answer(a, text, len, &g->parse, NULL); /* why is not reported */
        if (s->value) {
            s->text = ssf_xstrndup(text, len);
            return;
        }
    }
    ssf_extraction e;
    ssf_extract(extractor_for(g, r), text, len, a, &e);
    side_from_extraction(s, &e, 0);
    if (!s->value && !s->text && *text) {
        s->text = ssf_xstrndup(text, len);
        s->raw = 1;
    }
}

static void read_gold(const ssf_grader *g, const ssf_grade_request *r, ssf_arena *a, side *s)
{
    const char *gold = r->gold ? r->gold : "";
    if (!r->gold_is_answer || g->profile == SSF_PROFILE_DEFAULT || only_letters(r) || !*gold) {
        read_answer(g, r, gold, a, s);
        return;
    }
    ssf_buf boxed = {0};
    ssf_buf_printf(&boxed, "\\boxed{%s}", gold);
    read_answer(g, r, boxed.data, a, s);
    if (s->raw) { /* unreadable: LightEval kept the raw gold */
        free(s->text);
        s->text = ssf_xstrdup(gold);
    }
    ssf_buf_free(&boxed);
}

static void read_pred(const ssf_grader *g, const ssf_grade_request *r, ssf_arena *a, side *s)
{
    const char *pred = r->pred ? r->pred : "";
    if (r->pred_is_answer) {
        read_answer(g, r, pred, a, s);
        return;
    }
    size_t len = strlen(pred);
    if (g->profile == SSF_PROFILE_DEFAULT) {
        pred = answer_part(pred, len, &len, &s->unclosed);
    }
    ssf_extraction e;
    ssf_extract(extractor_for(g, r), pred, len, a, &e);
    int unclosed = s->unclosed;
    /* LightEval compares the first raw match too; the default profile grades
     * only what parsed. */
    side_from_extraction(s, &e, g->profile != SSF_PROFILE_DEFAULT);
    s->unclosed = unclosed;
}

static int same_trimmed(const char *x, const char *y)
{
    while (*x == ' ')
        x++;
    while (*y == ' ')
        y++;
    size_t nx = strlen(x), ny = strlen(y);
    while (nx && x[nx - 1] == ' ')
        nx--;
    while (ny && y[ny - 1] == ' ')
        ny--;
    return nx > 0 && nx == ny && memcmp(x, y, nx) == 0;
}

/* ---- verdicts --------------------------------------------------------- */

/* snprintf(r, sizeof reason, "%.*s", max, s) without the formatting. */
static void set_reason(ssf_grade_result *out, const char *s, size_t max)
{
    if (max > sizeof out->reason - 1) max = sizeof out->reason - 1;
    size_t n = strnlen(s, max);
    memcpy(out->reason, s, n);
    out->reason[n] = '\0';
}

static int is_container(const ssf_node *n)
{
    return n->kind == SSF_N_SET || n->kind == SSF_N_INTERVAL || n->kind == SSF_N_UNION ||
           n->kind == SSF_N_TUPLE;
}

/* What an answer asserts: "\frac{\sqrt3}{3} \approx 0.577" states the exact
 * value (the approximation is commentary), and "x \in [-2,7]" states the
 * set.  Comparing those forms as relations would judge the commentary. */
static const ssf_node *answer_core(const ssf_node *n)
{
    if (n->kind == SSF_N_REL && n->op.rel == SSF_REL_APPROX) return answer_core(n->kids[0]);
    if (n->kind == SSF_N_REL && n->op.rel == SSF_REL_EQ && n->kids[0]->kind == SSF_N_SYMBOL &&
        is_container(n->kids[1]))
        return n->kids[1];
    return n;
}

static void compare(const ssf_grader *g, const ssf_grade_request *r, const side *gold,
                    const side *pred, ssf_grade_result *out)
{
    if (gold->value && pred->value) {
        ssf_equiv_options o = g->equiv;
        if (r->precision >= 0) o.float_rounding = r->precision;
        ssf_error why; /* ssf_equiv always writes it */
        const ssf_node *gv = answer_core(gold->value), *pv = answer_core(pred->value);
        /* The reference called compare_gold_target(pred, gold): the roles swap. */
        ssf_verdict v = g->profile == SSF_PROFILE_SSFT_LIGHTEVAL ? ssf_equiv(pv, gv, &o, &why)
                                                                 : ssf_equiv(gv, pv, &o, &why);
        out->verdict = v == SSF_EQUAL       ? SSF_GRADE_RIGHT
                       : v == SSF_DIFFERENT ? SSF_GRADE_WRONG
                                            : SSF_GRADE_UNGRADABLE;
        set_reason(out, why.msg, 500);
        return;
    }
    int same =
        gold->text && pred->text && gold->raw && pred->raw && same_trimmed(gold->text, pred->text);
    out->verdict = same ? SSF_GRADE_RIGHT : SSF_GRADE_WRONG;
    set_reason(out,
               same                        ? "identical raw strings"
               : !gold->value && gold->raw ? "gold did not parse: compared as a raw string"
                                           : "prediction did not parse",
               sizeof out->reason);
}

static void no_answer(const ssf_grade_request *r, const side *pred, ssf_grade_result *out)
{
    out->no_answer = 1;
    out->verdict = pred->over_budget ? SSF_GRADE_UNGRADABLE : SSF_GRADE_WRONG;
    set_reason(out,
               pred->over_budget
                   ? "over budget: the prediction's candidates exceeded the parse budget"
               : r->cut_by_length ? "no answer: cut off by the length limit"
               : pred->unclosed   ? "no answer: the reasoning (<think>) never closed"
                                  : "no answer extracted",
               sizeof out->reason);
}

/* An empty result, field by field: a memset of the whole reason buffer
 * costs more than grading a short answer's tail does. */
static void result_reset(ssf_grade_result *r)
{
    r->verdict = SSF_GRADE_WRONG;
    r->no_answer = 0;
    r->gold_extracted = r->pred_extracted = r->pred_key = NULL;
    r->reason[0] = '\0';
}

void ssf_grade(const ssf_grader *g, const ssf_grade_request *r, ssf_grade_result *out)
{
    result_reset(out);
    ssf_arena *a = ssf_arena_new(200000);
    side gold = {0}, pred = {0};
    read_gold(g, r, a, &gold);
    read_pred(g, r, a, &pred);
    if (!pred.value && !pred.text)
        no_answer(r, &pred, out);
    else if (!gold.value && !gold.text) {
        out->verdict = SSF_GRADE_UNGRADABLE;
        set_reason(out, "the gold answer is empty", sizeof out->reason);
    } else
        compare(g, r, &gold, &pred, out);
    out->gold_extracted = gold.text;
    out->pred_extracted = pred.text;
    out->pred_key = pred.value  ? ssf_canonical_key(pred.value, &g->equiv)
                    : pred.text ? ssf_xstrdup(pred.text)
                                : ssf_xstrdup("none");
    ssf_arena_free(a);
}

void ssf_grade_result_clear(ssf_grade_result *r)
{
    free(r->gold_extracted);
    free(r->pred_extracted);
    free(r->pred_key);
    result_reset(r);
}
