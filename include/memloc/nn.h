/* Reference layer kernels: the specification every fast path is tested
 * against. Plain loops, NCHW (PyTorch order), double accumulators for long
 * sums. Each float kernel has a `_f64` twin with the same semantics in double
 * precision, used by the finite-difference gradient checks
 * (tests/gradcheck); the float kernels are compared with PyTorch 1.13 by
 * tests/parity/test_ops_parity.c. One file per layer in src/nn.
 *
 * Conventions (STYLE.md):
 *   argument order: outputs, saved state (and caller scratch), inputs,
 *   parameters, shape;
 *   activation gradients are written (=), parameter gradients accumulate (+=);
 *   a NULL gradient pointer means "not needed" and is skipped.
 * Threads: loops run under OpenMP, but every output element is one
 * sequential sum computed by one thread, so results are bitwise identical for
 * any thread count. Kernels never allocate (except the convenience
 * mloc_ntxent) and never fail: shapes are programmer input, checked by
 * assert. */
#ifndef MEMLOC_NN_H
#define MEMLOC_NN_H

#include <stdint.h>

#include "memloc/rng.h"

/* ---- conv2d ------------------------------------------------------------
 * x (N,C,H,W), w (K,C,R,S), b (K) or NULL -> y (N,K,P,Q)
 * P = (H + 2*pad_h - R) / stride_h + 1, Q likewise; zero padding, groups 1,
 * dilation 1. mloc_conv2d_shape_make sets equal vertical and horizontal
 * stride / padding; the fields may be set apart (PyTorch's tuple form).
 * Saved for backward: x (and w). */
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
 * using the unbiased variance for running_var (N*HW must exceed 1). Eval uses
 * running stats. Saved for backward: mean (C) and
 * invstd = 1/sqrt(var_biased + eps) (C). gamma/beta NULL: 1 / 0 (affine off);
 * save_* or running_* NULL: not written. */
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
 * y = max(x, 0) elementwise over n (NaN propagates, as torch.relu);
 * backward dx = dy where y > 0, else 0 (=). */
void mloc_relu_forward(float *y, const float *x, int64_t n);
void mloc_relu_backward(float *dx, const float *dy, const float *y, int64_t n);
void mloc_relu_forward_f64(double *y, const double *x, int64_t n);
void mloc_relu_backward_f64(double *dx, const double *dy, const double *y, int64_t n);

/* ---- maxpool2d ---------------------------------------------------------
 * x (N,C,H,W) -> y (N,C,P,Q); window k, stride, padding (-inf padding,
 * PyTorch floor mode, pad <= k/2). argmax (N,C,P,Q) saves the flat h*W+w
 * index of the maximum inside its (n,c) plane, as PyTorch's return_indices.
 * Selection follows PyTorch's CPU kernel: ties pick the first in row-major
 * order, a NaN wins, a window of -inf keeps its first element. Backward
 * writes dx (=): zero, then scatter-add dy to argmax. */
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
 * the same images. With u = z / max(||z||, 1e-12) (row-wise, as
 * F.normalize), s_ij = u_i . u_j / T, the loss is the mean over the 2N rows of
 * cross-entropy of row i (diagonal excluded) against its positive
 * (i+N) mod 2N (tools/resnet9.py nt_xent). Returns the loss; writes dz (=) if
 * dz is non-NULL.
 *
 * mloc_ntxent_ws takes its scratch from the caller: work holds
 * mloc_ntxent_work_len(n2, D) doubles (row norms, row log-sum-exps, and the
 * gradient w.r.t. u when dz is wanted); nothing is allocated. mloc_ntxent is
 * the convenience form: it mallocs that scratch and returns NaN (dz untouched)
 * if the allocation fails. */
int64_t mloc_ntxent_work_len(int n2, int D);
double mloc_ntxent(float *dz, const float *z, int n2, int D, float temperature);
double mloc_ntxent_f64(double *dz, const double *z, int n2, int D, double temperature);
double mloc_ntxent_ws(float *dz, double *work, const float *z, int n2, int D,
                      float temperature);
double mloc_ntxent_ws_f64(double *dz, double *work, const double *z, int n2, int D,
                          double temperature);

/* ---- softmax cross-entropy ---------------------------------------------
 * logits (N,K), labels in 0..K-1 -> mean loss; dlogits (=) if non-NULL. */
double mloc_cross_entropy(float *dlogits, const float *logits, const int32_t *labels, int N,
                          int K);
double mloc_cross_entropy_f64(double *dlogits, const double *logits, const int32_t *labels,
                              int N, int K);

