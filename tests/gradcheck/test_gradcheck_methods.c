/* The SSL method kernels (src/nn/l2norm.c, simsiam_loss.c, dino_loss.c):
 * finite-difference checks of their gradients in double precision, values by
 * hand, the scratch-taking forms against the allocating ones, and float
 * against double. */
#include "gc.h"
#include "memloc/nn.h"

/* ---- l2norm ---------------------------------------------------------------- */

typedef struct {
    double *x, *g, *y;
    int M, D;
    double eps;
} l2_state;

/* L = sum(y * g) */
static double l2_loss(void *user) {
    l2_state *st = user;
    mloc_l2norm_forward_f64(st->y, NULL, st->x, st->M, st->D, st->eps);
    return gc_dot(st->y, st->g, (int64_t)st->M * st->D);
}

static void test_l2norm(void **state) {
    (void)state;
    const int M = 5, D = 7;
    const int64_t n = (int64_t)M * D;
    l2_state st = {gc_uniform(n, -2, 2, 21), gc_uniform(n, -1, 1, 22), gc_alloc(n), M, D, 1e-12};
    double *y = gc_alloc(n), *norm = gc_alloc(M), *dx = gc_alloc(n);
    mloc_l2norm_forward_f64(y, norm, st.x, M, D, st.eps);
    for (int m = 0; m < M; m++) {
        /* unit rows, and the saved norm is the row's norm */
        double ss = gc_dot(y + m * D, y + m * D, D), xx = gc_dot(st.x + m * D, st.x + m * D, D);
        assert_true(fabs(ss - 1) < 1e-14);
        assert_true(fabs(norm[m] - sqrt(xx)) < 1e-14);
    }
    mloc_l2norm_backward_f64(dx, st.g, y, norm, M, D, st.eps);
    assert_true(test_gradcheck("l2norm dx", l2_loss, st.x, dx, n, &st, GC_H, GC_ATOL, GC_RTOL, GC_CHECKS));
    /* dx_m is orthogonal to x_m: scaling a row does not change y */
    for (int m = 0; m < M; m++) assert_true(fabs(gc_dot(dx + m * D, st.x + m * D, D)) < 1e-14);

    /* A row below eps is divided by eps, and so is its gradient. */
    double tiny[3] = {1e-13, -2e-13, 0}, ty[3], tn[1], tdy[3] = {1, 2, 3}, tdx[3];
    mloc_l2norm_forward_f64(ty, tn, tiny, 1, 3, 1e-12);
    assert_true(fabs(ty[0] - 0.1) < 1e-15 && fabs(ty[1] + 0.2) < 1e-15 && ty[2] == 0);
    mloc_l2norm_backward_f64(tdx, tdy, ty, tn, 1, 3, 1e-12);
    for (int d = 0; d < 3; d++) assert_true(fabs(tdx[d] - tdy[d] * 1e12) < 1e-3);

    /* Float instantiation on the same values. */
    gc_round_f32(st.x, n);
    mloc_l2norm_forward_f64(y, norm, st.x, M, D, st.eps);
    mloc_l2norm_backward_f64(dx, st.g, y, norm, M, D, st.eps);
    float *fx = gc_f32(st.x, n), *fg = gc_f32(st.g, n), *fy = gc_f32_alloc(n), *fn = gc_f32_alloc(M),
          *fdx = gc_f32_alloc(n);
    mloc_l2norm_forward(fy, fn, fx, M, D, st.eps);
    mloc_l2norm_backward(fdx, fg, fy, fn, M, D, st.eps);
    assert_true(gc_close_to_f64("l2norm y f32 vs f64", fy, y, n, 1e-7, 1e-6));
    assert_true(gc_close_to_f64("l2norm dx f32 vs f64", fdx, dx, n, 1e-7, 1e-5));
    free(st.x); free(st.g); free(st.y); free(y); free(norm); free(dx);
    free(fx); free(fg); free(fy); free(fn); free(fdx);
}

/* ---- SimSiam ----------------------------------------------------------------- */

typedef struct {
    double *p, *z;
    int n2, D;
} ss_state;

static double ss_loss(void *user) {
    ss_state *st = user;
    return mloc_simsiam_loss_f64(NULL, st->p, st->z, st->n2, st->D);
}

