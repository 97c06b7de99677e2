/* Statistics against SciPy 1.10 / NumPy 1.24 (tests/fixtures/stats, written by
 * tools/gen_stats_fixtures.py) and hand cases.
 *
 * Tolerances, per element |got - want| <= atol + rtol |want|:
 *   exact arithmetic in SciPy/NumPy (tau, t, dof, mean, variance, median,
 *   quantiles)                                   rtol 1e-9, atol 1e-15
 *   p-values                                     rtol 1e-6, atol 1e-300
 *   special functions (betainc, stdtr, ndtr)     rtol 1e-9, atol 1e-300
 *   argsort, top-k overlap, the exact/asymptotic choice: equal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memloc/io.h"
#include "memloc/stats.h"
#include "test_util.h"

#define RTOL_EXACT 1e-9
#define ATOL_EXACT 1e-15
#define RTOL_P 1e-6
#define ATOL_P 1e-300

static mloc_st_file *open_fixture(mloc_ctx *ctx, const char *name) {
    mloc_st_file *f = NULL;
    if (mloc_st_open(ctx, &f, test_fixture(name)) != MLOC_OK)
        fail_msg("%s", mloc_ctx_error(ctx));
    return f;
}

/* A 1-d F64 tensor of the fixture, malloc'ed; its length in *n. */
static double *read_vec(mloc_ctx *ctx, const mloc_st_file *f, const char *name, int64_t *n) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    if (!t) fail_msg("fixture tensor %s missing", name);
    int64_t len = t->numel;
    double *v = malloc((size_t)(len ? len : 1) * sizeof *v);
    assert_int_equal(mloc_st_read_f64(ctx, v, f, name, t->ndim, t->shape), MLOC_OK);
    if (n) *n = len;
    return v;
}

static int64_t *read_ivec(mloc_ctx *ctx, const mloc_st_file *f, const char *name) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    if (!t) fail_msg("fixture tensor %s missing", name);
    int64_t *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    assert_int_equal(mloc_st_read_i64(ctx, v, f, name, t->ndim, t->shape), MLOC_OK);
    return v;
}

static int close1(const char *what, double got, double want, double atol, double rtol) {
    return test_close_f64(what, &got, &want, 1, atol, rtol);
}

/* ---- Kendall ---------------------------------------------------------- */

static void test_kendall_fixture(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = open_fixture(ctx, "stats/kendall.safetensors");
    int cases = atoi(mloc_st_metadata(f, "cases"));
    assert_true(cases >= 15);
    static const mloc_alternative alts[3] = {MLOC_ALT_TWO_SIDED, MLOC_ALT_GREATER, MLOC_ALT_LESS};
    int ok = 1;
    for (int k = 0; k < cases; k++) {
        char name[64], what[96];
        int64_t n, ny;
        snprintf(name, sizeof name, "case%d.x", k);
        double *x = read_vec(ctx, f, name, &n);
        snprintf(name, sizeof name, "case%d.y", k);
        double *y = read_vec(ctx, f, name, &ny);
        assert_int_equal(n, ny);
        snprintf(name, sizeof name, "case%d.result", k);
        double *want = read_vec(ctx, f, name, NULL);
        for (int a = 0; a < 3; a++) {
            mloc_kendall r;
            assert_int_equal(mloc_stats_kendalltau(ctx, x, y, n, alts[a], &r), MLOC_OK);
            snprintf(what, sizeof what, "kendall case %d (n=%lld) tau", k, (long long)n);
            if (a == 0) ok &= close1(what, r.tau, want[0], ATOL_EXACT, RTOL_EXACT);
            snprintf(what, sizeof what, "kendall case %d (n=%lld) p[%d]", k, (long long)n, a);
            ok &= close1(what, r.p, want[1 + a], ATOL_P, RTOL_P);
            if (r.exact != (int)want[4]) {
                printf("kendall case %d: exact %d, scipy's choice %d\n", k, r.exact,
                       (int)want[4]);
                ok = 0;
            }
            /* counts add up: every pair is concordant, discordant or tied */
            int64_t tot = n * (n - 1) / 2;
            assert_int_equal(r.concordant + r.discordant + r.ties_x + r.ties_y - r.ties_xy, tot);
        }
        free(x);
        free(y);
        free(want);
    }
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
    assert_true(ok);
}

