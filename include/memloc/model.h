/* Models: a graph of layer nodes over named activation values, a named
 * tensor table for parameters, and named taps the metrics read.
 *
 * A model is built once from a config (architecture, input shape, width,
 * head), planned once for a maximum batch (the activation arena), and then
 * run forward (train or eval) and backward by a backend: the plain reference
 * kernels of nn.h, or oneDNN with blocked layouts (reorders only where a user
 * reads a tap and at the edges). Both give the same results within float
 * tolerance; tests compare them. */
#ifndef MEMLOC_MODEL_H
#define MEMLOC_MODEL_H

#include <stdint.h>

#include "memloc/context.h"
#include "memloc/tensor.h"

#define MLOC_OP_LIST(X)                                                          \
    X(CONV2D, "conv2d")                                                          \
    X(BATCHNORM2D, "batchnorm2d")                                                \
    X(RELU, "relu")                                                              \
    X(MAXPOOL2D, "maxpool2d")                                                    \
    X(ADD, "add")                                                                \
    X(FLATTEN, "flatten")                                                        \
    X(LINEAR, "linear")                                                          \
    X(AVGPOOL_GLOBAL, "avgpool_global")                                          \
    X(PATCH_EMBED, "patch_embed")                                                \
    X(CLS_POS, "cls_pos")                                                        \
    X(LAYERNORM, "layernorm")                                                    \
    X(LINEAR_TOKENS, "linear_tokens")                                            \
    X(GELU, "gelu")                                                              \
    X(ATTENTION, "attention")                                                    \
    X(CLS_SELECT, "cls_select")                                                  \
    X(MAE_UNMASK, "mae_unmask")

typedef enum {
#define MLOC_X(name, text) MLOC_OP_##name,
    MLOC_OP_LIST(MLOC_X)
#undef MLOC_X
    MLOC_OP_COUNT
} mloc_op;

const char *mloc_op_name(mloc_op op);

/* An activation value: per-sample shape (C,H,W); fully connected values have
 * H = W = 1. The batch dimension is the run's N. A token sequence (ViT,
 * src/models/vit.c) of T tokens of width D is c = T, h = 1, w = D: per sample
 * a row-major (T, D) matrix, token 0 the CLS token, as timm's (N, T, D). */
typedef struct {
    char name[64];
    int c, h, w;
    int producer;      /* node index, -1 for the model input */
} mloc_value;

typedef struct {
    mloc_op op;
    char name[64];     /* PyTorch module path, e.g. "layer1_head.conv" */
    int in[2];         /* value ids (in[1] only for ADD; -1 otherwise) */
    int out;           /* value id */
    int module;        /* index into model->modules (block), -1 for none */
    union {
        struct { int k, r, s, stride, pad, weight, bias; } conv;        /* bias -1: none */
        struct { float eps, momentum; int weight, bias, mean, var, count; } bn;
        struct { int k, stride, pad; } pool;
        struct { int out_features, weight, bias, drop; } linear; /* also LINEAR_TOKENS; drop: the
                                                              drop-path slot scaling its output in
                                                              training (ViT attn.proj, mlp.fc2), -1 none */
        /* ViT ops (src/models/vit.c; shapes per sample, tokens (T, D)):
         *   PATCH_EMBED    (C, H, W) -> (L, D): Conv2d(C, D, P, stride P), flatten(2).transpose(1, 2)
         *   CLS_POS        (L, D) -> (1 + keep, D): [cls + pos[0]; x[o_j] + pos[1 + o_j]], j < keep,
         *                  o = the sample's patch order (m->patch_order; identity when keep = L)
         *   LAYERNORM      (T, D) over D;  LINEAR_TOKENS (T, I) -> (T, O);  GELU (erf)
         *   ATTENTION      (T, 3D) qkv as timm's (T, 3, H, Dh) -> (T, D), probabilities saved
         *   CLS_SELECT     (T, D) -> (D, 1, 1): token 0, the encoder output
         *   MAE_UNMASK     (1 + keep, D) -> (1 + L, D): MAE's decoder input, tokens back in
         *                  patch order with mask_token at the masked patches, + pos */
        struct { int p, weight, bias; } patch;
        struct { int cls, pos, keep, interp; } tok;         /* CLS_POS; interp: pos is read from
                                                               m->pos_interp (cfg.pos_image_h/w) */
        struct { float eps; int weight, bias; } ln;
        struct { int heads; } attn;
        struct { int mask, pos, keep; } unmask;              /* MAE_UNMASK */
    } u;
} mloc_node;

