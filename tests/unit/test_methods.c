/* SimSiam and DINO plumbing: the heads' tensors (names, shapes, init) and
 * weights files (metadata and inference from PyTorch names), models sharing
 * a store, the DINO schedules, the last-layer freeze, checkpoint state round
 * trips, step errors, and the determinism of a DINO step (the PyTorch values
 * are in tests/parity/test_methods_parity.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/optim.h"
#include "memloc/ssl.h"
#include "test_util.h"

static mloc_model_config small(mloc_head_kind head) {
    mloc_model_config c = mloc_model_config_default();
    c.width = 0.125;
    c.head = head;
    c.head_hidden = 24;
    c.head_out = head == MLOC_HEAD_DINO ? 40 : 12;
    c.pred_hidden = 6;
    c.head_bottleneck = 10;
    return c;
}

static const mloc_tensor *entry(const mloc_model *m, const char *name) {
    int i = mloc_table_find(&m->table, name);
    if (i < 0) fail_msg("no tensor '%s'", name);
    return &m->table.t[i];
}

static void assert_shape(const mloc_model *m, const char *name, int ndim, int64_t d0, int64_t d1) {
    const mloc_tensor *e = entry(m, name);
    if (e->ndim != ndim || e->shape[0] != d0 || (ndim > 1 && e->shape[1] != d1))
        fail_msg("%s: ndim %d [%lld, %lld], expected %d [%lld, %lld]", name, e->ndim, (long long)e->shape[0],
                 (long long)(e->ndim > 1 ? e->shape[1] : 0), ndim, (long long)d0, (long long)d1);
    assert_int_equal(e->group, MLOC_GROUP_HEAD);
}

static void test_simsiam_head(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config c = small(MLOC_HEAD_SIMSIAM);
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    const int F = m->values[m->feature].c; /* the flattened 2x2 map of 32 channels */
    assert_int_equal(F, 32 * 4);
    assert_shape(m, "projector.0.weight", 2, 24, F);
    assert_shape(m, "projector.1.weight", 1, 24, 0);
    assert_shape(m, "projector.3.weight", 2, 24, 24);
    assert_shape(m, "projector.6.weight", 2, 12, 24);
    assert_shape(m, "projector.7.running_var", 1, 12, 0);
    assert_shape(m, "predictor.0.weight", 2, 6, 12);
    assert_shape(m, "predictor.1.bias", 1, 6, 0);
    assert_shape(m, "predictor.3.weight", 2, 12, 6);
    assert_shape(m, "predictor.3.bias", 1, 12, 0);
    /* solo-learn's bias-free linears in front of a BN */
    assert_int_equal(mloc_table_find(&m->table, "projector.0.bias"), -1);
    assert_int_equal(mloc_table_find(&m->table, "projector.6.bias"), -1);
    assert_int_equal(mloc_table_find(&m->table, "predictor.0.bias"), -1);
    assert_int_equal(m->values[m->output].c, 12);
    int z = mloc_model_find_value(m, "projector.7");
    assert_true(z >= 0 && m->values[z].c == 12);
    assert_int_equal(mloc_model_find_module(m, "predictor") >= 0, 1);
    /* the encoder's taps are untouched by the head */
    assert_int_equal(m->n_taps, 10);
    mloc_model_free(m);
    /* sizes < 1 are refused */
    c.pred_hidden = 0;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "predictor hidden 0"));
    mloc_ctx_destroy(ctx);
}

