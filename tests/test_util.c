#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/nn.h"
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

void test_load_prefixed(mloc_ctx *ctx, mloc_model *m, const mloc_st_file *f, const char *prefix) {
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        mloc_status st = mloc_role_block(e->role) == MLOC_BLOCK_COUNTER
                             ? mloc_st_read_i64(ctx, mloc_store_ptr(&m->store, &m->table, i), f, name,
                                                e->ndim, e->shape)
                             : mloc_st_read_f32(ctx, mloc_store_ptr(&m->store, &m->table, i), f, name,
                                                e->ndim, e->shape);
        if (st != MLOC_OK) fail_msg("%s", mloc_ctx_error(ctx));
    }
    mloc_model_params_changed(m);
}

/* One training forward + backward (NT-Xent on the head output, twice, so
 * gradients accumulate and running stats move twice) and one eval forward
 * with every tap read, on backend `be`. */
static void run_backend(mloc_ctx *ctx, mloc_backend be, const mloc_model_config *cfg, int N,
                        const float *x, float **out, float **grads, float **taps, float **rstats,
                        float **feat, double *loss) {
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, m, be), MLOC_OK);
    /* non-trivial BN affine parameters */
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        float *p = mloc_store_ptr(&m->store, &m->table, i);
        if (e->role == MLOC_ROLE_NORM_WEIGHT) test_fill_uniform_f32(p, e->numel, 0.5f, 1.5f, 100 + i);
        if (e->role == MLOC_ROLE_NORM_BIAS) test_fill_uniform_f32(p, e->numel, -0.2f, 0.2f, 100 + i);
    }
    mloc_model_params_changed(m);
    assert_int_equal(mloc_model_plan(ctx, m, N), MLOC_OK);
    int64_t on = (int64_t)N * mloc_model_value_numel(m, m->output);
    *out = malloc(on * sizeof(float));
    float *dz = malloc(on * sizeof(float));
    mloc_model_zero_grad(m);
    for (int step = 0; step < 2; step++) {
        mloc_status st = mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1);
        if (st) fail_msg("forward: %s", mloc_ctx_error(ctx));
        assert_int_equal(mloc_model_read(ctx, m, m->output, *out), MLOC_OK);
        *loss = mloc_ntxent(dz, *out, N, m->values[m->output].c, 0.5f);
        st = mloc_model_backward(ctx, m, m->output, dz);
        if (st) fail_msg("backward: %s", mloc_ctx_error(ctx));
    }
    int64_t np = m->table.numel[MLOC_BLOCK_PARAM];
    *grads = malloc(np * sizeof(float));
    memcpy(*grads, m->store.grad, np * sizeof(float));
    int64_t nb = m->table.numel[MLOC_BLOCK_BUFFER];
    *rstats = malloc(nb * sizeof(float));
    memcpy(*rstats, m->store.buffer, nb * sizeof(float));
    /* eval: every tap and the pooled feature */
    int64_t total = 0;
    for (int t = 0; t < m->n_taps; t++) total += (int64_t)N * mloc_model_value_numel(m, m->taps[t].value);
    *taps = malloc(total * sizeof(float));
    *feat = malloc((size_t)N * mloc_model_value_numel(m, m->feature) * sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
    float *p = *taps;
    for (int t = 0; t < m->n_taps; t++) {
        int64_t n = (int64_t)N * mloc_model_value_numel(m, m->taps[t].value);
        mloc_status st = mloc_model_read(ctx, m, m->taps[t].value, p);
        if (st) fail_msg("read %s: %s", m->taps[t].name, mloc_ctx_error(ctx));
        for (int64_t k = 0; k < n; k++)
            if (!(p[k] >= 0)) fail_msg("tap %s [%lld] = %g, marked nonneg", m->taps[t].name, (long long)k, p[k]);
        p += n;
    }
    assert_int_equal(mloc_model_read(ctx, m, m->feature, *feat), MLOC_OK);
    free(dz);
    mloc_model_free(m);
}

