/*
 * bench-args.h - the benches' numeric arguments: the whole argument as a
 * number in range, or one line naming it on stderr and exit status 2, where
 * atoi() would have read "8k" as 8 and "x" as 0.
 */
#ifndef SSFTEVAL_BENCH_ARGS_H
#define SSFTEVAL_BENCH_ARGS_H

#include "ssfteval/util.h"

#include <stdio.h>
#include <stdlib.h>

static inline long bench_long_arg(const char *what, const char *arg, long lo, long hi)
{
    long v;
    if (ssf_parse_long(arg, lo, hi, &v) == 0) return v;
    fprintf(stderr, "%s: '%s' is not an integer in %ld..%ld\n", what, arg, lo, hi);
    exit(2);
}

static inline double bench_double_arg(const char *what, const char *arg, double lo, double hi)
{
    double v;
    if (ssf_parse_double(arg, lo, hi, &v) == 0) return v;
    fprintf(stderr, "%s: '%s' is not a number in [%g, %g]\n", what, arg, lo, hi);
    exit(2);
}

#endif