static void test_dino_head(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config c = small(MLOC_HEAD_DINO);
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    /* the output is the pooled map: 32 channels whatever the input size */
    assert_int_equal(m->values[m->output].c, 32);
    assert_int_equal(m->values[m->output].h, 1);
    assert_int_equal(m->values[m->feature].c, 32 * 4); /* the encoder feature stays the flattened map */
    assert_shape(m, "head.mlp.0.weight", 2, 24, 32);
    assert_shape(m, "head.mlp.0.bias", 1, 24, 0);
    assert_shape(m, "head.mlp.2.weight", 2, 24, 24);
    assert_shape(m, "head.mlp.4.weight", 2, 10, 24);
    assert_shape(m, "head.mlp.4.bias", 1, 10, 0);
    assert_shape(m, "head.last_layer.weight_g", 2, 40, 1);
    assert_shape(m, "head.last_layer.weight_v", 2, 40, 10);
    /* DINOHead's init: MLP weights N(0, 0.02^2), biases 0, g = 1 */
    const mloc_tensor *w = entry(m, "head.mlp.2.weight");
    const float *p = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "head.mlp.2.weight"));
    double ss = 0, mean = 0;
    for (int64_t k = 0; k < w->numel; k++) {
        mean += p[k];
        ss += (double)p[k] * p[k];
    }
    mean /= w->numel;
    double sd = sqrt(ss / w->numel - mean * mean);
    printf("head.mlp.2.weight: mean %.5f sd %.5f over %lld\n", mean, sd, (long long)w->numel);
    assert_true(fabs(sd - 0.02) < 0.003 && fabs(mean) < 0.003);
    const float *b = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "head.mlp.0.bias"));
    for (int k = 0; k < 24; k++) assert_true(b[k] == 0.0f);
    const float *g = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "head.last_layer.weight_g"));
    for (int k = 0; k < 40; k++) assert_true(g[k] == 1.0f);
    /* weight_v keeps nn.Linear's default: U(+-1/sqrt(10)) */
    const float *v = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "head.last_layer.weight_v"));
    double vmax = 0;
    for (int k = 0; k < 400; k++) vmax = fmax(vmax, fabs(v[k]));
    assert_true(vmax <= 1 / sqrt(10.0) && vmax > 0.8 / sqrt(10.0));
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* DINOHead(use_bn=True): mlp.0 Linear, .1 BN, .3 Linear, .4 BN, .6 Linear;
 * BN at PyTorch's defaults; the file tells it apart by its running stats. */
static void test_dino_head_bn(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config c = small(MLOC_HEAD_DINO);
    c.head_bn = 1;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    assert_shape(m, "head.mlp.0.weight", 2, 24, 32);
    assert_shape(m, "head.mlp.1.running_var", 1, 24, 0);
    assert_shape(m, "head.mlp.3.weight", 2, 24, 24);
    assert_shape(m, "head.mlp.4.weight", 1, 24, 0);
    assert_shape(m, "head.mlp.6.weight", 2, 10, 24);
    assert_int_equal(mloc_table_find(&m->table, "head.mlp.2.weight"), -1);
    const float *g = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "head.mlp.1.weight"));
    const float *rv = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "head.mlp.4.running_var"));
    for (int k = 0; k < 24; k++) assert_true(g[k] == 1.0f && rv[k] == 1.0f);
    mloc_st_writer *w;
    char path[4200];
    snprintf(path, sizeof path, "%s/dino_bn.safetensors", test_tmpdir("methods_bn"));
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(w, &m->table, &m->store, -1), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    mloc_st_file *f;
    mloc_model_config inferred;
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_int_equal(mloc_model_config_from_file(ctx, &inferred, f), MLOC_OK);
    assert_int_equal(inferred.head, MLOC_HEAD_DINO);
    assert_int_equal(inferred.head_bn, 1);
    assert_int_equal(inferred.head_bottleneck, 10);
    mloc_st_close(f);
    mloc_model *back;
    assert_int_equal(mloc_model_save(ctx, m, path, -1, NULL), MLOC_OK);
    assert_int_equal(mloc_model_open(ctx, &back, path, -1), MLOC_OK);
    assert_int_equal(back->cfg.head_bn, 1);
    assert_int_equal(back->table.n, m->table.n);
    mloc_model_free(back);
    /* a step runs and moves the head's BN statistics of student and teacher */
    mloc_dino_config dc = mloc_dino_config_default();
    dc.local_crops = 0;
    mloc_dino *d;
    assert_int_equal(mloc_dino_create(ctx, &d, m, &dc, 2), MLOC_OK);
    float *x = malloc((size_t)4 * 3 * 32 * 32 * sizeof(float));
    test_fill_uniform_f32(x, 4 * 3 * 32 * 32, -1, 1, 3);
    double loss;
    mloc_model_zero_grad(m);
    assert_int_equal(mloc_dino_step(ctx, d, x, NULL, 2, 0, &loss), MLOC_OK);
    assert_true(isfinite(loss));
    int cnt = mloc_table_find(&m->table, "head.mlp.4.num_batches_tracked");
    assert_int_equal(*(int64_t *)mloc_store_ptr(&m->store, &m->table, cnt), 1);
    mloc_model *t = mloc_dino_teacher(d);
    assert_int_equal(*(int64_t *)mloc_store_ptr(&t->store, &t->table, cnt), 1);
    free(x);
    mloc_dino_free(d);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* A weights file of each head opens with its configuration, from memloc's
 * metadata and, without it, from the tensor names and shapes. */
