/* memloc experiment --applications: the paper's applications of
 * localization (SPEC.md section 8) on the experiment's f, computed after the
 * metrics and shown in their own report section.
 *
 *   fine-tuning   f's blocks chosen by LayerMem / ΔLayerMem / last / random
 *                 (n = 1, 2) plus a linear head on --app-data (Table 4)
 *   pruning       top / bottom / random UnitMem units, 10% and 20% of each
 *                 conv-block tap, then a linear probe on --app-data
 *   exchange      f's most / least / random memorizing blocks (n = 2)
 *                 replaced by --app-donor's, probed on --app-data and
 *                 --app-donor-data (only with --app-donor)
 *   single unit   the median-UnitMem live unit of the last conv-block tap
 *                 fine-tuned on the candidate of highest SSLMem; UnitMem
 *                 before and after
 *   SSL vs sup.   UnitMem and ClassMem of every unit of f and of a supervised
 *                 encoder of the same architecture (--supervised, or trained
 *                 here on f's data with the experiment's settings), over the
 *                 evaluated candidates
 *
 * Everything lands in DIR/applications/: applications.json (schema
 * memloc.applications/1, every number of the section, with computed
 * findings) and {ssl,supervised}/{unitmem,classmem}.*; the supervised run in
 * DIR/supervised/ (resumable like f and g). The summary and report hooks only
 * read applications.json. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "memloc/apply.h"
#include "memloc/io.h"
#include "memloc/report.h"
#include "memloc/stats.h"
#include "memloc/train.h"

static json_t *real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static double num(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* "TRAIN,TEST": split at the first comma followed by a letter, '/', '~' or
 * '.' (index lists hold commas followed by digits). */
static int split_pair(const char *text, char *train, char *test, size_t size) {
    for (const char *c = strchr(text, ','); c; c = strchr(c + 1, ','))
        if ((c[1] >= 'a' && c[1] <= 'z') || (c[1] >= 'A' && c[1] <= 'Z') || c[1] == '/' || c[1] == '~' ||
            c[1] == '.') {
            if ((size_t)(c - text) >= size || strlen(c + 1) >= size) return 0;
            memcpy(train, text, (size_t)(c - text));
            train[c - text] = 0;
            snprintf(test, size, "%s", c + 1);
            return 1;
        }
    return 0;
}

static int exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

/* ---- the steps ------------------------------------------------------------------- */

/* The experiment's LayerMem table as selection scores. */
static mloc_status layer_scores(exp_state *e, mloc_layer_scores *s) {
    memset(s, 0, sizeof *s);
    const int T = e->table.n_taps;
    s->taps = calloc((size_t)T, sizeof *s->taps);
    s->layermem = calloc((size_t)T, sizeof *s->layermem);
    s->delta = calloc((size_t)T, sizeof *s->delta);
    if (!s->taps || !s->layermem || !s->delta) {
        mloc_layer_scores_free(s);
        return mloc_error(e->ctx, MLOC_ERR_NOMEM, "applications: out of memory");
    }
    for (int l = 0; l < T; l++) {
        snprintf(s->taps[l], sizeof s->taps[l], "%s", e->ssl.tap_names[l]);
        s->layermem[l] = e->table.random[l];
        s->delta[l] = e->table.delta[l];
    }
    s->n_taps = T;
    snprintf(s->source, sizeof s->source, "%s/metrics/layermem.json", e->dir);
    return MLOC_OK;
}

static mloc_status finetune_table(exp_state *e, const mloc_layer_scores *s, const mloc_dataset *train,
                                  const mloc_dataset *test, json_t *doc) {
    static const int ns[] = {1, 2};
    mloc_finetune_config fc = mloc_finetune_config_default();
    fc.epochs = e->ex->app_epochs;
    fc.seed = e->ex->metric_seed;
    fc.norm = (mloc_aug_norm)e->train->norm;
    fc.workers = e->train->workers;
    if (fc.batch > train->n) fc.batch = (int)train->n; /* small downstream sets */
    mloc_finetune_row rows[1 + MLOC_SELECT_COUNT * 2];
    int n_rows = 0;
    mloc_model *m = NULL;
    MLOC_TRY(mloc_model_open(e->ctx, &m, e->f_path, MLOC_HEAD_NONE));
    mloc_status st = mloc_finetune_compare(e->ctx, e->f_path, s, ns, 2, train, test, &fc, rows, &n_rows);
    if (st == MLOC_OK) {
        json_t *arr = json_array();
        for (int r = 0; r < n_rows; r++) {
            char blocks[1024] = "";
            for (int k = 0; k < rows[r].n; k++)
                snprintf(blocks + strlen(blocks), sizeof blocks - strlen(blocks), "%s%s", k ? "," : "",
                         m->modules[rows[r].modules[k]]);
            json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:o, s:o}", "select",
                                                 rows[r].rule < 0 ? "head" : mloc_select_rule_name(rows[r].rule), "n",
                                                 rows[r].n, "blocks", blocks, "test_top1", real(rows[r].res.test_top1),
                                                 "train_top1", real(rows[r].res.train_top1)));
        }
        json_object_set_new(doc, "finetune",
                            json_pack("{s:i, s:i, s:f, s:I, s:o}", "epochs", fc.epochs, "batch_size", fc.batch, "lr",
                                      fc.lr, "seed", (json_int_t)fc.seed, "rows", arr));
    }
    mloc_model_free(m);
    return st;
}

