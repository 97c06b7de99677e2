/* Dataset spec strings and index lists (the grammar is in memloc/data.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"
#include "memloc/rng.h"

static const char *const kind_words[] = {
#define MLOC_X(name, word, text) word,
    MLOC_DATASET_KINDS(MLOC_X)
#undef MLOC_X
};

const char *mloc_dataset_kind_name(mloc_dataset_kind k) {
    return (unsigned)k < MLOC_DS_COUNT ? kind_words[k] : "unknown";
}

static const char spec_forms[] =
    "cifar10:DIR[:train|test], cifar100:DIR[:train|test], mnist[:DIR][:train|test], "
    "fmnist[:DIR][:train|test], stl10:DIR[:train|test|unlabeled], svhn:FILE, "
    "folder:PATH[/SUBDIR], synthetic:N[:HxWxC[:K]], each optionally followed by @INDICES";

void mloc_dataset_spec_free(mloc_dataset_spec *s) {
    if (!s) return;
    free(s->path);
    free(s->subdir);
    free(s->split);
    free(s->indices);
    memset(s, 0, sizeof *s);
}

/* Index text after '@': a file reference, shuffle[:N[:SEED]], or only
 * digits, ':', ',', '-', blanks. */
static int looks_like_indices(const char *t) {
    if (!*t) return 0;
    if (*t == '@') return t[1] != 0;
    if (strncmp(t, "shuffle", 7) == 0 && (t[7] == 0 || t[7] == ':')) t += 7;
    for (; *t; t++)
        if (!strchr("0123456789:,- \t", *t)) return 0;
    return 1;
}

/* If text ends with ":<word>" for one of words, cut it off and return the word. */
static const char *cut_split(char *text, const char *const *words) {
    char *colon = strrchr(text, ':');
    const char *tail = colon ? colon + 1 : text;
    for (int i = 0; words[i]; i++)
        if (strcmp(tail, words[i]) == 0) {
            if (colon)
                *colon = 0;
            else
                text[0] = 0;
            return words[i];
        }
    return NULL;
}

