/* The experiment's metrics step: every metric and analysis of SPEC 2-4 and 7
 * on f and g, written to DIR/metrics by the metrics library's writers. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/train.h"

void mloc_experiment_state_free(exp_state *e) {
    mloc_sslmem_result_free(&e->ssl);
    mloc_layermem_table_free(&e->table);
    mloc_unit_scores_free(&e->unit);
    mloc_unit_scores_free(&e->unit_top);
    mloc_unit_scores_free(&e->unit_least);
    free(e->ttests);
    free(e->ctl_taps);
    mloc_sslmem_result_free(&e->ctl_shared);
    mloc_sslmem_result_free(&e->ctl_indep);
    free(e->pairs);
    free(e->mumax);
    json_decref(e->summary);
    e->ttests = NULL;
    e->ctl_taps = NULL;
    e->pairs = NULL;
    e->mumax = NULL;
    e->summary = NULL;
}

static void describe(char *out, size_t n, const char *preset, const mloc_aug_pipeline *p) {
    snprintf(out, n,
             "%s: RandomResizedCrop(%d, scale %.2g-%.2g)%s, flip %.2g, ColorJitter(%.2g, %.2g, %.2g, %.2g) p %.2g, "
             "gray %.2g, Normalize(%.4g, %.4g)%s",
             preset, p->out_h, p->scale[0], p->scale[1], p->crop ? "" : " off", p->flip_p * p->flip_apply_p,
             p->brightness[1] - 1, p->contrast[1] - 1, p->saturation[1] - 1, p->hue[1], p->jitter_p, p->gray_p,
             p->mean[0], p->std[0], p->normalize_first ? ", normalize first (reference code order)" : "");
}

/* SSLMem of a seeded choice of at most `want` points of a split set, at the
 * taps `taps` (NULL: all): C_eval, and the control's shared and independent
 * points (SPEC 1: the same score on points f and g both trained on, and on
 * points only g trained on). */
static mloc_status score_set(exp_state *e, mloc_model *f, mloc_model *g, const mloc_view_source *src,
                             const mloc_sslmem_config *sc, const int64_t *set, int64_t n_set, int64_t want,
                             const char *tag, const int *taps, int n_taps, mloc_sslmem_result *r) {
    if (n_set == 0) return MLOC_OK; /* no such set: r stays empty (n = 0) */
    int64_t *pos = malloc((size_t)n_set * sizeof *pos), n;
    if (!pos) return mloc_error(e->ctx, MLOC_ERR_NOMEM, "experiment: out of memory");
    mloc_status st = mloc_metrics_choose(e->ctx, n_set, want, e->ex->metric_seed, tag, pos, &n);
    for (int64_t i = 0; st == MLOC_OK && i < n; i++) pos[i] = set[pos[i]];
    if (st == MLOC_OK) st = mloc_sslmem_compute(e->ctx, r, f, g, src, pos, n, taps, n_taps, sc);
    free(pos);
    return st;
}

/* A column of an (n, T) score matrix. */
static double *column(const mloc_sslmem_result *r, int l) {
    double *c = malloc((size_t)(r->n ? r->n : 1) * sizeof *c);
    for (int64_t i = 0; c && i < r->n; i++) c[i] = r->score[i * r->n_taps + l];
    return c;
}

/* The control's tests, at the output and per tap: candidates > shared,
 * shared > independent (output only), candidates > independent. */
static mloc_status control_tests(exp_state *e) {
    const mloc_sslmem_result *c = &e->ssl, *s = &e->ctl_shared, *in = &e->ctl_indep;
    e->ctl_test = mloc_stats_ttest_ind(c->out_score, c->n, s->out_score, s->n, 0, MLOC_ALT_GREATER);
    e->ctl_indep_test = mloc_stats_ttest_ind(s->out_score, s->n, in->out_score, in->n, 0, MLOC_ALT_GREATER);
    e->ctl_ci_test = mloc_stats_ttest_ind(c->out_score, c->n, in->out_score, in->n, 0, MLOC_ALT_GREATER);
    const int T = c->n_taps;
    e->ctl_taps = calloc((size_t)T, sizeof *e->ctl_taps);
    if (!e->ctl_taps) return mloc_error(e->ctx, MLOC_ERR_NOMEM, "experiment: out of memory");
    if ((s->n && s->n_taps != T) || (in->n && in->n_taps != T))
        return mloc_error(e->ctx, MLOC_ERR_INTERNAL, "experiment: the control has other taps than C_eval");
    for (int l = 0; l < T; l++) {
        double *a = column(c, l), *b = column(s, l), *d = column(in, l);
        if (!a || !b || !d) {
            free(a), free(b), free(d);
            return mloc_error(e->ctx, MLOC_ERR_NOMEM, "experiment: out of memory");
        }
        ctl_tap *ct = &e->ctl_taps[l];
        ct->shared = ct->indep = NAN;
        ct->test = ct->test_ci = (mloc_ttest){NAN, NAN, NAN};
        ct->cand = mloc_stats_mean(a, c->n);
        if (s->n) {
            ct->shared = mloc_stats_mean(b, s->n);
            ct->test = mloc_stats_ttest_ind(a, c->n, b, s->n, 0, MLOC_ALT_GREATER);
        }
        if (in->n) {
            ct->indep = mloc_stats_mean(d, in->n);
            ct->test_ci = mloc_stats_ttest_ind(a, c->n, d, in->n, 0, MLOC_ALT_GREATER);
        }
        free(a), free(b), free(d);
    }
    return MLOC_OK;
}

