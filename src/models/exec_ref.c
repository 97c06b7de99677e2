/* The reference backend: runs the graph node by node with the plain kernels
 * of nn.h on NCHW float buffers. It is the specification the oneDNN backend
 * is tested against, and a fallback that needs nothing but a C compiler. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/nn.h"

typedef struct {
    mloc_exec base;
    int max_batch;
    float **act;        /* per value: N x numel */
    float **grad;       /* per value: N x numel */
    float **save_mean;  /* per node (BN): C */
    float **save_invstd;
    int32_t **argmax;   /* per node (maxpool): N x C x P x Q */
    float *scratch;     /* largest value, for accumulating gradients */
    uint8_t *grad_ready;
    /* ViT ops (vit_forward / vit_backward below) */
    float **saved;      /* per node: LN mean (N*T) | rstd (N*T); attention probabilities
                           (N*H*T*T); the patch embedding's columns (N*L, C*P*P) */
    float *attn_work;   /* the largest attention's score gradients */
    int32_t *rank;      /* MAE: rank of each patch in its sample's order (N*L) */
    double *dacc;       /* one row of the widest token value */
    float *saved_block; /* owns every saved[i] */
} ref_exec;

static void vit_free(ref_exec *r);
static mloc_status vit_plan(ref_exec *r, const mloc_model *m, int max_batch);
static void vit_forward(ref_exec *r, const mloc_model *m, int i, int N, mloc_mode mode);
static void vit_backward(ref_exec *r, const mloc_model *m, int i, int N, float *dx);
static int is_vit_op(mloc_op op);

static void ref_free(mloc_exec *e) {
    ref_exec *r = (ref_exec *)e;
    if (!r) return;
    free(r->act ? r->act[0] : NULL);
    free(r->act);
    free(r->grad);
    free(r->save_mean);
    free(r->save_invstd);
    free(r->argmax);
    free(r->grad_ready);
    vit_free(r);
    free(r);
}

/* One allocation for everything; pointers carved out of it. */
static mloc_status ref_plan(mloc_ctx *ctx, mloc_model *m, int max_batch) {
    ref_exec *r = calloc(1, sizeof *r);
    if (!r) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory planning the reference backend");
    r->base.ops = &mloc_backend_ref_ops;
    r->max_batch = max_batch;
    r->act = calloc((size_t)m->n_values, sizeof *r->act);
    r->grad = calloc((size_t)m->n_values, sizeof *r->grad);
    r->save_mean = calloc((size_t)m->n_nodes, sizeof *r->save_mean);
    r->save_invstd = calloc((size_t)m->n_nodes, sizeof *r->save_invstd);
    r->argmax = calloc((size_t)m->n_nodes, sizeof *r->argmax);
    r->grad_ready = calloc((size_t)m->n_values, 1);
    if (!r->act || !r->grad || !r->save_mean || !r->save_invstd || !r->argmax || !r->grad_ready)
        goto nomem;
    size_t total = 0, largest = 0;
    for (int v = 0; v < m->n_values; v++) {
        size_t n = (size_t)max_batch * (size_t)mloc_model_value_numel(m, v);
        total += 2 * n;
        if (n > largest) largest = n;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const mloc_node *nd = &m->nodes[i];
        if (nd->op == MLOC_OP_BATCHNORM2D) total += 2 * (size_t)m->values[nd->out].c;
        if (nd->op == MLOC_OP_MAXPOOL2D) total += (size_t)max_batch * mloc_model_value_numel(m, nd->out);
    }
    total += largest;
    float *base = calloc(total ? total : 1, sizeof(float));
    if (!base) goto nomem;
    float *p = base;
    for (int v = 0; v < m->n_values; v++) {
        size_t n = (size_t)max_batch * (size_t)mloc_model_value_numel(m, v);
        r->act[v] = p;
        p += n;
        r->grad[v] = p;
        p += n;
    }
    for (int i = 0; i < m->n_nodes; i++) {
        const mloc_node *nd = &m->nodes[i];
        if (nd->op == MLOC_OP_BATCHNORM2D) {
            int C = m->values[nd->out].c;
            r->save_mean[i] = p;
            p += C;
            r->save_invstd[i] = p;
            p += C;
        }
        if (nd->op == MLOC_OP_MAXPOOL2D) {
            r->argmax[i] = (int32_t *)p; /* int32 and float have the same size */
            p += (size_t)max_batch * mloc_model_value_numel(m, nd->out);
        }
    }
    r->scratch = p;
    if (vit_plan(r, m, max_batch) != MLOC_OK) goto nomem;
    m->exec = &r->base;
    return MLOC_OK;
nomem:
    ref_free(&r->base);
    return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory planning the reference backend (batch %d)",
                      max_batch);
}

