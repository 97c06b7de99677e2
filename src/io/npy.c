/* NumPy .npy files (numpy/lib/format.py, "NEP 1"):
 *
 *   "\x93NUMPY" major minor, header length (uint16 LE for 1.0, uint32 LE
 *   for 2.0 and 3.0), then an ASCII Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *   padded with spaces and a final '\n' so the data starts at a multiple of
 *   64 bytes, then the raw array data.
 *
 * The writer produces exactly what numpy 1.24's np.save writes for the same
 * array (including the spare spaces numpy leaves for growing axis 0); the
 * reader accepts any key order and quoting numpy's own reader accepts for
 * the dtypes memloc uses. */
#include "memloc/io.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define ARRAY_ALIGN 64
#define GROWTH_AXIS_MAX_DIGITS 21 /* numpy's spare room to grow axis 0 */

static const struct {
    mloc_dtype dtype;
    const char *descr;
} descrs[] = {
    {MLOC_DTYPE_F32, "<f4"}, {MLOC_DTYPE_F64, "<f8"}, {MLOC_DTYPE_I64, "<i8"},
    {MLOC_DTYPE_I32, "<i4"}, {MLOC_DTYPE_U8, "|u1"},
};
#define N_DESCRS ((int)(sizeof descrs / sizeof descrs[0]))

mloc_status mloc_npy_write(mloc_ctx *ctx, const char *path, mloc_dtype dtype, int ndim,
                           const int64_t *shape, const void *data) {
    const char *descr = NULL;
    for (int i = 0; i < N_DESCRS; i++)
        if (descrs[i].dtype == dtype) descr = descrs[i].descr;
    if (!descr || ndim < 0 || ndim > MLOC_MAX_DIMS)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: cannot write dtype %s with %d dims as .npy",
                          path, mloc_dtype_name(dtype), ndim);
    /* The dict as numpy writes it: sorted keys, repr() of the shape tuple. */
    char header[512];
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descr);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        len += snprintf(header + len, sizeof header - (size_t)len, d ? ", %lld" : "%lld",
                        (long long)shape[d]);
        numel *= shape[d];
    }
    len += snprintf(header + len, sizeof header - (size_t)len, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        char digits[32];
        int spare = GROWTH_AXIS_MAX_DIGITS - snprintf(digits, sizeof digits, "%lld",
                                                      (long long)shape[0]);
        for (; spare > 0; spare--) header[len++] = ' ';
    }
    /* Pad with spaces and '\n' to a multiple of 64; numpy pads a full 64
     * when the header is already aligned. */
    int hlen = len + 1;
    int pad = ARRAY_ALIGN - (MAGIC_LEN + 4 + hlen) % ARRAY_ALIGN;
    memset(header + len, ' ', (size_t)pad);
    header[len + pad] = '\n';
    hlen += pad;
    unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                                (unsigned char)(hlen >> 8)};
    size_t nbytes = (size_t)numel * mloc_dtype_size(dtype);
    mloc_atomic_file af;
    MLOC_TRY(mloc_atomic_open(ctx, &af, path));
    if (fwrite(prefix, 1, 10, af.fp) != 10 || fwrite(header, 1, (size_t)hlen, af.fp) != (size_t)hlen ||
        (nbytes && fwrite(data, 1, nbytes, af.fp) != nbytes)) {
        mloc_atomic_abort(&af);
        return mloc_error(ctx, MLOC_ERR_IO, "%s: write failed", path);
    }
    return mloc_atomic_commit(ctx, &af);
}

/* ---- reading: a tiny parser for the header's Python literal --------------- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string ('...' or "...", no escapes) into buf. */
static int parse_str(cursor *c, char *buf, size_t cap) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    buf[n] = 0;
    return 1;
}

static int parse_word(cursor *c, const char *w) {
    skip_space(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* A tuple of non-negative integers: (), (3,), (2, 3) or (2, 3,). */
static int parse_shape(cursor *c, int *ndim, int64_t *shape) {
    if (!eat(c, '(')) return 0;
    *ndim = 0;
    for (;;) {
        if (eat(c, ')')) return 1;
        skip_space(c);
        if (c->p >= c->end || !isdigit((unsigned char)*c->p) || *ndim == MLOC_MAX_DIMS) return 0;
        int64_t v = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p)) {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *c->p - '0', &v))
                return 0;
            c->p++;
        }
        shape[(*ndim)++] = v;
        if (!eat(c, ',')) return eat(c, ')');
    }
}

