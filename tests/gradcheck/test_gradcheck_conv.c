/* conv2d: finite-difference checks of dx, dw, db in double precision over
 * stride 1 and 2, padding 0 and 1, 1x1, 3x3, non-square kernels and inputs,
 * patch embedding, with and without bias; the += contract of dw/db; and the
 * float instantiation against the double one. */
#include "gc.h"
#include "memloc/nn.h"

typedef struct {
    const char *name;
    int N, C, H, W, K, R, S, stride, pad, bias;
} conv_case;

static const conv_case CASES[] = {
    {"3x3 s1 p1 bias 5x6", 2, 3, 5, 6, 4, 3, 3, 1, 1, 1},
    {"3x3 s2 p1 nobias 7x6", 2, 3, 7, 6, 4, 3, 3, 2, 1, 0},
    {"3x3 s2 p0 bias 6x5 (uncovered rows)", 1, 2, 6, 5, 3, 3, 3, 2, 0, 1},
    {"1x1 s1 p0 bias 5x5", 2, 3, 5, 5, 4, 1, 1, 1, 0, 1},
    {"1x1 s2 p0 nobias 6x7", 2, 4, 6, 7, 3, 1, 1, 2, 0, 0},
    {"3x2 kernel s1 p1 bias 4x5", 2, 2, 4, 5, 3, 3, 2, 1, 1, 1},
    {"4x4 s4 p0 bias 8x8 (patch embed)", 1, 2, 8, 8, 3, 4, 4, 4, 0, 1},
    {"3x3 s1 p0 nobias 5x4", 1, 3, 5, 4, 2, 3, 3, 1, 0, 0},
};

typedef struct {
    mloc_conv2d_shape s;
    double *x, *w, *b, *g, *y;
    int64_t nx, nw, ny;
} conv_state;

static double conv_loss(void *user) {
    conv_state *st = user;
    mloc_conv2d_forward_f64(st->y, st->x, st->w, st->b, &st->s);
    return gc_dot(st->y, st->g, st->ny);
}

/* sh/sw/ph/pw >= 0 override the vertical/horizontal stride and padding
 * (PyTorch's tuple stride/padding; mloc_conv2d_shape_make sets both alike). */
