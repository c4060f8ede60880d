/*
 * test_extract.c - the answer-extraction cascade: priorities, rightmost-first
 * order, numbers, letters, plain-text answers, the boxed-content rules, the
 * Math-Verify extraction cases of ../shared/cases and hostile inputs.
 *
 * Expected values are trees in ssf_node_sexpr form ("7425000",
 * "100099/100@2", "(set 2 3 5)") or, for letters, the extracted text.
 * Assertions marked "Regression" pin bugs found and fixed in extract.c.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "extract.h"
#include "ssfteval/records.h"
#include "test-support.h"

#define ARENA_NODES 200000
/* extract.c parses at most this many candidates per extraction. */
#define MAX_CANDIDATES 256

/* ---- helpers ---------------------------------------------------------- */

/* The default profile's configuration (grade.c): Math-Verify boxed priority
 * 50, boxed letters, plain-text answers. */
static ssf_extract_config default_config(int targets)
{
    ssf_extract_config c;
    memset(&c, 0, sizeof c);
    ssf_parse_options_default(&c.parse);
    c.targets = targets;
    c.n_letters = 4;
    c.boxed_priority = 50;
    c.boxed_letters = 1;
    c.plain_text = 1;
    c.box_is_final = 1;
    return c;
}

/* The lighteval profile's configuration: boxed 55, LightEval numbers and the
 * equations normalization. */
static ssf_extract_config lighteval_config(int targets)
{
    ssf_extract_config c;
    memset(&c, 0, sizeof c);
    ssf_parse_options_default(&c.parse);
    c.targets = targets;
    c.n_letters = 4;
    c.boxed_priority = 55;
    c.lighteval_numbers = 1;
    c.parse.equations = 1;
    return c;
}

/* A bare configuration: no boxed letters, no plain text, Math-Verify numbers. */
static ssf_extract_config bare_config(int targets, int boxed_priority)
{
    ssf_extract_config c;
    memset(&c, 0, sizeof c);
    ssf_parse_options_default(&c.parse);
    c.targets = targets;
    c.n_letters = 4;
    c.boxed_priority = boxed_priority;
    return c;
}

/* One extraction, with its results copied out of the arena. */
typedef struct got {
    char *sexpr;    /* the value as sexpr, NULL if nothing parsed */
    char *answer;   /* the text that parsed */
    char *fallback; /* the raw text of the first match tried */
    int priority;
    const char *kind;
    int over_budget;
    double seconds;
} got;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void extract_with(const ssf_extractor *x, const char *text, size_t len, got *g)
{
    ssf_arena *a = ssf_arena_new(ARENA_NODES);
    assert_non_null(a);
    ssf_extraction e;
    double t0 = ssf_monotonic_seconds();
    ssf_extract(x, text, len, a, &e);
    g->seconds = ssf_monotonic_seconds() - t0;
    g->sexpr = e.value ? ssf_node_sexpr(e.value) : NULL;
    g->answer = dup_or_null(e.answer);
    g->fallback = dup_or_null(e.fallback);
    g->priority = e.priority;
    g->kind = e.kind;
    g->over_budget = e.over_budget;
    /* value, answer and priority agree on whether something was found */
    assert_true((e.value != NULL) == (e.answer != NULL));
    assert_true((e.value != NULL) == (e.priority >= 0));
    ssf_extraction_clear(&e);
    assert_null(e.answer);
    assert_null(e.fallback);
    assert_int_equal(e.priority, -1);
    ssf_arena_free(a);
}

static ssf_extractor *new_extractor(const ssf_extract_config *c)
{
    ssf_error err;
    ssf_extractor *x = ssf_extractor_new(c, &err);
    if (!x) fail_msg("ssf_extractor_new: %s", err.msg);
    return x;
}

static void extract(const ssf_extract_config *c, const char *text, got *g)
{
    ssf_extractor *x = new_extractor(c);
    extract_with(x, text, strlen(text), g);
    ssf_extractor_free(x);
}

static void got_free(got *g)
{
    free(g->sexpr);
    free(g->answer);
    free(g->fallback);
    memset(g, 0, sizeof *g);
}

#define ANY_PRIORITY (-2)

/* text under c must give the tree want (NULL: nothing parsed) from the
 * priority group want_priority (ANY_PRIORITY: any). */
static void expect(const ssf_extract_config *c, const char *text, const char *want,
                   int want_priority)
{
    got g;
    extract(c, text, &g);
    int ok = want ? g.sexpr && strcmp(g.sexpr, want) == 0 : g.sexpr == NULL;
    if (ok && want && want_priority != ANY_PRIORITY) ok = g.priority == want_priority;
    if (!ok) {
        fprintf(stderr, "text '%s'\n  want %s (priority %d)\n  got  %s (priority %d, %s)\n", text,
                want ? want : "nothing", want_priority, g.sexpr ? g.sexpr : "nothing", g.priority,
                g.kind ? g.kind : "-");
        got_free(&g);
        fail_msg("extraction mismatch for '%s'", text);
    }
    got_free(&g);
}

/* Letters: the extracted letter (NULL: nothing). */
static void expect_letter(const ssf_extract_config *c, const char *text, const char *want)
{
    got g;
    extract(c, text, &g);
    int ok = want ? g.answer && strcmp(g.answer, want) == 0 && strcmp(g.kind, "letters") == 0
                  : g.answer == NULL;
    if (!ok) {
        fprintf(stderr, "text '%s'\n  want %s\n  got  %s (priority %d, %s)\n", text,
                want ? want : "nothing", g.answer ? g.answer : "nothing", g.priority,
                g.kind ? g.kind : "-");
        got_free(&g);
        fail_msg("letter mismatch for '%s'", text);
    }
    got_free(&g);
}

