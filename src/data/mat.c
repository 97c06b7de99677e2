/* SVHN cropped digits: a minimal MATLAB v5 MAT-file reader (FORMATS.md 1.3).
 *
 * File = 128-byte header (text, subsystem offset, version 0x0100, endian
 * indicator "IM" little / "MI" big) + elements. An element is a tag of two
 * uint32 words (type, nbytes) and its data, padded to 8 bytes, except that
 * miCOMPRESSED (15) data is one zlib stream, unpadded, that inflates to a
 * whole element (normally miMATRIX, 14). A tag whose first word has non-zero
 * upper 16 bits is the small-element form: type in the low half, nbytes
 * (1..4) in the high half, data in the second word.
 *
 * miMATRIX sub-elements: array flags (class in bits 0..7, complex 0x0800),
 * dimensions (miINT32), name (miINT8), real part. The stored mi type of the
 * real part may be narrower than the class, so values are converted from the
 * stored type. X is 32x32x3xN uint8, column-major:
 *     pixel(n,h,w,c) = X[n*3072 + c*1024 + w*32 + h]
 * y holds N labels 1..10, where 10 means digit 0 (mapped to 0, as torchvision). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/internal.h"

enum {
    MI_INT8 = 1, MI_UINT8 = 2, MI_INT16 = 3, MI_UINT16 = 4, MI_INT32 = 5, MI_UINT32 = 6,
    MI_SINGLE = 7, MI_DOUBLE = 9, MI_INT64 = 12, MI_UINT64 = 13, MI_MATRIX = 14,
    MI_COMPRESSED = 15
};
enum { MX_CELL = 1, MX_STRUCT = 2, MX_OBJECT = 3, MX_CHAR = 4, MX_SPARSE = 5, MX_DOUBLE = 6,
       MX_UINT64 = 15 };

#define DEFLATE_MAX_RATIO 1032u
#define ZIN_SIZE 65536
#define SIDE 32
#define IMAGE (SIDE * SIDE * 3)

/* The input: raw bytes (memory or FILE), or the inflated stream of the
 * current miCOMPRESSED element. */
typedef struct {
    mloc_ctx *ctx;
    const char *name;
    FILE *fp;
    const uint8_t *mem;
    uint64_t size, pos; /* raw input size and position */
    int swap;           /* big-endian file */
    /* inflate layer */
    int inflating, zdone;
    z_stream z;
    uint8_t *zin;
    uint64_t zleft;     /* compressed bytes of this element not yet given to zlib */
    uint64_t zbudget;   /* at most this many inflated bytes can follow */
    uint8_t scratch[4096];
} mat_in;

