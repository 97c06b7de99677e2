/* The shared / candidate / independent split (SPEC.md section 1).
 *
 * A training set of n points is split in order: S_S the first
 * round(f_s n) points, S_C up to round((f_s + f_c) n), S_I up to
 * round((f_s + f_c + f_i) n). f is trained on S_S + S_C and g on S_S + S_I.
 * The split is written beside the results as split.json (schema
 * "memloc.split/1") with each set as a list of half-open [start, stop)
 * index ranges in order, and read back from it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "data/internal.h"

#define SPLIT_SCHEMA "memloc.split/1"

static const char *const set_names[3] = {"shared", "candidate", "independent"};

void mloc_split_free(mloc_split *s) {
    if (!s) return;
    free(s->shared);
    free(s->candidate);
    free(s->independent);
    free(s->dataset);
    memset(s, 0, sizeof *s);
}

static int64_t **set_ptr(mloc_split *s, int i) {
    return i == 0 ? &s->shared : i == 1 ? &s->candidate : &s->independent;
}
static int64_t *count_ptr(mloc_split *s, int i) {
    return i == 0 ? &s->n_shared : i == 1 ? &s->n_candidate : &s->n_independent;
}

mloc_status mloc_split_make(mloc_ctx *ctx, mloc_split *s, int64_t n, double f_shared,
                            double f_candidate, double f_independent) {
    memset(s, 0, sizeof *s);
    double f[3] = {f_shared, f_candidate, f_independent};
    for (int i = 0; i < 3; i++)
        if (!(f[i] >= 0 && f[i] <= 1))
            return mloc_error(ctx, MLOC_ERR_USAGE, "split: %s fraction %g, expected 0..1",
                              set_names[i], f[i]);
    if (f[0] + f[1] + f[2] > 1 + 1e-9)
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "split: fractions %g + %g + %g exceed 1 (the sets must not overlap)", f[0],
                          f[1], f[2]);
    if (n < 0) return mloc_error(ctx, MLOC_ERR_USAGE, "split: %lld points", (long long)n);
    int64_t b[4] = {0, 0, 0, 0};
    double acc = 0;
    for (int i = 0; i < 3; i++) {
        acc += f[i];
        int64_t v = (int64_t)llround(acc * (double)n);
        b[i + 1] = v > n ? n : v < b[i] ? b[i] : v;
    }
    s->n = n;
    for (int i = 0; i < 3; i++) {
        int64_t m = b[i + 1] - b[i];
        int64_t *v = malloc(((size_t)m + 1) * sizeof *v);
        if (!v) {
            mloc_split_free(s);
            return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        }
        for (int64_t j = 0; j < m; j++) v[j] = b[i] + j;
        *set_ptr(s, i) = v;
        *count_ptr(s, i) = m;
        s->fractions[i] = f[i];
    }
    return MLOC_OK;
}

/* Each index in [0, n) and in at most one set. */
static mloc_status check_disjoint(mloc_ctx *ctx, mloc_split *s, const char *where) {
    uint8_t *owner = calloc((size_t)s->n + 1, 1);
    if (!owner) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    mloc_status st = MLOC_OK;
    for (int i = 0; i < 3 && st == MLOC_OK; i++) {
        int64_t *v = *set_ptr(s, i), m = *count_ptr(s, i);
        for (int64_t j = 0; j < m; j++) {
            if (v[j] < 0 || v[j] >= s->n) {
                st = mloc_error(ctx, MLOC_ERR_DATA, "%s: %s index %lld out of range 0..%lld", where,
                                set_names[i], (long long)v[j], (long long)s->n - 1);
                break;
            }
            if (owner[v[j]]) {
                st = mloc_error(ctx, MLOC_ERR_DATA, "%s: index %lld is in both %s and %s (the sets "
                                "must be disjoint)", where, (long long)v[j],
                                set_names[owner[v[j]] - 1], set_names[i]);
                break;
            }
            owner[v[j]] = (uint8_t)(i + 1);
        }
    }
    free(owner);
    return st;
}

mloc_status mloc_split_from_indices(mloc_ctx *ctx, mloc_split *s, int64_t n, const char *shared,
                                    const char *candidate, const char *independent) {
    memset(s, 0, sizeof *s);
    const char *texts[3] = {shared, candidate, independent};
    s->n = n;
    for (int i = 0; i < 3; i++) {
        if (!texts[i]) {
            mloc_split_free(s);
            return mloc_error(ctx, MLOC_ERR_USAGE, "split: no %s indices given", set_names[i]);
        }
        mloc_status st = mloc_indices_parse(ctx, texts[i], n, set_ptr(s, i), count_ptr(s, i));
        if (st != MLOC_OK) {
            mloc_split_free(s);
            return mloc_error_prefix(ctx, st, "split: %s", set_names[i]);
        }
    }
    mloc_status st = check_disjoint(ctx, s, "split");
    if (st != MLOC_OK) mloc_split_free(s);
    return st;
}

mloc_status mloc_split_set_dataset(mloc_ctx *ctx, mloc_split *s, const char *spec) {
    char *p = spec ? strdup(spec) : NULL;
    if (spec && !p) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    free(s->dataset);
    s->dataset = p;
    return MLOC_OK;
}