typedef enum {
    MLOC_UNIT_CHANNEL = 0, /* conv channel: mean over spatial positions (SPEC 4) */
    MLOC_UNIT_NEURON,      /* fully connected neuron */
    MLOC_UNIT_TOKEN_MEAN   /* a feature of a token sequence (T, D): its mean over the T tokens
                              (SPEC 4, ViT: MLP neurons, residual-stream features) */
} mloc_unit_kind;

/* A named point of the forward pass whose output the metrics read. */
typedef struct {
    char name[64];     /* ResNet9 "prep", ..., "res1", ..., "res2"; ResNet18/34/50 "stem",
                          "layer1.0.relu1", [".relu2",] "layer1.0", ... (src/models/resnet.c);
                          ViT "blocks.0.attn", "blocks.0.mlp.act", "blocks.0", ..., "cls"
                          (src/models/vit.c; token taps, signed) */
    int value;
    int units;         /* channels (conv) or neurons */
    mloc_unit_kind unit_kind;
    int nonneg;        /* 1 if activations are >= 0 by construction (post-ReLU) */
    int module;        /* block that produces it, -1 for joins such as res1 */
} mloc_tap;

/* Heads, stored beside the encoder (group MLOC_GROUP_HEAD); m->feature is the
 * encoder's output, m->output the head's:
 *   SIMCLR      head.0 Linear(F, head_hidden) -> head.1 ReLU -> head.2 Linear(head_out)
 *   CLASSIFIER  ResNet9: classifier.0 MaxPool(whole map) -> .1 Flatten -> .2 Linear(head_out);
 *               ResNet18/34/50: fc Linear(head_out)
 *   SIMSIAM     solo-learn's SimSiam projector and predictor (src/models/heads.c):
 *               projector.0 Linear(F, head_hidden, no bias) -> .1 BN -> .2 ReLU
 *               -> .3 Linear(head_hidden, no bias) -> .4 BN -> .5 ReLU
 *               -> .6 Linear(head_out, no bias) -> .7 BN              = z (value "projector.7")
 *               predictor.0 Linear(head_out, pred_hidden, no bias) -> .1 BN -> .2 ReLU
 *               -> .3 Linear(head_out)                                = p (m->output)
 *   DINO        m->output is the global average pool of the encoder's last map (C
 *               values whatever the crop size, so local crops share the tensors); the
 *               DINO head's tensors head.mlp.{0,2,4}.{weight,bias} (Linear-GELU-Linear-
 *               GELU-Linear to head_bottleneck), head.last_layer.weight_g / weight_v
 *               (weight-normalised Linear(head_bottleneck, head_out), g frozen at 1) are
 *               in the table but run outside the graph (src/ssl/dino.c). */
typedef enum {
    MLOC_HEAD_NONE = 0,
    MLOC_HEAD_SIMCLR,
    MLOC_HEAD_CLASSIFIER,
    MLOC_HEAD_SIMSIAM,
    MLOC_HEAD_DINO,
    MLOC_HEAD_MAE          /* ViT only: MAE's decoder (src/models/vit.c), m->output the
                              per-patch pixel predictions (1 + L, P*P*C) */
} mloc_head_kind;

/* Stem of the torchvision ResNets (resnet18/34/50; ResNet9 ignores it):
 *   CIFAR     conv1 3x3 stride 1 padding 1 -> bn1 -> relu (no maxpool): 32x32 stays 32x32.
 *             (solo-learn pads its 3x3 conv1 by 2, giving 34x34; memloc does not.)
 *   IMAGENET  conv1 7x7 stride 2 padding 3 -> bn1 -> relu -> maxpool 3x3 stride 2 padding 1.
 * The parameter names are the same; conv1.weight is [64w, C, 3, 3] or [64w, C, 7, 7]. */
typedef enum { MLOC_STEM_CIFAR = 0, MLOC_STEM_IMAGENET } mloc_stem;

