/* Every memorization metric and variant against the Python reference written
 * from SPEC.md (tools/ref_metrics.py; tests/fixtures/metrics/): a width-0.125
 * ResNet9 f and a differently seeded g on 16x16 images, 10 points, fixed
 * torchvision views fed through a view-source callback. SSLMem per tap for
 * views clean and pair, the three normalisations and the standard table,
 * UnitMem with mean and median rest and the per-tap summaries, ClassMem
 * (clean and augmented views, mean and median), tap consistency, the
 * Top/Least t-tests (Student and Welch) and the mu_max alignment. Run on both
 * backends (reference kernels and oneDNN).
 *
 * Budgets: tap outputs are float32 in both implementations (torch's eval
 * forward vs memloc's), everything after them float64. Distances of unit
 * vectors agree to ~1e-6; normalised scores divide by a range of ~0.05 and
 * get 1e-4; UnitMem ratios and t statistics 1e-4 relative. Discrete results
 * (rankings, argmax, dead units, top-k overlaps, mu_max counts) must match
 * exactly: the generator only keeps fixtures without near-ties. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/metrics.h"
#include "memloc/model.h"
#include "test_util.h"

#define N 10
#define K 3
#define S 16
#define PER (3 * S * S)

typedef struct {
    mloc_ctx *ctx;
    mloc_st_file *fx;
    mloc_model *f, *g;
    float clean[N * PER];
    float views[N * 2 * K * PER];
    mloc_view_source src;
    int T, U;
    int64_t points[N];
} fixture;

/* the fixture's views: clean[i], views[i][v] */
static mloc_status fixture_fill(const mloc_view_source *src, mloc_ctx *ctx, float *out,
                                const int64_t *points, int64_t n, int first_view, int views) {
    (void)ctx;
    const fixture *fx = src->user;
    for (int v = 0; v < views; v++)
        for (int64_t i = 0; i < n; i++) {
            const float *from = first_view == MLOC_VIEW_CLEAN
                                    ? fx->clean + points[i] * PER
                                    : fx->views + (points[i] * 2 * K + first_view + v) * PER;
            memcpy(out + ((int64_t)v * n + i) * PER, from, PER * sizeof(float));
        }
    return MLOC_OK;
}

static double *want_f64(fixture *fx, const char *name, int64_t count) {
    const mloc_st_tensor *t = mloc_st_find(fx->fx, name);
    if (!t) fail_msg("fixture has no tensor '%s'", name);
    if (t->numel != count) fail_msg("%s: %lld values, expected %lld", name, (long long)t->numel, (long long)count);
    double *v = malloc((size_t)count * sizeof(double));
    assert_int_equal(mloc_st_read_f64(fx->ctx, v, fx->fx, name, -1, NULL), MLOC_OK);
    return v;
}

static int64_t *want_i64(fixture *fx, const char *name, int64_t count) {
    const mloc_st_tensor *t = mloc_st_find(fx->fx, name);
    if (!t) fail_msg("fixture has no tensor '%s'", name);
    if (t->numel != count) fail_msg("%s: %lld values, expected %lld", name, (long long)t->numel, (long long)count);
    int64_t *v = malloc((size_t)count * sizeof(int64_t));
    assert_int_equal(mloc_st_read_i64(fx->ctx, v, fx->fx, name, -1, NULL), MLOC_OK);
    return v;
}

static int close_to(fixture *fx, const char *what, const double *got, const char *name, int64_t n,
                    double atol, double rtol) {
    double *want = want_f64(fx, name, n);
    int ok = test_close_f64(what, got, want, n, atol, rtol);
    free(want);
    return ok;
}

static int same_i64(fixture *fx, const char *what, const int64_t *got, const char *name, int64_t n) {
    int64_t *want = want_i64(fx, name, n);
    int ok = 1;
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            printf("%s: entry %lld is %lld, reference %lld FAIL\n", what, (long long)i, (long long)got[i],
                   (long long)want[i]);
            ok = 0;
            break;
        }
    if (ok) printf("%s: %lld entries identical\n", what, (long long)n);
    free(want);
    return ok;
}

