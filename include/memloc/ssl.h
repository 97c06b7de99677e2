/* Self-supervised and supervised objectives: one training step's forward,
 * loss and backward on a batch of views. The optimizer step is the caller's.
 *
 *   SimCLR (Chen et al. 2020): x holds 2N views, view-major (rows 0..N-1 the
 *     first view of each image, N..2N-1 the second); NT-Xent with temperature
 *     T on the projection head's output (include/memloc/nn.h mloc_ntxent).
 *   supervised: x holds N images; softmax cross-entropy of the classifier
 *     head against the labels.
 *   SimSiam (Chen & He 2021, src/ssl/simsiam.c): 2N views as SimCLR; the
 *     negative cosine between each view's prediction and the other view's
 *     detached projection (mloc_simsiam_loss).
 *   DINO (Caron et al. 2021, src/ssl/dino.c): a student and an EMA teacher,
 *     2 global + L local crops, centring and sharpening (mloc_dino_*). */
#ifndef MEMLOC_SSL_H
#define MEMLOC_SSL_H

#include <stdint.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/optim.h"

/* Scratch for the head's outputs and their gradients, sized once for a
 * model and a batch of views. */
typedef struct {
    float *out, *dout;
    int64_t capacity; /* floats each */
    double *work;     /* NT-Xent workspace */
    float *aux;       /* SimSiam: the projections z (capacity floats) */
} mloc_ssl_scratch;

mloc_status mloc_ssl_scratch_init(mloc_ctx *ctx, mloc_ssl_scratch *s, const mloc_model *m, int max_views);
void mloc_ssl_scratch_free(mloc_ssl_scratch *s);

/* forward (train mode), loss, backward; parameter gradients accumulate into
 * m->store.grad (zero them first). ERR_DIVERGED if the loss is not finite. */
mloc_status mloc_simclr_step(mloc_ctx *ctx, mloc_model *m, mloc_ssl_scratch *s, const float *x,
                             int n_images, float temperature, double *loss);
mloc_status mloc_supervised_step(mloc_ctx *ctx, mloc_model *m, mloc_ssl_scratch *s, const float *x,
                                 const int32_t *labels, int n_images, double *loss, int *correct);

/* ---- SimSiam ----------------------------------------------------------------
 * m has a SIMSIAM head (model.h); x holds 2N views, view-major. As the
 * reference code, each view is its own forward (train mode): view 1 on m,
 * view 2 on `twin`, a model over m's store (mloc_model_create_shared with
 * m's config), so each BN sees one view's batch. Each gives z (value
 * "projector.7") and p (output); the loss is mloc_simsiam_loss(p, z) with z
 * detached, and each backward starts at p only: z's gradient reaches the
 * projector through the predictor alone (the stop-gradient). */
mloc_status mloc_simsiam_step(mloc_ctx *ctx, mloc_model *m, mloc_model *twin, mloc_ssl_scratch *s,
                              const float *x, int n_images, double *loss);

/* ---- DINO ----------------------------------------------------------------------
 * The student is a model with a DINO head (model.h); mloc_dino holds the
 * teacher (a model of the same configuration, its own store, initialised as
 * a copy of the student: params, BN buffers and counters, as DINO's
 * load_state_dict), a second model over the student's store for the local
 * crops' size (mloc_model_create_shared), the centre and the head's
 * activations, all sized once. The DINO head itself (head.mlp.*, L2 norm,
 * head.last_layer) runs here on the pooled encoder outputs of all crops.
 *
 * One training iteration (facebookresearch/dino main_dino.py train_one_epoch):
 *     mloc_optim_zero_grad(opt, &student->store);
 *     mloc_dino_step(ctx, d, global, local, B, epoch, &loss);  // grads += into the student
 *     mloc_optim_step(opt, &student->store, lr);
 *     mloc_dino_update_teacher(d, mloc_dino_momentum(&cfg, it, total));
 * and mloc_dino_begin_epoch(d, opt, epoch) before each epoch's first step
 * (and after a resume). Deviations from DINO: no weight-decay schedule (the
 * optimizer's own weight decay applies, to every tensor); no Gaussian
 * blur or solarisation in the crops (memloc's augmentations); the teacher's
 * BN runs on batch statistics of the global crops (as DINO's teacher, which is
 * never put in eval mode) and keeps its own running statistics, which the
 * EMA does not touch (DINO averages parameters only). */
