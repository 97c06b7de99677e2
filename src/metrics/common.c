/* Pieces every metric shares: view sources, names of the variants, tap
 * lists, the f/g check, seeded choices, the spatial mean that turns a conv
 * channel into a unit activation (SPEC.md 4), and result-file helpers. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/io.h"
#include "memloc/rng.h"
#include "memloc/stats.h"

/* ---- view sources ----------------------------------------------------------- */

static mloc_status dataset_fill(const mloc_view_source *src, mloc_ctx *ctx, float *out,
                                const int64_t *points, int64_t n, int first_view, int views) {
    mloc_aug_key key = {.seed = src->seed, .purpose = src->purpose, .epoch = MLOC_AUG_NO_EPOCH,
                        .first_view = first_view};
    if (first_view == MLOC_VIEW_CLEAN) {
        key.first_view = 0; /* the clean pipeline draws nothing that it uses */
        return mloc_aug_batch(ctx, out, NULL, src->ds, points, n, 1, &src->clean, &key);
    }
    return mloc_aug_batch(ctx, out, NULL, src->ds, points, n, views, &src->aug, &key);
}

mloc_status mloc_view_source_dataset(mloc_ctx *ctx, mloc_view_source *src,
                                     const mloc_dataset *ds, const mloc_aug_pipeline *aug,
                                     uint64_t seed, const char *purpose) {
    memset(src, 0, sizeof *src);
    MLOC_TRY(mloc_aug_pipeline_check(ctx, aug));
    if (ds->c != 1 && ds->c != 3)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: images have %d channels, expected 1 or 3",
                          ds->spec ? ds->spec : "dataset", ds->c);
    src->ds = ds;
    src->aug = *aug;
    /* the clean view: the same output size and Normalize, no random step */
    src->clean = *aug;
    src->clean.crop = 0;
    src->clean.flip_p = 0;
    src->clean.flip_apply_p = 1;
    src->clean.jitter_p = 0;
    src->clean.gray_p = 0;
    src->seed = seed;
    snprintf(src->purpose, sizeof src->purpose, "%s", purpose ? purpose : "metrics");
    src->c = ds->c;
    mloc_aug_out_size(aug, ds->h, ds->w, &src->h, &src->w);
    src->n_points = ds->n;
    src->fill = dataset_fill;
    return MLOC_OK;
}

void mloc_view_source_custom(mloc_view_source *src, int c, int h, int w, int64_t n_points,
                             mloc_view_fill_fn fill, void *user) {
    memset(src, 0, sizeof *src);
    src->c = c;
    src->h = h;
    src->w = w;
    src->n_points = n_points;
    src->fill = fill;
    src->user = user;
}

mloc_status mloc_metrics_check_source(mloc_ctx *ctx, const char *what, const mloc_model *m,
                                      const mloc_view_source *src, const int64_t *points,
                                      int64_t n) {
    const int C = m->cfg.in_channels, H = m->cfg.image_h, W = m->cfg.image_w;
    if (src->c != C || src->h != H || src->w != W)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "%s: views are %dx%dx%d (C x H x W), the encoder takes %dx%dx%d", what,
                          src->c, src->h, src->w, C, H, W);
    for (int64_t i = 0; i < n; i++)
        if (points[i] < 0 || points[i] >= src->n_points)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "%s: point %lld: index %lld is outside the dataset (0..%lld)", what,
                              (long long)i, (long long)points[i], (long long)src->n_points - 1);
    return MLOC_OK;
}

/* ---- names ----------------------------------------------------------------- */

static const char *const views_names[] = {"clean", "pair", NULL};
static const char *const norm_names[] = {"range", "minmax", "none", NULL};
static const char *const rest_names[] = {"mean", "median", NULL};

