/* Per-op augmentation kernels on float32 CHW images, written op for op as
 * torchvision 0.14's functional_tensor.py computes them in float32
 * (FORMATS.md 3.2-3.5), so results match to the last bit or so:
 *
 *   _blend(a, b, f) = clamp(f*a + (1.0 - f)*b, 0, 1), where f is the float32
 *       factor and (1.0 - f) is formed in double (Python) and rounded to float;
 *   rgb_to_grayscale = (0.2989*r + 0.587*g) + 0.114*b, in float32;
 *   adjust_hue = _rgb2hsv, (h + f) % 1.0, _hsv2rgb;
 *   normalize = (x - mean) / std (a true division, as tensor.div_);
 *   interpolate(antialias=True) weights from ATen's _compute_weights_aa.
 *
 * The loops are branch-free over contiguous planes and marked `omp simd`
 * (GCC does not vectorise them at -O2 otherwise; vector lanes do the same
 * IEEE operations, no reduction is reordered); they are shared by the
 * reference and the fast path. The
 * library is compiled as ISO C11, so GCC does not contract a*b+c into an FMA
 * (-ffp-contract=off), which would change the rounding. */
#include <assert.h>
#include <math.h>

#include "augment/internal.h"

static inline float clamp01(float v) {
    /* torch.clamp(v, 0, 1) = min(max(v, 0), 1) */
    v = v < 0.0f ? 0.0f : v;
    return v > 1.0f ? 1.0f : v;
}

/* ---- resize weights --------------------------------------------------------- */

int aug_max_taps(int in, int out) {
    /* ATen allocates ceil(support)*2+1 weights per coordinate; taps never
     * exceed the input length either. For upsampling support is 1: 3. */
    double scale = (double)in / out;
    int t = (int)ceil(scale > 1.0 ? scale : 1.0) * 2 + 1;
    return t < in + 1 ? t : in + 1;
}

/* PIL's / ATen's triangle filter; the argument and the result are float,
 * the arithmetic inside double, as in HelperInterpLinear::_filter. */
static float triangle(float x) {
    if (x < 0.0f) x = -x;
    if (x < 1.0f) return (float)(1.0 - (double)x);
    return 0.0f;
}

void aug_resize_weights(aug_taps *taps, float *w, int max_taps, int in, int out, int antialias) {
    /* area_pixel_compute_scale<float>: float(in) / out */
    float scale = (float)in / (float)out;
    if (antialias) {
        /* support = (interp_size * 0.5) * scale, interp_size 2 for bilinear */
        float support = scale >= 1.0f ? (float)(1.0 * (double)scale) : 1.0f;
        float invscale = scale >= 1.0f ? (float)(1.0 / (double)scale) : 1.0f;
        for (int i = 0; i < out; i++) {
            float *wt = w + (int64_t)i * max_taps;
            float center = (float)((double)scale * (i + 0.5));
            int64_t xmin = (int64_t)((double)(center - support) + 0.5);
            if (xmin < 0) xmin = 0;
            int64_t xmax = (int64_t)((double)(center + support) + 0.5);
            if (xmax > in) xmax = in;
            int xsize = (int)(xmax - xmin);
            assert(xsize >= 1 && xsize <= max_taps);
            float total = 0.0f;
            for (int j = 0; j < xsize; j++) {
                /* (j + xmin - center + 0.5) * invscale: int64 - float is float,
                 * + 0.5 and * invscale in double, rounded to float by the call */
                float arg = (float)(((double)((float)(j + xmin) - center) + 0.5) * (double)invscale);
                wt[j] = triangle(arg);
                total += wt[j];
            }
            for (int j = 0; j < xsize; j++)
                if (total != 0.0f) wt[j] /= total;
            taps[i].start = (int)xmin;
            taps[i].count = xsize;
            taps[i].step = 1;
        }
    } else {
        /* upsample_bilinear2d, align_corners=False: source index
         * max(scale*(x+0.5) - 0.5, 0) (ATen compute_source_index_and_lambda;
         * equal sizes copy). */
        for (int i = 0; i < out; i++) {
            float *wt = w + (int64_t)i * max_taps;
            float src;
            if (in == out) {
                src = (float)i;
            } else {
                src = (float)((double)scale * (i + 0.5) - 0.5);
                if (src < 0.0f) src = 0.0f;
            }
            int64_t i0 = (int64_t)src;
            float l1 = src - (float)i0;
            l1 = l1 < 0.0f ? 0.0f : (l1 > 1.0f ? 1.0f : l1);
            float l0 = 1.0f - l1;
            /* taps i0 and i0 + (i0 < in-1): at the last pixel both taps
             * read it (step 0), t*l0 + t*l1, rounding as ATen does */
            taps[i].start = (int)i0;
            taps[i].count = 2;
            taps[i].step = i0 < in - 1 ? 1 : 0;
            wt[0] = l0;
            wt[1] = l1;
        }
    }
}

/* ---- colour ops ------------------------------------------------------------- */