static mloc_status prune_table(exp_state *e, const mloc_dataset *train, const mloc_dataset *test, json_t *doc) {
    static const double fractions[] = {0.1, 0.2};
    mloc_prune_config pc = mloc_prune_config_default();
    pc.seed = e->ex->metric_seed;
    mloc_probe_config probe = mloc_probe_config_default();
    probe.seed = e->ex->metric_seed;
    mloc_aug_pipeline pipe;
    MLOC_TRY(mloc_eval_pipeline(e->ctx, &pipe, (mloc_aug_norm)e->train->norm));
    probe.pipe = &pipe;
    mloc_prune_row rows[7];
    int n_rows = 0;
    MLOC_TRY(mloc_prune_compare(e->ctx, e->f_path, &e->unit, fractions, 2, &pc, train, test, &probe, rows, &n_rows));
    json_t *arr = json_array();
    for (int r = 0; r < n_rows; r++)
        json_array_append_new(arr, json_pack("{s:s, s:f, s:I, s:o}", "by",
                                             rows[r].by < 0 ? "none" : mloc_prune_by_name(rows[r].by), "fraction",
                                             rows[r].fraction, "units", (json_int_t)rows[r].units, "test_top1",
                                             real(rows[r].test_top1)));
    json_object_set_new(doc, "prune", json_pack("{s:s, s:i, s:o}", "scope", "tap", "probe_epochs", probe.epochs, "rows", arr));
    return MLOC_OK;
}

static mloc_status swap_table(exp_state *e, const mloc_layer_scores *s, const char *train, const char *test,
                              json_t *doc) {
    const mloc_experiment_config *ex = e->ex;
    const char *tr[2] = {train, NULL}, *te[2] = {test, NULL};
    char dtr[MLOC_OPT_STR_MAX], dte[MLOC_OPT_STR_MAX];
    int n_eval = 1;
    if (ex->app_donor_data[0]) {
        if (!split_pair(ex->app_donor_data, dtr, dte, sizeof dtr))
            return mloc_error(e->ctx, MLOC_ERR_CONFIG, "option app_donor_data: expected TRAIN,TEST, got '%s'",
                              ex->app_donor_data);
        tr[1] = dtr;
        te[1] = dte;
        n_eval = 2;
    }
    mloc_probe_config probe = mloc_probe_config_default();
    probe.seed = ex->metric_seed;
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    mloc_swap_row rows[5];
    MLOC_TRY(mloc_swap_compare(e->ctx, e->f_path, ex->app_donor, s, 2, ex->metric_seed, tr, te, n_eval, &dopt, &probe,
                               rows));
    json_t *arr = json_array(), *ev = json_array();
    for (int k = 0; k < n_eval; k++) json_array_append_new(ev, json_pack("{s:s, s:s}", "train", tr[k], "test", te[k]));
    for (int r = 0; r < 5; r++) {
        json_t *acc = json_array();
        for (int k = 0; k < n_eval; k++) json_array_append_new(acc, real(rows[r].test_top1[k]));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "row", rows[r].label, "blocks", rows[r].blocks,
                                             "test_top1", acc));
    }
    json_object_set_new(doc, "swap", json_pack("{s:s, s:i, s:o, s:o}", "donor", ex->app_donor, "n", 2, "evaluate", ev,
                                               "rows", arr));
    return MLOC_OK;
}

/* The median-UnitMem live unit of the last conv-block tap, fine-tuned on
 * the candidate of highest SSLMem at the encoder output. */