static void test_heads_files(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("methods_files");
    mloc_head_kind heads[2] = {MLOC_HEAD_SIMSIAM, MLOC_HEAD_DINO};
    for (int h = 0; h < 2; h++) {
        mloc_model_config c = small(heads[h]);
        mloc_model *m, *back;
        assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, mloc_head_name(heads[h]));
        assert_int_equal(mloc_model_save(ctx, m, path, -1, NULL), MLOC_OK);
        assert_int_equal(mloc_model_open(ctx, &back, path, -1), MLOC_OK);
        assert_int_equal(back->cfg.head, heads[h]);
        assert_int_equal(back->cfg.head_hidden, 24);
        assert_int_equal(back->cfg.head_out, c.head_out);
        if (heads[h] == MLOC_HEAD_SIMSIAM) assert_int_equal(back->cfg.pred_hidden, 6);
        else assert_int_equal(back->cfg.head_bottleneck, 10);
        assert_int_equal(back->table.n, m->table.n);
        assert_memory_equal(back->store.param, m->store.param,
                            (size_t)m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
        mloc_model_free(back);

        /* the same tensors without memloc's metadata (a PyTorch export) */
        mloc_st_writer *w;
        assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
        assert_int_equal(mloc_table_add_to_writer(w, &m->table, &m->store, -1), MLOC_OK);
        snprintf(path, sizeof path, "%s/%s_plain.safetensors", dir, mloc_head_name(heads[h]));
        assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
        mloc_st_writer_free(w);
        mloc_st_file *f;
        mloc_model_config inferred;
        assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
        assert_int_equal(mloc_model_config_from_file(ctx, &inferred, f), MLOC_OK);
        assert_int_equal(inferred.head, heads[h]);
        assert_int_equal(inferred.head_hidden, 24);
        assert_int_equal(inferred.head_out, c.head_out);
        if (heads[h] == MLOC_HEAD_SIMSIAM) assert_int_equal(inferred.pred_hidden, 6);
        else assert_int_equal(inferred.head_bottleneck, 10);
        assert_true(fabs(inferred.width - 0.125) < 1e-12);
        mloc_st_close(f);
        /* metrics open the encoder alone */
        assert_int_equal(mloc_model_open(ctx, &back, path, MLOC_HEAD_NONE), MLOC_OK);
        assert_int_equal(back->cfg.head, MLOC_HEAD_NONE);
        mloc_model_free(back);
        mloc_model_free(m);
    }
    assert_int_equal(mloc_head_parse("simsiam"), MLOC_HEAD_SIMSIAM);
    assert_int_equal(mloc_head_parse("dino"), MLOC_HEAD_DINO);
    assert_string_equal(mloc_head_name(MLOC_HEAD_DINO), "dino");
    mloc_ctx_destroy(ctx);
}

/* A model over another's store reads its parameters, moves its BN buffers
 * and accumulates into its gradients; a graph whose tensors depend on the
 * input size is refused. */
