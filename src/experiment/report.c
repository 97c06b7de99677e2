/* The experiment's summary.json and report.html. Every number in the report
 * comes from the summary, and every statement about the paper's findings is
 * computed from the numbers here, never written by hand. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/io.h"
#include "memloc/report.h"

static json_t *real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* ---- training curves from a run's log.jsonl -------------------------------- */

typedef struct {
    int n;
    double *loss, *knn;
} curve;

static void curve_read(const char *run_dir, curve *c) {
    memset(c, 0, sizeof *c);
    char path[4300];
    snprintf(path, sizeof path, "%s/log.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (o && !strcmp(json_string_value(json_object_get(o, "type")) ? json_string_value(json_object_get(o, "type")) : "", "epoch")) {
            double *l = realloc(c->loss, (size_t)(c->n + 1) * sizeof *l);
            double *k = realloc(c->knn, (size_t)(c->n + 1) * sizeof *k);
            if (l) c->loss = l;
            if (k) c->knn = k;
            if (l && k) {
                json_t *kv = json_object_get(o, "knn_acc");
                c->loss[c->n] = json_number_value(json_object_get(o, "loss"));
                c->knn[c->n] = kv ? json_number_value(kv) : NAN;
                c->n++;
            }
        }
        json_decref(o);
    }
    fclose(f);
}

static void curve_free(curve *c) {
    free(c->loss);
    free(c->knn);
}

static json_t *curve_json(const curve *c) {
    json_t *o = json_object(), *l = json_array(), *k = json_array();
    for (int i = 0; i < c->n; i++) {
        json_array_append_new(l, real(c->loss[i]));
        json_array_append_new(k, real(c->knn[i]));
    }
    json_object_set_new(o, "loss", l);
    json_object_set_new(o, "knn_acc", k);
    json_object_set_new(o, "epochs", json_integer(c->n));
    return o;
}

/* ---- a ViT's attention and MLP parts, block by block (the paper's ViT table) ---- */

/* Block N of a ViT adds attention (tap blocks.N.attn = x + attn(norm1(x))) and
 * then its MLP (tap blocks.N = that + mlp(norm2(.))). What each part adds to
 * LayerMem is the step across it: attention from the last block output
 * evaluated before it (blocks.N-1; for the first block, from 0), the MLP from
 * blocks.N.attn to blocks.N. These are not the ΔLayerMem column, which with
 * every tap evaluated steps through mlp.act. */
typedef struct {
    int block;
    double attn, attn_delta, mlp, mlp_delta;
} vit_row;

static int tap_index(const exp_state *e, const char *name) {
    for (int l = 0; l < e->table.n_taps; l++)
        if (!strcmp(e->ssl.tap_names[l], name)) return l;
    return -1;
}

static int vit_blocks(const exp_state *e, vit_row *rows, int max) {
    const double *lm = e->table.random;
    int n = 0, prev = -1; /* the last block output evaluated so far */
    char a[32], o[32];
    for (int blk = 0; blk < 256 && n < max; blk++) {
        snprintf(a, sizeof a, "blocks.%d.attn", blk);
        snprintf(o, sizeof o, "blocks.%d", blk);
        const int ia = tap_index(e, a), io = tap_index(e, o);
        if (ia >= 0 && io >= 0) {
            rows[n].block = blk;
            rows[n].attn = lm[ia];
            rows[n].attn_delta = prev >= 0 ? lm[ia] - lm[prev] : lm[ia];
            rows[n].mlp = lm[io];
            rows[n].mlp_delta = lm[io] - lm[ia];
            n++;
        }
        if (io >= 0) prev = io;
    }
    return n;
}

/* ---- findings ------------------------------------------------------------------ */

/* the verdict of finding `id` among f[0..n) */
static int holds(const exp_finding *f, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].id, id)) return f[i].holds;
    return 0;
}

/* Memorized at tap l, with the f-g difference cancelled: the candidates'
 * SSLMem above the independent points' (Welch, one-sided p < 0.01). */
static int memorized_at(const exp_state *e, int l) {
    const ctl_tap *c = e->ctl_taps ? &e->ctl_taps[l] : NULL;
    return c && c->cand > c->indep && c->test_ci.p < 0.01;
}

/* The taps memorized_at, comma-separated into out (NULL: only counted);
 * returns their number. */
static int memorized_taps(const exp_state *e, char *out, size_t size) {
    int k = 0;
    if (out) out[0] = 0;
    for (int l = 0; e->ctl_taps && l < e->ssl.n_taps; l++) {
        if (!memorized_at(e, l)) continue;
        if (out) {
            const size_t len = strlen(out);
            snprintf(out + len, size - len, "%s%s", k ? ", " : "", e->ssl.tap_names[l]);
        }
        k++;
    }
    return k;
}

