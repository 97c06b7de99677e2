/* Model life cycle and the backend-independent parts of running one. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/rng.h"

static const char *op_names[] = {
#define MLOC_X(name, text) text,
    MLOC_OP_LIST(MLOC_X)
#undef MLOC_X
};

const char *mloc_op_name(mloc_op op) { return (unsigned)op < MLOC_OP_COUNT ? op_names[op] : "?"; }

static const char *const archs[] = {"resnet9", "resnet18", "resnet34", "resnet50",
                                    "vit_tiny", "vit_small", "vit_base", NULL};

const char *const *mloc_model_archs(void) { return archs; }

mloc_model_config mloc_model_config_default(void) {
    mloc_model_config c;
    memset(&c, 0, sizeof c);
    c.arch = "resnet9";
    c.in_channels = 3;
    c.image_h = 32;
    c.image_w = 32;
    c.width = 1.0;
    c.head = MLOC_HEAD_SIMCLR;
    c.head_hidden = 512;
    c.head_out = 128;
    c.pred_hidden = 512;
    c.head_bottleneck = 256;
    c.patch_size = 4;
    c.decoder_dim = 128;
    c.decoder_depth = 2;
    c.decoder_heads = 4;
    return c;
}

/* The drop-path draw shared by the models over one store. */
struct mloc_drop_state {
    uint64_t seed, step;
    int given;       /* m->drop_scale holds scales set by mloc_model_set_drop_scales */
    int given_n;     /* ... for this many samples */
    uint64_t models; /* models sharing it: the next one's drop_stream */
};

mloc_status mloc_model_create(mloc_ctx *ctx, mloc_model **out, const mloc_model_config *cfg) {
    *out = NULL;
    mloc_status st = MLOC_OK;
    mloc_model *m = calloc(1, sizeof *m);
    if (!m) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory creating a model");
    m->cfg = cfg ? *cfg : mloc_model_config_default();
    if (!m->cfg.arch) m->cfg.arch = "resnet9";
    snprintf(m->arch, sizeof m->arch, "%s", m->cfg.arch);
    m->cfg.arch = m->arch;
    mloc_table_init(&m->table);
    if (m->cfg.in_channels < 1 || m->cfg.in_channels > 64) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "in_channels %d: expected 1..64", m->cfg.in_channels);
        goto fail;
    }
    if (!(m->cfg.width > 0 && m->cfg.width <= 16)) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "width %g: expected a multiplier in (0, 16]", m->cfg.width);
        goto fail;
    }
    if (m->cfg.head != MLOC_HEAD_NONE && m->cfg.head_out < 1) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "head output size %d: expected >= 1", m->cfg.head_out);
        goto fail;
    }
    mloc_builder b = {.m = m, .module = -1, .group = MLOC_GROUP_ENCODER};
    if (strcmp(m->arch, "resnet9") == 0) {
        st = mloc_resnet9_build(ctx, &b);
    } else if (strcmp(m->arch, "resnet18") == 0 || strcmp(m->arch, "resnet34") == 0 ||
               strcmp(m->arch, "resnet50") == 0) {
        st = mloc_resnet_build(ctx, &b);
    } else if (mloc_vit_arch(m->arch) >= 0) {
        st = mloc_vit_build(ctx, &b);
    } else {
        st = mloc_error(ctx, MLOC_ERR_USAGE,
                        "unknown architecture '%s' (known: resnet9, resnet18, resnet34, resnet50, vit_tiny, vit_small, "
                        "vit_base)", m->arch);
    }
    if (st != MLOC_OK) goto fail;
    if (m->n_drop > 0 && !(m->drop = calloc(1, sizeof *m->drop))) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory creating a model");
        goto fail;
    }
    if (m->drop) m->drop->models = 1;
    m->input = 0;
    st = mloc_store_alloc(ctx, &m->store, &m->table);
    if (st != MLOC_OK) goto fail;
    m->bn_eval = calloc((size_t)m->n_modules + 1, 1);
    if (!m->bn_eval) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory creating a model");
        goto fail;
    }
    m->backend = mloc_ctx_backend(ctx);
    if (m->backend == MLOC_BACKEND_AUTO) m->backend = MLOC_BACKEND_DNNL;
    mloc_model_init_params(m, mloc_ctx_seed(ctx));
    *out = m;
    return MLOC_OK;
