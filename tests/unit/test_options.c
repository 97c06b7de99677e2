/* The option-table engine through the training table: every default is
 * valid, text/JSON/YAML round trips, and errors name the option and what it
 * accepts. */
#include <stdio.h>
#include <string.h>

#include "memloc/train.h"
#include "test_util.h"

static void test_defaults_and_roundtrip(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_train_config a = mloc_train_config_default(), b;
    assert_int_equal(a.batch_size, 256);
    assert_true(a.lr == 1e-3 && a.weight_decay == 1e-6 && a.temperature == 0.5);
    assert_int_equal(a.optimizer, 1); /* adam */
    /* every default parses back from its own text */
    for (int i = 0; i < mloc_train_options.n; i++) {
        char buf[MLOC_OPT_STR_MAX];
        b = mloc_train_config_default();
        assert_int_equal(mloc_options_set_index(ctx, &mloc_train_options, &b, i,
                                                mloc_options_get(&mloc_train_options, &a, i, buf, sizeof buf)),
                         MLOC_OK);
        assert_memory_equal(&a, &b, sizeof a);
    }
    assert_int_equal(mloc_train_config_set(ctx, &a, "batch-size", "64"), MLOC_OK);
    assert_int_equal(mloc_train_config_set(ctx, &a, "schedule", "cosine"), MLOC_OK);
    assert_int_equal(mloc_train_config_set(ctx, &a, "seed", "18446744073709551615"), MLOC_OK);
    assert_int_equal(mloc_train_config_set(ctx, &a, "data", "fmnist@0:10"), MLOC_OK);
    json_t *j = mloc_train_config_to_json(&a);
    b = mloc_train_config_default();
    assert_int_equal(mloc_train_config_from_json(ctx, &b, j), MLOC_OK);
    assert_memory_equal(&a, &b, sizeof a);
    json_decref(j);
    mloc_ctx_destroy(ctx);
}

static void test_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_train_config c = mloc_train_config_default();
    assert_int_equal(mloc_train_config_set(ctx, &c, "optimizer", "adagrad"), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "sgd|adam|adamw|lars"));
    assert_int_equal(mloc_train_config_set(ctx, &c, "epochs", "3.5"), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "epochs"));
    assert_int_equal(mloc_train_config_set(ctx, &c, "seed", "-1"), MLOC_ERR_CONFIG);
    assert_int_equal(mloc_train_config_set(ctx, &c, "bogus", "1"), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "known: data, indices"));
    assert_int_equal(mloc_train_config_check(ctx, &c), MLOC_ERR_CONFIG); /* no data */
    assert_non_null(strstr(mloc_ctx_error(ctx), "data"));
    mloc_ctx_destroy(ctx);
}

static void test_yaml(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("options");
    char path[4200];
    snprintf(path, sizeof path, "%s/c.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("# a comment\ndata: fmnist\nbatch-size: 128\ncompat_normalize_first: true\nlr: 3e-4\n", f);
    fclose(f);
    mloc_train_config c = mloc_train_config_default();
    assert_int_equal(mloc_train_config_load_yaml(ctx, &c, path), MLOC_OK);
    assert_string_equal(c.data, "fmnist");
    assert_int_equal(c.batch_size, 128);
    assert_int_equal(c.compat_normalize_first, 1);
    assert_true(c.lr == 3e-4);
    f = fopen(path, "w");
    fputs("data: fmnist\nepochs: many\n", f);
    fclose(f);
    assert_int_equal(mloc_train_config_load_yaml(ctx, &c, path), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "c.yaml:2"));
    f = fopen(path, "w");
    fputs("data: [a, b]\n", f);
    fclose(f);
    assert_int_equal(mloc_train_config_load_yaml(ctx, &c, path), MLOC_ERR_CONFIG);
    f = fopen(path, "w");
    fputs("data: 'unterminated\n", f);
    fclose(f);
    assert_int_equal(mloc_train_config_load_yaml(ctx, &c, path), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "c.yaml:"));
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_defaults_and_roundtrip), cmocka_unit_test(test_errors),
                                       cmocka_unit_test(test_yaml)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
