/* Optimizers and learning-rate schedules with PyTorch semantics.
 *
 * Parameters, gradients and optimizer moments are flat float blocks that share
 * the layout of the tensor table's param block (include/memloc/tensor.h):
 * entry i of the table owns elements [offset, offset + numel) of
 * store->param, store->grad and of every moment block. Buffers and counters
 * are never touched.
 *
 * Kinds and the references they follow (torch 1.13, single-tensor code path):
 *   sgd    torch.optim.SGD   momentum, dampening, nesterov, L2 weight decay
 *   adam   torch.optim.Adam  L2 weight decay added to the gradient, no amsgrad
 *   adamw  torch.optim.AdamW decoupled decay p *= 1 - lr*wd
 *   lars   solo-learn solo/utils/lars.py (from Lightning Bolts): SGD where
 *          each tensor's update (g + wd*w) is scaled by the trust ratio
 *          eta*||w|| / (||g|| + wd*||w|| + eps)
 *
 * A step is elementwise except for the LARS norms, which are summed in
 * double over fixed chunks in a fixed order, so the result is bitwise the
 * same for every thread count.
 *
 *     mloc_optim_config cfg = mloc_optim_config_default(MLOC_OPTIM_SGD);
 *     cfg.momentum = 0.9;
 *     mloc_optim *opt;
 *     MLOC_TRY(mloc_optim_create(ctx, &opt, &table, &cfg));
 *     for (step = 0; ...; step++) {
 *         mloc_optim_zero_grad(opt, &store);
 *         ... forward, backward (grads accumulate) ...
 *         MLOC_TRY(mloc_optim_step(opt, &store, mloc_schedule_lr(&sched, step)));
 *     }
 *     mloc_optim_free(opt); */
#ifndef MEMLOC_OPTIM_H
#define MEMLOC_OPTIM_H

#include <stdint.h>

#include "memloc/context.h"
#include "memloc/io.h"
#include "memloc/tensor.h"

/*        name    text */
#define MLOC_OPTIM_KIND_LIST(X) \
    X(SGD, "sgd")               \
    X(ADAM, "adam")             \
    X(ADAMW, "adamw")           \
    X(LARS, "lars")

typedef enum {
#define MLOC_X(name, text) MLOC_OPTIM_##name,
    MLOC_OPTIM_KIND_LIST(MLOC_X)
#undef MLOC_X
    MLOC_OPTIM_KIND_COUNT
} mloc_optim_kind;

/* "sgd", "adam", ...; "?" if out of range. */
const char *mloc_optim_kind_name(mloc_optim_kind kind);
/* Parse a kind name; -1 if unknown. */
int mloc_optim_kind_parse(const char *name);

/* Hyper-parameters (the learning rate is passed to each step). The defaults
 * are the reference constructors' defaults; fields a kind does not use are
 * ignored.
 *                          sgd    adam    adamw   lars
 *   momentum               0      -       -       0      (SimCLR recipes: 0.9)
 *   dampening              0      -       -       0
 *   nesterov               0      -       -       0
 *   weight_decay           0      0       1e-2    0
 *   beta1, beta2           -      0.9, 0.999      -
 *   eps                    -      1e-8    1e-8    1e-8   (LARS: trust-ratio denominator)
 *   eta                    -      -       -       1e-3   (LARS trust coefficient)
 *   clip_lars              -      -       -       0
 *   exclude_bias_n_norm    -      -       -       0 */
typedef struct {
    mloc_optim_kind kind;
    double momentum;
    double dampening;
    int nesterov;            /* needs momentum > 0 and dampening 0 (as torch) */
    double weight_decay;
    double beta1, beta2;
    double eps;
    double eta;
    /* LARS: scale the update by min(trust/lr, 1) instead of trust, so the
     * effective rate is min(eta*||w||/(...), lr). */
    int clip_lars;
    /* LARS: entries with role BIAS, NORM_WEIGHT or NORM_BIAS (solo-learn:
     * p.ndim == 1) get neither the trust ratio nor weight decay. */
    int exclude_bias_n_norm;
} mloc_optim_config;

mloc_optim_config mloc_optim_config_default(mloc_optim_kind kind);

typedef struct mloc_optim mloc_optim;

/* Create an optimizer over every param-block entry of `table` (borrowed: it
 * must outlive the optimizer and not grow). All entries start trainable and
 * with empty state, as a fresh torch optimizer. ERR_CONFIG names the option
 * that is out of range. */
mloc_status mloc_optim_create(mloc_ctx *ctx, mloc_optim **out, const mloc_table *table,
                              const mloc_optim_config *cfg);
void mloc_optim_free(mloc_optim *opt);
const mloc_optim_config *mloc_optim_get_config(const mloc_optim *opt);

