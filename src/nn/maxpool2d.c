/* maxpool2d reference kernels (nn.MaxPool2d, dilation 1, floor mode). */
#include <assert.h>

#include "memloc/nn.h"

/* P = floor((H + 2*pad - k) / stride) + 1 as PyTorch (ceil_mode=False);
 * PyTorch also requires pad <= k/2, so every window holds at least one input
 * element. */
mloc_pool_shape mloc_pool_shape_make(int N, int C, int H, int W, int k, int stride, int pad) {
    assert(N > 0 && C > 0 && H > 0 && W > 0 && k > 0 && stride > 0);
    assert(pad >= 0 && pad <= k / 2);
    assert(H + 2 * pad >= k && W + 2 * pad >= k);
    mloc_pool_shape s = {N, C, H, W, k, stride, pad, 0, 0};
    s.P = (H + 2 * pad - k) / stride + 1;
    s.Q = (W + 2 * pad - k) / stride + 1;
    return s;
}

#define MLOC_REAL_F32
#include "maxpool2d_impl.h"
#define MLOC_REAL_F64
#include "maxpool2d_impl.h"