int mloc_experiment_findings(const exp_state *e, exp_finding *f) {
    const mloc_layermem_table *t = &e->table;
    const int T = t->n_taps;
    int n = 0;
    /* 1. the candidates are memorized */
    f[n].id = "memorization";
    f[n].claim = "The candidates are memorized by f: mean SSLMem at the encoder output > 0 (one-sided t-test, p < 0.01)";
    double mean = mloc_stats_mean(e->ssl.out_score, e->ssl.n);
    f[n].holds = mean > 0 && e->out_test.p < 0.01;
    snprintf(f[n].evidence, sizeof f[n].evidence, "mean %.4g over %" PRId64 " candidates, t = %.3f (dof %.0f), p = %.3g",
             mean, e->ssl.n, e->out_test.t, e->out_test.dof, e->out_test.p);
    n++;
    /* 1b. the control: the same score on points f and g both trained on
     *     measures how f and g differ apart from the candidates */
    const double ms = mloc_stats_mean(e->ctl_shared.out_score, e->ctl_shared.n);
    const double mi = mloc_stats_mean(e->ctl_indep.out_score, e->ctl_indep.n);
    f[n].id = "memorization_vs_shared";
    f[n].claim = "The candidates are memorized beyond the difference between f and g: their SSLMem exceeds that of shared "
                 "points, which both encoders trained on (Welch one-sided t-test, p < 0.01)";
    f[n].holds = e->ctl_shared.n > 1 && mean > ms && e->ctl_test.p < 0.01;
    snprintf(f[n].evidence, sizeof f[n].evidence,
             "mean SSLMem: candidates %.4g, shared %.4g (%" PRId64 "), independent %.4g (%" PRId64
             "); candidates vs shared t = %.3f (dof %.0f), p = %.3g",
             mean, ms, e->ctl_shared.n, mi, e->ctl_indep.n, e->ctl_test.t, e->ctl_test.dof, e->ctl_test.p);
    n++;
    /* 1c. candidates against independent points: f's memorization of its
     *     candidates plus g's of its independent points; the difference
     *     between the runs cancels, so both roles count */
    f[n].id = "memorization_vs_independent";
    f[n].claim = "Each encoder memorizes the points only it trained on: SSLMem of the candidates exceeds that of the "
                 "independent points, a difference in which f's memorization and g's add and the difference between f "
                 "and g cancels (Welch one-sided t-test, p < 0.01)";
    f[n].holds = e->ctl_indep.n > 1 && mean > mi && e->ctl_ci_test.p < 0.01;
    snprintf(f[n].evidence, sizeof f[n].evidence,
             "mean SSLMem: candidates %.4g, independent %.4g (%" PRId64 "); difference %.4g, t = %.3f (dof %.0f), p = %.3g",
             mean, mi, e->ctl_indep.n, mean - mi, e->ctl_ci_test.t, e->ctl_ci_test.dof, e->ctl_ci_test.p);
    n++;
    /* 2. Top-50 above Least-50 at every tap */
    int above = 0;
    for (int l = 0; l < T; l++) above += t->top[l] > t->least[l];
    f[n].id = "top_vs_least";
    f[n].claim = "LayerMem of the Top-50 exceeds that of the Least-50 at every tap (paper, Table 1)";
    f[n].holds = above == T;
    {
        /* where the Top-50 miss, is there memorization to rank by? */
        char miss[256] = "";
        int n_miss = 0, miss_flat = 0;
        for (int l = 0; l < T; l++) {
            if (t->top[l] > t->least[l]) continue;
            miss_flat += e->ctl_taps && !memorized_at(e, l);
            const size_t len = strlen(miss);
            snprintf(miss + len, sizeof miss - len, "%s%s", n_miss++ ? ", " : "", e->ssl.tap_names[l]);
        }
        if (n_miss)
            snprintf(f[n].evidence, sizeof f[n].evidence,
                     "at %d of %d taps; not at %s (%d of them without measurable memorization: candidates not above "
                     "independent points at p < 0.01)",
                     above, T, miss, miss_flat);
        else
            snprintf(f[n].evidence, sizeof f[n].evidence, "at %d of %d taps", above, T);
    }
    n++;
    /* 3. memorization grows with depth: the last tap above the first, and a
     *    positive rank correlation with depth, of LayerMem (3) and of the
     *    candidates' excess over the independent points, in which the
     *    difference between f and g cancels (3b) */
    double *depth = malloc((size_t)T * 2 * sizeof *depth), *excess = depth ? depth + T : NULL;
    mloc_kendall k = {0}, kx = {0};
    if (depth) {
        for (int l = 0; l < T; l++) {
            depth[l] = l;
            excess[l] = e->ctl_taps ? e->ctl_taps[l].cand - e->ctl_taps[l].indep : NAN;
        }
        mloc_stats_kendalltau(NULL, depth, t->random, T, MLOC_ALT_GREATER, &k);
        if (e->ctl_indep.n) mloc_stats_kendalltau(NULL, depth, excess, T, MLOC_ALT_GREATER, &kx);
    }
    f[n].id = "grows_with_depth";
    f[n].claim = "Memorization increases with depth overall: LayerMem of the last tap above the first, and LayerMem rank-correlated with depth (Kendall tau > 0, one-sided p < 0.05) (paper, Section 4.1)";
    f[n].holds = t->random[T - 1] > t->random[0] && k.tau > 0 && k.p < 0.05;
    snprintf(f[n].evidence, sizeof f[n].evidence, "LayerMem %.4g (%s) -> %.4g (%s); tau %.3f, one-sided p %.3g",
             t->random[0], e->ssl.tap_names[0], t->random[T - 1], e->ssl.tap_names[T - 1], k.tau, k.p);
    n++;
    if (depth && e->ctl_indep.n) {
        f[n].id = "grows_with_depth_controlled";
        /* a rank correlation of excesses that are all noise is no growth of
         * memorization: at least one tap must show memorization */
        const int n_mem = memorized_taps(e, NULL, 0);
        f[n].claim = "The same, with the difference between f and g cancelled: the candidates' SSLMem minus the "
                     "independent points', at the last tap above the first and rank-correlated with depth (Kendall tau "
                     "> 0, one-sided p < 0.05), with memorization at one tap at least (candidates above independent "
                     "points, p < 0.01)";
        f[n].holds = excess[T - 1] > excess[0] && kx.tau > 0 && kx.p < 0.05 && n_mem > 0;
        snprintf(f[n].evidence, sizeof f[n].evidence,
                 "candidates - independent %.4g (%s) -> %.4g (%s); tau %.3f, one-sided p %.3g; memorized at %d of %d "
                 "taps",
                 excess[0], e->ssl.tap_names[0], excess[T - 1], e->ssl.tap_names[T - 1], kx.tau, kx.p, n_mem, T);
        n++;
    }
    free(depth);
    /* 4. but not monotonically: some tap memorizes less than the one before */
    int dips = 0;
    char where[256] = "";
    for (int l = 1; l < T; l++)
        if (t->delta[l] < 0) {
            if (dips++ < 4) {
                strncat(where, dips > 1 ? ", " : "", sizeof where - strlen(where) - 1);
                strncat(where, e->ssl.tap_names[l], sizeof where - strlen(where) - 1);
            }
        }
    f[n].id = "non_monotone";
    f[n].claim = "The increase is not monotone: some taps have a negative ΔLayerMem (paper, Section 4.1)";
    f[n].holds = dips > 0;
    if (dips > 4) {
        char more[32];
        snprintf(more, sizeof more, " and %d more", dips - 4);
        strncat(where, more, sizeof where - strlen(where) - 1);
    }
    snprintf(f[n].evidence, sizeof f[n].evidence, "%d negative ΔLayerMem%s%s", dips, dips ? ": " : "", where);
    n++;
    /* 5. UnitMem: the Top-50 make units memorize more than the Least-50 */
    int sig = 0;
    for (int l = 0; l < e->unit_top.n_taps; l++) sig += e->ttests[l].t > 0 && e->ttests[l].p < 0.05;
    f[n].id = "unitmem_ttest";
    f[n].claim = "UnitMem over the Top-50 candidates is significantly higher than over the Least-50 (one-sided t-test, p < 0.05) at most taps (paper, Section 4.2)";
    f[n].holds = 2 * sig > e->unit_top.n_taps;
    snprintf(f[n].evidence, sizeof f[n].evidence, "significant at %d of %d taps", sig, e->unit_top.n_taps);
    n++;
    /* 6. ViT: the MLPs of the deeper blocks memorize more than their attention */
    vit_row rows[64];
    const int nb = vit_blocks(e, rows, 64);
    if (nb >= 2) {
        int deeper = 0, mlp_more = 0;
        double sum_mlp = 0, sum_attn = 0;
        for (int i = nb / 2; i < nb; i++) {
            deeper++;
            mlp_more += rows[i].mlp_delta > rows[i].attn_delta;
            sum_mlp += rows[i].mlp_delta;
            sum_attn += rows[i].attn_delta;
        }
        f[n].id = "vit_mlp_deeper";
        f[n].claim = "In a ViT, memorization sits in the MLP (fully-connected) parts of the deeper blocks: in the deeper half of "
                     "the blocks, the MLP adds more LayerMem than attention in most blocks (paper, Section 4.1)";
        f[n].holds = 2 * mlp_more > deeper;
        snprintf(f[n].evidence, sizeof f[n].evidence,
                 "MLP step above attention step in %d of %d blocks (blocks.%d-%d); their sums %.4g (MLP) vs %.4g (attention)",
                 mlp_more, deeper, rows[nb / 2].block, rows[nb - 1].block, sum_mlp, sum_attn);
        n++;
    }
    return n;
}