void aug_brightness(float *x, int c, int64_t n, float f) {
    /* _blend(img, zeros, f): f*x + (1-f)*0 */
    float r1 = (float)(1.0 - (double)f);
    float zero_part = r1 * 0.0f;
#pragma omp simd
    for (int64_t i = 0; i < (int64_t)c * n; i++) x[i] = clamp01(f * x[i] + zero_part);
}

float aug_gray_mean(const float *x, int c, int64_t n) {
    double s = 0;
    if (c == 3) {
        const float *R = x, *G = x + n, *B = x + 2 * n;
        for (int64_t i = 0; i < n; i++) s += (AUG_GRAY_R * R[i] + AUG_GRAY_G * G[i]) + AUG_GRAY_B * B[i];
    } else {
        for (int64_t i = 0; i < n; i++) s += x[i];
    }
    return (float)(s / (double)n);
}

void aug_contrast(float *x, int c, int64_t n, float f) {
    /* _blend(img, mean, f) with mean = mean(gray(img)) over the image */
    float m = aug_gray_mean(x, c, n);
    float r1 = (float)(1.0 - (double)f);
    float bm = r1 * m;
#pragma omp simd
    for (int64_t i = 0; i < (int64_t)c * n; i++) x[i] = clamp01(f * x[i] + bm);
}

void aug_saturation(float *x, int c, int64_t n, float f) {
    if (c != 3) return; /* torchvision: "Match PIL behaviour" */
    float r1 = (float)(1.0 - (double)f);
    float *R = x, *G = x + n, *B = x + 2 * n;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gray = (AUG_GRAY_R * R[i] + AUG_GRAY_G * G[i]) + AUG_GRAY_B * B[i];
        float bg = r1 * gray;
        R[i] = clamp01(f * R[i] + bg);
        G[i] = clamp01(f * G[i] + bg);
        B[i] = clamp01(f * B[i] + bg);
    }
}

void aug_hue(float *x, int c, int64_t n, float f) {
    if (c != 3) return;
    float *R = x, *G = x + n, *B = x + 2 * n;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float r = R[i], g = G[i], b = B[i];
        /* _rgb2hsv */
        float maxc = r > g ? r : g;
        maxc = maxc > b ? maxc : b;
        float minc = r < g ? r : g;
        minc = minc < b ? minc : b;
        _Bool eqc = maxc == minc;
        float cr = maxc - minc;
        float s = cr / (eqc ? 1.0f : maxc);
        float crd = eqc ? 1.0f : cr;
        float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
        /* exactly one of the three masked terms is selected */
        float hh = maxc == r ? bc - gc : (maxc == g ? (2.0f + rc) - bc : (4.0f + gc) - rc);
        hh = hh / 6.0f + 1.0f;
        /* torch.fmod(hh, 1.0): hh lies in [5/6, 11/6], where fmod is an exact subtraction */
        hh = hh >= 1.0f ? hh - 1.0f : hh;
        /* (h + f) % 1.0: torch.remainder = fmod, plus 1 when negative;
         * h + f lies in [-0.5, 1.5) */
        float a = hh + f;
        a = a >= 1.0f ? a - 1.0f : a;
        a = a < 0.0f ? a + 1.0f : a;
        /* _hsv2rgb */
        float h6 = a * 6.0f;
        /* floor(6h): h6 >= 0 here, where truncation is floor (and, unlike
         * floorf under -ftrapping-math, vectorises) */
        float fi = (float)(int)h6;
        float fr = h6 - fi;
        /* i = floor(6h) % 6, kept in float (0..6, 6 only when h rounded to 1) */
        float sector = fi >= 6.0f ? fi - 6.0f : fi;
        float v = maxc;
        float p = clamp01(v * (1.0f - s));
        float q = clamp01(v * (1.0f - s * fr));
        float t = clamp01(v * (1.0f - s * (1.0f - fr)));
        /* sector 0..5 -> (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q) */
        R[i] = (sector == 0.0f || sector == 5.0f) ? v : (sector == 1.0f ? q : (sector == 4.0f ? t : p));
        G[i] = (sector == 1.0f || sector == 2.0f) ? v : (sector == 0.0f ? t : (sector == 3.0f ? q : p));
        B[i] = (sector == 3.0f || sector == 4.0f) ? v : (sector == 2.0f ? t : (sector == 5.0f ? q : p));
    }
}

void aug_grayscale(float *x, int c, int64_t n) {
    if (c != 3) return; /* a 1-channel image is already gray (clone) */
    float *R = x, *G = x + n, *B = x + 2 * n;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gray = (AUG_GRAY_R * R[i] + AUG_GRAY_G * G[i]) + AUG_GRAY_B * B[i];
        R[i] = gray;
        G[i] = gray;
        B[i] = gray;
    }
}

void aug_normalize(float *x, int c, int64_t n, const float *mean, const float *std) {
    for (int ch = 0; ch < c; ch++) {
        float m = mean[ch], s = std[ch];
        float *X = x + ch * n;
#pragma omp simd
        for (int64_t i = 0; i < n; i++) X[i] = (X[i] - m) / s;
    }
}
