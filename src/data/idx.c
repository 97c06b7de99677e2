/* MNIST / Fashion-MNIST IDX files, gzipped or plain (FORMATS.md 1.4).
 *
 * Header: two zero bytes, the element type (0x08 = unsigned byte), the
 * number of dimensions, then one big-endian uint32 per dimension; then the
 * data in C order. Images are (N, rows, cols) = 0x00000803, labels (N) =
 * 0x00000801. zlib's gzread reads both plain and gzip files; in memory a
 * gzip stream (1f 8b) is inflated with inflate(). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/internal.h"

/* Deflate never compresses better than 1032:1, so a gzip file of S bytes
 * holds at most this many bytes: a bound that rejects absurd headers before
 * allocating. */
#define DEFLATE_MAX_RATIO 1032u

static const char *const mnist_names[10] = {"0 - zero", "1 - one", "2 - two", "3 - three",
                                            "4 - four", "5 - five", "6 - six", "7 - seven",
                                            "8 - eight", "9 - nine"};
static const char *const fmnist_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                             "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                             "Bag",         "Ankle boot"};

/* A byte source: a gzFile, or memory (optionally inflated). */
typedef struct {
    gzFile gz;
    const uint8_t *mem;
    size_t mem_size, mem_pos;
    int inflating, zdone;
    z_stream z;
    uint64_t stored_size; /* bytes on disk / in memory */
    int compressed;
} idx_src;

/* Read up to n bytes; returns the count (short at end of data) or -1. */
static int64_t src_read(idx_src *s, uint8_t *dst, uint64_t n) {
    uint64_t got = 0;
    if (s->gz) {
        while (got < n) {
            unsigned want = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
            int r = gzread(s->gz, dst + got, want);
            if (r < 0) return -1;
            if (r == 0) break;
            got += (uint64_t)r;
        }
        return (int64_t)got;
    }
    if (!s->inflating) {
        uint64_t left = s->mem_size - s->mem_pos;
        got = n < left ? n : left;
        memcpy(dst, s->mem + s->mem_pos, got);
        s->mem_pos += got;
        return (int64_t)got;
    }
    while (got < n && !s->zdone) {
        uint64_t want = n - got > UINT_MAX ? UINT_MAX : n - got;
        s->z.next_out = dst + got;
        s->z.avail_out = (uInt)want;
        int r = inflate(&s->z, Z_NO_FLUSH);
        got += want - s->z.avail_out;
        if (r == Z_STREAM_END)
            s->zdone = 1;
        else if (r != Z_OK)
            return r == Z_BUF_ERROR && s->z.avail_in == 0 ? (int64_t)got : -1;
    }
    return (int64_t)got;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Header of an IDX file with `ndim` dims of unsigned bytes. */
static mloc_status read_header(mloc_ctx *ctx, idx_src *s, const char *name, int ndim,
                               uint32_t dims[3]) {
    uint8_t h[16];
    int64_t want = 4 + 4 * ndim;
    int64_t got = src_read(s, h, (uint64_t)want);
    if (got < 0) return mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt gzip stream in the header", name);
    if (got < want)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: truncated header: %lld bytes, expected %lld",
                          name, (long long)got, (long long)want);
    uint32_t magic = be32(h);
    uint32_t expect = 0x0800u | (uint32_t)ndim;
    if (magic != expect) {
        if (h[0] || h[1])
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s: magic 0x%08x, expected 0x%08x (not an IDX file)", name, magic,
                              expect);
        if (h[2] != 0x08)
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s: element type 0x%02x, expected 0x08 (unsigned byte)", name, h[2]);
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %d dimensions, expected %d (magic 0x%08x)",
                          name, h[3], ndim, expect);
    }
    for (int i = 0; i < ndim; i++) dims[i] = be32(h + 4 + 4 * i);
    return MLOC_OK;
}

/* After the data: anything left is an error (a wrong count in the header). */
static mloc_status expect_end(mloc_ctx *ctx, idx_src *s, const char *name, uint64_t expected) {
    uint8_t extra[256];
    int64_t got = src_read(s, extra, sizeof extra);
    if (got < 0) return mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt gzip stream after the data", name);
    if (got > 0)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: data continues after the %llu bytes the header announces", name,
                          (unsigned long long)expected);
    return MLOC_OK;
}

static mloc_status check_budget(mloc_ctx *ctx, const idx_src *s, const char *name,
                                uint64_t total) {
    uint64_t limit = s->compressed ? s->stored_size * DEFLATE_MAX_RATIO + 1024 : s->stored_size;
    if (total > limit)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: header announces %llu bytes, but the %s holds at most %llu "
                          "(truncated?)",
                          name, (unsigned long long)total, s->compressed ? "gzip stream" : "file",
                          (unsigned long long)limit);
    return MLOC_OK;
}

