/*
 * equiv.c - deciding whether two answer trees are mathematically equal.
 *
 * The rules run in the order of the reference graders (grading.md §6):
 * assignment unwrapping, relation->set conversion, relation vs relation,
 * containers, names and texts, then numbers.  Numbers are compared exactly
 * when both sides evaluate to rationals (free symbols are replaced by
 * rational points, so polynomials and rational functions stay exact), and
 * with Arb balls otherwise: disjoint balls prove "different", balls that
 * overlap tightly at two precisions are taken as "equal".  Only the
 * decimal-literal rule of §7 rounds; everything else is exact, which is what
 * keeps 1/2004! and 1/2006! apart (Math-Verify #14).
 *
 * Nothing here is global: a comparison owns its context, its scratch arena
 * and its balls, so any number of threads may compare at once.
 */
#include "equiv.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flint/fmpq.h>
#include <flint/fmpz.h>

#include <acb.h>
#include <arb.h>

#define EXACT_MAX_BITS 1000000 /* larger exact values continue as balls */
#define EXACT_FAC_MAX 20000    /* n! exactly up to here (~250k bits), arb_gamma beyond */
#define EXACT_BINOM_MAX 100000
#define ROOT_MAX 1000      /* x^(p/q) through a q-th root for q up to here */
#define EXP_MAX_LOG2 40    /* exp(z) with |z| >= 2^40 is given up, not computed */
#define TRIG_MAX_LOG2 1024 /* trig of |z| >= 2^1024 needs that many bits of pi */
#define MAX_DEPTH 1000
#define TRIES 3      /* precisions P, 2P, 4P */
#define MAX_CHAIN 32 /* relations in one chain */
#define POINT_DEN 1000003
#define SCRATCH_NODES 100000

/* q and b point into qs and bs rather than being fmpq_t/acb_t members:
 * GCC 12 at -O2 takes FLINT's inline accessors (acb_imagref) on an array
 * member for the whole object and reports overflows that are not there.
 * A val is never copied by value. */
typedef struct val {
    int exact; /* q holds the value, else b does */
    fmpq *q;
    acb_ptr b;
    fmpq qs;
    acb_struct bs;
} val;

typedef struct ctx {
    const ssf_equiv_options *o;
    ssf_error *reason;
    ssf_arena *scratch; /* nodes the rules build (PM as a set, relation as interval) */
    size_t steps;
    int over;          /* the step budget is spent: everything answers UNKNOWN */
    int point;         /* index of the random point free symbols take */
    int signed_points; /* odd points negative, points 2 and up wider (numeric()) */
    int tr;            /* precision try: prec is P << tr */
    slong prec;
    char why[200]; /* why an evaluation failed */
} ctx;

/* Field by field (fields added to ctx are set here too): zeroing all of
 * why is a `rep stos` per comparison, and only its first byte matters. */
static void ctx_init(ctx *c, const ssf_equiv_options *o, ssf_error *reason)
{
    c->o = o;
    c->reason = reason;
    c->scratch = NULL;
    c->steps = 0;
    c->over = c->point = c->tr = c->signed_points = 0;
    c->prec = 0;
    c->why[0] = '\0';
}

/* snprintf(dst, size, "%s", src) without the formatting machinery. */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Whether fmt converts nothing but strings (%s). */
static int only_strings(const char *fmt)
{
    for (const char *p = strchr(fmt, '%'); p; p = strchr(p + 2, '%'))
        if (p[1] != 's') return 0;
    return 1;
}

/* Text and %s only, as vsnprintf writes them (cut to the buffer, NULL as
 * "(null)"), without its machinery. */
static void print_strings(char *out, size_t size, const char *fmt, va_list ap)
{
    size_t n = 0;
    for (const char *p = fmt; *p && n + 1 < size;) {
        if (*p != '%') {
            out[n++] = *p++;
            continue;
        }
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        while (*s && n + 1 < size)
            out[n++] = *s++;
        p += 2;
    }
    out[n] = '\0';
}

/* Every comparison sets a reason: the formats are nearly all text and
 * strings, which print_strings writes far faster than vsnprintf. */
