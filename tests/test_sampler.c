/*
 * test_sampler.c - Philox4x32-10 against the Random123 known-answer
 * vectors, and the token choice: greedy ties and padding, then chi-square
 * tests of the sampled distribution under temperature, top-k, top-p and
 * min-p over fixed logits.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sampler.h"

/* Random123's kat_vectors, the three "philox4x32 10" lines. */
static void test_philox_known_answers(void **state)
{
    (void)state;
    static const struct {
        uint32_t ctr[4], key[2], want[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        ssf_philox4x32(kat[i].ctr, kat[i].key, out);
        for (int k = 0; k < 4; k++)
            assert_int_equal(out[k], kat[i].want[k]);
    }
}

static void test_uniform_range_and_streams(void **state)
{
    (void)state;
    double sum = 0;
    int equal = 0;
    for (uint64_t step = 0; step < 100000; step++) {
        double u = ssf_philox_uniform(42, step);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        if (u == ssf_philox_uniform(43, step)) equal++;
        assert_true(u == ssf_philox_uniform(42, step)); /* stateless */
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.005);
    assert_int_equal(equal, 0);
    /* seed 0, step 0 is Random123's all-zero vector, its first two words
     * made a 53-bit double as numpy does: (a >> 5) * 2^26 + (b >> 6) */
    assert_true(ssf_philox_uniform(0, 0) ==
                ((double)(0x6627e8d5u >> 5) * 67108864.0 + (double)(0xe169c58du >> 6)) /
                    9007199254740992.0);
    /* the high halves of the seed and of the step count: 64-bit seeds of
     * two samples that share their low 32 bits are two streams */
    for (uint64_t step = 0; step < 1000; step++) {
        assert_true(ssf_philox_uniform(42, step) != ssf_philox_uniform(42 | (7ULL << 32), step));
        assert_true(ssf_philox_uniform(42, step) != ssf_philox_uniform(42, step | (1ULL << 32)));
    }
}

static void test_greedy(void **state)
{
    (void)state;
    ssf_sampler_scratch s = {0};
    float logits[6] = {1, 3, 3, -INFINITY, NAN, 50};
    ssf_sampler_params greedy = {.temperature = 0};
    /* ties go to the lowest id; row 5 is padding outside n_valid */
    assert_int_equal(ssf_sample(logits, 5, &greedy, 1, 0, &s), 1);
    assert_int_equal(ssf_sample(logits, 6, &greedy, 1, 0, &s), 5);
    ssf_sampler_params top1 = {.temperature = 1, .top_k = 1, .top_p = 1};
    assert_int_equal(ssf_sample(logits, 5, &top1, 1, 0, &s), 1);
    float dead[3] = {-INFINITY, NAN, -INFINITY};
    assert_int_equal(ssf_sample(dead, 3, &greedy, 1, 0, &s), -1);
    ssf_sampler_params t1 = {.temperature = 1, .top_p = 1};
    assert_int_equal(ssf_sample(dead, 3, &t1, 1, 0, &s), -1);
    ssf_sampler_scratch_free(&s);
}

#define N_TOK 8
#define DRAWS 40000

static const float base_logits[N_TOK] = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 3.0f};

/* Chi-square statistic of counts against probabilities `p` (zero-probability
 * tokens must never appear). */
static double chi_square(const int *counts, const double *p, int n, int draws)
{
    double chi = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0) {
            assert_int_equal(counts[i], 0);
            continue;
        }
        double e = p[i] * draws;
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

/* Draws DRAWS tokens (the first of many seeds, and many steps of one seed)
 * and checks them against `want` with a chi-square test at p = 0.001. */
static void check_distribution(const ssf_sampler_params *params, const double *want)
{
    /* 0.999 quantiles of chi-square with 1..7 degrees of freedom */
    static const double crit[8] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
    ssf_sampler_scratch s = {0};
    int by_seed[N_TOK] = {0}, by_step[N_TOK] = {0};
    for (int i = 0; i < DRAWS; i++) {
        int32_t a = ssf_sample(base_logits, N_TOK, params, (uint64_t)i * 7919u + 1, 0, &s);
        int32_t b = ssf_sample(base_logits, N_TOK, params, 99, (uint64_t)i, &s);
        assert_true(a >= 0 && a < N_TOK && b >= 0 && b < N_TOK);
        by_seed[a]++;
        by_step[b]++;
    }
    int support = 0;
    for (int i = 0; i < N_TOK; i++)
        support += want[i] > 0;
    int df = support - 1;
    if (df == 0) {
        for (int i = 0; i < N_TOK; i++)
            assert_int_equal(by_seed[i], want[i] > 0 ? DRAWS : 0);
    } else {
        assert_true(chi_square(by_seed, want, N_TOK, DRAWS) < crit[df]);
        assert_true(chi_square(by_step, want, N_TOK, DRAWS) < crit[df]);
    }
    ssf_sampler_scratch_free(&s);
}

