/* Pipelines: presets (FORMATS.md 3.6), the user-level config, validation,
 * names, and the JSON replay records. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "augment/internal.h"

static const char *const preset_names[] = {
#define MLOC_X(id, name) name,
    MLOC_AUG_PRESET_LIST(MLOC_X)
#undef MLOC_X
};

static const struct {
    const char *name;
    float mean[3], std[3];
} norms[] = {
#define MLOC_X(id, name, m0, m1, m2, s0, s1, s2) {name, {m0, m1, m2}, {s0, s1, s2}},
    MLOC_AUG_NORM_LIST(MLOC_X)
#undef MLOC_X
};

const char *mloc_aug_preset_name(mloc_aug_preset p) {
    return (unsigned)p < MLOC_AUG_PRESET_COUNT ? preset_names[p] : "?";
}

const char *mloc_aug_norm_name(mloc_aug_norm n) {
    return (unsigned)n < MLOC_AUG_NORM_COUNT ? norms[n].name : "?";
}

/* "a|b|c" of a name table, for error messages. */
static void join_names(char *buf, size_t size, const char *const *names, int count) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "|" : "", names[i]);
}

mloc_status mloc_aug_preset_parse(mloc_ctx *ctx, const char *name, mloc_aug_preset *out) {
    for (int i = 0; i < MLOC_AUG_PRESET_COUNT; i++)
        if (name && strcmp(name, preset_names[i]) == 0) {
            *out = (mloc_aug_preset)i;
            return MLOC_OK;
        }
    char list[256];
    join_names(list, sizeof list, preset_names, MLOC_AUG_PRESET_COUNT);
    return mloc_error(ctx, MLOC_ERR_USAGE, "augmentation preset '%s' is not one of %s",
                      name ? name : "(null)", list);
}

mloc_status mloc_aug_norm_parse(mloc_ctx *ctx, const char *name, mloc_aug_norm *out) {
    const char *names[MLOC_AUG_NORM_COUNT];
    for (int i = 0; i < MLOC_AUG_NORM_COUNT; i++) {
        names[i] = norms[i].name;
        if (name && strcmp(name, norms[i].name) == 0) {
            *out = (mloc_aug_norm)i;
            return MLOC_OK;
        }
    }
    char list[256];
    join_names(list, sizeof list, names, MLOC_AUG_NORM_COUNT);
    return mloc_error(ctx, MLOC_ERR_USAGE, "normalization '%s' is not one of %s",
                      name ? name : "(null)", list);
}

void mloc_aug_norm_values(mloc_aug_norm n, float mean[3], float std[3]) {
    if ((unsigned)n >= MLOC_AUG_NORM_COUNT) n = MLOC_AUG_NORM_HALF;
    memcpy(mean, norms[n].mean, sizeof norms[n].mean);
    memcpy(std, norms[n].std, sizeof norms[n].std);
}

mloc_aug_config mloc_aug_config_default(void) {
    mloc_aug_config c;
    memset(&c, 0, sizeof c);
    c.preset = MLOC_AUG_SIMCLR;
    c.size = 32;
    c.strength = 1.0f;
    c.crop_scale_min = 0.08f;
    c.flip_p = -1.0f;
    c.jitter_p = -1.0f;
    c.gray_p = -1.0f;
    c.norm = MLOC_AUG_NORM_HALF;
    c.antialias = 1;
    c.compat_normalize_first = 0;
    return c;
}

/* ColorJitter._check_input for a scalar v: [max(0, 1-v), 1+v], or [-v, v]
 * for hue. v = 0 gives the identity range (op disabled). */
static void jitter_range(float *range, double v, int hue) {
    if (hue) {
        range[0] = (float)-v;
        range[1] = (float)v;
    } else {
        range[0] = (float)fmax(0.0, 1.0 - v);
        range[1] = (float)(1.0 + v);
    }
}

static int prob_ok(float p) { return p >= 0.0f && p <= 1.0f; }

