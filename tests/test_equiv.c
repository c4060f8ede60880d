/*
 * test_equiv.c - equivalence of answer trees: the rules of grading.md §6 in
 * order, the decimal rounding rule (§7), the asymmetries (§8), the
 * comparison items of the §11 checklist and the Math-Verify bugs of §12
 * that must come out right, plus hostile inputs and canonical keys.
 *
 * Trees are built by hand with the expr.h constructors, the way a parser
 * would build them (a/b as MUL(a, POW(b, -1)), sqrt as POW(x, 1/2)).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <cmocka.h>

#include <flint/flint.h>

#include "equiv.h"
#include "expr.h"

/* The arena of the running test (tests run one at a time). */
static ssf_arena *A;

static int setup(void **state)
{
    (void)state;
    A = ssf_arena_new(1000000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ssf_arena_free(A);
    A = NULL;
    return 0;
}

/* ---- tree builders ---- */

static ssf_node *I_(long v)
{
    return ssf_node_int(A, v);
}

/* A decimal or integer literal as written: "0.333333", "004", ".4". */
static ssf_node *D(const char *text)
{
    return ssf_node_number_text(A, text, strlen(text));
}

/* An exact rational "p/q" (no decimal flag). */
static ssf_node *Q(const char *text)
{
    fmpq_t q;
    fmpq_init(q);
    assert_int_equal(fmpq_set_str(q, text, 10), 0);
    ssf_node *n = ssf_node_rational(A, q, -1);
    fmpq_clear(q);
    return n;
}

static ssf_node *S(const char *name)
{
    return ssf_node_symbol(A, SSF_N_SYMBOL, name, strlen(name));
}

static ssf_node *T(const char *text)
{
    return ssf_node_symbol(A, SSF_N_TEXT, text, strlen(text));
}

static ssf_node *leaf(ssf_node_kind k)
{
    return ssf_node_leaf(A, k);
}

static ssf_node *list(ssf_node_kind k, ...)
{
    ssf_node *kids[64];
    size_t n = 0;
    va_list ap;
    va_start(ap, k);
    for (ssf_node *x; (x = va_arg(ap, ssf_node *)) != NULL && n < 64;)
        kids[n++] = x;
    va_end(ap);
    return ssf_node_list(A, k, kids, n);
}

#define ADD(...) list(SSF_N_ADD, __VA_ARGS__, (ssf_node *)NULL)
#define MUL(...) list(SSF_N_MUL, __VA_ARGS__, (ssf_node *)NULL)
#define SET(...) list(SSF_N_SET, __VA_ARGS__, (ssf_node *)NULL)
#define TUP(...) list(SSF_N_TUPLE, __VA_ARGS__, (ssf_node *)NULL)
#define UNI(...) list(SSF_N_UNION, __VA_ARGS__, (ssf_node *)NULL)
#define AND(...) list(SSF_N_AND, __VA_ARGS__, (ssf_node *)NULL)

static ssf_node *neg(ssf_node *x)
{
    return ssf_node_unary(A, SSF_N_NEG, x);
}

static ssf_node *pct(ssf_node *x)
{
    return ssf_node_unary(A, SSF_N_PERCENT, x);
}

static ssf_node *pw(ssf_node *x, ssf_node *y)
{
    return ssf_node_binary(A, SSF_N_POW, x, y);
}

static ssf_node *frac(ssf_node *x, ssf_node *y)
{
    return ssf_node_div(A, x, y);
}

static ssf_node *sub(ssf_node *x, ssf_node *y)
{
    return ssf_node_sub(A, x, y);
}

static ssf_node *sqrt_(ssf_node *x)
{
    return pw(x, Q("1/2"));
}

static ssf_node *fn(ssf_func f, ssf_node *x)
{
    return ssf_node_func(A, f, NULL, &x, 1);
}

static ssf_node *fn2(ssf_func f, ssf_node *x, ssf_node *y)
{
    ssf_node *k[2] = {x, y};
    return ssf_node_func(A, f, NULL, k, 2);
}

static ssf_node *ufn(const char *name, ssf_node *x)
{
    return ssf_node_func(A, SSF_F_UNKNOWN, name, &x, 1);
}

static ssf_node *rel(ssf_rel r, ssf_node *x, ssf_node *y)
{
    return ssf_node_rel(A, r, x, y);
}

static ssf_node *iv(ssf_node *lo, ssf_node *hi, int lo_open, int hi_open)
{
    return ssf_node_interval(A, lo, hi, lo_open, hi_open);
}

static ssf_node *pm(ssf_node *a, ssf_node *b)
{
    ssf_node *k[2] = {a, b};
    return b ? ssf_node_list(A, SSF_N_PM, k, 2) : ssf_node_list(A, SSF_N_PM, k, 1);
}

static ssf_node *inf(void)
{
    return leaf(SSF_N_INFINITY);
}

static ssf_node *fact(long n)
{
    return fn(SSF_F_FACTORIAL, I_(n));
}

/* ---- checks ---- */

static const char *verdict_name(ssf_verdict v)
{
    return v == SSF_EQUAL ? "EQUAL" : v == SSF_DIFFERENT ? "DIFFERENT" : "UNKNOWN";
}

static ssf_verdict check_opt(int line, const ssf_equiv_options *o, const ssf_node *g,
                             const ssf_node *p, ssf_verdict want, ssf_error *why)
{
    assert_non_null(g);
    assert_non_null(p);
    ssf_error local = {0};
    ssf_error *err = why ? why : &local;
    ssf_verdict v = ssf_equiv(g, p, o, err);
    if (v != want) {
        char *a = ssf_node_sexpr(g), *b = ssf_node_sexpr(p);
        print_error("line %d: %.200s vs %.200s: got %s (%s), want %s\n", line, a, b,
                    verdict_name(v), err->msg, verdict_name(want));
        free(a);
        free(b);
        fail();
    }
    assert_true(err->msg[0] != '\0'); /* every verdict says why */
    return v;
}

static ssf_equiv_options defaults(void)
{
    ssf_equiv_options o;
    ssf_equiv_options_default(&o);
    return o;
}

#define EQ(g, p) check_opt(__LINE__, NULL, (g), (p), SSF_EQUAL, NULL)
#define NE(g, p) check_opt(__LINE__, NULL, (g), (p), SSF_DIFFERENT, NULL)
#define UNK(g, p) check_opt(__LINE__, NULL, (g), (p), SSF_UNKNOWN, NULL)
#define EQ_O(o, g, p) check_opt(__LINE__, (o), (g), (p), SSF_EQUAL, NULL)
#define NE_O(o, g, p) check_opt(__LINE__, (o), (g), (p), SSF_DIFFERENT, NULL)

/* Both orders give the same verdict (symmetric rules). */
#define EQ2(g, p)                                                                                  \
    do {                                                                                           \
        EQ(g, p);                                                                                  \
        EQ(p, g);                                                                                  \
    } while (0)
#define NE2(g, p)                                                                                  \
    do {                                                                                           \
        NE(g, p);                                                                                  \
        NE(p, g);                                                                                  \
    } while (0)

/* ---- §11 #1-#5, #45: numbers ---- */

static void test_numbers(void **state)
{
    (void)state;
    EQ2(I_(7425000), D("7425000"));  /* #1 grouping is the parser's; values agree */
    EQ2(I_(4), D("004"));            /* #2 leading zeros */
    EQ2(I_(1000), D("1000.0"));      /* #3 */
    EQ2(I_(204), D("204.0"));        /* #3 */
    EQ2(D("1000.99"), D("1000.99")); /* #4 */
    EQ2(D("0.4"), D(".4"));          /* #5 */
    NE2(I_(1000), I_(1001));
    NE2(D("1000.0"), I_(1001));
    EQ2(I_(300000000), MUL(I_(3), pw(I_(10), I_(8)))); /* #45 */
    EQ2(D("0.001"), pw(I_(10), I_(-3)));               /* #45 1e-3 */
    NE2(I_(300000000), MUL(I_(3), pw(I_(10), I_(9))));
    EQ2(neg(I_(5)), MUL(I_(-1), I_(5)));
    /* past 18 digits a literal is read by GMP: its value and its decimals */
    EQ2(D("99999999999999999999"), ADD(pw(I_(10), I_(20)), I_(-1)));
    NE2(D("99999999999999999999"), pw(I_(10), I_(20)));
    EQ2(frac(I_(1), I_(3)), D("0.33333333333333333333"));
}

/* ---- §11 #6-#8 and §7: fractions and the decimal rule ---- */

static void test_decimal_rule(void **state)
{
    (void)state;
    ssf_equiv_options o = defaults();
    EQ2(frac(I_(1), I_(12)), D("0.0833333333")); /* #6 */
    EQ2(frac(I_(1), I_(3)), D("0.333333"));
    NE2(frac(I_(1), I_(3)), D("0.3333")); /* at 6 places */
    o.float_rounding = 4;
    EQ_O(&o, frac(I_(1), I_(3)), D("0.3333"));
    EQ_O(&o, D("0.3333"), frac(I_(1), I_(3)));
    o.float_rounding = -1; /* rule off: exact */
    NE_O(&o, frac(I_(1), I_(3)), D("0.333333"));
    EQ_O(&o, D("0.5"), frac(I_(1), I_(2)));
    /* Ties go to even, as sympy's Float.round: 2.5 -> 2, 3.5 -> 4. */
    o.float_rounding = 0;
    EQ_O(&o, D("2.5"), I_(2));
    NE_O(&o, D("2.5"), I_(3));
    EQ_O(&o, D("3.5"), I_(4));
    o.float_rounding = 2;
    EQ_O(&o, D("0.125"), D("0.12"));
    EQ_O(&o, D("3.14"), leaf(SSF_N_PI));
    NE(D("3.14"), leaf(SSF_N_PI));    /* at 6 places */
    EQ2(sqrt_(I_(2)), D("1.414214")); /* an irrational side is rounded too */
    NE2(sqrt_(I_(2)), D("1.414"));
    /* #7 fraction notations all build the same value. */
    EQ2(frac(I_(1), I_(3)), Q("1/3"));
    EQ2(frac(I_(2), I_(6)), frac(I_(1), I_(3)));
    EQ2(MUL(I_(1), pw(I_(3), I_(-1))), Q("1/3"));
    /* #8 mixed number */
    EQ2(D("918.5"), ADD(I_(918), frac(I_(1), I_(2))));
    NE2(D("918.5"), ADD(I_(918), frac(I_(1), I_(3))));
    /* The rule is for a whole side that is a decimal; 0.5x is compared exactly. */
    EQ2(MUL(D("0.5"), S("x")), frac(S("x"), I_(2)));
    NE2(MUL(D("0.333333"), S("x")), frac(S("x"), I_(3)));
    EQ2(neg(D("0.5")), Q("-1/2"));
    /* a negative value rounds by its magnitude: -2/3 is -0.666667 */
    EQ2(neg(frac(I_(2), I_(3))), neg(D("0.666667")));
    NE2(neg(frac(I_(2), I_(3))), neg(D("0.666666")));
    /* rounding the real part says nothing of an imaginary one */
    NE2(D("1.0"), ADD(I_(1), leaf(SSF_N_I)));
    NE2(D("0.5"), ADD(Q("1/2"), MUL(frac(sqrt_(I_(3)), I_(2)), leaf(SSF_N_I))));
}

/* ---- §11 #9-#11, #29: algebra, radicals and constants ---- */

static void test_algebra(void **state)
{
    (void)state;
    ssf_node *x = S("x"), *y = S("y"), *n = S("n");
    EQ2(MUL(I_(3), sqrt_(I_(13))), sqrt_(I_(117))); /* #9 */
    EQ2(sqrt_(I_(3)), pw(I_(3), Q("1/2")));
    EQ2(sqrt_(I_(8)), MUL(I_(2), sqrt_(I_(2))));
    EQ2(sqrt_(I_(4)), I_(2));
    EQ2(pw(I_(8), Q("2/3")), I_(4));
    EQ2(frac(ADD(x, I_(2)), I_(7)), ADD(frac(x, I_(7)), frac(I_(2), I_(7)))); /* #10 */
    EQ2(ADD(pw(fn(SSF_F_TAN, y), I_(2)), I_(1)), pw(fn(SSF_F_SEC, y), I_(2)));
    EQ2(pw(ADD(x, I_(1)), I_(2)), ADD(pw(x, I_(2)), MUL(I_(2), x), I_(1)));
    EQ2(ADD(pw(fn(SSF_F_SIN, x), I_(2)), pw(fn(SSF_F_COS, x), I_(2))), I_(1));
    NE2(ADD(x, MUL(I_(2), n), I_(1)), ADD(x, I_(1))); /* #11 */
    NE2(I_(2), frac(ADD(I_(1), sqrt_(I_(5))), I_(2)));
    NE2(pw(x, I_(2)), x);
    NE2(x, y);
    /* equal on (0.5, 2.5) alone: the signed, wider points tell them apart */
    NE2(fn(SSF_F_ABS, x), x);
    NE2(fn(SSF_F_ABS, ADD(x, I_(-3))), ADD(I_(3), MUL(I_(-1), x)));
    NE2(sqrt_(pw(ADD(x, I_(-5)), I_(2))), ADD(I_(5), MUL(I_(-1), x)));
    EQ2(fn(SSF_F_ABS, x), sqrt_(pw(x, I_(2))));
    /* a side that leaves the reals by its branch at a negative point says
     * nothing there: x^{2/3} is the real cube root of x^2 where x > 0 */
    EQ2(pw(x, Q("2/3")), pw(pw(x, I_(2)), Q("1/3")));
    EQ2(MUL(I_(2), fn(SSF_F_LN, x)), fn(SSF_F_LN, pw(x, I_(2))));
    EQ2(fn(SSF_F_LN, I_(8)), MUL(I_(3), fn(SSF_F_LN, I_(2))));
    EQ2(fn2(SSF_F_LOG, I_(8), I_(2)), I_(3));
    /* A one-argument LOG is base 10 (\lg); the parser reads \log as LN. */
    EQ2(fn(SSF_F_LOG, S("x")), frac(fn(SSF_F_LN, S("x")), fn(SSF_F_LN, I_(10))));
    NE2(fn(SSF_F_LOG, S("x")), fn(SSF_F_LN, S("x")));
    EQ2(fn(SSF_F_LOG, I_(1000)), I_(3));
    EQ2(fn2(SSF_F_LOG, Q("1/8"), I_(2)), I_(-3));
    EQ2(fn2(SSF_F_LOG, I_(10), I_(2)), frac(I_(1), fn2(SSF_F_LOG, I_(2), I_(10))));
    EQ2(pw(leaf(SSF_N_E), fn(SSF_F_LN, I_(5))), I_(5));
    EQ2(fn(SSF_F_EXP, I_(1)), leaf(SSF_N_E));
    EQ2(MUL(Q("9/4"), leaf(SSF_N_PI)), MUL(frac(I_(9), I_(4)), leaf(SSF_N_PI))); /* #29 */
    NE2(MUL(Q("9/4"), leaf(SSF_N_PI)), MUL(Q("9/5"), leaf(SSF_N_PI)));
    EQ2(pw(leaf(SSF_N_I), I_(2)), I_(-1));
    EQ2(sub(I_(14), leaf(SSF_N_I)), ADD(I_(14), neg(leaf(SSF_N_I))));
    EQ2(fn(SSF_F_SIN, leaf(SSF_N_PI)), I_(0)); /* a ball around zero, accepted at 4P */
    EQ2(fn(SSF_F_FLOOR, leaf(SSF_N_PI)), I_(3));
    EQ2(fn(SSF_F_ABS, I_(-3)), I_(3));
    EQ2(fn2(SSF_F_BINOM, I_(5), I_(2)), I_(10));
    EQ2(fn2(SSF_F_GCD, I_(12), I_(18)), I_(6));
    EQ2(fn2(SSF_F_LCM, I_(4), I_(6)), I_(12));
    EQ2(MUL(x, pw(x, I_(-1))), I_(1));
    /* radicals of negatives and of symbols (negative at the signed points) */
    EQ2(sqrt_(I_(-4)), MUL(I_(2), leaf(SSF_N_I)));
    EQ2(MUL(I_(2), sqrt_(x)), sqrt_(MUL(I_(4), x)));
    NE2(sqrt_(x), sqrt_(MUL(I_(2), x)));
    /* (-1)^k by k's parity */
    EQ2(pw(I_(-1), I_(3)), I_(-1));
    EQ2(pw(I_(-1), I_(2022)), I_(1));
    NE2(pw(I_(-1), I_(2023)), I_(1));
    /* floor and ceiling, exact and of balls, of either sign */
    EQ2(fn(SSF_F_CEIL, frac(I_(5), I_(2))), I_(3));
    EQ2(fn(SSF_F_CEIL, leaf(SSF_N_PI)), I_(4));
    EQ2(fn(SSF_F_FLOOR, neg(frac(I_(5), I_(2)))), I_(-3));
    EQ2(fn(SSF_F_CEIL, neg(frac(I_(5), I_(2)))), I_(-2));
    /* the modulus of a complex value */
    EQ2(fn(SSF_F_ABS, ADD(I_(3), MUL(I_(4), leaf(SSF_N_I)))), I_(5));
    NE2(fn(SSF_F_ABS, ADD(I_(1), leaf(SSF_N_I))), I_(1));
    /* a value that is not real at every point, positive ones too */
    NE2(x, ADD(x, leaf(SSF_N_I)));
    NE2(ADD(pw(x, I_(2)), I_(1)), pw(ADD(x, leaf(SSF_N_I)), I_(2)));
    /* binomials of a symbol, through the Gamma function */
    EQ2(fn2(SSF_F_BINOM, x, I_(2)), frac(MUL(x, ADD(x, I_(-1))), I_(2)));
    NE2(fn2(SSF_F_BINOM, x, I_(2)), frac(pw(x, I_(2)), I_(2)));
}

/* ---- §12 Math-Verify #14: tiny and huge exact values ---- */

static void test_tiny_values(void **state)
{
    (void)state;
    ssf_error why;
    NE2(frac(I_(1), fact(2004)), frac(I_(1), fact(2006))); /* #33 */
    check_opt(__LINE__, NULL, frac(I_(1), pw(I_(2), I_(99))), frac(I_(1), pw(I_(2), I_(98))),
              SSF_DIFFERENT, &why);
    assert_non_null(strstr(why.msg, "different rationals"));
    NE(frac(I_(1), pw(I_(2), I_(98))), frac(I_(1), pw(I_(2), I_(99))));
    EQ2(frac(I_(1), fact(2004)), frac(I_(1), MUL(I_(2004), fact(2003))));
    /* Beyond the exact factorial limit: arb_gamma decides with relative balls. */
    NE2(frac(I_(1), fact(30000)), frac(I_(1), fact(30001)));
    EQ2(frac(fact(30001), fact(30000)), I_(30001));
    /* n!! exactly (both parities, 0 and 1), then as a ball past the limit */
    EQ2(fn(SSF_F_DOUBLE_FACTORIAL, I_(6)), I_(48));
    EQ2(fn(SSF_F_DOUBLE_FACTORIAL, I_(7)), I_(105));
    EQ2(fn(SSF_F_DOUBLE_FACTORIAL, I_(0)), I_(1));
    EQ2(fn(SSF_F_DOUBLE_FACTORIAL, I_(1)), I_(1));
    NE2(fn(SSF_F_DOUBLE_FACTORIAL, I_(8)), fact(8));
    EQ2(MUL(fn(SSF_F_DOUBLE_FACTORIAL, I_(2001)), fn(SSF_F_DOUBLE_FACTORIAL, I_(2000))),
        fact(2001));
    EQ2(frac(fn(SSF_F_DOUBLE_FACTORIAL, I_(30002)), fn(SSF_F_DOUBLE_FACTORIAL, I_(30000))),
        I_(30002));
    EQ2(frac(fn(SSF_F_DOUBLE_FACTORIAL, I_(30001)), fn(SSF_F_DOUBLE_FACTORIAL, I_(29999))),
        I_(30001));
    NE2(fn(SSF_F_DOUBLE_FACTORIAL, I_(30001)), fn(SSF_F_DOUBLE_FACTORIAL, I_(30003)));
    EQ2(fn(SSF_F_DOUBLE_FACTORIAL, I_(30000)), MUL(pw(I_(2), I_(15000)), fact(15000)));
    EQ2(MUL(fn(SSF_F_DOUBLE_FACTORIAL, I_(30001)), fn(SSF_F_DOUBLE_FACTORIAL, I_(30000))),
        fact(30001));
    NE2(frac(I_(1), pw(I_(10), I_(100))), I_(0));
    NE2(ADD(leaf(SSF_N_PI), pw(I_(10), I_(-100))), leaf(SSF_N_PI)); /* caught at 2P */
}

/* ---- §11 #12: percent ---- */

static void test_percent(void **state)
{
    (void)state;
    ssf_equiv_options o = defaults();
    EQ2(pct(I_(28)), D("0.28"));
    EQ2(pct(I_(28)), Q("7/25"));
    NE2(pct(I_(28)), I_(28)); /* SSF_PERCENT_VALUE */
    EQ2(pct(D("12.5")), D("0.125"));
    o.percent = SSF_PERCENT_EITHER;
    EQ_O(&o, pct(I_(28)), I_(28));
    EQ_O(&o, I_(28), pct(I_(28)));
    EQ_O(&o, pct(I_(28)), D("0.28"));
    NE_O(&o, pct(I_(28)), I_(29));
}

/* ---- §11 #19-#21, #26, #32: sets, tuples, intervals, ± ---- */

static void test_sets(void **state)
{
    (void)state;
    ssf_equiv_options o = defaults();
    EQ2(SET(I_(-2), I_(1)), SET(I_(1), I_(-2))); /* #19 */
    EQ2(UNI(SET(I_(1), I_(3)), SET(I_(2), I_(4))), SET(I_(1), I_(2), I_(3), I_(4)));
    NE2(SET(I_(1), I_(2)), SET(I_(1), I_(3)));
    NE2(SET(I_(1331), I_(1728)), I_(1728)); /* #32 strict */
    o.strict_sets = 0;                      /* any-match: a pred subset passes */
    EQ_O(&o, SET(I_(1331), I_(1728)), I_(1728));
    NE_O(&o, SET(I_(1331), I_(1728)), I_(1729));
    NE_O(&o, I_(1728), SET(I_(1331), I_(1728))); /* but not a pred superset */
    EQ2(SET(I_(2), I_(2)), SET(I_(2)));          /* sets: duplicates collapse */
    EQ2(I_(5), SET(I_(5)));                      /* a value is a singleton */
    EQ2(SET(D("0.5"), sqrt_(I_(2))), SET(sqrt_(I_(2)), Q("1/2")));
    NE2(TUP(I_(3), I_(2)), TUP(I_(2), I_(3))); /* #20 */
    EQ2(TUP(I_(3), I_(2)), TUP(I_(3), I_(2)));
    NE2(TUP(I_(3), I_(2)), TUP(I_(3), I_(2), I_(1)));
    /* §8 #3: a gold tuple keeps the pred set's order; a gold set does not. */
    NE(TUP(I_(1), I_(2)), SET(I_(2), I_(1)));
    EQ(SET(I_(1), I_(2)), TUP(I_(2), I_(1)));
    EQ(TUP(I_(1), I_(2)), SET(I_(1), I_(2)));
    /* #26: ± as a set */
    EQ2(pm(I_(2021), NULL), SET(I_(-2021), I_(2021)));
    NE2(pm(I_(2021), NULL), I_(2021));
    EQ2(pm(I_(1), sqrt_(I_(2))), SET(sub(I_(1), sqrt_(I_(2))), ADD(I_(1), sqrt_(I_(2)))));
    NE2(pm(I_(1), sqrt_(I_(2))), SET(I_(1), sqrt_(I_(2))));
    /* inside a set, a ± b is two of its elements */
    EQ2(SET(pm(I_(1), sqrt_(I_(5))), I_(-2)),
        SET(I_(-2), sub(I_(1), sqrt_(I_(5))), ADD(I_(1), sqrt_(I_(5)))));
    NE2(SET(pm(I_(1), sqrt_(I_(5))), I_(-2)), SET(I_(-2), ADD(I_(1), sqrt_(I_(5)))));
    /* a ± inside an expression: \frac{1 \pm \sqrt5}{2} is its two readings */
    ssf_node *half_pm = frac(pm(I_(1), sqrt_(I_(5))), I_(2));
    EQ2(half_pm, SET(frac(ADD(I_(1), sqrt_(I_(5))), I_(2)), frac(sub(I_(1), sqrt_(I_(5))), I_(2))));
    EQ2(half_pm, pm(Q("1/2"), frac(sqrt_(I_(5)), I_(2))));
    NE2(half_pm, frac(pm(I_(-1), sqrt_(I_(5))), I_(2)));
    NE2(half_pm, frac(ADD(I_(1), sqrt_(I_(5))), I_(2)));
    EQ2(MUL(I_(2), pm(I_(1), sqrt_(I_(5)))), pm(I_(2), MUL(I_(2), sqrt_(I_(5)))));
    EQ2(neg(pm(I_(1), sqrt_(I_(5)))), pm(I_(-1), sqrt_(I_(5))));
    EQ2(SET(half_pm, I_(-2)), SET(I_(-2), pm(Q("1/2"), frac(sqrt_(I_(5)), I_(2)))));
}

static void test_intervals(void **state)
{
    (void)state;
    ssf_equiv_options o = defaults();
    ssf_node *h1 = neg(frac(I_(1), I_(2))), *h2 = neg(Q("1/2"));
    EQ2(UNI(iv(I_(-1), h1, 0, 1), iv(h1, I_(0), 1, 1)), /* #21 */
        UNI(iv(I_(-1), h2, 0, 1), iv(h2, I_(0), 1, 1)));
    NE2(UNI(iv(I_(-1), h1, 0, 1), iv(h1, I_(0), 1, 1)), iv(I_(-1), I_(0), 0, 1));
    NE2(iv(I_(0), I_(9), 1, 1), iv(I_(0), I_(9), 0, 1));
    NE2(iv(I_(0), I_(9), 1, 1), iv(I_(0), I_(8), 1, 1));
    o.float_rounding = 2; /* endpoint tolerance through the decimal rule */
    EQ_O(&o, iv(D("0.6"), D("2.6667"), 1, 0), iv(Q("3/5"), Q("8/3"), 1, 0));
    NE(iv(D("0.6"), D("2.6667"), 1, 0), iv(Q("3/5"), Q("8/3"), 1, 0));
    /* An open interval against a pair compares as a tuple. */
    EQ2(iv(I_(1), I_(3), 1, 1), TUP(I_(1), I_(3)));
    EQ2(iv(I_(1), I_(3), 1, 1), SET(I_(1), I_(3)));
    NE2(iv(I_(1), I_(3), 0, 0), TUP(I_(1), I_(3)));
    NE2(iv(I_(1), I_(3), 0, 1), TUP(I_(1), I_(3))); /* half-open is no pair */
    NE2(iv(I_(1), I_(3), 1, 0), SET(I_(1), I_(3)));
    NE2(iv(I_(1), I_(3), 0, 0), I_(2));
    /* Adjacent pieces merge. */
    EQ2(UNI(iv(I_(0), I_(1), 0, 1), iv(I_(1), I_(2), 0, 0)), iv(I_(0), I_(2), 0, 0));
    EQ2(UNI(iv(I_(0), I_(1), 1, 1), SET(I_(1))), iv(I_(0), I_(1), 1, 0));
    EQ2(UNI(iv(I_(0), I_(1), 1, 1), SET(I_(0))), iv(I_(0), I_(1), 0, 1));
    NE2(UNI(iv(I_(0), I_(1), 0, 1), iv(I_(1), I_(2), 1, 0)), iv(I_(0), I_(2), 0, 0));
    EQ2(iv(neg(inf()), I_(0), 1, 1), iv(neg(inf()), I_(0), 1, 1));
    NE2(iv(neg(inf()), I_(0), 1, 1), iv(neg(inf()), I_(1), 1, 1));
    NE2(iv(I_(0), inf(), 1, 1), iv(I_(0), neg(inf()), 1, 1));
}

/* ---- §11 #22-#25, #36, #37: relations ---- */

static void test_relations(void **state)
{
    (void)state;
    ssf_node *x = S("x"), *y = S("y"), *z = S("z"), *a = S("a");
    ssf_equiv_options o = defaults();
    /* #22: a gold inequality against an interval (asymmetric by design). */
    ssf_node *chain = AND(rel(SSF_REL_LT, I_(-793), a), rel(SSF_REL_LT, a, I_(10)));
    EQ(chain, iv(I_(-793), I_(10), 1, 1));
    EQ(chain, TUP(I_(-793), I_(10)));
    EQ(rel(SSF_REL_LT, rel(SSF_REL_LT, I_(-793), a), I_(10)), iv(I_(-793), I_(10), 1, 1));
    NE(iv(I_(-793), I_(10), 1, 1), chain);
    NE(chain, iv(I_(-793), I_(10), 0, 1));
    EQ(rel(SSF_REL_GE, x, I_(2)), iv(I_(2), inf(), 0, 1));
    EQ(rel(SSF_REL_LE, I_(2), x), iv(I_(2), inf(), 0, 1));
    NE(rel(SSF_REL_GE, x, I_(2)), iv(I_(2), inf(), 1, 1));
    EQ(rel(SSF_REL_EQ, x, I_(3)), SET(I_(3)));
    EQ(rel(SSF_REL_NE, x, I_(3)), UNI(iv(neg(inf()), I_(3), 1, 1), iv(I_(3), inf(), 1, 1)));
    /* #23 flipped relations */
    EQ2(rel(SSF_REL_LE, x, I_(5)), rel(SSF_REL_GE, I_(5), x));
    EQ2(rel(SSF_REL_LT, x, I_(1)), rel(SSF_REL_GT, neg(x), I_(-1)));
    NE2(rel(SSF_REL_GT, x, I_(5)), rel(SSF_REL_LT, x, I_(5)));
    NE2(rel(SSF_REL_LT, x, I_(5)), rel(SSF_REL_LE, x, I_(5)));
    EQ2(rel(SSF_REL_LT, MUL(I_(2), x), I_(4)), rel(SSF_REL_LT, x, I_(2)));
    NE2(rel(SSF_REL_LT, x, I_(2)), rel(SSF_REL_LT, neg(x), I_(-2)));
    /* #24 equivalent equations */
    ssf_node *l = ADD(MUL(I_(34), x), MUL(I_(45), y), neg(MUL(I_(20), z)), I_(100));
    ssf_node *r = ADD(MUL(I_(-34), x), MUL(I_(-45), y), MUL(I_(20), z), I_(-100));
    EQ2(rel(SSF_REL_EQ, l, I_(0)), rel(SSF_REL_EQ, r, I_(0)));
    EQ2(rel(SSF_REL_EQ, ADD(MUL(I_(2), x), MUL(I_(4), y), I_(-3)), I_(0)),
        rel(SSF_REL_EQ, y, ADD(MUL(Q("-1/2"), x), Q("3/4"))));
    NE2(rel(SSF_REL_EQ, x, I_(1)), rel(SSF_REL_EQ, pw(x, I_(2)), I_(1)));
    EQ2(rel(SSF_REL_EQ, x, I_(2)), rel(SSF_REL_EQ, I_(2), x));
    NE2(rel(SSF_REL_EQ, I_(2), I_(2)), rel(SSF_REL_EQ, I_(3), I_(4))); /* no symbols */
    EQ2(rel(SSF_REL_EQ, fn(SSF_F_SIN, x), Q("1/2")),
        rel(SSF_REL_EQ, MUL(I_(2), fn(SSF_F_SIN, x)), I_(1))); /* ratio of balls */
    NE2(rel(SSF_REL_EQ, x, I_(2)), rel(SSF_REL_EQ, x, I_(3)));
    /* Chains compare pairwise. */
    EQ2(AND(rel(SSF_REL_LT, I_(0), x), rel(SSF_REL_LT, x, I_(1))),
        AND(rel(SSF_REL_GT, x, I_(0)), rel(SSF_REL_LT, x, I_(1))));
    NE2(AND(rel(SSF_REL_LT, I_(0), x), rel(SSF_REL_LT, x, I_(1))),
        AND(rel(SSF_REL_LT, I_(0), x), rel(SSF_REL_LT, x, I_(2))));
    NE2(AND(rel(SSF_REL_LT, I_(0), x), rel(SSF_REL_LT, x, I_(1))), rel(SSF_REL_LT, x, I_(1)));
    /* #25 assignment unwrapping */
    EQ(I_(11), rel(SSF_REL_EQ, x, I_(11)));
    EQ(rel(SSF_REL_EQ, S("k"), I_(1)), I_(1));
    NE(rel(SSF_REL_EQ, ADD(MUL(I_(2), x), z), I_(1)), I_(1));
    EQ(I_(1), rel(SSF_REL_EQ, ADD(MUL(I_(2), x), z), I_(1))); /* pred: any equation unwraps */
    EQ(rel(SSF_REL_EQ, TUP(S("p"), S("q")), TUP(I_(3), I_(2))), TUP(I_(3), I_(2))); /* #20 */
    EQ(I_(5), rel(SSF_REL_EQ, rel(SSF_REL_EQ, x, ADD(I_(2), I_(3))), I_(5)));
    NE(rel(SSF_REL_LT, x, I_(5)), I_(5));
    /* a pred inequality is no value, whichever the relation */
    NE(I_(5), rel(SSF_REL_GT, x, I_(5)));
    NE(I_(5), rel(SSF_REL_LE, x, I_(5)));
    NE(I_(5), rel(SSF_REL_NE, x, I_(5)));
    /* a gold |x| = 3 is x = ±3, not an assignment to a name */
    NE(rel(SSF_REL_EQ, fn(SSF_F_ABS, x), I_(3)), I_(3));
    NE(rel(SSF_REL_EQ, fn(SSF_F_SIN, x), Q("1/2")), Q("1/2"));
    EQ2(rel(SSF_REL_NE, x, I_(2)), rel(SSF_REL_NE, I_(2), x));
    o.unwrap_assignments = 0;
    NE_O(&o, rel(SSF_REL_EQ, S("k"), I_(1)), I_(1));
    NE_O(&o, I_(11), rel(SSF_REL_EQ, x, I_(11)));
    /* #36 ratios: V_1 : V_2 = 11 : 21 */
    EQ(rel(SSF_REL_EQ, frac(S("V_1"), S("V_2")), frac(I_(11), I_(21))), frac(I_(11), I_(21)));
    NE2(frac(I_(12), I_(21)), frac(I_(11), I_(21)));
    assert_int_not_equal(ssf_equiv(frac(I_(12), I_(0)), frac(I_(1), I_(0)), NULL, NULL),
                         SSF_EQUAL); /* 12:00 vs 1:00 read as ratios */
    /* #37 x = 1/3 ≈ 0.33: the exact part counts, as AND or as a nested chain. */
    ssf_node *third = frac(I_(1), I_(3));
    EQ(third, AND(rel(SSF_REL_EQ, x, third), rel(SSF_REL_APPROX, third, D("0.33"))));
    EQ(third, rel(SSF_REL_APPROX, rel(SSF_REL_EQ, x, third), D("0.33")));
    NE(third, rel(SSF_REL_APPROX, x, D("0.33")));
    EQ(D("0.33"), rel(SSF_REL_APPROX, x, D("0.33")));
}

/* ---- §11 #17, #29, #35, #38: names, texts, functions ---- */

static void test_names(void **state)
{
    (void)state;
    EQ2(T("Evelyn"), T("evelyn"));
    EQ2(T("odd"), T(" Odd "));
    NE2(T("odd"), T("even"));
    EQ2(T("Evelyn"), MUL(leaf(SSF_N_E), S("v"), leaf(SSF_N_E), S("l"), S("y"), S("n")));
    EQ2(T("answer"), MUL(S("a"), S("n"), S("s"), S("w"), leaf(SSF_N_E), S("r")));
    NE2(S("d"), T("E")); /* #17 */
    EQ2(T("e"), leaf(SSF_N_E));
    EQ2(S("e"), leaf(SSF_N_E)); /* #29 e = E */
    EQ2(T("13"), I_(13));
    NE2(T("13"), I_(14));
    NE2(T("odd"), I_(1));
    EQ2(S("Alpha"), S("alpha"));             /* names longer than a letter: any case */
    NE2(S("X"), S("x"));                     /* one letter: case matters */
    EQ2(S("204_5"), S("204_5"));             /* #35 */
    NE2(S("204_5"), I_(54));                 /* no base conversion */
    NE2(ufn("f", S("x")), ufn("f", S("y"))); /* #38 strict */
    NE2(ufn("f", S("x")), ufn("g", S("x")));
    EQ2(ufn("f", MUL(I_(2), S("x"))), ufn("f", ADD(S("x"), S("x"))));
    EQ2(ADD(ufn("f", S("x")), I_(1)), ADD(I_(1), ufn("f", S("x"))));
    EQ2(ufn("f", sqrt_(I_(2))), ufn("f", pw(I_(2), Q("1/2"))));
    /* infinity */
    EQ2(inf(), inf());
    EQ2(neg(inf()), neg(inf()));
    NE2(inf(), neg(inf()));
    NE2(inf(), I_(5));
}

/* ---- §11 #27: matrices ---- */

static void test_matrices(void **state)
{
    (void)state;
    ssf_node *a[4] = {I_(1), D("0.5"), I_(0), sqrt_(I_(2))};
    ssf_node *b[4] = {I_(1), Q("1/2"), I_(0), pw(I_(2), Q("1/2"))};
    ssf_node *c[4] = {I_(1), Q("1/2"), I_(1), pw(I_(2), Q("1/2"))};
    EQ2(ssf_node_matrix(A, a, 2, 2), ssf_node_matrix(A, b, 2, 2));
    NE2(ssf_node_matrix(A, a, 2, 2), ssf_node_matrix(A, c, 2, 2));
    NE2(ssf_node_matrix(A, a, 2, 2), ssf_node_matrix(A, b, 1, 4));
    ssf_node *v[3] = {I_(1), I_(2), I_(3)};
    EQ2(ssf_node_matrix(A, v, 3, 1), TUP(I_(1), I_(2), I_(3)));
    NE2(ssf_node_matrix(A, v, 3, 1), I_(1));
    ssf_node *m[4] = {I_(1), I_(2), I_(3), I_(4)};
    NE2(ssf_node_matrix(A, m, 2, 2), TUP(I_(1), I_(2), I_(3), I_(4))); /* only a vector is */
    /* a scalar times a matrix is the matrix of the products */
    ssf_node *thirds[2] = {Q("1/3"), Q("2/3")}, *ints[2] = {I_(1), I_(2)},
             *other[2] = {I_(1), I_(3)};
    ssf_node *col = ssf_node_matrix(A, thirds, 2, 1);
    EQ2(col, MUL(Q("1/3"), ssf_node_matrix(A, ints, 2, 1)));
    EQ2(col, frac(ssf_node_matrix(A, ints, 2, 1), I_(3)));
    NE2(col, MUL(Q("1/3"), ssf_node_matrix(A, other, 2, 1)));
    ssf_node *negs[2] = {I_(-1), I_(-2)};
    EQ2(ssf_node_matrix(A, negs, 2, 1), neg(ssf_node_matrix(A, ints, 2, 1)));
    /* a matrix's inverse is no scalar: M^{-1} (1, 2) is a product of matrices
     * (it was read as the cells M^{-1} * 1 and M^{-1} * 2) */
    ssf_node *inv = ssf_node_binary(A, SSF_N_POW, ssf_node_matrix(A, m, 2, 2), I_(-1));
    NE2(ssf_node_matrix(A, ints, 2, 1), MUL(inv, ssf_node_matrix(A, ints, 2, 1)));
}

/* ---- hostile inputs and the budget ---- */

static void test_hostile(void **state)
{
    (void)state;
    ssf_error why;
    ssf_node *tower = pw(I_(10), pw(I_(10), pw(I_(10), I_(10))));
    double t0 = (ssf_monotonic_seconds() * 1e3);
    /* The verdicts are pinned: a tower too large for balls is unknown
     * against a number (never a wrong "equal"), and equal to itself by
     * structure.  A change that decides more of them updates these. */
    ssf_verdict v = ssf_equiv(tower, I_(1), NULL, &why);
    double t1 = (ssf_monotonic_seconds() * 1e3);
    assert_int_equal(v, SSF_UNKNOWN);
    assert_true(t1 - t0 < 100);
    v = ssf_equiv(I_(1), tower, NULL, &why);
    assert_int_equal(v, SSF_UNKNOWN);
    ssf_node *tower2 = pw(I_(10), pw(I_(10), pw(I_(10), I_(10))));
    v = ssf_equiv(tower, tower2, NULL, &why);
    assert_int_equal(v, SSF_EQUAL);
    v = ssf_equiv(tower, ADD(tower2, I_(0)), NULL, &why);
    assert_int_equal(v, SSF_UNKNOWN);
    v = ssf_equiv(tower, D("1.5"), NULL, &why);
    assert_int_equal(v, SSF_UNKNOWN);
    assert_true((ssf_monotonic_seconds() * 1e3) - t1 < 500);
    /* Huge but finite powers are decided with balls. */
    NE2(pw(I_(10), pw(I_(10), I_(10))), pw(I_(10), pw(I_(10), I_(9))));
    v = ssf_equiv(pw(I_(2), pw(I_(10), I_(100))), I_(0), NULL, &why); /* exp() given up */
    assert_true(v != SSF_EQUAL);
    NE(fn(SSF_F_FACTORIAL, pw(I_(10), I_(12))), I_(1));
    /* A 2000-node sum: 1 + 2 + ... + 2000. */
    ssf_node **k = malloc(2000 * sizeof *k);
    for (int i = 0; i < 2000; i++)
        k[i] = I_(i + 1);
    ssf_node *sum = ssf_node_list(A, SSF_N_ADD, k, 2000);
    for (int i = 0; i < 2000; i++)
        k[i] = MUL(I_(i + 1), S("x"));
    ssf_node *xsum = ssf_node_list(A, SSF_N_ADD, k, 2000);
    free(k);
    EQ2(sum, I_(2001000));
    NE2(sum, I_(2001001));
    EQ2(xsum, MUL(I_(2001000), S("x")));
    /* The budget ends a comparison with UNKNOWN "over budget". */
    ssf_equiv_options o = defaults();
    o.points = 0; /* taken as 1: with no point, nothing could tell them apart */
    NE_O(&o, pw(S("x"), I_(2)), S("x"));
    o = defaults();
    o.max_steps = 500;
    v = ssf_equiv(sum, I_(2001000), &o, &why);
    assert_int_equal(v, SSF_UNKNOWN);
    assert_non_null(strstr(why.msg, "over budget"));
    /* Sets: gold {1..60} against {60..1} is 3,600 pairs: within the default
     * budget equal, and a 61 in place of 1 found; over 500 steps UNKNOWN. */
    ssf_node *up[60], *down[60];
    for (int i = 0; i < 60; i++) {
        up[i] = I_(i + 1);
        down[i] = I_(60 - i);
    }
    ssf_node *ups = ssf_node_list(A, SSF_N_SET, up, 60);
    ssf_node *downs = ssf_node_list(A, SSF_N_SET, down, 60);
    EQ2(ups, downs);
    v = ssf_equiv(ups, downs, &o, &why);
    assert_int_equal(v, SSF_UNKNOWN);
    assert_non_null(strstr(why.msg, "over budget"));
    up[0] = I_(61);
    NE2(ssf_node_list(A, SSF_N_SET, up, 60), downs);
    /* Deep nesting returns, no stack overflow. */
    ssf_node *deep = I_(1);
    for (int i = 0; i < 5000; i++)
        deep = neg(deep);
    v = ssf_equiv(deep, I_(2), NULL, &why);
    assert_true(v != SSF_EQUAL);
    /* Undefined values never compare equal to a number. */
    v = ssf_equiv(frac(I_(1), I_(0)), I_(5), NULL, &why);
    assert_int_equal(v, SSF_UNKNOWN);
    v = ssf_equiv(NULL, I_(5), NULL, &why);
    assert_int_equal(v, SSF_UNKNOWN);
}

/* ---- threads: no shared state, the same verdicts everywhere ---- */

static void *worker(void *arg)
{
    int *ok = arg;
    ssf_arena *a = ssf_arena_new(100000);
    ssf_node *x = ssf_node_symbol(a, SSF_N_SYMBOL, "x", 1);
    ssf_node *one = ssf_node_int(a, 1), *two = ssf_node_int(a, 2);
    ssf_node *f1 =
        ssf_node_func(a, SSF_F_FACTORIAL, NULL, (ssf_node *[]){ssf_node_int(a, 2004)}, 1);
    ssf_node *f2 =
        ssf_node_func(a, SSF_F_FACTORIAL, NULL, (ssf_node *[]){ssf_node_int(a, 2006)}, 1);
    ssf_node *sq = ssf_node_binary(a, SSF_N_POW, ssf_node_binary(a, SSF_N_ADD, x, one), two);
    ssf_node *ex = ssf_node_list(a, SSF_N_ADD,
                                 (ssf_node *[]){ssf_node_binary(a, SSF_N_POW, x, two),
                                                ssf_node_binary(a, SSF_N_MUL, two, x), one},
                                 3);
    ssf_node *pi = ssf_node_leaf(a, SSF_N_PI);
    ssf_node *pid = ssf_node_number_text(a, "3.141593", 8);
    *ok = 1;
    for (int i = 0; i < 20; i++) {
        ssf_error why;
        *ok &= ssf_equiv(ssf_node_div(a, one, f1), ssf_node_div(a, one, f2), NULL, &why) ==
               SSF_DIFFERENT;
        *ok &= ssf_equiv(sq, ex, NULL, &why) == SSF_EQUAL;
        *ok &= ssf_equiv(pi, pid, NULL, &why) == SSF_EQUAL;
        char *k = ssf_canonical_key(ssf_node_binary(a, SSF_N_POW, two, ssf_node_int(a, -1)), NULL);
        *ok &= strcmp(k, "q:1/2") == 0;
        free(k);
    }
    ssf_arena_free(a);
    ssf_equiv_thread_done(); /* a thread's FLINT caches are its own to free */
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[4];
    int ok[4] = {0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &ok[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(ok[i]);
    }
}

/* ---- reasons and keys ---- */

static void test_reasons(void **state)
{
    (void)state;
    ssf_error why;
    check_opt(__LINE__, NULL, D("0.5"), frac(I_(2), I_(4)), SSF_EQUAL, &why);
    assert_non_null(strstr(why.msg, "0.5"));
    ssf_equiv_options o = defaults();
    o.float_rounding = -1;
    check_opt(__LINE__, &o, frac(I_(1), I_(2)), frac(I_(2), I_(4)), SSF_EQUAL, &why);
    assert_string_equal(why.msg, "equal as rationals: 1/2");
    check_opt(__LINE__, NULL, frac(I_(1), I_(2)), frac(I_(1), I_(3)), SSF_DIFFERENT, &why);
    assert_string_equal(why.msg, "different rationals: 1/2 vs 1/3");
    check_opt(__LINE__, NULL, pw(S("x"), I_(2)), S("x"), SSF_DIFFERENT, &why);
    assert_non_null(strstr(why.msg, "differ at x="));
    check_opt(__LINE__, NULL, pw(ADD(S("x"), I_(1)), I_(2)),
              ADD(pw(S("x"), I_(2)), MUL(I_(2), S("x")), I_(1)), SSF_EQUAL, &why);
    assert_string_equal(why.msg, "equal at 4 points");
    check_opt(__LINE__, NULL, leaf(SSF_N_INFINITY), rel(SSF_REL_EQ, S("x"), leaf(SSF_N_PI)),
              SSF_DIFFERENT, &why);
    assert_null(strchr(why.msg, '\n'));
}

static void check_key(const ssf_node *n, const char *want)
{
    char *k = ssf_canonical_key(n, NULL);
    int same = strcmp(k, want) == 0;
    if (!same) print_error("key %s, want %s\n", k, want);
    free(k);
    assert_true(same);
}

/* Whether two trees key alike. */
static int same_key(const ssf_node *a, const ssf_node *b)
{
    char *ka = ssf_canonical_key(a, NULL), *kb = ssf_canonical_key(b, NULL);
    int same = strcmp(ka, kb) == 0;
    free(ka);
    free(kb);
    return same;
}

/* A relation keys as the comparison finds relations equal, up to a factor
 * (a positive one for an inequality, whose sides may be swapped): the
 * line 2x - y + 3 = 0 votes with 2y = 4x + 6 and y = 2x + 3 (not with
 * z = 2x + 3), x <= 5 with 5 >= x and 2x <= 10, not with x < 5 or x >= 5.
 * An assignment of a value votes as the value, as it grades against a
 * gold value: x = 11 with 11, x = y = 2 with 2. */
static void test_relation_keys(void)
{
    ssf_node *x = S("x"), *y = S("y");
    ssf_node *line = rel(SSF_REL_EQ, ADD(sub(MUL(I_(2), x), y), I_(3)), I_(0));
    assert_true(same_key(line, rel(SSF_REL_EQ, MUL(I_(2), y), ADD(MUL(I_(4), x), I_(6)))));
    assert_false(same_key(line, rel(SSF_REL_EQ, MUL(I_(2), y), ADD(MUL(I_(4), x), I_(8)))));
    assert_false(same_key(line, rel(SSF_REL_NE, MUL(I_(2), y), ADD(MUL(I_(4), x), I_(6)))));
    ssf_node *le = rel(SSF_REL_LE, x, I_(5));
    assert_true(same_key(le, rel(SSF_REL_GE, I_(5), x)));
    assert_true(same_key(le, rel(SSF_REL_LE, MUL(I_(2), x), I_(10))));
    assert_false(same_key(le, rel(SSF_REL_LT, x, I_(5))));
    assert_false(same_key(le, rel(SSF_REL_GE, x, I_(5))));
    assert_false(same_key(le, rel(SSF_REL_LE, MUL(I_(-2), x), I_(-10))));
    char *k = ssf_canonical_key(line, NULL);
    assert_true(strncmp(k, "r=:", 3) == 0);
    free(k);
    ssf_node *assigned = rel(SSF_REL_EQ, y, ADD(MUL(I_(2), x), I_(3)));
    assert_true(same_key(assigned, line));
    assert_false(same_key(assigned, rel(SSF_REL_EQ, S("z"), ADD(MUL(I_(2), x), I_(3)))));
    assert_true(same_key(rel(SSF_REL_EQ, x, I_(11)), I_(11)));
    assert_true(same_key(AND(rel(SSF_REL_EQ, x, y), rel(SSF_REL_EQ, y, I_(2))), I_(2)));
    k = ssf_canonical_key(AND(rel(SSF_REL_EQ, x, y), rel(SSF_REL_LE, y, I_(2))), NULL);
    assert_true(strncmp(k, "(and", 4) == 0); /* a chain keys by its structure */
    free(k);
}

static void test_keys(void **state)
{
    (void)state;
    check_key(D("0.5"), "q:1/2");
    check_key(frac(I_(1), I_(2)), "q:1/2");
    check_key(frac(I_(2), I_(4)), "q:1/2");
    check_key(pct(I_(50)), "q:1/2");
    check_key(sqrt_(I_(4)), "q:2");
    check_key(fn(SSF_F_COS, I_(0)), "q:1");
    check_key(fn2(SSF_F_LOG, I_(8), I_(2)), "q:3");
    check_key(fn(SSF_F_LOG, I_(100)), "q:2");
    check_key(T(" Odd"), "t:odd");
    check_key(SET(I_(2), frac(I_(1), I_(2)), I_(2)), "{q:1/2,q:2}");
    check_key(TUP(I_(2), I_(1)), "(q:2,q:1)");
    check_key(iv(I_(0), I_(1), 1, 0), "(q:0,q:1]");
    check_key(pm(I_(3), NULL), "{q:-3,q:3}");
    check_key(SET(pm(I_(1), I_(2)), I_(5)), "{q:-1,q:3,q:5}"); /* a ± element is two */
    check_key(frac(pm(I_(1), I_(3)), I_(2)), "{q:-1,q:2}");
    check_key(SET(frac(pm(I_(1), I_(3)), I_(2)), I_(5)), "{q:-1,q:2,q:5}");
    /* a matrix votes cell by cell, a scalar times one as the products, as
     * they compare (\frac13 (1, 2) voted apart from (1/3, 2/3)); a vector
     * as the tuple it equals, unless vectors_as_tuples is off */
    ssf_node *ones[2] = {I_(1), I_(2)}, *thirds[2] = {frac(I_(1), I_(3)), Q("2/3")};
    ssf_node *cells[4] = {I_(1), I_(2), I_(3), I_(4)};
    check_key(ssf_node_matrix(A, thirds, 2, 1), "(q:1/3,q:2/3)");
    check_key(MUL(Q("1/3"), ssf_node_matrix(A, ones, 1, 2)), "(q:1/3,q:2/3)");
    check_key(ssf_node_matrix(A, cells, 2, 2), "m2x2(q:1,q:2,q:3,q:4)");
    ssf_equiv_options apart;
    ssf_equiv_options_default(&apart);
    apart.vectors_as_tuples = 0;
    char *k = ssf_canonical_key(ssf_node_matrix(A, thirds, 2, 1), &apart);
    assert_string_equal(k, "m2x1(q:1/3,q:2/3)");
    free(k);
    /* in free symbols: the values at the signed points, so forms that are
     * equal vote together and |x| does not vote with x */
    char *a = ssf_canonical_key(ADD(S("x"), I_(1)), NULL);
    char *b = ssf_canonical_key(ADD(I_(1), S("x")), NULL);
    assert_true(strncmp(a, "f:", 2) == 0);
    assert_string_equal(a, b);
    free(a);
    free(b);
    a = ssf_canonical_key(MUL(I_(2), S("x")), NULL);
    b = ssf_canonical_key(MUL(S("x"), I_(2)), NULL);
    assert_string_equal(a, b);
    free(a);
    free(b);
    a = ssf_canonical_key(fn(SSF_F_ABS, S("x")), NULL);
    b = ssf_canonical_key(S("x"), NULL);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    a = ssf_canonical_key(ADD(I_(1), leaf(SSF_N_I)), NULL);
    b = ssf_canonical_key(sub(I_(1), leaf(SSF_N_I)), NULL);
    char *c = ssf_canonical_key(I_(1), NULL);
    assert_string_not_equal(a, b); /* conjugates do not vote together */
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
    a = ssf_canonical_key(sqrt_(I_(2)), NULL);
    b = ssf_canonical_key(frac(sqrt_(I_(8)), I_(2)), NULL);
    assert_string_equal(a, b);
    assert_true(strncmp(a, "n:1.414213562373095048", 22) == 0);
    free(a);
    free(b);
    a = ssf_canonical_key(frac(I_(1), fact(2004)), NULL);
    b = ssf_canonical_key(frac(I_(1), fact(2006)), NULL);
    assert_true(strncmp(a, "h:", 2) == 0); /* a huge exact value keys by its digest */
    assert_string_not_equal(a, b);
    free(a);
    free(b);
    test_relation_keys();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decimal_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_algebra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiny_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_percent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intervals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matrices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reasons, setup, teardown),
        cmocka_unit_test(test_threads),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    flint_cleanup(); /* FLINT's mpz pool and Arb's caches, so leak checkers see none */
    return failed;
}
