/*
 * extract.c - the answer-extraction cascade (see extract.h).
 *
 * The patterns follow LightEval 0.10 / Math-Verify 0.8 (grading.md section 3):
 * the same anchors, priorities and capture rules, written once as PCRE2
 * sources.  Every pattern names its answer group "ans" (PCRE2_DUPNAMES lets
 * alternatives share the name) and LaTeX environments may carry a percent
 * suffix in group "pct".
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "extract.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

enum pattern_kind { KIND_LATEX, KIND_BOXED, KIND_EXPR, KIND_LETTERS };

static const char *const kind_names[] = {"latex", "boxed", "expr", "letters"};

typedef struct pattern {
    pcre2_code *code;
    int priority;
    enum pattern_kind kind;
} pattern;

struct ssf_extractor {
    pattern *patterns;
    size_t n;
    ssf_extract_config cfg;
};

/* At most this many candidates are parsed per extraction, so a completion
 * made of thousands of "$x$" spans cannot keep the grader busy. */
#define MAX_CANDIDATES 256

/* ---- pattern sources ------------------------------------------------- */

#define LATEX_ENVS                                                                                 \
    "(?:(?<!\\\\)\\$\\$(?<ans>.+?)(?<!\\\\)\\$\\$"                                                 \
    "|(?<!\\\\)\\\\\\[(?<ans>.+?)(?<!\\\\)\\\\\\]"                                                 \
    "|(?<![\\\\\\d])\\$(?<ans>(?:\\\\\\$|[^\\n$])+?)(?<!\\\\)\\$"                                  \
    "|(?<!\\\\)\\\\\\((?<ans>[^\\n]+?)(?<!\\\\)\\\\\\)"                                            \
    "|(?<=\\s)\\[(?<ans>[^\\n\\[\\]]+?)\\](?=\\s|$)"                                               \
    "|(?<ans>-?\\\\frac\\{-?\\d+(?:[.,]\\d+)?\\}\\{-?\\d+(?:[.,]\\d+)?\\}))"                       \
    "(?<pct>\\s*(?:\\\\?%|[Pp]ercent|[Pp]ercentage|[Pp]ct))?"

#define NUMBER_LIGHTEVAL "(?:-?\\d{1,3}(?:[ ,]\\d{3})+(?:\\.\\d+)?|-?\\d+[.,]\\d+|\\.\\d+|-?\\d+)"
#define NUMBER_MATHVERIFY                                                                          \
    "(?:(?<!\\d)-?[1-9]\\d{0,2}(?:[ ,]\\d{3})+(?:\\.\\d+)?|-?\\d+[.,]\\d+|\\.\\d+|-?\\d+)"
#define PERCENT_SUFFIX "(?:\\s*(?:%|[Pp]ercent|\\s*[Pp]ercentage|\\s*[Pp]ct))?"
#define EXPRESSION "-?\\(?-?\\d[\\d.\\s+\\-*×/^()÷]*[+\\-*×/^()÷][\\d.\\s+\\-*×/^()÷]+\\)?"
#define EXPR_PREFIX "(?:^|\\s|=)(?:\\*\\*)?"
#define EXPR_SUFFIX "(?:\\*\\*)?(?:\\.|,|:|\\s|\\)|\\$|$)"
#define CURRENCY "(?:[$€£¥₹]\\s*)?"

/* @ARG@ takes the number pattern. */
#define EXPR_OR_NUMBER                                                                             \
    "(?:" EXPR_PREFIX "(?<ans>" EXPRESSION ")(?=" EXPR_SUFFIX ")|" EXPR_PREFIX CURRENCY            \
    "(?<ans>@ARG@" PERCENT_SUFFIX "))"

/* @ARG@ takes the letter class, e.g. "A-D". */
#define LETTER_KEY "(?:(?<ans>[@ARG@])|\\((?<ans>[@ARG@])\\))"
#define LETTER_END "(?:\\*\\*)?(?:\\.|,|:| |$)"

typedef struct pattern_source {
    int priority; /* -1: the boxed priority of the configuration */
    enum pattern_kind kind;
    const char *fmt; /* @ARG@ stands for the environment / number / key pattern */
} pattern_source;

