/* The batch loader: augmented float32 batches made by worker threads ahead
 * of the consumer (a small ring of batches), deterministic for a seed
 * whatever the number of workers.
 *
 *     mloc_loader *L;
 *     mloc_loader_create(ctx, &L, ds, indices, n, &cfg);
 *     for (epoch = e0; epoch < epochs; epoch++) {
 *         mloc_loader_start_epoch(L, epoch, epoch == e0 ? resume_batch : 0);
 *         mloc_batch *b;
 *         while (mloc_loader_next(L, &b) == MLOC_OK && b) {
 *             ... b->x is (V*n, C, H, W), view-major ...
 *             mloc_loader_release(L, b);
 *         }
 *     }
 *     mloc_loader_free(L);
 *
 * Randomness (STYLE.md 10): epoch e's order is the permutation drawn from
 * stream ("shuffle", e, 0, 0) of the root seed; view v of dataset image i in
 * epoch e is drawn from mloc_aug_stream(seed, purpose, e, i, v) (purpose
 * "aug"). With metric_keys the key is (purpose, i, v) with no epoch, so every
 * epoch, and every encoder, sees the same views of a point. A batch is a pure
 * function of (seed, epoch, batch number): worker count, prefetch depth and
 * timing never change it. */
#ifndef MEMLOC_LOADER_H
#define MEMLOC_LOADER_H

#include <stdint.h>

#include "memloc/augment.h"
#include "memloc/context.h"
#include "memloc/data.h"

typedef struct {
    int batch_size;          /* B; default 256 */
    int views;               /* V; default 2 (SimCLR), 1 supervised, K metrics */
    mloc_aug_pipeline aug;   /* default: the simclr preset at 32x32 */
    uint64_t seed;           /* root of the shuffle and augmentation streams; default 0 */
    int shuffle;             /* default 1; 0 keeps the order of `indices` */
    int drop_last;           /* default 1: only full batches */
    int workers;             /* W threads; 0 makes batches in the caller's thread; default 2 */
    int ring;                /* batches held, ready or being filled; 0 (default): W + 2 */
    const char *purpose;     /* augmentation stream tag; default "aug" */
    int metric_keys;         /* 1: views keyed (purpose, sample, view), no epoch; default 0 */
} mloc_loader_config;

typedef struct {
    int64_t epoch;           /* the epoch and */
    int64_t number;          /* batch number within it (0-based) */
    int n;                   /* images: B, fewer in a last batch without drop_last */
    int views, c, h, w;
    float *x;                /* (views*n, c, h, w): rows v*n .. v*n+n-1 are view v */
    int32_t *labels;         /* n labels (-1 when the dataset has none) */
    int64_t *indices;        /* n dataset indices */
} mloc_batch;

typedef struct mloc_loader mloc_loader;

mloc_loader_config mloc_loader_config_default(void);

/* A loader over `indices` (n entries; NULL = every image of ds, in order).
 * ds must outlive the loader; indices are copied. ERR_USAGE for an index
 * outside ds, B or V < 1, or a dataset that is not 1 or 3 channels;
 * ERR_CONFIG for an invalid pipeline; ERR_NOMEM; ERR_INTERNAL if a thread
 * cannot be started. No epoch runs until mloc_loader_start_epoch. */
mloc_status mloc_loader_create(mloc_ctx *ctx, mloc_loader **out, const mloc_dataset *ds,
                               const int64_t *indices, int64_t n, const mloc_loader_config *cfg);

/* Batches per epoch: floor(n/B) with drop_last, else ceil(n/B). */
int64_t mloc_loader_batches(const mloc_loader *L);

/* Begin epoch `epoch` at batch `first_batch` (0, or where a resumed run
 * stopped; 0..batches). Work still in flight for the previous epoch is
 * discarded. Batches the caller still holds stay valid until released. */
mloc_status mloc_loader_start_epoch(mloc_loader *L, int64_t epoch, int64_t first_batch);

/* The next batch of the epoch, in order, waiting for it if needed; *batch is
 * NULL at the end of the epoch. ERR_USAGE if no epoch was started or the
 * caller holds so many batches that the next one has no free slot. */
mloc_status mloc_loader_next(mloc_loader *L, mloc_batch **batch);

/* Give a batch back for reuse; it must not be used afterwards. */
void mloc_loader_release(mloc_loader *L, mloc_batch *batch);

/* Stop the workers (they finish the batch they are making) and free all. */
void mloc_loader_free(mloc_loader *L);

#endif
