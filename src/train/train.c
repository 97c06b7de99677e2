/* The training loop and its run directory (include/memloc/train.h). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.h>

#include "memloc/analysis.h"
#include "memloc/augment.h"
#include "memloc/data.h"
#include "memloc/io.h"
#include "memloc/loader.h"
#include "memloc/model.h"
#include "memloc/optim.h"
#include "memloc/ssl.h"
#include "memloc/train.h"

#define PATH 4096

typedef struct {
    mloc_ctx *ctx;
    const mloc_train_config *cfg;
    char dir[PATH];
    mloc_dataset data, knn_train, knn_test;
    int64_t *idx;
    int64_t n_idx;
    mloc_model *model;
    mloc_optim *opt;
    mloc_schedule sched;
    mloc_loader *loader;
    mloc_ssl_scratch scratch;
    mloc_model *twin;           /* simsiam: view 2's model, over model's store */
    mloc_dino *dino;            /* dino: teacher, local-crop model, centre */
    mloc_mae *mae;              /* mae: the masked training graph over model's store */
    mloc_dino_config dino_cfg;
    mloc_loader *local_loader;  /* dino: the local crops of the same images */
    int fwd_batch;              /* images per forward pass of `model` (its plan) */
    FILE *log;
    int64_t steps_per_epoch;
    int views;
    int crops;                  /* views per image counted in views_per_s (dino: 2 + local) */
    /* position: epochs completed, batches done in the current epoch, steps */
    int epoch;
    int64_t batch;
    int64_t step;
    /* running sums of the current epoch and log window, checkpointed so a
     * resumed run logs exactly what an uninterrupted one does */
    double epoch_loss, window_loss;
    int64_t epoch_steps, epoch_correct, window_steps;
} trainer;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void path_in(char *out, const trainer *t, const char *name) {
    snprintf(out, PATH, "%s/%s", t->dir, name);
}

static int exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

/* ---- data ------------------------------------------------------------------ */

mloc_status mloc_train_open_dataset(mloc_ctx *ctx, const mloc_train_config *c, mloc_dataset *d,
                                    const char *spec) {
    mloc_dataset_options o = mloc_dataset_options_default();
    o.size = c->image_size;
    switch (c->fit) {
    case MLOC_FIT_OPT_NONE: o.fit = MLOC_FIT_NONE; break;
    case MLOC_FIT_OPT_PAD: o.fit = MLOC_FIT_PAD; break;
    case MLOC_FIT_OPT_RESIZE: o.fit = MLOC_FIT_RESIZE; break;
    default: o.fit = MLOC_FIT_NONE; break;
    }
    MLOC_TRY(mloc_dataset_open(ctx, d, spec, &o));
    if (c->fit == MLOC_FIT_OPT_AUTO && (d->h != c->image_size || d->w != c->image_size)) {
        /* pad images that are smaller by an even margin (28 -> 32), as the demo does */
        int dh = c->image_size - d->h, dw = c->image_size - d->w;
        if (dh < 0 || dw < 0 || dh % 2 || dw % 2)
            return mloc_error(ctx, MLOC_ERR_CONFIG,
                              "%s: images are %dx%d, the encoder takes %dx%d (use --fit resize or --image-size %d)",
                              spec, d->h, d->w, c->image_size, c->image_size, d->h);
        mloc_dataset_free(d);
        o.fit = MLOC_FIT_PAD;
        MLOC_TRY(mloc_dataset_open(ctx, d, spec, &o));
    }
    return MLOC_OK;
}

mloc_status mloc_train_aug_pipeline(mloc_ctx *ctx, const mloc_train_config *c, int preset,
                                    mloc_aug_pipeline *pipe) {
    static const mloc_aug_preset presets[] = {MLOC_AUG_NONE, MLOC_AUG_SIMCLR, MLOC_AUG_UNITMEM};
    mloc_aug_config ac = mloc_aug_config_default();
    ac.preset = presets[preset >= 0 ? preset : c->aug];
    ac.size = c->image_size;
    ac.strength = (float)c->aug_strength;
    ac.crop_scale_min = (float)c->crop_scale_min;
    ac.norm = (mloc_aug_norm)c->norm;
    ac.compat_normalize_first = c->compat_normalize_first;
    if (preset < 0 && c->method == MLOC_METHOD_MAE) {
        /* MAE's pipeline: RandomResizedCrop and flip only */
        ac.jitter_p = 0;
        ac.gray_p = 0;
    }
    return mloc_aug_pipeline_make(ctx, pipe, &ac);
}

/* ---- run directory ------------------------------------------------------------ */

