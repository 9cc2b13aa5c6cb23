"""The device a run computes on and the math mode it computes in: never a silent CPU run, never a hidden TF32.

Device (`device: auto | cpu | cuda`, `rir train --device`):
- `cpu` is the CPU, always, with no questions: the user asked for it.
- `auto` and `cuda` take CUDA when torch can use it. When it cannot although NVIDIA GPUs are present (a
  CPU-only wheel, a driver too old for the toolkit), that is an error naming what torch reports and the fix,
  never a quiet fall back to the CPU: at 82 epochs a CPU run takes days. The GPUs are counted from the
  driver (`rir.gpu.present_gpu_count`: nvidia-smi, else /proc), less those CUDA_VISIBLE_DEVICES hides.
- `auto` without any GPU means the CPU, but only for synthetic data (the smoke profile, demos): a run on real
  CIFAR data refuses to train on the CPU unless the CPU was asked for (`refuse_unasked_cpu`).

Math mode (`precision`, rir.recipe): `fp32` is exact fp32, with TF32 off for convolutions (cuDNN) and matmuls
(cuBLAS), although PyTorch allows TF32 for cuDNN convolutions by default on Ampere and newer; `tf32` allows
TF32 for both; `bf16` is bf16 autocast with fp32 master weights (TF32 off for what stays in fp32). The flags
are set by `apply_math_mode` before the model runs, and `math_mode` reads back what really ran, for
metrics.json and env.json. TF32 exists on CUDA only: on the CPU, `tf32` computes in exact fp32 and is recorded
so. ResNet Init layers read the same flags to choose their form (rir.layers.explicit_form).

Only the legacy switches (`torch.backends.cudnn.allow_tf32`, `torch.backends.cuda.matmul.allow_tf32`) are
used: they exist in every torch this project admits, and torch refuses to read them once the newer
`fp32_precision` API has set the two cuDNN flags apart, so the two APIs are never mixed here.
"""

from __future__ import annotations

import contextlib

import torch

from rir.errors import UserError
from rir.gpu import cpu_refusal, present_gpu_count

MATH_MODES = ("fp32", "tf32", "bf16")
FIX = ("install PyTorch's CUDA build for this driver (https://pytorch.org/get-started/locally/), "
       "or ask for the CPU with --device cpu")


def cuda_report() -> str:
    """What torch says about CUDA, in a few words: a CPU-only build, or torch.cuda's own error."""
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    try:
        torch.cuda.init()
    except Exception as err:  # the error torch.cuda.is_available() swallowed: driver, toolkit, devices
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) reports: {reason}"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees {torch.cuda.device_count()} GPU(s)"


def resolve_device(name: str) -> torch.device:
    """The torch device for `name` (auto | cpu | cuda); see the module docstring for when it refuses."""
    if name == "cpu":
        return torch.device("cpu")
    if name not in ("auto", "cuda"):
        raise UserError(f"device {name!r}: must be one of auto, cpu, cuda")
    if torch.cuda.is_available():
        return torch.device("cuda")
    present = present_gpu_count()
    if present:
        raise UserError(f"{present} NVIDIA GPU(s) present but torch cannot use CUDA: {cuda_report()}; {FIX}")
    if name == "cuda":
        raise UserError(f"device 'cuda' was requested but no CUDA GPU is available ({cuda_report()}); "
                        "use --device cpu")
    return torch.device("cpu")


def refuse_unasked_cpu(device: torch.device, requested: str, synthetic: bool) -> None:
    """UserError when a run on real data would train on the CPU without the user asking for the CPU."""
    if device.type != "cpu":
        return
    message = cpu_refusal(real_data=not synthetic, devices={requested}, gpu_slots=0)
    if message:
        raise UserError(f"{message} ({cuda_report()})")


def apply_math_mode(precision: str) -> None:
    """Set torch's TF32 switches for `precision` (fp32 | tf32 | bf16), before the model runs."""
    if precision not in MATH_MODES:
        raise UserError(f"precision {precision!r}: must be one of {', '.join(MATH_MODES)}")
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32


def math_mode(precision: str, device: torch.device) -> dict:
    """The math mode that really runs on `device` under the current switches (metrics.json, env.json)."""
    conv_tf32 = bool(torch.backends.cudnn.allow_tf32)
    matmul_tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    on_cuda = device.type == "cuda"
    if precision == "bf16":
        mode = "bf16"
    else:
        mode = "tf32" if on_cuda and (conv_tf32 or matmul_tf32) else "fp32"
    return {"math_mode": mode, "autocast": "bf16" if precision == "bf16" else None,
            "cudnn_allow_tf32": conv_tf32, "cuda_matmul_allow_tf32": matmul_tf32, "tf32_applies": on_cuda}


def autocast(device: torch.device, precision: str):
    """A context manager: bf16 autocast for `precision: bf16`, else nothing (a fresh one per `with`)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