static void expect_boxed(const char *text, const char *want)
{
    char *s = ssf_boxed_content(text, strlen(text));
    int ok = want ? s && strcmp(s, want) == 0 : s == NULL;
    if (!ok)
        fprintf(stderr, "boxed '%s'\n  want %s\n  got  %s\n", text, want ? want : "NULL",
                s ? s : "NULL");
    free(s);
    if (!ok) fail_msg("boxed content mismatch for '%s'", text);
}

/* ---- 1. priorities ----------------------------------------------------- */

static void test_priority_order(void **state)
{
    (void)state;
    const char *anchored = "final answer is $9999$ ... \\boxed{1}";
    ssf_extract_config c = bare_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR, 100);

    /* boxed at 100: "final answer ... is" (50) wins */
    expect(&c, anchored, "9999", 50);
    got g;
    extract(&c, anchored, &g);
    assert_string_equal(g.kind, "latex");
    assert_string_equal(g.answer, "9999");
    got_free(&g);

    /* boxed at 55 (LightEval): still after the anchor at 50 */
    ssf_extract_config le = lighteval_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    expect(&le, anchored, "9999", 50);

    /* boxed at 50 (Math-Verify default) shares group 50 with the anchor, and
     * inside a group the rightmost match is tried first: the box, as in
     * Math-Verify (same priority, end position descending). */
    ssf_extract_config d = default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    expect(&d, anchored, "1", 50);
    extract(&d, anchored, &g);
    assert_string_equal(g.kind, "boxed");
    got_free(&g);

    /* "final answer is ... I hope" is priority 0 and beats boxed at 50 */
    const char *hope = "The final answer is $9999$. I hope it is correct. \\boxed{1}";
    expect(&d, hope, "9999", 0);
    /* without "I hope" it is the priority-50 anchor */
    expect(&c, "The final answer is $9999$. \\boxed{1}", "9999", 50);
    /* boxed at 0 joins group 0 and, being rightmost, wins */
    c.boxed_priority = 0;
    expect(&c, hope, "1", 0);
    expect(&c, anchored, "1", 0);

    /* boxed at 50 beats "Answer:" (100) even when the anchor comes later */
    expect(&d, "\\boxed{7} so the Answer: 5", "7", 50);
    c.boxed_priority = 150;
    expect(&c, "\\boxed{7} so the Answer: 5", "5", 100);

    /* boxed_priority -1: no boxed patterns at all */
    c.boxed_priority = -1;
    expect(&c, "\\boxed{1}", NULL, 0);
    extract(&c, "\\boxed{1}", &g);
    assert_null(g.fallback); /* no pattern matched anything */
    got_free(&g);
    expect(&c, "\\boxed{1} and $2$", "2", 300);
    ssf_extract_config lx = bare_config(SSF_TARGET_LATEX, -1);
    expect(&lx, "\\boxed{1}", NULL, 0);
    lx.boxed_priority = 50;
    expect(&lx, "\\boxed{1}", "1", 50);
    expect(&d, "\\boxed{1} and $2$", "1", 50);
}

/* ---- 2. rightmost first, several boxes -------------------------------- */

static void test_rightmost_first(void **state)
{
    (void)state;
    ssf_extract_config d = default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    expect(&d, "$1$ then $2$", "2", 300);
    expect(&d, "Answer: $3$ and answer: $4$", "4", 100);

    /* the first candidate that parses wins; the fallback is the first tried */
    got g;
    extract(&d, "$1$ then $\\frac{$", &g);
    assert_non_null(g.sexpr);
    assert_string_equal(g.sexpr, "1");
    assert_string_equal(g.answer, "1");
    assert_string_equal(g.fallback, "\\frac{");
    got_free(&g);

    /* several boxes */
    expect(&d, "\\boxed{840} and \\boxed{840}", "840", 50);
    extract(&d, "\\boxed{840} and \\boxed{840}", &g);
    assert_string_equal(g.answer, "840"); /* deduplicated, not 840840 */
    got_free(&g);
    expect(&d, "\\boxed{1} no no no \\boxed{2}", "2", 50);
    expect(&d, "\\boxed{2}, \\boxed{3}, \\boxed{5}", "(set 2 3 5)", 50);
    expect(&d, "\\boxed2, \\boxed3", "(set 2 3)", 50);
    expect(&d, "\\boxed{12", "12", 50);
    expect(&d, "\\fbox{7}", "7", 50);
    expect(&d, "We get \\fbox{7}.", "7", 50);

    /* a long completion with more boxes than ssf_boxed_content's table */
    ssf_buf b = {0};
    for (int i = 1; i <= 70; i++)
        ssf_buf_printf(&b, "%sstep \\boxed{%d}", i > 1 ? " Next. " : "", i);
    extract(&d, b.data, &g);
    assert_non_null(g.sexpr);
    /* Regression: only the last 64 boxes are kept, so the last box of 70 is read. */
    assert_string_equal(g.sexpr, "70");
    got_free(&g);
    ssf_buf_free(&b);
}

/* ---- 3. numbers -------------------------------------------------------- */

