"""Peer for bench/bench_loader.c: the same SimCLR augmentation in torchvision
(tensor path), made by a DataLoader with 2 workers.

    /usr/bin/python3 bench/peer_loader.py [--images N] [--epochs E] [--workers W]

Per view: ToTensor, RandomResizedCrop(32, antialias=True), RandomHorizontalFlip,
RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8), RandomGrayscale(0.2),
Normalize(0.5, 0.5) -- memloc's simclr preset. Two views per image, batch 256,
synthetic uint8 32x32x3 images. Prints per-epoch rates and a last line
    peer_loader views_per_s=<median> workers=<W>
"""
import argparse
import statistics
import time

import numpy as np
import torch
import torchvision.transforms as T


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images, transform):
        self.images = images
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        return self.transform(img), self.transform(img)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()

    rs = np.random.RandomState(0)
    images = rs.randint(0, 256, size=(a.images, 32, 32, 3), dtype=np.uint8)
    transform = T.Compose([
        T.ToTensor(),
        T.RandomResizedCrop(32, antialias=True),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    loader = torch.utils.data.DataLoader(TwoViews(images, transform), batch_size=a.batch,
                                         shuffle=True, drop_last=True, num_workers=a.workers,
                                         persistent_workers=a.workers > 0)
    rates = []
    for epoch in range(a.epochs + 1):  # the first epoch warms the workers up
        t = time.perf_counter()
        views = 0
        for v1, v2 in loader:
            views += v1.shape[0] + v2.shape[0]
        dt = time.perf_counter() - t
        if epoch > 0:
            rates.append(views / dt)
            print("epoch %d: %d views in %.2f s, %.0f views/s" % (epoch, views, dt, views / dt),
                  flush=True)
    print("peer_loader views_per_s=%.0f workers=%d" % (statistics.median(rates), a.workers))


if __name__ == "__main__":
    main()
