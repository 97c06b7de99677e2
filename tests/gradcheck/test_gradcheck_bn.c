/* batchnorm2d: finite-difference checks of the training-mode backward
 * w.r.t. x, gamma and beta (double precision), the running-statistics update
 * (biased variance to normalise, unbiased into running_var, momentum 0.1),
 * eval mode, and the float instantiation against the double one. */
#include "gc.h"
#include "memloc/nn.h"

typedef struct {
    mloc_bn_shape s;
    double *x, *gamma, *beta, *g, *y;
    int64_t n;
} bn_state;

static double bn_loss(void *user) {
    bn_state *st = user;
    mloc_batchnorm2d_forward_train_f64(st->y, NULL, NULL, NULL, NULL, st->x, st->gamma,
                                       st->beta, &st->s);
    return gc_dot(st->y, st->g, st->n);
}

static void check_shape(int N, int C, int HW, uint64_t seed) {
    bn_state st;
    st.s = mloc_bn_shape_make(N, C, HW);
    assert_true(st.s.eps == 1e-5f && st.s.momentum == 0.1f);
    st.n = (int64_t)N * C * HW;
    st.x = gc_uniform(st.n, -1, 2, seed);
    st.gamma = gc_uniform(C, 0.5, 1.5, seed + 1);
    st.beta = gc_uniform(C, -0.5, 0.5, seed + 2);
    st.g = gc_uniform(st.n, -1, 1, seed + 3);
    st.y = gc_alloc(st.n);
    double *mean = gc_alloc(C), *invstd = gc_alloc(C);
    double *dx = gc_alloc(st.n), *dgamma = gc_alloc(C), *dbeta = gc_alloc(C);
    mloc_batchnorm2d_forward_train_f64(st.y, mean, invstd, NULL, NULL, st.x, st.gamma, st.beta,
                                       &st.s);
    mloc_batchnorm2d_backward_f64(dx, dgamma, dbeta, st.g, st.x, mean, invstd, st.gamma, &st.s);
    char what[96];
    snprintf(what, sizeof what, "bn N%d C%d HW%d dx", N, C, HW);
    assert_true(test_gradcheck(what, bn_loss, st.x, dx, st.n, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    snprintf(what, sizeof what, "bn N%d C%d HW%d dgamma", N, C, HW);
    assert_true(test_gradcheck(what, bn_loss, st.gamma, dgamma, C, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    snprintf(what, sizeof what, "bn N%d C%d HW%d dbeta", N, C, HW);
    assert_true(test_gradcheck(what, bn_loss, st.beta, dbeta, C, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));

    /* Float instantiation on the same float-exact values. */
    gc_round_f32(st.x, st.n);
    gc_round_f32(st.gamma, C);
    gc_round_f32(st.beta, C);
    gc_round_f32(st.g, st.n);
    float *fx = gc_f32(st.x, st.n), *fgam = gc_f32(st.gamma, C), *fbet = gc_f32(st.beta, C);
    float *fg = gc_f32(st.g, st.n), *fy = gc_f32_alloc(st.n), *fmean = gc_f32_alloc(C);
    float *finv = gc_f32_alloc(C), *fdx = gc_f32_alloc(st.n), *fdgam = gc_f32_alloc(C),
          *fdbet = gc_f32_alloc(C);
    mloc_batchnorm2d_forward_train_f64(st.y, mean, invstd, NULL, NULL, st.x, st.gamma, st.beta,
                                       &st.s);
    memset(dgamma, 0, (size_t)C * sizeof *dgamma);
    memset(dbeta, 0, (size_t)C * sizeof *dbeta);
    mloc_batchnorm2d_backward_f64(dx, dgamma, dbeta, st.g, st.x, mean, invstd, st.gamma, &st.s);
    mloc_batchnorm2d_forward_train(fy, fmean, finv, NULL, NULL, fx, fgam, fbet, &st.s);
    mloc_batchnorm2d_backward(fdx, fdgam, fdbet, fg, fx, fmean, finv, fgam, &st.s);
    snprintf(what, sizeof what, "bn N%d C%d HW%d f32 vs f64", N, C, HW);
    /* The float kernel rounds mean and invstd to float before the backward
     * reuses them: a few float ulps of the (up to ~30 for M = 2) normalised
     * values. */
    assert_true(gc_close_to_f64(what, fy, st.y, st.n, 1e-6, 1e-5));
    assert_true(gc_close_to_f64(what, fdx, dx, st.n, 1e-5, 1e-5));
    assert_true(gc_close_to_f64(what, fdgam, dgamma, C, 1e-5, 1e-5));
    assert_true(gc_close_to_f64(what, fdbet, dbeta, C, 1e-6, 1e-6));

    free(st.x); free(st.gamma); free(st.beta); free(st.g); free(st.y);
    free(mean); free(invstd); free(dx); free(dgamma); free(dbeta);
    free(fx); free(fgam); free(fbet); free(fg); free(fy); free(fmean); free(finv);
    free(fdx); free(fdgam); free(fdbet);
}

static void test_bn_gradients(void **state) {
    (void)state;
    check_shape(3, 2, 5, 11);
    check_shape(2, 3, 1, 21); /* M = 2, the smallest PyTorch accepts */
    check_shape(1, 2, 6, 31); /* one image, statistics over space only */
    check_shape(4, 1, 4, 41);
}

/* The statistics by hand for one channel of values {1, 2, 3, 6}:
 * mean 3, biased var (4+1+0+9)/4 = 3.5, unbiased 14/3. */
static void test_bn_statistics_by_hand(void **state) {
    (void)state;
    double x[4] = {1, 2, 3, 6}, y[4], mean, invstd, rm = 0, rv = 1;
    mloc_bn_shape s = mloc_bn_shape_make(2, 1, 2);
    mloc_batchnorm2d_forward_train_f64(y, &mean, &invstd, &rm, &rv, x, NULL, NULL, &s);
    double inv = 1 / sqrt(3.5 + (double)1e-5f);
    assert_true(fabs(mean - 3) < 1e-15);
    assert_true(fabs(invstd - inv) < 1e-15);
    assert_true(fabs(rm - 0.1 * 3) < 1e-7);
    assert_true(fabs(rv - (0.9 + 0.1 * 14.0 / 3.0)) < 1e-7);
    for (int i = 0; i < 4; i++) assert_true(fabs(y[i] - (x[i] - 3) * inv) < 1e-15);
    /* A second step moves the running stats again from where they are. */
    double rm1 = rm, rv1 = rv;
    mloc_batchnorm2d_forward_train_f64(y, NULL, NULL, &rm, &rv, x, NULL, NULL, &s);
    assert_true(fabs(rm - (0.9 * rm1 + 0.1 * 3)) < 1e-7);
    assert_true(fabs(rv - (0.9 * rv1 + 0.1 * 14.0 / 3.0)) < 1e-7);
    /* Eval uses the running statistics, with gamma and beta. */
    double gamma = 2, beta = -1;
    mloc_batchnorm2d_forward_eval_f64(y, x, &gamma, &beta, &rm, &rv, &s);
    for (int i = 0; i < 4; i++)
        assert_true(fabs(y[i] - ((x[i] - rm) / sqrt(rv + (double)1e-5f) * 2 - 1)) < 1e-12);
}

/* dgamma and dbeta accumulate across calls; dx is overwritten. */
static void test_bn_accumulates(void **state) {
    (void)state;
    double x[6] = {0.3, -1, 2, 0.5, 0.1, 1.7}, g[6] = {1, -2, 0.5, 0.25, -1, 3};
    double gamma[1] = {1.5}, y[6], mean, invstd, dx[6], dx2[6], dgam = 0, dbet = 0;
    mloc_bn_shape s = mloc_bn_shape_make(3, 1, 2);
    mloc_batchnorm2d_forward_train_f64(y, &mean, &invstd, NULL, NULL, x, gamma, NULL, &s);
    mloc_batchnorm2d_backward_f64(dx, &dgam, &dbet, g, x, &mean, &invstd, gamma, &s);
    double dgam1 = dgam, dbet1 = dbet;
    assert_true(fabs(dbet1 - 1.75) < 1e-15); /* sum of g */
    for (int i = 0; i < 6; i++) dx2[i] = 99;
    mloc_batchnorm2d_backward_f64(dx2, &dgam, &dbet, g, x, &mean, &invstd, gamma, &s);
    assert_true(fabs(dgam - 2 * dgam1) < 1e-14 && fabs(dbet - 2 * dbet1) < 1e-14);
    for (int i = 0; i < 6; i++) assert_true(dx2[i] == dx[i]);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_gradients),
        cmocka_unit_test(test_bn_statistics_by_hand),
        cmocka_unit_test(test_bn_accumulates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
