/* ClassMem (SPEC.md section 4; Wang et al., NeurIPS 2024, section 3: the
 * class-level counterpart of UnitMem, after the class selectivity of
 * Morcos et al. 2018).
 *
 * Definition. For the evaluated images D with classes c, a unit's class
 * mean is mu_{c,u} = mean over the images x of class c in D of a_u(x), where
 * a_u(x) is the unit's activation (spatial mean of its channel) on the clean
 * image (default) or averaged over K augmented views. Over the classes that
 * have images: mu_max,u = max_c mu_{c,u} at class c*_u, mu_rest,u = mean
 * (default) or median of the other classes' means, and
 *   ClassMem(u) = (mu_max,u - mu_rest,u) / (mu_max,u + mu_rest,u),
 * 0 for a dead unit (mu_max = 0).
 *
 * Deviations from the reference code (ClassMem.py): the reference appends
 * every image's activations to one list that is never reset, so each
 * "class mean" averages all images seen so far (SPEC.md 6: a bug); memloc
 * averages the images of each class. The reference runs the un-augmented
 * image 10 times, which changes nothing in eval mode, so memloc runs it once
 * by default. The images per class are the first N of each class in dataset
 * order (or a seeded choice), not a hand-made index file. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/rng.h"

mloc_unit_config mloc_classmem_config_default(void) {
    mloc_unit_config c = mloc_unitmem_config_default();
    c.k = 1;
    c.augment = 0;
    return c;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

mloc_status mloc_classmem_select(mloc_ctx *ctx, const int32_t *labels, int64_t n, int n_classes,
                                 int64_t per_class, int random, uint64_t seed, int64_t **out,
                                 int64_t *count) {
    *out = NULL;
    *count = 0;
    if (n_classes < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: %d classes, expected >= 1", n_classes);
    if (per_class < 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: %lld images per class, expected >= 0 (0: all)",
                          (long long)per_class);
    int64_t *sel = malloc((size_t)(n > 0 ? n : 1) * sizeof *sel);
    int64_t *taken = calloc((size_t)n_classes, sizeof *taken);
    int64_t *order = random ? malloc((size_t)(n > 0 ? n : 1) * sizeof *order) : NULL;
    if (!sel || !taken || (random && !order)) {
        free(sel);
        free(taken);
        free(order);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory selecting images per class");
    }
    if (random) {
        mloc_rng r;
        mloc_rng_init_tag(&r, seed, "classmem-choice", 0, 0, 0);
        mloc_rng_permutation(&r, order, n);
    }
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = random ? order[j] : j;
        int32_t c = labels[i];
        if (c < 0) continue;
        if (c >= n_classes) {
            free(sel);
            free(taken);
            free(order);
            return mloc_error(ctx, MLOC_ERR_DATA, "classmem: image %lld: label %d, expected 0..%d",
                              (long long)i, c, n_classes - 1);
        }
        if (per_class > 0 && taken[c] >= per_class) continue;
        taken[c]++;
        sel[k++] = i;
    }
    if (random) qsort(sel, (size_t)k, sizeof *sel, cmp_i64);
    free(taken);
    free(order);
    *out = sel;
    *count = k;
    return MLOC_OK;
}

typedef struct {
    const int32_t *labels;
    double *sum;     /* (n_classes, U) */
    int64_t U;
} classmem_state;

/* class sums in point order: each unit is one thread's sequential loop */
static mloc_status classmem_sink(void *user, mloc_ctx *ctx, int64_t p0, int64_t np,
                                 const double *mu) {
    (void)ctx;
    classmem_state *s = user;
#pragma omp parallel for schedule(static) if (np * s->U > MLOC_METRICS_PAR_MIN)
    for (int64_t u = 0; u < s->U; u++)
        for (int64_t i = 0; i < np; i++) s->sum[(int64_t)s->labels[p0 + i] * s->U + u] += mu[i * s->U + u];
    return MLOC_OK;
}

