/* Data augmentation with torchvision 0.14 tensor-path semantics
 * (FORMATS.md section 3) on float32 CHW images.
 *
 * A pipeline is RandomResizedCrop -> RandomHorizontalFlip -> RandomApply(
 * ColorJitter) -> RandomGrayscale, with ToTensor (uint8 / 255) first and
 * Normalize last; with `normalize_first` (the reference code's order,
 * FORMATS.md 3.7, SPEC.md section 6) Normalize runs right after ToTensor and
 * the augmentations see values in [-1, 1].
 *
 * Drawing the random parameters of one view is separate from applying them:
 *
 *     mloc_rng r;
 *     mloc_aug_stream(&r, seed, "aug", epoch, sample, view);
 *     mloc_aug_params p;
 *     mloc_aug_draw(&p, &pipe, h, w, &r);
 *     mloc_aug_apply(out, img, h, w, c, &p, &pipe);  // out is (c, p.out_h, p.out_w)
 *
 * so that apply() can be compared with torchvision.transforms.functional
 * exactly, and the parameters can be written out (mloc_aug_params_format_json)
 * and replayed in PyTorch. Draws follow torchvision's distributions (not its
 * RNG stream): per view, RRC draws (uniform, uniform[, randint, randint]) per
 * attempt; flip a uniform; RandomApply a uniform, then a permutation of the 4
 * jitter ops and one uniform per enabled op in the fixed order b, c, s, h;
 * grayscale a uniform. */
#ifndef MEMLOC_AUGMENT_H
#define MEMLOC_AUGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memloc/context.h"
#include "memloc/data.h"
#include "memloc/rng.h"

/* ---- presets ------------------------------------------------------------ */

/* Augmentation presets (FORMATS.md 3.6):
 *   none     ToTensor + Normalize only (a resize if the output size differs)
 *   simclr   the reference code's training pipeline (layer_mem.py): RRC(32,
 *            scale 0.08-1, ratio 3/4-4/3, bilinear), flip 0.5,
 *            RandomApply(ColorJitter(0.8, 0.8, 0.8, 0.2), p 0.8), gray 0.2
 *   unitmem  UnitMem.py: RRC(32), RandomApply(flip(0.5), p 0.5) (so 1 view in
 *            4 is flipped), RandomApply(ColorJitter(0.9, 0.9, 0.9, 0.1), p 0.9),
 *            gray 0.1 */
#define MLOC_AUG_PRESET_LIST(X) \
    X(NONE, "none")             \
    X(SIMCLR, "simclr")         \
    X(UNITMEM, "unitmem")

typedef enum {
#define MLOC_X(id, name) MLOC_AUG_##id,
    MLOC_AUG_PRESET_LIST(MLOC_X)
#undef MLOC_X
    MLOC_AUG_PRESET_COUNT
} mloc_aug_preset;

/* Normalize constants (FORMATS.md 3.5): half = mean 0.5, std 0.5 (memloc's
 * default, SPEC.md section 2), then the solo-learn / timm dataset values. */
#define MLOC_AUG_NORM_LIST(X)                                                          \
    X(HALF, "half", 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f)                                \
    X(CIFAR10, "cifar10", 0.4914f, 0.4822f, 0.4465f, 0.2470f, 0.2435f, 0.2616f)        \
    X(CIFAR100, "cifar100", 0.5071f, 0.4865f, 0.4409f, 0.2673f, 0.2564f, 0.2762f)      \
    X(STL10, "stl10", 0.4914f, 0.4823f, 0.4466f, 0.247f, 0.243f, 0.261f)               \
    X(IMAGENET, "imagenet", 0.485f, 0.456f, 0.406f, 0.229f, 0.224f, 0.225f)

typedef enum {
#define MLOC_X(id, name, m0, m1, m2, s0, s1, s2) MLOC_AUG_NORM_##id,
    MLOC_AUG_NORM_LIST(MLOC_X)
#undef MLOC_X
    MLOC_AUG_NORM_COUNT
} mloc_aug_norm;

/* ColorJitter ops, also their ids in mloc_aug_params.order (torchvision's
 * fn_idx numbering). */
enum { MLOC_JITTER_BRIGHTNESS = 0, MLOC_JITTER_CONTRAST, MLOC_JITTER_SATURATION, MLOC_JITTER_HUE };

/* ---- the pipeline --------------------------------------------------------- */

