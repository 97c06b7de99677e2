/* Statistics of mloc_aug_draw against torchvision's formulas (FORMATS.md
 * 3.1, 3.3, 3.4). Every bound is about 5 standard errors (binomial and
 * moment checks), or a Kolmogorov-Smirnov distance with a 1e-6 false-alarm
 * rate, so a correct implementation fails with negligible probability while
 * a wrong range, a missing rejection or a biased order does fail. Crops are
 * drawn on 4000x4000 images so the rounding of w and h is negligible. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/augment.h"
#include "test_util.h"

#define N 20000
#define BIG 4000

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* KS distance of the sample to Uniform(lo, hi). */
static double ks_uniform(double *x, int n, double lo, double hi) {
    qsort(x, n, sizeof *x, cmp_double);
    double d = 0;
    for (int i = 0; i < n; i++) {
        double f = (x[i] - lo) / (hi - lo);
        f = f < 0 ? 0 : (f > 1 ? 1 : f);
        d = fmax(d, fmax(fabs((i + 1.0) / n - f), fabs(f - (double)i / n)));
    }
    return d;
}

/* KS critical value at false-alarm rate 1e-6: sqrt(-ln(a/2)/2)/sqrt(n). */
static double ks_crit(int n) { return sqrt(-log(0.5e-6) / 2) / sqrt((double)n); }

/* |rate - p| within 5 binomial standard errors */
static int rate_ok(const char *what, int64_t hits, int64_t n, double p) {
    double rate = (double)hits / n, tol = 5 * sqrt(p * (1 - p) / n) + 1e-12;
    printf("%s: rate %.4f, expected %.4f +- %.4f\n", what, rate, p, tol);
    return fabs(rate - p) <= tol;
}

static mloc_aug_pipeline crop_only(float s0, float s1, float r0, float r1) {
    mloc_aug_pipeline pipe;
    memset(&pipe, 0, sizeof pipe);
    pipe.crop = 1;
    pipe.scale[0] = s0;
    pipe.scale[1] = s1;
    pipe.ratio[0] = r0;
    pipe.ratio[1] = r1;
    pipe.out_h = pipe.out_w = 32;
    pipe.flip_apply_p = 1;
    pipe.brightness[0] = pipe.brightness[1] = 1;
    pipe.contrast[0] = pipe.contrast[1] = 1;
    pipe.saturation[0] = pipe.saturation[1] = 1;
    pipe.std[0] = pipe.std[1] = pipe.std[2] = 1;
    return pipe;
}

static void draw_view(mloc_aug_params *p, const mloc_aug_pipeline *pipe, int h, int w, int i,
                      uint64_t seed) {
    mloc_rng r;
    mloc_aug_stream(&r, seed, "aug", 0, i, 0);
    mloc_aug_draw(p, pipe, h, w, &r);
}

static void test_crop_without_rejection(void **state) {
    (void)state;
    /* scale <= 0.5 and ratio in [3/4, 4/3]: w, h always fit, so the area
     * fraction is U(0.08, 0.5), log(w/h) is U(ln 3/4, ln 4/3), and the
     * first attempt is always taken; the offsets are uniform. */
    mloc_aug_pipeline pipe = crop_only(0.08f, 0.5f, 0.75f, 4.0f / 3);
    double *area = malloc(sizeof(double) * N), *logr = malloc(sizeof(double) * N);
    double pos_sum = 0, pos_sq = 0;
    for (int i = 0; i < N; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, BIG, BIG, i, 1);
        assert_int_equal(p.attempts, 1);
        assert_int_equal(p.fallback, 0);
        assert_true(p.top >= 0 && p.top + p.height <= BIG);
        assert_true(p.left >= 0 && p.left + p.width <= BIG);
        area[i] = (double)p.height * p.width / ((double)BIG * BIG);
        logr[i] = log((double)p.width / p.height);
        double u = (double)p.left / (BIG - p.width);
        pos_sum += u;
        pos_sq += u * u;
    }
    double d_area = ks_uniform(area, N, 0.08, 0.5);
    double d_ratio = ks_uniform(logr, N, log(0.75), log(4.0 / 3));
    printf("KS area %.4f, log-ratio %.4f, critical %.4f\n", d_area, d_ratio, ks_crit(N));
    assert_true(d_area < ks_crit(N));
    assert_true(d_ratio < ks_crit(N));
    double m = pos_sum / N, v = pos_sq / N - m * m;
    printf("left/(W-w): mean %.4f var %.4f\n", m, v);
    assert_true(fabs(m - 0.5) < 5 * sqrt(1.0 / 12 / N));
    assert_true(fabs(v - 1.0 / 12) < 0.005);
    free(area);
    free(logr);
}

