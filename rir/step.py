"""The training step of the paper's recipe, shared by `rir train` and `rir bench` (so the bench times it).

Speed switches (the targets: docs/speed.md), each a recorded TrainConfig option or a function of the
device alone:
- the math mode (`precision`: exact fp32, tf32, or bf16 autocast with fp32 master weights and optimizer state;
  rir.device sets it); under TF32 and bf16 ResNet Init layers take their explicit form by themselves
  (rir.layers), so 1 + w never rounds away a small learned w.
- channels_last (`channels_last: true`): NHWC images and weights, the layout tensor-core convolutions want.
- torch.compile (`compile: true`), with Inductor's caches (FX graph and AOT autograd) in one folder per user,
  so the second and later runs of a workflow load compiled kernels instead of compiling them again.
- fused SGD on CUDA (one kernel for the whole parameter update; the same math up to rounding order). The CPU
  keeps PyTorch's default implementation, whose results the bit-identical resume tests pin down.
- no host-device synchronisation: the step accumulates loss and correct counts into device tensors.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"  # Inductor's own variable; a value already set wins


def compile_cache_dir() -> Path:
    """The compile cache all runs of this user share: $TORCHINDUCTOR_CACHE_DIR, else ~/.cache/rir/inductor."""
    # First in torch 2.6.0, the floor pyproject.toml sets for this reason.
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    # Inductor writes its default into the variable when anything imports it (torch's FLOP counter does), so
    # that value is not a user's choice. The default, /tmp/torchinductor_<user>, is wiped on reboot and
    # private to one node of a cluster.
    value = os.environ.get(COMPILE_CACHE_ENV)
    if value and os.path.abspath(value) != os.path.abspath(default_cache_dir()):
        return Path(value)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "rir" / "inductor"


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile `model`, its compiled kernels cached in `compile_cache_dir()` for later runs."""
    import torch._inductor.config as inductor_config

    os.environ[COMPILE_CACHE_ENV] = str(compile_cache_dir())  # Inductor reads it at each cache access

    inductor_config.fx_graph_cache = True  # the default from torch 2.5 on; older releases need it said
    return torch.compile(model)


def use_fused_sgd(device: torch.device) -> bool:
    return device.type == "cuda"


def make_optimizer(model: torch.nn.Module, lr: float, momentum: float, weight_decay: float,
                   decay_norm_and_bias: bool, device: torch.device) -> torch.optim.SGD:
    """SGD with momentum; `weight_decay` acts on weight tensors alone unless `decay_norm_and_bias`."""
    params = list(model.parameters())
    decayed = [p for p in params if p.ndim > 1 or decay_norm_and_bias]
    plain = [p for p in params if not (p.ndim > 1 or decay_norm_and_bias)]
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=use_fused_sgd(device) or None)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               bf16: bool, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
    """One SGD step on batch (x, y); adds the batch's summed loss and correct count to the device tensors
    `loss_sum` (float64) and `correct` (int64) in place, so nothing here waits for the device."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss_sum += loss.detach().double() * y.shape[0]
    correct += (logits.detach().argmax(1) == y).sum()
