/* Linear probe on frozen encoder features.
 *
 * SPEC.md section 8: "a linear classifier on frozen encoder outputs; report
 * test top-1". The encoder runs once per image (features are extracted,
 * never recomputed); the classifier is
 *
 *   z = W x + b,   W (K, D), b (K), both zero at the start,
 *   L = mean_n CE(softmax(z_n), y_n)          (mloc_cross_entropy)
 *   dW (=) = dz^T X,  db (=) = sum_n dz_n     (dz (N, K) from the loss)
 *
 * trained by Adam or SGD (optim.h) on mini-batches of a permutation drawn
 * per epoch from stream ("probe-shuffle", epoch) of the seed, the rate
 * decayed by a cosine to 0 at the last step (CosineAnnealingLR stepped per
 * iteration) unless constant. Zero initialisation (instead of nn.Linear's
 * uniform one) is the usual choice for this convex problem and leaves
 * nothing random but the order of the batches.
 *
 * Features are standardised by default (see analysis.h): the reference
 * probes of SSL papers put a BatchNorm1d without affine in front of the
 * linear layer, which at test time is this per-dimension z-score with the
 * training statistics.
 *
 * Every kernel is a loop with a fixed summation order, parallel over
 * independent outputs only, so the probe is bitwise the same for a seed on
 * any number of threads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/analysis.h"
#include "memloc/nn.h"
#include "memloc/rng.h"
#include "memloc/tensor.h"

#define STD_EPS 1e-5 /* BatchNorm1d's eps */
#define D_CHUNK 256  /* gradient columns per parallel task */
/* Multiply-adds below which a kernel runs on the calling thread: a default
 * step (256 x 1024 x 10) is ~1 ms of work, and waking the team for it costs
 * more than it saves on a loaded machine. */
#define PAR_MIN_MACS (1 << 23)

static const char *const prep_names[] = {"standardize", "l2", "raw"};

const char *mloc_probe_prep_name(mloc_probe_prep p) {
    return (unsigned)p < 3 ? prep_names[p] : "?";
}

int mloc_probe_prep_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, prep_names[i]) == 0) return i;
    return -1;
}

mloc_probe_config mloc_probe_config_default(void) {
    mloc_probe_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 30;
    c.batch = 256;
    c.optim = MLOC_OPTIM_ADAM;
    c.lr = 1e-3;
    c.momentum = 0.9;
    c.weight_decay = 0;
    c.cosine = 1;
    c.prep = MLOC_PROBE_STANDARDIZE;
    c.seed = 0;
    c.value = -1;
    c.pipe = NULL;
    return c;
}

/* ---- kernels ------------------------------------------------------------------ */

/* sum_d a[d] b[d] in 8 interleaved float lanes (vectorisable, fixed order),
 * lanes then tail added in order. */
static float dot(const float *a, const float *b, int64_t n) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) lane[l] += a[d + l] * b[d + l];
    float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

/* z (nb, K) = X[rows] (nb, D) W^T + b; rows NULL: rows 0..nb-1 of X. */
static void linear_forward(float *z, const float *X, const int64_t *rows, int nb, const float *W,
                           const float *b, int64_t D, int K) {
#pragma omp parallel for if ((int64_t)nb * K * D >= PAR_MIN_MACS) schedule(static)
    for (int i = 0; i < nb; i++) {
        const float *x = X + (rows ? rows[i] : i) * D;
        for (int k = 0; k < K; k++) z[(int64_t)i * K + k] = dot(x, W + (int64_t)k * D, D) + b[k];
    }
}

/* dW (K, D) (=) = dz^T X[rows], db (K) (=) = column sums of dz (nb, K); each
 * output summed over the batch in row order. */
static void linear_backward(float *dW, float *db, const float *dz, const float *X,
                            const int64_t *rows, int nb, int64_t D, int K) {
    const int64_t chunks = (D + D_CHUNK - 1) / D_CHUNK;
#pragma omp parallel for if ((int64_t)nb * K * D >= PAR_MIN_MACS) schedule(static)
    for (int64_t task = 0; task < (int64_t)K * chunks; task++) {
        const int k = (int)(task / chunks);
        const int64_t d0 = task % chunks * D_CHUNK, d1 = d0 + D_CHUNK < D ? d0 + D_CHUNK : D;
        float *g = dW + (int64_t)k * D;
        for (int64_t d = d0; d < d1; d++) g[d] = 0;
        for (int i = 0; i < nb; i++) {
            const float a = dz[(int64_t)i * K + k];
            const float *x = X + rows[i] * D;
            for (int64_t d = d0; d < d1; d++) g[d] += a * x[d];
        }
        if (d0 == 0) {
            float s = 0;
            for (int i = 0; i < nb; i++) s += dz[(int64_t)i * K + k];
            db[k] = s;
        }
    }
}

