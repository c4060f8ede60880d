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
#include "ssfteval/records.h"

#include <ctype.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

enum pattern_kind { KIND_LATEX, KIND_BOXED, KIND_EXPR, KIND_LETTERS, KIND_PLAIN };

static const char *const kind_names[] = {"latex", "boxed", "expr", "letters", "plain"};

/* Capture groups sharing a name (PCRE2_DUPNAMES), in name-table order. */
#define MAX_DUP_GROUPS 16

typedef struct group_set {
    uint32_t group[MAX_DUP_GROUPS];
    int n;
} group_set;

typedef struct pattern {
    pcre2_code *code; /* see compile_matcher */
    int priority;
    enum pattern_kind kind;
    int anchored; /* needs the word "answer" (caseless), which one scan rules out */
    int jit;      /* JIT compiled: matched through pcre2_jit_match */
    group_set ans, pct;
} pattern;

struct ssf_extractor {
    pattern *patterns;
    size_t n;
    /* The patterns by priority, ascending (stable within a priority), and
     * where each priority's run starts: groups[k] .. groups[k + 1]. */
    size_t *order, *groups;
    size_t n_groups;
    pcre2_code *anchor;        /* (?i:answer), the prefilter of anchored patterns */
    pcre2_match_context *mctx; /* limits only; never changed, so shared by threads */
    int anchor_jit;
    int interpreted; /* some pattern lacks JIT: a text's UTF-8 is checked once */
    ssf_extract_config cfg;
};

/* A text as the interpreter reads it: its valid UTF-8 fragments, which the
 * invalid sequences between them split.  PCRE2_MATCH_INVALID_UTF matches
 * fragment by fragment too (pcre2unicode(3)): no match crosses an invalid
 * sequence, a lookbehind stops at one, \b sees a fragment's ends as a
 * subject's, and ^ and $ match only at the text's own start and end, which
 * PCRE2_NOTBOL and PCRE2_NOTEOL give a fragment that is not there.  (\A,
 * \z and \Z would match at a fragment's ends; no pattern uses them.) */
typedef struct fragment {
    size_t start, end;
} fragment;

typedef struct subject {
    const char *text;
    size_t len;
    fragment all;    /* the whole text, which JIT code reads */
    fragment *frags; /* NULL when every pattern has JIT, which needs none */
    size_t n_frags;
} subject;

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
#define EXPR_ALONE EXPR_PREFIX "(?<ans>" EXPRESSION ")(?=" EXPR_SUFFIX ")"
#define NUMBER_ALONE EXPR_PREFIX CURRENCY "(?<ans>@ARG@" PERCENT_SUFFIX ")"
#define EXPR_OR_NUMBER "(?:" EXPR_ALONE "|" NUMBER_ALONE ")"

/* @ARG@ takes the letter class, e.g. "A-D". */
#define LETTER_KEY "(?:(?<ans>[@ARG@])|\\((?<ans>[@ARG@])\\))"
/* Without LightEval's bare last resort: also a letter set in TeX, $\mathrm{B}$. */
#define LETTER_KEY_TEX                                                                             \
    "(?:(?<ans>[@ARG@])|\\((?<ans>[@ARG@])\\)|\\$?\\\\(?:mathrm|text|textbf)\\{(?<ans>[@ARG@])\\}" \
    "\\$?)"
/* @NL@: "|\n" where a line break also ends a letter, and after an answer
 * anchor "|\n|\)", the choices' own ")": "Answer: B) ..." (not in LightEval). */
#define LETTER_END "(?:\\*\\*)?(?:\\.|,|:| |$@NL@)"

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
};

/* Without an anchor an expression and a number are two patterns, as in
 * LightEval and Math-Verify: one alternation would hide the number "73"
 * behind the expression "73**" of "**73**", which does not parse. */
static const pattern_source bare_expr_sources[] = {
    {300, KIND_EXPR, EXPR_ALONE},
    {300, KIND_EXPR, NUMBER_ALONE},
};

static const pattern_source letter_sources[] = {
    {0, KIND_LETTERS, "(?i:final answer is):?\\s*@ARG@\\.?\\s?I hope"},
    {50, KIND_LETTERS, "(?i:final answer.{0,100}?)\\s+is:?\\s*@ARG@"},
    {100, KIND_LETTERS, "(?i:answer):.{0,50}?(?:^| )(?:\\*\\*)?@ARG@" LETTER_END},
    {150, KIND_LETTERS, "(?i:answer).{0,50}?(?:^| )(?:\\*\\*)?@ARG@" LETTER_END},
    {200, KIND_LETTERS, "^(?:\\*\\*)?@ARG@" LETTER_END},
    {210, KIND_LETTERS, "\\n(?:\\*\\*)?@ARG@" LETTER_END},
    {250, KIND_LETTERS, "(?:^| )(?:\\*\\*)?@ARG@" LETTER_END},
    {300, KIND_LETTERS, "@ARG@"}, /* last: only with bare_letters */
};

