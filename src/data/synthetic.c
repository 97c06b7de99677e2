/* synthetic:N[:HxWxC[:K]] - deterministic random images for tests and
 * benchmarks. Image i has label i mod K and pixels
 *     clamp(base_K[label][p] + u_i[p], 0, 255),   u_i[p] uniform in -48..48,
 * where base is a per-class random pattern. Every value comes from a Philox
 * stream keyed by a fixed seed, the purpose, the index and the shape, so the
 * same spec gives the same bytes everywhere, image i does not depend on N,
 * and the classes are separable (a probe can learn them). */
#include <stdlib.h>
#include <string.h>

#include "data/internal.h"
#include "memloc/rng.h"

#define SYNTH_SEED 0x5EED5EEDull
#define NOISE 48

mloc_status data_open_synthetic(mloc_ctx *ctx, mloc_dataset *d, const mloc_dataset_spec *s) {
    MLOC_TRY(data_alloc(ctx, d, s->n, s->h, s->w, s->c, 0));
    size_t img = (size_t)s->h * s->w * s->c;
    uint64_t shape = (uint64_t)s->h << 40 | (uint64_t)s->w << 20 | (uint64_t)s->c;
    int k = s->k;
    int used = (int64_t)k < s->n ? k : (int)s->n; /* classes that occur */
    uint8_t *base = malloc(img * (size_t)(used > 0 ? used : 1));
    if (!base) {
        mloc_dataset_free(d);
        return mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for synthetic class patterns");
    }
    mloc_rng r;
    for (int c = 0; c < used; c++) {
        mloc_rng_init_tag(&r, SYNTH_SEED, "synthetic-class", (uint64_t)c, shape, (uint64_t)k);
        for (size_t p = 0; p < img; p++) base[(size_t)c * img + p] = (uint8_t)(mloc_rng_u32(&r) >> 24);
    }
    for (int64_t i = 0; i < s->n; i++) {
        int label = (int)(i % k);
        d->labels[i] = label;
        mloc_rng_init_tag(&r, SYNTH_SEED, "synthetic-image", (uint64_t)i, shape, (uint64_t)k);
        const uint8_t *b = base + (size_t)label * img;
        uint8_t *o = d->pixels + (size_t)i * img;
        for (size_t p = 0; p < img; p++) {
            int v = b[p] + (int)(mloc_rng_u32(&r) % (2 * NOISE + 1)) - NOISE;
            o[p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(base);
    mloc_status st = data_set_names(ctx, d, NULL, k);
    if (st != MLOC_OK) mloc_dataset_free(d);
    return st;
}
