/* ViT building blocks: layernorm (x, gamma, beta), GELU, row softmax,
 * multi-head self-attention (w.r.t. qkv) and dropout: finite-difference
 * checks in double, values against independent formulas, and float against
 * double. */
#include "gc.h"
#include "memloc/nn.h"

/* ---- layernorm ---------------------------------------------------------- */

typedef struct {
    double *x, *gamma, *beta, *g, *y;
    int M, D;
    double eps;
} ln_state;

static double ln_loss(void *user) {
    ln_state *st = user;
    mloc_layernorm_forward_f64(st->y, NULL, NULL, st->x, st->gamma, st->beta, st->M, st->D,
                               st->eps);
    return gc_dot(st->y, st->g, (int64_t)st->M * st->D);
}

static void check_layernorm(int M, int D, double eps, uint64_t seed) {
    const int64_t n = (int64_t)M * D;
    ln_state st = {gc_uniform(n, -1, 2, seed), gc_uniform(D, 0.5, 1.5, seed + 1),
                   gc_uniform(D, -0.5, 0.5, seed + 2), gc_uniform(n, -1, 1, seed + 3),
                   gc_alloc(n), M, D, eps};
    double *mean = gc_alloc(M), *rstd = gc_alloc(M), *dx = gc_alloc(n), *dgam = gc_alloc(D),
           *dbet = gc_alloc(D);
    mloc_layernorm_forward_f64(st.y, mean, rstd, st.x, st.gamma, st.beta, M, D, eps);
    /* Row statistics by their definition. */
    for (int m = 0; m < M; m++) {
        double mu = 0, var = 0;
        for (int d = 0; d < D; d++) mu += st.x[m * D + d] / D;
        for (int d = 0; d < D; d++) var += (st.x[m * D + d] - mu) * (st.x[m * D + d] - mu) / D;
        assert_true(fabs(mean[m] - mu) < 1e-14);
        assert_true(fabs(rstd[m] - 1 / sqrt(var + eps)) < 1e-12);
    }
    mloc_layernorm_backward_f64(dx, dgam, dbet, st.g, st.x, mean, rstd, st.gamma, M, D);
    char what[64];
    snprintf(what, sizeof what, "layernorm %dx%d dx", M, D);
    assert_true(test_gradcheck(what, ln_loss, st.x, dx, n, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    snprintf(what, sizeof what, "layernorm %dx%d dgamma", M, D);
    assert_true(test_gradcheck(what, ln_loss, st.gamma, dgam, D, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    snprintf(what, sizeof what, "layernorm %dx%d dbeta", M, D);
    assert_true(test_gradcheck(what, ln_loss, st.beta, dbet, D, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    /* Float instantiation. */
    gc_round_f32(st.x, n);
    gc_round_f32(st.gamma, D);
    gc_round_f32(st.beta, D);
    gc_round_f32(st.g, n);
    mloc_layernorm_forward_f64(st.y, mean, rstd, st.x, st.gamma, st.beta, M, D, eps);
    memset(dgam, 0, (size_t)D * sizeof *dgam);
    memset(dbet, 0, (size_t)D * sizeof *dbet);
    mloc_layernorm_backward_f64(dx, dgam, dbet, st.g, st.x, mean, rstd, st.gamma, M, D);
    float *fx = gc_f32(st.x, n), *fgam = gc_f32(st.gamma, D), *fbet = gc_f32(st.beta, D),
          *fg = gc_f32(st.g, n), *fy = gc_f32_alloc(n), *fmean = gc_f32_alloc(M),
          *frstd = gc_f32_alloc(M), *fdx = gc_f32_alloc(n), *fdgam = gc_f32_alloc(D),
          *fdbet = gc_f32_alloc(D);
    mloc_layernorm_forward(fy, fmean, frstd, fx, fgam, fbet, M, D, eps);
    mloc_layernorm_backward(fdx, fdgam, fdbet, fg, fx, fmean, frstd, fgam, M, D);
    snprintf(what, sizeof what, "layernorm %dx%d f32 vs f64", M, D);
    /* The float backward reuses mean/rstd rounded to float. */
    assert_true(gc_close_to_f64(what, fy, st.y, n, 1e-6, 1e-5));
    assert_true(gc_close_to_f64(what, fdx, dx, n, 1e-5, 1e-5));
    assert_true(gc_close_to_f64(what, fdgam, dgam, D, 1e-5, 1e-5));
    assert_true(gc_close_to_f64(what, fdbet, dbet, D, 1e-6, 1e-6));
    free(st.x); free(st.gamma); free(st.beta); free(st.g); free(st.y);
    free(mean); free(rstd); free(dx); free(dgam); free(dbet);
    free(fx); free(fgam); free(fbet); free(fg); free(fy); free(fmean); free(frstd);
    free(fdx); free(fdgam); free(fdbet);
}

static void test_layernorm(void **state) {
    (void)state;
    check_layernorm(6, 8, 1e-6, 1); /* timm's eps */
    check_layernorm(3, 5, 1e-5, 2); /* PyTorch's default */
    check_layernorm(2, 2, 1e-6, 3);
}

/* ---- GELU --------------------------------------------------------------- */

typedef struct {
    double *x, *g, *y;
    int64_t n;
} ew_state;

static double gelu_loss(void *user) {
    ew_state *st = user;
    mloc_gelu_forward_f64(st->y, st->x, st->n);
    return gc_dot(st->y, st->g, st->n);
}

static void test_gelu(void **state) {
    (void)state;
    const int64_t n = 50;
    ew_state st = {gc_uniform(n, -4, 4, 21), gc_uniform(n, -1, 1, 22), gc_alloc(n), n};
    double *dx = gc_alloc(n);
    gelu_loss(&st);
    /* Known values: GELU(0) = 0, GELU(1) = Phi(1) = 0.841344746..., GELU(-1) =
     * -(1 - Phi(1)). */
    double x3[3] = {0, 1, -1}, y3[3];
    mloc_gelu_forward_f64(y3, x3, 3);
    assert_true(y3[0] == 0);
    assert_true(fabs(y3[1] - 0.8413447460685429) < 1e-15);
    assert_true(fabs(y3[2] + 0.15865525393145707) < 1e-15);
    mloc_gelu_backward_f64(dx, st.g, st.x, n);
    assert_true(test_gradcheck("gelu dx", gelu_loss, st.x, dx, n, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    gc_round_f32(st.x, n);
    gc_round_f32(st.g, n);
    gelu_loss(&st);
    mloc_gelu_backward_f64(dx, st.g, st.x, n);
    float *fx = gc_f32(st.x, n), *fg = gc_f32(st.g, n), *fy = gc_f32_alloc(n),
          *fdx = gc_f32_alloc(n);
    mloc_gelu_forward(fy, fx, n);
    mloc_gelu_backward(fdx, fg, fx, n);
    assert_true(gc_close_to_f64("gelu f32 vs f64", fy, st.y, n, 1e-7, 1e-7));
    assert_true(gc_close_to_f64("gelu f32 vs f64", fdx, dx, n, 1e-7, 1e-7));
    free(st.x); free(st.g); free(st.y); free(dx); free(fx); free(fg); free(fy); free(fdx);
}

/* ---- softmax ------------------------------------------------------------ */

typedef struct {
    double *x, *g, *y;
    int M, K;
} sm_state;

static double softmax_loss(void *user) {
    sm_state *st = user;
    mloc_softmax_forward_f64(st->y, st->x, st->M, st->K);
    return gc_dot(st->y, st->g, (int64_t)st->M * st->K);
}

static void test_softmax(void **state) {
    (void)state;
    const int M = 4, K = 7;
    sm_state st = {gc_uniform(M * K, -3, 3, 31), gc_uniform(M * K, -1, 1, 32),
                   gc_alloc(M * K), M, K};
    softmax_loss(&st);
    for (int m = 0; m < M; m++) {
        double z = 0;
        for (int k = 0; k < K; k++) z += exp(st.x[m * K + k]);
        for (int k = 0; k < K; k++)
            assert_true(fabs(st.y[m * K + k] - exp(st.x[m * K + k]) / z) < 1e-15);
    }
    double *dx = gc_alloc(M * K);
    mloc_softmax_backward_f64(dx, st.g, st.y, M, K);
    assert_true(test_gradcheck("softmax dx", softmax_loss, st.x, dx, M * K, &st, GC_H, GC_ATOL,
                               GC_RTOL, GC_CHECKS));
    /* Large inputs do not overflow. */
    double big[3] = {1000, 1000, 0}, yb[3];
    mloc_softmax_forward_f64(yb, big, 1, 3);
    assert_true(fabs(yb[0] - 0.5) < 1e-15 && fabs(yb[1] - 0.5) < 1e-15 && yb[2] == 0);
    gc_round_f32(st.x, M * K);
    gc_round_f32(st.g, M * K);
    softmax_loss(&st);
    mloc_softmax_backward_f64(dx, st.g, st.y, M, K);
    float *fx = gc_f32(st.x, M * K), *fg = gc_f32(st.g, M * K), *fy = gc_f32_alloc(M * K),
          *fdx = gc_f32_alloc(M * K);
    mloc_softmax_forward(fy, fx, M, K);
    mloc_softmax_backward(fdx, fg, fy, M, K);
    assert_true(gc_close_to_f64("softmax f32 vs f64", fy, st.y, M * K, 1e-7, 1e-6));
    assert_true(gc_close_to_f64("softmax f32 vs f64", fdx, dx, M * K, 1e-7, 1e-6));
    free(st.x); free(st.g); free(st.y); free(dx); free(fx); free(fg); free(fy); free(fdx);
}

/* ---- attention ---------------------------------------------------------- */

typedef struct {
    mloc_attention_shape s;
    double *qkv, *g, *out, *att;
} att_state;

static double att_loss(void *user) {
    att_state *st = user;
    mloc_attention_forward_f64(st->out, st->att, st->qkv, &st->s);
    return gc_dot(st->out, st->g, (int64_t)st->s.N * st->s.T * st->s.D);
}

static void check_attention(int N, int T, int D, int H, uint64_t seed) {
    att_state st;
    st.s = mloc_attention_shape_make(N, T, D, H);
    const int Dh = D / H;
    assert_int_equal(st.s.Dh, Dh);
    const int64_t nqkv = (int64_t)N * T * 3 * D, nout = (int64_t)N * T * D,
                  natt = (int64_t)N * H * T * T;
    assert_int_equal(mloc_attention_work_len(&st.s), natt);
    st.qkv = gc_uniform(nqkv, -1.5, 1.5, seed);
    st.g = gc_uniform(nout, -1, 1, seed + 1);
    st.out = gc_alloc(nout);
    st.att = gc_alloc(natt);
    att_loss(&st);
    /* Against the definition, built from the softmax kernel: per (n, h),
     * scores = q k^T / sqrt(Dh), att = softmax(scores), out = att v. */
    double *scores = gc_alloc(T * T), *a = gc_alloc(T * T);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            for (int t = 0; t < T; t++)
                for (int u = 0; u < T; u++) {
                    double dot = 0;
                    for (int e = 0; e < Dh; e++)
                        dot += st.qkv[((int64_t)(n * T + t) * 3 + 0) * D + h * Dh + e] *
                               st.qkv[((int64_t)(n * T + u) * 3 + 1) * D + h * Dh + e];
                    scores[t * T + u] = dot / sqrt(Dh);
                }
            mloc_softmax_forward_f64(a, scores, T, T);
            assert_true(test_close_f64("attention probabilities",
                                       st.att + ((int64_t)n * H + h) * T * T, a, T * T, 1e-15,
                                       1e-13));
            for (int t = 0; t < T; t++)
                for (int e = 0; e < Dh; e++) {
                    double o = 0;
                    for (int u = 0; u < T; u++)
                        o += a[t * T + u] * st.qkv[((int64_t)(n * T + u) * 3 + 2) * D + h * Dh + e];
                    assert_true(fabs(st.out[(int64_t)(n * T + t) * D + h * Dh + e] - o) < 1e-14);
                }
        }
    double *dqkv = gc_alloc(nqkv), *work = gc_alloc(natt);
    mloc_attention_backward_f64(dqkv, work, st.g, st.qkv, st.att, &st.s);
    char what[64];
    snprintf(what, sizeof what, "attention N%d T%d D%d H%d dqkv", N, T, D, H);
    assert_true(test_gradcheck(what, att_loss, st.qkv, dqkv, nqkv, &st, GC_H, GC_ATOL, GC_RTOL,
                               1000));
    /* Float instantiation. */
    gc_round_f32(st.qkv, nqkv);
    gc_round_f32(st.g, nout);
    att_loss(&st);
    mloc_attention_backward_f64(dqkv, work, st.g, st.qkv, st.att, &st.s);
    float *fqkv = gc_f32(st.qkv, nqkv), *fg = gc_f32(st.g, nout), *fout = gc_f32_alloc(nout),
          *fatt = gc_f32_alloc(natt), *fdqkv = gc_f32_alloc(nqkv), *fwork = gc_f32_alloc(natt);
    mloc_attention_forward(fout, fatt, fqkv, &st.s);
    mloc_attention_backward(fdqkv, fwork, fg, fqkv, fatt, &st.s);
    snprintf(what, sizeof what, "attention N%d T%d D%d H%d f32 vs f64", N, T, D, H);
    assert_true(gc_close_to_f64(what, fout, st.out, nout, 1e-6, 1e-5));
    assert_true(gc_close_to_f64(what, fatt, st.att, natt, 1e-6, 1e-5));
    assert_true(gc_close_to_f64(what, fdqkv, dqkv, nqkv, 1e-6, 1e-5));
    free(st.qkv); free(st.g); free(st.out); free(st.att); free(scores); free(a);
    free(dqkv); free(work); free(fqkv); free(fg); free(fout); free(fatt); free(fdqkv);
    free(fwork);
}

static void test_attention(void **state) {
    (void)state;
    check_attention(2, 5, 8, 2, 41);
    check_attention(1, 4, 6, 3, 42);
    check_attention(2, 3, 4, 1, 43);
    /* One token: att = 1 and out = v, whatever q and k. */
    double qkv[6] = {0.3, -2, 5, 7, 1.5, -0.25}, out[2], att[2];
    mloc_attention_shape s = mloc_attention_shape_make(1, 1, 2, 2);
    mloc_attention_forward_f64(out, att, qkv, &s);
    assert_true(att[0] == 1 && att[1] == 1 && out[0] == 1.5 && out[1] == -0.25);
}

/* ---- dropout ------------------------------------------------------------ */

static void test_dropout(void **state) {
    (void)state;
    const int64_t n = 20000;
    const double p = 0.25;
    uint8_t *mask = calloc(n, 1), *mask2 = calloc(n, 1);
    assert_non_null(mask);
    assert_non_null(mask2);
    mloc_rng r;
    mloc_rng_init_tag(&r, 1, "dropout", 0, 0, 0);
    mloc_dropout_mask(mask, n, p, &r);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(mask[i] <= 1);
        kept += mask[i];
    }
    /* Binomial(20000, 0.75): sd 61, so +-400 is > 6 sd. */
    assert_true(kept > 15000 - 400 && kept < 15000 + 400);
    mloc_rng_init_tag(&r, 1, "dropout", 0, 0, 0);
    mloc_dropout_mask(mask2, n, p, &r);
    assert_memory_equal(mask, mask2, (size_t)n);
    mloc_dropout_mask(mask2, 100, 0, &r);
    for (int i = 0; i < 100; i++) assert_int_equal(mask2[i], 1);
    mloc_dropout_mask(mask2, 100, 1, &r);
    for (int i = 0; i < 100; i++) assert_int_equal(mask2[i], 0);

    /* y = x mask / (1 - p), applied as x * (1/(1-p)) like PyTorch's scaled
     * noise; the op is linear, so its Jacobian is this same diagonal. */
    const int m = 40;
    double *x = gc_uniform(m, -1, 1, 51), *g = gc_uniform(m, -1, 1, 52), *y = gc_alloc(m),
           *dx = gc_alloc(m);
    mloc_dropout_forward_f64(y, x, mask, m, p);
    for (int i = 0; i < m; i++) assert_true(fabs(y[i] - (mask[i] ? x[i] / 0.75 : 0)) < 1e-15);
    mloc_dropout_backward_f64(dx, g, mask, m, p);
    for (int i = 0; i < m; i++) assert_true(fabs(dx[i] - (mask[i] ? g[i] / 0.75 : 0)) < 1e-15);
    float fx[3] = {1, 2, 3}, fy[3];
    uint8_t fm[3] = {1, 0, 1};
    mloc_dropout_forward(fy, fx, fm, 3, 0.5);
    assert_true(fy[0] == 2 && fy[1] == 0 && fy[2] == 6);
    mloc_dropout_forward(fy, fx, fm, 3, 1.0);
    assert_true(fy[0] == 0 && fy[1] == 0 && fy[2] == 0);
    /* x * noise as PyTorch: a dropped NaN stays NaN (divergence stays visible). */
    fx[1] = NAN;
    mloc_dropout_forward(fy, fx, fm, 3, 0.5);
    assert_true(isnan(fy[1]));
    free(mask); free(mask2); free(x); free(g); free(y); free(dx);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_dropout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
