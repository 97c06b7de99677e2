/* The oneDNN backend (oneDNN 2.6, the 2.x C API).
 *
 * At plan time the graph is compiled, for the planned batch N, into programs
 * of steps: a training forward, its backward, and an eval forward. A step is
 * a oneDNN primitive with its arguments bound, or a small C function (residual
 * add, linear layers through dnnl_sgemm, running statistics, gradient
 * accumulation). Running a program is a loop over its steps: nothing is
 * allocated and nothing is decided inside a step.
 *
 * Layouts: activations stay in the layouts oneDNN's convolutions choose
 * (nChw16c with AVX-512) from layer to layer. A reorder appears only where two
 * primitives disagree, where a user reads a value (mloc_model_read), at the
 * plain NCHW input, and at the flatten before the head.
 *
 * Fusions (the graph stays per-op; the planner recognises the patterns):
 *   - BatchNorm2d whose only reader is a ReLU runs as one primitive with
 *     dnnl_fuse_norm_relu (the ReLU mask goes to a workspace for backward);
 *     the ReLU's value shares the BN's buffer, and the BN's own pre-ReLU output
 *     is not materialised (so it cannot be read).
 *   - Eval: Conv2d -> BatchNorm2d (running stats) [-> ReLU] is one convolution
 *     with the BN folded into weights and bias and the ReLU as a post-op:
 *     w' = w gamma / sqrt(var + eps),  b' = (b - mean) gamma / sqrt(var + eps) + beta.
 *     (Without the ReLU: the BN in front of a ResNet's residual sum.)
 *   - A residual sum whose only reader is a ReLU (torchvision's blocks) is one
 *     step y = max(a + b, 0), the sum not materialised; backward writes
 *     dy [y > 0] to both inputs at once. The loops run over the whole blocked
 *     buffer, padding included: oneDNN keeps padded channels at zero, and
 *     max(0 + 0, 0) keeps them so.
 *
 * Weights: parameters live in PyTorch layout in the model's store. Each
 * forward first reorders them into the blocked layouts of the primitives
 * (about 1.6M floats for ResNet9, well under a millisecond); parameter
 * gradients come back through reorders with a sum post-op, so they
 * accumulate (+=) into the store's grad block as in the reference backend.
 * Activation gradients are written, and summed where a value has several
 * readers (residual joins). */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include "models/internal.h"

#define MAX_ARGS 12

typedef struct dexec dexec;
typedef struct step step;
typedef void (*step_fn)(dexec *e, const mloc_model *m, const step *s);

struct step {
    dnnl_primitive_t prim; /* NULL: run fn instead */
    int nargs;
    dnnl_exec_arg_t args[MAX_ARGS];
    step_fn fn;
    int node;
    int batch;   /* the program's batch (linear steps) */
    float *p[4];
    int64_t n, c;
};

typedef struct {
    step *s;
    int n, cap;
} program;

enum { TRAIN = 0, EVAL = 1 };

/* A value as laid out by one program. */
typedef struct {
    dnnl_memory_desc_t md;
    float *act, *grad;
    dnnl_memory_t act_mem, grad_mem;
    int materialised;
    dnnl_primitive_t read_reorder;  /* md -> nchw, made on the first read */
    dnnl_memory_t read_mem;         /* the reorder's destination: the caller's buffer */
    float *read_buf;                /* for reads of fewer rows than planned */
    struct step *read_step;         /* the bound reorder step */
} dval;

typedef struct {
    int fused_relu;               /* BN: its ReLU reader runs inside it */
    int fused_into;               /* ReLU / BN: the node that computes it, or -1 */
    /* conv */
    dnnl_memory_desc_t src_md, ddst_md, dsrc_md, dw_md;
    dnnl_memory_t src_mem;        /* the source as the training primitives read it */
    dnnl_primitive_t bwd_data, bwd_weights, dw_to_grad;
    dnnl_memory_t w_bwd_mem, dw_mem, db_mem, dw_grad_mem;
    float *db;
    /* bn */
    dnnl_primitive_t bn_bwd;
    dnnl_memory_desc_t bn_dsrc_md;
    dnnl_memory_t mean_mem, var_mem, ws_mem, scale_mem, shift_mem, dscale_mem, dshift_mem;
    float *mean, *var, *dscale, *dshift;
    /* pool */
    dnnl_primitive_t pool_bwd;
    dnnl_memory_t pool_ws_mem;
    dnnl_memory_desc_t pool_ddst_md, pool_dsrc_md;
} dnode;

struct dexec {
    mloc_exec base;
    mloc_ctx *ctx;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int n[2];                     /* batch of the TRAIN and EVAL programs (0: not planned) */
    int train_planned;            /* the training programs are built on the first training forward,
                                     for its batch, which may differ from the eval batch */
    dval *v[2];                   /* per program (TRAIN, EVAL), per value */
    int n_values;
    dnode *nd;
    program prep[2], fwd[2], bwd;
    int *eval_end;                /* eval steps [0, eval_end[i]) cover nodes 0..i */
    uint8_t *planned;             /* planning state: node already covered by a fusion */
    uint8_t *grad_ready;          /* planning state for the backward */
    /* one bump arena in chunks; all freed together */
    char **chunks;
    int n_chunks;
    char *cur;
    size_t cur_left;
    void *scratchpad;
    size_t scratchpad_size, scratchpad_cap;
    double *prof[3];              /* seconds per node: train fwd, eval fwd, backward */
    dnnl_primitive_t *prims;
    int n_prims, cap_prims;
    dnnl_memory_t *mems;
    int n_mems, cap_mems;
};

/* ---- helpers ----------------------------------------------------------- */

#define DN(call)                                                                          \
    do {                                                                                  \
        dnnl_status_t dn_st_ = (call);                                                    \
        if (dn_st_ != dnnl_success) {                                                     \
            st = mloc_error(e->ctx, MLOC_ERR_INTERNAL, "oneDNN: %s failed (status %d)", #call, \
                            (int)dn_st_);                                                 \
            goto fail;                                                                    \
        }                                                                                 \
    } while (0)

#define TRY(expr)                                                                         \
    do {                                                                                  \
        st = (expr);                                                                      \
        if (st != MLOC_OK) goto fail;                                                     \
    } while (0)

static int push(void **arr, int *n, int *cap, size_t elem, const void *item) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        void *p = realloc(*arr, (size_t)c * elem);
        if (!p) return 0;
        *arr = p;
        *cap = c;
    }
    memcpy((char *)*arr + (size_t)*n * elem, item, elem);
    (*n)++;
    return 1;
}

#define CHUNK (64u << 20)

