/*
 * tokenizer.c - loading byte-level BPE tokenizers: tokenizer.json (HF
 * `tokenizers` format), or the older vocab.json + merges.txt layout with
 * tokenizer_config.json for the added tokens.  Encoding and decoding are in
 * tokenizer-bpe.c.
 *
 * Only what byte-level BPE models (GPT-2, Qwen2/2.5/3 and the like) use is
 * accepted; any other normalizer, pre-tokenizer, decoder or post-processor
 * is refused by name rather than silently tokenized differently.
 */
#include "tokenizer-impl.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "ssfteval/util.h"

/* transformers' Qwen2Tokenizer PRETOKENIZE_REGEX, for the vocab.json +
 * merges.txt layout (which carries no pre-tokenizer). */
static const char qwen2_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{"
                                  "N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* ByteLevel(use_regex=true): GPT-2's pattern. */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- the id table ------------------------------------------------------- */

static ssf_tokenizer *tok_new(const char *name)
{
    ssf_tokenizer *t = ssf_xcalloc(1, sizeof *t);
    t->name = ssf_xstrdup(name);
    t->unk_id = -1;
    ssf_tok_nfc_init(t);
    return t;
}

static uint32_t arena_put(ssf_tokenizer *t, const char *s, size_t n)
{
    if (t->arena_len + n + 1 > t->arena_cap) {
        size_t c = t->arena_cap ? t->arena_cap : 1 << 16;
        while (c < t->arena_len + n + 1)
            c *= 2;
        t->arena = ssf_xrealloc(t->arena, c);
        t->arena_cap = c;
    }
    uint32_t off = (uint32_t)t->arena_len;
    memcpy(t->arena + off, s, n);
    t->arena[off + n] = '\0';
    t->arena_len += n + 1;
    return off;
}

/* Makes room for ids up to id (absent ones marked TOK_NONE); the arrays
 * grow geometrically, since vocabularies arrive one id at a time. */
static void reserve_ids(ssf_tokenizer *t, int32_t id)
{
    if (id < t->n_ids) return;
    if ((size_t)id >= t->ids_cap) {
        size_t cap = t->ids_cap ? t->ids_cap : 1024;
        while (cap <= (size_t)id)
            cap *= 2;
        uint32_t **arrays[] = {&t->text_off, &t->text_len, &t->bytes_off, &t->bytes_len};
        for (size_t k = 0; k < 4; k++)
            *arrays[k] = ssf_xrealloc(*arrays[k], cap * sizeof(uint32_t));
        t->special = ssf_xrealloc(t->special, cap);
        t->ids_cap = cap;
    }
    int32_t n = id + 1;
    uint32_t *arrays[] = {t->text_off, t->text_len, t->bytes_off, t->bytes_len};
    for (size_t k = 0; k < 4; k++)
        for (int32_t i = t->n_ids; i < n; i++)
            arrays[k][i] = TOK_NONE;
    memset(t->special + t->n_ids, 0, (size_t)(n - t->n_ids));
    t->n_ids = n;
}

#define MAX_ID (1 << 24)

static int set_token(ssf_tokenizer *t, long long id, const char *s, size_t n, int replace,
                     ssf_error *err)
{
    if (id < 0 || id >= MAX_ID)
        return ssf_fail(err, "tokenizer %s: token '%.60s' has id %lld, outside 0..%d; fix the file",
                        t->name, s, id, MAX_ID - 1);
    reserve_ids(t, (int32_t)id);
    if (t->text_off[id] != TOK_NONE && !replace)
        return ssf_fail(err, "tokenizer %s: id %lld is given to two tokens ('%.60s' and '%.60s')",
                        t->name, id, t->arena + t->text_off[id], s);
    t->text_off[id] = arena_put(t, s, n);
    t->text_len[id] = (uint32_t)n;
    return 0;
}

/* The raw bytes of a token: its characters through the inverse GPT-2 map,
 * or, when one is outside the map (as in most added tokens' contents
 * would not be), the token's own UTF-8 bytes - the ByteLevel decoder's rule. */
static void token_bytes(ssf_tokenizer *t, int32_t id, const int16_t *inv)
{
    const char *s = t->arena + t->text_off[id];
    size_t n = t->text_len[id], k = 0, i = 0;
    char *buf = ssf_xmalloc(n + 1);
    while (i < n) {
        utf8proc_int32_t c = -1;
        utf8proc_ssize_t m =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (m <= 0 || c >= 512 || inv[c] < 0) break;
        buf[k++] = (char)inv[c];
        i += (size_t)m;
    }
    if (i < n) {
        memcpy(buf, s, n);
        k = n;
    }
    t->bytes_off[id] = arena_put(t, buf, k);
    t->bytes_len[id] = (uint32_t)k;
    free(buf);
}

static void vmap_insert(ssf_tokenizer *t, int32_t id)
{
    const char *s = t->arena + t->text_off[id];
    size_t n = t->text_len[id];
    size_t i = (size_t)ssf_tok_hash(s, n) & t->vmap_mask;
    for (;; i = (i + 1) & t->vmap_mask) {
        uint32_t v = t->vmap[i];
        if (v == 0) break;
        int32_t o = (int32_t)(v - 1);
        if (t->text_len[o] == n && memcmp(t->arena + t->text_off[o], s, n) == 0) break;
    }
    t->vmap[i] = (uint32_t)id + 1;
}

static int added_cmp(const void *a, const void *b)
{
    const tok_added *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? 1 : -1) : (x->id > y->id) - (x->id < y->id);
}

