#!/usr/bin/python3
"""Per-op PyTorch fixtures for memloc's reference kernels (tests/parity/test_ops_parity.c).

Run from the repository root with Debian's interpreter:

    /usr/bin/python3 tools/gen_op_fixtures.py [outdir]     # default tests/fixtures/ops

For every op it writes one safetensors file (tools/st.py) holding, in float32:
the inputs, the parameters, an upstream gradient `dy`, the outputs and every
gradient that torch autograd computes from `dy` (`d<name>` for input <name>),
plus the op's hyper-parameters as __metadata__ strings. Batchnorm also holds
the running statistics after one and after three training forwards, and the
eval-mode output that uses them. Each op draws from its own
torch.manual_seed, so the files are reproducible and adding an op never
changes another op's file.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from resnet9 import nt_xent  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "ops")


def np32(t):
    # np.array, not np.ascontiguousarray: the latter turns a 0-d loss into shape [1].
    return np.array(t.detach().cpu().numpy(), dtype=np.float32, order="C")


def save(name, tensors, meta):
    os.makedirs(OUT, exist_ok=True)
    arrays = {}
    for k, v in tensors.items():
        if isinstance(v, torch.Tensor):
            arrays[k] = v.detach().numpy() if v.dtype == torch.int64 else np32(v)
        else:
            arrays[k] = v
    meta = dict(meta, fixture=name, generator="tools/gen_op_fixtures.py",
                torch=torch.__version__)
    path = os.path.join(OUT, name + ".safetensors")
    st.save(path, arrays, metadata={k: str(v) for k, v in meta.items()})
    print("%-28s %6d bytes" % (path, os.path.getsize(path)))


def leaf(t):
    return t.clone().requires_grad_(True)


# ---- conv2d ---------------------------------------------------------------
CONVS = [  # name, N, C, H, W, K, kernel, stride, pad, bias
    ("conv_3x3_s1_p1", 2, 3, 7, 6, 4, 3, 1, 1, 1),         # ResNet9 block
    ("conv_3x3_s2_p1_nobias", 2, 3, 7, 6, 4, 3, 2, 1, 0),  # ResNet downsampling, odd size
    ("conv_1x1_s2_nobias", 2, 4, 6, 7, 3, 1, 2, 0, 0),     # ResNet shortcut
    ("conv_1x1_s1", 2, 5, 4, 4, 6, 1, 1, 0, 1),            # bottleneck 1x1
    ("conv_7x7_s2_p3_nobias", 1, 3, 12, 11, 4, 7, 2, 3, 0),  # ImageNet stem
    ("conv_4x4_s4_patch", 2, 3, 8, 8, 6, 4, 4, 0, 1),      # ViT patch embedding
]


def gen_conv(seed, name, N, C, H, W, K, k, stride, pad, bias):
    torch.manual_seed(seed)
    x = leaf(torch.randn(N, C, H, W))
    w = leaf(torch.randn(K, C, k, k) * 0.3)
    b = leaf(torch.randn(K) * 0.3) if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=pad)
    dy = torch.randn_like(y)
    y.backward(dy)
    t = {"x": x, "weight": w, "dy": dy, "y": y, "dx": x.grad, "dweight": w.grad}
    if bias:
        t.update(bias=b, dbias=b.grad)
    save(name, t, dict(N=N, C=C, H=H, W=W, K=K, R=k, S=k, stride=stride, pad=pad, bias=bias))


# ---- batchnorm2d ------------------------------------------------------------
def gen_bn(seed):
    torch.manual_seed(seed)
    N, C, H, W = 4, 3, 5, 5
    bn = torch.nn.BatchNorm2d(C)  # eps 1e-5, momentum 0.1, running 0 / 1
    with torch.no_grad():
        bn.weight.copy_(torch.rand(C) + 0.5)
        bn.bias.copy_(torch.randn(C) * 0.5)
    # An offset mean checks that the variance is not computed as E[x^2]-E[x]^2.
    xs = [torch.randn(N, C, H, W) * 2 + 3 for _ in range(3)]
    gamma, beta = bn.weight.detach().clone(), bn.bias.detach().clone()
    bn.train()
    x = leaf(xs[0])
    y = bn(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    rm1, rv1 = bn.running_mean.clone(), bn.running_var.clone()
    with torch.no_grad():
        bn(xs[1])
        bn(xs[2])
    rm3, rv3 = bn.running_mean.clone(), bn.running_var.clone()
    bn.eval()
    with torch.no_grad():
        y_eval = bn(xs[0])
    x64 = xs[0].double()
    mean = x64.mean(dim=(0, 2, 3))
    invstd = 1 / torch.sqrt(x64.var(dim=(0, 2, 3), unbiased=False) + bn.eps)
    save("bn_train3", {
        "x": xs[0], "x2": xs[1], "x3": xs[2], "weight": gamma, "bias": beta, "dy": dy,
        "y": y, "dx": x.grad, "dweight": bn.weight.grad, "dbias": bn.bias.grad,
        "save_mean": mean, "save_invstd": invstd,
        "running_mean_1": rm1, "running_var_1": rv1,
        "running_mean_3": rm3, "running_var_3": rv3, "y_eval": y_eval,
    }, dict(N=N, C=C, H=H, W=W, eps=bn.eps, momentum=bn.momentum))


# ---- relu, add, gelu, dropout, softmax -----------------------------------------
def gen_relu(seed):
    torch.manual_seed(seed)
    v = torch.randn(2, 3, 4, 5)
    x = leaf(torch.sign(v) * (0.01 + v.abs()))  # away from the kink at 0
    y = F.relu(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    save("relu", {"x": x, "dy": dy, "y": y, "dx": x.grad}, dict(n=x.numel()))


def gen_add(seed):
    torch.manual_seed(seed)
    a, b = leaf(torch.randn(2, 3, 4, 4)), leaf(torch.randn(2, 3, 4, 4))
    y = a + b
    dy = torch.randn_like(y)
    y.backward(dy)
    save("add", {"a": a, "b": b, "dy": dy, "y": y, "da": a.grad, "db": b.grad},
         dict(n=a.numel()))


def gen_gelu(seed):
    torch.manual_seed(seed)
    x = leaf(torch.randn(3, 7) * 2)
    y = F.gelu(x)  # approximate='none': the erf form
    dy = torch.randn_like(y)
    y.backward(dy)
    save("gelu", {"x": x, "dy": dy, "y": y, "dx": x.grad}, dict(n=x.numel()))


def gen_dropout(seed):
    torch.manual_seed(seed)
    p = 0.3
    x = leaf(torch.randn(4, 10))
    mask = torch.bernoulli(torch.full((4, 10), 1 - p))
    # nn.Dropout's own draw cannot be replayed from C, so apply its math to a
    # given mask: scaled noise mask / (1 - p), times x (as aten's dropout).
    y = x * (mask / (1 - p))
    dy = torch.randn_like(y)
    y.backward(dy)
    save("dropout", {"x": x, "mask": mask, "dy": dy, "y": y, "dx": x.grad}, dict(n=40, p=p))


def gen_softmax(seed):
    torch.manual_seed(seed)
    x = leaf(torch.randn(4, 9) * 3)
    y = F.softmax(x, dim=-1)
    dy = torch.randn_like(y)
    y.backward(dy)
    save("softmax", {"x": x, "dy": dy, "y": y, "dx": x.grad}, dict(M=4, K=9))


# ---- maxpool2d ------------------------------------------------------------------
POOLS = [  # name, N, C, H, W, k, stride, pad, integer-valued (ties)
    ("maxpool_k2s2", 2, 3, 6, 6, 2, 2, 0, False),         # ResNet9
    ("maxpool_k3s2p1", 2, 2, 7, 7, 3, 2, 1, False),       # ResNet stem, overlapping
    ("maxpool_k2s2_ties", 1, 2, 6, 7, 2, 2, 0, True),     # tie-breaking, floor mode
    ("maxpool_k3s2p1_ties", 1, 2, 7, 6, 3, 2, 1, True),   # ties across overlapping windows
]


def gen_pool(seed, name, N, C, H, W, k, stride, pad, ties):
    torch.manual_seed(seed)
    v = torch.randint(0, 3, (N, C, H, W)).float() if ties else torch.randn(N, C, H, W)
    x = leaf(v)
    y, idx = F.max_pool2d(x, k, stride, pad, return_indices=True)
    dy = torch.randn_like(y)
    y.backward(dy)
    # indices are the flat h*W + w inside each (n, c) plane, as memloc's argmax.
    save(name, {"x": x, "dy": dy, "y": y, "argmax": idx.float(), "dx": x.grad},
         dict(N=N, C=C, H=H, W=W, k=k, stride=stride, pad=pad, ties=int(ties)))


# ---- linear, global average pool --------------------------------------------------
def gen_linear(seed):
    torch.manual_seed(seed)
    lin = torch.nn.Linear(7, 4)
    x = leaf(torch.randn(5, 7))
    y = lin(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    save("linear", {"x": x, "weight": lin.weight, "bias": lin.bias, "dy": dy, "y": y,
                    "dx": x.grad, "dweight": lin.weight.grad, "dbias": lin.bias.grad},
         dict(N=5, I=7, O=4))


def gen_avgpool(seed):
    torch.manual_seed(seed)
    x = leaf(torch.randn(2, 3, 4, 4))
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    dy = torch.randn_like(y)
    y.backward(dy)
    save("avgpool_global", {"x": x, "dy": dy, "y": y, "dx": x.grad}, dict(N=2, C=3, HW=16))


# ---- losses -------------------------------------------------------------------------
def gen_ntxent(seed, name, n, D, temperature):
    torch.manual_seed(seed)
    a = torch.randn(n, D)
    z = leaf(torch.cat([a + 0.5 * torch.randn(n, D), a + 0.5 * torch.randn(n, D)]))
    loss = nt_xent(z, temperature)
    loss.backward()
    save(name, {"z": z, "loss": loss, "dz": z.grad}, dict(n2=2 * n, D=D, temperature=temperature))


def gen_cross_entropy(seed):
    torch.manual_seed(seed)
    N, K = 6, 10
    logits = leaf(torch.randn(N, K) * 2)
    labels = torch.randint(0, K, (N,))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    save("cross_entropy", {"logits": logits, "labels": labels, "loss": loss,
                           "dlogits": logits.grad}, dict(N=N, K=K))


# ---- ViT: layernorm, attention ----------------------------------------------------------
def gen_layernorm(seed):
    torch.manual_seed(seed)
    N, T, D, eps = 2, 5, 8, 1e-6  # timm's ViT eps
    ln = torch.nn.LayerNorm(D, eps=eps)
    with torch.no_grad():
        ln.weight.copy_(torch.rand(D) + 0.5)
        ln.bias.copy_(torch.randn(D) * 0.5)
    x = leaf(torch.randn(N, T, D) + 1)
    y = ln(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    save("layernorm", {"x": x, "weight": ln.weight, "bias": ln.bias, "dy": dy, "y": y,
                       "dx": x.grad, "dweight": ln.weight.grad, "dbias": ln.bias.grad},
         dict(M=N * T, D=D, eps=eps))


def attention(qkv, H):
    """timm vision_transformer.Attention.forward between its two Linears."""
    B, T, C3 = qkv.shape
    D = C3 // 3
    q, k, v = qkv.reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)
    att = ((q @ k.transpose(-2, -1)) * (D // H) ** -0.5).softmax(dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, T, D), att


def gen_attention(seed, name, N, T, D, H):
    torch.manual_seed(seed)
    qkv = leaf(torch.randn(N, T, 3 * D))
    out, att = attention(qkv, H)
    dy = torch.randn_like(out)
    out.backward(dy)
    save(name, {"qkv": qkv, "dy": dy, "y": out, "att": att, "dqkv": qkv.grad},
         dict(N=N, T=T, D=D, H=H))


def main():
    torch.set_num_threads(1)
    for i, c in enumerate(CONVS):
        gen_conv(100 + i, *c)
    gen_bn(200)
    gen_relu(300)
    gen_add(310)
    gen_gelu(320)
    gen_dropout(330)
    gen_softmax(340)
    for i, c in enumerate(POOLS):
        gen_pool(400 + i, *c)
    gen_linear(500)
    gen_avgpool(510)
    gen_ntxent(600, "ntxent_t05", 4, 6, 0.5)   # SimCLR's default temperature
    gen_ntxent(601, "ntxent_t01", 6, 5, 0.1)
    gen_cross_entropy(610)
    gen_layernorm(700)
    gen_attention(710, "attention", 2, 5, 8, 2)
    gen_attention(711, "attention_t17", 1, 17, 12, 3)  # 16 patches + cls token


if __name__ == "__main__":
    main()