static int32_t argmax(const float *z, int K) {
    int32_t best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

/* Share of rows of X whose argmax logit is their label, in blocks of B. */
static double accuracy(float *z, const float *X, const int32_t *y, int64_t n, const float *W,
                       const float *b, int64_t D, int K, int B) {
    int64_t right = 0;
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        const int nb = (int)(n - i0 < B ? n - i0 : B);
        linear_forward(z, X + i0 * D, NULL, nb, W, b, D, K);
        for (int i = 0; i < nb; i++) right += argmax(z + (int64_t)i * K, K) == y[i0 + i];
    }
    return n ? (double)right / (double)n : 0;
}

/* ---- preprocessing ---------------------------------------------------------- */

static mloc_status standardize(mloc_ctx *ctx, float *train, int64_t n_train, float *test,
                               int64_t n_test, int64_t D) {
    double *mean = mloc_alloc(ctx, (size_t)D * sizeof(double));
    double *var = mloc_alloc(ctx, (size_t)D * sizeof(double));
    float *shift = mloc_alloc(ctx, (size_t)D * sizeof(float));
    float *scale = mloc_alloc(ctx, (size_t)D * sizeof(float));
    mloc_status st = MLOC_OK;
    if (!mean || !var || !shift || !scale) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "probe: statistics of %lld features", (long long)D);
        goto done;
    }
    /* two passes in double, rows in order: mean, then biased variance */
    for (int64_t i = 0; i < n_train; i++)
        for (int64_t d = 0; d < D; d++) mean[d] += train[i * D + d];
    for (int64_t d = 0; d < D; d++) mean[d] /= (double)n_train;
    for (int64_t i = 0; i < n_train; i++)
        for (int64_t d = 0; d < D; d++) {
            double e = train[i * D + d] - mean[d];
            var[d] += e * e;
        }
    for (int64_t d = 0; d < D; d++) {
        shift[d] = (float)mean[d];
        scale[d] = (float)(1.0 / sqrt(var[d] / (double)n_train + STD_EPS));
    }
    float *sets[2] = {train, test};
    const int64_t rows[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        float *x = sets[s];
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < rows[s]; i++)
            for (int64_t d = 0; d < D; d++) x[i * D + d] = (x[i * D + d] - shift[d]) * scale[d];
    }
done:
    mloc_free(mean);
    mloc_free(var);
    mloc_free(shift);
    mloc_free(scale);
    return st;
}

static mloc_status check_config(mloc_ctx *ctx, const mloc_probe_config *c) {
    if (c->epochs < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "probe: epochs %d, expected >= 1", c->epochs);
    if (c->batch < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "probe: batch %d, expected >= 1", c->batch);
    if (c->optim != MLOC_OPTIM_ADAM && c->optim != MLOC_OPTIM_SGD)
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: optimizer %s, expected adam or sgd",
                          mloc_optim_kind_name(c->optim));
    if (!(c->lr > 0) || !isfinite(c->lr))
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: learning rate %g, expected > 0", c->lr);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: momentum %g, expected 0 <= m < 1", c->momentum);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: weight decay %g, expected >= 0", c->weight_decay);
    if ((unsigned)c->prep > MLOC_PROBE_RAW)
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: preprocessing %d, expected standardize, l2 or raw",
                          (int)c->prep);
    return MLOC_OK;
}

static mloc_status check_data(mloc_ctx *ctx, const char *what, const float *x,
                              const int32_t *y, int64_t n, int64_t D, int K) {
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= K)
            return mloc_error(ctx, MLOC_ERR_DATA, "probe: %s row %lld: label %d, expected 0..%d", what,
                              (long long)i, y[i], K - 1);
    for (int64_t i = 0; i < n * D; i++)
        if (!isfinite(x[i]))
            return mloc_error(ctx, MLOC_ERR_DATA, "probe: %s row %lld: feature %lld is %g, expected a "
                              "finite value", what, (long long)(i / D), (long long)(i % D), x[i]);
    return MLOC_OK;
}

