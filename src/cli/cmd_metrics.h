/* Helpers shared by the metric commands (cmd_layermem.c, cmd_sslmem.c,
 * cmd_unitmem.c, cmd_classmem.c, cmd_analyze.c), defined in cmd_layermem.c:
 * the input options (augmentation pipeline, Normalize constants, how images
 * are fitted to the encoder), opening an encoder and a dataset fitted to it,
 * and the per-tap summary table of UnitMem / ClassMem. */
#ifndef MLOC_CLI_CMD_METRICS_H
#define MLOC_CLI_CMD_METRICS_H

#include "memloc/augment.h"
#include "memloc/data.h"
#include "memloc/metrics.h"
#include "memloc/model.h"

typedef struct {
    const char *preset;      /* --aug none|simclr|unitmem; simclr (the training pipeline) */
    double strength;         /* --aug-strength, 1 */
    double crop_scale_min;   /* --crop-scale-min, 0.08 (memloc train's option of the same name) */
    const char *input_norm;  /* --input-norm, half (mean 0.5, std 0.5) */
    int compat;              /* --compat-normalize-first */
    int fit;                 /* --fit auto|none|pad|resize (mloc_eval_data_options.fit) */
    int channels;            /* --channels auto|1|3 */
} metrics_input_opts;

/* getopt ids of the shared flags; METRICS_INPUT_OPTIONS lists them for a
 * struct option table */
enum { OPT_AUG = 900, OPT_AUG_STRENGTH, OPT_CROP_SCALE_MIN, OPT_INPUT_NORM, OPT_COMPAT, OPT_FIT, OPT_CHANNELS };
#define METRICS_INPUT_OPTIONS                                                          \
    {"aug", required_argument, 0, OPT_AUG},                                            \
        {"aug-strength", required_argument, 0, OPT_AUG_STRENGTH},                      \
        {"crop-scale-min", required_argument, 0, OPT_CROP_SCALE_MIN},                  \
        {"input-norm", required_argument, 0, OPT_INPUT_NORM},                          \
        {"compat-normalize-first", no_argument, 0, OPT_COMPAT},                        \
        {"fit", required_argument, 0, OPT_FIT}, {"channels", required_argument, 0, OPT_CHANNELS}
/* help lines of the shared flags */
#define METRICS_INPUT_HELP                                                                          \
    "  --aug-strength S       colour-jitter strength multiplier [1]\n"                              \
    "  --crop-scale-min S     smallest RandomResizedCrop area, as memloc train's [0.08]\n"           \
    "  --input-norm NAME      Normalize constants: half|cifar10|cifar100|stl10|imagenet [half]\n"   \
    "  --compat-normalize-first  normalise, then augment, as the reference code (FORMATS.md 3.7)\n" \
    "  --fit auto|none|pad|resize  make images the encoder's size (auto: zero-pad smaller ones)\n"   \
    "  --channels auto|1|3    convert images to the encoder's channels [auto]\n"

metrics_input_opts metrics_cli_input_defaults(void);
/* 1: opt was a shared flag and was taken; 0: not one; -1: bad value (the
 * usage error is printed). */
int metrics_cli_input_option(const char *cmd, int opt, const char *arg, metrics_input_opts *o);
mloc_status metrics_cli_pipeline(mloc_ctx *ctx, const mloc_model *m, const metrics_input_opts *o,
                                 mloc_aug_pipeline *pipe);
mloc_status metrics_cli_open_model(mloc_ctx *ctx, const char *path, mloc_model **m);
mloc_status metrics_cli_open_data(mloc_ctx *ctx, const char *cmd, const char *spec, const mloc_model *m,
                                  const metrics_input_opts *o, mloc_dataset *ds, int quiet);
void metrics_cli_print_units(mloc_ctx *ctx, const mloc_unit_scores *u);
/* Absolute forms, for the run record, so that memloc analyze finds the
 * files from any directory: a path (realpath), and a dataset spec whose
 * path is made absolute. malloc'ed; a copy of the input when that fails. */
char *metrics_cli_abs_path(const char *path);
char *metrics_cli_abs_spec(mloc_ctx *ctx, const char *spec);

/* memloc layermem (layermem 1) and memloc sslmem (0) */
int metrics_cli_layermem(int argc, char **argv, int layermem);

int cmd_layermem(int argc, char **argv);
int cmd_sslmem(int argc, char **argv);
int cmd_unitmem(int argc, char **argv);
int cmd_classmem(int argc, char **argv);
int cmd_analyze(int argc, char **argv);

#endif
