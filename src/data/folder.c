/* torchvision ImageFolder (FORMATS.md 1.5): a directory of class folders, or
 * a .tar / .tar.gz of one read in place with libarchive in one streaming
 * pass (nothing is extracted to disk).
 *
 * Order, as torchvision 0.14's find_classes / make_dataset:
 *   classes  the immediate sub-directories of root (symlinks followed, files
 *            in root ignored), sorted by code point (strcmp on UTF-8);
 *   files    class by class; within a class, sorted(os.walk(...)): walk
 *            directories ordered by their path string, file names sorted
 *            within a directory; a file is kept if its lower-cased name ends
 *            with one of .jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp.
 * Hidden class folders are kept (with a warning), as torchvision does.
 *
 * In an archive, "root" is the archive's top level, or its single top-level
 * directory when every member lies inside one (a tarball of a directory);
 * PATH/SUBDIR selects a directory below that root (or below the top level).
 *
 * Images are decoded in parallel after the listing (data_decode_image, PIL's
 * convert("RGB")) and must all share one size, unless options.fit is
 * RESIZE, which resizes each image as it is decoded. A corrupt image is an
 * error naming it; with options.skip_corrupt it is skipped and listed in a
 * warning. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "data/internal.h"

#define MAX_DEPTH 64
#define MAX_MEMBER_BYTES ((int64_t)1 << 30)
#define SKIP_LIST_MAX 20

typedef struct {
    char *path;        /* dir: full path; tar: normalised member path */
    const char *rel;   /* into path: relative to root, "class/.../file" */
    const char *base;  /* into path: the file name */
    int cls;
    uint8_t *bytes;    /* tar: the member's bytes */
    size_t size;
    /* decode results */
    char *err;
    int bad;           /* 1 corrupt, 2 size mismatch */
    int h, w;
} item;

typedef struct {
    item *v;
    size_t n, cap;
} item_vec;

typedef struct {
    char **v;
    size_t n, cap;
} str_vec;

static int push_item(item_vec *a, const item *it) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        item *v = realloc(a->v, cap * sizeof *v);
        if (!v) return 0;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = *it;
    return 1;
}

static int push_str(str_vec *a, char *s) {
    if (!s) return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        char **v = realloc(a->v, cap * sizeof *v);
        if (!v) {
            free(s);
            return 0;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = s;
    return 1;
}

static void free_items(item_vec *a) {
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].path);
        free(a->v[i].bytes);
        free(a->v[i].err);
    }
    free(a->v);
    memset(a, 0, sizeof *a);
}

static void free_strs(str_vec *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_image_ext(const char *name) {
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp",
                                       ".pgm", ".tif",  ".tiff", ".webp", NULL};
    size_t n = strlen(name);
    for (int i = 0; exts[i]; i++) {
        size_t e = strlen(exts[i]);
        if (n < e) continue;
        int match = 1;
        for (size_t j = 0; j < e && match; j++) {
            char c = name[n - e + j];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            match = c == exts[i][j];
        }
        if (match) return 1;
    }
    return 0;
}

/* sorted(os.walk()) order within a class: directory path, then file name. */
static int cmp_item(const void *pa, const void *pb) {
    const item *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    size_t da = (size_t)(a->base - a->rel), db = (size_t)(b->base - b->rel);
    /* directory parts without their trailing '/' */
    size_t la = da ? da - 1 : 0, lb = db ? db - 1 : 0;
    size_t m = la < lb ? la : lb;
    int c = memcmp(a->rel, b->rel, m);
    if (c) return c;
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a->base, b->base);
}