static void check_case(const conv_case *c, uint64_t seed, int sh, int sw, int ph, int pw) {
    conv_state st;
    st.s = mloc_conv2d_shape_make(c->N, c->C, c->H, c->W, c->K, c->R, c->S, c->stride, c->pad);
    assert_int_equal(st.s.P, (c->H + 2 * c->pad - c->R) / c->stride + 1);
    if (sh > 0) {
        st.s.stride_h = sh;
        st.s.stride_w = sw;
        st.s.pad_h = ph;
        st.s.pad_w = pw;
        st.s.P = (c->H + 2 * ph - c->R) / sh + 1;
        st.s.Q = (c->W + 2 * pw - c->S) / sw + 1;
    }
    st.nx = (int64_t)c->N * c->C * c->H * c->W;
    st.nw = (int64_t)c->K * c->C * c->R * c->S;
    st.ny = (int64_t)c->N * c->K * st.s.P * st.s.Q;
    st.x = gc_uniform(st.nx, -1, 1, seed);
    st.w = gc_uniform(st.nw, -0.5, 0.5, seed + 1);
    st.b = c->bias ? gc_uniform(c->K, -0.5, 0.5, seed + 2) : NULL;
    st.g = gc_uniform(st.ny, -1, 1, seed + 3);
    st.y = gc_alloc(st.ny);
    double *dx = gc_alloc(st.nx), *dw = gc_alloc(st.nw), *db = gc_alloc(c->K);
    mloc_conv2d_backward_f64(dx, dw, c->bias ? db : NULL, st.g, st.x, st.w, &st.s);

    char what[128];
    snprintf(what, sizeof what, "conv %s dx", c->name);
    assert_true(test_gradcheck(what, conv_loss, st.x, dx, st.nx, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    snprintf(what, sizeof what, "conv %s dw", c->name);
    assert_true(test_gradcheck(what, conv_loss, st.w, dw, st.nw, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    if (c->bias) {
        snprintf(what, sizeof what, "conv %s db", c->name);
        assert_true(test_gradcheck(what, conv_loss, st.b, db, c->K, &st, GC_H, GC_ATOL,
                                   GC_RTOL, GC_CHECKS));
    }

    /* dw and db accumulate: a second backward onto the first adds the same
     * amount again; dx is overwritten (same value twice). */
    double *dx2 = gc_uniform(st.nx, 5, 6, seed + 4), *dw2 = gc_alloc(st.nw),
           *db2 = gc_alloc(c->K);
    memcpy(dw2, dw, (size_t)st.nw * sizeof *dw2);
    memcpy(db2, db, (size_t)c->K * sizeof *db2);
    mloc_conv2d_backward_f64(dx2, dw2, c->bias ? db2 : NULL, st.g, st.x, st.w, &st.s);
    for (int64_t i = 0; i < st.nx; i++) assert_true(dx2[i] == dx[i]);
    for (int64_t i = 0; i < st.nw; i++) assert_true(fabs(dw2[i] - 2 * dw[i]) <= 1e-12);
    for (int k = 0; c->bias && k < c->K; k++) assert_true(fabs(db2[k] - 2 * db[k]) <= 1e-12);

    /* Float instantiation on the same (float-exact) values. */
    gc_round_f32(st.x, st.nx);
    gc_round_f32(st.w, st.nw);
    gc_round_f32(st.g, st.ny);
    if (st.b) gc_round_f32(st.b, c->K);
    float *fx = gc_f32(st.x, st.nx), *fw = gc_f32(st.w, st.nw), *fg = gc_f32(st.g, st.ny);
    float *fb = st.b ? gc_f32(st.b, c->K) : NULL;
    float *fy = gc_f32_alloc(st.ny), *fdx = gc_f32_alloc(st.nx), *fdw = gc_f32_alloc(st.nw),
          *fdb = gc_f32_alloc(c->K);
    mloc_conv2d_forward(fy, fx, fw, fb, &st.s);
    conv_loss(&st);
    memset(dw, 0, (size_t)st.nw * sizeof *dw);
    memset(db, 0, (size_t)c->K * sizeof *db);
    mloc_conv2d_backward_f64(dx, dw, db, st.g, st.x, st.w, &st.s);
    mloc_conv2d_backward(fdx, fdw, fdb, fg, fx, fw, &st.s);
    snprintf(what, sizeof what, "conv %s f32 vs f64", c->name);
    assert_true(gc_close_to_f64(what, fy, st.y, st.ny, 1e-6, 1e-6));
    assert_true(gc_close_to_f64(what, fdx, dx, st.nx, 1e-6, 1e-6));
    assert_true(gc_close_to_f64(what, fdw, dw, st.nw, 1e-6, 1e-6));
    assert_true(gc_close_to_f64(what, fdb, db, c->K, 1e-6, 1e-6));

    free(st.x); free(st.w); free(st.b); free(st.g); free(st.y);
    free(dx); free(dw); free(db); free(dx2); free(dw2); free(db2);
    free(fx); free(fw); free(fg); free(fb); free(fy); free(fdx); free(fdw); free(fdb);
}

static void test_conv_gradients(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        check_case(&CASES[i], 100 + 10 * i, 0, 0, 0, 0);
}

/* Different vertical and horizontal stride and padding, so that a kernel
 * mixing up h and w parameters cannot pass. */
static void test_conv_anisotropic(void **state) {
    (void)state;
    const conv_case c = {"3x3 stride (2,1) pad (1,0)", 2, 2, 7, 6, 3, 3, 3, 1, 0, 1};
    check_case(&c, 900, 2, 1, 1, 0);
    const conv_case d = {"3x2 stride (1,2) pad (0,1)", 1, 3, 5, 7, 2, 3, 2, 1, 0, 0};
    check_case(&d, 910, 1, 2, 0, 1);
}

/* A hand-computed case: 1 channel, 3x3 input 1..9, 2x2 kernel of ones,
 * stride 2, padding 1 -> 2x2 output of window sums over the padded input:
 * windows rows {-1,0} / {1,2}, columns likewise. */
static void test_conv_stride2_pad1_by_hand(void **state) {
    (void)state;
    double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b[1] = {0.5}, y[4];
    mloc_conv2d_shape s = mloc_conv2d_shape_make(1, 1, 3, 3, 1, 2, 2, 2, 1);
    assert_int_equal(s.P, 2);
    assert_int_equal(s.Q, 2);
    mloc_conv2d_forward_f64(y, x, w, b, &s);
    double want[4] = {1 + 0.5, 2 + 3 + 0.5, 4 + 7 + 0.5, 5 + 6 + 8 + 9 + 0.5};
    assert_true(test_close_f64("conv by hand", y, want, 4, 0, 0));
    /* Backward of a unit dy: dx counts how many windows cover each pixel. */
    double dy[4] = {1, 1, 1, 1}, dx[9];
    mloc_conv2d_backward_f64(dx, NULL, NULL, dy, x, w, &s);
    double want_dx[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_true(test_close_f64("conv by hand dx", dx, want_dx, 9, 0, 0));
}

/* A 1x1 convolution is a linear layer applied at every pixel. */
static void test_conv_1x1_is_linear(void **state) {
    (void)state;
    const int N = 2, C = 3, H = 2, W = 3, K = 4;
    double *x = gc_uniform(N * C * H * W, -1, 1, 5), *w = gc_uniform(K * C, -1, 1, 6);
    double *b = gc_uniform(K, -1, 1, 7), y[2 * 4 * 2 * 3], want[2 * 4 * 2 * 3];
    mloc_conv2d_shape s = mloc_conv2d_shape_make(N, C, H, W, K, 1, 1, 1, 0);
    mloc_conv2d_forward_f64(y, x, w, b, &s);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int i = 0; i < H * W; i++) {
                double v = b[k];
                for (int c = 0; c < C; c++) v += w[k * C + c] * x[(n * C + c) * H * W + i];
                want[(n * K + k) * H * W + i] = v;
            }
    assert_true(test_close_f64("conv 1x1 vs linear", y, want, N * K * H * W, 1e-14, 1e-14));
    free(x); free(w); free(b);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_gradients),
        cmocka_unit_test(test_conv_anisotropic),
        cmocka_unit_test(test_conv_stride2_pad1_by_hand),
        cmocka_unit_test(test_conv_1x1_is_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
