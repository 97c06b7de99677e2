/* layernorm reference body; see layernorm.c and real.h.
 * x, y, dy, dx (M, D): each of the M rows (tokens) is normalised over its D
 * features. Rows are independent (one thread each); dgamma/dbeta sum over
 * rows in row order, one thread per feature, so nothing depends on the
 * thread count. */
#include "real.h"

/* Per row m:  mean = (1/D) sum_d x,  var = (1/D) sum_d (x - mean)^2 (biased),
 *             rstd = 1/sqrt(var + eps),  y = (x - mean) * rstd * gamma + beta.
 * Saved for backward: save_mean[m], save_rstd[m] (either may be NULL). */
void FN(mloc_layernorm_forward)(real *y, real *save_mean, real *save_rstd, const real *x,
                                const real *gamma, const real *beta, int M, int D,
                                double eps) {
    assert(M > 0 && D > 0 && eps >= 0);
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const real *xr = x + (int64_t)m * D;
        real *yr = y + (int64_t)m * D;
        acc sum = 0;
        for (int d = 0; d < D; d++) sum += xr[d];
        const acc mean = sum / D;
        acc ssd = 0;
        for (int d = 0; d < D; d++) ssd += (xr[d] - mean) * (xr[d] - mean);
        const acc rstd = 1.0 / sqrt(ssd / D + eps);
        for (int d = 0; d < D; d++)
            yr[d] = (real)((xr[d] - mean) * rstd * (gamma ? gamma[d] : 1) + (beta ? beta[d] : 0));
        if (save_mean) save_mean[m] = (real)mean;
        if (save_rstd) save_rstd[m] = (real)rstd;
    }
}

/* With xhat = (x - mean) * rstd and g = dy * gamma (per element):
 *   dx      = rstd * (g - mean_d(g) - xhat * mean_d(g * xhat))   (=)
 *   dgamma += sum_m dy * xhat                                     (+=)
 *   dbeta  += sum_m dy                                            (+=)
 * Each of dx, dgamma, dbeta may be NULL. */
void FN(mloc_layernorm_backward)(real *dx, real *dgamma, real *dbeta, const real *dy,
                                 const real *x, const real *save_mean, const real *save_rstd,
                                 const real *gamma, int M, int D) {
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) {
            const real *xr = x + (int64_t)m * D, *dyr = dy + (int64_t)m * D;
            const acc mean = save_mean[m], rstd = save_rstd[m];
            acc sum_g = 0, sum_gx = 0;
            for (int d = 0; d < D; d++) {
                acc g = (acc)dyr[d] * (gamma ? gamma[d] : 1);
                sum_g += g;
                sum_gx += g * ((xr[d] - mean) * rstd);
            }
            const acc mean_g = sum_g / D, mean_gx = sum_gx / D;
            real *dxr = dx + (int64_t)m * D;
            for (int d = 0; d < D; d++) {
                acc g = (acc)dyr[d] * (gamma ? gamma[d] : 1);
                acc xhat = (xr[d] - mean) * rstd;
                dxr[d] = (real)(rstd * (g - mean_g - xhat * mean_gx));
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static)
        for (int d = 0; d < D; d++) {
            acc sg = 0, sb = 0;
            for (int m = 0; m < M; m++) {
                acc g = dy[(int64_t)m * D + d];
                sb += g;
                sg += g * ((x[(int64_t)m * D + d] - (acc)save_mean[m]) * save_rstd[m]);
            }
            if (dgamma) dgamma[d] += (real)sg;
            if (dbeta) dbeta[d] += (real)sb;
        }
    }
}