static uint32_t get32(const mat_in *in, const uint8_t *p) {
    return in->swap ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                    : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static mloc_status raw_read(mat_in *in, uint8_t *dst, uint64_t n) {
    if (n > in->size - in->pos)
        return mloc_error(in->ctx, MLOC_ERR_DATA,
                          "%s: truncated: need %llu bytes at offset %llu, file has %llu", in->name,
                          (unsigned long long)n, (unsigned long long)in->pos,
                          (unsigned long long)in->size);
    if (in->fp) {
        if (fread(dst, 1, n, in->fp) != n)
            return mloc_error(in->ctx, MLOC_ERR_IO, "%s: short read at offset %llu", in->name,
                              (unsigned long long)in->pos);
    } else {
        memcpy(dst, in->mem + in->pos, n);
    }
    in->pos += n;
    return MLOC_OK;
}

static mloc_status raw_seek(mat_in *in, uint64_t to) {
    if (to > in->size)
        return mloc_error(in->ctx, MLOC_ERR_DATA,
                          "%s: truncated: an element ends at offset %llu, file has %llu bytes",
                          in->name, (unsigned long long)to, (unsigned long long)in->size);
    if (in->fp && fseeko(in->fp, (off_t)to, SEEK_SET) != 0)
        return mloc_error(in->ctx, MLOC_ERR_IO, "%s: cannot seek to %llu", in->name,
                          (unsigned long long)to);
    in->pos = to;
    return MLOC_OK;
}

static mloc_status zread(mat_in *in, uint8_t *dst, uint64_t n) {
    uint64_t got = 0;
    while (got < n) {
        if (in->zdone)
            return mloc_error(in->ctx, MLOC_ERR_DATA,
                              "%s: compressed element at offset %llu inflates to fewer bytes than "
                              "its contents announce",
                              in->name, (unsigned long long)in->pos);
        if (in->z.avail_in == 0 && in->zleft > 0) {
            uint64_t take = in->zleft;
            if (in->fp) {
                if (take > ZIN_SIZE) take = ZIN_SIZE;
                MLOC_TRY(raw_read(in, in->zin, take));
                in->z.next_in = in->zin;
            } else {
                if (take > UINT_MAX) take = UINT_MAX;
                in->z.next_in = (Bytef *)(uintptr_t)(in->mem + in->pos);
                in->pos += take;
            }
            in->z.avail_in = (uInt)take;
            in->zleft -= take;
        }
        uint64_t want = n - got > UINT_MAX ? UINT_MAX : n - got;
        in->z.next_out = dst + got;
        in->z.avail_out = (uInt)want;
        int r = inflate(&in->z, Z_NO_FLUSH);
        got += want - in->z.avail_out;
        if (r == Z_STREAM_END) {
            in->zdone = 1;
        } else if (r == Z_BUF_ERROR && in->z.avail_in == 0 && in->zleft == 0) {
            return mloc_error(in->ctx, MLOC_ERR_DATA,
                              "%s: compressed element ending at offset %llu is truncated", in->name,
                              (unsigned long long)in->pos);
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            return mloc_error(in->ctx, MLOC_ERR_DATA,
                              "%s: corrupt compressed element before offset %llu: zlib: %s",
                              in->name, (unsigned long long)in->pos,
                              in->z.msg ? in->z.msg : "error");
        }
    }
    return MLOC_OK;
}

static mloc_status in_read(mat_in *in, void *dst, uint64_t n) {
    return in->inflating ? zread(in, dst, n) : raw_read(in, dst, n);
}

static mloc_status in_skip(mat_in *in, uint64_t n) {
    if (!in->inflating) return raw_seek(in, in->pos + n);
    while (n) {
        uint64_t m = n < sizeof in->scratch ? n : sizeof in->scratch;
        MLOC_TRY(zread(in, in->scratch, m));
        n -= m;
    }
    return MLOC_OK;
}

typedef struct {
    uint32_t type, nbytes;
    int small;
    uint8_t data[4]; /* small-element data, file byte order */
} mat_tag;

static mloc_status read_tag(mat_in *in, mat_tag *t) {
    uint8_t b[8];
    MLOC_TRY(in_read(in, b, 8));
    uint32_t w0 = get32(in, b);
    if (w0 >> 16) {
        t->small = 1;
        t->type = w0 & 0xffff;
        t->nbytes = w0 >> 16;
        memcpy(t->data, b + 4, 4);
        if (t->nbytes > 4)
            return mloc_error(in->ctx, MLOC_ERR_DATA,
                              "%s: small element of %u bytes, expected at most 4", in->name,
                              t->nbytes);
    } else {
        t->small = 0;
        t->type = w0;
        t->nbytes = get32(in, b + 4);
    }
    return MLOC_OK;
}

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* Bytes a sub-element occupies after its tag. */
static uint64_t body_size(const mat_tag *t) { return t->small ? 0 : pad8(t->nbytes); }

static int mi_size(uint32_t type) {
    switch (type) {
    case MI_INT8: case MI_UINT8: return 1;
    case MI_INT16: case MI_UINT16: return 2;
    case MI_INT32: case MI_UINT32: case MI_SINGLE: return 4;
    case MI_DOUBLE: case MI_INT64: case MI_UINT64: return 8;
    default: return 0;
    }
}

/* One stored value as a double (file byte order in p). */
static double mi_value(const mat_in *in, uint32_t type, const uint8_t *p) {
    uint8_t b[8];
    int n = mi_size(type);
    for (int i = 0; i < n; i++) b[i] = in->swap ? p[n - 1 - i] : p[i];
    switch (type) {
    case MI_INT8: return (int8_t)b[0];
    case MI_UINT8: return b[0];
    case MI_INT16: { int16_t v; memcpy(&v, b, 2); return v; }
    case MI_UINT16: { uint16_t v; memcpy(&v, b, 2); return v; }
    case MI_INT32: { int32_t v; memcpy(&v, b, 4); return v; }
    case MI_UINT32: { uint32_t v; memcpy(&v, b, 4); return v; }
    case MI_SINGLE: { float v; memcpy(&v, b, 4); return v; }
    case MI_DOUBLE: { double v; memcpy(&v, b, 8); return v; }
    case MI_INT64: { int64_t v; memcpy(&v, b, 8); return (double)v; }
    case MI_UINT64: { uint64_t v; memcpy(&v, b, 8); return (double)v; }
    default: return NAN;
    }
}

typedef struct {
    uint8_t *x;        /* N*3072, column-major per image until finished */
    int64_t nx;
    int32_t *y;
    int64_t ny;
} svhn_parts;

/* Read `count` values of stored type `type` as integers in [lo, hi] into
 * u8 (if non-NULL) or i32. */
static mloc_status read_values(mat_in *in, uint32_t type, uint64_t count, double lo, double hi,
                               uint8_t *u8, int32_t *i32, const char *var) {
    int sz = mi_size(type);
    if (type == MI_UINT8 && u8) return in_read(in, u8, count); /* the common case */
    uint8_t buf[4096];
    uint64_t per = sizeof buf / (uint64_t)sz;
    for (uint64_t i = 0; i < count; i += per) {
        uint64_t m = count - i < per ? count - i : per;
        MLOC_TRY(in_read(in, buf, m * (uint64_t)sz));
        for (uint64_t j = 0; j < m; j++) {
            double v = mi_value(in, type, buf + j * (uint64_t)sz);
            if (!(v >= lo && v <= hi) || v != floor(v))
                return mloc_error(in->ctx, MLOC_ERR_DATA,
                                  "%s: %s element %llu is %g, expected an integer in %g..%g",
                                  in->name, var, (unsigned long long)(i + j), v, lo, hi);
            if (u8)
                u8[i + j] = (uint8_t)v;
            else
                i32[i + j] = (int32_t)v;
        }
    }
    return MLOC_OK;
}

/* Parse one miMATRIX of `nbytes` bytes. Variables other than X and y, and
 * anything after their data, are skipped by the caller. `budget` bounds the
 * bytes the matrix can really hold (before allocating). */
static mloc_status parse_matrix(mat_in *in, uint64_t nbytes, uint64_t budget, svhn_parts *out) {
    mloc_ctx *ctx = in->ctx;
    uint64_t used = 0;
    mat_tag t;
    uint8_t b[8];
    /* array flags */
    MLOC_TRY(read_tag(in, &t));
    used += 8;
    if (t.type != MI_UINT32 || t.nbytes != 8 || t.small)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: matrix at offset %llu: array flags of type %u and %u bytes, "
                          "expected miUINT32 x 2",
                          in->name, (unsigned long long)in->pos, t.type, t.nbytes);
    MLOC_TRY(in_read(in, b, 8));
    used += 8;
    uint32_t flags = get32(in, b);
    int cls = (int)(flags & 0xff), complex = (flags & 0x0800) != 0;
    /* dimensions */
    MLOC_TRY(read_tag(in, &t));
    used += 8;
    if (t.type != MI_INT32 || t.nbytes % 4 || t.nbytes < 8 || t.nbytes > 4 * 32)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: matrix dimensions: type %u, %u bytes, expected miINT32 x 2..32",
                          in->name, t.type, t.nbytes);
    int ndim = (int)(t.nbytes / 4);
    uint8_t db[4 * 32];
    MLOC_TRY(in_read(in, db, body_size(&t)));
    used += body_size(&t);
    int64_t dims[32];
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        int32_t v = (int32_t)get32(in, db + 4 * i);
        if (v < 0)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: negative matrix dimension %d", in->name, v);
        dims[i] = v;
        if (v && numel > UINT64_MAX / (uint64_t)v) numel = UINT64_MAX;
        else numel *= (uint64_t)v;
    }
    /* name */
    MLOC_TRY(read_tag(in, &t));
    used += 8;
    if (t.type != MI_INT8 && t.type != MI_UINT8)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: matrix name of type %u, expected miINT8",
                          in->name, t.type);
    char name[64];
    uint64_t keep = t.nbytes < sizeof name - 1 ? t.nbytes : sizeof name - 1;
    if (t.small) {
        memcpy(name, t.data, keep);
    } else {
        if (used + body_size(&t) > nbytes)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: matrix name overruns its element", in->name);
        uint8_t nb[sizeof name];
        MLOC_TRY(in_read(in, nb, keep));
        memcpy(name, nb, keep);
        MLOC_TRY(in_skip(in, body_size(&t) - keep));
        used += body_size(&t);
    }
    name[keep] = 0;
    int is_x = strcmp(name, "X") == 0, is_y = strcmp(name, "y") == 0;
    if (!is_x && !is_y) return MLOC_OK;
    if ((is_x && out->x) || (is_y && out->y))
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: variable %s appears twice", in->name, name);
    if (cls < MX_DOUBLE || cls > MX_UINT64 || complex)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: variable %s is a %s array, expected a real numeric array",
                          in->name, name,
                          complex ? "complex" : cls == MX_CELL ? "cell" : cls == MX_STRUCT ? "struct"
                          : cls == MX_SPARSE ? "sparse" : cls == MX_CHAR ? "char" : cls == MX_OBJECT ? "object"
                          : "non-numeric");
    /* real part */
    MLOC_TRY(read_tag(in, &t));
    used += 8;
    int sz = mi_size(t.type);
    if (!sz)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %s stored as mi type %u, expected a numeric type",
                          in->name, name, t.type);
    if (t.nbytes % (uint32_t)sz || t.nbytes / (uint32_t)sz != numel)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: %s holds %u bytes of mi type %u, expected %llu elements for its "
                          "dimensions",
                          in->name, name, t.nbytes, t.type, (unsigned long long)numel);
    if (!t.small && used + t.nbytes > nbytes)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %s data overruns its matrix element", in->name,
                          name);
    if (t.nbytes > budget)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %s announces %u bytes, more than the file holds",
                          in->name, name, t.nbytes);
    if (is_x) {
        int64_t n = ndim == 4 ? dims[3] : 1;
        if (ndim < 3 || ndim > 4 || dims[0] != SIDE || dims[1] != SIDE || dims[2] != 3 || n < 1)
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s: X has %d dimensions [%lld, %lld, %lld%s], expected 32 x 32 x 3 x N",
                              in->name, ndim, (long long)dims[0], (long long)dims[1],
                              ndim > 2 ? (long long)dims[2] : 0LL, ndim > 3 ? ", ..." : "");
        out->x = malloc((size_t)numel);
        if (!out->x) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory for X", in->name);
        out->nx = n;
        if (t.small) {
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: X is too small to hold an image", in->name);
        }
        return read_values(in, t.type, numel, 0, 255, out->x, NULL, "X");
    }
    int vec = ndim == 2 && (dims[0] == 1 || dims[1] == 1);
    if (!vec)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: y has %d dimensions, expected N x 1", in->name, ndim);
    out->y = malloc(((size_t)numel + 1) * sizeof *out->y);
    if (!out->y) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory for y", in->name);
    out->ny = (int64_t)numel;
    if (t.small) {
        /* up to 4 bytes of data inside the tag */
        mat_in tmp = *in;
        tmp.fp = NULL;
        tmp.inflating = 0;
        tmp.mem = t.data;
        tmp.size = 4;
        tmp.pos = 0;
        return read_values(&tmp, t.type, numel, 1, 10, NULL, out->y, "y");
    }
    return read_values(in, t.type, numel, 1, 10, NULL, out->y, "y");
}