void test_compare_backends(const mloc_model_config *cfg, int N, int threads, double entry_rtol) {
    mloc_ctx *ctx = test_ctx(threads);
    int64_t nx = (int64_t)N * cfg->in_channels * cfg->image_h * cfg->image_w;
    float *x = malloc(nx * sizeof(float));
    test_fill_uniform_f32(x, nx, -1, 1, 7);
    float *o1, *g1, *t1, *r1, *f1, *o2, *g2, *t2, *r2, *f2;
    double l1, l2;
    run_backend(ctx, MLOC_BACKEND_REF, cfg, N, x, &o1, &g1, &t1, &r1, &f1, &l1);
    run_backend(ctx, MLOC_BACKEND_DNNL, cfg, N, x, &o2, &g2, &t2, &r2, &f2, &l2);
    /* The conditioning of the comparison: the reference backend again on an
     * input moved by a relative 1e-6 (a few float roundings). A deep net's
     * gradients can move by far more than that (ResNet50's early layers:
     * percents), and two correct backends differ by as much as rounding
     * moves them; a wrong kernel moves them by their own size. */
    float *xp = malloc(nx * sizeof(float)), *op[2], *gp[2], *tp[2], *rp[2], *fp[2];
    double lp;
    for (int d = 0; d < 2; d++) {
        for (int64_t k = 0; k < nx; k++) xp[k] = x[k] * (1.0f + 1e-6f * (float)((k * (7919 + d)) % 3 - 1));
        run_backend(ctx, MLOC_BACKEND_REF, cfg, N, xp, &op[d], &gp[d], &tp[d], &rp[d], &fp[d], &lp);
    }
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, cfg), MLOC_OK);
    printf("%s: loss ref %.9g dnnl %.9g\n", cfg->arch, l1, l2);
    int ok = fabs(l1 - l2) < 1e-5;
    /* budgets relative to each tensor's scale (the largest magnitude) */
    const int64_t no = (int64_t)N * mloc_model_value_numel(m, m->output);
    double oscale = 0;
    for (int64_t k = 0; k < no; k++) oscale = fmax(oscale, fabs(o1[k]));
    ok &= test_close_f32("output", o2, o1, no, 1e-4 * oscale, 1e-3);
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        if (mloc_role_block(e->role) == MLOC_BLOCK_PARAM) {
            double scale = 0;
            for (int64_t k = 0; k < e->numel; k++) scale = fmax(scale, fabs(g1[e->offset + k]));
            /* A conv bias in front of a BN has a true gradient of exactly 0, so
             * both backends give rounding noise: budget it on the scale of the
             * layer's weight gradient (the entry before it). */
            if (e->role == MLOC_ROLE_BIAS && i > 0) {
                const mloc_tensor *w = &m->table.t[i - 1];
                for (int64_t k = 0; k < w->numel; k++) scale = fmax(scale, fabs(g1[w->offset + k]));
            }
            double moved = 0;
            for (int d = 0; d < 2; d++)
                for (int64_t k = 0; k < e->numel; k++)
                    moved = fmax(moved, fabs(gp[d][e->offset + k] - g1[e->offset + k]));
            /* 1e-4 of the tensor's scale plus entry_rtol of the entry (the
             * caller's: where a pre-activation is within rounding of 0 the
             * two backends' ReLU masks differ, which moves a gradient by
             * one term, 0.5% of an entry in ResNet50's last BN bias); a
             * wrong kernel is off by the gradient's own size. The budget
             * widens to 10x what rounding moves it (two draws); a
             * comparison that rounding alone moves by more than 20% of the
             * tensor's scale could not tell a wrong kernel, and fails. */
            if (moved > 0.2 * scale) {
                printf("%s: a relative 1e-6 on the input moves the gradient by %.3g of its scale %.3g: "
                       "the comparison is ill-conditioned\n", e->name, moved / scale, scale);
                ok = 0;
            }
            ok &= test_close_f32(e->name, g2 + e->offset, g1 + e->offset, e->numel, fmax(1e-4 * scale, 10 * moved), entry_rtol);
        } else if (mloc_role_block(e->role) == MLOC_BLOCK_BUFFER) {
            ok &= test_close_f32(e->name, r2 + e->offset, r1 + e->offset, e->numel, 1e-5, 1e-4);
        }
    }
    float *p1 = t1, *p2 = t2;
    for (int t = 0; t < m->n_taps; t++) {
        int64_t n = (int64_t)N * mloc_model_value_numel(m, m->taps[t].value);
        ok &= test_close_f32(m->taps[t].name, p2, p1, n, 1e-4, 1e-3);
        p1 += n;
        p2 += n;
    }
    ok &= test_close_f32("feature", f2, f1, (int64_t)N * mloc_model_value_numel(m, m->feature), 1e-4, 1e-3);
    assert_true(ok);
    mloc_model_free(m);
    free(x); free(o1); free(g1); free(t1); free(r1); free(f1);
    free(o2); free(g2); free(t2); free(r2); free(f2);
    free(xp);
    for (int d = 0; d < 2; d++) {
        free(op[d]); free(gp[d]); free(tp[d]); free(rp[d]); free(fp[d]);
    }
    mloc_ctx_destroy(ctx);
}

