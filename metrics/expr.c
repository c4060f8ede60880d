/*
 * expr.c - expression-tree nodes, their arena and their text form.
 */
#include "expr.h"

#include <stdlib.h>
#include <string.h>

#include <flint/fmpz.h>

#define ARENA_BLOCK ((size_t)64 * 1024)
/* The first block comes with the arena in one allocation: a grade's trees
 * usually fit, and a block this small is not returned to the system (a
 * 64 KB one made every free consolidate the heap). */
#define ARENA_FIRST ((size_t)8 * 1024)
#define ARENA_NUMBERS 32

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    max_align_t data[];
} arena_block;

/* Fields added here are also set in ssf_arena_new. */
struct ssf_arena {
    arena_block *blocks;
    ssf_node **numbers; /* nodes holding an fmpq, cleared when the arena goes */
    size_t n_numbers, cap_numbers;
    size_t nodes, max_nodes;
    int exhausted;
    ssf_node *first_numbers[ARENA_NUMBERS]; /* numbers until they outgrow it */
};

/* The first block sits right after the arena, aligned. */
#define ARENA_HEAD                                                                                 \
    ((sizeof(ssf_arena) + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t))

static arena_block *first_block(ssf_arena *a)
{
    return (arena_block *)((char *)a + ARENA_HEAD);
}

ssf_arena *ssf_arena_new(size_t max_nodes)
{
    ssf_arena *a = ssf_xmalloc(ARENA_HEAD + sizeof(arena_block) + ARENA_FIRST);
    /* Not a memset: first_numbers needs no clearing. */
    a->numbers = a->first_numbers;
    a->n_numbers = 0;
    a->cap_numbers = ARENA_NUMBERS;
    a->nodes = 0;
    a->max_nodes = max_nodes;
    a->exhausted = 0;
    arena_block *b = first_block(a);
    b->next = NULL;
    b->used = 0;
    b->size = ARENA_FIRST;
    a->blocks = b;
    return a;
}

void ssf_arena_free(ssf_arena *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_numbers; i++)
        fmpq_clear(a->numbers[i]->value);
    if (a->numbers != a->first_numbers) free(a->numbers);
    arena_block *first = first_block(a);
    for (arena_block *b = a->blocks, *next; b; b = next) {
        next = b->next;
        if (b != first) free(b);
    }
    free(a);
}

int ssf_arena_exhausted(const ssf_arena *a)
{
    return a->exhausted;
}