static void *take(dexec *e, size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    if (bytes > e->cur_left) {
        size_t size = bytes > CHUNK ? bytes : CHUNK;
        char *c = mloc_alloc(e->ctx, size);
        char **list = c ? realloc(e->chunks, (size_t)(e->n_chunks + 1) * sizeof *list) : NULL;
        if (!list) {
            mloc_free(c);
            mloc_error(e->ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory (batch %d)", e->n[EVAL]);
            return NULL;
        }
        e->chunks = list;
        e->chunks[e->n_chunks++] = c;
        e->cur = c;
        e->cur_left = size;
    }
    void *p = e->cur;
    e->cur += bytes;
    e->cur_left -= bytes;
    return p;
}

static mloc_status mem(dexec *e, dnnl_memory_t *out, const dnnl_memory_desc_t *md, void *ptr) {
    mloc_status st = MLOC_OK;
    DN(dnnl_memory_create(out, md, e->engine, ptr));
    if (!push((void **)&e->mems, &e->n_mems, &e->cap_mems, sizeof *out, out))
        return mloc_error(e->ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory");
fail:
    return st;
}

/* Memory with a fresh arena buffer for md. */
static mloc_status mem_new(dexec *e, dnnl_memory_t *out, const dnnl_memory_desc_t *md, float **buf) {
    void *p = take(e, dnnl_memory_desc_get_size(md));
    if (!p) return MLOC_ERR_NOMEM;
    if (buf) *buf = p;
    return mem(e, out, md, p);
}

static mloc_status prim(dexec *e, dnnl_primitive_t *out, const_dnnl_primitive_desc_t pd) {
    mloc_status st = MLOC_OK;
    DN(dnnl_primitive_create(out, pd));
    if (!push((void **)&e->prims, &e->n_prims, &e->cap_prims, sizeof *out, out))
        return mloc_error(e->ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory");
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t need = sp ? dnnl_memory_desc_get_size(sp) : 0;
    if (need > e->scratchpad_size) e->scratchpad_size = need;
fail:
    return st;
}

static void arg(step *s, int which, dnnl_memory_t m) {
    assert(s->nargs < MAX_ARGS);
    s->args[s->nargs].arg = which;
    s->args[s->nargs].memory = m;
    s->nargs++;
}

/* Every primitive gets a memory object in its own scratchpad layout, all
 * pointing at the one shared buffer (oneDNN checks the descriptor). */
static mloc_status bind_scratchpad(dexec *e, step *s) {
    const_dnnl_primitive_desc_t pd;
    if (dnnl_primitive_get_primitive_desc(s->prim, &pd) != dnnl_success)
        return mloc_error(e->ctx, MLOC_ERR_INTERNAL, "oneDNN: no primitive descriptor");
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t need = md ? dnnl_memory_desc_get_size(md) : 0;
    if (need == 0) return MLOC_OK;
    if (need > e->scratchpad_size)
        return mloc_error(e->ctx, MLOC_ERR_INTERNAL, "oneDNN: scratchpad of %zu bytes > planned %zu", need,
                          e->scratchpad_size);
    dnnl_memory_t sp;
    MLOC_TRY(mem(e, &sp, md, e->scratchpad));
    for (int k = 0; k < s->nargs; k++)
        if (s->args[k].arg == DNNL_ARG_SCRATCHPAD) {
            s->args[k].memory = sp; /* rebinding after the scratchpad grew */
            return MLOC_OK;
        }
    arg(s, DNNL_ARG_SCRATCHPAD, sp);
    return MLOC_OK;
}

/* (Re)allocate the shared scratchpad when primitives planned later need a
 * larger one, and rebind every step to it. */
static mloc_status bind_all_scratchpads(dexec *e, const mloc_model *m) {
    if (!e->scratchpad || e->scratchpad_size > e->scratchpad_cap) {
        mloc_free(e->scratchpad);
        e->scratchpad = mloc_alloc(e->ctx, e->scratchpad_size ? e->scratchpad_size : 1);
        if (!e->scratchpad) return MLOC_ERR_NOMEM;
        e->scratchpad_cap = e->scratchpad_size;
    }
    program *all[] = {&e->prep[TRAIN], &e->prep[EVAL], &e->fwd[TRAIN], &e->fwd[EVAL], &e->bwd};
    for (int p = 0; p < 5; p++)
        for (int k = 0; k < all[p]->n; k++)
            if (all[p]->s[k].prim) MLOC_TRY(bind_scratchpad(e, &all[p]->s[k]));
    for (int p = 0; p < 2; p++)
        for (int v = 0; v < m->n_values; v++)
            if (e->v[p][v].read_step) MLOC_TRY(bind_scratchpad(e, e->v[p][v].read_step));
    return MLOC_OK;
}

static step *add_step(dexec *e, program *p, int node) {
    if (p->n == p->cap) {
        int c = p->cap ? p->cap * 2 : 64;
        step *s = realloc(p->s, (size_t)c * sizeof *s);
        if (!s) {
            mloc_error(e->ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory");
            return NULL;
        }
        p->s = s;
        p->cap = c;
    }
    step *s = &p->s[p->n++];
    memset(s, 0, sizeof *s);
    s->node = node;
    return s;
}

static step *prim_step(dexec *e, program *p, int node, dnnl_primitive_t pr) {
    step *s = add_step(e, p, node);
    if (s) s->prim = pr;
    return s;
}

static step *fn_step(dexec *e, program *p, int node, step_fn fn) {
    step *s = add_step(e, p, node);
    if (s) s->fn = fn;
    return s;
}

static dnnl_memory_desc_t md4(int N, int C, int H, int W, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {N, C, H, W};
    dnnl_memory_desc_init_by_tag(&md, 4, d, dnnl_f32, tag);
    return md;
}

static dnnl_memory_desc_t md1(int C) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {C};
    dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_f32, dnnl_x);
    return md;
}

static dnnl_primitive_attr_t attr_new(void) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    return attr;
}

static const char *impl_name(const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    return s ? s : "?";
}

/* A reorder from -> to; `accumulate` adds into the destination. */
static mloc_status reorder(dexec *e, dnnl_primitive_t *out, const dnnl_memory_desc_t *from,
                           const dnnl_memory_desc_t *to, int accumulate) {
    mloc_status st = MLOC_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = attr_new();
    dnnl_post_ops_t po = NULL;
    if (accumulate) {
        DN(dnnl_post_ops_create(&po));
        DN(dnnl_post_ops_append_sum(po, 1.0f));
        DN(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    DN(dnnl_reorder_primitive_desc_create(&pd, from, e->engine, to, e->engine, attr));
    st = prim(e, out, pd);
fail:
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return st;
}

static mloc_status reorder_step(dexec *e, program *p, int node, const dnnl_memory_desc_t *from_md,
                                dnnl_memory_t from, const dnnl_memory_desc_t *to_md,
                                dnnl_memory_t to, int accumulate) {
    dnnl_primitive_t r;
    MLOC_TRY(reorder(e, &r, from_md, to_md, accumulate));
    step *s = prim_step(e, p, node, r);
    if (!s) return MLOC_ERR_NOMEM;
    arg(s, DNNL_ARG_FROM, from);
    arg(s, DNNL_ARG_TO, to);
    return MLOC_OK;
}

static float *param(const mloc_model *m, int entry) {
    return entry >= 0 ? mloc_store_ptr(&m->store, &m->table, entry) : NULL;
}

static float *grad(const mloc_model *m, int entry) {
    return entry >= 0 ? m->store.grad + m->table.t[entry].offset : NULL;
}

/* ---- step functions (the work that is not a oneDNN primitive) --------- */

static void fn_add(dexec *e, const mloc_model *m, const step *s) {
    float *y = s->p[0];
    const float *a = s->p[1], *b = s->p[2];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s->n; i++) y[i] = a[i] + b[i];
}

static void fn_accumulate(dexec *e, const mloc_model *m, const step *s) {
    float *dst = s->p[0];
    const float *src = s->p[1];
#pragma omp parallel for schedule(static) if (s->n > 65536)
    for (int64_t i = 0; i < s->n; i++) dst[i] += src[i];
}

static void fn_copy(dexec *e, const mloc_model *m, const step *s) {
    memcpy(s->p[0], s->p[1], (size_t)s->n * sizeof(float));
}

static void fn_bn_running(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    mloc_bn_update_running(param(m, nd->u.bn.mean), param(m, nd->u.bn.var),
                           mloc_store_ptr(&m->store, &m->table, nd->u.bn.count), s->p[0], s->p[1],
                           (int)s->c, s->n, nd->u.bn.momentum);
}

static void fn_bn_grads(dexec *e, const mloc_model *m, const step *s) {
    /* dgamma += diff_scale, dbeta += diff_shift */
    const mloc_node *nd = &m->nodes[s->node];
    float *dg = grad(m, nd->u.bn.weight), *db = grad(m, nd->u.bn.bias);
    for (int64_t c = 0; c < s->c; c++) {
        dg[c] += s->p[0][c];
        db[c] += s->p[1][c];
    }
}

static void fn_conv_bias_grad(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    float *db = grad(m, nd->u.conv.bias);
    for (int64_t c = 0; c < s->c; c++) db[c] += s->p[0][c];
}

/* Linear: y (N,O) = x (N,I) w^T + b, row-major sgemm. */
static void fn_linear_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int N = s->batch, I = m->values[nd->in[0]].c, O = nd->u.linear.out_features;
    float *y = s->p[0];
    dnnl_sgemm('N', 'T', N, O, I, 1.0f, s->p[1], I, param(m, nd->u.linear.weight), I, 0.0f, y, O);
    const float *b = param(m, nd->u.linear.bias);
    if (b)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) y[(int64_t)n * O + o] += b[o];
}

