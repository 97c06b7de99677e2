#!/usr/bin/python3
"""PyTorch peer of bench_resnet18.c: the same shapes on the same machine.

The model is torchvision's resnet18 with the CIFAR stem memloc builds
(conv1 3x3 stride 1 padding 1, no maxpool; fc removed) and the SimCLR head
Linear(512, 512) -> ReLU -> Linear(512, 128), on 3x32x32.

  train  one SimCLR step: 2 x B views (B=128 -> 256), forward, NT-Xent,
         backward, Adam (lr 1e-3, wd 1e-6) -> views/s
  eval   eval-mode forward of B images returning every tap (the stem, each
         block's relu1 and output, as forward hooks collect them) -> images/s

The peer gets its best configuration: --threads torch threads, and the faster
of contiguous (NCHW) and channels_last memory formats (both are measured and
printed); see bench/peer_resnet9.py and bench/lib.sh for the OpenBLAS setting.

Prints medians and lines `peer resnet18_train=<views/s>` / `peer resnet18_eval=<images/s>`.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from resnet9 import nt_xent  # noqa: E402


def resnet18_cifar():
    m = torchvision.models.resnet18()
    m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m


class SimCLR(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = resnet18_cifar()
        self.head = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))

    def forward(self, x):
        return self.head(self.encoder(x))


def collect_taps(encoder, taps):
    """Forward hooks on the stem's relu and each block's (shared) relu: the
    stem tap, then per block relu1 and the block output, as memloc's taps."""
    def hook(name):
        def fn(mod, inp, out):
            taps.append((name, out))
        return fn
    for name, mod in encoder.named_modules():
        if name == "relu" or name.endswith(".relu"):
            mod.register_forward_hook(hook(name))


def measure(fn, reps):
    for _ in range(2):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--only", choices=["train", "eval", "all"], default="all")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    best = {}
    for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        m = SimCLR().to(memory_format=fmt)
        x = (torch.rand(2 * a.batch, 3, 32, 32) * 2 - 1).contiguous(memory_format=fmt)
        if a.only in ("train", "all"):
            m.train()
            opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-6)

            def step():
                opt.zero_grad()
                loss = nt_xent(m(x), 0.5)
                loss.backward()
                opt.step()
            t = measure(step, a.reps)
            v = 2 * a.batch / t
            print("train step (%s): %d views, median %.4f s -> %.1f views/s" % (fmt_name, 2 * a.batch, t, v))
            best["train"] = max(best.get("train", 0), v)
        if a.only in ("eval", "all"):
            m.eval()
            xe = x[: a.batch].contiguous(memory_format=fmt)
            taps = []
            collect_taps(m.encoder, taps)

            def fwd():
                with torch.no_grad():
                    taps.clear()
                    m.encoder(xe)
                    return taps
            t = measure(fwd, a.reps)
            assert len(taps) == 17, len(taps)
            v = a.batch / t
            print("eval forward (%s, all taps): %d images, median %.4f s -> %.1f images/s" % (fmt_name, a.batch, t, v))
            best["eval"] = max(best.get("eval", 0), v)
    for k in ("train", "eval"):
        if k in best:
            print("peer resnet18_%s=%.1f" % (k, best[k]))


if __name__ == "__main__":
    main()