static int find_name(const char *const *names, const char *s) {
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

const char *mloc_views_mode_name(mloc_views_mode v) {
    return (unsigned)v < 2 ? views_names[v] : "?";
}
const char *mloc_score_norm_name(mloc_score_norm n) {
    return (unsigned)n < 3 ? norm_names[n] : "?";
}
const char *mloc_rest_stat_name(mloc_rest_stat r) {
    return (unsigned)r < 2 ? rest_names[r] : "?";
}
int mloc_views_mode_parse(const char *s) { return find_name(views_names, s); }
int mloc_score_norm_parse(const char *s) { return find_name(norm_names, s); }
int mloc_rest_stat_parse(const char *s) { return find_name(rest_names, s); }

/* ---- taps -------------------------------------------------------------------- */

static void valid_taps(const mloc_model *m, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = 0;
    for (int t = 0; t < m->n_taps && used < size; t++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", t ? ", " : "", m->taps[t].name);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* sort ascending and drop duplicates; returns the new count */
static int sort_unique(int *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_int);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i]) v[k++] = v[i];
    return k;
}

mloc_status mloc_metrics_parse_taps(mloc_ctx *ctx, const mloc_model *m, const char *list,
                                    int **taps, int *n_taps) {
    *taps = NULL;
    *n_taps = 0;
    int *out = malloc(((size_t)m->n_taps + 1) * sizeof *out);
    if (!out) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory parsing taps");
    int n = 0;
    if (!list || strcmp(list, "all") == 0) {
        for (int t = 0; t < m->n_taps; t++) out[n++] = t;
    } else {
        const char *p = list;
        while (*p) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            char name[64];
            if (len == 0 || len >= sizeof name) {
                free(out);
                return mloc_error(ctx, MLOC_ERR_USAGE, "taps '%s': expected 'all' or names separated by commas",
                                  list);
            }
            memcpy(name, p, len);
            name[len] = 0;
            int t = mloc_model_find_tap(m, name);
            if (t < 0) {
                char valid[1024];
                valid_taps(m, valid, sizeof valid);
                free(out);
                return mloc_error(ctx, MLOC_ERR_USAGE, "unknown tap '%s' (valid: %s)", name, valid);
            }
            /* a repeated name is dropped below; never more entries than taps */
            if (n < m->n_taps) out[n++] = t;
            else {
                n = sort_unique(out, n);
                if (n < m->n_taps) out[n++] = t;
            }
            p += len;
            if (*p == ',') p++;
        }
    }
    n = sort_unique(out, n);
    *taps = out;
    *n_taps = n;
    return MLOC_OK;
}

mloc_status mloc_metrics_taps_copy(mloc_ctx *ctx, const mloc_model *m, const int *taps,
                                   int n_taps, int **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!taps || n_taps <= 0) return mloc_metrics_parse_taps(ctx, m, NULL, out, n_out);
    int *v = malloc((size_t)n_taps * sizeof *v);
    if (!v) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory copying taps");
    for (int i = 0; i < n_taps; i++) {
        if (taps[i] < 0 || taps[i] >= m->n_taps) {
            free(v);
            return mloc_error(ctx, MLOC_ERR_USAGE, "tap id %d, expected 0..%d", taps[i], m->n_taps - 1);
        }
        v[i] = taps[i];
    }
    *n_out = sort_unique(v, n_taps);
    *out = v;
    return MLOC_OK;
}

/* ---- f and g -------------------------------------------------------------------- */

mloc_status mloc_metrics_check_pair(mloc_ctx *ctx, const mloc_model *f, const mloc_model *g) {
    const mloc_model_config *a = &f->cfg, *b = &g->cfg;
    if (strcmp(f->arch, g->arch) != 0 || a->in_channels != b->in_channels ||
        a->image_h != b->image_h || a->image_w != b->image_w || a->width != b->width)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "f is %s width %g on %dx%dx%d, g is %s width %g on %dx%dx%d: f and g "
                          "must have the same architecture and input",
                          f->arch, a->width, a->in_channels, a->image_h, a->image_w, g->arch,
                          b->width, b->in_channels, b->image_h, b->image_w);
    for (int i = 0; i < f->table.n; i++) {
        const mloc_tensor *tf = &f->table.t[i];
        if (tf->group != MLOC_GROUP_ENCODER) continue;
        int j = mloc_table_find(&g->table, tf->name);
        if (j < 0)
            return mloc_error(ctx, MLOC_ERR_USAGE, "f has tensor '%s', g does not: f and g must have "
                              "the same architecture", tf->name);
        const mloc_tensor *tg = &g->table.t[j];
        int same = tf->ndim == tg->ndim;
        for (int d = 0; same && d < tf->ndim; d++) same = tf->shape[d] == tg->shape[d];
        if (!same)
            return mloc_error(ctx, MLOC_ERR_USAGE, "tensor '%s' has %lld elements in f and %lld in g "
                              "(different shapes): f and g must have the same architecture",
                              tf->name, (long long)tf->numel, (long long)tg->numel);
    }
    if (f->n_taps != g->n_taps)
        return mloc_error(ctx, MLOC_ERR_USAGE, "f has %d taps, g has %d", f->n_taps, g->n_taps);
    return MLOC_OK;
}

