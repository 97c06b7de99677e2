/* The paper's ResNet9 as built by memloc: structure (SPEC.md section 5), and
 * the oneDNN backend against the reference backend on every output, every
 * parameter gradient, the running statistics and every tap. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/model.h"
#include "memloc/nn.h"
#include "test_util.h"

static void test_resnet9_structure(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model *m;
    mloc_model_config cfg = mloc_model_config_default();
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_param_count(m, 1), 1644672);
    /* encoder: 8 blocks x 7 tensors */
    int enc = 0;
    for (int i = 0; i < m->table.n; i++) enc += m->table.t[i].group == MLOC_GROUP_ENCODER;
    assert_int_equal(enc, 56);
    static const struct { const char *name; int c, h, w; } taps[] = {
        {"prep", 32, 16, 16}, {"layer1_head", 64, 8, 8}, {"layer1_residual1", 64, 8, 8},
        {"layer1_residual2", 64, 8, 8}, {"res1", 64, 8, 8}, {"layer2", 128, 4, 4},
        {"layer3_head", 256, 2, 2}, {"layer3_residual1", 256, 2, 2},
        {"layer3_residual2", 256, 2, 2}, {"res2", 256, 2, 2}};
    assert_int_equal(m->n_taps, 10);
    int units = 0;
    for (int t = 0; t < 10; t++) {
        assert_string_equal(m->taps[t].name, taps[t].name);
        const mloc_value *v = &m->values[m->taps[t].value];
        assert_int_equal(v->c, taps[t].c);
        assert_int_equal(v->h, taps[t].h);
        assert_int_equal(v->w, taps[t].w);
        if (m->taps[t].module >= 0) units += m->taps[t].units;
    }
    assert_int_equal(units, 1120);
    const char *names[] = {"prep.conv.weight", "prep.conv.bias", "prep.batch.weight",
                           "prep.batch.bias", "prep.batch.running_mean", "prep.batch.running_var",
                           "prep.batch.num_batches_tracked",
                           "layer3_residual2.batch.num_batches_tracked", "head.0.weight",
                           "head.0.bias", "head.2.weight", "head.2.bias"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        assert_true(mloc_table_find(&m->table, names[i]) >= 0);
    int w = mloc_table_find(&m->table, "layer1_head.conv.weight");
    assert_int_equal(m->table.t[w].shape[0], 64);
    assert_int_equal(m->table.t[w].shape[1], 32);
    int h0 = mloc_table_find(&m->table, "head.0.weight");
    assert_int_equal(m->table.t[h0].shape[1], 1024);
    assert_int_equal(m->table.t[h0].group, MLOC_GROUP_HEAD);
    mloc_model_free(m);

    /* Fashion-MNIST: 1 input channel, width multiplier */
    cfg.in_channels = 1;
    cfg.width = 0.5;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    w = mloc_table_find(&m->table, "prep.conv.weight");
    assert_int_equal(m->table.t[w].shape[0], 16);
    assert_int_equal(m->table.t[w].shape[1], 1);
    mloc_model_free(m);

    cfg.image_h = cfg.image_w = 8;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "too small"));
    mloc_ctx_destroy(ctx);
}

