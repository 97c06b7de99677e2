/* Weighted kNN classification on frozen features: the kNN monitor.
 *
 * SPEC.md section 8: "weighted kNN on normalized features (k and T
 * configurable; defaults k=200, T=0.5 as in the SSLMem code)". The rule is
 * InstDisc's (Wu et al. 2018), as the SSLMem code's knn_predict has it:
 *
 *   s_j = <q/|q|, t_j/|t_j|>                  (F.normalize, torch.mm)
 *   N   = the k largest s_j                   (sim_matrix.topk(k))
 *   score_c = sum_{j in N, y_j = c} exp(s_j / T)
 *   prediction = argmax_c score_c             (pred_scores.argsort(descending)[:, 0])
 *
 * Deviations, none of which changes a prediction except at exact ties:
 * ties in s_j are broken by the lower training index and ties in score_c by
 * the lower class (torch leaves both unspecified); the weights are
 * exp((s_j - s_max)/T) in double, the same factor e^(-s_max/T) on every
 * score of a point, so a small T cannot overflow; the training rows are not
 * normalized in place but their similarities scaled by 1/|t_j| after the
 * product; k larger than the training set is clamped to it (torch's topk
 * would fail). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "memloc/analysis.h"

#define Q_BLOCK 256  /* test rows per similarity block (fewer for a huge k) */
#define HEAP_BYTES ((size_t)64 << 20) /* neighbour heaps of one block, at most */
#define T_BLOCK 4096 /* training rows per similarity block: 4 MB of floats */

mloc_knn_config mloc_knn_config_default(void) {
    mloc_knn_config c;
    memset(&c, 0, sizeof c);
    c.k = 200;
    c.t = 0.5;
    c.batch = 256;
    c.value = -1;
    c.pipe = NULL;
    return c;
}

typedef struct {
    double s;  /* cosine similarity */
    int64_t j; /* training row */
} neighbour;

/* a ranks below b: lower similarity, or the same one at a higher index */
static int worse(const neighbour *a, const neighbour *b) {
    return a->s < b->s || (a->s == b->s && a->j > b->j);
}

static int by_rank(const void *pa, const void *pb) {
    const neighbour *a = pa, *b = pb;
    return worse(a, b) ? 1 : worse(b, a) ? -1 : 0;
}

/* ---- a heap of the k best, the worst at the root ---------------------------- */

