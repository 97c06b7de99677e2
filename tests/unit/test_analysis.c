/* Evaluation of encoders (include/memloc/analysis.h): weighted kNN on
 * hand-made features with known answers and against its reference, the
 * linear probe on separable features and its bitwise reproducibility,
 * feature extraction against a direct forward, and datasets fitted to an
 * encoder. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/analysis.h"
#include "memloc/rng.h"
#include "test_util.h"

/* ---- kNN ------------------------------------------------------------------- */

/* q = (1, 0) against four points: sims 1 (class 0), 0.8, 0.8 (class 1), -1
 * (class 0). k=1: class 0. k=3, T=0.5: e^2 = 7.39 < 2 e^1.6 = 9.91, class 1.
 * k=3, T=0.1: e^10 = 22026 > 2 e^8 = 5962, class 0. k=4 adds e^-2 to class 0
 * at T=0.5: 7.52 < 9.91, still class 1. */
static void test_knn_weighted_vote(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    const float train[] = {1, 0, 0.8f, 0.6f, 0.8f, -0.6f, -1, 0};
    const int32_t y[] = {0, 1, 1, 0};
    /* the test point is scaled: only its direction counts */
    const float test[] = {3, 0};
    const struct { int k; double t; int32_t want; } cases[] = {
        {1, 0.5, 0}, {3, 0.5, 1}, {3, 0.1, 0}, {4, 0.5, 1}, {200, 0.5, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int32_t p = -1, r = -1;
        assert_int_equal(mloc_knn_predict(ctx, &p, train, y, 4, test, 1, 2, 2, cases[c].k, cases[c].t), MLOC_OK);
        assert_int_equal(mloc_knn_predict_ref(ctx, &r, train, y, 4, test, 1, 2, 2, cases[c].k, cases[c].t),
                         MLOC_OK);
        printf("k %d T %g: fast %d ref %d want %d\n", cases[c].k, cases[c].t, p, r, cases[c].want);
        assert_int_equal(p, cases[c].want);
        assert_int_equal(r, cases[c].want);
    }
    mloc_ctx_destroy(ctx);
}

/* Three well separated clusters: every test point is classified right. */
static void test_knn_clusters(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    enum { D = 8, NTR = 90, NTE = 30, K = 3 };
    float tr[NTR * D], te[NTE * D];
    int32_t ytr[NTR], yte[NTE], pred[NTE];
    mloc_rng r;
    mloc_rng_init_tag(&r, 5, "test-clusters", 0, 0, 0);
    for (int i = 0; i < NTR + NTE; i++) {
        int c = i % K;
        float *x = i < NTR ? tr + i * D : te + (i - NTR) * D;
        for (int d = 0; d < D; d++) x[d] = (float)(0.15 * mloc_rng_normal(&r)) + (d == c ? 1.0f : 0.0f);
        if (i < NTR) ytr[i] = c;
        else yte[i - NTR] = c;
    }
    assert_int_equal(mloc_knn_predict(ctx, pred, tr, ytr, NTR, te, NTE, D, K, 10, 0.5), MLOC_OK);
    for (int i = 0; i < NTE; i++) assert_int_equal(pred[i], yte[i]);
    mloc_ctx_destroy(ctx);
}

/* Ties: equal similarities go to the lower training index, equal scores to
 * the lower class; k beyond the training set is clamped to it. */
static void test_knn_ties(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    const float q[] = {1, 0};
    /* rows 1 and 2 are identical (sim 1) with labels 2 and 1: k=1 takes row 1 */
    const float tr[] = {0, 1, 1, 0, 1, 0};
    int32_t y[] = {0, 2, 1};
    int32_t p;
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 3, q, 1, 2, 3, 1, 0.5), MLOC_OK);
    assert_int_equal(p, 2);
    y[1] = 1;
    y[2] = 2;
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 3, q, 1, 2, 3, 1, 0.5), MLOC_OK);
    assert_int_equal(p, 1);
    /* k=2: one vote each for classes 1 and 2 with equal weights: class 1 */
    y[1] = 2;
    y[2] = 1;
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 3, q, 1, 2, 3, 2, 0.5), MLOC_OK);
    assert_int_equal(p, 1);
    assert_int_equal(mloc_knn_predict_ref(ctx, &p, tr, y, 3, q, 1, 2, 3, 2, 0.5), MLOC_OK);
    assert_int_equal(p, 1);
    /* k = 200 > 3 rows: the same as k = 3 (class 0 has weight e^((0-1)/T),
     * classes 1 and 2 e^0 each; the tie goes to class 1) */
    int32_t p3, p200;
    assert_int_equal(mloc_knn_predict(ctx, &p3, tr, y, 3, q, 1, 2, 3, 3, 0.5), MLOC_OK);
    assert_int_equal(mloc_knn_predict(ctx, &p200, tr, y, 3, q, 1, 2, 3, 200, 0.5), MLOC_OK);
    assert_int_equal(p3, 1);
    assert_int_equal(p200, p3);
    /* a zero feature vector has similarity 0 to everything (no NaN) */
    const float zero[] = {0, 0};
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 3, zero, 1, 2, 3, 1, 0.5), MLOC_OK);
    assert_int_equal(p, 0); /* all sims 0: row 0 wins the tie */
    mloc_ctx_destroy(ctx);
}

