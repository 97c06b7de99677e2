/* Metric results on disk (the layout is listed in include/memloc/metrics.h):
 * a JSON summary with a "schema" field and every variant of SPEC.md 6 that
 * was used, CSV tables with a header row, and NumPy arrays. Readers take
 * back what the writers wrote, so `memloc analyze` and `memloc experiment`
 * work on the files of earlier commands. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/io.h"
#include "memloc/stats.h"

#define PATH_MAX_LEN 4096

/* ---- small helpers ------------------------------------------------------------ */

static mloc_status write_npy(mloc_ctx *ctx, const char *dir, const char *name, mloc_dtype dt,
                             int ndim, int64_t d0, int64_t d1, const void *data) {
    char path[PATH_MAX_LEN];
    MLOC_TRY(mloc_metrics_path(ctx, path, sizeof path, dir, name));
    int64_t shape[2] = {d0, d1};
    return mloc_npy_write(ctx, path, dt, ndim, shape, data);
}

static mloc_status save_json(mloc_ctx *ctx, const char *dir, const char *name, json_t *doc) {
    if (!doc) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s/%s: out of memory building JSON", dir, name);
    char path[PATH_MAX_LEN];
    mloc_status st = mloc_metrics_path(ctx, path, sizeof path, dir, name);
    if (st == MLOC_OK) st = mloc_json_save(ctx, path, doc);
    json_decref(doc);
    return st;
}

static json_t *i64_array(const int64_t *v, int64_t n) {
    json_t *a = json_array();
    for (int64_t i = 0; a && i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

/* read an .npy of the expected dtype and shape (d1 < 0: 1-d) into *out */
static mloc_status read_npy(mloc_ctx *ctx, const char *dir, const char *name, mloc_dtype want,
                            int64_t d0, int64_t d1, void **out) {
    char path[PATH_MAX_LEN];
    MLOC_TRY(mloc_metrics_path(ctx, path, sizeof path, dir, name));
    mloc_dtype dt;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    void *data = NULL;
    MLOC_TRY(mloc_npy_read(ctx, path, &dt, &ndim, shape, &data));
    int ok = dt == want && ndim == (d1 < 0 ? 1 : 2) && shape[0] == d0 && (d1 < 0 || shape[1] == d1);
    if (!ok) {
        free(data);
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: expected %s of shape (%lld%s%lld%s)", path,
                          mloc_dtype_name(want), (long long)d0, d1 < 0 ? "" : ", ",
                          d1 < 0 ? 0LL : (long long)d1, d1 < 0 ? ",)" : ")");
    }
    *out = data;
    return MLOC_OK;
}

static mloc_status load_json(mloc_ctx *ctx, const char *dir, const char *name, const char *schema,
                             json_t **out) {
    char path[PATH_MAX_LEN];
    MLOC_TRY(mloc_metrics_path(ctx, path, sizeof path, dir, name));
    MLOC_TRY(mloc_json_load(ctx, path, out));
    const char *s = json_string_value(json_object_get(*out, "schema"));
    if (!s || strcmp(s, schema) != 0) {
        json_decref(*out);
        *out = NULL;
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: schema '%s', expected '%s'", path, s ? s : "(none)", schema);
    }
    return MLOC_OK;
}

static int file_exists(const char *dir, const char *name) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* ---- SSLMem / LayerMem ------------------------------------------------------------ */

static json_t *sslmem_variant(const mloc_sslmem_result *r, mloc_score_norm norm) {
    return json_pack("{s:s, s:i, s:s, s:s, s:i}", "views", mloc_views_mode_name(r->cfg.views), "k",
                     r->cfg.k, "views_definition",
                     r->cfg.views == MLOC_VIEWS_CLEAN ? "(1/K) sum_k ||h(x) - h(a_k x)||, reference code"
                                                      : "(1/K) sum_k ||h(a_2k x) - h(a_2k+1 x)||, the papers",
                     "norm", mloc_score_norm_name(norm), "batch", r->cfg.batch);
}

typedef struct {
    const mloc_sslmem_result *r;
    const mloc_layermem_table *t;
    const int64_t *rank;
    int col;          /* sslmem.*: the encoder output's column */
} ssl_rows;

static int layermem_table_row(void *user, int64_t l, char *buf, size_t size) {
    const ssl_rows *s = user;
    const mloc_layermem_table *t = s->t;
    char v[5][40];
    mloc_metrics_fmt_double(v[0], sizeof v[0], t->random[l]);
    mloc_metrics_fmt_double(v[1], sizeof v[1], t->delta[l]);
    mloc_metrics_fmt_double(v[2], sizeof v[2], t->top[l]);
    mloc_metrics_fmt_double(v[3], sizeof v[3], t->delta_top[l]);
    mloc_metrics_fmt_double(v[4], sizeof v[4], t->least[l]);
    return snprintf(buf, size, "%s,%s,%s,%s,%s,%s", s->r->tap_names[l], v[0], v[1], v[2], v[3], v[4]);
}

static int layermem_point_row(void *user, int64_t i, char *buf, size_t size) {
    const ssl_rows *s = user;
    const mloc_sslmem_result *r = s->r;
    char v[40];
    mloc_metrics_fmt_double(v, sizeof v, r->out_score[i]);
    int len = snprintf(buf, size, "%lld,%lld,%s", (long long)r->points[i], (long long)s->rank[i] + 1, v);
    for (int t = 0; t < r->n_taps && len >= 0 && (size_t)len < size; t++) {
        mloc_metrics_fmt_double(v, sizeof v, r->score[i * r->n_taps + t]);
        len += snprintf(buf + len, size - (size_t)len, ",%s", v);
    }
    return len;
}

static int sslmem_point_row(void *user, int64_t i, char *buf, size_t size) {
    const ssl_rows *s = user;
    const mloc_sslmem_result *r = s->r;
    const int T = r->n_taps, c = s->col;
    char v[4][40];
    mloc_metrics_fmt_double(v[0], sizeof v[0], r->score[i * T + c]);
    mloc_metrics_fmt_double(v[1], sizeof v[1], s->t->norm_score[i]);
    mloc_metrics_fmt_double(v[2], sizeof v[2], r->d_f[i * T + c]);
    mloc_metrics_fmt_double(v[3], sizeof v[3], r->d_g[i * T + c]);
    return snprintf(buf, size, "%lld,%lld,%s,%s,%s,%s", (long long)r->points[i], (long long)s->rank[i] + 1,
                    v[0], v[1], v[2], v[3]);
}

/* rank[i] (0-based) of point i by descending x (stable) */
static mloc_status ranks_desc(mloc_ctx *ctx, const double *x, int64_t n, int64_t **rank) {
    *rank = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!*rank) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory ranking %lld points", (long long)n);
    mloc_status st = mloc_stats_rank(ctx, x, n, 1, *rank);
    if (st != MLOC_OK) {
        free(*rank);
        *rank = NULL;
    }
    return st;
}