__attribute__((format(printf, 2, 3))) static void say(ctx *c, const char *fmt, ...)
{
    if (!c->reason) return;
    va_list ap;
    va_start(ap, fmt);
    if (only_strings(fmt))
        print_strings(c->reason->msg, sizeof c->reason->msg, fmt, ap);
    else
        vsnprintf(c->reason->msg, sizeof c->reason->msg, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static int fail(ctx *c, const char *fmt, ...)
{
    if (c->over) return -1; /* keep "over budget" as the reason */
    va_list ap;
    va_start(ap, fmt);
    if (only_strings(fmt))
        print_strings(c->why, sizeof c->why, fmt, ap);
    else
        vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static int step(ctx *c)
{
    if (c->over) return -1;
    if (++c->steps > c->o->max_steps) {
        snprintf(c->why, sizeof c->why, "over budget: more than %zu steps", c->o->max_steps);
        c->over = 1;
        return -1;
    }
    return 0;
}

static ssf_verdict over_budget(ctx *c)
{
    say(c, "%s", c->why);
    return SSF_UNKNOWN;
}

/* ---- values: an exact rational or a complex ball ---- */

static void val_init(val *v)
{
    v->exact = 1;
    v->q = &v->qs;
    v->b = &v->bs;
    fmpq_init(v->q);
    acb_init(v->b);
}

static void val_clear(val *v)
{
    fmpq_clear(v->q);
    acb_clear(v->b);
}

static void to_ball(ctx *c, val *v)
{
    if (!v->exact) return;
    acb_set_fmpq(v->b, v->q, c->prec);
    v->exact = 0;
}

static void set_exact_si(val *v, slong p, ulong q)
{
    fmpq_set_si(v->q, p, q);
    v->exact = 1;
}

/* Undefined (1/0, log 0) and given-up values are indeterminate balls: they
 * never prove anything, so comparisons with them end UNKNOWN. */
static void set_undefined(val *v)
{
    v->exact = 0;
    acb_indeterminate(v->b);
}

static flint_bitcnt_t q_bits(const fmpq_t q)
{
    return fmpz_bits(fmpq_numref(q)) + fmpz_bits(fmpq_denref(q));
}

/* Exact values that grew past the limit go on as balls rather than eat memory. */
static void fit(ctx *c, val *v)
{
    if (v->exact && q_bits(v->q) > EXACT_MAX_BITS) to_ball(c, v);
}

static void val_set(ctx *c, val *dst, const val *src)
{
    dst->exact = src->exact;
    if (src->exact)
        fmpq_set(dst->q, src->q);
    else
        acb_set(dst->b, src->b);
    (void)c;
}

static void val_add(ctx *c, val *a, val *b)
{
    if (a->exact && b->exact) {
        fmpq_add(a->q, a->q, b->q);
        fit(c, a);
        return;
    }
    to_ball(c, a);
    to_ball(c, b);
    acb_add(a->b, a->b, b->b, c->prec);
}

static void val_neg(val *a)
{
    if (a->exact)
        fmpq_neg(a->q, a->q);
    else
        acb_neg(a->b, a->b);
}

static void val_sub(ctx *c, val *a, val *b)
{
    val_neg(b);
    val_add(c, a, b);
    val_neg(b);
}

static void val_mul(ctx *c, val *a, val *b)
{
    if (a->exact && b->exact) {
        fmpq_mul(a->q, a->q, b->q);
        fit(c, a);
        return;
    }
    to_ball(c, a);
    to_ball(c, b);
    acb_mul(a->b, a->b, b->b, c->prec);
}

static void val_div(ctx *c, val *a, val *b)
{
    if (a->exact && b->exact) {
        if (fmpq_is_zero(b->q))
            set_undefined(a);
        else {
            fmpq_div(a->q, a->q, b->q);
            fit(c, a);
        }
        return;
    }
    to_ball(c, a);
    to_ball(c, b);
    acb_div(a->b, a->b, b->b, c->prec);
}

static int is_int(const val *v)
{
    return v->exact && fmpz_is_one(fmpq_denref(v->q));
}

/* ---- random points ---- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* A rational in [0.5, 2.5) with a prime denominator, the same for the same
 * key on both sides, different from point to point: away from the special
 * values (0, 1, perfect powers) where unequal expressions agree.  With
 * signed points, points 2 and up lie in [3, 23) and odd points are
 * negated: |x| and x, or |x-3| and 3-x, agree on [0.5, 2.5) alone. */
static void point_value(const ctx *c, uint64_t key, fmpq_t q)
{
    uint64_t r = mix64(key ^ mix64(c->o->seed + (uint64_t)c->point));
    int wide = c->signed_points && c->point >= 2;
    uint64_t lo = wide ? 3 * (uint64_t)POINT_DEN : POINT_DEN / 2;
    uint64_t span = (wide ? 20 : 2) * (uint64_t)POINT_DEN;
    slong num = (slong)(lo + r % span);
    fmpq_set_si(q, c->signed_points && (c->point & 1) ? -num : num, POINT_DEN);
}

/* At a negative point a side may leave the reals by its branch alone
 * (x^{2/3} against \sqrt[3]{x^2}, \ln(x^2) against 2\ln x): such a point,
 * like one the balls cannot decide, says nothing; real values that differ
 * there do. */
static int surely_nonreal(const val *v)
{
    return !v->exact && !arb_contains_zero(acb_imagref(v->b));
}

static void symbol_value(const ctx *c, const char *name, fmpq_t q)
{
    point_value(c, hash_str(0xcbf29ce484222325u, name), q);
}

/* ---- evaluation ---- */

static int eval(ctx *c, const ssf_node *n, val *v, int depth);

/* exp(z), given up (indeterminate) where |z| is so large that the argument
 * reduction alone would need gigabytes: 10^10^10^10 stays cheap. */
static void exp_guarded(ctx *c, acb_t out, const acb_t z)
{
    mag_t m;
    mag_init(m);
    acb_get_mag(m, z);
    if (!acb_is_finite(z) || mag_cmp_2exp_si(m, EXP_MAX_LOG2) >= 0)
        acb_indeterminate(out);
    else
        acb_exp(out, z, c->prec);
    mag_clear(m);
}

static int too_big(const acb_t z, slong log2)
{
    mag_t m;
    mag_init(m);
    acb_get_mag(m, z);
    int big = !acb_is_finite(z) || mag_cmp_2exp_si(m, log2) >= 0;
    mag_clear(m);
    return big;
}

/* b^e = exp(e log b) on balls. */
static void pow_general(ctx *c, val *b, val *e)
{
    to_ball(c, b);
    to_ball(c, e);
    if (acb_is_zero(b->b)) {
        if (arb_is_positive(acb_realref(e->b)))
            acb_zero(b->b);
        else
            acb_indeterminate(b->b);
        return;
    }
    acb_t l;
    acb_init(l);
    acb_log(l, b->b, c->prec);
    acb_mul(l, l, e->b, c->prec);
    exp_guarded(c, b->b, l);
    acb_clear(l);
}

static void pow_int(ctx *c, val *b, const fmpz_t k)
{
    if (b->exact) {
        if (fmpq_is_zero(b->q)) { /* 0^0 = 1 as in sympy, 0^-k undefined */
            if (fmpz_sgn(k) < 0)
                set_undefined(b);
            else if (fmpz_is_zero(k))
                fmpq_one(b->q);
            return;
        }
        if (fmpq_is_pm1(b->q)) {
            if (fmpz_is_even(k)) fmpq_one(b->q);
            return;
        }
        /* The size guard: |k| * bits(b) must stay under the exact limit. */
        slong lim = (slong)(EXACT_MAX_BITS / q_bits(b->q));
        if (fmpz_fits_si(k) && fmpz_get_si(k) >= -lim && fmpz_get_si(k) <= lim) {
            fmpq_pow_si(b->q, b->q, fmpz_get_si(k));
            return;
        }
    }
    if (fmpz_bits(k) <= 64) {
        to_ball(c, b);
        acb_pow_fmpz(b->b, b->b, k, c->prec);
        return;
    }
    val e;
    val_init(&e);
    fmpz_set(fmpq_numref(e.q), k); /* e.q was 0/1 */
    pow_general(c, b, &e);
    val_clear(&e);
}

/* The q-th root of a non-negative rational when it is rational. */
static int exact_root(fmpq_t x, ulong q)
{
    fmpz_t r, s, t;
    fmpz_init(r);
    fmpz_init(s);
    fmpz_init(t);
    fmpz_root(r, fmpq_numref(x), (slong)q);
    fmpz_pow_ui(t, r, q);
    int ok = fmpz_equal(t, fmpq_numref(x));
    if (ok) {
        fmpz_root(s, fmpq_denref(x), (slong)q);
        fmpz_pow_ui(t, s, q);
        ok = fmpz_equal(t, fmpq_denref(x));
    }
    if (ok) fmpq_set_fmpz_frac(x, r, s);
    fmpz_clear(r);
    fmpz_clear(s);
    fmpz_clear(t);
    return ok;
}

/* b^(p/q): a principal q-th root then an integer power, which is
 * exp((p/q) Log b) exactly, the branch sympy uses. */
static void val_pow(ctx *c, val *b, val *e)
{
    if (is_int(e)) {
        pow_int(c, b, fmpq_numref(e->q));
        return;
    }
    if (!e->exact || fmpz_cmp_ui(fmpq_denref(e->q), ROOT_MAX) > 0) {
        pow_general(c, b, e);
        return;
    }
    ulong q = fmpz_get_ui(fmpq_denref(e->q));
    if (b->exact && fmpq_sgn(b->q) >= 0 && q_bits(b->q) <= EXACT_MAX_BITS / 4 &&
        exact_root(b->q, q)) {
        pow_int(c, b, fmpq_numref(e->q));
        return;
    }
    to_ball(c, b);
    acb_root_ui(b->b, b->b, q, c->prec);
    pow_int(c, b, fmpq_numref(e->q));
}

/* A deterministic random value for f(args): the same on both sides for the
 * same name and rational arguments, so f(2x) and f(x+x) agree. */
static int unknown_func_value(ctx *c, const ssf_node *n, val *args, val *v)
{
    uint64_t h = hash_str(0xcbf29ce484222325u, n->name ? n->name : "?");
    for (size_t i = 0; i < n->n_kids; i++) {
        if (!args[i].exact)
            return fail(c, "unsupported: %s() of a non-rational argument", n->name ? n->name : "?");
        char *s = fmpq_get_str(NULL, 10, args[i].q);
        h = hash_str(h ^ (i + 1), s);
        flint_free(s);
    }
    point_value(c, h, v->q);
    v->exact = 1;
    return 0;
}

static int func_gcd(ctx *c, const ssf_node *n, val *args, val *v)
{
    fmpz_t r;
    fmpz_init(r);
    for (size_t i = 0; i < n->n_kids; i++) {
        if (!is_int(&args[i])) {
            fmpz_clear(r);
            return fail(c, "unsupported: gcd/lcm of non-integers");
        }
        const fmpz *x = fmpq_numref(args[i].q);
        if (i == 0)
            fmpz_abs(r, x);
        else if (n->op.func == SSF_F_GCD)
            fmpz_gcd(r, r, x);
        else
            fmpz_lcm(r, r, x);
    }
    fmpz_set(fmpq_numref(v->q), r);
    fmpz_one(fmpq_denref(v->q));
    v->exact = 1;
    fmpz_clear(r);
    return 0;
}

/* x! as Gamma(x+1); exact for small non-negative integers. */
static void func_factorial(ctx *c, val *x)
{
    if (is_int(x)) {
        const fmpz *n = fmpq_numref(x->q);
        if (fmpz_sgn(n) < 0) {
            set_undefined(x);
            return;
        }
        if (fmpz_cmp_ui(n, EXACT_FAC_MAX) <= 0) {
            ulong k = fmpz_get_ui(n);
            fmpz_fac_ui(fmpq_numref(x->q), k);
            return;
        }
    }
    to_ball(c, x);
    if (too_big(x->b, EXP_MAX_LOG2)) {
        acb_indeterminate(x->b);
        return;
    }
    acb_add_ui(x->b, x->b, 1, c->prec);
    acb_gamma(x->b, x->b, c->prec);
}

/* m!! for m > EXACT_FAC_MAX through Gamma, as func_factorial goes: 2^k k!
 * for m = 2k, (2k+1)! / (2^k k!) for m = 2k+1. */
static void double_factorial_ball(ctx *c, val *x, ulong m)
{
    ulong k = m / 2;
    arb_t half, whole;
    arb_init(half);
    arb_init(whole);
    arb_set_ui(half, k + 1);
    arb_gamma(half, half, c->prec);
    if (m % 2 == 0) {
        arb_mul_2exp_si(whole, half, (slong)k);
    } else {
        arb_set_ui(whole, m + 1);
        arb_gamma(whole, whole, c->prec);
        arb_div(whole, whole, half, c->prec);
        arb_mul_2exp_si(whole, whole, -(slong)k);
    }
    x->exact = 0;
    acb_set_arb(x->b, whole);
    arb_clear(half);
    arb_clear(whole);
}

/* n!! for an integer n >= 0: exact up to EXACT_FAC_MAX, a ball up to 2^40
 * (where func_factorial gives up too).  Competition answers use it for
 * integers alone, so any other argument leaves it undefined. */
static void func_double_factorial(ctx *c, val *x)
{
    fmpz *n = fmpq_numref(x->q);
    if (!is_int(x) || fmpz_sgn(n) < 0 || fmpz_cmp_ui(n, (ulong)1 << EXP_MAX_LOG2) >= 0) {
        set_undefined(x);
        return;
    }
    ulong m = fmpz_get_ui(n), k = m / 2;
    if (m > EXACT_FAC_MAX) {
        double_factorial_ball(c, x, m);
        return;
    }
    fmpz_t half;
    fmpz_init(half);
    fmpz_fac_ui(half, k);
    if (m % 2 == 0) {
        fmpz_mul_2exp(n, half, k);
    } else {
        fmpz_fac_ui(n, m);
        fmpz_fdiv_q_2exp(n, n, k);
        fmpz_divexact(n, n, half);
    }
    fmpz_clear(half);
}

static void func_binom(ctx *c, val *n, val *k)
{
    if (is_int(n) && is_int(k) && fmpz_sgn(fmpq_numref(n->q)) >= 0 &&
        fmpz_cmp_ui(fmpq_numref(n->q), EXACT_BINOM_MAX) <= 0) {
        const fmpz *nn = fmpq_numref(n->q), *kk = fmpq_numref(k->q);
        if (fmpz_sgn(kk) < 0 || fmpz_cmp(kk, nn) > 0)
            fmpq_zero(n->q);
        else
            fmpz_bin_uiui(fmpq_numref(n->q), fmpz_get_ui(nn), fmpz_get_ui(kk));
        return;
    }
    /* Gamma(n+1) / (Gamma(k+1) Gamma(n-k+1)) */
    val a, b;
    val_init(&a);
    val_init(&b);
    val_set(c, &a, n);
    val_sub(c, &a, k);
    func_factorial(c, n);
    val_set(c, &b, k);
    func_factorial(c, &b);
    func_factorial(c, &a);
    val_div(c, n, &b);
    val_div(c, n, &a);
    val_clear(&a);
    val_clear(&b);
}

/* floor/ceil decide only when the ball does; then the result is exact. */
static void func_round(ctx *c, val *x, int ceil)
{
    if (x->exact) {
        fmpz *num = fmpq_numref(x->q), *den = fmpq_denref(x->q);
        if (ceil)
            fmpz_cdiv_q(num, num, den);
        else
            fmpz_fdiv_q(num, num, den);
        fmpz_one(den);
        return;
    }
    if (!arb_is_zero(acb_imagref(x->b))) {
        acb_indeterminate(x->b);
        return;
    }
    arb_t r;
    arb_init(r);
    if (ceil)
        arb_ceil(r, acb_realref(x->b), c->prec);
    else
        arb_floor(r, acb_realref(x->b), c->prec);
    if (arb_get_unique_fmpz(fmpq_numref(x->q), r)) {
        fmpz_one(fmpq_denref(x->q));
        x->exact = 1;
    } else
        acb_set_arb(x->b, r);
    arb_clear(r);
}

static void func_ball(ctx *c, ssf_func f, acb_t z)
{
    slong p = c->prec;
    if (f >= SSF_F_SIN && f <= SSF_F_TANH && too_big(z, TRIG_MAX_LOG2)) {
        acb_indeterminate(z);
        return;
    }
    switch (f) {
    case SSF_F_SIN:
        acb_sin(z, z, p);
        break;
    case SSF_F_COS:
        acb_cos(z, z, p);
        break;
    case SSF_F_TAN:
        acb_tan(z, z, p);
        break;
    case SSF_F_SEC:
        acb_sec(z, z, p);
        break;
    case SSF_F_CSC:
        acb_csc(z, z, p);
        break;
    case SSF_F_COT:
        acb_cot(z, z, p);
        break;
    case SSF_F_ASIN:
        acb_asin(z, z, p);
        break;
    case SSF_F_ACOS:
        acb_acos(z, z, p);
        break;
    case SSF_F_ATAN:
        acb_atan(z, z, p);
        break;
    case SSF_F_SINH:
    case SSF_F_COSH:
    case SSF_F_TANH:
        if (too_big(z, EXP_MAX_LOG2))
            acb_indeterminate(z);
        else if (f == SSF_F_SINH)
            acb_sinh(z, z, p);
        else if (f == SSF_F_COSH)
            acb_cosh(z, z, p);
        else
            acb_tanh(z, z, p);
        break;
    case SSF_F_LN:
        acb_log(z, z, p);
        break;
    case SSF_F_EXP:
        exp_guarded(c, z, z);
        break;
    default:
        acb_indeterminate(z);
        break;
    }
}

/* x = b^k for an integer k: then log_b x is k exactly (log_2 8 = 3). */
static int exact_log(val *x, const val *b)
{
    if (fmpq_sgn(x->q) <= 0 || fmpq_sgn(b->q) <= 0 || fmpq_is_one(b->q)) return 0;
    arb_t lx, lb;
    arb_init(lx);
    arb_init(lb);
    arb_set_fmpq(lx, x->q, 64);
    arb_set_fmpq(lb, b->q, 64);
    arb_log(lx, lx, 64);
    arb_log(lb, lb, 64);
    arb_div(lx, lx, lb, 64);
    fmpz_t k;
    fmpz_init(k);
    int ok = arb_is_finite(lx) && arf_cmpabs_2exp_si(arb_midref(lx), 30) < 0;
    if (ok) arf_get_fmpz(k, arb_midref(lx), ARF_RND_NEAR);
    ok = ok && (ulong)FLINT_ABS(fmpz_get_si(k)) * q_bits(b->q) <= EXACT_MAX_BITS;
    if (ok) {
        fmpq_t t;
        fmpq_init(t);
        fmpq_pow_si(t, b->q, fmpz_get_si(k));
        ok = fmpq_equal(t, x->q);
        fmpq_clear(t);
    }
    if (ok) {
        fmpz_set(fmpq_numref(x->q), k);
        fmpz_one(fmpq_denref(x->q));
    }
    fmpz_clear(k);
    arb_clear(lx);
    arb_clear(lb);
    return ok;
}

/* log_b x = ln x / ln b; a one-argument LOG is base 10 (the parser's \lg;
 * \log itself is parsed as LN, sympy's natural log). */
static void func_log(ctx *c, val *x, const val *b)
{
    val base;
    val_init(&base);
    if (b)
        val_set(c, &base, b);
    else
        set_exact_si(&base, 10, 1);
    if (!(x->exact && base.exact && exact_log(x, &base))) {
        to_ball(c, x);
        to_ball(c, &base);
        acb_log(x->b, x->b, c->prec);
        acb_log(base.b, base.b, c->prec);
        acb_div(x->b, x->b, base.b, c->prec);
    }
    val_clear(&base);
}

/* 1 when a > b, 0 when a < b, -1 when the balls cannot tell (or a value
 * is not real): exact rationals compare exactly. */
static int greater(ctx *c, val *a, val *b)
{
    if (a->exact && b->exact) return fmpq_cmp(a->q, b->q) > 0;
    to_ball(c, a);
    to_ball(c, b);
    if (!acb_is_real(a->b) || !acb_is_real(b->b)) return -1;
    if (arb_gt(acb_realref(a->b), acb_realref(b->b))) return 1;
    return arb_lt(acb_realref(a->b), acb_realref(b->b)) ? 0 : -1;
}

/* \max and \min of real arguments, exact where they are rational;
 * undecided (ungradable) when the balls cannot order two of them. */
static int func_extremum(ctx *c, const ssf_node *n, val *a, val *v, int want_max)
{
    if (n->n_kids == 0) return fail(c, "unsupported: %s without arguments", n->name);
    size_t best = 0;
    for (size_t i = 1; i < n->n_kids; i++) {
        int beats = want_max ? greater(c, &a[i], &a[best]) : greater(c, &a[best], &a[i]);
        if (beats < 0) return fail(c, "undecided: %s of values the balls cannot order", n->name);
        if (beats) best = i;
    }
    val_set(c, v, &a[best]);
    return 0;
}

static int apply_func(ctx *c, const ssf_node *n, val *a, val *v)
{
    ssf_func f = n->op.func;
    size_t k = n->n_kids;
    if (f == SSF_F_UNKNOWN && n->name && strcmp(n->name, "max") == 0)
        return func_extremum(c, n, a, v, 1);
    if (f == SSF_F_UNKNOWN && n->name && strcmp(n->name, "min") == 0)
        return func_extremum(c, n, a, v, 0);
    if (f == SSF_F_UNKNOWN) return unknown_func_value(c, n, a, v);
    if (f == SSF_F_GCD || f == SSF_F_LCM) {
        if (k == 0) return fail(c, "unsupported: gcd/lcm without arguments");
        return func_gcd(c, n, a, v);
    }
    size_t want = f == SSF_F_BINOM ? 2 : f == SSF_F_LOG && k == 2 ? 2 : 1;
    if (k != want) return fail(c, "unsupported: function with %zu arguments", k);
    val_set(c, v, &a[0]);
    switch (f) {
    case SSF_F_ABS:
        if (v->exact)
            fmpq_abs(v->q, v->q);
        else {
            acb_abs(acb_realref(v->b), v->b, c->prec);
            arb_zero(acb_imagref(v->b));
        }
        return 0;
    case SSF_F_FLOOR:
        func_round(c, v, 0);
        return 0;
    case SSF_F_CEIL:
        func_round(c, v, 1);
        return 0;
    case SSF_F_FACTORIAL:
        func_factorial(c, v);
        return 0;
    case SSF_F_DOUBLE_FACTORIAL:
        func_double_factorial(c, v);
        return 0;
    case SSF_F_BINOM:
        func_binom(c, v, &a[1]);
        return 0;
    default:
        break;
    }
    if (f == SSF_F_LOG) {
        func_log(c, v, k == 2 ? &a[1] : NULL);
        return 0;
    }
    if (v->exact && f == SSF_F_LN && fmpq_is_one(v->q)) { /* keeps the key "q:0" */
        fmpq_zero(v->q);
        return 0;
    }
    to_ball(c, v);
    func_ball(c, f, v->b);
    return 0;
}

static int eval_func(ctx *c, const ssf_node *n, val *v, int depth)
{
    size_t k = n->n_kids;
    val *a = ssf_xcalloc(k ? k : 1, sizeof *a);
    int rc = 0;
    for (size_t i = 0; i < k; i++)
        val_init(&a[i]);
    for (size_t i = 0; i < k && rc == 0; i++)
        rc = eval(c, n->kids[i], &a[i], depth + 1);
    if (rc == 0) rc = apply_func(c, n, a, v);
    for (size_t i = 0; i < k; i++)
        val_clear(&a[i]);
    free(a);
    return rc;
}

static int eval_fold(ctx *c, const ssf_node *n, val *v, int depth)
{
    int add = n->kind == SSF_N_ADD;
    if (n->n_kids == 0) {
        set_exact_si(v, add ? 0 : 1, 1);
        return 0;
    }
    if (eval(c, n->kids[0], v, depth + 1)) return -1;
    val t;
    val_init(&t);
    int rc = 0;
    for (size_t i = 1; i < n->n_kids && rc == 0; i++) {
        rc = eval(c, n->kids[i], &t, depth + 1);
        if (rc == 0 && add)
            val_add(c, v, &t);
        else if (rc == 0)
            val_mul(c, v, &t);
    }
    val_clear(&t);
    return rc;
}

static int eval_pow(ctx *c, const ssf_node *n, val *v, int depth)
{
    if (n->n_kids != 2) return fail(c, "unsupported: malformed power");
    if (eval(c, n->kids[0], v, depth + 1)) return -1;
    val e;
    val_init(&e);
    int rc = eval(c, n->kids[1], &e, depth + 1);
    if (rc == 0) val_pow(c, v, &e);
    val_clear(&e);
    return rc;
}

static const char *const kind_words[] = {
    "number", "symbol",  "text",  "pi",       "e",        "i",       "infinity",
    "sum",    "product", "minus", "power",    "function", "percent", "relation",
    "chain",  "set",     "tuple", "interval", "union",    "matrix",  "plus-minus",
};

static const char *kind_word(ssf_node_kind k)
{
    return (size_t)k < sizeof kind_words / sizeof *kind_words ? kind_words[k] : "node";
}

/* Evaluates n at the current point and precision.  Returns 0, or -1 with
 * c->why saying what could not be evaluated (or that the budget is spent). */
static int eval(ctx *c, const ssf_node *n, val *v, int depth)
{
    if (step(c)) return -1;
    if (depth > MAX_DEPTH) return fail(c, "unsupported: nesting deeper than %d", MAX_DEPTH);
    switch (n->kind) {
    case SSF_N_NUMBER:
        fmpq_set(v->q, n->value);
        v->exact = 1;
        return 0;
    case SSF_N_SYMBOL:
        symbol_value(c, n->name, v->q);
        v->exact = 1;
        return 0;
    case SSF_N_PI:
        v->exact = 0;
        acb_const_pi(v->b, c->prec);
        return 0;
    case SSF_N_E:
        v->exact = 0;
        arb_const_e(acb_realref(v->b), c->prec);
        arb_zero(acb_imagref(v->b));
        return 0;
    case SSF_N_I:
        v->exact = 0;
        acb_onei(v->b);
        return 0;
    case SSF_N_ADD:
    case SSF_N_MUL:
        return eval_fold(c, n, v, depth);
    case SSF_N_NEG:
    case SSF_N_PERCENT:
        if (n->n_kids != 1 || eval(c, n->kids[0], v, depth + 1)) return -1;
        if (n->kind == SSF_N_NEG)
            val_neg(v);
        else {
            val h;
            val_init(&h);
            set_exact_si(&h, 100, 1);
            val_div(c, v, &h);
            val_clear(&h);
        }
        return 0;
    case SSF_N_POW:
        return eval_pow(c, n, v, depth);
    case SSF_N_FUNC:
        return eval_func(c, n, v, depth);
    default:
        return fail(c, "unsupported: %s inside an expression", kind_word(n->kind));
    }
}

/* ---- tree walks ---- */

/* Free symbols (or unknown functions, which behave like them); a tree too
 * deep to walk counts as having them, which only costs extra points. */
static int has_free(const ssf_node *n, int depth)
{
    if (depth > MAX_DEPTH) return 1;
    if (n->kind == SSF_N_SYMBOL) return 1;
    if (n->kind == SSF_N_FUNC && n->op.func == SSF_F_UNKNOWN) return 1;
    for (size_t i = 0; i < n->n_kids; i++)
        if (has_free(n->kids[i], depth + 1)) return 1;
    return 0;
}

static const char *first_symbol(const ssf_node *n, int depth)
{
    if (depth > MAX_DEPTH) return NULL;
    if (n->kind == SSF_N_SYMBOL) return n->name;
    for (size_t i = 0; i < n->n_kids; i++) {
        const char *s = first_symbol(n->kids[i], depth + 1);
        if (s) return s;
    }
    return NULL;
}

static int contains_kind(const ssf_node *n, ssf_node_kind k, int depth)
{
    if (depth > MAX_DEPTH) return 0;
    if (n->kind == k) return 1;
    for (size_t i = 0; i < n->n_kids; i++)
        if (contains_kind(n->kids[i], k, depth + 1)) return 1;
    return 0;
}

/* Structural identity, the reference's first check.  Numbers compare by
 * value, so 1000 and 1000.0 are identical too. */
static int identical(ctx *c, const ssf_node *a, const ssf_node *b, int depth)
{
    if (a == b) return 1;
    if (step(c) || depth > MAX_DEPTH) return 0;
    if (a->kind != b->kind || a->n_kids != b->n_kids) return 0;
    switch (a->kind) {
    case SSF_N_NUMBER:
        return fmpq_equal(a->value, b->value);
    case SSF_N_SYMBOL:
    case SSF_N_TEXT:
        return strcmp(a->name, b->name) == 0;
    case SSF_N_REL:
        if (a->op.rel != b->op.rel) return 0;
        break;
    case SSF_N_FUNC:
        if (a->op.func != b->op.func) return 0;
        if (a->op.func == SSF_F_UNKNOWN &&
            strcmp(a->name ? a->name : "", b->name ? b->name : "") != 0)
            return 0;
        break;
    case SSF_N_INTERVAL:
        if (a->left_open != b->left_open || a->right_open != b->right_open) return 0;
        break;
    case SSF_N_MATRIX:
        if (a->rows != b->rows || a->cols != b->cols) return 0;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < a->n_kids; i++)
        if (!identical(c, a->kids[i], b->kids[i], depth + 1)) return 0;
    return 1;
}

/* ---- printing values for reasons ---- */

/* Decimal digits of a word-sized integer into buf (22 bytes); returns the
 * length. */
static size_t small_str(slong v, char *buf)
{
    char tmp[24];
    size_t n = 0, k = 0;
    ulong u = v < 0 ? -(ulong)v : (ulong)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    buf[k] = '\0';
    return k;
}

/* fmpq_get_str's text ("-3/4", "5") for a rational of word-sized parts,
 * written without GMP; 0 when a part is a big integer.  buf: 48 bytes. */
static int q_str(const fmpq_t q, char *buf)
{
    const fmpz *num = fmpq_numref(q), *den = fmpq_denref(q);
    if (COEFF_IS_MPZ(*num) || COEFF_IS_MPZ(*den)) return 0;
    size_t n = small_str(*num, buf);
    if (*den != 1) {
        buf[n++] = '/';
        small_str(*den, buf + n);
    }
    return 1;
}

static void val_str(ctx *c, const val *v, char *buf, size_t size)
{
    if (v->exact && q_bits(v->q) <= 128) {
        char small[48];
        if (q_str(v->q, small)) {
            copy_str(buf, size, small);
            return;
        }
        char *s = fmpq_get_str(NULL, 10, v->q);
        copy_str(buf, size, s);
        flint_free(s);
        return;
    }
    if (!v->exact && !acb_is_finite(v->b)) {
        copy_str(buf, size, "undefined");
        return;
    }
    acb_t t;
    acb_init(t);
    if (v->exact)
        acb_set_fmpq(t, v->q, 64);
    else
        acb_set(t, v->b);
    char *re = arb_get_str(acb_realref(t), 12, ARB_STR_NO_RADIUS);
    if (arb_is_zero(acb_imagref(t)))
        snprintf(buf, size, "%s", re);
    else {
        char *im = arb_get_str(acb_imagref(t), 12, ARB_STR_NO_RADIUS);
        snprintf(buf, size, "%s + %s*i", re, im);
        flint_free(im);
    }
    flint_free(re);
    acb_clear(t);
    (void)c;
}

/* ---- deciding on two values ---- */

/* tol = 2^(-P/2) of the base precision P: what "tight" means at every try. */
static void tolerance(const ctx *c, mag_t tol)
{
    mag_set_ui_2exp_si(tol, 1, -(c->o->prec_bits / 2));
}

/* EQUAL needs overlap at two precisions (so a difference below 2^-P is
 * still caught at 2P) and a difference tiny against the magnitude; a value
 * that stays around zero is accepted only at the last precision. */
static ssf_verdict cmp_vals(ctx *c, val *g, val *p)
{
    if (g->exact && p->exact) return fmpq_equal(g->q, p->q) ? SSF_EQUAL : SSF_DIFFERENT;
    to_ball(c, g);
    to_ball(c, p);
    if (!acb_is_finite(g->b) || !acb_is_finite(p->b)) return SSF_UNKNOWN;
    if (!acb_overlaps(g->b, p->b)) return SSF_DIFFERENT;
    if (c->tr == 0) return SSF_UNKNOWN;
    acb_t d;
    mag_t du, gl, pl, tol;
    acb_init(d);
    mag_init(du);
    mag_init(gl);
    mag_init(pl);
    mag_init(tol);
    acb_sub(d, g->b, p->b, c->prec);
    acb_get_mag(du, d);
    acb_get_mag_lower(gl, g->b);
    acb_get_mag_lower(pl, p->b);
    mag_max(gl, gl, pl);
    tolerance(c, tol);
    ssf_verdict v = SSF_UNKNOWN;
    if (c->tr == TRIES - 1 && mag_cmp(du, tol) <= 0) v = SSF_EQUAL;
    mag_mul(gl, gl, tol);
    if (!mag_is_zero(gl) && mag_cmp(du, gl) <= 0) v = SSF_EQUAL;
    acb_clear(d);
    mag_clear(du);
    mag_clear(gl);
    mag_clear(pl);
    mag_clear(tol);
    return v;
}

static void set_prec(ctx *c, int tr)
{
    c->tr = tr;
    c->prec = c->o->prec_bits << tr;
}

static int n_points(const ssf_node *g, const ssf_node *p, const ctx *c)
{
    return has_free(g, 0) || (p && has_free(p, 0)) ? c->o->points : 1;
}

static void point_label(ctx *c, const ssf_node *g, const ssf_node *p, char *buf, size_t size)
{
    const char *s = first_symbol(g, 0);
    if (!s) s = first_symbol(p, 0);
    if (!s) {
        snprintf(buf, size, "%s", "");
        return;
    }
    fmpq_t q;
    fmpq_init(q);
    symbol_value(c, s, q);
    char *t = fmpq_get_str(NULL, 10, q);
    snprintf(buf, size, " at %s=%s", s, t);
    flint_free(t);
    fmpq_clear(q);
}

static ssf_verdict numeric(ctx *c, const ssf_node *g, const ssf_node *p)
{
    int np = n_points(g, p, c), all_exact = 1;
    val vg, vp;
    val_init(&vg);
    val_init(&vp);
    ssf_verdict v = SSF_EQUAL;
    char a[96], b[96], at[96];
    c->signed_points = np > 1;
    for (int k = 0; k < np && v == SSF_EQUAL; k++) {
        c->point = k;
        v = SSF_UNKNOWN;
        int negative = c->signed_points && (k & 1), moot = 0;
        for (int tr = 0; tr < TRIES && v == SSF_UNKNOWN && !moot; tr++) {
            set_prec(c, tr);
            if (eval(c, g, &vg, 0) || eval(c, p, &vp, 0)) {
                say(c, "%s", c->why);
                c->signed_points = 0;
                val_clear(&vg);
                val_clear(&vp);
                return SSF_UNKNOWN;
            }
            all_exact &= vg.exact && vp.exact;
            moot = negative && (surely_nonreal(&vg) || surely_nonreal(&vp));
            if (!moot) v = cmp_vals(c, &vg, &vp);
        }
        if (moot || (negative && v == SSF_UNKNOWN)) v = SSF_EQUAL;
        if (v == SSF_EQUAL) continue;
        val_str(c, &vg, a, sizeof a);
        val_str(c, &vp, b, sizeof b);
        point_label(c, g, p, at, sizeof at);
        if (v == SSF_DIFFERENT && vg.exact && vp.exact && !at[0])
            say(c, "different rationals: %s vs %s", a, b);
        else if (v == SSF_DIFFERENT)
            say(c, "differ%s: %s vs %s", at, a, b);
        else
            say(c, "undecided%s: %s vs %s (%s)", at, a, b,
                strcmp(a, "undefined") != 0 && strcmp(b, "undefined") != 0
                    ? "balls too wide"
                    : "undefined or too large");
    }
    c->signed_points = 0;
    if (v == SSF_EQUAL) {
        if (all_exact && np == 1) {
            val_str(c, &vg, a, sizeof a);
            say(c, "equal as rationals: %s", a);
        } else if (np == 1)
            say(c, "equal as numbers");
        else
            say(c, "equal at %d points", np);
    }
    val_clear(&vg);
    val_clear(&vp);
    return v;
}

/* ---- the decimal rule (grading.md §7) ---- */

static int is_decimal_literal(const ssf_node *n)
{
    while ((n->kind == SSF_N_NEG || n->kind == SSF_N_PERCENT) && n->n_kids == 1)
        n = n->kids[0];
    return n->kind == SSF_N_NUMBER && n->decimals >= 0;
}

/* round(x * 10^d) with ties to even, as sympy's Float.round (the WYSIWYG
 * decimal value, not the binary one).  Returns 0 when decided. */
static int round_exact(const fmpq_t x, int d, fmpz_t out)
{
    fmpz_t num, r;
    fmpz_init(num);
    fmpz_init(r);
    fmpz_set_ui(num, 10);
    fmpz_pow_ui(num, num, (ulong)d);
    fmpz_mul(num, num, fmpq_numref(x));
    fmpz_fdiv_qr(out, r, num, fmpq_denref(x));
    fmpz_mul_2exp(r, r, 1);
    int cmp = fmpz_cmp(r, fmpq_denref(x));
    if (cmp > 0 || (cmp == 0 && fmpz_is_odd(out))) fmpz_add_ui(out, out, 1);
    fmpz_clear(num);
    fmpz_clear(r);
    return 0;
}

/* For a ball: y = x * 10^d, rounded when floor(y + 1/2) is unique (an
 * irrational value is never a tie).  -1: not decided at this precision. */
static int scaled(ctx *c, val *v, int d, arb_t y)
{
    to_ball(c, v);
    arb_set(y, acb_realref(v->b));
    arb_t t;
    arb_init(t);
    arb_set_ui(t, 10);
    arb_pow_ui(t, t, (ulong)d, c->prec);
    arb_mul(y, y, t, c->prec);
    arb_clear(t);
    return 0;
}

static int round_ball(ctx *c, val *v, int d, fmpz_t out)
{
    arb_t y;
    arb_init(y);
    scaled(c, v, d, y);
    arb_mul_2exp_si(y, y, 1); /* floor(y + 1/2) = floor((2y + 1) / 2) */
    arb_add_ui(y, y, 1, c->prec);
    arb_mul_2exp_si(y, y, -1);
    arb_floor(y, y, c->prec);
    int ok = arb_get_unique_fmpz(out, y);
    arb_clear(y);
    return ok ? 0 : -1;
}

/* r * 10^-d as a decimal, "0.333333"; long values are cut in the middle. */
static void scaled_str(const fmpz_t r, int d, char *buf, size_t size)
{
    char *s = fmpz_get_str(NULL, 10, r);
    const char *digits = s + (s[0] == '-');
    size_t n = strlen(digits), pad = n <= (size_t)d ? (size_t)d + 1 - n : 0;
    ssf_buf b = {0};
    if (s[0] == '-') ssf_buf_putc(&b, '-');
    for (size_t i = 0; i < pad + n; i++) {
        if (d > 0 && i == pad + n - (size_t)d) ssf_buf_putc(&b, '.');
        ssf_buf_putc(&b, (char)(i < pad ? '0' : digits[i - pad]));
    }
    if (b.len > 60)
        snprintf(buf, size, "%.24s...%s", b.data, b.data + b.len - 24);
    else
        snprintf(buf, size, "%s", b.data);
    ssf_buf_free(&b);
    flint_free(s);
}

/* Both sides rounded to d decimal places; a ball is rounded when the
 * precision decides the digit, and values further apart than one unit in
 * the last place differ whatever the rounding. */
static ssf_verdict decimal_rule(ctx *c, const ssf_node *g, const ssf_node *p)
{
    int d = c->o->float_rounding;
    val vg, vp;
    val_init(&vg);
    val_init(&vp);
    fmpz_t rg, rp;
    fmpz_init(rg);
    fmpz_init(rp);
    ssf_verdict v = SSF_UNKNOWN;
    c->point = 0;
    for (int tr = 0; tr < TRIES && v == SSF_UNKNOWN; tr++) {
        set_prec(c, tr);
        if (eval(c, g, &vg, 0) || eval(c, p, &vp, 0)) {
            say(c, "%s", c->why);
            break;
        }
        int complex = 0;
        for (int s = 0; s < 2; s++) {
            val *x = s ? &vp : &vg;
            if (!x->exact && !arb_contains_zero(acb_imagref(x->b))) complex = 1;
        }
        if (complex) {
            v = SSF_DIFFERENT;
            say(c, "a decimal against a complex value");
            break;
        }
        int okg = vg.exact ? round_exact(vg.q, d, rg) : round_ball(c, &vg, d, rg);
        int okp = vp.exact ? round_exact(vp.q, d, rp) : round_ball(c, &vp, d, rp);
        if (okg == 0 && okp == 0) {
            v = fmpz_equal(rg, rp) ? SSF_EQUAL : SSF_DIFFERENT;
            char a[96], b[96];
            scaled_str(rg, d, a, sizeof a);
            scaled_str(rp, d, b, sizeof b);
            if (v == SSF_EQUAL)
                say(c, "equal after rounding to %d places: %s", d, a);
            else
                say(c, "differ after rounding to %d places: %s vs %s", d, a, b);
            break;
        }
        /* Undecided rounding: still different when |yg - yp| > 1. */
        arb_t yg, yp;
        arb_init(yg);
        arb_init(yp);
        scaled(c, &vg, d, yg);
        scaled(c, &vp, d, yp);
        arb_sub(yg, yg, yp, c->prec);
        arb_abs(yg, yg);
        arb_sub_ui(yg, yg, 1, c->prec);
        if (arb_is_positive(yg)) {
            v = SSF_DIFFERENT;
            say(c, "differ by more than 1e-%d", d);
        }
        arb_clear(yg);
        arb_clear(yp);
        if (v == SSF_UNKNOWN) say(c, "cannot round to %d places (undefined or too wide)", d);
    }
    fmpz_clear(rg);
    fmpz_clear(rp);
    val_clear(&vg);
    val_clear(&vp);
    return v;
}

/* ---- comparisons ---- */

static ssf_verdict compare(ctx *c, const ssf_node *g, const ssf_node *p, int depth);

static ssf_arena *scratch(ctx *c)
{
    if (!c->scratch) c->scratch = ssf_arena_new(SCRATCH_NODES);
    return c->scratch;
}

/* Combines element verdicts: any DIFFERENT wins, then any UNKNOWN. */
static ssf_verdict both(ssf_verdict a, ssf_verdict b)
{
    if (a == SSF_DIFFERENT || b == SSF_DIFFERENT) return SSF_DIFFERENT;
    if (a == SSF_UNKNOWN || b == SSF_UNKNOWN) return SSF_UNKNOWN;
    return SSF_EQUAL;
}

static ssf_verdict ordered(ctx *c, ssf_node *const *g, size_t ng, ssf_node *const *p, size_t np,
                           int depth, const char *what)
{
    if (ng != np) {
        say(c, "%s of different lengths: %zu vs %zu", what, ng, np);
        return SSF_DIFFERENT;
    }
    ssf_verdict v = SSF_EQUAL;
    size_t bad = 0;
    for (size_t i = 0; i < ng && v != SSF_DIFFERENT; i++) {
        ssf_verdict e = compare(c, g[i], p[i], depth + 1);
        if (e != SSF_EQUAL && v == SSF_EQUAL) bad = i;
        if (e == SSF_DIFFERENT) bad = i;
        v = both(v, e);
    }
    if (v == SSF_EQUAL)
        say(c, "equal %s of %zu", what, ng);
    else
        ssf_fail_prefix(c->reason, "%s element %zu", what, bad + 1);
    return v;
}

/* The better of two verdicts for an element's best match. */
static ssf_verdict better_match(ssf_verdict a, ssf_verdict b)
{
    if (a == SSF_EQUAL || b == SSF_EQUAL) return SSF_EQUAL;
    if (a == SSF_UNKNOWN || b == SSF_UNKNOWN) return SSF_UNKNOWN;
    return SSF_DIFFERENT;
}

/* The budget ran out at pair k (row-major over gold x pred): each pair from
 * k on would have answered UNKNOWN, so each element with one among them
 * has at best an unknown match. */
static void uncompared_unknown(ssf_verdict *best_of_g, size_t ng, ssf_verdict *best_of_p, size_t np,
                               size_t k)
{
    for (size_t i = k / np; i < ng; i++)
        best_of_g[i] = better_match(best_of_g[i], SSF_UNKNOWN);
    size_t first_column = k / np + 1 < ng ? 0 : k % np;
    for (size_t j = first_column; j < np; j++)
        best_of_p[j] = better_match(best_of_p[j], SSF_UNKNOWN);
}

/* Set equality by mutual cover: every pred element equals some gold element
 * and (strict) every gold element some pred element.  Duplicates collapse,
 * as in sympy's FiniteSet, so {2,2} = {2}. */
static ssf_verdict unordered(ctx *c, ssf_node *const *g, size_t ng, ssf_node *const *p, size_t np,
                             int depth, const char *what)
{
    /* Each element's best match (EQUAL over UNKNOWN over DIFFERENT) is all
     * that is needed, not the ng x np verdicts: two sets of 40,000 took 6 GB. */
    ssf_verdict *best_of_g = ssf_xcalloc(ng + 1, sizeof *best_of_g);
    ssf_verdict *best_of_p = ssf_xcalloc(np + 1, sizeof *best_of_p);
    for (size_t i = 0; i < ng; i++)
        best_of_g[i] = SSF_DIFFERENT;
    for (size_t j = 0; j < np; j++)
        best_of_p[j] = SSF_DIFFERENT;
    size_t pairs = ng * np, k = 0;
    for (; k < pairs && !c->over; k++) {
        ssf_verdict e = compare(c, g[k / np], p[k % np], depth + 1);
        best_of_g[k / np] = better_match(best_of_g[k / np], e);
        best_of_p[k % np] = better_match(best_of_p[k % np], e);
    }
    if (k < pairs) uncompared_unknown(best_of_g, ng, best_of_p, np, k);
    ssf_verdict v = c->over ? SSF_UNKNOWN : SSF_EQUAL;
    for (int side = 0; side < 2 && v != SSF_DIFFERENT; side++) {
        if (side == 0 && !c->o->strict_sets) continue;
        size_t n = side ? np : ng;
        for (size_t i = 0; i < n && v != SSF_DIFFERENT; i++) {
            ssf_verdict best = side ? best_of_p[i] : best_of_g[i];
            if (best == SSF_DIFFERENT) {
                char *s = ssf_node_sexpr(side ? p[i] : g[i]);
                say(c, "%s: %s element %.60s has no match", what, side ? "pred" : "gold", s);
                free(s);
            }
            v = both(v, best);
        }
    }
    if (np == 0 && ng > 0) v = SSF_DIFFERENT;
    free(best_of_g);
    free(best_of_p);
    if (v == SSF_EQUAL)
        say(c, "equal %s of %zu and %zu elements", what, ng, np);
    else if (v == SSF_UNKNOWN && c->over)
        over_budget(c);
    else if (v == SSF_UNKNOWN)
        say(c, "%s: some elements undecided", what);
    return v;
}

/* ---- relations ---- */

typedef struct rel3 {
    const ssf_node *l, *r;
    ssf_rel op;
} rel3;

static int is_relation(const ssf_node *n)
{
    return n->kind == SSF_N_REL || n->kind == SSF_N_AND;
}

/* A relation as a list of (lhs op rhs): an AND lists its relations, a
 * nested chain REL(op2, REL(op1, a, b), c) becomes a op1 b, b op2 c.
 * Returns the count, or 0 when it is not a relation or too long. */
static size_t chain(const ssf_node *n, rel3 *out, size_t cap)
{
    if (n->kind == SSF_N_AND) {
        size_t k = 0;
        for (size_t i = 0; i < n->n_kids; i++) {
            size_t m = chain(n->kids[i], out + k, cap - k);
            if (!m) return 0;
            k += m;
        }
        return k;
    }
    if (n->kind != SSF_N_REL || n->n_kids != 2 || cap == 0) return 0;
    const ssf_node *l = n->kids[0];
    size_t k = 0;
    if (l->kind == SSF_N_REL) {
        k = chain(l, out, cap - 1);
        if (!k) return 0;
        l = out[k - 1].r;
    }
    out[k].l = l;
    out[k].r = n->kids[1];
    out[k].op = n->op.rel;
    return k + 1;
}

/* An assignment's lhs: symbols only, as x, (p, q), V_1 / V_2 or f(x). */
static int symbolic(const ssf_node *n, int depth)
{
    if (depth > MAX_DEPTH) return 0;
    switch (n->kind) {
    case SSF_N_SYMBOL:
        return 1;
    case SSF_N_POW:
        return n->n_kids == 2 && n->kids[1]->kind == SSF_N_NUMBER &&
               fmpq_equal_si(n->kids[1]->value, -1) && symbolic(n->kids[0], depth + 1);
    case SSF_N_TUPLE:
    case SSF_N_MUL:
    case SSF_N_FUNC:
        if (n->kind == SSF_N_FUNC && n->op.func != SSF_F_UNKNOWN) return 0;
        for (size_t i = 0; i < n->n_kids; i++)
            if (!symbolic(n->kids[i], depth + 1)) return 0;
        return n->n_kids > 0;
    default:
        return 0;
    }
}

/* gold x = 11 (or x = y = 11) → 11; NULL when gold is no assignment. */
static const ssf_node *assignment_value(const ssf_node *g)
{
    rel3 r[MAX_CHAIN];
    size_t k = chain(g, r, MAX_CHAIN);
    if (!k || !symbolic(r[0].l, 0)) return NULL;
    for (size_t i = 0; i < k; i++)
        if (r[i].op != SSF_REL_EQ) return NULL;
    return r[k - 1].r;
}

/* pred x = 11, x = 1/3 ≈ 0.33: the last rhs reached by '=' (the exact
 * part of an approximation chain), else the last rhs of a pure ≈. */
static const ssf_node *equation_value(const ssf_node *p)
{
    rel3 r[MAX_CHAIN];
    size_t k = chain(p, r, MAX_CHAIN);
    if (!k) return NULL;
    const ssf_node *last_eq = NULL;
    for (size_t i = 0; i < k; i++) {
        if (r[i].op != SSF_REL_EQ && r[i].op != SSF_REL_APPROX) return NULL;
        if (r[i].op == SSF_REL_EQ) last_eq = r[i].r;
    }
    return last_eq ? last_eq : r[k - 1].r;
}

static ssf_rel flip(ssf_rel r)
{
    switch (r) {
    case SSF_REL_LT:
        return SSF_REL_GT;
    case SSF_REL_GT:
        return SSF_REL_LT;
    case SSF_REL_LE:
        return SSF_REL_GE;
    case SSF_REL_GE:
        return SSF_REL_LE;
    default:
        return r;
    }
}

static ssf_node *infinity(ctx *c, int sign)
{
    ssf_node *inf = ssf_node_leaf(scratch(c), SSF_N_INFINITY);
    return sign > 0 ? inf : ssf_node_unary(scratch(c), SSF_N_NEG, inf);
}

/* Gold a < x <= b as the interval (a, b], x = a as {a}, x != a as a union
 * (sympy's as_set).  NULL when it is not one variable against constants. */
static ssf_node *relation_as_set(ctx *c, const ssf_node *g)
{
    rel3 r[MAX_CHAIN];
    size_t k = chain(g, r, MAX_CHAIN);
    if (k == 0 || k > 2) return NULL;
    const char *var = NULL;
    ssf_node *lo = NULL, *hi = NULL;
    int lo_open = 1, hi_open = 1;
    ssf_arena *a = scratch(c);
    for (size_t i = 0; i < k; i++) {
        const ssf_node *x = r[i].l, *bound = r[i].r;
        ssf_rel op = r[i].op;
        if (x->kind != SSF_N_SYMBOL) {
            x = r[i].r;
            bound = r[i].l;
            op = flip(op);
        }
        if (x->kind != SSF_N_SYMBOL || has_free(bound, 0)) return NULL;
        if (var && strcmp(var, x->name) != 0) return NULL;
        var = x->name;
        ssf_node *b = (ssf_node *)bound;
        if (op == SSF_REL_EQ || op == SSF_REL_NE) {
            if (k != 1) return NULL;
            if (op == SSF_REL_EQ) return ssf_node_list(a, SSF_N_SET, &b, 1);
            ssf_node *parts[2] = {ssf_node_interval(a, infinity(c, -1), b, 1, 1),
                                  ssf_node_interval(a, b, infinity(c, 1), 1, 1)};
            return ssf_node_list(a, SSF_N_UNION, parts, 2);
        }
        int upper = op == SSF_REL_LT || op == SSF_REL_LE;
        if (op == SSF_REL_APPROX || (upper ? hi : lo)) return NULL;
        if (upper) {
            hi = b;
            hi_open = op == SSF_REL_LT;
        } else {
            lo = b;
            lo_open = op == SSF_REL_GT;
        }
    }
    return ssf_node_interval(a, lo ? lo : infinity(c, -1), hi ? hi : infinity(c, 1), lo_open,
                             hi_open);
}

/* One side of a relation, lhs - rhs, at the current point. */
static int rel_diff(ctx *c, const rel3 *r, val *d)
{
    val t;
    val_init(&t);
    int rc = eval(c, r->l, d, 0) || eval(c, r->r, &t, 0) ? -1 : 0;
    if (rc == 0) val_sub(c, d, &t);
    val_clear(&t);
    return rc;
}

static int val_is_zero(const val *v)
{
    return v->exact ? fmpq_is_zero(v->q) : acb_is_zero(v->b);
}

static int val_nonzero(const val *v)
{
    return v->exact ? !fmpq_is_zero(v->q) : !acb_contains_zero(v->b);
}

/* Sign of the real ratio: 1, -1, 0 when not real or undecided. */
static int val_sign(const val *v)
{
    if (v->exact) return fmpq_sgn(v->q);
    if (!arb_contains_zero(acb_imagref(v->b))) return 0;
    if (arb_is_positive(acb_realref(v->b))) return 1;
    if (arb_is_negative(acb_realref(v->b))) return -1;
    return 0;
}

/* The ratio dg/dp at one point against the first one.  Returns 1 when the
 * point decided (*v set), 0 when the balls are too wide, -1 on failure. */
static int ratio_at(ctx *c, val *dg, val *dp, int sign, val *r0, int *have, ssf_verdict *v)
{
    if (val_is_zero(dg) && val_is_zero(dp)) { /* both hold here: no information */
        *v = SSF_EQUAL;
        return 1;
    }
    if ((val_is_zero(dg) && val_nonzero(dp)) || (val_is_zero(dp) && val_nonzero(dg))) {
        *v = SSF_DIFFERENT; /* one holds at this point, the other does not */
        return 1;
    }
    if (!val_nonzero(dg) || !val_nonzero(dp)) return 0;
    val_div(c, dg, dp);
    int s = val_sign(dg);
    if (sign && s == -sign) {
        *v = SSF_DIFFERENT;
        return 1;
    }
    if (sign && s != sign) return 0;
    if (!*have) {
        val_set(c, r0, dg);
        *have = 1;
        *v = SSF_EQUAL;
        return 1;
    }
    *v = cmp_vals(c, r0, dg);
    return *v != SSF_UNKNOWN;
}

static int ratio_point(ctx *c, const rel3 *g, const rel3 *p, int sign, val *r0, int *have,
                       ssf_verdict *v)
{
    val dg, dp;
    val_init(&dg);
    val_init(&dp);
    int rc = rel_diff(c, g, &dg) || rel_diff(c, p, &dp) ? -1 : 0;
    if (rc == 0) rc = ratio_at(c, &dg, &dp, sign, r0, have, v);
    val_clear(&dg);
    val_clear(&dp);
    return rc;
}

/* g.lhs - g.rhs = k (p.lhs - p.rhs) with k constant over the points; k > 0
 * for the same inequality, k < 0 for a flipped one, any k != 0 for '='. */
static ssf_verdict ratio_rule(ctx *c, const rel3 *g, const rel3 *p, int sign)
{
    int np = c->o->points, have = 0;
    val r0;
    val_init(&r0);
    ssf_verdict v = SSF_EQUAL;
    for (int k = 0; k < np && v == SSF_EQUAL; k++) {
        c->point = k;
        int rc = 0;
        for (int tr = 0; tr < TRIES && rc == 0; tr++) {
            set_prec(c, tr);
            rc = ratio_point(c, g, p, sign, &r0, &have, &v);
        }
        if (rc < 0)
            say(c, "%s", c->why);
        else if (rc == 0)
            say(c, "relations undecided at point %d", k + 1);
        else if (v == SSF_DIFFERENT)
            say(c, "relations differ at point %d", k + 1);
        if (rc <= 0) v = SSF_UNKNOWN;
    }
    if (v == SSF_EQUAL) {
        char s[96] = "1";
        if (have) val_str(c, &r0, s, sizeof s);
        say(c, "equivalent relations (factor %s)", s);
    }
    val_clear(&r0);
    return v;
}

static ssf_verdict compare_rel(ctx *c, const rel3 *g, const rel3 *p)
{
    static const char *const names[] = {"=", "!=", "<", "<=", ">", ">=", "~="};
    ssf_rel a = g->op == SSF_REL_APPROX ? SSF_REL_EQ : g->op;
    ssf_rel b = p->op == SSF_REL_APPROX ? SSF_REL_EQ : p->op;
    int sign;
    if (a == b)
        sign = a == SSF_REL_EQ || a == SSF_REL_NE ? 0 : 1;
    else if (flip(a) == b)
        sign = -1;
    else {
        say(c, "different relations: %s vs %s", names[g->op], names[p->op]);
        return SSF_DIFFERENT;
    }
    return ratio_rule(c, g, p, sign);
}

static ssf_verdict compare_relations(ctx *c, const ssf_node *g, const ssf_node *p)
{
    rel3 rg[MAX_CHAIN], rp[MAX_CHAIN];
    size_t ng = chain(g, rg, MAX_CHAIN), np = chain(p, rp, MAX_CHAIN);
    if (!ng || !np) {
        say(c, "unsupported: malformed or too long relation chain");
        return SSF_UNKNOWN;
    }
    if (ng != np) {
        say(c, "relation chains of different lengths: %zu vs %zu", ng, np);
        return SSF_DIFFERENT;
    }
    ssf_verdict v = SSF_EQUAL;
    for (size_t i = 0; i < ng && v != SSF_DIFFERENT; i++) {
        ssf_verdict e = compare_rel(c, &rg[i], &rp[i]);
        if (e != SSF_EQUAL && ng > 1) ssf_fail_prefix(c->reason, "relation %zu", i + 1);
        v = both(v, e);
    }
    return v;
}

/* ---- containers ---- */

/* ±a → {-a, a}; a ± b → {a - b, a + b}. */
static const ssf_node *pm_as_set(ctx *c, const ssf_node *n)
{
    ssf_arena *a = scratch(c);
    ssf_node *k0 = n->kids[0], *k1 = n->n_kids > 1 ? n->kids[1] : NULL;
    ssf_node *e[2];
    if (!k1) {
        e[0] = ssf_node_unary(a, SSF_N_NEG, k0);
        e[1] = k0;
    } else {
        e[0] = ssf_node_sub(a, k0, k1);
        e[1] = ssf_node_binary(a, SSF_N_ADD, k0, k1);
    }
    ssf_node *s = ssf_node_list(a, SSF_N_SET, e, 2);
    return s ? s : n;
}

/* Kinds a ± inside an expression is read through: arithmetic, not lists
 * (whose elements are read one by one) nor relations. */
static int arithmetic(const ssf_node *n)
{
    return n->kind == SSF_N_ADD || n->kind == SSF_N_MUL || n->kind == SSF_N_NEG ||
           n->kind == SSF_N_POW || n->kind == SSF_N_FUNC || n->kind == SSF_N_PERCENT;
}

/* What a ± is read through: arithmetic, and a relation's sides (y = x \pm 1
 * is the two lines y = x - 1 and y = x + 1). */
static int pm_carrier(const ssf_node *n)
{
    return arithmetic(n) || is_relation(n);
}

/* How many ± an expression holds (counting stops at 2; too deep counts 2). */
static int nested_pms(const ssf_node *n, int depth)
{
    if (n->kind == SSF_N_PM) return 1;
    if (!pm_carrier(n)) return 0;
    if (depth > MAX_DEPTH) return 2;
    int k = 0;
    for (size_t i = 0; i < n->n_kids && k < 2; i++)
        k += nested_pms(n->kids[i], depth + 1);
    return k;
}

/* n with its ± read as a minus (plus 0) or a plus: n itself when it holds
 * none, NULL when the scratch arena is spent. */
static ssf_node *pm_branch(ctx *c, ssf_node *n, int plus, int depth)
{
    if (n->kind == SSF_N_PM) {
        const ssf_node *two = pm_as_set(c, n);
        return two->kind == SSF_N_SET ? two->kids[plus] : NULL;
    }
    if (!pm_carrier(n) || depth > MAX_DEPTH) return n;
    ssf_node *m = NULL;
    for (size_t i = 0; i < n->n_kids; i++) {
        ssf_node *k = pm_branch(c, n->kids[i], plus, depth + 1);
        if (!k) return NULL;
        if (k == n->kids[i]) continue;
        if (!m) {
            m = ssf_node_list(scratch(c), n->kind, n->kids, n->n_kids);
            if (!m) return NULL;
            m->op = n->op;
            m->name = n->name;
        }
        m->kids[i] = k;
    }
    return m ? m : n;
}

/* An expression or relation with one ± inside is the set of its two
 * readings: \frac{1 \pm \sqrt5}{2} is {\frac{1-\sqrt5}{2}, \frac{1+\sqrt5}{2}},
 * y = x \pm 1 is {y = x - 1, y = x + 1}.  With two or more (whose signs may
 * or may not go together) it stays as written. */
static const ssf_node *pm_distributed(ctx *c, const ssf_node *n)
{
    if (!pm_carrier(n) || nested_pms(n, 0) != 1) return n;
    ssf_node *e[2] = {pm_branch(c, (ssf_node *)n, 0, 0), pm_branch(c, (ssf_node *)n, 1, 0)};
    ssf_node *s = e[0] && e[1] ? ssf_node_list(scratch(c), SSF_N_SET, e, 2) : NULL;
    return s ? s : n;
}

/* n with its ± read: one at the top as its two values (pm_as_set), one
 * inside as its two readings (pm_distributed); else n. */
static const ssf_node *pm_read(ctx *c, const ssf_node *n)
{
    return n->kind == SSF_N_PM ? pm_as_set(c, n) : pm_distributed(c, n);
}

/* The two readings of a set's element a ± b or \frac{a \pm b}{c}, else NULL. */
static const ssf_node *pm_readings(ctx *c, const ssf_node *k)
{
    const ssf_node *two = pm_read(c, k);
    return two != k && two->kind == SSF_N_SET ? two : NULL;
}

/* A set's element with a ± is two elements: {1 ± \sqrt5, -2} has three. */
static ssf_node *expand_pm(ctx *c, ssf_node *set)
{
    if (set->kind != SSF_N_SET) return set;
    ssf_node **e = ssf_xmalloc((2 * set->n_kids + 1) * sizeof *e);
    size_t n = 0;
    for (size_t i = 0; i < set->n_kids; i++) {
        const ssf_node *two = pm_readings(c, set->kids[i]);
        if (two) {
            e[n++] = two->kids[0];
            e[n++] = two->kids[1];
        } else {
            e[n++] = set->kids[i];
        }
    }
    ssf_node *out = n > set->n_kids ? ssf_node_list(scratch(c), SSF_N_SET, e, n) : NULL;
    free(e);
    return out ? out : set;
}

static int is_container(const ssf_node *n)
{
    return n->kind == SSF_N_SET || n->kind == SSF_N_TUPLE || n->kind == SSF_N_INTERVAL ||
           n->kind == SSF_N_UNION;
}

typedef struct parts {
    ssf_node **iv, **pts;
    size_t n_iv, n_pts, cap_iv, cap_pts;
} parts;

static void push(ssf_node ***v, size_t *n, size_t *cap, ssf_node *x)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = ssf_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = x;
}

static void collect(parts *s, ssf_node *n, int depth)
{
    if (n->kind == SSF_N_UNION && depth < MAX_DEPTH) {
        for (size_t i = 0; i < n->n_kids; i++)
            collect(s, n->kids[i], depth + 1);
    } else if (n->kind == SSF_N_INTERVAL)
        push(&s->iv, &s->n_iv, &s->cap_iv, n);
    else if (n->kind == SSF_N_SET) {
        for (size_t i = 0; i < n->n_kids; i++)
            push(&s->pts, &s->n_pts, &s->cap_pts, n->kids[i]);
    } else
        push(&s->pts, &s->n_pts, &s->cap_pts, n);
}

/* [a,b) ∪ [b,c) = [a,c), and (a,b) ∪ {b} = (a,b]: adjacent pieces merge,
 * so that equal unions written differently compare equal. */
static void merge(ctx *c, parts *s, int depth)
{
    for (int again = 1; again && !c->over;) {
        again = 0;
        for (size_t i = 0; i < s->n_iv && !again; i++) {
            for (size_t j = 0; j < s->n_iv && !again; j++) {
                ssf_node *x = s->iv[i], *y = s->iv[j];
                if (i == j || (x->right_open && y->left_open)) continue;
                if (compare(c, x->kids[1], y->kids[0], depth + 1) != SSF_EQUAL) continue;
                ssf_node *m = ssf_node_interval(scratch(c), x->kids[0], y->kids[1], x->left_open,
                                                y->right_open);
                if (!m) return;
                s->iv[i] = m;
                s->iv[j] = s->iv[--s->n_iv];
                again = 1;
            }
        }
        for (size_t i = 0; i < s->n_iv && !again; i++) {
            for (size_t j = 0; j < s->n_pts && !again; j++) {
                ssf_node *x = s->iv[i];
                int lo = x->left_open && compare(c, x->kids[0], s->pts[j], depth + 1) == SSF_EQUAL;
                int hi = !lo && x->right_open &&
                         compare(c, x->kids[1], s->pts[j], depth + 1) == SSF_EQUAL;
                if (!lo && !hi) continue;
                ssf_node *m = ssf_node_interval(scratch(c), x->kids[0], x->kids[1],
                                                lo ? 0 : x->left_open, hi ? 0 : x->right_open);
                if (!m) return;
                s->iv[i] = m;
                s->pts[j] = s->pts[--s->n_pts];
                again = 1;
            }
        }
    }
}

static ssf_verdict compare_unions(ctx *c, ssf_node *g, ssf_node *p, int depth)
{
    parts a = {0}, b = {0};
    collect(&a, g, 0);
    collect(&b, p, 0);
    merge(c, &a, depth);
    merge(c, &b, depth);
    ssf_verdict v = SSF_EQUAL;
    if (a.n_iv != b.n_iv || (c->o->strict_sets && (!a.n_pts) != (!b.n_pts))) {
        say(c, "unions of different shapes: %zu+%zu vs %zu+%zu pieces", a.n_iv, a.n_pts, b.n_iv,
            b.n_pts);
        v = SSF_DIFFERENT;
    }
    if (v == SSF_EQUAL && a.n_iv) v = unordered(c, a.iv, a.n_iv, b.iv, b.n_iv, depth, "unions");
    if (v == SSF_EQUAL && (a.n_pts || b.n_pts))
        v = unordered(c, a.pts, a.n_pts, b.pts, b.n_pts, depth, "sets");
    free(a.iv);
    free(a.pts);
    free(b.iv);
    free(b.pts);
    return v;
}

static ssf_verdict compare_intervals(ctx *c, const ssf_node *g, const ssf_node *p, int depth)
{
    if (g->left_open != p->left_open || g->right_open != p->right_open) {
        say(c, "intervals differ in open/closed ends");
        return SSF_DIFFERENT;
    }
    return ordered(c, g->kids, 2, p->kids, 2, depth, "interval endpoints");
}

static ssf_verdict compare_containers(ctx *c, ssf_node *g, ssf_node *p, int depth)
{
    if (g->kind == SSF_N_UNION || p->kind == SSF_N_UNION) return compare_unions(c, g, p, depth);
    int gi = g->kind == SSF_N_INTERVAL, pi = p->kind == SSF_N_INTERVAL;
    if (gi && pi) return compare_intervals(c, g, p, depth);
    if (gi || pi) {
        ssf_node *iv = gi ? g : p, *o = gi ? p : g;
        int pair = (o->kind == SSF_N_TUPLE || o->kind == SSF_N_SET) && o->n_kids == 2;
        if (pair && iv->left_open && iv->right_open) /* (1,3) = {1,3} as a tuple */
            return ordered(c, g->kids, g->n_kids, p->kids, p->n_kids, depth, "pairs");
        say(c, "an interval against a %s", kind_word(o->kind));
        return SSF_DIFFERENT;
    }
    g = expand_pm(c, g);
    p = expand_pm(c, p);
    ssf_node *const *gk = is_container(g) ? g->kids : &g;
    ssf_node *const *pk = is_container(p) ? p->kids : &p;
    size_t ng = is_container(g) ? g->n_kids : 1, np = is_container(p) ? p->n_kids : 1;
    /* A gold tuple keeps the pred's order even against a set (grading.md §8). */
    if (g->kind == SSF_N_TUPLE && (p->kind == SSF_N_TUPLE || p->kind == SSF_N_SET))
        return ordered(c, gk, ng, pk, np, depth, "tuples");
    return unordered(c, gk, ng, pk, np, depth, "sets");
}

/* A scalar times a matrix (or a matrix negated) is the matrix of the
 * products: \frac13\begin{pmatrix}1\\2\end{pmatrix} is the column (1/3, 2/3).
 * n itself when it is no such product. */
static const ssf_node *scaled_matrix(ctx *c, const ssf_node *n)
{
    const ssf_node *m = NULL;
    size_t at = 0;
    if (n->kind == SSF_N_NEG && n->kids[0]->kind == SSF_N_MATRIX) m = n->kids[0];
    if (n->kind == SSF_N_MUL) {
        for (size_t i = 0; i < n->n_kids; i++) {
            const ssf_node *k = n->kids[i];
            if (k->kind == SSF_N_MATRIX && !m) {
                m = k;
                at = i;
            } else if (contains_kind(k, SSF_N_MATRIX, 0) || is_container(k) || is_relation(k) ||
                       k->kind == SSF_N_PM) { /* M^{-1} N is no scalar times N */
                return n;
            }
        }
    }
    if (!m || m->n_kids == 0) return n;
    ssf_arena *a = scratch(c);
    ssf_node **cells = ssf_xmalloc(m->n_kids * sizeof *cells);
    for (size_t i = 0; i < m->n_kids; i++) {
        if (n->kind == SSF_N_NEG) {
            cells[i] = ssf_node_unary(a, SSF_N_NEG, m->kids[i]);
        } else {
            cells[i] = ssf_node_list(a, SSF_N_MUL, n->kids, n->n_kids);
            if (cells[i]) cells[i]->kids[at] = m->kids[i];
        }
    }
    ssf_node *out = ssf_node_matrix(a, cells, m->rows, m->cols);
    free(cells);
    return out ? out : n;
}

static int is_vector(const ssf_node *m)
{
    return m->rows == 1 || m->cols == 1;
}

static ssf_verdict compare_matrices(ctx *c, const ssf_node *g, const ssf_node *p, int depth)
{
    if (g->kind == SSF_N_MATRIX && p->kind == SSF_N_MATRIX) {
        /* a row and a column of the same entries are one vector where a
         * vector is the tuple of its entries (they vote as one too) */
        if (c->o->vectors_as_tuples && is_vector(g) && is_vector(p) && g->n_kids == p->n_kids)
            return ordered(c, g->kids, g->n_kids, p->kids, p->n_kids, depth, "vectors");
        if (g->rows != p->rows || g->cols != p->cols) {
            say(c, "matrices of different shapes: %zux%zu vs %zux%zu", g->rows, g->cols, p->rows,
                p->cols);
            return SSF_DIFFERENT;
        }
        return ordered(c, g->kids, g->n_kids, p->kids, p->n_kids, depth, "matrices");
    }
    const ssf_node *m = g->kind == SSF_N_MATRIX ? g : p, *o = m == g ? p : g;
    if (o->kind == SSF_N_TUPLE && is_vector(m) && c->o->vectors_as_tuples)
        return ordered(c, g->kids, g->n_kids, p->kids, p->n_kids, depth, "vectors");
    say(c, "a matrix against a %s", kind_word(o->kind));
    return SSF_DIFFERENT;
}

/* ---- names and texts ---- */

/* The name a leaf or a product of leaves spells: x, e (Euler's number is
 * how a parser reads a lone "e"), a*n*s*w*e*r → "answer".  0 if none. */
static int spell(const ssf_node *n, ssf_buf *b, int depth)
{
    if (depth > 64) return 0;
    switch (n->kind) {
    case SSF_N_SYMBOL:
    case SSF_N_TEXT:
        ssf_buf_puts(b, n->name);
        return 1;
    case SSF_N_E:
        ssf_buf_putc(b, 'e');
        return 1;
    case SSF_N_PI:
        ssf_buf_puts(b, "pi");
        return 1;
    case SSF_N_I:
        ssf_buf_putc(b, 'i');
        return 1;
    case SSF_N_MUL:
        for (size_t i = 0; i < n->n_kids; i++)
            if (!spell(n->kids[i], b, depth + 1)) return 0;
        return n->n_kids > 0;
    default:
        return 0;
    }
}

/* Lowercase without spaces (and LaTeX spacing "\ ", "~"). */
static char *fold_name(const char *s, int lower)
{
    char *out = ssf_xmalloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (isspace((unsigned char)*s) || *s == '~' || (*s == '\\' && s[1] == ' ')) continue;
        *o++ = (char)(lower ? tolower((unsigned char)*s) : *s);
    }
    *o = '\0';
    return out;
}

static int names_equal(const char *a, const char *b, int any_case)
{
    char *x = fold_name(a, any_case), *y = fold_name(b, any_case);
    int eq = strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

/* "13", "-2.5": a text that is a number compares as that number. */
static ssf_node *text_number(ctx *c, const char *s)
{
    char *t = fold_name(s, 0);
    const char *d = t + (t[0] == '-' || t[0] == '+');
    size_t n = strlen(d), dots = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '.')
            dots++;
        else if (isdigit((unsigned char)d[i]))
            digits++;
    }
    ssf_node *num = NULL;
    if (digits && digits + dots == n && dots <= 1) {
        num = ssf_node_number_text(scratch(c), d, n);
        if (num && t[0] == '-') num = ssf_node_unary(scratch(c), SSF_N_NEG, num);
    }
    free(t);
    return num;
}

