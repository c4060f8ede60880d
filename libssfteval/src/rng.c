/*
 * rng.c - CPython's random module core: MT19937 with init_by_array seeding,
 * getrandbits and _randbelow.  Follows Modules/_randommodule.c so that
 * sequences match Python's draw for draw.
 */
#include "ssfteval/rng.h"

#define MT_N 624
#define MT_M 397

static void init_genrand(ssf_mt19937 *mt, uint32_t s)
{
    mt->state[0] = s;
    for (uint32_t i = 1; i < MT_N; i++) {
        uint32_t prev = mt->state[i - 1];
        mt->state[i] = 1812433253U * (prev ^ (prev >> 30)) + i;
    }
    mt->index = MT_N;
}

static void init_by_array(ssf_mt19937 *mt, const uint32_t *key, uint32_t keylen)
{
    uint32_t *s = mt->state;
    uint32_t i = 1, j = 0;
    init_genrand(mt, 19650218U);
    for (uint32_t k = MT_N > keylen ? MT_N : keylen; k; k--) {
        s[i] = (s[i] ^ ((s[i - 1] ^ (s[i - 1] >> 30)) * 1664525U)) + key[j] + j;
        i++;
        j++;
        if (i >= MT_N) {
            s[0] = s[MT_N - 1];
            i = 1;
        }
        if (j >= keylen) j = 0;
    }
    for (uint32_t k = MT_N - 1; k; k--) {
        s[i] = (s[i] ^ ((s[i - 1] ^ (s[i - 1] >> 30)) * 1566083941U)) - i;
        i++;
        if (i >= MT_N) {
            s[0] = s[MT_N - 1];
            i = 1;
        }
    }
    s[0] = 0x80000000U; /* guarantees a non-zero initial state */
}

void ssf_mt_seed(ssf_mt19937 *mt, uint64_t seed)
{
    /* CPython splits abs(seed) into 32-bit words, least significant first,
     * and uses a single zero word for 0. */
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    init_by_array(mt, key, key[1] ? 2 : 1);
}

static void regenerate(ssf_mt19937 *mt)
{
    static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
    uint32_t *s = mt->state;
    int k;
    for (k = 0; k < MT_N - MT_M; k++) {
        uint32_t y = (s[k] & 0x80000000U) | (s[k + 1] & 0x7fffffffU);
        s[k] = s[k + MT_M] ^ (y >> 1) ^ mag01[y & 1U];
    }
    for (; k < MT_N - 1; k++) {
        uint32_t y = (s[k] & 0x80000000U) | (s[k + 1] & 0x7fffffffU);
        s[k] = s[k + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1U];
    }
    uint32_t y = (s[MT_N - 1] & 0x80000000U) | (s[0] & 0x7fffffffU);
    s[MT_N - 1] = s[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1U];
    mt->index = 0;
}

uint32_t ssf_mt_next_u32(ssf_mt19937 *mt)
{
    if (mt->index >= MT_N) regenerate(mt);
    uint32_t y = mt->state[mt->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

/* random.getrandbits(k) for 1 <= k <= 64: 32-bit words, least significant
 * first, the last word keeping only its top bits. */
static uint64_t getrandbits(ssf_mt19937 *mt, int k)
{
    if (k <= 32) return ssf_mt_next_u32(mt) >> (32 - k);
    uint64_t low = ssf_mt_next_u32(mt);
    uint64_t high = ssf_mt_next_u32(mt) >> (64 - k);
    return low | (high << 32);
}

static int bit_length(uint64_t n)
{
    int k = 0;
    while (n) {
        k++;
        n >>= 1;
    }
    return k;
}

uint64_t ssf_mt_randbelow(ssf_mt19937 *mt, uint64_t n)
{
    int k = bit_length(n);
    uint64_t r = getrandbits(mt, k);
    while (r >= n)
        r = getrandbits(mt, k);
    return r;
}

int64_t ssf_mt_randint(ssf_mt19937 *mt, int64_t a, int64_t b)
{
    return a + (int64_t)ssf_mt_randbelow(mt, (uint64_t)(b - a) + 1);
}

void ssf_mt_shuffle(ssf_mt19937 *mt, size_t *x, size_t n)
{
    for (size_t i = n ? n - 1 : 0; i > 0; i--) {
        size_t j = (size_t)ssf_mt_randbelow(mt, (uint64_t)i + 1);
        size_t t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}
