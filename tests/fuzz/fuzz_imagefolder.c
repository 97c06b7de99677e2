/* Fuzz target: an ImageFolder inside an in-memory tar (src/data/folder.c
 * with libarchive, and the JPEG / PNG / PNM decoders of src/data/image.c).
 * Bit 0 of the first byte selects the SUBDIR "train", bit 1 skip_corrupt;
 * the rest is the archive. Images are limited to 4096 pixels. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = 1;
    cfg.log_level = MLOC_LOG_ERROR;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) return 0;
    mloc_dataset_options opt = mloc_dataset_options_default();
    opt.max_pixels = 4096;
    opt.skip_corrupt = (data[0] >> 1) & 1;
    mloc_dataset d;
    if (mloc_folder_read_memory(ctx, &d, data + 1, size - 1, (data[0] & 1) ? "train" : NULL, &opt,
                                "fuzz.tar") == MLOC_OK) {
        if (d.n < 1 || d.c != 3 || d.n_classes < 1) abort();
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < (size_t)d.n * d.h * d.w * d.c; i++) sum += d.pixels[i];
        (void)sum;
        for (int64_t i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] >= d.n_classes || !d.sources[i]) abort();
        mloc_dataset_free(&d);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
