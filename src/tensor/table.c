#include "memloc/tensor.h"

#include <stdlib.h>
#include <string.h>

static const char *dtype_names[MLOC_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8"};
static const size_t dtype_sizes[MLOC_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 1};

const char *mloc_dtype_name(mloc_dtype t) {
    return (unsigned)t < MLOC_DTYPE_COUNT ? dtype_names[t] : "?";
}

size_t mloc_dtype_size(mloc_dtype t) { return (unsigned)t < MLOC_DTYPE_COUNT ? dtype_sizes[t] : 0; }

int mloc_dtype_parse(const char *name) {
    for (int i = 0; i < MLOC_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_names[i]) == 0) return i;
    return -1;
}

mloc_block mloc_role_block(mloc_role r) {
    switch (r) {
    case MLOC_ROLE_RUNNING_MEAN:
    case MLOC_ROLE_RUNNING_VAR: return MLOC_BLOCK_BUFFER;
    case MLOC_ROLE_NUM_BATCHES: return MLOC_BLOCK_COUNTER;
    default: return MLOC_BLOCK_PARAM;
    }
}

void mloc_table_init(mloc_table *tab) { memset(tab, 0, sizeof *tab); }

void mloc_table_free(mloc_table *tab) {
    free(tab->t);
    memset(tab, 0, sizeof *tab);
}

int mloc_table_find(const mloc_table *tab, const char *name) {
    for (int i = 0; i < tab->n; i++)
        if (strcmp(tab->t[i].name, name) == 0) return i;
    return -1;
}

int mloc_table_add(mloc_table *tab, const char *name, mloc_role role, mloc_group group,
                   int module, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > MLOC_MAX_DIMS || strlen(name) >= MLOC_NAME_MAX) return -1;
    if (mloc_table_find(tab, name) >= 0) return -1;
    if (tab->n == tab->cap) {
        int cap = tab->cap ? tab->cap * 2 : 64;
        mloc_tensor *t = realloc(tab->t, (size_t)cap * sizeof *t);
        if (!t) return -1;
        tab->t = t;
        tab->cap = cap;
    }
    mloc_tensor *e = &tab->t[tab->n];
    memset(e, 0, sizeof *e);
    strcpy(e->name, name);
    e->ndim = ndim;
    e->numel = 1;
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        e->numel *= shape[d];
    }
    e->role = role;
    e->group = group;
    e->module = module;
    mloc_block b = mloc_role_block(role);
    e->offset = tab->numel[b];
    tab->numel[b] += e->numel;
    return tab->n++;
}

mloc_status mloc_store_alloc(mloc_ctx *ctx, mloc_store *s, const mloc_table *tab) {
    memset(s, 0, sizeof *s);
    s->param = mloc_alloc(ctx, (size_t)tab->numel[MLOC_BLOCK_PARAM] * sizeof(float));
    s->grad = mloc_alloc(ctx, (size_t)tab->numel[MLOC_BLOCK_PARAM] * sizeof(float));
    s->buffer = mloc_alloc(ctx, (size_t)tab->numel[MLOC_BLOCK_BUFFER] * sizeof(float));
    s->counter = mloc_alloc(ctx, (size_t)tab->numel[MLOC_BLOCK_COUNTER] * sizeof(int64_t));
    if (!s->param || !s->grad || !s->buffer || !s->counter) {
        mloc_store_free(s);
        return MLOC_ERR_NOMEM;
    }
    return MLOC_OK;
}

void mloc_store_free(mloc_store *s) {
    mloc_free(s->param);
    mloc_free(s->grad);
    mloc_free(s->buffer);
    mloc_free(s->counter);
    memset(s, 0, sizeof *s);
}

void *mloc_store_ptr(const mloc_store *s, const mloc_table *tab, int i) {
    const mloc_tensor *e = &tab->t[i];
    switch (mloc_role_block(e->role)) {
    case MLOC_BLOCK_PARAM: return s->param + e->offset;
    case MLOC_BLOCK_BUFFER: return s->buffer + e->offset;
    case MLOC_BLOCK_COUNTER: return s->counter + e->offset;
    }
    return NULL;
}
