/* safetensors files (FORMATS.md section 2) and the tensor table's load/save.
 *
 * Reading: the whole file is read with one fread; tensors point into that
 * buffer. The header is parsed by jansson with JSON_REJECT_DUPLICATES and
 * validated like the reference reader (huggingface/safetensors,
 * safetensors/src/tensor.rs: read_metadata and Metadata::validate), with
 * messages that name the file and the tensor.
 *
 * Writing mirrors the reference writer (tensor.rs: prepare) byte for byte:
 * tensors sorted by descending dtype then name, compact JSON with
 * `__metadata__` first, space-padded so that 8 + N is a multiple of 8. The
 * reference's metadata is a HashMap (unordered); memloc sorts its keys so
 * files are reproducible. tools/st.py writes the same layout in Python. */
#include "memloc/io.h"

#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; memloc reads it in place"
#endif

#define HEADER_MAX 100000000ull /* the reference reader's MAX_HEADER_SIZE */
#define SHAPE_STR 160           /* "[d0,...,d5]" with 20-digit dims */

/* ---- element conversions ------------------------------------------------ */

static float f16_bits_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or NaN with its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    } else {
        float v = (float)man * 0x1p-24f; /* zero or subnormal: man * 2^-24, exact */
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t f32_to_f16_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) { /* NaN: keep the top payload bits, never become inf */
        uint16_t m = (uint16_t)(ax >> 13) & 0x3ff;
        return sign | 0x7c00 | (m ? m : 1);
    }
    if (ax >= 0x477ff000u) return sign | 0x7c00; /* >= 65520 rounds to inf */
    if (ax >= 0x38800000u) {                    /* normal half: >= 2^-14 */
        ax += 0xfffu + ((ax >> 13) & 1);         /* round to nearest, ties to even */
        return sign | (uint16_t)((ax - 0x38000000u) >> 13);
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25 rounds to zero (the tie goes to even 0) */
    /* Subnormal half: round(|f| / 2^-24) with |f| = m * 2^(e-150), shift 14..24. */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(ax >> 23);
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return sign | (uint16_t)r;
}

static uint16_t f32_to_bf16_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fc0; /* every NaN -> quiet NaN, as c10 */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* The readers take byte pointers: tensor data need not be aligned. */
static void f16_bytes_to_f32(float *dst, const uint8_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_bits_to_f32(h);
    }
}

static void bf16_bytes_to_f32(float *dst, const uint8_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t bits = (uint32_t)h << 16;
        memcpy(&dst[i], &bits, 4);
    }
}

void mloc_f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    f16_bytes_to_f32(dst, (const uint8_t *)src, n);
}

void mloc_bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    bf16_bytes_to_f32(dst, (const uint8_t *)src, n);
}

void mloc_f32_to_f16(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = f32_to_f16_bits(src[i]);
}

void mloc_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = f32_to_bf16_bits(src[i]);
}

/* ---- helpers -------------------------------------------------------------- */

static const char *shape_str(char *buf, int ndim, const int64_t *shape) {
    size_t at = 0;
    buf[at++] = '[';
    for (int d = 0; d < ndim; d++)
        at += (size_t)snprintf(buf + at, SHAPE_STR - at, d ? ",%lld" : "%lld",
                               (long long)shape[d]);
    snprintf(buf + at, SHAPE_STR - at, "]");
    return buf;
}

static int same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
    if (na != nb) return 0;
    for (int d = 0; d < na; d++)
        if (a[d] != b[d]) return 0;
    return 1;
}

/* The reference's dtype order (tensor.rs `enum Dtype`, increasing alignment);
 * names that are not here are unknown. rank -1: a dtype memloc does not read. */
static const struct {
    const char *name;
    int memloc; /* mloc_dtype, or -1 */
} st_dtypes[] = {
    {"BOOL", -1}, {"F4", -1}, {"F6_E2M3", -1}, {"F6_E3M2", -1},
    {"U8", MLOC_DTYPE_U8}, {"I8", -1}, {"F8_E5M2", -1}, {"F8_E4M3", -1},
    {"F8_E8M0", -1}, {"F8_E4M3FNUZ", -1}, {"F8_E5M2FNUZ", -1}, {"I16", -1},
    {"U16", -1}, {"F16", MLOC_DTYPE_F16}, {"BF16", MLOC_DTYPE_BF16}, {"I32", MLOC_DTYPE_I32},
    {"U32", -1}, {"F32", MLOC_DTYPE_F32}, {"C64", -1}, {"F64", MLOC_DTYPE_F64},
    {"I64", MLOC_DTYPE_I64}, {"U64", -1},
};
#define N_ST_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static int st_dtype_index(const char *name) {
    for (int i = 0; i < N_ST_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return i;
    return -1;
}