static json_t *ids_at(const mloc_sslmem_result *r, const int64_t *pos, int64_t k) {
    json_t *a = json_array();
    for (int64_t j = 0; a && j < k; j++) json_array_append_new(a, json_integer((json_int_t)r->points[pos[j]]));
    return a;
}

mloc_status mloc_layermem_write(mloc_ctx *ctx, const char *dir, const mloc_sslmem_result *r,
                                const mloc_layermem_table *t, const mloc_metric_run *run) {
    if (!t) return mloc_sslmem_write(ctx, dir, r, MLOC_NORM_RANGE, run);
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    const int64_t n = r->n;
    const int T = r->n_taps;
    int64_t *rank = NULL;
    MLOC_TRY(ranks_desc(ctx, r->out_score, n, &rank));
    ssl_rows rows = {.r = r, .t = t, .rank = rank};
    char path[PATH_MAX_LEN];
    mloc_status st = mloc_metrics_path(ctx, path, sizeof path, dir, "layermem_table.csv");
    if (st == MLOC_OK)
        st = mloc_metrics_write_csv(ctx, path, "tap,layermem_random,delta,layermem_top,delta_top,layermem_least",
                                    T, layermem_table_row, &rows);
    if (st == MLOC_OK) {
        /* header: index,rank,sslmem_out,<tap>... */
        size_t hl = 64 + (size_t)T * 66;
        char *header = malloc(hl);
        if (!header) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        else {
            size_t len = (size_t)snprintf(header, hl, "index,rank,sslmem_out");
            for (int l = 0; l < T; l++) len += (size_t)snprintf(header + len, hl - len, ",%s", r->tap_names[l]);
            st = mloc_metrics_path(ctx, path, sizeof path, dir, "layermem_points.csv");
            if (st == MLOC_OK) st = mloc_metrics_write_csv(ctx, path, header, n, layermem_point_row, &rows);
            free(header);
        }
    }
    if (st == MLOC_OK) st = write_npy(ctx, dir, "layermem_points.npy", MLOC_DTYPE_I64, 1, n, 0, r->points);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "layermem_sslmem.npy", MLOC_DTYPE_F64, 2, n, T, r->score);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "layermem_norm.npy", MLOC_DTYPE_F64, 2, n, T, t->norm_score);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "layermem_d_f.npy", MLOC_DTYPE_F64, 2, n, T, r->d_f);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "layermem_d_g.npy", MLOC_DTYPE_F64, 2, n, T, r->d_g);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "layermem_out.npy", MLOC_DTYPE_F64, 1, n, 0, r->out_score);
    if (st != MLOC_OK) {
        free(rank);
        return st;
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "schema", json_string("memloc.layermem/1"));
    json_t *variant = sslmem_variant(r, t->norm);
    if (variant) {
        json_object_set_new(variant, "random_subset", json_integer((json_int_t)t->n_random));
        json_object_set_new(variant, "top", json_integer((json_int_t)t->n_top));
        json_object_set_new(variant, "delta_previous", json_string("the evaluated tap before, in forward order"));
        json_object_set_new(variant, "ranking", json_string("SSLMem at the encoder output, descending, stable"));
    }
    json_object_set_new(doc, "variant", variant ? variant : json_null());
    json_object_set_new(doc, "run", mloc_metrics_run_json(run));
    json_object_set_new(doc, "points", json_integer((json_int_t)n));
    json_object_set_new(doc, "encoder_output", json_string(r->out_tap));
    json_t *taps = json_array(), *table = json_array();
    for (int l = 0; l < T; l++) {
        json_array_append_new(taps, json_string(r->tap_names[l]));
        json_t *row = json_object();
        json_object_set_new(row, "tap", json_string(r->tap_names[l]));
        json_object_set_new(row, "layermem_random", mloc_metrics_json_real(t->random[l]));
        json_object_set_new(row, "delta", mloc_metrics_json_real(t->delta[l]));
        json_object_set_new(row, "layermem_top", mloc_metrics_json_real(t->top[l]));
        json_object_set_new(row, "delta_top", mloc_metrics_json_real(t->delta_top[l]));
        json_object_set_new(row, "layermem_least", mloc_metrics_json_real(t->least[l]));
        json_object_set_new(row, "sslmem_min", mloc_metrics_json_real(t->lo[l]));
        json_object_set_new(row, "sslmem_max", mloc_metrics_json_real(t->hi[l]));
        json_array_append_new(table, row);
    }
    json_object_set_new(doc, "taps", taps);
    json_object_set_new(doc, "table", table);
    json_object_set_new(doc, "random_points", ids_at(r, t->random_pos, t->n_random));
    json_object_set_new(doc, "top_points", ids_at(r, t->top_pos, t->n_top));
    json_object_set_new(doc, "least_points", ids_at(r, t->least_pos, t->n_top));
    json_object_set_new(doc, "files",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "table", "layermem_table.csv",
                                  "points_csv", "layermem_points.csv", "points", "layermem_points.npy (int64, n)",
                                  "sslmem", "layermem_sslmem.npy (float64, n x taps, raw d_g - d_f)", "norm",
                                  "layermem_norm.npy (float64, n x taps)", "d_f", "layermem_d_f.npy (float64, n x taps)",
                                  "d_g", "layermem_d_g.npy (float64, n x taps)", "out",
                                  "layermem_out.npy (float64, n, SSLMem at the encoder output)"));
    free(rank);
    return save_json(ctx, dir, "layermem.json", doc);
}

