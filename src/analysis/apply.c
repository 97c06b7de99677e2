/* Acting on memorization (SPEC.md section 8), the parts that only look at
 * or edit parameters: blocks and units of a model, the LayerMem table of a
 * metrics run, choosing blocks to fine-tune, pruning units by UnitMem and
 * exchanging blocks between encoders. The training parts are in
 * apply_train.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "memloc/apply.h"
#include "memloc/io.h"
#include "memloc/rng.h"

/* ---- blocks and units ---------------------------------------------------------- */

static int module_has_params(const mloc_model *m, int module) {
    for (int i = 0; i < m->table.n; i++)
        if (m->table.t[i].module == module && mloc_role_block(m->table.t[i].role) == MLOC_BLOCK_PARAM)
            return 1;
    return 0;
}

int mloc_apply_tap_block(const mloc_model *m, int tap) {
    if (tap < 0 || tap >= m->n_taps) return -1;
    const int mod = m->taps[tap].module;
    if (mod < 0 || !module_has_params(m, mod)) return -1;
    /* the block's output is its last tap (ResNet blocks also tap inner ReLUs) */
    return mloc_apply_block_tap(m, mod) == tap ? mod : -1;
}

int mloc_apply_block_tap(const mloc_model *m, int module) {
    int tap = -1;
    for (int t = 0; t < m->n_taps; t++)
        if (m->taps[t].module == module) tap = t;
    return tap;
}

void mloc_apply_blocks(const mloc_model *m, int *modules, int *n) {
    *n = 0;
    for (int t = 0; t < m->n_taps; t++) {
        int mod = mloc_apply_tap_block(m, t);
        if (mod >= 0) modules[(*n)++] = mod;
    }
}

/* The layer whose output units are tap `tap`'s units, and the BN after it:
 * from the tap walk back through ReLU and max-pool (channelwise) to a BN and
 * then its conv (a ResNet's conv-block taps), or through GELU to the Linear
 * before it (a ViT's blocks.N.mlp.act: the MLP's hidden neurons, fc1's
 * outputs). Returns 0 when the walk meets anything else (a residual sum, a
 * LayerNorm): such taps own no per-unit parameters. */
static int unit_layers(const mloc_model *m, int tap, int *layer, int *bn) {
    *layer = *bn = -1;
    int v = m->taps[tap].value, gelu = 0;
    for (;;) {
        const int p = m->values[v].producer;
        if (p < 0) return 0;
        const mloc_node *nd = &m->nodes[p];
        switch (nd->op) {
        case MLOC_OP_RELU:
        case MLOC_OP_MAXPOOL2D:
            if (*bn >= 0 || gelu) return 0; /* only conv -> BN -> ReLU [-> pool] */
            v = nd->in[0];
            break;
        case MLOC_OP_BATCHNORM2D:
            if (*bn >= 0 || gelu) return 0;
            *bn = p;
            v = nd->in[0];
            break;
        case MLOC_OP_CONV2D:
            if (gelu) return 0;
            *layer = p;
            return 1;
        case MLOC_OP_GELU:
            if (gelu || *bn >= 0 || v != m->taps[tap].value) return 0; /* the tap is the GELU's output */
            gelu = 1;
            v = nd->in[0];
            break;
        case MLOC_OP_LINEAR_TOKENS:
            if (!gelu) return 0;
            *layer = p;
            return 1;
        default:
            return 0;
        }
    }
}

