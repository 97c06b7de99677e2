/* A tiny timm ViT and its MAE step against PyTorch 1.13
 * (tests/fixtures/vit/vit_steps.safetensors, tools/gen_vit_fixtures.py):
 * image 16, patch 4, width 24, depth 2, 2 heads, timm's classifier head;
 * MAE decoder width 16, depth 1, 2 heads, 4 of 16 patches visible.
 *   supervised  every tap of the forward (blocks.i.attn, blocks.i.mlp.act,
 *               blocks.i, cls), the logits, the cross-entropy loss and every
 *               parameter gradient, after loading the fixture's tensors by
 *               their timm names;
 *   interpolated  the same on 12x12 images with the 16x16 model's position
 *               embeddings interpolated as DINO's interpolate_pos_encoding
 *               (cfg.pos_image_h/w; DINO's local crops on a ViT);
 *   drop-path   the same with drop_path_rate 0.4 and the fixture's per-sample
 *               masks (mloc_model_set_drop_scales);
 *   MAE         the per-patch predictions, the normalised-pixel loss
 *               (mloc_mae_loss) and every gradient of the encoder and the
 *               decoder, through mloc_mae_step_orders with the fixture's
 *               patch orders.
 * Both backends. The fixture holds float64 results; budgets are relative to
 * each tensor's largest magnitude. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/nn.h"
#include "memloc/ssl.h"
#include "test_util.h"

#define FIXTURE "vit/vit_steps.safetensors"

static mloc_model_config fixture_config(const mloc_st_file *f, mloc_head_kind head) {
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = "vit_tiny";
    cfg.image_h = cfg.image_w = atoi(mloc_st_metadata(f, "image"));
    cfg.patch_size = atoi(mloc_st_metadata(f, "patch"));
    cfg.embed_dim = atoi(mloc_st_metadata(f, "dim"));
    cfg.depth = atoi(mloc_st_metadata(f, "depth"));
    cfg.heads = atoi(mloc_st_metadata(f, "heads"));
    cfg.head = head;
    cfg.head_out = atoi(mloc_st_metadata(f, "classes"));
    cfg.decoder_dim = atoi(mloc_st_metadata(f, "decoder_dim"));
    cfg.decoder_depth = atoi(mloc_st_metadata(f, "decoder_depth"));
    cfg.decoder_heads = atoi(mloc_st_metadata(f, "decoder_heads"));
    return cfg;
}

static double max_abs(const float *v, int64_t n) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) s = fmax(s, fabs(v[k]));
    return s;
}

/* got vs fixture tensor `name` (n values), budget rel x the tensor's scale */
static int check(mloc_ctx *ctx, const mloc_st_file *f, const char *name, const float *got, int64_t n, double rel) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    if (!t) fail_msg("fixture has no %s", name);
    float *want = malloc((size_t)n * sizeof(float));
    if (mloc_st_read_f32(ctx, want, f, name, t->ndim, t->shape) != MLOC_OK) fail_msg("%s", mloc_ctx_error(ctx));
    int64_t tn = 1;
    for (int d = 0; d < t->ndim; d++) tn *= t->shape[d];
    assert_int_equal(tn, n);
    int ok = test_close_f32(name, got, want, n, rel * max_abs(want, n), rel);
    free(want);
    return ok;
}

/* every parameter gradient against "<prefix><name>"; returns how many */
static int check_grads(mloc_ctx *ctx, const mloc_model *m, const mloc_st_file *f, const char *prefix, double rel,
                       int *ok) {
    int count = 0;
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM) continue;
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        *ok &= check(ctx, f, name, m->store.grad + e->offset, e->numel, rel);
        count++;
    }
    return count;
}

/* prefix "sup": the fixture's images; "interp": its smaller images with the
 * position embeddings of the fixture's size interpolated (DINO's local crops) */