/* TEXT on either side: a number text as the number, else names compared
 * case-insensitively without spaces; a text against anything else differs. */
static ssf_verdict compare_text(ctx *c, const ssf_node *g, const ssf_node *p, int depth)
{
    const ssf_node *t = g->kind == SSF_N_TEXT ? g : p;
    ssf_node *num = text_number(c, t->name);
    if (num) return t == g ? compare(c, num, p, depth + 1) : compare(c, g, num, depth + 1);
    ssf_buf a = {0}, b = {0};
    ssf_verdict v = SSF_DIFFERENT;
    if (spell(g, &a, 0) && spell(p, &b, 0)) {
        v = names_equal(a.data, b.data, 1) ? SSF_EQUAL : SSF_DIFFERENT;
        say(c, "texts %s: \"%.80s\" vs \"%.80s\"", v == SSF_EQUAL ? "equal" : "differ", a.data,
            b.data);
    } else
        say(c, "a text against a %s", kind_word(t == g ? p->kind : g->kind));
    ssf_buf_free(&a);
    ssf_buf_free(&b);
    return v;
}

/* A symbol against a symbol or a product of letters: equal names decide
 * (case-insensitively for names longer than one letter); otherwise the
 * numbers decide.  UNKNOWN here means "no decision, go on". */
