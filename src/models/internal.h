/* Model internals shared by the builders (resnet9.c, ...), model.c and the
 * backends (exec_ref.c, kernels/dnnl/exec_dnnl.c). */
#ifndef MLOC_MODELS_INTERNAL_H
#define MLOC_MODELS_INTERNAL_H

#include "memloc/model.h"

/* ---- graph building ------------------------------------------------------
 * Each call appends a node (and its output value, and its parameters to the
 * table with PyTorch names derived from `path`), asserts shapes, and returns
 * the output value id, or -1 after an allocation failure (then
 * m->build_failed is set). */
typedef struct {
    mloc_model *m;
    int module;        /* current module for new nodes / parameters */
    mloc_group group;  /* current parameter group */
    int failed;
} mloc_builder;

int mloc_build_module(mloc_builder *b, const char *name);
int mloc_build_input(mloc_builder *b, int c, int h, int w);
int mloc_build_conv(mloc_builder *b, const char *path, int in, int k, int r, int stride,
                    int pad, int bias);
int mloc_build_bn(mloc_builder *b, const char *path, int in);
int mloc_build_relu(mloc_builder *b, const char *path, int in);
int mloc_build_maxpool(mloc_builder *b, const char *path, int in, int k, int stride, int pad);
int mloc_build_add(mloc_builder *b, const char *name, int a, int c);
int mloc_build_flatten(mloc_builder *b, const char *name, int in);
int mloc_build_linear(mloc_builder *b, const char *path, int in, int out_features, int bias);
int mloc_build_avgpool_global(mloc_builder *b, const char *name, int in);
/* Any op: a node reading in0 [and in1] whose output is a fresh value of
 * per-sample shape (c, h, w); the caller fills the node's union (through
 * b->m->nodes[*node], *node its index). Returns the value id, or -1 (and
 * *node -1) after a failure. The ViT ops are built this way (vit.c). */
int mloc_build_node(mloc_builder *b, mloc_op op, const char *name, int in0, int in1, int c, int h, int w,
                    int *node);
/* A parameter "path.leaf" (or "path" when leaf is NULL: cls_token, pos_embed)
 * of the current module and group; its table index, or -1. */
int mloc_build_param(mloc_builder *b, const char *path, const char *leaf, mloc_role role, int ndim,
                     const int64_t *shape);
/* Name value v (its tap name) and register it as a tap. */
int mloc_build_tap(mloc_builder *b, const char *name, int v, mloc_unit_kind kind, int nonneg);
void mloc_build_rename(mloc_builder *b, int v, const char *name);

/* Architecture builders: fill m's graph from m->cfg. */
mloc_status mloc_resnet9_build(mloc_ctx *ctx, mloc_builder *b);
/* torchvision resnet18 / resnet34 / resnet50 (src/models/resnet.c). */
mloc_status mloc_resnet_build(mloc_ctx *ctx, mloc_builder *b);
/* timm ViT vit_tiny / vit_small / vit_base, with MAE's decoder for the MAE
 * head (src/models/vit.c); mloc_vit_init: timm's initialisation of its
 * tensors after the PyTorch defaults. */
mloc_status mloc_vit_build(mloc_ctx *ctx, mloc_builder *b);
int mloc_vit_arch(const char *arch);
void mloc_vit_init(mloc_model *m, uint64_t seed);
/* A ViT with cfg.pos_image_h/w (m->pos_interp_w set; no-ops otherwise):
 * _forward refreshes m->pos_interp from pos_embed and zeroes its gradient
 * (before every forward, so each backward starts from zero); _backward adds
 * m->pos_interp_grad, mapped back through the interpolation, to pos_embed's
 * gradient (after every backward). */
void mloc_vit_pos_forward(mloc_model *m);
void mloc_vit_pos_backward(mloc_model *m);

/* SimSiam projector + predictor, or the DINO head's tensors (src/models/heads.c,
 * the layouts in model.h): appended after the encoder, reading `feature`
 * (N, F, 1, 1) (SimSiam) or the encoder's last map `map` (DINO, pooled).
 * Sets *output; ERR_USAGE for head sizes < 1. */
mloc_status mloc_build_ssl_head(mloc_ctx *ctx, mloc_builder *b, int feature, int map, int *output);
/* Method-specific initialisation of a head after the PyTorch defaults
 * (DINO: trunc_normal(std 0.02) MLP weights, zero biases, g = 1). */
void mloc_ssl_head_init(mloc_model *m, uint64_t seed);

/* ---- backends ---------------------------------------------------------- */
typedef struct {
    const char *name;
    mloc_status (*plan)(mloc_ctx *ctx, mloc_model *m, int max_batch);
    mloc_status (*forward)(mloc_ctx *ctx, mloc_model *m, const float *x, int N, mloc_mode mode,
                           int last_node);
    mloc_status (*read)(mloc_ctx *ctx, mloc_model *m, int v, float *dst);
    mloc_status (*backward)(mloc_ctx *ctx, mloc_model *m, int from, const float *dy);
    void (*params_changed)(mloc_model *m);
    void (*free)(mloc_exec *e);
    /* seconds per node accumulated while m->profile is set (may be NULL) */
    void (*profile)(const mloc_model *m, double *train_fwd, double *eval_fwd, double *bwd);
} mloc_backend_ops;

struct mloc_exec {
    const mloc_backend_ops *ops;
    int N;          /* batch of the last forward */
    mloc_mode mode; /* mode of the last forward */
    int last_node;  /* last node run by it */
};

extern const mloc_backend_ops mloc_backend_ref_ops;
extern const mloc_backend_ops mloc_backend_dnnl_ops;

/* Number of nodes that read value v (for gradient accumulation). */
int mloc_value_consumers(const mloc_model *m, int v);
/* Whether BN node i runs in training mode for a forward in `mode`. */
int mloc_bn_training(const mloc_model *m, int node, mloc_mode mode);
/* Running-stat update shared by the backends (PyTorch semantics):
 * mean' = (1-m) mean + m batch_mean; var' = (1-m) var + m batch_var_biased * n/(n-1). */
void mloc_bn_update_running(float *running_mean, float *running_var, int64_t *count,
                            const float *batch_mean, const float *batch_var_biased, int C,
                            int64_t n, float momentum);

#endif
