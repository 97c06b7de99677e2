/* Option tables: one X-macro list per configuration struct generates the
 * struct's fields, its defaults, the CLI flags, the YAML config keys, the JSON
 * written into run directories and the --help text, so they never drift
 * apart (see MLOC_TRAIN_OPTIONS in train.h for an example).
 *
 * An X-macro entry is X(name, type, field, default, choices, help) with type
 * one of STR (char[MLOC_OPT_STR]), INT (int), REAL (double), U64 (uint64_t),
 * BOOL (int 0/1) or CHOICE (int, index into "a|b|c"). */
#ifndef MEMLOC_OPTIONS_H
#define MEMLOC_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "memloc/context.h"

#define MLOC_OPT_STR_MAX 1024

typedef enum { MLOC_OPT_T_STR, MLOC_OPT_T_INT, MLOC_OPT_T_REAL, MLOC_OPT_T_U64, MLOC_OPT_T_BOOL,
               MLOC_OPT_T_CHOICE } mloc_option_type;

/* Field declarations for a struct generated from an option list:
 *     typedef struct { MY_OPTIONS(MLOC_OPT_FIELD) } my_config;           */
#define MLOC_OPT_CTYPE_STR char
#define MLOC_OPT_CTYPE_INT int
#define MLOC_OPT_CTYPE_REAL double
#define MLOC_OPT_CTYPE_U64 uint64_t
#define MLOC_OPT_CTYPE_BOOL int
#define MLOC_OPT_CTYPE_CHOICE int
#define MLOC_OPT_DIM_STR [MLOC_OPT_STR_MAX]
#define MLOC_OPT_DIM_INT
#define MLOC_OPT_DIM_REAL
#define MLOC_OPT_DIM_U64
#define MLOC_OPT_DIM_BOOL
#define MLOC_OPT_DIM_CHOICE
#define MLOC_OPT_FIELD(name, type, field, def, choices, help) \
    MLOC_OPT_CTYPE_##type field MLOC_OPT_DIM_##type;

typedef struct {
    const char *name;        /* "batch_size"; the CLI flag is --batch-size */
    mloc_option_type type;
    size_t offset;           /* of the field in the config struct */
    const char *def;         /* default as text */
    const char *choices;     /* "a|b|c" for CHOICE, else NULL */
    const char *help;
} mloc_option;

typedef struct {
    const mloc_option *opts;
    int n;
    const char *what;        /* "train", "experiment": names the table in messages */
} mloc_option_table;

/* The mloc_option array entry for an X-macro entry of struct type T. */
#define MLOC_OPT_ENTRY(T, name, type, field, def, choices, help) \
    {#name, MLOC_OPT_T_##type, offsetof(T, field), def, choices, help},

/* Every field set to its default. */
void mloc_options_defaults(const mloc_option_table *t, void *cfg);
/* Index of an option by name ("batch_size" or "batch-size"); -1 if absent. */
int mloc_options_find(const mloc_option_table *t, const char *name);
/* Set option i / option `name` from text. ERR_CONFIG naming the option and
 * what it accepts; an unknown name lists the known ones. */
mloc_status mloc_options_set_index(mloc_ctx *ctx, const mloc_option_table *t, void *cfg, int i,
                                   const char *value);
mloc_status mloc_options_set(mloc_ctx *ctx, const mloc_option_table *t, void *cfg, const char *name,
                             const char *value);
/* Option i's value as text in buf. */
const char *mloc_options_get(const mloc_option_table *t, const void *cfg, int i, char *buf,
                             size_t size);
/* A JSON object of every option (numbers stay numbers, u64 as a string). */
json_t *mloc_options_to_json(const mloc_option_table *t, const void *cfg);
/* Set every key of a JSON object (ERR_CONFIG for unknown keys / bad values). */
mloc_status mloc_options_from_json(mloc_ctx *ctx, const mloc_option_table *t, void *cfg,
                                   const json_t *obj);
/* A YAML file of `option: value` lines; each key is looked up in the tables
 * in order and set in the matching config. Errors name the file and line. */
mloc_status mloc_options_load_yaml(mloc_ctx *ctx, const mloc_option_table *const *tables,
                                   void *const *cfgs, int n_tables, const char *path);

#endif
