/* memloc experiment: the paper's study end to end (include/memloc/experiment.h). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "memloc/io.h"
#include "memloc/metrics.h"
#include "memloc/stats.h"

static const mloc_option options[] = {
#define MLOC_X(name, type, field, def, choices, help) \
    MLOC_OPT_ENTRY(mloc_experiment_config, name, type, field, def, choices, help)
    MLOC_EXPERIMENT_OPTIONS(MLOC_X)
#undef MLOC_X
};

const mloc_option_table mloc_experiment_options = {options, (int)(sizeof options / sizeof options[0]),
                                                   "experiment"};

mloc_experiment_config mloc_experiment_config_default(void) {
    mloc_experiment_config c;
    memset(&c, 0, sizeof c);
    mloc_options_defaults(&mloc_experiment_options, &c);
    return c;
}

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) return mloc_error(ctx, MLOC_ERR_CONFIG, __VA_ARGS__);                \
    } while (0)

mloc_status mloc_experiment_config_check(mloc_ctx *ctx, const mloc_experiment_config *ex,
                                         const mloc_train_config *train) {
    CHECK(!train->indices[0], "option indices: an experiment splits its whole --data; choose the pool with "
                              "SPEC@INDICES (e.g. fmnist@0:4000)");
    CHECK(train->method == MLOC_METHOD_SIMCLR || (ex->f[0] && ex->g[0]),
          "option method: the experiment trains SimCLR encoders (give --f and --g for others)");
    CHECK(ex->shared >= 0 && ex->candidates > 0 && ex->independent > 0 &&
              ex->shared + ex->candidates + ex->independent <= 1 + 1e-9,
          "options shared/candidates/independent: %g/%g/%g, expected fractions with candidates and independent > 0 "
          "summing to at most 1", ex->shared, ex->candidates, ex->independent);
    CHECK(!ex->f[0] == !ex->g[0], "options f and g: give both weights files or neither");
    CHECK(ex->eval >= 4, "option eval: %d, expected >= 4 candidates", ex->eval);
    CHECK(ex->k >= 1, "option k: %d, expected >= 1", ex->k);
    CHECK(ex->unit_k >= 1, "option unit_k: %d, expected >= 1", ex->unit_k);
    CHECK(ex->random >= 1 && ex->top >= 1, "options random and top must be >= 1");
    CHECK(ex->consistency_k >= 1, "option consistency_k: %d, expected >= 1", ex->consistency_k);
    CHECK(ex->metric_batch >= 1, "option metric_batch: %d, expected >= 1", ex->metric_batch);
    return MLOC_OK;
}

static int exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

/* The experiment's options, so a re-run with other options is refused
 * instead of mixing results. */
static mloc_status check_options(mloc_ctx *ctx, const char *dir, const mloc_train_config *train,
                                 const mloc_experiment_config *ex) {
    char path[4200];
    snprintf(path, sizeof path, "%s/experiment.json", dir);
    json_t *doc = json_pack("{s:s, s:o, s:o}", "schema", "memloc.experiment.config/1", "train",
                            mloc_train_config_to_json(train), "experiment",
                            mloc_options_to_json(&mloc_experiment_options, ex));
    mloc_status st = MLOC_OK;
    if (exists(path)) {
        json_t *old = NULL;
        st = mloc_json_load(ctx, path, &old);
        if (st == MLOC_OK && !json_equal(old, doc))
            st = mloc_error(ctx, MLOC_ERR_CANTCREAT,
                            "%s holds an experiment with other options (%s); use another --out", dir, path);
        json_decref(old);
    } else {
        st = mloc_json_save(ctx, path, doc);
    }
    json_decref(doc);
    return st;
}

/* Index text for a run's training set: compact ranges when they fit an
 * option, else a file beside the split. */
static mloc_status indices_option(mloc_ctx *ctx, char *out, const int64_t *a, int64_t na, const int64_t *b,
                                  int64_t nb, const char *file) {
    int64_t *all = malloc((size_t)(na + nb) * sizeof *all);
    if (!all) return MLOC_ERR_NOMEM;
    memcpy(all, a, (size_t)na * sizeof *all);
    memcpy(all + na, b, (size_t)nb * sizeof *all);
    char *text = mloc_indices_format(all, na + nb);
    mloc_status st = MLOC_OK;
    if (!text) {
        st = MLOC_ERR_NOMEM;
    } else if (strlen(text) < MLOC_OPT_STR_MAX - 1) {
        strcpy(out, text);
    } else {
        FILE *f = fopen(file, "w");
        if (!f) {
            st = mloc_error(ctx, MLOC_ERR_CANTCREAT, "%s: cannot write", file);
        } else {
            for (int64_t i = 0; i < na + nb; i++) fprintf(f, "%" PRId64 "\n", all[i]);
            if (fclose(f) != 0) st = mloc_error(ctx, MLOC_ERR_IO, "%s: write failed", file);
            snprintf(out, MLOC_OPT_STR_MAX, "@%s", file);
        }
    }
    free(text);
    free(all);
    return st;
}