static int dtype_rank(mloc_dtype t) { return st_dtype_index(mloc_dtype_name(t)); }

/* ---- reading -------------------------------------------------------------- */

typedef struct {
    mloc_st_tensor t;
    uint64_t begin, end; /* data_offsets */
} entry;

struct mloc_st_file {
    char *path;
    uint8_t *bytes; /* the whole file */
    size_t size;
    json_t *header; /* tensor names point into it */
    json_t *meta;   /* its "__metadata__" object, or NULL */
    entry *e;       /* sorted by data_offsets */
    int n;
};

static int get_u64(json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* Parse one "name": {"dtype", "shape", "data_offsets"} entry. */
static mloc_status parse_entry(mloc_ctx *ctx, const char *path, const char *name, json_t *v,
                               entry *e, uint64_t buffer_size) {
    char sb[SHAPE_STR];
    mloc_st_tensor *t = &e->t;
    t->name = name;
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dtype) || !json_is_array(shape) ||
        !json_is_array(offs))
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: tensor '%s': expected an object with \"dtype\" (string), "
                          "\"shape\" and \"data_offsets\" (arrays)", path, name);
    const char *dname = json_string_value(dtype);
    int k = st_dtype_index(dname);
    if (k < 0)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': unknown dtype '%s'", path, name,
                          dname);
    if (st_dtypes[k].memloc < 0)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED,
                          "%s: tensor '%s': dtype %s is not supported "
                          "(memloc reads F32, F16, BF16, F64, I64, I32, U8)", path, name, dname);
    t->dtype = (mloc_dtype)st_dtypes[k].memloc;

    size_t nd = json_array_size(shape);
    if (nd > MLOC_MAX_DIMS)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions, memloc "
                          "reads at most %d", path, name, nd, MLOC_MAX_DIMS);
    t->ndim = (int)nd;
    int64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < t->ndim; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim))
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': shape entry %d is not an "
                              "integer", path, name, d);
        t->shape[d] = json_integer_value(dim);
        if (t->shape[d] < 0)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': negative dimension %lld in "
                              "shape %s", path, name, (long long)t->shape[d],
                              shape_str(sb, d + 1, t->shape));
        overflow |= __builtin_mul_overflow(numel, t->shape[d], &numel);
    }
    uint64_t nbytes;
    overflow |= __builtin_mul_overflow((uint64_t)numel, (uint64_t)mloc_dtype_size(t->dtype), &nbytes);
    if (overflow)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': shape %s overflows", path, name,
                          shape_str(sb, t->ndim, t->shape));
    t->numel = numel;

    if (json_array_size(offs) != 2 || !get_u64(json_array_get(offs, 0), &e->begin) ||
        !get_u64(json_array_get(offs, 1), &e->end))
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': data_offsets must be two "
                          "non-negative integers", path, name);
    if (e->begin > e->end)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': data_offsets [%llu,%llu] end "
                          "before they begin", path, name, (unsigned long long)e->begin,
                          (unsigned long long)e->end);
    if (e->end - e->begin != nbytes)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': data_offsets [%llu,%llu] hold "
                          "%llu bytes, but %s %s needs %llu", path, name,
                          (unsigned long long)e->begin, (unsigned long long)e->end,
                          (unsigned long long)(e->end - e->begin), dname,
                          shape_str(sb, t->ndim, t->shape), (unsigned long long)nbytes);
    if (e->end > buffer_size)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': data_offsets [%llu,%llu] go past "
                          "the end of the %llu-byte data buffer (truncated file?)", path, name,
                          (unsigned long long)e->begin, (unsigned long long)e->end,
                          (unsigned long long)buffer_size);
    t->nbytes = (size_t)nbytes;
    return MLOC_OK;
}

static int by_offsets(const void *pa, const void *pb) {
    const entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return strcmp(a->t.name, b->t.name);
}

