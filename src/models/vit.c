/* timm's VisionTransformer (FORMATS.md 2.7) as ViT-Tiny / -Small / -Base, and
 * the decoder of MAE (He et al. 2022) for the MAE head.
 *
 * Encoder, per sample (tokens are rows of a (T, D) value, model.h):
 *
 *   x = patch_embed.proj(img)                   Conv2d(C, D, P, stride P), flatten(2).transpose(1, 2)
 *                                               (C, H, W) -> (L, D), L = (H/P)(W/P), raster order
 *   x = [cls_token; x] + pos_embed              (1 + L, D)                              op CLS_POS
 *   for i in 0..depth-1 (module "blocks.i"):
 *     x = x + attn.proj(attention(attn.qkv(norm1(x))))                         -> tap "blocks.i.attn"
 *     h = GELU(mlp.fc1(norm2(x)))               (1 + L, 4D)                    -> tap "blocks.i.mlp.act"
 *     x = x + mlp.fc2(h)                                                       -> tap "blocks.i"
 *   x = norm(x);  feature = x[0]                the CLS token, (D)             -> tap "cls"
 *
 * as timm's VisionTransformer(global_pool="token", class_token=True,
 * qkv_bias=True, mlp_ratio=4, no LayerScale, no dropout; drop-path with
 * cfg.drop_path, see model.h: the rate of block i is drop_path i / (depth - 1)
 * as timm's torch.linspace, applied as a per-sample scale of the output of
 * attn.proj and mlp.fc2 in training, the scales drawn in model.c) with
 * LayerNorm eps 1e-6; Attention as timm.layers.Attention (q k^T / sqrt(Dh),
 * softmax, heads concatenated; the qkv rows q | k | v, head h owning rows
 * h Dh .. (h+1) Dh - 1 of each). Tensor names are timm's state_dict keys.
 * Sizes: vit_tiny D 192 / 3 heads, vit_small 384 / 6, vit_base 768 / 12,
 * depth 12; cfg.embed_dim / depth / heads override them (0: the arch's).
 *
 * Taps: "blocks.i.attn" is the residual stream after the attention branch,
 * "blocks.i" the block output (the two taps of the paper's ViT table),
 * "blocks.i.mlp.act" the MLP's hidden neurons after the GELU, and "cls" the
 * encoder output. The units of a token tap are its features, each one's
 * activation the mean over the tokens (MLOC_UNIT_TOKEN_MEAN, SPEC.md 4); none
 * of them is non-negative (GELU(x) >= -0.17, residual streams are signed),
 * so UnitMem on a ViT needs --abs (the mean over tokens of |a|); without it
 * the metrics stop at the first negative unit mean, naming the tap. Modules:
 * "patch_embed" (with cls_token and pos_embed), "blocks.i", "norm".
 *
 * Heads: SIMCLR head.0 / head.2 on the CLS feature as for the ResNets;
 * CLASSIFIER timm's "head" Linear(D, K); SIMSIAM / DINO as heads.c; MAE the
 * decoder of facebookresearch/mae models_mae.py (names as its state_dict):
 *
 *   d = decoder_embed(x)                        Linear(D, Dd) on the 1 + keep encoder tokens
 *   d = [d[0]; unshuffle([d[1:]; mask_token...])] + decoder_pos_embed        op MAE_UNMASK
 *   decoder_blocks.j (as the encoder's, Dd wide), decoder_norm
 *   out = decoder_pred(d)                       Linear(Dd, P P C): (1 + L, P P C), m->output
 *
 * The MAE training graph (cfg.mask_keep = keep < L) runs the encoder on the
 * visible patches only: CLS_POS gathers the first `keep` patches of each
 * sample's order (m->patch_order, src/ssl/mae.c draws it) after adding their
 * position embeddings, as MAE's random_masking; the model the metrics read
 * (mask_keep 0) sees every patch, and its eval forward stops at the encoder.
 *
 * Initialisation (mloc_vit_init, after the PyTorch defaults), as timm's
 * init_weights(mode="") and MAE's tokens: pos_embed and decoder_pos_embed
 * trunc_normal(std 0.02), cls_token normal(std 1e-6), mask_token
 * normal(std 0.02), every Linear (qkv, proj, fc1, fc2, the classifier head,
 * decoder_embed, decoder_pred) trunc_normal(std 0.02) with zero bias,
 * LayerNorm weight 1 / bias 0; patch_embed.proj keeps PyTorch's Conv2d
 * default (kaiming_uniform(a = sqrt 5) weight, U(+-1/sqrt(fan_in)) bias),
 * which timm leaves alone. trunc_normal truncates at +-2 (absolute), which
 * at std 0.02 never happens: a plain normal. Deviations from MAE: its
 * position embeddings are fixed 2-d sin-cos tables and its Linear layers
 * xavier_uniform; memloc learns both position embeddings (timm's ViT) and
 * initialises the decoder as timm does.
 *
 * References: huggingface/pytorch-image-models timm/models/vision_transformer.py,
 * timm/layers/attention.py; facebookresearch/mae models_mae.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/rng.h"

static const struct {
    const char *name;
    int dim, depth, heads;
} vit_archs[] = {{"vit_tiny", 192, 12, 3}, {"vit_small", 384, 12, 6}, {"vit_base", 768, 12, 12}};

#define N_VIT_ARCHS ((int)(sizeof vit_archs / sizeof vit_archs[0]))

int mloc_vit_arch(const char *arch) {
    for (int i = 0; i < N_VIT_ARCHS; i++)
        if (strcmp(arch, vit_archs[i].name) == 0) return i;
    return -1;
}

/* path (T, D) -> (T, D), LayerNorm over D with eps 1e-6 (timm's ViT). */
static int layernorm(mloc_builder *b, const char *path, int in) {
    if (in < 0 || b->failed) return -1;
    const mloc_value x = b->m->values[in];
    int node;
    int v = mloc_build_node(b, MLOC_OP_LAYERNORM, path, in, -1, x.c, x.h, x.w, &node);
    if (v < 0) return -1;
    const int64_t shape[1] = {x.w};
    int w = mloc_build_param(b, path, "weight", MLOC_ROLE_NORM_WEIGHT, 1, shape);
    int bias = mloc_build_param(b, path, "bias", MLOC_ROLE_NORM_BIAS, 1, shape);
    mloc_node *n = &b->m->nodes[node];
    n->u.ln.eps = 1e-6f;
    n->u.ln.weight = w;
    n->u.ln.bias = bias;
    return v;
}

