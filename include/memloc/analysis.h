/* Evaluating an encoder (SPEC.md section 8): features of a frozen encoder,
 * the weighted kNN monitor and the linear probe.
 *
 *     mloc_dataset train, test;
 *     mloc_eval_data_options dopt = mloc_eval_data_options_default();
 *     MLOC_TRY(mloc_eval_dataset_open(ctx, &train, "cifar10:d:train", m, &dopt));
 *     ...
 *     mloc_knn_config kc = mloc_knn_config_default();
 *     double acc;
 *     MLOC_TRY(mloc_knn_accuracy(ctx, m, &train, NULL, train.n, &test, NULL, test.n, &kc, &acc));
 *
 * Features are read in eval mode (BN uses its running statistics) with no
 * augmentation: the `none` pipeline, ToTensor then Normalize (mean 0.5, std
 * 0.5 unless the caller passes another pipeline). A value of a tap is
 * flattened per image in NCHW order, c*H*W + y*W + x, as torch's
 * .flatten(1). Nothing here trains the encoder. */
#ifndef MEMLOC_ANALYSIS_H
#define MEMLOC_ANALYSIS_H

#include <stdint.h>

#include "memloc/augment.h"
#include "memloc/context.h"
#include "memloc/data.h"
#include "memloc/model.h"
#include "memloc/optim.h"

/* ---- datasets that fit an encoder ------------------------------------------ */

#define MLOC_EVAL_AUTO (-1)

typedef struct {
    /* MLOC_EVAL_AUTO (default): keep images of the encoder's size; zero-pad
     * smaller ones, centred, when both differences are even (28 -> 32: 2 px
     * each side); anything else is an error naming both sizes. Or an
     * mloc_fit: NONE (sizes must match), PAD, RESIZE (PIL bilinear). */
    int fit;
    /* MLOC_EVAL_AUTO (default): keep matching channels; replicate gray to RGB
     * for a 3-channel encoder; RGB for a 1-channel encoder is an error (ask
     * for 1 explicitly: PIL "L" conversion). Or 1 / 3: convert to that. */
    int channels;
    const char *indices; /* a subset, as after '@' in a spec; NULL: all */
    int skip_corrupt;    /* as mloc_dataset_options.skip_corrupt */
} mloc_eval_data_options;

mloc_eval_data_options mloc_eval_data_options_default(void);

/* Open the dataset `spec` names, fitted to m's input (C, H, W) as opt says.
 * What was done is recorded in d->prep ("pad 28x28 -> 32x32 (...); gray ->
 * RGB (replicated)"), NULL when nothing was; callers show it as a note.
 * ERR_USAGE naming the spec and both sizes when the images cannot fit. */
mloc_status mloc_eval_dataset_open(mloc_ctx *ctx, mloc_dataset *d, const char *spec,
                                   const mloc_model *m, const mloc_eval_data_options *opt);

/* The evaluation pipeline: the `none` preset (ToTensor, then Normalize with
 * `norm`) keeping the image size, so images must already fit the encoder
 * (mloc_eval_dataset_open). */
mloc_status mloc_eval_pipeline(mloc_ctx *ctx, mloc_aug_pipeline *pipe, mloc_aug_norm norm);

/* ---- features ------------------------------------------------------------- */

/* The value id a name stands for: a tap ("prep", ..., "res2"), "feature"
 * (m->feature, the encoder output) or "input" (the normalized pixels).
 * ERR_USAGE listing the valid names otherwise. */
mloc_status mloc_eval_find_value(mloc_ctx *ctx, const mloc_model *m, const char *name,
                                 int *value);

/* out (n, D) float32, D = mloc_model_value_numel(m, value): row i is value
 * `value` (a tap's value, m->feature, or any value id; -1 means m->feature)
 * of image indices[i] of d (indices NULL: images 0..n-1), flattened.
 *
 * The model is run in eval mode on consecutive chunks of B = min(batch, n)
 * images (batch 0: 256); the last chunk may be smaller (the backend pads it).
 * It is re-planned for B unless it already is (so a training loop that calls
 * this between steps keeps its plan when it uses the same batch; otherwise
 * its next training forward plans again). Only the nodes up to the producer
 * of `value` run (mloc_model_forward's `upto`), so early taps are cheap; the
 * input value itself gives the normalized pixels without a forward.
 *
 * pipe NULL: mloc_eval_pipeline with HALF. A pipeline with random steps
 * draws view 0 from stream (seed 0, "features", no epoch, index). Progress
 * is reported as "features" in images.
 * ERR_USAGE if d's images do not match the model's input (C, H, W) after
 * the pipeline, or an index is out of range. */