static ssf_verdict compare_names(ctx *c, const ssf_node *g, const ssf_node *p)
{
    ssf_buf a = {0}, b = {0};
    ssf_verdict v = SSF_UNKNOWN;
    if (spell(g, &a, 0) && spell(p, &b, 0)) {
        int any_case = a.len > 1 && b.len > 1;
        if (names_equal(a.data, b.data, any_case) ||
            (a.len == 1 && b.len == 1 && tolower((unsigned char)a.data[0]) == 'e' &&
             tolower((unsigned char)b.data[0]) == 'e')) {
            v = SSF_EQUAL;
            say(c, "same name: %.80s", a.data);
        }
    }
    ssf_buf_free(&a);
    ssf_buf_free(&b);
    return v;
}

/* ---- infinity ---- */

/* +1 / -1 for ∞ and -∞ (also -1·∞), 0 for anything else. */
static int infinity_sign(const ssf_node *n)
{
    if (n->kind == SSF_N_INFINITY) return 1;
    if (n->kind == SSF_N_NEG && n->n_kids == 1) return -infinity_sign(n->kids[0]);
    if (n->kind == SSF_N_MUL && n->n_kids == 2 && n->kids[0]->kind == SSF_N_NUMBER) {
        int s = fmpq_sgn(n->kids[0]->value);
        return s * infinity_sign(n->kids[1]);
    }
    return 0;
}

