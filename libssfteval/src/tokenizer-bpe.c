/*
 * tokenizer-bpe.c - encoding and decoding for byte-level BPE tokenizers:
 * added-token splitting, NFC, the pre-tokenizer regex, BPE by merge rank with
 * a per-word cache, and decoding with U+FFFD for invalid UTF-8.
 *
 * Every step follows what the Hugging Face `tokenizers` package does, since
 * the ids must be the ones the model was trained on.
 */
#include "tokenizer-impl.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "ssfteval/util.h"

/* ---- small helpers ------------------------------------------------------ */

uint64_t ssf_tok_hash(const char *s, size_t n)
{
    /* FNV-1a over 8-byte words: fast on short words, good enough spread. */
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= h >> 32;
    return h * 0x9E3779B97F4A7C15ULL;
}

int32_t ssf_tok_lookup(const ssf_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)ssf_tok_hash(s, n) & t->vmap_mask;
    for (;; i = (i + 1) & t->vmap_mask) {
        uint32_t v = t->vmap[i];
        if (v == 0) return -1;
        int32_t id = (int32_t)(v - 1);
        if (t->text_len[id] == n && memcmp(t->arena + t->text_off[id], s, n) == 0) return id;
    }
}

size_t ssf_tok_put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int byte_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

uint32_t ssf_tok_byte_to_cp(unsigned b)
{
    /* GPT-2: printable Latin-1 bytes keep their code point; the other 68,
     * in increasing order, go to U+0100 onwards. */
    if (byte_printable(b)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        n += !byte_printable(x);
    return 256 + n;
}

/* Length of the valid UTF-8 sequence at s[0..avail), or 0 plus, in *bad,
 * the length of the maximal invalid subpart (Unicode 3.9, "U+FFFD
 * substitution of maximal subparts", which Python and Rust both follow). */
static size_t utf8_seq(const unsigned char *s, size_t avail, size_t *bad)
{
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t k = 1;
    for (; k < need && k < avail; k++) {
        unsigned b = s[k];
        if (b < lo || b > hi) break;
        lo = 0x80;
        hi = 0xBF;
    }
    if (k == need) return need;
    *bad = k;
    return 0;
}

size_t ssf_tok_utf8_check(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_seq(u + i, len - i, &bad);
        if (n == 0) return i;
        i += n;
    }
    return len;
}

/* bytes.decode('utf-8', errors='replace'). */
static void utf8_lossy(const char *s, size_t len, ssf_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && u[i] < 0x80)
            i++;
        if (i > start) ssf_buf_append(out, s + start, i - start);
        if (i >= len) break;
        size_t n = utf8_seq(u + i, len - i, &bad);
        if (n) {
            ssf_buf_append(out, s + i, n);
            i += n;
        } else {
            ssf_buf_append(out, "\xEF\xBF\xBD", 3);
            i += bad;
        }
    }
}

/* ---- the word cache ----------------------------------------------------- */

#define CACHE_SLOTS (1u << 17)
#define CACHE_MAX_WORD 255

void ssf_tok_cache_init(tok_cache *c)
{
    pthread_mutex_init(&c->lock, NULL);
    c->ready = 1;
}

/* The arenas are made on the first insertion (under the lock), so a
 * tokenizer that never encodes costs nothing. */
static void cache_alloc(tok_cache *c)
{
    c->mask = CACHE_SLOTS - 1;
    c->slots = ssf_xcalloc(CACHE_SLOTS, sizeof *c->slots);
    c->max_entries = CACHE_SLOTS / 2;
    c->entries = ssf_xmalloc(c->max_entries * sizeof *c->entries);
    c->keys_cap = (size_t)4 << 20;
    c->keys = ssf_xmalloc(c->keys_cap);
    c->ids_cap = (size_t)1 << 20;
    c->ids = ssf_xmalloc(c->ids_cap * sizeof *c->ids);
}

void ssf_tok_cache_free(tok_cache *c)
{
    if (!c->ready) return;
    pthread_mutex_destroy(&c->lock);
    free(c->slots);
    free(c->entries);
    free(c->keys);
    free(c->ids);
}

