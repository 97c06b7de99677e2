#!/usr/bin/python3
"""Optimizer and learning-rate schedule fixtures for tests/parity/test_optim_parity.c
and tests/unit/test_optim.c, written with torch 1.13 (Debian's python3-torch).

    /usr/bin/python3 tools/gen_optim_fixtures.py [tests/fixtures/optim]

One file per optimizer configuration, <config>.safetensors:
    init.<name>          F32   parameters before the first step
    grad.<t>.<name>      F32   gradient given at step t (t = 0..4)
    param.<t>.<name>     F32   parameters after step t
    lr                   F64   [5] learning rate of each step
    trainable            I64   [5, entries] 1 if the entry gets its gradient at step t
                               (0: p.grad is None, torch skips the entry)
    state.<key>.<name>   F32   torch's optimizer state after the last step
                               (momentum_buffer, exp_avg, exp_avg_sq)
    state.step.<name>    I64   [] Adam's per-parameter step
and __metadata__ with the hyper-parameters (kind, momentum, dampening,
nesterov, weight_decay, beta1, beta2, eps, eta, clip_lars,
exclude_bias_n_norm), the entry names and roles in table order.

schedule.safetensors: case<k>.config F64 [5] = (base_lr, warmup_steps,
start_factor, total_steps, eta_min) and case<k>.lr F64 [total+1], the rate
after s scheduler.step() calls of SequentialLR(LinearLR, CosineAnnealingLR)
(warmup 0: CosineAnnealingLR alone), stepped once per iteration.

LARS is a port of solo-learn's solo/utils/lars.py (itself from Lightning
Bolts), written out below so the fixtures need nothing beyond torch.
"""
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

STEPS = 5
LRS = [0.1, 0.08, 0.05, 0.12, 0.1]
ADAM_LRS = [1e-2, 8e-3, 5e-3, 1.2e-2, 1e-2]

# (name, shape, role) in table order; roles as memloc's mloc_role names.
ENTRIES = [
    ("conv.weight", (4, 3, 3, 3), "weight"),
    ("conv.bias", (4,), "bias"),
    ("bn.weight", (4,), "norm_weight"),
    ("bn.bias", (4,), "norm_bias"),
]


class LARS(torch.optim.Optimizer):
    """solo-learn's LARS: SGD whose update (g + wd*p) is scaled per tensor by
    eta*||p|| / (||g|| + wd*||p|| + eps) (optionally min(that/lr, 1)); 1-d
    tensors skip the scaling and the decay when exclude_bias_n_norm_lars."""

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 eta=1e-3, eps=1e-8, clip_lars_lr=False, exclude_bias_n_norm_lars=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, eta=eta, eps=eps,
                        clip_lars_lr=clip_lars_lr,
                        exclude_bias_n_norm_lars=exclude_bias_n_norm_lars)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            wd, momentum = group["weight_decay"], group["momentum"]
            dampening, nesterov = group["dampening"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                p_norm = torch.norm(p.data)
                g_norm = torch.norm(p.grad.data)
                if p.ndim != 1 or not group["exclude_bias_n_norm_lars"]:
                    if p_norm != 0 and g_norm != 0:
                        lars_lr = p_norm / (g_norm + p_norm * wd + group["eps"])
                        lars_lr *= group["eta"]
                        if group["clip_lars_lr"]:
                            lars_lr = min(lars_lr / group["lr"], 1)
                        d_p = d_p.add(p, alpha=wd)
                        d_p *= lars_lr
                if momentum != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(momentum).add_(d_p, alpha=1 - dampening)
                    if nesterov:
                        d_p = d_p.add(buf, alpha=momentum)
                    else:
                        d_p = buf
                p.add_(d_p, alpha=-group["lr"])


def hyper(kind, **kw):
    """memloc's defaults (mloc_optim_config_default) overridden by kw."""
    h = dict(kind=kind, momentum=0.0, dampening=0.0, nesterov=0,
             weight_decay=1e-2 if kind == "adamw" else 0.0, beta1=0.9, beta2=0.999,
             eps=1e-8, eta=1e-3, clip_lars=0, exclude_bias_n_norm=0)
    h.update(kw)
    return h


def make_optimizer(h, params):
    kind = h["kind"]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.1, momentum=h["momentum"],
                               dampening=h["dampening"], nesterov=bool(h["nesterov"]),
                               weight_decay=h["weight_decay"], foreach=False)
    if kind == "adam":
        return torch.optim.Adam(params, lr=1e-2, betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                weight_decay=h["weight_decay"], foreach=False)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                 weight_decay=h["weight_decay"], foreach=False)
    if kind == "lars":
        return LARS(params, lr=0.1, momentum=h["momentum"], dampening=h["dampening"],
                    weight_decay=h["weight_decay"], nesterov=bool(h["nesterov"]), eta=h["eta"],
                    eps=h["eps"], clip_lars_lr=bool(h["clip_lars"]),
                    exclude_bias_n_norm_lars=bool(h["exclude_bias_n_norm"]))
    raise ValueError(kind)


def all_on():
    return np.ones((STEPS, len(ENTRIES)), dtype=np.int64)


def frozen_mask():
    """bn.weight frozen for steps 0-1 (its state starts at step 2), conv.bias
    frozen at step 3."""
    m = all_on()
    m[0:2, 2] = 0
    m[3, 1] = 0
    return m


