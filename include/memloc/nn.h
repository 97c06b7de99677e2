/* Reference layer kernels: the specification every fast path is tested
 * against. Plain loops, NCHW (PyTorch order), double accumulators for long
 * sums. Each float kernel has a `_f64` twin with the same semantics in double
 * precision, used by the finite-difference gradient checks.
 *
 * Conventions (STYLE.md):
 *   argument order: outputs, saved state, inputs, parameters, shape;
 *   activation gradients are written (=), parameter gradients accumulate (+=);
 *   a NULL gradient pointer means "not needed" and is skipped. */
#ifndef MEMLOC_NN_H
#define MEMLOC_NN_H

#include <stdint.h>

/* ---- conv2d ------------------------------------------------------------
 * x (N,C,H,W), w (K,C,R,S), b (K) or NULL -> y (N,K,P,Q)
 * P = (H + 2*pad_h - R) / stride_h + 1, Q likewise; zero padding, groups 1. */
typedef struct {
    int N, C, H, W;
    int K, R, S;
    int stride_h, stride_w, pad_h, pad_w;
    int P, Q;
} mloc_conv2d_shape;

mloc_conv2d_shape mloc_conv2d_shape_make(int N, int C, int H, int W, int K, int R, int S,
                                         int stride, int pad);
void mloc_conv2d_forward(float *y, const float *x, const float *w, const float *b,
                         const mloc_conv2d_shape *s);
/* dx (=), dw (+=), db (+=) from dy (N,K,P,Q). */
void mloc_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, const mloc_conv2d_shape *s);
void mloc_conv2d_forward_f64(double *y, const double *x, const double *w, const double *b,
                             const mloc_conv2d_shape *s);
void mloc_conv2d_backward_f64(double *dx, double *dw, double *db, const double *dy,
                              const double *x, const double *w, const mloc_conv2d_shape *s);

/* ---- batchnorm2d -------------------------------------------------------
 * x, y (N,C,HW). Training normalises with the biased batch variance and
 * updates running_mean/var with momentum (PyTorch: new = (1-m)*old + m*stat)
 * using the unbiased variance for running_var. Eval uses running stats.
 * Saved for backward: mean (C) and invstd = 1/sqrt(var_biased + eps) (C). */
typedef struct {
    int N, C, HW;
    float eps;      /* PyTorch default 1e-5 */
    float momentum; /* PyTorch default 0.1 */
} mloc_bn_shape;

mloc_bn_shape mloc_bn_shape_make(int N, int C, int HW);
void mloc_batchnorm2d_forward_train(float *y, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var, const float *x,
                                    const float *gamma, const float *beta,
                                    const mloc_bn_shape *s);
void mloc_batchnorm2d_forward_eval(float *y, const float *x, const float *gamma,
                                   const float *beta, const float *running_mean,
                                   const float *running_var, const mloc_bn_shape *s);
/* Backward of the training-mode forward: dx (=), dgamma (+=), dbeta (+=). */
void mloc_batchnorm2d_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *save_mean,
                               const float *save_invstd, const float *gamma,
                               const mloc_bn_shape *s);
void mloc_batchnorm2d_forward_train_f64(double *y, double *save_mean, double *save_invstd,
                                        double *running_mean, double *running_var,
                                        const double *x, const double *gamma,
                                        const double *beta, const mloc_bn_shape *s);
void mloc_batchnorm2d_forward_eval_f64(double *y, const double *x, const double *gamma,
                                       const double *beta, const double *running_mean,
                                       const double *running_var, const mloc_bn_shape *s);
void mloc_batchnorm2d_backward_f64(double *dx, double *dgamma, double *dbeta,
                                   const double *dy, const double *x,
                                   const double *save_mean, const double *save_invstd,
                                   const double *gamma, const mloc_bn_shape *s);

/* ---- relu --------------------------------------------------------------
 * y = max(x, 0) elementwise over n; backward dx = dy * (y > 0) (=). */
void mloc_relu_forward(float *y, const float *x, int64_t n);
void mloc_relu_backward(float *dx, const float *dy, const float *y, int64_t n);
void mloc_relu_forward_f64(double *y, const double *x, int64_t n);
void mloc_relu_backward_f64(double *dx, const double *dy, const double *y, int64_t n);

