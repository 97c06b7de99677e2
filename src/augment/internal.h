/* Module-internal declarations of src/augment: the readable reference
 * implementation (the specification the fast path is tested against), the
 * per-op kernels on float32 CHW images, and the resize weight tables. */
#ifndef MLOC_AUGMENT_INTERNAL_H
#define MLOC_AUGMENT_INTERNAL_H

#include <stdint.h>

#include "memloc/augment.h"

/* torchvision's rgb_to_grayscale weights (functional_tensor.py), as the
 * float32 scalars PyTorch multiplies with. */
#define AUG_GRAY_R 0.2989f
#define AUG_GRAY_G 0.587f
#define AUG_GRAY_B 0.114f

/* ---- resize weights (ATen _compute_weights_aa / compute_indices_weights_linear) */

/* One output coordinate: taps input indices start + j*step, j < count, with
 * weights w[0..count-1] (stride `max_taps` in the weight table). step is 1,
 * or 0 where plain bilinear reads the last pixel twice. */
typedef struct {
    int start, count, step;
} aug_taps;

/* Upper bound on the taps of any output coordinate when `in` inputs are
 * resized to `out` (antialiased: ~2*in/out + 2; plain bilinear: 2). */
int aug_max_taps(int in, int out);
/* Fill taps[out] and w[out * max_taps] for an in -> out resize along one
 * axis, float32 arithmetic exactly as ATen 1.13 does it:
 *   antialias: scale = in/out, support = max(scale, 1), centre (x+0.5)*scale,
 *              triangle filter over (j + xmin - centre + 0.5)/max(scale, 1),
 *              weights normalised by their float sum;
 *   plain:     s = max((x+0.5)*scale - 0.5, 0), taps floor(s) and
 *              min(floor(s)+1, in-1) with weights 1-l, l. */
void aug_resize_weights(aug_taps *taps, float *w, int max_taps, int in, int out, int antialias);

/* ---- colour ops on a float32 (c, n) image, n = H*W, in place ------------------- */

/* blend(x, 0, f) = clamp(f*x, 0, 1) */
void aug_brightness(float *x, int c, int64_t n, float f);
/* blend(x, mean(gray(x)), f); the mean is taken over the whole image */
void aug_contrast(float *x, int c, int64_t n, float f);
/* blend(x, gray(x), f); identity for c = 1 */
void aug_saturation(float *x, int c, int64_t n, float f);
/* RGB -> HSV, H = (H + f) mod 1, HSV -> RGB (FORMATS.md 3.4); identity for c = 1 */
void aug_hue(float *x, int c, int64_t n, float f);
/* gray replicated into every channel (identity for c = 1) */
void aug_grayscale(float *x, int c, int64_t n);
/* (x - mean_c) / std_c */
void aug_normalize(float *x, int c, int64_t n, const float *mean, const float *std);
/* Mean of gray(x) as torch.mean would give it (a double sum rounded to float). */
float aug_gray_mean(const float *x, int c, int64_t n);

/* ---- the reference ----------------------------------------------------------- */

/* Plain, op-by-op version of mloc_aug_apply: ToTensor of the whole image,
 * [Normalize], crop copy, horizontal resize, vertical resize, flip, jitter
 * ops, grayscale, [Normalize]; every step a separate full-image pass with
 * weights computed on the spot. Returns ERR_NOMEM if its buffers cannot be
 * allocated. */
mloc_status aug_apply_ref(float *out, const uint8_t *img, int h, int w, int c,
                          const mloc_aug_params *p, const mloc_aug_pipeline *pipe);

#endif
