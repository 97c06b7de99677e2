/* Every reference kernel (float instantiation, forward and backward) gives
 * bitwise identical results with 1, 2 and 3 OpenMP threads: no reduction
 * has a thread-dependent order (STYLE.md 10). Shapes are large enough that
 * every parallel loop is split between threads. */
#include <omp.h>

#include "gc.h"
#include "memloc/nn.h"

/* Everything one run produces, appended in a fixed order. */
typedef struct {
    float *v;
    int64_t n, cap;
} outlog;

static void put(outlog *l, const float *p, int64_t n) {
    if (l->n + n > l->cap) {
        l->cap = 2 * (l->n + n);
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    memcpy(l->v + l->n, p, (size_t)n * sizeof *p);
    l->n += n;
}

static void put_d(outlog *l, double d) {
    float f[2];
    memcpy(f, &d, sizeof d);
    put(l, f, 2);
}

static float *rnd(int64_t n, float lo, float hi, uint64_t seed) {
    float *p = gc_f32_alloc(n);
    test_fill_uniform_f32(p, n, lo, hi, seed);
    return p;
}

static void run_all(outlog *l) {
    /* conv 3x3 s2 p1 with bias */
    mloc_conv2d_shape cs = mloc_conv2d_shape_make(3, 4, 9, 8, 5, 3, 3, 2, 1);
    int64_t nx = 3 * 4 * 9 * 8, nw = 5 * 4 * 9, ny = (int64_t)3 * 5 * cs.P * cs.Q;
    float *x = rnd(nx, -1, 1, 1), *w = rnd(nw, -1, 1, 2), *b = rnd(5, -1, 1, 3),
          *dy = rnd(ny, -1, 1, 4);
    float *y = gc_f32_alloc(ny), *dx = gc_f32_alloc(nx), *dw = gc_f32_alloc(nw),
          *db = gc_f32_alloc(5);
    mloc_conv2d_forward(y, x, w, b, &cs);
    mloc_conv2d_backward(dx, dw, db, dy, x, w, &cs);
    put(l, y, ny); put(l, dx, nx); put(l, dw, nw); put(l, db, 5);
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);

    /* batchnorm train, eval, backward */
    mloc_bn_shape bs = mloc_bn_shape_make(4, 6, 25);
    int64_t n = 4 * 6 * 25;
    x = rnd(n, -1, 2, 5); dy = rnd(n, -1, 1, 6);
    float *gam = rnd(6, 0.5f, 1.5f, 7), *bet = rnd(6, -1, 1, 8), rm[6] = {0}, rv[6];
    float mean[6], inv[6], dg[6] = {0}, dbt[6] = {0};
    for (int c = 0; c < 6; c++) rv[c] = 1;
    y = gc_f32_alloc(n); dx = gc_f32_alloc(n);
    mloc_batchnorm2d_forward_train(y, mean, inv, rm, rv, x, gam, bet, &bs);
    mloc_batchnorm2d_backward(dx, dg, dbt, dy, x, mean, inv, gam, &bs);
    put(l, y, n); put(l, dx, n); put(l, mean, 6); put(l, inv, 6); put(l, rm, 6); put(l, rv, 6);
    put(l, dg, 6); put(l, dbt, 6);
    mloc_batchnorm2d_forward_eval(y, x, gam, bet, rm, rv, &bs);
    put(l, y, n);
    /* relu, add, gelu, dropout over the same buffers */
    mloc_relu_forward(y, x, n);
    mloc_relu_backward(dx, dy, y, n);
    put(l, y, n); put(l, dx, n);
    mloc_add_forward(y, x, dy, n);
    mloc_add_backward(dx, dy, n);
    put(l, y, n); put(l, dx, n);
    mloc_gelu_forward(y, x, n);
    mloc_gelu_backward(dx, dy, x, n);
    put(l, y, n); put(l, dx, n);
    uint8_t *mask = calloc((size_t)n, 1);
    assert_non_null(mask);
    mloc_rng r;
    mloc_rng_init_tag(&r, 3, "dropout", 1, 2, 3);
    mloc_dropout_mask(mask, n, 0.1, &r);
    mloc_dropout_forward(y, x, mask, n, 0.1);
    mloc_dropout_backward(dx, dy, mask, n, 0.1);
    put(l, y, n); put(l, dx, n);
    free(mask);
    /* global average pool over (N*C, HW) = (24, 25) */
    float avg[24], davg[24 * 25];
    mloc_avgpool_global_forward(avg, x, 4, 6, 25);
    mloc_avgpool_global_backward(davg, dy, 4, 6, 25);
    put(l, avg, 24); put(l, davg, 24 * 25);
    free(x); free(dy); free(gam); free(bet); free(y); free(dx);

    /* maxpool 3/2/1 (overlapping) */
    mloc_pool_shape ps = mloc_pool_shape_make(3, 4, 9, 7, 3, 2, 1);
    nx = 3 * 4 * 9 * 7; ny = (int64_t)3 * 4 * ps.P * ps.Q;
    x = rnd(nx, -1, 1, 9); dy = rnd(ny, -1, 1, 10);
    y = gc_f32_alloc(ny); dx = gc_f32_alloc(nx);
    int32_t *am = calloc((size_t)ny, sizeof *am);
    assert_non_null(am);
    mloc_maxpool2d_forward(y, am, x, &ps);
    mloc_maxpool2d_backward(dx, dy, am, &ps);
    put(l, y, ny); put(l, dx, nx);
    free(x); free(dy); free(y); free(dx); free(am);

    /* linear (N,I,O) = (7, 33, 9) */
    mloc_linear_shape ls = {7, 33, 9};
    x = rnd(7 * 33, -1, 1, 11); w = rnd(9 * 33, -1, 1, 12); b = rnd(9, -1, 1, 13);
    dy = rnd(7 * 9, -1, 1, 14);
    y = gc_f32_alloc(7 * 9); dx = gc_f32_alloc(7 * 33); dw = gc_f32_alloc(9 * 33);
    db = gc_f32_alloc(9);
    mloc_linear_forward(y, x, w, b, &ls);
    mloc_linear_backward(dx, dw, db, dy, x, w, &ls);
    put(l, y, 7 * 9); put(l, dx, 7 * 33); put(l, dw, 9 * 33); put(l, db, 9);
    free(x); free(w); free(b); free(dy); free(y); free(dx); free(dw); free(db);

    /* NT-Xent (2N = 32, D = 12) and cross-entropy (N = 64, K = 10): long
     * enough loss sums that a thread-split reduction would change low bits. */
    float *z = rnd(32 * 12, -1, 1, 15), *dz = gc_f32_alloc(32 * 12);
    put_d(l, mloc_ntxent(dz, z, 32, 12, 0.5f));
    put(l, dz, 32 * 12);
    int32_t labels[64];
    for (int i = 0; i < 64; i++) labels[i] = (i * 7) % 10;
    float *logits = rnd(640, -3, 3, 16), *dl = gc_f32_alloc(640);
    put_d(l, mloc_cross_entropy(dl, logits, labels, 64, 10));
    put(l, dl, 640);
    free(z); free(dz); free(logits); free(dl);

    /* layernorm (M, D) = (10, 24), softmax (10, 24) */
    x = rnd(240, -1, 2, 17); dy = rnd(240, -1, 1, 18);
    float *lg = rnd(24, 0.5f, 1.5f, 19), *lb = rnd(24, -1, 1, 20), lmean[10], lrstd[10];
    float ldg[24] = {0}, ldb[24] = {0};
    y = gc_f32_alloc(240); dx = gc_f32_alloc(240);
    mloc_layernorm_forward(y, lmean, lrstd, x, lg, lb, 10, 24, 1e-6);
    mloc_layernorm_backward(dx, ldg, ldb, dy, x, lmean, lrstd, lg, 10, 24);
    put(l, y, 240); put(l, dx, 240); put(l, ldg, 24); put(l, ldb, 24); put(l, lmean, 10);
    put(l, lrstd, 10);
    mloc_softmax_forward(y, x, 10, 24);
    mloc_softmax_backward(dx, dy, y, 10, 24);
    put(l, y, 240); put(l, dx, 240);
    free(x); free(dy); free(lg); free(lb); free(y); free(dx);

    /* attention (N, T, D, H) = (2, 9, 12, 3) */
    mloc_attention_shape as = mloc_attention_shape_make(2, 9, 12, 3);
    int64_t nq = 2 * 9 * 36, no = 2 * 9 * 12, na = mloc_attention_work_len(&as);
    float *qkv = rnd(nq, -1, 1, 21), *dout = rnd(no, -1, 1, 22);
    float *out = gc_f32_alloc(no), *att = gc_f32_alloc(na), *work = gc_f32_alloc(na),
          *dqkv = gc_f32_alloc(nq);
    mloc_attention_forward(out, att, qkv, &as);
    mloc_attention_backward(dqkv, work, dout, qkv, att, &as);
    put(l, out, no); put(l, att, na); put(l, dqkv, nq);
    free(qkv); free(dout); free(out); free(att); free(work); free(dqkv);
}

static void test_thread_count_invariance(void **state) {
    (void)state;
    outlog one = {0}, two = {0}, three = {0};
    omp_set_num_threads(1);
    run_all(&one);
    omp_set_num_threads(2);
    run_all(&two);
    omp_set_num_threads(3);
    run_all(&three);
    printf("kernel outputs compared: %lld floats\n", (long long)one.n);
    assert_true(one.n > 10000);
    assert_int_equal(one.n, two.n);
    assert_int_equal(one.n, three.n);
    int64_t first = -1;
    for (int64_t i = 0; i < one.n && first < 0; i++)
        if (memcmp(&one.v[i], &two.v[i], sizeof(float)) || memcmp(&one.v[i], &three.v[i], sizeof(float)))
            first = i;
    if (first >= 0)
        printf("first difference at output %lld: %.9g (1 thread) %.9g (2) %.9g (3)\n",
               (long long)first, one.v[first], two.v[first], three.v[first]);
    assert_true(first < 0);
    free(one.v); free(two.v); free(three.v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_count_invariance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