/* Plain-text answers after an anchor ("the answer is pi/2", "Answer: sqrt(2)"),
 * which neither LaTeX nor Expr patterns read (Math-Verify #69).  Each sits
 * just after the Expr pattern of the same anchor, and the answer must hold a
 * digit or a function or constant name, so prose after "the answer is" is
 * not taken for an answer. */
#define PLAIN_ANSWER                                                                               \
    "(?<ans>(?=[^\\n]{0,80}?(?:\\d|\\b(?:pi|sqrt|exp|ln|log|sin|cos|tan|inf|infty|infinity)\\b))[" \
    "^\\n$]{1,80}?)"                                                                               \
    "\\s*(?:\\.(?:\\s|$)|$|\\n)"

static const pattern_source plain_sources[] = {
    {1, KIND_PLAIN, "(?i:final answer is):?\\s*" PLAIN_ANSWER},
    {101, KIND_PLAIN, "(?i:answer):\\s*" PLAIN_ANSWER},
    {201, KIND_PLAIN, "(?i:answer is):?\\s*" PLAIN_ANSWER},
};

/* Read only with boxed_letters: \boxed{C}, \boxed{\text{(C)}}, \boxed{\textbf{C}}. */
static const char boxed_letter_fmt[] =
    "\\\\boxed\\s*\\{\\s*(?:\\\\text(?:bf)?\\s*\\{)?\\s*\\(?(?<ans>[@ARG@])\\)?\\s*\\}?\\s*\\}";

/* ---- compiling ------------------------------------------------------- */

/* Pattern sources are full of '%' and braces, so the argument is spliced in
 * by replacing every @ARG@ rather than with printf. */
static char *replace_all(const char *fmt, const char *token, const char *with)
{
    ssf_buf b = {0};
    size_t n = strlen(token);
    for (const char *at = strstr(fmt, token); at; at = strstr(fmt, token)) {
        ssf_buf_append(&b, fmt, (size_t)(at - fmt));
        ssf_buf_puts(&b, with);
        fmt = at + n;
    }
    ssf_buf_puts(&b, fmt);
    return ssf_buf_take(&b);
}

static char *substitute(const char *fmt, const char *arg)
{
    return replace_all(fmt, "@ARG@", arg);
}

/* src compiled for any text (invalid UTF-8 never matches), or for valid
 * UTF-8 only (invalid_utf 0); JIT compiled unless no_jit or refused. */
static pcre2_code *compile_code(const char *src, uint32_t flags, int invalid_utf, int no_jit,
                                ssf_error *err)
{
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
                                   flags | PCRE2_DUPNAMES | PCRE2_UTF |
                                       (invalid_utf ? PCRE2_MATCH_INVALID_UTF : 0),
                                   &code, &offset, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        ssf_fail(err, "internal pattern error at %zu: %s (%s)", (size_t)offset, (const char *)msg,
                 src);
        return NULL;
    }
    /* JIT may be refused (W^X policies: systemd's MemoryDenyWriteExecute,
     * SELinux deny_execmem) or not built; the interpreter answers the same. */
    if (!no_jit) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

static int has_jit(const pcre2_code *re)
{
    size_t size = 0;
    return pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &size) == 0 && size > 0;
}

/* src as it is matched: JIT code for any text (invalid UTF-8 never
 * matches), or, where JIT is refused or off, the interpreter's pattern for
 * valid UTF-8, given each valid fragment of a text (see subject) without
 * its UTF check.  The interpreter checks the text from the start offset to
 * its end at every call, which find_all's call per match makes quadratic:
 * 8 s for 256 KB of "$x$ ", 14 s with one invalid byte. */
static pcre2_code *compile_matcher(const char *src, uint32_t flags, int no_jit, int *jit,
                                   ssf_error *err)
{
    pcre2_code *re = compile_code(src, flags, 1, no_jit, err);
    if (!re || (*jit = has_jit(re))) return re;
    pcre2_code_free(re);
    return compile_code(src, flags, 0, 1, err);
}