/* The blocked sgemm + heap path against the sorted double-precision
 * reference, on more rows than one block holds in both directions. */
static void test_knn_matches_reference(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    enum { D = 12, NTR = 5000, NTE = 300, K = 5 };
    float *tr = malloc(sizeof(float) * NTR * D), *te = malloc(sizeof(float) * NTE * D);
    int32_t *y = malloc(sizeof(int32_t) * NTR), *p = malloc(sizeof(int32_t) * NTE),
            *r = malloc(sizeof(int32_t) * NTE);
    test_fill_uniform_f32(tr, NTR * D, -1, 1, 11);
    test_fill_uniform_f32(te, NTE * D, -1, 1, 12);
    /* labels follow the sign of the first two coordinates, so votes matter */
    for (int i = 0; i < NTR; i++) y[i] = (tr[i * D] > 0) + 2 * (tr[i * D + 1] > 0) + (i % 7 == 0);
    for (int k = 1; k <= 200; k += 199) {
        assert_int_equal(mloc_knn_predict(ctx, p, tr, y, NTR, te, NTE, D, K, k, 0.5), MLOC_OK);
        assert_int_equal(mloc_knn_predict_ref(ctx, r, tr, y, NTR, te, NTE, D, K, k, 0.5), MLOC_OK);
        int same = 0;
        for (int i = 0; i < NTE; i++) same += p[i] == r[i];
        printf("k %d: %d of %d predictions equal the reference\n", k, same, NTE);
        assert_int_equal(same, NTE);
    }
    /* k = 40,000: the heaps of a block would pass 64 MB, so blocks of 64
     * test rows (two of them here); every training point votes */
    {
        enum { NB = 40000, NQ = 70, DB = 4 };
        float *btr = malloc(sizeof(float) * NB * DB);
        int32_t *by = malloc(sizeof(int32_t) * NB), bp[NQ], br[NQ];
        test_fill_uniform_f32(btr, NB * DB, -1, 1, 13);
        for (int i = 0; i < NB; i++) by[i] = btr[i * DB] > 0.2f;
        assert_int_equal(mloc_knn_predict(ctx, bp, btr, by, NB, te, NQ, DB, 2, NB, 0.05), MLOC_OK);
        assert_int_equal(mloc_knn_predict_ref(ctx, br, btr, by, NB, te, NQ, DB, 2, NB, 0.05), MLOC_OK);
        assert_memory_equal(bp, br, sizeof bp);
        int ones = 0;
        for (int i = 0; i < NQ; i++) ones += bp[i];
        assert_true(ones > 0 && ones < NQ); /* the vote depends on the point */
        free(btr);
        free(by);
    }
    /* one thread gives the same answers */
    mloc_ctx_set_threads(ctx, 1);
    assert_int_equal(mloc_knn_predict(ctx, r, tr, y, NTR, te, NTE, D, K, 200, 0.5), MLOC_OK);
    assert_memory_equal(p, r, sizeof(int32_t) * NTE);
    free(tr);
    free(te);
    free(y);
    free(p);
    free(r);
    mloc_ctx_destroy(ctx);
}

