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
#include <omp.h>

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
    /* where oneDNN has only a reference weight-gradient kernel for the blocked
     * layout (AVX2 on 2x2 maps), the gradient runs on plain copies */
    dnnl_primitive_t bw_src_to_plain, bw_ddst_to_plain;
    dnnl_memory_t bw_src_plain, bw_ddst_plain;
    /* a conv on a map of at most r x s positions as one dense GEMM (dense_conv) */
    int dense;
    float *dense_m, *dense_dm, *dense_x;
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
    /* ViT ops (plan_vit): the training forward's input, its saved state (LN
     * mean | rstd, attention probabilities, patch columns), the attention's
     * score-gradient rows, GELU's backward primitive and source */
    float *vin, *vsave, *vsave2;
    int vthreads;                 /* attention: the threads its workspace (vsave2) holds */
    dnnl_primitive_t gelu_bwd;
    dnnl_memory_t gelu_src;
} dnode;

struct dexec {
    mloc_exec base;
    mloc_ctx *ctx;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int n[2];                     /* batch of the TRAIN and EVAL programs (0: not planned) */
    int train_planned;            /* the training programs are built on the first training forward,
                                     for its batch, which may differ from the eval batch */
    int bwd_planned;              /* the backward (and its gradient buffers) on the first backward:
                                     a model only run forward in training mode (DINO's
                                     teacher) never allocates them */
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
    size_t arena_bytes;           /* the chunks' total */
    void *scratchpad;
    size_t scratchpad_size, scratchpad_cap;
    double *prof[3];              /* seconds per node: train fwd, eval fwd, backward */
    dnnl_primitive_t *prims;
    int n_prims, cap_prims;
    dnnl_memory_t *mems;
    int n_mems, cap_mems;
    int run_N;                    /* images of the current forward (MAE's patch orders cover them) */
    float *vit_ones;              /* ViT backward: ones for column sums (vit_ones_n) and a token-matrix */
    int64_t vit_ones_n;           /* scratch for LayerNorm's dgamma (vit_tmp) */
    float *vit_tmp;
    float *drop_tmp;              /* drop-path backward: the scaled gradient of a branch's Linear */
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
            if (c) mloc_error(e->ctx, MLOC_ERR_NOMEM, "out of memory");
            mloc_free(c);
            mloc_error_prefix(e->ctx, MLOC_ERR_NOMEM, "oneDNN backend, batch %d: %.2f GiB of activations "
                              "planned so far", e->n[TRAIN] > e->n[EVAL] ? e->n[TRAIN] : e->n[EVAL],
                              e->arena_bytes / 1073741824.0);
            return NULL;
        }
        e->arena_bytes += size;
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

/* ---- small maps: a convolution as one dense GEMM -------------------------
 * On a map of P = H x W positions with a stride-1 "same" convolution of an
 * r x s kernel, every output position sees at most r s of the P input
 * positions; when P <= r s (ResNet9's layer3 at 2x2 with 3x3 kernels: each
 * output sees all 4 inputs), the layer is the linear map
 *     Y (N, O P) = X (N, C P) M^T,   M[(o, q), (c, p)] = w[o][c][r][s]
 * with (r, s) = (p_h - q_h + pad, p_w - q_w + pad) when inside the kernel and
 * 0 otherwise, on NCHW rows. One sgemm of N x CP x OP does what the direct
 * convolution does with P / (r s) of its multiplies (no padding taps), and
 * its backward is two more: dX = dY M and dM = dY^T X, folded back into the
 * kernel. oneDNN's direct kernels run such maps at 25-60% of their speed on
 * larger ones (AVX2: 34 ms forward, 83 ms backward per 256x256 layer at
 * batch 512; the weight gradient only has a reference kernel there); the
 * GEMMs take 9 and 16 ms. Training only: sgemm's sums depend on the batch
 * and the thread count, and eval-mode taps must not (test_metrics). */
static int dense_conv(const mloc_model *m, int i) {
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int P = xi->h * xi->w;
    return nd->u.conv.stride == 1 && yo->h == xi->h && yo->w == xi->w && P <= nd->u.conv.r * nd->u.conv.s &&
           nd->u.conv.r * nd->u.conv.s <= 64 &&
           (int64_t)yo->c * P * xi->c * P <= ((int64_t)1 << 24);
}

/* tap[q P + p]: the kernel tap linking output position q to input position
 * p on a W-wide map of P positions, or -1 (P <= 64, dense_conv) */
static void dense_taps(const mloc_node *nd, int W, int P, int *tap) {
    for (int q = 0; q < P; q++)
        for (int p = 0; p < P; p++) {
            const int r = p / W - q / W + nd->u.conv.pad, s = p % W - q % W + nd->u.conv.pad;
            tap[q * P + p] = r >= 0 && r < nd->u.conv.r && s >= 0 && s < nd->u.conv.s ? r * nd->u.conv.s + s : -1;
        }
}

/* prep: M from the weights */
static void fn_dense_build(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const mloc_value *xi = &m->values[nd->in[0]];
    const int C = xi->c, O = nd->u.conv.k, P = xi->h * xi->w, W = xi->w, RS = nd->u.conv.r * nd->u.conv.s;
    float *M = s->p[0];
    const float *w = s->p[1];
    int tap[64 * 64];
    dense_taps(nd, W, P, tap);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < O; o++)
        for (int q = 0; q < P; q++) {
            float *row = M + ((int64_t)o * P + q) * C * P;
            for (int c = 0; c < C; c++) {
                const float *wk = w + ((int64_t)o * C + c) * RS;
                for (int p = 0; p < P; p++) {
                    const int t = tap[q * P + p];
                    row[c * P + p] = t < 0 ? 0.0f : wk[t];
                }
            }
        }
}

/* forward: y = x M^T (+ bias per channel) */
static void fn_dense_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const mloc_value *xi = &m->values[nd->in[0]];
    const int C = xi->c, O = nd->u.conv.k, P = xi->h * xi->w, N = s->batch;
    float *y = s->p[0];
    dnnl_sgemm('N', 'T', N, O * P, C * P, 1.0f, s->p[1], C * P, s->p[2], C * P, 0.0f, y, O * P);
    const float *b = s->p[3];
    if (b)
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++)
                for (int q = 0; q < P; q++) y[((int64_t)n * O + o) * P + q] += b[o];
}

/* backward: dx = dy M (p[3], when needed); dM = dy^T x, folded into the
 * weight gradient; the bias gradient */
static void fn_dense_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const dnode *dn = &e->nd[s->node];
    const mloc_value *xi = &m->values[nd->in[0]];
    const int C = xi->c, O = nd->u.conv.k, P = xi->h * xi->w, W = xi->w, N = s->batch;
    const int RS = nd->u.conv.r * nd->u.conv.s;
    const float *dy = s->p[0];
    if (s->p[3]) dnnl_sgemm('N', 'N', N, C * P, O * P, 1.0f, dy, O * P, dn->dense_m, C * P, 0.0f, s->p[3], C * P);
    float *dM = dn->dense_dm;
    dnnl_sgemm('T', 'N', O * P, C * P, N, 1.0f, dy, O * P, dn->dense_x, C * P, 0.0f, dM, C * P);
    float *dw = grad(m, nd->u.conv.weight);
    int tap[64 * 64];
    dense_taps(nd, W, P, tap);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            float acc[64] = {0};
            for (int q = 0; q < P; q++)
                for (int p = 0; p < P; p++) {
                    const int t = tap[q * P + p];
                    if (t >= 0) acc[t] += dM[((int64_t)o * P + q) * C * P + c * P + p];
                }
            for (int t = 0; t < RS; t++) dw[((int64_t)o * C + c) * RS + t] += acc[t];
        }
    float *db = grad(m, nd->u.conv.bias);
    if (db)
        for (int o = 0; o < O; o++) {
            double sum = 0;
            for (int n = 0; n < N; n++)
                for (int q = 0; q < P; q++) sum += dy[((int64_t)n * O + o) * P + q];
            db[o] += (float)sum;
        }
}

