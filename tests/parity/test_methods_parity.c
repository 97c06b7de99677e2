/* One training step of SimSiam and of DINO against PyTorch 1.13
 * (tests/fixtures/methods/, tools/gen_methods_fixtures.py; float64 references
 * from the float32 initial states, kink-free seeds), on both backends:
 *   SimSiam: the predictions and projections of both views, the loss, every
 *     parameter gradient (encoder, projector, predictor) and the BN running
 *     statistics and counters after the step (each view is its own forward).
 *   DINO: the loss at a warm-up epoch's teacher temperature with a non-zero
 *     centre, every student gradient (encoder and DINO head), the centre after
 *     the step, the BN statistics of student (global and local passes) and
 *     teacher, then an SGD step and the teacher's EMA update at the cosine
 *     momentum of the fixture's iteration: every teacher tensor after it.
 * The same for DINOHead(use_bn=True) (its BN statistics of student and
 * teacher included). Then a few more steps of each on the same batch, comparing the losses (for
 *   DINO each step's targets come from the teacher and centre the previous
 *   one left). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/optim.h"
#include "memloc/ssl.h"
#include "test_util.h"

static double meta_f(const mloc_st_file *f, const char *key) {
    const char *v = mloc_st_metadata(f, key);
    if (!v) fail_msg("fixture has no metadata '%s'", key);
    return atof(v);
}

static void load_prefixed(mloc_ctx *ctx, mloc_model *m, const mloc_st_file *f, const char *prefix) {
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        mloc_status st = mloc_role_block(e->role) == MLOC_BLOCK_COUNTER
                             ? mloc_st_read_i64(ctx, mloc_store_ptr(&m->store, &m->table, i), f, name, e->ndim,
                                                e->shape)
                             : mloc_st_read_f32(ctx, mloc_store_ptr(&m->store, &m->table, i), f, name, e->ndim,
                                                e->shape);
        if (st != MLOC_OK) fail_msg("%s", mloc_ctx_error(ctx));
    }
    mloc_model_params_changed(m);
}

static float *read_all(mloc_ctx *ctx, const mloc_st_file *f, const char *name, int64_t *n) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    if (!t) fail_msg("fixture has no '%s'", name);
    float *p = malloc((size_t)t->numel * sizeof(float));
    assert_non_null(p);
    assert_int_equal(mloc_st_read_f32(ctx, p, f, name, -1, NULL), MLOC_OK);
    if (n) *n = t->numel;
    return p;
}

static double max_abs(mloc_ctx *ctx, const mloc_st_file *f, const char *name) {
    int64_t n;
    float *v = read_all(ctx, f, name, &n);
    double m = 0;
    for (int64_t k = 0; k < n; k++) m = fmax(m, fabs(v[k]));
    free(v);
    return m;
}

/* Every param-block gradient of m against "grad.<name>": budget relative to
 * the tensor's largest gradient, and for a bias at least to its layer's
 * weight gradient (a conv bias in front of a BN has a true gradient of 0,
 * which float32 meets only to the rounding of the layer's sums). A tensor
 * the fixture lacks fails the test. */
static int check_grads(mloc_ctx *ctx, const mloc_model *m, const mloc_st_file *f) {
    int ok = 1;
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM) continue;
        char name[160];
        snprintf(name, sizeof name, "grad.%s", e->name);
        float *want = malloc((size_t)e->numel * sizeof(float));
        assert_int_equal(mloc_st_read_f32(ctx, want, f, name, e->ndim, e->shape), MLOC_OK);
        double scale = 0;
        for (int64_t k = 0; k < e->numel; k++) scale = fmax(scale, fabs(want[k]));
        if (e->role == MLOC_ROLE_BIAS && i > 0 && m->table.t[i - 1].role == MLOC_ROLE_WEIGHT) {
            char wname[160];
            snprintf(wname, sizeof wname, "grad.%s", m->table.t[i - 1].name);
            scale = fmax(scale, max_abs(ctx, f, wname));
        }
        ok &= test_close_f32(name, m->store.grad + e->offset, want, e->numel, 1e-4 * scale + 1e-6, 1e-3);
        free(want);
    }
    return ok;
}

