/*
 * sampler.h - choosing the next token from a row of logits.
 *
 * Every sample draws from its own counter-based stream: Philox4x32-10 keyed
 * by the sample's recorded seed, with the token's position in the output as
 * the counter.  No state is carried between steps, so a sample's tokens
 * depend only on its seed and its logits, never on which other sequences
 * shared the batch or in what order they were scheduled.
 *
 * Filters apply in Hugging Face's order: temperature, top-k, top-p, min-p.
 * Rows at or above `n_valid` (the padded embedding rows a tokenizer never
 * produces) are never chosen.
 */
#ifndef SSFTEVAL_ENGINE_SAMPLER_H
#define SSFTEVAL_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_sampler_params {
    double temperature; /* <= 0: greedy */
    double top_p;       /* 1: off */
    long top_k;         /* <= 0: off */
    double min_p;       /* 0: off */
} ssf_sampler_params;

/* Philox4x32-10 (Salmon et al., SC'11): four 32-bit words for (key, counter). */
void ssf_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* A uniform double in [0, 1) with 53 random bits, the draw number `step` of
 * the stream `seed`. */
double ssf_philox_uniform(uint64_t seed, uint64_t step);

/* Scratch space for ssf_sample over a vocabulary of `vocab` rows. */
typedef struct ssf_sampler_scratch {
    size_t cap;
    float *prob;
    int32_t *idx;
    float *sorted_prob; /* the sort's other buffers */
    int32_t *sorted_idx;
} ssf_sampler_scratch;

void ssf_sampler_scratch_free(ssf_sampler_scratch *s);

/* The token for draw `step` of sample `seed` from logits[0 .. n_valid-1].
 * Greedy picks the lowest id among equal maxima.  Non-finite logits are
 * treated as -inf; a row with no finite logit returns -1. */
int32_t ssf_sample(const float *logits, int32_t n_valid, const ssf_sampler_params *p, uint64_t seed,
                   uint64_t step, ssf_sampler_scratch *s);

/* A row's candidates after the filters, kept to be drawn from again under
 * other seeds: every sample of a prompt draws its first token from the
 * prompt's logits, nearly always under the same parameters, and the
 * filters (an exp and a sort over up to the whole vocabulary) are most of
 * a draw's time. */
typedef struct ssf_sampler_kept {
    int32_t n; /* 0: the row had no finite logit */
    int32_t *id;
    float *w;
    size_t cap;
} ssf_sampler_kept;

/* Filters logits[0 .. n_valid-1] under p into *kept, whose buffers are
 * reused (a zeroed ssf_sampler_kept starts empty). */
void ssf_sampler_keep(const float *logits, int32_t n_valid, const ssf_sampler_params *p,
                      ssf_sampler_scratch *s, ssf_sampler_kept *kept);

/* What ssf_sample returns for the row and parameters kept, seed and step. */
int32_t ssf_sample_kept(const ssf_sampler_kept *kept, uint64_t seed, uint64_t step);

void ssf_sampler_kept_free(ssf_sampler_kept *kept);

#ifdef __cplusplus
}
#endif
#endif
