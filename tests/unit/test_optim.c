/* Optimizer properties the parity fixtures do not cover: frozen entries stay
 * bitwise untouched (moments too), a save/restore mid-way continues bitwise
 * as the uninterrupted run, results do not depend on the thread count,
 * state files from another optimizer are refused without changing anything,
 * configuration errors name the option; and the schedule against torch's
 * SequentialLR values (tests/fixtures/optim/schedule.safetensors). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/optim.h"
#include "test_util.h"

/* A small model: conv weight, bias, BN weight, bias and running mean (a
 * buffer the optimizer must ignore), and a linear weight large enough to be
 * split over threads and over several LARS norm chunks. */
typedef struct {
    mloc_ctx *ctx;
    mloc_table tab;
    mloc_store store;
} model;

enum { E_CONV_W = 0, E_CONV_B, E_BN_W, E_BN_B, E_BN_MEAN, E_FC_W, E_COUNT };

static void model_make(model *m, int threads) {
    m->ctx = test_ctx(threads);
    mloc_table_init(&m->tab);
    int64_t conv[4] = {8, 4, 3, 3}, c8[1] = {8}, fc[2] = {300, 400};
    assert_int_equal(mloc_table_add(&m->tab, "conv.weight", MLOC_ROLE_WEIGHT, 0, 0, 4, conv), 0);
    assert_int_equal(mloc_table_add(&m->tab, "conv.bias", MLOC_ROLE_BIAS, 0, 0, 1, c8), 1);
    assert_int_equal(mloc_table_add(&m->tab, "bn.weight", MLOC_ROLE_NORM_WEIGHT, 0, 1, 1, c8), 2);
    assert_int_equal(mloc_table_add(&m->tab, "bn.bias", MLOC_ROLE_NORM_BIAS, 0, 1, 1, c8), 3);
    assert_int_equal(mloc_table_add(&m->tab, "bn.running_mean", MLOC_ROLE_RUNNING_MEAN, 0, 1, 1,
                                    c8),
                     4);
    assert_int_equal(mloc_table_add(&m->tab, "fc.weight", MLOC_ROLE_WEIGHT, 1, 2, 2, fc), 5);
    assert_int_equal(mloc_store_alloc(m->ctx, &m->store, &m->tab), MLOC_OK);
    test_fill_uniform_f32(m->store.param, m->tab.numel[MLOC_BLOCK_PARAM], -1, 1, 7);
    test_fill_uniform_f32(m->store.buffer, m->tab.numel[MLOC_BLOCK_BUFFER], -1, 1, 8);
}

static void model_free(model *m) {
    mloc_store_free(&m->store);
    mloc_table_free(&m->tab);
    mloc_ctx_destroy(m->ctx);
}

static int64_t nparam(const model *m) { return m->tab.numel[MLOC_BLOCK_PARAM]; }

/* The gradient of step t: a pure function of t. */
static void fill_grad(model *m, int t) {
    test_fill_uniform_f32(m->store.grad, nparam(m), -0.5f, 0.5f, 100 + (uint64_t)t);
}

static mloc_optim_config config_for(mloc_optim_kind kind) {
    mloc_optim_config c = mloc_optim_config_default(kind);
    switch (kind) {
    case MLOC_OPTIM_SGD:
        c.momentum = 0.9;
        c.dampening = 0.1;
        c.weight_decay = 1e-2;
        break;
    case MLOC_OPTIM_ADAM: c.weight_decay = 1e-2; break;
    case MLOC_OPTIM_ADAMW: break;
    case MLOC_OPTIM_LARS:
        c.momentum = 0.9;
        c.weight_decay = 1e-2;
        c.eta = 0.02;
        c.clip_lars = 1;
        c.exclude_bias_n_norm = 1;
        break;
    case MLOC_OPTIM_KIND_COUNT: break;
    }
    return c;
}

static double lr_at(mloc_optim_kind kind, int t) {
    double base = kind == MLOC_OPTIM_ADAM || kind == MLOC_OPTIM_ADAMW ? 1e-3 : 0.1;
    return base * (1.0 - 0.05 * t);
}