mloc_status mloc_sslmem_write(mloc_ctx *ctx, const char *dir, const mloc_sslmem_result *r,
                              mloc_score_norm norm, const mloc_metric_run *run) {
    const int64_t n = r->n;
    const int T = r->n_taps;
    int col = -1;
    for (int l = 0; l < T; l++)
        if (strcmp(r->tap_names[l], r->out_tap) == 0) col = l;
    if (col < 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "sslmem: the result does not hold the encoder output '%s'", r->out_tap);
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    mloc_status st = MLOC_OK;
    int64_t *rank = NULL;
    double *col_v = malloc((size_t)n * 4 * sizeof(double));
    if (!col_v) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    double *score = col_v, *nrm = col_v + n, *df = col_v + 2 * n, *dg = col_v + 3 * n;
    double lo, hi;
    for (int64_t i = 0; i < n; i++) {
        score[i] = r->score[i * T + col];
        df[i] = r->d_f[i * T + col];
        dg[i] = r->d_g[i * T + col];
    }
    mloc_layermem_normalize(score, n, 1, norm, nrm, &lo, &hi);
    st = ranks_desc(ctx, score, n, &rank);
    if (st != MLOC_OK) goto done;
    mloc_layermem_table fake = {.norm_score = nrm};
    ssl_rows rows = {.r = r, .t = &fake, .rank = rank, .col = col};
    char path[PATH_MAX_LEN];
    st = mloc_metrics_path(ctx, path, sizeof path, dir, "sslmem_points.csv");
    if (st == MLOC_OK)
        st = mloc_metrics_write_csv(ctx, path, "index,rank,sslmem,sslmem_norm,d_f,d_g", n, sslmem_point_row, &rows);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "sslmem_points.npy", MLOC_DTYPE_I64, 1, n, 0, r->points);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "sslmem_score.npy", MLOC_DTYPE_F64, 1, n, 0, score);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "sslmem_norm.npy", MLOC_DTYPE_F64, 1, n, 0, nrm);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "sslmem_d_f.npy", MLOC_DTYPE_F64, 1, n, 0, df);
    if (st == MLOC_OK) st = write_npy(ctx, dir, "sslmem_d_g.npy", MLOC_DTYPE_F64, 1, n, 0, dg);
    if (st != MLOC_OK) goto done;
    json_t *doc = json_object();
    json_object_set_new(doc, "schema", json_string("memloc.sslmem/1"));
    json_t *variant = sslmem_variant(r, norm);
    json_object_set_new(doc, "variant", variant ? variant : json_null());
    json_object_set_new(doc, "run", mloc_metrics_run_json(run));
    json_object_set_new(doc, "points", json_integer((json_int_t)n));
    json_object_set_new(doc, "tap", json_string(r->out_tap));
    json_object_set_new(doc, "mean", mloc_metrics_json_real(mloc_stats_mean(score, n)));
    json_object_set_new(doc, "mean_norm", mloc_metrics_json_real(mloc_stats_mean(nrm, n)));
    json_object_set_new(doc, "sslmem_min", mloc_metrics_json_real(lo));
    json_object_set_new(doc, "sslmem_max", mloc_metrics_json_real(hi));
    json_object_set_new(doc, "files",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "points_csv", "sslmem_points.csv", "points",
                                  "sslmem_points.npy (int64, n)", "score", "sslmem_score.npy (float64, n)", "norm",
                                  "sslmem_norm.npy (float64, n)", "d_f", "sslmem_d_f.npy (float64, n)", "d_g",
                                  "sslmem_d_g.npy (float64, n)"));
    st = save_json(ctx, dir, "sslmem.json", doc);
done:
    free(rank);
    free(col_v);
    return st;
}

static mloc_status read_variant(mloc_ctx *ctx, const char *dir, json_t *doc, mloc_sslmem_result *r) {
    json_t *v = json_object_get(doc, "variant");
    int views = mloc_views_mode_parse(json_string_value(json_object_get(v, "views")));
    json_t *k = json_object_get(v, "k");
    if (views < 0 || !json_is_integer(k))
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: variant.views / variant.k missing or invalid", dir);
    r->cfg = mloc_sslmem_config_default();
    r->cfg.views = (mloc_views_mode)views;
    r->cfg.k = (int)json_integer_value(k);
    return MLOC_OK;
}