/* dx = dy w (written to p[2] when non-NULL), dw += dy^T x, db += sum_n dy. */
static void fn_linear_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int N = s->batch, I = m->values[nd->in[0]].c, O = nd->u.linear.out_features;
    const float *dy = s->p[0], *x = s->p[1];
    if (s->p[2]) dnnl_sgemm('N', 'N', N, I, O, 1.0f, dy, O, param(m, nd->u.linear.weight), I, 0.0f, s->p[2], I);
    dnnl_sgemm('T', 'N', O, I, N, 1.0f, dy, O, x, I, 1.0f, grad(m, nd->u.linear.weight), I);
    float *db = grad(m, nd->u.linear.bias);
    if (db)
        for (int o = 0; o < O; o++) {
            double sum = 0;
            for (int n = 0; n < N; n++) sum += dy[(int64_t)n * O + o];
            db[o] += (float)sum;
        }
}

static void fn_relu_fwd(dexec *e, const mloc_model *m, const step *s) {
    float *y = s->p[0];
    const float *x = s->p[1];
#pragma omp parallel for schedule(static) if (s->n > 65536)
    for (int64_t i = 0; i < s->n; i++) y[i] = x[i] > 0 ? x[i] : 0;
}

static void fn_relu_bwd(dexec *e, const mloc_model *m, const step *s) {
    float *dx = s->p[0];
    const float *dy = s->p[1], *y = s->p[2];
#pragma omp parallel for schedule(static) if (s->n > 65536)
    for (int64_t i = 0; i < s->n; i++) dx[i] = y[i] > 0 ? dy[i] : 0;
}

/* y = max(a + b, 0): a residual sum and the ReLU that reads it */
static void fn_add_relu(dexec *e, const mloc_model *m, const step *s) {
    float *y = s->p[0];
    const float *a = s->p[1], *b = s->p[2];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s->n; i++) {
        float v = a[i] + b[i];
        y[i] = v > 0 ? v : 0;
    }
}

/* its backward: both inputs receive g = dy [y > 0] (written, =); p[1] may be
 * NULL when the second input needs no gradient */
static void fn_add_relu_bwd(dexec *e, const mloc_model *m, const step *s) {
    float *da = s->p[0], *db = s->p[1];
    const float *dy = s->p[2], *y = s->p[3];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s->n; i++) {
        float g = y[i] > 0 ? dy[i] : 0;
        da[i] = g;
        if (db) db[i] = g;
    }
}

/* Eval: fold BN node s->c into conv node s->node (see the header). */
static void fn_fold_bn(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *conv = &m->nodes[s->node], *bn = &m->nodes[s->c];
    const float *w = param(m, conv->u.conv.weight), *b = param(m, conv->u.conv.bias);
    const float *gamma = param(m, bn->u.bn.weight), *beta = param(m, bn->u.bn.bias);
    const float *mean = param(m, bn->u.bn.mean), *var = param(m, bn->u.bn.var);
    float *wf = s->p[0], *bf = s->p[1];
    const int K = conv->u.conv.k;
    const int64_t per = m->table.t[conv->u.conv.weight].numel / K;
    for (int k = 0; k < K; k++) {
        float scale = gamma[k] / sqrtf(var[k] + bn->u.bn.eps);
        for (int64_t i = 0; i < per; i++) wf[k * per + i] = w[k * per + i] * scale;
        bf[k] = ((b ? b[k] : 0.0f) - mean[k]) * scale + beta[k];
    }
}

/* ---- planning ---------------------------------------------------------- */

static int readers(const mloc_model *m, int v, int *only) {
    int count = 0;
    for (int i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < 2; j++)
            if (m->nodes[i].in[j] == v) {
                *only = i;
                count++;
            }
    return count;
}

/* BN node i has a ReLU as its only reader: fuse. */
static int relu_after(const mloc_model *m, int i) {
    int r = -1;
    if (readers(m, m->nodes[i].out, &r) == 1 && m->nodes[r].op == MLOC_OP_RELU) return r;
    return -1;
}

/* Conv node i -> BN (only reader) [-> ReLU (only reader)]: foldable for eval. */
static int bn_after(const mloc_model *m, int i) {
    int b = -1;
    if (readers(m, m->nodes[i].out, &b) == 1 && m->nodes[b].op == MLOC_OP_BATCHNORM2D) return b;
    return -1;
}

/* ADD node i whose only reader is a ReLU, on two different values: fuse. */
static int relu_after_add(const mloc_model *m, int i) {
    int r = -1;
    if (m->nodes[i].in[0] != m->nodes[i].in[1] && readers(m, m->nodes[i].out, &r) == 1 &&
        m->nodes[r].op == MLOC_OP_RELU)
        return r;
    return -1;
}

static mloc_status bind(dexec *e, int prog, int v, const dnnl_memory_desc_t *md, int with_grad) {
    dval *x = &e->v[prog][v];
    x->md = *md;
    MLOC_TRY(mem_new(e, &x->act_mem, md, &x->act));
    if (with_grad) MLOC_TRY(mem_new(e, &x->grad_mem, md, &x->grad));
    x->materialised = 1;
    return MLOC_OK;
}

/* v shares u's buffers (a fused-away ReLU output). */
static void alias(dexec *e, int prog, int v, int u) {
    e->v[prog][v] = e->v[prog][u];
    e->v[prog][v].read_reorder = NULL;
    e->v[prog][v].read_mem = NULL;
    e->v[prog][v].read_buf = NULL;
    e->v[prog][v].read_step = NULL;
    e->v[prog][u].materialised = 0;
}

/* Memory holding value v in layout `want`: the value itself, or a reordered
 * copy made by a step added to program p. */
static mloc_status as_layout(dexec *e, int prog, program *p, int node, int v,
                             const dnnl_memory_desc_t *want, dnnl_memory_t *out) {
    dval *x = &e->v[prog][v];
    if (dnnl_memory_desc_equal(&x->md, want)) {
        *out = x->act_mem;
        return MLOC_OK;
    }
    MLOC_TRY(mem_new(e, out, want, NULL));
    return reorder_step(e, p, node, &x->md, x->act_mem, want, *out, 0);
}

/* Gradient routing for the backward. A node's input gradient is computed in
 * layout `md`. The first writer of value v's gradient writes it in place when
 * the layouts match; otherwise (a join, or another layout) it writes to a
 * temporary and finish() adds / reorders it in. */
typedef struct {
    dnnl_memory_t mem;
    float *buf;
    int direct, v;
    dnnl_memory_desc_t md;
} gdest;

static mloc_status gbegin(dexec *e, int v, const dnnl_memory_desc_t *md, gdest *g) {
    dval *x = &e->v[TRAIN][v];
    g->v = v;
    g->md = *md;
    g->direct = !e->grad_ready[v] && dnnl_memory_desc_equal(&x->md, md);
    if (g->direct) {
        g->mem = x->grad_mem;
        g->buf = x->grad;
        return MLOC_OK;
    }
    return mem_new(e, &g->mem, md, &g->buf);
}