/* the training program's conv on a small map (dense_conv) */
static mloc_status plan_conv_dense(dexec *e, const mloc_model *m, int i) {
    const mloc_node *nd = &m->nodes[i];
    dnode *dn = &e->nd[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int N = e->n[TRAIN], P = xi->h * xi->w;
    dnnl_memory_desc_t x_md = md4(N, xi->c, xi->h, xi->w, dnnl_nchw);
    dnnl_memory_desc_t y_md = md4(N, yo->c, yo->h, yo->w, dnnl_nchw);
    const int64_t mn = (int64_t)yo->c * P * xi->c * P;
    float *M = take(e, (size_t)mn * sizeof(float));
    if (!M || !(dn->dense_dm = take(e, (size_t)mn * sizeof(float)))) return MLOC_ERR_NOMEM;
    step *s;
    if (!(s = fn_step(e, &e->prep[TRAIN], i, fn_dense_build))) return MLOC_ERR_NOMEM;
    s->p[0] = M;
    s->p[1] = param(m, nd->u.conv.weight);
    MLOC_TRY(bind(e, TRAIN, nd->out, &y_md, 1));
    dnnl_memory_t x_mem;
    MLOC_TRY(as_layout(e, TRAIN, &e->fwd[TRAIN], i, nd->in[0], &x_md, &x_mem));
    void *xh = NULL;
    dnnl_memory_get_data_handle(x_mem, &xh);
    if (!(s = fn_step(e, &e->fwd[TRAIN], i, fn_dense_fwd))) return MLOC_ERR_NOMEM;
    s->batch = N;
    s->p[0] = e->v[TRAIN][nd->out].act;
    s->p[1] = xh;
    s->p[2] = M;
    s->p[3] = param(m, nd->u.conv.bias);
    mloc_log(e->ctx, MLOC_LOG_DEBUG, "oneDNN train conv %s: dense GEMM on a %dx%d map", nd->name, xi->h, xi->w);
    dn->dense = 1;
    dn->dense_m = M;
    dn->dense_x = xh;
    dn->dsrc_md = x_md;
    return MLOC_OK;
}

static mloc_status plan_conv(dexec *e, const mloc_model *m, int i, int prog) {
    /* training only: sgemm's sums depend on the batch and the thread count,
     * and eval-mode taps must not (the metrics' promise, test_metrics) */
    if (prog == TRAIN && dense_conv(m, i)) return plan_conv_dense(e, m, i);
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
        if (strncmp(impl_name(bw_pd), "ref", 3) == 0) {
            /* oneDNN's reference kernel is 100-1000x slower than its GEMM
             * one on plain copies (e.g. AVX2, 3x3 kernel on a 2x2 map) */
            dnnl_memory_desc_t src_plain = md4(N, xi->c, xi->h, xi->w, dnnl_nchw);
            dnnl_memory_desc_t dst_plain = md4(N, yo->c, yo->h, yo->w, dnnl_nchw);
            dnnl_primitive_desc_t alt = NULL;
            DN(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src_plain, &w_any,
                                                           nd->u.conv.bias >= 0 ? &b_md : NULL, &dst_plain,
                                                           strides, pad_l, pad_r));
            if (dnnl_primitive_desc_create(&alt, &cd, attr, e->engine, pd) == dnnl_success &&
                strncmp(impl_name(alt), "ref", 3) != 0) {
                mloc_log(e->ctx, MLOC_LOG_DEBUG, "oneDNN conv %s: weight gradient on plain copies (%s)",
                         nd->name, impl_name(alt));
                dnnl_primitive_desc_destroy(bw_pd);
                bw_pd = alt;
                TRY(mem_new(e, &dn->bw_src_plain, &src_plain, NULL));
                TRY(mem_new(e, &dn->bw_ddst_plain, &dst_plain, NULL));
                TRY(reorder(e, &dn->bw_src_to_plain, src_md, &src_plain, 0));
                TRY(reorder(e, &dn->bw_ddst_to_plain, dst_md, &dst_plain, 0));
            } else {
                if (alt) dnnl_primitive_desc_destroy(alt);
                mloc_log(e->ctx, MLOC_LOG_WARN, "oneDNN has only a reference kernel for the weight gradient "
                         "of %s on this CPU: training will be slow", nd->name);
            }
        }
        if (!dn->bw_src_plain &&
            (!dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(bw_pd, dnnl_query_diff_dst_md, 0), dst_md) ||
             !dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(bw_pd, dnnl_query_src_md, 0), src_md)))
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

/* ======================= ViT ops (src/models/vit.c) ========================
 * Token values (N, T, D) stay plain row-major. The linear layers' forward is
 * oneDNN's matmul over the N*T rows with the bias fused (and, in eval, the
 * GELU that follows fc1 as a post-op); their backward and the patch
 * embedding are dnnl_sgemm; GELU is oneDNN's gelu_erf eltwise primitive;
 * LayerNorm, the attention (register-tiled small GEMMs per (sample, head),
 * softmax fused with a vectorised exp, the T x T probabilities saved for the
 * backward) and the token gathers are C steps. Parameter gradients
 * accumulate (+=) into the store (bias and LayerNorm column sums as sgemm
 * with a ones vector). Results depend on the thread count only through
 * oneDNN's GEMMs. */

static int is_vit_op(mloc_op op) {
    return op == MLOC_OP_PATCH_EMBED || op == MLOC_OP_CLS_POS || op == MLOC_OP_LAYERNORM ||
           op == MLOC_OP_LINEAR_TOKENS || op == MLOC_OP_GELU || op == MLOC_OP_ATTENTION ||
           op == MLOC_OP_CLS_SELECT || op == MLOC_OP_MAE_UNMASK;
}

/* db (O) += ones^T dy: the column sums of dy (M, O) as one sgemm with a
 * vector of M ones (e->vit_ones, at least as long as any token batch). */
static void colsum_add(dexec *e, float *db, const float *dy, int64_t M, int64_t O) {
    assert(M <= e->vit_ones_n);
    dnnl_sgemm('N', 'N', 1, O, M, 1.0f, e->vit_ones, M, dy, O, 1.0f, db, O);
}

/* y (M, O) = x (M, I) w^T + b: the bias is written first and the GEMM adds */
static void gemm_bias(float *y, const float *x, const float *w, const float *b, int64_t M, int64_t I, int64_t O) {
    if (b) {
#pragma omp parallel for schedule(static) if (M * O > 65536)
        for (int64_t r = 0; r < M; r++) memcpy(y + r * O, b, (size_t)O * sizeof(float));
    }
    dnnl_sgemm('N', 'T', M, O, I, 1.0f, x, I, w, I, b ? 1.0f : 0.0f, y, O);
}

