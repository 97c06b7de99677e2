/* memloc's float reference kernels against PyTorch 1.13 (float32, CPU):
 * forward outputs and every autograd gradient, per op, from the fixtures
 * that tools/gen_op_fixtures.py writes into tests/fixtures/ops.
 *
 * Tolerance: |got - want| <= atol + rtol |want| per element, by default
 * atol 1e-5 and rtol 1e-4. memloc sums in double and rounds once; PyTorch
 * sums in float32 (in an order of its own), so the difference is PyTorch's
 * float rounding: a few ulps per accumulated term. Tolerances larger than the
 * default are justified where they are used. Parameter gradients are
 * accumulated (+=) into zeroed buffers, activation gradients written (=). */
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/nn.h"
#include "test_util.h"

#define ATOL 1e-5
#define RTOL 1e-4

typedef struct {
    mloc_ctx *ctx;
    mloc_st_file *f;
    const char *name;
} fixture;

static fixture fx_open(const char *name) {
    fixture fx = {test_ctx(1), NULL, name};
    char rel[256];
    snprintf(rel, sizeof rel, "ops/%s.safetensors", name);
    mloc_status st = mloc_st_open(fx.ctx, &fx.f, test_fixture(rel));
    if (st != MLOC_OK) fail_msg("%s: %s", rel, mloc_ctx_error(fx.ctx));
    return fx;
}

static void fx_close(fixture *fx) {
    mloc_st_close(fx->f);
    mloc_ctx_destroy(fx->ctx);
}

/* The fixture's hyper-parameter `key` must equal what this test assumes. */
static void fx_expect(const fixture *fx, const char *key, double want) {
    const char *v = mloc_st_metadata(fx->f, key);
    if (!v) fail_msg("%s: no metadata %s", fx->name, key);
    if (strtod(v, NULL) != want)
        fail_msg("%s: metadata %s = %s, the test assumes %g", fx->name, key, v, want);
}

/* Tensor `name` as float32, checking its shape exactly (ndim 0: a scalar). */
static float *fx_read(const fixture *fx, const char *name, int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    float *p = calloc((size_t)n, sizeof *p);
    assert_non_null(p);
    if (mloc_st_read_f32(fx->ctx, p, fx->f, name, ndim, shape) != MLOC_OK)
        fail_msg("%s: %s", fx->name, mloc_ctx_error(fx->ctx));
    return p;
}
#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
#define READ(fx, name, ...) fx_read(fx, name, SHAPE(__VA_ARGS__))

static float fx_scalar(const fixture *fx, const char *name) {
    float v;
    if (mloc_st_read_f32(fx->ctx, &v, fx->f, name, 0, NULL) != MLOC_OK)
        fail_msg("%s: %s", fx->name, mloc_ctx_error(fx->ctx));
    return v;
}

static int close_to(const fixture *fx, const char *what, const float *got, const float *want,
                    int64_t n, double atol, double rtol) {
    char label[160];
    snprintf(label, sizeof label, "%s %s", fx->name, what);
    return test_close_f32(label, got, want, n, atol, rtol);
}

static float *zeros(int64_t n) {
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    assert_non_null(p);
    return p;
}

/* ---- conv2d --------------------------------------------------------------- */

typedef struct {
    const char *name;
    int N, C, H, W, K, k, stride, pad, bias;
} conv_case;

static const conv_case CONVS[] = {
    {"conv_3x3_s1_p1", 2, 3, 7, 6, 4, 3, 1, 1, 1},
    {"conv_3x3_s2_p1_nobias", 2, 3, 7, 6, 4, 3, 2, 1, 0},
    {"conv_1x1_s2_nobias", 2, 4, 6, 7, 3, 1, 2, 0, 0},
    {"conv_1x1_s1", 2, 5, 4, 4, 6, 1, 1, 0, 1},
    {"conv_7x7_s2_p3_nobias", 1, 3, 12, 11, 4, 7, 2, 3, 0},
    {"conv_4x4_s4_patch", 2, 3, 8, 8, 6, 4, 4, 0, 1},
};