static ssf_verdict compare_infinity(ctx *c, const ssf_node *g, const ssf_node *p)
{
    int sg = infinity_sign(g), sp = infinity_sign(p);
    int ig = contains_kind(g, SSF_N_INFINITY, 0), ip = contains_kind(p, SSF_N_INFINITY, 0);
    if ((ig && !sg) || (ip && !sp)) {
        say(c, "unsupported: infinity inside an expression");
        return SSF_UNKNOWN;
    }
    if (sg && sp) {
        say(c, "%s", sg == sp ? "same infinity" : "opposite infinities");
        return sg == sp ? SSF_EQUAL : SSF_DIFFERENT;
    }
    say(c, "an infinity against a finite value");
    return SSF_DIFFERENT;
}

/* ---- the rule order ---- */

static ssf_verdict compare_values(ctx *c, const ssf_node *g, const ssf_node *p, int depth)
{
    if (g->kind == SSF_N_TEXT || p->kind == SSF_N_TEXT) return compare_text(c, g, p, depth);
    if (g->kind == SSF_N_SYMBOL || p->kind == SSF_N_SYMBOL) {
        ssf_verdict v = compare_names(c, g, p);
        if (v != SSF_UNKNOWN) return v;
    }
    if (contains_kind(g, SSF_N_INFINITY, 0) || contains_kind(p, SSF_N_INFINITY, 0))
        return compare_infinity(c, g, p);
    if (g->kind == SSF_N_FUNC && p->kind == SSF_N_FUNC && g->op.func == SSF_F_UNKNOWN &&
        p->op.func == SSF_F_UNKNOWN) {
        if (strcmp(g->name ? g->name : "", p->name ? p->name : "") != 0) {
            say(c, "different functions: %s vs %s", g->name, p->name);
            return SSF_DIFFERENT;
        }
        return ordered(c, g->kids, g->n_kids, p->kids, p->n_kids, depth, "arguments");
    }
    if (c->o->float_rounding >= 0 && (is_decimal_literal(g) || is_decimal_literal(p)) &&
        !has_free(g, 0) && !has_free(p, 0))
        return decimal_rule(c, g, p);
    return numeric(c, g, p);
}