/* After the vocabulary and the added tokens: the text -> id map, the raw
 * bytes of every token, the byte -> initial symbol table. */
static void finish_ids(ssf_tokenizer *t)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)t->n_ids + 16)
        cap *= 2;
    t->vmap = ssf_xcalloc(cap, sizeof *t->vmap);
    t->vmap_mask = cap - 1;
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->text_off[id] != TOK_NONE) vmap_insert(t, id);
    /* Added tokens last, so that their content wins over a vocab entry. */
    for (size_t k = 0; k < t->n_added; k++)
        vmap_insert(t, t->added[k].id);
    int16_t inv[512];
    for (size_t c = 0; c < 512; c++)
        inv[c] = -1;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = ssf_tok_byte_to_cp(b);
        inv[cp] = (int16_t)b;
        char u[4];
        size_t m = ssf_tok_put_utf8(cp, u);
        t->byte_id[b] = ssf_tok_lookup(t, u, m);
    }
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->text_off[id] != TOK_NONE) token_bytes(t, id, inv);
    if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    for (size_t k = 0; k < t->n_added; k++)
        t->added_first[(unsigned char)t->arena[t->added[k].off]] = 1;
}

/* ---- added tokens ------------------------------------------------------- */

static int flag(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int add_added(ssf_tokenizer *t, json_t *o, long long id, const char *where, ssf_error *err)
{
    json_t *c = json_object_get(o, "content");
    if (!json_is_string(c) || json_string_length(c) == 0)
        return ssf_fail(err, "tokenizer %s: %s has no \"content\" string; fix the file", t->name,
                        where);
    const char *s = json_string_value(c);
    size_t n = json_string_length(c);
    if (set_token(t, id, s, n, 1, err)) return -1;
    if ((t->n_added & (t->n_added - 1)) == 0) /* 0, 1, 2, 4, ...: grow geometrically */
        t->added = ssf_xrealloc(t->added, (t->n_added < 4 ? 8 : 2 * t->n_added) * sizeof *t->added);
    tok_added *a = &t->added[t->n_added++];
    *a = (tok_added){.off = t->text_off[id], .len = n, .id = (int32_t)id};
    a->special = flag(o, "special", 0);
    a->lstrip = flag(o, "lstrip", 0);
    a->rstrip = flag(o, "rstrip", 0);
    a->single_word = flag(o, "single_word", 0);
    /* HF's default: normalized unless special. */
    a->normalized = flag(o, "normalized", !a->special);
    t->special[id] = a->special;
    return 0;
}

/* tokenizer.json: "added_tokens": [{"id": N, "content": ...}, ...]. */
static int added_from_array(ssf_tokenizer *t, json_t *arr, ssf_error *err)
{
    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr))
        return ssf_fail(err, "tokenizer %s: \"added_tokens\" is not an array; fix the file",
                        t->name);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        json_t *id = json_object_get(o, "id");
        if (!json_is_integer(id))
            return ssf_fail(err, "tokenizer %s: %s has no integer \"id\"; fix the file", t->name,
                            where);
        if (add_added(t, o, json_integer_value(id), where, err)) return -1;
    }
    return 0;
}

/* tokenizer_config.json: "added_tokens_decoder": {"151643": {...}, ...}. */
static int added_from_config(ssf_tokenizer *t, json_t *cfg, ssf_error *err)
{
    json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (!dec) return 0;
    if (!json_is_object(dec))
        return ssf_fail(err, "tokenizer %s: \"added_tokens_decoder\" is not an object", t->name);
    const char *key;
    json_t *o;
    json_object_foreach(dec, key, o)
    {
        char *end;
        errno = 0;
        long long id = strtoll(key, &end, 10);
        if (errno || end == key || *end || !json_is_object(o))
            return ssf_fail(err, "tokenizer %s: added_tokens_decoder key '%.40s' is not an id",
                            t->name, key);
        char where[80];
        snprintf(where, sizeof where, "added_tokens_decoder[%s]", key);
        if (add_added(t, o, id, where, err)) return -1;
    }
    return 0;
}

