/* conv2d reference kernels (PyTorch nn.Conv2d semantics, groups = 1,
 * dilation = 1, zero padding). Covers every convolution memloc's models use:
 * 3x3 stride 1 (ResNet9), 3x3 and 1x1 stride 2 (ResNet downsampling),
 * 7x7 stride 2 pad 3 (ImageNet stem) and patch embedding (ViT: R = S =
 * stride = patch, pad 0). */
#include <assert.h>

#include "memloc/nn.h"

/* P = floor((H + 2*pad - R) / stride) + 1 as PyTorch; the kernel must fit in
 * the padded input (C's `/` truncates toward zero, so a negative numerator
 * would silently give P = 1 instead of an error). */
mloc_conv2d_shape mloc_conv2d_shape_make(int N, int C, int H, int W, int K, int R, int S,
                                         int stride, int pad) {
    assert(N > 0 && C > 0 && H > 0 && W > 0 && K > 0 && R > 0 && S > 0);
    assert(stride > 0 && pad >= 0);
    assert(H + 2 * pad >= R && W + 2 * pad >= S);
    mloc_conv2d_shape s = {N, C, H, W, K, R, S, stride, stride, pad, pad, 0, 0};
    s.P = (H + 2 * pad - R) / stride + 1;
    s.Q = (W + 2 * pad - S) / stride + 1;
    return s;
}

#define MLOC_REAL_F32
#include "conv2d_impl.h"
#define MLOC_REAL_F64
#include "conv2d_impl.h"
