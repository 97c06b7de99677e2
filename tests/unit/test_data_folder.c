/* Image decoding against PIL's convert("RGB") (fixtures from
 * tools/gen_data_fixtures.py) and ImageFolder directories and tarballs:
 * torchvision's class and file order, archive roots and SUBDIR, corrupt
 * images (error or skip with a warning), empty classes, mixed sizes. */
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "data/internal.h"
#include "memloc/data.h"
#include "memloc/io.h"
#include "test_util.h"

static char warnings[8192];

static void capture(void *user, mloc_log_level level, const char *msg) {
    (void)user;
    if (level <= MLOC_LOG_WARN) {
        strncat(warnings, msg, sizeof warnings - strlen(warnings) - 2);
        strcat(warnings, "\n");
    }
}

static mloc_ctx *capture_ctx(int threads) {
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = threads;
    cfg.log_fn = capture;
    mloc_ctx *ctx;
    assert_int_equal(mloc_ctx_create(&ctx, &cfg), MLOC_OK);
    warnings[0] = 0;
    return ctx;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    char cmd[4300], dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static uint8_t *fixture_bytes(mloc_ctx *ctx, const char *name, size_t *size) {
    char rel[256];
    snprintf(rel, sizeof rel, "data/img/%s", name);
    void *p;
    assert_int_equal(mloc_read_file(ctx, test_fixture(rel), &p, size), MLOC_OK);
    return p;
}

/* A binary PPM of h x w with a fill value. */
static uint8_t *ppm(int h, int w, uint8_t v, size_t *size) {
    char hdr[64];
    int n = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    *size = (size_t)n + (size_t)h * w * 3;
    uint8_t *b = malloc(*size);
    memcpy(b, hdr, (size_t)n);
    memset(b + n, v, (size_t)h * w * 3);
    return b;
}

/* ---- decoding ------------------------------------------------------------------- */

static void test_decode_vs_pil(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("data/images.safetensors")), MLOC_OK);
    assert_true(mloc_st_count(f) >= 16);
    for (int i = 0; i < mloc_st_count(f); i++) {
        const mloc_st_tensor *t = mloc_st_get(f, i);
        size_t size;
        uint8_t *bytes = fixture_bytes(ctx, t->name, &size), *rgb;
        int h, w;
        mloc_status st = data_decode_image(ctx, bytes, size, t->name, 0, &rgb, &h, &w);
        if (st != MLOC_OK) printf("  %s: %s\n", t->name, mloc_ctx_error(ctx));
        assert_int_equal(st, MLOC_OK);
        assert_int_equal(h, t->shape[0]);
        assert_int_equal(w, t->shape[1]);
        int bad = 0;
        for (size_t k = 0; k < t->nbytes; k++) bad += rgb[k] != ((const uint8_t *)t->data)[k];
        printf("  %-16s %dx%d: %d of %zu bytes differ from PIL\n", t->name, h, w, bad, t->nbytes);
        assert_int_equal(bad, 0);
        free(rgb);
        free(bytes);
    }
    mloc_st_close(f);
    /* failures name the image */
    size_t size;
    uint8_t *bytes = fixture_bytes(ctx, "truncated.jpg", &size), *rgb;
    int h, w;
    assert_int_equal(data_decode_image(ctx, bytes, size, "t.jpg", 0, &rgb, &h, &w), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "t.jpg: corrupt JPEG"));
    assert_null(rgb);
    free(bytes);
    /* cut inside the scan: PIL raises "image file is truncated" */
    bytes = fixture_bytes(ctx, "rgb420.jpg", &size);
    assert_int_equal(data_decode_image(ctx, bytes, size - 40, "t.jpg", 0, &rgb, &h, &w), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "t.jpg: truncated JPEG"));
    free(bytes);
    bytes = fixture_bytes(ctx, "rgb.png", &size);
    assert_int_equal(data_decode_image(ctx, bytes, size - 30, "t.png", 0, &rgb, &h, &w), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "t.png: corrupt PNG"));
    bytes[40] ^= 0x55; /* breaks a CRC */
    assert_int_equal(data_decode_image(ctx, bytes, size, "crc.png", 0, &rgb, &h, &w), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    bytes[40] ^= 0x55;
    assert_int_equal(data_decode_image(ctx, bytes, size, "big.png", 100, &rgb, &h, &w), MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "more than the limit of 100"));
    free(bytes);
    assert_int_equal(data_decode_image(ctx, (const uint8_t *)"BM\0\0\0\0", 6, "x.bmp", 0, &rgb, &h, &w),
                     MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "x.bmp: a BMP image"));
    assert_int_equal(data_decode_image(ctx, (const uint8_t *)"hello", 5, "x.jpg", 0, &rgb, &h, &w),
                     MLOC_ERR_DATA);
    assert_non_null(strstr(mloc_ctx_error(ctx), "x.jpg: not an image (starts with 68 65 6c 6c)"));
    assert_int_equal(data_decode_image(ctx, (const uint8_t *)"\xff\xd8\xff\xe0", 4, "h.jpg", 0, &rgb, &h, &w),
                     MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "h.jpg: "));
    mloc_ctx_destroy(ctx);
}

