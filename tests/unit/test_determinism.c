/* Reproducibility (issue: CPU engine): the same seed and thread count give
 * bitwise identical weights after training steps, on the oneDNN backend;
 * and a different seed gives different ones. */
#include <stdlib.h>
#include <string.h>

#include "memloc/model.h"
#include "memloc/optim.h"
#include "memloc/ssl.h"
#include "test_util.h"

static float *train_steps(uint64_t seed, int threads, int64_t *n_out) {
    mloc_ctx_config cc = mloc_ctx_config_default();
    cc.seed = seed;
    cc.threads = threads;
    mloc_ctx *ctx;
    assert_int_equal(mloc_ctx_create(&ctx, &cc), MLOC_OK);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.5;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    const int B = 16;
    assert_int_equal(mloc_model_plan(ctx, m, 2 * B), MLOC_OK);
    mloc_ssl_scratch s;
    assert_int_equal(mloc_ssl_scratch_init(ctx, &s, m, 2 * B), MLOC_OK);
    mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_ADAM);
    mloc_optim *opt;
    assert_int_equal(mloc_optim_create(ctx, &opt, &m->table, &oc), MLOC_OK);
    float *x = malloc(2 * B * 3 * 32 * 32 * sizeof(float));
    for (int step = 0; step < 3; step++) {
        test_fill_uniform_f32(x, 2 * B * 3 * 32 * 32, -1, 1, 100 + step);
        double loss;
        mloc_optim_zero_grad(opt, &m->store);
        assert_int_equal(mloc_simclr_step(ctx, m, &s, x, B, 0.5f, &loss), MLOC_OK);
        assert_int_equal(mloc_optim_step(opt, &m->store, 1e-3), MLOC_OK);
        mloc_model_params_changed(m);
    }
    int64_t n = m->table.numel[MLOC_BLOCK_PARAM] + m->table.numel[MLOC_BLOCK_BUFFER];
    float *w = malloc(n * sizeof(float));
    memcpy(w, m->store.param, m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    memcpy(w + m->table.numel[MLOC_BLOCK_PARAM], m->store.buffer, m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    *n_out = n;
    free(x);
    mloc_optim_free(opt);
    mloc_ssl_scratch_free(&s);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return w;
}

static void test_same_seed_same_weights(void **state) {
    (void)state;
    int64_t n1, n2, n3;
    float *a = train_steps(11, 2, &n1), *b = train_steps(11, 2, &n2), *c = train_steps(12, 2, &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof(float));
    assert_true(memcmp(a, c, n1 * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_seed_same_weights)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