static fixture *open_fixture(mloc_backend backend) {
    fixture *fx = calloc(1, sizeof *fx);
    fx->ctx = test_ctx(2);
    assert_int_equal(mloc_st_open(fx->ctx, &fx->fx, test_fixture("metrics/metrics.safetensors")), MLOC_OK);
    assert_int_equal(mloc_model_open(fx->ctx, &fx->f, test_fixture("metrics/f.safetensors"), MLOC_HEAD_NONE), MLOC_OK);
    assert_int_equal(mloc_model_open(fx->ctx, &fx->g, test_fixture("metrics/g.safetensors"), MLOC_HEAD_NONE), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(fx->ctx, fx->f, backend), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(fx->ctx, fx->g, backend), MLOC_OK);
    int64_t cs[4] = {N, 3, S, S}, vs[5] = {N, 2 * K, 3, S, S};
    assert_int_equal(mloc_st_read_f32(fx->ctx, fx->clean, fx->fx, "clean", 4, cs), MLOC_OK);
    assert_int_equal(mloc_st_read_f32(fx->ctx, fx->views, fx->fx, "views", 5, vs), MLOC_OK);
    mloc_view_source_custom(&fx->src, 3, S, S, N, fixture_fill, fx);
    fx->T = fx->f->n_taps;
    fx->U = 0;
    for (int t = 0; t < fx->T; t++) fx->U += fx->f->taps[t].units;
    for (int i = 0; i < N; i++) fx->points[i] = i;
    int64_t *off = want_i64(fx, "offsets", fx->T + 1);
    assert_int_equal(off[fx->T], fx->U);
    free(off);
    return fx;
}

static void close_fixture(fixture *fx) {
    mloc_model_free(fx->f);
    mloc_model_free(fx->g);
    mloc_st_close(fx->fx);
    mloc_ctx_destroy(fx->ctx);
    free(fx);
}

/* ---- SSLMem, normalisations, the table ------------------------------------------ */

static void sslmem_parity(mloc_backend backend) {
    fixture *fx = open_fixture(backend);
    const int T = fx->T;
    int ok = 1;
    const char *modes[2] = {"clean", "pair"};
    for (int m = 0; m < 2; m++) {
        mloc_sslmem_config sc = mloc_sslmem_config_default();
        sc.views = (mloc_views_mode)m;
        sc.k = K;
        sc.batch = 7; /* several chunks, a ragged last one */
        mloc_sslmem_result r;
        assert_int_equal(mloc_sslmem_compute(fx->ctx, &r, fx->f, fx->g, &fx->src, fx->points, N, NULL, 0, &sc),
                         MLOC_OK);
        assert_int_equal(r.n_taps, T);
        assert_string_equal(r.out_tap, "res2");
        char name[64], what[96];
#define CHECK(field, suffix, count, atol, rtol)                                              \
    snprintf(name, sizeof name, "%s_%s", modes[m], suffix);                                   \
    snprintf(what, sizeof what, "%s (%s)", name, backend == MLOC_BACKEND_REF ? "ref" : "dnnl"); \
    ok &= close_to(fx, what, field, name, count, atol, rtol)
        CHECK(r.d_f, "d_f", (int64_t)N * T, 2e-6, 1e-5);
        CHECK(r.d_g, "d_g", (int64_t)N * T, 2e-6, 1e-5);
        CHECK(r.score, "score", (int64_t)N * T, 3e-6, 1e-5);
        CHECK(r.out_score, "out", N, 3e-6, 1e-5);
        const char *norms[3] = {"range", "minmax", "none"};
        int64_t *random_pos = want_i64(fx, "random_pos", 5);
        for (int k = 0; k < 3; k++) {
            mloc_layermem_config lc = mloc_layermem_config_default();
            lc.norm = (mloc_score_norm)k;
            lc.top = 3;
            mloc_layermem_table t;
            assert_int_equal(mloc_layermem_table_make(fx->ctx, &t, &r, &lc, random_pos, 5), MLOC_OK);
            char sfx[64];
            snprintf(sfx, sizeof sfx, "norm_%s", norms[k]);
            CHECK(t.norm_score, sfx, (int64_t)N * T, 1e-4, 1e-4);
            /* table rows (T, 5): random, delta, top, delta_top, least */
            double *rows = malloc((size_t)T * 5 * sizeof(double));
            for (int l = 0; l < T; l++) {
                rows[l * 5 + 0] = t.random[l];
                rows[l * 5 + 1] = t.delta[l];
                rows[l * 5 + 2] = t.top[l];
                rows[l * 5 + 3] = t.delta_top[l];
                rows[l * 5 + 4] = t.least[l];
            }
            snprintf(sfx, sizeof sfx, "table_%s", norms[k]);
            CHECK(rows, sfx, (int64_t)T * 5, 1e-4, 1e-4);
            free(rows);
            snprintf(name, sizeof name, "%s_top_pos", modes[m]);
            ok &= same_i64(fx, name, t.top_pos, name, 3);
            snprintf(name, sizeof name, "%s_least_pos", modes[m]);
            ok &= same_i64(fx, name, t.least_pos, name, 3);
            mloc_layermem_table_free(&t);
        }
#undef CHECK
        free(random_pos);
        mloc_sslmem_result_free(&r);
    }
    close_fixture(fx);
    assert_true(ok);
}