/* ---- order ------------------------------------------------------------------------ */

typedef struct {
    json_t *doc;
    json_t *files, *classes, *samples;
} order_fixture;

static order_fixture load_order(void) {
    order_fixture o;
    json_error_t err;
    o.doc = json_load_file(test_fixture("data/order.json"), 0, &err);
    assert_non_null(o.doc);
    o.files = json_object_get(o.doc, "files");
    o.classes = json_object_get(o.doc, "classes");
    o.samples = json_object_get(o.doc, "samples");
    assert_true(json_array_size(o.samples) > 10);
    return o;
}

static int is_image_name(const char *p) {
    size_t n = strlen(p);
    return (n > 4 && strcasecmp(p + n - 4, ".png") == 0) || (n > 5 && strcasecmp(p + n - 5, ".jpeg") == 0);
}

/* d must list the fixture's samples in order; sources end with the relative paths. */
static void check_order(const mloc_dataset *d, const order_fixture *o) {
    assert_int_equal(d->n_classes, (int)json_array_size(o->classes));
    for (int k = 0; k < d->n_classes; k++)
        assert_string_equal(d->class_names[k], json_string_value(json_array_get(o->classes, (size_t)k)));
    assert_int_equal(d->n, (int64_t)json_array_size(o->samples));
    for (int64_t i = 0; i < d->n; i++) {
        json_t *s = json_array_get(o->samples, (size_t)i);
        const char *rel = json_string_value(json_array_get(s, 0));
        size_t ls = strlen(d->sources[i]), lr = strlen(rel);
        int ok = ls >= lr && strcmp(d->sources[i] + ls - lr, rel) == 0 &&
                 (ls == lr || d->sources[i][ls - lr - 1] == '/');
        if (!ok) printf("  sample %lld: got %s, torchvision has %s\n", (long long)i, d->sources[i], rel);
        assert_true(ok);
        assert_int_equal(d->labels[i], json_integer_value(json_array_get(s, 1)));
    }
}

static void test_order_dir(void **state) {
    (void)state;
    mloc_ctx *ctx = capture_ctx(2);
    order_fixture o = load_order();
    size_t size;
    uint8_t *png = fixture_bytes(ctx, "rgb.png", &size);
    const char *dir = test_tmpdir("order");
    char path[4200], spec[4200];
    size_t i;
    json_t *v;
    json_array_foreach(o.files, i, v) {
        const char *rel = json_string_value(v);
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        if (is_image_name(rel))
            write_bytes(path, png, size);
        else
            write_bytes(path, "text", 4);
    }
    snprintf(spec, sizeof spec, "folder:%s", dir);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    check_order(&d, &o);
    assert_int_equal(d.h, 9);
    assert_int_equal(d.w, 13);
    printf("warnings: %s", warnings);
    assert_non_null(strstr(warnings, "hidden folder '.ipynb_checkpoints' is a class"));
    mloc_dataset_free(&d);
    free(png);
    json_decref(o.doc);
    mloc_ctx_destroy(ctx);
}

typedef struct {
    const char *path;
    const void *data;
    size_t size;
    int dir;
} member;

