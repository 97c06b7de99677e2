#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int interrupt_flag;
static volatile sig_atomic_t last_signal;

static void on_signal(int sig) {
    last_signal = sig;
    if (interrupt_flag) {
        /* second Ctrl-C: stop now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupt_flag = 1;
}

int cli_signal_exit_code(void) {
    if (last_signal == SIGINT) return 130;
    if (last_signal == SIGTERM) return 143;
    return 0;
}

/* ---- progress ------------------------------------------------------------ */

typedef struct {
    int tty;
    double start, last_draw;
    int64_t start_done; /* done when this progress (re)started */
    char what[32];
} progress_state;

static progress_state progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void on_progress(void *user, const char *what, int64_t done, int64_t total,
                        const char *status) {
    (void)user;
    double t = now_s();
    if (strncmp(progress.what, what, sizeof progress.what - 1) != 0 || done == 0) {
        snprintf(progress.what, sizeof progress.what, "%s", what);
        progress.start = t;
        progress.start_done = done;
        progress.last_draw = progress.tty ? 0 : t;
    }
    int finished = total > 0 && done >= total;
    /* a terminal redraws at most every 0.1 s; a log gets a line every 10 s,
     * and a final line only for work that took that long */
    double min_gap = progress.tty ? 0.1 : 10.0;
    if (finished && !progress.tty && t - progress.start < min_gap) return;
    if (!finished && t - progress.last_draw < min_gap) return;
    progress.last_draw = t;
    double frac = total > 0 ? (double)done / total : 0;
    double elapsed = t - progress.start;
    char eta[32];
    /* the rate since this progress (re)started: a resumed run, or training
     * continuing after a kNN monitor pass, starts with done > 0 */
    int64_t since = done - progress.start_done;
    fmt_eta(eta, sizeof eta, since > 0 && total > 0 ? elapsed * (double)(total - done) / since : NAN);
    if (progress.tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s ETA %s", what, bar, (long long)done,
                (long long)total, status, eta);
        if (finished) fputc('\n', stderr);
    } else {
        fprintf(stderr, "memloc: %s %lld/%lld %s (elapsed %.0fs, ETA %s)\n", what,
                (long long)done, (long long)total, status, elapsed, eta);
    }
    fflush(stderr);
}

mloc_ctx *cli_ctx(const cli_common *common) {
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = common->threads;
    cfg.seed = common->seed;
    cfg.log_level = common->debug ? MLOC_LOG_DEBUG
                    : common->verbose ? MLOC_LOG_INFO
                    : common->quiet ? MLOC_LOG_ERROR
                                    : MLOC_LOG_WARN;
    cfg.interrupt_flag = &interrupt_flag;
    if (!common->quiet) {
        cfg.progress_fn = on_progress;
        progress.tty = isatty(2);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    mloc_ctx *ctx = NULL;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) {
        fprintf(stderr, "memloc: %s: out of memory creating the context\n", common->cmd);
        return NULL;
    }
    return ctx;
}

static const char *hint_for(mloc_status st) {
    switch (st) {
    case MLOC_ERR_USAGE: return "check the options; see --help";
    case MLOC_ERR_DATA: return "the input is malformed";
    case MLOC_ERR_NOINPUT: return "check the path";
    case MLOC_ERR_UNSUPPORTED: return "not supported by this build";
    case MLOC_ERR_NOMEM: return "out of memory: try a smaller --batch-size";
    case MLOC_ERR_CANTCREAT: return "check that the output directory is writable";
    case MLOC_ERR_IO: return "read/write error: check disk space";
    case MLOC_ERR_CONFIG: return "check the option value or the configuration file";
    case MLOC_ERR_DIVERGED: return "try a lower --lr";
    case MLOC_ERR_INTERRUPTED: return "interrupted; resume with the same command or --resume";
    default: return "this is a bug; please report it with --debug output";
    }
}

int cli_fail(mloc_ctx *ctx, mloc_status st, const char *cmd) {
    const char *detail = ctx ? mloc_ctx_error(ctx) : "";
    if (!detail[0]) detail = mloc_status_text(st);
    if (st == MLOC_ERR_INTERRUPTED) {
        fprintf(stderr, "memloc: %s: %s\n", cmd, detail);
        int sig = cli_signal_exit_code();
        return sig ? sig : 130;
    }
    fprintf(stderr, "memloc: %s: %s (%s)\n", cmd, detail, hint_for(st));
    return mloc_status_exit_code(st);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "memloc: %s: %s (see 'memloc %s --help')\n", cmd, msg, cmd);
    return 64;
}