static void test_sslmem_ref(void **state) {
    (void)state;
    sslmem_parity(MLOC_BACKEND_REF);
}
static void test_sslmem_dnnl(void **state) {
    (void)state;
    sslmem_parity(MLOC_BACKEND_DNNL);
}

/* ---- UnitMem ------------------------------------------------------------------------- */

static int check_units(fixture *fx, const mloc_unit_scores *u, const char *prefix, int with_dead) {
    char name[96];
    int ok = 1;
    snprintf(name, sizeof name, "%s_score", prefix);
    ok &= close_to(fx, name, u->score, name, u->units, 1e-6, 1e-4);
    snprintf(name, sizeof name, "%s_mu_max", prefix);
    ok &= close_to(fx, name, u->mu_max, name, u->units, 1e-6, 1e-5);
    snprintf(name, sizeof name, "%s_mu_rest", prefix);
    ok &= close_to(fx, name, u->mu_rest, name, u->units, 1e-6, 1e-5);
    snprintf(name, sizeof name, "%s_argmax", prefix);
    ok &= same_i64(fx, name, u->argmax, name, u->units);
    if (with_dead) {
        int64_t *dead = malloc((size_t)u->units * sizeof(int64_t));
        for (int64_t i = 0; i < u->units; i++) dead[i] = u->dead[i];
        snprintf(name, sizeof name, "%s_dead", prefix);
        ok &= same_i64(fx, name, dead, name, u->units);
        free(dead);
    }
    return ok;
}

static void unitmem_parity(mloc_backend backend) {
    fixture *fx = open_fixture(backend);
    int ok = 1;
    const char *rests[2] = {"mean", "median"};
    for (int r = 0; r < 2; r++) {
        mloc_unit_config uc = mloc_unitmem_config_default();
        uc.k = K;
        uc.rest = (mloc_rest_stat)r;
        uc.batch = 8; /* 2 points (x 3 views) per forward */
        uc.save_mu = 0;
        mloc_unit_scores u;
        assert_int_equal(mloc_unitmem_compute(fx->ctx, &u, fx->f, &fx->src, fx->points, N, NULL, 0, &uc), MLOC_OK);
        assert_int_equal(u.units, fx->U);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "unitmem_%s", rests[r]);
        ok &= check_units(fx, &u, prefix, 1);
        assert_true(u.dead[0]); /* prep unit 0 never fires */
        assert_true(u.score[0] == 0.0);
        /* summaries (T, 9): mean, q0..q4, share > 0.5, share > 0.9, dead */
        double *rows = malloc((size_t)fx->T * 9 * sizeof(double));
        for (int t = 0; t < fx->T; t++) {
            mloc_unit_summary s;
            assert_int_equal(mloc_unit_summarize(fx->ctx, &u, t, &s), MLOC_OK);
            rows[t * 9] = s.mean;
            for (int q = 0; q < 5; q++) rows[t * 9 + 1 + q] = s.q[q];
            rows[t * 9 + 6] = s.share_05;
            rows[t * 9 + 7] = s.share_09;
            rows[t * 9 + 8] = (double)s.dead;
        }
        char name[64];
        snprintf(name, sizeof name, "unitmem_%s_summary", rests[r]);
        ok &= close_to(fx, name, rows, name, (int64_t)fx->T * 9, 1e-6, 1e-4);
        free(rows);
        /* the saved mu matrix of tap 0 (prep) */
        double *mu_all = want_f64(fx, "unitmem_mu", (int64_t)N * fx->U);
        const int U0 = fx->f->taps[0].units;
        double *want = malloc((size_t)N * U0 * sizeof(double));
        for (int i = 0; i < N; i++) memcpy(want + i * U0, mu_all + (int64_t)i * fx->U, (size_t)U0 * sizeof(double));
        assert_int_equal(u.mu_tap, 0);
        ok &= test_close_f64("unitmem mu (prep)", u.mu, want, (int64_t)N * U0, 1e-6, 1e-5);
        free(want);
        free(mu_all);
        mloc_unit_scores_free(&u);
    }
    close_fixture(fx);
    assert_true(ok);
}