mloc_status mloc_apply_unit_params(mloc_ctx *ctx, const mloc_model *m, int tap, int unit,
                                   mloc_param_span spans[4], int *n) {
    *n = 0;
    if (tap < 0 || tap >= m->n_taps) return mloc_error(ctx, MLOC_ERR_USAGE, "tap %d: no such tap", tap);
    const mloc_tap *t = &m->taps[tap];
    int layer, bn;
    if (!unit_layers(m, tap, &layer, &bn)) {
        if (m->values[t->value].producer >= 0 && m->nodes[m->values[t->value].producer].op == MLOC_OP_ADD)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "tap %s is a residual join without parameters of its own; units belong to "
                              "conv-block taps (ResNet) or blocks.N.mlp.act (ViT)", t->name);
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "tap %s: its units do not come from one conv -> BN -> ReLU block or one Linear -> GELU "
                          "(it ends in a residual sum or a norm); units belong to conv-block taps (ResNet) or "
                          "blocks.N.mlp.act (ViT)", t->name);
    }
    if (unit < 0 || unit >= t->units)
        return mloc_error(ctx, MLOC_ERR_USAGE, "tap %s: unit %d, expected 0..%d", t->name, unit, t->units - 1);
    const mloc_node *c = &m->nodes[layer];
    const int is_conv = c->op == MLOC_OP_CONV2D;
    const int weight = is_conv ? c->u.conv.weight : c->u.linear.weight;
    const int bias = is_conv ? c->u.conv.bias : c->u.linear.bias;
    const mloc_tensor *w = &m->table.t[weight];
    const int64_t slice = w->numel / w->shape[0]; /* one output channel / row of (out, in, ...) */
    spans[(*n)++] = (mloc_param_span){weight, (int64_t)unit * slice, slice};
    if (bias >= 0) spans[(*n)++] = (mloc_param_span){bias, unit, 1};
    if (bn >= 0) {
        spans[(*n)++] = (mloc_param_span){m->nodes[bn].u.bn.weight, unit, 1};
        spans[(*n)++] = (mloc_param_span){m->nodes[bn].u.bn.bias, unit, 1};
    }
    return MLOC_OK;
}

/* ---- LayerMem scores ------------------------------------------------------------ */

void mloc_layer_scores_free(mloc_layer_scores *s) {
    free(s->taps);
    free(s->layermem);
    free(s->delta);
    s->taps = NULL;
    s->layermem = s->delta = NULL;
    s->n_taps = 0;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

mloc_status mloc_layer_scores_read(mloc_ctx *ctx, const char *dir, mloc_layer_scores *s) {
    memset(s, 0, sizeof *s);
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/layermem.json", dir);
    snprintf(b, sizeof b, "%s/metrics/layermem.json", dir);
    const char *path = is_file(a) ? a : is_file(b) ? b : NULL;
    if (!path)
        return mloc_error(ctx, MLOC_ERR_NOINPUT,
                          "%s: no LayerMem table (neither %s nor %s; run memloc layermem or memloc experiment)",
                          dir, a, b);
    snprintf(s->source, sizeof s->source, "%s", path);
    json_t *doc = NULL;
    MLOC_TRY(mloc_json_load(ctx, path, &doc));
    mloc_status st = MLOC_OK;
    json_t *table = json_object_get(doc, "table");
    const size_t T = json_is_array(table) ? json_array_size(table) : 0;
    if (T == 0) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: field \"table\": expected a non-empty array of taps", path);
        goto done;
    }
    s->taps = calloc(T, sizeof *s->taps);
    s->layermem = calloc(T, sizeof *s->layermem);
    s->delta = calloc(T, sizeof *s->delta);
    if (!s->taps || !s->layermem || !s->delta) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    for (size_t i = 0; i < T; i++) {
        json_t *row = json_array_get(table, i);
        const char *tap = json_string_value(json_object_get(row, "tap"));
        json_t *lm = json_object_get(row, "layermem_random"), *d = json_object_get(row, "delta");
        if (!tap || !json_is_number(lm) || !json_is_number(d)) {
            st = mloc_error(ctx, MLOC_ERR_DATA,
                            "%s: table row %zu: expected \"tap\" (string), \"layermem_random\" and \"delta\" (numbers)",
                            path, i);
            goto done;
        }
        snprintf(s->taps[i], sizeof s->taps[i], "%s", tap);
        s->layermem[i] = json_number_value(lm);
        s->delta[i] = json_number_value(d);
    }
    s->n_taps = (int)T;
done:
    json_decref(doc);
    if (st != MLOC_OK) mloc_layer_scores_free(s);
    return st;
}

/* ---- selecting blocks ------------------------------------------------------------ */

static const char *const select_names[] = {
#define MLOC_X(id, name) name,
    MLOC_SELECT_LIST(MLOC_X)
#undef MLOC_X
};

const char *mloc_select_rule_name(mloc_select_rule r) {
    return (unsigned)r < MLOC_SELECT_COUNT ? select_names[r] : "?";
}

