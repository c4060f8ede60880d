/*
 * jsonlite.c - the strict, bounded JSON reader of jsonlite.h.  It exists so
 * that the model reader depends on the C library alone (see jsonlite.h).
 * Recursive descent; recursion is bounded by max_depth.
 */
#include "jsonlite.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const unsigned char *s;
    size_t len, pos;
    int max_depth;
    ssf_error *err;
} parser;

static jl_value *parse_value(parser *p, int depth);

static int fail_at(parser *p, size_t at, const char *what)
{
    return ssf_fail(p->err, "byte %zu: %s", at, what);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
        p->pos++;
    }
}

static jl_value *new_value(jl_type t, size_t offset)
{
    jl_value *v = ssf_xcalloc(1, sizeof *v);
    v->type = t;
    v->offset = offset;
    return v;
}

/* ---- literals and numbers ------------------------------------------------ */

static jl_value *parse_literal(parser *p, const char *word, jl_type t)
{
    size_t n = strlen(word), at = p->pos;
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        fail_at(p, at, "invalid literal (expected a value)");
        return NULL;
    }
    p->pos += n;
    return new_value(t, at);
}

static size_t skip_digits(parser *p)
{
    size_t start = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos - start;
}

/* The exact int64 of an integer literal; 0 if it does not fit. */
static int exact_int(const unsigned char *s, size_t n, int64_t *out)
{
    int neg = s[0] == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t i = (size_t)neg; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10) return 0;
        v = v * 10 + d;
    }
    /* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

/* Grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(parser *p, int *is_integer)
{
    size_t at = p->pos;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return fail_at(p, at, "invalid number: a digit must follow '-'");
    if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return fail_at(p, at, "invalid number: leading zero");
    skip_digits(p);
    *is_integer = 1;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        *is_integer = 0;
        if (!skip_digits(p)) return fail_at(p, at, "invalid number: a digit must follow '.'");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        *is_integer = 0;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (!skip_digits(p)) return fail_at(p, at, "invalid number: a digit must follow 'e'");
    }
    return 0;
}

static jl_value *parse_number(parser *p)
{
    size_t at = p->pos;
    int is_integer = 0;
    if (scan_number(p, &is_integer)) return NULL;
    size_t n = p->pos - at;
    /* strtod needs a terminated copy; the input is not terminated. */
    char *copy = ssf_xstrndup((const char *)p->s + at, n);
    errno = 0;
    double d = ssf_strtod(copy, NULL);
    int range = errno == ERANGE && isinf(d);
    free(copy);
    if (range) {
        fail_at(p, at, "number out of range for a double");
        return NULL;
    }
    jl_value *v = new_value(JL_NUMBER, at);
    v->u.num.d = d;
    v->u.num.is_int = is_integer && exact_int(p->s + at, n, &v->u.num.i);
    return v;
}

/* ---- strings -------------------------------------------------------------- */

