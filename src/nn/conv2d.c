/* conv2d reference kernels (PyTorch nn.Conv2d semantics, groups = 1,
 * dilation = 1, zero padding). */
#include "memloc/nn.h"

mloc_conv2d_shape mloc_conv2d_shape_make(int N, int C, int H, int W, int K, int R, int S,
                                         int stride, int pad) {
    mloc_conv2d_shape s = {N, C, H, W, K, R, S, stride, stride, pad, pad, 0, 0};
    s.P = (H + 2 * pad - R) / stride + 1;
    s.Q = (W + 2 * pad - S) / stride + 1;
    return s;
}

#define MLOC_REAL_F32
#include "conv2d_impl.h"
#define MLOC_REAL_F64
#include "conv2d_impl.h"