static mloc_status gfinish(dexec *e, int node, gdest *g) {
    dval *x = &e->v[TRAIN][g->v];
    if (!g->direct) {
        if (e->grad_ready[g->v] && dnnl_memory_desc_equal(&x->md, &g->md)) {
            step *s = fn_step(e, &e->bwd, node, fn_accumulate);
            if (!s) return MLOC_ERR_NOMEM;
            s->p[0] = x->grad;
            s->p[1] = g->buf;
            s->n = (int64_t)(dnnl_memory_desc_get_size(&g->md) / sizeof(float));
        } else {
            MLOC_TRY(reorder_step(e, &e->bwd, node, &g->md, g->mem, &x->md, x->grad_mem,
                                  e->grad_ready[g->v]));
        }
    }
    e->grad_ready[g->v] = 1;
    return MLOC_OK;
}

static mloc_status plan_conv(dexec *e, const mloc_model *m, int i, int prog) {
    mloc_status st = MLOC_OK;
    const mloc_node *nd = &m->nodes[i];
    dnode *dn = &e->nd[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int N = e->n[prog], train = prog == TRAIN;
    const int fold = !train ? bn_after(m, i) : -1;
    dnnl_dims_t strides = {nd->u.conv.stride, nd->u.conv.stride};
    dnnl_dims_t pad_l = {nd->u.conv.pad, nd->u.conv.pad};
    dnnl_dims_t pad_r = {(yo->h - 1) * nd->u.conv.stride + nd->u.conv.r - xi->h - nd->u.conv.pad,
                         (yo->w - 1) * nd->u.conv.stride + nd->u.conv.s - xi->w - nd->u.conv.pad};
    dnnl_memory_desc_t src_any = md4(N, xi->c, xi->h, xi->w, dnnl_format_tag_any);
    dnnl_memory_desc_t dst_any = md4(N, yo->c, yo->h, yo->w, dnnl_format_tag_any);
    dnnl_memory_desc_t w_any, w_plain, b_md = md1(yo->c);
    dnnl_dims_t wd = {yo->c, xi->c, nd->u.conv.r, nd->u.conv.s};
    dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w_plain, 4, wd, dnnl_f32, dnnl_oihw);
    const int has_bias = nd->u.conv.bias >= 0 || fold >= 0;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL, bd_pd = NULL, bw_pd = NULL;
    dnnl_primitive_attr_t attr = attr_new();
    dnnl_post_ops_t po = NULL;
    const dnnl_prop_kind_t prop = train ? dnnl_forward_training : dnnl_forward_inference;
    const int fold_relu = fold >= 0 ? relu_after(m, fold) : -1;
    if (fold_relu >= 0) {
        DN(dnnl_post_ops_create(&po));
        DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        DN(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    /* Ask for a source in the layout the input already has; if oneDNN has
     * only a reference kernel for it, let it choose and reorder. */
    const dnnl_memory_desc_t *have = &e->v[prog][nd->in[0]].md;
    DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, have, &w_any,
                                          has_bias ? &b_md : NULL, &dst_any, strides, pad_l, pad_r));
    if (dnnl_primitive_desc_create(&pd, &cd, attr, e->engine, NULL) != dnnl_success ||
        strncmp(impl_name(pd), "jit", 3) != 0) {
        if (pd) dnnl_primitive_desc_destroy(pd);
        pd = NULL;
        DN(dnnl_convolution_forward_desc_init(&cd, prop, dnnl_convolution_direct, &src_any, &w_any,
                                              has_bias ? &b_md : NULL, &dst_any, strides, pad_l, pad_r));
        DN(dnnl_primitive_desc_create(&pd, &cd, attr, e->engine, NULL));
    }
    mloc_log(e->ctx, MLOC_LOG_DEBUG, "oneDNN %s conv %s: %s", train ? "train" : "eval", nd->name,
             impl_name(pd));
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);

    /* weights (and the folded bias) prepared before each forward */
    dnnl_memory_t w_plain_mem, w_mem, b_mem = NULL;
    float *w_src = param(m, nd->u.conv.weight);
    if (fold >= 0) {
        float *wf, *bf;
        TRY(mem_new(e, &w_plain_mem, &w_plain, &wf));
        TRY(mem_new(e, &b_mem, &b_md, &bf));
        step *s = fn_step(e, &e->prep[prog], i, fn_fold_bn);
        if (!s) goto nomem;
        s->p[0] = wf;
        s->p[1] = bf;
        s->c = fold;
    } else {
        TRY(mem(e, &w_plain_mem, &w_plain, w_src));
        if (has_bias) TRY(mem(e, &b_mem, &b_md, param(m, nd->u.conv.bias)));
    }
    TRY(mem_new(e, &w_mem, w_md, NULL));
    TRY(reorder_step(e, &e->prep[prog], i, &w_plain, w_plain_mem, w_md, w_mem, 0));

    /* output value: the conv's own, or (folded) the BN's or the ReLU's after it */
    int out_v = nd->out;
    if (fold >= 0) {
        TRY(bind(e, prog, nd->out, dst_md, 0));
        out_v = m->nodes[fold_relu >= 0 ? fold_relu : fold].out;
        alias(e, prog, out_v, nd->out);
        e->v[prog][m->nodes[fold].out].materialised = out_v == m->nodes[fold].out;
        e->planned[fold] = 1;
        if (fold_relu >= 0) e->planned[fold_relu] = 1;
    } else {
        TRY(bind(e, prog, nd->out, dst_md, train));
    }

    dnnl_primitive_t fwd;
    TRY(prim(e, &fwd, pd));
    program *p = &e->fwd[prog];
    dnnl_memory_t src_mem;
    TRY(as_layout(e, prog, p, i, nd->in[0], src_md, &src_mem));
    step *s = prim_step(e, p, i, fwd);
    if (!s) goto nomem;
    arg(s, DNNL_ARG_SRC, src_mem);
    arg(s, DNNL_ARG_WEIGHTS, w_mem);
    if (has_bias) arg(s, DNNL_ARG_BIAS, b_mem);
    arg(s, DNNL_ARG_DST, e->v[prog][out_v].act_mem);

    if (train) {
        dn->src_md = *src_md;
        dn->src_mem = src_mem;
        if (nd->in[0] != m->input) {
            DN(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src_any, &w_any,
                                                        dst_md, strides, pad_l, pad_r));
            DN(dnnl_primitive_desc_create(&bd_pd, &cd, attr, e->engine, pd));
            const dnnl_memory_desc_t *wb = dnnl_primitive_desc_query_md(bd_pd, dnnl_query_weights_md, 0);
            dn->dsrc_md = *dnnl_primitive_desc_query_md(bd_pd, dnnl_query_diff_src_md, 0);
            if (!dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(bd_pd, dnnl_query_diff_dst_md, 0), dst_md))
                goto layout;
            TRY(mem_new(e, &dn->w_bwd_mem, wb, NULL));
            TRY(reorder_step(e, &e->prep[prog], i, &w_plain, w_plain_mem, wb, dn->w_bwd_mem, 0));
            TRY(prim(e, &dn->bwd_data, bd_pd));
        }
        DN(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, src_md, &w_any,
                                                       nd->u.conv.bias >= 0 ? &b_md : NULL, dst_md,
                                                       strides, pad_l, pad_r));
        DN(dnnl_primitive_desc_create(&bw_pd, &cd, attr, e->engine, pd));
        if (!dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(bw_pd, dnnl_query_diff_dst_md, 0), dst_md) ||
            !dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(bw_pd, dnnl_query_src_md, 0), src_md))
            goto layout;
        dn->dw_md = *dnnl_primitive_desc_query_md(bw_pd, dnnl_query_diff_weights_md, 0);
        dn->ddst_md = *dst_md;
        TRY(mem_new(e, &dn->dw_mem, &dn->dw_md, NULL));
        if (nd->u.conv.bias >= 0) TRY(mem_new(e, &dn->db_mem, &b_md, &dn->db));
        TRY(mem(e, &dn->dw_grad_mem, &w_plain, grad(m, nd->u.conv.weight)));
        TRY(reorder(e, &dn->dw_to_grad, &dn->dw_md, &w_plain, 1));
        TRY(prim(e, &dn->bwd_weights, bw_pd));
    }
    goto done;