static mloc_optim *make_opt(model *m, mloc_optim_kind kind) {
    mloc_optim_config cfg = config_for(kind);
    mloc_optim *opt = NULL;
    if (mloc_optim_create(m->ctx, &opt, &m->tab, &cfg) != MLOC_OK)
        fail_msg("%s", mloc_ctx_error(m->ctx));
    return opt;
}

static void run_steps(model *m, mloc_optim *opt, mloc_optim_kind kind, int from, int to) {
    for (int t = from; t < to; t++) {
        mloc_optim_zero_grad(opt, &m->store);
        fill_grad(m, t);
        if (mloc_optim_step(opt, &m->store, lr_at(kind, t)) != MLOC_OK)
            fail_msg("%s", mloc_ctx_error(m->ctx));
    }
}

static void save_state(model *m, mloc_optim *opt, const char *path) {
    mloc_st_writer *w = NULL;
    assert_int_equal(mloc_st_writer_create(m->ctx, &w), MLOC_OK);
    assert_int_equal(mloc_optim_add_to_writer(opt, w), MLOC_OK);
    /* the parameters travel in the same file, as in a checkpoint */
    assert_int_equal(mloc_table_add_to_writer(w, &m->tab, &m->store, -1), MLOC_OK);
    if (mloc_st_writer_save(w, path) != MLOC_OK) fail_msg("%s", mloc_ctx_error(m->ctx));
    mloc_st_writer_free(w);
}

static void *file_bytes(mloc_ctx *ctx, const char *path, size_t *size) {
    void *data = NULL;
    assert_int_equal(mloc_read_file(ctx, path, &data, size), MLOC_OK);
    return data;
}

static const mloc_optim_kind all_kinds[] = {MLOC_OPTIM_SGD, MLOC_OPTIM_ADAM, MLOC_OPTIM_ADAMW,
                                            MLOC_OPTIM_LARS};

/* ---- frozen entries ------------------------------------------------------ */

/* Train all entries for 3 steps, freeze conv.bias and bn.weight, train 3
 * more: the frozen parameters and all their state are bitwise those after
 * step 3, while the others moved. */
static void test_frozen_untouched(void **state) {
    (void)state;
    const char *dir = test_tmpdir("optim_frozen");
    for (size_t k = 0; k < sizeof all_kinds / sizeof *all_kinds; k++) {
        mloc_optim_kind kind = all_kinds[k];
        model m;
        model_make(&m, 2);
        mloc_optim *opt = make_opt(&m, kind);
        run_steps(&m, opt, kind, 0, 3);
        int64_t n = nparam(&m);
        float *before = malloc((size_t)n * sizeof *before);
        memcpy(before, m.store.param, (size_t)n * sizeof *before);
        char p3[4200], p6[4200];
        snprintf(p3, sizeof p3, "%s/%s-3.safetensors", dir, mloc_optim_kind_name(kind));
        snprintf(p6, sizeof p6, "%s/%s-6.safetensors", dir, mloc_optim_kind_name(kind));
        save_state(&m, opt, p3);

        assert_int_equal(mloc_optim_set_trainable(opt, E_CONV_B, 0), MLOC_OK);
        assert_int_equal(mloc_optim_set_trainable(opt, E_BN_W, 0), MLOC_OK);
        assert_false(mloc_optim_is_trainable(opt, E_CONV_B));
        assert_true(mloc_optim_is_trainable(opt, E_CONV_W));
        run_steps(&m, opt, kind, 3, 6);
        save_state(&m, opt, p6);
        assert_int_equal(mloc_optim_steps(opt), 6);

        mloc_st_file *f3 = NULL, *f6 = NULL;
        assert_int_equal(mloc_st_open(m.ctx, &f3, p3), MLOC_OK);
        assert_int_equal(mloc_st_open(m.ctx, &f6, p6), MLOC_OK);
        int frozen_seen = 0;
        for (int e = 0; e < m.tab.n; e++) {
            const mloc_tensor *t = &m.tab.t[e];
            if (mloc_role_block(t->role) != MLOC_BLOCK_PARAM) continue;
            int frozen = e == E_CONV_B || e == E_BN_W;
            int same = memcmp(m.store.param + t->offset, before + t->offset,
                              (size_t)t->numel * sizeof(float)) == 0;
            if (frozen != same)
                fail_msg("%s: %s %s", mloc_optim_kind_name(kind), t->name,
                         frozen ? "changed while frozen" : "did not move");
            /* every state tensor of a frozen entry is bitwise unchanged */
            for (int j = 0; j < mloc_st_count(f6); j++) {
                const mloc_st_tensor *s6 = mloc_st_get(f6, j);
                size_t plen = strlen(t->name);
                size_t nlen = strlen(s6->name);
                if (strncmp(s6->name, "optim.", 6) != 0 || nlen <= plen ||
                    strcmp(s6->name + nlen - plen, t->name) != 0 || s6->name[nlen - plen - 1] != '.')
                    continue;
                const mloc_st_tensor *s3 = mloc_st_find(f3, s6->name);
                assert_non_null(s3);
                int state_same = s3->nbytes == s6->nbytes &&
                                 memcmp(s3->data, s6->data, s6->nbytes) == 0;
                if (frozen) {
                    assert_true(state_same);
                    frozen_seen++;
                } else {
                    assert_false(state_same);
                }
            }
        }
        /* sgd/lars: a momentum buffer each; adam: exp_avg, exp_avg_sq, step */
        assert_int_equal(frozen_seen, kind == MLOC_OPTIM_ADAM || kind == MLOC_OPTIM_ADAMW ? 6 : 2);
        mloc_st_close(f3);
        mloc_st_close(f6);
        free(before);
        mloc_optim_free(opt);
        model_free(&m);
    }
}

