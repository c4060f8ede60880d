/*
 * byte-tokens.h - the byte tokenizer that tests/test_engine.c and
 * bench/engine_sched_bench.c give the engine: ids 0-255 are the bytes, ids
 * from 256 below N_VALID are specials without text, ids from N_VALID on
 * are padding (no text at all).  The includer defines N_VALID;
 * byte_token_model gives the engine a device with this tokenizer.
 */
#ifndef SSFTEVAL_BYTE_TOKENS_H
#define SSFTEVAL_BYTE_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"
#include "ssfteval/util.h"

static char byte_table[256];

static void byte_tokens_init(void)
{
    for (int i = 0; i < 256; i++)
        byte_table[i] = (char)i;
}

static const char *tok_bytes(void *ud, int32_t id, size_t *len)
{
    (void)ud;
    if (id < 0 || id >= 256) {
        *len = 0;
        return id < N_VALID ? "" : NULL;
    }
    *len = 1;
    return &byte_table[id];
}

static int tok_encode(void *ud, const char *text, int32_t **ids, size_t *n, ssf_error *err)
{
    (void)ud, (void)err;
    *n = strlen(text);
    *ids = ssf_xmalloc((*n ? *n : 1) * sizeof **ids);
    for (size_t i = 0; i < *n; i++)
        (*ids)[i] = (unsigned char)text[i];
    return 0;
}

static char *tok_decode(void *ud, const int32_t *ids, size_t n, ssf_error *err)
{
    (void)ud, (void)err;
    char *s = ssf_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 256) s[k++] = (char)ids[i];
    s[k] = '\0';
    return s;
}

/* The engine's view of `device` with logit rows `vocab` wide, ids below
 * N_VALID and the one stop id *eos. */
static ssf_engine_model byte_token_model(ssf_device *device, int32_t vocab, const int32_t *eos)
{
    byte_tokens_init();
    return (ssf_engine_model){.device = device,
                              .vocab_size = vocab,
                              .n_valid = N_VALID,
                              .eos = eos,
                              .n_eos = 1,
                              .token_bytes = tok_bytes,
                              .encode = tok_encode,
                              .decode = tok_decode};
}

#endif
