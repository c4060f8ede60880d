/*
 * vote_form.h - the form in which the SSFT reference's votes told answers
 * apart, for the compat metrics (score.c).
 *
 * The reference voted over what it extracted, compared as sympy values with
 * Python's `==`: structural equality, not mathematical equivalence.  Its
 * extraction had normalized the LaTeX first (\dfrac and \tfrac to \frac,
 * \left, \right and spacing dropped, "0.5" made \frac{1}{2}), and parsing
 * evaluated rational numbers: 025 is 25, and \frac{28}{6}, 14/3 and
 * 4\frac{2}{3} are all Rational(14, 3), while 0.50 is a Float, apart from
 * 1/2.  The form approximates those classes without sympy: a rational
 * number written without a decimal point is its reduced value, anything
 * else its text so normalized (so x+1 and x + 1 are one class, 1+x
 * another, as sympy's unevaluated trees would mostly have them).
 */
#ifndef SSFTEVAL_METRICS_VOTE_FORM_H
#define SSFTEVAL_METRICS_VOTE_FORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The vote form of the answer text s[0..len), already unwrapped of $ and
 * \boxed{}: "q:14/3", "q:-25", or the normalized text.  Free it. */
char *ssf_vote_form(const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
