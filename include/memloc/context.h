/* The explicit context every memloc call takes: threads, backend, logger,
 * root seed, the last error's detail message, and a scratch workspace.
 * There is no global state; two contexts never interfere. */
#ifndef MEMLOC_CONTEXT_H
#define MEMLOC_CONTEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memloc/status.h"

typedef enum {
    MLOC_BACKEND_AUTO = 0, /* the fastest one compiled in (oneDNN) */
    MLOC_BACKEND_REF,      /* plain C reference kernels (the specification) */
    MLOC_BACKEND_DNNL      /* oneDNN 2.x with blocked layouts */
} mloc_backend;

typedef enum {
    MLOC_LOG_ERROR = 0,
    MLOC_LOG_WARN,
    MLOC_LOG_INFO,
    MLOC_LOG_DEBUG
} mloc_log_level;

typedef void (*mloc_log_fn)(void *user, mloc_log_level level, const char *msg);

/* Long-running library work reports progress through this hook: `done` of
 * `total` units of `what` ("train", "unitmem", ...), plus a short free-form
 * status ("loss 3.21"). Called from the calling thread only. */
typedef void (*mloc_progress_fn)(void *user, const char *what, int64_t done,
                                 int64_t total, const char *status);

typedef struct {
    int threads;            /* 0: all online CPUs */
    mloc_backend backend;   /* default AUTO */
    uint64_t seed;          /* root seed of every random stream */
    mloc_log_level log_level;
    mloc_log_fn log_fn;     /* NULL: write "memloc: <level>: msg" to stderr */
    void *log_user;
    mloc_progress_fn progress_fn; /* NULL: no progress reports */
    void *progress_user;
    /* Set asynchronously (e.g. by a SIGINT handler) to ask long work to stop
     * at the next safe point; the library then returns ERR_INTERRUPTED. */
    volatile int *interrupt_flag;
} mloc_ctx_config;

typedef struct mloc_ctx mloc_ctx;

/* Defaults: threads 0, backend AUTO, seed 0, log level WARN. */
mloc_ctx_config mloc_ctx_config_default(void);

mloc_status mloc_ctx_create(mloc_ctx **out, const mloc_ctx_config *cfg);
void mloc_ctx_destroy(mloc_ctx *ctx);

int mloc_ctx_threads(const mloc_ctx *ctx);
uint64_t mloc_ctx_seed(const mloc_ctx *ctx);
mloc_backend mloc_ctx_backend(const mloc_ctx *ctx);
const mloc_ctx_config *mloc_ctx_config_get(const mloc_ctx *ctx);
/* Change the thread count used by memloc kernels and oneDNN (OpenMP). */
void mloc_ctx_set_threads(mloc_ctx *ctx, int threads);

/* Record a detail message for `st` and return `st`, so failures read
 *     return mloc_error(ctx, MLOC_ERR_DATA, "%s: record %d: label %d > 9", ...);
 * The message names the file / record / option and what was expected. */
mloc_status mloc_error(mloc_ctx *ctx, mloc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the current detail message: "outer: inner". Returns st. */
mloc_status mloc_error_prefix(mloc_ctx *ctx, mloc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The detail message of the last error ("" if none). */
const char *mloc_ctx_error(const mloc_ctx *ctx);
void mloc_ctx_clear_error(mloc_ctx *ctx);

void mloc_log(mloc_ctx *ctx, mloc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mloc_progress(mloc_ctx *ctx, const char *what, int64_t done, int64_t total,
                   const char *status);
/* Non-zero once an interrupt was requested. */
int mloc_ctx_interrupted(const mloc_ctx *ctx);

/* Allocation helpers: 64-byte aligned, zero-filled; NULL on failure (with a
 * detail message in ctx). Free with mloc_free. Allocation-failure injection
 * for tests: MLOC_FAIL_ALLOC_AFTER=N in the environment makes the (N+1)-th
 * call fail. */
void *mloc_alloc(mloc_ctx *ctx, size_t bytes);
void mloc_free(void *p);

/* Build and machine facts (versions, oneDNN ISA, GEMM) as text lines. */
void mloc_build_info(char *buf, size_t size);

/* Opaque per-backend state (the oneDNN engine and stream) owned by ctx. */
void *mloc_ctx_backend_state(mloc_ctx *ctx);
void mloc_ctx_set_backend_state(mloc_ctx *ctx, void *state, void (*destroy)(void *));

#endif