/* The groups named name, looked up once here rather than on every match. */
static int name_groups(const pcre2_code *re, const char *name, group_set *gs, ssf_error *err)
{
    PCRE2_SPTR first, last;
    int size = pcre2_substring_nametable_scan(re, (PCRE2_SPTR)name, &first, &last);
    gs->n = 0;
    if (size <= 0) return 0;
    for (PCRE2_SPTR e = first; e <= last; e += size) {
        if (gs->n == MAX_DUP_GROUPS) return ssf_fail(err, "internal: too many '%s' groups", name);
        gs->group[gs->n++] = ((uint32_t)e[0] << 8) | e[1];
    }
    return 0;
}

/* Whether a source opens with a caseless group holding "answer", which
 * every match then contains: a text without the word skips the pattern. */
static int anchored_source(const char *src)
{
    if (strncmp(src, "(?i:", 4) != 0) return 0;
    const char *close = strchr(src, ')'), *word = strstr(src, "answer");
    return close && word && word < close;
}

static int compile(ssf_extractor *x, const char *src, int priority, enum pattern_kind kind,
                   uint32_t flags, ssf_error *err)
{
    int jit;
    pcre2_code *re = compile_matcher(src, flags, x->cfg.no_jit, &jit, err);
    if (!re) return -1;
    pattern p = {re, priority, kind, anchored_source(src), jit, {{0}, 0}, {{0}, 0}};
    x->interpreted |= !jit;
    x->patterns = ssf_xrealloc(x->patterns, (x->n + 1) * sizeof *x->patterns);
    x->patterns[x->n++] = p;
    if (name_groups(re, "ans", &x->patterns[x->n - 1].ans, err)) return -1;
    return name_groups(re, "pct", &x->patterns[x->n - 1].pct, err);
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

/* Without LightEval's bare last resort (priority 300), whose capital A-D
 * anywhere reads "(R)-2-Bromobutane" as B and "Answer: unsure" as A, what
 * only it used to read is read by the others: a letter glued to its anchor
 * ("Answer:B") by a pattern of its own, a letter before a line break
 * ("Answer: B\nBecause ...") or a choice's ")" ("Answer: B) its text") by
 * those ending a letter (@NL@), and a letter set in TeX by LETTER_KEY_TEX. */
static const pattern_source glued_letter = {100, KIND_LETTERS,
                                            "(?i:answer):(?:\\*\\*)?@ARG@" LETTER_END};

static int add_letters(ssf_extractor *x, ssf_error *err)
{
    int n = x->cfg.n_letters > 0 && x->cfg.n_letters <= 26 ? x->cfg.n_letters : 4;
    char cls[8];
    snprintf(cls, sizeof cls, "A-%c", 'A' + n - 1);
    char *key = substitute(x->cfg.bare_letters ? LETTER_KEY : LETTER_KEY_TEX, cls);
    size_t n_sources = sizeof letter_sources / sizeof *letter_sources;
    int rc = 0;
    for (size_t i = 0; i < n_sources && rc == 0; i++) {
        const pattern_source *src = &letter_sources[i];
        if (src->priority == 300 && !x->cfg.bare_letters) src = &glued_letter;
        /* ")" only after an answer anchor: lines "B) ..." alone are the
         * choices restated, not an answer */
        const char *nl = x->cfg.bare_letters ? "" : src->priority <= 150 ? "|\\n|\\)" : "|\\n";
        char *fmt = replace_all(src->fmt, "@NL@", nl);
        pattern_source ended = {src->priority, src->kind, fmt};
        rc = add_sources(x, &ended, 1, key, 0, err);
        free(fmt);
    }
    free(key);
    if (rc || !x->cfg.boxed_letters) return rc;
    char *boxed = substitute(boxed_letter_fmt, cls);
    rc = compile(x, boxed, 5, KIND_LETTERS, 0, err);
    free(boxed);
    return rc;
}

static int add_expr(ssf_extractor *x, ssf_error *err)
{
    const char *number = x->cfg.lighteval_numbers ? NUMBER_LIGHTEVAL : NUMBER_MATHVERIFY;
    char *eon = substitute(EXPR_OR_NUMBER, number);
    int rc = add_sources(x, expr_sources, sizeof expr_sources / sizeof *expr_sources, eon, 0, err);
    free(eon);
    if (rc == 0)
        rc = add_sources(x, bare_expr_sources, sizeof bare_expr_sources / sizeof *bare_expr_sources,
                         number, 0, err);
    return rc;
}

/* The cascade's order, computed once: priorities ascending, and inside one
 * priority the patterns in the order they were added. */
static void order_patterns(ssf_extractor *x)
{
    x->order = ssf_xmalloc((x->n + 1) * sizeof *x->order);
    x->groups = ssf_xmalloc((x->n + 1) * sizeof *x->groups);
    size_t k = 0;
    x->n_groups = 0;
    for (int prio = -1;;) {
        int next = -1;
        for (size_t i = 0; i < x->n; i++) {
            int p = x->patterns[i].priority;
            if (p > prio && (next < 0 || p < next)) next = p;
        }
        if (next < 0) break;
        x->groups[x->n_groups++] = k;
        for (size_t i = 0; i < x->n; i++)
            if (x->patterns[i].priority == next) x->order[k++] = i;
        prio = next;
    }
    x->groups[x->n_groups] = k;
}

static int prepare_matching(ssf_extractor *x, ssf_error *err)
{
    order_patterns(x);
    x->anchor = compile_matcher("(?i:answer)", 0, x->cfg.no_jit, &x->anchor_jit, err);
    if (!x->anchor) return -1;
    x->interpreted |= !x->anchor_jit;
    x->mctx = pcre2_match_context_create(NULL);
    if (!x->mctx) return ssf_fail(err, "out of memory for a match context");
    pcre2_set_match_limit(x->mctx, 1000000); /* no catastrophic backtracking on hostile text */
    pcre2_set_depth_limit(x->mctx, 10000);
    return 0;
}

ssf_extractor *ssf_extractor_new(const ssf_extract_config *cfg, ssf_error *err)
{
    ssf_extractor *x = ssf_xcalloc(1, sizeof *x);
    x->cfg = *cfg;
    int rc = 0;
    if (cfg->targets & SSF_TARGET_LETTERS) rc = add_letters(x, err);
    if (rc == 0 && (cfg->targets & SSF_TARGET_LATEX))
        rc = add_sources(x, latex_sources, sizeof latex_sources / sizeof *latex_sources, LATEX_ENVS,
                         PCRE2_DOTALL, err);
    if (rc == 0 && (cfg->targets & SSF_TARGET_EXPR)) rc = add_expr(x, err);
    if (rc == 0 && cfg->plain_text && (cfg->targets & SSF_TARGET_EXPR))
        rc =
            add_sources(x, plain_sources, sizeof plain_sources / sizeof *plain_sources, "", 0, err);
    if (rc == 0) rc = prepare_matching(x, err);
    if (rc) {
        ssf_extractor_free(x);
        return NULL;
    }
    return x;
}

void ssf_extractor_free(ssf_extractor *x)
{
    if (!x) return;
    for (size_t i = 0; i < x->n; i++) {
        pcre2_code_free(x->patterns[i].code);
    }
    pcre2_code_free(x->anchor);
    pcre2_match_context_free(x->mctx);
    free(x->patterns);
    free(x->order);
    free(x->groups);
    free(x);
}

int ssf_extractor_has_jit(const ssf_extractor *x)
{
    return !x->interpreted;
}

/* ---- matching -------------------------------------------------------- */

typedef struct match {
    size_t start, end;         /* the whole match */
    size_t ans_start, ans_end; /* the answer group */
    int percent;               /* a percent suffix followed a LaTeX environment */
    const pattern *pat;
    size_t found; /* its place in the order the group's patterns found matches */
} match;

#define MATCHES_INLINE 16

/* Most groups find a few matches: they stay in `small`, on the stack. */
typedef struct match_list {
    match *items;
    size_t n, cap;
    match small[MATCHES_INLINE];
} match_list;

static void push_match(match_list *l, match m)
{
    m.found = l->n;
    if (l->n == l->cap) {
        l->cap *= 2;
        if (l->items == l->small) {
            l->items = ssf_xmalloc(l->cap * sizeof *l->items);
            memcpy(l->items, l->small, l->n * sizeof *l->items);
        } else {
            l->items = ssf_xrealloc(l->items, l->cap * sizeof *l->items);
        }
    }
    l->items[l->n++] = m;
}

/* pcre2_match, straight into the JIT code where the pattern has it: the
 * fast path skips only argument checks that these calls always pass (a
 * length is given, at <= len, no options) and answers the same.  Without
 * JIT, re is compiled for valid UTF-8 and text[0..len) is one valid
 * fragment, which is why the UTF check can be left out. */
static int run_match(const pcre2_code *re, int jit, const char *text, size_t len, size_t at,
                     uint32_t options, pcre2_match_data *md, pcre2_match_context *mc)
{
    if (jit) return pcre2_jit_match(re, (PCRE2_SPTR)text, len, at, 0, md, mc);
    return pcre2_match(re, (PCRE2_SPTR)text, len, at, options | PCRE2_NO_UTF_CHECK, md, mc);
}

static uint32_t fragment_options(const subject *t, const fragment *f)
{
    return (f->start > 0 ? PCRE2_NOTBOL : 0) | (f->end < t->len ? PCRE2_NOTEOL : 0);
}

static void split_fragments(subject *t)
{
    size_t n = ssf_utf8_valid_prefix(t->text, t->len), at = 0, cap = 0;
    if (n == t->len) { /* the usual text: one fragment, without an allocation */
        t->frags = &t->all;
        t->n_frags = 1;
        return;
    }
    for (;;) {
        if (n > 0) {
            if (t->n_frags == cap) {
                cap = cap ? 2 * cap : 16;
                t->frags = ssf_xrealloc(t->frags, cap * sizeof *t->frags);
            }
            t->frags[t->n_frags++] = (fragment){at, at + n};
        }
        at += n + 1; /* and past one byte of the invalid sequence */
        if (at >= t->len) return;
        n = ssf_utf8_valid_prefix(t->text + at, t->len - at);
    }
}

static void subject_init(subject *t, const ssf_extractor *x, const char *text, size_t len)
{
    *t = (subject){.text = text, .len = len, .all = {0, len}};
    if (x->interpreted) split_fragments(t);
}

static void subject_free(subject *t)
{
    if (t->frags != &t->all) free(t->frags);
}

/* The spans code reads: JIT code the whole text, the interpreter each
 * valid fragment. */
static const fragment *spans(const subject *t, int jit, size_t *n)
{
    *n = jit ? 1 : t->n_frags;
    return jit ? &t->all : t->frags;
}

/* The first set group of gs, or -1. */
static int set_group(const group_set *gs, pcre2_match_data *md, size_t *start, size_t *end)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t count = pcre2_get_ovector_count(md);
    for (int k = 0; k < gs->n; k++) {
        uint32_t group = gs->group[k];
        if (group < count && ov[2 * (size_t)group] != PCRE2_UNSET) {
            *start = ov[2 * (size_t)group];
            *end = ov[2 * (size_t)group + 1];
            return 0;
        }
    }
    return -1;
}

