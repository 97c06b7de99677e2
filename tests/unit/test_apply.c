/* Acting on memorization (include/memloc/apply.h) on tiny ResNet9s (width
 * 0.25) and synthetic data: blocks and unit parameters, reading a LayerMem
 * table, the selection rules on a hand-made table, pruning (exactly the
 * selected slices zeroed, the units then output a constant, everything else
 * bitwise unchanged), swapping (exactly the named tensors copied, shape
 * errors), fine-tuning (frozen parameters and BN statistics bitwise
 * unchanged, on both backends), the single-unit check (only the unit's
 * parameters change) and the anchored NT-Xent (value and gradient). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/apply.h"
#include "memloc/io.h"
#include "memloc/rng.h"
#include "test_util.h"

static const char *const r9_taps[] = {"prep",   "layer1_head", "layer1_residual1", "layer1_residual2",
                                      "res1",   "layer2",      "layer3_head",      "layer3_residual1",
                                      "layer3_residual2", "res2"};

static mloc_model *tiny(mloc_ctx *ctx, mloc_head_kind head, uint64_t seed) {
    mloc_model_config c = mloc_model_config_default();
    c.width = 0.25;
    c.head = head;
    c.head_hidden = 32;
    c.head_out = 16;
    mloc_model *m = NULL;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    mloc_model_init_params(m, seed);
    /* BN statistics away from their init, so a copy or a change shows */
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        float *p = mloc_store_ptr(&m->store, &m->table, i);
        const uint64_t s = seed * 131 + (uint64_t)i;
        if (e->role == MLOC_ROLE_RUNNING_MEAN) test_fill_uniform_f32(p, e->numel, -0.1f, 0.1f, s);
        if (e->role == MLOC_ROLE_RUNNING_VAR) test_fill_uniform_f32(p, e->numel, 0.5f, 1.5f, s);
        if (e->role == MLOC_ROLE_NORM_WEIGHT) test_fill_uniform_f32(p, e->numel, 0.8f, 1.2f, s);
        if (e->role == MLOC_ROLE_NORM_BIAS) test_fill_uniform_f32(p, e->numel, -0.1f, 0.1f, s);
        if (e->role == MLOC_ROLE_NUM_BATCHES) *(int64_t *)mloc_store_ptr(&m->store, &m->table, i) = (int64_t)seed + i;
    }
    return m;
}

/* A snapshot of every block of a model's store. */
typedef struct {
    float *param, *buffer;
    int64_t *counter;
} snap;

static snap take(const mloc_model *m) {
    snap s;
    const int64_t *n = m->table.numel;
    s.param = malloc((size_t)(n[0] + 1) * sizeof(float));
    s.buffer = malloc((size_t)(n[1] + 1) * sizeof(float));
    s.counter = malloc((size_t)(n[2] + 1) * sizeof(int64_t));
    assert_non_null(s.param);
    assert_non_null(s.buffer);
    assert_non_null(s.counter);
    memcpy(s.param, m->store.param, (size_t)n[0] * sizeof(float));
    memcpy(s.buffer, m->store.buffer, (size_t)n[1] * sizeof(float));
    memcpy(s.counter, m->store.counter, (size_t)n[2] * sizeof(int64_t));
    return s;
}

static void snap_free(snap *s) {
    free(s->param);
    free(s->buffer);
    free(s->counter);
}

static const void *snap_ptr(const snap *s, const mloc_table *tab, int i) {
    const mloc_tensor *e = &tab->t[i];
    switch (mloc_role_block(e->role)) {
    case MLOC_BLOCK_PARAM: return s->param + e->offset;
    case MLOC_BLOCK_BUFFER: return s->buffer + e->offset;
    default: return s->counter + e->offset;
    }
}

static size_t entry_bytes(const mloc_tensor *e) {
    return (size_t)e->numel * (mloc_role_block(e->role) == MLOC_BLOCK_COUNTER ? sizeof(int64_t) : sizeof(float));
}

static int entry_equal(const mloc_model *m, const snap *s, int i) {
    return memcmp(mloc_store_ptr(&m->store, &m->table, i), snap_ptr(s, &m->table, i), entry_bytes(&m->table.t[i])) == 0;
}

static int module_of(const mloc_model *m, const char *name) {
    int mod = mloc_model_find_module(m, name);
    assert_true(mod >= 0);
    return mod;
}

/* ---- blocks and units ---------------------------------------------------------------- */