int mloc_select_rule_parse(const char *name) {
    for (int i = 0; name && i < MLOC_SELECT_COUNT; i++)
        if (strcmp(name, select_names[i]) == 0) return i;
    return -1;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

mloc_status mloc_finetune_select(mloc_ctx *ctx, const mloc_model *m, const mloc_layer_scores *s,
                                 mloc_select_rule rule, int n, uint64_t seed, int *modules) {
    int *blocks = malloc((size_t)(m->n_modules + 1) * sizeof *blocks);
    double *score = malloc((size_t)(m->n_modules + 1) * sizeof *score);
    int *cand = malloc((size_t)(m->n_modules + 1) * sizeof *cand);
    mloc_status st = MLOC_OK;
    if (!blocks || !score || !cand) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory selecting blocks");
        goto done;
    }
    int nb, nc = 0;
    mloc_apply_blocks(m, blocks, &nb);
    if (rule == MLOC_SELECT_LAYERMEM || rule == MLOC_SELECT_DELTA) {
        if (!s) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "select %s: needs a LayerMem table", mloc_select_rule_name(rule));
            goto done;
        }
        for (int i = 0; i < s->n_taps; i++) {
            int tap = mloc_model_find_tap(m, s->taps[i]);
            if (tap < 0) {
                st = mloc_error(ctx, MLOC_ERR_USAGE,
                                "%s: tap '%s' is not a tap of this %s encoder (LayerMem of another architecture?)",
                                s->source[0] ? s->source : "LayerMem table", s->taps[i], m->arch);
                goto done;
            }
            int mod = mloc_apply_tap_block(m, tap);
            if (mod < 0) continue; /* residual joins own no parameters */
            cand[nc] = mod;
            score[nc++] = rule == MLOC_SELECT_LAYERMEM ? s->layermem[i] : s->delta[i];
        }
        /* order candidates forward, then a stable selection of the n highest */
        for (int i = 1; i < nc; i++)
            for (int j = i; j > 0 && cand[j - 1] > cand[j]; j--) {
                int tm = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = tm;
                double ts = score[j];
                score[j] = score[j - 1];
                score[j - 1] = ts;
            }
    } else {
        memcpy(cand, blocks, (size_t)nb * sizeof *cand);
        nc = nb;
    }
    if (n < 1 || n > nc) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "select %s: %d blocks asked, expected 1..%d", mloc_select_rule_name(rule),
                        n, nc);
        goto done;
    }
    switch (rule) {
    case MLOC_SELECT_LAYERMEM:
    case MLOC_SELECT_DELTA:
        for (int k = 0; k < n; k++) {
            int best = -1;
            for (int i = 0; i < nc; i++)
                if (cand[i] >= 0 && (best < 0 || score[i] > score[best])) best = i;
            modules[k] = cand[best];
            cand[best] = -1; /* taken */
        }
        break;
    case MLOC_SELECT_LAST:
        for (int k = 0; k < n; k++) modules[k] = cand[nc - n + k];
        break;
    case MLOC_SELECT_RANDOM: {
        mloc_rng r;
        mloc_rng_init_tag(&r, seed, "finetune-select", 0, 0, 0);
        int64_t *perm = malloc((size_t)nc * sizeof *perm);
        if (!perm) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory selecting blocks");
            goto done;
        }
        mloc_rng_permutation(&r, perm, nc);
        for (int k = 0; k < n; k++) modules[k] = cand[perm[k]];
        free(perm);
        break;
    }
    default:
        st = mloc_error(ctx, MLOC_ERR_USAGE, "select: unknown rule %d", (int)rule);
        goto done;
    }
    qsort(modules, (size_t)n, sizeof *modules, cmp_int);
done:
    free(blocks);
    free(score);
    free(cand);
    return st;
}

/* ---- pruning by UnitMem ------------------------------------------------------------ */

static const char *const prune_names[] = {"top", "bottom", "random"};

const char *mloc_prune_by_name(mloc_prune_by b) { return (unsigned)b < 3 ? prune_names[b] : "?"; }

int mloc_prune_by_parse(const char *name) {
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, prune_names[i]) == 0) return i;
    return -1;
}

mloc_prune_config mloc_prune_config_default(void) {
    mloc_prune_config c;
    memset(&c, 0, sizeof c);
    c.by = MLOC_PRUNE_TOP;
    c.fraction = 0.1;
    c.scope = MLOC_PRUNE_PER_TAP;
    return c;
}