/* ---- seeded choices ----------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

mloc_status mloc_metrics_choose(mloc_ctx *ctx, int64_t n, int64_t k, uint64_t seed,
                                const char *tag, int64_t *pos, int64_t *count) {
    if (k > n) k = n;
    if (k < 0) k = 0;
    *count = k;
    if (k == n) {
        for (int64_t i = 0; i < n; i++) pos[i] = i;
        return MLOC_OK;
    }
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory choosing %lld of %lld",
                                 (long long)k, (long long)n);
    mloc_rng r;
    mloc_rng_init_tag(&r, seed, tag, 0, 0, 0);
    mloc_rng_permutation(&r, perm, n);
    memcpy(pos, perm, (size_t)k * sizeof *pos);
    free(perm);
    qsort(pos, (size_t)k, sizeof *pos, cmp_i64);
    return MLOC_OK;
}

int mloc_metrics_chunk_points(int batch, int views_per_point) {
    int p = views_per_point > 0 ? batch / views_per_point : batch;
    return p < 1 ? 1 : p;
}

/* ---- unit activations ----------------------------------------------------------------- */

/* Sum of v[0..n) (|v| with abs) in a fixed order: 4 running sums over
 * j mod 4, ((s0+s1)+(s2+s3)) plus the tail; independent sums keep the adds
 * from waiting on one chain. Sets *neg when an element is negative. */
static double row_sum(const float *v, int64_t n, int abs, int *neg) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, t = 0;
    int64_t j = 0;
    int any = 0;
    if (abs) {
        for (; j + 4 <= n; j += 4) {
            s0 += fabs((double)v[j]);
            s1 += fabs((double)v[j + 1]);
            s2 += fabs((double)v[j + 2]);
            s3 += fabs((double)v[j + 3]);
        }
        for (; j < n; j++) t += fabs((double)v[j]);
    } else {
        for (; j + 4 <= n; j += 4) {
            any |= (v[j] < 0) | (v[j + 1] < 0) | (v[j + 2] < 0) | (v[j + 3] < 0);
            s0 += (double)v[j];
            s1 += (double)v[j + 1];
            s2 += (double)v[j + 2];
            s3 += (double)v[j + 3];
        }
        for (; j < n; j++) {
            any |= v[j] < 0;
            t += (double)v[j];
        }
    }
    *neg |= any;
    return ((s0 + s1) + (s2 + s3)) + t;
}

void mloc_metrics_spatial_mean(double *act, const float *x, int64_t N, int U, int64_t HW,
                               int abs, int64_t *neg_img, int *neg_unit, float *neg_val) {
    int any_neg = 0;
    /* x is (N, U, HW): one row of HW values per (image, unit); each row is
     * summed by one thread in a fixed order */
#pragma omp parallel for schedule(static) reduction(| : any_neg) if (N * U * HW > MLOC_METRICS_PAR_MIN)
    for (int64_t r = 0; r < N * U; r++) act[r] = row_sum(x + r * HW, HW, abs, &any_neg) / (double)HW;
    *neg_img = -1;
    *neg_unit = -1;
    *neg_val = 0;
    /* the first negative element, for the error message (a rare path) */
    for (int64_t r = 0; any_neg && r < N * U && *neg_img < 0; r++)
        for (int64_t j = 0; j < HW; j++)
            if (x[r * HW + j] < 0) {
                *neg_img = r / U;
                *neg_unit = (int)(r % U);
                *neg_val = x[r * HW + j];
                break;
            }
}

