/* conv2d reference body; see conv2d.c and real.h. */
#include "real.h"

/* y[n,k,p,q] = b[k] + sum_{c,r,s} x[n,c,p*sh-ph+r, q*sw-pw+s] * w[k,c,r,s] */
void FN(mloc_conv2d_forward)(real *y, const real *x, const real *w, const real *b,
                             const mloc_conv2d_shape *s) {
    const int N = s->N, C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S;
    const int P = s->P, Q = s->Q;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int p = 0; p < P; p++)
                for (int q = 0; q < Q; q++) {
                    acc sum = b ? b[k] : 0;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++) {
                            int h = p * s->stride_h - s->pad_h + r;
                            if (h < 0 || h >= H) continue;
                            for (int t = 0; t < S; t++) {
                                int v = q * s->stride_w - s->pad_w + t;
                                if (v < 0 || v >= W) continue;
                                sum += (acc)x[((int64_t)(n * C + c) * H + h) * W + v] *
                                       w[((int64_t)(k * C + c) * R + r) * S + t];
                            }
                        }
                    y[((int64_t)(n * K + k) * P + p) * Q + q] = (real)sum;
                }
}

/* dx[n,c,h,w] = sum over (k,r,s) with h = p*sh-ph+r, w = q*sw-pw+s of dy[n,k,p,q] w[k,c,r,s]
 * dw[k,c,r,s] += sum_{n,p,q} dy[n,k,p,q] x[n,c,h,w];  db[k] += sum_{n,p,q} dy[n,k,p,q]
 * Each output element is computed by one thread in a fixed order, so results
 * do not depend on the thread count. */
void FN(mloc_conv2d_backward)(real *dx, real *dw, real *db, const real *dy, const real *x,
                              const real *w, const mloc_conv2d_shape *s) {
    const int N = s->N, C = s->C, H = s->H, W = s->W, K = s->K, R = s->R, S = s->S;
    const int P = s->P, Q = s->Q;
    if (dx) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int h = 0; h < H; h++)
                    for (int v = 0; v < W; v++) {
                        acc sum = 0;
                        for (int k = 0; k < K; k++)
                            for (int r = 0; r < R; r++) {
                                int ph = h + s->pad_h - r;
                                if (ph < 0 || ph % s->stride_h) continue;
                                int p = ph / s->stride_h;
                                if (p >= P) continue;
                                for (int t = 0; t < S; t++) {
                                    int qw = v + s->pad_w - t;
                                    if (qw < 0 || qw % s->stride_w) continue;
                                    int q = qw / s->stride_w;
                                    if (q >= Q) continue;
                                    sum += (acc)dy[((int64_t)(n * K + k) * P + p) * Q + q] *
                                           w[((int64_t)(k * C + c) * R + r) * S + t];
                                }
                            }
                        dx[((int64_t)(n * C + c) * H + h) * W + v] = (real)sum;
                    }
    }
    if (dw) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++)
                    for (int t = 0; t < S; t++) {
                        acc sum = 0;
                        for (int n = 0; n < N; n++)
                            for (int p = 0; p < P; p++) {
                                int h = p * s->stride_h - s->pad_h + r;
                                if (h < 0 || h >= H) continue;
                                for (int q = 0; q < Q; q++) {
                                    int v = q * s->stride_w - s->pad_w + t;
                                    if (v < 0 || v >= W) continue;
                                    sum += (acc)dy[((int64_t)(n * K + k) * P + p) * Q + q] *
                                           x[((int64_t)(n * C + c) * H + h) * W + v];
                                }
                            }
                        dw[((int64_t)(k * C + c) * R + r) * S + t] += (real)sum;
                    }
    }
    if (db) {
        for (int k = 0; k < K; k++) {
            acc sum = 0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < P * Q; i++) sum += dy[(int64_t)(n * K + k) * P * Q + i];
            db[k] += (real)sum;
        }
    }
}