/* A control set's scores at every tap, written as `memloc layermem` writes
 * them for the same points (its table too: LayerMem of these points). */
static mloc_status control_write(exp_state *e, const char *dir, const mloc_sslmem_result *r,
                                 const mloc_layermem_config *lc, const mloc_metric_run *run) {
    if (!r->n) return MLOC_OK;
    mloc_layermem_table t;
    mloc_status st = mloc_layermem_table_make(e->ctx, &t, r, lc, NULL, 0);
    if (st == MLOC_OK) st = mloc_layermem_write(e->ctx, dir, r, &t, run);
    mloc_layermem_table_free(&t);
    return st;
}

/* UnitMem of m over `points` with the unit pipeline's source. */
static mloc_status unitmem(exp_state *e, mloc_unit_scores *u, mloc_model *m, const mloc_view_source *src,
                           const int64_t *points, int64_t n) {
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = e->ex->unit_k;
    uc.rest = e->ex->rest == 0 ? MLOC_REST_MEAN : MLOC_REST_MEDIAN;
    uc.batch = e->ex->metric_batch;
    /* signed taps (ViT residual streams, GELU outputs): a unit's activation is
     * the mean of |a|, recorded in the summary's variants */
    for (int t = 0; t < m->n_taps; t++)
        if (!m->taps[t].nonneg) uc.abs = 1;
    e->unit_abs = uc.abs;
    return mloc_unitmem_compute(e->ctx, u, m, src, points, n, NULL, 0, &uc);
}

