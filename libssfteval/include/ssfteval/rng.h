/*
 * rng.h - CPython's Mersenne Twister (MT19937), bit for bit.
 *
 * LightEval places the correct GPQA answer with random.randint(0, 3) from the
 * global CPython RNG seeded with 1234, and shuffles documents with
 * random.Random(42).shuffle; reproducing those draws needs CPython's exact
 * seeding (init_by_array) and rejection sampling (_randbelow).
 */
#ifndef SSFTEVAL_RNG_H
#define SSFTEVAL_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssf_mt19937 {
    uint32_t state[624];
    int index;
} ssf_mt19937;

/* random.seed(seed) for a non-negative integer that fits 64 bits. */
void ssf_mt_seed(ssf_mt19937 *mt, uint64_t seed);
uint32_t ssf_mt_next_u32(ssf_mt19937 *mt);
/* random._randbelow(n), n >= 1. */
uint64_t ssf_mt_randbelow(ssf_mt19937 *mt, uint64_t n);
/* random.randint(a, b), a <= b. */
int64_t ssf_mt_randint(ssf_mt19937 *mt, int64_t a, int64_t b);
/* random.shuffle(x) on an array of n size_t values. */
void ssf_mt_shuffle(ssf_mt19937 *mt, size_t *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