static void test_knn_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    float tr[] = {1, 0, 0, 1};
    int32_t y[] = {0, 3}, p;
    float q[] = {1, 1};
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 2, q, 1, 2, 3, 1, 0.5), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "training row 1: label 3, expected 0..2"));
    y[1] = 1;
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 2, q, 1, 2, 3, 1, 0.0), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "temperature"));
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 2, q, 1, 2, 3, 0, 0.5), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "k 0"));
    q[1] = NAN;
    assert_int_equal(mloc_knn_predict(ctx, &p, tr, y, 2, q, 1, 2, 3, 1, 0.5), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "test row 0: feature 1"));
    mloc_ctx_destroy(ctx);
}

/* ---- linear probe ------------------------------------------------------------ */

/* K Gaussian clusters at 6 e_k + shifted background, unit noise: linearly
 * separable with overwhelming probability (pairwise margin 4.2 sigma). */
static void make_separable(float *x, int32_t *y, int n, int D, int K, uint64_t seed) {
    mloc_rng r;
    mloc_rng_init_tag(&r, seed, "test-probe", 0, 0, 0);
    for (int i = 0; i < n; i++) {
        y[i] = i % K;
        for (int d = 0; d < D; d++)
            x[(int64_t)i * D + d] = (float)(mloc_rng_normal(&r) + 2.0 + (d == y[i] ? 6.0 : 0.0));
    }
}

static void test_probe_separable(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    enum { D = 16, K = 4, NTR = 400, NTE = 200 };
    float *tr = malloc(sizeof(float) * NTR * D), *te = malloc(sizeof(float) * NTE * D);
    int32_t ytr[NTR], yte[NTE];
    for (int v = 0; v < 4; v++) {
        make_separable(tr, ytr, NTR, D, K, 1);
        make_separable(te, yte, NTE, D, K, 2);
        mloc_probe_config cfg = mloc_probe_config_default();
        cfg.batch = 64;
        cfg.epochs = 20;
        cfg.lr = 1e-2; /* 140 steps; the default 1e-3 is for ~6,000 (CIFAR, 30 epochs) */
        if (v == 1) cfg.prep = MLOC_PROBE_L2;
        if (v == 2) cfg.prep = MLOC_PROBE_RAW;
        if (v == 3) {
            cfg.optim = MLOC_OPTIM_SGD;
            cfg.lr = 0.1;
        }
        mloc_probe_result res = {0};
        mloc_status st = mloc_probe_fit(ctx, &res, tr, ytr, NTR, te, yte, NTE, D, K, &cfg);
        if (st) fail_msg("probe: %s", mloc_ctx_error(ctx));
        printf("%s %s: train %.4f test %.4f loss %.4g steps %lld\n", mloc_optim_kind_name(cfg.optim),
               mloc_probe_prep_name(cfg.prep), res.train_top1, res.test_top1, res.final_loss,
               (long long)res.steps);
        assert_int_equal(res.steps, 20 * 7);
        assert_true(res.train_top1 == 1.0);
        assert_true(res.test_top1 >= 0.99);
        /* from log 4 = 1.39; unit rows of 16 features make small logits */
        assert_true(res.final_loss < (cfg.prep == MLOC_PROBE_L2 ? 1.1 : 0.5));
    }
    free(tr);
    free(te);
    mloc_ctx_destroy(ctx);
}