static const pattern_source latex_sources[] = {
    {0, KIND_LATEX, "(?i:final answer is):?\\s*@ARG@\\.?\\s?I hope"},
    {50, KIND_LATEX, "(?i:final answer.{0,100}?)\\s+is:?\\s*@ARG@"},
    {-1, KIND_BOXED, "(?<ans>\\\\(?:boxed|fbox)(?![a-zA-Z]).*)"},
    {100, KIND_LATEX, "(?i:answer):.{0,50}?@ARG@"},
    {200, KIND_LATEX, "(?i:answer).{0,50}?@ARG@"},
    {300, KIND_LATEX, "@ARG@"},
};

static const pattern_source expr_sources[] = {
    {0, KIND_EXPR, "(?i:final answer is):?\\s*@ARG@\\.?\\s?I hope"},
    {50, KIND_EXPR, "(?i:final answer.{0,100}?)\\s+is:?@ARG@"},
    {100, KIND_EXPR, "(?i:answer):(?:.{0,100}=\\s*|.{0,50}?)@ARG@(?!\\s*=)"},
    {200, KIND_EXPR, "(?i:answer)(?:.{0,100}=\\s*|.{0,50}?)@ARG@(?!\\s*=)"},
    {300, KIND_EXPR, "@ARG@"},
};

static const pattern_source letter_sources[] = {
    {0, KIND_LETTERS, "(?i:final answer is):?\\s*@ARG@\\.?\\s?I hope"},
    {50, KIND_LETTERS, "(?i:final answer.{0,100}?)\\s+is:?\\s*@ARG@"},
    {100, KIND_LETTERS, "(?i:answer):.{0,50}?(?:^| )(?:\\*\\*)?@ARG@" LETTER_END},
    {150, KIND_LETTERS, "(?i:answer).{0,50}?(?:^| )(?:\\*\\*)?@ARG@" LETTER_END},
    {200, KIND_LETTERS, "^(?:\\*\\*)?@ARG@" LETTER_END},
    {210, KIND_LETTERS, "\\n(?:\\*\\*)?@ARG@" LETTER_END},
    {250, KIND_LETTERS, "(?:^| )(?:\\*\\*)?@ARG@" LETTER_END},
    {300, KIND_LETTERS, "@ARG@"},
};

/* Read only with boxed_letters: \boxed{C}, \boxed{\text{(C)}}, \boxed{\textbf{C}}. */
static const char boxed_letter_fmt[] =
    "\\\\boxed\\s*\\{\\s*(?:\\\\text(?:bf)?\\s*\\{)?\\s*\\(?(?<ans>[@ARG@])\\)?\\s*\\}?\\s*\\}";

/* ---- compiling ------------------------------------------------------- */

/* Pattern sources are full of '%' and braces, so the argument is spliced in
 * by replacing every @ARG@ rather than with printf. */
static char *substitute(const char *fmt, const char *arg)
{
    ssf_buf b = {0};
    for (const char *at = strstr(fmt, "@ARG@"); at; at = strstr(fmt, "@ARG@")) {
        ssf_buf_append(&b, fmt, (size_t)(at - fmt));
        ssf_buf_puts(&b, arg);
        fmt = at + 5;
    }
    ssf_buf_puts(&b, fmt);
    return ssf_buf_take(&b);
}

static int compile(ssf_extractor *x, const char *src, int priority, enum pattern_kind kind,
                   uint32_t flags, ssf_error *err)
{
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                                   flags | PCRE2_DUPNAMES | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                   &code, &offset, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ssf_fail(err, "internal pattern error at %zu: %s (%s)", (size_t)offset,
                        (const char *)msg, src);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if unavailable */
    x->patterns = ssf_xrealloc(x->patterns, (x->n + 1) * sizeof *x->patterns);
    x->patterns[x->n++] = (pattern){re, priority, kind};
    return 0;
}

static int add_sources(ssf_extractor *x, const pattern_source *src, size_t n, const char *inner,
                       uint32_t flags, ssf_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int priority = src[i].priority >= 0 ? src[i].priority : x->cfg.boxed_priority;
        if (priority < 0) continue; /* boxed disabled */
        char *source = substitute(src[i].fmt, inner);
        int rc = compile(x, source, priority, src[i].kind, flags, err);
        free(source);
        if (rc) return -1;
    }
    return 0;
}

