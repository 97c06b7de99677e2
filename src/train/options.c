/* The training options table: defaults, parsing from text (CLI flags, YAML
 * values, config.json), printing and validation, all generated from
 * MLOC_TRAIN_OPTIONS in include/memloc/train.h. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "memloc/io.h"
#include "memloc/train.h"

typedef struct {
    mloc_train_option pub;
    size_t offset;
} option;

static const option options[] = {
#define MLOC_X(name, type, field, def, choices, help) \
    {{#name, MLOC_TOPT_T_##type, def, choices, help}, offsetof(mloc_train_config, field)},
    MLOC_TRAIN_OPTIONS(MLOC_X)
#undef MLOC_X
};

#define N_OPTIONS ((int)(sizeof options / sizeof options[0]))

int mloc_train_option_count(void) { return N_OPTIONS; }

const mloc_train_option *mloc_train_option_get(int i) {
    return i >= 0 && i < N_OPTIONS ? &options[i].pub : NULL;
}

/* "batch-size" and "batch_size" name the same option. */
static int find(const char *name) {
    for (int i = 0; i < N_OPTIONS; i++) {
        const char *a = options[i].pub.name, *b = name;
        while (*a && (*a == *b || (*a == '_' && *b == '-'))) {
            a++;
            b++;
        }
        if (!*a && !*b) return i;
    }
    return -1;
}

