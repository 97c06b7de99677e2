/* Elementwise add (residual joins). */
#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "add_impl.h"
#define MLOC_REAL_F64
#include "add_impl.h"
