/* softmax reference body; see softmax.c and real.h. One thread per row. */
#include "real.h"

/* y[m,k] = exp(x[m,k] - max_k x[m,:]) / sum_k exp(x[m,k] - max). Saved: y. */
void FN(mloc_softmax_forward)(real *y, const real *x, int M, int K) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const real *xr = x + (int64_t)m * K;
        real *yr = y + (int64_t)m * K;
        acc mx = xr[0];
        for (int k = 1; k < K; k++)
            if (xr[k] > mx) mx = xr[k];
        acc sum = 0;
        for (int k = 0; k < K; k++) sum += exp(xr[k] - mx);
        for (int k = 0; k < K; k++) yr[k] = (real)(exp(xr[k] - mx) / sum);
    }
}

/* dx[m,k] = y[m,k] (dy[m,k] - sum_j dy[m,j] y[m,j])   (=). */
void FN(mloc_softmax_backward)(real *dx, const real *dy, const real *y, int M, int K) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const real *yr = y + (int64_t)m * K, *dyr = dy + (int64_t)m * K;
        acc dot = 0;
        for (int k = 0; k < K; k++) dot += (acc)dyr[k] * yr[k];
        real *dxr = dx + (int64_t)m * K;
        for (int k = 0; k < K; k++) dxr[k] = (real)(yr[k] * (dyr[k] - dot));
    }
}
