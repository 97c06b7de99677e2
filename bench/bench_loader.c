/* Loader throughput: 32x32 SimCLR views (simclr preset, 2 views per image,
 * batch 256) from synthetic uint8 images, with 1 and 2 worker threads, and
 * the apply path alone on one thread. Prints medians and
 *
 *     bench loader memloc=<views/s, 2 workers> peer=<torchvision views/s> unit=views/s ratio=<memloc/peer>
 *
 * where the peer is bench/peer_loader.py (torchvision tensor path, DataLoader
 * with 2 workers, same pipeline) run with /usr/bin/python3.
 *
 *     bench_loader [--quick] [--no-peer] [--peer-views X] [--images N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memloc/loader.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* views/s of whole epochs with `workers` threads; median of `reps` epochs */
static double loader_rate(mloc_ctx *ctx, const mloc_dataset *ds, int workers, int reps) {
    mloc_loader_config cfg = mloc_loader_config_default();
    cfg.workers = workers;
    cfg.seed = 1;
    mloc_loader *L = NULL;
    mloc_status st = mloc_loader_create(ctx, &L, ds, NULL, ds->n, &cfg);
    if (st != MLOC_OK) {
        fprintf(stderr, "bench_loader: %s\n", mloc_ctx_error(ctx));
        exit(1);
    }
    double rates[16];
    int64_t views = 0;
    for (int e = 0; e <= reps; e++) { /* epoch 0 warms up */
        double t = now();
        views = 0;
        mloc_loader_start_epoch(L, e, 0);
        mloc_batch *b;
        while (mloc_loader_next(L, &b) == MLOC_OK && b) {
            views += (int64_t)b->views * b->n;
            mloc_loader_release(L, b);
        }
        double dt = now() - t;
        if (e > 0) rates[e - 1] = views / dt;
    }
    mloc_loader_free(L);
    double m = median(rates, reps);
    printf("loader %d worker%s: median %.0f views/s over %d epochs of %lld views\n", workers,
           workers == 1 ? "" : "s", m, reps, (long long)views);
    return m;
}

/* draw + apply of one view on this thread, views/s */
static double apply_rate(const mloc_dataset *ds, int reps) {
    mloc_aug_config ac = mloc_aug_config_default();
    mloc_aug_pipeline pipe;
    mloc_aug_pipeline_make(NULL, &pipe, &ac);
    float *out = malloc(sizeof(float) * 3 * 32 * 32);
    double rates[16];
    int per = 20000;
    for (int r = 0; r < reps; r++) {
        double t = now();
        for (int i = 0; i < per; i++) {
            mloc_rng rng;
            mloc_aug_stream(&rng, 1, "aug", r, i, 0);
            mloc_aug_params p;
            mloc_aug_draw(&p, &pipe, 32, 32, &rng);
            mloc_aug_apply(out, ds->pixels + (int64_t)(i % ds->n) * 3072, 32, 32, 3, &p, &pipe);
        }
        rates[r] = per / (now() - t);
    }
    free(out);
    double m = median(rates, reps);
    printf("apply only, 1 thread: median %.0f views/s (%.1f us/view)\n", m, 1e6 / m);
    return m;
}

static double run_peer(int quick) {
    char path[4096], cmd[4400];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (slash)
        strcpy(slash + 1, "peer_loader.py");
    else
        snprintf(path, sizeof path, "bench/peer_loader.py");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --workers 2 %s 2>&1", path,
             quick ? "--images 1024 --epochs 2" : "");
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[512];
    double v = -1;
    while (fgets(line, sizeof line, p)) {
        fputs("  peer: ", stdout);
        fputs(line, stdout);
        const char *k = strstr(line, "views_per_s=");
        if (k) v = atof(k + strlen("views_per_s="));
    }
    if (pclose(p) != 0) return -1;
    return v;
}

int main(int argc, char **argv) {
    int quick = 0, peer = 1;
    double peer_views = -1;
    int64_t n = 4096;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-peer")) peer = 0;
        else if (!strcmp(argv[i], "--peer-views") && i + 1 < argc) peer_views = atof(argv[++i]);
        else if (!strcmp(argv[i], "--images") && i + 1 < argc) n = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_loader [--quick] [--no-peer] [--peer-views X] [--images N]\n");
            return 64;
        }
    }
    if (quick && n > 1024) n = 1024;
    int reps = quick ? 3 : 5;

    mloc_ctx_config cc = mloc_ctx_config_default();
    cc.threads = 1;
    mloc_ctx *ctx = NULL;
    if (mloc_ctx_create(&ctx, &cc) != MLOC_OK) return 1;
    mloc_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = n;
    ds.h = ds.w = 32;
    ds.c = 3;
    ds.pixels = malloc((size_t)n * 3072);
    ds.labels = calloc((size_t)n, sizeof(int32_t));
    mloc_rng r;
    mloc_rng_init(&r, 0, 0);
    for (int64_t i = 0; i < n * 3072; i++) ds.pixels[i] = (uint8_t)mloc_rng_u32(&r);

    apply_rate(&ds, reps);
    loader_rate(ctx, &ds, 1, reps);
    double two = loader_rate(ctx, &ds, 2, reps);
    if (peer && peer_views < 0) peer_views = run_peer(quick);
    if (peer_views > 0)
        printf("bench loader memloc=%.0f peer=%.0f unit=views/s ratio=%.2f\n", two, peer_views,
               two / peer_views);
    else
        printf("bench loader memloc=%.0f peer=nan unit=views/s ratio=nan\n", two);
    free(ds.pixels);
    free(ds.labels);
    mloc_ctx_destroy(ctx);
    return 0;
}
