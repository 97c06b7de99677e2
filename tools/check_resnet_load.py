#!/usr/bin/python3
"""Check that a memloc-written ResNet weights file loads into torchvision.

    /usr/bin/python3 tools/check_resnet_load.py FILE.safetensors

Reads FILE with tools/st.py, takes the architecture and stem from its memloc
metadata (memloc_arch, memloc_stem), builds torchvision.models.<arch>() (for
the CIFAR stem with conv1 replaced by a 3x3 stride-1 padding-1 conv and the
maxpool by an Identity, as memloc builds it) and calls
load_state_dict(strict=False). An encoder file must leave exactly fc.weight
and fc.bias missing and nothing unexpected (a file with a SimCLR head has its
head.* tensors unexpected); every loaded tensor must keep its dtype, shape and
values. Then runs a forward pass of one image. Prints OK.
"""
import os
import sys

import torch
import torchvision
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    tensors, meta, _ = st.load_full(path)
    arch, stem = meta.get("memloc_arch"), meta.get("memloc_stem")
    if arch not in ("resnet18", "resnet34", "resnet50") or stem not in ("cifar", "imagenet"):
        sys.exit("%s: memloc_arch %r / memloc_stem %r: not a memloc torchvision ResNet" % (path, arch, stem))
    model = getattr(torchvision.models, arch)()
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("head.")]
    if sorted(missing) != ["fc.bias", "fc.weight"] or unexpected:
        sys.exit("%s: missing %s, unexpected %s; expected only fc.* missing" % (path, missing, unexpected))
    own = model.state_dict()
    for k, v in state.items():
        if k.startswith("head."):
            continue
        if v.dtype != own[k].dtype or tuple(v.shape) != tuple(own[k].shape) or not torch.equal(v, own[k]):
            sys.exit("%s: %s changed while loading" % (path, k))
    model.eval()
    with torch.no_grad():
        y = model(torch.zeros(1, 3, 32, 32))
    print("OK: %s: %s (%s stem), %d tensors loaded with strict=False, missing only %s; forward -> %s"
          % (path, arch, stem, len(state), sorted(missing), tuple(y.shape)))


if __name__ == "__main__":
    main()