static void test_numbers(void **state)
{
    (void)state;
    ssf_extract_config d = default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    ssf_extract_config le = lighteval_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    ssf_extract_config *both[2] = {&d, &le};
    for (int k = 0; k < 2; k++) {
        ssf_extract_config *c = both[k];
        expect(c, "The answer is 7,425,000.", "7425000", 200);
        expect(c, "$1,000.99", "100099/100@2", 300); /* currency, no closing $ */
        expect(c, "It costs $1,000.99 in total", "100099/100@2", 300);
        expect(c, "answer: 004", "4", 100);
        expect(c, "50%", "(percent 50)", 300);
        expect(c, "The rate is 12 percent", "(percent 12)", 300);
        expect(c, "The growth was 1,250%.", "(percent 1250)", 300);
        expect(c, "The rate is $12$\\%.", "(percent 12)", ANY_PRIORITY);
        expect(c, "The rate is $12$ percent.", "(percent 12)", ANY_PRIORITY);
        /* no anchor: the rightmost match, and of two ending there the longer */
        expect(c, "So we compute 2 + 3", "(add 2 3)", 300);
        expect(c,
               "The total cost is \xe2\x82\xac"
               "12.",
               "12", 300);
        expect(c,
               "The total cost is \xc2\xa3"
               "12.",
               "12", 300);
        expect(c,
               "The total cost is \xe2\x82\xb9"
               "12.",
               "12", 300);
        expect(c, "The answer is -\\frac{1}{2}.", "(neg (mul 1 (pow 2 -1)))", ANY_PRIORITY);
        expect(c, "100m²", "100", 300);
        /* a last box that does not parse: the default answers nothing, LightEval
         * takes the number 2 from its inside */
        expect(c, "$\\boxed{1 2}$", k == 0 ? NULL : "2", ANY_PRIORITY);
        expect(c, "The ratio is $\\boxed{5 \\over 3 \\over 2}$.", k == 0 ? NULL : "2",
               ANY_PRIORITY);
        /* TeX's infix fraction parses */
        expect(c, "The ratio is $\\boxed{5 \\over 2}$.", "(mul 5 (pow 2 -1))", 50 + 5 * k);
        /* bold: the expression "73**" does not parse, the number then does */
        expect(c, "So we get **73**.", "73", 300);
        expect(c, "**73**", "73", 300);
        expect(c, "XDY2K", NULL, 0);
        expect(c, "answer: 2,500", "2500", 100);
        expect(c, "-1,234", "-1234", 300);
        expect(c, "1 000 000", "1000000", 300);
        expect(c, "3,14", "157/50@2", 300); /* a decimal comma */
        expect(c, "1,5", "3/2@1", 300);
        /* "1000,99" is no thousands group in either number regex (a first
         * group has at most three digits): a decimal comma in both */
        expect(c, "1000,99", "100099/100@2", 300);
        expect(c, "Answer: 3 apples and 2 pears", "3", 100);
        expect(c, "The answer is 2 + 3 * 4.", "(add 2 (mul 3 4))", 200);
        expect(c, "The answer is 6 × 7 + 1.", "(add (mul 6 7) 1)", 200);
        expect(c, "The answer is (6 × 7).", "(mul 6 7)", 200);
        /* Regression: the multiplication and division signs make an expression,
         * not a grouped number with the signs dropped (once 67 and 124). */
        expect(c, "The answer is 6 × 7.", "(mul 6 7)", 200);
        expect(c, "The answer is 12 ÷ 4.", "(mul 12 (pow 4 -1))", 200);
    }
    got g;
    extract(&d, "The answer is 7,425,000.", &g);
    assert_string_equal(g.kind, "expr");
    assert_string_equal(g.answer, "7425000");
    assert_string_equal(g.fallback, "7,425,000");
    got_free(&g);

    /* Leading-zero groups: LightEval's regex reads "0,123,456" as one grouped
     * number; Math-Verify's ([1-9] first, no leading zero) does not. */
    ssf_extract_config lx = lighteval_config(SSF_TARGET_EXPR);
    ssf_extract_config mx = bare_config(SSF_TARGET_EXPR, 50);
    expect(&lx, "0,123,456", "123456", 300);
    extract(&mx, "0,123,456", &g);
    assert_non_null(g.sexpr);
    assert_string_not_equal(g.sexpr, "123456");
    assert_string_equal(g.fallback, "0,123"); /* Math-Verify's format 2 match */
    /* Regression: Math-Verify's format-2 match "0,123" is the decimal 0.123. */
    assert_string_equal(g.sexpr, "123/1000@3");
    got_free(&g);
    expect(&lx, "The answer is 0,999", "999", 200); /* LightEval: grouped */
    /* Math-Verify reads "0,999" as the decimal 0.999 (format 2). */
    expect(&mx, "The answer is 0,999", "999/1000@3", 200);
    /* "1000,999" matches only format 2 (-?\d+[.,]\d+) in both regexes: 1000.999. */
    expect(&mx, "1000,999", "1000999/1000@3", 300);
    expect(&lx, "1000,999", "1000999/1000@3", 300);
}

/* ---- 4. letters -------------------------------------------------------- */