static mloc_status read_sslmem_only(mloc_ctx *ctx, const char *dir, mloc_sslmem_result *r) {
    json_t *doc = NULL;
    MLOC_TRY(load_json(ctx, dir, "sslmem.json", "memloc.sslmem/1", &doc));
    mloc_status st = read_variant(ctx, dir, doc, r);
    json_t *jn = json_object_get(doc, "points");
    const char *tap = json_string_value(json_object_get(doc, "tap"));
    if (st == MLOC_OK && (!json_is_integer(jn) || json_integer_value(jn) < 1 || !tap))
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s/sslmem.json: 'points' or 'tap' missing", dir);
    if (st != MLOC_OK) {
        json_decref(doc);
        return st;
    }
    const int64_t n = json_integer_value(jn);
    r->n = n;
    r->n_taps = 1;
    r->tap_names = calloc(1, sizeof *r->tap_names);
    if (r->tap_names) snprintf(r->tap_names[0], sizeof r->tap_names[0], "%s", tap);
    snprintf(r->out_tap, sizeof r->out_tap, "%s", tap);
    json_decref(doc);
    if (!r->tap_names) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    st = read_npy(ctx, dir, "sslmem_points.npy", MLOC_DTYPE_I64, n, -1, (void **)&r->points);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "sslmem_score.npy", MLOC_DTYPE_F64, n, -1, (void **)&r->score);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "sslmem_d_f.npy", MLOC_DTYPE_F64, n, -1, (void **)&r->d_f);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "sslmem_d_g.npy", MLOC_DTYPE_F64, n, -1, (void **)&r->d_g);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "sslmem_score.npy", MLOC_DTYPE_F64, n, -1, (void **)&r->out_score);
    return st;
}

mloc_status mloc_layermem_read(mloc_ctx *ctx, const char *dir, mloc_sslmem_result *r) {
    memset(r, 0, sizeof *r);
    mloc_status st;
    if (!file_exists(dir, "layermem.json")) {
        if (!file_exists(dir, "sslmem.json"))
            return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: no layermem.json or sslmem.json (run memloc layermem "
                              "or sslmem with --out %s first)", dir, dir);
        st = read_sslmem_only(ctx, dir, r);
        if (st != MLOC_OK) mloc_sslmem_result_free(r);
        return st;
    }
    json_t *doc = NULL;
    MLOC_TRY(load_json(ctx, dir, "layermem.json", "memloc.layermem/1", &doc));
    st = read_variant(ctx, dir, doc, r);
    json_t *jn = json_object_get(doc, "points"), *taps = json_object_get(doc, "taps");
    const char *out = json_string_value(json_object_get(doc, "encoder_output"));
    if (st == MLOC_OK && (!json_is_integer(jn) || json_integer_value(jn) < 1 || !json_is_array(taps) ||
                          json_array_size(taps) < 1 || !out))
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s/layermem.json: 'points', 'taps' or 'encoder_output' missing", dir);
    if (st != MLOC_OK) {
        json_decref(doc);
        return st;
    }
    const int64_t n = json_integer_value(jn);
    const int T = (int)json_array_size(taps);
    r->n = n;
    r->n_taps = T;
    snprintf(r->out_tap, sizeof r->out_tap, "%s", out);
    r->tap_names = calloc((size_t)T, sizeof *r->tap_names);
    if (!r->tap_names) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    for (int l = 0; st == MLOC_OK && l < T; l++) {
        const char *name = json_string_value(json_array_get(taps, (size_t)l));
        if (!name) st = mloc_error(ctx, MLOC_ERR_DATA, "%s/layermem.json: taps[%d] is not a string", dir, l);
        else snprintf(r->tap_names[l], sizeof r->tap_names[l], "%s", name);
    }
    json_decref(doc);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "layermem_points.npy", MLOC_DTYPE_I64, n, -1, (void **)&r->points);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "layermem_sslmem.npy", MLOC_DTYPE_F64, n, T, (void **)&r->score);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "layermem_d_f.npy", MLOC_DTYPE_F64, n, T, (void **)&r->d_f);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "layermem_d_g.npy", MLOC_DTYPE_F64, n, T, (void **)&r->d_g);
    if (st == MLOC_OK) st = read_npy(ctx, dir, "layermem_out.npy", MLOC_DTYPE_F64, n, -1, (void **)&r->out_score);
    if (st != MLOC_OK) mloc_sslmem_result_free(r);
    return st;
}

static mloc_status json_ids(mloc_ctx *ctx, const char *dir, json_t *doc, const char *key, int64_t **out,
                            int64_t *n) {
    json_t *a = json_object_get(doc, key);
    if (!json_is_array(a)) return mloc_error(ctx, MLOC_ERR_DATA, "%s/layermem.json: '%s' missing", dir, key);
    *n = (int64_t)json_array_size(a);
    *out = malloc((size_t)(*n > 0 ? *n : 1) * sizeof(int64_t));
    if (!*out) return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v)) {
            free(*out);
            *out = NULL;
            return mloc_error(ctx, MLOC_ERR_DATA, "%s/layermem.json: %s[%lld] is not an integer", dir, key,
                              (long long)i);
        }
        (*out)[i] = json_integer_value(v);
    }
    return MLOC_OK;
}

mloc_status mloc_layermem_read_subsets(mloc_ctx *ctx, const char *dir, int64_t **top,
                                       int64_t **least, int64_t *n_top) {
    *top = *least = NULL;
    *n_top = 0;
    json_t *doc = NULL;
    MLOC_TRY(load_json(ctx, dir, "layermem.json", "memloc.layermem/1", &doc));
    int64_t nt = 0, nl = 0;
    mloc_status st = json_ids(ctx, dir, doc, "top_points", top, &nt);
    if (st == MLOC_OK) st = json_ids(ctx, dir, doc, "least_points", least, &nl);
    if (st == MLOC_OK && nt != nl)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s/layermem.json: %lld Top and %lld Least points", dir,
                        (long long)nt, (long long)nl);
    json_decref(doc);
    if (st != MLOC_OK) {
        free(*top);
        free(*least);
        *top = *least = NULL;
        return st;
    }
    *n_top = nt;
    return MLOC_OK;
}

