"""Fixtures for memloc's data layer (tests/unit/test_data_*.c) and the seed
corpora of tests/fuzz/fuzz_{cifar,idx,stl10,mat,spec,imagefolder}.c.

    /usr/bin/python3 tools/gen_data_fixtures.py [REPO_ROOT]

Writes, deterministically (scipy 1.10.1, Pillow 9.4.0, torchvision 0.14.1):

  tests/fixtures/data/svhn_z.mat        scipy savemat(do_compression=True): a char
                                        variable, a struct, y (uint8) then X
  tests/fixtures/data/svhn_plain.mat    scipy savemat(do_compression=False), y double
  tests/fixtures/data/svhn_be.mat       our writer: big-endian, X compressed, y of
                                        class double stored as miINT16 (narrower)
  tests/fixtures/data/svhn_small.mat    our writer: little-endian, y of class
                                        double stored as miUINT8 in a small element
  tests/fixtures/data/svhn.safetensors  per file: <file>.x (N,32,32,3) uint8 as
                                        scipy.io.loadmat reads it, <file>.y (N,)
                                        labels with 10 -> 0
  tests/fixtures/data/img/*             small images in every mode the decoder
                                        handles (PNG, JPEG, PNM)
  tests/fixtures/data/images.safetensors  np.array(Image.open(f).convert("RGB"))
                                        for each of them
  tests/fixtures/data/resize.safetensors  PIL bilinear resizes (Image.resize)
  tests/fixtures/data/order.json        a tricky ImageFolder tree and the order in
                                        which torchvision's ImageFolder lists it
  tests/fixtures/data/cifar10_jpeg.safetensors  the first image of train/ and
                                        test/ of ../shared/data/cifar10-jpeg.tar.gz
                                        as torchvision's ImageFolder + PIL decode,
                                        and in metadata the checksum of each whole
                                        split (mloc_dataset_digest's definition)
  tests/fixtures/data/fmnist.safetensors  the same for Debian's Fashion-MNIST
  tests/fuzz/corpus/{cifar,idx,stl10,mat,spec,imagefolder}/*  seed inputs
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import zlib

import numpy as np
import scipy.io
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "data")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
CIFAR_JPEG = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")
FMNIST = "/usr/share/datasets/fashion-mnist"


def digest(pixels, labels):
    """mloc_dataset_digest: SHA-256 of a tag, the int64 shape, NHWC pixels, int32 labels."""
    h = hashlib.sha256(b"memloc.dataset/1")
    for v in pixels.shape:
        h.update(struct.pack("<q", v))
    h.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    h.update(np.asarray(labels, dtype="<i4").tobytes())
    return h.hexdigest()


# ---- MAT v5 -------------------------------------------------------------------

MI_INT8, MI_UINT8, MI_INT16, MI_UINT32, MI_INT32, MI_MATRIX, MI_COMPRESSED = 1, 2, 3, 6, 5, 14, 15
MX_DOUBLE, MX_UINT8 = 6, 9


def mat_header(be):
    text = b"MATLAB 5.0 MAT-file, written by memloc tools/gen_data_fixtures.py"
    return text.ljust(116, b" ") + b"\0" * 8 + struct.pack(">H" if be else "<H", 0x0100) + \
        (b"MI" if be else b"IM")


def mat_tag(E, typ, data, small_ok=True):
    n = len(data)
    if small_ok and 0 < n <= 4:
        return struct.pack(E + "I", (n << 16) | typ) + data.ljust(4, b"\0")
    return struct.pack(E + "II", typ, n) + data + b"\0" * (-n % 8)


def mat_matrix(E, name, cls, array, mi_type, np_type):
    dims = array.shape
    body = mat_tag(E, MI_UINT32, struct.pack(E + "II", cls, 0), small_ok=False)
    body += mat_tag(E, MI_INT32, struct.pack(E + "%di" % len(dims), *dims), small_ok=False)
    body += mat_tag(E, MI_INT8, name.encode())
    data = np.asarray(array).flatten(order="F").astype(np.dtype(np_type).newbyteorder(E)).tobytes()
    body += mat_tag(E, mi_type, data)
    return struct.pack(E + "II", MI_MATRIX, len(body)) + body


def mat_compressed(E, element):
    z = zlib.compress(element)
    return struct.pack(E + "II", MI_COMPRESSED, len(z)) + z


def fix_header(path_or_buf):
    """scipy writes the creation time into the header text; make files reproducible."""
    text = b"MATLAB 5.0 MAT-file, written by scipy.io.savemat for memloc tools/gen_data_fixtures.py"
    if isinstance(path_or_buf, str):
        with open(path_or_buf, "r+b") as f:
            f.write(text.ljust(116, b" "))
        return None
    data = path_or_buf.getvalue()
    return text.ljust(116, b" ") + data[116:]


def svhn_arrays(seed, n, labels):
    rng = np.random.RandomState(seed)
    x = rng.randint(0, 256, (32, 32, 3, n)).astype(np.uint8)
    y = np.array(labels, dtype=np.uint8).reshape(n, 1)
    return x, y


def write_mats():
    expected = {}
    files = {}
    x, y = svhn_arrays(1, 5, [1, 10, 3, 10, 7])
    p = os.path.join(OUT, "svhn_z.mat")
    scipy.io.savemat(p, {"note": "memloc fixture", "meta": {"a": 1.5, "b": "c"}, "y": y, "X": x},
                     do_compression=True)
    fix_header(p)
    files["svhn_z.mat"] = (x, y)
    x, y = svhn_arrays(2, 4, [2, 9, 10, 5])
    p = os.path.join(OUT, "svhn_plain.mat")
    scipy.io.savemat(p, {"X": x, "y": y.astype(np.float64)}, do_compression=False)
    fix_header(p)
    files["svhn_plain.mat"] = (x, y)
    # big-endian, compressed X, y of class double stored as int16, an int16 variable first
    x, y = svhn_arrays(3, 3, [10, 4, 6])
    E = ">"
    body = mat_header(True)
    body += mat_matrix(E, "skipme", 10, np.arange(6, dtype=np.int16).reshape(2, 3), MI_INT16, np.int16)
    body += mat_compressed(E, mat_matrix(E, "X", MX_UINT8, x, MI_UINT8, np.uint8))
    body += mat_matrix(E, "y", MX_DOUBLE, y, MI_INT16, np.int16)
    with open(os.path.join(OUT, "svhn_be.mat"), "wb") as f:
        f.write(body)
    files["svhn_be.mat"] = (x, y)
    # little-endian, uncompressed, y in a small element (3 bytes of miUINT8, class double)
    x, y = svhn_arrays(4, 3, [8, 10, 1])
    E = "<"
    body = mat_header(False)
    body += mat_matrix(E, "y", MX_DOUBLE, y, MI_UINT8, np.uint8)
    body += mat_matrix(E, "X", MX_UINT8, x, MI_UINT8, np.uint8)
    with open(os.path.join(OUT, "svhn_small.mat"), "wb") as f:
        f.write(body)
    files["svhn_small.mat"] = (x, y)
    for name, (x, y) in files.items():
        m = scipy.io.loadmat(os.path.join(OUT, name))   # the oracle reads every file
        assert np.array_equal(m["X"], x), name
        assert np.array_equal(m["y"].astype(np.int64), y.astype(np.int64)), name
        labels = m["y"].astype(np.int64).ravel()
        labels[labels == 10] = 0
        expected[name + ".x"] = np.ascontiguousarray(m["X"].transpose(3, 0, 1, 2))
        expected[name + ".y"] = labels
    st.save(os.path.join(OUT, "svhn.safetensors"), expected)
    # fuzz seeds: one image each
    os.makedirs(os.path.join(CORPUS, "mat"), exist_ok=True)
    x, y = svhn_arrays(5, 1, [10])
    for name, be, comp in [("le_z", False, True), ("le_plain", False, False), ("be_z", True, True)]:
        E = ">" if be else "<"
        el_x = mat_matrix(E, "X", MX_UINT8, x, MI_UINT8, np.uint8)
        el_y = mat_matrix(E, "y", MX_DOUBLE, y, MI_UINT8, np.uint8)
        body = mat_header(be) + (mat_compressed(E, el_x) + mat_compressed(E, el_y) if comp else el_x + el_y)
        with open(os.path.join(CORPUS, "mat", name + ".mat"), "wb") as f:
            f.write(body)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": x, "y": y}, do_compression=True)
    with open(os.path.join(CORPUS, "mat", "scipy_z.mat"), "wb") as f:
        f.write(fix_header(buf))


# ---- images ------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(path, rows, width, height, depth, color):
    """A minimal PNG writer for what PIL cannot write (16-bit RGB, 2/4-bit gray)."""
    raw = b"".join(b"\0" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
    data += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def write_images():
    d = os.path.join(OUT, "img")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(7)
    h, w = 9, 13
    rgb = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    smooth = np.clip(np.add.outer(np.arange(h) * 20, np.arange(w) * 12)[..., None] +
                     np.array([0, 40, 90]), 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(os.path.join(d, "rgb.png"))
    rgba = np.concatenate([rgb, rng.randint(0, 256, (h, w, 1)).astype(np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "rgba.png"))
    Image.fromarray(rgb[..., 0]).save(os.path.join(d, "l.png"))
    Image.fromarray(rgba[..., [0, 3]], "LA").save(os.path.join(d, "la.png"))
    pal = Image.fromarray(smooth).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(os.path.join(d, "p.png"))
    pal.save(os.path.join(d, "p_trns.png"), transparency=3)
    Image.fromarray(rgb[..., 1] > 127).convert("1").save(os.path.join(d, "one.png"))
    Image.fromarray((rgb[..., 2].astype(np.uint16) * 3)).save(os.path.join(d, "gray16.png"))
    rgb16 = (rgb.astype(np.uint16) * 257 + rng.randint(0, 257, rgb.shape)).astype(">u2")
    png_raw(os.path.join(d, "rgb16.png"), [r.tobytes() for r in rgb16], w, h, 16, 2)
    g4 = rng.randint(0, 16, (h, w)).astype(np.uint8)
    rows = []
    for r in g4:
        padded = np.concatenate([r, np.zeros(len(r) % 2, np.uint8)])
        rows.append(bytes((padded[0::2] << 4) | padded[1::2]))
    png_raw(os.path.join(d, "gray4.png"), rows, w, h, 4, 0)
    Image.fromarray(smooth).save(os.path.join(d, "rgb420.jpg"), quality=90)
    Image.fromarray(smooth).save(os.path.join(d, "rgb444.jpg"), quality=95, subsampling=0)
    Image.fromarray(smooth).save(os.path.join(d, "progressive.jpg"), quality=85, progressive=True)
    Image.fromarray(smooth[..., 1]).save(os.path.join(d, "gray.jpg"), quality=90)
    Image.fromarray(smooth).convert("CMYK").save(os.path.join(d, "cmyk.jpg"), quality=90)
    Image.fromarray(rgb).save(os.path.join(d, "rgb.ppm"))
    Image.fromarray(rgb[..., 0]).save(os.path.join(d, "gray.pgm"))
    # a JPEG cut in half: PIL refuses it ("image file is truncated")
    with open(os.path.join(d, "rgb420.jpg"), "rb") as f:
        whole = f.read()
    with open(os.path.join(d, "truncated.jpg"), "wb") as f:
        f.write(whole[:len(whole) // 2])
    try:
        Image.open(os.path.join(d, "truncated.jpg")).convert("RGB")
        raise SystemExit("PIL decoded the truncated JPEG")
    except OSError:
        pass
    expected = {}
    for name in sorted(os.listdir(d)):
        if name == "truncated.jpg":
            continue
        expected[name] = np.array(Image.open(os.path.join(d, name)).convert("RGB"))
    st.save(os.path.join(OUT, "images.safetensors"), expected,
            metadata={"pillow": Image.__version__})


def write_resize():
    rng = np.random.RandomState(11)
    t = {}
    gray = rng.randint(0, 256, (28, 28)).astype(np.uint8)
    rgb = rng.randint(0, 256, (9, 13, 3)).astype(np.uint8)
    t["gray28"] = gray[..., None]
    t["gray28_to_32"] = np.array(Image.fromarray(gray).resize((32, 32), Image.BILINEAR))[..., None]
    t["rgb9x13"] = rgb
    t["rgb9x13_to_32"] = np.array(Image.fromarray(rgb).resize((32, 32), Image.BILINEAR))
    t["rgb9x13_to_5"] = np.array(Image.fromarray(rgb).resize((5, 5), Image.BILINEAR))
    t["rgb9x13_to_9x32"] = np.array(Image.fromarray(rgb).resize((32, 9), Image.BILINEAR))
    st.save(os.path.join(OUT, "resize.safetensors"), t)


# ---- ImageFolder order -----------------------------------------------------------------

ORDER_FILES = [
    "b/x.png", "b/Y.PNG", "b/a b/1.png", "b/a-b/1.png", "b/a/1.png", "b/a/c/1.png", "b/a0/1.png",
    "b/_/1.png", "b/B.png", "b/readme.txt", "b/noext", "b/z.jpeg.bak", "b/.hidden.png",
    "a/2.png", "a/10.png", "a/1.png", "a/sub/1.png", "A/x.png", "a b/1.png", ".ipynb_checkpoints/q.png",
    "c/d/e/1.png", "root.png",
]


def write_order():
    import torchvision
    tiny = io.BytesIO()
    Image.fromarray(np.full((2, 2, 3), 128, np.uint8)).save(tiny, "PNG")
    with tempfile.TemporaryDirectory() as tmp:
        for rel in ORDER_FILES:
            p = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(tiny.getvalue() if rel.lower().endswith((".png", ".jpeg")) else b"text")
        ds = torchvision.datasets.ImageFolder(tmp)
        samples = [[os.path.relpath(p, tmp), c] for p, c in ds.samples]
        doc = {"torchvision": torchvision.__version__, "files": ORDER_FILES, "classes": ds.classes,
               "samples": samples}
    with open(os.path.join(OUT, "order.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    # fuzz seeds: small tars of ImageFolder trees
    os.makedirs(os.path.join(CORPUS, "imagefolder"), exist_ok=True)
    jpg = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(jpg, "JPEG", quality=90)
    png = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(png, "PNG")
    # the first byte of a seed is fuzz_imagefolder.c's flags (1: SUBDIR train, 2: skip_corrupt)
    for name, flags, members in [
        ("plain.tar", 0, [("cat/1.jpg", jpg), ("cat/2.png", png), ("dog/1.jpg", jpg)]),
        ("wrapped.tar", 1, [("root/train/cat/1.jpg", jpg), ("root/train/dog/x/2.png", png),
                            ("root/test/cat/1.png", png)]),
        ("skip.tar", 2, [("a/1.png", png), ("a/2.jpg", io.BytesIO(jpg.getvalue()[:60])),
                         ("b/1.png", png)]),
    ]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
            for path, data in members:
                info = tarfile.TarInfo(path)
                info.size = len(data.getvalue())
                info.mtime = 0
                tf.addfile(info, io.BytesIO(data.getvalue()))
        with open(os.path.join(CORPUS, "imagefolder", name), "wb") as f:
            f.write(bytes([flags]) + buf.getvalue())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for path, data in [("train/cat/1.png", png), ("train/dog/1.png", png)]:
            info = tarfile.TarInfo(path)
            info.size = len(data.getvalue())
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data.getvalue()))
    with open(os.path.join(CORPUS, "imagefolder", "train.tar.gz"), "wb") as f:
        f.write(b"\x01" + gzip.compress(raw.getvalue(), mtime=0))


def write_corpora():
    """Seeds for fuzz_cifar, fuzz_idx, fuzz_stl10 and fuzz_spec (input layouts in each target)."""
    rng = np.random.RandomState(13)
    d = os.path.join(CORPUS, "cifar")
    os.makedirs(d, exist_ok=True)
    rec10 = bytes([3]) + rng.randint(0, 256, 3072).astype(np.uint8).tobytes()
    rec100 = bytes([7, 42]) + rng.randint(0, 256, 3072).astype(np.uint8).tobytes()
    with open(os.path.join(d, "cifar10_2.bin"), "wb") as f:
        f.write(b"\x00" + rec10 + rec10)
    with open(os.path.join(d, "cifar100_1.bin"), "wb") as f:
        f.write(b"\x01" + rec100)
    d = os.path.join(CORPUS, "idx")
    os.makedirs(d, exist_ok=True)
    images = struct.pack(">IIII", 0x803, 2, 3, 3) + bytes(range(18))
    labels = struct.pack(">II", 0x801, 2) + bytes([4, 9])
    for name, im, lab in [("plain", images, labels),
                          ("gzip", gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0))]:
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(struct.pack("<H", len(im)) + im + lab)
    d = os.path.join(CORPUS, "stl10")
    os.makedirs(d, exist_ok=True)
    x = rng.randint(0, 256, 27648).astype(np.uint8).tobytes()
    with open(os.path.join(d, "labelled.bin"), "wb") as f:
        f.write(b"\x01" + struct.pack("<H", 1) + bytes([10]) + x)
    with open(os.path.join(d, "unlabelled.bin"), "wb") as f:
        f.write(b"\x00" + struct.pack("<H", 0) + x)
    d = os.path.join(CORPUS, "spec")
    os.makedirs(d, exist_ok=True)
    seeds = ["cifar10:/d:test\n0:10,20", "fmnist\n-3:", "folder:/x/c.tar.gz/train@1:5\n1:900:7",
             "stl10:/s:unlabeled\n5,6,7", "synthetic:100:8x8x1:3@0:50\n:", "svhn:/a/train_32x32.mat\n999",
             "mnist:/m:train@@/tmp/i.txt\n10:20,3"]
    for i, text in enumerate(seeds):
        with open(os.path.join(d, "seed%d.txt" % i), "w") as f:
            f.write(text)


# ---- real datasets ------------------------------------------------------------------------

def write_cifar_jpeg():
    import torchvision
    if not os.path.exists(CIFAR_JPEG):
        print("skipping cifar10_jpeg: %s not found" % CIFAR_JPEG)
        return
    t, meta = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(CIFAR_JPEG) as tf:
            tf.extractall(tmp)
        for split in ["train", "test"]:
            ds = torchvision.datasets.ImageFolder(os.path.join(tmp, "cifar10-jpeg", split))
            pix = np.stack([np.array(ds.loader(p)) for p, _ in ds.samples])
            labels = np.array([c for _, c in ds.samples])
            meta[split + "_digest"] = digest(pix, labels)
            meta[split + "_n"] = len(labels)
            meta[split + "_first"] = os.path.relpath(ds.samples[0][0], os.path.join(tmp, "cifar10-jpeg", split))
            meta[split + "_last"] = os.path.relpath(ds.samples[-1][0], os.path.join(tmp, "cifar10-jpeg", split))
            t[split + "_first"] = pix[0]
            t[split + "_last"] = pix[-1]
            t[split + "_counts"] = np.bincount(labels, minlength=10).astype(np.int64)
    st.save(os.path.join(OUT, "cifar10_jpeg.safetensors"), t, metadata=meta)


def write_fmnist():
    def idx(name):
        with gzip.open(os.path.join(FMNIST, name + ".gz")) as f:
            data = f.read()
        ndim = data[3]
        dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
        return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    t, meta = {}, {}
    for split, prefix in [("train", "train"), ("test", "t10k")]:
        x = idx(prefix + "-images-idx3-ubyte")
        y = idx(prefix + "-labels-idx1-ubyte")
        meta[split + "_digest"] = digest(x[..., None], y)
        t[split + "_first"] = x[0][..., None]
        t[split + "_labels_head"] = y[:16].astype(np.int64)
        t[split + "_counts"] = np.bincount(y, minlength=10).astype(np.int64)
        padded = np.repeat(np.pad(x[:2], ((0, 0), (2, 2), (2, 2)))[..., None], 3, axis=3)
        t[split + "_pad32_rgb_head"] = padded
    st.save(os.path.join(OUT, "fmnist.safetensors"), t, metadata=meta)


def main():
    os.makedirs(OUT, exist_ok=True)
    write_mats()
    write_images()
    write_resize()
    write_order()
    write_corpora()
    write_fmnist()
    write_cifar_jpeg()
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            print("%8d  %s" % (os.path.getsize(p), os.path.relpath(p, ROOT)))


if __name__ == "__main__":
    main()
