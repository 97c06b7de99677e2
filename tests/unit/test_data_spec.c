/* Dataset specs, index lists, subsets, the S_S / S_C / S_I split and its
 * JSON, synthetic data, pad / resize / channel fitting against PIL, and the
 * MD5 / SHA-256 known answers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"
#include "memloc/data.h"
#include "memloc/io.h"
#include "test_util.h"

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_spec_parse(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset_spec s;
    char *t;
    static const struct {
        const char *in, *canonical;
    } cases[] = {
        {"cifar10:/d", "cifar10:/d:train"},
        {"cifar10:/d:test", "cifar10:/d:test"},
        {"cifar100:/a:b/c:train", "cifar100:/a:b/c:train"},
        {"fmnist", "fmnist:" MLOC_FMNIST_DEFAULT_DIR ":train"},
        {"fmnist:test", "fmnist:" MLOC_FMNIST_DEFAULT_DIR ":test"},
        {"mnist:/m", "mnist:/m:train"},
        {"mnist:/m:test@0:10", "mnist:/m:test@0:10"},
        {"stl10:/s:unlabeled", "stl10:/s:unlabeled"},
        {"svhn:/x/train_32x32.mat", "svhn:/x/train_32x32.mat"},
        {"folder:/data/imgs", "folder:/data/imgs"},
        {"folder:/x/c.tar.gz/train/", "folder:/x/c.tar.gz/train"},
        {"folder:/x/c.tgz", "folder:/x/c.tgz"},
        {"folder:/x/me@2x/imgs", "folder:/x/me@2x/imgs"},
        {"synthetic:100", "synthetic:100:32x32x3:10"},
        {"synthetic:5:8x6x1:3@1,3", "synthetic:5:8x6x1:3@1,3"},
        {"cifar10:/d@@/tmp/idx.txt", "cifar10:/d:train@@/tmp/idx.txt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(mloc_dataset_spec_parse(ctx, &s, cases[i].in), MLOC_OK);
        t = mloc_dataset_spec_format(&s);
        printf("  %-32s -> %s\n", cases[i].in, t);
        assert_string_equal(t, cases[i].canonical);
        free(t);
        mloc_dataset_spec_free(&s);
    }
    assert_int_equal(mloc_dataset_spec_parse(ctx, &s, "folder:/x/c.tar.gz/train/cls"), MLOC_OK);
    assert_int_equal(s.kind, MLOC_DS_FOLDER);
    assert_string_equal(s.path, "/x/c.tar.gz");
    assert_string_equal(s.subdir, "train/cls");
    mloc_dataset_spec_free(&s);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(mloc_dataset_spec_parse(ctx, &s, "cifar10:~/data:test"), MLOC_OK);
    assert_string_equal(s.path, "/home/u/data");
    mloc_dataset_spec_free(&s);
    assert_int_equal(mloc_dataset_spec_parse(ctx, &s, "folder:~/x.tar/train"), MLOC_OK);
    assert_string_equal(s.path, "/home/u/x.tar");
    assert_string_equal(s.subdir, "train");
    mloc_dataset_spec_free(&s);
    assert_int_equal(mloc_dataset_spec_parse(ctx, &s, "synthetic:7:4x5x3:2"), MLOC_OK);
    assert_int_equal(s.n, 7);
    assert_int_equal(s.h, 4);
    assert_int_equal(s.w, 5);
    assert_int_equal(s.c, 3);
    assert_int_equal(s.k, 2);
    mloc_dataset_spec_free(&s);

    static const struct {
        const char *in, *needle;
    } bad[] = {
        {"imagenet:/d", "unknown dataset 'imagenet'"},
        {"", "unknown dataset ''"},
        {"cifar10", "needs a directory"},
        {"cifar10:test", "needs a directory"},
        {"svhn", "needs a file"},
        {"folder", "needs a path"},
        {"synthetic:abc", "image count 'abc'"},
        {"synthetic:10:32x32", "expected HxWxC"},
        {"synthetic:10:32x32x2", "C 1 or 3"},
        {"synthetic:10:32x32x3:0", "class count '0'"},
        {"stl10:/s:@@", "ambiguous"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mloc_dataset_spec_parse(ctx, &s, bad[i].in), MLOC_ERR_USAGE);
        printf("  %-24s -> %s\n", bad[i].in, mloc_ctx_error(ctx));
        assert_non_null(strstr(mloc_ctx_error(ctx), bad[i].needle));
        assert_null(s.path);
    }
    /* an unknown name through open: ERR_USAGE listing the accepted forms */
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, "cifar11:/d", NULL), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "cifar10:DIR[:train|test]"));
    mloc_ctx_destroy(ctx);
}