static void test_letters(void **state)
{
    (void)state;
    ssf_extract_config c = bare_config(SSF_TARGET_LETTERS, 50);
    expect_letter(&c, "thinking about it I think the correct answer is C", "C");
    expect_letter(&c, "Answer: B", "B");
    expect_letter(&c, "Answer: B. Actually A is wrong", "B");
    expect_letter(&c, "Some reasoning.\n**D**\nmore text", "D");
    expect_letter(&c, "Some reasoning.\n**D**", "D");
    expect_letter(&c, "The answer is (C).", "C");
    expect_letter(&c, "(C)", "C");
    expect_letter(&c, "I pick (C) here", "C");
    expect_letter(&c, "A. Because B is not valid", "A");
    expect_letter(&c, "Because B is valid", "B");
    expect_letter(&c, "Final answer is B", "B");
    expect_letter(&c, "No valid answer here", NULL);

    got g;
    extract(&c, "A. Because B is not valid", &g);
    assert_int_equal(g.priority, 200); /* start of the string */
    got_free(&g);
    extract(&c, "Answer: B", &g);
    assert_int_equal(g.priority, 100);
    got_free(&g);
    extract(&c, "Some reasoning.\n**D**", &g);
    assert_int_equal(g.priority, 210); /* start of a line */
    got_free(&g);

    /* no bare capital inside a word; a glued or line-ended letter is read */
    expect_letter(&c, "The product is (R)-2-Bromobutane.", NULL);
    expect_letter(&c, "Answer: I am not sure", NULL);
    expect_letter(&c, "Answer:B", "B");
    expect_letter(&c, "Answer:**B**", "B");
    expect_letter(&c, "Answer: B\nBecause A fails", "B");
    /* after an answer anchor the choice's own ")" ends a letter, and a
     * letter set in TeX is read; the choices restated alone are no answer */
    expect_letter(&c, "Answer: B) the second one", "B");
    expect_letter(&c, "The final answer is C) three", "C");
    expect_letter(&c, "Answer: $\\mathrm{B}$", "B");
    expect_letter(&c, "Answer: \\textbf{D}", "D");
    expect_letter(&c, "The choices were\nA) one\nB) two\nC) three", NULL);
    expect_letter(&c, "B) two", NULL);
    /* LightEval's last resort (its profiles): any capital, the rightmost */
    c.bare_letters = 1;
    expect_letter(&c, "The product is (R)-2-Bromobutane.", "B");
    expect_letter(&c, "Answer: B\nBecause A fails", "A");
    c.bare_letters = 0;

    /* letters beyond n_letters are not taken */
    expect_letter(&c, "The answer is E.", NULL);
    expect_letter(&c, "E", NULL);
    expect_letter(&c, "The answer is E. Or maybe D.", "D");
    c.n_letters = 5;
    expect_letter(&c, "The answer is E.", "E");
    c.n_letters = 2;
    expect_letter(&c, "The answer is C.", NULL);
    expect_letter(&c, "The answer is B.", "B");
    c.n_letters = 4;

    /* boxed letters only with boxed_letters; then they come first (5) */
    expect_letter(&c, "The answer is A. \\boxed{C}", "A");
    c.boxed_letters = 1;
    expect_letter(&c, "\\boxed{\\text{(C)}}", "C");
    expect_letter(&c, "\\boxed{C}", "C");
    expect_letter(&c, "\\boxed{\\textbf{D}}", "D");
    expect_letter(&c, "\\boxed{E}", NULL);
    expect_letter(&c, "The answer is A. \\boxed{C}", "C");
    extract(&c, "\\boxed{\\text{(C)}}", &g);
    assert_int_equal(g.priority, 5);
    got_free(&g);

    /* the default profile's letters extractor */
    ssf_extract_config d = default_config(SSF_TARGET_LETTERS);
    expect_letter(&d, "\\boxed{\\text{(C)}}", "C");
    expect_letter(&d, "Answer: B", "B");
}

/* ---- 5. plain-text answers --------------------------------------------- */

static void test_plain_text(void **state)
{
    (void)state;
    ssf_extract_config d = default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    ssf_extract_config off = d;
    off.plain_text = 0;

    expect(&d, "The answer is pi/2.", "(mul pi (pow 2 -1))", 201);
    expect(&d, "Answer: sqrt(2)", "(pow 2 1/2)", 101);
    expect(&d, "So the final answer is exp(16)-1.", "(add (func exp 16) -1)", 1);
    expect(&d, "The answer is pi.", "pi", 201);
    got g;
    extract(&d, "The answer is pi/2.", &g);
    assert_string_equal(g.answer, "pi/2");
    got_free(&g);

    /* only with plain_text */
    expect(&off, "The answer is pi/2.", NULL, 0);
    expect(&off, "Answer: sqrt(2)", NULL, 0);
    expect(&off, "So the final answer is exp(16)-1.", NULL, 0);

    /* prose after the anchor is not an answer */
    expect(&d, "The answer is that we need more", NULL, 0);
    expect(&d, "The answer is that we need more time.", NULL, 0);
    /* Regression: function names count only as whole words, so prose such as
     * "spider", "since" or "tangent" is not taken for an answer. */
    expect(&d, "The answer is that the spider is happy.", NULL, 0);
    expect(&d, "The answer is x since it is linear.", NULL, 0);
    expect(&d, "The answer is a tangent line.", NULL, 0);

    /* LaTeX and numbers still come first where they match */
    expect(&d, "The answer is $\\frac{\\pi}{2}$.", "(mul pi (pow 2 -1))", 200);
    expect(&d, "The answer is 3 dogs.", "3", 200);
}

/* ---- 6. ssf_boxed_content ---------------------------------------------- */