/* ---- vocabulary and merges ---------------------------------------------- */

static int vocab_from_object(ssf_tokenizer *t, json_t *vocab, ssf_error *err)
{
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return ssf_fail(err, "tokenizer %s: the vocabulary is missing or empty; fix the file",
                        t->name);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        if (!json_is_integer(v))
            return ssf_fail(err, "tokenizer %s: vocabulary entry '%.60s' has no integer id",
                            t->name, key);
        if (set_token(t, json_integer_value(v), key, strlen(key), 0, err)) return -1;
    }
    return 0;
}

static void merges_alloc(ssf_tokenizer *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 16)
        cap *= 2;
    t->mkeys = ssf_xmalloc(cap * sizeof *t->mkeys);
    t->mvals = ssf_xmalloc(cap * sizeof *t->mvals);
    memset(t->mkeys, 0xFF, cap * sizeof *t->mkeys);
    t->mmask = cap - 1;
}

/* One merge (a, b) of rank `rank`; a later duplicate replaces an earlier
 * one, as in `tokenizers` (a HashMap built in order). */
static int add_merge(ssf_tokenizer *t, const char *a, size_t an, const char *b, size_t bn,
                     size_t rank, ssf_error *err)
{
    int32_t ia = ssf_tok_lookup(t, a, an), ib = ssf_tok_lookup(t, b, bn);
    char *ab = ssf_xmalloc(an + bn + 1);
    memcpy(ab, a, an);
    memcpy(ab + an, b, bn);
    int32_t iab = ssf_tok_lookup(t, ab, an + bn);
    if (ia < 0 || ib < 0 || iab < 0) {
        const char *miss = ia < 0 ? a : ib < 0 ? b : ab;
        size_t mn = ia < 0 ? an : ib < 0 ? bn : an + bn;
        ssf_fail(err, "tokenizer %s: merge %zu %s '%.*s', which is not in the vocabulary", t->name,
                 rank, iab < 0 && ia >= 0 && ib >= 0 ? "makes" : "names", (int)(mn > 60 ? 60 : mn),
                 miss);
        free(ab);
        return -1;
    }
    free(ab);
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL >> 17) & t->mmask;
    while (t->mkeys[i] != UINT64_MAX && t->mkeys[i] != key)
        i = (i + 1) & t->mmask;
    t->mkeys[i] = key;
    t->mvals[i] = (uint64_t)rank << 32 | (uint32_t)iab;
    t->n_merges++;
    return 0;
}

/* "a b" (split at the first space) or ["a", "b"]. */
static int merges_from_array(ssf_tokenizer *t, json_t *arr, ssf_error *err)
{
    if (!json_is_array(arr))
        return ssf_fail(err, "tokenizer %s: model has no \"merges\" array; fix the file", t->name);
    merges_alloc(t, json_array_size(arr));
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (json_is_string(m)) {
            const char *s = json_string_value(m), *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
                return ssf_fail(err, "tokenizer %s: merge %zu '%.60s' is not \"a b\"", t->name, i,
                                s);
            if (add_merge(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), i, err)) return -1;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            if (add_merge(t, json_string_value(a), json_string_length(a), json_string_value(b),
                          json_string_length(b), i, err))
                return -1;
        } else {
            return ssf_fail(err, "tokenizer %s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]",
                            t->name, i);
        }
    }
    return 0;
}

/* merges.txt: "a b" per line; an optional first "#version" line. */
static int merges_from_text(ssf_tokenizer *t, char *text, const char *path, ssf_error *err)
{
    size_t lines = 1;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    merges_alloc(t, lines);
    size_t rank = 0, line = 0;
    for (char *p = text, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
        nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        if (n && p[n - 1] == '\r') n--;
        if (n == 0 || (line == 1 && strncmp(p, "#version", 8) == 0)) {
            if (!nl) break;
            continue;
        }
        const char *sp = memchr(p, ' ', n);
        if (!sp || sp == p || sp == p + n - 1 || memchr(sp + 1, ' ', n - (size_t)(sp - p) - 1))
            return ssf_fail(err, "%s:%zu: a merge line must be two tokens separated by one space",
                            path, line);
        if (add_merge(t, p, (size_t)(sp - p), sp + 1, n - (size_t)(sp - p) - 1, rank++, err))
            return ssf_fail_prefix(err, "%s:%zu", path, line);
        if (!nl) break;
    }
    return 0;
}

/* ---- normalizer, pre-tokenizer, decoder --------------------------------- */

static const char *type_of(json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "type"));
    return s ? s : "(no type)";
}

