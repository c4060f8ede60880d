/*
 * parse.c - answer strings (LaTeX or plain text) into expression trees.
 *
 * Three passes over one extracted answer, all on one `parser` so that the
 * code stays reentrant (the only statics are const tables):
 *
 *   1. unwrap: trim, drop a trailing '.', a surrounding $..$, \(..\), \[..\],
 *      \boxed{..} or \fbox{..}; the optional `equations` cut.  These only
 *      move the window [lo, hi) over the caller's text, so every byte
 *      offset in an error still points into the caller's string.
 *   2. lex: the normalization of latex2sympy's normalize_latex happens here
 *      (\left, \dfrac, spacing, \text{} runs, currency, degrees, digit
 *      grouping, percent words), then trailing units are dropped.
 *   3. a recursive-descent parser builds the tree in the arena.
 *
 * Choices where the notation is ambiguous (the reference is sympy's reading
 * through latex2sympy unless noted):
 *   - a lone e is Euler's number and a lone i the imaginary unit;
 *   - \log without a base is the natural log (sympy's log), so it becomes
 *     SSF_F_LN; \lg is the base-10 SSF_F_LOG with one kid; \log_b x is LOG(x, b);
 *   - f, g, h, F, G, H directly followed by '(' are applied functions (FUNC
 *     UNKNOWN); any other letter before '(' multiplies: x(1+x), r(r+5);
 *   - implicit multiplication binds tighter than '/': 1/2x is 1/(2x), and a
 *     leading minus takes the product: -2x is -(2x);
 *   - \frac12 and \sqrt3 take one digit, as LaTeX does, but 2^10 takes the
 *     whole number (people mean 1024), as do plain sqrt 12 and \log_28's 8;
 *   - 2\frac12 and "3128 1/2" (integer, space, proper fraction of integers)
 *     are mixed numbers, folded to the rational 5/2 or 6257/2;
 *   - "a:b" is the ratio a/b, except a clock time h:0m ("12:00", "1:05"),
 *     which stays the TEXT "12:00" so that 12:00 and 1:00 differ;
 *   - "1,234" is one number, but inside ( [ { a single ",ddd" group is a
 *     list separator unless ddd starts with 0, so (1,100) is a pair and
 *     (5,000) is 5000; "1 000" groups too, "32, 349" never does;
 *   - a 2-tuple with an infinite end, one next to \cup, or one after \in is
 *     an open interval; otherwise (a,b) stays a TUPLE;
 *   - E-notation (1e-3, 2.5E+4) is a decimal literal, as it is a Float in sympy;
 *     3\times10^8 is a product;
 *   - a trailing \text{..} run of words (17\text{ any text}, 9\text{ m/s},
 *     the words of \text{12 cm}) or a unit word after a value is dropped
 *     when strip_units is set; a one-letter unit (m, g, s, h, L, l) only
 *     when written apart ("5 m"), since 5m may be 5*m, and C, F, K after a
 *     degree sign (25^\circ C);
 *   - an answer made only of words ("odd", "Evelyn", "no solution", "Alina and
 *     Cecile") is TEXT (a SET of them for a list); a word inside math is a
 *     product of letters (latex2sympy's reading of \mathrm-less words);
 *   - "(C)" or \text{(C)} with one capital letter is the TEXT "C";
 *   - 204_5 (a number with a subscript) is the symbol "204_5", as in sympy.
 *
 * Limits: nesting beyond max_depth (and never beyond HARD_DEPTH, which the C
 * stack sets) fails with "nesting deeper than N"; numbers over MAX_DIGITS
 * digits and answers over MAX_TOKENS tokens fail "over budget", as does the
 * arena's node budget.
 */
#include "parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flint/fmpz.h>

/* A number longer than this is refused before FLINT sees it. */
#define MAX_DIGITS 100000
/* E-notation exponents beyond this would build huge powers of ten. */
#define MAX_EXP10 100000
/* Token count cap: a longer answer is not an answer. */
#define MAX_TOKENS 262144
#define WHY_SIZE 200
/* Bytes of token names kept on the stack before the pool needs the heap. */
#define POOL_INLINE 256
/* Tokens kept on the stack before the lexer needs the heap. */
#define TOKENS_INLINE 32
/* The C stack bounds recursion whatever max_depth asks for. */
#define HARD_DEPTH 1000

/* clang-format off */
enum tk {
    T_END, T_NUM, T_SYM, T_WORD, T_FUNC, T_PI, T_INF,
    T_PLUS, T_MINUS, T_PM, T_MUL, T_DIV, T_POW, T_UNDER, T_BANG, T_PERCENT,
    T_REL, T_COLON, T_COMMA, T_SEMI, T_SEP,
    T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE, T_LSET, T_RSET,
    T_BAR, T_LFLOOR, T_RFLOOR, T_LCEIL, T_RCEIL,
    T_FRAC, T_BINOM, T_SQRT, T_CUP, T_EMPTY, T_BEGIN, T_ENDENV, T_AMP, T_ROWSEP, T_OVER,
};

static const char *const tk_names[] = {
    "end of input", "number", "symbol", "word", "function", "\\pi", "\\infty",
    "'+'", "'-'", "\\pm", "'*'", "'/'", "'^'", "'_'", "'!'", "'%'",
    "relation", "':'", "','", "';'", "'and'",
    "'('", "')'", "'['", "']'", "'{'", "'}'", "'\\{'", "'\\}'",
    "'|'", "\\lfloor", "\\rfloor", "\\lceil", "\\rceil",
    "\\frac", "\\binom", "\\sqrt", "\\cup", "\\emptyset", "\\begin", "\\end", "'&'", "'\\\\'",
    "\\over",
};
/* clang-format on */

/* T_FUNC subs beyond ssf_func: names that become FUNC UNKNOWN, and \lg. */
enum { F_MAX = 100, F_MIN, F_LG };

typedef struct tok {
    int kind;
    int sub;          /* ssf_func, ssf_rel, or a flag (T_SQRT: plain-text sqrt) */
    size_t pos, len;  /* bytes of the caller's text */
    size_t str, slen; /* T_SYM / T_WORD name in the string pool */
    long exp10;       /* T_NUM: E-notation exponent */
    size_t ndigits;   /* T_NUM */
    unsigned text;    /* the \text{} run it came from, 0 in math */
    unsigned char space, sci;
    unsigned char after_degree; /* a degree sign stood just before it: the C of 25^\circ C */
} tok;

#define NODES_INLINE 8

/* Most lists hold a few items: those live in the struct, and only longer
 * ones go to the heap.  A `nodes` is never copied, so v may point at small. */
typedef struct nodes {
    ssf_node **v;
    size_t n, cap;
    ssf_node *small[NODES_INLINE];
} nodes;

/* Fields added here are also set in parser_init. */
typedef struct parser {
    ssf_arena *a;
    const char *s; /* the caller's text */
    size_t lo, hi; /* the window being parsed */
    int max_depth;
    int strip_units;
    int fold_case;
    int nested_factorials;
    /* lexer */
    size_t i;
    tok *t, *small_t; /* t starts as small_t, on the caller's stack */
    size_t n, cap, k;
    char *pool, *pool_small; /* token names, NUL-separated; pool starts as pool_small */
    size_t pool_len, pool_cap;
    int env, nest, space;
    int degree;   /* a degree sign was dropped since the last token */
    int set_nest; /* open \{ ... \} around the lexer */
    unsigned text, text_ids;
    int text_braces, text_op;
    /* parser */
    int depth, abs_depth;
    /* outcome */
    int failed, budget;
    int quiet; /* the caller takes no message: failures are not formatted */
    size_t at;
    char *why; /* WHY_SIZE bytes beside the parser, so that clearing it stays cheap */
} parser;

/* ---- errors -------------------------------------------------------------------------------- */

static void fail(parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed) return;
    if (!p->quiet) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->why, WHY_SIZE, fmt, ap);
        va_end(ap);
    }
    p->failed = 1;
    p->at = at;
}

/* Constructors return NULL only once the budget is spent (the parser never
 * passes them a NULL kid), so one check here covers every allocation. */
static ssf_node *mk(parser *p, ssf_node *n)
{
    if (!n && !p->failed) {
        fail(p, p->k < p->n ? p->t[p->k].pos : p->hi, "the answer needs more nodes than allowed");
        p->budget = 1;
    }
    return n;
}

static void budget_fail(parser *p, size_t at, const char *what)
{
    fail(p, at, "%s", what);
    p->budget = 1;
}

/* ---- small helpers ------------------------------------------------------------------------- */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int at_strn(const parser *p, size_t i, const char *lit, size_t n)
{
    return i <= p->hi && p->hi - i >= n && memcmp(p->s + i, lit, n) == 0;
}

/* The lexer probes literals at every step: their length is a constant. */
#define at_str(p, i, lit) at_strn(p, i, "" lit, sizeof(lit) - 1)

static int ch(const parser *p, size_t i)
{
    return i < p->hi ? (unsigned char)p->s[i] : 0;
}

/* Whether the table entry s is exactly w[0..n); the first byte rules out
 * most entries before any length is taken. */
static int same_word(const char *s, const char *w, size_t n)
{
    if (!n) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != w[i] || !s[i]) return 0; /* s is shorter than n */
    return s[n] == '\0';
}

static int word_in(const char *w, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (same_word(*list, w, n)) return 1;
    return 0;
}

/* Not `= {0}`: zeroing the inline array costs more than most lists do. */
static void nodes_init(nodes *v)
{
    v->v = NULL;
    v->n = v->cap = 0;
}

static void push_node(nodes *v, ssf_node *n)
{
    if (!v->v) {
        v->v = v->small;
        v->cap = NODES_INLINE;
    }
    if (v->n == v->cap) {
        v->cap *= 2;
        if (v->v == v->small) {
            v->v = ssf_xmalloc(v->cap * sizeof *v->v);
            memcpy(v->v, v->small, v->n * sizeof *v->v);
        } else {
            v->v = ssf_xrealloc(v->v, v->cap * sizeof *v->v);
        }
    }
    v->v[v->n++] = n;
}