static void sift_down(neighbour *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && worse(&h[l], &h[w])) w = l;
        if (r < n && worse(&h[r], &h[w])) w = r;
        if (w == i) return;
        neighbour t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void offer(neighbour *h, int *n, int k, double s, int64_t j) {
    neighbour c = {s, j};
    if (*n < k) {
        int i = (*n)++;
        h[i] = c;
        while (i > 0 && worse(&h[i], &h[(i - 1) / 2])) {
            neighbour t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (worse(&h[0], &c)) {
        h[0] = c;
        sift_down(h, *n, 0);
    }
}

/* The vote over the k best, sorted best first (both implementations sum in
 * this order, so they agree bitwise on equal similarities). score is K
 * doubles of scratch. */
static int32_t vote(neighbour *nb, int k, const int32_t *labels, int K, double t, double *score) {
    qsort(nb, (size_t)k, sizeof *nb, by_rank);
    memset(score, 0, (size_t)K * sizeof *score);
    for (int i = 0; i < k; i++) score[labels[nb[i].j]] += exp((nb[i].s - nb[0].s) / t);
    int32_t best = 0;
    for (int c = 1; c < K; c++)
        if (score[c] > score[best]) best = c;
    return best;
}

static mloc_status check_args(mloc_ctx *ctx, const float *train, const int32_t *labels,
                              int64_t n_train, const float *test, int64_t n_test, int64_t D,
                              int K, int k, double t) {
    if (n_train < 1 || n_test < 0 || D < 1 || K < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "knn: %lld training and %lld test rows of %lld features, %d classes; "
                          "expected at least one of each", (long long)n_train, (long long)n_test,
                          (long long)D, K);
    if (k < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "knn: k %d, expected >= 1", k);
    if (!(t > 0) || !isfinite(t))
        return mloc_error(ctx, MLOC_ERR_USAGE, "knn: temperature %g, expected > 0", t);
    for (int64_t j = 0; j < n_train; j++)
        if (labels[j] < 0 || labels[j] >= K)
            return mloc_error(ctx, MLOC_ERR_DATA, "knn: training row %lld: label %d, expected 0..%d",
                              (long long)j, labels[j], K - 1);
    const float *sets[2] = {train, test};
    const int64_t rows[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < rows[s] * D; i++)
            if (!isfinite(sets[s][i]))
                return mloc_error(ctx, MLOC_ERR_DATA, "knn: %s row %lld: feature %lld is %g, "
                                  "expected a finite value", s ? "test" : "training",
                                  (long long)(i / D), (long long)(i % D), sets[s][i]);
    return MLOC_OK;
}

/* 1 / max(|x_i|, 1e-12) of each row, the norm in double. */
static void inverse_norms(float *inv, const float *x, int64_t n, int64_t D) {
#pragma omp parallel for if (n * D >= (1 << 20)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)x[i * D + d] * x[i * D + d];
        double nrm = sqrt(s);
        inv[i] = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
    }
}

mloc_status mloc_knn_predict(mloc_ctx *ctx, int32_t *pred, const float *train,
                             const int32_t *train_labels, int64_t n_train, const float *test,
                             int64_t n_test, int64_t D, int n_classes, int k, double t) {
    MLOC_TRY(check_args(ctx, train, train_labels, n_train, test, n_test, D, n_classes, k, t));
    if (k > n_train) k = (int)n_train;
    int qb = Q_BLOCK;
    while (qb > 1 && (size_t)qb * (size_t)k * sizeof(neighbour) > HEAP_BYTES) qb /= 2;
    mloc_status st = MLOC_OK;
    float *tinv = mloc_alloc(ctx, (size_t)n_train * sizeof(float));
    float *q = mloc_alloc(ctx, (size_t)qb * (size_t)D * sizeof(float));
    float *sim = mloc_alloc(ctx, (size_t)qb * T_BLOCK * sizeof(float));
    neighbour *heaps = mloc_alloc(ctx, (size_t)qb * (size_t)k * sizeof(neighbour));
    int *fill = mloc_alloc(ctx, (size_t)qb * sizeof(int));
    double *score = mloc_alloc(ctx, (size_t)n_classes * sizeof(double));
    if (!tinv || !q || !sim || !heaps || !fill || !score) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "knn: blocks of %d x %d similarities", qb,
                               T_BLOCK);
        goto done;
    }
    inverse_norms(tinv, train, n_train, D);
    mloc_progress(ctx, "knn", 0, n_test, "");
    for (int64_t q0 = 0; q0 < n_test; q0 += qb) {
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "knn: interrupted after %lld of %lld test rows",
                            (long long)q0, (long long)n_test);
            goto done;
        }
        const int qn = (int)(n_test - q0 < qb ? n_test - q0 : qb);
        /* q (qn, D) = the test rows, each divided by its norm */
        memcpy(q, test + q0 * D, (size_t)qn * (size_t)D * sizeof(float));
        mloc_features_l2_normalize(q, qn, D);
        memset(fill, 0, (size_t)qb * sizeof(int));
        for (int64_t t0 = 0; t0 < n_train; t0 += T_BLOCK) {
            const int tn = (int)(n_train - t0 < T_BLOCK ? n_train - t0 : T_BLOCK);
            /* sim (qn, tn) = q (qn, D) . train[t0:t0+tn] (tn, D)^T, row-major */
            dnnl_status_t ds = dnnl_sgemm('N', 'T', qn, tn, D, 1.0f, q, D, train + t0 * D, D, 0.0f,
                                          sim, tn);
            if (ds != dnnl_success) {
                st = mloc_error(ctx, MLOC_ERR_INTERNAL, "knn: dnnl_sgemm failed (status %d)", (int)ds);
                goto done;
            }
#pragma omp parallel for schedule(static)
            for (int i = 0; i < qn; i++) {
                const float *row = sim + (size_t)i * tn;
                neighbour *h = heaps + (size_t)i * k;
                for (int jj = 0; jj < tn; jj++)
                    offer(h, &fill[i], k, (double)(row[jj] * tinv[t0 + jj]), t0 + jj);
            }
        }
        for (int i = 0; i < qn; i++)
            pred[q0 + i] = vote(heaps + (size_t)i * k, k, train_labels, n_classes, t, score);
        mloc_progress(ctx, "knn", q0 + qn, n_test, "");
    }
done:
    mloc_free(tinv);
    mloc_free(q);
    mloc_free(sim);
    mloc_free(heaps);
    mloc_free(fill);
    mloc_free(score);
    return st;
}