static int set_normalizer(ssf_tokenizer *t, json_t *n, ssf_error *err)
{
    if (!n || json_is_null(n)) return 0;
    if (strcmp(type_of(n), "NFC") == 0) {
        t->nfc = 1;
        return 0;
    }
    if (strcmp(type_of(n), "Sequence") == 0) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(n, "normalizers"), i, x)
        {
            if (set_normalizer(t, x, err)) return -1;
        }
        return 0;
    }
    return ssf_fail(err, "tokenizer %s: normalizer %.40s is not supported (only NFC)", t->name,
                    type_of(n));
}

static int compile_regex(ssf_tokenizer *t, const char *pattern, size_t len, uint32_t extra,
                         ssf_error *err)
{
    int code;
    PCRE2_SIZE off;
    /* UCP shapes classes such as \s; PCRE2 refuses it for a literal. */
    uint32_t ucp = (extra & PCRE2_LITERAL) ? 0 : PCRE2_UCP;
    t->re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | ucp | extra, &code, &off, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return ssf_fail(err, "tokenizer %s: pre-tokenizer regex does not compile at offset %zu: %s",
                        t->name, (size_t)off, (const char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    return 0;
}

/* Oniguruma (which `tokenizers` uses) and PCRE2 (UTF + UCP) disagree on
 * some code points of \s, \p{L} and \p{N}; the pattern is rewritten so that
 * PCRE2 classes them as `tokenizers` 0.23 does.
 *
 * \s is Oniguruma's: Unicode White_Space, which PCRE2 widens with U+180E
 * (MONGOLIAN VOWEL SEPARATOR, a format character since Unicode 6.3). */
#define ONIG_SPACE                                                                                 \
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"       \
    "\\x{202F}\\x{205F}\\x{3000}"
/* \S inside a class, which cannot hold a [^...]: every code point but those
 * of ONIG_SPACE (PCRE2's own \S there leaves out U+180E, so [\s\S] missed
 * it). */
#define ONIG_NONSPACE                                                                              \
    "\\x{0}-\\x{8}\\x{E}-\\x{1F}\\x{21}-\\x{84}\\x{86}-\\x{9F}\\x{A1}-\\x{167F}"                   \
    "\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}"                 \
    "\\x{2060}-\\x{2FFF}\\x{3001}-\\x{10FFFF}"
/* Letters and numbers of Unicode 15.0 to 16.0, which the Oniguruma of
 * `tokenizers` 0.23 classes \p{L} and \p{N} and PCRE2 10.42 (Unicode 14)
 * leaves unassigned: CJK extensions H and I, Egyptian hieroglyphs extension
 * A, Kaktovik numerals, ... (a PCRE2 that knows them makes this a no-op). */
#define ONIG_EXTRA_L                                                                               \
    "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"               \
    "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"         \
    "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}"           \
    "\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}"          \
    "\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}"                    \
    "\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"                     \
    "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}"          \
    "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"
#define ONIG_EXTRA_N                                                                               \
    "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"         \
    "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"         \
    "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}"

/* 'L' or 'N' when p (left bytes) starts with \p{L} / \pL or \p{N} / \pN,
 * 'l' or 'n' for the negations \P{L} / \PL and \P{N} / \PN (*skip its
 * length), else 0. */
static int onig_property(const char *p, size_t left, size_t *skip)
{
    static const char *const esc[] = {"\\p{L}", "\\pL", "\\p{N}", "\\pN",
                                      "\\P{L}", "\\PL", "\\P{N}", "\\PN"};
    static const char kind[] = "LLNNllnn";
    for (size_t k = 0; k < sizeof esc / sizeof *esc; k++) {
        size_t n = strlen(esc[k]);
        if (n <= left && memcmp(p, esc[k], n) == 0) {
            *skip = n;
            return kind[k];
        }
    }
    return 0;
}

/* A property outside a class as Oniguruma's tables have it: the newer
 * code points added to \p{L} and \p{N}, and taken out of their negations. */
static const char *onig_property_text(int prop)
{
    switch (prop) {
    case 'L':
        return "(?:\\p{L}|[" ONIG_EXTRA_L "])";
    case 'N':
        return "(?:\\p{N}|[" ONIG_EXTRA_N "])";
    case 'l':
        return "(?:(?![" ONIG_EXTRA_L "])\\P{L})";
    default:
        return "(?:(?![" ONIG_EXTRA_N "])\\P{N})";
    }
}

/* The index after the ']' closing the class that opens at p[i] == '[', or
 * n. */
static size_t class_end(const char *p, size_t n, size_t i)
{
    size_t j = i + 1;
    j += j < n && p[j] == '^';
    j += j < n && p[j] == ']'; /* "[]" and "[^]" start a class holding ']' */
    while (j < n && p[j] != ']') {
        size_t step = p[j] == '\\' ? 2 : 1;
        if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') /* [:alpha:] */
            for (size_t k = j + 2; k + 1 < n && step == 1; k++)
                if (p[k] == ':' && p[k + 1] == ']') step = k + 2 - j;
        j += step;
    }
    return j < n ? j + 1 : n;
}

/* The length of the class item at p[0..n): an escape is two bytes (four
 * or three for a property), anything else one. */
static size_t class_item_len(const char *p, size_t n, int *prop)
{
    size_t skip = 0;
    *prop = p[0] == '\\' ? onig_property(p, n, &skip) : 0;
    if (*prop) return skip;
    return p[0] == '\\' && n > 1 ? 2 : 1;
}

/* A class p[0..n) without \P{L} or \P{N}: \s and \S spelled out; one
 * holding \p{L} or \p{N} is kept as it is (PCRE2 matches \p{L} faster
 * alone than among ranges) and the newer code points are added beside it:
 * "(?:[...]|[extra])", or for a negated class "(?:(?![extra])[^...])". */
static void onig_plain_class(const char *p, size_t n, ssf_buf *b)
{
    ssf_buf body = {0};
    int has_l = 0, has_n = 0;
    for (size_t j = 0; j < n;) {
        int prop;
        size_t m = class_item_len(p + j, n - j, &prop);
        if (p[j] == '\\' && j + 1 < n && (p[j + 1] == 's' || p[j + 1] == 'S')) {
            ssf_buf_puts(&body, p[j + 1] == 's' ? ONIG_SPACE : ONIG_NONSPACE);
        } else {
            has_l |= prop == 'L';
            has_n |= prop == 'N';
            ssf_buf_append(&body, p + j, m);
        }
        j += m;
    }
    const char *extra_l = has_l ? ONIG_EXTRA_L : "", *extra_n = has_n ? ONIG_EXTRA_N : "";
    if (!has_l && !has_n)
        ssf_buf_append(b, body.data, body.len);
    else if (n > 1 && p[1] == '^')
        ssf_buf_printf(b, "(?:(?![%s%s])%s)", extra_l, extra_n, body.data);
    else
        ssf_buf_printf(b, "(?:%s|[%s%s])", body.data, extra_l, extra_n);
    ssf_buf_free(&body);
}

/* A class p[0..n) as Oniguruma reads it.  \P{L} and \P{N} inside it cannot
 * be narrowed in place (a class holds no lookahead), so such a class is
 * taken apart: its other items as a class of their own, or'ed with each
 * negation as onig_property_text spells it, and a negated class becomes
 * "any code point but those" -- "(?:(?!(?:...))(?s:.))". */
static void onig_class(const char *p, size_t n, ssf_buf *b)
{
    int negated = n > 1 && p[1] == '^';
    size_t first = 1 + (size_t)negated;
    if (n <= first || p[n - 1] != ']') { /* unclosed: PCRE2 names the error */
        onig_plain_class(p, n, b);
        return;
    }
    ssf_buf rest = {0};
    int neg_l = 0, neg_n = 0;
    ssf_buf_putc(&rest, '[');
    for (size_t j = first; j + 1 < n;) {
        int prop;
        size_t m = class_item_len(p + j, n - 1 - j, &prop);
        if (prop == 'l' || prop == 'n') {
            neg_l |= prop == 'l';
            neg_n |= prop == 'n';
        } else if (rest.len == 1 && p[j] == '^') {
            ssf_buf_puts(&rest, "\\^"); /* first now, it would negate the class */
        } else {
            ssf_buf_append(&rest, p + j, m);
        }
        j += m;
    }
    if (!neg_l && !neg_n) {
        ssf_buf_free(&rest);
        onig_plain_class(p, n, b);
        return;
    }
    ssf_buf alt = {0};
    ssf_buf_puts(&alt, "(?:");
    if (rest.len > 1) {
        ssf_buf_putc(&rest, ']');
        onig_plain_class(rest.data, rest.len, &alt);
        ssf_buf_putc(&alt, '|');
    }
    if (neg_l) ssf_buf_printf(&alt, "%s%s", onig_property_text('l'), neg_n ? "|" : "");
    if (neg_n) ssf_buf_puts(&alt, onig_property_text('n'));
    ssf_buf_putc(&alt, ')');
    if (negated) /* one group, so that a quantifier after the class takes it whole */
        ssf_buf_printf(b, "(?:(?!%s)(?s:.))", alt.data);
    else
        ssf_buf_append(b, alt.data, alt.len);
    ssf_buf_free(&alt);
    ssf_buf_free(&rest);
}

/* The pattern with \s, \S, \p{L}, \p{N}, \P{L} and \P{N} classing code
 * points as Oniguruma does.  \Q...\E and other escapes are copied. */
static char *onig_pattern(const char *p, size_t n, size_t *out_len)
{
    ssf_buf b = {0};
    for (size_t i = 0; i < n;) {
        size_t skip = 0;
        int prop = p[i] == '\\' ? onig_property(p + i, n - i, &skip) : 0;
        if (p[i] == '\\' && i + 1 < n && p[i + 1] == 'Q') {
            size_t m = n - i;
            for (size_t j = i + 2; j + 1 < n && m == n - i; j++)
                if (p[j] == '\\' && p[j + 1] == 'E') m = j + 2 - i;
            ssf_buf_append(&b, p + i, m);
            i += m;
        } else if (prop) {
            ssf_buf_puts(&b, onig_property_text(prop));
            i += skip;
        } else if (p[i] == '\\' && i + 1 < n && (p[i + 1] == 's' || p[i + 1] == 'S')) {
            ssf_buf_puts(&b, p[i + 1] == 's' ? "[" ONIG_SPACE "]" : "[^" ONIG_SPACE "]");
            i += 2;
        } else if (p[i] == '\\') {
            size_t m = i + 1 < n ? 2 : 1;
            ssf_buf_append(&b, p + i, m);
            i += m;
        } else if (p[i] == '[') {
            size_t end = class_end(p, n, i);
            onig_class(p + i, end - i, &b);
            i = end;
        } else {
            ssf_buf_putc(&b, p[i++]);
        }
    }
    *out_len = b.len;
    return ssf_buf_take(&b);
}

static int set_regex(ssf_tokenizer *t, const char *pattern, size_t len, ssf_error *err)
{
    size_t n;
    char *onig = onig_pattern(pattern, len, &n);
    int rc = compile_regex(t, onig, n, 0, err);
    free(onig);
    return rc;
}

static int set_split(ssf_tokenizer *t, json_t *s, ssf_error *err)
{
    json_t *pat = json_object_get(s, "pattern");
    json_t *re = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
    const char *behavior = json_string_value(json_object_get(s, "behavior"));
    if (t->re)
        return ssf_fail(err, "tokenizer %s: more than one Split pre-tokenizer is not supported",
                        t->name);
    if (!behavior || (strcmp(behavior, "Isolated") != 0 && strcmp(behavior, "Removed") != 0))
        return ssf_fail(err,
                        "tokenizer %s: Split behavior '%.40s' is not supported (Isolated, Removed)",
                        t->name, behavior ? behavior : "(none)");
    t->split_removed = strcmp(behavior, "Removed") == 0;
    t->split_invert = flag(s, "invert", 0);
    if (json_is_string(re)) return set_regex(t, json_string_value(re), json_string_length(re), err);
    if (json_is_string(lit) && json_string_length(lit))
        return compile_regex(t, json_string_value(lit), json_string_length(lit), PCRE2_LITERAL,
                             err);
    return ssf_fail(err, "tokenizer %s: Split has no \"pattern\" {\"Regex\"|\"String\": ...}",
                    t->name);
}

/* ByteLevel: with use_regex it splits with GPT-2's pattern itself. */
static int set_byte_level(ssf_tokenizer *t, json_t *b, int after_split, ssf_error *err)
{
    t->add_prefix_space = flag(b, "add_prefix_space", 1);
    if (!flag(b, "use_regex", 1)) return 0;
    if (after_split)
        return ssf_fail(err,
                        "tokenizer %s: Split followed by ByteLevel(use_regex=true) is not "
                        "supported; set use_regex to false",
                        t->name);
    t->prefix_whole_segment = 1;
    return set_regex(t, gpt2_regex, strlen(gpt2_regex), err);
}

static int set_pre_tokenizer(ssf_tokenizer *t, json_t *p, ssf_error *err)
{
    const char *type = type_of(p);
    if (strcmp(type, "ByteLevel") == 0) return set_byte_level(t, p, 0, err);
    json_t *list = json_object_get(p, "pretokenizers");
    size_t n = json_array_size(list);
    if (strcmp(type, "Sequence") != 0 || n == 0 ||
        strcmp(type_of(json_array_get(list, n - 1)), "ByteLevel") != 0)
        return ssf_fail(err,
                        "tokenizer %s: pre-tokenizer %.40s is not supported (byte-level BPE needs "
                        "ByteLevel, or Sequence[Split, ByteLevel])",
                        t->name, type);
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *x = json_array_get(list, i);
        if (strcmp(type_of(x), "Split") != 0)
            return ssf_fail(err,
                            "tokenizer %s: pre-tokenizer %.40s in the Sequence is not supported",
                            t->name, type_of(x));
        if (set_split(t, x, err)) return -1;
    }
    return set_byte_level(t, json_array_get(list, n - 1), n > 1, err);
}

static int check_rest(ssf_tokenizer *t, json_t *root, ssf_error *err)
{
    json_t *d = json_object_get(root, "decoder"), *pp = json_object_get(root, "post_processor");
    if (strcmp(type_of(d), "ByteLevel") != 0)
        return ssf_fail(err, "tokenizer %s: decoder %.40s is not supported (ByteLevel only)",
                        t->name, type_of(d));
    /* ByteLevel's post-processor only trims offsets; anything that adds
     * BOS/EOS ids would change the encoding. */
    if (pp && !json_is_null(pp) && strcmp(type_of(pp), "ByteLevel") != 0)
        return ssf_fail(err, "tokenizer %s: post_processor %.40s is not supported (ByteLevel only)",
                        t->name, type_of(pp));
    return 0;
}

/* ---- the BPE model ------------------------------------------------------ */

static int check_model(ssf_tokenizer *t, json_t *m, ssf_error *err)
{
    const char *type = json_string_value(json_object_get(m, "type"));
    if (type && strcmp(type, "BPE") != 0)
        return ssf_fail(err, "tokenizer %s: model type %.40s is not supported (BPE only)", t->name,
                        type);
    json_t *dropout = json_object_get(m, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return ssf_fail(err, "tokenizer %s: BPE dropout is not supported; set it to null", t->name);
    if (flag(m, "byte_fallback", 0))
        return ssf_fail(err, "tokenizer %s: BPE byte_fallback is not supported", t->name);
    const char *cp = json_string_value(json_object_get(m, "continuing_subword_prefix"));
    const char *eow = json_string_value(json_object_get(m, "end_of_word_suffix"));
    if ((cp && *cp) || (eow && *eow))
        return ssf_fail(err,
                        "tokenizer %s: continuing_subword_prefix / end_of_word_suffix are not "
                        "supported",
                        t->name);
    t->fuse_unk = flag(m, "fuse_unk", 0);
    t->ignore_merges = flag(m, "ignore_merges", 0);
    return 0;
}

static int set_unk(ssf_tokenizer *t, json_t *m, ssf_error *err)
{
    const char *unk = json_string_value(json_object_get(m, "unk_token"));
    if (!unk) return 0;
    t->unk_id = ssf_tok_lookup(t, unk, strlen(unk));
    if (t->unk_id < 0)
        return ssf_fail(err, "tokenizer %s: unk_token '%.40s' is not in the vocabulary", t->name,
                        unk);
    return 0;
}

static int from_json(ssf_tokenizer *t, json_t *root, ssf_error *err)
{
    json_t *m = json_object_get(root, "model");
    if (!json_is_object(m))
        return ssf_fail(err, "tokenizer %s: no \"model\" object; is this a tokenizer.json?",
                        t->name);
    if (check_model(t, m, err) || vocab_from_object(t, json_object_get(m, "vocab"), err) ||
        added_from_array(t, json_object_get(root, "added_tokens"), err))
        return -1;
    finish_ids(t);
    if (set_unk(t, m, err) || merges_from_array(t, json_object_get(m, "merges"), err) ||
        set_normalizer(t, json_object_get(root, "normalizer"), err) || check_rest(t, root, err))
        return -1;
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (!json_is_object(pre))
        return ssf_fail(err, "tokenizer %s: no pre_tokenizer (byte-level BPE needs ByteLevel)",
                        t->name);
    return set_pre_tokenizer(t, pre, err);
}

void ssf_tokenizer_free(ssf_tokenizer *t)
{
    if (!t) return;
    ssf_tok_cache_free(&t->cache);
    pcre2_code_free(t->re);
    free(t->name);
    free(t->text_off);
    free(t->text_len);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->arena);
    free(t->vmap);
    free(t->mkeys);
    free(t->mvals);
    free(t->added);
    free(t->special);
    free(t);
}

static json_t *parse_json(const char *text, size_t len, const char *name, const char *what,
                          ssf_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root)
        ssf_fail(err, "%s: %s is not valid JSON (line %d: %s)", name, what, je.line, je.text);
    else if (!json_is_object(root)) {
        json_decref(root);
        root = NULL;
        ssf_fail(err, "%s: %s is not a JSON object", name, what);
    }
    return root;
}