typedef struct {
    const char *arch;      /* "resnet9" (default), "resnet18", "resnet34", "resnet50" */
    int in_channels;       /* default 3 */
    int image_h, image_w;  /* default 32 x 32 */
    double width;          /* channel multiplier, default 1.0 */
    mloc_head_kind head;   /* default SIMCLR */
    int head_hidden;       /* SimCLR head: default 512 */
    int head_out;          /* SimCLR projection dim (128) or classifier classes */
    mloc_stem stem;        /* ResNet18/34/50 stem: default CIFAR */
    int pred_hidden;       /* SimSiam predictor hidden units: default 512 */
    int head_bottleneck;   /* DINO head bottleneck: default 256 */
    int head_bn;           /* DINO head with BatchNorm1d after its hidden Linears (DINOHead's
                              use_bn): mlp.0 Linear, .1 BN, .2 GELU, .3 Linear, .4 BN, .5 GELU,
                              .6 Linear; default 0 (mlp.0, .2, .4 as listed above) */
    /* ViT (vit_tiny / vit_small / vit_base, src/models/vit.c) */
    int patch_size;        /* patch side P: default 4 (32 x 32 images: 8 x 8 patches) */
    int embed_dim;         /* 0: the arch's D (192 / 384 / 768) */
    int depth;             /* 0: the arch's 12 blocks */
    int heads;             /* 0: the arch's (3 / 6 / 12) */
    int decoder_dim;       /* MAE decoder width: default 128 */
    int decoder_depth;     /* MAE decoder blocks: default 2 */
    int decoder_heads;     /* MAE decoder heads: default 4 */
    int mask_keep;         /* MAE: patches the encoder sees; 0 = all (the model the metrics
                              read), else the training graph of src/ssl/mae.c */
    int pos_image_h, pos_image_w; /* ViT: the image size its position embeddings are for; 0 = the
                              input's. Another size (DINO's local crops on a ViT) keeps
                              pos_embed at that grid and interpolates it to the input's grid
                              as DINO's interpolate_pos_encoding (bicubic, scale factor
                              (grid' + 0.1) / grid, src/models/vit.c); the forward and the
                              gradient go through the interpolation */
    double drop_path;      /* ViT stochastic depth, timm's drop_path_rate: block i's attention and
                              MLP branches are dropped per sample in training with probability
                              drop_path * i / (depth - 1) (torch.linspace(0, rate, depth)) and
                              scaled by 1 / (1 - p) when kept; default 0 */
} mloc_model_config;

mloc_model_config mloc_model_config_default(void);
/* Names of the architectures this build knows, NULL-terminated. */
const char *const *mloc_model_archs(void);

typedef enum { MLOC_MODE_EVAL = 0, MLOC_MODE_TRAIN } mloc_mode;

typedef struct mloc_exec mloc_exec; /* backend state, opaque */

typedef struct {
    mloc_model_config cfg;
    char arch[32];
    mloc_table table;
    mloc_store store;
    mloc_node *nodes;
    int n_nodes;
    mloc_value *values;
    int n_values;
    mloc_tap *taps;
    int n_taps;
    char (*modules)[64];  /* block names ("prep", "layer1_head", "head") */
    int n_modules;
    int input;            /* value id of the input (N, C, H, W) */
    int feature;          /* value id of the encoder output (flattened) */
    int output;           /* value id of the head's output (= feature without head) */
    int encoder_nodes;    /* nodes [0, encoder_nodes) are the encoder */
    mloc_exec *exec;
    mloc_backend backend;
    int max_batch;
    uint8_t *bn_eval;     /* per module: 1 = its BN layers run in eval mode even when training */
    int profile;          /* 1: time every node (slower; for benchmarks) */
    int store_shared;     /* 1: `store` is another model's (mloc_model_create_shared) */
    const int32_t *patch_order; /* MAE (cfg.mask_keep > 0): per sample, a permutation of the L
                                   patches, the first mask_keep visible (N x L); the caller's,
                                   set before the forward and kept until the backward */
    /* A ViT whose position-embedding grid (Gh x Gw, cfg.pos_image_h/w) is not its input's
     * (h x w): pos_interp_w (h w x Gh Gw) maps pos_embed's patch rows to the input's;
     * pos_interp ((1 + h w) x D) is what CLS_POS adds, refreshed before every forward;
     * pos_interp_grad its gradient, mapped back onto pos_embed's after every backward.
     * NULL for every other model. */
    float *pos_interp_w, *pos_interp, *pos_interp_grad;
    /* Drop-path (cfg.drop_path > 0): n_drop branches (slots) with rates drop_p; before each
     * training forward, drop_scale[slot * drop_cap + n] gets 0 or 1 / (1 - p) per sample n,
     * drawn from (drop->seed, "drop_path", drop->step, slot, drop_stream) or given
     * (mloc_model_set_drop_scales). `drop` is shared with the models over this one's store
     * (mloc_model_create_shared; their drop_stream differs). */
    int n_drop, drop_cap;
    float *drop_p, *drop_scale;
    uint64_t drop_stream;
    struct mloc_drop_state *drop;
    int pos_interp_rows, pos_interp_cols, pos_interp_entry; /* h w, Gh Gw, pos_embed's table index */
} mloc_model;