/* softmax(logits / t) restricted to `keep` (all when NULL), renormalized. */
static void expected(double t, const int *keep, double *p)
{
    double sum = 0;
    for (int i = 0; i < N_TOK; i++) {
        p[i] = (!keep || keep[i]) ? exp(base_logits[i] / t) : 0;
        sum += p[i];
    }
    for (int i = 0; i < N_TOK; i++)
        p[i] /= sum;
}

static void test_temperature(void **state)
{
    (void)state;
    double p[N_TOK];
    ssf_sampler_params t1 = {.temperature = 1.0, .top_p = 1.0};
    expected(1.0, NULL, p);
    check_distribution(&t1, p);
    ssf_sampler_params t06 = {.temperature = 0.6, .top_p = 1.0};
    expected(0.6, NULL, p);
    check_distribution(&t06, p);
}

static void test_top_k(void **state)
{
    (void)state;
    double p[N_TOK];
    int keep[N_TOK] = {1, 1, 0, 0, 0, 0, 0, 1}; /* ids 7, 0, 1 are the three largest */
    ssf_sampler_params k3 = {.temperature = 1.0, .top_k = 3, .top_p = 1.0};
    expected(1.0, keep, p);
    check_distribution(&k3, p);
}

/* At T = 1 the probabilities (sorted) are 0.525, 0.193, 0.117, 0.071, ...:
 * top_p = 0.75 keeps the first three (0.525 + 0.193 < 0.75 <= + 0.117). */
static void test_top_p(void **state)
{
    (void)state;
    double p[N_TOK], full[N_TOK];
    expected(1.0, NULL, full);
    assert_true(full[7] + full[0] < 0.75 && full[7] + full[0] + full[1] >= 0.75);
    int keep[N_TOK] = {1, 1, 0, 0, 0, 0, 0, 1};
    ssf_sampler_params tp = {.temperature = 1.0, .top_p = 0.75};
    expected(1.0, keep, p);
    check_distribution(&tp, p);
    /* a tiny top_p keeps only the most likely token */
    ssf_sampler_params tiny = {.temperature = 1.0, .top_p = 0.01};
    int only[N_TOK] = {0, 0, 0, 0, 0, 0, 0, 1};
    expected(1.0, only, p);
    check_distribution(&tiny, p);
}

/* top_p applies to what top_k kept, renormalized: over ids 7, 0, 1 the
 * shares are 0.629, 0.231, 0.140, so top_p = 0.75 keeps 7 and 0 (over all
 * ids it would keep 1 too, as test_top_p shows). */
static void test_top_p_after_top_k(void **state)
{
    (void)state;
    double p[N_TOK];
    int keep[N_TOK] = {1, 0, 0, 0, 0, 0, 0, 1};
    ssf_sampler_params kp = {.temperature = 1.0, .top_k = 3, .top_p = 0.75};
    expected(1.0, keep, p);
    check_distribution(&kp, p);
}

/* Equal weights are ranked by id, lowest first, so that a cut among ties
 * keeps the same ids on every device: top_k = 2 and top_p = 0.5 over four
 * equal logits keep ids 0 and 1, and both are drawn. */
static void test_ties_by_id(void **state)
{
    (void)state;
    static const float flat[4] = {0, 0, 0, 0};
    ssf_sampler_params by_k = {.temperature = 1.0, .top_k = 2, .top_p = 1.0};
    ssf_sampler_params by_p = {.temperature = 1.0, .top_p = 0.5};
    ssf_sampler_scratch s = {0};
    int seen_k[4] = {0}, seen_p[4] = {0};
    for (uint64_t i = 0; i < 2000; i++) {
        seen_k[ssf_sample(flat, 4, &by_k, i + 1, 0, &s)]++;
        seen_p[ssf_sample(flat, 4, &by_p, i + 1, 0, &s)]++;
    }
    ssf_sampler_scratch_free(&s);
    assert_true(seen_k[0] > 0 && seen_k[1] > 0 && seen_k[2] == 0 && seen_k[3] == 0);
    assert_true(seen_p[0] > 0 && seen_p[1] > 0 && seen_p[2] == 0 && seen_p[3] == 0);
}

