/* maxpool2d reference body; see maxpool2d.c and real.h. */
#include <math.h>

#include "real.h"

/* y[n,c,p,q] = max over the window rows h in [p*stride - pad, +k) and
 * columns w in [q*stride - pad, +k), clipped to the input (padding never
 * wins, as -inf padding). The scan follows PyTorch's CPU kernel
 * (aten/src/ATen/native/cpu/MaxPoolKernel.cpp, cpu_max_pool):
 * argmax starts at the first in-bounds element of the window and moves only
 * on `v > max || isnan(v)`, so among equal values the first in row-major order
 * wins, a NaN wins (the last NaN), and a window of -inf keeps its first
 * element. Saved for backward: argmax[n,c,p,q] = h*W + w within the (n,c)
 * plane. */
void FN(mloc_maxpool2d_forward)(real *y, int32_t *argmax, const real *x,
                                const mloc_pool_shape *s) {
    const int H = s->H, W = s->W, P = s->P, Q = s->Q;
    const int64_t planes = (int64_t)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const real *xp = x + pl * H * W;
        for (int p = 0; p < P; p++) {
            int h0 = p * s->stride - s->pad, h1 = h0 + s->k;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int q = 0; q < Q; q++) {
                int w0 = q * s->stride - s->pad, w1 = w0 + s->k;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                int best = h0 * W + w0;
                real max = -INFINITY;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        real v = xp[h * W + w];
                        if (v > max || isnan(v)) {
                            max = v;
                            best = h * W + w;
                        }
                    }
                y[(pl * P + p) * Q + q] = max;
                argmax[(pl * P + p) * Q + q] = best;
            }
        }
    }
}

/* dx = 0, then dx[n,c,argmax[n,c,p,q]] += dy[n,c,p,q] (=: dx is fully
 * written). Overlapping windows (stride < k) may route several dy to one
 * element; each plane is summed by one thread in (p,q) order, so the result
 * does not depend on the thread count. */
void FN(mloc_maxpool2d_backward)(real *dx, const real *dy, const int32_t *argmax,
                                 const mloc_pool_shape *s) {
    const int64_t HW = (int64_t)s->H * s->W, PQ = (int64_t)s->P * s->Q;
    const int64_t planes = (int64_t)s->N * s->C;
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        real *dxp = dx + pl * HW;
        for (int64_t i = 0; i < HW; i++) dxp[i] = 0;
        for (int64_t i = 0; i < PQ; i++) dxp[argmax[pl * PQ + i]] += dy[pl * PQ + i];
    }
}