mloc_status mloc_model_create(mloc_ctx *ctx, mloc_model **out, const mloc_model_config *cfg);
/* Drop-path randomness of the next training forwards of m and the models
 * sharing its store: (seed, step) name the draw (the training step, so a
 * resumed run draws the same). No-op for models without drop-path. */
void mloc_model_set_drop_step(mloc_model *m, uint64_t seed, uint64_t step);
/* Use these scales (n_drop x N, slot-major, each 0 or 1 / (1 - p)) for the
 * next training forwards of N samples instead of drawing them (tests against
 * fixed masks); mloc_model_set_drop_step draws again. ERR_USAGE when m has
 * no drop-path or N < 1. */
mloc_status mloc_model_set_drop_scales(mloc_ctx *ctx, mloc_model *m, const float *scales, int N);
void mloc_model_free(mloc_model *m);
/* A second model over `owner`'s parameters, gradients, buffers and counters:
 * the graph of cfg (e.g. the same architecture for a smaller input, DINO's
 * local crops) must give a tensor table identical to owner's (names, shapes,
 * offsets), else ERR_USAGE naming the first tensor that differs. Its own
 * activation arena and plan; it runs on owner's backend. Forward passes of
 * either update the shared BN buffers, and backward passes accumulate (+=)
 * into the shared grad block. owner must outlive it; freeing it leaves the
 * store alone. */
mloc_status mloc_model_create_shared(mloc_ctx *ctx, mloc_model **out, const mloc_model_config *cfg,
                                     mloc_model *owner);

/* PyTorch default initialization, each tensor from its own stream
 * ("init", entry index) of the context seed: conv/linear weights
 * kaiming_uniform(a=sqrt 5), i.e. U(+-1/sqrt(fan_in)); biases U(+-1/sqrt(fan_in));
 * BN weight 1, bias 0, running mean 0, var 1, num_batches_tracked 0.
 * The torchvision ResNets (resnet18/34/50) draw their conv weights as
 * torchvision does: kaiming_normal(fan_out, relu), N(0, 2 / (K R S)).
 * The DINO head then follows DINOHead: MLP weights N(0, 0.02^2) (trunc_normal
 * at +-2, which never truncates at that std) from stream ("dino_init", entry),
 * MLP biases 0, last_layer.weight_g 1 (weight_v keeps the Linear default).
 * ViTs then follow timm's init_weights (src/models/vit.c, stream
 * ("vit_init", entry)): Linear weights and position embeddings
 * trunc_normal(0.02), Linear biases 0, cls_token N(0, 1e-6^2), MAE's
 * mask_token N(0, 0.02^2); patch_embed.proj keeps the conv default. */
void mloc_model_init_params(mloc_model *m, uint64_t seed);

/* Allocate the activation arena and backend plans for batches up to
 * max_batch. Must be called before forward; may be called again to grow. */
mloc_status mloc_model_plan(mloc_ctx *ctx, mloc_model *m, int max_batch);

/* Forward x (N, C, H, W) NCHW float. In TRAIN mode BN uses batch statistics
 * and updates running stats; activations are kept for backward. `upto` is a
 * value id: nodes after its producer are not run (-1: run everything). */
mloc_status mloc_model_forward(mloc_ctx *ctx, mloc_model *m, const float *x, int N,
                               mloc_mode mode, int upto);
/* Copy value `v` of the last forward into dst as NCHW float (N*C*H*W). */
mloc_status mloc_model_read(mloc_ctx *ctx, mloc_model *m, int v, float *dst);
/* Backward after a TRAIN forward: dy is the gradient of the loss with respect
 * to value `from` (normally m->output), NCHW. Parameter gradients accumulate
 * (+=) into m->store.grad; call mloc_model_zero_grad first. */
mloc_status mloc_model_backward(mloc_ctx *ctx, mloc_model *m, int from, const float *dy);
void mloc_model_zero_grad(mloc_model *m);
/* Parameters changed outside the model (optimizer step, load): backends that
 * cache reordered weights refresh them on the next forward. */