/* min_p = 0.2 keeps tokens with p >= 0.2 p_max, i.e. logit >= 3 + ln 0.2 =
 * 1.39: ids 7, 0, 1. */
static void test_min_p(void **state)
{
    (void)state;
    double p[N_TOK];
    int keep[N_TOK] = {1, 1, 0, 0, 0, 0, 0, 1};
    ssf_sampler_params mp = {.temperature = 1.0, .top_p = 1.0, .min_p = 0.2};
    expected(1.0, keep, p);
    check_distribution(&mp, p);
    /* Past 1 (the library takes any double) it keeps the largest alone;
     * it kept none, and the draw read before its array. */
    int only[N_TOK] = {0, 0, 0, 0, 0, 0, 0, 1};
    ssf_sampler_params over = {.temperature = 1.0, .top_p = 1.0, .min_p = 1.5};
    expected(1.0, only, p);
    check_distribution(&over, p);
}

/* A top_p under 1 / n over nearly equal logits keeps the heaviest token:
 * the early filter's cutoff once passed every weight and the draw read
 * before its array. */
static void test_top_p_flat(void **state)
{
    (void)state;
    enum { N = 512 };
    static float logits[N];
    for (int i = 0; i < N; i++)
        logits[i] = i == 7 ? 1e-3f : 0;
    ssf_sampler_scratch s = {0};
    ssf_sampler_params tiny = {.temperature = 1.0, .top_p = 1e-9};
    for (int i = 0; i < 200; i++)
        assert_int_equal(ssf_sample(logits, N, &tiny, (uint64_t)i, 0, &s), 7);
    ssf_sampler_scratch_free(&s);
}

/* Padded rows (at or above n_valid) never come out, even when they carry
 * the largest logits. */
static void test_padding_never_sampled(void **state)
{
    (void)state;
    float logits[10] = {0, 0, 0, 0, 0, 0, 0, 0, 100, 100};
    ssf_sampler_scratch s = {0};
    ssf_sampler_params t1 = {.temperature = 1.0, .top_p = 1.0};
    for (int i = 0; i < 2000; i++)
        assert_true(ssf_sample(logits, 8, &t1, (uint64_t)i, 3, &s) < 8);
    ssf_sampler_scratch_free(&s);
}

/* ---- the filters by their definition, sorted by qsort ---------------------- */

typedef struct ranked {
    float w;
    int32_t id;
} ranked;

static int heavier_first(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->w != y->w) return x->w > y->w ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static double mass_of(const ranked *r, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += r[i].w;
    return sum;
}

/* ssf_sample's draw the slow way: top-k and top-p over the whole row
 * sorted heaviest first by qsort (no early cut), then min-p and the walk,
 * in id order where no cut sorted the row; its sums are taken in the
 * order ssf_sample takes them, so the ids must be equal. */
