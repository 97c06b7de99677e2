/* Hand-checkable properties of the memorization metrics (SPEC.md 2-4, 7):
 *   - UnitMem: a unit that fires on exactly one point has UnitMem 1,
 *     identical activations give 0, a dead unit 0 (and is flagged), a small
 *     worked example for the mean and the median rest, negative activations
 *     are rejected;
 *   - SSLMem: f = g gives 0 everywhere, swapping f and g flips the sign,
 *     results are bitwise the same for 1 and 2 threads and for any batch
 *     size, f and g see the same views (the dataset source is a pure
 *     function of (point, view));
 *   - the LayerMem table on a worked example; Kendall's tau-b and the
 *     t-tests of the analyses against values SciPy 1.10 gave; mu_max rows;
 *   - UnitMem with the mean rest works in memory independent of the number
 *     of points, the median's grows;
 *   - bad input: K < 1, f and g of different shapes, unknown taps (listing
 *     the valid ones), points outside the dataset;
 *   - result files read back as written.
 * The encoders are the parity fixtures' (ResNet9 width 0.125, 16x16). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/data.h"
#include "memloc/metrics.h"
#include "memloc/model.h"
#include "metrics/internal.h"
#include "test_util.h"

#define DATA "synthetic:40:16x16x3:4"

/* ---- UnitMem by hand ------------------------------------------------------------ */

static void test_unitmem_hand(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    /* 4 points x 4 units: u0 fires on point 2 only, u1 is the same everywhere,
     * u2 is dead, u3 = (4, 1, 1, 2) */
    const double mu[16] = {0, 3, 0, 4,  //
                           0, 3, 0, 1,  //
                           5, 3, 0, 1,  //
                           0, 3, 0, 2};
    const int64_t ids[4] = {10, 11, 12, 13};
    double score[4], mx[4], rest[4];
    int64_t am[4];
    uint8_t dead[4];
    for (int r = 0; r < 2; r++) {
        assert_int_equal(mloc_unitmem_from_mu(ctx, mu, 4, 4, ids, (mloc_rest_stat)r, score, mx, rest, am, dead),
                         MLOC_OK);
        assert_true(score[0] == 1.0);          /* fires on exactly one point */
        assert_int_equal(am[0], 12);
        assert_true(score[1] == 0.0);          /* identical activations */
        assert_false(dead[1]);
        assert_true(score[2] == 0.0 && dead[2]); /* dead */
        assert_true(mx[3] == 4.0);
        assert_int_equal(am[3], 10);
        if (r == MLOC_REST_MEAN) {
            /* rest = (1 + 1 + 2) / 3, (4 - 4/3) / (4 + 4/3) = 1/2 */
            assert_true(fabs(rest[3] - 4.0 / 3.0) < 1e-15);
            assert_true(fabs(score[3] - 0.5) < 1e-15);
        } else {
            /* rest = median(1, 1, 2) = 1, (4 - 1) / (4 + 1) = 3/5 */
            assert_true(rest[3] == 1.0);
            assert_true(fabs(score[3] - 0.6) < 1e-15);
        }
    }
    /* a tie for the maximum: the first point is x*, the other stays in the rest */
    const double tie[3] = {2, 2, 0};
    assert_int_equal(mloc_unitmem_from_mu(ctx, tie, 3, 1, NULL, MLOC_REST_MEAN, score, mx, rest, am, dead), MLOC_OK);
    assert_int_equal(am[0], 0);
    assert_true(rest[0] == 1.0);
    /* negative activations and too few points */
    const double neg[4] = {1, -0.5, 2, 0};
    assert_int_equal(mloc_unitmem_from_mu(ctx, neg, 2, 2, NULL, MLOC_REST_MEAN, score, mx, rest, am, dead),
                     MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "non-negative"));
    assert_int_equal(mloc_unitmem_from_mu(ctx, mu, 1, 4, NULL, MLOC_REST_MEAN, score, mx, rest, am, dead),
                     MLOC_ERR_USAGE);
    mloc_ctx_destroy(ctx);
}

/* A unit's activation: the spatial mean of its channel; a negative element
 * is reported (image, unit, value) unless abs asks for mean |a|. */
