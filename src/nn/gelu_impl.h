/* gelu reference body; see gelu.c and real.h. */
#include "real.h"

#ifndef MLOC_GELU_CONSTANTS
#define MLOC_GELU_CONSTANTS
#define MLOC_SQRT1_2 0.70710678118654752440    /* 1/sqrt(2) */
#define MLOC_INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */
#endif

/* y = x Phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)). Saved for backward: x.
 * y may alias x. */
void FN(mloc_gelu_forward)(real *y, const real *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        acc v = x[i];
        y[i] = (real)(v * 0.5 * (1 + erf(v * MLOC_SQRT1_2)));
    }
}

/* dx = dy (Phi(x) + x phi(x)), phi(x) = exp(-x^2/2) / sqrt(2 pi)   (=). */
void FN(mloc_gelu_backward)(real *dx, const real *dy, const real *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        acc v = x[i];
        acc cdf = 0.5 * (1 + erf(v * MLOC_SQRT1_2));
        acc pdf = exp(-0.5 * v * v) * MLOC_INV_SQRT_2PI;
        dx[i] = (real)(dy[i] * (cdf + v * pdf));
    }
}
