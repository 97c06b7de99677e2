/* The batch loader: batches are a pure function of (seed, epoch, batch
 * number) whatever the worker count and ring depth; they equal the one-shot
 * mloc_aug_batch of the same indices and keys; every epoch visits each index
 * once in the permutation of stream ("shuffle", epoch); resuming at batch b
 * gives the same batches; metric keys ignore the epoch; restarting or freeing
 * with work in flight neither hangs nor leaks; misuse is reported.
 * Contexts use one OpenMP thread so that ThreadSanitizer runs of this test
 * see only the loader's pthreads (it cannot follow libgomp's barriers). */
#include <stdlib.h>
#include <string.h>

#include "memloc/loader.h"
#include "test_util.h"

#define NIMG 103

static mloc_dataset make_ds(int64_t n, int h, int w, int c) {
    mloc_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = n;
    ds.h = h;
    ds.w = w;
    ds.c = c;
    ds.pixels = malloc((size_t)n * h * w * c);
    ds.labels = malloc(sizeof(int32_t) * n);
    mloc_rng r;
    mloc_rng_init(&r, 77, 1);
    for (int64_t i = 0; i < n * h * w * c; i++) ds.pixels[i] = (uint8_t)mloc_rng_u32(&r);
    for (int64_t i = 0; i < n; i++) ds.labels[i] = (int32_t)((i * 7) % 10);
    return ds;
}

static void free_ds(mloc_dataset *ds) {
    free(ds->pixels);
    free(ds->labels);
}

static mloc_loader_config small_cfg(int workers) {
    mloc_loader_config cfg = mloc_loader_config_default();
    mloc_aug_config ac = mloc_aug_config_default();
    ac.size = 8;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &cfg.aug, &ac), MLOC_OK);
    cfg.batch_size = 16;
    cfg.views = 2;
    cfg.seed = 11;
    cfg.workers = workers;
    cfg.drop_last = 0;
    return cfg;
}

/* All batches of `epochs` epochs, concatenated: x, then indices. */
typedef struct {
    float *x;
    int64_t *idx;
    int64_t nx, ni;
} run_out;

static run_out run(mloc_ctx *ctx, const mloc_dataset *ds, const int64_t *indices, int64_t n,
                   const mloc_loader_config *cfg, int64_t epoch0, int epochs, int64_t first) {
    mloc_loader *L = NULL;
    assert_int_equal(mloc_loader_create(ctx, &L, ds, indices, n, cfg), MLOC_OK);
    int64_t vf = (int64_t)ds->c * cfg->aug.out_h * cfg->aug.out_w;
    run_out o = {malloc(sizeof(float) * (size_t)(epochs * (n + cfg->batch_size) * cfg->views * vf)),
                 malloc(sizeof(int64_t) * (size_t)(epochs * (n + cfg->batch_size))), 0, 0};
    for (int e = 0; e < epochs; e++) {
        assert_int_equal(mloc_loader_start_epoch(L, epoch0 + e, e == 0 ? first : 0), MLOC_OK);
        int64_t expect = e == 0 ? first : 0;
        mloc_batch *b;
        for (;;) {
            assert_int_equal(mloc_loader_next(L, &b), MLOC_OK);
            if (!b) break;
            assert_int_equal(b->epoch, epoch0 + e);
            assert_int_equal(b->number, expect++);
            assert_int_equal(b->views, cfg->views);
            assert_int_equal(b->c, ds->c);
            for (int k = 0; k < b->n; k++) assert_int_equal(b->labels[k], ds->labels[b->indices[k]]);
            memcpy(o.x + o.nx, b->x, sizeof(float) * (size_t)(b->views * b->n * vf));
            o.nx += b->views * b->n * vf;
            memcpy(o.idx + o.ni, b->indices, sizeof(int64_t) * b->n);
            o.ni += b->n;
            mloc_loader_release(L, b);
        }
        assert_int_equal(expect, mloc_loader_batches(L));
    }
    mloc_loader_free(L);
    return o;
}

