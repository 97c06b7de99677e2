/* The application tables of SPEC.md section 8 (include/memloc/apply.h):
 * fine-tuning by every selection rule, pruning by every rule and fraction,
 * and exchanging the most / least / random blocks between two encoders.
 * Every row starts from a fresh copy of the encoder read from its file, so
 * rows never influence each other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/apply.h"
#include "memloc/rng.h"

/* ---- fine-tuning -------------------------------------------------------------------- */

mloc_status mloc_finetune_compare(mloc_ctx *ctx, const char *weights, const mloc_layer_scores *s,
                                  const int *ns, int n_ns, const mloc_dataset *train,
                                  const mloc_dataset *test, const mloc_finetune_config *cfg,
                                  mloc_finetune_row *rows, int *n_rows) {
    *n_rows = 0;
    mloc_status st = MLOC_OK;
    /* the head alone first, then rule x n */
    for (int r = -1; r < MLOC_SELECT_COUNT && st == MLOC_OK; r++) {
        for (int k = 0; k < (r < 0 ? 1 : n_ns) && st == MLOC_OK; k++) {
            mloc_finetune_row *row = &rows[*n_rows];
            memset(row, 0, sizeof *row);
            row->rule = r;
            row->n = r < 0 ? 0 : ns[k];
            if (row->n > MLOC_APPLY_MAX_BLOCKS)
                return mloc_error(ctx, MLOC_ERR_USAGE, "finetune: %d blocks, at most %d", row->n,
                                  MLOC_APPLY_MAX_BLOCKS);
            mloc_model *m = NULL;
            st = mloc_model_open(ctx, &m, weights, MLOC_HEAD_NONE);
            if (st == MLOC_OK && r >= 0)
                st = mloc_finetune_select(ctx, m, s, (mloc_select_rule)r, row->n, cfg->seed, row->modules);
            if (st == MLOC_OK)
                st = mloc_finetune_run(ctx, m, row->modules, row->n, train, test, cfg, &row->res);
            if (st != MLOC_OK)
                mloc_error_prefix(ctx, st, "finetune %s n=%d", r < 0 ? "head only" : mloc_select_rule_name(r),
                                  row->n);
            mloc_model_free(m);
            if (st == MLOC_OK) (*n_rows)++;
        }
    }
    return st;
}

/* ---- pruning --------------------------------------------------------------------------- */

mloc_status mloc_prune_compare(mloc_ctx *ctx, const char *weights, const mloc_unit_scores *u,
                               const double *fractions, int nf, const mloc_prune_config *base,
                               const mloc_dataset *train, const mloc_dataset *test,
                               const mloc_probe_config *pc, mloc_prune_row *rows, int *n_rows) {
    *n_rows = 0;
    mloc_status st = MLOC_OK;
    for (int by = -1; by <= MLOC_PRUNE_RANDOM && st == MLOC_OK; by++) {
        for (int k = 0; k < (by < 0 ? 1 : nf) && st == MLOC_OK; k++) {
            mloc_prune_row *row = &rows[*n_rows];
            memset(row, 0, sizeof *row);
            row->by = by;
            row->fraction = by < 0 ? 0 : fractions[k];
            mloc_model *m = NULL;
            mloc_unit_ref *units = NULL;
            st = mloc_model_open(ctx, &m, weights, MLOC_HEAD_NONE);
            if (st == MLOC_OK && by >= 0) {
                mloc_prune_config c = *base;
                c.by = (mloc_prune_by)by;
                c.fraction = row->fraction;
                st = mloc_prune_select(ctx, m, u, &c, &units, &row->units);
                if (st == MLOC_OK) st = mloc_prune_units(ctx, m, units, row->units);
            }
            mloc_probe_result pr;
            memset(&pr, 0, sizeof pr);
            if (st == MLOC_OK) st = mloc_probe_run(ctx, m, &pr, train, NULL, train->n, test, NULL, test->n, pc);
            row->train_top1 = pr.train_top1;
            row->test_top1 = pr.test_top1;
            if (st != MLOC_OK)
                mloc_error_prefix(ctx, st, "prune %s %g", by < 0 ? "none" : mloc_prune_by_name(by), row->fraction);
            free(units);
            mloc_model_free(m);
            if (st == MLOC_OK) (*n_rows)++;
        }
    }
    return st;
}

/* ---- layer exchange ---------------------------------------------------------------------- */

