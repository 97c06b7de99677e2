/* Status codes shared by the library and the CLI.
 *
 * One table generates the enum, the names and the exit codes (sysexits.h
 * values, FORMATS.md section 5). The library returns a status and leaves a
 * one-line detail message in its context (mloc_ctx_error); only src/cli maps a
 * status to a process exit code. */
#ifndef MEMLOC_STATUS_H
#define MEMLOC_STATUS_H

/*        name            exit  meaning */
#define MLOC_STATUS_LIST(X)                                                   \
    X(OK,               0,   "success")                                      \
    X(ERR_USAGE,        64,  "invalid argument")                             \
    X(ERR_DATA,         65,  "malformed data")                               \
    X(ERR_NOINPUT,      66,  "input missing or unreadable")                  \
    X(ERR_UNSUPPORTED,  69,  "not supported")                                \
    X(ERR_INTERNAL,     70,  "internal error")                               \
    X(ERR_NOMEM,        71,  "out of memory")                                \
    X(ERR_CANTCREAT,    73,  "cannot create output")                         \
    X(ERR_IO,           74,  "read/write error")                             \
    X(ERR_CONFIG,       78,  "invalid configuration")                        \
    X(ERR_DIVERGED,     1,   "training diverged")                            \
    X(ERR_INTERRUPTED,  130, "interrupted")

typedef enum {
#define MLOC_X(name, code, text) MLOC_##name,
    MLOC_STATUS_LIST(MLOC_X)
#undef MLOC_X
    MLOC_STATUS_COUNT
} mloc_status;

/* "ERR_DATA" etc.; never NULL. */
const char *mloc_status_name(mloc_status st);
/* Human text: "malformed data"; never NULL. */
const char *mloc_status_text(mloc_status st);
/* Process exit code (sysexits). */
int mloc_status_exit_code(mloc_status st);

/* Propagate a failing status: `MLOC_TRY(f(x));` returns it from the caller.
 * Use only where there is nothing to clean up; otherwise `goto fail`. */
#define MLOC_TRY(expr)                                                        \
    do {                                                                      \
        mloc_status mloc_try_st_ = (expr);                                    \
        if (mloc_try_st_ != MLOC_OK) return mloc_try_st_;                     \
    } while (0)

#endif