/* Entries frozen from the start have no momentum buffer and step 0: the
 * state file holds none for them (sgd) or zeros with step 0 (adam). */
static void test_frozen_from_start(void **state) {
    (void)state;
    model m;
    model_make(&m, 1);
    int64_t n = nparam(&m);
    float *init = malloc((size_t)n * sizeof *init);
    memcpy(init, m.store.param, (size_t)n * sizeof *init);
    mloc_optim *opt = make_opt(&m, MLOC_OPTIM_SGD);
    mloc_optim_set_trainable_all(opt, 0);
    assert_int_equal(mloc_optim_set_trainable(opt, E_FC_W, 1), MLOC_OK);
    assert_int_equal(mloc_optim_set_trainable(opt, E_BN_MEAN, 1), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(m.ctx), "entry 4"));
    assert_int_equal(mloc_optim_set_trainable(opt, 99, 1), MLOC_ERR_USAGE);
    run_steps(&m, opt, MLOC_OPTIM_SGD, 0, 2);
    const mloc_tensor *fc = &m.tab.t[E_FC_W];
    assert_memory_equal(m.store.param, init, (size_t)fc->offset * sizeof(float));
    assert_memory_not_equal(m.store.param + fc->offset, init + fc->offset,
                            (size_t)fc->numel * sizeof(float));
    /* the buffer block was never touched */
    float buf0[8];
    test_fill_uniform_f32(buf0, 8, -1, 1, 8);
    assert_memory_equal(m.store.buffer, buf0, sizeof buf0);

    const char *dir = test_tmpdir("optim_frozen_start");
    char path[4200];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    save_state(&m, opt, path);
    mloc_st_file *f = NULL;
    assert_int_equal(mloc_st_open(m.ctx, &f, path), MLOC_OK);
    assert_non_null(mloc_st_find(f, "optim.momentum_buffer.fc.weight"));
    assert_null(mloc_st_find(f, "optim.momentum_buffer.conv.weight"));
    assert_null(mloc_st_find(f, "optim.momentum_buffer.bn.running_mean"));
    mloc_st_close(f);
    free(init);
    mloc_optim_free(opt);
    model_free(&m);
}

/* ---- save / restore ------------------------------------------------------ */

/* Run A: 6 steps. Run B: 3 steps, save state and parameters, a fresh
 * optimizer and store load them, 3 more steps. Same bits. */
