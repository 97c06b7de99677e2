/* The memorization metrics (SPEC.md sections 2-4, 6 and 7): SSLMem per tap
 * (LayerMem, DeltaLayerMem and the paper's Table 1), UnitMem, ClassMem, and
 * the analyses built on them.
 *
 * Every metric reads the encoder's taps (model.h) on views delivered by a
 * view source: by default the augmentation pipeline over a dataset, in tests
 * fixed tensors. So the math is testable apart from the augmentations, and f
 * and g always see the same draws (common random numbers, SPEC.md 2).
 *
 *     mloc_view_source src;
 *     MLOC_TRY(mloc_view_source_dataset(ctx, &src, &ds, &aug_pipe, seed, MLOC_PURPOSE_SSLMEM));
 *     mloc_sslmem_config sc = mloc_sslmem_config_default();
 *     mloc_sslmem_result r;
 *     MLOC_TRY(mloc_sslmem_compute(ctx, &r, f, g, &src, candidates, n, NULL, 0, &sc));
 *     mloc_layermem_config lc = mloc_layermem_config_default();
 *     mloc_layermem_table t;
 *     MLOC_TRY(mloc_layermem_table_make(ctx, &t, &r, &lc, NULL, 0));
 *     MLOC_TRY(mloc_layermem_write(ctx, "runs/m", &r, &t, &run));
 *
 * Numbers: tap outputs are float32 (the forward pass); every distance,
 * spatial mean, view mean and statistic is accumulated in double in a fixed
 * per-point order, so results are bitwise the same for any thread count and
 * any batch size (the forward pass itself computes each image independently).
 *
 * Results written by the commands (and by mloc_*_write), one run directory
 * holding any of them side by side:
 *
 *   layermem.json            schema "memloc.layermem/1": variant, taps, ranges, table,
 *                            the random / Top / Least subsets (dataset indices)
 *   layermem_table.csv       tap,layermem_random,delta,layermem_top,delta_top,layermem_least
 *   layermem_points.csv      index,rank,sslmem_out,<tap>... (raw SSLMem per tap)
 *   layermem_points.npy      int64 (n)      dataset index of each evaluated point
 *   layermem_sslmem.npy      f64 (n, T)     raw SSLMem^l = d_g - d_f
 *   layermem_norm.npy        f64 (n, T)     normalised scores
 *   layermem_d_f.npy, layermem_d_g.npy      f64 (n, T) alignment distances
 *   layermem_out.npy         f64 (n)        SSLMem at the encoder output (ranking)
 *   sslmem.json, sslmem_points.csv (index,rank,sslmem,sslmem_norm,d_f,d_g),
 *   sslmem_{points,score,norm,d_f,d_g}.npy  the same for the encoder output only
 *   unitmem.json             schema "memloc.unitmem/1": variant, per-tap summaries
 *   unitmem_summary.csv      tap,units,mean,min,q25,median,q75,max,share_gt_0.5,share_gt_0.9,dead
 *   unitmem_units.csv        tap,unit,unitmem,mu_max,mu_rest,argmax_index,dead
 *   unitmem_{points (int64 n), score, mu_max, mu_rest (f64 U), argmax (int64 U)}.npy,
 *                            units of all taps concatenated in tap order
 *   unitmem_mu_<tap>.npy     f64 (n, U_tap) with --save-mu
 *   classmem.*               as unitmem.*, argmax is a class
 *   consistency.json/.csv, ttest.json/.csv (+ ttest_top/, ttest_least/ holding
 *   unitmem.* of the two subsets), mumax.json/.csv    the analyses
 */
#ifndef MEMLOC_METRICS_H
#define MEMLOC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "memloc/augment.h"
#include "memloc/context.h"
#include "memloc/data.h"
#include "memloc/model.h"
#include "memloc/stats.h"

