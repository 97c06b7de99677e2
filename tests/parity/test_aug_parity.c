/* mloc_aug_apply (and the reference aug_apply_ref) against torchvision 0.14.1
 * (tools/gen_aug_fixtures.py -> tests/fixtures/aug/apply.safetensors):
 * explicit crop boxes (upsampling, antialiased and plain downsampling,
 * borders), flips, each ColorJitter op alone, all four in several orders,
 * hue shifts of both signs up to +-0.5, grayscale, 1-channel images, other
 * Normalize constants and the normalise-first order of the reference code.
 *
 * Tolerance: |got - want| <= 1e-5 + 1e-5 |want| per element. Both sides do
 * the same float32 operations in the same order: single colour ops, flips,
 * grayscale and Normalize agree to the last bit. Resizes differ by 1-2 ulp
 * (<= 2.4e-7 after Normalize) because ATen's AVX2 build of the antialiased
 * kernel contracts acc += t*w into an FMA (with fmaf in the accumulation most
 * resize cases become bit-exact); memloc keeps plain multiply-add, which does
 * not depend on which CPU path generated the fixture. Later ops carry such
 * input differences along: blends scale them by the factor (<= 1.8 each),
 * HSV->RGB by a few units (it is continuous across hue sectors), Normalize
 * by 1/std (2, or ~4 for CIFAR constants). Measured worst case 3.3e-6 (all
 * four jitter ops after a resize), hence 1e-5 rather than 1e-6; the contrast
 * mean (PyTorch sums in float, memloc in double) adds <= 1 ulp of the mean.
 *
 * Also: the centre-crop fallback of RandomResizedCrop.get_params gives the
 * same boxes as torchvision for ratio ranges where every attempt fails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment/internal.h"
#include "memloc/augment.h"
#include "memloc/io.h"
#include "test_util.h"

#define ATOL 1e-5
#define RTOL 1e-5

enum {
    P_IMG, P_TOP, P_LEFT, P_H, P_W, P_OH, P_OW, P_FLIP, P_JITTER, P_ORDER,
    P_ON = P_ORDER + 4, P_F = P_ON + 4, P_GRAY = P_F + 4, P_AA, P_NFIRST, P_MEAN,
    P_STD = P_MEAN + 3, P_COUNT = P_STD + 3
};

typedef struct {
    int h, w, c;
    uint8_t *pix;
} image;

static void load_image(mloc_ctx *ctx, mloc_st_file *f, int k, image *im) {
    char name[64];
    snprintf(name, sizeof name, "img.%d", k);
    const mloc_st_tensor *t = mloc_st_find(f, name);
    assert_non_null(t);
    assert_int_equal(t->ndim, 3);
    im->h = (int)t->shape[0];
    im->w = (int)t->shape[1];
    im->c = (int)t->shape[2];
    int64_t n = t->numel;
    float *tmp = malloc(sizeof(float) * n);
    im->pix = malloc(n);
    assert_int_equal(mloc_st_read_f32(ctx, tmp, f, name, 3, t->shape), MLOC_OK);
    for (int64_t i = 0; i < n; i++) {
        assert_true(tmp[i] >= 0 && tmp[i] <= 255 && tmp[i] == floorf(tmp[i]));
        im->pix[i] = (uint8_t)tmp[i];
    }
    free(tmp);
}

static void params_from(const double *v, mloc_aug_params *p, mloc_aug_pipeline *pipe) {
    memset(p, 0, sizeof *p);
    memset(pipe, 0, sizeof *pipe);
    p->top = (int)v[P_TOP];
    p->left = (int)v[P_LEFT];
    p->height = (int)v[P_H];
    p->width = (int)v[P_W];
    p->out_h = (int)v[P_OH];
    p->out_w = (int)v[P_OW];
    p->flip = (int)v[P_FLIP];
    p->jitter = (int)v[P_JITTER];
    for (int k = 0; k < 4; k++) {
        p->order[k] = (int)v[P_ORDER + k];
        p->enabled[k] = (int)v[P_ON + k];
        p->factor[k] = (float)v[P_F + k]; /* float32 values, stored exactly */
    }
    p->gray = (int)v[P_GRAY];
    pipe->antialias = (int)v[P_AA];
    pipe->normalize_first = (int)v[P_NFIRST];
    for (int k = 0; k < 3; k++) {
        pipe->mean[k] = (float)v[P_MEAN + k];
        pipe->std[k] = (float)v[P_STD + k];
    }
}

