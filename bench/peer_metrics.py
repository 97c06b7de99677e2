#!/usr/bin/python3
"""PyTorch peers of bench/bench_metrics.c: the same computations, shapes and
images on the same machine, and the reference code's one-image-at-a-time
loops.

  unitmem       batched: chunks of 256 // K images x K views (view-major, as
                memloc), torchvision augmentation per view (the tensor path:
                RandomResizedCrop(32, antialias=True), flip, RandomApply(
                ColorJitter(0.8, 0.8, 0.8, 0.2), p 0.8), RandomGrayscale(0.2),
                Normalize(0.5, 0.5)), one eval forward returning every tap, the
                spatial mean of every channel, the mean over views, running
                max / argmax / sum per unit (float64), UnitMem with the mean
                rest -> views/s
  layermem      batched: chunks of 256 // (K+1) candidates x (clean + K views),
                f and g, every tap flattened and l2-normalised, the mean
                distance clean-to-view, SSLMem = d_g - d_f, LayerMem -> candidates/s
  ref-unitmem   UnitMem.py's loop: for each image, K times: augment it, run it
                alone (batch 1), take the taps' spatial means; timed over a few
                hundred images and extrapolated (printed as such)
  ref-layermem  layer_mem.py's loop: for each candidate, K times: augment, run
                the clean and the augmented image through f and through g one at
                a time; timed over a few dozen candidates and extrapolated

The peer gets its best configuration on this machine: --threads torch threads
(2, like memloc), channels_last memory format (faster than NCHW for this
model on oneDNN/mkldnn, bench/peer_resnet9.py measures both), torch.no_grad
and eval mode. Augmentation and forward are timed separately and both count.

Images: the first N images of the ImageFolder tar in memloc's order (classes
sorted, file names sorted), decoded with PIL before timing starts, as
memloc's timing excludes decoding too.
"""
import argparse
import io
import os
import sys
import tarfile
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from resnet9 import TAPS, ResNet9  # noqa: E402


def load_images(tar_path, split, n):
    """(n, 3, 32, 32) float in [0, 1]: the first n images of split/ in ImageFolder order."""
    members = []
    with tarfile.open(tar_path) as tf:
        for m in tf:
            if not m.isfile() or not m.name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            parts = m.name.split("/")
            if split not in parts:
                continue
            k = parts.index(split)
            if len(parts) < k + 3:
                continue
            members.append((parts[k + 1], "/".join(parts[k + 2:]), tf.extractfile(m).read()))
    members.sort(key=lambda t: (t[0].encode(), t[1].encode()))
    out = np.zeros((n, 32, 32, 3), np.uint8)
    for i in range(n):
        out[i] = np.asarray(Image.open(io.BytesIO(members[i][2])).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255.0).contiguous()


