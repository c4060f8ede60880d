/*
 * fuzz_tokenizer.c - libFuzzer target for the byte-level BPE tokenizer.
 *
 * The input is encoded with the Qwen3 tokenizer of ../shared (loaded once);
 * when it is valid UTF-8 (otherwise encode must fail cleanly),
 * decode(encode(x)) must be canonically equivalent to x: NFC of it equals
 * NFC(x).  Not NFC(x) itself: added tokens are split out before the
 * normalizer runs, as in Hugging Face's tokenizers, so a combining mark
 * after one stays a mark of its own (test_tokenizer's
 * test_added_token_before_nfc).  The input is also handed to
 * ssf_tokenizer_load_json as a tokenizer file; when that loads, the input is
 * encoded and decoded with it too.  Any crash, sanitizer report, leak or
 * broken round trip is a bug.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   SSFTEVAL_SHARED=../shared build-fuzz/tests/fuzz_tokenizer -max_total_time=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "ssfteval/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssf_tokenizer *qwen;

static void load_qwen(void)
{
    const char *shared = getenv("SSFTEVAL_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizers/qwen3/tokenizer.json",
             shared && *shared ? shared : "../shared");
    ssf_error err;
    if (ssf_tokenizer_load(path, &qwen, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s (set SSFTEVAL_SHARED)\n", err.msg);
        abort();
    }
}

/* Encodes and decodes; returns the decoded text or NULL when encode
 * refused the input. */
static char *roundtrip(ssf_tokenizer *t, const char *text, size_t size)
{
    int32_t *ids;
    size_t n;
    ssf_error err;
    if (ssf_tokenizer_encode(t, text, size, &ids, &n, &err)) return NULL;
    char *dec = ssf_tokenizer_decode(t, ids, n, 0, NULL, &err);
    if (!dec) abort(); /* every id encode gives must decode */
    char *skipped = ssf_tokenizer_decode(t, ids, n, 1, NULL, &err);
    if (!skipped) abort();
    free(skipped);
    free(ids);
    return dec;
}

static utf8proc_ssize_t nfc_of(const char *text, size_t size, utf8proc_uint8_t **out)
{
    *out = NULL;
    return utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)size, out,
                        UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}

static void check_qwen(const char *text, size_t size)
{
    char *dec = roundtrip(qwen, text, size);
    utf8proc_uint8_t *nfc, *dec_nfc = NULL;
    utf8proc_ssize_t m = nfc_of(text, size, &nfc);
    /* Encode refuses exactly the inputs that are not UTF-8. */
    if ((dec == NULL) != (m < 0)) abort();
    /* decode's result is NUL-terminated: compare only NUL-free inputs. */
    if (dec && !memchr(text, 0, size)) {
        if (nfc_of(dec, strlen(dec), &dec_nfc) < 0) abort();
        if (strcmp((const char *)dec_nfc, (const char *)nfc) != 0) abort();
    }
    free(dec_nfc);
    free(nfc);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!qwen) load_qwen();
    const char *text = (const char *)data;
    check_qwen(text, size);
    ssf_tokenizer *t;
    ssf_error err;
    if (ssf_tokenizer_load_json(text, size, "fuzz", &t, &err) == 0) {
        free(roundtrip(t, text, size));
        ssf_tokenizer_free(t);
    }
    return 0;
}
