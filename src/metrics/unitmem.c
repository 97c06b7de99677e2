/* UnitMem (SPEC.md section 4; Wang et al., NeurIPS 2024, section 3, eq. 2).
 *
 * Definition. A unit u is an output channel of a tap; its activation on one
 * view is the mean over the spatial positions of that channel (a neuron of
 * a fully connected value is its own activation; a feature of a ViT's token
 * tap, MLOC_UNIT_TOKEN_MEAN, the mean over the tokens). Over K views a_k of a
 * point x, mu_u(x) = (1/K) sum_k act_u(a_k(x)). Over the evaluated points D:
 *   mu_max,u  = max_x mu_u(x), attained at x*_u (the first such point),
 *   mu_rest,u = mean (the paper; default) or median (reference code) of
 *               mu_u(x) over x in D, x != x*_u,
 *   UnitMem_D(u) = (mu_max,u - mu_rest,u) / (mu_max,u + mu_rest,u) in [0, 1].
 * A dead unit (mu_max = 0) has UnitMem 0 and is counted. Activations must be
 * non-negative (post-ReLU taps); a negative one is an error unless `abs`
 * asks for magnitudes, act_u = mean |a| over positions.
 *
 * With the mean, the statistic streams: per unit only max, argmax and the
 * running sum are kept, mu_rest = (sum - max) / (n - 1); memory is O(units)
 * whatever the number of points. The median needs every mu_u(x), so the
 * points x units matrix is held.
 *
 * Deviations from the reference code (UnitMem.py, UnitMem_mu_max.py):
 *   - the default rest statistic is the mean (the paper), --rest median the
 *     reference's (the median of the n-1 values other than the maximum, as
 *     np.median(np.sort(mu)[:-1]));
 *   - the encoder runs in eval mode; the reference never calls .eval(), so
 *     its BatchNorm normalises each single-image batch with its own
 *     statistics;
 *   - the default augmentation is the training pipeline (SPEC.md 2, preset
 *     simclr); --aug unitmem gives UnitMem.py's ColorJitter(0.9, 0.9, 0.9,
 *     0.1) p 0.9, flip inside RandomApply(p 0.5), gray 0.1;
 *   - images are augmented in [0, 1], then normalised (the reference
 *     normalises first; --compat-normalize-first);
 *   - UnitMem_mu_max.py never resets its list of activations between images
 *     (so later images average over all earlier ones); memloc averages each
 *     point's own K views;
 *   - many points share one forward pass, draws come from streams keyed by
 *     (seed, "unitmem", point, view), sums are in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/stats.h"

mloc_unit_config mloc_unitmem_config_default(void) {
    mloc_unit_config c;
    memset(&c, 0, sizeof c);
    c.k = 10;
    c.rest = MLOC_REST_MEAN;
    c.abs = 0;
    c.batch = MLOC_METRICS_BATCH;
    c.save_mu = -1;
    c.augment = 1;
    return c;
}

void mloc_unit_scores_free(mloc_unit_scores *u) {
    if (!u) return;
    free(u->tap_names);
    free(u->offset);
    free(u->score);
    free(u->mu_max);
    free(u->mu_rest);
    free(u->argmax);
    free(u->dead);
    free(u->points);
    free(u->class_count);
    free(u->mu);
    memset(u, 0, sizeof *u);
    u->mu_tap = -1;
}

mloc_status mloc_unit_scores_alloc(mloc_ctx *ctx, mloc_unit_scores *u, const mloc_model *m,
                                   const int *tl, int T, int64_t n) {
    memset(u, 0, sizeof *u);
    u->mu_tap = -1;
    u->tap_names = calloc((size_t)T, sizeof *u->tap_names);
    u->offset = malloc(((size_t)T + 1) * sizeof(int));
    if (!u->tap_names || !u->offset) goto oom;
    u->offset[0] = 0;
    for (int t = 0; t < T; t++) {
        snprintf(u->tap_names[t], sizeof u->tap_names[t], "%s", m->taps[tl[t]].name);
        u->offset[t + 1] = u->offset[t] + m->taps[tl[t]].units;
    }
    u->n_taps = T;
    u->units = u->offset[T];
    const size_t U = (size_t)u->units;
    u->score = malloc(U * sizeof(double));
    u->mu_max = malloc(U * sizeof(double));
    u->mu_rest = malloc(U * sizeof(double));
    u->argmax = malloc(U * sizeof(int64_t));
    u->dead = malloc(U);
    u->points = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!u->score || !u->mu_max || !u->mu_rest || !u->argmax || !u->dead || !u->points) goto oom;
    u->n = n;
    return MLOC_OK;
oom:
    mloc_unit_scores_free(u);
    return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for the unit scores");
}

/* ---- the per-unit statistic --------------------------------------------------- */