/* Images per forward pass by default. Small batches are faster here: the
 * activation arena of 64 32x32 images stays in cache, and planning a model
 * for 256 allocates ~0.7 GB (train and eval programs) for no gain; measured
 * on the full-width ResNet9 (UnitMem, 1 thread: 2,500 views/s at 40-64,
 * 2,000 at 100, 950 at 256). */
#define MLOC_METRICS_BATCH 64

/* Stream purposes of the metrics' augmentation draws (mloc_aug_stream). */
#define MLOC_PURPOSE_SSLMEM "sslmem"
#define MLOC_PURPOSE_UNITMEM "unitmem"
#define MLOC_PURPOSE_CLASSMEM "classmem"

/* ---- view sources ------------------------------------------------------- */

/* The un-augmented view of a point: ToTensor and Normalize only. */
#define MLOC_VIEW_CLEAN (-1)

typedef struct mloc_view_source mloc_view_source;

/* Fill out (views*n, C, H, W), view-major: row v*n + i is view first_view+v
 * of point points[i]. first_view MLOC_VIEW_CLEAN (with views == 1) asks for
 * the clean views. Must be deterministic: the same (point, view) always
 * gives the same tensor. */
typedef mloc_status (*mloc_view_fill_fn)(const mloc_view_source *src, mloc_ctx *ctx, float *out,
                                         const int64_t *points, int64_t n, int first_view,
                                         int views);

struct mloc_view_source {
    int c, h, w;            /* shape of one view */
    int64_t n_points;       /* valid point ids: 0 .. n_points-1 */
    mloc_view_fill_fn fill;
    void *user;             /* for custom sources */
    /* the dataset source (mloc_view_source_dataset) */
    const mloc_dataset *ds;
    mloc_aug_pipeline aug;   /* augmented views */
    mloc_aug_pipeline clean; /* aug with every random step off: same size and Normalize */
    uint64_t seed;
    char purpose[32];
};

/* Views of dataset images: point ids are indices into ds; view v >= 0 of
 * point i is `aug` under the stream (seed, purpose, MLOC_AUG_NO_EPOCH, i, v)
 * and the clean view is `clean`. src keeps pointers to ds (must outlive it).
 * ERR_USAGE if the pipeline's output is not what a model of ds's channels
 * expects (checked again against the model by the metrics). */
mloc_status mloc_view_source_dataset(mloc_ctx *ctx, mloc_view_source *src,
                                     const mloc_dataset *ds, const mloc_aug_pipeline *aug,
                                     uint64_t seed, const char *purpose);
/* A custom source (tests, fixtures): every field of the dataset part zero. */
void mloc_view_source_custom(mloc_view_source *src, int c, int h, int w, int64_t n_points,
                             mloc_view_fill_fn fill, void *user);

/* ---- shared pieces -------------------------------------------------------- */

typedef enum { MLOC_VIEWS_CLEAN = 0, MLOC_VIEWS_PAIR } mloc_views_mode;
typedef enum { MLOC_NORM_RANGE = 0, MLOC_NORM_MINMAX, MLOC_NORM_NONE } mloc_score_norm;
typedef enum { MLOC_REST_MEAN = 0, MLOC_REST_MEDIAN } mloc_rest_stat;

const char *mloc_views_mode_name(mloc_views_mode v);   /* "clean", "pair" */
const char *mloc_score_norm_name(mloc_score_norm n);   /* "range", "minmax", "none" */
const char *mloc_rest_stat_name(mloc_rest_stat r);     /* "mean", "median" */
int mloc_views_mode_parse(const char *s);              /* -1 if unknown */
int mloc_score_norm_parse(const char *s);
int mloc_rest_stat_parse(const char *s);

/* Resolve a tap list: "all" or NULL (every tap), or comma-separated names,
 * into model tap ids sorted in forward order (duplicates dropped). *taps is
 * malloc'ed. ERR_USAGE "unknown tap 'x' (valid: prep, layer1_head, ...)". */
mloc_status mloc_metrics_parse_taps(mloc_ctx *ctx, const mloc_model *m, const char *list,
                                    int **taps, int *n_taps);
