#include "memloc/context.h"

#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define ERROR_MAX 2048

struct mloc_ctx {
    mloc_ctx_config cfg;
    int threads;
    char error[ERROR_MAX];
    void *backend_state;
    void (*backend_destroy)(void *);
};

mloc_ctx_config mloc_ctx_config_default(void) {
    mloc_ctx_config c;
    memset(&c, 0, sizeof c);
    c.threads = 0;
    c.backend = MLOC_BACKEND_AUTO;
    c.seed = 0;
    c.log_level = MLOC_LOG_WARN;
    return c;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

mloc_status mloc_ctx_create(mloc_ctx **out, const mloc_ctx_config *cfg) {
    *out = NULL;
    mloc_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return MLOC_ERR_NOMEM;
    ctx->cfg = cfg ? *cfg : mloc_ctx_config_default();
    mloc_ctx_set_threads(ctx, ctx->cfg.threads);
    *out = ctx;
    return MLOC_OK;
}

void mloc_ctx_destroy(mloc_ctx *ctx) {
    if (!ctx) return;
    if (ctx->backend_destroy) ctx->backend_destroy(ctx->backend_state);
    free(ctx);
}

void mloc_ctx_set_threads(mloc_ctx *ctx, int threads) {
    ctx->threads = threads > 0 ? threads : online_cpus();
    ctx->cfg.threads = ctx->threads;
#ifdef _OPENMP
    omp_set_num_threads(ctx->threads);
#endif
}

int mloc_ctx_threads(const mloc_ctx *ctx) { return ctx->threads; }
uint64_t mloc_ctx_seed(const mloc_ctx *ctx) { return ctx->cfg.seed; }
mloc_backend mloc_ctx_backend(const mloc_ctx *ctx) { return ctx->cfg.backend; }
const mloc_ctx_config *mloc_ctx_config_get(const mloc_ctx *ctx) { return &ctx->cfg; }

mloc_status mloc_error(mloc_ctx *ctx, mloc_status st, const char *fmt, ...) {
    if (!ctx) return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    return st;
}

mloc_status mloc_error_prefix(mloc_ctx *ctx, mloc_status st, const char *fmt, ...) {
    if (!ctx) return st;
    char prefix[ERROR_MAX], old[ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, ctx->error, sizeof old);
    if (old[0])
        snprintf(ctx->error, sizeof ctx->error, "%s: %s", prefix, old);
    else
        snprintf(ctx->error, sizeof ctx->error, "%s", prefix);
    return st;
}

const char *mloc_ctx_error(const mloc_ctx *ctx) { return ctx ? ctx->error : ""; }
void mloc_ctx_clear_error(mloc_ctx *ctx) { ctx->error[0] = 0; }

static const char *level_name(mloc_log_level l) {
    switch (l) {
    case MLOC_LOG_ERROR: return "error";
    case MLOC_LOG_WARN: return "warning";
    case MLOC_LOG_INFO: return "info";
    case MLOC_LOG_DEBUG: return "debug";
    }
    return "log";
}

void mloc_log(mloc_ctx *ctx, mloc_log_level level, const char *fmt, ...) {
    if (ctx && level > ctx->cfg.log_level) return;
    char msg[ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx && ctx->cfg.log_fn)
        ctx->cfg.log_fn(ctx->cfg.log_user, level, msg);
    else
        fprintf(stderr, "memloc: %s: %s\n", level_name(level), msg);
}

void mloc_progress(mloc_ctx *ctx, const char *what, int64_t done, int64_t total,
                   const char *status) {
    if (ctx && ctx->cfg.progress_fn)
        ctx->cfg.progress_fn(ctx->cfg.progress_user, what, done, total, status ? status : "");
}

int mloc_ctx_interrupted(const mloc_ctx *ctx) {
    return ctx && ctx->cfg.interrupt_flag && *ctx->cfg.interrupt_flag;
}

/* Allocation-failure injection (libuv-style): MLOC_FAIL_ALLOC_AFTER=N. */
static long alloc_budget(void) {
    static long budget = -2;
    if (budget == -2) {
        const char *s = getenv("MLOC_FAIL_ALLOC_AFTER");
        budget = s ? strtol(s, NULL, 10) : -1;
    }
    return budget;
}
static long alloc_count;

/* A number from the first line of `path` starting with `key` (key NULL: the
 * file's first number), times `unit`; -1 when absent. */
static int64_t read_number(const char *path, const char *key, int64_t unit) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    int64_t v = -1;
    const size_t kn = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f)) {
        if (key && strncmp(line, key, kn) != 0) continue;
        long long x;
        if (sscanf(line + kn, "%lld", &x) == 1) v = (int64_t)x * unit;
        break;
    }
    fclose(f);
    return v;
}

/* Bytes this process can still take before the kernel's OOM killer would
 * end it: MemAvailable, or less under a cgroup memory limit (v2, then v1);
 * -1 when unknown (not Linux). */
static int64_t memory_available(void) {
    int64_t avail = read_number("/proc/meminfo", "MemAvailable:", 1024);
    const char *lim[2][2] = {{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                             {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                              "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (int i = 0; i < 2; i++) {
        int64_t max = read_number(lim[i][0], NULL, 1), cur = read_number(lim[i][1], NULL, 1);
        if (max > 0 && max < ((int64_t)1 << 50) && cur >= 0) {
            int64_t left = max > cur ? max - cur : 0;
            if (avail < 0 || left < avail) avail = left;
            break;
        }
    }
    return avail;
}

/* Allocations this large are checked against the memory left: mloc_alloc
 * zeroes what it returns, so an allocation larger than that would not fail
 * but bring the OOM killer (no message, nothing saved). */
#define MLOC_CHECKED_ALLOC ((size_t)32 << 20)
#define MLOC_MEMORY_RESERVE ((int64_t)256 << 20)

void *mloc_alloc(mloc_ctx *ctx, size_t bytes) {
    long budget = alloc_budget();
    if (budget >= 0 && __atomic_fetch_add(&alloc_count, 1, __ATOMIC_RELAXED) >= budget) {
        mloc_error(ctx, MLOC_ERR_NOMEM, "allocation of %zu bytes failed (injected)", bytes);
        return NULL;
    }
    if (bytes >= MLOC_CHECKED_ALLOC) {
        const int64_t avail = memory_available();
        if (avail >= 0 && (int64_t)bytes + MLOC_MEMORY_RESERVE > avail) {
            mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory: %.2f GiB more needed, %.2f GiB available",
                       bytes / 1073741824.0, avail / 1073741824.0);
            return NULL;
        }
    }
    size_t size = (bytes + 63) & ~(size_t)63;
    if (size == 0) size = 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, size) != 0) {
        mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, size);
    return p;
}

void mloc_free(void *p) { free(p); }

void *mloc_ctx_backend_state(mloc_ctx *ctx) { return ctx->backend_state; }

void mloc_ctx_set_backend_state(mloc_ctx *ctx, void *state, void (*destroy)(void *)) {
    if (ctx->backend_destroy) ctx->backend_destroy(ctx->backend_state);
    ctx->backend_state = state;
    ctx->backend_destroy = destroy;
}