static void test_blocks_and_unit_params(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_SIMCLR, 1);
    int blocks[64], n;
    mloc_apply_blocks(m, blocks, &n);
    assert_int_equal(n, 8);
    const char *want[] = {"prep", "layer1_head", "layer1_residual1", "layer1_residual2",
                          "layer2", "layer3_head", "layer3_residual1", "layer3_residual2"};
    for (int i = 0; i < 8; i++) assert_string_equal(m->modules[blocks[i]], want[i]);
    assert_int_equal(mloc_apply_tap_block(m, mloc_model_find_tap(m, "res1")), -1);
    assert_int_equal(mloc_apply_tap_block(m, mloc_model_find_tap(m, "res2")), -1);
    assert_int_equal(mloc_apply_tap_block(m, mloc_model_find_tap(m, "layer2")), module_of(m, "layer2"));

    /* layer2 at width 0.25: conv [32, 16, 3, 3]; unit 5 owns weights 5*144 .. 6*144 */
    mloc_param_span sp[4];
    int ns;
    assert_int_equal(mloc_apply_unit_params(ctx, m, mloc_model_find_tap(m, "layer2"), 5, sp, &ns), MLOC_OK);
    assert_int_equal(ns, 4);
    assert_int_equal(sp[0].entry, mloc_table_find(&m->table, "layer2.conv.weight"));
    assert_int_equal(sp[0].start, 5 * 144);
    assert_int_equal(sp[0].count, 144);
    assert_int_equal(sp[1].entry, mloc_table_find(&m->table, "layer2.conv.bias"));
    assert_int_equal(sp[2].entry, mloc_table_find(&m->table, "layer2.batch.weight"));
    assert_int_equal(sp[3].entry, mloc_table_find(&m->table, "layer2.batch.bias"));
    for (int k = 1; k < 4; k++) {
        assert_int_equal(sp[k].start, 5);
        assert_int_equal(sp[k].count, 1);
    }
    assert_int_equal(mloc_apply_unit_params(ctx, m, mloc_model_find_tap(m, "res1"), 0, sp, &ns), MLOC_ERR_USAGE);
    printf("res1: %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "res1 is a residual join"));
    assert_int_equal(mloc_apply_unit_params(ctx, m, mloc_model_find_tap(m, "prep"), 8, sp, &ns), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "unit 8, expected 0..7"));
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* ---- LayerMem table and selection ------------------------------------------------------ */

/* LayerMem: res2 has the highest (skipped: no parameters), then layer2 and
 * layer1_residual2 tie at 0.5 (forward order: layer1_residual2 first), then
 * layer3_head 0.4. Delta: prep highest, then layer3_residual1, ... */
static const double lm[10] = {0.1, 0.2, 0.3, 0.5, 0.9, 0.5, 0.4, -0.1, 0.0, 0.95};
static const double dl[10] = {0.9, 0.1, 0.1, 0.2, 0.4, -0.4, 0.3, 0.6, 0.1, 0.95};

static mloc_layer_scores hand_scores(void) {
    mloc_layer_scores s;
    memset(&s, 0, sizeof s);
    s.n_taps = 10;
    s.taps = calloc(10, sizeof *s.taps);
    s.layermem = calloc(10, sizeof *s.layermem);
    s.delta = calloc(10, sizeof *s.delta);
    assert_non_null(s.taps);
    for (int i = 0; i < 10; i++) {
        snprintf(s.taps[i], sizeof s.taps[i], "%s", r9_taps[i]);
        s.layermem[i] = lm[i];
        s.delta[i] = dl[i];
    }
    snprintf(s.source, sizeof s.source, "hand-made");
    return s;
}

static void expect_blocks(const mloc_model *m, const int *got, int n, const char *const *want) {
    for (int i = 0; i < n; i++) {
        printf("  %s", m->modules[got[i]]);
        assert_string_equal(m->modules[got[i]], want[i]);
    }
    printf("\n");
}

