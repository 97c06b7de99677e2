/* Presets, names, validation, replay records, stream keys and the one-shot
 * batch path of src/augment. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "memloc/augment.h"
#include "test_util.h"

static void test_names(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    for (int i = 0; i < MLOC_AUG_PRESET_COUNT; i++) {
        mloc_aug_preset p;
        assert_int_equal(mloc_aug_preset_parse(ctx, mloc_aug_preset_name((mloc_aug_preset)i), &p),
                         MLOC_OK);
        assert_int_equal(p, i);
    }
    assert_string_equal(mloc_aug_preset_name(MLOC_AUG_SIMCLR), "simclr");
    mloc_aug_preset p;
    assert_int_equal(mloc_aug_preset_parse(ctx, "simclrr", &p), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "'simclrr' is not one of none|simclr|unitmem"));
    for (int i = 0; i < MLOC_AUG_NORM_COUNT; i++) {
        mloc_aug_norm n;
        assert_int_equal(mloc_aug_norm_parse(ctx, mloc_aug_norm_name((mloc_aug_norm)i), &n), MLOC_OK);
        assert_int_equal(n, i);
    }
    mloc_aug_norm n;
    assert_int_equal(mloc_aug_norm_parse(ctx, "cifar", &n), MLOC_ERR_USAGE);
    float mean[3], std[3];
    mloc_aug_norm_values(MLOC_AUG_NORM_CIFAR100, mean, std);
    assert_true(mean[0] == 0.5071f && std[2] == 0.2762f);
    mloc_aug_norm_values(MLOC_AUG_NORM_HALF, mean, std);
    assert_true(mean[1] == 0.5f && std[1] == 0.5f);
    mloc_ctx_destroy(ctx);
}

static void test_presets_and_validation(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_aug_config cfg = mloc_aug_config_default();
    mloc_aug_pipeline pp;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_OK);
    /* layer_mem.py: RRC(32), flip 0.5, RandomApply(CJ(.8,.8,.8,.2), .8), gray .2 */
    assert_int_equal(pp.out_h, 32);
    assert_int_equal(pp.crop, 1);
    assert_true(pp.scale[0] == 0.08f && pp.scale[1] == 1.0f);
    assert_true(pp.ratio[0] == 0.75f && pp.ratio[1] == 4.0f / 3);
    assert_true(pp.flip_p == 0.5f && pp.flip_apply_p == 1.0f);
    assert_true(pp.jitter_p == 0.8f && pp.gray_p == 0.2f);
    assert_true(pp.brightness[0] == (float)(1 - 0.8) && pp.saturation[1] == 1.8f);
    assert_true(pp.hue[0] == -0.2f && pp.hue[1] == 0.2f);
    assert_true(pp.antialias == 1 && pp.normalize_first == 0 && pp.mean[0] == 0.5f);

    cfg.preset = MLOC_AUG_UNITMEM;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_OK);
    assert_true(pp.flip_apply_p == 0.5f && pp.flip_p == 0.5f);
    assert_true(pp.jitter_p == 0.9f && pp.gray_p == 0.1f);
    assert_true(pp.contrast[1] == 1.9f && pp.hue[1] == 0.1f);

    cfg.preset = MLOC_AUG_NONE;
    cfg.compat_normalize_first = 1;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_OK);
    assert_true(pp.crop == 0 && pp.flip_p == 0 && pp.jitter_p == 0 && pp.gray_p == 0);
    assert_int_equal(pp.normalize_first, 1);

    /* overrides and errors */
    cfg = mloc_aug_config_default();
    cfg.gray_p = 0.0f;
    cfg.flip_p = 1.0f;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_OK);
    assert_true(pp.gray_p == 0.0f && pp.flip_p == 1.0f);
    cfg.jitter_p = 1.5f;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "jitter_p 1.5, expected 0..1"));
    cfg = mloc_aug_config_default();
    cfg.strength = 3.0f; /* hue 0.6 > 0.5 */
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "hue range"));
    cfg = mloc_aug_config_default();
    cfg.crop_scale_min = 0.0f;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_ERR_CONFIG);
    assert_non_null(strstr(mloc_ctx_error(ctx), "crop scale min"));
    cfg = mloc_aug_config_default();
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_OK);
    pp.std[1] = 0;
    assert_int_equal(mloc_aug_pipeline_check(ctx, &pp), MLOC_ERR_CONFIG);
    mloc_ctx_destroy(ctx);
}

