/* Row softmax reference kernels (F.softmax(x, dim=-1)). */
#include <math.h>

#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "softmax_impl.h"
#define MLOC_REAL_F64
#include "softmax_impl.h"