layout:
    st = mloc_error(e->ctx, MLOC_ERR_INTERNAL,
                    "oneDNN backend: conv %s: backward primitives want other layouts than forward", nd->name);
    goto fail;
nomem:
    st = MLOC_ERR_NOMEM;
done:
fail:
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (bd_pd) dnnl_primitive_desc_destroy(bd_pd);
    if (bw_pd) dnnl_primitive_desc_destroy(bw_pd);
    return st;
}

static mloc_status plan_bn(dexec *e, const mloc_model *m, int i, int prog) {
    mloc_status st = MLOC_OK;
    const mloc_node *nd = &m->nodes[i];
    dnode *dn = &e->nd[i];
    const int C = m->values[nd->out].c, train = prog == TRAIN;
    const int batch_stats = mloc_bn_training(m, i, train ? MLOC_MODE_TRAIN : MLOC_MODE_EVAL);
    const int relu = relu_after(m, i);
    dval *x = &e->v[prog][nd->in[0]];
    dnnl_batch_normalization_desc_t bd;
    dnnl_primitive_desc_t pd = NULL, bpd = NULL;
    dnnl_primitive_attr_t attr = attr_new();
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (batch_stats ? 0 : dnnl_use_global_stats) |
                     (relu >= 0 ? dnnl_fuse_norm_relu : 0);
    dnnl_memory_desc_t c_md = md1(C);
    DN(dnnl_batch_normalization_forward_desc_init(&bd, train ? dnnl_forward_training : dnnl_forward_inference,
                                                  &x->md, nd->u.bn.eps, flags));
    DN(dnnl_primitive_desc_create(&pd, &bd, attr, e->engine, NULL));
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    TRY(bind(e, prog, nd->out, dst_md, train));
    if (relu >= 0) {
        alias(e, prog, m->nodes[relu].out, nd->out);
        e->planned[relu] = 1;
        e->nd[relu].fused_into = i;
    }
    dn->fused_relu = relu >= 0;
    TRY(mem(e, &dn->scale_mem, &c_md, param(m, nd->u.bn.weight)));
    TRY(mem(e, &dn->shift_mem, &c_md, param(m, nd->u.bn.bias)));
    if (batch_stats) {
        TRY(mem_new(e, &dn->mean_mem, &c_md, &dn->mean));
        TRY(mem_new(e, &dn->var_mem, &c_md, &dn->var));
    } else {
        TRY(mem(e, &dn->mean_mem, &c_md, param(m, nd->u.bn.mean)));
        TRY(mem(e, &dn->var_mem, &c_md, param(m, nd->u.bn.var)));
    }
    if (relu >= 0 && train) {
        const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
        TRY(mem_new(e, &dn->ws_mem, ws, NULL));
    }
    dnnl_primitive_t fwd;
    TRY(prim(e, &fwd, pd));
    step *s = prim_step(e, &e->fwd[prog], i, fwd);
    if (!s) goto nomem;
    arg(s, DNNL_ARG_SRC, x->act_mem);
    arg(s, DNNL_ARG_DST, e->v[prog][nd->out].act_mem);
    arg(s, DNNL_ARG_SCALE, dn->scale_mem);
    arg(s, DNNL_ARG_SHIFT, dn->shift_mem);
    arg(s, DNNL_ARG_MEAN, dn->mean_mem);
    arg(s, DNNL_ARG_VARIANCE, dn->var_mem);
    if (relu >= 0 && train) arg(s, DNNL_ARG_WORKSPACE, dn->ws_mem);
    if (batch_stats) {
        s = fn_step(e, &e->fwd[prog], i, fn_bn_running);
        if (!s) goto nomem;
        s->p[0] = dn->mean;
        s->p[1] = dn->var;
        s->c = C;
        s->n = (int64_t)e->n[prog] * m->values[nd->out].h * m->values[nd->out].w;
    }
    if (train) {
        DN(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, dst_md, &x->md, nd->u.bn.eps,
                                                       flags));
        DN(dnnl_primitive_desc_create(&bpd, &bd, attr, e->engine, pd));
        TRY(prim(e, &dn->bn_bwd, bpd));
        dn->bn_dsrc_md = *dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_src_md, 0);
        TRY(mem_new(e, &dn->dscale_mem, &c_md, &dn->dscale));
        TRY(mem_new(e, &dn->dshift_mem, &c_md, &dn->dshift));
    }
    goto done;
nomem:
    st = MLOC_ERR_NOMEM;
done:
fail:
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    return st;
}

/* Max pooling, or global average pooling as an average pool whose kernel
 * is the whole H x W map (it reads the blocked layout directly; backward
 * spreads dy / (H W) over the map). */
static mloc_status plan_pool(dexec *e, const mloc_model *m, int i, int prog) {
    mloc_status st = MLOC_OK;
    const mloc_node *nd = &m->nodes[i];
    dnode *dn = &e->nd[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int train = prog == TRAIN, global = nd->op == MLOC_OP_AVGPOOL_GLOBAL;
    const dnnl_alg_kind_t alg = global ? dnnl_pooling_avg_exclude_padding : dnnl_pooling_max;
    dval *x = &e->v[prog][nd->in[0]];
    const int stride = global ? 1 : nd->u.pool.stride, pad = global ? 0 : nd->u.pool.pad;
    dnnl_dims_t strides = {stride, stride};
    dnnl_dims_t kernel = {global ? xi->h : nd->u.pool.k, global ? xi->w : nd->u.pool.k};
    dnnl_dims_t dil = {0, 0}, pad_l = {pad, pad};
    dnnl_dims_t pad_r = {(yo->h - 1) * stride + kernel[0] - xi->h - pad,
                         (yo->w - 1) * stride + kernel[1] - xi->w - pad};
    dnnl_memory_desc_t dst_any = md4(e->n[prog], yo->c, yo->h, yo->w, dnnl_format_tag_any);
    dnnl_pooling_v2_desc_t pdsc;
    dnnl_primitive_desc_t pd = NULL, bpd = NULL;
    dnnl_primitive_attr_t attr = attr_new();
    DN(dnnl_pooling_v2_forward_desc_init(&pdsc, train ? dnnl_forward_training : dnnl_forward_inference,
                                         alg, &x->md, &dst_any, strides, kernel, dil, pad_l, pad_r));
    DN(dnnl_primitive_desc_create(&pd, &pdsc, attr, e->engine, NULL));
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    TRY(bind(e, prog, nd->out, dst_md, train));
    dnnl_primitive_t fwd;
    TRY(prim(e, &fwd, pd));
    step *s = prim_step(e, &e->fwd[prog], i, fwd);
    if (!s) goto nomem;
    arg(s, DNNL_ARG_SRC, x->act_mem);
    arg(s, DNNL_ARG_DST, e->v[prog][nd->out].act_mem);
    if (train) {
        if (!global) {
            const dnnl_memory_desc_t *ws = dnnl_primitive_desc_query_md(pd, dnnl_query_workspace_md, 0);
            TRY(mem_new(e, &dn->pool_ws_mem, ws, NULL));
            arg(s, DNNL_ARG_WORKSPACE, dn->pool_ws_mem);
        }
        dnnl_memory_desc_t dsrc_any = md4(e->n[prog], xi->c, xi->h, xi->w, dnnl_format_tag_any);
        DN(dnnl_pooling_v2_backward_desc_init(&pdsc, alg, &dsrc_any, dst_md, strides, kernel, dil, pad_l,
                                              pad_r));
        DN(dnnl_primitive_desc_create(&bpd, &pdsc, attr, e->engine, pd));
        dn->pool_dsrc_md = *dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_src_md, 0);
        dn->pool_ddst_md = *dnnl_primitive_desc_query_md(bpd, dnnl_query_diff_dst_md, 0);
        if (!dnnl_memory_desc_equal(&dn->pool_ddst_md, dst_md)) {
            st = mloc_error(e->ctx, MLOC_ERR_INTERNAL, "oneDNN backend: pool %s: layouts differ", nd->name);
            goto fail;
        }
        TRY(prim(e, &dn->pool_bwd, bpd));
    }
    goto done;
nomem:
    st = MLOC_ERR_NOMEM;
done:
fail:
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    return st;
}