static mloc_status parse(mloc_ctx *ctx, mloc_st_file *f) {
    const char *path = f->path;
    if (f->size < 8)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: truncated: %zu bytes, too short for the "
                          "8-byte header length", path, f->size);
    uint64_t n;
    memcpy(&n, f->bytes, 8);
    if (n > HEADER_MAX)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: header length %llu exceeds the limit of "
                          "%llu bytes", path, (unsigned long long)n, HEADER_MAX);
    if (n > f->size - 8)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: header length %llu exceeds the file size "
                          "(%zu bytes; truncated file?)", path, (unsigned long long)n, f->size);
    if (n == 0 || f->bytes[8] != '{')
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: header does not start with '{'", path);
    json_error_t err;
    f->header = json_loadb((const char *)f->bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!f->header)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: header is not valid JSON: %s (at byte %d)",
                          path, err.text, 8 + err.position);
    if (!json_is_object(f->header))
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: header is not a JSON object", path);

    uint64_t buffer_size = f->size - 8 - n;
    f->e = calloc(json_object_size(f->header) + 1, sizeof *f->e);
    if (!f->e) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory", path);
    const char *key;
    json_t *v;
    json_object_foreach(f->header, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v))
                return mloc_error(ctx, MLOC_ERR_DATA, "%s: __metadata__ is not an object", path);
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv))
                    return mloc_error(ctx, MLOC_ERR_DATA, "%s: __metadata__ '%s' is not a string",
                                      path, mk);
            }
            f->meta = v;
            continue;
        }
        MLOC_TRY(parse_entry(ctx, path, key, v, &f->e[f->n], buffer_size));
        f->n++;
    }

    /* Sorted by BEGIN the tensors must tile [0, buffer_size) exactly. */
    qsort(f->e, (size_t)f->n, sizeof *f->e, by_offsets);
    uint64_t at = 0;
    for (int i = 0; i < f->n; i++) {
        entry *e = &f->e[i];
        if (e->begin < at)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': data_offsets [%llu,%llu] "
                              "overlap tensor '%s', which ends at %llu", path, e->t.name,
                              (unsigned long long)e->begin, (unsigned long long)e->end,
                              f->e[i - 1].t.name, (unsigned long long)at);
        if (e->begin > at)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': hole of %llu bytes before "
                              "its data_offsets [%llu,%llu]", path, e->t.name,
                              (unsigned long long)(e->begin - at), (unsigned long long)e->begin,
                              (unsigned long long)e->end);
        e->t.data = f->bytes + 8 + n + e->begin;
        at = e->end;
    }
    if (at != buffer_size)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %llu trailing bytes after the last tensor "
                          "(data buffer is %llu bytes, tensors cover %llu)", path,
                          (unsigned long long)(buffer_size - at),
                          (unsigned long long)buffer_size, (unsigned long long)at);
    return MLOC_OK;
}

static mloc_status open_bytes(mloc_ctx *ctx, mloc_st_file **out, void *bytes, size_t size,
                              const char *label) {
    mloc_st_file *f = calloc(1, sizeof *f);
    char *path = strdup(label);
    if (!f || !path) {
        free(f);
        free(path);
        free(bytes);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory", label);
    }
    f->path = path;
    f->bytes = bytes;
    f->size = size;
    mloc_status st = parse(ctx, f);
    if (st != MLOC_OK) {
        mloc_st_close(f);
        return st;
    }
    *out = f;
    return MLOC_OK;
}

mloc_status mloc_st_open(mloc_ctx *ctx, mloc_st_file **out, const char *path) {
    *out = NULL;
    void *bytes;
    size_t size;
    MLOC_TRY(mloc_read_file(ctx, path, &bytes, &size));
    return open_bytes(ctx, out, bytes, size, path);
}

mloc_status mloc_st_open_memory(mloc_ctx *ctx, mloc_st_file **out, const void *bytes,
                                size_t size, const char *label) {
    *out = NULL;
    void *copy = malloc(size ? size : 1);
    if (!copy) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory", label);
    if (size) memcpy(copy, bytes, size);
    return open_bytes(ctx, out, copy, size, label);
}

void mloc_st_close(mloc_st_file *f) {
    if (!f) return;
    json_decref(f->header);
    free(f->e);
    free(f->bytes);
    free(f->path);
    free(f);
}

int mloc_st_count(const mloc_st_file *f) { return f->n; }

const mloc_st_tensor *mloc_st_get(const mloc_st_file *f, int i) {
    return i >= 0 && i < f->n ? &f->e[i].t : NULL;
}

