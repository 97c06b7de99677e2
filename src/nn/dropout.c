/* Dropout with an explicit mask (nn.Dropout in training mode, inverted
 * scaling). The mask is drawn separately from applying it, so the apply step
 * can be checked against PyTorch with the same mask and the draw is a pure
 * function of the caller's stream. */
#include <assert.h>

#include "memloc/nn.h"

void mloc_dropout_mask(uint8_t *mask, int64_t n, double p, mloc_rng *r) {
    assert(p >= 0 && p <= 1);
    for (int64_t i = 0; i < n; i++) mask[i] = mloc_rng_uniform(r) >= p;
}

#define MLOC_REAL_F32
#include "dropout_impl.h"
#define MLOC_REAL_F64
#include "dropout_impl.h"
