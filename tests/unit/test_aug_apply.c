/* The fused apply path against the plain reference (bit for bit), and the
 * properties of apply that do not need torchvision: ToTensor + Normalize,
 * flip as a column reversal, grayscale, 1-channel no-ops, the
 * normalise-first clamp, and the heap path for large images. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/internal.h"
#include "memloc/augment.h"
#include "test_util.h"

static uint8_t *random_image(int h, int w, int c, uint64_t seed) {
    uint8_t *img = malloc((size_t)h * w * c);
    mloc_rng r;
    mloc_rng_init(&r, seed, 5);
    /* smooth structure plus noise, so crops and hue see varied content */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double v = 127.5 + 90 * sin(0.3 * x + 0.7 * ch) * cos(0.2 * y - ch) +
                           30 * (mloc_rng_uniform(&r) - 0.5);
                img[((size_t)y * w + x) * c + ch] = (uint8_t)fmin(255, fmax(0, round(v)));
            }
    return img;
}

static mloc_aug_pipeline preset(mloc_aug_preset p, int size) {
    mloc_aug_config cfg = mloc_aug_config_default();
    cfg.preset = p;
    cfg.size = size;
    mloc_aug_pipeline pipe;
    assert_int_equal(mloc_aug_pipeline_make(NULL, &pipe, &cfg), MLOC_OK);
    return pipe;
}

/* Compare fast and reference over many drawn views; returns views checked. */
static int compare_views(const mloc_aug_pipeline *pipe, int h, int w, int c, int views,
                         uint64_t seed) {
    uint8_t *img = random_image(h, w, c, seed);
    int oh, ow;
    mloc_aug_out_size(pipe, h, w, &oh, &ow);
    int64_t n = (int64_t)c * oh * ow;
    float *fast = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
    int mismatched = 0;
    for (int v = 0; v < views; v++) {
        mloc_rng r;
        mloc_aug_stream(&r, seed, "test", 0, v, 0);
        mloc_aug_params p;
        mloc_aug_draw(&p, pipe, h, w, &r);
        assert_int_equal(mloc_aug_apply(fast, img, h, w, c, &p, pipe), MLOC_OK);
        assert_int_equal(aug_apply_ref(ref, img, h, w, c, &p, pipe), MLOC_OK);
        if (memcmp(fast, ref, sizeof(float) * n) != 0) {
            if (!mismatched) test_close_f32("fast vs reference", fast, ref, n, 0, 0);
            mismatched++;
        }
    }
    printf("fast vs reference %dx%dx%d -> %dx%d (aa %d, nfirst %d): %d views, %d differ\n", h, w,
           c, oh, ow, pipe->antialias, pipe->normalize_first, views, mismatched);
    free(img);
    free(fast);
    free(ref);
    return mismatched;
}

static void test_fast_equals_reference(void **state) {
    (void)state;
    int bad = 0;
    mloc_aug_pipeline simclr = preset(MLOC_AUG_SIMCLR, 32);
    mloc_aug_pipeline unitmem = preset(MLOC_AUG_UNITMEM, 32);
    bad += compare_views(&simclr, 32, 32, 3, 300, 1);
    bad += compare_views(&unitmem, 32, 32, 3, 100, 2);
    bad += compare_views(&simclr, 28, 28, 1, 100, 3);
    mloc_aug_pipeline plain = simclr;
    plain.antialias = 0;
    bad += compare_views(&plain, 32, 32, 3, 100, 4);
    mloc_aug_pipeline nfirst = simclr;
    nfirst.normalize_first = 1;
    bad += compare_views(&nfirst, 32, 32, 3, 100, 5);
    /* downsampling crops: 64x48 -> 24x20, non-square output */
    mloc_aug_pipeline down = simclr;
    down.out_h = 24;
    down.out_w = 20;
    bad += compare_views(&down, 64, 48, 3, 100, 6);
    down.antialias = 0;
    bad += compare_views(&down, 64, 48, 3, 50, 7);
    /* large image, output bigger than the stack workspace */
    mloc_aug_pipeline big = simclr;
    big.out_h = big.out_w = 96;
    bad += compare_views(&big, 150, 200, 3, 10, 8);
    mloc_aug_pipeline none = preset(MLOC_AUG_NONE, 0);
    bad += compare_views(&none, 17, 23, 3, 5, 9);
    assert_int_equal(bad, 0);
}