static void test_spatial_mean(void **state) {
    (void)state;
    /* 2 images x 2 units x 4 positions */
    const float x[16] = {1, 2, 3, 6,  0, 0, 0, 4,  //
                         1, 1, 1, 1,  2, -2, 4, 0};
    double act[4];
    int64_t img;
    int unit;
    float val;
    mloc_metrics_spatial_mean(act, x, 2, 2, 4, 0, &img, &unit, &val);
    assert_true(act[0] == 3.0 && act[1] == 1.0 && act[2] == 1.0 && act[3] == 1.0);
    assert_int_equal(img, 1);
    assert_int_equal(unit, 1);
    assert_true(val == -2.0f);
    mloc_metrics_spatial_mean(act, x, 2, 2, 4, 1, &img, &unit, &val);
    assert_true(act[3] == 2.0); /* (2 + 2 + 4 + 0) / 4 */
    assert_int_equal(img, -1);
    mloc_metrics_spatial_mean(act, x, 1, 2, 4, 0, &img, &unit, &val);
    assert_int_equal(img, -1); /* the first image has none */
}

/* ---- the table by hand ------------------------------------------------------------- */

static void test_layermem_table_hand(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    /* 4 points, 2 taps; the second is the encoder output */
    double score[8] = {1, 0, 2, 2, 3, 2, 4, 4};
    double out[4] = {0, 2, 2, 4};
    int64_t points[4] = {100, 101, 102, 103};
    char names[2][64] = {"a", "b"};
    mloc_sslmem_result r = {.n = 4, .n_taps = 2, .tap_names = names, .points = points, .score = score,
                            .out_score = out};
    mloc_layermem_config lc = mloc_layermem_config_default();
    lc.top = 2;
    const int64_t random_pos[2] = {0, 2};
    mloc_layermem_table t;
    assert_int_equal(mloc_layermem_table_make(ctx, &t, &r, &lc, random_pos, 2), MLOC_OK);
    /* range: tap a / 3, tap b / 4; Top = positions 3, 1 (tie 1 vs 2 keeps order); Least = 0, 1 */
    assert_int_equal(t.top_pos[0], 3);
    assert_int_equal(t.top_pos[1], 1);
    assert_int_equal(t.least_pos[0], 0);
    assert_int_equal(t.least_pos[1], 1);
    const double want_random[2] = {2.0 / 3, 0.25}, want_top[2] = {1.0, 0.75}, want_least[2] = {0.5, 0.25};
    for (int l = 0; l < 2; l++) {
        assert_true(fabs(t.random[l] - want_random[l]) < 1e-15);
        assert_true(fabs(t.top[l] - want_top[l]) < 1e-15);
        assert_true(fabs(t.least[l] - want_least[l]) < 1e-15);
    }
    assert_true(fabs(t.delta[0] - 2.0 / 3) < 1e-15);        /* first tap: its LayerMem */
    assert_true(fabs(t.delta[1] - (0.25 - 2.0 / 3)) < 1e-15); /* then the difference */
    assert_true(fabs(t.delta_top[1] - (0.75 - 1.0)) < 1e-15);
    mloc_layermem_table_free(&t);
    /* minmax maps every tap to [0, 1] */
    lc.norm = MLOC_NORM_MINMAX;
    assert_int_equal(mloc_layermem_table_make(ctx, &t, &r, &lc, random_pos, 2), MLOC_OK);
    assert_true(t.norm_score[0] == 0.0 && t.norm_score[6] == 1.0 && t.norm_score[7] == 1.0);
    mloc_layermem_table_free(&t);
    /* constant scores: divided by 1, not NaN */
    double zero[8] = {0};
    r.score = zero;
    r.out_score = zero;
    lc.norm = MLOC_NORM_RANGE;
    assert_int_equal(mloc_layermem_table_make(ctx, &t, &r, &lc, NULL, 0), MLOC_OK);
    for (int l = 0; l < 2; l++) assert_true(t.random[l] == 0.0 && t.top[l] == 0.0 && t.least[l] == 0.0);
    mloc_layermem_table_free(&t);
    mloc_ctx_destroy(ctx);
}

/* ---- analyses on known vectors (values from SciPy 1.10) ----------------------------------- */