static int same_shapes(const mloc_model *a, const mloc_model *b, int module) {
    const int mb = mloc_model_find_module(b, a->modules[module]);
    if (mb < 0) return 0;
    int na = 0, nb = 0;
    for (int i = 0; i < a->table.n; i++) {
        const mloc_tensor *ta = &a->table.t[i];
        if (ta->module != module) continue;
        na++;
        const int j = mloc_table_find(&b->table, ta->name);
        if (j < 0 || b->table.t[j].module != mb || b->table.t[j].ndim != ta->ndim) return 0;
        for (int d = 0; d < ta->ndim; d++)
            if (b->table.t[j].shape[d] != ta->shape[d]) return 0;
    }
    for (int j = 0; j < b->table.n; j++) nb += b->table.t[j].module == mb;
    return na == nb;
}

typedef struct {
    mloc_dataset train, test;
} eval_pair;

static void pairs_free(eval_pair *p, int n) {
    for (int i = 0; i < n; i++) {
        mloc_dataset_free(&p[i].train);
        mloc_dataset_free(&p[i].test);
    }
}

static mloc_status pairs_open(mloc_ctx *ctx, eval_pair *p, const mloc_model *m, const char *const *train,
                              const char *const *test, int n, const mloc_eval_data_options *dopt) {
    for (int i = 0; i < n; i++) {
        MLOC_TRY(mloc_eval_dataset_open(ctx, &p[i].train, train[i], m, dopt));
        MLOC_TRY(mloc_eval_dataset_open(ctx, &p[i].test, test[i], m, dopt));
    }
    return MLOC_OK;
}

static mloc_status probe_all(mloc_ctx *ctx, mloc_model *m, eval_pair *p, int n, const mloc_probe_config *pc,
                             double *acc) {
    for (int i = 0; i < n; i++) {
        mloc_probe_result r;
        memset(&r, 0, sizeof r);
        MLOC_TRY(mloc_probe_run(ctx, m, &r, &p[i].train, NULL, p[i].train.n, &p[i].test, NULL, p[i].test.n, pc));
        acc[i] = r.test_top1;
    }
    return MLOC_OK;
}

static void join_names(char *out, size_t size, const mloc_model *m, const int *modules, int n) {
    int o = 0;
    out[0] = 0;
    for (int k = 0; k < n && o < (int)size; k++)
        o += snprintf(out + o, size - (size_t)o, "%s%s", k ? "," : "", m->modules[modules[k]]);
}

