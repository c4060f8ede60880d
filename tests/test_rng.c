/*
 * test_rng.c - CPython MT19937 reproduction: raw words, getrandbits over 32
 * bits, randint, shuffle, and the reference vectors in
 * ../shared/cases/rng_reference.json (GPQA letters, document orders).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ssfteval/rng.h"
#include "test-support.h"

/* Vectors printed by CPython 3.11: random.seed(S); random.getrandbits(32). */
static void test_raw_words(void **state)
{
    (void)state;
    static const struct {
        uint64_t seed;
        uint32_t words[3];
    } cases[] = {
        {1234, {4150886329U, 3342196574U, 1892932127U}},
        {0, {3626764237U, 1654615998U, 3255389356U}},
        {(1ULL << 40) + 5, {2166296868U, 2220160828U, 1153647273U}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssf_mt19937 mt;
        ssf_mt_seed(&mt, cases[i].seed);
        for (int k = 0; k < 3; k++)
            assert_int_equal(ssf_mt_next_u32(&mt), cases[i].words[k]);
    }
}

/* random.seed(7); [randrange(2**48) for _ in range(2)], randint(0, 10**12),
 * randint(5, 2**40): _randbelow over more than 32 bits (two words). */
static void test_wide_randint(void **state)
{
    (void)state;
    ssf_mt19937 mt;
    ssf_mt_seed(&mt, 7);
    assert_int_equal(ssf_mt_randbelow(&mt, 1ULL << 48), 222265205460279ULL);
    assert_int_equal(ssf_mt_randbelow(&mt, 1ULL << 48), 27181348791376ULL);
    assert_int_equal(ssf_mt_randint(&mt, 0, 1000000000000LL), 902254243635LL);
    assert_int_equal(ssf_mt_randint(&mt, 5, 1LL << 40), 105380810800LL);
}

static void test_shuffle_small(void **state)
{
    (void)state;
    ssf_mt19937 mt;
    size_t x[10], want[10] = {7, 2, 0, 8, 5, 1, 4, 3, 9, 6};
    for (size_t i = 0; i < 10; i++)
        x[i] = i;
    ssf_mt_seed(&mt, 99);
    ssf_mt_shuffle(&mt, x, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(x[i], want[i]);
}

static json_t *load_reference(void)
{
    char *path = shared_path("cases/rng_reference.json");
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    free(path);
    assert_non_null(ref);
    return ref;
}

static void test_gpqa_letters(void **state)
{
    (void)state;
    json_t *ref = load_reference();
    const char *want =
        json_string_value(json_object_get(ref, "gpqa_gold_letters_seed1234_first198"));
    assert_non_null(want);
    assert_int_equal(strlen(want), 198);
    ssf_mt19937 mt;
    ssf_mt_seed(&mt, 1234);
    for (size_t i = 0; i < 198; i++) {
        char letter = "ABCD"[ssf_mt_randint(&mt, 0, 3)];
        assert_int_equal(letter, want[i]);
    }
    json_decref(ref);
}

static void check_order(json_t *ref, const char *key, size_t n)
{
    json_t *want = json_object_get(ref, key);
    assert_int_equal(json_array_size(want), n);
    size_t *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = i;
    ssf_mt19937 mt;
    ssf_mt_seed(&mt, 42);
    ssf_mt_shuffle(&mt, x, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(x[i], json_integer_value(json_array_get(want, i)));
    free(x);
}

static void test_doc_orders(void **state)
{
    (void)state;
    json_t *ref = load_reference();
    check_order(ref, "doc_order_Random42_shuffle_n30", 30);
    check_order(ref, "doc_order_Random42_shuffle_n198", 198);
    check_order(ref, "doc_order_Random42_shuffle_n500", 500);
    json_decref(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_words),     cmocka_unit_test(test_wide_randint),
        cmocka_unit_test(test_shuffle_small), cmocka_unit_test(test_gpqa_letters),
        cmocka_unit_test(test_doc_orders),
    };
    if (!shared_available()) return 77;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