/* Candidates are kept in (tap, unit) order; `key` is the sort key. */
static int by_score_desc(const void *a, const void *b) {
    const mloc_unit_ref *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->tap != y->tap) return x->tap < y->tap ? -1 : 1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

static int by_score_asc(const void *a, const void *b) {
    const mloc_unit_ref *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    if (x->tap != y->tap) return x->tap < y->tap ? -1 : 1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

static int by_position(const void *a, const void *b) {
    const mloc_unit_ref *x = a, *y = b;
    if (x->tap != y->tap) return x->tap < y->tap ? -1 : 1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

/* Move the k chosen of c[0..n) to its front: sorted by the rule, or a
 * seeded shuffle for RANDOM (stream ("prune-random", stream)). */
static mloc_status choose(mloc_ctx *ctx, mloc_unit_ref *c, int64_t n, int64_t k, const mloc_prune_config *cfg,
                          uint64_t stream) {
    if (cfg->by == MLOC_PRUNE_TOP) {
        qsort(c, (size_t)n, sizeof *c, by_score_desc);
    } else if (cfg->by == MLOC_PRUNE_BOTTOM) {
        qsort(c, (size_t)n, sizeof *c, by_score_asc);
    } else {
        int64_t *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
        mloc_unit_ref *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof *tmp);
        if (!perm || !tmp) {
            free(perm);
            free(tmp);
            return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory choosing units");
        }
        mloc_rng r;
        mloc_rng_init_tag(&r, cfg->seed, "prune-random", stream, 0, 0);
        mloc_rng_permutation(&r, perm, n);
        for (int64_t i = 0; i < n; i++) tmp[i] = c[perm[i]];
        memcpy(c, tmp, (size_t)n * sizeof *c);
        free(perm);
        free(tmp);
    }
    (void)k;
    return MLOC_OK;
}

mloc_status mloc_prune_select(mloc_ctx *ctx, const mloc_model *m, const mloc_unit_scores *u,
                              const mloc_prune_config *cfg, mloc_unit_ref **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!(cfg->fraction >= 0 && cfg->fraction <= 1))
        return mloc_error(ctx, MLOC_ERR_USAGE, "prune: fraction %g, expected 0..1", cfg->fraction);
    if ((unsigned)cfg->by > MLOC_PRUNE_RANDOM)
        return mloc_error(ctx, MLOC_ERR_USAGE, "prune: unknown rule %d", (int)cfg->by);
    mloc_unit_ref *c = malloc((size_t)(u->units > 0 ? u->units : 1) * sizeof *c);
    mloc_unit_ref *sel = malloc((size_t)(u->units > 0 ? u->units : 1) * sizeof *sel);
    if (!c || !sel) {
        free(c);
        free(sel);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory choosing units");
    }
    mloc_status st = MLOC_OK;
    int64_t nc = 0, ns = 0;
    for (int t = 0; t < u->n_taps; t++) {
        const int tap = mloc_model_find_tap(m, u->tap_names[t]);
        if (tap < 0) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "prune: the UnitMem scores have tap '%s', which this %s encoder lacks",
                            u->tap_names[t], m->arch);
            goto done;
        }
        const int U = u->offset[t + 1] - u->offset[t];
        if (U != m->taps[tap].units) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "prune: the UnitMem scores have %d units at tap %s, the encoder %d",
                            U, u->tap_names[t], m->taps[tap].units);
            goto done;
        }
        int layer, bn;
        if (!unit_layers(m, tap, &layer, &bn)) continue; /* residual joins and norms own no per-unit parameters */
        const int64_t first = nc;
        for (int k = 0; k < U; k++) {
            const int64_t at = u->offset[t] + k;
            if (u->dead && u->dead[at] && !cfg->include_dead) continue;
            c[nc++] = (mloc_unit_ref){tap, k, u->score[at]};
        }
        if (cfg->scope == MLOC_PRUNE_PER_TAP) {
            const int64_t cnt = nc - first, k = llround(cfg->fraction * (double)cnt);
            st = choose(ctx, c + first, cnt, k, cfg, (uint64_t)tap);
            if (st != MLOC_OK) goto done;
            memcpy(sel + ns, c + first, (size_t)k * sizeof *sel);
            ns += k;
        }
    }
    if (cfg->scope == MLOC_PRUNE_GLOBAL) {
        const int64_t k = llround(cfg->fraction * (double)nc);
        st = choose(ctx, c, nc, k, cfg, UINT64_MAX);
        if (st != MLOC_OK) goto done;
        memcpy(sel, c, (size_t)k * sizeof *sel);
        ns = k;
    }
    qsort(sel, (size_t)ns, sizeof *sel, by_position);
    *out = sel;
    *n_out = ns;
    sel = NULL;
