#!/usr/bin/python3
"""PyTorch peer of bench_encoder.c: the same shapes on the same machine.

  train  one SimCLR step: 2 x B views, forward, NT-Xent, backward, Adam
         (lr 1e-3, wd 1e-6) -> views/s
  eval   eval-mode forward of B images returning every tap -> images/s

--arch resnet9 is the paper's ResNet9 (tools/resnet9.py, taps returned by
its forward); resnet18 is torchvision's with the CIFAR stem memloc builds
(conv1 3x3 stride 1 padding 1, no maxpool, fc removed), its taps (the stem,
each block's relu1 and output) collected by forward hooks; both with the
SimCLR head Linear(F, 512) -> ReLU -> Linear(512, 128).

The peer gets its best configuration: --threads torch threads, and the faster
of contiguous (NCHW) and channels_last memory formats (both are measured and
printed). Debian's torch runs its linear layers on OpenBLAS: bench/run-all
sets OPENBLAS_CORETYPE to the kernel set OpenBLAS should use on this CPU (see
docs/PERFORMANCE.md); convolutions run on oneDNN (mkldnn) either way.

Prints medians and lines `peer <arch>_train=<views/s>` / `peer <arch>_eval=<images/s>`.
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
from resnet9 import SimCLR as SimCLR9, nt_xent  # noqa: E402


class ResNet18Cifar(nn.Module):
    """torchvision resnet18, CIFAR stem; forward(x, taps) fills taps like ResNet9."""
    def __init__(self):
        super().__init__()
        m = torchvision.models.resnet18()
        m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        m.maxpool = nn.Identity()
        m.fc = nn.Identity()
        self.m = m

    def forward(self, x, taps=None):
        m = self.m
        x = m.relu(m.bn1(m.conv1(x)))
        if taps is not None:
            taps["stem"] = x
        for li, layer in enumerate([m.layer1, m.layer2, m.layer3, m.layer4]):
            for bi, blk in enumerate(layer):
                idt = x if blk.downsample is None else blk.downsample(x)
                h = blk.relu(blk.bn1(blk.conv1(x)))
                x = blk.relu(blk.bn2(blk.conv2(h)) + idt)
                if taps is not None:
                    taps["layer%d.%d.relu1" % (li + 1, bi)] = h
                    taps["layer%d.%d" % (li + 1, bi)] = x
        return torch.flatten(m.avgpool(x), 1)


class SimCLR18(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = ResNet18Cifar()
        self.head = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))

    def forward(self, x):
        return self.head(self.encoder(x))


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
    ap.add_argument("--arch", choices=["resnet9", "resnet18"], default="resnet9")
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--only", choices=["train", "eval", "all"], default="all")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.batch == 0:
        a.batch = 256 if a.arch == "resnet9" else 128
    SimCLR = SimCLR9 if a.arch == "resnet9" else SimCLR18
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

            def fwd():
                with torch.no_grad():
                    taps = {}
                    m.encoder(xe, taps=taps)
                    return taps
            t = measure(fwd, a.reps)
            v = a.batch / t
            print("eval forward (%s, all taps): %d images, median %.4f s -> %.1f images/s" % (fmt_name, a.batch, t, v))
            best["eval"] = max(best.get("eval", 0), v)
    for k in ("train", "eval"):
        if k in best:
            print("peer %s_%s=%.1f" % (a.arch, k, best[k]))


if __name__ == "__main__":
    main()