static void test_totensor_normalize(void **state) {
    (void)state;
    const int h = 9, w = 11, c = 3;
    uint8_t *img = random_image(h, w, c, 11);
    mloc_aug_pipeline pipe = preset(MLOC_AUG_NONE, 0);
    mloc_aug_norm_values(MLOC_AUG_NORM_CIFAR10, pipe.mean, pipe.std);
    mloc_rng r;
    mloc_aug_stream(&r, 1, "aug", 0, 0, 0);
    mloc_aug_params p;
    mloc_aug_draw(&p, &pipe, h, w, &r);
    assert_int_equal(p.out_h, h);
    assert_int_equal(p.out_w, w);
    assert_int_equal(p.flip + p.jitter + p.gray, 0);
    float out[3 * 9 * 11];
    assert_int_equal(mloc_aug_apply(out, img, h, w, c, &p, &pipe), MLOC_OK);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < h * w; i++) {
            /* ToTensor then Normalize, float32 as torchvision */
            float want = ((float)img[i * c + ch] / 255.0f - pipe.mean[ch]) / pipe.std[ch];
            assert_true(out[ch * h * w + i] == want);
        }
    free(img);
}

static void test_flip_reverses_columns(void **state) {
    (void)state;
    const int h = 32, w = 32, c = 3;
    uint8_t *img = random_image(h, w, c, 12);
    mloc_aug_pipeline pipe = preset(MLOC_AUG_SIMCLR, 32);
    mloc_aug_params p;
    mloc_rng r;
    mloc_aug_stream(&r, 3, "aug", 0, 0, 0);
    mloc_aug_draw(&p, &pipe, h, w, &r);
    p.jitter = 0;
    p.gray = 0;
    float a[3 * 32 * 32], b[3 * 32 * 32];
    p.flip = 0;
    assert_int_equal(mloc_aug_apply(a, img, h, w, c, &p, &pipe), MLOC_OK);
    p.flip = 1;
    assert_int_equal(mloc_aug_apply(b, img, h, w, c, &p, &pipe), MLOC_OK);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                assert_true(a[(ch * 32 + y) * 32 + x] == b[(ch * 32 + y) * 32 + 31 - x]);
    free(img);
}

static void test_grayscale_and_one_channel(void **state) {
    (void)state;
    mloc_aug_pipeline pipe = preset(MLOC_AUG_SIMCLR, 32);
    uint8_t *img = random_image(32, 32, 3, 13);
    mloc_aug_params p;
    mloc_rng r;
    mloc_aug_stream(&r, 4, "aug", 0, 0, 0);
    mloc_aug_draw(&p, &pipe, 32, 32, &r);
    p.gray = 1;
    float out[3 * 32 * 32];
    assert_int_equal(mloc_aug_apply(out, img, 32, 32, 3, &p, &pipe), MLOC_OK);
    for (int i = 0; i < 1024; i++) {
        assert_true(out[i] == out[1024 + i]);
        assert_true(out[i] == out[2048 + i]);
    }
    free(img);

    /* one channel: saturation and hue change nothing, grayscale keeps 1 channel */
    uint8_t *g = random_image(28, 28, 1, 14);
    float base[28 * 28], with[28 * 28];
    mloc_aug_params q;
    memset(&q, 0, sizeof q);
    q.out_h = q.out_w = 28;
    q.height = q.width = 28;
    for (int k = 0; k < 4; k++) q.order[k] = k;
    assert_int_equal(mloc_aug_apply(base, g, 28, 28, 1, &q, &pipe), MLOC_OK);
    q.jitter = 1;
    q.enabled[MLOC_JITTER_SATURATION] = q.enabled[MLOC_JITTER_HUE] = 1;
    q.factor[MLOC_JITTER_SATURATION] = 1.7f;
    q.factor[MLOC_JITTER_HUE] = 0.3f;
    q.gray = 1;
    assert_int_equal(mloc_aug_apply(with, g, 28, 28, 1, &q, &pipe), MLOC_OK);
    assert_memory_equal(base, with, sizeof base);
    free(g);
}