mloc_status mloc_swap_compare(mloc_ctx *ctx, const char *a_path, const char *b_path,
                              const mloc_layer_scores *s, int n, uint64_t seed,
                              const char *const *train_specs, const char *const *test_specs,
                              int n_eval, const mloc_eval_data_options *dopt,
                              const mloc_probe_config *pc, mloc_swap_row rows[5]) {
    if (n_eval < 1 || n_eval > MLOC_SWAP_MAX_EVAL)
        return mloc_error(ctx, MLOC_ERR_USAGE, "swap: %d evaluation pairs, expected 1..%d", n_eval,
                          MLOC_SWAP_MAX_EVAL);
    memset(rows, 0, 5 * sizeof *rows);
    mloc_model *a = NULL, *b = NULL, *c = NULL;
    eval_pair pa[MLOC_SWAP_MAX_EVAL], pb[MLOC_SWAP_MAX_EVAL];
    memset(pa, 0, sizeof pa);
    memset(pb, 0, sizeof pb);
    mloc_layer_scores fs;
    memset(&fs, 0, sizeof fs);
    int *cand = NULL, nc = 0;
    mloc_status st = mloc_model_open(ctx, &a, a_path, MLOC_HEAD_NONE);
    if (st == MLOC_OK) st = mloc_model_open(ctx, &b, b_path, MLOC_HEAD_NONE);
    if (st != MLOC_OK) goto done;

    /* candidates: blocks of the LayerMem table that B can give to A */
    fs.taps = calloc((size_t)s->n_taps + 1, sizeof *fs.taps);
    fs.layermem = calloc((size_t)s->n_taps + 1, sizeof *fs.layermem);
    fs.delta = calloc((size_t)s->n_taps + 1, sizeof *fs.delta);
    cand = calloc((size_t)s->n_taps + 1, sizeof *cand);
    if (!fs.taps || !fs.layermem || !fs.delta || !cand) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory comparing swaps");
        goto done;
    }
    char skipped[512] = "";
    for (int i = 0; i < s->n_taps; i++) {
        const int tap = mloc_model_find_tap(a, s->taps[i]);
        if (tap < 0) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: tap '%s' is not a tap of A (%s)", s->source, s->taps[i], a_path);
            goto done;
        }
        const int mod = mloc_apply_tap_block(a, tap);
        if (mod < 0) continue;
        if (!same_shapes(a, b, mod)) {
            size_t l = strlen(skipped);
            snprintf(skipped + l, sizeof skipped - l, "%s%s", l ? ", " : "", a->modules[mod]);
            continue;
        }
        snprintf(fs.taps[fs.n_taps], sizeof fs.taps[0], "%s", s->taps[i]);
        fs.layermem[fs.n_taps] = s->layermem[i];
        fs.delta[fs.n_taps] = -s->layermem[i]; /* "least": the highest negated LayerMem */
        fs.n_taps++;
        cand[nc++] = mod;
    }
    snprintf(fs.source, sizeof fs.source, "%s", s->source);
    if (n < 1 || n > nc) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "swap: %d blocks asked, %d can be exchanged (same shapes in A and B)%s%s",
                        n, nc, skipped[0] ? "; not: " : "", skipped);
        goto done;
    }

    st = pairs_open(ctx, pa, a, train_specs, test_specs, n_eval, dopt);
    if (st != MLOC_OK) goto done;
    const int b_same_input = a->cfg.in_channels == b->cfg.in_channels && a->cfg.image_h == b->cfg.image_h &&
                             a->cfg.image_w == b->cfg.image_w;
    if (!b_same_input) {
        /* B sees the same images converted to its input (gray for a 1-channel B) */
        mloc_eval_data_options bopt = *dopt;
        if (b->cfg.in_channels != a->cfg.in_channels) bopt.channels = b->cfg.in_channels;
        st = pairs_open(ctx, pb, b, train_specs, test_specs, n_eval, &bopt);
    }
    if (st != MLOC_OK) goto done;

    snprintf(rows[0].label, sizeof rows[0].label, "A");
    st = probe_all(ctx, a, pa, n_eval, pc, rows[0].test_top1);
    snprintf(rows[1].label, sizeof rows[1].label, "B");
    if (st == MLOC_OK) st = probe_all(ctx, b, b_same_input ? pa : pb, n_eval, pc, rows[1].test_top1);
    if (st != MLOC_OK) goto done;

    static const char *const labels[] = {"most", "least", "random"};
    for (int r = 0; r < 3; r++) {
        mloc_swap_row *row = &rows[2 + r];
        int modules[MLOC_APPLY_MAX_BLOCKS];
        if (n > MLOC_APPLY_MAX_BLOCKS) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "swap: %d blocks, at most %d", n, MLOC_APPLY_MAX_BLOCKS);
            goto done;
        }
        if (r < 2) {
            st = mloc_finetune_select(ctx, a, &fs, r == 0 ? MLOC_SELECT_LAYERMEM : MLOC_SELECT_DELTA, n, seed,
                                      modules);
            if (st != MLOC_OK) goto done;
        } else {
            mloc_rng rng;
            mloc_rng_init_tag(&rng, seed, "finetune-select", 0, 0, 0);
            int64_t perm[MLOC_APPLY_MAX_BLOCKS * 4];
            int64_t np = nc < (int)(sizeof perm / sizeof perm[0]) ? nc : (int64_t)(sizeof perm / sizeof perm[0]);
            mloc_rng_permutation(&rng, perm, np);
            for (int k = 0; k < n; k++) modules[k] = cand[perm[k]];
            for (int i = 1; i < n; i++) /* forward order */
                for (int j = i; j > 0 && modules[j - 1] > modules[j]; j--) {
                    int t = modules[j];
                    modules[j] = modules[j - 1];
                    modules[j - 1] = t;
                }
        }
        snprintf(row->label, sizeof row->label, "%s", labels[r]);
        row->n = n;
        join_names(row->blocks, sizeof row->blocks, a, modules, n);
        const char *names[MLOC_APPLY_MAX_BLOCKS];
        for (int k = 0; k < n; k++) names[k] = a->modules[modules[k]];
        st = mloc_model_open(ctx, &c, a_path, MLOC_HEAD_NONE);
        if (st == MLOC_OK) st = mloc_swap_blocks(ctx, c, b, names, n, NULL);
        if (st == MLOC_OK) st = probe_all(ctx, c, pa, n_eval, pc, row->test_top1);
        mloc_model_free(c);
        c = NULL;
        if (st != MLOC_OK) goto done;
    }
done:
    pairs_free(pa, n_eval);
    pairs_free(pb, n_eval);
    mloc_layer_scores_free(&fs);
    free(cand);
    mloc_model_free(a);
    mloc_model_free(b);
    mloc_model_free(c);
    return st;
}