/* [[start, stop], ...] for runs of consecutive indices, in order. */
static json_t *ranges(const int64_t *v, int64_t m) {
    json_t *a = json_array();
    for (int64_t i = 0; a && i < m;) {
        int64_t j = i + 1;
        while (j < m && v[j] == v[j - 1] + 1) j++;
        json_t *r = json_pack("[II]", (json_int_t)v[i], (json_int_t)(v[j - 1] + 1));
        if (!r || json_array_append_new(a, r) != 0) {
            json_decref(a);
            return NULL;
        }
        i = j;
    }
    return a;
}

mloc_status mloc_split_write(mloc_ctx *ctx, const mloc_split *s, const char *path) {
    json_t *root = json_object();
    json_t *counts = json_object();
    json_t *fr = json_array();
    int bad = !root || !counts || !fr;
    int explicit_sets = s->fractions[0] == 0 && s->fractions[1] == 0 && s->fractions[2] == 0;
    bad |= json_object_set_new(root, "schema", json_string(SPLIT_SCHEMA));
    bad |= json_object_set_new(root, "n", json_integer(s->n));
    bad |= json_object_set_new(root, "dataset", s->dataset ? json_string(s->dataset) : json_null());
    for (int i = 0; i < 3 && !bad; i++) bad |= json_array_append_new(fr, json_real(s->fractions[i]));
    bad |= json_object_set_new(root, "fractions", explicit_sets ? json_null() : json_incref(fr));
    mloc_split *m = (mloc_split *)s;
    bad |= json_object_set_new(root, "counts", json_incref(counts));
    for (int i = 0; i < 3 && !bad; i++) {
        bad |= json_object_set_new(counts, set_names[i], json_integer(*count_ptr(m, i)));
        json_t *r = ranges(*set_ptr(m, i), *count_ptr(m, i));
        bad |= !r || json_object_set_new(root, set_names[i], r);
    }
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    json_decref(counts);
    json_decref(fr);
    if (!text) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s: out of memory building the split", path);
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    if (!withnl) {
        free(text);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    }
    withnl[len] = '\n';
    withnl[len + 1] = 0;
    mloc_status st = data_write_atomic(ctx, path, withnl, len + 1);
    free(withnl);
    return st;
}

mloc_status mloc_split_read(mloc_ctx *ctx, mloc_split *s, const char *path) {
    memset(s, 0, sizeof *s);
    uint8_t *buf;
    size_t size;
    MLOC_TRY(data_read_file(ctx, path, &buf, &size));
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf, size, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (!root)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: line %d: %s", path, jerr.line, jerr.text);
    mloc_status st = MLOC_OK;
    const char *schema = json_string_value(json_object_get(root, "schema"));
    json_t *jn = json_object_get(root, "n");
    if (!schema || strcmp(schema, SPLIT_SCHEMA) != 0) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: schema '%s', expected '%s'", path,
                        schema ? schema : "(none)", SPLIT_SCHEMA);
        goto done;
    }
    if (!json_is_integer(jn) || json_integer_value(jn) < 0) {
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: \"n\" must be a non-negative integer", path);
        goto done;
    }
    s->n = json_integer_value(jn);
    const char *ds = json_string_value(json_object_get(root, "dataset"));
    if (ds && !(s->dataset = strdup(ds))) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        goto done;
    }
    json_t *fr = json_object_get(root, "fractions");
    for (int i = 0; i < 3; i++) {
        json_t *f = json_array_get(fr, (size_t)i);
        s->fractions[i] = json_is_number(f) ? json_number_value(f) : 0;
    }
    for (int i = 0; i < 3; i++) {
        json_t *a = json_object_get(root, set_names[i]);
        if (!json_is_array(a)) {
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: \"%s\" must be a list of [start, stop] ranges",
                            path, set_names[i]);
            goto done;
        }
        int64_t total = 0;
        size_t k;
        json_t *r;
        json_array_foreach(a, k, r) {
            json_t *lo = json_array_get(r, 0), *hi = json_array_get(r, 1);
            if (json_array_size(r) != 2 || !json_is_integer(lo) || !json_is_integer(hi) ||
                json_integer_value(lo) < 0 || json_integer_value(hi) > s->n ||
                json_integer_value(lo) > json_integer_value(hi)) {
                st = mloc_error(ctx, MLOC_ERR_DATA,
                                "%s: %s range %zu must be [start, stop] with 0 <= start <= stop <= %lld",
                                path, set_names[i], k, (long long)s->n);
                goto done;
            }
            total += json_integer_value(hi) - json_integer_value(lo);
        }
        if (total > s->n) {
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: %s has %lld indices, more than n = %lld", path,
                            set_names[i], (long long)total, (long long)s->n);
            goto done;
        }
        int64_t *v = malloc(((size_t)total + 1) * sizeof *v), m = 0;
        if (!v) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            goto done;
        }
        json_array_foreach(a, k, r) {
            for (json_int_t x = json_integer_value(json_array_get(r, 0));
                 x < json_integer_value(json_array_get(r, 1)); x++)
                v[m++] = x;
        }
        *set_ptr(s, i) = v;
        *count_ptr(s, i) = m;
        json_t *c = json_object_get(json_object_get(root, "counts"), set_names[i]);
        if (c && (!json_is_integer(c) || json_integer_value(c) != m)) {
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s: counts.%s disagrees with its ranges (%lld)", path,
                            set_names[i], (long long)m);
            goto done;
        }
    }
    st = check_disjoint(ctx, s, path);
done:
    json_decref(root);
    if (st != MLOC_OK) mloc_split_free(s);
    return st;
}