fail:
    mloc_model_free(m);
    return st;
}

void mloc_model_free(mloc_model *m) {
    if (!m) return;
    if (m->exec) m->exec->ops->free(m->exec);
    if (!m->store_shared) mloc_store_free(&m->store);
    mloc_table_free(&m->table);
    free(m->nodes);
    free(m->values);
    free(m->taps);
    free(m->modules);
    free(m->bn_eval);
    free(m->pos_interp_w);
    free(m->pos_interp);
    free(m->pos_interp_grad);
    if (!m->store_shared) free(m->drop);
    free(m->drop_p);
    free(m->drop_scale);
    free(m);
}

/* fan_in of a conv [K,C,R,S] or linear [O,I] weight: C*R*S or I. */
static int64_t fan_in(const mloc_tensor *w) {
    int64_t f = 1;
    for (int d = 1; d < w->ndim; d++) f *= w->shape[d];
    return f;
}

/* The torchvision ResNets (not the paper's ResNet9) initialise their convs
 * as torchvision.models.resnet does. */
static int torchvision_resnet(const mloc_model *m) {
    return strcmp(m->arch, "resnet18") == 0 || strcmp(m->arch, "resnet34") == 0 ||
           strcmp(m->arch, "resnet50") == 0;
}

void mloc_model_init_params(mloc_model *m, uint64_t seed) {
    const mloc_table *tab = &m->table;
    const int tv_conv = torchvision_resnet(m);
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        void *p = mloc_store_ptr(&m->store, tab, i);
        mloc_rng r;
        mloc_rng_init_tag(&r, seed, "init", (uint64_t)i, 0, 0);
        if (tv_conv && e->role == MLOC_ROLE_WEIGHT && e->ndim == 4) {
            /* kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2 / fan_out),
             * fan_out = K R S */
            double sd = sqrt(2.0 / (double)(e->shape[0] * e->shape[2] * e->shape[3]));
            float *f = p;
            for (int64_t k = 0; k < e->numel; k++) f[k] = (float)(sd * mloc_rng_normal(&r));
            continue;
        }
        switch (e->role) {
        case MLOC_ROLE_WEIGHT:
        case MLOC_ROLE_BIAS: {
            /* kaiming_uniform_(a=sqrt(5)): bound = sqrt(6/((1+a^2) fan_in)) = 1/sqrt(fan_in);
             * the bias bound is 1/sqrt(fan_in) of its layer's weight. */
            const mloc_tensor *w = e->role == MLOC_ROLE_WEIGHT ? e : &tab->t[i - 1];
            assert(w->role == MLOC_ROLE_WEIGHT);
            double bound = 1.0 / sqrt((double)fan_in(w));
            float *f = p;
            for (int64_t k = 0; k < e->numel; k++)
                f[k] = (float)((2 * mloc_rng_uniform(&r) - 1) * bound);
            break;
        }
        case MLOC_ROLE_NORM_WEIGHT:
        case MLOC_ROLE_RUNNING_VAR:
            for (int64_t k = 0; k < e->numel; k++) ((float *)p)[k] = 1.0f;
            break;
        case MLOC_ROLE_NORM_BIAS:
        case MLOC_ROLE_RUNNING_MEAN:
        case MLOC_ROLE_EMBEDDING:
            memset(p, 0, (size_t)e->numel * sizeof(float));
            break;
        case MLOC_ROLE_NUM_BATCHES:
            *(int64_t *)p = 0;
            break;
        }
    }
    if (mloc_vit_arch(m->arch) >= 0) mloc_vit_init(m, seed);
    mloc_ssl_head_init(m, seed);
    mloc_model_params_changed(m);
}