void mloc_model_params_changed(mloc_model *m);

int mloc_model_find_tap(const mloc_model *m, const char *name);
int mloc_model_find_value(const mloc_model *m, const char *name);
int mloc_model_find_module(const mloc_model *m, const char *name);
/* Element counts of one sample of value v. */
int64_t mloc_model_value_numel(const mloc_model *m, int v);
/* Parameters (trainable) of the encoder only / of everything. */
int64_t mloc_model_param_count(const mloc_model *m, int encoder_only);

/* With m->profile set, seconds spent per node since planning, for the
 * training forward, the eval forward and the backward (arrays of n_nodes).
 * ERR_UNSUPPORTED if the backend does not profile. */
mloc_status mloc_model_profile(mloc_ctx *ctx, const mloc_model *m, double *train_fwd,
                               double *eval_fwd, double *bwd);
/* Multiply-accumulates of node i for one sample (0 for data movement). */
int64_t mloc_model_node_macs(const mloc_model *m, int i);

/* ---- weights files (safetensors with PyTorch names) ------------------
 * memloc writes its model configuration into the file's __metadata__
 * (memloc_arch, memloc_in_channels, memloc_image_h/w, memloc_width,
 * memloc_head, memloc_head_hidden, memloc_head_out; memloc_stem for the
 * torchvision ResNets; memloc_pred_hidden for a SimSiam head,
 * memloc_head_bottleneck and memloc_head_bn for a DINO head). For files
 * without it (exported from PyTorch), the configuration is inferred from the
 * tensor names and shapes:
 * prep.conv.weight [32w, C, 3, 3] gives resnet9 with C input channels and
 * width w; conv1.weight [64w, C, R, R] gives a torchvision ResNet with the
 * CIFAR (R = 3) or ImageNet (R = 7) stem, layer1.0.conv3 a Bottleneck
 * (resnet50) and the number of layer{k}.{i} blocks resnet18 (2-2-2-2) or
 * resnet34/50 (3-4-6-3); projector.0/.6 + predictor.0 (SimSiam),
 * head.mlp.0/.4 (or .6 after head.mlp.1.running_mean: BN) +
 * head.last_layer.weight_v (DINO), head.0 / head.2,
 * classifier.2 (resnet9) or fc (ResNets) give the head. The image size is
 * not in the names: 32 x 32. ViTs write memloc_patch_size / _embed_dim /
 * _depth / _heads (and memloc_decoder_dim / _depth / _heads with the MAE
 * head); a timm state_dict is recognised by patch_embed.proj.weight
 * [D, C, P, P], its image side from pos_embed [1, 1 + L, D] (square), its
 * depth from blocks.i, heads D / 64, MAE's decoder_* names giving the MAE
 * head (src/models/model_io.c). */
struct mloc_st_file;
mloc_status mloc_model_config_from_file(mloc_ctx *ctx, mloc_model_config *cfg,
                                        const struct mloc_st_file *f);
/* Create a model from a weights file and load it. `head` -1 keeps the file's
 * head; otherwise a model with that head is made (head tensors absent from
 * the file keep their init). Errors name the file and the tensor. */
mloc_status mloc_model_open(mloc_ctx *ctx, mloc_model **out, const char *path, int head);
/* Load tensors into an existing model: the encoder must be complete and of
 * matching shapes; head tensors are loaded when present. */
mloc_status mloc_model_load(mloc_ctx *ctx, mloc_model *m, const struct mloc_st_file *f);
/* Save atomically: group MLOC_GROUP_ENCODER, MLOC_GROUP_HEAD or -1 for all,
 * with the configuration metadata and extra (key, value) pairs
 * (NULL-terminated list, may be NULL). */
mloc_status mloc_model_save(mloc_ctx *ctx, const mloc_model *m, const char *path, int group,
                            const char *const *extra_meta);
const char *mloc_head_name(mloc_head_kind h);
int mloc_head_parse(const char *name); /* -1 if unknown */
const char *mloc_stem_name(mloc_stem s); /* "cifar", "imagenet" */
int mloc_stem_parse(const char *name);   /* -1 if unknown */

/* Backend used for this model (AUTO resolves to DNNL when built in). */
mloc_status mloc_model_set_backend(mloc_ctx *ctx, mloc_model *m, mloc_backend b);

#endif
