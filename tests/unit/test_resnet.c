/* torchvision's ResNet18/34/50 as built by memloc (src/models/resnet.c):
 * parameter and key counts of FORMATS.md 2.6, names, order and shapes equal
 * to torchvision 0.14's state_dict (tests/fixtures/resnet/torchvision_names.txt,
 * tools/gen_resnet_fixtures.py), both stems, taps, init, weights files
 * (metadata and inference from PyTorch names), and the oneDNN backend against
 * the reference backend on a full training step and every tap (ResNet50's
 * comparison: tests/slow/test_resnet50_backends.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/nn.h"
#include "test_util.h"

static mloc_model_config resnet_config(const char *arch, mloc_stem stem) {
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = arch;
    cfg.stem = stem;
    return cfg;
}

/* torchvision.models.resnet{18,34,50}() with its 1000-class fc and the
 * ImageNet stem: the table equals its state_dict, entry by entry. */
static void check_torchvision(const char *arch, int keys, int64_t params, int taps, int features) {
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = resnet_config(arch, MLOC_STEM_IMAGENET);
    cfg.head = MLOC_HEAD_CLASSIFIER;
    cfg.head_out = 1000;
    cfg.image_h = cfg.image_w = 224;
    mloc_model *m;
    mloc_status st = mloc_model_create(ctx, &m, &cfg);
    if (st) fail_msg("%s: %s", arch, mloc_ctx_error(ctx));
    assert_int_equal(m->table.n, keys);
    assert_int_equal(mloc_model_param_count(m, 0), params);
    assert_int_equal(m->n_taps, taps);
    assert_int_equal(m->values[m->feature].c, features);
    assert_int_equal(m->values[m->output].c, 1000);

    FILE *f = fopen(test_fixture("resnet/torchvision_names.txt"), "r");
    assert_non_null(f);
    char line[256], a[32], name[128], dtype[16], shape[64];
    int i = 0;
    while (fgets(line, sizeof line, f)) {
        shape[0] = 0;
        int got = sscanf(line, "%31s %127s %15s %63s", a, name, dtype, shape);
        assert_true(got >= 3);
        if (strcmp(a, arch) != 0) continue;
        if (i >= m->table.n) fail_msg("%s: torchvision has more entries than memloc (%s)", arch, name);
        const mloc_tensor *e = &m->table.t[i];
        if (strcmp(e->name, name) != 0) fail_msg("%s entry %d: memloc %s, torchvision %s", arch, i, e->name, name);
        char mine[64] = "";
        for (int d = 0; d < e->ndim; d++)
            snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%s%lld", d ? "," : "",
                     (long long)e->shape[d]);
        if (strcmp(mine, shape) != 0) fail_msg("%s %s: memloc shape [%s], torchvision [%s]", arch, name, mine, shape);
        assert_int_equal(e->role == MLOC_ROLE_NUM_BATCHES, strcmp(dtype, "int64") == 0);
        assert_int_equal(e->group, strncmp(name, "fc.", 3) == 0 ? MLOC_GROUP_HEAD : MLOC_GROUP_ENCODER);
        i++;
    }
    fclose(f);
    assert_int_equal(i, keys);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

static void test_torchvision_resnet18(void **state) {
    (void)state;
    check_torchvision("resnet18", 122, 11689512, 17, 512);
}

static void test_torchvision_resnet34(void **state) {
    (void)state;
    check_torchvision("resnet34", 218, 21797672, 33, 512);
}

static void test_torchvision_resnet50(void **state) {
    (void)state;
    check_torchvision("resnet50", 320, 25557032, 49, 2048);
}