static void nodes_free(nodes *v)
{
    if (v->v != v->small) free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

/* ---- word tables --------------------------------------------------------------------------- */

typedef struct named {
    const char *name;
    int kind, sub;
} named;

/* Function names, shared by \sin and plain sin (and \operatorname{sin}). */
/* clang-format off */
static const named funcs[] = {
    {"sin", T_FUNC, SSF_F_SIN},      {"cos", T_FUNC, SSF_F_COS},
    {"tan", T_FUNC, SSF_F_TAN},      {"sec", T_FUNC, SSF_F_SEC},
    {"csc", T_FUNC, SSF_F_CSC},      {"cot", T_FUNC, SSF_F_COT},
    {"arcsin", T_FUNC, SSF_F_ASIN},  {"arccos", T_FUNC, SSF_F_ACOS},
    {"arctan", T_FUNC, SSF_F_ATAN},  {"asin", T_FUNC, SSF_F_ASIN},
    {"acos", T_FUNC, SSF_F_ACOS},    {"atan", T_FUNC, SSF_F_ATAN},
    {"sinh", T_FUNC, SSF_F_SINH},    {"cosh", T_FUNC, SSF_F_COSH},
    {"tanh", T_FUNC, SSF_F_TANH},    {"ln", T_FUNC, SSF_F_LN},
    {"log", T_FUNC, SSF_F_LN},       {"lg", T_FUNC, F_LG},
    {"exp", T_FUNC, SSF_F_EXP},      {"gcd", T_FUNC, SSF_F_GCD},
    {"lcm", T_FUNC, SSF_F_LCM},      {"abs", T_FUNC, SSF_F_ABS},
    {"max", T_FUNC, F_MAX},          {"min", T_FUNC, F_MIN},
    {"sqrt", T_SQRT, 1},             {"pi", T_PI, 0},
    {"infty", T_INF, 0},             {"inf", T_INF, 0},
    {"infinity", T_INF, 0},          {"Infinity", T_INF, 0},
    {"and", T_SEP, 0},               {"or", T_SEP, 0},
    {"percent", T_PERCENT, 0},       {"percentage", T_PERCENT, 0},
    {"pct", T_PERCENT, 0},           {NULL, 0, 0},
};
/* clang-format on */

/* LaTeX commands with a token of their own. */
/* clang-format off */
static const named commands[] = {
    {"frac", T_FRAC, 0},                {"dfrac", T_FRAC, 0},
    {"tfrac", T_FRAC, 0},               {"cfrac", T_FRAC, 0},
    {"binom", T_BINOM, 0},              {"dbinom", T_BINOM, 0},
    {"tbinom", T_BINOM, 0},             {"sqrt", T_SQRT, 0},
    {"over", T_OVER, T_FRAC},           {"choose", T_OVER, T_BINOM},
    {"cdot", T_MUL, 0},                 {"times", T_MUL, 0},
    {"ast", T_MUL, 0},                  {"div", T_DIV, 0},
    {"pm", T_PM, 0},                    {"mp", T_PM, 1},
    {"le", T_REL, SSF_REL_LE},          {"leq", T_REL, SSF_REL_LE},
    {"leqslant", T_REL, SSF_REL_LE},    {"ge", T_REL, SSF_REL_GE},
    {"geq", T_REL, SSF_REL_GE},         {"geqslant", T_REL, SSF_REL_GE},
    {"lt", T_REL, SSF_REL_LT},          {"gt", T_REL, SSF_REL_GT},
    {"ne", T_REL, SSF_REL_NE},          {"neq", T_REL, SSF_REL_NE},
    {"approx", T_REL, SSF_REL_APPROX},  {"simeq", T_REL, SSF_REL_APPROX},
    {"in", T_REL, SSF_REL_EQ + 100},    {"cup", T_CUP, 0},
    {"union", T_CUP, 0},                {"emptyset", T_EMPTY, 0},
    {"varnothing", T_EMPTY, 0},         {"infty", T_INF, 0},
    {"pi", T_PI, 0},                    {"lbrace", T_LSET, 0},
    {"rbrace", T_RSET, 0},              {"langle", T_LPAREN, 0},
    {"rangle", T_RPAREN, 0},            {"lbrack", T_LBRACK, 0},
    {"rbrack", T_RBRACK, 0},            {"lvert", T_BAR, 0},
    {"rvert", T_BAR, 0},                {"vert", T_BAR, 0},
    {"lVert", T_BAR, 0},                {"rVert", T_BAR, 0},
    {"lfloor", T_LFLOOR, 0},            {"rfloor", T_RFLOOR, 0},
    {"lceil", T_LCEIL, 0},              {"rceil", T_RCEIL, 0},
    {"colon", T_COLON, 0},              {NULL, 0, 0},
};
/* clang-format on */

/* Commands that change nothing about the value: sizing, spacing, styling,
 * decorations, currency and degree signs, ellipses (latex2sympy turns
 * ",\ldots" into a space). */
static const char *const ignored[] = {
    "left",       "right",     "mleft",        "mright",    "middle",
    "big",        "Big",       "bigg",         "Bigg",      "bigl",
    "bigr",       "Bigl",      "Bigr",         "biggl",     "biggr",
    "Biggl",      "Biggr",     "displaystyle", "textstyle", "scriptstyle",
    "limits",     "nolimits",  "quad",         "qquad",     "hline",
    "boxed",      "fbox",      "hat",          "vec",       "overline",
    "bar",        "tilde",     "underline",    "widehat",   "overrightarrow",
    "mathstrut",  "strut",     "noindent",     "ldots",     "dots",
    "cdots",      "dotsc",     "dotsb",        "vdots",     "degree",
    "circ",       "dollar",    "euro",         "pounds",    "yen",
    "textdollar", "texteuro",  "textsterling", "textyen",   "rupee",
    "enspace",    "thinspace", "negthinspace", "medspace",  "thickspace",
    NULL,
};

/* Commands whose {argument} is a run of text (or a styled letter). */
static const char *const text_commands[] = {
    "text",   "textbf",  "textit", "textrm",   "textnormal",   "textsf",
    "texttt", "textup",  "mathrm", "mathbf",   "mathit",       "mathsf",
    "mathtt", "mathcal", "mathbb", "mathfrak", "mathscr",      "boldsymbol",
    "bm",     "mbox",    "hbox",   "emph",     "operatorname", NULL,
};

static const char *const greek[] = {
    "alpha",   "beta",     "gamma",   "delta", "epsilon",  "varepsilon", "zeta",    "eta",
    "theta",   "vartheta", "iota",    "kappa", "lambda",   "mu",         "nu",      "xi",
    "omicron", "rho",      "varrho",  "sigma", "varsigma", "tau",        "upsilon", "phi",
    "varphi",  "chi",      "psi",     "omega", "Gamma",    "Delta",      "Theta",   "Lambda",
    "Xi",      "Sigma",    "Upsilon", "Phi",   "Psi",      "Omega",      "ell",     NULL,
};

/* Geometry's marks, read as symbols: \angle ABC = 120^\circ is an equation
 * (whose value is the answer), and \angle A is no A. */
static const char *const geometry_marks[] = {"angle", "measuredangle", "triangle", NULL};

static const char *const matrix_envs[] = {
    "matrix", "pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "smallmatrix", "array", NULL,
};

/* Unit words dropped after a value (each also with a plural s/es).  One
 * letter units are listed apart: they need a space before them. */
static const char *const units[] = {
    "mm",      "cm",         "dm",         "km",        "meter",      "metre",      "meters",
    "metres",  "millimeter", "centimeter", "kilometer", "millimetre", "centimetre", "kilometre",
    "inch",    "inches",     "in",         "ft",        "foot",       "feet",       "yard",
    "yd",      "mile",       "mi",         "mph",       "kph",        "kmh",        "mg",
    "kg",      "gram",       "kilogram",   "milligram", "lb",         "lbs",        "pound",
    "ounce",   "oz",         "ton",        "tonne",     "ml",         "mL",         "liter",
    "litre",   "gallon",     "gal",        "quart",     "pint",       "cup",        "hour",
    "hr",      "hrs",        "minute",     "min",       "mins",       "second",     "sec",
    "secs",    "day",        "week",       "month",     "year",       "yr",         "decade",
    "century", "centuries",  "ms",         "degree",    "deg",        "radian",     "rad",
    "unit",    "square",     "sq",         "cubic",     "cu",         "dollar",     "cent",
    "euro",    "yuan",       "rupee",      "usd",       "USD",        "per",        "point",
    "pt",      "people",     "person",     "student",   "apple",      "marble",     "page",
    "step",    "way",        "time",       "item",      "piece",      "box",        "book",
    "coin",    "ball",       "candy",      "candies",   "cookie",     "block",      "tile",
    "seat",    "car",        "hand",       "handshake", "game",       "kmph",       "sqft",
    "acre",    "hectare",    "calorie",    "cal",       "watt",       "volt",       "joule",
    "newton",  "pascal",     "kelvin",     "celsius",   "fahrenheit", "byte",       "bit",
    NULL,
};

static const char *const unit_letters[] = {"m", "g", "s", "h", "L", "l", NULL};

static int is_unit_word(const char *w, size_t n)
{
    if (word_in(w, n, units)) return 1;
    if (n > 2 && w[n - 1] == 's' && word_in(w, n - 1, units)) return 1;
    return n > 3 && w[n - 2] == 'e' && w[n - 1] == 's' && word_in(w, n - 2, units);
}

static const named *find_named(const named *tab, const char *w, size_t n)
{
    for (; tab->name; tab++)
        if (same_word(tab->name, w, n)) return tab;
    return NULL;
}

/* ---- lexer --------------------------------------------------------------------------------- */

static tok *push_tok(parser *p, int kind, size_t pos, size_t len)
{
    if (p->n >= MAX_TOKENS) {
        budget_fail(p, pos, "more than 262144 tokens");
        return NULL;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        if (p->t == p->small_t) {
            p->t = ssf_xmalloc(p->cap * sizeof *p->t);
            memcpy(p->t, p->small_t, p->n * sizeof *p->t);
        } else {
            p->t = ssf_xrealloc(p->t, p->cap * sizeof *p->t);
        }
    }
    tok *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->pos = pos;
    t->len = len;
    t->space = (unsigned char)p->space;
    t->after_degree = (unsigned char)p->degree;
    t->text = p->text;
    p->space = p->degree = 0;
    if (kind == T_LPAREN || kind == T_LBRACK || kind == T_LBRACE || kind == T_LSET) p->nest++;
    if ((kind == T_RPAREN || kind == T_RBRACK || kind == T_RBRACE || kind == T_RSET) && p->nest > 0)
        p->nest--;
    if (kind == T_LSET) p->set_nest++;
    if (kind == T_RSET && p->set_nest > 0) p->set_nest--;
    return t;
}

static const char *tok_str(const parser *p, const tok *t)
{
    return p->pool + t->str;
}

/* Adds s[0..n) and a NUL to the pool, which moves to the heap only when the
 * names outgrow the caller's stack buffer. */
static void pool_add(parser *p, const char *s, size_t n)
{
    size_t need = p->pool_len + n + 1;
    if (need > p->pool_cap) {
        size_t cap = 2 * p->pool_cap;
        while (cap < need)
            cap *= 2;
        if (p->pool == p->pool_small) {
            char *d = ssf_xmalloc(cap);
            memcpy(d, p->pool, p->pool_len);
            p->pool = d;
        } else {
            p->pool = ssf_xrealloc(p->pool, cap);
        }
        p->pool_cap = cap;
    }
    if (n) memcpy(p->pool + p->pool_len, s, n);
    p->pool[p->pool_len + n] = '\0';
    p->pool_len = need;
}

/* Starts a name in the pool for the token (symbols and words). */
static void tok_name(parser *p, tok *t, const char *s, size_t n)
{
    t->str = p->pool_len;
    pool_add(p, s, n);
    t->slen = n;
}

/* Appends to the name of the last token, which must be the pool's last string. */
static void tok_name_append(parser *p, tok *t, const char *s, size_t n)
{
    p->pool_len--; /* the NUL */
    pool_add(p, s, n);
    t->slen += n;
}

/* Subscripts and primes glue onto a symbol: x_1, x_{12}, V_1, f', \alpha_i. */
static void lex_suffixes(parser *p, tok *t)
{
    for (;;) {
        if (ch(p, p->i) == '\'') {
            tok_name_append(p, t, "'", 1);
            p->i++;
        } else if (at_str(p, p->i, "\\prime")) {
            tok_name_append(p, t, "'", 1);
            p->i += 6;
        } else if (ch(p, p->i) == '_' && ch(p, p->i + 1) == '{') {
            size_t j = p->i + 2;
            int depth = 1;
            tok_name_append(p, t, "_", 1);
            for (; j < p->hi && depth > 0; j++) {
                int c = ch(p, j);
                if (c == '{')
                    depth++;
                else if (c == '}' && --depth == 0)
                    break;
                else if (!is_space(c) && c != '}')
                    tok_name_append(p, t, p->s + j, 1);
            }
            if (depth > 0) {
                fail(p, p->i, "unbalanced '{' in subscript");
                return;
            }
            p->i = j + 1;
        } else if (ch(p, p->i) == '_' && ch(p, p->i + 1) == '\\' && is_alpha(ch(p, p->i + 2))) {
            size_t j = p->i + 2;
            while (is_alpha(ch(p, j)))
                j++;
            tok_name_append(p, t, p->s + p->i, j - p->i);
            p->i = j;
        } else if (ch(p, p->i) == '_' && (is_alpha(ch(p, p->i + 1)) || is_digit(ch(p, p->i + 1)))) {
            tok_name_append(p, t, p->s + p->i, 2);
            p->i += 2;
        } else {
            return;
        }
    }
}

static void lex_symbol(parser *p, size_t pos, const char *name, size_t n)
{
    tok *t = push_tok(p, T_SYM, pos, n);
    if (!t) return;
    tok_name(p, t, name, n);
    lex_suffixes(p, t);
    t->len = p->i - pos;
}

/* The length of a LaTeX thousands separator at j ({,} \, \! and their
 * pairs, '\ '), or 0. */
static size_t latex_sep(const parser *p, size_t j)
{
    if (at_str(p, j, "{,}") || at_str(p, j, ",\\!") || at_str(p, j, "\\!,")) return 3;
    if (at_str(p, j, "\\,") || at_str(p, j, "\\!") || at_str(p, j, "\\ ")) return 2;
    return 0;
}

/* A thousands separator at j: returns its length (0 if none); *latex tells
 * the explicit LaTeX forms, which may also separate Indian 2-digit groups. */
static size_t group_sep(const parser *p, size_t j, int *latex)
{
    int c = ch(p, j);
    *latex = 0;
    if (c != '{' && c != ',' && c != '\\' && c != ' ') return 0; /* what every form opens with */
    /* a LaTeX form, with the spaces a writer may put around it: 1 \, 000 */
    size_t k = j;
    while (ch(p, k) == ' ')
        k++;
    size_t n = latex_sep(p, k);
    if (n) {
        *latex = 1;
        for (k += n; ch(p, k) == ' ';)
            k++;
        return k - j;
    }
    if (c == ',' || c == ' ') return 1;
    return 0;
}

static size_t digits_at(const parser *p, size_t j)
{
    size_t n = 0;
    while (is_digit(ch(p, j + n)))
        n++;
    return n;
}

/* Integer part with grouping: 7,425,000  14{,}916  11,\!111,\!100  1 000. */
static size_t lex_grouped(parser *p, size_t st, size_t *ndigits)
{
    size_t g0 = digits_at(p, st), i = st + g0, good = i;
    *ndigits = g0;
    if (g0 > 3 || ch(p, st) == '0') return i;
    size_t counted = g0;
    for (;;) {
        int latex;
        size_t sl = group_sep(p, i, &latex);
        if (!sl) break;
        size_t d = digits_at(p, i + sl);
        int sep = ch(p, i);
        if (!(d == 3 || (latex && d == 2))) break;
        if (!latex && sep == ' ' && (ch(p, i + sl + d) == '/' || g0 == 0)) break;
        /* In a set a plain comma separates elements: \{100,200,300\} has three
         * (Math-Verify reads \{1,000\} as {0, 1} too). */
        if (!latex && sep == ',' && p->set_nest > 0) break;
        if (!latex && sep == ',' && p->nest > 0 && ch(p, i + sl) != '0') {
            /* (1,100) is a pair; (1,000,000) and (5,000) are numbers. */
            int more_sep;
            size_t l2 = group_sep(p, i + sl + d, &more_sep);
            if (!(l2 == 1 && ch(p, i + sl + d) == ',' && digits_at(p, i + sl + d + 1) == 3)) break;
        }
        i += sl + d;
        counted += d;
        if (d == 3) {
            good = i;
            *ndigits = counted;
        }
    }
    return good;
}

static void lex_number(parser *p)
{
    size_t st = p->i, nd = 0, i;
    i = lex_grouped(p, st, &nd);
    if (ch(p, i) == '.' && is_digit(ch(p, i + 1))) {
        size_t d = digits_at(p, i + 1);
        i += 1 + d;
        nd += d;
    }
    size_t mant_end = i;
    long e = 0;
    int sci = 0;
    if ((ch(p, i) == 'e' || ch(p, i) == 'E') &&
        (is_digit(ch(p, i + 1)) ||
         ((ch(p, i + 1) == '+' || ch(p, i + 1) == '-') && is_digit(ch(p, i + 2))))) {
        size_t j = i + 1;
        int negative = ch(p, j) == '-';
        if (ch(p, j) == '+' || ch(p, j) == '-') j++;
        for (; is_digit(ch(p, j)); j++) {
            if (e <= MAX_EXP10) e = e * 10 + (ch(p, j) - '0');
        }
        if (e > MAX_EXP10) {
            budget_fail(p, st, "exponent too large");
            return;
        }
        e = negative ? -e : e;
        sci = 1;
        i = j;
    }
    if (nd > MAX_DIGITS) {
        char msg[80];
        snprintf(msg, sizeof msg, "number with %zu digits", nd);
        budget_fail(p, st, msg);
        return;
    }
    p->i = i;
    if (!sci && ch(p, i) == '_') {
        /* 204_5: a number in another base stays a symbol, as in sympy. */
        lex_symbol(p, st, p->s + st, mant_end - st);
        return;
    }
    tok *t = push_tok(p, T_NUM, st, mant_end - st);
    if (!t) return;
    t->ndigits = nd;
    t->exp10 = e;
    t->sci = (unsigned char)sci;
}

static void push_named(parser *p, const named *w, size_t pos, size_t len)
{
    tok *t = push_tok(p, w->kind, pos, len);
    if (!t) return;
    t->sub = w->sub;
    if (w->kind == T_FUNC) tok_name(p, t, w->name, strlen(w->name));
}

/* A word inside \text{}: consecutive plain words make one name ("no solution"). */
static void push_text_word(parser *p, size_t pos, size_t n)
{
    tok *prev = p->n ? &p->t[p->n - 1] : NULL;
    if (prev && prev->kind == T_WORD && prev->text == p->text &&
        prev->str + prev->slen + 1 == p->pool_len) {
        tok_name_append(p, prev, " ", 1);
        tok_name_append(p, prev, p->s + pos, n);
        prev->len = pos + n - prev->pos;
        p->space = 0;
        return;
    }
    tok *t = push_tok(p, T_WORD, pos, n);
    if (t) tok_name(p, t, p->s + pos, n);
}

static void lex_letters(parser *p)
{
    size_t st = p->i, n = 0;
    while (is_alpha(ch(p, st + n)))
        n++;
    p->i = st + n;
    if (n == 1) {
        lex_symbol(p, st, p->s + st, 1);
        return;
    }
    const named *w = find_named(funcs, p->s + st, n);
    /* In \text{} only "and", "or" and percent words mean something ("5\text{
     * min}" is minutes), except that \operatorname{} names a function. */
    if (w && p->text && !p->text_op && w->kind != T_SEP && w->kind != T_PERCENT) w = NULL;
    if (w) {
        push_named(p, w, st, n);
        return;
    }
    if (p->text) {
        push_text_word(p, st, n);
        return;
    }
    tok *t = push_tok(p, T_WORD, st, n);
    if (t) tok_name(p, t, p->s + st, n);
}

/* \begin{name} or \end{name}: returns the name's length, its start in *name. */
static size_t env_name(parser *p, size_t *name)
{
    size_t j = p->i;
    while (is_space(ch(p, j)))
        j++;
    if (ch(p, j) != '{') return 0;
    size_t k = j + 1;
    while (is_alpha(ch(p, k)) || ch(p, k) == '*')
        k++;
    if (ch(p, k) != '}') return 0;
    *name = j + 1;
    p->i = k + 1;
    return k - j - 1;
}

static void lex_env(parser *p, size_t st, int begin)
{
    size_t name = 0, n = env_name(p, &name);
    if (!n || !word_in(p->s + name, n, matrix_envs)) {
        fail(p, st, "unsupported environment '%.*s'", (int)(n ? n : 1), n ? p->s + name : "?");
        return;
    }
    if (!begin) {
        if (p->env > 0) p->env--;
        push_tok(p, T_ENDENV, st, p->i - st);
        return;
    }
    p->env++;
    push_tok(p, T_BEGIN, st, p->i - st);
    if (n == 5 && memcmp(p->s + name, "array", 5) == 0) {
        /* Skip the column spec {cc|c}. */
        size_t j = p->i;
        while (is_space(ch(p, j)))
            j++;
        if (ch(p, j) == '{') {
            while (j < p->hi && ch(p, j) != '}')
                j++;
            p->i = j + 1;
        }
    }
}

static void enter_text(parser *p, int op)
{
    size_t j = p->i;
    while (is_space(ch(p, j)))
        j++;
    if (ch(p, j) == '*') j++; /* \operatorname* */
    while (is_space(ch(p, j)))
        j++;
    if (ch(p, j) != '{') return; /* \mathrm E: styles the next letter, nothing to do */
    if (p->text) return;         /* nested: its '{' counts as a text brace */
    p->i = j + 1;
    p->text = ++p->text_ids;
    p->text_op = op;
    p->text_braces = 0;
}

/* \left, \right, \bigl, ...: the delimiter that follows stays, "." is none. */
static int sizes_delimiter(const char *name, size_t n)
{
    static const char *const prefixes[] = {"left",   "right", "mleft", "mright",
                                           "middle", "big",   "Big",   NULL};
    for (const char *const *q = prefixes; *q; q++)
        if (n >= strlen(*q) && memcmp(name, *q, strlen(*q)) == 0) return 1;
    return 0;
}

static void lex_command(parser *p)
{
    size_t st = p->i;
    int c = ch(p, st + 1);
    if (c == '\\') {
        /* A row break in a matrix; elsewhere \\frac is \frac (a doubled
         * escape) and a lone \\ is a line break. */
        if (p->env > 0) {
            p->i += 2;
            push_tok(p, T_ROWSEP, st, 2);
        } else {
            p->i += is_alpha(ch(p, st + 2)) ? 1 : 2;
            p->space = 1;
        }
        return;
    }
    if (!is_alpha(c)) {
        p->i += c ? 2 : 1;
        switch (c) {
        case '{':
            push_tok(p, T_LSET, st, 2);
            return;
        case '}':
            push_tok(p, T_RSET, st, 2);
            return;
        case '%':
            push_tok(p, T_PERCENT, st, 2);
            return;
        case '|':
            push_tok(p, T_BAR, st, 2);
            return;
        case '$':
        case '#':
        case '&':
        case '_':
            return;
        default:
            p->space = 1;
            return; /* \, \; \: \! '\ ' \( \) \[ \] and a lone trailing \ */
        }
    }
    size_t j = st + 1;
    while (is_alpha(ch(p, j)))
        j++;
    const char *name = p->s + st + 1;
    size_t n = j - st - 1;
    p->i = j;
    const named *w = find_named(commands, name, n);
    if (!w) w = find_named(funcs, name, n);
    if (w && w->kind != T_SEP && w->kind != T_PERCENT) {
        push_named(p, w, st, n + 1);
        return;
    }
    if (word_in(name, n, ignored)) {
        /* A bare \circ is a degree sign after a number (25\circ C), but
         * f \circ k composes: its k is no Kelvin. */
        int circ = same_word("circ", name, n) && p->n > 0 && p->t[p->n - 1].kind == T_NUM;
        if (circ || same_word("degree", name, n)) p->degree = 1;
        if (sizes_delimiter(name, n)) {
            while (is_space(ch(p, p->i)))
                p->i++;
            if (ch(p, p->i) == '.') p->i++; /* \left. is an invisible delimiter */
        }
        p->space = 1;
        return;
    }
    if (word_in(name, n, text_commands)) {
        enter_text(p, n == 12 && memcmp(name, "operatorname", 12) == 0);
        return;
    }
    if (word_in(name, n, greek) || word_in(name, n, geometry_marks)) {
        lex_symbol(p, st, p->s + st, n + 1);
        return;
    }
    if (n == 5 && memcmp(name, "begin", 5) == 0) {
        lex_env(p, st, 1);
        return;
    }
    if (n == 3 && memcmp(name, "end", 3) == 0) {
        lex_env(p, st, 0);
        return;
    }
    fail(p, st, "unsupported command \\%.*s", (int)n, name);
}

typedef struct utf8_sym {
    const char *bytes;
    int kind, sub; /* kind -1: dropped, -2: a space */
} utf8_sym;

/* clang-format off */
static const utf8_sym utf8_syms[] = {
    {"\xcf\x80", T_PI, 0},                     /* pi */
    {"\xe2\x88\x9e", T_INF, 0},                /* infinity */
    {"\xe2\x89\xa4", T_REL, SSF_REL_LE},       /* <= */
    {"\xe2\x89\xa5", T_REL, SSF_REL_GE},       /* >= */
    {"\xe2\x89\xa0", T_REL, SSF_REL_NE},       /* != */
    {"\xe2\x89\x88", T_REL, SSF_REL_APPROX},   /* approx */
    {"\xe2\x88\x88", T_REL, SSF_REL_EQ + 100}, /* element of */
    {"\xc2\xb1", T_PM, 0},                     /* plus-minus */
    {"\xe2\x88\x93", T_PM, 1},                 /* minus-plus */
    {"\xc3\x97", T_MUL, 0},                    /* times */
    {"\xc2\xb7", T_MUL, 0},                    /* middle dot */
    {"\xe2\x8b\x85", T_MUL, 0},                /* dot operator */
    {"\xc3\xb7", T_DIV, 0},                    /* division */
    {"\xe2\x88\x92", T_MINUS, 0},              /* minus */
    {"\xe2\x88\x9a", T_SQRT, 1},               /* square root */
    {"\xe2\x88\xaa", T_CUP, 0},                /* union */
    {"\xe2\x88\x85", T_EMPTY, 0},              /* empty set */
    {"\xc2\xb0", -1, 0},                       /* degree */
    {"\xe2\x82\xac", -1, 0},                   /* euro */
    {"\xc2\xa3", -1, 0},                       /* pound */
    {"\xc2\xa5", -1, 0},                       /* yen */
    {"\xe2\x82\xb9", -1, 0},                   /* rupee */
    {"\xc2\xa0", -2, 0},                       /* no-break space */
    {"\xe2\x80\x89", -2, 0},                   /* thin space */
    {"\xe2\x80\xaf", -2, 0},                   /* narrow no-break space */
    {"\xe2\x80\x8b", -2, 0},                   /* zero-width space */
    {NULL, 0, 0},
};
/* clang-format on */

static void lex_utf8(parser *p)
{
    for (const utf8_sym *u = utf8_syms; u->bytes; u++) {
        if (!at_strn(p, p->i, u->bytes, strlen(u->bytes))) continue;
        size_t st = p->i, n = strlen(u->bytes);
        p->i += n;
        if (u->kind == -2) p->space = 1;
        if (u->kind == -1 && strcmp(u->bytes, "\xc2\xb0") == 0) p->degree = 1;
        if (u->kind < 0) return;
        tok *t = push_tok(p, u->kind, st, n);
        if (t) t->sub = u->sub;
        return;
    }
    fail(p, p->i, "unexpected byte 0x%02x", ch(p, p->i));
}

/* ^\circ and ^{\circ} are degree signs: the number is the answer. */
static int skip_degree(parser *p)
{
    size_t j = p->i + 1;
    while (is_space(ch(p, j)))
        j++;
    if (at_str(p, j, "\\circ")) {
        p->i = j + 5;
        return 1;
    }
    if (ch(p, j) != '{') return 0;
    j++;
    while (is_space(ch(p, j)))
        j++;
    if (!at_str(p, j, "\\circ")) return 0;
    j += 5;
    while (is_space(ch(p, j)))
        j++;
    if (ch(p, j) != '}') return 0;
    p->i = j + 1;
    return 1;
}

/* A relation written with ASCII: = == != <> < <= > >= :=.  Returns its length. */
static size_t ascii_rel(const parser *p, int *rel)
{
    int c = ch(p, p->i), d = ch(p, p->i + 1);
    switch (c) {
    case '=':
        *rel = SSF_REL_EQ;
        return d == '=' ? 2 : 1;
    case '!':
        *rel = SSF_REL_NE;
        return d == '=' ? 2 : 0;
    case ':':
        *rel = SSF_REL_EQ;
        return d == '=' ? 2 : 0;
    case '<':
        *rel = d == '=' ? SSF_REL_LE : d == '>' ? SSF_REL_NE : SSF_REL_LT;
        return d == '=' || d == '>' ? 2 : 1;
    case '>':
        *rel = d == '=' ? SSF_REL_GE : SSF_REL_GT;
        return d == '=' ? 2 : 1;
    default:
        return 0;
    }
}

static void lex_punct(parser *p)
{
    size_t st = p->i;
    int c = ch(p, st), d = ch(p, st + 1), rel;
    size_t rl = ascii_rel(p, &rel);
    if (rl) {
        tok *t = push_tok(p, T_REL, st, rl);
        if (t) t->sub = rel;
        p->i += rl;
        return;
    }
    int kind;
    switch (c) {
    case '+':
        kind = T_PLUS;
        break;
    case '-':
        kind = T_MINUS;
        break;
    case '*':
        if (d == '*') {
            p->i += 2;
            push_tok(p, T_POW, st, 2);
            return;
        }
        kind = T_MUL;
        break;
    case '/':
        kind = T_DIV;
        break;
    case '^':
        if (skip_degree(p)) {
            p->degree = 1;
            return;
        }
        kind = T_POW;
        break;
    case '_':
        kind = T_UNDER;
        break;
    case '!':
        kind = T_BANG;
        break;
    case '%':
        kind = T_PERCENT;
        break;
    case ':':
        kind = T_COLON;
        break;
    case ',':
        kind = T_COMMA;
        break;
    case ';':
        kind = T_SEMI;
        break;
    case '(':
        kind = T_LPAREN;
        break;
    case ')':
        kind = T_RPAREN;
        break;
    case '[':
        kind = T_LBRACK;
        break;
    case ']':
        kind = T_RBRACK;
        break;
    case '|':
        kind = T_BAR;
        break;
    case '&':
        kind = T_AMP;
        break;
    case '{':
        if (at_str(p, st, "{,}")) {
            p->i += 3;
            push_tok(p, T_COMMA, st, 3);
            return;
        }
        p->i++;
        if (p->text)
            p->text_braces++;
        else
            push_tok(p, T_LBRACE, st, 1);
        return;
    case '}':
        p->i++;
        if (!p->text)
            push_tok(p, T_RBRACE, st, 1);
        else if (p->text_braces-- == 0)
            p->text = 0;
        return;
    case '$':
    case '"':
    case '`':
        p->i++;
        return;
    case '\'':
        /* A prime after a word (a prime after a symbol is in its name). */
        p->i++;
        if (p->n && p->t[p->n - 1].kind == T_WORD && !p->space)
            tok_name_append(p, &p->t[p->n - 1], "'", 1);
        return;
    case '.':
        if (at_str(p, st, "...")) {
            p->i += 3;
            p->space = 1;
            return;
        }
        fail(p, st, "unexpected '.'");
        return;
    default:
        if (c < 0x20 || c == 0x7f)
            fail(p, st, "unexpected byte 0x%02x", c);
        else
            fail(p, st, "unexpected '%c'", c);
        return;
    }
    p->i++;
    push_tok(p, kind, st, 1);
}

static void lex(parser *p)
{
    p->i = p->lo;
    while (p->i < p->hi && !p->failed) {
        int c = ch(p, p->i);
        if (is_space(c) || c == '~') {
            p->i++;
            p->space = 1;
        } else if (is_digit(c) || (c == '.' && is_digit(ch(p, p->i + 1)))) {
            lex_number(p);
        } else if (is_alpha(c)) {
            lex_letters(p);
        } else if (c == '\\') {
            lex_command(p);
        } else if (c >= 0x80) {
            lex_utf8(p);
        } else {
            lex_punct(p);
        }
    }
    p->text = 0;
    if (!p->failed) push_tok(p, T_END, p->hi, 0);
}

/* ---- \over and \choose ---------------------------------------------------------------------- */

/* The group around token k: the index of its '{' (or -1 at the top level)
 * and of its '}' (or of T_END). */
static void group_around(const parser *p, size_t k, long *open, size_t *close)
{
    int depth = 0;
    *open = -1;
    for (long i = (long)k - 1; i >= 0; i--) {
        int kind = p->t[i].kind;
        if (kind == T_RBRACE) depth++;
        if (kind == T_LBRACE && depth-- == 0) {
            *open = i;
            break;
        }
    }
    depth = 0;
    for (*close = k + 1; *close < p->n && p->t[*close].kind != T_END; ++*close) {
        int kind = p->t[*close].kind;
        if (kind == T_LBRACE) depth++;
        if (kind == T_RBRACE && depth-- == 0) break;
    }
}

/* {a \over b} is \frac{a}{b} and {n \choose k} is \binom{n}{k} (plain
 * TeX's infix forms, whose operands are the whole group around them): the
 * tokens are rewritten so, one infix at a time.  Two in one group are
 * ambiguous, as TeX says. */
static void rewrite_over(parser *p)
{
    for (size_t k = 0; k < p->n && !p->failed; k++) {
        if (p->t[k].kind != T_OVER) continue;
        long open;
        size_t close;
        group_around(p, k, &open, &close);
        int depth = 0;
        for (size_t j = k + 1; j < close; j++) {
            depth += (p->t[j].kind == T_LBRACE) - (p->t[j].kind == T_RBRACE);
            if (depth == 0 && p->t[j].kind == T_OVER) {
                fail(p, p->t[j].pos, "two infix fractions (\\over, \\choose) in one group");
                return;
            }
        }
        tok infix = p->t[k], *out = ssf_xmalloc((p->n + 4) * sizeof *out);
        size_t n = 0, start = (size_t)(open + 1);
        memcpy(out, p->t, start * sizeof *out);
        n = start;
        tok made = infix;
        made.kind = infix.sub; /* T_FRAC or T_BINOM */
        made.sub = 0;
        out[n++] = made;
        made.kind = T_LBRACE;
        out[n++] = made;
        memcpy(out + n, p->t + start, (k - start) * sizeof *out);
        n += k - start;
        made.kind = T_RBRACE;
        out[n++] = made;
        made.kind = T_LBRACE;
        out[n++] = made;
        memcpy(out + n, p->t + k + 1, (close - k - 1) * sizeof *out);
        n += close - k - 1;
        made.kind = T_RBRACE;
        out[n++] = made;
        memcpy(out + n, p->t + close, (p->n - close) * sizeof *out);
        n += p->n - close;
        if (p->t != p->small_t) free(p->t);
        p->t = out;
        p->n = n;
        p->cap = n;
        k = 0; /* the next infix, if any, is found from the start */
    }
}

/* ---- trailing units ------------------------------------------------------------------------ */

static int ends_value(const tok *t)
{
    switch (t->kind) {
    case T_NUM:
    case T_SYM:
    case T_WORD:
    case T_PI:
    case T_INF:
    case T_RPAREN:
    case T_RBRACK:
    case T_RBRACE:
    case T_RSET:
    case T_BANG:
    case T_PERCENT:
    case T_BAR:
    case T_RFLOOR:
    case T_RCEIL:
    case T_ENDENV:
        return 1;
    default:
        return 0;
    }
}

static int is_unit_tok(const parser *p, const tok *t)
{
    /* "5 min", "3 sec": a function name with nothing after it is a unit. */
    if (t->kind == T_WORD || t->kind == T_FUNC) return is_unit_word(tok_str(p, t), t->slen);
    if (t->kind != T_SYM) return 0;
    /* A temperature's scale after its degree sign: 25^\circ C, 25^\circ\text{F}. */
    if (t->after_degree && t->slen == 1 && strchr("CFKcfk", tok_str(p, t)[0])) return 1;
    return t->space && word_in(tok_str(p, t), t->slen, unit_letters);
}

/* A word or a letter of a \text{} run of units. */
static int is_unit_part(const tok *t)
{
    return t->kind == T_WORD || (t->kind == T_SYM && t->slen == 1);
}

/* The tokens of a trailing power ^2, ^{2} or ^{-1} ending before e (0: none). */
static size_t unit_power(const parser *p, size_t e)
{
    const tok *t = p->t;
    if (e >= 3 && t[e - 1].kind == T_NUM && t[e - 2].kind == T_POW) return 2;
    if (e < 5 || t[e - 1].kind != T_RBRACE || t[e - 2].kind != T_NUM) return 0;
    if (t[e - 3].kind == T_LBRACE && t[e - 4].kind == T_POW) return 4;
    if (e >= 6 && t[e - 3].kind == T_MINUS && t[e - 4].kind == T_LBRACE && t[e - 5].kind == T_POW)
        return 5;
    return 0;
}

/* Drops one trailing unit: a \text{..} run of words, or a unit word, each
 * with an optional ^2/^3/^{-1} ("15\mbox{ cm}^2", "5 cm^2", "3 square units",
 * "9\text{ m s}^{-1}"); words in the run may be divided ("9\text{ m/s}"). */
static int strip_one_unit(parser *p)
{
    size_t end = p->n - 1; /* the T_END */
    size_t e = end - unit_power(p, end);
    if (e < 2) return 0;
    const tok *last = &p->t[e - 1];
    size_t f = e - 1;
    if (last->text) {
        /* The run's words back to its start, or to the value it holds
         * (\text{12 cm}); a '/' between two words is theirs (m/s). */
        if (!is_unit_part(last)) return 0;
        while (f > 0 && p->t[f - 1].text == last->text) {
            const tok *t = &p->t[f - 1];
            int per = t->kind == T_DIV && f >= 2 && p->t[f - 2].text == last->text &&
                      is_unit_part(&p->t[f - 2]);
            if (!is_unit_part(t) && !per) break;
            f--;
        }
        if (e - f == 1 && last->kind == T_SYM && !is_unit_tok(p, last)) return 0;
    } else if (!is_unit_tok(p, last)) {
        return 0;
    }
    if (f == 0 || !ends_value(&p->t[f - 1])) return 0;
    size_t pos = p->t[f].pos;
    p->t[f] = p->t[end];
    p->t[f].pos = pos;
    p->n = f + 1;
    return 1;
}

/* Up to three trailing units, as in "5 \\text{m} \\text{per} \\text{s}". */
static void strip_units(parser *p)
{
    for (int k = 0; k < 3; k++)
        if (!strip_one_unit(p)) return;
}

/* ---- parser: tokens ------------------------------------------------------------------------ */

static tok *cur(parser *p)
{
    return &p->t[p->k];
}

static int at(parser *p, int kind)
{
    return p->t[p->k].kind == kind;
}

static void advance(parser *p)
{
    if (p->t[p->k].kind != T_END) p->k++;
}

static ssf_node *unexpected(parser *p)
{
    tok *t = cur(p);
    if (t->kind == T_NUM || t->kind == T_SYM || t->kind == T_WORD || t->kind == T_REL ||
        t->kind == T_FUNC)
        fail(p, t->pos, "unexpected '%.*s'", (int)(t->len > 20 ? 20 : t->len), p->s + t->pos);
    else
        fail(p, t->pos, "unexpected %s", tk_names[t->kind]);
    return NULL;
}

static int expect(parser *p, int kind)
{
    if (at(p, kind)) {
        advance(p);
        return 1;
    }
    if (!p->failed) {
        tok *t = cur(p);
        fail(p, t->pos, "expected %s, found %s", tk_names[kind], tk_names[t->kind]);
    }
    return 0;
}

static int enter(parser *p)
{
    if (++p->depth > p->max_depth) {
        fail(p, cur(p)->pos, "nesting deeper than %d", p->max_depth);
        return 0;
    }
    return 1;
}

/* ---- parser: nodes ------------------------------------------------------------------------- */

static ssf_node *neg(parser *p, ssf_node *x)
{
    if (!x) return NULL;
    if (x->kind == SSF_N_NUMBER) {
        fmpq_t v;
        fmpq_init(v);
        fmpq_neg(v, x->value);
        ssf_node *n = mk(p, ssf_node_rational(p->a, v, x->decimals));
        fmpq_clear(v);
        return n;
    }
    return mk(p, ssf_node_unary(p->a, SSF_N_NEG, x));
}

static ssf_node *rational(parser *p, const fmpz_t num, const fmpz_t den)
{
    fmpq_t v;
    fmpq_init(v);
    fmpq_set_fmpz_frac(v, num, den);
    ssf_node *n = mk(p, ssf_node_rational(p->a, v, -1));
    fmpq_clear(v);
    return n;
}

static ssf_node *recip(parser *p, ssf_node *x)
{
    if (!x) return NULL;
    return mk(p, ssf_node_binary(p->a, SSF_N_POW, x, mk(p, ssf_node_int(p->a, -1))));
}

/* A list of factors or terms becomes its one element or an n-ary node. */
static ssf_node *collapse(parser *p, ssf_node_kind kind, nodes *v)
{
    ssf_node *n = NULL;
    if (!p->failed) n = v->n == 1 ? v->v[0] : mk(p, ssf_node_list(p->a, kind, v->v, v->n));
    nodes_free(v);
    return n;
}

static int is_int_literal(const ssf_node *n)
{
    return n && n->kind == SSF_N_NUMBER && n->decimals < 0 && fmpz_is_one(fmpq_denref(n->value));
}

static int is_infinite(const ssf_node *n)
{
    return n->kind == SSF_N_INFINITY ||
           (n->kind == SSF_N_NEG && n->kids[0]->kind == SSF_N_INFINITY);
}

static ssf_node *number(parser *p, const tok *t)
{
    ssf_node *n = mk(p, ssf_node_number_text(p->a, p->s + t->pos, t->len));
    if (!n || !t->sci) return n;
    /* E-notation is a float in sympy: keep it a decimal literal. */
    fmpz_t pw;
    fmpz_init(pw);
    fmpz_set_ui(pw, 10);
    fmpz_pow_ui(pw, pw, (ulong)(t->exp10 < 0 ? -t->exp10 : t->exp10));
    if (t->exp10 < 0)
        fmpq_div_fmpz(n->value, n->value, pw);
    else
        fmpq_mul_fmpz(n->value, n->value, pw);
    fmpz_clear(pw);
    long d = (n->decimals < 0 ? 0 : n->decimals) - t->exp10;
    n->decimals = d < 0 ? 0 : (int)(d > 1000000 ? 1000000 : d);
    return n;
}

/* The first digit of a number token, for \frac12 and \sqrt3. */
static ssf_node *first_digit(parser *p)
{
    tok *t = cur(p);
    if (t->len <= 1 || !is_digit((unsigned char)p->s[t->pos]) || t->sci) {
        advance(p);
        return number(p, t);
    }
    ssf_node *n = mk(p, ssf_node_number_text(p->a, p->s + t->pos, 1));
    t->pos++;
    t->len--;
    t->ndigits--;
    t->space = 0;
    return n;
}

/* ---- parser: grammar ----------------------------------------------------------------------- */

static ssf_node *parse_rel(parser *p);
static ssf_node *parse_add(parser *p);
static ssf_node *parse_unary(parser *p);
static ssf_node *parse_power(parser *p);
static ssf_node *parse_primary(parser *p);

static int is_sep(int kind)
{
    return kind == T_COMMA || kind == T_SEMI || kind == T_SEP;
}

static int is_closer(int kind)
{
    return kind == T_END || kind == T_RPAREN || kind == T_RBRACK || kind == T_RBRACE ||
           kind == T_RSET || kind == T_ENDENV;
}

/* Items separated by , ; and/or; empty items ("1, 2, \ldots, n", "a, b,
 * and c") are skipped. */
static int parse_items(parser *p, nodes *out)
{
    while (!p->failed) {
        if (is_sep(cur(p)->kind)) {
            advance(p);
            continue;
        }
        if (is_closer(cur(p)->kind)) break;
        ssf_node *item = parse_rel(p);
        if (!item) break;
        push_node(out, item);
        if (!is_sep(cur(p)->kind)) break;
    }
    return p->failed ? -1 : 0;
}

/* a = b, a < x < b (a chain is an AND of relations); \in is '=' (sub + 100
 * marks it). */
static ssf_node *parse_ratio(parser *p);
static ssf_node *as_interval(parser *p, ssf_node *n);

static ssf_node *parse_rel(parser *p)
{
    ssf_node *lhs = parse_ratio(p);
    if (!lhs || !at(p, T_REL)) return lhs;
    nodes rels;
    nodes_init(&rels);
    while (!p->failed && at(p, T_REL)) {
        int rel = cur(p)->sub;
        advance(p);
        ssf_node *rhs = parse_ratio(p);
        if (!rhs) break;
        if (rel >= 100) {
            /* x \in (1,2): membership, so the pair is an open interval. */
            rel -= 100;
            rhs = as_interval(p, rhs);
        }
        push_node(&rels, mk(p, ssf_node_rel(p->a, (ssf_rel)rel, lhs, rhs)));
        lhs = rhs;
    }
    return collapse(p, SSF_N_AND, &rels);
}

static ssf_node *parse_union(parser *p);

/* a:b is a ratio, h:0m a clock time. */
static ssf_node *parse_ratio(parser *p)
{
    size_t k0 = p->k;
    ssf_node *lhs = parse_union(p);
    if (!lhs || !at(p, T_COLON)) return lhs;
    size_t kc = p->k;
    advance(p);
    ssf_node *rhs = parse_union(p);
    if (!rhs) return NULL;
    const tok *h = &p->t[k0], *m = &p->t[kc + 1];
    if (kc == k0 + 1 && p->k == kc + 2 && h->kind == T_NUM && h->len <= 2 && !h->sci &&
        is_int_literal(lhs) && m->kind == T_NUM && m->len == 2 && p->s[m->pos] == '0')
        return mk(p, ssf_node_symbol(p->a, SSF_N_TEXT, p->s + h->pos, m->pos + 2 - h->pos));
    if (at(p, T_COLON)) {
        fail(p, cur(p)->pos, "a ratio of more than two terms");
        return NULL;
    }
    return mk(p, ssf_node_div(p->a, lhs, rhs));
}

/* A pair next to \cup is an open interval. */
static ssf_node *as_interval(parser *p, ssf_node *n)
{
    if (n && n->kind == SSF_N_TUPLE && n->n_kids == 2)
        return mk(p, ssf_node_interval(p->a, n->kids[0], n->kids[1], 1, 1));
    return n;
}

static ssf_node *parse_union(parser *p)
{
    ssf_node *first = parse_add(p);
    if (!first || !at(p, T_CUP)) return first;
    nodes parts;
    nodes_init(&parts);
    push_node(&parts, as_interval(p, first));
    while (!p->failed && at(p, T_CUP)) {
        advance(p);
        ssf_node *next = parse_add(p);
        if (!next) break;
        push_node(&parts, as_interval(p, next));
    }
    return collapse(p, SSF_N_UNION, &parts);
}

static ssf_node *parse_term(parser *p);

/* Left-nested chains (a \pm b \pm c, n!!!) deepen the tree without
 * recursing here, so they count against the depth limit too. */
static int chain_ok(parser *p, int *count)
{
    if (++*count <= p->max_depth) return 1;
    fail(p, cur(p)->pos, "nesting deeper than %d", p->max_depth);
    return 0;
}

static ssf_node *parse_add(parser *p)
{
    nodes terms;
    nodes_init(&terms);
    ssf_node *first;
    int chain = 0;
    if (at(p, T_PM)) {
        advance(p);
        ssf_node *x = parse_term(p);
        first = x ? mk(p, ssf_node_list(p->a, SSF_N_PM, &x, 1)) : NULL;
    } else {
        first = parse_term(p);
    }
    if (!first) return NULL;
    push_node(&terms, first);
    while (!p->failed) {
        int kind = cur(p)->kind;
        if (kind != T_PLUS && kind != T_MINUS && kind != T_PM) break;
        advance(p);
        ssf_node *t = parse_term(p);
        if (!t) break;
        if (kind == T_PLUS) {
            push_node(&terms, t);
        } else if (kind == T_MINUS) {
            push_node(&terms, neg(p, t));
        } else if (chain_ok(p, &chain)) {
            ssf_node *left =
                terms.n == 1 ? terms.v[0] : mk(p, ssf_node_list(p->a, SSF_N_ADD, terms.v, terms.n));
            ssf_node *pair[2] = {left, t};
            terms.n = 0;
            push_node(&terms, left ? mk(p, ssf_node_list(p->a, SSF_N_PM, pair, 2)) : NULL);
        }
    }
    return collapse(p, SSF_N_ADD, &terms);
}

/* Tokens that may start a factor written right after another (2x, 2(3),
 * (a)(b), \sqrt2 x).  A '|' inside |..| closes it instead. */
static int starts_factor(parser *p)
{
    switch (cur(p)->kind) {
    case T_NUM:
    case T_SYM:
    case T_WORD:
    case T_FUNC:
    case T_PI:
    case T_INF:
    case T_LPAREN:
    case T_LBRACE:
    case T_FRAC:
    case T_BINOM:
    case T_SQRT:
    case T_LFLOOR:
    case T_LCEIL:
    case T_BEGIN:
        return 1;
    case T_BAR:
        return p->abs_depth == 0;
    default:
        return 0;
    }
}

static void push_factor(nodes *v, ssf_node *f)
{
    if (f && f->kind == SSF_N_MUL) {
        for (size_t i = 0; i < f->n_kids; i++)
            push_node(v, f->kids[i]);
    } else {
        push_node(v, f);
    }
}

/* Implicit products bind tighter than * and /, as in latex2sympy: a leading
 * sign applies to the whole product (-2x is -(2x)). */
static ssf_node *parse_unary(parser *p)
{
    if (at(p, T_MINUS) || at(p, T_PLUS)) {
        int minus = at(p, T_MINUS);
        advance(p);
        if (!enter(p)) return NULL;
        ssf_node *x = parse_unary(p);
        p->depth--;
        return minus ? neg(p, x) : x;
    }
    ssf_node *first = parse_power(p);
    if (!first || !starts_factor(p)) return first;
    nodes f;
    nodes_init(&f);
    push_factor(&f, first);
    while (!p->failed && starts_factor(p)) {
        /* "12 345" or "1 \, 000" with groups this lexer did not join is no
         * product: 12 times 345 would grade it equal to 4140 */
        if (cur(p)->kind == T_NUM && p->k > 0 && p->t[p->k - 1].kind == T_NUM) {
            fail(p, cur(p)->pos, "two numbers side by side");
            break;
        }
        ssf_node *x = parse_power(p);
        if (!x) break;
        push_factor(&f, x);
    }
    return collapse(p, SSF_N_MUL, &f);
}

static ssf_node *parse_term(parser *p)
{
    ssf_node *first = parse_unary(p);
    if (!first || !(at(p, T_MUL) || at(p, T_DIV))) return first;
    nodes f;
    nodes_init(&f);
    push_factor(&f, first);
    while (!p->failed && (at(p, T_MUL) || at(p, T_DIV))) {
        int div = at(p, T_DIV);
        advance(p);
        ssf_node *x = parse_unary(p);
        if (!x) break;
        if (div)
            push_node(&f, recip(p, x));
        else
            push_factor(&f, x);
    }
    return collapse(p, SSF_N_MUL, &f);
}

/* The exponent after ^: a group, a whole number (2^10 is 1024 as people
 * mean it), or a signed atom with its own ^ (right associative).  A group
 * ends the exponent: the ! of 2^{3}! applies to 2^{3}, as TeX shows it. */
static ssf_node *parse_exponent(parser *p)
{
    if (!enter(p)) return NULL;
    ssf_node *e;
    if (at(p, T_LBRACE)) {
        e = parse_primary(p);
    } else if (at(p, T_MINUS) || at(p, T_PLUS)) {
        int minus = at(p, T_MINUS);
        advance(p);
        e = parse_exponent(p);
        if (minus) e = neg(p, e);
    } else {
        e = parse_power(p);
    }
    p->depth--;
    return e;
}

static ssf_node *parse_power(parser *p)
{
    ssf_node *base = parse_primary(p);
    int chain = 0;
    while (base && !p->failed) {
        if (at(p, T_BANG) && chain_ok(p, &chain)) {
            advance(p);
            ssf_func f = SSF_F_FACTORIAL;
            if (!p->nested_factorials && at(p, T_BANG)) { /* n!!: the double factorial */
                advance(p);
                f = SSF_F_DOUBLE_FACTORIAL;
            }
            base = mk(p, ssf_node_func(p->a, f, NULL, &base, 1));
        } else if (at(p, T_PERCENT) && chain_ok(p, &chain)) {
            advance(p);
            base = mk(p, ssf_node_unary(p->a, SSF_N_PERCENT, base));
        } else if (at(p, T_POW)) {
            advance(p);
            ssf_node *e = parse_exponent(p);
            base = e ? mk(p, ssf_node_binary(p->a, SSF_N_POW, base, e)) : NULL;
        } else {
            break;
        }
    }
    return p->failed ? NULL : base;
}

/* One argument of \frac, \binom, \sqrt or a subscript: a {group}, one
 * digit of a number (\frac12), or one atom (\frac\pi2, \frac a{b}). */
static ssf_node *parse_arg(parser *p, const char *what)
{
    if (at(p, T_END) || is_closer(cur(p)->kind) || is_sep(cur(p)->kind)) {
        fail(p, cur(p)->pos, "missing argument of %s", what);
        return NULL;
    }
    if (at(p, T_NUM)) return first_digit(p);
    return parse_primary(p);
}

static ssf_node *parse_frac(parser *p)
{
    advance(p);
    ssf_node *num = parse_arg(p, "\\frac");
    ssf_node *den = num ? parse_arg(p, "\\frac") : NULL;
    return den ? mk(p, ssf_node_div(p->a, num, den)) : NULL;
}

static ssf_node *half(parser *p)
{
    fmpq_t h;
    fmpq_init(h);
    fmpq_set_si(h, 1, 2);
    ssf_node *n = mk(p, ssf_node_rational(p->a, h, -1));
    fmpq_clear(h);
    return n;
}

/* \sqrt{x}, \sqrt[n]{x}, \sqrt3, and plain sqrt(x) / sqrt 12 / √2. */
static ssf_node *parse_sqrt(parser *p)
{
    int plain = cur(p)->sub;
    advance(p);
    ssf_node *index = NULL;
    if (!plain && at(p, T_LBRACK)) {
        advance(p);
        index = parse_add(p);
        if (!index || !expect(p, T_RBRACK)) return NULL;
    }
    ssf_node *x;
    if (plain && at(p, T_NUM)) {
        tok *t = cur(p);
        advance(p);
        x = number(p, t);
    } else {
        x = parse_arg(p, "\\sqrt");
    }
    if (!x) return NULL;
    ssf_node *e;
    if (!index) {
        e = half(p);
    } else if (is_int_literal(index) && !fmpz_is_zero(fmpq_numref(index->value))) {
        fmpz_t one;
        fmpz_init_set_ui(one, 1);
        e = rational(p, one, fmpq_numref(index->value));
        fmpz_clear(one);
    } else {
        e = recip(p, index);
    }
    return e ? mk(p, ssf_node_binary(p->a, SSF_N_POW, x, e)) : NULL;
}

static ssf_node *parse_binom(parser *p)
{
    advance(p);
    ssf_node *args[2];
    args[0] = parse_arg(p, "\\binom");
    args[1] = args[0] ? parse_arg(p, "\\binom") : NULL;
    return args[1] ? mk(p, ssf_node_func(p->a, SSF_F_BINOM, NULL, args, 2)) : NULL;
}

/* Arguments in parentheses: f(x), \gcd(a, b), sin(x). */
static int parse_call_args(parser *p, nodes *args)
{
    advance(p);
    if (!enter(p)) return -1;
    if (parse_items(p, args) < 0 || !expect(p, T_RPAREN)) return -1;
    p->depth--;
    if (args->n == 0) {
        fail(p, cur(p)->pos, "empty argument list");
        return -1;
    }
    return 0;
}

/* \sin x, \ln 2, \sin 2x: without parentheses the argument is the next
 * factor, with the letters and numbers written right after it. */
static ssf_node *parse_bare_arg(parser *p)
{
    if (at(p, T_END) || is_closer(cur(p)->kind) || is_sep(cur(p)->kind)) {
        fail(p, cur(p)->pos, "missing function argument");
        return NULL;
    }
    if (at(p, T_MINUS)) {
        advance(p);
        if (!enter(p)) return NULL;
        ssf_node *x = parse_bare_arg(p);
        p->depth--;
        return neg(p, x);
    }
    ssf_node *first = parse_power(p);
    nodes f;
    nodes_init(&f);
    push_factor(&f, first);
    while (first && !p->failed) {
        int kind = cur(p)->kind;
        if (kind != T_NUM && kind != T_SYM && kind != T_WORD && kind != T_PI && kind != T_FRAC &&
            kind != T_SQRT)
            break;
        ssf_node *x = parse_power(p);
        if (!x) break;
        push_factor(&f, x);
    }
    return collapse(p, SSF_N_MUL, &f);
}

static int is_minus_one(const ssf_node *e)
{
    return e->kind == SSF_N_NUMBER && fmpz_is_one(fmpq_denref(e->value)) &&
           fmpz_equal_si(fmpq_numref(e->value), -1);
}

static ssf_node *parse_func(parser *p)
{
    tok *f = cur(p);
    int sub = f->sub;
    size_t pos = f->pos;
    advance(p);
    ssf_node *base = NULL, *power = NULL;
    if (sub == SSF_F_LN && f->slen == 3 && at(p, T_UNDER)) {
        advance(p);
        if (!(base = parse_arg(p, "\\log_"))) return NULL;
    }
    if (at(p, T_POW)) {
        advance(p);
        if (!(power = parse_exponent(p))) return NULL;
    }
    nodes args;
    nodes_init(&args);
    if (at(p, T_LPAREN)) {
        if (parse_call_args(p, &args) < 0) {
            nodes_free(&args);
            return NULL;
        }
    } else {
        ssf_node *x = parse_bare_arg(p);
        if (!x) return NULL;
        push_node(&args, x);
    }
    /* \sin^{-1} x is arcsin x. */
    if (power && is_minus_one(power) && sub >= SSF_F_SIN && sub <= SSF_F_TAN) {
        sub = sub - SSF_F_SIN + SSF_F_ASIN;
        power = NULL;
    }
    int variadic = sub == SSF_F_GCD || sub == SSF_F_LCM || sub == F_MAX || sub == F_MIN;
    if (!variadic && args.n != 1) {
        nodes_free(&args);
        fail(p, pos, "%s takes one argument", tok_str(p, f));
        return NULL;
    }
    ssf_node *n;
    if (base) {
        ssf_node *kids[2] = {args.v[0], base};
        n = mk(p, ssf_node_func(p->a, SSF_F_LOG, NULL, kids, 2));
    } else if (sub == F_MAX || sub == F_MIN) {
        n = mk(p, ssf_node_func(p->a, SSF_F_UNKNOWN, sub == F_MAX ? "max" : "min", args.v, args.n));
    } else {
        n = mk(p,
               ssf_node_func(p->a, sub == F_LG ? SSF_F_LOG : (ssf_func)sub, NULL, args.v, args.n));
    }
    nodes_free(&args);
    if (n && power) n = mk(p, ssf_node_binary(p->a, SSF_N_POW, n, power));
    return n;
}

/* ( [ followed by items and ) ]: grouping, tuple or interval. */
static ssf_node *parse_group(parser *p)
{
    int open = cur(p)->kind;
    size_t pos = cur(p)->pos;
    advance(p);
    nodes items;
    nodes_init(&items);
    if (parse_items(p, &items) < 0) {
        nodes_free(&items);
        return NULL;
    }
    int close = cur(p)->kind;
    if (close != T_RPAREN && close != T_RBRACK) {
        nodes_free(&items);
        fail(p, cur(p)->pos, "%s opened at byte %zu is not closed", tk_names[open], pos);
        return NULL;
    }
    advance(p);
    int matched = (open == T_LPAREN) == (close == T_RPAREN);
    ssf_node *n = NULL;
    if (items.n == 0) {
        fail(p, pos, "empty parentheses");
    } else if (items.n == 1 && matched) {
        n = items.v[0];
    } else if (items.n == 2 && (!matched || open == T_LBRACK)) {
        n = mk(p, ssf_node_interval(p->a, items.v[0], items.v[1], open == T_LPAREN,
                                    close == T_RPAREN));
    } else if (items.n == 2 && (is_infinite(items.v[0]) || is_infinite(items.v[1]))) {
        n = mk(p, ssf_node_interval(p->a, items.v[0], items.v[1], 1, 1));
    } else if (matched) {
        n = mk(p, ssf_node_list(p->a, SSF_N_TUPLE, items.v, items.n));
    } else {
        fail(p, pos, "an interval needs two ends");
    }
    nodes_free(&items);
    return n;
}

/* { } groups (a set when it holds a list: {1,3}\cup{2,4}) and \{ \} sets. */
static ssf_node *parse_braces(parser *p)
{
    int set = at(p, T_LSET);
    size_t pos = cur(p)->pos;
    advance(p);
    nodes items;
    nodes_init(&items);
    if (parse_items(p, &items) < 0 || !expect(p, set ? T_RSET : T_RBRACE)) {
        nodes_free(&items);
        return NULL;
    }
    ssf_node *n = NULL;
    if (!set && items.n == 0)
        fail(p, pos, "empty group");
    else if (!set && items.n == 1)
        n = items.v[0];
    else
        n = mk(p, ssf_node_list(p->a, SSF_N_SET, items.v, items.n));
    nodes_free(&items);
    return n;
}

static ssf_node *parse_delimited(parser *p, int close, ssf_func f)
{
    advance(p);
    if (f == SSF_F_ABS) p->abs_depth++;
    ssf_node *x = parse_add(p);
    if (f == SSF_F_ABS) p->abs_depth--;
    if (!x || !expect(p, close)) return NULL;
    return mk(p, ssf_node_func(p->a, f, NULL, &x, 1));
}

static ssf_node *parse_matrix(parser *p)
{
    advance(p);
    nodes cells;
    nodes_init(&cells);
    size_t rows = 0, cols = 0, in_row = 0;
    while (!p->failed) {
        if (at(p, T_ENDENV) || at(p, T_ROWSEP)) {
            int end = at(p, T_ENDENV);
            if (in_row) {
                if (rows && in_row != cols) {
                    fail(p, cur(p)->pos, "matrix rows of different lengths");
                    break;
                }
                cols = in_row;
                rows++;
                in_row = 0;
            }
            advance(p);
            if (end) break;
            continue;
        }
        if (at(p, T_END)) {
            fail(p, cur(p)->pos, "missing \\end of the matrix");
            break;
        }
        ssf_node *cell = parse_rel(p);
        if (!cell) break;
        push_node(&cells, cell);
        in_row++;
        if (at(p, T_AMP))
            advance(p);
        else if (!at(p, T_ROWSEP) && !at(p, T_ENDENV))
            unexpected(p);
    }
    ssf_node *n = NULL;
    if (!p->failed && rows == 0) fail(p, cur(p)->pos, "empty matrix");
    if (!p->failed) n = mk(p, ssf_node_matrix(p->a, cells.v, rows, cols));
    nodes_free(&cells);
    return n;
}

/* A symbol node, its name in lower case when the options fold case. */
static ssf_node *symbol(parser *p, const char *name, size_t len)
{
    ssf_node *n = ssf_node_symbol(p->a, SSF_N_SYMBOL, name, len);
    if (n && p->fold_case)
        for (char *c = (char *)n->name; *c; c++) /* the arena's own copy */
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    return mk(p, n);
}

/* A word inside math is a product of its letters (latex2sympy's reading). */
static ssf_node *letters(parser *p, const tok *t)
{
    if (t->text) return mk(p, ssf_node_symbol(p->a, SSF_N_TEXT, tok_str(p, t), t->slen));
    nodes f;
    nodes_init(&f);
    const char *w = tok_str(p, t);
    for (size_t i = 0; i < t->slen && !p->failed; i++) {
        if (w[i] == 'e')
            push_node(&f, mk(p, ssf_node_leaf(p->a, SSF_N_E)));
        else if (w[i] == 'i')
            push_node(&f, mk(p, ssf_node_leaf(p->a, SSF_N_I)));
        else if (is_alpha(w[i]))
            push_node(&f, symbol(p, w + i, 1));
    }
    if (f.n == 0) push_node(&f, mk(p, ssf_node_symbol(p->a, SSF_N_TEXT, w, t->slen)));
    return collapse(p, SSF_N_MUL, &f);
}

static ssf_node *parse_symbol(parser *p)
{
    tok *t = cur(p);
    const char *name = tok_str(p, t);
    advance(p);
    if (t->slen == 1 && name[0] == 'e') return mk(p, ssf_node_leaf(p->a, SSF_N_E));
    if (t->slen == 1 && name[0] == 'i') return mk(p, ssf_node_leaf(p->a, SSF_N_I));
    if (t->slen == 1 && strchr("fghFGH", name[0]) && at(p, T_LPAREN) && !cur(p)->space) {
        nodes args;
        nodes_init(&args);
        ssf_node *n = NULL;
        if (parse_call_args(p, &args) == 0)
            n = mk(p, ssf_node_func(p->a, SSF_F_UNKNOWN, name, args.v, args.n));
        nodes_free(&args);
        return n;
    }
    return symbol(p, name, t->slen);
}

/* whole + a/b for integer literals: 2\frac12 is 5/2, "3128 1/2" is 6257/2.
 * (FLINT calls get the fmpz parts: GCC 12 misreads fmpq reads through node
 * pointers as overreads.) */
static ssf_node *mixed_number(parser *p, const ssf_node *whole, const ssf_node *a,
                              const ssf_node *b)
{
    fmpz_t num;
    fmpz_init(num);
    fmpz_mul(num, fmpq_numref(whole->value), fmpq_numref(b->value));
    fmpz_add(num, num, fmpq_numref(a->value));
    ssf_node *n = rational(p, num, fmpq_numref(b->value));
    fmpz_clear(num);
    return n;
}

/* 0 < a < b. */
static int proper(const ssf_node *a, const ssf_node *b)
{
    return fmpz_sgn(fmpq_numref(a->value)) > 0 &&
           fmpz_cmp(fmpq_numref(a->value), fmpq_numref(b->value)) < 0;
}

/* MUL(a, POW(b, -1)) from \frac{a}{b} with integer literals 0 < a < b. */
static int proper_fraction(const ssf_node *f)
{
    if (!f || f->kind != SSF_N_MUL || f->n_kids != 2) return 0;
    const ssf_node *a = f->kids[0], *pw = f->kids[1];
    if (!is_int_literal(a) || pw->kind != SSF_N_POW || !is_int_literal(pw->kids[0])) return 0;
    return proper(a, pw->kids[0]);
}

static int plain_int_tok(const tok *t)
{
    return t->kind == T_NUM && !t->sci && t->len == t->ndigits;
}

static ssf_node *parse_number(parser *p)
{
    tok *t = cur(p);
    advance(p);
    ssf_node *n = number(p, t);
    if (!n || !is_int_literal(n) || t->sci) return n;
    if (at(p, T_FRAC)) {
        ssf_node *f = parse_frac(p);
        if (!f) return NULL;
        if (proper_fraction(f)) return mixed_number(p, n, f->kids[0], f->kids[1]->kids[0]);
        nodes kids;
        nodes_init(&kids);
        push_node(&kids, n);
        push_factor(&kids, f);
        return collapse(p, SSF_N_MUL, &kids);
    }
    const tok *b = cur(p);
    if (plain_int_tok(t) && plain_int_tok(b) && b->space && b[1].kind == T_DIV && !b[1].space &&
        plain_int_tok(&b[2]) && !b[2].space &&
        (b[3].kind == T_END || is_sep(b[3].kind) || is_closer(b[3].kind) || b[3].kind == T_REL)) {
        ssf_node *num = number(p, b), *den = number(p, &b[2]);
        if (!num || !den) return NULL;
        if (proper(num, den)) {
            p->k += 3;
            return mixed_number(p, n, num, den);
        }
    }
    return n;
}

static ssf_node *parse_primary(parser *p)
{
    if (!enter(p)) return NULL;
    ssf_node *n;
    switch (cur(p)->kind) {
    case T_NUM:
        n = parse_number(p);
        break;
    case T_SYM:
        n = parse_symbol(p);
        break;
    case T_WORD:
        n = letters(p, cur(p));
        advance(p);
        break;
    case T_PI:
        advance(p);
        n = mk(p, ssf_node_leaf(p->a, SSF_N_PI));
        break;
    case T_INF:
        advance(p);
        n = mk(p, ssf_node_leaf(p->a, SSF_N_INFINITY));
        break;
    case T_EMPTY:
        advance(p);
        n = mk(p, ssf_node_list(p->a, SSF_N_SET, NULL, 0));
        break;
    case T_LPAREN:
    case T_LBRACK:
        n = parse_group(p);
        break;
    case T_LBRACE:
    case T_LSET:
        n = parse_braces(p);
        break;
    case T_BAR:
        n = parse_delimited(p, T_BAR, SSF_F_ABS);
        break;
    case T_LFLOOR:
        n = parse_delimited(p, T_RFLOOR, SSF_F_FLOOR);
        break;
    case T_LCEIL:
        n = parse_delimited(p, T_RCEIL, SSF_F_CEIL);
        break;
    case T_FRAC:
        n = parse_frac(p);
        break;
    case T_BINOM:
        n = parse_binom(p);
        break;
    case T_SQRT:
        n = parse_sqrt(p);
        break;
    case T_FUNC:
        n = parse_func(p);
        break;
    case T_BEGIN:
        n = parse_matrix(p);
        break;
    case T_END:
        fail(p, cur(p)->pos, "unexpected end of input");
        n = NULL;
        break;
    default:
        n = unexpected(p);
        break;
    }
    p->depth--;
    return p->failed ? NULL : n;
}

/* ---- whole answers ------------------------------------------------------------------------- */

/* Only words (and list separators): "odd", "Evelyn", "Alina and Cecile". */
static int words_only(const parser *p)
{
    int words = 0;
    for (size_t k = 0; k + 1 < p->n; k++) {
        if (p->t[k].kind == T_WORD)
            words++;
        else if (!is_sep(p->t[k].kind))
            return 0;
    }
    return words > 0;
}

static ssf_node *text_answer(parser *p)
{
    nodes items;
    nodes_init(&items);
    ssf_buf b = {0};
    for (size_t k = 0; k < p->n && !p->failed; k++) {
        const tok *t = &p->t[k];
        if (t->kind == T_WORD) {
            if (b.len) ssf_buf_putc(&b, ' ');
            ssf_buf_append(&b, tok_str(p, t), t->slen);
            continue;
        }
        if (b.len) push_node(&items, mk(p, ssf_node_symbol(p->a, SSF_N_TEXT, b.data, b.len)));
        ssf_buf_reset(&b);
    }
    ssf_buf_free(&b);
    if (p->failed) {
        nodes_free(&items);
        return NULL;
    }
    if (items.n == 1) return collapse(p, SSF_N_TEXT, &items);
    ssf_node *n = mk(p, ssf_node_list(p->a, SSF_N_SET, items.v, items.n));
    nodes_free(&items);
    return n;
}

/* "(C)" and \text{(C)}: a multiple-choice letter. */
static int choice_letter(const parser *p)
{
    const tok *t = p->t;
    return p->n == 4 && t[0].kind == T_LPAREN && t[1].kind == T_SYM && t[1].slen == 1 &&
           tok_str(p, &t[1])[0] >= 'A' && tok_str(p, &t[1])[0] <= 'Z' && t[2].kind == T_RPAREN;
}

static ssf_node *parse_tokens(parser *p)
{
    if (p->n == 1) {
        fail(p, p->hi, "empty answer");
        return NULL;
    }
    if (words_only(p)) return text_answer(p);
    if (choice_letter(p)) return mk(p, ssf_node_symbol(p->a, SSF_N_TEXT, tok_str(p, &p->t[1]), 1));
    nodes items;
    nodes_init(&items);
    if (parse_items(p, &items) == 0 && !at(p, T_END)) unexpected(p);
    ssf_node *n = NULL;
    if (!p->failed && items.n == 0)
        fail(p, p->hi, "empty answer");
    else if (!p->failed && items.n == 1)
        n = items.v[0];
    else if (!p->failed)
        n = mk(p, ssf_node_list(p->a, SSF_N_SET, items.v, items.n));
    nodes_free(&items);
    return n;
}

/* ---- unwrapping ---------------------------------------------------------------------------- */

/* The index of the '}' matching the '{' at i, or 0. */
static size_t matching_brace(const parser *p, size_t i)
{
    int depth = 0;
    for (size_t j = i; j < p->hi; j++) {
        int c = ch(p, j);
        if (c == '\\')
            j++;
        else if (c == '{')
            depth++;
        else if (c == '}' && --depth == 0)
            return j;
    }
    return 0;
}

static int unwrap_command(parser *p, const char *cmd, size_t n)
{
    if (!at_strn(p, p->lo, cmd, n)) return 0;
    size_t j = p->lo + n;
    while (is_space(ch(p, j)))
        j++;
    if (ch(p, j) != '{' || matching_brace(p, j) != p->hi - 1) return 0;
    p->lo = j + 1;
    p->hi--;
    return 1;
}

static int unwrap_pairn(parser *p, const char *open, size_t a, const char *close, size_t b)
{
    if (p->hi - p->lo < a + b || !at_strn(p, p->lo, open, a) || !at_strn(p, p->hi - b, close, b))
        return 0;
    p->lo += a;
    p->hi -= b;
    return 1;
}

#define unwrap_pair(p, open, close)                                                                \
    unwrap_pairn(p, "" open, sizeof(open) - 1, "" close, sizeof(close) - 1)

static void unwrap(parser *p)
{
    for (int changed = 1; changed;) {
        while (p->lo < p->hi && (is_space(ch(p, p->lo)) || ch(p, p->lo) == '~'))
            p->lo++;
        while (p->hi > p->lo && is_space((unsigned char)p->s[p->hi - 1]))
            p->hi--;
        changed = 0;
        if (p->hi - p->lo > 1 && p->s[p->hi - 1] == '.' && p->s[p->hi - 2] != '.') {
            p->hi--;
            changed = 1;
        }
        int c = ch(p, p->lo); /* every wrapper opens with '$' or '\\' */
        if (c == '$' || c == '\\')
            changed |= unwrap_pair(p, "$$", "$$") || unwrap_pair(p, "$", "$") ||
                       unwrap_pair(p, "\\(", "\\)") || unwrap_pair(p, "\\[", "\\]") ||
                       unwrap_command(p, "\\boxed", 6) || unwrap_command(p, "\\fbox", 5);
    }
}

/* Whether s[j..hi) starts the word w, not inside a longer word. */
static int word_at(const parser *p, size_t j, const char *w)
{
    size_t n = strlen(w);
    return j + n <= p->hi && strncmp(p->s + j, w, n) == 0 &&
           (j == p->lo || !is_alpha((unsigned char)p->s[j - 1])) &&
           (j + n == p->hi || !is_alpha((unsigned char)p->s[j + n]));
}

/* LightEval's `equations`: keep what follows the last '=' of a lone equation.
 * Its basic_latex step, which runs first, made a standalone "and" or "or"
 * (\text{ or } too) a ',', and a ',' means several answers: no cut, so
 * "x = 2 \text{ or } x = 3" stays both. */
static void cut_equation(parser *p)
{
    size_t eq = 0;
    for (size_t j = p->lo; j < p->hi; j++) {
        if (p->s[j] == ',' || p->s[j] == ';' || word_at(p, j, "and") || word_at(p, j, "or")) return;
        if (p->s[j] == '=') eq = j + 1;
    }
    if (eq) p->lo = eq;
}

/* LightEval's `nits` (latex2sympy2_extended), after the cuts above: a
 * leading '.' becomes "0.", and an answer that is exactly "0.5" becomes
 * \frac{1}{2}, a fraction and no decimal (no rounding rule applies, and
 * LightEval 0.10's swapped call, where a decimal's rounding raised, gets
 * it right). */
static void nits_half(parser *p)
{
    static const char fraction[] = "\\frac{1}{2}";
    const char *s = p->s + p->lo;
    size_t n = p->hi - p->lo;
    if ((n == 3 && memcmp(s, "0.5", 3) == 0) || (n == 2 && memcmp(s, ".5", 2) == 0)) {
        p->s = fraction;
        p->lo = 0;
        p->hi = sizeof fraction - 1;
    }
}

/* ---- entry points -------------------------------------------------------------------------- */

void ssf_parse_options_default(ssf_parse_options *o)
{
    o->strip_units = 1;
    o->equations = 0;
    o->fold_case = 0;
    o->nested_factorials = 0;
    o->nits = 0;
    o->max_depth = 200;
}

/* Every field by hand: a memset of the whole parser is a `rep stos`, whose
 * start-up cost shows on answers of a few tokens. */
static void parser_init(parser *p, ssf_arena *a, const char *s, size_t len,
                        const ssf_parse_options *o)
{
    p->a = a;
    p->s = s;
    p->lo = 0;
    p->hi = len;
    p->max_depth = o->max_depth < 1 ? 1 : o->max_depth > HARD_DEPTH ? HARD_DEPTH : o->max_depth;
    p->strip_units = o->strip_units;
    p->fold_case = o->fold_case;
    p->nested_factorials = o->nested_factorials;
    p->i = 0;
    p->t = p->small_t = NULL;
    p->n = p->cap = p->k = 0;
    p->pool = p->pool_small = NULL;
    p->pool_len = p->pool_cap = 0;
    p->env = p->nest = p->space = p->degree = p->set_nest = 0;
    p->text = p->text_ids = 0;
    p->text_braces = p->text_op = 0;
    p->depth = p->abs_depth = 0;
    p->failed = p->budget = p->quiet = 0;
    p->at = 0;
    p->why = NULL;
}

/* The first bytes of the answer for a message: one line, printable. */
static void quote_head(const char *text, size_t len, char out[61])
{
    size_t i = 0;
    for (; i < len && i < 60; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (char)(c < 0x20 || c >= 0x7f ? '?' : c);
    }
    out[i] = '\0';
}

ssf_node *ssf_parse_answer(ssf_arena *a, const char *text, size_t len, const ssf_parse_options *o,
                           ssf_error *err)
{
    ssf_parse_options defaults;
    if (!o) {
        ssf_parse_options_default(&defaults);
        o = &defaults;
    }
    if (!text) { /* an absent answer is the empty one, in messages too */
        text = "";
        len = 0;
    }
    parser p;
    tok small_t[TOKENS_INLINE]; /* an answer is short: its tokens need no malloc */
    char why[WHY_SIZE], pool_small[POOL_INLINE];
    parser_init(&p, a, text, len, o);
    p.pool = p.pool_small = pool_small;
    p.pool_cap = POOL_INLINE;
    p.why = why;
    p.t = p.small_t = small_t;
    p.cap = TOKENS_INLINE;
    p.quiet = err == NULL;
    unwrap(&p);
    if (o->equations) {
        cut_equation(&p);
        unwrap(&p);
    }
    if (o->nits) nits_half(&p);
    lex(&p);
    if (!p.failed) rewrite_over(&p);
    if (!p.failed && p.strip_units) strip_units(&p);
    ssf_node *n = p.failed ? NULL : parse_tokens(&p);
    if (!n && !p.failed) fail(&p, p.hi, "no answer");
    if (p.failed && err) {
        char head[61];
        quote_head(text, len, head);
        if (p.budget)
            ssf_fail(err, "over budget: %s in '%s' at byte %zu", p.why, head, p.at);
        else
            ssf_fail(err, "cannot parse '%s': %s at byte %zu", head, p.why, p.at);
    }
    if (p.failed) n = NULL;
    if (p.t != small_t) free(p.t);
    if (p.pool != pool_small) free(p.pool);
    return n;
}