static mloc_status plan_other(dexec *e, const mloc_model *m, int i, int prog) {
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *yo = &m->values[nd->out];
    const int train = prog == TRAIN, N = e->n[prog];
    dval *x = &e->v[prog][nd->in[0]];
    program *p = &e->fwd[prog];
    step *s;
    switch (nd->op) {
    case MLOC_OP_ADD: {
        dval *b = &e->v[prog][nd->in[1]];
        dnnl_memory_t bm;
        const int relu = relu_after_add(m, i);
        MLOC_TRY(as_layout(e, prog, p, i, nd->in[1], &x->md, &bm));
        MLOC_TRY(bind(e, prog, nd->out, &x->md, train));
        if (relu >= 0) {
            alias(e, prog, m->nodes[relu].out, nd->out);
            e->planned[relu] = 1;
            e->nd[relu].fused_into = i;
        }
        e->nd[i].fused_relu = relu >= 0;
        if (!(s = fn_step(e, p, i, relu >= 0 ? fn_add_relu : fn_add))) return MLOC_ERR_NOMEM;
        s->p[0] = e->v[prog][relu >= 0 ? m->nodes[relu].out : nd->out].act;
        s->p[1] = x->act;
        s->p[2] = bm == b->act_mem ? b->act : NULL;
        if (!s->p[2]) {
            /* the reordered copy: find its buffer through the memory object */
            void *h = NULL;
            dnnl_memory_get_data_handle(bm, &h);
            s->p[2] = h;
        }
        s->n = (int64_t)(dnnl_memory_desc_get_size(&x->md) / sizeof(float));
        return MLOC_OK;
    }
    case MLOC_OP_FLATTEN: {
        /* (N,C,H,W) in any layout -> (N, C*H*W) plain, PyTorch's flatten order */
        const mloc_value *xi = &m->values[nd->in[0]];
        dnnl_memory_desc_t plain = md4(N, xi->c, xi->h, xi->w, dnnl_nchw);
        dnnl_memory_desc_t flat = md4(N, yo->c, 1, 1, dnnl_nchw);
        MLOC_TRY(bind(e, prog, nd->out, &flat, train));
        dnnl_memory_t out_as_4d;
        MLOC_TRY(mem(e, &out_as_4d, &plain, e->v[prog][nd->out].act));
        return reorder_step(e, p, i, &x->md, x->act_mem, &plain, out_as_4d, 0);
    }
    case MLOC_OP_LINEAR: {
        dnnl_memory_desc_t flat = md4(N, yo->c, 1, 1, dnnl_nchw);
        MLOC_TRY(bind(e, prog, nd->out, &flat, train));
        if (!(s = fn_step(e, p, i, fn_linear_fwd))) return MLOC_ERR_NOMEM;
        s->batch = N;
        s->p[0] = e->v[prog][nd->out].act;
        s->p[1] = x->act;
        return MLOC_OK;
    }
    case MLOC_OP_RELU: {
        /* an unfused ReLU (the head's, on plain fully connected values) */
        MLOC_TRY(bind(e, prog, nd->out, &x->md, train));
        if (!(s = fn_step(e, p, i, fn_relu_fwd))) return MLOC_ERR_NOMEM;
        s->p[0] = e->v[prog][nd->out].act;
        s->p[1] = x->act;
        s->n = (int64_t)(dnnl_memory_desc_get_size(&x->md) / sizeof(float));
        return MLOC_OK;
    }
    default:
        return mloc_error(e->ctx, MLOC_ERR_UNSUPPORTED, "oneDNN backend: op %s (%s) not implemented",
                          mloc_op_name(nd->op), nd->name);
    }
}