/* path: Linear over the last dimension, (T, I) -> (T, O), weight [O, I], bias [O]. */
static int linear_tokens(mloc_builder *b, const char *path, int in, int out_features) {
    if (in < 0 || b->failed) return -1;
    const mloc_value x = b->m->values[in];
    int node;
    int v = mloc_build_node(b, MLOC_OP_LINEAR_TOKENS, path, in, -1, x.c, 1, out_features, &node);
    if (v < 0) return -1;
    const int64_t wshape[2] = {out_features, x.w}, bshape[1] = {out_features};
    int w = mloc_build_param(b, path, "weight", MLOC_ROLE_WEIGHT, 2, wshape);
    int bias = mloc_build_param(b, path, "bias", MLOC_ROLE_BIAS, 1, bshape);
    mloc_node *n = &b->m->nodes[node];
    n->u.linear.out_features = out_features;
    n->u.linear.weight = w;
    n->u.linear.bias = bias;
    n->u.linear.drop = -1;
    return v;
}

/* Drop-path on the output of Linear node `v`'s producer with rate p: a new
 * slot of m->drop_p (timm's DropPath(p) around the branch; it follows the
 * branch's last Linear, so the backends scale that Linear's output rows). */
static void drop_path(mloc_builder *b, int v, double p) {
    mloc_model *m = b->m;
    if (v < 0 || b->failed || !(p > 0)) return;
    float *r = realloc(m->drop_p, (size_t)(m->n_drop + 1) * sizeof *r);
    if (!r) {
        b->failed = 1;
        return;
    }
    m->drop_p = r;
    r[m->n_drop] = (float)p;
    m->nodes[m->values[v].producer].u.linear.drop = m->n_drop++;
}

/* A residual sum inside the current block (the block owns its taps). */
static int residual(mloc_builder *b, const char *name, int x, int branch) {
    int v = mloc_build_add(b, name, x, branch);
    if (v >= 0) b->m->nodes[b->m->values[v].producer].module = b->module;
    return v;
}

/* One pre-norm transformer block `path` (timm's Block) on x (T, D) with H
 * heads; taps its outputs when `taps` (the encoder's blocks). */
