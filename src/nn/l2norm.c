/* Row-wise L2 normalisation (F.normalize(x, p=2, dim=-1)): the DINO head's
 * bottleneck normalisation and its weight-normalised last layer (whose rows
 * are normalised the same way, torch.nn.utils.weight_norm with g = 1). */
#include <math.h>

#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "l2norm_impl.h"
#define MLOC_REAL_F64
#include "l2norm_impl.h"
