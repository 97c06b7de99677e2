/* Metrics internals shared by sslmem.c, layermem.c, unitmem.c, classmem.c,
 * analyses.c and results.c. */
#ifndef MLOC_METRICS_INTERNAL_H
#define MLOC_METRICS_INTERNAL_H

#include <jansson.h>

#include "memloc/metrics.h"

/* Loops over fewer elements than this run on one thread: a parallel region
 * costs more than it saves on tiny models (and spins on a loaded machine).
 * Each point is one thread's sequential loop either way, so results do
 * not change. */
#define MLOC_METRICS_PAR_MIN (1 << 15)

/* Check that src's views fit m's input and that every point id is valid;
 * `what` names the metric in errors. */
mloc_status mloc_metrics_check_source(mloc_ctx *ctx, const char *what, const mloc_model *m,
                                      const mloc_view_source *src, const int64_t *points,
                                      int64_t n);

/* Resolve taps (NULL / 0: all) into a malloc'ed copy in forward order. */
mloc_status mloc_metrics_taps_copy(mloc_ctx *ctx, const mloc_model *m, const int *taps,
                                   int n_taps, int **out, int *n_out);

/* Points per chunk so that points * views_per_point <= batch (at least 1). */
int mloc_metrics_chunk_points(int batch, int views_per_point);

/* act (N, U) in double: the mean over spatial positions of each channel of
 * x (N, U, HW) float, or |x| with abs; summation in index order. Returns
 * the first negative element's (image, unit) in *neg_img / *neg_unit when
 * !abs and one exists (else -1), with its value in *neg_val. */
void mloc_metrics_spatial_mean(double *act, const float *x, int64_t N, int U, int64_t HW,
                               int abs, int64_t *neg_img, int *neg_unit, float *neg_val);
/* The same for token taps (MLOC_UNIT_TOKEN_MEAN, a ViT's (T, U) values):
 * act (N, U) = the mean over the T tokens of each feature of x (N, T, U)
 * (|x| with abs), summed in token order. */
void mloc_metrics_token_mean(double *act, const float *x, int64_t N, int T, int U, int abs,
                             int64_t *neg_img, int *neg_unit, float *neg_val);

/* The variant of a run as a JSON object (aug pipeline, normalize order,
 * seeds, paths). Never NULL unless out of memory. */
json_t *mloc_metrics_run_json(const mloc_metric_run *run);

/* Write a CSV file atomically from rows produced by `row(i, buf)`. */
typedef int (*mloc_csv_row_fn)(void *user, int64_t i, char *buf, size_t size);
mloc_status mloc_metrics_write_csv(mloc_ctx *ctx, const char *path, const char *header,
                                   int64_t rows, mloc_csv_row_fn row, void *user);

/* "dir/name" into buf (ERR_USAGE if too long). */
mloc_status mloc_metrics_path(mloc_ctx *ctx, char *buf, size_t size, const char *dir,
                              const char *name);

/* %.17g, or "nan" / "inf" spelt as NumPy reads them. */
int mloc_metrics_fmt_double(char *buf, size_t size, double v);
/* A JSON number, null for NaN / Inf (FORMATS.md 5). */
json_t *mloc_metrics_json_real(double v);

/* Unit activations averaged over views, chunk by chunk (UnitMem and
 * ClassMem): for the points in chunks of at most `batch / views` points,
 * mu (np, units) = (1/views) sum_v act_u(view v), act_u the spatial mean of
 * channel u (|.| with abs) of the taps tl[0..T) concatenated in that order
 * (offset[T] units in all); views 0..views-1 of the source, or its clean
 * view (clean, views 1). sink(user, p0, np, mu) receives each chunk in
 * point order. `what` names the metric in errors and progress.
 * *work_bytes receives the scratch allocated. */
typedef mloc_status (*mloc_unit_sink_fn)(void *user, mloc_ctx *ctx, int64_t p0, int64_t np,
                                         const double *mu);
mloc_status mloc_metrics_unit_means(mloc_ctx *ctx, const char *what, mloc_model *m,
                                    const mloc_view_source *src, const int64_t *points,
                                    int64_t n, const int *tl, int T, const int *offset,
                                    int views, int clean, int abs, int batch,
                                    mloc_unit_sink_fn sink, void *user, size_t *work_bytes);

/* Allocate the per-unit arrays of u for taps tl[0..T) of m (names, offset,
 * score, mu_max, mu_rest, argmax, dead) and n point ids. */
mloc_status mloc_unit_scores_alloc(mloc_ctx *ctx, mloc_unit_scores *u, const mloc_model *m,
                                   const int *tl, int T, int64_t n);

#endif