static int find_class(char **names, int k, const char *name, size_t len) {
    int lo = 0, hi = k - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strncmp(names[mid], name, len);
        if (c == 0 && names[mid][len] != 0) c = 1;
        if (c == 0) return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* ---- decoding ---------------------------------------------------------------- */

static mloc_status item_bytes(mloc_ctx *ctx, item *it, uint8_t **buf, size_t *size, int *owned) {
    if (it->bytes || !it->rel) {
        *buf = it->bytes;
        *size = it->size;
        *owned = 0;
        return MLOC_OK;
    }
    *owned = 1;
    return data_read_file(ctx, it->path, buf, size);
}

/* Decode item i into dst (h x w x 3), resizing to fit_size if > 0.
 * Sets it->bad / it->err on failure; uses the thread's own context. */
static void decode_item(mloc_ctx *tctx, item *it, const char *label, const mloc_dataset_options *opt,
                        int fit_size, int want_h, int want_w, uint8_t *dst, int *resized) {
    uint8_t *buf = NULL, *rgb = NULL;
    size_t size = 0;
    int owned = 0, h = 0, w = 0;
    char *name = it->bytes || !it->rel ? data_strdupf("%s: member %s", label, it->path)
                                       : strdup(it->path);
    mloc_ctx_clear_error(tctx);
    mloc_status st = name ? item_bytes(tctx, it, &buf, &size, &owned)
                          : mloc_error(tctx, MLOC_ERR_NOMEM, "out of memory");
    if (st == MLOC_OK) st = data_decode_image(tctx, buf, size, name, opt->max_pixels, &rgb, &h, &w);
    if (st != MLOC_OK) {
        it->bad = 1;
        it->err = strdup(mloc_ctx_error(tctx));
    } else if (fit_size > 0) {
        if (h != fit_size || w != fit_size) {
            if (!data_resize_bilinear(rgb, h, w, 3, dst, fit_size, fit_size)) {
                it->bad = 1;
                it->err = data_strdupf("%s: out of memory resizing", name);
            }
            *resized = 1;
        } else {
            memcpy(dst, rgb, (size_t)h * w * 3);
        }
    } else if (want_h && (h != want_h || w != want_w)) {
        it->bad = 2;
    } else if (dst) {
        memcpy(dst, rgb, (size_t)h * w * 3);
    }
    it->h = h;
    it->w = w;
    if (owned) free(buf);
    free(rgb);
    free(name);
}

static mloc_status build(mloc_ctx *ctx, mloc_dataset *d, item_vec *items, char **classes, int k,
                         const char *label, const mloc_dataset_options *opt) {
    size_t n = items->n;
    item *v = items->v;
    int fit = opt->fit == MLOC_FIT_RESIZE ? opt->size : 0;
    if (opt->fit == MLOC_FIT_RESIZE && (opt->size <= 0 || opt->size > 8192))
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: resize size %d, expected 1..8192", label, opt->size);
    /* The first decodable image fixes the size. */
    size_t first = 0;
    int resized = 0;
    mloc_status st = MLOC_OK;
    for (; first < n; first++) {
        decode_item(ctx, &v[first], label, opt, 0, 0, 0, NULL, &resized);
        if (!v[first].bad) break;
        if (!opt->skip_corrupt) return mloc_error(ctx, MLOC_ERR_DATA, "%s", v[first].err ? v[first].err : "out of memory");
    }
    if (first == n)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: none of the %zu images could be decoded", label, n);
    int h = fit ? fit : v[first].h, w = fit ? fit : v[first].w;
    st = data_alloc(ctx, d, (int64_t)n, h, w, 3, 0);
    if (st != MLOC_OK) return st;
    size_t img = (size_t)h * w * 3;
    int threads = mloc_ctx_threads(ctx);
    /* one context per thread for error messages */
    mloc_ctx **tctx = calloc((size_t)threads, sizeof *tctx);
    if (!tctx) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_ctx_config cfg = *mloc_ctx_config_get(ctx);
    cfg.progress_fn = NULL;
    for (int t = 0; t < threads && st == MLOC_OK; t++)
        if (mloc_ctx_create(&tctx[t], &cfg) != MLOC_OK)
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    int64_t done = 0;
    int64_t first_i = (int64_t)first;
    if (st == MLOC_OK) {
#pragma omp parallel for schedule(dynamic, 32) num_threads(threads)
        for (int64_t i = first_i; i < (int64_t)n; i++) {
#ifdef _OPENMP
            int t = omp_get_thread_num();
#else
            int t = 0;
#endif
            if (mloc_ctx_interrupted(ctx)) continue;
            int rs = 0;
            decode_item(tctx[t], &v[i], label, opt, fit, fit ? 0 : h, w, d->pixels + (size_t)i * img,
                        &rs);
            if (rs) {
#pragma omp atomic write
                resized = 1;
            }
            int64_t now;
#pragma omp atomic capture
            now = ++done;
            if (t == 0 && (now & 255) == 0) mloc_progress(ctx, "data", now, (int64_t)(n - first), "decode");
        }
        mloc_progress(ctx, "data", (int64_t)(n - first), (int64_t)(n - first), "decode");
    }
    for (int t = 0; t < threads; t++) mloc_ctx_destroy(tctx[t]);
    free(tctx);
    if (st != MLOC_OK) return st;
    if (mloc_ctx_interrupted(ctx)) return mloc_error(ctx, MLOC_ERR_INTERRUPTED, "%s: interrupted", label);
    /* Report in dataset order: the first size mismatch or corrupt image. */
    int64_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].bad == 2)
            return mloc_error(ctx, MLOC_ERR_DATA,
                              "%s%s%s: image is %dx%d, expected %dx%d like %s (all images of a "
                              "dataset must share a size; resize them with --resize N)",
                              v[i].bytes ? label : "", v[i].bytes ? ": member " : "", v[i].path,
                              v[i].h, v[i].w, h, w, v[first].path);
        if (v[i].bad == 1) {
            if (!opt->skip_corrupt)
                return mloc_error(ctx, MLOC_ERR_DATA, "%s", v[i].err ? v[i].err : "out of memory");
            skipped++;
        }
    }
    /* Compact, fill labels and sources. */
    d->sources = calloc(n + 1, sizeof *d->sources);
    if (!d->sources) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    int64_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].bad) continue;
        if ((size_t)j != i) memmove(d->pixels + (size_t)j * img, d->pixels + i * img, img);
        d->labels[j] = v[i].cls;
        d->sources[j] = v[i].path;
        v[i].path = NULL;
        j++;
    }
    d->n = j;
    d->n_skipped = skipped;
    st = data_set_names(ctx, d, (const char *const *)classes, k);
    if (st != MLOC_OK) return st;
    if (skipped) {
        char list[4096] = "";
        size_t len = 0;
        int shown = 0;
        for (size_t i = 0; i < n && shown < SKIP_LIST_MAX; i++)
            if (v[i].bad == 1) {
                int m = snprintf(list + len, sizeof list - len, "%s%s", shown ? "; " : "",
                                 v[i].err ? v[i].err : "?");
                if (m < 0 || (size_t)m >= sizeof list - len) break;
                len += (size_t)m;
                shown++;
            }
        mloc_log(ctx, MLOC_LOG_WARN, "%s: skipped %lld corrupt image%s: %s%s", label,
                 (long long)skipped, skipped == 1 ? "" : "s", list,
                 skipped > shown ? " (and more)" : "");
    }
    if (resized) {
        char *p = data_strdupf("resize each image to %dx%d (PIL bilinear)", fit, fit);
        if (!p) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        free(d->prep);
        d->prep = p;
    }
    return MLOC_OK;
}