/* patch j of sample n in patch order: the sample's order (m->patch_order)
 * when keep < L and n is a row of this forward, else j */
static int vit_patch_at(const dexec *e, const mloc_model *m, int keep, int L, int n, int j) {
    return keep < L && m->patch_order && n < e->run_N ? m->patch_order[(int64_t)n * L + j] : j;
}

/* p[0] dy, p[1] x, p[2] dx or NULL: dx = dy w (=), dw += dy^T x, db += colsum dy */
static void fn_lt_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int64_t M = (int64_t)s->batch * m->values[nd->in[0]].c, I = m->values[nd->in[0]].w,
                  O = nd->u.linear.out_features;
    if (s->p[2]) dnnl_sgemm('N', 'N', M, I, O, 1.0f, s->p[0], O, param(m, nd->u.linear.weight), I, 0.0f, s->p[2], I);
    dnnl_sgemm('T', 'N', O, I, M, 1.0f, s->p[0], O, s->p[1], I, 1.0f, grad(m, nd->u.linear.weight), I);
    if (nd->u.linear.bias >= 0) colsum_add(e, grad(m, nd->u.linear.bias), s->p[0], M, O);
}

/* Drop-path slot s->c: p[0] (N, T, O) rows of sample n times its scale, in place
 * (forward), or p[1] = p[0] scaled (backward, p[1] non-NULL). */
static void fn_drop_rows(dexec *e, const mloc_model *m, const step *s) {
    (void)e;
    const mloc_value *y = &m->values[m->nodes[s->node].out];
    const int64_t per = (int64_t)y->c * y->w;
    const float *src = s->p[0];
    float *dst = s->p[1] ? s->p[1] : s->p[0];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; n++) {
        const float sc = m->drop_scale[(int64_t)s->c * m->drop_cap + n];
        for (int64_t j = 0; j < per; j++) dst[(int64_t)n * per + j] = src[(int64_t)n * per + j] * sc;
    }
}

/* p[0] y, p[1] x, p[2] mean | rstd (M each) or NULL (eval) */
static void fn_ln_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int64_t M = (int64_t)s->batch * m->values[nd->in[0]].c;
    const int D = m->values[nd->in[0]].w;
    const float *gamma = param(m, nd->u.ln.weight), *beta = param(m, nd->u.ln.bias), *x = s->p[1];
    float *y = s->p[0], *save = s->p[2];
    const float eps = nd->u.ln.eps;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < M; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float sum = 0, ssd = 0;
#pragma omp simd reduction(+ : sum)
        for (int d = 0; d < D; d++) sum += xr[d];
        const float mean = sum / D;
#pragma omp simd reduction(+ : ssd)
        for (int d = 0; d < D; d++) ssd += (xr[d] - mean) * (xr[d] - mean);
        const float rstd = 1.0f / sqrtf(ssd / D + eps);
#pragma omp simd
        for (int d = 0; d < D; d++) yr[d] = (xr[d] - mean) * rstd * gamma[d] + beta[d];
        if (save) {
            save[r] = mean;
            save[M + r] = rstd;
        }
    }
}

/* p[0] dy, p[1] x, p[2] mean | rstd, p[3] dx or NULL:
 * dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma (=);
 * dgamma += ones^T (dy xhat), dbeta += ones^T dy (sgemm column sums; dy xhat
 * goes through e->vit_tmp). */
static void fn_ln_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int64_t M = (int64_t)s->batch * m->values[nd->in[0]].c;
    const int D = m->values[nd->in[0]].w;
    const float *gamma = param(m, nd->u.ln.weight), *dy = s->p[0], *x = s->p[1], *mean = s->p[2],
                *rstd = s->p[2] + M;
    float *dx = s->p[3], *gx = e->vit_tmp;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < M; r++) {
        const float *xr = x + r * D, *gr = dy + r * D;
        const float mu = mean[r], rs = rstd[r];
        float *gxr = gx + r * D, sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
        for (int d = 0; d < D; d++) {
            const float xh = (xr[d] - mu) * rs, g = gr[d] * gamma[d];
            gxr[d] = gr[d] * xh;
            sg += g;
            sgx += g * xh;
        }
        if (!dx) continue;
        const float mg = sg / D, mgx = sgx / D;
        float *dr = dx + r * D;
#pragma omp simd
        for (int d = 0; d < D; d++) dr[d] = rs * (gr[d] * gamma[d] - mg - (xr[d] - mu) * rs * mgx);
    }
    colsum_add(e, grad(m, nd->u.ln.weight), gx, M, D);
    colsum_add(e, grad(m, nd->u.ln.bias), dy, M, D);
}

/* Small GEMMs for the attention, one (sample, head) per thread, in GCC's
 * portable vector types (16 floats: one AVX-512 register; split by the
 * compiler elsewhere). mgemm computes
 *     c[m][n] = alpha sum_k A(m, k) b[k][n],   A(m, k) = a[m sam + k sak],
 * m < M, n < N, with row tiles of 4 and column tiles of 16 accumulated in
 * registers over k in order (each output one sequential sum, so the result
 * does not depend on the thread count). The rows of b are read 16 at a time:
 * they must be padded to a multiple of 16 (only n < N is stored). */
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

static inline v16 vload(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore_n(float *p, v16 v, int n) {
    if (n >= 16) {
        memcpy(p, &v, sizeof v);
    } else {
        float t[16];
        memcpy(t, &v, sizeof v);
        memcpy(p, t, (size_t)n * sizeof(float));
    }
}

static void mgemm(float *c, int64_t ldc, const float *a, int64_t sam, int64_t sak, const float *b, int64_t ldb, int M,
                  int N, int K, float alpha) {
    for (int m0 = 0; m0 < M; m0 += 4) {
        const float *a0 = a + (int64_t)m0 * sam, *a1 = a + (int64_t)(m0 + 1 < M ? m0 + 1 : m0) * sam,
                    *a2 = a + (int64_t)(m0 + 2 < M ? m0 + 2 : m0) * sam,
                    *a3 = a + (int64_t)(m0 + 3 < M ? m0 + 3 : m0) * sam;
        int n0 = 0;
        /* 4 x 32 tiles: two loads of b and four broadcasts of a feed eight FMAs */
        for (; N - n0 >= 32; n0 += 32) {
            v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};
            const float *bk = b + n0;
            for (int64_t k = 0; k < K; k++, bk += ldb) {
                const v16 bv = vload(bk), bw = vload(bk + 16);
                const float x0 = a0[k * sak], x1 = a1[k * sak], x2 = a2[k * sak], x3 = a3[k * sak];
                c0 += x0 * bv;
                d0 += x0 * bw;
                c1 += x1 * bv;
                d1 += x1 * bw;
                c2 += x2 * bv;
                d2 += x2 * bw;
                c3 += x3 * bv;
                d3 += x3 * bw;
            }
            float *cr = c + (int64_t)m0 * ldc + n0;
            vstore_n(cr, alpha * c0, 16);
            vstore_n(cr + 16, alpha * d0, 16);
            if (m0 + 1 < M) vstore_n(cr + ldc, alpha * c1, 16), vstore_n(cr + ldc + 16, alpha * d1, 16);
            if (m0 + 2 < M) vstore_n(cr + 2 * ldc, alpha * c2, 16), vstore_n(cr + 2 * ldc + 16, alpha * d2, 16);
            if (m0 + 3 < M) vstore_n(cr + 3 * ldc, alpha * c3, 16), vstore_n(cr + 3 * ldc + 16, alpha * d3, 16);
        }
        for (; n0 < N; n0 += 16) {
            v16 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
            const float *bk = b + n0;
            for (int64_t k = 0; k < K; k++, bk += ldb) {
                const v16 bv = vload(bk);
                c0 += a0[k * sak] * bv;
                c1 += a1[k * sak] * bv;
                c2 += a2[k * sak] * bv;
                c3 += a3[k * sak] * bv;
            }
            const int nn = N - n0 < 16 ? N - n0 : 16;
            float *cr = c + (int64_t)m0 * ldc + n0;
            vstore_n(cr, alpha * c0, nn);
            if (m0 + 1 < M) vstore_n(cr + ldc, alpha * c1, nn);
            if (m0 + 2 < M) vstore_n(cr + 2 * ldc, alpha * c2, nn);
            if (m0 + 3 < M) vstore_n(cr + 3 * ldc, alpha * c3, nn);
        }
    }
}

