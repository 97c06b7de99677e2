/* Memorization-metric benchmarks (issue 5), the full-width ResNet9 (seeded
 * init; the numbers do not depend on the weights), fp32, eval mode:
 *   unitmem   UnitMem of every unit of every tap over the first N images x K
 *             augmented views (simclr pipeline, rest mean) -> views/s
 *   layermem  SSLMem at every tap for f and g over N candidates x K
 *             augmentations (clean views: K + 1 views per candidate and
 *             encoder) and the LayerMem table -> candidates/s
 *   memory    UnitMem (rest mean) over the first N images of the same opened
 *             dataset: peak RSS (getrusage) before and after, and the
 *             computation's working bytes; the dataset is opened whole in
 *             every run so that only the metric's memory can differ
 * Timings exclude decoding the dataset and creating the model, as the
 * PyTorch peer's (bench/peer_metrics.py) exclude theirs.
 *   bench_metrics --data SPEC --mode unitmem|layermem|memory [--points N]
 *                 [--k K] [--threads T] [--batch B] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "memloc/augment.h"
#include "memloc/data.h"
#include "memloc/metrics.h"
#include "memloc/model.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* user + system CPU seconds of the process (all threads) */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
}

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

#define CHECK(x)                                                                  \
    do {                                                                          \
        if ((x) != MLOC_OK) {                                                     \
            fprintf(stderr, "bench_metrics: %s: %s\n", #x, mloc_ctx_error(ctx));  \
            return 1;                                                             \
        }                                                                         \
    } while (0)

int main(int argc, char **argv) {
    const char *data = NULL, *mode = "unitmem";
    long long points = 5000;
    int k = -1, threads = 2, batch = 64;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--points") && i + 1 < argc) points = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_metrics --data SPEC --mode unitmem|layermem|memory [--points N] [--k K]\n"
                            "                     [--threads T] [--batch B]\n");
            return 64;
        }
    }
    if (!data) {
        fprintf(stderr, "bench_metrics: --data SPEC is required\n");
        return 64;
    }
    const int layermem = !strcmp(mode, "layermem"), memory = !strcmp(mode, "memory");
    if (k < 0) k = layermem ? 5 : 10;
    mloc_ctx_config cc = mloc_ctx_config_default();
    cc.threads = threads;
    cc.seed = 1;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cc) != MLOC_OK) return 1;
    mloc_dataset ds;
    CHECK(mloc_dataset_open(ctx, &ds, data, NULL));
    if (points > ds.n) {
        fprintf(stderr, "bench_metrics: %lld points asked of a set of %lld\n", points, (long long)ds.n);
        return 64;
    }
    mloc_model_config mc = mloc_model_config_default();
    mc.head = MLOC_HEAD_NONE;
    mloc_model *f, *g = NULL;
    CHECK(mloc_model_create(ctx, &f, &mc));
    if (layermem) {
        CHECK(mloc_model_create(ctx, &g, &mc));
        mloc_model_init_params(g, 2);
    }
    mloc_aug_config ac = mloc_aug_config_default();
    mloc_aug_pipeline pipe;
    CHECK(mloc_aug_pipeline_make(ctx, &pipe, &ac));
    mloc_view_source src;
    CHECK(mloc_view_source_dataset(ctx, &src, &ds, &pipe, 0, layermem ? MLOC_PURPOSE_SSLMEM : MLOC_PURPOSE_UNITMEM));
    int64_t *idx = malloc((size_t)points * sizeof *idx);
    for (int64_t i = 0; i < points; i++) idx[i] = i;
    const long rss_before = max_rss_kb();

    double t0 = now(), c0 = cpu_s(), secs;
    if (layermem) {
        mloc_sslmem_config sc = mloc_sslmem_config_default();
        sc.k = k;
        sc.batch = batch;
        mloc_sslmem_result r;
        CHECK(mloc_sslmem_compute(ctx, &r, f, g, &src, idx, points, NULL, 0, &sc));
        mloc_layermem_table t;
        CHECK(mloc_layermem_table_make(ctx, &t, &r, NULL, NULL, 0));
        secs = now() - t0;
        const double cpu = cpu_s() - c0;
        printf("layermem: %lld candidates x %d augmentations (+ clean), f and g, %d taps: %.2f s -> %.1f "
               "candidates/s, %.0f forward images/s; %.2f CPU s -> %.1f candidates per CPU s; LayerMem at res2 "
               "%.4f\n",
               points, k, r.n_taps, secs, points / secs, 2.0 * points * (k + 1) / secs, cpu, points / cpu,
               t.random[r.n_taps - 1]);
        printf("bench metrics_layermem memloc=%.2f unit=candidates/s\n", points / secs);
        mloc_layermem_table_free(&t);
        mloc_sslmem_result_free(&r);
    } else {
        mloc_unit_config uc = mloc_unitmem_config_default();
        uc.k = k;
        uc.batch = batch;
        mloc_unit_scores u;
        CHECK(mloc_unitmem_compute(ctx, &u, f, &src, idx, points, NULL, 0, &uc));
        secs = now() - t0;
        const double cpu = cpu_s() - c0;
        mloc_unit_summary s;
        CHECK(mloc_unit_summarize(ctx, &u, u.n_taps - 1, &s));
        printf("unitmem: %lld points x %d views, %d taps (%lld units): %.2f s -> %.1f views/s; %.2f CPU s -> %.1f "
               "views per CPU s; mean UnitMem at res2 %.4f\n",
               points, k, u.n_taps, (long long)u.units, secs, points * k / secs, cpu, points * k / cpu, s.mean);
        if (memory) {
            const long rss = max_rss_kb();
            printf("memory: %lld of %lld images, rest mean: peak RSS %.1f MB (%.1f MB before the metric), "
                   "working memory %.2f MB\n",
                   points, (long long)ds.n, rss / 1024.0, rss_before / 1024.0, u.work_bytes / 1048576.0);
            printf("bench metrics_unitmem_rss points=%lld rss_mb=%.1f before_mb=%.1f work_mb=%.2f\n", points,
                   rss / 1024.0, rss_before / 1024.0, u.work_bytes / 1048576.0);
        } else {
            printf("bench metrics_unitmem memloc=%.1f unit=views/s\n", points * k / secs);
        }
        mloc_unit_scores_free(&u);
    }
    free(idx);
    mloc_model_free(f);
    mloc_model_free(g);
    mloc_dataset_free(&ds);
    mloc_ctx_destroy(ctx);
    return 0;
}
