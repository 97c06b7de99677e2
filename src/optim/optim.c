/* The optimizer object: configuration checks, the trainable mask, the step
 * dispatch over table entries, and the state that checkpoints save. The
 * update rules themselves live in sgd.c, adam.c and lars.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/internal.h"

static const char *const kind_names[MLOC_OPTIM_KIND_COUNT] = {
#define MLOC_X(name, text) text,
    MLOC_OPTIM_KIND_LIST(MLOC_X)
#undef MLOC_X
};

const char *mloc_optim_kind_name(mloc_optim_kind kind) {
    return (unsigned)kind < MLOC_OPTIM_KIND_COUNT ? kind_names[kind] : "?";
}

int mloc_optim_kind_parse(const char *name) {
    for (int k = 0; k < MLOC_OPTIM_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) return k;
    return -1;
}

mloc_optim_config mloc_optim_config_default(mloc_optim_kind kind) {
    mloc_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.eta = 1e-3;
    c.weight_decay = kind == MLOC_OPTIM_ADAMW ? 1e-2 : 0.0;
    return c;
}

static int is_adam(mloc_optim_kind k) { return k == MLOC_OPTIM_ADAM || k == MLOC_OPTIM_ADAMW; }

static int has_momentum_buffer(const mloc_optim_config *c) {
    return (c->kind == MLOC_OPTIM_SGD || c->kind == MLOC_OPTIM_LARS) && c->momentum != 0;
}

/* The checks torch's constructors make, plus finiteness. */
static mloc_status check_config(mloc_ctx *ctx, const mloc_optim_config *c) {
    const char *kind = mloc_optim_kind_name(c->kind);
    if ((unsigned)c->kind >= MLOC_OPTIM_KIND_COUNT)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "optimizer: kind %d, expected sgd|adam|adamw|lars",
                          (int)c->kind);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "%s: weight_decay %g, expected >= 0", kind,
                          c->weight_decay);
    if (is_adam(c->kind)) {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "%s: beta1 %g, expected in [0, 1)", kind,
                              c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "%s: beta2 %g, expected in [0, 1)", kind,
                              c->beta2);
        if (!(c->eps >= 0) || !isfinite(c->eps))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "%s: eps %g, expected >= 0", kind, c->eps);
        return MLOC_OK;
    }
    if (!(c->momentum >= 0) || !isfinite(c->momentum))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "%s: momentum %g, expected >= 0", kind,
                          c->momentum);
    if (!isfinite(c->dampening))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "%s: dampening %g, expected a finite value",
                          kind, c->dampening);
    if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        return mloc_error(ctx, MLOC_ERR_CONFIG,
                          "%s: nesterov needs momentum > 0 and dampening 0 (have %g, %g)", kind,
                          c->momentum, c->dampening);
    if (c->kind == MLOC_OPTIM_LARS) {
        if (!(c->eta > 0) || !isfinite(c->eta))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "lars: eta %g, expected > 0", c->eta);
        if (!(c->eps >= 0) || !isfinite(c->eps))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "lars: eps %g, expected >= 0", c->eps);
    }
    return MLOC_OK;
}

static int is_param_entry(const mloc_table *tab, int i) {
    return mloc_role_block(tab->t[i].role) == MLOC_BLOCK_PARAM;
}

mloc_status mloc_optim_create(mloc_ctx *ctx, mloc_optim **out, const mloc_table *table,
                              const mloc_optim_config *cfg) {
    *out = NULL;
    MLOC_TRY(check_config(ctx, cfg));
    mloc_optim *o = mloc_alloc(ctx, sizeof *o);
    if (!o) return MLOC_ERR_NOMEM;
    o->ctx = ctx;
    o->table = table;
    o->cfg = *cfg;
    o->n = table->n;
    o->numel = table->numel[MLOC_BLOCK_PARAM];
    size_t n = (size_t)(o->n > 0 ? o->n : 1);
    size_t numel = (size_t)o->numel;
    int64_t max_chunks = 1;
    for (int i = 0; i < o->n; i++) {
        int64_t c = (table->t[i].numel + OPTIM_NORM_CHUNK - 1) / OPTIM_NORM_CHUNK;
        if (c > max_chunks) max_chunks = c;
    }
    o->trainable = mloc_alloc(ctx, n);
    o->has_buf = mloc_alloc(ctx, n);
    o->entry_step = mloc_alloc(ctx, n * sizeof *o->entry_step);
    o->partial = mloc_alloc(ctx, (size_t)max_chunks * sizeof *o->partial);
    if (!o->trainable || !o->has_buf || !o->entry_step || !o->partial) goto nomem;
    if (is_adam(cfg->kind) || has_momentum_buffer(cfg)) {
        o->m1 = mloc_alloc(ctx, numel * sizeof(float));
        if (!o->m1) goto nomem;
    }
    if (is_adam(cfg->kind)) {
        o->m2 = mloc_alloc(ctx, numel * sizeof(float));
        if (!o->m2) goto nomem;
    }
    for (int i = 0; i < o->n; i++) o->trainable[i] = (unsigned char)is_param_entry(table, i);
    *out = o;
    return MLOC_OK;
nomem:
    mloc_optim_free(o);
    return MLOC_ERR_NOMEM;
}

