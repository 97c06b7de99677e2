#!/usr/bin/python3
"""Fixtures for the full-model parity test (tests/parity/test_model_parity.c).

A SimCLR training step of the paper's ResNet9 (tools/resnet9.py) with its
projection head, on a fixed batch, in PyTorch 1.13: the initial state_dict,
the loss, every parameter gradient and the BN running statistics of the
first step, then the loss
trajectory of 10 Adam steps (lr 1e-3, weight decay 1e-6, the reference
SimCLR settings), the BN running statistics and a few parameters after them.
Width 0.25 and a 64-32 head keep the file small (the full-size model is
compared against the reference backend in tests/unit/test_model.c).

    /usr/bin/python3 tools/gen_model_fixtures.py tests/fixtures
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from resnet9 import SimCLR, nt_xent  # noqa: E402

WIDTH, HIDDEN, PROJ, IMAGES, STEPS, TEMP = 0.25, 64, 32, 8, 10, 0.5


def state(model):
    out = {}
    for k, v in model.encoder.state_dict().items():
        out[k] = v.detach().numpy().copy()
    for k, v in model.head.state_dict().items():
        out["head." + k] = v.detach().numpy().copy()
    return out


def main(outdir):
    torch.manual_seed(20241209)
    torch.set_num_threads(1)
    model = SimCLR(in_channels=3, width=WIDTH, hidden=HIDDEN, proj=PROJ)
    # non-trivial BN affine parameters so their gradients and folding are exercised
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    x = torch.rand(2 * IMAGES, 3, 32, 32) * 2 - 1
    t = {"init." + k: v for k, v in state(model).items()}
    t["x"] = x.numpy()

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    losses = []
    for step in range(STEPS):
        opt.zero_grad()
        z = model(x)
        loss = nt_xent(z, TEMP)
        loss.backward()
        if step == 0:
            t["z0"] = z.detach().numpy()
            for k, v in state(model).items():
                if "running" in k:
                    t["first." + k] = v
            for name, p in model.encoder.named_parameters():
                t["grad." + name] = p.grad.numpy().copy()
            for name, p in model.head.named_parameters():
                t["grad.head." + name] = p.grad.numpy().copy()
        losses.append(loss.item())
        opt.step()
    t["losses"] = np.array(losses, dtype=np.float64)
    for k, v in state(model).items():
        if "running" in k or "num_batches" in k or k in ("prep.conv.weight", "head.2.bias",
                                                         "layer3_residual2.batch.weight"):
            t["final." + k] = v
    path = os.path.join(outdir, "model", "resnet9_simclr_step.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    st.save(path, t, metadata={"width": str(WIDTH), "hidden": str(HIDDEN), "proj": str(PROJ),
                               "temperature": str(TEMP), "torch": torch.__version__})
    print(path, os.path.getsize(path), "bytes; losses", ["%.5f" % l for l in losses])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
