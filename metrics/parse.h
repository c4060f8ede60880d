/*
 * parse.h - LaTeX and plain-text answers into expression trees.
 *
 * The input is one extracted answer: the content of a \boxed{}, of a $...$
 * environment, or a plain-text span such as "pi/2" or "7,425,000".  The
 * parser normalizes as it goes (\left/\right, \dfrac, \text{} units,
 * ^\circ, currency, digit grouping, ...) and builds the tree in the arena.
 */
#ifndef SSFTEVAL_METRICS_PARSE_H
#define SSFTEVAL_METRICS_PARSE_H

#include "expr.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_parse_options {
    /* Strip a trailing unit word or \text{...} suffix ("15 cm", "125\text{ miles"}). */
    int strip_units;
    /* Keep only what follows the last '=' when there is no ',' or ';' (LightEval's
     * `equations` normalization); off in the default profile, which keeps the
     * relation and lets the comparison unwrap assignments. */
    int equations;
    /* Symbols' names in lower case, as latex2sympy reads them: R and r are one
     * symbol (LightEval; off in the default profile, where they are two). */
    int fold_case;
    /* n!! as (n!)!, as latex2sympy reads it (LightEval); off in the default
     * profile, where n!! is the double factorial n(n-2)(n-4)... */
    int nested_factorials;
    /* An answer that is exactly "0.5" or ".5" read as \frac{1}{2}, no decimal
     * (LightEval's `nits`); off in the default profile. */
    int nits;
    /* Maximum nesting depth of braces/parentheses before giving up. */
    int max_depth;
} ssf_parse_options;

/* Defaults: strip_units 1, equations 0, fold_case 0, nested_factorials 0,
 * nits 0, max_depth 200. */
void ssf_parse_options_default(ssf_parse_options *o);

/* Parses text[0..len).  Returns the tree, or NULL with a one-line reason in
 * err ("cannot parse '...': unexpected '}' at 7", "over budget: ..."). */
ssf_node *ssf_parse_answer(ssf_arena *a, const char *text, size_t len, const ssf_parse_options *o,
                           ssf_error *err);

#ifdef __cplusplus
}
#endif
#endif