/* ---- training ------------------------------------------------------------------ */

mloc_status mloc_probe_fit(mloc_ctx *ctx, mloc_probe_result *res, float *train,
                           const int32_t *train_labels, int64_t n_train, float *test,
                           const int32_t *test_labels, int64_t n_test, int64_t D, int K,
                           const mloc_probe_config *cfg) {
    mloc_probe_config defaults = mloc_probe_config_default();
    if (!cfg) cfg = &defaults;
    float *out_w = res->weight, *out_b = res->bias;
    memset(res, 0, sizeof *res);
    res->weight = out_w;
    res->bias = out_b;
    MLOC_TRY(check_config(ctx, cfg));
    if (n_train < 1 || n_test < 0 || D < 1 || K < 1 || (n_test > 0 && !test))
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "probe: %lld training and %lld test rows of %lld features, %d classes; "
                          "expected training rows, features and classes", (long long)n_train,
                          (long long)n_test, (long long)D, K);
    MLOC_TRY(check_data(ctx, "training", train, train_labels, n_train, D, K));
    MLOC_TRY(check_data(ctx, "test", test, test_labels, n_test, D, K));

    if (cfg->prep == MLOC_PROBE_STANDARDIZE) {
        MLOC_TRY(standardize(ctx, train, n_train, test, n_test, D));
    } else if (cfg->prep == MLOC_PROBE_L2) {
        mloc_features_l2_normalize(train, n_train, D);
        if (n_test) mloc_features_l2_normalize(test, n_test, D);
    }

    mloc_status st = MLOC_OK;
    mloc_table tab;
    mloc_store store;
    mloc_optim *opt = NULL;
    memset(&store, 0, sizeof store);
    mloc_table_init(&tab);
    const int B = n_train < cfg->batch ? (int)n_train : cfg->batch;
    int64_t *perm = mloc_alloc(ctx, (size_t)n_train * sizeof(int64_t));
    float *z = mloc_alloc(ctx, (size_t)B * K * sizeof(float));
    float *dz = mloc_alloc(ctx, (size_t)B * K * sizeof(float));
    int32_t *yb = mloc_alloc(ctx, (size_t)B * sizeof(int32_t));
    if (!perm || !z || !dz || !yb) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "probe: batch buffers");
        goto done;
    }
    const int64_t wshape[2] = {K, D}, bshape[1] = {K};
    if (mloc_table_add(&tab, "fc.weight", MLOC_ROLE_WEIGHT, MLOC_GROUP_HEAD, 0, 2, wshape) < 0 ||
        mloc_table_add(&tab, "fc.bias", MLOC_ROLE_BIAS, MLOC_GROUP_HEAD, 0, 1, bshape) < 0) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "probe: out of memory for the parameter table");
        goto done;
    }
    st = mloc_store_alloc(ctx, &store, &tab);
    if (st != MLOC_OK) goto done;
    float *W = mloc_store_ptr(&store, &tab, 0), *b = mloc_store_ptr(&store, &tab, 1);
    float *dW = store.grad + tab.t[0].offset, *db = store.grad + tab.t[1].offset;
    memset(store.param, 0, (size_t)tab.numel[MLOC_BLOCK_PARAM] * sizeof(float));

    mloc_optim_config oc = mloc_optim_config_default(cfg->optim);
    oc.weight_decay = cfg->weight_decay;
    if (cfg->optim == MLOC_OPTIM_SGD) oc.momentum = cfg->momentum;
    st = mloc_optim_create(ctx, &opt, &tab, &oc);
    if (st != MLOC_OK) goto done;
    const int64_t per_epoch = (n_train + B - 1) / B, total = per_epoch * cfg->epochs;
    const mloc_schedule sched = cfg->cosine ? mloc_schedule_warmup_cosine(cfg->lr, 0, 1.0, total, 0.0)
                                            : mloc_schedule_constant(cfg->lr);
    st = mloc_schedule_check(ctx, &sched);
    if (st != MLOC_OK) goto done;

    int64_t step = 0;
    mloc_progress(ctx, "probe", 0, cfg->epochs, "");
    for (int e = 0; e < cfg->epochs; e++) {
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "probe: interrupted after %d of %d epochs", e,
                            cfg->epochs);
            goto done;
        }
        mloc_rng r;
        mloc_rng_init_tag(&r, cfg->seed, "probe-shuffle", (uint64_t)e, 0, 0);
        mloc_rng_permutation(&r, perm, n_train);
        double epoch_loss = 0;
        for (int64_t i0 = 0; i0 < n_train; i0 += B, step++) {
            const int nb = (int)(n_train - i0 < B ? n_train - i0 : B);
            const int64_t *rows = perm + i0;
            for (int i = 0; i < nb; i++) yb[i] = train_labels[rows[i]];
            linear_forward(z, train, rows, nb, W, b, D, K);
            const double loss = mloc_cross_entropy(dz, z, yb, nb, K);
            if (!isfinite(loss)) {
                st = mloc_error(ctx, MLOC_ERR_DIVERGED, "probe: loss %g at epoch %d step %lld (lr %g)",
                                loss, e, (long long)step, cfg->lr);
                goto done;
            }
            epoch_loss += loss * nb;
            linear_backward(dW, db, dz, train, rows, nb, D, K);
            st = mloc_optim_step(opt, &store, mloc_schedule_lr(&sched, step));
            if (st != MLOC_OK) goto done;
        }
        res->final_loss = epoch_loss / (double)n_train;
        char status[64];
        snprintf(status, sizeof status, "loss %.4f", res->final_loss);
        mloc_progress(ctx, "probe", e + 1, cfg->epochs, status);
    }
    res->steps = step;
    res->train_top1 = accuracy(z, train, train_labels, n_train, W, b, D, K, B);
    res->test_top1 = accuracy(z, test, test_labels, n_test, W, b, D, K, B);
    if (out_w) memcpy(out_w, W, (size_t)K * (size_t)D * sizeof(float));
    if (out_b) memcpy(out_b, b, (size_t)K * sizeof(float));