/* ---- UnitMem / ClassMem ------------------------------------------------------------- */

typedef struct {
    const mloc_unit_scores *u;
    const mloc_unit_summary *sum;
    int *tap_of;    /* unit -> tap */
} unit_rows;

static int unit_summary_row(void *user, int64_t t, char *buf, size_t size) {
    const unit_rows *s = user;
    const mloc_unit_summary *m = &s->sum[t];
    char v[8][40];
    mloc_metrics_fmt_double(v[0], sizeof v[0], m->mean);
    for (int k = 0; k < 5; k++) mloc_metrics_fmt_double(v[1 + k], sizeof v[1 + k], m->q[k]);
    mloc_metrics_fmt_double(v[6], sizeof v[6], m->share_05);
    mloc_metrics_fmt_double(v[7], sizeof v[7], m->share_09);
    return snprintf(buf, size, "%s,%lld,%s,%s,%s,%s,%s,%s,%s,%s,%lld", s->u->tap_names[t], (long long)m->units,
                    v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], (long long)m->dead);
}

static int unit_row(void *user, int64_t i, char *buf, size_t size) {
    const unit_rows *s = user;
    const mloc_unit_scores *u = s->u;
    int t = s->tap_of[i];
    char v[3][40];
    mloc_metrics_fmt_double(v[0], sizeof v[0], u->score[i]);
    mloc_metrics_fmt_double(v[1], sizeof v[1], u->mu_max[i]);
    mloc_metrics_fmt_double(v[2], sizeof v[2], u->mu_rest[i]);
    return snprintf(buf, size, "%s,%lld,%s,%s,%s,%lld,%d", u->tap_names[t], (long long)(i - u->offset[t]), v[0],
                    v[1], v[2], (long long)u->argmax[i], u->dead[i]);
}

mloc_status mloc_unit_scores_write(mloc_ctx *ctx, const char *dir, const char *prefix,
                                   const mloc_unit_scores *u, const mloc_metric_run *run) {
    const int classmem = strcmp(prefix, "classmem") == 0;
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    const int T = u->n_taps;
    const int64_t U = u->units;
    mloc_unit_summary *sum = calloc((size_t)T, sizeof *sum);
    int *tap_of = malloc((size_t)(U > 0 ? U : 1) * sizeof *tap_of);
    if (!sum || !tap_of) {
        free(sum);
        free(tap_of);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    }
    mloc_status st = MLOC_OK;
    for (int t = 0; t < T && st == MLOC_OK; t++) {
        st = mloc_unit_summarize(ctx, u, t, &sum[t]);
        for (int64_t i = u->offset[t]; i < u->offset[t + 1]; i++) tap_of[i] = t;
    }
    unit_rows rows = {.u = u, .sum = sum, .tap_of = tap_of};
    char path[PATH_MAX_LEN], name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "%s%s", prefix, suffix), name)
    if (st == MLOC_OK) st = mloc_metrics_path(ctx, path, sizeof path, dir, NAME("_summary.csv"));
    if (st == MLOC_OK)
        st = mloc_metrics_write_csv(ctx, path, "tap,units,mean,min,q25,median,q75,max,share_gt_0.5,share_gt_0.9,dead",
                                    T, unit_summary_row, &rows);
    if (st == MLOC_OK) st = mloc_metrics_path(ctx, path, sizeof path, dir, NAME("_units.csv"));
    if (st == MLOC_OK)
        st = mloc_metrics_write_csv(ctx, path,
                                    classmem ? "tap,unit,classmem,mu_max,mu_rest,argmax_class,dead"
                                             : "tap,unit,unitmem,mu_max,mu_rest,argmax_index,dead",
                                    U, unit_row, &rows);
    if (st == MLOC_OK) st = write_npy(ctx, dir, NAME("_points.npy"), MLOC_DTYPE_I64, 1, u->n, 0, u->points);
    if (st == MLOC_OK) st = write_npy(ctx, dir, NAME("_score.npy"), MLOC_DTYPE_F64, 1, U, 0, u->score);
    if (st == MLOC_OK) st = write_npy(ctx, dir, NAME("_mu_max.npy"), MLOC_DTYPE_F64, 1, U, 0, u->mu_max);
    if (st == MLOC_OK) st = write_npy(ctx, dir, NAME("_mu_rest.npy"), MLOC_DTYPE_F64, 1, U, 0, u->mu_rest);
    if (st == MLOC_OK) st = write_npy(ctx, dir, NAME("_argmax.npy"), MLOC_DTYPE_I64, 1, U, 0, u->argmax);
    if (st == MLOC_OK) st = write_npy(ctx, dir, NAME("_dead.npy"), MLOC_DTYPE_U8, 1, U, 0, u->dead);
    char mu_name[160] = "";
    if (st == MLOC_OK && u->mu && u->mu_tap >= 0) {
        snprintf(mu_name, sizeof mu_name, "%s_mu_%s.npy", prefix, u->tap_names[u->mu_tap]);
        st = write_npy(ctx, dir, mu_name, MLOC_DTYPE_F64, 2, u->n,
                       u->offset[u->mu_tap + 1] - u->offset[u->mu_tap], u->mu);
    }
    if (st != MLOC_OK) {
        free(sum);
        free(tap_of);
        return st;
    }
    json_t *doc = json_object();
    snprintf(name, sizeof name, "memloc.%s/1", prefix);
    json_object_set_new(doc, "schema", json_string(name));
    json_t *variant = json_pack("{s:i, s:s, s:b, s:i}", "k", classmem && !u->cfg.augment ? 1 : u->cfg.k, "rest",
                                mloc_rest_stat_name(u->cfg.rest), "abs", u->cfg.abs, "batch", u->cfg.batch);
    if (variant) {
        json_object_set_new(variant, "views", json_string(classmem && !u->cfg.augment ? "clean" : "augmented"));
        json_object_set_new(variant, "unit_activation",
                            json_string(u->cfg.abs ? "mean over spatial positions of |a|"
                                                   : "mean over spatial positions (post-ReLU)"));
        json_object_set_new(variant, "mode", json_string("eval (BN running statistics)"));
        if (classmem) json_object_set_new(variant, "class_means", json_string("per class (not the reference's cumulative list)"));
    }
    json_object_set_new(doc, "variant", variant ? variant : json_null());
    json_object_set_new(doc, "run", mloc_metrics_run_json(run));
    json_object_set_new(doc, "points", json_integer((json_int_t)u->n));
    json_object_set_new(doc, "units", json_integer((json_int_t)U));
    if (classmem) {
        json_object_set_new(doc, "classes", json_integer(u->n_classes));
        json_object_set_new(doc, "class_count", i64_array(u->class_count, u->n_classes_total));
    }
    json_t *taps = json_array();
    for (int t = 0; t < T; t++) {
        const mloc_unit_summary *m = &sum[t];
        json_t *o = json_pack("{s:s, s:i, s:i}", "name", u->tap_names[t], "units", (int)m->units, "offset",
                              u->offset[t]);
        json_object_set_new(o, "mean", mloc_metrics_json_real(m->mean));
        json_object_set_new(o, "min", mloc_metrics_json_real(m->q[0]));
        json_object_set_new(o, "q25", mloc_metrics_json_real(m->q[1]));
        json_object_set_new(o, "median", mloc_metrics_json_real(m->q[2]));
        json_object_set_new(o, "q75", mloc_metrics_json_real(m->q[3]));
        json_object_set_new(o, "max", mloc_metrics_json_real(m->q[4]));
        json_object_set_new(o, "share_gt_0.5", mloc_metrics_json_real(m->share_05));
        json_object_set_new(o, "share_gt_0.9", mloc_metrics_json_real(m->share_09));
        json_object_set_new(o, "dead", json_integer((json_int_t)m->dead));
        json_array_append_new(taps, o);
    }
    json_object_set_new(doc, "taps", taps);
    json_t *files = json_object();
    json_object_set_new(files, "summary", json_string(NAME("_summary.csv")));
    json_object_set_new(files, "units", json_string(NAME("_units.csv")));
    json_object_set_new(files, "points", json_string(NAME("_points.npy")));
    json_object_set_new(files, "score", json_string(NAME("_score.npy")));
    json_object_set_new(files, "mu_max", json_string(NAME("_mu_max.npy")));
    json_object_set_new(files, "mu_rest", json_string(NAME("_mu_rest.npy")));
    json_object_set_new(files, "argmax", json_string(NAME("_argmax.npy")));
    json_object_set_new(files, "dead", json_string(NAME("_dead.npy")));
    if (mu_name[0]) json_object_set_new(files, "mu", json_string(mu_name));
    json_object_set_new(doc, "files", files);
    json_object_set_new(doc, "work_bytes", json_integer((json_int_t)u->work_bytes));
    st = save_json(ctx, dir, NAME(".json"), doc);