/* Sort items, check every class has an image, then decode. */
static mloc_status finish(mloc_ctx *ctx, mloc_dataset *d, item_vec *items, str_vec *classes,
                          const char *root, const mloc_dataset_options *opt, const char *label) {
    if (classes->n == 0)
        return mloc_error(ctx, MLOC_ERR_NOINPUT,
                          "%s: no class folders (expected ROOT/<class>/<image>, as torchvision's "
                          "ImageFolder)",
                          root);
    for (size_t i = 0; i < classes->n; i++)
        if (classes->v[i][0] == '.')
            mloc_log(ctx, MLOC_LOG_WARN,
                     "%s: hidden folder '%s' is a class (torchvision keeps it too); remove it if "
                     "unintended",
                     root, classes->v[i]);
    if (items->n > 1) qsort(items->v, items->n, sizeof *items->v, cmp_item);
    size_t *count = calloc(classes->n, sizeof *count);
    if (!count) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < items->n; i++) count[items->v[i].cls]++;
    for (size_t c = 0; c < classes->n; c++)
        if (!count[c]) {
            mloc_status st = mloc_error(
                ctx, MLOC_ERR_DATA,
                "%s/%s: class folder has no image files (expected .jpg .jpeg .png .ppm .bmp .pgm "
                ".tif .tiff .webp)",
                root, classes->v[c]);
            free(count);
            return st;
        }
    free(count);
    return build(ctx, d, items, classes->v, (int)classes->n, label, opt);
}