static int add_letters(ssf_extractor *x, ssf_error *err)
{
    int n = x->cfg.n_letters > 0 && x->cfg.n_letters <= 26 ? x->cfg.n_letters : 4;
    char cls[8];
    snprintf(cls, sizeof cls, "A-%c", 'A' + n - 1);
    char *key = substitute(LETTER_KEY, cls);
    int rc = add_sources(x, letter_sources, sizeof letter_sources / sizeof *letter_sources, key, 0,
                         err);
    free(key);
    if (rc || !x->cfg.boxed_letters) return rc;
    char *boxed = substitute(boxed_letter_fmt, cls);
    rc = compile(x, boxed, 5, KIND_LETTERS, 0, err);
    free(boxed);
    return rc;
}

static int add_expr(ssf_extractor *x, ssf_error *err)
{
    char *eon = substitute(EXPR_OR_NUMBER,
                           x->cfg.lighteval_numbers ? NUMBER_LIGHTEVAL : NUMBER_MATHVERIFY);
    int rc = add_sources(x, expr_sources, sizeof expr_sources / sizeof *expr_sources, eon, 0, err);
    free(eon);
    return rc;
}

ssf_extractor *ssf_extractor_new(const ssf_extract_config *cfg, ssf_error *err)
{
    ssf_extractor *x = ssf_xcalloc(1, sizeof *x);
    x->cfg = *cfg;
    int rc = 0;
    if (cfg->targets & SSF_TARGET_LETTERS) rc = add_letters(x, err);
    if (rc == 0 && (cfg->targets & SSF_TARGET_LATEX))
        rc = add_sources(x, latex_sources, sizeof latex_sources / sizeof *latex_sources,
                         LATEX_ENVS, PCRE2_DOTALL, err);
    if (rc == 0 && (cfg->targets & SSF_TARGET_EXPR)) rc = add_expr(x, err);
    if (rc) {
        ssf_extractor_free(x);
        return NULL;
    }
    return x;
}

void ssf_extractor_free(ssf_extractor *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->n; i++) pcre2_code_free(x->patterns[i].code);
    free(x->patterns);
    free(x);
}

/* ---- matching -------------------------------------------------------- */

typedef struct match {
    size_t start, end;         /* the whole match */
    size_t ans_start, ans_end; /* the answer group */
    int percent;               /* a percent suffix followed a LaTeX environment */
    const pattern *pat;
} match;

typedef struct match_list {
    match *items;
    size_t n, cap;
} match_list;

static void push_match(match_list *l, match m)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->items = ssf_xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->n++] = m;
}

/* The first set group named name, or -1. */
static int named_group(const pcre2_code *re, pcre2_match_data *md, const char *name,
                       size_t *start, size_t *end)
{
    PCRE2_SPTR first, last;
    int size = pcre2_substring_nametable_scan(re, (PCRE2_SPTR)name, &first, &last);
    if (size <= 0) return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t count = pcre2_get_ovector_count(md);
    for (PCRE2_SPTR e = first; e <= last; e += size) {
        uint32_t group = ((uint32_t)e[0] << 8) | e[1];
        if (group < count && ov[2 * group] != PCRE2_UNSET) {
            *start = ov[2 * group];
            *end = ov[2 * group + 1];
            return 0;
        }
    }
    return -1;
}