mloc_status mloc_aug_pipeline_check(mloc_ctx *ctx, const mloc_aug_pipeline *pp) {
    if (pp->out_h < 0 || pp->out_w < 0 || pp->out_h > 65536 || pp->out_w > 65536)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: output size %dx%d, expected 0..65536",
                          pp->out_h, pp->out_w);
    if (pp->crop) {
        if (!(pp->scale[0] > 0.0f && pp->scale[0] <= pp->scale[1]))
            return mloc_error(ctx, MLOC_ERR_CONFIG,
                              "augmentation: crop scale (%g, %g), expected 0 < min <= max",
                              pp->scale[0], pp->scale[1]);
        if (!(pp->ratio[0] > 0.0f && pp->ratio[0] <= pp->ratio[1]))
            return mloc_error(ctx, MLOC_ERR_CONFIG,
                              "augmentation: crop ratio (%g, %g), expected 0 < min <= max",
                              pp->ratio[0], pp->ratio[1]);
    }
    const char *pn[4] = {"flip_apply_p", "flip_p", "jitter_p", "gray_p"};
    const float pv[4] = {pp->flip_apply_p, pp->flip_p, pp->jitter_p, pp->gray_p};
    for (int i = 0; i < 4; i++)
        if (!prob_ok(pv[i]))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: %s %g, expected 0..1", pn[i],
                              pv[i]);
    const char *jn[3] = {"brightness", "contrast", "saturation"};
    const float *jr[3] = {pp->brightness, pp->contrast, pp->saturation};
    for (int i = 0; i < 3; i++)
        if (!(jr[i][0] >= 0.0f && jr[i][0] <= jr[i][1] && isfinite(jr[i][1])))
            return mloc_error(ctx, MLOC_ERR_CONFIG,
                              "augmentation: %s range (%g, %g), expected 0 <= lo <= hi", jn[i],
                              jr[i][0], jr[i][1]);
    if (!(pp->hue[0] >= -0.5f && pp->hue[0] <= pp->hue[1] && pp->hue[1] <= 0.5f))
        return mloc_error(ctx, MLOC_ERR_CONFIG,
                          "augmentation: hue range (%g, %g), expected -0.5 <= lo <= hi <= 0.5",
                          pp->hue[0], pp->hue[1]);
    for (int i = 0; i < 3; i++)
        if (!(pp->std[i] > 0.0f) || !isfinite(pp->mean[i]))
            return mloc_error(ctx, MLOC_ERR_CONFIG,
                              "augmentation: normalize channel %d mean %g std %g, expected std > 0",
                              i, pp->mean[i], pp->std[i]);
    return MLOC_OK;
}

mloc_status mloc_aug_pipeline_make(mloc_ctx *ctx, mloc_aug_pipeline *pp, const mloc_aug_config *cfg) {
    memset(pp, 0, sizeof *pp);
    if ((unsigned)cfg->preset >= MLOC_AUG_PRESET_COUNT)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: preset %d unknown", (int)cfg->preset);
    if (cfg->size < 0 || cfg->size > 65536)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: size %d, expected 0..65536", cfg->size);
    if (!(cfg->strength >= 0.0f && isfinite(cfg->strength)))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: strength %g, expected >= 0",
                          cfg->strength);
    if (!(cfg->crop_scale_min > 0.0f && cfg->crop_scale_min <= 1.0f))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: crop scale min %g, expected (0, 1]",
                          cfg->crop_scale_min);
    if ((unsigned)cfg->norm >= MLOC_AUG_NORM_COUNT)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "augmentation: normalization %d unknown",
                          (int)cfg->norm);

    pp->out_h = pp->out_w = cfg->size;
    pp->scale[0] = cfg->crop_scale_min;
    pp->scale[1] = 1.0f;
    pp->ratio[0] = 3.0f / 4.0f;
    pp->ratio[1] = 4.0f / 3.0f;
    pp->antialias = cfg->antialias ? 1 : 0;
    pp->flip_apply_p = 1.0f;
    pp->normalize_first = cfg->compat_normalize_first ? 1 : 0;
    mloc_aug_norm_values(cfg->norm, pp->mean, pp->std);

    /* base jitter (b, c, s, h), its RandomApply p, flip p, gray p */
    double base[4] = {0, 0, 0, 0};
    float jp = 0, fp = 0, gp = 0;
    switch (cfg->preset) {
    case MLOC_AUG_NONE:
        break;
    case MLOC_AUG_SIMCLR: /* layer_mem.py */
        pp->crop = 1;
        base[0] = base[1] = base[2] = 0.8;
        base[3] = 0.2;
        jp = 0.8f;
        fp = 0.5f;
        gp = 0.2f;
        break;
    case MLOC_AUG_UNITMEM: /* UnitMem.py: RandomApply([RandomHorizontalFlip()], p=0.5) */
        pp->crop = 1;
        base[0] = base[1] = base[2] = 0.9;
        base[3] = 0.1;
        jp = 0.9f;
        fp = 0.5f;
        pp->flip_apply_p = 0.5f;
        gp = 0.1f;
        break;
    default:
        break;
    }
    if (cfg->flip_p >= 0.0f) fp = cfg->flip_p;
    if (cfg->jitter_p >= 0.0f) jp = cfg->jitter_p;
    if (cfg->gray_p >= 0.0f) gp = cfg->gray_p;
    pp->flip_p = fp;
    pp->jitter_p = jp;
    pp->gray_p = gp;
    /* the reference code's ColorJitter(0.8*s, 0.8*s, 0.8*s, 0.2*s), in double
     * as Python forms it */
    double v[4];
    for (int k = 0; k < 4; k++) v[k] = base[k] * (double)cfg->strength;
    jitter_range(pp->brightness, v[0], 0);
    jitter_range(pp->contrast, v[1], 0);
    jitter_range(pp->saturation, v[2], 0);
    jitter_range(pp->hue, v[3], 1);
    mloc_status st = mloc_aug_pipeline_check(ctx, pp);
    if (st != MLOC_OK) return mloc_error_prefix(ctx, st, "preset %s strength %g",
                                                mloc_aug_preset_name(cfg->preset), cfg->strength);
    return MLOC_OK;
}