#undef NAME
    free(sum);
    free(tap_of);
    return st;
}

mloc_status mloc_unit_scores_read(mloc_ctx *ctx, const char *dir, const char *prefix,
                                  mloc_unit_scores *u) {
    memset(u, 0, sizeof *u);
    u->mu_tap = -1;
    char name[128], schema[128];
    snprintf(name, sizeof name, "%s.json", prefix);
    snprintf(schema, sizeof schema, "memloc.%s/1", prefix);
    if (!file_exists(dir, name))
        return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: no %s (run memloc %s with --out %s first)", dir, name, prefix, dir);
    json_t *doc = NULL;
    MLOC_TRY(load_json(ctx, dir, name, schema, &doc));
    mloc_status st = MLOC_OK;
    json_t *taps = json_object_get(doc, "taps"), *jn = json_object_get(doc, "points"),
           *ju = json_object_get(doc, "units"), *v = json_object_get(doc, "variant");
    int rest = mloc_rest_stat_parse(json_string_value(json_object_get(v, "rest")));
    if (!json_is_array(taps) || json_array_size(taps) < 1 || !json_is_integer(jn) || !json_is_integer(ju) || rest < 0) {
        json_decref(doc);
        return mloc_error(ctx, MLOC_ERR_DATA, "%s/%s: 'taps', 'points', 'units' or 'variant.rest' missing", dir, name);
    }
    const int T = (int)json_array_size(taps);
    const int64_t n = json_integer_value(jn), U = json_integer_value(ju);
    u->cfg = mloc_unitmem_config_default();
    u->cfg.rest = (mloc_rest_stat)rest;
    u->cfg.k = (int)json_integer_value(json_object_get(v, "k"));
    u->cfg.abs = json_is_true(json_object_get(v, "abs"));
    u->n_taps = T;
    u->n = n;
    u->units = U;
    u->tap_names = calloc((size_t)T, sizeof *u->tap_names);
    u->offset = malloc(((size_t)T + 1) * sizeof(int));
    if (!u->tap_names || !u->offset) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    for (int t = 0; st == MLOC_OK && t < T; t++) {
        json_t *o = json_array_get(taps, (size_t)t);
        const char *tn = json_string_value(json_object_get(o, "name"));
        json_t *off = json_object_get(o, "offset"), *nu = json_object_get(o, "units");
        if (!tn || !json_is_integer(off) || !json_is_integer(nu)) {
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s/%s: taps[%d] needs name, offset and units", dir, name, t);
            break;
        }
        snprintf(u->tap_names[t], sizeof u->tap_names[t], "%s", tn);
        u->offset[t] = (int)json_integer_value(off);
        u->offset[t + 1] = u->offset[t] + (int)json_integer_value(nu);
        if (t == 0 && u->offset[0] != 0)
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s/%s: taps[0].offset is not 0", dir, name);
    }
    if (st == MLOC_OK && u->offset[T] != U)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s/%s: the taps hold %d units, 'units' says %lld", dir, name,
                        u->offset[T], (long long)U);
    json_decref(doc);
