/* Dataset file readers on files the tests write in each exact format
 * (FORMATS.md 1.1-1.4): CIFAR-10/100 records, IDX (plain and gzip), STL-10
 * column-major planes, and SVHN MAT v5 files written by scipy (fixtures from
 * tools/gen_data_fixtures.py). Every bad input gets its status and a message
 * naming the file and what was expected. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "memloc/data.h"
#include "memloc/io.h"
#include "test_util.h"

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static const char *join(const char *dir, const char *name) {
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void mkdir_p(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* Open spec and expect failure st with every needle in the message. */
static void expect_fail(mloc_ctx *ctx, const char *spec, mloc_status want, const char *n1,
                        const char *n2) {
    mloc_dataset d;
    mloc_status st = mloc_dataset_open(ctx, &d, spec, NULL);
    const char *msg = mloc_ctx_error(ctx);
    printf("  %s -> %s: %s\n", spec, mloc_status_name(st), msg);
    assert_int_equal(st, want);
    if (n1) assert_non_null(strstr(msg, n1));
    if (n2) assert_non_null(strstr(msg, n2));
    assert_null(d.pixels);
}

/* ---- CIFAR ------------------------------------------------------------------ */

static uint8_t cifar_px(int rec, int c, int h, int w) { return (uint8_t)(c * 50 + h * 7 + w * 3 + rec * 11); }

/* count records starting at global record number first; CIFAR-100 if c100. */
static uint8_t *cifar_records(int first, int count, int c100, size_t *size) {
    size_t rec = c100 ? 3074 : 3073;
    uint8_t *b = malloc(rec * count);
    for (int r = 0; r < count; r++) {
        uint8_t *p = b + r * rec;
        int g = first + r;
        if (c100) {
            p[0] = (uint8_t)(g % 20);
            p[1] = (uint8_t)((g * 7) % 100);
        } else {
            p[0] = (uint8_t)((g * 3) % 10);
        }
        for (int c = 0; c < 3; c++)
            for (int h = 0; h < 32; h++)
                for (int w = 0; w < 32; w++) p[(c100 ? 2 : 1) + c * 1024 + h * 32 + w] = cifar_px(g, c, h, w);
    }
    *size = rec * count;
    return b;
}

static void check_cifar_pixels(const mloc_dataset *d, int first) {
    for (int64_t i = 0; i < d->n; i++)
        for (int h = 0; h < 32; h++)
            for (int w = 0; w < 32; w++)
                for (int c = 0; c < 3; c++)
                    assert_int_equal(d->pixels[((i * 32 + h) * 32 + w) * 3 + c],
                                     cifar_px(first + (int)i, c, h, w));
}

