#!/usr/bin/python3
"""Fixtures for the SimSiam and DINO parity tests (tests/parity/test_methods_parity.c).

  methods/simsiam_step.safetensors
      One SimSiam step (Chen & He 2021) of the paper's ResNet9 (tools/resnet9.py,
      width 0.125, 16 x 16 views of 8 images) with solo-learn's projector and
      predictor as memloc builds them
      (src/models/heads.c): each view is its own forward, the loss is
      -(cos(p1, sg(z2)).mean() + cos(p2, sg(z1)).mean()) / 2. Stored: the
      initial state (init.*), the 2N views x, the predictions p and projections
      z of both views (rows i, i+N), the loss, every parameter gradient
      (grad.*) and the BN running statistics / counters after the step (first.*);
      then the losses of TRAJ_STEPS steps of SGD (momentum 0.9, weight decay
      5e-4) on the same views (losses, the first is the checked step's).
  methods/dino_step.safetensors
      One DINO iteration (Caron et al. 2021) as facebookresearch/dino's
      main_dino.py with a ResNet9 backbone (width 0.0625: the file holds four
      copies of the network; 2 images, 32 x 32 global and 16 x 16 local
      crops) whose output is the global average pool of its last map, DINOHead(use_bn=False, norm_last_layer=True,
      nlayers=3), 2 global crops + L local crops of a smaller size, DINOLoss
      with a non-zero centre and the teacher temperature of a warm-up epoch,
      then an SGD step of the student and the teacher's EMA update at the
      cosine momentum of iteration IT of TOTAL (no gradient clipping: the test
      turns memloc's off). The teacher starts from the
      student's state perturbed (as later in training), so that mixing them up
      shows. Stored: init.student.*, init.teacher.*, init.center, the crops
      (global, local), the loss, every student gradient (grad.*; weight_g's
      too, computed with requires_grad on: DINO freezes it), the centre after
      the step (center), the BN running statistics and counters of student and
      teacher after the step (first.student.*, first.teacher.*), and the
      teacher after its EMA update (final.teacher.*); then the losses of
      TRAJ_STEPS iterations on the same crops, each with the teacher and
      centre the previous one left (losses).
  methods/dino_bn_step.safetensors
      The same with DINOHead(use_bn=True) (memloc's --dino-head-bn: BatchNorm1d
      after the two hidden Linears, on all crops at once, in train mode for
      student and teacher), without final.teacher.* and the trajectory (which
      is chaotic with BN over 12 rows, in torch's own float32 run too).

The expected values are computed in float64 from the float32 initial state and
inputs (exact conversions) and stored as float32, as tools/gen_resnet_fixtures.py
does: the test measures memloc's own float32 error. Seeds are chosen so that
every ReLU input and max-pool window stays away from its kink (kink_margin).

    /usr/bin/python3 tools/gen_methods_fixtures.py tests/fixtures
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from gen_resnet_fixtures import kink_margin  # noqa: E402
from resnet9 import ResNet9  # noqa: E402

# The loss trajectories after the checked first step. SimSiam's BN over a few
# rows makes it chaotic: with 8 images per view and lr 0.01, torch's float32
# run stays within 1e-5 of the float64 one over 5 steps (with 4 images or
# lr 0.05 they part by 1e-2 within 3 steps).
TRAJ_STEPS, TRAJ_LR = 5, 0.01
WIDTH = 0.125       # SimSiam
DINO_WIDTH = 0.0625 # DINO keeps four copies of the network (student, teacher, gradient, updated teacher)


def randomise_bn(model):
    """Non-trivial BN affine parameters, so that their gradients are exercised."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) and mod.affine:
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)


def to_f32(t):
    return {k: (v.astype(np.float32) if v.dtype == np.float64 and k != "loss" else v) for k, v in t.items()}


# ---- SimSiam -------------------------------------------------------------------

