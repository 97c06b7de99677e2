/* Optimizer parity with torch 1.13: replay the 5-step trajectories of
 * tests/fixtures/optim/<config>.safetensors (tools/gen_optim_fixtures.py)
 * and compare the parameters after every step, then the optimizer state
 * after the last one (as saved by mloc_optim_add_to_writer) with torch's.
 *
 * Tolerance: |got - want| <= 1e-6 + 1e-5 |want| per element. memloc does the
 * elementwise float32 arithmetic in torch's order; the remaining differences
 * are torch's fused multiply-adds in its vectorized kernels and, for LARS,
 * norms summed in double rather than float. Step counts and the presence of
 * each momentum buffer must match exactly. */
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/optim.h"
#include "test_util.h"

#define ATOL 1e-6
#define RTOL 1e-5
#define MAX_ENTRIES 8

static const int64_t no_dims[1] = {0}; /* shape argument for scalars */

typedef struct {
    mloc_ctx *ctx;
    mloc_st_file *fx;
    mloc_table tab;
    mloc_store store;
    mloc_optim *opt;
    int n;
    char names[MAX_ENTRIES][MLOC_NAME_MAX];
} replay;

static const char *meta(const mloc_st_file *f, const char *key) {
    const char *v = mloc_st_metadata(f, key);
    if (!v) fail_msg("%s: metadata '%s' missing", mloc_st_path(f), key);
    return v;
}

static double meta_num(const mloc_st_file *f, const char *key) {
    return strtod(meta(f, key), NULL);
}

static mloc_role parse_role(const char *s) {
    if (strcmp(s, "weight") == 0) return MLOC_ROLE_WEIGHT;
    if (strcmp(s, "bias") == 0) return MLOC_ROLE_BIAS;
    if (strcmp(s, "norm_weight") == 0) return MLOC_ROLE_NORM_WEIGHT;
    if (strcmp(s, "norm_bias") == 0) return MLOC_ROLE_NORM_BIAS;
    fail_msg("unknown role '%s'", s);
    return MLOC_ROLE_WEIGHT;
}