static int block(mloc_builder *b, const char *path, int x, int H, int taps, double dpr) {
    char name[64], tap[64];
    const mloc_value xv = b->m->values[x >= 0 ? x : 0];
    const int D = xv.w, T = xv.c;
    mloc_build_module(b, path);
    snprintf(name, sizeof name, "%s.norm1", path);
    int h = layernorm(b, name, x);
    snprintf(name, sizeof name, "%s.attn.qkv", path);
    h = linear_tokens(b, name, h, 3 * D);
    /* the attention core: timm's F.scaled_dot_product_attention call */
    snprintf(name, sizeof name, "%s.attn.sdpa", path);
    int node;
    h = h < 0 ? -1 : mloc_build_node(b, MLOC_OP_ATTENTION, name, h, -1, T, 1, D, &node);
    if (h >= 0) b->m->nodes[node].u.attn.heads = H;
    snprintf(name, sizeof name, "%s.attn.proj", path);
    h = linear_tokens(b, name, h, D);
    drop_path(b, h, dpr);
    snprintf(name, sizeof name, "%s.add_attn", path);
    x = residual(b, name, x, h);
    snprintf(tap, sizeof tap, "%s.attn", path);
    if (taps) mloc_build_tap(b, tap, x, MLOC_UNIT_TOKEN_MEAN, 0);
    snprintf(name, sizeof name, "%s.norm2", path);
    h = layernorm(b, name, x);
    snprintf(name, sizeof name, "%s.mlp.fc1", path);
    h = linear_tokens(b, name, h, 4 * D);
    snprintf(name, sizeof name, "%s.mlp.act", path);
    h = h < 0 ? -1 : mloc_build_node(b, MLOC_OP_GELU, name, h, -1, T, 1, 4 * D, &node);
    if (taps) mloc_build_tap(b, name, h, MLOC_UNIT_TOKEN_MEAN, 0);
    snprintf(name, sizeof name, "%s.mlp.fc2", path);
    h = linear_tokens(b, name, h, D);
    drop_path(b, h, dpr);
    snprintf(name, sizeof name, "%s.add_mlp", path);
    x = residual(b, name, x, h);
    if (taps) mloc_build_tap(b, path, x, MLOC_UNIT_TOKEN_MEAN, 0);
    return x;
}

/* MAE's decoder on the normalised encoder tokens `enc` (1 + keep, D). */
static int mae_decoder(mloc_builder *b, int enc, int L, int keep) {
    mloc_model *m = b->m;
    const mloc_model_config *cfg = &m->cfg;
    const int Dd = cfg->decoder_dim, P = cfg->patch_size;
    mloc_build_module(b, "decoder");
    const int64_t tok[3] = {1, 1, Dd}, pos[3] = {1, 1 + L, Dd};
    int mask = mloc_build_param(b, "mask_token", NULL, MLOC_ROLE_EMBEDDING, 3, tok);
    int dpos = mloc_build_param(b, "decoder_pos_embed", NULL, MLOC_ROLE_EMBEDDING, 3, pos);
    int d = linear_tokens(b, "decoder_embed", enc, Dd);
    int node;
    d = d < 0 ? -1 : mloc_build_node(b, MLOC_OP_MAE_UNMASK, "decoder_unmask", d, -1, 1 + L, 1, Dd, &node);
    if (d >= 0) {
        mloc_node *n = &m->nodes[node];
        n->u.unmask.mask = mask;
        n->u.unmask.pos = dpos;
        n->u.unmask.keep = keep;
    }
    for (int j = 0; j < cfg->decoder_depth; j++) {
        char path[64];
        snprintf(path, sizeof path, "decoder_blocks.%d", j);
        d = block(b, path, d, cfg->decoder_heads, 0, 0.0);
    }
    mloc_build_module(b, "decoder_head");
    d = layernorm(b, "decoder_norm", d);
    return linear_tokens(b, "decoder_pred", d, P * P * cfg->in_channels);
}

/* ---- position embeddings for another input size ------------------------
 * DINO's VisionTransformer.interpolate_pos_encoding, for an input whose patch
 * grid h x w is not the grid Gh x Gw the embeddings are learned for:
 *
 *   patch_pos_embed = F.interpolate(pos[1:].reshape(1, Gh, Gw, D).permute(0, 3, 1, 2),
 *                                   scale_factor=((h + 0.1) / Gh, (w + 0.1) / Gw), mode="bicubic")
 *   pos' = [pos[0]; patch_pos_embed.permute(0, 2, 3, 1).view(h w, D)]
 *
 * (DINO computes both factors from the width: the same for square grids, the
 * only ones it uses.) PyTorch's bicubic with align_corners=False and a given
 * scale factor s samples output o at src = (o + 0.5) / s - 0.5, with the
 * cubic convolution (A = -0.75) over the 4 neighbours floor(src) - 1 .. + 2,
 * indices clamped to the grid (aten/src/ATen/native/UpSample.h). It is
 * separable and linear, so pos'[1:] = (Ah (x) Aw) pos[1:]: one (h w x Gh Gw)
 * matrix, and the gradient its transpose. */