static void expect_indices(mloc_ctx *ctx, const char *text, int64_t n, const int64_t *want, int64_t count) {
    int64_t *v, got;
    mloc_status st = mloc_indices_parse(ctx, text, n, &v, &got);
    if (st != MLOC_OK) printf("  %s: %s\n", text, mloc_ctx_error(ctx));
    assert_int_equal(st, MLOC_OK);
    assert_int_equal(got, count);
    for (int64_t i = 0; i < count; i++) assert_int_equal(v[i], want[i]);
    free(v);
}

static void expect_indices_fail(mloc_ctx *ctx, const char *text, int64_t n, mloc_status want,
                                const char *needle) {
    int64_t *v, got;
    assert_int_equal(mloc_indices_parse(ctx, text, n, &v, &got), want);
    printf("  %-16s -> %s\n", text, mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), needle));
    assert_null(v);
}

static void test_indices(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    expect_indices(ctx, "0:3,7:9", 10, (int64_t[]){0, 1, 2, 7, 8}, 5);
    expect_indices(ctx, "4", 10, (int64_t[]){4}, 1);
    expect_indices(ctx, " 9 , 0 ", 10, (int64_t[]){9, 0}, 2);
    expect_indices(ctx, "-1", 10, (int64_t[]){9}, 1);
    expect_indices(ctx, "-3:", 10, (int64_t[]){7, 8, 9}, 3);
    expect_indices(ctx, ":2", 10, (int64_t[]){0, 1}, 2);
    expect_indices(ctx, "1:8:3", 10, (int64_t[]){1, 4, 7}, 3);
    expect_indices(ctx, "5:5,2", 10, (int64_t[]){2}, 1);
    int64_t *all, n;
    assert_int_equal(mloc_indices_parse(ctx, ":", 50000, &all, &n), MLOC_OK);
    assert_int_equal(n, 50000);
    free(all);
    expect_indices_fail(ctx, "10", 10, MLOC_ERR_USAGE, "index 10 out of range: the dataset has 10 images");
    expect_indices_fail(ctx, "0:11", 10, MLOC_ERR_USAGE, "range 0:11 out of range");
    expect_indices_fail(ctx, "5:2", 10, MLOC_ERR_USAGE, "range 5:2");
    expect_indices_fail(ctx, "x", 10, MLOC_ERR_USAGE, "'x' is not an index");
    expect_indices_fail(ctx, "1:2:0", 10, MLOC_ERR_USAGE, "positive step");
    expect_indices_fail(ctx, "", 10, MLOC_ERR_USAGE, "empty index list");
    expect_indices_fail(ctx, "-11", 10, MLOC_ERR_USAGE, "out of range");

    const char *dir = test_tmpdir("indices");
    char path[4200], text[4300];
    snprintf(path, sizeof path, "%s/idx.txt", dir);
    write_text(path, "# chosen points\n3\n\n1  # one\n5:7\n");
    snprintf(text, sizeof text, "@%s", path);
    expect_indices(ctx, text, 10, (int64_t[]){3, 1, 5, 6}, 4);
    write_text(path, "3\n1\nseven\n");
    expect_indices_fail(ctx, text, 10, MLOC_ERR_DATA, "idx.txt: line 3: 'seven' is not an index");
    write_text(path, "3\n12\n");
    expect_indices_fail(ctx, text, 10, MLOC_ERR_DATA, "line 2: index 12 out of range");
    write_text(path, "# nothing\n");
    expect_indices_fail(ctx, text, 10, MLOC_ERR_DATA, "no indices");
    expect_indices_fail(ctx, "@/nonexistent/idx.txt", 10, MLOC_ERR_NOINPUT, "/nonexistent/idx.txt");

    char *f = mloc_indices_format((int64_t[]){0, 1, 2, 7, 9, 10, 4}, 7);
    assert_string_equal(f, "0:3,7,9:11,4");
    free(f);
    mloc_ctx_destroy(ctx);
}

