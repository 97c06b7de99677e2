/* Global average pooling (nn.AdaptiveAvgPool2d(1) followed by flatten). */
#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "avgpool_global_impl.h"
#define MLOC_REAL_F64
#include "avgpool_global_impl.h"
