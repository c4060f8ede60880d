/*
 * tokenizer-impl.h - what tokenizer.c (loading) and tokenizer-bpe.c
 * (encode, decode, the word cache) share.  Private to the library.
 */
#ifndef SSFTEVAL_TOKENIZER_IMPL_H
#define SSFTEVAL_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ssfteval/tokenizer.h"

/* An added token (tokenizer.json "added_tokens" or tokenizer_config.json
 * "added_tokens_decoder"): matched literally before the normalizer. */
typedef struct tok_added {
    uint32_t off; /* content, in the arena (which moves as it grows) */
    size_t len;
    int32_t id;
    unsigned special : 1, lstrip : 1, rstrip : 1, normalized : 1, single_word : 1;
} tok_added;

/* The per-word cache: open addressing over entries whose keys and ids live
 * in two fixed arenas, so filling it never mallocs; when full it is emptied
 * (words repeat within a document, so a cold restart costs little). */
typedef struct tok_cache_entry {
    uint64_t hash;
    uint32_t key_off, key_len, ids_off, n_ids;
} tok_cache_entry;

typedef struct tok_cache {
    pthread_mutex_t lock;
    int ready;       /* lock initialised */
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t mask;
    tok_cache_entry *entries;
    size_t count, max_entries;
    char *keys;
    size_t keys_len, keys_cap;
    int32_t *ids;
    size_t ids_len, ids_cap;
} tok_cache;

#define TOK_NONE UINT32_MAX

struct ssf_tokenizer {
    char *name;
    int32_t n_ids;
    size_t ids_cap;
    /* Per id: the token's text (the byte-mapped form for vocabulary entries,
     * the content for added tokens) and its raw bytes, both in `arena`. */
    uint32_t *text_off, *text_len, *bytes_off, *bytes_len;
    char *arena;
    size_t arena_len, arena_cap;
    /* text -> id, open addressing, id + 1 (0 = empty). */
    uint32_t *vmap;
    size_t vmap_mask;
    /* (left id, right id) -> (rank << 32 | merged id). */
    uint64_t *mkeys, *mvals;
    size_t mmask, n_merges;
    int32_t byte_id[256]; /* id of each byte's mapped character, or -1 */
    int32_t unk_id;       /* -1: unknown characters are dropped, as HF does */
    int fuse_unk, ignore_merges;
    /* Added tokens, longest first within each first byte. */
    tok_added *added;
    size_t n_added;
    unsigned char added_first[256]; /* 1 if some raw-matched added token starts with the byte */
    unsigned char *special;         /* per id: 1 for an added token flagged special */
    int encode_special;             /* split_special_tokens: special tokens are plain text */
    int nfc;
    unsigned char nfc_lead[256]; /* 1 if a code point NFC leaves alone starts with the byte */
    /* Pre-tokenizer: the Split regex (or ByteLevel's GPT-2 one). */
    pcre2_code *re;
    int split_invert, split_removed, add_prefix_space;
    /* ByteLevel adds its prefix space to each piece it is given: the whole
     * segment when the regex is its own, each Split piece otherwise. */
    int prefix_whole_segment;
    tok_cache cache;
};

/* tokenizer-bpe.c */
void ssf_tok_cache_init(tok_cache *c);
void ssf_tok_cache_free(tok_cache *c);
uint64_t ssf_tok_hash(const char *s, size_t n);
int32_t ssf_tok_lookup(const ssf_tokenizer *t, const char *s, size_t n);
/* UTF-8 encoder for one code point; returns the byte count (1..4). */
size_t ssf_tok_put_utf8(uint32_t cp, char *out);
/* Fills t->nfc_lead. */
void ssf_tok_nfc_init(ssf_tokenizer *t);
/* GPT-2 bytes_to_unicode: the code point of byte b. */
uint32_t ssf_tok_byte_to_cp(unsigned b);
/* Offset of the first invalid UTF-8 byte, or len when valid. */
size_t ssf_tok_utf8_check(const char *s, size_t len);

#endif