static void test_json_records(void **state) {
    (void)state;
    mloc_aug_config cfg = mloc_aug_config_default();
    cfg.jitter_p = 1;
    mloc_aug_pipeline pp;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pp, &cfg), MLOC_OK);
    pp.hue[0] = pp.hue[1] = 0; /* hue disabled -> null */
    mloc_rng r;
    mloc_aug_stream(&r, 1, "aug", 3, 17, 1);
    mloc_aug_params p;
    mloc_aug_draw(&p, &pp, 32, 32, &r);
    char line[1024];
    int len = mloc_aug_params_format_json(line, sizeof line, &p, 3, 17, 1);
    assert_true(len > 0 && len < (int)sizeof line && (int)strlen(line) == len);
    /* the length without a buffer is the same (snprintf semantics) */
    assert_int_equal(mloc_aug_params_format_json(NULL, 0, &p, 3, 17, 1), len);
    char tiny[16];
    assert_int_equal(mloc_aug_params_format_json(tiny, sizeof tiny, &p, 3, 17, 1), len);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "epoch")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "sample")), 17);
    assert_int_equal(json_integer_value(json_object_get(o, "view")), 1);
    json_t *crop = json_object_get(o, "crop");
    assert_int_equal(json_array_size(crop), 4);
    assert_int_equal(json_integer_value(json_array_get(crop, 2)), p.height);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(o, "order"), 0)), p.order[0]);
    /* %.9g round-trips float32 exactly */
    assert_true((float)json_real_value(json_object_get(o, "brightness")) == p.factor[0]);
    assert_true(json_is_null(json_object_get(o, "hue")));
    assert_int_equal(json_integer_value(json_object_get(o, "flip")), p.flip);
    json_decref(o);
    /* metrics: no epoch */
    mloc_aug_params_format_json(line, sizeof line, &p, MLOC_AUG_NO_EPOCH, 5, 2);
    o = json_loads(line, 0, &err);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "epoch")));
    json_decref(o);

    /* the FILE writer: one line per record */
    char *buf = NULL;
    size_t bufsize = 0;
    FILE *mem = open_memstream(&buf, &bufsize);
    assert_non_null(mem);
    assert_int_equal(mloc_aug_params_write_json(NULL, mem, "mem", &p, 3, 17, 1), MLOC_OK);
    assert_int_equal(mloc_aug_params_write_json(NULL, mem, "mem", &p, 3, 18, 0), MLOC_OK);
    fclose(mem);
    const char *head = "{\"epoch\":3,\"sample\":17,";
    assert_int_equal(strncmp(buf, head, strlen(head)), 0);
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_non_null(strstr(nl + 1, "\"sample\":18"));
    assert_int_equal(buf[bufsize - 1], '\n');
    free(buf);

    len = mloc_aug_pipeline_format_json(line, sizeof line, &pp);
    assert_true(len > 0 && len < (int)sizeof line);
    o = json_loads(line, 0, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "schema")), "memloc.aug_pipeline/1");
    assert_true(json_is_true(json_object_get(o, "antialias")));
    assert_true(json_is_false(json_object_get(o, "normalize_first")));
    assert_true((float)json_real_value(json_array_get(json_object_get(o, "ratio"), 1)) == 4.0f / 3);
    json_decref(o);
}

static void test_stream_keys(void **state) {
    (void)state;
    mloc_aug_config cfg = mloc_aug_config_default();
    mloc_aug_pipeline pp;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pp, &cfg), MLOC_OK);
    /* same key -> same draw (f and g of the metrics); any key part differs ->
     * different draws */
    mloc_aug_params a, b;
    mloc_rng r;
    mloc_aug_stream(&r, 42, "sslmem", MLOC_AUG_NO_EPOCH, 123, 4);
    mloc_aug_draw(&a, &pp, 32, 32, &r);
    mloc_aug_stream(&r, 42, "sslmem", MLOC_AUG_NO_EPOCH, 123, 4);
    mloc_aug_draw(&b, &pp, 32, 32, &r);
    assert_memory_equal(&a, &b, sizeof a);
    int differ = 0;
    struct {
        uint64_t seed;
        const char *purpose;
        int64_t epoch, sample, view;
    } keys[] = {{43, "sslmem", MLOC_AUG_NO_EPOCH, 123, 4}, {42, "unitmem", MLOC_AUG_NO_EPOCH, 123, 4},
                {42, "sslmem", 0, 123, 4}, {42, "sslmem", MLOC_AUG_NO_EPOCH, 124, 4},
                {42, "sslmem", MLOC_AUG_NO_EPOCH, 123, 5}};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        mloc_aug_stream(&r, keys[k].seed, keys[k].purpose, keys[k].epoch, keys[k].sample,
                        keys[k].view);
        mloc_aug_draw(&b, &pp, 32, 32, &r);
        differ += memcmp(&a, &b, sizeof a) != 0;
    }
    assert_int_equal(differ, 5);
}