static void test_shared_store(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model_config c = small(MLOC_HEAD_DINO);
    mloc_model *m, *view, *copy;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    mloc_model_config lc = c;
    lc.image_h = lc.image_w = 16;
    assert_int_equal(mloc_model_create_shared(ctx, &view, &lc, m), MLOC_OK);
    assert_true(view->store.param == m->store.param && view->store.grad == m->store.grad &&
                view->store.buffer == m->store.buffer && view->store.counter == m->store.counter);
    assert_int_equal(view->store_shared, 1);
    /* an independent copy with the same weights: the reference for the view */
    assert_int_equal(mloc_model_create(ctx, &copy, &lc), MLOC_OK);
    const size_t pbytes = (size_t)m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float);
    memcpy(copy->store.param, m->store.param, pbytes);
    mloc_model_params_changed(copy);
    const int N = 4, C = view->values[view->output].c;
    float *x = malloc((size_t)N * 3 * 16 * 16 * sizeof(float)), *y1 = malloc((size_t)N * C * sizeof(float)),
          *y2 = malloc((size_t)N * C * sizeof(float)), *dy = malloc((size_t)N * C * sizeof(float));
    test_fill_uniform_f32(x, (int64_t)N * 3 * 16 * 16, -1, 1, 5);
    test_fill_uniform_f32(dy, (int64_t)N * C, -1, 1, 6);
    mloc_model_zero_grad(m);
    mloc_model_zero_grad(copy);
    assert_int_equal(mloc_model_forward(ctx, view, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, copy, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, view, view->output, y1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, copy, copy->output, y2), MLOC_OK);
    assert_memory_equal(y1, y2, (size_t)N * C * sizeof(float));
    /* the view's forward moved the owner's BN statistics and counters */
    const size_t bbytes = (size_t)m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float);
    assert_memory_equal(m->store.buffer, copy->store.buffer, bbytes);
    int cnt = mloc_table_find(&m->table, "prep.batch.num_batches_tracked");
    assert_int_equal(*(int64_t *)mloc_store_ptr(&m->store, &m->table, cnt), 1);
    /* two backwards through the view accumulate into the owner's grad */
    assert_int_equal(mloc_model_backward(ctx, view, view->output, dy), MLOC_OK);
    assert_int_equal(mloc_model_backward(ctx, copy, copy->output, dy), MLOC_OK);
    assert_memory_equal(m->store.grad, copy->store.grad, pbytes);
    assert_int_equal(mloc_model_backward(ctx, view, view->output, dy), MLOC_OK);
    for (int64_t i = 0; i < m->table.numel[MLOC_BLOCK_PARAM]; i++)
        assert_true(m->store.grad[i] == 2 * copy->store.grad[i]);
    /* parameters changed through the owner are what the view runs on */
    for (int64_t i = 0; i < m->table.numel[MLOC_BLOCK_PARAM]; i++) m->store.param[i] *= 0.5f;
    mloc_model_params_changed(view);
    assert_int_equal(mloc_model_forward(ctx, view, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, view, view->output, y1), MLOC_OK);
    assert_true(memcmp(y1, y2, (size_t)N * C * sizeof(float)) != 0);
    mloc_model_free(view);
    mloc_model_free(copy);
    /* freeing the view left the store: the owner still runs on it */
    float *x32 = calloc((size_t)N * 3 * 32 * 32, sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, m, x32, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_int_equal(*(int64_t *)mloc_store_ptr(&m->store, &m->table, cnt), 2);
    free(x32);

    /* SimCLR's head reads the flattened map, whose size depends on the input */
    mloc_model_config sc = small(MLOC_HEAD_SIMCLR), sl = sc;
    sl.image_h = sl.image_w = 16;
    mloc_model *s, *sv;
    assert_int_equal(mloc_model_create(ctx, &s, &sc), MLOC_OK);
    assert_int_equal(mloc_model_create_shared(ctx, &sv, &sl, s), MLOC_ERR_USAGE);
    assert_null(sv);
    printf("%s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "head.0.weight"));
    mloc_model_free(s);
    mloc_model_free(m);
    free(x); free(y1); free(y2); free(dy);
    mloc_ctx_destroy(ctx);
}

static void test_dino_schedules(void **state) {
    (void)state;
    mloc_dino_config c = mloc_dino_config_default();
    assert_true(c.local_crops == 8 && c.student_temp == 0.1 && c.momentum_teacher == 0.996 &&
                c.center_momentum == 0.9 && c.freeze_last_layer == 1);
    /* np.linspace(0.04, 0.07, 30) then 0.07 */
    assert_true(mloc_dino_teacher_temp(&c, 0) == 0.04);
    assert_true(fabs(mloc_dino_teacher_temp(&c, 29) - 0.07) < 1e-17);
    assert_true(fabs(mloc_dino_teacher_temp(&c, 10) - (0.04 + 10 * 0.03 / 29)) < 1e-17);
    assert_true(mloc_dino_teacher_temp(&c, 30) == 0.07 && mloc_dino_teacher_temp(&c, 500) == 0.07);
    c.warmup_teacher_temp_epochs = 0;
    assert_true(mloc_dino_teacher_temp(&c, 0) == 0.07);
    c.warmup_teacher_temp_epochs = 1; /* np.linspace(a, b, 1) = [a] */
    assert_true(mloc_dino_teacher_temp(&c, 0) == 0.04 && mloc_dino_teacher_temp(&c, 1) == 0.07);
    /* cosine from 0.996 at iteration 0 towards 1, half-way at total / 2 */
    assert_true(mloc_dino_momentum(&c, 0, 100) == 0.996);
    assert_true(fabs(mloc_dino_momentum(&c, 50, 100) - 0.998) < 1e-15);
    double prev = 0;
    for (int64_t it = 0; it < 100; it++) {
        double m = mloc_dino_momentum(&c, it, 100);
        assert_true(m > prev && m < 1);
        prev = m;
    }
    assert_true(1 - prev < 1e-5);
}

typedef struct {
    mloc_ctx *ctx;
    mloc_model *student;
    mloc_dino *d;
    float *global, *local;
} dino_fixture;

enum { DB = 3, DL = 2 };

static void dino_make(dino_fixture *f, mloc_backend backend, int threads) {
    f->ctx = test_ctx(threads);
    mloc_model_config c = small(MLOC_HEAD_DINO);
    assert_int_equal(mloc_model_create(f->ctx, &f->student, &c), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(f->ctx, f->student, backend), MLOC_OK);
    mloc_dino_config dc = mloc_dino_config_default();
    dc.local_crops = DL;
    assert_int_equal(mloc_dino_create(f->ctx, &f->d, f->student, &dc, DB), MLOC_OK);
    f->global = malloc((size_t)2 * DB * 3 * 32 * 32 * sizeof(float));
    f->local = malloc((size_t)DL * DB * 3 * 16 * 16 * sizeof(float));
    test_fill_uniform_f32(f->global, 2 * DB * 3 * 32 * 32, -1, 1, 11);
    test_fill_uniform_f32(f->local, DL * DB * 3 * 16 * 16, -1, 1, 12);
}

static void dino_drop(dino_fixture *f) {
    mloc_dino_free(f->d);
    mloc_model_free(f->student);
    free(f->global);
    free(f->local);
    mloc_ctx_destroy(f->ctx);
}

/* The teacher starts as a copy of the student; two steps from the same state
 * give bitwise the same loss, gradients and centre; the EMA moves the teacher
 * towards the student; errors name what is wrong. */
static void test_dino_step(void **state) {
    (void)state;
    dino_fixture a, b;
    dino_make(&a, MLOC_BACKEND_DNNL, 2);
    dino_make(&b, MLOC_BACKEND_DNNL, 2);
    mloc_model *ta = mloc_dino_teacher(a.d);
    const int64_t np = a.student->table.numel[MLOC_BLOCK_PARAM];
    assert_memory_equal(ta->store.param, a.student->store.param, (size_t)np * sizeof(float));
    assert_memory_equal(ta->store.buffer, a.student->store.buffer,
                        (size_t)a.student->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    const int K = a.student->cfg.head_out;
    for (int k = 0; k < K; k++) assert_true(mloc_dino_center(a.d)[k] == 0.0f);
    double la, lb;
    mloc_model_zero_grad(a.student);
    mloc_model_zero_grad(b.student);
    assert_int_equal(mloc_dino_step(a.ctx, a.d, a.global, a.local, DB, 0, &la), MLOC_OK);
    assert_int_equal(mloc_dino_step(b.ctx, b.d, b.global, b.local, DB, 0, &lb), MLOC_OK);
    printf("dino loss %.8f\n", la);
    assert_true(la == lb && isfinite(la) && la > 0);
    assert_memory_equal(a.student->store.grad, b.student->store.grad, (size_t)np * sizeof(float));
    assert_memory_equal(mloc_dino_center(a.d), mloc_dino_center(b.d), (size_t)K * sizeof(float));
    int moved = 0;
    for (int k = 0; k < K; k++) moved += mloc_dino_center(a.d)[k] != 0.0f;
    assert_true(moved > K / 2);
    /* student BN counters: the global and the local pass; teacher: one */
    int cnt = mloc_table_find(&a.student->table, "layer2.batch.num_batches_tracked");
    assert_int_equal(*(int64_t *)mloc_store_ptr(&a.student->store, &a.student->table, cnt), 2);
    assert_int_equal(*(int64_t *)mloc_store_ptr(&ta->store, &ta->table, cnt), 1);
    /* EMA: t = m t + (1 - m) s */
    float *t0 = malloc((size_t)np * sizeof(float));
    memcpy(t0, ta->store.param, (size_t)np * sizeof(float));
    for (int64_t i = 0; i < np; i++) a.student->store.param[i] += 1.0f;
    mloc_dino_update_teacher(a.d, 0.75);
    for (int64_t i = 0; i < np; i++)
        assert_true(fabsf(ta->store.param[i] - (0.75f * t0[i] + 0.25f * a.student->store.param[i])) < 1e-6f);
    mloc_dino_update_teacher(a.d, 1.0);
    for (int64_t i = 0; i < np; i++)
        assert_true(fabsf(ta->store.param[i] - (0.75f * t0[i] + 0.25f * a.student->store.param[i])) < 1e-6f);
    free(t0);
    /* errors */
    assert_int_equal(mloc_dino_step(a.ctx, a.d, a.global, a.local, DB - 1, 0, &la), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(a.ctx), "made for 3"));
    assert_int_equal(mloc_dino_step(a.ctx, a.d, a.global, NULL, DB, 0, &la), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(a.ctx), "local crops"));
    dino_drop(&a);
    dino_drop(&b);
}

