/* The training options table (MLOC_TRAIN_OPTIONS in include/memloc/train.h)
 * and the checks across options; the parsing and printing are the generic
 * option-table engine's (src/core/options.c). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/train.h"

static const mloc_option options[] = {
#define MLOC_X(name, type, field, def, choices, help) \
    MLOC_OPT_ENTRY(mloc_train_config, name, type, field, def, choices, help)
    MLOC_TRAIN_OPTIONS(MLOC_X)
#undef MLOC_X
};

const mloc_option_table mloc_train_options = {options, (int)(sizeof options / sizeof options[0]), "train"};

mloc_train_config mloc_train_config_default(void) {
    mloc_train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mloc_options_defaults(&mloc_train_options, &cfg);
    return cfg;
}

mloc_status mloc_train_config_set(mloc_ctx *ctx, mloc_train_config *cfg, const char *name,
                                  const char *value) {
    return mloc_options_set(ctx, &mloc_train_options, cfg, name, value);
}

json_t *mloc_train_config_to_json(const mloc_train_config *cfg) {
    return mloc_options_to_json(&mloc_train_options, cfg);
}

mloc_status mloc_train_config_from_json(mloc_ctx *ctx, mloc_train_config *cfg, const json_t *obj) {
    return mloc_options_from_json(ctx, &mloc_train_options, cfg, obj);
}

mloc_status mloc_train_config_load_yaml(mloc_ctx *ctx, mloc_train_config *cfg, const char *path) {
    const mloc_option_table *tables[] = {&mloc_train_options};
    void *cfgs[] = {cfg};
    return mloc_options_load_yaml(ctx, tables, cfgs, 1, path);
}

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) return mloc_error(ctx, MLOC_ERR_CONFIG, __VA_ARGS__);                \
    } while (0)

mloc_status mloc_train_config_check(mloc_ctx *ctx, const mloc_train_config *c) {
    CHECK(c->data[0], "option data: a dataset spec is required (e.g. fmnist, folder:PATH/train)");
    CHECK(c->image_size >= 16 && c->image_size <= 1024, "option image_size: %d, expected 16..1024", c->image_size);
    CHECK(c->width > 0 && c->width <= 16, "option width: %g, expected (0, 16]", c->width);
    CHECK(c->proj_hidden >= 1 && c->proj_dim >= 1, "options proj_hidden / proj_dim must be >= 1");
    CHECK(c->temperature > 0, "option temperature: %g, expected > 0", c->temperature);
    CHECK(c->epochs >= 1, "option epochs: %d, expected >= 1", c->epochs);
    CHECK(c->batch_size >= 2 && c->batch_size <= 65536, "option batch_size: %d, expected 2..65536",
          c->batch_size);
    CHECK(c->lr > 0 && c->lr < 100, "option lr: %g, expected in (0, 100)", c->lr);
    CHECK(c->weight_decay >= 0, "option weight_decay: %g, expected >= 0", c->weight_decay);
    CHECK(c->momentum >= 0 && c->momentum < 1, "option momentum: %g, expected in [0, 1)", c->momentum);
    CHECK(c->warmup_epochs >= 0 && c->warmup_epochs < c->epochs,
          "option warmup_epochs: %g, expected in [0, epochs=%d)", c->warmup_epochs, c->epochs);
    CHECK(c->warmup_epochs == 0 || c->schedule == MLOC_SCHED_OPT_COSINE,
          "option warmup_epochs: needs schedule cosine (got constant)");
    CHECK(c->min_lr >= 0 && c->min_lr <= c->lr, "option min_lr: %g, expected in [0, lr]", c->min_lr);
    CHECK(c->aug_strength >= 0 && c->aug_strength <= 10, "option aug_strength: %g, expected 0..10",
          c->aug_strength);
    CHECK(c->crop_scale_min > 0 && c->crop_scale_min <= 1, "option crop_scale_min: %g, expected (0, 1]",
          c->crop_scale_min);
    CHECK(c->monitor_every >= 1, "option monitor_every: %d, expected >= 1", c->monitor_every);
    CHECK(c->knn_k >= 1, "option knn_k: %d, expected >= 1", c->knn_k);
    CHECK(c->knn_t > 0, "option knn_t: %g, expected > 0", c->knn_t);
    CHECK(c->threads >= 0 && c->threads <= 1024, "option threads: %d, expected 0..1024", c->threads);
    CHECK(c->workers >= 0 && c->workers <= 64, "option workers: %d, expected 0..64", c->workers);
    CHECK(c->log_every >= 1, "option log_every: %d, expected >= 1", c->log_every);
    CHECK(c->checkpoint_every >= 1, "option checkpoint_every: %d, expected >= 1", c->checkpoint_every);
    CHECK(c->keep_checkpoints >= 0, "option keep_checkpoints: %d, expected >= 0", c->keep_checkpoints);
    CHECK(!c->monitor_knn[0] || strchr(c->monitor_knn, ','),
          "option monitor_knn: '%s', expected TRAIN_SPEC,TEST_SPEC", c->monitor_knn);
    /* SimSiam and DINO */
    CHECK(c->pred_hidden >= 1, "option pred_hidden: %d, expected >= 1", c->pred_hidden);
    CHECK(c->dino_out_dim >= 1, "option dino_out_dim: %d, expected >= 1", c->dino_out_dim);
    CHECK(c->local_crops >= 0 && c->local_crops <= 64, "option local_crops: %d, expected 0..64", c->local_crops);
    CHECK(c->local_crop_size >= 1 && c->local_crop_size <= c->image_size,
          "option local_crop_size: %d, expected 1..image_size (%d)", c->local_crop_size, c->image_size);
    CHECK(c->global_crop_scale_min > 0 && c->global_crop_scale_min <= 1,
          "option global_crop_scale_min: %g, expected (0, 1]", c->global_crop_scale_min);
    CHECK(c->local_crop_scale_min > 0 && c->local_crop_scale_min <= c->global_crop_scale_min,
          "option local_crop_scale_min: %g, expected (0, global_crop_scale_min=%g]", c->local_crop_scale_min,
          c->global_crop_scale_min);
    CHECK(c->student_temp > 0 && c->teacher_temp > 0 && c->warmup_teacher_temp > 0,
          "options student_temp / teacher_temp / warmup_teacher_temp: %g / %g / %g, expected > 0", c->student_temp,
          c->teacher_temp, c->warmup_teacher_temp);
    CHECK(c->warmup_teacher_temp_epochs >= 0, "option warmup_teacher_temp_epochs: %d, expected >= 0",
          c->warmup_teacher_temp_epochs);
    CHECK(c->momentum_teacher >= 0 && c->momentum_teacher <= 1, "option momentum_teacher: %g, expected [0, 1]",
          c->momentum_teacher);
    CHECK(c->center_momentum >= 0 && c->center_momentum <= 1, "option center_momentum: %g, expected [0, 1]",
          c->center_momentum);
    CHECK(c->freeze_last_layer >= 0, "option freeze_last_layer: %d, expected >= 0", c->freeze_last_layer);
    CHECK(c->clip_grad >= 0, "option clip_grad: %g, expected >= 0 (0: off)", c->clip_grad);
    /* ViT and MAE */
    const int vit = c->arch >= MLOC_ARCH_OPT_VIT_TINY;
    CHECK(!vit || (c->patch_size >= 1 && c->image_size % c->patch_size == 0),
          "option patch_size: %d, expected a divisor of image_size (%d)", c->patch_size, c->image_size);
    CHECK(c->stem == 0 || (c->arch > MLOC_ARCH_OPT_RESNET9 && !vit),
          "option stem: imagenet, expected --arch resnet18|resnet34|resnet50 (ResNet9 and ViTs have their own)");
    CHECK(c->method != MLOC_METHOD_MAE || vit, "method mae: needs a ViT (--arch vit_tiny|vit_small|vit_base)");
    CHECK(c->method != MLOC_METHOD_DINO || !vit || c->local_crops == 0 || c->local_crop_size % c->patch_size == 0,
          "option local_crop_size: %d on a ViT, expected a multiple of patch_size (%d)", c->local_crop_size,
          c->patch_size);
    CHECK(c->drop_path >= 0 && c->drop_path < 1, "option drop_path: %g, expected [0, 1)", c->drop_path);
    CHECK(c->drop_path == 0 || vit, "option drop_path: %g, expected a ViT (--arch vit_tiny|vit_small|vit_base)",
          c->drop_path);
    CHECK(c->mask_ratio > 0 && c->mask_ratio < 1, "option mask_ratio: %g, expected in (0, 1)", c->mask_ratio);
    CHECK(c->decoder_dim >= 1 && c->decoder_depth >= 0 && c->decoder_heads >= 1 &&
              c->decoder_dim % c->decoder_heads == 0,
          "options decoder_dim / decoder_depth / decoder_heads: %d / %d / %d, expected a width divisible by the heads",
          c->decoder_dim, c->decoder_depth, c->decoder_heads);
    return MLOC_OK;
}

mloc_status mloc_train_config_load_run(mloc_ctx *ctx, mloc_train_config *cfg, const char *run_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    json_t *doc = NULL;
    MLOC_TRY(mloc_json_load(ctx, path, &doc));
    json_t *opts = json_object_get(doc, "options");
    *cfg = mloc_train_config_default();
    mloc_status st = opts ? mloc_train_config_from_json(ctx, cfg, opts)
                          : mloc_error(ctx, MLOC_ERR_CONFIG, "%s: no \"options\" object", path);
    if (st != MLOC_OK && opts) mloc_error_prefix(ctx, st, "%s", path);
    json_decref(doc);
    return st;
}