static mloc_status unit_check(exp_state *e, json_t *doc) {
    mloc_ctx *ctx = e->ctx;
    mloc_model *m = NULL;
    MLOC_TRY(mloc_model_open(ctx, &m, e->f_path, -1));
    mloc_status st = MLOC_OK;
    int tap = -1, ut = -1;
    for (int t = 0; t < e->unit.n_taps; t++) {
        const int mt = mloc_model_find_tap(m, e->unit.tap_names[t]);
        if (mt >= 0 && mloc_apply_tap_block(m, mt) >= 0) tap = mt, ut = t;
    }
    if (tap < 0) {
        st = mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "applications: no conv-block tap for the single-unit check");
        goto done;
    }
    const int a = e->unit.offset[ut], U = e->unit.offset[ut + 1] - a;
    int *live = malloc((size_t)U * sizeof *live), nl = 0;
    if (!live) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "applications: out of memory");
        goto done;
    }
    for (int u = 0; u < U; u++)
        if (!e->unit.dead[a + u]) live[nl++] = u;
    for (int i = 1; i < nl; i++) /* by UnitMem, ties by index */
        for (int j = i; j > 0 && e->unit.score[a + live[j - 1]] > e->unit.score[a + live[j]]; j--) {
            int t = live[j];
            live[j] = live[j - 1];
            live[j - 1] = t;
        }
    const int unit = nl ? live[nl / 2] : 0;
    free(live);
    if (!nl) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "applications: every unit of %s is dead", m->taps[tap].name);
        goto done;
    }
    const int64_t point = e->ssl.points[e->table.top_pos[0]];
    mloc_aug_pipeline aug;
    st = mloc_train_aug_pipeline(ctx, e->train, -1, &aug);
    if (st != MLOC_OK) goto done;
    mloc_unit_finetune_config uc = mloc_unit_finetune_config_default();
    uc.seed = e->ex->metric_seed;
    const int64_t eval_points = e->data.n < 100 ? e->data.n : 100;
    mloc_unit_check_result r;
    st = mloc_unit_check(ctx, m, tap, unit, &e->data, point, &aug, &aug, &uc, eval_points, e->ex->unit_k, &r);
    if (st != MLOC_OK) goto done;
    json_object_set_new(
        doc, "unit_check",
        json_pack("{s:s, s:i, s:I, s:i, s:i, s:i, s:f, s:I, s:i, s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, "
                  "s:o, s:I, s:o, s:o}",
                  "tap", m->taps[tap].name, "unit", unit, "point", (json_int_t)point, "steps", uc.steps, "pairs",
                  uc.pairs, "negatives", uc.negatives, "lr", uc.lr, "eval_points", (json_int_t)r.n_points, "k",
                  e->ex->unit_k, "unitmem_before", real(r.before), "unitmem_after", real(r.after), "mu_point_before",
                  real(r.mu_before), "mu_point_after", real(r.mu_after), "argmax_before", (json_int_t)r.argmax_before,
                  "argmax_after", (json_int_t)r.argmax_after, "same_tap_before", real(r.same_tap_before),
                  "same_tap_after", real(r.same_tap_after), "same_tap_max_change", real(r.same_tap_max_change),
                  "later_before", real(r.later_before), "later_after", real(r.later_after), "later_max_change",
                  real(r.later_max_change), "later_units", (json_int_t)r.later_units, "first_loss",
                  real(r.first_loss), "last_loss", real(r.last_loss)));
    json_object_set_new(json_object_get(doc, "unit_check"), "dead_after", json_boolean(r.dead_after));
done:
    mloc_model_free(m);
    return st;
}

/* The supervised encoder: given, or trained on f's data (S_S + S_C) with the
 * experiment's training settings into DIR/supervised (resumable). */
static mloc_status supervised_encoder(exp_state *e, char *path, size_t size) {
    if (e->ex->supervised[0]) {
        snprintf(path, size, "%s", e->ex->supervised);
        return MLOC_OK;
    }
    mloc_ctx *ctx = e->ctx;
    mloc_train_config c = *e->train;
    c.method = MLOC_METHOD_SUPERVISED;
    const int64_t n = e->split.n_shared + e->split.n_candidate;
    int64_t *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    if (!idx) return mloc_error(ctx, MLOC_ERR_NOMEM, "applications: out of memory");
    memcpy(idx, e->split.shared, (size_t)e->split.n_shared * sizeof *idx);
    memcpy(idx + e->split.n_shared, e->split.candidate, (size_t)e->split.n_candidate * sizeof *idx);
    char *text = mloc_indices_format(idx, n);
    mloc_status st = MLOC_OK;
    if (!text) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "applications: out of memory");
    } else if (strlen(text) < MLOC_OPT_STR_MAX - 1) {
        snprintf(c.indices, sizeof c.indices, "%s", text);
    } else {
        char file[4300];
        snprintf(file, sizeof file, "%s/applications/indices_supervised.txt", e->dir);
        FILE *f = fopen(file, "w");
        if (!f) {
            st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot write", file);
        } else {
            for (int64_t i = 0; i < n; i++) fprintf(f, "%" PRId64 "\n", idx[i]);
            if (fclose(f) != 0) st = mloc_error(ctx, MLOC_ERR_IO, "%s: write failed", file);
            snprintf(c.indices, sizeof c.indices, "@%s", file);
        }
    }
    free(text);
    free(idx);
    if (st != MLOC_OK) return st;
    char run[4200];
    snprintf(run, sizeof run, "%s/supervised", e->dir);
    snprintf(path, size, "%s/model.safetensors", run);
    if (!exists(path)) mloc_log(ctx, MLOC_LOG_INFO, "training the supervised encoder in %s", run);
    mloc_train_result r;
    st = mloc_train_run(ctx, &c, run, 1, &r);
    if (st != MLOC_OK) return mloc_error_prefix(ctx, st, "training the supervised encoder");
    return MLOC_OK;
}

/* Per tap: UnitMem and ClassMem of every unit, summary and the pairs. */
static json_t *unit_pairs(const mloc_unit_scores *um, const mloc_unit_scores *cm) {
    json_t *taps = json_array();
    for (int t = 0; t < um->n_taps; t++) {
        const int a = um->offset[t], U = um->offset[t + 1] - a;
        json_t *u = json_array(), *c = json_array();
        for (int k = 0; k < U; k++) {
            json_array_append_new(u, real(um->score[a + k]));
            json_array_append_new(c, real(cm->score[a + k]));
        }
        json_array_append_new(taps, json_pack("{s:s, s:o, s:o, s:o, s:o}", "tap", um->tap_names[t], "mean_unitmem",
                                              real(mloc_stats_mean(um->score + a, U)), "mean_classmem",
                                              real(mloc_stats_mean(cm->score + a, U)), "unitmem", u, "classmem", c));
    }
    return taps;
}

