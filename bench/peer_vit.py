#!/usr/bin/python3
"""PyTorch peer of bench_vit.c: the same shapes on the same machine.

The model is the timm-compatible ViT-Tiny / MAE of tools/gen_vit_fixtures.py
(timm's VisionTransformer blocks and MAE's MaskedAutoencoderViT, learned
position embeddings): width 192, depth 12, 3 heads, patch 4 on 3x32x32 (64
patches), decoder width 128, depth 2, 4 heads.

  mae   one MAE step on B images (B=128): random masking as MAE's
        random_masking (argsort of torch.rand noise, 16 of 64 patches kept),
        encoder, decoder, normalised-pixel loss, backward, AdamW -> images/s
  eval  eval-mode forward of the encoder on B images returning every tap
        (per block the residual after attention, the MLP's GELU output and
        the block output, as forward hooks collect them; the CLS feature)
        -> images/s

torch 1.13 has no fused attention (F.scaled_dot_product_attention came in
2.0): the peer runs timm's explicit q k^T / softmax / v path, as timm does
without fused_attn. --threads torch threads; see bench/lib.sh for the
OpenBLAS setting. Prints medians and `peer vit_tiny_mae=<images/s>` /
`peer vit_tiny_eval=<images/s>`.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import torch  # noqa: E402
from gen_vit_fixtures import MaskedAutoencoderViT  # noqa: E402

L, KEEP = 64, 16


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
    ap.add_argument("--only", choices=["mae", "eval", "all"], default="all")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(32, 4, 192, 12, 3, 128, 2, 4)
    x = torch.rand(a.batch, 3, 32, 32) * 2 - 1
    if a.only in ("mae", "all"):
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1.5e-4, weight_decay=0.05)

        def step():
            opt.zero_grad()
            ids_shuffle = torch.argsort(torch.rand(a.batch, L), dim=1)
            loss, _ = m(x, ids_shuffle, KEEP)
            loss.backward()
            opt.step()
        t = measure(step, a.reps)
        print("mae step: %d images, median %.4f s -> %.1f images/s" % (a.batch, t, a.batch / t))
        print("peer vit_tiny_mae=%.1f" % (a.batch / t))
    if a.only in ("eval", "all"):
        m.eval()
        taps = []

        def hook(mod, inp, out):
            taps.append(out)
        for blk in m.blocks:
            blk.mlp.act.register_forward_hook(hook)

        def fwd():
            with torch.no_grad():
                taps.clear()
                h = m.patch_embed(x)
                h = torch.cat((m.cls_token.expand(h.shape[0], -1, -1), h), dim=1) + m.pos_embed
                for blk in m.blocks:
                    h = h + blk.attn(blk.norm1(h))
                    taps.append(h)
                    h = h + blk.mlp(blk.norm2(h))
                    taps.append(h)
                taps.append(m.norm(h)[:, 0])
                return taps
        t = measure(fwd, a.reps)
        assert len(taps) == 37, len(taps)
        print("eval forward (all taps): %d images, median %.4f s -> %.1f images/s" % (a.batch, t, a.batch / t))
        print("peer vit_tiny_eval=%.1f" % (a.batch / t))


if __name__ == "__main__":
    main()