void mloc_optim_free(mloc_optim *opt) {
    if (!opt) return;
    mloc_free(opt->m1);
    mloc_free(opt->m2);
    mloc_free(opt->trainable);
    mloc_free(opt->has_buf);
    mloc_free(opt->entry_step);
    mloc_free(opt->partial);
    mloc_free(opt);
}

const mloc_optim_config *mloc_optim_get_config(const mloc_optim *opt) { return &opt->cfg; }

int64_t mloc_optim_steps(const mloc_optim *opt) { return opt->step; }

static mloc_status check_table(const mloc_optim *opt) {
    if (opt->table->n != opt->n || opt->table->numel[MLOC_BLOCK_PARAM] != opt->numel)
        return mloc_error(opt->ctx, MLOC_ERR_INTERNAL,
                          "optimizer: table changed after creation (%d entries, %lld params; "
                          "created with %d, %lld)",
                          opt->table->n, (long long)opt->table->numel[MLOC_BLOCK_PARAM], opt->n,
                          (long long)opt->numel);
    return MLOC_OK;
}

mloc_status mloc_optim_step(mloc_optim *opt, mloc_store *store, double lr) {
    MLOC_TRY(check_table(opt));
    if (!(lr >= 0) || !isfinite(lr))
        return mloc_error(opt->ctx, MLOC_ERR_USAGE, "%s: learning rate %g, expected >= 0",
                          mloc_optim_kind_name(opt->cfg.kind), lr);
    const mloc_optim_config *cfg = &opt->cfg;
    const int threads = mloc_ctx_threads(opt->ctx);
    optim_sgd_coef sgd = optim_sgd_coef_make(cfg, lr);
    for (int i = 0; i < opt->n; i++) {
        if (!opt->trainable[i]) continue;
        const mloc_tensor *e = &opt->table->t[i];
        float *p = store->param + e->offset;
        const float *g = store->grad + e->offset;
        float *m1 = opt->m1 ? opt->m1 + e->offset : NULL;
        float *m2 = opt->m2 ? opt->m2 + e->offset : NULL;
        switch (cfg->kind) {
        case MLOC_OPTIM_SGD:
            optim_sgd_entry(p, m1, &opt->has_buf[i], g, e->numel, &sgd, threads);
            break;
        case MLOC_OPTIM_ADAM:
        case MLOC_OPTIM_ADAMW:
            optim_adam_entry(p, m1, m2, &opt->entry_step[i], g, e->numel, cfg, lr,
                             cfg->kind == MLOC_OPTIM_ADAMW, threads);
            break;
        case MLOC_OPTIM_LARS: {
            int excluded = cfg->exclude_bias_n_norm &&
                           (e->role == MLOC_ROLE_BIAS || e->role == MLOC_ROLE_NORM_WEIGHT ||
                            e->role == MLOC_ROLE_NORM_BIAS);
            optim_lars_entry(p, m1, &opt->has_buf[i], g, e->numel, cfg, lr, !excluded,
                             opt->partial, threads);
            break;
        }
        case MLOC_OPTIM_KIND_COUNT: break;
        }
    }
    opt->step++;
    return MLOC_OK;
}

void mloc_optim_zero_grad(const mloc_optim *opt, mloc_store *store) {
    memset(store->grad, 0, (size_t)opt->numel * sizeof(float));
}

