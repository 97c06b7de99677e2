/* maxpool2d and global average pooling: finite-difference checks (double)
 * on inputs with distinct, well-separated values (no near-ties, so +-h never
 * moves an argmax), PyTorch's tie-breaking and NaN handling by hand, and the
 * float instantiation against the double one. */
#include "gc.h"
#include "memloc/nn.h"

typedef struct {
    mloc_pool_shape s;
    double *x, *g, *y;
    int32_t *argmax;
    int64_t nx, ny;
} pool_state;

static double maxpool_loss(void *user) {
    pool_state *st = user;
    mloc_maxpool2d_forward_f64(st->y, st->argmax, st->x, &st->s);
    return gc_dot(st->y, st->g, st->ny);
}

static void check_maxpool(int N, int C, int H, int W, int k, int stride, int pad,
                          uint64_t seed) {
    pool_state st;
    st.s = mloc_pool_shape_make(N, C, H, W, k, stride, pad);
    st.nx = (int64_t)N * C * H * W;
    st.ny = (int64_t)N * C * st.s.P * st.s.Q;
    st.x = gc_distinct(st.nx, seed);
    st.g = gc_uniform(st.ny, -1, 1, seed + 1);
    st.y = gc_alloc(st.ny);
    st.argmax = calloc((size_t)st.ny, sizeof *st.argmax);
    assert_non_null(st.argmax);
    double *dx = gc_alloc(st.nx);
    maxpool_loss(&st);
    mloc_maxpool2d_backward_f64(dx, st.g, st.argmax, &st.s);
    char what[96];
    snprintf(what, sizeof what, "maxpool %dx%d k%d s%d p%d dx", H, W, k, stride, pad);
    assert_true(test_gradcheck(what, maxpool_loss, st.x, dx, st.nx, &st, GC_H, GC_ATOL,
                               GC_RTOL, GC_CHECKS));
    /* Every output is the maximum of its window and argmax points at it
     * (re-run the forward: the gradient check leaves perturbed outputs). */
    maxpool_loss(&st);
    for (int64_t i = 0; i < st.ny; i++) {
        int64_t plane = i / ((int64_t)st.s.P * st.s.Q);
        assert_true(st.y[i] == st.x[plane * H * W + st.argmax[i]]);
    }
    /* Float instantiation: values and argmax identical (float-exact inputs). */
    gc_round_f32(st.x, st.nx);
    gc_round_f32(st.g, st.ny);
    float *fx = gc_f32(st.x, st.nx), *fg = gc_f32(st.g, st.ny), *fy = gc_f32_alloc(st.ny),
          *fdx = gc_f32_alloc(st.nx);
    int32_t *fam = calloc((size_t)st.ny, sizeof *fam);
    assert_non_null(fam);
    maxpool_loss(&st);
    mloc_maxpool2d_backward_f64(dx, st.g, st.argmax, &st.s);
    mloc_maxpool2d_forward(fy, fam, fx, &st.s);
    mloc_maxpool2d_backward(fdx, fg, fam, &st.s);
    assert_memory_equal(fam, st.argmax, (size_t)st.ny * sizeof *fam);
    snprintf(what, sizeof what, "maxpool %dx%d k%d s%d p%d f32 vs f64", H, W, k, stride, pad);
    assert_true(gc_close_to_f64(what, fy, st.y, st.ny, 0, 0));
    assert_true(gc_close_to_f64(what, fdx, dx, st.nx, 1e-6, 1e-6));
    free(st.x); free(st.g); free(st.y); free(st.argmax); free(dx);
    free(fx); free(fg); free(fy); free(fdx); free(fam);
}

static void test_maxpool_gradients(void **state) {
    (void)state;
    check_maxpool(2, 3, 4, 6, 2, 2, 0, 1);  /* ResNet9's MaxPool2d(2) */
    check_maxpool(2, 2, 5, 5, 3, 2, 1, 2);  /* ResNet stem 3/2/1: overlapping windows */
    check_maxpool(1, 2, 5, 4, 3, 1, 1, 3);  /* stride 1: heavy overlap, scatter-add */
    check_maxpool(1, 1, 7, 5, 2, 2, 0, 4);  /* odd size: last row/column dropped (floor) */
    check_maxpool(1, 2, 6, 6, 2, 2, 1, 5);  /* padding with a 2-window */
}