/* Split a comma list into at most MAX_ENTRIES fields of buf. */
static int split(const char *list, char out[][MLOC_NAME_MAX]) {
    int n = 0;
    const char *p = list;
    while (*p && n < MAX_ENTRIES) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        assert_true(len < MLOC_NAME_MAX);
        memcpy(out[n], p, len);
        out[n][len] = 0;
        n++;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static mloc_optim_config config_from_meta(const mloc_st_file *f) {
    int kind = mloc_optim_kind_parse(meta(f, "kind"));
    assert_true(kind >= 0);
    mloc_optim_config c = mloc_optim_config_default((mloc_optim_kind)kind);
    c.momentum = meta_num(f, "momentum");
    c.dampening = meta_num(f, "dampening");
    c.nesterov = (int)meta_num(f, "nesterov");
    c.weight_decay = meta_num(f, "weight_decay");
    c.beta1 = meta_num(f, "beta1");
    c.beta2 = meta_num(f, "beta2");
    c.eps = meta_num(f, "eps");
    c.eta = meta_num(f, "eta");
    c.clip_lars = (int)meta_num(f, "clip_lars");
    c.exclude_bias_n_norm = (int)meta_num(f, "exclude_bias_n_norm");
    return c;
}

static void replay_open(replay *r, const char *config) {
    char path[256];
    snprintf(path, sizeof path, "optim/%s.safetensors", config);
    memset(r, 0, sizeof *r);
    r->ctx = test_ctx(2);
    if (mloc_st_open(r->ctx, &r->fx, test_fixture(path)) != MLOC_OK)
        fail_msg("%s", mloc_ctx_error(r->ctx));
    char roles[MAX_ENTRIES][MLOC_NAME_MAX];
    r->n = split(meta(r->fx, "names"), r->names);
    assert_int_equal(split(meta(r->fx, "roles"), roles), r->n);
    mloc_table_init(&r->tab);
    for (int i = 0; i < r->n; i++) {
        char name[MLOC_NAME_MAX + 16];
        snprintf(name, sizeof name, "init.%s", r->names[i]);
        const mloc_st_tensor *t = mloc_st_find(r->fx, name);
        assert_non_null(t);
        assert_int_equal(mloc_table_add(&r->tab, r->names[i], parse_role(roles[i]),
                                        MLOC_GROUP_ENCODER, i, t->ndim, t->shape),
                         i);
    }
    assert_int_equal(mloc_store_alloc(r->ctx, &r->store, &r->tab), MLOC_OK);
    for (int i = 0; i < r->n; i++) {
        char name[MLOC_NAME_MAX + 16];
        snprintf(name, sizeof name, "init.%s", r->names[i]);
        const mloc_tensor *e = &r->tab.t[i];
        assert_int_equal(mloc_st_read_f32(r->ctx, r->store.param + e->offset, r->fx, name,
                                          e->ndim, e->shape),
                         MLOC_OK);
    }
    mloc_optim_config cfg = config_from_meta(r->fx);
    if (mloc_optim_create(r->ctx, &r->opt, &r->tab, &cfg) != MLOC_OK)
        fail_msg("%s", mloc_ctx_error(r->ctx));
}

static void replay_close(replay *r) {
    mloc_optim_free(r->opt);
    mloc_store_free(&r->store);
    mloc_table_free(&r->tab);
    mloc_st_close(r->fx);
    mloc_ctx_destroy(r->ctx);
}

/* The optimizer state after the last step against torch's: same set of
 * tensors, same values. */
static int compare_state(replay *r, const char *config) {
    const char *dir = test_tmpdir("optim_parity");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, config);
    mloc_st_writer *w = NULL;
    assert_int_equal(mloc_st_writer_create(r->ctx, &w), MLOC_OK);
    assert_int_equal(mloc_optim_add_to_writer(r->opt, w), MLOC_OK);
    if (mloc_st_writer_save(w, path) != MLOC_OK) fail_msg("%s", mloc_ctx_error(r->ctx));
    mloc_st_writer_free(w);
    mloc_st_file *ours = NULL;
    assert_int_equal(mloc_st_open(r->ctx, &ours, path), MLOC_OK);

    int ok = 1, torch_count = 0, our_count = 0;
    for (int j = 0; j < mloc_st_count(r->fx); j++) {
        const mloc_st_tensor *t = mloc_st_get(r->fx, j);
        if (strncmp(t->name, "state.", 6) != 0) continue;
        torch_count++;
        char name[MLOC_NAME_MAX + 64], what[MLOC_NAME_MAX + 128];
        int is_step = strncmp(t->name, "state.step.", 11) == 0;
        if (is_step)
            snprintf(name, sizeof name, "optim.param_step.%s", t->name + 11);
        else
            snprintf(name, sizeof name, "optim.%s", t->name + 6);
        const mloc_st_tensor *o = mloc_st_find(ours, name);
        if (!o) {
            printf("%s: %s missing from memloc's state\n", config, name);
            ok = 0;
            continue;
        }
        if (is_step) {
            int64_t a, b;
            assert_int_equal(mloc_st_read_i64(r->ctx, &a, ours, name, 0, o->shape), MLOC_OK);
            assert_int_equal(mloc_st_read_i64(r->ctx, &b, r->fx, t->name, 0, t->shape), MLOC_OK);
            if (a != b) {
                printf("%s: %s = %lld, torch %lld\n", config, name, (long long)a, (long long)b);
                ok = 0;
            }
            continue;
        }
        float *got = malloc((size_t)t->numel * sizeof *got);
        float *want = malloc((size_t)t->numel * sizeof *want);
        assert_int_equal(mloc_st_read_f32(r->ctx, got, ours, name, t->ndim, t->shape), MLOC_OK);
        assert_int_equal(mloc_st_read_f32(r->ctx, want, r->fx, t->name, t->ndim, t->shape),
                         MLOC_OK);
        snprintf(what, sizeof what, "%s %s", config, name);
        ok &= test_close_f32(what, got, want, t->numel, ATOL, RTOL);
        free(got);
        free(want);
    }
    for (int j = 0; j < mloc_st_count(ours); j++) {
        const char *name = mloc_st_get(ours, j)->name;
        if (strcmp(name, "optim.step") != 0) our_count++;
    }
    if (our_count != torch_count) {
        printf("%s: memloc saved %d state tensors, torch has %d\n", config, our_count,
               torch_count);
        ok = 0;
    }
    int64_t steps = -1;
    assert_int_equal(mloc_st_read_i64(r->ctx, &steps, ours, "optim.step", 0, no_dims), MLOC_OK);
    assert_int_equal(steps, (int64_t)meta_num(r->fx, "steps"));
    mloc_st_close(ours);
    return ok;
}

