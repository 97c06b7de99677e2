/* Training encoders: SimCLR, SimSiam, DINO and supervised, with resumable
 * run directories (SPEC.md section 10).
 *
 * Every option lives in one table (MLOC_TRAIN_OPTIONS below): the CLI flags,
 * the YAML config file keys, config.json and the documented defaults are all
 * generated from it, so they cannot drift apart.
 *
 * A run directory holds
 *   config.json         every option (schema memloc.train.config/1) and what
 *                       was resolved from the data (classes, shape, digest)
 *   log.jsonl           one JSON object per K steps and per epoch
 *   checkpoints/        epoch_NNNN.safetensors after N completed epochs, and
 *                       epoch_NNNN_batch_BBBBBB.safetensors when interrupted
 *                       mid-epoch: weights, buffers, optimizer state and the
 *                       position (epoch, batch), written atomically; DINO
 *                       adds its teacher ("teacher.<name>") and centre
 *                       ("dino.center"); the EMA momentum and the teacher
 *                       temperature follow from the position
 *   model.safetensors   the final encoder and head, PyTorch names, written
 *                       last: its presence means the run finished (DINO: the
 *                       teacher unless --dino-export student).
 * Methods (include/memloc/ssl.h): simclr and simsiam train on 2 views of
 * each image (simsiam runs each view as its own forward), supervised on 1,
 * dino on 2 global crops (image_size, area global_crop_scale_min..1) and
 * local_crops local crops (local_crop_size, area local_crop_scale_min..
 * global_crop_scale_min) drawn by a second loader with augmentation stream
 * purpose "dino_local" over the same shuffled order.
 * Resuming loads the most advanced checkpoint and continues; because every
 * random draw is keyed by (seed, epoch, sample, view), a resumed run ends
 * with bitwise the same weights as an uninterrupted one (same threads). */
#ifndef MEMLOC_TRAIN_H
#define MEMLOC_TRAIN_H

#include <stdint.h>

#include <jansson.h>

#include "memloc/augment.h"
#include "memloc/context.h"
#include "memloc/data.h"
#include "memloc/options.h"

#define MLOC_TRAIN_STR MLOC_OPT_STR_MAX

