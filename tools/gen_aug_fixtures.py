"""Fixtures for tests/parity/test_aug_parity.c: torchvision 0.14 tensor-path
augmentation outputs for explicit parameters (FORMATS.md section 3).

Run with Debian's python (torch 1.13, torchvision 0.14.1):

    /usr/bin/python3 tools/gen_aug_fixtures.py tests/fixtures/aug

Writes
  apply.safetensors     images, per-case parameters and torchvision outputs
  fallback.safetensors  RandomResizedCrop.get_params centre-crop boxes

apply.safetensors holds
  img.<k>          (H, W, C) float16, the uint8 pixel values 0..255 (exact)
  case.<i>.params  float64 vector, PARAM_LAYOUT below
  case.<i>.out     (C, out_h, out_w) float32, what torchvision produced
and metadata {"cases": N, "images": K, "layout": PARAM_LAYOUT, "case.<i>": text}.

Each case runs, as memloc's apply does:
  x = to_tensor(img)                      uint8 HWC -> float CHW / 255
  [x = normalize(x, mean, std)]           normalize_first (the reference code)
  x = resized_crop(x, top, left, h, w, [out_h, out_w], BILINEAR, antialias)
  [x = hflip(x)]
  [for op in order: adjust_<op>(x, factor) if enabled]    when jitter
  [x = rgb_to_grayscale(x, C)]
  [x = normalize(x, mean, std)]           unless normalize_first
Factors are float32 values (torchvision draws them in float32).
"""
import os
import sys

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode, RandomResizedCrop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

PARAM_LAYOUT = ("img,top,left,height,width,out_h,out_w,flip,jitter,"
                "order0,order1,order2,order3,on_b,on_c,on_s,on_h,f_b,f_c,f_s,f_h,"
                "gray,antialias,normalize_first,mean0,mean1,mean2,std0,std1,std2")
HALF = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
CIFAR10 = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])


def f32(x):
    return float(np.float32(x))