static void test_select_rules(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_NONE, 1);
    mloc_layer_scores s = hand_scores();
    int got[8];
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_LAYERMEM, 1, 0, got), MLOC_OK);
    expect_blocks(m, got, 1, (const char *const[]){"layer1_residual2"});
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_LAYERMEM, 3, 0, got), MLOC_OK);
    expect_blocks(m, got, 3, (const char *const[]){"layer1_residual2", "layer2", "layer3_head"});
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_DELTA, 2, 0, got), MLOC_OK);
    expect_blocks(m, got, 2, (const char *const[]){"prep", "layer3_residual1"});
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_DELTA, 3, 0, got), MLOC_OK);
    expect_blocks(m, got, 3, (const char *const[]){"prep", "layer3_head", "layer3_residual1"});
    assert_int_equal(mloc_finetune_select(ctx, m, NULL, MLOC_SELECT_LAST, 2, 0, got), MLOC_OK);
    expect_blocks(m, got, 2, (const char *const[]){"layer3_residual1", "layer3_residual2"});
    assert_int_equal(mloc_finetune_select(ctx, m, NULL, MLOC_SELECT_LAST, 3, 0, got), MLOC_OK);
    expect_blocks(m, got, 3, (const char *const[]){"layer3_head", "layer3_residual1", "layer3_residual2"});

    /* random: distinct blocks in forward order, a pure function of the seed,
     * and different seeds give different choices */
    int again[8], differ = 0;
    for (uint64_t seed = 0; seed < 8; seed++) {
        assert_int_equal(mloc_finetune_select(ctx, m, NULL, MLOC_SELECT_RANDOM, 3, seed, got), MLOC_OK);
        assert_int_equal(mloc_finetune_select(ctx, m, NULL, MLOC_SELECT_RANDOM, 3, seed, again), MLOC_OK);
        assert_memory_equal(got, again, sizeof(int) * 3);
        for (int i = 0; i < 3; i++) {
            assert_true(mloc_apply_block_tap(m, got[i]) >= 0);
            assert_true(mloc_apply_tap_block(m, mloc_apply_block_tap(m, got[i])) == got[i]);
            if (i) assert_true(got[i - 1] < got[i]);
        }
        if (seed) {
            int first[8];
            assert_int_equal(mloc_finetune_select(ctx, m, NULL, MLOC_SELECT_RANDOM, 3, 0, first), MLOC_OK);
            differ |= memcmp(first, got, sizeof(int) * 3) != 0;
        }
    }
    assert_true(differ);

    /* errors */
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_LAYERMEM, 9, 0, got), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "expected 1..8"));
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_LAYERMEM, 0, 0, got), MLOC_ERR_USAGE);
    assert_int_equal(mloc_finetune_select(ctx, m, NULL, MLOC_SELECT_DELTA, 1, 0, got), MLOC_ERR_USAGE);
    snprintf(s.taps[2], sizeof s.taps[2], "layer4");
    assert_int_equal(mloc_finetune_select(ctx, m, &s, MLOC_SELECT_LAYERMEM, 1, 0, got), MLOC_ERR_USAGE);
    printf("unknown tap: %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "'layer4'"));
    assert_int_equal(mloc_select_rule_parse("delta"), MLOC_SELECT_DELTA);
    assert_int_equal(mloc_select_rule_parse("best"), -1);
    mloc_layer_scores_free(&s);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

static void test_layer_scores_read(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("apply_scores");
    char sub[512], path[600];
    snprintf(sub, sizeof sub, "%s/metrics", dir);
    assert_int_equal(mloc_mkdirs(ctx, sub), MLOC_OK);
    json_t *table = json_array();
    for (int i = 0; i < 10; i++)
        json_array_append_new(table, json_pack("{s:s, s:f, s:f, s:f}", "tap", r9_taps[i], "layermem_random", lm[i],
                                               "delta", dl[i], "layermem_top", 1.0));
    json_t *doc = json_pack("{s:s, s:o}", "schema", "memloc.layermem/1", "table", table);
    snprintf(path, sizeof path, "%s/layermem.json", sub);
    assert_int_equal(mloc_json_save(ctx, path, doc), MLOC_OK);
    json_decref(doc);
    /* an experiment directory: found under metrics/ */
    mloc_layer_scores s;
    assert_int_equal(mloc_layer_scores_read(ctx, dir, &s), MLOC_OK);
    assert_int_equal(s.n_taps, 10);
    for (int i = 0; i < 10; i++) {
        assert_string_equal(s.taps[i], r9_taps[i]);
        assert_true(s.layermem[i] == lm[i]);
        assert_true(s.delta[i] == dl[i]);
    }
    mloc_layer_scores_free(&s);
    /* the metrics directory itself */
    assert_int_equal(mloc_layer_scores_read(ctx, sub, &s), MLOC_OK);
    assert_int_equal(s.n_taps, 10);
    mloc_layer_scores_free(&s);
    assert_int_equal(mloc_layer_scores_read(ctx, "/nonexistent-dir", &s), MLOC_ERR_NOINPUT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "no LayerMem table"));
    /* a malformed row */
    doc = json_pack("{s:[{s:s}]}", "table", "tap", "prep");
    assert_int_equal(mloc_json_save(ctx, path, doc), MLOC_OK);
    json_decref(doc);
    assert_int_equal(mloc_layer_scores_read(ctx, dir, &s), MLOC_ERR_DATA);
    printf("malformed: %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "row 0"));
    mloc_ctx_destroy(ctx);
}

/* ---- pruning ------------------------------------------------------------------------ */

/* UnitMem scores for every tap of m: unit k of tap t scores a hash-like
 * distinct value; every 7th unit is dead. */
static mloc_unit_scores fake_unitmem(const mloc_model *m) {
    mloc_unit_scores u;
    memset(&u, 0, sizeof u);
    u.n_taps = m->n_taps;
    u.tap_names = calloc((size_t)m->n_taps, sizeof *u.tap_names);
    u.offset = calloc((size_t)m->n_taps + 1, sizeof *u.offset);
    assert_non_null(u.tap_names);
    for (int t = 0; t < m->n_taps; t++) {
        snprintf(u.tap_names[t], sizeof u.tap_names[t], "%s", m->taps[t].name);
        u.offset[t + 1] = u.offset[t] + m->taps[t].units;
    }
    u.units = u.offset[m->n_taps];
    u.score = calloc((size_t)u.units, sizeof *u.score);
    u.dead = calloc((size_t)u.units, 1);
    assert_non_null(u.score);
    for (int64_t i = 0; i < u.units; i++) {
        u.dead[i] = i % 7 == 3;
        u.score[i] = u.dead[i] ? 0 : fmod((double)i * 0.6180339887, 1.0) * 0.9 + 0.05;
    }
    return u;
}

static void unit_scores_free(mloc_unit_scores *u) {
    free(u->tap_names);
    free(u->offset);
    free(u->score);
    free(u->dead);
}

static void test_prune_select(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_NONE, 1);
    mloc_unit_scores u = fake_unitmem(m);
    mloc_prune_config c = mloc_prune_config_default();
    c.fraction = 0.25;
    for (int by = 0; by < 3; by++) {
        c.by = (mloc_prune_by)by;
        mloc_unit_ref *sel = NULL;
        int64_t n = 0;
        assert_int_equal(mloc_prune_select(ctx, m, &u, &c, &sel, &n), MLOC_OK);
        int64_t want_total = 0;
        for (int t = 0; t < m->n_taps; t++) {
            const int is_block = mloc_apply_tap_block(m, t) >= 0;
            int live = 0, picked = 0;
            double min_sel = INFINITY, max_sel = -INFINITY, max_rest = -INFINITY, min_rest = INFINITY;
            for (int k = 0; k < m->taps[t].units; k++) {
                const int64_t at = u.offset[t] + k;
                if (u.dead[at]) continue;
                live++;
                int chosen = 0;
                for (int64_t i = 0; i < n; i++) chosen |= sel[i].tap == t && sel[i].unit == k;
                picked += chosen;
                if (chosen) {
                    min_sel = fmin(min_sel, u.score[at]);
                    max_sel = fmax(max_sel, u.score[at]);
                } else {
                    max_rest = fmax(max_rest, u.score[at]);
                    min_rest = fmin(min_rest, u.score[at]);
                }
            }
            const int want = is_block ? (int)llround(0.25 * live) : 0;
            assert_int_equal(picked, want);
            want_total += want;
            if (is_block && by == MLOC_PRUNE_TOP) assert_true(min_sel > max_rest);
            if (is_block && by == MLOC_PRUNE_BOTTOM) assert_true(max_sel < min_rest);
        }
        assert_int_equal(n, want_total);
        for (int64_t i = 0; i < n; i++) {
            assert_false(u.dead[u.offset[sel[i].tap] + sel[i].unit]); /* dead units are not candidates */
            if (i) assert_true(sel[i - 1].tap < sel[i].tap || (sel[i - 1].tap == sel[i].tap && sel[i - 1].unit < sel[i].unit));
        }
        printf("%s 25%% per tap: %lld units\n", mloc_prune_by_name(c.by), (long long)n);
        free(sel);
    }
    /* global top 10%: the highest live scores over all conv-block taps */
    c.by = MLOC_PRUNE_TOP;
    c.scope = MLOC_PRUNE_GLOBAL;
    c.fraction = 0.1;
    mloc_unit_ref *sel = NULL;
    int64_t n = 0, live = 0;
    assert_int_equal(mloc_prune_select(ctx, m, &u, &c, &sel, &n), MLOC_OK);
    double min_sel = INFINITY, max_rest = -INFINITY;
    for (int t = 0; t < m->n_taps; t++) {
        if (mloc_apply_tap_block(m, t) < 0) continue;
        for (int k = 0; k < m->taps[t].units; k++) {
            const int64_t at = u.offset[t] + k;
            if (u.dead[at]) continue;
            live++;
            int chosen = 0;
            for (int64_t i = 0; i < n; i++) chosen |= sel[i].tap == t && sel[i].unit == k;
            if (chosen) min_sel = fmin(min_sel, u.score[at]);
            else max_rest = fmax(max_rest, u.score[at]);
        }
    }
    assert_int_equal(n, llround(0.1 * live));
    assert_true(min_sel > max_rest);
    free(sel);
    /* include_dead: bottom picks the dead units first */
    c.scope = MLOC_PRUNE_PER_TAP;
    c.by = MLOC_PRUNE_BOTTOM;
    c.include_dead = 1;
    c.fraction = 0.1;
    assert_int_equal(mloc_prune_select(ctx, m, &u, &c, &sel, &n), MLOC_OK);
    for (int64_t i = 0; i < n; i++) assert_true(u.dead[u.offset[sel[i].tap] + sel[i].unit]);
    free(sel);
    c.fraction = 1.5;
    assert_int_equal(mloc_prune_select(ctx, m, &u, &c, &sel, &n), MLOC_ERR_USAGE);
    unit_scores_free(&u);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* Pruning zeroes exactly the units' slices; every other parameter, buffer
 * and counter is bitwise unchanged; the pruned channels output 0 for every
 * image and position (eval and training mode), others do not. */
static void test_prune_units(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_NONE, 3);
    snap before = take(m);
    const int t_l2 = mloc_model_find_tap(m, "layer2"), t_prep = mloc_model_find_tap(m, "prep"),
              t_r2 = mloc_model_find_tap(m, "layer3_residual2");
    const mloc_unit_ref units[] = {{t_prep, 0, 0}, {t_prep, 6, 0}, {t_l2, 3, 0}, {t_l2, 30, 0}, {t_r2, 12, 0}};
    const int nu = 5;
    assert_int_equal(mloc_prune_units(ctx, m, units, nu), MLOC_OK);
    /* expected: the spans zero, all else equal */
    uint8_t *in_span = calloc((size_t)m->table.numel[MLOC_BLOCK_PARAM], 1);
    assert_non_null(in_span);
    for (int i = 0; i < nu; i++) {
        mloc_param_span sp[4];
        int ns;
        assert_int_equal(mloc_apply_unit_params(ctx, m, units[i].tap, units[i].unit, sp, &ns), MLOC_OK);
        for (int k = 0; k < ns; k++)
            memset(in_span + m->table.t[sp[k].entry].offset + sp[k].start, 1, (size_t)sp[k].count);
    }
    int64_t zeroed = 0;
    for (int64_t i = 0; i < m->table.numel[MLOC_BLOCK_PARAM]; i++) {
        if (in_span[i]) {
            assert_true(m->store.param[i] == 0.0f && !signbit(m->store.param[i]));
            zeroed++;
        } else {
            assert_memory_equal(&m->store.param[i], &before.param[i], sizeof(float));
        }
    }
    /* prep: 3*9 + 3 per unit; layer2: 16*9 + 3; layer3_residual2: 64*9 + 3 */
    assert_int_equal(zeroed, 2 * 30 + 2 * 147 + 579);
    assert_memory_equal(m->store.buffer, before.buffer, (size_t)m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    assert_memory_equal(m->store.counter, before.counter, (size_t)m->table.numel[MLOC_BLOCK_COUNTER] * sizeof(int64_t));

    /* the forward pass: pruned channels are 0 everywhere */
    enum { N = 6 };
    float *x = malloc(N * 3 * 32 * 32 * sizeof *x);
    test_fill_uniform_f32(x, N * 3 * 32 * 32, -1, 1, 11);
    assert_int_equal(mloc_model_plan(ctx, m, N), MLOC_OK);
    for (int mode = 0; mode < 2; mode++) {
        assert_int_equal(mloc_model_forward(ctx, m, x, N, mode ? MLOC_MODE_TRAIN : MLOC_MODE_EVAL, -1), MLOC_OK);
        for (int i = 0; i < nu; i++) {
            const mloc_tap *tp = &m->taps[units[i].tap];
            const int64_t hw = (int64_t)m->values[tp->value].h * m->values[tp->value].w;
            float *a = malloc((size_t)N * tp->units * hw * sizeof *a);
            assert_int_equal(mloc_model_read(ctx, m, tp->value, a), MLOC_OK);
            double pruned_abs = 0, other_abs = 0;
            for (int n = 0; n < N; n++)
                for (int64_t p = 0; p < hw; p++) {
                    pruned_abs += fabs(a[((int64_t)n * tp->units + units[i].unit) * hw + p]);
                    other_abs += fabs(a[((int64_t)n * tp->units + (units[i].unit + 1) % tp->units) * hw + p]);
                }
            printf("%s mode %d: unit %d sum |a| %g, neighbour %g\n", tp->name, mode, units[i].unit, pruned_abs,
                   other_abs);
            assert_true(pruned_abs == 0.0);
            assert_true(other_abs > 0.0);
            free(a);
        }
    }
    /* a residual tap cannot be pruned, and nothing changes then */
    mloc_model *m2 = tiny(ctx, MLOC_HEAD_NONE, 3);
    snap b2 = take(m2);
    const mloc_unit_ref bad[] = {{t_l2, 1, 0}, {mloc_model_find_tap(m2, "res2"), 0, 0}};
    assert_int_equal(mloc_prune_units(ctx, m2, bad, 2), MLOC_ERR_USAGE);
    assert_memory_equal(m2->store.param, b2.param, (size_t)m2->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    snap_free(&b2);
    mloc_model_free(m2);
    free(x);
    free(in_span);
    snap_free(&before);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* A ViT's units are the MLP's hidden neurons (blocks.N.mlp.act): pruning one
 * zeroes its fc1 row and bias, so its GELU output is 0 at every token; the
 * residual stream taps own no per-unit parameters. */
static void test_prune_vit_units(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config c = mloc_model_config_default();
    c.arch = "vit_tiny";
    c.patch_size = 8;
    c.head = MLOC_HEAD_NONE;
    mloc_model *m = NULL;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    mloc_model_init_params(m, 5);
    /* biases away from 0, so that a zeroed one shows */
    for (int i = 0; i < m->table.n; i++)
        if (strstr(m->table.t[i].name, "fc1.bias"))
            test_fill_uniform_f32(mloc_store_ptr(&m->store, &m->table, i), m->table.t[i].numel, -0.5f, 0.5f, 40 + i);
    const int t_act = mloc_model_find_tap(m, "blocks.3.mlp.act"), t_blk = mloc_model_find_tap(m, "blocks.3"),
              t_attn = mloc_model_find_tap(m, "blocks.3.attn");
    assert_true(t_act >= 0 && t_blk >= 0 && t_attn >= 0);
    assert_int_equal(m->taps[t_act].units, 768);
    mloc_param_span sp[4];
    int ns;
    assert_int_equal(mloc_apply_unit_params(ctx, m, t_act, 100, sp, &ns), MLOC_OK);
    assert_int_equal(ns, 2);
    assert_string_equal(m->table.t[sp[0].entry].name, "blocks.3.mlp.fc1.weight");
    assert_int_equal(sp[0].start, 100 * 192);
    assert_int_equal(sp[0].count, 192);
    assert_string_equal(m->table.t[sp[1].entry].name, "blocks.3.mlp.fc1.bias");
    assert_int_equal(sp[1].start, 100);
    assert_int_equal(mloc_apply_unit_params(ctx, m, t_blk, 0, sp, &ns), MLOC_ERR_USAGE);
    assert_int_equal(mloc_apply_unit_params(ctx, m, t_attn, 0, sp, &ns), MLOC_ERR_USAGE);
    assert_int_equal(mloc_apply_unit_params(ctx, m, t_act, 768, sp, &ns), MLOC_ERR_USAGE);

    const mloc_unit_ref units[] = {{t_act, 100, 0}, {t_act, 7, 0}};
    assert_int_equal(mloc_prune_units(ctx, m, units, 2), MLOC_OK);
    enum { N = 3 };
    float *x = malloc(N * 3 * 32 * 32 * sizeof *x);
    test_fill_uniform_f32(x, N * 3 * 32 * 32, -1, 1, 12);
    assert_int_equal(mloc_model_plan(ctx, m, N), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
    const mloc_value *v = &m->values[m->taps[t_act].value];
    const int64_t T = v->c, D = (int64_t)v->h * v->w; /* tokens x hidden */
    assert_int_equal(D, 768);
    float *a = malloc((size_t)(N * T * D) * sizeof *a);
    assert_int_equal(mloc_model_read(ctx, m, m->taps[t_act].value, a), MLOC_OK);
    double pruned = 0, other = 0;
    for (int64_t i = 0; i < N * T; i++) {
        pruned += fabs(a[i * D + 100]) + fabs(a[i * D + 7]);
        other += fabs(a[i * D + 101]);
    }
    assert_true(pruned == 0.0);
    assert_true(other > 0.0);
    free(a);
    free(x);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* ---- swap ---------------------------------------------------------------------------- */

static void test_swap_blocks(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *a = tiny(ctx, MLOC_HEAD_SIMCLR, 5), *b = tiny(ctx, MLOC_HEAD_SIMCLR, 6);
    snap sa = take(a), sb = take(b);
    const char *names[] = {"layer2", "prep", "layer3_residual1"};
    int copied = -1;
    assert_int_equal(mloc_swap_blocks(ctx, a, b, names, 3, &copied), MLOC_OK);
    assert_int_equal(copied, 3 * 7); /* conv w, b; bn w, b, mean, var, count */
    const int mods[] = {module_of(a, "layer2"), module_of(a, "prep"), module_of(a, "layer3_residual1")};
    int from_b = 0;
    for (int i = 0; i < a->table.n; i++) {
        const mloc_tensor *e = &a->table.t[i];
        const int named = e->module == mods[0] || e->module == mods[1] || e->module == mods[2];
        if (named) {
            assert_true(entry_equal(a, &sb, i)); /* B's tensor */
            assert_false(entry_equal(a, &sa, i)); /* which differs from A's */
            from_b++;
        } else {
            assert_true(entry_equal(a, &sa, i));
        }
    }
    assert_int_equal(from_b, 21);
    /* B is untouched */
    assert_memory_equal(b->store.param, sb.param, (size_t)b->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));

    /* shapes must match: a wider B; A stays as it was */
    mloc_model_config wc = mloc_model_config_default();
    wc.width = 0.5;
    wc.head = MLOC_HEAD_NONE;
    mloc_model *w = NULL;
    assert_int_equal(mloc_model_create(ctx, &w, &wc), MLOC_OK);
    snap s2 = take(a);
    const char *one[] = {"layer1_head", "layer2"};
    assert_int_equal(mloc_swap_blocks(ctx, a, w, one, 2, &copied), MLOC_ERR_USAGE);
    printf("shape mismatch: %s\n", mloc_ctx_error(ctx));
    assert_string_equal(mloc_ctx_error(ctx), "swap: layer1_head.conv.weight: A [16, 8, 3, 3], B [32, 16, 3, 3]");
    assert_memory_equal(a->store.param, s2.param, (size_t)a->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    const char *unknown[] = {"layer9"};
    assert_int_equal(mloc_swap_blocks(ctx, a, b, unknown, 1, &copied), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "'layer9'"));
    snap_free(&s2);
    snap_free(&sa);
    snap_free(&sb);
    mloc_model_free(w);
    mloc_model_free(a);
    mloc_model_free(b);
    mloc_ctx_destroy(ctx);
}

/* ---- fine-tuning ------------------------------------------------------------------------- */

static void open_synthetic(mloc_ctx *ctx, mloc_dataset *d, const char *spec) {
    mloc_dataset_options o = mloc_dataset_options_default();
    assert_int_equal(mloc_dataset_open(ctx, d, spec, &o), MLOC_OK);
}

/* Fine-tuning layer1_residual1 and layer3_head: every other parameter, BN
 * running statistic and counter is bitwise unchanged; the chosen blocks'
 * parameters and running statistics moved; bn_eval is restored. */
static void finetune_frozen(mloc_backend backend) {
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_NONE, 7);
    assert_int_equal(mloc_model_set_backend(ctx, m, backend), MLOC_OK);
    mloc_dataset train, test;
    open_synthetic(ctx, &train, "synthetic:48:32x32x3:4");
    open_synthetic(ctx, &test, "synthetic:20:32x32x3:4");
    snap before = take(m);
    const int chosen[] = {module_of(m, "layer1_residual1"), module_of(m, "layer3_head")};
    mloc_finetune_config c = mloc_finetune_config_default();
    c.epochs = 2;
    c.batch = 16;
    c.workers = 1;
    mloc_finetune_result r;
    assert_int_equal(mloc_finetune_run(ctx, m, chosen, 2, &train, &test, &c, &r), MLOC_OK);
    printf("backend %d: loss %.4f train %.3f test %.3f, %lld steps, %lld parameters trained\n", (int)backend,
           r.final_loss, r.train_top1, r.test_top1, (long long)r.steps, (long long)r.trained_params);
    assert_int_equal(r.steps, 2 * 3);
    assert_true(r.test_top1 >= 0 && r.test_top1 <= 1);
    assert_true(isfinite(r.final_loss));
    int64_t trained = 0;
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        const int sel = e->module == chosen[0] || e->module == chosen[1];
        if (!sel) {
            if (!entry_equal(m, &before, i)) printf("changed: %s\n", e->name);
            assert_true(entry_equal(m, &before, i));
            continue;
        }
        /* the chosen blocks: parameters, running statistics and counts moved */
        if (entry_equal(m, &before, i)) printf("unchanged: %s\n", e->name);
        assert_false(entry_equal(m, &before, i));
        if (mloc_role_block(e->role) == MLOC_BLOCK_PARAM) trained += e->numel;
        if (e->role == MLOC_ROLE_NUM_BATCHES)
            assert_int_equal(*(int64_t *)mloc_store_ptr(&m->store, &m->table, i),
                             *(const int64_t *)snap_ptr(&before, &m->table, i) + 6);
    }
    assert_int_equal(r.trained_params, trained);
    for (int i = 0; i < m->n_modules; i++) assert_int_equal(m->bn_eval[i], 0);

    /* the head alone (n 0): the encoder does not change at all */
    snap after = take(m);
    assert_int_equal(mloc_finetune_run(ctx, m, NULL, 0, &train, &test, &c, &r), MLOC_OK);
    assert_int_equal(r.trained_params, 0);
    for (int i = 0; i < m->table.n; i++) assert_true(entry_equal(m, &after, i));

    /* not a block: residual joins have no module */
    const int bad[] = {-1};
    assert_int_equal(mloc_finetune_run(ctx, m, bad, 1, &train, &test, &c, &r), MLOC_ERR_USAGE);
    c.batch = 100;
    assert_int_equal(mloc_finetune_run(ctx, m, chosen, 1, &train, &test, &c, &r), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "batch 100"));
    snap_free(&after);
    snap_free(&before);
    mloc_dataset_free(&train);
    mloc_dataset_free(&test);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

static void test_finetune_frozen_dnnl(void **state) {
    (void)state;
    finetune_frozen(MLOC_BACKEND_DNNL);
}

static void test_finetune_frozen_ref(void **state) {
    (void)state;
    finetune_frozen(MLOC_BACKEND_REF);
}

/* Same seed, same blocks: bitwise the same result; the rules compared in
 * one table start from the same encoder. */
static void test_finetune_reproducible(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset train, test;
    open_synthetic(ctx, &train, "synthetic:32:32x32x3:4");
    open_synthetic(ctx, &test, "synthetic:16:32x32x3:4");
    double acc[2], loss[2];
    float w[2];
    for (int k = 0; k < 2; k++) {
        mloc_model *m = tiny(ctx, MLOC_HEAD_NONE, 9);
        const int chosen[] = {module_of(m, "layer3_residual2")};
        mloc_finetune_config c = mloc_finetune_config_default();
        c.epochs = 1;
        c.batch = 8;
        c.workers = k; /* 0 and 1 loader threads: the same batches */
        mloc_finetune_result r;
        assert_int_equal(mloc_finetune_run(ctx, m, chosen, 1, &train, &test, &c, &r), MLOC_OK);
        acc[k] = r.test_top1;
        loss[k] = r.final_loss;
        w[k] = ((float *)mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "layer3_residual2.conv.weight")))[17];
        mloc_model_free(m);
    }
    assert_true(acc[0] == acc[1]);
    assert_true(loss[0] == loss[1]);
    assert_memory_equal(&w[0], &w[1], sizeof(float));
    mloc_dataset_free(&train);
    mloc_dataset_free(&test);
    mloc_ctx_destroy(ctx);
}