CONFIGS = {
    "sgd_plain": (hyper("sgd"), LRS, all_on()),
    "sgd_momentum": (hyper("sgd", momentum=0.9, dampening=0.1), LRS, all_on()),
    "sgd_nesterov": (hyper("sgd", momentum=0.9, nesterov=1), LRS, all_on()),
    "sgd_wd": (hyper("sgd", momentum=0.9, weight_decay=5e-2), LRS, all_on()),
    "sgd_frozen": (hyper("sgd", momentum=0.9, dampening=0.1, weight_decay=1e-2), LRS,
                   frozen_mask()),
    "adam": (hyper("adam"), ADAM_LRS, all_on()),
    "adam_wd": (hyper("adam", weight_decay=5e-2), ADAM_LRS, all_on()),
    "adamw": (hyper("adamw", beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=5e-2), ADAM_LRS,
              all_on()),
    "adam_frozen": (hyper("adam", weight_decay=1e-2), ADAM_LRS, frozen_mask()),
    "lars": (hyper("lars", momentum=0.9, weight_decay=1e-2, eta=0.02), LRS, all_on()),
    "lars_exclude": (hyper("lars", momentum=0.9, weight_decay=1e-2, eta=0.02,
                           exclude_bias_n_norm=1), LRS, all_on()),
    "lars_clip": (hyper("lars", momentum=0.9, weight_decay=1e-2, eta=0.02, clip_lars=1,
                        exclude_bias_n_norm=1), LRS, all_on()),
    "lars_nesterov": (hyper("lars", momentum=0.9, nesterov=1, weight_decay=1e-1, eta=0.5), LRS,
                      all_on()),
}


def gen_optim(out_dir, name, h, lrs, mask, seed):
    g = torch.Generator().manual_seed(seed)
    params = []
    tensors = {}
    for ename, shape, role in ENTRIES:
        if role == "norm_weight":
            init = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif role == "bias":
            init = torch.zeros(shape)  # zero norm: LARS skips its scaling at step 0
        else:
            init = 0.5 * torch.randn(shape, generator=g)
        p = torch.nn.Parameter(init.clone())
        params.append(p)
        tensors["init." + ename] = init.numpy().astype(np.float32)
    opt = make_optimizer(h, params)
    for t in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        for k, (ename, shape, role) in enumerate(ENTRIES):
            grad = torch.randn(shape, generator=g) * (0.3 if role == "weight" else 0.1)
            tensors["grad.%d.%s" % (t, ename)] = grad.numpy().astype(np.float32)
            params[k].grad = grad.clone() if mask[t, k] else None
        opt.step()
        for k, (ename, _, _) in enumerate(ENTRIES):
            tensors["param.%d.%s" % (t, ename)] = params[k].detach().numpy().copy()
    for k, (ename, _, _) in enumerate(ENTRIES):
        for key, value in opt.state[params[k]].items():
            if value is None:  # SGD without momentum keeps momentum_buffer = None
                continue
            if key == "step":
                tensors["state.step." + ename] = np.array(int(value.item()), dtype=np.int64)
            else:
                tensors["state.%s.%s" % (key, ename)] = value.numpy().astype(np.float32)
    tensors["lr"] = np.array(lrs, dtype=np.float64)
    tensors["trainable"] = mask
    meta = {k: repr(v) if isinstance(v, float) else str(v) for k, v in h.items()}
    meta["names"] = ",".join(e[0] for e in ENTRIES)
    meta["roles"] = ",".join(e[2] for e in ENTRIES)
    meta["steps"] = str(STEPS)
    meta["generator"] = "tools/gen_optim_fixtures.py, torch " + torch.__version__
    st.save(os.path.join(out_dir, name + ".safetensors"), tensors, metadata=meta)


SCHEDULES = [
    # base_lr, warmup, start_factor, total, eta_min
    (0.6, 10, 0.01, 100, 0.0),
    (1e-3, 5, 1.0 / 3, 37, 1e-5),
    (0.3, 0, 1.0, 50, 1e-3),
    (2.0, 1, 0.5, 3, 0.0),
]


def gen_schedule(out_dir):
    tensors = {}
    for k, (base, warmup, f0, total, eta_min) in enumerate(SCHEDULES):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        if warmup > 0:
            sched = torch.optim.lr_scheduler.SequentialLR(
                opt,
                [torch.optim.lr_scheduler.LinearLR(opt, start_factor=f0, total_iters=warmup),
                 torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup,
                                                            eta_min=eta_min)],
                milestones=[warmup])
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total,
                                                               eta_min=eta_min)
        lrs = []
        for _ in range(total + 1):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        tensors["case%d.config" % k] = np.array([base, warmup, f0, total, eta_min],
                                                dtype=np.float64)
        tensors["case%d.lr" % k] = np.array(lrs, dtype=np.float64)
    st.save(os.path.join(out_dir, "schedule.safetensors"), tensors,
            metadata={"cases": str(len(SCHEDULES)),
                      "generator": "tools/gen_optim_fixtures.py, torch " + torch.__version__})


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "optim")
    os.makedirs(out_dir, exist_ok=True)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    for seed, (name, (h, lrs, mask)) in enumerate(CONFIGS.items()):
        gen_optim(out_dir, name, h, lrs, mask, 1000 + seed)
    gen_schedule(out_dir)


if __name__ == "__main__":
    main()