static mloc_status start_inflate(mat_in *in, uint64_t nbytes) {
    memset(&in->z, 0, sizeof in->z);
    if (inflateInit(&in->z) != Z_OK)
        return mloc_error(in->ctx, MLOC_ERR_NOMEM, "%s: cannot initialise zlib", in->name);
    in->inflating = 1;
    in->zdone = 0;
    in->zleft = nbytes;
    in->zbudget = nbytes * DEFLATE_MAX_RATIO + 1024;
    return MLOC_OK;
}

static void end_inflate(mat_in *in) {
    if (in->inflating) inflateEnd(&in->z);
    in->inflating = 0;
}

static mloc_status parse_file(mat_in *in, svhn_parts *out) {
    mloc_ctx *ctx = in->ctx;
    uint8_t h[128];
    if (in->size < 128)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %llu bytes, too short for a MAT-file header (128)",
                          in->name, (unsigned long long)in->size);
    MLOC_TRY(raw_read(in, h, 128));
    if (memcmp(h, "MATLAB 7.3", 10) == 0 || memcmp(h, "\x89HDF", 4) == 0)
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: a MATLAB 7.3 (HDF5) file, expected MAT v5 (re-save it in MATLAB "
                          "with save(..., '-v7'))",
                          in->name);
    if (h[126] == 'I' && h[127] == 'M')
        in->swap = 0;
    else if (h[126] == 'M' && h[127] == 'I')
        in->swap = 1;
    else
        return mloc_error(ctx, MLOC_ERR_DATA,
                          "%s: endian indicator 0x%02x%02x at offset 126, expected 'IM' or 'MI' "
                          "(not a MAT v5 file)",
                          in->name, h[126], h[127]);
    unsigned version = in->swap ? (unsigned)h[124] << 8 | h[125] : (unsigned)h[125] << 8 | h[124];
    if (version != 0x0100)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: MAT version 0x%04x, expected 0x0100 (v5)",
                          in->name, version);
    while (in->pos < in->size && !(out->x && out->y)) {
        uint64_t start = in->pos;
        if (in->size - start < 8)
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: %llu stray bytes at offset %llu, expected an "
                              "element tag", in->name, (unsigned long long)(in->size - start),
                              (unsigned long long)start);
        mat_tag t;
        MLOC_TRY(read_tag(in, &t));
        if (t.small) continue;
        if (t.nbytes > in->size - in->pos)
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s: element at offset %llu announces %u bytes, only %llu remain "
                              "(truncated)",
                              in->name, (unsigned long long)start, t.nbytes,
                              (unsigned long long)(in->size - in->pos));
        uint64_t body = in->pos, end;
        mloc_status st = MLOC_OK;
        if (t.type == MI_COMPRESSED) {
            end = body + t.nbytes; /* no padding after compressed elements */
            MLOC_TRY(start_inflate(in, t.nbytes));
            mat_tag inner;
            st = read_tag(in, &inner);
            if (st == MLOC_OK && inner.type == MI_MATRIX && !inner.small)
                st = parse_matrix(in, inner.nbytes, in->zbudget, out);
            end_inflate(in);
        } else if (t.type == MI_MATRIX) {
            end = body + pad8(t.nbytes);
            st = parse_matrix(in, t.nbytes, t.nbytes, out);
        } else {
            end = body + pad8(t.nbytes);
        }
        if (st != MLOC_OK) return st;
        if (end > in->size) end = in->size; /* the last element's padding may be missing */
        MLOC_TRY(raw_seek(in, end));
    }
    if (!out->x || !out->y)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: no variable '%s', expected X (32x32x3xN) and y (N)",
                          in->name, out->x ? "y" : "X");
    if (out->nx != out->ny)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: X holds %lld images but y %lld labels", in->name,
                          (long long)out->nx, (long long)out->ny);
    return MLOC_OK;
}

