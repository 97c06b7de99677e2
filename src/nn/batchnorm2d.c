/* batchnorm2d reference kernels (PyTorch nn.BatchNorm2d, affine, tracking
 * running stats): training normalises with the batch statistics, eval with
 * the running ones. */
#include <assert.h>
#include <math.h>

#include "memloc/nn.h"

mloc_bn_shape mloc_bn_shape_make(int N, int C, int HW) {
    assert(N > 0 && C > 0 && HW > 0);
    mloc_bn_shape s = {N, C, HW, 1e-5f, 0.1f};
    return s;
}

#define MLOC_REAL_F32
#include "batchnorm2d_impl.h"
#define MLOC_REAL_F64
#include "batchnorm2d_impl.h"