/* The reference and oneDNN backends agree on a DINO step. */
static void test_dino_backends(void **state) {
    (void)state;
    dino_fixture r, d;
    dino_make(&r, MLOC_BACKEND_REF, 2);
    dino_make(&d, MLOC_BACKEND_DNNL, 2);
    double lr_, ld;
    mloc_model_zero_grad(r.student);
    mloc_model_zero_grad(d.student);
    assert_int_equal(mloc_dino_step(r.ctx, r.d, r.global, r.local, DB, 3, &lr_), MLOC_OK);
    assert_int_equal(mloc_dino_step(d.ctx, d.d, d.global, d.local, DB, 3, &ld), MLOC_OK);
    printf("ref %.8f dnnl %.8f\n", lr_, ld);
    assert_true(fabs(lr_ - ld) < 1e-5 * fabs(lr_));
    const int64_t np = r.student->table.numel[MLOC_BLOCK_PARAM];
    double scale = 0;
    for (int64_t i = 0; i < np; i++) scale = fmax(scale, fabs(r.student->store.grad[i]));
    assert_true(test_close_f32("dino grads dnnl vs ref", d.student->store.grad, r.student->store.grad, np,
                               1e-4 * scale, 1e-3));
    assert_true(test_close_f32("dino centre dnnl vs ref", mloc_dino_center(d.d), mloc_dino_center(r.d),
                               r.student->cfg.head_out, 1e-6, 1e-5));
    dino_drop(&r);
    dino_drop(&d);
}

