/* Acting on memorization (SPEC.md section 8), the parts that train:
 * memorization-guided fine-tuning of chosen blocks with a linear head, and
 * the single-unit check (one unit's parameters trained on one point with an
 * NT-Xent loss anchored on it). See include/memloc/apply.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/analysis.h"
#include "memloc/apply.h"
#include "memloc/loader.h"
#include "memloc/nn.h"
#include "memloc/optim.h"
#include "memloc/rng.h"

#define EVAL_CHUNK 1024 /* test images per feature extraction */

/* A fresh model with m's configuration, backend and every tensor of m.
 * Measurements after training run on such a copy, so they never depend on
 * what the training plan left in the backend (before commit 7452075 a
 * oneDNN model planned for a larger eval batch after a training forward
 * read past its plan and gave negative activations after a ReLU). */
static mloc_status fresh_copy(mloc_ctx *ctx, const mloc_model *m, mloc_model **out) {
    *out = NULL;
    mloc_model *c = NULL;
    MLOC_TRY(mloc_model_create(ctx, &c, &m->cfg));
    mloc_status st = mloc_model_set_backend(ctx, c, m->backend);
    if (st != MLOC_OK) {
        mloc_model_free(c);
        return st;
    }
    memcpy(c->store.param, m->store.param, (size_t)m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    memcpy(c->store.buffer, m->store.buffer, (size_t)m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    memcpy(c->store.counter, m->store.counter, (size_t)m->table.numel[MLOC_BLOCK_COUNTER] * sizeof(int64_t));
    *out = c;
    return MLOC_OK;
}

/* ---- memorization-guided fine-tuning ------------------------------------------------ */

mloc_finetune_config mloc_finetune_config_default(void) {
    mloc_finetune_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 5;
    c.batch = 128;
    c.lr = 1e-3;
    c.weight_decay = 0;
    c.augment = 1;
    c.norm = MLOC_AUG_NORM_HALF;
    c.seed = 0;
    c.workers = 2;
    return c;
}

static mloc_status check_finetune(mloc_ctx *ctx, const mloc_finetune_config *c, const mloc_dataset *train) {
    if (c->epochs < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: epochs %d, expected >= 1", c->epochs);
    if (c->batch < 2 || c->batch > train->n)
        return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: batch %d, expected 2..%lld (the training images)",
                          c->batch, (long long)train->n);
    if (!(c->lr > 0 && isfinite(c->lr)))
        return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: lr %g, expected > 0", c->lr);
    if (!(c->weight_decay >= 0))
        return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: weight_decay %g, expected >= 0", c->weight_decay);
    if (c->workers < 0) return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: workers %d, expected >= 0", c->workers);
    return MLOC_OK;
}

/* The classifier: a two-entry table ("fc.weight" (K, D), "fc.bias" (K))
 * with its own store and Adam, initialised as nn.Linear. */
typedef struct {
    mloc_table tab;
    mloc_store store;
    mloc_optim *opt;
    int K, D;
} head;

static void head_free(head *h) {
    mloc_optim_free(h->opt);
    mloc_store_free(&h->store);
    mloc_table_free(&h->tab);
}

static mloc_status head_make(mloc_ctx *ctx, head *h, int K, int D, const mloc_optim_config *oc, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->K = K;
    h->D = D;
    mloc_table_init(&h->tab);
    const int64_t ws[2] = {K, D}, bs[1] = {K};
    if (mloc_table_add(&h->tab, "fc.weight", MLOC_ROLE_WEIGHT, MLOC_GROUP_HEAD, 0, 2, ws) < 0 ||
        mloc_table_add(&h->tab, "fc.bias", MLOC_ROLE_BIAS, MLOC_GROUP_HEAD, 0, 1, bs) < 0)
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory making the classifier");
    MLOC_TRY(mloc_store_alloc(ctx, &h->store, &h->tab));
    /* nn.Linear: weight and bias U(-1/sqrt(D), 1/sqrt(D)) */
    const double bound = 1.0 / sqrt((double)D);
    for (int e = 0; e < 2; e++) {
        mloc_rng r;
        mloc_rng_init_tag(&r, seed, "finetune-head", (uint64_t)e, 0, 0);
        float *p = mloc_store_ptr(&h->store, &h->tab, e);
        for (int64_t i = 0; i < h->tab.t[e].numel; i++) p[i] = (float)((2 * mloc_rng_uniform(&r) - 1) * bound);
    }
    return mloc_optim_create(ctx, &h->opt, &h->tab, oc);
}

static int argmax_row(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

/* Test accuracy: encoder features (eval mode, un-augmented) through the head. */
static mloc_status test_accuracy(mloc_ctx *ctx, mloc_model *m, const head *h, const mloc_dataset *test, int batch,
                                 const mloc_aug_pipeline *pipe, double *acc) {
    const int D = h->D, K = h->K;
    const int64_t chunk = test->n < EVAL_CHUNK ? test->n : EVAL_CHUNK;
    float *feat = malloc((size_t)chunk * D * sizeof *feat);
    float *z = malloc((size_t)chunk * K * sizeof *z);
    int64_t *idx = malloc((size_t)chunk * sizeof *idx);
    mloc_status st = MLOC_OK;
    int64_t correct = 0;
    if (!feat || !z || !idx) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory evaluating the fine-tuned encoder");
        goto done;
    }
    const float *W = mloc_store_ptr(&h->store, &h->tab, 0), *b = mloc_store_ptr(&h->store, &h->tab, 1);
    for (int64_t s = 0; s < test->n; s += chunk) {
        const int64_t n = test->n - s < chunk ? test->n - s : chunk;
        for (int64_t i = 0; i < n; i++) idx[i] = s + i;
        st = mloc_features_extract(ctx, m, test, idx, n, m->feature, batch, pipe, feat);
        if (st != MLOC_OK) goto done;
        mloc_linear_shape ls = {(int)n, D, K};
        mloc_linear_forward(z, feat, W, b, &ls);
        for (int64_t i = 0; i < n; i++) {
            const int32_t y = test->labels[s + i];
            if (y < 0 || y >= K) {
                st = mloc_error(ctx, MLOC_ERR_DATA, "%s: image %lld has label %d, expected 0..%d",
                                test->spec ? test->spec : "test set", (long long)(s + i), y, K - 1);
                goto done;
            }
            correct += argmax_row(z + i * K, K) == y;
        }
    }
    *acc = test->n ? (double)correct / (double)test->n : 0;
done:
    free(feat);
    free(z);
    free(idx);
    return st;
}

mloc_status mloc_finetune_run(mloc_ctx *ctx, mloc_model *m, const int *modules, int n,
                              const mloc_dataset *train, const mloc_dataset *test,
                              const mloc_finetune_config *cfg, mloc_finetune_result *res) {
    memset(res, 0, sizeof *res);
    MLOC_TRY(check_finetune(ctx, cfg, train));
    for (int k = 0; k < n; k++)
        if (modules[k] < 0 || modules[k] >= m->n_modules || mloc_apply_block_tap(m, modules[k]) < 0 ||
            mloc_apply_tap_block(m, mloc_apply_block_tap(m, modules[k])) != modules[k])
            return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: module %d (%s) is not a block of the encoder",
                              modules[k], modules[k] >= 0 && modules[k] < m->n_modules ? m->modules[modules[k]] : "?");
    const int K = train->n_classes > test->n_classes ? train->n_classes : test->n_classes;
    if (K < 2)
        return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: %s has %d classes, expected labelled data",
                          train->spec ? train->spec : "the training set", train->n_classes);
    const int D = (int)mloc_model_value_numel(m, m->feature), B = cfg->batch;

    mloc_status st = MLOC_OK;
    mloc_optim *opt = NULL;
    mloc_loader *L = NULL;
    head h;
    memset(&h, 0, sizeof h);
    float *feat = NULL, *z = NULL, *dz = NULL, *dfeat = NULL;
    uint8_t *saved_bn = malloc((size_t)m->n_modules + 1);
    if (!saved_bn) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory fine-tuning");
    memcpy(saved_bn, m->bn_eval, (size_t)m->n_modules + 1);

    /* BN of every module but the chosen ones in eval mode; the chosen
     * blocks' parameters are the only trainable entries of the encoder */
    for (int i = 0; i < m->n_modules; i++) m->bn_eval[i] = 1;
    for (int k = 0; k < n; k++) m->bn_eval[modules[k]] = 0;
    mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_ADAM);
    oc.weight_decay = cfg->weight_decay;
    st = mloc_optim_create(ctx, &opt, &m->table, &oc);
    if (st != MLOC_OK) goto done;
    mloc_optim_set_trainable_all(opt, 0);
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM) continue;
        for (int k = 0; k < n; k++)
            if (e->module == modules[k]) {
                st = mloc_optim_set_trainable(opt, i, 1);
                if (st != MLOC_OK) goto done;
                res->trained_params += e->numel;
            }
    }
    st = head_make(ctx, &h, K, D, &oc, cfg->seed);
    if (st != MLOC_OK) goto done;

    /* training views: crop + flip (the simclr preset without colour), or none */
    mloc_aug_config ac = mloc_aug_config_default();
    ac.preset = cfg->augment ? MLOC_AUG_SIMCLR : MLOC_AUG_NONE;
    ac.size = m->cfg.image_h;
    ac.jitter_p = 0;
    ac.gray_p = 0;
    ac.norm = cfg->norm;
    mloc_loader_config lc = mloc_loader_config_default();
    st = mloc_aug_pipeline_make(ctx, &lc.aug, &ac);
    if (st != MLOC_OK) goto done;
    lc.batch_size = B;
    lc.views = 1;
    lc.seed = cfg->seed;
    lc.shuffle = 1;
    lc.drop_last = 1;
    lc.workers = cfg->workers;
    lc.purpose = "finetune";
    st = mloc_loader_create(ctx, &L, train, NULL, train->n, &lc);
    if (st != MLOC_OK) goto done;
    mloc_aug_pipeline eval_pipe;
    st = mloc_eval_pipeline(ctx, &eval_pipe, cfg->norm);
    if (st == MLOC_OK) st = mloc_model_plan(ctx, m, B);
    if (st != MLOC_OK) goto done;
    feat = malloc((size_t)B * D * sizeof *feat);
    dfeat = malloc((size_t)B * D * sizeof *dfeat);
    z = malloc((size_t)B * K * sizeof *z);
    dz = malloc((size_t)B * K * sizeof *dz);
    if (!feat || !dfeat || !z || !dz) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory fine-tuning");
        goto done;
    }
    float *W = mloc_store_ptr(&h.store, &h.tab, 0), *bias = mloc_store_ptr(&h.store, &h.tab, 1);
    float *dW = h.store.grad, *db = h.store.grad + h.tab.t[1].offset;

    for (int epoch = 0; epoch < cfg->epochs; epoch++) {
        double loss_sum = 0;
        int64_t steps = 0, seen = 0, correct = 0;
        st = mloc_loader_start_epoch(L, epoch, 0);
        if (st != MLOC_OK) goto done;
        for (;;) {
            mloc_batch *b;
            st = mloc_loader_next(L, &b);
            if (st != MLOC_OK) goto done;
            if (!b) break;
            const int nb = b->n;
            for (int i = 0; i < nb && st == MLOC_OK; i++)
                if (b->labels[i] < 0 || b->labels[i] >= K)
                    st = mloc_error(ctx, MLOC_ERR_DATA, "%s: image %lld has label %d, expected 0..%d",
                                    train->spec ? train->spec : "training set", (long long)b->indices[i],
                                    b->labels[i], K - 1);
            /* encoder: training mode only when some block trains (the
             * frozen blocks' BN runs in eval mode either way) */
            if (st == MLOC_OK) {
                if (n > 0) {
                    mloc_optim_zero_grad(opt, &m->store);
                    st = mloc_model_forward(ctx, m, b->x, nb, MLOC_MODE_TRAIN, -1);
                } else {
                    st = mloc_model_forward(ctx, m, b->x, nb, MLOC_MODE_EVAL, m->feature);
                }
            }
            if (st == MLOC_OK) st = mloc_model_read(ctx, m, m->feature, feat);
            if (st != MLOC_OK) {
                mloc_loader_release(L, b);
                goto done;
            }
            /* head: z = feat W^T + b, L = CE(z, y); dW, db (+=, zeroed first), dfeat (=) */
            mloc_linear_shape ls = {nb, D, K};
            mloc_linear_forward(z, feat, W, bias, &ls);
            const double loss = mloc_cross_entropy(dz, z, b->labels, nb, K);
            for (int i = 0; i < nb; i++) correct += argmax_row(z + (int64_t)i * K, K) == b->labels[i];
            mloc_loader_release(L, b);
            if (!isfinite(loss)) {
                st = mloc_error(ctx, MLOC_ERR_DIVERGED, "finetune: epoch %d: the cross-entropy is %g (lower the lr)",
                                epoch + 1, loss);
                goto done;
            }
            mloc_optim_zero_grad(h.opt, &h.store);
            mloc_linear_backward(n > 0 ? dfeat : NULL, dW, db, dz, feat, W, &ls);
            if (n > 0) {
                st = mloc_model_backward(ctx, m, m->feature, dfeat);
                if (st == MLOC_OK) st = mloc_optim_step(opt, &m->store, cfg->lr);
                if (st != MLOC_OK) goto done;
                mloc_model_params_changed(m);
            }
            st = mloc_optim_step(h.opt, &h.store, cfg->lr);
            if (st != MLOC_OK) goto done;
            loss_sum += loss;
            steps++;
            seen += nb;
            res->steps++;
            if (mloc_ctx_interrupted(ctx)) {
                st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "finetune: interrupted in epoch %d", epoch + 1);
                goto done;
            }
        }
        res->final_loss = steps ? loss_sum / (double)steps : NAN;
        res->train_top1 = seen ? (double)correct / (double)seen : 0;
        char status[64];
        snprintf(status, sizeof status, "loss %.4f", res->final_loss);
        mloc_progress(ctx, "finetune", epoch + 1, cfg->epochs, status);
    }
    mloc_model *copy = NULL;
    st = fresh_copy(ctx, m, &copy);
    if (st == MLOC_OK) st = test_accuracy(ctx, copy, &h, test, B, &eval_pipe, &res->test_top1);
    mloc_model_free(copy);