class SimSiam(nn.Module):
    """ResNet9 + solo-learn's SimSiam projector and predictor, with memloc's two
    deviations (model.h): no bias on projector.6, an affine projector.7."""

    def __init__(self, width, hidden, out, pred_hidden, image):
        super().__init__()
        self.encoder = ResNet9(3, width)
        with torch.no_grad():
            feat = self.encoder(torch.zeros(2, 3, image, image)).flatten(1).shape[1]
        self.projector = nn.Sequential(
            nn.Linear(feat, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, out, bias=False), nn.BatchNorm1d(out))
        self.predictor = nn.Sequential(
            nn.Linear(out, pred_hidden, bias=False), nn.BatchNorm1d(pred_hidden), nn.ReLU(),
            nn.Linear(pred_hidden, out))

    def forward(self, x):
        z = self.projector(self.encoder(x).flatten(1))
        return z, self.predictor(z)

    def state(self):
        out = {k: v for k, v in self.encoder.state_dict().items()}
        out.update({"projector." + k: v for k, v in self.projector.state_dict().items()})
        out.update({"predictor." + k: v for k, v in self.predictor.state_dict().items()})
        return {k: v.detach().numpy().copy() for k, v in out.items()}

    def named_grads(self):
        for prefix, mod in (("", self.encoder), ("projector.", self.projector), ("predictor.", self.predictor)):
            for name, p in mod.named_parameters():
                yield prefix + name, p.grad


def simsiam(outdir, n=8, image=16, hidden=32, out=16, pred_hidden=8, seed=20241220, margin=5e-6):
    torch.set_num_threads(1)
    for s in range(seed, seed + 100):
        torch.manual_seed(s)
        model = SimSiam(WIDTH, hidden, out, pred_hidden, image)
        randomise_bn(model)
        x = torch.rand(2 * n, 3, image, image) * 2 - 1
        m = min(kink_margin(model, x[:n]), kink_margin(model, x[n:]))
        if m > margin:
            break
    else:
        sys.exit("simsiam: no seed keeps the forward away from kinks")
    print("simsiam: seed %d, kink margin %.3g" % (s, m))
    model.double()
    x = x.double()
    t = {"init." + k: v for k, v in model.state().items()}
    t["x"] = x.numpy()
    model.train()
    z1, p1 = model(x[:n])   # one forward per view, as the reference code
    z2, p2 = model(x[n:])
    loss = -(F.cosine_similarity(p1, z2.detach(), dim=-1).mean() +
             F.cosine_similarity(p2, z1.detach(), dim=-1).mean()) * 0.5
    loss.backward()
    t["p"] = torch.cat([p1, p2]).detach().numpy()
    t["z"] = torch.cat([z1, z2]).detach().numpy()
    t["loss"] = np.array([loss.item()], dtype=np.float64)
    for name, g in model.named_grads():
        t["grad." + name] = g.numpy().copy()
    for k, v in model.state().items():
        if "running" in k or "num_batches" in k:
            t["first." + k] = v
    # then a short trajectory on the same views: SGD with momentum and weight
    # decay (PatrickHua/SimSiam's CIFAR optimizer), one loss per step
    opt = torch.optim.SGD(model.parameters(), lr=TRAJ_LR, momentum=0.9, weight_decay=5e-4)
    losses = [loss.item()]
    opt.step()
    for _ in range(TRAJ_STEPS - 1):
        opt.zero_grad()
        z1, p1 = model(x[:n])
        z2, p2 = model(x[n:])
        loss = -(F.cosine_similarity(p1, z2.detach(), dim=-1).mean() +
                 F.cosine_similarity(p2, z1.detach(), dim=-1).mean()) * 0.5
        loss.backward()
        losses.append(loss.item())
        opt.step()
    t["losses"] = np.array(losses, dtype=np.float64)
    path = os.path.join(outdir, "methods", "simsiam_step.safetensors")
    st.save(path, to_f32(t), metadata={
        "width": repr(WIDTH), "image": str(image), "images": str(n), "proj_hidden": str(hidden),
        "proj_dim": str(out), "pred_hidden": str(pred_hidden), "seed": str(s), "kink_margin": "%.3g" % m,
        "traj_lr": repr(TRAJ_LR), "traj_momentum": "0.9", "traj_weight_decay": "0.0005",
        "reference": "float64", "torch": torch.__version__})
    print(path, os.path.getsize(path), "bytes; losses", ["%.6f" % v for v in losses])


# ---- DINO ------------------------------------------------------------------------