static void test_crop_full_range(void **state) {
    (void)state;
    /* scale (0.08, 1): an attempt (s, l = ln a) is accepted iff
     * s <= exp(-|l|) on a square image. Given l, P(accept) =
     * (exp(-|l|) - 0.08)/0.92 and the accepted s is U(0.08, exp(-|l|)); the
     * accepted crop's area fraction then has mean
     * E[P(acc|l) (0.08 + exp(-|l|))/2] / E[P(acc|l)]. */
    mloc_aug_pipeline pipe = crop_only(0.08f, 1.0f, 0.75f, 4.0f / 3);
    double l0 = log(0.75), l1 = log(4.0 / 3), pacc = 0, num = 0;
    const int steps = 100000;
    for (int k = 0; k < steps; k++) {
        double l = l0 + (l1 - l0) * (k + 0.5) / steps, m = exp(-fabs(l));
        double pa = (m - 0.08) / 0.92;
        pacc += pa / steps;
        num += pa * (0.08 + m) / 2 / steps;
    }
    double mean_area = num / pacc;
    double sum = 0, sq = 0;
    int64_t first = 0, fallbacks = 0;
    for (int i = 0; i < N; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, BIG, BIG, i, 2);
        first += p.attempts == 1;
        fallbacks += p.fallback;
        double a = (double)p.height * p.width / ((double)BIG * BIG);
        assert_true(a >= 0.079 && a <= 1.0);
        sum += a;
        sq += a * a;
    }
    double m = sum / N, sd = sqrt(sq / N - m * m);
    printf("area fraction mean %.4f, expected %.4f +- %.4f\n", m, mean_area, 5 * sd / sqrt(N));
    assert_true(fabs(m - mean_area) < 5 * sd / sqrt(N));
    assert_true(rate_ok("first attempt accepted", first, N, pacc));
    /* (1 - pacc)^10 ~ 1e-9: practically never */
    assert_true(fallbacks <= 1);
}

static void test_fallback_frequency(void **state) {
    (void)state;
    /* scale (0.5, 1), ratio (1, 4) on a square image: accept iff
     * ln a <= -ln s, so P(accept) = E[-ln s]/ln 4 = 2(0.5 - 0.5 ln 2)/ln 4,
     * and all 10 attempts fail with probability (1 - P)^10 ~ 0.082. The
     * fallback box is the whole image (in_ratio 1 is inside [1, 4]). */
    mloc_aug_pipeline pipe = crop_only(0.5f, 1.0f, 1.0f, 4.0f);
    double pa = 2 * (0.5 - 0.5 * log(2.0)) / log(4.0);
    double pf = pow(1 - pa, 10);
    int64_t fallbacks = 0, first = 0;
    for (int i = 0; i < N; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, BIG, BIG, i, 3);
        first += p.attempts == 1 && !p.fallback;
        if (p.fallback) {
            fallbacks++;
            assert_int_equal(p.attempts, 10);
            assert_int_equal(p.top, 0);
            assert_int_equal(p.left, 0);
            assert_int_equal(p.height, BIG);
            assert_int_equal(p.width, BIG);
        } else {
            assert_true(p.width >= p.height); /* aspect >= 1 */
        }
    }
    assert_true(rate_ok("fallback", fallbacks, N, pf));
    assert_true(rate_ok("first attempt accepted", first, N, pa));

    /* always failing: aspect >= 3 with scale >= 0.9 never fits */
    pipe = crop_only(0.9f, 1.0f, 3.0f, 4.0f);
    for (int i = 0; i < 200; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, 32, 32, i, 4);
        assert_int_equal(p.fallback, 1);
        assert_int_equal(p.height, 11); /* round(32/3) */
        assert_int_equal(p.width, 32);
        assert_int_equal(p.top, 10);    /* (32 - 11) // 2 */
    }
}

