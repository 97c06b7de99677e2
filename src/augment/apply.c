/* The fast apply path: the same float operations as the reference (ref.c),
 * fused where that is exact.
 *
 *   - ToTensor (and Normalize, with normalize_first) is a 256-entry table per
 *     channel read by the horizontal resize pass: no float copy of the image.
 *   - Only the crop box is touched; resize weights are computed once per view
 *     per axis (aug_resize_weights), not per pixel.
 *   - The flip is folded into the horizontal pass (it writes column ow-1-x).
 *   - A crop that already has the output size skips the resize (torchvision's
 *     resize returns such an image unchanged).
 *   - The colour ops are branch-free loops over contiguous planes (ops.c).
 *
 * Per output element the sequence of float operations is the reference's,
 * so the two agree bit for bit (tests/unit/test_aug_apply.c). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "augment/internal.h"

/* Workspace layout (each part 64-byte aligned):
 *   lut   float [3][256]
 *   tmp   float [c][crop_h <= h][ow]     horizontal pass output
 *   wx    float [ow][tx], taps_x aug_taps [ow]
 *   wy    float [oh][ty], taps_y aug_taps [oh] */
static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

size_t mloc_aug_workspace_bytes(int h, int w, int c, int out_h, int out_w) {
    int tx = aug_max_taps(w, out_w), ty = aug_max_taps(h, out_h);
    size_t b = align64(sizeof(float) * 3 * 256);
    b += align64(sizeof(float) * (size_t)c * h * out_w);
    b += align64(sizeof(float) * (size_t)out_w * tx) + align64(sizeof(aug_taps) * (size_t)out_w);
    b += align64(sizeof(float) * (size_t)out_h * ty) + align64(sizeof(aug_taps) * (size_t)out_h);
    return b;
}

/* Horizontal pass over the crop box: tmp (c, ch, ow) from uint8 HWC through
 * the per-channel table, flipped if asked. Each output is
 * t0*w0 + t1*w1 + ... in tap order. */
static void resize_rows(float *tmp, const uint8_t *img, int w, int c, const mloc_aug_params *p,
                        const float *lut, const aug_taps *taps, const float *wx, int tx, int ow) {
    for (int y = 0; y < p->height; y++) {
        const uint8_t *row = img + ((int64_t)(p->top + y) * w + p->left) * c;
        for (int ch = 0; ch < c; ch++) {
            const float *L = lut + ch * 256;
            float *dst = tmp + ((int64_t)ch * p->height + y) * ow;
            for (int x = 0; x < ow; x++) {
                const aug_taps *t = &taps[x];
                const float *wt = wx + (int64_t)x * tx;
                const uint8_t *s = row + (int64_t)t->start * c + ch;
                int64_t stride = (int64_t)t->step * c;
                float acc = L[s[0]] * wt[0];
                for (int j = 1; j < t->count; j++) acc += L[s[j * stride]] * wt[j];
                dst[p->flip ? ow - 1 - x : x] = acc;
            }
        }
    }
}

/* Vertical pass: out (c, oh, ow) from tmp (c, ch, ow); the inner loop runs
 * along contiguous x, so it vectorises. */
static void resize_cols(float *out, const float *tmp, int c, int ch_rows, int oh, int ow,
                        const aug_taps *taps, const float *wy, int ty) {
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++) {
            const aug_taps *t = &taps[y];
            const float *wt = wy + (int64_t)y * ty;
            const float *src = tmp + ((int64_t)ch * ch_rows + t->start) * ow;
            int64_t stride = (int64_t)t->step * ow;
            float *restrict dst = out + ((int64_t)ch * oh + y) * ow;
            float w0 = wt[0];
#pragma omp simd
            for (int x = 0; x < ow; x++) dst[x] = src[x] * w0;
            for (int j = 1; j < t->count; j++) {
                const float *restrict s = src + j * stride;
                float wj = wt[j];
#pragma omp simd
                for (int x = 0; x < ow; x++) dst[x] += s[x] * wj;
            }
        }
}