static void test_subset_and_synthetic(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_dataset a, b, c;
    assert_int_equal(mloc_dataset_open(ctx, &a, "synthetic:20:6x5x3:4", NULL), MLOC_OK);
    assert_int_equal(mloc_dataset_open(ctx, &b, "synthetic:12:6x5x3:4", NULL), MLOC_OK);
    /* deterministic; image i does not depend on N */
    assert_memory_equal(a.pixels, b.pixels, 12 * 6 * 5 * 3);
    for (int i = 0; i < 20; i++) assert_int_equal(a.labels[i], i % 4);
    assert_string_equal(a.class_names[3], "3");
    int64_t counts[4];
    assert_int_equal(mloc_dataset_class_counts(&a, counts), 0);
    assert_int_equal(counts[0], 5);
    /* classes differ on average: their patterns are independent */
    double diff = 0;
    for (int p = 0; p < 90; p++) diff += fabs((double)a.pixels[p] - a.pixels[90 + p]);
    assert_true(diff / 90 > 20);
    char da[65], db[65];
    mloc_dataset_digest(&a, da);
    mloc_dataset_digest(&b, db);
    assert_string_not_equal(da, db);
    mloc_dataset_free(&b);

    /* @ suffix and --indices give the same subset, with the index map and spec */
    assert_int_equal(mloc_dataset_open(ctx, &b, "synthetic:20:6x5x3:4@3:6,19", NULL), MLOC_OK);
    mloc_dataset_options opt = mloc_dataset_options_default();
    opt.indices = "3:6,19";
    assert_int_equal(mloc_dataset_open(ctx, &c, "synthetic:20:6x5x3:4", &opt), MLOC_OK);
    assert_int_equal(b.n, 4);
    assert_string_equal(b.spec, "synthetic:20:6x5x3:4@3:6,19");
    assert_string_equal(c.spec, b.spec);
    static const int64_t want[4] = {3, 4, 5, 19};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(b.index[i], want[i]);
        assert_int_equal(b.labels[i], want[i] % 4);
        assert_memory_equal(b.pixels + i * 90, a.pixels + want[i] * 90, 90);
    }
    mloc_dataset_digest(&b, da);
    mloc_dataset_digest(&c, db);
    assert_string_equal(da, db);
    /* a subset of a subset maps back to the original */
    mloc_dataset e;
    assert_int_equal(mloc_dataset_subset(ctx, &e, &b, (int64_t[]){3, 0}, 2), MLOC_OK);
    assert_int_equal(e.index[0], 19);
    assert_int_equal(e.index[1], 3);
    assert_string_equal(e.spec, "synthetic:20:6x5x3:4@19,3");
    mloc_dataset_free(&e);
    assert_int_equal(mloc_dataset_subset(ctx, &e, &b, (int64_t[]){4}, 1), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "index 4 out of range"));
    mloc_dataset_free(&e);
    mloc_dataset_free(&b);
    mloc_dataset_free(&c);
    /* out of range through open, and both forms at once */
    assert_int_equal(mloc_dataset_open(ctx, &b, "synthetic:20@0:21", NULL), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "range 0:21 out of range: the dataset has 20 images"));
    assert_int_equal(mloc_dataset_open(ctx, &b, "synthetic:20@1", &opt), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "use one"));
    mloc_dataset_free(&a);
    mloc_ctx_destroy(ctx);
}