/* PyTorch's default init: bounds 1/sqrt(fan_in), BN 1/0, reproducible. */
static void test_init(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *a, *b;
    mloc_model_config cfg = mloc_model_config_default();
    assert_int_equal(mloc_model_create(ctx, &a, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_create(ctx, &b, &cfg), MLOC_OK);
    assert_memory_equal(a->store.param, b->store.param, a->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    int w = mloc_table_find(&a->table, "layer2.conv.weight");
    const float *p = mloc_store_ptr(&a->store, &a->table, w);
    double bound = 1 / sqrt(64 * 9.0), mx = 0, s2 = 0;
    for (int64_t i = 0; i < a->table.t[w].numel; i++) {
        mx = fmax(mx, fabs(p[i]));
        s2 += p[i] * p[i];
    }
    assert_true(mx <= bound && mx > 0.99 * bound);
    /* U(-b, b) has variance b^2/3 */
    assert_true(fabs(s2 / a->table.t[w].numel / (bound * bound / 3) - 1) < 0.02);
    const float *g = mloc_store_ptr(&a->store, &a->table, mloc_table_find(&a->table, "layer2.batch.weight"));
    const float *rv = mloc_store_ptr(&a->store, &a->table, mloc_table_find(&a->table, "layer2.batch.running_var"));
    assert_true(g[0] == 1.0f && g[127] == 1.0f && rv[5] == 1.0f);
    mloc_model_init_params(b, 99);
    assert_true(memcmp(a->store.param, b->store.param, 4096) != 0);
    mloc_model_free(a);
    mloc_model_free(b);
    mloc_ctx_destroy(ctx);
}

static void test_dnnl_matches_ref(void **state) {
    (void)state;
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.5;
    test_compare_backends(&cfg, 6, 2, 1e-3);
}

static void test_dnnl_matches_ref_gray(void **state) {
    (void)state;
    mloc_model_config cfg = mloc_model_config_default();
    cfg.in_channels = 1;
    cfg.width = 0.25;
    test_compare_backends(&cfg, 4, 2, 1e-3);
}

/* A partial eval forward computes early taps without running the rest, and
 * a smaller eval batch than planned gives the same rows. */
static void test_partial_and_small_batch(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.5;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_plan(ctx, m, 8), MLOC_OK);
    float x[8 * 3 * 32 * 32];
    test_fill_uniform_f32(x, 8 * 3 * 32 * 32, 0, 1, 3);
    int tap = m->taps[mloc_model_find_tap(m, "layer1_head")].value;
    int64_t n = mloc_model_value_numel(m, tap);
    float *full = malloc(8 * n * sizeof(float)), *part = malloc(8 * n * sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, m, x, 8, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, tap, full), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, m, x, 3, MLOC_MODE_EVAL, tap), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, tap, part), MLOC_OK);
    assert_memory_equal(full, part, 3 * n * sizeof(float));
    /* res2 was not computed by the partial forward */
    int res2 = m->taps[mloc_model_find_tap(m, "res2")].value;
    assert_int_equal(mloc_model_read(ctx, m, res2, part), MLOC_ERR_USAGE);
    free(full);
    free(part);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* Switching between training batches and eval batches of other sizes (the
 * oneDNN backend plans its training programs for the training batch and its
 * eval program for the eval capacity) gives the same activations as a fresh
 * model with the same parameters and statistics. */
static void test_mixed_batches(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.25;
    mloc_model *m, *fresh;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_plan(ctx, m, 8), MLOC_OK);
    float x[24 * 3 * 32 * 32];
    test_fill_uniform_f32(x, 24 * 3 * 32 * 32, 0, 1, 5);
    int tap = m->taps[mloc_model_find_tap(m, "res2")].value;
    int64_t n = mloc_model_value_numel(m, tap);
    float *a = malloc(24 * n * sizeof(float)), *b = malloc(24 * n * sizeof(float));
    /* eval 8, train 4, eval 24 (a larger plan), train 6, eval 5 */
    assert_int_equal(mloc_model_forward(ctx, m, x, 8, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, m, x, 4, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, m, x, 24, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, tap, a), MLOC_OK);
    assert_int_equal(mloc_model_create(ctx, &fresh, &cfg), MLOC_OK);
    memcpy(fresh->store.buffer, m->store.buffer, m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, fresh, x, 24, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, fresh, tap, b), MLOC_OK);
    assert_true(test_close_f32("eval 24 after train 4", a, b, 24 * n, 1e-6, 1e-5));
    assert_int_equal(mloc_model_forward(ctx, m, x, 6, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, m, x, 5, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, tap, a), MLOC_OK);
    memcpy(fresh->store.buffer, m->store.buffer, m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    mloc_model_params_changed(fresh);
    assert_int_equal(mloc_model_forward(ctx, fresh, x, 5, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, fresh, tap, b), MLOC_OK);
    assert_true(test_close_f32("eval 5 after train 6", a, b, 5 * n, 1e-6, 1e-5));
    for (int64_t i = 0; i < 5 * n; i++) assert_true(a[i] >= 0); /* post-ReLU sums */
    free(a);
    free(b);
    mloc_model_free(m);
    mloc_model_free(fresh);
    mloc_ctx_destroy(ctx);
}

/* An allocation larger than the memory left fails with a message that says
 * how much was needed and how much is available (mloc_alloc zeroes what it
 * returns: without the check the kernel's OOM killer, not an error, ends it). */
static void test_alloc_beyond_memory(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    void *p = mloc_alloc(ctx, (size_t)1 << 50);
    assert_null(p);
    printf("%s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "1048576.00 GiB more needed"));
    assert_non_null(strstr(mloc_ctx_error(ctx), "GiB available"));
    p = mloc_alloc(ctx, (size_t)40 << 20); /* checked, and there is room for it */
    assert_non_null(p);
    mloc_free(p);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_batches),
        cmocka_unit_test(test_alloc_beyond_memory),
        cmocka_unit_test(test_resnet9_structure),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_dnnl_matches_ref),
        cmocka_unit_test(test_dnnl_matches_ref_gray),
        cmocka_unit_test(test_partial_and_small_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