done:
    free(c);
    free(sel);
    return st;
}

mloc_status mloc_prune_units(mloc_ctx *ctx, mloc_model *m, const mloc_unit_ref *units, int64_t n) {
    /* check everything first, so a bad unit leaves m unchanged */
    for (int64_t i = 0; i < n; i++) {
        mloc_param_span sp[4];
        int ns;
        MLOC_TRY(mloc_apply_unit_params(ctx, m, units[i].tap, units[i].unit, sp, &ns));
    }
    for (int64_t i = 0; i < n; i++) {
        mloc_param_span sp[4];
        int ns;
        MLOC_TRY(mloc_apply_unit_params(ctx, m, units[i].tap, units[i].unit, sp, &ns));
        for (int k = 0; k < ns; k++) {
            float *p = mloc_store_ptr(&m->store, &m->table, sp[k].entry);
            memset(p + sp[k].start, 0, (size_t)sp[k].count * sizeof *p);
        }
    }
    mloc_model_params_changed(m);
    return MLOC_OK;
}

/* ---- layer exchange ------------------------------------------------------------------ */

static void shape_text(char *out, size_t size, const mloc_tensor *t) {
    int o = snprintf(out, size, "[");
    for (int d = 0; d < t->ndim && o < (int)size; d++)
        o += snprintf(out + o, size - (size_t)o, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    if (o < (int)size) snprintf(out + o, size - (size_t)o, "]");
}

static int same_shape(const mloc_tensor *a, const mloc_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static size_t entry_bytes(const mloc_tensor *t) {
    return (size_t)t->numel * (mloc_role_block(t->role) == MLOC_BLOCK_COUNTER ? sizeof(int64_t) : sizeof(float));
}

mloc_status mloc_swap_blocks(mloc_ctx *ctx, mloc_model *a, const mloc_model *b,
                             const char *const *blocks, int n, int *copied) {
    if (copied) *copied = 0;
    /* check every block and tensor before copying anything */
    for (int pass = 0; pass < 2; pass++) {
        int count = 0;
        for (int k = 0; k < n; k++) {
            int repeated = 0;
            for (int j = 0; j < k; j++) repeated |= strcmp(blocks[j], blocks[k]) == 0;
            if (repeated) continue;
            const int ma = mloc_model_find_module(a, blocks[k]), mb = mloc_model_find_module(b, blocks[k]);
            if (ma < 0 || mb < 0)
                return mloc_error(ctx, MLOC_ERR_USAGE, "swap: block '%s' is not a module of %s", blocks[k],
                                  ma < 0 ? "A" : "B");
            for (int j = 0; j < b->table.n; j++)
                if (b->table.t[j].module == mb && mloc_table_find(&a->table, b->table.t[j].name) < 0)
                    return mloc_error(ctx, MLOC_ERR_USAGE, "swap: %s is in B but not in A", b->table.t[j].name);
            for (int i = 0; i < a->table.n; i++) {
                const mloc_tensor *ta = &a->table.t[i];
                if (ta->module != ma) continue;
                const int j = mloc_table_find(&b->table, ta->name);
                if (j < 0) return mloc_error(ctx, MLOC_ERR_USAGE, "swap: %s is in A but not in B", ta->name);
                const mloc_tensor *tb = &b->table.t[j];
                if (!same_shape(ta, tb) || mloc_role_block(ta->role) != mloc_role_block(tb->role)) {
                    char sa[96], sb[96];
                    shape_text(sa, sizeof sa, ta);
                    shape_text(sb, sizeof sb, tb);
                    return mloc_error(ctx, MLOC_ERR_USAGE, "swap: %s: A %s, B %s", ta->name, sa, sb);
                }
                if (pass == 1)
                    memcpy(mloc_store_ptr(&a->store, &a->table, i), mloc_store_ptr(&b->store, &b->table, j),
                           entry_bytes(ta));
                count++;
            }
        }
        if (pass == 1 && copied) *copied = count;
    }
    mloc_model_params_changed(a);
    return MLOC_OK;
}
