/* Fuzz target: .npy parsing (src/io/npy.c). Any input must be rejected
 * cleanly or read without leaks or crashes. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, NULL) != MLOC_OK) return 0;
    mloc_dtype dtype;
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    void *out;
    if (mloc_npy_read_memory(ctx, data, size, "fuzz", &dtype, &ndim, shape, &out) == MLOC_OK) {
        int64_t numel = 1;
        for (int d = 0; d < ndim; d++) numel *= shape[d];
        /* Touch every byte so ASan sees the whole allocation. */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < (size_t)numel * mloc_dtype_size(dtype); i++) sum += ((uint8_t *)out)[i];
        free(out);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