static void test_apply_vs_torchvision(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = NULL;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("aug/apply.safetensors")), MLOC_OK);
    const char *ncases = mloc_st_metadata(f, "cases"), *nimgs = mloc_st_metadata(f, "images");
    assert_non_null(ncases);
    assert_non_null(nimgs);
    int n_cases = atoi(ncases), n_imgs = atoi(nimgs);
    assert_true(n_cases >= 30 && n_imgs >= 5);
    image imgs[16];
    assert_true(n_imgs <= 16);
    for (int k = 0; k < n_imgs; k++) load_image(ctx, f, k, &imgs[k]);

    int failures = 0;
    double worst = 0;
    for (int i = 0; i < n_cases; i++) {
        char name[64], what[256];
        double v[P_COUNT];
        int64_t pshape[1] = {P_COUNT};
        snprintf(name, sizeof name, "case.%d.params", i);
        assert_int_equal(mloc_st_read_f64(ctx, v, f, name, 1, pshape), MLOC_OK);
        mloc_aug_params p;
        mloc_aug_pipeline pipe;
        params_from(v, &p, &pipe);
        const image *im = &imgs[(int)v[P_IMG]];
        int64_t oshape[3] = {im->c, p.out_h, p.out_w};
        int64_t n = oshape[0] * oshape[1] * oshape[2];
        float *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
        float *ref = malloc(sizeof(float) * n);
        snprintf(name, sizeof name, "case.%d.out", i);
        assert_int_equal(mloc_st_read_f32(ctx, want, f, name, 3, oshape), MLOC_OK);
        snprintf(name, sizeof name, "case.%d", i);
        const char *text = mloc_st_metadata(f, name);

        assert_int_equal(mloc_aug_apply(got, im->pix, im->h, im->w, im->c, &p, &pipe), MLOC_OK);
        assert_int_equal(aug_apply_ref(ref, im->pix, im->h, im->w, im->c, &p, &pipe), MLOC_OK);
        snprintf(what, sizeof what, "case %d (%s) apply", i, text ? text : "?");
        failures += !test_close_f32(what, got, want, n, ATOL, RTOL);
        snprintf(what, sizeof what, "case %d reference", i);
        failures += !test_close_f32(what, ref, want, n, ATOL, RTOL);
        for (int64_t k = 0; k < n; k++) worst = fmax(worst, fabs((double)got[k] - want[k]));
        free(want);
        free(got);
        free(ref);
    }
    printf("aug parity: %d cases, worst abs err %.3g (tolerance %.0e + %.0e|want|)\n", n_cases,
           worst, ATOL, RTOL);
    for (int k = 0; k < n_imgs; k++) free(imgs[k].pix);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
    assert_int_equal(failures, 0);
}

static void test_fallback_boxes(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_st_file *f = NULL;
    assert_int_equal(mloc_st_open(ctx, &f, test_fixture("aug/fallback.safetensors")), MLOC_OK);
    const mloc_st_tensor *t = mloc_st_find(f, "boxes");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[1], 10);
    int rows = (int)t->shape[0];
    double *b = malloc(sizeof(double) * rows * 10);
    assert_int_equal(mloc_st_read_f64(ctx, b, f, "boxes", 2, t->shape), MLOC_OK);
    for (int i = 0; i < rows; i++) {
        const double *r = b + i * 10;
        mloc_aug_pipeline pipe;
        memset(&pipe, 0, sizeof pipe);
        pipe.crop = 1;
        pipe.scale[0] = (float)r[2];
        pipe.scale[1] = (float)r[3];
        pipe.ratio[0] = (float)r[4];
        pipe.ratio[1] = (float)r[5];
        pipe.out_h = pipe.out_w = 8;
        for (int seed = 0; seed < 5; seed++) {
            mloc_rng rng;
            mloc_aug_stream(&rng, 99, "aug", 0, i, seed);
            mloc_aug_params p;
            mloc_aug_draw(&p, &pipe, (int)r[0], (int)r[1], &rng);
            printf("fallback %dx%d ratio (%g, %g): got (%d,%d,%d,%d) want (%g,%g,%g,%g)\n",
                   (int)r[0], (int)r[1], r[4], r[5], p.top, p.left, p.height, p.width, r[6],
                   r[7], r[8], r[9]);
            assert_int_equal(p.fallback, 1);
            assert_int_equal(p.attempts, 10);
            assert_int_equal(p.top, (int)r[6]);
            assert_int_equal(p.left, (int)r[7]);
            assert_int_equal(p.height, (int)r[8]);
            assert_int_equal(p.width, (int)r[9]);
        }
    }
    free(b);
    mloc_st_close(f);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_vs_torchvision),
        cmocka_unit_test(test_fallback_boxes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
