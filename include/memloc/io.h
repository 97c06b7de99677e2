/* Tensor and result files: safetensors (FORMATS.md section 2), NumPy .npy,
 * and atomic file replacement. Every writer writes to "<path>.tmp.<pid>" and
 * renames over <path>, so a crash never leaves a partial file that looks
 * complete. */
#ifndef MEMLOC_IO_H
#define MEMLOC_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "memloc/context.h"
#include "memloc/tensor.h"

/* ---- safetensors reading ------------------------------------------------ */

typedef struct {
    const char *name;
    mloc_dtype dtype;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    int64_t numel;
    /* Little-endian, row-major, inside the file's buffer. Aligned to the
     * element size when the file follows the writer rules (FORMATS.md 2.3),
     * as memloc's and the reference writer's files do; other files may be
     * unaligned, so read through mloc_st_read_* rather than casting. */
    const void *data;
    size_t nbytes;
} mloc_st_tensor;

typedef struct mloc_st_file mloc_st_file;

/* Read and fully validate a file (FORMATS.md 2.2: header size, JSON without
 * duplicate keys, known dtypes, sizes, contiguous tiling of the buffer).
 * Errors name the file and the offending tensor: ERR_NOINPUT if unreadable,
 * ERR_DATA if malformed, ERR_UNSUPPORTED for dtypes memloc does not read. */
mloc_status mloc_st_open(mloc_ctx *ctx, mloc_st_file **out, const char *path);
/* Same, from memory (the bytes are copied). `label` names it in errors. */
mloc_status mloc_st_open_memory(mloc_ctx *ctx, mloc_st_file **out, const void *bytes,
                                size_t size, const char *label);
void mloc_st_close(mloc_st_file *f);
int mloc_st_count(const mloc_st_file *f);
const mloc_st_tensor *mloc_st_get(const mloc_st_file *f, int i); /* in file order of offsets */
const mloc_st_tensor *mloc_st_find(const mloc_st_file *f, const char *name);
/* __metadata__ value for key, or NULL. */
const char *mloc_st_metadata(const mloc_st_file *f, const char *key);
const char *mloc_st_path(const mloc_st_file *f);

/* Copy tensor `name` into dst as float32 (F32, F16, BF16, F64 accepted),
 * checking that its shape is exactly (ndim, shape); ndim < 0 accepts any
 * shape (dst must hold mloc_st_find(f, name)->numel values). Errors name the
 * tensor, the expected and the actual shape/dtype. */
mloc_status mloc_st_read_f32(mloc_ctx *ctx, float *dst, const mloc_st_file *f,
                             const char *name, int ndim, const int64_t *shape);
/* Same for double (F64 or F32 source) and for int64 (I64 or I32 source). */
mloc_status mloc_st_read_f64(mloc_ctx *ctx, double *dst, const mloc_st_file *f,
                             const char *name, int ndim, const int64_t *shape);
mloc_status mloc_st_read_i64(mloc_ctx *ctx, int64_t *dst, const mloc_st_file *f,
                             const char *name, int ndim, const int64_t *shape);

/* Element conversions. Widening is exact. Narrowing rounds to nearest, ties
 * to even; F16 overflows to +-inf and keeps NaN a NaN (as numpy's astype),
 * BF16 maps every NaN to 0x7fc0 (as torch's scalar c10::BFloat16). */
void mloc_f16_to_f32(float *dst, const uint16_t *src, int64_t n);
void mloc_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);
void mloc_f32_to_f16(uint16_t *dst, const float *src, int64_t n);
void mloc_f32_to_bf16(uint16_t *dst, const float *src, int64_t n);

/* ---- safetensors writing ------------------------------------------------ */

typedef struct mloc_st_writer mloc_st_writer;

mloc_status mloc_st_writer_create(mloc_ctx *ctx, mloc_st_writer **out);
void mloc_st_writer_free(mloc_st_writer *w);
/* Add a tensor; `data` is borrowed until save. Names must be unique. */
mloc_status mloc_st_writer_add(mloc_st_writer *w, const char *name, mloc_dtype dtype, int ndim,
                               const int64_t *shape, const void *data);
