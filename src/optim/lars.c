/* LARS as in solo-learn solo/utils/lars.py (copied from Lightning Bolts;
 * You, Gitman & Ginsburg 2017, arXiv:1708.03888, eq. 6), one entry at a time:
 *
 *     d = g
 *     if adapt and ||p|| != 0 and ||g|| != 0:
 *         trust = eta * ||p|| / (||g|| + wd * ||p|| + eps)
 *         if clip_lars: trust = min(trust / lr, 1)
 *         d = (g + wd * p) * trust
 *     then SGD momentum / nesterov on d, and p = p - lr * d
 *
 * `adapt` is 0 for biases and norm parameters when exclude_bias_n_norm is
 * set (solo-learn tests p.ndim != 1; memloc uses the table roles, which
 * select the same tensors). Such entries, and entries whose norm is zero, get
 * neither the trust ratio nor weight decay — that is the reference's
 * behaviour, kept on purpose.
 *
 * Deviation: torch computes the norms and the ratio in float32; memloc sums
 * the squares in double over fixed chunks (bitwise independent of thread
 * count) and forms the ratio in double before casting it to float. */
#include <math.h>

#include "optim/internal.h"

double optim_sumsq(const float *x, int64_t n, double *partial, int threads) {
    int64_t chunks = (n + OPTIM_NORM_CHUNK - 1) / OPTIM_NORM_CHUNK;
#pragma omp parallel for num_threads(threads) if (n >= OPTIM_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * OPTIM_NORM_CHUNK;
        int64_t hi = lo + OPTIM_NORM_CHUNK < n ? lo + OPTIM_NORM_CHUNK : n;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        partial[c] = s;
    }
    double total = 0;
    for (int64_t c = 0; c < chunks; c++) total += partial[c];
    return total;
}

void optim_lars_entry(float *p, float *buf, unsigned char *has_buf, const float *g, int64_t n,
                      const mloc_optim_config *cfg, double lr, int adapt, double *partial,
                      int threads) {
    /* d = (g + wd*p) * trust in the reference's two roundings; folding trust
     * into the coefficients (g*trust + p*(wd*trust)) would round differently. */
    int scale = 0;
    float trust_f = 1.0f;
    if (adapt) {
        double p_norm = sqrt(optim_sumsq(p, n, partial, threads));
        double g_norm = sqrt(optim_sumsq(g, n, partial, threads));
        if (p_norm != 0 && g_norm != 0) {
            double trust = cfg->eta * p_norm / (g_norm + p_norm * cfg->weight_decay + cfg->eps);
            if (cfg->clip_lars) trust = fmin(trust / lr, 1.0); /* lr 0: inf -> 1 */
            trust_f = (float)trust;
            scale = 1;
        }
    }
    mloc_optim_config sgd = *cfg;
    sgd.weight_decay = 0; /* LARS applies its decay inside the trust scaling */
    optim_sgd_coef c = optim_sgd_coef_make(&sgd, lr);
    const float wd = (float)cfg->weight_decay, mom = c.momentum, omd = c.one_minus_dampening;
    const float neg_lr = c.neg_lr;
    const int use_mom = c.use_momentum, nesterov = c.nesterov;
    const int first = use_mom && !*has_buf;
#pragma omp parallel for num_threads(threads) if (n >= OPTIM_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (scale) d = (d + wd * p[i]) * trust_f;
        if (use_mom) {
            float b = first ? d : buf[i] * mom + omd * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        p[i] = p[i] + neg_lr * d;
    }
    if (use_mom) *has_buf = 1;
}