/* The options (include/memloc/options.h): X(name, type, field, default, choices, help) */
#define MLOC_TRAIN_OPTIONS(X)                                                                         \
    X(data, STR, data, "", NULL, "training dataset spec, e.g. folder:cifar10-jpeg.tar.gz/train")     \
    X(indices, STR, indices, "", NULL, "train on these indices only, e.g. 0:40000,45000:50000 or @FILE") \
    X(fit, CHOICE, fit, "auto", "auto|none|pad|resize",                                              \
      "fit images to --image-size: auto pads smaller images (28 -> 32), else none")                 \
    X(image_size, INT, image_size, "32", NULL, "encoder input side")                                 \
    X(method, CHOICE, method, "simclr", "simclr|supervised|simsiam|dino|mae",                        \
      "training method (mae: ViT only)")                                                             \
    X(arch, CHOICE, arch, "resnet9", "resnet9|resnet18|resnet34|resnet50|vit_tiny|vit_small|vit_base", \
      "encoder architecture")                                                                        \
    X(stem, CHOICE, stem, "cifar", "cifar|imagenet",                                                 \
      "ResNet18/34/50 stem: cifar (3x3 conv, no maxpool) or imagenet (7x7 stride 2 + maxpool)")      \
    X(patch_size, INT, patch_size, "4", NULL, "ViT patch side (image_size a multiple of it)")        \
    X(width, REAL, width, "1", NULL, "channel width multiplier")                                     \
    X(proj_hidden, INT, proj_hidden, "512", NULL,                                                    \
      "projection hidden units (SimCLR head, SimSiam projector, DINO head MLP)")                     \
    X(proj_dim, INT, proj_dim, "128", NULL, "projection output dimension (SimCLR, SimSiam; DINO bottleneck)") \
    X(temperature, REAL, temperature, "0.5", NULL, "NT-Xent temperature")                            \
    X(pred_hidden, INT, pred_hidden, "512", NULL, "SimSiam predictor hidden units")                  \
    X(dino_out_dim, INT, dino_out_dim, "4096", NULL, "DINO prototypes K (the weight-normalised last layer)") \
    X(dino_head_bn, BOOL, dino_head_bn, "0", NULL, "DINO head with BatchNorm after its hidden layers (use_bn)") \
    X(local_crops, INT, local_crops, "8", NULL, "DINO local crops per image, besides the 2 global crops") \
    X(local_crop_size, INT, local_crop_size, "16", NULL,                                               \
      "DINO local crop side (ResNet9: >= 16; ViT: a multiple of patch_size, pos_embed interpolated)")  \
    X(local_crop_scale_min, REAL, local_crop_scale_min, "0.05", NULL,                                \
      "DINO local crops' area range (min, global_crop_scale_min)")                                   \
    X(global_crop_scale_min, REAL, global_crop_scale_min, "0.4", NULL,                               \
      "DINO global crops' area range (min, 1); replaces crop_scale_min")                             \
    X(student_temp, REAL, student_temp, "0.1", NULL, "DINO student temperature")                     \
    X(teacher_temp, REAL, teacher_temp, "0.07", NULL, "DINO teacher temperature after the warm-up")  \
    X(warmup_teacher_temp, REAL, warmup_teacher_temp, "0.04", NULL, "DINO teacher temperature in epoch 1") \
    X(warmup_teacher_temp_epochs, INT, warmup_teacher_temp_epochs, "30", NULL,                       \
      "DINO epochs of linear teacher-temperature warm-up")                                           \
    X(momentum_teacher, REAL, momentum_teacher, "0.996", NULL, "DINO teacher EMA momentum (cosine to 1)") \
    X(center_momentum, REAL, center_momentum, "0.9", NULL, "DINO centre EMA momentum")              \
    X(freeze_last_layer, INT, freeze_last_layer, "1", NULL, "DINO epochs with the head's last layer frozen") \
    X(norm_last_layer, BOOL, norm_last_layer, "1", NULL, "DINO: keep the last layer's weight_g at 1")   \
    X(clip_grad, REAL, clip_grad, "3", NULL, "DINO: clip each tensor's gradient norm to this (0: off)") \
    X(dino_export, CHOICE, dino_export, "teacher", "teacher|student",                                \
      "DINO network written to model.safetensors and read by the kNN monitor")                       \
    X(drop_path, REAL, drop_path, "0", NULL,                                                         \
      "ViT stochastic depth rate (timm's drop_path_rate; block i: rate i / (depth - 1))")             \
    X(mask_ratio, REAL, mask_ratio, "0.75", NULL, "MAE: share of the patches masked")                \
    X(norm_pix_loss, BOOL, norm_pix_loss, "1", NULL, "MAE: targets normalised per patch")            \
    X(decoder_dim, INT, decoder_dim, "128", NULL, "MAE decoder width")                               \
    X(decoder_depth, INT, decoder_depth, "2", NULL, "MAE decoder blocks")                            \
    X(decoder_heads, INT, decoder_heads, "4", NULL, "MAE decoder attention heads")                   \
    X(epochs, INT, epochs, "100", NULL, "training epochs")                                           \
    X(batch_size, INT, batch_size, "256", NULL, "images per step (SimCLR: 2 views each)")            \
    X(optimizer, CHOICE, optimizer, "adam", "sgd|adam|adamw|lars", "optimizer (PyTorch semantics)")  \
    X(lr, REAL, lr, "0.001", NULL, "base learning rate")                                             \
    X(weight_decay, REAL, weight_decay, "1e-06", NULL, "weight decay")                               \
    X(momentum, REAL, momentum, "0.9", NULL, "momentum (sgd, lars)")                                 \
    X(schedule, CHOICE, schedule, "constant", "constant|cosine", "learning-rate schedule per step")  \
    X(warmup_epochs, REAL, warmup_epochs, "0", NULL, "linear warm-up epochs (cosine schedule)")      \
    X(min_lr, REAL, min_lr, "0", NULL, "final learning rate of the cosine schedule")                 \
    X(aug, CHOICE, aug, "simclr", "none|simclr|unitmem", "augmentation preset")                      \
    X(aug_strength, REAL, aug_strength, "1", NULL, "colour-jitter strength multiplier")              \
    X(crop_scale_min, REAL, crop_scale_min, "0.08", NULL,                                            \
      "RandomResizedCrop smallest area fraction (not dino: global_crop_scale_min)")                  \
    X(norm, CHOICE, norm, "half", "half|cifar10|cifar100|stl10|imagenet",                            \
      "Normalize constants (half: mean 0.5, std 0.5 as the reference code)")                         \
    X(compat_normalize_first, BOOL, compat_normalize_first, "0", NULL,                               \
      "reproduce the reference code's normalize-then-augment order")                                 \
    X(monitor_knn, STR, monitor_knn, "", NULL, "TRAIN_SPEC,TEST_SPEC: kNN accuracy after each epoch") \
    X(monitor_every, INT, monitor_every, "1", NULL, "kNN monitor every N epochs (and after the last)") \
    X(knn_k, INT, knn_k, "200", NULL, "kNN monitor neighbours")                                      \
    X(knn_t, REAL, knn_t, "0.5", NULL, "kNN monitor temperature")                                    \
    X(seed, U64, seed, "0", NULL, "root seed of every random stream")                                \
    X(threads, INT, threads, "0", NULL, "compute threads (0: all CPUs); part of the reproducibility key") \
    X(workers, INT, workers, "2", NULL, "augmentation worker threads")                               \
    X(log_every, INT, log_every, "50", NULL, "write a log.jsonl line every K steps")                  \
    X(checkpoint_every, INT, checkpoint_every, "1", NULL, "checkpoint every N epochs")               \
    X(keep_checkpoints, INT, keep_checkpoints, "2", NULL, "epoch checkpoints kept (0: all)")