static void test_unitmem_ref(void **state) {
    (void)state;
    unitmem_parity(MLOC_BACKEND_REF);
}
static void test_unitmem_dnnl(void **state) {
    (void)state;
    unitmem_parity(MLOC_BACKEND_DNNL);
}

/* ---- ClassMem ---------------------------------------------------------------------------- */

static void test_classmem(void **state) {
    (void)state;
    fixture *fx = open_fixture(MLOC_BACKEND_DNNL);
    int64_t labels64[N];
    int32_t labels[N];
    int64_t *l = want_i64(fx, "labels", N);
    memcpy(labels64, l, sizeof labels64);
    free(l);
    for (int i = 0; i < N; i++) labels[i] = (int32_t)labels64[i];
    int64_t *sel, n_sel;
    assert_int_equal(mloc_classmem_select(fx->ctx, labels, N, 4, 2, 0, 0, &sel, &n_sel), MLOC_OK);
    assert_int_equal(n_sel, 8);
    int ok = same_i64(fx, "classmem points (first 2 per class)", sel, "classmem_points", n_sel);
    int32_t sel_labels[N];
    for (int64_t i = 0; i < n_sel; i++) sel_labels[i] = labels[sel[i]];
    const char *names[3] = {"classmem_mean", "classmem_median", "classmem_aug"};
    for (int v = 0; v < 3; v++) {
        mloc_unit_config cc = mloc_classmem_config_default();
        cc.rest = v == 1 ? MLOC_REST_MEDIAN : MLOC_REST_MEAN;
        cc.batch = 4;
        if (v == 2) {
            cc.augment = 1;
            cc.k = K;
        }
        mloc_unit_scores u;
        assert_int_equal(mloc_classmem_compute(fx->ctx, &u, fx->f, &fx->src, sel, sel_labels, n_sel, 4, NULL, 0, &cc),
                         MLOC_OK);
        assert_int_equal(u.n_classes, 4);
        assert_int_equal(u.class_count[0], 2);
        ok &= check_units(fx, &u, names[v], 0);
        mloc_unit_scores_free(&u);
    }
    free(sel);
    close_fixture(fx);
    assert_true(ok);
}

/* ---- analyses ----------------------------------------------------------------------------- */

