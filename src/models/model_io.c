/* Models <-> safetensors files with PyTorch names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/io.h"

static const char *const head_names[] = {"none", "simclr", "classifier", "simsiam", "dino", "mae", NULL};

const char *mloc_head_name(mloc_head_kind h) {
    return (unsigned)h < 6 ? head_names[h] : "?";
}

int mloc_head_parse(const char *name) {
    for (int i = 0; head_names[i]; i++)
        if (strcmp(name, head_names[i]) == 0) return i;
    return -1;
}

static const char *const stem_names[] = {"cifar", "imagenet", NULL};

const char *mloc_stem_name(mloc_stem s) {
    return (unsigned)s < 2 ? stem_names[s] : "?";
}

int mloc_stem_parse(const char *name) {
    for (int i = 0; stem_names[i]; i++)
        if (strcmp(name, stem_names[i]) == 0) return i;
    return -1;
}

/* The static name of a known architecture, NULL if unknown. */
static const char *known_arch(const char *name) {
    for (const char *const *a = mloc_model_archs(); *a; a++)
        if (strcmp(*a, name) == 0) return *a;
    return NULL;
}

/* A timm ViT state_dict (FORMATS.md 2.7, src/models/vit.c): width D, input
 * channels C and patch P from patch_embed.proj.weight [D, C, P, P]; the image
 * side from pos_embed [1, 1 + L, D] as sqrt(L) P (square images); the depth
 * from the blocks.i present; heads D / 64 (timm's tiny, small and base; 1
 * below 64); the arch by D (192 vit_tiny, 384 vit_small, 768 vit_base, else
 * vit_tiny with that width). MAE's decoder_embed / decoder_blocks.j /
 * decoder_pred give the MAE head (decoder heads Dd / 32, as MAE's 512 / 16),
 * "head" timm's classifier, head.0 / head.2 a SimCLR head. */
static int infer_ssl_head(mloc_model_config *cfg, const mloc_st_file *f);

static mloc_status infer_vit(mloc_ctx *ctx, mloc_model_config *cfg, const mloc_st_file *f,
                             const mloc_st_tensor *proj) {
    const char *path = mloc_st_path(f);
    const mloc_st_tensor *pos = mloc_st_find(f, "pos_embed");
    const int D = (int)proj->shape[0], P = (int)proj->shape[2];
    if (proj->shape[2] != proj->shape[3] || !pos || pos->ndim != 3 || pos->shape[2] != D || pos->shape[1] < 2)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: a ViT needs square patches and pos_embed [1, 1 + L, %d]", path, D);
    const int L = (int)pos->shape[1] - 1, side = (int)lround(sqrt((double)L));
    if (side * side != L)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: pos_embed holds %d patches, not a square grid", path, L);
    cfg->arch = D == 384 ? "vit_small" : D == 768 ? "vit_base" : "vit_tiny";
    cfg->in_channels = (int)proj->shape[1];
    cfg->patch_size = P;
    cfg->image_h = cfg->image_w = side * P;
    cfg->embed_dim = D;
    cfg->heads = D >= 64 && D % 64 == 0 ? D / 64 : 1;
    char name[64];
    for (cfg->depth = 0; cfg->depth < 100000; cfg->depth++) {
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", cfg->depth);
        if (!mloc_st_find(f, name)) break;
    }
    const mloc_st_tensor *de = mloc_st_find(f, "decoder_embed.weight"), *h0 = mloc_st_find(f, "head.0.weight"),
                         *h2 = mloc_st_find(f, "head.2.weight"), *fc = mloc_st_find(f, "head.weight");
    if (de && de->ndim == 2) {
        cfg->head = MLOC_HEAD_MAE;
        cfg->decoder_dim = (int)de->shape[0];
        cfg->decoder_heads = cfg->decoder_dim >= 32 && cfg->decoder_dim % 32 == 0 ? cfg->decoder_dim / 32 : 1;
        for (cfg->decoder_depth = 0; cfg->decoder_depth < 100000; cfg->decoder_depth++) {
            snprintf(name, sizeof name, "decoder_blocks.%d.norm1.weight", cfg->decoder_depth);
            if (!mloc_st_find(f, name)) break;
        }
    } else if (infer_ssl_head(cfg, f)) {
        /* SimSiam or DINO */
    } else if (h0 && h2 && h0->ndim == 2 && h2->ndim == 2) {
        cfg->head = MLOC_HEAD_SIMCLR;
        cfg->head_hidden = (int)h0->shape[0];
        cfg->head_out = (int)h2->shape[0];
    } else if (fc && fc->ndim == 2) {
        cfg->head = MLOC_HEAD_CLASSIFIER;
        cfg->head_out = (int)fc->shape[0];
    } else {
        cfg->head = MLOC_HEAD_NONE;
    }
    return MLOC_OK;
}