static int load_json_cfg(const char *json, size_t len, const char *name, json_t *cfg,
                         ssf_tokenizer **out, ssf_error *err)
{
    *out = NULL;
    json_t *root = parse_json(json, len, name, "tokenizer file", err);
    if (!root) return -1;
    ssf_tokenizer *t = tok_new(name);
    int rc = from_json(t, root, err);
    json_decref(root);
    if (rc == 0 && cfg) t->encode_special = flag(cfg, "split_special_tokens", 0);
    if (rc) {
        ssf_tokenizer_free(t);
        return -1;
    }
    ssf_tok_cache_init(&t->cache);
    *out = t;
    return 0;
}

int ssf_tokenizer_load_json(const char *json, size_t len, const char *name, ssf_tokenizer **out,
                            ssf_error *err)
{
    return load_json_cfg(json, len, name ? name : "(memory)", NULL, out, err);
}

/* ---- files and directories ---------------------------------------------- */

/* tokenizer_config.json in dir, or NULL (absent is fine; unreadable or not
 * JSON is an error: *failed set). */
static json_t *read_config(const char *dir, int *failed, ssf_error *err)
{
    char *path = ssf_path_join(dir, "tokenizer_config.json"), *text;
    size_t len;
    json_t *cfg = NULL;
    *failed = 0;
    if (ssf_is_file(path)) {
        if (ssf_read_file(path, &text, &len, err) == 0) {
            cfg = parse_json(text, len, path, "tokenizer config", err);
            free(text);
        }
        *failed = cfg == NULL;
    }
    free(path);
    return cfg;
}

