/* Models <-> safetensors files with PyTorch names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/io.h"

static const char *const head_names[] = {"none", "simclr", "classifier", NULL};

const char *mloc_head_name(mloc_head_kind h) {
    return (unsigned)h < 3 ? head_names[h] : "?";
}

int mloc_head_parse(const char *name) {
    for (int i = 0; head_names[i]; i++)
        if (strcmp(name, head_names[i]) == 0) return i;
    return -1;
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
        if (strcmp(arch, "resnet9") != 0)
            return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: architecture '%s' is not known to this build",
                              path, arch);
        cfg->arch = "resnet9";
        const char *w = mloc_st_metadata(f, "memloc_width");
        if (w) cfg->width = atof(w);
        meta_int(f, "memloc_in_channels", &cfg->in_channels);
        meta_int(f, "memloc_image_h", &cfg->image_h);
        meta_int(f, "memloc_image_w", &cfg->image_w);
        meta_int(f, "memloc_head_hidden", &cfg->head_hidden);
        meta_int(f, "memloc_head_out", &cfg->head_out);
        const char *h = mloc_st_metadata(f, "memloc_head");
        int hk = h ? mloc_head_parse(h) : -1;
        if (hk < 0)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: __metadata__ memloc_head '%s': expected none|simclr|classifier",
                              path, h ? h : "(missing)");
        cfg->head = (mloc_head_kind)hk;
        return MLOC_OK;
    }
    /* no memloc metadata: infer from PyTorch names and shapes */
    const mloc_st_tensor *prep = mloc_st_find(f, "prep.conv.weight");
    if (!prep || prep->ndim != 4)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: cannot tell the architecture: no memloc metadata and no 4-d 'prep.conv.weight' "
                          "(the paper's ResNet9 state_dict names are expected)", path);
    cfg->arch = "resnet9";
    cfg->in_channels = (int)prep->shape[1];
    cfg->width = (double)prep->shape[0] / 32.0;
    const mloc_st_tensor *h0 = mloc_st_find(f, "head.0.weight"), *h2 = mloc_st_find(f, "head.2.weight");
    const mloc_st_tensor *cls = mloc_st_find(f, "classifier.2.weight");
    if (h0 && h2 && h0->ndim == 2 && h2->ndim == 2) {
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
    for (int i = 0; extra_meta && extra_meta[i] && extra_meta[i + 1] && st == MLOC_OK; i += 2)
        st = mloc_st_writer_meta(w, extra_meta[i], extra_meta[i + 1]);
    if (st == MLOC_OK) st = mloc_table_add_to_writer(w, &m->table, &m->store, group);
    if (st == MLOC_OK) st = mloc_st_writer_save(w, path);
    mloc_st_writer_free(w);
    return st;
}