/* ---- summary.json ---------------------------------------------------------------- */

mloc_status mloc_experiment_summary(exp_state *e, mloc_experiment_result *res) {
    const mloc_experiment_config *ex = e->ex;
    const mloc_layermem_table *t = &e->table;
    json_t *s = json_object();
    json_object_set_new(s, "schema", json_string("memloc.experiment/1"));
    json_object_set_new(s, "memloc_version", json_string(MLOC_VERSION));
    json_object_set_new(s, "options", json_pack("{s:o, s:o}", "train", mloc_train_config_to_json(e->train),
                                                "experiment", mloc_options_to_json(&mloc_experiment_options, ex)));
    json_object_set_new(s, "data", json_pack("{s:s, s:s, s:I, s:[i,i,i], s:s}", "spec", e->train->data, "sha256",
                                             e->data_digest, "n", (json_int_t)e->data.n, "shape", e->data.c,
                                             e->data.h, e->data.w, "prep", e->data.prep ? e->data.prep : ""));
    json_object_set_new(s, "split", json_pack("{s:I, s:I, s:I, s:I}", "shared", (json_int_t)e->split.n_shared,
                                              "candidates", (json_int_t)e->split.n_candidate, "independent",
                                              (json_int_t)e->split.n_independent, "evaluated",
                                              (json_int_t)e->ssl.n));
    json_object_set_new(s, "encoders", json_pack("{s:s, s:s}", "f", e->f_path, "g", e->g_path));
    static const char *const views[] = {"clean (reference code)", "pair (papers)"};
    static const char *const norms[] = {"range (reference code)", "minmax", "none"};
    static const char *const rests[] = {"mean (paper)", "median (reference code)"};
    json_t *variants_extra = json_string(e->unit_abs ? "mean of |a| over positions/tokens (signed taps)"
                                                     : "mean of a over spatial positions (post-ReLU taps)");
    json_object_set_new(s, "variants",
                        json_pack("{s:s, s:i, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "sslmem_views", views[ex->views],
                                  "sslmem_k", ex->k, "layermem_norm", norms[ex->score_norm], "unitmem_rest",
                                  rests[ex->rest], "unitmem_k", ex->unit_k, "sslmem_augmentation", e->aug_desc,
                                  "unitmem_augmentation", e->unit_aug_desc, "image_order",
                                  e->train->compat_normalize_first ? "normalize, then augment (reference code)"
                                                                   : "augment, then normalize (intended)",
                                  "ttest", ex->equal_var ? "Student (reference Ttest.py)" : "Welch"));
    json_object_set_new(json_object_get(s, "variants"), "unit_activation", variants_extra);
    /* training */
    json_t *tr = json_object();
    const char *names[] = {"f", "g"};
    for (int k = 0; k < 2; k++) {
        char run[4200];
        snprintf(run, sizeof run, "%s/%s", e->dir, names[k]);
        curve c;
        curve_read(run, &c);
        json_object_set_new(tr, names[k], curve_json(&c));
        curve_free(&c);
    }
    json_object_set_new(s, "training", tr);
    /* the SSLMem test */
    json_object_set_new(s, "sslmem_test",
                        json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:s}", "tap", e->ssl.out_tap, "n", (json_int_t)e->ssl.n,
                                  "mean", real(mloc_stats_mean(e->ssl.out_score, e->ssl.n)), "t", real(e->out_test.t),
                                  "dof", real(e->out_test.dof), "p", real(e->out_test.p), "test",
                                  "one-sample t-test, H1: mean SSLMem > 0"));
    json_object_set_new(
        s, "sslmem_control",
        json_pack("{s:s, s:{s:I, s:o}, s:{s:I, s:o}, s:{s:o, s:o, s:o, s:s}, s:{s:o, s:o, s:o, s:s}, "
                  "s:{s:o, s:o, s:o, s:s}}",
                  "about",
                  "SSLMem of points f and g both trained on (shared) and of points only g trained on "
                  "(independent), chosen as C_eval is, at the output (here) and every tap (taps); if f and g differed "
                  "only by the candidates, the shared mean would be 0 and the independent mean negative",
                  "shared", "n", (json_int_t)e->ctl_shared.n, "mean", real(mloc_stats_mean(e->ctl_shared.out_score, e->ctl_shared.n)),
                  "independent", "n", (json_int_t)e->ctl_indep.n, "mean",
                  real(mloc_stats_mean(e->ctl_indep.out_score, e->ctl_indep.n)), "candidates_vs_shared", "t",
                  real(e->ctl_test.t), "dof", real(e->ctl_test.dof), "p", real(e->ctl_test.p), "test",
                  "Welch t-test, H1: candidates > shared", "shared_vs_independent", "t", real(e->ctl_indep_test.t),
                  "dof", real(e->ctl_indep_test.dof), "p", real(e->ctl_indep_test.p), "test",
                  "Welch t-test, H1: shared > independent", "candidates_vs_independent", "t", real(e->ctl_ci_test.t),
                  "dof", real(e->ctl_ci_test.dof), "p", real(e->ctl_ci_test.p), "test",
                  "Welch t-test, H1: candidates > independent"));
    json_t *ct = json_array();
    for (int l = 0; e->ctl_taps && l < t->n_taps; l++) {
        const ctl_tap *c = &e->ctl_taps[l];
        json_array_append_new(ct, json_pack("{s:s, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o}, s:{s:o, s:o, s:o, s:o}, s:b}",
                                            "tap", e->ssl.tap_names[l], "candidates", real(c->cand), "shared",
                                            real(c->shared), "independent", real(c->indep), "vs_shared", "excess",
                                            real(c->cand - c->shared), "t", real(c->test.t), "dof", real(c->test.dof),
                                            "p", real(c->test.p), "vs_independent", "excess",
                                            real(c->cand - c->indep), "t", real(c->test_ci.t), "dof",
                                            real(c->test_ci.dof), "p", real(c->test_ci.p), "memorized",
                                            memorized_at(e, l)));
    }
    json_t *control = json_object_get(s, "sslmem_control");
    json_object_set_new(control, "taps", ct);
    json_object_set_new(control, "taps_about",
                        json_string("per tap: mean SSLMem of the candidates, shared and independent points; "
                                    "vs_shared: candidates - shared (f's memorization of its candidates), vs_independent: "
                                    "candidates - independent (f's plus g's memorization); in both the difference "
                                    "between f and g cancels; Welch t-tests, H1: candidates > the other set; memorized: "
                                    "vs_independent positive with p < 0.01"));
    json_t *lm = json_array();
    for (int l = 0; l < t->n_taps; l++)
        json_array_append_new(lm, json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "tap", e->ssl.tap_names[l], "layermem",
                                            real(t->random[l]), "delta", real(t->delta[l]), "top", real(t->top[l]),
                                            "delta_top", real(t->delta_top[l]), "least", real(t->least[l])));
    json_object_set_new(s, "layermem", lm);
    vit_row rows[64];
    const int nb = vit_blocks(e, rows, 64);
    if (nb > 0) {
        json_t *vb = json_array();
        for (int i = 0; i < nb; i++)
            json_array_append_new(vb, json_pack("{s:i, s:o, s:o, s:o, s:o}", "block", rows[i].block, "attn_layermem",
                                                real(rows[i].attn), "attn_delta", real(rows[i].attn_delta),
                                                "mlp_layermem", real(rows[i].mlp), "mlp_delta", real(rows[i].mlp_delta)));
        json_object_set_new(s, "vit_blocks", vb);
    }
    json_t *um = json_array();
    for (int l = 0; l < e->unit.n_taps; l++) {
        mloc_unit_summary us;
        if (mloc_unit_summarize(e->ctx, &e->unit, l, &us) != MLOC_OK) continue;
        json_array_append_new(um, json_pack("{s:s, s:I, s:o, s:o, s:o, s:o, s:I}", "tap", e->unit.tap_names[l], "units",
                                            (json_int_t)us.units, "mean", real(us.mean), "median", real(us.q[2]),
                                            "share_gt_0.5", real(us.share_05), "share_gt_0.9", real(us.share_09), "dead",
                                            (json_int_t)us.dead));
    }
    json_object_set_new(s, "unitmem", um);
    json_t *tt = json_array();
    for (int l = 0; l < e->unit_top.n_taps; l++) {
        const int a = e->unit_top.offset[l], U = e->unit_top.offset[l + 1] - a;
        json_array_append_new(tt, json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "tap", e->unit_top.tap_names[l], "mean_top",
                                            real(mloc_stats_mean(e->unit_top.score + a, U)), "mean_least",
                                            real(mloc_stats_mean(e->unit_least.score + a, U)), "t",
                                            real(e->ttests[l].t), "dof", real(e->ttests[l].dof), "p",
                                            real(e->ttests[l].p)));
    }
    json_object_set_new(s, "ttest", tt);
    json_t *co = json_array();
    for (int i = 0; i < e->n_pairs; i++)
        json_array_append_new(co, json_pack("{s:s, s:s, s:o, s:o, s:o}", "a", e->ssl.tap_names[e->pairs[i].a], "b",
                                            e->ssl.tap_names[e->pairs[i].b], "overlap_pct", real(e->pairs[i].overlap),
                                            "tau_b", real(e->pairs[i].kendall.tau), "p", real(e->pairs[i].kendall.p)));
    json_object_set_new(s, "consistency", co);
    json_t *mm = json_array();
    for (int64_t i = 0; i < e->n_mumax && i < 20; i++)
        json_array_append_new(mm, json_pack("{s:I, s:I, s:I, s:o}", "index", (json_int_t)e->mumax[i].point, "units",
                                            (json_int_t)e->mumax[i].units, "rank", (json_int_t)e->mumax[i].rank,
                                            "sslmem", real(e->mumax[i].sslmem)));
    json_object_set_new(s, "mumax", json_pack("{s:s, s:I, s:o}", "tap", e->unit.tap_names[e->unit.n_taps - 1],
                                              "points", (json_int_t)e->n_mumax, "top", mm));
    exp_finding fs[EXP_MAX_FINDINGS];
    int nf = mloc_experiment_findings(e, fs);
    json_t *fj = json_array();
    for (int i = 0; i < nf; i++)
        json_array_append_new(fj, json_pack("{s:s, s:s, s:b, s:s}", "id", fs[i].id, "claim", fs[i].claim, "holds",
                                            fs[i].holds, "evidence", fs[i].evidence));
    json_object_set_new(s, "findings", fj);

    res->sslmem_mean = mloc_stats_mean(e->ssl.out_score, e->ssl.n);
    res->sslmem_t = e->out_test.t;
    res->sslmem_p = e->out_test.p;
    res->memorization = holds(fs, nf, "memorization");
    res->beyond_shared = holds(fs, nf, "memorization_vs_shared");
    res->shared_mean = mloc_stats_mean(e->ctl_shared.out_score, e->ctl_shared.n);
    res->control_p = e->ctl_test.p;
    res->indep_mean = mloc_stats_mean(e->ctl_indep.out_score, e->ctl_indep.n);
    res->indep_p = e->ctl_ci_test.p;
    res->beyond_independent = holds(fs, nf, "memorization_vs_independent");
    res->top_exceeds_least = holds(fs, nf, "top_vs_least");
    res->n_memorized_taps = memorized_taps(e, res->memorized_taps, sizeof res->memorized_taps);
    res->n_taps = t->n_taps;
    /* the table as text, for the terminal */
    char top[32], dtop[32], least[32]; /* Top-50 etc. with the run's --top */
    snprintf(top, sizeof top, "Top-%" PRId64, t->n_top);
    snprintf(dtop, sizeof dtop, "ΔTop-%" PRId64, t->n_top);
    snprintf(least, sizeof least, "Least-%" PRId64, t->n_top);
    int o = snprintf(res->table, sizeof res->table, "%-18s %10s %11s %10s %11s %10s\n", "tap", "LayerMem", "ΔLayerMem",
                     top, dtop, least);
    for (int l = 0; l < t->n_taps && o < (int)sizeof res->table; l++)
        o += snprintf(res->table + o, sizeof res->table - (size_t)o, "%-18s %10.4f %10.4f %10.4f %10.4f %10.4f\n",
                      e->ssl.tap_names[l], t->random[l], t->delta[l], t->top[l], t->delta_top[l], t->least[l]);

    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", e->dir);
    if (e->ex->applications) mloc_experiment_applications_summary(e, s);
    e->summary = s;
    return mloc_json_save(e->ctx, path, s);
}