static void test_conv2d(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof CONVS / sizeof CONVS[0]; i++) {
        const conv_case *c = &CONVS[i];
        fixture fx = fx_open(c->name);
        fx_expect(&fx, "stride", c->stride);
        fx_expect(&fx, "pad", c->pad);
        fx_expect(&fx, "bias", c->bias);
        mloc_conv2d_shape s =
            mloc_conv2d_shape_make(c->N, c->C, c->H, c->W, c->K, c->k, c->k, c->stride, c->pad);
        const int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->K * c->C * c->k * c->k,
                      ny = (int64_t)c->N * c->K * s.P * s.Q;
        float *x = READ(&fx, "x", c->N, c->C, c->H, c->W);
        float *w = READ(&fx, "weight", c->K, c->C, c->k, c->k);
        float *b = c->bias ? READ(&fx, "bias", c->K) : NULL;
        float *dy = READ(&fx, "dy", c->N, c->K, s.P, s.Q);
        float *y_t = READ(&fx, "y", c->N, c->K, s.P, s.Q);
        float *dx_t = READ(&fx, "dx", c->N, c->C, c->H, c->W);
        float *dw_t = READ(&fx, "dweight", c->K, c->C, c->k, c->k);
        float *db_t = c->bias ? READ(&fx, "dbias", c->K) : NULL;
        float *y = zeros(ny), *dx = zeros(nx), *dw = zeros(nw), *db = zeros(c->K);
        mloc_conv2d_forward(y, x, w, b, &s);
        mloc_conv2d_backward(dx, dw, c->bias ? db : NULL, dy, x, w, &s);
        assert_true(close_to(&fx, "y", y, y_t, ny, ATOL, RTOL));
        assert_true(close_to(&fx, "dx", dx, dx_t, nx, ATOL, RTOL));
        assert_true(close_to(&fx, "dweight", dw, dw_t, nw, ATOL, RTOL));
        if (c->bias) assert_true(close_to(&fx, "dbias", db, db_t, c->K, ATOL, RTOL));
        free(x); free(w); free(b); free(dy); free(y_t); free(dx_t); free(dw_t); free(db_t);
        free(y); free(dx); free(dw); free(db);
        fx_close(&fx);
    }
}

/* ---- batchnorm2d ------------------------------------------------------------ */

static void test_batchnorm2d(void **state) {
    (void)state;
    fixture fx = fx_open("bn_train3");
    const int N = 4, C = 3, H = 5, W = 5;
    const int64_t n = (int64_t)N * C * H * W;
    mloc_bn_shape s = mloc_bn_shape_make(N, C, H * W);
    assert_true(s.eps == 1e-5f && s.momentum == 0.1f); /* PyTorch's defaults */
    fx_expect(&fx, "eps", 1e-5);
    fx_expect(&fx, "momentum", 0.1);
    float *x = READ(&fx, "x", N, C, H, W), *x2 = READ(&fx, "x2", N, C, H, W),
          *x3 = READ(&fx, "x3", N, C, H, W);
    float *gamma = READ(&fx, "weight", C), *beta = READ(&fx, "bias", C);
    float *dy = READ(&fx, "dy", N, C, H, W), *y_t = READ(&fx, "y", N, C, H, W);
    float *dx_t = READ(&fx, "dx", N, C, H, W), *dg_t = READ(&fx, "dweight", C),
          *db_t = READ(&fx, "dbias", C);
    float *mean_t = READ(&fx, "save_mean", C), *inv_t = READ(&fx, "save_invstd", C);
    float *rm1_t = READ(&fx, "running_mean_1", C), *rv1_t = READ(&fx, "running_var_1", C);
    float *rm3_t = READ(&fx, "running_mean_3", C), *rv3_t = READ(&fx, "running_var_3", C);
    float *ye_t = READ(&fx, "y_eval", N, C, H, W);
    float *y = zeros(n), *dx = zeros(n), *dg = zeros(C), *db = zeros(C), *mean = zeros(C),
          *inv = zeros(C), *rm = zeros(C), *rv = zeros(C), *tmp = zeros(n);
    for (int c = 0; c < C; c++) rv[c] = 1; /* PyTorch's initial running_var */
    mloc_batchnorm2d_forward_train(y, mean, inv, rm, rv, x, gamma, beta, &s);
    mloc_batchnorm2d_backward(dx, dg, db, dy, x, mean, inv, gamma, &s);
    assert_true(close_to(&fx, "y", y, y_t, n, ATOL, RTOL));
    assert_true(close_to(&fx, "save_mean", mean, mean_t, C, ATOL, RTOL));
    assert_true(close_to(&fx, "save_invstd", inv, inv_t, C, ATOL, RTOL));
    assert_true(close_to(&fx, "dx", dx, dx_t, n, ATOL, RTOL));
    assert_true(close_to(&fx, "dweight", dg, dg_t, C, ATOL, RTOL));
    assert_true(close_to(&fx, "dbias", db, db_t, C, ATOL, RTOL));
    assert_true(close_to(&fx, "running_mean after 1", rm, rm1_t, C, ATOL, RTOL));
    assert_true(close_to(&fx, "running_var after 1", rv, rv1_t, C, ATOL, RTOL));
    mloc_batchnorm2d_forward_train(tmp, NULL, NULL, rm, rv, x2, gamma, beta, &s);
    mloc_batchnorm2d_forward_train(tmp, NULL, NULL, rm, rv, x3, gamma, beta, &s);
    assert_true(close_to(&fx, "running_mean after 3", rm, rm3_t, C, ATOL, RTOL));
    assert_true(close_to(&fx, "running_var after 3", rv, rv3_t, C, ATOL, RTOL));
    mloc_batchnorm2d_forward_eval(y, x, gamma, beta, rm, rv, &s);
    assert_true(close_to(&fx, "y_eval", y, ye_t, n, ATOL, RTOL));
    free(x); free(x2); free(x3); free(gamma); free(beta); free(dy); free(y_t); free(dx_t);
    free(dg_t); free(db_t); free(mean_t); free(inv_t); free(rm1_t); free(rv1_t); free(rm3_t);
    free(rv3_t); free(ye_t); free(y); free(dx); free(dg); free(db); free(mean); free(inv);
    free(rm); free(rv); free(tmp);
    fx_close(&fx);
}

