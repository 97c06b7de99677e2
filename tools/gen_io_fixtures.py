"""Fixtures for memloc's tensor file I/O (tests/unit/test_safetensors.c, test_npy.c)
and the seed corpora of tests/fuzz/fuzz_safetensors.c and fuzz_npy.c.

    /usr/bin/python3 tools/gen_io_fixtures.py [REPO_ROOT]

Writes, deterministically:
  tests/fixtures/io/layout.safetensors   st.py's bytes for the tensors of
                                         layout_tensors() (the C test builds the
                                         same tensors and must write identical bytes)
  tests/fixtures/io/conv.safetensors     float32 values with numpy's float16 and
                                         torch's bfloat16 of them (bit oracles)
  tests/fixtures/io/resnet9_w0125.safetensors a PyTorch ResNet9(width=WIDTH)
                                         state_dict after 3 training-mode forwards
  tests/fixtures/io/resnet9_w0125.json   per tensor: dtype, shape, float64 sum,
                                         first and last value, computed by torch
  tests/fixtures/io/*.npy                arrays written by numpy's np.save
  tests/fuzz/corpus/{safetensors,npy}/   small seed files
"""
import io
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from resnet9 import ResNet9  # noqa: E402

# ResNet9 width of the state_dict fixture: 0.125 gives 8..32 channels and a
# 105 KB file (width 0.25 would give 421 KB); all 56 names, the dtypes and
# the shapes' structure are the same at every width.
WIDTH = 0.125

# Values both sides compute exactly; keep in sync with layout_tensors() in
# tests/unit/test_safetensors.c.
F16_SRC = [float.fromhex(h) for h in [
    "0x1.002p+0",    # tie between 1 and 1+2^-10: rounds to even (1)
    "0x1.006p+0",    # tie: rounds up to even 1+2^-9
    "0x1.ffep+15",   # 65520: ties to inf
    "0x1.ffcp+15",   # 65504: max half
    "0x1p-24",       # smallest subnormal half
    "0x1p-25",       # tie between 0 and 2^-24: rounds to 0
    "0x1.8p-25",     # rounds up to 2^-24
    "-0x0p+0",       # -0
    "-0x1.555556p-3",
    "0x1.4p+3",
]]
BF16_SRC = [1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -3.140625, float.fromhex("0x1.2p-133")]


def layout_tensors():
    f32 = (np.arange(12, dtype=np.float32) - 5) * np.float32(0.375)
    return {
        "w.f32": f32.reshape(3, 4),
        "scalar.f32": np.float32(2.5),
        "count": np.int64(1234567890123),
        "ids": np.arange(5, dtype=np.int64) ** 2 - 7,
        "h.f16": np.array(F16_SRC, dtype=np.float32).astype(np.float16).reshape(2, 5),
        "b.bf16": st.BF16(torch_bf16_bits(np.array(BF16_SRC, dtype=np.float32))),
        "zero": np.zeros((2, 0, 3), dtype=np.float32),
        "d.f64": np.array([1.0 / 3.0, -2.0 ** 60], dtype=np.float64),
        "i.i32": np.array([-1, 0, 2147483647], dtype=np.int32),
        "u.u8": np.array([0, 1, 128, 255], dtype=np.uint8),
    }