/* Copies the cached ids of word into *out (grown as needed); returns the
 * count, or -1 if the word is not cached. */
static long cache_get(tok_cache *c, uint64_t h, const char *w, size_t n, int32_t **buf, size_t *cap)
{
    long found = -1;
    pthread_mutex_lock(&c->lock);
    for (size_t i = h & c->mask; c->slots; i = (i + 1) & c->mask) {
        uint32_t v = c->slots[i];
        if (v == 0) break;
        const tok_cache_entry *e = &c->entries[v - 1];
        if (e->hash != h || e->key_len != n || memcmp(c->keys + e->key_off, w, n) != 0) continue;
        if (e->n_ids > *cap) {
            *cap = (size_t)e->n_ids * 2;
            *buf = ssf_xrealloc(*buf, *cap * sizeof **buf);
        }
        memcpy(*buf, c->ids + e->ids_off, e->n_ids * sizeof **buf);
        found = (long)e->n_ids;
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static void cache_put(tok_cache *c, uint64_t h, const char *w, size_t n, const int32_t *ids,
                      size_t n_ids)
{
    pthread_mutex_lock(&c->lock);
    if (!c->slots) cache_alloc(c);
    if (c->count >= c->max_entries || c->keys_len + n > c->keys_cap ||
        c->ids_len + n_ids > c->ids_cap) {
        memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
        c->count = c->keys_len = c->ids_len = 0;
    }
    size_t i = h & c->mask;
    while (c->slots[i] != 0) {
        const tok_cache_entry *e = &c->entries[c->slots[i] - 1];
        /* Another thread may have put the same word meanwhile. */
        if (e->hash == h && e->key_len == n && memcmp(c->keys + e->key_off, w, n) == 0) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        i = (i + 1) & c->mask;
    }
    tok_cache_entry *e = &c->entries[c->count];
    *e = (tok_cache_entry){h, (uint32_t)c->keys_len, (uint32_t)n, (uint32_t)c->ids_len,
                           (uint32_t)n_ids};
    memcpy(c->keys + c->keys_len, w, n);
    memcpy(c->ids + c->ids_len, ids, n_ids * sizeof *ids);
    c->keys_len += n;
    c->ids_len += n_ids;
    c->slots[i] = (uint32_t)++c->count;
    pthread_mutex_unlock(&c->lock);
}

/* ---- BPE ---------------------------------------------------------------- */

typedef struct bsym {
    int32_t id, prev, next;
} bsym;

/* Scratch space for one encode call: nothing here is malloc'd per word. */
typedef struct enc {
    const ssf_tokenizer *t;
    ssf_tokenizer *tm; /* the same, for the cache */
    int32_t *out;
    size_t n_out, cap_out;
    bsym *syms;
    size_t cap_syms;
    uint64_t *heap;
    size_t cap_heap;
    int32_t *word;
    size_t cap_word;
    char *tmp;
    size_t cap_tmp;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    ssf_error *err;
} enc;

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    *p = ssf_xrealloc(*p, c * elem);
    *cap = c;
}

static void emit(enc *e, const int32_t *ids, size_t n)
{
    if (n == 0) return;
    grow((void **)&e->out, &e->cap_out, e->n_out + n, sizeof *e->out);
    memcpy(e->out + e->n_out, ids, n * sizeof *ids);
    e->n_out += n;
}

/* Rank << 32 | merged id of the pair, or UINT64_MAX. */
static uint64_t merge_of(const ssf_tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ULL >> 17) & t->mmask;
    for (;; i = (i + 1) & t->mmask) {
        if (t->mkeys[i] == key) return t->mvals[i];
        if (t->mkeys[i] == UINT64_MAX) return UINT64_MAX;
    }
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

/* Pushes the pair starting at symbol pos, if it has a merge.  Heap keys
 * order by (rank, position), the order `tokenizers` merges in. */
static void push_pair(enc *e, size_t *nh, int32_t pos)
{
    const bsym *s = e->syms;
    if (pos < 0 || s[pos].next < 0) return;
    uint64_t m = merge_of(e->t, s[pos].id, s[s[pos].next].id);
    if (m != UINT64_MAX) heap_push(e->heap, nh, (m >> 32) << 32 | (uint32_t)pos);
}

/* The initial symbols: one per byte, unknown ones to unk (fused) or
 * dropped, as BPE without byte fallback does. */
static size_t initial_symbols(enc *e, const char *w, size_t n)
{
    const ssf_tokenizer *t = e->t;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[(unsigned char)w[i]];
        if (id < 0) {
            if (t->unk_id < 0) continue;
            if (t->fuse_unk && k > 0 && e->syms[k - 1].id == t->unk_id) continue;
            id = t->unk_id;
        }
        e->syms[k] = (bsym){id, (int32_t)k - 1, (int32_t)k + 1};
        k++;
    }
    if (k) e->syms[k - 1].next = -1;
    return k;
}