static void *arena_alloc(ssf_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    arena_block *b = a->blocks;
    if (!b || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = ssf_xmalloc(sizeof *b + size);
        b->size = size;
        b->used = 0;
        b->next = a->blocks;
        a->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

/* Every node counts against the budget, so a hostile input (10k nested
 * braces, a million digits) ends with "over budget" rather than a hang. */
static ssf_node *new_node(ssf_arena *a, ssf_node_kind kind, size_t n_kids)
{
    if (a->exhausted || ++a->nodes > a->max_nodes) {
        a->exhausted = 1;
        return NULL;
    }
    ssf_node *n = arena_alloc(a, sizeof *n);
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->decimals = -1;
    n->n_kids = n_kids;
    if (n_kids) n->kids = arena_alloc(a, n_kids * sizeof *n->kids);
    return n;
}

static ssf_node *new_number(ssf_arena *a)
{
    ssf_node *n = new_node(a, SSF_N_NUMBER, 0);
    if (!n) return NULL;
    fmpq_init(n->value);
    if (a->n_numbers == a->cap_numbers) {
        a->cap_numbers *= 2;
        if (a->numbers == a->first_numbers) {
            a->numbers = ssf_xmalloc(a->cap_numbers * sizeof *a->numbers);
            memcpy(a->numbers, a->first_numbers, a->n_numbers * sizeof *a->numbers);
        } else {
            a->numbers = ssf_xrealloc(a->numbers, a->cap_numbers * sizeof *a->numbers);
        }
    }
    a->numbers[a->n_numbers++] = n;
    return n;
}

ssf_node *ssf_node_int(ssf_arena *a, long v)
{
    ssf_node *n = new_number(a);
    if (n) fmpq_set_si(n->value, v, 1);
    return n;
}

ssf_node *ssf_node_rational(ssf_arena *a, const fmpq_t v, int decimals)
{
    ssf_node *n = new_number(a);
    if (!n) return NULL;
    fmpq_set(n->value, v);
    n->decimals = decimals;
    return n;
}

static ulong gcd_ui(ulong x, ulong y)
{
    while (y) {
        ulong t = x % y;
        x = y;
        y = t;
    }
    return x;
}

/* Up to 18 digits and 18 decimals the value is read in machine words and
 * reduced with one gcd, the same canonical fraction as the general path
 * without GMP's string conversion.  Returns 0 when it does not apply. */
static int number_text_small(ssf_node *n, const char *digits, size_t len)
{
    ulong v = 0;
    size_t k = 0;
    int decimals = -1;
    for (size_t i = 0; i < len; i++) {
        if (digits[i] == '.')
            decimals = 0;
        else if (digits[i] >= '0' && digits[i] <= '9') {
            if (++k > 18) return 0;
            v = v * 10 + (ulong)(digits[i] - '0');
            if (decimals >= 0) decimals++;
        }
    }
    if (decimals > 18) return 0;
    ulong den = 1;
    for (int d = 0; d < decimals; d++)
        den *= 10;
    ulong g = gcd_ui(v, den); /* v = 0 gives g = den: 0/1 */
    fmpz_set_ui(fmpq_numref(n->value), v / g);
    fmpz_set_ui(fmpq_denref(n->value), den / g);
    n->decimals = decimals;
    return 1;
}

ssf_node *ssf_node_number_text(ssf_arena *a, const char *digits, size_t len)
{
    ssf_node *n = new_number(a);
    if (!n) return NULL;
    if (number_text_small(n, digits, len)) return n;
    char *buf = ssf_xmalloc(len + 1);
    size_t k = 0;
    int decimals = -1;
    for (size_t i = 0; i < len; i++) {
        if (digits[i] == '.')
            decimals = 0;
        else if (digits[i] >= '0' && digits[i] <= '9') {
            buf[k++] = digits[i];
            if (decimals >= 0) decimals++;
        }
    }
    if (k == 0) buf[k++] = '0';
    buf[k] = '\0';
    fmpz_t num, den;
    fmpz_init(num);
    fmpz_init(den);
    fmpz_set_str(num, buf, 10);
    fmpz_set_ui(den, 10);
    fmpz_pow_ui(den, den, decimals > 0 ? (ulong)decimals : 0);
    fmpq_set_fmpz_frac(n->value, num, den);
    fmpz_clear(num);
    fmpz_clear(den);
    free(buf);
    n->decimals = decimals;
    return n;
}

ssf_node *ssf_node_leaf(ssf_arena *a, ssf_node_kind kind)
{
    return new_node(a, kind, 0);
}

ssf_node *ssf_node_symbol(ssf_arena *a, ssf_node_kind kind, const char *name, size_t len)
{
    ssf_node *n = new_node(a, kind, 0);
    if (!n) return NULL;
    char *s = arena_alloc(a, len + 1);
    memcpy(s, name, len);
    s[len] = '\0';
    n->name = s;
    return n;
}

static int any_null(ssf_node **kids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!kids[i]) return 1;
    return 0;
}

ssf_node *ssf_node_list(ssf_arena *a, ssf_node_kind kind, ssf_node **kids, size_t n)
{
    if (any_null(kids, n)) return NULL;
    ssf_node *node = new_node(a, kind, n);
    if (node && n) memcpy(node->kids, kids, n * sizeof *kids);
    return node;
}

ssf_node *ssf_node_unary(ssf_arena *a, ssf_node_kind kind, ssf_node *kid)
{
    return ssf_node_list(a, kind, &kid, 1);
}

ssf_node *ssf_node_binary(ssf_arena *a, ssf_node_kind kind, ssf_node *x, ssf_node *y)
{
    ssf_node *kids[2] = {x, y};
    return ssf_node_list(a, kind, kids, 2);
}

ssf_node *ssf_node_rel(ssf_arena *a, ssf_rel rel, ssf_node *lhs, ssf_node *rhs)
{
    ssf_node *n = ssf_node_binary(a, SSF_N_REL, lhs, rhs);
    if (n) n->op.rel = rel;
    return n;
}

ssf_node *ssf_node_func(ssf_arena *a, ssf_func f, const char *name, ssf_node **args, size_t n)
{
    ssf_node *node = ssf_node_list(a, SSF_N_FUNC, args, n);
    if (!node) return NULL;
    node->op.func = f;
    if (name) {
        size_t len = strlen(name);
        char *s = arena_alloc(a, len + 1);
        memcpy(s, name, len + 1);
        node->name = s;
    }
    return node;
}

ssf_node *ssf_node_interval(ssf_arena *a, ssf_node *lo, ssf_node *hi, int left_open, int right_open)
{
    ssf_node *n = ssf_node_binary(a, SSF_N_INTERVAL, lo, hi);
    if (!n) return NULL;
    n->left_open = (unsigned char)!!left_open;
    n->right_open = (unsigned char)!!right_open;
    return n;
}

ssf_node *ssf_node_matrix(ssf_arena *a, ssf_node **cells, size_t rows, size_t cols)
{
    ssf_node *n = ssf_node_list(a, SSF_N_MATRIX, cells, rows * cols);
    if (!n) return NULL;
    n->rows = rows;
    n->cols = cols;
    return n;
}

ssf_node *ssf_node_div(ssf_arena *a, ssf_node *x, ssf_node *y)
{
    return ssf_node_binary(a, SSF_N_MUL, x, ssf_node_binary(a, SSF_N_POW, y, ssf_node_int(a, -1)));
}

ssf_node *ssf_node_sub(ssf_arena *a, ssf_node *x, ssf_node *y)
{
    return ssf_node_binary(a, SSF_N_ADD, x, ssf_node_unary(a, SSF_N_NEG, y));
}

static const char *const kind_names[] = {
    "num",  "sym",     "text", "pi",  "e",   "i",     "inf",      "add",   "mul",    "neg", "pow",
    "func", "percent", "rel",  "and", "set", "tuple", "interval", "union", "matrix", "pm",
};

static const char *const rel_names[] = {"=", "!=", "<", "<=", ">", ">=", "~="};

static const char *const func_names[] = {
    "sin",   "cos",  "tan", "sec", "csc", "cot", "asin",  "acos", "atan",      "sinh",
    "cosh",  "tanh", "ln",  "log", "exp", "abs", "floor", "ceil", "factorial", "double_factorial",
    "binom", "gcd",  "lcm", "?",
};

/* Decimal digits of a word-sized integer (FLINT would go through GMP). */
static void put_small(ssf_buf *b, slong v)
{
    char tmp[24];
    size_t n = 0;
    ulong u = v < 0 ? -(ulong)v : (ulong)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) ssf_buf_putc(b, '-');
    while (n)
        ssf_buf_putc(b, tmp[--n]);
}