static void test_cifar10(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("cifar10");
    char sub[4096], spec[4200];
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    mkdir_p(sub);
    size_t size;
    for (int b = 0; b < 5; b++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b + 1);
        uint8_t *recs = cifar_records(3 * b, 3, 0, &size);
        write_bytes(join(sub, name), recs, size);
        free(recs);
    }
    uint8_t *recs = cifar_records(100, 2, 0, &size);
    write_bytes(join(sub, "test_batch.bin"), recs, size);
    free(recs);

    /* DIR may be the parent of cifar-10-batches-bin */
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 15);
    assert_int_equal(d.h, 32);
    assert_int_equal(d.w, 32);
    assert_int_equal(d.c, 3);
    check_cifar_pixels(&d, 0);
    for (int i = 0; i < 15; i++) assert_int_equal(d.labels[i], (i * 3) % 10);
    assert_null(d.coarse);
    assert_int_equal(d.n_classes, 10);
    assert_string_equal(d.class_names[0], "airplane");
    assert_string_equal(d.class_names[9], "truck");
    char want[4200];
    snprintf(want, sizeof want, "cifar10:%s:train", dir);
    assert_string_equal(d.spec, want);
    mloc_dataset_free(&d);

    /* test split, batches directory given directly, names from batches.meta.txt */
    const char meta[] = "n0\nn1\r\nn2\nn3\nn4\nn5\nn6\nn7\nn8\nn9\n\n";
    write_bytes(join(sub, "batches.meta.txt"), meta, strlen(meta));
    snprintf(spec, sizeof spec, "cifar10:%s:test", sub);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 2);
    check_cifar_pixels(&d, 100);
    assert_string_equal(d.class_names[1], "n1");
    assert_string_equal(d.class_names[9], "n9");
    mloc_dataset_free(&d);

    /* too few names */
    write_bytes(join(sub, "batches.meta.txt"), "a\nb\n", 4);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "batches.meta.txt", "expected 10");
    remove(join(sub, "batches.meta.txt"));

    /* a truncated batch: not a whole number of records */
    recs = cifar_records(0, 2, 0, &size);
    write_bytes(join(sub, "test_batch.bin"), recs, size - 5);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "test_batch.bin", "3073-byte");
    /* a label out of range, named by record */
    recs[3073] = 12;
    write_bytes(join(sub, "test_batch.bin"), recs, size);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "test_batch.bin: record 1: label 12", "expected 0..9");
    free(recs);
    /* a missing batch */
    remove(join(sub, "data_batch_3.bin"));
    snprintf(spec, sizeof spec, "cifar10:%s", sub);
    expect_fail(ctx, spec, MLOC_ERR_NOINPUT, "data_batch_3.bin", NULL);
    expect_fail(ctx, "cifar10:/nonexistent/dir", MLOC_ERR_NOINPUT, "/nonexistent/dir", "fetch");
    mloc_ctx_destroy(ctx);
}

static void test_cifar100(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("cifar100");
    size_t size;
    uint8_t *recs = cifar_records(0, 25, 1, &size);
    write_bytes(join(dir, "train.bin"), recs, size);
    char spec[4200];
    snprintf(spec, sizeof spec, "cifar100:%s", dir);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 25);
    check_cifar_pixels(&d, 0);
    assert_non_null(d.coarse);
    for (int i = 0; i < 25; i++) {
        assert_int_equal(d.labels[i], (i * 7) % 100); /* the class is the fine label */
        assert_int_equal(d.coarse[i], i % 20);
    }
    assert_int_equal(d.n_classes, 100);
    assert_string_equal(d.class_names[0], "apple");
    assert_string_equal(d.class_names[99], "worm");
    mloc_dataset_free(&d);
    /* in-memory reader, same bytes */
    assert_int_equal(mloc_cifar_read_memory(ctx, &d, recs, size, 1, "mem"), MLOC_OK);
    assert_int_equal(d.n, 25);
    assert_int_equal(d.coarse[21], 1);
    mloc_dataset_free(&d);
    recs[3074 * 2 + 1] = 100;
    write_bytes(join(dir, "train.bin"), recs, size);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "record 2: fine label 100", "0..99");
    recs[3074 * 2 + 1] = 1;
    recs[3074 * 4] = 20;
    write_bytes(join(dir, "train.bin"), recs, size);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "record 4: coarse label 20", "0..19");
    /* a CIFAR-10 reader on CIFAR-100 bytes fails on size */
    assert_int_equal(mloc_cifar_read_memory(ctx, &d, recs, size, 0, "c100.bin"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "c100.bin"));
    free(recs);
    snprintf(spec, sizeof spec, "cifar100:%s:test", dir);
    expect_fail(ctx, spec, MLOC_ERR_NOINPUT, "test.bin", "missing");
    mloc_ctx_destroy(ctx);
}

/* ---- IDX --------------------------------------------------------------------- */