/* Whole-word lookup for ignore_merges: the byte-mapped word in the vocab. */
static int32_t whole_word(enc *e, const char *w, size_t n)
{
    grow((void **)&e->tmp, &e->cap_tmp, 2 * n + 1, 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ssf_tok_put_utf8(ssf_tok_byte_to_cp((unsigned char)w[i]), e->tmp + k);
    return ssf_tok_lookup(e->t, e->tmp, k);
}

/* BPE of one pre-token into e->word; returns the id count. */
static size_t bpe_word(enc *e, const char *w, size_t n)
{
    grow((void **)&e->word, &e->cap_word, n + 1, sizeof *e->word);
    if (e->t->ignore_merges) {
        int32_t id = whole_word(e, w, n);
        if (id >= 0) {
            e->word[0] = id;
            return 1;
        }
    }
    grow((void **)&e->syms, &e->cap_syms, n + 1, sizeof *e->syms);
    grow((void **)&e->heap, &e->cap_heap, 3 * n + 1, sizeof *e->heap);
    size_t k = initial_symbols(e, w, n), nh = 0;
    bsym *s = e->syms;
    for (size_t i = 0; i + 1 < k; i++)
        push_pair(e, &nh, (int32_t)i);
    while (nh) {
        uint64_t top = heap_pop(e->heap, &nh);
        int32_t pos = (int32_t)(uint32_t)top, nx = s[pos].next;
        if (s[pos].id < 0 || nx < 0) continue;
        uint64_t m = merge_of(e->t, s[pos].id, s[nx].id);
        /* Stale entry: the pair changed since it was pushed. */
        if (m == UINT64_MAX || m >> 32 != top >> 32) continue;
        s[pos].id = (int32_t)(uint32_t)m;
        s[pos].next = s[nx].next;
        if (s[nx].next >= 0) s[s[nx].next].prev = pos;
        s[nx].id = -1;
        push_pair(e, &nh, s[pos].prev);
        push_pair(e, &nh, pos);
    }
    size_t out = 0;
    for (int32_t i = k ? 0 : -1; i >= 0; i = s[i].next)
        e->word[out++] = s[i].id;
    return out;
}

static void encode_word(enc *e, const char *w, size_t n)
{
    if (n == 0) return;
    int32_t one = e->t->byte_id[(unsigned char)w[0]];
    if (n == 1 && one >= 0) {
        emit(e, &one, 1);
        return;
    }
    uint64_t h = 0;
    if (n <= CACHE_MAX_WORD) {
        h = ssf_tok_hash(w, n);
        long got = cache_get(&e->tm->cache, h, w, n, &e->word, &e->cap_word);
        if (got >= 0) {
            emit(e, e->word, (size_t)got);
            return;
        }
    }
    size_t k = bpe_word(e, w, n);
    if (n <= CACHE_MAX_WORD) cache_put(&e->tm->cache, h, w, n, e->word, k);
    emit(e, e->word, k);
}

/* ---- pre-tokenization --------------------------------------------------- */

static int regex_error(enc *e, int rc)
{
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return ssf_fail(e->err, "tokenizer %s: pre-tokenizer regex failed: %s", e->t->name,
                    (const char *)msg);
}

/* The next match of re in s at or after *pos: its bounds, or 0 at the end.
 * Empty matches are stepped over (they produce no piece). */
static int next_match(enc *e, const char *s, size_t n, size_t *pos, size_t *ms, size_t *me)
{
    while (*pos <= n) {
        int rc = pcre2_match(e->t->re, (PCRE2_SPTR)s, n, *pos, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !e->jit) {
            /* Long whitespace runs backtrack deeply: retry with a JIT
             * stack bigger than the 32 KiB default (made only when needed,
             * since it is an mmap). */
            e->jit = pcre2_jit_stack_create((size_t)64 * 1024, (size_t)64 * 1024 * 1024, NULL);
            if (!e->jit) return ssf_fail(e->err, "tokenizer %s: out of memory", e->t->name);
            pcre2_jit_stack_assign(e->mctx, NULL, e->jit);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) return regex_error(e, rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* Empty match: try again one character further. */
        size_t p = ov[0] + 1;
        while (p < n && ((unsigned char)s[p] & 0xC0) == 0x80)
            p++;
        *pos = p;
    }
    return 0;
}

/* ByteLevel's add_prefix_space (when it applies per piece), then BPE. */
static void encode_piece(enc *e, const char *s, size_t n)
{
    if (e->t->add_prefix_space && !e->t->prefix_whole_segment && n && s[0] != ' ') {
        grow((void **)&e->tmp, &e->cap_tmp, n + 1, 1);
        e->tmp[0] = ' ';
        memcpy(e->tmp + 1, s, n);
        /* The word buffer is reused inside, so hand a private copy. */
        char *copy = ssf_xstrndup(e->tmp, n + 1);
        encode_word(e, copy, n + 1);
        free(copy);
        return;
    }
    encode_word(e, s, n);
}

/* Split: matches are pieces, and so are the gaps between them.  Behaviour
 * Removed drops the delimiters: the matches, or with invert the gaps (the
 * pattern then matches what is kept), as tokenizers' Split does. */
static int split_pieces(enc *e, const char *s, size_t n)
{
    const ssf_tokenizer *t = e->t;
    int keep_gap = !t->split_removed || !t->split_invert;
    int keep_match = !t->split_removed || t->split_invert;
    size_t pos = 0, last = 0, ms = 0, me = 0;
    for (;;) {
        int rc = next_match(e, s, n, &pos, &ms, &me);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (ms > last && keep_gap) encode_piece(e, s + last, ms - last);
        if (keep_match) encode_piece(e, s + ms, me - ms);
        last = pos = me;
    }
    if (last < n && keep_gap) encode_piece(e, s + last, n - last);
    return 0;
}

/* ByteLevel with its own regex prefixes the whole segment, then splits it
 * (tokenizers' byte_level.rs); with a Split before it, each piece. */
static int pretokenize(enc *e, const char *s, size_t n)
{
    const ssf_tokenizer *t = e->t;
    if (!t->re) { /* ByteLevel without a regex: the segment is one word */
        encode_piece(e, s, n);
        return 0;
    }
    if (!(t->prefix_whole_segment && t->add_prefix_space && n && s[0] != ' '))
        return split_pieces(e, s, n);
    char *prefixed = ssf_xmalloc(n + 1);
    prefixed[0] = ' ';
    memcpy(prefixed + 1, s, n);
    int rc = split_pieces(e, prefixed, n + 1);
    free(prefixed);
    return rc;
}

/* ---- added tokens ------------------------------------------------------- */

static int is_space_cp(int32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Rust regex's \w: letters, marks, digits, connector punctuation. */
static int is_word_cp(int32_t c)
{
    utf8proc_category_t cat = utf8proc_category(c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO) ||
           cat == UTF8PROC_CATEGORY_PC || c == 0x200C || c == 0x200D;
}

static int32_t cp_at(const char *s, size_t n, size_t i)
{
    utf8proc_int32_t c = -1;
    utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    return c;
}

static size_t cp_before(const char *s, size_t i)
{
    do
        i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

/* The longest added token of this pass (raw or normalized) at s+i. */
static const tok_added *added_at(const ssf_tokenizer *t, const char *s, size_t n, size_t i,
                                 int normalized_pass)
{
    for (size_t k = 0; k < t->n_added; k++) {
        const tok_added *a = &t->added[k];
        if ((int)a->normalized != normalized_pass) continue;
        if (a->special && t->encode_special) continue;
        if (a->len <= n - i && memcmp(s + i, t->arena + a->off, a->len) == 0) return a;
    }
    return NULL;
}

static int single_word_ok(const char *s, size_t n, size_t ms, size_t me)
{
    if (ms > 0 && is_word_cp(cp_at(s, n, cp_before(s, ms)))) return 0;
    if (me < n && is_word_cp(cp_at(s, n, me))) return 0;
    return 1;
}

/* Finds the next usable added token at or after from (leftmost, then
 * longest, as aho-corasick LeftmostLongest does); widens it by lstrip
 * and rstrip.  Returns the token or NULL. */
static const tok_added *next_added(const ssf_tokenizer *t, const char *s, size_t n, size_t from,
                                   int pass, size_t *ms, size_t *me)
{
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[(unsigned char)s[i]]) continue;
        const tok_added *a = added_at(t, s, n, i, pass);
        if (!a) continue;
        size_t end = i + a->len;
        if (a->single_word && !single_word_ok(s, n, i, end)) {
            i = end - 1; /* a discarded match is not searched again */
            continue;
        }
        size_t start = i;
        while (a->lstrip && start > from && is_space_cp(cp_at(s, n, cp_before(s, start))))
            start = cp_before(s, start);
        while (a->rstrip && end < n && is_space_cp(cp_at(s, n, end))) {
            int32_t c = cp_at(s, n, end);
            end += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        }
        *ms = start;
        *me = end;
        return a;
    }
    return NULL;
}

/* NFC (when the normalizer asks for it), then the normalized added tokens,
 * then the pre-tokenizer on what is left. */
static int encode_normalized(enc *e, const char *s, size_t n)
{
    size_t pos = 0, ms = 0, me = 0;
    const tok_added *a;
    while ((a = next_added(e->t, s, n, pos, 1, &ms, &me)) != NULL) {
        if (ms > pos && pretokenize(e, s + pos, ms - pos)) return -1;
        emit(e, &a->id, 1);
        pos = me;
    }
    return pos < n ? pretokenize(e, s + pos, n - pos) : 0;
}

static int is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

/* Code points that the NFC of `tokenizers` passes through as it would an
 * unassigned one and utf8proc does not: its tables (the crate
 * unicode-normalization-alignments) are Unicode 9.0's, so the combining
 * marks of Unicode 10 and later are starters there (U+1DF6: "a\u1df6\u0316"
 * is not reordered), and the compositions of Unicode 13 and later are not
 * made (the first character of each pair, and the composite, are listed:
 * U+11935 U+11930 stays two).  Plus U+11A7, which utf8proc 2.6 wrongly
 * composes into a preceding Hangul LV syllable, dropping it.  Made by
 * tools/tokenizer-diff.py --nfc-table, which asks the oracle about every
 * code point the newest Unicode data gives a combining class or a
 * decomposition. */
static const uint32_t nfc_kept[][2] = {
    {0x5C8, 0x5C9},     {0x7FD, 0x7FD},     {0x897, 0x89F},     {0x8CA, 0x8D3},
    {0x9FE, 0x9FE},     {0xC3C, 0xC3C},     {0xD3B, 0xD3C},     {0xEBA, 0xEBA},
    {0x11A7, 0x11A7},   {0x1715, 0x1715},   {0x1ABF, 0x1AF0},   {0x1DF6, 0x1DFA},
    {0xA82C, 0xA82C},   {0x105C9, 0x105C9}, {0x105D2, 0x105D2}, {0x105DA, 0x105DA},
    {0x105E4, 0x105E4}, {0x10D24, 0x10D27}, {0x10D69, 0x10D6D}, {0x10EAB, 0x10EAC},
    {0x10ECB, 0x10ECF}, {0x10EF0, 0x10EFB}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50},
    {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x11382, 0x11385},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x11391}, {0x113C2, 0x113C2},
    {0x113C5, 0x113C5}, {0x113C7, 0x113C8}, {0x113CE, 0x113D0}, {0x1145E, 0x1145E},
    {0x11839, 0x1183A}, {0x11935, 0x11935}, {0x11938, 0x11938}, {0x1193D, 0x1193E},
    {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47},
    {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45}, {0x11D97, 0x11D97},
    {0x11F41, 0x11F42}, {0x1611E, 0x1611E}, {0x16121, 0x16129}, {0x1612F, 0x1612F},
    {0x16D63, 0x16D63}, {0x16D67, 0x16D6A}, {0x16FF0, 0x16FF1}, {0x1D127, 0x1D128},
    {0x1D250, 0x1D252}, {0x1D25B, 0x1D25C}, {0x1D25F, 0x1D25F}, {0x1D280, 0x1D281},
    {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
    {0x1E4EC, 0x1E4EF}, {0x1E5EE, 0x1E5EF}, {0x1E6E3, 0x1E6E3}, {0x1E6E6, 0x1E6E6},
    {0x1E6EE, 0x1E6EF}, {0x1E6F5, 0x1E6F5}};

static int nfc_kept_cp(uint32_t c)
{
    size_t lo = 0, hi = sizeof nfc_kept / sizeof *nfc_kept;
    if (c < nfc_kept[0][0]) return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c > nfc_kept[mid][1])
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sizeof nfc_kept / sizeof *nfc_kept && c >= nfc_kept[lo][0];
}

