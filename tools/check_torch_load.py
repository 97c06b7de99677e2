"""Check that a memloc-written safetensors file loads into PyTorch's ResNet9.

    /usr/bin/python3 tools/check_torch_load.py FILE.safetensors [--width W] [--compare REF]

Reads FILE with tools/st.py (which validates it as FORMATS.md 2.2 does), builds
tools/resnet9.py's ResNet9 at the width the file implies (prep.conv.weight has
32*W output channels) and calls load_state_dict(strict=True), which fails on
any missing or unexpected name and any shape mismatch; then checks the dtypes
against the model's own state_dict (num_batches_tracked is int64 shape []).
With --compare, every tensor must also equal the one in REF. Prints OK.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from resnet9 import ResNet9  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--compare", default=None, help="a safetensors file with the expected values")
    args = ap.parse_args()

    tensors = st.load(args.file)
    width = args.width
    if width is None:
        if "prep.conv.weight" not in tensors:
            sys.exit("%s: no prep.conv.weight; not a ResNet9 state_dict" % args.file)
        width = tensors["prep.conv.weight"].shape[0] / 32
    model = ResNet9(width=width)
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}  # st.load gives C-order copies
    model.load_state_dict(state, strict=True)
    own = model.state_dict()
    for k, v in own.items():
        if state[k].dtype != v.dtype or tuple(state[k].shape) != tuple(v.shape):
            sys.exit("%s: %s %s, model has %s %s" % (k, state[k].dtype, tuple(state[k].shape),
                                                     v.dtype, tuple(v.shape)))
        if not torch.equal(state[k], v):
            sys.exit("%s: values changed while loading" % k)
    if args.compare:
        ref = st.load(args.compare)
        if sorted(ref) != sorted(tensors):
            sys.exit("names differ from %s" % args.compare)
        for k in ref:
            if ref[k].dtype != tensors[k].dtype or not np.array_equal(ref[k], tensors[k]):
                sys.exit("%s differs from %s" % (k, args.compare))
    print("OK: %s: %d tensors loaded into ResNet9(width=%g) with strict=True"
          % (args.file, len(tensors), width))


if __name__ == "__main__":
    main()
