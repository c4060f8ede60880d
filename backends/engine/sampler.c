/*
 * sampler.c - temperature, top-k, top-p, min-p and greedy choice of the next
 * token, with a Philox4x32-10 stream per sample.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ssfteval/util.h"

/* ---- Philox4x32-10 ------------------------------------------------------- */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static void philox_round(uint32_t c[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t next[4] = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    memcpy(c, next, sizeof next);
}

void ssf_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    memcpy(out, c, sizeof c);
}

double ssf_philox_uniform(uint64_t seed, uint64_t step)
{
    uint32_t counter[4] = {(uint32_t)step, (uint32_t)(step >> 32), 0, 0};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t r[4];
    ssf_philox4x32(counter, key, r);
    uint64_t bits = ((uint64_t)(r[0] >> 5) << 26) | (r[1] >> 6); /* 27 + 26 = 53 bits */
    return (double)bits * (1.0 / 9007199254740992.0);
}

/* ---- choosing ------------------------------------------------------------ */

void ssf_sampler_scratch_free(ssf_sampler_scratch *s)
{
    free(s->prob);
    free(s->idx);
    free(s->sorted_prob);
    free(s->sorted_idx);
    memset(s, 0, sizeof *s);
}

static void scratch_reserve(ssf_sampler_scratch *s, size_t n)
{
    if (s->cap >= n) return;
    s->prob = ssf_xrealloc(s->prob, n * sizeof *s->prob);
    s->idx = ssf_xrealloc(s->idx, n * sizeof *s->idx);
    s->sorted_prob = ssf_xrealloc(s->sorted_prob, n * sizeof *s->sorted_prob);
    s->sorted_idx = ssf_xrealloc(s->sorted_idx, n * sizeof *s->sorted_idx);
    s->cap = n;
}