static uint8_t *idx_bytes(uint32_t magic, const uint32_t *dims, int ndim, const uint8_t *data,
                          size_t n, size_t *size) {
    *size = 4 + 4 * (size_t)ndim + n;
    uint8_t *b = malloc(*size);
    uint32_t words[4] = {magic, dims[0], ndim > 1 ? dims[1] : 0, ndim > 2 ? dims[2] : 0};
    for (int i = 0; i <= ndim; i++)
        for (int j = 0; j < 4; j++) b[4 * i + j] = (uint8_t)(words[i] >> (24 - 8 * j));
    memcpy(b + 4 + 4 * ndim, data, n);
    return b;
}

static void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, p, (unsigned)n), (int)n);
    gzclose(g);
}

static void write_idx(const char *dir, const char *prefix, int n, int rows, int cols, int gz_images,
                      int gz_labels, int label_bias) {
    uint8_t *px = malloc((size_t)n * rows * cols), *lab = malloc((size_t)n);
    for (int i = 0; i < n * rows * cols; i++) px[i] = (uint8_t)(i * 13 + 5);
    for (int i = 0; i < n; i++) lab[i] = (uint8_t)((i + label_bias) % 10);
    uint32_t di[3] = {(uint32_t)n, (uint32_t)rows, (uint32_t)cols}, dl[1] = {(uint32_t)n};
    size_t si, sl;
    uint8_t *bi = idx_bytes(0x803, di, 3, px, (size_t)n * rows * cols, &si);
    uint8_t *bl = idx_bytes(0x801, dl, 1, lab, (size_t)n, &sl);
    char name[256];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz_images ? ".gz" : "");
    if (gz_images) write_gz(join(dir, name), bi, si); else write_bytes(join(dir, name), bi, si);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz_labels ? ".gz" : "");
    if (gz_labels) write_gz(join(dir, name), bl, sl); else write_bytes(join(dir, name), bl, sl);
    free(px);
    free(lab);
    free(bi);
    free(bl);
}

