/* Statistics behind the analyses of SPEC.md sections 3, 4 and 7:
 *   - LayerMem means, UnitMem's median rest statistic, quantiles for reports;
 *   - consistency across taps: overlap of the top-k candidates and Kendall's
 *     tau-b with its two-sided p-value (scipy.stats.kendalltau 1.10);
 *   - atypical vs typical: one-sided two-sample t-test over a tap's units
 *     (scipy.stats.ttest_ind 1.10), plus the one-sample test.
 *
 * The references are NumPy 1.24 and SciPy 1.10; each function below names
 * the routine it follows. Deviations: sums use NumPy's pairwise order, so
 * means match NumPy to the last bit for contiguous input; SciPy 1.10's
 * stdtr comes from CDFLIB (TOMS 708) while memloc uses Cephes' incomplete
 * beta (with ln B(a,b) and ln x computed without cancellation for large
 * arguments), which agree to 1e-13 relative up to 5,000 dof and 1e-10 at
 * 1e6; tau-b takes one square root where SciPy takes two (exactly +-1 for
 * (anti-)identical rankings, within 2 ulp of SciPy otherwise). */
#include "memloc/stats.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- sums -------------------------------------------------------------- */

/* NumPy's pairwise_sum for doubles (numpy/core/src/umath/loops_utils.h.src):
 * 8 running sums over blocks of up to 128 values, halves above that. */