/* ---- directories --------------------------------------------------------------- */

static mloc_status walk(mloc_ctx *ctx, const char *dir, size_t root_len, int cls, int depth,
                        item_vec *items) {
    if (depth > MAX_DEPTH)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: directories nested more than %d deep (a symlink loop?)",
                          dir, MAX_DEPTH);
    DIR *dh = opendir(dir);
    if (!dh) return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open directory: %s", dir, strerror(errno));
    str_vec subdirs = {0};
    mloc_status st = MLOC_OK;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *path = data_strdupf("%s/%s", dir, e->d_name);
        if (!path) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            if (!push_str(&subdirs, path)) {
                st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
                break;
            }
            continue;
        }
        if (!has_image_ext(e->d_name)) {
            free(path);
            continue;
        }
        item it;
        memset(&it, 0, sizeof it);
        it.path = path;
        it.rel = path + root_len + 1;
        it.base = path + strlen(dir) + 1;
        it.cls = cls;
        if (!push_item(items, &it)) {
            free(path);
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            break;
        }
    }
    closedir(dh);
    for (size_t i = 0; i < subdirs.n && st == MLOC_OK; i++)
        st = walk(ctx, subdirs.v[i], root_len, cls, depth + 1, items);
    free_strs(&subdirs);
    return st;
}

static mloc_status read_dir(mloc_ctx *ctx, mloc_dataset *d, const char *root,
                            const mloc_dataset_options *opt) {
    DIR *dh = opendir(root);
    if (!dh) return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open directory: %s", root, strerror(errno));
    str_vec classes = {0};
    item_vec items = {0};
    mloc_status st = MLOC_OK;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *path = data_strdupf("%s/%s", root, e->d_name);
        struct stat sb;
        int isdir = path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
        free(path);
        if (isdir && !push_str(&classes, strdup(e->d_name))) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            break;
        }
    }
    closedir(dh);
    if (st == MLOC_OK && classes.n > 1) qsort(classes.v, classes.n, sizeof *classes.v, cmp_str);
    size_t root_len = strlen(root);
    for (size_t c = 0; c < classes.n && st == MLOC_OK; c++) {
        char *cdir = data_strdupf("%s/%s", root, classes.v[c]);
        st = cdir ? walk(ctx, cdir, root_len, (int)c, 0, &items)
                  : mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        free(cdir);
    }
    if (st == MLOC_OK) st = finish(ctx, d, &items, &classes, root, opt, root);
    free_items(&items);
    free_strs(&classes);
    return st;
}

/* ---- archives ---------------------------------------------------------------- */

typedef struct {
    char *path;  /* normalised */
    int is_dir;
    int has_bytes;
    size_t item;  /* index into items when has_bytes */
} member;

/* Strip "./" and "/" prefixes, collapse "//", drop a trailing "/". */
static char *normalise(const char *p) {
    char *s = malloc(strlen(p) + 1), *o = s;
    if (!s) return NULL;
    for (;;) {
        while (*p == '/') p++;
        if (p[0] == '.' && (p[1] == '/' || p[1] == 0)) {
            p += 1;
            continue;
        }
        break;
    }
    for (; *p; p++) {
        if (*p == '/' && (o == s || o[-1] == '/')) continue;
        *o++ = *p;
    }
    while (o > s && o[-1] == '/') o--;
    *o = 0;
    return s;
}

/* Does `path` lie under directory `prefix` ("" is the top level)? Returns
 * the part below it, or NULL. */
static const char *below(const char *path, const char *prefix) {
    size_t n = strlen(prefix);
    if (!n) return path;
    if (strncmp(path, prefix, n) != 0 || path[n] != '/') return NULL;
    return path + n + 1;
}

static int path_is_dir(member *m, size_t nm, const char *dir) {
    for (size_t i = 0; i < nm; i++)
        if (below(m[i].path, dir) || (m[i].is_dir && strcmp(m[i].path, dir) == 0)) return 1;
    return 0;
}