static json_t *config_doc(const trainer *t) {
    const mloc_train_config *c = t->cfg;
    char digest[65];
    mloc_dataset_digest(&t->data, digest);
    json_t *doc = json_object();
    json_object_set_new(doc, "schema", json_string("memloc.train.config/1"));
    json_object_set_new(doc, "memloc_version", json_string(MLOC_VERSION));
    json_object_set_new(doc, "options", mloc_train_config_to_json(c));
    const dnnl_version_t *v = dnnl_version();
    char dn[64];
    snprintf(dn, sizeof dn, "%d.%d.%d", v->major, v->minor, v->patch);
    json_t *res = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:I, s:s, s:i, s:s, s:s}", "dataset", t->data.spec,
                            "dataset_sha256", digest, "train_images", (json_int_t)t->n_idx, "in_channels",
                            t->data.c, "image_h", t->data.h, "image_w", t->data.w, "classes", t->data.n_classes,
                            "steps_per_epoch", (json_int_t)t->steps_per_epoch, "backend",
                            mloc_ctx_backend(t->ctx) == MLOC_BACKEND_REF ? "ref" : "dnnl", "threads",
                            mloc_ctx_threads(t->ctx), "onednn", dn, "data_prep",
                            t->data.prep ? t->data.prep : "");
    json_object_set_new(doc, "resolved", res);
    return doc;
}

/* A fresh run: the directory must not hold another run. */
static mloc_status prepare_dir(trainer *t, int resume) {
    char p[PATH];
    MLOC_TRY(mloc_mkdirs(t->ctx, t->dir));
    path_in(p, t, "checkpoints");
    MLOC_TRY(mloc_mkdirs(t->ctx, p));
    path_in(p, t, "config.json");
    json_t *doc = config_doc(t);
    mloc_status st = MLOC_OK;
    if (exists(p)) {
        json_t *old = NULL;
        st = mloc_json_load(t->ctx, p, &old);
        if (st == MLOC_OK) {
            /* the same options and data, or it is another run; the old options
             * are read back through the table, so options added since the run
             * began compare at their defaults */
            mloc_train_config oc = mloc_train_config_default();
            json_t *a = json_object_get(old, "options"), *b = json_object_get(doc, "options");
            json_t *ar = a && mloc_train_config_from_json(t->ctx, &oc, a) == MLOC_OK ? mloc_train_config_to_json(&oc)
                                                                                     : NULL;
            mloc_ctx_clear_error(t->ctx);
            if (ar) a = ar;
            json_t *da = json_object_get(json_object_get(old, "resolved"), "dataset_sha256");
            json_t *db = json_object_get(json_object_get(doc, "resolved"), "dataset_sha256");
            if (!json_equal(a, b) || !json_equal(da, db))
                st = mloc_error(t->ctx, MLOC_ERR_CANTCREAT,
                                "%s holds a run with other options or data; use another --out%s", t->dir,
                                resume ? "" : " or --resume");
            else if (!resume)
                st = mloc_error(t->ctx, MLOC_ERR_CANTCREAT, "%s already holds this run; continue it with --resume",
                                t->dir);
            json_decref(ar);
        }
        json_decref(old);
    } else {
        char m[PATH];
        path_in(m, t, "model.safetensors");
        if (exists(m))
            st = mloc_error(t->ctx, MLOC_ERR_CANTCREAT, "%s holds a model.safetensors but no config.json", t->dir);
        else
            st = mloc_json_save(t->ctx, p, doc);
    }
    json_decref(doc);
    return st;
}

/* Checkpoint names sort by position: epoch_NNNN (N epochs done) and
 * epoch_NNNN_batch_BBBBBB (B batches of epoch N+1 done). */
static void checkpoint_name(char *out, int epoch, int64_t batch) {
    if (batch)
        snprintf(out, 128, "epoch_%04d_batch_%06" PRId64 ".safetensors", epoch, batch);
    else
        snprintf(out, 128, "epoch_%04d.safetensors", epoch);
}

static int parse_checkpoint(const char *name, int *epoch, int64_t *batch) {
    int e, used = 0;
    long long b = 0;
    if (sscanf(name, "epoch_%4d_batch_%6lld.safetensors%n", &e, &b, &used) == 2 && name[used] == 0) {
        *epoch = e;
        *batch = b;
        return 1;
    }
    used = 0;
    if (sscanf(name, "epoch_%4d.safetensors%n", &e, &used) == 1 && name[used] == 0 && strlen(name) == 22) {
        *epoch = e;
        *batch = 0;
        return 1;
    }
    return 0;
}

