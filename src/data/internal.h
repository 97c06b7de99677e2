/* Declarations shared by the files of src/data (not public API). */
#ifndef MLOC_DATA_INTERNAL_H
#define MLOC_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "memloc/data.h"

/* ---- dataset building (dataset.c) ---------------------------------------- */

/* Allocate n images of h x w x c with labels (and coarse labels if asked);
 * frees *d first. */
mloc_status data_alloc(mloc_ctx *ctx, mloc_dataset *d, int64_t n, int h, int w, int c,
                       int with_coarse);
/* Copy k built-in names into d->class_names. */
mloc_status data_set_names(mloc_ctx *ctx, mloc_dataset *d, const char *const *names, int k);
/* Class names from a text file, one per line (blank lines ignored). If the
 * file is missing the built-in names stay; if it lists fewer than k names
 * it is an error naming the file. */
mloc_status data_load_names(mloc_ctx *ctx, mloc_dataset *d, const char *path, int k);
/* Apply options.fit / options.channels, recording what was done in d->prep. */
mloc_status data_apply_fit(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_options *opt);
/* malloc'ed printf. */
char *data_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whole file into memory (malloc'ed); ERR_NOINPUT if it cannot be opened. */
mloc_status data_read_file(mloc_ctx *ctx, const char *path, uint8_t **buf, size_t *size);
int data_file_exists(const char *path);
int data_dir_exists(const char *path);
/* Write a file atomically (temp file + rename). */
mloc_status data_write_atomic(mloc_ctx *ctx, const char *path, const void *bytes, size_t size);

/* ---- readers (one file each) -------------------------------------------- */

mloc_status data_open_cifar(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s);
mloc_status data_open_idx(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s);
mloc_status data_open_stl10(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s);
mloc_status data_open_svhn(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s);
mloc_status data_open_folder(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s,
                             const mloc_dataset_options *opt);
mloc_status data_open_synthetic(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s);

/* ---- image decoding (image.c) ------------------------------------------- */

/* Decode a JPEG, PNG or binary PNM held in memory as PIL's convert("RGB")
 * does, into a malloc'ed h x w x 3 buffer. `name` prefixes errors. Images
 * larger than max_pixels are ERR_DATA. */
mloc_status data_decode_image(mloc_ctx *ctx, const uint8_t *bytes, size_t size, const char *name,
                              int64_t max_pixels, uint8_t **rgb, int *h, int *w);
/* PIL bilinear resize (FORMATS.md 3.2, PIL path) of an h x w x c uint8 image;
 * returns 0 when out of memory. */
int data_resize_bilinear(const uint8_t *src, int h, int w, int c, uint8_t *dst, int oh, int ow);

/* ---- hashes (hash.c): RFC 1321 MD5 and FIPS 180-4 SHA-256 ----------------- */

typedef struct {
    uint32_t s[4];
    uint64_t len;
    uint8_t buf[64];
} data_md5;

typedef struct {
    uint32_t s[8];
    uint64_t len;
    uint8_t buf[64];
} data_sha256;

void data_md5_init(data_md5 *m);
void data_md5_update(data_md5 *m, const void *p, size_t n);
void data_md5_final(data_md5 *m, uint8_t out[16]);
void data_sha256_init(data_sha256 *m);
void data_sha256_update(data_sha256 *m, const void *p, size_t n);
void data_sha256_final(data_sha256 *m, uint8_t out[32]);
void data_hex(const uint8_t *bytes, size_t n, char *out);

#endif