/* Every parameter of a pipeline, explicit. Made from an mloc_aug_config by
 * mloc_aug_pipeline_make, or filled by hand (tests). */
typedef struct {
    int out_h, out_w;       /* output size; 0: the input's size */
    int crop;               /* 1: RandomResizedCrop; 0: the whole image */
    float scale[2];         /* RRC area fraction range, (0.08, 1) */
    float ratio[2];         /* RRC aspect (w/h) range, (3/4, 4/3) */
    int antialias;          /* 1 (memloc, torchvision >= 0.17); 0: 0.14's tensor default */
    float flip_apply_p;     /* RandomApply around the flip; 1: no wrapper */
    float flip_p;           /* RandomHorizontalFlip p */
    float jitter_p;         /* RandomApply([ColorJitter]) p; 0: no jitter */
    /* Factor ranges [lo, hi]; brightness/contrast/saturation (1, 1) and hue
     * (0, 0) disable the op (nothing drawn, nothing applied, no clamp). */
    float brightness[2], contrast[2], saturation[2], hue[2];
    float gray_p;           /* RandomGrayscale p */
    float mean[3], std[3];  /* Normalize; a 1-channel image uses [0] */
    int normalize_first;    /* 1: the reference code's order (FORMATS.md 3.7) */
} mloc_aug_pipeline;

/* User-level knobs with documented defaults, resolved into a pipeline. */
typedef struct {
    mloc_aug_preset preset;   /* default SIMCLR */
    int size;                 /* output side; default 32; 0 = input size */
    float strength;           /* s: jitter = preset base * s, e.g. simclr (0.8s, 0.8s, 0.8s, 0.2s); default 1 */
    float crop_scale_min;     /* RRC scale lower bound; default 0.08 */
    float flip_p;             /* < 0 (default -1): the preset's */
    float jitter_p;           /* < 0: the preset's */
    float gray_p;             /* < 0: the preset's */
    mloc_aug_norm norm;       /* default HALF (mean 0.5, std 0.5) */
    int antialias;            /* default 1 */
    int compat_normalize_first; /* default 0 (--compat-normalize-first) */
} mloc_aug_config;

mloc_aug_config mloc_aug_config_default(void);

/* Resolve a config into a pipeline. ERR_CONFIG (naming the option and the
 * accepted range) for out-of-range values: probabilities outside [0,1],
 * strength < 0, hue range beyond [-0.5, 0.5], crop_scale_min outside (0, 1]. */
mloc_status mloc_aug_pipeline_make(mloc_ctx *ctx, mloc_aug_pipeline *pipe,
                                   const mloc_aug_config *cfg);
/* Check a hand-filled pipeline the same way. */
mloc_status mloc_aug_pipeline_check(mloc_ctx *ctx, const mloc_aug_pipeline *pipe);

/* Names: "simclr" <-> MLOC_AUG_SIMCLR etc. Parse returns ERR_USAGE with
 * "augmentation preset 'x' is not one of none|simclr|unitmem". */
const char *mloc_aug_preset_name(mloc_aug_preset p);
mloc_status mloc_aug_preset_parse(mloc_ctx *ctx, const char *name, mloc_aug_preset *out);
const char *mloc_aug_norm_name(mloc_aug_norm n);
mloc_status mloc_aug_norm_parse(mloc_ctx *ctx, const char *name, mloc_aug_norm *out);
void mloc_aug_norm_values(mloc_aug_norm n, float mean[3], float std[3]);

/* Output size of the pipeline for an h x w input. */
void mloc_aug_out_size(const mloc_aug_pipeline *pipe, int h, int w, int *out_h, int *out_w);

/* ---- drawing ---------------------------------------------------------------- */

/* The parameters of one view: a plain record, enough to replay it. */
typedef struct {
    int out_h, out_w;       /* output size */
    int top, left;          /* crop box: rows top..top+height-1, */
    int height, width;      /*           columns left..left+width-1 */
    int attempts;           /* RRC attempts drawn (1..10); 0 without crop */
    int fallback;           /* 1: all 10 attempts failed, centre crop */
    int flip;               /* 1: horizontal flip */
    int jitter;             /* 1: RandomApply fired and ColorJitter ran */
    int order[4];           /* application order of op ids (MLOC_JITTER_*) */
    int enabled[4];         /* op id k has a non-trivial range */
    float factor[4];        /* by op id: brightness, contrast, saturation, hue shift */
    int gray;               /* 1: grayscale */
} mloc_aug_params;