/* f and g must have the same architecture, input and encoder shapes:
 * ERR_USAGE naming both otherwise. */
mloc_status mloc_metrics_check_pair(mloc_ctx *ctx, const mloc_model *f, const mloc_model *g);
/* k distinct positions of 0..n-1 drawn with stream ("metrics-choice", tag
 * hash) of seed, in ascending order (all of them when k >= n). */
mloc_status mloc_metrics_choose(mloc_ctx *ctx, int64_t n, int64_t k, uint64_t seed,
                                const char *tag, int64_t *pos, int64_t *count);

/* ---- SSLMem per tap (SPEC.md 2-3) ------------------------------------------- */

typedef struct {
    mloc_views_mode views; /* CLEAN (default; reference code) or PAIR (the papers') */
    int k;                 /* augmentation draws K; default 5 */
    int batch;             /* images per forward (points * views per point); default 64 */
} mloc_sslmem_config;

mloc_sslmem_config mloc_sslmem_config_default(void);

typedef struct {
    int64_t n;              /* evaluated points */
    int n_taps;             /* T */
    char (*tap_names)[64];  /* T names, forward order */
    int64_t *points;        /* n point ids (dataset indices) */
    double *d_f, *d_g;      /* (n, T) alignment distances d_h^l(x) */
    double *score;          /* (n, T) SSLMem^l(x) = d_g - d_f */
    double *out_score;      /* (n) SSLMem at the encoder output (last model tap) */
    char out_tap[64];       /* that tap's name */
    mloc_sslmem_config cfg;
} mloc_sslmem_result;

/* d_h^l(x) for h = f and g at every tap of `taps` (model tap ids; NULL or
 * n_taps 0: all taps) and the encoder output, for the n points `points`
 * (ids of src):
 *   clean: (1/K) sum_k || h(x) - h(a_k x) ||   views 0..K-1 and the clean view
 *   pair:  (1/K) sum_k || h(a_2k x) - h(a_2k+1 x) ||   views 0..2K-1
 * where h(.) is the tap's output flattened (NCHW order) and scaled to unit
 * l2 norm (x / max(||x||, 1e-12), torch's F.normalize), in eval mode. f and
 * g see the same views. ERR_USAGE for K < 1, f/g mismatch, a point id
 * outside the source, views of another shape than the models take. Progress
 * "sslmem" in points. res is freed with mloc_sslmem_result_free. */
mloc_status mloc_sslmem_compute(mloc_ctx *ctx, mloc_sslmem_result *res, mloc_model *f,
                                mloc_model *g, const mloc_view_source *src,
                                const int64_t *points, int64_t n, const int *taps, int n_taps,
                                const mloc_sslmem_config *cfg);
void mloc_sslmem_result_free(mloc_sslmem_result *res);

/* ---- LayerMem, DeltaLayerMem, the standard table (SPEC.md 3) ----------------- */

typedef struct {
    mloc_score_norm norm;  /* RANGE (default; reference code), MINMAX or NONE */
    int64_t n_random;      /* candidates of the "random" column; default 100 */
    int64_t top;           /* size of Top / Least; default 50 */
    uint64_t seed;         /* the random column's choice; default 0 */
} mloc_layermem_config;

mloc_layermem_config mloc_layermem_config_default(void);

typedef struct {
    int n_taps;
    int64_t n;
    mloc_score_norm norm;
    double *lo, *hi;          /* per tap: min and max of SSLMem^l over C_eval */
    double *norm_score;       /* (n, T) normalised scores s~^l(x) */
    /* per tap: LayerMem on the random subset, its Delta, LayerMem on Top,
     * Delta on Top, LayerMem on Least */
    double *random, *delta, *top, *delta_top, *least;
    int64_t *random_pos, *top_pos, *least_pos; /* positions into the result's points */
    int64_t n_random, n_top;
} mloc_layermem_table;

