/* One-shot augmentation of a list of dataset images (the metrics' path):
 * every (image, view) draws from its own stream, so the result does not
 * depend on the thread count or on which other images share the batch. */
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "augment/internal.h"

mloc_status mloc_aug_batch(mloc_ctx *ctx, float *out, mloc_aug_params *params,
                           const mloc_dataset *ds, const int64_t *indices, int64_t n,
                           int views, const mloc_aug_pipeline *pipe, const mloc_aug_key *key) {
    if (ds->c != 1 && ds->c != 3)
        return mloc_error(ctx, MLOC_ERR_USAGE, "augment: dataset has %d channels, expected 1 or 3",
                          ds->c);
    if (views < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "augment: %d views, expected >= 1", views);
    for (int64_t k = 0; k < n; k++)
        if (indices[k] < 0 || indices[k] >= ds->n)
            return mloc_error(ctx, MLOC_ERR_USAGE,
                              "augment: entry %lld: index %lld, expected 0..%lld", (long long)k,
                              (long long)indices[k], (long long)ds->n - 1);
    if (n == 0) return MLOC_OK;

    int h = ds->h, w = ds->w, c = ds->c, oh, ow;
    mloc_aug_out_size(pipe, h, w, &oh, &ow);
    int64_t view_floats = (int64_t)c * oh * ow;
    size_t ws_bytes = (mloc_aug_workspace_bytes(h, w, c, oh, ow) + 63) & ~(size_t)63;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if ((int64_t)threads > n * views) threads = (int)(n * views);
    char *ws = mloc_alloc(ctx, ws_bytes * (size_t)threads);
    if (!ws) return mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "augment: scratch for %d threads", threads);

    int64_t total = n * views;
#pragma omp parallel num_threads(threads)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        void *my_ws = ws + ws_bytes * (size_t)t;
#pragma omp for schedule(static)
        for (int64_t job = 0; job < total; job++) {
            int64_t v = job / n, k = job % n;
            int64_t idx = indices[k];
            mloc_rng r;
            mloc_aug_stream(&r, key->seed, key->purpose, key->epoch, idx, key->first_view + v);
            mloc_aug_params p;
            mloc_aug_draw(&p, pipe, h, w, &r);
            const uint8_t *img = ds->pixels + idx * (int64_t)h * w * c;
            mloc_aug_apply_ws(out + job * view_floats, img, h, w, c, &p, pipe, my_ws);
            if (params) params[job] = p;
        }
    }
    mloc_free(ws);
    return MLOC_OK;
}