static mloc_status finish(mloc_ctx *ctx, mloc_dataset *d, svhn_parts *p) {
    MLOC_TRY(data_alloc(ctx, d, p->nx, SIDE, SIDE, 3, 0));
    for (int64_t n = 0; n < p->nx; n++) {
        const uint8_t *src = p->x + (size_t)n * IMAGE;
        uint8_t *dst = d->pixels + (size_t)n * IMAGE;
        for (int c = 0; c < 3; c++)
            for (int w = 0; w < SIDE; w++)
                for (int h = 0; h < SIDE; h++)
                    dst[(h * SIDE + w) * 3 + c] = src[c * SIDE * SIDE + w * SIDE + h];
        d->labels[n] = p->y[n] == 10 ? 0 : p->y[n];
    }
    static const char *const names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    return data_set_names(ctx, d, names, 10);
}

static mloc_status read_svhn(mloc_ctx *ctx, mloc_dataset *d, mat_in *in) {
    svhn_parts p = {0};
    in->zin = in->fp ? malloc(ZIN_SIZE) : NULL;
    mloc_status st = (in->fp && !in->zin) ? mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory")
                                          : parse_file(in, &p);
    end_inflate(in);
    if (st == MLOC_OK) st = finish(ctx, d, &p);
    free(in->zin);
    free(p.x);
    free(p.y);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}