void ssf_tok_nfc_init(ssf_tokenizer *t)
{
    for (size_t k = 0; k < sizeof nfc_kept / sizeof *nfc_kept; k++)
        for (uint32_t c = nfc_kept[k][0]; c <= nfc_kept[k][1]; c++) {
            char u[4];
            ssf_tok_put_utf8(c, u);
            t->nfc_lead[(unsigned char)u[0]] = 1;
        }
}

/* The offset of the first kept code point in s at or after i (n if none);
 * *m is its length.  s is valid UTF-8. */
static size_t next_kept(const ssf_tokenizer *t, const char *s, size_t n, size_t i, size_t *m)
{
    const unsigned char *u = (const unsigned char *)s;
    for (; i < n; i++) {
        if (!t->nfc_lead[u[i]]) continue; /* most characters: no kept one starts so */
        size_t len = u[i] < 0xE0 ? 2 : u[i] < 0xF0 ? 3 : 4;
        uint32_t c = u[i] & (0x7F >> len);
        for (size_t k = 1; k < len; k++)
            c = c << 6 | (u[i + k] & 0x3F);
        if (nfc_kept_cp(c)) {
            *m = len;
            return i;
        }
        i += len - 1;
    }
    return n;
}

/* utf8proc's NFC of s[0..n), malloc'd, of *len bytes; NULL on error. */
static char *nfc(enc *e, const char *s, size_t n, size_t *len)
{
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &norm,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) {
        ssf_fail(e->err, "tokenizer %s: NFC failed: %s", e->t->name, utf8proc_errmsg(m));
        return NULL;
    }
    *len = (size_t)m;
    return (char *)norm;
}

