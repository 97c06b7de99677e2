/* Drawing the parameters of one view, with torchvision 0.14's distributions
 * and draw order (FORMATS.md 3.1, 3.3, 3.4) from memloc's counter-based
 * streams (the values differ from PyTorch's generator; the distributions do
 * not).
 *
 * RandomResizedCrop.get_params, for an H x W image, A = H*W:
 *   up to 10 times: target = A * U(s0, s1)        (U drawn in float32)
 *                   aspect = exp(U(ln r0, ln r1)) (float32)
 *                   w = round(sqrt(target*aspect)), h = round(sqrt(target/aspect))
 *                   (double, half to even); accept if 0 < w <= W, 0 < h <= H,
 *                   then i = randint(0, H-h), j = randint(0, W-w)
 *   fallback: centre crop of the whole image clipped to the ratio range. */
#include <math.h>
#include <string.h>

#include "augment/internal.h"

void mloc_aug_stream(mloc_rng *r, uint64_t seed, const char *purpose, int64_t epoch,
                     int64_t sample, int64_t view) {
    mloc_rng_init_tag(r, seed, purpose, (uint64_t)epoch, (uint64_t)sample, (uint64_t)view);
}

/* torch.empty(1).uniform_(lo, hi): lo + (hi-lo)*u formed in double, stored
 * as float32. */
static float uniform_f32(mloc_rng *r, double lo, double hi) {
    double u = (double)mloc_rng_uniformf(r);
    return (float)(lo + (hi - lo) * u);
}

/* Python's round(): half to even (rint under the default rounding mode). */
static int round_half_even(double x) { return (int)nearbyint(x); }

static void draw_crop(mloc_aug_params *p, const mloc_aug_pipeline *pipe, int H, int W,
                      mloc_rng *r) {
    double area = (double)H * W;
    /* log_ratio = torch.log(torch.tensor(ratio)): float32 */
    float lr0 = logf(pipe->ratio[0]), lr1 = logf(pipe->ratio[1]);
    for (int attempt = 1; attempt <= 10; attempt++) {
        double target = area * (double)uniform_f32(r, pipe->scale[0], pipe->scale[1]);
        double aspect = (double)expf(uniform_f32(r, lr0, lr1));
        int w = round_half_even(sqrt(target * aspect));
        int h = round_half_even(sqrt(target / aspect));
        if (0 < w && w <= W && 0 < h && h <= H) {
            p->top = (int)mloc_rng_int(r, 0, H - h);
            p->left = (int)mloc_rng_int(r, 0, W - w);
            p->height = h;
            p->width = w;
            p->attempts = attempt;
            p->fallback = 0;
            return;
        }
    }
    /* centre crop: min(ratio)/max(ratio) as Python compares them, in double */
    double in_ratio = (double)W / (double)H;
    double rmin = fmin(pipe->ratio[0], pipe->ratio[1]), rmax = fmax(pipe->ratio[0], pipe->ratio[1]);
    int w, h;
    if (in_ratio < rmin) {
        w = W;
        h = round_half_even(w / rmin);
    } else if (in_ratio > rmax) {
        h = H;
        w = round_half_even(h * rmax);
    } else {
        w = W;
        h = H;
    }
    p->top = (H - h) / 2;
    p->left = (W - w) / 2;
    p->height = h;
    p->width = w;
    p->attempts = 10;
    p->fallback = 1;
}

/* A factor range is active unless it is the identity: (1, 1) for
 * brightness/contrast/saturation, (0, 0) for hue (ColorJitter._check_input). */
static int range_on(const float *range, float identity) {
    return !(range[0] == identity && range[1] == identity);
}

void mloc_aug_draw(mloc_aug_params *p, const mloc_aug_pipeline *pipe, int img_h, int img_w,
                   mloc_rng *r) {
    memset(p, 0, sizeof *p);
    mloc_aug_out_size(pipe, img_h, img_w, &p->out_h, &p->out_w);
    for (int k = 0; k < 4; k++) p->order[k] = k;
    p->factor[MLOC_JITTER_BRIGHTNESS] = p->factor[MLOC_JITTER_CONTRAST] = 1.0f;
    p->factor[MLOC_JITTER_SATURATION] = 1.0f;
    p->factor[MLOC_JITTER_HUE] = 0.0f;

    if (pipe->crop) {
        draw_crop(p, pipe, img_h, img_w, r);
    } else {
        p->height = img_h;
        p->width = img_w;
    }

    /* RandomApply([flip], p_a) (UnitMem.py) around RandomHorizontalFlip(p):
     * RandomApply skips when p_a < rand(); the flip fires when rand() < p. */
    if (pipe->flip_p > 0.0f) {
        int applied = 1;
        if (pipe->flip_apply_p < 1.0f) applied = !(pipe->flip_apply_p < mloc_rng_uniformf(r));
        if (applied) p->flip = mloc_rng_uniformf(r) < pipe->flip_p;
    }

    const float *ranges[4] = {pipe->brightness, pipe->contrast, pipe->saturation, pipe->hue};
    const float identity[4] = {1.0f, 1.0f, 1.0f, 0.0f};
    int any = 0;
    for (int k = 0; k < 4; k++) any |= range_on(ranges[k], identity[k]);
    if (any && pipe->jitter_p > 0.0f && !(pipe->jitter_p < mloc_rng_uniformf(r))) {
        p->jitter = 1;
        /* fn_idx = torch.randperm(4), then one factor per enabled op in the
         * fixed order b, c, s, h */
        int64_t perm[4];
        mloc_rng_permutation(r, perm, 4);
        for (int k = 0; k < 4; k++) p->order[k] = (int)perm[k];
        for (int k = 0; k < 4; k++) {
            p->enabled[k] = range_on(ranges[k], identity[k]);
            if (p->enabled[k]) p->factor[k] = uniform_f32(r, ranges[k][0], ranges[k][1]);
        }
    }

    if (pipe->gray_p > 0.0f) p->gray = mloc_rng_uniformf(r) < pipe->gray_p;
}
