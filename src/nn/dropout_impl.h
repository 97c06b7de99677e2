/* dropout reference body; see dropout.c and real.h. */
#include "real.h"

/* y = x * noise with noise = mask / (1-p) (0 when p = 1), as aten's dropout
 * multiplies by its scaled noise: a dropped NaN stays NaN, as in PyTorch.
 * Saved for backward: the mask. */
void FN(mloc_dropout_forward)(real *y, const real *x, const uint8_t *mask, int64_t n,
                              double p) {
    assert(p >= 0 && p <= 1);
    const acc scale = p < 1 ? 1 / (1 - p) : 0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = (real)(x[i] * (mask[i] ? scale : 0));
}

/* dx = dy * mask / (1-p)   (=). */
void FN(mloc_dropout_backward)(real *dx, const real *dy, const uint8_t *mask, int64_t n,
                               double p) {
    assert(p >= 0 && p <= 1);
    const acc scale = p < 1 ? 1 / (1 - p) : 0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] = (real)(dy[i] * (mask[i] ? scale : 0));
}