static int nfc_append(enc *e, const char *s, size_t n, ssf_buf *out)
{
    size_t len;
    char *norm = n ? nfc(e, s, n, &len) : NULL;
    if (n && !norm) return -1;
    if (norm) ssf_buf_append(out, norm, len);
    free(norm);
    return 0;
}

/* NFC as `tokenizers` does it: utf8proc on the runs between kept code
 * points, which are copied as they are (each is a starter that neither
 * composes nor reorders there). */
static int encode_segment(enc *e, const char *s, size_t n)
{
    /* ASCII is its own NFC form: skip utf8proc's copy for it. */
    if (!e->t->nfc || is_ascii(s, n)) return encode_normalized(e, s, n);
    size_t m = 0, start = 0, len, k = next_kept(e->t, s, n, 0, &m);
    int rc = 0;
    if (k == n) { /* nearly always: one run */
        char *norm = nfc(e, s, n, &len);
        rc = norm ? encode_normalized(e, norm, len) : -1;
        free(norm);
        return rc;
    }
    ssf_buf norm = {0};
    for (; rc == 0 && k < n; k = next_kept(e->t, s, n, start, &m)) {
        rc = nfc_append(e, s + start, k - start, &norm);
        ssf_buf_append(&norm, s + k, m);
        start = k + m;
    }
    if (rc == 0) rc = nfc_append(e, s + start, n - start, &norm);
    if (rc == 0) rc = encode_normalized(e, norm.data ? norm.data : "", norm.len);
    ssf_buf_free(&norm);
    return rc;
}