/* memloc_patch_size, memloc_embed_dim, memloc_depth, memloc_heads and, with
 * the MAE head, memloc_decoder_dim / _depth / _heads (src/models/vit.c). */
static mloc_status vit_meta(const mloc_model *m, mloc_st_writer *w, int group) {
    const mloc_model_config *c = &m->cfg;
    int D = 0, depth = 0, H = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].op == MLOC_OP_PATCH_EMBED) D = m->values[m->nodes[i].out].w;
        if (m->nodes[i].op == MLOC_OP_ATTENTION && strncmp(m->nodes[i].name, "blocks.", 7) == 0) {
            depth++;
            H = m->nodes[i].u.attn.heads;
        }
    }
    const char *keys[] = {"memloc_patch_size", "memloc_embed_dim", "memloc_depth", "memloc_heads",
                          "memloc_decoder_dim", "memloc_decoder_depth", "memloc_decoder_heads"};
    const int vals[] = {c->patch_size, D, depth, H, c->decoder_dim, c->decoder_depth, c->decoder_heads};
    const int n = group != MLOC_GROUP_ENCODER && c->head == MLOC_HEAD_MAE ? 7 : 4;
    mloc_status st = MLOC_OK;
    for (int i = 0; i < n && st == MLOC_OK; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%d", vals[i]);
        st = mloc_st_writer_meta(w, keys[i], buf);
    }
    return st;
}

static int is_torchvision_resnet(const char *arch) {
    return strcmp(arch, "resnet18") == 0 || strcmp(arch, "resnet34") == 0 || strcmp(arch, "resnet50") == 0;
}

/* The stem from conv1.weight [64w, C, R, R]: R = 3 CIFAR, R = 7 ImageNet. */
static mloc_status stem_from_conv1(mloc_ctx *ctx, mloc_model_config *cfg, const mloc_st_file *f,
                                   const mloc_st_tensor *conv1) {
    const char *path = mloc_st_path(f);
    if (!conv1 || conv1->ndim != 4)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: no 4-d 'conv1.weight' (torchvision ResNet names expected)",
                          path);
    if (conv1->shape[2] == 3 && conv1->shape[3] == 3) {
        cfg->stem = MLOC_STEM_CIFAR;
    } else if (conv1->shape[2] == 7 && conv1->shape[3] == 7) {
        cfg->stem = MLOC_STEM_IMAGENET;
    } else {
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: conv1.weight is %lldx%lld: expected a 3x3 (CIFAR) or 7x7 (ImageNet) stem", path,
                          (long long)conv1->shape[2], (long long)conv1->shape[3]);
    }
    return MLOC_OK;
}

/* The SimSiam projector / predictor (projector.0, projector.6, predictor.0)
 * or the DINO head (head.mlp.0, head.mlp.4, head.last_layer.weight_v) from
 * their names and shapes; 0 if neither is there. */
static int infer_ssl_head(mloc_model_config *cfg, const mloc_st_file *f) {
    const mloc_st_tensor *p0 = mloc_st_find(f, "projector.0.weight"), *p6 = mloc_st_find(f, "projector.6.weight"),
                         *q0 = mloc_st_find(f, "predictor.0.weight");
    if (p0 && p6 && q0 && p0->ndim == 2 && p6->ndim == 2 && q0->ndim == 2) {
        cfg->head = MLOC_HEAD_SIMSIAM;
        cfg->head_hidden = (int)p0->shape[0];
        cfg->head_out = (int)p6->shape[0];
        cfg->pred_hidden = (int)q0->shape[0];
        return 1;
    }
    const int bn = mloc_st_find(f, "head.mlp.1.running_mean") != NULL;
    const mloc_st_tensor *m0 = mloc_st_find(f, "head.mlp.0.weight"),
                         *m4 = mloc_st_find(f, bn ? "head.mlp.6.weight" : "head.mlp.4.weight"),
                         *v = mloc_st_find(f, "head.last_layer.weight_v");
    if (m0 && m4 && v && m0->ndim == 2 && m4->ndim == 2 && v->ndim == 2) {
        cfg->head = MLOC_HEAD_DINO;
        cfg->head_bn = bn;
        cfg->head_hidden = (int)m0->shape[0];
        cfg->head_bottleneck = (int)m4->shape[0];
        cfg->head_out = (int)v->shape[0];
        return 1;
    }
    return 0;
}