static void test_boxed_content(void **state)
{
    (void)state;
    expect_boxed("no box here", NULL);
    expect_boxed("", NULL);
    expect_boxed("\\boxed", NULL);
    expect_boxed("\\boxed{1}", "1");
    expect_boxed("\\fbox{7}", "7");
    expect_boxed("\\boxed {3}", "3");
    expect_boxed("\\boxed{}", "");
    expect_boxed("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}");
    expect_boxed("x \\boxed{\\text{(C)}} y", "\\text{(C)}");
    expect_boxed("\\boxed{\\{1,2\\}}", "\\{1,2\\}");
    expect_boxed("\\boxed{a\\}b}", "a\\}b");
    expect_boxed("\\boxed{a\\{b}", "a\\{b");
    expect_boxed("\\boxed{12", "12");
    expect_boxed("\\boxed{{{", "{{");
    expect_boxed("\\boxed2, \\boxed3", "2, 3");
    /* unbraced: the run up to a space or '$', as LightEval reads it */
    expect_boxed("so the answer is \\boxed 57", "57");
    expect_boxed("so the answer is \\boxed 204.", "204");
    expect_boxed("$\\boxed 204$ in all", "204");
    expect_boxed("\\boxed{1} and \\boxed{2}", "1, 2");
    expect_boxed("\\boxed{1} or \\boxed{2}", "1, 2");
    expect_boxed("\\boxed{1}; \\boxed{2}", "1, 2");
    expect_boxed("\\boxed{1}, \\boxed{2}, and \\boxed{3}", "1, 2, 3");
    expect_boxed("\\boxed{840} and \\boxed{840}", "840");
    expect_boxed("\\boxed{1}\\boxed{1}\\boxed{2}", "1, 2");
    expect_boxed("\\boxed{1} no no no \\boxed{2}", "2");
    /* separators in TeX: \text{ and }, \quad, a variable's "x =" */
    expect_boxed("\\[\\boxed{1} \\text{ and } \\boxed{-2}\\]", "1, -2");
    expect_boxed("The solutions are \\boxed{3} \\quad \\text{and} \\quad \\boxed{5}.", "3, 5");
    expect_boxed("So $x = \\boxed{1}$ or $x = \\boxed{-2}$.", "1, -2");
    expect_boxed("So the answers are \\boxed{1} \\textrm{ and } \\boxed{-2}.", "1, -2");
    expect_boxed("So the answers are \\boxed{1} \\mbox{ or } \\boxed{-2}.", "1, -2");
    expect_boxed("\\boxed{1} \\\\ \\text{and} \\\\ \\boxed{-2}", "1, -2");
    expect_boxed("\\boxed{1} and then the value is \\boxed{2}", "2");
    expect_boxed("\\boxed{1} and xy = \\boxed{2}", "2");
    /* joined with ", ": "2,500" would be the number 2500 */
    expect_boxed("The possible values are $\\boxed{2}$ and $\\boxed{500}$.", "2, 500");
    expect_boxed("\\boxed{1} and also \\boxed{2}", "2");
    expect_boxed("\\boxed{1} then we consider much more text before another \\boxed{2}", "2");
    /* nothing but separators between two boxes: joined up to 70 characters
     * apart, not beyond */
    for (size_t gap = 60; gap <= 80; gap += 20) {
        ssf_buf t = {0};
        ssf_buf_puts(&t, "\\boxed{1}");
        for (size_t i = 0; i < gap; i++)
            ssf_buf_putc(&t, i % 2 ? ' ' : ',');
        ssf_buf_puts(&t, "\\boxed{2}");
        expect_boxed(t.data, gap <= 70 ? "1, 2" : "2");
        ssf_buf_free(&t);
    }
    /* the length is what was given, not the NUL */
    char *s = ssf_boxed_content("\\boxed{12}", 8);
    assert_non_null(s);
    assert_string_equal(s, "1");
    free(s);
}

/* ---- 7. the Math-Verify extraction cases -------------------------------- */

typedef struct mv_ctx {
    size_t rows, mapped, agree, skipped;
} mv_ctx;

/* Letters for a StringExtractionConfig: A .. the largest of "strings". */
static int n_letters_for(json_t *kwargs)
{
    json_t *strings = json_object_get(kwargs, "strings");
    if (!json_is_array(strings)) return 4;
    int n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(strings, i, v)
    {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != 1 || s[0] < 'A' || s[0] > 'Z') return -1;
        if (s[0] - 'A' + 1 > n) n = s[0] - 'A' + 1;
    }
    return n;
}

static void mv_string_row(mv_ctx *m, size_t number, const char *input, json_t *kwargs,
                          json_t *expected)
{
    int n = n_letters_for(kwargs);
    if (n < 0) {
        printf("# skipped row %zu: needs strings other than single capital letters\n", number);
        m->skipped++;
        return;
    }
    ssf_extract_config c = bare_config(SSF_TARGET_LETTERS, 50);
    c.n_letters = n;
    got g;
    extract(&c, input, &g);
    m->mapped++;
    int ok;
    if (json_array_size(expected) == 0) {
        ok = g.answer == NULL;
    } else {
        const char *want = json_string_value(json_array_get(expected, 0));
        const char *raw = json_string_value(json_array_get(expected, 1));
        ok = want && g.answer && strcasecmp(g.answer, want) == 0;
        /* the raw first match keeps its case */
        if (ok && raw) ok = g.fallback && strcmp(g.fallback, raw) == 0;
    }
    if (ok)
        m->agree++;
    else
        printf("# MISMATCH row %zu '%s': got %s (fallback %s)\n", number, input,
               g.answer ? g.answer : "nothing", g.fallback ? g.fallback : "none");
    got_free(&g);
}