class DINOHead(nn.Module):
    """facebookresearch/dino vision_transformer.py DINOHead (nlayers=3, use_bn as given)."""

    def __init__(self, in_dim, out_dim, hidden_dim, bottleneck_dim, use_bn=False):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden_dim)]
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.GELU(), nn.Linear(hidden_dim, hidden_dim)]
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim)]
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                nn.init.constant_(m.bias, 0)
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        # norm_last_layer=True freezes weight_g; the fixture keeps its gradient
        # (requires_grad on) to check memloc's, which the trainer then ignores

    def forward(self, x):
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class Backbone(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.net = ResNet9(3, width)

    def forward(self, x):
        return self.net(x).mean(dim=(2, 3))  # global average pool, as fc = Identity on a ResNet


class MultiCropWrapper(nn.Module):
    """main_dino.py utils.MultiCropWrapper: one backbone pass per crop size, the head on all."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        if not isinstance(x, list):
            x = [x]
        idx_crops = torch.cumsum(torch.unique_consecutive(torch.tensor([inp.shape[-1] for inp in x]),
                                                          return_counts=True)[1], 0)
        start_idx, output = 0, torch.empty(0).to(x[0].device).to(x[0].dtype)
        for end_idx in idx_crops:
            _out = self.backbone(torch.cat(x[start_idx: end_idx]))
            output = torch.cat((output, _out))
            start_idx = end_idx
        return self.head(output)

    def state(self):
        out = {k: v for k, v in self.backbone.net.state_dict().items()}
        out.update({"head." + k: v for k, v in self.head.state_dict().items()})
        return {k: v.detach().numpy().copy() for k, v in out.items()}

    def named_grads(self):
        for name, p in self.backbone.net.named_parameters():
            yield name, p.grad
        for name, p in self.head.named_parameters():
            yield "head." + name, p.grad


class DINOLoss(nn.Module):
    """main_dino.py DINOLoss (one process)."""

    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs,
                 student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temp_schedule = np.concatenate((
            np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
            np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))

    def forward(self, student_output, teacher_output, epoch):
        student_out = student_output / self.student_temp
        student_out = student_out.chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1)
        teacher_out = teacher_out.detach().chunk(2)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        self.update_center(teacher_output)
        return total_loss

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True) / len(teacher_output)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


def cosine_scheduler(base_value, final_value, epochs, niter_per_ep):
    """main_dino.py utils.cosine_scheduler without warm-up."""
    iters = np.arange(epochs * niter_per_ep)
    return final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))


def dino(outdir, use_bn=False, dtype=torch.float64, b=2, local=2, image=32, local_image=16, hidden=32, bottleneck=16, k=64, epoch=1, warmup=3,
         nepochs=5, it=3, niter_per_ep=2, lr=0.05, seed=20241221, margin=5e-6):
    torch.set_num_threads(1)
    for s in range(seed, seed + 100):
        torch.manual_seed(s)
        student = MultiCropWrapper(Backbone(DINO_WIDTH), None)
        feat = student.backbone(torch.zeros(2, 3, image, image)).shape[1]
        student.head = DINOHead(feat, k, hidden, bottleneck, use_bn)
        randomise_bn(student)
        # non-trivial head biases (DINOHead starts them at 0) and weights of a
        # larger scale, so that the loss is not flat
        with torch.no_grad():
            for mod in student.head.mlp:
                if isinstance(mod, nn.Linear):
                    mod.weight.normal_(0, 1 / math.sqrt(mod.weight.shape[1]))
                    mod.bias.uniform_(-0.1, 0.1)
        teacher = MultiCropWrapper(Backbone(DINO_WIDTH), DINOHead(feat, k, hidden, bottleneck, use_bn))
        teacher.load_state_dict(student.state_dict())  # as main_dino.py
        with torch.no_grad():
            for p in teacher.parameters():
                if p is not teacher.head.last_layer.weight_g:
                    p.add_(0.05 * p.abs().mean() * torch.randn_like(p))
        glob = torch.rand(2 * b, 3, image, image) * 2 - 1
        loc = torch.rand(local * b, 3, local_image, local_image) * 2 - 1
        m = min(kink_margin(student.backbone, glob), kink_margin(student.backbone, loc),
                kink_margin(teacher.backbone, glob))
        if m > margin:
            break
    else:
        sys.exit("dino: no seed keeps the forward away from kinks")
    print("dino: seed %d, kink margin %.3g" % (s, m))
    for p in teacher.parameters():
        p.requires_grad = False
    student.to(dtype)
    teacher.to(dtype)
    glob, loc = glob.to(dtype), loc.to(dtype)
    crit = DINOLoss(k, 2 + local, 0.04, 0.07, warmup, nepochs)
    with torch.no_grad():
        crit.center.uniform_(-0.3, 0.3)  # drawn in float32, as stored
    crit.to(dtype)
    t = {"init.student." + k_: v for k_, v in student.state().items()}
    t.update({"init.teacher." + k_: v for k_, v in teacher.state().items()})
    t["init.center"] = crit.center[0].numpy().copy()
    t["global"] = glob.numpy()
    t["local"] = loc.numpy()

    student.train()
    teacher.train()  # DINO never puts its teacher in eval mode: BN uses batch statistics
    crops = list(glob.chunk(2)) + list(loc.chunk(local))
    with torch.no_grad():
        teacher_output = teacher(crops[:2])
    student_output = student(crops)
    loss = crit(student_output, teacher_output, epoch)
    loss.backward()
    t["loss"] = np.array([loss.item()], dtype=np.float64)
    for name, g in student.named_grads():
        t["grad." + name] = g.numpy().copy()
    t["center"] = crit.center[0].numpy().copy()
    for prefix, net in (("first.student.", student), ("first.teacher.", teacher)):
        for k_, v in net.state().items():
            if "running" in k_ or "num_batches" in k_:
                t[prefix + k_] = v
    # the optimizer step (plain SGD; weight_g stays: DINO does not train it)
    with torch.no_grad():
        for p in student.parameters():
            if p is not student.head.last_layer.weight_g:
                p.add_(p.grad, alpha=-lr)
    momentum = cosine_scheduler(0.996, 1, nepochs, niter_per_ep)[it]
    with torch.no_grad():  # main_dino.py's EMA update
        for param_q, param_k in zip(student.parameters(), teacher.parameters()):
            param_k.data.mul_(momentum).add_((1 - momentum) * param_q.detach().data)
    for k_, v in teacher.state().items():
        # the BN variant leaves the EMA check to the other file (size)
        if "running" not in k_ and "num_batches" not in k_ and not use_bn:
            t["final.teacher." + k_] = v
    # then more iterations on the same crops: each target comes from the
    # updated teacher and centre of the previous iteration
    losses = [loss.item()]
    schedule = cosine_scheduler(0.996, 1, nepochs, niter_per_ep)
    # with the BN head on 12 rows the trajectory is chaotic: torch's float32
    # run parts from the float64 one by 1e-4 at the second step and 3e-3 by
    # the fourth (at lr 0.01 too), so the BN file checks one step only
    for k_ in range(1, 1 if use_bn else TRAJ_STEPS):
        student.zero_grad()
        with torch.no_grad():
            teacher_output = teacher(crops[:2])
        loss = crit(student(crops), teacher_output, epoch)
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            for p in student.parameters():
                if p is not student.head.last_layer.weight_g:
                    p.add_(p.grad, alpha=-lr)
            m_ = schedule[it + k_]
            for param_q, param_k in zip(student.parameters(), teacher.parameters()):
                param_k.data.mul_(m_).add_((1 - m_) * param_q.detach().data)
    if not use_bn:
        t["losses"] = np.array(losses, dtype=np.float64)
    if dtype != torch.float64:  # the float32 run's distance from the reference, for the test's budget
        return losses
    path = os.path.join(outdir, "methods", "dino_bn_step.safetensors" if use_bn else "dino_step.safetensors")
    st.save(path, to_f32(t), metadata={
        "width": repr(DINO_WIDTH), "head_bn": str(int(use_bn)), "image": str(image), "local_image": str(local_image), "images": str(b),
        "local_crops": str(local), "hidden": str(hidden), "bottleneck": str(bottleneck), "out_dim": str(k),
        "epoch": str(epoch), "warmup_teacher_temp": "0.04", "teacher_temp": "0.07",
        "warmup_teacher_temp_epochs": str(warmup), "student_temp": "0.1", "center_momentum": "0.9",
        "teacher_temp_now": repr(float(crit.teacher_temp_schedule[epoch])), "momentum_teacher": "0.996",
        "it": str(it), "total": str(nepochs * niter_per_ep), "momentum": repr(float(momentum)), "lr": repr(lr),
        "seed": str(s), "kink_margin": "%.3g" % m, "reference": "float64", "torch": torch.__version__})
    print(path, os.path.getsize(path), "bytes; momentum %.8f, teacher temp %.4f, losses" %
          (momentum, crit.teacher_temp_schedule[epoch]), ["%.6f" % v for v in losses])


def main(outdir):
    os.makedirs(os.path.join(outdir, "methods"), exist_ok=True)
    simsiam(outdir)
    dino(outdir)
    dino(outdir, use_bn=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