static int parse_int_strict(const char *s, long long lo, long long hi, long long *out) {
    if (!*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static mloc_status parse_synthetic(mloc_ctx *ctx, mloc_dataset_spec *s, char *rest,
                                   const char *text) {
    s->h = s->w = 32;
    s->c = 3;
    s->k = 10;
    char *shape = strchr(rest, ':');
    char *classes = NULL;
    if (shape) {
        *shape++ = 0;
        classes = strchr(shape, ':');
        if (classes) *classes++ = 0;
    }
    long long v;
    if (!parse_int_strict(rest, 0, 100000000, &v))
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: image count '%s', expected an integer 0..1e8",
                          text, rest);
    s->n = v;
    if (shape) {
        long long h, w, c;
        char *x1 = strchr(shape, 'x'), *x2 = x1 ? strchr(x1 + 1, 'x') : NULL;
        if (!x1 || !x2)
            return mloc_error(ctx, MLOC_ERR_USAGE, "%s: shape '%s', expected HxWxC (e.g. 32x32x3)",
                              text, shape);
        *x1 = *x2 = 0;
        if (!parse_int_strict(shape, 1, 4096, &h) || !parse_int_strict(x1 + 1, 1, 4096, &w) ||
            !parse_int_strict(x2 + 1, 1, 3, &c) || c == 2)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "%s: shape, expected HxWxC with H, W in 1..4096 and C 1 or 3", text);
        s->h = (int)h;
        s->w = (int)w;
        s->c = (int)c;
    }
    if (classes) {
        if (!parse_int_strict(classes, 1, 100000, &v))
            return mloc_error(ctx, MLOC_ERR_USAGE, "%s: class count '%s', expected 1..100000",
                              text, classes);
        s->k = (int)v;
    }
    if ((double)s->n * s->h * s->w * s->c > 17179869184.0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s: more than 16 GiB of pixels", text);
    return MLOC_OK;
}

/* "~/x" -> "$HOME/x": the shell does not expand a tilde inside "cifar10:~/d". */
static char *expand_home(const char *path) {
    const char *home = getenv("HOME");
    if (path[0] == '~' && (path[1] == '/' || path[1] == 0) && home && *home)
        return data_strdupf("%s%s", home, path + 1);
    return strdup(path);
}

/* folder:PATH[/SUBDIR]: an archive is recognised by its extension followed
 * by '/' or the end of the text. */
static mloc_status parse_folder(mloc_ctx *ctx, mloc_dataset_spec *s, const char *rest) {
    static const char *const exts[] = {".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar",
                                       NULL};
    const char *cut = NULL;
    for (const char *p = rest; *p && !cut; p++)
        for (int i = 0; exts[i]; i++) {
            size_t n = strlen(exts[i]);
            if (strncmp(p, exts[i], n) == 0 && (p[n] == '/' || p[n] == 0)) {
                cut = p + n;
                break;
            }
        }
    size_t plen = cut ? (size_t)(cut - rest) : strlen(rest);
    s->path = strndup(rest, plen);
    if (!s->path) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    if (cut && *cut == '/') {
        const char *sub = cut;
        while (*sub == '/') sub++;
        size_t n = strlen(sub);
        while (n && sub[n - 1] == '/') n--;
        if (n && !(s->subdir = strndup(sub, n))) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    }
    return MLOC_OK;
}

static mloc_status parse_raw(mloc_ctx *ctx, mloc_dataset_spec *s, const char *text) {
    memset(s, 0, sizeof *s);
    char *buf = strdup(text ? text : "");
    if (!buf) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_status st = MLOC_OK;
    for (char *at = strchr(buf, '@'); at; at = strchr(at + 1, '@'))
        if (looks_like_indices(at + 1)) {
            if (!(s->indices = strdup(at + 1))) goto nomem;
            *at = 0;
            break;
        }
    char *colon = strchr(buf, ':');
    char *rest = colon ? colon + 1 : buf + strlen(buf);
    if (colon) *colon = 0;
    int kind = -1;
    for (int k = 0; k < MLOC_DS_COUNT; k++)
        if (strcmp(buf, kind_words[k]) == 0) kind = k;
    if (kind < 0) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: unknown dataset '%s', expected one of %s", text,
                        buf, spec_forms);
        goto fail;
    }
    s->kind = (mloc_dataset_kind)kind;
    static const char *const tt[] = {"train", "test", NULL};
    static const char *const ttu[] = {"train", "test", "unlabeled", NULL};
    static const char *const tte[] = {"train", "test", "extra", NULL};
    const char *split = NULL;
    switch (s->kind) {
    case MLOC_DS_CIFAR10:
    case MLOC_DS_CIFAR100:
    case MLOC_DS_STL10:
        split = cut_split(rest, s->kind == MLOC_DS_STL10 ? ttu : tt);
        if (!*rest) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: %s needs a directory (%s:DIR[:train|test])",
                            text, buf, buf);
            goto fail;
        }
        if (!split) split = "train";
        break;
    case MLOC_DS_MNIST:
    case MLOC_DS_FMNIST:
        split = cut_split(rest, tt);
        if (!split) split = "train";
        if (!*rest) rest = s->kind == MLOC_DS_FMNIST ? MLOC_FMNIST_DEFAULT_DIR : MLOC_MNIST_DEFAULT_DIR;
        break;
    case MLOC_DS_SVHN:
        split = cut_split(rest, tte);
        if (!*rest) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: svhn needs a file (svhn:FILE)", text);
            goto fail;
        }
        break;
    case MLOC_DS_FOLDER:
        if (!*rest) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: folder needs a path (folder:PATH[/SUBDIR])",
                            text);
            goto fail;
        }
        {
            char *expanded = expand_home(rest);
            if (!expanded) goto nomem;
            st = parse_folder(ctx, s, expanded);
            free(expanded);
        }
        if (st != MLOC_OK) goto fail;
        break;
    case MLOC_DS_SYNTHETIC:
        if (!*rest) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: synthetic needs a count (synthetic:N[:HxWxC[:K]])",
                            text);
            goto fail;
        }
        st = parse_synthetic(ctx, s, rest, text);
        if (st != MLOC_OK) goto fail;
        break;
    case MLOC_DS_COUNT: break;
    }
    if (split && !(s->split = strdup(split))) goto nomem;
    if (s->kind != MLOC_DS_FOLDER && s->kind != MLOC_DS_SYNTHETIC && !(s->path = expand_home(rest)))
        goto nomem;
    free(buf);
    return MLOC_OK;
nomem:
    st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
fail:
    free(buf);
    mloc_dataset_spec_free(s);
    return st;
}

/* Parse, then require that the canonical spelling reads back the same: a
 * path holding '@' before index-like text (or "@@") would otherwise change
 * meaning when the spec is written to a run's config and read again. */