/* Latest checkpoint by position; 0 if none. */
static int latest_checkpoint(const trainer *t, char *name, int *epoch, int64_t *batch) {
    char p[PATH];
    path_in(p, t, "checkpoints");
    DIR *d = opendir(p);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int ep;
        int64_t b;
        if (!parse_checkpoint(e->d_name, &ep, &b)) continue;
        if (!found || ep > *epoch || (ep == *epoch && b > *batch)) {
            *epoch = ep;
            *batch = b;
            snprintf(name, 128, "%s", e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Keep the newest `keep` epoch checkpoints; mid-epoch ones older than the
 * newest checkpoint are always removed. */
static void prune_checkpoints(const trainer *t) {
    char p[PATH];
    path_in(p, t, "checkpoints");
    DIR *d = opendir(p);
    if (!d) return;
    int newest = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int ep;
        int64_t b;
        if (parse_checkpoint(e->d_name, &ep, &b) && b == 0 && ep > newest) newest = ep;
    }
    rewinddir(d);
    while ((e = readdir(d))) {
        int ep;
        int64_t b;
        if (!parse_checkpoint(e->d_name, &ep, &b)) continue;
        int drop = b ? ep < newest || (ep == newest && 0) : t->cfg->keep_checkpoints > 0 &&
                                                                 ep <= newest - t->cfg->keep_checkpoints;
        if (b && ep >= newest) drop = 0;
        if (drop) {
            char f[PATH + 128];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            unlink(f);
        }
    }
    closedir(d);
}

static mloc_status save_checkpoint(trainer *t) {
    char name[128], p[PATH + 160], buf[9][32];
    checkpoint_name(name, t->epoch, t->batch);
    snprintf(p, sizeof p, "%s/checkpoints/%s", t->dir, name);
    fflush(t->log);
    long log_offset = ftell(t->log);
    snprintf(buf[0], sizeof buf[0], "%d", t->epoch);
    snprintf(buf[1], sizeof buf[1], "%" PRId64, t->batch);
    snprintf(buf[2], sizeof buf[2], "%" PRId64, t->step);
    snprintf(buf[3], sizeof buf[3], "%ld", log_offset);
    snprintf(buf[4], sizeof buf[4], "%.17g", t->epoch_loss);
    snprintf(buf[5], sizeof buf[5], "%" PRId64, t->epoch_steps);
    snprintf(buf[6], sizeof buf[6], "%" PRId64, t->epoch_correct);
    snprintf(buf[7], sizeof buf[7], "%.17g", t->window_loss);
    snprintf(buf[8], sizeof buf[8], "%" PRId64, t->window_steps);
    const char *meta[] = {"epoch", buf[0], "batch", buf[1], "step", buf[2], "log_offset", buf[3],
                          "epoch_loss_sum", buf[4], "epoch_steps", buf[5], "epoch_correct", buf[6],
                          "window_loss_sum", buf[7], "window_steps", buf[8], NULL};
    /* model tensors, optimizer state, position: one atomic file */
    mloc_st_writer *w;
    MLOC_TRY(mloc_st_writer_create(t->ctx, &w));
    mloc_status st = MLOC_OK;
    for (int i = 0; meta[i] && st == MLOC_OK; i += 2) st = mloc_st_writer_meta(w, meta[i], meta[i + 1]);
    if (st == MLOC_OK) st = mloc_table_add_to_writer(w, &t->model->table, &t->model->store, -1);
    if (st == MLOC_OK) st = mloc_optim_add_to_writer(t->opt, w);
    if (st == MLOC_OK && t->dino) st = mloc_dino_add_to_writer(t->dino, w);
    if (st == MLOC_OK) st = mloc_st_writer_save(w, p);
    mloc_st_writer_free(w);
    if (st == MLOC_OK) prune_checkpoints(t);
    return st;
}

static mloc_status load_checkpoint(trainer *t, const char *name) {
    char p[PATH + 160];
    snprintf(p, sizeof p, "%s/checkpoints/%s", t->dir, name);
    mloc_st_file *f;
    MLOC_TRY(mloc_st_open(t->ctx, &f, p));
    mloc_status st = mloc_table_load(t->ctx, &t->model->table, &t->model->store, f, MLOC_LOAD_ALLOW_UNEXPECTED);
    if (st == MLOC_OK) st = mloc_optim_load(t->opt, f);
    if (st == MLOC_OK && t->dino) st = mloc_dino_load(t->ctx, t->dino, f);
    const char *ep = mloc_st_metadata(f, "epoch"), *b = mloc_st_metadata(f, "batch"),
               *s = mloc_st_metadata(f, "step"), *lo = mloc_st_metadata(f, "log_offset");
    if (st == MLOC_OK && (!ep || !b || !s || !lo))
        st = mloc_error(t->ctx, MLOC_ERR_DATA, "%s: not a memloc checkpoint (no epoch/batch/step metadata)", p);
    const char *el = mloc_st_metadata(f, "epoch_loss_sum"), *es = mloc_st_metadata(f, "epoch_steps"),
               *ec = mloc_st_metadata(f, "epoch_correct"), *wl = mloc_st_metadata(f, "window_loss_sum"),
               *ws = mloc_st_metadata(f, "window_steps");
    if (st == MLOC_OK && (!el || !es || !ec || !wl || !ws))
        st = mloc_error(t->ctx, MLOC_ERR_DATA, "%s: checkpoint lacks the running loss sums", p);
    if (st == MLOC_OK) {
        t->epoch = atoi(ep);
        t->batch = atoll(b);
        t->step = atoll(s);
        t->epoch_loss = strtod(el, NULL);
        t->epoch_steps = atoll(es);
        t->epoch_correct = atoll(ec);
        t->window_loss = strtod(wl, NULL);
        t->window_steps = atoll(ws);
        /* drop log lines written after the checkpoint: the resumed run writes them again */
        char lp[PATH];
        path_in(lp, t, "log.jsonl");
        if (exists(lp) && truncate(lp, atol(lo)) != 0)
            st = mloc_error(t->ctx, MLOC_ERR_IO, "%s: cannot truncate: %s", lp, strerror(errno));
    }
    mloc_st_close(f);
    if (st == MLOC_OK) mloc_model_params_changed(t->model);
    return st;
}

/* ---- logging ------------------------------------------------------------------ */

static void log_line(trainer *t, json_t *obj) {
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (s) {
        fputs(s, t->log);
        fputc('\n', t->log);
        fflush(t->log);
        free(s);
    }
    json_decref(obj);
}

/* ---- set-up --------------------------------------------------------------------- */

static mloc_status setup(trainer *t, int resume) {
    const mloc_train_config *c = t->cfg;
    mloc_ctx *ctx = t->ctx;
    MLOC_TRY(mloc_train_open_dataset(ctx, c, &t->data, c->data));
    if (c->indices[0]) {
        MLOC_TRY(mloc_indices_parse(ctx, c->indices, t->data.n, &t->idx, &t->n_idx));
    } else {
        t->n_idx = t->data.n;
        t->idx = malloc((size_t)t->n_idx * sizeof(int64_t));
        if (!t->idx) return MLOC_ERR_NOMEM;
        for (int64_t i = 0; i < t->n_idx; i++) t->idx[i] = i;
    }
    t->steps_per_epoch = t->n_idx / c->batch_size;
    if (t->steps_per_epoch < 1)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "option batch_size: %d is larger than the %" PRId64 " training images",
                          c->batch_size, t->n_idx);
    if (c->method == MLOC_METHOD_SUPERVISED && t->data.n_classes < 2)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "method supervised: %s has %d classes, expected labels",
                          c->data, t->data.n_classes);
    if (c->monitor_knn[0]) {
        char specs[MLOC_TRAIN_STR];
        snprintf(specs, sizeof specs, "%s", c->monitor_knn);
        char *comma = strchr(specs, ',');
        *comma = 0;
        MLOC_TRY(mloc_train_open_dataset(ctx, c, &t->knn_train, specs));
        MLOC_TRY(mloc_train_open_dataset(ctx, c, &t->knn_test, comma + 1));
    }
    MLOC_TRY(prepare_dir(t, resume));

    /* model */
    mloc_model_config mc = mloc_model_config_default();
    static const char *const archs[] = {"resnet9",  "resnet18",  "resnet34", "resnet50",
                                        "vit_tiny", "vit_small", "vit_base"};
    mc.arch = archs[c->arch];
    mc.patch_size = c->patch_size;
    mc.drop_path = c->drop_path;
    mc.stem = c->stem == 1 ? MLOC_STEM_IMAGENET : MLOC_STEM_CIFAR;
    mc.in_channels = t->data.c;
    mc.image_h = t->data.h;
    mc.image_w = t->data.w;
    mc.width = c->width;
    if (c->method == MLOC_METHOD_SIMCLR) {
        mc.head = MLOC_HEAD_SIMCLR;
        mc.head_hidden = c->proj_hidden;
        mc.head_out = c->proj_dim;
        t->views = 2;
    } else if (c->method == MLOC_METHOD_SIMSIAM) {
        mc.head = MLOC_HEAD_SIMSIAM;
        mc.head_hidden = c->proj_hidden;
        mc.head_out = c->proj_dim;
        mc.pred_hidden = c->pred_hidden;
        t->views = 2;
    } else if (c->method == MLOC_METHOD_DINO) {
        mc.head = MLOC_HEAD_DINO;
        mc.head_hidden = c->proj_hidden;
        mc.head_bottleneck = c->proj_dim;
        mc.head_out = c->dino_out_dim;
        mc.head_bn = c->dino_head_bn;
        t->views = 2;
    } else if (c->method == MLOC_METHOD_MAE) {
        mc.head = MLOC_HEAD_MAE;
        mc.decoder_dim = c->decoder_dim;
        mc.decoder_depth = c->decoder_depth;
        mc.decoder_heads = c->decoder_heads;
        t->views = 1;
    } else {
        mc.head = MLOC_HEAD_CLASSIFIER;
        mc.head_out = t->data.n_classes;
        t->views = 1;
    }
    t->crops = t->views + (c->method == MLOC_METHOD_DINO ? c->local_crops : 0);
    /* simsiam runs each view as its own forward of B images */
    t->fwd_batch = (c->method == MLOC_METHOD_SIMSIAM ? 1 : t->views) * c->batch_size;
    MLOC_TRY(mloc_model_create(ctx, &t->model, &mc));
    mloc_model_init_params(t->model, c->seed);
    MLOC_TRY(mloc_model_plan(ctx, t->model, t->fwd_batch));
    MLOC_TRY(mloc_ssl_scratch_init(ctx, &t->scratch, t->model, t->views * c->batch_size));
    if (c->method == MLOC_METHOD_MAE) {
        mloc_mae_config ac = mloc_mae_config_default();
        ac.mask_ratio = c->mask_ratio;
        ac.norm_pix_loss = c->norm_pix_loss;
        ac.seed = c->seed;
        MLOC_TRY(mloc_mae_create(ctx, &t->mae, t->model, &ac, c->batch_size));
    }
    if (c->method == MLOC_METHOD_SIMSIAM) {
        MLOC_TRY(mloc_model_create_shared(ctx, &t->twin, &mc, t->model));
        MLOC_TRY(mloc_model_plan(ctx, t->twin, c->batch_size));
    }
    if (c->method == MLOC_METHOD_DINO) {
        mloc_dino_config *dc = &t->dino_cfg;
        *dc = mloc_dino_config_default();
        dc->local_crops = c->local_crops;
        dc->local_size = c->local_crop_size;
        dc->student_temp = c->student_temp;
        dc->teacher_temp = c->teacher_temp;
        dc->warmup_teacher_temp = c->warmup_teacher_temp;
        dc->warmup_teacher_temp_epochs = c->warmup_teacher_temp_epochs;
        dc->momentum_teacher = c->momentum_teacher;
        dc->center_momentum = c->center_momentum;
        dc->freeze_last_layer = c->freeze_last_layer;
        dc->norm_last_layer = c->norm_last_layer;
        dc->clip_grad = c->clip_grad;
        MLOC_TRY(mloc_dino_create(ctx, &t->dino, t->model, dc, c->batch_size));
    }

    /* optimizer and schedule */
    static const mloc_optim_kind kinds[] = {MLOC_OPTIM_SGD, MLOC_OPTIM_ADAM, MLOC_OPTIM_ADAMW, MLOC_OPTIM_LARS};
    mloc_optim_config oc = mloc_optim_config_default(kinds[c->optimizer]);
    oc.weight_decay = c->weight_decay;
    if (oc.kind == MLOC_OPTIM_SGD || oc.kind == MLOC_OPTIM_LARS) oc.momentum = c->momentum;
    if (oc.kind == MLOC_OPTIM_LARS) oc.exclude_bias_n_norm = 1;
    MLOC_TRY(mloc_optim_create(ctx, &t->opt, &t->model->table, &oc));
    int64_t total = (int64_t)c->epochs * t->steps_per_epoch;
    if (c->schedule == MLOC_SCHED_OPT_COSINE)
        t->sched = mloc_schedule_warmup_cosine(c->lr, (int64_t)llround(c->warmup_epochs * t->steps_per_epoch), 0.0,
                                               total, c->min_lr);
    else
        t->sched = mloc_schedule_constant(c->lr);
    MLOC_TRY(mloc_schedule_check(ctx, &t->sched));

    /* loader */
    mloc_loader_config lc = mloc_loader_config_default();
    MLOC_TRY(mloc_train_aug_pipeline(ctx, c, -1, &lc.aug));
    lc.batch_size = c->batch_size;
    lc.views = t->views;
    lc.seed = c->seed;
    lc.shuffle = 1;
    lc.drop_last = 1;
    lc.workers = c->workers;
    if (c->method == MLOC_METHOD_DINO) {
        /* DINO's global crops: area (global_crop_scale_min, 1) */
        lc.aug.scale[0] = (float)c->global_crop_scale_min;
        lc.aug.scale[1] = 1.0f;
        MLOC_TRY(mloc_aug_pipeline_check(ctx, &lc.aug));
    }
    MLOC_TRY(mloc_loader_create(ctx, &t->loader, &t->data, t->idx, t->n_idx, &lc));
    if (c->method == MLOC_METHOD_DINO && c->local_crops > 0) {
        /* the local crops of the same images (the shuffle depends on the seed
         * and epoch only): smaller, area (local_crop_scale_min,
         * global_crop_scale_min), their own augmentation streams */
        lc.views = c->local_crops;
        lc.aug.out_h = lc.aug.out_w = c->local_crop_size;
        lc.aug.scale[0] = (float)c->local_crop_scale_min;
        lc.aug.scale[1] = (float)c->global_crop_scale_min;
        lc.purpose = "dino_local";
        MLOC_TRY(mloc_aug_pipeline_check(ctx, &lc.aug));
        MLOC_TRY(mloc_loader_create(ctx, &t->local_loader, &t->data, t->idx, t->n_idx, &lc));
    }

    /* resume position */
    char name[128];
    int ep = 0;
    int64_t b = 0;
    if (latest_checkpoint(t, name, &ep, &b)) {
        if (!resume)
            return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s has checkpoints; continue with --resume", t->dir);
        MLOC_TRY(load_checkpoint(t, name));
        mloc_log(ctx, MLOC_LOG_INFO, "resuming %s at epoch %d, batch %" PRId64, t->dir, t->epoch + 1, t->batch);
    }
    char lp[PATH];
    path_in(lp, t, "log.jsonl");
    if (!ep && !b && exists(lp) && truncate(lp, 0) != 0)
        return mloc_error(ctx, MLOC_ERR_IO, "%s: cannot truncate: %s", lp, strerror(errno));
    t->log = fopen(lp, "ab");
    if (!t->log) return mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot open: %s", lp, strerror(errno));
    return MLOC_OK;
}

