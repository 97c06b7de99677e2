/* Fuzz target: IDX image + label files, plain or gzip (src/data/idx.c).
 * Input: a little-endian uint16 k, then k bytes of the images file, then the
 * labels file. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t k = (size_t)data[0] | (size_t)data[1] << 8;
    if (k > size - 2) k = size - 2;
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = 1;
    cfg.log_level = MLOC_LOG_ERROR;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) return 0;
    mloc_dataset d;
    if (mloc_idx_read_memory(ctx, &d, data + 2, k, data + 2 + k, size - 2 - k, "fuzz") == MLOC_OK) {
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < (size_t)d.n * d.h * d.w * d.c; i++) sum += d.pixels[i];
        (void)sum;
        for (int64_t i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] > 9) abort();
        mloc_dataset_free(&d);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
