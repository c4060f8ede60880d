/*
 * tokenizer.h - Hugging Face byte-level BPE tokenizers (Qwen2, Qwen2.5,
 * Qwen3, and any tokenizer.json of the same shape), token for token what the
 * `tokenizers` package produces.
 *
 * Pipeline (encode): added tokens matched first and split the text; NFC
 * (utf8proc) on the rest; the Split pre-tokenizer's regex from the file,
 * run with PCRE2 in UTF + UCP mode; the GPT-2 byte-to-unicode map; BPE by
 * merge rank; vocabulary lookup.  Decode reverses the byte map and replaces
 * invalid UTF-8 with U+FFFD.
 *
 * A loaded tokenizer is shared by threads: encode keeps its per-word cache
 * behind a lock.
 */
#ifndef SSFTEVAL_TOKENIZER_H
#define SSFTEVAL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "ssfteval/util.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_tokenizer ssf_tokenizer;

/* `path` is a tokenizer.json file, or a directory holding tokenizer.json,
 * or (older layout) vocab.json + merges.txt (+ tokenizer_config.json for the
 * added tokens).
 *
 * The older layout carries no pipeline, so the one of transformers'
 * Qwen2Tokenizer is used: NFC, the Qwen2 pre-tokenizer regex, byte-level
 * BPE (a first merges.txt line starting with "#version" is skipped); when
 * tokenizer_config.json names "GPT2Tokenizer", GPT-2's regex and no NFC.
 * Added tokens come from the config's added_tokens_decoder; without a config
 * there are none.  A tokenizer_config.json beside either layout with
 * "split_special_tokens": true makes special added tokens plain text. */
int ssf_tokenizer_load(const char *path, ssf_tokenizer **out, ssf_error *err);

/* From a tokenizer.json already in memory (the fuzz target). */
int ssf_tokenizer_load_json(const char *json, size_t len, const char *name, ssf_tokenizer **out,
                            ssf_error *err);

void ssf_tokenizer_free(ssf_tokenizer *t);

/* Encodes len bytes of UTF-8 (invalid UTF-8 is an error).  *ids is
 * malloc'd and owned by the caller. */
int ssf_tokenizer_encode(ssf_tokenizer *t, const char *text, size_t len, int32_t **ids,
                         size_t *n_ids, ssf_error *err);

/* Decodes to a malloc'd NUL-terminated UTF-8 string (invalid sequences become
 * U+FFFD) of *len bytes (len may be NULL): a token for U+0000 puts a NUL
 * inside it, as Hugging Face decodes.  skip_special drops added tokens
 * flagged "special".  Unknown ids are an error (NULL). */
char *ssf_tokenizer_decode(const ssf_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                           size_t *len, ssf_error *err);

/* The raw bytes a token stands for (byte map undone; may be a partial UTF-8
 * sequence), or NULL for an unknown id.  For streaming stop-string checks. */
const char *ssf_tokenizer_token_bytes(const ssf_tokenizer *t, int32_t id, size_t *len);

/* The id of a token by its exact text (vocabulary entry or added token), or
 * -1. */
int32_t ssf_tokenizer_token_id(const ssf_tokenizer *t, const char *token);

/* Number of ids the tokenizer defines (highest id + 1); model rows at or
 * above it are padding. */
int32_t ssf_tokenizer_n_ids(const ssf_tokenizer *t);

/* Whether id is an added token flagged "special". */
int ssf_tokenizer_is_special(const ssf_tokenizer *t, int32_t id);

#ifdef __cplusplus
}
#endif
#endif
