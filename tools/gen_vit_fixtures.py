#!/usr/bin/python3
"""Fixtures for memloc's ViT and MAE (tests/unit/test_vit.c,
tests/parity/test_vit_parity.c), from torch 1.13 (timm is not installed:
the modules below follow timm's forward line by line):

  vit/timm_names.txt
      every state_dict entry, in state_dict order, of
        vit_tiny_cifar  timm VisionTransformer(img_size=32, patch_size=4,
                        embed_dim=192, depth=12, num_heads=3, num_classes=10)
        mae_tiny_cifar  MAE's MaskedAutoencoderViT with that encoder and a
                        decoder of width 128, depth 2, 4 heads
      as `model name dtype d0,d1,...`.
  vit/vit_steps.safetensors
      a tiny ViT (image 16, patch 4 -> 16 patches, width 24, depth 2, 2
      heads) with timm's classifier head (10 classes) and an MAE decoder
      (width 16, depth 1, 2 heads), its parameters randomised (init.*, every
      LayerNorm and bias away from 1 / 0 so their gradients are exercised):
        sup.*  one supervised step on x (3 images) and labels: every tap of
               the forward (tap.*: blocks.i.attn, blocks.i.mlp.act, blocks.i,
               cls), the logits, the cross-entropy loss and every gradient of
               the encoder and the head (grad.*)
        mae.*  one MAE step (mask ratio 0.75: 4 of 16 patches visible) on the
               same images with a fixed patch order per sample (mae.order, int64
               (3, 16); the first 4 visible, as MAE's ids_shuffle): the
               per-patch predictions (mae.pred, (3, 16, 48), CLS row dropped),
               the normalised-pixel loss and every gradient of the encoder and
               the decoder (mae.grad.*)
        interp.*  the supervised step on other images, 12x12 (interp.x, 3x3
               patches), with the 4x4 grid's position embeddings interpolated
               by DINO's interpolate_pos_encoding (bicubic, scale factor
               (3 + 0.1) / 4): taps, logits, loss, every gradient
        drop.*  the supervised step on x with drop_path_rate 0.4 (block 1's
               attention and MLP branches at rate 0.4) and given per-sample
               masks (drop.scale, (2, 3): 0 or 1 / 0.6, attention then MLP)
      Everything is computed in float64 from the float32 parameters; the loss
      is stored as F64.

    /usr/bin/python3 tools/gen_vit_fixtures.py tests/fixtures

References: huggingface/pytorch-image-models timm/models/vision_transformer.py
(VisionTransformer, Block, Mlp), timm/layers/attention.py (Attention, the
non-fused path), timm/layers/patch_embed.py; facebookresearch/mae
models_mae.py (random_masking, forward_encoder, forward_decoder,
forward_loss with norm_pix_loss=True).
"""
import math
import os
import sys

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

EPS = 1e-6


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = attn @ v
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    drop_scale = None  # (attn, mlp) per-sample scales: timm's DropPath with given masks

    def forward(self, x, taps=None, prefix=""):
        ds = self.drop_scale
        a = self.attn(self.norm1(x))
        x = x + (a if ds is None else a * ds[0].view(-1, 1, 1))
        if taps is not None:
            taps[prefix + ".attn"] = x
        h = self.mlp.act(self.mlp.fc1(self.norm2(x)))
        if taps is not None:
            taps[prefix + ".mlp.act"] = h
        f = self.mlp.fc2(h)
        x = x + (f if ds is None else f * ds[1].view(-1, 1, 1))
        if taps is not None:
            taps[prefix] = x
        return x


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """timm's VisionTransformer(global_pool='token', class_token=True)."""

    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, num_classes, in_chans=3):
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * .02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=EPS)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def interpolate_pos_encoding(self, x, w, h):
        """facebookresearch/dino vision_transformer.py, verbatim but for the
        patch size's attribute."""
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        patch_pos_embed = self.pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_embed.proj.kernel_size[0]
        h0 = h // self.patch_embed.proj.kernel_size[0]
        # we add a small number to avoid floating point error in the interpolation
        # see discussion at https://github.com/facebookresearch/dino/issues/8
        w0, h0 = w0 + 0.1, h0 + 0.1
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
            mode='bicubic',
        )
        assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def forward(self, x, taps=None):
        B, nc, w, h = x.shape
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(x, w, h)
        for i, blk in enumerate(self.blocks):
            x = blk(x, taps, "blocks.%d" % i)
        x = self.norm(x)
        if taps is not None:
            taps["cls"] = x[:, 0]
        return self.head(x[:, 0])