static void probe_once(mloc_ctx *ctx, uint64_t seed, float *w, float *b, double *loss) {
    enum { D = 40, K = 3, NTR = 300, NTE = 50 };
    float *tr = malloc(sizeof(float) * NTR * D), *te = malloc(sizeof(float) * NTE * D);
    int32_t ytr[NTR], yte[NTE];
    make_separable(tr, ytr, NTR, D, K, 3);
    make_separable(te, yte, NTE, D, K, 4);
    /* noisy labels so the optimum is not trivially reached */
    for (int i = 0; i < NTR; i += 9) ytr[i] = (ytr[i] + 1) % K;
    mloc_probe_config cfg = mloc_probe_config_default();
    cfg.batch = 32;
    cfg.epochs = 3;
    cfg.seed = seed;
    mloc_probe_result res = {.weight = w, .bias = b};
    assert_int_equal(mloc_probe_fit(ctx, &res, tr, ytr, NTR, te, yte, NTE, D, K, &cfg), MLOC_OK);
    *loss = res.final_loss;
    free(tr);
    free(te);
}

/* Bitwise the same for a seed, whatever the thread count; another seed
 * (another batch order) gives other weights. */
static void test_probe_reproducible(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    float w[4][3 * 40], b[4][3];
    double loss[4];
    probe_once(ctx, 7, w[0], b[0], &loss[0]);
    probe_once(ctx, 7, w[1], b[1], &loss[1]);
    mloc_ctx_set_threads(ctx, 1);
    probe_once(ctx, 7, w[2], b[2], &loss[2]);
    probe_once(ctx, 8, w[3], b[3], &loss[3]);
    for (int i = 1; i < 3; i++) {
        assert_memory_equal(w[0], w[i], sizeof w[0]);
        assert_memory_equal(b[0], b[i], sizeof b[0]);
        assert_memory_equal(&loss[0], &loss[i], sizeof(double));
    }
    assert_true(memcmp(w[0], w[3], sizeof w[0]) != 0);
    mloc_ctx_destroy(ctx);
}

static void test_probe_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    float x[4] = {1, 2, 3, 4};
    int32_t y[2] = {0, 5};
    mloc_probe_result res = {0};
    mloc_probe_config cfg = mloc_probe_config_default();
    assert_int_equal(mloc_probe_fit(ctx, &res, x, y, 2, NULL, NULL, 0, 2, 2, &cfg), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "training row 1: label 5, expected 0..1"));
    y[1] = 1;
    cfg.epochs = 0;
    assert_int_equal(mloc_probe_fit(ctx, &res, x, y, 2, NULL, NULL, 0, 2, 2, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "epochs 0"));
    cfg = mloc_probe_config_default();
    cfg.optim = MLOC_OPTIM_LARS;
    assert_int_equal(mloc_probe_fit(ctx, &res, x, y, 2, NULL, NULL, 0, 2, 2, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "expected adam or sgd"));
    cfg = mloc_probe_config_default();
    cfg.lr = 1e30; /* raw features: the loss overflows */
    cfg.prep = MLOC_PROBE_RAW;
    cfg.optim = MLOC_OPTIM_SGD;
    float big[4] = {1e30f, 1e30f, -1e30f, 1e30f};
    assert_int_equal(mloc_probe_fit(ctx, &res, big, y, 2, NULL, NULL, 0, 2, 2, &cfg), MLOC_ERR_DIVERGED);
    assert_int_equal(mloc_probe_prep_parse("l2"), MLOC_PROBE_L2);
    assert_int_equal(mloc_probe_prep_parse("zscore"), -1);
    mloc_ctx_destroy(ctx);
}

/* ---- features from a model -------------------------------------------------- */