static void test_resume_bitwise(void **state) {
    (void)state;
    const char *dir = test_tmpdir("optim_resume");
    for (size_t k = 0; k < sizeof all_kinds / sizeof *all_kinds; k++) {
        mloc_optim_kind kind = all_kinds[k];
        model a, b, c;
        model_make(&a, 2);
        model_make(&b, 2);
        mloc_optim *oa = make_opt(&a, kind), *ob = make_opt(&b, kind);
        /* freeze an entry for a while so momentum buffers and per-entry steps
         * differ between entries */
        assert_int_equal(mloc_optim_set_trainable(oa, E_BN_B, 0), MLOC_OK);
        assert_int_equal(mloc_optim_set_trainable(ob, E_BN_B, 0), MLOC_OK);
        run_steps(&a, oa, kind, 0, 2);
        run_steps(&b, ob, kind, 0, 2);
        assert_int_equal(mloc_optim_set_trainable(oa, E_BN_B, 1), MLOC_OK);
        assert_int_equal(mloc_optim_set_trainable(ob, E_BN_B, 1), MLOC_OK);
        run_steps(&a, oa, kind, 2, 6);
        run_steps(&b, ob, kind, 2, 3);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, mloc_optim_kind_name(kind));
        save_state(&b, ob, path);
        mloc_optim_free(ob);
        model_free(&b);

        model_make(&c, 1); /* other thread count, other initial values */
        test_fill_uniform_f32(c.store.param, nparam(&c), -3, 3, 99);
        mloc_optim *oc = make_opt(&c, kind);
        mloc_st_file *f = NULL;
        assert_int_equal(mloc_st_open(c.ctx, &f, path), MLOC_OK);
        assert_int_equal(mloc_table_load(c.ctx, &c.tab, &c.store, f, MLOC_LOAD_ALLOW_UNEXPECTED),
                         MLOC_OK);
        if (mloc_optim_load(oc, f) != MLOC_OK) fail_msg("%s", mloc_ctx_error(c.ctx));
        mloc_st_close(f);
        assert_int_equal(mloc_optim_steps(oc), 3);
        run_steps(&c, oc, kind, 3, 6);
        if (memcmp(a.store.param, c.store.param, (size_t)nparam(&a) * sizeof(float)) != 0)
            fail_msg("%s: resumed run differs from the uninterrupted one",
                     mloc_optim_kind_name(kind));

        /* and the state files of both runs are byte-identical */
        char pa[4200], pc[4200];
        snprintf(pa, sizeof pa, "%s/%s-a.safetensors", dir, mloc_optim_kind_name(kind));
        snprintf(pc, sizeof pc, "%s/%s-c.safetensors", dir, mloc_optim_kind_name(kind));
        save_state(&a, oa, pa);
        save_state(&c, oc, pc);
        size_t sa, sc;
        void *ba = file_bytes(a.ctx, pa, &sa), *bc = file_bytes(c.ctx, pc, &sc);
        assert_int_equal(sa, sc);
        assert_memory_equal(ba, bc, sa);
        free(ba);
        free(bc);
        mloc_optim_free(oa);
        mloc_optim_free(oc);
        model_free(&a);
        model_free(&c);
    }
}

/* A state file of another kind, or an incomplete one, is refused with a
 * message naming the tensor, and the optimizer keeps its state. */