/* ---- elementwise: relu, add, gelu, dropout; row softmax ------------------------ */

static void test_elementwise(void **state) {
    (void)state;
    {
        fixture fx = fx_open("relu");
        const int64_t n = 120;
        float *x = READ(&fx, "x", 2, 3, 4, 5), *dy = READ(&fx, "dy", 2, 3, 4, 5),
              *y_t = READ(&fx, "y", 2, 3, 4, 5), *dx_t = READ(&fx, "dx", 2, 3, 4, 5);
        float *y = zeros(n), *dx = zeros(n);
        mloc_relu_forward(y, x, n);
        mloc_relu_backward(dx, dy, y, n);
        assert_true(close_to(&fx, "y", y, y_t, n, 0, 0)); /* exact */
        assert_true(close_to(&fx, "dx", dx, dx_t, n, 0, 0));
        free(x); free(dy); free(y_t); free(dx_t); free(y); free(dx);
        fx_close(&fx);
    }
    {
        fixture fx = fx_open("add");
        const int64_t n = 96;
        float *a = READ(&fx, "a", 2, 3, 4, 4), *b = READ(&fx, "b", 2, 3, 4, 4),
              *dy = READ(&fx, "dy", 2, 3, 4, 4), *y_t = READ(&fx, "y", 2, 3, 4, 4),
              *da_t = READ(&fx, "da", 2, 3, 4, 4), *db_t = READ(&fx, "db", 2, 3, 4, 4);
        float *y = zeros(n), *da = zeros(n), *db = zeros(n);
        mloc_add_forward(y, a, b, n);
        mloc_add_backward(da, dy, n);
        mloc_add_backward(db, dy, n);
        assert_true(close_to(&fx, "y", y, y_t, n, 0, 0));
        assert_true(close_to(&fx, "da", da, da_t, n, 0, 0));
        assert_true(close_to(&fx, "db", db, db_t, n, 0, 0));
        free(a); free(b); free(dy); free(y_t); free(da_t); free(db_t); free(y); free(da); free(db);
        fx_close(&fx);
    }
    {
        fixture fx = fx_open("gelu");
        const int64_t n = 21;
        float *x = READ(&fx, "x", 3, 7), *dy = READ(&fx, "dy", 3, 7), *y_t = READ(&fx, "y", 3, 7),
              *dx_t = READ(&fx, "dx", 3, 7);
        float *y = zeros(n), *dx = zeros(n);
        mloc_gelu_forward(y, x, n);
        mloc_gelu_backward(dx, dy, x, n);
        assert_true(close_to(&fx, "y", y, y_t, n, ATOL, RTOL));
        assert_true(close_to(&fx, "dx", dx, dx_t, n, ATOL, RTOL));
        free(x); free(dy); free(y_t); free(dx_t); free(y); free(dx);
        fx_close(&fx);
    }
    {
        fixture fx = fx_open("dropout");
        fx_expect(&fx, "p", 0.3);
        const int64_t n = 40;
        float *x = READ(&fx, "x", 4, 10), *maskf = READ(&fx, "mask", 4, 10),
              *dy = READ(&fx, "dy", 4, 10), *y_t = READ(&fx, "y", 4, 10),
              *dx_t = READ(&fx, "dx", 4, 10);
        uint8_t mask[40];
        for (int i = 0; i < 40; i++) mask[i] = maskf[i] != 0;
        float *y = zeros(n), *dx = zeros(n);
        mloc_dropout_forward(y, x, mask, n, 0.3);
        mloc_dropout_backward(dx, dy, mask, n, 0.3);
        /* PyTorch scales by float(1/0.7) rounded once more: 1 ulp. */
        assert_true(close_to(&fx, "y", y, y_t, n, 1e-7, 1e-6));
        assert_true(close_to(&fx, "dx", dx, dx_t, n, 1e-7, 1e-6));
        free(x); free(maskf); free(dy); free(y_t); free(dx_t); free(y); free(dx);
        fx_close(&fx);
    }
    {
        fixture fx = fx_open("softmax");
        const int M = 4, K = 9;
        float *x = READ(&fx, "x", M, K), *dy = READ(&fx, "dy", M, K), *y_t = READ(&fx, "y", M, K),
              *dx_t = READ(&fx, "dx", M, K);
        float *y = zeros(M * K), *dx = zeros(M * K);
        mloc_softmax_forward(y, x, M, K);
        mloc_softmax_backward(dx, dy, y, M, K);
        assert_true(close_to(&fx, "y", y, y_t, M * K, ATOL, RTOL));
        assert_true(close_to(&fx, "dx", dx, dx_t, M * K, ATOL, RTOL));
        free(x); free(dy); free(y_t); free(dx_t); free(y); free(dx);
        fx_close(&fx);
    }
}

