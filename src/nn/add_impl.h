/* add reference body; see add.c and real.h. */
#include "real.h"

/* y = a + b over n elements; y may alias a or b. Nothing saved. */
void FN(mloc_add_forward)(real *y, const real *a, const real *b, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* dy/da = dy/db = 1: the upstream gradient flows unchanged into both inputs.
 * This ACCUMULATES (da += dy): at a residual join one branch's gradient is
 * already there (written by the other path, or copied), and the other adds to
 * it. */
void FN(mloc_add_backward)(real *da, const real *dy, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) da[i] += dy[i];
}