/* Python's finditer over text[0..len), which starts at offset base of the
 * subject: non-overlapping matches, left to right. */
static void find_in(const pattern *p, const char *text, size_t len, size_t base, uint32_t options,
                    pcre2_match_data *md, pcre2_match_context *mc, match_list *out)
{
    size_t at = 0;
    while (at <= len) {
        int rc = run_match(p->code, p->jit, text, len, at, options, md, mc);
        if (rc < 0) return; /* no match, or the match limit: stop quietly */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        match m = {.start = base + ov[0], .end = base + ov[1], .pat = p};
        size_t ps, pe;
        if (set_group(&p->ans, md, &m.ans_start, &m.ans_end) == 0) {
            m.ans_start += base;
            m.ans_end += base;
            m.percent = set_group(&p->pct, md, &ps, &pe) == 0 && pe > ps;
            push_match(out, m);
        }
        at = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
}

static void find_all(const pattern *p, const subject *t, pcre2_match_data *md,
                     pcre2_match_context *mc, match_list *out)
{
    size_t n;
    const fragment *f = spans(t, p->jit, &n);
    for (size_t i = 0; i < n; i++)
        find_in(p, t->text + f[i].start, f[i].end - f[i].start, f[i].start,
                fragment_options(t, &f[i]), md, mc, out);
}

static int rightmost_first(const void *pa, const void *pb)
{
    const match *a = pa, *b = pb;
    if (a->end != b->end) return a->end > b->end ? -1 : 1;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    return a->found < b->found ? -1 : a->found > b->found; /* ties: as found */
}

/* ---- candidates ------------------------------------------------------ */

/* Whether s[0..n) is a thousands-grouped number, "7,425,000" or "1 000.5":
 * 1-3 digits (1-9 first under Math-Verify's rule), then groups of a comma or
 * space and exactly 3 digits.  Only then are the commas separators: in
 * "1000,999" or (Math-Verify) "0,999" the comma is a decimal comma, as the
 * regex branch that matched says. */
static int thousands_grouped(const char *s, size_t n, int lighteval)
{
    size_t i = s[0] == '-' ? 1 : 0, lead = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && lead < 4)
        i++, lead++;
    if (lead == 0 || lead > 3 || (!lighteval && s[s[0] == '-'] == '0')) return 0;
    int groups = 0;
    while (i + 3 < n + 0 && (s[i] == ',' || s[i] == ' ') && strspn(s + i + 1, "0123456789") >= 3) {
        i += 4;
        groups++;
        if (i < n && s[i] >= '0' && s[i] <= '9') return 0; /* a 4th digit: not a group */
    }
    return groups > 0 &&
           (i == n || s[i] == '.' || s[i] == '%' || s[i] == ' ' || s[i] == 'p' || s[i] == 'P');
}