mloc_status mloc_model_create_shared(mloc_ctx *ctx, mloc_model **out, const mloc_model_config *cfg,
                                     mloc_model *owner) {
    *out = NULL;
    mloc_model *m;
    MLOC_TRY(mloc_model_create(ctx, &m, cfg));
    const mloc_table *a = &owner->table, *b = &m->table;
    mloc_status st = MLOC_OK;
    for (int i = 0; i < a->n || i < b->n; i++) {
        const mloc_tensor *x = i < a->n ? &a->t[i] : NULL, *y = i < b->n ? &b->t[i] : NULL;
        int same = x && y && strcmp(x->name, y->name) == 0 && x->ndim == y->ndim && x->offset == y->offset &&
                   x->role == y->role && memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof x->shape[0]) == 0;
        if (!same) {
            char sx[64] = "(none)", sy[64] = "(none)";
            if (x) snprintf(sx, sizeof sx, "'%s' [%lld, %lld]", x->name, (long long)x->shape[0],
                            (long long)(x->ndim > 1 ? x->shape[1] : 0));
            if (y) snprintf(sy, sizeof sy, "'%s' [%lld, %lld]", y->name, (long long)y->shape[0],
                            (long long)(y->ndim > 1 ? y->shape[1] : 0));
            st = mloc_error(ctx, MLOC_ERR_USAGE,
                            "shared store: tensor %d is %s in the owner but %s in the %s at %dx%d: its "
                            "parameters depend on the input size", i, sx, sy, m->arch, m->cfg.image_h,
                            m->cfg.image_w);
            mloc_model_free(m);
            return st;
        }
    }
    mloc_store_free(&m->store);
    m->store = owner->store;
    m->store_shared = 1;
    free(m->drop);
    m->drop = owner->drop; /* same draw, its own stream */
    if (m->drop && m->n_drop > 0) m->drop_stream = m->drop->models++;
    m->backend = owner->backend;
    *out = m;
    return MLOC_OK;
}

static const mloc_backend_ops *ops_for(mloc_backend b) {
    return b == MLOC_BACKEND_REF ? &mloc_backend_ref_ops : &mloc_backend_dnnl_ops;
}

mloc_status mloc_model_set_backend(mloc_ctx *ctx, mloc_model *m, mloc_backend b) {
    if (b == MLOC_BACKEND_AUTO) b = MLOC_BACKEND_DNNL;
    if (b == m->backend) return MLOC_OK;
    if (m->exec) {
        m->exec->ops->free(m->exec);
        m->exec = NULL;
    }
    m->backend = b;
    int max_batch = m->max_batch;
    m->max_batch = 0;
    return max_batch ? mloc_model_plan(ctx, m, max_batch) : MLOC_OK;
}

mloc_status mloc_model_plan(mloc_ctx *ctx, mloc_model *m, int max_batch) {
    if (max_batch < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "batch size %d: expected >= 1", max_batch);
    if (m->exec && max_batch <= m->max_batch) return MLOC_OK;
    const mloc_backend_ops *ops = ops_for(m->backend);
    if (m->exec) {
        m->exec->ops->free(m->exec);
        m->exec = NULL;
    }
    m->max_batch = max_batch;
    mloc_status st = ops->plan(ctx, m, max_batch);
    if (st != MLOC_OK) m->max_batch = 0;
    return st;
}

void mloc_model_set_drop_step(mloc_model *m, uint64_t seed, uint64_t step) {
    if (!m->drop) return;
    m->drop->seed = seed;
    m->drop->step = step;
    m->drop->given = 0;
}

static mloc_status drop_reserve(mloc_ctx *ctx, mloc_model *m, int N) {
    if (N <= m->drop_cap) return MLOC_OK;
    float *s = realloc(m->drop_scale, (size_t)m->n_drop * N * sizeof *s);
    if (!s) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for the drop-path scales");
    m->drop_scale = s;
    m->drop_cap = N;
    return MLOC_OK;
}