/* Emit the backward program, in reverse node order, from the forward plan. */
static mloc_status plan_backward(dexec *e, const mloc_model *m) {
    mloc_status st = MLOC_OK;
    memset(e->grad_ready, 0, (size_t)m->n_values);
    e->grad_ready[m->output] = 1; /* seeded by mloc_model_backward */
    for (int i = m->n_nodes - 1; i >= 0; i--) {
        const mloc_node *nd = &m->nodes[i];
        dnode *dn = &e->nd[i];
        const int a = nd->in[0];
        int out = nd->out;
        if (nd->op == MLOC_OP_RELU && dn->fused_into >= 0) continue; /* runs inside its BN */
        if (nd->op == MLOC_OP_ADD && dn->fused_relu) {
            out = m->nodes[relu_after_add(m, i)].out;
            e->grad_ready[nd->out] = e->grad_ready[out];
        }
        if (nd->op == MLOC_OP_BATCHNORM2D && dn->fused_relu) {
            int r = relu_after(m, i);
            out = m->nodes[r].out;
            e->grad_ready[nd->out] = e->grad_ready[out];
        }
        if (!e->grad_ready[out]) continue;
        dval *y = &e->v[TRAIN][out];
        const int need_dx = a != m->input;
        gdest g;
        step *s;
        switch (nd->op) {
        case MLOC_OP_CONV2D:
            if (need_dx) {
                TRY(gbegin(e, a, &dn->dsrc_md, &g));
                if (!(s = prim_step(e, &e->bwd, i, dn->bwd_data))) return MLOC_ERR_NOMEM;
                arg(s, DNNL_ARG_DIFF_DST, y->grad_mem);
                arg(s, DNNL_ARG_WEIGHTS, dn->w_bwd_mem);
                arg(s, DNNL_ARG_DIFF_SRC, g.mem);
                TRY(gfinish(e, i, &g));
            }
            if (!(s = prim_step(e, &e->bwd, i, dn->bwd_weights))) return MLOC_ERR_NOMEM;
            arg(s, DNNL_ARG_SRC, dn->src_mem);
            arg(s, DNNL_ARG_DIFF_DST, y->grad_mem);
            arg(s, DNNL_ARG_DIFF_WEIGHTS, dn->dw_mem);
            if (dn->db_mem) arg(s, DNNL_ARG_DIFF_BIAS, dn->db_mem);
            if (!(s = prim_step(e, &e->bwd, i, dn->dw_to_grad))) return MLOC_ERR_NOMEM;
            arg(s, DNNL_ARG_FROM, dn->dw_mem);
            arg(s, DNNL_ARG_TO, dn->dw_grad_mem);
            if (dn->db_mem) {
                if (!(s = fn_step(e, &e->bwd, i, fn_conv_bias_grad))) return MLOC_ERR_NOMEM;
                s->p[0] = dn->db;
                s->c = m->values[out].c;
            }
            break;
        case MLOC_OP_BATCHNORM2D: {
            dval *x = &e->v[TRAIN][a];
            TRY(gbegin(e, a, &dn->bn_dsrc_md, &g));
            if (!(s = prim_step(e, &e->bwd, i, dn->bn_bwd))) return MLOC_ERR_NOMEM;
            arg(s, DNNL_ARG_SRC, x->act_mem);
            arg(s, DNNL_ARG_MEAN, dn->mean_mem);
            arg(s, DNNL_ARG_VARIANCE, dn->var_mem);
            arg(s, DNNL_ARG_DIFF_DST, y->grad_mem);
            arg(s, DNNL_ARG_SCALE, dn->scale_mem);
            arg(s, DNNL_ARG_SHIFT, dn->shift_mem); /* oneDNN 2.6 requires it with use_shift */
            if (dn->ws_mem) arg(s, DNNL_ARG_WORKSPACE, dn->ws_mem);
            arg(s, DNNL_ARG_DIFF_SRC, g.mem);
            arg(s, DNNL_ARG_DIFF_SCALE, dn->dscale_mem);
            arg(s, DNNL_ARG_DIFF_SHIFT, dn->dshift_mem);
            TRY(gfinish(e, i, &g));
            if (!(s = fn_step(e, &e->bwd, i, fn_bn_grads))) return MLOC_ERR_NOMEM;
            s->p[0] = dn->dscale;
            s->p[1] = dn->dshift;
            s->c = m->values[out].c;
            break;
        }
        case MLOC_OP_MAXPOOL2D:
        case MLOC_OP_AVGPOOL_GLOBAL:
            if (!need_dx) break;
            TRY(gbegin(e, a, &dn->pool_dsrc_md, &g));
            if (!(s = prim_step(e, &e->bwd, i, dn->pool_bwd))) return MLOC_ERR_NOMEM;
            arg(s, DNNL_ARG_DIFF_DST, y->grad_mem);
            if (dn->pool_ws_mem) arg(s, DNNL_ARG_WORKSPACE, dn->pool_ws_mem);
            arg(s, DNNL_ARG_DIFF_SRC, g.mem);
            TRY(gfinish(e, i, &g));
            break;
        case MLOC_OP_ADD:
            if (dn->fused_relu) {
                /* both gradients from one pass (the inputs differ, relu_after_add) */
                gdest gs[2];
                int n = 0;
                for (int j = 0; j < 2; j++)
                    if (nd->in[j] != m->input) TRY(gbegin(e, nd->in[j], &y->md, &gs[n++]));
                if (n == 0) break;
                if (!(s = fn_step(e, &e->bwd, i, fn_add_relu_bwd))) return MLOC_ERR_NOMEM;
                s->p[0] = gs[0].buf;
                s->p[1] = n > 1 ? gs[1].buf : NULL;
                s->p[2] = y->grad;
                s->p[3] = y->act;
                s->n = (int64_t)(dnnl_memory_desc_get_size(&y->md) / sizeof(float));
                for (int j = 0; j < n; j++) TRY(gfinish(e, i, &gs[j]));
                break;
            }
            for (int j = 0; j < 2; j++) {
                int in = nd->in[j];
                if (in == m->input) continue;
                TRY(gbegin(e, in, &y->md, &g));
                if (!(s = fn_step(e, &e->bwd, i, fn_copy))) return MLOC_ERR_NOMEM;
                s->p[0] = g.buf;
                s->p[1] = y->grad;
                s->n = (int64_t)(dnnl_memory_desc_get_size(&y->md) / sizeof(float));
                TRY(gfinish(e, i, &g));
            }
            break;
        case MLOC_OP_FLATTEN: {
            if (!need_dx) break;
            const mloc_value *xi = &m->values[a];
            dnnl_memory_desc_t plain = md4(e->n[TRAIN], xi->c, xi->h, xi->w, dnnl_nchw);
            TRY(gbegin(e, a, &plain, &g));
            if (!(s = fn_step(e, &e->bwd, i, fn_copy))) return MLOC_ERR_NOMEM;
            s->p[0] = g.buf;
            s->p[1] = y->grad;
            s->n = (int64_t)(dnnl_memory_desc_get_size(&plain) / sizeof(float));
            TRY(gfinish(e, i, &g));
            break;
        }
        case MLOC_OP_LINEAR: {
            dval *x = &e->v[TRAIN][a];
            if (need_dx) TRY(gbegin(e, a, &x->md, &g));
            if (!(s = fn_step(e, &e->bwd, i, fn_linear_bwd))) return MLOC_ERR_NOMEM;
            s->batch = e->n[TRAIN];
            s->p[0] = y->grad;
            s->p[1] = x->act;
            s->p[2] = need_dx ? g.buf : NULL;
            if (need_dx) TRY(gfinish(e, i, &g));
            break;
        }
        case MLOC_OP_RELU: {
            dval *x = &e->v[TRAIN][a];
            TRY(gbegin(e, a, &x->md, &g));
            if (!(s = fn_step(e, &e->bwd, i, fn_relu_bwd))) return MLOC_ERR_NOMEM;
            s->p[0] = g.buf;
            s->p[1] = y->grad;
            s->p[2] = y->act;
            s->n = (int64_t)(dnnl_memory_desc_get_size(&x->md) / sizeof(float));
            TRY(gfinish(e, i, &g));
            break;
        }
        default:
            return mloc_error(e->ctx, MLOC_ERR_UNSUPPORTED, "oneDNN backend: no backward for %s (%s)",
                              mloc_op_name(nd->op), nd->name);
        }
    }
fail:
    return st;
}

static void dnnl_free_exec(mloc_exec *base) {
    dexec *e = (dexec *)base;
    if (!e) return;
    for (int i = 0; i < e->n_prims; i++) dnnl_primitive_destroy(e->prims[i]);
    for (int i = 0; i < e->n_mems; i++) dnnl_memory_destroy(e->mems[i]);
    free(e->prims);
    free(e->mems);
    for (int p = 0; p < 2; p++) {
        for (int v = 0; e->v[p] && v < e->n_values; v++) free(e->v[p][v].read_step); /* each its own */
        free(e->prep[p].s);
        free(e->fwd[p].s);
        free(e->v[p]);
    }
    free(e->bwd.s);
    free(e->nd);
    free(e->eval_end);
    free(e->planned);
    free(e->grad_ready);
    for (int k = 0; k < 3; k++) free(e->prof[k]);
    for (int i = 0; i < e->n_chunks; i++) mloc_free(e->chunks[i]);
    free(e->chunks);
    mloc_free(e->scratchpad);
    if (e->stream) dnnl_stream_destroy(e->stream);
    if (e->engine) dnnl_engine_destroy(e->engine);
    free(e);
}

static mloc_status plan_program(dexec *e, const mloc_model *m, int prog) {
    mloc_status st = MLOC_OK;
    const mloc_value *in = &m->values[m->input];
    dnnl_memory_desc_t in_md = md4(e->n[prog], in->c, in->h, in->w, dnnl_nchw);
    TRY(bind(e, prog, m->input, &in_md, 0));
    memset(e->planned, 0, (size_t)m->n_nodes);
    for (int i = 0; i < m->n_nodes; i++) {
        const mloc_node *nd = &m->nodes[i];
        if (e->planned[i]) {
            /* computed inside an earlier node (folded conv, fused BN+ReLU) */
        } else if (nd->op == MLOC_OP_CONV2D) {
            TRY(plan_conv(e, m, i, prog));
        } else if (nd->op == MLOC_OP_BATCHNORM2D) {
            TRY(plan_bn(e, m, i, prog));
        } else if (nd->op == MLOC_OP_MAXPOOL2D || nd->op == MLOC_OP_AVGPOOL_GLOBAL) {
            TRY(plan_pool(e, m, i, prog));
        } else {
            TRY(plan_other(e, m, i, prog));
        }
        if (prog == EVAL) e->eval_end[i] = e->fwd[EVAL].n;
    }
fail:
    return st;
}

static mloc_status dnnl_plan_n(mloc_ctx *ctx, mloc_model *m, int N) {
    mloc_status st = MLOC_OK;
    dexec *e = calloc(1, sizeof *e);
    if (!e) return mloc_error(ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory");
    e->base.ops = &mloc_backend_dnnl_ops;
    e->ctx = ctx;
    e->n[EVAL] = N;
    DN(dnnl_engine_create(&e->engine, dnnl_cpu, 0));
    DN(dnnl_stream_create(&e->stream, e->engine, dnnl_stream_default_flags));
    e->nd = calloc((size_t)m->n_nodes, sizeof *e->nd);
    e->v[TRAIN] = calloc((size_t)m->n_values, sizeof(dval));
    e->v[EVAL] = calloc((size_t)m->n_values, sizeof(dval));
    e->n_values = m->n_values;
    e->eval_end = calloc((size_t)m->n_nodes, sizeof(int));
    e->planned = calloc((size_t)m->n_nodes, 1);
    e->grad_ready = calloc((size_t)m->n_values, 1);
    for (int k = 0; k < 3; k++) e->prof[k] = calloc((size_t)m->n_nodes, sizeof(double));
    if (!e->prof[0] || !e->prof[1] || !e->prof[2] || !e->nd || !e->v[TRAIN] || !e->v[EVAL] || !e->eval_end || !e->planned || !e->grad_ready) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory");
        goto fail;
    }
    for (int i = 0; i < m->n_nodes; i++) e->nd[i].fused_into = -1;
    /* the eval program now; the training programs (activations and
     * gradients for backward) only when a training forward first needs them,
     * so evaluation-only work (metrics, features) never allocates them */
    TRY(plan_program(e, m, EVAL));
    TRY(bind_all_scratchpads(e, m));
    m->exec = &e->base;
    return MLOC_OK;
fail:
    dnnl_free_exec(&e->base);
    return st;
}