def make_images():
    """Deterministic test images: smooth ramps, sinusoids, hard edges, a grey
    patch (hue's C = 0 branch), saturated primaries, and noise."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    imgs = []
    # 0: smooth colour ramps and a sinusoid
    r = 255 * xx / 31
    g = 127.5 + 120 * np.sin(yy / 4.0) * np.cos(xx / 5.0)
    b = 255 * (1 - yy / 31)
    imgs.append(np.stack([r, g, b], -1))
    # 1: hard edges, checkerboard, a grey square and saturated primaries
    a = np.zeros((32, 32, 3))
    a[(yy // 4 + xx // 4) % 2 == 0] = [230, 40, 20]
    a[(yy // 4 + xx // 4) % 2 == 1] = [15, 200, 90]
    a[8:16, 8:16] = [128, 128, 128]
    a[20:26, 2:8] = [255, 0, 0]
    a[20:26, 10:16] = [0, 255, 0]
    a[20:26, 18:24] = [0, 0, 255]
    a[26:32, 26:32] = [255, 255, 255]
    a[0:3, 24:32] = [0, 0, 0]
    a[((yy - 22) ** 2 + (xx - 24) ** 2) < 16] = [250, 220, 10]
    imgs.append(a)
    # 2: noise
    rs = np.random.RandomState(1234)
    imgs.append(rs.randint(0, 256, size=(32, 32, 3)).astype(np.float64))
    # 3, 4: 28x28 one-channel (Fashion-MNIST-like): a blob with an edge, noise
    y28, x28 = np.mgrid[0:28, 0:28].astype(np.float64)
    blob = 255 * np.exp(-((y28 - 13) ** 2 + (x28 - 15) ** 2) / 60.0)
    blob[:, 20:] = 40
    imgs.append(blob[..., None])
    imgs.append(rs.randint(0, 256, size=(28, 28, 1)).astype(np.float64))
    # 5: a non-square 24x40 RGB image (wide), for centre-crop fallbacks
    y5, x5 = np.mgrid[0:24, 0:40].astype(np.float64)
    w5 = np.stack([255 * x5 / 39, 128 + 100 * np.sin(x5 / 3 + y5 / 5), 255 * y5 / 23], -1)
    imgs.append(w5)
    return [np.clip(np.round(i), 0, 255).astype(np.uint8) for i in imgs]


def run_case(img, c):
    x = TF.to_tensor(img)
    mean, std = c["norm"]
    C = img.shape[2]
    mean, std = mean[:C], std[:C]
    if c["normalize_first"]:
        x = TF.normalize(x, mean, std)
    top, left, h, w = c["crop"]
    oh, ow = c["size"]
    x = TF.resized_crop(x, top, left, h, w, [oh, ow], InterpolationMode.BILINEAR,
                        antialias=bool(c["antialias"]))
    if c["flip"]:
        x = TF.hflip(x)
    if c["jitter"]:
        fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        for op in c["order"]:
            if c["on"][op]:
                x = fns[op](x, c["factor"][op])
    if c["gray"]:
        x = TF.rgb_to_grayscale(x, num_output_channels=C)
    if not c["normalize_first"]:
        x = TF.normalize(x, mean, std)
    return x.contiguous().numpy().astype(np.float32)


def replay(img, pipeline, record):
    """Apply one record of memloc's --dump-aug-params output (the JSON line
    of mloc_aug_params_format_json) with torchvision, under the pipeline line
    of mloc_aug_pipeline_format_json. img is uint8 (H, W, C); returns the
    (C, H', W') float32 view memloc made for that record."""
    ops = ["brightness", "contrast", "saturation", "hue"]
    c = dict(crop=record["crop"], size=record["size"], flip=record["flip"],
             jitter=record["jitter"], order=record["order"],
             on=[0 if record[k] is None else 1 for k in ops],
             factor=[record[k] if record[k] is not None else (1.0 if i < 3 else 0.0)
                     for i, k in enumerate(ops)],
             gray=record["gray"], antialias=pipeline["antialias"],
             normalize_first=pipeline["normalize_first"],
             norm=(pipeline["mean"], pipeline["std"]))
    return run_case(img, c)


def case(text, img, crop, size, flip=0, jitter=0, order=(0, 1, 2, 3), on=(0, 0, 0, 0),
         factor=(1.0, 1.0, 1.0, 0.0), gray=0, antialias=1, normalize_first=0, norm=HALF):
    return dict(text=text, img=img, crop=crop, size=size, flip=flip, jitter=jitter,
                order=list(order), on=list(on), factor=[f32(v) for v in factor], gray=gray,
                antialias=antialias, normalize_first=normalize_first, norm=norm)


def jit(text, img, op_factors, order=(0, 1, 2, 3), **kw):
    """Jitter case: op_factors {op: factor}; ops not listed are disabled."""
    on = [1 if k in op_factors else 0 for k in range(4)]
    factor = [op_factors.get(k, 1.0 if k < 3 else 0.0) for k in range(4)]
    # a 16x16 window, unresized, keeps the fixture small (FORMATS.md sizes
    # matter only for geometry, which the cases above cover)
    kw.setdefault("crop", (8, 8, 16, 16))
    kw.setdefault("size", (16, 16))
    return case(text, img, jitter=1, order=order, on=on, factor=factor, **kw)


def make_cases():
    rs = np.random.RandomState(7)
    cs = []
    # geometry
    cs.append(case("identity (none preset)", 0, (0, 0, 32, 32), (32, 32)))
    cs.append(case("crop 20x24 upsampled", 0, (4, 6, 20, 24), (32, 32)))
    cs.append(case("whole image, flip", 1, (0, 0, 32, 32), (32, 32), flip=1))
    cs.append(case("thin crop at the left border, flip", 1, (10, 0, 22, 9), (24, 24), flip=1))
    cs.append(case("small crop 5x7", 2, (13, 20, 5, 7), (24, 24)))
    cs.append(case("crop 12x12, plain bilinear", 1, (5, 3, 12, 12), (24, 24), antialias=0))
    cs.append(case("crop 9x30 at the bottom right, plain bilinear", 2, (23, 2, 9, 30), (24, 24),
                   antialias=0, flip=1))
    cs.append(case("downsample 32->16 antialiased", 2, (0, 0, 32, 32), (16, 16)))
    cs.append(case("downsample 30x27 -> 13x11 antialiased", 1, (2, 1, 30, 27), (13, 11)))
    cs.append(case("downsample 40 -> 7 wide, up 24 -> 30 antialiased", 5, (0, 0, 24, 40), (30, 7)))
    cs.append(case("downsample 32->16 plain bilinear", 2, (0, 0, 32, 32), (16, 16), antialias=0))
    # each jitter op alone
    for f in (0.3, 1.7):
        cs.append(jit("brightness %g" % f, 0, {0: f}))
    for f in (0.25, 1.6):
        cs.append(jit("contrast %g" % f, 1, {1: f}))
    for f in (0.1, 1.8):
        cs.append(jit("saturation %g" % f, 2, {2: f}))
    for img, f in ((0, 0.2), (1, -0.2), (2, 0.5), (1, -0.5), (0, 0.013), (2, -0.137)):
        cs.append(jit("hue %+g" % f, img, {3: f}))
    # all four ops in several orders, with crops and flips
    for k, order in enumerate([(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2), (2, 0, 3, 1), (3, 1, 2, 0)]):
        f = {0: rs.uniform(0.2, 1.8), 1: rs.uniform(0.2, 1.8), 2: rs.uniform(0.2, 1.8),
             3: rs.uniform(-0.2, 0.2)}
        img = k % 3
        cs.append(jit("order %s, crop, flip %d" % (order, k % 2), img, f, order=order,
                      crop=(k, 2 * k, 32 - 2 * k, 30 - 2 * k), size=(20, 20), flip=k % 2))
    cs.append(jit("saturation disabled inside the order", 0, {0: 1.3, 1: 0.6, 3: 0.1},
                  order=(2, 3, 0, 1)))
    # grayscale
    cs.append(case("grayscale", 1, (0, 0, 32, 32), (32, 32), gray=1))
    cs.append(jit("jitter then grayscale", 2, {0: 0.9, 1: 1.2, 2: 1.5, 3: -0.05},
                  order=(1, 0, 3, 2), gray=1))
    # one-channel images: saturation and hue are no-ops, grayscale keeps 1 channel
    cs.append(case("1ch crop 18x14", 3, (3, 7, 18, 14), (28, 28), flip=1))
    cs.append(jit("1ch all ops + gray", 3, {0: 1.4, 1: 0.5, 2: 1.7, 3: 0.3}, order=(2, 1, 3, 0),
                  crop=(2, 2, 24, 20), size=(28, 28), gray=1))
    cs.append(jit("1ch contrast 1.9, downsample 28->14", 4, {1: 1.9}, crop=(0, 0, 28, 28),
                  size=(14, 14)))
    # other normalisation constants
    cs.append(jit("cifar10 mean/std", 0, {0: 1.1, 2: 0.7}, norm=CIFAR10, crop=(1, 1, 30, 30),
                  size=(24, 24)))
    # the reference code's normalise-first order (FORMATS.md 3.7)
    cs.append(case("normalize first, crop + flip only (no clamp)", 0, (4, 6, 20, 24), (32, 32),
                   flip=1, normalize_first=1))
    cs.append(jit("normalize first, brightness 1.0 zeroes negatives", 0, {0: 1.0},
                  normalize_first=1, crop=(0, 0, 32, 32), size=(32, 32)))
    cs.append(jit("normalize first, hue alone clamps p q t", 1, {3: 0.15}, normalize_first=1))
    cs.append(jit("normalize first, all ops", 2, {0: 1.2, 1: 0.8, 2: 1.3, 3: -0.1},
                  order=(3, 0, 2, 1), normalize_first=1, gray=1, crop=(3, 3, 25, 25),
                  size=(24, 24)))
    cs.append(jit("normalize first, 1ch contrast", 3, {1: 1.3}, normalize_first=1,
                  crop=(0, 0, 28, 28), size=(28, 28)))
    return cs


def fallback_boxes():
    """RandomResizedCrop.get_params for scale/ratio ranges where every attempt
    fails, so the centre-crop fallback decides the box deterministically."""
    rows = []
    for (H, W, scale, ratio) in [
        (32, 32, (0.9, 1.0), (3.0, 4.0)),      # in_ratio 1 < min(ratio): w = W, h = round(W/3)
        (32, 32, (0.9, 1.0), (0.2, 0.25)),     # in_ratio > max(ratio): h = H, w = round(H/4)
        (24, 40, (2.0, 3.0), (0.75, 4 / 3)),   # area never fits, wide image > max ratio
        (40, 24, (2.0, 3.0), (0.75, 4 / 3)),   # tall image < min ratio
        (30, 31, (2.0, 3.0), (0.75, 4 / 3)),   # in range: whole image
        (33, 32, (0.95, 1.0), (2.5, 2.5)),     # odd sizes: (H - h) // 2 rounding
    ]:
        img = torch.zeros(3, H, W)
        i, j, h, w = RandomResizedCrop.get_params(img, list(scale), list(ratio))
        rows.append([H, W, f32(scale[0]), f32(scale[1]), f32(ratio[0]), f32(ratio[1]), i, j, h, w])
    return np.array(rows, dtype=np.float64)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/aug"
    os.makedirs(out_dir, exist_ok=True)
    assert torchvision.__version__.startswith("0.14"), torchvision.__version__
    torch.manual_seed(0)
    imgs = make_images()
    cases = make_cases()
    tensors = {}
    meta = {"cases": len(cases), "images": len(imgs), "layout": PARAM_LAYOUT,
            "torchvision": torchvision.__version__, "torch": torch.__version__}
    for k, img in enumerate(imgs):
        tensors["img.%d" % k] = img.astype(np.float16)  # 0..255 is exact in F16
    for i, c in enumerate(cases):
        img = imgs[c["img"]]
        mean, std = c["norm"]
        params = [c["img"], *c["crop"], *c["size"], c["flip"], c["jitter"], *c["order"], *c["on"],
                  *c["factor"], c["gray"], c["antialias"], c["normalize_first"], *mean, *std]
        assert len(params) == len(PARAM_LAYOUT.split(","))
        tensors["case.%d.params" % i] = np.array(params, dtype=np.float64)
        tensors["case.%d.out" % i] = run_case(img, c)
        meta["case.%d" % i] = c["text"]
    st.save(os.path.join(out_dir, "apply.safetensors"), tensors, metadata=meta)
    st.save(os.path.join(out_dir, "fallback.safetensors"), {"boxes": fallback_boxes()},
            metadata={"layout": "H,W,scale0,scale1,ratio0,ratio1,top,left,height,width"})
    print("wrote %d cases, %d images to %s" % (len(cases), len(imgs), out_dir))


if __name__ == "__main__":
    main()
