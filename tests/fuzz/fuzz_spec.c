/* Fuzz target: dataset spec strings and index lists (src/data/spec.c).
 * Input: a spec, optionally '\n' and an index text checked against 1000
 * items. A parsed spec must format to a canonical string that parses to the
 * same canonical string; parsed indices must lie in range. No file system
 * access: index texts naming a file ("@...") are not parsed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *indices = strchr(text, '\n');
    if (indices) *indices++ = 0;
    mloc_ctx_config cfg = mloc_ctx_config_default();
    cfg.threads = 1;
    cfg.log_level = MLOC_LOG_ERROR;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cfg) != MLOC_OK) {
        free(text);
        return 0;
    }
    mloc_dataset_spec s, t;
    if (mloc_dataset_spec_parse(ctx, &s, text) == MLOC_OK) {
        char *a = mloc_dataset_spec_format(&s);
        if (a) {
            if (mloc_dataset_spec_parse(ctx, &t, a) != MLOC_OK) abort();
            char *b = mloc_dataset_spec_format(&t);
            if (!b || strcmp(a, b) != 0) abort();
            free(b);
            mloc_dataset_spec_free(&t);
        }
        free(a);
        mloc_dataset_spec_free(&s);
    }
    if (indices && indices[0] != '@') {
        int64_t *v, n;
        if (mloc_indices_parse(ctx, indices, 1000, &v, &n) == MLOC_OK) {
            for (int64_t i = 0; i < n; i++)
                if (v[i] < 0 || v[i] >= 1000) abort();
            char *f = mloc_indices_format(v, n);
            int64_t *w, m;
            if (f && n > 0) {
                if (mloc_indices_parse(ctx, f, 1000, &w, &m) != MLOC_OK || m != n ||
                    memcmp(v, w, (size_t)n * sizeof *v) != 0)
                    abort();
                free(w);
            }
            free(f);
            free(v);
        }
    }
    mloc_ctx_destroy(ctx);
    free(text);
    return 0;
}