static double cubic1(double x) { return ((-0.75 + 2) * x - (-0.75 + 3)) * x * x + 1; }
static double cubic2(double x) { return ((-0.75 * x - 5 * -0.75) * x + 8 * -0.75) * x - 4 * -0.75; }

/* a (n x g): n outputs interpolated from g inputs at scale factor (n + 0.1) / g */
static void bicubic_axis(double *a, int n, int g) {
    const double scale = 1.0 / ((n + 0.1) / g);
    memset(a, 0, (size_t)n * g * sizeof *a);
    for (int o = 0; o < n; o++) {
        const double real = scale * (o + 0.5) - 0.5;
        int idx = (int)floor(real);
        if (idx > g - 1) idx = g - 1;
        const double t = fmin(fmax(real - idx, 0.0), 1.0);
        const double w[4] = {cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)};
        for (int j = 0; j < 4; j++) {
            int k = idx + j - 1;
            k = k < 0 ? 0 : k > g - 1 ? g - 1 : k;
            a[(int64_t)o * g + k] += w[j];
        }
    }
}

static mloc_status pos_interp_plan(mloc_ctx *ctx, mloc_model *m, int entry, int h, int w, int gh, int gw, int D) {
    const int rows = h * w, cols = gh * gw;
    double *ah = malloc((size_t)h * gh * sizeof *ah), *aw = malloc((size_t)w * gw * sizeof *aw);
    m->pos_interp_w = malloc((size_t)rows * cols * sizeof(float));
    m->pos_interp = malloc((size_t)(1 + rows) * D * sizeof(float));
    m->pos_interp_grad = malloc((size_t)(1 + rows) * D * sizeof(float));
    if (!ah || !aw || !m->pos_interp_w || !m->pos_interp || !m->pos_interp_grad) {
        free(ah), free(aw);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory for the position-embedding interpolation",
                          m->arch);
    }
    bicubic_axis(ah, h, gh);
    bicubic_axis(aw, w, gw);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int i = 0; i < gh; i++)
                for (int j = 0; j < gw; j++)
                    m->pos_interp_w[(int64_t)(y * w + x) * cols + i * gw + j] =
                        (float)(ah[(int64_t)y * gh + i] * aw[(int64_t)x * gw + j]);
    free(ah), free(aw);
    m->pos_interp_rows = rows;
    m->pos_interp_cols = cols;
    m->pos_interp_entry = entry;
    return MLOC_OK;
}

void mloc_vit_pos_forward(mloc_model *m) {
    if (!m->pos_interp_w) return;
    const mloc_tensor *e = &m->table.t[m->pos_interp_entry];
    const int D = (int)e->shape[2], rows = m->pos_interp_rows, cols = m->pos_interp_cols;
    const float *pos = mloc_store_ptr(&m->store, &m->table, m->pos_interp_entry);
    memcpy(m->pos_interp, pos, (size_t)D * sizeof(float));
    for (int t = 0; t < rows; t++) {
        const float *wt = m->pos_interp_w + (int64_t)t * cols;
        for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int k = 0; k < cols; k++) acc += (double)wt[k] * pos[(int64_t)(1 + k) * D + d];
            m->pos_interp[(int64_t)(1 + t) * D + d] = (float)acc;
        }
    }
    memset(m->pos_interp_grad, 0, (size_t)(1 + rows) * D * sizeof(float));
}

void mloc_vit_pos_backward(mloc_model *m) {
    if (!m->pos_interp_w) return;
    const mloc_tensor *e = &m->table.t[m->pos_interp_entry];
    const int D = (int)e->shape[2], rows = m->pos_interp_rows, cols = m->pos_interp_cols;
    float *dpos = m->store.grad + e->offset;
    const float *g = m->pos_interp_grad;
    for (int d = 0; d < D; d++) dpos[d] += g[d];
    for (int k = 0; k < cols; k++)
        for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int t = 0; t < rows; t++) acc += (double)m->pos_interp_w[(int64_t)t * cols + k] * g[(int64_t)(1 + t) * D + d];
            dpos[(int64_t)(1 + k) * D + d] += (float)acc;
        }
}