static int load_tokenizer_json(const char *path, const char *dir, ssf_tokenizer **out,
                               ssf_error *err)
{
    int failed;
    json_t *cfg = read_config(dir, &failed, err);
    if (failed) return -1;
    char *text;
    size_t len;
    int rc = ssf_read_file(path, &text, &len, err);
    if (rc == 0) {
        rc = load_json_cfg(text, len, path, cfg, out, err);
        free(text);
    }
    json_decref(cfg);
    return rc;
}

/* vocab.json + merges.txt: the pipeline of transformers' Qwen2Tokenizer
 * (NFC, the Qwen2 regex, byte-level BPE) unless tokenizer_config.json names
 * GPT2Tokenizer (no normalizer, GPT-2 regex).  Added tokens come from the
 * config's added_tokens_decoder; without a config there are none. */
static int legacy_build(ssf_tokenizer *t, const char *dir, json_t *cfg, ssf_error *err)
{
    char *vpath = ssf_path_join(dir, "vocab.json"), *mpath = ssf_path_join(dir, "merges.txt"),
         *text = NULL;
    size_t len;
    json_t *vocab = NULL;
    int rc = ssf_read_file(vpath, &text, &len, err);
    if (rc == 0) vocab = parse_json(text, len, vpath, "vocab.json", err);
    free(text);
    text = NULL;
    rc = vocab && vocab_from_object(t, vocab, err) == 0 ? 0 : -1;
    json_decref(vocab);
    if (rc == 0 && cfg) rc = added_from_config(t, cfg, err);
    if (rc == 0) {
        finish_ids(t);
        rc = ssf_read_file(mpath, &text, &len, err);
    }
    if (rc == 0) rc = merges_from_text(t, text, mpath, err);
    const char *cls = json_string_value(json_object_get(cfg, "tokenizer_class"));
    int gpt2 = cls && strcmp(cls, "GPT2Tokenizer") == 0;
    t->nfc = !gpt2;
    if (rc == 0)
        rc = gpt2 ? set_regex(t, gpt2_regex, strlen(gpt2_regex), err)
                  : set_regex(t, qwen2_regex, strlen(qwen2_regex), err);
    t->encode_special = flag(cfg, "split_special_tokens", 0);
    free(text);
    free(vpath);
    free(mpath);
    return rc;
}

