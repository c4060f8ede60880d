/*
 * vote_form.c - the SSFT reference's vote classes, approximated (see
 * vote_form.h): rational numbers by their value, the rest by normalized
 * text.
 */
#include "vote_form.h"

#include <stdio.h>
#include <string.h>

#include "ssfteval/util.h"

/* Spacing and sizing commands the reference's normalization dropped. */
static const char *const dropped[] = {
    "\\left", "\\right", "\\displaystyle", "\\!", "\\,", "\\;", "\\:", "\\ ", NULL};

static int is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The length of a dropped command at s[0..left), else 0; a word command
 * only whole (\leftarrow stays). */
static size_t dropped_at(const char *s, size_t left)
{
    for (size_t k = 0; dropped[k]; k++) {
        size_t n = strlen(dropped[k]);
        if (n > left || memcmp(s, dropped[k], n) != 0) continue;
        if (is_letter(dropped[k][n - 1]) && n < left && is_letter(s[n])) continue;
        return n;
    }
    return 0;
}

/* s without the dropped commands and without white space, but for one
 * space between two letters (\cdot x is no \cdotx); \dfrac and \tfrac are
 * \frac. */
static void normalize(const char *s, size_t len, ssf_buf *b)
{
    for (size_t i = 0; i < len;) {
        size_t skip = s[i] == '\\' ? dropped_at(s + i, len - i) : 0;
        if (skip) {
            i += skip;
        } else if (len - i >= 6 &&
                   (memcmp(s + i, "\\dfrac", 6) == 0 || memcmp(s + i, "\\tfrac", 6) == 0)) {
            ssf_buf_puts(b, "\\frac");
            i += 6;
        } else if (is_space(s[i])) {
            while (i < len && is_space(s[i]))
                i++;
            if (b->len && is_letter(b->data[b->len - 1]) && i < len && is_letter(s[i]))
                ssf_buf_putc(b, ' ');
        } else {
            ssf_buf_putc(b, s[i++]);
        }
    }
}

/* Up to `most` digits at *p as a value, *p past them; -1 when none. */
static long long digits(const char **p, int most)
{
    long long v = 0;
    int n = 0;
    for (const char *s = *p; *s >= '0' && *s <= '9'; s++) {
        if (++n > most) return -1;
        v = 10 * v + (*s - '0');
    }
    if (n == 0) return -1;
    *p += n;
    return v;
}

/* \frac{a}{b} or \fracab (one digit each) at *p, *p past it. */
static int fraction(const char **p, long long *a, long long *b)
{
    const char *s = *p;
    if (strncmp(s, "\\frac", 5) != 0) return 0;
    s += 5;
    if (*s >= '0' && *s <= '9' && s[1] >= '0' && s[1] <= '9') {
        *a = s[0] - '0';
        *b = s[1] - '0';
        *p = s + 2;
        return 1;
    }
    if (*s++ != '{' || (*a = digits(&s, 9)) < 0 || *s++ != '}') return 0;
    if (*s++ != '{' || (*b = digits(&s, 9)) < 0 || *s++ != '}') return 0;
    *p = s;
    return 1;
}

/* t as a rational number written without a decimal point, or "0.5" (which
 * the normalization made \frac{1}{2}): an integer, a/b, a fraction or a
 * mixed number 4\frac{2}{3}, with an optional minus.  0 if not one. */
static int rational(const char *t, long long *num, long long *den)
{
    const char *p = t;
    int negative = *p == '-';
    p += negative;
    long long whole = 0, a, b = 1;
    if (!negative && (strcmp(p, "0.5") == 0 || strcmp(p, ".5") == 0)) {
        a = 1;
        b = 2;
        p += strlen(p);
    } else if (!fraction(&p, &a, &b)) {
        const char *start = p;
        if ((a = digits(&p, 18)) < 0) return 0;
        if (*p == '/' && p - start <= 9) {
            p++;
            if ((b = digits(&p, 9)) < 0) return 0;
        } else if (p - start <= 9 && fraction(&p, &a, &b)) {
            whole = digits(&start, 9);
        }
    }
    if (*p || b == 0) return 0;
    *num = (whole * b + a) * (negative ? -1 : 1);
    *den = b;
    return 1;
}

static long long gcd(long long a, long long b)
{
    if (a < 0) a = -a;
    while (b) {
        long long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

char *ssf_vote_form(const char *s, size_t len)
{
    ssf_buf b = {0};
    normalize(s, len, &b);
    ssf_buf_append(&b, "", 0); /* a string even when empty */
    long long num, den;
    if (rational(b.data, &num, &den)) {
        long long g = gcd(num, den);
        num /= g;
        den /= g;
        ssf_buf_reset(&b);
        if (den == 1)
            ssf_buf_printf(&b, "q:%lld", num);
        else
            ssf_buf_printf(&b, "q:%lld/%lld", num, den);
    }
    return ssf_buf_take(&b);
}
