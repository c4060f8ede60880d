/*
 * expr.h - the expression tree the grader parses answers into.
 *
 * One tree type serves LaTeX and plain-text answers.  Numbers are exact
 * rationals (FLINT fmpq) with a flag remembering a decimal literal, because
 * the rounding rule of the reference graders applies only when one side was
 * written as a decimal.  Everything that is not a number is a node with
 * children: n-ary sums and products, powers, functions, relations, and the
 * containers (sets, tuples, intervals, matrices).
 *
 * Trees are immutable once built and owned by an ssf_arena: every node of a
 * parse lives in one arena and is freed with it, so parsers and comparisons
 * never free nodes one by one.
 */
#ifndef SSFTEVAL_METRICS_EXPR_H
#define SSFTEVAL_METRICS_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include <flint/fmpq.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_node_kind {
    SSF_N_NUMBER, /* value: exact rational; decimals>=0 when written as a decimal */
    SSF_N_SYMBOL, /* name: a variable such as "x", "\\alpha", "x_1" */
    SSF_N_TEXT,   /* name: a text answer ("odd", "Evelyn"), compared as a string */
    SSF_N_PI,
    SSF_N_E,        /* Euler's number */
    SSF_N_I,        /* the imaginary unit */
    SSF_N_INFINITY, /* +infinity; -infinity is NEG(INFINITY) */
    SSF_N_ADD,      /* n-ary sum of kids */
    SSF_N_MUL,      /* n-ary product of kids */
    SSF_N_NEG,      /* -kids[0] */
    SSF_N_POW,      /* kids[0] ^ kids[1]; a/b is MUL(a, POW(b, -1)), sqrt[n]{x} is POW(x, 1/n) */
    SSF_N_FUNC,     /* name(kids...): see ssf_func below */
    SSF_N_PERCENT,  /* kids[0] %: value kids[0]/100, kept for the percent policy */
    SSF_N_REL,      /* rel: kids[0] REL kids[1] */
    SSF_N_AND,      /* a chain of relations, e.g. 1 < x < 3 */
    SSF_N_SET,      /* unordered: {kids} */
    SSF_N_TUPLE,    /* ordered: (kids) */
    SSF_N_INTERVAL, /* kids[0], kids[1] with left_open/right_open */
    SSF_N_UNION,    /* union of kids (sets/intervals) */
    SSF_N_MATRIX,   /* rows x cols kids, row-major */
    SSF_N_PM,       /* kids[0] ± kids[1] (kids[0] may be absent: n_kids 1 means ±kids[0]) */
} ssf_node_kind;

typedef enum ssf_rel {
    SSF_REL_EQ,
    SSF_REL_NE,
    SSF_REL_LT,
    SSF_REL_LE,
    SSF_REL_GT,
    SSF_REL_GE,
    SSF_REL_APPROX,
} ssf_rel;

typedef enum ssf_func {
    SSF_F_SIN,
    SSF_F_COS,
    SSF_F_TAN,
    SSF_F_SEC,
    SSF_F_CSC,
    SSF_F_COT,
    SSF_F_ASIN,
    SSF_F_ACOS,
    SSF_F_ATAN,
    SSF_F_SINH,
    SSF_F_COSH,
    SSF_F_TANH,
    SSF_F_LN,  /* natural log */
    SSF_F_LOG, /* one kid: base 10 (LaTeX \log is natural in sympy: see parser notes); two:
                  log_kids[1](kids[0]) */
    SSF_F_EXP,
    SSF_F_ABS,
    SSF_F_FLOOR,
    SSF_F_CEIL,
    SSF_F_FACTORIAL,
    SSF_F_DOUBLE_FACTORIAL, /* n!! = n(n-2)(n-4)... down to 1 or 2 */
    SSF_F_BINOM,            /* binom(n, k) */
    SSF_F_GCD,
    SSF_F_LCM,
    SSF_F_UNKNOWN, /* an applied function symbol f(x): name holds "f" */
} ssf_func;

typedef struct ssf_node ssf_node;
struct ssf_node {
    ssf_node_kind kind;
    union {
        ssf_rel rel;   /* SSF_N_REL */
        ssf_func func; /* SSF_N_FUNC */
    } op;
    fmpq_t value;     /* SSF_N_NUMBER */
    int decimals;     /* SSF_N_NUMBER: digits after the point of a decimal literal, else -1 */
    const char *name; /* SYMBOL, TEXT, FUNC UNKNOWN: NUL-terminated, arena-owned */
    unsigned char left_open, right_open; /* SSF_N_INTERVAL */
    size_t rows, cols;                   /* SSF_N_MATRIX */
    size_t n_kids;
    ssf_node **kids;
};

/* An arena owns nodes, strings and FLINT numbers.  It also carries the
 * budget: every node allocation counts as a step, and a parse or comparison
 * that exceeds it fails with "over budget" instead of running away. */
typedef struct ssf_arena ssf_arena;

ssf_arena *ssf_arena_new(size_t max_nodes);
void ssf_arena_free(ssf_arena *a);
/* Non-zero once an allocation was refused for the budget. */
int ssf_arena_exhausted(const ssf_arena *a);

/* Constructors return NULL once the arena's budget is spent; callers pass
 * NULL kids through (a constructor given a NULL kid returns NULL), so a
 * parser needs only one check at the end. */
ssf_node *ssf_node_int(ssf_arena *a, long v);
ssf_node *ssf_node_rational(ssf_arena *a, const fmpq_t v, int decimals);
/* Parses digits with an optional '.', e.g. "0012.500" (no sign, no grouping). */
ssf_node *ssf_node_number_text(ssf_arena *a, const char *digits, size_t len);
ssf_node *ssf_node_leaf(ssf_arena *a, ssf_node_kind kind); /* PI, E, I, INFINITY */
ssf_node *ssf_node_symbol(ssf_arena *a, ssf_node_kind kind, const char *name, size_t len);
ssf_node *ssf_node_unary(ssf_arena *a, ssf_node_kind kind, ssf_node *kid); /* NEG, PERCENT */
ssf_node *ssf_node_binary(ssf_arena *a, ssf_node_kind kind, ssf_node *x, ssf_node *y); /* POW */
ssf_node *ssf_node_rel(ssf_arena *a, ssf_rel rel, ssf_node *lhs, ssf_node *rhs);
ssf_node *ssf_node_func(ssf_arena *a, ssf_func f, const char *name, ssf_node **args, size_t n);
/* ADD, MUL, AND, SET, TUPLE, UNION, PM: the kids array is copied. */
ssf_node *ssf_node_list(ssf_arena *a, ssf_node_kind kind, ssf_node **kids, size_t n);
ssf_node *ssf_node_interval(ssf_arena *a, ssf_node *lo, ssf_node *hi, int left_open,
                            int right_open);
ssf_node *ssf_node_matrix(ssf_arena *a, ssf_node **cells, size_t rows, size_t cols);
/* x / y as MUL(x, POW(y, -1)) and x - y as ADD(x, NEG(y)). */
ssf_node *ssf_node_div(ssf_arena *a, ssf_node *x, ssf_node *y);
ssf_node *ssf_node_sub(ssf_arena *a, ssf_node *x, ssf_node *y);

/* A deterministic text form, e.g. "(add 1 (mul 2 x))"; used by tests and as
 * the structural key of a tree.  Returns a malloc'd string. */
char *ssf_node_sexpr(const ssf_node *n);

#ifdef __cplusplus
}
#endif
#endif