static void test_load_rejects(void **state) {
    (void)state;
    const char *dir = test_tmpdir("optim_reject");
    model m;
    model_make(&m, 1);
    mloc_optim *sgd = make_opt(&m, MLOC_OPTIM_SGD);
    run_steps(&m, sgd, MLOC_OPTIM_SGD, 0, 2);
    char p_sgd[4200], p_adam[4200], p_after[4200], p_before[4200];
    snprintf(p_sgd, sizeof p_sgd, "%s/sgd.safetensors", dir);
    snprintf(p_adam, sizeof p_adam, "%s/adam.safetensors", dir);
    snprintf(p_before, sizeof p_before, "%s/before.safetensors", dir);
    snprintf(p_after, sizeof p_after, "%s/after.safetensors", dir);
    save_state(&m, sgd, p_sgd);

    mloc_optim *adam = make_opt(&m, MLOC_OPTIM_ADAM);
    run_steps(&m, adam, MLOC_OPTIM_ADAM, 0, 1);
    save_state(&m, adam, p_adam);
    save_state(&m, adam, p_before);

    /* sgd state into adam: unknown tensor for this optimizer */
    mloc_st_file *f = NULL;
    assert_int_equal(mloc_st_open(m.ctx, &f, p_sgd), MLOC_OK);
    assert_int_equal(mloc_optim_load(adam, f), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(m.ctx), "optim.momentum_buffer."));
    assert_non_null(strstr(mloc_ctx_error(m.ctx), "is not state of this adam optimizer"));
    mloc_st_close(f);

    /* adam state into sgd */
    assert_int_equal(mloc_st_open(m.ctx, &f, p_adam), MLOC_OK);
    assert_int_equal(mloc_optim_load(sgd, f), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(m.ctx), "is not state of this sgd optimizer"));
    mloc_st_close(f);

    /* a file without optimizer state */
    mloc_st_writer *w = NULL;
    char p_model[4200];
    snprintf(p_model, sizeof p_model, "%s/model.safetensors", dir);
    assert_int_equal(mloc_st_writer_create(m.ctx, &w), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(w, &m.tab, &m.store, -1), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, p_model), MLOC_OK);
    mloc_st_writer_free(w);
    assert_int_equal(mloc_st_open(m.ctx, &f, p_model), MLOC_OK);
    assert_int_equal(mloc_optim_load(adam, f), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(m.ctx), "optim.step missing"));
    mloc_st_close(f);

    /* adam state missing one entry's exp_avg_sq; and one with a wrong shape */
    mloc_st_file *full = NULL;
    assert_int_equal(mloc_st_open(m.ctx, &full, p_adam), MLOC_OK);
    for (int variant = 0; variant < 2; variant++) {
        char p_bad[4200];
        snprintf(p_bad, sizeof p_bad, "%s/bad%d.safetensors", dir, variant);
        assert_int_equal(mloc_st_writer_create(m.ctx, &w), MLOC_OK);
        static const int64_t wrong[1] = {7};
        for (int j = 0; j < mloc_st_count(full); j++) {
            const mloc_st_tensor *t = mloc_st_get(full, j);
            int target = strcmp(t->name, "optim.exp_avg_sq.bn.bias") == 0;
            if (target && variant == 0) continue;
            if (target && variant == 1)
                assert_int_equal(mloc_st_writer_add(w, t->name, t->dtype, 1, wrong, t->data),
                                 MLOC_OK);
            else
                assert_int_equal(mloc_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape,
                                                    t->data),
                                 MLOC_OK);
        }
        assert_int_equal(mloc_st_writer_save(w, p_bad), MLOC_OK);
        mloc_st_writer_free(w);
        assert_int_equal(mloc_st_open(m.ctx, &f, p_bad), MLOC_OK);
        assert_int_equal(mloc_optim_load(adam, f), MLOC_ERR_DATA);
        assert_non_null(strstr(mloc_ctx_error(m.ctx), "optim.exp_avg_sq.bn.bias"));
        if (variant == 1) assert_non_null(strstr(mloc_ctx_error(m.ctx), "expected [8]"));
        mloc_st_close(f);
    }
    mloc_st_close(full);

    /* nothing changed: the state saves to the same bytes as before */
    save_state(&m, adam, p_after);
    size_t s0, s1;
    void *b0 = file_bytes(m.ctx, p_before, &s0), *b1 = file_bytes(m.ctx, p_after, &s1);
    assert_int_equal(s0, s1);
    assert_memory_equal(b0, b1, s0);
    free(b0);
    free(b1);
    mloc_optim_free(sgd);
    mloc_optim_free(adam);
    model_free(&m);
}

/* ---- determinism ---------------------------------------------------------- */

