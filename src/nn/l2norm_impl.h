/* l2norm reference body; see l2norm.c and real.h.
 *
 * x, y (M, D). Per row m: n_m = ||x_m|| (unclamped, saved), c_m = max(n_m, eps),
 * y_m = x_m / c_m. Backward (=):
 *   n_m >= eps:  dx_m = (dy_m - y_m (y_m . dy_m)) / n_m
 *   n_m <  eps:  dx_m = dy_m / eps   (clamp_min passes no gradient to the norm)
 * One thread per row, sequential double sums: thread-count invariant. */
#include "real.h"

void FN(mloc_l2norm_forward)(real *y, real *save_norm, const real *x, int M, int D, double eps) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const real *xr = x + (int64_t)m * D;
        real *yr = y + (int64_t)m * D;
        acc ss = 0;
        for (int d = 0; d < D; d++) ss += (acc)xr[d] * xr[d];
        const acc n = sqrt(ss), c = n < eps ? eps : n;
        for (int d = 0; d < D; d++) yr[d] = (real)(xr[d] / c);
        if (save_norm) save_norm[m] = (real)n;
    }
}

void FN(mloc_l2norm_backward)(real *dx, const real *dy, const real *y, const real *save_norm,
                              int M, int D, double eps) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const real *yr = y + (int64_t)m * D, *dyr = dy + (int64_t)m * D;
        real *dxr = dx + (int64_t)m * D;
        const acc n = save_norm[m];
        if (n < eps) {
            for (int d = 0; d < D; d++) dxr[d] = (real)(dyr[d] / eps);
            continue;
        }
        acc dot = 0;
        for (int d = 0; d < D; d++) dot += (acc)yr[d] * dyr[d];
        for (int d = 0; d < D; d++) dxr[d] = (real)((dyr[d] - yr[d] * dot) / n);
    }
}