static void test_idx(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("idx");
    write_idx(dir, "train", 7, 28, 28, 1, 0, 0); /* gzip images, plain labels */
    write_idx(dir, "t10k", 3, 5, 4, 0, 1, 4);    /* plain images, gzip labels */
    char spec[4200];
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 7);
    assert_int_equal(d.h, 28);
    assert_int_equal(d.w, 28);
    assert_int_equal(d.c, 1);
    for (int i = 0; i < 7 * 28 * 28; i++) assert_int_equal(d.pixels[i], (uint8_t)(i * 13 + 5));
    for (int i = 0; i < 7; i++) assert_int_equal(d.labels[i], i % 10);
    assert_string_equal(d.class_names[3], "3 - three");
    mloc_dataset_free(&d);
    snprintf(spec, sizeof spec, "fmnist:%s:test", dir);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.h, 5);
    assert_int_equal(d.w, 4);
    assert_int_equal(d.labels[0], 4);
    assert_string_equal(d.class_names[9], "Ankle boot");
    mloc_dataset_free(&d);

    /* pad to 32 and replicate to RGB; both recorded */
    mloc_dataset_options opt = mloc_dataset_options_default();
    opt.fit = MLOC_FIT_PAD;
    opt.size = 9;
    opt.channels = 3;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, &opt), MLOC_OK);
    assert_int_equal(d.h, 9);
    assert_int_equal(d.w, 9);
    assert_int_equal(d.c, 3);
    /* 5x4 -> 9x9: top 2, left 2 */
    for (int i = 0; i < 3; i++)
        for (int y = 0; y < 9; y++)
            for (int x = 0; x < 9; x++) {
                int inside = y >= 2 && y < 7 && x >= 2 && x < 6;
                uint8_t want = inside ? (uint8_t)(((i * 5 + y - 2) * 4 + x - 2) * 13 + 5) : 0;
                for (int c = 0; c < 3; c++) assert_int_equal(d.pixels[((i * 9 + y) * 9 + x) * 3 + c], want);
            }
    printf("prep: %s\n", d.prep);
    assert_non_null(strstr(d.prep, "pad 5x4 -> 9x9"));
    assert_non_null(strstr(d.prep, "gray -> RGB"));
    mloc_dataset_free(&d);

    /* bad inputs */
    const char *bad = test_tmpdir("idx_bad");
    snprintf(spec, sizeof spec, "mnist:%s", bad);
    expect_fail(ctx, spec, MLOC_ERR_NOINPUT, "train-images-idx3-ubyte", "missing");
    uint8_t px[2 * 3 * 3] = {0}, lab[2] = {1, 2};
    uint32_t di[3] = {2, 3, 3}, dl[1] = {2}, dl3[1] = {3};
    size_t si, sl;
    uint8_t *bi = idx_bytes(0x803, di, 3, px, sizeof px, &si);
    uint8_t *bl = idx_bytes(0x801, dl, 1, lab, 2, &sl);
    write_bytes(join(bad, "train-labels-idx1-ubyte"), bl, sl);
    uint8_t *wrong = idx_bytes(0x802, di, 2, px, sizeof px, &si);
    write_bytes(join(bad, "train-images-idx3-ubyte"), wrong, si);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "train-images-idx3-ubyte", "2 dimensions, expected 3");
    free(wrong);
    wrong = idx_bytes(0x0d03, di, 3, px, sizeof px, &si);
    write_bytes(join(bad, "train-images-idx3-ubyte"), wrong, si);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "element type 0x0d", "unsigned byte");
    free(wrong);
    wrong = idx_bytes(0x12340803, di, 3, px, sizeof px, &si);
    write_bytes(join(bad, "train-images-idx3-ubyte"), wrong, si);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "magic 0x12340803", "not an IDX file");
    free(wrong);
    write_bytes(join(bad, "train-images-idx3-ubyte"), bi, si - 1);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "train-images-idx3-ubyte", "truncated");
    write_gz(join(bad, "train-images-idx3-ubyte.gz"), bi, si - 4); /* .gz is preferred */
    expect_fail(ctx, spec, MLOC_ERR_DATA, "train-images-idx3-ubyte.gz", "truncated");
    remove(join(bad, "train-images-idx3-ubyte.gz"));
    uint8_t *longer = malloc(si + 3);
    memcpy(longer, bi, si);
    memset(longer + si, 0, 3);
    write_bytes(join(bad, "train-images-idx3-ubyte"), longer, si + 3);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "train-images-idx3-ubyte", "continues after");
    free(longer);
    write_bytes(join(bad, "train-images-idx3-ubyte"), bi, si);
    uint8_t *bl3 = idx_bytes(0x801, dl3, 1, (const uint8_t *)"\1\2\3", 3, &sl);
    write_bytes(join(bad, "train-labels-idx1-ubyte"), bl3, sl);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "3 labels, but", "has 2 images");
    free(bl3);
    bl[8 + 1] = 10;
    write_bytes(join(bad, "train-labels-idx1-ubyte"), bl, sl - 1);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "label 1 is 10", "expected 0..9");
    /* in-memory: gzip and plain */
    bl[8 + 1] = 2;
    uLongf zn = compressBound(si) + 64;
    uint8_t *gz = malloc(zn);
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = bi;
    z.avail_in = (uInt)si;
    z.next_out = gz;
    z.avail_out = (uInt)zn;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t gzn = zn - z.avail_out;
    deflateEnd(&z);
    assert_int_equal(mloc_idx_read_memory(ctx, &d, gz, gzn, bl, sl - 1, "mem"), MLOC_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.labels[1], 2);
    mloc_dataset_free(&d);
    assert_int_equal(mloc_idx_read_memory(ctx, &d, gz, gzn / 2, bl, sl - 1, "mem"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "mem[images]"));
    free(gz);
    free(bi);
    free(bl);
    expect_fail(ctx, "fmnist:/nonexistent", MLOC_ERR_NOINPUT, "/nonexistent", "fetch");
    mloc_ctx_destroy(ctx);
}

/* ---- STL-10 ------------------------------------------------------------------------ */

