/* relu reference body; see relu.c and real.h. */
#include "real.h"

/* y = max(x, 0) over n elements (x, y any shape). Written `x < 0 ? 0 : x` so
 * that a NaN propagates as in torch.relu (a diverging run stays visible).
 * Saved for backward: y. y may alias x (in place). */
void FN(mloc_relu_forward)(real *y, const real *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0 ? 0 : x[i];
}

/* dx = dy where y > 0, else 0 (=); PyTorch's threshold_backward on the
 * output, so the subgradient at 0 is 0. dx may alias dy. */
void FN(mloc_relu_backward)(real *dx, const real *dy, const real *y, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}
