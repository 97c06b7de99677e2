/* avgpool_global reference body; see avgpool_global.c and real.h. */
#include "real.h"

/* y[n,c] = (1/HW) sum_i x[n,c,i] for x (N,C,HW), y (N,C). Nothing saved. */
void FN(mloc_avgpool_global_forward)(real *y, const real *x, int N, int C, int HW) {
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        acc sum = 0;
        for (int i = 0; i < HW; i++) sum += x[pl * HW + i];
        y[pl] = (real)(sum / HW);
    }
}

/* dx[n,c,i] = dy[n,c] / HW (=). */
void FN(mloc_avgpool_global_backward)(real *dx, const real *dy, int N, int C, int HW) {
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const real g = (real)((acc)dy[pl] / HW);
        for (int i = 0; i < HW; i++) dx[pl * HW + i] = g;
    }
}