static void teardown(trainer *t) {
    if (t->loader) mloc_loader_free(t->loader);
    if (t->local_loader) mloc_loader_free(t->local_loader);
    mloc_ssl_scratch_free(&t->scratch);
    mloc_optim_free(t->opt);
    mloc_dino_free(t->dino);
    mloc_mae_free(t->mae);
    mloc_model_free(t->twin);
    mloc_model_free(t->model);
    mloc_dataset_free(&t->data);
    mloc_dataset_free(&t->knn_train);
    mloc_dataset_free(&t->knn_test);
    free(t->idx);
    if (t->log) fclose(t->log);
}

/* The network a run delivers: the model, or DINO's teacher (dino_export). */
static mloc_model *export_model(const trainer *t) {
    return t->dino && t->cfg->dino_export == MLOC_DINO_EXPORT_TEACHER ? mloc_dino_teacher(t->dino) : t->model;
}

/* kNN accuracy of the encoder output on the monitor sets, without
 * augmentation and with the training run's Normalize constants. */
static mloc_status knn_monitor(trainer *t, double *acc) {
    mloc_aug_config ac = mloc_aug_config_default();
    ac.preset = MLOC_AUG_NONE;
    ac.size = 0;
    ac.norm = (mloc_aug_norm)t->cfg->norm;
    mloc_aug_pipeline pipe;
    MLOC_TRY(mloc_aug_pipeline_make(t->ctx, &pipe, &ac));
    mloc_knn_config kc = mloc_knn_config_default();
    kc.batch = t->fwd_batch; /* the planned batch: no re-planning */
    kc.k = t->cfg->knn_k;
    kc.t = t->cfg->knn_t;
    kc.pipe = &pipe;
    return mloc_knn_accuracy(t->ctx, export_model(t), &t->knn_train, NULL, t->knn_train.n, &t->knn_test, NULL,
                             t->knn_test.n, &kc, acc);
}