/* PyTorch's CPU kernel: among equal values the first (row-major) wins; a NaN
 * wins over numbers; an all -inf window keeps its first in-bounds element. */
static void test_maxpool_ties_nan_by_hand(void **state) {
    (void)state;
    /* One 4x4 plane, k=2 s=2: windows (0,0) all equal; (0,1) a tie of the
     * max in its second row; (1,0) a NaN; (1,1) all -inf. */
    const double I = INFINITY;
    double x[16] = {5, 5, 1, 2,
                    5, 5, 3, 3,
                    0, 1, -I, -I,
                    NAN, 2, -I, -I};
    double y[4];
    int32_t am[4];
    mloc_pool_shape s = mloc_pool_shape_make(1, 1, 4, 4, 2, 2, 0);
    mloc_maxpool2d_forward_f64(y, am, x, &s);
    assert_int_equal(am[0], 0);
    assert_int_equal(am[1], 6);
    assert_int_equal(am[2], 12);
    assert_int_equal(am[3], 10);
    assert_true(y[0] == 5 && y[1] == 3 && isnan(y[2]) && y[3] == -I);
    /* Padding never wins: k=3 s=2 p=1 over a plane of negative values. */
    double neg[9] = {-9, -8, -7, -6, -5, -4, -3, -2, -1}, y2[4];
    int32_t am2[4];
    mloc_pool_shape s2 = mloc_pool_shape_make(1, 1, 3, 3, 3, 2, 1);
    mloc_maxpool2d_forward_f64(y2, am2, neg, &s2);
    assert_true(y2[0] == -5 && y2[1] == -4 && y2[2] == -2 && y2[3] == -1);
    assert_int_equal(am2[0], 4);
    assert_int_equal(am2[3], 8);
    /* Backward routes dy to argmax, summing where windows share it. */
    double dy[4] = {1, 2, 3, 4}, dx[9];
    mloc_maxpool2d_backward_f64(dx, dy, am2, &s2);
    double want[9] = {0, 0, 0, 0, 1, 2, 0, 3, 4};
    assert_true(test_close_f64("maxpool scatter", dx, want, 9, 0, 0));
}

typedef struct {
    int N, C, HW;
    double *x, *g, *y;
} avg_state;

static double avg_loss(void *user) {
    avg_state *st = user;
    mloc_avgpool_global_forward_f64(st->y, st->x, st->N, st->C, st->HW);
    return gc_dot(st->y, st->g, (int64_t)st->N * st->C);
}

static void test_avgpool_global(void **state) {
    (void)state;
    avg_state st = {2, 3, 5, NULL, NULL, NULL};
    const int64_t nx = 30, ny = 6;
    st.x = gc_uniform(nx, -1, 1, 9);
    st.g = gc_uniform(ny, -1, 1, 10);
    st.y = gc_alloc(ny);
    double *dx = gc_alloc(nx);
    avg_loss(&st);
    for (int i = 0; i < ny; i++) {
        double m = 0;
        for (int j = 0; j < 5; j++) m += st.x[i * 5 + j];
        assert_true(fabs(st.y[i] - m / 5) < 1e-15);
    }
    mloc_avgpool_global_backward_f64(dx, st.g, 2, 3, 5);
    assert_true(test_gradcheck("avgpool_global dx", avg_loss, st.x, dx, nx, &st, GC_H, GC_ATOL,
                               GC_RTOL, GC_CHECKS));
    gc_round_f32(st.x, nx);
    gc_round_f32(st.g, ny);
    avg_loss(&st);
    mloc_avgpool_global_backward_f64(dx, st.g, 2, 3, 5);
    float *fx = gc_f32(st.x, nx), *fg = gc_f32(st.g, ny), *fy = gc_f32_alloc(ny),
          *fdx = gc_f32_alloc(nx);
    mloc_avgpool_global_forward(fy, fx, 2, 3, 5);
    mloc_avgpool_global_backward(fdx, fg, 2, 3, 5);
    assert_true(gc_close_to_f64("avgpool_global f32 vs f64", fy, st.y, ny, 1e-7, 1e-7));
    assert_true(gc_close_to_f64("avgpool_global f32 vs f64", fdx, dx, nx, 1e-7, 1e-7));
    free(st.x); free(st.g); free(st.y); free(dx); free(fx); free(fg); free(fy); free(fdx);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_gradients),
        cmocka_unit_test(test_maxpool_ties_nan_by_hand),
        cmocka_unit_test(test_avgpool_global),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