mloc_status mloc_npy_read_memory(mloc_ctx *ctx, const void *bytes, size_t size,
                                 const char *label, mloc_dtype *dtype, int *ndim,
                                 int64_t *shape, void **data) {
    *data = NULL;
    const unsigned char *b = bytes;
    if (size < 10)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: truncated: %zu bytes, shorter than a .npy "
                          "header", label, size);
    if (memcmp(b, MAGIC, MAGIC_LEN) != 0)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: not a .npy file (no \\x93NUMPY magic)", label);
    if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: .npy format version %d.%d (memloc "
                          "reads 1.0, 2.0 and 3.0)", label, b[6], b[7]);
    size_t pre = b[6] == 1 ? 10 : 12;
    if (size < pre)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: truncated .npy header", label);
    size_t hlen = b[8] | (size_t)b[9] << 8;
    if (pre == 12) hlen |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hlen > size - pre)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: header length %zu exceeds the file size "
                          "(%zu bytes)", label, hlen, size);

    char descr[16], key[32];
    int fortran = -1, have_descr = 0, have_shape = 0;
    cursor c = {(const char *)b + pre, (const char *)b + pre + hlen};
    if (!eat(&c, '{')) goto bad_header;
    for (;;) {
        if (eat(&c, '}')) break;
        if (!parse_str(&c, key, sizeof key) || !eat(&c, ':')) goto bad_header;
        if (strcmp(key, "descr") == 0 && parse_str(&c, descr, sizeof descr)) {
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && parse_word(&c, "False")) {
            fortran = 0;
        } else if (strcmp(key, "fortran_order") == 0 && parse_word(&c, "True")) {
            fortran = 1;
        } else if (strcmp(key, "shape") == 0 && parse_shape(&c, ndim, shape)) {
            have_shape = 1;
        } else {
            goto bad_header;
        }
        if (eat(&c, ',')) continue;
        if (eat(&c, '}')) break;
        goto bad_header;
    }
    skip_space(&c);
    if (c.p != c.end || !have_descr || !have_shape || fortran < 0) goto bad_header;
    if (fortran)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: Fortran-order array (memloc reads C "
                          "order)", label);
    int k = -1;
    for (int i = 0; i < N_DESCRS; i++)
        if (strcmp(descr, descrs[i].descr) == 0 ||
            (descrs[i].dtype == MLOC_DTYPE_U8 && strcmp(descr, "<u1") == 0))
            k = i;
    if (k < 0)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "%s: dtype '%s' (memloc reads <f4, <f8, "
                          "<i8, <i4, |u1)", label, descr);
    *dtype = descrs[k].dtype;

    uint64_t numel = 1, nbytes;
    for (int d = 0; d < *ndim; d++)
        if (__builtin_mul_overflow(numel, (uint64_t)shape[d], &numel))
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: shape overflows", label);
    if (__builtin_mul_overflow(numel, (uint64_t)mloc_dtype_size(*dtype), &nbytes) ||
        nbytes != size - pre - hlen)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: %zu data bytes, but the shape and dtype '%s' "
                          "need %llu", label, size - pre - hlen, descr,
                          (unsigned long long)nbytes);
    void *out = malloc(nbytes ? (size_t)nbytes : 1);
    if (!out) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory", label);
    if (nbytes) memcpy(out, b + pre + hlen, (size_t)nbytes);
    *data = out;
    return MLOC_OK;

bad_header:
    return mloc_error(ctx, MLOC_ERR_DATA, "%s: malformed .npy header (expected a dict of "
                      "'descr', 'fortran_order' and 'shape')", label);
}

mloc_status mloc_npy_read(mloc_ctx *ctx, const char *path, mloc_dtype *dtype, int *ndim,
                          int64_t *shape, void **data) {
    *data = NULL;
    void *bytes;
    size_t size;
    MLOC_TRY(mloc_read_file(ctx, path, &bytes, &size));
    mloc_status st = mloc_npy_read_memory(ctx, bytes, size, path, dtype, ndim, shape, data);
    free(bytes);
    return st;
}