static uint8_t stl_px(int n, int c, int h, int w) { return (uint8_t)(n * 31 + c * 67 + h * 5 + w * 3); }

static uint8_t *stl_x(int n, size_t *size) {
    *size = (size_t)n * 27648;
    uint8_t *x = malloc(*size);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int w = 0; w < 96; w++)
                for (int h = 0; h < 96; h++) x[i * 27648 + c * 9216 + w * 96 + h] = stl_px(i, c, h, w);
    return x;
}

static void test_stl10(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("stl10");
    char sub[4096], spec[4200];
    snprintf(sub, sizeof sub, "%s/stl10_binary", dir);
    mkdir_p(sub);
    size_t size;
    uint8_t *x = stl_x(3, &size);
    uint8_t y[3] = {1, 10, 4};
    write_bytes(join(sub, "train_X.bin"), x, size);
    write_bytes(join(sub, "train_y.bin"), y, 3);
    write_bytes(join(sub, "unlabeled.bin"), x, size); /* the name the Stanford page uses */
    snprintf(spec, sizeof spec, "stl10:%s", dir);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.h, 96);
    assert_int_equal(d.c, 3);
    for (int i = 0; i < 3; i++)
        for (int h = 0; h < 96; h++)
            for (int w = 0; w < 96; w++)
                for (int c = 0; c < 3; c++)
                    assert_int_equal(d.pixels[((i * 96 + h) * 96 + w) * 3 + c], stl_px(i, c, h, w));
    assert_int_equal(d.labels[0], 0);
    assert_int_equal(d.labels[1], 9);
    assert_int_equal(d.labels[2], 3);
    assert_string_equal(d.class_names[7], "monkey");
    mloc_dataset_free(&d);
    snprintf(spec, sizeof spec, "stl10:%s:unlabeled", dir);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(d.labels[i], -1);
    int64_t counts[10];
    assert_int_equal(mloc_dataset_class_counts(&d, counts), 3);
    mloc_dataset_free(&d);
    /* in memory */
    assert_int_equal(mloc_stl10_read_memory(ctx, &d, x, size, y, 3, "mem"), MLOC_OK);
    assert_int_equal(d.pixels[(1 * 96 * 96 + 5 * 96 + 7) * 3 + 2], stl_px(1, 2, 5, 7));
    mloc_dataset_free(&d);
    /* bad */
    snprintf(spec, sizeof spec, "stl10:%s:train", dir);
    y[1] = 11;
    write_bytes(join(sub, "train_y.bin"), y, 3);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "train_y.bin: label 1 is 11", "1..10");
    y[1] = 0;
    write_bytes(join(sub, "train_y.bin"), y, 3);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "label 1 is 0", "1..10");
    write_bytes(join(sub, "train_y.bin"), y, 2);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "2 labels, expected 3", NULL);
    write_bytes(join(sub, "train_X.bin"), x, size - 100);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "train_X.bin", "27648-byte");
    remove(join(sub, "train_y.bin"));
    write_bytes(join(sub, "train_X.bin"), x, size);
    expect_fail(ctx, spec, MLOC_ERR_NOINPUT, "train_y.bin", "missing");
    snprintf(spec, sizeof spec, "stl10:%s:test", dir);
    expect_fail(ctx, spec, MLOC_ERR_NOINPUT, "test_X.bin", "missing");
    free(x);
    mloc_ctx_destroy(ctx);
}

/* ---- SVHN (MAT v5) ------------------------------------------------------------------- */