/* Normalise SSLMem^l over all n points per tap:
 *   range  s / (max - min)     minmax  (s - min) / (max - min)     none  s
 * A zero (or non-finite) range divides by 1 instead, so f = g gives 0.
 * out is (n, T) like score. */
void mloc_layermem_normalize(const double *score, int64_t n, int T, mloc_score_norm norm,
                             double *out, double *lo, double *hi);

/* The table: LayerMem_l(D) = mean of s~^l over D (summed in D's order).
 * Random: random_pos (n_random positions) if given, else cfg->n_random
 * positions chosen with mloc_metrics_choose(seed, "layermem-random").
 * Top / Least: the cfg->top points of highest / lowest SSLMem at the
 * encoder output (stable order: ties keep point order). Delta of the first
 * tap is its LayerMem; otherwise the tap before it in the result (forward
 * order of the evaluated taps). Sizes are clamped to n. */
mloc_status mloc_layermem_table_make(mloc_ctx *ctx, mloc_layermem_table *t,
                                     const mloc_sslmem_result *r, const mloc_layermem_config *cfg,
                                     const int64_t *random_pos, int64_t n_random);
void mloc_layermem_table_free(mloc_layermem_table *t);

/* ---- UnitMem and ClassMem (SPEC.md 4) ------------------------------------------ */

typedef struct {
    int k;                 /* views per point; default 10 */
    mloc_rest_stat rest;   /* MEAN (default; the paper) or MEDIAN (reference code) */
    int abs;               /* 1: a unit's activation is the mean of |a| (signed taps) */
    int batch;             /* images per forward; default 64 */
    int save_mu;           /* index into the evaluated taps whose (n, U) mu matrix is
                              kept in the result, or -1 (default) */
    /* ClassMem only: 0 (default) the clean view of each image (k is then 1);
     * 1: views 0..k-1 of the source's augmentation. */
    int augment;
} mloc_unit_config;

mloc_unit_config mloc_unitmem_config_default(void);
mloc_unit_config mloc_classmem_config_default(void);

/* Scores of every unit of the evaluated taps, concatenated in tap order:
 * units of tap t are offset[t] .. offset[t+1]-1. */
typedef struct {
    int n_taps;
    char (*tap_names)[64];
    int *offset;            /* T+1 */
    int64_t units;          /* offset[T] */
    double *score;          /* UnitMem / ClassMem in [0, 1]; 0 for dead units */
    double *mu_max, *mu_rest;
    int64_t *argmax;        /* UnitMem: the point id x*_u; ClassMem: the class */
    uint8_t *dead;          /* 1: mu_max = 0 */
    int64_t n;              /* points evaluated */
    int64_t *points;        /* their ids */
    int n_classes;          /* ClassMem: classes with images (others are skipped) */
    int64_t *class_count;   /* ClassMem: images per class (n_classes_total) */
    int n_classes_total;
    double *mu;             /* save_mu: (n, U_tap) of tap save_mu, else NULL */
    int mu_tap;             /* -1 if none */
    size_t work_bytes;      /* working memory of the computation besides its
                               outputs: independent of n for rest MEAN */
    mloc_unit_config cfg;
} mloc_unit_scores;

void mloc_unit_scores_free(mloc_unit_scores *u);

/* UnitMem (SPEC.md 4) of every unit of `taps` (NULL/0: all) of m over the
 * points: act_u(v) = mean over spatial positions of channel u of the tap
 * (a neuron is its own value) on view v; mu_u(x) = (1/K) sum_k act_u(a_k x)
 * over views 0..K-1; mu_max = max_x mu_u(x) at x* (first such point);
 * mu_rest = mean (streaming: max, argmax and sum per unit, O(units) memory)
 * or median (keeps the points x units matrix) of mu_u over x != x*;
 * UnitMem = (mu_max - mu_rest) / (mu_max + mu_rest), 0 when mu_max = 0
 * (dead). ERR_DATA for a negative activation unless cfg->abs, naming the
 * tap, unit and point; ERR_USAGE for K < 1, fewer than 2 points, a point
 * outside the source. Progress "unitmem" in points. */