/* exp(x) for 16 lanes: x = r ln 2 + f (r an integer, |f| <= ln2 / 2, ln 2 in
 * two parts), e^f by its Taylor polynomial to degree 7 (error < 1e-8), times
 * 2^r from the exponent bits; x is clamped to [-87, 88]. */
static inline v16 vexp(v16 x) {
    const v16 lo = x - x - 87.0f, hi = x - x + 88.0f;
    v16i below = x < lo, above = x > hi;
    x = (v16)(((v16i)x & ~below) | ((v16i)lo & below));
    x = (v16)(((v16i)x & ~above) | ((v16i)hi & above));
    const v16 r = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    const v16 f = (x - r * 0.693145751953125f) - r * 1.428606765330187045e-06f;
    v16 p = f * (1.0f / 5040) + (1.0f / 720);
    p = p * f + (1.0f / 120);
    p = p * f + (1.0f / 24);
    p = p * f + (1.0f / 6);
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    const v16i bits = (__builtin_convertvector(r, v16i) + 127) << 23;
    return p * (v16)bits;
}

/* Attention workspace per thread, in floats: K^T or V^T (Dh x Tp), K, Q, dO
 * or V (T x Dhp each), two T x Tp score matrices; Tp, Dhp rounded up to 16. */
static int64_t attn_ws_per_thread(int T, int Dh) {
    const int64_t Tp = (T + 15) / 16 * 16, Dhp = (Dh + 15) / 16 * 16;
    return Dh * Tp + 3 * T * Dhp + 2 * T * Tp;
}

/* Attention forward: p[0] out (N, T, D), p[1] qkv (N, T, 3D), p[2]
 * probabilities (N, H, T, T), p[3] the workspace of s->c threads. Per
 * (n, h): S = c Q K^T, a max-subtracted softmax per row (saved), O = P V
 * written into the head's columns of out. */
static void fn_attn_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int T = m->values[nd->in[0]].c, D = m->values[nd->out].w, H = nd->u.attn.heads, Dh = D / H;
    const int Tp = (T + 15) / 16 * 16, Dhp = (Dh + 15) / 16 * 16;
    const int64_t D3 = 3 * (int64_t)D, pairs = (int64_t)s->batch * H, per = attn_ws_per_thread(T, Dh);
    const float c = 1.0f / sqrtf((float)Dh);
    float *out = s->p[0], *att = s->p[2], *ws = s->p[3];
    const float *qkv = s->p[1];
#pragma omp parallel num_threads(s->c)
    {
        float *kt = ws + (int64_t)omp_get_thread_num() * per, *vb = kt + (int64_t)Dh * Tp, *sb = vb + (int64_t)T * Dhp;
#pragma omp for schedule(static)
        for (int64_t nh = 0; nh < pairs; nh++) {
            const int64_t n = nh / H, h = nh % H;
            const float *q = qkv + n * T * D3 + h * Dh, *k = q + D, *v = q + 2 * D;
            for (int j = 0; j < Dh; j++) {
                float *row = kt + (int64_t)j * Tp;
                for (int u = 0; u < T; u++) row[u] = k[u * D3 + j];
                for (int u = T; u < Tp; u++) row[u] = 0;
            }
            for (int u = 0; u < T; u++) {
                memcpy(vb + (int64_t)u * Dhp, v + u * D3, (size_t)Dh * sizeof(float));
                for (int j = Dh; j < Dhp; j++) vb[(int64_t)u * Dhp + j] = 0;
            }
            mgemm(sb, Tp, q, D3, 1, kt, Tp, T, T, Dh, c);
            float *a = att + nh * T * T;
            for (int t = 0; t < T; t++) {
                float *row = sb + (int64_t)t * Tp, mx = row[0], sum = 0;
                for (int u = 1; u < T; u++) mx = row[u] > mx ? row[u] : mx;
                for (int u = T; u < Tp; u++) row[u] = mx;
                for (int u = 0; u < Tp; u += 16) vstore_n(row + u, vexp(vload(row + u) - mx), 16);
                for (int u = 0; u < T; u++) sum += row[u];
                const float inv = 1.0f / sum;
                for (int u = 0; u < T; u++) row[u] *= inv;
                for (int u = T; u < Tp; u++) row[u] = 0;
                memcpy(a + (int64_t)t * T, row, (size_t)T * sizeof(float));
            }
            mgemm(out + n * T * D + h * Dh, D, sb, Tp, 1, vb, Dhp, T, Dh, T, 1.0f);
        }
    }
}

/* Attention backward: p[0] dout (N, T, D), p[1] qkv, p[2] probabilities,
 * p[3] dqkv (=), p[3 + 1] via s->n... the workspace is e->nd[node].vsave2.
 * Per (n, h), from dO (the head's columns of dout):
 *   dV = P^T dO,  dP = dO V^T,  dS = c P (dP - rowsum(P dP)),
 *   dQ = dS K,    dK = dS^T Q, written into the head's columns of dqkv. */
static void fn_attn_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int T = m->values[nd->in[0]].c, D = m->values[nd->out].w, H = nd->u.attn.heads, Dh = D / H;
    const int Tp = (T + 15) / 16 * 16, Dhp = (Dh + 15) / 16 * 16;
    const int64_t D3 = 3 * (int64_t)D, pairs = (int64_t)s->batch * H, per = attn_ws_per_thread(T, Dh);
    const float c = 1.0f / sqrtf((float)Dh);
    const float *dout = s->p[0], *qkv = s->p[1], *att = s->p[2];
    float *dqkv = s->p[3], *ws = e->nd[s->node].vsave2;