/* ---- the single-unit check ----------------------------------------------------------------- */

static void test_unit_finetune_only_unit(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_SIMCLR, 4);
    mloc_dataset d;
    open_synthetic(ctx, &d, "synthetic:24:32x32x3:4");
    mloc_aug_config ac = mloc_aug_config_default();
    mloc_aug_pipeline aug;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &aug, &ac), MLOC_OK);
    snap before = take(m);
    const int tap = mloc_model_find_tap(m, "layer2"), unit = 9;
    mloc_unit_finetune_config c = mloc_unit_finetune_config_default();
    c.steps = 4;
    c.pairs = 2;
    c.negatives = 6;
    double l0 = NAN, l1 = NAN;
    assert_int_equal(mloc_unit_finetune(ctx, m, tap, unit, &d, 5, &aug, &c, &l0, &l1), MLOC_OK);
    printf("loss %.5f -> %.5f\n", l0, l1);
    assert_true(isfinite(l0) && isfinite(l1));
    mloc_param_span sp[4];
    int ns;
    assert_int_equal(mloc_apply_unit_params(ctx, m, tap, unit, sp, &ns), MLOC_OK);
    uint8_t *in_span = calloc((size_t)m->table.numel[MLOC_BLOCK_PARAM], 1);
    for (int k = 0; k < ns; k++) memset(in_span + m->table.t[sp[k].entry].offset + sp[k].start, 1, (size_t)sp[k].count);
    int64_t changed = 0;
    for (int64_t i = 0; i < m->table.numel[MLOC_BLOCK_PARAM]; i++) {
        if (in_span[i]) changed += memcmp(&m->store.param[i], &before.param[i], sizeof(float)) != 0;
        else assert_memory_equal(&m->store.param[i], &before.param[i], sizeof(float));
    }
    printf("%lld of the unit's %d+3 parameters changed\n", (long long)changed, 16 * 9 + 1);
    assert_true(changed > 100);
    /* every BN in eval mode: statistics and counters unchanged; bn_eval restored */
    assert_memory_equal(m->store.buffer, before.buffer, (size_t)m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    assert_memory_equal(m->store.counter, before.counter, (size_t)m->table.numel[MLOC_BLOCK_COUNTER] * sizeof(int64_t));
    for (int i = 0; i < m->n_modules; i++) assert_int_equal(m->bn_eval[i], 0);
    /* errors: a residual tap, a point outside the data */
    assert_int_equal(mloc_unit_finetune(ctx, m, mloc_model_find_tap(m, "res2"), 0, &d, 5, &aug, &c, NULL, NULL),
                     MLOC_ERR_USAGE);
    assert_int_equal(mloc_unit_finetune(ctx, m, tap, unit, &d, 24, &aug, &c, NULL, NULL), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "point 24"));
    free(in_span);
    snap_free(&before);
    mloc_dataset_free(&d);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}