static void test_thread_independent(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof all_kinds / sizeof *all_kinds; k++) {
        mloc_optim_kind kind = all_kinds[k];
        float *ref = NULL;
        for (int threads = 1; threads <= 3; threads++) {
            model m;
            model_make(&m, threads);
            mloc_optim *opt = make_opt(&m, kind);
            run_steps(&m, opt, kind, 0, 4);
            size_t bytes = (size_t)nparam(&m) * sizeof(float);
            if (!ref) {
                ref = malloc(bytes);
                memcpy(ref, m.store.param, bytes);
            } else if (memcmp(ref, m.store.param, bytes) != 0) {
                fail_msg("%s: %d threads differ from 1 thread", mloc_optim_kind_name(kind),
                         threads);
            }
            mloc_optim_free(opt);
            model_free(&m);
        }
        free(ref);
    }
}

/* ---- API details ------------------------------------------------------------ */

static void test_zero_grad_and_step_keeps_grad(void **state) {
    (void)state;
    model m;
    model_make(&m, 1);
    mloc_optim *opt = make_opt(&m, MLOC_OPTIM_ADAMW);
    fill_grad(&m, 0);
    int64_t n = nparam(&m);
    float *g = malloc((size_t)n * sizeof *g);
    memcpy(g, m.store.grad, (size_t)n * sizeof *g);
    assert_int_equal(mloc_optim_step(opt, &m.store, 1e-3), MLOC_OK);
    assert_memory_equal(m.store.grad, g, (size_t)n * sizeof *g); /* not zeroed by step */
    mloc_optim_zero_grad(opt, &m.store);
    for (int64_t i = 0; i < n; i++) assert_true(m.store.grad[i] == 0.0f);
    assert_int_equal(mloc_optim_step(opt, &m.store, -1.0), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(m.ctx), "learning rate"));
    assert_int_equal(mloc_optim_step(opt, &m.store, NAN), MLOC_ERR_USAGE);
    free(g);
    mloc_optim_free(opt);
    model_free(&m);
}

/* A zero gradient with lr > 0 still decays under AdamW and SGD+wd, and a
 * zero lr leaves SGD parameters unchanged. */
static void test_simple_values(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_table tab;
    mloc_table_init(&tab);
    int64_t shape[1] = {3};
    assert_int_equal(mloc_table_add(&tab, "w", MLOC_ROLE_WEIGHT, 0, 0, 1, shape), 0);
    mloc_store s;
    assert_int_equal(mloc_store_alloc(ctx, &s, &tab), MLOC_OK);
    const float w0[3] = {1.0f, -2.0f, 0.5f};

    /* plain SGD: p - lr*g exactly */
    mloc_optim_config cfg = mloc_optim_config_default(MLOC_OPTIM_SGD);
    mloc_optim *opt = NULL;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &cfg), MLOC_OK);
    memcpy(s.param, w0, sizeof w0);
    s.grad[0] = 1.0f; s.grad[1] = 0.5f; s.grad[2] = -4.0f;
    assert_int_equal(mloc_optim_step(opt, &s, 0.25), MLOC_OK);
    assert_true(s.param[0] == 0.75f && s.param[1] == -2.125f && s.param[2] == 1.5f);
    assert_int_equal(mloc_optim_step(opt, &s, 0.0), MLOC_OK);
    assert_true(s.param[0] == 0.75f);
    mloc_optim_free(opt);

    /* AdamW with g = 0: moments stay 0, p *= 1 - lr*wd */
    cfg = mloc_optim_config_default(MLOC_OPTIM_ADAMW);
    assert_true(cfg.weight_decay == 1e-2);
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &cfg), MLOC_OK);
    memcpy(s.param, w0, sizeof w0);
    memset(s.grad, 0, sizeof(float) * 3);
    assert_int_equal(mloc_optim_step(opt, &s, 0.5), MLOC_OK);
    for (int i = 0; i < 3; i++) assert_true(s.param[i] == w0[i] * (float)(1.0 - 0.5 * 1e-2));
    mloc_optim_free(opt);

    /* Adam's first step moves each coordinate by lr (times sign), up to eps */
    cfg = mloc_optim_config_default(MLOC_OPTIM_ADAM);
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &cfg), MLOC_OK);
    memcpy(s.param, w0, sizeof w0);
    s.grad[0] = 3.0f; s.grad[1] = -0.01f; s.grad[2] = 100.0f;
    assert_int_equal(mloc_optim_step(opt, &s, 0.1), MLOC_OK);
    assert_float_equal(s.param[0], 0.9f, 1e-6);
    assert_float_equal(s.param[1], -1.9f, 1e-5);
    assert_float_equal(s.param[2], 0.4f, 1e-6);
    mloc_optim_free(opt);

    /* LARS on one tensor: trust = eta*||w|| / (||g|| + wd*||w|| + eps) */
    cfg = mloc_optim_config_default(MLOC_OPTIM_LARS);
    cfg.eta = 0.5;
    cfg.weight_decay = 0.1;
    cfg.eps = 0;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &cfg), MLOC_OK);
    const float w3[3] = {3.0f, 0.0f, 4.0f}; /* ||w|| = 5 */
    memcpy(s.param, w3, sizeof w3);
    s.grad[0] = 0.0f; s.grad[1] = 2.0f; s.grad[2] = 0.0f; /* ||g|| = 2 */
    assert_int_equal(mloc_optim_step(opt, &s, 1.0), MLOC_OK);
    double trust = 0.5 * 5 / (2 + 0.1 * 5); /* = 1 */
    assert_float_equal(s.param[0], 3.0 - trust * (0.1 * 3.0), 1e-6);
    assert_float_equal(s.param[1], 0.0 - trust * 2.0, 1e-6);
    assert_float_equal(s.param[2], 4.0 - trust * (0.1 * 4.0), 1e-6);
    mloc_optim_free(opt);

    mloc_store_free(&s);
    mloc_table_free(&tab);
    mloc_ctx_destroy(ctx);
}