/* Read images and labels from two sources into d. */
static mloc_status read_pair(mloc_ctx *ctx, mloc_dataset *d, idx_src *img, const char *img_name,
                             idx_src *lab, const char *lab_name) {
    uint32_t di[3], dl[3];
    MLOC_TRY(read_header(ctx, img, img_name, 3, di));
    MLOC_TRY(read_header(ctx, lab, lab_name, 1, dl));
    if (di[1] == 0 || di[2] == 0 || di[1] > 4096 || di[2] > 4096)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: image size %ux%u, expected 1..4096 per side",
                          img_name, di[1], di[2]);
    if (di[0] != dl[0])
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %u labels, but %s has %u images", lab_name, dl[0],
                          img_name, di[0]);
    uint64_t n = di[0], bytes = n * di[1] * di[2];
    MLOC_TRY(check_budget(ctx, img, img_name, 16 + bytes));
    MLOC_TRY(check_budget(ctx, lab, lab_name, 8 + n));
    MLOC_TRY(data_alloc(ctx, d, (int64_t)n, (int)di[1], (int)di[2], 1, 0));
    int64_t got = src_read(img, d->pixels, bytes);
    if (got < 0) return mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt gzip stream in the pixels", img_name);
    if ((uint64_t)got < bytes)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: truncated: %lld bytes of pixels after the header, expected %llu "
                          "(%u images of %ux%u)",
                          img_name, (long long)got, (unsigned long long)bytes, di[0], di[1], di[2]);
    MLOC_TRY(expect_end(ctx, img, img_name, bytes));
    uint8_t *labels = malloc(n + 1);
    if (!labels) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_status st = MLOC_OK;
    got = src_read(lab, labels, n);
    if (got < 0)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: corrupt gzip stream in the labels", lab_name);
    else if ((uint64_t)got < n)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: truncated: %lld labels, expected %llu", lab_name,
                        (long long)got, (unsigned long long)n);
    else
        st = expect_end(ctx, lab, lab_name, n);
    for (uint64_t i = 0; st == MLOC_OK && i < n; i++) {
        if (labels[i] > 9)
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: label %llu is %d, expected 0..9", lab_name,
                            (unsigned long long)i, labels[i]);
        else
            d->labels[i] = labels[i];
    }
    free(labels);
    return st;
}

/* ---- memory ------------------------------------------------------------------ */

static mloc_status mem_src(mloc_ctx *ctx, idx_src *s, const void *bytes, size_t size,
                           const char *name) {
    memset(s, 0, sizeof *s);
    s->mem = bytes;
    s->mem_size = size;
    s->stored_size = size;
    if (size >= 2 && s->mem[0] == 0x1f && s->mem[1] == 0x8b) {
        if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
            return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: cannot initialise zlib", name);
        s->z.next_in = (Bytef *)(uintptr_t)bytes;
        s->z.avail_in = size > UINT_MAX ? UINT_MAX : (uInt)size;
        s->inflating = 1;
        s->compressed = 1;
    }
    return MLOC_OK;
}

static void src_close(idx_src *s) {
    if (s->inflating) inflateEnd(&s->z);
    if (s->gz) gzclose(s->gz);
    memset(s, 0, sizeof *s);
}

mloc_status mloc_idx_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *images,
                                 size_t images_size, const void *labels, size_t labels_size,
                                 const char *label) {
    memset(d, 0, sizeof *d);
    idx_src a, b;
    memset(&b, 0, sizeof b);
    char *ni = data_strdupf("%s[images]", label), *nl = data_strdupf("%s[labels]", label);
    mloc_status st = mem_src(ctx, &a, images, images_size, label);
    if (st == MLOC_OK) st = mem_src(ctx, &b, labels, labels_size, label);
    if (st == MLOC_OK && (!ni || !nl)) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    if (st == MLOC_OK) st = read_pair(ctx, d, &a, ni, &b, nl);
    if (st == MLOC_OK) st = data_set_names(ctx, d, mnist_names, 10);
    src_close(&a);
    src_close(&b);
    free(ni);
    free(nl);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}

/* ---- files ------------------------------------------------------------------- */

/* DIR/<stem>.gz or DIR/<stem>; NULL if neither exists. */
static char *find_file(const char *dir, const char *stem) {
    char *p = data_strdupf("%s/%s.gz", dir, stem);
    if (p && data_file_exists(p)) return p;
    free(p);
    p = data_strdupf("%s/%s", dir, stem);
    if (p && data_file_exists(p)) return p;
    free(p);
    return NULL;
}

static mloc_status file_src(mloc_ctx *ctx, idx_src *s, const char *path) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f) return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    uint8_t magic[2] = {0, 0};
    size_t m = fread(magic, 1, 2, f);
    fseek(f, 0, SEEK_END);
    s->stored_size = (uint64_t)ftell(f);
    fclose(f);
    s->compressed = m == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    s->gz = gzopen(path, "rb");
    if (!s->gz) return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open", path);
    gzbuffer(s->gz, 1 << 17);
    return MLOC_OK;
}

mloc_status data_open_idx(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s) {
    int fm = s->kind == MLOC_DS_FMNIST;
    const char *word = fm ? "fmnist" : "mnist";
    const char *prefix = strcmp(s->split, "train") == 0 ? "train" : "t10k";
    if (!data_dir_exists(s->path))
        return mloc_error(ctx, MLOC_ERR_NOINPUT,
                          "%s: no such directory (fetch it with 'memloc data fetch %s %s'%s)",
                          s->path, word, s->path,
                          fm ? "; Debian's dataset-fashion-mnist package installs it in "
                               MLOC_FMNIST_DEFAULT_DIR
                             : "");
    char stem_i[64], stem_l[64];
    snprintf(stem_i, sizeof stem_i, "%s-images-idx3-ubyte", prefix);
    snprintf(stem_l, sizeof stem_l, "%s-labels-idx1-ubyte", prefix);
    char *pi = find_file(s->path, stem_i), *pl = find_file(s->path, stem_l);
    idx_src a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    mloc_status st = MLOC_OK;
    if (!pi || !pl) {
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s/%s[.gz]: missing", s->path, !pi ? stem_i : stem_l);
        goto done;
    }
    st = file_src(ctx, &a, pi);
    if (st == MLOC_OK) st = file_src(ctx, &b, pl);
    if (st == MLOC_OK) st = read_pair(ctx, d, &a, pi, &b, pl);
    if (st == MLOC_OK) st = data_set_names(ctx, d, fm ? fmnist_names : mnist_names, 10);
    if (st == MLOC_OK) mloc_progress(ctx, "data", d->n, d->n, "");
done:
    src_close(&a);
    src_close(&b);
    free(pi);
    free(pl);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}