done:
    mloc_optim_free(opt);
    mloc_store_free(&store);
    mloc_table_free(&tab);
    mloc_free(perm);
    mloc_free(z);
    mloc_free(dz);
    mloc_free(yb);
    return st;
}

mloc_status mloc_probe_run(mloc_ctx *ctx, mloc_model *m, mloc_probe_result *res,
                           const mloc_dataset *train, const int64_t *train_idx, int64_t n_train,
                           const mloc_dataset *test, const int64_t *test_idx, int64_t n_test,
                           const mloc_probe_config *cfg) {
    mloc_probe_config defaults = mloc_probe_config_default();
    if (!cfg) cfg = &defaults;
    const int value = cfg->value < 0 ? m->feature : cfg->value;
    if (value >= m->n_values)
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: value %d, expected 0..%d", value, m->n_values - 1);
    if (n_train < 1 || n_test < 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "probe: %lld training and %lld test images",
                          (long long)n_train, (long long)n_test);
    const int64_t D = mloc_model_value_numel(m, value);
    const int kt = test ? test->n_classes : 0;
    const int K = train->n_classes > kt ? train->n_classes : kt;
    mloc_status st = MLOC_OK;
    float *ftr = mloc_alloc(ctx, (size_t)n_train * (size_t)D * sizeof(float));
    float *fte = mloc_alloc(ctx, ((size_t)n_test * (size_t)D + 1) * sizeof(float));
    int32_t *ytr = mloc_alloc(ctx, (size_t)n_train * sizeof(int32_t));
    int32_t *yte = mloc_alloc(ctx, ((size_t)n_test + 1) * sizeof(int32_t));
    if (!ftr || !fte || !ytr || !yte) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "probe: features of %lld + %lld images x %lld",
                               (long long)n_train, (long long)n_test, (long long)D);
        goto done;
    }
    st = mloc_features_labels(ctx, ytr, train, train_idx, n_train);
    if (st == MLOC_OK && n_test) st = mloc_features_labels(ctx, yte, test, test_idx, n_test);
    if (st == MLOC_OK)
        st = mloc_features_extract(ctx, m, train, train_idx, n_train, value, cfg->batch, cfg->pipe, ftr);
    if (st == MLOC_OK && n_test)
        st = mloc_features_extract(ctx, m, test, test_idx, n_test, value, cfg->batch, cfg->pipe, fte);
    if (st == MLOC_OK) st = mloc_probe_fit(ctx, res, ftr, ytr, n_train, fte, yte, n_test, D, K, cfg);
done:
    mloc_free(ftr);
    mloc_free(fte);
    mloc_free(ytr);
    mloc_free(yte);
    return st;
}