/* The check around it: UnitMem of the tap's units before and after, the
 * other units of the tap exactly unchanged, the point in the evaluation set,
 * and the model's parameters those of mloc_unit_finetune alone. */
static void test_unit_check(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m = tiny(ctx, MLOC_HEAD_SIMCLR, 4), *m2 = tiny(ctx, MLOC_HEAD_SIMCLR, 4);
    mloc_dataset d;
    open_synthetic(ctx, &d, "synthetic:24:32x32x3:4");
    mloc_aug_config ac = mloc_aug_config_default();
    mloc_aug_pipeline aug;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &aug, &ac), MLOC_OK);
    const int tap = mloc_model_find_tap(m, "layer3_head"), unit = 11;
    mloc_unit_finetune_config c = mloc_unit_finetune_config_default();
    c.steps = 3;
    c.pairs = 2;
    c.negatives = 6;
    mloc_unit_check_result r;
    assert_int_equal(mloc_unit_check(ctx, m, tap, unit, &d, 5, &aug, &aug, &c, 12, 2, &r), MLOC_OK);
    printf("UnitMem %.4f -> %.4f, mu(x) %.4f -> %.4f, same tap %.4f -> %.4f (max %g), later %.4f -> %.4f (%lld units)\n",
           r.before, r.after, r.mu_before, r.mu_after, r.same_tap_before, r.same_tap_after, r.same_tap_max_change,
           r.later_before, r.later_after, (long long)r.later_units);
    assert_int_equal(r.n_points, 12);
    assert_true(r.before >= 0 && r.before <= 1 && r.after >= 0 && r.after <= 1);
    assert_true(r.same_tap_max_change == 0.0);
    assert_true(r.same_tap_before == r.same_tap_after);
    /* layer3_head (64 units at width 0.25) is followed by 3 taps of 64 units */
    assert_int_equal(r.later_units, 3 * 64);
    assert_true(r.mu_before != r.mu_after);
    /* the same fine-tuning without the measurements gives the same parameters */
    assert_int_equal(mloc_unit_finetune(ctx, m2, tap, unit, &d, 5, &aug, &c, NULL, NULL), MLOC_OK);
    assert_memory_equal(m->store.param, m2->store.param, (size_t)m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    assert_int_equal(mloc_unit_check(ctx, m, tap, unit, &d, 5, &aug, &aug, &c, 1, 2, &r), MLOC_ERR_USAGE);
    mloc_dataset_free(&d);
    mloc_model_free(m);
    mloc_model_free(m2);
    mloc_ctx_destroy(ctx);
}