/* Taps and shapes of both stems; every tap is post-ReLU with channel units. */
static void test_taps_and_stems(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = resnet_config("resnet18", MLOC_STEM_CIFAR);
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    static const struct { const char *name; int c, h; } t18[] = {
        {"stem", 64, 32},           {"layer1.0.relu1", 64, 32},  {"layer1.0", 64, 32},
        {"layer1.1.relu1", 64, 32}, {"layer1.1", 64, 32},        {"layer2.0.relu1", 128, 16},
        {"layer2.0", 128, 16},      {"layer2.1.relu1", 128, 16}, {"layer2.1", 128, 16},
        {"layer3.0.relu1", 256, 8}, {"layer3.0", 256, 8},        {"layer3.1.relu1", 256, 8},
        {"layer3.1", 256, 8},       {"layer4.0.relu1", 512, 4},  {"layer4.0", 512, 4},
        {"layer4.1.relu1", 512, 4}, {"layer4.1", 512, 4}};
    assert_int_equal(m->n_taps, 17);
    for (int t = 0; t < 17; t++) {
        const mloc_tap *tp = &m->taps[t];
        const mloc_value *v = &m->values[tp->value];
        assert_string_equal(tp->name, t18[t].name);
        assert_int_equal(v->c, t18[t].c);
        assert_int_equal(v->h, t18[t].h);
        assert_int_equal(v->w, t18[t].h);
        assert_int_equal(tp->units, t18[t].c);
        assert_int_equal(tp->unit_kind, MLOC_UNIT_CHANNEL);
        assert_int_equal(tp->nonneg, 1);
        /* a tap is a ReLU output (the ImageNet stem's is its maxpool's) */
        assert_int_equal(m->nodes[v->producer].op, MLOC_OP_RELU);
        assert_true(tp->module >= 0);
        const char *mod = m->modules[tp->module];
        assert_int_equal(strncmp(tp->name, mod, strlen(mod)), 0);
    }
    /* CIFAR stem: conv1 3x3 stride 1 padding 1, no maxpool */
    int w = mloc_table_find(&m->table, "conv1.weight");
    assert_int_equal(m->table.t[w].shape[2], 3);
    for (int i = 0; i < m->n_nodes; i++) assert_int_not_equal(m->nodes[i].op, MLOC_OP_MAXPOOL2D);
    assert_int_equal(mloc_table_find(&m->table, "conv1.bias"), -1);
    assert_int_equal(mloc_table_find(&m->table, "layer1.0.downsample.0.weight"), -1);
    assert_true(mloc_table_find(&m->table, "layer2.0.downsample.1.running_var") >= 0);
    assert_true(mloc_table_find(&m->table, "head.2.bias") >= 0);
    assert_int_equal(m->values[m->feature].c, 512);
    assert_int_equal(m->values[m->feature].h, 1);
    /* encoder: 11,689,512 - fc (513,000) - 7x7 conv1 (9,408) + 3x3 conv1 (1,728) */
    assert_int_equal(mloc_model_param_count(m, 1), 11689512 - 513000 - 9408 + 1728);
    mloc_model_free(m);

    /* ImageNet stem at 224: 56x56 after the maxpool, 7x7 at layer4 */
    cfg = resnet_config("resnet50", MLOC_STEM_IMAGENET);
    cfg.image_h = cfg.image_w = 224;
    cfg.head = MLOC_HEAD_NONE;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(m->n_taps, 49);
    const mloc_value *stem = &m->values[m->taps[0].value];
    assert_int_equal(stem->c, 64);
    assert_int_equal(stem->h, 56);
    assert_int_equal(m->nodes[stem->producer].op, MLOC_OP_MAXPOOL2D);
    int t = mloc_model_find_tap(m, "layer1.0.relu2");
    assert_true(t >= 0);
    assert_int_equal(m->values[m->taps[t].value].c, 64);
    t = mloc_model_find_tap(m, "layer1.0");
    assert_int_equal(m->values[m->taps[t].value].c, 256);
    t = mloc_model_find_tap(m, "layer4.2");
    assert_int_equal(t, 48);
    assert_int_equal(m->values[m->taps[t].value].c, 2048);
    assert_int_equal(m->values[m->taps[t].value].h, 7);
    /* v1.5: the stride is in conv2 (3x3), conv1 (1x1) keeps 56x56 in layer2.0 */
    assert_int_equal(m->values[m->taps[mloc_model_find_tap(m, "layer2.0.relu1")].value].h, 56);
    assert_int_equal(m->values[m->taps[mloc_model_find_tap(m, "layer2.0.relu2")].value].h, 28);
    assert_true(mloc_table_find(&m->table, "layer1.0.downsample.0.weight") >= 0);
    assert_int_equal(m->output, m->feature);
    assert_int_equal(m->values[m->feature].c, 2048);
    mloc_model_free(m);

    /* width multiplier */
    cfg = resnet_config("resnet34", MLOC_STEM_CIFAR);
    cfg.width = 0.5;
    cfg.in_channels = 1;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    w = mloc_table_find(&m->table, "conv1.weight");
    assert_int_equal(m->table.t[w].shape[0], 32);
    assert_int_equal(m->table.t[w].shape[1], 1);
    assert_int_equal(m->values[m->feature].c, 256);
    mloc_model_free(m);

    cfg = resnet_config("resnet18", (mloc_stem)7);
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "stem"));
    cfg = resnet_config("resnet101", MLOC_STEM_CIFAR);
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "resnet101"));
    assert_string_equal(mloc_stem_name(MLOC_STEM_IMAGENET), "imagenet");
    assert_int_equal(mloc_stem_parse("cifar"), MLOC_STEM_CIFAR);
    assert_int_equal(mloc_stem_parse("tiny"), -1);
    const char *const *archs = mloc_model_archs();
    int found = 0;
    for (int i = 0; archs[i]; i++) found += !strcmp(archs[i], "resnet18") + !strcmp(archs[i], "resnet50");
    assert_int_equal(found, 2);
    mloc_ctx_destroy(ctx);
}