/* ---- the loop ---------------------------------------------------------------- */

mloc_status mloc_train_run(mloc_ctx *ctx, const mloc_train_config *cfg, const char *run_dir,
                           int resume, mloc_train_result *result) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.ctx = ctx;
    t.cfg = cfg;
    mloc_train_result res = {.knn_acc = -1};
    double t_start = now_s();
    int64_t views_done = 0;
    snprintf(t.dir, sizeof t.dir, "%s", run_dir);
    MLOC_TRY(mloc_train_config_check(ctx, cfg));
    char final_path[PATH];
    path_in(final_path, &t, "model.safetensors");
    mloc_status st;
    if (resume && exists(final_path)) {
        /* a finished run: nothing to do, but still check it is this run */
        mloc_train_config old;
        st = mloc_train_config_load_run(ctx, &old, run_dir);
        if (st == MLOC_OK) {
            json_t *a = mloc_train_config_to_json(&old), *b = mloc_train_config_to_json(cfg);
            if (!json_equal(a, b))
                st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s holds a finished run with other options", run_dir);
            json_decref(a);
            json_decref(b);
        }
        res.finished = 1;
        if (result) *result = res;
        return st;
    }
    mloc_ctx_set_threads(ctx, cfg->threads);
    st = setup(&t, resume);
    if (st != MLOC_OK) goto done;
    res.resumed_epoch = t.epoch;
    res.resumed_batch = t.batch;

    const int B = cfg->batch_size;
    double window_t = now_s();
    int64_t window_views = 0;
    for (; t.epoch < cfg->epochs; t.epoch++, t.batch = 0) {
        double epoch_t = now_s();
        int64_t epoch_views = 0;
        if (t.batch == 0) t.epoch_loss = 0, t.epoch_steps = t.epoch_correct = 0;
        st = mloc_loader_start_epoch(t.loader, t.epoch, t.batch);
        if (st == MLOC_OK && t.local_loader) st = mloc_loader_start_epoch(t.local_loader, t.epoch, t.batch);
        if (st == MLOC_OK && t.dino) st = mloc_dino_begin_epoch(t.dino, t.opt, t.epoch);
        if (st != MLOC_OK) goto done;
        for (;;) {
            mloc_batch *b, *lb = NULL;
            st = mloc_loader_next(t.loader, &b);
            if (st != MLOC_OK) goto done;
            if (!b) break;
            if (t.local_loader) {
                st = mloc_loader_next(t.local_loader, &lb);
                if (st == MLOC_OK && (!lb || lb->n != b->n || memcmp(lb->indices, b->indices, (size_t)b->n * sizeof(int64_t))))
                    st = mloc_error(ctx, MLOC_ERR_INTERNAL, "dino: the local crops' batch is not the global crops' images");
                if (st != MLOC_OK) {
                    if (lb) mloc_loader_release(t.local_loader, lb);
                    mloc_loader_release(t.loader, b);
                    goto done;
                }
            }
            double lr = mloc_schedule_lr(&t.sched, t.step), loss = 0;
            int correct = 0;
            mloc_optim_zero_grad(t.opt, &t.model->store);
            mloc_model_set_drop_step(t.model, cfg->seed, (uint64_t)t.step); /* and the models over its store */
            if (cfg->method == MLOC_METHOD_SIMCLR)
                st = mloc_simclr_step(ctx, t.model, &t.scratch, b->x, b->n, (float)cfg->temperature, &loss);
            else if (cfg->method == MLOC_METHOD_SIMSIAM)
                st = mloc_simsiam_step(ctx, t.model, t.twin, &t.scratch, b->x, b->n, &loss);
            else if (cfg->method == MLOC_METHOD_MAE)
                st = mloc_mae_step(ctx, t.mae, b->x, b->indices, b->n, t.epoch, &loss);
            else if (cfg->method == MLOC_METHOD_DINO)
                st = mloc_dino_step(ctx, t.dino, b->x, lb ? lb->x : NULL, b->n, t.epoch, &loss);
            else
                st = mloc_supervised_step(ctx, t.model, &t.scratch, b->x, b->labels, b->n, &loss, &correct);
            mloc_loader_release(t.loader, b);
            if (lb) mloc_loader_release(t.local_loader, lb);
            if (st == MLOC_ERR_DIVERGED)
                mloc_error_prefix(ctx, st, "epoch %d, step %" PRId64 " (lr %g)", t.epoch + 1, t.step, lr);
            if (st != MLOC_OK) goto done;
            st = mloc_optim_step(t.opt, &t.model->store, lr);
            if (st != MLOC_OK) goto done;
            mloc_model_params_changed(t.model);
            if (t.dino)
                mloc_dino_update_teacher(
                    t.dino, mloc_dino_momentum(&t.dino_cfg, t.step, (int64_t)cfg->epochs * t.steps_per_epoch));
            t.step++;
            t.batch++;
            t.epoch_loss += loss;
            t.epoch_steps++;
            t.epoch_correct += correct;
            t.window_loss += loss;
            t.window_steps++;
            window_views += (int64_t)t.crops * B;
            epoch_views += (int64_t)t.crops * B;
            views_done += (int64_t)t.crops * B;
            if (t.step % cfg->log_every == 0) {
                double dt = now_s() - window_t;
                log_line(&t, json_pack("{s:s, s:i, s:I, s:f, s:f, s:f}", "type", "step", "epoch", t.epoch + 1,
                                       "step", (json_int_t)t.step, "loss", t.window_loss / t.window_steps, "lr", lr,
                                       "views_per_s", dt > 0 ? window_views / dt : 0.0));
                window_t = now_s();
                t.window_loss = 0;
                t.window_steps = window_views = 0;
            }
            char status[128];
            snprintf(status, sizeof status, "epoch %d/%d loss %.4f", t.epoch + 1, cfg->epochs,
                     t.epoch_loss / t.epoch_steps);
            mloc_progress(ctx, "train", t.step, (int64_t)cfg->epochs * t.steps_per_epoch, status);
            /* Ctrl-C: checkpoint mid-epoch and stop; after the epoch's last
             * batch, finish the epoch (log line, checkpoint) first, below */
            if (mloc_ctx_interrupted(ctx) && t.batch < t.steps_per_epoch) {
                st = save_checkpoint(&t);
                if (st == MLOC_OK)
                    st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "interrupted in epoch %d at step %" PRId64
                                    "; checkpoint saved in %s/checkpoints", t.epoch + 1, t.step, run_dir);
                goto done;
            }
        }
        double dt = now_s() - epoch_t;
        json_t *line = json_pack("{s:s, s:i, s:I, s:f, s:f, s:f, s:f}", "type", "epoch", "epoch", t.epoch + 1, "step",
                                 (json_int_t)t.step, "loss", t.epoch_loss / t.epoch_steps, "lr",
                                 mloc_schedule_lr(&t.sched, t.step - 1), "views_per_s",
                                 dt > 0 ? (double)epoch_views / dt : 0.0, "seconds", dt);
        if (cfg->method == MLOC_METHOD_SUPERVISED)
            json_object_set_new(line, "train_acc", json_real((double)t.epoch_correct / (t.epoch_steps * B)));
        if (cfg->monitor_knn[0] && ((t.epoch + 1) % cfg->monitor_every == 0 || t.epoch + 1 == cfg->epochs)) {
            double acc;
            st = knn_monitor(&t, &acc);
            if (st != MLOC_OK) {
                json_decref(line);
                goto done;
            }
            json_object_set_new(line, "knn_acc", json_real(acc));
            res.knn_acc = acc;
        }
        res.last_loss = t.epoch_loss / t.epoch_steps;
        log_line(&t, line);
        int finished_epoch = t.epoch + 1, interrupted = mloc_ctx_interrupted(ctx);
        if (finished_epoch % cfg->checkpoint_every == 0 || finished_epoch == cfg->epochs || interrupted) {
            t.epoch++;
            t.batch = 0;
            st = save_checkpoint(&t);
            t.epoch--;
            if (st != MLOC_OK) goto done;
        }
        if (interrupted && finished_epoch < cfg->epochs) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "interrupted after epoch %d; checkpoint saved in %s/checkpoints",
                            finished_epoch, run_dir);
            goto done;
        }
    }
    {
        char bufs[3][32];
        snprintf(bufs[0], sizeof bufs[0], "%d", cfg->epochs);
        snprintf(bufs[1], sizeof bufs[1], "%" PRIu64, cfg->seed);
        snprintf(bufs[2], sizeof bufs[2], "%" PRId64, t.step);
        static const char *methods[] = {"simclr", "supervised", "simsiam", "dino", "mae"};
        const char *meta[] = {"method", methods[cfg->method], "dataset", t.data.spec, "epoch", bufs[0],
                              "seed", bufs[1], "steps", bufs[2], NULL};
        st = mloc_model_save(ctx, export_model(&t), final_path, -1, meta);
    }
    res.finished = st == MLOC_OK;
done:
    res.steps = t.step;
    res.seconds = now_s() - t_start;
    res.views_per_s = res.seconds > 0 ? views_done / res.seconds : 0;
    if (result) *result = res;
    teardown(&t);
    return st;
}
