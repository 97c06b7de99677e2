/* Acting on memorization (SPEC.md section 8): memorization-guided
 * fine-tuning, pruning by UnitMem, layer exchange between encoders and the
 * single-unit check. Each is one command (memloc finetune, prune, swap,
 * unit-finetune) over these functions.
 *
 * Blocks and units. A *block* is a model module whose output is a tap: for
 * ResNet9 the eight conv blocks prep ... layer3_residual2 (SPEC.md 5). The
 * residual taps res1 and res2 are sums of two blocks' outputs and own no
 * parameters, so they are never selected, pruned or fine-tuned themselves.
 * The *parameters of unit u* of a conv-block tap are what produces its
 * channel u (SPEC.md 8): conv weight slice [u, :, :, :], conv bias [u], BN
 * weight [u] and BN bias [u]. Zeroing them makes the channel's BN output 0
 * in eval and training mode, so after ReLU (and max-pool) the unit outputs
 * the constant 0 for every input. Buffers (BN running statistics) are not
 * parameters of a unit and are never changed by pruning.
 *
 *     mloc_layer_scores s;
 *     MLOC_TRY(mloc_layer_scores_read(ctx, "runs/exp/metrics", &s));
 *     int blocks[3];
 *     MLOC_TRY(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_LAYERMEM, 2, 0, blocks));
 *     mloc_finetune_result r;
 *     MLOC_TRY(mloc_finetune_run(ctx, m, blocks, 2, &train, &test, &cfg, &r));
 *
 * Nothing here prints; the commands do. */
#ifndef MEMLOC_APPLY_H
#define MEMLOC_APPLY_H

#include <stdint.h>

#include "memloc/analysis.h"
#include "memloc/augment.h"
#include "memloc/context.h"
#include "memloc/data.h"
#include "memloc/metrics.h"
#include "memloc/model.h"

/* ---- blocks and units ------------------------------------------------------- */

/* The module producing tap `tap` if it is a block (its output is the tap and
 * the module owns parameters), else -1 (residual joins). */
int mloc_apply_tap_block(const mloc_model *m, int tap);
/* The tap a block module produces, or -1. */
int mloc_apply_block_tap(const mloc_model *m, int module);

/* Blocks of m in forward order: module ids into modules (capacity
 * m->n_modules); *n their count. */
void mloc_apply_blocks(const mloc_model *m, int *modules, int *n);

/* A run of elements of one parameter-table entry. */
typedef struct {
    int entry;        /* table entry */
    int64_t start;    /* first element, within the entry */
    int64_t count;
} mloc_param_span;

/* The parameters of unit `unit` of tap `tap`: the spans of the conv weight
 * slice, the conv bias (if the conv has one), the BN weight and BN bias (if
 * a BN follows the conv), found by walking back from the tap through
 * ReLU / max-pool to a BN and its conv; for a ViT's blocks.N.mlp.act (the
 * MLP's hidden neurons after GELU), the row of mlp.fc1.weight and its bias.
 * *n is 1..4. ERR_USAGE naming the tap when it ends in something else (a
 * residual sum: "res1 is a residual join without parameters of its own") or
 * the unit is out of range. */
mloc_status mloc_apply_unit_params(mloc_ctx *ctx, const mloc_model *m, int tap, int unit,
                                   mloc_param_span spans[4], int *n);

/* ---- LayerMem scores ------------------------------------------------------------ */

/* The LayerMem table of a metrics run, per tap in forward order. */
typedef struct {
    int n_taps;
    char (*taps)[64];
    double *layermem;   /* LayerMem on the random candidates (the table's first column) */
    double *delta;      /* ΔLayerMem */
    char source[4200];  /* the file read */
} mloc_layer_scores;

/* Read dir/layermem.json (written by memloc layermem), or
 * dir/metrics/layermem.json (an experiment directory). ERR_NOINPUT naming
 * both paths when neither exists; ERR_DATA naming the file and field for a
 * malformed table. */