static mloc_status ssl_vs_supervised(exp_state *e, json_t *doc) {
    mloc_ctx *ctx = e->ctx;
    char sup[4300], adir[4200], sub[4300];
    snprintf(adir, sizeof adir, "%s/applications", e->dir);
    MLOC_TRY(supervised_encoder(e, sup, sizeof sup));
    mloc_model *s = NULL;
    mloc_unit_scores su, fc, sc;
    memset(&su, 0, sizeof su);
    memset(&fc, 0, sizeof fc);
    memset(&sc, 0, sizeof sc);
    int32_t *labels = NULL;
    mloc_status st = mloc_model_open(ctx, &s, sup, MLOC_HEAD_NONE);
    mloc_model *f = NULL;
    if (st == MLOC_OK) st = mloc_model_open(ctx, &f, e->f_path, MLOC_HEAD_NONE);
    if (st == MLOC_OK) st = mloc_metrics_check_pair(ctx, f, s);
    if (st != MLOC_OK) goto done;
    /* UnitMem views: the experiment's UnitMem pipeline (train|none|simclr|unitmem) */
    mloc_aug_pipeline aug;
    st = mloc_train_aug_pipeline(ctx, e->train, e->ex->unit_aug == 0 ? -1 : e->ex->unit_aug - 1, &aug);
    mloc_view_source src;
    if (st == MLOC_OK)
        st = mloc_view_source_dataset(ctx, &src, &e->data, &aug, e->ex->metric_seed, MLOC_PURPOSE_UNITMEM);
    if (st != MLOC_OK) goto done;
    mloc_unit_config uc = e->unit.cfg;
    uc.save_mu = -1;
    st = mloc_unitmem_compute(ctx, &su, s, &src, e->ssl.points, e->ssl.n, NULL, 0, &uc);
    if (st != MLOC_OK) goto done;
    /* ClassMem over the same candidates, clean views */
    labels = malloc((size_t)e->ssl.n * sizeof *labels);
    if (!labels) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "applications: out of memory");
        goto done;
    }
    st = mloc_features_labels(ctx, labels, &e->data, e->ssl.points, e->ssl.n);
    if (st != MLOC_OK) goto done;
    mloc_unit_config cc = mloc_classmem_config_default();
    cc.rest = uc.rest;
    cc.batch = uc.batch;
    st = mloc_classmem_compute(ctx, &fc, f, &src, e->ssl.points, labels, e->ssl.n, e->data.n_classes, NULL, 0, &cc);
    if (st == MLOC_OK)
        st = mloc_classmem_compute(ctx, &sc, s, &src, e->ssl.points, labels, e->ssl.n, e->data.n_classes, NULL, 0, &cc);
    if (st != MLOC_OK) goto done;
    mloc_metric_run run = {.command = "experiment --applications", .data_spec = e->train->data,
                           .data_digest = e->data_digest, .aug = &aug, .aug_seed = e->ex->metric_seed,
                           .purpose = MLOC_PURPOSE_UNITMEM, .seed = e->ex->metric_seed};
    run.f_path = e->f_path;
    snprintf(sub, sizeof sub, "%s/ssl", adir);
    st = mloc_unit_scores_write(ctx, sub, "unitmem", &e->unit, &run);
    if (st == MLOC_OK) st = mloc_unit_scores_write(ctx, sub, "classmem", &fc, &run);
    run.f_path = sup;
    snprintf(sub, sizeof sub, "%s/supervised", adir);
    if (st == MLOC_OK) st = mloc_unit_scores_write(ctx, sub, "unitmem", &su, &run);
    if (st == MLOC_OK) st = mloc_unit_scores_write(ctx, sub, "classmem", &sc, &run);
    if (st != MLOC_OK) goto done;
    json_object_set_new(doc, "ssl_vs_supervised",
                        json_pack("{s:s, s:s, s:I, s:o, s:o}", "ssl", e->f_path, "supervised", sup, "points",
                                  (json_int_t)e->ssl.n, "ssl_taps", unit_pairs(&e->unit, &fc), "supervised_taps",
                                  unit_pairs(&su, &sc)));
done:
    free(labels);
    mloc_unit_scores_free(&su);
    mloc_unit_scores_free(&fc);
    mloc_unit_scores_free(&sc);
    mloc_model_free(s);
    mloc_model_free(f);
    return st;
}

/* ---- findings, computed from the numbers ----------------------------------------------- */

static const json_t *row_where(const json_t *rows, const char *key, const char *value, const char *key2, double v2) {
    size_t i;
    const json_t *r;
    json_array_foreach(rows, i, r) {
        const char *s = json_string_value(json_object_get(r, key));
        if (s && !strcmp(s, value) && fabs(num(r, key2) - v2) < 1e-9) return r;
    }
    return NULL;
}

static void add_finding(json_t *arr, const char *id, const char *claim, int holds, const char *evidence) {
    json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:s}", "id", id, "claim", claim, "holds", holds, "evidence",
                                         evidence));
}