mloc_status mloc_model_set_drop_scales(mloc_ctx *ctx, mloc_model *m, const float *scales, int N) {
    if (!m->drop || m->n_drop < 1 || N < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "drop-path scales for %d samples: the model has %d drop-path "
                          "branches, expected > 0", N, m->n_drop);
    MLOC_TRY(drop_reserve(ctx, m, N));
    for (int k = 0; k < m->n_drop; k++)
        memcpy(m->drop_scale + (int64_t)k * m->drop_cap, scales + (int64_t)k * N, (size_t)N * sizeof(float));
    m->drop->given = 1;
    m->drop->given_n = N;
    return MLOC_OK;
}

/* timm's drop_path: keep with probability 1 - p (bernoulli), scale 1 / (1 - p) */
static mloc_status drop_draw(mloc_ctx *ctx, mloc_model *m, int N) {
    if (m->drop->given) {
        if (N != m->drop->given_n)
            return mloc_error(ctx, MLOC_ERR_USAGE, "forward of %d samples with drop-path scales given for %d", N,
                              m->drop->given_n);
        return MLOC_OK;
    }
    MLOC_TRY(drop_reserve(ctx, m, N));
    for (int k = 0; k < m->n_drop; k++) {
        mloc_rng r;
        mloc_rng_init_tag(&r, m->drop->seed, "drop_path", m->drop->step, (uint64_t)k, m->drop_stream);
        const double keep = 1.0 - m->drop_p[k];
        for (int n = 0; n < N; n++)
            m->drop_scale[(int64_t)k * m->drop_cap + n] = mloc_rng_uniform(&r) < keep ? (float)(1.0 / keep) : 0.0f;
    }
    return MLOC_OK;
}

mloc_status mloc_model_forward(mloc_ctx *ctx, mloc_model *m, const float *x, int N,
                               mloc_mode mode, int upto) {
    if (N < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "forward: batch of %d images", N);
    /* max_batch is the capacity of an eval forward; the oneDNN backend plans
     * its training programs for exactly the training batch (batch statistics) */
    if (!m->exec || N > m->max_batch) MLOC_TRY(mloc_model_plan(ctx, m, N > m->max_batch ? N : m->max_batch));
    int last = m->n_nodes - 1;
    if (upto >= 0) {
        if (upto >= m->n_values) return mloc_error(ctx, MLOC_ERR_USAGE, "forward: no value %d", upto);
        last = m->values[upto].producer;
        if (mode == MLOC_MODE_TRAIN && last < m->n_nodes - 1)
            return mloc_error(ctx, MLOC_ERR_USAGE, "forward: a partial forward must be in eval mode");
    }
    mloc_vit_pos_forward(m);
    if (mode == MLOC_MODE_TRAIN && m->n_drop > 0) MLOC_TRY(drop_draw(ctx, m, N));
    mloc_status st = m->exec->ops->forward(ctx, m, x, N, mode, last);
    if (st == MLOC_OK) {
        m->exec->N = N;
        m->exec->mode = mode;
        m->exec->last_node = last;
    }
    return st;
}

mloc_status mloc_model_read(mloc_ctx *ctx, mloc_model *m, int v, float *dst) {
    if (!m->exec || v < 0 || v >= m->n_values)
        return mloc_error(ctx, MLOC_ERR_USAGE, "read: no forward pass, or no value %d", v);
    if (m->values[v].producer > m->exec->last_node)
        return mloc_error(ctx, MLOC_ERR_USAGE, "read: value '%s' was not computed by the last forward",
                          m->values[v].name);
    return m->exec->ops->read(ctx, m, v, dst);
}