done:
    memcpy(m->bn_eval, saved_bn, (size_t)m->n_modules + 1);
    free(saved_bn);
    if (L) mloc_loader_free(L);
    mloc_optim_free(opt);
    head_free(&h);
    free(feat);
    free(dfeat);
    free(z);
    free(dz);
    return st;
}

/* ---- single-unit check --------------------------------------------------------------- */

mloc_unit_finetune_config mloc_unit_finetune_config_default(void) {
    mloc_unit_finetune_config c;
    memset(&c, 0, sizeof c);
    c.steps = 50;
    c.pairs = 8;
    c.negatives = 64;
    c.lr = 1e-3;
    c.temperature = 0.5;
    c.seed = 0;
    return c;
}

/* Forward of the anchored loss, then (dz non-NULL) its gradient:
 *   u_i = z_i / n_i, n_i = max(||z_i||, 1e-12)
 *   anchor i < A = 2P, candidates C_i = {j(i)} + {A .. R-1}, s_ik = u_i.u_k / T
 *   loss_i = lse_{k in C_i} s_ik - s_i,j(i),  L = (1/A) sum_i loss_i
 *   dL/ds_ik = (p_ik - [k = j(i)]) / A,  p = softmax over C_i
 *   du_i += sum_k dL/ds_ik u_k / T,  du_k += dL/ds_ik u_i / T
 *   dz_i = (du_i - u_i (u_i . du_i)) / n_i   (n_i > 1e-12; else du_i / 1e-12) */