static int encode_all(enc *e, const char *s, size_t n)
{
    size_t pos = 0, ms = 0, me = 0;
    const tok_added *a;
    while ((a = next_added(e->t, s, n, pos, 0, &ms, &me)) != NULL) {
        if (ms > pos && encode_segment(e, s + pos, ms - pos)) return -1;
        emit(e, &a->id, 1);
        pos = me;
    }
    return pos < n ? encode_segment(e, s + pos, n - pos) : 0;
}

static void enc_free(enc *e)
{
    free(e->syms);
    free(e->heap);
    free(e->word);
    free(e->tmp);
    pcre2_match_data_free(e->md);
    pcre2_match_context_free(e->mctx);
    pcre2_jit_stack_free(e->jit);
}

int ssf_tokenizer_encode(ssf_tokenizer *t, const char *text, size_t len, int32_t **ids,
                         size_t *n_ids, ssf_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    size_t bad = ssf_tok_utf8_check(text, len);
    if (bad < len)
        return ssf_fail(err, "tokenizer %s: input is not valid UTF-8 (byte %zu); convert it first",
                        t->name, bad);
    enc e = {.t = t, .tm = t, .err = err};
    if (t->re) e.md = pcre2_match_data_create_from_pattern(t->re, NULL);
    e.mctx = pcre2_match_context_create(NULL);
    int rc = encode_all(&e, text, len);
    enc_free(&e);
    if (rc) {
        free(e.out);
        return -1;
    }
    *ids = e.out ? e.out : ssf_xmalloc(sizeof **ids);
    *n_ids = e.n_out;
    return 0;
}