static ssf_verdict compare_rules(ctx *c, const ssf_node *g, const ssf_node *p, int depth)
{
    if (c->o->unwrap_assignments) {
        const ssf_node *x;
        if (!is_relation(p) && (x = assignment_value(g))) {
            ssf_verdict v = compare(c, x, p, depth + 1);
            ssf_fail_prefix(c->reason, "gold assignment's value");
            return v;
        }
        if (!is_relation(g) && (x = equation_value(p))) {
            ssf_verdict v = compare(c, g, x, depth + 1);
            ssf_fail_prefix(c->reason, "pred equation's value");
            return v;
        }
        int set_like = p->kind == SSF_N_SET || p->kind == SSF_N_INTERVAL ||
                       p->kind == SSF_N_UNION || (p->kind == SSF_N_TUPLE && p->n_kids == 2);
        const ssf_node *s = is_relation(g) && set_like ? relation_as_set(c, g) : NULL;
        if (s) return compare(c, s, p, depth + 1);
    }
    g = pm_read(c, g);
    p = pm_read(c, p);
    if (is_relation(g) && is_relation(p)) return compare_relations(c, g, p);
    g = scaled_matrix(c, g);
    p = scaled_matrix(c, p);
    if (g->kind == SSF_N_MATRIX || p->kind == SSF_N_MATRIX) return compare_matrices(c, g, p, depth);
    if (is_container(g) || is_container(p))
        return compare_containers(c, (ssf_node *)g, (ssf_node *)p, depth);
    if (is_relation(g) || is_relation(p)) {
        say(c, "a relation against a %s", kind_word(is_relation(g) ? p->kind : g->kind));
        return SSF_DIFFERENT;
    }
    return compare_values(c, g, p, depth);
}