/* Write a tar (gzip if gz) with the members in the given order. */
static void write_tar(const char *path, const member *m, int n, int gz) {
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    if (gz) assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].path);
        archive_entry_set_filetype(e, m[i].dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(e, m[i].dir ? 0755 : 0644);
        archive_entry_set_size(e, m[i].dir ? 0 : (la_int64_t)m[i].size);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (!m[i].dir && m[i].size) assert_int_equal(archive_write_data(a, m[i].data, m[i].size), (la_ssize_t)m[i].size);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void test_order_tar(void **state) {
    (void)state;
    mloc_ctx *ctx = capture_ctx(2);
    order_fixture o = load_order();
    size_t size;
    uint8_t *png = fixture_bytes(ctx, "rgb.png", &size);
    const char *dir = test_tmpdir("order_tar");
    size_t nf = json_array_size(o.files);
    member *m = calloc(2 * nf + 4, sizeof *m);
    char **names = calloc(2 * nf + 4, sizeof *names);
    char path[4200], spec[4300];
    /* 1: members at the archive root, in reverse order (the reader sorts) */
    for (size_t i = 0; i < nf; i++) {
        const char *rel = json_string_value(json_array_get(o.files, nf - 1 - i));
        m[i].path = rel;
        m[i].data = is_image_name(rel) ? (const void *)png : "text";
        m[i].size = is_image_name(rel) ? size : 4;
    }
    snprintf(path, sizeof path, "%s/flat.tar", dir);
    write_tar(path, m, (int)nf, 0);
    snprintf(spec, sizeof spec, "folder:%s", path);
    mloc_dataset d;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    check_order(&d, &o);
    mloc_dataset_free(&d);
    /* 2: "./wrap/<tree>" and a sibling "./wrap/other/x/1.png", gzip; SUBDIR below the wrapper */
    int k = 0;
    m[k++] = (member){"./wrap/", NULL, 0, 1};
    for (size_t i = 0; i < nf; i++) {
        const char *rel = json_string_value(json_array_get(o.files, i));
        names[i] = malloc(strlen(rel) + 32);
        sprintf(names[i], "./wrap/split/%s", rel);
        m[k++] = (member){names[i], is_image_name(rel) ? (const void *)png : "text",
                          is_image_name(rel) ? size : 4, 0};
    }
    m[k++] = (member){"./wrap/other/x/1.png", png, size, 0};
    m[k++] = (member){"./wrap/split/empty_but_ignored.txt", "t", 1, 0};
    snprintf(path, sizeof path, "%s/wrapped.tar.gz", dir);
    write_tar(path, m, k, 1);
    snprintf(spec, sizeof spec, "folder:%s/split", path);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    check_order(&d, &o);
    assert_string_equal(d.spec, spec);
    mloc_dataset_free(&d);
    /* without SUBDIR the wrapper is the root: classes "other" and "split" */
    snprintf(spec, sizeof spec, "folder:%s", path);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    assert_int_equal(d.n_classes, 2);
    assert_string_equal(d.class_names[0], "other");
    assert_string_equal(d.class_names[1], "split");
    assert_int_equal(d.n, 1 + (int64_t)json_array_size(o.samples) + 1); /* + root.png under split/ */
    mloc_dataset_free(&d);
    /* SUBDIR spelled from the archive's top level works too */
    snprintf(spec, sizeof spec, "folder:%s/wrap/split", path);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_OK);
    check_order(&d, &o);
    mloc_dataset_free(&d);
    snprintf(spec, sizeof spec, "folder:%s/val", path);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_ERR_NOINPUT);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "no directory 'val' in the archive"));
    /* the same archive from memory */
    void *bytes;
    size_t nbytes;
    assert_int_equal(mloc_read_file(ctx, path, &bytes, &nbytes), MLOC_OK);
    assert_int_equal(mloc_folder_read_memory(ctx, &d, bytes, nbytes, "split", NULL, "mem.tar.gz"), MLOC_OK);
    check_order(&d, &o);
    mloc_dataset_free(&d);
    /* truncated archive */
    assert_int_equal(mloc_folder_read_memory(ctx, &d, bytes, nbytes / 2, "split", NULL, "half.tar.gz"),
                     MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "half.tar.gz"));
    free(bytes);
    assert_int_equal(mloc_folder_read_memory(ctx, &d, "not a tar at all, just text", 27, NULL, NULL, "x.tar"),
                     MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    for (size_t i = 0; i < nf; i++) free(names[i]);
    free(names);
    free(m);
    free(png);
    json_decref(o.doc);
    mloc_ctx_destroy(ctx);
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_folder_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = capture_ctx(2);
    size_t np, nt, nsmall;
    uint8_t *png = fixture_bytes(ctx, "rgb.png", &np), *trunc = fixture_bytes(ctx, "truncated.jpg", &nt);
    uint8_t *small = ppm(4, 3, 200, &nsmall);
    const char *dir = test_tmpdir("folder_err");
    char p[4200], spec[4300];
    snprintf(p, sizeof p, "%s/cat/1.png", dir);
    write_bytes(p, png, np);
    snprintf(p, sizeof p, "%s/cat/2.jpg", dir);
    write_bytes(p, trunc, nt);
    snprintf(p, sizeof p, "%s/dog/1.png", dir);
    write_bytes(p, png, np);
    snprintf(p, sizeof p, "%s/dog/2.jpeg", dir);
    write_bytes(p, "garbage", 7);
    snprintf(spec, sizeof spec, "folder:%s", dir);
    mloc_dataset d;
    /* a corrupt image: an error naming it */
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "/cat/2.jpg: corrupt JPEG"));
    /* skipped on request, with a warning listing both */
    mloc_dataset_options opt = mloc_dataset_options_default();
    opt.skip_corrupt = 1;
    warnings[0] = 0;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, &opt), MLOC_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.n_skipped, 2);
    assert_int_equal(d.labels[0], 0);
    assert_int_equal(d.labels[1], 1);
    printf("  warning: %s", warnings);
    assert_non_null(strstr(warnings, "skipped 2 corrupt images"));
    assert_non_null(strstr(warnings, "cat/2.jpg"));
    assert_non_null(strstr(warnings, "dog/2.jpeg"));
    assert_non_null(strstr(d.sources[1], "dog/1.png"));
    mloc_dataset_free(&d);
    /* a different size: an error naming the first mismatching file */
    snprintf(p, sizeof p, "%s/dog/0.ppm", dir);
    write_bytes(p, small, nsmall);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, &opt), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "dog/0.ppm: image is 4x3, expected 9x13 like"));
    /* ... unless resizing */
    opt.fit = MLOC_FIT_RESIZE;
    opt.size = 16;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, &opt), MLOC_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.h, 16);
    assert_int_equal(d.w, 16);
    for (int k = 0; k < 16 * 16 * 3; k++) assert_int_equal(d.pixels[16 * 16 * 3 + k], 200); /* dog/0.ppm */
    assert_non_null(strstr(d.prep, "resize each image to 16x16"));
    mloc_dataset_free(&d);
    /* an empty class folder */
    snprintf(p, sizeof p, "%s/bird/readme.txt", dir);
    write_bytes(p, "no images", 9);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, &opt), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "/bird: class folder has no image files"));
    /* no class folders at all, a missing path */
    const char *empty = test_tmpdir("folder_empty");
    snprintf(spec, sizeof spec, "folder:%s", empty);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_ERR_NOINPUT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "no class folders"));
    assert_int_equal(mloc_dataset_open(ctx, &d, "folder:/nonexistent/imgs", NULL), MLOC_ERR_NOINPUT);
    assert_non_null(strstr(mloc_ctx_error(ctx), "/nonexistent/imgs"));
    /* in a tar: the member is named */
    member m[3] = {{"cat/1.png", png, np, 0}, {"cat/2.jpg", trunc, nt, 0}, {"dog/1.png", png, np, 0}};
    snprintf(p, sizeof p, "%s/bad.tar", empty);
    write_tar(p, m, 3, 0);
    snprintf(spec, sizeof spec, "folder:%s", p);
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, NULL), MLOC_ERR_DATA);
    printf("  %s\n", mloc_ctx_error(ctx));
    assert_non_null(strstr(mloc_ctx_error(ctx), "bad.tar: member cat/2.jpg: corrupt JPEG"));
    opt = mloc_dataset_options_default();
    opt.skip_corrupt = 1;
    warnings[0] = 0;
    assert_int_equal(mloc_dataset_open(ctx, &d, spec, &opt), MLOC_OK);
    assert_int_equal(d.n, 2);
    assert_non_null(strstr(warnings, "member cat/2.jpg"));
    mloc_dataset_free(&d);
    free(png);
    free(trunc);
    free(small);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vs_pil),
        cmocka_unit_test(test_order_dir),
        cmocka_unit_test(test_order_tar),
        cmocka_unit_test(test_folder_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