static void free_run(run_out *o) {
    free(o->x);
    free(o->idx);
}

static void assert_same(const run_out *a, const run_out *b) {
    assert_int_equal(a->nx, b->nx);
    assert_int_equal(a->ni, b->ni);
    assert_memory_equal(a->idx, b->idx, sizeof(int64_t) * a->ni);
    assert_memory_equal(a->x, b->x, sizeof(float) * a->nx);
}

static void test_workers_do_not_matter(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    mloc_loader_config cfg = small_cfg(0);
    run_out base = run(ctx, &ds, NULL, NIMG, &cfg, 0, 2, 0);
    assert_int_equal(base.ni, 2 * NIMG);
    int workers[] = {1, 2, 4}, rings[] = {0, 1, 9};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            cfg = small_cfg(workers[i]);
            cfg.ring = rings[j] && rings[j] < 2 ? 2 : rings[j];
            run_out o = run(ctx, &ds, NULL, NIMG, &cfg, 0, 2, 0);
            assert_same(&base, &o);
            free_run(&o);
        }
    free_run(&base);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_matches_one_shot(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    mloc_loader_config cfg = small_cfg(2);
    mloc_loader *L = NULL;
    assert_int_equal(mloc_loader_create(ctx, &L, &ds, NULL, NIMG, &cfg), MLOC_OK);
    assert_int_equal(mloc_loader_start_epoch(L, 3, 0), MLOC_OK);
    int64_t vf = 3 * 8 * 8;
    float *want = malloc(sizeof(float) * 2 * 16 * vf);
    mloc_aug_key key = {.seed = 11, .purpose = "aug", .epoch = 3, .first_view = 0};
    mloc_batch *b;
    int batches = 0;
    while (mloc_loader_next(L, &b) == MLOC_OK && b) {
        assert_int_equal(b->h, 8);
        assert_int_equal(b->w, 8);
        assert_int_equal(mloc_aug_batch(ctx, want, NULL, &ds, b->indices, b->n, 2, &cfg.aug, &key),
                         MLOC_OK);
        assert_memory_equal(want, b->x, sizeof(float) * 2 * b->n * vf);
        mloc_loader_release(L, b);
        batches++;
    }
    assert_int_equal(batches, 7); /* ceil(103/16) */
    free(want);
    mloc_loader_free(L);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_epoch_order(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    /* a subset of the dataset, as a training split would give */
    int64_t sub[60];
    for (int k = 0; k < 60; k++) sub[k] = 100 - k;
    mloc_loader_config cfg = small_cfg(2);
    run_out o = run(ctx, &ds, sub, 60, &cfg, 4, 2, 0);
    assert_int_equal(o.ni, 120);
    for (int e = 0; e < 2; e++) {
        /* epoch 4+e is sub permuted by stream ("shuffle", 4+e) */
        mloc_rng r;
        int64_t perm[60];
        mloc_rng_init_tag(&r, 11, "shuffle", 4 + e, 0, 0);
        mloc_rng_permutation(&r, perm, 60);
        for (int k = 0; k < 60; k++) assert_int_equal(o.idx[e * 60 + k], sub[perm[k]]);
    }
    assert_true(memcmp(o.idx, o.idx + 60, sizeof(int64_t) * 60) != 0);
    free_run(&o);

    cfg.shuffle = 0;
    cfg.drop_last = 1;
    mloc_loader *L = NULL;
    assert_int_equal(mloc_loader_create(ctx, &L, &ds, sub, 60, &cfg), MLOC_OK);
    assert_int_equal(mloc_loader_batches(L), 3); /* floor(60/16) */
    assert_int_equal(mloc_loader_start_epoch(L, 0, 0), MLOC_OK);
    mloc_batch *b;
    int64_t pos = 0;
    while (mloc_loader_next(L, &b) == MLOC_OK && b) {
        assert_int_equal(b->n, 16);
        for (int k = 0; k < b->n; k++) assert_int_equal(b->indices[k], sub[pos++]);
        mloc_loader_release(L, b);
    }
    assert_int_equal(pos, 48);
    mloc_loader_free(L);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_resume_at_batch(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    mloc_loader_config cfg = small_cfg(2);
    run_out full = run(ctx, &ds, NULL, NIMG, &cfg, 2, 1, 0);
    run_out tail = run(ctx, &ds, NULL, NIMG, &cfg, 2, 1, 3);
    int64_t skip = 3 * 16;
    assert_int_equal(tail.ni, NIMG - skip);
    assert_memory_equal(tail.idx, full.idx + skip, sizeof(int64_t) * tail.ni);
    /* batch 3 starts at float offset 3 batches * 2 views * 16 * vf */
    int64_t off = skip * 2 * 3 * 8 * 8;
    assert_int_equal(tail.nx, full.nx - off);
    assert_memory_equal(tail.x, full.x + off, sizeof(float) * tail.nx);
    /* starting at the end gives an empty epoch */
    run_out none = run(ctx, &ds, NULL, NIMG, &cfg, 2, 1, 7);
    assert_int_equal(none.ni, 0);
    free_run(&full);
    free_run(&tail);
    free_run(&none);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_metric_keys(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    mloc_loader_config cfg = small_cfg(2);
    cfg.shuffle = 0;
    cfg.metric_keys = 1;
    cfg.purpose = "sslmem";
    cfg.views = 5;
    run_out a = run(ctx, &ds, NULL, NIMG, &cfg, 0, 1, 0);
    run_out b = run(ctx, &ds, NULL, NIMG, &cfg, 9, 1, 0);
    assert_same(&a, &b);
    /* the same as the metrics' one-shot path with key (purpose, sample, k) */
    int64_t vf = 3 * 8 * 8, idx[16];
    for (int k = 0; k < 16; k++) idx[k] = k;
    float *want = malloc(sizeof(float) * 5 * 16 * vf);
    mloc_aug_key key = {.seed = 11, .purpose = "sslmem", .epoch = MLOC_AUG_NO_EPOCH};
    assert_int_equal(mloc_aug_batch(ctx, want, NULL, &ds, idx, 16, 5, &cfg.aug, &key), MLOC_OK);
    assert_memory_equal(want, a.x, sizeof(float) * 5 * 16 * vf);
    /* a training loader's views differ */
    cfg.metric_keys = 0;
    run_out c = run(ctx, &ds, NULL, NIMG, &cfg, 0, 1, 0);
    assert_true(memcmp(a.x, c.x, sizeof(float) * a.nx) != 0);
    free(want);
    free_run(&a);
    free_run(&b);
    free_run(&c);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_restart_and_free_in_flight(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    mloc_loader_config cfg = small_cfg(3);
    cfg.ring = 6;
    run_out ref = run(ctx, &ds, NULL, NIMG, &cfg, 1, 1, 0);
    for (int rep = 0; rep < 20; rep++) {
        mloc_loader *L = NULL;
        assert_int_equal(mloc_loader_create(ctx, &L, &ds, NULL, NIMG, &cfg), MLOC_OK);
        assert_int_equal(mloc_loader_start_epoch(L, 0, 0), MLOC_OK);
        mloc_batch *held = NULL;
        assert_int_equal(mloc_loader_next(L, &held), MLOC_OK);
        assert_non_null(held);
        if (rep % 2) {
            mloc_loader_free(L); /* workers busy, a batch held */
            continue;
        }
        /* restart with work in flight and a batch still held */
        assert_int_equal(mloc_loader_start_epoch(L, 1, 0), MLOC_OK);
        int64_t vf = 3 * 8 * 8, off = 0;
        mloc_batch *b;
        int count = 0;
        while (mloc_loader_next(L, &b) == MLOC_OK && b) {
            assert_int_equal(b->epoch, 1);
            assert_memory_equal(b->x, ref.x + off, sizeof(float) * 2 * b->n * vf);
            off += 2 * b->n * vf;
            mloc_loader_release(L, b);
            if (++count == 2) mloc_loader_release(L, held); /* the old epoch's batch */
        }
        assert_int_equal(off, ref.nx);
        mloc_loader_free(L);
    }
    free_run(&ref);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_misuse(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(NIMG, 12, 10, 3);
    mloc_loader_config cfg = small_cfg(1);
    mloc_loader *L = NULL;
    int64_t bad[3] = {0, 5, NIMG};
    assert_int_equal(mloc_loader_create(ctx, &L, &ds, bad, 3, &cfg), MLOC_ERR_USAGE);
    assert_null(L);
    assert_non_null(strstr(mloc_ctx_error(ctx), "entry 2: index 103, expected 0..102"));
    cfg.batch_size = 0;
    assert_int_equal(mloc_loader_create(ctx, &L, &ds, NULL, NIMG, &cfg), MLOC_ERR_USAGE);
    cfg = small_cfg(1);
    cfg.aug.gray_p = 2;
    assert_int_equal(mloc_loader_create(ctx, &L, &ds, NULL, NIMG, &cfg), MLOC_ERR_CONFIG);

    for (int workers = 0; workers <= 1; workers++) {
        cfg = small_cfg(workers);
        cfg.ring = 2;
        assert_int_equal(mloc_loader_create(ctx, &L, &ds, NULL, NIMG, &cfg), MLOC_OK);
        mloc_batch *b1, *b2, *b3;
        assert_int_equal(mloc_loader_next(L, &b1), MLOC_ERR_USAGE); /* no epoch yet */
        assert_non_null(strstr(mloc_ctx_error(ctx), "before start_epoch"));
        assert_int_equal(mloc_loader_start_epoch(L, 0, 8), MLOC_ERR_USAGE); /* 7 batches */
        assert_int_equal(mloc_loader_start_epoch(L, 0, 0), MLOC_OK);
        assert_int_equal(mloc_loader_next(L, &b1), MLOC_OK);
        assert_int_equal(mloc_loader_next(L, &b2), MLOC_OK);
        /* both slots held: the third has nowhere to go */
        assert_int_equal(mloc_loader_next(L, &b3), MLOC_ERR_USAGE);
        assert_null(b3);
        assert_non_null(strstr(mloc_ctx_error(ctx), "release batches"));
        mloc_loader_release(L, b1);
        assert_int_equal(mloc_loader_next(L, &b3), MLOC_OK);
        assert_non_null(b3);
        assert_int_equal(b3->number, 2);
        mloc_loader_release(L, b2);
        mloc_loader_release(L, b3);
        mloc_loader_release(L, b3); /* twice: ignored */
        mloc_loader_free(L);
    }
    mloc_loader_free(NULL);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

static void test_one_channel(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset ds = make_ds(40, 28, 28, 1);
    mloc_loader_config cfg = small_cfg(2);
    mloc_aug_config ac = mloc_aug_config_default();
    ac.size = 28;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &cfg.aug, &ac), MLOC_OK);
    cfg.views = 1;
    mloc_loader *L = NULL;
    assert_int_equal(mloc_loader_create(ctx, &L, &ds, NULL, 40, &cfg), MLOC_OK);
    assert_int_equal(mloc_loader_start_epoch(L, 0, 0), MLOC_OK);
    mloc_batch *b;
    int64_t seen = 0;
    while (mloc_loader_next(L, &b) == MLOC_OK && b) {
        assert_int_equal(b->c, 1);
        assert_int_equal(b->h, 28);
        for (int64_t i = 0; i < (int64_t)b->n * 28 * 28; i++)
            assert_true(b->x[i] >= -1.0f && b->x[i] <= 1.0f);
        seen += b->n;
        mloc_loader_release(L, b);
    }
    assert_int_equal(seen, 40);
    mloc_loader_free(L);
    free_ds(&ds);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_do_not_matter),
        cmocka_unit_test(test_matches_one_shot),
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_resume_at_batch),
        cmocka_unit_test(test_metric_keys),
        cmocka_unit_test(test_restart_and_free_in_flight),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_one_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