mloc_status mloc_layer_scores_read(mloc_ctx *ctx, const char *dir, mloc_layer_scores *s);
void mloc_layer_scores_free(mloc_layer_scores *s);

/* ---- selecting blocks ------------------------------------------------------------ */

#define MLOC_SELECT_LIST(X)     \
    X(LAYERMEM, "layermem")     \
    X(DELTA, "delta")           \
    X(LAST, "last")             \
    X(RANDOM, "random")

typedef enum {
#define MLOC_X(id, name) MLOC_SELECT_##id,
    MLOC_SELECT_LIST(MLOC_X)
#undef MLOC_X
    MLOC_SELECT_COUNT
} mloc_select_rule;

const char *mloc_select_rule_name(mloc_select_rule r); /* "layermem", ...; "?" */
int mloc_select_rule_parse(const char *name);          /* -1 if unknown */

/* n blocks of m chosen by `rule`, written to modules[0..n) in forward order:
 *   LAYERMEM  the n blocks of highest LayerMem in s
 *   DELTA     the n blocks of highest ΔLayerMem in s
 *   LAST      the last n blocks of the encoder
 *   RANDOM    n distinct blocks drawn from stream ("finetune-select") of seed
 * For the score rules the candidates are the blocks whose tap is in s
 * (residual taps are skipped); ties keep forward order (the earlier block
 * first). s may be NULL for LAST and RANDOM. ERR_USAGE for n < 1, n larger
 * than the candidates, or a tap of s the model does not have (scores of
 * another architecture). */
mloc_status mloc_finetune_select(mloc_ctx *ctx, const mloc_model *m, const mloc_layer_scores *s,
                                 mloc_select_rule rule, int n, uint64_t seed, int *modules);

/* ---- memorization-guided fine-tuning ------------------------------------------------
 * The chosen blocks' parameters and a new linear classifier z = W f + b on
 * the encoder output f (m->feature, W (K, D) and b (K) initialised as
 * torch's nn.Linear, U(+-1/sqrt(D)), from stream ("finetune-head") of the
 * seed) are trained with softmax cross-entropy on the downstream training
 * set by Adam (torch semantics, constant rate); every other parameter is
 * frozen (bitwise unchanged) and the BN layers of the frozen blocks run in
 * eval mode (m->bn_eval), so their running statistics stay bitwise the same.
 * The fine-tuned blocks' BN layers train normally (batch statistics, their
 * running statistics update).
 *
 * Training views: augment 1 (default) is RandomResizedCrop(scale
 * 0.08-1) and a horizontal flip, the simclr preset without colour jitter and
 * grayscale (fine-tuning learns the downstream classes, colour is
 * information there); augment 0 uses the images as they are. Batches come
 * from the loader with shuffle and drop_last, keyed by (seed, epoch, image),
 * so every selection rule under the same seed sees the same batches and the
 * same head initialisation. Test accuracy is measured in eval mode on the
 * un-augmented test images (mloc_eval_pipeline). The head is not kept; the
 * blocks stay trained in m. */

typedef struct {
    int epochs;            /* default 5 */
    int batch;             /* default 128 (must not exceed the training images) */
    double lr;             /* Adam, blocks and head; default 1e-3 */
    double weight_decay;   /* L2 (torch's weight_decay); default 0 */
    int augment;           /* 1 (default): crop + flip; 0: none */
    mloc_aug_norm norm;    /* Normalize constants; default HALF */
    uint64_t seed;         /* head init, batch order, augmentation; default 0 */
    int workers;           /* loader threads; default 2 */
} mloc_finetune_config;

mloc_finetune_config mloc_finetune_config_default(void);

typedef struct {
    double train_top1;     /* on the augmented training batches of the last epoch */
    double test_top1;
    double final_loss;     /* mean cross-entropy over the last epoch's batches */
    int64_t steps;
    int64_t trained_params;/* parameters of the chosen blocks (the head not counted) */
} mloc_finetune_result;