static void test_analyses_known(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    /* scipy.stats.kendalltau(x, y) = (0.8666666666666666, 0.016666666666666666) */
    double score[12];
    const double x[6] = {0.1, 0.4, 0.35, 0.8, 0.05, 0.6}, y[6] = {0.2, 0.3, 0.5, 0.9, 0.0, 0.55};
    for (int i = 0; i < 6; i++) {
        score[i * 2] = x[i];
        score[i * 2 + 1] = y[i];
    }
    int64_t points[6] = {0, 1, 2, 3, 4, 5};
    char names[2][64] = {"a", "b"};
    mloc_sslmem_result r = {.n = 6, .n_taps = 2, .tap_names = names, .points = points, .score = score,
                            .out_score = score};
    mloc_consistency_pair p;
    assert_int_equal(mloc_metrics_consistency(ctx, &r, 2, &p), MLOC_OK);
    assert_true(fabs(p.kendall.tau - 0.8666666666666666) < 1e-15);
    assert_true(fabs(p.kendall.p - 0.016666666666666666) < 1e-15);
    /* top 2 by x: {3, 5}; by y: {3, 5} */
    assert_true(p.overlap == 100.0);

    /* ttest_ind([.9,.7,.8,.95], [.2,.4,.1,.3], alternative='greater'):
     * Student t 6.904799706928926 p 0.00022804991245557155, Welch p 0.0002512805257182568 */
    double ts[4] = {0.9, 0.7, 0.8, 0.95}, ls[4] = {0.2, 0.4, 0.1, 0.3};
    int off[2] = {0, 4};
    char tn[1][64] = {"t"};
    mloc_unit_scores top = {.n_taps = 1, .tap_names = tn, .offset = off, .units = 4, .score = ts};
    mloc_unit_scores least = {.n_taps = 1, .tap_names = tn, .offset = off, .units = 4, .score = ls};
    mloc_ttest tt;
    assert_int_equal(mloc_metrics_ttest(ctx, &top, &least, 1, &tt), MLOC_OK);
    assert_true(fabs(tt.t - 6.904799706928926) < 1e-12);
    assert_true(tt.dof == 6.0);
    assert_true(fabs(tt.p - 0.00022804991245557155) < 1e-15);
    assert_int_equal(mloc_metrics_ttest(ctx, &top, &least, 0, &tt), MLOC_OK);
    assert_true(fabs(tt.p - 0.0002512805257182568) < 1e-14);

    /* mu_max: 4 units with x* = 7, 7, 3 and one dead; SSLMem ranks 7 -> 1, 3 -> 2 */
    int64_t am[4] = {7, 7, 3, 9};
    uint8_t dead[4] = {0, 0, 0, 1};
    mloc_unit_scores u = {.n_taps = 1, .tap_names = tn, .offset = off, .units = 4, .argmax = am, .dead = dead};
    const int64_t sp[3] = {3, 7, 8};
    const double ss[3] = {0.5, 0.9, 0.1};
    mloc_mumax_row *rows;
    int64_t n_rows;
    assert_int_equal(mloc_metrics_mumax(ctx, &u, 0, sp, ss, 3, &rows, &n_rows), MLOC_OK);
    assert_int_equal(n_rows, 2);
    assert_int_equal(rows[0].point, 7);
    assert_int_equal(rows[0].units, 2);
    assert_int_equal(rows[0].rank, 1);
    assert_true(rows[0].sslmem == 0.9);
    assert_int_equal(rows[1].point, 3);
    assert_int_equal(rows[1].units, 1);
    assert_int_equal(rows[1].rank, 2);
    free(rows);
    mloc_ctx_destroy(ctx);
}

/* ---- SSLMem on the fixture encoders --------------------------------------------------------- */

typedef struct {
    mloc_ctx *ctx;
    mloc_model *f, *g;
    mloc_dataset ds;
    mloc_view_source src;
    int64_t points[40];
} env;