/* The decimal long at s and where it ends; 0 when s starts with none or
 * it is out of range. */
static int parse_long(const char *s, long *v, char **end)
{
    errno = 0;
    *v = strtol(s, end, 10);
    return *end != s && errno == 0;
}

/* "Rational(1,2)" -> "1/2", "9999" -> "9999"; NULL if neither. */
static char *mv_value_text(const char *v, size_t n)
{
    static const char head[] = "Rational(";
    long p, q;
    char *comma, *close;
    char *s = strndup(v, n);
    char *out = NULL;
    if (strncmp(s, head, strlen(head)) == 0 && parse_long(s + strlen(head), &p, &comma) &&
        *comma == ',' && parse_long(comma + 1, &q, &close) && *close == ')') {
        out = malloc(64);
        snprintf(out, 64, "%ld/%ld", p, q);
    } else if (n > 0 && strspn(s, "-0123456789") == n) {
        out = strdup(s);
    }
    free(s);
    return out;
}

static void mv_latex_row(mv_ctx *m, size_t number, const char *input, const char *config,
                         const char *expected)
{
    static const char *const unsupported[] = {"malformed_operators=False",
                                              "basic_latex=False",
                                              "units=False",
                                              "nits=False",
                                              "boxed=False",
                                              "try_extract_without_anchor=False"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        if (strstr(config, unsupported[i])) {
            printf("# skipped row %zu: needs %s\n", number, unsupported[i]);
            m->skipped++;
            return;
        }
    }
    if (strncmp(config, "LatexExtractionConfig(", 22) != 0) {
        printf("# skipped row %zu: needs %s\n", number, config);
        m->skipped++;
        return;
    }
    ssf_extract_config c = bare_config(SSF_TARGET_LATEX, 50);
    const char *bp = strstr(config, "boxed_match_priority=");
    if (bp) {
        long v;
        char *end;
        if (!parse_long(bp + strlen("boxed_match_priority="), &v, &end) ||
            (*end != ',' && *end != ')') || v < INT_MIN || v > INT_MAX)
            fail_msg("row %zu: boxed_match_priority in %s is not an integer", number, config);
        c.boxed_priority = (int)v;
    }
    if (strstr(config, "equations=True")) c.parse.equations = 1;

    /* expected: "[] ...", or "[value] ..." */
    assert_true(expected[0] == '[');
    const char *close = strchr(expected, ']');
    assert_non_null(close);
    char *want = NULL;
    if (close > expected + 1) {
        char *text = mv_value_text(expected + 1, (size_t)(close - expected - 1));
        if (!text) {
            printf("# skipped row %zu: needs a comparison for %s\n", number, expected);
            m->skipped++;
            return;
        }
        ssf_arena *a = ssf_arena_new(ARENA_NODES);
        ssf_error err;
        ssf_node *v = ssf_parse_answer(a, text, strlen(text), &c.parse, &err);
        if (!v)
            fail_msg("row %zu: cannot parse the expected value '%s': %s", number, text, err.msg);
        want = ssf_node_sexpr(v);
        ssf_arena_free(a);
        free(text);
    }
    got g;
    extract(&c, input, &g);
    m->mapped++;
    int ok = want ? g.sexpr && strcmp(g.sexpr, want) == 0 : g.sexpr == NULL;
    if (ok)
        m->agree++;
    else
        printf("# MISMATCH row %zu '%s' (%s): got %s, expected %s\n", number, input, config,
               g.sexpr ? g.sexpr : "nothing", expected);
    got_free(&g);
    free(want);
}

static int mv_row(json_t *row, size_t number, size_t line, void *ud)
{
    (void)line;
    mv_ctx *m = ud;
    m->rows++;
    const char *input = json_string_value(json_object_get(row, "input"));
    json_t *config = json_object_get(row, "config");
    json_t *expected = json_object_get(row, "expected_parse");
    assert_non_null(input);
    if (json_is_object(config)) {
        const char *name = json_string_value(json_object_get(config, "config"));
        if (name && strcmp(name, "StringExtractionConfig") == 0 && json_is_array(expected)) {
            mv_string_row(m, number, input, json_object_get(config, "kwargs"), expected);
            return 0;
        }
    } else if (json_is_string(config) && json_is_string(expected)) {
        mv_latex_row(m, number, input, json_string_value(config), json_string_value(expected));
        return 0;
    }
    printf("# skipped row %zu: needs an unknown configuration\n", number);
    m->skipped++;
    return 0;
}

static void test_mathverify_cases(void **state)
{
    (void)state;
    char *path = shared_path("cases/mathverify_extraction_cases.jsonl");
    mv_ctx m = {0};
    ssf_error err;
    if (ssf_records_read_file(path, SSF_FORMAT_JSONL, mv_row, &m, &err)) fail_msg("%s", err.msg);
    free(path);
    printf("# mathverify_extraction_cases.jsonl: %zu rows, %zu mapped, %zu agree, %zu skipped\n",
           m.rows, m.mapped, m.agree, m.skipped);
    assert_int_equal(m.rows, 12);
    assert_int_equal(m.mapped + m.skipped, m.rows);
    assert_true(m.mapped >= 10); /* only configurations we lack may be skipped */
    assert_int_equal(m.agree, m.mapped);
}

/* ---- 8. robustness ----------------------------------------------------- */

static char *repeat(const char *unit, size_t len)
{
    size_t u = strlen(unit);
    char *b = malloc(len + 1);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = unit[i % u];
    b[len] = '\0';
    return b;
}