/* ---- maxpool2d --------------------------------------------------------------- */

typedef struct {
    const char *name;
    int N, C, H, W, k, stride, pad;
} pool_case;

static const pool_case POOLS[] = {
    {"maxpool_k2s2", 2, 3, 6, 6, 2, 2, 0},
    {"maxpool_k3s2p1", 2, 2, 7, 7, 3, 2, 1},
    {"maxpool_k2s2_ties", 1, 2, 6, 7, 2, 2, 0},
    {"maxpool_k3s2p1_ties", 1, 2, 7, 6, 3, 2, 1},
};

static void test_maxpool2d(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof POOLS / sizeof POOLS[0]; i++) {
        const pool_case *c = &POOLS[i];
        fixture fx = fx_open(c->name);
        fx_expect(&fx, "k", c->k);
        fx_expect(&fx, "stride", c->stride);
        fx_expect(&fx, "pad", c->pad);
        mloc_pool_shape s = mloc_pool_shape_make(c->N, c->C, c->H, c->W, c->k, c->stride, c->pad);
        const int64_t nx = (int64_t)c->N * c->C * c->H * c->W, ny = (int64_t)c->N * c->C * s.P * s.Q;
        float *x = READ(&fx, "x", c->N, c->C, c->H, c->W), *dy = READ(&fx, "dy", c->N, c->C, s.P, s.Q),
              *y_t = READ(&fx, "y", c->N, c->C, s.P, s.Q),
              *am_t = READ(&fx, "argmax", c->N, c->C, s.P, s.Q),
              *dx_t = READ(&fx, "dx", c->N, c->C, c->H, c->W);
        float *y = zeros(ny), *dx = zeros(nx), *am = zeros(ny);
        int32_t *argmax = calloc((size_t)ny, sizeof *argmax);
        assert_non_null(argmax);
        mloc_maxpool2d_forward(y, argmax, x, &s);
        mloc_maxpool2d_backward(dx, dy, argmax, &s);
        for (int64_t j = 0; j < ny; j++) am[j] = (float)argmax[j];
        /* Selecting and routing are exact: the same winner (ties included),
         * the same values, and dx sums at most a few dy per element. */
        assert_true(close_to(&fx, "argmax", am, am_t, ny, 0, 0));
        assert_true(close_to(&fx, "y", y, y_t, ny, 0, 0));
        assert_true(close_to(&fx, "dx", dx, dx_t, nx, 1e-7, 1e-6));
        free(x); free(dy); free(y_t); free(am_t); free(dx_t); free(y); free(dx); free(am);
        free(argmax);
        fx_close(&fx);
    }
}