/* torchvision's init: conv weights N(0, 2 / (K R S)), BN 1 / 0, fc U(+-1/sqrt(I)). */
static void test_init(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = resnet_config("resnet18", MLOC_STEM_CIFAR);
    cfg.head = MLOC_HEAD_CLASSIFIER;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    int w = mloc_table_find(&m->table, "layer3.0.conv2.weight");
    const float *p = mloc_store_ptr(&m->store, &m->table, w);
    double s1 = 0, s2 = 0;
    int64_t n = m->table.t[w].numel;
    for (int64_t i = 0; i < n; i++) {
        s1 += p[i];
        s2 += (double)p[i] * p[i];
    }
    double var = 2.0 / (256 * 9);
    assert_true(fabs(s1 / n) < 4 * sqrt(var / n));
    assert_true(fabs(s2 / n / var - 1) < 0.02);
    int fc = mloc_table_find(&m->table, "fc.weight");
    p = mloc_store_ptr(&m->store, &m->table, fc);
    double mx = 0, bound = 1 / sqrt(512.0);
    for (int64_t i = 0; i < m->table.t[fc].numel; i++) mx = fmax(mx, fabs(p[i]));
    assert_true(mx <= bound && mx > 0.99 * bound);
    const float *g = mloc_store_ptr(&m->store, &m->table, mloc_table_find(&m->table, "layer1.1.bn2.weight"));
    assert_true(g[0] == 1.0f && g[63] == 1.0f);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* Save with metadata and open; save without metadata (a PyTorch export)
 * and infer arch, stem, width, channels and head from the names. */
static void check_file_roundtrip(const char *arch, mloc_stem stem, double width, mloc_head_kind head) {
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = resnet_config(arch, stem);
    cfg.width = width;
    cfg.head = head;
    cfg.head_hidden = 48;
    cfg.head_out = head == MLOC_HEAD_CLASSIFIER ? 7 : 24;
    cfg.in_channels = 1;
    mloc_model *m, *o;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    mloc_model_init_params(m, 77);
    char path[4200];
    snprintf(path, sizeof path, "%s/with_meta.safetensors", test_tmpdir("resnet_io"));
    assert_int_equal(mloc_model_save(ctx, m, path, -1, NULL), MLOC_OK);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_string_equal(mloc_st_metadata(f, "memloc_stem"), mloc_stem_name(stem));
    assert_string_equal(mloc_st_metadata(f, "memloc_arch"), arch);
    mloc_st_close(f);
    assert_int_equal(mloc_model_open(ctx, &o, path, -1), MLOC_OK);
    assert_string_equal(o->arch, arch);
    assert_int_equal(o->cfg.stem, stem);
    assert_int_equal(o->cfg.head, head);
    assert_int_equal(o->table.n, m->table.n);
    assert_memory_equal(o->store.param, m->store.param, m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    mloc_model_free(o);

    /* no memloc metadata: the tensors only, as torch's save_file writes them */
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(w, &m->table, &m->store, -1), MLOC_OK);
    snprintf(path, sizeof path, "%s/plain.safetensors", test_tmpdir("resnet_io"));
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_null(mloc_st_metadata(f, "memloc_arch"));
    mloc_model_config got;
    mloc_status st = mloc_model_config_from_file(ctx, &got, f);
    if (st) fail_msg("%s", mloc_ctx_error(ctx));
    assert_string_equal(got.arch, arch);
    assert_int_equal(got.stem, stem);
    assert_true(got.width == width);
    assert_int_equal(got.in_channels, 1);
    assert_int_equal(got.head, head);
    if (head != MLOC_HEAD_NONE) assert_int_equal(got.head_out, cfg.head_out);
    if (head == MLOC_HEAD_SIMCLR) assert_int_equal(got.head_hidden, 48);
    assert_int_equal(mloc_model_create(ctx, &o, &got), MLOC_OK);
    assert_int_equal(mloc_model_load(ctx, o, f), MLOC_OK);
    assert_memory_equal(o->store.param, m->store.param, m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    mloc_model_free(o);
    mloc_st_close(f);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

static void test_weights_files(void **state) {
    (void)state;
    check_file_roundtrip("resnet18", MLOC_STEM_CIFAR, 0.25, MLOC_HEAD_SIMCLR);
    check_file_roundtrip("resnet34", MLOC_STEM_IMAGENET, 0.125, MLOC_HEAD_CLASSIFIER);
    check_file_roundtrip("resnet50", MLOC_STEM_IMAGENET, 0.125, MLOC_HEAD_NONE);
    check_file_roundtrip("resnet50", MLOC_STEM_CIFAR, 0.0625, MLOC_HEAD_SIMCLR);
}

/* A ResNet whose blocks match no torchvision depth, a bad stem kernel and a
 * bad memloc_stem are errors naming the file and what was expected. */
static void test_weights_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = resnet_config("resnet18", MLOC_STEM_CIFAR);
    cfg.width = 0.125;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    const char *dir = test_tmpdir("resnet_err");
    char path[4200];
    mloc_st_writer *w;
    mloc_st_file *f;
    mloc_model_config got;
    /* drop layer3.1: blocks 2-2-1-2 */
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        if (strncmp(e->name, "layer3.1.", 9) == 0) continue;
        assert_int_equal(mloc_st_writer_add(w, e->name, e->role == MLOC_ROLE_NUM_BATCHES ? MLOC_DTYPE_I64 : MLOC_DTYPE_F32,
                                            e->ndim, e->shape, mloc_store_ptr(&m->store, &m->table, i)),
                         MLOC_OK);
    }
    snprintf(path, sizeof path, "%s/blocks.safetensors", dir);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_int_equal(mloc_model_config_from_file(ctx, &got, f), MLOC_ERR_UNSUPPORTED);
    assert_non_null(strstr(mloc_ctx_error(ctx), "2-2-1-2"));
    assert_non_null(strstr(mloc_ctx_error(ctx), "blocks.safetensors"));
    mloc_st_close(f);

    /* memloc metadata with an unknown stem */
    static const char *const bad[] = {"memloc_stem", "tiny", NULL};
    snprintf(path, sizeof path, "%s/stem.safetensors", dir);
    assert_int_equal(mloc_model_save(ctx, m, path, -1, bad), MLOC_OK);
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_int_equal(mloc_model_config_from_file(ctx, &got, f), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "memloc_stem 'tiny'"));
    mloc_st_close(f);

    /* a 5x5 conv1 */
    int64_t shape[4] = {8, 3, 5, 5};
    float zeros[8 * 3 * 5 * 5] = {0};
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_st_writer_add(w, "conv1.weight", MLOC_DTYPE_F32, 4, shape, zeros), MLOC_OK);
    snprintf(path, sizeof path, "%s/conv1.safetensors", dir);
    assert_int_equal(mloc_st_writer_save(w, path), MLOC_OK);
    mloc_st_writer_free(w);
    assert_int_equal(mloc_st_open(ctx, &f, path), MLOC_OK);
    assert_int_equal(mloc_model_config_from_file(ctx, &got, f), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "5x5"));
    mloc_st_close(f);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

