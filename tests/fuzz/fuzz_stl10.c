/* Fuzz target: STL-10 X / y files (src/data/stl10.c).
 * Input: a flag byte (bit 0: labelled), a little-endian uint16 y length,
 * the y bytes, then the X bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int labelled = data[0] & 1;
    size_t ny = (size_t)data[1] | (size_t)data[2] << 8;
    if (ny > size - 3) ny = size - 3;
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = 1;
    cfg.log_level = MLOC_LOG_ERROR;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) return 0;
    mloc_dataset d;
    const uint8_t *y = labelled ? data + 3 : NULL;
    if (mloc_stl10_read_memory(ctx, &d, data + 3 + ny, size - 3 - ny, y, ny, "fuzz") == MLOC_OK) {
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < (size_t)d.n * d.h * d.w * d.c; i++) sum += d.pixels[i];
        (void)sum;
        for (int64_t i = 0; i < d.n; i++)
            if (d.labels[i] < (labelled ? 0 : -1) || d.labels[i] > (labelled ? 9 : -1)) abort();
        mloc_dataset_free(&d);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