static void test_split(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_split s, r;
    assert_int_equal(mloc_split_make(ctx, &s, 50000, 0.8, 0.1, 0.1), MLOC_OK);
    assert_int_equal(s.n_shared, 40000);
    assert_int_equal(s.n_candidate, 5000);
    assert_int_equal(s.n_independent, 5000);
    assert_int_equal(s.shared[0], 0);
    assert_int_equal(s.shared[39999], 39999);
    assert_int_equal(s.candidate[0], 40000);
    assert_int_equal(s.candidate[4999], 44999);
    assert_int_equal(s.independent[0], 45000);
    assert_int_equal(s.independent[4999], 49999);
    assert_int_equal(mloc_split_set_dataset(ctx, &s, "cifar10:/d:train"), MLOC_OK);
    const char *dir = test_tmpdir("split");
    char path[4200];
    snprintf(path, sizeof path, "%s/split.json", dir);
    assert_int_equal(mloc_split_write(ctx, &s, path), MLOC_OK);
    char *text;
    size_t size;
    assert_int_equal(mloc_read_file(ctx, path, (void **)&text, &size), MLOC_OK);
    printf("%s", text);
    assert_non_null(strstr(text, "\"schema\": \"memloc.split/1\""));
    assert_non_null(strstr(text, "\"dataset\": \"cifar10:/d:train\""));
    free(text);
    assert_int_equal(mloc_split_read(ctx, &r, path), MLOC_OK);
    assert_int_equal(r.n, 50000);
    assert_int_equal(r.n_candidate, 5000);
    assert_memory_equal(r.independent, s.independent, 5000 * sizeof(int64_t));
    assert_string_equal(r.dataset, "cifar10:/d:train");
    assert_true(fabs(r.fractions[0] - 0.8) < 1e-15);
    mloc_split_free(&r);
    mloc_split_free(&s);

    /* rounding, a leftover tail, zero sets */
    assert_int_equal(mloc_split_make(ctx, &s, 7, 0.5, 0.25, 0.0), MLOC_OK);
    assert_int_equal(s.n_shared, 4); /* round(3.5) = 4 */
    assert_int_equal(s.n_candidate, 1); /* round(5.25) - 4 */
    assert_int_equal(s.n_independent, 0);
    mloc_split_free(&s);
    assert_int_equal(mloc_split_make(ctx, &s, 10, 0.8, 0.2, 0.1), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "exceed 1"));
    assert_int_equal(mloc_split_make(ctx, &s, 10, -0.1, 0.2, 0.1), MLOC_ERR_USAGE);

    /* explicit index lists, written as ranges in order */
    assert_int_equal(mloc_split_from_indices(ctx, &s, 10, "0:4,9", "4,6", "7,5"), MLOC_OK);
    assert_int_equal(mloc_split_write(ctx, &s, path), MLOC_OK);
    assert_int_equal(mloc_split_read(ctx, &r, path), MLOC_OK);
    assert_int_equal(r.n_shared, 5);
    assert_int_equal(r.shared[4], 9);
    assert_int_equal(r.independent[0], 7);
    assert_int_equal(r.independent[1], 5);
    mloc_split_free(&r);
    mloc_split_free(&s);
    assert_int_equal(mloc_split_from_indices(ctx, &s, 10, "0:5", "4", "7"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "index 4 is in both shared and candidate"));
    assert_int_equal(mloc_split_from_indices(ctx, &s, 10, "0:5", "10", "7"), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "split: candidate"));

    /* malformed files */
    write_text(path, "{\"schema\": \"memloc.split/2\", \"n\": 3}");
    assert_int_equal(mloc_split_read(ctx, &r, path), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "expected 'memloc.split/1'"));
    write_text(path, "{\"schema\": \"memloc.split/1\", \"n\": 3, \"shared\": [[0, 2]], "
                     "\"candidate\": [[1, 3]], \"independent\": []}");
    assert_int_equal(mloc_split_read(ctx, &r, path), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "index 1 is in both"));
    write_text(path, "{\"schema\": \"memloc.split/1\", \"n\": 3, \"shared\": [[0, 4]], "
                     "\"candidate\": [], \"independent\": []}");
    assert_int_equal(mloc_split_read(ctx, &r, path), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "shared range 0"));
    write_text(path, "{\"schema\": \"memloc.split/1\", \"schema\": 1}");
    assert_int_equal(mloc_split_read(ctx, &r, path), MLOC_ERR_DATA);
    mloc_ctx_destroy(ctx);
}

static const mloc_st_tensor *tensor(const mloc_st_file *f, const char *name) {
    const mloc_st_tensor *t = mloc_st_find(f, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, MLOC_DTYPE_U8);
    return t;
}