static int load_legacy(const char *dir, ssf_tokenizer **out, ssf_error *err)
{
    int failed;
    json_t *cfg = read_config(dir, &failed, err);
    if (failed) return -1;
    ssf_tokenizer *t = tok_new(dir);
    int rc = legacy_build(t, dir, cfg, err);
    json_decref(cfg);
    if (rc) {
        ssf_tokenizer_free(t);
        return -1;
    }
    ssf_tok_cache_init(&t->cache);
    *out = t;
    return 0;
}

int ssf_tokenizer_load(const char *path, ssf_tokenizer **out, ssf_error *err)
{
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0)
        return ssf_fail(err, "tokenizer %s: %s; give a tokenizer.json or its directory", path,
                        strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        char *dir = ssf_xstrdup(path), *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            strcpy(dir, ".");
        int rc = load_tokenizer_json(path, dir, out, err);
        free(dir);
        return rc;
    }
    char *tj = ssf_path_join(path, "tokenizer.json"), *vj = ssf_path_join(path, "vocab.json"),
         *mt = ssf_path_join(path, "merges.txt");
    int rc;
    if (ssf_is_file(tj))
        rc = load_tokenizer_json(tj, path, out, err);
    else if (ssf_is_file(vj) && ssf_is_file(mt))
        rc = load_legacy(path, out, err);
    else
        rc = ssf_fail(err,
                      "tokenizer %s: no tokenizer.json nor vocab.json + merges.txt in the "
                      "directory",
                      path);
    free(tj);
    free(vj);
    free(mt);
    return rc;
}