static double pairwise_sum(const double *a, int64_t n) {
    if (n < 8) {
        double res = 0.;
        for (int64_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int64_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* Pairwise sum of (a[i] - m)^2, in the same order as pairwise_sum over the
 * array of squared deviations that scipy.stats._moment forms. */
static double pairwise_sumsq_dev(const double *a, int64_t n, double m) {
#define SQDEV(v) (((v) - m) * ((v) - m))
    if (n < 8) {
        double res = 0.;
        for (int64_t i = 0; i < n; i++) res += SQDEV(a[i]);
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = SQDEV(a[j]);
        int64_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += SQDEV(a[i + j]);
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += SQDEV(a[i]);
        return res;
    }
#undef SQDEV
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sumsq_dev(a, n2, m) + pairwise_sumsq_dev(a + n2, n - n2, m);
}

double mloc_stats_mean(const double *x, int64_t n) {
    if (n <= 0) return NAN;
    return pairwise_sum(x, n) / (double)n;
}

/* scipy.stats._stats_py._var(x, ddof=1): _moment(x, 2) * (n / (n - 1)). */
double mloc_stats_var(const double *x, int64_t n) {
    if (n < 2) return NAN;
    double m = mloc_stats_mean(x, n);
    double m2 = pairwise_sumsq_dev(x, n, m) / (double)n;
    return m2 * ((double)n / (double)(n - 1));
}

/* ---- sorting ----------------------------------------------------------- */

static int has_nan(const double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isnan(x[i])) return 1;
    return 0;
}

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* Sorted copy of x (no NaN in x); NULL after an allocation failure. */
static double *sorted_copy(mloc_ctx *ctx, const double *x, int64_t n) {
    double *s = mloc_alloc(ctx, (size_t)n * sizeof *s);
    if (!s) return NULL;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return s;
}

/* Whether index a goes strictly before index b: by key, NaN last. */
static int goes_before(const double *key, int64_t a, int64_t b, int descending) {
    double ka = key[a], kb = key[b];
    if (isnan(ka)) return 0;
    if (isnan(kb)) return 1;
    return descending ? ka > kb : ka < kb;
}

/* Stable merge sort of idx[0..n) by key[idx[i]]; tmp holds n values. */
static void merge_sort(int64_t *idx, int64_t *tmp, int64_t n, const double *key, int descending) {
    if (n < 2) return;
    int64_t h = n / 2;
    merge_sort(idx, tmp, h, key, descending);
    merge_sort(idx + h, tmp, n - h, key, descending);
    if (!goes_before(key, idx[h], idx[h - 1], descending)) return; /* already in order */
    memcpy(tmp, idx, (size_t)h * sizeof *tmp);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n) idx[k++] = goes_before(key, idx[j], tmp[i], descending) ? idx[j++] : tmp[i++];
    while (i < h) idx[k++] = tmp[i++];
}

mloc_status mloc_stats_argsort(mloc_ctx *ctx, const double *x, int64_t n, int descending,
                               int64_t *idx) {
    if (n <= 0) return MLOC_OK;
    int64_t *tmp = mloc_alloc(ctx, (size_t)(n / 2 + 1) * sizeof *tmp);
    if (!tmp) return MLOC_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    merge_sort(idx, tmp, n, x, descending);
    mloc_free(tmp);
    return MLOC_OK;
}

mloc_status mloc_stats_rank(mloc_ctx *ctx, const double *x, int64_t n, int descending,
                            int64_t *rank) {
    if (n <= 0) return MLOC_OK;
    int64_t *idx = mloc_alloc(ctx, (size_t)n * sizeof *idx);
    if (!idx) return MLOC_ERR_NOMEM;
    mloc_status st = mloc_stats_argsort(ctx, x, n, descending, idx);
    if (st == MLOC_OK)
        for (int64_t r = 0; r < n; r++) rank[idx[r]] = r;
    mloc_free(idx);
    return st;
}

mloc_status mloc_stats_topk_overlap(mloc_ctx *ctx, const double *a, const double *b, int64_t n,
                                    int64_t k, double *out) {
    if (k < 1 || k > n)
        return mloc_error(ctx, MLOC_ERR_USAGE, "top-k overlap: k = %lld, expected 1..%lld",
                          (long long)k, (long long)n);
    mloc_status st = MLOC_ERR_NOMEM;
    int64_t *ia = mloc_alloc(ctx, (size_t)n * sizeof *ia);
    int64_t *ib = mloc_alloc(ctx, (size_t)n * sizeof *ib);
    unsigned char *in_a = mloc_alloc(ctx, (size_t)n);
    if (!ia || !ib || !in_a) goto done;
    if ((st = mloc_stats_argsort(ctx, a, n, 1, ia)) != MLOC_OK) goto done;
    if ((st = mloc_stats_argsort(ctx, b, n, 1, ib)) != MLOC_OK) goto done;
    for (int64_t i = 0; i < k; i++) in_a[ia[i]] = 1;
    int64_t shared = 0;
    for (int64_t i = 0; i < k; i++) shared += in_a[ib[i]];
    *out = (double)shared / (double)k;
done:
    mloc_free(ia);
    mloc_free(ib);
    mloc_free(in_a);
    return st;
}

/* ---- median and quantiles ---------------------------------------------- */

mloc_status mloc_stats_median(mloc_ctx *ctx, const double *x, int64_t n, double *out) {
    if (n <= 0 || has_nan(x, n)) {
        *out = NAN;
        return MLOC_OK;
    }
    double *s = sorted_copy(ctx, x, n);
    if (!s) return MLOC_ERR_NOMEM;
    int64_t h = n / 2;
    /* np.median: the middle value, or np.mean of the two middle values */
    *out = n % 2 ? s[h] : (s[h - 1] + s[h]) / 2.0;
    mloc_free(s);
    return MLOC_OK;
}

/* NumPy's _lerp: a + (b-a) t, or b - (b-a)(1-t) for t >= 0.5 (exact at t = 1). */
static double lerp(double a, double b, double t) {
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

mloc_status mloc_stats_quantiles(mloc_ctx *ctx, const double *x, int64_t n, const double *q,
                                 int64_t nq, double *out) {
    for (int64_t i = 0; i < nq; i++)
        if (!(q[i] >= 0 && q[i] <= 1))
            return mloc_error(ctx, MLOC_ERR_USAGE, "quantile %g, expected in [0, 1]", q[i]);
    if (n <= 0 || has_nan(x, n)) {
        for (int64_t i = 0; i < nq; i++) out[i] = NAN;
        return MLOC_OK;
    }
    double *s = sorted_copy(ctx, x, n);
    if (!s) return MLOC_ERR_NOMEM;
    for (int64_t i = 0; i < nq; i++) {
        /* numpy 'linear': virtual index (n-1) q, neighbours floor and floor+1,
         * both clamped to the last element at or past it */
        double v = (double)(n - 1) * q[i];
        if (v >= (double)(n - 1)) {
            out[i] = s[n - 1];
            continue;
        }
        double lo = floor(v);
        int64_t j = (int64_t)lo;
        out[i] = lerp(s[j], s[j + 1], v - lo);
    }
    mloc_free(s);
    return MLOC_OK;
}

/* ---- special functions --------------------------------------------------
 * Cephes (S. Moshier) incbet.c as shipped in SciPy: the power series for
 * small b*x, else continued fraction 1 (x below the mean) or 2, times the
 * prefactor x^a (1-x)^b / (a B(a,b)) computed directly while it cannot
 * overflow and in logarithms otherwise. The complement 1-x is passed in so
 * callers that know it exactly (the t distribution) keep its precision. */

#define MACHEP 1.11022302462515654042e-16 /* 2^-53 */
#define MAXLOG 7.09782712893383996843e2   /* log(DBL_MAX) */
#define MINLOG (-7.451332191019412076235e2) /* log(2^-1074) */
#define MAXGAM 171.624376956302725
#define BIG 4.503599627370496e15
#define BIGINV 2.22044604925031308085e-16
/* Cephes' limit on continued-fraction terms. */
#define CF_MAX_ITER 300

static double lgam(double x) {
    int sign;
    return lgamma_r(x, &sign);
}

/* B(a, b) for a, b > 0 with a + b < MAXGAM, ordered so no factor overflows. */
static double beta_fn(double a, double b) {
    double y = tgamma(b) / tgamma(a + b);
    return y * tgamma(a);
}

/* Stirling's series remainder: lgamma(x) - [(x-1/2) ln x - x + ln(2 pi)/2],
 * for x >= 10 (seven terms; the next is below 1e-17 there). */
static double stirling_corr(double x) {
    static const double c[7] = {1.0 / 12, -1.0 / 360, 1.0 / 1260, -1.0 / 1680, 1.0 / 1188,
                                -691.0 / 360360, 1.0 / 156};
    double r = 1.0 / (x * x), sum = 0;
    for (int i = 6; i >= 0; i--) sum = sum * r + c[i];
    return sum / x;
}

/* ln B(a, b) for a, b > 0. lgamma(a) + lgamma(b) - lgamma(a+b) cancels
 * catastrophically when an argument is large (t tests with thousands of
 * dof: lgamma(5e5) = 6e6 carries an absolute error of 1e-9), so above 10
 * the large-argument terms are combined analytically first, as TOMS 708's
 * algdiv/betaln do. */
static double lbeta_fn(double a, double b) {
    double p = a < b ? a : b, q = a < b ? b : a, s = p + q;
    if (q < 10) return lgam(p) + lgam(q) - lgam(s);
    double dcorr = stirling_corr(q) - stirling_corr(s);
    if (p < 10) /* lgamma(q) - lgamma(s) = -(q-1/2) ln(1+p/q) - p ln s + p + dcorr */
        return lgam(p) - (q - 0.5) * log1p(p / q) - p * log(s) + p + dcorr;
    /* (p-1/2) ln(p/s) + (q-1/2) ln(q/s) - ln(s)/2 + ln(2 pi)/2 + corrections */
    return (p - 0.5) * log(p / s) + (q - 0.5) * log1p(-p / s) - 0.5 * log(s) +
           0.91893853320467274178 + stirling_corr(p) + dcorr;
}

/* Continued fraction expansion #1 for the incomplete beta integral. */
static double incbcf(double a, double b, double x) {
    double k1 = a, k2 = a + b, k3 = a, k4 = a + 1.0, k5 = 1.0, k6 = b - 1.0, k7 = k4,
           k8 = a + 2.0;
    double pkm2 = 0.0, qkm2 = 1.0, pkm1 = 1.0, qkm1 = 1.0, ans = 1.0, r = 1.0;
    const double thresh = 3.0 * MACHEP;
    for (int n = 0; n < CF_MAX_ITER; n++) {
        double xk = -(x * k1 * k2) / (k3 * k4);
        double pk = pkm1 + pkm2 * xk, qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        xk = (x * k5 * k6) / (k7 * k8);
        pk = pkm1 + pkm2 * xk;
        qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        if (qk != 0) r = pk / qk;
        double t;
        if (r != 0) {
            t = fabs((ans - r) / r);
            ans = r;
        } else {
            t = 1.0;
        }
        if (t < thresh) break;
        k1 += 1.0; k2 += 1.0; k3 += 2.0; k4 += 2.0;
        k5 += 1.0; k6 -= 1.0; k7 += 2.0; k8 += 2.0;
        if (fabs(qk) + fabs(pk) > BIG) {
            pkm2 *= BIGINV; pkm1 *= BIGINV; qkm2 *= BIGINV; qkm1 *= BIGINV;
        }
        if (fabs(qk) < BIGINV || fabs(pk) < BIGINV) {
            pkm2 *= BIG; pkm1 *= BIG; qkm2 *= BIG; qkm1 *= BIG;
        }
    }
    return ans;
}

/* Continued fraction expansion #2, in z = x / (1 - x). */
static double incbd(double a, double b, double x, double xc) {
    double k1 = a, k2 = b - 1.0, k3 = a, k4 = a + 1.0, k5 = 1.0, k6 = a + b, k7 = a + 1.0,
           k8 = a + 2.0;
    double pkm2 = 0.0, qkm2 = 1.0, pkm1 = 1.0, qkm1 = 1.0, ans = 1.0, r = 1.0;
    const double z = x / xc, thresh = 3.0 * MACHEP;
    for (int n = 0; n < CF_MAX_ITER; n++) {
        double xk = -(z * k1 * k2) / (k3 * k4);
        double pk = pkm1 + pkm2 * xk, qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        xk = (z * k5 * k6) / (k7 * k8);
        pk = pkm1 + pkm2 * xk;
        qk = qkm1 + qkm2 * xk;
        pkm2 = pkm1; pkm1 = pk; qkm2 = qkm1; qkm1 = qk;
        if (qk != 0) r = pk / qk;
        double t;
        if (r != 0) {
            t = fabs((ans - r) / r);
            ans = r;
        } else {
            t = 1.0;
        }
        if (t < thresh) break;
        k1 += 1.0; k2 -= 1.0; k3 += 2.0; k4 += 2.0;
        k5 += 1.0; k6 += 1.0; k7 += 2.0; k8 += 2.0;
        if (fabs(qk) + fabs(pk) > BIG) {
            pkm2 *= BIGINV; pkm1 *= BIGINV; qkm2 *= BIGINV; qkm1 *= BIGINV;
        }
        if (fabs(qk) < BIGINV || fabs(pk) < BIGINV) {
            pkm2 *= BIG; pkm1 *= BIG; qkm2 *= BIG; qkm1 *= BIG;
        }
    }
    return ans;
}

/* Power series, for b*x small and x not too close to 1. */
static double pseries(double a, double b, double x) {
    double ai = 1.0 / a, u = (1.0 - b) * x, v = u / (a + 1.0);
    double t1 = v, t = u, n = 2.0, s = 0.0, z = MACHEP * ai;
    while (fabs(v) > z) {
        u = (n - b) * x / n;
        t *= u;
        v = t / (a + n);
        s += v;
        n += 1.0;
    }
    s += t1;
    s += ai;
    u = a * log(x);
    if (a + b < MAXGAM && fabs(u) < MAXLOG) {
        t = pow(x, a) / beta_fn(a, b);
        return s * t;
    }
    t = -lbeta_fn(a, b) + u + log(s);
    return t < MINLOG ? 0.0 : exp(t);
}

/* I_x(a, b) with xc = 1 - x supplied by the caller. */
static double incbet(double aa, double bb, double xx, double xxc) {
    if (!(aa > 0) || !(bb > 0) || isnan(xx) || isnan(xxc)) return NAN;
    if (xx <= 0.0) return xx == 0.0 ? 0.0 : NAN;
    if (xxc <= 0.0) return xxc == 0.0 ? 1.0 : NAN;
    if (bb * xx <= 1.0 && xx <= 0.95) return pseries(aa, bb, xx);

    /* Reverse a and b if x is greater than the mean. */
    int flag = 0;
    double a, b, x, xc;
    if (xx > aa / (aa + bb)) {
        flag = 1;
        a = bb; b = aa; xc = xx; x = xxc;
    } else {
        a = aa; b = bb; xc = xxc; x = xx;
    }
    double t;
    if (flag && b * x <= 1.0 && x <= 0.95) {
        t = pseries(a, b, x);
    } else {
        /* Choose the expansion that converges better. */
        double y = x * (a + b - 2.0) - (a - 1.0);
        double w = y < 0.0 ? incbcf(a, b, x) : incbd(a, b, x, xc) / xc;
        /* Multiply w by x^a (1-x)^b / (a B(a,b)). Near 1, log(x) is taken
         * as log1p(-xc): with a ~ 1e5 (t tests with many dof) the plain
         * log would lose 1e-10 of relative accuracy. */
        y = a * (x < 0.5 ? log(x) : log1p(-xc));
        t = b * (xc < 0.5 ? log(xc) : log1p(-x));
        if (a + b < MAXGAM && fabs(y) < MAXLOG && fabs(t) < MAXLOG) {
            t = pow(xc, b);
            t *= pow(x, a);
            t /= a;
            t *= w;
            t /= beta_fn(a, b);
        } else {
            y += t - lbeta_fn(a, b);
            y += log(w / a);
            t = y < MINLOG ? 0.0 : exp(y);
        }
    }
    if (flag) t = t <= MACHEP ? 1.0 - MACHEP : 1.0 - t;
    return t;
}

double mloc_stats_betainc(double a, double b, double x) {
    if (!(x >= 0 && x <= 1)) return NAN;
    return incbet(a, b, x, 1.0 - x);
}

double mloc_stats_normal_cdf(double x) {
    /* Cephes ndtr: erf near 0, erfc in the tails */
    if (isnan(x)) return NAN;
    double z = x * M_SQRT1_2;
    if (fabs(z) < M_SQRT1_2) return 0.5 + 0.5 * erf(z);
    double y = 0.5 * erfc(fabs(z));
    return z > 0 ? 1.0 - y : y;
}

double mloc_stats_normal_sf(double x) { return mloc_stats_normal_cdf(-x); }

/* P(T <= -|t|) = I_{dof/(dof+t^2)}(dof/2, 1/2) / 2, with the complement
 * t^2/(dof+t^2) formed directly. */
static double t_lower_tail(double t, double dof) {
    if (isinf(t)) return 0.0;
    double tt = t * t, s = dof + tt;
    return 0.5 * incbet(0.5 * dof, 0.5, dof / s, tt / s);
}

double mloc_stats_t_cdf(double t, double dof) {
    if (isnan(t) || isnan(dof) || !(dof > 0)) return NAN;
    if (isinf(dof)) return mloc_stats_normal_cdf(t); /* as scipy's stdtr */
    if (t == 0) return 0.5;
    double tail = t_lower_tail(t, dof);
    return t < 0 ? tail : 1.0 - tail;
}

double mloc_stats_t_sf(double t, double dof) { return mloc_stats_t_cdf(-t, dof); }

/* scipy.stats._stats_py._ttest_finish */
static double t_pvalue(double t, double dof, mloc_alternative alt) {
    switch (alt) {
    case MLOC_ALT_LESS: return mloc_stats_t_cdf(t, dof);
    case MLOC_ALT_GREATER: return mloc_stats_t_cdf(-t, dof);
    case MLOC_ALT_TWO_SIDED: return 2.0 * mloc_stats_t_cdf(-fabs(t), dof);
    }
    assert(!"unknown alternative");
    return NAN;
}

/* ---- t-tests ----------------------------------------------------------- */

mloc_ttest mloc_stats_ttest_1samp(const double *x, int64_t n, double popmean,
                                  mloc_alternative alt) {
    mloc_ttest r;
    r.dof = (double)(n - 1);
    double d = mloc_stats_mean(x, n) - popmean;
    double denom = sqrt(mloc_stats_var(x, n) / (double)n);
    r.t = d / denom;
    r.p = t_pvalue(r.t, r.dof, alt);
    return r;
}

mloc_ttest mloc_stats_ttest_ind(const double *x, int64_t nx, const double *y, int64_t ny,
                                int equal_var, mloc_alternative alt) {
    mloc_ttest r;
    double v1 = mloc_stats_var(x, nx), v2 = mloc_stats_var(y, ny);
    double n1 = (double)nx, n2 = (double)ny, denom;
    if (equal_var) {
        /* _equal_var_ttest_denom */
        r.dof = n1 + n2 - 2.0;
        double svar = ((n1 - 1) * v1 + (n2 - 1) * v2) / r.dof;
        denom = sqrt(svar * (1.0 / n1 + 1.0 / n2));
    } else {
        /* _unequal_var_ttest_denom (Welch-Satterthwaite) */
        double vn1 = v1 / n1, vn2 = v2 / n2;
        r.dof = (vn1 + vn2) * (vn1 + vn2) / (vn1 * vn1 / (n1 - 1) + vn2 * vn2 / (n2 - 1));
        if (isnan(r.dof)) r.dof = 1; /* both variances zero: any dof will do */
        denom = sqrt(vn1 + vn2);
    }
    r.t = (mloc_stats_mean(x, nx) - mloc_stats_mean(y, ny)) / denom;
    r.p = t_pvalue(r.t, r.dof, alt);
    return r;
}

/* ---- Kendall's tau-b --------------------------------------------------- */

/* n! in double (inf from 171 on). */
static double factorial(int64_t n) {
    double f = 1.0;
    for (int64_t i = 2; i <= n; i++) f *= (double)i;
    return f;
}

/* scipy.stats._mstats_basic._kendall_p_exact(n, c, alternative): c
 * concordant pairs out of n(n-1)/2, no ties. The count of permutations with
 * c inversions follows Kendall's recursion, one cumulative sum per j. */
static double kendall_p_exact(int64_t n, int64_t c, mloc_alternative alt) {
    const int64_t pairs = n * (n - 1) / 2;
    const int in_right_tail = c >= pairs - c;
    const int greater = alt == MLOC_ALT_GREATER;
    if (pairs - c < c) c = pairs - c;
    double prob, mass = 0;
    if (n == 1) {
        prob = 1.0;
        mass = 1;
    } else if (n == 2) {
        prob = 1.0;
        mass = 0.5;
    } else if (c == 0) {
        prob = n < 171 ? 2.0 / factorial(n) : 0.0;
        mass = prob / 2;
    } else if (c == 1) {
        prob = n < 172 ? 2.0 / factorial(n - 1) : 0.0;
        mass = (double)(n - 1) / (double)n / factorial(n - 1);
    } else if (4 * c == n * (n - 1) && alt == MLOC_ALT_TWO_SIDED) {
        prob = 1.0;
    } else {
        /* 'auto' chooses the exact test for c >= 2 only when n <= 33, so
         * c <= 33*32/4 and n! is finite. */
        enum { CMAX = 33 * 32 / 4 };
        assert(n <= 33 && c <= CMAX);
        double cnt[CMAX + 1] = {0};
        cnt[0] = cnt[1] = 1.0;
        for (int64_t j = 3; j <= n; j++) {
            for (int64_t k = 1; k <= c; k++) cnt[k] += cnt[k - 1];
            if (j <= c) /* new[j:] -= new[:c+1-j], right side read before writing */
                for (int64_t k = c; k >= j; k--) cnt[k] -= cnt[k - j];
        }
        double sum = 0;
        for (int64_t k = 0; k <= c; k++) sum += cnt[k];
        double fact = factorial(n);
        prob = 2.0 * sum / fact;
        mass = cnt[c] / fact;
    }
    if (alt != MLOC_ALT_TWO_SIDED) {
        if (in_right_tail == greater)
            prob /= 2;
        else
            prob = 1 - prob / 2 + mass;
    }
    return prob < 0 ? 0 : prob > 1 ? 1 : prob;
}

/* Sums over groups of tied values with counts c: pairs c(c-1)/2, and the
 * variance terms c(c-1)(c-2) and c(c-1)(2c+5) (scipy's count_rank_tie). */
typedef struct {
    int64_t pairs;
    double v0, v1;
} tie_sums;

static void add_tie_group(tie_sums *s, int64_t c) {
    if (c < 2) return;
    double d = (double)c;
    s->pairs += c * (c - 1) / 2;
    s->v0 += d * (d - 1.) * (d - 2);
    s->v1 += d * (d - 1.) * (2 * d + 5);
}

mloc_status mloc_stats_kendalltau(mloc_ctx *ctx, const double *x, const double *y, int64_t n,
                                  mloc_alternative alt, mloc_kendall *out) {
    memset(out, 0, sizeof *out);
    out->tau = out->p = NAN;
    if (n < 2 || has_nan(x, n) || has_nan(y, n)) return MLOC_OK;

    /* by_y: indices sorted by y; yr: dense rank of y (1..); order: by_y
     * stably re-sorted by x, i.e. sorted by (x, y); fen: Fenwick tree over
     * y ranks; tmp: merge scratch. */
    int64_t *mem = mloc_alloc(ctx, (size_t)(5 * n + 2) * sizeof *mem);
    if (!mem) return MLOC_ERR_NOMEM;
    int64_t *by_y = mem, *yr = mem + n, *order = mem + 2 * n, *fen = mem + 3 * n,
            *tmp = mem + 4 * n + 1;

    for (int64_t i = 0; i < n; i++) by_y[i] = i;
    merge_sort(by_y, tmp, n, y, 0);
    tie_sums ty = {0, 0, 0}, tx = {0, 0, 0};
    int64_t rank = 0, run = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || y[by_y[i]] != y[by_y[i - 1]]) {
            add_tie_group(&ty, run);
            rank++;
            run = 0;
        }
        run++;
        yr[by_y[i]] = rank;
    }
    add_tie_group(&ty, run);
    const int64_t ymax = rank;

    memcpy(order, by_y, (size_t)n * sizeof *order);
    merge_sort(order, tmp, n, x, 0);

    /* Knight's count (scipy's _kendall_dis): walk groups of equal x in
     * ascending order; each point is discordant with every earlier point of
     * smaller x and larger y rank. */
    int64_t dis = 0, ntie = 0, joint = 0;
    run = 0;
    for (int64_t i = 0; i < n;) {
        int64_t k = i;
        while (k < n && x[order[k]] == x[order[i]]) {
            int64_t before = 0; /* earlier points with y rank <= this one's */
            for (int64_t r = yr[order[k]]; r > 0; r &= r - 1) before += fen[r];
            dis += i - before;
            /* joint ties: runs of equal (x, y) in this sorted order */
            if (k > i && yr[order[k]] == yr[order[k - 1]]) {
                joint++;
            } else {
                ntie += joint * (joint + 1) / 2;
                joint = 0;
            }
            k++;
        }
        ntie += joint * (joint + 1) / 2;
        joint = 0;
        add_tie_group(&tx, k - i);
        for (; i < k; i++)
            for (int64_t r = yr[order[i]]; r <= ymax; r += r & -r) fen[r]++;
    }
    mloc_free(mem);

    const int64_t tot = n * (n - 1) / 2;
    out->discordant = dis;
    out->ties_x = tx.pairs;
    out->ties_y = ty.pairs;
    out->ties_xy = ntie;
    out->concordant = tot - dis - tx.pairs - ty.pairs + ntie;
    if (tx.pairs == tot || ty.pairs == tot) return MLOC_OK; /* a constant input */

    const int64_t con_minus_dis = tot - tx.pairs - ty.pairs + ntie - 2 * dis;
    /* SciPy divides by the two square roots in turn, which gives
     * 0.9999999999999999 for identical vectors; one square root of the
     * (exact) product rounds less and gives exactly +-1 there. */
    double tau = (double)con_minus_dis /
                 sqrt((double)(tot - tx.pairs) * (double)(tot - ty.pairs));
    out->tau = fmin(1.0, fmax(-1.0, tau));

    const int no_ties = tx.pairs == 0 && ty.pairs == 0;
    const int64_t con = tot - dis;
    if (no_ties && (n <= 33 || (dis < con ? dis : con) <= 1)) {
        out->exact = 1;
        out->p = kendall_p_exact(n, con, alt);
        return MLOC_OK;
    }
    /* normal approximation of con - dis with the tie-corrected variance */
    const double dn = (double)n, m = dn * (dn - 1.);
    const double var = (m * (2 * dn + 5) - tx.v1 - ty.v1) / 18 +
                       (2.0 * (double)tx.pairs * (double)ty.pairs) / m +
                       tx.v0 * ty.v0 / (9 * m * (dn - 2));
    const double z = (double)con_minus_dis / sqrt(var);
    switch (alt) {
    case MLOC_ALT_LESS: out->p = mloc_stats_normal_cdf(z); break;
    case MLOC_ALT_GREATER: out->p = mloc_stats_normal_sf(z); break;
    case MLOC_ALT_TWO_SIDED: out->p = 2.0 * mloc_stats_normal_sf(fabs(z)); break;
    }
    return MLOC_OK;
}