/* ---- linear, global average pool ------------------------------------------------ */

static void test_linear_avgpool(void **state) {
    (void)state;
    {
        fixture fx = fx_open("linear");
        mloc_linear_shape s = {5, 7, 4};
        float *x = READ(&fx, "x", 5, 7), *w = READ(&fx, "weight", 4, 7), *b = READ(&fx, "bias", 4),
              *dy = READ(&fx, "dy", 5, 4), *y_t = READ(&fx, "y", 5, 4), *dx_t = READ(&fx, "dx", 5, 7),
              *dw_t = READ(&fx, "dweight", 4, 7), *db_t = READ(&fx, "dbias", 4);
        float *y = zeros(20), *dx = zeros(35), *dw = zeros(28), *db = zeros(4);
        mloc_linear_forward(y, x, w, b, &s);
        mloc_linear_backward(dx, dw, db, dy, x, w, &s);
        assert_true(close_to(&fx, "y", y, y_t, 20, ATOL, RTOL));
        assert_true(close_to(&fx, "dx", dx, dx_t, 35, ATOL, RTOL));
        assert_true(close_to(&fx, "dweight", dw, dw_t, 28, ATOL, RTOL));
        assert_true(close_to(&fx, "dbias", db, db_t, 4, ATOL, RTOL));
        free(x); free(w); free(b); free(dy); free(y_t); free(dx_t); free(dw_t); free(db_t);
        free(y); free(dx); free(dw); free(db);
        fx_close(&fx);
    }
    {
        fixture fx = fx_open("avgpool_global");
        float *x = READ(&fx, "x", 2, 3, 4, 4), *dy = READ(&fx, "dy", 2, 3),
              *y_t = READ(&fx, "y", 2, 3), *dx_t = READ(&fx, "dx", 2, 3, 4, 4);
        float *y = zeros(6), *dx = zeros(96);
        mloc_avgpool_global_forward(y, x, 2, 3, 16);
        mloc_avgpool_global_backward(dx, dy, 2, 3, 16);
        assert_true(close_to(&fx, "y", y, y_t, 6, ATOL, RTOL));
        assert_true(close_to(&fx, "dx", dx, dx_t, 96, ATOL, RTOL));
        free(x); free(dy); free(y_t); free(dx_t); free(y); free(dx);
        fx_close(&fx);
    }
}

/* ---- losses --------------------------------------------------------------------- */

static void check_ntxent(const char *name, int n2, int D, float t) {
    fixture fx = fx_open(name);
    fx_expect(&fx, "n2", n2);
    fx_expect(&fx, "D", D);
    fx_expect(&fx, "temperature", t == 0.5f ? 0.5 : 0.1);
    float *z = READ(&fx, "z", n2, D), *dz_t = READ(&fx, "dz", n2, D), *dz = zeros((int64_t)n2 * D);
    float loss_t = fx_scalar(&fx, "loss");
    float loss = (float)mloc_ntxent(dz, z, n2, D, t);
    assert_true(close_to(&fx, "loss", &loss, &loss_t, 1, ATOL, RTOL));
    assert_true(close_to(&fx, "dz", dz, dz_t, (int64_t)n2 * D, ATOL, RTOL));
    free(z); free(dz_t); free(dz);
    fx_close(&fx);
}