double mloc_anchor_ntxent_f64(double *dz, const double *z, int pairs, int negatives, int D,
                              double temperature) {
    const int A = 2 * pairs, R = A + negatives;
    double *u = malloc((size_t)R * D * sizeof *u);
    double *nrm = malloc((size_t)R * sizeof *nrm);
    double *p = malloc((size_t)(negatives + 1) * sizeof *p);
    double *du = dz ? calloc((size_t)R * D, sizeof *du) : NULL;
    double loss = NAN;
    if (!u || !nrm || !p || (dz && !du) || pairs < 1) goto done;
    for (int i = 0; i < R; i++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += z[(int64_t)i * D + d] * z[(int64_t)i * D + d];
        const double len = sqrt(s);
        nrm[i] = len > 1e-12 ? len : 1e-12;
        for (int d = 0; d < D; d++) u[(int64_t)i * D + d] = z[(int64_t)i * D + d] / nrm[i];
    }
    loss = 0;
    for (int i = 0; i < A; i++) {
        const int j = i ^ 1;
        const double *ui = u + (int64_t)i * D;
        /* p[0]: the partner, p[1 + k]: negative k (logits first) */
        double mx = -INFINITY;
        for (int k = 0; k <= negatives; k++) {
            const double *uk = u + (int64_t)(k == 0 ? j : A + k - 1) * D;
            double s = 0;
            for (int d = 0; d < D; d++) s += ui[d] * uk[d];
            p[k] = s / temperature;
            if (p[k] > mx) mx = p[k];
        }
        double sum = 0;
        for (int k = 0; k <= negatives; k++) sum += exp(p[k] - mx);
        const double lse = mx + log(sum);
        loss += lse - p[0];
        if (!dz) continue;
        for (int k = 0; k <= negatives; k++) {
            const int row = k == 0 ? j : A + k - 1;
            const double g = (exp(p[k] - lse) - (k == 0)) / ((double)A * temperature);
            double *dui = du + (int64_t)i * D, *duk = du + (int64_t)row * D;
            const double *uk = u + (int64_t)row * D;
            for (int d = 0; d < D; d++) {
                dui[d] += g * uk[d];
                duk[d] += g * ui[d];
            }
        }
    }
    loss /= A;
    if (dz)
        for (int i = 0; i < R; i++) {
            const double *ui = u + (int64_t)i * D, *dui = du + (int64_t)i * D;
            double dot = 0;
            for (int d = 0; d < D; d++) dot += ui[d] * dui[d];
            const int clamped = nrm[i] <= 1e-12;
            for (int d = 0; d < D; d++)
                dz[(int64_t)i * D + d] = clamped ? dui[d] / 1e-12 : (dui[d] - ui[d] * dot) / nrm[i];
        }
done:
    free(u);
    free(nrm);
    free(p);
    free(du);
    return loss;
}

