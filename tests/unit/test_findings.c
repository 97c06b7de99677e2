/* The paper's findings as `memloc experiment` decides them
 * (mloc_experiment_findings, src/experiment/report.c), on synthetic metric
 * results where the right verdict is known: each rule's every clause is
 * made to fail in turn. The e2e test checks the same verdicts against a real
 * run's numbers; this one reaches the cases a small run does not. */
#include <math.h>
#include <string.h>

#include "experiment/internal.h"
#include "test_util.h"

#define T 6 /* taps */
#define N 4 /* points per set */

/* A run where every finding holds: memorized at the output (beyond shared and
 * independent points, in the last two taps), Top above Least everywhere,
 * LayerMem rising with one dip, the excess over independent points rising,
 * UnitMem significant at 4 of 6 taps. */
typedef struct {
    exp_state e;
    char names[T][64];
    double out[N], shared[N], indep[N];
    double random[T], delta[T], top[T], least[T];
    ctl_tap taps[T];
    mloc_ttest tt[T];
    exp_finding f[EXP_MAX_FINDINGS];
    int n;
} run;

static void make(run *r) {
    memset(r, 0, sizeof *r);
    static const char *names[T] = {"prep", "layer1", "res1", "layer2", "layer3", "res2"};
    for (int l = 0; l < T; l++) snprintf(r->names[l], 64, "%s", names[l]);
    for (int i = 0; i < N; i++) {
        r->out[i] = 0.01 + 0.001 * i;
        r->shared[i] = 0.002 + 0.001 * i;
        r->indep[i] = -0.004 + 0.001 * i;
    }
    for (int l = 0; l < T; l++) {
        r->random[l] = 0.1 * l;
        r->top[l] = 0.3;
        r->least[l] = -0.3;
        r->taps[l] = (ctl_tap){.cand = 0.001 * l, .shared = 0, .indep = -0.0001 * l * l};
        r->taps[l].test = r->taps[l].test_ci = (mloc_ttest){0.5, 2 * N - 2, 0.3};
        r->tt[l] = (mloc_ttest){l >= 2 ? 3.0 : 0.5, 98, l >= 2 ? 0.01 : 0.3};
    }
    r->random[3] = 0.15; /* a dip at layer2 */
    for (int l = 0; l < T; l++) r->delta[l] = l ? r->random[l] - r->random[l - 1] : r->random[0];
    r->taps[4].test_ci.p = 0.005;
    r->taps[5].test_ci.p = 1e-5;

    exp_state *e = &r->e;
    e->ssl.n = N, e->ssl.n_taps = T, e->ssl.tap_names = r->names, e->ssl.out_score = r->out;
    e->table.n_taps = T, e->table.random = r->random, e->table.delta = r->delta;
    e->table.top = r->top, e->table.least = r->least;
    e->out_test = (mloc_ttest){5.0, N - 1, 1e-4};
    e->ctl_shared.n = N, e->ctl_shared.out_score = r->shared;
    e->ctl_indep.n = N, e->ctl_indep.out_score = r->indep;
    e->ctl_test = (mloc_ttest){4.0, 6, 0.003};
    e->ctl_ci_test = (mloc_ttest){6.0, 6, 1e-4};
    e->ctl_taps = r->taps;
    e->unit_top.n_taps = T;
    e->ttests = r->tt;
}

/* cmocka setup: *state is a fresh all-hold run (static: exp_state is large) */
static int setup(void **state) {
    static run r;
    make(&r);
    *state = &r;
    return 0;
}

static const exp_finding *get(run *r, const char *id) {
    r->n = mloc_experiment_findings(&r->e, r->f);
    assert_true(r->n <= EXP_MAX_FINDINGS);
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->f[i].id, id)) return &r->f[i];
    return NULL;
}

static int verdict(run *r, const char *id) {
    const exp_finding *f = get(r, id);
    assert_non_null(f);
    return f->holds;
}

static void test_all_hold(void **state) {
    run *r = *state;
    const char *ids[] = {"memorization", "memorization_vs_shared", "memorization_vs_independent", "top_vs_least",
                         "grows_with_depth", "grows_with_depth_controlled", "non_monotone", "unitmem_ttest"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (!verdict(r, ids[i])) fail_msg("%s does not hold: %s", ids[i], get(r, ids[i])->evidence);
    }
    assert_int_equal(r->n, 8); /* no ViT blocks, no ViT finding */
}