/* Buffers (running statistics) and counters of m against "<prefix><name>". */
static int check_buffers(mloc_ctx *ctx, const mloc_model *m, const mloc_st_file *f, const char *prefix) {
    int ok = 1;
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        mloc_block blk = mloc_role_block(e->role);
        if (blk == MLOC_BLOCK_PARAM) continue;
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        if (blk == MLOC_BLOCK_COUNTER) {
            int64_t want;
            assert_int_equal(mloc_st_read_i64(ctx, &want, f, name, 0, NULL), MLOC_OK);
            int64_t got = *(int64_t *)mloc_store_ptr(&m->store, &m->table, i);
            if (got != want) printf("%s: %lld, expected %lld\n", name, (long long)got, (long long)want);
            ok &= got == want;
            continue;
        }
        float *want = malloc((size_t)e->numel * sizeof(float));
        assert_int_equal(mloc_st_read_f32(ctx, want, f, name, e->ndim, e->shape), MLOC_OK);
        ok &= test_close_f32(name, mloc_store_ptr(&m->store, &m->table, i), want, e->numel, 1e-6, 1e-5);
        free(want);
    }
    return ok;
}

/* ---- SimSiam ----------------------------------------------------------------- */

static void simsiam_parity(mloc_backend backend) {
    mloc_ctx *ctx = test_ctx(2);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("methods/simsiam_step.safetensors")), MLOC_OK);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = meta_f(f, "width");
    cfg.image_h = cfg.image_w = (int)meta_f(f, "image");
    cfg.head = MLOC_HEAD_SIMSIAM;
    cfg.head_hidden = (int)meta_f(f, "proj_hidden");
    cfg.head_out = (int)meta_f(f, "proj_dim");
    cfg.pred_hidden = (int)meta_f(f, "pred_hidden");
    const int N = (int)meta_f(f, "images"), D = cfg.head_out;
    mloc_model *m, *twin;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, m, backend), MLOC_OK);
    assert_int_equal(mloc_model_create_shared(ctx, &twin, &cfg, m), MLOC_OK);
    load_prefixed(ctx, m, f, "init.");
    float *x = read_all(ctx, f, "x", NULL), *p = read_all(ctx, f, "p", NULL), *z = read_all(ctx, f, "z", NULL);
    double want_loss;
    int64_t one = 1;
    assert_int_equal(mloc_st_read_f64(ctx, &want_loss, f, "loss", 1, &one), MLOC_OK);

    mloc_ssl_scratch s;
    assert_int_equal(mloc_ssl_scratch_init(ctx, &s, m, 2 * N), MLOC_OK);
    mloc_model_zero_grad(m);
    double loss;
    assert_int_equal(mloc_simsiam_step(ctx, m, twin, &s, x, N, &loss), MLOC_OK);
    printf("simsiam loss %.8f torch %.8f\n", loss, want_loss);
    int ok = fabs(loss - want_loss) <= 1e-5 * fabs(want_loss) + 1e-7;
    /* O(1) values after 8 (z) and 10 (p) float32 BN layers */
    ok &= test_close_f32("simsiam p", s.out, p, 2 * (int64_t)N * D, 5e-5, 1e-4);
    ok &= test_close_f32("simsiam z", s.aux, z, 2 * (int64_t)N * D, 5e-5, 1e-4);
    ok &= check_grads(ctx, m, f);
    ok &= check_buffers(ctx, m, f, "first.");

    /* the trajectory: SGD with momentum and weight decay on the same views */
    int64_t nl;
    float *losses = read_all(ctx, f, "losses", &nl);
    mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_SGD);
    oc.momentum = meta_f(f, "traj_momentum");
    oc.weight_decay = meta_f(f, "traj_weight_decay");
    mloc_optim *opt;
    assert_int_equal(mloc_optim_create(ctx, &opt, &m->table, &oc), MLOC_OK);
    for (int64_t k = 1; k < nl; k++) {
        assert_int_equal(mloc_optim_step(opt, &m->store, meta_f(f, "traj_lr")), MLOC_OK);
        mloc_model_params_changed(m);
        mloc_optim_zero_grad(opt, &m->store);
        assert_int_equal(mloc_simsiam_step(ctx, m, twin, &s, x, N, &loss), MLOC_OK);
        /* a loss in [-1, 1]: an absolute budget */
        printf("simsiam step %lld loss %.8f torch %.8f\n", (long long)k, loss, losses[k]);
        ok &= fabs(loss - losses[k]) <= 5e-5;
    }
    free(losses);
    mloc_optim_free(opt);
    assert_true(ok);
    mloc_ssl_scratch_free(&s);
    free(x); free(p); free(z);
    mloc_model_free(twin);
    mloc_model_free(m);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