#define PARAM(i) ((i) >= 0 ? (float *)mloc_store_ptr(&m->store, &m->table, (i)) : NULL)

static mloc_status ref_forward(mloc_ctx *ctx, mloc_model *m, const float *x, int N, mloc_mode mode,
                               int last_node) {
    ref_exec *r = (ref_exec *)m->exec;
    memcpy(r->act[m->input], x, (size_t)N * mloc_model_value_numel(m, m->input) * sizeof(float));
    for (int i = 0; i <= last_node; i++) {
        const mloc_node *nd = &m->nodes[i];
        const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
        float *in = r->act[nd->in[0]], *out = r->act[nd->out];
        int64_t n_out = (int64_t)N * mloc_model_value_numel(m, nd->out);
        switch (nd->op) {
        case MLOC_OP_CONV2D: {
            mloc_conv2d_shape s = mloc_conv2d_shape_make(N, xi->c, xi->h, xi->w, nd->u.conv.k,
                                                         nd->u.conv.r, nd->u.conv.s,
                                                         nd->u.conv.stride, nd->u.conv.pad);
            mloc_conv2d_forward(out, in, PARAM(nd->u.conv.weight), PARAM(nd->u.conv.bias), &s);
            break;
        }
        case MLOC_OP_BATCHNORM2D: {
            mloc_bn_shape s = mloc_bn_shape_make(N, xi->c, xi->h * xi->w);
            s.eps = nd->u.bn.eps;
            s.momentum = nd->u.bn.momentum;
            if (mloc_bn_training(m, i, mode)) {
                mloc_batchnorm2d_forward_train(out, r->save_mean[i], r->save_invstd[i],
                                               PARAM(nd->u.bn.mean), PARAM(nd->u.bn.var), in,
                                               PARAM(nd->u.bn.weight), PARAM(nd->u.bn.bias), &s);
                (*(int64_t *)mloc_store_ptr(&m->store, &m->table, nd->u.bn.count))++;
            } else {
                mloc_batchnorm2d_forward_eval(out, in, PARAM(nd->u.bn.weight), PARAM(nd->u.bn.bias),
                                              PARAM(nd->u.bn.mean), PARAM(nd->u.bn.var), &s);
            }
            break;
        }
        case MLOC_OP_RELU: mloc_relu_forward(out, in, n_out); break;
        case MLOC_OP_MAXPOOL2D: {
            mloc_pool_shape s = mloc_pool_shape_make(N, xi->c, xi->h, xi->w, nd->u.pool.k,
                                                     nd->u.pool.stride, nd->u.pool.pad);
            mloc_maxpool2d_forward(out, r->argmax[i], in, &s);
            break;
        }
        case MLOC_OP_ADD: mloc_add_forward(out, in, r->act[nd->in[1]], n_out); break;
        case MLOC_OP_FLATTEN: memcpy(out, in, (size_t)n_out * sizeof(float)); break;
        case MLOC_OP_LINEAR: {
            mloc_linear_shape s = {N, xi->c, yo->c};
            mloc_linear_forward(out, in, PARAM(nd->u.linear.weight), PARAM(nd->u.linear.bias), &s);
            break;
        }
        case MLOC_OP_AVGPOOL_GLOBAL:
            mloc_avgpool_global_forward(out, in, N, xi->c, xi->h * xi->w);
            break;
        default:
            if (!is_vit_op(nd->op)) return mloc_error(ctx, MLOC_ERR_INTERNAL, "reference backend: op %d", nd->op);
            vit_forward(r, m, i, N, mode);
            break;
        }
    }
    return MLOC_OK;
}