mloc_status mloc_dataset_spec_parse(mloc_ctx *ctx, mloc_dataset_spec *s, const char *text) {
    MLOC_TRY(parse_raw(ctx, s, text));
    char *a = mloc_dataset_spec_format(s), *b = NULL;
    mloc_dataset_spec again;
    memset(&again, 0, sizeof again);
    mloc_status st = a ? parse_raw(ctx, &again, a) : mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    if (st == MLOC_OK && !(b = mloc_dataset_spec_format(&again)))
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    if (st == MLOC_OK && strcmp(a, b) != 0)
        st = MLOC_ERR_USAGE;
    if (st != MLOC_OK) {
        if (st == MLOC_ERR_USAGE)
            mloc_error(ctx, st, "%s: ambiguous: '@' in the path reads as indices (rename the path or "
                       "give the indices with --indices)", text);
        mloc_dataset_spec_free(s);
    }
    mloc_dataset_spec_free(&again);
    free(a);
    free(b);
    return st;
}

char *mloc_dataset_spec_format(const mloc_dataset_spec *s) {
    char *base;
    const char *word = mloc_dataset_kind_name(s->kind);
    if (s->kind == MLOC_DS_SYNTHETIC)
        base = data_strdupf("%s:%lld:%dx%dx%d:%d", word, (long long)s->n, s->h, s->w, s->c, s->k);
    else if (s->kind == MLOC_DS_FOLDER)
        base = data_strdupf("%s:%s%s%s", word, s->path ? s->path : "", s->subdir ? "/" : "",
                            s->subdir ? s->subdir : "");
    else
        base = data_strdupf("%s:%s%s%s", word, s->path ? s->path : "", s->split ? ":" : "",
                            s->split ? s->split : "");
    if (!base || !s->indices) return base;
    char *full = data_strdupf("%s@%s", base, s->indices);
    free(base);
    return full;
}

/* ---- index lists ------------------------------------------------------------- */

typedef struct {
    int64_t *v;
    int64_t n, cap;
} index_vec;