static void test_dnnl_matches_ref_resnet18_cifar(void **state) {
    (void)state;
    mloc_model_config cfg = resnet_config("resnet18", MLOC_STEM_CIFAR);
    cfg.width = 0.25;
    cfg.image_h = cfg.image_w = 16;
    cfg.head_hidden = 64;
    cfg.head_out = 32;
    test_compare_backends(&cfg, 6, 1, 1e-3);
}

/* the ImageNet stem: 7x7 stride-2 conv1 and the padded 3x3 stride-2 maxpool */
static void test_dnnl_matches_ref_resnet18_imagenet(void **state) {
    (void)state;
    mloc_model_config cfg = resnet_config("resnet18", MLOC_STEM_IMAGENET);
    cfg.width = 0.25;
    cfg.image_h = cfg.image_w = 64;
    cfg.head_hidden = 64;
    cfg.head_out = 32;
    test_compare_backends(&cfg, 4, 1, 1e-3);
}

/* gray input, classifier head, odd image size */
static void test_dnnl_matches_ref_resnet34_classifier(void **state) {
    (void)state;
    mloc_model_config cfg = resnet_config("resnet34", MLOC_STEM_CIFAR);
    cfg.width = 0.125;
    cfg.in_channels = 1;
    cfg.image_h = cfg.image_w = 11;
    cfg.head = MLOC_HEAD_CLASSIFIER;
    cfg.head_out = 10;
    test_compare_backends(&cfg, 4, 1, 1e-3);
}