/* Fine-tune blocks modules[0..n) of m (n 0: the head alone on the frozen
 * encoder, trained the same way) on train and report accuracy on test.
 * Images must fit the model (mloc_eval_dataset_open) and be labelled; K is
 * the larger n_classes. m->bn_eval is restored on return. Progress
 * "finetune" in epochs with the epoch's loss. ERR_USAGE for a module that
 * is not a block or settings out of range (naming the field), ERR_DIVERGED
 * if the loss is not finite. */
mloc_status mloc_finetune_run(mloc_ctx *ctx, mloc_model *m, const int *modules, int n,
                              const mloc_dataset *train, const mloc_dataset *test,
                              const mloc_finetune_config *cfg, mloc_finetune_result *res);

/* ---- pruning by UnitMem --------------------------------------------------------------- */

typedef enum { MLOC_PRUNE_TOP = 0, MLOC_PRUNE_BOTTOM, MLOC_PRUNE_RANDOM } mloc_prune_by;
typedef enum { MLOC_PRUNE_PER_TAP = 0, MLOC_PRUNE_GLOBAL } mloc_prune_scope;

const char *mloc_prune_by_name(mloc_prune_by b);       /* "top", "bottom", "random" */
int mloc_prune_by_parse(const char *name);             /* -1 if unknown */

typedef struct {
    mloc_prune_by by;          /* default TOP */
    double fraction;           /* P in [0, 1]; default 0.1 */
    mloc_prune_scope scope;    /* default PER_TAP */
    uint64_t seed;             /* RANDOM: stream ("prune-random", tap); default 0 */
    /* 0 (default): dead units (mu_max = 0, UnitMem 0) are not candidates:
     * they output 0 already, so pruning them changes nothing and would make
     * "bottom" a no-op. 1: they are. */
    int include_dead;
} mloc_prune_config;

mloc_prune_config mloc_prune_config_default(void);

typedef struct {
    int tap;                   /* model tap id */
    int unit;
    double score;              /* its UnitMem */
} mloc_unit_ref;

/* The units to prune. Candidates: the units of u's conv-block taps (taps of
 * u that are residual joins are skipped; a tap name the model lacks is
 * ERR_USAGE), without dead ones unless include_dead. PER_TAP takes
 * round(P * candidates of the tap) of each tap, GLOBAL round(P * all
 * candidates) over the encoder: TOP the highest UnitMem, BOTTOM the lowest
 * (ties: tap order, then unit index), RANDOM a seeded choice. *out
 * (malloc'ed, may be NULL when *n is 0) is sorted by tap, then unit. */
mloc_status mloc_prune_select(mloc_ctx *ctx, const mloc_model *m, const mloc_unit_scores *u,
                              const mloc_prune_config *cfg, mloc_unit_ref **out, int64_t *n);

/* Zero the parameters of each unit (mloc_apply_unit_params) and tell the
 * backend (mloc_model_params_changed). Nothing else changes. */
mloc_status mloc_prune_units(mloc_ctx *ctx, mloc_model *m, const mloc_unit_ref *units, int64_t n);

/* ---- layer exchange ---------------------------------------------------------------------- */

/* Copy into a every table entry (parameters, BN running statistics and
 * counters) of the modules named in blocks[0..n) from b, matched by tensor
 * name. Both models must have each module; every tensor must exist in b with
 * the same shape: ERR_USAGE "swap: layer2.conv.weight: A [128, 64, 3, 3],
 * B [64, 64, 3, 3]" otherwise, and a is left unchanged (everything is checked
 * before anything is copied). *copied (may be NULL) counts the tensors. */
mloc_status mloc_swap_blocks(mloc_ctx *ctx, mloc_model *a, const mloc_model *b,
                             const char *const *blocks, int n, int *copied);