/* One update of every trainable entry of store->param from store->grad with
 * learning rate lr (>= 0). Grads are read, never zeroed. Frozen entries and
 * their moments are left bitwise untouched and their step count does not
 * advance (as a torch parameter whose .grad is None). */
mloc_status mloc_optim_step(mloc_optim *opt, mloc_store *store, double lr);
/* grad = 0 for the whole param block (torch zero_grad(set_to_none=False)). */
void mloc_optim_zero_grad(const mloc_optim *opt, mloc_store *store);

/* Freeze (0) or unfreeze (1) table entry `entry`; ERR_USAGE if it is not a
 * param-block entry. Fine-tuning selected blocks freezes all, then unfreezes
 * the chosen ones. */
mloc_status mloc_optim_set_trainable(mloc_optim *opt, int entry, int trainable);
void mloc_optim_set_trainable_all(mloc_optim *opt, int trainable);
int mloc_optim_is_trainable(const mloc_optim *opt, int entry);

/* Number of mloc_optim_step calls so far (saved as "optim.step"). */
int64_t mloc_optim_steps(const mloc_optim *opt);

/* ---- state for checkpoints -------------------------------------------
 * Named tensors, with the PyTorch state names after "optim.":
 *   optim.step                          I64 []  steps taken (all kinds)
 *   optim.momentum_buffer.<param name>  F32     sgd/lars with momentum != 0;
 *        present only once the entry has one (torch creates it at the
 *        entry's first step as a copy of the update, without dampening)
 *   optim.exp_avg.<param name>          F32     adam/adamw
 *   optim.exp_avg_sq.<param name>       F32     adam/adamw
 *   optim.param_step.<param name>       I64 []  adam/adamw, torch's per-
 *        parameter state["step"] (differs from optim.step for entries that
 *        were frozen for some steps)
 * The trainable mask and the hyper-parameters are configuration, not
 * state: they are not saved. */

/* Add the state to a writer. The data is borrowed until the writer saves:
 * do not step or free the optimizer in between. */
mloc_status mloc_optim_add_to_writer(const mloc_optim *opt, mloc_st_writer *w);
/* Restore the state from a file that may hold other tensors too (names not
 * starting with "optim." are ignored). Every name under "optim." must be one
 * this optimizer uses, with the table entry's shape and dtype F32 (moments)
 * or I64 (steps); adam/adamw need all three tensors of every entry. The file
 * is checked completely before anything is changed, so on failure the
 * optimizer keeps its previous state. */
mloc_status mloc_optim_load(mloc_optim *opt, const mloc_st_file *f);

/* ---- learning-rate schedules --------------------------------------------
 * Evaluated per step (iteration), in closed form:
 *   CONSTANT        lr(s) = base_lr
 *   WARMUP_COSINE   s < W:       base_lr * (f0 + (1 - f0) * s / W)
 *                   W <= s < T:  min_lr + (base_lr - min_lr) * (1 + cos(pi (s-W)/(T-W))) / 2
 *                   s >= T:      min_lr
 * with W = warmup_steps, f0 = warmup_start_factor, T = total_steps. This is
 * torch's SequentialLR([LinearLR(opt, start_factor=f0, total_iters=W),
 * CosineAnnealingLR(opt, T_max=T-W, eta_min=min_lr)], milestones=[W])
 * stepped once per iteration: lr(s) is the rate in effect after s calls of
 * scheduler.step() (torch evaluates both recursively; the closed form agrees
 * to rounding). Deviation: past T torch's cosine rises again; memloc holds
 * min_lr. W = 0 is a plain CosineAnnealingLR(T_max=T). */
typedef enum { MLOC_SCHEDULE_CONSTANT = 0, MLOC_SCHEDULE_WARMUP_COSINE } mloc_schedule_kind;

typedef struct {
    mloc_schedule_kind kind;
    double base_lr;
    int64_t warmup_steps;         /* W >= 0 */
    double warmup_start_factor;   /* f0 in [0, 1]; torch LinearLR default 1/3 */
    int64_t total_steps;          /* T > W */
    double min_lr;                /* eta_min, default 0 */
} mloc_schedule;

mloc_schedule mloc_schedule_constant(double base_lr);
mloc_schedule mloc_schedule_warmup_cosine(double base_lr, int64_t warmup_steps,
                                          double warmup_start_factor, int64_t total_steps,
                                          double min_lr);
/* ERR_CONFIG naming the field that is out of range. */
mloc_status mloc_schedule_check(mloc_ctx *ctx, const mloc_schedule *s);
/* The rate for step `step` (0-based); steps < 0 count as 0. */
double mloc_schedule_lr(const mloc_schedule *s, int64_t step);

#endif