static mloc_dataset synthetic(int64_t n, int h, int w, int c) {
    mloc_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = n;
    ds.h = h;
    ds.w = w;
    ds.c = c;
    ds.pixels = malloc((size_t)n * h * w * c);
    ds.labels = malloc(sizeof(int32_t) * n);
    mloc_rng r;
    mloc_rng_init(&r, 9, 9);
    for (int64_t i = 0; i < n * h * w * c; i++) ds.pixels[i] = (uint8_t)mloc_rng_u32(&r);
    for (int64_t i = 0; i < n; i++) ds.labels[i] = (int32_t)(i % 10);
    return ds;
}

static void test_batch(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_dataset ds = synthetic(40, 32, 32, 3);
    mloc_aug_config cfg = mloc_aug_config_default();
    mloc_aug_pipeline pp;
    assert_int_equal(mloc_aug_pipeline_make(ctx, &pp, &cfg), MLOC_OK);
    int64_t idx[7] = {3, 39, 0, 17, 17, 8, 22};
    const int n = 7, V = 3;
    const int64_t vf = 3 * 32 * 32;
    float *a = malloc(sizeof(float) * V * n * vf), *b = malloc(sizeof(float) * V * n * vf);
    float *one = malloc(sizeof(float) * vf);
    mloc_aug_params *pa = malloc(sizeof(mloc_aug_params) * V * n);
    mloc_aug_key key = {.seed = 5, .purpose = "sslmem", .epoch = MLOC_AUG_NO_EPOCH, .first_view = 0};
    assert_int_equal(mloc_aug_batch(ctx, a, pa, &ds, idx, n, V, &pp, &key), MLOC_OK);
    /* thread count does not matter */
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    assert_int_equal(mloc_aug_batch(ctx, b, NULL, &ds, idx, n, V, &pp, &key), MLOC_OK);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    assert_memory_equal(a, b, sizeof(float) * V * n * vf);
    /* view-major rows, each the view drawn from its own key */
    for (int v = 0; v < V; v++)
        for (int k = 0; k < n; k++) {
            mloc_rng r;
            mloc_aug_stream(&r, 5, "sslmem", MLOC_AUG_NO_EPOCH, idx[k], v);
            mloc_aug_params p;
            mloc_aug_draw(&p, &pp, 32, 32, &r);
            assert_memory_equal(&p, &pa[v * n + k], sizeof p);
            assert_int_equal(mloc_aug_apply(one, ds.pixels + idx[k] * vf, 32, 32, 3, &p, &pp),
                             MLOC_OK);
            assert_memory_equal(one, a + (v * n + k) * vf, sizeof(float) * vf);
        }
    /* the same image twice in a batch gets the same views (keyed by index) */
    assert_memory_equal(a + 3 * vf, a + 4 * vf, sizeof(float) * vf);
    /* views in chunks: first_view 2 reproduces view 2 */
    key.first_view = 2;
    assert_int_equal(mloc_aug_batch(ctx, b, NULL, &ds, idx, n, 1, &pp, &key), MLOC_OK);
    assert_memory_equal(b, a + 2 * n * vf, sizeof(float) * n * vf);
    /* errors */
    int64_t bad[2] = {0, 40};
    assert_int_equal(mloc_aug_batch(ctx, b, NULL, &ds, bad, 2, 1, &pp, &key), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "entry 1: index 40, expected 0..39"));
    free(a);
    free(b);
    free(one);
    free(pa);
    free(ds.pixels);
    free(ds.labels);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_presets_and_validation),
        cmocka_unit_test(test_json_records),
        cmocka_unit_test(test_stream_keys),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
