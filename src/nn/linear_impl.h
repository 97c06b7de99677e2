/* linear reference body; see linear.c and real.h.
 * x (N,I), w (O,I) (PyTorch's layout: one row per output unit), b (O) or
 * NULL, y (N,O). For ViT tokens N is batch*tokens. Every output element is
 * one sequential double sum computed by one thread, so results do not depend
 * on the thread count. */
#include "real.h"

/* y[n,o] = b[o] + sum_i x[n,i] w[o,i]. Saved for backward: x (and w). */
void FN(mloc_linear_forward)(real *y, const real *x, const real *w, const real *b,
                             const mloc_linear_shape *s) {
    const int N = s->N, I = s->I, O = s->O;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            const real *xr = x + (int64_t)n * I, *wr = w + (int64_t)o * I;
            acc sum = b ? b[o] : 0;
            for (int i = 0; i < I; i++) sum += (acc)xr[i] * wr[i];
            y[(int64_t)n * O + o] = (real)sum;
        }
}

/* dx[n,i]  = sum_o dy[n,o] w[o,i]     (=)
 * dw[o,i] += sum_n dy[n,o] x[n,i]     (+=)
 * db[o]   += sum_n dy[n,o]            (+=)
 * Each of dx, dw, db may be NULL. */
void FN(mloc_linear_backward)(real *dx, real *dw, real *db, const real *dy, const real *x,
                              const real *w, const mloc_linear_shape *s) {
    const int N = s->N, I = s->I, O = s->O;
    if (dx) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < I; i++) {
                acc sum = 0;
                for (int o = 0; o < O; o++)
                    sum += (acc)dy[(int64_t)n * O + o] * w[(int64_t)o * I + i];
                dx[(int64_t)n * I + i] = (real)sum;
            }
    }
    if (dw) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int o = 0; o < O; o++)
            for (int i = 0; i < I; i++) {
                acc sum = 0;
                for (int n = 0; n < N; n++)
                    sum += (acc)dy[(int64_t)n * O + o] * x[(int64_t)n * I + i];
                dw[(int64_t)o * I + i] += (real)sum;
            }
    }
    if (db) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < O; o++) {
            acc sum = 0;
            for (int n = 0; n < N; n++) sum += dy[(int64_t)n * O + o];
            db[o] += (real)sum;
        }
    }
}
