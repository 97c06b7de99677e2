/* Philox4x32-10 against the Random123 known-answer vectors, and the
 * properties the rest of memloc relies on: streams are independent pure
 * functions of (seed, stream, position), seek/tell round-trip. */
#include <math.h>
#include <string.h>

#include "memloc/rng.h"
#include "test_util.h"

static void test_philox_kat(void **state) {
    (void)state;
    /* Random123 kat_vectors: philox4x32 10 rounds */
    uint32_t out[4];
    uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
    mloc_philox4x32_10(out, c0, k0);
    assert_int_equal(out[0], 0x6627e8d5u);
    assert_int_equal(out[1], 0xe169c58du);
    assert_int_equal(out[2], 0xbc57ac4cu);
    assert_int_equal(out[3], 0x9b00dbd8u);
    uint32_t c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    uint32_t k1[2] = {0xffffffffu, 0xffffffffu};
    mloc_philox4x32_10(out, c1, k1);
    assert_int_equal(out[0], 0x408f276du);
    assert_int_equal(out[1], 0x41c83b0eu);
    assert_int_equal(out[2], 0xa20bc7c6u);
    assert_int_equal(out[3], 0x6d5451fdu);
    uint32_t c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    uint32_t k2[2] = {0xa4093822u, 0x299f31d0u};
    mloc_philox4x32_10(out, c2, k2);
    assert_int_equal(out[0], 0xd16cfe09u);
    assert_int_equal(out[1], 0x94fdccebu);
    assert_int_equal(out[2], 0x5001e420u);
    assert_int_equal(out[3], 0x24126ea1u);
}

static void test_seek_tell(void **state) {
    (void)state;
    mloc_rng a, b;
    mloc_rng_init_tag(&a, 7, "aug", 1, 2, 3);
    for (int i = 0; i < 13; i++) mloc_rng_u32(&a);
    uint64_t pos = mloc_rng_tell(&a);
    assert_int_equal(pos, 13);
    uint32_t next[10];
    for (int i = 0; i < 10; i++) next[i] = mloc_rng_u32(&a);
    mloc_rng_init_tag(&b, 7, "aug", 1, 2, 3);
    mloc_rng_seek(&b, pos);
    for (int i = 0; i < 10; i++) assert_int_equal(mloc_rng_u32(&b), next[i]);
}

static void test_streams_differ(void **state) {
    (void)state;
    mloc_rng a, b, c;
    mloc_rng_init_tag(&a, 7, "aug", 1, 2, 3);
    mloc_rng_init_tag(&b, 7, "aug", 1, 2, 4);
    mloc_rng_init_tag(&c, 8, "aug", 1, 2, 3);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 64; i++) {
        uint32_t x = mloc_rng_u32(&a), y = mloc_rng_u32(&b), z = mloc_rng_u32(&c);
        same_ab += x == y;
        same_ac += x == z;
    }
    assert_true(same_ab < 2 && same_ac < 2);
}

static void test_uniform_moments(void **state) {
    (void)state;
    mloc_rng r;
    mloc_rng_init(&r, 1, 99);
    const int n = 200000;
    double s = 0, s2 = 0, ns = 0, ns2 = 0;
    int64_t hist[6] = {0};
    for (int i = 0; i < n; i++) {
        double u = mloc_rng_uniform(&r);
        assert_true(u >= 0 && u < 1);
        s += u;
        s2 += u * u;
        double z = mloc_rng_normal(&r);
        ns += z;
        ns2 += z * z;
        hist[mloc_rng_int(&r, 0, 5)]++;
    }
    /* 5 standard errors */
    assert_true(fabs(s / n - 0.5) < 5 * sqrt(1.0 / 12 / n));
    assert_true(fabs(s2 / n - 1.0 / 3) < 0.005);
    assert_true(fabs(ns / n) < 5 / sqrt(n));
    assert_true(fabs(ns2 / n - 1) < 0.02);
    for (int k = 0; k < 6; k++) assert_true(fabs(hist[k] / (double)n - 1.0 / 6) < 0.005);
}

static void test_permutation(void **state) {
    (void)state;
    mloc_rng r;
    mloc_rng_init(&r, 3, 4);
    int64_t p[1000];
    mloc_rng_permutation(&r, p, 1000);
    char seen[1000] = {0};
    int fixed = 0;
    for (int i = 0; i < 1000; i++) {
        assert_true(p[i] >= 0 && p[i] < 1000 && !seen[p[i]]);
        seen[p[i]] = 1;
        fixed += p[i] == i;
    }
    assert_true(fixed < 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),
        cmocka_unit_test(test_seek_tell),
        cmocka_unit_test(test_streams_differ),
        cmocka_unit_test(test_uniform_moments),
        cmocka_unit_test(test_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