/* ---- single-unit check -----------------------------------------------------------------------
 * Train only unit u's parameters (mloc_apply_unit_params) on one data point
 * x: the optimizer (Adam, torch semantics, no weight decay) has the four
 * entries trainable and every gradient outside the unit's slices is zeroed
 * before each step, so with a zero gradient and no weight decay every other
 * element stays bitwise the same. Every BN layer runs in eval mode (running
 * statistics fixed and unchanged).
 *
 * Loss: NT-Xent anchored on x (mloc_anchor_ntxent_f64) on the model's output
 * (the SimCLR projection head when the model has one, else the encoder
 * output). Each step draws `pairs` pairs of augmented views of x and one
 * view each of `negatives` other points of d chosen at random (SimCLR's
 * contrastive loss needs negatives; other views of x are never negatives),
 * from streams keyed by (seed, step). */

typedef struct {
    int steps;             /* optimizer steps; default 50 */
    int pairs;             /* B pairs of views of x per step; default 8 */
    int negatives;         /* views of other points per step; default 64 */
    double lr;             /* Adam; default 1e-3 */
    double temperature;    /* default 0.5 */
    uint64_t seed;         /* default 0 */
} mloc_unit_finetune_config;

mloc_unit_finetune_config mloc_unit_finetune_config_default(void);

/* Fine-tune unit `unit` of tap `tap` on image `point` of d with views of
 * pipeline aug. first_loss / last_loss (may be NULL) receive the mean loss
 * of the first and of the last tenth of the steps (at least one step each). m->bn_eval is restored on return. Progress
 * "unit-finetune" in steps. ERR_USAGE for a residual tap, a unit or point
 * out of range, fewer than 2 images in d. */
mloc_status mloc_unit_finetune(mloc_ctx *ctx, mloc_model *m, int tap, int unit, const mloc_dataset *d,
                               int64_t point, const mloc_aug_pipeline *aug,
                               const mloc_unit_finetune_config *cfg, double *first_loss,
                               double *last_loss);

/* The single-unit check of SPEC.md 8: UnitMem over an evaluation set (the
 * point and eval_points - 1 others of d chosen with mloc_metrics_choose,
 * tag "unit-check") with k views of `view_aug` (stream purpose "unitmem",
 * the seed of cfg), before and after mloc_unit_finetune of the unit.
 * Controls: the other units of the same tap (their parameters and inputs do
 * not change, so their UnitMem must stay exactly the same) and every unit of
 * the later taps (their input changes through the unit). When any of those
 * taps is signed (a ViT's), UnitMem is taken on |a| throughout (res->abs). */
typedef struct {
    double before, after;               /* UnitMem of the unit */
    double mu_before, mu_after;         /* its mean activation mu_u(x) on the point */
    int64_t argmax_before, argmax_after;/* its mu_max point (dataset index) */
    int dead_before, dead_after;        /* mu_max = 0: the unit never fires */
    double same_tap_before, same_tap_after, same_tap_max_change; /* mean UnitMem of the tap's
                                                                    other units, largest |change| */
    double later_before, later_after, later_max_change;          /* units of later taps */
    int64_t later_units;
    double first_loss, last_loss;
    int64_t n_points;
    int abs;                            /* UnitMem on |a|: some tap checked is signed (a ViT's) */
} mloc_unit_check_result;

mloc_status mloc_unit_check(mloc_ctx *ctx, mloc_model *m, int tap, int unit, const mloc_dataset *d,
                            int64_t point, const mloc_aug_pipeline *train_aug,
                            const mloc_aug_pipeline *view_aug, const mloc_unit_finetune_config *cfg,
                            int64_t eval_points, int k, mloc_unit_check_result *res);

/* NT-Xent anchored on one point. z (R, D) with R = 2P + M: rows 2p and
 * 2p+1 are the p-th pair of views of the anchor point, rows 2P .. R-1 one
 * view each of M other points. With u = z / max(||z||, 1e-12) and
 * s_ij = u_i . u_j / T, for every anchor row i < 2P with partner
 * j(i) = i xor 1:
 *   loss_i = -s_i,j(i) + log( exp(s_i,j(i)) + sum_{k >= 2P} exp(s_ik) )
 * and the loss is the mean over the 2P anchor rows (the negatives' rows are
 * not anchors; other views of the anchor point are not in the denominator).
 * dz (=, may be NULL) receives the gradient. Computed in double. */