/* The augmentation stream of one view: key (seed, purpose, epoch, sample,
 * view). Training uses purpose "aug"; metrics use their own purpose with
 * epoch MLOC_AUG_NO_EPOCH, so f and g see identical draws for a point. */
#define MLOC_AUG_NO_EPOCH (-1)
void mloc_aug_stream(mloc_rng *r, uint64_t seed, const char *purpose, int64_t epoch,
                     int64_t sample, int64_t view);

/* Draw the parameters of one view of an img_h x img_w image from r. */
void mloc_aug_draw(mloc_aug_params *p, const mloc_aug_pipeline *pipe, int img_h, int img_w,
                   mloc_rng *r);

/* ---- applying ---------------------------------------------------------------- */

/* out (c, p->out_h, p->out_w) float32 = the view of img (h, w, c) uint8 HWC
 * (c = 1 or 3) under p. Returns ERR_NOMEM if its scratch (bytes of
 * mloc_aug_workspace_bytes, on the stack when small) cannot be allocated. */
mloc_status mloc_aug_apply(float *out, const uint8_t *img, int h, int w, int c,
                           const mloc_aug_params *p, const mloc_aug_pipeline *pipe);
/* Scratch needed by mloc_aug_apply_ws for any crop of an h x w x c image to
 * an out_h x out_w output. */
size_t mloc_aug_workspace_bytes(int h, int w, int c, int out_h, int out_w);
/* Same as mloc_aug_apply with caller-provided scratch (64-byte aligned, at
 * least mloc_aug_workspace_bytes); never fails. */
void mloc_aug_apply_ws(float *out, const uint8_t *img, int h, int w, int c,
                       const mloc_aug_params *p, const mloc_aug_pipeline *pipe, void *ws);

/* ---- replay records ------------------------------------------------------------ */

/* One JSON line (no newline) describing a view, for --dump-aug-params:
 *   {"epoch":0,"sample":17,"view":1,"size":[32,32],"crop":[top,left,h,w],
 *    "attempts":1,"fallback":0,"flip":1,"jitter":1,"order":[2,0,3,1],
 *    "brightness":1.23,"contrast":null,"saturation":0.5,"hue":-0.1,"gray":0}
 * Disabled or not-run jitter ops are null (with "jitter":0, all four are).
 * Floats use %.9g (round-trip exact). Returns the length snprintf would
 * write. */
int mloc_aug_params_format_json(char *buf, size_t size, const mloc_aug_params *p,
                                int64_t epoch, int64_t sample, int64_t view);
/* Write that line and a newline to fp; ERR_IO (naming `what`, e.g. the
 * dump file's path) if the write fails. */
mloc_status mloc_aug_params_write_json(mloc_ctx *ctx, FILE *fp, const char *what,
                                       const mloc_aug_params *p, int64_t epoch, int64_t sample,
                                       int64_t view);
/* The pipeline as one JSON object line (schema "memloc.aug_pipeline/1"). */
int mloc_aug_pipeline_format_json(char *buf, size_t size, const mloc_aug_pipeline *pipe);

/* ---- batches ---------------------------------------------------------------- */

/* Which streams a batch's views come from: view v of dataset image i uses
 * mloc_aug_stream(seed, purpose, epoch, i, first_view + v). */
typedef struct {
    uint64_t seed;
    const char *purpose;    /* "aug" for training; a metric's own tag otherwise */
    int64_t epoch;          /* MLOC_AUG_NO_EPOCH for metrics */
    int first_view;         /* lets a metric draw its K views in chunks */
} mloc_aug_key;

/* Fill out (views*n, C, OH, OW), view-major (rows v*n .. v*n+n-1 are view v
 * of images indices[0..n-1]), synchronously, OpenMP-parallel over images.
 * params, if not NULL, receives the views*n parameter records in the same
 * order. ERR_USAGE for an index outside the dataset, ERR_NOMEM for scratch. */
mloc_status mloc_aug_batch(mloc_ctx *ctx, float *out, mloc_aug_params *params,
                           const mloc_dataset *ds, const int64_t *indices, int64_t n,
                           int views, const mloc_aug_pipeline *pipe, const mloc_aug_key *key);

#endif
