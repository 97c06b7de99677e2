/* linear reference kernels (nn.Linear). */
#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "linear_impl.h"
#define MLOC_REAL_F64
#include "linear_impl.h"