static void supervised(mloc_backend backend, const char *prefix) {
    mloc_ctx *ctx = test_ctx(2);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture(FIXTURE)), MLOC_OK);
    mloc_model_config cfg = fixture_config(f, MLOC_HEAD_CLASSIFIER);
    const int interp = strcmp(prefix, "interp") == 0, drop = strcmp(prefix, "drop") == 0;
    if (drop) cfg.drop_path = atof(mloc_st_metadata(f, "drop_path"));
    if (interp) {
        cfg.pos_image_h = cfg.pos_image_w = cfg.image_h;
        cfg.image_h = cfg.image_w = atoi(mloc_st_metadata(f, "interp_image"));
    }
    char name[160];
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, m, backend), MLOC_OK);
    test_load_prefixed(ctx, m, f, "init.");
    const int N = atoi(mloc_st_metadata(f, "n")), K = cfg.head_out, S = cfg.image_h;
    float *x = malloc((size_t)N * 3 * S * S * sizeof(float));
    int32_t labels[16];
    int64_t labels64[16], xs[4] = {N, 3, S, S}, ls[1] = {N}, one[1] = {1};
    assert_true(N <= 16);
    assert_int_equal(mloc_st_read_f32(ctx, x, f, interp ? "interp.x" : "x", 4, xs), MLOC_OK);
    assert_int_equal(mloc_st_read_i64(ctx, labels64, f, "labels", 1, ls), MLOC_OK);
    for (int n = 0; n < N; n++) labels[n] = (int32_t)labels64[n];
    if (drop) { /* the fixture's masks: block 1's attention and MLP branches */
        float scales[2 * 16];
        int64_t ss[2] = {2, N};
        assert_int_equal(m->n_drop, 2);
        assert_int_equal(mloc_st_read_f32(ctx, scales, f, "drop.scale", 2, ss), MLOC_OK);
        assert_int_equal(mloc_model_set_drop_scales(ctx, m, scales, N), MLOC_OK);
    } else {
        assert_int_equal(m->n_drop, 0);
    }
    double want_loss;
    snprintf(name, sizeof name, "%s.loss", prefix);
    assert_int_equal(mloc_st_read_f64(ctx, &want_loss, f, name, 1, one), MLOC_OK);

    mloc_model_zero_grad(m);
    mloc_status st = mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1);
    if (st) fail_msg("forward: %s", mloc_ctx_error(ctx));
    int ok = 1, taps = 0;
    float *buf = malloc((size_t)N * 17 * 4 * 24 * sizeof(float) * 4);
    for (int t = 0; t < m->n_taps; t++) {
        snprintf(name, sizeof name, "%s.tap.%s", prefix, m->taps[t].name);
        assert_int_equal(mloc_model_read(ctx, m, m->taps[t].value, buf), MLOC_OK);
        ok &= check(ctx, f, name, buf, N * mloc_model_value_numel(m, m->taps[t].value), 1e-5);
        taps++;
    }
    assert_int_equal(taps, 3 * cfg.depth + 1);
    float logits[160], dlogits[160];
    assert_int_equal(mloc_model_read(ctx, m, m->output, logits), MLOC_OK);
    snprintf(name, sizeof name, "%s.logits", prefix);
    ok &= check(ctx, f, name, logits, N * K, 1e-5);
    double loss = mloc_cross_entropy(dlogits, logits, labels, N, K);
    printf("%s: %dx%d images, loss %.9f torch %.9f\n", prefix, S, S, loss, want_loss);
    ok &= fabs(loss - want_loss) <= 1e-5 * fabs(want_loss);
    st = mloc_model_backward(ctx, m, m->output, dlogits);
    if (st) fail_msg("backward: %s", mloc_ctx_error(ctx));
    snprintf(name, sizeof name, "%s.grad.", prefix);
    int grads = check_grads(ctx, m, f, name, 1e-4, &ok);
    printf("%d taps, %d gradients\n", taps, grads);
    assert_int_equal(grads, 4 + 12 * cfg.depth + 2 + 2);
    assert_true(ok);
    free(buf);
    free(x);
    mloc_model_free(m);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