void mloc_aug_out_size(const mloc_aug_pipeline *pipe, int h, int w, int *out_h, int *out_w) {
    *out_h = pipe->out_h > 0 ? pipe->out_h : h;
    *out_w = pipe->out_w > 0 ? pipe->out_w : w;
}

/* ---- JSON lines ----------------------------------------------------------------- */

#define APPEND(...)                                                                   \
    do {                                                                              \
        int k_ = snprintf(len < size ? buf + len : NULL, len < size ? size - len : 0,   \
                          __VA_ARGS__);                                               \
        if (k_ > 0) len += (size_t)k_;                                                \
    } while (0)

int mloc_aug_params_format_json(char *buf, size_t size, const mloc_aug_params *p,
                                int64_t epoch, int64_t sample, int64_t view) {
    static const char *const op_names[4] = {"brightness", "contrast", "saturation", "hue"};
    size_t len = 0;
    if (epoch == MLOC_AUG_NO_EPOCH)
        APPEND("{\"epoch\":null");
    else
        APPEND("{\"epoch\":%lld", (long long)epoch);
    APPEND(",\"sample\":%lld,\"view\":%lld,\"size\":[%d,%d],\"crop\":[%d,%d,%d,%d]",
           (long long)sample, (long long)view, p->out_h, p->out_w, p->top, p->left, p->height,
           p->width);
    APPEND(",\"attempts\":%d,\"fallback\":%d,\"flip\":%d,\"jitter\":%d", p->attempts, p->fallback,
           p->flip, p->jitter);
    APPEND(",\"order\":[%d,%d,%d,%d]", p->order[0], p->order[1], p->order[2], p->order[3]);
    for (int k = 0; k < 4; k++) {
        if (p->jitter && p->enabled[k])
            APPEND(",\"%s\":%.9g", op_names[k], (double)p->factor[k]);
        else
            APPEND(",\"%s\":null", op_names[k]);
    }
    APPEND(",\"gray\":%d}", p->gray);
    return (int)len;
}

mloc_status mloc_aug_params_write_json(mloc_ctx *ctx, FILE *fp, const char *what,
                                       const mloc_aug_params *p, int64_t epoch, int64_t sample,
                                       int64_t view) {
    char line[512];
    int len = mloc_aug_params_format_json(line, sizeof line, p, epoch, sample, view);
    if (len < 0 || len >= (int)sizeof line)
        return mloc_error(ctx, MLOC_ERR_INTERNAL, "%s: augmentation record too long", what);
    if (fprintf(fp, "%s\n", line) < 0)
        return mloc_error(ctx, MLOC_ERR_IO, "%s: cannot write augmentation parameters", what);
    return MLOC_OK;
}

int mloc_aug_pipeline_format_json(char *buf, size_t size, const mloc_aug_pipeline *pp) {
    size_t len = 0;
    APPEND("{\"schema\":\"memloc.aug_pipeline/1\",\"size\":[%d,%d],\"crop\":%d", pp->out_h,
           pp->out_w, pp->crop);
    APPEND(",\"scale\":[%.9g,%.9g],\"ratio\":[%.9g,%.9g],\"interpolation\":\"bilinear\"",
           (double)pp->scale[0], (double)pp->scale[1], (double)pp->ratio[0], (double)pp->ratio[1]);
    APPEND(",\"antialias\":%s,\"flip_apply_p\":%.9g,\"flip_p\":%.9g,\"jitter_p\":%.9g",
           pp->antialias ? "true" : "false", (double)pp->flip_apply_p, (double)pp->flip_p,
           (double)pp->jitter_p);
    APPEND(",\"brightness\":[%.9g,%.9g],\"contrast\":[%.9g,%.9g]", (double)pp->brightness[0],
           (double)pp->brightness[1], (double)pp->contrast[0], (double)pp->contrast[1]);
    APPEND(",\"saturation\":[%.9g,%.9g],\"hue\":[%.9g,%.9g],\"gray_p\":%.9g",
           (double)pp->saturation[0], (double)pp->saturation[1], (double)pp->hue[0],
           (double)pp->hue[1], (double)pp->gray_p);
    APPEND(",\"mean\":[%.9g,%.9g,%.9g],\"std\":[%.9g,%.9g,%.9g],\"normalize_first\":%s}",
           (double)pp->mean[0], (double)pp->mean[1], (double)pp->mean[2], (double)pp->std[0],
           (double)pp->std[1], (double)pp->std[2], pp->normalize_first ? "true" : "false");
    return (int)len;
}