static void test_probabilities(void **state) {
    (void)state;
    mloc_aug_config cfg = mloc_aug_config_default();
    mloc_aug_pipeline simclr, unitmem;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &simclr, &cfg), MLOC_OK);
    cfg.preset = MLOC_AUG_UNITMEM;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &unitmem, &cfg), MLOC_OK);
    int64_t flip[2] = {0, 0}, jit[2] = {0, 0}, gray[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        mloc_aug_params p;
        draw_view(&p, &simclr, 32, 32, i, 5);
        flip[0] += p.flip;
        jit[0] += p.jitter;
        gray[0] += p.gray;
        draw_view(&p, &unitmem, 32, 32, i, 5);
        flip[1] += p.flip;
        jit[1] += p.jitter;
        gray[1] += p.gray;
    }
    assert_true(rate_ok("simclr flip", flip[0], N, 0.5));
    assert_true(rate_ok("simclr jitter", jit[0], N, 0.8));
    assert_true(rate_ok("simclr gray", gray[0], N, 0.2));
    /* UnitMem.py: RandomApply([RandomHorizontalFlip(0.5)], p=0.5) */
    assert_true(rate_ok("unitmem flip", flip[1], N, 0.25));
    assert_true(rate_ok("unitmem jitter", jit[1], N, 0.9));
    assert_true(rate_ok("unitmem gray", gray[1], N, 0.1));
}

static void test_jitter_factors_and_order(void **state) {
    (void)state;
    mloc_aug_config cfg = mloc_aug_config_default();
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pipe, &cfg), MLOC_OK);
    const float *range[4] = {pipe.brightness, pipe.contrast, pipe.saturation, pipe.hue};
    /* simclr: (0.8, 0.8, 0.8, 0.2) -> [0.2, 1.8] x3, [-0.2, 0.2] */
    for (int k = 0; k < 3; k++) {
        assert_true(fabsf(range[k][0] - 0.2f) < 1e-6f && fabsf(range[k][1] - 1.8f) < 1e-6f);
    }
    assert_true(fabsf(pipe.hue[0] + 0.2f) < 1e-6f && fabsf(pipe.hue[1] - 0.2f) < 1e-6f);

    double sum[4] = {0}, sq[4] = {0};
    int64_t perm_count[24] = {0}, at[4][4] = {{0}};
    int64_t n = 0;
    double *fs = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, 32, 32, i, 6);
        if (!p.jitter) continue;
        int seen = 0, code = 0, avail[4] = {0, 1, 2, 3}, left = 4;
        for (int k = 0; k < 4; k++) {
            assert_true(p.enabled[k]);
            assert_true(p.factor[k] >= range[k][0] && p.factor[k] <= range[k][1]);
            sum[k] += p.factor[k];
            sq[k] += (double)p.factor[k] * p.factor[k];
            int op = p.order[k];
            assert_true(op >= 0 && op < 4 && !(seen & (1 << op)));
            seen |= 1 << op;
            at[k][op]++;
            /* Lehmer code of the permutation: 0..23 */
            int pos = 0;
            while (avail[pos] != op) pos++;
            code = code * left + pos;
            memmove(&avail[pos], &avail[pos + 1], sizeof(int) * (left - pos - 1));
            left--;
        }
        perm_count[code]++;
        fs[n] = p.factor[MLOC_JITTER_HUE];
        n++;
    }
    for (int k = 0; k < 4; k++) {
        double lo = range[k][0], hi = range[k][1], m = sum[k] / n;
        double var = sq[k] / n - m * m, sd = (hi - lo) / sqrt(12.0);
        printf("factor %d: mean %.4f (expected %.4f), sd %.4f (expected %.4f)\n", k, m,
               (lo + hi) / 2, sqrt(var), sd);
        assert_true(fabs(m - (lo + hi) / 2) < 5 * sd / sqrt((double)n));
        assert_true(fabs(sqrt(var) - sd) < 0.02 * sd + 5 * sd / sqrt(2.0 * n));
    }
    double d = ks_uniform(fs, (int)n, -0.2, 0.2);
    printf("hue factor KS %.4f (critical %.4f)\n", d, ks_crit((int)n));
    assert_true(d < ks_crit((int)n));
    /* randperm(4): chi-square over the 24 orders, 23 dof; 70 is a ~1e-6 tail */
    double chi2 = 0, e = n / 24.0;
    for (int k = 0; k < 24; k++) chi2 += (perm_count[k] - e) * (perm_count[k] - e) / e;
    printf("order chi-square %.1f over 24 permutations (n=%lld)\n", chi2, (long long)n);
    assert_true(chi2 < 70);
    for (int k = 0; k < 4; k++)
        for (int op = 0; op < 4; op++) assert_true(rate_ok("op at position", at[k][op], n, 0.25));
    free(fs);
}

