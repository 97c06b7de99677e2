#!/usr/bin/python3
"""PyTorch peer of one SimCLR training epoch over CIFAR-10 images, data
pipeline included: torchvision ImageFolder (PIL decoding), the reference
SimCLR augmentations (RandomResizedCrop(32), flip, ColorJitter(0.8,0.8,0.8,0.2)
p 0.8, grayscale 0.2, ToTensor, Normalize(0.5, 0.5)), two views per image,
a DataLoader with 2 workers, ResNet9 + projection head, NT-Xent, Adam.

    peer_epoch.py IMAGEFOLDER_DIR N_IMAGES [--threads 2] [--workers 2]
Prints `peer epoch_seconds=<s> views_per_s=<v>`.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch  # noqa: E402
import torchvision  # noqa: E402
import torchvision.transforms as T  # noqa: E402
from resnet9 import SimCLR, nt_xent  # noqa: E402


class TwoViews:
    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        return self.t(x), self.t(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("n", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    aug = T.Compose([T.RandomResizedCrop(32), T.RandomHorizontalFlip(),
                     T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), T.RandomGrayscale(0.2),
                     T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = torchvision.datasets.ImageFolder(a.root, transform=TwoViews(aug))
    ds = torch.utils.data.Subset(ds, list(range(a.n)))
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, drop_last=True,
                                     num_workers=a.workers, persistent_workers=False)
    m = SimCLR().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-6)
    m.train()
    steps = 0
    t0 = time.perf_counter()
    for (x1, x2), _ in dl:
        x = torch.cat([x1, x2]).contiguous(memory_format=torch.channels_last)
        opt.zero_grad()
        loss = nt_xent(m(x), 0.5)
        loss.backward()
        opt.step()
        steps += 1
    dt = time.perf_counter() - t0
    views = steps * 2 * a.batch
    print("peer: %d steps, %d views in %.1f s, loss %.4f" % (steps, views, dt, loss.item()))
    print("peer epoch_seconds=%.2f views_per_s=%.1f" % (dt, views / dt))


if __name__ == "__main__":
    main()