/* Numbers from the Expr patterns: grouping spaces and commas go, a decimal
 * comma becomes a point, a percent word becomes "%". */
static char *number_text(const char *s, size_t n, int lighteval)
{
    ssf_buf b = {0};
    int grouped = thousands_grouped(s, n, lighteval);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ',' && !grouped)
            ssf_buf_putc(&b, '.');
        else if (c == ',' || c == ' ')
            continue;
        else if ((c >= '0' && c <= '9') || c == '.' || c == '-')
            ssf_buf_putc(&b, c);
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
    for (size_t i = 0; i < n; i++) {
        if (strchr("+*/^()", s[i]) || (s[i] == '-' && i > 0)) return 0;
        /* × (C3 97) and ÷ (C3 B7) are operators too */
        if ((unsigned char)s[i] == 0xC3 && i + 1 < n &&
            ((unsigned char)s[i + 1] == 0x97 || (unsigned char)s[i + 1] == 0xB7))
            return 0;
    }
    return 1;
}

/* The text handed to the parser for one match. */
static char *candidate_text(const match *m, const char *text, int lighteval)
{
    const char *s = text + m->ans_start;
    size_t n = m->ans_end - m->ans_start;
    switch (m->pat->kind) {
    case KIND_BOXED:
        return ssf_boxed_content(s, n);
    case KIND_EXPR:
        return is_number_text(s, n) ? number_text(s, n, lighteval) : expr_text(s, n);
    case KIND_LETTERS:
    case KIND_PLAIN:
        return ssf_xstrndup(s, n);
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
    size_t n = strlen(cand);
    if (m->pat->kind == KIND_LETTERS) return ssf_node_symbol(arena, SSF_N_TEXT, cand, n);
    return ssf_parse_answer(arena, cand, n, &x->cfg.parse, NULL); /* why is not reported */
}

/* Ties keep the order they were found in by the last key of
 * rightmost_first, not by whether the C library's qsort is stable (glibc's
 * is a merge sort only while its buffer can be had; musl's and the BSDs'
 * are not).  Groups hold a few matches: insertion sort, and qsort for long
 * lists. */
static void sort_matches(match_list *ml)
{
    if (ml->n > 32) {
        qsort(ml->items, ml->n, sizeof *ml->items, rightmost_first);
        return;
    }
    for (size_t i = 1; i < ml->n; i++) {
        match m = ml->items[i];
        size_t j = i;
        for (; j > 0 && rightmost_first(&ml->items[j - 1], &m) > 0; j--)
            ml->items[j] = ml->items[j - 1];
        ml->items[j] = m;
    }
}

typedef struct box {
    size_t start, end; /* the whole \boxed{...} */
    size_t body_start, body_end;
} box;

/* The text a failed box hid, [start, end); empty when none. */
typedef struct span {
    size_t start, end;
} span;

static int read_box(const char *s, size_t len, size_t at, box *b);

/* The last box of a boxed match: the one the candidate was made of. */
static span last_box(const char *text, const match *m)
{
    span none = {0, 0};
    size_t last = SIZE_MAX;
    for (size_t i = m->ans_start; i < m->ans_end; i++)
        if (strncmp(text + i, "\\boxed", 6) == 0 || strncmp(text + i, "\\fbox", 5) == 0) last = i;
    box b;
    if (last == SIZE_MAX || read_box(text, m->ans_end, last, &b)) return none;
    return (span){b.start, b.end};
}

/* Tries one priority group; returns 1 when a candidate parsed.  With
 * box_is_final, a box that does not parse ({5 \over 2}, {1 2}) is what the
 * writer answered, unreadable: no later pattern may take a number from its
 * inside (the 2 of either) and grade that instead. */
static int try_group(const ssf_extractor *x, match_list *ml, const char *text, ssf_arena *arena,
                     ssf_extraction *out, size_t *tried, span *hidden)
{
    sort_matches(ml);
    for (size_t i = 0; i < ml->n; i++) {
        const match *m = &ml->items[i];
        if (m->ans_start >= hidden->start && m->ans_end <= hidden->end) continue;
        if (!out->fallback)
            out->fallback = ssf_xstrndup(text + m->ans_start, m->ans_end - m->ans_start);
        if (++*tried > MAX_CANDIDATES) {
            out->over_budget = 1;
            return 0;
        }
        char *cand = candidate_text(m, text, x->cfg.lighteval_numbers);
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
        if (m->pat->kind == KIND_BOXED && x->cfg.box_is_final && hidden->end == 0)
            *hidden = last_box(text, m);
    }
    return 0;
}

/* PCRE2's per-call memory (the general context and the match data, about
 * 1.2 KB) is carved from a buffer on the caller's stack rather than
 * malloc'd on every extraction; a request that does not fit (the
 * interpreter's frames, were JIT unavailable) goes to the heap. */
typedef struct stack_mem {
    max_align_t buf[2048 / sizeof(max_align_t)];
    size_t used;
} stack_mem;

static int in_stack_mem(const stack_mem *m, const void *p)
{
    uintptr_t b = (uintptr_t)m->buf, q = (uintptr_t)p;
    return q >= b && q < b + sizeof m->buf;
}

static void *stack_malloc(PCRE2_SIZE n, void *data)
{
    stack_mem *m = data;
    size_t need = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (sizeof m->buf - m->used < need) return malloc(n);
    void *p = (char *)m->buf + m->used;
    m->used += need;
    return p;
}

static void stack_free(void *p, void *data)
{
    if (!in_stack_mem(data, p)) free(p);
}

/* Whether the text holds "answer" as the anchored patterns read it (the
 * same caseless UTF matching), so that skipping them changes nothing. */
static int has_anchor(const ssf_extractor *x, const subject *t, pcre2_match_data *md)
{
    size_t n;
    const fragment *f = spans(t, x->anchor_jit, &n);
    for (size_t i = 0; i < n; i++)
        if (run_match(x->anchor, x->anchor_jit, t->text + f[i].start, f[i].end - f[i].start, 0,
                      fragment_options(t, &f[i]), md, x->mctx) >= 0)
            return 1;
    return 0;
}

void ssf_extract(const ssf_extractor *x, const char *text, size_t len, ssf_arena *arena,
                 ssf_extraction *out)
{
    memset(out, 0, sizeof *out);
    out->priority = -1;
    stack_mem mem;
    mem.used = 0;
    pcre2_general_context *gc = pcre2_general_context_create(stack_malloc, stack_free, &mem);
    pcre2_match_data *md = pcre2_match_data_create(64, gc);
    if (!md) abort(); /* out of memory, as ssf_xmalloc treats it */
    subject t;
    subject_init(&t, x, text, len);
    int anchor = has_anchor(x, &t, md);
    match_list ml;
    ml.items = ml.small;
    ml.cap = MATCHES_INLINE;
    size_t tried = 0;
    span hidden = {0, 0};
    for (size_t g = 0; g < x->n_groups; g++) {
        ml.n = 0;
        for (size_t k = x->groups[g]; k < x->groups[g + 1]; k++) {
            const pattern *p = &x->patterns[x->order[k]];
            if (anchor || !p->anchored) find_all(p, &t, md, x->mctx, &ml);
        }
        if (try_group(x, &ml, text, arena, out, &tried, &hidden) || out->over_budget) break;
    }
    if (ml.items != ml.small) free(ml.items);
    subject_free(&t);
    pcre2_match_data_free(md);
    pcre2_general_context_free(gc);
}

void ssf_extraction_clear(ssf_extraction *e)
{
    free(e->answer);
    free(e->fallback);
    memset(e, 0, sizeof *e);
    e->priority = -1;
}

/* ---- boxes ----------------------------------------------------------- */

/* Finds the box opening at s[at] ("\boxed" or "\fbox"); the body runs to the
 * matching brace, or to the end of the text when it never closes. */
static int read_box(const char *s, size_t len, size_t at, box *b)
{
    size_t i = at + (strncmp(s + at, "\\boxed", 6) == 0 ? 6 : 5);
    while (i < len && s[i] == ' ')
        i++;
    b->start = at;
    if (i < len && s[i] != '{' && s[i] != '\\' && s[i] != '}') {
        /* \boxed 57: TeX would box the 5 alone, but the writer meant 57, as
         * LightEval and Math-Verify read it: the run up to a space or '$',
         * less a sentence's closing '.' or ',' */
        size_t e = i;
        while (e < len && s[e] != ' ' && s[e] != '\t' && s[e] != '\n' && s[e] != '$')
            e++;
        b->end = e;
        while (e > i + 1 && (s[e - 1] == '.' || s[e - 1] == ','))
            e--;
        b->body_start = i;
        b->body_end = e;
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
    for (size_t i = 0; i < len; i++) {
        const char *bs = memchr(s + i, '\\', len - i); /* boxes open with a backslash */
        if (!bs) break;
        i = (size_t)(bs - s);
        if (strncmp(s + i, "\\boxed", 6) != 0 && strncmp(s + i, "\\fbox", 5) != 0) continue;
        box b;
        if (read_box(s, len, i, &b) == 0) {
            if (n == max) { /* only the trailing run of boxes matters: keep the last ones */
                memmove(boxes, boxes + 1, (max - 1) * sizeof *boxes);
                n--;
            }
            boxes[n++] = b;
            i = b.end > i ? b.end - 1 : i;
        }
    }
    return n;
}

/* The length of a separator word or command at s[i] (0 if none): "and",
 * "or", TeX's spacing, line-break and text commands (\quad, \\, \text{ and }), and a
 * variable's "x =" before the next box ("$x = \boxed{1}$ or $x = \boxed{-2}$"). */
static size_t separator_at(const char *s, size_t i, size_t to)
{
    /* a command before any that begins it: \textrm before \text */
    static const char *const words[] = {
        "and", "or",  "\\textrm", "\\text", "\\mathrm", "\\mbox", "\\qquad", "\\quad", "\\,",
        "\\;", "\\:", "\\ ",      "\\[",    "\\]",      "\\(",    "\\)",     "\\\\"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        size_t n = strlen(words[k]);
        if (n <= to - i && strncmp(s + i, words[k], n) == 0) return n;
    }
    if (isalpha((unsigned char)s[i]) && (i == 0 || !isalpha((unsigned char)s[i - 1]))) {
        size_t j = i + 1;
        while (j < to && s[j] == ' ')
            j++;
        if (j < to && s[j] == '=') return j + 1 - i;
    }
    return 0;
}

/* Whether the text between two boxes joins them into one answer: short, and
 * nothing but separators: spaces, ",", ";", ".", "$", braces, and the words
 * and commands of separator_at.  The boxes are then a list of answers. */
static int joined(const char *s, size_t from, size_t to)
{
    if (to < from || to - from > 70) return 0;
    if (to - from < 10) return 1;
    for (size_t i = from; i < to;) {
        size_t n = strchr(" ,;$.{}\n\t~", s[i]) ? 1 : separator_at(s, i, to);
        if (n == 0) return 0;
        i += n;
    }
    return 1;
}

int ssf_whole_box(const char *s, size_t len, size_t *body_start, size_t *body_end)
{
    size_t open = len >= 7 && memcmp(s, "\\boxed{", 7) == 0  ? 7
                  : len >= 6 && memcmp(s, "\\fbox{", 6) == 0 ? 6
                                                             : 0;
    box b;
    if (!open || read_box(s, len, 0, &b) != 0 || b.body_start != open || b.end != len ||
        b.body_end >= len)
        return 0; /* another text, a box that ends early, or one never closed */
    *body_start = b.body_start;
    *body_end = b.body_end;
    return 1;
}

char *ssf_boxed_content(const char *s, size_t len)
{
    box boxes[64];
    size_t n = collect_boxes(s, len, boxes, 64);
    if (n == 0) return NULL;
    size_t first = n - 1;
    while (first > 0 && joined(s, boxes[first - 1].end, boxes[first].start))
        first--;
    ssf_buf b = {0};
    const char *prev = NULL;
    size_t prev_len = 0;
    for (size_t k = first; k < n; k++) {
        const char *body = s + boxes[k].body_start;
        size_t blen = boxes[k].body_end - boxes[k].body_start;
        if (prev && prev_len == blen && memcmp(prev, body, blen) == 0) continue; /* duplicate */
        /* ", ": a comma alone makes "2" and "500" the number 2,500 */
        if (b.len) ssf_buf_puts(&b, ", ");
        ssf_buf_append(&b, body, blen);
        prev = body;
        prev_len = blen;
    }
    return ssf_buf_take(&b);
}
