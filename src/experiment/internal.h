/* Experiment internals: the state shared by the steps (experiment.c), the
 * metrics (metrics.c), the summary and the report (report.c). */
#ifndef MLOC_EXPERIMENT_INTERNAL_H
#define MLOC_EXPERIMENT_INTERNAL_H

#include <jansson.h>

#include "memloc/data.h"
#include "memloc/experiment.h"
#include "memloc/metrics.h"
#include "memloc/report.h"
#include "memloc/stats.h"

/* The control at one tap: mean SSLMem of the candidates (C_eval), shared
 * and independent points, and Welch's one-sided tests candidates > shared
 * (f's memorization of its candidates) and candidates > independent (f's plus
 * g's of its independent points). In both the f-g difference cancels. */
typedef struct {
    double cand, shared, indep;
    mloc_ttest test, test_ci;
} ctl_tap;

typedef struct {
    mloc_ctx *ctx;
    const mloc_train_config *train;
    const mloc_experiment_config *ex;
    char dir[4096];
    mloc_dataset data;
    mloc_split split;
    char f_path[4200], g_path[4200];
    char data_digest[65];
    /* metric results */
    mloc_sslmem_result ssl;            /* C_eval, every tap */
    mloc_layermem_table table;
    mloc_ttest out_test;               /* one-sided: mean SSLMem at the output > 0 */
    /* the control (SPEC 1: f and g differ by more than the candidates): SSLMem
     * at every tap of points both encoders trained on (S_S) and of points
     * only g trained on (S_I), as many as C_eval, chosen with the metric seed */
    mloc_sslmem_result ctl_shared, ctl_indep;
    mloc_ttest ctl_test;               /* Welch, one-sided: candidates > shared, at the output */
    mloc_ttest ctl_indep_test;         /* Welch, one-sided: shared > independent, at the output */
    mloc_ttest ctl_ci_test;            /* Welch, one-sided: candidates > independent, at the output */
    ctl_tap *ctl_taps;                 /* per tap of ssl: the same comparison */
    mloc_unit_scores unit;             /* UnitMem of f over C_eval */
    mloc_unit_scores unit_top, unit_least;
    mloc_ttest *ttests;                /* per tap */
    mloc_consistency_pair *pairs;      /* T(T-1)/2 */
    int n_pairs;
    mloc_mumax_row *mumax;
    int64_t n_mumax;
    char aug_desc[256], unit_aug_desc[256];
    int unit_abs;                      /* UnitMem on |a| (signed taps) */
    json_t *summary;
} exp_state;

/* One of the paper's findings decided on this run by the rule its claim
 * states (report.c): summary.json's findings, the report's table and the
 * terminal's verdicts all come from here. */
typedef struct {
    const char *id, *claim;
    int holds;
    char evidence[512];
} exp_finding;
#define EXP_MAX_FINDINGS 12

/* The findings of the run in e (its metric results) into f[0..EXP_MAX_FINDINGS);
 * returns their number. */
int mloc_experiment_findings(const exp_state *e, exp_finding *f);

mloc_status mloc_experiment_metrics(exp_state *e);
mloc_status mloc_experiment_summary(exp_state *e, mloc_experiment_result *res);
mloc_status mloc_experiment_report(exp_state *e, mloc_experiment_result *res);
void mloc_experiment_state_free(exp_state *e);
/* --applications (applications.c): run and write DIR/applications/; add its
 * tables to summary.json; the report section. */
mloc_status mloc_experiment_applications(exp_state *e);
void mloc_experiment_applications_summary(exp_state *e, json_t *summary);
void mloc_experiment_applications_report(exp_state *e, mloc_buf *b);

#endif
