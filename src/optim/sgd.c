/* torch.optim.SGD (torch 1.13, _single_tensor_sgd), one entry at a time:
 *
 *     d = g + wd * p                          (if wd != 0)
 *     buf = d                                 (first step of this entry)
 *     buf = momentum * buf + (1 - dampening) * d   (later steps)
 *     d = d + momentum * buf   (nesterov)   or   d = buf
 *     p = p - lr * d
 *
 * All arithmetic is float32 with the coefficients cast to float, as torch's
 * CPU kernels do with Python-float alphas. */
#include "optim/internal.h"

optim_sgd_coef optim_sgd_coef_make(const mloc_optim_config *cfg, double lr) {
    optim_sgd_coef c;
    c.weight_decay = (float)cfg->weight_decay;
    c.momentum = (float)cfg->momentum;
    c.one_minus_dampening = (float)(1.0 - cfg->dampening);
    c.neg_lr = (float)(-lr);
    c.use_momentum = cfg->momentum != 0;
    c.nesterov = cfg->nesterov;
    return c;
}

void optim_sgd_entry(float *p, float *buf, unsigned char *has_buf, const float *g, int64_t n,
                     const optim_sgd_coef *c, int threads) {
    const float wd = c->weight_decay, mom = c->momentum, omd = c->one_minus_dampening;
    const float neg_lr = c->neg_lr;
    const int use_wd = wd != 0, use_mom = c->use_momentum, nesterov = c->nesterov;
    const int first = use_mom && !*has_buf;
#pragma omp parallel for num_threads(threads) if (n >= OPTIM_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (use_wd) d = d + wd * p[i];
        if (use_mom) {
            float b = first ? d : buf[i] * mom + omd * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[i] = p[i] + neg_lr * d;
    }
    if (use_mom) *has_buf = 1;
}