static mloc_model *tiny_model(mloc_ctx *ctx, mloc_backend be) {
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.125;
    cfg.head = MLOC_HEAD_NONE;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, m, be), MLOC_OK);
    return m;
}

/* Extraction (batches of 8, a partial last batch, a forward only up to the
 * value) equals reading the value after one full forward of every image. */
static void test_features_match_forward(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, "synthetic:40:32x32x3:4", NULL), MLOC_OK);
    enum { N = 37 };
    int64_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = (i * 13 + 5) % 40; /* distinct, shuffled */
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_eval_pipeline(ctx, &pipe, MLOC_AUG_NORM_CIFAR10), MLOC_OK);
    float *x = malloc(sizeof(float) * N * 3 * 32 * 32);
    const mloc_aug_key key = {0, "direct", MLOC_AUG_NO_EPOCH, 0};
    assert_int_equal(mloc_aug_batch(ctx, x, NULL, &d, idx, N, 1, &pipe, &key), MLOC_OK);
    const mloc_backend bes[2] = {MLOC_BACKEND_REF, MLOC_BACKEND_DNNL};
    for (int bi = 0; bi < 2; bi++) {
        mloc_model *m = tiny_model(ctx, bes[bi]);
        for (int t = -1; t < m->n_taps; t++) {
            int v = t < 0 ? m->feature : m->taps[t].value;
            int64_t D = mloc_model_value_numel(m, v);
            float *want = malloc(sizeof(float) * N * D), *got = malloc(sizeof(float) * N * D);
            assert_int_equal(mloc_model_plan(ctx, m, N), MLOC_OK);
            assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
            assert_int_equal(mloc_model_read(ctx, m, v, want), MLOC_OK);
            mloc_status st = mloc_features_extract(ctx, m, &d, idx, N, t < 0 ? -1 : v, 8, &pipe, got);
            if (st) fail_msg("extract: %s", mloc_ctx_error(ctx));
            char what[96];
            snprintf(what, sizeof what, "%s %s", bi ? "dnnl" : "ref", t < 0 ? "feature" : m->taps[t].name);
            /* the same kernels on other batch sizes: equal up to blocking */
            assert_true(test_close_f32(what, got, want, N * D, 1e-5, 1e-4));
            free(want);
            free(got);
        }
        /* the model input: the normalized pixels themselves */
        float *px = malloc(sizeof(float) * N * 3 * 32 * 32);
        assert_int_equal(mloc_features_extract(ctx, m, &d, idx, N, m->input, 8, &pipe, px), MLOC_OK);
        assert_memory_equal(px, x, sizeof(float) * N * 3 * 32 * 32);
        free(px);
        mloc_model_free(m);
    }
    /* indices NULL: the first n images */
    mloc_model *m = tiny_model(ctx, MLOC_BACKEND_AUTO);
    int64_t D = mloc_model_value_numel(m, m->feature);
    float *a = malloc(sizeof(float) * 10 * D), *b = malloc(sizeof(float) * 10 * D);
    int64_t first[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_int_equal(mloc_features_extract(ctx, m, &d, NULL, 10, -1, 4, NULL, a), MLOC_OK);
    assert_int_equal(mloc_features_extract(ctx, m, &d, first, 10, -1, 4, NULL, b), MLOC_OK);
    assert_memory_equal(a, b, sizeof(float) * 10 * D);
    /* errors: index out of range, too many images, a value that does not exist */
    first[3] = 40;
    assert_int_equal(mloc_features_extract(ctx, m, &d, first, 10, -1, 4, NULL, b), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "entry 3: index 40, expected 0..39"));
    assert_int_equal(mloc_features_extract(ctx, m, &d, NULL, 41, -1, 4, NULL, b), MLOC_ERR_USAGE);
    assert_int_equal(mloc_features_extract(ctx, m, &d, NULL, 1, m->n_values, 4, NULL, b), MLOC_ERR_USAGE);
    free(a);
    free(b);
    mloc_model_free(m);
    free(x);
    mloc_dataset_free(&d);
    mloc_ctx_destroy(ctx);
}