static void check_svhn(mloc_ctx *ctx, const mloc_st_file *f, const char *name, const mloc_dataset *d) {
    char key[128];
    snprintf(key, sizeof key, "%s.x", name);
    const mloc_st_tensor *tx = mloc_st_find(f, key);
    snprintf(key, sizeof key, "%s.y", name);
    const mloc_st_tensor *ty = mloc_st_find(f, key);
    assert_non_null(tx);
    assert_non_null(ty);
    assert_int_equal(tx->dtype, MLOC_DTYPE_U8);
    assert_int_equal(d->n, tx->shape[0]);
    assert_int_equal(d->h, 32);
    assert_int_equal(d->w, 32);
    assert_int_equal(d->c, 3);
    assert_memory_equal(d->pixels, tx->data, tx->nbytes);
    int64_t *y = malloc(sizeof *y * (size_t)d->n);
    int64_t shape[1] = {d->n};
    assert_int_equal(mloc_st_read_i64(ctx, y, f, key, 1, shape), MLOC_OK);
    for (int64_t i = 0; i < d->n; i++) assert_int_equal(d->labels[i], y[i]);
    free(y);
    printf("  %s: %lld images match scipy.io.loadmat\n", name, (long long)d->n);
}

/* A little-endian MAT v5 file written here, for the error cases. */
typedef struct {
    uint8_t b[65536];
    size_t n;
} matbuf;

static void put32(matbuf *m, uint32_t v) {
    memcpy(m->b + m->n, &v, 4);
    m->n += 4;
}

static void mat_start(matbuf *m) {
    memset(m, 0, sizeof *m);
    memset(m->b, ' ', 116);
    memcpy(m->b, "MATLAB 5.0 MAT-file, test", 25);
    m->b[124] = 0x00;
    m->b[125] = 0x01;
    m->b[126] = 'I';
    m->b[127] = 'M';
    m->n = 128;
}

static void mat_var(matbuf *m, const char *name, uint32_t cls, uint32_t flags, const int32_t *dims,
                    int ndim, uint32_t mi, const void *data, uint32_t nbytes) {
    size_t at = m->n;
    put32(m, 14);
    put32(m, 0);
    put32(m, 6);
    put32(m, 8);
    put32(m, cls | flags);
    put32(m, 0);
    put32(m, 5);
    put32(m, (uint32_t)(4 * ndim));
    for (int i = 0; i < ndim; i++) put32(m, (uint32_t)dims[i]);
    while (m->n % 8) m->b[m->n++] = 0;
    put32(m, (uint32_t)strlen(name) << 16 | 1); /* small-element name */
    memcpy(m->b + m->n, name, strlen(name));
    m->n += 4;
    put32(m, mi);
    put32(m, nbytes);
    memcpy(m->b + m->n, data, nbytes);
    m->n += nbytes;
    while (m->n % 8) m->b[m->n++] = 0;
    uint32_t body = (uint32_t)(m->n - at - 8);
    memcpy(m->b + at + 4, &body, 4);
}