static mloc_status ref_read(mloc_ctx *ctx, mloc_model *m, int v, float *dst) {
    ref_exec *r = (ref_exec *)m->exec;
    memcpy(dst, r->act[v], (size_t)r->base.N * mloc_model_value_numel(m, v) * sizeof(float));
    return MLOC_OK;
}

/* Where the gradient for input value v goes: straight into grad[v] the first
 * time (=), into scratch to be added afterwards when v already has one (+=,
 * a residual join or a value read by several nodes). */
static float *grad_target(ref_exec *r, int v) { return r->grad_ready[v] ? r->scratch : r->grad[v]; }

static void grad_commit(ref_exec *r, int v, int64_t n) {
    if (r->grad_ready[v]) {
        float *g = r->grad[v];
        for (int64_t i = 0; i < n; i++) g[i] += r->scratch[i];
    }
    r->grad_ready[v] = 1;
}

static mloc_status ref_backward(mloc_ctx *ctx, mloc_model *m, int from, const float *dy) {
    ref_exec *r = (ref_exec *)m->exec;
    const int N = r->base.N;
    memset(r->grad_ready, 0, (size_t)m->n_values);
    memcpy(r->grad[from], dy, (size_t)N * mloc_model_value_numel(m, from) * sizeof(float));
    r->grad_ready[from] = 1;
    for (int i = m->values[from].producer; i >= 0; i--) {
        const mloc_node *nd = &m->nodes[i];
        if (!r->grad_ready[nd->out]) continue; /* not on the path to `from` */
        const int a = nd->in[0];
        const mloc_value *xi = &m->values[a], *yo = &m->values[nd->out];
        const float *g = r->grad[nd->out];
        int64_t n_in = (int64_t)N * mloc_model_value_numel(m, a);
        int need_dx = a != m->input;
        float *dx = need_dx ? grad_target(r, a) : NULL;
        switch (nd->op) {
        case MLOC_OP_CONV2D: {
            mloc_conv2d_shape s = mloc_conv2d_shape_make(N, xi->c, xi->h, xi->w, nd->u.conv.k,
                                                         nd->u.conv.r, nd->u.conv.s,
                                                         nd->u.conv.stride, nd->u.conv.pad);
            mloc_conv2d_backward(dx, m->store.grad + m->table.t[nd->u.conv.weight].offset,
                                 nd->u.conv.bias >= 0 ? m->store.grad + m->table.t[nd->u.conv.bias].offset
                                                      : NULL,
                                 g, r->act[a], PARAM(nd->u.conv.weight), &s);
            break;
        }
        case MLOC_OP_BATCHNORM2D: {
            mloc_bn_shape s = mloc_bn_shape_make(N, xi->c, xi->h * xi->w);
            s.eps = nd->u.bn.eps;
            float *dgamma = m->store.grad + m->table.t[nd->u.bn.weight].offset;
            float *dbeta = m->store.grad + m->table.t[nd->u.bn.bias].offset;
            if (!mloc_bn_training(m, i, MLOC_MODE_TRAIN)) {
                /* BN frozen in eval mode: y = gamma (x - mean) / sqrt(var + eps) + beta
                 * with running stats, so dx = dy gamma / sqrt(var + eps); gamma and
                 * beta still get their gradients. */
                const float *gamma = PARAM(nd->u.bn.weight), *mean = PARAM(nd->u.bn.mean),
                            *var = PARAM(nd->u.bn.var);
                const int HW = xi->h * xi->w;
                for (int c = 0; c < xi->c; c++) {
                    double invstd = 1.0 / sqrt((double)var[c] + s.eps), sg = 0, sgx = 0;
                    for (int n = 0; n < N; n++)
                        for (int k = 0; k < HW; k++) {
                            int64_t at = ((int64_t)n * xi->c + c) * HW + k;
                            sg += g[at];
                            sgx += g[at] * (r->act[a][at] - mean[c]) * invstd;
                            if (dx) dx[at] = (float)(g[at] * gamma[c] * invstd);
                        }
                    dgamma[c] += (float)sgx;
                    dbeta[c] += (float)sg;
                }
            } else {
                mloc_batchnorm2d_backward(dx, dgamma, dbeta, g, r->act[a], r->save_mean[i],
                                          r->save_invstd[i], PARAM(nd->u.bn.weight), &s);
            }
            break;
        }
        case MLOC_OP_RELU:
            if (dx) mloc_relu_backward(dx, g, r->act[nd->out], n_in);
            break;
        case MLOC_OP_MAXPOOL2D: {
            mloc_pool_shape s = mloc_pool_shape_make(N, xi->c, xi->h, xi->w, nd->u.pool.k,
                                                     nd->u.pool.stride, nd->u.pool.pad);
            if (dx) mloc_maxpool2d_backward(dx, g, r->argmax[i], &s);
            break;
        }
        case MLOC_OP_ADD: {
            /* y = a + b: both inputs receive dy */
            if (dx) memcpy(dx, g, (size_t)n_in * sizeof(float));
            int b = nd->in[1];
            if (b != m->input) {
                if (need_dx) grad_commit(r, a, n_in);
                need_dx = 0;
                memcpy(grad_target(r, b), g, (size_t)n_in * sizeof(float));
                grad_commit(r, b, n_in);
            }
            break;
        }
        case MLOC_OP_FLATTEN:
            if (dx) memcpy(dx, g, (size_t)n_in * sizeof(float));
            break;
        case MLOC_OP_LINEAR: {
            mloc_linear_shape s = {N, xi->c, yo->c};
            mloc_linear_backward(dx, m->store.grad + m->table.t[nd->u.linear.weight].offset,
                                 nd->u.linear.bias >= 0
                                     ? m->store.grad + m->table.t[nd->u.linear.bias].offset
                                     : NULL,
                                 g, r->act[a], PARAM(nd->u.linear.weight), &s);
            break;
        }
        case MLOC_OP_AVGPOOL_GLOBAL:
            if (dx) mloc_avgpool_global_backward(dx, g, N, xi->c, xi->h * xi->w);
            break;
        default:
            if (!is_vit_op(nd->op)) return mloc_error(ctx, MLOC_ERR_INTERNAL, "reference backend: op %d", nd->op);
            vit_backward(r, m, i, N, dx);
            break;
        }
        if (need_dx) grad_commit(r, a, n_in);
    }
    return MLOC_OK;
}

