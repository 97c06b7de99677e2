/* Fuzz target: safetensors parsing and typed reads (src/io/safetensors.c).
 * Any input must be rejected cleanly or read without leaks or crashes. */
#include <stdint.h>
#include <stdlib.h>

#include "memloc/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, NULL) != MLOC_OK) return 0;
    mloc_st_file *f;
    if (mloc_st_open_memory(ctx, &f, data, size, "fuzz") == MLOC_OK) {
        (void)mloc_st_metadata(f, "format");
        for (int i = 0; i < mloc_st_count(f); i++) {
            const mloc_st_tensor *t = mloc_st_get(f, i);
            /* numel * element size == nbytes <= size, so this is bounded. */
            void *buf = malloc(t->numel ? (size_t)t->numel * 8 : 1);
            if (!buf) continue;
            if (mloc_st_read_f32(ctx, buf, f, t->name, t->ndim, t->shape) != MLOC_OK &&
                mloc_st_read_i64(ctx, buf, f, t->name, -1, NULL) != MLOC_OK)
                (void)mloc_st_read_f64(ctx, buf, f, t->name, -1, NULL);
            free(buf);
        }
        /* Load the file into a table made from its own float tensors. */
        mloc_table tab;
        mloc_table_init(&tab);
        for (int i = 0; i < mloc_st_count(f); i++) {
            const mloc_st_tensor *t = mloc_st_get(f, i);
            mloc_role role = t->dtype == MLOC_DTYPE_I64 && t->ndim == 0 ? MLOC_ROLE_NUM_BATCHES
                                                                        : MLOC_ROLE_WEIGHT;
            mloc_table_add(&tab, t->name, role, MLOC_GROUP_ENCODER, 0, t->ndim, t->shape);
        }
        mloc_store s;
        if (mloc_store_alloc(ctx, &s, &tab) == MLOC_OK) {
            (void)mloc_table_load(ctx, &tab, &s, f, MLOC_LOAD_STRICT);
            mloc_store_free(&s);
        }
        mloc_table_free(&tab);
        mloc_st_close(f);
    }
    mloc_ctx_destroy(ctx);
    return 0;
}
