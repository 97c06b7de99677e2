/* Features of a frozen encoder, and datasets fitted to its input.
 *
 * SPEC.md section 2: a representation is a tap's output tensor for one image,
 * flattened (no pooling); SPEC.md section 8: the probe and the kNN monitor
 * read the encoder output (m->feature) of un-augmented images, normalized
 * with mean 0.5 / std 0.5 unless configured otherwise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/analysis.h"

#define DEFAULT_BATCH 256

/* ---- datasets that fit an encoder ------------------------------------------ */

mloc_eval_data_options mloc_eval_data_options_default(void) {
    mloc_eval_data_options o;
    memset(&o, 0, sizeof o);
    o.fit = MLOC_EVAL_AUTO;
    o.channels = MLOC_EVAL_AUTO;
    return o;
}

/* Decide the fit for images h x w into an encoder of H x W: *fit and *size
 * for mloc_dataset_options. */
static mloc_status choose_fit(mloc_ctx *ctx, const char *spec, int h, int w, int H, int W,
                              int want, mloc_fit *fit, int *size) {
    *fit = MLOC_FIT_NONE;
    *size = 0;
    if (h == H && w == W) return MLOC_OK;
    if (want == MLOC_FIT_NONE)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "%s: images are %dx%d, the encoder takes %dx%d, and fit is none; use "
                          "--fit pad or --fit resize", spec, h, w, H, W);
    if (H != W)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "%s: images are %dx%d, the encoder takes %dx%d; only a square input "
                          "can be fitted", spec, h, w, H, W);
    if (want == MLOC_EVAL_AUTO) {
        if (h > H || w > W)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "%s: images are %dx%d, larger than the encoder's %dx%d input; use "
                              "--fit resize", spec, h, w, H, W);
        if ((H - h) % 2 || (W - w) % 2)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "%s: images are %dx%d, the encoder takes %dx%d, and an odd difference "
                              "cannot be padded evenly; use --fit resize", spec, h, w, H, W);
        *fit = MLOC_FIT_PAD;
    } else {
        *fit = (mloc_fit)want;
    }
    *size = H;
    return MLOC_OK;
}

static mloc_status choose_channels(mloc_ctx *ctx, const char *spec, int c, int C, int want,
                                   int *channels) {
    *channels = 0;
    int target = want == MLOC_EVAL_AUTO ? (c == 1 && C == 3 ? 3 : c) : want == 0 ? c : want;
    if (target != C) {
        if (want == MLOC_EVAL_AUTO && c == 3 && C == 1)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "%s: images have 3 channels, the encoder takes 1; convert them "
                              "to gray with --channels 1", spec);
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "%s: images would have %d channel(s), the encoder takes %d", spec,
                          target, C);
    }
    if (target != c) *channels = target;
    return MLOC_OK;
}

mloc_status mloc_eval_dataset_open(mloc_ctx *ctx, mloc_dataset *d, const char *spec,
                                   const mloc_model *m, const mloc_eval_data_options *opt) {
    memset(d, 0, sizeof *d);
    mloc_eval_data_options defaults = mloc_eval_data_options_default();
    if (!opt) opt = &defaults;
    if (opt->fit != MLOC_EVAL_AUTO && opt->fit != MLOC_FIT_NONE && opt->fit != MLOC_FIT_PAD &&
        opt->fit != MLOC_FIT_RESIZE)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: fit %d, expected auto, none, pad or resize",
                          spec, opt->fit);
    if (opt->channels != MLOC_EVAL_AUTO && opt->channels != 0 && opt->channels != 1 &&
        opt->channels != 3)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: channels %d, expected auto, 0, 1 or 3", spec,
                          opt->channels);
    const int C = m->cfg.in_channels, H = m->cfg.image_h, W = m->cfg.image_w;
    mloc_dataset_options o = mloc_dataset_options_default();
    o.indices = opt->indices;
    o.skip_corrupt = opt->skip_corrupt;
    MLOC_TRY(mloc_dataset_open(ctx, d, spec, &o));

    mloc_status st = choose_fit(ctx, spec, d->h, d->w, H, W, opt->fit, &o.fit, &o.size);
    if (st == MLOC_OK) st = choose_channels(ctx, spec, d->c, C, opt->channels, &o.channels);
    if (st != MLOC_OK) {
        mloc_dataset_free(d);
        return st;
    }
    if (o.fit == MLOC_FIT_NONE && o.channels == 0) return MLOC_OK;
    /* The data layer fits while it opens; opening again costs one more read
     * of the set, which only datasets of another size or format pay. */
    mloc_dataset_free(d);
    return mloc_dataset_open(ctx, d, spec, &o);
}

mloc_status mloc_eval_pipeline(mloc_ctx *ctx, mloc_aug_pipeline *pipe, mloc_aug_norm norm) {
    mloc_aug_config cfg = mloc_aug_config_default();
    cfg.preset = MLOC_AUG_NONE;
    cfg.size = 0;
    cfg.norm = norm;
    return mloc_aug_pipeline_make(ctx, pipe, &cfg);
}

/* ---- features ------------------------------------------------------------- */

