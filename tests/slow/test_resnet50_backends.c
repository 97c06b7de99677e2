/* ResNet50 (bottleneck blocks) on the oneDNN backend against the reference
 * backend: a full training step and every tap. Labelled slow: three runs of
 * the reference backend on 32x32 images take a minute in a sanitizer build,
 * so `make test-asan` leaves it out; `make test-release` runs it. */
#include <math.h>
#include <stdlib.h>

#include "memloc/model.h"
#include "test_util.h"

/* Bottleneck blocks (a downsample in layer1, 1x1 convs with stride 2 in the
 * shortcut) and channel counts that are not multiples of 16. The gradients
 * of a 50-layer net in float are sensitive to the rounding of its input:
 * with 16x16 images at batch 8 (a 2x2 layer4, 32 values per BN channel) a
 * relative 1e-6 on x moves layer4.0's weight gradient by 22% of its scale,
 * and the comparison passed or failed with the CPU's vector width; 32x32
 * images at batch 16 (256 values per channel in layer4) keep it below a few
 * percent, which test_compare_backends measures and budgets. */
static void test_dnnl_matches_ref_resnet50(void **state) {
    (void)state;
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = "resnet50";
    cfg.stem = MLOC_STEM_CIFAR;
    cfg.width = 0.125;
    cfg.image_h = cfg.image_w = 32;
    cfg.head_hidden = 64;
    cfg.head_out = 32;
    /* a 50-layer net flips ReLU masks under rounding: 1% of an entry */
    test_compare_backends(&cfg, 16, 1, 1e-2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dnnl_matches_ref_resnet50),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
