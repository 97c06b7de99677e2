/* The option-table engine (include/memloc/options.h): defaults, parsing
 * from text, printing, JSON and YAML for any struct described by a table. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "memloc/options.h"

/* "batch-size" and "batch_size" name the same option. */
int mloc_options_find(const mloc_option_table *t, const char *name) {
    for (int i = 0; i < t->n; i++) {
        const char *a = t->opts[i].name, *b = name;
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

static mloc_status set_one(mloc_ctx *ctx, void *cfg, const mloc_option *o, const char *value) {
    void *field = (char *)cfg + o->offset;
    char *end;
    errno = 0;
    switch (o->type) {
    case MLOC_OPT_T_STR:
        if (strlen(value) >= MLOC_OPT_STR_MAX)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: value longer than %d characters", o->name,
                              MLOC_OPT_STR_MAX - 1);
        strcpy(field, value);
        return MLOC_OK;
    case MLOC_OPT_T_INT: {
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < -2147483647L || v > 2147483647L)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not an integer", o->name, value);
        *(int *)field = (int)v;
        return MLOC_OK;
    }
    case MLOC_OPT_T_REAL: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not a finite number", o->name, value);
        *(double *)field = v;
        return MLOC_OK;
    }
    case MLOC_OPT_T_U64: {
        if (value[0] == '-')
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not a non-negative integer", o->name,
                              value);
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not a non-negative integer", o->name,
                              value);
        *(uint64_t *)field = v;
        return MLOC_OK;
    }
    case MLOC_OPT_T_BOOL:
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on")) {
            *(int *)field = 1;
            return MLOC_OK;
        }
        if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off")) {
            *(int *)field = 0;
            return MLOC_OK;
        }
        return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not true|false", o->name, value);
    case MLOC_OPT_T_CHOICE: {
        int k = choice_index(o->choices, value);
        if (k < 0)
            return mloc_error(ctx, MLOC_ERR_CONFIG, "option %s: '%s' is not one of %s", o->name, value,
                              o->choices);
        *(int *)field = k;
        return MLOC_OK;
    }
    }
    return MLOC_ERR_INTERNAL;
}

void mloc_options_defaults(const mloc_option_table *t, void *cfg) {
    for (int i = 0; i < t->n; i++) {
        mloc_status st = set_one(NULL, cfg, &t->opts[i], t->opts[i].def);
        (void)st; /* the defaults are valid by construction (tests check them) */
    }
}

mloc_status mloc_options_set_index(mloc_ctx *ctx, const mloc_option_table *t, void *cfg, int i,
                                   const char *value) {
    return set_one(ctx, cfg, &t->opts[i], value);
}

mloc_status mloc_options_set(mloc_ctx *ctx, const mloc_option_table *t, void *cfg, const char *name,
                             const char *value) {
    int i = mloc_options_find(t, name);
    if (i < 0) {
        char list[2048] = "";
        for (int k = 0; k < t->n; k++) {
            if (k) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, t->opts[k].name, sizeof list - strlen(list) - 1);
        }
        return mloc_error(ctx, MLOC_ERR_CONFIG, "unknown %s option '%s' (known: %s)", t->what, name, list);
    }
    return set_one(ctx, cfg, &t->opts[i], value);
}

const char *mloc_options_get(const mloc_option_table *t, const void *cfg, int i, char *buf, size_t size) {
    const mloc_option *o = &t->opts[i];
    const void *field = (const char *)cfg + o->offset;
    switch (o->type) {
    case MLOC_OPT_T_STR: snprintf(buf, size, "%s", (const char *)field); break;
    case MLOC_OPT_T_INT:
    case MLOC_OPT_T_BOOL: snprintf(buf, size, "%d", *(const int *)field); break;
    case MLOC_OPT_T_REAL: snprintf(buf, size, "%.17g", *(const double *)field); break;
    case MLOC_OPT_T_U64: snprintf(buf, size, "%" PRIu64, *(const uint64_t *)field); break;
    case MLOC_OPT_T_CHOICE: choice_name(o->choices, *(const int *)field, buf, size); break;
    }
    return buf;
}

json_t *mloc_options_to_json(const mloc_option_table *t, const void *cfg) {
    json_t *o = json_object();
    char buf[MLOC_OPT_STR_MAX];
    for (int i = 0; i < t->n; i++) {
        const mloc_option *op = &t->opts[i];
        const void *field = (const char *)cfg + op->offset;
        json_t *v = NULL;
        switch (op->type) {
        case MLOC_OPT_T_STR: v = json_string((const char *)field); break;
        case MLOC_OPT_T_INT: v = json_integer(*(const int *)field); break;
        case MLOC_OPT_T_BOOL: v = json_boolean(*(const int *)field); break;
        case MLOC_OPT_T_REAL: v = json_real(*(const double *)field); break;
        case MLOC_OPT_T_U64: v = json_string(mloc_options_get(t, cfg, i, buf, sizeof buf)); break;
        case MLOC_OPT_T_CHOICE: v = json_string(mloc_options_get(t, cfg, i, buf, sizeof buf)); break;
        }
        json_object_set_new(o, op->name, v);
    }
    return o;
}

mloc_status mloc_options_from_json(mloc_ctx *ctx, const mloc_option_table *t, void *cfg,
                                   const json_t *obj) {
    if (!json_is_object(obj)) return mloc_error(ctx, MLOC_ERR_CONFIG, "%s options: expected a JSON object", t->what);
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
        MLOC_TRY(mloc_options_set(ctx, t, cfg, key, text));
    }
    return MLOC_OK;
}

mloc_status mloc_options_load_yaml(mloc_ctx *ctx, const mloc_option_table *const *tables,
                                   void *const *cfgs, int n_tables, const char *path) {
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
                int k = 0;
                while (k < n_tables && mloc_options_find(tables[k], key) < 0) k++;
                st = mloc_options_set(ctx, tables[k < n_tables ? k : 0], cfgs[k < n_tables ? k : 0], key,
                                      (const char *)ev.data.scalar.value);
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