mloc_status mloc_eval_find_value(mloc_ctx *ctx, const mloc_model *m, const char *name,
                                 int *value) {
    int t = name ? mloc_model_find_tap(m, name) : -1;
    if (t >= 0) {
        *value = m->taps[t].value;
        return MLOC_OK;
    }
    if (name && strcmp(name, "feature") == 0) {
        *value = m->feature;
        return MLOC_OK;
    }
    if (name && strcmp(name, "input") == 0) {
        *value = m->input;
        return MLOC_OK;
    }
    char list[1024] = "";
    size_t used = 0;
    for (int i = 0; i < m->n_taps && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s|", m->taps[i].name);
    return mloc_error(ctx, MLOC_ERR_USAGE, "'%s' is not a tap of %s; expected one of %sfeature|input",
                      name ? name : "(null)", m->arch, list);
}

mloc_status mloc_features_extract(mloc_ctx *ctx, mloc_model *m, const mloc_dataset *d,
                                  const int64_t *indices, int64_t n, int value, int batch,
                                  const mloc_aug_pipeline *pipe, float *out) {
    if (value < 0) value = m->feature;
    if (value >= m->n_values)
        return mloc_error(ctx, MLOC_ERR_USAGE, "features: value %d, expected 0..%d", value,
                          m->n_values - 1);
    if (n < 0) return mloc_error(ctx, MLOC_ERR_USAGE, "features: %lld images", (long long)n);
    if (batch <= 0) batch = DEFAULT_BATCH;
    mloc_aug_pipeline defpipe;
    if (!pipe) {
        MLOC_TRY(mloc_eval_pipeline(ctx, &defpipe, MLOC_AUG_NORM_HALF));
        pipe = &defpipe;
    }
    const int C = m->cfg.in_channels, H = m->cfg.image_h, W = m->cfg.image_w;
    int oh, ow;
    mloc_aug_out_size(pipe, d->h, d->w, &oh, &ow);
    if (d->c != C || oh != H || ow != W)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "features: %s: images are %dx%dx%d (C x H x W, after the pipeline), "
                          "the encoder takes %dx%dx%d", d->spec ? d->spec : "dataset", d->c, oh,
                          ow, C, H, W);
    for (int64_t i = 0; indices && i < n; i++)
        if (indices[i] < 0 || indices[i] >= d->n)
            return mloc_error(ctx, MLOC_ERR_USAGE, "features: entry %lld: index %lld, expected 0..%lld",
                              (long long)i, (long long)indices[i], (long long)d->n - 1);
    if (!indices && n > d->n)
        return mloc_error(ctx, MLOC_ERR_USAGE, "features: %lld images asked of a set of %lld",
                          (long long)n, (long long)d->n);
    if (n == 0) return MLOC_OK;

    const int64_t D = mloc_model_value_numel(m, value);
    const int B = n < batch ? (int)n : batch;
    const int64_t per = (int64_t)C * H * W;
    const int from_input = m->values[value].producer < 0; /* the normalized pixels */
    mloc_status st = MLOC_OK;
    float *x = NULL;
    int64_t *seq = NULL;
    /* plan for exactly B: a model planned for more would pad every batch */
    if (!from_input && (!m->exec || m->max_batch != B)) MLOC_TRY(mloc_model_plan(ctx, m, B));
    x = mloc_alloc(ctx, (size_t)B * (size_t)per * sizeof(float));
    seq = indices ? NULL : mloc_alloc(ctx, (size_t)B * sizeof(int64_t));
    if (!x || (!indices && !seq)) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "features: a batch of %d images", B);
        goto done;
    }
    const mloc_aug_key key = {.seed = 0, .purpose = "features", .epoch = MLOC_AUG_NO_EPOCH,
                              .first_view = 0};
    mloc_progress(ctx, "features", 0, n, "");
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "features: interrupted after %lld of %lld images",
                            (long long)i0, (long long)n);
            goto done;
        }
        const int nb = (int)(n - i0 < B ? n - i0 : B);
        const int64_t *ib = indices ? indices + i0 : seq;
        for (int k = 0; !indices && k < nb; k++) seq[k] = i0 + k;
        st = mloc_aug_batch(ctx, x, NULL, d, ib, nb, 1, pipe, &key);
        if (st != MLOC_OK) goto done;
        /* (nb, C, H, W) -> value (nb, D): only the nodes up to its producer */
        if (from_input) {
            memcpy(out + i0 * D, x, (size_t)nb * (size_t)D * sizeof(float));
        } else {
            st = mloc_model_forward(ctx, m, x, nb, MLOC_MODE_EVAL, value);
            if (st == MLOC_OK) st = mloc_model_read(ctx, m, value, out + i0 * D);
            if (st != MLOC_OK) goto done;
        }
        mloc_progress(ctx, "features", i0 + nb, n, "");
    }
done:
    mloc_free(x);
    mloc_free(seq);
    return st;
}

mloc_status mloc_features_labels(mloc_ctx *ctx, int32_t *labels, const mloc_dataset *d,
                                 const int64_t *indices, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        int64_t j = indices ? indices[i] : i;
        if (j < 0 || j >= d->n)
            return mloc_error(ctx, MLOC_ERR_USAGE, "labels: entry %lld: index %lld, expected 0..%lld",
                              (long long)i, (long long)j, (long long)d->n - 1);
        if (!d->labels || d->labels[j] < 0)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: image %lld has no label, expected a labelled set",
                              d->spec ? d->spec : "dataset", (long long)j);
        labels[i] = d->labels[j];
    }
    return MLOC_OK;
}

void mloc_features_l2_normalize(float *x, int64_t n, int64_t D) {
#pragma omp parallel for if (n * D >= (1 << 20)) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float *r = x + i * D;
        double s = 0;
        for (int64_t j = 0; j < D; j++) s += (double)r[j] * r[j];
        double nrm = sqrt(s), den = nrm > 1e-12 ? nrm : 1e-12;
        for (int64_t j = 0; j < D; j++) r[j] = (float)(r[j] / den);
    }
}