const mloc_backend_ops mloc_backend_ref_ops = {
    .name = "ref",
    .plan = ref_plan,
    .forward = ref_forward,
    .read = ref_read,
    .backward = ref_backward,
    .params_changed = NULL,
    .free = ref_free,
};

/* ======================= ViT ops (src/models/vit.c) =======================
 * Token values are (N, T, D) row-major. LayerNorm, GELU, Linear and the
 * attention are the nn.h kernels over the N*T rows; the patch embedding is
 * an im2col into (N*L, C*P*P) columns (Conv2d weight order c, i, j) and a
 * Linear; the token gathers / scatters of CLS_POS, CLS_SELECT and MAE_UNMASK
 * are plain loops here, their parameter gradients summed over the batch in
 * double, in sample order. */

static int is_vit_op(mloc_op op) {
    return op == MLOC_OP_PATCH_EMBED || op == MLOC_OP_CLS_POS || op == MLOC_OP_LAYERNORM ||
           op == MLOC_OP_LINEAR_TOKENS || op == MLOC_OP_GELU || op == MLOC_OP_ATTENTION ||
           op == MLOC_OP_CLS_SELECT || op == MLOC_OP_MAE_UNMASK;
}

static void vit_free(ref_exec *r) {
    free(r->saved_block);
    free(r->saved);
    r->saved = NULL;
    free(r->attn_work);
    free(r->rank);
    free(r->dacc);
}