const mloc_st_tensor *mloc_st_find(const mloc_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].t.name, name) == 0) return &f->e[i].t;
    return NULL;
}

const char *mloc_st_metadata(const mloc_st_file *f, const char *key) {
    return f->meta ? json_string_value(json_object_get(f->meta, key)) : NULL;
}

const char *mloc_st_path(const mloc_st_file *f) { return f->path; }

/* Find `name` and check its shape (ndim < 0: any shape). */
static mloc_status lookup(mloc_ctx *ctx, const mloc_st_file *f, const char *name, int ndim,
                          const int64_t *shape, const mloc_st_tensor **out) {
    char want[SHAPE_STR], have[SHAPE_STR];
    const mloc_st_tensor *t = *out = mloc_st_find(f, name);
    if (!t) return mloc_error(ctx, MLOC_ERR_DATA, "%s: no tensor '%s'", f->path, name);
    if (ndim >= 0 && !same_shape(ndim, shape, t->ndim, t->shape))
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': expected shape %s, file has %s",
                          f->path, name, shape_str(want, ndim, shape),
                          shape_str(have, t->ndim, t->shape));
    return MLOC_OK;
}

static mloc_status wrong_dtype(mloc_ctx *ctx, const mloc_st_file *f, const mloc_st_tensor *t,
                               const char *want) {
    return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': dtype %s, expected %s", f->path,
                      t->name, mloc_dtype_name(t->dtype), want);
}

mloc_status mloc_st_read_f32(mloc_ctx *ctx, float *dst, const mloc_st_file *f,
                             const char *name, int ndim, const int64_t *shape) {
    const mloc_st_tensor *t;
    MLOC_TRY(lookup(ctx, f, name, ndim, shape, &t));
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case MLOC_DTYPE_F32:
        if (t->nbytes) memcpy(dst, src, t->nbytes);
        return MLOC_OK;
    case MLOC_DTYPE_F16: f16_bytes_to_f32(dst, src, t->numel); return MLOC_OK;
    case MLOC_DTYPE_BF16: bf16_bytes_to_f32(dst, src, t->numel); return MLOC_OK;
    case MLOC_DTYPE_F64:
        for (int64_t i = 0; i < t->numel; i++) {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (float)v;
        }
        return MLOC_OK;
    default: return wrong_dtype(ctx, f, t, "F32 (or F16, BF16, F64)");
    }
}

mloc_status mloc_st_read_f64(mloc_ctx *ctx, double *dst, const mloc_st_file *f,
                             const char *name, int ndim, const int64_t *shape) {
    const mloc_st_tensor *t;
    MLOC_TRY(lookup(ctx, f, name, ndim, shape, &t));
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case MLOC_DTYPE_F64:
        if (t->nbytes) memcpy(dst, src, t->nbytes);
        return MLOC_OK;
    case MLOC_DTYPE_F32:
        for (int64_t i = 0; i < t->numel; i++) {
            float v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = v;
        }
        return MLOC_OK;
    default: return wrong_dtype(ctx, f, t, "F64 (or F32)");
    }
}

mloc_status mloc_st_read_i64(mloc_ctx *ctx, int64_t *dst, const mloc_st_file *f,
                             const char *name, int ndim, const int64_t *shape) {
    const mloc_st_tensor *t;
    MLOC_TRY(lookup(ctx, f, name, ndim, shape, &t));
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case MLOC_DTYPE_I64:
        if (t->nbytes) memcpy(dst, src, t->nbytes);
        return MLOC_OK;
    case MLOC_DTYPE_I32:
        for (int64_t i = 0; i < t->numel; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = v;
        }
        return MLOC_OK;
    default: return wrong_dtype(ctx, f, t, "I64 (or I32)");
    }
}

/* ---- writing -------------------------------------------------------------- */

typedef struct {
    char *name;
    mloc_dtype dtype;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    const void *data; /* borrowed */
    size_t nbytes;
} wentry;

struct mloc_st_writer {
    mloc_ctx *ctx;
    wentry *e;
    int n, cap;
    json_t *meta; /* key -> string */
};

mloc_status mloc_st_writer_create(mloc_ctx *ctx, mloc_st_writer **out) {
    *out = NULL;
    mloc_st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->meta = json_object())) {
        free(w);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->ctx = ctx;
    *out = w;
    return MLOC_OK;
}

void mloc_st_writer_free(mloc_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    json_decref(w->meta);
    free(w);
}