static mloc_status read_archive(mloc_ctx *ctx, mloc_dataset *d, struct archive *a, const char *label,
                                const char *subdir, const mloc_dataset_options *opt) {
    member *members = NULL;
    size_t nm = 0, cap = 0;
    item_vec items = {0};
    str_vec classes = {0};
    char *wrapper = NULL, *root = NULL, *root_label = NULL;
    int single_top = 1;
    mloc_status st = MLOC_OK;
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "%s: interrupted", label);
            goto done;
        }
        const char *raw = archive_entry_pathname(e);
        if (!raw) continue;
        mode_t type = archive_entry_filetype(e);
        if (type != AE_IFREG && type != AE_IFDIR) continue; /* symlinks, devices, hard links */
        if (type == AE_IFREG && archive_entry_hardlink(e)) continue;
        char *path = normalise(raw);
        if (!path) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!*path) {
            free(path);
            continue;
        }
        /* track the top-level directory */
        const char *slash = strchr(path, '/');
        size_t toplen = slash ? (size_t)(slash - path) : strlen(path);
        if (!slash && type == AE_IFREG) single_top = 0;
        if (!wrapper) {
            wrapper = strndup(path, toplen);
            if (!wrapper) {
                free(path);
                st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
                goto done;
            }
        } else if (strlen(wrapper) != toplen || strncmp(wrapper, path, toplen) != 0) {
            single_top = 0;
        }
        if (nm == cap) {
            cap = cap ? 2 * cap : 1024;
            member *mv = realloc(members, cap * sizeof *mv);
            if (!mv) {
                free(path);
                st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
                goto done;
            }
            members = mv;
        }
        member *m = &members[nm++];
        m->path = path;
        m->is_dir = type == AE_IFDIR;
        m->has_bytes = 0;
        if (type != AE_IFREG || !has_image_ext(path)) continue;
        /* keep the bytes of images that may belong to the dataset */
        if (subdir) {
            const char *second = slash ? slash + 1 : "";
            if (!below(path, subdir) && !below(second, subdir)) continue;
        }
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        if (size > MAX_MEMBER_BYTES) {
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: member %s: %lld bytes, more than 1 GiB", label, path,
                            (long long)size);
            goto done;
        }
        size_t cap_b = size >= 0 ? (size_t)size : 65536, got = 0;
        uint8_t *buf = malloc(cap_b + 1);
        if (!buf) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (;;) {
            if (got == cap_b) {
                if (size >= 0 || cap_b >= (size_t)MAX_MEMBER_BYTES) break;
                uint8_t *nb = realloc(buf, 2 * cap_b + 1);
                if (!nb) break;
                buf = nb;
                cap_b *= 2;
            }
            la_ssize_t k = archive_read_data(a, buf + got, cap_b - got);
            if (k < 0) {
                st = mloc_error(ctx, MLOC_ERR_DATA, "%s: member %s: %s", label, path,
                                archive_error_string(a) ? archive_error_string(a) : "read error");
                free(buf);
                goto done;
            }
            if (k == 0) break;
            got += (size_t)k;
        }
        item it;
        memset(&it, 0, sizeof it);
        it.bytes = buf;
        it.size = got;
        m->has_bytes = 1;
        m->item = items.n;
        if (!push_item(&items, &it)) {
            free(buf);
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (r != ARCHIVE_EOF) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: %s (a corrupt or truncated archive?)", label,
                        archive_error_string(a) ? archive_error_string(a) : "cannot read the archive");
        goto done;
    }
    if (!nm) {
        st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: empty archive (expected an ImageFolder tree)", label);
        goto done;
    }
    /* Choose the root. */
    if (single_top && !path_is_dir(members, nm, wrapper)) single_top = 0;
    if (subdir) {
        char *under = single_top ? data_strdupf("%s/%s", wrapper, subdir) : NULL;
        if (under && path_is_dir(members, nm, under)) {
            root = under;
        } else {
            free(under);
            if (path_is_dir(members, nm, subdir)) root = strdup(subdir);
        }
        if (!root) {
            st = mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: no directory '%s' in the archive%s%s%s", label,
                            subdir, single_top ? " (nor under its top-level directory '" : "",
                            single_top ? wrapper : "", single_top ? "')" : "");
            goto done;
        }
    } else {
        root = strdup(single_top ? wrapper : "");
    }
    if (!root) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Classes: first components of entries below root that are directories
     * or contain something. */
    for (size_t i = 0; i < nm; i++) {
        const char *rel = below(members[i].path, root);
        if (!rel || !*rel) continue;
        const char *slash = strchr(rel, '/');
        if (!slash && !members[i].is_dir) continue; /* a file in root */
        size_t len = slash ? (size_t)(slash - rel) : strlen(rel);
        if (!push_str(&classes, strndup(rel, len))) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (classes.n > 1) qsort(classes.v, classes.n, sizeof *classes.v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < classes.n; i++) {
        if (k && strcmp(classes.v[k - 1], classes.v[i]) == 0) {
            free(classes.v[i]);
            continue;
        }
        classes.v[k++] = classes.v[i];
    }
    classes.n = k;
    /* Items: images below root/<class>/; the others are dropped. */
    for (size_t i = 0; i < nm; i++) {
        if (!members[i].has_bytes) continue;
        item *it = &items.v[members[i].item];
        const char *rel = below(members[i].path, root);
        const char *slash = rel ? strchr(rel, '/') : NULL;
        if (!slash) {
            free(it->bytes);
            it->bytes = NULL;
            continue;
        }
        size_t off = (size_t)(rel - members[i].path);
        it->path = members[i].path;
        members[i].path = NULL;
        it->rel = it->path + off;
        it->base = strrchr(it->path, '/') + 1;
        it->cls = find_class(classes.v, (int)classes.n, it->rel, (size_t)(slash - rel));
    }
    {
        size_t j = 0;
        for (size_t i = 0; i < items.n; i++)
            if (items.v[i].bytes) items.v[j++] = items.v[i];
        items.n = j;
    }
    root_label = root[0] ? data_strdupf("%s: %s", label, root) : strdup(label);
    if (!root_label) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = finish(ctx, d, &items, &classes, root_label, opt, label);
done:
    for (size_t i = 0; i < nm; i++) free(members[i].path);
    free(members);
    free_items(&items);
    free_strs(&classes);
    free(wrapper);
    free(root);
    free(root_label);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}