mloc_status mloc_optim_set_trainable(mloc_optim *opt, int entry, int trainable) {
    if (entry < 0 || entry >= opt->n || !is_param_entry(opt->table, entry))
        return mloc_error(opt->ctx, MLOC_ERR_USAGE,
                          "optimizer: entry %d is not a parameter of the table (%d entries)",
                          entry, opt->n);
    opt->trainable[entry] = trainable != 0;
    return MLOC_OK;
}

void mloc_optim_set_trainable_all(mloc_optim *opt, int trainable) {
    for (int i = 0; i < opt->n; i++)
        opt->trainable[i] = (unsigned char)(trainable && is_param_entry(opt->table, i));
}

int mloc_optim_is_trainable(const mloc_optim *opt, int entry) {
    return entry >= 0 && entry < opt->n && opt->trainable[entry];
}

/* ---- state ------------------------------------------------------------ */

#define STATE_PREFIX "optim."

typedef enum { SLOT_MOMENTUM = 0, SLOT_EXP_AVG, SLOT_EXP_AVG_SQ, SLOT_PARAM_STEP, SLOT_COUNT } slot;

static const char *const slot_names[SLOT_COUNT] = {"momentum_buffer", "exp_avg", "exp_avg_sq",
                                                   "param_step"};

/* Whether this optimizer keeps per-entry tensor `s`. */
static int uses_slot(const mloc_optim *opt, slot s) {
    switch (s) {
    case SLOT_MOMENTUM: return has_momentum_buffer(&opt->cfg);
    case SLOT_EXP_AVG:
    case SLOT_EXP_AVG_SQ:
    case SLOT_PARAM_STEP: return is_adam(opt->cfg.kind);
    case SLOT_COUNT: break;
    }
    return 0;
}

static void slot_name(char *buf, size_t size, slot s, const char *param) {
    snprintf(buf, size, STATE_PREFIX "%s.%s", slot_names[s], param);
}

mloc_status mloc_optim_add_to_writer(const mloc_optim *opt, mloc_st_writer *w) {
    MLOC_TRY(check_table(opt));
    static const int64_t scalar_shape[1] = {0};
    MLOC_TRY(mloc_st_writer_add(w, STATE_PREFIX "step", MLOC_DTYPE_I64, 0, scalar_shape,
                                &opt->step));
    char name[MLOC_NAME_MAX + 64];
    for (int i = 0; i < opt->n; i++) {
        if (!is_param_entry(opt->table, i)) continue;
        const mloc_tensor *e = &opt->table->t[i];
        for (int s = 0; s < SLOT_COUNT; s++) {
            if (!uses_slot(opt, (slot)s)) continue;
            if (s == SLOT_MOMENTUM && !opt->has_buf[i]) continue;
            slot_name(name, sizeof name, (slot)s, e->name);
            if (s == SLOT_PARAM_STEP) {
                MLOC_TRY(mloc_st_writer_add(w, name, MLOC_DTYPE_I64, 0, scalar_shape,
                                            &opt->entry_step[i]));
            } else {
                const float *block = s == SLOT_EXP_AVG_SQ ? opt->m2 : opt->m1;
                MLOC_TRY(mloc_st_writer_add(w, name, MLOC_DTYPE_F32, e->ndim, e->shape,
                                            block + e->offset));
            }
        }
    }
    return MLOC_OK;
}

/* Which (slot, entry) a file name under "optim." refers to; -1 if none. */
static int parse_state_name(const mloc_optim *opt, const char *name, slot *s) {
    const char *rest = name + strlen(STATE_PREFIX);
    for (int k = 0; k < SLOT_COUNT; k++) {
        size_t len = strlen(slot_names[k]);
        if (strncmp(rest, slot_names[k], len) != 0 || rest[len] != '.') continue;
        int i = mloc_table_find(opt->table, rest + len + 1);
        if (i < 0 || !is_param_entry(opt->table, i)) return -1;
        *s = (slot)k;
        return i;
    }
    return -1;
}