#define FILE_OF(suffix) (snprintf(name, sizeof name, "%s%s", prefix, suffix), name)
    if (st == MLOC_OK) st = read_npy(ctx, dir, FILE_OF("_points.npy"), MLOC_DTYPE_I64, n, -1, (void **)&u->points);
    if (st == MLOC_OK) st = read_npy(ctx, dir, FILE_OF("_score.npy"), MLOC_DTYPE_F64, U, -1, (void **)&u->score);
    if (st == MLOC_OK) st = read_npy(ctx, dir, FILE_OF("_mu_max.npy"), MLOC_DTYPE_F64, U, -1, (void **)&u->mu_max);
    if (st == MLOC_OK) st = read_npy(ctx, dir, FILE_OF("_mu_rest.npy"), MLOC_DTYPE_F64, U, -1, (void **)&u->mu_rest);
    if (st == MLOC_OK) st = read_npy(ctx, dir, FILE_OF("_argmax.npy"), MLOC_DTYPE_I64, U, -1, (void **)&u->argmax);
    if (st == MLOC_OK) st = read_npy(ctx, dir, FILE_OF("_dead.npy"), MLOC_DTYPE_U8, U, -1, (void **)&u->dead);
#undef FILE_OF
    if (st != MLOC_OK) mloc_unit_scores_free(u);
    return st;
}

/* ---- analyses ------------------------------------------------------------------------- */

typedef struct {
    const mloc_sslmem_result *r;
    const mloc_consistency_pair *pairs;
    const mloc_unit_scores *top, *least;
    const mloc_ttest *tests;
    const mloc_mumax_row *rows;
} analysis_rows;

static int consistency_row(void *user, int64_t i, char *buf, size_t size) {
    const analysis_rows *s = user;
    const mloc_consistency_pair *p = &s->pairs[i];
    char v[3][40];
    mloc_metrics_fmt_double(v[0], sizeof v[0], p->overlap);
    mloc_metrics_fmt_double(v[1], sizeof v[1], p->kendall.tau);
    mloc_metrics_fmt_double(v[2], sizeof v[2], p->kendall.p);
    return snprintf(buf, size, "%s,%s,%s,%s,%s,%d", s->r->tap_names[p->a], s->r->tap_names[p->b], v[0], v[1], v[2],
                    p->kendall.exact);
}

mloc_status mloc_consistency_write(mloc_ctx *ctx, const char *dir, const mloc_sslmem_result *r,
                                   int64_t k, const mloc_consistency_pair *pairs) {
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    const int64_t np = (int64_t)r->n_taps * (r->n_taps - 1) / 2;
    analysis_rows rows = {.r = r, .pairs = pairs};
    char path[PATH_MAX_LEN];
    MLOC_TRY(mloc_metrics_path(ctx, path, sizeof path, dir, "consistency.csv"));
    MLOC_TRY(mloc_metrics_write_csv(ctx, path, "tap_a,tap_b,overlap_pct,tau_b,p,exact", np, consistency_row, &rows));
    json_t *doc = json_object(), *arr = json_array();
    json_object_set_new(doc, "schema", json_string("memloc.consistency/1"));
    json_object_set_new(doc, "points", json_integer((json_int_t)r->n));
    json_object_set_new(doc, "top_k", json_integer((json_int_t)(k < r->n ? k : r->n)));
    json_object_set_new(doc, "score", json_string("raw SSLMem per tap; Kendall tau-b two-sided (scipy.stats.kendalltau)"));
    for (int64_t i = 0; i < np; i++) {
        const mloc_consistency_pair *p = &pairs[i];
        json_t *o = json_pack("{s:s, s:s}", "tap_a", r->tap_names[p->a], "tap_b", r->tap_names[p->b]);
        json_object_set_new(o, "overlap_pct", mloc_metrics_json_real(p->overlap));
        json_object_set_new(o, "tau_b", mloc_metrics_json_real(p->kendall.tau));
        json_object_set_new(o, "p", mloc_metrics_json_real(p->kendall.p));
        json_object_set_new(o, "exact", json_boolean(p->kendall.exact));
        json_array_append_new(arr, o);
    }
    json_object_set_new(doc, "pairs", arr);
    return save_json(ctx, dir, "consistency.json", doc);
}

static int ttest_row(void *user, int64_t t, char *buf, size_t size) {
    const analysis_rows *s = user;
    const int64_t a = s->top->offset[t], U = s->top->offset[t + 1] - a;
    char v[5][40];
    mloc_metrics_fmt_double(v[0], sizeof v[0], mloc_stats_mean(s->top->score + a, U));
    mloc_metrics_fmt_double(v[1], sizeof v[1], mloc_stats_mean(s->least->score + s->least->offset[t], U));
    mloc_metrics_fmt_double(v[2], sizeof v[2], s->tests[t].t);
    mloc_metrics_fmt_double(v[3], sizeof v[3], s->tests[t].dof);
    mloc_metrics_fmt_double(v[4], sizeof v[4], s->tests[t].p);
    return snprintf(buf, size, "%s,%lld,%s,%s,%s,%s,%s", s->top->tap_names[t], (long long)U, v[0], v[1], v[2], v[3],
                    v[4]);
}