#pragma omp parallel num_threads(s->c)
    {
        float *vt = ws + (int64_t)omp_get_thread_num() * per, *kb = vt + (int64_t)Dh * Tp, *qb = kb + (int64_t)T * Dhp,
              *dob = qb + (int64_t)T * Dhp, *pb = dob + (int64_t)T * Dhp, *ds = pb + (int64_t)T * Tp;
#pragma omp for schedule(static)
        for (int64_t nh = 0; nh < pairs; nh++) {
            const int64_t n = nh / H, h = nh % H;
            const float *q = qkv + n * T * D3 + h * Dh, *k = q + D, *v = q + 2 * D, *a = att + nh * T * T;
            float *dq = dqkv + n * T * D3 + h * Dh;
            for (int j = 0; j < Dh; j++) {
                float *row = vt + (int64_t)j * Tp;
                for (int u = 0; u < T; u++) row[u] = v[u * D3 + j];
                for (int u = T; u < Tp; u++) row[u] = 0;
            }
            for (int u = 0; u < T; u++) {
                memcpy(kb + (int64_t)u * Dhp, k + u * D3, (size_t)Dh * sizeof(float));
                memcpy(qb + (int64_t)u * Dhp, q + u * D3, (size_t)Dh * sizeof(float));
                memcpy(dob + (int64_t)u * Dhp, dout + (n * T + u) * D + h * Dh, (size_t)Dh * sizeof(float));
                for (int j = Dh; j < Dhp; j++) kb[(int64_t)u * Dhp + j] = qb[(int64_t)u * Dhp + j] = dob[(int64_t)u * Dhp + j] = 0;
                memcpy(pb + (int64_t)u * Tp, a + (int64_t)u * T, (size_t)T * sizeof(float));
            }
            mgemm(dq + 2 * D, D3, pb, 1, Tp, dob, Dhp, T, Dh, T, 1.0f); /* dV (u, j) = sum_t P[t][u] dO[t][j] */
            mgemm(ds, Tp, dob, Dhp, 1, vt, Tp, T, T, Dh, 1.0f);       /* dP (t, u) = dO[t] . V[u] */
            for (int t = 0; t < T; t++) {
                const float *pr = pb + (int64_t)t * Tp;
                float *dr = ds + (int64_t)t * Tp, rowdot = 0;
                for (int u = 0; u < T; u++) rowdot += pr[u] * dr[u];
                for (int u = 0; u < T; u++) dr[u] = c * pr[u] * (dr[u] - rowdot);
            }
            mgemm(dq, D3, ds, Tp, 1, kb, Dhp, T, Dh, T, 1.0f);     /* dQ (t, j) = sum_u dS[t][u] K[u][j] */
            mgemm(dq + D, D3, ds, 1, Tp, qb, Dhp, T, Dh, T, 1.0f); /* dK (u, j) = sum_t dS[t][u] Q[t][j] */
        }
    }
}

/* Patch embedding: p[0] out (N, L, D), p[1] x (N, C, H, W), p[2] columns
 * (N*L, C*P*P) in the weight's (c, i, j) order; out = cols w^T + b. */
static void fn_patch_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int P = nd->u.patch.p, C = xi->c, H = xi->h, W = xi->w, Wp = W / P, L = yo->c, K = C * P * P;
    const float *x = s->p[1];
    float *cols = s->p[2];
    const int64_t rows = (int64_t)s->batch * L;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = r / L;
        const int l = (int)(r % L), y0 = (l / Wp) * P, x0 = (l % Wp) * P;
        float *cr = cols + r * K;
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < P; i++)
                memcpy(cr + (ch * P + i) * P, x + ((n * C + ch) * H + y0 + i) * W + x0, (size_t)P * sizeof(float));
    }
    gemm_bias(s->p[0], cols, param(m, nd->u.patch.weight), param(m, nd->u.patch.bias), rows, K, yo->w);
}

/* p[0] dy (N, L, D), p[1] columns, p[2] dx or NULL, p[3] column gradients
 * (when dx): dw += dy^T cols, db += colsum dy, dx = col2im(dy w) (=). */
static void fn_patch_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int P = nd->u.patch.p, C = xi->c, H = xi->h, W = xi->w, Wp = W / P, L = yo->c, K = C * P * P, D = yo->w;
    const int64_t rows = (int64_t)s->batch * L;
    dnnl_sgemm('T', 'N', D, K, rows, 1.0f, s->p[0], D, s->p[1], K, 1.0f, grad(m, nd->u.patch.weight), K);
    colsum_add(e, grad(m, nd->u.patch.bias), s->p[0], rows, D);
    if (!s->p[2]) return;
    float *dcols = s->p[3], *dx = s->p[2];
    dnnl_sgemm('N', 'N', rows, K, D, 1.0f, s->p[0], D, param(m, nd->u.patch.weight), K, 0.0f, dcols, K);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t n = r / L;
        const int l = (int)(r % L), y0 = (l / Wp) * P, x0 = (l % Wp) * P;
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < P; i++)
                memcpy(dx + ((n * C + ch) * H + y0 + i) * W + x0, dcols + r * K + (ch * P + i) * P,
                       (size_t)P * sizeof(float));
    }
}

/* CLS_POS: p[0] out (N, 1 + keep, D), p[1] x (N, L, D) */
static void fn_cls_pos_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int L = m->values[nd->in[0]].c, D = m->values[nd->in[0]].w, keep = nd->u.tok.keep;
    const float *cls = param(m, nd->u.tok.cls), *x = s->p[1];
    const float *pos = nd->u.tok.interp ? m->pos_interp : param(m, nd->u.tok.pos);
    float *out = s->p[0];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; n++) {
        float *o = out + (int64_t)n * (1 + keep) * D;
        for (int d = 0; d < D; d++) o[d] = cls[d] + pos[d];
        for (int j = 0; j < keep; j++) {
            const int p = vit_patch_at(e, m, keep, L, n, j);
            const float *xr = x + ((int64_t)n * L + p) * D, *pr = pos + (int64_t)(1 + p) * D;
            float *or = o + (int64_t)(1 + j) * D;
#pragma omp simd
            for (int d = 0; d < D; d++) or[d] = xr[d] + pr[d];
        }
    }
}

/* p[0] dy (N, 1 + keep, D), p[1] dx or NULL (=), p[2] ranks (N*L int32):
 * dx[o_j] = dy[1 + j]; dcls += sum_n dy[n, 0]; dpos[0] likewise and
 * dpos[1 + p] += sum_n dy[n, 1 + rank_n(p)] over the samples that see p. */
static void fn_cls_pos_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int L = m->values[nd->in[0]].c, D = m->values[nd->in[0]].w, keep = nd->u.tok.keep, N = s->batch;
    const float *dy = s->p[0];
    float *dx = s->p[1];
    int32_t *rank = (int32_t *)s->p[2];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < L; j++) rank[(int64_t)n * L + vit_patch_at(e, m, keep, L, n, j)] = j;
        if (!dx) continue;
        for (int p = 0; p < L; p++) {
            const int j = rank[(int64_t)n * L + p];
            float *dr = dx + ((int64_t)n * L + p) * D;
            if (j < keep) memcpy(dr, dy + ((int64_t)n * (1 + keep) + 1 + j) * D, (size_t)D * sizeof(float));
            else memset(dr, 0, (size_t)D * sizeof(float));
        }
    }
    float *dcls = grad(m, nd->u.tok.cls), *dpos = nd->u.tok.interp ? m->pos_interp_grad : grad(m, nd->u.tok.pos);
