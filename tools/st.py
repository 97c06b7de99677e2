"""A tiny pure-python safetensors writer/reader (FORMATS.md section 2).

    st.save(path, {name: numpy_array}, metadata={})
    st.load(path) -> {name: numpy_array}
    st.load_full(path) -> (tensors, metadata, header)

The writer mirrors the reference writer (huggingface/safetensors,
safetensors/src/tensor.rs `prepare`) byte for byte: tensors sorted by
descending dtype (the reference's enum order, which is by element size and,
for equal sizes, I64 > F64, F32 > I32, BF16 > F16) then by name; compact
JSON with `__metadata__` first (keys sorted; the reference uses an unordered
map); the header space-padded so that 8 + N is a multiple of 8. memloc's C
writer (src/io/safetensors.c) produces the same bytes, which the unit tests
check against fixtures written by this module.

numpy has no bfloat16: pass st.BF16(bits) with a uint16 array of raw bfloat16
bits (st.bf16_bits(x) rounds float32 to nearest-even), and BF16 tensors load
as float32 (exact).
"""
import json
import struct

import numpy as np

# The reference's dtype enum, in increasing order (tensor.rs `enum Dtype`).
DTYPE_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3",
               "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32",
               "U32", "F32", "C64", "F64", "I64", "U64"]

NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
         "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
         "BOOL": "?"}
FROM_NUMPY = {np.dtype(v).str: k for k, v in NUMPY.items()}


class BF16:
    """A bfloat16 tensor given by its raw uint16 bits."""
    def __init__(self, bits):
        self.bits = np.array(bits, dtype="<u2", order="C")  # keeps 0-d shapes
        self.shape = self.bits.shape


def bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even; NaN -> 0x7fc0 (as c10::BFloat16)."""
    x = np.array(x, dtype="<f4", order="C")
    u = x.reshape(-1).view("<u4").astype(np.uint64)
    r = ((u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16))
    r = r.astype("<u2")
    r[np.isnan(x.reshape(-1))] = 0x7FC0
    return r.reshape(x.shape)


def _dtype_and_bytes(value):
    if isinstance(value, BF16):
        return "BF16", list(value.shape), value.bits.tobytes()
    a = np.asarray(value)
    key = a.dtype.newbyteorder("<").str if a.dtype.byteorder == ">" else a.dtype.str
    if key not in FROM_NUMPY:
        raise ValueError("unsupported numpy dtype %s" % a.dtype)
    dtype = FROM_NUMPY[key]
    data = np.array(a, dtype=np.dtype(NUMPY[dtype]), order="C").tobytes()
    return dtype, list(a.shape), data


def serialize(tensors, metadata=None):
    """The file's bytes for {name: array}."""
    items = []
    for name, value in tensors.items():
        dtype, shape, data = _dtype_and_bytes(value)
        items.append((name, dtype, shape, data))
    items.sort(key=lambda it: (-DTYPE_ORDER.index(it[1]), it[0].encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    offset = 0
    for name, dtype, shape, data in items:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(it[3] for it in items)


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata))


def loads_full(buf):
    """(tensors, metadata, header) from a file's bytes, validated as FORMATS.md 2.2."""
    if len(buf) < 8:
        raise ValueError("truncated: %d bytes" % len(buf))
    (n,) = struct.unpack("<Q", buf[:8])
    if n > 100_000_000 or 8 + n > len(buf):
        raise ValueError("header length %d exceeds the file size %d" % (n, len(buf)))
    raw = buf[8:8 + n]
    if not raw.startswith(b"{"):
        raise ValueError("header does not start with '{'")

    def no_duplicates(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise ValueError("duplicate key %r" % k)
            d[k] = v
        return d
    header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    metadata = header.pop("__metadata__", None) or {}
    data = buf[8 + n:]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    tensors, at = {}, 0
    for name, info in entries:
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if begin != at or end < begin:
            raise ValueError("tensor %r: data_offsets %r do not tile the buffer" % (name, [begin, end]))
        if any(d < 0 for d in shape):
            raise ValueError("tensor %r: negative dimension" % name)
        if dtype != "BF16" and dtype not in NUMPY:
            raise ValueError("tensor %r: unsupported dtype %s" % (name, dtype))
        size = 2 if dtype == "BF16" else np.dtype(NUMPY[dtype]).itemsize
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * size:
            raise ValueError("tensor %r: data_offsets hold %d bytes, %s %r needs %d"
                             % (name, end - begin, dtype, shape, count * size))
        if dtype == "BF16":
            bits = np.frombuffer(data, "<u2", count, begin).astype(np.uint32)
            arr = (bits << 16).view(np.float32)
        else:
            arr = np.frombuffer(data, NUMPY[dtype], count, begin).copy()
        tensors[name] = arr.reshape(shape)
        at = end
    if at != len(data):
        raise ValueError("%d trailing bytes after the last tensor" % (len(data) - at))
    return tensors, metadata, header


def load_full(path):
    with open(path, "rb") as f:
        return loads_full(f.read())


def load(path):
    return load_full(path)[0]