static void test_memorization(void **state) {
    run *r = *state;
    r->e.out_test.p = 0.011; /* not significant */
    assert_false(verdict(r, "memorization"));
    make(r);
    for (int i = 0; i < N; i++) r->out[i] = -r->out[i]; /* significant but negative */
    assert_false(verdict(r, "memorization"));
    /* candidates below shared / independent points: no excess */
    assert_false(verdict(r, "memorization_vs_shared"));
    assert_false(verdict(r, "memorization_vs_independent"));
    make(r);
    r->e.ctl_test.p = 0.02;
    assert_false(verdict(r, "memorization_vs_shared"));
    assert_true(verdict(r, "memorization_vs_independent"));
    r->e.ctl_ci_test.p = 0.02;
    assert_false(verdict(r, "memorization_vs_independent"));
}

static void test_top_vs_least(void **state) {
    run *r = *state;
    r->top[1] = r->least[1]; /* a tie is a miss */
    r->top[5] = -0.4;        /* at a memorized tap */
    const exp_finding *f = get(r, "top_vs_least");
    assert_false(f->holds);
    assert_non_null(strstr(f->evidence, "at 4 of 6 taps; not at layer1, res2 (1 of them without measurable memorization"));
}

static void test_growth_controlled(void **state) {
    run *r = *state;
    /* the excess rises at every tap, but no tap is memorized: noise has no growth */
    r->taps[4].test_ci.p = r->taps[5].test_ci.p = 0.02;
    const exp_finding *f = get(r, "grows_with_depth_controlled");
    assert_false(f->holds);
    assert_non_null(strstr(f->evidence, "tau 1.000,"));
    assert_non_null(strstr(f->evidence, "memorized at 0 of 6 taps"));
    /* one memorized tap is enough */
    r->taps[2].test_ci.p = 0.001;
    assert_true(verdict(r, "grows_with_depth_controlled"));
    /* a small p counts only where the candidates are above: rising but
     * negative excesses are no memorization */
    make(r);
    for (int l = 0; l < T; l++) r->taps[l].cand = r->taps[l].indep - 0.05 + 0.009 * l;
    f = get(r, "grows_with_depth_controlled");
    assert_false(f->holds);
    assert_non_null(strstr(f->evidence, "tau 1.000,"));
    assert_non_null(strstr(f->evidence, "memorized at 0 of 6 taps"));
    /* the rank correlation must be significant: alternate up and down */
    make(r);
    for (int l = 0; l < T; l++) r->taps[l].cand = r->taps[l].indep + (l % 2 ? 0.002 : 0.001) + 1e-5 * l;
    assert_false(verdict(r, "grows_with_depth_controlled"));
    /* without independent points there is nothing to control with */
    make(r);
    r->e.ctl_indep.n = 0;
    assert_null(get(r, "grows_with_depth_controlled"));
    assert_false(verdict(r, "memorization_vs_independent"));
}

static void test_growth_and_dips(void **state) {
    run *r = *state;
    r->random[T - 1] = r->random[0] - 0.01; /* last below first */
    assert_false(verdict(r, "grows_with_depth"));
    make(r);
    for (int l = 0; l < T; l++) r->random[l] = (l % 2) * 0.1 + 0.001 * l; /* no trend */
    assert_false(verdict(r, "grows_with_depth"));
    make(r);
    for (int l = 1; l < T; l++) r->delta[l] = fabs(r->delta[l]);
    r->delta[0] = -1; /* the first tap's Δ is LayerMem itself, not a dip */
    const exp_finding *f = get(r, "non_monotone");
    assert_false(f->holds);
    assert_non_null(strstr(f->evidence, "0 negative"));
}

static void test_unitmem_majority(void **state) {
    run *r = *state;
    r->tt[2].p = 0.06; /* 3 of 6 significant: not most */
    assert_false(verdict(r, "unitmem_ttest"));
    make(r);
    r->tt[0] = r->tt[1] = (mloc_ttest){-3.0, 98, 0.01}; /* a negative t never counts, whatever p says */
    r->tt[2].t = -3.0;
    assert_false(verdict(r, "unitmem_ttest"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_all_hold, setup),        cmocka_unit_test_setup(test_memorization, setup),
        cmocka_unit_test_setup(test_top_vs_least, setup),    cmocka_unit_test_setup(test_growth_controlled, setup),
        cmocka_unit_test_setup(test_growth_and_dips, setup), cmocka_unit_test_setup(test_unitmem_majority, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