#pragma omp parallel for schedule(static)
    for (int t = 0; t <= L; t++)
        for (int d0 = 0; d0 < D; d0 += 32) {
            const int d1 = d0 + 32 < D ? d0 + 32 : D;
            double acc[32] = {0};
            for (int n = 0; n < N; n++) {
                const int j = t == 0 ? -1 : rank[(int64_t)n * L + t - 1];
                if (j >= keep) continue;
                const float *gr = dy + ((int64_t)n * (1 + keep) + 1 + j) * D;
                for (int d = d0; d < d1; d++) acc[d - d0] += gr[d];
            }
            for (int d = d0; d < d1; d++) {
                dpos[(int64_t)t * D + d] += (float)acc[d - d0];
                if (t == 0) dcls[d] += (float)acc[d - d0];
            }
        }
}

/* CLS_SELECT: p[0] out (N, D), p[1] x (N, T, D); backward p[0] dy, p[1] dx (=) */
static void fn_cls_select_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_value *x = &m->values[m->nodes[s->node].in[0]];
    for (int n = 0; n < s->batch; n++)
        memcpy(s->p[0] + (int64_t)n * x->w, s->p[1] + (int64_t)n * x->c * x->w, (size_t)x->w * sizeof(float));
}

static void fn_cls_select_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_value *x = &m->values[m->nodes[s->node].in[0]];
    memset(s->p[1], 0, (size_t)s->batch * x->c * x->w * sizeof(float));
    for (int n = 0; n < s->batch; n++)
        memcpy(s->p[1] + (int64_t)n * x->c * x->w, s->p[0] + (int64_t)n * x->w, (size_t)x->w * sizeof(float));
}

/* MAE_UNMASK: p[0] out (N, 1 + L, D), p[1] x (N, 1 + keep, D) */
static void fn_unmask_fwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int L = m->values[nd->out].c - 1, D = m->values[nd->out].w, keep = nd->u.unmask.keep;
    const float *mask = param(m, nd->u.unmask.mask), *pos = param(m, nd->u.unmask.pos), *in = s->p[1];
    float *out = s->p[0];
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; n++) {
        const float *x = in + (int64_t)n * (1 + keep) * D;
        float *o = out + (int64_t)n * (1 + L) * D;
        for (int d = 0; d < D; d++) o[d] = x[d] + pos[d];
        for (int j = 0; j < L; j++) {
            const int p = vit_patch_at(e, m, keep, L, n, j);
            const float *src = j < keep ? x + (int64_t)(1 + j) * D : mask, *pr = pos + (int64_t)(1 + p) * D;
            float *or = o + (int64_t)(1 + p) * D;
#pragma omp simd
            for (int d = 0; d < D; d++) or[d] = src[d] + pr[d];
        }
    }
}

/* p[0] dy (N, 1 + L, D), p[1] dx (=) or NULL: dx[0] = dy[0], dx[1 + j] =
 * dy[1 + o_j]; dmask += dy at the masked rows; dpos += sum_n dy[n]. */
static void fn_unmask_bwd(dexec *e, const mloc_model *m, const step *s) {
    const mloc_node *nd = &m->nodes[s->node];
    const int L = m->values[nd->out].c - 1, D = m->values[nd->out].w, keep = nd->u.unmask.keep, N = s->batch;
    const float *dy = s->p[0];
    float *dx = s->p[1];
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *gy = dy + (int64_t)n * (1 + L) * D;
            float *d0 = dx + (int64_t)n * (1 + keep) * D;
            memcpy(d0, gy, (size_t)D * sizeof(float));
            for (int j = 0; j < keep; j++)
                memcpy(d0 + (int64_t)(1 + j) * D, gy + (int64_t)(1 + vit_patch_at(e, m, keep, L, n, j)) * D,
                       (size_t)D * sizeof(float));
        }
    }
    colsum_add(e, grad(m, nd->u.unmask.pos), dy, N, (int64_t)(1 + L) * D);
    float *dmask = grad(m, nd->u.unmask.mask);
    for (int d0 = 0; d0 < D; d0 += 32) {
        const int d1 = d0 + 32 < D ? d0 + 32 : D;
        double acc[32] = {0};
        for (int n = 0; n < N; n++)
            for (int j = keep; j < L; j++) {
                const float *gr = dy + ((int64_t)n * (1 + L) + 1 + vit_patch_at(e, m, keep, L, n, j)) * D;
                for (int d = d0; d < d1; d++) acc[d - d0] += gr[d];
            }
        for (int d = d0; d < d1; d++) dmask[d] += (float)acc[d - d0];
    }
}

/* A plain (N, c, h, w) descriptor of value v for program prog. */
static dnnl_memory_desc_t vit_plain(const dexec *e, const mloc_model *m, int prog, int v) {
    const mloc_value *x = &m->values[v];
    return md4(e->n[prog], x->c, x->h, x->w, dnnl_nchw);
}

/* The buffer of value v in plain layout for program prog (a reordered copy
 * when it is held in another layout). */
static mloc_status vit_input(dexec *e, const mloc_model *m, int prog, int i, int v, float **out) {
    dnnl_memory_desc_t plain = vit_plain(e, m, prog, v);
    dnnl_memory_t mem_;
    MLOC_TRY(as_layout(e, prog, &e->fwd[prog], i, v, &plain, &mem_));
    void *h = NULL;
    dnnl_memory_get_data_handle(mem_, &h);
    *out = h;
    return MLOC_OK;
}

/* A Linear over tokens, forward: oneDNN's matmul on the (N*T, I) rows, the
 * weight [O, I] read in place as an (I, O) 'ba' matrix and the bias fused;
 * in eval, a GELU that is the output's only reader runs as its post-op (the
 * pre-activation is then not materialised). The backward is fn_lt_bwd. */
