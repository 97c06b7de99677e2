/* memloc train --method mae on a ViT (src/ssl/mae.c, src/train/train.c):
 * the loss falls over a few steps, a run interrupted mid-epoch and resumed
 * ends with bitwise the weights of an uninterrupted one (the masks are keyed
 * by (seed, epoch, sample), so MAE adds no checkpoint state), the final file
 * opens as a ViT with the MAE head, and MAE needs a ViT. Synthetic 16 x 16
 * images, patch 4 (16 patches, 4 visible), ViT-Tiny. */
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/train.h"
#include "test_util.h"

static volatile int stop_flag;
static int64_t stop_at;

/* raise the interrupt after step stop_at (0: never) */
static void progress(void *user, const char *what, int64_t done, int64_t total, const char *status) {
    (void)user;
    (void)total;
    (void)status;
    if (stop_at && !strcmp(what, "train") && done == stop_at) stop_flag = 1;
}

static mloc_train_config mae_config(void) {
    mloc_train_config c = mloc_train_config_default();
    mloc_ctx *ctx = test_ctx(1);
    const char *kv[][2] = {{"data", "synthetic:96:16x16x3:4"}, {"method", "mae"}, {"arch", "vit_tiny"},
                           {"image_size", "16"}, {"epochs", "2"}, {"batch_size", "24"}, {"optimizer", "adamw"},
                           {"lr", "0.001"}, {"weight_decay", "0.05"}, {"decoder_dim", "32"}, {"decoder_depth", "1"},
                           {"decoder_heads", "2"}, {"workers", "1"}, {"threads", "2"}, {"log_every", "1"},
                           {"crop_scale_min", "0.2"}, {"seed", "3"}};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        if (mloc_train_config_set(ctx, &c, kv[i][0], kv[i][1]) != MLOC_OK) fail_msg("%s", mloc_ctx_error(ctx));
    mloc_ctx_destroy(ctx);
    return c;
}

static mloc_ctx *train_ctx(void) {
    mloc_ctx_config cc = mloc_ctx_config_default();
    cc.threads = 2;
    cc.seed = 3;
    cc.interrupt_flag = &stop_flag;
    cc.progress_fn = progress;
    mloc_ctx *ctx;
    assert_int_equal(mloc_ctx_create(&ctx, &cc), MLOC_OK);
    return ctx;
}

static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(*n);
    assert_int_equal(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

static void test_mae_resume_bitwise(void **state) {
    (void)state;
    mloc_train_config c = mae_config();
    char a[1024], b[1024], fa[1100], fb[1100];
    snprintf(a, sizeof a, "%s", test_tmpdir("vit_mae_full"));
    snprintf(b, sizeof b, "%s", test_tmpdir("vit_mae_resumed"));
    mloc_train_result r;
    mloc_ctx *ctx = train_ctx();
    stop_flag = 0;
    stop_at = 0;
    mloc_status st = mloc_train_run(ctx, &c, a, 0, &r);
    if (st) fail_msg("train: %s", mloc_ctx_error(ctx));
    assert_true(r.finished);
    assert_int_equal(r.steps, 8);
    printf("full run: last epoch loss %.6f\n", r.last_loss);
    assert_true(r.last_loss > 0 && r.last_loss < 1.5);
    /* interrupted after step 3 (mid-epoch 1), then resumed */
    stop_at = 3;
    st = mloc_train_run(ctx, &c, b, 0, &r);
    assert_int_equal(st, MLOC_ERR_INTERRUPTED);
    assert_int_equal(r.steps, 3);
    stop_flag = 0;
    stop_at = 0;
    st = mloc_train_run(ctx, &c, b, 1, &r);
    if (st) fail_msg("resume: %s", mloc_ctx_error(ctx));
    assert_int_equal(r.resumed_epoch, 0);
    assert_int_equal(r.resumed_batch, 3);
    snprintf(fa, sizeof fa, "%s/model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/model.safetensors", b);
    size_t na, nb;
    void *pa = slurp(fa, &na), *pb = slurp(fb, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na);
    free(pa);
    free(pb);
    /* the final file: a ViT with the MAE head; the metrics open it whole */
    mloc_model *m;
    assert_int_equal(mloc_model_open(ctx, &m, fa, -1), MLOC_OK);
    assert_string_equal(m->arch, "vit_tiny");
    assert_int_equal(m->cfg.head, MLOC_HEAD_MAE);
    assert_int_equal(m->cfg.decoder_dim, 32);
    assert_int_equal(m->cfg.image_h, 16);
    assert_int_equal(m->values[m->taps[0].value].c, 17);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* The loss of MAE falls on a fixed batch: 10 steps on 8 images of 2 classes. */
static void test_mae_learns(void **state) {
    (void)state;
    mloc_train_config c = mae_config();
    mloc_ctx *ctx = train_ctx();
    assert_int_equal(mloc_train_config_set(ctx, &c, "data", "synthetic:8:16x16x3:2"), MLOC_OK);
    assert_int_equal(mloc_train_config_set(ctx, &c, "batch_size", "8"), MLOC_OK);
    assert_int_equal(mloc_train_config_set(ctx, &c, "epochs", "12"), MLOC_OK);
    assert_int_equal(mloc_train_config_set(ctx, &c, "aug", "none"), MLOC_OK);
    char dir[1024], log[1100];
    snprintf(dir, sizeof dir, "%s", test_tmpdir("vit_mae_learns"));
    stop_flag = 0;
    stop_at = 0;
    mloc_train_result r;
    mloc_status st = mloc_train_run(ctx, &c, dir, 0, &r);
    if (st) fail_msg("train: %s", mloc_ctx_error(ctx));
    snprintf(log, sizeof log, "%s/log.jsonl", dir);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[512];
    double first = -1, last = -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"type\":\"epoch\"");
        const char *l = strstr(line, "\"loss\":");
        if (!p || !l) continue;
        double v = atof(l + 7);
        if (first < 0) first = v;
        last = v;
    }
    fclose(f);
    printf("MAE loss: epoch 1 %.4f, epoch 12 %.4f\n", first, last);
    assert_true(first > 0 && last < 0.9 * first);
    mloc_ctx_destroy(ctx);
}

static void test_mae_needs_vit(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_train_config c = mae_config();
    assert_int_equal(mloc_train_config_set(ctx, &c, "arch", "resnet9"), MLOC_OK);
    assert_int_equal(mloc_train_config_check(ctx, &c), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "needs a ViT"));
    c = mae_config();
    assert_int_equal(mloc_train_config_set(ctx, &c, "patch_size", "5"), MLOC_OK);
    assert_int_equal(mloc_train_config_check(ctx, &c), MLOC_ERR_CONFIG);
    c = mae_config();
    assert_int_equal(mloc_train_config_set(ctx, &c, "mask_ratio", "1"), MLOC_OK);
    assert_int_equal(mloc_train_config_check(ctx, &c), MLOC_ERR_CONFIG);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mae_needs_vit),
        cmocka_unit_test(test_mae_resume_bitwise),
        cmocka_unit_test(test_mae_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