/* Add / replace a __metadata__ string entry. */
mloc_status mloc_st_writer_meta(mloc_st_writer *w, const char *key, const char *value);
/* Write atomically, byte for byte as the reference writer would
 * (FORMATS.md 2.3): `__metadata__` first (keys sorted), then the tensors
 * sorted by descending dtype then name, compact JSON space-padded so that
 * 8 + N is a multiple of 8. The dtype order is the reference's
 * (U64 I64 F64 F32 U32 I32 BF16 F16 ... U8): by descending element size,
 * and for equal sizes I64 before F64, F32 before I32, BF16 before F16. */
mloc_status mloc_st_writer_save(mloc_st_writer *w, const char *path);

/* ---- tables <-> files -------------------------------------------------- */

typedef enum {
    MLOC_LOAD_STRICT = 0,          /* every table entry present, no extra names */
    MLOC_LOAD_ALLOW_MISSING = 1,   /* table entries absent from the file keep their value */
    MLOC_LOAD_ALLOW_UNEXPECTED = 2,/* names in the file but not in the table are ignored */
    MLOC_LOAD_ENCODER_ONLY = 4     /* only entries of MLOC_GROUP_ENCODER are required */
} mloc_load_flags;

/* Load every entry of `tab` from file f into store s (params, buffers,
 * counters). Errors name the tensor: missing, unexpected (with flags),
 * wrong shape ("expected [64,32,3,3], file has [64,3,3,3]") or dtype. */
mloc_status mloc_table_load(mloc_ctx *ctx, const mloc_table *tab, mloc_store *s,
                            const mloc_st_file *f, int flags);
/* Add every entry of `tab` (optionally only one group; -1 for all) to a
 * writer: params and buffers as F32, counters as I64 shape []. */
mloc_status mloc_table_add_to_writer(mloc_st_writer *w, const mloc_table *tab,
                                     const mloc_store *s, int group);

/* ---- NumPy .npy (format version 1.0) ------------------------------------ */

/* Write an array atomically; dtype F32, F64, I64, I32 or U8, C order. */
mloc_status mloc_npy_write(mloc_ctx *ctx, const char *path, mloc_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
/* Read an .npy (format 1.0, 2.0 or 3.0; little-endian, C order; dtype as
 * for writing). shape holds MLOC_MAX_DIMS values. *data is malloc'ed (free
 * with free; never NULL on success, even for zero elements). */
mloc_status mloc_npy_read(mloc_ctx *ctx, const char *path, mloc_dtype *dtype, int *ndim,
                          int64_t *shape, void **data);
/* Same, from memory; `label` names it in errors. */
mloc_status mloc_npy_read_memory(mloc_ctx *ctx, const void *bytes, size_t size,
                                 const char *label, mloc_dtype *dtype, int *ndim,
                                 int64_t *shape, void **data);

/* ---- atomic files ------------------------------------------------------- */

/* Open "<path>.tmp.<pid>" for writing; commit fsyncs, closes and renames it
 * over path; abort closes and unlinks it. */
typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4200];
} mloc_atomic_file;

mloc_status mloc_atomic_open(mloc_ctx *ctx, mloc_atomic_file *af, const char *path);
mloc_status mloc_atomic_commit(mloc_ctx *ctx, mloc_atomic_file *af);
void mloc_atomic_abort(mloc_atomic_file *af);
/* Write a whole buffer to path atomically. */
mloc_status mloc_write_file_atomic(mloc_ctx *ctx, const char *path, const void *data,
                                   size_t size);
/* Read a whole file into a malloc'ed buffer (NUL-terminated, size excludes it). */
mloc_status mloc_read_file(mloc_ctx *ctx, const char *path, void **data, size_t *size);
/* mkdir -p. */
mloc_status mloc_mkdirs(mloc_ctx *ctx, const char *path);

/* ---- JSON results ------------------------------------------------------- */

/* Results across memloc are JSON documents with a "schema" field. Save
 * writes doc atomically, indented by 2, keys in insertion order, with a
 * final newline. Load parses a file with JSON_REJECT_DUPLICATES into a new
 * reference (json_decref it); errors name the file, line and column. */
mloc_status mloc_json_save(mloc_ctx *ctx, const char *path, json_t *doc);
mloc_status mloc_json_load(mloc_ctx *ctx, const char *path, json_t **out);

#endif