/* ---- report.html ---------------------------------------------------------------- */

static void cell(mloc_buf *b, double v, const char *fmt) {
    mloc_buf_puts(b, "<td>");
    if (isfinite(v))
        mloc_buf_printf(b, fmt, v);
    else
        mloc_buf_puts(b, "–");
    mloc_buf_puts(b, "</td>");
}

static void option_rows(mloc_buf *b, const mloc_option_table *t, const void *cfg) {
    for (int i = 0; i < t->n; i++) {
        char buf[MLOC_OPT_STR_MAX];
        mloc_buf_puts(b, "<tr><td>");
        mloc_buf_escape(b, t->opts[i].name);
        mloc_buf_puts(b, "</td><td style=\"text-align:left\"><code>");
        mloc_buf_escape(b, mloc_options_get(t, cfg, i, buf, sizeof buf));
        mloc_buf_puts(b, "</code></td><td style=\"text-align:left\" class=\"muted\">");
        mloc_buf_escape(b, t->opts[i].help);
        mloc_buf_puts(b, "</td></tr>");
    }
}

mloc_status mloc_experiment_report(exp_state *e, mloc_experiment_result *res) {
    const mloc_layermem_table *t = &e->table;
    const int T = t->n_taps;
    const char **labels = NULL;
    mloc_buf b = {0};
    mloc_html_begin(&b, "memloc: where does the encoder memorize?");
    mloc_buf_puts(&b, "<h1>Where does this encoder memorize?</h1>\n<p>");
    mloc_buf_printf(&b, "Data <code>");
    mloc_buf_escape(&b, e->train->data);
    mloc_buf_printf(&b, "</code> (%" PRId64 " images %dx%dx%d) split in order into S<sub>S</sub> %" PRId64
                        ", S<sub>C</sub> %" PRId64 " candidates and S<sub>I</sub> %" PRId64
                        "; f trained on S<sub>S</sub>∪S<sub>C</sub>, g on S<sub>S</sub>∪S<sub>I</sub> with identical "
                        "settings (SPEC 1); %" PRId64 " candidates evaluated.</p>\n",
                    e->data.n, e->data.c, e->data.h, e->data.w, e->split.n_shared, e->split.n_candidate,
                    e->split.n_independent, e->ssl.n);

    /* findings, computed */
    mloc_buf_puts(&b, "<h2 id=\"findings\">Findings of the paper on this run</h2>\n<p class=\"muted\">Each verdict is computed from the numbers below by the stated rule.</p><table><tr><th>finding</th><th style=\"text-align:left\">result</th><th style=\"text-align:left\">evidence</th></tr>");
    exp_finding fs[EXP_MAX_FINDINGS];
    int nf = mloc_experiment_findings(e, fs);
    for (int i = 0; i < nf; i++) {
        mloc_buf_puts(&b, "<tr><td style=\"text-align:left\">");
        mloc_buf_escape(&b, fs[i].claim);
        mloc_buf_printf(&b, "</td><td class=\"%s\" style=\"text-align:left\">%s</td><td style=\"text-align:left\">", fs[i].holds ? "ok" : "no",
                        fs[i].holds ? "reproduced" : "not reproduced");
        mloc_buf_escape(&b, fs[i].evidence);
        mloc_buf_puts(&b, "</td></tr>");
    }
    mloc_buf_puts(&b, "</table>\n");
    mloc_buf_printf(&b, "<p id=\"sslmem-test\">Memorization of the candidates: SSLMem at <code>%s</code>, mean %.4g over %" PRId64
                        " candidates; one-sample t-test, H<sub>1</sub>: mean &gt; 0: t = %.3f, dof %.0f, p = %.3g.</p>\n",
                    e->ssl.out_tap, mloc_stats_mean(e->ssl.out_score, e->ssl.n), e->ssl.n, e->out_test.t, e->out_test.dof,
                    e->out_test.p);
    mloc_buf_printf(&b, "<p id=\"sslmem-control\">Control: f and g are two training runs, and differ by more than the "
                        "candidates. The same score on %" PRId64 " shared points (both encoders trained on them) has mean "
                        "%.4g, on %" PRId64 " independent points (only g trained on them) %.4g. Candidates above shared "
                        "points: Welch t = %.3f, dof %.1f, one-sided p = %.3g; shared above independent: t = %.3f, p = %.3g; "
                        "candidates above independent: t = %.3f, p = %.3g. The first and the last comparison cancel "
                        "the difference between the two runs: the first measures f's memorization of its candidates, "
                        "the last f's and g's (of its independent points) together.</p>\n",
                    e->ctl_shared.n, mloc_stats_mean(e->ctl_shared.out_score, e->ctl_shared.n), e->ctl_indep.n,
                    mloc_stats_mean(e->ctl_indep.out_score, e->ctl_indep.n), e->ctl_test.t, e->ctl_test.dof, e->ctl_test.p,
                    e->ctl_indep_test.t, e->ctl_indep_test.p, e->ctl_ci_test.t, e->ctl_ci_test.p);

    /* the control per tap: where the candidates are memorized beyond the runs' difference */
    if (e->ctl_taps && e->ctl_shared.n) {
        char where[1024];
        const int k = memorized_taps(e, where, sizeof where);
        mloc_buf_printf(&b, "<h3 id=\"sslmem-control-taps\">Control per tap: where the encoders memorize, with the "
                            "difference between f and g cancelled</h3>\n<p class=\"muted\">Mean SSLMem per tap of the "
                            "%" PRId64 " candidates, %" PRId64 " shared and %" PRId64 " independent points (raw, not "
                            "normalised), and Welch one-sided tests of the candidates against each control set: against "
                            "shared points the excess is f's memorization of its candidates, against independent points "
                            "f's and g's together. A tap whose candidates are not above the independent points shows no "
                            "measurable memorization, and its Top-%" PRId64 " / Least-%" PRId64 " comparison ranks the "
                            "two runs' difference, not memorization. Memorized (candidates above independent points, "
                            "p &lt; 0.01) at %d of %d taps%s",
                        e->ssl.n, e->ctl_shared.n, e->ctl_indep.n, t->n_top, t->n_top, k, T, k ? ": " : ".");
        if (k) {
            mloc_buf_escape(&b, where);
            mloc_buf_puts(&b, ".");
        }
        mloc_buf_puts(&b, "</p><table><tr><th>tap</th><th>candidates</th><th>shared</th><th>independent</th>"
                          "<th>− shared</th><th>p</th><th>− independent</th><th>p</th></tr>");
        for (int l = 0; l < T; l++) {
            const ctl_tap *c = &e->ctl_taps[l];
            mloc_buf_puts(&b, "<tr><td>");
            mloc_buf_escape(&b, e->ssl.tap_names[l]);
            mloc_buf_puts(&b, "</td>");
            cell(&b, c->cand, "%.5f");
            cell(&b, c->shared, "%.5f");
            cell(&b, c->indep, "%.5f");
            cell(&b, c->cand - c->shared, "%+.5f");
            cell(&b, c->test.p, "%.3g");
            cell(&b, c->cand - c->indep, "%+.5f");
            cell(&b, c->test_ci.p, "%.3g");
            mloc_buf_puts(&b, "</tr>");
        }
        mloc_buf_puts(&b, "</table>\n");
    }

    /* LayerMem table and chart */
    mloc_buf_puts(&b, "<h2 id=\"layermem\">LayerMem per tap (the paper's Table 1)</h2>\n");
    mloc_buf_printf(&b, "<p class=\"muted\">LayerMem on %" PRId64 " random candidates, on the Top-%" PRId64
                        " and Least-%" PRId64 " by SSLMem at the encoder output; scores normalised by the range over all "
                        "evaluated candidates (%s).</p>",
                    t->n_random, t->n_top, t->n_top, mloc_score_norm_name(t->norm));
    const int64_t nt = t->n_top;
    char top[32], dtop[32], least[32];
    snprintf(top, sizeof top, "Top-%" PRId64, nt);
    snprintf(dtop, sizeof dtop, "ΔTop-%" PRId64, nt);
    snprintf(least, sizeof least, "Least-%" PRId64, nt);
    mloc_buf_printf(&b, "<table><tr><th>tap</th><th>LayerMem</th><th>ΔLayerMem</th><th>%s</th><th>%s</th><th>%s</th></tr>",
                    top, dtop, least);
    for (int l = 0; l < T; l++) {
        mloc_buf_puts(&b, "<tr><td>");
        mloc_buf_escape(&b, e->ssl.tap_names[l]);
        mloc_buf_puts(&b, "</td>");
        cell(&b, t->random[l], "%.4f");
        cell(&b, t->delta[l], "%.4f");
        cell(&b, t->top[l], "%.4f");
        cell(&b, t->delta_top[l], "%.4f");
        cell(&b, t->least[l], "%.4f");
        mloc_buf_puts(&b, "</tr>");
    }
    mloc_buf_puts(&b, "</table>\n");
    labels = malloc((size_t)T * sizeof *labels);
    if (!labels) goto nomem;
    for (int l = 0; l < T; l++) labels[l] = e->ssl.tap_names[l];
    mloc_series s3[] = {{"LayerMem", t->random, T, 0}, {top, t->top, T, 0}, {least, t->least, T, 1}};
    mloc_svg_lines(&b, "LayerMem by depth", "LayerMem", labels, T, s3, 3);
    mloc_series sd[] = {{"ΔLayerMem", t->delta, T, 0}, {dtop, t->delta_top, T, 1}};
    mloc_svg_lines(&b, "ΔLayerMem by depth", "ΔLayerMem", labels, T, sd, 2);

    /* a ViT: attention vs MLP per block */
    {
        vit_row rows[64];
        const int nb = vit_blocks(e, rows, 64);
        if (nb > 0) {
            mloc_buf_puts(&b, "<h2 id=\"vit-blocks\">Attention vs MLP per block (the paper's ViT table)</h2>\n"
                              "<p class=\"muted\">LayerMem on the random candidates at <code>blocks.N.attn</code> (after "
                              "attention) and <code>blocks.N</code> (after the MLP); each part's Δ is the step across it: "
                              "attention from <code>blocks.N-1</code>, the MLP from <code>blocks.N.attn</code>.</p>");
            mloc_buf_puts(&b, "<table><tr><th>block</th><th>attention LayerMem</th><th>attention Δ</th><th>MLP LayerMem</th>"
                              "<th>MLP Δ</th><th>larger Δ</th></tr>");
            double *da = malloc((size_t)nb * sizeof *da), *dm = malloc((size_t)nb * sizeof *dm);
            const char **bl = malloc((size_t)nb * sizeof *bl);
            char(*names)[24] = malloc((size_t)nb * sizeof *names);
            if (!da || !dm || !bl || !names) {
                free(da), free(dm), free(bl), free(names);
                goto nomem;
            }
            for (int i = 0; i < nb; i++) {
                mloc_buf_printf(&b, "<tr><td>%d</td>", rows[i].block);
                cell(&b, rows[i].attn, "%.4f");
                cell(&b, rows[i].attn_delta, "%.4f");
                cell(&b, rows[i].mlp, "%.4f");
                cell(&b, rows[i].mlp_delta, "%.4f");
                mloc_buf_printf(&b, "<td>%s</td></tr>", rows[i].mlp_delta > rows[i].attn_delta ? "MLP" : "attention");
                da[i] = rows[i].attn_delta;
                dm[i] = rows[i].mlp_delta;
                snprintf(names[i], sizeof names[i], "blocks.%d", rows[i].block);
                bl[i] = names[i];
            }
            mloc_buf_puts(&b, "</table>\n");
            mloc_series sv[] = {{"attention Δ", da, nb, 0}, {"MLP Δ", dm, nb, 1}};
            mloc_svg_lines(&b, "What attention and the MLP add, by block", "Δ LayerMem", bl, nb, sv, 2);
            free(da), free(dm), free(bl), free(names);
        }
    }

    /* UnitMem */
    mloc_buf_puts(&b, "<h2 id=\"unitmem\">UnitMem per unit</h2>\n");
    mloc_buf_printf(&b, "<p class=\"muted\">UnitMem of f over the %" PRId64 " evaluated candidates, %d views each (%s), μ<sub>rest</sub> = %s.</p>",
                    e->unit.n, e->unit.cfg.k, e->unit_aug_desc, mloc_rest_stat_name(e->unit.cfg.rest));
    mloc_buf_puts(&b, "<table><tr><th>tap</th><th>units</th><th>mean</th><th>median</th><th>&gt; 0.5</th><th>&gt; 0.9</th><th>dead</th></tr>");
    for (int l = 0; l < e->unit.n_taps; l++) {
        mloc_unit_summary us;
        if (mloc_unit_summarize(e->ctx, &e->unit, l, &us) != MLOC_OK) continue;
        mloc_buf_puts(&b, "<tr><td>");
        mloc_buf_escape(&b, e->unit.tap_names[l]);
        mloc_buf_printf(&b, "</td><td>%" PRId64 "</td>", us.units);
        cell(&b, us.mean, "%.4f");
        cell(&b, us.q[2], "%.4f");
        cell(&b, 100 * us.share_05, "%.1f%%");
        cell(&b, 100 * us.share_09, "%.1f%%");
        mloc_buf_printf(&b, "<td>%" PRId64 "</td></tr>", us.dead);
    }
    mloc_buf_puts(&b, "</table>\n");
    for (int l = 0; l < e->unit.n_taps; l++) {
        char title[128];
        snprintf(title, sizeof title, "UnitMem distribution: %s", e->unit.tap_names[l]);
        const int a = e->unit.offset[l];
        mloc_svg_histogram(&b, title, e->unit.score + a, e->unit.offset[l + 1] - a, 0, 1, 20, 0.5);
    }

    /* mu_max alignment and the SSLMem-vs-UnitMem scatter (units of the last tap) */
    const int last = e->unit.n_taps - 1, a = e->unit.offset[last], U = e->unit.offset[last + 1] - a;
    mloc_buf_printf(&b, "<h2 id=\"mumax\">μ<sub>max</sub> alignment at <code>%s</code></h2>\n", e->unit.tap_names[last]);
    mloc_buf_printf(&b, "<p class=\"muted\">%" PRId64 " distinct candidates maximally activate the tap's live units. Rank 1 is the candidate with the highest SSLMem.</p>",
                    e->n_mumax);
    int nb = e->n_mumax < 20 ? (int)e->n_mumax : 20;
    double *bars = malloc((size_t)(nb ? nb : 1) * sizeof *bars);
    char (*blab)[48] = malloc((size_t)(nb ? nb : 1) * sizeof *blab);
    const char **bl = malloc((size_t)(nb ? nb : 1) * sizeof *bl);
    double *sx = malloc((size_t)(U ? U : 1) * sizeof *sx), *sy = malloc((size_t)(U ? U : 1) * sizeof *sy);
    if (!bars || !blab || !bl || !sx || !sy) {
        free(bars); free(blab); free(bl); free(sx); free(sy);
        goto nomem;
    }
    mloc_buf_puts(&b, "<table><tr><th>candidate</th><th>units</th><th>SSLMem rank</th><th>SSLMem</th></tr>");
    for (int i = 0; i < nb; i++) {
        const mloc_mumax_row *r = &e->mumax[i];
        snprintf(blab[i], sizeof blab[i], "#%" PRId64 " (rank %" PRId64 ")", r->point, r->rank);
        bl[i] = blab[i];
        bars[i] = (double)r->units;
        mloc_buf_printf(&b, "<tr><td>#%" PRId64 "</td><td>%" PRId64 "</td><td>%" PRId64 "</td>", r->point, r->units, r->rank);
        cell(&b, r->sslmem, "%.4f");
        mloc_buf_puts(&b, "</tr>");
    }
    mloc_buf_puts(&b, "</table>\n");
    mloc_svg_bars(&b, "Units maximally activated per candidate", "units", bl, bars, nb);
    int ns = 0;
    for (int u = 0; u < U; u++) {
        if (e->unit.dead[a + u]) continue;
        int64_t x = e->unit.argmax[a + u];
        for (int64_t i = 0; i < e->ssl.n; i++)
            if (e->ssl.points[i] == x) {
                sx[ns] = e->ssl.out_score[i];
                sy[ns] = e->unit.score[a + u];
                ns++;
                break;
            }
    }
    mloc_buf_printf(&b, "<h2 id=\"scatter\">SSLMem vs UnitMem</h2>\n<p class=\"muted\">One point per live unit of <code>%s</code>: its UnitMem against the SSLMem of the candidate that maximally activates it.</p>",
                    e->unit.tap_names[last]);
    mloc_svg_scatter(&b, "SSLMem of x* vs UnitMem", "SSLMem of the unit's μmax candidate", "UnitMem", sx, sy, ns, NULL,
                     NULL, 0);
    free(bars); free(blab); free(bl); free(sx); free(sy);

    /* consistency heat maps */
    mloc_buf_printf(&b, "<h2 id=\"consistency\">Consistency between taps</h2>\n<p class=\"muted\">Overlap (%%) of the top-%d candidates by SSLMem<sup>l</sup> and Kendall's τ<sub>b</sub> of the scores, for every pair of taps.</p>",
                    e->ex->consistency_k);
    double *ov = malloc((size_t)T * T * sizeof *ov), *tau = malloc((size_t)T * T * sizeof *tau);
    if (!ov || !tau) {
        free(ov); free(tau);
        goto nomem;
    }
    for (int i = 0; i < T; i++) {
        ov[i * T + i] = 100;
        tau[i * T + i] = 1;
    }
    for (int i = 0; i < e->n_pairs; i++) {
        const mloc_consistency_pair *p = &e->pairs[i];
        ov[p->a * T + p->b] = ov[p->b * T + p->a] = p->overlap;
        tau[p->a * T + p->b] = tau[p->b * T + p->a] = p->kendall.tau;
    }
    mloc_svg_heatmap(&b, "Top-k overlap (%)", labels, T, ov, 0, 100, "%.0f");
    mloc_svg_heatmap(&b, "Kendall's tau-b", labels, T, tau, -1, 1, "%.2f");
    free(ov);
    free(tau);

    /* t-tests */
    mloc_buf_printf(&b, "<h2 id=\"ttest\">UnitMem: %s vs %s</h2>\n<p class=\"muted\">Per tap, UnitMem computed over the %s and over the %s candidates; one-sided two-sample %s t-test over the tap's units, H<sub>1</sub>: %s &gt; %s.</p>",
                    top, least, top, least, e->ex->equal_var ? "Student" : "Welch", top, least);
    mloc_buf_printf(&b, "<table><tr><th>tap</th><th>mean %s</th><th>mean %s</th><th>t</th><th>dof</th><th>p</th></tr>", top, least);
    for (int l = 0; l < e->unit_top.n_taps; l++) {
        const int o = e->unit_top.offset[l], n = e->unit_top.offset[l + 1] - o;
        mloc_buf_puts(&b, "<tr><td>");
        mloc_buf_escape(&b, e->unit_top.tap_names[l]);
        mloc_buf_puts(&b, "</td>");
        cell(&b, mloc_stats_mean(e->unit_top.score + o, n), "%.4f");
        cell(&b, mloc_stats_mean(e->unit_least.score + o, n), "%.4f");
        cell(&b, e->ttests[l].t, "%.3f");
        cell(&b, e->ttests[l].dof, "%.1f");
        cell(&b, e->ttests[l].p, "%.3g");
        mloc_buf_puts(&b, "</tr>");
    }
    mloc_buf_puts(&b, "</table>\n");

    /* training */
    mloc_buf_puts(&b, "<h2 id=\"training\">Training of f and g</h2>\n");
    curve cf, cg;
    char run[4200];
    snprintf(run, sizeof run, "%s/f", e->dir);
    curve_read(run, &cf);
    snprintf(run, sizeof run, "%s/g", e->dir);
    curve_read(run, &cg);
    int ne = cf.n > cg.n ? cf.n : cg.n;
    char (*ep)[16] = malloc((size_t)(ne ? ne : 1) * sizeof *ep);
    const char **epl = malloc((size_t)(ne ? ne : 1) * sizeof *epl);
    if (ep && epl && ne > 0) {
        for (int i = 0; i < ne; i++) {
            snprintf(ep[i], sizeof ep[i], "%d", i + 1);
            epl[i] = ep[i];
        }
        mloc_series loss[] = {{"f", cf.loss, cf.n, 0}, {"g", cg.loss, cg.n, 1}};
        mloc_svg_lines(&b, "Training loss per epoch", "NT-Xent loss", epl, ne, loss, 2);
        int knn = 0;
        for (int i = 0; i < cf.n; i++) knn |= isfinite(cf.knn[i]);
        if (knn) {
            mloc_series acc[] = {{"f", cf.knn, cf.n, 0}, {"g", cg.knn, cg.n, 1}};
            mloc_svg_lines(&b, "kNN accuracy", "top-1", epl, ne, acc, 2);
        }
    } else {
        mloc_buf_puts(&b, "<p class=\"muted\">The encoders were given (--f/--g); no training curves.</p>");
    }
    free(ep);
    free(epl);
    curve_free(&cf);
    curve_free(&cg);

    if (e->ex->applications) mloc_experiment_applications_report(e, &b);

    /* configuration and variants */
    mloc_buf_puts(&b, "<h2 id=\"config\">Configuration</h2>\n<table><tr><th>metric choice (SPEC 6)</th><th>used</th></tr>");
    json_t *var = json_object_get(e->summary, "variants");
    const char *key;
    json_t *val;
    json_object_foreach(var, key, val) {
        mloc_buf_puts(&b, "<tr><td>");
        mloc_buf_escape(&b, key);
        mloc_buf_puts(&b, "</td><td style=\"text-align:left\">");
        if (json_is_string(val))
            mloc_buf_escape(&b, json_string_value(val));
        else
            mloc_buf_printf(&b, "%" JSON_INTEGER_FORMAT, json_integer_value(val));
        mloc_buf_puts(&b, "</td></tr>");
    }
    mloc_buf_puts(&b, "</table>\n<table><tr><th>training option</th><th>value</th><th>meaning</th></tr>");
    option_rows(&b, &mloc_train_options, e->train);
    mloc_buf_puts(&b, "</table>\n<table><tr><th>experiment option</th><th>value</th><th>meaning</th></tr>");
    option_rows(&b, &mloc_experiment_options, e->ex);
    mloc_buf_puts(&b, "</table>\n<p class=\"muted\">Encoders: <code>");
    mloc_buf_escape(&b, e->f_path);
    mloc_buf_puts(&b, "</code>, <code>");
    mloc_buf_escape(&b, e->g_path);
    mloc_buf_printf(&b, "</code>. Data sha256 <code>%s</code>. memloc %s. Every number on this page is in summary.json.</p>\n",
                    e->data_digest, MLOC_VERSION);
    mloc_html_end(&b);
    free(labels);
    if (b.failed) goto nomem;
    snprintf(res->report, sizeof res->report, "%s/report.html", e->dir);
    mloc_status st = mloc_write_file_atomic(e->ctx, res->report, b.s, b.n);
    mloc_buf_free(&b);
    return st;
nomem:
    free(labels);
    mloc_buf_free(&b);
    return mloc_error(e->ctx, MLOC_ERR_NOMEM, "report: out of memory");
}