static void check_simsiam(int n2, int D, uint64_t seed) {
    const int64_t n = (int64_t)n2 * D;
    ss_state st = {gc_uniform(n, -1, 1, seed), gc_uniform(n, -1, 1, seed + 100), n2, D};
    /* predictions correlated with the other view's projection, as after some training */
    for (int i = 0; i < n2; i++)
        for (int d = 0; d < D; d++)
            st.p[(int64_t)i * D + d] = 0.6 * st.z[(int64_t)((i + n2 / 2) % n2) * D + d] + 0.4 * st.p[(int64_t)i * D + d];
    double *dp = gc_alloc(n);
    double loss = mloc_simsiam_loss_f64(dp, st.p, st.z, n2, D);
    assert_true(loss > -1 && loss < 0);
    char what[64];
    snprintf(what, sizeof what, "simsiam 2N=%d D=%d dp", n2, D);
    /* z is held fixed: the gradient is the stop-gradient one */
    assert_true(test_gradcheck(what, ss_loss, st.p, dp, n, &st, GC_H, GC_ATOL, GC_RTOL, GC_CHECKS));
    /* The scratch form is bit-identical. */
    double *work = gc_alloc(n2), *dp2 = gc_alloc(n);
    assert_true(mloc_simsiam_loss_ws_f64(dp2, work, st.p, st.z, n2, D) == loss);
    assert_memory_equal(dp, dp2, (size_t)n * sizeof *dp);
    /* Float on the same values. */
    gc_round_f32(st.p, n);
    gc_round_f32(st.z, n);
    loss = mloc_simsiam_loss_f64(dp, st.p, st.z, n2, D);
    float *fp = gc_f32(st.p, n), *fz = gc_f32(st.z, n), *fdp = gc_f32_alloc(n);
    double floss = mloc_simsiam_loss(fdp, fp, fz, n2, D);
    assert_true(fabs(floss - loss) <= 1e-12);
    snprintf(what, sizeof what, "simsiam 2N=%d D=%d f32 vs f64", n2, D);
    assert_true(gc_close_to_f64(what, fdp, dp, n, 1e-8, 1e-5));
    free(st.p); free(st.z); free(dp); free(work); free(dp2); free(fp); free(fz); free(fdp);
}

static void test_simsiam_gradients(void **state) {
    (void)state;
    check_simsiam(6, 5, 1);
    check_simsiam(8, 16, 2);
    check_simsiam(2, 3, 3);
}

/* By hand: p_i parallel to z_pos(i) gives -1 whatever the scale, with a zero
 * gradient; orthogonal gives 0; the pairing is (i, i+N), not (i, i). */