/* begin_epoch freezes head.last_layer.weight_v for freeze_last_layer epochs
 * and weight_g always. */
static void test_dino_freeze(void **state) {
    (void)state;
    dino_fixture f;
    dino_make(&f, MLOC_BACKEND_DNNL, 1);
    mloc_optim *opt;
    mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_SGD);
    assert_int_equal(mloc_optim_create(f.ctx, &opt, &f.student->table, &oc), MLOC_OK);
    int v = mloc_table_find(&f.student->table, "head.last_layer.weight_v");
    int g = mloc_table_find(&f.student->table, "head.last_layer.weight_g");
    int w = mloc_table_find(&f.student->table, "head.mlp.0.weight");
    assert_int_equal(mloc_dino_begin_epoch(f.d, opt, 0), MLOC_OK);
    assert_false(mloc_optim_is_trainable(opt, v));
    assert_false(mloc_optim_is_trainable(opt, g));
    assert_true(mloc_optim_is_trainable(opt, w));
    /* a step in epoch 0 leaves weight_v bitwise alone */
    const mloc_tensor *ev = &f.student->table.t[v];
    float *v0 = malloc((size_t)ev->numel * sizeof(float));
    memcpy(v0, f.student->store.param + ev->offset, (size_t)ev->numel * sizeof(float));
    double loss;
    mloc_optim_zero_grad(opt, &f.student->store);
    assert_int_equal(mloc_dino_step(f.ctx, f.d, f.global, f.local, DB, 0, &loss), MLOC_OK);
    assert_int_equal(mloc_optim_step(opt, &f.student->store, 0.1), MLOC_OK);
    assert_memory_equal(v0, f.student->store.param + ev->offset, (size_t)ev->numel * sizeof(float));
    assert_int_equal(mloc_dino_begin_epoch(f.d, opt, 1), MLOC_OK);
    assert_true(mloc_optim_is_trainable(opt, v));
    assert_false(mloc_optim_is_trainable(opt, g));
    assert_int_equal(mloc_optim_step(opt, &f.student->store, 0.1), MLOC_OK);
    assert_true(memcmp(v0, f.student->store.param + ev->offset, (size_t)ev->numel * sizeof(float)) != 0);
    free(v0);
    /* without norm_last_layer, weight_g trains with weight_v */
    mloc_dino_free(f.d);
    mloc_dino_config dc = mloc_dino_config_default();
    dc.local_crops = DL;
    dc.norm_last_layer = 0;
    assert_int_equal(mloc_dino_create(f.ctx, &f.d, f.student, &dc, DB), MLOC_OK);
    assert_int_equal(mloc_dino_begin_epoch(f.d, opt, 0), MLOC_OK);
    assert_false(mloc_optim_is_trainable(opt, g));
    assert_int_equal(mloc_dino_begin_epoch(f.d, opt, 1), MLOC_OK);
    assert_true(mloc_optim_is_trainable(opt, g) && mloc_optim_is_trainable(opt, v));
    mloc_optim_free(opt);
    dino_drop(&f);
}

