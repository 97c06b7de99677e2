#!/usr/bin/python3
"""PyTorch peer of bench_resnet9.c: the same shapes on the same machine.

  train  one SimCLR step: 2 x B views (B=256 -> 512), forward, NT-Xent,
         backward, Adam (lr 1e-3, wd 1e-6) -> views/s
  eval   eval-mode forward of B images returning every tap -> images/s

The peer gets its best configuration: --threads torch threads, and the faster
of contiguous (NCHW) and channels_last memory formats (both are measured and
printed). Debian's torch runs its linear layers on OpenBLAS: bench/run-all
sets OPENBLAS_CORETYPE to the kernel set OpenBLAS should use on this CPU (see
docs/PERFORMANCE.md); convolutions run on oneDNN (mkldnn) either way.

Prints medians and lines `peer resnet9_train=<views/s>` / `peer resnet9_eval=<images/s>`.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch  # noqa: E402
from resnet9 import SimCLR, nt_xent  # noqa: E402


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
    ap.add_argument("--batch", type=int, default=256)
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
            print("peer resnet9_%s=%.1f" % (k, best[k]))


if __name__ == "__main__":
    main()