static int32_t reference_sample(const float *x, int n, const ssf_sampler_params *p, uint64_t seed,
                                uint64_t step, ranked *r)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && x[i] > max) max = x[i];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) r[k++] = (ranked){(float)exp(((double)x[i] - max) / p->temperature), i};
    if (p->top_k > 0 && p->top_k < k) {
        qsort(r, (size_t)k, sizeof *r, heavier_first);
        k = (int)p->top_k;
    }
    if (p->top_p < 1.0 && k > 1) {
        double total = mass_of(r, k), mass = 0;
        qsort(r, (size_t)k, sizeof *r, heavier_first); /* sorted again: the same order */
        for (int i = 0; i < k; i++) {
            mass += r[i].w;
            if (mass >= p->top_p * total) {
                k = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        float heaviest = 0;
        for (int i = 0; i < k; i++)
            heaviest = r[i].w > heaviest ? r[i].w : heaviest;
        int kept = 0;
        for (int i = 0; i < k; i++)
            if (r[i].w >= (float)p->min_p * heaviest) r[kept++] = r[i];
        k = kept;
    }
    double target = ssf_philox_uniform(seed, step) * mass_of(r, k), mass = 0;
    for (int i = 0; i < k; i++) {
        mass += r[i].w;
        if (target < mass) return r[i].id;
    }
    return r[k - 1].id;
}

/* Rows of 4,099 ids: flat (every weight tied), quantized (ties in every
 * range of weights), a wide spread (weights that underflow to 0 and
 * subnormals) and a trained model's shape (a few ids far above the rest),
 * each under cuts that keep most, some and few ids: the sampler's sort
 * must give the order qsort gives, ties by id, or the drawn ids differ. */
static void test_draws_match_a_sorted_reference(void **state)
{
    (void)state;
    enum { N = 4099, SEEDS = 12 };
    static float x[N];
    static ranked r[N];
    static const ssf_sampler_params params[] = {
        {.temperature = 1.0, .top_p = 1.0},
        {.temperature = 0.6, .top_p = 0.95},
        {.temperature = 0.7, .top_p = 0.5, .top_k = 40},
        {.temperature = 1.3, .top_p = 0.999, .min_p = 0.02},
        {.temperature = 0.05, .top_p = 0.9},
        {.temperature = 1.0, .top_p = 1.0, .top_k = 2500},
    };
    ssf_sampler_scratch s = {0};
    ssf_sampler_kept kept = {0};
    uint32_t lcg = 12345;
    for (int shape = 0; shape < 4; shape++) {
        for (int i = 0; i < N; i++) {
            lcg = lcg * 1664525u + 1013904223u;
            double u = (lcg >> 8) / 16777216.0;
            x[i] = shape == 0   ? 0.0f
                   : shape == 1 ? (float)floor(u * 12) * 0.25f
                   : shape == 2 ? (float)(u * 160 - 150)
                                : (float)(u * 3 + (i % 211 == 0 ? 20 : 0));
        }
        for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
            /* the row kept once (into the buffers the last keep left) draws the same */
            ssf_sampler_keep(x, N, &params[pi], &s, &kept);
            for (uint64_t step = 1; step <= SEEDS; step++) {
                uint64_t seed = step * 7919u + (uint64_t)shape;
                int32_t got = ssf_sample(x, N, &params[pi], seed, step, &s);
                int32_t from_kept = ssf_sample_kept(&kept, seed, step);
                int32_t want = reference_sample(x, N, &params[pi], seed, step, r);
                if (got != want || from_kept != want)
                    fail_msg("shape %d, params %zu, seed %llu: drew %d and %d kept, the reference "
                             "%d",
                             shape, pi, (unsigned long long)seed, got, from_kept, want);
            }
        }
    }
    ssf_sampler_kept_free(&kept);
    ssf_sampler_scratch_free(&s);
}

/* A kept row draws what ssf_sample draws where the choice is greedy (by
 * temperature 0 or top-k 1) and where no logit is finite (-1). */
static void test_kept_greedy_and_empty(void **state)
{
    (void)state;
    static const float x[5] = {0.5f, 3.0f, 3.0f, -1.0f, 2.0f};
    static const float none[3] = {-INFINITY, NAN, INFINITY};
    ssf_sampler_params greedy = {.temperature = 0, .top_p = 1.0};
    ssf_sampler_params top1 = {.temperature = 0.8, .top_p = 1.0, .top_k = 1};
    ssf_sampler_params t1 = {.temperature = 1.0, .top_p = 1.0};
    ssf_sampler_scratch s = {0};
    ssf_sampler_kept kept = {0};
    ssf_sampler_keep(x, 5, &greedy, &s, &kept);
    assert_int_equal(ssf_sample_kept(&kept, 3, 0), 1); /* the lowest id of the maxima */
    ssf_sampler_keep(x, 5, &top1, &s, &kept);
    assert_int_equal(ssf_sample_kept(&kept, 4, 9), 1);
    ssf_sampler_keep(none, 3, &t1, &s, &kept);
    assert_int_equal(kept.n, 0);
    assert_int_equal(ssf_sample_kept(&kept, 5, 0), -1);
    assert_int_equal(ssf_sample(none, 3, &t1, 5, 0, &s), -1);
    ssf_sampler_keep(x, 5, &t1, &s, &kept); /* and again after none */
    int seen[5] = {0};
    for (uint64_t seed = 0; seed < 2000; seed++) {
        int32_t t = ssf_sample_kept(&kept, seed, 0);
        assert_int_equal(t, ssf_sample(x, 5, &t1, seed, 0, &s));
        seen[t]++;
    }
    for (int i = 0; i < 5; i++)
        assert_true(seen[i] > 0);
    ssf_sampler_kept_free(&kept);
    ssf_sampler_scratch_free(&s);
}