/* ======================= ViT building blocks ============================ */

/* ---- layernorm over the last dimension ---------------------------------
 * x, y (M, D) (M = N*T tokens). Per row: mean, var = biased variance,
 * rstd = 1/sqrt(var + eps), y = (x - mean) * rstd * gamma + beta
 * (nn.LayerNorm; timm's ViT uses eps 1e-6, PyTorch's default is 1e-5).
 * gamma/beta (D) may be NULL (1 / 0). Saved for backward: mean (M), rstd (M).
 * Backward: dx (=), dgamma (+=), dbeta (+=). */
void mloc_layernorm_forward(float *y, float *save_mean, float *save_rstd, const float *x,
                            const float *gamma, const float *beta, int M, int D, double eps);
void mloc_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                             const float *x, const float *save_mean, const float *save_rstd,
                             const float *gamma, int M, int D);
void mloc_layernorm_forward_f64(double *y, double *save_mean, double *save_rstd,
                                const double *x, const double *gamma, const double *beta,
                                int M, int D, double eps);
void mloc_layernorm_backward_f64(double *dx, double *dgamma, double *dbeta, const double *dy,
                                 const double *x, const double *save_mean,
                                 const double *save_rstd, const double *gamma, int M, int D);

/* ---- GELU (exact, erf form) --------------------------------------------
 * y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) elementwise over n
 * (nn.GELU(approximate='none')). Saved for backward: x.
 * Backward: dx = dy * (Phi(x) + x phi(x)) (=), phi the standard normal pdf. */
void mloc_gelu_forward(float *y, const float *x, int64_t n);
void mloc_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);
void mloc_gelu_forward_f64(double *y, const double *x, int64_t n);
void mloc_gelu_backward_f64(double *dx, const double *dy, const double *x, int64_t n);

/* ---- softmax over rows -------------------------------------------------
 * x, y (M, K): y[m,:] = exp(x[m,:] - max) / sum exp(x[m,:] - max).
 * Saved for backward: y. Backward: dx = y * (dy - sum_k dy*y) (=). */
void mloc_softmax_forward(float *y, const float *x, int M, int K);
void mloc_softmax_backward(float *dx, const float *dy, const float *y, int M, int K);
void mloc_softmax_forward_f64(double *y, const double *x, int M, int K);
void mloc_softmax_backward_f64(double *dx, const double *dy, const double *y, int M, int K);

/* ---- multi-head self-attention (scaled dot product) ---------------------
 * qkv (N, T, 3D) is the output of the qkv projection, laid out as timm's
 * Attention reshapes it: (N, T, 3, H, Dh) with D = H*Dh, so
 *   q[n,h,t,e] = qkv[n,t, 0*D + h*Dh + e], k at 1*D + h*Dh + e, v at 2*D + ...
 * att[n,h,t,s] = softmax_s(q_t . k_s / sqrt(Dh))           (N, H, T, T), saved
 * out[n,t,h*Dh+e] = sum_s att[n,h,t,s] v[n,h,s,e]           (N, T, D)
 * (heads concatenated, i.e. (att @ v).transpose(1, 2).reshape(N, T, D)).
 * No mask, no attention dropout. Backward writes dqkv (=) from dout, using
 * the saved att and a caller scratch `work` of mloc_attention_work_len(s)
 * elements (the score gradients, N*H*T*T). */
typedef struct {
    int N, T, D, H; /* batch, tokens, width, heads; Dh = D / H */
    int Dh;
} mloc_attention_shape;

mloc_attention_shape mloc_attention_shape_make(int N, int T, int D, int H);
int64_t mloc_attention_work_len(const mloc_attention_shape *s);
void mloc_attention_forward(float *out, float *att, const float *qkv,
                            const mloc_attention_shape *s);
void mloc_attention_backward(float *dqkv, float *work, const float *dout, const float *qkv,
                             const float *att, const mloc_attention_shape *s);
void mloc_attention_forward_f64(double *out, double *att, const double *qkv,
                                const mloc_attention_shape *s);
void mloc_attention_backward_f64(double *dqkv, double *work, const double *dout,
                                 const double *qkv, const double *att,
                                 const mloc_attention_shape *s);

/* ---- dropout with an explicit mask ---------------------------------------
 * mask (n) holds 1 for kept and 0 for dropped elements; y = x * mask / (1-p)
 * (inverted dropout as nn.Dropout in training; p = 1 gives y = 0).
 * Backward: dx = dy * mask / (1-p) (=). mloc_dropout_mask draws the mask
 * from a caller-owned stream, keeping each element with probability 1-p
 * (one uniform double per element, in order, so it does not depend on the
 * thread count). */
