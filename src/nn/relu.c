/* relu reference kernels (nn.ReLU). */
#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "relu_impl.h"
#define MLOC_REAL_F64
#include "relu_impl.h"