def torch_bf16_bits(x):
    """bfloat16 bits of float32 values as torch rounds them (the oracle)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(torch.bfloat16)
    return t.view(torch.int16).numpy().view(np.uint16)


def conversion_values():
    rng = np.random.default_rng(7)
    parts = [
        rng.standard_normal(300) * 10.0 ** rng.integers(-9, 7, 300),
        rng.uniform(-70000, 70000, 50),
        rng.uniform(2.0 ** -26, 2.0 ** -13, 100) * rng.choice([-1, 1], 100),  # f16 subnormals
        [np.inf, -np.inf, np.nan, -0.0, 0.0, 65504, 65519.996, 65520, -65520, 2.0 ** -24,
         2.0 ** -25, 3 * 2.0 ** -26, 3.4e38, -3.4e38, 1e-45, -1e-45],
    ]
    x = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(np.float32)
    # Exact ties for both formats: mantissas ending in 1000... below the kept bits.
    m = rng.integers(0, 2 ** 10, 100).astype(np.uint32)
    e = rng.integers(100, 150, 100).astype(np.uint32)
    f16_ties = ((e << 23) | (m << 13) | (1 << 12)).view(np.float32)
    m = rng.integers(0, 2 ** 7, 100).astype(np.uint32)
    bf16_ties = ((e << 23) | (m << 16) | (1 << 15)).view(np.float32)
    return np.concatenate([x, f16_ties, bf16_ties]).astype(np.float32)


def resnet9_state():
    torch.manual_seed(0)
    model = ResNet9(width=WIDTH)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # moves running stats and num_batches_tracked off their defaults
            model(torch.randn(4, 3, 32, 32))
    return model.state_dict()


def npy_arrays():
    return {
        "a_f4": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
        "a_f8": np.array([0.1, -2.5, 1e300, 0.0, 7.0]),
        "a_i8": np.int64(-42),
        "a_i4": np.zeros((0, 3), dtype=np.int32),
        "a_u1": (np.arange(8, dtype=np.uint8) * 31).reshape(2, 2, 2),
        "a_big_dim": np.arange(12345678, 12345678 + 3, dtype=np.int64).reshape(3, 1),
    }


def main():
    np.seterr(over="ignore")  # 65520 and up overflow to inf in float16, as intended
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    fx = os.path.join(root, "tests", "fixtures", "io")
    cst = os.path.join(root, "tests", "fuzz", "corpus", "safetensors")
    cnpy = os.path.join(root, "tests", "fuzz", "corpus", "npy")
    for d in (fx, cst, cnpy):
        os.makedirs(d, exist_ok=True)

    st.save(os.path.join(fx, "layout.safetensors"), layout_tensors(),
            metadata={"memloc": "test", "format": "pt"})

    x = conversion_values()
    h_bits = np.random.default_rng(8).integers(0, 65536, 512).astype(np.uint16)
    st.save(os.path.join(fx, "conv.safetensors"), {
        "x": x,
        "x_f16": x.astype(np.float16),            # numpy's round-to-nearest-even
        "x_bf16": st.BF16(torch_bf16_bits(x)),   # torch's round-to-nearest-even
        "h": h_bits.view(np.float16),            # half bit patterns ...
        "h_f32": h_bits.view(np.float16).astype(np.float32),  # ... and numpy's widening
    })

    sd = resnet9_state()
    tensors = {k: v.numpy() for k, v in sd.items()}
    st.save(os.path.join(fx, "resnet9_w0125.safetensors"), tensors, metadata={"format": "pt"})
    summary = {"schema": "memloc.fixture.resnet9.v1", "width": WIDTH, "tensors": {}}
    for k, v in sd.items():
        flat = v.reshape(-1)
        summary["tensors"][k] = {
            "dtype": {torch.float32: "F32", torch.int64: "I64"}[v.dtype],
            "shape": list(v.shape),
            "sum": float(v.double().sum()),
            "first": flat[0].item(),
            "last": flat[-1].item(),
        }
    with open(os.path.join(fx, "resnet9_w0125.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")

    for name, a in npy_arrays().items():
        np.save(os.path.join(fx, name + ".npy"), a)
    with open(os.path.join(fx, "a_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, np.arange(4, dtype=np.float64), version=(2, 0))

    # Fuzz seeds: small, valid, varied.
    st.save(os.path.join(cst, "layout.safetensors"), layout_tensors(), metadata={"format": "pt"})
    st.save(os.path.join(cst, "empty.safetensors"), {})
    st.save(os.path.join(cst, "two.safetensors"), {
        "a.weight": np.ones((2, 3), np.float32),
        "a.batch.num_batches_tracked": np.int64(3)})
    for name in ("a_f4", "a_i8", "a_u1", "a_i4"):
        np.save(os.path.join(cnpy, name + ".npy"), npy_arrays()[name])
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.arange(3, dtype=np.float32), version=(3, 0))
    with open(os.path.join(cnpy, "v3.npy"), "wb") as f:
        f.write(buf.getvalue())


if __name__ == "__main__":
    main()