/* ---- DINO ---------------------------------------------------------------------- */

static void dino_parity(mloc_backend backend, const char *fixture) {
    mloc_ctx *ctx = test_ctx(2);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture(fixture)), MLOC_OK);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.width = meta_f(f, "width");
    cfg.image_h = cfg.image_w = (int)meta_f(f, "image");
    cfg.head = MLOC_HEAD_DINO;
    cfg.head_hidden = (int)meta_f(f, "hidden");
    cfg.head_bottleneck = (int)meta_f(f, "bottleneck");
    cfg.head_out = (int)meta_f(f, "out_dim");
    cfg.head_bn = (int)meta_f(f, "head_bn");
    const int B = (int)meta_f(f, "images"), K = cfg.head_out, epoch = (int)meta_f(f, "epoch");
    mloc_dino_config dc = mloc_dino_config_default();
    dc.local_crops = (int)meta_f(f, "local_crops");
    dc.local_size = (int)meta_f(f, "local_image");
    dc.student_temp = meta_f(f, "student_temp");
    dc.teacher_temp = meta_f(f, "teacher_temp");
    dc.warmup_teacher_temp = meta_f(f, "warmup_teacher_temp");
    dc.warmup_teacher_temp_epochs = (int)meta_f(f, "warmup_teacher_temp_epochs");
    dc.momentum_teacher = meta_f(f, "momentum_teacher");
    dc.center_momentum = meta_f(f, "center_momentum");
    dc.freeze_last_layer = 1;
    dc.clip_grad = 0; /* the fixture's step is not clipped */
    /* the schedules against numpy's (DINOLoss.teacher_temp_schedule, cosine_scheduler) */
    const int64_t it = (int64_t)meta_f(f, "it"), total = (int64_t)meta_f(f, "total");
    const double momentum = mloc_dino_momentum(&dc, it, total);
    printf("teacher temp %.10f numpy %.10f; momentum %.12f numpy %.12f\n", mloc_dino_teacher_temp(&dc, epoch),
           meta_f(f, "teacher_temp_now"), momentum, meta_f(f, "momentum"));
    assert_true(fabs(mloc_dino_teacher_temp(&dc, epoch) - meta_f(f, "teacher_temp_now")) < 1e-15);
    assert_true(fabs(momentum - meta_f(f, "momentum")) < 1e-15);

    mloc_model *student;
    assert_int_equal(mloc_model_create(ctx, &student, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, student, backend), MLOC_OK);
    mloc_dino *d;
    assert_int_equal(mloc_dino_create(ctx, &d, student, &dc, B), MLOC_OK);
    mloc_model *teacher = mloc_dino_teacher(d);
    load_prefixed(ctx, student, f, "init.student.");
    load_prefixed(ctx, teacher, f, "init.teacher.");
    int64_t kk = K;
    assert_int_equal(mloc_st_read_f32(ctx, mloc_dino_center(d), f, "init.center", 1, &kk), MLOC_OK);
    float *global = read_all(ctx, f, "global", NULL), *local = read_all(ctx, f, "local", NULL);
    double want_loss;
    int64_t one = 1;
    assert_int_equal(mloc_st_read_f64(ctx, &want_loss, f, "loss", 1, &one), MLOC_OK);

    mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_SGD);
    mloc_optim *opt;
    assert_int_equal(mloc_optim_create(ctx, &opt, &student->table, &oc), MLOC_OK);
    assert_int_equal(mloc_dino_begin_epoch(d, opt, epoch), MLOC_OK);
    mloc_optim_zero_grad(opt, &student->store);
    double loss;
    assert_int_equal(mloc_dino_step(ctx, d, global, local, B, epoch, &loss), MLOC_OK);
    printf("dino loss %.8f torch %.8f\n", loss, want_loss);
    int ok = fabs(loss - want_loss) <= 1e-5 * fabs(want_loss);
    ok &= check_grads(ctx, student, f);
    float *center = read_all(ctx, f, "center", NULL);
    ok &= test_close_f32("dino center", mloc_dino_center(d), center, K, 1e-6, 1e-5);
    ok &= check_buffers(ctx, student, f, "first.student.");
    ok &= check_buffers(ctx, teacher, f, "first.teacher.");

    assert_int_equal(mloc_optim_step(opt, &student->store, meta_f(f, "lr")), MLOC_OK);
    mloc_model_params_changed(student);
    mloc_dino_update_teacher(d, momentum);
    for (int i = 0; i < teacher->table.n; i++) {
        const mloc_tensor *e = &teacher->table.t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM) continue;
        char name[160];
        snprintf(name, sizeof name, "final.teacher.%s", e->name);
        if (cfg.head_bn && !mloc_st_find(f, name)) continue; /* checked on the other fixture */
        float *want = malloc((size_t)e->numel * sizeof(float));
        assert_int_equal(mloc_st_read_f32(ctx, want, f, name, e->ndim, e->shape), MLOC_OK);
        ok &= test_close_f32(name, mloc_store_ptr(&teacher->store, &teacher->table, i), want, e->numel, 1e-6,
                             1e-5);
        free(want);
    }

    /* more iterations on the same crops: each one's targets come from the
     * teacher and centre the previous one left */
    int64_t nl = 1;
    float *losses = mloc_st_find(f, "losses") ? read_all(ctx, f, "losses", &nl) : NULL;
    for (int64_t k = 1; k < nl; k++) {
        mloc_optim_zero_grad(opt, &student->store);
        assert_int_equal(mloc_dino_step(ctx, d, global, local, B, epoch, &loss), MLOC_OK);
        printf("dino step %lld loss %.8f torch %.8f\n", (long long)k, loss, losses[k]);
        ok &= fabs(loss - losses[k]) <= 1e-4 * fabs(losses[k]);
        assert_int_equal(mloc_optim_step(opt, &student->store, meta_f(f, "lr")), MLOC_OK);
        mloc_model_params_changed(student);
        mloc_dino_update_teacher(d, mloc_dino_momentum(&dc, it + k, total));
    }
    free(losses);
    assert_true(ok);
    mloc_optim_free(opt);
    free(global); free(local); free(center);
    mloc_dino_free(d);
    mloc_model_free(student);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

