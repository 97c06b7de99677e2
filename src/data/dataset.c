/* The in-memory dataset: allocation, opening a spec, subsets, fitting
 * (pad / resize / channel conversion), class counts and the checksum. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/internal.h"

/* ---- small helpers -------------------------------------------------------- */

char *data_strdupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int data_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int data_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

mloc_status data_read_file(mloc_ctx *ctx, const char *path, uint8_t **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    mloc_status st = MLOC_OK;
    uint8_t *p = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: not a regular file", path);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    p = malloc(n + 1);
    if (!p) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
        goto done;
    }
    if (n && fread(p, 1, n, f) != n) {
        st = mloc_error(ctx, MLOC_ERR_IO, "%s: short read (expected %zu bytes)", path, n);
        goto done;
    }
    p[n] = 0;
    *buf = p;
    *size = n;
    p = NULL;
done:
    free(p);
    fclose(f);
    return st;
}

mloc_status data_write_atomic(mloc_ctx *ctx, const char *path, const void *bytes, size_t size) {
    char *tmp = data_strdupf("%s.tmp.%d", path, (int)getpid());
    if (!tmp) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory", path);
    mloc_status st = MLOC_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    int bad = size && fwrite(bytes, 1, size, f) != size;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) {
        st = mloc_error(ctx, MLOC_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot rename into place: %s", path,
                        strerror(errno));
        unlink(tmp);
    }
done:
    free(tmp);
    return st;
}

/* ---- allocation ------------------------------------------------------------ */

static void free_strings(char **v, int64_t n) {
    if (!v) return;
    for (int64_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void mloc_dataset_free(mloc_dataset *d) {
    if (!d) return;
    mloc_free(d->pixels);
    free(d->labels);
    free(d->coarse);
    free_strings(d->class_names, d->n_classes);
    free(d->spec);
    free_strings(d->sources, d->n);
    free(d->index);
    free(d->prep);
    memset(d, 0, sizeof *d);
}

mloc_status data_alloc(mloc_ctx *ctx, mloc_dataset *d, int64_t n, int h, int w, int c,
                       int with_coarse) {
    mloc_dataset_free(d);
    size_t npix = (size_t)n * (size_t)h * (size_t)w * (size_t)c;
    d->pixels = mloc_alloc(ctx, npix);
    d->labels = malloc(((size_t)n + 1) * sizeof *d->labels);
    if (with_coarse) d->coarse = malloc(((size_t)n + 1) * sizeof *d->coarse);
    if (!d->pixels || !d->labels || (with_coarse && !d->coarse)) {
        mloc_dataset_free(d);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for %lld images of %dx%dx%d",
                          (long long)n, h, w, c);
    }
    d->n = n;
    d->h = h;
    d->w = w;
    d->c = c;
    return MLOC_OK;
}

mloc_status data_set_names(mloc_ctx *ctx, mloc_dataset *d, const char *const *names, int k) {
    free_strings(d->class_names, d->n_classes);
    d->class_names = calloc((size_t)k + 1, sizeof *d->class_names);
    d->n_classes = 0;
    if (!d->class_names) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for class names");
    d->n_classes = k;
    for (int i = 0; i < k; i++) {
        d->class_names[i] = names ? strdup(names[i]) : data_strdupf("%d", i);
        if (!d->class_names[i]) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for class names");
    }
    return MLOC_OK;
}

mloc_status data_load_names(mloc_ctx *ctx, mloc_dataset *d, const char *path, int k) {
    if (!data_file_exists(path)) return MLOC_OK;
    uint8_t *buf;
    size_t size;
    MLOC_TRY(data_read_file(ctx, path, &buf, &size));
    const char **names = calloc((size_t)k, sizeof *names);
    if (!names) {
        free(buf);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    }
    int found = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)buf, "\n", &save); line && found < k;
         line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        if (len) names[found++] = line;
    }
    mloc_status st;
    if (found < k)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: %d class names, expected %d (one per line)", path,
                        found, k);
    else
        st = data_set_names(ctx, d, names, k);
    free(names);
    free(buf);
    return st;
}