/* A torchvision ResNet state_dict: the architecture from the block type
 * (layer1.0.conv3 only in a Bottleneck) and the blocks per layer, width and
 * input channels from conv1.weight [64w, C, R, R], the head from fc or
 * head.0 / head.2. */
static mloc_status infer_resnet(mloc_ctx *ctx, mloc_model_config *cfg, const mloc_st_file *f,
                                const mloc_st_tensor *conv1) {
    const char *path = mloc_st_path(f);
    MLOC_TRY(stem_from_conv1(ctx, cfg, f, conv1));
    cfg->in_channels = (int)conv1->shape[1];
    cfg->width = (double)conv1->shape[0] / 64.0;
    const int bottleneck = mloc_st_find(f, "layer1.0.conv3.weight") != NULL;
    int n[4];
    for (int k = 0; k < 4; k++) {
        char name[64];
        for (n[k] = 0; n[k] < 1000; n[k]++) {
            snprintf(name, sizeof name, "layer%d.%d.conv1.weight", k + 1, n[k]);
            if (!mloc_st_find(f, name)) break;
        }
    }
    const int basic18 = n[0] == 2 && n[1] == 2 && n[2] == 2 && n[3] == 2;
    const int deep = n[0] == 3 && n[1] == 4 && n[2] == 6 && n[3] == 3;
    if (!bottleneck && basic18) {
        cfg->arch = "resnet18";
    } else if (!bottleneck && deep) {
        cfg->arch = "resnet34";
    } else if (bottleneck && deep) {
        cfg->arch = "resnet50";
    } else {
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED,
                          "%s: a ResNet with %s blocks %d-%d-%d-%d: expected resnet18 (basic 2-2-2-2), "
                          "resnet34 (basic 3-4-6-3) or resnet50 (bottleneck 3-4-6-3)",
                          path, bottleneck ? "bottleneck" : "basic", n[0], n[1], n[2], n[3]);
    }
    const mloc_st_tensor *h0 = mloc_st_find(f, "head.0.weight"), *h2 = mloc_st_find(f, "head.2.weight");
    const mloc_st_tensor *fc = mloc_st_find(f, "fc.weight");
    if (infer_ssl_head(cfg, f)) {
        /* SimSiam or DINO */
    } else if (h0 && h2 && h0->ndim == 2 && h2->ndim == 2) {
        cfg->head = MLOC_HEAD_SIMCLR;
        cfg->head_hidden = (int)h0->shape[0];
        cfg->head_out = (int)h2->shape[0];
    } else if (fc && fc->ndim == 2) {
        cfg->head = MLOC_HEAD_CLASSIFIER;
        cfg->head_out = (int)fc->shape[0];
    } else {
        cfg->head = MLOC_HEAD_NONE;
    }
    return MLOC_OK;
}

static int meta_int(const mloc_st_file *f, const char *key, int *out) {
    const char *v = mloc_st_metadata(f, key);
    if (!v) return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end) return 0;
    *out = (int)x;
    return 1;
}

