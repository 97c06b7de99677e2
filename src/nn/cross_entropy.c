/* Softmax cross-entropy with integer labels (F.cross_entropy, mean
 * reduction, no label smoothing, no ignore_index). */
#include <assert.h>
#include <math.h>

#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "cross_entropy_impl.h"
#define MLOC_REAL_F64
#include "cross_entropy_impl.h"