/* Gradient clipping (utils.clip_gradients): every student tensor's gradient
 * norm ends at most clip, in its original direction; weight_g, frozen, is
 * not clipped. */
static void test_dino_clip(void **state) {
    (void)state;
    dino_fixture a, b;
    dino_make(&a, MLOC_BACKEND_REF, 1);
    dino_make(&b, MLOC_BACKEND_REF, 1);
    mloc_dino_free(b.d);
    mloc_dino_config dc = mloc_dino_config_default();
    dc.local_crops = DL;
    dc.clip_grad = 0;
    assert_int_equal(mloc_dino_create(b.ctx, &b.d, b.student, &dc, DB), MLOC_OK);
    double la, lb;
    mloc_model_zero_grad(a.student);
    mloc_model_zero_grad(b.student);
    /* a clip below every tensor's norm */
    mloc_dino_free(a.d);
    dc.clip_grad = 1e-4;
    assert_int_equal(mloc_dino_create(a.ctx, &a.d, a.student, &dc, DB), MLOC_OK);
    assert_int_equal(mloc_dino_step(a.ctx, a.d, a.global, a.local, DB, 0, &la), MLOC_OK);
    assert_int_equal(mloc_dino_step(b.ctx, b.d, b.global, b.local, DB, 0, &lb), MLOC_OK);
    assert_true(la == lb);
    const mloc_table *tab = &a.student->table;
    int clipped = 0;
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM) continue;
        const float *ga = a.student->store.grad + e->offset, *gb = b.student->store.grad + e->offset;
        double na = 0, nb = 0, dot = 0;
        for (int64_t k = 0; k < e->numel; k++) {
            na += (double)ga[k] * ga[k];
            nb += (double)gb[k] * gb[k];
            dot += (double)ga[k] * gb[k];
        }
        na = sqrt(na);
        nb = sqrt(nb);
        if (strcmp(e->name, "head.last_layer.weight_g") == 0) {
            assert_true(na == nb);
            continue;
        }
        if (nb > 1e-4) {
            clipped++;
            assert_true(fabs(na - 1e-4) < 1e-8);
            assert_true(dot / (na * nb) > 1 - 1e-6);
        } else {
            assert_true(na == nb);
        }
    }
    printf("%d tensors clipped\n", clipped);
    assert_true(clipped > 20);
    dino_drop(&a);
    dino_drop(&b);
}