/* LightEval 0.10 compared a decimal (a sympy Float) with structural
 * equality first, where Float(204.0) != Integer(204), and then by rounding
 * to `precision` places, which received a Doc object and raised: so only a
 * structurally equal decimal (same digits) matches. */
static ssf_verdict decimal_structure(ctx *c, const ssf_node *g, const ssf_node *p)
{
    char *a = ssf_node_sexpr(g), *b = ssf_node_sexpr(p);
    int same = strcmp(a, b) == 0;
    free(a);
    free(b);
    say(c, same ? "identical decimals"
                : "compat: a decimal compared with precision=Doc raises in LightEval 0.10: false");
    return same ? SSF_EQUAL : SSF_DIFFERENT;
}

static ssf_verdict compare(ctx *c, const ssf_node *g, const ssf_node *p, int depth)
{
    if (step(c)) return over_budget(c);
    if (depth > MAX_DEPTH) {
        say(c, "unsupported: nesting deeper than %d", MAX_DEPTH);
        return SSF_UNKNOWN;
    }
    if (c->o->decimals_fail && (is_decimal_literal(g) || is_decimal_literal(p)))
        return decimal_structure(c, g, p);
    if (identical(c, g, p, 0)) {
        say(c, "identical");
        return SSF_EQUAL;
    }
    if (c->over) return over_budget(c);
    int pg = g->kind == SSF_N_PERCENT, pp = p->kind == SSF_N_PERCENT;
    if (c->o->percent != SSF_PERCENT_EITHER || pg == pp) return compare_rules(c, g, p, depth);
    /* 28% against 28: by value first, then without the percent sign. */
    ssf_verdict v = compare_rules(c, g, p, depth);
    if (v == SSF_EQUAL) return v;
    ssf_verdict w = compare_rules(c, pg ? g->kids[0] : g, pp ? p->kids[0] : p, depth);
    if (w == SSF_EQUAL) say(c, "equal without the percent sign");
    return w == SSF_EQUAL ? w : both(v, w);
}