static mloc_status plan_linear_tokens(dexec *e, const mloc_model *m, int i, int prog) {
    mloc_status st = MLOC_OK;
    const mloc_node *nd = &m->nodes[i];
    const mloc_value *xi = &m->values[nd->in[0]];
    const int train = prog == TRAIN, has_bias = nd->u.linear.bias >= 0;
    const int64_t M = (int64_t)e->n[prog] * xi->c, I = xi->w, O = nd->u.linear.out_features;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = attr_new();
    dnnl_post_ops_t po = NULL;
    int gelu = -1;
    if (train || readers(m, nd->out, &gelu) != 1 || m->nodes[gelu].op != MLOC_OP_GELU) gelu = -1;
    float *x;
    TRY(vit_input(e, m, prog, i, nd->in[0], &x));
    e->nd[i].vin = x;
    const int out_v = gelu >= 0 ? m->nodes[gelu].out : nd->out;
    dnnl_memory_desc_t out_md = vit_plain(e, m, prog, out_v);
    TRY(bind(e, prog, out_v, &out_md, train));
    if (gelu >= 0) e->planned[gelu] = 1;
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md;
    dnnl_dims_t sd = {M, I}, wd = {I, O}, bd = {1, O}, dd = {M, O};
    DN(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_f32, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&w_md, 2, wd, dnnl_f32, dnnl_ba));
    DN(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dnnl_f32, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab));
    if (gelu >= 0) {
        DN(dnnl_post_ops_create(&po));
        DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f));
        DN(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    dnnl_matmul_desc_t md;
    DN(dnnl_matmul_desc_init(&md, &src_md, &w_md, has_bias ? &b_md : NULL, &dst_md));
    DN(dnnl_primitive_desc_create(&pd, &md, attr, e->engine, NULL));
    mloc_log(e->ctx, MLOC_LOG_DEBUG, "oneDNN %s matmul %s: %s", train ? "train" : "eval", nd->name, impl_name(pd));
    dnnl_primitive_t mm;
    TRY(prim(e, &mm, pd));
    dnnl_memory_t sm, wm, bm = NULL, dm;
    TRY(mem(e, &sm, &src_md, x));
    TRY(mem(e, &wm, &w_md, param(m, nd->u.linear.weight)));
    if (has_bias) TRY(mem(e, &bm, &b_md, param(m, nd->u.linear.bias)));
    TRY(mem(e, &dm, &dst_md, e->v[prog][out_v].act));
    step *s = prim_step(e, &e->fwd[prog], i, mm);
    if (!s) {
        st = MLOC_ERR_NOMEM;
        goto fail;
    }
    arg(s, DNNL_ARG_SRC, sm);
    arg(s, DNNL_ARG_WEIGHTS, wm);
    if (bm) arg(s, DNNL_ARG_BIAS, bm);
    arg(s, DNNL_ARG_DST, dm);
    if (gelu >= 0) e->v[prog][nd->out].materialised = 0;
    if (train && nd->u.linear.drop >= 0) { /* timm's DropPath after the branch's last Linear */
        if (!(s = fn_step(e, &e->fwd[prog], i, fn_drop_rows))) {
            st = MLOC_ERR_NOMEM;
            goto fail;
        }
        s->batch = e->n[prog];
        s->c = nd->u.linear.drop;
        s->p[0] = e->v[prog][out_v].act;
    }
fail:
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return st;
}

static mloc_status plan_vit(dexec *e, const mloc_model *m, int i, int prog) {
    if (m->nodes[i].op == MLOC_OP_LINEAR_TOKENS) return plan_linear_tokens(e, m, i, prog);
    mloc_status st = MLOC_OK;
    const mloc_node *nd = &m->nodes[i];
    dnode *dn = &e->nd[i];
    const mloc_value *xi = &m->values[nd->in[0]], *yo = &m->values[nd->out];
    const int train = prog == TRAIN, N = e->n[prog];
    program *p = &e->fwd[prog];
    dnnl_primitive_desc_t pd = NULL, bpd = NULL;
    float *x;
    TRY(vit_input(e, m, prog, i, nd->in[0], &x));
    dnnl_memory_desc_t out_md = vit_plain(e, m, prog, nd->out);
    TRY(bind(e, prog, nd->out, &out_md, train));
    float *y = e->v[prog][nd->out].act;
    dn->vin = x;
    step_fn fn = NULL;
    float *extra = NULL, *work = NULL;
    const int threads = omp_get_max_threads();
    switch (nd->op) {
    case MLOC_OP_CLS_POS: fn = fn_cls_pos_fwd; break;
    case MLOC_OP_CLS_SELECT: fn = fn_cls_select_fwd; break;
    case MLOC_OP_MAE_UNMASK: fn = fn_unmask_fwd; break;
    case MLOC_OP_LAYERNORM:
        fn = fn_ln_fwd;
        if (train && !(extra = take(e, 2 * (size_t)N * xi->c * sizeof(float)))) goto nomem;
        break;
    case MLOC_OP_ATTENTION:
        fn = fn_attn_fwd;
        if (!(extra = take(e, (size_t)N * nd->u.attn.heads * xi->c * xi->c * sizeof(float)))) goto nomem;
        if (!(work = take(e, (size_t)threads * attn_ws_per_thread(xi->c, yo->w / nd->u.attn.heads) * sizeof(float))))
            goto nomem;
        if (train) {
            dn->vsave2 = work; /* the backward's, after the forward */
            dn->vthreads = threads;
        }
        break;
    case MLOC_OP_PATCH_EMBED:
        fn = fn_patch_fwd;
        if (!(extra = take(e, (size_t)N * yo->c * xi->c * nd->u.patch.p * nd->u.patch.p * sizeof(float))))
            goto nomem;
        break;
    case MLOC_OP_GELU: {
        /* oneDNN's gelu_erf on the plain buffers, forward and (training) backward */
        dnnl_eltwise_desc_t ed;
        dnnl_primitive_attr_t attr = attr_new();
        DN(dnnl_eltwise_forward_desc_init(&ed, train ? dnnl_forward_training : dnnl_forward_inference,
                                          dnnl_eltwise_gelu_erf, &out_md, 0.0f, 0.0f));
        dnnl_status_t ds = dnnl_primitive_desc_create(&pd, &ed, attr, e->engine, NULL);
        if (ds == dnnl_success && train) {
            DN(dnnl_eltwise_backward_desc_init(&ed, dnnl_eltwise_gelu_erf, &out_md, &out_md, 0.0f, 0.0f));
            ds = dnnl_primitive_desc_create(&bpd, &ed, attr, e->engine, pd);
        }
        dnnl_primitive_attr_destroy(attr);
        DN(ds);
        dnnl_primitive_t fwd;
        TRY(prim(e, &fwd, pd));
        step *s = prim_step(e, p, i, fwd);
        if (!s) goto nomem;
        dnnl_memory_t src_mem;
        TRY(as_layout(e, prog, p, i, nd->in[0], &out_md, &src_mem));
        arg(s, DNNL_ARG_SRC, src_mem);
        arg(s, DNNL_ARG_DST, e->v[prog][nd->out].act_mem);
        if (train) {
            TRY(prim(e, &dn->gelu_bwd, bpd));
            dn->gelu_src = src_mem;
        }
        goto done;
    }
    default:
        st = mloc_error(e->ctx, MLOC_ERR_UNSUPPORTED, "oneDNN backend: op %s (%s) not implemented",
                        mloc_op_name(nd->op), nd->name);
        goto fail;
    }
    step *s = fn_step(e, p, i, fn);
    if (!s) goto nomem;
    s->batch = N;
    s->p[0] = y;
    s->p[1] = x;
    s->p[2] = extra;
    s->p[3] = work;
    s->c = threads;
    if (train) dn->vsave = extra;
    goto done;
nomem:
    st = MLOC_ERR_NOMEM;
done:
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    return st;
}