class MaskedAutoencoderViT(nn.Module):
    """MAE's models_mae.MaskedAutoencoderViT with learned position embeddings
    (memloc's choice; MAE fixes them to sin-cos tables) and a given order."""

    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads, dec_dim, dec_depth,
                 dec_heads, in_chans=3):
        super().__init__()
        self.patch = patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * .02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=EPS)
        self.decoder_embed = nn.Linear(embed_dim, dec_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dec_dim) * .02)
        self.decoder_blocks = nn.ModuleList([Block(dec_dim, dec_heads) for _ in range(dec_depth)])
        self.decoder_norm = nn.LayerNorm(dec_dim, eps=EPS)
        self.decoder_pred = nn.Linear(dec_dim, patch_size ** 2 * in_chans, bias=True)

    def patchify(self, imgs):
        p = self.patch
        c = imgs.shape[1]
        h = w = imgs.shape[2] // p
        x = imgs.reshape(shape=(imgs.shape[0], c, h, p, w, p))
        x = torch.einsum('nchpwq->nhwpqc', x)
        return x.reshape(shape=(imgs.shape[0], h * w, p ** 2 * c))

    def forward_encoder(self, x, ids_shuffle, keep):
        x = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:, :]
        N, L, D = x.shape
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]
        x = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], dtype=x.dtype)
        mask[:, :keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        mask_tokens = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.e-6) ** .5
        loss = (pred - target) ** 2
        loss = loss.mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, ids_shuffle, keep):
        latent, mask, ids_restore = self.forward_encoder(imgs, ids_shuffle, keep)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred


def names(outdir):
    lines = []
    models = {"vit_tiny_cifar": VisionTransformer(32, 4, 192, 12, 3, 10),
              "mae_tiny_cifar": MaskedAutoencoderViT(32, 4, 192, 12, 3, 128, 2, 4)}
    for name, model in models.items():
        for k, v in model.state_dict().items():
            lines.append("%s %s %s %s" % (name, k, str(v.dtype).replace("torch.", ""),
                                          ",".join(str(d) for d in v.shape)))
    path = os.path.join(outdir, "vit", "timm_names.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(path, len(lines), "entries")


def randomise(model, gen):
    """Parameters as float32 values: Linear / conv weights and position
    embeddings N(0, 0.02^2)-ish, LayerNorm weights 1 + N(0, 0.1^2), biases and
    tokens N(0, 0.02^2) (away from timm's exact 1 / 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or "norm.weight" in name:
                v = 1 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            elif p.dim() >= 2 and "pos_embed" not in name and "token" not in name:
                fan_in = np.prod(p.shape[1:])
                v = torch.randn(p.shape, generator=gen, dtype=torch.float64) / np.sqrt(fan_in)
            else:
                v = 0.02 * torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.copy_(v.float().double() if p.dtype == torch.float64 else v.float())


def supervised_step(vit, x, labels, prefix, out):
    """One cross-entropy step of the (float64) ViT on x: every tap, the logits,
    the loss and every parameter gradient under `prefix`."""
    vit.zero_grad()
    taps = {}
    logits = vit(x.double(), taps)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    for k, v in taps.items():
        out[prefix + ".tap." + k] = v.detach().numpy().astype(np.float32)
    out[prefix + ".logits"] = logits.detach().numpy().astype(np.float32)
    out[prefix + ".loss"] = np.array([loss.item()], dtype=np.float64)
    for k, p in vit.named_parameters():
        out[prefix + ".grad." + k] = p.grad.numpy().astype(np.float32)
    print("%s: loss %.9f" % (prefix, loss.item()))


def steps(outdir):
    gen = torch.Generator().manual_seed(8)
    img, P, D, depth, H, K = 16, 4, 24, 2, 2, 10
    dec_dim, dec_depth, dec_heads = 16, 1, 2
    N, L, keep = 3, (16 // 4) ** 2, 4
    vit = VisionTransformer(img, P, D, depth, H, K)
    mae = MaskedAutoencoderViT(img, P, D, depth, H, dec_dim, dec_depth, dec_heads)
    randomise(vit, gen)
    randomise(mae, gen)
    # one set of encoder parameters for both: MAE's encoder is the ViT's
    enc = {k: v for k, v in vit.state_dict().items() if not k.startswith("head.")}
    mae.load_state_dict({**mae.state_dict(), **enc})
    out = {}
    meta = {"image": str(img), "patch": str(P), "dim": str(D), "depth": str(depth), "heads": str(H),
            "classes": str(K), "decoder_dim": str(dec_dim), "decoder_depth": str(dec_depth),
            "decoder_heads": str(dec_heads), "n": str(N), "keep": str(keep)}
    for k, v in vit.state_dict().items():
        out["init." + k] = v.numpy().astype(np.float32)
    for k, v in mae.state_dict().items():
        if k.startswith("decoder_") or k == "mask_token":
            out["init." + k] = v.numpy().astype(np.float32)
    x = (2 * torch.rand(N, 3, img, img, generator=gen) - 1).float()
    labels = torch.tensor([3, 0, 7], dtype=torch.int64)
    out["x"] = x.numpy()
    out["labels"] = labels.numpy().astype(np.int64)

    vit = vit.double()
    supervised_step(vit, x, labels, "sup", out)

    mae = mae.double()
    order = torch.stack([torch.randperm(L, generator=gen) for _ in range(N)])
    out["mae.order"] = order.numpy().astype(np.int64)
    loss, pred = mae(x.double(), order, keep)
    loss.backward()
    out["mae.pred"] = pred.detach().numpy().astype(np.float32)
    out["mae.loss"] = np.array([loss.item()], dtype=np.float64)
    for k, p in mae.named_parameters():
        out["mae.grad." + k] = p.grad.numpy().astype(np.float32)
    print("mae loss %.9f" % loss.item())

    # DINO's local crops: the supervised ViT on 12x12 images (3x3 patches),
    # its 4x4 position embeddings interpolated by interpolate_pos_encoding
    small = 12
    xs = (2 * torch.rand(N, 3, small, small, generator=gen) - 1).float()
    out["interp.x"] = xs.numpy()
    meta["interp_image"] = str(small)
    supervised_step(vit, xs, labels, "interp", out)

    # drop-path: drop_path_rate 0.4 over depth 2 gives block 1 rate 0.4 on its
    # attention and MLP branches (block 0: 0); timm's drop_path(x) =
    # x / keep_prob * mask with these masks per sample
    rate, keep_prob = 0.4, 0.6
    masks = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    scales = masks / keep_prob
    out["drop.scale"] = scales.numpy().astype(np.float32)
    meta["drop_path"] = str(rate)
    vit.blocks[1].drop_scale = (scales[0], scales[1])
    supervised_step(vit, x, labels, "drop", out)
    vit.blocks[1].drop_scale = None
    path = os.path.join(outdir, "vit", "vit_steps.safetensors")
    st.save(path, out, metadata=meta)
    print(path, os.path.getsize(path), "bytes")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                                 "fixtures")
    os.makedirs(os.path.join(outdir, "vit"), exist_ok=True)
    torch.manual_seed(0)
    names(outdir)
    steps(outdir)


if __name__ == "__main__":
    main()