static void mae(mloc_backend backend) {
    mloc_ctx *ctx = test_ctx(2);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture(FIXTURE)), MLOC_OK);
    mloc_model_config cfg = fixture_config(f, MLOC_HEAD_MAE);
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, m, backend), MLOC_OK);
    test_load_prefixed(ctx, m, f, "init.");
    const int N = atoi(mloc_st_metadata(f, "n")), S = cfg.image_h, P = cfg.patch_size, L = (S / P) * (S / P);
    const int keep = atoi(mloc_st_metadata(f, "keep")), K = P * P * 3;
    mloc_mae_config mc = mloc_mae_config_default();
    mc.mask_ratio = 1.0 - (double)keep / L;
    mloc_mae *a;
    mloc_status st = mloc_mae_create(ctx, &a, m, &mc, N);
    if (st) fail_msg("mae: %s", mloc_ctx_error(ctx));
    assert_int_equal(mloc_mae_keep(a), keep);
    float *x = malloc((size_t)N * 3 * S * S * sizeof(float));
    int32_t *order = malloc((size_t)N * L * sizeof(int32_t));
    int64_t *order64 = malloc((size_t)N * L * sizeof(int64_t)), xs[4] = {N, 3, S, S}, os[2] = {N, L}, one[1] = {1};
    assert_int_equal(mloc_st_read_f32(ctx, x, f, "x", 4, xs), MLOC_OK);
    assert_int_equal(mloc_st_read_i64(ctx, order64, f, "mae.order", 2, os), MLOC_OK);
    for (int k = 0; k < N * L; k++) order[k] = (int32_t)order64[k];
    free(order64);
    double want_loss, loss;
    assert_int_equal(mloc_st_read_f64(ctx, &want_loss, f, "mae.loss", 1, one), MLOC_OK);
    mloc_model_zero_grad(m);
    st = mloc_mae_step_orders(ctx, a, x, order, N, &loss);
    if (st) fail_msg("mae step: %s", mloc_ctx_error(ctx));
    printf("mae loss %.9f torch %.9f\n", loss, want_loss);
    int ok = fabs(loss - want_loss) <= 1e-5 * fabs(want_loss);
    /* the predictions without the CLS row: (N, L, K) */
    mloc_model *t = mloc_mae_train_model(a);
    float *out = malloc((size_t)N * (1 + L) * K * sizeof(float)), *pred = malloc((size_t)N * L * K * sizeof(float));
    assert_int_equal(mloc_model_read(ctx, t, t->output, out), MLOC_OK);
    for (int n = 0; n < N; n++)
        memcpy(pred + (int64_t)n * L * K, out + ((int64_t)n * (1 + L) + 1) * K, (size_t)L * K * sizeof(float));
    ok &= check(ctx, f, "mae.pred", pred, (int64_t)N * L * K, 1e-5);
    int grads = check_grads(ctx, m, f, "mae.grad.", 1e-4, &ok);
    printf("%d gradients\n", grads);
    assert_int_equal(grads, 4 + 12 * cfg.depth + 2 + 2 + 2 + 12 * cfg.decoder_depth + 4);
    assert_true(ok);
    free(out);
    free(pred);
    free(x);
    free(order);
    mloc_mae_free(a);
    mloc_model_free(m);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

/* the supervised checks: a fixture prefix on each backend */
static struct supervised_case {
    mloc_backend backend;
    const char *prefix;
} cases[] = {{MLOC_BACKEND_REF, "sup"},    {MLOC_BACKEND_DNNL, "sup"},  {MLOC_BACKEND_REF, "interp"},
             {MLOC_BACKEND_DNNL, "interp"}, {MLOC_BACKEND_REF, "drop"}, {MLOC_BACKEND_DNNL, "drop"}};

static void test_supervised(void **state) {
    const struct supervised_case *c = *state;
    supervised(c->backend, c->prefix);
}

static void test_mae_ref(void **state) {
    (void)state;
    mae(MLOC_BACKEND_REF);
}

static void test_mae_dnnl(void **state) {
    (void)state;
    mae(MLOC_BACKEND_DNNL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        {"supervised_ref", test_supervised, NULL, NULL, &cases[0]},
        {"supervised_dnnl", test_supervised, NULL, NULL, &cases[1]},
        {"interpolated_pos_ref", test_supervised, NULL, NULL, &cases[2]},
        {"interpolated_pos_dnnl", test_supervised, NULL, NULL, &cases[3]},
        {"drop_path_ref", test_supervised, NULL, NULL, &cases[4]},
        {"drop_path_dnnl", test_supervised, NULL, NULL, &cases[5]},
        cmocka_unit_test(test_mae_ref),
        cmocka_unit_test(test_mae_dnnl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