/* ---- anchored NT-Xent -------------------------------------------------------------------------- */

/* P 1, M 1, D 2, T 0.5: anchors (1,0), (2,0) (the same direction), a
 * negative (0,3): each anchor's loss is log(e^2 + e^0) - 2 = log(1 + e^-2). */
static void test_anchor_ntxent_value(void **state) {
    (void)state;
    const double z[] = {1, 0, 2, 0, 0, 3};
    double dz[6];
    const double want = log1p(exp(-2.0));
    const double loss = mloc_anchor_ntxent_f64(dz, z, 1, 1, 2, 0.5);
    printf("loss %.12f want %.12f\n", loss, want);
    assert_true(fabs(loss - want) < 1e-12);
    assert_true(fabs(mloc_anchor_ntxent_f64(NULL, z, 1, 1, 2, 0.5) - want) < 1e-12);
    /* the anchors are aligned: their gradient is orthogonal to them (the
     * normalisation), pointing away from the negative */
    assert_true(fabs(dz[0]) < 1e-12 && dz[1] > 0);
    assert_true(fabs(dz[2]) < 1e-12 && dz[3] > 0);
}

typedef struct {
    int P, M, D;
    double T;
    double *z;
} anchor_args;

static double anchor_loss(void *user) {
    anchor_args *a = user;
    return mloc_anchor_ntxent_f64(NULL, a->z, a->P, a->M, a->D, a->T);
}