mloc_status mloc_st_writer_add(mloc_st_writer *w, const char *name, mloc_dtype dtype, int ndim,
                               const int64_t *shape, const void *data) {
    mloc_ctx *ctx = w->ctx;
    if (strcmp(name, "__metadata__") == 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "safetensors writer: '__metadata__' is reserved, "
                          "not a tensor name");
    if ((unsigned)dtype >= MLOC_DTYPE_COUNT || ndim < 0 || ndim > MLOC_MAX_DIMS)
        return mloc_error(ctx, MLOC_ERR_USAGE, "safetensors writer: tensor '%s': invalid dtype "
                          "%d or ndim %d (0..%d)", name, (int)dtype, ndim, MLOC_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return mloc_error(ctx, MLOC_ERR_USAGE, "safetensors writer: duplicate tensor '%s'",
                              name);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || __builtin_mul_overflow(numel, shape[d], &numel))
            return mloc_error(ctx, MLOC_ERR_USAGE, "safetensors writer: tensor '%s': invalid "
                              "dimension %lld", name, (long long)shape[d]);
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        wentry *e = realloc(w->e, (size_t)cap * sizeof *e);
        if (!e) return mloc_error(ctx, MLOC_ERR_NOMEM, "safetensors writer: out of memory");
        w->e = e;
        w->cap = cap;
    }
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name)))
        return mloc_error(ctx, MLOC_ERR_NOMEM, "safetensors writer: out of memory");
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim) memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->data = data;
    e->nbytes = (size_t)numel * mloc_dtype_size(dtype);
    w->n++;
    return MLOC_OK;
}

mloc_status mloc_st_writer_meta(mloc_st_writer *w, const char *key, const char *value) {
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return mloc_error(w->ctx, MLOC_ERR_USAGE, "safetensors writer: metadata '%s': invalid "
                          "UTF-8 or out of memory", key);
    return MLOC_OK;
}

/* The reference writer's order: descending dtype, then name (bytewise). */
static int by_dtype_then_name(const void *pa, const void *pb) {
    const wentry *a = pa, *b = pb;
    int ra = dtype_rank(a->dtype), rb = dtype_rank(b->dtype);
    if (ra != rb) return rb - ra;
    return strcmp(a->name, b->name);
}