/* The teacher and the centre survive a checkpoint file bit for bit. */
static void test_dino_checkpoint(void **state) {
    (void)state;
    dino_fixture a, b;
    dino_make(&a, MLOC_BACKEND_DNNL, 1);
    dino_make(&b, MLOC_BACKEND_DNNL, 1);
    double loss;
    mloc_model_zero_grad(a.student);
    assert_int_equal(mloc_dino_step(a.ctx, a.d, a.global, a.local, DB, 0, &loss), MLOC_OK);
    for (int64_t i = 0; i < a.student->table.numel[MLOC_BLOCK_PARAM]; i++) a.student->store.param[i] *= 0.9f;
    mloc_dino_update_teacher(a.d, 0.5);
    char path[4200];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", test_tmpdir("methods_ckpt"));
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(a.ctx, &w), MLOC_OK);
    assert_int_equal(mloc_dino_add_to_writer(a.d, w), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(b.ctx, &f, path), MLOC_OK);
    assert_non_null(mloc_st_find(f, "teacher.head.last_layer.weight_v"));
    assert_non_null(mloc_st_find(f, "teacher.prep.batch.num_batches_tracked"));
    assert_int_equal(mloc_dino_load(b.ctx, b.d, f), MLOC_OK);
    mloc_st_close(f);
    mloc_model *ta = mloc_dino_teacher(a.d), *tb = mloc_dino_teacher(b.d);
    for (int blk = 0; blk < 3; blk++) {
        const int64_t n = ta->table.numel[blk];
        if (blk == MLOC_BLOCK_COUNTER) assert_memory_equal(ta->store.counter, tb->store.counter, (size_t)n * 8);
        else assert_memory_equal(blk ? ta->store.buffer : ta->store.param, blk ? tb->store.buffer : tb->store.param,
                                 (size_t)n * sizeof(float));
    }
    assert_memory_equal(mloc_dino_center(a.d), mloc_dino_center(b.d), (size_t)a.student->cfg.head_out * sizeof(float));
    /* a file without the DINO state is refused, naming the tensor */
    mloc_st_writer *e;
    assert_int_equal(mloc_st_writer_create(b.ctx, &e), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(e, &ta->table, &ta->store, -1), MLOC_OK);
    snprintf(path, sizeof path, "%s/plain.safetensors", test_tmpdir("methods_ckpt2"));
    assert_int_equal(mloc_st_writer_save(e, path), MLOC_OK);
    mloc_st_writer_free(e);
    assert_int_equal(mloc_st_open(b.ctx, &f, path), MLOC_OK);
    assert_int_not_equal(mloc_dino_load(b.ctx, b.d, f), MLOC_OK);
    assert_non_null(strstr(mloc_ctx_error(b.ctx), "teacher."));
    mloc_st_close(f);
    dino_drop(&a);
    dino_drop(&b);
}

static void test_method_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config c = small(MLOC_HEAD_SIMCLR);
    mloc_model *m, *other;
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    mloc_dino *d;
    mloc_dino_config dc = mloc_dino_config_default();
    assert_int_equal(mloc_dino_create(ctx, &d, m, &dc, 4), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "simclr head, expected dino"));
    mloc_ssl_scratch s;
    assert_int_equal(mloc_ssl_scratch_init(ctx, &s, m, 8), MLOC_OK);
    float x[8 * 3 * 32 * 32] = {0};
    double loss;
    assert_int_equal(mloc_simsiam_step(ctx, m, m, &s, x, 4, &loss), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "expected simsiam"));
    mloc_ssl_scratch_free(&s);
    mloc_model_free(m);
    /* SimSiam's second view must share the first's store */
    c = small(MLOC_HEAD_SIMSIAM);
    assert_int_equal(mloc_model_create(ctx, &m, &c), MLOC_OK);
    assert_int_equal(mloc_model_create(ctx, &other, &c), MLOC_OK);
    assert_int_equal(mloc_ssl_scratch_init(ctx, &s, m, 8), MLOC_OK);
    assert_int_equal(mloc_simsiam_step(ctx, m, other, &s, x, 4, &loss), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "sharing"));
    /* local crops below ResNet9's 16 x 16 */
    mloc_model_config dcfg = small(MLOC_HEAD_DINO);
    mloc_model *st;
    assert_int_equal(mloc_model_create(ctx, &st, &dcfg), MLOC_OK);
    dc.local_crops = 2;
    dc.local_size = 8;
    assert_int_equal(mloc_dino_create(ctx, &d, st, &dc, 4), MLOC_ERR_USAGE);
    printf("%s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "local crops of 8x8"));
    mloc_model_free(st);
    mloc_ssl_scratch_free(&s);
    mloc_model_free(other);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simsiam_head),   cmocka_unit_test(test_dino_head),
        cmocka_unit_test(test_heads_files),    cmocka_unit_test(test_shared_store),
        cmocka_unit_test(test_dino_schedules), cmocka_unit_test(test_dino_step),
        cmocka_unit_test(test_dino_backends),  cmocka_unit_test(test_dino_freeze),
        cmocka_unit_test(test_dino_checkpoint), cmocka_unit_test(test_method_errors),
        cmocka_unit_test(test_dino_clip),      cmocka_unit_test(test_dino_head_bn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
