/* Multi-head scaled-dot-product self-attention reference kernels (Vaswani
 * et al. 2017, section 3.2; timm's vision_transformer.Attention without the
 * projections, which are mloc_linear). */
#include <assert.h>
#include <math.h>

#include "memloc/nn.h"

mloc_attention_shape mloc_attention_shape_make(int N, int T, int D, int H) {
    assert(N > 0 && T > 0 && D > 0 && H > 0 && D % H == 0);
    mloc_attention_shape s = {N, T, D, H, D / H};
    return s;
}

/* The score gradients of every (n, h): N*H*T*T elements. */
int64_t mloc_attention_work_len(const mloc_attention_shape *s) {
    return (int64_t)s->N * s->H * s->T * s->T;
}

#define MLOC_REAL_F32
#include "attention_impl.h"
#define MLOC_REAL_F64
#include "attention_impl.h"