static void test_anchor_ntxent_gradcheck(void **state) {
    (void)state;
    enum { P = 2, M = 3, D = 5, R = 2 * P + M };
    double z[R * D], dz[R * D];
    test_fill_uniform_f64(z, R * D, -1, 1, 21);
    anchor_args a = {P, M, D, 0.5, z};
    mloc_anchor_ntxent_f64(dz, z, P, M, D, 0.5);
    assert_true(test_gradcheck("anchor ntxent", anchor_loss, z, dz, R * D, &a, 1e-6, 1e-9, 1e-6, R * D));
    a.T = 0.1;
    mloc_anchor_ntxent_f64(dz, z, P, M, D, 0.1);
    assert_true(test_gradcheck("anchor ntxent T 0.1", anchor_loss, z, dz, R * D, &a, 1e-6, 1e-8, 1e-6, R * D));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_and_unit_params),
        cmocka_unit_test(test_select_rules),
        cmocka_unit_test(test_layer_scores_read),
        cmocka_unit_test(test_prune_select),
        cmocka_unit_test(test_prune_units),
        cmocka_unit_test(test_prune_vit_units),
        cmocka_unit_test(test_swap_blocks),
        cmocka_unit_test(test_finetune_frozen_dnnl),
        cmocka_unit_test(test_finetune_frozen_ref),
        cmocka_unit_test(test_finetune_reproducible),
        cmocka_unit_test(test_unit_finetune_only_unit),
        cmocka_unit_test(test_unit_check),
        cmocka_unit_test(test_anchor_ntxent_value),
        cmocka_unit_test(test_anchor_ntxent_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