static void env_open(env *e, int threads) {
    memset(e, 0, sizeof *e);
    e->ctx = test_ctx(threads);
    assert_int_equal(mloc_model_open(e->ctx, &e->f, test_fixture("metrics/f.safetensors"), MLOC_HEAD_NONE), MLOC_OK);
    assert_int_equal(mloc_model_open(e->ctx, &e->g, test_fixture("metrics/g.safetensors"), MLOC_HEAD_NONE), MLOC_OK);
    assert_int_equal(mloc_dataset_open(e->ctx, &e->ds, DATA, NULL), MLOC_OK);
    mloc_aug_config ac = mloc_aug_config_default();
    ac.size = 16;
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_aug_pipeline_make(e->ctx, &pipe, &ac), MLOC_OK);
    assert_int_equal(mloc_view_source_dataset(e->ctx, &e->src, &e->ds, &pipe, 5, MLOC_PURPOSE_SSLMEM), MLOC_OK);
    for (int i = 0; i < 40; i++) e->points[i] = 39 - i; /* any order */
}

static void env_close(env *e) {
    mloc_model_free(e->f);
    mloc_model_free(e->g);
    mloc_dataset_free(&e->ds);
    mloc_ctx_destroy(e->ctx);
}

static void test_sslmem_f_equals_g_and_swap(void **state) {
    (void)state;
    env e;
    env_open(&e, 2);
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    sc.k = 2;
    for (int v = 0; v < 2; v++) {
        sc.views = (mloc_views_mode)v;
        mloc_sslmem_result same, fg, gf;
        assert_int_equal(mloc_sslmem_compute(e.ctx, &same, e.f, e.f, &e.src, e.points, 12, NULL, 0, &sc), MLOC_OK);
        for (int64_t i = 0; i < 12 * same.n_taps; i++) {
            assert_true(same.score[i] == 0.0);
            assert_true(same.d_f[i] > 0); /* the views differ, the score still vanishes */
        }
        for (int64_t i = 0; i < 12; i++) assert_true(same.out_score[i] == 0.0);
        mloc_layermem_table t;
        assert_int_equal(mloc_layermem_table_make(e.ctx, &t, &same, NULL, NULL, 0), MLOC_OK);
        for (int l = 0; l < t.n_taps; l++) assert_true(t.random[l] == 0.0 && t.top[l] == 0.0);
        mloc_layermem_table_free(&t);
        assert_int_equal(mloc_sslmem_compute(e.ctx, &fg, e.f, e.g, &e.src, e.points, 12, NULL, 0, &sc), MLOC_OK);
        assert_int_equal(mloc_sslmem_compute(e.ctx, &gf, e.g, e.f, &e.src, e.points, 12, NULL, 0, &sc), MLOC_OK);
        int nonzero = 0;
        for (int64_t i = 0; i < 12 * fg.n_taps; i++) {
            assert_true(fg.score[i] == -gf.score[i]);
            assert_true(fg.d_f[i] == gf.d_g[i]);
            nonzero += fg.score[i] != 0;
        }
        assert_true(nonzero > 0);
        mloc_sslmem_result_free(&same);
        mloc_sslmem_result_free(&fg);
        mloc_sslmem_result_free(&gf);
    }
    env_close(&e);
}

static mloc_sslmem_result sslmem_run(int threads, int batch, mloc_views_mode views) {
    env e;
    env_open(&e, threads);
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    sc.k = 3;
    sc.views = views;
    sc.batch = batch;
    mloc_sslmem_result r;
    assert_int_equal(mloc_sslmem_compute(e.ctx, &r, e.f, e.g, &e.src, e.points, 23, NULL, 0, &sc), MLOC_OK);
    env_close(&e);
    return r;
}

static mloc_unit_scores unitmem_run(int threads, int batch) {
    env e;
    env_open(&e, threads);
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = 3;
    uc.batch = batch;
    mloc_unit_scores u;
    assert_int_equal(mloc_unitmem_compute(e.ctx, &u, e.f, &e.src, e.points, 23, NULL, 0, &uc), MLOC_OK);
    env_close(&e);
    return u;
}

