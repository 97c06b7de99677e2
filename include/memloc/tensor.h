/* The named tensor table: one list of (name, shape, offset, role) that
 * describes the flat blocks holding a model's parameters, gradients,
 * optimizer moments and buffers. Checkpoints and safetensors files are
 * written from it, with PyTorch names.
 *
 * Blocks:
 *   param   float  trainable parameters (weights, biases, BN affine);
 *                  grads and optimizer moments use the same offsets
 *   buffer  float  non-trainable state (BN running_mean / running_var)
 *   counter int64  BN num_batches_tracked (shape [], one element each) */
#ifndef MEMLOC_TENSOR_H
#define MEMLOC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "memloc/context.h"

#define MLOC_NAME_MAX 96
#define MLOC_MAX_DIMS 6

typedef enum {
    MLOC_DTYPE_F32 = 0,
    MLOC_DTYPE_F16,
    MLOC_DTYPE_BF16,
    MLOC_DTYPE_F64,
    MLOC_DTYPE_I64,
    MLOC_DTYPE_I32,
    MLOC_DTYPE_U8,
    MLOC_DTYPE_COUNT
} mloc_dtype;

/* "F32", "I64", ... (safetensors spelling); size in bytes. */
const char *mloc_dtype_name(mloc_dtype t);
size_t mloc_dtype_size(mloc_dtype t);
/* Parse a safetensors dtype name; returns -1 if unknown to memloc. */
int mloc_dtype_parse(const char *name);

typedef enum {
    MLOC_ROLE_WEIGHT = 0,   /* conv / linear weight */
    MLOC_ROLE_BIAS,         /* conv / linear bias */
    MLOC_ROLE_NORM_WEIGHT,  /* BN / LN gamma */
    MLOC_ROLE_NORM_BIAS,    /* BN / LN beta */
    MLOC_ROLE_EMBEDDING,    /* cls token, position embedding (ViT) */
    MLOC_ROLE_RUNNING_MEAN, /* buffer */
    MLOC_ROLE_RUNNING_VAR,  /* buffer */
    MLOC_ROLE_NUM_BATCHES   /* counter */
} mloc_role;

typedef enum { MLOC_BLOCK_PARAM = 0, MLOC_BLOCK_BUFFER, MLOC_BLOCK_COUNTER } mloc_block;

/* Which part of a model a tensor belongs to. Encoder tensors are what the
 * metrics read; heads (projection, predictor, classifier) are stored beside
 * them under their own names. */
typedef enum { MLOC_GROUP_ENCODER = 0, MLOC_GROUP_HEAD } mloc_group;

typedef struct {
    char name[MLOC_NAME_MAX];   /* PyTorch state_dict key */
    int ndim;
    int64_t shape[MLOC_MAX_DIMS];
    int64_t numel;
    int64_t offset;             /* in elements, within its block */
    mloc_role role;
    mloc_group group;
    int module;                 /* index of the owning module (model-defined) */
} mloc_tensor;

typedef struct {
    mloc_tensor *t;
    int n, cap;
    int64_t numel[3];           /* elements per block (param, buffer, counter) */
} mloc_table;

mloc_block mloc_role_block(mloc_role r);

void mloc_table_init(mloc_table *tab);
void mloc_table_free(mloc_table *tab);
/* Append a tensor; its offset is the current end of its block. Returns the
 * entry index, or -1 on allocation failure / duplicate name. */
int mloc_table_add(mloc_table *tab, const char *name, mloc_role role, mloc_group group,
                   int module, int ndim, const int64_t *shape);
/* Index of `name`, or -1. */
int mloc_table_find(const mloc_table *tab, const char *name);

/* The storage a table describes. grad has the param block's layout. */
typedef struct {
    float *param;
    float *grad;
    float *buffer;
    int64_t *counter;
} mloc_store;

mloc_status mloc_store_alloc(mloc_ctx *ctx, mloc_store *s, const mloc_table *tab);
void mloc_store_free(mloc_store *s);
/* Pointer to the first element of entry i (float* for param/buffer blocks,
 * int64_t* for counters). */
void *mloc_store_ptr(const mloc_store *s, const mloc_table *tab, int i);

#endif
