/* Graph building: nodes, values, parameters with PyTorch names, taps. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int grow(void **arr, int n, size_t elem) {
    /* grow geometrically at powers of two */
    if (n && (n & (n - 1))) return 1;
    int cap = n ? n * 2 : 16;
    void *p = realloc(*arr, (size_t)cap * elem);
    if (!p) return 0;
    *arr = p;
    return 1;
}

static int new_value(mloc_builder *b, const char *name, int c, int h, int w, int producer) {
    mloc_model *m = b->m;
    if (b->failed || !grow((void **)&m->values, m->n_values, sizeof *m->values)) {
        b->failed = 1;
        return -1;
    }
    mloc_value *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->c = c;
    v->h = h;
    v->w = w;
    v->producer = producer;
    return m->n_values++;
}

static mloc_node *new_node(mloc_builder *b, mloc_op op, const char *name, int in0, int in1) {
    mloc_model *m = b->m;
    if (b->failed || !grow((void **)&m->nodes, m->n_nodes, sizeof *m->nodes)) {
        b->failed = 1;
        return NULL;
    }
    mloc_node *n = &m->nodes[m->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    snprintf(n->name, sizeof n->name, "%s", name);
    n->in[0] = in0;
    n->in[1] = in1;
    n->module = b->module;
    return n;
}

static int add_param(mloc_builder *b, const char *path, const char *leaf, mloc_role role, int ndim,
                     const int64_t *shape) {
    char name[MLOC_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", path, leaf);
    int i = mloc_table_add(&b->m->table, name, role, b->group, b->module, ndim, shape);
    if (i < 0) b->failed = 1;
    return i;
}

int mloc_build_module(mloc_builder *b, const char *name) {
    mloc_model *m = b->m;
    if (b->failed || !grow((void **)&m->modules, m->n_modules, sizeof *m->modules)) {
        b->failed = 1;
        return -1;
    }
    snprintf(m->modules[m->n_modules], sizeof m->modules[0], "%s", name);
    b->module = m->n_modules;
    return m->n_modules++;
}

int mloc_build_input(mloc_builder *b, int c, int h, int w) {
    return new_value(b, "input", c, h, w, -1);
}

int mloc_build_conv(mloc_builder *b, const char *path, int in, int k, int r, int stride,
                    int pad, int bias) {
    if (in < 0 || b->failed) return -1;
    const mloc_value x = b->m->values[in];
    mloc_node *n = new_node(b, MLOC_OP_CONV2D, path, in, -1);
    if (!n) return -1;
    int64_t wshape[4] = {k, x.c, r, r}, bshape[1] = {k};
    n->u.conv.k = k;
    n->u.conv.r = r;
    n->u.conv.s = r;
    n->u.conv.stride = stride;
    n->u.conv.pad = pad;
    n->u.conv.weight = add_param(b, path, "weight", MLOC_ROLE_WEIGHT, 4, wshape);
    n->u.conv.bias = bias ? add_param(b, path, "bias", MLOC_ROLE_BIAS, 1, bshape) : -1;
    int h = (x.h + 2 * pad - r) / stride + 1, w = (x.w + 2 * pad - r) / stride + 1;
    assert(h > 0 && w > 0);
    int node = b->m->n_nodes - 1;
    int v = new_value(b, path, k, h, w, node);
    if (v >= 0) b->m->nodes[node].out = v;
    return v;
}

int mloc_build_bn(mloc_builder *b, const char *path, int in) {
    if (in < 0 || b->failed) return -1;
    const mloc_value x = b->m->values[in];
    mloc_node *n = new_node(b, MLOC_OP_BATCHNORM2D, path, in, -1);
    if (!n) return -1;
    int64_t cshape[1] = {x.c};
    n->u.bn.eps = 1e-5f;
    n->u.bn.momentum = 0.1f;
    n->u.bn.weight = add_param(b, path, "weight", MLOC_ROLE_NORM_WEIGHT, 1, cshape);
    n->u.bn.bias = add_param(b, path, "bias", MLOC_ROLE_NORM_BIAS, 1, cshape);
    n->u.bn.mean = add_param(b, path, "running_mean", MLOC_ROLE_RUNNING_MEAN, 1, cshape);
    n->u.bn.var = add_param(b, path, "running_var", MLOC_ROLE_RUNNING_VAR, 1, cshape);
    n->u.bn.count = add_param(b, path, "num_batches_tracked", MLOC_ROLE_NUM_BATCHES, 0, NULL);
    int node = b->m->n_nodes - 1;
    int v = new_value(b, path, x.c, x.h, x.w, node);
    if (v >= 0) b->m->nodes[node].out = v;
    return v;
}

static int unary(mloc_builder *b, mloc_op op, const char *path, int in, int c, int h, int w) {
    if (in < 0 || b->failed) return -1;
    if (!new_node(b, op, path, in, -1)) return -1;
    int node = b->m->n_nodes - 1;
    int v = new_value(b, path, c, h, w, node);
    if (v >= 0) b->m->nodes[node].out = v;
    return v;
}

int mloc_build_relu(mloc_builder *b, const char *path, int in) {
    if (in < 0) return -1;
    const mloc_value x = b->m->values[in];
    return unary(b, MLOC_OP_RELU, path, in, x.c, x.h, x.w);
}

int mloc_build_maxpool(mloc_builder *b, const char *path, int in, int k, int stride, int pad) {
    if (in < 0) return -1;
    const mloc_value x = b->m->values[in];
    int h = (x.h + 2 * pad - k) / stride + 1, w = (x.w + 2 * pad - k) / stride + 1;
    assert(h > 0 && w > 0);
    int v = unary(b, MLOC_OP_MAXPOOL2D, path, in, x.c, h, w);
    if (v >= 0) {
        mloc_node *n = &b->m->nodes[b->m->n_nodes - 1];
        n->u.pool.k = k;
        n->u.pool.stride = stride;
        n->u.pool.pad = pad;
    }
    return v;
}

int mloc_build_add(mloc_builder *b, const char *name, int a, int c) {
    if (a < 0 || c < 0 || b->failed) return -1;
    const mloc_value x = b->m->values[a], y = b->m->values[c];
    assert(x.c == y.c && x.h == y.h && x.w == y.w);
    if (!new_node(b, MLOC_OP_ADD, name, a, c)) return -1;
    int node = b->m->n_nodes - 1;
    b->m->nodes[node].module = -1;
    int v = new_value(b, name, x.c, x.h, x.w, node);
    if (v >= 0) b->m->nodes[node].out = v;
    return v;
}

int mloc_build_flatten(mloc_builder *b, const char *name, int in) {
    if (in < 0) return -1;
    const mloc_value x = b->m->values[in];
    return unary(b, MLOC_OP_FLATTEN, name, in, x.c * x.h * x.w, 1, 1);
}

int mloc_build_avgpool_global(mloc_builder *b, const char *name, int in) {
    if (in < 0) return -1;
    const mloc_value x = b->m->values[in];
    return unary(b, MLOC_OP_AVGPOOL_GLOBAL, name, in, x.c, 1, 1);
}

int mloc_build_linear(mloc_builder *b, const char *path, int in, int out_features, int bias) {
    if (in < 0 || b->failed) return -1;
    const mloc_value x = b->m->values[in];
    assert(x.h == 1 && x.w == 1);
    mloc_node *n = new_node(b, MLOC_OP_LINEAR, path, in, -1);
    if (!n) return -1;
    int64_t wshape[2] = {out_features, x.c}, bshape[1] = {out_features};
    n->u.linear.out_features = out_features;
    n->u.linear.weight = add_param(b, path, "weight", MLOC_ROLE_WEIGHT, 2, wshape);
    n->u.linear.bias = bias ? add_param(b, path, "bias", MLOC_ROLE_BIAS, 1, bshape) : -1;
    n->u.linear.drop = -1;
    int node = b->m->n_nodes - 1;
    int v = new_value(b, path, out_features, 1, 1, node);
    if (v >= 0) b->m->nodes[node].out = v;
    return v;
}

int mloc_build_node(mloc_builder *b, mloc_op op, const char *name, int in0, int in1, int c, int h, int w,
                    int *node) {
    *node = -1;
    if (in0 < 0 || b->failed) return -1;
    if (!new_node(b, op, name, in0, in1)) return -1;
    const int i = b->m->n_nodes - 1;
    int v = new_value(b, name, c, h, w, i);
    if (v < 0) return -1;
    b->m->nodes[i].out = v;
    *node = i;
    return v;
}

int mloc_build_param(mloc_builder *b, const char *path, const char *leaf, mloc_role role, int ndim,
                     const int64_t *shape) {
    if (b->failed) return -1;
    if (leaf) return add_param(b, path, leaf, role, ndim, shape);
    int i = mloc_table_add(&b->m->table, path, role, b->group, b->module, ndim, shape);
    if (i < 0) b->failed = 1;
    return i;
}

void mloc_build_rename(mloc_builder *b, int v, const char *name) {
    if (v >= 0) snprintf(b->m->values[v].name, sizeof b->m->values[v].name, "%s", name);
}

int mloc_build_tap(mloc_builder *b, const char *name, int v, mloc_unit_kind kind, int nonneg) {
    mloc_model *m = b->m;
    if (v < 0 || b->failed || !grow((void **)&m->taps, m->n_taps, sizeof *m->taps)) {
        b->failed = 1;
        return -1;
    }
    mloc_build_rename(b, v, name);
    mloc_tap *t = &m->taps[m->n_taps];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->value = v;
    t->units = kind == MLOC_UNIT_TOKEN_MEAN ? m->values[v].w : m->values[v].c; /* (T, 1, D): D features */
    t->unit_kind = kind;
    t->nonneg = nonneg;
    int producer = m->values[v].producer;
    t->module = producer >= 0 ? m->nodes[producer].module : -1;
    return m->n_taps++;
}