mloc_status mloc_experiment_metrics(exp_state *e) {
    mloc_ctx *ctx = e->ctx;
    const mloc_experiment_config *ex = e->ex;
    mloc_model *f = NULL, *g = NULL;
    int64_t *top = NULL, *least = NULL;
    char mdir[4200], sub[4300];
    snprintf(mdir, sizeof mdir, "%s/metrics", e->dir);
    mloc_status st = mloc_mkdirs(ctx, mdir);
    if (st != MLOC_OK) return st;
    mloc_dataset_digest(&e->data, e->data_digest);

    st = mloc_model_open(ctx, &f, e->f_path, MLOC_HEAD_NONE);
    if (st == MLOC_OK) st = mloc_model_open(ctx, &g, e->g_path, MLOC_HEAD_NONE);
    if (st == MLOC_OK) st = mloc_metrics_check_pair(ctx, f, g);
    if (st != MLOC_OK) goto done;

    /* views: the training pipeline for SSLMem (SPEC 2), the UnitMem preset */
    mloc_aug_pipeline aug, unit_aug;
    static const char *const presets[] = {"none", "simclr", "unitmem"};
    st = mloc_train_aug_pipeline(ctx, e->train, -1, &aug);
    /* unit_aug 0 = the training pipeline, else a preset index + 1 */
    const int unit_preset = ex->unit_aug == 0 ? e->train->aug : ex->unit_aug - 1;
    if (st == MLOC_OK) st = mloc_train_aug_pipeline(ctx, e->train, unit_preset, &unit_aug);
    if (st != MLOC_OK) goto done;
    describe(e->aug_desc, sizeof e->aug_desc, presets[e->train->aug], &aug);
    describe(e->unit_aug_desc, sizeof e->unit_aug_desc, presets[unit_preset], &unit_aug);
    mloc_view_source src, usrc;
    st = mloc_view_source_dataset(ctx, &src, &e->data, &aug, ex->metric_seed, MLOC_PURPOSE_SSLMEM);
    if (st == MLOC_OK)
        st = mloc_view_source_dataset(ctx, &usrc, &e->data, &unit_aug, ex->metric_seed, MLOC_PURPOSE_UNITMEM);
    if (st != MLOC_OK) goto done;

    /* SSLMem per tap of C_eval (a seeded choice of candidates), LayerMem table */
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    sc.k = ex->k;
    sc.views = ex->views == 0 ? MLOC_VIEWS_CLEAN : MLOC_VIEWS_PAIR;
    sc.batch = ex->metric_batch;
    st = score_set(e, f, g, &src, &sc, e->split.candidate, e->split.n_candidate, ex->eval, "experiment-eval", NULL,
                   0, &e->ssl);
    if (st != MLOC_OK) goto done;
    const int64_t n = e->ssl.n;
    mloc_layermem_config lc = mloc_layermem_config_default();
    lc.norm = (mloc_score_norm)ex->score_norm;
    lc.n_random = ex->random;
    lc.top = ex->top;
    lc.seed = ex->metric_seed;
    st = mloc_layermem_table_make(ctx, &e->table, &e->ssl, &lc, NULL, 0);
    if (st != MLOC_OK) goto done;
    e->out_test = mloc_stats_ttest_1samp(e->ssl.out_score, e->ssl.n, 0.0, MLOC_ALT_GREATER);
    /* the control: as many shared and independent points, every tap */
    st = score_set(e, f, g, &src, &sc, e->split.shared, e->split.n_shared, n, "experiment-control-shared", NULL, 0,
                   &e->ctl_shared);
    if (st == MLOC_OK)
        st = score_set(e, f, g, &src, &sc, e->split.independent, e->split.n_independent, n,
                       "experiment-control-independent", NULL, 0, &e->ctl_indep);
    if (st == MLOC_OK) st = control_tests(e);
    if (st != MLOC_OK) goto done;
    mloc_metric_run run = {.command = "experiment", .f_path = e->f_path, .g_path = e->g_path,
                           .data_spec = e->train->data, .data_digest = e->data_digest,
                           .aug_preset = presets[e->train->aug], .aug = &aug, .aug_seed = ex->metric_seed,
                           .purpose = MLOC_PURPOSE_SSLMEM, .seed = ex->metric_seed,
                           .candidates = e->split.n_candidate};
    st = mloc_layermem_write(ctx, mdir, &e->ssl, &e->table, &run);
    /* the control's points and scores, as `memloc layermem` writes them */
    mloc_metric_run crun = run;
    crun.candidates = e->split.n_shared;
    snprintf(sub, sizeof sub, "%s/control_shared", mdir);
    if (st == MLOC_OK) st = control_write(e, sub, &e->ctl_shared, &lc, &crun);
    crun.candidates = e->split.n_independent;
    snprintf(sub, sizeof sub, "%s/control_independent", mdir);
    if (st == MLOC_OK) st = control_write(e, sub, &e->ctl_indep, &lc, &crun);
    if (st != MLOC_OK) goto done;

    /* UnitMem of f over C_eval */
    st = unitmem(e, &e->unit, f, &usrc, e->ssl.points, n);
    if (st != MLOC_OK) goto done;
    mloc_metric_run urun = run;
    urun.g_path = NULL;
    urun.aug_preset = presets[unit_preset];
    urun.aug = &unit_aug;
    urun.purpose = MLOC_PURPOSE_UNITMEM;
    st = mloc_unit_scores_write(ctx, mdir, "unitmem", &e->unit, &urun);
    if (st != MLOC_OK) goto done;

    /* Top-50 vs Least-50 UnitMem t-tests (SPEC 7) */
    int64_t nt = e->table.n_top;
    top = malloc((size_t)nt * sizeof *top);
    least = malloc((size_t)nt * sizeof *least);
    e->ttests = calloc((size_t)e->unit.n_taps, sizeof *e->ttests);
    if (!top || !least || !e->ttests) goto nomem;
    for (int64_t i = 0; i < nt; i++) {
        top[i] = e->ssl.points[e->table.top_pos[i]];
        least[i] = e->ssl.points[e->table.least_pos[i]];
    }
    st = unitmem(e, &e->unit_top, f, &usrc, top, nt);
    if (st == MLOC_OK) st = unitmem(e, &e->unit_least, f, &usrc, least, nt);
    if (st == MLOC_OK) st = mloc_metrics_ttest(ctx, &e->unit_top, &e->unit_least, ex->equal_var, e->ttests);
    if (st == MLOC_OK) st = mloc_ttest_write(ctx, mdir, &e->unit_top, &e->unit_least, ex->equal_var, e->ttests);
    snprintf(sub, sizeof sub, "%s/ttest_top", mdir);
    if (st == MLOC_OK) st = mloc_unit_scores_write(ctx, sub, "unitmem", &e->unit_top, &urun);
    snprintf(sub, sizeof sub, "%s/ttest_least", mdir);
    if (st == MLOC_OK) st = mloc_unit_scores_write(ctx, sub, "unitmem", &e->unit_least, &urun);
    if (st != MLOC_OK) goto done;

    /* consistency across taps */
    const int T = e->ssl.n_taps;
    e->n_pairs = T * (T - 1) / 2;
    e->pairs = calloc((size_t)(e->n_pairs ? e->n_pairs : 1), sizeof *e->pairs);
    if (!e->pairs) goto nomem;
    st = mloc_metrics_consistency(ctx, &e->ssl, ex->consistency_k, e->pairs);
    if (st == MLOC_OK) st = mloc_consistency_write(ctx, mdir, &e->ssl, ex->consistency_k, e->pairs);
    if (st != MLOC_OK) goto done;

    /* mu_max alignment at the last tap */
    st = mloc_metrics_mumax(ctx, &e->unit, e->unit.n_taps - 1, e->ssl.points, e->ssl.out_score, e->ssl.n,
                            &e->mumax, &e->n_mumax);
    if (st == MLOC_OK)
        st = mloc_mumax_write(ctx, mdir, &e->unit, e->unit.n_taps - 1, e->mumax, e->n_mumax, e->ssl.n);
    goto done;
nomem:
    st = mloc_error(ctx, MLOC_ERR_NOMEM, "experiment: out of memory");
done:
    free(top);
    free(least);
    mloc_model_free(f);
    mloc_model_free(g);
    return st;
}