/* kNN accuracy and the probe on a model: the same as the feature-level
 * functions on extracted features; the synthetic classes are separable. */
static void test_knn_probe_on_model(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, "synthetic:120:32x32x3:3", NULL), MLOC_OK);
    int64_t tr[90], te[30];
    for (int i = 0; i < 90; i++) tr[i] = i;
    for (int i = 0; i < 30; i++) te[i] = 90 + i;
    mloc_model *m = tiny_model(ctx, MLOC_BACKEND_AUTO);
    mloc_knn_config kc = mloc_knn_config_default();
    kc.batch = 32;
    double acc = -1;
    mloc_status st = mloc_knn_accuracy(ctx, m, &d, tr, 90, &d, te, 30, &kc, &acc);
    if (st) fail_msg("knn: %s", mloc_ctx_error(ctx));
    int64_t D = mloc_model_value_numel(m, m->feature);
    float *ftr = malloc(sizeof(float) * 90 * D), *fte = malloc(sizeof(float) * 30 * D);
    int32_t ytr[90], yte[30], pred[30];
    assert_int_equal(mloc_features_extract(ctx, m, &d, tr, 90, -1, 32, NULL, ftr), MLOC_OK);
    assert_int_equal(mloc_features_extract(ctx, m, &d, te, 30, -1, 32, NULL, fte), MLOC_OK);
    assert_int_equal(mloc_features_labels(ctx, ytr, &d, tr, 90), MLOC_OK);
    assert_int_equal(mloc_features_labels(ctx, yte, &d, te, 30), MLOC_OK);
    assert_int_equal(mloc_knn_predict(ctx, pred, ftr, ytr, 90, fte, 30, D, 3, 200, 0.5), MLOC_OK);
    int right = 0;
    for (int i = 0; i < 30; i++) right += pred[i] == yte[i];
    printf("knn on a random tiny encoder: %.4f (%d/30)\n", acc, right);
    assert_true(acc == right / 30.0);
    assert_true(acc > 0.9); /* the class patterns survive a random encoder */

    mloc_probe_config pc = mloc_probe_config_default();
    pc.batch = 32;
    pc.epochs = 10;
    mloc_probe_result res = {0};
    st = mloc_probe_run(ctx, m, &res, &d, tr, 90, &d, te, 30, &pc);
    if (st) fail_msg("probe: %s", mloc_ctx_error(ctx));
    printf("probe: train %.4f test %.4f\n", res.train_top1, res.test_top1);
    mloc_probe_result res2 = {0};
    assert_int_equal(mloc_probe_fit(ctx, &res2, ftr, ytr, 90, fte, yte, 30, D, 3, &pc), MLOC_OK);
    assert_memory_equal(&res.final_loss, &res2.final_loss, sizeof(double));
    assert_true(res.test_top1 == res2.test_top1 && res.test_top1 > 0.9);

    /* an unlabelled image is an error naming it */
    d.labels[95] = -1;
    assert_int_equal(mloc_knn_accuracy(ctx, m, &d, tr, 90, &d, te, 30, &kc, &acc), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "image 95 has no label"));
    free(ftr);
    free(fte);
    mloc_model_free(m);
    mloc_dataset_free(&d);
    mloc_ctx_destroy(ctx);
}

/* Datasets fitted to a 3 x 32 x 32 encoder: 28x28 gray is padded and
 * replicated automatically; odd differences, larger images and fit none
 * are errors naming both sizes; resize works on request. */
