/* Statistics for the memorization analyses (SPEC.md sections 3, 4 and 7):
 * summary statistics, ranking, Kendall's tau-b, t-tests and the
 * distribution functions they need.
 *
 * Every function follows a named NumPy 1.24 / SciPy 1.10 routine and
 * says where it differs; tests/unit/test_stats.c compares them with values
 * SciPy wrote (tools/gen_stats_fixtures.py). Inputs are double arrays; NaN
 * propagates as in SciPy's nan_policy='propagate'. Nothing here touches
 * threads or global state. */
#ifndef MEMLOC_STATS_H
#define MEMLOC_STATS_H

#include <stdint.h>

#include "memloc/context.h"

/* Alternative hypotheses, as SciPy's `alternative`. */
typedef enum {
    MLOC_ALT_TWO_SIDED = 0,
    MLOC_ALT_GREATER,   /* H1: the statistic is larger (t > 0, tau > 0) */
    MLOC_ALT_LESS
} mloc_alternative;

/* ---- summaries ------------------------------------------------------- */

/* np.mean: NumPy's pairwise summation divided by n; NaN if n == 0. */
double mloc_stats_mean(const double *x, int64_t n);
/* Unbiased variance (ddof 1) as scipy.stats computes it: the mean of the
 * squared deviations times n/(n-1); NaN if n < 2. */
double mloc_stats_var(const double *x, int64_t n);
/* np.median (mean of the two middle values for even n); NaN if n == 0 or x
 * holds a NaN. */
mloc_status mloc_stats_median(mloc_ctx *ctx, const double *x, int64_t n, double *out);
/* np.quantile(x, q) with the default method 'linear': at virtual index
 * h = (n-1) q between sorted neighbours a <= b, a + (b-a)(h - floor h)
 * (evaluated as NumPy's _lerp does). q[i] must lie in [0, 1] (ERR_USAGE
 * otherwise); every out[i] is NaN if x holds a NaN or n == 0. */
mloc_status mloc_stats_quantiles(mloc_ctx *ctx, const double *x, int64_t n, const double *q,
                                 int64_t nq, double *out);

/* ---- ranking --------------------------------------------------------- */

/* Stable argsort: idx[0..n) lists the indices of x in ascending order
 * (descending = 0, as np.argsort(x, kind='stable')) or descending order
 * (descending = 1, as np.argsort(-x, kind='stable')); equal values keep
 * index order and NaNs come last either way. */
mloc_status mloc_stats_argsort(mloc_ctx *ctx, const double *x, int64_t n, int descending,
                               int64_t *idx);
/* rank[i] = position of x[i] in that order (0 = first). */
mloc_status mloc_stats_rank(mloc_ctx *ctx, const double *x, int64_t n, int descending,
                            int64_t *rank);
/* Fraction of indices shared by the top k of a and the top k of b (each
 * ranked by the stable descending argsort), in [0, 1]; 1 <= k <= n. */
mloc_status mloc_stats_topk_overlap(mloc_ctx *ctx, const double *a, const double *b, int64_t n,
                                    int64_t k, double *out);

/* ---- Kendall's tau-b ------------------------------------------------- */

typedef struct {
    double tau;             /* tau-b in [-1, 1] */
    double p;               /* p-value for the requested alternative */
    int exact;              /* 1: exact null distribution, 0: normal approximation */
    int64_t concordant, discordant;
    int64_t ties_x, ties_y; /* pairs tied in x (in y), joint ties included */
    int64_t ties_xy;        /* pairs tied in both */
} mloc_kendall;

/* scipy.stats.kendalltau(x, y, method='auto', variant='b', alternative)
 * in O(n log n) (Knight 1966: sort by x then y, count discordant pairs with a
 * Fenwick tree). tau = (C - D) / sqrt((P - T_x)(P - T_y)) over P pairs
 * with one square root (SciPy takes two, and returns 0.9999999999999999 for
 * identical vectors where memloc returns exactly 1). The p-value is exact (Kendall 1970's recursion) without
 * ties when n <= 33 or when at most one pair is (dis)concordant, otherwise
 * from the normal approximation with the tie-corrected variance. As SciPy,
 * tau = p = NaN when n < 2, when x or y holds a NaN, or when all of x or all
 * of y are tied. ERR_NOMEM only. */
mloc_status mloc_stats_kendalltau(mloc_ctx *ctx, const double *x, const double *y, int64_t n,
                                  mloc_alternative alt, mloc_kendall *out);

/* ---- t-tests --------------------------------------------------------- */

typedef struct {
    double t;    /* statistic */
    double dof;  /* degrees of freedom (Welch: Satterthwaite, not an integer) */
    double p;    /* p-value for the requested alternative */
} mloc_ttest;

/* scipy.stats.ttest_1samp(x, popmean, alternative): t = (mean - popmean) /
 * sqrt(var/n), dof n-1. NaN results for n < 2; zero variance gives t = +-inf
 * (p 0) or NaN, as SciPy. */
mloc_ttest mloc_stats_ttest_1samp(const double *x, int64_t n, double popmean,
                                  mloc_alternative alt);
/* scipy.stats.ttest_ind(x, y, equal_var, alternative): Student's pooled
 * test (equal_var = 1, dof nx+ny-2) or Welch's (equal_var = 0). H1 for
 * MLOC_ALT_GREATER: mean(x) > mean(y). */
mloc_ttest mloc_stats_ttest_ind(const double *x, int64_t nx, const double *y, int64_t ny,
                                int equal_var, mloc_alternative alt);

/* ---- distribution functions ------------------------------------------ */

/* Regularized incomplete beta I_x(a, b), a, b > 0, 0 <= x <= 1
 * (scipy.special.betainc; Cephes incbet: power series or one of two
 * continued fractions). NaN outside the domain. */
double mloc_stats_betainc(double a, double b, double x);
/* Student t with dof > 0 degrees of freedom (need not be an integer):
 * P(T <= t) and P(T > t), each accurate in its own tail
 * (scipy.special.stdtr). Relative error against 40-digit references: below
 * 1e-14 up to 1,000 dof, 1e-13 at 5,000, 1e-12 at 1e5 and 1e-10 at 1e6 (the
 * continued fraction loses accuracy near the mean for huge a = dof/2); an
 * infinite dof gives the normal distribution. */
double mloc_stats_t_cdf(double t, double dof);
double mloc_stats_t_sf(double t, double dof);
/* Standard normal P(Z <= x) and P(Z > x) (scipy.special.ndtr). */
double mloc_stats_normal_cdf(double x);
double mloc_stats_normal_sf(double x);

#endif