/* ---- pad / resize / channels ------------------------------------------------ */

static mloc_status append_prep(mloc_ctx *ctx, mloc_dataset *d, const char *what) {
    char *s = d->prep ? data_strdupf("%s; %s", d->prep, what) : strdup(what);
    if (!s) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    free(d->prep);
    d->prep = s;
    return MLOC_OK;
}

static mloc_status replace_pixels(mloc_ctx *ctx, mloc_dataset *d, int h, int w, int c,
                                  uint8_t **out) {
    *out = mloc_alloc(ctx, (size_t)d->n * h * w * c);
    if (!*out) return MLOC_ERR_NOMEM;
    return MLOC_OK;
}

mloc_status data_apply_fit(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_options *opt) {
    char what[256];
    if (opt->fit != MLOC_FIT_NONE) {
        int s = opt->size;
        if (s <= 0 || s > 8192)
            return mloc_error(ctx, MLOC_ERR_USAGE, "%s: fit size %d, expected 1..8192", d->spec, s);
        if (d->h != s || d->w != s) {
            uint8_t *np;
            if (opt->fit == MLOC_FIT_PAD) {
                if (d->h > s || d->w > s)
                    return mloc_error(ctx, MLOC_ERR_USAGE,
                                      "%s: cannot pad %dx%d images to %dx%d (use resize)",
                                      d->spec, d->h, d->w, s, s);
                MLOC_TRY(replace_pixels(ctx, d, s, s, d->c, &np));
                int top = (s - d->h) / 2, left = (s - d->w) / 2;
                size_t row = (size_t)d->w * d->c;
                for (int64_t i = 0; i < d->n; i++)
                    for (int y = 0; y < d->h; y++)
                        memcpy(np + (((size_t)i * s + top + y) * s + left) * d->c,
                               d->pixels + ((size_t)i * d->h + y) * row, row);
                snprintf(what, sizeof what,
                         "pad %dx%d -> %dx%d (zero; top %d, left %d, bottom %d, right %d)", d->h,
                         d->w, s, s, top, left, s - d->h - top, s - d->w - left);
            } else {
                MLOC_TRY(replace_pixels(ctx, d, s, s, d->c, &np));
                size_t in = (size_t)d->h * d->w * d->c, out = (size_t)s * s * d->c;
                for (int64_t i = 0; i < d->n; i++)
                    if (!data_resize_bilinear(d->pixels + i * in, d->h, d->w, d->c, np + i * out, s,
                                              s)) {
                        mloc_free(np);
                        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory resizing images");
                    }
                snprintf(what, sizeof what, "resize %dx%d -> %dx%d (PIL bilinear)", d->h, d->w, s,
                         s);
            }
            mloc_free(d->pixels);
            d->pixels = np;
            d->h = d->w = s;
            MLOC_TRY(append_prep(ctx, d, what));
        }
    }
    if (opt->channels != 0 && opt->channels != d->c) {
        size_t hw = (size_t)d->n * d->h * d->w;
        uint8_t *np;
        if (opt->channels == 3 && d->c == 1) {
            MLOC_TRY(replace_pixels(ctx, d, d->h, d->w, 3, &np));
            for (size_t i = 0; i < hw; i++) np[3 * i] = np[3 * i + 1] = np[3 * i + 2] = d->pixels[i];
            snprintf(what, sizeof what, "gray -> RGB (replicated)");
        } else if (opt->channels == 1 && d->c == 3) {
            MLOC_TRY(replace_pixels(ctx, d, d->h, d->w, 1, &np));
            /* PIL convert("L"): ITU-R 601-2 luma in 16-bit fixed point (FORMATS.md 3.3). */
            for (size_t i = 0; i < hw; i++) {
                const uint8_t *p = d->pixels + 3 * i;
                np[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
            }
            snprintf(what, sizeof what, "RGB -> gray (PIL L)");
        } else {
            return mloc_error(ctx, MLOC_ERR_USAGE, "%s: channels %d, expected 0, 1 or 3", d->spec,
                              opt->channels);
        }
        mloc_free(d->pixels);
        d->pixels = np;
        d->c = opt->channels;
        MLOC_TRY(append_prep(ctx, d, what));
    }
    return MLOC_OK;
}

/* ---- options, open ------------------------------------------------------------ */

mloc_dataset_options mloc_dataset_options_default(void) {
    mloc_dataset_options o;
    memset(&o, 0, sizeof o);
    o.fit = MLOC_FIT_NONE;
    return o;
}

static mloc_status open_kind(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s,
                             const mloc_dataset_options *opt) {
    switch (s->kind) {
    case MLOC_DS_CIFAR10:
    case MLOC_DS_CIFAR100: return data_open_cifar(ctx, d, s);
    case MLOC_DS_MNIST:
    case MLOC_DS_FMNIST: return data_open_idx(ctx, d, s);
    case MLOC_DS_STL10: return data_open_stl10(ctx, d, s);
    case MLOC_DS_SVHN: return data_open_svhn(ctx, d, s);
    case MLOC_DS_FOLDER: return data_open_folder(ctx, d, s, opt);
    case MLOC_DS_SYNTHETIC: return data_open_synthetic(ctx, d, s);
    case MLOC_DS_COUNT: break;
    }
    return mloc_error(ctx, MLOC_ERR_INTERNAL, "unknown dataset kind %d", (int)s->kind);
}

mloc_status mloc_dataset_open(mloc_ctx *ctx, mloc_dataset *d, const char *spec,
                              const mloc_dataset_options *opt) {
    memset(d, 0, sizeof *d);
    mloc_dataset_options defaults = mloc_dataset_options_default();
    if (!opt) opt = &defaults;
    mloc_dataset_spec s;
    mloc_dataset full;
    memset(&full, 0, sizeof full);
    int64_t *idx = NULL, count = 0;
    MLOC_TRY(mloc_dataset_spec_parse(ctx, &s, spec));
    mloc_status st = MLOC_OK;
    const char *indices = s.indices;
    if (opt->indices && indices) {
        st = mloc_error(ctx, MLOC_ERR_USAGE,
                        "%s: indices given both after '@' and as an option; use one", spec);
        goto done;
    }
    if (opt->indices) indices = opt->indices;
    st = open_kind(ctx, &full, &s, opt);
    if (st != MLOC_OK) goto done;
    /* The canonical spec names the whole split; a subset appends "@...". */
    char *saved = s.indices;
    s.indices = NULL;
    free(full.spec);
    full.spec = mloc_dataset_spec_format(&s);
    s.indices = saved;
    if (!full.spec) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (indices) {
        st = mloc_indices_parse(ctx, indices, full.n, &idx, &count);
        if (st != MLOC_OK) {
            mloc_error_prefix(ctx, st, "%s", full.spec);
            goto done;
        }
        st = mloc_dataset_subset(ctx, d, &full, idx, count);
        if (st != MLOC_OK) goto done;
        if (strncmp(indices, "shuffle", 7) == 0) {
            /* a seeded permutation names itself better than its index list */
            char *named = data_strdupf("%s@%s", full.spec, indices);
            if (!named) {
                st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
                goto done;
            }
            free(d->spec);
            d->spec = named;
        }
    } else {
        *d = full;
        memset(&full, 0, sizeof full);
    }
    st = data_apply_fit(ctx, d, opt);
done:
    if (st != MLOC_OK) mloc_dataset_free(d);
    mloc_dataset_free(&full);
    free(idx);
    mloc_dataset_spec_free(&s);
    return st;
}

/* ---- subsets ---------------------------------------------------------------- */

mloc_status mloc_dataset_subset(mloc_ctx *ctx, mloc_dataset *out, const mloc_dataset *d,
                                const int64_t *idx, int64_t count) {
    memset(out, 0, sizeof *out);
    for (int64_t i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= d->n)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "%s: index %lld out of range: the dataset has %lld images (0..%lld)",
                              d->spec ? d->spec : "dataset", (long long)idx[i], (long long)d->n,
                              (long long)d->n - 1);
    mloc_status st = data_alloc(ctx, out, count, d->h, d->w, d->c, d->coarse != NULL);
    if (st != MLOC_OK) return st;
    char *text = NULL;
    out->index = malloc(((size_t)count + 1) * sizeof *out->index);
    if (!out->index) goto nomem;
    size_t img = (size_t)d->h * d->w * d->c;
    for (int64_t i = 0; i < count; i++) {
        memcpy(out->pixels + (size_t)i * img, d->pixels + (size_t)idx[i] * img, img);
        out->labels[i] = d->labels[idx[i]];
        if (d->coarse) out->coarse[i] = d->coarse[idx[i]];
        out->index[i] = d->index ? d->index[idx[i]] : idx[i];
    }
    st = data_set_names(ctx, out, (const char *const *)d->class_names, d->n_classes);
    if (st != MLOC_OK) goto fail;
    if (d->sources) {
        out->sources = calloc((size_t)count + 1, sizeof *out->sources);
        if (!out->sources) goto nomem;
        for (int64_t i = 0; i < count; i++)
            if (d->sources[idx[i]] && !(out->sources[i] = strdup(d->sources[idx[i]]))) goto nomem;
    }
    if (d->prep && !(out->prep = strdup(d->prep))) goto nomem;
    text = mloc_indices_format(out->index, count);
    if (!text) goto nomem;
    const char *base = d->spec ? d->spec : "dataset";
    const char *at = strchr(base, '@');
    int baselen = at ? (int)(at - base) : (int)strlen(base);
    out->spec = data_strdupf("%.*s@%s", baselen, base, text);
    if (!out->spec) goto nomem;
    free(text);
    return MLOC_OK;
nomem:
    st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for a subset of %lld images",
                    (long long)count);