static mloc_status dnnl_plan(mloc_ctx *ctx, mloc_model *m, int max_batch) {
    return dnnl_plan_n(ctx, m, max_batch);
}

static mloc_status plan_training(dexec *e, const mloc_model *m, int N) {
    if (e->train_planned) return MLOC_OK;
    e->n[TRAIN] = N;
    MLOC_TRY(plan_program(e, m, TRAIN));
    MLOC_TRY(plan_backward(e, m));
    MLOC_TRY(bind_all_scratchpads(e, m));
    e->train_planned = 1;
    return MLOC_OK;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Run steps [begin, end) of p; with profiling on, each step is timed (the
 * stream is waited on after each) and its time added to its node in prof. */
static mloc_status run(dexec *e, const program *p, int begin, int end, const mloc_model *m, double *prof) {
    mloc_status st = MLOC_OK;
    prof = m->profile ? prof : NULL;
    for (int k = begin; k < end; k++) {
        const step *s = &p->s[k];
        double t0 = prof ? seconds() : 0;
        if (!s->prim) {
            s->fn(e, m, s);
        } else {
            dnnl_status_t ds = dnnl_primitive_execute(s->prim, e->stream, s->nargs, s->args);
            if (ds != dnnl_success)
                return mloc_error(e->ctx, MLOC_ERR_INTERNAL,
                                  "oneDNN: executing a primitive of node %s failed (status %d)",
                                  m->nodes[s->node].name, (int)ds);
        }
        if (prof) {
            DN(dnnl_stream_wait(e->stream));
            prof[s->node] += seconds() - t0;
        }
    }
    DN(dnnl_stream_wait(e->stream));
fail:
    return st;
}

static mloc_status exec_forward(mloc_ctx *ctx, mloc_model *m, const float *x, int N, mloc_mode mode,
                                int last_node) {
    dexec *e = (dexec *)m->exec;
    if (mode == MLOC_MODE_TRAIN && e->train_planned && N != e->n[TRAIN]) {
        /* batch statistics need exactly N samples: the training programs are
         * rebuilt for this batch (the eval plan keeps its batch) */
        int eval_n = e->n[EVAL];
        dnnl_free_exec(&e->base);
        m->exec = NULL;
        MLOC_TRY(dnnl_plan_n(ctx, m, eval_n));
        e = (dexec *)m->exec;
    }
    e->ctx = ctx;
    if (mode == MLOC_MODE_TRAIN) MLOC_TRY(plan_training(e, m, N));
    const int prog = mode == MLOC_MODE_TRAIN ? TRAIN : EVAL;
    if (N > e->n[prog])
        return mloc_error(ctx, MLOC_ERR_INTERNAL, "oneDNN backend: forward of %d images, planned for %d", N,
                          e->n[prog]);
    /* input: plain NCHW; an eval batch smaller than planned is zero-padded
     * (eval BN is per sample, so padding does not change the real rows) */
    dval *in = &e->v[prog][m->input];
    size_t per = (size_t)mloc_model_value_numel(m, m->input);
    memcpy(in->act, x, (size_t)N * per * sizeof(float));
    if (N < e->n[prog])
        memset(in->act + (size_t)N * per, 0, (size_t)(e->n[prog] - N) * per * sizeof(float));
    MLOC_TRY(run(e, &e->prep[prog], 0, e->prep[prog].n, m, e->prof[prog]));
    int end = prog == EVAL ? e->eval_end[last_node] : e->fwd[TRAIN].n;
    return run(e, &e->fwd[prog], 0, end, m, e->prof[prog]);
}

static mloc_status dnnl_read(mloc_ctx *ctx, mloc_model *m, int v, float *dst) {
    mloc_status st = MLOC_OK;
    dexec *e = (dexec *)m->exec;
    e->ctx = ctx;
    const int prog = e->base.mode == MLOC_MODE_TRAIN ? TRAIN : EVAL;
    dval *x = &e->v[prog][v];
    if (!x->materialised)
        return mloc_error(ctx, MLOC_ERR_USAGE, "read: value '%s' is fused away by the oneDNN backend; "
                          "read the following ReLU's value instead", m->values[v].name);
    const mloc_value *mv = &m->values[v];
    size_t n = (size_t)e->base.N * (size_t)mloc_model_value_numel(m, v);
    dnnl_memory_desc_t plain = md4(e->n[prog], mv->c, mv->h, mv->w, dnnl_nchw);
    if (dnnl_memory_desc_equal(&x->md, &plain)) {
        memcpy(dst, x->act, n * sizeof(float));
        return MLOC_OK;
    }
    if (!x->read_step) {
        /* the reorder to plain NCHW, bound once; it writes straight into the
         * caller's buffer when the read covers the planned batch */
        x->read_step = calloc(1, sizeof *x->read_step);
        if (!x->read_step) return mloc_error(ctx, MLOC_ERR_NOMEM, "oneDNN backend: out of memory");
        MLOC_TRY(reorder(e, &x->read_reorder, &x->md, &plain, 0));
        MLOC_TRY(mem(e, &x->read_mem, &plain, NULL));
        x->read_step->prim = x->read_reorder;
        arg(x->read_step, DNNL_ARG_FROM, x->act_mem);
        arg(x->read_step, DNNL_ARG_TO, x->read_mem);
        MLOC_TRY(bind_all_scratchpads(e, m));
    }
    float *target = dst;
    if (e->base.N < e->n[prog]) {
        if (!x->read_buf && !(x->read_buf = take(e, dnnl_memory_desc_get_size(&plain)))) return MLOC_ERR_NOMEM;
        target = x->read_buf;
    }
    DN(dnnl_memory_set_data_handle(x->read_mem, target));
    DN(dnnl_primitive_execute(x->read_step->prim, e->stream, x->read_step->nargs, x->read_step->args));
    DN(dnnl_stream_wait(e->stream));
    if (target != dst) memcpy(dst, target, n * sizeof(float));
fail:
    return st;
}

static mloc_status exec_backward(mloc_ctx *ctx, mloc_model *m, int from, const float *dy) {
    dexec *e = (dexec *)m->exec;
    e->ctx = ctx;
    if (from != m->output)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "oneDNN backend: backward starts at the model output");
    dval *y = &e->v[TRAIN][from];
    memcpy(y->grad, dy, dnnl_memory_desc_get_size(&y->md));
    return run(e, &e->bwd, 0, e->bwd.n, m, e->prof[2]);
}

static void exec_profile(const mloc_model *m, double *train_fwd, double *eval_fwd, double *bwd) {
    const dexec *e = (const dexec *)m->exec;
    memcpy(train_fwd, e->prof[0], (size_t)m->n_nodes * sizeof(double));
    memcpy(eval_fwd, e->prof[1], (size_t)m->n_nodes * sizeof(double));
    memcpy(bwd, e->prof[2], (size_t)m->n_nodes * sizeof(double));
}

const mloc_backend_ops mloc_backend_dnnl_ops = {
    .name = "dnnl",
    .plan = dnnl_plan,
    .forward = exec_forward,
    .read = dnnl_read,
    .backward = exec_backward,
    .params_changed = NULL,
    .free = dnnl_free_exec,
    .profile = exec_profile,
};
