/* Fuzz target: CIFAR-10 / CIFAR-100 binary records (src/data/cifar.c).
 * Input: one flag byte (bit 0: CIFAR-100), then the batch bytes. Any input
 * must be rejected cleanly or read into a consistent dataset. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const mloc_dataset *d) {
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < (size_t)d->n * d->h * d->w * d->c; i++) sum += d->pixels[i];
    (void)sum;
    for (int64_t i = 0; i < d->n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= d->n_classes) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = 1;
    cfg.log_level = MLOC_LOG_ERROR;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) return 0;
    mloc_dataset d;
    if (mloc_cifar_read_memory(ctx, &d, data + 1, size - 1, data[0] & 1, "fuzz.bin") == MLOC_OK) {
        check(&d);
        if ((data[0] & 1) && !d.coarse) abort();
        mloc_dataset_free(&d);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