fail:
    free(text);
    mloc_dataset_free(out);
    return st;
}

int64_t mloc_dataset_class_counts(const mloc_dataset *d, int64_t *counts) {
    int64_t unlabelled = 0;
    for (int k = 0; k < d->n_classes; k++) counts[k] = 0;
    for (int64_t i = 0; i < d->n; i++) {
        int32_t y = d->labels[i];
        if (y >= 0 && y < d->n_classes)
            counts[y]++;
        else
            unlabelled++;
    }
    return unlabelled;
}

void mloc_dataset_digest(const mloc_dataset *d, char hex[65]) {
    data_sha256 s;
    data_sha256_init(&s);
    static const char tag[] = "memloc.dataset/1";
    data_sha256_update(&s, tag, sizeof tag - 1);
    int64_t dims[4] = {d->n, d->h, d->w, d->c};
    for (int i = 0; i < 4; i++) {
        uint8_t le[8];
        for (int j = 0; j < 8; j++) le[j] = (uint8_t)((uint64_t)dims[i] >> (8 * j));
        data_sha256_update(&s, le, 8);
    }
    data_sha256_update(&s, d->pixels, (size_t)d->n * d->h * d->w * d->c);
    for (int64_t i = 0; i < d->n; i++) {
        uint32_t y = (uint32_t)d->labels[i];
        uint8_t le[4] = {(uint8_t)y, (uint8_t)(y >> 8), (uint8_t)(y >> 16), (uint8_t)(y >> 24)};
        data_sha256_update(&s, le, 4);
    }
    uint8_t out[32];
    data_sha256_final(&s, out);
    data_hex(out, 32, hex);
}