static mloc_status train_encoder(mloc_ctx *ctx, const mloc_train_config *base, const char *indices,
                                 const char *dir, const char *name, int *trained) {
    mloc_train_config c = *base;
    snprintf(c.indices, sizeof c.indices, "%s", indices);
    char run[4200], model[4300];
    snprintf(run, sizeof run, "%s/%s", dir, name);
    snprintf(model, sizeof model, "%s/model.safetensors", run);
    if (exists(model)) {
        /* finished: check that it is this run, never retrain */
        mloc_train_result r;
        MLOC_TRY(mloc_train_run(ctx, &c, run, 1, &r));
        return MLOC_OK;
    }
    mloc_log(ctx, MLOC_LOG_INFO, "training %s in %s", name, run);
    mloc_train_result r;
    mloc_status st = mloc_train_run(ctx, &c, run, 1, &r);
    if (st != MLOC_OK) return mloc_error_prefix(ctx, st, "training %s", name);
    (*trained)++;
    return MLOC_OK;
}

mloc_status mloc_experiment_run(mloc_ctx *ctx, const mloc_train_config *train,
                                const mloc_experiment_config *ex, const char *dir,
                                mloc_experiment_result *res) {
    memset(res, 0, sizeof *res);
    MLOC_TRY(mloc_train_config_check(ctx, train));
    MLOC_TRY(mloc_experiment_config_check(ctx, ex, train));
    MLOC_TRY(mloc_mkdirs(ctx, dir));
    MLOC_TRY(check_options(ctx, dir, train, ex));

    exp_state e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.train = train;
    e.ex = ex;
    snprintf(e.dir, sizeof e.dir, "%s", dir);
    mloc_status st = mloc_train_open_dataset(ctx, train, &e.data, train->data);
    if (st != MLOC_OK) goto done;

    /* The split is in order (SPEC 1): data sorted by class (ImageFolder)
     * would put whole classes into S_C and S_I. */
    if (e.data.labels && e.data.n_classes > 1) {
        int64_t i = 1;
        while (i < e.data.n && e.data.labels[i] >= e.data.labels[i - 1]) i++;
        if (i == e.data.n && e.data.labels[0] != e.data.labels[e.data.n - 1])
            mloc_log(ctx, MLOC_LOG_WARN, "%s is ordered by class: the in-order split puts whole classes into the "
                     "candidates and the independent set; use SPEC@shuffle[:N] for a random order", train->data);
    }

    /* 1. the split */
    char path[4200];
    snprintf(path, sizeof path, "%s/split.json", dir);
    if (exists(path)) {
        st = mloc_split_read(ctx, &e.split, path);
        if (st == MLOC_OK && e.split.n != e.data.n)
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s splits %" PRId64 " items but %s has %" PRId64, path, e.split.n,
                            train->data, e.data.n);
    } else {
        if (ex->split[0])
            st = mloc_split_read(ctx, &e.split, ex->split);
        else
            st = mloc_split_make(ctx, &e.split, e.data.n, ex->shared, ex->candidates, ex->independent);
        if (st == MLOC_OK && e.split.n != e.data.n)
            st = mloc_error(ctx, MLOC_ERR_DATA, "%s splits %" PRId64 " items but %s has %" PRId64, ex->split,
                            e.split.n, train->data, e.data.n);
        if (st == MLOC_OK) st = mloc_split_set_dataset(ctx, &e.split, train->data);
        if (st == MLOC_OK) st = mloc_split_write(ctx, &e.split, path);
    }
    if (st != MLOC_OK) goto done;
    if (e.split.n_candidate < 4 || e.split.n_independent < 1) {
        st = mloc_error(ctx, MLOC_ERR_CONFIG, "the split has %" PRId64 " candidates and %" PRId64
                        " independent points; use more data or larger fractions",
                        e.split.n_candidate, e.split.n_independent);
        goto done;
    }

    /* 2. f and g: identical settings, different data */
    if (ex->f[0]) {
        snprintf(e.f_path, sizeof e.f_path, "%s", ex->f);
        snprintf(e.g_path, sizeof e.g_path, "%s", ex->g);
    } else {
        char fi[MLOC_OPT_STR_MAX], gi[MLOC_OPT_STR_MAX], file[4200];
        snprintf(file, sizeof file, "%s/indices_f.txt", dir);
        st = indices_option(ctx, fi, e.split.shared, e.split.n_shared, e.split.candidate, e.split.n_candidate, file);
        if (st != MLOC_OK) goto done;
        snprintf(file, sizeof file, "%s/indices_g.txt", dir);
        st = indices_option(ctx, gi, e.split.shared, e.split.n_shared, e.split.independent, e.split.n_independent,
                            file);
        if (st != MLOC_OK) goto done;
        st = train_encoder(ctx, train, fi, dir, "f", &res->trained);
        if (st == MLOC_OK) st = train_encoder(ctx, train, gi, dir, "g", &res->trained);
        if (st != MLOC_OK) goto done;
        snprintf(e.f_path, sizeof e.f_path, "%s/f/model.safetensors", dir);
        snprintf(e.g_path, sizeof e.g_path, "%s/g/model.safetensors", dir);
    }

    /* 3. metrics and analyses, 4. summary and report */
    st = mloc_experiment_metrics(&e);
    if (st == MLOC_OK && ex->applications) st = mloc_experiment_applications(&e);
    if (st == MLOC_OK) st = mloc_experiment_summary(&e, res);
    if (st == MLOC_OK) st = mloc_experiment_report(&e, res);
done:
    mloc_experiment_state_free(&e);
    mloc_dataset_free(&e.data);
    mloc_split_free(&e.split);
    return st;
}
