/*
 * tokenize_bench.c - tokenizer throughput in process: reads MATH-500's
 * problems and solutions into memory, loads the tokenizer, then times
 * ssf_tokenizer_encode over all texts REPEAT times on one thread.  The first
 * pass starts with an empty word cache; the best pass is the warm figure.
 * Prints "FIRST_S BEST_S TOKENS TEXTS BYTES LOAD_S" for bench/tokenize, where
 * bench/tokenize_hf.py times the `tokenizers` package the same way.
 *
 * usage: tokenize_bench MATH500.jsonl TOKENIZER [REPEAT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench-args.h"
#include "ssfteval/records.h"
#include "ssfteval/tokenizer.h"

typedef struct texts {
    char **s;
    size_t n, cap, bytes;
} texts;

static void add(texts *t, const char *s)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->s = ssf_xrealloc(t->s, t->cap * sizeof *t->s);
    }
    t->s[t->n++] = ssf_xstrdup(s ? s : "");
    t->bytes += s ? strlen(s) : 0;
}

static int keep(json_t *rec, size_t number, size_t line, void *ud)
{
    (void)number;
    (void)line;
    add(ud, json_string_value(json_object_get(rec, "problem")));
    add(ud, json_string_value(json_object_get(rec, "solution")));
    return 0;
}

/* One pass over every text; returns the token count. */
static size_t pass(ssf_tokenizer *tok, const texts *t)
{
    size_t tokens = 0;
    for (size_t i = 0; i < t->n; i++) {
        int32_t *ids;
        size_t n;
        ssf_error err;
        if (ssf_tokenizer_encode(tok, t->s[i], strlen(t->s[i]), &ids, &n, &err)) {
            fprintf(stderr, "tokenize_bench: %s\n", err.msg);
            exit(1);
        }
        tokens += n;
        free(ids);
    }
    return tokens;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tokenize_bench MATH500.jsonl TOKENIZER [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 3 ? (int)bench_long_arg("tokenize_bench REPEAT", argv[3], 1, 1000000) : 10;
    texts t = {0};
    ssf_error err;
    if (ssf_records_read_file(argv[1], SSF_FORMAT_JSONL, keep, &t, &err)) {
        fprintf(stderr, "tokenize_bench: %s\n", err.msg);
        return 1;
    }
    double start = ssf_monotonic_seconds();
    ssf_tokenizer *tok;
    if (ssf_tokenizer_load(argv[2], &tok, &err)) {
        fprintf(stderr, "tokenize_bench: %s\n", err.msg);
        return 1;
    }
    double load_s = ssf_monotonic_seconds() - start, first = 0, best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < (repeat < 1 ? 1 : repeat); r++) {
        start = ssf_monotonic_seconds();
        tokens = pass(tok, &t);
        double s = ssf_monotonic_seconds() - start;
        if (r == 0) first = s;
        if (s < best) best = s;
    }
    printf("%.6f %.6f %zu %zu %zu %.3f\n", first, best, tokens, t.n, t.bytes, load_s);
    for (size_t i = 0; i < t.n; i++)
        free(t.s[i]);
    free(t.s);
    ssf_tokenizer_free(tok);
    return 0;
}