static void test_config_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_table tab;
    mloc_table_init(&tab);
    mloc_optim *opt = (mloc_optim *)&tab; /* must be reset to NULL on failure */
    mloc_optim_config c = mloc_optim_config_default(MLOC_OPTIM_SGD);
    c.nesterov = 1;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);
    assert_null(opt);
    assert_non_null(strstr(mloc_ctx_error(ctx), "nesterov"));
    c.momentum = 0.9;
    c.dampening = 0.1;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);
    c = mloc_optim_config_default(MLOC_OPTIM_SGD);
    c.momentum = -0.1;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "momentum"));
    c = mloc_optim_config_default(MLOC_OPTIM_ADAM);
    c.beta2 = 1.0;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "beta2"));
    c = mloc_optim_config_default(MLOC_OPTIM_ADAMW);
    c.weight_decay = -1;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "weight_decay"));
    c = mloc_optim_config_default(MLOC_OPTIM_LARS);
    c.eta = 0;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "eta"));
    c.kind = MLOC_OPTIM_KIND_COUNT;
    assert_int_equal(mloc_optim_create(ctx, &opt, &tab, &c), MLOC_ERR_CONFIG);

    for (int k = 0; k < MLOC_OPTIM_KIND_COUNT; k++)
        assert_int_equal(mloc_optim_kind_parse(mloc_optim_kind_name((mloc_optim_kind)k)), k);
    assert_int_equal(mloc_optim_kind_parse("rmsprop"), -1);
    assert_string_equal(mloc_optim_kind_name(MLOC_OPTIM_LARS), "lars");
    mloc_optim_config d = mloc_optim_config_default(MLOC_OPTIM_LARS);
    assert_true(d.momentum == 0 && d.eta == 1e-3 && d.eps == 1e-8 && !d.clip_lars &&
                !d.exclude_bias_n_norm);
    mloc_table_free(&tab);
    mloc_ctx_destroy(ctx);
}

/* ---- schedules ------------------------------------------------------------- */

/* mloc_schedule_lr against torch 1.13's SequentialLR(LinearLR,
 * CosineAnnealingLR) stepped per iteration. torch evaluates both
 * recursively, so agreement is to rounding: |a-b| <= 1e-15 + 1e-9 |b|. */