mloc_status mloc_model_config_from_file(mloc_ctx *ctx, mloc_model_config *cfg,
                                        const mloc_st_file *f) {
    *cfg = mloc_model_config_default();
    const char *path = mloc_st_path(f);
    const char *arch = mloc_st_metadata(f, "memloc_arch");
    if (arch) {
        cfg->arch = known_arch(arch);
        if (!cfg->arch)
            return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: architecture '%s' is not known to this build",
                              path, arch);
        if (is_torchvision_resnet(cfg->arch)) {
            /* memloc_stem; files from before it was written: from conv1.weight */
            const char *stem = mloc_st_metadata(f, "memloc_stem");
            int sk = stem ? mloc_stem_parse(stem) : -1;
            if (stem && sk < 0)
                return mloc_error(ctx, MLOC_ERR_DATA, "%s: __metadata__ memloc_stem '%s': expected cifar|imagenet",
                                  path, stem);
            if (stem) cfg->stem = (mloc_stem)sk;
            else MLOC_TRY(stem_from_conv1(ctx, cfg, f, mloc_st_find(f, "conv1.weight")));
        }
        const char *w = mloc_st_metadata(f, "memloc_width");
        if (w) cfg->width = atof(w);
        meta_int(f, "memloc_in_channels", &cfg->in_channels);
        meta_int(f, "memloc_image_h", &cfg->image_h);
        meta_int(f, "memloc_image_w", &cfg->image_w);
        meta_int(f, "memloc_head_hidden", &cfg->head_hidden);
        meta_int(f, "memloc_head_out", &cfg->head_out);
        meta_int(f, "memloc_pred_hidden", &cfg->pred_hidden);
        meta_int(f, "memloc_head_bottleneck", &cfg->head_bottleneck);
        meta_int(f, "memloc_head_bn", &cfg->head_bn);
        meta_int(f, "memloc_patch_size", &cfg->patch_size);
        meta_int(f, "memloc_embed_dim", &cfg->embed_dim);
        meta_int(f, "memloc_depth", &cfg->depth);
        meta_int(f, "memloc_heads", &cfg->heads);
        meta_int(f, "memloc_decoder_dim", &cfg->decoder_dim);
        meta_int(f, "memloc_decoder_depth", &cfg->decoder_depth);
        meta_int(f, "memloc_decoder_heads", &cfg->decoder_heads);
        const char *h = mloc_st_metadata(f, "memloc_head");
        int hk = h ? mloc_head_parse(h) : -1;
        if (hk < 0)
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s: __metadata__ memloc_head '%s': expected none|simclr|classifier|simsiam|dino|mae",
                              path, h ? h : "(missing)");
        cfg->head = (mloc_head_kind)hk;
        return MLOC_OK;
    }
    /* no memloc metadata: infer from PyTorch names and shapes */
    const mloc_st_tensor *patch = mloc_st_find(f, "patch_embed.proj.weight");
    if (patch && patch->ndim == 4) return infer_vit(ctx, cfg, f, patch);
    const mloc_st_tensor *conv1 = mloc_st_find(f, "conv1.weight");
    if (conv1 && conv1->ndim == 4) return infer_resnet(ctx, cfg, f, conv1);
    const mloc_st_tensor *prep = mloc_st_find(f, "prep.conv.weight");
    if (!prep || prep->ndim != 4)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: cannot tell the architecture: no memloc metadata, no 4-d 'prep.conv.weight' "
                          "(the paper's ResNet9) and no 4-d 'conv1.weight' (a torchvision ResNet)", path);
    cfg->arch = "resnet9";
    cfg->in_channels = (int)prep->shape[1];
    cfg->width = (double)prep->shape[0] / 32.0;
    const mloc_st_tensor *h0 = mloc_st_find(f, "head.0.weight"), *h2 = mloc_st_find(f, "head.2.weight");
    const mloc_st_tensor *cls = mloc_st_find(f, "classifier.2.weight");
    if (infer_ssl_head(cfg, f)) {
        /* SimSiam or DINO */
    } else if (h0 && h2 && h0->ndim == 2 && h2->ndim == 2) {
        cfg->head = MLOC_HEAD_SIMCLR;
        cfg->head_hidden = (int)h0->shape[0];
        cfg->head_out = (int)h2->shape[0];
    } else if (cls && cls->ndim == 2) {
        cfg->head = MLOC_HEAD_CLASSIFIER;
        cfg->head_out = (int)cls->shape[0];
    } else {
        cfg->head = MLOC_HEAD_NONE;
    }
    return MLOC_OK;
}

mloc_status mloc_model_load(mloc_ctx *ctx, mloc_model *m, const mloc_st_file *f) {
    /* the encoder must be complete; head tensors are optional; names that
     * belong to neither (optimizer state in checkpoints) are ignored */
    mloc_status st = mloc_table_load(ctx, &m->table, &m->store, f,
                                     MLOC_LOAD_ENCODER_ONLY | MLOC_LOAD_ALLOW_UNEXPECTED);
    if (st == MLOC_OK) mloc_model_params_changed(m);
    return st;
}

