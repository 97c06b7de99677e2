/* layernorm reference kernels (nn.LayerNorm over the last dimension). */
#include <assert.h>
#include <math.h>

#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "layernorm_impl.h"
#define MLOC_REAL_F64
#include "layernorm_impl.h"