static void test_kendall_hand(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    double x[6] = {3, 1, 4, 1.5, 9, 2.6}, rev[6];
    for (int i = 0; i < 6; i++) rev[i] = -x[i];
    mloc_kendall r;
    assert_int_equal(mloc_stats_kendalltau(ctx, x, x, 6, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    assert_true(r.tau == 1.0);
    assert_true(r.exact);
    assert_int_equal(r.concordant, 15);
    assert_int_equal(r.discordant, 0);
    assert_float_equal(r.p, 2.0 / 720.0, 1e-15); /* 2/n! */
    assert_int_equal(mloc_stats_kendalltau(ctx, x, rev, 6, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    assert_true(r.tau == -1.0);
    assert_int_equal(r.discordant, 15);

    /* the textbook tau-b with ties: x = (1,2,2,3), y = (1,3,2,3):
     * C = 4, D = 0... pairs (i<j): (1,2):C (1,3):C (1,4):C (2,3): tie x
     * (2,4): tie y (3,4):C -> C=4, D=0, ties_x=1, ties_y=1,
     * tau_b = 4 / sqrt(5 * 5) = 0.8 */
    double tx[4] = {1, 2, 2, 3}, ty[4] = {1, 3, 2, 3};
    assert_int_equal(mloc_stats_kendalltau(ctx, tx, ty, 4, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    assert_int_equal(r.concordant, 4);
    assert_int_equal(r.discordant, 0);
    assert_int_equal(r.ties_x, 1);
    assert_int_equal(r.ties_y, 1);
    assert_int_equal(r.ties_xy, 0);
    assert_float_equal(r.tau, 0.8, 1e-15);
    assert_false(r.exact);

    /* SciPy's NaN cases: constant input, NaN in the data, n < 2 */
    double c[5] = {2, 2, 2, 2, 2}, v[5] = {1, 2, 3, 4, 5}, nan5[5] = {1, 2, NAN, 4, 5};
    assert_int_equal(mloc_stats_kendalltau(ctx, c, v, 5, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    assert_true(isnan(r.tau) && isnan(r.p));
    assert_int_equal(mloc_stats_kendalltau(ctx, v, nan5, 5, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    assert_true(isnan(r.tau) && isnan(r.p));
    assert_int_equal(mloc_stats_kendalltau(ctx, v, v, 1, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    assert_true(isnan(r.tau));
    mloc_ctx_destroy(ctx);
}

/* O(n log n) at n = 5,000 (the candidate pool size) with ties, checked
 * against the O(n^2) pair count. */
static void test_kendall_large(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const int64_t n = 5000;
    double *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    test_fill_uniform_f64(x, n, 0, 1, 11);
    test_fill_uniform_f64(y, n, 0, 1, 12);
    for (int64_t i = 0; i < n; i++) {
        y[i] = floor(20 * (0.3 * x[i] + 0.7 * y[i])); /* ties in y */
        if (i % 3 == 0) x[i] = floor(x[i] * 50);        /* ties in x, some joint */
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mloc_kendall r;
    assert_int_equal(mloc_stats_kendalltau(ctx, x, y, n, MLOC_ALT_TWO_SIDED, &r), MLOC_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("kendalltau n=%lld: %.2f ms\n", (long long)n, ms);
    assert_true(ms < 200); /* the O(n^2) count below takes far longer */

    int64_t con = 0, dis = 0, tx = 0, ty = 0, txy = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double dx = x[i] - x[j], dy = y[i] - y[j];
            if (dx == 0 && dy == 0) txy++;
            if (dx == 0) tx++;
            if (dy == 0) ty++;
            if (dx * dy > 0) con++;
            if (dx * dy < 0) dis++;
        }
    assert_int_equal(r.concordant, con);
    assert_int_equal(r.discordant, dis);
    assert_int_equal(r.ties_x, tx);
    assert_int_equal(r.ties_y, ty);
    assert_int_equal(r.ties_xy, txy);
    double tot = (double)n * (n - 1) / 2;
    assert_float_equal(r.tau, (double)(con - dis) / sqrt((tot - tx) * (tot - ty)), 1e-12);
    free(x);
    free(y);
    mloc_ctx_destroy(ctx);
}

/* ---- t-tests ------------------------------------------------------------ */

static int check_ttest(const char *what, mloc_ttest r[3], const double *want) {
    char buf[128];
    int ok = 1;
    snprintf(buf, sizeof buf, "%s t", what);
    ok &= close1(buf, r[0].t, want[0], ATOL_EXACT, RTOL_EXACT);
    snprintf(buf, sizeof buf, "%s dof", what);
    ok &= close1(buf, r[0].dof, want[1], ATOL_EXACT, RTOL_EXACT);
    for (int a = 0; a < 3; a++) {
        snprintf(buf, sizeof buf, "%s p[%d]", what, a);
        ok &= close1(buf, r[a].p, want[2 + a], ATOL_P, RTOL_P);
    }
    return ok;
}

static void test_ttest_fixture(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = open_fixture(ctx, "stats/ttest.safetensors");
    static const mloc_alternative alts[3] = {MLOC_ALT_TWO_SIDED, MLOC_ALT_GREATER, MLOC_ALT_LESS};
    int ok = 1;
    int ones = atoi(mloc_st_metadata(f, "one")), twos = atoi(mloc_st_metadata(f, "two"));
    assert_true(ones >= 5 && twos >= 5);
    for (int k = 0; k < ones; k++) {
        char name[64], what[64];
        int64_t n;
        snprintf(name, sizeof name, "one%d.x", k);
        double *x = read_vec(ctx, f, name, &n);
        snprintf(name, sizeof name, "one%d.popmean", k);
        double *m = read_vec(ctx, f, name, NULL);
        snprintf(name, sizeof name, "one%d.result", k);
        double *want = read_vec(ctx, f, name, NULL);
        mloc_ttest r[3];
        for (int a = 0; a < 3; a++) r[a] = mloc_stats_ttest_1samp(x, n, m[0], alts[a]);
        snprintf(what, sizeof what, "ttest_1samp %d (n=%lld)", k, (long long)n);
        ok &= check_ttest(what, r, want);
        free(x);
        free(m);
        free(want);
    }
    for (int k = 0; k < twos; k++) {
        char name[64], what[64];
        int64_t nx, ny;
        snprintf(name, sizeof name, "two%d.x", k);
        double *x = read_vec(ctx, f, name, &nx);
        snprintf(name, sizeof name, "two%d.y", k);
        double *y = read_vec(ctx, f, name, &ny);
        for (int equal_var = 1; equal_var >= 0; equal_var--) {
            snprintf(name, sizeof name, "two%d.%s", k, equal_var ? "student" : "welch");
            double *want = read_vec(ctx, f, name, NULL);
            mloc_ttest r[3];
            for (int a = 0; a < 3; a++)
                r[a] = mloc_stats_ttest_ind(x, nx, y, ny, equal_var, alts[a]);
            snprintf(what, sizeof what, "ttest_ind %s %d (%lld, %lld)",
                     equal_var ? "student" : "welch", k, (long long)nx, (long long)ny);
            ok &= check_ttest(what, r, want);
            free(want);
        }
        free(x);
        free(y);
    }
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
    assert_true(ok);
}

static void test_ttest_hand(void **state) {
    (void)state;
    /* x = (1,2,3,4,5), popmean 2: mean 3, var 2.5, t = 1/sqrt(0.5) */
    double x[5] = {1, 2, 3, 4, 5};
    mloc_ttest r = mloc_stats_ttest_1samp(x, 5, 2.0, MLOC_ALT_TWO_SIDED);
    assert_float_equal(r.t, sqrt(2.0), 1e-15);
    assert_true(r.dof == 4);
    /* Student t with 4 dof in closed form: F(t) = 1/2 + t(t^2+6) / (2 (t^2+4)^(3/2)) */
    double t = sqrt(2.0), cdf = 0.5 + t * (t * t + 6) / (2 * pow(t * t + 4, 1.5));
    assert_float_equal(r.p, 2 * (1 - cdf), 1e-14);
    mloc_ttest g = mloc_stats_ttest_1samp(x, 5, 2.0, MLOC_ALT_GREATER);
    assert_float_equal(g.p, 1 - cdf, 1e-14);

    /* zero variance: t = +inf, p = 0 (greater) / 1 (less); equal means: NaN */
    double c[4] = {1, 1, 1, 1};
    r = mloc_stats_ttest_1samp(c, 4, 0.0, MLOC_ALT_GREATER);
    assert_true(isinf(r.t) && r.t > 0 && r.p == 0.0);
    r = mloc_stats_ttest_1samp(c, 4, 0.0, MLOC_ALT_LESS);
    assert_true(r.p == 1.0);
    r = mloc_stats_ttest_1samp(c, 4, 1.0, MLOC_ALT_TWO_SIDED);
    assert_true(isnan(r.t) && isnan(r.p));
    /* n < 2 */
    r = mloc_stats_ttest_1samp(x, 1, 0.0, MLOC_ALT_TWO_SIDED);
    assert_true(isnan(r.t) && isnan(r.p));
    /* Welch with both variances zero: dof 1 as SciPy */
    double d[3] = {2, 2, 2};
    r = mloc_stats_ttest_ind(c, 4, d, 3, 0, MLOC_ALT_GREATER);
    assert_true(r.dof == 1 && isinf(r.t) && r.t < 0 && r.p == 1.0);
    /* Student: pooled dof */
    r = mloc_stats_ttest_ind(x, 5, d, 3, 1, MLOC_ALT_TWO_SIDED);
    assert_true(r.dof == 6);
}

/* ---- summaries, quantiles, ranking -------------------------------------- */

static void test_summary_fixture(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = open_fixture(ctx, "stats/summary.safetensors");
    int64_t nq;
    double *q = read_vec(ctx, f, "q", &nq);
    int cases = atoi(mloc_st_metadata(f, "cases")), ok = 1;
    assert_true(cases >= 8);
    for (int k = 0; k < cases; k++) {
        char name[64], what[64];
        int64_t n;
        snprintf(name, sizeof name, "case%d.x", k);
        double *x = read_vec(ctx, f, name, &n);
        snprintf(name, sizeof name, "case%d.summary", k);
        double *sum = read_vec(ctx, f, name, NULL);
        snprintf(name, sizeof name, "case%d.quantiles", k);
        double *quant = read_vec(ctx, f, name, NULL);
        snprintf(what, sizeof what, "case %d (n=%lld) mean", k, (long long)n);
        ok &= close1(what, mloc_stats_mean(x, n), sum[0], ATOL_EXACT, RTOL_EXACT);
        double var = mloc_stats_var(x, n);
        if (n > 1) {
            snprintf(what, sizeof what, "case %d (n=%lld) var", k, (long long)n);
            ok &= close1(what, var, sum[1], ATOL_EXACT, RTOL_EXACT);
        } else {
            assert_true(isnan(var));
        }
        double med, *got = malloc((size_t)nq * sizeof *got);
        assert_int_equal(mloc_stats_median(ctx, x, n, &med), MLOC_OK);
        snprintf(what, sizeof what, "case %d (n=%lld) median", k, (long long)n);
        ok &= close1(what, med, sum[2], ATOL_EXACT, RTOL_EXACT);
        assert_int_equal(mloc_stats_quantiles(ctx, x, n, q, nq, got), MLOC_OK);
        snprintf(what, sizeof what, "case %d (n=%lld) quantiles", k, (long long)n);
        ok &= test_close_f64(what, got, quant, nq, ATOL_EXACT, RTOL_EXACT);

        int64_t *idx = malloc((size_t)n * sizeof *idx), *rank = malloc((size_t)n * sizeof *rank);
        for (int desc = 0; desc <= 1; desc++) {
            snprintf(name, sizeof name, "case%d.argsort_%s", k, desc ? "desc" : "asc");
            int64_t *want = read_ivec(ctx, f, name);
            assert_int_equal(mloc_stats_argsort(ctx, x, n, desc, idx), MLOC_OK);
            assert_memory_equal(idx, want, (size_t)n * sizeof *idx);
            assert_int_equal(mloc_stats_rank(ctx, x, n, desc, rank), MLOC_OK);
            for (int64_t i = 0; i < n; i++) assert_int_equal(rank[want[i]], i);
            free(want);
        }
        free(idx);
        free(rank);
        free(got);
        free(x);
        free(sum);
        free(quant);
    }
    int topk = atoi(mloc_st_metadata(f, "topk"));
    assert_true(topk >= 4);
    for (int k = 0; k < topk; k++) {
        char name[64];
        int64_t n;
        snprintf(name, sizeof name, "topk%d.a", k);
        double *a = read_vec(ctx, f, name, &n);
        snprintf(name, sizeof name, "topk%d.b", k);
        double *b = read_vec(ctx, f, name, NULL);
        snprintf(name, sizeof name, "topk%d.result", k);
        double *want = read_vec(ctx, f, name, NULL), got;
        assert_int_equal(mloc_stats_topk_overlap(ctx, a, b, n, (int64_t)want[0], &got), MLOC_OK);
        printf("top-%d overlap case %d: %.4f (numpy %.4f)\n", (int)want[0], k, got, want[1]);
        assert_true(got == want[1]);
        free(a);
        free(b);
        free(want);
    }
    free(q);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
    assert_true(ok);
}

static void test_summary_hand(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    double x[4] = {4, NAN, 1, 3}, q[2] = {0.5, 1.5}, out[2], med;
    assert_int_equal(mloc_stats_median(ctx, x, 4, &med), MLOC_OK);
    assert_true(isnan(med));
    assert_int_equal(mloc_stats_quantiles(ctx, x, 4, q, 1, out), MLOC_OK);
    assert_true(isnan(out[0]));
    assert_int_equal(mloc_stats_quantiles(ctx, x + 2, 2, q, 2, out), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "1.5"));
    assert_true(isnan(mloc_stats_mean(x, 0)));
    assert_true(isnan(mloc_stats_var(x, 1)));

    /* NaN sorts last both ways; ties keep index order */
    double y[5] = {2, NAN, 5, 2, 7};
    int64_t idx[5];
    assert_int_equal(mloc_stats_argsort(ctx, y, 5, 1, idx), MLOC_OK);
    int64_t want_desc[5] = {4, 2, 0, 3, 1};
    assert_memory_equal(idx, want_desc, sizeof idx);
    assert_int_equal(mloc_stats_argsort(ctx, y, 5, 0, idx), MLOC_OK);
    int64_t want_asc[5] = {0, 3, 2, 4, 1};
    assert_memory_equal(idx, want_asc, sizeof idx);

    /* top-k: identical scores overlap fully; k out of range is refused */
    double a[6] = {1, 6, 2, 5, 3, 4}, b[6] = {6, 1, 5, 2, 4, 3}, ov;
    assert_int_equal(mloc_stats_topk_overlap(ctx, a, a, 6, 3, &ov), MLOC_OK);
    assert_true(ov == 1.0);
    assert_int_equal(mloc_stats_topk_overlap(ctx, a, b, 6, 3, &ov), MLOC_OK);
    assert_true(ov == 0.0);
    assert_int_equal(mloc_stats_topk_overlap(ctx, a, b, 6, 6, &ov), MLOC_OK);
    assert_true(ov == 1.0);
    assert_int_equal(mloc_stats_topk_overlap(ctx, a, b, 6, 0, &ov), MLOC_ERR_USAGE);
    assert_int_equal(mloc_stats_topk_overlap(ctx, a, b, 6, 7, &ov), MLOC_ERR_USAGE);
    mloc_ctx_destroy(ctx);
}

/* ---- special functions --------------------------------------------------- */

static void test_special_fixture(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = open_fixture(ctx, "stats/special.safetensors");
    int64_t m;
    double *abx = read_vec(ctx, f, "betainc.abx", NULL);
    double *want = read_vec(ctx, f, "betainc.value", &m);
    double *got = malloc((size_t)m * sizeof *got);
    for (int64_t i = 0; i < m; i++)
        got[i] = mloc_stats_betainc(abx[3 * i], abx[3 * i + 1], abx[3 * i + 2]);
    int ok = test_close_f64("betainc", got, want, m, ATOL_P, RTOL_EXACT);
    free(abx);
    free(want);
    free(got);

    double *dft = read_vec(ctx, f, "stdtr.dft", NULL);
    want = read_vec(ctx, f, "stdtr.value", &m);
    got = malloc((size_t)m * sizeof *got);
    for (int64_t i = 0; i < m; i++) got[i] = mloc_stats_t_cdf(dft[2 * i + 1], dft[2 * i]);
    ok &= test_close_f64("stdtr", got, want, m, ATOL_P, RTOL_EXACT);
    for (int64_t i = 0; i < m; i++) /* sf(t) = cdf(-t) */
        assert_true(mloc_stats_t_sf(dft[2 * i + 1], dft[2 * i]) ==
                    mloc_stats_t_cdf(-dft[2 * i + 1], dft[2 * i]));
    free(dft);
    free(want);
    free(got);

    double *x = read_vec(ctx, f, "ndtr.x", NULL);
    want = read_vec(ctx, f, "ndtr.value", &m);
    got = malloc((size_t)m * sizeof *got);
    for (int64_t i = 0; i < m; i++) got[i] = mloc_stats_normal_cdf(x[i]);
    ok &= test_close_f64("ndtr", got, want, m, ATOL_P, RTOL_EXACT);
    free(x);
    free(want);
    free(got);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
    assert_true(ok);
}

static void test_special_hand(void **state) {
    (void)state;
    /* I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1-x)^b; symmetry */
    for (double x = 0.05; x < 1; x += 0.1) {
        assert_float_equal(mloc_stats_betainc(1, 1, x), x, 1e-15);
        assert_float_equal(mloc_stats_betainc(3.5, 1, x), pow(x, 3.5), 1e-15);
        assert_float_equal(mloc_stats_betainc(1, 2.5, x), 1 - pow(1 - x, 2.5), 1e-15);
        assert_float_equal(mloc_stats_betainc(2.2, 7.1, x) + mloc_stats_betainc(7.1, 2.2, 1 - x),
                           1.0, 1e-14);
    }
    assert_true(mloc_stats_betainc(2, 3, 0) == 0 && mloc_stats_betainc(2, 3, 1) == 1);
    assert_true(isnan(mloc_stats_betainc(-1, 3, 0.5)) && isnan(mloc_stats_betainc(2, 3, 1.5)));
    /* Cauchy (dof 1): F(t) = 1/2 + atan(t)/pi */
    for (double t = -50; t <= 50; t += 7.3)
        assert_float_equal(mloc_stats_t_cdf(t, 1), 0.5 + atan(t) / M_PI,
                           1e-15 + 1e-13 * (0.5 + atan(t) / M_PI));
    /* far tail stays relative: Cauchy F(-1e6) ~ 1/(pi 1e6) */
    double tail = mloc_stats_t_cdf(-1e6, 1);
    assert_true(fabs(tail / (1 / (M_PI * 1e6)) - 1) < 1e-9);
    assert_true(mloc_stats_t_cdf(0, 3) == 0.5);
    assert_true(mloc_stats_t_cdf(-INFINITY, 3) == 0 && mloc_stats_t_cdf(INFINITY, 3) == 1);
    assert_true(isnan(mloc_stats_t_cdf(1, 0)) && isnan(mloc_stats_t_cdf(NAN, 3)));
    assert_float_equal(mloc_stats_t_cdf(1.5, INFINITY), mloc_stats_normal_cdf(1.5), 0);
    assert_float_equal(mloc_stats_normal_cdf(1.959963984540054), 0.975, 1e-15);
    assert_float_equal(mloc_stats_normal_sf(1.959963984540054), 0.025, 1e-16);
    /* far normal tail keeps relative accuracy: Mills ratio series at x = 30,
     * phi(x)/x (1 - 1/x^2 + 3/x^4 - 15/x^6), truncation error ~105/x^8 */
    double z = 30, mills = exp(-z * z / 2) / (z * sqrt(2 * M_PI)) *
                           (1 - 1 / (z * z) + 3 / pow(z, 4) - 15 / pow(z, 6));
    assert_true(fabs(mloc_stats_normal_sf(z) / mills - 1) < 1e-9);
    assert_true(mloc_stats_normal_cdf(-z) == mloc_stats_normal_sf(z));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kendall_fixture), cmocka_unit_test(test_kendall_hand),
        cmocka_unit_test(test_kendall_large),   cmocka_unit_test(test_ttest_fixture),
        cmocka_unit_test(test_ttest_hand),      cmocka_unit_test(test_summary_fixture),
        cmocka_unit_test(test_summary_hand),    cmocka_unit_test(test_special_fixture),
        cmocka_unit_test(test_special_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