static int64_t vit_saved_len(const mloc_model *m, int i, int N) {
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *x = &m->values[nd->in[0]], *y = &m->values[nd->out];
    switch (nd->op) {
    case MLOC_OP_LAYERNORM: return 2 * (int64_t)N * x->c;
    case MLOC_OP_ATTENTION: return (int64_t)N * nd->u.attn.heads * x->c * x->c;
    case MLOC_OP_PATCH_EMBED: return (int64_t)N * y->c * x->c * nd->u.patch.p * nd->u.patch.p;
    default: return 0;
    }
}

/* Per-node saved state in one block, the attention work, the MAE ranks and
 * a row accumulator. */
static mloc_status vit_plan(ref_exec *r, const mloc_model *m, int max_batch) {
    int64_t total = 0, work = 0, ranks = 0, widest = 1;
    int any = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const mloc_node *nd = &m->nodes[i];
        any |= is_vit_op(nd->op);
        total += vit_saved_len(m, i, max_batch);
        if (nd->op == MLOC_OP_ATTENTION && vit_saved_len(m, i, max_batch) > work) work = vit_saved_len(m, i, max_batch);
        if (nd->op == MLOC_OP_CLS_POS && (int64_t)max_batch * m->values[nd->in[0]].c > ranks)
            ranks = (int64_t)max_batch * m->values[nd->in[0]].c;
        if (is_vit_op(nd->op) && m->values[nd->out].w > widest) widest = m->values[nd->out].w;
    }
    if (!any) return MLOC_OK;
    r->saved = calloc((size_t)m->n_nodes, sizeof *r->saved);
    float *base = r->saved_block = malloc((size_t)(total ? total : 1) * sizeof(float));
    r->attn_work = malloc((size_t)(work ? work : 1) * sizeof(float));
    r->rank = malloc((size_t)(ranks ? ranks : 1) * sizeof(int32_t));
    r->dacc = malloc((size_t)widest * sizeof(double));
    if (!r->saved || !base || !r->attn_work || !r->rank || !r->dacc) return MLOC_ERR_NOMEM;
    float *p = base;
    for (int i = 0; i < m->n_nodes; i++) {
        int64_t n = vit_saved_len(m, i, max_batch);
        if (!n) continue;
        r->saved[i] = p;
        p += n;
    }
    return MLOC_OK;
}

#define VPARAM(i) ((i) >= 0 ? (float *)mloc_store_ptr(&m->store, &m->table, (i)) : NULL)
#define VGRAD(i) ((i) >= 0 ? m->store.grad + m->table.t[(i)].offset : NULL)

/* patch j of sample n in patch order: the sample's order when keep < L */
static int patch_at(const mloc_model *m, int keep, int L, int n, int j) {
    return keep < L && m->patch_order ? m->patch_order[(int64_t)n * L + j] : j;
}

/* cols (N*L, C*P*P) <- the non-overlapping P x P patches of x (N, C, H, W), raster order */
static void im2col_patches(float *cols, const float *x, int N, int C, int H, int W, int P) {
    const int Wp = W / P, L = (H / P) * Wp, K = C * P * P;
    for (int n = 0; n < N; n++)
        for (int l = 0; l < L; l++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++)
                    for (int j = 0; j < P; j++)
                        cols[((int64_t)n * L + l) * K + (c * P + i) * P + j] =
                            x[(((int64_t)n * C + c) * H + (l / Wp) * P + i) * W + (l % Wp) * P + j];
}

