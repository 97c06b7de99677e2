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
} ref_exec;

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
        default: return mloc_error(ctx, MLOC_ERR_INTERNAL, "reference backend: op %d", nd->op);
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
        default: return mloc_error(ctx, MLOC_ERR_INTERNAL, "reference backend: op %d", nd->op);
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