static int hex4(parser *p, size_t at, unsigned *out)
{
    if (p->len - at < 4) return fail_at(p, at, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[at + (size_t)i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return fail_at(p, at, "invalid \\u escape: expected 4 hex digits");
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static void put_utf8(ssf_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    ssf_buf_append(b, u, n);
}

/* \uXXXX, with a following \uXXXX when it is a high surrogate.  p->pos is
 * at the 'u'. */
static int unicode_escape(parser *p, ssf_buf *b)
{
    size_t at = p->pos - 1;
    unsigned cp, lo;
    if (hex4(p, p->pos + 1, &cp)) return -1;
    p->pos += 5;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(p, at, "lone low surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail_at(p, at, "high surrogate not followed by a \\u low surrogate");
        if (hex4(p, p->pos + 2, &lo)) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(p, at, "high surrogate not followed by a low surrogate");
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    put_utf8(b, cp);
    return 0;
}

static int simple_escape(parser *p, ssf_buf *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    unsigned char c = p->s[p->pos];
    const char *hit = c ? strchr(from, c) : NULL;
    if (!hit) return fail_at(p, p->pos - 1, "invalid escape in string");
    ssf_buf_putc(b, to[hit - from]);
    p->pos++;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0: no overlongs, no
 * surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    if (n == 0 || n > avail) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* above U+10FFFF */
    return n;
}

/* p->pos is at the opening quote.  The text goes into b. */
static int scan_string(parser *p, ssf_buf *b)
{
    size_t at = p->pos++;
    for (;;) {
        if (p->pos >= p->len) return fail_at(p, at, "unterminated string");
        unsigned char c = p->s[p->pos];
        if (c == '"') break;
        if (c < 0x20) return fail_at(p, p->pos, "control character in string (escape it)");
        if (c == '\\') {
            p->pos++;
            if (p->pos >= p->len) return fail_at(p, at, "unterminated string");
            int rc = p->s[p->pos] == 'u' ? unicode_escape(p, b) : simple_escape(p, b);
            if (rc) return -1;
            continue;
        }
        size_t n = utf8_len(p->s + p->pos, p->len - p->pos);
        if (!n) return fail_at(p, p->pos, "invalid UTF-8 in string");
        ssf_buf_append(b, (const char *)p->s + p->pos, n);
        p->pos += n;
    }
    p->pos++;
    if (!b->data) ssf_buf_puts(b, ""); /* "" is still a string */
    return 0;
}

static jl_value *parse_string(parser *p)
{
    size_t at = p->pos;
    ssf_buf b = {0};
    if (scan_string(p, &b)) {
        ssf_buf_free(&b);
        return NULL;
    }
    jl_value *v = new_value(JL_STRING, at);
    v->u.str.len = b.len;
    v->u.str.s = ssf_buf_take(&b);
    return v;
}

/* ---- arrays and objects ------------------------------------------------- */

static jl_value *parse_array(parser *p, int depth)
{
    jl_value *v = new_value(JL_ARRAY, p->pos++);
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return v;
    }
    for (;;) {
        jl_value *item = parse_value(p, depth + 1);
        if (!item) break;
        if (v->u.arr.n == cap) {
            cap = cap ? 2 * cap : 4;
            v->u.arr.items = ssf_xrealloc(v->u.arr.items, cap * sizeof *v->u.arr.items);
        }
        v->u.arr.items[v->u.arr.n++] = item;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == ']') {
            p->pos++;
            return v;
        }
        fail_at(p, p->pos, "expected ',' or ']' in array");
        break;
    }
    ssf_jl_free(v);
    return NULL;
}

static int member_cmp(const void *a, const void *b)
{
    const jl_member *x = *(const jl_member *const *)a, *y = *(const jl_member *const *)b;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return memcmp(x->key, y->key, x->key_len);
}

/* Sorting keeps this O(n log n) for headers with thousands of tensors. */
static int check_duplicates(parser *p, const jl_value *v)
{
    size_t n = v->u.obj.n;
    if (n < 2) return 0;
    const jl_member **sorted = ssf_xmalloc(n * sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        sorted[i] = &v->u.obj.members[i];
    qsort(sorted, n, sizeof *sorted, member_cmp);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++) {
        if (member_cmp(&sorted[i - 1], &sorted[i]) != 0) continue;
        const jl_member *later =
            sorted[i]->key_offset > sorted[i - 1]->key_offset ? sorted[i] : sorted[i - 1];
        ssf_buf msg = {0};
        ssf_buf_printf(&msg, "duplicate key \"%.64s\" in object", later->key);
        rc = fail_at(p, later->key_offset, msg.data);
        ssf_buf_free(&msg);
    }
    free(sorted);
    return rc;
}

/* One "key": value pair appended to v; p->pos is at the key. */
static int parse_member(parser *p, jl_value *v, size_t *cap, int depth)
{
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return fail_at(p, p->pos, "expected a string key in object");
    size_t key_offset = p->pos;
    ssf_buf key = {0};
    if (scan_string(p, &key)) {
        ssf_buf_free(&key);
        return -1;
    }
    size_t key_len = key.len;
    char *k = ssf_buf_take(&key);
    skip_ws(p);
    jl_value *val = NULL;
    if (p->pos < p->len && p->s[p->pos] == ':') {
        p->pos++;
        val = parse_value(p, depth + 1);
    } else {
        fail_at(p, p->pos, "expected ':' after object key");
    }
    if (!val) {
        free(k);
        return -1;
    }
    if (v->u.obj.n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        v->u.obj.members = ssf_xrealloc(v->u.obj.members, *cap * sizeof *v->u.obj.members);
    }
    v->u.obj.members[v->u.obj.n++] = (jl_member){k, key_len, key_offset, val};
    return 0;
}

static jl_value *parse_object(parser *p, int depth)
{
    jl_value *v = new_value(JL_OBJECT, p->pos++);
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return v;
    }
    for (;;) {
        if (parse_member(p, v, &cap, depth)) break;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == '}') {
            p->pos++;
            if (check_duplicates(p, v)) break;
            return v;
        }
        fail_at(p, p->pos, "expected ',' or '}' in object");
        break;
    }
    ssf_jl_free(v);
    return NULL;
}