static void test_schedule_fixture(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = NULL;
    if (mloc_st_open(ctx, &f, test_fixture("optim/schedule.safetensors")) != MLOC_OK)
        fail_msg("%s", mloc_ctx_error(ctx));
    int cases = atoi(mloc_st_metadata(f, "cases"));
    assert_true(cases >= 4);
    for (int k = 0; k < cases; k++) {
        char name[64], what[64];
        double cfg[5];
        int64_t five[1] = {5};
        snprintf(name, sizeof name, "case%d.config", k);
        assert_int_equal(mloc_st_read_f64(ctx, cfg, f, name, 1, five), MLOC_OK);
        mloc_schedule s = mloc_schedule_warmup_cosine(cfg[0], (int64_t)cfg[1], cfg[2],
                                                      (int64_t)cfg[3], cfg[4]);
        assert_int_equal(mloc_schedule_check(ctx, &s), MLOC_OK);
        int64_t total = (int64_t)cfg[3];
        int64_t shape[1] = {total + 1};
        double *want = malloc((size_t)(total + 1) * sizeof *want);
        double *got = malloc((size_t)(total + 1) * sizeof *got);
        snprintf(name, sizeof name, "case%d.lr", k);
        assert_int_equal(mloc_st_read_f64(ctx, want, f, name, 1, shape), MLOC_OK);
        for (int64_t t = 0; t <= total; t++) got[t] = mloc_schedule_lr(&s, t);
        snprintf(what, sizeof what, "schedule case %d", k);
        assert_true(test_close_f64(what, got, want, total + 1, 1e-15, 1e-9));
        /* past the end: held at min_lr (torch would rise again) */
        assert_true(mloc_schedule_lr(&s, total + 5) == cfg[4]);
        assert_true(mloc_schedule_lr(&s, -3) == mloc_schedule_lr(&s, 0));
        free(want);
        free(got);
    }
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

static void test_schedule_values(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_schedule c = mloc_schedule_constant(0.3);
    assert_int_equal(mloc_schedule_check(ctx, &c), MLOC_OK);
    assert_true(mloc_schedule_lr(&c, 0) == 0.3 && mloc_schedule_lr(&c, 1000000) == 0.3);
    mloc_schedule s = mloc_schedule_warmup_cosine(1.0, 4, 0.2, 12, 0.1);
    assert_true(mloc_schedule_lr(&s, 0) == 0.2);
    assert_float_equal(mloc_schedule_lr(&s, 2), 0.6, 1e-15);
    assert_true(mloc_schedule_lr(&s, 4) == 1.0);            /* cosine starts at base */
    assert_float_equal(mloc_schedule_lr(&s, 8), 0.55, 1e-15); /* half-way: (base+min)/2 */
    assert_true(mloc_schedule_lr(&s, 12) == 0.1);

    mloc_schedule bad = mloc_schedule_warmup_cosine(1.0, 10, 0.1, 10, 0.0);
    assert_int_equal(mloc_schedule_check(ctx, &bad), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "total steps"));
    bad = mloc_schedule_warmup_cosine(1.0, 2, 1.5, 10, 0.0);
    assert_int_equal(mloc_schedule_check(ctx, &bad), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "start factor"));
    bad = mloc_schedule_warmup_cosine(1.0, 2, 0.5, 10, 2.0);
    assert_int_equal(mloc_schedule_check(ctx, &bad), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "min lr"));
    bad = mloc_schedule_warmup_cosine(-1.0, 2, 0.5, 10, 0.0);
    assert_int_equal(mloc_schedule_check(ctx, &bad), MLOC_ERR_CONFIG);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_untouched),
        cmocka_unit_test(test_frozen_from_start),
        cmocka_unit_test(test_resume_bitwise),
        cmocka_unit_test(test_load_rejects),
        cmocka_unit_test(test_thread_independent),
        cmocka_unit_test(test_zero_grad_and_step_keeps_grad),
        cmocka_unit_test(test_simple_values),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_schedule_fixture),
        cmocka_unit_test(test_schedule_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