static void test_losses(void **state) {
    (void)state;
    check_ntxent("ntxent_t05", 8, 6, 0.5f);
    check_ntxent("ntxent_t01", 12, 5, 0.1f);
    fixture fx = fx_open("cross_entropy");
    const int N = 6, K = 10;
    float *logits = READ(&fx, "logits", N, K), *dl_t = READ(&fx, "dlogits", N, K);
    float *dl = zeros(N * K);
    int64_t lab64[6];
    int32_t labels[6];
    if (mloc_st_read_i64(fx.ctx, lab64, fx.f, "labels", SHAPE(6)) != MLOC_OK)
        fail_msg("%s", mloc_ctx_error(fx.ctx));
    for (int i = 0; i < N; i++) labels[i] = (int32_t)lab64[i];
    float loss_t = fx_scalar(&fx, "loss");
    float loss = (float)mloc_cross_entropy(dl, logits, labels, N, K);
    assert_true(close_to(&fx, "loss", &loss, &loss_t, 1, ATOL, RTOL));
    assert_true(close_to(&fx, "dlogits", dl, dl_t, N * K, ATOL, RTOL));
    free(logits); free(dl_t); free(dl);
    fx_close(&fx);
}

/* ---- ViT: layernorm, attention ---------------------------------------------------- */

static void test_layernorm(void **state) {
    (void)state;
    fixture fx = fx_open("layernorm");
    fx_expect(&fx, "eps", 1e-6);
    const int M = 10, D = 8;
    float *x = READ(&fx, "x", 2, 5, D), *g = READ(&fx, "weight", D), *b = READ(&fx, "bias", D),
          *dy = READ(&fx, "dy", 2, 5, D), *y_t = READ(&fx, "y", 2, 5, D),
          *dx_t = READ(&fx, "dx", 2, 5, D), *dg_t = READ(&fx, "dweight", D),
          *db_t = READ(&fx, "dbias", D);
    float *y = zeros(M * D), *dx = zeros(M * D), *dg = zeros(D), *db = zeros(D), mean[10],
          rstd[10];
    mloc_layernorm_forward(y, mean, rstd, x, g, b, M, D, 1e-6);
    mloc_layernorm_backward(dx, dg, db, dy, x, mean, rstd, g, M, D);
    assert_true(close_to(&fx, "y", y, y_t, M * D, ATOL, RTOL));
    assert_true(close_to(&fx, "dx", dx, dx_t, M * D, ATOL, RTOL));
    assert_true(close_to(&fx, "dweight", dg, dg_t, D, ATOL, RTOL));
    assert_true(close_to(&fx, "dbias", db, db_t, D, ATOL, RTOL));
    free(x); free(g); free(b); free(dy); free(y_t); free(dx_t); free(dg_t); free(db_t);
    free(y); free(dx); free(dg); free(db);
    fx_close(&fx);
}

static void check_attention(const char *name, int N, int T, int D, int H) {
    fixture fx = fx_open(name);
    fx_expect(&fx, "H", H);
    mloc_attention_shape s = mloc_attention_shape_make(N, T, D, H);
    const int64_t nq = (int64_t)N * T * 3 * D, no = (int64_t)N * T * D,
                  na = mloc_attention_work_len(&s);
    float *qkv = READ(&fx, "qkv", N, T, 3 * D), *dy = READ(&fx, "dy", N, T, D),
          *y_t = READ(&fx, "y", N, T, D), *att_t = READ(&fx, "att", N, H, T, T),
          *dqkv_t = READ(&fx, "dqkv", N, T, 3 * D);
    float *y = zeros(no), *att = zeros(na), *work = zeros(na), *dqkv = zeros(nq);
    mloc_attention_forward(y, att, qkv, &s);
    mloc_attention_backward(dqkv, work, dy, qkv, att, &s);
    assert_true(close_to(&fx, "att", att, att_t, na, ATOL, RTOL));
    assert_true(close_to(&fx, "y", y, y_t, no, ATOL, RTOL));
    assert_true(close_to(&fx, "dqkv", dqkv, dqkv_t, nq, ATOL, RTOL));
    free(qkv); free(dy); free(y_t); free(att_t); free(dqkv_t); free(y); free(att); free(work);
    free(dqkv);
    fx_close(&fx);
}

static void test_attention(void **state) {
    (void)state;
    check_attention("attention", 2, 5, 8, 2);
    check_attention("attention_t17", 1, 17, 12, 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_batchnorm2d),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_maxpool2d),
        cmocka_unit_test(test_linear_avgpool),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
