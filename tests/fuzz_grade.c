/*
 * fuzz_grade.c - libFuzzer target for extraction, parsing and comparison.
 *
 * The input is split at its first newline into a gold and a prediction,
 * which go through both grading profiles; the whole input is also parsed as
 * one answer.  Any crash, sanitizer report, leak or hang is a bug: the
 * grader promises an answer (possibly "ungradable") for every input.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   build-fuzz/tests/fuzz_grade -max_total_time=60 tests/fuzz-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssf_grader *graders[SSF_N_PROFILES];

static void grade_both(const char *gold, const char *pred, int targets)
{
    for (int p = 0; p < SSF_N_PROFILES; p++) {
        ssf_grade_request req = {.gold = gold, .pred = pred, .targets = targets, .precision = -1};
        ssf_grade_result res;
        ssf_grade(graders[p], &req, &res);
        ssf_grade_result_clear(&res);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssf_error err;
    if (!graders[0]) {
        graders[0] = ssf_grader_new(SSF_PROFILE_DEFAULT, &err);
        graders[1] = ssf_grader_new(SSF_PROFILE_LIGHTEVAL, &err);
        graders[2] = ssf_grader_new(SSF_PROFILE_SSFT_LIGHTEVAL, &err);
        if (!graders[0] || !graders[1] || !graders[2]) abort();
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    ssf_arena *a = ssf_arena_new(200000);
    ssf_parse_options o;
    ssf_parse_options_default(&o);
    ssf_node *n = ssf_parse_answer(a, text, size, &o, &err);
    if (n) free(ssf_node_sexpr(n));
    ssf_arena_free(a);

    char *newline = strchr(text, '\n');
    const char *pred = "";
    if (newline) {
        *newline = '\0';
        pred = newline + 1;
    }
    grade_both(text, pred, 0);
    grade_both(text, pred, SSF_TARGET_LETTERS);
    free(text);
    return 0;
}