static void test_simsiam_ref(void **state) {
    (void)state;
    simsiam_parity(MLOC_BACKEND_REF);
}

static void test_simsiam_dnnl(void **state) {
    (void)state;
    simsiam_parity(MLOC_BACKEND_DNNL);
}

static void test_dino_ref(void **state) {
    (void)state;
    dino_parity(MLOC_BACKEND_REF, "methods/dino_step.safetensors");
}

static void test_dino_dnnl(void **state) {
    (void)state;
    dino_parity(MLOC_BACKEND_DNNL, "methods/dino_step.safetensors");
}

/* DINOHead(use_bn=True): BatchNorm1d in the head, train mode for both nets */
static void test_dino_bn_ref(void **state) {
    (void)state;
    dino_parity(MLOC_BACKEND_REF, "methods/dino_bn_step.safetensors");
}

static void test_dino_bn_dnnl(void **state) {
    (void)state;
    dino_parity(MLOC_BACKEND_DNNL, "methods/dino_bn_step.safetensors");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simsiam_ref),
        cmocka_unit_test(test_simsiam_dnnl),
        cmocka_unit_test(test_dino_ref),
        cmocka_unit_test(test_dino_dnnl),
        cmocka_unit_test(test_dino_bn_ref),
        cmocka_unit_test(test_dino_bn_dnnl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