int cli_parse_int(const char *cmd, const char *opt, const char *text, long long lo,
                  long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        cli_usage(cmd, "%s: '%s' is not an integer in [%lld, %lld]", opt, text, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
                     double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        cli_usage(cmd, "%s: '%s' is not a number in [%g, %g]", opt, text, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_choice(const char *cmd, const char *opt, const char *text,
                     const char *const *choices) {
    for (int i = 0; choices[i]; i++)
        if (strcmp(text, choices[i]) == 0) return i;
    char list[512] = "";
    for (int i = 0; choices[i]; i++) {
        if (i) strncat(list, "|", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    cli_usage(cmd, "%s: '%s' is not one of %s", opt, text, list);
    return -1;
}

int cli_color(FILE *stream) {
    const char *nc = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    if (nc && nc[0]) return 0;
    if (term && strcmp(term, "dumb") == 0) return 0;
    return isatty(fileno(stream));
}

/* ---- option tables ---------------------------------------------------------- */

struct option *cli_table_options(const mloc_option_table *const *tables, int n_tables,
                                 const struct option *extra) {
    int n = 0, n_extra = 0;
    for (int t = 0; t < n_tables; t++) n += tables[t]->n;
    while (extra && extra[n_extra].name) n_extra++;
    struct option *o = calloc((size_t)(n + n_extra + 1), sizeof *o);
    if (!o) return NULL;
    int k = 0;
    for (int t = 0; t < n_tables; t++)
        for (int i = 0; i < tables[t]->n; i++, k++) {
            const mloc_option *op = &tables[t]->opts[i];
            char *flag = strdup(op->name);
            if (!flag) {
                cli_table_options_free(o);
                return NULL;
            }
            for (char *p = flag; *p; p++)
                if (*p == '_') *p = '-';
            o[k].name = flag;
            o[k].has_arg = op->type == MLOC_OPT_T_BOOL ? optional_argument : required_argument;
            o[k].val = CLI_TABLE_VAL(t, i);
        }
    for (int e = 0; e < n_extra; e++) o[k + e] = extra[e];
    return o;
}

void cli_table_options_free(struct option *opts) {
    if (!opts) return;
    for (struct option *o = opts; o->name; o++)
        if (o->val >= 0x10000) free((char *)o->name);
    free(opts);
}

int cli_table_decode(int val, int *table, int *index) {
    if (val < 0x10000) return 0;
    *table = (val - 0x10000) >> 12;
    *index = (val - 0x10000) & 0xfff;
    return 1;
}

void cli_table_help(FILE *out, const mloc_option_table *t) {
    for (int i = 0; i < t->n; i++) {
        const mloc_option *o = &t->opts[i];
        char flag[64], left[160];
        snprintf(flag, sizeof flag, "--%s", o->name);
        for (char *p = flag; *p; p++)
            if (*p == '_') *p = '-';
        const char *arg = o->type == MLOC_OPT_T_BOOL ? "" : o->type == MLOC_OPT_T_CHOICE ? o->choices : "X";
        snprintf(left, sizeof left, "%s %s", flag, arg);
        fprintf(out, "  %-34s %s", left, o->help);
        if (o->def[0]) fprintf(out, " [%s]", o->def);
        fputc('\n', out);
    }
}

mloc_status cli_table_apply(mloc_ctx *ctx, int argc, char **argv, const struct option *opts,
                            const mloc_option_table *const *tables, void *const *cfgs) {
    optind = 1;
    opterr = 0;
    int c, li;
    mloc_status st = MLOC_OK;
    while (st == MLOC_OK && (c = getopt_long(argc, argv, "qvhj:", opts, &li)) != -1) {
        int t, i;
        if (!cli_table_decode(c, &t, &i)) continue;
        const mloc_option *o = &tables[t]->opts[i];
        const char *v = optarg ? optarg : (o->type == MLOC_OPT_T_BOOL ? "1" : "");
        st = mloc_options_set_index(ctx, tables[t], cfgs[t], i, v);
        if (st != MLOC_OK) mloc_error_prefix(ctx, st, "--%s", opts[li].name);
    }
    return st;
}