mloc_status mloc_classmem_compute(mloc_ctx *ctx, mloc_unit_scores *res, mloc_model *m,
                                  const mloc_view_source *src, const int64_t *points,
                                  const int32_t *labels, int64_t n, int n_classes,
                                  const int *taps, int n_taps, const mloc_unit_config *cfg) {
    memset(res, 0, sizeof *res);
    res->mu_tap = -1;
    mloc_unit_config defaults = mloc_classmem_config_default();
    if (!cfg) cfg = &defaults;
    if (cfg->augment && cfg->k < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: K = %d views, expected >= 1", cfg->k);
    if (cfg->batch < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: batch %d, expected >= 1", cfg->batch);
    if (cfg->rest != MLOC_REST_MEAN && cfg->rest != MLOC_REST_MEDIAN)
        return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: rest statistic %d, expected mean or median", (int)cfg->rest);
    if (n_classes < 2) return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: %d classes, expected at least 2", n_classes);
    if (n < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: no images to evaluate");
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return mloc_error(ctx, MLOC_ERR_USAGE, "classmem: point %lld (index %lld): label %d, expected 0..%d",
                              (long long)i, (long long)points[i], labels[i], n_classes - 1);
    MLOC_TRY(mloc_metrics_check_source(ctx, "classmem", m, src, points, n));
    int *tl = NULL, T = 0;
    MLOC_TRY(mloc_metrics_taps_copy(ctx, m, taps, n_taps, &tl, &T));
    mloc_status st = mloc_unit_scores_alloc(ctx, res, m, tl, T, n);
    if (st != MLOC_OK) {
        free(tl);
        return st;
    }
    const int64_t U = res->units;
    classmem_state s = {.labels = labels, .U = U};
    double *means = NULL;
    int64_t *ids = NULL;
    s.sum = calloc((size_t)n_classes * (size_t)U, sizeof(double));
    res->class_count = calloc((size_t)n_classes, sizeof(int64_t));
    means = malloc((size_t)n_classes * (size_t)U * sizeof(double));
    ids = malloc((size_t)n_classes * sizeof(int64_t));
    if (!s.sum || !res->class_count || !means || !ids) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "classmem: out of memory for %d classes x %lld units",
                        n_classes, (long long)U);
        goto fail;
    }
    res->n_classes_total = n_classes;
    for (int64_t i = 0; i < n; i++) res->class_count[labels[i]]++;
    int used = 0;
    for (int c = 0; c < n_classes; c++) used += res->class_count[c] > 0;
    if (used < 2) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "classmem: the images cover %d class(es), expected at least 2", used);
        goto fail;
    }
    size_t work = 0;
    st = mloc_metrics_unit_means(ctx, "classmem", m, src, points, n, tl, T, res->offset,
                                 cfg->augment ? cfg->k : 1, !cfg->augment, cfg->abs, cfg->batch,
                                 classmem_sink, &s, &work);
    if (st != MLOC_OK) goto fail;
    /* the class means of the classes with images, in class order */
    int64_t r = 0;
    for (int c = 0; c < n_classes; c++) {
        if (!res->class_count[c]) continue;
        for (int64_t u = 0; u < U; u++) means[r * U + u] = s.sum[(int64_t)c * U + u] / (double)res->class_count[c];
        ids[r++] = c;
    }
    st = mloc_unitmem_from_mu(ctx, means, r, U, ids, cfg->rest, res->score, res->mu_max, res->mu_rest,
                              res->argmax, res->dead);
    if (st != MLOC_OK) goto fail;
    memcpy(res->points, points, (size_t)n * sizeof(int64_t));
    res->n_classes = used;
    res->work_bytes = work + (size_t)n_classes * (size_t)U * 2 * sizeof(double);
    res->cfg = *cfg;
    free(s.sum);
    free(means);
    free(ids);
    free(tl);
    return MLOC_OK;
fail:
    free(s.sum);
    free(means);
    free(ids);
    free(tl);
    mloc_unit_scores_free(res);
    return st;
}
