/* torchvision's ResNet18 / ResNet34 (BasicBlock) and ResNet50 (Bottleneck,
 * v1.5: the stride sits in the 3x3 conv2), FORMATS.md 2.6, with the names of
 * torchvision.models.resnet's state_dict (conv layers without bias) and two
 * stems (mloc_stem in model.h):
 *
 *   x = stem(in)      conv1 -> bn1 -> relu [-> maxpool]                -> tap "stem"
 *   for layer k = 1..4 (planes 64, 128, 256, 512 times cfg->width), block i:
 *     BasicBlock:  r = relu(bn1(conv1(x)))      3x3, stride            -> tap "layer{k}.{i}.relu1"
 *                  r = bn2(conv2(r))            3x3
 *     Bottleneck:  r = relu(bn1(conv1(x)))      1x1                    -> tap "layer{k}.{i}.relu1"
 *                  r = relu(bn2(conv2(r)))      3x3, stride            -> tap "layer{k}.{i}.relu2"
 *                  r = bn3(conv3(r))            1x1, planes x 4
 *     x = relu(r + shortcut(x))                                         -> tap "layer{k}.{i}"
 *     shortcut(x) = downsample.1(downsample.0(x)), a 1x1 conv with the
 *     block's stride and a BN, where the stride (2 in the first block of
 *     layers 2-4) or the channel count changes; x itself otherwise.
 *   feature = flatten(avgpool(x))              512 x expansion x width values
 *
 * Taps: every tap is a post-ReLU value (nonneg) whose units are channels (a
 * unit's activation is the mean over positions, SPEC.md 4): "relu{j}" is the
 * j-th ReLU call of torchvision's shared block.relu, i.e. conv{j} -> bn{j}
 * -> relu, and the block's tap is its output after the residual sum and the
 * last ReLU. The signed values (bn2 of a BasicBlock, bn3 of a Bottleneck, the
 * sum before its ReLU) are not taps. Modules (what fine-tuning and BN
 * freezing address): "stem" (conv1, bn1) and one per block, "layer{k}.{i}",
 * holding its convs, BNs and downsample.
 *
 * Heads, outside the encoder: SimCLR head.0 (feature -> head_hidden), ReLU,
 * head.2 (-> head_out) as for ResNet9; or the classifier fc (feature ->
 * head_out classes), named as torchvision's.
 *
 * Reference: pytorch/vision torchvision/models/resnet.py (0.14.1). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int width(const mloc_model_config *cfg, int c) {
    int w = (int)lround(c * cfg->width);
    return w < 1 ? 1 : w;
}

/* path.conv{j} (r x r, padding r / 2, no bias) -> path.bn{j} [-> path.relu{j},
 * a tap]: (N, C, H, W) -> (N, k, ceil(H / stride), ceil(W / stride)). */
static int conv_bn(mloc_builder *b, const char *path, int j, int in, int k, int r, int stride,
                   int relu) {
    char name[64];
    snprintf(name, sizeof name, "%s.conv%d", path, j);
    int v = mloc_build_conv(b, name, in, k, r, stride, r / 2, 0);
    snprintf(name, sizeof name, "%s.bn%d", path, j);
    v = mloc_build_bn(b, name, v);
    if (!relu) return v;
    snprintf(name, sizeof name, "%s.relu%d", path, j);
    v = mloc_build_relu(b, name, v);
    mloc_build_tap(b, name, v, MLOC_UNIT_CHANNEL, 1);
    return v;
}

/* One residual block (module `path`): x (N, inplanes, H, W) ->
 * (N, planes x expansion, ceil(H / stride), ceil(W / stride)); the sum
 * asserts that both branches agree. */
static int block(mloc_builder *b, const char *path, int x, int inplanes, int planes, int stride,
                 int bottleneck) {
    const int expansion = bottleneck ? 4 : 1;
    char name[64];
    mloc_build_module(b, path);
    int r;
    if (bottleneck) {
        r = conv_bn(b, path, 1, x, planes, 1, 1, 1);
        r = conv_bn(b, path, 2, r, planes, 3, stride, 1);
        r = conv_bn(b, path, 3, r, planes * expansion, 1, 1, 0);
    } else {
        r = conv_bn(b, path, 1, x, planes, 3, stride, 1);
        r = conv_bn(b, path, 2, r, planes, 3, 1, 0);
    }
    int shortcut = x;
    if (stride != 1 || inplanes != planes * expansion) {
        snprintf(name, sizeof name, "%s.downsample.0", path);
        shortcut = mloc_build_conv(b, name, x, planes * expansion, 1, stride, 0, 0);
        snprintf(name, sizeof name, "%s.downsample.1", path);
        shortcut = mloc_build_bn(b, name, shortcut);
    }
    /* the sum's gradient goes to both the residual branch and the shortcut */
    snprintf(name, sizeof name, "%s.add", path);
    int y = mloc_build_add(b, name, r, shortcut);
    snprintf(name, sizeof name, "%s.relu", path);
    y = mloc_build_relu(b, name, y);
    mloc_build_tap(b, path, y, MLOC_UNIT_CHANNEL, 1);
    return y;
}