enum { MLOC_METHOD_SIMCLR = 0, MLOC_METHOD_SUPERVISED, MLOC_METHOD_SIMSIAM, MLOC_METHOD_DINO, MLOC_METHOD_MAE };
/* The arch option's choices, in its order (src/train/train.c). */
enum { MLOC_ARCH_OPT_RESNET9 = 0, MLOC_ARCH_OPT_VIT_TINY = 4 };
enum { MLOC_DINO_EXPORT_TEACHER = 0, MLOC_DINO_EXPORT_STUDENT };
enum { MLOC_FIT_OPT_AUTO = 0, MLOC_FIT_OPT_NONE, MLOC_FIT_OPT_PAD, MLOC_FIT_OPT_RESIZE };
enum { MLOC_SCHED_OPT_CONSTANT = 0, MLOC_SCHED_OPT_COSINE };

typedef struct {
    MLOC_TRAIN_OPTIONS(MLOC_OPT_FIELD)
} mloc_train_config;

extern const mloc_option_table mloc_train_options;

mloc_train_config mloc_train_config_default(void);
/* Set option `name` ("batch_size" or "batch-size") from text. ERR_CONFIG
 * naming the option and what it accepts (unknown option: the list). */
mloc_status mloc_train_config_set(mloc_ctx *ctx, mloc_train_config *cfg, const char *name,
                                  const char *value);
/* Cross-option checks (ranges, combinations). ERR_CONFIG. */
mloc_status mloc_train_config_check(mloc_ctx *ctx, const mloc_train_config *cfg);
/* JSON object of every option; and back (unknown keys are an error). */
json_t *mloc_train_config_to_json(const mloc_train_config *cfg);
mloc_status mloc_train_config_from_json(mloc_ctx *ctx, mloc_train_config *cfg, const json_t *obj);
/* Apply a YAML mapping of option: value (libyaml). Errors name file, line. */
mloc_status mloc_train_config_load_yaml(mloc_ctx *ctx, mloc_train_config *cfg, const char *path);
/* The options a run directory was started with (its config.json). */
mloc_status mloc_train_config_load_run(mloc_ctx *ctx, mloc_train_config *cfg, const char *run_dir);

/* Open a dataset the way training does: fitted to image_size per the fit
 * option (auto pads images smaller by an even margin, 28 -> 32). */
mloc_status mloc_train_open_dataset(mloc_ctx *ctx, const mloc_train_config *cfg,
                                    mloc_dataset *d, const char *spec);

/* The augmentation pipeline of a run: its preset (or `preset` >= 0, an
 * index in none|simclr|unitmem), strength, crop scale, Normalize and
 * normalize-first mode. The metrics use the training pipeline (SPEC 2). */
mloc_status mloc_train_aug_pipeline(mloc_ctx *ctx, const mloc_train_config *cfg, int preset,
                                    mloc_aug_pipeline *pipe);

typedef struct {
    int finished;           /* model.safetensors written */
    int64_t steps;          /* optimizer steps taken in total */
    double last_loss;       /* mean loss of the last epoch */
    double knn_acc;         /* last kNN monitor accuracy, or -1 */
    double seconds;         /* wall time of this call */
    double views_per_s;     /* throughput of this call */
    int resumed_epoch;      /* epoch it resumed at (0 for a fresh run) */
    int64_t resumed_batch;  /* and batch within it */
} mloc_train_result;

/* Train into run_dir. A fresh run needs an empty or absent run_dir (or only
 * a config.json equal to cfg); with `resume`, an existing run continues from
 * its latest checkpoint (a finished run returns at once). Returns
 * ERR_INTERRUPTED after writing a checkpoint when the context's interrupt
 * flag was raised. */
mloc_status mloc_train_run(mloc_ctx *ctx, const mloc_train_config *cfg, const char *run_dir,
                           int resume, mloc_train_result *result);

#endif
