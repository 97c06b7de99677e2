/* The reference augmentation: torchvision's tensor path step by step, each a
 * separate full-image pass (FORMATS.md section 3). It is slow and plain on
 * purpose; mloc_aug_apply (apply.c) fuses the steps and is tested against
 * it for bit-exact agreement, and both against torchvision fixtures.
 *
 *   x = ToTensor(img)                   uint8 HWC -> float CHW, v / 255
 *   [x = Normalize(x)]                  normalize_first only
 *   x = x[:, top:top+h, left:left+w]    crop
 *   x = resize(x, (out_h, out_w))       horizontal pass, then vertical
 *   [x = hflip(x)]
 *   [x = jitter ops in `order`]         each enabled op
 *   [x = rgb_to_grayscale(x, c)]
 *   [x = Normalize(x)]                  unless normalize_first */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/internal.h"

/* The weight of input index k for output coordinate x of an in -> out
 * resize, computed from scratch (same float arithmetic as ATen). Returns the
 * tap list for x in idx/wt (at most `cap`), their number as the result. */
static int ref_taps(int x, int in, int out, int antialias, int *idx, float *wt, int cap) {
    float scale = (float)in / (float)out;
    if (antialias) {
        float support = scale >= 1.0f ? scale : 1.0f;
        float invscale = scale >= 1.0f ? (float)(1.0 / (double)scale) : 1.0f;
        float center = (float)((double)scale * (x + 0.5));
        int64_t lo = (int64_t)((double)(center - support) + 0.5);
        int64_t hi = (int64_t)((double)(center + support) + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = 0;
        float total = 0.0f;
        for (int64_t k = lo; k < hi && n < cap; k++, n++) {
            float d = (float)(((double)((float)k - center) + 0.5) * (double)invscale);
            if (d < 0.0f) d = -d;
            wt[n] = d < 1.0f ? (float)(1.0 - (double)d) : 0.0f;
            idx[n] = (int)k;
            total += wt[n];
        }
        for (int j = 0; j < n; j++)
            if (total != 0.0f) wt[j] /= total;
        return n;
    }
    float src = in == out ? (float)x : (float)((double)scale * (x + 0.5) - 0.5);
    if (src < 0.0f) src = 0.0f;
    int i0 = (int)src;
    float l1 = fminf(fmaxf(src - (float)i0, 0.0f), 1.0f);
    idx[0] = i0;
    idx[1] = i0 < in - 1 ? i0 + 1 : i0;
    wt[0] = 1.0f - l1;
    wt[1] = l1;
    return 2;
}

/* Resize src (c, ih, iw) to dst (c, oh, ow): along W into tmp (c, ih, ow),
 * then along H; each output is t0*w0 + t1*w1 + ... accumulated in order. */
static mloc_status ref_resize(float *dst, const float *src, int c, int ih, int iw, int oh, int ow,
                              int antialias) {
    int cap = (ih > iw ? ih : iw) + 2;
    float *tmp = malloc(sizeof(float) * (size_t)c * ih * ow);
    int *idx = malloc(sizeof(int) * cap);
    float *wt = malloc(sizeof(float) * cap);
    if (!tmp || !idx || !wt) {
        free(tmp);
        free(idx);
        free(wt);
        return MLOC_ERR_NOMEM;
    }
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < ih; y++)
            for (int x = 0; x < ow; x++) {
                int n = ref_taps(x, iw, ow, antialias, idx, wt, cap);
                const float *row = src + ((int64_t)ch * ih + y) * iw;
                float acc = row[idx[0]] * wt[0];
                for (int j = 1; j < n; j++) acc += row[idx[j]] * wt[j];
                tmp[((int64_t)ch * ih + y) * ow + x] = acc;
            }
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++) {
            int n = ref_taps(y, ih, oh, antialias, idx, wt, cap);
            for (int x = 0; x < ow; x++) {
                const float *col = tmp + (int64_t)ch * ih * ow + x;
                float acc = col[(int64_t)idx[0] * ow] * wt[0];
                for (int j = 1; j < n; j++) acc += col[(int64_t)idx[j] * ow] * wt[j];
                dst[((int64_t)ch * oh + y) * ow + x] = acc;
            }
        }
    free(tmp);
    free(idx);
    free(wt);
    return MLOC_OK;
}

mloc_status aug_apply_ref(float *out, const uint8_t *img, int h, int w, int c,
                          const mloc_aug_params *p, const mloc_aug_pipeline *pipe) {
    int oh = p->out_h, ow = p->out_w;
    int64_t n_in = (int64_t)h * w, n_out = (int64_t)oh * ow;
    float *full = malloc(sizeof(float) * (size_t)(c * n_in));
    float *crop = malloc(sizeof(float) * (size_t)(c * (int64_t)p->height * p->width));
    if (!full || !crop) {
        free(full);
        free(crop);
        return MLOC_ERR_NOMEM;
    }
    /* ToTensor: img.permute(2,0,1).float().div(255) */
    for (int ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < n_in; i++) full[ch * n_in + i] = (float)img[i * c + ch] / 255.0f;
    if (pipe->normalize_first) aug_normalize(full, c, n_in, pipe->mean, pipe->std);

    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < p->height; y++)
            memcpy(crop + ((int64_t)ch * p->height + y) * p->width,
                   full + ch * n_in + (int64_t)(p->top + y) * w + p->left, sizeof(float) * p->width);

    mloc_status st = ref_resize(out, crop, c, p->height, p->width, oh, ow, pipe->antialias);
    free(full);
    free(crop);
    if (st != MLOC_OK) return st;

    if (p->flip)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < oh; y++) {
                float *row = out + ((int64_t)ch * oh + y) * ow;
                for (int x = 0; x < ow / 2; x++) {
                    float t = row[x];
                    row[x] = row[ow - 1 - x];
                    row[ow - 1 - x] = t;
                }
            }

    if (p->jitter)
        for (int k = 0; k < 4; k++) {
            int op = p->order[k];
            if (!p->enabled[op]) continue;
            float f = p->factor[op];
            switch (op) {
            case MLOC_JITTER_BRIGHTNESS: aug_brightness(out, c, n_out, f); break;
            case MLOC_JITTER_CONTRAST: aug_contrast(out, c, n_out, f); break;
            case MLOC_JITTER_SATURATION: aug_saturation(out, c, n_out, f); break;
            case MLOC_JITTER_HUE: aug_hue(out, c, n_out, f); break;
            }
        }
    if (p->gray) aug_grayscale(out, c, n_out);
    if (!pipe->normalize_first) aug_normalize(out, c, n_out, pipe->mean, pipe->std);
    return MLOC_OK;
}