static void test_threads_and_batches(void **state) {
    (void)state;
    for (int v = 0; v < 2; v++) {
        mloc_sslmem_result a = sslmem_run(1, 256, (mloc_views_mode)v), b = sslmem_run(2, 256, (mloc_views_mode)v),
                           c = sslmem_run(2, 9, (mloc_views_mode)v);
        const size_t bytes = (size_t)a.n * a.n_taps * sizeof(double);
        assert_memory_equal(a.d_f, b.d_f, bytes);
        assert_memory_equal(a.d_g, b.d_g, bytes);
        assert_memory_equal(a.d_f, c.d_f, bytes);
        assert_memory_equal(a.d_g, c.d_g, bytes);
        assert_memory_equal(a.out_score, c.out_score, (size_t)a.n * sizeof(double));
        mloc_sslmem_result_free(&a);
        mloc_sslmem_result_free(&b);
        mloc_sslmem_result_free(&c);
    }
    mloc_unit_scores a = unitmem_run(1, 256), b = unitmem_run(2, 256), c = unitmem_run(2, 7);
    const size_t bytes = (size_t)a.units * sizeof(double);
    assert_memory_equal(a.score, b.score, bytes);
    assert_memory_equal(a.mu_rest, b.mu_rest, bytes);
    assert_memory_equal(a.score, c.score, bytes);
    assert_memory_equal(a.mu_max, c.mu_max, bytes);
    assert_memory_equal(a.mu_rest, c.mu_rest, bytes);
    assert_memory_equal(a.argmax, c.argmax, (size_t)a.units * sizeof(int64_t));
    mloc_unit_scores_free(&a);
    mloc_unit_scores_free(&b);
    mloc_unit_scores_free(&c);
}

/* The dataset source is a pure function of (point, view): f and g, any
 * batch and any order see the same tensors; the clean view is
 * (pixel / 255 - 0.5) / 0.5. */
static void test_same_views(void **state) {
    (void)state;
    env e;
    env_open(&e, 2);
    const int64_t per = 3 * 16 * 16;
    float *a = malloc(2 * 3 * per * sizeof(float)), *b = malloc(per * sizeof(float));
    const int64_t pts[2] = {3, 17};
    assert_int_equal(e.src.fill(&e.src, e.ctx, a, pts, 2, 0, 3), MLOC_OK); /* rows v*2 + i */
    const int64_t one = 17;
    assert_int_equal(e.src.fill(&e.src, e.ctx, b, &one, 1, 2, 1), MLOC_OK);
    assert_memory_equal(a + (2 * 2 + 1) * per, b, per * sizeof(float));
    assert_true(memcmp(a + 1 * per, a + 3 * per, per * sizeof(float)) != 0); /* views differ */
    assert_int_equal(e.src.fill(&e.src, e.ctx, b, &one, 1, MLOC_VIEW_CLEAN, 1), MLOC_OK);
    const uint8_t *px = e.ds.pixels + 17 * per;
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < 256; j++) {
            float want = ((float)px[j * 3 + c] / 255.0f - 0.5f) / 0.5f;
            assert_true(fabsf(b[c * 256 + j] - want) < 1e-6f);
        }
    free(a);
    free(b);
    env_close(&e);
}

/* UnitMem with the mean rest works in memory independent of the number of
 * points; the median keeps the points x units matrix. */
static void test_unitmem_memory(void **state) {
    (void)state;
    env e;
    env_open(&e, 2);
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = 2;
    uc.batch = 8; /* 4 points per forward */
    size_t work[2][2];
    for (int r = 0; r < 2; r++)
        for (int s = 0; s < 2; s++) {
            uc.rest = (mloc_rest_stat)r;
            mloc_unit_scores u;
            assert_int_equal(mloc_unitmem_compute(e.ctx, &u, e.f, &e.src, e.points, s ? 40 : 10, NULL, 0, &uc),
                             MLOC_OK);
            work[r][s] = u.work_bytes;
            mloc_unit_scores_free(&u);
        }
    printf("work bytes: mean %zu / %zu, median %zu / %zu (10 / 40 points)\n", work[0][0], work[0][1], work[1][0],
           work[1][1]);
    assert_true(work[0][0] == work[0][1]);
    assert_true(work[1][1] > work[1][0]);
    env_close(&e);
}

/* ---- bad input -------------------------------------------------------------------------------- */

