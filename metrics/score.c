/*
 * score.c - pass@k, avg@n, cons@k / maj@k, native Cons@6 and per-tag pass@1
 * over graded samples, and their aggregation over questions.
 *
 * Rules (references: ../shared/reference/ssft-protocol.md §3.2-3.6, §6, §8 and
 * metrics-and-reporting.md §1-2).
 *
 * Samples.  A metric reads an ordered list of samples (tag, index); that list
 * is also its vote order, and ssf_metric_need is the largest index + 1 per tag
 * in it.  S = ctx->groups when > 0, else ctx->task_groups (11 AIME, 6 others).
 *
 *   metric          protocol NONE (tag 0)          protocol SSFT
 *   pass@k          n = --samples or k; 0..n-1      n = 32 <think1> samples (README Pass@1)
 *   avg@n           n from the name; 0..n-1         n <think1> samples (our choice: the
 *                                                   Pass@1 tag; the reference has no avg@n)
 *   cons@k, maj@k   k samples 0..k-1                round-robin: the j-th sample (j < k) is
 *                                                   tag j%6+1, index j/6 (k=32: 6,6,5,5,5,5)
 *   cons@6:native   error (needs tags)              group s < S = {(t, s) | t = 1..6}, one
 *                                                   vote per group in tag order, mean of S
 *   pass@1:tagK     error (needs tags)              the first S samples of tag K, for every
 *                                                   K including 1 (the runs that produce
 *                                                   other tags have S per tag)
 *
 * Votes (cons@k, native groups).  Classes are equal vote keys (the grader's
 * canonical key, compared as strings).  The largest class wins; a tie goes to
 * the class whose first member comes first in vote order (LightEval's
 * max(answers, key=answers.count)).  A sample with no answer (no_answer, key
 * NULL or "none") never wins over an answer; when no sample has an answer
 * the vote has none and scores 0.  The winner is scored by the verdict of its
 * first member; an ungradable verdict (-1) there scores 0, as in pass@k and
 * avg@n where ungradable samples count as not correct: a grader that cannot
 * decide gives no credit, and it is rare enough not to bias reports.
 *
 * Missing or failed samples.  If any sample the metric reads is not stored,
 * not present or failed, the question's value is -1: a failed generation is
 * not a wrong answer, so the question is left out and counted (never scored
 * 0 and never scored on the remaining samples).
 *
 * Compat SSFT_LIGHTEVAL (the reference implementation, ssft-protocol.md §6):
 *   - cons@k takes the first k samples of the reference sot6 run, which were
 *     stored in tag blocks: the run generated n_ref = max(6S, k) samples split
 *     per tag by divmod(n_ref, 6) (the first n_ref % 6 tags one more), in the
 *     order [t1_0 .. t1_{c1-1}, t2_0 .., ...].  So maj@32 is t1 x11, t2 x11,
 *     t3 x10 for S = 11 and t1..t5 x6, t6 x2 for S = 6 (§3.6, §6.5).
 *   - math votes use structural equality of the extracted lists, which we
 *     approximate by equal vote forms (vote_form.h); nothing extracted (NULL or
 *     "") is one class "[]", which can win like any other, and an empty
 *     completion (empty_text) is another, the reference's "" (§3.7, §6.2).
 *   - letters tasks (GPQA) vote over the raw completion (NULL taken as ""):
 *     completions are practically all distinct, so the first sample wins
 *     (§6.1).  Native groups strip the text first (strip_strings=True) while
 *     cons@k compares it as is (strip_strings=False), as the reference does.
 *   - pass@k, avg@n and pass@1:tagK are unchanged; native Cons@6 keeps its
 *     groups and only votes with the compat keys.
 *   - the block order needs tags, so it applies under the SSFT protocol only;
 *     the compat vote keys apply under either protocol.
 *
 * Aggregation.  Values < 0 (and NaN) are excluded and counted in n_excluded;
 * n_questions is the number included (the N of the mean).  stderr is the
 * sample standard deviation (N-1) / sqrt(N), NaN when N < 2 (unknown, as
 * LightEval's sample SD has it: Markdown shows the value without "± SE",
 * CSV an empty field, JSON null).  The 95% interval
 * is the 2.5th/97.5th percentile (linear interpolation between order
 * statistics) of `resamples` bootstrap means over questions, drawn with
 * splitmix64 seeded with `seed`.  N = 0 gives NaN for value, stderr and
 * interval; resamples = 0 gives a NaN interval.
 */
