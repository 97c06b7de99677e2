/* GELU reference kernels (Hendrycks & Gimpel 2016; nn.GELU, exact erf form). */
#include <math.h>

#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "gelu_impl.h"
#define MLOC_REAL_F64
#include "gelu_impl.h"