/* len bytes of "$x$ " (byte invalid_at made 0xff unless -1) give x within
 * two seconds. */
static void expect_x_at_once(const ssf_extractor *x, size_t len, long invalid_at)
{
    char *b = repeat("$x$ ", len);
    if (invalid_at >= 0) b[invalid_at] = '\xff';
    got g;
    extract_with(x, b, len, &g);
    assert_true(g.seconds < 2.0);
    assert_non_null(g.sexpr);
    assert_string_equal(g.sexpr, "x");
    got_free(&g);
    free(b);
}

static void test_robustness(void **state)
{
    (void)state;
    /* Each also without JIT, as where it is refused (W^X policies): the
     * interpreter must answer as fast on valid UTF-8 (it checked the text
     * again at every match, 8 s for 256 KB of "$x$ "); it is slower on its
     * own, so its texts are a quarter as long. */
    ssf_extract_config cfgs[6] = {
        default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR),
        lighteval_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR),
        default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR | SSF_TARGET_LETTERS)};
    for (int k = 3; k < 6; k++) {
        cfgs[k] = cfgs[k - 3];
        cfgs[k].no_jit = 1;
    }
    for (int k = 0; k < 6; k++) {
        const size_t mb = (size_t)1 << (cfgs[k].no_jit ? 18 : 20);
        ssf_extractor *x = new_extractor(&cfgs[k]);
        got g;

        /* 1 MB of "$x$ ": the rightmost span parses at once */
        expect_x_at_once(x, mb, -1);

        /* 1 MB of spans that never parse: at most MAX_CANDIDATES are tried,
         * then the extraction stops over budget */
        char *b = repeat("$}$ ", mb);
        extract_with(x, b, mb, &g);
        assert_true(g.seconds < 2.0);
        assert_null(g.sexpr);
        assert_true(g.over_budget);
        assert_string_equal(g.fallback, "}");
        got_free(&g);
        free(b);

        /* "$5$" and then failing spans, which are tried first (rightmost):
         * found while it is within the first MAX_CANDIDATES tried, not after */
        for (int extra = 0; extra < 2; extra++) {
            ssf_buf t = {0};
            ssf_buf_puts(&t, "$5$");
            for (int i = 0; i < MAX_CANDIDATES - 1 + extra; i++)
                ssf_buf_puts(&t, " $}$");
            extract_with(x, t.data, t.len, &g);
            if (extra == 0) {
                assert_non_null(g.sexpr);
                assert_string_equal(g.sexpr, "5");
                assert_false(g.over_budget);
            } else {
                assert_null(g.sexpr);
                assert_true(g.over_budget);
            }
            got_free(&g);
            ssf_buf_free(&t);
        }

        /* invalid UTF-8 */
        const char bad[] = "\xff answer: 7 \xfe";
        extract_with(x, bad, sizeof bad - 1, &g);
        assert_non_null(g.sexpr);
        assert_string_equal(g.sexpr, "7");
        got_free(&g);
        const char bad2[] = "The answer is \xff\xfe $\xc3\x28$ \\boxed{4\xe2\x82} \xf0\x9f";
        extract_with(x, bad2, sizeof bad2 - 1, &g); /* anything, without a crash */
        got_free(&g);
        b = repeat("x", mb);
        for (size_t i = 0; i < mb; i++)
            b[i] = (char)(0x80 + (i * 7) % 0x7f);
        extract_with(x, b, mb, &g);
        assert_true(g.seconds < 2.0);
        got_free(&g);
        free(b);
        /* and with an invalid byte for one space: the interpreter's check
         * of the rest of the text at every match took 14 s */
        expect_x_at_once(x, mb, 3);

        /* empty text, NULs */
        extract_with(x, "", 0, &g);
        assert_null(g.sexpr);
        assert_null(g.fallback);
        assert_int_equal(g.priority, -1);
        got_free(&g);
        extract_with(x, "\0\0\0", 3, &g);
        assert_null(g.sexpr);
        got_free(&g);
        /* the length bounds the text: "$12$" cut to "$1" */
        extract_with(x, "$12$ and more", 2, &g);
        assert_non_null(g.sexpr);
        assert_string_equal(g.sexpr, "1");
        got_free(&g);

        /* 100k '{', bare and boxed */
        b = repeat("{", 100000);
        extract_with(x, b, 100000, &g);
        assert_true(g.seconds < 2.0);
        assert_null(g.sexpr);
        got_free(&g);
        static const char boxed[] = "\\boxed";
        memcpy(b, boxed, sizeof boxed - 1); /* over the first '{'s, no NUL */
        extract_with(x, b, 100000, &g);
        assert_true(g.seconds < 2.0);
        assert_null(g.sexpr);
        got_free(&g);
        free(b);

        /* 1 MB of boxes and of anchors */
        b = repeat("\\boxed{1} ", mb);
        extract_with(x, b, mb, &g);
        assert_true(g.seconds < 2.0);
        assert_non_null(g.sexpr);
        assert_string_equal(g.sexpr, "1");
        got_free(&g);
        free(b);
        /* 1.3 s without JIT in a release build, and a sanitized one on a
         * busy machine took 5: a quadratic scan would take minutes */
        b = repeat("answer: ", mb);
        extract_with(x, b, mb, &g);
        assert_true(g.seconds < 15.0);
        got_free(&g);
        free(b);

        ssf_extractor_free(x);
    }
}

/* ---- 9. extractors are reusable ---------------------------------------- */