#include "score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "vote_form.h"

#define SSFT_PASS1_SAMPLES 32 /* README Pass@1: 32 <think1> samples */
#define NATIVE_K 6            /* one sample per tag */
#define MAX_COUNT 100000      /* a sanity bound on k and n in metric names */

static const char *const accepted =
    "expected pass@K, avg@N, cons@K, maj@K, cons@6:native or pass@1:tagK";

/* ---- parsing ------------------------------------------------------------ */

/* Reads a decimal count at *p; 0 when there are no digits, -1 when larger
 * than MAX_COUNT. */
static int read_count(const char **p)
{
    const char *s = *p;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > MAX_COUNT) v = MAX_COUNT + 1; /* keep consuming, no overflow */
        s++;
    }
    if (s == *p) return 0;
    *p = s;
    return v > MAX_COUNT ? -1 : (int)v;
}

static int ssft_groups(const ssf_metric_context *ctx)
{
    return ctx->groups > 0 ? ctx->groups : ctx->task_groups;
}

static int need_groups(ssf_metric *m, const ssf_metric_context *ctx, ssf_error *err)
{
    m->groups = ssft_groups(ctx);
    if (m->groups > 0 && m->groups <= MAX_COUNT) return 0;
    return ssf_fail(
        err, "metric '%s': needs the group count S (set --groups or the task's default)", m->name);
}

static int need_ssft(const ssf_metric *m, const ssf_metric_context *ctx, ssf_error *err)
{
    if (ctx->protocol == SSF_PROTOCOL_SSFT) return 0;
    return ssf_fail(err, "metric '%s': needs the SSFT protocol (tags <think1>..<think6>)", m->name);
}

static int parse_pass_at_k(ssf_metric *m, const ssf_metric_context *ctx, int k, ssf_error *err)
{
    m->kind = SSF_METRIC_PASS_AT_K;
    m->k = k;
    if (ctx->protocol == SSF_PROTOCOL_SSFT) {
        m->n = SSFT_PASS1_SAMPLES;
        if (k > m->n)
            return ssf_fail(err,
                            "metric '%s': k = %d exceeds n = %d (the SSFT protocol's %d "
                            "<think1> samples per question)",
                            m->name, k, m->n, m->n);
        return 0;
    }
    m->n = ctx->samples > 0 ? ctx->samples : k;
    if (k > m->n)
        return ssf_fail(err, "metric '%s': k = %d exceeds n = %d samples per question (--samples)",
                        m->name, k, m->n);
    return 0;
}

static int parse_pass1_tag(ssf_metric *m, const ssf_metric_context *ctx, int k, const char *p,
                           ssf_error *err)
{
    const char *digits = p;
    int tag = read_count(&p);
    if (*p != '\0' || tag == 0) return ssf_fail(err, "metric '%s': %s", m->name, accepted);
    if (*digits == '0')
        return ssf_fail(err, "metric '%s': write the tag %d without leading zeros", m->name, tag);
    if (k != 1) return ssf_fail(err, "metric '%s': only pass@1:tagK is defined per tag", m->name);
    if (tag < 1 || tag > SSF_MAX_TAGS)
        return ssf_fail(err, "metric '%s': the tag K of pass@1:tagK must be 1..%d", m->name,
                        SSF_MAX_TAGS);
    if (need_ssft(m, ctx, err) < 0 || need_groups(m, ctx, err) < 0) return -1;
    m->kind = SSF_METRIC_PASS1_TAG;
    m->k = 1;
    m->tag = tag;
    m->n = m->groups;
    return 0;
}

static int parse_native(ssf_metric *m, const ssf_metric_context *ctx, int k, ssf_error *err)
{
    if (need_ssft(m, ctx, err) < 0) return -1;
    if (k != NATIVE_K)
        return ssf_fail(err,
                        "metric '%s': native Cons@K votes over one sample per tag, so K must "
                        "be %d (cons@6:native)",
                        m->name, NATIVE_K);
    if (need_groups(m, ctx, err) < 0) return -1;
    m->kind = SSF_METRIC_CONS_NATIVE;
    m->k = NATIVE_K;
    m->n = NATIVE_K * m->groups;
    return 0;
}