void mloc_metrics_token_mean(double *act, const float *x, int64_t N, int T, int U, int abs,
                             int64_t *neg_img, int *neg_unit, float *neg_val) {
    int any_neg = 0;
    /* one sample per thread: its U running sums over the tokens in order */
#pragma omp parallel for schedule(static) reduction(| : any_neg) if (N * T * U > MLOC_METRICS_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        double *a = act + n * U;
        const float *xs = x + n * T * U;
        for (int u = 0; u < U; u++) a[u] = 0;
        for (int t = 0; t < T; t++) {
            const float *row = xs + (int64_t)t * U;
            for (int u = 0; u < U; u++) {
                any_neg |= row[u] < 0;
                a[u] += abs ? fabs((double)row[u]) : (double)row[u];
            }
        }
        for (int u = 0; u < U; u++) a[u] /= T;
    }
    *neg_img = -1;
    *neg_unit = -1;
    *neg_val = 0;
    if (abs) return;
    for (int64_t i = 0; any_neg && i < N * T * U; i++)
        if (x[i] < 0) {
            *neg_img = i / ((int64_t)T * U);
            *neg_unit = (int)(i % U);
            *neg_val = x[i];
            break;
        }
}

/* ---- result files ------------------------------------------------------------------- */

json_t *mloc_metrics_json_real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

int mloc_metrics_fmt_double(char *buf, size_t size, double v) {
    if (isnan(v)) return snprintf(buf, size, "nan");
    if (isinf(v)) return snprintf(buf, size, v > 0 ? "inf" : "-inf");
    return snprintf(buf, size, "%.17g", v);
}

json_t *mloc_metrics_run_json(const mloc_metric_run *run) {
    json_t *o = json_object();
    if (!o || !run) return o;
#define SET_STR(key, v) \
    if (v) json_object_set_new(o, key, json_string(v))
    SET_STR("command", run->command);
    SET_STR("f", run->f_path);
    SET_STR("g", run->g_path);
    SET_STR("data", run->data_spec);
    SET_STR("data_sha256", run->data_digest);
#undef SET_STR
    if (run->candidates > 0) json_object_set_new(o, "candidates_given", json_integer(run->candidates));
    json_object_set_new(o, "seed", json_integer((json_int_t)run->seed));
    if (run->aug) {
        json_object_set_new(o, "aug_preset", json_string(run->aug_preset ? run->aug_preset : "custom"));
        char buf[2048];
        int len = mloc_aug_pipeline_format_json(buf, sizeof buf, run->aug);
        json_t *p = len > 0 && len < (int)sizeof buf ? json_loads(buf, 0, NULL) : NULL;
        json_object_set_new(o, "aug_pipeline", p ? p : json_null());
        json_object_set_new(o, "normalize_order",
                            json_string(run->aug->normalize_first
                                            ? "normalize, then augment (--compat-normalize-first)"
                                            : "augment, then normalize"));
        json_object_set_new(o, "aug_seed", json_integer((json_int_t)run->aug_seed));
        json_object_set_new(o, "aug_stream",
                            json_pack("[s, s, s, s, s]", "seed", run->purpose ? run->purpose : "?",
                                      "no epoch", "dataset index", "view"));
    }
    json_object_set_new(o, "memloc_version", json_string(MLOC_VERSION));
    return o;
}

mloc_status mloc_metrics_path(mloc_ctx *ctx, char *buf, size_t size, const char *dir,
                              const char *name) {
    int len = snprintf(buf, size, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= size)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: path too long", dir);
    return MLOC_OK;
}

mloc_status mloc_metrics_write_csv(mloc_ctx *ctx, const char *path, const char *header,
                                   int64_t rows, mloc_csv_row_fn row, void *user) {
    mloc_atomic_file af;
    MLOC_TRY(mloc_atomic_open(ctx, &af, path));
    char line[8192];
    int bad = fprintf(af.fp, "%s\n", header) < 0;
    for (int64_t i = 0; i < rows && !bad; i++) {
        int len = row(user, i, line, sizeof line);
        if (len < 0 || (size_t)len >= sizeof line) {
            mloc_atomic_abort(&af);
            return mloc_error(ctx, MLOC_ERR_INTERNAL, "%s: row %lld too long", path, (long long)i);
        }
        bad = fprintf(af.fp, "%s\n", line) < 0;
    }
    if (bad) {
        mloc_atomic_abort(&af);
        return mloc_error(ctx, MLOC_ERR_IO, "%s: cannot write", path);
    }
    return mloc_atomic_commit(ctx, &af);
}