static void test_disabled_ops_and_strength(void **state) {
    (void)state;
    mloc_aug_config cfg = mloc_aug_config_default();
    cfg.strength = 0.5f;
    cfg.jitter_p = 1.0f;
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pipe, &cfg), MLOC_OK);
    /* (0.8s, 0.8s, 0.8s, 0.2s) with s = 0.5 */
    assert_true(fabsf(pipe.brightness[0] - 0.6f) < 1e-6f && fabsf(pipe.brightness[1] - 1.4f) < 1e-6f);
    assert_true(fabsf(pipe.hue[1] - 0.1f) < 1e-6f);
    pipe.saturation[0] = pipe.saturation[1] = 1.0f; /* disabled */
    pipe.hue[0] = pipe.hue[1] = 0.0f;               /* disabled */
    for (int i = 0; i < 2000; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, 32, 32, i, 7);
        assert_int_equal(p.jitter, 1);
        assert_true(p.enabled[0] && p.enabled[1] && !p.enabled[2] && !p.enabled[3]);
        assert_true(p.factor[2] == 1.0f && p.factor[3] == 0.0f);
        assert_true(p.factor[0] >= 0.6f && p.factor[0] < 1.4f);
    }
    /* strength 0: every op disabled, ColorJitter never runs */
    cfg.strength = 0;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pipe, &cfg), MLOC_OK);
    for (int i = 0; i < 200; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, 32, 32, i, 8);
        assert_int_equal(p.jitter, 0);
    }
}

static void test_crop_scale_min(void **state) {
    (void)state;
    mloc_aug_config cfg = mloc_aug_config_default();
    cfg.crop_scale_min = 0.6f;
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pipe, &cfg), MLOC_OK);
    for (int i = 0; i < 2000; i++) {
        mloc_aug_params p;
        draw_view(&p, &pipe, BIG, BIG, i, 9);
        if (!p.fallback) assert_true((double)p.height * p.width >= 0.599 * BIG * BIG);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_without_rejection),
        cmocka_unit_test(test_crop_full_range),
        cmocka_unit_test(test_fallback_frequency),
        cmocka_unit_test(test_probabilities),
        cmocka_unit_test(test_jitter_factors_and_order),
        cmocka_unit_test(test_disabled_ops_and_strength),
        cmocka_unit_test(test_crop_scale_min),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