typedef struct {
    int local_crops;                /* L local crops per image; default 8 (DINO's default) */
    int local_size;                 /* local crop side; default 16 (ResNet9's minimum) */
    double student_temp;            /* default 0.1 */
    double teacher_temp;            /* after the warm-up; default 0.07 */
    double warmup_teacher_temp;     /* default 0.04 */
    int warmup_teacher_temp_epochs; /* default 30 */
    double momentum_teacher;        /* base EMA momentum, cosine to 1; default 0.996 */
    double center_momentum;         /* default 0.9 */
    int freeze_last_layer;          /* epochs with head.last_layer frozen; default 1 */
    int norm_last_layer;            /* 1 (default): weight_g stays 1 (DINO's norm_last_layer);
                                       0: trained from epoch freeze_last_layer on */
    double clip_grad;               /* each student tensor's gradient norm clipped to this
                                       (utils.clip_gradients); default 3.0, 0: off */
} mloc_dino_config;

mloc_dino_config mloc_dino_config_default(void);

typedef struct mloc_dino mloc_dino;

/* Teacher temperature of an epoch (0-based): np.linspace(warmup, final, W)
 * for the first W epochs, then final. */
double mloc_dino_teacher_temp(const mloc_dino_config *cfg, int epoch);
/* Teacher EMA momentum after iteration `it` of `total` (0-based), DINO's
 * cosine_scheduler(base, 1): 1 - (1 - base) (1 + cos(pi it / total)) / 2. */
double mloc_dino_momentum(const mloc_dino_config *cfg, int64_t it, int64_t total);

/* Create the DINO state for `student` (borrowed; it must outlive d) and
 * batches of B images: plans the student for 2B global crops, the local
 * view for L*B local crops and the teacher for 2B. ERR_USAGE if the student
 * has no DINO head or the local crops do not fit the architecture. */
mloc_status mloc_dino_create(mloc_ctx *ctx, mloc_dino **out, mloc_model *student,
                             const mloc_dino_config *cfg, int B);
void mloc_dino_free(mloc_dino *d);
mloc_model *mloc_dino_teacher(const mloc_dino *d);
/* The centre (K = head_out floats), writable (tests). */
float *mloc_dino_center(const mloc_dino *d);

/* global (2B, C, H, W) and local (L*B, C, h, w) crops, crop-major (rows
 * v*B .. v*B+B-1 are crop v, as the loader's views); local may be NULL when
 * L = 0. Runs the teacher and the student, the loss at the epoch's teacher
 * temperature, the backward (student gradients accumulate, +=), the
 * per-tensor gradient clipping (which assumes the student's gradients were
 * zero before the step), then moves the centre. ERR_DIVERGED if the loss is
 * not finite. */
mloc_status mloc_dino_step(mloc_ctx *ctx, mloc_dino *d, const float *global, const float *local,
                           int B, int epoch, double *loss);
/* teacher = m teacher + (1 - m) student over the param block (after the
 * optimizer step). */
void mloc_dino_update_teacher(mloc_dino *d, double momentum);
/* head.last_layer.weight_v trainable from epoch freeze_last_layer on (DINO's
 * cancel_gradients_last_layer: a frozen tensor is not stepped at all);
 * weight_g never with norm_last_layer, else as weight_v. */
mloc_status mloc_dino_begin_epoch(mloc_dino *d, mloc_optim *opt, int epoch);

/* Checkpoint state: "teacher.<name>" for every teacher tensor and
 * "dino.center" [K]. The data is borrowed until the writer saves. Load
 * needs all of them with the teacher table's shapes. */
