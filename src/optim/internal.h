/* Module-internal declarations of src/optim: the optimizer object and the
 * per-entry update kernels of each kind. */
#ifndef MLOC_OPTIM_INTERNAL_H
#define MLOC_OPTIM_INTERNAL_H

#include <stdint.h>

#include "memloc/optim.h"

/* Entries with at least this many elements are updated by several threads;
 * smaller ones are not worth waking the team. Elementwise updates are
 * bitwise independent of the split. */
#define OPTIM_PAR_MIN 32768
/* LARS norms are summed in double over chunks of this many elements, then
 * the chunk sums in chunk order: fixed order whatever the thread count. */
#define OPTIM_NORM_CHUNK 16384

struct mloc_optim {
    mloc_ctx *ctx;
    const mloc_table *table;     /* borrowed */
    mloc_optim_config cfg;
    int n;                       /* table entries at creation */
    int64_t numel;               /* param-block elements at creation */
    int64_t step;                /* mloc_optim_step calls */
    /* Moments in the param block's layout (NULL when the kind has none):
     * m1 = momentum_buffer (sgd, lars) or exp_avg (adam, adamw),
     * m2 = exp_avg_sq (adam, adamw). */
    float *m1;
    float *m2;
    unsigned char *trainable;    /* [n]; 0 for non-param entries */
    unsigned char *has_buf;      /* [n]; momentum buffer exists (sgd, lars) */
    int64_t *entry_step;         /* [n]; torch's per-parameter state["step"] */
    double *partial;             /* [max chunks]: LARS chunk sums */
};

/* Float coefficients of one step, cast from double exactly where torch casts
 * a Python float to the tensor's dtype. */
typedef struct {
    float weight_decay;          /* alpha of grad.add(param, alpha=wd) */
    float momentum;
    float one_minus_dampening;
    float neg_lr;                /* alpha of param.add_(d_p, alpha=-lr) */
    int use_momentum, nesterov;
} optim_sgd_coef;

optim_sgd_coef optim_sgd_coef_make(const mloc_optim_config *cfg, double lr);

/* torch.optim.SGD on one entry of n elements. buf is the entry's momentum
 * buffer (unused without momentum); has_buf says whether it exists yet and
 * is set once it does. */
void optim_sgd_entry(float *p, float *buf, unsigned char *has_buf, const float *g, int64_t n,
                     const optim_sgd_coef *c, int threads);

/* torch.optim.Adam (decoupled 0) or AdamW (decoupled 1) on one entry;
 * *step is the entry's step count, incremented first. */
void optim_adam_entry(float *p, float *exp_avg, float *exp_avg_sq, int64_t *step,
                      const float *g, int64_t n, const mloc_optim_config *cfg, double lr,
                      int decoupled, int threads);

/* solo-learn LARS on one entry. `adapt` is 0 for entries excluded from the
 * trust ratio and weight decay (exclude_bias_n_norm). partial holds
 * ceil(n / OPTIM_NORM_CHUNK) doubles of scratch. */
void optim_lars_entry(float *p, float *buf, unsigned char *has_buf, const float *g, int64_t n,
                      const mloc_optim_config *cfg, double lr, int adapt, double *partial,
                      int threads);

/* Sum of squares of x[0..n) in double: chunk sums in fixed chunks, added in
 * chunk order (bitwise independent of threads). */
double optim_sumsq(const float *x, int64_t n, double *partial, int threads);

#endif