/* drop-path slot k of m: row n of the N samples' (T, O) outputs times its scale */
static void drop_rows(const mloc_model *m, int k, float *y, int N, int64_t per) {
    for (int n = 0; n < N; n++) {
        const float sc = m->drop_scale[(int64_t)k * m->drop_cap + n];
        for (int64_t j = 0; j < per; j++) y[(int64_t)n * per + j] *= sc;
    }
}

static void vit_forward(ref_exec *r, const mloc_model *m, int i, int N, mloc_mode mode) {
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const float *in = r->act[nd->in[0]];
    float *out = r->act[nd->out];
    switch (nd->op) {
    case MLOC_OP_PATCH_EMBED: {
        /* (N, C, H, W) -> (N, L, D) = cols w^T + b */
        const int P = nd->u.patch.p, K = xi->c * P * P;
        im2col_patches(r->saved[i], in, N, xi->c, xi->h, xi->w, P);
        mloc_linear_shape s = {N * yo->c, K, yo->w};
        mloc_linear_forward(out, r->saved[i], VPARAM(nd->u.patch.weight), VPARAM(nd->u.patch.bias), &s);
        break;
    }
    case MLOC_OP_CLS_POS: {
        /* (N, L, D) -> (N, 1 + keep, D): row 0 cls + pos[0], row 1 + j patch o_j + pos[1 + o_j] */
        const int L = xi->c, D = xi->w, keep = nd->u.tok.keep;
        const float *cls = VPARAM(nd->u.tok.cls), *pos = nd->u.tok.interp ? m->pos_interp : VPARAM(nd->u.tok.pos);
        for (int n = 0; n < N; n++) {
            float *o = out + (int64_t)n * (1 + keep) * D;
            for (int d = 0; d < D; d++) o[d] = cls[d] + pos[d];
            for (int j = 0; j < keep; j++) {
                const int p = patch_at(m, keep, L, n, j);
                for (int d = 0; d < D; d++)
                    o[(int64_t)(1 + j) * D + d] = in[((int64_t)n * L + p) * D + d] + pos[(int64_t)(1 + p) * D + d];
            }
        }
        break;
    }
    case MLOC_OP_LAYERNORM: {
        const int M = N * xi->c;
        mloc_layernorm_forward(out, r->saved[i], r->saved[i] + M, in, VPARAM(nd->u.ln.weight),
                               VPARAM(nd->u.ln.bias), M, xi->w, nd->u.ln.eps);
        break;
    }
    case MLOC_OP_LINEAR_TOKENS: {
        mloc_linear_shape s = {N * xi->c, xi->w, yo->w};
        mloc_linear_forward(out, in, VPARAM(nd->u.linear.weight), VPARAM(nd->u.linear.bias), &s);
        if (mode == MLOC_MODE_TRAIN && nd->u.linear.drop >= 0)
            drop_rows(m, nd->u.linear.drop, out, N, (int64_t)yo->c * yo->w); /* timm's DropPath */
        break;
    }
    case MLOC_OP_GELU: mloc_gelu_forward(out, in, (int64_t)N * xi->c * xi->w); break;
    case MLOC_OP_ATTENTION: {
        mloc_attention_shape s = mloc_attention_shape_make(N, xi->c, yo->w, nd->u.attn.heads);
        mloc_attention_forward(out, r->saved[i], in, &s);
        break;
    }
    case MLOC_OP_CLS_SELECT:
        for (int n = 0; n < N; n++)
            memcpy(out + (int64_t)n * yo->c, in + (int64_t)n * xi->c * xi->w, (size_t)xi->w * sizeof(float));
        break;
    case MLOC_OP_MAE_UNMASK: {
        /* (N, 1 + keep, D) -> (N, 1 + L, D): row 1 + o_j is input row 1 + j (j < keep) or the
         * mask token (j >= keep), plus pos[1 + o_j]; row 0 (cls) + pos[0] */
        const int L = yo->c - 1, D = yo->w, keep = nd->u.unmask.keep;
        const float *mask = VPARAM(nd->u.unmask.mask), *pos = VPARAM(nd->u.unmask.pos);
        for (int n = 0; n < N; n++) {
            const float *x = in + (int64_t)n * (1 + keep) * D;
            float *o = out + (int64_t)n * (1 + L) * D;
            for (int d = 0; d < D; d++) o[d] = x[d] + pos[d];
            for (int j = 0; j < L; j++) {
                const int p = patch_at(m, keep, L, n, j);
                const float *src = j < keep ? x + (int64_t)(1 + j) * D : mask;
                for (int d = 0; d < D; d++) o[(int64_t)(1 + p) * D + d] = src[d] + pos[(int64_t)(1 + p) * D + d];
            }
        }
        break;
    }
    default: break;
    }
}