mloc_status mloc_unitmem_compute(mloc_ctx *ctx, mloc_unit_scores *res, mloc_model *m,
                                 const mloc_view_source *src, const int64_t *points, int64_t n,
                                 const int *taps, int n_taps, const mloc_unit_config *cfg);

/* The same statistic over a given matrix mu (n, U), row i belonging to
 * ids[i] (NULL: i): score, mu_max, mu_rest, argmax (an id), dead, each U
 * long. ERR_DATA for a negative entry, ERR_USAGE for n < 2. */
mloc_status mloc_unitmem_from_mu(mloc_ctx *ctx, const double *mu, int64_t n, int64_t U,
                                 const int64_t *ids, mloc_rest_stat rest, double *score,
                                 double *mu_max, double *mu_rest, int64_t *argmax,
                                 uint8_t *dead);

/* ClassMem: mu_{c,u} = mean of act_u over the images of class c among the
 * points (labels[i] is the class of points[i], 0..n_classes-1), averaged
 * over the clean view (default) or K augmented views; then the UnitMem
 * ratio over the classes that have images (argmax is a class). ERR_USAGE
 * with fewer than 2 such classes or a label outside 0..n_classes-1.
 * Progress "classmem". */
mloc_status mloc_classmem_compute(mloc_ctx *ctx, mloc_unit_scores *res, mloc_model *m,
                                  const mloc_view_source *src, const int64_t *points,
                                  const int32_t *labels, int64_t n, int n_classes,
                                  const int *taps, int n_taps, const mloc_unit_config *cfg);

/* The images ClassMem evaluates: up to per_class images of each class of
 * labels[0..n) (unlabelled -1 skipped; per_class 0: all), the first ones in
 * order, or (random) a seeded choice ("classmem-choice" stream) listed in
 * ascending order. *out is malloc'ed. */
mloc_status mloc_classmem_select(mloc_ctx *ctx, const int32_t *labels, int64_t n, int n_classes,
                                 int64_t per_class, int random, uint64_t seed, int64_t **out,
                                 int64_t *count);

typedef struct {
    int64_t units, dead;
    double mean;
    double q[5];             /* min, 25%, median, 75%, max (np.quantile linear) */
    double share_05, share_09; /* shares of units with score > 0.5 and > 0.9 */
} mloc_unit_summary;

mloc_status mloc_unit_summarize(mloc_ctx *ctx, const mloc_unit_scores *u, int tap,
                                mloc_unit_summary *s);

/* ---- analyses (SPEC.md 7) -------------------------------------------------- */

typedef struct {
    int a, b;                /* tap positions in the result, a < b */
    double overlap;          /* % of the top-k points shared */
    mloc_kendall kendall;    /* tau-b and its two-sided p */
} mloc_consistency_pair;

/* For every pair of taps (T(T-1)/2, in order (0,1), (0,2), ..., (1,2), ...):
 * overlap of the top-k points by SSLMem^l (k clamped to n) and Kendall's
 * tau-b of the two score columns. pairs holds T(T-1)/2 entries. */
mloc_status mloc_metrics_consistency(mloc_ctx *ctx, const mloc_sslmem_result *r, int64_t k,
                                     mloc_consistency_pair *pairs);

/* Per tap: UnitMem over Top vs over Least (same taps), one-sided
 * two-sample t-test over the tap's units, H1 mean(top) > mean(least);
 * Student (equal_var 1, as the reference Ttest.py) or Welch. */
mloc_status mloc_metrics_ttest(mloc_ctx *ctx, const mloc_unit_scores *top,
                               const mloc_unit_scores *least, int equal_var, mloc_ttest *out);

