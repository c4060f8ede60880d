/*
 * extract.h - finding the answer in a model's completion.
 *
 * The LightEval / Math-Verify cascade: patterns grouped by priority (lower
 * first), inside a group every match of every pattern sorted rightmost
 * first (end descending, then start ascending), and the first match whose
 * text parses wins.  The raw text of the first match tried is kept as the
 * fallback.  Patterns are compiled once per extractor with PCRE2 (JIT where
 * available) and an extractor is shared freely between threads.
 */
#ifndef SSFTEVAL_METRICS_EXTRACT_H
#define SSFTEVAL_METRICS_EXTRACT_H

#include "expr.h"
#include "parse.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    SSF_TARGET_LATEX = 1,   /* $...$, \[...\], \boxed{...}, ... */
    SSF_TARGET_EXPR = 2,    /* plain numbers and arithmetic */
    SSF_TARGET_LETTERS = 4, /* A, B, C, ... (multiple choice) */
};

typedef struct ssf_extract_config {
    int targets;           /* SSF_TARGET_* bits */
    int boxed_priority;    /* 55 LightEval, 50 Math-Verify; -1: no boxed patterns */
    int lighteval_numbers; /* LightEval's thousands-group regex (no (?<!\d), leading-zero groups) */
    int n_letters;         /* letters targets: A .. 'A'+n_letters-1 (default 4) */
    int boxed_letters;     /* also read \boxed{C} / \boxed{\text{(C)}} for letters */
    int bare_letters;      /* LightEval's last resort: a capital A-D anywhere, even in a word */
    int box_is_final;      /* a last box that does not parse hides its inside from later groups */
    int plain_text;        /* also read plain-text answers after an anchor ("answer is pi/2") */
    int no_jit;            /* PCRE2's interpreter alone, as where JIT is refused (for tests) */
    ssf_parse_options parse;
} ssf_extract_config;

typedef struct ssf_extractor ssf_extractor;

ssf_extractor *ssf_extractor_new(const ssf_extract_config *cfg, ssf_error *err);
void ssf_extractor_free(ssf_extractor *x);
/* Whether every pattern runs as JIT code (else PCRE2's interpreter). */
int ssf_extractor_has_jit(const ssf_extractor *x);

typedef struct ssf_extraction {
    ssf_node *value;  /* the parsed answer (arena-owned), NULL if nothing parsed */
    char *answer;     /* the text that parsed (malloc'd), NULL if none */
    char *fallback;   /* the raw text of the first match tried (malloc'd), NULL if no match */
    int priority;     /* the priority group that produced value, -1 if none */
    const char *kind; /* "latex", "boxed", "expr", "letters" or "plain" (static) */
    int over_budget;  /* a candidate hit the parse budget */
} ssf_extraction;

/* Extracts from text[0..len).  Never fails: "nothing found" is value NULL. */
void ssf_extract(const ssf_extractor *x, const char *text, size_t len, ssf_arena *arena,
                 ssf_extraction *out);
void ssf_extraction_clear(ssf_extraction *e);

/* The content of boxes: "last" keeps the last \boxed{}/\fbox{} and earlier
 * boxes that sit next to it (joined by "and", "or", ",", ";"), deduplicated,
 * joined with ","; an unterminated box takes the rest of the text.  NULL if
 * there is no box.  malloc'd. */
char *ssf_boxed_content(const char *s, size_t len);
/* Whether s[0..len) is exactly one braced box, \boxed{...} or \fbox{...},
 * closed by its last byte; its inside is then s[*body_start..*body_end). */
int ssf_whole_box(const char *s, size_t len, size_t *body_start, size_t *body_end);

#ifdef __cplusplus
}
#endif
#endif