static jl_value *parse_value(parser *p, int depth)
{
    skip_ws(p);
    if (p->pos >= p->len) {
        fail_at(p, p->pos, "unexpected end of input (expected a value)");
        return NULL;
    }
    unsigned char c = p->s[p->pos];
    if ((c == '[' || c == '{') && depth >= p->max_depth) {
        ssf_buf msg = {0};
        ssf_buf_printf(&msg, "nesting deeper than %d levels", p->max_depth);
        fail_at(p, p->pos, msg.data);
        ssf_buf_free(&msg);
        return NULL;
    }
    switch (c) {
    case '{':
        return parse_object(p, depth);
    case '[':
        return parse_array(p, depth);
    case '"':
        return parse_string(p);
    case 't':
        return parse_literal(p, "true", JL_TRUE);
    case 'f':
        return parse_literal(p, "false", JL_FALSE);
    case 'n':
        return parse_literal(p, "null", JL_NULL);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
        fail_at(p, p->pos, "unexpected character (expected a value)");
        return NULL;
    }
}

jl_value *ssf_jl_parse(const char *buf, size_t len, int max_depth, ssf_error *err)
{
    parser p = {(const unsigned char *)buf, len, 0, max_depth > 0 ? max_depth : 1, err};
    jl_value *v = parse_value(&p, 0);
    if (!v) return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        fail_at(&p, p.pos, "unexpected data after the JSON value");
        ssf_jl_free(v);
        return NULL;
    }
    return v;
}

void ssf_jl_free(jl_value *v)
{
    if (!v) return;
    if (v->type == JL_STRING) free(v->u.str.s);
    if (v->type == JL_ARRAY) {
        for (size_t i = 0; i < v->u.arr.n; i++)
            ssf_jl_free(v->u.arr.items[i]);
        free(v->u.arr.items);
    }
    if (v->type == JL_OBJECT) {
        for (size_t i = 0; i < v->u.obj.n; i++) {
            free((char *)v->u.obj.members[i].key);
            ssf_jl_free(v->u.obj.members[i].value);
        }
        free(v->u.obj.members);
    }
    free(v);
}

const jl_value *ssf_jl_get(const jl_value *v, const char *key)
{
    if (!v || v->type != JL_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < v->u.obj.n; i++)
        if (v->u.obj.members[i].key_len == n && memcmp(v->u.obj.members[i].key, key, n) == 0)
            return v->u.obj.members[i].value;
    return NULL;
}

const char *ssf_jl_type_name(jl_type t)
{
    switch (t) {
    case JL_NULL:
        return "null";
    case JL_FALSE:
    case JL_TRUE:
        return "a boolean";
    case JL_NUMBER:
        return "a number";
    case JL_STRING:
        return "a string";
    case JL_ARRAY:
        return "an array";
    case JL_OBJECT:
        return "an object";
    }
    return "?";
}

int ssf_jl_is_bool(const jl_value *v, int *out)
{
    if (!v || (v->type != JL_TRUE && v->type != JL_FALSE)) return 0;
    *out = v->type == JL_TRUE;
    return 1;
}