mloc_status mloc_model_backward(mloc_ctx *ctx, mloc_model *m, int from, const float *dy) {
    if (!m->exec || m->exec->mode != MLOC_MODE_TRAIN || m->exec->last_node != m->n_nodes - 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "backward: needs a full forward in train mode first");
    if (from < 0 || from >= m->n_values)
        return mloc_error(ctx, MLOC_ERR_USAGE, "backward: no value %d", from);
    MLOC_TRY(m->exec->ops->backward(ctx, m, from, dy));
    mloc_vit_pos_backward(m);
    return MLOC_OK;
}

void mloc_model_zero_grad(mloc_model *m) {
    memset(m->store.grad, 0, (size_t)m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
}

void mloc_model_params_changed(mloc_model *m) {
    if (m->exec && m->exec->ops->params_changed) m->exec->ops->params_changed(m);
}

int mloc_model_find_tap(const mloc_model *m, const char *name) {
    for (int i = 0; i < m->n_taps; i++)
        if (strcmp(m->taps[i].name, name) == 0) return i;
    return -1;
}

int mloc_model_find_value(const mloc_model *m, const char *name) {
    for (int i = 0; i < m->n_values; i++)
        if (strcmp(m->values[i].name, name) == 0) return i;
    return -1;
}

int mloc_model_find_module(const mloc_model *m, const char *name) {
    for (int i = 0; i < m->n_modules; i++)
        if (strcmp(m->modules[i], name) == 0) return i;
    return -1;
}

int64_t mloc_model_value_numel(const mloc_model *m, int v) {
    const mloc_value *x = &m->values[v];
    return (int64_t)x->c * x->h * x->w;
}

int64_t mloc_model_param_count(const mloc_model *m, int encoder_only) {
    int64_t n = 0;
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM) continue;
        if (encoder_only && e->group != MLOC_GROUP_ENCODER) continue;
        n += e->numel;
    }
    return n;
}

int mloc_value_consumers(const mloc_model *m, int v) {
    int n = 0;
    for (int i = 0; i < m->n_nodes; i++) n += (m->nodes[i].in[0] == v) + (m->nodes[i].in[1] == v);
    return n;
}

int mloc_bn_training(const mloc_model *m, int node, mloc_mode mode) {
    if (mode != MLOC_MODE_TRAIN) return 0;
    int mod = m->nodes[node].module;
    return !(mod >= 0 && m->bn_eval[mod]);
}

void mloc_bn_update_running(float *running_mean, float *running_var, int64_t *count,
                            const float *batch_mean, const float *batch_var_biased, int C,
                            int64_t n, float momentum) {
    double unbias = n > 1 ? (double)n / (double)(n - 1) : 1.0;
    for (int c = 0; c < C; c++) {
        running_mean[c] = (1 - momentum) * running_mean[c] + momentum * batch_mean[c];
        running_var[c] = (1 - momentum) * running_var[c] + momentum * (float)(batch_var_biased[c] * unbias);
    }
    (*count)++;
}

mloc_status mloc_model_profile(mloc_ctx *ctx, const mloc_model *m, double *train_fwd,
                               double *eval_fwd, double *bwd) {
    if (!m->exec || !m->exec->ops->profile)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "profile: backend has no profiler or no plan");
    m->exec->ops->profile(m, train_fwd, eval_fwd, bwd);
    return MLOC_OK;
}

int64_t mloc_model_node_macs(const mloc_model *m, int i) {
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *x = &m->values[nd->in[0]], *y = &m->values[nd->out];
    switch (nd->op) {
    case MLOC_OP_CONV2D: return (int64_t)y->c * y->h * y->w * x->c * nd->u.conv.r * nd->u.conv.s;
    case MLOC_OP_LINEAR: return (int64_t)y->c * x->c;
    case MLOC_OP_LINEAR_TOKENS: return (int64_t)y->c * y->w * x->w;
    case MLOC_OP_PATCH_EMBED: return (int64_t)y->c * y->w * x->c * nd->u.patch.p * nd->u.patch.p;
    case MLOC_OP_ATTENTION: return 2 * (int64_t)y->c * y->c * y->w; /* q k^T and a v over all heads */
    default: return 0;
    }
}