static struct archive *new_reader(void) {
    struct archive *a = archive_read_new();
    if (!a) return NULL;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    return a;
}

mloc_status mloc_folder_read_memory(mloc_ctx *ctx, mloc_dataset *d, const void *bytes,
                                    size_t size, const char *subdir,
                                    const mloc_dataset_options *opt, const char *label) {
    memset(d, 0, sizeof *d);
    mloc_dataset_options defaults = mloc_dataset_options_default();
    if (!opt) opt = &defaults;
    struct archive *a = new_reader();
    if (!a) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_status st;
    if (archive_read_open_memory(a, bytes, size) != ARCHIVE_OK)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: cannot read as a tar archive: %s", label,
                        archive_error_string(a) ? archive_error_string(a) : "unknown format");
    else
        st = read_archive(ctx, d, a, label, subdir, opt);
    archive_read_free(a);
    return st;
}

mloc_status data_open_folder(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s,
                             const mloc_dataset_options *opt) {
    struct stat sb;
    if (stat(s->path, &sb) != 0)
        return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: %s (folder:PATH needs a directory or a .tar/.tar.gz)",
                          s->path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        if (!s->subdir) return read_dir(ctx, d, s->path, opt);
        char *p = data_strdupf("%s/%s", s->path, s->subdir);
        mloc_status st = p ? read_dir(ctx, d, p, opt) : mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        free(p);
        return st;
    }
    struct archive *a = new_reader();
    if (!a) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_status st;
    if (archive_read_open_filename(a, s->path, 1 << 20) != ARCHIVE_OK)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: cannot read as a tar archive: %s", s->path,
                        archive_error_string(a) ? archive_error_string(a) : "unknown format");
    else
        st = read_archive(ctx, d, a, s->path, s->subdir, opt);
    archive_read_free(a);
    return st;
}