double mloc_anchor_ntxent_f64(double *dz, const double *z, int pairs, int negatives, int D,
                              double temperature);

/* ---- comparison tables (the paper's application tables) ------------------------------ */

#define MLOC_APPLY_MAX_BLOCKS 64

/* One row of the fine-tuning table. */
typedef struct {
    int rule;                 /* mloc_select_rule; -1: the head alone (no block trained) */
    int n;                    /* blocks fine-tuned */
    int modules[MLOC_APPLY_MAX_BLOCKS];
    mloc_finetune_result res;
} mloc_finetune_row;

/* The paper's Table 4: the head alone on the frozen encoder, then every
 * selection rule (layermem, delta, last, random) for every n of ns[0..n_ns),
 * each from a fresh copy of the encoder in `weights` (opened without head)
 * with the same cfg: the same budget, head initialisation, batches and
 * augmentations. train / test must fit the encoder. rows holds
 * 1 + MLOC_SELECT_COUNT * n_ns entries; *n_rows receives the count. */
mloc_status mloc_finetune_compare(mloc_ctx *ctx, const char *weights, const mloc_layer_scores *s,
                                  const int *ns, int n_ns, const mloc_dataset *train,
                                  const mloc_dataset *test, const mloc_finetune_config *cfg,
                                  mloc_finetune_row *rows, int *n_rows);

/* One row of the pruning table. */
typedef struct {
    int by;                   /* mloc_prune_by; -1: the encoder as it is */
    double fraction;
    int64_t units;            /* units pruned */
    double train_top1, test_top1; /* linear probe (mloc_probe_run) */
} mloc_prune_row;

/* The pruning table: the unpruned encoder, then top / bottom / random for
 * every fraction of fractions[0..nf), each pruned from a fresh copy of
 * `weights` with base's scope, seed and include_dead, then a linear probe
 * (pc) re-trained on train and evaluated on test. rows holds 1 + 3 * nf
 * entries. */
mloc_status mloc_prune_compare(mloc_ctx *ctx, const char *weights, const mloc_unit_scores *u,
                               const double *fractions, int nf, const mloc_prune_config *base,
                               const mloc_dataset *train, const mloc_dataset *test,
                               const mloc_probe_config *pc, mloc_prune_row *rows, int *n_rows);

#define MLOC_SWAP_MAX_EVAL 4

/* One row of the layer-exchange table. */
typedef struct {
    char label[16];           /* "A", "B", "most", "least", "random" */
    int n;                    /* blocks of A replaced by B's (0 for A and B) */
    char blocks[512];         /* their names, comma-separated */
    double test_top1[MLOC_SWAP_MAX_EVAL]; /* probe accuracy per evaluation pair */
} mloc_swap_row;

/* The layer-exchange table: probe accuracy (pc) on every evaluation pair
 * (train_specs[i], test_specs[i]; opened fitted to each model with dopt) of
 * A, of B, and of A with its n blocks of highest LayerMem ("most"), lowest
 * ("least") and n random blocks ("random", stream "finetune-select" of
 * seed) replaced by B's. Candidates are the blocks of s whose tensors have
 * the same shapes in A and B (a 1-channel B cannot give its first conv to a
 * 3-channel A); n larger than the candidates is ERR_USAGE naming them. B
 * itself is probed on the same images converted to its input channels
 * (dopt.channels = B's: gray for a 1-channel B), the swapped encoders on
 * images fitted to A.
 * rows holds 5 entries. */
mloc_status mloc_swap_compare(mloc_ctx *ctx, const char *a_path, const char *b_path,
                              const mloc_layer_scores *s, int n, uint64_t seed,
                              const char *const *train_specs, const char *const *test_specs,
                              int n_eval, const mloc_eval_data_options *dopt,
                              const mloc_probe_config *pc, mloc_swap_row rows[5]);

#endif