mloc_status mloc_knn_predict_ref(mloc_ctx *ctx, int32_t *pred, const float *train,
                                 const int32_t *train_labels, int64_t n_train, const float *test,
                                 int64_t n_test, int64_t D, int n_classes, int k, double t) {
    MLOC_TRY(check_args(ctx, train, train_labels, n_train, test, n_test, D, n_classes, k, t));
    if (k > n_train) k = (int)n_train;
    neighbour *all = malloc((size_t)n_train * sizeof *all);
    double *tn = malloc((size_t)n_train * sizeof *tn);
    double *score = malloc((size_t)n_classes * sizeof *score);
    if (!all || !tn || !score) {
        free(all);
        free(tn);
        free(score);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "knn reference: out of memory");
    }
    for (int64_t j = 0; j < n_train; j++) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)train[j * D + d] * train[j * D + d];
        tn[j] = fmax(sqrt(s), 1e-12);
    }
    for (int64_t i = 0; i < n_test; i++) {
        const float *x = test + i * D;
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)x[d] * x[d];
        double qn = fmax(sqrt(s), 1e-12);
        for (int64_t j = 0; j < n_train; j++) {
            double dot = 0;
            for (int64_t d = 0; d < D; d++) dot += (x[d] / qn) * (train[j * D + d] / tn[j]);
            all[j].s = dot;
            all[j].j = j;
        }
        /* all n_train ranked, the first k vote */
        qsort(all, (size_t)n_train, sizeof *all, by_rank);
        pred[i] = vote(all, k, train_labels, n_classes, t, score);
    }
    free(all);
    free(tn);
    free(score);
    return MLOC_OK;
}

mloc_status mloc_knn_accuracy(mloc_ctx *ctx, mloc_model *m, const mloc_dataset *train,
                              const int64_t *train_idx, int64_t n_train,
                              const mloc_dataset *test, const int64_t *test_idx,
                              int64_t n_test, const mloc_knn_config *cfg, double *acc) {
    mloc_knn_config defaults = mloc_knn_config_default();
    if (!cfg) cfg = &defaults;
    *acc = 0;
    const int value = cfg->value < 0 ? m->feature : cfg->value;
    if (value >= m->n_values)
        return mloc_error(ctx, MLOC_ERR_USAGE, "knn: value %d, expected 0..%d", value, m->n_values - 1);
    if (n_train < 1 || n_test < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "knn: %lld training and %lld test images, expected >= 1 each",
                          (long long)n_train, (long long)n_test);
    const int64_t D = mloc_model_value_numel(m, value);
    const int K = train->n_classes > test->n_classes ? train->n_classes : test->n_classes;
    mloc_status st = MLOC_OK;
    float *ftr = mloc_alloc(ctx, (size_t)n_train * (size_t)D * sizeof(float));
    float *fte = mloc_alloc(ctx, (size_t)n_test * (size_t)D * sizeof(float));
    int32_t *ytr = mloc_alloc(ctx, (size_t)n_train * sizeof(int32_t));
    int32_t *yte = mloc_alloc(ctx, (size_t)n_test * sizeof(int32_t));
    int32_t *pred = mloc_alloc(ctx, (size_t)n_test * sizeof(int32_t));
    if (!ftr || !fte || !ytr || !yte || !pred) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "knn: features of %lld + %lld images x %lld",
                               (long long)n_train, (long long)n_test, (long long)D);
        goto done;
    }
    st = mloc_features_labels(ctx, ytr, train, train_idx, n_train);
    if (st == MLOC_OK) st = mloc_features_labels(ctx, yte, test, test_idx, n_test);
    if (st == MLOC_OK)
        st = mloc_features_extract(ctx, m, train, train_idx, n_train, value, cfg->batch, cfg->pipe, ftr);
    if (st == MLOC_OK)
        st = mloc_features_extract(ctx, m, test, test_idx, n_test, value, cfg->batch, cfg->pipe, fte);
    if (st == MLOC_OK) st = mloc_knn_predict(ctx, pred, ftr, ytr, n_train, fte, n_test, D, K, cfg->k, cfg->t);
    if (st == MLOC_OK) {
        int64_t right = 0;
        for (int64_t i = 0; i < n_test; i++) right += pred[i] == yte[i];
        *acc = (double)right / (double)n_test;
    }
done:
    mloc_free(ftr);
    mloc_free(fte);
    mloc_free(ytr);
    mloc_free(yte);
    mloc_free(pred);
    return st;
}