static void test_extractor_reuse(void **state)
{
    (void)state;
    ssf_extract_config d = default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR);
    ssf_extractor *x = new_extractor(&d);
    static const char *const texts[][2] = {
        {"\\boxed{3}", "3"}, {"$4$", "4"}, {"The answer is 5.", "5"}, {"none", NULL}};
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 4; i++) {
            got g;
            extract_with(x, texts[i][0], strlen(texts[i][0]), &g);
            if (texts[i][1]) {
                assert_non_null(g.sexpr);
                assert_string_equal(g.sexpr, texts[i][1]);
            } else {
                assert_null(g.sexpr);
            }
            got_free(&g);
        }
    }
    ssf_extractor_free(x);
    ssf_extractor_free(NULL);

    /* n_letters out of range falls back to 4 */
    ssf_extract_config c = bare_config(SSF_TARGET_LETTERS, 50);
    c.n_letters = 0;
    expect_letter(&c, "The answer is D.", "D");
    expect_letter(&c, "The answer is E.", NULL);
    c.n_letters = 27;
    expect_letter(&c, "The answer is D.", "D");
    expect_letter(&c, "The answer is E.", NULL);
}

/* ---- the interpreter against JIT on invalid UTF-8 ------------------------ */

static int same_or_null(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int same_got(const got *a, const got *b)
{
    return same_or_null(a->sexpr, b->sexpr) && same_or_null(a->answer, b->answer) &&
           same_or_null(a->fallback, b->fallback) && a->priority == b->priority &&
           same_or_null(a->kind, b->kind) && a->over_budget == b->over_budget;
}

static void print_escaped(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

/* Texts of answers, separators and invalid UTF-8 at every place: where an
 * invalid sequence sits beside a lookbehind, \b, ^ or $ of a pattern. */
static void random_text(uint64_t *state, ssf_buf *out)
{
    static const char *const pieces[] = {
        "$5$",
        "$x+1$",
        "\\boxed{3}",
        "\\boxed{C}",
        "answer: ",
        "The answer is ",
        "final answer",
        "A",
        "**B**",
        " D.",
        "[7]",
        "12",
        "1,234",
        "pi/2",
        " ",
        "\n",
        "$",
        "\\[",
        "\\]",
        "(",
        "%",
        "\xff",
        "\xfe",
        "\xc3\xa9",
        "\xe2\x82",
        "\xc0\x80",
        "\xed\xa0\x80",
        "\x80",
        "\xf0\x9f\x98",
        "\xe2\x88\x9a",
        "=",
    };
    size_t n_pieces = sizeof pieces / sizeof *pieces;
    out->len = 0;
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    for (unsigned k = 1 + (unsigned)(*state >> 60); k > 0; k--) {
        *state = *state * 6364136223846793005u + 1442695040888963407u;
        ssf_buf_puts(out, pieces[(*state >> 33) % n_pieces]);
    }
}

/* Without JIT, each valid fragment of a text is matched on its own, so the
 * text is checked once rather than at every match (PCRE2 matches
 * PCRE2_MATCH_INVALID_UTF fragment by fragment itself): the answers must be
 * those of the JIT code, which reads the whole text. */
static void test_interpreter_fragments(void **state)
{
    (void)state;
    ssf_extract_config cfgs[4] = {
        default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR),
        lighteval_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR),
        default_config(SSF_TARGET_LATEX | SSF_TARGET_EXPR | SSF_TARGET_LETTERS),
        bare_config(SSF_TARGET_LETTERS, 50)};
    cfgs[3].bare_letters = 1;
    uint64_t rng = 20261128;
    size_t differing = 0, found = 0;
    ssf_buf text = {0};
    for (int k = 0; k < 4; k++) {
        ssf_extractor *jit = new_extractor(&cfgs[k]);
        if (!ssf_extractor_has_jit(jit)) {
            ssf_extractor_free(jit);
            skip(); /* nothing to compare the interpreter with */
        }
        cfgs[k].no_jit = 1;
        ssf_extractor *interp = new_extractor(&cfgs[k]);
        assert_false(ssf_extractor_has_jit(interp));
        for (int i = 0; i < 3000; i++) {
            random_text(&rng, &text);
            got a, b;
            extract_with(jit, text.data, text.len, &a);
            extract_with(interp, text.data, text.len, &b);
            found += a.sexpr != NULL;
            if (!same_got(&a, &b)) {
                if (differing++ < 5) {
                    fprintf(stderr, "config %d: JIT %s (%s) against %s (%s) for ", k,
                            a.sexpr ? a.sexpr : "-", a.fallback ? a.fallback : "-",
                            b.sexpr ? b.sexpr : "-", b.fallback ? b.fallback : "-");
                    print_escaped(text.data, text.len);
                }
            }
            got_free(&a);
            got_free(&b);
        }
        ssf_extractor_free(jit);
        ssf_extractor_free(interp);
    }
    ssf_buf_free(&text);
    assert_int_equal(differing, 0);
    assert_true(found > 3000); /* most texts hold an answer */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_order),   cmocka_unit_test(test_rightmost_first),
        cmocka_unit_test(test_numbers),          cmocka_unit_test(test_letters),
        cmocka_unit_test(test_plain_text),       cmocka_unit_test(test_boxed_content),
        cmocka_unit_test(test_mathverify_cases), cmocka_unit_test(test_robustness),
        cmocka_unit_test(test_extractor_reuse),  cmocka_unit_test(test_interpreter_fragments),
    };
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