/* ---- decoding ----------------------------------------------------------- */

char *ssf_tokenizer_decode(const ssf_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                           size_t *len, ssf_error *err)
{
    ssf_buf raw = {0};
    for (size_t i = 0; i < n; i++) {
        size_t n_bytes;
        const char *b = ssf_tokenizer_token_bytes(t, ids[i], &n_bytes);
        if (!b) {
            ssf_buf_free(&raw);
            ssf_fail(err, "tokenizer %s: id %ld (position %zu) is not in the vocabulary (0..%ld)",
                     t->name, (long)ids[i], i, (long)t->n_ids - 1);
            return NULL;
        }
        if (skip_special && t->special[ids[i]]) continue;
        ssf_buf_append(&raw, b, n_bytes);
    }
    ssf_buf out = {0};
    ssf_buf_append(&out, "", 0);
    utf8_lossy(raw.data ? raw.data : "", raw.len, &out);
    ssf_buf_free(&raw);
    if (len) *len = out.len;
    return ssf_buf_take(&out);
}

const char *ssf_tokenizer_token_bytes(const ssf_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_ids || t->bytes_off[id] == TOK_NONE) return NULL;
    *len = t->bytes_len[id];
    return t->arena + t->bytes_off[id];
}

int32_t ssf_tokenizer_token_id(const ssf_tokenizer *t, const char *token)
{
    return ssf_tok_lookup(t, token, strlen(token));
}

int32_t ssf_tokenizer_n_ids(const ssf_tokenizer *t)
{
    return t->n_ids;
}

int ssf_tokenizer_is_special(const ssf_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && t->special[id];
}