/* The crop already has the output size: a table look-up copy. */
static void copy_crop(float *out, const uint8_t *img, int w, int c, const mloc_aug_params *p,
                      const float *lut) {
    int oh = p->out_h, ow = p->out_w;
    for (int y = 0; y < oh; y++) {
        const uint8_t *row = img + ((int64_t)(p->top + y) * w + p->left) * c;
        for (int ch = 0; ch < c; ch++) {
            const float *L = lut + ch * 256;
            float *dst = out + ((int64_t)ch * oh + y) * ow;
            if (p->flip)
                for (int x = 0; x < ow; x++) dst[ow - 1 - x] = L[row[(int64_t)x * c + ch]];
            else
                for (int x = 0; x < ow; x++) dst[x] = L[row[(int64_t)x * c + ch]];
        }
    }
}

void mloc_aug_apply_ws(float *out, const uint8_t *img, int h, int w, int c,
                       const mloc_aug_params *p, const mloc_aug_pipeline *pipe, void *ws) {
    assert(c == 1 || c == 3);
    assert(p->top >= 0 && p->left >= 0 && p->height >= 1 && p->width >= 1);
    assert(p->top + p->height <= h && p->left + p->width <= w);
    int oh = p->out_h, ow = p->out_w;
    int64_t n = (int64_t)oh * ow;

    char *base = ws;
    float *lut = (float *)base;
    base += align64(sizeof(float) * 3 * 256);
    /* ToTensor: v / 255 in float; with normalize_first also (x - m) / s */
    for (int ch = 0; ch < c; ch++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            lut[ch * 256 + v] = pipe->normalize_first ? (x - pipe->mean[ch]) / pipe->std[ch] : x;
        }

    if (p->height == oh && p->width == ow) {
        copy_crop(out, img, w, c, p, lut);
    } else {
        int tx = aug_max_taps(w, ow), ty = aug_max_taps(h, oh);
        float *tmp = (float *)base;
        base += align64(sizeof(float) * (size_t)c * h * ow);
        float *wx = (float *)base;
        base += align64(sizeof(float) * (size_t)ow * tx);
        aug_taps *taps_x = (aug_taps *)base;
        base += align64(sizeof(aug_taps) * (size_t)ow);
        float *wy = (float *)base;
        base += align64(sizeof(float) * (size_t)oh * ty);
        aug_taps *taps_y = (aug_taps *)base;
        /* weight tables for this crop: a crop is at most w wide, so the
         * taps fit in aug_max_taps(w, ow) */
        aug_resize_weights(taps_x, wx, tx, p->width, ow, pipe->antialias);
        aug_resize_weights(taps_y, wy, ty, p->height, oh, pipe->antialias);
        resize_rows(tmp, img, w, c, p, lut, taps_x, wx, tx, ow);
        resize_cols(out, tmp, c, p->height, oh, ow, taps_y, wy, ty);
    }

    if (p->jitter)
        for (int k = 0; k < 4; k++) {
            int op = p->order[k];
            if (!p->enabled[op]) continue;
            float f = p->factor[op];
            switch (op) {
            case MLOC_JITTER_BRIGHTNESS: aug_brightness(out, c, n, f); break;
            case MLOC_JITTER_CONTRAST: aug_contrast(out, c, n, f); break;
            case MLOC_JITTER_SATURATION: aug_saturation(out, c, n, f); break;
            case MLOC_JITTER_HUE: aug_hue(out, c, n, f); break;
            }
        }
    if (p->gray) aug_grayscale(out, c, n);
    if (!pipe->normalize_first) aug_normalize(out, c, n, pipe->mean, pipe->std);
}

mloc_status mloc_aug_apply(float *out, const uint8_t *img, int h, int w, int c,
                           const mloc_aug_params *p, const mloc_aug_pipeline *pipe) {
    /* small views (CIFAR-sized) work on the stack */
    enum { STACK_BYTES = 32 * 1024 };
    _Alignas(64) char stack[STACK_BYTES];
    size_t need = mloc_aug_workspace_bytes(h, w, c, p->out_h, p->out_w);
    void *ws = stack;
    if (need > STACK_BYTES) {
        ws = NULL;
        if (posix_memalign(&ws, 64, need) != 0) return MLOC_ERR_NOMEM;
    }
    mloc_aug_apply_ws(out, img, h, w, c, p, pipe, ws);
    if (ws != stack) free(ws);
    return MLOC_OK;
}
