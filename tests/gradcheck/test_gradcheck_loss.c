/* NT-Xent and softmax cross-entropy: finite-difference checks of the input
 * gradients (double), values by hand, the caller-scratch form against the
 * allocating one, and float against double. */
#include "gc.h"
#include "memloc/nn.h"

typedef struct {
    double *z;
    int n2, D;
    double t;
} nt_state;

static double ntxent_loss(void *user) {
    nt_state *st = user;
    return mloc_ntxent_f64(NULL, st->z, st->n2, st->D, st->t);
}

static void check_ntxent(int n2, int D, double t, uint64_t seed) {
    nt_state st = {gc_uniform((int64_t)n2 * D, -1, 1, seed), n2, D, t};
    const int64_t nz = (int64_t)n2 * D;
    /* Make the positives correlated, as two views of one image are. */
    for (int i = 0; i < n2 / 2; i++)
        for (int d = 0; d < D; d++)
            st.z[(int64_t)(i + n2 / 2) * D + d] = 0.7 * st.z[(int64_t)i * D + d] +
                                                  0.3 * st.z[(int64_t)(i + n2 / 2) * D + d];
    double *dz = gc_alloc(nz);
    double loss = mloc_ntxent_f64(dz, st.z, n2, D, t);
    assert_true(isfinite(loss) && loss > 0);
    char what[64];
    snprintf(what, sizeof what, "ntxent 2N=%d D=%d T=%g dz", n2, D, t);
    assert_true(test_gradcheck(what, ntxent_loss, st.z, dz, nz, &st, GC_H, GC_ATOL, GC_RTOL,
                               GC_CHECKS));
    /* The scratch-taking form gives bit-identical results. */
    double *work = gc_alloc(mloc_ntxent_work_len(n2, D)), *dz2 = gc_alloc(nz);
    assert_true(mloc_ntxent_ws_f64(dz2, work, st.z, n2, D, t) == loss);
    assert_memory_equal(dz, dz2, (size_t)nz * sizeof *dz);
    /* Float on the same values. */
    gc_round_f32(st.z, nz);
    loss = mloc_ntxent_f64(dz, st.z, n2, D, t);
    float *fz = gc_f32(st.z, nz), *fdz = gc_f32_alloc(nz);
    double floss = mloc_ntxent(fdz, fz, n2, D, (float)t);
    /* T is rounded to float in the float instantiation. */
    assert_true(fabs(floss - loss) <= 1e-6 * fabs(loss));
    snprintf(what, sizeof what, "ntxent 2N=%d D=%d f32 vs f64", n2, D);
    assert_true(gc_close_to_f64(what, fdz, dz, nz, 1e-7, 1e-5));
    free(st.z); free(dz); free(work); free(dz2); free(fz); free(fdz);
}

static void test_ntxent_gradients(void **state) {
    (void)state;
    check_ntxent(6, 5, 0.5, 1); /* SimCLR's default temperature */
    check_ntxent(8, 3, 0.1, 2);
    check_ntxent(4, 7, 1.0, 3);
}

/* Values by hand. With 2N = 2 the only other row is the positive, so the
 * loss is exactly 0 for any z (and so is the gradient). With 2N = 4 and
 * orthonormal rows (u_0 = u_2 = e_0, u_1 = u_3 = e_1): each row has
 * similarities {1/T to its positive, 0, 0} -> loss = log(e^{1/T} + 2) - 1/T. */
static void test_ntxent_by_hand(void **state) {
    (void)state;
    double z2[6] = {1, 2, 3, -1, 0.5, 2}, dz2[6];
    assert_true(fabs(mloc_ntxent_f64(dz2, z2, 2, 3, 0.5)) < 1e-15);
    for (int i = 0; i < 6; i++) assert_true(fabs(dz2[i]) < 1e-15);
    double z4[8] = {3, 0, 0, 2, 1, 0, 0, 0.5}, dz4[8];
    double t = 0.5, want = log(exp(1 / t) + 2) - 1 / t;
    assert_true(fabs(mloc_ntxent_f64(dz4, z4, 4, 2, t) - want) < 1e-14);
    /* Scaling a row never changes the loss: dz_i is orthogonal to z_i. */
    for (int i = 0; i < 4; i++)
        assert_true(fabs(dz4[2 * i] * z4[2 * i] + dz4[2 * i + 1] * z4[2 * i + 1]) < 1e-15);
}

typedef struct {
    double *logits;
    int32_t *labels;
    int N, K;
} ce_state;

static double ce_loss(void *user) {
    ce_state *st = user;
    return mloc_cross_entropy_f64(NULL, st->logits, st->labels, st->N, st->K);
}

static void test_cross_entropy(void **state) {
    (void)state;
    int32_t labels[5] = {0, 3, 6, 2, 3};
    ce_state st = {gc_uniform(35, -3, 3, 11), labels, 5, 7};
    double *dl = gc_alloc(35);
    double loss = mloc_cross_entropy_f64(dl, st.logits, labels, 5, 7);
    assert_true(test_gradcheck("cross_entropy dlogits", ce_loss, st.logits, dl, 35, &st, GC_H,
                               GC_ATOL, GC_RTOL, GC_CHECKS));
    /* Each gradient row sums to zero (softmax minus one-hot). */
    for (int n = 0; n < 5; n++) {
        double s = 0;
        for (int k = 0; k < 7; k++) s += dl[n * 7 + k];
        assert_true(fabs(s) < 1e-16);
    }
    /* Uniform logits: loss log K, whatever the labels. */
    double flat[14] = {2, 2, 2, 2, 2, 2, 2, -1, -1, -1, -1, -1, -1, -1};
    assert_true(fabs(mloc_cross_entropy_f64(NULL, flat, labels, 2, 7) - log(7)) < 1e-15);
    /* Large logits do not overflow (max subtraction). */
    double big[2] = {1000, 0};
    int32_t lab0[1] = {0};
    assert_true(fabs(mloc_cross_entropy_f64(NULL, big, lab0, 1, 2) - log1p(exp(-1000))) < 1e-15);
    /* Float instantiation. */
    gc_round_f32(st.logits, 35);
    loss = mloc_cross_entropy_f64(dl, st.logits, labels, 5, 7);
    float *fl = gc_f32(st.logits, 35), *fdl = gc_f32_alloc(35);
    double floss = mloc_cross_entropy(fdl, fl, labels, 5, 7);
    assert_true(fabs(floss - loss) < 1e-12);
    assert_true(gc_close_to_f64("cross_entropy f32 vs f64", fdl, dl, 35, 1e-8, 1e-6));
    free(st.logits); free(dl); free(fl); free(fdl);
}

int main(void) {
    gc_single_thread();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ntxent_gradients),
        cmocka_unit_test(test_ntxent_by_hand),
        cmocka_unit_test(test_cross_entropy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
