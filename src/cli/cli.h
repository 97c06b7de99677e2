/* The CLI: the only code that prints to the user and decides exit codes.
 * Each command lives in src/cli/cmd_<name>.c and exposes
 *     int cmd_<name>(int argc, char **argv);
 * (argv[0] is the command name), registered in main.c. */
#ifndef MLOC_CLI_H
#define MLOC_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "memloc/context.h"
#include "memloc/options.h"

/* Options every command accepts (FORMATS.md section 5). */
typedef struct {
    int threads;     /* -j/--jobs, --threads; 0 = all CPUs */
    uint64_t seed;   /* --seed */
    int quiet;       /* -q/--quiet */
    int verbose;     /* -v/--verbose (repeatable) */
    int debug;       /* --debug */
    const char *cmd; /* command name for messages */
} cli_common;

/* Set a context up from the common options: threads, seed, log level, the
 * SIGINT/SIGTERM flag and (unless quiet) a progress reporter on stderr that
 * draws a bar on a terminal and prints a line every few seconds otherwise.
 * Returns NULL after printing an error. */
mloc_ctx *cli_ctx(const cli_common *common);

/* Print "memloc: <cmd>: <detail> (<hint>)" for a library failure and return
 * the exit code for st. The detail comes from mloc_ctx_error(ctx). */
int cli_fail(mloc_ctx *ctx, mloc_status st, const char *cmd);
/* Print "memloc: <cmd>: <message> (see 'memloc <cmd> --help')" and return 64. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 130 after SIGINT, 143 after SIGTERM, 0 if no signal arrived. */
int cli_signal_exit_code(void);

/* Parse helpers: on failure they print a usage error naming the option and
 * the accepted values and return 0. */
int cli_parse_int(const char *cmd, const char *opt, const char *text, long long lo,
                  long long hi, long long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
                     double *out);
/* `text` must be one of the NULL-terminated `choices`; returns its index or -1
 * after printing "--opt: 'x' is not one of a|b|c". */
int cli_parse_choice(const char *cmd, const char *opt, const char *text,
                     const char *const *choices);

/* ---- option tables on the command line ---------------------------------
 * Every option of the tables becomes a long flag (--batch-size for
 * batch_size; BOOL options take an optional value) with getopt value
 * CLI_TABLE_VAL(table, index); `extra` (terminated by a zero entry) is
 * appended. Free the result with cli_table_options_free. */
#define CLI_TABLE_VAL(table, index) (0x10000 + ((table) << 12) + (index))
struct option;
struct option *cli_table_options(const mloc_option_table *const *tables, int n_tables,
                                 const struct option *extra);
void cli_table_options_free(struct option *opts);
/* For a getopt value: 1 and (table, index) when it is a table option. */
int cli_table_decode(int val, int *table, int *index);
/* The options of a table as help lines: "  --flag CHOICES   help [default]". */
void cli_table_help(FILE *out, const mloc_option_table *t);
/* Apply the table options of argv (second getopt pass) to cfgs; returns
 * MLOC_OK or the failing status with the flag named in ctx's message. */
mloc_status cli_table_apply(mloc_ctx *ctx, int argc, char **argv, const struct option *opts,
                            const mloc_option_table *const *tables, void *const *cfgs);

/* Whether stdout / stderr is a terminal with colour allowed (NO_COLOR, TERM). */
int cli_color(FILE *stream);

#endif