static json_t *findings(const json_t *doc) {
    json_t *out = json_array();
    char ev[512] = "";
    const json_t *ft = json_object_get(json_object_get(doc, "finetune"), "rows");
    if (ft) {
        int wins = 0, total = 0, o = 0;
        for (int n = 1; n <= 2; n++) {
            const json_t *lm = row_where(ft, "select", "layermem", "n", n), *dl = row_where(ft, "select", "delta", "n", n),
                         *la = row_where(ft, "select", "last", "n", n);
            if (!lm || !dl || !la) continue;
            const double best = fmax(num(lm, "test_top1"), num(dl, "test_top1"));
            wins += best > num(la, "test_top1");
            total++;
            o += snprintf(ev + o, sizeof ev - (size_t)o, "%sn=%d: LayerMem %.2f%%, ΔLayerMem %.2f%%, last %.2f%%",
                          o ? "; " : "", n, 100 * num(lm, "test_top1"), 100 * num(dl, "test_top1"),
                          100 * num(la, "test_top1"));
        }
        add_finding(out, "finetune_memorizing_beats_last",
                    "Fine-tuning the most memorizing blocks (highest LayerMem or ΔLayerMem) beats fine-tuning the last "
                    "blocks (paper, Table 4)",
                    total > 0 && wins == total, ev);
    }
    const json_t *pr = json_object_get(json_object_get(doc, "prune"), "rows");
    ev[0] = 0;
    if (pr) {
        int ok = 1, total = 0, o = 0;
        for (int k = 1; k <= 2; k++) {
            const double f = 0.1 * k;
            const json_t *t = row_where(pr, "by", "top", "fraction", f), *b = row_where(pr, "by", "bottom", "fraction", f),
                         *r = row_where(pr, "by", "random", "fraction", f);
            if (!t || !b || !r) continue;
            total++;
            ok &= num(t, "test_top1") < num(b, "test_top1") && num(t, "test_top1") < num(r, "test_top1");
            o += snprintf(ev + o, sizeof ev - (size_t)o, "%s%.0f%%: top %.2f%%, bottom %.2f%%, random %.2f%%", o ? "; " : "",
                          100 * f, 100 * num(t, "test_top1"), 100 * num(b, "test_top1"), 100 * num(r, "test_top1"));
        }
        add_finding(out, "prune_top_hurts_most",
                    "Pruning the highest-UnitMem units lowers probe accuracy more than pruning the lowest or random "
                    "units (paper, Section 5)",
                    total > 0 && ok, ev);
    }
    const json_t *uc = json_object_get(doc, "unit_check");
    if (uc) {
        snprintf(ev, sizeof ev, "%s unit %d on point %" JSON_INTEGER_FORMAT ": UnitMem %.4f -> %.4f; the tap's other units "
                 "change by at most %.3g",
                 json_string_value(json_object_get(uc, "tap")), (int)num(uc, "unit"),
                 json_integer_value(json_object_get(uc, "point")), num(uc, "unitmem_before"), num(uc, "unitmem_after"),
                 num(uc, "same_tap_max_change"));
        add_finding(out, "unit_check_rises",
                    "Fine-tuning one unit on one data point raises that unit's UnitMem while the other units stay "
                    "(SPEC 8)",
                    num(uc, "unitmem_after") > num(uc, "unitmem_before") && num(uc, "same_tap_max_change") == 0, ev);
    }
    const json_t *sv = json_object_get(doc, "ssl_vs_supervised");
    if (sv) {
        const json_t *a = json_object_get(sv, "ssl_taps"), *b = json_object_get(sv, "supervised_taps");
        const size_t T = json_array_size(a);
        const json_t *la = json_array_get(a, T - 1), *lb = json_array_get(b, T - 1);
        snprintf(ev, sizeof ev, "at %s: UnitMem SSL %.4f vs supervised %.4f; ClassMem SSL %.4f vs supervised %.4f",
                 json_string_value(json_object_get(la, "tap")), num(la, "mean_unitmem"), num(lb, "mean_unitmem"),
                 num(la, "mean_classmem"), num(lb, "mean_classmem"));
        add_finding(out, "ssl_units_memorize_points",
                    "At the encoder output, SSL units memorize individual points more (higher mean UnitMem) and "
                    "classes less (lower mean ClassMem) than supervised units (paper, Section 4.2)",
                    num(la, "mean_unitmem") > num(lb, "mean_unitmem") && num(la, "mean_classmem") < num(lb, "mean_classmem"),
                    ev);
    }
    return out;
}

/* ---- the step, the summary and the report section --------------------------------------- */