void mloc_dropout_mask(uint8_t *mask, int64_t n, double p, mloc_rng *r);
void mloc_dropout_forward(float *y, const float *x, const uint8_t *mask, int64_t n, double p);
void mloc_dropout_backward(float *dx, const float *dy, const uint8_t *mask, int64_t n,
                           double p);
void mloc_dropout_forward_f64(double *y, const double *x, const uint8_t *mask, int64_t n,
                              double p);
void mloc_dropout_backward_f64(double *dx, const double *dy, const uint8_t *mask, int64_t n,
                               double p);

/* ===================== SSL method losses (SimSiam, DINO) ================= */

/* ---- row-wise L2 normalisation -----------------------------------------
 * x, y (M, D): y_m = x_m / max(||x_m||, eps) (F.normalize(x, dim=-1); its
 * eps is 1e-12). save_norm (M) receives the unclamped norms (may be NULL when
 * no backward follows). Backward (=) from y and the norms:
 * dx_m = (dy_m - y_m (y_m . dy_m)) / ||x_m||, or dy_m / eps where ||x_m|| < eps.
 * The DINO head normalises its bottleneck output with it, and its last
 * layer's weight rows (weight_norm with g = 1). */
void mloc_l2norm_forward(float *y, float *save_norm, const float *x, int M, int D, double eps);
void mloc_l2norm_backward(float *dx, const float *dy, const float *y, const float *save_norm,
                          int M, int D, double eps);
void mloc_l2norm_forward_f64(double *y, double *save_norm, const double *x, int M, int D,
                             double eps);
void mloc_l2norm_backward_f64(double *dx, const double *dy, const double *y,
                              const double *save_norm, int M, int D, double eps);

/* ---- SimSiam negative cosine loss (Chen & He 2021) ---------------------
 * p, z (2N, D) view-major (rows 0..N-1 first views, N..2N-1 second views):
 * predictions and projections. L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2 with
 * D(p, z) = -mean_n cos(p_n, z_n), cos over norms clamped at 1e-8 (torch
 * 1.13 cosine_similarity). z is a constant (stop-gradient): dp (=) is
 * written if non-NULL, nothing for z. The _ws form takes n2 doubles of
 * scratch; the plain form mallocs them (NaN if that fails). */
double mloc_simsiam_loss(float *dp, const float *p, const float *z, int n2, int D);
double mloc_simsiam_loss_f64(double *dp, const double *p, const double *z, int n2, int D);
double mloc_simsiam_loss_ws(float *dp, double *work, const float *p, const float *z, int n2,
                            int D);
double mloc_simsiam_loss_ws_f64(double *dp, double *work, const double *p, const double *z,
                                int n2, int D);

/* ---- DINO loss and centre (Caron et al. 2021, DINOLoss) ----------------
 * s (V*B, K) student outputs of V crops (crop-major; crops 0, 1 global),
 * t (2*B, K) teacher outputs of the global crops, center (K):
 * L = mean over the 2(V-1) pairs (global crop c, crop v != c) of
 * mean_b -softmax((t_c[b] - center)/teacher_temp) . log_softmax(s_v[b]/student_temp).
 * ds (=) if non-NULL; the teacher side is a constant. The _ws form takes
 * mloc_dino_loss_work_len(B, K) doubles of scratch; the plain form mallocs
 * them (NaN if that fails). */
int64_t mloc_dino_loss_work_len(int B, int K);
double mloc_dino_loss(float *ds, const float *s, const float *t, const float *center, int B, int V,
                      int K, float student_temp, float teacher_temp);
double mloc_dino_loss_f64(double *ds, const double *s, const double *t, const double *center, int B,
                          int V, int K, double student_temp, double teacher_temp);
double mloc_dino_loss_ws(float *ds, double *work, const float *s, const float *t,
                         const float *center, int B, int V, int K, float student_temp,
                         float teacher_temp);
double mloc_dino_loss_ws_f64(double *ds, double *work, const double *s, const double *t,
                             const double *center, int B, int V, int K, double student_temp,
                             double teacher_temp);
/* center = center * momentum + (1 - momentum) * mean of t's rows (rows, K)
 * (DINOLoss.update_center; DINO's momentum is 0.9). */
void mloc_dino_center_update(float *center, const float *t, int rows, int K, double momentum);
void mloc_dino_center_update_f64(double *center, const double *t, int rows, int K,
                                 double momentum);

#endif
