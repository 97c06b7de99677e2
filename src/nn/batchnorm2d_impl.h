/* batchnorm2d reference body; see batchnorm2d.c and real.h.
 *
 * x, y, dy, dx are (N, C, HW); per channel c the statistics run over the
 * M = N*HW values x[n,c,i]. Each channel is handled by one thread with
 * sequential double sums, so results do not depend on the thread count. */
#include "real.h"

/* Training forward, per channel c:
 *   mean   = (1/M) sum x
 *   var    = (1/M) sum (x - mean)^2          (biased: used to normalise)
 *   invstd = 1 / sqrt(var + eps)
 *   y      = (x - mean) * invstd * gamma[c] + beta[c]
 *   running_mean = (1 - m) running_mean + m mean
 *   running_var  = (1 - m) running_var  + m var * M / (M - 1)   (unbiased)
 * with m = s->momentum (PyTorch 0.1) and eps = s->eps (1e-5). Two passes
 * (mean, then squared deviations) so var never loses precision to
 * cancellation. Saved for backward: save_mean[c] = mean, save_invstd[c] =
 * invstd (either may be NULL). running_mean/var NULL: not updated. gamma/beta
 * NULL: 1 / 0. PyTorch refuses M = 1 (the unbiased variance is undefined). */
void FN(mloc_batchnorm2d_forward_train)(real *y, real *save_mean, real *save_invstd,
                                        real *running_mean, real *running_var,
                                        const real *x, const real *gamma, const real *beta,
                                        const mloc_bn_shape *s) {
    const int N = s->N, C = s->C, HW = s->HW;
    const int64_t M = (int64_t)N * HW;
    assert(M > 1);
    const acc eps = s->eps, mom = s->momentum;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        acc sum = 0;
        for (int n = 0; n < N; n++) {
            const real *xp = x + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) sum += xp[i];
        }
        const acc mean = sum / (acc)M;
        acc ssd = 0;
        for (int n = 0; n < N; n++) {
            const real *xp = x + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                acc d = xp[i] - mean;
                ssd += d * d;
            }
        }
        const acc var = ssd / (acc)M;
        const acc invstd = 1.0 / sqrt(var + eps);
        const acc g = gamma ? gamma[c] : 1, b = beta ? beta[c] : 0;
        for (int n = 0; n < N; n++) {
            const real *xp = x + ((int64_t)n * C + c) * HW;
            real *yp = y + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = (real)((xp[i] - mean) * invstd * g + b);
        }
        if (save_mean) save_mean[c] = (real)mean;
        if (save_invstd) save_invstd[c] = (real)invstd;
        if (running_mean) running_mean[c] = (real)((1 - mom) * running_mean[c] + mom * mean);
        if (running_var)
            running_var[c] =
                (real)((1 - mom) * running_var[c] + mom * ssd / (acc)(M - 1));
    }
}

/* Eval forward: y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta. */
void FN(mloc_batchnorm2d_forward_eval)(real *y, const real *x, const real *gamma,
                                       const real *beta, const real *running_mean,
                                       const real *running_var, const mloc_bn_shape *s) {
    const int N = s->N, C = s->C, HW = s->HW;
    const acc eps = s->eps;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const acc invstd = 1.0 / sqrt((acc)running_var[c] + eps);
            const acc g = gamma ? gamma[c] : 1, b = beta ? beta[c] : 0;
            const acc mean = running_mean[c];
            const real *xp = x + ((int64_t)n * C + c) * HW;
            real *yp = y + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) yp[i] = (real)((xp[i] - mean) * invstd * g + b);
        }
}

/* Backward of the training forward, per channel, with xhat = (x - mean) * invstd
 * recomputed from the saved mean and invstd (the same eps as the forward):
 *   dbeta  += sum dy
 *   dgamma += sum dy * xhat
 *   dx      = gamma * invstd * (dy - sum(dy)/M - xhat * sum(dy * xhat)/M)   (=)
 * The batch statistics depend on x, hence the two mean terms (Ioffe & Szegedy
 * 2015, section 3). dx, dgamma, dbeta may each be NULL. */
void FN(mloc_batchnorm2d_backward)(real *dx, real *dgamma, real *dbeta, const real *dy,
                                   const real *x, const real *save_mean,
                                   const real *save_invstd, const real *gamma,
                                   const mloc_bn_shape *s) {
    const int N = s->N, C = s->C, HW = s->HW;
    const int64_t M = (int64_t)N * HW;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        const acc mean = save_mean[c], invstd = save_invstd[c];
        acc sum_dy = 0, sum_dy_xhat = 0;
        for (int n = 0; n < N; n++) {
            const real *xp = x + ((int64_t)n * C + c) * HW;
            const real *dyp = dy + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                sum_dy += dyp[i];
                sum_dy_xhat += (acc)dyp[i] * ((xp[i] - mean) * invstd);
            }
        }
        if (dbeta) dbeta[c] += (real)sum_dy;
        if (dgamma) dgamma[c] += (real)sum_dy_xhat;
        if (!dx) continue;
        const acc k = (gamma ? gamma[c] : 1) * invstd;
        const acc mean_dy = sum_dy / (acc)M, mean_dy_xhat = sum_dy_xhat / (acc)M;
        for (int n = 0; n < N; n++) {
            const real *xp = x + ((int64_t)n * C + c) * HW;
            const real *dyp = dy + ((int64_t)n * C + c) * HW;
            real *dxp = dx + ((int64_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) {
                acc xhat = (xp[i] - mean) * invstd;
                dxp[i] = (real)(k * (dyp[i] - mean_dy - xhat * mean_dy_xhat));
            }
        }
    }
}