mloc_status mloc_features_extract(mloc_ctx *ctx, mloc_model *m, const mloc_dataset *d,
                                  const int64_t *indices, int64_t n, int value, int batch,
                                  const mloc_aug_pipeline *pipe, float *out);

/* Labels of images indices[0..n) (NULL: 0..n-1) into labels; ERR_DATA
 * naming the spec and image if one is unlabelled (-1). */
mloc_status mloc_features_labels(mloc_ctx *ctx, int32_t *labels, const mloc_dataset *d,
                                 const int64_t *indices, int64_t n);

/* Rows scaled in place to unit l2 norm: x / max(||x||, 1e-12), the norm
 * summed in double (torch.nn.functional.normalize). */
void mloc_features_l2_normalize(float *x, int64_t n, int64_t D);

/* ---- weighted kNN (the kNN monitor of the SSLMem code; InstDisc, Wu et al.
 * 2018) ---------------------------------------------------------------------
 * For a test feature q and training features t_j with labels y_j:
 *   s_j = <q/|q|, t_j/|t_j|>                  cosine similarity
 *   N   = the k largest s_j (ties: lower j first)
 *   score_c = sum_{j in N, y_j = c} exp(s_j / T)
 *   prediction = argmax_c score_c (ties: lower class)
 * Top-1 accuracy is the share of test points predicted right. Deviations from
 * the reference (torch.topk / argsort): ties are broken deterministically as
 * above, and the weights are computed as exp((s_j - s_max)/T) in double, which
 * scales every score of a point by the same factor (same argmax) but cannot
 * overflow for a small T. k larger than the training set is clamped to it. */

typedef struct {
    int k;          /* neighbours; default 200 */
    double t;       /* temperature; default 0.5 */
    int batch;      /* forward batch for the features; default 256 */
    int value;      /* value id to compare; -1 (default): m->feature */
    const mloc_aug_pipeline *pipe; /* NULL (default): mloc_eval_pipeline, HALF */
} mloc_knn_config;

mloc_knn_config mloc_knn_config_default(void);

/* Predictions for n_test test features (n_test, D) against n_train
 * training features (n_train, D) with labels in 0..n_classes-1; neither
 * needs to be normalized (both are, on the fly, without copying the
 * training set). The similarities are computed with oneDNN's sgemm on
 * blocks of 256 test x 4096 training rows (memory stays at a few MB besides
 * the inputs; fewer test rows per block when k is in the tens of
 * thousands), the k best kept in a heap per test row. ERR_USAGE for
 * k < 1, T <= 0 or empty sets; ERR_DATA for a label out of range or a
 * non-finite feature. Progress "knn" in test rows. */
mloc_status mloc_knn_predict(mloc_ctx *ctx, int32_t *pred, const float *train,
                             const int32_t *train_labels, int64_t n_train, const float *test,
                             int64_t n_test, int64_t D, int n_classes, int k, double t);
/* The readable reference of the same rule (double precision, full sort of
 * every row); for tests. */
mloc_status mloc_knn_predict_ref(mloc_ctx *ctx, int32_t *pred, const float *train,
                                 const int32_t *train_labels, int64_t n_train, const float *test,
                                 int64_t n_test, int64_t D, int n_classes, int k, double t);

/* Extract the features of both sets (mloc_features_extract with cfg's
 * value, batch and pipeline), predict every test point and write its top-1
 * accuracy in [0, 1] to *acc. Indices NULL: every image. n_classes is the
 * larger of the two datasets'. Every image must be labelled. */
mloc_status mloc_knn_accuracy(mloc_ctx *ctx, mloc_model *m, const mloc_dataset *train,
                              const int64_t *train_idx, int64_t n_train,
                              const mloc_dataset *test, const int64_t *test_idx,
                              int64_t n_test, const mloc_knn_config *cfg, double *acc);

