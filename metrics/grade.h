/*
 * grade.h - the grader: gold + prediction -> verdict, extracted answers,
 * reason, and a key for voting.
 *
 * Two profiles:
 *   default    the strictest correct behaviour: Math-Verify 0.8 extraction
 *              (boxed priority 50), reasoning traces stripped, exact
 *              comparisons (no 1/2004! == 1/2006!), strict multi-answer sets.
 *   lighteval  LightEval 0.10 as the SSFT paper ran it: boxed priority 55,
 *              the `equations` normalization, LightEval's number regex, the
 *              whole completion graded, an unextractable gold compared as
 *              its raw string, any (gold, pred) pair matching.
 * docs/GRADING.md lists the differences row by row.
 *
 * A grader is built once and used from any number of threads; each thread
 * calls ssf_equiv_thread_done() (equiv.h) before it ends.
 */
#ifndef SSFTEVAL_METRICS_GRADE_H
#define SSFTEVAL_METRICS_GRADE_H

#include "equiv.h"
#include "extract.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ssf_profile {
    SSF_PROFILE_DEFAULT,
    SSF_PROFILE_LIGHTEVAL,
    /* lighteval as the SSFT reference's PassAtK/MajNPassAtK called it:
     * compare_gold_target(pred, gold, precision=Doc), i.e. the roles swapped
     * (assignment unwrapping and relation->set run the other way) and every
     * decimal comparison that needs rounding false.  `--compat ssft-lighteval`
     * grades with it. */
    SSF_PROFILE_SSFT_LIGHTEVAL,
} ssf_profile;

#define SSF_N_PROFILES 3

int ssf_profile_from_name(const char *name); /* -1 if unknown */
const char *ssf_profile_name(ssf_profile p);

typedef struct ssf_grader ssf_grader;

ssf_grader *ssf_grader_new(ssf_profile profile, ssf_error *err);
void ssf_grader_free(ssf_grader *g);

typedef struct ssf_grade_request {
    const char *gold;
    const char *pred;
    int targets;        /* SSF_TARGET_* bits; 0 = latex|expr */
    int n_letters;      /* letters targets: number of choices (0 = 4) */
    int precision;      /* decimal places for the rounding rule; -1 = 6 (0 is zero places) */
    int cut_by_length;  /* the prediction ended at the token limit */
    int pred_is_answer; /* pred is a bare answer (as golds are), not a completion */
    /* gold is a task's answer: what its solution's last \boxed{} held.  LightEval
     * read the solution, so the lighteval profiles read this as \boxed{gold}:
     * through the bare cascade "3\sqrt{13}" would be 3. */
    int gold_is_answer;
} ssf_grade_request;

typedef enum ssf_grade_verdict {
    SSF_GRADE_UNGRADABLE = -1, /* over budget or an internal limit: neither right nor wrong */
    SSF_GRADE_WRONG = 0,
    SSF_GRADE_RIGHT = 1,
} ssf_grade_verdict;

typedef struct ssf_grade_result {
    ssf_grade_verdict verdict;
    int no_answer;        /* nothing was extracted from the prediction */
    char *gold_extracted; /* the answers as text (malloc'd; NULL if none) */
    char *pred_extracted;
    char *pred_key; /* voting key of the prediction ("none" when no answer) */
    char reason[512];
} ssf_grade_result;

void ssf_grade(const ssf_grader *g, const ssf_grade_request *req, ssf_grade_result *out);
void ssf_grade_result_clear(ssf_grade_result *r);

/* The part of a completion that holds the answer: after the last
 * "<|im_start|>answer" or "</think>"; empty when a <think> never closed.
 * Returns a pointer into text and sets *len. */
const char *ssf_answer_part(const char *text, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