static void test_svhn(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("data/svhn.safetensors")), MLOC_OK);
    static const char *const files[] = {"svhn_z.mat", "svhn_plain.mat", "svhn_be.mat", "svhn_small.mat"};
    char spec[4200];
    mloc_dataset d;
    for (int i = 0; i < 4; i++) {
        snprintf(spec, sizeof spec, "svhn:%s/data/%s", MLOC_FIXTURE_DIR, files[i]);
        assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
        check_svhn(ctx, f, files[i], &d);
        assert_string_equal(d.class_names[0], "0");
        mloc_dataset_free(&d);
    }
    /* svhn:DIR:test reads DIR/test_32x32.mat */
    const char *dir = test_tmpdir("svhn");
    uint8_t *bytes;
    size_t size;
    assert_int_equal(mloc_read_file(ctx, test_fixture("data/svhn_z.mat"), (void **)&bytes, &size), MLOC_OK);
    write_bytes(join(dir, "test_32x32.mat"), bytes, size);
    snprintf(spec, sizeof spec, "svhn:%s:test", dir);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    check_svhn(ctx, f, "svhn_z.mat", &d);
    mloc_dataset_free(&d);
    /* in memory; truncations of a compressed file fail cleanly with the name */
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, bytes, size, "svhn_z.mat"), MLOC_OK);
    mloc_dataset_free(&d);
    static const size_t cuts[] = {0, 100, 128, 140, 1000, 8000};
    for (int i = 0; i < 6; i++) {
        mloc_status st = mloc_svhn_read_memory(ctx, &d, bytes, cuts[i], "cut.mat");
        printf("  cut at %zu: %s\n", cuts[i], mloc_ctx_error(ctx));
        assert_int_equal(st, MLOC_ERR_DATA);
        assert_non_null(strstr(mloc_ctx_error(ctx), "cut.mat"));
    }
    write_bytes(join(dir, "trunc.mat"), bytes, size - 200);
    snprintf(spec, sizeof spec, "svhn:%s/trunc.mat", dir);
    expect_fail(ctx, spec, MLOC_ERR_DATA, "trunc.mat", NULL);
    free(bytes);
    mloc_st_close(f);

    /* MATLAB 7.3 (HDF5) */
    uint8_t v73[1024];
    memset(v73, ' ', sizeof v73);
    memcpy(v73, "MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .", 59);
    memcpy(v73 + 512, "\x89HDF\r\n\x1a\n", 8);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, v73, sizeof v73, "v73.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "v73.mat: a MATLAB 7.3 (HDF5) file"));
    assert_non_null(strstr(mloc_ctx_error(ctx), "-v7"));

    matbuf *m = malloc(sizeof *m);
    uint8_t img[3072];
    for (int i = 0; i < 3072; i++) img[i] = (uint8_t)i;
    int32_t dx[4] = {32, 32, 3, 1}, dy[2] = {1, 1};
    double yv = 10;
    /* X only */
    mat_start(m);
    mat_var(m, "X", 9, 0, dx, 4, 2, img, 3072);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "x_only.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "no variable 'y'"));
    /* a complete one: label 10 means digit 0; one image without the trailing singleton dim */
    mat_var(m, "y", 6, 0, dy, 2, 9, &yv, 8);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "ok.mat"), MLOC_OK);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.labels[0], 0);
    assert_int_equal(d.pixels[(2 * 32 + 1) * 3 + 1], img[1024 + 1 * 32 + 2]); /* h=2, w=1, c=1 */
    mloc_dataset_free(&d);
    /* wrong dimensions */
    int32_t bad_dims[4] = {28, 28, 3, 1};
    mat_start(m);
    mat_var(m, "X", 9, 0, bad_dims, 4, 2, img, 28 * 28 * 3);
    mat_var(m, "y", 6, 0, dy, 2, 9, &yv, 8);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "dims.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "expected 32 x 32 x 3 x N"));
    /* a complex X; a cell y */
    mat_start(m);
    mat_var(m, "X", 9, 0x0800, dx, 4, 2, img, 3072);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "complex.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "complex"));
    mat_start(m);
    mat_var(m, "y", 1, 0, dy, 2, 9, &yv, 8);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "cell.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "y is a cell array"));
    /* a label that is not 1..10 */
    yv = 11;
    mat_start(m);
    mat_var(m, "X", 9, 0, dx, 4, 2, img, 3072);
    mat_var(m, "y", 6, 0, dy, 2, 9, &yv, 8);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "label.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "y element 0 is 11"));
    /* element count disagrees with the dimensions */
    mat_start(m);
    mat_var(m, "X", 9, 0, dx, 4, 2, img, 3000);
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "count.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "expected 3072 elements"));
    /* not a MAT file */
    mat_start(m);
    m->b[126] = 'X';
    assert_int_equal(mloc_svhn_read_memory(ctx, &d, m->b, m->n, "endian.mat"), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "not a MAT v5 file"));
    free(m);
    expect_fail(ctx, "svhn:/nonexistent/train_32x32.mat", MLOC_ERR_NOINPUT, "/nonexistent/train_32x32.mat", NULL);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar10), cmocka_unit_test(test_cifar100), cmocka_unit_test(test_idx),
        cmocka_unit_test(test_stl10),   cmocka_unit_test(test_svhn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
