/*
 * equiv.h - deciding whether two answer trees are mathematically equal.
 *
 * Exact where it can be (FLINT fmpq rationals), rigorous elsewhere (Arb
 * balls): free symbols are replaced by the same random points on both sides;
 * balls that are disjoint at some point prove "different", balls that
 * overlap tightly at every point are taken as "equal".  Anything over the
 * budget is "unknown", never a guess.
 */
#ifndef SSFTEVAL_METRICS_EQUIV_H
#define SSFTEVAL_METRICS_EQUIV_H

#include "expr.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_verdict {
    SSF_UNKNOWN = -1, /* could not decide (budget, unsupported construct) */
    SSF_DIFFERENT = 0,
    SSF_EQUAL = 1,
} ssf_verdict;

typedef enum ssf_percent_policy {
    SSF_PERCENT_VALUE,  /* 28% == 0.28, 28% != 28 (Math-Verify, LightEval) */
    SSF_PERCENT_EITHER, /* 28% == 0.28 and 28% == 28 (Hendrycks, Qwen) */
} ssf_percent_policy;

typedef struct ssf_equiv_options {
    /* When one side is a decimal literal, both are rounded to this many
     * decimal places before comparing (the reference rule); -1 disables. */
    int float_rounding;
    ssf_percent_policy percent;
    /* Gold-driven assignment unwrapping (x=11 vs 11) and relation->set
     * conversion (a<x<b vs (a,b)), as the reference graders do. */
    int unwrap_assignments;
    /* Sets: every gold element must be matched (no subset passes). */
    int strict_sets;
    /* LightEval 0.10 as the SSFT reference ran it: a decimal literal that is
     * not structurally equal to the other side is different (its rounding
     * got a Doc object for the precision, raised, and counted as False). */
    int decimals_fail;
    /* A row or column matrix equals the tuple of its entries, as a reader
     * takes a vector written (-7, 16, 5); off in the lighteval profiles,
     * where latex2sympy's Matrix against a Tuple compares as a one-element
     * set against three and differs. */
    int vectors_as_tuples;
    /* Ball precision in bits and number of random points for free symbols. */
    long prec_bits;
    int points;
    uint64_t seed;
    /* Work limit: evaluation steps across the whole comparison. */
    size_t max_steps;
} ssf_equiv_options;

/* float_rounding 6, percent VALUE, unwrap_assignments 1, strict_sets 1,
 * vectors_as_tuples 1, prec_bits 256, points 4, seed fixed, max_steps 1e6. */
void ssf_equiv_options_default(ssf_equiv_options *o);

/* Frees the calling thread's FLINT and Arb caches (some 170 kB a thread that
 * compared).  Call it in each thread that graded or compared before that
 * thread ends: the library cannot tell when a thread of yours ends. */
void ssf_equiv_thread_done(void);

/* Compares gold with pred (the order matters for the asymmetric rules).
 * reason, when not NULL, gets one line saying why ("equal as rationals",
 * "differ at x=0.73: 1.5 vs 1.25", "over budget: ..."). Thread-safe. */
ssf_verdict ssf_equiv(const ssf_node *gold, const ssf_node *pred, const ssf_equiv_options *o,
                      ssf_error *reason);

/* A key that equal answers share where it can be computed cheaply: the exact
 * rational for constant rational values ("q:3/4"), a numeric fingerprint for
 * other constants, else the tree's text form.  Voting groups by ssf_equiv;
 * the key is its fast path and what reports show.  malloc'd. */
char *ssf_canonical_key(const ssf_node *n, const ssf_equiv_options *o);

#ifdef __cplusplus
}
#endif
#endif