static int same_shape(const mloc_st_tensor *t, const mloc_tensor *e) {
    if (t->ndim != e->ndim) return 0;
    for (int d = 0; d < e->ndim; d++)
        if (t->shape[d] != e->shape[d]) return 0;
    return 1;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t at = 0;
    at += (size_t)snprintf(buf + at, size - at, "[");
    for (int d = 0; d < ndim && at < size; d++)
        at += (size_t)snprintf(buf + at, size - at, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

/* Pass 1 of the load: every "optim." tensor is known, well-shaped and typed,
 * and every required one is there. Nothing is modified. */
static mloc_status check_state_file(const mloc_optim *opt, const mloc_st_file *f) {
    mloc_ctx *ctx = opt->ctx;
    const char *path = mloc_st_path(f);
    const char *kind = mloc_optim_kind_name(opt->cfg.kind);
    const mloc_st_tensor *st = mloc_st_find(f, STATE_PREFIX "step");
    if (!st)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: optim.step missing (no optimizer state)", path);
    for (int j = 0; j < mloc_st_count(f); j++) {
        const mloc_st_tensor *t = mloc_st_get(f, j);
        if (strncmp(t->name, STATE_PREFIX, strlen(STATE_PREFIX)) != 0) continue;
        int is_step = strcmp(t->name, STATE_PREFIX "step") == 0;
        slot s = SLOT_COUNT;
        int i = is_step ? -1 : parse_state_name(opt, t->name, &s);
        if (!is_step && (i < 0 || !uses_slot(opt, s)))
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s: %s is not state of this %s optimizer over this model", path,
                              t->name, kind);
        int integer = is_step || s == SLOT_PARAM_STEP;
        mloc_dtype want = integer ? MLOC_DTYPE_I64 : MLOC_DTYPE_F32;
        if (t->dtype != want)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: %s has dtype %s, expected %s", path,
                              t->name, mloc_dtype_name(t->dtype), mloc_dtype_name(want));
        int ok = integer ? t->ndim == 0 : same_shape(t, &opt->table->t[i]);
        if (!ok) {
            char have[128], expect[128] = "[]";
            format_shape(have, sizeof have, t->ndim, t->shape);
            if (!integer)
                format_shape(expect, sizeof expect, opt->table->t[i].ndim,
                             opt->table->t[i].shape);
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: %s has shape %s, expected %s", path,
                              t->name, have, expect);
        }
    }
    if (!is_adam(opt->cfg.kind)) return MLOC_OK;
    char name[MLOC_NAME_MAX + 64];
    for (int i = 0; i < opt->n; i++) {
        if (!is_param_entry(opt->table, i)) continue;
        for (int s = SLOT_EXP_AVG; s <= SLOT_PARAM_STEP; s++) {
            slot_name(name, sizeof name, (slot)s, opt->table->t[i].name);
            if (!mloc_st_find(f, name))
                return mloc_error(ctx, MLOC_ERR_DATA, "%s: %s missing (%s state)", path, name,
                                  kind);
        }
    }
    return MLOC_OK;
}

mloc_status mloc_optim_load(mloc_optim *opt, const mloc_st_file *f) {
    MLOC_TRY(check_table(opt));
    MLOC_TRY(check_state_file(opt, f));
    mloc_ctx *ctx = opt->ctx;
    char name[MLOC_NAME_MAX + 64];
    /* Pass 2: every read below was validated by pass 1 and cannot fail. */
    const int64_t no_dims[1] = {0};
    MLOC_TRY(mloc_st_read_i64(ctx, &opt->step, f, STATE_PREFIX "step", 0, no_dims));
    for (int i = 0; i < opt->n; i++) {
        const mloc_tensor *e = &opt->table->t[i];
        if (!is_param_entry(opt->table, i)) continue;
        opt->has_buf[i] = 0;
        for (int s = 0; s < SLOT_COUNT; s++) {
            if (!uses_slot(opt, (slot)s)) continue;
            slot_name(name, sizeof name, (slot)s, e->name);
            if (s == SLOT_MOMENTUM) {
                float *buf = opt->m1 + e->offset;
                if (mloc_st_find(f, name)) {
                    MLOC_TRY(mloc_st_read_f32(ctx, buf, f, name, e->ndim, e->shape));
                    opt->has_buf[i] = 1;
                } else {
                    memset(buf, 0, (size_t)e->numel * sizeof(float));
                }
            } else if (s == SLOT_PARAM_STEP) {
                MLOC_TRY(mloc_st_read_i64(ctx, &opt->entry_step[i], f, name, 0, no_dims));
            } else {
                float *block = (s == SLOT_EXP_AVG_SQ ? opt->m2 : opt->m1) + e->offset;
                MLOC_TRY(mloc_st_read_f32(ctx, block, f, name, e->ndim, e->shape));
            }
        }
    }
    return MLOC_OK;
}