/* ---- every digit of the sort's key orders ----------------------------------- */

/* The weight ssf_sample gives a logit x at temperature 1 in a row whose
 * largest logit is 0. */
static float weight_of(float x)
{
    return (float)exp((double)x);
}

static uint32_t bits_of(float w)
{
    uint32_t b;
    memcpy(&b, &w, sizeof b);
    return b;
}

/* Logits *light < *heavy < 0 whose weights' bits differ only within the
 * radix sort's digit `digit` (bits 0-10, 11-21, 22-31), the heavier one
 * more by 1 in that digit's lowest bit. */
static void pair_differing_in_digit(int digit, float *light, float *heavy)
{
    int shift = 11 * digit;
    uint32_t mask = digit < 2 ? 0x7ffu << shift : 0xffffffffu << shift;
    for (int k = 0; k < 4096; k++) {
        float xa = -0.5f - 1e-3f * (float)k;
        uint32_t ba = bits_of(weight_of(xa)), bt = ba + (1u << shift);
        if ((ba ^ bt) & ~mask) continue; /* the digit would carry out */
        float want;
        memcpy(&want, &bt, sizeof want);
        if (want >= 1.0f) continue;
        float xb = nextafterf((float)log((double)want), -INFINITY);
        for (int i = 0; i < 48; i++) {
            if (bits_of(weight_of(xb)) == bt) {
                *light = xa;
                *heavy = xb;
                return;
            }
            xb = nextafterf(xb, INFINITY);
        }
    }
    fail_msg("no pair of logits whose weights differ only in digit %d", digit);
}

/* The sort ranks by every digit of the weights' bits: for each digit, a
 * row holds 0 (weight 1) at id 0, a lighter id 3 and a heavier id 7 whose
 * weights differ only in that digit, and the rest far below.  Top-k 2, or
 * a top-p whose cut falls after the second heaviest, keeps ids 0 and 7:
 * id 3 is never drawn (a sort that ignored the digit would rank 3 and 7
 * as tied, by id, and keep 3). */
static void test_sort_orders_every_digit(void **state)
{
    (void)state;
    enum { N = 64, LIGHT = 3, HEAVY = 7 };
    static const ssf_sampler_params params[] = {
        {.temperature = 1.0, .top_p = 1.0, .top_k = 2},
        {.temperature = 1.0, .top_p = 0.7},
    };
    ssf_sampler_scratch s = {0};
    ssf_sampler_kept kept = {0};
    for (int digit = 0; digit < 3; digit++) {
        float x[N];
        for (int i = 0; i < N; i++)
            x[i] = -40.0f;
        x[0] = 0.0f;
        pair_differing_in_digit(digit, &x[LIGHT], &x[HEAVY]);
        assert_true(weight_of(x[LIGHT]) < weight_of(x[HEAVY]));
        for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
            ssf_sampler_keep(x, N, &params[pi], &s, &kept);
            int seen[N] = {0};
            for (uint64_t seed = 0; seed < 400; seed++) {
                int32_t t = ssf_sample(x, N, &params[pi], seed, 0, &s);
                assert_int_equal(ssf_sample_kept(&kept, seed, 0), t);
                assert_true(t >= 0 && t < N);
                seen[t]++;
            }
            if (seen[LIGHT] || !seen[HEAVY] || !seen[0] || seen[0] + seen[HEAVY] != 400)
                fail_msg("digit %d, params %zu: drew id 0 %d times, id %d %d, id %d %d", digit, pi,
                         seen[0], LIGHT, seen[LIGHT], HEAVY, seen[HEAVY]);
        }
    }
    ssf_sampler_kept_free(&kept);
    ssf_sampler_scratch_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_uniform_range_and_streams),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_top_p_after_top_k),
        cmocka_unit_test(test_ties_by_id),
        cmocka_unit_test(test_top_p_flat),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_padding_never_sampled),
        cmocka_unit_test(test_draws_match_a_sorted_reference),
        cmocka_unit_test(test_kept_greedy_and_empty),
        cmocka_unit_test(test_sort_orders_every_digit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