static void test_simsiam_by_hand(void **state) {
    (void)state;
    double z[8] = {1, 0, 0, 1, 0, 2, 3, 0};     /* 2N = 4, D = 2 */
    double p[8] = {0, 5, 1, 0, 2, 0, 0, 0.5};   /* p_i = c z_{(i+2) mod 4} */
    double dp[8];
    assert_true(fabs(mloc_simsiam_loss_f64(dp, p, z, 4, 2) + 1) < 1e-15);
    for (int i = 0; i < 8; i++) assert_true(fabs(dp[i]) < 1e-15);
    double q[8] = {1, 0, 0, 1, 0, 2, 3, 0};     /* p = z: each p_i orthogonal to z_pos(i) */
    assert_true(fabs(mloc_simsiam_loss_f64(dp, q, z, 4, 2)) < 1e-15);
    /* half-way: cos 45 degrees on every row */
    double r[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    double want = -sqrt(0.5);
    assert_true(fabs(mloc_simsiam_loss_f64(dp, r, z, 4, 2) - want) < 1e-15);
    /* the gradient of each row is orthogonal to the row */
    for (int i = 0; i < 4; i++) assert_true(fabs(dp[2 * i] * r[2 * i] + dp[2 * i + 1] * r[2 * i + 1]) < 1e-15);
}

/* ---- DINO ----------------------------------------------------------------------- */

typedef struct {
    double *s, *t, *center;
    int B, V, K;
    double ts, tt;
} dino_state;

static double dino_loss(void *user) {
    dino_state *st = user;
    return mloc_dino_loss_f64(NULL, st->s, st->t, st->center, st->B, st->V, st->K, st->ts, st->tt);
}

static void check_dino(int B, int V, int K, double ts, double tt, uint64_t seed) {
    const int64_t ns = (int64_t)V * B * K, nt = 2 * (int64_t)B * K;
    dino_state st = {gc_uniform(ns, -1, 1, seed), gc_uniform(nt, -1, 1, seed + 1), gc_uniform(K, -0.3, 0.3, seed + 2),
                     B, V, K, ts, tt};
    double *ds = gc_alloc(ns);
    double loss = mloc_dino_loss_f64(ds, st.s, st.t, st.center, B, V, K, ts, tt);
    assert_true(isfinite(loss) && loss > 0);
    char what[80];
    snprintf(what, sizeof what, "dino B=%d V=%d K=%d ds", B, V, K);
    assert_true(test_gradcheck(what, dino_loss, st.s, ds, ns, &st, GC_H, GC_ATOL, GC_RTOL, GC_CHECKS));
    /* softmax minus targets: every gradient row sums to zero */
    for (int64_t r = 0; r < (int64_t)V * B; r++) {
        double sum = 0;
        for (int k = 0; k < K; k++) sum += ds[r * K + k];
        assert_true(fabs(sum) < 1e-15);
    }
    double *work = gc_alloc(mloc_dino_loss_work_len(B, K)), *ds2 = gc_alloc(ns);
    assert_true(mloc_dino_loss_ws_f64(ds2, work, st.s, st.t, st.center, B, V, K, ts, tt) == loss);
    assert_memory_equal(ds, ds2, (size_t)ns * sizeof *ds);
    /* Float on the same values (the temperatures are rounded to float). */
    gc_round_f32(st.s, ns);
    gc_round_f32(st.t, nt);
    gc_round_f32(st.center, K);
    loss = mloc_dino_loss_f64(ds, st.s, st.t, st.center, B, V, K, (float)ts, (float)tt);
    float *fs = gc_f32(st.s, ns), *ft = gc_f32(st.t, nt), *fc = gc_f32(st.center, K), *fds = gc_f32_alloc(ns);
    double floss = mloc_dino_loss(fds, fs, ft, fc, B, V, K, (float)ts, (float)tt);
    assert_true(fabs(floss - loss) <= 1e-12 * fabs(loss));
    snprintf(what, sizeof what, "dino B=%d V=%d K=%d f32 vs f64", B, V, K);
    assert_true(gc_close_to_f64(what, fds, ds, ns, 1e-9, 1e-5));
    free(st.s); free(st.t); free(st.center); free(ds); free(work); free(ds2);
    free(fs); free(ft); free(fc); free(fds);
}

static void test_dino_gradients(void **state) {
    (void)state;
    check_dino(3, 2, 5, 0.1, 0.04, 1);  /* global crops only */
    check_dino(2, 5, 7, 0.1, 0.07, 2);  /* 2 global + 3 local */
    check_dino(4, 3, 4, 1.0, 0.5, 3);
}

/* By hand: B = 1, V = 2. If the student's crop v reproduces the teacher's
 * distribution of the other crop (s_v = T_s log q_{1-v}), the gradient is zero
 * and the loss is the mean of the two entropies. A teacher whose rows are
 * constant gives uniform targets; with a student whose rows are constant too
 * (V = 3) the loss is exactly log K and the gradient zero. */
static void test_dino_by_hand(void **state) {
    (void)state;
    const int K = 3;
    const double ts = 0.1, tt = 0.05;
    double t[6] = {0.3, -0.2, 0.1, 0.05, 0.4, -0.3}, center[3] = {0.1, 0.0, -0.1};
    double q[2][3];
    for (int c = 0; c < 2; c++) {
        double sum = 0;
        for (int k = 0; k < K; k++) sum += q[c][k] = exp((t[c * K + k] - center[k]) / tt);
        for (int k = 0; k < K; k++) q[c][k] /= sum;
    }
    double s[6], ds[6];
    for (int k = 0; k < K; k++) {
        s[k] = ts * log(q[1][k]);      /* crop 0 is compared with teacher crop 1 */
        s[K + k] = ts * log(q[0][k]);  /* crop 1 with teacher crop 0 */
    }
    double h0 = 0, h1 = 0;
    for (int k = 0; k < K; k++) {
        h0 -= q[0][k] * log(q[0][k]);
        h1 -= q[1][k] * log(q[1][k]);
    }
    assert_true(fabs(mloc_dino_loss_f64(ds, s, t, center, 1, 2, K, ts, tt) - (h0 + h1) / 2) < 1e-12);
    for (int i = 0; i < 6; i++) assert_true(fabs(ds[i]) < 1e-12);

    double tu[6] = {1, 1, 1, 2, 2, 2}, cz[3] = {0, 0, 0}, su[9] = {5, 5, 5, -1, -1, -1, 0, 0, 0}, dsu[9];
    assert_true(fabs(mloc_dino_loss_f64(dsu, su, tu, cz, 1, 3, K, ts, tt) - log(3.0)) < 1e-14);
    for (int i = 0; i < 9; i++) assert_true(fabs(dsu[i]) < 1e-13);
}

static void test_dino_center(void **state) {
    (void)state;
    /* rows (3, 2): mean (2, -1); center (1, 1) with m 0.9 -> (1.1, 0.8) */
    double t[6] = {1, 0, 2, -1, 3, -2}, c[2] = {1, 1};
    mloc_dino_center_update_f64(c, t, 3, 2, 0.9);
    assert_true(fabs(c[0] - 1.1) < 1e-15 && fabs(c[1] - 0.8) < 1e-15);
    float ft[6] = {1, 0, 2, -1, 3, -2}, fc[2] = {1, 1};
    mloc_dino_center_update(fc, ft, 3, 2, 0.9);
    assert_true(fabsf(fc[0] - 1.1f) < 1e-7f && fabsf(fc[1] - 0.8f) < 1e-7f);
    /* momentum 1 keeps the centre, 0 replaces it with the mean */
    mloc_dino_center_update(fc, ft, 3, 2, 1.0);
    assert_true(fabsf(fc[0] - 1.1f) < 1e-7f);
    mloc_dino_center_update(fc, ft, 3, 2, 0.0);
    assert_true(fc[0] == 2.0f && fc[1] == -1.0f);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l2norm),
        cmocka_unit_test(test_simsiam_gradients),
        cmocka_unit_test(test_simsiam_by_hand),
        cmocka_unit_test(test_dino_gradients),
        cmocka_unit_test(test_dino_by_hand),
        cmocka_unit_test(test_dino_center),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
