/* Fuzz target: the MAT v5 reader behind svhn:FILE (src/data/mat.c):
 * header, endianness, small elements, miCOMPRESSED streams, matrix
 * sub-elements and stored-type conversion. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = 1;
    cfg.log_level = MLOC_LOG_ERROR;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) return 0;
    mloc_dataset d;
    if (mloc_svhn_read_memory(ctx, &d, data, size, "fuzz.mat") == MLOC_OK) {
        if (d.h != 32 || d.w != 32 || d.c != 3 || d.n < 1) abort();
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < (size_t)d.n * 3072; i++) sum += d.pixels[i];
        (void)sum;
        for (int64_t i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] > 9) abort();
        mloc_dataset_free(&d);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