typedef struct {
    int64_t point;           /* point id */
    int64_t units;           /* units of the tap whose mu_max it attains */
    int64_t rank;            /* 1-based SSLMem rank at the encoder output among the
                                SSLMem points (1 = most memorised); 0: not among them */
    double sslmem;           /* its SSLMem (NaN if rank 0) */
} mloc_mumax_row;

/* mu_max alignment for tap `tap` of u: one row per point that is x*_u of at
 * least one live unit (dead units have no maximising point and are left
 * out), by descending unit count (ties: better rank, then id).
 * SSLMem ranks come from (sslmem_points, sslmem, n_sslmem), may be n 0.
 * *rows is malloc'ed. */
mloc_status mloc_metrics_mumax(mloc_ctx *ctx, const mloc_unit_scores *u, int tap,
                               const int64_t *sslmem_points, const double *sslmem,
                               int64_t n_sslmem, mloc_mumax_row **rows, int64_t *n_rows);

/* ---- results on disk ---------------------------------------------------------- */

/* What produced a result, recorded in its JSON (any field may be NULL). */
typedef struct {
    const char *command;          /* "layermem", ... */
    const char *f_path, *g_path;  /* weights (g only for SSLMem) */
    const char *data_spec;
    const char *data_digest;      /* mloc_dataset_digest */
    const char *aug_preset;       /* preset name */
    const mloc_aug_pipeline *aug; /* the augmented views' pipeline */
    uint64_t aug_seed;
    const char *purpose;
    uint64_t seed;                /* choices (eval subset, random column) */
    int64_t candidates;           /* candidates given before --eval */
} mloc_metric_run;

/* layermem.* (t not NULL) or sslmem.* (t NULL: the encoder output only,
 * normalised with `norm`) into dir (created). */
mloc_status mloc_layermem_write(mloc_ctx *ctx, const char *dir, const mloc_sslmem_result *r,
                                const mloc_layermem_table *t, const mloc_metric_run *run);
mloc_status mloc_sslmem_write(mloc_ctx *ctx, const char *dir, const mloc_sslmem_result *r,
                              mloc_score_norm norm, const mloc_metric_run *run);
/* Read layermem.* back (d_f, d_g, score, out_score, points, names, cfg);
 * a directory with only sslmem.* gives the encoder output as one tap.
 * ERR_NOINPUT naming the directory when neither is there. */
mloc_status mloc_layermem_read(mloc_ctx *ctx, const char *dir, mloc_sslmem_result *r);
/* The Top / Least point ids recorded in dir/layermem.json (malloc'ed). */
mloc_status mloc_layermem_read_subsets(mloc_ctx *ctx, const char *dir, int64_t **top,
                                       int64_t **least, int64_t *n_top);

/* The analyses' files: consistency.json/.csv (one row per pair of taps:
 * tap_a,tap_b,overlap_pct,tau_b,p,exact), ttest.json/.csv (tap,units,
 * mean_top,mean_least,t,dof,p) and mumax.json/.csv (index,units,rank,
 * sslmem). */
mloc_status mloc_consistency_write(mloc_ctx *ctx, const char *dir, const mloc_sslmem_result *r,
                                   int64_t k, const mloc_consistency_pair *pairs);
mloc_status mloc_ttest_write(mloc_ctx *ctx, const char *dir, const mloc_unit_scores *top,
                             const mloc_unit_scores *least, int equal_var,
                             const mloc_ttest *tests);
mloc_status mloc_mumax_write(mloc_ctx *ctx, const char *dir, const mloc_unit_scores *u, int tap,
                             const mloc_mumax_row *rows, int64_t n_rows, int64_t n_sslmem);

/* unitmem.* or classmem.* (prefix "unitmem" / "classmem") into dir. */
mloc_status mloc_unit_scores_write(mloc_ctx *ctx, const char *dir, const char *prefix,
                                   const mloc_unit_scores *u, const mloc_metric_run *run);
mloc_status mloc_unit_scores_read(mloc_ctx *ctx, const char *dir, const char *prefix,
                                  mloc_unit_scores *u);

#endif