/* Streaming state of U units: max, argmax (an id) and the sum of mu over the
 * rows seen, in row order. */
typedef struct {
    int64_t U, rows;
    double *max, *sum;
    int64_t *argmax;
} unit_acc;

static int acc_init(unit_acc *a, int64_t U) {
    a->U = U;
    a->rows = 0;
    a->max = malloc((size_t)U * sizeof(double));
    a->sum = calloc((size_t)U, sizeof(double));
    a->argmax = malloc((size_t)U * sizeof(int64_t));
    if (!a->max || !a->sum || !a->argmax) return 0;
    for (int64_t u = 0; u < U; u++) {
        a->max[u] = -INFINITY;
        a->argmax[u] = -1;
    }
    return 1;
}

static void acc_free(unit_acc *a) {
    free(a->max);
    free(a->sum);
    free(a->argmax);
}

/* Add rows mu (np, U) belonging to ids[0..np), in order. Each unit is one
 * thread's sequential loop over the rows: the same result for any thread
 * count or chunking. */
static void acc_add(unit_acc *a, const double *mu, int64_t np, const int64_t *ids) {
#pragma omp parallel for schedule(static) if (np * a->U > MLOC_METRICS_PAR_MIN)
    for (int64_t u = 0; u < a->U; u++) {
        double mx = a->max[u], s = a->sum[u];
        int64_t am = a->argmax[u];
        for (int64_t i = 0; i < np; i++) {
            double v = mu[i * a->U + u];
            if (v > mx) {
                mx = v;
                am = ids[i];
            }
            s += v;
        }
        a->max[u] = mx;
        a->sum[u] = s;
        a->argmax[u] = am;
    }
    a->rows += np;
}

/* (max - rest) / (max + rest), 0 for a dead unit */
static double ratio(double mx, double rest, uint8_t *dead) {
    *dead = !(mx > 0);
    if (*dead) return 0;
    return (mx - rest) / (mx + rest);
}

/* Finish from the accumulator: mean rest, or median rest from the matrix
 * all (rows, U) of the rows added, in order. */
static mloc_status acc_finish(mloc_ctx *ctx, const unit_acc *a, mloc_rest_stat rest,
                              const double *all, double *score, double *mu_max,
                              double *mu_rest, int64_t *argmax, uint8_t *dead) {
    const int64_t n = a->rows;
    double *col = NULL;
    if (rest == MLOC_REST_MEDIAN) {
        col = malloc((size_t)n * sizeof(double));
        if (!col) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for a median over %lld points",
                                    (long long)n);
    }
    for (int64_t u = 0; u < a->U; u++) {
        double mx = a->max[u], r;
        if (rest == MLOC_REST_MEDIAN) {
            /* the other points: every row but the first one attaining the max */
            int64_t k = 0, skipped = 0;
            for (int64_t i = 0; i < n; i++) {
                double v = all[i * a->U + u];
                if (!skipped && v == mx) {
                    skipped = 1;
                    continue;
                }
                col[k++] = v;
            }
            mloc_status st = mloc_stats_median(ctx, col, k, &r);
            if (st != MLOC_OK) {
                free(col);
                return st;
            }
        } else {
            r = (a->sum[u] - mx) / (double)(n - 1);
        }
        mu_max[u] = mx;
        mu_rest[u] = r;
        argmax[u] = a->argmax[u];
        score[u] = ratio(mx, r, &dead[u]);
    }
    free(col);
    return MLOC_OK;
}