/* Python's finditer: non-overlapping matches, left to right. */
static void find_all(const pattern *p, const char *text, size_t len, pcre2_match_data *md,
                     pcre2_match_context *mc, match_list *out)
{
    size_t at = 0;
    while (at <= len) {
        int rc = pcre2_match(p->code, (PCRE2_SPTR)text, len, at, 0, md, mc);
        if (rc < 0) return; /* no match, or the match limit: stop quietly */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        match m = {.start = ov[0], .end = ov[1], .pat = p};
        size_t ps, pe;
        if (named_group(p->code, md, "ans", &m.ans_start, &m.ans_end) == 0) {
            m.percent = named_group(p->code, md, "pct", &ps, &pe) == 0 && pe > ps;
            push_match(out, m);
        }
        at = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
}

static int rightmost_first(const void *pa, const void *pb)
{
    const match *a = pa, *b = pb;
    if (a->end != b->end) return a->end > b->end ? -1 : 1;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    return 0;
}

/* ---- candidates ------------------------------------------------------ */

/* Numbers from the Expr patterns: grouping spaces and commas go, a decimal
 * comma becomes a point, a percent word becomes "%". */
static char *number_text(const char *s, size_t n)
{
    ssf_buf b = {0};
    int grouped = 0;
    for (size_t i = 0; i + 4 <= n; i++)
        if ((s[i] == ',' || s[i] == ' ') && i + 4 <= n && strspn(s + i + 1, "0123456789") >= 3)
            grouped = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ',' && !grouped) ssf_buf_putc(&b, '.');
        else if (c == ',' || c == ' ') continue;
        else if ((c >= '0' && c <= '9') || c == '.' || c == '-') ssf_buf_putc(&b, c);
        else if (c == '%' || c == 'p' || c == 'P') {
            ssf_buf_putc(&b, '%');
            break;
        }
    }
    return ssf_buf_take(&b);
}

/* Plain-text arithmetic: the parser reads * and /, not the Unicode signs. */
static char *expr_text(const char *s, size_t n)
{
    ssf_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && (unsigned char)s[i] == 0xC3 && (unsigned char)s[i + 1] == 0x97) {
            ssf_buf_putc(&b, '*'); /* × */
            i++;
        } else if (i + 1 < n && (unsigned char)s[i] == 0xC3 && (unsigned char)s[i + 1] == 0xB7) {
            ssf_buf_putc(&b, '/'); /* ÷ */
            i++;
        } else {
            ssf_buf_putc(&b, s[i]);
        }
    }
    return ssf_buf_take(&b);
}

static int is_number_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr("+*/^()", s[i]) || (s[i] == '-' && i > 0)) return 0;
    return 1;
}

/* The text handed to the parser for one match. */
static char *candidate_text(const match *m, const char *text)
{
    const char *s = text + m->ans_start;
    size_t n = m->ans_end - m->ans_start;
    switch (m->pat->kind) {
    case KIND_BOXED: return ssf_boxed_content(s, n);
    case KIND_EXPR: return is_number_text(s, n) ? number_text(s, n) : expr_text(s, n);
    case KIND_LETTERS: return ssf_xstrndup(s, n);
    case KIND_LATEX: {
        ssf_buf b = {0};
        ssf_buf_append(&b, s, n);
        if (m->percent) ssf_buf_puts(&b, "\\%");
        return ssf_buf_take(&b);
    }
    }
    return NULL;
}

static ssf_node *parse_candidate(const ssf_extractor *x, const match *m, const char *cand,
                                 ssf_arena *arena)
{
    ssf_error err;
    if (m->pat->kind == KIND_LETTERS) return ssf_node_symbol(arena, SSF_N_TEXT, cand, strlen(cand));
    return ssf_parse_answer(arena, cand, strlen(cand), &x->cfg.parse, &err);
}

/* Tries one priority group; returns 1 when a candidate parsed. */
static int try_group(const ssf_extractor *x, match_list *ml, const char *text, ssf_arena *arena,
                     ssf_extraction *out, size_t *tried)
{
    qsort(ml->items, ml->n, sizeof *ml->items, rightmost_first);
    for (size_t i = 0; i < ml->n; i++) {
        const match *m = &ml->items[i];
        if (!out->fallback)
            out->fallback = ssf_xstrndup(text + m->ans_start, m->ans_end - m->ans_start);
        if (++*tried > MAX_CANDIDATES) {
            out->over_budget = 1;
            return 0;
        }
        char *cand = candidate_text(m, text);
        ssf_node *v = cand && *cand ? parse_candidate(x, m, cand, arena) : NULL;
        if (ssf_arena_exhausted(arena)) out->over_budget = 1;
        if (v) {
            out->value = v;
            out->answer = cand;
            out->priority = m->pat->priority;
            out->kind = kind_names[m->pat->kind];
            return 1;
        }
        free(cand);
    }
    return 0;
}

static int next_priority(const ssf_extractor *x, int after)
{
    int best = -1;
    for (size_t i = 0; i < x->n; i++) {
        int p = x->patterns[i].priority;
        if (p > after && (best < 0 || p < best)) best = p;
    }
    return best;
}

