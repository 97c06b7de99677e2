/* The paper's study in one call (SPEC.md sections 1-7): split the data, train
 * f and g with identical settings (or take given weights), measure SSLMem /
 * LayerMem / ΔLayerMem for every tap, UnitMem for every unit, run the
 * analyses, and write summary.json and a self-contained report.html.
 *
 * Output directory:
 *   experiment.json   the options of this experiment (training and metrics)
 *   split.json        S_S / S_C / S_I (SPEC 1)
 *   f/, g/            training run directories (include/memloc/train.h)
 *   metrics/          layermem.*, unitmem.*, consistency.*, ttest.* (with
 *                     ttest_top/, ttest_least/), mumax.* (include/memloc/metrics.h)
 *   summary.json      schema memloc.experiment/1: every number of the report
 *   report.html       tables and inline SVG charts, offline
 * Re-running the same command continues an interrupted experiment: finished
 * encoders are never retrained, an interrupted one resumes from its
 * checkpoint, and the metrics (seconds) are recomputed. */
#ifndef MEMLOC_EXPERIMENT_H
#define MEMLOC_EXPERIMENT_H

#include "memloc/context.h"
#include "memloc/options.h"
#include "memloc/train.h"

/* X(name, type, field, default, choices, help) */
#define MLOC_EXPERIMENT_OPTIONS(X)                                                                      \
    X(shared, REAL, shared, "0.8", NULL, "fraction of the data in S_S (f and g train on it)")          \
    X(candidates, REAL, candidates, "0.1", NULL, "fraction in S_C (only f trains on it)")              \
    X(independent, REAL, independent, "0.1", NULL, "fraction in S_I (only g trains on it)")            \
    X(split, STR, split, "", NULL, "use this split.json instead of the fractions")                     \
    X(f, STR, f, "", NULL, "weights of f (safetensors): skip training")                                \
    X(g, STR, g, "", NULL, "weights of g (safetensors): skip training")                                \
    X(eval, INT, eval, "500", NULL, "candidates evaluated (C_eval), chosen with --metric-seed")         \
    X(k, INT, k, "5", NULL, "augmentations per point for SSLMem / LayerMem")                           \
    X(views, CHOICE, views, "clean", "clean|pair",                                                    \
      "SSLMem views: clean vs augmented (reference code) or two augmented (papers)")                  \
    X(score_norm, CHOICE, score_norm, "range", "range|minmax|none", "LayerMem normalisation")          \
    X(random, INT, random, "100", NULL, "candidates in the LayerMem column")                           \
    X(top, INT, top, "50", NULL, "size of the Top and Least sets")                                     \
    X(unit_k, INT, unit_k, "10", NULL, "augmentations per point for UnitMem")                          \
    X(rest, CHOICE, rest, "mean", "mean|median", "UnitMem mu_rest: paper (mean) or reference code (median)") \
    X(unit_aug, CHOICE, unit_aug, "train", "train|none|simclr|unitmem",                               \
      "UnitMem augmentations: the training pipeline (SPEC 2), or a preset (unitmem: UnitMem.py's)")   \
    X(consistency_k, INT, consistency_k, "100", NULL, "top-k of the overlap between taps")            \
    X(equal_var, BOOL, equal_var, "1", NULL, "Student's t-test (reference) rather than Welch's")       \
    X(metric_seed, U64, metric_seed, "0", NULL, "seed of the metrics' choices and augmentations")      \
    X(metric_batch, INT, metric_batch, "256", NULL, "images per forward pass in the metrics")           \
    /* the applications section (src/experiment/applications.c, SPEC 8) */                             \
    X(applications, BOOL, applications, "0", NULL,                                                     \
      "also run the applications: fine-tuning, pruning, layer exchange, single-unit check, SSL vs supervised") \
    X(app_data, STR, app_data, "", NULL, "applications: TRAIN,TEST labelled downstream sets (fine-tuning, pruning)") \
    X(app_epochs, INT, app_epochs, "3", NULL, "applications: fine-tuning epochs")                      \
    X(app_donor, STR, app_donor, "", NULL, "applications: donor encoder for the layer-exchange table")  \
    X(app_donor_data, STR, app_donor_data, "", NULL, "applications: TRAIN,TEST of the donor's domain")  \
    X(supervised, STR, supervised, "", NULL,                                                           \
      "applications: supervised encoder for ClassMem vs UnitMem (empty: train one on f's data)")

typedef struct {
    MLOC_EXPERIMENT_OPTIONS(MLOC_OPT_FIELD)
} mloc_experiment_config;

extern const mloc_option_table mloc_experiment_options;

mloc_experiment_config mloc_experiment_config_default(void);
mloc_status mloc_experiment_config_check(mloc_ctx *ctx, const mloc_experiment_config *ex,
                                         const mloc_train_config *train);

typedef struct {
    int trained;            /* encoders trained (or resumed) by this call */
    double sslmem_mean, sslmem_t, sslmem_p;   /* one-sided test at the encoder output */
    int memorization;       /* mean > 0 and p < 0.01 */
    double shared_mean, control_p;  /* the control: SSLMem of shared points; Welch p, candidates > shared */
    int beyond_shared;      /* candidates above shared points, p < 0.01 */
    double indep_mean, indep_p;     /* independent points' SSLMem; Welch p, candidates > independent */
    int beyond_independent; /* candidates above independent points, p < 0.01 */
    int top_exceeds_least;  /* at every tap */
    char memorized_taps[1024]; /* taps where candidates exceed independent points (p < 0.01), comma-separated */
    int n_memorized_taps, n_taps;
    char report[4200];      /* path of report.html */
    char table[8192];       /* the LayerMem table as aligned text */
} mloc_experiment_result;

/* Run (or continue) the experiment in dir. train->data is the pool that is
 * split; train->indices must be empty (use SPEC@INDICES to choose the pool). */
mloc_status mloc_experiment_run(mloc_ctx *ctx, const mloc_train_config *train,
                                const mloc_experiment_config *ex, const char *dir,
                                mloc_experiment_result *res);

#endif