mloc_status mloc_unit_finetune(mloc_ctx *ctx, mloc_model *m, int tap, int unit, const mloc_dataset *d,
                               int64_t point, const mloc_aug_pipeline *aug,
                               const mloc_unit_finetune_config *cfg, double *first_loss,
                               double *last_loss) {
    mloc_param_span spans[4];
    int ns;
    MLOC_TRY(mloc_apply_unit_params(ctx, m, tap, unit, spans, &ns));
    if (cfg->steps < 1 || cfg->pairs < 1 || cfg->negatives < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unit-finetune: steps %d, pairs %d, negatives %d: expected >= 1 each",
                          cfg->steps, cfg->pairs, cfg->negatives);
    if (!(cfg->lr > 0) || !(cfg->temperature > 0))
        return mloc_error(ctx, MLOC_ERR_USAGE, "unit-finetune: lr %g and temperature %g must be > 0", cfg->lr,
                          cfg->temperature);
    if (d->n < 2) return mloc_error(ctx, MLOC_ERR_USAGE, "unit-finetune: %s has %lld images, expected >= 2",
                                    d->spec ? d->spec : "the dataset", (long long)d->n);
    if (point < 0 || point >= d->n)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unit-finetune: point %lld, expected 0..%lld", (long long)point,
                          (long long)d->n - 1);
    int oh, ow;
    mloc_aug_out_size(aug, d->h, d->w, &oh, &ow);
    if (d->c != m->cfg.in_channels || oh != m->cfg.image_h || ow != m->cfg.image_w)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unit-finetune: views are %dx%dx%d, the encoder takes %dx%dx%d", d->c,
                          oh, ow, m->cfg.in_channels, m->cfg.image_h, m->cfg.image_w);

    const int P = cfg->pairs, M = cfg->negatives, A = 2 * P, R = A + M;
    const int Dout = (int)mloc_model_value_numel(m, m->output);
    const int64_t chw = (int64_t)d->c * oh * ow;
    mloc_status st = MLOC_OK;
    mloc_optim *opt = NULL;
    float *x = malloc((size_t)R * chw * sizeof *x);
    float *out = malloc((size_t)R * Dout * sizeof *out);
    double *zd = malloc((size_t)R * Dout * sizeof *zd), *dzd = malloc((size_t)R * Dout * sizeof *dzd);
    int64_t *neg = malloc((size_t)M * sizeof *neg);
    uint8_t *saved_bn = malloc((size_t)m->n_modules + 1);
    if (!x || !out || !zd || !dzd || !neg || !saved_bn) {
        free(x), free(out), free(zd), free(dzd), free(neg), free(saved_bn);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for the unit fine-tuning");
    }
    memcpy(saved_bn, m->bn_eval, (size_t)m->n_modules + 1);
    for (int i = 0; i < m->n_modules; i++) m->bn_eval[i] = 1; /* running statistics fixed */

    mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_ADAM);
    oc.weight_decay = 0; /* a decayed zero-gradient element would move */
    st = mloc_optim_create(ctx, &opt, &m->table, &oc);
    if (st != MLOC_OK) goto done;
    mloc_optim_set_trainable_all(opt, 0);
    for (int k = 0; k < ns && st == MLOC_OK; k++) st = mloc_optim_set_trainable(opt, spans[k].entry, 1);
    if (st == MLOC_OK) st = mloc_model_plan(ctx, m, R);
    if (st != MLOC_OK) goto done;

    double loss_first = 0, loss_last = 0;
    for (int s = 0; s < cfg->steps; s++) {
        /* rows 0..A-1: views 0..A-1 of the point (pairs (2p, 2p+1)); then one
         * view each of M other points drawn with replacement */
        mloc_aug_key kx = {.seed = cfg->seed, .purpose = "unit-finetune", .epoch = s, .first_view = 0};
        st = mloc_aug_batch(ctx, x, NULL, d, &point, 1, A, aug, &kx);
        if (st != MLOC_OK) goto done;
        mloc_rng r;
        mloc_rng_init_tag(&r, cfg->seed, "unit-finetune-negatives", (uint64_t)s, 0, 0);
        for (int k = 0; k < M; k++) {
            int64_t i = mloc_rng_int(&r, 0, d->n - 2);
            neg[k] = i >= point ? i + 1 : i;
        }
        mloc_aug_key kn = {.seed = cfg->seed, .purpose = "unit-finetune-negative", .epoch = s, .first_view = 0};
        st = mloc_aug_batch(ctx, x + (int64_t)A * chw, NULL, d, neg, M, 1, aug, &kn);
        if (st != MLOC_OK) goto done;

        mloc_optim_zero_grad(opt, &m->store);
        st = mloc_model_forward(ctx, m, x, R, MLOC_MODE_TRAIN, -1);
        if (st == MLOC_OK) st = mloc_model_read(ctx, m, m->output, out);
        if (st != MLOC_OK) goto done;
        for (int64_t i = 0; i < (int64_t)R * Dout; i++) zd[i] = out[i];
        const double loss = mloc_anchor_ntxent_f64(dzd, zd, P, M, Dout, cfg->temperature);
        if (!isfinite(loss)) {
            st = mloc_error(ctx, MLOC_ERR_DIVERGED, "unit-finetune: step %d: the loss is %g", s + 1, loss);
            goto done;
        }
        for (int64_t i = 0; i < (int64_t)R * Dout; i++) out[i] = (float)dzd[i];
        st = mloc_model_backward(ctx, m, m->output, out);
        if (st != MLOC_OK) goto done;
        /* keep only the unit's slices of the trainable entries' gradients */
        for (int k = 0; k < ns; k++) {
            const mloc_tensor *e = &m->table.t[spans[k].entry];
            float *g = m->store.grad + e->offset;
            memset(g, 0, (size_t)spans[k].start * sizeof *g);
            const int64_t end = spans[k].start + spans[k].count;
            memset(g + end, 0, (size_t)(e->numel - end) * sizeof *g);
        }
        st = mloc_optim_step(opt, &m->store, cfg->lr);
        if (st != MLOC_OK) goto done;
        mloc_model_params_changed(m);
        /* the loss of one step depends on its draws: average the first and
         * the last tenth of the steps */
        const int w = cfg->steps >= 10 ? cfg->steps / 10 : 1;
        if (s < w) loss_first += loss / w;
        if (s >= cfg->steps - w) loss_last += loss / w;
        char status[64];
        snprintf(status, sizeof status, "loss %.4f", loss);
        mloc_progress(ctx, "unit-finetune", s + 1, cfg->steps, status);
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "unit-finetune: interrupted at step %d", s + 1);
            goto done;
        }
    }
    if (first_loss) *first_loss = loss_first;
    if (last_loss) *last_loss = loss_last;