/* The backward steps of ViT node i, from the gradient of its output y. */
static mloc_status plan_vit_backward(dexec *e, const mloc_model *m, int i, dval *y, int need_dx) {
    mloc_status st = MLOC_OK;
    const mloc_node *nd = &m->nodes[i];
    dnode *dn = &e->nd[i];
    const mloc_value *xi = &m->values[nd->in[0]];
    const int a = nd->in[0], N = e->n[TRAIN];
    dnnl_memory_desc_t x_md = vit_plain(e, m, TRAIN, a);
    gdest g;
    step *s;
    if (!e->vit_ones) {
        /* ones for the column sums (the longest token batch) and LayerNorm's dy xhat */
        int64_t rows = N, tmp = 1;
        for (int k = 0; k < m->n_nodes; k++) {
            const mloc_value *v = &m->values[m->nodes[k].in[0]];
            if (!is_vit_op(m->nodes[k].op)) continue;
            if ((int64_t)N * v->c > rows) rows = (int64_t)N * v->c;
            if ((int64_t)N * m->values[m->nodes[k].out].c > rows) rows = (int64_t)N * m->values[m->nodes[k].out].c;
            if (m->nodes[k].op == MLOC_OP_LAYERNORM && (int64_t)N * v->c * v->w > tmp) tmp = (int64_t)N * v->c * v->w;
        }
        if (!(e->vit_ones = take(e, (size_t)rows * sizeof(float))) || !(e->vit_tmp = take(e, (size_t)tmp * sizeof(float))))
            return MLOC_ERR_NOMEM;
        for (int64_t k = 0; k < rows; k++) e->vit_ones[k] = 1.0f;
        e->vit_ones_n = rows;
    }
    if (nd->op == MLOC_OP_GELU) {
        if (!need_dx) return MLOC_OK;
        TRY(gbegin(e, a, &x_md, &g));
        if (!(s = prim_step(e, &e->bwd, i, dn->gelu_bwd))) return MLOC_ERR_NOMEM;
        arg(s, DNNL_ARG_SRC, dn->gelu_src);
        arg(s, DNNL_ARG_DIFF_DST, y->grad_mem);
        arg(s, DNNL_ARG_DIFF_SRC, g.mem);
        return gfinish(e, i, &g);
    }
    if ((nd->op == MLOC_OP_ATTENTION || nd->op == MLOC_OP_CLS_SELECT) && !need_dx) return MLOC_OK;
    step_fn fn = nd->op == MLOC_OP_LINEAR_TOKENS ? fn_lt_bwd
                 : nd->op == MLOC_OP_LAYERNORM   ? fn_ln_bwd
                 : nd->op == MLOC_OP_ATTENTION   ? fn_attn_bwd
                 : nd->op == MLOC_OP_PATCH_EMBED ? fn_patch_bwd
                 : nd->op == MLOC_OP_CLS_POS     ? fn_cls_pos_bwd
                 : nd->op == MLOC_OP_CLS_SELECT  ? fn_cls_select_bwd
                                                 : fn_unmask_bwd;
    float *dy = y->grad;
    if (nd->op == MLOC_OP_LINEAR_TOKENS && nd->u.linear.drop >= 0) {
        /* the output was scaled per sample: so is its gradient, into a buffer of
         * its own (the residual add may share y's gradient with the stream's) */
        if (!e->drop_tmp) {
            int64_t most = 0;
            for (int k = 0; k < m->n_nodes; k++)
                if (m->nodes[k].op == MLOC_OP_LINEAR_TOKENS && m->nodes[k].u.linear.drop >= 0 &&
                    mloc_model_value_numel(m, m->nodes[k].out) > most)
                    most = mloc_model_value_numel(m, m->nodes[k].out);
            if (!(e->drop_tmp = take(e, (size_t)N * most * sizeof(float)))) return MLOC_ERR_NOMEM;
        }
        if (!(s = fn_step(e, &e->bwd, i, fn_drop_rows))) return MLOC_ERR_NOMEM;
        s->batch = N;
        s->c = nd->u.linear.drop;
        s->p[0] = y->grad;
        s->p[1] = dy = e->drop_tmp;
    }
    if (need_dx) TRY(gbegin(e, a, &x_md, &g));
    float *dx = need_dx ? g.buf : NULL;
    if (!(s = fn_step(e, &e->bwd, i, fn))) return MLOC_ERR_NOMEM;
    s->batch = N;
    s->p[0] = dy;
    switch (nd->op) {
    case MLOC_OP_LINEAR_TOKENS:
        s->p[1] = dn->vin;
        s->p[2] = dx;
        break;
    case MLOC_OP_LAYERNORM:
        s->p[1] = dn->vin;
        s->p[2] = dn->vsave;
        s->p[3] = dx;
        break;
    case MLOC_OP_ATTENTION:
        s->p[1] = dn->vin;
        s->p[2] = dn->vsave;
        s->p[3] = dx;
        s->c = dn->vthreads;
        break;
    case MLOC_OP_PATCH_EMBED:
        s->p[1] = dn->vsave;
        s->p[2] = dx;
        if (dx && !(s->p[3] = take(e, (size_t)N * m->values[nd->out].c * xi->c * nd->u.patch.p * nd->u.patch.p *
                                          sizeof(float))))
            return MLOC_ERR_NOMEM;
        break;
    case MLOC_OP_CLS_POS:
        s->p[1] = dx;
        if (!(s->p[2] = take(e, (size_t)N * xi->c * sizeof(int32_t)))) return MLOC_ERR_NOMEM;
        break;
    default: /* CLS_SELECT, MAE_UNMASK */
        s->p[1] = dx;
        break;
    }
    if (need_dx) TRY(gfinish(e, i, &g));
fail:
    return st;
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
            if (dn->dense) {
                if (need_dx) TRY(gbegin(e, a, &dn->dsrc_md, &g));
                if (!(s = fn_step(e, &e->bwd, i, fn_dense_bwd))) return MLOC_ERR_NOMEM;
                s->batch = e->n[TRAIN];
                s->p[0] = y->grad;
                s->p[3] = need_dx ? g.buf : NULL;
                if (need_dx) TRY(gfinish(e, i, &g));
                break;
            }
            if (need_dx) {
                TRY(gbegin(e, a, &dn->dsrc_md, &g));
                if (!(s = prim_step(e, &e->bwd, i, dn->bwd_data))) return MLOC_ERR_NOMEM;
                arg(s, DNNL_ARG_DIFF_DST, y->grad_mem);
                arg(s, DNNL_ARG_WEIGHTS, dn->w_bwd_mem);
                arg(s, DNNL_ARG_DIFF_SRC, g.mem);
                TRY(gfinish(e, i, &g));
            }
            if (dn->bw_src_plain) {
                if (!(s = prim_step(e, &e->bwd, i, dn->bw_src_to_plain))) return MLOC_ERR_NOMEM;
                arg(s, DNNL_ARG_FROM, dn->src_mem);
                arg(s, DNNL_ARG_TO, dn->bw_src_plain);
                if (!(s = prim_step(e, &e->bwd, i, dn->bw_ddst_to_plain))) return MLOC_ERR_NOMEM;
                arg(s, DNNL_ARG_FROM, y->grad_mem);
                arg(s, DNNL_ARG_TO, dn->bw_ddst_plain);
            }
            if (!(s = prim_step(e, &e->bwd, i, dn->bwd_weights))) return MLOC_ERR_NOMEM;
            arg(s, DNNL_ARG_SRC, dn->bw_src_plain ? dn->bw_src_plain : dn->src_mem);
            arg(s, DNNL_ARG_DIFF_DST, dn->bw_src_plain ? dn->bw_ddst_plain : y->grad_mem);
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
            if (is_vit_op(nd->op)) {
                TRY(plan_vit_backward(e, m, i, y, need_dx));
                break;
            }
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
        } else if (is_vit_op(nd->op)) {
            TRY(plan_vit(e, m, i, prog));
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
    e->run_N = N;
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
    if (!e->bwd_planned) {
        MLOC_TRY(plan_backward(e, m));
        MLOC_TRY(bind_all_scratchpads(e, m));
        e->bwd_planned = 1;
    }
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
