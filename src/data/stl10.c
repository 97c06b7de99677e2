/* STL-10 binary (FORMATS.md 1.2).
 *
 * X files hold 96x96x3 uint8 images of 27,648 bytes: three 9,216-byte
 * channel planes, each plane column-major:
 *     pixel(n,h,w,c) = X[n*27648 + c*9216 + w*96 + h]
 * y files hold one byte per image in 1..10 (label = byte - 1). The unlabeled
 * split has no y file; its labels are -1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/internal.h"

#define SIDE 96
#define PLANE (SIDE * SIDE)
#define IMAGE (3 * PLANE)
#define CHUNK_IMAGES 256

static const char *const stl10_names[10] = {"airplane", "bird",   "car",    "cat",  "deer",
                                            "dog",      "horse",  "monkey", "ship", "truck"};

static void decode_images(uint8_t *out, const uint8_t *x, int64_t count) {
    for (int64_t n = 0; n < count; n++) {
        const uint8_t *src = x + (size_t)n * IMAGE;
        uint8_t *dst = out + (size_t)n * IMAGE;
        for (int c = 0; c < 3; c++)
            for (int w = 0; w < SIDE; w++)
                for (int h = 0; h < SIDE; h++)
                    dst[(h * SIDE + w) * 3 + c] = src[c * PLANE + w * SIDE + h];
    }
}

static mloc_status check_x_size(mloc_ctx *ctx, const char *name, uint64_t size, int64_t *n) {
    if (size == 0 || size % IMAGE != 0)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: %llu bytes, expected a whole number of 27648-byte 96x96x3 images "
                          "(%llu extra bytes: truncated or not an STL-10 X file?)",
                          name, (unsigned long long)size, (unsigned long long)(size % IMAGE));
    *n = (int64_t)(size / IMAGE);
    return MLOC_OK;
}

static mloc_status decode_labels(mloc_ctx *ctx, mloc_dataset *d, const uint8_t *y, uint64_t y_size,
                                 const char *name) {
    if (y_size != (uint64_t)d->n)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %llu labels, expected %lld (one byte per image)",
                          name, (unsigned long long)y_size, (long long)d->n);
    for (int64_t i = 0; i < d->n; i++) {
        if (y[i] < 1 || y[i] > 10)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: label %lld is %d, expected 1..10", name,
                              (long long)i, y[i]);
        d->labels[i] = y[i] - 1;
    }
    return MLOC_OK;
}

mloc_status mloc_stl10_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *x, size_t x_size,
                                   const void *y, size_t y_size, const char *label) {
    memset(d, 0, sizeof *d);
    int64_t n;
    MLOC_TRY(check_x_size(ctx, label, x_size, &n));
    mloc_status st = data_alloc(ctx, d, n, SIDE, SIDE, 3, 0);
    if (st != MLOC_OK) return st;
    decode_images(d->pixels, x, n);
    if (y)
        st = decode_labels(ctx, d, y, y_size, label);
    else
        for (int64_t i = 0; i < n; i++) d->labels[i] = -1;
    if (st == MLOC_OK) st = data_set_names(ctx, d, stl10_names, 10);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}

/* DIR or DIR/stl10_binary, whichever holds `probe`. */
static char *find_dir(const char *dir, const char *probe) {
    char *p = data_strdupf("%s/%s", dir, probe);
    int here = p && data_file_exists(p);
    free(p);
    if (here) return strdup(dir);
    p = data_strdupf("%s/stl10_binary/%s", dir, probe);
    int below = p && data_file_exists(p);
    free(p);
    return below ? data_strdupf("%s/stl10_binary", dir) : NULL;
}

mloc_status data_open_stl10(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s) {
    int unlabeled = strcmp(s->split, "unlabeled") == 0;
    if (!data_dir_exists(s->path))
        return mloc_error(ctx, MLOC_ERR_NOINPUT,
                          "%s: no such directory (fetch it with 'memloc data fetch stl10 %s')",
                          s->path, s->path);
    char xname[64], yname[64];
    snprintf(xname, sizeof xname, "%s_X.bin", s->split);
    snprintf(yname, sizeof yname, "%s_y.bin", s->split);
    char *dir = find_dir(s->path, xname);
    /* The Stanford page calls the unlabeled file unlabeled.bin; the tarball has unlabeled_X.bin. */
    if (!dir && unlabeled && (dir = find_dir(s->path, "unlabeled.bin")))
        snprintf(xname, sizeof xname, "unlabeled.bin");
    if (!dir)
        return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s/%s: missing (also looked in %s/stl10_binary/)",
                          s->path, xname, s->path);
    mloc_status st = MLOC_OK;
    char *px = data_strdupf("%s/%s", dir, xname), *py = data_strdupf("%s/%s", dir, yname);
    uint8_t *chunk = NULL, *y = NULL;
    size_t y_size = 0;
    FILE *f = NULL;
    if (!px || !py) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    struct stat sb;
    if (stat(px, &sb) != 0) {
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: %s", px, strerror(errno));
        goto done;
    }
    int64_t n;
    st = check_x_size(ctx, px, (uint64_t)sb.st_size, &n);
    if (st != MLOC_OK) goto done;
    if (!unlabeled) {
        if (!data_file_exists(py)) {
            st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: missing (the labels of %s)", py, px);
            goto done;
        }
        st = data_read_file(ctx, py, &y, &y_size);
        if (st != MLOC_OK) goto done;
    }
    st = data_alloc(ctx, d, n, SIDE, SIDE, 3, 0);
    if (st != MLOC_OK) goto done;
    if (y) {
        st = decode_labels(ctx, d, y, y_size, py);
        if (st != MLOC_OK) goto done;
    } else {
        for (int64_t i = 0; i < n; i++) d->labels[i] = -1;
    }
    chunk = malloc((size_t)IMAGE * CHUNK_IMAGES);
    f = fopen(px, "rb");
    if (!chunk || !f) {
        st = chunk ? mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s", px, strerror(errno))
                   : mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i += CHUNK_IMAGES) {
        int64_t m = n - i < CHUNK_IMAGES ? n - i : CHUNK_IMAGES;
        if (fread(chunk, IMAGE, (size_t)m, f) != (size_t)m) {
            st = mloc_error(ctx, MLOC_ERR_IO, "%s: short read at image %lld", px, (long long)i);
            goto done;
        }
        decode_images(d->pixels + (size_t)i * IMAGE, chunk, m);
        mloc_progress(ctx, "data", i + m, n, "");
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "%s: interrupted", px);
            goto done;
        }
    }
    st = data_set_names(ctx, d, stl10_names, 10);
    if (st != MLOC_OK) goto done;
    {
        char *names = data_strdupf("%s/class_names.txt", dir);
        st = names ? data_load_names(ctx, d, names, 10) : mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        free(names);
    }
done:
    if (f) fclose(f);
    free(chunk);
    free(y);
    free(px);
    free(py);
    free(dir);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}