done:
    memcpy(m->bn_eval, saved_bn, (size_t)m->n_modules + 1);
    mloc_optim_free(opt);
    free(x);
    free(out);
    free(zd);
    free(dzd);
    free(neg);
    free(saved_bn);
    return st;
}

/* ---- the single-unit check with UnitMem before and after ------------------------------- */

static mloc_status check_scores(mloc_ctx *ctx, mloc_model *m, const mloc_view_source *src, const int64_t *points,
                                int64_t n, const int *taps, int nt, int k, int abs, mloc_unit_scores *u) {
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = k;
    uc.abs = abs;
    uc.save_mu = 0; /* the unit's tap: mu of the point */
    return mloc_unitmem_compute(ctx, u, m, src, points, n, taps, nt, &uc);
}

mloc_status mloc_unit_check(mloc_ctx *ctx, mloc_model *m, int tap, int unit, const mloc_dataset *d,
                            int64_t point, const mloc_aug_pipeline *train_aug,
                            const mloc_aug_pipeline *view_aug, const mloc_unit_finetune_config *cfg,
                            int64_t eval_points, int k, mloc_unit_check_result *res) {
    memset(res, 0, sizeof *res);
    mloc_param_span spans[4];
    int ns;
    MLOC_TRY(mloc_apply_unit_params(ctx, m, tap, unit, spans, &ns));
    if (point < 0 || point >= d->n)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unit check: point %lld, expected 0..%lld", (long long)point,
                          (long long)d->n - 1);
    if (eval_points < 2 || eval_points > d->n)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unit check: %lld evaluation points, expected 2..%lld",
                          (long long)eval_points, (long long)d->n);
    const int nt = m->n_taps - tap;
    int *taps = malloc((size_t)nt * sizeof *taps);
    int64_t *pos = malloc((size_t)d->n * sizeof *pos), *points = malloc((size_t)eval_points * sizeof *points);
    mloc_unit_scores u0, u1;
    memset(&u0, 0, sizeof u0);
    memset(&u1, 0, sizeof u1);
    mloc_status st = MLOC_OK;
    if (!taps || !pos || !points) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for the unit check");
        goto done;
    }
    for (int t = 0; t < nt; t++) {
        taps[t] = tap + t;
        if (!m->taps[tap + t].nonneg) res->abs = 1; /* signed taps (a ViT's): UnitMem of |a|, as memloc experiment */
    }
    /* the point first, then eval_points - 1 others */
    int64_t got = 0;
    st = mloc_metrics_choose(ctx, d->n - 1, eval_points - 1, cfg->seed, "unit-check", pos, &got);
    if (st != MLOC_OK) goto done;
    points[0] = point;
    for (int64_t i = 0; i < got; i++) points[1 + i] = pos[i] >= point ? pos[i] + 1 : pos[i];
    res->n_points = 1 + got;
    mloc_view_source src;
    st = mloc_view_source_dataset(ctx, &src, d, view_aug, cfg->seed, MLOC_PURPOSE_UNITMEM);
    if (st == MLOC_OK) st = check_scores(ctx, m, &src, points, res->n_points, taps, nt, k, res->abs, &u0);
    if (st == MLOC_OK)
        st = mloc_unit_finetune(ctx, m, tap, unit, d, point, train_aug, cfg, &res->first_loss, &res->last_loss);
    mloc_model *copy = NULL;
    if (st == MLOC_OK) st = fresh_copy(ctx, m, &copy);
    if (st == MLOC_OK) st = check_scores(ctx, copy, &src, points, res->n_points, taps, nt, k, res->abs, &u1);
    mloc_model_free(copy);
    if (st != MLOC_OK) goto done;

    const int U = u0.offset[1];
    res->before = u0.score[unit];
    res->after = u1.score[unit];
    res->mu_before = u0.mu[unit];
    res->mu_after = u1.mu[unit];
    res->argmax_before = u0.argmax[unit];
    res->argmax_after = u1.argmax[unit];
    res->dead_before = u0.dead[unit];
    res->dead_after = u1.dead[unit];
    double s0 = 0, s1 = 0, mx = 0;
    for (int i = 0; i < U; i++) {
        if (i == unit) continue;
        s0 += u0.score[i];
        s1 += u1.score[i];
        mx = fmax(mx, fabs(u1.score[i] - u0.score[i]));
    }
    res->same_tap_before = U > 1 ? s0 / (U - 1) : NAN;
    res->same_tap_after = U > 1 ? s1 / (U - 1) : NAN;
    res->same_tap_max_change = mx;
    s0 = s1 = mx = 0;
    for (int64_t i = U; i < u0.units; i++) {
        s0 += u0.score[i];
        s1 += u1.score[i];
        mx = fmax(mx, fabs(u1.score[i] - u0.score[i]));
    }
    res->later_units = u0.units - U;
    res->later_before = res->later_units ? s0 / (double)res->later_units : NAN;
    res->later_after = res->later_units ? s1 / (double)res->later_units : NAN;
    res->later_max_change = mx;
done:
    mloc_unit_scores_free(&u0);
    mloc_unit_scores_free(&u1);
    free(taps);
    free(pos);
    free(points);
    return st;
}