static int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++)
        if (isfinite(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    return best;
}

typedef struct candidates {
    int32_t n;
    int32_t *id;       /* token ids */
    float *w;          /* unnormalized probabilities exp(x - max), parallel to id */
    int32_t *spare_id; /* as long as id and w: the sort's other buffers */
    float *spare_w;
} candidates;

/* ---- sorting -------------------------------------------------------------- */

/* Candidates are ordered by weight, highest first, ties by id, so that
 * filtering and the final draw never depend on how the sort is done.
 *
 * The sort is a least-significant-digit radix sort of the weights' bits,
 * three passes of 11 bits.  qsort took some 20 ms for a flat row of
 * Qwen2.5's 151,936 ids (a random-weight model's, or any row at a high
 * temperature), where top-p keeps nearly all of them, and this 1 ms; a
 * CUDA run draws each sample's first token here, on the host, while the
 * GPU waits.  Being stable, the radix sort leaves equal weights in the order
 * they come in, which is by id: collect() makes the candidates in id
 * order, the filters only drop some, and a sorted list is its own order
 * again. */
#define RADIX_BITS 11
#define RADIX_BINS (1u << RADIX_BITS)
#define RADIX_PASSES 3 /* 11 + 11 + 10 of a float's 32 bits */

/* Weights are finite and >= 0, whose bits order as they do as unsigned
 * integers; complemented, they order heaviest first. */
static uint32_t heaviest_first_key(float w)
{
    uint32_t bits;
    memcpy(&bits, &w, sizeof bits);
    return ~bits;
}

static unsigned radix_digit(uint32_t key, int pass)
{
    return (key >> (pass * RADIX_BITS)) & (RADIX_BINS - 1);
}

/* Moves the candidates into the spare buffers ordered by one digit, keeping
 * the order of equal digits, and makes the spare buffers the candidates'. */
static void radix_pass(candidates *c, int pass, uint32_t *count)
{
    uint32_t at = 0;
    for (unsigned d = 0; d < RADIX_BINS; d++) {
        uint32_t n = count[d];
        count[d] = at;
        at += n;
    }
    for (int32_t i = 0; i < c->n; i++) {
        uint32_t to = count[radix_digit(heaviest_first_key(c->w[i]), pass)]++;
        c->spare_w[to] = c->w[i];
        c->spare_id[to] = c->id[i];
    }
    float *w = c->w;
    int32_t *id = c->id;
    c->w = c->spare_w, c->id = c->spare_id;
    c->spare_w = w, c->spare_id = id;
}

/* Sorts the candidates by weight, highest first (ties by id).  A pass whose
 * digit is the same for every candidate (a weight's top bits often are)
 * would move nothing and is skipped. */
static void sort_candidates(candidates *c)
{
    if (c->n < 2) return;
    uint32_t count[RADIX_PASSES][RADIX_BINS] = {{0}};
    for (int32_t i = 0; i < c->n; i++) {
        uint32_t key = heaviest_first_key(c->w[i]);
        for (int pass = 0; pass < RADIX_PASSES; pass++)
            count[pass][radix_digit(key, pass)]++;
    }
    uint32_t n = (uint32_t)c->n;
    for (int pass = 0; pass < RADIX_PASSES; pass++) {
        if (count[pass][radix_digit(heaviest_first_key(c->w[0]), pass)] == n) continue;
        radix_pass(c, pass, count[pass]);
    }
}

/* The scaled logits of the finite rows, as weights relative to the maximum
 * (so the maximum has weight 1). */
static void collect(const float *logits, int32_t n_valid, double temperature, candidates *c)
{
    float max = -INFINITY;
    for (int32_t i = 0; i < n_valid; i++)
        if (isfinite(logits[i]) && logits[i] > max) max = logits[i];
    c->n = 0;
    for (int32_t i = 0; i < n_valid; i++) {
        if (!isfinite(logits[i])) continue;
        c->id[c->n] = i;
        c->w[c->n] = (float)exp(((double)logits[i] - max) / temperature);
        c->n++;
    }
}

static double total_weight(const candidates *c)
{
    double sum = 0;
    for (int32_t i = 0; i < c->n; i++)
        sum += c->w[i];
    return sum;
}

/* Keeps the k heaviest (ties by id), leaving them sorted. */
static void keep_top_k(candidates *c, long k)
{
    if (k <= 0 || k >= c->n) return;
    sort_candidates(c);
    c->n = (int32_t)k;
}

/* Keeps the smallest heaviest-first prefix whose mass reaches top_p of the
 * total (at least one token), as Hugging Face's TopPLogitsWarper does.
 * Tokens lighter than (1 - p) / (n - 1) of the total can never be inside
 * that prefix, so they are dropped before the sort (llama2.c's trick), which
 * keeps the sort short over a 152k vocabulary.  The heaviest token always
 * is inside, so the cutoff never passes it: with p under 1 / n over nearly
 * equal weights it would, and nothing would be left to draw. */
static void keep_top_p(candidates *c, double top_p)
{
    if (top_p >= 1.0 || c->n <= 1) return;
    double total = total_weight(c);
    float heaviest = 0;
    for (int32_t i = 0; i < c->n; i++)
        if (c->w[i] > heaviest) heaviest = c->w[i];
    double cutoff = (1.0 - top_p) / (c->n - 1) * total;
    if (cutoff > heaviest) cutoff = heaviest;
    int32_t kept = 0;
    for (int32_t i = 0; i < c->n; i++) {
        if (c->w[i] < cutoff) continue;
        c->id[kept] = c->id[i];
        c->w[kept] = c->w[i];
        kept++;
    }
    c->n = kept;
    sort_candidates(c);
    double mass = 0;
    for (int32_t i = 0; i < c->n; i++) {
        mass += c->w[i];
        if (mass >= top_p * total) {
            c->n = i + 1;
            return;
        }
    }
}

/* Keeps tokens whose probability is at least min_p times the largest one;
 * the largest has weight 1 by construction. */
static void keep_min_p(candidates *c, double min_p)
{
    if (min_p <= 0) return;
    if (min_p > 1) min_p = 1; /* the largest is always kept: the draw needs one */
    float max = 0;
    for (int32_t i = 0; i < c->n; i++)
        if (c->w[i] > max) max = c->w[i];
    int32_t kept = 0;
    for (int32_t i = 0; i < c->n; i++) {
        if (c->w[i] < (float)min_p * max) continue;
        c->id[kept] = c->id[i];
        c->w[kept] = c->w[i];
        kept++;
    }
    c->n = kept;
}

static int32_t draw(const candidates *c, double u)
{
    double target = u * total_weight(c), mass = 0;
    for (int32_t i = 0; i < c->n; i++) {
        mass += c->w[i];
        if (target < mass) return c->id[i];
    }
    return c->id[c->n - 1]; /* u * total rounded up to the total */
}

/* Applies p's filters to the row: c ends holding the ids a draw picks
 * from, one where the choice is greedy, none where no logit is finite. */
static void filter(const float *logits, int32_t n_valid, const ssf_sampler_params *p,
                   ssf_sampler_scratch *s, candidates *c)
{
    int greedy = p->temperature <= 0 || p->top_k == 1;
    scratch_reserve(s, greedy ? 1 : (size_t)n_valid);
    *c = (candidates){0, s->idx, s->prob, s->sorted_idx, s->sorted_prob};
    if (greedy) {
        int32_t best = argmax(logits, n_valid);
        if (best < 0) return;
        c->id[0] = best;
        c->w[0] = 1;
        c->n = 1;
        return;
    }
    collect(logits, n_valid, p->temperature, c);
    if (c->n == 0) return;
    keep_top_k(c, p->top_k);
    keep_top_p(c, p->top_p > 0 ? p->top_p : 1.0);
    keep_min_p(c, p->min_p);
}

static int32_t choose(const candidates *c, uint64_t seed, uint64_t step)
{
    if (c->n <= 1) return c->n ? c->id[0] : -1;
    return draw(c, ssf_philox_uniform(seed, step));
}

int32_t ssf_sample(const float *logits, int32_t n_valid, const ssf_sampler_params *p, uint64_t seed,
                   uint64_t step, ssf_sampler_scratch *s)
{
    candidates c;
    filter(logits, n_valid, p, s, &c);
    return choose(&c, seed, step);
}

/* ---- a row filtered once, drawn from many times ----------------------------- */

void ssf_sampler_keep(const float *logits, int32_t n_valid, const ssf_sampler_params *p,
                      ssf_sampler_scratch *s, ssf_sampler_kept *kept)
{
    candidates c;
    filter(logits, n_valid, p, s, &c);
    if ((size_t)c.n > kept->cap) {
        kept->id = ssf_xrealloc(kept->id, (size_t)c.n * sizeof *kept->id);
        kept->w = ssf_xrealloc(kept->w, (size_t)c.n * sizeof *kept->w);
        kept->cap = (size_t)c.n;
    }
    if (c.n) {
        memcpy(kept->id, c.id, (size_t)c.n * sizeof *c.id);
        memcpy(kept->w, c.w, (size_t)c.n * sizeof *c.w);
    }
    kept->n = c.n;
}

int32_t ssf_sample_kept(const ssf_sampler_kept *kept, uint64_t seed, uint64_t step)
{
    candidates c = {kept->n, kept->id, kept->w, NULL, NULL};
    return choose(&c, seed, step);
}

void ssf_sampler_kept_free(ssf_sampler_kept *kept)
{
    free(kept->id);
    free(kept->w);
    memset(kept, 0, sizeof *kept);
}