mloc_status mloc_resnet_build(mloc_ctx *ctx, mloc_builder *b) {
    mloc_model *m = b->m;
    const mloc_model_config *cfg = &m->cfg;
    static const int basic18[4] = {2, 2, 2, 2}, deep[4] = {3, 4, 6, 3};
    const int *blocks;
    int bottleneck = 0;
    if (strcmp(m->arch, "resnet18") == 0) {
        blocks = basic18;
    } else if (strcmp(m->arch, "resnet34") == 0) {
        blocks = deep;
    } else if (strcmp(m->arch, "resnet50") == 0) {
        blocks = deep;
        bottleneck = 1;
    } else {
        return mloc_error(ctx, MLOC_ERR_USAGE, "resnet: unknown architecture '%s'", m->arch);
    }
    if (cfg->stem != MLOC_STEM_CIFAR && cfg->stem != MLOC_STEM_IMAGENET)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: stem %d: expected cifar or imagenet", m->arch,
                          (int)cfg->stem);
    if (cfg->image_h < 1 || cfg->image_w < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: input %dx%d: expected at least 1x1", m->arch,
                          cfg->image_h, cfg->image_w);
    const int expansion = bottleneck ? 4 : 1;

    int x = mloc_build_input(b, cfg->in_channels, cfg->image_h, cfg->image_w);
    int inplanes = width(cfg, 64);
    mloc_build_module(b, "stem");
    if (cfg->stem == MLOC_STEM_IMAGENET) {
        x = mloc_build_conv(b, "conv1", x, inplanes, 7, 2, 3, 0);
        x = mloc_build_bn(b, "bn1", x);
        x = mloc_build_relu(b, "relu", x);
        x = mloc_build_maxpool(b, "maxpool", x, 3, 2, 1);
    } else {
        x = mloc_build_conv(b, "conv1", x, inplanes, 3, 1, 1, 0);
        x = mloc_build_bn(b, "bn1", x);
        x = mloc_build_relu(b, "relu", x);
    }
    mloc_build_tap(b, "stem", x, MLOC_UNIT_CHANNEL, 1);
    for (int k = 0; k < 4; k++) {
        const int planes = width(cfg, 64 << k);
        for (int i = 0; i < blocks[k]; i++) {
            char path[32];
            snprintf(path, sizeof path, "layer%d.%d", k + 1, i);
            x = block(b, path, x, inplanes, planes, i == 0 && k > 0 ? 2 : 1, bottleneck);
            inplanes = planes * expansion;
        }
    }
    /* AdaptiveAvgPool2d((1, 1)) and torch.flatten(x, 1): the encoder output */
    b->module = -1;
    x = mloc_build_avgpool_global(b, "avgpool", x);
    m->feature = mloc_build_flatten(b, "flatten", x);
    m->encoder_nodes = m->n_nodes;

    /* heads: stored beside the encoder, never part of a tap */
    b->group = MLOC_GROUP_HEAD;
    if (cfg->head == MLOC_HEAD_SIMCLR) {
        mloc_build_module(b, "head");
        int h = mloc_build_linear(b, "head.0", m->feature, cfg->head_hidden, 1);
        h = mloc_build_relu(b, "head.1", h);
        m->output = mloc_build_linear(b, "head.2", h, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_CLASSIFIER) {
        mloc_build_module(b, "fc");
        m->output = mloc_build_linear(b, "fc", m->feature, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_SIMSIAM || cfg->head == MLOC_HEAD_DINO) {
        mloc_status st = mloc_build_ssl_head(ctx, b, m->feature, m->feature, &m->output);
        if (st != MLOC_OK) return st;
    } else {
        m->output = m->feature;
    }
    if (b->failed) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory building the graph", m->arch);
    if (m->feature >= 0 && m->values[m->feature].c != inplanes)
        return mloc_error(ctx, MLOC_ERR_INTERNAL, "%s: encoder output has %d features, expected %d", m->arch,
                          m->values[m->feature].c, inplanes);
    return MLOC_OK;
}
