/* shuffle[:N[:SEED]] index lists: a seeded permutation prefix, in permutation
 * order (so an in-order split of it is random), named by itself in specs. */
#include <stdlib.h>
#include <string.h>

#include "memloc/data.h"
#include "test_util.h"

static void test_shuffle(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    int64_t *a, *b, *c, na, nb, nc;
    assert_int_equal(mloc_indices_parse(ctx, "shuffle:50:7", 1000, &a, &na), MLOC_OK);
    assert_int_equal(mloc_indices_parse(ctx, "shuffle:50:7", 1000, &b, &nb), MLOC_OK);
    assert_int_equal(mloc_indices_parse(ctx, "shuffle:50:8", 1000, &c, &nc), MLOC_OK);
    assert_int_equal(na, 50);
    assert_memory_equal(a, b, 50 * sizeof *a);
    assert_true(memcmp(a, c, 50 * sizeof *a) != 0);
    char seen[1000] = {0};
    int ascending = 1;
    for (int i = 0; i < 50; i++) {
        assert_true(a[i] >= 0 && a[i] < 1000 && !seen[a[i]]);
        seen[a[i]] = 1;
        if (i && a[i] < a[i - 1]) ascending = 0;
    }
    assert_false(ascending); /* permutation order, not sorted */
    free(a);
    free(b);
    free(c);
    assert_int_equal(mloc_indices_parse(ctx, "shuffle", 10, &a, &na), MLOC_OK);
    assert_int_equal(na, 10);
    free(a);
    assert_int_equal(mloc_indices_parse(ctx, "shuffle:11", 10, &a, &na), MLOC_ERR_USAGE);
    assert_int_equal(mloc_indices_parse(ctx, "shuffle:x", 10, &a, &na), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "shuffle[:N[:SEED]]"));

    /* a class-sorted dataset: a shuffled prefix covers the classes */
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, "synthetic:1000:8x8x1:10@shuffle:200:1", NULL), MLOC_OK);
    assert_int_equal(d.n, 200);
    assert_non_null(strstr(d.spec, "@shuffle:200:1"));
    int64_t counts[10];
    mloc_dataset_class_counts(&d, counts);
    for (int k = 0; k < 10; k++) assert_true(counts[k] > 5);
    mloc_dataset_free(&d);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shuffle)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