static void vit_backward(ref_exec *r, const mloc_model *m, int i, int N, float *dx) {
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const float *x = r->act[nd->in[0]], *g = r->grad[nd->out];
    switch (nd->op) {
    case MLOC_OP_PATCH_EMBED: {
        /* dw += dy^T cols, db += sum dy; dx[n,c,h,w] = sum_d dy[n,l,d] w[d,c,i,j] (=) */
        const int P = nd->u.patch.p, K = xi->c * P * P, L = yo->c, D = yo->w;
        mloc_linear_shape s = {N * L, K, D};
        mloc_linear_backward(NULL, VGRAD(nd->u.patch.weight), VGRAD(nd->u.patch.bias), g, r->saved[i],
                             VPARAM(nd->u.patch.weight), &s);
        if (dx) {
            const float *w = VPARAM(nd->u.patch.weight);
            const int C = xi->c, H = xi->h, W = xi->w, Wp = W / P;
            for (int n = 0; n < N; n++)
                for (int l = 0; l < L; l++)
                    for (int k = 0; k < K; k++) {
                        double sum = 0;
                        for (int d = 0; d < D; d++) sum += (double)g[((int64_t)n * L + l) * D + d] * w[(int64_t)d * K + k];
                        const int c = k / (P * P), ii = k / P % P, jj = k % P;
                        dx[(((int64_t)n * C + c) * H + (l / Wp) * P + ii) * W + (l % Wp) * P + jj] = (float)sum;
                    }
        }
        break;
    }
    case MLOC_OP_CLS_POS: {
        /* dx[o_j] = dy[1 + j] (=, 0 for masked patches); dcls += sum_n dy[n, 0],
         * dpos[0] likewise; dpos[1 + p] += sum_n dy[n, 1 + rank_n(p)] over the samples that see p */
        const int L = xi->c, D = xi->w, keep = nd->u.tok.keep;
        for (int n = 0; n < N; n++)
            for (int j = 0; j < L; j++) r->rank[(int64_t)n * L + patch_at(m, keep, L, n, j)] = j;
        if (dx) {
            for (int n = 0; n < N; n++)
                for (int p = 0; p < L; p++) {
                    const int j = r->rank[(int64_t)n * L + p];
                    for (int d = 0; d < D; d++)
                        dx[((int64_t)n * L + p) * D + d] = j < keep ? g[((int64_t)n * (1 + keep) + 1 + j) * D + d] : 0.0f;
                }
        }
        float *dcls = VGRAD(nd->u.tok.cls), *dpos = nd->u.tok.interp ? m->pos_interp_grad : VGRAD(nd->u.tok.pos);
        for (int t = 0; t <= L; t++) {
            for (int d = 0; d < D; d++) r->dacc[d] = 0;
            for (int n = 0; n < N; n++) {
                const int j = t == 0 ? -1 : r->rank[(int64_t)n * L + t - 1];
                if (j >= keep) continue;
                for (int d = 0; d < D; d++) r->dacc[d] += g[((int64_t)n * (1 + keep) + 1 + j) * D + d];
            }
            for (int d = 0; d < D; d++) {
                dpos[(int64_t)t * D + d] += (float)r->dacc[d];
                if (t == 0) dcls[d] += (float)r->dacc[d];
            }
        }
        break;
    }
    case MLOC_OP_LAYERNORM: {
        const int M = N * xi->c;
        mloc_layernorm_backward(dx, VGRAD(nd->u.ln.weight), VGRAD(nd->u.ln.bias), g, x, r->saved[i],
                                r->saved[i] + M, VPARAM(nd->u.ln.weight), M, xi->w);
        break;
    }
    case MLOC_OP_LINEAR_TOKENS: {
        mloc_linear_shape s = {N * xi->c, xi->w, yo->w};
        if (nd->u.linear.drop >= 0) /* the output was scaled per sample: so is its gradient (read
                                       only here: the value's one reader is the residual add) */
            drop_rows(m, nd->u.linear.drop, r->grad[nd->out], N, (int64_t)yo->c * yo->w);
        mloc_linear_backward(dx, VGRAD(nd->u.linear.weight), VGRAD(nd->u.linear.bias), g, x,
                             VPARAM(nd->u.linear.weight), &s);
        break;
    }
    case MLOC_OP_GELU:
        if (dx) mloc_gelu_backward(dx, g, x, (int64_t)N * xi->c * xi->w);
        break;
    case MLOC_OP_ATTENTION:
        if (dx) {
            mloc_attention_shape s = mloc_attention_shape_make(N, xi->c, yo->w, nd->u.attn.heads);
            mloc_attention_backward(dx, r->attn_work, g, x, r->saved[i], &s);
        }
        break;
    case MLOC_OP_CLS_SELECT:
        if (dx) {
            memset(dx, 0, (size_t)N * xi->c * xi->w * sizeof(float));
            for (int n = 0; n < N; n++)
                memcpy(dx + (int64_t)n * xi->c * xi->w, g + (int64_t)n * yo->c, (size_t)xi->w * sizeof(float));
        }
        break;
    case MLOC_OP_MAE_UNMASK: {
        /* dx[0] = dy[0], dx[1 + j] = dy[1 + o_j] (j < keep); dmask += dy at the masked
         * rows; dpos[t] += sum_n dy[n, t] */
        const int L = yo->c - 1, D = yo->w, keep = nd->u.unmask.keep;
        float *dmask = VGRAD(nd->u.unmask.mask), *dpos = VGRAD(nd->u.unmask.pos);
        for (int n = 0; n < N && dx; n++) {
            const float *gy = g + (int64_t)n * (1 + L) * D;
            float *d0 = dx + (int64_t)n * (1 + keep) * D;
            memcpy(d0, gy, (size_t)D * sizeof(float));
            for (int j = 0; j < keep; j++)
                memcpy(d0 + (int64_t)(1 + j) * D, gy + (int64_t)(1 + patch_at(m, keep, L, n, j)) * D,
                       (size_t)D * sizeof(float));
        }
        for (int d = 0; d < D; d++) r->dacc[d] = 0;
        for (int n = 0; n < N; n++)
            for (int j = keep; j < L; j++) {
                const float *gy = g + ((int64_t)n * (1 + L) + 1 + patch_at(m, keep, L, n, j)) * D;
                for (int d = 0; d < D; d++) r->dacc[d] += gy[d];
            }
        for (int d = 0; d < D; d++) dmask[d] += (float)r->dacc[d];
        for (int t = 0; t <= L; t++)
            for (int d = 0; d < D; d++) {
                double s = 0;
                for (int n = 0; n < N; n++) s += g[((int64_t)n * (1 + L) + t) * D + d];
                dpos[(int64_t)t * D + d] += (float)s;
            }
        break;
    }
    default: break;
    }
}