static void test_normalize_first_clamps(void **state) {
    (void)state;
    /* FORMATS.md 3.7: in [-1, 1], any blend zeroes negative values, even at
     * factor 1; without jitter the values stay negative */
    mloc_aug_pipeline pipe = preset(MLOC_AUG_SIMCLR, 32);
    pipe.normalize_first = 1;
    uint8_t *img = random_image(32, 32, 3, 15);
    mloc_aug_params p;
    memset(&p, 0, sizeof p);
    p.out_h = p.out_w = 32;
    p.height = p.width = 32;
    for (int k = 0; k < 4; k++) p.order[k] = k;
    float out[3 * 1024];
    assert_int_equal(mloc_aug_apply(out, img, 32, 32, 3, &p, &pipe), MLOC_OK);
    int negatives = 0;
    for (int i = 0; i < 3 * 1024; i++) negatives += out[i] < 0;
    assert_true(negatives > 500);
    p.jitter = 1;
    p.enabled[MLOC_JITTER_BRIGHTNESS] = 1;
    p.factor[MLOC_JITTER_BRIGHTNESS] = 1.0f;
    assert_int_equal(mloc_aug_apply(out, img, 32, 32, 3, &p, &pipe), MLOC_OK);
    for (int i = 0; i < 3 * 1024; i++) {
        assert_true(out[i] >= 0.0f && out[i] <= 1.0f);
        float x = (float)img[(i % 1024) * 3 + i / 1024] / 255.0f;
        float want = (x - 0.5f) / 0.5f;
        assert_true(out[i] == (want < 0 ? 0.0f : want));
    }
    free(img);
}

static void test_output_range(void **state) {
    (void)state;
    /* normal order, mean = std = 0.5: every value in [-1, 1] */
    mloc_aug_pipeline pipe = preset(MLOC_AUG_SIMCLR, 32);
    uint8_t *img = random_image(32, 32, 3, 16);
    float out[3 * 1024];
    for (int v = 0; v < 200; v++) {
        mloc_rng r;
        mloc_aug_stream(&r, 5, "aug", 1, v, 0);
        mloc_aug_params p;
        mloc_aug_draw(&p, &pipe, 32, 32, &r);
        assert_int_equal(mloc_aug_apply(out, img, 32, 32, 3, &p, &pipe), MLOC_OK);
        for (int i = 0; i < 3 * 1024; i++) assert_true(out[i] >= -1.0f && out[i] <= 1.0f);
    }
    free(img);
}

static void test_resize_weights(void **state) {
    (void)state;
    /* antialiased weights sum to 1, stay inside the input, and upsampling
     * equals plain bilinear up to rounding */
    int sizes[][2] = {{32, 32}, {20, 32}, {5, 32}, {32, 16}, {40, 7}, {1, 9}, {9, 1}, {200, 96}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int in = sizes[s][0], out = sizes[s][1], mt = aug_max_taps(in, out);
        aug_taps *t = malloc(sizeof(aug_taps) * out), *tp = malloc(sizeof(aug_taps) * out);
        float *w = malloc(sizeof(float) * out * mt), *wp = malloc(sizeof(float) * out * mt);
        aug_resize_weights(t, w, mt, in, out, 1);
        aug_resize_weights(tp, wp, mt, in, out, 0);
        for (int i = 0; i < out; i++) {
            double sum = 0;
            assert_true(t[i].start >= 0 && t[i].count >= 1 && t[i].start + t[i].count <= in);
            for (int j = 0; j < t[i].count; j++) {
                assert_true(w[i * mt + j] >= 0);
                sum += w[i * mt + j];
            }
            assert_true(fabs(sum - 1) < 1e-6);
            if (in <= out) {
                /* x = sum of taps of both; compare the interpolation at a ramp */
                double a = 0, b = 0;
                for (int j = 0; j < t[i].count; j++) a += w[i * mt + j] * (t[i].start + j);
                for (int j = 0; j < tp[i].count; j++) b += wp[i * mt + j] * (tp[i].start + j * tp[i].step);
                assert_true(fabs(a - b) < 1e-5);
            }
        }
        free(t);
        free(tp);
        free(w);
        free(wp);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_equals_reference),
        cmocka_unit_test(test_totensor_normalize),
        cmocka_unit_test(test_flip_reverses_columns),
        cmocka_unit_test(test_grayscale_and_one_channel),
        cmocka_unit_test(test_normalize_first_clamps),
        cmocka_unit_test(test_output_range),
        cmocka_unit_test(test_resize_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