/* A partial eval forward up to a tap equals the full forward's rows. */
static void test_partial_forward(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model_config cfg = resnet_config("resnet18", MLOC_STEM_CIFAR);
    cfg.width = 0.25;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_plan(ctx, m, 4), MLOC_OK);
    float *x = malloc(4 * 3 * 32 * 32 * sizeof(float));
    test_fill_uniform_f32(x, 4 * 3 * 32 * 32, -1, 1, 3);
    int tap = m->taps[mloc_model_find_tap(m, "layer2.0")].value;
    int64_t n = mloc_model_value_numel(m, tap);
    float *full = malloc(4 * n * sizeof(float)), *part = malloc(4 * n * sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, m, x, 4, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, tap, full), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, m, x, 3, MLOC_MODE_EVAL, tap), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, tap, part), MLOC_OK);
    assert_memory_equal(full, part, 3 * n * sizeof(float));
    int last = m->taps[mloc_model_find_tap(m, "layer4.1")].value;
    assert_int_equal(mloc_model_read(ctx, m, last, part), MLOC_ERR_USAGE);
    free(x);
    free(full);
    free(part);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torchvision_resnet18),
        cmocka_unit_test(test_torchvision_resnet34),
        cmocka_unit_test(test_torchvision_resnet50),
        cmocka_unit_test(test_taps_and_stems),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_weights_files),
        cmocka_unit_test(test_weights_errors),
        cmocka_unit_test(test_dnnl_matches_ref_resnet18_cifar),
        cmocka_unit_test(test_dnnl_matches_ref_resnet18_imagenet),
        cmocka_unit_test(test_dnnl_matches_ref_resnet34_classifier),
        cmocka_unit_test(test_partial_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
