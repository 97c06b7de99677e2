/* Self-supervised and supervised objectives: one training step's forward,
 * loss and backward on a batch of views. The optimizer step is the caller's.
 *
 *   SimCLR (Chen et al. 2020): x holds 2N views, view-major (rows 0..N-1 the
 *     first view of each image, N..2N-1 the second); NT-Xent with temperature
 *     T on the projection head's output (include/memloc/nn.h mloc_ntxent).
 *   supervised: x holds N images; softmax cross-entropy of the classifier
 *     head against the labels. */
#ifndef MEMLOC_SSL_H
#define MEMLOC_SSL_H

#include <stdint.h>

#include "memloc/model.h"

/* Scratch for the head's outputs and their gradients, sized once for a
 * model and a batch of views. */
typedef struct {
    float *out, *dout;
    int64_t capacity; /* floats each */
    double *work;     /* NT-Xent workspace */
} mloc_ssl_scratch;

mloc_status mloc_ssl_scratch_init(mloc_ctx *ctx, mloc_ssl_scratch *s, const mloc_model *m, int max_views);
void mloc_ssl_scratch_free(mloc_ssl_scratch *s);

/* forward (train mode), loss, backward; parameter gradients accumulate into
 * m->store.grad (zero them first). ERR_DIVERGED if the loss is not finite. */
mloc_status mloc_simclr_step(mloc_ctx *ctx, mloc_model *m, mloc_ssl_scratch *s, const float *x,
                             int n_images, float temperature, double *loss);
mloc_status mloc_supervised_step(mloc_ctx *ctx, mloc_model *m, mloc_ssl_scratch *s, const float *x,
                                 const int32_t *labels, int n_images, double *loss, int *correct);

#endif
