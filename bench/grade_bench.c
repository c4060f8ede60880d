/*
 * grade_bench.c - grading throughput in process: reads a pairs file into
 * memory, then times ssf_grade alone over it (REPEAT times), so the number
 * compares with Math-Verify's in-memory loop in bench/grade_mathverify.py.
 * Writes one verdict per line (true/false/null) for the agreement check.
 *
 * usage: grade_bench PAIRS.jsonl VERDICTS.txt [REPEAT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench-args.h"
#include "grade.h"
#include "ssfteval/records.h"

typedef struct pairs {
    char **gold, **pred;
    size_t n, cap;
} pairs;

static int keep(json_t *rec, size_t number, size_t line, void *ud)
{
    (void)number;
    (void)line;
    pairs *p = ud;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->gold = ssf_xrealloc(p->gold, p->cap * sizeof *p->gold);
        p->pred = ssf_xrealloc(p->pred, p->cap * sizeof *p->pred);
    }
    p->gold[p->n] = ssf_xstrdup(json_string_value(json_object_get(rec, "gold")));
    p->pred[p->n] = ssf_xstrdup(json_string_value(json_object_get(rec, "pred")));
    p->n++;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: grade_bench PAIRS.jsonl VERDICTS.txt [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 3 ? (int)bench_long_arg("grade_bench REPEAT", argv[3], 1, 1000000) : 10;
    pairs p = {0};
    ssf_error err;
    if (ssf_records_read_file(argv[1], SSF_FORMAT_JSONL, keep, &p, &err)) {
        fprintf(stderr, "grade_bench: %s\n", err.msg);
        return 1;
    }
    ssf_grader *g = ssf_grader_new(SSF_PROFILE_DEFAULT, &err);
    if (!g) {
        fprintf(stderr, "grade_bench: %s\n", err.msg);
        return 1;
    }
    FILE *out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    double start = ssf_monotonic_seconds();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < p.n; i++) {
            ssf_grade_request req = {.gold = p.gold[i], .pred = p.pred[i], .precision = -1};
            ssf_grade_result res;
            ssf_grade(g, &req, &res);
            if (r == 0)
                fputs(res.verdict == SSF_GRADE_RIGHT   ? "true\n"
                      : res.verdict == SSF_GRADE_WRONG ? "false\n"
                                                       : "null\n",
                      out);
            ssf_grade_result_clear(&res);
        }
    }
    double elapsed = ssf_monotonic_seconds() - start;
    fclose(out);
    printf("%.6f %zu\n", elapsed / repeat, p.n);
    for (size_t i = 0; i < p.n; i++) {
        free(p.gold[i]);
        free(p.pred[i]);
    }
    free(p.gold);
    free(p.pred);
    ssf_grader_free(g);
    return 0;
}