static int vec_push(index_vec *a, int64_t x) {
    if (a->n == a->cap) {
        int64_t cap = a->cap ? 2 * a->cap : 64;
        int64_t *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 1;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* One bound of a range: empty means `dflt`; negative counts from n. */
static int parse_bound(const char *t, int64_t n, int64_t dflt, int64_t *out) {
    if (!*t) {
        *out = dflt;
        return 1;
    }
    long long v;
    if (!parse_int_strict(t, -(1LL << 62), 1LL << 62, &v)) return 0;
    *out = v < 0 ? n + v : v;
    return 1;
}

/* Parse a comma-separated list into a. On error writes the problem into
 * `why` and returns 0. */
static int parse_list(char *text, int64_t n, index_vec *a, char *why, size_t whylen) {
    char *save = NULL;
    int items = 0;
    for (char *item = strtok_r(text, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *t = trim(item);
        if (!*t) {
            snprintf(why, whylen, "empty item");
            return 0;
        }
        items++;
        char *c1 = strchr(t, ':');
        if (!c1) {
            int64_t i;
            if (!parse_bound(t, n, 0, &i)) {
                snprintf(why, whylen, "'%s' is not an index", t);
                return 0;
            }
            if (i < 0 || i >= n) {
                snprintf(why, whylen, "index %s out of range: the dataset has %lld images (0..%lld)",
                         t, (long long)n, (long long)n - 1);
                return 0;
            }
            if (!vec_push(a, i)) goto nomem;
            continue;
        }
        *c1 = 0;
        char *c2 = strchr(c1 + 1, ':');
        if (c2) *c2 = 0;
        int64_t lo, hi, step = 1;
        if (!parse_bound(trim(t), n, 0, &lo) || !parse_bound(trim(c1 + 1), n, n, &hi) ||
            (c2 && !parse_bound(trim(c2 + 1), n, 1, &step))) {
            snprintf(why, whylen, "'%s:%s%s%s' is not a range START:STOP[:STEP]", t, c1 + 1,
                     c2 ? ":" : "", c2 ? c2 + 1 : "");
            return 0;
        }
        if (c2 && step <= 0) {
            snprintf(why, whylen, "range step %lld, expected a positive step", (long long)step);
            return 0;
        }
        if (lo < 0 || hi > n || lo > hi) {
            snprintf(why, whylen,
                     "range %lld:%lld out of range: the dataset has %lld images (ranges are "
                     "half-open, START <= STOP <= %lld)",
                     (long long)lo, (long long)hi, (long long)n, (long long)n);
            return 0;
        }
        for (int64_t i = lo; i < hi; i += step)
            if (!vec_push(a, i)) goto nomem;
    }
    if (!items) {
        snprintf(why, whylen, "empty index list");
        return 0;
    }
    return 1;
nomem:
    snprintf(why, whylen, "out of memory");
    return 0;
}

mloc_status mloc_indices_parse(mloc_ctx *ctx, const char *text, int64_t n, int64_t **out,
                               int64_t *count) {
    *out = NULL;
    *count = 0;
    index_vec a = {0};
    char why[512];
    mloc_status st = MLOC_OK;
    if (strncmp(text, "shuffle", 7) == 0 && (text[7] == 0 || text[7] == ':')) {
        /* shuffle[:N[:SEED]]: the first N of a seeded permutation of 0..n-1,
         * in permutation order. For folders sorted by class (ImageFolder),
         * this is how to take a class-balanced subset, or a random order for
         * the in-order split of SPEC 1. */
        long long k = n, seed = 0;
        char tail = 0;
        int got = text[7] ? sscanf(text + 8, "%lld:%lld%c", &k, &seed, &tail) : 0;
        if ((text[7] && got < 1) || got > 2 || k < 1 || seed < 0)
            return mloc_error(ctx, MLOC_ERR_USAGE, "indices '%.200s': expected shuffle[:N[:SEED]] with N >= 1", text);
        if (k > n)
            return mloc_error(ctx, MLOC_ERR_USAGE, "indices '%.200s': %lld indices of %lld items", text, k, (long long)n);
        int64_t *perm = malloc((size_t)(n ? n : 1) * sizeof *perm);
        if (!perm) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        mloc_rng r;
        mloc_rng_init_tag(&r, (uint64_t)seed, "indices-shuffle", (uint64_t)n, 0, 0);
        mloc_rng_permutation(&r, perm, n);
        *out = perm;
        *count = k;
        return MLOC_OK;
    }
    if (text[0] == '@') {
        const char *path = text + 1;
        uint8_t *buf;
        size_t size;
        MLOC_TRY(data_read_file(ctx, path, &buf, &size));
        if (memchr(buf, 0, size)) {
            free(buf);
            return mloc_error(ctx, MLOC_ERR_DATA, "%s: binary data, expected one index per line", path);
        }
        char *save = NULL;
        int lineno = 0, nonempty = 0;
        char *p = (char *)buf;
        while (p) {
            char *line = p;
            char *nl = strchr(p, '\n');
            if (nl) {
                *nl = 0;
                p = nl + 1;
            } else {
                p = NULL;
            }
            lineno++;
            char *hash = strchr(line, '#');
            if (hash) *hash = 0;
            char *t = trim(line);
            if (!*t) continue;
            nonempty++;
            if (!parse_list(t, n, &a, why, sizeof why)) {
                st = mloc_error(ctx, MLOC_ERR_DATA, "%s: line %d: %s", path, lineno, why);
                break;
            }
        }
        (void)save;
        if (st == MLOC_OK && !nonempty)
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: no indices, expected one index per line", path);
        free(buf);
    } else {
        char *copy = strdup(text);
        if (!copy) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        if (!parse_list(copy, n, &a, why, sizeof why))
            st = mloc_error(ctx, strcmp(why, "out of memory") == 0 ? MLOC_ERR_NOMEM : MLOC_ERR_USAGE,
                            "indices '%.200s': %s", text, why);
        free(copy);
    }
    if (st != MLOC_OK) {
        free(a.v);
        return st;
    }
    *out = a.v;
    *count = a.n;
    return MLOC_OK;
}

char *mloc_indices_format(const int64_t *idx, int64_t count) {
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = 0;
    for (int64_t i = 0; i < count;) {
        int64_t j = i + 1;
        while (j < count && idx[j] == idx[j - 1] + 1) j++;
        char item[64];
        if (j - i == 1)
            snprintf(item, sizeof item, "%s%lld", len ? "," : "", (long long)idx[i]);
        else
            snprintf(item, sizeof item, "%s%lld:%lld", len ? "," : "", (long long)idx[i],
                     (long long)idx[j - 1] + 1);
        size_t n = strlen(item);
        if (len + n + 1 > cap) {
            while (len + n + 1 > cap) cap *= 2;
            char *t = realloc(s, cap);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        memcpy(s + len, item, n + 1);
        len += n;
        i = j;
    }
    return s;
}