void ssf_equiv_thread_done(void)
{
    flint_cleanup();
}

void ssf_equiv_options_default(ssf_equiv_options *o)
{
    memset(o, 0, sizeof *o);
    o->float_rounding = 6;
    o->percent = SSF_PERCENT_VALUE;
    o->unwrap_assignments = 1;
    o->strict_sets = 1;
    o->vectors_as_tuples = 1;
    o->prec_bits = 256;
    o->points = 4;
    o->seed = 0x5353465445564131u; /* "SSFTEVA1" */
    o->max_steps = 1000000;
}

/* Out-of-range options are clamped rather than trusted: a precision of 0 or
 * zero points would make every answer "equal". */
static void sane_options(ssf_equiv_options *o, const ssf_equiv_options *in)
{
    if (in)
        *o = *in;
    else
        ssf_equiv_options_default(o);
    if (o->prec_bits < 64) o->prec_bits = 64;
    if (o->prec_bits > 1 << 16) o->prec_bits = 1 << 16;
    if (o->points < 1) o->points = 1;
    if (o->points > 64) o->points = 64;
    if (o->float_rounding > 1000) o->float_rounding = 1000;
}

ssf_verdict ssf_equiv(const ssf_node *gold, const ssf_node *pred, const ssf_equiv_options *o,
                      ssf_error *reason)
{
    ssf_equiv_options opt;
    sane_options(&opt, o);
    ctx c;
    ctx_init(&c, &opt, reason);
    if (reason) reason->msg[0] = '\0';
    if (!gold || !pred) {
        say(&c, "unsupported: missing %s tree", gold ? "pred" : "gold");
        return SSF_UNKNOWN;
    }
    ssf_verdict v = compare(&c, gold, pred, 0);
    if (c.over) v = over_budget(&c);
    ssf_arena_free(c.scratch);
    return v;
}

/* ---- canonical keys ---- */

static void key(ctx *c, const ssf_node *n, ssf_buf *b, int depth);

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void key_set(ctx *c, const ssf_node *n, ssf_buf *b, int depth)
{
    char **k = ssf_xcalloc(n->n_kids + 1, sizeof *k);
    for (size_t i = 0; i < n->n_kids; i++) {
        ssf_buf e = {0};
        key(c, n->kids[i], &e, depth + 1);
        k[i] = ssf_buf_take(&e);
    }
    qsort(k, n->n_kids, sizeof *k, cmp_str);
    ssf_buf_putc(b, '{');
    for (size_t i = 0, out = 0; i < n->n_kids; i++) {
        if (i && strcmp(k[i], k[i - 1]) == 0) continue; /* a set: duplicates collapse */
        if (out++) ssf_buf_putc(b, ',');
        ssf_buf_puts(b, k[i]);
    }
    ssf_buf_putc(b, '}');
    for (size_t i = 0; i < n->n_kids; i++)
        free(k[i]);
    free(k);
}

static void key_list(ctx *c, const ssf_node *n, ssf_buf *b, int depth, char open, char close)
{
    ssf_buf_putc(b, open);
    for (size_t i = 0; i < n->n_kids; i++) {
        if (i) ssf_buf_putc(b, ',');
        key(c, n->kids[i], b, depth + 1);
    }
    ssf_buf_putc(b, close);
}

/* "q:p/q" for an exact rational, "n:<20 digits>" for another constant whose
 * ball is tight enough; 0 when the tree has no such value. */
static int key_value(ctx *c, const ssf_node *n, ssf_buf *b)
{
    if (has_free(n, 0) || contains_kind(n, SSF_N_INFINITY, 0)) return 0;
    val v;
    val_init(&v);
    c->point = 0;
    set_prec(c, 1);
    int ok = eval(c, n, &v, 0) == 0;
    if (ok && !v.exact && acb_is_exact(v.b) && arb_is_zero(acb_imagref(v.b)) &&
        arf_cmpabs_2exp_si(arb_midref(acb_realref(v.b)), 4096) < 0 &&
        arf_cmpabs_2exp_si(arb_midref(acb_realref(v.b)), -4096) > 0) {
        arf_get_fmpq(v.q, arb_midref(acb_realref(v.b)));
        v.exact = 1;
    }
    if (ok && v.exact && q_bits(v.q) <= 65536) {
        char small[50] = "q:";
        if (q_str(v.q, small + 2)) {
            ssf_buf_puts(b, small);
        } else {
            char *s = fmpq_get_str(NULL, 10, v.q);
            ssf_buf_puts(b, "q:");
            ssf_buf_puts(b, s);
            flint_free(s);
        }
    } else if (ok && acb_is_finite(v.b) && (v.exact || acb_rel_accuracy_bits(v.b) > 80)) {
        to_ball(c, &v);
        char *re = arb_get_str(acb_realref(v.b), 20, ARB_STR_NO_RADIUS);
        ssf_buf_puts(b, "n:");
        ssf_buf_puts(b, re);
        if (!arb_contains_zero(acb_imagref(v.b))) {
            char *im = arb_get_str(acb_imagref(v.b), 20, ARB_STR_NO_RADIUS);
            ssf_buf_puts(b, ";");
            ssf_buf_puts(b, im);
            flint_free(im);
        }
        flint_free(re);
    } else
        ok = 0;
    val_clear(&v);
    return ok;
}

/* An expression in free symbols keys by its values at the comparison's
 * signed points ("f:" and the values), so that forms the comparison finds
 * equal (x^2+1 and 1+x^2, 2x and x\cdot 2) vote together; 0 (the caller
 * writes the structure) when a value cannot be told to 80 bits. */
static int key_function(ctx *c, const ssf_node *n, ssf_buf *b)
{
    if (!has_free(n, 0)) return 0;
    ssf_buf out = {0};
    ssf_buf_puts(&out, "f:");
    val v;
    val_init(&v);
    int ok = 1;
    c->signed_points = 1;
    set_prec(c, 1);
    for (int k = 0; k < c->o->points && ok; k++) {
        c->point = k;
        ok = eval(c, n, &v, 0) == 0;
        if (ok && !v.exact) ok = acb_is_finite(v.b) && acb_rel_accuracy_bits(v.b) > 80;
        if (!ok) break;
        char text[96];
        val_str(c, &v, text, sizeof text);
        ssf_buf_printf(&out, "%s%s", k ? "|" : "", text);
    }
    c->signed_points = 0;
    c->point = 0;
    val_clear(&v);
    if (ok) ssf_buf_append(b, out.data, out.len);
    ssf_buf_free(&out);
    return ok;
}

/* One point's lhs - rhs of a relation keyed below, divided by *first, the
 * first value that was not 0 (set here; by its size alone when `by_size`).
 * 0 when the value cannot be told to 80 bits. */
static int key_ratio(ctx *c, const rel3 *r, int by_size, val *first, int *have, char *text,
                     size_t size)
{
    val d;
    val_init(&d);
    int ok = rel_diff(c, r, &d) == 0 &&
             (d.exact || (acb_is_finite(d.b) && acb_rel_accuracy_bits(d.b) > 80));
    if (ok && !*have && val_nonzero(&d)) {
        val_set(c, first, &d);
        if (by_size && val_sign(first) < 0) val_neg(first);
        *have = 1;
    }
    if (ok && *have) val_div(c, &d, first);
    if (ok) val_str(c, &d, text, size);
    val_clear(&d);
    return ok;
}

/* A relation keys by its kind and the values of lhs - rhs at the signed
 * points, divided by the first that is not 0, as the comparison finds
 * relations equal up to such a factor: y = 2x + 3 and 2x - y + 3 = 0 vote
 * together.  An inequality's factor is positive, and > and >= become < and
 * <= with the sides swapped, so x \le 5 votes with 5 \ge x.  0 (the caller
 * writes the structure) for a chain, or a value the balls cannot place. */
static int key_relation(ctx *c, const ssf_node *n, ssf_buf *b)
{
    static const char *const names[] = {"=", "!=", "<", "<="};
    rel3 r;
    if (n->kind != SSF_N_REL || chain(n, &r, 1) != 1) return 0;
    ssf_rel op = r.op == SSF_REL_APPROX ? SSF_REL_EQ : r.op;
    if (op == SSF_REL_GT || op == SSF_REL_GE) {
        const ssf_node *t = r.l;
        r.l = r.r;
        r.r = t;
        op = flip(op);
    }
    ssf_buf out = {0};
    ssf_buf_printf(&out, "r%s:", names[op]);
    val first;
    val_init(&first);
    int ok = 1, have = 0;
    c->signed_points = 1;
    set_prec(c, 1);
    for (int k = 0; k < c->o->points && ok; k++) {
        char text[96];
        c->point = k;
        ok = key_ratio(c, &r, op == SSF_REL_LT || op == SSF_REL_LE, &first, &have, text,
                       sizeof text);
        if (ok) ssf_buf_printf(&out, "%s%s", k ? "|" : "", text);
    }
    c->signed_points = 0;
    c->point = 0;
    val_clear(&first);
    if (ok) ssf_buf_append(b, out.data, out.len);
    ssf_buf_free(&out);
    return ok;
}

static void key(ctx *c, const ssf_node *n, ssf_buf *b, int depth)
{
    if (depth > MAX_DEPTH) {
        ssf_buf_puts(b, "?");
        return;
    }
    n = scaled_matrix(c, n); /* 2\begin{pmatrix}1\\2\end{pmatrix} votes as (2, 4) */
    switch (n->kind) {
    case SSF_N_TEXT: {
        char *t = fold_name(n->name, 1);
        ssf_buf_puts(b, "t:");
        ssf_buf_puts(b, t);
        free(t);
        return;
    }
    case SSF_N_SET:
        key_set(c, expand_pm(c, (ssf_node *)n), b, depth); /* {1 ± 2} votes as {-1, 3} */
        return;
    case SSF_N_PM:
        key_set(c, pm_as_set(c, n), b, depth);
        return;
    case SSF_N_TUPLE:
        key_list(c, n, b, depth, '(', ')');
        return;
    case SSF_N_INTERVAL:
        key_list(c, n, b, depth, n->left_open ? '(' : '[', n->right_open ? ')' : ']');
        return;
    case SSF_N_MATRIX: /* compared cell by cell: \frac13 and 1/3 vote together */
        if (!c->o->vectors_as_tuples || !is_vector(n))
            ssf_buf_printf(b, "m%zux%zu", n->rows, n->cols); /* a vector votes as its tuple */
        key_list(c, n, b, depth, '(', ')');
        return;
    default:
        break;
    }
    /* x = 11 votes with 11, as it grades against a gold 11; y = 2x + 3 keys as
     * the relation it is, with 2x - y + 3 = 0 and apart from z = 2x + 3 */
    const ssf_node *value = c->o->unwrap_assignments ? assignment_value(n) : NULL;
    if (value && !has_free(value, 0)) {
        key(c, value, b, depth + 1);
        return;
    }
    const ssf_node *two = pm_distributed(c, n); /* \frac{1 \pm 3}{2} votes as {-1, 2} */
    if (two != n) {
        key_set(c, two, b, depth);
        return;
    }
    if (key_value(c, n, b) || key_function(c, n, b) || key_relation(c, n, b)) return;
    char *s = ssf_node_sexpr(n);
    ssf_buf_puts(b, s);
    free(s);
}

char *ssf_canonical_key(const ssf_node *n, const ssf_equiv_options *o)
{
    ssf_equiv_options opt;
    sane_options(&opt, o);
    ctx c;
    ctx_init(&c, &opt, NULL);
    ssf_buf b = {0};
    if (n)
        key(&c, n, &b, 0);
    else
        ssf_buf_puts(&b, "(null)");
    ssf_arena_free(c.scratch);
    /* Keys are stored with every sample and compared for votes: a huge exact
     * value (1/2004!) is replaced by its digest, which keeps it exact. */
    if (b.len > 96) {
        char hex[65];
        ssf_sha256_hex(b.data, b.len, hex);
        ssf_buf_reset(&b);
        ssf_buf_printf(&b, "h:%s", hex);
    }
    return ssf_buf_take(&b);
}