mloc_status mloc_unitmem_from_mu(mloc_ctx *ctx, const double *mu, int64_t n, int64_t U,
                                 const int64_t *ids, mloc_rest_stat rest, double *score,
                                 double *mu_max, double *mu_rest, int64_t *argmax,
                                 uint8_t *dead) {
    if (n < 2) return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: %lld points, expected at least 2", (long long)n);
    if (rest != MLOC_REST_MEAN && rest != MLOC_REST_MEDIAN)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: rest statistic %d, expected mean or median", (int)rest);
    for (int64_t i = 0; i < n * U; i++)
        if (mu[i] < 0 || isnan(mu[i]))
            return mloc_error(ctx, MLOC_ERR_DATA, "unitmem: unit %lld: mu %g on point %lld; UnitMem needs "
                              "non-negative activations", (long long)(i % U), mu[i],
                              (long long)(ids ? ids[i / U] : i / U));
    mloc_status st = MLOC_OK;
    int64_t *seq = NULL;
    if (!ids) {
        seq = malloc((size_t)n * sizeof *seq);
        if (!seq) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < n; i++) seq[i] = i;
        ids = seq;
    }
    unit_acc a;
    if (!acc_init(&a, U)) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for %lld units", (long long)U);
    } else {
        acc_add(&a, mu, n, ids);
        st = acc_finish(ctx, &a, rest, mu, score, mu_max, mu_rest, argmax, dead);
    }
    acc_free(&a);
    free(seq);
    return st;
}

/* ---- unit activations over views ------------------------------------------------ */

mloc_status mloc_metrics_unit_means(mloc_ctx *ctx, const char *what, mloc_model *m,
                                    const mloc_view_source *src, const int64_t *points,
                                    int64_t n, const int *tl, int T, const int *offset,
                                    int views, int clean, int abs, int batch,
                                    mloc_unit_sink_fn sink, void *user, size_t *work_bytes) {
    const int V = clean ? 1 : views;
    const int P = mloc_metrics_chunk_points(batch, V);
    const int64_t P_eff = P < n ? P : n;
    const int B = (int)(P_eff * V);
    const int64_t per = (int64_t)src->c * src->h * src->w;
    const int64_t Utot = offset[T];
    int64_t maxD = 0, maxU = 0;
    for (int t = 0; t < T; t++) {
        int64_t D = mloc_model_value_numel(m, m->taps[tl[t]].value);
        if (D > maxD) maxD = D;
        if (m->taps[tl[t]].units > maxU) maxU = m->taps[tl[t]].units;
    }
    const int upto = m->taps[tl[T - 1]].value; /* taps are in forward order */
    mloc_status st = MLOC_OK;
    size_t bx = (size_t)B * (size_t)per * sizeof(float), by = (size_t)B * (size_t)maxD * sizeof(float);
    size_t bact = (size_t)B * (size_t)maxU * sizeof(double), bmu = (size_t)P_eff * (size_t)Utot * sizeof(double);
    float *x = mloc_alloc(ctx, bx), *y = mloc_alloc(ctx, by);
    double *act = mloc_alloc(ctx, bact), *mu = mloc_alloc(ctx, bmu);
    if (work_bytes) *work_bytes = bx + by + bact + bmu;
    if (!x || !y || !act || !mu) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory for a forward batch of %d views", what, B);
        goto done;
    }
    st = mloc_model_plan(ctx, m, B);
    if (st != MLOC_OK) goto done;
    mloc_progress(ctx, what, 0, n, "");
    for (int64_t p0 = 0; p0 < n; p0 += P_eff) {
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "%s: interrupted after %lld of %lld points", what,
                            (long long)p0, (long long)n);
            goto done;
        }
        const int64_t np = n - p0 < P_eff ? n - p0 : P_eff;
        const int rows = (int)(np * V);
        st = clean ? src->fill(src, ctx, x, points + p0, np, MLOC_VIEW_CLEAN, 1)
                   : src->fill(src, ctx, x, points + p0, np, 0, V);
        if (st == MLOC_OK) st = mloc_model_forward(ctx, m, x, rows, MLOC_MODE_EVAL, upto);
        if (st != MLOC_OK) goto done;
        for (int t = 0; t < T; t++) {
            const mloc_tap *tap = &m->taps[tl[t]];
            const int U = tap->units;
            const int64_t D = mloc_model_value_numel(m, tap->value);
            st = mloc_model_read(ctx, m, tap->value, y);
            if (st != MLOC_OK) goto done;
            int64_t neg_img;
            int neg_unit;
            float neg_val;
            /* y is (rows, U, D/U): the spatial mean of every channel; or, for a
             * token tap (ViT), (rows, D/U, U): the mean over the tokens */
            if (tap->unit_kind == MLOC_UNIT_TOKEN_MEAN)
                mloc_metrics_token_mean(act, y, rows, (int)(D / U), U, abs, &neg_img, &neg_unit, &neg_val);
            else
                mloc_metrics_spatial_mean(act, y, rows, U, D / U, abs, &neg_img, &neg_unit, &neg_val);
            if (neg_img >= 0) {
                st = mloc_error(ctx, MLOC_ERR_DATA,
                                "%s: tap '%s' unit %d: negative activation %g on point %lld (view %lld); "
                                "the ratio needs non-negative activations (use abs, --abs, for signed taps)",
                                what, tap->name, neg_unit, (double)neg_val,
                                (long long)points[p0 + neg_img % np],
                                clean ? -1LL : (long long)(neg_img / np));
                goto done;
            }
            /* mu (np, Utot): the mean over the views of each point, in view order */
#pragma omp parallel for schedule(static) if ((int64_t)rows * U > MLOC_METRICS_PAR_MIN)
            for (int64_t i = 0; i < np; i++)
                for (int u = 0; u < U; u++) {
                    double s = 0;
                    for (int v = 0; v < V; v++) s += act[((int64_t)v * np + i) * U + u];
                    mu[i * Utot + offset[t] + u] = s / V;
                }
        }
        st = sink(user, ctx, p0, np, mu);
        if (st != MLOC_OK) goto done;
        mloc_progress(ctx, what, p0 + np, n, "");
    }