static void test_analyses(void **state) {
    (void)state;
    fixture *fx = open_fixture(MLOC_BACKEND_DNNL);
    const int T = fx->T;
    int ok = 1;
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    sc.k = K;
    mloc_sslmem_result r;
    assert_int_equal(mloc_sslmem_compute(fx->ctx, &r, fx->f, fx->g, &fx->src, fx->points, N, NULL, 0, &sc), MLOC_OK);

    /* consistency (45 pairs): overlap %, tau-b, p */
    const int P = T * (T - 1) / 2;
    mloc_consistency_pair *pairs = calloc((size_t)P, sizeof *pairs);
    assert_int_equal(mloc_metrics_consistency(fx->ctx, &r, 3, pairs), MLOC_OK);
    double *want = want_f64(fx, "consistency", (int64_t)P * 3);
    double *got = malloc((size_t)P * 3 * sizeof(double));
    for (int p = 0; p < P; p++) {
        got[p * 3] = pairs[p].overlap;
        got[p * 3 + 1] = pairs[p].kendall.tau;
        got[p * 3 + 2] = pairs[p].kendall.p;
        assert_true(pairs[p].kendall.exact);
    }
    assert_int_equal(pairs[0].a, 0);
    assert_int_equal(pairs[0].b, 1);
    assert_int_equal(pairs[T - 1].a, 1); /* (0,1) .. (0,T-1), then (1,2) */
    ok &= test_close_f64("consistency overlap/tau/p", got, want, (int64_t)P * 3, 1e-12, 1e-9);
    free(got);
    free(want);
    free(pairs);

    /* t-tests: UnitMem over Top-3 and Least-3 (by SSLMem at res2) */
    mloc_layermem_config lc = mloc_layermem_config_default();
    lc.top = 3;
    mloc_layermem_table t;
    assert_int_equal(mloc_layermem_table_make(fx->ctx, &t, &r, &lc, NULL, 0), MLOC_OK);
    int64_t top_ids[3], least_ids[3];
    for (int i = 0; i < 3; i++) {
        top_ids[i] = r.points[t.top_pos[i]];
        least_ids[i] = r.points[t.least_pos[i]];
    }
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = K;
    mloc_unit_scores ut, ul;
    assert_int_equal(mloc_unitmem_compute(fx->ctx, &ut, fx->f, &fx->src, top_ids, 3, NULL, 0, &uc), MLOC_OK);
    assert_int_equal(mloc_unitmem_compute(fx->ctx, &ul, fx->f, &fx->src, least_ids, 3, NULL, 0, &uc), MLOC_OK);
    ok &= close_to(fx, "ttest top UnitMem", ut.score, "ttest_top_score", fx->U, 1e-6, 1e-4);
    ok &= close_to(fx, "ttest least UnitMem", ul.score, "ttest_least_score", fx->U, 1e-6, 1e-4);
    mloc_ttest *tests = calloc((size_t)T, sizeof *tests);
    double *rows = malloc((size_t)T * 3 * sizeof(double));
    const char *kinds[2] = {"ttest_welch", "ttest_student"};
    for (int equal_var = 0; equal_var < 2; equal_var++) {
        assert_int_equal(mloc_metrics_ttest(fx->ctx, &ut, &ul, equal_var, tests), MLOC_OK);
        for (int l = 0; l < T; l++) {
            rows[l * 3] = tests[l].t;
            rows[l * 3 + 1] = tests[l].dof;
            rows[l * 3 + 2] = tests[l].p;
        }
        ok &= close_to(fx, kinds[equal_var], rows, kinds[equal_var], (int64_t)T * 3, 1e-6, 1e-4);
    }
    free(rows);
    free(tests);
    mloc_unit_scores_free(&ut);
    mloc_unit_scores_free(&ul);
    mloc_layermem_table_free(&t);

    /* mu_max alignment of the last tap over all points */
    mloc_unit_scores u;
    assert_int_equal(mloc_unitmem_compute(fx->ctx, &u, fx->f, &fx->src, fx->points, N, NULL, 0, &uc), MLOC_OK);
    mloc_mumax_row *mm;
    int64_t n_rows;
    assert_int_equal(mloc_metrics_mumax(fx->ctx, &u, u.n_taps - 1, r.points, r.out_score, N, &mm, &n_rows), MLOC_OK);
    const mloc_st_tensor *wt = mloc_st_find(fx->fx, "mumax");
    assert_non_null(wt);
    assert_int_equal(n_rows, wt->shape[0]);
    double *wm = want_f64(fx, "mumax", n_rows * 4);
    for (int64_t i = 0; i < n_rows; i++) {
        int row_ok = mm[i].point == (int64_t)wm[i * 4] && mm[i].units == (int64_t)wm[i * 4 + 1] &&
                     mm[i].rank == (int64_t)wm[i * 4 + 2] && fabs(mm[i].sslmem - wm[i * 4 + 3]) < 3e-6;
        if (!row_ok)
            printf("mumax row %lld: (%lld, %lld, %lld, %g), reference (%g, %g, %g, %g) FAIL\n", (long long)i,
                   (long long)mm[i].point, (long long)mm[i].units, (long long)mm[i].rank, mm[i].sslmem, wm[i * 4],
                   wm[i * 4 + 1], wm[i * 4 + 2], wm[i * 4 + 3]);
        ok &= row_ok;
    }
    printf("mumax: %lld rows compared\n", (long long)n_rows);
    free(wm);
    free(mm);
    mloc_unit_scores_free(&u);
    mloc_sslmem_result_free(&r);
    close_fixture(fx);
    assert_true(ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sslmem_ref),   cmocka_unit_test(test_sslmem_dnnl),
        cmocka_unit_test(test_unitmem_ref),  cmocka_unit_test(test_unitmem_dnnl),
        cmocka_unit_test(test_classmem),     cmocka_unit_test(test_analyses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