mloc_status mloc_experiment_applications(exp_state *e) {
    mloc_ctx *ctx = e->ctx;
    const mloc_experiment_config *ex = e->ex;
    if (ex->app_epochs < 1)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "option app_epochs: %d, expected >= 1", ex->app_epochs);
    if (ex->app_donor[0] && !ex->app_data[0])
        return mloc_error(ctx, MLOC_ERR_CONFIG, "option app_donor: the layer-exchange table needs app_data too");
    char adir[4200], path[4300], train_spec[MLOC_OPT_STR_MAX], test_spec[MLOC_OPT_STR_MAX];
    snprintf(adir, sizeof adir, "%s/applications", e->dir);
    MLOC_TRY(mloc_mkdirs(ctx, adir));
    if (ex->app_data[0] && !split_pair(ex->app_data, train_spec, test_spec, sizeof train_spec))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "option app_data: expected TRAIN,TEST (two labelled dataset specs), got '%s'",
                          ex->app_data);
    json_t *doc = json_pack("{s:s, s:s}", "schema", "memloc.applications/1", "encoder", e->f_path);
    mloc_layer_scores s;
    memset(&s, 0, sizeof s);
    mloc_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    mloc_model *f = NULL;
    mloc_status st = layer_scores(e, &s);
    if (st == MLOC_OK && ex->app_data[0]) {
        mloc_eval_data_options dopt = mloc_eval_data_options_default();
        st = mloc_model_open(ctx, &f, e->f_path, MLOC_HEAD_NONE);
        if (st == MLOC_OK) st = mloc_eval_dataset_open(ctx, &train, train_spec, f, &dopt);
        if (st == MLOC_OK) st = mloc_eval_dataset_open(ctx, &test, test_spec, f, &dopt);
        if (st == MLOC_OK)
            json_object_set_new(doc, "data", json_pack("{s:s, s:I, s:s, s:I}", "train", train_spec, "n_train",
                                                       (json_int_t)train.n, "test", test_spec, "n_test", (json_int_t)test.n));
        mloc_log(ctx, MLOC_LOG_INFO, "applications: fine-tuning table");
        if (st == MLOC_OK) st = finetune_table(e, &s, &train, &test, doc);
        mloc_log(ctx, MLOC_LOG_INFO, "applications: pruning table");
        if (st == MLOC_OK) st = prune_table(e, &train, &test, doc);
        if (st == MLOC_OK && ex->app_donor[0]) st = swap_table(e, &s, train_spec, test_spec, doc);
    }
    mloc_log(ctx, MLOC_LOG_INFO, "applications: single-unit check");
    if (st == MLOC_OK) st = unit_check(e, doc);
    mloc_log(ctx, MLOC_LOG_INFO, "applications: SSL vs supervised");
    if (st == MLOC_OK) st = ssl_vs_supervised(e, doc);
    if (st == MLOC_OK) {
        json_object_set_new(doc, "findings", findings(doc));
        snprintf(path, sizeof path, "%s/applications.json", adir);
        st = mloc_json_save(ctx, path, doc);
    }
    if (st != MLOC_OK) mloc_error_prefix(ctx, st, "applications");
    json_decref(doc);
    mloc_layer_scores_free(&s);
    mloc_dataset_free(&train);
    mloc_dataset_free(&test);
    mloc_model_free(f);
    return st;
}

void mloc_experiment_applications_summary(exp_state *e, json_t *summary) {
    char path[4300];
    snprintf(path, sizeof path, "%s/applications/applications.json", e->dir);
    json_t *doc = json_load_file(path, 0, NULL);
    if (!doc) return;
    /* the per-unit arrays stay in applications.json; the summary keeps the tables */
    json_t *copy = json_deep_copy(doc);
    json_t *sv = json_object_get(copy, "ssl_vs_supervised");
    const char *keys[] = {"ssl_taps", "supervised_taps"};
    for (int k = 0; sv && k < 2; k++) {
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(sv, keys[k]), i, t) {
            json_object_del(t, "unitmem");
            json_object_del(t, "classmem");
        }
    }
    json_object_set_new(summary, "applications", copy);
    json_decref(doc);
}

static void pct(mloc_buf *b, double v) {
    if (isfinite(v))
        mloc_buf_printf(b, "<td>%.2f%%</td>", 100 * v);
    else
        mloc_buf_puts(b, "<td>–</td>");
}

