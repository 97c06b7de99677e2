#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memloc/rng.h"

mloc_ctx *test_ctx(int threads) {
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = threads;
    cfg.seed = 1234;
    mloc_ctx *ctx = NULL;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) fail_msg("cannot create context");
    return ctx;
}

#define CLOSE_BODY(T)                                                                   \
    double max_err = 0, max_budget = 0;                                                 \
    int64_t at = -1, bad = 0, first_bad = -1;                                           \
    for (int64_t i = 0; i < n; i++) {                                                   \
        double g = (double)got[i], w = (double)want[i];                                 \
        double err = fabs(g - w);                                                       \
        double budget = atol + rtol * fabs(w);                                          \
        double used = isnan(err) ? INFINITY : err / budget;                             \
        if (isnan(err) || err > max_err) { max_err = isnan(err) ? INFINITY : err; at = i; } \
        if (used > max_budget) max_budget = used;                                       \
        if (!(err <= budget)) { bad++; if (first_bad < 0) first_bad = i; }              \
    }                                                                                   \
    printf("%s: n=%lld max abs err %.3g at %lld, budget used %.1f%%%s\n", what,        \
           (long long)n, max_err, (long long)at, 100 * max_budget, bad ? " FAIL" : ""); \
    if (bad)                                                                            \
        printf("  %lld elements out of budget; first at %lld: got %.9g want %.9g\n",   \
               (long long)bad, (long long)first_bad, (double)got[first_bad],           \
               (double)want[first_bad]);                                               \
    return bad == 0;

int test_close_f32(const char *what, const float *got, const float *want, int64_t n,
                   double atol, double rtol) {
    CLOSE_BODY(float)
}

int test_close_f64(const char *what, const double *got, const double *want, int64_t n,
                   double atol, double rtol) {
    CLOSE_BODY(double)
}

const char *test_fixture(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", MLOC_FIXTURE_DIR, name);
    return buf;
}

const char *test_tmpdir(const char *tag) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/test-tmp/%s.%d", MLOC_BINARY_DIR, tag, (int)getpid());
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", buf, buf);
    if (system(cmd) != 0) fail_msg("cannot create %s", buf);
    return buf;
}

void test_fill_uniform_f32(float *x, int64_t n, float lo, float hi, uint64_t seed) {
    mloc_rng r;
    mloc_rng_init(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mloc_rng_uniformf(&r);
}

void test_fill_uniform_f64(double *x, int64_t n, double lo, double hi, uint64_t seed) {
    mloc_rng r;
    mloc_rng_init(&r, seed, 0);
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mloc_rng_uniform(&r);
}

int test_gradcheck(const char *what, double (*f)(void *user), double *x, const double *grad,
                   int64_t n, void *user, double h, double atol, double rtol, int max_checks) {
    int64_t step = n > max_checks ? (n + max_checks - 1) / max_checks : 1;
    double max_err = 0, max_used = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i += step) {
        double keep = x[i];
        x[i] = keep + h;
        double fp = f(user);
        x[i] = keep - h;
        double fm = f(user);
        x[i] = keep;
        double num = (fp - fm) / (2 * h);
        double err = fabs(num - grad[i]);
        double budget = atol + rtol * fabs(num);
        if (err > max_err) max_err = err;
        if (err / budget > max_used) max_used = err / budget;
        if (!(err <= budget)) {
            if (bad < 5)
                printf("  %s[%lld]: analytic %.10g numeric %.10g\n", what, (long long)i,
                       grad[i], num);
            bad++;
        }
    }
    printf("%s: gradcheck n=%lld max abs err %.3g, budget used %.1f%%%s\n", what,
           (long long)n, max_err, 100 * max_used, bad ? " FAIL" : "");
    return bad == 0;
}