/* Index of `value` in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value) {
    int idx = 0;
    size_t n = strlen(value);
    for (const char *p = choices; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0) return idx;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

static const char *choice_name(const char *choices, int index, char *buf, size_t size) {
    const char *p = choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) return "?";
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len >= size) len = size - 1;
    memcpy(buf, p, len);
    buf[len] = 0;
    return buf;
}

static mloc_status set_one(mloc_ctx *ctx, mloc_train_config *cfg, const option *o, const char *value) {
    void *field = (char *)cfg + o->offset;
    char *end;
    errno = 0;
    switch (o->pub.type) {
    case MLOC_TOPT_T_STR:
        if (strlen(value) >= MLOC_TRAIN_STR)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: value longer than %d characters", o->pub.name,
                              MLOC_TRAIN_STR - 1);
        strcpy(field, value);
        return MLOC_OK;
    case MLOC_TOPT_T_INT: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < -2147483647L || v > 2147483647L)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not an integer", o->pub.name, value);
        *(int *)field = (int)v;
        return MLOC_OK;
    }
    case MLOC_TOPT_T_REAL: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not a finite number", o->pub.name, value);
        *(double *)field = v;
        return MLOC_OK;
    }
    case MLOC_TOPT_T_U64: {
        if (value[0] == '-')
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not a non-negative integer", o->pub.name,
                              value);
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not a non-negative integer", o->pub.name,
                              value);
        *(uint64_t *)field = v;
        return MLOC_OK;
    }
    case MLOC_TOPT_T_BOOL:
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on")) {
            *(int *)field = 1;
            return MLOC_OK;
        }
        if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off")) {
            *(int *)field = 0;
            return MLOC_OK;
        }
        return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not true|false", o->pub.name, value);
    case MLOC_TOPT_T_CHOICE: {
        int k = choice_index(o->pub.choices, value);
        if (k < 0)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not one of %s", o->pub.name, value,
                              o->pub.choices);
        *(int *)field = k;
        return MLOC_OK;
    }
    }
    return MLOC_ERR_INTERNAL;
}

mloc_train_config mloc_train_config_default(void) {
    mloc_train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    for (int i = 0; i < N_OPTIONS; i++) {
        mloc_status st = set_one(NULL, &cfg, &options[i], options[i].pub.def);
        (void)st;
    }
    return cfg;
}

mloc_status mloc_train_config_set(mloc_ctx *ctx, mloc_train_config *cfg, const char *name,
                                  const char *value) {
    int i = find(name);
    if (i < 0) {
        char list[2048] = "";
        for (int k = 0; k < N_OPTIONS; k++) {
            if (k) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, options[k].pub.name, sizeof list - strlen(list) - 1);
        }
        return mloc_error(ctx, MLOC_ERR_CONFIG, "unknown option '%s' (known: %s)", name, list);
    }
    return set_one(ctx, cfg, &options[i], value);
}

const char *mloc_train_config_get(const mloc_train_config *cfg, int i, char *buf, size_t size) {
    const option *o = &options[i];
    const void *field = (const char *)cfg + o->offset;
    switch (o->pub.type) {
    case MLOC_TOPT_T_STR: snprintf(buf, size, "%s", (const char *)field); break;
    case MLOC_TOPT_T_INT:
    case MLOC_TOPT_T_BOOL: snprintf(buf, size, "%d", *(const int *)field); break;
    case MLOC_TOPT_T_REAL: snprintf(buf, size, "%.17g", *(const double *)field); break;
    case MLOC_TOPT_T_U64: snprintf(buf, size, "%" PRIu64, *(const uint64_t *)field); break;
    case MLOC_TOPT_T_CHOICE: choice_name(o->pub.choices, *(const int *)field, buf, size); break;
    }
    return buf;
}

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) return mloc_error(ctx, MLOC_ERR_CONFIG, __VA_ARGS__);                \
    } while (0)

mloc_status mloc_train_config_check(mloc_ctx *ctx, const mloc_train_config *c) {
    CHECK(c->data[0], "option data: a dataset spec is required (e.g. fmnist, folder:PATH/train)");
    CHECK(c->image_size >= 16 && c->image_size <= 1024, "option image_size: %d, expected 16..1024", c->image_size);
    CHECK(c->width > 0 && c->width <= 16, "option width: %g, expected (0, 16]", c->width);
    CHECK(c->proj_hidden >= 1 && c->proj_dim >= 1, "options proj_hidden / proj_dim must be >= 1");
    CHECK(c->temperature > 0, "option temperature: %g, expected > 0", c->temperature);
    CHECK(c->epochs >= 1, "option epochs: %d, expected >= 1", c->epochs);
    CHECK(c->batch_size >= 2 && c->batch_size <= 65536, "option batch_size: %d, expected 2..65536",
          c->batch_size);
    CHECK(c->lr > 0 && c->lr < 100, "option lr: %g, expected in (0, 100)", c->lr);
    CHECK(c->weight_decay >= 0, "option weight_decay: %g, expected >= 0", c->weight_decay);
    CHECK(c->momentum >= 0 && c->momentum < 1, "option momentum: %g, expected in [0, 1)", c->momentum);
    CHECK(c->warmup_epochs >= 0 && c->warmup_epochs < c->epochs,
          "option warmup_epochs: %g, expected in [0, epochs=%d)", c->warmup_epochs, c->epochs);
    CHECK(c->warmup_epochs == 0 || c->schedule == MLOC_SCHED_OPT_COSINE,
          "option warmup_epochs: needs schedule cosine (got constant)");
    CHECK(c->min_lr >= 0 && c->min_lr <= c->lr, "option min_lr: %g, expected in [0, lr]", c->min_lr);
    CHECK(c->aug_strength >= 0 && c->aug_strength <= 10, "option aug_strength: %g, expected 0..10",
          c->aug_strength);
    CHECK(c->crop_scale_min > 0 && c->crop_scale_min <= 1, "option crop_scale_min: %g, expected (0, 1]",
          c->crop_scale_min);
    CHECK(c->knn_k >= 1, "option knn_k: %d, expected >= 1", c->knn_k);
    CHECK(c->knn_t > 0, "option knn_t: %g, expected > 0", c->knn_t);
    CHECK(c->threads >= 0 && c->threads <= 1024, "option threads: %d, expected 0..1024", c->threads);
    CHECK(c->workers >= 0 && c->workers <= 64, "option workers: %d, expected 0..64", c->workers);
    CHECK(c->log_every >= 1, "option log_every: %d, expected >= 1", c->log_every);
    CHECK(c->checkpoint_every >= 1, "option checkpoint_every: %d, expected >= 1", c->checkpoint_every);
    CHECK(c->keep_checkpoints >= 0, "option keep_checkpoints: %d, expected >= 0", c->keep_checkpoints);
    CHECK(!c->monitor_knn[0] || strchr(c->monitor_knn, ','),
          "option monitor_knn: '%s', expected TRAIN_SPEC,TEST_SPEC", c->monitor_knn);
    return MLOC_OK;
}

json_t *mloc_train_config_to_json(const mloc_train_config *cfg) {
    json_t *o = json_object();
    char buf[MLOC_TRAIN_STR];
    for (int i = 0; i < N_OPTIONS; i++) {
        const option *op = &options[i];
        const void *field = (const char *)cfg + op->offset;
        json_t *v = NULL;
        switch (op->pub.type) {
        case MLOC_TOPT_T_STR: v = json_string((const char *)field); break;
        case MLOC_TOPT_T_INT: v = json_integer(*(const int *)field); break;
        case MLOC_TOPT_T_BOOL: v = json_boolean(*(const int *)field); break;
        case MLOC_TOPT_T_REAL: v = json_real(*(const double *)field); break;
        case MLOC_TOPT_T_U64: v = json_string(mloc_train_config_get(cfg, i, buf, sizeof buf)); break;
        case MLOC_TOPT_T_CHOICE: v = json_string(mloc_train_config_get(cfg, i, buf, sizeof buf)); break;
        }
        json_object_set_new(o, op->pub.name, v);
    }
    return o;
}

mloc_status mloc_train_config_from_json(mloc_ctx *ctx, mloc_train_config *cfg, const json_t *obj) {
    if (!json_is_object(obj)) return mloc_error(ctx, MLOC_ERR_CONFIG, "options: expected a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char buf[64];
        const char *text;
        if (json_is_string(v)) text = json_string_value(v);
        else if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = buf;
        } else if (json_is_real(v)) {
            snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
            text = buf;
        } else if (json_is_boolean(v)) {
            text = json_is_true(v) ? "1" : "0";
        } else {
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: expected a string, number or boolean", key);
        }
        MLOC_TRY(mloc_train_config_set(ctx, cfg, key, text));
    }
    return MLOC_OK;
}

mloc_status mloc_train_config_load_yaml(mloc_ctx *ctx, mloc_train_config *cfg, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_event_t ev;
    mloc_status st = MLOC_OK;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    /* stream-start, document-start, mapping-start, then key/value scalars */
    int depth = 0, expect_key = 1, done = 0;
    char key[256] = "";
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            st = mloc_error(ctx, MLOC_ERR_CONFIG, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                            parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error");
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
            if (++depth > 1)
                st = mloc_error(ctx, MLOC_ERR_CONFIG, "%s:%zu: option '%s': nested mappings are not options",
                                path, line, key);
            break;
        case YAML_MAPPING_END_EVENT: depth--; break;
        case YAML_SEQUENCE_START_EVENT:
            st = mloc_error(ctx, MLOC_ERR_CONFIG, "%s:%zu: option '%s': lists are not supported", path, line, key);
            break;
        case YAML_SCALAR_EVENT:
            if (depth != 1) {
                st = mloc_error(ctx, MLOC_ERR_CONFIG, "%s:%zu: expected a mapping of option: value", path, line);
            } else if (expect_key) {
                snprintf(key, sizeof key, "%s", (const char *)ev.data.scalar.value);
                expect_key = 0;
            } else {
                st = mloc_train_config_set(ctx, cfg, key, (const char *)ev.data.scalar.value);
                if (st != MLOC_OK) mloc_error_prefix(ctx, st, "%s:%zu", path, line);
                expect_key = 1;
            }
            break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        yaml_event_delete(&ev);
        if (st != MLOC_OK) break;
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return st;
}

mloc_status mloc_train_config_load_run(mloc_ctx *ctx, mloc_train_config *cfg, const char *run_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    json_t *doc = NULL;
    MLOC_TRY(mloc_json_load(ctx, path, &doc));
    json_t *opts = json_object_get(doc, "options");
    *cfg = mloc_train_config_default();
    mloc_status st = opts ? mloc_train_config_from_json(ctx, cfg, opts)
                          : mloc_error(ctx, MLOC_ERR_CONFIG, "%s: no \"options\" object", path);
    if (st != MLOC_OK && opts) mloc_error_prefix(ctx, st, "%s", path);
    json_decref(doc);
    return st;
}
