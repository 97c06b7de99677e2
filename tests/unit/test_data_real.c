/* The real datasets end to end:
 *  - ../shared/data/cifar10-jpeg.tar.gz read in place as two ImageFolder
 *    datasets (train/ and test/): 50,000 and 10,000 images, 5,000 / 1,000
 *    per class, every pixel and label equal to torchvision's ImageFolder with
 *    PIL decoding (checksum of the whole split, first and last image);
 *  - Debian's Fashion-MNIST in /usr/share/datasets/fashion-mnist: 60,000 /
 *    10,000 images, 6,000 / 1,000 per class, checksum and first image, and the
 *    32x32 RGB padding used with the CIFAR encoder.
 * Fixtures: tools/gen_data_fixtures.py. Both inputs are part of the project
 * environment (FORMATS.md, issue 3); a missing one fails the test. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memloc/data.h"
#include "memloc/io.h"
#include "test_util.h"

#define CIFAR_JPEG MLOC_SOURCE_DIR "/../shared/data/cifar10-jpeg.tar.gz"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void check_image(const mloc_st_file *f, const char *name, const mloc_dataset *d, int64_t i) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    assert_non_null(t);
    size_t img = (size_t)d->h * d->w * d->c;
    assert_int_equal(t->nbytes, img);
    assert_memory_equal(d->pixels + (size_t)i * img, t->data, img);
}

static void check_counts(mloc_ctx *ctx, const mloc_st_file *f, const char *name, const mloc_dataset *d,
                         int64_t each) {
    int64_t want[10], got[10];
    int64_t shape[1] = {10};
    assert_int_equal(mloc_st_read_i64(ctx, want, f, name, 1, shape), MLOC_OK);
    assert_int_equal(mloc_dataset_class_counts(d, got), 0);
    for (int k = 0; k < 10; k++) {
        assert_int_equal(got[k], want[k]);
        assert_int_equal(got[k], each);
    }
}

static void test_cifar10_jpeg(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("data/cifar10_jpeg.safetensors")), MLOC_OK);
    static const char *const names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                          "dog", "frog", "horse", "ship", "truck"};
    static const char *const splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        char spec[4300], key[64];
        snprintf(spec, sizeof spec, "folder:%s/%s", CIFAR_JPEG, splits[s]);
        mloc_dataset d;
        double t0 = now_s();
        mloc_status st = mloc_dataset_open(ctx, &d, spec, NULL);
        double secs = now_s() - t0;
        if (st != MLOC_OK) printf("  %s: %s\n", spec, mloc_ctx_error(ctx));
        assert_int_equal(st, MLOC_OK);
        printf("  %s: %lld images in %.2f s (2 threads)\n", splits[s], (long long)d.n, secs);
        assert_int_equal(d.n, s == 0 ? 50000 : 10000);
        assert_int_equal(d.h, 32);
        assert_int_equal(d.w, 32);
        assert_int_equal(d.c, 3);
        assert_int_equal(d.n_classes, 10);
        for (int k = 0; k < 10; k++) assert_string_equal(d.class_names[k], names[k]);
        snprintf(key, sizeof key, "%s_counts", splits[s]);
        check_counts(ctx, f, key, &d, s == 0 ? 5000 : 1000);
        snprintf(key, sizeof key, "%s_first", splits[s]);
        check_image(f, key, &d, 0);
        const char *first = mloc_st_metadata(f, key);
        assert_non_null(first);
        assert_non_null(strstr(d.sources[0], first));
        snprintf(key, sizeof key, "%s_last", splits[s]);
        check_image(f, key, &d, d.n - 1);
        assert_non_null(strstr(d.sources[d.n - 1], mloc_st_metadata(f, key)));
        char digest[65];
        mloc_dataset_digest(&d, digest);
        snprintf(key, sizeof key, "%s_digest", splits[s]);
        printf("  %s: sha256 %s (torchvision + PIL: %s)\n", splits[s], digest, mloc_st_metadata(f, key));
        assert_string_equal(digest, mloc_st_metadata(f, key));
        mloc_dataset_free(&d);
    }
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

static void test_fmnist(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("data/fmnist.safetensors")), MLOC_OK);
    static const char *const splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        char spec[64], key[64];
        snprintf(spec, sizeof spec, "fmnist:%s", splits[s]);
        mloc_dataset d;
        mloc_status st = mloc_dataset_open(ctx, &d, spec, NULL);
        if (st != MLOC_OK) printf("  %s: %s\n", spec, mloc_ctx_error(ctx));
        assert_int_equal(st, MLOC_OK);
        assert_int_equal(d.n, s == 0 ? 60000 : 10000);
        assert_int_equal(d.h, 28);
        assert_int_equal(d.w, 28);
        assert_int_equal(d.c, 1);
        assert_string_equal(d.class_names[0], "T-shirt/top");
        assert_string_equal(d.class_names[9], "Ankle boot");
        snprintf(key, sizeof key, "%s_counts", splits[s]);
        check_counts(ctx, f, key, &d, s == 0 ? 6000 : 1000);
        snprintf(key, sizeof key, "%s_first", splits[s]);
        check_image(f, key, &d, 0);
        char digest[65];
        mloc_dataset_digest(&d, digest);
        snprintf(key, sizeof key, "%s_digest", splits[s]);
        assert_string_equal(digest, mloc_st_metadata(f, key));
        printf("  %s: %lld images, sha256 %s\n", splits[s], (long long)d.n, digest);
        mloc_dataset_free(&d);
        /* the demo's form: zero-padded to 32x32, replicated to RGB */
        mloc_dataset_options opt = mloc_dataset_options_default();
        opt.fit = MLOC_FIT_PAD;
        opt.size = 32;
        opt.channels = 3;
        char sub[80];
        snprintf(sub, sizeof sub, "%s@0:2", spec);
        assert_int_equal(mloc_dataset_open(ctx, &d, sub, &opt), MLOC_OK);
        snprintf(key, sizeof key, "%s_pad32_rgb_head", splits[s]);
        const mloc_st_tensor *t = mloc_st_find(f, key);
        assert_non_null(t);
        assert_int_equal(t->nbytes, 2 * 32 * 32 * 3);
        assert_memory_equal(d.pixels, t->data, t->nbytes);
        assert_non_null(strstr(d.prep, "top 2, left 2, bottom 2, right 2"));
        mloc_dataset_free(&d);
    }
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar10_jpeg),
        cmocka_unit_test(test_fmnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