mloc_status mloc_model_open(mloc_ctx *ctx, mloc_model **out, const char *path, int head) {
    *out = NULL;
    mloc_st_file *f = NULL;
    mloc_model *m = NULL;
    mloc_model_config cfg;
    mloc_status st = mloc_st_open(ctx, &f, path);
    if (st != MLOC_OK) return st;
    st = mloc_model_config_from_file(ctx, &cfg, f);
    if (st != MLOC_OK) goto done;
    if (head >= 0) cfg.head = (mloc_head_kind)head;
    st = mloc_model_create(ctx, &m, &cfg);
    if (st != MLOC_OK) goto done;
    st = mloc_model_load(ctx, m, f);
    if (st != MLOC_OK) goto done;
    *out = m;
    m = NULL;
done:
    mloc_model_free(m);
    mloc_st_close(f);
    return st;
}

mloc_status mloc_model_save(mloc_ctx *ctx, const mloc_model *m, const char *path, int group,
                            const char *const *extra_meta) {
    mloc_st_writer *w = NULL;
    mloc_status st = mloc_st_writer_create(ctx, &w);
    if (st != MLOC_OK) return st;
    char buf[8][32];
    snprintf(buf[0], sizeof buf[0], "%d", m->cfg.in_channels);
    snprintf(buf[1], sizeof buf[1], "%d", m->cfg.image_h);
    snprintf(buf[2], sizeof buf[2], "%d", m->cfg.image_w);
    snprintf(buf[3], sizeof buf[3], "%.17g", m->cfg.width);
    snprintf(buf[4], sizeof buf[4], "%d", m->cfg.head_hidden);
    snprintf(buf[5], sizeof buf[5], "%d", m->cfg.head_out);
    const char *head = group == MLOC_GROUP_ENCODER ? "none" : mloc_head_name(m->cfg.head);
    const char *kv[][2] = {{"format", "pt"},
                           {"memloc_version", MLOC_VERSION},
                           {"memloc_arch", m->arch},
                           {"memloc_in_channels", buf[0]},
                           {"memloc_image_h", buf[1]},
                           {"memloc_image_w", buf[2]},
                           {"memloc_width", buf[3]},
                           {"memloc_head", head},
                           {"memloc_head_hidden", buf[4]},
                           {"memloc_head_out", buf[5]}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0] && st == MLOC_OK; i++)
        st = mloc_st_writer_meta(w, kv[i][0], kv[i][1]);
    if (st == MLOC_OK && is_torchvision_resnet(m->arch))
        st = mloc_st_writer_meta(w, "memloc_stem", mloc_stem_name(m->cfg.stem));
    if (st == MLOC_OK && mloc_vit_arch(m->arch) >= 0) st = vit_meta(m, w, group);
    if (st == MLOC_OK && group != MLOC_GROUP_ENCODER && m->cfg.head == MLOC_HEAD_SIMSIAM) {
        snprintf(buf[6], sizeof buf[6], "%d", m->cfg.pred_hidden);
        st = mloc_st_writer_meta(w, "memloc_pred_hidden", buf[6]);
    }
    if (st == MLOC_OK && group != MLOC_GROUP_ENCODER && m->cfg.head == MLOC_HEAD_DINO) {
        snprintf(buf[6], sizeof buf[6], "%d", m->cfg.head_bottleneck);
        st = mloc_st_writer_meta(w, "memloc_head_bottleneck", buf[6]);
        snprintf(buf[7], sizeof buf[7], "%d", m->cfg.head_bn != 0);
        if (st == MLOC_OK) st = mloc_st_writer_meta(w, "memloc_head_bn", buf[7]);
    }
    for (int i = 0; extra_meta && extra_meta[i] && extra_meta[i + 1] && st == MLOC_OK; i += 2)
        st = mloc_st_writer_meta(w, extra_meta[i], extra_meta[i + 1]);
    if (st == MLOC_OK) st = mloc_table_add_to_writer(w, &m->table, &m->store, group);
    if (st == MLOC_OK) st = mloc_st_writer_save(w, path);
    mloc_st_writer_free(w);
    return st;
}