static void test_bad_input(void **state) {
    (void)state;
    env e;
    env_open(&e, 2);
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    mloc_sslmem_result r;
    sc.k = 0;
    assert_int_equal(mloc_sslmem_compute(e.ctx, &r, e.f, e.g, &e.src, e.points, 4, NULL, 0, &sc), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(e.ctx), "K = 0"));
    sc.k = 2;
    /* g of another width */
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.25;
    cfg.image_h = cfg.image_w = 16;
    cfg.head = MLOC_HEAD_NONE;
    mloc_model *wide;
    assert_int_equal(mloc_model_create(e.ctx, &wide, &cfg), MLOC_OK);
    assert_int_equal(mloc_sslmem_compute(e.ctx, &r, e.f, wide, &e.src, e.points, 4, NULL, 0, &sc), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(e.ctx), "same architecture"));
    mloc_model_free(wide);
    /* a point outside the dataset */
    int64_t bad[2] = {3, 40};
    assert_int_equal(mloc_sslmem_compute(e.ctx, &r, e.f, e.g, &e.src, bad, 2, NULL, 0, &sc), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(e.ctx), "outside the dataset"));
    mloc_unit_scores u;
    mloc_unit_config uc = mloc_unitmem_config_default();
    assert_int_equal(mloc_unitmem_compute(e.ctx, &u, e.f, &e.src, bad, 2, NULL, 0, &uc), MLOC_ERR_USAGE);
    uc.k = 0;
    assert_int_equal(mloc_unitmem_compute(e.ctx, &u, e.f, &e.src, e.points, 4, NULL, 0, &uc), MLOC_ERR_USAGE);
    /* taps */
    int *taps, n;
    assert_int_equal(mloc_metrics_parse_taps(e.ctx, e.f, "res2,prep,res2", &taps, &n), MLOC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(taps[0], 0);
    assert_int_equal(taps[1], e.f->n_taps - 1);
    free(taps);
    assert_int_equal(mloc_metrics_parse_taps(e.ctx, e.f, "prep,layer9", &taps, &n), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(e.ctx), "unknown tap 'layer9' (valid: prep, layer1_head"));
    /* views of another size than the encoder takes */
    mloc_aug_config ac = mloc_aug_config_default();
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_aug_pipeline_make(e.ctx, &pipe, &ac), MLOC_OK); /* 32 x 32 */
    mloc_view_source big;
    assert_int_equal(mloc_view_source_dataset(e.ctx, &big, &e.ds, &pipe, 0, "x"), MLOC_OK);
    assert_int_equal(mloc_sslmem_compute(e.ctx, &r, e.f, e.g, &big, e.points, 4, NULL, 0, &sc), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(e.ctx), "views are 3x32x32"));
    env_close(&e);
}