static int by_string(const void *pa, const void *pb) {
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* The header JSON, compact, in the order the reference writer emits. */
static char *header_json(mloc_st_writer *w) {
    json_t *root = json_object(), *meta = NULL;
    const char **keys = NULL;
    char *text = NULL;
    size_t nmeta = json_object_size(w->meta);
    if (!root) goto done;
    if (nmeta) {
        if (!(keys = malloc(nmeta * sizeof *keys)) || !(meta = json_object())) goto done;
        size_t k = 0;
        const char *key;
        json_t *v;
        json_object_foreach(w->meta, key, v) keys[k++] = key;
        qsort(keys, nmeta, sizeof *keys, by_string);
        for (k = 0; k < nmeta; k++)
            if (json_object_set(meta, keys[k], json_object_get(w->meta, keys[k]))) goto done;
        if (json_object_set(root, "__metadata__", meta)) goto done;
    }
    uint64_t at = 0;
    for (int i = 0; i < w->n; i++) {
        const wentry *e = &w->e[i];
        json_t *shape = json_array();
        json_t *info = json_pack("{s:s, s:o, s:[I,I]}", "dtype", mloc_dtype_name(e->dtype),
                                 "shape", shape, "data_offsets", (json_int_t)at,
                                 (json_int_t)(at + e->nbytes));
        if (!info || json_object_set_new(root, e->name, info)) goto done;
        for (int d = 0; d < e->ndim; d++)
            if (json_array_append_new(shape, json_integer(e->shape[d]))) goto done;
        at += e->nbytes;
    }
    text = json_dumps(root, JSON_COMPACT);
done:
    json_decref(meta);
    json_decref(root);
    free(keys);
    return text;
}

mloc_status mloc_st_writer_save(mloc_st_writer *w, const char *path) {
    mloc_ctx *ctx = w->ctx;
    if (w->n > 1) qsort(w->e, (size_t)w->n, sizeof *w->e, by_dtype_then_name);
    char *header = header_json(w);
    if (!header)
        return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: cannot build the safetensors header", path);
    size_t len = strlen(header);
    uint64_t n = (len + 7) / 8 * 8; /* space-pad so 8 + N is a multiple of 8 */
    mloc_atomic_file af;
    mloc_status st = mloc_atomic_open(ctx, &af, path);
    if (st != MLOC_OK) goto done;
    int ok = fwrite(&n, 8, 1, af.fp) == 1 && fwrite(header, 1, len, af.fp) == len &&
             fwrite("       ", 1, n - len, af.fp) == n - len;
    for (int i = 0; ok && i < w->n; i++)
        ok = w->e[i].nbytes == 0 || fwrite(w->e[i].data, 1, w->e[i].nbytes, af.fp) == w->e[i].nbytes;
    if (!ok) {
        mloc_atomic_abort(&af);
        st = mloc_error(ctx, MLOC_ERR_IO, "%s: write failed", path);
        goto done;
    }
    st = mloc_atomic_commit(ctx, &af);
done:
    free(header);
    return st;
}

/* ---- tables <-> files ----------------------------------------------------- */

/* What a table entry looks like in a file: F32 with the entry's shape, or
 * I64 shape [] for counters. */
static int entry_is_counter(const mloc_tensor *e) {
    return mloc_role_block(e->role) == MLOC_BLOCK_COUNTER;
}

mloc_status mloc_table_load(mloc_ctx *ctx, const mloc_table *tab, mloc_store *s,
                            const mloc_st_file *f, int flags) {
    char want[SHAPE_STR], have[SHAPE_STR];
    /* Check everything first, so a failed load leaves the store untouched. */
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        int counter = entry_is_counter(e);
        int ndim = counter ? 0 : e->ndim;
        const mloc_st_tensor *t = mloc_st_find(f, e->name);
        if (!t) {
            int optional = (flags & MLOC_LOAD_ALLOW_MISSING) ||
                           ((flags & MLOC_LOAD_ENCODER_ONLY) && e->group != MLOC_GROUP_ENCODER);
            if (optional) continue;
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: missing tensor '%s' (expected %s %s)",
                              f->path, e->name, counter ? "I64" : "F32",
                              shape_str(want, ndim, e->shape));
        }
        if (!same_shape(ndim, e->shape, t->ndim, t->shape))
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': wrong shape: expected %s, "
                              "file has %s", f->path, e->name, shape_str(want, ndim, e->shape),
                              shape_str(have, t->ndim, t->shape));
        int ok = counter ? t->dtype == MLOC_DTYPE_I64 || t->dtype == MLOC_DTYPE_I32
                         : t->dtype == MLOC_DTYPE_F32 || t->dtype == MLOC_DTYPE_F16 ||
                               t->dtype == MLOC_DTYPE_BF16 || t->dtype == MLOC_DTYPE_F64;
        if (!ok)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: tensor '%s': wrong dtype %s, expected %s",
                              f->path, e->name, mloc_dtype_name(t->dtype),
                              counter ? "I64" : "F32");
    }
    if (!(flags & MLOC_LOAD_ALLOW_UNEXPECTED)) {
        for (int i = 0; i < f->n; i++) {
            const mloc_st_tensor *t = &f->e[i].t;
            if (mloc_table_find(tab, t->name) < 0)
                return mloc_error(ctx, MLOC_ERR_DATA, "%s: unexpected tensor '%s' %s %s (not in "
                                  "the model)", f->path, t->name, mloc_dtype_name(t->dtype),
                                  shape_str(have, t->ndim, t->shape));
        }
    }
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        if (!mloc_st_find(f, e->name)) continue;
        void *dst = mloc_store_ptr(s, tab, i);
        MLOC_TRY(entry_is_counter(e) ? mloc_st_read_i64(ctx, dst, f, e->name, -1, NULL)
                                     : mloc_st_read_f32(ctx, dst, f, e->name, -1, NULL));
    }
    return MLOC_OK;
}

mloc_status mloc_table_add_to_writer(mloc_st_writer *w, const mloc_table *tab,
                                     const mloc_store *s, int group) {
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        if (group >= 0 && (int)e->group != group) continue;
        const void *data = mloc_store_ptr(s, tab, i);
        MLOC_TRY(entry_is_counter(e)
                     ? mloc_st_writer_add(w, e->name, MLOC_DTYPE_I64, 0, NULL, data)
                     : mloc_st_writer_add(w, e->name, MLOC_DTYPE_F32, e->ndim, e->shape, data));
    }
    return MLOC_OK;
}