void ssf_extract(const ssf_extractor *x, const char *text, size_t len, ssf_arena *arena,
                 ssf_extraction *out)
{
    memset(out, 0, sizeof *out);
    out->priority = -1;
    pcre2_match_data *md = pcre2_match_data_create(64, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(mc, 1000000); /* no catastrophic backtracking on hostile text */
    pcre2_set_depth_limit(mc, 10000);
    match_list ml = {0};
    size_t tried = 0;
    for (int prio = next_priority(x, -1); prio >= 0; prio = next_priority(x, prio)) {
        ml.n = 0;
        for (size_t i = 0; i < x->n; i++)
            if (x->patterns[i].priority == prio) find_all(&x->patterns[i], text, len, md, mc, &ml);
        if (try_group(x, &ml, text, arena, out, &tried) || out->over_budget) break;
    }
    free(ml.items);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
}

void ssf_extraction_clear(ssf_extraction *e)
{
    free(e->answer);
    free(e->fallback);
    memset(e, 0, sizeof *e);
    e->priority = -1;
}

/* ---- boxes ----------------------------------------------------------- */

typedef struct box {
    size_t start, end;        /* the whole \boxed{...} */
    size_t body_start, body_end;
} box;

/* Finds the box opening at s[at] ("\boxed" or "\fbox"); the body runs to the
 * matching brace, or to the end of the text when it never closes. */
static int read_box(const char *s, size_t len, size_t at, box *b)
{
    size_t i = at + (strncmp(s + at, "\\boxed", 6) == 0 ? 6 : 5);
    while (i < len && s[i] == ' ') i++;
    b->start = at;
    if (i < len && s[i] != '{' && s[i] != '\\' && s[i] != '}') {
        /* \boxed2: TeX takes the single next token as the argument */
        b->body_start = i;
        b->body_end = b->end = i + 1;
        return 0;
    }
    if (i >= len || s[i] != '{') return -1;
    b->body_start = ++i;
    for (int depth = 1; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            i++;
            continue;
        }
        if (s[i] == '{') depth++;
        if (s[i] == '}' && --depth == 0) break;
    }
    b->body_end = i < len ? i : len;
    b->end = i < len ? i + 1 : len;
    return 0;
}

static size_t collect_boxes(const char *s, size_t len, box *boxes, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < max; i++) {
        if (s[i] != '\\') continue;
        if (strncmp(s + i, "\\boxed", 6) != 0 && strncmp(s + i, "\\fbox", 5) != 0) continue;
        box b;
        if (read_box(s, len, i, &b) == 0) {
            boxes[n++] = b;
            i = b.end > i ? b.end - 1 : i;
        }
    }
    return n;
}

/* Whether the text between two boxes joins them into one answer: short, and
 * nothing but separators ("and", "or", ",", ";", spaces, $). */
static int joined(const char *s, size_t from, size_t to)
{
    if (to < from || to - from > 70) return 0;
    if (to - from < 10) return 1;
    for (size_t i = from; i < to; i++) {
        if (strchr(" ,;$\\.\n", s[i])) continue;
        if (strncmp(s + i, "and", 3) == 0 || strncmp(s + i, "or", 2) == 0) {
            i += s[i] == 'a' ? 2 : 1;
            continue;
        }
        return 0;
    }
    return 1;
}

char *ssf_boxed_content(const char *s, size_t len)
{
    box boxes[64];
    size_t n = collect_boxes(s, len, boxes, 64);
    if (n == 0) return NULL;
    size_t first = n - 1;
    while (first > 0 && joined(s, boxes[first - 1].end, boxes[first].start)) first--;
    ssf_buf b = {0};
    const char *prev = NULL;
    size_t prev_len = 0;
    for (size_t k = first; k < n; k++) {
        const char *body = s + boxes[k].body_start;
        size_t blen = boxes[k].body_end - boxes[k].body_start;
        if (prev && prev_len == blen && memcmp(prev, body, blen) == 0) continue; /* duplicate */
        if (b.len) ssf_buf_putc(&b, ',');
        ssf_buf_append(&b, body, blen);
        prev = body;
        prev_len = blen;
    }
    return ssf_buf_take(&b);
}