/* ---- maxpool2d ---------------------------------------------------------
 * x (N,C,H,W) -> y (N,C,P,Q); window k, stride, padding (-inf padding,
 * PyTorch floor mode). argmax (N,C,P,Q) saves the flat h*W+w index of the
 * maximum inside its (n,c) plane; ties pick the first in row-major order
 * (PyTorch). Backward writes dx (=): zero, then scatter-add dy to argmax. */
typedef struct {
    int N, C, H, W;
    int k, stride, pad;
    int P, Q;
} mloc_pool_shape;

mloc_pool_shape mloc_pool_shape_make(int N, int C, int H, int W, int k, int stride, int pad);
void mloc_maxpool2d_forward(float *y, int32_t *argmax, const float *x, const mloc_pool_shape *s);
void mloc_maxpool2d_backward(float *dx, const float *dy, const int32_t *argmax,
                             const mloc_pool_shape *s);
void mloc_maxpool2d_forward_f64(double *y, int32_t *argmax, const double *x,
                                const mloc_pool_shape *s);
void mloc_maxpool2d_backward_f64(double *dx, const double *dy, const int32_t *argmax,
                                 const mloc_pool_shape *s);

/* ---- residual add ------------------------------------------------------
 * y = a + b over n. Backward: the gradient of y flows unchanged to both
 * inputs; at a residual join the caller accumulates (+=) into the branch
 * gradient: da += dy. */
void mloc_add_forward(float *y, const float *a, const float *b, int64_t n);
void mloc_add_backward(float *da, const float *dy, int64_t n); /* da += dy */
void mloc_add_forward_f64(double *y, const double *a, const double *b, int64_t n);
void mloc_add_backward_f64(double *da, const double *dy, int64_t n);

/* ---- linear ------------------------------------------------------------
 * x (N,I), w (O,I), b (O) or NULL -> y (N,O) = x w^T + b.
 * Backward: dx = dy w (=), dw += dy^T x, db += sum_n dy. */
typedef struct {
    int N, I, O;
} mloc_linear_shape;

void mloc_linear_forward(float *y, const float *x, const float *w, const float *b,
                         const mloc_linear_shape *s);
void mloc_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                          const float *w, const mloc_linear_shape *s);
void mloc_linear_forward_f64(double *y, const double *x, const double *w, const double *b,
                             const mloc_linear_shape *s);
void mloc_linear_backward_f64(double *dx, double *dw, double *db, const double *dy,
                              const double *x, const double *w, const mloc_linear_shape *s);

/* ---- global average pool -----------------------------------------------
 * x (N,C,HW) -> y (N,C) mean over HW; backward dx = dy / HW (=). */
void mloc_avgpool_global_forward(float *y, const float *x, int N, int C, int HW);
void mloc_avgpool_global_backward(float *dx, const float *dy, int N, int C, int HW);
void mloc_avgpool_global_forward_f64(double *y, const double *x, int N, int C, int HW);
void mloc_avgpool_global_backward_f64(double *dx, const double *dy, int N, int C, int HW);

/* ---- NT-Xent (SimCLR, Chen et al. 2020) --------------------------------
 * z (2N, D): rows 0..N-1 are the first views, N..2N-1 the second views of
 * the same images. With u = z / ||z|| (row-wise, eps 1e-12 as
 * F.normalize), s_ij = u_i . u_j / T, the loss is the mean over the 2N rows of
 * cross-entropy of row i (diagonal excluded) against its positive
 * (i+N) mod 2N. Returns the loss; writes dz (=) if dz is non-NULL. */
double mloc_ntxent(float *dz, const float *z, int n2, int D, float temperature);
double mloc_ntxent_f64(double *dz, const double *z, int n2, int D, double temperature);

/* ---- softmax cross-entropy ---------------------------------------------
 * logits (N,K), labels in 0..K-1 -> mean loss; dlogits (=) if non-NULL. */
double mloc_cross_entropy(float *dlogits, const float *logits, const int32_t *labels, int N,
                          int K);
double mloc_cross_entropy_f64(double *dlogits, const double *logits, const int32_t *labels,
                              int N, int K);

#endif