mloc_status mloc_svhn_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *bytes, size_t size,
                                  const char *label) {
    memset(d, 0, sizeof *d);
    mat_in *in = calloc(1, sizeof *in);
    if (!in) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    in->ctx = ctx;
    in->name = label;
    in->mem = bytes;
    in->size = size;
    mloc_status st = read_svhn(ctx, d, in);
    free(in);
    return st;
}

mloc_status data_open_svhn(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s) {
    char *path = NULL;
    if (data_dir_exists(s->path))
        path = data_strdupf("%s/%s_32x32.mat", s->path, s->split ? s->split : "train");
    else if (s->split)
        return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: no such directory (svhn:DIR:%s)", s->path,
                          s->split);
    else
        path = strdup(s->path);
    if (!path) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mat_in *in = calloc(1, sizeof *in);
    FILE *f = fopen(path, "rb");
    mloc_status st = MLOC_OK;
    if (!in) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    } else if (!f) {
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s (fetch it with 'memloc data "
                        "fetch svhn DIR')", path, strerror(errno));
    } else {
        fseeko(f, 0, SEEK_END);
        in->ctx = ctx;
        in->name = path;
        in->fp = f;
        in->size = (uint64_t)ftello(f);
        fseeko(f, 0, SEEK_SET);
        st = read_svhn(ctx, d, in);
        if (st == MLOC_OK) mloc_progress(ctx, "data", d->n, d->n, "");
    }
    if (f) fclose(f);
    free(in);
    free(path);
    return st;
}