static void test_eval_dataset_open(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny_model(ctx, MLOC_BACKEND_REF);
    mloc_eval_data_options o = mloc_eval_data_options_default();
    mloc_dataset d;
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:28x28x1:2", m, &o), MLOC_OK);
    assert_int_equal(d.h, 32);
    assert_int_equal(d.w, 32);
    assert_int_equal(d.c, 3);
    assert_non_null(d.prep);
    printf("prep: %s\n", d.prep);
    assert_non_null(strstr(d.prep, "pad 28x28 -> 32x32"));
    assert_non_null(strstr(d.prep, "gray -> RGB"));
    /* padding keeps the pixels: row 2 + y, column 2 + x, channel 0 of image 3 */
    mloc_dataset raw;
    assert_int_equal(mloc_dataset_open(ctx, &raw, "synthetic:10:28x28x1:2", NULL), MLOC_OK);
    assert_int_equal(d.pixels[((3 * 32 + 2 + 5) * 32 + 2 + 7) * 3 + 1], raw.pixels[(3 * 28 + 5) * 28 + 7]);
    assert_int_equal(d.pixels[(3 * 32 * 32 + 0) * 3], 0);
    mloc_dataset_free(&raw);
    mloc_dataset_free(&d);

    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:32x32x3:2", m, &o), MLOC_OK);
    assert_null(d.prep);
    mloc_dataset_free(&d);

    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:29x29x3:2", m, &o), MLOC_ERR_USAGE);
    printf("error: %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "29x29"));
    assert_non_null(strstr(mloc_ctx_error(ctx), "32x32"));
    assert_int_equal(d.n, 0);
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:40x40x3:2", m, &o), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "40x40, larger than the encoder's 32x32"));
    o.fit = MLOC_FIT_RESIZE;
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:40x40x3:2", m, &o), MLOC_OK);
    assert_int_equal(d.h, 32);
    assert_non_null(strstr(d.prep, "resize 40x40 -> 32x32"));
    mloc_dataset_free(&d);
    o.fit = MLOC_FIT_NONE;
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:28x28x3:2", m, &o), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "images are 28x28, the encoder takes 32x32"));
    o = mloc_eval_data_options_default();
    o.channels = 1;
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:32x32x3:2", m, &o), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "1 channel(s), the encoder takes 3"));
    o.channels = MLOC_EVAL_AUTO;
    o.indices = "2:5";
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:10:28x28x1:2", m, &o), MLOC_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.labels[0], 0); /* image 2: label 2 mod 2 */
    /* an unfitted dataset is refused by the extraction, naming both shapes */
    mloc_dataset small;
    assert_int_equal(mloc_dataset_open(ctx, &small, "synthetic:4:28x28x3:2", NULL), MLOC_OK);
    float f[4 * 128];
    assert_int_equal(mloc_features_extract(ctx, m, &small, NULL, 4, -1, 2, NULL, f), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "images are 3x28x28"));
    assert_non_null(strstr(mloc_ctx_error(ctx), "encoder takes 3x32x32"));
    mloc_dataset_free(&small);
    mloc_dataset_free(&d);
    mloc_model_free(m);

    /* a gray encoder refuses RGB unless asked to convert */
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = 0.125;
    cfg.in_channels = 1;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    o = mloc_eval_data_options_default();
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:4:32x32x3:2", m, &o), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "3 channels, the encoder takes 1"));
    o.channels = 1;
    assert_int_equal(mloc_eval_dataset_open(ctx, &d, "synthetic:4:32x32x3:2", m, &o), MLOC_OK);
    assert_int_equal(d.c, 1);
    mloc_dataset_free(&d);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_knn_weighted_vote),
        cmocka_unit_test(test_knn_clusters),
        cmocka_unit_test(test_knn_ties),
        cmocka_unit_test(test_knn_matches_reference),
        cmocka_unit_test(test_knn_errors),
        cmocka_unit_test(test_probe_separable),
        cmocka_unit_test(test_probe_reproducible),
        cmocka_unit_test(test_probe_errors),
        cmocka_unit_test(test_features_match_forward),
        cmocka_unit_test(test_knn_probe_on_model),
        cmocka_unit_test(test_eval_dataset_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