static void test_choose(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    int64_t a[50], b[50], c[50], n;
    assert_int_equal(mloc_metrics_choose(ctx, 1000, 50, 3, "t", a, &n), MLOC_OK);
    assert_int_equal(n, 50);
    assert_int_equal(mloc_metrics_choose(ctx, 1000, 50, 3, "t", b, &n), MLOC_OK);
    assert_int_equal(mloc_metrics_choose(ctx, 1000, 50, 4, "t", c, &n), MLOC_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    for (int i = 0; i < 50; i++) {
        assert_true(a[i] >= 0 && a[i] < 1000);
        if (i) assert_true(a[i] > a[i - 1]); /* ascending, distinct */
    }
    assert_int_equal(mloc_metrics_choose(ctx, 7, 50, 3, "t", a, &n), MLOC_OK);
    assert_int_equal(n, 7);
    assert_int_equal(a[6], 6);
    mloc_ctx_destroy(ctx);
}

/* ---- files ------------------------------------------------------------------------------------ */

static void test_files_round_trip(void **state) {
    (void)state;
    env e;
    env_open(&e, 2);
    const char *dir = test_tmpdir("metrics_files");
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    sc.k = 2;
    mloc_sslmem_result r, back;
    assert_int_equal(mloc_sslmem_compute(e.ctx, &r, e.f, e.g, &e.src, e.points, 8, NULL, 0, &sc), MLOC_OK);
    mloc_layermem_config lc = mloc_layermem_config_default();
    lc.top = 3;
    mloc_layermem_table t;
    assert_int_equal(mloc_layermem_table_make(e.ctx, &t, &r, &lc, NULL, 0), MLOC_OK);
    mloc_metric_run run = {.command = "test", .aug = &e.src.aug, .aug_preset = "simclr", .purpose = "sslmem"};
    assert_int_equal(mloc_layermem_write(e.ctx, dir, &r, &t, &run), MLOC_OK);
    assert_int_equal(mloc_layermem_read(e.ctx, dir, &back), MLOC_OK);
    assert_int_equal(back.n, 8);
    assert_int_equal(back.n_taps, r.n_taps);
    assert_string_equal(back.tap_names[4], "res1");
    assert_string_equal(back.out_tap, "res2");
    assert_int_equal(back.cfg.k, 2);
    assert_memory_equal(back.score, r.score, (size_t)8 * r.n_taps * sizeof(double));
    assert_memory_equal(back.out_score, r.out_score, 8 * sizeof(double));
    assert_memory_equal(back.points, r.points, 8 * sizeof(int64_t));
    int64_t *top, *least, n_top;
    assert_int_equal(mloc_layermem_read_subsets(e.ctx, dir, &top, &least, &n_top), MLOC_OK);
    assert_int_equal(n_top, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(top[i], r.points[t.top_pos[i]]);
        assert_int_equal(least[i], r.points[t.least_pos[i]]);
    }
    free(top);
    free(least);
    mloc_sslmem_result_free(&back);
    mloc_layermem_table_free(&t);

    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = 2;
    uc.rest = MLOC_REST_MEDIAN;
    uc.save_mu = 1;
    mloc_unit_scores u, ub;
    assert_int_equal(mloc_unitmem_compute(e.ctx, &u, e.f, &e.src, e.points, 8, NULL, 0, &uc), MLOC_OK);
    assert_int_equal(mloc_unit_scores_write(e.ctx, dir, "unitmem", &u, &run), MLOC_OK);
    assert_int_equal(mloc_unit_scores_read(e.ctx, dir, "unitmem", &ub), MLOC_OK);
    assert_int_equal(ub.units, u.units);
    assert_int_equal(ub.n_taps, u.n_taps);
    assert_int_equal(ub.cfg.rest, MLOC_REST_MEDIAN);
    assert_memory_equal(ub.offset, u.offset, ((size_t)u.n_taps + 1) * sizeof(int));
    assert_memory_equal(ub.score, u.score, (size_t)u.units * sizeof(double));
    assert_memory_equal(ub.argmax, u.argmax, (size_t)u.units * sizeof(int64_t));
    assert_memory_equal(ub.dead, u.dead, (size_t)u.units);
    mloc_unit_scores_free(&ub);
    mloc_unit_scores_free(&u);
    /* the sslmem command's files alone are read as one tap */
    const char *dir2 = test_tmpdir("metrics_files_ssl");
    mloc_sslmem_result one;
    int last = e.f->n_taps - 1;
    assert_int_equal(mloc_sslmem_compute(e.ctx, &one, e.f, e.g, &e.src, e.points, 8, &last, 1, &sc), MLOC_OK);
    assert_int_equal(mloc_sslmem_write(e.ctx, dir2, &one, MLOC_NORM_RANGE, &run), MLOC_OK);
    assert_int_equal(mloc_layermem_read(e.ctx, dir2, &back), MLOC_OK);
    assert_int_equal(back.n_taps, 1);
    assert_memory_equal(back.out_score, r.out_score, 8 * sizeof(double));
    mloc_sslmem_result_free(&back);
    mloc_sslmem_result_free(&one);
    mloc_sslmem_result_free(&r);
    assert_int_equal(mloc_layermem_read(e.ctx, "/nonexistent/run", &back), MLOC_ERR_NOINPUT);
    env_close(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unitmem_hand),
        cmocka_unit_test(test_spatial_mean),
        cmocka_unit_test(test_layermem_table_hand),
        cmocka_unit_test(test_analyses_known),
        cmocka_unit_test(test_sslmem_f_equals_g_and_swap),
        cmocka_unit_test(test_threads_and_batches),
        cmocka_unit_test(test_same_views),
        cmocka_unit_test(test_unitmem_memory),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_files_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
