"""The paper's slim ResNet9 and SimCLR head, in PyTorch.

Mirrors sprintml/LocalizingMemorizationInSSL SimCLR/simclr/modules/resnet9model.py
(SPEC.md section 5, FORMATS.md section 2.5) so that state_dict names match memloc's.
Used by the fixture generators in tools/ and by the benchmark peers in bench/.
"""
import torch
import torch.nn as nn

BLOCKS = [  # name, in (multiple of width), out, pool
    ("prep", None, 32, True),
    ("layer1_head", 32, 64, True),
    ("layer1_residual1", 64, 64, False),
    ("layer1_residual2", 64, 64, False),
    ("layer2", 64, 128, True),
    ("layer3_head", 128, 256, True),
    ("layer3_residual1", 256, 256, False),
    ("layer3_residual2", 256, 256, False),
]

TAPS = ["prep", "layer1_head", "layer1_residual1", "layer1_residual2", "res1",
        "layer2", "layer3_head", "layer3_residual1", "layer3_residual2", "res2"]


def conv_bn(c_in, c_out, pool):
    layers = [("conv", nn.Conv2d(c_in, c_out, 3, padding=1, bias=True)),
              ("batch", nn.BatchNorm2d(c_out)),
              ("relu", nn.ReLU(inplace=False))]
    if pool:
        layers.append(("pool", nn.MaxPool2d(2)))
    from collections import OrderedDict
    return nn.Sequential(OrderedDict(layers))


class ResNet9(nn.Module):
    def __init__(self, in_channels=3, width=1.0):
        super().__init__()
        def w(c):
            return max(1, int(round(c * width)))
        for name, cin, cout, pool in BLOCKS:
            c_in = in_channels if cin is None else w(cin)
            setattr(self, name, conv_bn(c_in, w(cout), pool))

    def forward(self, x, taps=None):
        out = {}
        x = self.prep(x); out["prep"] = x
        x = self.layer1_head(x); out["layer1_head"] = x
        r = self.layer1_residual1(x); out["layer1_residual1"] = r
        r = self.layer1_residual2(r); out["layer1_residual2"] = r
        x = r + x; out["res1"] = x
        x = self.layer2(x); out["layer2"] = x
        x = self.layer3_head(x); out["layer3_head"] = x
        r = self.layer3_residual1(x); out["layer3_residual1"] = r
        r = self.layer3_residual2(r); out["layer3_residual2"] = r
        x = r + x; out["res2"] = x
        if taps is not None:
            taps.update(out)
        return x


class SimCLR(nn.Module):
    """Encoder plus projection head Linear(F->512) -> ReLU -> Linear(512->128)."""
    def __init__(self, in_channels=3, width=1.0, image=32, hidden=512, proj=128):
        super().__init__()
        self.encoder = ResNet9(in_channels, width)
        with torch.no_grad():
            feat = self.encoder(torch.zeros(2, in_channels, image, image)).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU(), nn.Linear(hidden, proj))

    def forward(self, x):
        return self.head(self.encoder(x).flatten(1))


def nt_xent(z, temperature):
    """NT-Xent over 2N views; z rows 0..N-1 are view 1, N..2N-1 view 2 (SimCLR)."""
    n2 = z.shape[0]
    n = n2 // 2
    z = nn.functional.normalize(z, dim=1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, n2), torch.arange(0, n)])
    return nn.functional.cross_entropy(sim, target)