mloc_status mloc_vit_build(mloc_ctx *ctx, mloc_builder *b) {
    mloc_model *m = b->m;
    const mloc_model_config *cfg = &m->cfg;
    const int a = mloc_vit_arch(m->arch);
    if (a < 0) return mloc_error(ctx, MLOC_ERR_USAGE, "vit: unknown architecture '%s'", m->arch);
    const int D = cfg->embed_dim > 0 ? cfg->embed_dim : vit_archs[a].dim;
    const int depth = cfg->depth > 0 ? cfg->depth : vit_archs[a].depth;
    const int H = cfg->heads > 0 ? cfg->heads : vit_archs[a].heads;
    const int P = cfg->patch_size, C = cfg->in_channels;
    if (cfg->embed_dim < 0 || cfg->depth < 0 || cfg->heads < 0 || D % H != 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: width %d with %d heads (depth %d): expected a width divisible "
                          "by the heads", m->arch, D, H, depth);
    if (P < 1 || cfg->image_h < P || cfg->image_w < P || cfg->image_h % P || cfg->image_w % P)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: image %dx%d, patch size %d: expected sides divisible by the patch",
                          m->arch, cfg->image_h, cfg->image_w, P);
    const int L = (cfg->image_h / P) * (cfg->image_w / P);
    const int keep = cfg->mask_keep > 0 ? cfg->mask_keep : L;
    const int pos_h = cfg->pos_image_h > 0 ? cfg->pos_image_h : cfg->image_h;
    const int pos_w = cfg->pos_image_w > 0 ? cfg->pos_image_w : cfg->image_w;
    if (cfg->pos_image_h < 0 || cfg->pos_image_w < 0 || pos_h < P || pos_w < P || pos_h % P || pos_w % P)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: position embeddings for %dx%d images, patch size %d: expected "
                          "sides divisible by the patch", m->arch, pos_h, pos_w, P);
    const int Lp = (pos_h / P) * (pos_w / P), interp = Lp != L || pos_h != cfg->image_h;
    if (interp && keep < L)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: MAE masking on %dx%d images with position embeddings for "
                          "%dx%d: expected the same size", m->arch, cfg->image_h, cfg->image_w, pos_h, pos_w);
    if (cfg->mask_keep < 0 || keep > L || (keep < L && cfg->head != MLOC_HEAD_MAE))
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: %d visible patches of %d: expected 1..%d, and fewer than all "
                          "only for the MAE head", m->arch, cfg->mask_keep, L, L);
    if (!(cfg->drop_path >= 0 && cfg->drop_path < 1))
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: drop-path rate %g: expected [0, 1)", m->arch, cfg->drop_path);
    if (cfg->head == MLOC_HEAD_MAE &&
        (cfg->decoder_dim < 1 || cfg->decoder_depth < 0 || cfg->decoder_heads < 1 ||
         cfg->decoder_dim % cfg->decoder_heads))
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: MAE decoder width %d, depth %d, heads %d: expected a width "
                          "divisible by the heads", m->arch, cfg->decoder_dim, cfg->decoder_depth,
                          cfg->decoder_heads);

    int x = mloc_build_input(b, C, cfg->image_h, cfg->image_w);
    mloc_build_module(b, "patch_embed");
    const int64_t tok[3] = {1, 1, D}, pos[3] = {1, 1 + Lp, D};
    const int64_t wshape[4] = {D, C, P, P}, bshape[1] = {D};
    int cls = mloc_build_param(b, "cls_token", NULL, MLOC_ROLE_EMBEDDING, 3, tok);
    int pe = mloc_build_param(b, "pos_embed", NULL, MLOC_ROLE_EMBEDDING, 3, pos);
    int node;
    x = mloc_build_node(b, MLOC_OP_PATCH_EMBED, "patch_embed.proj", x, -1, L, 1, D, &node);
    if (x >= 0) {
        int w = mloc_build_param(b, "patch_embed.proj", "weight", MLOC_ROLE_WEIGHT, 4, wshape);
        int bias = mloc_build_param(b, "patch_embed.proj", "bias", MLOC_ROLE_BIAS, 1, bshape);
        mloc_node *n = &m->nodes[node];
        n->u.patch.p = P;
        n->u.patch.weight = w;
        n->u.patch.bias = bias;
    }
    x = x < 0 ? -1 : mloc_build_node(b, MLOC_OP_CLS_POS, "pos_embed", x, -1, 1 + keep, 1, D, &node);
    if (x >= 0) {
        mloc_node *n = &m->nodes[node];
        n->u.tok.cls = cls;
        n->u.tok.pos = pe;
        n->u.tok.keep = keep;
        n->u.tok.interp = interp;
    }
    if (interp && pe >= 0) {
        mloc_status st = pos_interp_plan(ctx, m, pe, cfg->image_h / P, cfg->image_w / P, pos_h / P, pos_w / P, D);
        if (st != MLOC_OK) return st;
    }
    for (int i = 0; i < depth; i++) {
        char path[64];
        snprintf(path, sizeof path, "blocks.%d", i);
        x = block(b, path, x, H, 1, depth > 1 ? cfg->drop_path * i / (depth - 1) : 0.0);
    }
    mloc_build_module(b, "norm");
    int enc = layernorm(b, "norm", x);
    m->feature = enc < 0 ? -1 : mloc_build_node(b, MLOC_OP_CLS_SELECT, "cls", enc, -1, D, 1, 1, &node);
    mloc_build_tap(b, "cls", m->feature, MLOC_UNIT_NEURON, 0);
    m->encoder_nodes = m->n_nodes;

    /* heads: stored beside the encoder, never part of a tap */
    b->group = MLOC_GROUP_HEAD;
    if (cfg->head == MLOC_HEAD_SIMCLR) {
        mloc_build_module(b, "head");
        int h = mloc_build_linear(b, "head.0", m->feature, cfg->head_hidden, 1);
        h = mloc_build_relu(b, "head.1", h);
        m->output = mloc_build_linear(b, "head.2", h, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_CLASSIFIER) {
        mloc_build_module(b, "head");
        m->output = mloc_build_linear(b, "head", m->feature, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_SIMSIAM || cfg->head == MLOC_HEAD_DINO) {
        mloc_status st = mloc_build_ssl_head(ctx, b, m->feature, m->feature, &m->output);
        if (st != MLOC_OK) return st;
    } else if (cfg->head == MLOC_HEAD_MAE) {
        m->output = mae_decoder(b, enc, L, keep);
    } else {
        m->output = m->feature;
    }
    if (b->failed || m->output < 0)
        return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory building the graph", m->arch);
    return MLOC_OK;
}

/* timm's trunc_normal_(std, a=-2, b=2): a normal redrawn outside [-2, 2]. */
static float trunc_normal(mloc_rng *r, double std) {
    for (;;) {
        double v = std * mloc_rng_normal(r);
        if (v >= -2.0 && v <= 2.0) return (float)v;
    }
}

static int is_linear_of(const mloc_model *m, int entry) {
    /* a Linear weight or bias of the ViT (encoder, MAE decoder, timm's classifier head) */
    for (int i = 0; i < m->n_nodes; i++) {
        const mloc_node *n = &m->nodes[i];
        if (n->op == MLOC_OP_LINEAR_TOKENS && (n->u.linear.weight == entry || n->u.linear.bias == entry)) return 1;
        if (n->op == MLOC_OP_LINEAR && m->cfg.head == MLOC_HEAD_CLASSIFIER &&
            (n->u.linear.weight == entry || n->u.linear.bias == entry))
            return 1;
    }
    return 0;
}

void mloc_vit_init(mloc_model *m, uint64_t seed) {
    const mloc_table *tab = &m->table;
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        float *p = mloc_store_ptr(&m->store, tab, i);
        mloc_rng r;
        mloc_rng_init_tag(&r, seed, "vit_init", (uint64_t)i, 0, 0);
        if (strcmp(e->name, "pos_embed") == 0 || strcmp(e->name, "decoder_pos_embed") == 0) {
            for (int64_t k = 0; k < e->numel; k++) p[k] = trunc_normal(&r, 0.02);
        } else if (strcmp(e->name, "cls_token") == 0) {
            for (int64_t k = 0; k < e->numel; k++) p[k] = (float)(1e-6 * mloc_rng_normal(&r));
        } else if (strcmp(e->name, "mask_token") == 0) {
            for (int64_t k = 0; k < e->numel; k++) p[k] = (float)(0.02 * mloc_rng_normal(&r));
        } else if (is_linear_of(m, i)) {
            if (e->role == MLOC_ROLE_WEIGHT)
                for (int64_t k = 0; k < e->numel; k++) p[k] = trunc_normal(&r, 0.02);
            else
                memset(p, 0, (size_t)e->numel * sizeof *p);
        }
    }
}