static int parse_cons(ssf_metric *m, const ssf_metric_context *ctx, int k, ssf_error *err)
{
    m->kind = SSF_METRIC_CONS_AT_K;
    m->k = k;
    m->n = k;
    /* The compat block layout depends on how many samples per tag the
     * reference run had. */
    if (ctx->protocol == SSF_PROTOCOL_SSFT && ctx->compat == SSF_COMPAT_SSFT_LIGHTEVAL)
        return need_groups(m, ctx, err);
    return 0;
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The family of a metric name: 'p' pass, 'a' avg, 'c' cons, 'm' maj, 0 none;
 * *rest is what follows the '@'. */
static int metric_family(const char *text, const char **rest)
{
    static const char *const prefixes[] = {"pass@", "avg@", "cons@", "maj@"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (!starts_with(text, prefixes[i])) continue;
        *rest = text + strlen(prefixes[i]);
        return prefixes[i][0];
    }
    return 0;
}

int ssf_metric_parse(const char *text, const ssf_metric_context *ctx, ssf_metric *out,
                     ssf_error *err)
{
    memset(out, 0, sizeof *out);
    if (!text) return ssf_fail(err, "metric: no name given; %s", accepted);
    if (strlen(text) >= sizeof out->name)
        return ssf_fail(err, "metric '%.40s...': name too long; %s", text, accepted);
    strcpy(out->name, text);

    const char *p = text;
    int family = metric_family(text, &p);
    if (!family) return ssf_fail(err, "metric '%s': %s", text, accepted);

    const char *digits = p;
    int k = read_count(&p);
    if (p == digits) return ssf_fail(err, "metric '%s': %s", text, accepted);
    if (k < 0) return ssf_fail(err, "metric '%s': the count must be 1..%d", text, MAX_COUNT);
    if (k == 0) return ssf_fail(err, "metric '%s': the count must be at least 1", text);
    if (*digits == '0') /* pass@01 would be a second name for pass@1 */
        return ssf_fail(err, "metric '%s': write the count %d without leading zeros", text, k);

    if (*p == '\0') {
        if (family == 'p') return parse_pass_at_k(out, ctx, k, err);
        if (family == 'c' || family == 'm') return parse_cons(out, ctx, k, err);
        out->kind = SSF_METRIC_AVG_AT_N;
        out->k = 1;
        out->n = k;
        return 0;
    }
    if (family == 'p' && starts_with(p, ":tag")) return parse_pass1_tag(out, ctx, k, p + 4, err);
    if (family == 'c' && strcmp(p, ":native") == 0) return parse_native(out, ctx, k, err);
    return ssf_fail(err, "metric '%s': %s", text, accepted);
}

int ssf_metric_default_samples(const char *const *names, size_t n, const ssf_metric_context *ctx)
{
    if (ctx->protocol == SSF_PROTOCOL_SSFT || ctx->samples > 0) return 0;
    int most = 0;
    for (size_t i = 0; i < n; i++) {
        ssf_metric m;
        ssf_error ignored;
        if (!names[i] || ssf_metric_parse(names[i], ctx, &m, &ignored)) continue;
        int draws = m.kind == SSF_METRIC_AVG_AT_N    ? m.n
                    : m.kind == SSF_METRIC_CONS_AT_K ? m.k
                    : m.kind == SSF_METRIC_PASS_AT_K ? m.n
                                                     : 0;
        if (draws > most) most = draws;
    }
    return most;
}

int ssf_metric_name_valid(const char *text, int task_groups, ssf_error *err)
{
    ssf_metric_context untagged = {.protocol = SSF_PROTOCOL_NONE, .task_groups = task_groups};
    ssf_metric_context ssft = {.protocol = SSF_PROTOCOL_SSFT, .task_groups = task_groups};
    ssf_metric m;
    ssf_error ignored;
    if (ssf_metric_parse(text, &untagged, &m, &ignored) == 0) return 0;
    return ssf_metric_parse(text, &ssft, &m, err);
}

int ssf_metric_needs_tags(const char *text, const ssf_metric_context *ctx)
{
    ssf_metric_context untagged = *ctx, ssft = *ctx;
    untagged.protocol = SSF_PROTOCOL_NONE;
    untagged.samples = 0;
    ssft.protocol = SSF_PROTOCOL_SSFT;
    ssf_metric m;
    ssf_error ignored;
    return ssf_metric_parse(text, &untagged, &m, &ignored) != 0 &&
           ssf_metric_parse(text, &ssft, &m, &ignored) == 0;
}

/* ---- sample layout ------------------------------------------------------ */

static int is_compat(const ssf_metric_context *ctx)
{
    return ctx->compat == SSF_COMPAT_SSFT_LIGHTEVAL;
}

/* How many samples the metric reads per question. */
static int sample_count(const ssf_metric *m)
{
    switch (m->kind) {
    case SSF_METRIC_CONS_AT_K:
        return m->k;
    case SSF_METRIC_CONS_NATIVE:
        return NATIVE_K * m->groups;
    default:
        return m->n;
    }
}

/* The j-th sample of the reference sot6 run's block order: n_ref =
 * max(6S, k) split over the tags by divmod, stored tag after tag. */
static void block_position(int j, int k, int groups, int *tag, int *index)
{
    int n_ref = k > SSF_MAX_TAGS * groups ? k : SSF_MAX_TAGS * groups;
    for (int t = 1; t <= SSF_MAX_TAGS; t++) {
        int per_tag = n_ref / SSF_MAX_TAGS + (t - 1 < n_ref % SSF_MAX_TAGS);
        if (j < per_tag || t == SSF_MAX_TAGS) {
            *tag = t;
            *index = j;
            return;
        }
        j -= per_tag;
    }
}

/* The j-th sample the metric reads, in vote order (native: group after
 * group, tags 1..6 inside a group). */
static void sample_at(const ssf_metric *m, const ssf_metric_context *ctx, int j, int *tag,
                      int *index)
{
    int ssft = ctx->protocol == SSF_PROTOCOL_SSFT;
    *tag = ssft ? 1 : 0;
    *index = j;
    switch (m->kind) {
    case SSF_METRIC_PASS1_TAG:
        *tag = m->tag;
        break;
    case SSF_METRIC_CONS_NATIVE:
        *tag = j % NATIVE_K + 1;
        *index = j / NATIVE_K;
        break;
    case SSF_METRIC_CONS_AT_K:
        if (ssft && is_compat(ctx)) {
            block_position(j, m->k, m->groups, tag, index);
        } else if (ssft) {
            *tag = j % SSF_MAX_TAGS + 1;
            *index = j / SSF_MAX_TAGS;
        }
        break;
    default:
        break;
    }
}

void ssf_metric_need(const ssf_metric *m, const ssf_metric_context *ctx, int need[SSF_MAX_TAGS + 1])
{
    for (int t = 0; t <= SSF_MAX_TAGS; t++)
        need[t] = 0;
    int count = sample_count(m);
    for (int j = 0; j < count; j++) {
        int tag, index;
        sample_at(m, ctx, j, &tag, &index);
        if (tag >= 0 && tag <= SSF_MAX_TAGS && index + 1 > need[tag]) need[tag] = index + 1;
    }
}

/* ---- votes -------------------------------------------------------------- */

typedef enum vote_mode {
    VOTE_KEY,       /* the grader's canonical key; no answer abstains */
    VOTE_EXTRACTED, /* compat math: the vote form, nothing extracted = "[]" */
    VOTE_RAW,       /* compat letters, cons@k: the completion as is */
    VOTE_RAW_STRIP, /* compat letters, native: the stripped completion */
} vote_mode;

/* A voter's class: equal when the flags match and the bytes are equal. */
typedef struct vote_class {
    const char *s;
    size_t len;
    char *form;  /* compat math: s is this vote form, owned */
    int empty;   /* compat "[]": nothing extracted */
    int blank;   /* compat "": an empty completion, which the reference never parsed */
    int abstain; /* no answer: never wins over an answer */
} vote_class;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* s[0..*len) without its leading and trailing white space. */
static const char *trimmed(const char *s, size_t *len)
{
    while (*len && is_space(*s))
        s++, --*len;
    while (*len && is_space(s[*len - 1]))
        --*len;
    return s;
}

/* The reference parsed what it extracted, so "\boxed{5}" (the LaTeX match
 * of "final answer is: $\boxed{5}$") was the 5 a gold of "5" gives; the
 * extracted text stands in for that value only without its wrappers:
 * spaces, $ delimiters and a \boxed{} or \fbox{} around the whole. */
static const char *unwrapped(const char *s, size_t *len)
{
    for (;;) {
        s = trimmed(s, len);
        size_t start, end;
        if (*len >= 2 && s[0] == '$' && s[*len - 1] == '$') {
            s++, *len -= 2;
        } else if (ssf_whole_box(s, *len, &start, &end)) {
            s += start, *len = end - start;
        } else {
            return s;
        }
    }
}

/* The vote form (vote_form.h) of an extracted answer, unwrapped first. */
static char *form_of(const char *extracted)
{
    size_t len = strlen(extracted);
    const char *s = unwrapped(extracted, &len);
    return ssf_vote_form(s, len);
}

static vote_class class_of(const ssf_outcome *o, vote_mode mode)
{
    vote_class c = {"", 0, NULL, 0, 0, 0};
    if (mode == VOTE_KEY) {
        c.abstain = o->no_answer || !o->key || strcmp(o->key, "none") == 0;
        if (!c.abstain) c.s = o->key;
    } else if (mode == VOTE_EXTRACTED) {
        c.blank = o->empty_text;
        c.empty = !c.blank && (!o->extracted || !*o->extracted);
        if (!c.empty && !c.blank) c.s = o->extracted;
    } else if (o->raw_text) {
        c.s = o->raw_text;
    }
    if (mode == VOTE_EXTRACTED && *c.s) c.s = c.form = form_of(c.s);
    c.len = strlen(c.s);
    if (mode == VOTE_RAW_STRIP) c.s = trimmed(c.s, &c.len);
    return c;
}

static int same_class(const vote_class *a, const vote_class *b)
{
    return a->abstain == b->abstain && a->empty == b->empty && a->blank == b->blank &&
           a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

/* One majority vote over n samples in vote order; the winner's index, or
 * -1 when every sample abstained. */
static int vote_winner(const ssf_outcome *const *os, int n, vote_mode mode)
{
    vote_class *cls = ssf_xcalloc((size_t)n, sizeof *cls);
    for (int i = 0; i < n; i++)
        cls[i] = class_of(os[i], mode);
    int best = -1, best_count = 0;
    for (int i = 0; i < n; i++) {
        if (cls[i].abstain) continue;
        int first = 1, count = 0;
        for (int j = 0; j < n && first; j++) {
            if (!same_class(&cls[i], &cls[j])) continue;
            if (j < i) first = 0; /* counted with its first member */
            count++;
        }
        /* Strictly greater: a tie keeps the class that appeared first. */
        if (first && count > best_count) best = i, best_count = count;
    }
    for (int i = 0; i < n; i++)
        free(cls[i].form);
    free(cls);
    return best;
}

/* The score of the winner: its verdict. */
static double vote(const ssf_outcome *const *os, int n, vote_mode mode)
{
    int best = vote_winner(os, n, mode);
    return best >= 0 && os[best]->verdict == 1 ? 1.0 : 0.0;
}

/* The reference's maj@k (MajAtK) scored the voted answer with `gold == pred`:
 * equality of the extracted lists, not equivalence, so an equivalent answer
 * written differently scores 0.  Vote forms stand in for the lists. */
static double vote_by_gold_text(const ssf_outcome *const *os, int n)
{
    int best = vote_winner(os, n, VOTE_EXTRACTED);
    if (best < 0) return 0.0;
    const char *pred = os[best]->extracted, *gold = os[best]->gold_extracted;
    if (!pred || !gold || !*pred) return 0.0;
    char *p = form_of(pred), *g = form_of(gold);
    int same = strcmp(p, g) == 0;
    free(p);
    free(g);
    return same ? 1.0 : 0.0;
}

static vote_mode mode_for(const ssf_metric_context *ctx, int letters_task, int native)
{
    if (!is_compat(ctx)) return VOTE_KEY;
    if (!letters_task) return VOTE_EXTRACTED;
    return native ? VOTE_RAW_STRIP : VOTE_RAW;
}

int ssf_metric_votes_on_text(const ssf_metric_context *ctx, int letters_task)
{
    vote_mode plain = mode_for(ctx, letters_task, 0), native = mode_for(ctx, letters_task, 1);
    return plain == VOTE_RAW || plain == VOTE_RAW_STRIP || native == VOTE_RAW ||
           native == VOTE_RAW_STRIP;
}

/* ---- per-question values ------------------------------------------------ */

double ssf_pass_at_k(int n, int c, int k)
{
    if (n < 1 || k < 1 || k > n || c < 0 || c > n) return NAN;
    if (n - c < k) return 1.0;
    /* C(n-c, k) / C(n, k) as a product of factors in (0, 1]: no overflow. */
    double fail = 1.0;
    for (int m = n - c + 1; m <= n; m++)
        fail *= 1.0 - (double)k / m;
    return 1.0 - fail;
}

static int correct_count(const ssf_outcome *const *os, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += os[i]->verdict == 1;
    return c;
}

static double native_value(const ssf_metric *m, const ssf_metric_context *ctx, int letters_task,
                           const ssf_outcome *const *os)
{
    vote_mode mode = mode_for(ctx, letters_task, 1);
    double sum = 0;
    for (int s = 0; s < m->groups; s++)
        sum += vote(os + NATIVE_K * (size_t)s, NATIVE_K, mode);
    return sum / m->groups;
}

double ssf_metric_question(const ssf_metric *m, const ssf_metric_context *ctx, int letters_task,
                           ssf_outcome_fn get, void *ud)
{
    int count = sample_count(m);
    if (count < 1) return -1;
    const ssf_outcome **os = ssf_xcalloc((size_t)count, sizeof *os);
    for (int j = 0; j < count; j++) {
        int tag, index;
        sample_at(m, ctx, j, &tag, &index);
        os[j] = get(tag, index, ud);
        if (!os[j] || !os[j]->present || os[j]->failed) {
            free(os);
            return -1;
        }
    }
    double v;
    switch (m->kind) {
    case SSF_METRIC_PASS_AT_K:
        v = ssf_pass_at_k(m->n, correct_count(os, count), m->k);
        break;
    case SSF_METRIC_CONS_AT_K:
        v = mode_for(ctx, letters_task, 0) == VOTE_EXTRACTED
                ? vote_by_gold_text(os, count)
                : vote(os, count, mode_for(ctx, letters_task, 0));
        break;
    case SSF_METRIC_CONS_NATIVE:
        v = native_value(m, ctx, letters_task, os);
        break;
    default: /* avg@n, pass@1:tagK */
        v = (double)correct_count(os, count) / count;
        break;
    }
    free(os);
    return v;
}

/* ---- aggregation -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static size_t draw_below(uint64_t *state, size_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = splitmix64(state);
    while (x >= limit)
        x = splitmix64(state);
    return (size_t)(x % n);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-quantile of sorted v[0..n) with linear interpolation. */
static double quantile(const double *v, size_t n, double p)
{
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n) return v[n - 1];
    return v[lo] + (pos - (double)lo) * (v[lo + 1] - v[lo]);
}

static void bootstrap(const double *x, size_t n, unsigned resamples, uint64_t seed,
                      ssf_aggregate *out)
{
    double *means = ssf_xmalloc(resamples * sizeof *means);
    uint64_t state = seed;
    for (unsigned r = 0; r < resamples; r++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += x[draw_below(&state, n)];
        means[r] = sum / (double)n;
    }
    qsort(means, resamples, sizeof *means, cmp_double);
    out->ci_lo = quantile(means, resamples, 0.025);
    out->ci_hi = quantile(means, resamples, 0.975);
    free(means);
}

void ssf_aggregate_values(const double *values, size_t n, unsigned resamples, uint64_t seed,
                          ssf_aggregate *out)
{
    double *x = ssf_xmalloc(n * sizeof *x);
    size_t used = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(values[i] >= 0)) continue; /* negative or NaN: excluded */
        x[used++] = values[i];
        sum += values[i];
    }
    out->n_questions = used;
    out->n_excluded = n - used;
    out->value = out->stderr_ = out->ci_lo = out->ci_hi = NAN;
    if (used > 0) {
        out->value = sum / (double)used;
        double ss = 0;
        for (size_t i = 0; i < used; i++)
            ss += (x[i] - out->value) * (x[i] - out->value);
        /* one question has no spread to measure: unknown, not zero */
        out->stderr_ = used < 2 ? NAN : sqrt(ss / (double)(used - 1)) / sqrt((double)used);
        if (resamples > 0) bootstrap(x, used, resamples, seed, out);
    }
    free(x);
}