mloc_status mloc_dino_add_to_writer(const mloc_dino *d, mloc_st_writer *w);
mloc_status mloc_dino_load(mloc_ctx *ctx, mloc_dino *d, const mloc_st_file *f);

/* ---- MAE (He et al. 2022; src/ssl/mae.c) ------------------------------------
 * m is a ViT with the MAE head (model.h, src/models/vit.c) that sees every
 * patch (cfg.mask_keep 0): the model the metrics and the kNN monitor read,
 * whose store the optimizer steps. mloc_mae holds the training graph, a
 * second model over m's store (mloc_model_create_shared) whose encoder sees
 * keep = int(L (1 - mask_ratio)) of the L patches, as MAE's len_keep, plus
 * the patch orders and the loss buffers.
 *
 * One iteration: mloc_optim_zero_grad; mloc_mae_step (gradients +=);
 * mloc_optim_step. Each sample's mask comes from the stream (seed,
 * "mae-mask", epoch, sample): a uniform random permutation of the L patches
 * (Fisher-Yates) whose first keep are visible, the distribution of MAE's
 * argsort of uniform noise; so a resumed run draws the same masks and MAE
 * adds nothing to a checkpoint. */
typedef struct {
    double mask_ratio; /* share of the patches masked, in (0, 1); default 0.75 */
    int norm_pix_loss; /* 1 (default): targets normalised per patch (MAE's norm_pix_loss) */
    uint64_t seed;     /* root seed of the mask streams */
} mloc_mae_config;

mloc_mae_config mloc_mae_config_default(void);

typedef struct mloc_mae mloc_mae;

/* ERR_USAGE unless m is a ViT with an MAE head seeing every patch, or when
 * the ratio leaves no patch visible or none masked. Plans the training
 * graph for B images. m must outlive the state. */
mloc_status mloc_mae_create(mloc_ctx *ctx, mloc_mae **out, mloc_model *m, const mloc_mae_config *cfg,
                            int B);
void mloc_mae_free(mloc_mae *a);
/* The masked training graph (its patch_order is set by each step). */
mloc_model *mloc_mae_train_model(const mloc_mae *a);
int mloc_mae_keep(const mloc_mae *a);

/* order (n, L): for sample i (dataset index samples[i]) the permutation
 * drawn from stream (seed, "mae-mask", epoch, samples[i]). */
void mloc_mae_draw_orders(int32_t *order, int L, int n, const int64_t *samples, int epoch, uint64_t seed);

/* MAE's forward_loss. pred (N, 1 + L, P*P*C) is the decoder output (row 0,
 * the CLS token's, is ignored); x (N, C, H, W) the images; order (N, L) the
 * patch orders, the first keep visible. The target of patch l (raster order
 * of the (H/P) x (W/P) grid) is MAE's patchify: its pixels in (p, q, c)
 * order ('nchpwq->nhwpqc'), with norm_pix standardised by the patch's mean
 * and unbiased variance: (t - mean) / sqrt(var + 1e-6). The loss is the
 * mean over the N (L - keep) masked patches of the patch's mean squared
 * error; dpred (=, if non-NULL) is its gradient, 0 at row 0 and at the
 * visible patches. Sums in double. */
double mloc_mae_loss(float *dpred, const float *pred, const float *x, const int32_t *order, int N, int C,
                     int H, int W, int P, int keep, int norm_pix);

/* One step on B images x (B, C, H, W) with dataset indices samples (B):
 * draws the masks for `epoch`, runs the training graph, the loss and the
 * backward. ERR_DIVERGED if the loss is not finite. */
mloc_status mloc_mae_step(mloc_ctx *ctx, mloc_mae *a, const float *x, const int64_t *samples, int B, int epoch,
                          double *loss);
/* The same with given patch orders (B, L) (tests, the PyTorch parity). */
mloc_status mloc_mae_step_orders(mloc_ctx *ctx, mloc_mae *a, const float *x, const int32_t *order, int B,
                                 double *loss);

#endif