done:
    mloc_free(x);
    mloc_free(y);
    mloc_free(act);
    mloc_free(mu);
    return st;
}

/* ---- UnitMem ------------------------------------------------------------------------ */

typedef struct {
    unit_acc acc;
    const int64_t *points;
    double *all;         /* (n, U) for the median, else NULL */
    double *save;        /* (n, U_tap) for save_mu, else NULL */
    int save_off, save_units;
    int64_t U;
} unitmem_state;

static mloc_status unitmem_sink(void *user, mloc_ctx *ctx, int64_t p0, int64_t np,
                                const double *mu) {
    (void)ctx;
    unitmem_state *s = user;
    acc_add(&s->acc, mu, np, s->points + p0);
    if (s->all) memcpy(s->all + p0 * s->U, mu, (size_t)(np * s->U) * sizeof(double));
    if (s->save)
        for (int64_t i = 0; i < np; i++)
            memcpy(s->save + (p0 + i) * s->save_units, mu + i * s->U + s->save_off,
                   (size_t)s->save_units * sizeof(double));
    return MLOC_OK;
}

mloc_status mloc_unitmem_compute(mloc_ctx *ctx, mloc_unit_scores *res, mloc_model *m,
                                 const mloc_view_source *src, const int64_t *points, int64_t n,
                                 const int *taps, int n_taps, const mloc_unit_config *cfg) {
    memset(res, 0, sizeof *res);
    res->mu_tap = -1;
    mloc_unit_config defaults = mloc_unitmem_config_default();
    if (!cfg) cfg = &defaults;
    if (cfg->k < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: K = %d views, expected >= 1", cfg->k);
    if (cfg->batch < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: batch %d, expected >= 1", cfg->batch);
    if (cfg->rest != MLOC_REST_MEAN && cfg->rest != MLOC_REST_MEDIAN)
        return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: rest statistic %d, expected mean or median", (int)cfg->rest);
    if (n < 2) return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: %lld points, expected at least 2", (long long)n);
    MLOC_TRY(mloc_metrics_check_source(ctx, "unitmem", m, src, points, n));
    int *tl = NULL, T = 0;
    MLOC_TRY(mloc_metrics_taps_copy(ctx, m, taps, n_taps, &tl, &T));
    if (cfg->save_mu >= T) {
        free(tl);
        return mloc_error(ctx, MLOC_ERR_USAGE, "unitmem: save_mu %d, expected -1 or 0..%d", cfg->save_mu, T - 1);
    }
    mloc_status st = mloc_unit_scores_alloc(ctx, res, m, tl, T, n);
    if (st != MLOC_OK) {
        free(tl);
        return st;
    }
    unitmem_state s;
    memset(&s, 0, sizeof s);
    s.points = points;
    s.U = res->units;
    size_t extra = 0;
    if (!acc_init(&s.acc, s.U)) goto oom;
    extra += (size_t)s.U * (2 * sizeof(double) + sizeof(int64_t));
    if (cfg->rest == MLOC_REST_MEDIAN) {
        s.all = malloc((size_t)n * (size_t)s.U * sizeof(double));
        if (!s.all) goto oom;
        extra += (size_t)n * (size_t)s.U * sizeof(double);
    }
    if (cfg->save_mu >= 0) {
        s.save_off = res->offset[cfg->save_mu];
        s.save_units = res->offset[cfg->save_mu + 1] - s.save_off;
        res->mu = malloc((size_t)n * (size_t)s.save_units * sizeof(double));
        if (!res->mu) goto oom;
        s.save = res->mu;
        res->mu_tap = cfg->save_mu;
    }
    size_t work = 0;
    st = mloc_metrics_unit_means(ctx, "unitmem", m, src, points, n, tl, T, res->offset, cfg->k, 0,
                                 cfg->abs, cfg->batch, unitmem_sink, &s, &work);
    if (st == MLOC_OK)
        st = acc_finish(ctx, &s.acc, cfg->rest, s.all, res->score, res->mu_max, res->mu_rest,
                        res->argmax, res->dead);
    if (st != MLOC_OK) goto fail;
    memcpy(res->points, points, (size_t)n * sizeof(int64_t));
    res->work_bytes = work + extra;
    res->cfg = *cfg;
    acc_free(&s.acc);
    free(s.all);
    free(tl);
    return MLOC_OK;
oom:
    st = mloc_error(ctx, MLOC_ERR_NOMEM, "unitmem: out of memory for %lld units%s", (long long)s.U,
                    cfg->rest == MLOC_REST_MEDIAN ? " x points (the median keeps the matrix)" : "");
fail:
    acc_free(&s.acc);
    free(s.all);
    free(tl);
    mloc_unit_scores_free(res);
    return st;
}

/* ---- summaries ------------------------------------------------------------------------ */

mloc_status mloc_unit_summarize(mloc_ctx *ctx, const mloc_unit_scores *u, int tap,
                                mloc_unit_summary *s) {
    memset(s, 0, sizeof *s);
    if (tap < 0 || tap >= u->n_taps)
        return mloc_error(ctx, MLOC_ERR_USAGE, "summary: tap %d, expected 0..%d", tap, u->n_taps - 1);
    const int64_t a = u->offset[tap], U = u->offset[tap + 1] - a;
    const double *x = u->score + a;
    static const double q[5] = {0, 0.25, 0.5, 0.75, 1};
    s->units = U;
    s->mean = mloc_stats_mean(x, U);
    MLOC_TRY(mloc_stats_quantiles(ctx, x, U, q, 5, s->q));
    int64_t gt5 = 0, gt9 = 0;
    for (int64_t i = 0; i < U; i++) {
        gt5 += x[i] > 0.5;
        gt9 += x[i] > 0.9;
        s->dead += u->dead[a + i];
    }
    s->share_05 = U ? (double)gt5 / U : NAN;
    s->share_09 = U ? (double)gt9 / U : NAN;
    return MLOC_OK;
}