/* fmpq_get_str's text: "num" or "num/den". */
static void put_rational(ssf_buf *b, const fmpq_t q)
{
    const fmpz *num = fmpq_numref(q), *den = fmpq_denref(q);
    if (COEFF_IS_MPZ(*num) || COEFF_IS_MPZ(*den)) {
        char *s = fmpq_get_str(NULL, 10, q);
        ssf_buf_puts(b, s);
        flint_free(s);
        return;
    }
    put_small(b, *num);
    if (*den != 1) {
        ssf_buf_putc(b, '/');
        put_small(b, *den);
    }
}

/* " word", as "%s" would print it (a NULL name prints "(null)"). */
static void put_word(ssf_buf *b, const char *s)
{
    ssf_buf_putc(b, ' ');
    ssf_buf_puts(b, s ? s : "(null)");
}

static void sexpr(ssf_buf *b, const ssf_node *n)
{
    switch (n->kind) {
    case SSF_N_NUMBER:
        put_rational(b, n->value);
        if (n->decimals >= 0) {
            ssf_buf_putc(b, '@');
            put_small(b, n->decimals);
        }
        return;
    case SSF_N_SYMBOL:
        ssf_buf_puts(b, n->name);
        return;
    case SSF_N_TEXT:
        ssf_buf_putc(b, '"');
        ssf_buf_puts(b, n->name);
        ssf_buf_putc(b, '"');
        return;
    case SSF_N_PI:
    case SSF_N_E:
    case SSF_N_I:
    case SSF_N_INFINITY:
        ssf_buf_puts(b, kind_names[n->kind]);
        return;
    default:
        break;
    }
    ssf_buf_putc(b, '(');
    ssf_buf_puts(b, kind_names[n->kind]);
    if (n->kind == SSF_N_REL) put_word(b, rel_names[n->op.rel]);
    if (n->kind == SSF_N_FUNC)
        put_word(b, n->op.func == SSF_F_UNKNOWN ? n->name : func_names[n->op.func]);
    if (n->kind == SSF_N_INTERVAL) {
        ssf_buf_putc(b, ' ');
        ssf_buf_putc(b, n->left_open ? '(' : '[');
        ssf_buf_putc(b, n->right_open ? ')' : ']');
    }
    if (n->kind == SSF_N_MATRIX) ssf_buf_printf(b, " %zux%zu", n->rows, n->cols);
    for (size_t i = 0; i < n->n_kids; i++) {
        ssf_buf_putc(b, ' ');
        sexpr(b, n->kids[i]);
    }
    ssf_buf_putc(b, ')');
}

char *ssf_node_sexpr(const ssf_node *n)
{
    ssf_buf b = {0};
    if (n)
        sexpr(&b, n);
    else
        ssf_buf_puts(&b, "(null)");
    return ssf_buf_take(&b);
}
