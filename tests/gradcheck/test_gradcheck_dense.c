/* linear, residual add and ReLU: finite-difference checks (double), the
 * = / += contracts, and the float instantiations against the double ones. */
#include "gc.h"
#include "memloc/nn.h"

typedef struct {
    mloc_linear_shape s;
    double *x, *w, *b, *g, *y;
} lin_state;

static double linear_loss(void *user) {
    lin_state *st = user;
    mloc_linear_forward_f64(st->y, st->x, st->w, st->b, &st->s);
    return gc_dot(st->y, st->g, (int64_t)st->s.N * st->s.O);
}

static void check_linear(int N, int I, int O, int bias, uint64_t seed) {
    lin_state st = {{N, I, O}, NULL, NULL, NULL, NULL, NULL};
    const int64_t nx = (int64_t)N * I, nw = (int64_t)O * I, ny = (int64_t)N * O;
    st.x = gc_uniform(nx, -1, 1, seed);
    st.w = gc_uniform(nw, -1, 1, seed + 1);
    st.b = bias ? gc_uniform(O, -1, 1, seed + 2) : NULL;
    st.g = gc_uniform(ny, -1, 1, seed + 3);
    st.y = gc_alloc(ny);
    double *dx = gc_alloc(nx), *dw = gc_alloc(nw), *db = gc_alloc(O);
    linear_loss(&st);
    /* The forward by its definition, y = x w^T + b. */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double v = bias ? st.b[o] : 0;
            for (int i = 0; i < I; i++) v += st.x[n * I + i] * st.w[o * I + i];
            assert_true(fabs(st.y[n * O + o] - v) < 1e-14);
        }
    mloc_linear_backward_f64(dx, dw, bias ? db : NULL, st.g, st.x, st.w, &st.s);
    char what[64];
    snprintf(what, sizeof what, "linear %dx%d->%d dx", N, I, O);
    assert_true(test_gradcheck(what, linear_loss, st.x, dx, nx, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    snprintf(what, sizeof what, "linear %dx%d->%d dw", N, I, O);
    assert_true(test_gradcheck(what, linear_loss, st.w, dw, nw, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    if (bias) {
        snprintf(what, sizeof what, "linear %dx%d->%d db", N, I, O);
        assert_true(test_gradcheck(what, linear_loss, st.b, db, O, &st, GC_H, GC_ATOL, GC_RTOL,
                                   GC_CHECKS));
    }
    /* dw, db accumulate; dx is overwritten. */
    double *dx2 = gc_uniform(nx, 3, 4, seed + 4), *dw2 = gc_alloc(nw), *db2 = gc_alloc(O);
    memcpy(dw2, dw, (size_t)nw * sizeof *dw);
    memcpy(db2, db, (size_t)O * sizeof *db);
    mloc_linear_backward_f64(dx2, dw2, db2, st.g, st.x, st.w, &st.s);
    for (int64_t i = 0; i < nx; i++) assert_true(dx2[i] == dx[i]);
    for (int64_t i = 0; i < nw; i++) assert_true(fabs(dw2[i] - 2 * dw[i]) < 1e-13);
    /* Float instantiation. */
    gc_round_f32(st.x, nx);
    gc_round_f32(st.w, nw);
    gc_round_f32(st.g, ny);
    if (bias) gc_round_f32(st.b, O);
    linear_loss(&st);
    memset(dw, 0, (size_t)nw * sizeof *dw);
    memset(db, 0, (size_t)O * sizeof *db);
    mloc_linear_backward_f64(dx, dw, db, st.g, st.x, st.w, &st.s);
    float *fx = gc_f32(st.x, nx), *fw = gc_f32(st.w, nw), *fg = gc_f32(st.g, ny);
    float *fb = bias ? gc_f32(st.b, O) : NULL, *fy = gc_f32_alloc(ny), *fdx = gc_f32_alloc(nx),
          *fdw = gc_f32_alloc(nw), *fdb = gc_f32_alloc(O);
    mloc_linear_forward(fy, fx, fw, fb, &st.s);
    mloc_linear_backward(fdx, fdw, fdb, fg, fx, fw, &st.s);
    snprintf(what, sizeof what, "linear %dx%d->%d f32 vs f64", N, I, O);
    assert_true(gc_close_to_f64(what, fy, st.y, ny, 1e-7, 1e-7));
    assert_true(gc_close_to_f64(what, fdx, dx, nx, 1e-7, 1e-7));
    assert_true(gc_close_to_f64(what, fdw, dw, nw, 1e-7, 1e-7));
    assert_true(gc_close_to_f64(what, fdb, db, O, 1e-7, 1e-7));
    free(st.x); free(st.w); free(st.b); free(st.g); free(st.y); free(dx); free(dw); free(db);
    free(dx2); free(dw2); free(db2);
    free(fx); free(fw); free(fg); free(fb); free(fy); free(fdx); free(fdw); free(fdb);
}

static void test_linear(void **state) {
    (void)state;
    check_linear(4, 7, 5, 1, 100);
    check_linear(3, 2, 6, 0, 200);
    check_linear(1, 9, 1, 1, 300);
}

typedef struct {
    double *a, *b, *g, *y;
    int64_t n;
} add_state;

static double add_loss(void *user) {
    add_state *st = user;
    mloc_add_forward_f64(st->y, st->a, st->b, st->n);
    return gc_dot(st->y, st->g, st->n);
}

static void test_add(void **state) {
    (void)state;
    add_state st = {gc_uniform(20, -1, 1, 1), gc_uniform(20, -1, 1, 2), gc_uniform(20, -1, 1, 3),
                    gc_alloc(20), 20};
    add_loss(&st);
    for (int i = 0; i < 20; i++) assert_true(st.y[i] == st.a[i] + st.b[i]);
    /* da += dy: from zero it is the gradient of both inputs. */
    double *da = gc_alloc(20);
    mloc_add_backward_f64(da, st.g, 20);
    assert_true(test_gradcheck("add da", add_loss, st.a, da, 20, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    assert_true(test_gradcheck("add db", add_loss, st.b, da, 20, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    /* At a residual join it accumulates onto what is there. */
    mloc_add_backward_f64(da, st.g, 20);
    for (int i = 0; i < 20; i++) assert_true(da[i] == 2 * st.g[i]);
    float fa[3] = {1.5f, -2, 0.25f}, fb[3] = {0.5f, 2, -1}, fy[3], fd[3] = {1, 1, 1};
    mloc_add_forward(fy, fa, fb, 3);
    assert_true(fy[0] == 2 && fy[1] == 0 && fy[2] == -0.75f);
    mloc_add_backward(fd, fa, 3);
    assert_true(fd[0] == 2.5f && fd[1] == -1 && fd[2] == 1.25f);
    free(st.a); free(st.b); free(st.g); free(st.y); free(da);
}

typedef struct {
    double *x, *g, *y;
    int64_t n;
} relu_state;

static double relu_loss(void *user) {
    relu_state *st = user;
    mloc_relu_forward_f64(st->y, st->x, st->n);
    return gc_dot(st->y, st->g, st->n);
}

static void test_relu(void **state) {
    (void)state;
    const int64_t n = 64;
    relu_state st = {gc_away_from_zero(n, 0.05, 4), gc_uniform(n, -1, 1, 5), gc_alloc(n), n};
    int neg = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(fabs(st.x[i]) >= 0.05);
        neg += st.x[i] < 0;
    }
    assert_true(neg > 8 && neg < 56); /* both sides of the kink are exercised */
    relu_loss(&st);
    double *dx = gc_alloc(n);
    mloc_relu_backward_f64(dx, st.g, st.y, n);
    assert_true(test_gradcheck("relu dx", relu_loss, st.x, dx, n, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    /* Subgradient 0 at 0 (PyTorch's threshold_backward on the output), NaN
     * propagates forward. */
    float fx[4] = {0, -1, 2, NAN}, fy[4], fdy[4] = {5, 5, 5, 5}, fdx[4];
    mloc_relu_forward(fy, fx, 4);
    assert_true(fy[0] == 0 && fy[1] == 0 && fy[2] == 2 && isnan(fy[3]));
    mloc_relu_backward(fdx, fdy, fy, 4);
    assert_true(fdx[0] == 0 && fdx[1] == 0 && fdx[2] == 5 && fdx[3] == 0);
    free(st.x); free(st.g); free(st.y); free(dx);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_relu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