/* ---- linear probe ----------------------------------------------------------
 * A linear classifier z = W x + b (W (K, D), b (K), zero-initialised) on the
 * frozen encoder's features, trained with softmax cross-entropy
 * (mloc_cross_entropy, mean over the mini-batch) for E epochs over mini-
 * batches of a fresh permutation each epoch (stream ("probe-shuffle", epoch)
 * of cfg->seed; the last batch of an epoch may be smaller), by Adam or SGD
 * (optim.h, torch semantics) with a cosine-decayed rate (to 0 at the last
 * step) or a constant one.
 *
 * Features are standardised by default: every dimension shifted and scaled
 * by the training set's mean and standard deviation, (x - mu) / sqrt(var +
 * 1e-5), the test set with the training statistics. This is what a
 * BatchNorm1d(affine=False) in front of the linear layer, common in SSL
 * linear evaluation, does at test time, and lets one learning rate serve
 * every tap whatever its scale. l2 normalisation of each row and raw
 * features are the alternatives.
 *
 * The kernels are plain loops with a fixed summation order, parallel over
 * independent outputs only, so a result is bitwise the same for a seed
 * whatever the thread count. */

typedef enum {
    MLOC_PROBE_STANDARDIZE = 0, /* per-dimension z-score with training statistics */
    MLOC_PROBE_L2,              /* rows to unit l2 norm */
    MLOC_PROBE_RAW              /* unchanged */
} mloc_probe_prep;

const char *mloc_probe_prep_name(mloc_probe_prep p); /* "standardize", "l2", "raw" */
int mloc_probe_prep_parse(const char *name);         /* -1 if unknown */

typedef struct {
    int epochs;              /* E; default 30 */
    int batch;               /* mini-batch (and forward batch); default 256 */
    mloc_optim_kind optim;   /* MLOC_OPTIM_ADAM (default) or MLOC_OPTIM_SGD */
    double lr;               /* default 1e-3 (Adam); SGD works with ~0.1 */
    double momentum;         /* SGD; default 0.9 */
    double weight_decay;     /* L2 (torch's weight_decay); default 0 */
    int cosine;              /* 1 (default): cosine decay over all steps; 0: constant */
    mloc_probe_prep prep;    /* default STANDARDIZE */
    uint64_t seed;           /* shuffle streams; default 0 */
    int value;               /* mloc_probe_run: value id; -1 (default): m->feature */
    const mloc_aug_pipeline *pipe; /* mloc_probe_run: NULL (default): eval pipeline, HALF */
} mloc_probe_config;

mloc_probe_config mloc_probe_config_default(void);

typedef struct {
    double train_top1;       /* accuracy on the training features after the last epoch */
    double test_top1;        /* on the test features (0 when there are none) */
    double final_loss;       /* mean cross-entropy over the last epoch's batches */
    int64_t steps;           /* optimizer steps taken */
    /* Optional outputs: if non-NULL on entry, receive W (K*D, row-major) and
     * b (K), in the preprocessed feature space. */
    float *weight;
    float *bias;
} mloc_probe_result;

/* Train the probe on (n_train, D) features with labels in 0..K-1 and
 * evaluate it on (n_test, D) test features (n_test may be 0, test NULL).
 * train and test are preprocessed in place (cfg->prep). Progress "probe" in
 * epochs with the epoch's loss. ERR_USAGE for out-of-range settings (naming
 * the field), ERR_DATA for labels out of range or non-finite features,
 * ERR_DIVERGED if the loss becomes non-finite. */
mloc_status mloc_probe_fit(mloc_ctx *ctx, mloc_probe_result *res, float *train,
                           const int32_t *train_labels, int64_t n_train, float *test,
                           const int32_t *test_labels, int64_t n_test, int64_t D, int K,
                           const mloc_probe_config *cfg);

/* Extract features of both sets once (frozen encoder, value cfg->value) and
 * fit the probe. Indices NULL: every image. K is the larger n_classes. */
mloc_status mloc_probe_run(mloc_ctx *ctx, mloc_model *m, mloc_probe_result *res,
                           const mloc_dataset *train, const int64_t *train_idx, int64_t n_train,
                           const mloc_dataset *test, const int64_t *test_idx, int64_t n_test,
                           const mloc_probe_config *cfg);

#endif