static void test_resize_pil(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("data/resize.safetensors")), MLOC_OK);
    static const struct {
        const char *in, *out;
        int h, w, c, oh, ow;
    } cases[] = {
        {"gray28", "gray28_to_32", 28, 28, 1, 32, 32},
        {"rgb9x13", "rgb9x13_to_32", 9, 13, 3, 32, 32},
        {"rgb9x13", "rgb9x13_to_5", 9, 13, 3, 5, 5},
        {"rgb9x13", "rgb9x13_to_9x32", 9, 13, 3, 9, 32},
    };
    for (int i = 0; i < 4; i++) {
        const mloc_st_tensor *in = tensor(f, cases[i].in), *want = tensor(f, cases[i].out);
        uint8_t *out = malloc(want->nbytes);
        assert_true(data_resize_bilinear(in->data, cases[i].h, cases[i].w, cases[i].c, out, cases[i].oh,
                                         cases[i].ow));
        int bad = 0;
        for (size_t k = 0; k < want->nbytes; k++) bad += out[k] != ((const uint8_t *)want->data)[k];
        printf("  %s: %d of %zu bytes differ from PIL\n", cases[i].out, bad, want->nbytes);
        assert_int_equal(bad, 0);
        free(out);
    }
    /* through the dataset options, recorded in prep */
    mloc_dataset d;
    mloc_dataset_options opt = mloc_dataset_options_default();
    opt.fit = MLOC_FIT_RESIZE;
    opt.size = 32;
    opt.channels = 1;
    assert_int_equal(mloc_dataset_open(ctx, &d, "synthetic:3:9x13x3", &opt), MLOC_OK);
    assert_int_equal(d.h, 32);
    assert_int_equal(d.c, 1);
    assert_string_equal(d.prep, "resize 9x13 -> 32x32 (PIL bilinear); RGB -> gray (PIL L)");
    mloc_dataset_free(&d);
    opt.fit = MLOC_FIT_PAD;
    opt.size = 8;
    assert_int_equal(mloc_dataset_open(ctx, &d, "synthetic:3:9x13x3", &opt), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "cannot pad 9x13 images to 8x8"));
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

static void hex_of_md5(const char *msg, size_t n, char *out) {
    data_md5 m;
    uint8_t d[16];
    data_md5_init(&m);
    /* feed in uneven pieces to exercise the buffering */
    for (size_t i = 0; i < n;) {
        size_t k = (i % 7) + 1;
        if (k > n - i) k = n - i;
        data_md5_update(&m, msg + i, k);
        i += k;
    }
    data_md5_final(&m, d);
    data_hex(d, 16, out);
}

static void hex_of_sha(const char *msg, size_t n, char *out) {
    data_sha256 m;
    uint8_t d[32];
    data_sha256_init(&m);
    for (size_t i = 0; i < n;) {
        size_t k = (i % 13) + 1;
        if (k > n - i) k = n - i;
        data_sha256_update(&m, msg + i, k);
        i += k;
    }
    data_sha256_final(&m, d);
    data_hex(d, 32, out);
}

static void test_hashes(void **state) {
    (void)state;
    char h[65];
    /* RFC 1321 appendix A.5 */
    hex_of_md5("", 0, h);
    assert_string_equal(h, "d41d8cd98f00b204e9800998ecf8427e");
    hex_of_md5("abc", 3, h);
    assert_string_equal(h, "900150983cd24fb0d6963f7d28e17f72");
    const char *alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    hex_of_md5(alnum, strlen(alnum), h);
    assert_string_equal(h, "d174ab98d277d9f5a5611c2c9f419d9f");
    const char *digits = "1234567890123456789012345678901234567890"
                         "1234567890123456789012345678901234567890";
    hex_of_md5(digits, strlen(digits), h);
    assert_string_equal(h, "57edf4a22be3c955ac49da2e2107b67a");
    /* FIPS 180-2 examples */
    hex_of_sha("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of_sha(two, strlen(two), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    hex_of_sha("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    hex_of_sha(million, 1000000, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    hex_of_md5(million, 1000000, h);
    assert_string_equal(h, "7707d6ae4e027c70eea2a935c2296f21");
    free(million);
    /* files */
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("hash");
    char path[4200], md5[33], sha[65];
    snprintf(path, sizeof path, "%s/abc", dir);
    write_text(path, "abc");
    assert_int_equal(mloc_data_hash_file(ctx, path, md5, sha), MLOC_OK);
    assert_string_equal(md5, "900150983cd24fb0d6963f7d28e17f72");
    assert_string_equal(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(mloc_data_hash_file(ctx, "/nonexistent", md5, NULL), MLOC_ERR_NOINPUT);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse), cmocka_unit_test(test_indices),
        cmocka_unit_test(test_subset_and_synthetic), cmocka_unit_test(test_split),
        cmocka_unit_test(test_resize_pil), cmocka_unit_test(test_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
