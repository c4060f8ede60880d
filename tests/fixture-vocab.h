/*
 * fixture-vocab.h - how many of an engine fixture's ids a sample may take:
 * "tokenizer_ids" in its expected.json (the ids past it are the embedding's
 * padding rows).  A plain scan, not a JSON library, because
 * tests/test_engine_cuda.c and bench/gpu_check.c build on the GPU machine,
 * which lacks jansson.
 */
#ifndef SSFTEVAL_FIXTURE_VOCAB_H
#define SSFTEVAL_FIXTURE_VOCAB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssfteval/util.h"

/* The fixture in dir's valid ids: its "tokenizer_ids" when that lies in
 * 1..vocab, vocab when expected.json or the key is absent or out of range,
 * -1 when the key's value is not an integer. */
static int fixture_tokenizer_ids(const char *dir, int vocab)
{
    static const char key[] = "\"tokenizer_ids\":";
    char path[2048], *text = NULL;
    size_t len = 0;
    ssf_error err;
    snprintf(path, sizeof path, "%s/expected.json", dir);
    if (ssf_read_file(path, &text, &len, &err) != 0) return vocab;
    int n = vocab;
    const char *k = strstr(text, key);
    if (k) {
        const char *num = k + strlen(key);
        char *end;
        long v = strtol(num, &end, 10);
        if (end == num)
            n = -1;
        else if (v > 0 && v <= vocab)
            n = (int)v;
    }
    free(text);
    return n;
}

#endif