def pipelines():
    aug = T.Compose([
        T.RandomResizedCrop(32, antialias=True),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    clean = T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return aug, clean


def encoder(seed):
    torch.manual_seed(seed)
    return ResNet9(3, 1.0).eval().to(memory_format=torch.channels_last)


def forward(m, x):
    taps = {}
    m(x.contiguous(memory_format=torch.channels_last), taps=taps)
    return taps


def unitmem(x, k, batch):
    aug, _ = pipelines()
    m = encoder(1)
    n = x.shape[0]
    p_chunk = max(1, batch // k)
    t_aug = t_fwd = 0.0
    mx = am = sm = None
    with torch.no_grad():
        forward(m, x[:2])  # warm up
        for p0 in range(0, n, p_chunk):
            xs = x[p0:p0 + p_chunk]
            np_ = xs.shape[0]
            t = time.perf_counter()
            views = torch.stack([aug(xs[i]) for _ in range(k) for i in range(np_)])
            t_aug += time.perf_counter() - t
            t = time.perf_counter()
            taps = forward(m, views)
            mu = torch.cat([taps[name].mean(dim=(2, 3)).double().view(k, np_, -1).mean(0) for name in TAPS], 1)
            cmax, carg = mu.max(0)
            if mx is None:
                mx, am, sm = cmax, carg + p0, mu.sum(0)
            else:
                better = cmax > mx
                mx = torch.where(better, cmax, mx)
                am = torch.where(better, carg + p0, am)
                sm = sm + mu.sum(0)
            t_fwd += time.perf_counter() - t
        rest = (sm - mx) / (n - 1)
        score = torch.where(mx > 0, (mx - rest) / (mx + rest), torch.zeros_like(mx))
    return t_aug, t_fwd, float(score.mean())


def layermem(x, k, batch):
    aug, clean = pipelines()
    f, g = encoder(1), encoder(2)
    n = x.shape[0]
    v = k + 1
    p_chunk = max(1, batch // v)
    t_aug = t_fwd = 0.0
    d = {0: [], 1: []}
    with torch.no_grad():
        forward(f, x[:2])
        forward(g, x[:2])
        for p0 in range(0, n, p_chunk):
            xs = x[p0:p0 + p_chunk]
            np_ = xs.shape[0]
            t = time.perf_counter()
            views = torch.stack([clean(xs[i]) for i in range(np_)] +
                                [aug(xs[i]) for _ in range(k) for i in range(np_)])
            t_aug += time.perf_counter() - t
            t = time.perf_counter()
            for h, m in enumerate((f, g)):
                taps = forward(m, views)
                cols = []
                for name in TAPS:
                    z = torch.nn.functional.normalize(taps[name].flatten(1), dim=1).view(v, np_, -1)
                    cols.append((z[1:] - z[0:1]).norm(dim=2).mean(0))
                d[h].append(torch.stack(cols, 1))
            t_fwd += time.perf_counter() - t
        t = time.perf_counter()
        s = (torch.cat(d[1]) - torch.cat(d[0])).double()
        rng = (s.max(0).values - s.min(0).values).clamp_min(1e-300)
        lm = (s / rng).mean(0)
        t_fwd += time.perf_counter() - t
    return t_aug, t_fwd, float(lm[-1])


def ref_unitmem(x, k, n_images):
    """UnitMem.py: one image at a time, K augmented copies each (every tap read)."""
    aug, _ = pipelines()
    m = encoder(1)
    out = []
    with torch.no_grad():
        forward(m, x[:1])
        t = time.perf_counter()
        for i in range(n_images):
            final = []
            for _ in range(k):
                taps = forward(m, aug(x[i]).unsqueeze(0))
                final.append(np.concatenate([taps[name].mean(dim=(2, 3)).numpy()[0] for name in TAPS]))
            out.append(np.mean(np.array(final), axis=0))
        secs = time.perf_counter() - t
    return secs


def ref_layermem(x, k, n_cands):
    """layer_mem.py: per candidate, K times: augment, then f(x), f(a(x)), g(x), g(a(x)) one image each."""
    aug, clean = pipelines()
    f, g = encoder(1), encoder(2)
    with torch.no_grad():
        forward(f, x[:1])
        forward(g, x[:1])
        t = time.perf_counter()
        for i in range(n_cands):
            img = clean(x[i]).unsqueeze(0)
            dist = {0: [], 1: []}
            for _ in range(k):
                a = aug(x[i]).unsqueeze(0)
                for h, m in enumerate((f, g)):
                    r1, r2 = forward(m, img), forward(m, a)
                    dist[h].append([float(torch.linalg.norm(
                        torch.nn.functional.normalize(r1[name].flatten(), dim=0) -
                        torch.nn.functional.normalize(r2[name].flatten(), dim=0))) for name in TAPS])
        secs = time.perf_counter() - t
    return secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tar", default="/work/shared/data/cifar10-jpeg.tar.gz")
    ap.add_argument("--split", default="train")
    ap.add_argument("--only", choices=["unitmem", "layermem", "ref-unitmem", "ref-layermem"], required=True)
    ap.add_argument("--points", type=int, default=5000, help="images (unitmem) or candidates (layermem)")
    ap.add_argument("--k", type=int, default=None, help="views per point (10 unitmem, 5 layermem)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ref-points", type=int, default=200, help="points the reference loop is timed on")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    k = a.k if a.k is not None else (5 if "layermem" in a.only else 10)
    n = a.ref_points if a.only.startswith("ref-") else a.points
    x = load_images(a.tar, a.split, n)
    c0 = time.process_time()
    if a.only == "unitmem":
        ta, tf, mean = unitmem(x, k, a.batch)
        v = n * k / (ta + tf)
        cpu = time.process_time() - c0
        print("peer unitmem: %d images x %d views, %d taps: augment %.2f s + forward/stats %.2f s = %.2f s -> %.1f "
              "views/s (forward/stats alone %.1f views/s); %.2f CPU s -> %.1f views per CPU s; mean UnitMem at res2 "
              "%.4f" % (n, k, len(TAPS), ta, tf, ta + tf, v, n * k / tf, cpu, n * k / cpu, mean))
        print("peer metrics_unitmem=%.1f" % v)
    elif a.only == "layermem":
        ta, tf, lm = layermem(x, k, a.batch)
        v = n / (ta + tf)
        cpu = time.process_time() - c0
        print("peer layermem: %d candidates x %d augmentations (+ clean), f and g: augment %.2f s + forward/distances "
              "%.2f s = %.2f s -> %.2f candidates/s (forward alone %.2f); %.2f CPU s -> %.2f candidates per CPU s; "
              "LayerMem at res2 %.4f" % (n, k, ta, tf, ta + tf, v, n / tf, cpu, n / cpu, lm))
        print("peer metrics_layermem=%.2f" % v)
    elif a.only == "ref-unitmem":
        secs = ref_unitmem(x, k, n)
        v = n * k / secs
        print("reference loop (UnitMem.py, batch 1): %d images x %d views in %.2f s -> %.1f views/s; extrapolated to "
              "%d images: %.0f s" % (n, k, secs, v, a.points, a.points * k / v))
        print("peer metrics_unitmem_ref=%.1f" % v)
    else:
        secs = ref_layermem(x, k, n)
        v = n / secs
        print("reference loop (layer_mem.py, batch 1): %d candidates x %d augmentations, f and g in %.2f s -> %.2f "
              "candidates/s; extrapolated to %d candidates: %.0f s" % (n, k, secs, v, a.points, a.points / v))
        print("peer metrics_layermem_ref=%.2f" % v)


if __name__ == "__main__":
    main()