void mloc_experiment_applications_report(exp_state *e, mloc_buf *b) {
    char path[4300];
    snprintf(path, sizeof path, "%s/applications/applications.json", e->dir);
    json_t *doc = json_load_file(path, 0, NULL);
    mloc_buf_puts(b, "<h2 id=\"applications\">Acting on memorization (applications, SPEC 8)</h2>\n");
    if (!doc) {
        mloc_buf_puts(b, "<p class=\"muted\">No applications.json was written.</p>\n");
        return;
    }
    /* findings */
    mloc_buf_puts(b, "<table id=\"app-findings\"><tr><th>finding</th><th style=\"text-align:left\">result</th>"
                     "<th style=\"text-align:left\">evidence</th></tr>");
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(doc, "findings"), i, f) {
        const int holds = json_is_true(json_object_get(f, "holds"));
        mloc_buf_puts(b, "<tr><td style=\"text-align:left\">");
        mloc_buf_escape(b, json_string_value(json_object_get(f, "claim")));
        mloc_buf_printf(b, "</td><td class=\"%s\" style=\"text-align:left\">%s</td><td style=\"text-align:left\">",
                        holds ? "ok" : "no", holds ? "reproduced" : "not reproduced");
        mloc_buf_escape(b, json_string_value(json_object_get(f, "evidence")));
        mloc_buf_puts(b, "</td></tr>");
    }
    mloc_buf_puts(b, "</table>\n");
    const json_t *data = json_object_get(doc, "data");
    if (data) {
        mloc_buf_puts(b, "<p class=\"muted\">Downstream data: <code>");
        mloc_buf_escape(b, json_string_value(json_object_get(data, "train")));
        mloc_buf_printf(b, "</code> (%" JSON_INTEGER_FORMAT " images) for training, <code>",
                        json_integer_value(json_object_get(data, "n_train")));
        mloc_buf_escape(b, json_string_value(json_object_get(data, "test")));
        mloc_buf_printf(b, "</code> (%" JSON_INTEGER_FORMAT " images) for testing.</p>\n",
                        json_integer_value(json_object_get(data, "n_test")));
    }
    /* fine-tuning */
    const json_t *ft = json_object_get(doc, "finetune");
    if (ft) {
        mloc_buf_printf(b, "<h3 id=\"app-finetune\">Memorization-guided fine-tuning (the paper's Table 4)</h3>\n"
                           "<p class=\"muted\">The chosen blocks of f and a linear head, %d epochs, Adam lr %g, seed %"
                           JSON_INTEGER_FORMAT "; every other parameter frozen, its BatchNorm in eval mode. Test top-1.</p>",
                        (int)num(ft, "epochs"), num(ft, "lr"), json_integer_value(json_object_get(ft, "seed")));
        mloc_buf_puts(b, "<table><tr><th>selection</th><th>n = 1</th><th>blocks</th><th>n = 2</th><th>blocks</th></tr>");
        const json_t *rows = json_object_get(ft, "rows");
        const json_t *head = row_where(rows, "select", "head", "n", 0);
        if (head) {
            mloc_buf_puts(b, "<tr><td>head only (frozen encoder)</td>");
            pct(b, num(head, "test_top1"));
            mloc_buf_puts(b, "<td></td><td></td><td></td></tr>");
        }
        for (int r = 0; r < MLOC_SELECT_COUNT; r++) {
            mloc_buf_printf(b, "<tr><td>%s</td>", mloc_select_rule_name(r));
            for (int n = 1; n <= 2; n++) {
                const json_t *row = row_where(rows, "select", mloc_select_rule_name(r), "n", n);
                pct(b, row ? num(row, "test_top1") : NAN);
                mloc_buf_puts(b, "<td style=\"text-align:left\"><code>");
                if (row) mloc_buf_escape(b, json_string_value(json_object_get(row, "blocks")));
                mloc_buf_puts(b, "</code></td>");
            }
            mloc_buf_puts(b, "</tr>");
        }
        mloc_buf_puts(b, "</table>\n");
    }
    /* pruning */
    const json_t *pr = json_object_get(doc, "prune");
    if (pr) {
        mloc_buf_puts(b, "<h3 id=\"app-prune\">Pruning by UnitMem</h3>\n<p class=\"muted\">A share of the live units of "
                         "every conv-block tap of f zeroed (conv weight slice and bias, BN weight and bias), then a "
                         "linear probe re-trained. Residual taps own no parameters.</p>");
        mloc_buf_puts(b, "<table><tr><th>units</th><th>fraction</th><th>pruned</th><th>test top-1</th></tr>");
        const json_t *r;
        json_array_foreach(json_object_get(pr, "rows"), i, r) {
            mloc_buf_puts(b, "<tr><td>");
            mloc_buf_escape(b, json_string_value(json_object_get(r, "by")));
            mloc_buf_printf(b, "</td><td>%.0f%%</td><td>%" JSON_INTEGER_FORMAT "</td>", 100 * num(r, "fraction"),
                            json_integer_value(json_object_get(r, "units")));
            pct(b, num(r, "test_top1"));
            mloc_buf_puts(b, "</tr>");
        }
        mloc_buf_puts(b, "</table>\n");
    }
    /* layer exchange */
    const json_t *sw = json_object_get(doc, "swap");
    if (sw) {
        mloc_buf_puts(b, "<h3 id=\"app-swap\">Layer exchange</h3>\n<p class=\"muted\">f with its 2 most / least "
                         "memorizing (LayerMem) or 2 random blocks replaced by the donor's <code>");
        mloc_buf_escape(b, json_string_value(json_object_get(sw, "donor")));
        mloc_buf_puts(b, "</code>; linear-probe test top-1 on each dataset.</p><table><tr><th>encoder</th>");
        const json_t *ev;
        json_array_foreach(json_object_get(sw, "evaluate"), i, ev) {
            mloc_buf_puts(b, "<th>");
            mloc_buf_escape(b, json_string_value(json_object_get(ev, "test")));
            mloc_buf_puts(b, "</th>");
        }
        mloc_buf_puts(b, "<th>blocks from the donor</th></tr>");
        const json_t *r;
        json_array_foreach(json_object_get(sw, "rows"), i, r) {
            mloc_buf_puts(b, "<tr><td>");
            mloc_buf_escape(b, json_string_value(json_object_get(r, "row")));
            mloc_buf_puts(b, "</td>");
            size_t k;
            const json_t *acc;
            json_array_foreach(json_object_get(r, "test_top1"), k, acc) pct(b, json_number_value(acc));
            const char *blocks = json_string_value(json_object_get(r, "blocks"));
            if (blocks && blocks[0]) {
                mloc_buf_puts(b, "<td style=\"text-align:left\"><code>");
                mloc_buf_escape(b, blocks);
                mloc_buf_puts(b, "</code></td></tr>");
            } else {
                mloc_buf_printf(b, "<td style=\"text-align:left\" class=\"muted\">%s</td></tr>",
                                i == 0 ? "none (f as it is)" : "all (the donor itself)");
            }
        }
        mloc_buf_puts(b, "</table>\n");
    }
    /* single unit */
    const json_t *uc = json_object_get(doc, "unit_check");
    if (uc) {
        mloc_buf_printf(b, "<h3 id=\"app-unit\">Single-unit check</h3>\n<p class=\"muted\">Unit %d of <code>%s</code> "
                           "(the median-UnitMem live unit) trained alone for %d steps on candidate #%" JSON_INTEGER_FORMAT
                           " (highest SSLMem): NT-Xent anchored on it, %d view pairs and %d negatives per step. UnitMem "
                           "over %" JSON_INTEGER_FORMAT " images.</p>",
                        (int)num(uc, "unit"), json_string_value(json_object_get(uc, "tap")), (int)num(uc, "steps"),
                        json_integer_value(json_object_get(uc, "point")), (int)num(uc, "pairs"),
                        (int)num(uc, "negatives"), json_integer_value(json_object_get(uc, "eval_points")));
        mloc_buf_puts(b, "<table><tr><th></th><th>before</th><th>after</th></tr><tr><td>UnitMem of the unit</td>");
        mloc_buf_printf(b, "<td>%.4f</td><td>%.4f</td></tr><tr><td>its μ on the point</td><td>%.4f</td><td>%.4f</td></tr>",
                        num(uc, "unitmem_before"), num(uc, "unitmem_after"), num(uc, "mu_point_before"),
                        num(uc, "mu_point_after"));
        mloc_buf_printf(b, "<tr><td>its μ<sub>max</sub> point</td><td>#%" JSON_INTEGER_FORMAT "</td><td>#%" JSON_INTEGER_FORMAT
                           "</td></tr>",
                        json_integer_value(json_object_get(uc, "argmax_before")),
                        json_integer_value(json_object_get(uc, "argmax_after")));
        mloc_buf_printf(b, "<tr><td>mean UnitMem, other units of the tap</td><td>%.4f</td><td>%.4f</td></tr>"
                           "<tr><td>mean UnitMem, units of later taps</td><td>%.4f</td><td>%.4f</td></tr></table>\n",
                        num(uc, "same_tap_before"), num(uc, "same_tap_after"), num(uc, "later_before"),
                        num(uc, "later_after"));
    }
    /* SSL vs supervised: ClassMem vs UnitMem per tap, side by side */
    const json_t *sv = json_object_get(doc, "ssl_vs_supervised");
    if (sv) {
        mloc_buf_printf(b, "<h3 id=\"app-ssl-sup\">SSL vs supervised: ClassMem vs UnitMem</h3>\n<p class=\"muted\">One "
                           "point per unit, over the %" JSON_INTEGER_FORMAT " evaluated candidates: SSL encoder f (left) and a "
                           "supervised encoder of the same architecture (right) <code>",
                        json_integer_value(json_object_get(sv, "points")));
        mloc_buf_escape(b, json_string_value(json_object_get(sv, "supervised")));
        mloc_buf_puts(b, "</code>.</p><table><tr><th>tap</th><th>UnitMem SSL</th><th>UnitMem sup.</th><th>ClassMem SSL</th>"
                         "<th>ClassMem sup.</th></tr>");
        const json_t *a = json_object_get(sv, "ssl_taps"), *c = json_object_get(sv, "supervised_taps");
        const json_t *ta;
        json_array_foreach(a, i, ta) {
            const json_t *tc = json_array_get(c, i);
            mloc_buf_puts(b, "<tr><td>");
            mloc_buf_escape(b, json_string_value(json_object_get(ta, "tap")));
            mloc_buf_printf(b, "</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td></tr>", num(ta, "mean_unitmem"),
                            num(tc, "mean_unitmem"), num(ta, "mean_classmem"), num(tc, "mean_classmem"));
        }
        mloc_buf_puts(b, "</table>\n");
        json_array_foreach(a, i, ta) {
            const json_t *pair[2] = {ta, json_array_get(c, i)};
            static const char *const who[] = {"SSL", "supervised"};
            for (int k = 0; k < 2; k++) {
                const json_t *um = json_object_get(pair[k], "unitmem"), *cm = json_object_get(pair[k], "classmem");
                const int n = (int)json_array_size(um);
                double *x = malloc((size_t)(n ? n : 1) * sizeof *x), *y = malloc((size_t)(n ? n : 1) * sizeof *y);
                if (!x || !y) {
                    free(x);
                    free(y);
                    b->failed = 1;
                    break;
                }
                for (int u = 0; u < n; u++) {
                    x[u] = json_number_value(json_array_get(cm, (size_t)u));
                    y[u] = json_number_value(json_array_get(um, (size_t)u));
                }
                char title[128];
                snprintf(title, sizeof title, "%s: %s", who[k], json_string_value(json_object_get(ta, "tap")));
                mloc_svg_scatter(b, title, "ClassMem", "UnitMem", x, y, n, NULL, NULL, 0);
                free(x);
                free(y);
            }
        }
    }
    json_decref(doc);
}