static int replay_run(const char *config) {
    replay r;
    replay_open(&r, config);
    int steps = (int)meta_num(r.fx, "steps");
    double *lr = malloc((size_t)steps * sizeof *lr);
    int64_t *mask = malloc((size_t)steps * (size_t)r.n * sizeof *mask);
    int64_t lr_shape[1] = {steps}, mask_shape[2] = {steps, r.n};
    assert_int_equal(mloc_st_read_f64(r.ctx, lr, r.fx, "lr", 1, lr_shape), MLOC_OK);
    assert_int_equal(mloc_st_read_i64(r.ctx, mask, r.fx, "trainable", 2, mask_shape), MLOC_OK);
    float *want = malloc((size_t)r.tab.numel[MLOC_BLOCK_PARAM] * sizeof *want);
    int ok = 1;
    for (int t = 0; t < steps; t++) {
        mloc_optim_zero_grad(r.opt, &r.store);
        for (int i = 0; i < r.n; i++) {
            const mloc_tensor *e = &r.tab.t[i];
            char name[MLOC_NAME_MAX + 32];
            snprintf(name, sizeof name, "grad.%d.%s", t, e->name);
            assert_int_equal(mloc_st_read_f32(r.ctx, r.store.grad + e->offset, r.fx, name,
                                              e->ndim, e->shape),
                             MLOC_OK);
            assert_int_equal(mloc_optim_set_trainable(r.opt, i, (int)mask[t * r.n + i]),
                             MLOC_OK);
        }
        if (mloc_optim_step(r.opt, &r.store, lr[t]) != MLOC_OK)
            fail_msg("%s", mloc_ctx_error(r.ctx));
        for (int i = 0; i < r.n; i++) {
            const mloc_tensor *e = &r.tab.t[i];
            char name[MLOC_NAME_MAX + 32], what[MLOC_NAME_MAX + 64];
            snprintf(name, sizeof name, "param.%d.%s", t, e->name);
            assert_int_equal(mloc_st_read_f32(r.ctx, want, r.fx, name, e->ndim, e->shape),
                             MLOC_OK);
            snprintf(what, sizeof what, "%s step %d %s", config, t, e->name);
            ok &= test_close_f32(what, r.store.param + e->offset, want, e->numel, ATOL, RTOL);
        }
    }
    ok &= compare_state(&r, config);
    free(want);
    free(mask);
    free(lr);
    replay_close(&r);
    return ok;
}

#define PARITY_TEST(config)                               \
    static void test_##config(void **state) {             \
        (void)state;                                      \
        assert_true(replay_run(#config));                 \
    }

PARITY_TEST(sgd_plain)
PARITY_TEST(sgd_momentum)
PARITY_TEST(sgd_nesterov)
PARITY_TEST(sgd_wd)
PARITY_TEST(sgd_frozen)
PARITY_TEST(adam)
PARITY_TEST(adam_wd)
PARITY_TEST(adamw)
PARITY_TEST(adam_frozen)
PARITY_TEST(lars)
PARITY_TEST(lars_exclude)
PARITY_TEST(lars_clip)
PARITY_TEST(lars_nesterov)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain),    cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_nesterov), cmocka_unit_test(test_sgd_wd),
        cmocka_unit_test(test_sgd_frozen),   cmocka_unit_test(test_adam),
        cmocka_unit_test(test_adam_wd),      cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_adam_frozen),  cmocka_unit_test(test_lars),
        cmocka_unit_test(test_lars_exclude), cmocka_unit_test(test_lars_clip),
        cmocka_unit_test(test_lars_nesterov),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
