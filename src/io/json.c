/* JSON result documents: pretty, atomic saves and strict loads (jansson). */
#include "memloc/io.h"

#include <stdlib.h>
#include <string.h>

mloc_status mloc_json_save(mloc_ctx *ctx, const char *path, json_t *doc) {
    /* Insertion order, indent 2; reals print with 17 significant digits. */
    mloc_atomic_file af;
    MLOC_TRY(mloc_atomic_open(ctx, &af, path));
    if (json_dumpf(doc, af.fp, JSON_INDENT(2)) != 0 || fputc('\n', af.fp) == EOF) {
        mloc_atomic_abort(&af);
        return mloc_error(ctx, MLOC_ERR_IO, "%s: cannot write JSON document", path);
    }
    return mloc_atomic_commit(ctx, &af);
}

mloc_status mloc_json_load(mloc_ctx *ctx, const char *path, json_t **out) {
    *out = NULL;
    void *text;
    size_t size;
    MLOC_TRY(mloc_read_file(ctx, path, &text, &size));
    json_error_t err;
    json_t *doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!doc)
        return mloc_error(ctx, MLOC_ERR_DATA, "%s: line %d column %d: %s", path, err.line,
                          err.column, err.text);
    *out = doc;
    return MLOC_OK;
}