mloc_status mloc_ttest_write(mloc_ctx *ctx, const char *dir, const mloc_unit_scores *top,
                             const mloc_unit_scores *least, int equal_var,
                             const mloc_ttest *tests) {
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    analysis_rows rows = {.top = top, .least = least, .tests = tests};
    char path[PATH_MAX_LEN];
    MLOC_TRY(mloc_metrics_path(ctx, path, sizeof path, dir, "ttest.csv"));
    MLOC_TRY(mloc_metrics_write_csv(ctx, path, "tap,units,mean_top,mean_least,t,dof,p", top->n_taps, ttest_row, &rows));
    json_t *doc = json_object(), *arr = json_array();
    json_object_set_new(doc, "schema", json_string("memloc.ttest/1"));
    json_object_set_new(doc, "test", json_string(equal_var ? "Student (pooled variance; reference Ttest.py)" : "Welch"));
    json_object_set_new(doc, "alternative", json_string("greater: mean UnitMem over Top > over Least"));
    json_object_set_new(doc, "points_per_set", json_integer((json_int_t)top->n));
    json_object_set_new(doc, "top_points", i64_array(top->points, top->n));
    json_object_set_new(doc, "least_points", i64_array(least->points, least->n));
    for (int t = 0; t < top->n_taps; t++) {
        const int64_t a = top->offset[t], U = top->offset[t + 1] - a;
        json_t *o = json_pack("{s:s, s:I}", "tap", top->tap_names[t], "units", (json_int_t)U);
        json_object_set_new(o, "mean_top", mloc_metrics_json_real(mloc_stats_mean(top->score + a, U)));
        json_object_set_new(o, "mean_least", mloc_metrics_json_real(mloc_stats_mean(least->score + least->offset[t], U)));
        json_object_set_new(o, "t", mloc_metrics_json_real(tests[t].t));
        json_object_set_new(o, "dof", mloc_metrics_json_real(tests[t].dof));
        json_object_set_new(o, "p", mloc_metrics_json_real(tests[t].p));
        json_array_append_new(arr, o);
    }
    json_object_set_new(doc, "taps", arr);
    return save_json(ctx, dir, "ttest.json", doc);
}

static int mumax_row(void *user, int64_t i, char *buf, size_t size) {
    const analysis_rows *s = user;
    const mloc_mumax_row *r = &s->rows[i];
    char v[40];
    mloc_metrics_fmt_double(v, sizeof v, r->sslmem);
    return snprintf(buf, size, "%lld,%lld,%lld,%s", (long long)r->point, (long long)r->units, (long long)r->rank,
                    r->rank > 0 ? v : "");
}

mloc_status mloc_mumax_write(mloc_ctx *ctx, const char *dir, const mloc_unit_scores *u, int tap,
                             const mloc_mumax_row *rows, int64_t n_rows, int64_t n_sslmem) {
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    analysis_rows ar = {.rows = rows};
    char path[PATH_MAX_LEN];
    MLOC_TRY(mloc_metrics_path(ctx, path, sizeof path, dir, "mumax.csv"));
    MLOC_TRY(mloc_metrics_write_csv(ctx, path, "index,units,rank,sslmem", n_rows, mumax_row, &ar));
    const int64_t U = u->offset[tap + 1] - u->offset[tap];
    int64_t live = 0, ranked_units = 0;
    double rank_sum = 0;
    for (int64_t i = 0; i < n_rows; i++) {
        live += rows[i].units;
        if (rows[i].rank > 0) {
            ranked_units += rows[i].units;
            rank_sum += (double)rows[i].rank * (double)rows[i].units;
        }
    }
    json_t *doc = json_object(), *arr = json_array();
    json_object_set_new(doc, "schema", json_string("memloc.mumax/1"));
    json_object_set_new(doc, "tap", json_string(u->tap_names[tap]));
    json_object_set_new(doc, "units", json_integer((json_int_t)U));
    json_object_set_new(doc, "live_units", json_integer((json_int_t)live));
    json_object_set_new(doc, "points_evaluated", json_integer((json_int_t)u->n));
    json_object_set_new(doc, "distinct_argmax_points", json_integer((json_int_t)n_rows));
    json_object_set_new(doc, "sslmem_points", json_integer((json_int_t)n_sslmem));
    json_object_set_new(doc, "mean_rank_per_unit",
                        mloc_metrics_json_real(ranked_units ? rank_sum / (double)ranked_units : NAN));
    json_object_set_new(doc, "mean_rank_if_random", mloc_metrics_json_real(n_sslmem ? (n_sslmem + 1) / 2.0 : NAN));
    json_object_set_new(doc, "rank", json_string("1-based, by SSLMem at the encoder output, descending; 0: not evaluated"));
    for (int64_t i = 0; i < n_rows; i++) {
        json_t *o = json_pack("{s:I, s:I, s:I}", "index", (json_int_t)rows[i].point, "units",
                              (json_int_t)rows[i].units, "rank", (json_int_t)rows[i].rank);
        json_object_set_new(o, "sslmem", mloc_metrics_json_real(rows[i].sslmem));
        json_array_append_new(arr, o);
    }
    json_object_set_new(doc, "points", arr);
    return save_json(ctx, dir, "mumax.json", doc);
}
