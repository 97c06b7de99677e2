/* The paper's slim ResNet9 (SPEC.md section 5, FORMATS.md 2.5): eight
 * Conv3x3(pad 1, bias) -> BatchNorm2d -> ReLU [-> MaxPool2d(2)] blocks and two
 * residual sums taken after the ReLU, with no ReLU after the sum:
 *
 *   x = layer1_head(prep(in))
 *   x = layer1_residual2(layer1_residual1(x)) + x        -> res1
 *   x = layer3_head(layer2(x))
 *   x = layer3_residual2(layer3_residual1(x)) + x        -> res2
 *
 * Reference: sprintml/LocalizingMemorizationInSSL,
 * SimCLR/simclr/modules/resnet9model.py. Names match its state_dict. */
#include <math.h>
#include <stdio.h>

#include "internal.h"

static int width(const mloc_model_config *cfg, int c) {
    int w = (int)lround(c * cfg->width);
    return w < 1 ? 1 : w;
}

/* conv -> batch -> relu [-> pool]; the block's output is the tap `name`. */
static int block(mloc_builder *b, const char *name, int in, int channels, int pool) {
    char path[64];
    mloc_build_module(b, name);
    snprintf(path, sizeof path, "%s.conv", name);
    int v = mloc_build_conv(b, path, in, channels, 3, 1, 1, 1);
    snprintf(path, sizeof path, "%s.batch", name);
    v = mloc_build_bn(b, path, v);
    snprintf(path, sizeof path, "%s.relu", name);
    v = mloc_build_relu(b, path, v);
    if (pool) {
        snprintf(path, sizeof path, "%s.pool", name);
        v = mloc_build_maxpool(b, path, v, 2, 2, 0);
    }
    mloc_build_tap(b, name, v, MLOC_UNIT_CHANNEL, 1);
    return v;
}

mloc_status mloc_resnet9_build(mloc_ctx *ctx, mloc_builder *b) {
    mloc_model *m = b->m;
    const mloc_model_config *cfg = &m->cfg;
    if (cfg->image_h < 16 || cfg->image_w < 16)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "resnet9: input %dx%d is too small (four 2x2 max-pools need at least 16x16)",
                          cfg->image_h, cfg->image_w);
    int x = mloc_build_input(b, cfg->in_channels, cfg->image_h, cfg->image_w);
    x = block(b, "prep", x, width(cfg, 32), 1);
    x = block(b, "layer1_head", x, width(cfg, 64), 1);
    int r = block(b, "layer1_residual1", x, width(cfg, 64), 0);
    r = block(b, "layer1_residual2", r, width(cfg, 64), 0);
    x = mloc_build_add(b, "res1", r, x);
    mloc_build_tap(b, "res1", x, MLOC_UNIT_CHANNEL, 1);
    x = block(b, "layer2", x, width(cfg, 128), 1);
    x = block(b, "layer3_head", x, width(cfg, 256), 1);
    r = block(b, "layer3_residual1", x, width(cfg, 256), 0);
    r = block(b, "layer3_residual2", r, width(cfg, 256), 0);
    x = mloc_build_add(b, "res2", r, x);
    mloc_build_tap(b, "res2", x, MLOC_UNIT_CHANNEL, 1);
    m->encoder_nodes = m->n_nodes;

    /* heads: stored beside the encoder, never part of a tap */
    b->group = MLOC_GROUP_HEAD;
    if (cfg->head == MLOC_HEAD_SIMCLR) {
        int f = mloc_build_flatten(b, "flatten", x);
        m->feature = f;
        mloc_build_module(b, "head");
        int h = mloc_build_linear(b, "head.0", f, cfg->head_hidden, 1);
        h = mloc_build_relu(b, "head.1", h);
        m->output = mloc_build_linear(b, "head.2", h, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_CLASSIFIER) {
        /* MaxPool2d over the whole map, Flatten, Linear: classifier.2.* as in
         * the reference supervised ResNet9. */
        int f = mloc_build_flatten(b, "flatten", x);
        m->feature = f;
        mloc_build_module(b, "classifier");
        const mloc_value res2 = m->values[x];
        int p = mloc_build_maxpool(b, "classifier.0", x, res2.h, res2.h, 0);
        p = mloc_build_flatten(b, "classifier.1", p);
        m->output = mloc_build_linear(b, "classifier.2", p, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_SIMSIAM || cfg->head == MLOC_HEAD_DINO) {
        /* projector / predictor on the flattened map; DINO pools the map (src/models/heads.c) */
        m->feature = mloc_build_flatten(b, "flatten", x);
        mloc_status st = mloc_build_ssl_head(ctx, b, m->feature, x, &m->output);
        if (st != MLOC_OK) return st;
    } else {
        m->feature = mloc_build_flatten(b, "flatten", x);
        m->output = m->feature;
    }
    if (b->failed) return mloc_error(ctx, MLOC_ERR_NOMEM, "resnet9: out of memory building the graph");
    return MLOC_OK;
}
